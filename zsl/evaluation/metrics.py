"""Multi-label metrics as plain functions on arrays.

Conventions: ``y_true`` is an ``(N, K)`` 0/1 matrix; ``scores`` an ``(N, K)`` float matrix
in the same column order (higher = more applicable). Rank metrics follow the
Infer-Retrieve-Rank paper:

* ``RP@K = |top-K ∩ gold| / min(K, |gold|)``: recall when there are more than K gold
  labels' worth of room, precision otherwise; 1.0 is perfect at every K.
* ``P@K = |top-K ∩ gold| / K``; ``R@K = |top-K ∩ gold| / |gold|``.

Items with no gold label are skipped by the rank metrics (the score is undefined there).

Example:
    >>> import numpy as np
    >>> y = np.array([[1, 0, 1, 0]])
    >>> s = np.array([[0.9, 0.8, 0.1, 0.0]])
    >>> float(rp_at_k(y, s, 2)), float(p_at_k(y, s, 2)), float(r_at_k(y, s, 2))
    (0.5, 0.5, 0.5)
"""

from __future__ import annotations

import numpy as np

from zsl.errors import InputError
from zsl.taxonomy import Taxonomy

__all__ = [
    "average_precision",
    "f1_scores",
    "hierarchical_metrics",
    "mean_average_precision",
    "p_at_k",
    "per_label_prf",
    "precision_recall_curve",
    "r_at_k",
    "ranks_to_scores",
    "reliability",
    "rp_at_k",
]


def _check(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 2 or s.ndim != 2:
        raise InputError(f"y_true and scores must be 2-D (N, K); got shapes {y.shape} and {s.shape}")
    if y.shape != s.shape:
        raise InputError(f"y_true {y.shape} and scores {s.shape} must have the same shape (same items, same label order)")
    if not np.all(np.isfinite(s)):
        bad = int((~np.isfinite(s)).sum())
        raise InputError(f"scores contain {bad} NaN/inf values; replace them (e.g. np.nan_to_num) before evaluating")
    if not np.isin(y, (0, 1)).all():
        raise InputError("y_true must contain only 0 and 1")
    return y.astype(bool), s


def _hits_at_k(y: np.ndarray, s: np.ndarray, k: int) -> np.ndarray:
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    k = min(k, s.shape[1])
    # stable order: ties broken by column index, so results do not depend on the platform
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(y, top, axis=1).sum(axis=1).astype(np.float64)


def rp_at_k(y_true: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Rank-precision at K, averaged over items with at least one gold label."""
    y, s = _check(y_true, scores)
    n_gold = y.sum(axis=1)
    keep = n_gold > 0
    if not keep.any():
        raise InputError("No item has a gold label; RP@K is undefined")
    hits = _hits_at_k(y[keep], s[keep], k)
    return float(np.mean(hits / np.minimum(k, n_gold[keep])))


def p_at_k(y_true: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Precision at K, averaged over items with at least one gold label."""
    y, s = _check(y_true, scores)
    keep = y.sum(axis=1) > 0
    if not keep.any():
        raise InputError("No item has a gold label; P@K is undefined")
    return float(np.mean(_hits_at_k(y[keep], s[keep], k) / k))


def r_at_k(y_true: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Recall at K, averaged over items with at least one gold label."""
    y, s = _check(y_true, scores)
    n_gold = y.sum(axis=1)
    keep = n_gold > 0
    if not keep.any():
        raise InputError("No item has a gold label; R@K is undefined")
    return float(np.mean(_hits_at_k(y[keep], s[keep], k) / n_gold[keep]))


def f1_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Micro and macro F1 of binary predictions.

    Macro F1 averages over labels that occur in ``y_true`` or ``y_pred`` (labels absent
    from both are undefined and skipped, as scikit-learn's ``zero_division`` would blur).
    """
    y, p = _check(y_true, y_pred)
    p = p > 0.5
    tp = (y & p).sum(axis=0).astype(float)
    fp = (~y & p).sum(axis=0).astype(float)
    fn = (y & ~p).sum(axis=0).astype(float)
    denom = 2 * tp.sum() + fp.sum() + fn.sum()
    micro = 2 * tp.sum() / denom if denom else 0.0
    present = (tp + fp + fn) > 0
    per = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=(2 * tp + fp + fn) > 0)
    macro = float(per[present].mean()) if present.any() else 0.0
    return {"micro_f1": float(micro), "macro_f1": macro}



def per_label_prf(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1, support and predicted count of every label (column).

    A label never predicted has precision 0; one with no gold item has recall 0. Averaging
    ``f1`` over labels with ``support + predicted > 0`` gives the macro F1 of :func:`f1_scores`.

    Args:
        y_true: ``(N, K)`` 0/1 gold matrix.
        y_pred: ``(N, K)`` 0/1 predictions (values > 0.5 count as predicted).

    Returns:
        ``{"precision", "recall", "f1"}`` float arrays and ``{"support", "predicted"}`` int
        arrays, each of length K.

    Example:
        >>> out = per_label_prf(np.array([[1, 0], [1, 1]]), np.array([[1, 1], [0, 1]]))
        >>> out["precision"].tolist(), out["recall"].tolist(), out["support"].tolist()
        ([1.0, 0.5], [0.5, 1.0], [2, 1])
    """
    y, p = _check(y_true, y_pred)
    p = p > 0.5
    tp = (y & p).sum(axis=0).astype(float)
    support = y.sum(axis=0)
    predicted = p.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64),
            "predicted": predicted.astype(np.int64)}


def precision_recall_curve(y: np.ndarray, s: np.ndarray, *, n_positives: int | None = None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall of ``s >= t`` at every distinct score ``t`` (pooled pairs: micro).

    Args:
        y: 1-D 0/1 array, one entry per scored (item, label) pair.
        s: 1-D scores of the same pairs.
        n_positives: the recall denominator; pass the number of all gold pairs when some
            were never scored (truncated top-k lists), so recall stops below 1 honestly.

    Returns:
        ``(precision, recall, thresholds)``, thresholds in decreasing order; empty arrays
        when ``s`` is empty.

    Example:
        >>> p, r, t = precision_recall_curve(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.8]))
        >>> p.tolist(), r.tolist(), t.tolist()
        ([1.0, 0.6666666666666666], [0.5, 1.0], [0.9, 0.8])
    """
    y = np.asarray(y).astype(bool).ravel()
    s = np.asarray(s, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise InputError(f"y and s must have the same length; got {y.size} and {s.size}")
    if not np.all(np.isfinite(s)):
        raise InputError("s contains NaN/inf; keep only the scored pairs")
    total = int(y.sum()) if n_positives is None else int(n_positives)
    if total < int(y.sum()):
        raise InputError(f"n_positives={total} is below the {int(y.sum())} positives in y")
    if s.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    order = np.argsort(-s, kind="stable")
    s_sorted, hits = s[order], y[order]
    tp = np.cumsum(hits)
    # one point per distinct score: the last position of each run of tied scores
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tp, n = tp[last].astype(float), (last + 1).astype(float)
    recall = tp / total if total else np.zeros_like(tp)
    return tp / n, recall, s_sorted[last]

def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """Average precision of one ranking (1-D arrays); NaN when there is no positive."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    n_pos = y.sum()
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    hits = y[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / n_pos)


def mean_average_precision(y_true: np.ndarray, scores: np.ndarray, *, average: str = "label") -> float:
    """mAP: mean over labels (``average="label"``, the image-tagging convention; labels
    with no positive are skipped) or over items (``average="item"``)."""
    y, s = _check(y_true, scores)
    if average == "label":
        aps = [average_precision(y[:, j], s[:, j]) for j in range(y.shape[1])]
    elif average == "item":
        aps = [average_precision(y[i], s[i]) for i in range(y.shape[0])]
    else:
        raise InputError(f"average must be 'label' or 'item', got {average!r}")
    aps = [a for a in aps if not np.isnan(a)]
    if not aps:
        raise InputError("No positive labels at all; mAP is undefined")
    return float(np.mean(aps))


def reliability(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> dict[str, np.ndarray | float]:
    """Reliability of probabilities: per equal-width bin of ``p``, the mean predicted probability and the
    observed frequency of ``y``, and the expected calibration error (ECE: the count-weighted mean gap).

    Args:
        y: 0/1 outcomes (any shape; flattened).
        p: predicted probabilities, same shape; values outside [0, 1] are clipped.
        bins: equal-width bins over [0, 1].

    Returns:
        ``{"confidence", "frequency", "count", "edges", "ece"}``: ``(bins,)`` arrays (NaN in empty bins),
        the ``bins + 1`` edges and the ECE.

    Example:
        >>> r = reliability(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]), bins=2)
        >>> r["frequency"].tolist(), round(r["ece"], 3)
        ([0.0, 1.0], 0.15)
    """
    yy = np.asarray(y, dtype=np.float64).ravel()
    pp = np.clip(np.asarray(p, dtype=np.float64).ravel(), 0.0, 1.0)
    if yy.shape != pp.shape:
        raise InputError(f"y ({yy.size}) and p ({pp.size}) must have the same number of values")
    if bins < 1:
        raise InputError(f"bins must be >= 1, got {bins}")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, pp, side="right") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(which, weights=pp, minlength=bins) / count
        freq = np.bincount(which, weights=yy, minlength=bins) / count
    ece = float(np.nansum(count * np.abs(conf - freq)) / count.sum()) if count.sum() else float("nan")
    return {"confidence": conf, "frequency": freq, "count": count, "edges": edges, "ece": ece}


def ranks_to_scores(rankings: list[list[int]], n_labels: int) -> np.ndarray:
    """Turn ranked index lists into an (N, K) score matrix (1 for first, decreasing; 0 unranked)."""
    out = np.zeros((len(rankings), n_labels), dtype=np.float32)
    for i, ranking in enumerate(rankings):
        n = len(ranking)
        for r, j in enumerate(ranking):
            out[i, j] = (n - r) / n
    return out


def metric_name(name: str) -> str:
    """How reports name a metric key: ``"rp@5"`` -> ``"RP@5"``, ``"micro_f1"`` -> ``"micro-F1"``.

    Example:
        >>> metric_name("rp@5"), metric_name("map_item")
        ('RP@5', 'mAP (items)')
    """
    fixed = {
        "micro_f1": "micro-F1",
        "macro_f1": "macro-F1",
        "micro_precision": "micro-precision",
        "micro_recall": "micro-recall",
        "map": "mAP (labels)",
        "map_item": "mAP (items)",
        "hierarchical_precision": "hierarchical precision",
        "hierarchical_recall": "hierarchical recall",
        "hierarchical_f1": "hierarchical F1",
        "example_f1": "example-F1",
        "leaf_accuracy": "leaf accuracy",
        "consistent_share": "consistent sets",
    }
    if name in fixed:
        return fixed[name]
    head, _, k = name.partition("@")
    return f"{head.upper()}@{k}"


def hierarchical_metrics(tree: Taxonomy, gold: list[np.ndarray], pred: list[np.ndarray],
                         unknown_gold: np.ndarray | None = None) -> dict[str, object]:
    """Metrics of predicted label sets against gold sets on a tree, from column lists (no ``(N, K)`` matrix).

    * ``hierarchical_precision`` / ``_recall`` / ``_f1``: both sets closed upward (a label counts for its
      ancestors), then ``sum |P & G| / sum |P|`` and ``sum |P & G| / sum |G|`` over items (micro).
    * ``example_f1``: the mean over items of ``2 |P & G| / (|P| + |G|)`` on the sets as given (1 when both
      are empty).
    * ``leaf_accuracy``: the share of items whose deepest gold labels are all in the predicted set itself.
    * ``consistent_share``: the share of predicted sets that are closed upward (an empty set is).
    * ``levels``: per depth ``d``, on the closed sets: ``accuracy`` (the share of the items with a gold label
      at ``d`` whose predicted labels at ``d`` are exactly the gold ones), ``micro_f1`` and ``macro_f1``
      over the labels at ``d`` (macro over those gold or predicted somewhere), ``items``.

    Args:
        tree: the vocabulary's :class:`~zsl.taxonomy.Taxonomy`.
        gold, pred: one int array of columns per item.
        unknown_gold: per item, how many gold labels are not in the tree: they count as misses (in
            hierarchical recall, example-F1 and leaf accuracy).

    Example:
        >>> t = Taxonomy(["a", "b", "c", "d"], [None, "a", "a", None])
        >>> m = hierarchical_metrics(t, [np.array([0, 1]), np.array([3])], [np.array([2]), np.array([3])])
        >>> m["hierarchical_precision"], m["hierarchical_recall"], m["leaf_accuracy"], m["consistent_share"]
        (0.6666666666666666, 0.6666666666666666, 0.5, 0.5)
        >>> [(lv["level"], lv["accuracy"]) for lv in m["levels"]]
        [(0, 1.0), (1, 0.0)]
    """
    n = len(gold)
    unknown = np.zeros(n, dtype=np.int64) if unknown_gold is None else np.asarray(unknown_gold, dtype=np.int64)
    g_closed = [tree.close_upward(g) for g in gold]
    p_closed = [tree.close_upward(p) for p in pred]
    hits = [np.intersect1d(g, p, assume_unique=True) for g, p in zip(g_closed, p_closed, strict=True)]
    n_hit, n_pred = sum(h.size for h in hits), sum(p.size for p in p_closed)
    n_gold = sum(g.size for g in g_closed) + int(unknown.sum())
    hp = n_hit / n_pred if n_pred else 0.0
    hr = n_hit / n_gold if n_gold else 0.0
    example = [1.0 if not (len(g) + len(p) + u) else 2 * np.intersect1d(g, p).size / (len(np.unique(g)) + len(np.unique(p)) + u)
               for g, p, u in zip(gold, pred, unknown, strict=True)]
    leaf_hit = [u == 0 and g.size > 0 and bool(np.isin(tree.leaves_only(g), p).all())
                for g, p, u in zip(gold, pred, unknown, strict=True)]
    return {
        "hierarchical_precision": float(hp), "hierarchical_recall": float(hr),
        "hierarchical_f1": float(2 * hp * hr / (hp + hr)) if hp + hr else 0.0,
        "example_f1": float(np.mean(example)) if n else 0.0,
        "leaf_accuracy": float(np.mean(leaf_hit)) if n else 0.0,
        "consistent_share": float(np.mean([tree.is_consistent(p) for p in pred])) if n else 0.0,
        "levels": _level_metrics(tree, g_closed, p_closed, hits),
    }


def _level_metrics(tree: Taxonomy, gold: list[np.ndarray], pred: list[np.ndarray], hits: list[np.ndarray]
                   ) -> list[dict[str, float | int]]:
    """Accuracy, micro-F1 and macro-F1 at each depth, from closed column sets (counts per label by bincount)."""
    k = len(tree)

    def count(sets: list[np.ndarray]) -> np.ndarray:
        return np.bincount(np.concatenate([*sets, np.empty(0, dtype=np.int64)]), minlength=k).astype(float)

    tp, n_gold, n_pred = count(hits), count(gold), count(pred)
    fp, fn = n_pred - tp, n_gold - tp
    out = []
    for d in range(tree.n_levels):
        cols = tree.level(d)
        at = tree.depth
        exact = [np.array_equal(g[at[g] == d], p[at[p] == d]) for g, p in zip(gold, pred, strict=True)
                 if (at[g] == d).any()]
        t, f_p, f_n = tp[cols], fp[cols], fn[cols]
        denom = 2 * t.sum() + f_p.sum() + f_n.sum()
        present = (t + f_p + f_n) > 0
        per = np.divide(2 * t, 2 * t + f_p + f_n, out=np.zeros_like(t), where=present)
        out.append({"level": d, "items": len(exact), "labels": int(cols.size),
                    "accuracy": float(np.mean(exact)) if exact else 0.0,
                    "micro_f1": float(2 * t.sum() / denom) if denom else 0.0,
                    "macro_f1": float(per[present].mean()) if present.any() else 0.0})
    return out
