"""What every scorer in zsl shares: the Scorer contract, one top-k, and the scikit-learn parameter protocol.

A *scorer* turns a batch of items into an ``(N, K)`` float32 score matrix whose column ``j``
is label ``vocab[j]`` (higher: more applicable). Three classes are scorers, and their methods
mean the same thing in all three (scikit-learn's sense):

===============================  ===============================================================
method                           returns
===============================  ===============================================================
``score(items)``                 ``(N, K)`` float32 scores in vocabulary order (the contract)
``predict_proba(items)``         ``(N, K)`` scores in [0, 1]
``predict(items)``               ``(N, K)`` uint8 label sets (multi-hot), like scikit-learn's
                                 multi-label ``predict``
``top_k(items, k)``              per item, the ``k`` best ``(label, score)`` pairs, best first
``config()``                     what changes the outputs (models, prompts, settings), for run
                                 manifests, provenance and cache keys
===============================  ===============================================================

* :class:`zsl.text.tagger.Tagger`: texts, Infer-Retrieve-Rank (label sets: the top ``k``);
* :class:`zsl.image.tagger.ImageTagger`: images, CDUL global-local scores (label sets: the top ``k``);
* :class:`zsl.student.classifier.StudentClassifier`: texts or feature rows, a distilled head (label sets:
  probability at or above its threshold).

The run machinery (:mod:`zsl.runs.labeller`, :func:`zsl.runs.label.label_run`) labels a dataset with any
of them through :class:`Scorer` alone, plus two methods :class:`ScorerMixin` gives every
scorer and a scorer may refine: ``score_batch`` (score what can be scored, say why not for
the rest: an unreadable image) and ``explain`` (one item, with what the row should show
besides its scores: the text Tagger's phrases and notes, and its LM usage).

Example:
    >>> import numpy as np
    >>> vals, idx = top_k(np.array([[0.1, 0.7, 0.7, 0.2]]), 3)
    >>> idx.tolist(), vals.tolist()
    ([[1, 2, 3]], [[0.7, 0.7, 0.2]])
    >>> top_k_sets(np.array([[0.1, 0.7, 0.3]]), 2).tolist()
    [[0, 1, 1]]
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from zsl.errors import InputError

if TYPE_CHECKING:
    from zsl.vocab import LabelVocab

__all__ = ["BatchScores", "ItemScores", "ParamsMixin", "Ranked", "Scorer", "ScorerMixin", "top_k", "top_k_pairs",
           "top_k_sets"]


# -- top-k: the one implementation ------------------------------------------------------------
def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns per row, best first: ``(values, indices)``, both ``(N, min(k, K))``.

    Ties are broken by the lower column index, so the result is deterministic. A 1-D
    ``scores`` counts as one row.

    Raises:
        InputError: ``k < 1``.
    """
    scores = np.atleast_2d(np.asarray(scores))
    if int(k) < 1:
        raise InputError(f"k must be >= 1, got {k}")
    k = min(int(k), scores.shape[1])
    if k == 0:  # no column at all
        empty = np.zeros((scores.shape[0], 0), dtype=np.int64)
        return scores[:, :0], empty
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.tile(
        np.arange(scores.shape[1]), (scores.shape[0], 1))
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return np.take_along_axis(scores, idx, axis=1), idx


def top_k_sets(scores: np.ndarray, k: int) -> np.ndarray:
    """``(N, K)`` uint8 label sets: 1 for each row's ``k`` best columns (ties: lower column)."""
    scores = np.atleast_2d(np.asarray(scores))
    _, idx = top_k(scores, k)
    out = np.zeros(scores.shape, dtype=np.uint8)
    np.put_along_axis(out, idx, 1, axis=1)
    return out


def top_k_pairs(scores: np.ndarray, vocab: Sequence[str], k: int, *, digits: int = 4) -> list[list[tuple[str, float]]]:
    """Per row, the ``k`` best ``(label, score)`` pairs, best first, scores rounded to ``digits``.

    Example:
        >>> top_k_pairs(np.array([[0.25, 0.5]]), ["a", "b"], 1)
        [[('b', 0.5)]]
    """
    vals, idx = top_k(scores, k)
    return [[(vocab[int(j)], round(float(v), digits)) for v, j in zip(vr, ir)] for vr, ir in zip(vals, idx)]


# -- the contract -------------------------------------------------------------------------------
@runtime_checkable
class Scorer(Protocol):
    """Items in, ``(N, K)`` scores out, columns in ``vocab`` order.

    Attributes:
        vocab: the :class:`~zsl.vocab.LabelVocab` whose order the score columns follow.
    """

    vocab: LabelVocab

    def score(self, items: Sequence[Any]) -> np.ndarray:
        """``(N, K)`` float32 scores of a batch of items, higher = more applicable."""
        ...

    def config(self) -> dict[str, Any]:
        """The models, prompts and settings that change the scores (JSON-ready)."""
        ...


@dataclass
class Ranked:
    """A score vector ``(K,)`` that a row shows as its top-``k`` labels (e.g. ``retrieval_labels``)."""

    scores: np.ndarray


@dataclass
class ItemScores:
    """One item scored by :meth:`ScorerMixin.explain`.

    Attributes:
        scores: ``(K,)`` scores in vocabulary order.
        fields: more row fields, in row order (lists, strings, or :class:`Ranked` vectors).
        usage: LM usage per step, ``{"infer": {"calls", "prompt_tokens", "completion_tokens"}, ...}``.
    """

    scores: np.ndarray
    fields: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class BatchScores:
    """A batch scored by :meth:`ScorerMixin.score_batch`: the items that could be scored, and why not the rest.

    Attributes:
        scores: ``(M, K)`` float32 scores of the scored items, in input order.
        ok: the positions (in the batch) of those M items.
        failed: position -> reason, for the items that could not be scored.
    """

    scores: np.ndarray
    ok: list[int]
    failed: dict[int, str] = field(default_factory=dict)


class ScorerMixin:
    """``predict`` (top-k label sets), ``top_k`` (label, score) lists, ``score_batch`` and ``explain``
    for a class with ``score``.

    A class whose label sets are not the top ``k`` (a thresholded student) overrides ``predict``;
    one that can skip unreadable items overrides ``score_batch``; one with more to say about an
    item (phrases, notes, LM usage) overrides ``explain``.
    """

    vocab: LabelVocab
    #: True for a scorer that runs an LLM step: a run then scores item by item with ``explain``
    uses_lm: bool = False

    def score(self, items: Sequence[Any]) -> np.ndarray:  # pragma: no cover - the subclass's job
        raise NotImplementedError

    def score_batch(self, items: Sequence[Any]) -> BatchScores:
        """Score a batch; every item is scored here (a subclass may skip the ones it cannot read)."""
        return BatchScores(np.asarray(self.score(items), dtype=np.float32), list(range(len(items))))

    def explain(self, item: Any) -> ItemScores:
        """Score one item, with whatever more a row should show about it (nothing more here)."""
        return ItemScores(np.asarray(self.score([item]), dtype=np.float32)[0])

    def predict(self, items: Sequence[Any], k: int = 5) -> np.ndarray:
        """``(N, K)`` uint8 label sets: the ``k`` best labels of each item (what ``zsl label -k`` keeps)."""
        if k < 1:
            raise InputError(f"k must be >= 1, got {k}")
        return top_k_sets(self.score(items), k)

    def top_k(self, items: Sequence[Any], k: int = 5) -> list[list[tuple[str, float]]]:
        """The ``k`` best ``(label, score)`` pairs of each item, best first (scores rounded to 4 digits)."""
        if k < 1:
            raise InputError(f"k must be >= 1, got {k}")
        return top_k_pairs(self.score(items), self.vocab.labels, k)


# -- scikit-learn's parameter protocol ------------------------------------------------------------
class ParamsMixin:
    """The scikit-learn parameter protocol without importing scikit-learn.

    ``get_params`` / ``set_params`` read the constructor's signature, so
    ``sklearn.base.clone`` and grid searches work on zsl estimators.
    """

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters (scikit-learn protocol; ``sklearn.base.clone`` works)."""
        return {p: getattr(self, p) for p in self._param_names()}

    def set_params(self, **params: Any) -> ParamsMixin:
        """Set constructor parameters; returns self."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise InputError(f"{type(self).__name__} has no parameter {key!r}; valid: {', '.join(valid)}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
