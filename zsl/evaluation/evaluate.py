"""Evaluate predictions against gold labels: ``zsl eval PRED GOLD``.

Predictions are the JSON Lines ``zsl label`` writes (or a run folder holding
``labels.jsonl``), one row per item, read by :mod:`zsl.rows`::

    {"id": "17", "text": "...", "labels": ["l1", "l2"], "scores": [0.91, 0.55],
     "top_scores": {"l1": 0.91, "l2": 0.55, "l3": 0.41, ...}, ...}

``labels`` are the kept top-k labels in decreasing score order (the predicted set),
``scores`` aligned with them, and ``top_scores`` the scores of the R best labels (every
label of a small vocabulary): the rankings are computed from those. Image rows carry
``"image": path`` and may have no ``id``: the path is the id then. Silver-data rows
(:func:`zsl.silver.data.write_silver`) also work: their ``scores`` map label -> score and their
``labels`` are the chosen ones.

Gold is JSON Lines with ``id`` and ``labels`` (a list of strings), CSV/TSV with ``id`` and
``labels`` columns (labels separated by ``|``), or omitted when the prediction rows carry
a ``gold`` field. Rows are matched by id.

The rows become the library's one data contract -- an ``(N, L)`` gold matrix, a score
matrix and a predicted-set matrix in one label order -- and every number comes from
:mod:`zsl.evaluation.metrics`. When rows score every label of the vocabulary (known from ``vocab`` or
the file's ``.meta.json`` sidecar), RP@K, P@K, R@K and mAP rank the whole vocabulary.
Otherwise scores exist only for the labels a row scored; the other labels rank below all
scored ones (gold labels last), so mAP is a lower bound, and K larger than the scored lists
is skipped. An item with no prediction counts as an empty one: 0 for RP@K/P@K/R@K and item
mAP, all its gold labels missed.

Example:
    >>> rows = [{"id": "a", "labels": ["x", "y"], "scores": [0.9, 0.2]},
    ...         {"id": "b", "labels": ["y", "x"], "scores": [0.8, 0.1]}]
    >>> report = evaluate(rows, {"a": ["x"], "b": ["x"]}, k=(1, 2))
    >>> report.metrics["rp@1"], report.metrics["rp@2"], report.metrics["micro_f1"]
    (0.5, 1.0, 0.6666666666666666)
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zsl.data.files import BadRow
from zsl.errors import InputError, VocabularyError
from zsl.evaluation.metrics import (
    f1_scores,
    hierarchical_metrics,
    mean_average_precision,
    metric_name,
    p_at_k,
    per_label_prf,
    r_at_k,
    rp_at_k,
)
from zsl.rows import (
    PredRow,
    check_unique_ids,
    gold_from_row,
    is_finite_number,
    label_list,
    parse_pred_row,
    read_gold,
    read_meta,
    read_predictions,
    resolve_predictions,
    vocab_from_meta,
)
from zsl.vocab import LabelVocab

__all__ = [
    "MAX_LISTED",
    "EvalReport",
    "evaluate",
]

REPORT_FORMAT_VERSION = 1
MAX_LISTED = 20  # ids / bad rows listed in reports; the counts are always complete
DEFAULT_K = (1, 3, 5, 10)


# -- the report -----------------------------------------------------------------------------
@dataclass
class EvalReport:
    """Metrics of predictions against gold labels (see :func:`evaluate`).

    Attributes:
        metrics: ``rp@K``, ``p@K``, ``r@K`` for every kept K, ``micro_f1``, ``macro_f1``,
            ``micro_precision``, ``micro_recall``, ``map`` (mean over labels) and
            ``map_item`` (mean over items).
        per_label: one dict per label (``label``, ``precision``, ``recall``, ``f1``,
            ``support``, ``predicted``), in label order.
        n_items: items evaluated (every gold item: matched + without prediction).
        n_matched: gold items with a prediction.
        n_missing: gold items without a prediction (scored as empty predictions).
        missing_ids: the first 20 of them.
        n_extra: prediction rows without gold (ignored).
        n_predictions: usable prediction rows read.
        bad_rows: ``file:line: reason`` for every skipped row.
        k: the K values reported; ``skipped_k`` the ones left out (larger than the
            labels kept per row).
        labels_kept: ``(min, max)`` labels scored per prediction row.
        threshold: the score threshold of the predicted sets (None: the rows' labels).
        notes: caveats, one sentence each.
        pred_source, gold_source: where the rows came from.
        labels, ids: column and row names of the arrays below.
        y_true, y_pred: ``(N, L)`` 0/1 gold and predicted sets.
        scores: ``(N, L)`` scores, NaN where a row did not score the label.
        hierarchy: for a vocabulary with a tree (``--labels`` or the run's sidecar), what
            :func:`~zsl.evaluation.metrics.hierarchical_metrics` measures plus ``gold_not_in_tree``
            (``labels``, ``items``, ``examples``); None for a flat one.
    """

    metrics: dict[str, float]
    per_label: list[dict[str, Any]]
    n_items: int
    n_matched: int
    n_missing: int
    missing_ids: list[str]
    n_extra: int
    n_predictions: int
    bad_rows: list[str]
    k: list[int]
    skipped_k: list[int]
    labels_kept: tuple[int, int]
    threshold: float | None
    notes: list[str]
    pred_source: str
    gold_source: str
    labels: list[str] = field(repr=False)
    ids: list[str] = field(repr=False)
    y_true: np.ndarray = field(repr=False, compare=False)
    y_pred: np.ndarray = field(repr=False, compare=False)
    scores: np.ndarray = field(repr=False, compare=False)
    hierarchy: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict with stable keys (``format_version`` changes if they do); a tree adds ``hierarchy``."""
        out = {
            "format_version": REPORT_FORMAT_VERSION,
            "pred": self.pred_source,
            "gold": self.gold_source,
            "counts": {
                "items": self.n_items,
                "matched": self.n_matched,
                "missing_predictions": self.n_missing,
                "extra_predictions": self.n_extra,
                "prediction_rows": self.n_predictions,
                "bad_rows": len(self.bad_rows),
                "labels": len(self.labels),
                "items_without_gold_labels": int((self.y_true.sum(axis=1) == 0).sum()),
            },
            "k": list(self.k),
            "skipped_k": list(self.skipped_k),
            "labels_kept": {"min": self.labels_kept[0], "max": self.labels_kept[1]},
            "threshold": self.threshold,
            "metrics": {name: _finite(v) for name, v in self.metrics.items()},
            "per_label": [
                {**row, **{m: _finite(row[m]) for m in ("precision", "recall", "f1")}} for row in self.per_label
            ],
            "missing_ids": list(self.missing_ids),
            "bad_rows": list(self.bad_rows),
            "notes": list(self.notes),
        }
        if self.hierarchy is not None:
            out["hierarchy"] = self.hierarchy
        return out

    @property
    def text(self) -> str:
        """A short summary table for a terminal."""
        head = (
            f"Evaluated {self.n_items} items ({self.n_matched} with a prediction, {self.n_missing} without) "
            f"over {len(self.labels)} labels"
        )
        lines = [head, f"{'metric':<16}value", "-" * 26]
        for name, value in self.metrics.items():
            lines.append(f"{metric_name(name):<16}{value:.4f}")
        if self.skipped_k:
            lines.append(
                f"(K = {', '.join(map(str, self.skipped_k))} skipped: rows keep only {self.labels_kept[0]} labels)"
            )
        if self.hierarchy is not None:
            lines += hierarchy_lines(self.hierarchy)
        return "\n".join(lines)


HIERARCHY_KEYS = ("hierarchical_f1", "hierarchical_precision", "hierarchical_recall", "example_f1", "leaf_accuracy",
                  "consistent_share")


def hierarchy_lines(h: dict[str, Any]) -> list[str]:
    """The tree's metrics as terminal lines: the hierarchical ones, then a per-level table."""
    lines = ["", f"on the tree ({h['n_levels']} levels; sets closed upward)", "-" * 26]
    lines += [f"{metric_name(name):<24}{h[name]:.4f}" for name in HIERARCHY_KEYS]
    lines += [f"{'level':<7}{'items':>7}{'accuracy':>10}{'micro-F1':>10}{'macro-F1':>10}"]
    lines += [f"{lv['level']:<7}{lv['items']:>7}{lv['accuracy']:>10.4f}{lv['micro_f1']:>10.4f}{lv['macro_f1']:>10.4f}"
              for lv in h["levels"]]
    return lines


def _tree_vocab(vocab: LabelVocab | None, pred: Any) -> LabelVocab | None:
    """The vocabulary whose tree the report measures on: ``vocab`` if it has one, else (no vocab given) the
    run's sidecar's when it records parents."""
    if vocab is not None:
        return vocab if vocab.parents is not None else None
    meta = _sidecar(pred)
    if not meta or not (meta.get("vocab") or {}).get("parents"):
        return None
    try:
        return vocab_from_meta(meta, "the predictions' sidecar")
    except (InputError, VocabularyError):
        return None


def _hierarchy(tv: LabelVocab, ids: list[str], gold_map: dict[str, list[str]], y_pred: np.ndarray,
               names: list[str]) -> tuple[dict[str, Any], str | None]:
    """Tree metrics of the predicted sets (``y_pred`` columns ``names``) against the gold labels, and a note
    on gold labels outside the tree (counted as misses)."""
    tree = tv.tree
    to_col = np.array([tv.get(lab) if lab in tv else -1 for lab in names], dtype=np.int64)
    rows, cols = np.nonzero(y_pred)
    cols = to_col[cols]
    keep = cols >= 0
    splits = np.searchsorted(rows[keep], np.arange(1, len(ids)))
    pred = np.split(cols[keep], splits)
    gold, unknown, outside = [], [], {}
    for item_id in ids:
        labs = gold_map[item_id]
        gold.append(np.array([tv.get(lab) for lab in labs if lab in tv], dtype=np.int64))
        unknown.append(sum(lab not in tv for lab in labs))
        for lab in labs:
            if lab not in tv:
                outside.setdefault(lab, 0)
                outside[lab] += 1
    h = hierarchical_metrics(tree, gold, pred, np.array(unknown))
    n_items = sum(u > 0 for u in unknown)
    h.update(n_levels=tree.n_levels, gold_not_in_tree={"labels": len(outside), "items": n_items,
                                                       "examples": list(outside)[:MAX_LISTED]})
    note = None
    if outside:
        shown = ", ".join(repr(g) for g in list(outside)[:5])
        note = (f"{len(outside)} gold labels of {n_items} items are not in the tree ({shown}"
                f"{' ...' if len(outside) > 5 else ''}): they have no level and count as misses in hierarchical "
                "recall, example-F1 and leaf accuracy.")
    return h, note


def _finite(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


# -- evaluation -----------------------------------------------------------------------------
def _preds_from(pred: Any, bad: list[BadRow]) -> tuple[list[PredRow], str]:
    if isinstance(pred, str | os.PathLike):
        return read_predictions(pred, bad=bad), str(resolve_predictions(pred))
    if isinstance(pred, Mapping) or not isinstance(pred, Iterable):
        raise InputError(f"Predictions must be a file path or a list of row dicts, got {type(pred).__name__}.")
    out: list[PredRow] = []
    n = 0
    for n, obj in enumerate(pred, 1):
        parsed = obj if isinstance(obj, PredRow) else parse_pred_row(obj, n)
        if isinstance(parsed, str):
            bad.append(BadRow("<rows>", n, parsed))
        else:
            out.append(parsed)
    if not out:
        first = f" First problem: {bad[0]}." if bad else ""
        raise InputError(f"No usable prediction row among the {n} given.{first}")
    return out, "<rows>"


def _gold_from(
    gold: Any, preds: list[PredRow], pred_source: str, bad: list[BadRow]
) -> tuple[dict[str, list[str]], str]:
    if gold is None:
        pairs = []
        for p in preds:
            if "gold" not in p.row:
                continue
            got = gold_from_row(p.row, "gold")
            if isinstance(got, str):
                bad.append(BadRow(pred_source, p.line, got))
            else:
                pairs.append(got)
        if not pairs:
            raise InputError(
                f"No gold labels given and the prediction rows of {pred_source} have no 'gold' field. "
                "Fix: pass a GOLD file (.jsonl with 'id' and 'labels', or .csv with id,labels)."
            )
        return dict(pairs), f"{pred_source} ('gold' fields)"
    if isinstance(gold, str | os.PathLike):
        return read_gold(gold, bad=bad), str(gold)
    if isinstance(gold, Mapping):
        out = {}
        for key, labels in gold.items():
            got, err = label_list(labels, f"gold[{key!r}]")
            if err:
                raise InputError(f"Gold mapping: {err}.")
            out[str(key)] = got
        return out, "<mapping>"
    pairs = []
    for i, obj in enumerate(gold, 1):
        got = gold_from_row(obj)
        if isinstance(got, str):
            bad.append(BadRow("<gold rows>", i, got))
        else:
            pairs.append(got)
    check_unique_ids([i for i, _ in pairs], "gold rows")
    return dict(pairs), "<gold rows>"


def _sidecar(pred: Any) -> dict[str, Any] | None:
    """The sidecar (``.meta.json``) of a predictions file, if ``pred`` is a path and it has a readable one."""
    if not isinstance(pred, str | os.PathLike):
        return None
    try:
        return read_meta(resolve_predictions(pred))
    except InputError:
        return None


def _vocab_size(pred: Any) -> int | None:
    """The vocabulary size the sidecar of a predictions file records, if there is a readable one."""
    meta = _sidecar(pred)
    if meta is None:
        return None
    size = (meta.get("rows") or {}).get("vocab_size")
    if isinstance(size, int):
        return size
    labels = (meta.get("vocab") or {}).get("labels")
    return len(labels) if isinstance(labels, list) else None


def _check_k(k: int | Iterable[int]) -> list[int]:
    ks = [k] if isinstance(k, int) else list(k)
    if not ks or any(not isinstance(x, int) or isinstance(x, bool) or x < 1 for x in ks):
        raise InputError(f"k must be positive integers, e.g. (1, 3, 5, 10); got {k!r}")
    return sorted(set(ks))


def _align(
    preds: list[PredRow], gold_map: dict[str, list[str]], gold_source: str
) -> tuple[list[str], list[PredRow | None], list[str], list[str]]:
    """Match predictions with gold by id: the gold ids in gold order, the prediction row of each
    (None: no prediction), the gold ids without a prediction, the prediction ids without gold."""
    if not gold_map:
        raise InputError(f"No usable gold row in {gold_source}.")
    by_id = {p.id: p for p in preds}
    ids = list(gold_map)
    missing = [i for i in ids if i not in by_id]
    extra = [p.id for p in preds if p.id not in gold_map]
    if len(missing) == len(ids):
        raise InputError(
            f"None of the {len(preds)} prediction ids is in the gold labels "
            f"(predictions: {[p.id for p in preds[:3]]}, gold: {ids[:3]}). "
            "Fix: pass the gold file of the same items (ids are compared as strings)."
        )
    return ids, [by_id.get(i) for i in ids], missing, extra


def _rule(pred: Any) -> dict[str, Any] | None:
    """The rule that chose the rows' ``labels``, as the sidecar of a predictions file records it (None: unknown)."""
    rule = (_sidecar(pred) or {}).get("rule")
    return rule if isinstance(rule, dict) else None


def _meta_labels(pred: Any) -> set[str] | None:
    """The labels of the vocabulary the sidecar of a predictions file records, if there is a readable one."""
    labels = ((_sidecar(pred) or {}).get("vocab") or {}).get("labels")
    return set(labels) if isinstance(labels, list) and all(isinstance(lab, str) for lab in labels) else None


def _columns(
    rows: list[PredRow | None], gold_map: dict[str, list[str]], vocab: LabelVocab | None,
    known: set[str] | None = None,
) -> tuple[list[str], list[str]]:
    """The label columns and the gold labels outside ``vocab``: with a vocabulary, its labels
    then those gold labels (in order of appearance); without one, every label seen, sorted, and
    the gold labels outside ``known`` (the run's own labels, when its sidecar names them)."""
    if vocab is None:
        names = sorted(
            {lab for labs in gold_map.values() for lab in labs}
            | {lab for p in rows if p for lab, _ in p.ranked}
            | {lab for p in rows if p for lab in p.chosen}
        )
        if known is None:
            return names, []
        return names, list(dict.fromkeys(lab for labs in gold_map.values() for lab in labs if lab not in known))
    unknown = sorted(
        {lab for p in rows if p for lab in (*p.chosen, *(lab for lab, _ in p.ranked)) if lab not in vocab}
    )
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        raise VocabularyError(
            f"{len(unknown)} predicted label(s) are not in the vocabulary {vocab.name!r}: "
            f"{shown}{' ...' if len(unknown) > 5 else ''}. Fix: pass the vocabulary the "
            "predictions were made with, or omit it."
        )
    extra_gold: list[str] = []
    seen = set(vocab.labels)
    for labs in gold_map.values():
        for lab in labs:
            if lab not in seen:
                seen.add(lab)
                extra_gold.append(lab)
    return list(vocab.labels) + extra_gold, extra_gold


def _matrices(
    ids: list[str], rows: list[PredRow | None], gold_map: dict[str, list[str]], names: list[str],
    threshold: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``(N, L)`` gold sets, predicted sets and scores (NaN where a row did not score a label)."""
    col = {lab: j for j, lab in enumerate(names)}
    n, n_labels = len(ids), len(names)
    y_true = np.zeros((n, n_labels), dtype=np.uint8)
    y_pred = np.zeros((n, n_labels), dtype=np.uint8)
    scores = np.full((n, n_labels), np.nan)
    for i, (item_id, p) in enumerate(zip(ids, rows, strict=True)):
        y_true[i, [col[lab] for lab in gold_map[item_id]]] = 1
        if p is None:
            continue
        for lab, s in p.ranked:
            scores[i, col[lab]] = s
        chosen = p.chosen if threshold is None else [lab for lab, s in p.ranked if s >= threshold]
        y_pred[i, [col[lab] for lab in chosen]] = 1
    if not y_true.any():
        raise InputError(
            f"None of the {n} gold items has a label, so nothing can be evaluated. "
            "Fix: check the gold file's 'labels' column/field."
        )
    return y_true, y_pred, scores


def _split_k(rows: list[PredRow | None], ks: list[int]) -> tuple[tuple[int, int], list[int], list[int]]:
    """``(min, max)`` labels kept per prediction row, the Ks reported and the Ks skipped (above the min)."""
    kept_counts = [len(p.ranked) for p in rows if p is not None]
    labels_kept = (min(kept_counts), max(kept_counts))
    return labels_kept, [x for x in ks if x <= labels_kept[0]], [x for x in ks if x > labels_kept[0]]


def _ranking(scores: np.ndarray, y_true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores to rank by, and where a row scored a label.

    Unscored labels rank below every scored one, gold labels last: a label the row never
    kept cannot count as found, whatever the tie order (metrics rejects -inf, so finite)."""
    kept = np.isfinite(scores)
    floor = float(np.nanmin(scores)) - 1.0 if kept.any() else 0.0
    return np.where(kept, scores, np.where(y_true.astype(bool), floor - 1.0, floor)), kept


def _metrics(
    y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray, matched: np.ndarray, used_k: list[int]
) -> dict[str, float]:
    """RP@K, P@K and R@K for the used Ks, micro/macro F1, micro precision and recall, and mAP."""
    ranking, kept = _ranking(scores, y_true)
    # Labels no item has as gold, scored or predicted change no metric (they sit at the
    # floor, below every K and without positives): drop them so large vocabularies stay fast.
    active = y_true.any(axis=0) | kept.any(axis=0) | y_pred.any(axis=0)
    yt, yp, rk = y_true[:, active], y_pred[:, active], ranking[:, active]
    # Per-item metrics: an item without a prediction scores 0 (an empty ranking finds
    # nothing), so average over the predicted items and scale by their share.
    has_gold = yt.any(axis=1)
    share = float((matched & has_gold).sum()) / float(has_gold.sum())

    def per_item(fn: Any, *args: Any, **kw: Any) -> float:
        return fn(yt[matched], rk[matched], *args, **kw) * share if share else 0.0

    metrics: dict[str, float] = {}
    for x in used_k:
        metrics[f"rp@{x}"] = per_item(rp_at_k, x)
        metrics[f"p@{x}"] = per_item(p_at_k, x)
        metrics[f"r@{x}"] = per_item(r_at_k, x)
    metrics.update(f1_scores(yt, yp))
    tp = float((yt.astype(bool) & yp.astype(bool)).sum())
    metrics["micro_precision"] = tp / yp.sum() if yp.any() else 0.0
    metrics["micro_recall"] = tp / yt.sum()
    metrics["map"] = mean_average_precision(yt, rk, average="label")
    metrics["map_item"] = per_item(mean_average_precision, average="item")
    return metrics


def _per_label(y_true: np.ndarray, y_pred: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
    """Precision, recall, F1, support and predicted count of every label column."""
    prf = per_label_prf(y_true, y_pred)
    return [
        {
            "label": lab,
            "precision": float(prf["precision"][j]),
            "recall": float(prf["recall"][j]),
            "f1": float(prf["f1"][j]),
            "support": int(prf["support"][j]),
            "predicted": int(prf["predicted"][j]),
        }
        for j, lab in enumerate(names)
    ]


def _notes(
    *, n_vocab: int | None, labels_kept: tuple[int, int], skipped_k: list[int], threshold: float | None,
    n_missing: int, n_extra: int, n_bad: int, empty_gold: int, extra_gold: list[str],
    rule: Mapping[str, Any] | None = None,
) -> list[str]:
    """The report's caveats, one sentence each, in a fixed order."""
    if n_vocab is not None and labels_kept[0] >= n_vocab:
        notes = [f"Rows score every one of the {n_vocab} labels: RP@K, P@K, R@K and mAP rank the whole vocabulary."]
    else:
        notes = [
            f"Rows score {labels_kept[0]} labels"
            + (f" (up to {labels_kept[1]})" if labels_kept[1] != labels_kept[0] else "")
            + ": scores are truncated to the kept labels. Unscored labels rank below the scored ones, gold "
            "ones last, so mAP is a lower bound; gold labels a row did not keep count as misses."
        ]
    if skipped_k:
        notes.append(
            f"K = {', '.join(map(str, skipped_k))} skipped: larger than the {labels_kept[0]} labels kept "
            f"per row (label with -k {max(skipped_k)} to report them)."
        )
    if threshold is None and rule:
        shown = ", ".join(f"{key}={value}" for key, value in rule.items() if key not in ("name", "thresholds"))
        notes.append(f"Predicted sets: every label in a row's 'labels', as the run's rule chose them "
                     f"({rule.get('name')}{': ' + shown if shown else ''}); RP@K, P@K, R@K and mAP rank 'top_scores'.")
    elif threshold is None:
        notes.append("Predicted sets: every label in a row's 'labels' (no threshold).")
    else:
        notes.append(f"Predicted sets: labels with score >= {threshold:g}.")
    if n_missing:
        notes.append(f"{n_missing} gold items have no prediction; they count as empty predictions (all misses).")
    if n_extra:
        notes.append(f"{n_extra} prediction rows have no gold labels; ignored.")
    if n_bad:
        notes.append(
            f"{n_bad} bad rows skipped (listed under bad_rows); a gold item whose row was bad counts as missing."
        )
    if empty_gold:
        notes.append(
            f"{empty_gold} gold items have no label: left out of RP@K/P@K/R@K and item mAP, "
            "kept in F1 (their predictions are false positives)."
        )
    if extra_gold:
        shown = ", ".join(repr(g) for g in extra_gold[:5])
        notes.append(
            f"{len(extra_gold)} gold labels are not in the vocabulary ({shown}"
            f"{' ...' if len(extra_gold) > 5 else ''}); they can never be predicted and count as misses."
        )
    return notes


def evaluate(
    pred: str | os.PathLike[str] | Iterable[Mapping[str, Any]],
    gold: str | os.PathLike[str] | Mapping[str, Sequence[str]] | Iterable[Mapping[str, Any]] | None = None,
    *,
    k: int | Iterable[int] = DEFAULT_K,
    threshold: float | None = None,
    vocab: LabelVocab | Sequence[str] | None = None,
) -> EvalReport:
    """Compare predictions with gold labels, matched by id.

    Every gold item counts: one without a prediction is an empty prediction (all misses).
    Predictions without gold are ignored and counted. Bad rows are skipped and listed.

    Args:
        pred: predictions file, run folder with ``labels.jsonl``, or rows (dicts).
        gold: gold file (.jsonl/.csv/.tsv), ``{id: [labels]}``, rows with ``id`` and
            ``labels``, or None to use the ``gold`` field of the prediction rows.
        k: the K of RP@K, P@K and R@K; Ks above the labels kept per row are skipped.
        threshold: predicted set = labels with score >= threshold (default: every label
            in a row's ``labels``).
        vocab: label order of the per-label results; predictions must use its labels.

    Returns:
        an :class:`EvalReport` (``.text`` to print, ``.to_json()``, :func:`zsl.evaluation.report.write_report`).

    Raises:
        InputError: unreadable/empty inputs, repeated ids, no id in common, no gold label
            at all, bad ``k``/``threshold``.
        VocabularyError: a predicted label is not in ``vocab``.

    Example:
        >>> r = evaluate([{"id": "1", "labels": ["a", "b"], "scores": [0.9, 0.4]}], {"1": ["b"]},
        ...              k=(1, 2), threshold=0.5)
        >>> r.metrics["r@2"], r.metrics["micro_f1"], r.per_label[1]
        (1.0, 0.0, {'label': 'b', 'precision': 0.0, 'recall': 0.0, 'f1': 0.0, 'support': 1, 'predicted': 0})
    """
    ks = _check_k(k)
    if threshold is not None and (not is_finite_number(threshold)):
        raise InputError(f"threshold must be a finite number, got {threshold!r}")
    bad: list[BadRow] = []
    preds, pred_source = _preds_from(pred, bad)
    check_unique_ids([p.id for p in preds], f"predictions ({pred_source})")
    gold_map, gold_source = _gold_from(gold, preds, pred_source, bad)
    ids, rows, missing, extra = _align(preds, gold_map, gold_source)
    if vocab is not None and not isinstance(vocab, LabelVocab):
        vocab = LabelVocab(vocab)
    # without a vocabulary, the run's own (from its sidecar): gold labels outside it can never be predicted
    names, extra_gold = _columns(rows, gold_map, vocab, None if vocab is not None else _meta_labels(pred))
    y_true, y_pred, scores = _matrices(ids, rows, gold_map, names, threshold)
    labels_kept, used_k, skipped_k = _split_k(rows, ks)
    metrics = _metrics(y_true, y_pred, scores, np.array([p is not None for p in rows]), used_k)
    notes = _notes(n_vocab=len(vocab) if vocab is not None else _vocab_size(pred), labels_kept=labels_kept,
                   skipped_k=skipped_k, threshold=threshold, n_missing=len(missing), n_extra=len(extra),
                   n_bad=len(bad), empty_gold=int((y_true.sum(axis=1) == 0).sum()), extra_gold=extra_gold,
                   rule=_rule(pred))
    tv = _tree_vocab(vocab, pred)
    hierarchy, tree_note = _hierarchy(tv, ids, gold_map, y_pred, names) if tv is not None else (None, None)
    if tree_note:
        notes.append(tree_note)
    return EvalReport(
        metrics=metrics,
        per_label=_per_label(y_true, y_pred, names),
        n_items=len(ids),
        n_matched=len(ids) - len(missing),
        n_missing=len(missing),
        missing_ids=missing[:MAX_LISTED],
        n_extra=len(extra),
        n_predictions=len(preds),
        bad_rows=[str(b) for b in bad],
        k=used_k,
        skipped_k=skipped_k,
        labels_kept=labels_kept,
        threshold=None if threshold is None else float(threshold),
        notes=notes,
        pred_source=pred_source,
        gold_source=gold_source,
        labels=names,
        ids=ids,
        y_true=y_true,
        y_pred=y_pred,
        scores=scores,
        hierarchy=hierarchy,
    )
