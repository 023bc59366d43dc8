"""A person's review decisions: ``reviewed.jsonl`` in a run directory, and how they flow back.

``zsl review RUN_DIR`` writes one line per decision; a later decision on the same item wins
and the item keeps the place of its first decision::

    {"id": "n17", "text": "...", "labels": ["joy", "love"], "proposed": ["joy", "anger"],
     "removed": ["anger"], "added": ["love"], "action": "edit", "at": "2026-12-05T13:02:11+0000"}

* ``labels``: the labels the person kept or added: the item's gold labels from now on;
* ``proposed``: the run's labels the page showed; ``removed`` / ``added``: the difference;
* ``action``: ``"accept"`` (kept as proposed) or ``"edit"``.

Every decision is appended as one line and fsynced before the page hears back (a click costs
the same on the 5,000th item as on the first), so a killed server or a closed browser loses at
most the click in flight, never the file. A line cut short by a crash mid-append (the last line,
without its newline) was never acknowledged: readers skip it with a warning, and the next
:class:`ReviewStore` rewrites the file once without it (and with one line per item). The ``id`` and
``labels`` fields make the file a gold file for ``zsl eval RUN RUN/reviewed.jsonl``, and with
``text`` a training file for ``zsl fit`` (``Tagger.fit(read_reviewed(run).values())``: the
decisions are ``{"text", "labels"}`` examples); :func:`override_silver` puts the decisions over
the silver labels for ``zsl distill --reviewed``, and :func:`calibration_data` gives the
reviewed items' scores and labels for the threshold rules of :mod:`zsl.scoring`.

Example:
    >>> import tempfile, pathlib
    >>> store = ReviewStore(pathlib.Path(tempfile.mkdtemp()) / "reviewed.jsonl")
    >>> store.decide({"id": "1", "text": "hi", "labels": ["a", "b"]}, ["a", "c"])["action"]
    'edit'
    >>> ReviewStore(store.path).decisions["1"]["labels"]
    ['a', 'c']
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zsl.errors import InputError, VocabularyError

__all__ = ["REVIEWED", "ReviewStore", "calibration_data", "override_silver", "read_reviewed"]

REVIEWED = "reviewed.jsonl"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class ReviewStore:
    """The decisions of ``reviewed.jsonl``: read once, then each new decision written at once, atomically.

    Args:
        path: the ``reviewed.jsonl`` file (created at the first decision).
        known_labels: the vocabulary; decisions naming other labels are refused (when reading
            the file too: its unknown labels are listed in the error).

    Attributes:
        decisions: item id -> its decision (a dict as in the module docstring), in decision order.
    """

    def __init__(self, path: str | os.PathLike[str], known_labels: Sequence[str] | None = None):
        self.path = Path(path)
        self.known = None if known_labels is None else set(known_labels)
        self._write_lock = threading.Lock()
        self.decisions: dict[str, dict[str, Any]] = {}
        if self.path.exists() or self.path.is_symlink():  # a link, FIFO or device is refused at start, not at a click
            self.decisions, lines, torn = _read_decisions(self.path, known_labels)
            if torn or lines != len(self.decisions):  # appends since the last open: one line per item again
                self._compact()

    def _check_labels(self, labels: Sequence[str]) -> list[str]:
        if isinstance(labels, str) or not all(isinstance(x, str) and x for x in labels):
            raise InputError(f"labels must be a list of non-empty strings; got {labels!r:.80}")
        out = list(dict.fromkeys(labels))
        if self.known is not None:
            unknown = [lab for lab in out if lab not in self.known]
            if unknown:
                raise VocabularyError(f"Unknown label(s) {', '.join(repr(u) for u in unknown[:5])}: not in the run's "
                                      "vocabulary. Fix: choose labels from the vocabulary.")
        return out

    def decide(self, row: Mapping[str, Any], labels: Sequence[str]) -> dict[str, Any]:
        """Record that item ``row`` (a prediction row) gets ``labels``; the line is on disk (fsynced) before this returns.

        Returns:
            the decision as written.
        """
        labels = self._check_labels(labels)
        proposed = [x for x in row.get("labels", []) if isinstance(x, str)]
        rec: dict[str, Any] = {"id": str(row["id"])}
        for kind in ("text", "image"):
            if isinstance(row.get(kind), str):
                rec[kind] = row[kind]
        rec.update({"labels": labels, "proposed": proposed, "removed": [x for x in proposed if x not in labels],
                    "added": [x for x in labels if x not in proposed],
                    "action": "accept" if labels == proposed else "edit", "at": _now()})
        with self._write_lock:
            _append_line(self.path, json.dumps(rec, ensure_ascii=False) + "\n")
            self.decisions[rec["id"]] = rec  # a repeat keeps its first place: the order is "first decided"
        return rec

    def _compact(self) -> None:
        """Rewrite the file with one line per item (atomically, 0600): drops a torn last line and older repeats."""
        from zsl.data.files import write_lines_atomic

        write_lines_atomic(self.path, (json.dumps(d, ensure_ascii=False) + "\n" for d in self.decisions.values()),
                           private=True, sync=True)


def _append_line(path: Path, line: str) -> None:
    """Append one line and fsync it; never through a symlink, never into anything but a regular file.

    A failed write is cut back off, so the next append does not glue onto half a line.
    """
    from zsl.data.files import open_private

    fd = open_private(path, append=True)  # refuses a link, a FIFO, a folder, with the fix
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o077:  # decisions hold item texts: owner-only, as every file of a run
            try:
                os.fchmod(fd, 0o600)
            except OSError:
                pass  # not ours to change; the decision is still saved
        data = line.encode("utf-8")
        try:
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, st.st_size)
            except OSError:
                pass  # the reader skips a torn last line; the next store rewrites the file
            raise InputError(f"Cannot save the decision to {path}: {exc.strerror or exc}. Fix: free disk space or "
                             "fix the permissions, then click again.") from None
    finally:
        os.close(fd)
    if st.st_size == 0:  # a new file: its name must survive a crash too
        from zsl.data.files import fsync_dir

        fsync_dir(path.parent)


def read_reviewed(path: str | os.PathLike[str], known_labels: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """The decisions of a ``reviewed.jsonl`` (a later line for the same id wins).

    A last line without its newline that is not JSON is an append cut short by a crash (never
    confirmed to the page): it is skipped with a warning. Any other bad line is an error.

    Args:
        path: the file, or the run directory holding it.
        known_labels: the vocabulary; labels outside it are refused.

    Raises:
        InputError: the file is missing or a line is not a decision (the message gives the line).
        VocabularyError: decisions name labels outside ``known_labels`` (all of them are listed).
    """
    p = Path(path)
    if p.is_dir():
        p = p / REVIEWED
    if not p.exists() and not p.is_symlink():
        raise InputError(f"{p} does not exist: nothing has been reviewed yet. Fix: run `zsl review RUN_DIR` first.")
    return _read_decisions(p, known_labels)[0]


def _read_decisions(p: Path, known_labels: Sequence[str] | None) -> tuple[dict[str, dict[str, Any]], int, bool]:
    """``(decisions, decision lines, torn)``: see :func:`read_reviewed`; ``torn``: a cut last line was skipped."""
    import warnings

    from zsl.data.files import read_private

    # not through a link, not a FIFO (a planted one would hang the server at start); not splitlines():
    # U+2028 in a text is not a line break in JSON Lines
    chunks = read_private(p).split(b"\n")
    torn = False
    if chunks[-1].strip():  # the last line has no newline: an append cut short by a crash, if it does not parse
        try:
            json.loads(chunks[-1].decode("utf-8"))
        except ValueError:
            torn = True
            warnings.warn(f"{p}:{len(chunks)}: a decision cut short (the server stopped while writing it; it was "
                          "never confirmed to the page): skipped, that item will be shown again.", stacklevel=3)
            chunks.pop()
    out: dict[str, dict[str, Any]] = {}
    lines = 0
    for ln, raw in enumerate(chunks, 1):
        if not raw.strip():
            continue
        lines += 1
        try:
            line = raw.decode("utf-8")
            obj = json.loads(line)
        except ValueError as exc:
            raise InputError(f"{p}:{ln}: not JSON ({exc}). Fix: repair or delete that line.") from None
        labels = obj.get("labels") if isinstance(obj, dict) else None
        if (not isinstance(obj, dict) or not isinstance(obj.get("id"), str | int) or not isinstance(labels, list)
                or not all(isinstance(x, str) for x in labels)):
            raise InputError(f"{p}:{ln}: expected a decision with 'id' and 'labels' (a list of strings); got "
                             f"{line[:80]!r}. Fix: repair or delete that line.")
        obj["id"] = str(obj["id"])
        out[obj["id"]] = obj  # a repeated id: the later line wins, the item keeps its first place
    if known_labels is not None:
        _check_known(p, out, known_labels)
    return out, lines, torn


def _check_known(p: Path, out: Mapping[str, Mapping[str, Any]], known_labels: Sequence[str]) -> None:
    known = set(known_labels)
    unknown = sorted({lab for d in out.values() for lab in d["labels"] if lab not in known})
    if unknown:
        where = [i for i, d in out.items() if set(d["labels"]) - known][:5]
        raise VocabularyError(
            f"{p} names {len(unknown)} label(s) that are not in the run's vocabulary: "
            f"{', '.join(repr(u) for u in unknown[:10])} (items {', '.join(where)}). Fix: correct those labels "
            "in the file (or delete their lines and review the items again), or use the vocabulary they come from.")


def override_silver(silver: Any, decisions: Mapping[str, Mapping[str, Any]]) -> tuple[Any, int]:
    """Silver data with the reviewed items' labels replaced by the person's decisions.

    A reviewed item's ``labels`` become its decision and its ``confidence`` (the soft target)
    becomes 1 on those labels and 0 elsewhere: a person's answer is not softened by the
    teacher's scores. Other items are unchanged; decisions on ids the silver data lacks are ignored.

    Args:
        silver: a :class:`zsl.silver.data.SilverData`.
        decisions: id -> decision (from :func:`read_reviewed`).

    Returns:
        ``(new silver data, items overridden)``.

    Raises:
        VocabularyError: a decision names a label outside the silver vocabulary.
    """
    from dataclasses import replace

    col = {lab: j for j, lab in enumerate(silver.vocab.labels)}
    labels, conf = silver.labels.copy(), silver.confidence.copy()
    n = 0
    for i, item_id in enumerate(silver.ids):
        d = decisions.get(item_id)
        if d is None:
            continue
        unknown = [lab for lab in d["labels"] if lab not in col]
        if unknown:
            raise VocabularyError(f"The decision on item {item_id!r} names label(s) outside the silver vocabulary: "
                                  f"{', '.join(repr(u) for u in unknown[:5])}. Fix: correct reviewed.jsonl.")
        labels[i] = 0
        conf[i] = 0.0
        idx = [col[lab] for lab in d["labels"]]
        labels[i, idx] = 1
        conf[i, idx] = 1.0
        n += 1
    return replace(silver, labels=labels.astype(np.uint8), confidence=conf), n


def calibration_data(run: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The reviewed items' scores and their reviewed labels, to calibrate thresholds on.

    ``scores`` holds each row's recorded scores (``top_scores``); a label a row did not score
    gets the row's lowest recorded score minus 1 (below every threshold worth fitting).

    Args:
        run: the run directory (``labels.jsonl``, its sidecar and ``reviewed.jsonl``).

    Returns:
        ``(scores (n, K), y (n, K) 0/1, labels)`` over the run's vocabulary, for the n
        reviewed items that have a row; e.g. ``PerLabelThreshold().fit(scores, y)``.

    Raises:
        InputError: nothing reviewed, or no reviewed item has a row in ``labels.jsonl``.
        VocabularyError: ``reviewed.jsonl`` names labels outside the vocabulary.
    """
    from zsl.rows import read_meta, read_predictions, resolve_predictions

    pred = resolve_predictions(run)
    rows = read_predictions(pred)
    meta = read_meta(pred) or {}
    labels = (meta.get("vocab") or {}).get("labels") or list(dict.fromkeys(lab for r in rows for lab, _ in r.ranked))
    decisions = read_reviewed(Path(pred).parent / REVIEWED, known_labels=labels)
    col = {lab: j for j, lab in enumerate(labels)}
    picked = [r for r in rows if r.id in decisions]
    if not picked:
        raise InputError(f"None of the {len(decisions)} reviewed items has a row in {pred}. Fix: review items of this run.")
    scores = np.zeros((len(picked), len(labels)), dtype=np.float32)
    y = np.zeros((len(picked), len(labels)), dtype=np.uint8)
    for i, r in enumerate(picked):
        known = [(col[lab], s) for lab, s in r.ranked if lab in col]
        scores[i] = min((s for _, s in known), default=0.0) - 1.0
        for j, s in known:
            scores[i, j] = s
        y[i, [col[lab] for lab in decisions[r.id]["labels"]]] = 1
    return scores, y, list(labels)
