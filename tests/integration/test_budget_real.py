"""Budgeted labelling on the real embedded models: the LLM rows are the program's own output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_budget_run_with_the_real_llm_keeps_its_rows_and_resumes_for_free(tmp_path):
    import zsl.examples
    from zsl import budget_run, label_run

    ex = Path(zsl.examples.__file__).parent
    items, vocab = ex / "news_topics.jsonl", ex / "news_topics_labels.txt"
    s = budget_run(items, vocab, budget=4, rounds=2, out=tmp_path / "run", k=1, label_kind="topics")
    rows = [json.loads(x) for x in (tmp_path / "run" / "labels.jsonl").read_text().splitlines()]
    assert s.by_source["llm"] == 4 and sum(s.by_source.values()) == len(rows) == 16
    if "retrieval" in s.by_source:  # no student good enough from 4 items: the last round says why
        assert "retrieval scores kept" in s.rounds[-1]["note"] and "student" not in s.by_source
    llm_rows = [r for r in rows if r["source"] == "llm"]
    assert all(r["phrases"] for r in llm_rows)  # real Infer phrases, not retrieval-only rows
    # the same program on those items alone, through the ordinary run, says the same
    sub = tmp_path / "sub.jsonl"
    src = {json.loads(x)["id"]: x for x in items.read_text().splitlines() if x.strip()}
    sub.write_text("".join(src[r["id"]] + "\n" for r in llm_rows))
    label_run(sub, vocab, out=tmp_path / "plain", k=1, label_kind="topics")
    plain = [json.loads(x) for x in (tmp_path / "plain" / "labels.jsonl").read_text().splitlines()]
    assert [r["labels"] for r in plain] == [r["labels"] for r in llm_rows]
    # the rest (student or retrieval) beats chance: at least a third of its top labels are gold (22 topics)
    rest = [r for r in rows if r["source"] != "llm"]
    assert sum(r["labels"][0] in r["gold"] for r in rest) >= len(rest) / 3
    again = budget_run(items, vocab, budget=6, rounds=2, out=tmp_path / "run", k=1, label_kind="topics")
    assert again.reused_llm == 4 and again.llm_items == 6 and again.by_source["llm"] == 6
