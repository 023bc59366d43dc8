"""`zsl eval` on a vocabulary with a tree (issue #29): per-level and hierarchical metrics, gold labels outside
the tree, the per-level plot, and a 100,000-node tree labelled and evaluated."""

import json
import time

import numpy as np
import pytest

from zsl.cli import main
from zsl.evaluation.evaluate import evaluate
from zsl.evaluation.metrics import hierarchical_metrics
from zsl.evaluation.report import write_report
from zsl.taxonomy import Taxonomy
from zsl.vocab import LabelVocab

# Geo (0) > Water (1) > Lakes (2), Seas (3); Geo > Land (4); Maths (5) > Algebra (6)
LABELS = ["Geo", "Water", "Lakes", "Seas", "Land", "Maths", "Algebra"]
PARENTS = [None, "Geo", "Water", "Water", "Geo", None, "Maths"]
TREE = LabelVocab(LABELS, parents=PARENTS)


def _rows(*preds):
    return [{"id": str(i), "labels": labs, "scores": [1.0 - 0.1 * j for j in range(len(labs))]}
            for i, labs in enumerate(preds)]


def test_known_answer_hierarchical_metrics():
    t = TREE.tree
    gold = [np.array([0, 1, 2]), np.array([5, 6]), np.array([0, 4])]
    pred = [np.array([3]), np.array([5, 6]), np.array([1])]  # a sibling leaf; exact; a wrong branch, no parent
    m = hierarchical_metrics(t, gold, pred)
    # closed: {0,1,3} vs {0,1,2}: 2 hits of 3; {5,6}: 2 of 2; {0,1} vs {0,4}: 1 of 2 -> 5/7 and 5/7
    assert m["hierarchical_precision"] == pytest.approx(5 / 7) and m["hierarchical_recall"] == pytest.approx(5 / 7)
    assert m["hierarchical_f1"] == pytest.approx(5 / 7)
    # example-F1 on the sets as given: 0, 1, 0
    assert m["example_f1"] == pytest.approx(1 / 3)
    assert m["leaf_accuracy"] == pytest.approx(1 / 3) and m["consistent_share"] == pytest.approx(1 / 3)
    lv = {x["level"]: x for x in m["levels"]}
    assert [lv[d]["items"] for d in range(3)] == [3, 3, 1]
    assert lv[0]["accuracy"] == 1.0  # every closed prediction has the right root
    assert lv[1]["accuracy"] == pytest.approx(2 / 3)  # Water right, Algebra right, Water instead of Land
    assert lv[2]["accuracy"] == 0.0 and lv[2]["micro_f1"] == 0.0  # Seas for Lakes
    # level 1 per label: Water tp1 fp1, Algebra tp1, Land fn1 -> micro 2*2/(4+1+1); macro mean(2/3, 1, 0)
    assert lv[1]["micro_f1"] == pytest.approx(4 / 6) and lv[1]["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_evaluate_reports_the_tree_and_counts_gold_outside_it():
    rows = _rows(["Lakes", "Water", "Geo"], ["Algebra"], ["Seas"])
    gold = {"0": ["Geo", "Water", "Lakes"], "1": ["Maths", "Algebra", "Topology"], "2": ["Geo", "Water", "Seas"]}
    r = evaluate(rows, gold, k=1, vocab=TREE)
    h = r.hierarchy
    assert h["gold_not_in_tree"] == {"labels": 1, "items": 1, "examples": ["Topology"]}
    assert any("not in the tree ('Topology')" in n for n in r.notes)
    # 'Topology' is a miss: closed gold 3 + 2 (+1 unknown) + 3 = 9, hits 3 + 2 + 3 = 8
    assert h["hierarchical_recall"] == pytest.approx(8 / 9) and h["hierarchical_precision"] == 1.0
    assert h["leaf_accuracy"] == pytest.approx(2 / 3)  # item 1's deepest gold is unknown: a miss
    assert h["consistent_share"] == pytest.approx(1 / 3)  # {Algebra} and {Seas} miss their parents
    assert "hierarchical F1" in r.text and "level" in r.text and r.to_json()["hierarchy"]["n_levels"] == 3


def test_a_flat_vocabulary_reports_as_before():
    r = evaluate(_rows(["a"]), {"0": ["a"]}, k=1, vocab=["a", "b"])
    assert r.hierarchy is None and "hierarchy" not in r.to_json() and "tree" not in r.text


def test_the_report_gets_a_per_level_plot_and_table(tmp_path):
    r = evaluate(_rows(["Lakes"], ["Algebra"]), {"0": ["Geo", "Water", "Lakes"], "1": ["Maths", "Algebra"]}, k=1,
                 vocab=TREE)
    paths = write_report(r, tmp_path / "eval")
    assert paths["per_level"].read_bytes()[:4] == b"\x89PNG"
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "## On the tree (3 levels)" in md and "| level | items |" in md and "per_level.png" in md
    flat = write_report(evaluate(_rows(["a"]), {"0": ["a"]}, k=1), tmp_path / "flat")
    assert "per_level" not in flat and not (tmp_path / "flat" / "per_level.png").exists()


def _write_tree_run_inputs(tmp_path, labels, parents, texts_gold):
    vocab = tmp_path / "tree.csv"
    vocab.write_text("label,parent\n" + "".join(f"{lab},{p or ''}\n" for lab, p in zip(labels, parents, strict=True)),
                     encoding="utf-8")
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": str(i), "text": t, "labels": g}) + "\n"
                             for i, (t, g) in enumerate(texts_gold)), encoding="utf-8")
    return vocab, items


def test_zsl_eval_finds_the_tree_in_the_runs_sidecar(tmp_path, capsys):
    vocab, items = _write_tree_run_inputs(tmp_path, LABELS, PARENTS, [
        ("lakes and still water", ["Geo", "Water", "Lakes"]), ("algebra of groups", ["Maths", "Algebra", "Rings"])])
    run = tmp_path / "run"
    assert main(["label", str(items), "--labels", str(vocab), "--encoder", "hashing", "--no-infer", "--no-rank",
                 "--out", str(run), "-k", "2"]) == 0
    assert json.loads((run / "labels.jsonl.meta.json").read_text(encoding="utf-8"))["vocab"]["parents"] == PARENTS
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    out = capsys.readouterr().out
    assert "on the tree (3 levels" in out and "hierarchical F1" in out and "not in the tree ('Rings')" in out
    assert (run / "eval" / "per_level.png").is_file()
    assert json.loads((run / "eval" / "eval.json").read_text(encoding="utf-8"))["hierarchy"]["gold_not_in_tree"][
        "items"] == 1


def test_zsl_label_reads_paths_with_a_custom_separator(tmp_path):
    vocab = tmp_path / "paths.txt"
    vocab.write_text("Geo/Water/Lakes\nGeo/Land\nMaths/Algebra\n", encoding="utf-8")
    items = tmp_path / "items.txt"
    items.write_text("lakes\n", encoding="utf-8")
    run = tmp_path / "run"
    assert main(["label", str(items), "--labels", str(vocab), "--tree-sep", "/", "--encoder", "hashing",
                 "--no-infer", "--no-rank", "--out", str(run)]) == 0
    meta = json.loads((run / "labels.jsonl.meta.json").read_text(encoding="utf-8"))["vocab"]
    assert meta["labels"] == ["Geo", "Water", "Lakes", "Land", "Maths", "Algebra"]
    assert meta["parents"] == [None, "Geo", "Water", "Geo", None, "Maths"]


def _random_parents(n: int, seed: int = 0) -> list[int]:
    """A random tree: node i hangs under one of the 3,000 nodes before it (2% are roots)."""
    rng = np.random.default_rng(seed)
    par = [-1] * 20
    for i in range(20, n):
        par.append(int(rng.integers(max(0, i - 3000), i)) if rng.random() < 0.98 else -1)
    return par


def test_a_100k_node_tree_labels_and_evaluates(tmp_path, capsys):
    n = 100_000
    par = _random_parents(n)
    labels = [f"node{i}" for i in range(n)]
    parents = [labels[p] if p >= 0 else None for p in par]
    t = Taxonomy(labels, parents)
    leaves = np.flatnonzero(t.leaves)[:40]
    texts_gold = [(f"a text about node{c} and more", [labels[j] for j in t.path(c)]) for c in leaves]
    vocab, items = _write_tree_run_inputs(tmp_path, labels, parents, texts_gold)
    run = tmp_path / "run"
    started = time.perf_counter()
    assert main(["label", str(items), "--labels", str(vocab), "--encoder", "hashing", "--no-infer", "--no-rank",
                 "--out", str(run), "-k", "3"]) == 0
    labelled = time.perf_counter()
    assert main(["eval", str(run), "--k", "1", "3"]) == 0
    done = time.perf_counter()
    report = json.loads((run / "eval" / "eval.json").read_text(encoding="utf-8"))
    h = report["hierarchy"]
    assert h["n_levels"] == t.n_levels and len(h["levels"]) == t.n_levels
    assert h["levels"][0]["items"] == 40 and h["gold_not_in_tree"]["labels"] == 0
    with capsys.disabled():  # the time is reported, never asserted
        print(f"\n100,000-node tree, 40 items: label {labelled - started:.1f} s, eval {done - labelled:.1f} s")
