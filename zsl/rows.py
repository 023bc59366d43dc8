"""The rows of ``labels.jsonl``: built here, for every scorer, in one place.

One JSON object per labelled item::

    {"id": "n01", "text": "...", "labels": ["sports", "education"], "scores": [0.3525, 0.1991],
     "phrases": [...], "retrieval_labels": [...], "notes": [...], "above_threshold": [...],
     "ancestors": [[...], [...]], "gold": [...], "meta": {...}}

* ``id``; then the item itself: ``text``, or ``image`` (the file path) for images;
* ``labels``: the ``k`` best labels, best first; ``scores``: their scores, aligned;
* fields the scorer adds (:meth:`zsl.base.ScorerMixin.explain`): the text Tagger's
  ``phrases`` (with Infer), ``retrieval_labels`` (with Rank: the ``k`` best before it) and
  ``notes``; a student's ``above_threshold`` (the kept labels at or above its threshold);
* ``ancestors`` of each label (a vocabulary with a hierarchy), the input's gold ``labels`` as
  ``gold``, and its other fields as ``meta``.

Example:
    >>> import numpy as np
    >>> from zsl.data import Item
    >>> from zsl.vocab import LabelVocab
    >>> build_rows([Item("a", "some text")], np.array([[0.1, 0.7, 0.4]]), LabelVocab(["x", "y", "z"]), k=2)
    [{'id': 'a', 'text': 'some text', 'labels': ['y', 'z'], 'scores': [0.7, 0.4]}]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from zsl.base import Ranked, top_k
from zsl.data import Item
from zsl.vocab import LabelVocab

__all__ = ["SCORE_DIGITS", "build_rows", "make_row"]

SCORE_DIGITS = 4  # scores in rows are rounded to this many decimals


def make_row(item: Item, vocab: LabelVocab, idx: np.ndarray, vals: np.ndarray, *, input_field: str = "text",
             fields: Mapping[str, Any] | None = None, k: int | None = None,
             threshold: float | None = None) -> dict[str, Any]:
    """One row from an item and its top-``k`` label columns ``idx`` with their scores ``vals``.

    Args:
        item: the item (its ``text`` is the text, or the image path).
        vocab: the labels.
        idx, vals: the kept columns, best first, and their scores.
        input_field: ``"text"`` or ``"image"``.
        fields: more fields, in row order; a :class:`~zsl.base.Ranked` value becomes its top-``k``
            labels.
        k: how many labels a :class:`~zsl.base.Ranked` field keeps (default: as many as ``idx``).
        threshold: add ``above_threshold``, the kept labels scoring at least this.
    """
    labels = [vocab[int(j)] for j in idx]
    row: dict[str, Any] = {"id": item.id, input_field: item.text, "labels": labels,
                           "scores": [round(float(v), SCORE_DIGITS) for v in vals]}
    for name, value in (fields or {}).items():
        if isinstance(value, Ranked):
            _, ranked = top_k(value.scores, k or len(labels))
            value = [vocab[int(j)] for j in ranked[0]]
        row[name] = value
    if threshold is not None:
        row["above_threshold"] = [lab for lab, v in zip(labels, vals, strict=True) if v >= threshold]
    if vocab.parents is not None:
        row["ancestors"] = [vocab.ancestors(lab) for lab in labels]
    if item.gold is not None:
        row["gold"] = item.gold
    if item.meta:
        row["meta"] = item.meta
    return row


def build_rows(items: Sequence[Item], scores: np.ndarray, vocab: LabelVocab, *, k: int, input_field: str = "text",
               fields: Sequence[Mapping[str, Any]] | None = None, threshold: float | None = None) -> list[dict[str, Any]]:
    """The rows of a batch: ``scores`` is ``(N, K)`` for the N items; top-``k`` is taken once for the batch."""
    if len(items) == 0:
        return []
    vals, idx = top_k(np.asarray(scores), k)
    return [make_row(it, vocab, idx[i], vals[i], input_field=input_field, fields=None if fields is None else fields[i],
                     k=k, threshold=threshold) for i, it in enumerate(items)]
