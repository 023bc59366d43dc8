"""From an ``(N, K)`` score matrix to labels: thresholds, calibration and label-free rules.

Every rule here turns scores (columns in vocabulary order, higher = more applicable) into

* ``labels``: an ``(N, K)`` 0/1 ``uint8`` matrix (the multi-hot pseudo-labels), and
* ``confidence``: an ``(N, K)`` ``float32`` matrix in ``[0, 1]``, ``sigmoid((s - t) / T)``
  for the score ``s``, the threshold ``t`` that applies to that cell and a temperature
  ``T``. It is 0.5 exactly at the threshold, so ``labels == (confidence >= 0.5)`` unless
  ``min_labels`` / ``max_labels`` forced a change. These are the soft targets a student
  is distilled on (:mod:`zsl.student.classifier`).

Rules, all scikit-learn-style estimators (parameters only in ``__init__``, ``fit`` returns
``self``, fitted attributes end in ``_``); ``fit`` needs gold labels only where it says so:

=====================  =========================================================  ==========
rule                   a label is chosen when                                     fit needs
=====================  =========================================================  ==========
:class:`TopK`          it is among the item's ``k`` best scores                   scores
:class:`GlobalThreshold`  its score >= one threshold (fixed, F1-calibrated, or   scores (+ y)
                       set so items get ``labels_per_item`` labels on average)
:class:`PerLabelThreshold`  its score >= that label's F1-best threshold, shrunk   scores + y
                       toward the global one when the label has few examples
:class:`RelativeToMax` its score is within ``margin`` of the item's best score   scores
:class:`LabelZScore`   its score is ``z`` standard deviations above that label's  scores
                       mean over the (unlabelled) fitting items
=====================  =========================================================  ==========

``TopK`` and ``RelativeToMax`` can first standardise each label's column
(``standardize=True``): labels whose text sits close to everything (hubs such as
"neutral") stop winning every item.

Example:
    >>> import numpy as np
    >>> from zsl.scoring import PerLabelThreshold, TopK
    >>> s = np.array([[0.9, 0.2], [0.8, 0.6], [0.3, 0.7], [0.2, 0.1]])
    >>> TopK(k=1).fit(s).predict(s).tolist()
    [[1, 0], [1, 0], [0, 1], [1, 0]]
    >>> y = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    >>> PerLabelThreshold(shrinkage=0).fit(s, y).thresholds_.round(2).tolist()
    [0.55, 0.4]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from zsl.base import ParamsMixin
from zsl.errors import InputError

__all__ = [
    "CATCH_ALL_NAMES",
    "DEFAULT_K",
    "DEFAULT_SET_RULE",
    "RULES",
    "SET_RULES",
    "SET_RULE_PARAMS",
    "CatchAll",
    "Decision",
    "GlobalThreshold",
    "LabelZScore",
    "PerLabelThreshold",
    "PlattCalibrator",
    "RelativeToMax",
    "SetRule",
    "TopK",
    "best_f1_threshold",
    "check_labels",
    "check_scores",
    "get_rule",
    "guess_catch_all",
    "shrink_thresholds",
]


# -- validation -----------------------------------------------------------------------------
def check_scores(scores: Any, *, n_labels: int | None = None, name: str = "scores") -> np.ndarray:
    """Validate an ``(N, K)`` score matrix and return it as float64.

    Args:
        scores: array-like, one row per item, one column per vocabulary label.
        n_labels: the expected number of columns (the vocabulary size), if known.
        name: what to call the array in error messages.

    Returns:
        The scores as a C-contiguous float64 array.

    Raises:
        InputError: not 2-D, no column, wrong number of columns, or NaN/inf values
            (the message gives how many and where the first one is).

    Example:
        >>> check_scores([[0.1, 0.9]]).shape
        (1, 2)
    """
    try:
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a numeric (N, K) array; could not convert it ({exc}).") from None
    if s.ndim == 1:
        raise InputError(f"{name} must be 2-D (N items, K labels); got a 1-D array of length {s.shape[0]}. "
                         f"Fix: for one item pass {name}[None, :].")
    if s.ndim != 2:
        raise InputError(f"{name} must be 2-D (N items, K labels); got shape {s.shape}.")
    if s.shape[1] == 0:
        raise InputError(f"{name} has no column; there must be one column per vocabulary label.")
    if n_labels is not None and s.shape[1] != n_labels:
        raise InputError(f"{name} has {s.shape[1]} columns but the vocabulary (or the fitted rule) has {n_labels} "
                         "labels; columns must follow the vocabulary order one to one.")
    finite = np.isfinite(s)
    if not finite.all():
        bad = np.argwhere(~finite)
        i, j = (int(v) for v in bad[0])
        raise InputError(f"{name} contain {len(bad)} NaN/inf value(s); the first is {s[i, j]} at item {i}, label "
                         f"column {j}. Fix the scorer, or replace them (e.g. np.nan_to_num(scores, nan=-1.0)).")
    return np.ascontiguousarray(s)


def check_labels(y: Any, shape: tuple[int, int], *, name: str = "y") -> np.ndarray:
    """Validate an ``(N, K)`` 0/1 gold matrix that goes with scores of ``shape``.

    Returns:
        ``y`` as a bool array.

    Raises:
        InputError: wrong shape or values other than 0 and 1.
    """
    arr = np.asarray(y)
    if arr.shape != tuple(shape):
        raise InputError(f"{name} has shape {arr.shape} but the scores have shape {tuple(shape)}; they need the "
                         "same items and the same label order. Fix: vocab.to_multi_hot(gold_label_lists).")
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise InputError(f"{name} must contain only 0 and 1 (a multi-hot matrix).")
    return arr.astype(bool)


# -- plain maths ----------------------------------------------------------------------------
def best_f1_threshold(scores: Any, y: Any) -> tuple[float, float]:
    """The threshold ``t`` that maximises F1 of ``scores >= t`` against binary ``y``.

    Every distinct cut is tried; ``t`` is the midpoint between the last score kept and the
    next one (the lowest score when keeping everything is best). On ties in F1 the higher
    threshold wins (fewer positives).

    Args:
        scores: 1-D scores.
        y: 1-D 0/1 gold of the same length, with at least one positive.

    Returns:
        ``(threshold, f1)``.

    Raises:
        InputError: shapes differ, no score, or no positive in ``y`` (F1 is then undefined).

    Example:
        >>> best_f1_threshold([0.9, 0.8, 0.3, 0.2], [1, 1, 0, 0])
        (0.55, 1.0)
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    t = np.asarray(y).ravel().astype(bool)
    if s.shape != t.shape:
        raise InputError(f"scores ({s.size}) and y ({t.size}) must have the same length")
    if s.size == 0:
        raise InputError("best_f1_threshold needs at least one score")
    if not np.isfinite(s).all():
        raise InputError("scores contain NaN/inf; replace them first (np.nan_to_num)")
    n_pos = int(t.sum())
    if n_pos == 0:
        raise InputError("y has no positive example, so F1 is undefined for every threshold")
    order = np.argsort(-s, kind="stable")
    s_sorted, hits = s[order], t[order]
    tp = np.cumsum(hits)
    kept = np.arange(1, s.size + 1)
    f1 = 2.0 * tp / (kept + n_pos)
    # a cut is only possible where the score strictly drops (ties are kept together)
    valid = np.append(s_sorted[:-1] > s_sorted[1:], True)
    f1 = np.where(valid, f1, -1.0)
    i = int(np.argmax(f1))
    thr = float(s_sorted[i]) if i == s.size - 1 else float((s_sorted[i] + s_sorted[i + 1]) / 2.0)
    return round(thr, 12), float(f1[i])


def shrink_thresholds(per_label: Any, support: Any, global_threshold: float, shrinkage: float) -> np.ndarray:
    """Shrink per-label thresholds toward a global one by the number of examples behind each.

    ``t_j = (n_j * t_j_hat + shrinkage * t_global) / (n_j + shrinkage)``: a label seen with
    many positives keeps its own threshold, a rare one stays near the global threshold, and
    one never seen (``n_j = 0``, ``t_j_hat`` may be NaN) gets the global threshold.

    Args:
        per_label: ``(K,)`` per-label thresholds (NaN allowed where ``support`` is 0).
        support: ``(K,)`` positive counts behind each threshold.
        global_threshold: the fallback.
        shrinkage: pseudo-count of the global threshold (0: no shrinkage).

    Returns:
        ``(K,)`` float64 thresholds.

    Example:
        >>> shrink_thresholds([0.8, 0.2, float("nan")], [2, 8, 0], 0.5, 2.0).tolist()
        [0.65, 0.26, 0.5]
    """
    t = np.asarray(per_label, dtype=np.float64)
    n = np.asarray(support, dtype=np.float64)
    if shrinkage < 0:
        raise InputError(f"shrinkage must be >= 0, got {shrinkage}")
    t = np.where(n > 0, t, 0.0)
    denom = n + shrinkage
    out = np.divide(n * t + shrinkage * global_threshold, denom, out=np.full_like(t, global_threshold), where=denom > 0)
    return np.round(out, 12)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# -- the common estimator machinery ---------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """What a rule decided for a batch of items.

    Attributes:
        labels: ``(N, K)`` uint8 multi-hot pseudo-labels.
        confidence: ``(N, K)`` float32 in [0, 1]; 0.5 at the threshold.
        thresholds: the threshold of each cell in score units, broadcastable to ``(N, K)``:
            ``(N, 1)`` for per-item rules, ``(1, K)`` for per-label ones.
    """

    labels: np.ndarray
    confidence: np.ndarray
    thresholds: np.ndarray

    def label_lists(self, vocab: Any) -> list[list[str]]:
        """The chosen label names per item, highest confidence first."""
        out = []
        for row_lab, row_conf in zip(self.labels, self.confidence):
            idx = np.flatnonzero(row_lab)
            idx = idx[np.argsort(-row_conf[idx], kind="stable")]
            out.append([vocab[int(j)] for j in idx])
        return out


class _Rule(ParamsMixin):
    """Shared parts of the rules: parameters, validation, confidence, min/max labels."""

    #: name in :data:`RULES`
    name = ""
    #: does ``fit`` need gold labels?
    needs_y = False

    # -- fitting --------------------------------------------------------------------------
    def fit(self, scores: Any, y: Any = None) -> _Rule:
        """Learn what the rule needs from scores (and gold ``y`` where the rule needs it).

        Args:
            scores: ``(N, K)`` scores in vocabulary order.
            y: ``(N, K)`` 0/1 gold labels, for the calibrated rules.

        Returns:
            self.
        """
        self._check_params()
        s = check_scores(scores)
        yy = None if y is None else check_labels(y, s.shape)
        if self.needs_y and yy is None:
            raise InputError(f"{type(self).__name__}.fit needs gold labels y (an (N, K) 0/1 matrix for a few "
                             "labelled items). Without labels use TopK, RelativeToMax, LabelZScore or "
                             "GlobalThreshold(labels_per_item=...).")
        self.n_labels_ = s.shape[1]
        self._fit(s, yy)
        if getattr(self, "temperature", None) is not None:
            self.temperature_ = float(self.temperature)
        else:
            self.temperature_ = self._auto_temperature(s)
        return self

    def _check_params(self) -> None:
        min_labels = getattr(self, "min_labels", 0)
        max_labels = getattr(self, "max_labels", None)
        if min_labels < 0:
            raise InputError(f"min_labels must be >= 0, got {min_labels}")
        if max_labels is not None and max_labels < max(1, min_labels):
            raise InputError(f"max_labels must be >= max(1, min_labels), got {max_labels}")
        temp = getattr(self, "temperature", None)
        if temp is not None and not temp > 0:
            raise InputError(f"temperature must be > 0 (or None for automatic), got {temp}")

    def _fit(self, s: np.ndarray, y: np.ndarray | None) -> None:
        """Rule-specific fitting; ``s`` is validated float64."""

    def _auto_temperature(self, s: np.ndarray) -> float:
        # Half a standard deviation of the scores: one std above the threshold reads as
        # confidence ~0.88. Rules working in z-units override this with 0.5.
        sd = float(np.std(self._transform(s)))
        return 0.5 * sd if sd > 1e-12 else 1.0

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_labels_"):
            how = "rule.fit(scores, y) with a few labelled items" if self.needs_y else "rule.fit(scores) (no labels needed)"
            raise InputError(f"This {type(self).__name__} is not fitted yet. Fix: call {how} first, or use fit_decide().")

    # -- applying -------------------------------------------------------------------------
    def _transform(self, s: np.ndarray) -> np.ndarray:
        """The space the threshold lives in (scores, or per-label z-scores)."""
        mean = getattr(self, "mean_", None)
        if mean is None:
            return s
        return (s - mean) / self.std_

    def _thresholds(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _labels(self, z: np.ndarray, thr: np.ndarray) -> np.ndarray:
        return z >= thr

    def decide(self, scores: Any) -> Decision:
        """Labels, confidences and thresholds for ``scores``.

        Args:
            scores: ``(N, K)`` scores in the column order the rule was fitted on.

        Returns:
            a :class:`Decision`.
        """
        self._check_fitted()
        s = check_scores(scores, n_labels=self.n_labels_)
        z = self._transform(s)
        thr = np.asarray(self._thresholds(z), dtype=np.float64)
        labels = self._labels(z, thr)
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.where(np.isneginf(np.broadcast_to(thr, z.shape)), np.inf, z - thr)
            conf = _sigmoid(diff / self.temperature_)
        labels = _limit(labels, z, getattr(self, "min_labels", 0), getattr(self, "max_labels", None))
        return Decision(labels.astype(np.uint8), conf.astype(np.float32), self._to_score_units(thr))

    def _to_score_units(self, thr: np.ndarray) -> np.ndarray:
        mean = getattr(self, "mean_", None)
        if mean is None:
            return thr
        return thr * self.std_ + mean

    def predict(self, scores: Any) -> np.ndarray:
        """The ``(N, K)`` uint8 multi-hot labels."""
        return self.decide(scores).labels

    def confidence(self, scores: Any) -> np.ndarray:
        """The ``(N, K)`` float32 confidence of every (item, label) pair."""
        return self.decide(scores).confidence

    def fit_decide(self, scores: Any, y: Any = None) -> Decision:
        """``fit(scores, y)`` then ``decide(scores)``."""
        return self.fit(scores, y).decide(scores)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready record of the rule, its parameters and fitted thresholds (for provenance)."""
        self._check_fitted()
        out: dict[str, Any] = {"rule": self.name, "params": _jsonable(self.get_params()),
                               "temperature": round(self.temperature_, 6)}
        out.update(self._describe_fitted())
        return out

    def _describe_fitted(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if getattr(self, "mean_", None) is not None:
            out["label_mean"] = _round_list(self.mean_.ravel())
            out["label_std"] = _round_list(self.std_.ravel())
        return out


def _round_list(a: np.ndarray, nd: int = 6) -> list[float]:
    return [round(float(v), nd) for v in np.asarray(a).ravel()]


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in params.items():
        if isinstance(v, np.generic):
            v = v.item()
        out[k] = v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
    return out


def _largest_drop(s: np.ndarray, k: int) -> np.ndarray:
    """Each row's labels scoring at least the one just above the largest drop among its ``k + 1`` best scores
    (the first such drop on ties: fewer labels); a row of one column keeps it."""
    top = -np.sort(-s, axis=1)[:, :k + 1]
    if top.shape[1] < 2:
        return np.ones(s.shape, dtype=bool)
    cut = (top[:, :-1] - top[:, 1:]).argmax(axis=1)
    return s >= top[np.arange(len(s)), cut][:, None]


def _limit(labels: np.ndarray, z: np.ndarray, min_labels: int, max_labels: int | None) -> np.ndarray:
    """Give every item at least ``min_labels`` and at most ``max_labels`` labels (best first)."""
    if not min_labels and max_labels is None:
        return labels
    labels = labels.copy()
    order = np.argsort(-z, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(z.shape[1])[None, :].repeat(z.shape[0], 0), axis=1)
    if min_labels:
        labels |= rank < min(min_labels, z.shape[1])
    if max_labels is not None:
        labels &= rank < max_labels
    return labels


def _standardize_fit(rule: _Rule, s: np.ndarray) -> None:
    if getattr(rule, "standardize", False):
        rule.mean_ = s.mean(axis=0, keepdims=True)
        std = s.std(axis=0, keepdims=True)
        rule.std_ = np.where(std > 1e-12, std, 1.0)
    else:
        rule.mean_ = None
        rule.std_ = None


# -- label-free rules -----------------------------------------------------------------------
class TopK(_Rule):
    """Choose each item's ``k`` best-scoring labels.

    Args:
        k: labels per item.
        standardize: z-score each label's column (mean/std learned in ``fit``) before
            ranking, so labels that score high on every item do not win everywhere.
        temperature: confidence temperature in score units (z units when standardising);
            None: half the standard deviation of the fitted scores.

    Attributes:
        n_labels_, temperature_, mean_, std_ (``(1, K)`` when standardising, else None).

    Example:
        >>> import numpy as np
        >>> TopK(k=2).fit_decide(np.array([[0.1, 0.5, 0.3]])).labels.tolist()
        [[0, 1, 1]]
    """

    name = "top_k"

    def __init__(self, k: int = 1, *, standardize: bool = False, temperature: float | None = None):
        self.k = k
        self.standardize = standardize
        self.temperature = temperature

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise InputError(f"k must be an integer >= 1, got {self.k!r}")

    def _fit(self, s: np.ndarray, y: np.ndarray | None) -> None:
        _standardize_fit(self, s)

    def _auto_temperature(self, s: np.ndarray) -> float:
        return 0.5 if self.standardize else super()._auto_temperature(s)

    def _thresholds(self, z: np.ndarray) -> np.ndarray:
        n, k_all = z.shape
        if self.k >= k_all:
            return np.full((n, 1), -np.inf)
        part = -np.partition(-z, (self.k - 1, self.k), axis=1)
        return ((part[:, self.k - 1] + part[:, self.k]) / 2.0)[:, None]

    def _labels(self, z: np.ndarray, thr: np.ndarray) -> np.ndarray:
        k = min(self.k, z.shape[1])
        top = np.argsort(-z, axis=1, kind="stable")[:, :k]  # ties: lower column wins
        out = np.zeros(z.shape, dtype=bool)
        np.put_along_axis(out, top, True, axis=1)
        return out


class RelativeToMax(_Rule):
    """Choose the labels whose score is within ``margin`` of the item's best score.

    The item's best label is always chosen unless ``min_score`` is set and the best score
    is below it (then the item gets no label). Works on any score scale; ``margin`` is in
    score units (z units with ``standardize=True``).

    Args:
        margin: how far below the item's maximum a label may score and still be chosen.
        min_score: an absolute floor on chosen scores (None: no floor).
        standardize: z-score each label's column first (see :class:`TopK`).
        max_labels: keep at most this many labels per item.
        temperature: confidence temperature (None: automatic).

    Example:
        >>> import numpy as np
        >>> RelativeToMax(margin=0.1).fit_decide(np.array([[0.50, 0.45, 0.2]])).labels.tolist()
        [[1, 1, 0]]
    """

    name = "relative_to_max"

    def __init__(self, margin: float = 0.05, *, min_score: float | None = None, standardize: bool = False,
                 max_labels: int | None = None, temperature: float | None = None):
        self.margin = margin
        self.min_score = min_score
        self.standardize = standardize
        self.max_labels = max_labels
        self.temperature = temperature

    def _check_params(self) -> None:
        super()._check_params()
        if not self.margin >= 0:
            raise InputError(f"margin must be >= 0, got {self.margin}")

    def _fit(self, s: np.ndarray, y: np.ndarray | None) -> None:
        _standardize_fit(self, s)

    def _auto_temperature(self, s: np.ndarray) -> float:
        return 0.5 if self.standardize else super()._auto_temperature(s)

    def _thresholds(self, z: np.ndarray) -> np.ndarray:
        thr = z.max(axis=1, keepdims=True) - self.margin
        if self.min_score is not None:
            thr = np.maximum(thr, self.min_score)
        return thr


class LabelZScore(_Rule):
    """Choose a label for an item when its score is unusually high *for that label*.

    ``fit`` learns each label's mean and standard deviation over unlabelled items; a label
    is chosen when ``(score - mean_j) / std_j >= z``. This corrects labels whose text sits
    close to every item (they have a high mean) and rare, sharply-scoring ones.

    Args:
        z: the z-score a label must reach.
        min_labels: give every item at least this many labels (its best z-scores).
        max_labels: keep at most this many labels per item.
        temperature: confidence temperature in z units (None: 0.5).

    Attributes:
        mean_, std_: ``(1, K)`` per-label statistics of the fitting scores.

    Example:
        >>> import numpy as np
        >>> s = np.array([[0.9, 0.5], [0.1, 0.5], [0.2, 0.9], [0.2, 0.1]])
        >>> LabelZScore(z=1.0).fit_decide(s).labels.tolist()
        [[1, 0], [0, 0], [0, 1], [0, 0]]
    """

    name = "label_zscore"

    def __init__(self, z: float = 1.5, *, min_labels: int = 0, max_labels: int | None = None,
                 temperature: float | None = None):
        self.z = z
        self.min_labels = min_labels
        self.max_labels = max_labels
        self.temperature = temperature

    def _fit(self, s: np.ndarray, y: np.ndarray | None) -> None:
        if s.shape[0] < 2:
            raise InputError(f"LabelZScore.fit needs at least 2 items to estimate per-label spread, got {s.shape[0]}")
        self.mean_ = s.mean(axis=0, keepdims=True)
        std = s.std(axis=0, keepdims=True)
        self.std_ = np.where(std > 1e-12, std, 1.0)

    def _auto_temperature(self, s: np.ndarray) -> float:
        return 0.5

    def _thresholds(self, z: np.ndarray) -> np.ndarray:
        return np.full((1, z.shape[1]), float(self.z))


# -- thresholds (fixed, or calibrated on a few labelled items) -----------------------------
class GlobalThreshold(_Rule):
    """One threshold for every label.

    Where the threshold comes from, in order: ``threshold`` if given; else, when ``fit``
    gets gold ``y``, the threshold that maximises micro-F1 on those items; else (no labels)
    the score quantile that gives items ``labels_per_item`` labels on average.

    Args:
        threshold: a fixed threshold in score units.
        labels_per_item: the average label count to aim for when there is neither a fixed
            threshold nor gold labels.
        min_labels: give every item at least this many labels (its best scores).
        max_labels: keep at most this many labels per item.
        temperature: confidence temperature (None: half the std of the fitted scores).

    Attributes:
        threshold_: the threshold used.

    Example:
        >>> import numpy as np
        >>> s = np.array([[0.9, 0.2], [0.4, 0.7]])
        >>> GlobalThreshold(threshold=0.5).fit(s).predict(s).tolist()
        [[1, 0], [0, 1]]
        >>> GlobalThreshold().fit(s, np.array([[1, 0], [1, 1]])).threshold_
        0.3
    """

    name = "global_threshold"

    def __init__(self, threshold: float | None = None, *, labels_per_item: float = 1.0, min_labels: int = 0,
                 max_labels: int | None = None, temperature: float | None = None):
        self.threshold = threshold
        self.labels_per_item = labels_per_item
        self.min_labels = min_labels
        self.max_labels = max_labels
        self.temperature = temperature

    def _fit(self, s: np.ndarray, y: np.ndarray | None) -> None:
        if self.threshold is not None:
            if not math.isfinite(self.threshold):
                raise InputError(f"threshold must be finite, got {self.threshold}")
            self.threshold_ = float(self.threshold)
            self.source_ = "fixed"
        elif y is not None and y.any():
            self.threshold_, _ = best_f1_threshold(s.ravel(), y.ravel())
            self.source_ = "micro_f1"
        else:
            if y is not None:
                raise InputError("y has no positive label at all, so no F1-best threshold exists. Give labelled "
                                 "items with at least one label, or fit without y (labels_per_item rule).")
            k = s.shape[1]
            if not 0 < self.labels_per_item <= k:
                raise InputError(f"labels_per_item must be in (0, {k}], got {self.labels_per_item}")
            q = 1.0 - self.labels_per_item / k
            self.threshold_ = float(np.quantile(s.ravel(), q, method="higher")) if q > 0 else float(s.min())
            self.source_ = "labels_per_item"

    def _thresholds(self, z: np.ndarray) -> np.ndarray:
        return np.full((1, z.shape[1]), self.threshold_)

    def _describe_fitted(self) -> dict[str, Any]:
        return {"threshold": round(self.threshold_, 6), "source": self.source_}


class PerLabelThreshold(_Rule):
    """One threshold per label, each maximising that label's F1 on a few labelled items.

    Labels with few positive examples overfit easily, so each threshold is shrunk toward
    the global (micro-F1-best, or given) threshold by :func:`shrink_thresholds`; a label
    with no positive example gets the global threshold.

    Args:
        shrinkage: pseudo-count of the global threshold (0: pure per-label optima).
        global_threshold: the fallback threshold; None: the micro-F1-best one on ``y``.
        min_labels: give every item at least this many labels.
        max_labels: keep at most this many labels per item.
        temperature: confidence temperature (None: half the std of the fitted scores).

    Attributes:
        thresholds_: ``(K,)`` the thresholds used.
        global_threshold_: the fallback used.
        support_: ``(K,)`` positives per label in the calibration items.
        raw_thresholds_: ``(K,)`` per-label optima before shrinkage (NaN without support).

    Example:
        >>> import numpy as np
        >>> s = np.array([[0.9, 0.1], [0.6, 0.8], [0.2, 0.3]])
        >>> y = np.array([[1, 0], [1, 1], [0, 0]])
        >>> PerLabelThreshold(shrinkage=0).fit(s, y).thresholds_.tolist()
        [0.4, 0.55]
    """

    name = "per_label_threshold"
    needs_y = True

    def __init__(self, shrinkage: float = 5.0, *, global_threshold: float | None = None, min_labels: int = 0,
                 max_labels: int | None = None, temperature: float | None = None):
        self.shrinkage = shrinkage
        self.global_threshold = global_threshold
        self.min_labels = min_labels
        self.max_labels = max_labels
        self.temperature = temperature

    def _fit(self, s: np.ndarray, y: np.ndarray | None) -> None:
        assert y is not None
        if self.shrinkage < 0:
            raise InputError(f"shrinkage must be >= 0, got {self.shrinkage}")
        if self.global_threshold is not None:
            self.global_threshold_ = float(self.global_threshold)
        else:
            if not y.any():
                raise InputError("y has no positive label at all: per-label calibration needs labelled items with "
                                 "labels. Fix: label a few items, pass global_threshold=..., or use a label-free "
                                 "rule (TopK, RelativeToMax, LabelZScore).")
            self.global_threshold_, _ = best_f1_threshold(s.ravel(), y.ravel())
        support = y.sum(axis=0)
        raw = np.full(s.shape[1], np.nan)
        for j in np.flatnonzero(support):
            raw[j], _ = best_f1_threshold(s[:, j], y[:, j])
        self.support_ = support.astype(np.int64)
        self.raw_thresholds_ = raw
        self.thresholds_ = shrink_thresholds(raw, support, self.global_threshold_, self.shrinkage)

    def _thresholds(self, z: np.ndarray) -> np.ndarray:
        return self.thresholds_[None, :]

    def _describe_fitted(self) -> dict[str, Any]:
        return {"thresholds": _round_list(self.thresholds_), "global_threshold": round(self.global_threshold_, 6),
                "support": [int(v) for v in self.support_]}


RULES: dict[str, type[_Rule]] = {
    "top_k": TopK,
    "relative_to_max": RelativeToMax,
    "label_zscore": LabelZScore,
    "global_threshold": GlobalThreshold,
    "per_label_threshold": PerLabelThreshold,
}


def get_rule(name: str, **params: Any) -> _Rule:
    """Build a rule by name (for CLIs and configs).

    Args:
        name: one of :data:`RULES` (``-`` and ``_`` are interchangeable).
        **params: constructor parameters of that rule.

    Returns:
        an unfitted rule.

    Example:
        >>> get_rule("top-k", k=2)
        TopK(k=2, standardize=False, temperature=None)
    """
    key = name.strip().lower().replace("-", "_")
    cls = RULES.get(key)
    if cls is None:
        raise InputError(f"Unknown labelling rule {name!r}. Available: {', '.join(RULES)}")
    try:
        return cls(**params)
    except TypeError as exc:
        raise InputError(f"Bad parameters for rule {key!r} ({exc}); valid: {', '.join(cls._param_names())}") from None


# -- the rule behind a run's rows: item-local, so chunks and resumes give the same sets ---------
SET_RULES = ("gap", "topk", "relative", "zscore", "threshold", "fitted")
#: the rule of ``zsl label`` for a vocabulary without examples, chosen by measurement (README, "Label sets";
#: ``python -m benchmarks.setrules``)
DEFAULT_SET_RULE = "gap"
DEFAULT_K = 5
#: a program's fitted thresholds choose within the item's ``gap`` set of this many labels: thresholds fitted on a
#: few examples per label (a balanced draw) set rare labels' bars too low, and alone they chose worse sets than the
#: gap rule on the same scores on GoEmotions and Reuters (``python -m benchmarks.labelsets``)
FITTED_GAP_K = 3
#: each label-free rule's parameter (the CLI flag of the same name) and its default
SET_RULE_PARAMS = {"gap": ("k", 3), "topk": ("k", DEFAULT_K), "relative": ("margin", 0.02), "zscore": ("z", 1.5),
                   "threshold": ("threshold", None)}


@dataclass(frozen=True)
class SetRule:
    """How each item's label set (a run row's ``labels``) is chosen from its scores, one item at a time.

    Every rule here is *item-local*: an item's set depends on its own scores only, never on the
    other items of the batch. That is what keeps a run resumable and its rows byte-identical
    however the input is cut into chunks. So the label-free rules of this module that learn from
    many items (:class:`LabelZScore`'s per-label statistics, :class:`GlobalThreshold`'s
    ``labels_per_item`` quantile) are not offered here; their item-local counterparts are:

    * ``gap``: the best labels down to the largest drop between consecutive scores among the
      item's ``k + 1`` best (so 1 to ``k`` labels: where the item's own scores fall off);
    * ``topk``: the ``k`` best labels (:class:`TopK`; ties: the lower column);
    * ``relative``: labels scoring within ``margin`` of the item's best (:class:`RelativeToMax`);
    * ``zscore``: labels whose score is ``z`` standard deviations above the mean of the item's
      own scores over the vocabulary (the item's row standardised, not each label's column);
    * ``threshold``: labels scoring at least ``threshold`` (:class:`GlobalThreshold` with a fixed
      threshold);
    * ``fitted``: per-label ``thresholds`` fitted on examples (:class:`PerLabelThreshold`, from
      ``zsl fit``), or a student's one threshold; with ``k``, only within the item's ``gap`` set
      of ``k`` (a program's thresholds: :data:`FITTED_GAP_K`): the thresholds drop the weak
      labels of the set the item's own scores give, and never add a label past its largest drop.

    Then every item keeps at least ``min_labels`` (its best) and at most ``max_labels``.

    Attributes:
        name: one of :data:`SET_RULES`.
        k, margin, z, threshold: the rule's parameter (the others are None); ``k`` is also the
            ``fitted`` rule's gap bound (None: its thresholds alone).
        thresholds: ``fitted``: one threshold per label in vocabulary order (or one number).
        min_labels, max_labels: bounds on the set's size (None: no upper bound).

    Example:
        >>> import numpy as np
        >>> SetRule("relative", margin=0.1).choose(np.array([[0.50, 0.45, 0.2], [0.1, 0.9, 0.3]])).tolist()
        [[True, True, False], [False, True, False]]
        >>> SetRule("topk", k=2).record()
        {'name': 'topk', 'k': 2, 'min_labels': 0, 'max_labels': None, 'fitted': False}
    """

    name: str
    k: int | None = None
    margin: float | None = None
    z: float | None = None
    threshold: float | None = None
    thresholds: tuple[float, ...] | None = None
    min_labels: int = 0
    max_labels: int | None = None

    def __post_init__(self) -> None:
        if self.name not in SET_RULES:
            raise InputError(f"Unknown label-set rule {self.name!r}. Available: {', '.join(SET_RULES[:-1])} (and "
                             "'fitted', the thresholds a program from `zsl fit` brings).")
        param = SET_RULE_PARAMS.get(self.name, ("thresholds", None))[0]
        value = getattr(self, param)
        if self.name == "fitted" and self.k is not None and (not isinstance(self.k, int | np.integer) or self.k < 1):
            raise InputError(f"the fitted rule's k (its gap bound) must be an integer >= 1 or None, got {self.k!r}")
        if value is None:
            raise InputError(f"The {self.name!r} rule needs its {param}; got none. Fix: pass --{param} VALUE.")
        if self.name in ("gap", "topk") and (not isinstance(value, int | np.integer) or value < 1):
            raise InputError(f"k must be an integer >= 1, got {value!r}")
        if self.name in ("relative", "zscore") and not (math.isfinite(value) and value >= 0):
            raise InputError(f"{param} must be a finite number >= 0, got {value!r}")
        if self.name == "threshold" and not math.isfinite(value):
            raise InputError(f"threshold must be a finite number, got {value!r}")
        if self.min_labels < 0 or (self.max_labels is not None and self.max_labels < max(1, self.min_labels)):
            raise InputError(f"min_labels must be >= 0 and max_labels >= max(1, min_labels); got {self.min_labels} "
                             f"and {self.max_labels}.")

    def choose(self, scores: Any) -> np.ndarray:
        """The ``(N, K)`` bool sets of a batch of items (each row from that item's scores alone)."""
        s = check_scores(scores)
        if self.name == "topk":
            chosen = TopK(k=self.k).fit(s).predict(s).astype(bool)  # TopK without standardize is item-local
        elif self.name == "gap":
            chosen = _largest_drop(s, int(self.k))
        elif self.name == "relative":
            chosen = RelativeToMax(margin=self.margin).fit(s).predict(s).astype(bool)
        elif self.name == "zscore":  # the item's own row standardised: no statistics across items
            sd = s.std(axis=1, keepdims=True)
            chosen = (s - s.mean(axis=1, keepdims=True)) >= self.z * np.where(sd > 1e-12, sd, np.inf)
        elif self.name == "threshold":
            chosen = GlobalThreshold(threshold=self.threshold).fit(s).predict(s).astype(bool)
        else:
            thr = np.asarray(self.thresholds, dtype=np.float64).ravel()
            if thr.size not in (1, s.shape[1]):
                raise InputError(f"the fitted rule has {thr.size} thresholds but the scores have {s.shape[1]} labels; "
                                 "the program was fitted on another vocabulary. Fix: fit it again on this one.")
            chosen = s >= thr[None, :]
            if self.k is not None:
                chosen &= _largest_drop(s, int(self.k))
        return _limit(chosen, s, self.min_labels, self.max_labels)

    def record(self) -> dict[str, Any]:
        """The rule as a run's manifest and sidecar record it (what makes its sets: name, parameter, bounds)."""
        param = SET_RULE_PARAMS.get(self.name, ("thresholds", None))[0]
        value = getattr(self, param)
        if param == "thresholds":
            value = _round_list(np.atleast_1d(np.asarray(value, dtype=np.float64)), 12)
        gap = {"k": self.k} if param == "thresholds" and self.k is not None else {}  # thresholds alone: as before
        return {"name": self.name, param: value, **gap, "min_labels": self.min_labels, "max_labels": self.max_labels,
                "fitted": self.name == "fitted"}
# -- catch-all labels ("none of the others") ------------------------------------------------
#: label names that usually mean "none of the others" (compared lower-cased, after stripping
#: punctuation); ``Basics (...)``-style and ``other ...`` / ``... (other)`` labels are matched by
#: :func:`guess_catch_all` too.
CATCH_ALL_NAMES = frozenset({
    "neutral", "other", "others", "none", "none of the above", "none of these", "no label", "misc", "miscellaneous",
    "general", "unknown", "unclassified", "uncategorized", "uncategorised", "not applicable", "n/a", "na", "no emotion",
    "no topic", "nothing", "irrelevant", "not relevant", "other topics", "everything else", "rest"})


def guess_catch_all(labels: Any) -> list[str]:
    """The labels whose name says they mean "none of the others" (``neutral``, ``other``, ``misc``,
    ``none``, ``Basics (cooking)``, ``other - finance`` ...).

    A guess from names only: ``zsl label`` reports it in the run log and manifest, and
    ``--no-catch-all-guess`` turns it off (``--catch-all LABEL`` names them explicitly). In a
    vocabulary with a tree only top-level labels without children are guessed: "none of the
    others" is a statement about every label, and a ``Basics (Physics)`` under ``Physics`` is a
    topic of its branch (on HWV, guessing its 50 ``Basics``/``Other`` labels took the retrieval
    run's hierarchical F1 from 51.4 to 22.6).

    Args:
        labels: the vocabulary's labels (any iterable of strings, e.g. a ``LabelVocab``; its
            ``tree``, if any, restricts the guess as above).

    Returns:
        The matching labels, in vocabulary order.

    Example:
        >>> guess_catch_all(["joy", "neutral", "anger", "Other (finance)", "Basics (cooking)", "another"])
        ['neutral', 'Other (finance)', 'Basics (cooking)']
    """
    import re

    out = []
    tree = getattr(labels, "tree", None)
    for j, label in enumerate(labels):
        if tree is not None and not (tree.parent[j] < 0 and tree.leaves[j]):
            continue  # not a top-level leaf of the tree
        name = re.sub(r"[\s_\-]+", " ", str(label).strip().lower()).strip(" .:;!?*")
        head = re.split(r"\s*[(\[:/,-]\s*", name, maxsplit=1)[0].strip()
        if name in CATCH_ALL_NAMES or head in {"other", "others", "misc", "miscellaneous", "none", "basics", "basic"}:
            out.append(str(label))
    return out


_TIE = 1e-9  # a best other score exactly at the pivot leaves the catch-all on top


def _separates(m: np.ndarray, gold: np.ndarray) -> bool:
    """Whether a low best-other score ``m`` marks the catch-all items ``gold`` better than chance: the
    rank AUC P(m of a catch-all item < m of another) above 0.5 by 1.645 of its standard deviation
    under no separation (a one-sided 5% test; ties count half)."""
    n1, n0 = int(gold.sum()), int((~gold).sum())
    if n1 == 0 or n0 == 0:
        return False
    order = np.argsort(m, kind="stable")
    _, start, counts = np.unique(m[order], return_index=True, return_counts=True)
    ranks = np.empty(len(m))
    ranks[order] = np.repeat(start + (counts + 1) / 2.0, counts)  # 1-based ranks, ties averaged
    auc = 1.0 - (ranks[gold].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0)
    return bool(auc > 0.5 + 1.645 * np.sqrt((n0 + n1 + 1) / (12.0 * n0 * n1)))


class CatchAll(ParamsMixin):
    """Score catch-all labels from the absence of evidence for the others, and keep them out of mixed sets.

    A catch-all label (``neutral``, ``other``) is never *expressed* by a text, so neither
    retrieval similarity nor the Rank step's "is it expressed?" can make it win. This replaces
    each catch-all column of an ``(N, K)`` score matrix by a monotone decreasing function of
    the item's best score over the other labels ``m``:

        ``s_catch_all = 2 * pivot_ - m``

    so the catch-all is the item's best label exactly when ``m <= pivot_`` (no other label has
    more evidence than the pivot asks for; a tie goes to the catch-all by a margin of
    ``1e-9``), and its score equals ``m`` at the pivot (the other rules and thresholds work on
    it unchanged). ``fit`` chooses ``pivot_``: zero-shot, the ``quantile`` of ``m`` over the
    fitting items (``quantile=0.2``: the fifth of the items with the least evidence, a default
    fixed before any measurement); with gold labels for the catch-all, the cut of ``m`` that
    maximises its F1 on them, shrunk toward that quantile by ``shrinkage`` pseudo-examples
    (:func:`shrink_thresholds`: 8 examples of a catch-all give a noisy F1 optimum, because
    ``m`` separates "none of these" from the rest only loosely). That cut is used only when the
    examples show the separation: their catch-all items' ``m`` must sit below the others' more
    often than chance would put them (the rank AUC above its one-sided 5% bar under no
    separation, :func:`_separates`); otherwise the quantile pivot of the examples' ``m`` is kept
    (on 182 GoEmotions train examples, 8 of them ``neutral``, the AUC was 0.37-0.43 and the F1
    cut gave ``neutral`` to 62% of new comments). Several catch-all columns all get the derived
    score.

    Args:
        columns: the catch-all columns (vocabulary indices).
        quantile: the zero-shot pivot's quantile of ``m``.
        pivot: a fixed pivot in score units (overrides both ways of fitting).
        mix: allow a catch-all in the same set as a real label (:meth:`exclusive` then does nothing).
        shrinkage: pseudo-count of the quantile pivot when fitting on gold labels.

    Attributes:
        pivot_: the pivot used. source_: ``"fixed"``, ``"examples"``, ``"quantile"`` or
            ``"quantile (the examples do not separate it)"``.

    Example:
        >>> import numpy as np
        >>> s = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.0]])   # column 2 is "neutral"
        >>> ca = CatchAll([2], pivot=0.5).fit(s)
        >>> ca.transform(s)[:, 2].round(2).tolist()
        [0.1, 0.7]
        >>> ca.exclusive(np.array([[1, 0, 1], [0, 1, 1]]), ca.transform(s)).tolist()
        [[1, 0, 0], [0, 0, 1]]
    """

    def __init__(self, columns: Any, *, quantile: float = 0.2, pivot: float | None = None, mix: bool = False,
                 shrinkage: float = 5.0):
        self.columns = columns
        self.quantile = quantile
        self.pivot = pivot
        self.mix = mix
        self.shrinkage = shrinkage

    def _cols(self, n_labels: int) -> np.ndarray:
        cols = np.unique(np.asarray(list(self.columns), dtype=np.int64))
        if cols.size and (cols.min() < 0 or cols.max() >= n_labels):
            raise InputError(f"catch-all columns must be in [0, {n_labels}); got {cols.tolist()}")
        if cols.size >= n_labels:
            raise InputError("every label is a catch-all: at least one label must be a real one. Fix: name fewer "
                             "catch-all labels (or pass --no-catch-all-guess).")
        return cols

    def best_other(self, scores: Any) -> np.ndarray:
        """``(N,)`` each item's best score over the labels that are not catch-alls."""
        s = check_scores(scores)
        keep = np.ones(s.shape[1], dtype=bool)
        keep[self._cols(s.shape[1])] = False
        return s[:, keep].max(axis=1)

    def fit(self, scores: Any, y: Any = None) -> CatchAll:
        """Choose ``pivot_`` (see the class docstring); ``y`` is an optional ``(N, K)`` gold matrix."""
        s = check_scores(scores)
        cols = self._cols(s.shape[1])
        m = self.best_other(s)
        self.n_labels_ = s.shape[1]
        self.columns_ = cols
        gold = None if y is None else check_labels(y, s.shape)[:, cols].any(axis=1)
        if not 0.0 <= self.quantile <= 1.0:
            raise InputError(f"quantile must be in [0, 1], got {self.quantile}")
        zero_shot = float(np.quantile(m, self.quantile))
        if self.pivot is not None:
            self.pivot_, self.source_ = float(self.pivot), "fixed"
        elif gold is not None and cols.size and gold.any() and _separates(m, gold):
            thr, _ = best_f1_threshold(-m, gold)  # the catch-all applies when m is *below* the cut
            n = np.array([gold.sum()])
            self.pivot_ = float(shrink_thresholds(np.array([-thr]), n, zero_shot, self.shrinkage)[0])
            self.source_ = "examples"
        else:  # zero-shot, or examples in which a low m does not mark the catch-all (their F1 cut is noise)
            self.pivot_ = zero_shot
            self.source_ = "quantile" if gold is None or not gold.any() else "quantile (the examples do not separate it)"
        return self

    def transform(self, scores: Any) -> np.ndarray:
        """``scores`` (float64 copy) with every catch-all column replaced by ``2 * pivot_ - m``."""
        if not hasattr(self, "pivot_"):
            raise InputError("This CatchAll is not fitted yet. Fix: call catch_all.fit(scores[, y]) first.")
        s = check_scores(scores, n_labels=self.n_labels_).copy()
        if self.columns_.size:
            s[:, self.columns_] = (2.0 * self.pivot_ - self.best_other(s) + _TIE)[:, None]
        return s

    def fit_transform(self, scores: Any, y: Any = None) -> np.ndarray:
        """``fit(scores, y)`` then ``transform(scores)``."""
        return self.fit(scores, y).transform(scores)

    def exclusive(self, labels: Any, scores: Any) -> np.ndarray:
        """Never a catch-all beside a real label: in a set holding both, the catch-all stays alone when it
        scores above every chosen real label, and is dropped otherwise (unless ``mix``); of several chosen
        catch-alls only the best stays.

        Args:
            labels: ``(N, K)`` 0/1 chosen sets.
            scores: the ``(N, K)`` scores the sets were chosen from (catch-alls already transformed).

        Returns:
            ``(N, K)`` uint8 sets.
        """
        lab = np.asarray(labels).astype(bool).copy()
        s = check_scores(scores, n_labels=lab.shape[1])
        cols = self._cols(lab.shape[1]) if not hasattr(self, "columns_") else self.columns_
        if self.mix or not cols.size:
            return lab.astype(np.uint8)
        real = np.ones(lab.shape[1], dtype=bool)
        real[cols] = False
        has_ca, has_real = lab[:, cols].any(axis=1), lab[:, real].any(axis=1)
        both = has_ca & has_real
        best_ca = np.where(lab[:, cols], s[:, cols], -np.inf).max(axis=1)
        best_real = np.where(lab[:, real], s[:, real], -np.inf).max(axis=1)
        ca_wins = both & (best_ca >= best_real)
        lab[np.ix_(ca_wins, real)] = False
        lab[np.ix_(both & ~ca_wins, cols)] = False
        several = np.flatnonzero(lab[:, cols].sum(axis=1) > 1)  # one catch-all at most: they say the same thing
        if several.size:
            sub = np.where(lab[np.ix_(several, cols)], s[np.ix_(several, cols)], -np.inf)
            best = cols[np.argmax(sub, axis=1)]  # the best, the first in vocabulary order among ties
            lab[np.ix_(several, cols)] = False
            lab[several, best] = True
        return lab.astype(np.uint8)

    @classmethod
    def from_record(cls, record: dict[str, Any], columns: Any, n_labels: int, *, mix: bool = False) -> CatchAll:
        """A fitted CatchAll with the pivot a :meth:`describe` record holds (a saved program's, a run manifest's),
        over ``columns`` of ``n_labels`` labels; ``source_`` as recorded."""
        keep = {k: record[k] for k in ("quantile", "shrinkage") if k in record}
        ca = cls(columns, pivot=float(record["pivot"]), mix=mix, **keep).fit(np.zeros((1, n_labels)))
        ca.source_ = str(record.get("source", "fixed"))
        return ca

    def describe(self, vocab: Any = None) -> dict[str, Any]:
        """A JSON-ready record (for the run manifest): the catch-all labels, pivot and where it came from."""
        cols = [int(c) for c in self.columns_]
        return {"labels": [vocab[c] for c in cols] if vocab is not None else cols, "pivot": round(self.pivot_, 6),
                "source": self.source_, "quantile": self.quantile, "shrinkage": self.shrinkage, "mix": bool(self.mix)}


# -- calibrated probabilities ---------------------------------------------------------------
class PlattCalibrator(ParamsMixin):
    """Scores that mean probabilities: Platt scaling pooled over labels, ``P = sigmoid(a_ * (s - t) + b_)``.

    ``t`` is 0 by default (a curve of the score itself), or each label's threshold (a curve of
    the margin to it); ``a_ > 0`` and ``b_`` are fitted by maximum likelihood on the
    out-of-fold scores of labelled examples (:meth:`zsl.text.tagger.Tagger.fit` uses ``t = 0``).

    Why pooled Platt: with 2 to 8 examples per label a per-label curve rests on a handful of
    positives, so one curve is shared by all labels; the fitted scores already carry each
    label's offset (the example head's per-label bias), and with ``t = 0`` the probabilities
    rank the labels exactly as the scores do. Platt (2 parameters) rather than isotonic
    regression: isotonic needs many positives per bin, its steps overfit the few there are and
    give ties; Platt is strictly increasing and never exactly 0 or 1. A small ridge penalty
    keeps ``a_`` finite when the examples are separable.

    Args:
        l2: ridge penalty on ``a`` and ``b`` (in units of examples).
        max_iter: Newton iterations.

    Attributes:
        a_, b_: the fitted slope (> 0) and intercept. n_: the (item, label) pairs fitted on.

    Example:
        >>> import numpy as np
        >>> s = np.array([[0.9, 0.1], [0.7, 0.6], [0.2, 0.3], [0.4, 0.8]])
        >>> y = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
        >>> p = PlattCalibrator().fit(s, y).predict_proba(s)
        >>> bool(((p > 0) & (p < 1)).all()), bool(p[0, 0] > p[2, 0])
        (True, True)
    """

    def __init__(self, *, l2: float = 1.0, max_iter: int = 50):
        self.l2 = l2
        self.max_iter = max_iter

    @staticmethod
    def _margin(scores: Any, thresholds: Any) -> np.ndarray:
        s = check_scores(scores)
        t = np.broadcast_to(np.asarray(thresholds, dtype=np.float64).reshape(1, -1) if np.ndim(thresholds) else
                            np.float64(thresholds), (1, s.shape[1]))
        return s - t

    def fit(self, scores: Any, y: Any, *, thresholds: Any = 0.0) -> PlattCalibrator:
        """Fit ``a_``, ``b_`` on ``(N, K)`` (out-of-fold) scores, gold ``y`` and the thresholds ``(K,)`` or scalar."""
        x = self._margin(scores, thresholds)
        yy = check_labels(y, x.shape).ravel().astype(np.float64)
        x = x.ravel()
        if not 0 < yy.sum() < yy.size:
            raise InputError("calibration needs both positive and negative (item, label) pairs in y.")
        sd = float(x.std()) or 1.0
        w = np.array([1.0 / sd, 0.0])  # on the margin's own scale first: Newton converges from there
        design = np.stack([x, np.ones_like(x)], axis=1)
        for _ in range(self.max_iter):
            p = _sigmoid(design @ w)
            grad = design.T @ (p - yy) + self.l2 * w
            hess = (design * (p * (1 - p))[:, None]).T @ design + self.l2 * np.eye(2)
            step = np.linalg.solve(hess, grad)
            w = w - step
            if np.abs(step).max() < 1e-9:
                break
        self.a_, self.b_ = max(float(w[0]), 1e-6), float(w[1])  # never decreasing in the score
        self.n_ = int(x.size)
        return self

    def predict_proba(self, scores: Any, *, thresholds: Any = 0.0) -> np.ndarray:
        """``(N, K)`` float64 probabilities in (0, 1), increasing in each score (float64: near 0 and 1 a float32
        would merge the probabilities of labels whose scores differ, and change their order)."""
        if not hasattr(self, "a_"):
            raise InputError("This PlattCalibrator is not fitted yet. Fix: call fit(scores, y, thresholds=...) first.")
        return _sigmoid(self.a_ * self._margin(scores, thresholds) + self.b_)

    def to_dict(self) -> dict[str, Any]:
        """The fitted parameters as JSON-safe data."""
        return {"method": "platt", "a": self.a_, "b": self.b_, "n": self.n_, "l2": self.l2}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlattCalibrator:
        """Rebuild from :meth:`to_dict` (no refit)."""
        try:
            cal = cls(l2=float(d.get("l2", 1.0)))
            cal.a_, cal.b_, cal.n_ = float(d["a"]), float(d["b"]), int(d.get("n", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"the saved calibrator is incomplete ({type(exc).__name__}: {exc}).") from None
        if not (math.isfinite(cal.a_) and math.isfinite(cal.b_)) or cal.a_ <= 0:
            raise InputError(f"the saved calibrator holds a={cal.a_}, b={cal.b_}; a must be a finite number > 0.")
        return cal
