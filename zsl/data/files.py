"""The file primitives every zsl module shares: items, bad rows, one JSON Lines reader, one atomic writer.

* :class:`Item` (one thing to label) and :class:`BadRow` (a row that could not be used, with
  where and why);
* :func:`iter_jsonl` parses JSON Lines and reports a bad line instead of stopping;
  :func:`iter_jsonl_file` streams it from a file (a line that is not UTF-8 is a bad line);
* :func:`atomic_write` makes a file appear under its final name only once complete (temp file
  beside it, then a rename), optionally readable by the owner only and fsynced;
  :func:`write_text_atomic`, :func:`write_lines_atomic` and :func:`write_jsonl_atomic` are it
  for text, lines and JSON rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsl.errors import InputError

__all__ = ["BadRow", "Item", "atomic_write", "decoded_lines", "fsync_dir", "iter_jsonl", "iter_jsonl_file",
           "write_jsonl_atomic", "write_lines_atomic", "write_text_atomic"]


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


def bad_utf8(raw: bytes, exc: UnicodeDecodeError) -> str:
    """Why a line is not UTF-8, for a bad-row reason."""
    return (f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
            "re-save the file as UTF-8")


def decoded_lines(p: Path) -> Iterator[tuple[int, str | None, str | None]]:
    r"""``(line number, text, None)`` per non-blank line of a UTF-8 file, ``(line number, None,
    reason)`` per line that is not UTF-8; a leading BOM is dropped. Lines end at ``\n`` only
    (so U+2028 inside a JSON string does not split a record)."""
    with p.open("rb") as fh:
        for ln, raw in enumerate(fh, 1):
            if ln == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            try:
                yield ln, raw.decode("utf-8").rstrip("\r\n"), None
            except UnicodeDecodeError as exc:
                yield ln, None, bad_utf8(raw, exc)


def iter_jsonl_file(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any, str | None]]:
    r""":func:`iter_jsonl` over a file, streamed: a line that is not UTF-8 is reported like a
    malformed one (``(line, None, reason)``) instead of stopping the read.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.jsonl"
        >>> _ = f.write_bytes(b'{"a": 1}\n{"a": "\xff"}\n')
        >>> [err is None for _, _, err in iter_jsonl_file(f)]
        [True, False]
    """
    for ln, line, err in decoded_lines(Path(path)):
        if err is not None:
            yield ln, None, err
            continue
        try:
            yield ln, json.loads(line), None
        except json.JSONDecodeError as exc:
            yield ln, None, f"malformed JSON ({exc.msg})"


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries to disk (so a rename into it survives a crash); errors are ignored."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None], *, private: bool = False,
                 sync: bool = False) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path`` (``.NAME.PID.tmp``), then rename it onto ``path``.

    An interrupted or failed write never leaves a partial file under the final name.

    Args:
        path: the file to write.
        write: writes the content to the path it is given.
        private: the file is created readable and writable by its owner only (0600).
        sync: fsync the file before the rename and its folder after, so the file survives a
            crash once this returns.

    Raises:
        InputError: the folder cannot be written; says which path.
    """
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        if private:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        write(tmp)
        if sync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, p)
        if sync:
            fsync_dir(p.parent)
    except OSError as exc:
        raise InputError(f"Cannot write {p}: {exc.strerror or exc}. Choose a writable output path.") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return p


def write_text_atomic(path: str | os.PathLike[str], text: str, *, private: bool = False, sync: bool = False) -> Path:
    """Write ``text`` (UTF-8) with :func:`atomic_write`."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), private=private, sync=sync)


def write_lines_atomic(path: str | os.PathLike[str], lines: Iterable[str], *, private: bool = False,
                       sync: bool = True) -> Path:
    """Write lines (each with its own newline) with :func:`atomic_write`; fsynced by default."""

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as fh:
            for line in lines:
                fh.write(line)

    return atomic_write(path, write, private=private, sync=sync)


def write_jsonl_atomic(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> Path:
    """Write rows as JSON Lines via a temp file + rename, fsynced (see :func:`atomic_write`)."""
    return write_lines_atomic(path, (json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
