"""No network nobody asked for: hub-like encoder names fail at once unless downloads are allowed, and a
call to a loopback LM server resolves and connects to nothing else (no price-table fetch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI
from zsl.cli import main
from zsl.errors import ModelNotFoundError

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    monkeypatch.delenv("ZSL_ALLOW_DOWNLOADS", raising=False)


@pytest.fixture
def files(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "a", "text": "football match tonight"}\n', encoding="utf-8")
    labels = tmp_path / "labels.txt"
    labels.write_text("football\nstorm\n", encoding="utf-8")
    return items, labels


@pytest.fixture
def no_sockets(monkeypatch):
    import socket

    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", lambda self, *a: refuse(*a))
    return attempts


@pytest.mark.parametrize("name", ["sentence-transformers/all-MiniLM-L6-v3", "minilm-l7"])
def test_an_encoder_name_that_is_not_local_fails_at_once_without_network(name, no_sockets):
    from zsl.models.encoders import get_encoder

    t0 = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as err:
        get_encoder(name).encode(["a text"])
    assert time.perf_counter() - t0 < 2 and no_sockets == []
    msg = str(err.value)
    assert f"'{name}'" in msg and "not" in msg and "local folder" in msg and "minilm-l6" in msg
    assert "ZSL_ALLOW_DOWNLOADS=1" in msg and "Fix:" in msg
    if name == "minilm-l7":
        assert "Did you mean 'minilm-l6'?" in msg


def test_downloads_allowed_explicitly_lets_a_hub_name_through(monkeypatch, no_sockets):
    from zsl.models.encoders import SentenceTransformerEncoder, get_encoder

    monkeypatch.setenv("ZSL_ALLOW_DOWNLOADS", "1")
    enc = get_encoder("sentence-transformers/all-MiniLM-L6-v3")  # loads (and downloads) on first use only
    assert isinstance(enc, SentenceTransformerEncoder) and not enc._local and no_sockets == []


def test_cli_mistyped_encoder_is_one_error_line(tmp_path, files, capsys):
    items, labels = files
    t0 = time.perf_counter()
    code = main(["label", str(items), "--labels", str(labels), "--encoder", "org/typo-encoder", "--no-infer",
                 "--no-rank", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and time.perf_counter() - t0 < 2
    assert err.startswith("zsl: error: The encoder 'org/typo-encoder' is neither") and len(err.splitlines()) == 1


def test_a_student_whose_encoder_is_not_local_fails_at_load(tmp_path, no_sockets):
    pytest.importorskip("torch")
    import numpy as np

    from zsl.student.classifier import StudentClassifier

    texts = [f"{c} thing {i}" for i in range(10) for c in ("red", "blue")]
    y = np.array([[t.startswith("red"), t.startswith("blue")] for t in texts], dtype=np.float32)
    path = StudentClassifier(encoder="hashing", epochs=2).fit(texts, y, vocab=["red", "blue"]).save(tmp_path / "st")
    cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    cfg["encoder"]["name"] = "someorg/private-encoder"
    (path / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    t0 = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as err:
        StudentClassifier.load(path).predict_proba(["red thing"])
    assert time.perf_counter() - t0 < 2 and no_sockets == []
    msg = str(err.value)
    assert f"The student at {path}" in msg and "'someorg/private-encoder'" in msg and "ZSL_ALLOW_DOWNLOADS=1" in msg


_RECORD_CONNECTIONS = """
import json, os, socket, sys
seen = []
real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect
def getaddrinfo(host, *a, **k):
    seen.append(str(host))
    return real_getaddrinfo(host, *a, **k)
def connect(self, address):
    seen.append(str(address[0]) if isinstance(address, tuple) else str(address))
    return real_connect(self, address)
socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect
os.environ.pop("LITELLM_LOCAL_MODEL_COST_MAP", None)
import zsl.models.lm
lm = zsl.models.lm.get_lm("hosted_vllm/x", api_base=sys.argv[1], cache=False, num_retries=0)
answer = lm("hello")
import litellm
print(json.dumps({"answer": answer, "seen": seen, "cost_map": os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP"),
                  "hf_offline": os.environ.get("HF_HUB_OFFLINE")}))
"""


def test_a_local_server_call_opens_no_connection_beyond_loopback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "ZSL_ALLOW"))}
    env["PYTHONPATH"] = str(ROOT)
    with FakeOpenAI() as server:
        out = subprocess.run([sys.executable, "-c", _RECORD_CONNECTIONS, server.api_base], check=False, capture_output=True,
                             text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["answer"] == ["ok"] and got["cost_map"] == "True" and got["hf_offline"] == "1"
    assert got["seen"] and set(got["seen"]) <= {"127.0.0.1", "localhost"}, got["seen"]
    assert "Model metadata refresh failed" not in out.stderr
