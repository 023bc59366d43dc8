"""Labelling runs: run directory, chunks, resume, refusal, bad records, concurrency, retries, estimates."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.fakes import ScriptedLM
from tests.helpers import TOPICS, write_items
from zsl.cli import main
from zsl.errors import InputError
from zsl.runs.label import _IdSet, estimate_run, label_run
from zsl.util.retry import is_transient, retry_call


@pytest.fixture
def vocab_file(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_text("\n".join(TOPICS) + "\n", encoding="utf-8")
    return p


def _read(path):
    return [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines()]


def test_run_directory_holds_labels_errors_manifest_summary_and_log(tmp_path, vocab_file):
    items = tmp_path / "items.jsonl"
    write_items(items, 50, bad_every=10)
    s = label_run(items, vocab_file, out=tmp_path / "run", encoder="hashing", infer=False, rank=False, k=2,
                  chunk_size=8)
    run = tmp_path / "run"
    assert (s.total, s.labelled, s.skipped) == (50, 45, 5)
    rows = _read(run / "labels.jsonl")
    assert [r["id"] for r in rows] == [f"item-{i}" for i in range(50) if i % 10 != 9]
    assert all(len(r["labels"]) == 2 and r["scores"][0] >= r["scores"][1] for r in rows)
    errors = _read(run / "errors.jsonl")
    assert [e["line"] for e in errors] == [10, 20, 30, 40, 50] and "malformed JSON" in errors[0]["reason"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["vocab"]["size"] == 5 and manifest["input"]["fingerprint"].startswith("sha256:")
    assert manifest["settings"]["k"] == 2 and manifest["settings"]["encoder"].startswith("hashing")
    assert json.loads((run / "summary.json").read_text())["labelled"] == 45
    assert "start" in (run / "log.txt").read_text() and not (run / "chunks").exists()
    assert s.eval["n"] == 45 and 0 <= s.eval["rp_at_k"] <= 1
    # the silver data reads back without --labels (vocabulary sidecar)
    from zsl.silver.data import read_silver

    silver = read_silver(run / "labels.jsonl")
    assert silver.vocab.labels == tuple(TOPICS) and len(silver) == 45


def test_interrupted_run_resumes_to_identical_output(tmp_path, vocab_file, monkeypatch):
    import zsl.runs.label as run_mod

    items = tmp_path / "items.jsonl"
    write_items(items, 60, bad_every=7)
    ref = label_run(items, vocab_file, out=tmp_path / "ref", encoder="hashing", infer=False, rank=False, chunk_size=7)
    real = run_mod.label_chunk
    calls = []

    def flaky(rd, ci, *args):
        calls.append(ci)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(rd, ci, *args)

    monkeypatch.setattr(run_mod, "label_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        label_run(items, vocab_file, out=tmp_path / "run", encoder="hashing", infer=False, rank=False, chunk_size=7)
    assert len(list((tmp_path / "run" / "chunks").glob("*.jsonl"))) == 3
    monkeypatch.setattr(run_mod, "label_chunk", real)
    s = label_run(items, vocab_file, out=tmp_path / "run", encoder="hashing", infer=False, rank=False, chunk_size=7)
    assert s.resumed_chunks == 3
    assert (tmp_path / "run" / "labels.jsonl").read_bytes() == (tmp_path / "ref" / "labels.jsonl").read_bytes()
    assert (tmp_path / "run" / "errors.jsonl").read_bytes() == (tmp_path / "ref" / "errors.jsonl").read_bytes()
    assert (s.labelled, s.skipped) == (ref.labelled, ref.skipped)
    again = label_run(items, vocab_file, out=tmp_path / "run", encoder="hashing", infer=False, rank=False, chunk_size=7)
    assert again.already_complete and again.labelled == ref.labelled


@pytest.mark.parametrize("change, expect", [
    ({"k": 3}, "k: 5 -> 3"),
    ({"chunk_size": 5}, "chunk_size"),
    ({"labels": ["sports", "music"]}, "vocab.hash"),
])
def test_resume_refuses_changed_settings_and_says_what_changed(tmp_path, vocab_file, change, expect):
    items = tmp_path / "items.jsonl"
    write_items(items, 10)
    base = {"labels": vocab_file, "encoder": "hashing", "infer": False, "rank": False, "k": 5, "chunk_size": 4}
    label_run(items, out=tmp_path / "run", **base)
    with pytest.raises(InputError, match=expect) as info:
        label_run(items, out=tmp_path / "run", **{**base, **change})
    assert "--fresh" in str(info.value)
    s = label_run(items, out=tmp_path / "run", fresh=True, **{**base, **change})
    assert s.labelled == 10 and not s.already_complete


def test_resume_refuses_a_changed_input_and_a_foreign_directory(tmp_path, vocab_file):
    items = tmp_path / "items.jsonl"
    write_items(items, 10)
    label_run(items, vocab_file, out=tmp_path / "run", encoder="hashing", infer=False, rank=False)
    write_items(items, 11)
    with pytest.raises(InputError, match="input.fingerprint"):
        label_run(items, vocab_file, out=tmp_path / "run", encoder="hashing", infer=False, rank=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "precious.txt").write_text("x")
    with pytest.raises(InputError, match="not a zsl run directory"):
        label_run(items, vocab_file, out=tmp_path / "other", encoder="hashing", infer=False, rank=False)
    with pytest.raises(InputError, match="is a file"):
        label_run(items, vocab_file, out=tmp_path / "other" / "precious.txt", encoder="hashing", infer=False,
                  rank=False)


def test_duplicate_ids_vocab_problems_and_hierarchy_are_reported(tmp_path):
    items = tmp_path / "items.csv"
    items.write_text("id,text\n1,football goal\n2,rain storm\n1,pasta oven\n3\n", encoding="utf-8")
    vocab = tmp_path / "tax.csv"
    vocab.write_text("label,parent\ntopics,\nsports,topics\n\nweather,topics\nsports,topics\n", encoding="utf-8")
    s = label_run(items, vocab, out=tmp_path / "run", encoder="hashing", infer=False, rank=False, k=1)
    assert (s.labelled, s.skipped) == (2, 2)
    reasons = [e["reason"] for e in _read(tmp_path / "run" / "errors.jsonl")]
    assert "duplicate id '1'" in reasons[0] and "fewer fields" in reasons[1]
    assert any("duplicate label 'sports'" in w and ":6:" in w for w in s.warnings)
    txt = tmp_path / "v.txt"
    txt.write_text("sports\n\nweather\n  \n", encoding="utf-8")
    s2 = label_run(items, txt, out=tmp_path / "run2", encoder="hashing", infer=False, rank=False, k=1)
    assert any("2 blank line(s) skipped (line 2, 4)" in w for w in s2.warnings)
    rows = _read(tmp_path / "run" / "labels.jsonl")
    # a tree's rows are paths by default (--tree-output path): the root first, each label with its ancestors
    assert all(r["labels"][0] == "topics" and r["ancestors"] == [[] if lab == "topics" else ["topics"]
                                                                 for lab in r["labels"]] for r in rows)


def test_id_set_finds_repeats_across_merges_and_stays_compact():
    seen = _IdSet(merge_at=8)
    rng = np.random.default_rng(0)
    values = rng.integers(-(2**63), 2**63 - 1, size=100, dtype=np.int64).tolist()
    assert all(seen.add(v) for v in values)  # 100 new ids: 12 merges into the sorted array
    assert len(seen) == 100
    assert not any(seen.add(v) for v in values)  # every repeat is found, merged or recent
    assert seen._sorted.size == 96 and list(seen._sorted) == sorted(values[:96])
    assert seen.add(12345) and not seen.add(12345)


def test_run_with_scripted_lm_counts_tokens_and_warns_about_local_concurrency(tmp_path, vocab_file):
    items = tmp_path / "items.txt"
    items.write_text("the football team won\nstorms and rain ahead\n", encoding="utf-8")
    lm = ScriptedLM({"football": {"phrases": "sports"}, "storms": {"phrases": "weather"}},
                    judge=lambda label: 3.0 if label in ("sports", "weather, storms") else -3.0)
    s = label_run(items, vocab_file, out=tmp_path / "run", lm=lm, encoder="hashing", k=1, concurrency=4)
    rows = _read(tmp_path / "run" / "labels.jsonl")
    assert [r["labels"] for r in rows] == [["sports"], ["weather, storms"]]
    assert rows[0]["phrases"] == ["sports"] and len(rows[0]["retrieval_labels"]) == 1
    assert s.tokens["infer"]["calls"] == 2 and s.tokens["rank"]["calls"] == 2
    assert any("concurrency 4 ignored" in w for w in s.warnings)
    assert s.cost_usd is None


def test_remote_style_concurrency_keeps_input_order_and_reports_failures(tmp_path, vocab_file):
    from zsl.runs.labeller import LabelSettings, TextLabeller

    lab = TextLabeller(_vocab(), LabelSettings(encoder="hashing", k=1, label_kind="topics", infer=False, rank=False,
                                               rank_top=5, retries=2))
    lab.uses_lm, lab.remote, lab.concurrency = True, True, 4
    rng = random.Random(1)
    attempts: dict[str, int] = {}

    class FakeProgram:
        use_infer = use_rank = False

        def __call__(self, text):
            time.sleep(rng.random() * 0.02)
            attempts[text] = attempts.get(text, 0) + 1
            if text == "t3" and attempts[text] < 2:
                raise TimeoutError("rate limited")
            if text == "t5":
                raise ValueError("the model answered nonsense")
            import dspy

            scores = np.zeros(5, dtype=np.float32)
            scores[int(text[1:]) % 5] = 1.0
            return dspy.Prediction(scores=scores, retrieval_scores=scores, phrases=[], notes=[],
                                   usage={"infer": {"calls": 1, "prompt_tokens": 10, "completion_tokens": 2}})

    lab.program = FakeProgram()
    lab._one.__func__  # noqa: B018 - the real retry path is used
    from zsl.data.files import Item

    out, usage = lab.label([Item(f"id{i}", f"t{i}") for i in range(12)], lambda n: None)
    assert [o["id"] if isinstance(o, dict) else "ERR" for o in out] == [f"id{i}" if i != 5 else "ERR" for i in range(12)]
    assert "nonsense" in out[5].reason and not out[5].retryable and attempts["t3"] == 2
    assert usage["infer"] == {"calls": 11, "prompt_tokens": 110, "completion_tokens": 22}


def _vocab():
    from zsl.vocab import LabelVocab

    return LabelVocab(TOPICS)


def test_items_failing_on_transient_errors_are_retried_by_rerunning_the_command(tmp_path, vocab_file, monkeypatch):
    from zsl.runs.labeller import TextLabeller

    items = tmp_path / "items.jsonl"
    write_items(items, 23)
    init, one = TextLabeller.__init__, TextLabeller._one
    failing, calls = set(), []

    def per_item_init(self, *a, **kw):  # retrieval through the per-item (LM) path, as with a remote LM
        init(self, *a, **kw)
        self.uses_lm = True

    def flaky_one(self, item):
        calls.append(item.id)
        if item.id == "item-12":
            raise ValueError("the model answered nonsense")  # permanent: never retried
        if item.id in failing:
            raise TimeoutError("rate limited")
        return one(self, item)

    monkeypatch.setattr(TextLabeller, "__init__", per_item_init)
    monkeypatch.setattr(TextLabeller, "_one", flaky_one)
    kw = {"encoder": "hashing", "infer": False, "rank": False, "k": 2, "chunk_size": 5}
    clean = label_run(items, vocab_file, out=tmp_path / "clean", **kw)
    assert clean.skipped == 1 and clean.retryable == 0 and not (tmp_path / "clean" / "chunks").exists()

    failing.update({"item-3", "item-7", "item-8", "item-21"})
    first = label_run(items, vocab_file, out=tmp_path / "run", **kw)
    errors = _read(tmp_path / "run" / "errors.jsonl")
    assert first.skipped == 5 and first.retryable == 4 and first.labelled == 18
    assert [(e["id"], e.get("retryable", False)) for e in errors] == [
        ("item-3", True), ("item-7", True), ("item-8", True), ("item-12", False), ("item-21", True)]
    assert (tmp_path / "run" / "chunks").is_dir()  # kept for the retry

    failing.clear()
    calls.clear()
    second = label_run(items, vocab_file, out=tmp_path / "run", **kw)
    assert calls == ["item-3", "item-7", "item-8", "item-21"]  # only the transient failures, in input order
    assert second.retryable == 0 and second.skipped == 1 and second.labelled == clean.labelled
    for name in ("labels.jsonl", "errors.jsonl"):
        assert (tmp_path / "run" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()
    assert not (tmp_path / "run" / "chunks").exists()
    calls.clear()
    assert label_run(items, vocab_file, out=tmp_path / "run", **kw).already_complete and calls == []


@pytest.mark.parametrize("name,content,match", [("empty.jsonl", "", "is empty"), ("blank.txt", "\n \n\n", "no records"),
                                                ("header.csv", "id,text\n", "no records")])
def test_an_input_without_records_is_refused_before_a_run_directory_exists(tmp_path, vocab_file, name, content,
                                                                           match):
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=match):
        label_run(tmp_path / name, vocab_file, out=tmp_path / "run", encoder="hashing", infer=False, rank=False)
    assert not (tmp_path / "run").exists()


def test_retry_call_backs_off_on_transient_errors_only():
    waits = []

    class RateLimitError(Exception):
        status_code = 429

    calls = []

    def flaky():
        calls.append(1)
        raise RateLimitError("slow down")

    with pytest.raises(RateLimitError):
        retry_call(flaky, retries=3, base_delay=1.0, sleep=waits.append, rng=random.Random(0))
    assert len(calls) == 4 and len(waits) == 3
    assert all(1.0 * 2**i <= w <= 1.5 * 2**i for i, w in enumerate(waits))
    with pytest.raises(KeyError):
        retry_call(lambda: {}["x"], sleep=waits.append)
    assert len(waits) == 3
    assert is_transient(TimeoutError()) and not is_transient(ValueError())


def test_estimate_extrapolates_tokens_and_time(tmp_path, vocab_file):
    items = tmp_path / "items.txt"
    items.write_text("".join(f"football match {i}\n" for i in range(40)), encoding="utf-8")
    lm = ScriptedLM({"football": {"phrases": "sports"}}, judge=lambda label: 1.0)
    est = estimate_run(items, vocab_file, sample=4, lm=lm, encoder="hashing", k=1)
    assert est["sampled"] == 4 and est["total"] == 40
    assert est["est_tokens"]["infer"]["calls"] == 40
    assert est["est_seconds"] == pytest.approx(est["seconds_per_item"] * 40)
    with pytest.raises(InputError, match="Unknown settings"):
        estimate_run(items, vocab_file, sample=1, temperature=0.3)
    assert not (tmp_path / "items.txt.zsl").exists()


def test_cli_label_run_dry_run_and_exit_codes(tmp_path, vocab_file, capsys):
    items = tmp_path / "items.jsonl"
    write_items(items, 12, bad_every=6)
    code = main(["label", str(items), "--labels", str(vocab_file), "--encoder", "hashing", "--no-infer", "--no-rank",
                 "-k", "1"])
    out, err = capsys.readouterr()
    assert code == 3 and ":6: malformed JSON" in err and "items.jsonl.zsl" in out
    assert (tmp_path / "items.jsonl.zsl" / "labels.jsonl").is_file()
    code = main(["label", str(items), "--labels", str(vocab_file), "--encoder", "hashing", "--no-infer", "--no-rank",
                 "-k", "1"])
    assert code == 3 and "already complete" in capsys.readouterr().out
    code = main(["label", str(items), "--labels", str(vocab_file), "--encoder", "hashing", "--no-infer", "--no-rank",
                 "-k", "2"])
    assert code == 2 and "k: 1 -> 2" in capsys.readouterr().err
    code = main(["label", str(items), "--labels", str(vocab_file), "--encoder", "hashing", "--no-infer", "--no-rank",
                 "--dry-run", "3", "--out", str(tmp_path / "dry")])
    out = capsys.readouterr().out
    assert code == 0 and "dry run: labelled 3 item(s)" in out and "12 records" in out and "local model" in out
    assert not (tmp_path / "dry").exists()


def test_image_folder_run_with_a_fake_backend(tmp_path):
    from PIL import Image

    from tests.helpers import ColourBackend

    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, colour in [("r.png", (250, 5, 5)), ("g.png", (5, 250, 5)), ("b.png", (5, 5, 250))]:
        Image.new("RGB", (32, 32), colour).save(folder / name)
    (folder / "broken.jpg").write_bytes(b"not an image")
    s = label_run(folder, ["red", "green", "blue"], out=tmp_path / "run", image_backend=ColourBackend(), k=1,
                  chunk_size=2)
    rows = _read(tmp_path / "run" / "labels.jsonl")
    assert {r["id"]: r["labels"][0] for r in rows} == {"r.png": "red", "g.png": "green", "b.png": "blue"}
    assert s.skipped == 1 and "broken.jpg" in _read(tmp_path / "run" / "errors.jsonl")[0]["reason"]


KILL_SCRIPT = """
import sys
from zsl.runs.label import label_run
label_run(sys.argv[1], sys.argv[2], out=sys.argv[3], encoder="hashing", infer=False, rank=False, k=3, chunk_size=200)
"""


def test_kill_9_at_several_points_then_resume_gives_identical_output(tmp_path, vocab_file):
    """A real subprocess is SIGKILLed mid-run (after 1, 4 and 9 chunks); resuming must match a clean run."""
    items = tmp_path / "items.jsonl"
    write_items(items, 6000, bad_every=97)
    script = tmp_path / "run_it.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    subprocess.run([sys.executable, str(script), str(items), str(vocab_file), str(tmp_path / "ref")], check=True,
                   env=env, timeout=300)
    rng = random.Random(7)
    for after in (1, 4, 9):
        out = tmp_path / f"run{after}"
        proc = subprocess.Popen([sys.executable, str(script), str(items), str(vocab_file), str(out)], env=env)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if len(list((out / "chunks").glob("*.jsonl"))) >= after:
                time.sleep(rng.random() * 0.05)
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (out / "summary.json").exists(), "the run finished before it could be killed"
        subprocess.run([sys.executable, str(script), str(items), str(vocab_file), str(out)], check=True, env=env,
                       timeout=300)
        for name in ("labels.jsonl", "errors.jsonl"):
            assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), (after, name)
