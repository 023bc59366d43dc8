"""Taxonomy: a vocabulary's tree as arrays over its columns (issue #29).

A :class:`~zsl.vocab.LabelVocab` with parents builds one ``Taxonomy`` on first use
(``vocab.tree``; None for a flat vocabulary). Every node is a column of the vocabulary's
``(N, K)`` score arrays, so the tree is kept as integer arrays over those columns (the parent
of each column, its depth, the children in one sorted block) and every operation is a few
vectorised numpy passes: building one for 100,000 nodes takes well under a second and memory
linear in the number of nodes.

Example:
    >>> t = Taxonomy(["Geo", "Water", "Lakes", "Seas", "Maths"], [None, "Geo", "Water", "Water", None])
    >>> t.parent.tolist(), t.depth.tolist(), t.n_levels
    ([-1, 0, 1, 1, -1], [0, 1, 2, 2, 0], 3)
    >>> t.children(1).tolist(), t.path(2).tolist(), t.path_names("Lakes")
    ([2, 3], [0, 1, 2], 'Geo > Water > Lakes')
    >>> t.close_upward([2]).tolist(), t.leaves_only([0, 1, 2, 4]).tolist(), t.is_consistent([1, 2])
    ([0, 1, 2], [2, 4], False)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property

import numpy as np

from zsl.errors import VocabularyError

__all__ = ["Taxonomy"]


class Taxonomy:
    """The tree of a vocabulary's labels, as arrays indexed by column.

    Args:
        labels: the node names in column order (a vocabulary's ``labels``).
        parents: each label's parent name (``None`` or ``""`` for a root), aligned with ``labels``.
        index: an existing ``label -> column`` mapping to share (``LabelVocab`` passes its own).

    Attributes:
        labels: the names, in column order.
        parent: ``(K,)`` int64, each column's parent column, ``-1`` for a root.
        depth: ``(K,)`` int64, 0 for a root, 1 for its children, ...
        leaves: ``(K,)`` bool, True for a column without children.
        roots: the root columns, in column order.
        n_levels: ``depth.max() + 1``.

    Raises:
        VocabularyError: parents of the wrong length, an unknown parent, or a cycle
            (:meth:`~zsl.vocab.LabelVocab.from_file` names the file's lines before this).

    Example:
        >>> t = Taxonomy(["a", "b", "c"], [None, "a", "a"])
        >>> t.roots.tolist(), t.leaves.tolist(), t.level(1).tolist()
        ([0], [False, True, True], [1, 2])
    """

    def __init__(self, labels: Sequence[str], parents: Sequence[str | None],
                 index: Mapping[str, int] | None = None):
        self.labels = tuple(labels)
        if len(parents) != len(self.labels):
            raise VocabularyError(f"Got {len(parents)} parents for {len(self.labels)} labels; they must match 1:1.")
        self._index = index if index is not None else {lab: i for i, lab in enumerate(self.labels)}
        par = np.empty(len(self.labels), dtype=np.int64)
        for i, p in enumerate(parents):
            if not p:
                par[i] = -1
            elif p in self._index:
                par[i] = self._index[p]
            else:
                raise VocabularyError(f"The parent {p!r} of label {self.labels[i]!r} is not a label of the vocabulary. "
                                      "Fix: add the parent as a label of its own (a root has no parent).")
        self.parent = par
        k = len(par)
        # Children in one block per parent: column `order[start[p + 1]:start[p + 2]]` are p's
        # children (slot 0 holds the roots, whose parent is -1).
        self._order = np.argsort(par, kind="stable")
        self._start = np.concatenate([[0], np.cumsum(np.bincount(par + 1, minlength=k + 1))])
        self.depth = self._depths()
        self.leaves = np.bincount(par[par >= 0], minlength=k) == 0
        self.roots = self._order[self._start[0]:self._start[1]]
        self.n_levels = int(self.depth.max()) + 1
        self._by_depth = np.argsort(self.depth, kind="stable")
        self._level_start = np.searchsorted(self.depth[self._by_depth], np.arange(self.n_levels + 1))

    def _depths(self) -> np.ndarray:
        """Each column's depth, level by level from the roots; a column never reached sits on a cycle."""
        depth = np.full(len(self.parent), -1, dtype=np.int64)
        frontier = self._order[self._start[0]:self._start[1]]
        d = 0
        while frontier.size:
            depth[frontier] = d
            frontier = self._children_of(frontier)
            d += 1
        if (depth < 0).any():
            bad = [self.labels[i] for i in np.flatnonzero(depth < 0)[:5]]
            raise VocabularyError(f"The hierarchy has a cycle through {', '.join(map(repr, bad))}; "
                                  "a label cannot be its own ancestor. Fix: give one label of the cycle another parent.")
        return depth

    def _children_of(self, cols: np.ndarray) -> np.ndarray:
        """All children of the columns ``cols``, concatenated (vectorised CSR gather)."""
        lo, hi = self._start[cols + 1], self._start[cols + 2]
        lens = hi - lo
        total = int(lens.sum())
        if not total:
            return np.empty(0, dtype=np.int64)
        offsets = np.repeat(lo - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
        return self._order[offsets + np.arange(total)]

    def __len__(self) -> int:
        return len(self.parent)

    def __repr__(self) -> str:
        return f"Taxonomy({len(self)} nodes, {len(self.roots)} roots, {int(self.leaves.sum())} leaves, {self.n_levels} levels)"

    def col(self, label: str | int) -> int:
        """A label's column (an int is returned as it is)."""
        if isinstance(label, (int, np.integer)):
            return int(label)
        try:
            return self._index[label]
        except KeyError:
            raise VocabularyError(f"{label!r} is not a node of the tree ({len(self)} nodes).") from None

    def children(self, i: int | str) -> np.ndarray:
        """The child columns of ``i`` (a column or a label), in column order.

        Example:
            >>> Taxonomy(["a", "b", "c"], [None, "a", "a"]).children("a").tolist()
            [1, 2]
        """
        c = self.col(i)
        return self._order[self._start[c + 1]:self._start[c + 2]]

    def descendants(self, i: int | str) -> np.ndarray:
        """Every column below ``i`` (not ``i`` itself), level by level.

        Example:
            >>> Taxonomy(["a", "b", "c"], [None, "a", "b"]).descendants(0).tolist()
            [1, 2]
        """
        out, frontier = [], self.children(i)
        while frontier.size:
            out.append(frontier)
            frontier = self._children_of(frontier)
        return np.concatenate(out) if out else np.empty(0, dtype=np.int64)

    def path(self, i: int | str) -> np.ndarray:
        """The columns from the root down to ``i`` (``i`` last).

        Example:
            >>> Taxonomy(["a", "b", "c"], [None, "a", "b"]).path(2).tolist()
            [0, 1, 2]
        """
        c = self.col(i)
        out = [c]
        while self.parent[c] >= 0:
            c = int(self.parent[c])
            out.append(c)
        return np.array(out[::-1], dtype=np.int64)

    def path_names(self, label: int | str, sep: str = " > ") -> str:
        """The path from the root down to ``label`` as one string.

        Example:
            >>> Taxonomy(["Geo", "Lakes"], [None, "Geo"]).path_names("Lakes", sep="/")
            'Geo/Lakes'
        """
        return sep.join(self.labels[c] for c in self.path(label))

    def level(self, d: int) -> np.ndarray:
        """The columns at depth ``d`` (0: the roots), in column order; empty past the deepest level."""
        if d < 0 or d >= self.n_levels:
            return np.empty(0, dtype=np.int64)
        return self._by_depth[self._level_start[d]:self._level_start[d + 1]]

    @cached_property
    def ancestor_at(self) -> np.ndarray:
        """``(K, n_levels)`` int64: ``ancestor_at[i, d]`` is ``i``'s ancestor at depth ``d`` (``i`` itself at
        its own depth), ``-1`` below ``i``'s depth.

        Example:
            >>> Taxonomy(["a", "b", "c"], [None, "a", "b"]).ancestor_at[2].tolist()
            [0, 1, 2]
        """
        k = len(self)
        table = np.full((k, self.n_levels), -1, dtype=np.int64)
        rows, cur = np.arange(k), np.arange(k)
        while rows.size:
            table[rows, self.depth[cur]] = cur
            cur = self.parent[cur]
            keep = cur >= 0
            rows, cur = rows[keep], cur[keep]
        return table

    def _cols(self, cols: Iterable[int | str] | np.ndarray) -> np.ndarray:
        if isinstance(cols, np.ndarray) and cols.dtype.kind in "iu":
            return cols.astype(np.int64, copy=False).ravel()
        return np.array([self.col(c) for c in cols], dtype=np.int64)

    def close_upward(self, cols: Iterable[int | str] | np.ndarray) -> np.ndarray:
        """The columns ``cols`` plus all their ancestors, sorted and unique.

        Example:
            >>> Taxonomy(["a", "b", "c", "d"], [None, "a", "b", None]).close_upward([2, 3]).tolist()
            [0, 1, 2, 3]
        """
        cur = np.unique(self._cols(cols))
        parts = [cur]
        while cur.size:
            cur = self.parent[cur]
            cur = np.unique(cur[cur >= 0])
            parts.append(cur)
        return np.unique(np.concatenate(parts))

    def leaves_only(self, cols: Iterable[int | str] | np.ndarray) -> np.ndarray:
        """The columns of ``cols`` with no descendant in ``cols`` (the deepest of each path), sorted.

        Example:
            >>> Taxonomy(["a", "b", "c"], [None, "a", "a"]).leaves_only([0, 1]).tolist()
            [1]
        """
        c = np.unique(self._cols(cols))
        above = self.parent[c]
        above = self.close_upward(above[above >= 0])
        return c[~np.isin(c, above)]

    def is_consistent(self, cols: Iterable[int | str] | np.ndarray) -> bool:
        """True when ``cols`` is closed upward: every column's parent is in the set too (the empty set is).

        Example:
            >>> t = Taxonomy(["a", "b", "c"], [None, "a", "b"])
            >>> t.is_consistent([0, 1]), t.is_consistent([0, 2]), t.is_consistent([])
            (True, False, True)
        """
        c = self._cols(cols)
        p = self.parent[c]
        return bool(np.isin(p[p >= 0], c).all())

    def close_upward_matrix(self, y: np.ndarray) -> np.ndarray:
        """An ``(N, K)`` 0/1 (or score) matrix with each row closed upward: a parent's value is at least its
        children's maximum. Deepest level first, one vectorised pass per level.

        Example:
            >>> t = Taxonomy(["a", "b", "c"], [None, "a", "b"])
            >>> t.close_upward_matrix(np.array([[0, 0, 1], [0, 1, 0]])).tolist()
            [[1, 1, 1], [1, 1, 0]]
        """
        out = np.array(y, copy=True)
        for d in range(self.n_levels - 1, 0, -1):
            cols = self.level(d)
            par = self.parent[cols]
            order = np.argsort(par, kind="stable")
            cols, par = cols[order], par[order]
            firsts = np.flatnonzero(np.r_[True, par[1:] != par[:-1]])
            best = np.maximum.reduceat(out[:, cols], firsts, axis=1)
            out[:, par[firsts]] = np.maximum(out[:, par[firsts]], best)
        return out

    def consistent_rows(self, y: np.ndarray) -> np.ndarray:
        """``(N,)`` bool: which rows of a 0/1 ``(N, K)`` matrix are closed upward.

        Example:
            >>> t = Taxonomy(["a", "b"], [None, "a"])
            >>> t.consistent_rows(np.array([[1, 1], [0, 1], [0, 0]])).tolist()
            [True, False, True]
        """
        on = np.asarray(y) > 0
        has_parent = self.parent >= 0
        orphan = on[:, has_parent] & ~on[:, self.parent[has_parent]]
        return ~orphan.any(axis=1)
