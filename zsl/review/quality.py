"""Label-quality scores: which silver labels are most likely wrong (``zsl issues``, ``zsl export --sort label-quality``).

A run's silver labels (each row's ``labels``) are compared with the out-of-sample opinion of a
small student trained on those same labels:

1. **Cross-fitting**: the items are split into ``n_folds`` folds; for each fold a student (a
   one-vs-rest logistic head on the item embeddings, :class:`zsl.student.heads.AnchoredHead` with no
   zero-shot anchor) is trained on the other folds' silver labels and predicts the held-out
   fold. Every item thus gets probabilities from a student that never saw its labels.
2. **cleanlab** (``cleanlab==2.9.0``, ``pip install 'zsl[review]'``) compares the silver labels
   with those probabilities: ``get_label_quality_scores`` (self-confidence, aggregated over the
   labels of a row; 0 = surely wrong, 1 = surely right) ranks the rows, and
   ``find_label_issues(..., multi_label=True)`` (confident learning) flags the rows it thinks
   are wrong.
3. **Teacher-student disagreement**: the share of a row's silver labels that are not among the
   student's top ``len(labels)`` labels.

Columns: cleanlab's time grows with the number of label columns, and a vocabulary of thousands
of labels mostly holds labels no row uses. The columns are the labels that occur in the silver
set or among a row's candidates (its ``top_scores``), capped by ``max_columns`` (most frequent
first); BENCHMARKS.md measures the time against the number of columns.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> emb = np.repeat(np.eye(3), 10, axis=0) + 0.05 * rng.normal(size=(30, 3))
    >>> y = np.repeat(np.eye(3), 10, axis=0)
    >>> y[0] = [0, 0, 1]                      # one wrong label
    >>> p = cross_fit_proba(emb, y, n_folds=5)
    >>> scores = label_quality(y, p)
    >>> int(np.argmin(scores))
    0
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zsl.data.records import fingerprint
from zsl.errors import InputError, MissingDependencyError, ZslError
from zsl.rows import PredRow, read_predictions, resolve_predictions

__all__ = [
    "QUALITY",
    "QualityReport",
    "QualityUnavailable",
    "cache_path",
    "choose_columns",
    "cross_fit_proba",
    "find_issues",
    "label_quality",
    "quality_of_rows",
    "run_quality",
    "silver_matrix",
    "student_disagreement",
]

QUALITY = "quality.json"  # the cache of a run's scores, in its run directory
DEFAULT_MAX_COLUMNS = 2000
_INSTALL = "pip install 'zsl[review]' (cleanlab==2.9.0)"


class QualityUnavailable(InputError):
    """The run cannot get label-quality scores (fewer than 2 rows, or fewer than 2 labels in use):
    callers that only want an order fall back to confidence order.

    Attributes:
        reason: why, without the fix (the message adds it).
    """

    def __init__(self, reason: str):
        super().__init__(f"{reason} Fix: order the rows by confidence instead (zsl review RUN --sort confidence, "
                         "zsl export --sort confidence), or label more items.")
        self.reason = reason


def _cleanlab():
    try:
        from cleanlab.multilabel_classification import filter as cl_filter
        from cleanlab.multilabel_classification import rank as cl_rank
    except ImportError:
        raise MissingDependencyError(f"Label-quality scores need cleanlab. Fix: {_INSTALL}.") from None
    return cl_rank, cl_filter


# -- maths on arrays ---------------------------------------------------------------------------
def choose_columns(silver: Sequence[Sequence[str]], candidates: Sequence[Sequence[str]] = (), *,
                   max_columns: int | None = DEFAULT_MAX_COLUMNS) -> list[str]:
    """The label columns cleanlab scores: labels of the silver sets, then the rows' candidates.

    Silver labels come first (most frequent first), then candidate labels (most frequent
    first); ``max_columns`` keeps the first ones. Every silver label is kept even past the cap:
    a row's own labels must have a column, or its score would be meaningless.

    Example:
        >>> choose_columns([["a"], ["b", "a"]], [["a", "c", "d"], ["c"]], max_columns=3)
        ['a', 'b', 'c']
    """
    used = Counter(lab for labs in silver for lab in labs)
    cols = [lab for lab, _ in sorted(used.items(), key=lambda t: -t[1])]
    cand = Counter(lab for labs in candidates for lab in labs if lab not in used)
    room = len(cand) if max_columns is None else max(0, max_columns - len(cols))
    cols += [lab for lab, _ in sorted(cand.items(), key=lambda t: -t[1])[:room]]
    return cols


def silver_matrix(silver: Sequence[Sequence[str]], columns: Sequence[str]) -> np.ndarray:
    """``(N, C)`` 0/1 matrix of the silver label sets over ``columns`` (labels outside them are refused).

    Example:
        >>> silver_matrix([["b"], ["a", "b"]], ["a", "b"]).tolist()
        [[0, 1], [1, 1]]
    """
    col = {lab: j for j, lab in enumerate(columns)}
    y = np.zeros((len(silver), len(columns)), dtype=np.int8)
    for i, labs in enumerate(silver):
        for lab in labs:
            if lab not in col:
                raise InputError(f"Row {i}: label {lab!r} has no column; the columns must hold every silver label.")
            y[i, col[lab]] = 1
    return y


def cross_fit_proba(emb: Any, y: Any, *, n_folds: int = 5, lam: float = 1e-3, max_iter: int = 100,
                    random_state: int = 0) -> np.ndarray:
    """Out-of-fold probabilities ``(N, C)``: each item is scored by a student that did not see its labels.

    The student is :class:`zsl.student.heads.AnchoredHead` with a zero anchor (a one-vs-rest logistic
    head on the unit-length embeddings, L2 penalty ``lam``); the folds are stratified on each
    item's rarest label.

    Args:
        emb: ``(N, d)`` item embeddings.
        y: ``(N, C)`` 0/1 silver labels.
        n_folds: folds (at least 2, at most N).
        lam: the head's L2 penalty (fixed: cross-validating it would multiply the time by 5).
        max_iter: L-BFGS iterations per fold.
        random_state: seed of the folds.

    Raises:
        InputError: shapes that do not match, or fewer than 2 items.
    """
    from zsl.student.heads import AnchoredHead, assign_folds

    emb = np.asarray(emb, dtype=np.float32)
    y = (np.asarray(y) > 0).astype(np.float32)
    if emb.ndim != 2 or y.ndim != 2 or len(emb) != len(y):
        raise InputError(f"cross_fit_proba expects emb (N, d) and y (N, C) with the same N; got {emb.shape}, {y.shape}")
    if len(y) < 2:
        raise InputError(f"Cross-fitting needs at least 2 items; got {len(y)}.")
    import importlib

    importlib.import_module("scipy.optimize")  # load it (and its BLAS) before the limit below, so the limit holds
    from threadpoolctl import threadpool_limits

    folds = assign_folds(y, max(2, n_folds), random_state)
    assert folds is not None
    out = np.zeros(y.shape, dtype=np.float32)
    zeros = np.zeros_like(y)
    # One BLAS thread: the matrices are small, and OpenBLAS's spinning threads on a busy 2-core
    # machine made 2,000 x 28 cross-fitting take 74 s instead of 2.9 s (measured).
    with threadpool_limits(limits=1):
        for f in range(int(folds.max()) + 1):
            test, train = folds == f, folds != f
            if not y[train].any():  # nothing to learn from: the student is unsure of everything
                out[test] = 0.5
                continue
            head = AnchoredHead(lam=lam, max_iter=max_iter, random_state=random_state)
            out[test] = head.fit(emb[train], y[train], zeros[train]).fuse(zeros[test], emb[test])
    return out


def _label_lists(y: np.ndarray) -> list[list[int]]:
    return [np.flatnonzero(r).tolist() for r in y]


def label_quality(y: Any, proba: Any, *, adjust: bool = False) -> np.ndarray:
    """cleanlab's multi-label label-quality score per row (0: surely wrong .. 1: surely right).

    ``cleanlab.multilabel_classification.rank.get_label_quality_scores`` with its defaults
    (self-confidence per label, exponential moving average over a row's labels, worst first).

    Args:
        y: ``(N, C)`` 0/1 silver labels.
        proba: ``(N, C)`` out-of-sample probabilities.
        adjust: cleanlab's ``adjust_pred_probs`` (subtract each label's average confidence
            first). Without it, rows with rare labels (a student is rarely sure of those) fill
            the top of the ranking; with it they do not, but on GoEmotions it ranked worse
            (BENCHMARKS.md, "Label-quality ranking").
    """
    cl_rank, _ = _cleanlab()
    y = np.asarray(y)
    with _cleanlab_refusal():
        return np.asarray(cl_rank.get_label_quality_scores(_label_lists(y), np.asarray(proba, dtype=np.float64),
                                                           adjust_pred_probs=adjust), dtype=np.float64)


@contextmanager
def _cleanlab_refusal() -> Iterator[None]:
    """cleanlab's ValueError about the labels' shape (a case the checks before it missed) as QualityUnavailable."""
    try:
        yield
    except ZslError:
        raise
    except ValueError as exc:
        raise QualityUnavailable(f"cleanlab cannot score these labels ({exc}).") from exc


def find_issues(y: Any, proba: Any) -> np.ndarray:
    """Boolean mask of the rows cleanlab's confident learning flags as mislabelled (multi-label).

    Runs in this process (``n_jobs=1``): cleanlab's default pool of worker processes made
    600 rows x 500 columns take 23 s instead of 0.8 s on the 2-core machine (measured).
    """
    _, cl_filter = _cleanlab()
    y = np.asarray(y)
    with _cleanlab_refusal():
        return np.asarray(cl_filter.find_label_issues(_label_lists(y), np.asarray(proba, dtype=np.float64), n_jobs=1),
                          dtype=bool)


def student_disagreement(y: Any, proba: Any) -> np.ndarray:
    """Share of each row's silver labels that are not among the student's top ``len(labels)`` labels.

    Example:
        >>> student_disagreement(np.array([[1, 0, 0], [1, 1, 0]]), np.array([[.2, .9, .1], [.8, .1, .7]])).tolist()
        [1.0, 0.5]
    """
    y = np.asarray(y) > 0
    p = np.asarray(proba)
    out = np.zeros(len(y))
    order = np.argsort(-p, axis=1, kind="stable")
    for i, row in enumerate(y):
        m = int(row.sum())
        if m:
            out[i] = 1.0 - row[order[i, :m]].sum() / m
    return out


# -- rows of a run ------------------------------------------------------------------------------
@dataclass
class QualityReport:
    """Label-quality scores of a run's rows (row order of ``labels.jsonl``).

    Attributes:
        ids: the item ids.
        quality: cleanlab's label-quality score per row (low: likely wrong).
        disagreement: teacher-student disagreement per row (see :func:`student_disagreement`).
        issue: cleanlab's ``find_label_issues`` flag per row.
        doubted: per row, its silver labels the student gives below 0.5, worst first.
        suggested: per row, labels the student gives at least 0.5 that the row lacks, best first.
        student: per row, the student's probabilities of its silver labels and of its suggestions.
        columns: the label columns scored (see :func:`choose_columns`).
        seconds: time of ``encode``, ``student`` (cross-fitting), ``cleanlab``.
        settings: what produced the scores (encoder, folds, lam, columns cap).
    """

    ids: list[str]
    quality: np.ndarray
    disagreement: np.ndarray
    issue: np.ndarray
    doubted: list[list[str]]
    suggested: list[list[str]]
    student: list[dict[str, float]]
    columns: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def order(self) -> list[int]:
        """Row indices, most likely wrong first: lowest quality, then highest disagreement, then file order."""
        return sorted(range(len(self.ids)), key=lambda i: (self.quality[i], -self.disagreement[i], i))

    def label_issues(self) -> list[tuple[str, int]]:
        """``(label, rows)``: how often each label is doubted on a flagged row, most often first."""
        c: Counter[str] = Counter()
        for i in np.flatnonzero(self.issue):
            c.update(self.doubted[int(i)])
        return c.most_common()

    def to_json(self) -> dict[str, Any]:
        return {"ids": self.ids, "quality": [round(float(q), 6) for q in self.quality],
                "disagreement": [round(float(d), 6) for d in self.disagreement],
                "issue": [bool(b) for b in self.issue], "doubted": self.doubted, "suggested": self.suggested,
                "student": self.student, "columns": self.columns, "seconds": self.seconds, "settings": self.settings}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> QualityReport:
        return cls(ids=list(obj["ids"]), quality=np.asarray(obj["quality"], dtype=np.float64),
                   disagreement=np.asarray(obj["disagreement"], dtype=np.float64),
                   issue=np.asarray(obj["issue"], dtype=bool), doubted=obj["doubted"], suggested=obj["suggested"],
                   student=obj["student"], columns=obj["columns"], seconds=obj.get("seconds", {}),
                   settings=obj.get("settings", {}))


def _item_texts(rows: Sequence[PredRow]) -> list[str]:
    texts = []
    for r in rows:
        t = r.row.get("text")
        if not isinstance(t, str):
            kind = "an image run" if "image" in r.row else "a row without 'text'"
            raise InputError(f"Row {r.id!r} has no text ({kind}): label-quality scores embed the texts. Fix: order "
                             "it by confidence instead (zsl review RUN --sort confidence, zsl export --sort "
                             "confidence), or in Python pass features=... (an (N, d) array, e.g. image embeddings) "
                             "to zsl.review.quality.quality_of_rows.")
        texts.append(t)
    return texts


def quality_of_rows(rows: Sequence[PredRow], *, features: Any = None, encoder: Any = None, n_folds: int = 5,
                    lam: float = 1e-3, max_columns: int | None = DEFAULT_MAX_COLUMNS, adjust: bool = False,
                    random_state: int = 0) -> QualityReport:
    """Label-quality scores for prediction rows (see the module docstring).

    Args:
        rows: the rows (``labels`` are the silver labels; ``top_scores`` keys are candidates).
        features: ``(N, d)`` embeddings of the items; None: embed their texts with ``encoder``.
        encoder: an encoder name or object (default: ``$ZSL_ENCODER`` or minilm-l6).
        n_folds, lam, random_state: see :func:`cross_fit_proba`.
        max_columns: see :func:`choose_columns`.
        adjust: see :func:`label_quality` (rare labels do not fill the top of the order).

    Raises:
        QualityUnavailable: fewer than 2 rows, or fewer than 2 labels in use (nothing to compare).
        InputError: rows without texts and no ``features``, features of the wrong shape.
        MissingDependencyError: cleanlab is not installed.
    """
    texts = _item_texts(rows) if features is None else None  # an image run: say so first
    if len(rows) < 2:
        raise QualityUnavailable(f"Label-quality scores need at least 2 rows; got {len(rows)}.")
    used = {lab for r in rows for lab in r.chosen}
    if len(used) < 2:  # cleanlab's multi-label scores need two classes; one label cannot be told apart from itself
        raise QualityUnavailable(f"Label-quality scores need at least 2 labels in use; the {len(rows)} rows use "
                                 f"{len(used)} ({', '.join(map(repr, sorted(used))) or 'none'}).")
    _cleanlab()  # fail before the slow part
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    enc_name = None
    if texts is not None:
        from zsl.models.encoders import get_encoder

        enc = encoder if encoder is not None and not isinstance(encoder, str | os.PathLike) else get_encoder(encoder)
        enc_name = getattr(enc, "model_id", type(enc).__name__)
        features = enc.encode(texts)
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or len(features) != len(rows):
        raise InputError(f"features must be ({len(rows)}, d), one row per prediction row; got {features.shape}.")
    seconds["encode"] = time.perf_counter() - t0
    silver = [list(r.chosen) for r in rows]
    columns = choose_columns(silver, [[lab for lab, _ in r.ranked] for r in rows], max_columns=max_columns)
    y = silver_matrix(silver, columns)
    t0 = time.perf_counter()
    proba = cross_fit_proba(features, y, n_folds=n_folds, lam=lam, random_state=random_state)
    seconds["student"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    quality = label_quality(y, proba, adjust=adjust)
    issue = find_issues(y, proba)
    seconds["cleanlab"] = time.perf_counter() - t0
    doubted, suggested, student = [], [], []
    for i in range(len(rows)):
        given = np.flatnonzero(y[i])
        low = [int(j) for j in given[np.argsort(proba[i, given], kind="stable")] if proba[i, j] < 0.5]
        others = np.flatnonzero((y[i] == 0) & (proba[i] >= 0.5))
        high = [int(j) for j in others[np.argsort(-proba[i, others], kind="stable")][:5]]
        doubted.append([columns[j] for j in low])
        suggested.append([columns[j] for j in high])
        student.append({columns[int(j)]: round(float(proba[i, j]), 4) for j in [*given.tolist(), *high]})
    return QualityReport(ids=[r.id for r in rows], quality=quality, disagreement=student_disagreement(y, proba),
                         issue=issue, doubted=doubted, suggested=suggested, student=student, columns=columns,
                         seconds={k: round(v, 3) for k, v in seconds.items()},
                         settings={"encoder": enc_name, "n_folds": n_folds, "lam": lam, "max_columns": max_columns,
                                   "adjust": adjust, "random_state": random_state})


def run_quality(run: str | os.PathLike[str], *, encoder: Any = None, refresh: bool = False, save: bool = True,
                **kwargs: Any) -> QualityReport:
    """The label-quality scores of a run (or predictions file), cached in ``quality.json`` beside it.

    The cache is used while ``labels.jsonl`` keeps the same fingerprint and the settings match;
    otherwise the scores are computed again (seconds to minutes: the texts are embedded and a
    student is trained ``n_folds`` times).

    Args:
        run: a run directory, or a predictions ``.jsonl``.
        encoder: see :func:`quality_of_rows`.
        refresh: recompute even when the cache is valid.
        save: write the cache (refused while a ``zsl label`` run holds the directory's lock).
        **kwargs: more :func:`quality_of_rows` settings.

    Raises:
        InputError: no ``labels.jsonl``, no usable row, or the run is being written.
    """
    from zsl.runs.rundir import check_not_running

    pred = resolve_predictions(run)
    check_not_running(pred.parent)
    cache = cache_path(pred)
    source = fingerprint(pred)
    want = {"encoder": None if encoder is None or not isinstance(encoder, str) else encoder, **kwargs}
    rows = read_predictions(pred)
    if cache.is_file() and not refresh:
        try:
            obj = json.loads(cache.read_text(encoding="utf-8"))
            fresh = isinstance(obj, dict) and obj.get("source") == source and obj.get("request") == want
        except (OSError, ValueError):
            obj, fresh = None, False
            warnings.warn(f"{cache} is not readable JSON: computing the label-quality scores again.", stacklevel=2)
        if fresh:
            why = _damaged(obj.get("report"), [r.id for r in rows])
            if why is None:
                return QualityReport.from_json(obj["report"])
            warnings.warn(f"{cache} is damaged ({why}): computing the label-quality scores again.", stacklevel=2)
    report = quality_of_rows(rows, encoder=encoder, **kwargs)
    if save:
        from zsl.runs.rundir import write_json

        write_json(cache, {"source": source, "request": want, "report": report.to_json()})
    return report


def _damaged(obj: Any, ids: list[str]) -> str | None:
    """Why a cached report cannot be trusted for rows ``ids`` (None: it can)."""
    if not isinstance(obj, dict):
        return "its report is not an object"
    if obj.get("ids") != ids:
        return f"its ids do not match the {len(ids)} rows of the predictions"
    n = len(ids)

    def number(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)

    def strings(x: Any) -> bool:
        return isinstance(x, list) and all(isinstance(v, str) for v in x)

    checks = {"quality": lambda v: number(v), "disagreement": lambda v: number(v), "issue": lambda v: isinstance(v, bool),
              "doubted": strings, "suggested": strings,
              "student": lambda v: isinstance(v, dict) and all(isinstance(k, str) and number(x) for k, x in v.items())}
    for key, ok in checks.items():
        values = obj.get(key)
        if not isinstance(values, list) or len(values) != n or not all(ok(v) for v in values):
            return f"{key!r} is not a list of {n} valid entries"
    if not strings(obj.get("columns")):
        return "'columns' is not a list of label names"
    return None


def cache_path(run: str | os.PathLike[str]) -> Path:
    """Where :func:`run_quality` caches the scores of ``run``."""
    pred = resolve_predictions(run)
    return pred.parent / QUALITY if pred.name == "labels.jsonl" else pred.with_name(pred.stem + ".quality.json")
