"""Helpers of the benchmark scripts that decide what is compared: example sampling, fixed weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.fewshot import sample_examples
from benchmarks.irera import parse_weights

POOL = [{"text": f"t{i}", "labels": labels} for i, labels in enumerate(
    [["a"], ["a", "b"], ["b"], ["a"], ["c"], ["b", "zz"], ["a"], ["b"]])]


def test_sample_examples_takes_k_per_label_seeded_and_keeps_what_exists():
    ex = sample_examples(POOL, ["a", "b", "c"], 2, seed=0)
    texts = [t for t, _ in ex]
    assert len(texts) == len(set(texts))  # a row drawn for two labels is kept once
    counts = {lab: sum(lab in ls for _, ls in ex) for lab in "abc"}
    assert counts["a"] >= 2 and counts["b"] >= 2 and counts["c"] == 1  # 'c' has one row: it takes what exists
    assert all("zz" not in ls for _, ls in ex)  # labels outside the vocabulary are dropped
    assert sample_examples(POOL, ["a", "b", "c"], 2, seed=0) == ex  # seeded
    assert sample_examples(POOL, ["a", "b", "c"], 0, seed=0) == []
    big = sample_examples(POOL, ["a", "b", "c"], 100, seed=3)
    assert sorted(t for t, _ in big) == sorted(r["text"] for r in POOL)  # k beyond what exists: all of it


def test_parse_weights():
    assert parse_weights("text_weight=0.5,rank_weight=0.3,prior_weight=0,rank_top=30") == {
        "text_weight": 0.5, "rank_weight": 0.3, "prior_weight": 0.0, "rank_top": 30}
    with pytest.raises(SystemExit, match="missing rank_top"):
        parse_weights("text_weight=0.5,rank_weight=0.3,prior_weight=0")
    with pytest.raises(SystemExit, match="expected"):
        parse_weights("tw=0.5")


def test_results_go_only_into_the_zsl_checkout_the_benchmarks_run_from(tmp_path, monkeypatch):
    import benchmarks

    checkout = Path(__file__).resolve().parents[2]
    assert benchmarks.ROOT == checkout and benchmarks.checkout_file("BENCHMARKS.md") == checkout / "BENCHMARKS.md"
    monkeypatch.setattr(benchmarks, "ROOT", tmp_path)  # a copied benchmarks/ folder: no zsl checkout around it
    with pytest.raises(SystemExit, match=r"is not one.*Fix: run `python -m benchmarks.<name>` from a checkout"):
        benchmarks.write_section("x", "a table")
    assert list(tmp_path.iterdir()) == []
    # an explicit file is written wherever it is
    target = tmp_path / "B.md"
    assert benchmarks.write_section("x", "a table", path=target) == target
    assert "<!-- x:start -->\na table\n<!-- x:end -->" in target.read_text(encoding="utf-8")


def test_the_topdown_prefix_table_reports_the_speed_up_and_whether_the_scores_agree():
    from benchmarks.topdown_prefix import render

    kept = {"arm": "kept", "docs": 3, "s_per_doc": 25.0, "tokens_per_doc": 1000.0, "checksum": -1.5}
    cleared = {"arm": "cleared", "docs": 3, "s_per_doc": 100.0, "tokens_per_doc": 4000.0, "checksum": -1.5}
    text = render([kept, cleared], "cmd", "machine")
    assert "Speed-up 4.0x" in text and "are identical" in text
    assert "| the prefix evaluated on every call (before) | 100.0 | 4,000 |" in text
    assert "are DIFFERENT" in render([kept, {**cleared, "checksum": -1.6}], "cmd", "machine")
