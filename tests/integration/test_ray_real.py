"""The Ray engine on the real embedded models: the same labels as the local engine, byte for byte.

Two workers with one thread each (Ray's own processes, each loading MiniLM and the LLM once)
against the local engine with one thread too. Byte-identity is promised for the same thread
count: llama.cpp's and torch's float sums depend on how many threads share a product (and on
the CPU's kernels), so one thread against two may round a score's last written digit the other
way (seen on an AVX2-only EPYC). Within one thread count an item's outputs depend on nothing
else: not the chunk, the worker, the order, or the prompt evaluated before it (the local LLM
re-uses only a prompt's fixed part from its KV cache; see ``LlamaRuntime.complete``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zsl.runs.label import label_run

pytestmark = pytest.mark.integration
ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'zsl[ray]'")

EXAMPLES = Path(__file__).resolve().parents[2] / "zsl" / "examples"


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def one_thread(monkeypatch):
    """The local engine with the threads of one Ray worker: llama.cpp ($ZSL_THREADS) and torch."""
    import torch

    monkeypatch.setenv("ZSL_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _same(a: Path, b: Path) -> None:
    for name in ("labels.jsonl", "errors.jsonl", "labels.jsonl.meta.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_minilm_retrieval_on_two_workers_matches_the_local_engine(cluster, one_thread, tmp_path):
    items, vocab = EXAMPLES / "news_topics.jsonl", EXAMPLES / "news_topics_labels.txt"
    kw = {"infer": False, "rank": False, "k": 3, "chunk_size": 4}  # 16 texts: 4 chunks
    local = label_run(items, vocab, out=tmp_path / "local", **kw)
    got = label_run(items, vocab, out=tmp_path / "ray", engine="ray", workers=2, threads_per_worker=1, **kw)
    _same(tmp_path / "local", tmp_path / "ray")
    assert got.labelled == local.labelled == 16 and got.eval["p_at_1"] == local.eval["p_at_1"] >= 0.75


def test_the_llm_program_on_two_workers_matches_the_local_engine(cluster, one_thread, tmp_path, monkeypatch):
    """The embedded Qwen2.5-1.5B through Infer and Rank: one thread per worker and locally.
    DSPy's answer cache is off (in the workers too: they get the ZSL_* variables), so both engines
    really call the model."""
    monkeypatch.setenv("ZSL_LM_CACHE", "0")
    rows = [json.loads(x) for x in (EXAMPLES / "news_topics.jsonl").read_text(encoding="utf-8").splitlines()][:4]
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    vocab = EXAMPLES / "news_topics_labels.txt"
    kw = {"lm": "qwen2.5-coder-1.5b", "k": 3, "chunk_size": 2, "rank_top": 5}
    local = label_run(items, vocab, out=tmp_path / "local", **kw)
    got = label_run(items, vocab, out=tmp_path / "ray", engine="ray", workers=2, threads_per_worker=1, **kw)
    _same(tmp_path / "local", tmp_path / "ray")
    # Same LLM work, token for token: the same computation in every engine.
    assert got.tokens == local.tokens and got.tokens["infer"]["calls"] == got.tokens["rank"]["calls"] == 4
    assert got.eval["p_at_1"] == local.eval["p_at_1"] >= 0.75
