"""`--budget` never loses a paid LLM answer nor pays twice (issue #26, cases B3-B7 and B13 of the 2026-12-07
review), and `zsl label` writes a progress line to log.txt while it works.

Transient failures go through a real OpenAI-compatible server on loopback (tests/fake_openai.py);
teacher.jsonl damage is done to real files."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI
from tests.helpers import BUDGET_TOPICS as TOPICS
from tests.helpers import BUDGET_WORDS as WORDS
from tests.helpers import CountingLM
from zsl.cli import main
from zsl.runs.budget import TEACHER, budget_run


@pytest.fixture(autouse=True)
def _fast_and_uncached(monkeypatch):
    # DSPy's cache would answer a repeated request without the server (hiding a retry); short retry waits.
    monkeypatch.setenv("ZSL_LM_CACHE", "0")
    monkeypatch.setenv("ZSL_RETRY_BASE_DELAY", "0.01")


@pytest.fixture
def files(tmp_path: Path):
    """24 texts on 4 topics; every weather text says "storm" (the fake server fails on those)."""
    rows = []
    for n in range(24):
        topic = TOPICS[n % 4]
        words = WORDS[topic].split()
        rows.append({"id": f"t{n:02d}", "text": f"{words[n % 3]} {words[(n + 1) % 3]} {words[1]} item {n}",
                     "labels": [topic]})
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    vocab = tmp_path / "labels.txt"
    vocab.write_text("\n".join(TOPICS) + "\n", encoding="utf-8")
    return items, vocab, rows


def _cli(files, out, server, *extra):
    items, vocab, _ = files
    return main(["label", str(items), "--labels", str(vocab), "--out", str(out), "--lm", "hosted_vllm/x",
                 "--api-base", server.api_base, "--encoder", "hashing", "--no-rank", "-k", "1", "--retries", "1",
                 *extra])


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _asked(server) -> list[str]:
    return sorted(t for t in server.texts if t)  # "" is the start-up check


# -- B3, B4: transient failures are retryable --------------------------------------------------------
@pytest.mark.parametrize("fresh", [False, True])
def test_b3_a_503_on_some_teacher_items_exits_3_and_a_rerun_asks_exactly_those(files, tmp_path, capsys, fresh):
    with FakeOpenAI() as healthy:
        assert _cli(files, tmp_path / "clean", healthy, "--budget", "8") == 0
    with FakeOpenAI(fail_first=None, fail_status=503, fail_when=lambda t: "storm" in t) as server:
        assert _cli(files, tmp_path / "run", server, "--budget", "8") == 3
        err = capsys.readouterr().err
        failed = sorted({t for t in server.texts if "storm" in t})
        assert failed, "the test needs the LLM to have chosen a storm item"
        records = _jsonl(tmp_path / "run" / TEACHER)
        assert all(r.get("retryable") is True for r in records if "error" in r)
        errors = _jsonl(tmp_path / "run" / "errors.jsonl")
        rows = {r["id"]: r for r in _jsonl(tmp_path / "run" / "labels.jsonl")}
        assert len(errors) == len(failed) and all(e["retryable"] is True for e in errors), errors
        for e in errors:
            assert e["labelled_by"] == rows[e["id"]]["source"] != "llm"
            assert rows[e["id"]]["source"] in e["reason"] and "fake 503" in e["reason"]
        assert "rerun the same command" in err
        server.fail_first = 0  # healthy again
        server.texts.clear()
        assert _cli(files, tmp_path / "run", server, "--budget", "8", *(["--fresh"] if fresh else [])) == 0
        assert _asked(server) == failed  # exactly the items that failed, once each
    assert _jsonl(tmp_path / "run" / "errors.jsonl") == []
    assert (tmp_path / "run" / "labels.jsonl").read_bytes() == (tmp_path / "clean" / "labels.jsonl").read_bytes()


def test_b4_429_on_every_item_says_retrieval_labelled_them_and_a_rerun_retries_them(files, tmp_path, capsys):
    with FakeOpenAI(fail_first=None, fail_status=429, fail_when=lambda t: t != "") as server:
        assert _cli(files, tmp_path / "run", server, "--budget", "5") == 3
        errors = _jsonl(tmp_path / "run" / "errors.jsonl")
        assert len(errors) == 5 and all(e["retryable"] and e["labelled_by"] == "retrieval" for e in errors)
        assert not any("student" in e["reason"] for e in errors), errors
        assert {r["source"] for r in _jsonl(tmp_path / "run" / "labels.jsonl")} == {"retrieval"}
        failed = sorted(set(_asked(server)))
        server.fail_first = 0
        server.texts.clear()
        assert _cli(files, tmp_path / "run", server, "--budget", "5") == 0
        assert _asked(server) == failed
    assert sum(r["source"] == "llm" for r in _jsonl(tmp_path / "run" / "labels.jsonl")) == 5


def test_a_permanent_teacher_failure_stays_recorded_and_is_not_asked_again(files, tmp_path):
    items, vocab, rows = files
    args = {"budget": "100%", "out": tmp_path / "run", "encoder": "hashing", "k": 1, "rank": False, "rounds": 1}
    s = budget_run(items, vocab, lm=CountingLM(rows, fail=rows[0]["text"]), **args)
    errors = _jsonl(tmp_path / "run" / "errors.jsonl")
    assert [e["id"] for e in errors] == ["t00"] and "retryable" not in errors[0] and s.retryable == 0
    assert errors[0]["labelled_by"] == "student" and "the model broke" in errors[0]["reason"]
    lm = CountingLM(rows)
    budget_run(items, vocab, lm=lm, fresh=True, **args)
    assert lm.calls == 0


# -- B5, B6: a damaged teacher.jsonl ------------------------------------------------------------------
def _run(files, tmp_path, lm, **kw):
    items, vocab, _ = files
    args = {"budget": 8, "out": tmp_path / "run", "lm": lm, "encoder": "hashing", "k": 1, "rank": False,
            "rounds": 2, **kw}
    return budget_run(items, vocab, **args)


def test_b5_a_bad_middle_line_is_skipped_with_a_warning_and_later_answers_are_kept(files, tmp_path):
    _run(files, tmp_path, CountingLM(files[2]))
    tpath = tmp_path / "run" / TEACHER
    lines = tpath.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = lines[2].replace('"', "", 1)  # line 3 is no longer JSON
    tpath.write_text("".join(lines), encoding="utf-8")
    lm = CountingLM(files[2])
    s = _run(files, tmp_path, lm, fresh=True)
    assert lm.calls == 1 and s.reused_llm == 7  # only the unreadable answer is paid again
    assert tpath.read_text(encoding="utf-8").splitlines(keepends=True)[:8] == lines  # nothing cut
    log = (tmp_path / "run" / "log.txt").read_text(encoding="utf-8")
    assert f"{tpath}:3" in log and any(f"{tpath}:3" in w for w in s.warnings)


def test_b5_only_a_torn_last_line_is_cut(files, tmp_path):
    _run(files, tmp_path, CountingLM(files[2]))
    tpath = tmp_path / "run" / TEACHER
    good = tpath.read_bytes()
    tpath.write_bytes(good + b'{"id": "t99", "ke')
    lm = CountingLM(files[2])
    _run(files, tmp_path, lm, fresh=True)
    assert lm.calls == 0 and tpath.read_bytes() == good


@pytest.mark.parametrize("bad", ['{"foo": 1}', '{"id": 7, "key": "x", "row": {"labels": []}}', '[1, 2]',
                                 '{"id": "t00", "key": "x", "row": {"labels": "sports"}}'])
def test_b6_a_record_without_id_or_labels_is_a_bad_line_not_a_traceback(files, tmp_path, bad):
    _run(files, tmp_path, CountingLM(files[2]))
    tpath = tmp_path / "run" / TEACHER
    with tpath.open("a", encoding="utf-8") as fh:
        fh.write(bad + "\n")
    lm = CountingLM(files[2])
    s = _run(files, tmp_path, lm, fresh=True)
    assert lm.calls == 0 and any(f"{tpath}:9" in w for w in s.warnings)


def test_b6_a_reused_record_whose_row_lost_its_labels_is_asked_again(files, tmp_path):
    _run(files, tmp_path, CountingLM(files[2]))
    tpath = tmp_path / "run" / TEACHER
    recs = _jsonl(tpath)
    del recs[1]["row"]["labels"]
    tpath.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    lm = CountingLM(files[2])
    s = _run(files, tmp_path, lm, budget=12)
    assert lm.calls == 5 and s.reused_llm == 7  # the damaged answer no longer counts: 5 items to reach 12
    assert any(f"{tpath}:2" in w for w in s.warnings)


# -- B7: answers are keyed on what produced them ------------------------------------------------------
@pytest.mark.parametrize("fresh", [False, True])
def test_b7_an_appended_and_an_edited_item_keep_every_other_paid_answer(files, tmp_path, fresh):
    items, _, rows = files
    _run(files, tmp_path, CountingLM(rows))
    tpath = tmp_path / "run" / TEACHER
    before = tpath.read_bytes()
    asked = [r["id"] for r in _jsonl(tpath)]
    edited = next(r for r in rows if r["id"] == asked[0])
    edited["text"] = "vote vote vote edited"
    rows.append({"id": "t24", "text": "oven recipe flour new", "labels": ["cooking"]})
    items.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    lm = CountingLM(rows)
    s = _run(files, tmp_path, lm, fresh=fresh)
    assert s.reused_llm == 7 and lm.calls == 1  # the edited item's answer is void; one new item fills the budget
    assert tpath.read_bytes().startswith(before)  # every paid answer is still on disk


def _old_key(manifest: dict) -> str:
    """The key the previous format gave every record: settings, vocabulary and the whole input's fingerprint."""
    blob = json.dumps({"settings": manifest["settings"], "vocab": manifest["vocab"]["hash"],
                       "input": manifest["input"]["fingerprint"]}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def test_b7_a_teacher_file_in_the_previous_format_is_reused_for_the_same_input(files, tmp_path):
    items, _, rows = files
    _run(files, tmp_path, CountingLM(rows))
    run = tmp_path / "run"
    key = _old_key(json.loads((run / "manifest.json").read_text()))
    old = [{"id": r["id"], "teacher": key, **{k: v for k, v in r.items() if k in ("row", "seconds", "usage")}}
           for r in _jsonl(run / TEACHER)]
    (run / TEACHER).write_text("".join(json.dumps(r) + "\n" for r in old), encoding="utf-8")
    lm = CountingLM(rows)
    assert _run(files, tmp_path, lm, fresh=True).reused_llm == 8 and lm.calls == 0
    rows.append({"id": "t24", "text": "oven recipe flour new", "labels": ["cooking"]})
    items.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    lm = CountingLM(rows)
    _run(files, tmp_path, lm, fresh=True)
    assert lm.calls == 8  # an old record cannot say which text it answered once the input changed
    assert "previous format" in (run / "log.txt").read_text(encoding="utf-8")


# -- B13: --concurrency with --budget -------------------------------------------------------------------
def test_b13_budget_honours_concurrency_for_a_remote_teacher(files, tmp_path):
    with FakeOpenAI(delay=0.2) as server:
        assert _cli(files, tmp_path / "run", server, "--budget", "8", "--concurrency", "4") == 0
    assert server.max_in_flight > 1
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["runtime"]["concurrency"] == 4
    assert "concurrency 4" in (tmp_path / "run" / "log.txt").read_text(encoding="utf-8")


# -- heartbeat -----------------------------------------------------------------------------------------
def test_heartbeat_logs_done_total_rate_and_time_left_at_most_once_per_interval():
    from zsl.util.progress import Heartbeat

    now = [0.0]
    lines: list[str] = []
    hb = Heartbeat(lines.append, total=100, what="labelling", unit="item", interval=60, clock=lambda: now[0])
    hb.update(10)
    now[0] = 30.0
    hb.beat()
    assert lines == []
    now[0] = 61.0
    hb.update(10)
    hb.beat()
    hb.beat()
    assert lines == ["labelling: 20/100 item(s) (20%), 0.33 item/s, about 4 min 04 s left"]
    now[0] = 200.0
    hb.update(80)
    hb.beat()
    assert len(lines) == 2 and lines[1].startswith("labelling: 100/100 item(s) (100%)")


def test_label_run_and_budget_run_write_progress_lines_to_the_log(files, tmp_path, monkeypatch):
    from zsl.runs.label import label_run

    monkeypatch.setenv("ZSL_LOG_EVERY", "0")  # a line after every chunk / LLM item
    items, vocab, rows = files
    label_run(items, vocab, out=tmp_path / "plain", encoder="hashing", infer=False, rank=False, chunk_size=10)
    log = (tmp_path / "plain" / "log.txt").read_text(encoding="utf-8")
    assert "labelling: 10/24 item(s)" in log and "labelling: 24/24 item(s)" in log
    _run(files, tmp_path, CountingLM(rows))
    log = (tmp_path / "run" / "log.txt").read_text(encoding="utf-8")
    assert "LLM teacher: 1/8 item(s)" in log and "LLM teacher: 8/8 item(s)" in log


def test_a_raised_budget_stopped_midway_resumes_instead_of_claiming_the_old_run_is_complete(files, tmp_path):
    rows = files[2]
    whole = tmp_path / "whole"
    whole.mkdir()
    _run(files, whole, CountingLM(rows))
    _run(files, whole, CountingLM(rows), budget=16)
    _run(files, tmp_path, CountingLM(rows))
    with pytest.raises(KeyboardInterrupt):
        _run(files, tmp_path, CountingLM(rows, stop_after=3), budget=16)
    lm = CountingLM(rows)
    s = _run(files, tmp_path, lm, budget=16)
    assert not s.already_complete and s.llm_items == 16 and lm.calls == 5  # 8 + 3 kept, 5 to go
    assert (tmp_path / "run" / "labels.jsonl").read_bytes() == (whole / "run" / "labels.jsonl").read_bytes()


def test_a_teacher_file_planted_as_a_fifo_or_a_link_to_a_device_is_refused_without_reading(tmp_path):
    """Found by the rerun of the probe: read_bytes() on a FIFO hung, on a link to /dev/zero filled the memory."""
    from zsl.errors import InputError
    from zsl.runs.budget import _read_teacher

    os.mkfifo(tmp_path / "fifo.jsonl")
    with pytest.raises(InputError, match="named pipe"):
        _read_teacher(tmp_path / "fifo.jsonl")
    (tmp_path / "zero.jsonl").symlink_to("/dev/zero")
    with pytest.raises(InputError, match="symbolic link"):
        _read_teacher(tmp_path / "zero.jsonl")
    assert _read_teacher(tmp_path / "missing.jsonl") == ([], [], [])
