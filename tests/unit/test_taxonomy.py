"""zsl.taxonomy.Taxonomy: the tree of a vocabulary as arrays over its columns (issue #29)."""

import time

import numpy as np
import pytest

from zsl.errors import VocabularyError
from zsl.taxonomy import Taxonomy
from zsl.vocab import LabelVocab

LABELS = ["Geo", "Water", "Lakes", "Africa (Lakes)", "Seas", "Maths", "Algebra"]
PARENTS = [None, "Geo", "Water", "Lakes", "Water", None, "Maths"]


def _tree():
    return Taxonomy(LABELS, PARENTS)


def test_arrays_follow_the_columns():
    t = _tree()
    assert t.parent.tolist() == [-1, 0, 1, 2, 1, -1, 5]
    assert t.depth.tolist() == [0, 1, 2, 3, 2, 0, 1]
    assert t.leaves.tolist() == [False, False, False, True, True, False, True]
    assert t.roots.tolist() == [0, 5] and t.n_levels == 4 and len(t) == 7
    assert [t.level(d).tolist() for d in range(5)] == [[0, 5], [1, 6], [2, 4], [3], []]
    assert t.children("Water").tolist() == [2, 4] and t.children(3).tolist() == []
    assert sorted(t.descendants("Geo").tolist()) == [1, 2, 3, 4]


def test_paths_and_ancestor_table():
    t = _tree()
    assert t.path("Africa (Lakes)").tolist() == [0, 1, 2, 3]
    assert t.path_names(3) == "Geo > Water > Lakes > Africa (Lakes)"
    assert t.path_names("Algebra", sep=" / ") == "Maths / Algebra"
    assert t.ancestor_at[3].tolist() == [0, 1, 2, 3]
    assert t.ancestor_at[6].tolist() == [5, 6, -1, -1]


def test_sets_closed_upward_leaves_only_and_consistency():
    t = _tree()
    assert t.close_upward([3, 6]).tolist() == [0, 1, 2, 3, 5, 6]
    assert t.close_upward(["Seas"]).tolist() == [0, 1, 4]
    assert t.close_upward([]).tolist() == []
    assert t.leaves_only([0, 1, 2, 4, 5]).tolist() == [2, 4, 5]
    assert t.is_consistent([0, 1, 4]) and not t.is_consistent([1, 4]) and t.is_consistent([])
    y = np.zeros((3, 7), dtype=np.uint8)
    y[0, 3] = 1
    y[1, [5, 6]] = 1
    closed = t.close_upward_matrix(y)
    assert np.flatnonzero(closed[0]).tolist() == [0, 1, 2, 3] and np.flatnonzero(closed[1]).tolist() == [5, 6]
    assert t.consistent_rows(y).tolist() == [False, True, True]
    assert t.consistent_rows(closed).all()


def test_scores_propagate_the_childrens_maximum():
    t = _tree()
    s = np.zeros((1, 7), dtype=np.float32)
    s[0, 3], s[0, 4] = 0.9, 0.4
    out = t.close_upward_matrix(s)
    assert out[0, :5].tolist() == pytest.approx([0.9, 0.9, 0.9, 0.9, 0.4])


def test_vocab_builds_one_tree_and_none_when_flat():
    v = LabelVocab(LABELS, parents=PARENTS)
    assert v.tree is v.tree and v.tree.path_names("Seas") == "Geo > Water > Seas"
    assert LabelVocab(["a", "b"]).tree is None


def test_cycle_and_unknown_parent_are_refused():
    with pytest.raises(VocabularyError, match="cycle"):
        Taxonomy(["a", "b", "c"], ["b", "a", None])
    with pytest.raises(VocabularyError, match="not a label"):
        Taxonomy(["a"], ["zz"])


def random_tree(n: int, seed: int = 0) -> list[int]:
    """Parents of a random tree of ``n`` nodes in column order (each node's parent comes earlier), with
    random branching: node i hangs under a node drawn from the last few thousand (deep paths too)."""
    rng = np.random.default_rng(seed)
    par = [-1] * min(n, 20)
    for i in range(len(par), n):
        par.append(int(rng.integers(max(0, i - 3000), i)) if rng.random() < 0.98 else -1)
    return par


def test_a_100k_node_tree_is_built_and_queried_in_linear_memory():
    par = random_tree(100_000)
    labels = [f"n{i}" for i in range(len(par))]
    started = time.perf_counter()
    t = Taxonomy(labels, [labels[p] if p >= 0 else None for p in par])
    cols = np.flatnonzero(t.leaves)[:1000]
    closed = t.close_upward(cols)
    assert t.is_consistent(closed) and set(t.leaves_only(closed).tolist()) == set(cols.tolist())
    y = np.zeros((8, len(t)), dtype=np.uint8)
    y[np.arange(8), cols[:8]] = 1
    assert t.consistent_rows(t.close_upward_matrix(y)).all()
    elapsed = time.perf_counter() - started
    assert (t.parent == np.array(par)).all() and t.depth[t.roots].max() == 0
    assert all(t.parent[c] == p for c, p in zip(t.path(cols[0])[1:], t.path(cols[0])[:-1], strict=True))
    assert t.ancestor_at.shape == (100_000, t.n_levels)
    print(f"100,000-node tree: {t!r}, built and queried in {elapsed:.2f} s")
