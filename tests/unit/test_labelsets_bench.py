"""benchmarks.labelsets (#30): example draws, finished-run reading, the LLM part on a recorded run."""

from __future__ import annotations

import argparse
import json

import numpy as np

from benchmarks.labelsets import draw_examples, llm_part, read_run, set_metrics, targets
from zsl.vocab import LabelVocab

VOCAB = LabelVocab(["joy", "anger", "neutral"])


def test_draw_examples_is_seeded_and_takes_n_per_label():
    rows = [{"labels": [lab]} for lab in ["joy"] * 5 + ["anger"] * 5 + ["neutral"] * 5]
    idx = draw_examples(rows, VOCAB, 2)
    assert idx == draw_examples(rows, VOCAB, 2) and len(idx) == len(set(idx)) == 6
    assert sorted(rows[i]["labels"][0] for i in idx) == ["anger"] * 2 + ["joy"] * 2 + ["neutral"] * 2
    assert len(draw_examples(rows, VOCAB, 99)) == 15  # no more than exist


def test_set_metrics():
    y = np.array([[1, 0, 0], [0, 1, 0]])
    m = set_metrics(y, np.array([[1, 1, 0], [0, 0, 0]]))
    assert m["micro"] == 50.0 and m["per_item"] == 1.0 and round(m["example"], 1) == 33.3


def _run_dir(tmp_path, finished: bool):
    rng = np.random.default_rng(0)
    items, rows = [], []
    for i in range(40):
        lab = ["joy", "anger", "neutral"][i % 3]
        items.append({"id": str(i), "text": f"{lab} text number {i}", "labels": [lab]})
        s = rng.random(3) * 0.3
        s[i % 3] += 0.3 if lab != "neutral" else 0.0  # the LLM never says yes to neutral
        rows.append({"id": str(i), "labels": ["joy"], "top_scores": dict(zip(VOCAB, s.round(4).tolist()))})
    (tmp_path / "goemotions-dev-200.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    run = tmp_path / "goemotions-dev-200.run"
    run.mkdir()
    (run / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if finished:
        (run / "summary.json").write_text("{}")
    return run


def test_unfinished_runs_are_not_read_and_the_command_is_given(tmp_path):
    run = _run_dir(tmp_path, finished=False)
    assert read_run(run, VOCAB) is None
    args = argparse.Namespace(llm_dir=str(tmp_path), encoder="hashing", out=str(tmp_path / "cache"))
    msg = llm_part(args, "goemotions", {"vocab": VOCAB, "slice": "goemotions-dev-200"})
    assert isinstance(msg, str) and "zsl label goemotions-dev-200.jsonl" in msg


def test_llm_part_replaces_the_recorded_catch_all_score(tmp_path):
    _run_dir(tmp_path, finished=True)
    args = argparse.Namespace(llm_dir=str(tmp_path), encoder="hashing", out=str(tmp_path / "cache"))
    res = llm_part(args, "goemotions", {"vocab": VOCAB, "slice": "goemotions-dev-200"})
    assert res["top-1"]["ca_recall"] < res["fitted +ca (8/label, cross-fit)"]["ca_recall"]
    assert {"top-1 +ca", "fitted (2/label, cross-fit)", "fitted, thresholds alone +ca (8/label, cross-fit)"} <= set(res)
    checks = targets("goemotions", "LLM", res, True)
    # the default rule, the two other label-free rules, the fitted rule, neutral zero-shot and with 8 examples/label
    assert len(checks) == 1 + 2 + 1 + 2 and all(isinstance(ok, bool) for _, ok, _ in checks)
    assert "vs the same program without catch-all handling" in checks[-1][0]
    # that pivot is in the LLM scores' units: neutral (no evidence) wins the items with the least evidence
    assert res["top-1 +ca"]["ca_recall"] > res["top-1"]["ca_recall"]
    assert checks[0][0].startswith("goemotions LLM: default rule `gap (k 3) +ca`")


def test_llm_fitted_rows_use_the_llm_scores_of_the_train_examples_when_they_exist(tmp_path):
    _run_dir(tmp_path, finished=True)
    train = [{"id": f"t{i}", "text": f"train {i}", "labels": [["joy", "anger", "neutral"][i % 3]]} for i in range(30)]
    ds = {"vocab": VOCAB, "slice": "goemotions-dev-200", "train": train}
    args = argparse.Namespace(llm_dir=str(tmp_path), encoder="hashing", out=str(tmp_path / "cache"))
    before = llm_part(args, "goemotions", ds)
    assert not any(k.endswith(" ex)") for k in before)  # no train-example run yet: cross-fit rows only
    shots = tmp_path / "goemotions-train-shots.run"
    shots.mkdir()
    rng = np.random.default_rng(1)
    rows = []
    for r in train:  # the examples' LLM scores: their own label well above the rest
        s = rng.random(3) * 0.3
        s[VOCAB.index(r["labels"][0])] += 0.3
        rows.append({"id": r["id"], "labels": r["labels"], "top_scores": dict(zip(VOCAB, s.round(4).tolist()))})
    (shots / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (shots / "summary.json").write_text("{}")
    res = llm_part(args, "goemotions", ds)
    assert {"fitted (2/label, 6 ex)", "fitted +ca (8/label, 24 ex)"} <= set(res)
    eight = [c for c in targets("goemotions", "LLM", res, True) if "8 examples/label" in c[0]]
    assert eight[0][2].startswith(f"{res['fitted +ca (8/label, 24 ex)']['micro']:.1f} vs")  # these, not the cross-fit
