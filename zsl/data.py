"""Reading items to label and writing silver data.

Readers stream ``Item`` records and report bad rows instead of stopping: each bad row
becomes a :class:`BadRow` (file, line, reason) and the rest of the file is still read.
Writers are atomic: the output appears under its final name only once complete.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsl.errors import InputError

__all__ = ["BadRow", "Item", "read_items", "write_jsonl_atomic"]


@dataclass
class Item:
    """One thing to label: an id, its text, and gold labels when the file has them."""

    id: str
    text: str
    gold: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BadRow:
    """A row that could not be used, with where and why."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


def iter_jsonl(lines: Iterable[str]) -> Iterator[tuple[int, Any, str | None]]:
    """Parse JSON Lines: ``(line number, value, None)`` per good line, ``(line number, None,
    reason)`` per malformed one; blank lines are skipped. Callers decide whether a bad line
    is skipped and reported or is an error.

    Example:
        >>> list(iter_jsonl(['{"a": 1}', "", "{oops"]))[0]
        (1, {'a': 1}, None)
    """
    for ln, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield ln, json.loads(line), None
        except json.JSONDecodeError as exc:
            yield ln, None, f"malformed JSON ({exc.msg})"


def _item_from_obj(obj: Any, path: Path, line: int, text_field: str, bad: list[BadRow]) -> Item | None:
    if not isinstance(obj, dict):
        bad.append(BadRow(str(path), line, f"expected a JSON object, got {type(obj).__name__}"))
        return None
    text = obj.get(text_field)
    if not isinstance(text, str) or not text.strip():
        bad.append(BadRow(str(path), line, f"missing or empty '{text_field}' field"))
        return None
    gold = obj.get("labels")
    if gold is not None and (isinstance(gold, str) or not isinstance(gold, list)):
        bad.append(BadRow(str(path), line, "'labels' must be a list of strings"))
        return None
    item_id = str(obj.get("id", line))
    meta = {k: v for k, v in obj.items() if k not in (text_field, "labels", "id")}
    return Item(item_id, text, gold, meta)


def read_items(path: str | os.PathLike[str], *, text_field: str = "text", bad: list[BadRow] | None = None
               ) -> Iterator[Item]:
    """Stream items from a ``.jsonl``, ``.csv``/``.tsv`` or plain text file (one item per line).

    Args:
        path: the input file.
        text_field: JSON key / CSV column holding the text.
        bad: a list that receives a :class:`BadRow` for each skipped row.

    Raises:
        InputError: the file is missing, empty, not UTF-8, or a CSV without the text column.
    """
    p = Path(path)
    bad = [] if bad is None else bad
    if not p.is_file():
        raise InputError(f"Input file {p} does not exist.")
    if p.stat().st_size == 0:
        raise InputError(f"Input file {p} is empty.")
    suffix = p.suffix.lower()
    try:
        with p.open(encoding="utf-8", newline="" if suffix in (".csv", ".tsv") else None) as fh:
            if suffix == ".jsonl":
                for ln, obj, err in iter_jsonl(fh):
                    if err:
                        bad.append(BadRow(str(p), ln, err))
                        continue
                    item = _item_from_obj(obj, p, ln, text_field, bad)
                    if item is not None:
                        yield item
            elif suffix in (".csv", ".tsv"):
                reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
                if not reader.fieldnames or text_field not in reader.fieldnames:
                    raise InputError(f"{p}: the header has no '{text_field}' column (found {reader.fieldnames}). "
                                     "Fix: rename the column or pass --text-field.")
                for row in reader:
                    ln = reader.line_num
                    labels = row.get("labels")
                    obj: dict[str, Any] = dict(row)
                    if labels is not None:
                        obj["labels"] = [s for s in labels.split("|") if s] if labels else []
                    item = _item_from_obj(obj, p, ln, text_field, bad)
                    if item is not None:
                        yield item
            else:
                for ln, line in enumerate(fh, 1):
                    text = line.rstrip("\r\n")
                    if text.strip():
                        yield Item(str(ln), text)
    except UnicodeDecodeError as exc:
        raise InputError(f"{p} is not UTF-8 text ({exc.reason} at byte {exc.start}). Re-save it as UTF-8.") from None


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, then rename it onto ``path``.

    An interrupted or failed write never leaves a partial file under the final name.

    Raises:
        InputError: the folder cannot be written; says which path.
    """
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, p)
    except OSError as exc:
        raise InputError(f"Cannot write {p}: {exc.strerror or exc}. Choose a writable output path.") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return p


def write_jsonl_atomic(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> Path:
    """Write rows as JSON Lines via a temp file + rename (see :func:`atomic_write`)."""

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write(path, write)
