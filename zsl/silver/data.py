"""Pseudo-labels and silver data: from teacher scores to files a student can learn from.

A :class:`SilverData` holds, for N items and the K labels of a vocabulary, the teacher's
scores, the labels a rule (:mod:`zsl.scoring`) chose, the rule's confidence in every
(item, label) pair, and provenance: model ids, prompt versions, vocabulary hash, the rule
with its thresholds, and the zsl version.

Formats (all written atomically: a temp file renamed into place, nothing half-written):

* ``.jsonl``: one row per item, readable by people and by :func:`zsl.data.read_items`::

      {"id": "7", "text": "...", "labels": ["joy"], "scores": {"joy": 0.61, ...},
       "confidence": {"joy": 0.93, ...}, "thresholds": {"joy": 0.41}, "provenance": {...}}

  ``scores``/``confidence`` are keyed by label name (labels may contain commas), every
  label for vocabularies up to 1,000 labels, else the best ``max_scores``;
  ``thresholds`` gives the threshold each chosen label passed. A sidecar
  ``<file>.meta.json`` keeps the vocabulary (order and descriptions), the rule with all
  its fitted thresholds and the full provenance.
* ``.csv``: the same columns, lists and mappings as JSON text in their cells, and the
  same sidecar.
* ``.parquet`` (needs ``pyarrow``): dense ``scores``/``confidence``/``thresholds`` vectors
  in vocabulary order; the sidecar's content sits in the file's schema metadata.
* a Hugging Face ``datasets.Dataset`` (:func:`to_hf_dataset`, needs ``datasets``), with
  ``labels`` as ``Sequence(ClassLabel)`` so the label order travels with it.

:func:`read_silver` reads all three file formats back into the same :class:`SilverData`;
it also reads the ``labels.jsonl`` rows of :func:`zsl.runs.label.label_run` (:mod:`zsl.rows`): their
``labels`` (the top ``k``) are the chosen ones, their ``top_scores`` the scores, and the soft
targets (``confidence``) are :class:`~zsl.scoring.TopK` ``(k)``'s confidences over those scores
(temperature: half the standard deviation of the stored scores). Rows written before
``top_scores`` existed keep only the ``k`` kept scores; their chosen labels get confidence 1.
A row missing a field is refused with its line, the field, and how to make a valid file.

Example:
    >>> import numpy as np
    >>> from zsl.vocab import LabelVocab
    >>> from zsl.scoring import TopK
    >>> silver = make_silver(np.array([[0.9, 0.1], [0.2, 0.7]]), LabelVocab(["a", "b"]), TopK(k=1),
    ...                      texts=["first", "second"])
    >>> silver.label_lists()
    [['a'], ['b']]
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zsl.data.files import atomic_write, iter_jsonl, write_lines_atomic, write_text_atomic
from zsl.errors import InputError, MissingDependencyError, VocabularyError
from zsl.rows import (
    SILVER_FORMAT,
    SILVER_ROWS,
    check_unique_ids,
    meta_path,
    parse_pred_row,
    read_meta,
    vocab_from_meta,
    vocab_to_meta,
)
from zsl.scoring import check_scores
from zsl.util.cache import content_hash
from zsl.vocab import LabelVocab, vocab_difference

__all__ = [
    "FORMATS",
    "SilverData",
    "from_hf_dataset",
    "make_silver",
    "read_silver",
    "silver_from_tagger",
    "silver_rows",
    "to_hf_dataset",
    "write_silver",
]

FORMATS = ("jsonl", "csv", "parquet")


# -- the data -------------------------------------------------------------------------------
@dataclass
class SilverData:
    """Pseudo-labelled items: the contract between a teacher, a rule and a student.

    Attributes:
        vocab: the labels; column ``j`` of every matrix is ``vocab[j]``.
        ids: one id per item.
        labels: ``(N, K)`` uint8 chosen labels.
        confidence: ``(N, K)`` float32 in [0, 1]; the soft targets for distillation.
        scores: ``(N, K)`` float32 teacher scores; NaN where a score was not recorded.
        thresholds: ``(N, K)`` float32, the threshold each chosen label passed; NaN
            elsewhere.
        texts: the item texts (None when the silver data holds ids only).
        provenance: what produced it (models, prompts, vocabulary hash, rule, zsl version).
        rule: the rule's full description with fitted thresholds (``rule.describe()``).
    """

    vocab: LabelVocab
    ids: list[str]
    labels: np.ndarray
    confidence: np.ndarray
    scores: np.ndarray
    thresholds: np.ndarray
    texts: list[str] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    rule: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        n, k = len(self.ids), len(self.vocab)
        self.ids = [str(i) for i in self.ids]
        self.labels = np.asarray(self.labels, dtype=np.uint8)
        self.confidence = np.asarray(self.confidence, dtype=np.float32)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        self.thresholds = np.asarray(self.thresholds, dtype=np.float32)
        for name in ("labels", "confidence", "scores", "thresholds"):
            arr = getattr(self, name)
            if arr.shape != (n, k):
                raise InputError(f"SilverData.{name} has shape {arr.shape}; expected ({n}, {k}) for {n} ids and "
                                 f"{k} vocabulary labels.")
        if self.texts is not None:
            self.texts = list(self.texts)
            if len(self.texts) != n:
                raise InputError(f"SilverData has {len(self.texts)} texts for {n} ids; they must match 1:1.")
        if len(set(self.ids)) != n:
            check_unique_ids(self.ids, "silver data")

    def __len__(self) -> int:
        return len(self.ids)

    def label_lists(self) -> list[list[str]]:
        """The chosen label names per item, highest confidence first."""
        out = []
        for lab, conf in zip(self.labels, self.confidence):
            idx = np.flatnonzero(lab)
            idx = idx[np.argsort(-conf[idx], kind="stable")]
            out.append([self.vocab[int(j)] for j in idx])
        return out

    def meta(self) -> dict[str, Any]:
        """The file-level record: vocabulary, rule, provenance, row count, format version."""
        return {"zsl_silver": SILVER_FORMAT, "n_rows": len(self), "vocab": vocab_to_meta(self.vocab),
                "rule": self.rule, "provenance": self.provenance}


def _rule_summary(rule: dict[str, Any] | None) -> dict[str, Any] | None:
    if rule is None:
        return None
    return {"name": rule.get("rule"), "params": rule.get("params"),
            "id": content_hash(json.dumps(rule, sort_keys=True))[:16]}


def make_silver(scores: Any, vocab: LabelVocab | Sequence[str], rule: Any = None, *, ids: Sequence[Any] | None = None,
                texts: Sequence[str] | None = None, provenance: dict[str, Any] | None = None,
                y: Any = None) -> SilverData:
    """Turn teacher scores into silver data with a labelling rule.

    Args:
        scores: ``(N, K)`` teacher scores in vocabulary order.
        vocab: the vocabulary (or its labels).
        rule: a rule from :mod:`zsl.scoring` (fitted or not), or a rule name; None:
            ``TopK(k=1)`` (each item's best label; label-free). An unfitted rule is fitted on these scores
            (and on ``y`` when given: a few gold-labelled items calibrate thresholds).
        ids: item ids (default ``"0"``, ``"1"``, ...).
        texts: item texts (needed to distil a text student).
        provenance: what produced the scores, e.g. a scorer's ``config()``;
            zsl version, vocabulary hash and the rule are added.
        y: gold labels for rules that calibrate on them.

    Returns:
        a :class:`SilverData`.

    Raises:
        InputError: NaN/inf scores, shapes that do not match, repeated ids.

    Example:
        >>> import numpy as np
        >>> s = make_silver(np.array([[0.3, 0.8]]), ["x", "y"], "top_k")
        >>> s.labels.tolist(), s.provenance["rule"]["name"]
        ([[0, 1]], 'top_k')
    """
    from zsl.scoring import TopK, get_rule
    from zsl.version import __version__

    vocab = vocab if isinstance(vocab, LabelVocab) else LabelVocab(vocab)
    s = check_scores(scores, n_labels=len(vocab))
    if rule is None:
        rule = TopK(k=1)
    elif isinstance(rule, str):
        rule = get_rule(rule)
    if not hasattr(rule, "decide"):
        raise InputError(f"rule must be a zsl.scoring rule or a rule name, got {type(rule).__name__}")
    if not hasattr(rule, "n_labels_"):
        rule.fit(s, y)
    decision = rule.decide(s)
    n = s.shape[0]
    ids = [str(i) for i in range(n)] if ids is None else [str(i) for i in ids]
    if len(ids) != n:
        raise InputError(f"Got {len(ids)} ids for {n} score rows; they must match 1:1.")
    if texts is not None and len(texts) != n:
        raise InputError(f"Got {len(texts)} texts for {n} score rows; they must match 1:1.")
    thr = np.broadcast_to(decision.thresholds, s.shape).astype(np.float32)
    thr = np.where(decision.labels.astype(bool), thr, np.nan)
    description = rule.describe()
    prov = {"zsl_version": __version__, **(provenance or {}), "vocab_hash": vocab.hash, "vocab_size": len(vocab),
            "rule": _rule_summary(description)}
    return SilverData(vocab=vocab, ids=ids, labels=decision.labels, confidence=decision.confidence, scores=s,
                      thresholds=thr, texts=None if texts is None else list(texts), provenance=prov, rule=description)


def silver_from_tagger(tagger: Any, texts: Sequence[str], *, ids: Sequence[Any] | None = None, rule: Any = None,
                       y: Any = None, show_progress: bool = False) -> SilverData:
    """Score texts with a :class:`~zsl.text.tagger.Tagger` and turn the scores into silver data.

    Args:
        tagger: the teacher (e.g. ``Tagger(vocab, infer=False, rank=False)`` for retrieve-only).
        texts: the items.
        ids, rule, y: see :func:`make_silver`.
        show_progress: progress bar while scoring.

    Returns:
        a :class:`SilverData` whose provenance names the teacher's models and prompts.

    Example:
        >>> from zsl import Tagger                                        # doctest: +SKIP
        >>> silver = silver_from_tagger(Tagger(vocab, infer=False, rank=False), texts)  # doctest: +SKIP
    """
    scores = tagger.score(texts, show_progress=show_progress)
    prov = {**tagger.config(), "teacher": "zsl.Tagger"}
    return make_silver(scores, tagger.vocab, rule, ids=ids, texts=texts, provenance=prov, y=y)


# -- rows (JSONL / CSV) ---------------------------------------------------------------------
def silver_rows(silver: SilverData, *, max_scores: int | None = None) -> Iterator[dict[str, Any]]:
    """The JSONL/CSV rows of silver data, one per item (see the module docstring).

    Args:
        silver: the data.
        max_scores: how many labels' scores and confidences to keep per row (the chosen
            labels always stay). None: every label up to 1,000 labels, else 100.

    Yields:
        dicts with ``id``, ``text`` (when known), ``labels``, ``scores``, ``confidence``,
        ``thresholds`` and ``provenance``.
    """
    k = len(silver.vocab)
    keep_n = max_scores if max_scores is not None else SILVER_ROWS.kept(k)
    if keep_n < 0:
        raise InputError(f"max_scores must be >= 0, got {max_scores}")
    labels_all = silver.vocab.labels
    chosen_lists = silver.label_lists()
    for i, item_id in enumerate(silver.ids):
        recorded = np.flatnonzero(np.isfinite(silver.scores[i]))
        if keep_n < len(recorded):
            order = recorded[np.argsort(-silver.scores[i, recorded], kind="stable")][:keep_n]
            keep = np.union1d(order, np.flatnonzero(silver.labels[i]))
        else:
            keep = np.union1d(recorded, np.flatnonzero(silver.labels[i]))
        row: dict[str, Any] = {"id": item_id}
        if silver.texts is not None:
            row["text"] = silver.texts[i]
        row["labels"] = chosen_lists[i]
        row["scores"] = {labels_all[j]: SILVER_ROWS.rounded(silver.scores[i, j]) for j in keep if np.isfinite(silver.scores[i, j])}
        row["confidence"] = {labels_all[j]: SILVER_ROWS.rounded(silver.confidence[i, j]) for j in keep}
        row["thresholds"] = {lab: SILVER_ROWS.rounded(silver.thresholds[i, silver.vocab.index(lab)]) for lab in chosen_lists[i]
                             if np.isfinite(silver.thresholds[i, silver.vocab.index(lab)])}
        row["provenance"] = silver.provenance
        yield row


# -- writing (every file through zsl.data.atomic_write) ---------------------------------------
def _write_meta(path: Path, meta: dict[str, Any]) -> Path:
    return write_text_atomic(meta_path(path), json.dumps(meta, ensure_ascii=False, indent=1), sync=True)


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        key = fmt.lower().lstrip(".")
    else:
        key = path.suffix.lower().lstrip(".")
        key = {"pq": "parquet", "tsv": "csv"}.get(key, key)
    if key not in FORMATS:
        raise InputError(f"Unknown silver data format {key!r} for {path}. Use a file ending in "
                         f"{', '.join('.' + f for f in FORMATS)} or pass format= one of {', '.join(FORMATS)}.")
    return key


def write_silver(silver: SilverData, path: str | os.PathLike[str], *, format: str | None = None,
                 max_scores: int | None = None) -> Path:
    """Write silver data as JSONL, CSV or Parquet, atomically.

    Args:
        silver: the data.
        path: the output file; its suffix picks the format unless ``format`` is given.
        format: ``"jsonl"``, ``"csv"`` or ``"parquet"``.
        max_scores: see :func:`silver_rows` (JSONL/CSV; Parquet keeps every score).

    Returns:
        the path written. JSONL and CSV also get ``<path>.meta.json``.

    Raises:
        InputError: the path cannot be written (nothing is left behind), unknown format.
        MissingDependencyError: Parquet without ``pyarrow``.

    Example:
        >>> write_silver(silver, "out/silver.jsonl")               # doctest: +SKIP
    """
    p = Path(path)
    fmt = _format_of(p, format)
    if fmt == "parquet":
        return _write_parquet(silver, p)
    rows = silver_rows(silver, max_scores=max_scores)
    # Silver data holds every item's text: owner-only, as the runs it comes from (issue #26, X4).
    if fmt == "jsonl":
        out = write_lines_atomic(p, (json.dumps(row, ensure_ascii=False) + "\n" for row in rows), private=True)
    else:
        delim = "\t" if p.suffix.lower() == ".tsv" else ","

        def write(tmp: Path) -> None:
            with tmp.open("w", encoding="utf-8", newline="") as fh:
                writer = csv.writer(fh, delimiter=delim)
                writer.writerow(_CSV_COLUMNS)
                for row in rows:
                    writer.writerow([row["id"], row.get("text", ""), *(
                        json.dumps(row[c], ensure_ascii=False) for c in _CSV_COLUMNS[2:])])

        out = atomic_write(p, write, private=True, sync=True)
    _write_meta(p, silver.meta())
    return out


_CSV_COLUMNS = ("id", "text", "labels", "scores", "confidence", "thresholds", "provenance")


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("pyarrow", "Parquet silver data", "pip install pyarrow") from None
    return pa, pq


def _write_parquet(silver: SilverData, path: Path) -> Path:
    pa, pq = _pyarrow()
    k = len(silver.vocab)
    vec = pa.list_(pa.float32(), k)
    table = pa.table({
        "id": pa.array(silver.ids, pa.string()),
        "text": pa.array(silver.texts if silver.texts is not None else [None] * len(silver), pa.string()),
        "labels": pa.array(silver.label_lists(), pa.list_(pa.string())),
        "scores": pa.FixedSizeListArray.from_arrays(pa.array(silver.scores.ravel(), pa.float32()), k),
        "confidence": pa.FixedSizeListArray.from_arrays(pa.array(silver.confidence.ravel(), pa.float32()), k),
        "thresholds": pa.FixedSizeListArray.from_arrays(pa.array(silver.thresholds.ravel(), pa.float32()), k),
        "provenance": pa.array([json.dumps(silver.provenance, ensure_ascii=False)] * len(silver), pa.string()),
    })
    assert table.schema.field("scores").type == vec
    table = table.replace_schema_metadata({b"zsl_silver": json.dumps(silver.meta(), ensure_ascii=False).encode()})

    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            pq.write_table(table, fh, compression="zstd")

    return atomic_write(path, write, private=True, sync=True)


# -- reading --------------------------------------------------------------------------------
def read_silver(path: str | os.PathLike[str], *, vocab: LabelVocab | Sequence[str] | None = None,
                format: str | None = None) -> SilverData:
    """Read silver data written by :func:`write_silver` (or rows from ``zsl label``).

    The label order comes from, in turn: ``vocab`` if given; the file's metadata
    (``.meta.json`` sidecar or Parquet schema metadata); the first row's ``scores`` when
    it names every label. ``zsl label`` rows give soft targets from their ``top_scores``
    (see the module docstring).

    Args:
        path: a ``.jsonl``, ``.csv``/``.tsv`` or ``.parquet`` file.
        vocab: the vocabulary to align columns to. JSONL/CSV rows are matched by label
            name, so any vocabulary holding their labels works; Parquet needs the same
            label set as recorded.
        format: override the format implied by the suffix.

    Returns:
        a :class:`SilverData`.

    Raises:
        InputError: missing/empty/malformed file, or no way to tell the label order.
        VocabularyError: rows name labels outside ``vocab`` (the message lists them).

    Example:
        >>> silver = read_silver("out/silver.jsonl")               # doctest: +SKIP
    """
    p = Path(path)
    fmt = _format_of(p, format)
    if not p.is_file():
        raise InputError(f"Silver data file {p} does not exist.")
    if p.stat().st_size == 0:
        raise InputError(f"Silver data file {p} is empty.")
    given = None if vocab is None else (vocab if isinstance(vocab, LabelVocab) else LabelVocab(vocab))
    if fmt == "parquet":
        return _read_parquet(p, given)
    meta = read_meta(p)
    rows = list(_iter_jsonl(p) if fmt == "jsonl" else _iter_csv(p))
    if not rows:
        raise InputError(f"{p} has no row.")
    return _from_rows(rows, p, given, meta)


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with path.open(encoding="utf-8") as fh:
            for ln, obj, err in iter_jsonl(fh):
                if err:
                    raise InputError(f"{path}:{ln}: {err}.")
                if not isinstance(obj, dict):
                    raise InputError(f"{path}:{ln}: expected a JSON object, got {type(obj).__name__}.")
                yield ln, obj
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text ({exc.reason}).") from None


def _iter_csv(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    delim = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter=delim)
            missing = [c for c in ("id", "labels") if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(f"{path}: the header lacks {missing} (found {reader.fieldnames}); is this silver data?")
            for row in reader:
                ln = reader.line_num
                obj: dict[str, Any] = {"id": row["id"]}
                if row.get("text"):
                    obj["text"] = row["text"]
                for col in _CSV_COLUMNS[2:]:
                    cell = row.get(col)
                    if cell:
                        try:
                            obj[col] = json.loads(cell)
                        except json.JSONDecodeError as exc:
                            raise InputError(f"{path}:{ln}: column {col!r} is not valid JSON ({exc.msg}).") from None
                yield ln, obj
    except csv.Error as exc:
        raise InputError(f"{path}: CSV error ({exc}); very wide rows read better from Parquet or JSONL.") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text ({exc.reason}).") from None


_VALID_SILVER = ("Fix: make silver data with `zsl label INPUT --labels VOCAB --out RUN/` (it writes RUN/labels.jsonl) "
                 "or zsl.silver.data.write_silver.")


def _from_rows(rows: list[tuple[int, dict[str, Any]]], path: Path, given: LabelVocab | None,
               meta: dict[str, Any] | None) -> SilverData:
    """Silver data from the ``(line, row)`` pairs of a JSONL or CSV file and its ``.meta.json`` (if any)."""
    parsed = _parse_rows(rows, path)
    vocab = _rows_vocab(rows, path, given, meta)
    n = len(rows)
    ids, texts, labels, conf, scores, thr, soft = _fill_columns(parsed, vocab, path)
    have_text = [t is not None for t in texts]
    if any(have_text) and not all(have_text):
        ln = rows[have_text.index(False)][0]
        raise InputError(f"{path}:{ln}: this row has no 'text' while others do.")
    prov = (meta or {}).get("provenance") or rows[0][1].get("provenance") or {}
    if meta is not None and meta.get("n_rows") not in (None, n):
        raise InputError(f"{path} has {n} rows but {meta_path(path).name} says {meta['n_rows']}: they come from "
                         "different writes. Re-export the silver data.")
    rule = (meta or {}).get("rule")
    if soft:
        kept = ((meta or {}).get("rows") or {}).get("k") or max(len(parsed[i].chosen) for i in soft)
        if _sets_by_rule(meta):
            conf[soft], soft_thr, described = _set_confidence(scores[soft], labels[soft])
        else:
            conf[soft], soft_thr, described = _top_k_confidence(scores[soft], labels[soft], int(kept))
        thr[soft] = np.where(labels[soft].astype(bool), soft_thr, thr[soft])
        rule = {**(rule or {}), "confidence": described}
    return SilverData(vocab=vocab, ids=ids, labels=labels, confidence=conf, scores=scores, thresholds=thr,
                      texts=[t for t in texts if t is not None] if all(have_text) else None,
                      provenance=dict(prov), rule=rule)


def _parse_rows(rows: list[tuple[int, dict[str, Any]]], path: Path) -> list[Any]:
    """Each row through the one row reader (`parse_pred_row`); ids must not repeat."""
    parsed = []
    for ln, row in rows:
        got = parse_pred_row(row, ln)
        if isinstance(got, str):
            raise InputError(f"{path}:{ln}: {got}. {_VALID_SILVER}")
        parsed.append(got)
    check_unique_ids([r.id for r in parsed], f"silver data {path}")
    return parsed


def _rows_vocab(rows: list[tuple[int, dict[str, Any]]], path: Path, given: LabelVocab | None,
                meta: dict[str, Any] | None) -> LabelVocab:
    """The label order: the given vocabulary, else the one recorded in the sidecar, else the first row's
    ``scores`` keys when they cover every label."""
    recorded = vocab_from_meta(meta, str(path)) if meta is not None else None
    if given is not None:
        return given
    if recorded is not None:
        return recorded
    first = rows[0][1]
    size = (first.get("provenance") or {}).get("vocab_size")
    keys = list(first["scores"]) if isinstance(first.get("scores"), dict) else []
    if not keys or size != len(keys):
        raise InputError(f"{path}: cannot tell the label order (no {meta_path(path).name} beside it and the rows "
                         "do not score every label). Fix: pass vocab=... (or --labels FILE).")
    return LabelVocab(keys)


def _fill_columns(parsed: list[Any], vocab: LabelVocab, path: Path) -> tuple:
    """The rows as columns in ``vocab`` order: ids, texts, labels, confidences, scores, thresholds, and the
    rows (from ``zsl label``, with ``top_scores``) whose confidences are still to come from their scores.

    Raises:
        VocabularyError: a row names a label outside ``vocab``.
    """
    n, k = len(parsed), len(vocab)
    labels = np.zeros((n, k), dtype=np.uint8)
    conf = np.zeros((n, k), dtype=np.float32)
    scores = np.full((n, k), np.nan, dtype=np.float32)
    thr = np.full((n, k), np.nan, dtype=np.float32)
    ids: list[str] = []
    texts: list[str | None] = []
    unknown: dict[str, int] = {}
    soft: list[int] = []  # rows of zsl label with top_scores: confidences come from those scores

    def col(lab: str, ln: int) -> int | None:
        j = vocab.get(lab)
        if j is None:
            unknown.setdefault(lab, ln)
        return j

    for i, r in enumerate(parsed):
        row, ln = r.row, r.line
        ids.append(r.id)
        texts.append(row.get("text"))
        for lab in r.chosen:
            j = col(lab, ln)
            if j is not None:
                labels[i, j] = 1
        for lab, v in r.ranked:
            j = col(lab, ln)
            if j is not None:
                scores[i, j] = v
        cf = row.get("confidence")
        if isinstance(cf, dict):
            for lab, v in cf.items():
                j = col(lab, ln)
                if j is not None:
                    conf[i, j] = float(v)
        elif "top_scores" in row:
            soft.append(i)
        else:  # rows with the kept scores only: nothing below them to be soft about
            conf[i] = labels[i]
        for lab, v in (row.get("thresholds") or {}).items():
            j = col(lab, ln)
            if j is not None:
                thr[i, j] = float(v)
    if unknown:
        shown = ", ".join(f"{lab!r} (line {ln})" for lab, ln in list(unknown.items())[:8])
        raise VocabularyError(f"{path}: {len(unknown)} label(s) are not in the vocabulary ({len(vocab)} labels): {shown}. "
                              "Fix: pass the vocabulary the silver data was made with.")
    return ids, texts, labels, conf, scores, thr, soft


def _sets_by_rule(meta: dict[str, Any] | None) -> bool:
    """Do the rows' ``labels`` come from a label-set rule other than the top ``k`` (row format 3 and up)?
    Rows of formats 1 and 2 always hold the ``k`` best."""
    rows, rule = (meta or {}).get("rows") or {}, (meta or {}).get("rule") or {}
    return isinstance(rows.get("format"), int) and rows["format"] >= 3 and rule.get("name") not in ("topk", "top_k")


def _set_confidence(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Soft targets from the stored top scores of rows whose sets a rule chose (any size, even empty):
    ``sigmoid((s - t) / T)`` with ``t`` midway between an item's lowest chosen score and its best other
    one (a full set: every label 1; an empty set: ``t`` just above its best score), ``T`` half the
    standard deviation of the stored scores, as :func:`_top_k_confidence` does for the top ``k``."""
    stored = np.isfinite(scores)
    sd = float(np.std(scores[stored])) if stored.any() else 0.0
    temp = 0.5 * sd if sd > 1e-12 else 1.0
    low = np.where(stored, scores, np.inf).min(axis=1, keepdims=True)
    filled = np.where(stored, scores, low - 1e-6).astype(np.float64)
    chosen = labels.astype(bool)
    lo = np.where(chosen, filled, np.inf).min(axis=1, keepdims=True)
    hi = np.where(chosen, -np.inf, filled).max(axis=1, keepdims=True)
    both = np.isfinite(lo) & np.isfinite(hi)
    thr = np.where(both, (lo + hi) / 2.0, np.where(np.isfinite(lo), -np.inf, hi + 1e-6))
    with np.errstate(invalid="ignore", over="ignore"):
        conf = 0.5 * (1.0 + np.tanh(0.5 * np.where(np.isneginf(thr), np.inf, filled - thr) / temp))
    full = np.broadcast_to(thr, scores.shape).astype(np.float32)
    return (conf.astype(np.float32), np.where(chosen, full, np.nan),
            {"rule": "label_sets", "params": {"between": "lowest chosen and best other score"},
             "temperature": round(temp, 6)})


def _top_k_confidence(scores: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Soft targets from the stored top scores of ``zsl label`` rows: :class:`~zsl.scoring.TopK` ``(k)``'s
    confidence, ``sigmoid((s - t) / T)`` with ``t`` midway between an item's k-th and (k+1)-th score and
    ``T`` half the standard deviation of the stored scores. A label a row did not store scores at most
    its lowest stored one, and is given just below that."""
    from zsl.scoring import TopK

    stored = np.isfinite(scores)
    sd = float(np.std(scores[stored])) if stored.any() else 0.0
    low = np.where(stored, scores, np.inf).min(axis=1, keepdims=True)
    filled = np.where(stored, scores, low - 1e-6).astype(np.float64)
    rule = TopK(k=max(1, k), temperature=0.5 * sd if sd > 1e-12 else 1.0).fit(filled)
    decision = rule.decide(filled)
    thr = np.broadcast_to(decision.thresholds, scores.shape).astype(np.float32)
    return decision.confidence, np.where(labels.astype(bool), thr, np.nan), rule.describe()


def _read_parquet(path: Path, given: LabelVocab | None) -> SilverData:
    pa, pq = _pyarrow()
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path} is not a readable Parquet file ({exc}).") from None
    raw = (table.schema.metadata or {}).get(b"zsl_silver")
    meta = json.loads(raw.decode("utf-8")) if raw else None
    recorded = vocab_from_meta(meta, str(path)) if meta is not None else None
    missing_cols = [c for c in ("id", "labels", "scores", "confidence") if c not in table.column_names]
    if missing_cols:
        raise InputError(f"{path}: missing column(s) {missing_cols}; is this zsl silver data?")
    n = table.num_rows

    def dense(name: str, fill: float) -> np.ndarray:
        if name not in table.column_names:
            return np.full((n, k_file), fill, dtype=np.float32)
        column = table.column(name).combine_chunks()
        return column.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, -1)

    scores_f = table.column("scores").combine_chunks()
    k_file = len(scores_f[0]) if n else (len(recorded) if recorded else 0)
    if recorded is None:
        if given is None:
            raise InputError(f"{path} has no zsl metadata; pass vocab=... to name its {k_file} score columns.")
        recorded = given
    if k_file != len(recorded):
        raise InputError(f"{path}: score vectors have {k_file} values but the vocabulary has {len(recorded)} labels.")
    scores, conf, thr = dense("scores", np.nan), dense("confidence", 0.0), dense("thresholds", np.nan)
    vocab = recorded
    if given is not None and list(given.labels) != list(recorded.labels):
        if set(given.labels) != set(recorded.labels):
            raise VocabularyError(f"{path} was written for another vocabulary: "
                                  f"{vocab_difference(recorded.labels, given.labels, expected_name='the file', got_name='vocab')}. "
                                  "Fix: pass the vocabulary it was made with, or omit vocab=.")
        perm = [recorded.index(lab) for lab in given.labels]
        scores, conf, thr = scores[:, perm], conf[:, perm], thr[:, perm]
    if given is not None:
        vocab = given
    label_lists = table.column("labels").to_pylist()
    labels = vocab.to_multi_hot(label_lists).astype(np.uint8)
    texts = table.column("text").to_pylist() if "text" in table.column_names else [None] * n
    prov = (meta or {}).get("provenance")
    if prov is None and "provenance" in table.column_names and n:
        prov = json.loads(table.column("provenance")[0].as_py() or "{}")
    return SilverData(vocab=vocab, ids=[str(v) for v in table.column("id").to_pylist()], labels=labels,
                      confidence=conf, scores=scores, thresholds=thr,
                      texts=texts if all(t is not None for t in texts) else None, provenance=prov or {},
                      rule=(meta or {}).get("rule"))


# -- Hugging Face datasets ------------------------------------------------------------------
def _datasets():
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError("datasets", "Exporting silver data as a Hugging Face Dataset") from None
    return datasets


def to_hf_dataset(silver: SilverData) -> Any:
    """Silver data as a Hugging Face ``datasets.Dataset`` (needs the ``datasets`` package).

    Columns: ``id``, ``text``, ``labels`` (a list of ``ClassLabel(names=vocab)``, so the
    label order travels with the data), ``scores``, ``confidence``, ``thresholds`` (float
    vectors in vocabulary order). The metadata (vocabulary, rule, provenance) is JSON in
    ``dataset.info.description``.

    Returns:
        a ``datasets.Dataset``; ``from_hf_dataset`` reads it back.

    Example:
        >>> ds = to_hf_dataset(silver)                 # doctest: +SKIP
        >>> ds.features["labels"].feature.names[:3]     # doctest: +SKIP
    """
    ds_mod = _datasets()
    names = list(silver.vocab.labels)
    seq = getattr(ds_mod, "List", None) or ds_mod.Sequence  # datasets >= 4 calls it List
    vec = seq(ds_mod.Value("float32"))
    features = ds_mod.Features({
        "id": ds_mod.Value("string"),
        "text": ds_mod.Value("string"),
        "labels": seq(ds_mod.ClassLabel(names=names)),
        "scores": vec, "confidence": vec, "thresholds": vec,
    })
    data = {
        "id": list(silver.ids),
        "text": silver.texts if silver.texts is not None else [None] * len(silver),
        "labels": [[int(j) for j in np.flatnonzero(row)] for row in silver.labels],
        "scores": silver.scores.tolist(), "confidence": silver.confidence.tolist(),
        "thresholds": silver.thresholds.tolist(),
    }
    info = ds_mod.DatasetInfo(description=json.dumps(silver.meta(), ensure_ascii=False), features=features)
    return ds_mod.Dataset.from_dict(data, features=features, info=info)


def from_hf_dataset(dataset: Any, *, vocab: LabelVocab | Sequence[str] | None = None) -> SilverData:
    """Read a ``datasets.Dataset`` made by :func:`to_hf_dataset` back into :class:`SilverData`."""
    try:
        meta = json.loads(dataset.info.description or "")
    except (json.JSONDecodeError, AttributeError):
        meta = None
    names = list(dataset.features["labels"].feature.names)
    recorded = vocab_from_meta(meta, "dataset") if meta else LabelVocab(names)
    if list(recorded.labels) != names:
        raise InputError("The dataset's ClassLabel names and its zsl metadata disagree on the label order.")
    given = None if vocab is None else (vocab if isinstance(vocab, LabelVocab) else LabelVocab(vocab))
    if given is not None and list(given.labels) != names:
        raise VocabularyError("The dataset was made for another vocabulary: "
                              + vocab_difference(names, given.labels, expected_name="the dataset", got_name="vocab"))
    vocab_final = given or recorded
    n, k = len(dataset), len(names)
    labels = np.zeros((n, k), dtype=np.uint8)
    for i, row in enumerate(dataset["labels"]):
        labels[i, row] = 1

    def arr(name: str, fill: float) -> np.ndarray:
        if name not in dataset.column_names:
            return np.full((n, k), fill, dtype=np.float32)
        out = np.asarray(dataset[name], dtype=np.float32)
        return out.reshape(n, k)

    texts = list(dataset["text"]) if "text" in dataset.column_names else [None] * n
    return SilverData(vocab=vocab_final, ids=[str(v) for v in dataset["id"]], labels=labels,
                      confidence=arr("confidence", 0.0), scores=arr("scores", np.nan),
                      thresholds=arr("thresholds", np.nan),
                      texts=texts if all(t is not None for t in texts) else None,
                      provenance=(meta or {}).get("provenance") or {}, rule=(meta or {}).get("rule"))
