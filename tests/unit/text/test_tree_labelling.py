"""A vocabulary with a tree through Tagger.fit, zsl label and a distilled student (issue #29, items 2 and 4)."""

import json

import numpy as np

from zsl.cli import main
from zsl.hierarchy import Tree
from zsl.models.encoders import HashingEncoder
from zsl.text.tagger import Tagger, clean_examples
from zsl.vocab import LabelVocab

TREE = [("Sport", None), ("Football", "Sport"), ("Tennis", "Sport"), ("Food", None), ("Baking", "Food"),
        ("Bread (Baking)", "Baking"), ("Cakes (Baking)", "Baking"), ("Weather", None), ("Rain", "Weather")]
TEXTS = {"Football": "football match goal team striker", "Tennis": "tennis racket serve wimbledon set",
         "Bread (Baking)": "bread dough yeast flour loaf oven", "Cakes (Baking)": "cake sugar icing sponge oven",
         "Rain": "rain storm umbrella wet clouds forecast"}


def _vocab() -> LabelVocab:
    return LabelVocab([lab for lab, _ in TREE], parents=[p for _, p in TREE])


def test_examples_at_any_level_count_for_their_ancestors():
    pairs, _ = clean_examples(_vocab(), [("a loaf", ["Bread (Baking)"]), ("rainy", ["Weather"]),
                                         ("both", ["Rain", "Tennis"])])
    assert dict(pairs) == {"a loaf": ["Food", "Baking", "Bread (Baking)"], "rainy": ["Weather"],
                           "both": ["Weather", "Rain", "Sport", "Tennis"]}
    flat = LabelVocab([lab for lab, _ in TREE])
    assert clean_examples(flat, [("a loaf", ["Bread (Baking)"])])[0] == [("a loaf", ["Bread (Baking)"])]


def test_fit_on_examples_labelled_at_mixed_depths_predicts_consistent_paths():
    vocab = _vocab()
    examples = [(f"{t} {i}", [lab if i % 2 else vocab.ancestors(lab)[-1]]) for lab, t in TEXTS.items()
                for i in range(4)]  # half at the leaf, half one level up
    tagger = Tagger(vocab, encoder=HashingEncoder(512), infer=False, rank=False).fit(examples)
    assert tagger.evidence_.counts_[vocab.index("Food")] == 8  # every baking example counts for Food
    sets = tagger.predict([TEXTS["Bread (Baking)"], TEXTS["Rain"]])
    tree = Tree.of(vocab)
    for row in sets:
        cols = [int(c) for c in np.flatnonzero(row)]
        assert cols and set(tree.close_upward(cols)) == set(cols)  # path mode: closed upward
    assert sets[1, vocab.index("Weather")] == 1


def _write(tmp_path, vocab_rows):
    vocab = tmp_path / "labels.jsonl"
    vocab.write_text("".join(json.dumps(r) + "\n" for r in vocab_rows), encoding="utf-8")
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": f"{lab}{i}", "text": f"{t} {i}"}) + "\n"
                             for lab, t in TEXTS.items() for i in range(3)), encoding="utf-8")
    return vocab, items


def _run(tmp_path, vocab, items, name, *extra):
    out = tmp_path / name
    assert main(["label", str(items), "--labels", str(vocab), "--encoder", "hashing", "--no-infer", "--no-rank",
                 "--out", str(out), "-k", "2", *extra]) == 0
    rows = [json.loads(x) for x in (out / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    return rows, json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def test_cli_label_tree_output_modes_are_recorded_and_path_rows_are_consistent(tmp_path):
    vocab, items = _write(tmp_path, [{"label": lab, "parent": p} for lab, p in TREE])
    v = _vocab()
    tree = Tree.of(v)
    rows, manifest = _run(tmp_path, vocab, items, "path")
    assert manifest["settings"]["tree_output"] == "path"
    assert manifest["settings"]["settings"]["label_context"] == "none"
    for row in rows:
        cols = [v.index(lab) for lab in row["labels"]]
        assert set(tree.close_upward(cols)) == set(cols)
    leaf_rows, leaf_manifest = _run(tmp_path, vocab, items, "leaf", "--tree-output", "leaf", "--tree-search",
                                    "top-down", "--beam", "1")
    assert leaf_manifest["settings"]["tree_output"] == "leaf"
    assert leaf_manifest["settings"]["settings"]["tree_search"] == "top-down"
    for row in leaf_rows:
        cols = [v.index(lab) for lab in row["labels"]]
        assert all(not set(tree.close_upward([c])[1:]) & set(cols) for c in cols)


def test_cli_label_flat_vocabulary_rows_and_manifest_have_no_tree_settings(tmp_path):
    vocab, items = _write(tmp_path, [{"label": lab} for lab, _ in TREE])
    rows, manifest = _run(tmp_path, vocab, items, "flat")
    assert "tree_output" not in manifest["settings"] and "tree_blend" not in manifest["settings"]["settings"]
    again, _ = _run(tmp_path, vocab, items, "flat2", "--tree-output", "path", "--tree-blend", "0.5,0.5")
    assert [r["labels"] for r in again] == [r["labels"] for r in rows]
    assert [r["top_scores"] for r in again] == [r["top_scores"] for r in rows]


def test_a_distilled_student_labels_consistent_paths(tmp_path):
    vocab, items = _write(tmp_path, [{"label": lab, "parent": p} for lab, p in TREE])
    _run(tmp_path, vocab, items, "teacher")
    student = tmp_path / "student"
    assert main(["distill", str(tmp_path / "teacher" / "labels.jsonl"), "--labels", str(vocab), "--out",
                 str(student), "--encoder", "hashing", "--epochs", "20"]) == 0
    out = tmp_path / "student_run"
    assert main(["label", str(items), "--model", str(student), "--out", str(out), "-k", "2"]) == 0
    v = _vocab()
    tree = Tree.of(v)
    for line in (out / "labels.jsonl").read_text(encoding="utf-8").splitlines():
        cols = [v.index(lab) for lab in json.loads(line)["labels"]]
        assert set(tree.close_upward(cols)) == set(cols)
