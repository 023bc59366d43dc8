"""Reading label trees (issue #29): paths, parent-then-children, the parent column, and the errors."""

import json

import pytest

from zsl.errors import VocabularyError
from zsl.rows import vocab_from_meta, vocab_to_meta
from zsl.vocab import LabelVocab

LAKES = (("Geography", "Bodies of water", "Lakes", "Seas", "Maths"),
         (None, "Geography", "Bodies of water", "Bodies of water", None))


def _write(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    return f


def test_a_path_per_line_creates_the_nodes_on_the_way(tmp_path):
    f = _write(tmp_path, "t.txt", "Geography > Bodies of water > Lakes\nGeography > Bodies of water > Seas\n\nMaths\n")
    v = LabelVocab.from_file(f)
    assert (v.labels, v.parents) == LAKES
    assert v.tree.path_names("Seas") == "Geography > Bodies of water > Seas"


def test_the_separator_is_settable(tmp_path):
    f = _write(tmp_path, "t.txt", "Geography/Bodies of water/Lakes\nGeography/Bodies of water/Seas\nMaths\n")
    assert (LabelVocab.from_file(f, tree_sep="/").labels, LabelVocab.from_file(f, tree_sep="/").parents) == LAKES
    assert LabelVocab.from_file(f).parents is None  # the default " > " is not in it: flat labels, as before


def test_a_path_column_takes_descriptions_and_priors_for_its_last_node(tmp_path):
    f = _write(tmp_path, "t.csv", "path,description,prior\nGeography > Bodies of water > Lakes,still water,2\n"
                                  "Geography,the earth,1\nGeography > Bodies of water > Seas,,1\nMaths,,\n")
    v = LabelVocab.from_file(f)
    assert (v.labels, v.parents) == LAKES
    assert v.descriptions == ("the earth", None, "still water", None, None)
    assert v.priors == pytest.approx((0.25, 0, 0.5, 0.25, 0))
    j = _write(tmp_path, "t.jsonl", '{"path": ["Geography", "Bodies of water", "Lakes"], "description": "d"}\n'
                                    '{"path": "Geography > Bodies of water > Seas"}\n{"label": "Maths"}\n')
    v2 = LabelVocab.from_file(j)
    assert (v2.labels, v2.parents) == LAKES and v2.descriptions[2] == "d"


@pytest.mark.parametrize("name", ["t.txt", "t.tsv"])
def test_the_parent_then_children_form(tmp_path, name):
    f = _write(tmp_path, name, "Bodies of water\tLakes\tSeas\nGeography\tBodies of water\n\nMaths\n")
    v = LabelVocab.from_file(f)
    assert dict(zip(v.labels, v.parents, strict=True)) == dict(zip(*LAKES, strict=True))
    assert v.tree.path("Lakes").tolist() == [v.index("Geography"), v.index("Bodies of water"), v.index("Lakes")]


def test_a_tsv_with_a_label_header_is_still_a_table(tmp_path):
    f = _write(tmp_path, "t.tsv", "label\tdescription\nacq\tMergers\nearn\t\n")
    v = LabelVocab.from_file(f)
    assert v.labels == ("acq", "earn") and v.parents is None and v.descriptions == ("Mergers", None)


def _error(tmp_path, name, text, **kw):
    with pytest.raises(VocabularyError) as info:
        LabelVocab.from_file(_write(tmp_path, name, text), **kw)
    return str(info.value)


def test_a_name_under_two_parents_names_both_lines(tmp_path):
    for name, text in [("a.txt", "A > X\nB > X\n"), ("b.txt", "A\tX\nB\tX\n"), ("c.csv", "label,parent\nA,\nB,\nX,A\nX,B\n")]:
        msg = _error(tmp_path, name, text)
        assert "'X' is under 'B'" in msg and "under 'A'" in msg and "two parents" in msg and "Fix:" in msg, msg
    assert "line 2:" in _error(tmp_path, "a.txt", "A > X\nB > X\n")
    assert "line 5:" in _error(tmp_path, "c.csv", "label,parent\nA,\nB,\nX,A\nX,B\n")


def test_a_cycle_names_its_labels_and_lines(tmp_path):
    msg = _error(tmp_path, "c.csv", "label,parent\nroot,\nE,F\nF,E\n")
    assert "cycle: 'E' (line 3) -> 'F' (line 4) -> 'E' (line 3)" in msg and "Fix:" in msg
    msg = _error(tmp_path, "c.txt", "A\tB\nB\tA\n")
    assert "cycle" in msg and "(line 2)" in msg


def test_an_unknown_parent_an_orphan_and_repeats(tmp_path):
    assert "line 3: the parent 'D' of 'C' is not a label" in _error(tmp_path, "u.csv", "label,parent\nA,\nC,D\n")
    assert "line 3:" in _error(tmp_path, "o.csv", "label,parent\nA,\n,A\n") and "orphan" in _error(
        tmp_path, "o.csv", "label,parent\nA,\n,A\n")
    assert "line 2: the path 'A >  > D' has an empty name" in _error(tmp_path, "o.txt", "A > B\nA >  > D\n")
    assert "line 2: children ['X'] without a parent" in _error(tmp_path, "o2.txt", "A\tB\n\tX\n")
    assert "line 3: 'B' is repeated (first at line 1)" in _error(tmp_path, "r.txt", "A > B\nA > C\nA > B\n")
    assert "line 4: 'A' is repeated (first at line 2)" in _error(tmp_path, "r.csv", "label,parent\nA,\nB,A\nA,\n")


def test_every_problem_in_one_error(tmp_path):
    msg = _error(tmp_path, "all.csv", "label,parent\nA,\nB,A\nC,D\nE,F\nF,E\nB,C\nA,\n")
    assert msg.count("\n  ") == 4 and "4 problem(s)" in msg
    assert msg.index("line 4:") < msg.index("line 7:") < msg.index("line 8:") < msg.index("cycle")


def test_dedupe_keeps_repeats_under_the_same_parent_only(tmp_path):
    f = _write(tmp_path, "d.csv", "label,parent\nA,\nB,A\nB,A\n")
    problems: list[str] = []
    assert LabelVocab.from_file(f, dedupe=True, problems=problems).labels == ("A", "B") and "duplicate" in problems[0]
    assert "two parents" in _error(tmp_path, "d2.csv", "label,parent\nA,\nC,\nB,A\nB,C\n", dedupe=True)


def test_the_sidecar_keeps_the_tree_and_a_flat_one_is_unchanged():
    v = LabelVocab(LAKES[0], parents=LAKES[1])
    meta = vocab_to_meta(v)
    back = vocab_from_meta({"vocab": json.loads(json.dumps(meta))}, "x")
    assert back.parents == v.parents and back.hash == v.hash
    assert "parents" not in vocab_to_meta(LabelVocab(["a", "b"]))


def test_hwv_reads_as_a_six_level_tree(shared_data):
    t = LabelVocab.from_file(shared_data / "hwv" / "hwv_labels.jsonl").tree
    assert (len(t), len(t.roots), int(t.leaves.sum()), t.n_levels) == (1186, 11, 953, 6)
