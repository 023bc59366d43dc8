"""Remote LMs against a real OpenAI-compatible server on loopback (tests/fake_openai.py): retries with
backoff, retryable rows and their rerun, time-outs, the start-up check, --api-base."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI
from zsl.cli import main
from zsl.errors import RemoteModelError

LABELS = ["football", "storm", "election", "cooking"]
TEXTS = ["football match tonight", "storm warning for the coast", "election results are in",
         "football transfer news", "storm damage on the roads", "cooking pasta at home"]


@pytest.fixture(autouse=True)
def _fast_and_uncached(monkeypatch):
    # DSPy's cache would answer repeated requests without reaching the server (hiding failures);
    # retry waits are shortened so the backoff path runs in milliseconds.
    monkeypatch.setenv("ZSL_LM_CACHE", "0")
    monkeypatch.setenv("ZSL_RETRY_BASE_DELAY", "0.01")
    monkeypatch.delenv("ZSL_ALLOW_DOWNLOADS", raising=False)


@pytest.fixture
def files(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": f"i{n}", "text": t}) + "\n" for n, t in enumerate(TEXTS)),
                     encoding="utf-8")
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    return items, labels


def _label(items, labels, out, server, *extra):
    return main(["label", str(items), "--labels", str(labels), "--out", str(out), "--lm", "hosted_vllm/x",
                 "--api-base", server.api_base, "--encoder", "hashing", "--no-rank", "-k", "1", *extra])


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_dspy_lm_errors_are_transient_and_a_servers_retry_after_is_honoured():
    import dspy

    from zsl.util.retry import is_transient, retry_call

    assert is_transient(dspy.LMRateLimitError("slow down", status=429))
    assert is_transient(dspy.LMServerError("oops", status=503))
    assert is_transient(dspy.LMTimeoutError("late"))
    assert is_transient(dspy.LMTransportError("reset"))
    assert not is_transient(dspy.LMAuthError("bad key", status=401))
    assert not is_transient(ValueError("bad answer"))

    waits: list[float] = []

    def limited():
        raise dspy.LMRateLimitError("slow down", status=429, retry_after=5.0)

    with pytest.raises(dspy.LMRateLimitError):
        retry_call(limited, retries=2, base_delay=0.01, sleep=waits.append, rng=random.Random(0))
    assert waits == [5.0, 5.0]


def test_rate_limits_are_retried_with_backoff_until_every_item_is_labelled(tmp_path, files, capsys):
    items, labels = files
    with FakeOpenAI() as healthy:
        assert _label(items, labels, tmp_path / "clean", healthy) == 0
    # Five 429s: the three tries of the start-up check (which goes on: the server answered) and two items.
    with FakeOpenAI(fail_first=5, fail_status=429) as server:
        code = _label(items, labels, tmp_path / "run", server, "--concurrency", "4", "--retries", "2")
    err = capsys.readouterr().err
    assert code == 0, err
    assert server.failures == 5 and server.requests == 5 + len(TEXTS)  # each item answered once, after its retries
    assert "HTTP 429" in err
    assert (tmp_path / "run" / "labels.jsonl").read_bytes() == (tmp_path / "clean" / "labels.jsonl").read_bytes()
    assert _rows(tmp_path / "run" / "errors.jsonl") == []


@pytest.mark.parametrize("status", [429, 503])
def test_items_that_keep_failing_are_retryable_and_a_rerun_labels_exactly_those(tmp_path, files, capsys, status):
    items, labels = files
    with FakeOpenAI() as healthy:
        assert _label(items, labels, tmp_path / "clean", healthy) == 0
    storms = [t for t in TEXTS if "storm" in t]
    with FakeOpenAI(fail_first=None, fail_status=status, fail_when=lambda text: "storm" in text) as server:
        assert _label(items, labels, tmp_path / "run", server, "--concurrency", "4", "--retries", "1") == 3
        errors = _rows(tmp_path / "run" / "errors.jsonl")
        assert [e["id"] for e in errors] == [f"i{TEXTS.index(t)}" for t in storms]
        assert all(e["retryable"] is True for e in errors), errors
        assert all("\n" not in e["reason"] and f"fake {status}" in e["reason"] for e in errors), errors
        assert "rerun the same command" in capsys.readouterr().err
        assert sorted(server.texts[1:]) == sorted(TEXTS + storms)  # check, every item, one retry per storm item

        server.fail_first = 0  # healthy again
        server.texts.clear()
        assert _label(items, labels, tmp_path / "run", server, "--concurrency", "4", "--retries", "1") == 0
    assert sorted(server.texts) == sorted(["", *storms])  # the start-up check, then just the failed items
    assert (tmp_path / "run" / "labels.jsonl").read_bytes() == (tmp_path / "clean" / "labels.jsonl").read_bytes()
    assert _rows(tmp_path / "run" / "errors.jsonl") == []


def test_a_server_that_never_answers_fails_within_the_timeout_not_hours(tmp_path, files):
    from zsl.models.lm import get_lm
    from zsl.runs.label import label_run

    items, labels = files
    outcome: dict[str, BaseException | float] = {}

    def run() -> None:
        t0 = time.perf_counter()
        try:
            label_run(items, labels, out=tmp_path / "run", lm=get_lm("hosted_vllm/x", api_base=server.api_base),
                      encoder="hashing", rank=False, k=1, timeout=1, retries=1)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = exc
        outcome["seconds"] = time.perf_counter() - t0

    with FakeOpenAI(hang=True) as server:
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(timeout=20)
        assert not worker.is_alive(), "label_run still waiting for a server that never answers"
    assert outcome["seconds"] < 10
    err = outcome["error"]
    assert isinstance(err, RemoteModelError) and "within 1s" in str(err) and "--timeout" in str(err)
    assert not (tmp_path / "run").exists()  # refused before any run directory was made


def test_remote_calls_have_a_default_time_limit_and_leave_retries_to_zsl():
    import dspy

    from zsl.models.lm import REMOTE_TIMEOUT, get_lm
    from zsl.runs.labeller import LabelSettings, TextLabeller
    from zsl.vocab import LabelVocab

    assert get_lm("hosted_vllm/x", api_base="http://127.0.0.1:9/v1").kwargs["timeout"] == REMOTE_TIMEOUT == 120
    with FakeOpenAI() as server:
        mine = dspy.LM("hosted_vllm/x", api_base=server.api_base, cache=False)  # no timeout of its own
        lab = TextLabeller(LabelVocab(LABELS), LabelSettings(lm=mine, encoder="hashing", k=1, label_kind="topics",
                                                             rank=False, rank_top=5, concurrency=2, retries=1))
    used = lab.program.infer.predict.lm
    assert lab.remote and lab.concurrency == 2 and server.requests == 1  # the start-up check
    assert used.kwargs["timeout"] == REMOTE_TIMEOUT and used.num_retries == 0
    assert "timeout" not in mine.kwargs and mine.num_retries == 3  # the caller's LM object is left alone


def test_the_start_up_check_reaches_the_server_even_when_answers_are_cached(monkeypatch):
    from zsl.models.lm import get_lm
    from zsl.runs.labeller import LabelSettings, TextLabeller
    from zsl.vocab import LabelVocab

    monkeypatch.setenv("ZSL_LM_CACHE", "1")
    with FakeOpenAI() as server:
        for _ in range(2):
            TextLabeller(LabelVocab(LABELS), LabelSettings(lm=get_lm("hosted_vllm/x", api_base=server.api_base),
                                                           encoder="hashing", k=1, label_kind="topics", rank=False,
                                                           rank_top=5, retries=0))
    assert server.requests == 2  # a cached "ok" would not show that the server is up


def test_api_base_needs_a_provider_model(tmp_path, files, capsys):
    items, labels = files
    code = main(["label", str(items), "--labels", str(labels), "--lm", "gemma3-270m", "--api-base",
                 "http://127.0.0.1:9/v1", "--out", str(tmp_path / "run")])
    assert code == 2 and "--api-base" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_a_catch_all_pivot_is_fitted_on_the_remote_answers_with_each_item_asked_once(tmp_path, files, capsys):
    items, _ = files
    labels = tmp_path / "with_other.txt"
    labels.write_text("\n".join([*LABELS, "other"]) + "\n", encoding="utf-8")
    with FakeOpenAI(fail_first=2, fail_status=429) as server:  # the start-up check's tries, then answers
        code = _label(items, labels, tmp_path / "run", server, "--concurrency", "3", "--retries", "3")
    err = capsys.readouterr().err
    assert code == 0, err
    assert "catch-all labels: scoring the first 6 item(s)" in err
    # the pivot's items were asked (in 3 threads) before labelling, and their answers became the rows
    assert server.requests == 2 + 1 + len(TEXTS)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["settings"]["catch_all"]["source"] == "quantile of the LLM scores"
    assert len(_rows(tmp_path / "run" / "labels.jsonl")) == len(TEXTS)
