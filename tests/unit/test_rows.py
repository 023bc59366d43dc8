"""The labels.jsonl row format: top scores kept, soft targets from them, mAP from them, old and foreign files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zsl.errors import InputError
from zsl.evaluation.evaluate import evaluate
from zsl.rows import default_top_scores, meta_path, run_meta
from zsl.runs.label import label_run
from zsl.silver.data import read_silver
from zsl.student.classifier import StudentClassifier, distill_file
from zsl.vocab import LabelVocab

LABELS = ["red", "green", "blue"]
TEXTS = ["a red apple", "red cherries", "green grass", "green leaves", "a blue sky", "the blue sea"]


def _write_run_rows(path, top_scores):
    """labels.jsonl rows as zsl label writes them (k = 1, every label's score kept) and their sidecar."""
    vocab = LabelVocab(LABELS)
    rows = []
    for i, (text, top) in enumerate(zip(TEXTS, top_scores, strict=True)):
        best = max(top, key=top.get)
        rows.append({"id": str(i), "text": text, "labels": [best], "scores": [top[best]],
                     "top_scores": dict(sorted(top.items(), key=lambda kv: -kv[1]))})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    meta = run_meta(vocab, k=1, top_scores=3, provenance={"encoder": "hashing"}, n_items=len(rows))
    meta_path(path).write_text(json.dumps(meta), encoding="utf-8")
    return path


SHARP = [{"red": 0.9, "green": 0.1, "blue": 0.1}, {"red": 0.8, "green": 0.2, "blue": 0.1},
         {"red": 0.1, "green": 0.9, "blue": 0.2}, {"red": 0.2, "green": 0.8, "blue": 0.1},
         {"red": 0.1, "green": 0.1, "blue": 0.9}, {"red": 0.2, "green": 0.1, "blue": 0.8}]
# the same kept labels and kept scores; only the scores below the kept label differ
BLURRED = [{**row, **{lab: 0.75 for lab in row if row[lab] < 0.5}} for row in SHARP]


def test_run_rows_keep_the_top_scores_and_the_sidecar_describes_them(tmp_path):
    items = tmp_path / "items.txt"
    items.write_text("".join(t + "\n" for t in TEXTS), encoding="utf-8")
    label_run(items, LABELS, out=tmp_path / "run", encoder="hashing", infer=False, rank=False, k=1)
    rows = [json.loads(x) for x in (tmp_path / "run" / "labels.jsonl").read_text().splitlines()]
    assert all(next(iter(r["top_scores"])) == r["labels"][0] and len(r["top_scores"]) == 3 for r in rows)
    assert all(r["top_scores"][r["labels"][0]] == r["scores"][0] for r in rows)
    meta = json.loads((tmp_path / "run" / "labels.jsonl.meta.json").read_text())
    assert meta["rows"] == {"format": 3, "k": 1, "top_scores": 3, "vocab_size": 3}
    topk = {"name": "topk", "k": 1, "min_labels": 0, "max_labels": None, "fitted": False}
    assert meta["rule"] == topk  # k alone means today's rows: the k best labels
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["settings"]["top_scores"] == 3 and manifest["settings"]["rule"] == topk
    label_run(items, LABELS, out=tmp_path / "two", encoder="hashing", infer=False, rank=False, k=1, top_scores=2)
    assert all(len(json.loads(x)["top_scores"]) == 2 for x in (tmp_path / "two" / "labels.jsonl").read_text().splitlines())
    with pytest.raises(InputError, match="top_scores must be >= k"):
        label_run(items, LABELS, out=tmp_path / "bad", encoder="hashing", infer=False, rank=False, k=2, top_scores=1)
    assert default_top_scores(5, 28) == 28 and default_top_scores(5, 500) == 50 and default_top_scores(60, 500) == 60


def test_soft_targets_come_from_the_stored_scores_and_hard_ones_from_the_labels(tmp_path):
    a = _write_run_rows(tmp_path / "a.jsonl", SHARP)
    b = _write_run_rows(tmp_path / "b.jsonl", BLURRED)
    sa, sb = read_silver(a), read_silver(b)
    np.testing.assert_array_equal(sa.labels, sb.labels)
    assert not np.allclose(sa.confidence, sb.confidence)  # the scores survive as soft targets
    assert ((sa.confidence >= 0.5) == sa.labels.astype(bool)).all()
    assert sa.rule["confidence"]["rule"] == "top_k"
    params = {"encoder": "hashing", "epochs": 30, "learning_rate": 0.05, "random_state": 0}
    probe = ["a red apple", "green leaves", "the blue sea", "grass"]

    def student(path, targets, name):
        distill_file(path, tmp_path / name, targets=targets, **params)
        return StudentClassifier.load(tmp_path / name).predict_proba(probe)

    assert not np.allclose(student(a, "soft", "sa"), student(b, "soft", "sb"), atol=1e-4)
    np.testing.assert_allclose(student(a, "hard", "ha"), student(b, "hard", "hb"), atol=1e-6)


def test_eval_ranks_the_stored_top_scores_not_only_the_kept_labels(tmp_path):
    path = _write_run_rows(tmp_path / "labels.jsonl", SHARP)
    gold = {"0": ["green"], "2": ["green"], "4": ["blue"]}
    r = evaluate(path, gold, k=(1, 2, 3))
    assert r.k == [1, 2, 3] and r.skipped_k == [] and r.labels_kept == (3, 3)
    assert r.metrics["rp@1"] == pytest.approx(2 / 3) and r.metrics["rp@3"] == 1.0
    assert "every one of the 3 labels" in r.notes[0] and "lower bound" not in " ".join(r.notes)
    # the same rows without top_scores: only the kept label is ranked, as before
    rows = [{k: v for k, v in json.loads(x).items() if k != "top_scores"} for x in path.read_text().splitlines()]
    old = evaluate(rows, gold, k=(1, 2))
    assert old.skipped_k == [2] and "truncated to the kept labels" in old.notes[0]


def test_old_rows_still_read_and_foreign_rows_name_the_missing_field(tmp_path):
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps({"id": "1", "text": "t", "labels": ["red"], "scores": [0.9]}) + "\n", encoding="utf-8")
    back = read_silver(old, vocab=LABELS)
    assert back.labels.tolist() == [[1, 0, 0]] and back.confidence.tolist() == [[1.0, 0.0, 0.0]]
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text(json.dumps({"id": "1", "text": "t", "labels": ["red"], "probs": [0.9]}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"foreign.jsonl:1: missing 'scores'.*zsl label INPUT --labels VOCAB --out"):
        read_silver(foreign, vocab=LABELS)
    with pytest.raises(InputError, match=r"missing 'labels'.*zsl label"):
        foreign.write_text(json.dumps({"id": "1", "text": "t"}) + "\n", encoding="utf-8")
        read_silver(foreign, vocab=LABELS)
    with pytest.raises(InputError, match=r"'top_scores' must map labels to finite numbers"):
        foreign.write_text(json.dumps({"id": "1", "text": "t", "labels": ["red"], "scores": [0.9],
                                       "top_scores": {"red": "high"}}) + "\n", encoding="utf-8")
        read_silver(foreign, vocab=LABELS)


# -- non-finite scores never reach labels.jsonl (issue #26, S7) --------------------------------------------------
def test_make_row_refuses_non_finite_scores_naming_the_item():
    from zsl.data.files import Item
    from zsl.rows import make_row

    vocab = LabelVocab(LABELS)
    row = make_row(Item("a", "x"), vocab, np.array([0, 1]), np.array([0.9, 0.2]), k=1)
    assert row["labels"] == ["red"]
    for bad in (np.nan, np.inf):
        with pytest.raises(InputError, match=r"item b: the model gave 1 score\(s\) that are NaN or infinite .*'green'"):
            make_row(Item("b", "x"), vocab, np.array([0, 1]), np.array([0.9, bad]), k=1)


@pytest.mark.parametrize("per_item", [False, True])
def test_an_item_a_damaged_model_scores_nan_is_reported_and_the_run_goes_on(tmp_path, per_item):
    """A student loaded in memory (whose weights no load check saw) gives NaN for one item: that item goes
    to errors.jsonl naming the student, every other item is labelled, and labels.jsonl stays valid JSON."""
    from zsl.scoring import TopK

    texts = [f"{w} {i}" for i in range(6) for w in TEXTS]
    enc_scores = np.array([[t.count(lab) for lab in LABELS] for t in texts], dtype=np.float32) + 0.01
    from zsl.silver.data import make_silver, write_silver

    silver = write_silver(make_silver(enc_scores, LabelVocab(LABELS), TopK(k=1), texts=texts), tmp_path / "s.jsonl")
    distill_file(silver, tmp_path / "student", encoder="hashing", epochs=5)
    student = StudentClassifier.load(tmp_path / "student")
    plain = student.score

    def damaged(items):
        out = plain(items)
        out[[i for i, t in enumerate(items) if "cherries" in t]] = np.nan
        return out

    student.score = damaged
    if per_item:  # the path of scorers with an LLM step: one item at a time through explain()
        student.uses_lm = True
    items = tmp_path / "items.txt"
    items.write_text("".join(t + "\n" for t in TEXTS), encoding="utf-8")
    summary = label_run(items, None, model=student, out=tmp_path / "run", k=1)
    assert summary.labelled == 5 and summary.skipped == 1
    rows = (tmp_path / "run" / "labels.jsonl").read_text(encoding="utf-8")
    assert "NaN" not in rows and all(json.loads(x)["text"] != "red cherries" for x in rows.splitlines())
    errors = [json.loads(x) for x in (tmp_path / "run" / "errors.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(errors) == 1 and "NaN or infinite" in errors[0]["reason"] and "the student" in errors[0]["reason"]


def test_run_rows_and_silver_rows_write_scores_through_the_one_policy_in_rows():
    """Smell 5 of the December 7 review: two writers of one row concept, each with its own digits and cut-offs."""
    from zsl.data.files import Item
    from zsl.rows import RUN_ROWS, SILVER_ROWS, build_rows
    from zsl.silver.data import make_silver, silver_rows

    assert (RUN_ROWS.digits, RUN_ROWS.full_up_to, RUN_ROWS.default_kept) == (4, 50, 50)
    assert (SILVER_ROWS.digits, SILVER_ROWS.full_up_to, SILVER_ROWS.default_kept) == (6, 1000, 100)
    assert [RUN_ROWS.kept(n, 5) for n in (28, 500)] == [28, 50] and RUN_ROWS.kept(500, 60) == 60
    assert [SILVER_ROWS.kept(n) for n in (28, 1000, 1001)] == [28, 1000, 100]
    s = 0.123456789
    (run_row,) = build_rows([Item("a", "t")], np.array([[s, 0.5]]), LabelVocab(["x", "y"]), k=1)
    assert run_row["top_scores"]["x"] == RUN_ROWS.rounded(s) == 0.1235
    (silver_row,) = silver_rows(make_silver(np.array([[s, 0.5]], dtype=np.float64), LabelVocab(["x", "y"]), ids=["a"]))
    assert silver_row["scores"]["x"] == SILVER_ROWS.rounded(np.float32(s)) == round(float(np.float32(s)), 6)
