"""The file primitives every zsl module shares: items, bad rows, one JSON Lines reader, one atomic writer.

* :class:`Item` (one thing to label) and :class:`BadRow` (a row that could not be used, with
  where and why);
* :func:`iter_jsonl` parses JSON Lines and reports a bad line instead of stopping;
  :func:`iter_jsonl_file` streams it from a file (a line that is not UTF-8 is a bad line);
* :func:`atomic_write` makes a file appear under its final name only once complete (temp file
  beside it, then a rename), optionally readable by the owner only and fsynced;
  :func:`write_text_atomic`, :func:`write_lines_atomic` and :func:`write_jsonl_atomic` are it
  for text, lines and JSON rows;
* :func:`open_private` opens a lock or log file without following a symbolic link and refuses
  anything that is not a regular file; :func:`refuse_overwrite` refuses an output path that is
  (or, for a folder, holds) one of the command's inputs.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsl.errors import InputError

__all__ = ["BadRow", "Item", "atomic_write", "decoded_lines", "fsync_dir", "iter_jsonl", "iter_jsonl_file",
           "open_private", "read_private", "refuse_overwrite", "write_jsonl_atomic", "write_lines_atomic", "write_text_atomic"]


@dataclass
class Item:
    """One thing to label: an id, its text (or, for an image, its file ``path``), and gold labels when the file
    has them."""

    id: str
    text: str | None
    gold: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # an image item's file; its text is None

    @property
    def value(self) -> str:
        """What a scorer reads and a row writes as its input: the image path, else the text."""
        return self.path if self.path is not None else self.text


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


def open_private(path: str | os.PathLike[str], *, append: bool = False) -> int:
    """Open (creating it 0600) a lock or log file for reading and writing, never through a symbolic link.

    A run folder may come from someone else (shared, downloaded, unpacked): a ``.zsl-lock`` or
    ``log.txt`` planted there as a link to another file would otherwise make zsl truncate or
    append to that file. So the last path component is opened with ``O_NOFOLLOW``, and a FIFO,
    device or folder is refused too (opened without blocking, then checked with ``fstat``).

    Args:
        path: the file; it is created with mode 0600 when missing.
        append: open in append mode (every write goes to the end).

    Returns:
        a file descriptor (the caller closes it), in blocking mode.

    Raises:
        InputError: ``path`` is a symbolic link or not a regular file (the message names it and the fix), or
            cannot be opened.
    """
    fd = _open_regular(Path(path), os.O_RDWR | os.O_CREAT | (os.O_APPEND if append else 0),
                       "zsl does not write its own files (locks, logs, decisions, LLM answers) through links, since "
                       "the link could point at any of your files. Fix: remove the link")
    try:
        st = os.fstat(fd)
        if st.st_nlink > 1:  # a hard link: O_NOFOLLOW does not see it, and writing would change the other name too
            p = Path(path)
            raise InputError(f"{p} has {st.st_nlink - 1} other name(s) (a hard link), so writing or truncating it "
                             "would change another file too. Fix: remove it (rm), or replace it with a copy "
                             f"(cp --remove-destination {p} {p}.copy && mv {p}.copy {p}), then run the command again.")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_regular(p: Path, flags: int, link_fix: str) -> int:
    """Open ``p`` (0600 when created) without following a link or blocking on a FIFO; a blocking fd of a
    regular file, else an :class:`InputError` naming what ``p`` is (``link_fix`` says why links are refused)."""
    flags |= os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(p, flags, 0o600)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) or p.is_symlink():
            raise InputError(f"{p} is a symbolic link (to {os.readlink(p)!r}); {link_fix} (rm {p}), then run the "
                             "command again.") from None
        if exc.errno in (errno.ENXIO, errno.EISDIR):  # a FIFO with no reader; a folder
            raise _not_regular(p, stat.S_IFDIR if exc.errno == errno.EISDIR else stat.S_IFIFO) from None
        raise InputError(f"Cannot open {p}: {exc.strerror or exc}. Fix: check the folder's permissions.") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(p, mode)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_private(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a file a run keeps (``teacher.jsonl``, ``reviewed.jsonl``), never through a link.

    A run folder may come from someone else: a ``teacher.jsonl`` planted as a link to
    ``/dev/zero`` or as a FIFO would otherwise fill the memory or hang the command. So the
    file is opened with ``O_NOFOLLOW`` and without blocking, and read only if it is a regular file.

    Raises:
        InputError: the path is a link, a FIFO, a device or a folder (the message names it and the fix).
    """
    fd = _open_regular(Path(path), os.O_RDONLY, "zsl reads and writes the files of a run only as regular files. "
                       "Fix: remove the link, or replace it with the file it points to")
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def _not_regular(p: Path, mode: int | None = None) -> InputError:
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a device"),
             (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))
    kind = next((name for test, name in kinds if mode is not None and test(mode)), "not a regular file")
    return InputError(f"{p} is {kind}, where zsl keeps a file of its own (a lock, log, decisions or LLM answers); "
                      "it reads and writes those only as regular files. "
                      f"Fix: move that {'folder' if kind == 'a folder' else 'file'} out of the way (it is not zsl's), "
                      "then run the command again.")


def refuse_overwrite(out: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None], *,
                     flag: str = "--out", folder: bool = False) -> None:
    """Refuse an output path that is one of the command's inputs or, for a ``folder`` output, holds one.

    Paths are compared after resolving symbolic links (and ``..``), and an existing output is
    also compared by inode, so a link or a hard link to an input is caught too.

    Args:
        out: the path the command writes (a file, or with ``folder`` a folder it fills or replaces).
        inputs: the paths it reads (None entries are ignored).
        flag: the option that named ``out``, for the message.
        folder: ``out`` is a folder: an input anywhere below it is refused too.

    Raises:
        InputError: naming the input and the fix.

    Example:
        >>> refuse_overwrite("out.json", ["train.jsonl", None])
    """
    target = Path(os.path.realpath(out))
    for given in inputs:
        if given is None:
            continue
        inp = Path(os.path.realpath(given))
        same = inp == target
        if not same and target.exists() and inp.exists():
            try:
                same = os.path.samefile(target, inp)
            except OSError:
                same = False
        if same:
            raise InputError(f"{flag} {out} is the input {given}: writing it would destroy what this command reads. "
                             f"Fix: choose another {flag} path.")
        if folder and target in inp.parents:
            raise InputError(f"{flag} {out} is a folder that holds the input {given}: writing (or replacing) it "
                             f"could delete or overwrite that input. Fix: choose another {flag} folder, or move the "
                             "input out of it first.")
    if not folder and _is_run_dir(target.parent):
        raise InputError(f"{flag} {out} is inside the zsl run directory {target.parent}, which holds that run's own "
                         "files (labels, decisions, paid LLM answers, its manifest): writing there could replace one. "
                         f"Fix: choose a {flag} path outside the run directory (or in a folder of its own).")


def _is_run_dir(path: Path) -> bool:
    """A folder ``zsl label`` made: its ``manifest.json`` says ``zsl_run`` (see zsl.runs.rundir)."""
    manifest = path / "manifest.json"
    try:
        if not manifest.is_file() or manifest.stat().st_size > 1_000_000:
            return False
        return "zsl_run" in json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


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
        # A stale temp file, or a link planted under its name, is removed, never written through:
        # O_EXCL creates a new file (and fails on a link) before ``write`` opens it by name.
        tmp.unlink(missing_ok=True)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666))
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
