"""Labelling with a label tree: label texts with context, scores consistent along the tree, output modes.

A vocabulary whose labels name their parent (:attr:`zsl.vocab.LabelVocab.parents`) is a tree
(or a forest). Everything here is a plain function of the vocabulary's parent array and a
score matrix; a flat vocabulary (``parents is None``) is left exactly as it is by every
function (same texts, same scores, same columns), so flat runs do not change.

* :func:`label_texts`: the text a label is embedded as and shown to the Rank step, with the
  context that disambiguates it (:data:`LABEL_CONTEXTS`).
* :func:`consistent_scores`: a node's score blended with the best of its descendants and its
  parent's (blended) score, vectorised level by level.
* :func:`tree_columns`: a row's chosen columns in an output mode (:data:`TREE_OUTPUTS`).
* :func:`top_down`: descend from the top level into the best ``beam`` branches, scoring one
  group of siblings at a time.

Example:
    >>> from zsl.vocab import LabelVocab
    >>> v = LabelVocab(["Farming", "Basics (Farming)", "Crops"], parents=[None, "Farming", "Farming"])
    >>> label_texts(v, "ambiguous")
    ['Farming', 'Farming > Basics', 'Crops']
    >>> tree_columns(v, np.array([0.1, 0.2, 0.9]), [2], "path")
    [0, 2]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from zsl.errors import InputError
from zsl.vocab import LabelVocab

__all__ = ["DEFAULT_BEAM", "DEFAULT_LABEL_CONTEXT", "DEFAULT_TREE_BLEND", "DEFAULT_TREE_OUTPUT", "LABEL_CONTEXTS",
           "TREE_OUTPUTS", "TREE_SEARCHES", "Tree", "below_visited", "check_tree_settings", "consistent_scores", "display_name",
           "label_texts", "top_down", "top_down_scores", "tree_columns", "tree_of", "tree_row"]

LABEL_CONTEXTS = ("none", "ambiguous", "parent", "path")
TREE_OUTPUTS = ("path", "leaf", "flat")
TREE_SEARCHES = ("flat", "top-down")
PATH_SEP = " > "
# Chosen on HWV validation (1,602 documents, 1,186 labels), retrieval only, MiniLM-L6, one path per
# document: hierarchical F1 of path sets from the best label. Names as given 50.0, "ambiguous" 47.9,
# "parent" 48.9, "path" 49.2 (HWV's names already carry their parent in a parenthesis; the context is
# kept for the Rank step to be measured with the LLM). Blend (0.5, 0.5): 50.0 -> 51.9 at k = 1, 36.8 -> 42.0
# at k = 5 (the best at k = 1, (0, 0.5), gives 38.7 at k = 5; (0.75, 0.5) 51.4 / 45.0).
DEFAULT_LABEL_CONTEXT = "none"
DEFAULT_TREE_OUTPUT = "path"
DEFAULT_TREE_BLEND = (0.5, 0.5)  # (descendants, parent)
DEFAULT_BEAM = 3
# a name this short says little on its own ("Art", "USA"): shown with its parent
SHORT_NAME = 4


@dataclass(frozen=True)
class Tree:
    """The parent array of a vocabulary with a hierarchy, and what is derived from it (from its
    :class:`~zsl.taxonomy.Taxonomy`, ``vocab.tree``, plus the levels the blends walk).

    Attributes:
        parent: ``(K,)`` int64, the parent's column (-1 for a root).
        depth: ``(K,)`` int64, 0 for a root.
        levels: the columns of each depth, top first.
        n_children: ``(K,)`` int64.
    """

    parent: np.ndarray
    depth: np.ndarray
    levels: tuple[np.ndarray, ...]
    n_children: np.ndarray

    @classmethod
    def of(cls, vocab: LabelVocab) -> Tree:
        """The tree of ``vocab`` (which must have parents)."""
        if vocab.parents is None:
            raise InputError("This needs a vocabulary with a hierarchy (a parent per label); it has none. Fix: "
                             "give the vocabulary file a parent column, or use the flat settings.")
        tax = vocab.tree  # the vocabulary's Taxonomy, built once
        levels = tuple(tax.level(d) for d in range(tax.n_levels))
        n_children = np.bincount(tax.parent[tax.parent >= 0], minlength=len(tax.parent)).astype(np.int64)
        return cls(tax.parent, tax.depth, levels, n_children)

    def children(self, i: int) -> np.ndarray:
        """The columns whose parent is ``i`` (``-1``: the roots)."""
        return np.flatnonzero(self.parent == i)

    def close_upward(self, cols: Sequence[int]) -> list[int]:
        """``cols`` with every ancestor added (each column once; given ones first, in order)."""
        out: list[int] = []
        seen: set[int] = set()
        for c in cols:
            c = int(c)
            while c >= 0 and c not in seen:
                seen.add(c)
                out.append(c)
                c = int(self.parent[c])
        return out


_TREES: dict[str, Tree] = {}


def tree_of(vocab: LabelVocab) -> Tree:
    """:meth:`Tree.of`, kept for the last few vocabularies (by content hash): rows are built one at a time."""
    key = vocab.hash
    if key not in _TREES:
        if len(_TREES) >= 4:
            _TREES.pop(next(iter(_TREES)))
        _TREES[key] = Tree.of(vocab)
    return _TREES[key]


def display_name(label: str, parent: str | None) -> str:
    """``label`` without a trailing ``" (X)"`` that only repeats its parent (X is the parent's name,
    or the parent's own display name): the tree says that already.

    Example:
        >>> display_name("Italy (Europe (Regions))", "Europe (Regions)"), display_name("Mexico (North America)",
        ...     "North America (Americas)"), display_name("Java (island)", "Asia")
        ('Italy', 'Mexico', 'Java (island)')
    """
    if parent is None or not label.endswith(")") or " (" not in label:
        return label
    head, _, inner = label.partition(" (")
    inner = inner[:-1]
    return head if inner in (parent, parent.partition(" (")[0]) else label


def _ambiguous(vocab: LabelVocab, names: list[str]) -> np.ndarray:
    """Which labels need their parent to be understood: a name repeated in the tree, a name that had
    a parenthesis repeating its parent (the vocabulary's own sign that it is ambiguous), or a short one."""
    counts = Counter(n.casefold() for n in names)
    return np.array([counts[n.casefold()] > 1 or n != lab or len(n) <= SHORT_NAME
                     for n, lab in zip(names, vocab.labels, strict=True)], dtype=bool)


def label_texts(vocab: LabelVocab, context: str = DEFAULT_LABEL_CONTEXT, sep: str = PATH_SEP) -> list[str]:
    """The text each label is embedded as and shown to the Rank step.

    Args:
        vocab: the labels; a flat vocabulary gives its labels unchanged whatever ``context`` is.
        context: ``"none"`` (the labels as given), ``"ambiguous"`` (``"Parent > name"`` for a name
            repeated in the tree, one whose parenthesis repeated its parent, or one of at most
            :data:`SHORT_NAME` characters; the label as given otherwise), ``"parent"`` (every label
            below the top as ``"Parent > name"``) or ``"path"`` (every label as its path from the top).
        sep: the separator between a parent and its child.

    Example:
        >>> v = LabelVocab(["Lakes", "Africa (Lakes)", "Art"], parents=[None, "Lakes", None])
        >>> label_texts(v, "path"), label_texts(v, "ambiguous")
        (['Lakes', 'Lakes > Africa', 'Art'], ['Lakes', 'Lakes > Africa', 'Art'])
    """
    if context not in LABEL_CONTEXTS:
        raise InputError(f"label context must be one of {', '.join(LABEL_CONTEXTS)}, got {context!r}")
    labels = list(vocab.labels)
    if vocab.parents is None or context == "none":
        return labels
    names = [display_name(lab, par) for lab, par in zip(labels, vocab.parents, strict=True)]
    tree = Tree.of(vocab)
    if context == "path":
        paths = list(names)
        for level in tree.levels[1:]:  # parents first, so a parent's path is ready for its children
            for i in level:
                paths[i] = f"{paths[tree.parent[i]]}{sep}{names[i]}"
        return paths
    wanted = np.ones(len(labels), dtype=bool) if context == "parent" else _ambiguous(vocab, names)
    return [lab if not wanted[i] or tree.parent[i] < 0 else f"{names[tree.parent[i]]}{sep}{names[i]}"
            for i, lab in enumerate(labels)]


def check_tree_settings(*, tree_output: str | None = None, tree_search: str | None = None,
                        label_context: str | None = None, tree_blend: Sequence[float] | None = None,
                        beam: int | None = None) -> None:
    """Refuse a tree setting that cannot work, naming the valid values (None: not given)."""
    for name, value, valid in (("tree output", tree_output, TREE_OUTPUTS), ("tree search", tree_search, TREE_SEARCHES),
                               ("label context", label_context, LABEL_CONTEXTS)):
        if value is not None and value not in valid:
            raise InputError(f"The {name} must be one of {', '.join(valid)}; got {value!r}.")
    if tree_blend is not None:
        blend = tuple(float(x) for x in tree_blend)
        if len(blend) != 2 or not all(0.0 <= x <= 1.0 for x in blend):
            raise InputError(f"The tree blend is two weights in [0, 1] (descendants, parent), e.g. 0.5,0.5; got "
                             f"{tree_blend!r}.")
    if beam is not None and beam < 1:
        raise InputError(f"The beam (branches kept per level of a top-down search) must be >= 1; got {beam}.")


def consistent_scores(scores: np.ndarray, vocab: LabelVocab, blend: Sequence[float] = DEFAULT_TREE_BLEND,
                      *, tree: Tree | None = None, block: int = 256) -> np.ndarray:
    """Scores made consistent along the tree: a node's evidence combined with its descendants' and its parent's.

    First ``x = (1 - a) * s + a * (best score in the node's subtree)`` (a parent is as likely as its best
    child says), then, top down, ``out = (1 - b) * x + b * out[parent]`` (a child inherits its
    branch's evidence, so siblings under a likely parent outrank lookalikes in unlikely branches).
    Rows are done ``block`` at a time (a 100,000-node tree holds three ``(block, K)`` arrays).

    Args:
        scores: ``(N, K)`` (or ``(K,)``) scores in vocabulary order.
        vocab: the labels; a flat vocabulary (or ``blend == (0, 0)``) returns ``scores`` itself, unchanged.
        blend: ``(a, b)``, the weights of the descendants and of the parent, each in [0, 1].
        tree: the vocabulary's :class:`Tree` (computed when None).

    Example:
        >>> v = LabelVocab(["a", "a1", "b", "b1"], parents=[None, "a", None, "b"])
        >>> [round(float(x), 3) for x in consistent_scores(np.array([0.2, 0.9, 0.5, 0.1]), v, (0.5, 0.5))]
        [0.55, 0.725, 0.5, 0.3]
    """
    a, b = (float(x) for x in blend)
    check_tree_settings(tree_blend=(a, b))
    if vocab.parents is None or (a == 0 and b == 0):
        return scores
    tree = tree or tree_of(vocab)
    s = np.asarray(scores, dtype=np.float32)
    one = s.ndim == 1
    s2 = np.atleast_2d(s)
    out = np.empty_like(s2)
    for start in range(0, s2.shape[0], block):
        x = s2[start:start + block]
        if a:
            x = (1 - a) * x + a * vocab.tree.close_upward_matrix(x)  # the best score in each subtree
        y = x.copy()
        if b:
            for level in tree.levels[1:]:  # parents are final before their children read them
                y[:, level] = (1 - b) * x[:, level] + b * y[:, tree.parent[level]]
        out[start:start + block] = y
    return out[0] if one else out


def tree_columns(vocab: LabelVocab, scores: np.ndarray, chosen: Sequence[int], mode: str = "flat",
                 *, tree: Tree | None = None) -> list[int]:
    """A row's label columns in an output mode, from its chosen columns (best first).

    * ``"flat"``: ``chosen`` as it is (today's rows; always so for a flat vocabulary);
    * ``"path"``: each chosen label preceded by its ancestors not yet in the row, root first:
      the set is closed upward, so it is always a union of consistent paths;
    * ``"leaf"``: the chosen labels that are no ancestor of another chosen label.

    ``scores`` (the row's ``(K,)`` scores) is accepted so a mode may weigh labels; these three
    need only the tree.

    Example:
        >>> v = LabelVocab(["a", "a1", "a11", "b"], parents=[None, "a", "a1", None])
        >>> s = np.zeros(4)
        >>> tree_columns(v, s, [2, 3], "path"), tree_columns(v, s, [1, 2], "leaf"), tree_columns(v, s, [1, 2])
        ([0, 1, 2, 3], [2], [1, 2])
    """
    check_tree_settings(tree_output=mode)
    cols = [int(c) for c in chosen]
    if mode == "flat" or vocab.parents is None:
        return cols
    tree = tree or tree_of(vocab)
    if mode == "leaf":
        inner = set(tree.close_upward(cols)) - set(cols)
        for c in cols:  # an ancestor of a chosen label is itself inner, even when chosen
            p = int(tree.parent[c])
            while p >= 0:
                inner.add(p)
                p = int(tree.parent[p])
        return [c for c in cols if c not in inner]
    out: list[int] = []
    seen: set[int] = set()
    for c in cols:
        chain = [x for x in tree.close_upward([c]) if x not in seen][::-1]  # root first
        out += chain
        seen.update(chain)
    return out


def top_down(node_scores: Callable[[np.ndarray], np.ndarray], tree: Tree, beam: int = DEFAULT_BEAM
             ) -> tuple[np.ndarray, np.ndarray]:
    """Descend the tree from the top level, keeping the ``beam`` best nodes of each level.

    ``node_scores(group)`` scores one group of siblings (the roots, then the children of one
    kept node at a time): only siblings are ever compared in one call. A node's path score is the
    mean of its own score and its ancestors' (so a deep guess cannot outrun a weak branch).

    Args:
        node_scores: columns -> their scores (the same length).
        tree: the vocabulary's tree.
        beam: nodes kept per level.

    Returns:
        ``(path_scores, visited)``: ``(K,)`` float32 path scores (0 where not visited) and the
        ``(K,)`` bool mask of the nodes scored.
    """
    check_tree_settings(beam=beam)
    K = len(tree.parent)
    total = np.zeros(K, dtype=np.float64)
    visited = np.zeros(K, dtype=bool)
    path = np.zeros(K, dtype=np.float32)
    groups = [np.flatnonzero(tree.parent < 0)]
    while groups:
        level: list[np.ndarray] = []
        for group in groups:
            got = np.asarray(node_scores(group), dtype=np.float64)
            par = tree.parent[group]
            base = np.where(par >= 0, total[np.maximum(par, 0)], 0.0)
            total[group] = base + got
            path[group] = total[group] / (tree.depth[group] + 1)
            visited[group] = True
            level.append(group)
        nodes = np.concatenate(level)
        keep = nodes[np.argsort(-path[nodes], kind="stable")[:beam]]
        groups = [tree.children(int(n)) for n in keep if tree.n_children[n]]
    return path, visited


def top_down_scores(scores: np.ndarray, vocab: LabelVocab, beam: int = DEFAULT_BEAM, *, tree: Tree | None = None
                    ) -> np.ndarray:
    """Retrieval-only top-down search on ``(N, K)`` scores: visited nodes get their path score, the others
    their own score shifted below every visited node (the order among them kept, every value finite).

    Example:
        >>> v = LabelVocab(["a", "a1", "b", "b1"], parents=[None, "a", None, "b"])
        >>> top_down_scores(np.array([[0.9, 0.1, 0.2, 0.8]]), v, beam=1).argmax(axis=1).tolist()
        [0]
    """
    tree = tree or tree_of(vocab)
    s = np.atleast_2d(np.asarray(scores, dtype=np.float32))
    out = np.empty_like(s)
    for n, row in enumerate(s):
        path, seen = top_down(lambda g, row=row: row[g], tree, beam)
        out[n] = below_visited(row, path, seen)
    return out


def below_visited(row: np.ndarray, path: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Path scores where visited; elsewhere the row's own scores shifted under the lowest visited one."""
    out = row.astype(np.float32).copy()
    if (~seen).any():
        out[~seen] = row[~seen] - row[~seen].max() + path[seen].min() - 1.0
    out[seen] = path[seen]
    return out


def tree_row(vocab: LabelVocab, idx: np.ndarray, vals: np.ndarray, chosen: Sequence[int], chosen_vals: Sequence[float],
             mode: str) -> tuple[list[int], list[float]]:
    """A row's columns and scores in an output mode, from its chosen columns (best first) with their scores,
    and its ``R`` best columns ``idx`` with their scores ``vals``: what :func:`zsl.rows.make_row` writes.

    A label the mode adds (an ancestor, in ``path`` mode) keeps its own score when it is among the ``R``;
    otherwise it gets the best score of the chosen labels below it (whatever makes a label likely makes
    its ancestors at least as likely).

    Example:
        >>> v = LabelVocab(["a", "a1", "b"], parents=[None, "a", None])
        >>> tree_row(v, np.array([1, 2]), np.array([0.9, 0.5]), [1], [0.9], "path")
        ([0, 1], [0.9, 0.9])
    """
    chosen = [int(c) for c in chosen]
    cols = tree_columns(vocab, np.zeros(0), chosen, mode)
    known = {int(c): float(v) for c, v in zip(idx, vals, strict=True)}
    known.update({c: float(v) for c, v in zip(chosen, chosen_vals, strict=True)})
    if all(c in known for c in cols):
        return cols, [known[c] for c in cols]
    tree = tree_of(vocab)
    below: dict[int, float] = {}
    for c in chosen:
        p = int(tree.parent[c])
        while p >= 0:
            below[p] = max(below.get(p, -np.inf), known[c])
            p = int(tree.parent[p])
    return cols, [known.get(c, below.get(c, 0.0)) for c in cols]
