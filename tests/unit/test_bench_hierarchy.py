"""benchmarks.hierarchy (issue #29): the slice, the few-shot split, finished and missing LLM runs, the targets."""

from __future__ import annotations

import argparse
import json

import numpy as np

from benchmarks import hierarchy as h

TREE = [("Geography", None), ("Lakes", "Geography"), ("Africa (Lakes)", "Lakes"), ("Rivers", "Geography"),
        ("Arts", None), ("Music", "Arts"), ("Jazz", "Music"), ("Painting", "Arts")]
LEAVES = {"Africa (Lakes)": ["Geography", "Lakes", "Africa (Lakes)"], "Rivers": ["Geography", "Rivers"],
          "Jazz": ["Arts", "Music", "Jazz"], "Painting": ["Arts", "Painting"]}
WORDS = {"Africa (Lakes)": "lake victoria africa lakes water", "Rivers": "river nile flows rivers water",
         "Jazz": "jazz music saxophone swing", "Painting": "painting canvas oil painter arts"}


def _data(tmp_path, n=24):
    data = tmp_path / "hwv"
    data.mkdir()
    (data / "hwv_labels.jsonl").write_text("".join(json.dumps({"label": lab, "parent": par}) + "\n" for lab, par in TREE))
    leaves = list(LEAVES)
    docs = [{"id": f"d{i}", "text": f"{WORDS[leaves[i % 4]]} number {i}", "labels": LEAVES[leaves[i % 4]]}
            for i in range(n)]
    (data / "hwv_val.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    return data, docs


def test_slice_is_the_lead_runs_seeded_slice_in_file_order():
    got = h.slice_positions(1602)
    assert got == sorted(int(i) for i in np.random.default_rng(0).permutation(1602)[:300])
    assert len(got) == 300 and got == sorted(got)


def test_few_shot_split_is_seeded_nested_and_evaluates_the_same_rest():
    docs = [{"labels": [b, "x"]} for b in "abc" for _ in range(20)]
    two, rest2 = h.few_shot_split(docs, 2)
    eight, rest8 = h.few_shot_split(docs, 8)
    assert len(two) == 6 and len(eight) == 24 and set(two) <= set(eight)  # 2 per branch inside the 8
    assert rest2 == rest8 and not set(rest8) & set(eight) and len(rest8) == 60 - 24
    assert h.few_shot_split(docs, 2) == (two, rest2)
    by_branch = {b: sum(docs[i]["labels"][0] == b for i in two) for b in "abc"}
    assert by_branch == {"a": 2, "b": 2, "c": 2}


def _flat_run(folder, docs, vocab_labels):
    """A finished `zsl label` run whose scores put the right leaf first but its ancestors low."""
    folder.mkdir(parents=True)
    rows = []
    for d in docs:
        top = {lab: 0.1 for lab in vocab_labels}
        top.update({d["labels"][-1]: 0.9, "Painting" if d["labels"][0] == "Geography" else "Rivers": 0.5})
        best = sorted(top, key=lambda x: -top[x])[:2]
        rows.append({"id": d["id"], "text": d["text"], "labels": best, "scores": [top[x] for x in best],
                     "top_scores": top})
    (folder / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "manifest.json").write_text(json.dumps({"settings": {"k": 2}}))  # no tree settings: a flat run
    (folder / "summary.json").write_text(json.dumps({"seconds": 2.0 * len(docs), "labelled": len(docs)}))


def test_run_reads_finished_runs_prints_missing_commands_and_marks_targets(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZSL_ENCODER", "hashing")
    data, docs = _data(tmp_path)
    llm = tmp_path / "llm"
    _flat_run(llm / "hwv-val-300.run", docs, [lab for lab, _ in TREE])
    args = argparse.Namespace(data=str(data), out=str(tmp_path / "out"), encoder="hashing", llm=str(llm),
                              llm_flat=None, llm_tree=None, llm_top_down=None, no_few_shot=True, write=False)
    h.run(args)
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if line.startswith("| full program")]
    assert rows[0].startswith("| full program | flat | 24 |") and "2.0000 |" in rows[0]  # the run's seconds
    assert rows[1].startswith("| full program | flat run, tree applied after |")
    # the missing tree runs: the exact commands, with the flags that make them
    assert f"--out {llm / 'hwv-val-300.tree.run'}" in text
    assert "--tree-search top-down --out" in text and "--label-kind topics --top-scores 1186" in text
    assert "[n/a (run missing)] full program (slice): tree used" in text
    assert "[PASS] 100% consistent sets in path mode" in text
    assert (tmp_path / "out" / "hierarchy.md").read_text().startswith("`python -m benchmarks.hierarchy run")
    # a second run only decodes: the texts and label sets come from the cache
    cached = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "texts.hashing.npy" in " ".join(cached) or any(p.startswith("texts.") for p in cached)
    h.run(args)
    assert capsys.readouterr().out.split("Targets")[0] == text.split("Targets")[0]


def test_targets_fail_when_the_tree_does_not_help():
    m = {"levels": [50.0], "hp": 50.0, "hr": 50.0, "leaf": 10.0, "consistent": 100.0}
    rows = [h.Row("all", "retrieval only", "flat", 10, {**m, "hf1": 40.0, "consistent": 20.0}, 0.01),
            h.Row("all", "retrieval only", "tree", 10, {**m, "hf1": 43.0}, 0.01),
            h.Row("slice", "retrieval only", "flat", 5, {**m, "hf1": 40.0}, 0.01),
            h.Row("slice", "retrieval only", "tree", 5, {**m, "hf1": 46.0, "consistent": 99.0}, 0.01)]
    marks = "\n".join(h.targets(rows))
    assert "[FAIL] retrieval only (all): tree used >= 5 hF1 points above flat: 43.0 vs 40.0 (+3.0)" in marks
    assert "[PASS] retrieval only (slice)" in marks
    assert "[FAIL] 100% consistent sets in path mode: retrieval only/tree 99.0%" in marks


def test_a_run_made_in_another_tree_mode_is_refused(tmp_path, monkeypatch):
    import pytest

    monkeypatch.setenv("ZSL_ENCODER", "hashing")
    data, docs = _data(tmp_path)
    llm = tmp_path / "llm"
    run = llm / "hwv-val-300.run"
    _flat_run(run, docs, [lab for lab, _ in TREE])
    assert h.run_mode(run) == "flat"
    (run / "manifest.json").write_text(json.dumps({"settings": {"tree_output": "path", "settings": {
        "label_context": "ambiguous", "tree_blend": [0.5, 0.5], "tree_search": "flat"}}}))
    assert h.run_mode(run) == "tree"
    args = argparse.Namespace(data=str(data), out=str(tmp_path / "out"), encoder="hashing", llm=str(llm),
                              llm_flat=None, llm_tree=None, llm_top_down=None, no_few_shot=True, write=False)
    with pytest.raises(SystemExit, match="labelled in the 'tree' tree mode.*--tree-output flat --label-context none"):
        h.run(args)
