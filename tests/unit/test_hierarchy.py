"""Labelling with a label tree (issue #29, item 2): label texts, consistent scores, output modes, top-down search."""

import json

import dspy
import numpy as np
import pytest
from zsl.programs.irr import InferRetrieveRank

from tests.fakes import ScriptedLM
from zsl.data.files import Item
from zsl.errors import InputError
from zsl.hierarchy import Tree, consistent_scores, label_texts, top_down, top_down_scores, tree_columns, tree_row
from zsl.index import VocabIndex
from zsl.models.encoders import HashingEncoder
from zsl.rows import build_rows, make_row
from zsl.vocab import LabelVocab

TREE = {"Agriculture": None, "Basics (Agriculture)": "Agriculture", "Forms (Agriculture)": "Agriculture",
        "Crops": "Agriculture", "Wheat": "Crops", "Rice": "Crops",
        "Geography": None, "Lakes": "Geography", "Africa (Lakes)": "Lakes", "Asia (Lakes)": "Lakes",
        "Regions": "Geography", "Africa (Regions)": "Regions", "Art": None}


@pytest.fixture
def vocab():
    return LabelVocab(list(TREE), parents=list(TREE.values()))


def random_tree(rng: np.random.Generator, n: int) -> LabelVocab:
    parents: list[str | None] = [None]
    for i in range(1, n):
        parents.append(None if rng.random() < 0.1 else f"n{int(rng.integers(0, i))}")
    return LabelVocab([f"n{i}" for i in range(n)], parents=parents)


# -- label texts ----------------------------------------------------------------------------
def test_label_texts_give_context_to_ambiguous_names_only(vocab):
    texts = dict(zip(vocab.labels, label_texts(vocab, "ambiguous"), strict=True))
    assert texts["Basics (Agriculture)"] == "Agriculture > Basics"  # the parenthesis only repeated the parent
    assert texts["Africa (Lakes)"] == "Lakes > Africa"
    assert texts["Crops"] == "Crops" and texts["Wheat"] == "Wheat"  # unambiguous names stay as given
    assert texts["Art"] == "Art"  # short, but a root has no parent to show


def test_label_texts_path_and_parent(vocab):
    path = dict(zip(vocab.labels, label_texts(vocab, "path"), strict=True))
    assert path["Wheat"] == "Agriculture > Crops > Wheat"
    assert path["Africa (Regions)"] == "Geography > Regions > Africa"
    parent = dict(zip(vocab.labels, label_texts(vocab, "parent", sep=" / "), strict=True))
    assert parent["Wheat"] == "Crops / Wheat" and parent["Geography"] == "Geography"
    assert label_texts(vocab, "none") == list(vocab.labels)


@pytest.mark.parametrize("context", ["none", "ambiguous", "parent", "path"])
def test_flat_vocabulary_texts_unchanged(context):
    flat = LabelVocab(["Basics (Agriculture)", "Art", "x"])
    assert label_texts(flat, context) == list(flat.labels)


def test_index_embeds_the_context_for_a_tree_and_the_label_for_a_flat_vocabulary(vocab):
    enc = HashingEncoder(dim=64)
    assert VocabIndex(vocab, enc).label_context == "none"  # the measured default: the names as given
    idx = VocabIndex(vocab, enc, label_context="ambiguous")
    assert idx.label_context == "ambiguous" and "Lakes > Africa" in idx.label_texts
    assert np.allclose(idx.label_emb[vocab.index("Africa (Lakes)")], enc.encode(["Lakes > Africa"])[0])
    flat = VocabIndex(LabelVocab(list(TREE)), enc, label_context="path")
    assert flat.label_context is None and flat.label_texts == list(TREE)


def test_unknown_context_is_refused(vocab):
    with pytest.raises(InputError, match="ambiguous"):
        label_texts(vocab, "full")


# -- consistent scores ------------------------------------------------------------------------
def naive_consistent(s: np.ndarray, vocab: LabelVocab, a: float, b: float) -> np.ndarray:
    tree = Tree.of(vocab)
    K = len(vocab)
    desc_max = s.copy()
    for i in range(K):  # every node raises each of its ancestors
        p = tree.parent[i]
        while p >= 0:
            desc_max[p] = max(desc_max[p], s[i])
            p = tree.parent[p]
    x = (1 - a) * s + a * desc_max
    out = x.copy()
    for i in np.argsort(tree.depth, kind="stable"):
        if tree.parent[i] >= 0:
            out[i] = (1 - b) * x[i] + b * out[tree.parent[i]]
    return out


@pytest.mark.parametrize("blend", [(0.5, 0.5), (0.25, 0.0), (0.0, 0.75), (1.0, 1.0)])
def test_consistent_scores_match_the_definition_on_random_trees(blend):
    rng = np.random.default_rng(3)
    vocab = random_tree(rng, 60)
    s = rng.normal(size=(7, 60)).astype(np.float32)
    got = consistent_scores(s, vocab, blend, block=3)  # blocks of rows give the same answer
    want = np.stack([naive_consistent(r, vocab, *blend) for r in s])
    assert np.allclose(got, want, atol=1e-5)
    assert np.allclose(consistent_scores(s[0], vocab, blend), want[0], atol=1e-5)


def test_consistent_scores_leave_flat_vocabularies_and_zero_blend_untouched(vocab):
    s = np.random.default_rng(0).normal(size=(3, len(TREE))).astype(np.float32)
    assert consistent_scores(s, LabelVocab(list(TREE)), (0.5, 0.5)) is s
    assert consistent_scores(s, vocab, (0.0, 0.0)) is s
    with pytest.raises(InputError, match="two weights"):
        consistent_scores(s, vocab, (1.5, 0.0))


def test_a_child_in_a_likely_branch_overtakes_a_lookalike_in_an_unlikely_one(vocab):
    s = np.zeros(len(vocab), dtype=np.float32)
    s[vocab.index("Lakes")] = 0.8
    s[vocab.index("Africa (Lakes)")] = 0.5
    s[vocab.index("Africa (Regions)")] = 0.55  # the bare name matched better, in the wrong branch
    out = consistent_scores(s, vocab, (0.0, 0.5))
    assert out[vocab.index("Africa (Lakes)")] > out[vocab.index("Africa (Regions)")]


# -- output modes -----------------------------------------------------------------------------
def test_path_mode_is_always_closed_upward_and_leaf_mode_has_no_ancestor_pairs():
    rng = np.random.default_rng(1)
    for _ in range(50):
        vocab = random_tree(rng, 40)
        tree = Tree.of(vocab)
        chosen = rng.choice(40, size=int(rng.integers(1, 6)), replace=False)
        path = tree_columns(vocab, np.zeros(40), chosen, "path")
        assert set(tree.close_upward(path)) == set(path) and len(path) == len(set(path))
        assert set(chosen) <= set(path)
        for c in path:  # root first: a label comes after its parent
            if tree.parent[c] >= 0:
                assert path.index(int(tree.parent[c])) < path.index(c)
        leaf = tree_columns(vocab, np.zeros(40), chosen, "leaf")
        assert leaf and set(leaf) <= set(chosen)
        for c in leaf:
            assert not set(tree.close_upward([c])[1:]) & set(leaf)
        assert tree_columns(vocab, np.zeros(40), chosen, "flat") == [int(c) for c in chosen]


def test_output_modes_leave_a_flat_vocabulary_as_chosen():
    flat = LabelVocab(["a", "b", "c"])
    for mode in ("path", "leaf", "flat"):
        assert tree_columns(flat, np.zeros(3), [2, 0], mode) == [2, 0]


def test_tree_row_scores_an_added_ancestor_by_its_own_score_or_its_chosen_descendant(vocab):
    wheat, crops, agri = vocab.index("Wheat"), vocab.index("Crops"), vocab.index("Agriculture")
    cols, vals = tree_row(vocab, np.array([wheat, crops]), np.array([0.9, 0.4]), 1, "path")
    assert cols == [agri, crops, wheat] and vals == [0.9, 0.4, 0.9]


def _rows(vocab, mode, k=3):
    rng = np.random.default_rng(5)
    scores = rng.normal(size=(6, len(vocab))).astype(np.float32)
    items = [Item(id=f"d{i}", text=f"text {i}") for i in range(6)]
    return build_rows(items, scores, vocab, k=k, tree_output=mode)


def test_rows_of_a_flat_vocabulary_are_byte_identical_in_every_mode():
    flat = LabelVocab(list(TREE))
    want = json.dumps(_rows(flat, "flat"))
    assert json.dumps(_rows(flat, "path")) == want and json.dumps(_rows(flat, "leaf")) == want


def test_path_rows_are_consistent_and_thresholds_follow_their_labels(vocab):
    tree = Tree.of(vocab)
    for row in _rows(vocab, "path"):
        cols = [vocab.index(lab) for lab in row["labels"]]
        assert set(tree.close_upward(cols)) == set(cols)
        assert len(row["scores"]) == len(cols) == len(row["ancestors"])
    wheat, rice = vocab.index("Wheat"), vocab.index("Rice")
    thr = np.full(len(vocab), 0.5)
    thr[vocab.index("Agriculture")] = 0.95  # the ancestor's own threshold decides for it
    row = make_row(Item(id="x", text="t"), vocab, np.array([wheat, rice]), np.array([0.9, 0.3]), k=1,
                   threshold=thr, tree_output="path")
    assert row["labels"] == ["Agriculture", "Crops", "Wheat"]
    assert row["above_threshold"] == ["Crops", "Wheat"]


# -- top-down ---------------------------------------------------------------------------------
def test_top_down_scores_only_sibling_groups_below_kept_nodes():
    rng = np.random.default_rng(2)
    vocab = random_tree(rng, 80)
    tree = Tree.of(vocab)
    s = rng.normal(size=80)
    groups: list[np.ndarray] = []

    def score(group):
        groups.append(group)
        return s[group]

    _path, seen = top_down(score, tree, beam=2)
    assert groups and set(groups[0]) == set(np.flatnonzero(tree.parent < 0))
    for g in groups:
        assert len(set(tree.parent[g])) == 1  # one call, one set of siblings
    assert sum(len(g) for g in groups) == int(seen.sum())
    per_level = np.bincount(tree.depth[seen])
    expanded = [len({int(tree.parent[c]) for c in np.flatnonzero(seen & (tree.depth == d))})
                for d in range(1, len(per_level))]
    assert all(n <= 2 for n in expanded)  # at most `beam` branches are opened per level


def test_top_down_scores_put_every_visited_node_above_the_rest(vocab):
    s = np.random.default_rng(4).normal(size=(5, len(vocab))).astype(np.float32)
    out = top_down_scores(s, vocab, beam=1)
    assert np.isfinite(out).all()
    for row, o in zip(s, out, strict=True):
        _path, seen = top_down(lambda g, row=row: row[g], Tree.of(vocab), 1)
        assert o[seen].min() > o[~seen].max()


class GroupLM(ScriptedLM):
    """A scripted LM that records each Rank call's candidates."""

    def __init__(self, judge):
        super().__init__([], judge=judge)
        self.__dict__["calls"] = []

    def _yes_no(self, prefix, continuations, suffix, system="", **kw):
        self.calls.append(list(continuations))
        return super()._yes_no(prefix, continuations, suffix, system, **kw)


def test_top_down_program_ranks_only_siblings_and_follows_the_rank_step(vocab):
    lm = GroupLM(judge=lambda c: 6.0 if c in ("Geography", "Lakes", "Lakes > Africa") else -6.0)
    dspy.configure(lm=lm)
    index = VocabIndex(vocab, HashingEncoder(dim=64), label_context="ambiguous")  # Rank sees "Lakes > Africa"
    texts = index.label_texts
    program = InferRetrieveRank(index, infer=False, tree_search="top-down",
                                beam=1, rank_weight=1.0)
    pred = program(text="zzz qqq")  # retrieval says next to nothing: the Rank step picks the branch
    assert lm.calls
    for call in lm.calls:
        cols = [texts.index(c) for c in call]
        assert len({program.tree.parent[c] for c in cols}) == 1
    assert set(pred.ranking[:3]) == {"Africa (Lakes)", "Lakes", "Geography"}
    assert lm.calls == [["Agriculture", "Geography", "Art"], ["Lakes", "Regions"], ["Lakes > Africa", "Lakes > Asia"]]
    assert program.config()["tree_search"] == "top-down"


def test_flat_vocabulary_program_config_has_no_tree_settings():
    program = InferRetrieveRank(VocabIndex(LabelVocab(list(TREE)), HashingEncoder(dim=64)), infer=False, rank=False,
                                tree_search="top-down")
    assert "tree_search" not in program.config() and program.tree_search == "flat"
