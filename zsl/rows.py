"""The rows of ``labels.jsonl`` and their sidecar: written and read here, for every scorer.

One JSON object per labelled item (what :func:`zsl.runs.label.label_run` writes)::

    {"id": "n01", "text": "...", "labels": ["sports", "education"], "scores": [0.3525, 0.1991],
     "top_scores": {"sports": 0.3525, "education": 0.1991, "science": 0.1873, ...},
     "phrases": [...], "retrieval_labels": [...], "notes": [...],
     "ancestors": [[...], [...]], "gold": [...], "meta": {...}}

* ``id``; then the item itself: ``text``, or ``image`` (the file path) for images;
* ``labels``: the item's predicted label set, chosen by the run's rule (:class:`zsl.scoring.SetRule`,
  recorded in the manifest and the sidecar: the ``k`` best, the labels within a margin of the best,
  above a threshold, or above the per-label thresholds of a fitted program), best first;
  ``scores``: their scores, aligned. Every reader (``zsl eval``, ``review``, ``export``,
  ``distill``, ``issues``) takes this set as the prediction;
* ``top_scores``: label -> score of the ``R`` best labels, best first (``R >= k``; by default
  every label of a vocabulary of up to :data:`FULL_SCORES_UP_TO` labels, else the best
  ``max(k, 50)``): what soft targets (``zsl distill --targets soft``) and ``zsl eval``'s mAP
  are computed from;
* fields the scorer adds (:meth:`zsl.base.ScorerMixin.explain`): the text Tagger's
  ``phrases`` (with Infer), ``retrieval_labels`` (with Rank: the ``k`` best before it) and
  ``notes``;
* ``ancestors`` of each label (a vocabulary with a hierarchy), the input's gold ``labels`` as
  ``gold``, and its other fields as ``meta``.

Rows of :func:`zsl.silver.data.write_silver` (silver data) read the same way: there ``scores`` maps
every recorded label to its score, ``labels`` are the labels a rule chose, and ``confidence`` /
``thresholds`` map labels to the rule's confidences and thresholds. Rows written before
``top_scores`` existed (format 1: the ``k`` kept scores only) still read, and so do rows of format 2,
where ``labels`` always held the ``k`` best and a fitted program's or a student's set was listed
apart in ``above_threshold``: they read as they always did (``labels`` is their predicted set).

The sidecar ``<file>.meta.json`` describes the file: ``"zsl_silver": 1``, the vocabulary (order,
descriptions, hash), the rule that chose ``labels``, ``rows`` (``{"format": 3, "k": k,
"top_scores": R, "vocab_size": K}`` for run rows), the provenance and the row count.

Example:
    >>> import numpy as np
    >>> from zsl.data import Item
    >>> from zsl.vocab import LabelVocab
    >>> row = build_rows([Item("a", "some text")], np.array([[0.1, 0.7, 0.4]]), LabelVocab(["x", "y", "z"]), k=2)[0]
    >>> row
    {'id': 'a', 'text': 'some text', 'labels': ['y', 'z'], 'scores': [0.7, 0.4], 'top_scores': {'y': 0.7, 'z': 0.4, 'x': 0.1}}
    >>> parse_pred_row(row).ranked
    (('y', 0.7), ('z', 0.4), ('x', 0.1))
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zsl.base import Ranked, top_k
from zsl.data.files import BadRow, Item, iter_jsonl
from zsl.errors import InputError
from zsl.hierarchy import tree_row
from zsl.scoring import SetRule
from zsl.vocab import LabelVocab

__all__ = [
    "FULL_SCORES_UP_TO",
    "ROW_FORMAT",
    "RUN_ROWS",
    "SCORE_DIGITS",
    "SILVER_FORMAT",
    "SILVER_ROWS",
    "PredRow",
    "ScorePolicy",
    "build_rows",
    "check_unique_ids",
    "chosen_sets",
    "default_top_scores",
    "gold_from_row",
    "is_finite_number",
    "label_list",
    "make_row",
    "meta_path",
    "nonfinite_reason",
    "parse_pred_row",
    "read_gold",
    "read_meta",
    "read_predictions",
    "resolve_predictions",
    "run_meta",
    "vocab_from_meta",
    "vocab_to_meta",
]

@dataclass(frozen=True)
class ScorePolicy:
    """How one kind of row writes its scores: rounded to ``digits`` decimals, and the scores of every label
    of a vocabulary of up to ``full_up_to`` labels, else of the best ``default_kept`` (or more, when asked)."""

    digits: int
    full_up_to: int
    default_kept: int

    def rounded(self, x: float) -> float:
        """A score as a row writes it."""
        return round(float(x), self.digits)

    def kept(self, n_labels: int, at_least: int = 0) -> int:
        """How many labels' scores a row keeps by default, out of ``n_labels``."""
        return n_labels if n_labels <= self.full_up_to else min(n_labels, max(at_least, self.default_kept))


# One policy, two row kinds, both written through these (smell 5 of the December 7 review). Run rows
# (labels.jsonl: a `scores` list for the k labels plus a `top_scores` dict) are read by people, zsl eval and
# zsl distill; silver rows (write_silver: `scores` and `confidence` dicts) carry the soft targets a student
# trains on, so they keep finer digits and more labels. The numbers are the files' formats: changing one
# changes every file written after it.
RUN_ROWS = ScorePolicy(digits=4, full_up_to=50, default_kept=50)
SILVER_ROWS = ScorePolicy(digits=6, full_up_to=1000, default_kept=100)
SCORE_DIGITS = RUN_ROWS.digits  # scores in run rows are rounded to this many decimals
ROW_FORMAT = 3  # run rows whose labels are the rule's set (2: the k best + above_threshold; 1: no top_scores)
SILVER_FORMAT = 1  # the sidecar's "zsl_silver" marker
FULL_SCORES_UP_TO = RUN_ROWS.full_up_to  # vocabularies up to this size keep every label's score in top_scores
DEFAULT_TOP_SCORES = RUN_ROWS.default_kept


# -- writing ----------------------------------------------------------------------------------
def default_top_scores(k: int, n_labels: int, top_scores: int | None = None) -> int:
    """How many labels' scores a row keeps (``R``): every label up to :data:`FULL_SCORES_UP_TO`
    labels, else ``max(k, 50)``; ``top_scores`` overrides it (at least ``k``, at most every label).

    Example:
        >>> default_top_scores(5, 28), default_top_scores(5, 13896), default_top_scores(80, 13896)
        (28, 50, 80)

    Raises:
        InputError: ``top_scores`` below ``k``.
    """
    if top_scores is not None:
        if top_scores < min(k, n_labels):
            raise InputError(f"top_scores must be >= k ({k}): a row keeps the scores of at least its k labels; got "
                             f"{top_scores}.")
        return min(int(top_scores), n_labels)
    return RUN_ROWS.kept(n_labels, k)


def make_row(item: Item, vocab: LabelVocab, idx: np.ndarray, vals: np.ndarray, *, k: int, input_field: str = "text",
             fields: Mapping[str, Any] | None = None, chosen: tuple[np.ndarray, np.ndarray] | None = None,
             tree_output: str = "flat") -> dict[str, Any]:
    """One row from an item and its ``R`` best label columns ``idx`` (best first) with their scores ``vals``.

    Args:
        item: the item (its ``value`` is the text, or the image path).
        vocab: the labels.
        idx, vals: the ``R`` best columns, best first, and their scores: the row's ``top_scores``.
        k: the ranking's ``k``: the row's set when ``chosen`` is None (the first ``k`` of ``idx``),
            and the labels a :class:`~zsl.base.Ranked` field keeps.
        input_field: ``"text"`` or ``"image"``.
        fields: more fields, in row order; a :class:`~zsl.base.Ranked` value becomes its top-``k``
            labels.
        chosen: the item's predicted set, columns best first and their scores (one item of
            :func:`chosen_sets`): the row's ``labels`` and ``scores``.
        tree_output: for a vocabulary with a hierarchy, ``"path"``, ``"leaf"`` or ``"flat"``: which labels the
            row keeps of the chosen ones (:func:`zsl.hierarchy.tree_row`); a flat vocabulary's row is unchanged.

    Raises:
        InputError: a score is NaN or infinite (JSON has no such number: the row could not be read back).
    """
    if not np.isfinite(np.asarray(vals, dtype=np.float64)).all():
        raise InputError(f"item {item.id}: {nonfinite_reason(vals, [vocab[int(j)] for j in idx])}")
    names = [vocab[int(j)] for j in idx]
    rounded = [RUN_ROWS.rounded(v) for v in vals]
    cols, kept = chosen if chosen is not None else (idx[:k], vals[:k])
    if tree_output != "flat" and vocab.parents is not None:
        cols, kept = tree_row(vocab, idx, vals, cols, kept, tree_output)
    labels = [vocab[int(j)] for j in cols]
    row: dict[str, Any] = {"id": item.id, input_field: item.value, "labels": labels,
                           "scores": [RUN_ROWS.rounded(v) for v in kept],
                           "top_scores": dict(zip(names, rounded, strict=True))}
    for name, value in (fields or {}).items():
        if isinstance(value, Ranked):
            _, ranked = top_k(value.scores, k)
            value = [vocab[int(j)] for j in ranked[0]]
        row[name] = value
    if vocab.parents is not None:
        row["ancestors"] = [vocab.ancestors(lab) for lab in labels]
    if item.gold is not None:
        row["gold"] = item.gold
    if item.meta:
        row["meta"] = item.meta
    return row


def chosen_sets(scores: np.ndarray, rule: SetRule | None, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each item's predicted set: its columns, best first (ties: the lower column), and their scores.

    The one place a row's ``labels`` are decided: ``rule`` (item-local, :class:`~zsl.scoring.SetRule`)
    applied to the items' whole ``(N, K)`` scores; without one, the ``k`` best.

    Example:
        >>> from zsl.scoring import SetRule
        >>> [c.tolist() for c, _ in chosen_sets(np.array([[0.5, 0.45, 0.9]]), SetRule("relative", margin=0.1), 1)]
        [[2]]
    """
    s = np.atleast_2d(np.asarray(scores))
    if rule is None or rule.name == "topk":
        vals, idx = top_k(s, k if rule is None else int(rule.k))
        return list(zip(idx, vals, strict=True))
    out = []
    for row, mask in zip(s, rule.choose(s), strict=True):
        cols = np.flatnonzero(mask)
        cols = cols[np.argsort(-row[cols], kind="stable")]
        out.append((cols, row[cols]))
    return out


def nonfinite_reason(scores: Any, labels: Sequence[str], source: str = "the model") -> str:
    """Why a row of scores holding NaN or infinity is not written (``labels`` name its columns)."""
    bad = [lab for lab, v in zip(labels, np.asarray(scores, dtype=np.float64), strict=True) if not math.isfinite(v)]
    return (f"{source} gave {len(bad)} score(s) that are NaN or infinite (e.g. for {bad[0]!r}); the item is not "
            "labelled. Fix: the model is damaged or was edited: retrain it or restore it from a copy")


def build_rows(items: Sequence[Item], scores: np.ndarray, vocab: LabelVocab, *, k: int, top_scores: int | None = None,
               input_field: str = "text", fields: Sequence[Mapping[str, Any]] | None = None,
               rule: SetRule | None = None, tree_output: str = "flat") -> list[dict[str, Any]]:
    """The rows of a batch: ``scores`` is ``(N, K)`` for the N items; the top ``R`` is taken once for the batch.

    Args:
        top_scores: ``R`` (see :func:`default_top_scores`; None: the default).
        rule: how each item's ``labels`` are chosen (see :func:`chosen_sets`; None: the ``k`` best).
        k, input_field, tree_output: see :func:`make_row`; ``fields``: one mapping per item.
    """
    if len(items) == 0:
        return []
    vals, idx = top_k(np.asarray(scores), default_top_scores(k, len(vocab), top_scores))
    sets = chosen_sets(scores, rule, k)
    return [make_row(it, vocab, idx[i], vals[i], k=k, input_field=input_field,
                     fields=None if fields is None else fields[i], chosen=sets[i], tree_output=tree_output)
            for i, it in enumerate(items)]


# -- reading ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PredRow:
    """One usable prediction row.

    Attributes:
        id: the item id (``id``, else the ``image`` path), as a string.
        ranked: ``(label, score)`` pairs of every scored label, best first.
        chosen: the row's predicted label set (its ``labels``).
        row: the original JSON object.
        line: its line in the file (or position in the list), for messages.
    """

    id: str
    ranked: tuple[tuple[str, float], ...]
    chosen: tuple[str, ...]
    row: Mapping[str, Any] = field(repr=False, compare=False)
    line: int = field(default=0, compare=False)


def is_finite_number(v: Any) -> bool:
    """A JSON number that is finite (not a bool, NaN or infinity)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def label_list(value: Any, name: str) -> tuple[list[str] | None, str | None]:
    """``(value, None)`` for a list of strings, else ``(None, what is wrong)`` naming the field ``name``."""
    if not isinstance(value, list):
        return None, f"'{name}' must be a list of strings, got {type(value).__name__} ({value!r:.40})"
    for i, lab in enumerate(value):
        if not isinstance(lab, str):
            return None, f"'{name}' must be a list of strings; entry {i} is {type(lab).__name__} ({lab!r:.40})"
    return value, None


def _row_id(obj: Mapping[str, Any]) -> str | None:
    v = obj.get("id")
    if isinstance(v, str | int) and not isinstance(v, bool) and str(v).strip():
        return str(v)
    image = obj.get("image")
    return image if isinstance(image, str) and image.strip() else None


def parse_pred_row(obj: Any, line: int = 0) -> PredRow | str:
    """Check one prediction row; return a :class:`PredRow` or the reason it is unusable.

    Args:
        obj: a decoded JSON value.
        line: where it came from (kept on the row for later messages).

    Returns:
        a :class:`PredRow`, or a string saying what is wrong (for a :class:`~zsl.data.BadRow`).

    Example:
        >>> parse_pred_row({"id": 3, "labels": ["a", "b"], "scores": [0.5, 0.25]}).ranked
        (('a', 0.5), ('b', 0.25))
        >>> parse_pred_row({"id": "3", "labels": ["a", "b"], "scores": [0.5]})
        "'labels' has 2 entries but 'scores' has 1; they must be aligned"
        >>> parse_pred_row({"id": 3, "labels": ["a"], "scores": [0.5], "top_scores": {"a": 0.5, "c": 0.4}}).ranked
        (('a', 0.5), ('c', 0.4))
    """
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    item_id = _row_id(obj)
    if item_id is None:
        return "missing 'id' (and no 'image' path to use instead)"
    if "labels" not in obj:
        return "missing 'labels'"
    labels, err = label_list(obj["labels"], "labels")
    if err:
        return err
    assert labels is not None
    if len(set(labels)) != len(labels):
        dup = next(lab for lab, n in Counter(labels).items() if n > 1)
        return f"'labels' repeats {dup!r}"
    if "scores" not in obj:
        return "missing 'scores' (a list aligned with 'labels', or a label -> score mapping)"
    scores = obj["scores"]
    if isinstance(scores, list):
        if len(scores) != len(labels):
            return f"'labels' has {len(labels)} entries but 'scores' has {len(scores)}; they must be aligned"
        for i, s in enumerate(scores):
            if not is_finite_number(s):
                return f"'scores' must be finite numbers; entry {i} is {s!r:.40}"
        ranked = sorted(zip(labels, (float(s) for s in scores), strict=True), key=lambda t: -t[1])
    elif isinstance(scores, dict):
        # silver rows (zsl.silver.data): scores keyed by label, 'labels' = the chosen subset
        for lab, s in scores.items():
            if not is_finite_number(s):
                return f"'scores' must map labels to finite numbers; {lab!r:.40} -> {s!r:.40}"
        missing = [lab for lab in labels if lab not in scores]
        if missing:
            return f"'labels' has {missing[0]!r:.40} but 'scores' has no score for it"
        ranked = sorted(((lab, float(s)) for lab, s in scores.items()), key=lambda t: -t[1])
    else:
        return f"'scores' must be a list of numbers, got {type(scores).__name__}"
    top = obj.get("top_scores")
    if top is not None:  # rows of zsl label: the scores of the R best labels, R >= len(labels)
        if not isinstance(top, dict):
            return f"'top_scores' must map labels to scores, got {type(top).__name__}"
        for lab, s in top.items():
            if not is_finite_number(s):
                return f"'top_scores' must map labels to finite numbers; {lab!r:.40} -> {s!r:.40}"
        merged = {lab: float(s) for lab, s in top.items()}
        for lab, s in ranked:
            merged.setdefault(lab, s)
        ranked = sorted(merged.items(), key=lambda t: -t[1])
    return PredRow(item_id, tuple(ranked), tuple(labels), obj, line)


def resolve_predictions(path: str | os.PathLike[str]) -> Path:
    """The predictions file for ``path``: the file itself, or ``labels.jsonl`` in a run folder.

    Raises:
        InputError: the path does not exist, or is a folder without ``labels.jsonl``.
    """
    p = Path(path)
    if p.is_dir():
        f = p / "labels.jsonl"
        if f.is_symlink() or (f.exists() and not f.is_file()):
            raise InputError(f"{f} is {'a symbolic link' if f.is_symlink() else 'not a regular file'}; a run's "
                             "labels.jsonl is a regular file zsl wrote. Fix: replace it with the run's own file, or "
                             "label again with `zsl label ... --out` into a new folder.")
        if not f.is_file():
            found = sorted(x.name for x in p.glob("*.jsonl"))[:5]
            hint = f" It holds: {', '.join(found)}." if found else ""
            raise InputError(
                f"{p} is a folder without labels.jsonl.{hint} Fix: pass the predictions file "
                "itself, or the run folder `zsl label` wrote."
            )
        return f
    if not p.is_file():
        raise InputError(
            f"Predictions file {p} does not exist. Fix: pass the .jsonl `zsl label` wrote (or its run folder)."
        )
    return p


def _read_text(p: Path, what: str) -> str:
    if not p.is_file():
        raise InputError(f"{what} file {p} does not exist.")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{p} is not UTF-8 text ({exc.reason} at byte {exc.start}). Re-save it as UTF-8.") from None
    if not text.strip():
        raise InputError(f"{what} file {p} is empty.")
    return text


def read_predictions(path: str | os.PathLike[str], *, bad: list[BadRow] | None = None) -> list[PredRow]:
    """Read prediction rows (JSON Lines), skipping and reporting bad ones.

    Args:
        path: the predictions file, or a run folder containing ``labels.jsonl``.
        bad: receives a :class:`~zsl.data.BadRow` (file, line, reason) per skipped row.

    Returns:
        the usable rows, in file order.

    Raises:
        InputError: missing or empty file, not UTF-8, or no usable row at all.

    Example:
        >>> rows = read_predictions("out/run/")        # doctest: +SKIP
    """
    p = resolve_predictions(path)
    bad = [] if bad is None else bad
    n_bad = len(bad)
    out: list[PredRow] = []
    for ln, obj, err in iter_jsonl(_read_text(p, "Predictions").splitlines()):
        parsed = err or parse_pred_row(obj, ln)
        if isinstance(parsed, str):
            bad.append(BadRow(str(p), ln, parsed))
        else:
            out.append(parsed)
    if not out:
        first = f" First problem: {bad[n_bad]}." if len(bad) > n_bad else ""
        raise InputError(
            f"No usable prediction row in {p}.{first} Expected JSON Lines rows with 'id', "
            "'labels' and 'scores', as `zsl label` writes."
        )
    return out


def gold_from_row(obj: Any, field_name: str = "labels") -> tuple[str, list[str]] | str:
    """``(id, gold labels)`` from a row's ``field_name``, or the reason the row is unusable."""
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    item_id = _row_id(obj)
    if item_id is None:
        return "missing 'id' (and no 'image' path to use instead)"
    if field_name not in obj:
        return f"missing '{field_name}'"
    labels, err = label_list(obj[field_name], field_name)
    if err:
        return err
    assert labels is not None
    return item_id, labels


def read_gold(path: str | os.PathLike[str], *, bad: list[BadRow] | None = None) -> dict[str, list[str]]:
    """Read gold labels: JSON Lines (``id``, ``labels``) or CSV/TSV (``id``, ``labels`` with ``|``).

    Args:
        path: the gold file.
        bad: receives a :class:`~zsl.data.BadRow` per skipped row.

    Returns:
        item id -> gold labels, in file order.

    Raises:
        InputError: missing/empty file, a CSV without the two columns, repeated ids, or no
            usable row.

    Example:
        >>> gold = read_gold("data/dev.jsonl")         # doctest: +SKIP
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"Gold {p} is a folder. Fix: pass a .jsonl (id, labels) or .csv (id, labels) file.")
    bad = [] if bad is None else bad
    n_bad = len(bad)
    text = _read_text(p, "Gold")
    pairs: list[tuple[str, list[str]]] = []
    if p.suffix.lower() in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if p.suffix.lower() == ".tsv" else ",")
        cols = reader.fieldnames or []
        if "id" not in cols or "labels" not in cols:
            raise InputError(
                f"{p}: the header needs 'id' and 'labels' columns; found {cols}. "
                "Fix: rename the columns (labels separated by '|')."
            )
        for row in reader:
            item_id, labels = (row.get("id") or "").strip(), row.get("labels")
            if not item_id:
                bad.append(BadRow(str(p), reader.line_num, "empty 'id'"))
                continue
            pairs.append((item_id, [s for s in (labels or "").split("|") if s]))
    else:
        for ln, obj, err in iter_jsonl(text.splitlines()):
            got = err or gold_from_row(obj)
            if isinstance(got, str):
                bad.append(BadRow(str(p), ln, got))
            else:
                pairs.append(got)
    if not pairs:
        first = f" First problem: {bad[n_bad]}." if len(bad) > n_bad else ""
        raise InputError(f"No usable gold row in {p}.{first} Expected rows with 'id' and 'labels'.")
    check_unique_ids([i for i, _ in pairs], f"gold file {p}")
    return dict(pairs)


def check_unique_ids(ids: Sequence[str], where: str) -> None:
    """Refuse repeated ids (``where`` names the source in the message)."""
    dups = [i for i, n in Counter(ids).items() if n > 1]
    if dups:
        shown = ", ".join(repr(d) for d in dups[:10])
        raise InputError(
            f"The {where} has {len(dups)} repeated id(s): {shown}{' ...' if len(dups) > 10 else ''}. "
            "Each item must appear once; remove the repeats (or give the items distinct ids)."
        )


# -- the sidecar ------------------------------------------------------------------------------
def meta_path(path: str | os.PathLike[str]) -> Path:
    """``<path>.meta.json``, the sidecar of a rows file."""
    p = Path(path)
    return p.with_name(p.name + ".meta.json")


def vocab_to_meta(vocab: LabelVocab) -> dict[str, Any]:
    """The vocabulary as the sidecar records it: labels in column order, descriptions, name, hash (and the
    parents of a tree, so ``zsl eval`` can score levels)."""
    meta = {"labels": list(vocab.labels), "descriptions": None if vocab.descriptions is None else list(vocab.descriptions),
            "name": vocab.name, "hash": vocab.hash}
    if vocab.parents is not None:
        meta["parents"] = list(vocab.parents)
    return meta


def vocab_from_meta(meta: dict[str, Any], where: str) -> LabelVocab:
    """The vocabulary recorded in a sidecar (``where`` names it in messages)."""
    try:
        v = meta["vocab"]
        return LabelVocab(v["labels"], v.get("descriptions"), name=v.get("name", ""), parents=v.get("parents"))
    except (KeyError, TypeError) as exc:
        raise InputError(f"{where}: the silver metadata has no usable vocabulary ({exc}); pass vocab=...") from None


def run_meta(vocab: LabelVocab, *, k: int, top_scores: int, provenance: dict[str, Any], n_items: int,
             rule: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sidecar of a run's ``labels.jsonl``: vocabulary, the rule behind ``labels`` (``rule``, a
    :meth:`zsl.scoring.SetRule.record`; None: the top ``k``), the row format."""
    return {"zsl_silver": SILVER_FORMAT, "vocab": vocab_to_meta(vocab), "rule": rule or {"name": "top_k", "k": k},
            "rows": {"format": ROW_FORMAT, "k": k, "top_scores": top_scores, "vocab_size": len(vocab)},
            "provenance": provenance, "n_items": n_items}


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar of ``path`` (None when there is none).

    Raises:
        InputError: it is not valid JSON, or not a zsl sidecar.
    """
    mp = meta_path(path)
    if not mp.is_file():
        return None
    try:
        meta = json.loads(mp.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{mp} is not valid JSON ({exc}); delete it and pass vocab=... instead.") from None
    if not isinstance(meta, dict) or meta.get("zsl_silver") != SILVER_FORMAT:
        raise InputError(f"{mp} is not a zsl silver metadata file (format {SILVER_FORMAT}).")
    return meta
