"""Label sets (#30): one notion of the predicted labels, the rules that choose them, old rows and old runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zsl.cli import main
from zsl.data.files import Item
from zsl.errors import InputError
from zsl.evaluation.evaluate import evaluate
from zsl.rows import build_rows, chosen_sets, meta_path, read_predictions
from zsl.runs.label import label_run
from zsl.runs.labeller import LabelSettings, resolve_rule
from zsl.scoring import DEFAULT_SET_RULE, SET_RULE_PARAMS, SetRule
from zsl.silver.data import read_silver
from zsl.vocab import LabelVocab

VOCAB = LabelVocab(["sports", "weather", "politics", "cooking"])
S = np.array([[0.90, 0.85, 0.10, 0.05],
              [0.20, 0.30, 0.95, 0.10],
              [0.40, 0.41, 0.39, 0.38],
              [0.10, 0.10, 0.10, 0.70]])
TEXTS = ["football final tonight", "storm warning for the coast", "the election campaign", "pasta recipe for dinner",
         "a tennis match in the rain", "the minister cooks", "sunny weekend ahead", "cup final and a vote"]


# -- the rules ------------------------------------------------------------------------------
@pytest.mark.parametrize("rule, expected", [
    (SetRule("topk", k=2), [[0, 1], [2, 1], [1, 0], [3, 0]]),
    (SetRule("relative", margin=0.1), [[0, 1], [2], [1, 0, 2, 3], [3]]),
    (SetRule("threshold", threshold=0.5), [[0, 1], [2], [], [3]]),
    (SetRule("threshold", threshold=0.5, min_labels=1), [[0, 1], [2], [1], [3]]),
    (SetRule("relative", margin=0.1, max_labels=2), [[0, 1], [2], [1, 0], [3]]),
    (SetRule("zscore", z=1.5), [[], [2], [], [3]]),
    (SetRule("fitted", thresholds=(0.8, 0.8, 0.9, 0.6)), [[0, 1], [2], [], [3]]),
    (SetRule("fitted", thresholds=(0.4,)), [[0, 1], [2], [1, 0], [3]]),
    (SetRule("fitted", thresholds=(0.4,), k=1), [[0], [2], [1], [3]]),  # within each item's gap set of 1
])
def test_each_rule_chooses_a_set_per_item_best_first(rule, expected):
    assert [c.tolist() for c, _ in chosen_sets(S, rule, 5)] == expected


def test_gap_keeps_the_labels_above_the_largest_drop_among_the_k_plus_1_best():
    s = np.array([[1.0, 0.75, 0.25, 0.0],      # drops .25 .5 .25: two labels
                  [0.5, 1.0, 0.875, 0.125],    # drops .125 .375 .375: the first largest, two labels
                  [0.25, 0.25, 0.25, 0.25]])   # no drop: the tie is kept whole
    assert [c.tolist() for c, _ in chosen_sets(s, SetRule("gap", k=3), 5)] == [[0, 1], [1, 2], [0, 1, 2, 3]]
    assert [c.tolist() for c, _ in chosen_sets(s, SetRule("gap", k=1), 5)] == [[0], [1], [0, 1, 2, 3]]
    assert SetRule("gap", k=3, max_labels=2).choose(s).sum(axis=1).tolist() == [2, 2, 2]
    assert SetRule("gap", k=3).choose(np.array([[0.3]])).tolist() == [[True]]


def test_every_rule_is_item_local_so_a_batch_gives_the_sets_of_its_items_one_by_one():
    rng = np.random.default_rng(0)
    s = rng.random((40, 9)).astype(np.float32)
    for rule in (SetRule("topk", k=3), SetRule("gap", k=3), SetRule("relative", margin=0.1), SetRule("zscore", z=1.0),
                 SetRule("threshold", threshold=0.7, min_labels=1, max_labels=3),
                 SetRule("fitted", thresholds=tuple(np.linspace(0.3, 0.9, 9)))):
        whole = rule.choose(s)
        assert all((rule.choose(s[i:i + 1])[0] == whole[i]).all() for i in range(len(s))), rule.name
        assert [c.tolist() for c, _ in chosen_sets(s, rule, 3)] == \
            [c.tolist() for i in range(len(s)) for c, _ in chosen_sets(s[i:i + 1], rule, 3)]


def test_a_rule_without_its_parameter_or_with_bad_bounds_is_refused_with_the_fix():
    with pytest.raises(InputError, match="needs its threshold.*--threshold"):
        SetRule("threshold")
    with pytest.raises(InputError, match="Unknown label-set rule 'top'"):
        SetRule("top", k=1)
    with pytest.raises(InputError, match="margin must be"):
        SetRule("relative", margin=-1.0)
    with pytest.raises(InputError, match="max_labels"):
        SetRule("relative", margin=0.1, min_labels=3, max_labels=2)
    with pytest.raises(InputError, match="fitted on another vocabulary"):
        SetRule("fitted", thresholds=(0.1, 0.2)).choose(S)
    with pytest.raises(InputError, match="fitted rule's k .* integer >= 1 or None"):
        SetRule("fitted", thresholds=(0.1,), k=0)


def test_fitted_thresholds_with_k_choose_within_the_items_gap_set_and_never_past_its_largest_drop():
    s = np.array([[0.90, 0.50, 0.45, 0.10],    # drops .40 .05 .35: the gap set is {0}
                  [0.90, 0.85, 0.50, 0.10]])   # drops .05 .35 .40: the gap set is {0, 1, 2}
    alone, within = SetRule("fitted", thresholds=(0.4,)), SetRule("fitted", thresholds=(0.4,), k=3)
    assert [c.tolist() for c, _ in chosen_sets(s, alone, 5)] == [[0, 1, 2], [0, 1, 2]]
    assert [c.tolist() for c, _ in chosen_sets(s, within, 5)] == [[0], [0, 1, 2]]
    # the thresholds still drop a weak label of the gap set
    bars = SetRule("fitted", thresholds=(0.4, 0.4, 0.6, 0.4), k=3)
    assert [c.tolist() for c, _ in chosen_sets(s, bars, 5)] == [[0], [0, 1]]


def test_the_fitted_rule_records_its_gap_bound_and_thresholds_alone_record_as_before():
    assert SetRule("fitted", thresholds=(0.5,)).record() == {
        "name": "fitted", "thresholds": [0.5], "min_labels": 0, "max_labels": None, "fitted": True}
    assert SetRule("fitted", thresholds=(0.5,), k=3).record()["k"] == 3


def test_rows_carry_the_chosen_set_with_aligned_scores_and_the_ranking_in_top_scores():
    items = [Item(str(i), t) for i, t in enumerate(TEXTS[:4])]
    rows = build_rows(items, S, VOCAB, k=2, rule=SetRule("relative", margin=0.1))
    assert [r["labels"] for r in rows] == [["sports", "weather"], ["politics"],
                                           ["weather", "sports", "politics", "cooking"], ["cooking"]]
    assert rows[0]["scores"] == [0.9, 0.85] and list(rows[1]["top_scores"]) == ["politics", "weather", "sports",
                                                                                 "cooking"]
    # --rule topk -k K gives today's rows exactly
    assert build_rows(items, S, VOCAB, k=2, rule=SetRule("topk", k=2)) == build_rows(items, S, VOCAB, k=2)


# -- settings ---------------------------------------------------------------------------------
def test_settings_pick_the_rule_k_alone_is_todays_topk_and_fitted_thresholds_come_before_the_default():
    fitted = SetRule("fitted", thresholds=(0.5,) * 4)
    assert resolve_rule(LabelSettings(), None)[0].name == DEFAULT_SET_RULE
    default = resolve_rule(LabelSettings(), None)[0]
    param, value = SET_RULE_PARAMS[DEFAULT_SET_RULE]
    assert getattr(default, param) == value and default.min_labels == 1
    assert resolve_rule(LabelSettings(k=3), None)[0] == SetRule("topk", k=3)
    assert resolve_rule(LabelSettings(z=2.0), None)[0] == SetRule("zscore", z=2.0, min_labels=1)
    assert resolve_rule(LabelSettings(), fitted) == (fitted, [])
    assert resolve_rule(LabelSettings(max_labels=2), fitted)[0].max_labels == 2
    rule, notes = resolve_rule(LabelSettings(rule="threshold", threshold=0.3), fitted)
    assert rule == SetRule("threshold", threshold=0.3, min_labels=1) and "overrides the thresholds" in notes[0]
    # -k stays the ranking's depth with another rule
    assert resolve_rule(LabelSettings(rule="relative", k=3), None)[0].name == "relative"
    with pytest.raises(InputError, match="--margin is the parameter of --rule relative, not of --rule zscore"):
        LabelSettings(rule="zscore", margin=0.1).check()
    with pytest.raises(InputError, match="belong to different rules"):
        LabelSettings(margin=0.1, z=2.0).check()
    with pytest.raises(InputError, match="max_labels"):
        LabelSettings(min_labels=3, max_labels=1).check()


# -- runs -----------------------------------------------------------------------------------
def _items(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": f"i{j}", "text": t, "labels": [VOCAB[j % 4]]}) + "\n"
                             for j, t in enumerate(TEXTS)), encoding="utf-8")
    return items


def _run(tmp_path, name, **kw):
    label_run(_items(tmp_path), VOCAB, out=tmp_path / name, encoder="hashing", infer=False, rank=False, **kw)
    return tmp_path / name


def _rows(run):
    return [json.loads(x) for x in (run / "labels.jsonl").read_text(encoding="utf-8").splitlines()]


def test_the_default_rule_chooses_the_rows_sets_and_is_recorded_in_the_manifest_and_the_sidecar(tmp_path):
    run = _run(tmp_path, "run")
    rule, _ = resolve_rule(LabelSettings(), None)
    assert json.loads((run / "manifest.json").read_text())["settings"]["rule"] == rule.record()
    meta = json.loads(meta_path(run / "labels.jsonl").read_text())
    assert meta["rule"] == rule.record() and meta["rows"]["format"] == 3
    for row in _rows(run):  # the set is the rule's, from the row's own scores (all 4 labels kept)
        scores = np.array([[row["top_scores"][lab] for lab in VOCAB.labels]])
        assert set(row["labels"]) == {VOCAB[int(j)] for j in np.flatnonzero(rule.choose(scores)[0])}
        assert row["scores"] == [row["top_scores"][lab] for lab in row["labels"]]
        assert row["scores"] == sorted(row["scores"], reverse=True) and row["labels"]


def test_topk_k_is_todays_rows_and_every_rule_gives_the_same_bytes_however_the_input_is_chunked(tmp_path):
    assert _rows(_run(tmp_path, "k2", k=2)) == _rows(_run(tmp_path, "topk2", rule="topk", k=2))
    assert all(len(r["labels"]) == 2 for r in _rows(tmp_path / "k2"))
    for rule in ({}, {"rule": "zscore", "z": 1.0}, {"rule": "threshold", "threshold": 0.2, "max_labels": 2}):
        name = "-".join(map(str, rule.values())) or "default"
        one = _run(tmp_path, f"{name}-1", chunk_size=1, **rule)
        big = _run(tmp_path, f"{name}-big", chunk_size=1000, **rule)
        assert (one / "labels.jsonl").read_bytes() == (big / "labels.jsonl").read_bytes()


def test_a_run_written_before_label_set_rules_or_under_another_rule_is_refused_on_resume(tmp_path):
    run = _run(tmp_path, "run", k=2)
    # a manifest of zsl before #30: the same settings, without the rule
    manifest = json.loads((run / "manifest.json").read_text())
    del manifest["settings"]["rule"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"before label-set rules: its rows' 'labels' are the 2 best.*sets would "
                                         r"differ.*--fresh.*another --out"):
        _run(tmp_path, "run")  # the default rule
    with pytest.raises(InputError, match=r"before label-set rules.*rows of another format.*--fresh.*another --out"):
        _run(tmp_path, "run", k=2)  # the same top 2, but not the same row format
    assert _rows(_run(tmp_path, "run", k=2, fresh=True))  # --fresh labels it again under the rule
    with pytest.raises(InputError, match=r"chosen by the rule .*topk.*asks for .*relative.*sets would differ.*--fresh"):
        _run(tmp_path, "run", k=2, rule="relative", margin=0.05)  # the rule alone changed: said so
    with pytest.raises(InputError, match=r"different inputs or settings: .*settings.k: 2 -> 5.*settings.rule.name"):
        _run(tmp_path, "run", rule="relative", margin=0.05)  # k too: every change listed


def test_cli_label_takes_the_rule_flags_and_refuses_a_parameter_of_another_rule(tmp_path, capsys):
    items = _items(tmp_path)
    vocab = tmp_path / "labels.txt"
    vocab.write_text("\n".join(VOCAB.labels) + "\n", encoding="utf-8")
    base = ["label", str(items), "--labels", str(vocab), "--encoder", "hashing", "--no-infer", "--no-rank"]
    assert main([*base, "--out", str(tmp_path / "t"), "--threshold", "0.2", "--max-labels", "2"]) == 0
    rule = json.loads((tmp_path / "t" / "manifest.json").read_text())["settings"]["rule"]
    assert rule == {"name": "threshold", "threshold": 0.2, "min_labels": 1, "max_labels": 2, "fitted": False}
    assert all(1 <= len(r["labels"]) <= 2 for r in _rows(tmp_path / "t"))
    assert main([*base, "--out", str(tmp_path / "r"), "--rule", "relative", "--margin", "0.5", "--min-labels",
                 "2"]) == 0
    assert all(len(r["labels"]) >= 2 for r in _rows(tmp_path / "r"))
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "bad"), "--rule", "topk", "--z", "2"]) == 2
    assert "--z is the parameter of --rule zscore, not of --rule topk" in capsys.readouterr().err


# -- rows written before this change read as before -----------------------------------------------
def _old_run_rows(tmp_path, fmt):
    """Rows of zsl before #30 (format 2: labels = the 2 best, a fitted set in above_threshold; format 1: no
    top_scores), with their sidecar, written by hand."""
    rows = [{"id": "a", "text": "x", "labels": ["sports", "weather"], "scores": [0.9, 0.85],
             "top_scores": {"sports": 0.9, "weather": 0.85, "politics": 0.1, "cooking": 0.05},
             "above_threshold": ["sports"], "gold": ["sports"]},
            {"id": "b", "text": "y", "labels": ["politics", "weather"], "scores": [0.95, 0.3],
             "top_scores": {"politics": 0.95, "weather": 0.3, "sports": 0.2, "cooking": 0.1},
             "above_threshold": ["politics"], "gold": ["politics"]}]
    if fmt == 1:
        rows = [{k: v for k, v in r.items() if k not in ("top_scores", "above_threshold")} for r in rows]
    path = tmp_path / f"format{fmt}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    meta = {"zsl_silver": 1, "vocab": {"labels": VOCAB.labels, "descriptions": None, "name": "", "hash": VOCAB.hash},
            "rule": {"name": "top_k", "k": 2}, "provenance": {}, "n_items": 2}
    if fmt == 2:
        meta["rows"] = {"format": 2, "k": 2, "top_scores": 4, "vocab_size": 4}
    meta_path(path).write_text(json.dumps(meta), encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", [1, 2])
def test_rows_of_formats_1_and_2_read_as_before_their_labels_are_the_prediction(tmp_path, fmt):
    path = _old_run_rows(tmp_path, fmt)
    assert [p.chosen for p in read_predictions(path)] == [("sports", "weather"), ("politics", "weather")]
    report = evaluate(path)
    assert report.metrics["micro_precision"] == 0.5 and report.metrics["micro_recall"] == 1.0
    silver = read_silver(path)
    assert silver.labels.tolist() == [[1, 1, 0, 0], [0, 1, 1, 0]]
    if fmt == 2:  # soft targets: TopK(2) over top_scores, as before (both kept labels at or above 0.5)
        assert (silver.confidence[silver.labels == 1] >= 0.5).all()
        assert (silver.confidence[silver.labels == 0] < 0.5).all()


def test_silver_rows_of_a_set_rule_give_soft_targets_around_each_items_own_set(tmp_path):
    run = _run(tmp_path, "run", rule="threshold", threshold=0.3, min_labels=0)
    silver = read_silver(run / "labels.jsonl")
    rows = _rows(run)
    assert [{VOCAB[int(j)] for j in np.flatnonzero(r)} for r in silver.labels] == [set(r["labels"]) for r in rows]
    assert (silver.confidence[silver.labels == 1] >= 0.5).all()
    assert (silver.confidence[silver.labels == 0] < 0.5).all()
    assert silver.rule["confidence"]["rule"] == "label_sets"
