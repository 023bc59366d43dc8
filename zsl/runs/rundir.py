"""The run directory of :func:`zsl.runs.label.label_run`: its files, its manifest, its lock; create, resume or refuse.

What a run folder holds is described in :mod:`zsl.runs.label`. :class:`RunDir` recognises a folder zsl
wrote (and refuses any other), takes the exclusive lock, and decides whether a run starts,
resumes or is already complete; :func:`make_manifest` records what a run's outputs depend on,
and :func:`check_unchanged` catches an input that changed while it was labelled. Every file is
written with :func:`write_json` / :func:`write_lines`: atomically, readable by the owner only,
fsynced.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zsl.data.files import open_private, read_private, refuse_overwrite, write_lines_atomic, write_text_atomic
from zsl.data.records import fingerprint
from zsl.errors import InputError, ZslError
from zsl.vocab import LabelVocab

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: runs are not locked
    fcntl = None

__all__ = [
    "ERRORS",
    "LABELS",
    "LOCK",
    "LOG",
    "MANIFEST",
    "META",
    "PLAN",
    "REVIEW_LOCK",
    "RUN_FORMAT",
    "SUMMARY",
    "RunDir",
    "check_not_running",
    "check_unchanged",
    "is_run_manifest",
    "lock_review",
    "make_manifest",
    "own_temp",
    "recorded_manifest",
    "rule_change",
    "running_holder",
    "write_json",
    "write_lines",
    "write_plan",
]

MANIFEST = "manifest.json"
LABELS = "labels.jsonl"
META = LABELS + ".meta.json"
ERRORS = "errors.jsonl"
SUMMARY = "summary.json"
PLAN = "plan.json"
LOG = "log.txt"
LOCK = ".zsl-lock"
REVIEW_LOCK = ".zsl-review-lock"  # held by a `zsl review` server for as long as it runs
RUN_FORMAT = 1  # the manifest's "zsl_run" marker
_CHUNK_NAME = re.compile(r"[0-9]{6,}\.jsonl")
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.[0-9]+\.tmp")  # zsl.data.atomic_write's temp files


def write_json(path: Path, obj: Any) -> None:
    """Write a JSON file of the run directory: atomically, owner-only (0600), fsynced with its folder."""
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=1), private=True, sync=True)


def write_lines(path: Path, lines: Iterable[str]) -> None:
    """Write a JSON Lines file of the run directory: atomically, owner-only (0600), fsynced with its folder."""
    write_lines_atomic(path, lines, private=True, sync=True)


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _diff(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    if old != new:
        return [(f"{prefix.rstrip('.')}: {json.dumps(old, ensure_ascii=False)[:80]} -> "
                f"{json.dumps(new, ensure_ascii=False)[:80]}")]
    return []


def is_run_manifest(m: Any) -> bool:
    """True for a manifest that zsl wrote: it carries ``"zsl_run": 1``, or (run directories
    written before that marker existed) it has all of ``zsl_version``, ``input.fingerprint``,
    ``vocab.hash`` and ``settings.chunk_size``, a combination no other tool's manifest has by chance."""
    if not isinstance(m, dict):
        return False
    marker = m.get("zsl_run")
    if isinstance(marker, int) and not isinstance(marker, bool) and marker >= 1:
        return True
    inp, voc, sets = m.get("input"), m.get("vocab"), m.get("settings")
    return (isinstance(m.get("zsl_version"), str) and isinstance(inp, dict) and "fingerprint" in inp
            and isinstance(voc, dict) and "hash" in voc and isinstance(sets, dict) and "chunk_size" in sets)


def recorded_manifest(run: Path) -> dict[str, Any] | None:
    """The manifest of a zsl run directory, read without following links; None when there is none (or
    it cannot be read, or zsl did not write it: :meth:`RunDir.prepare` then says why)."""
    try:
        m = read_run_json(run / MANIFEST)
    except (InputError, ValueError):
        return None
    return m if is_run_manifest(m) else None


def read_run_json(path: Path) -> Any:
    """A JSON file a run keeps (its manifest, summary or lock), read without following a link or blocking on
    a FIFO (a run folder may come from someone else).

    Raises:
        InputError: ``path`` is a link, a FIFO, a device or a folder, or cannot be opened (the message says which).
        ValueError: it is not JSON.
    """
    return json.loads(read_private(path).decode("utf-8"))


def _lock_holder(path: Path) -> str:
    try:
        info = read_run_json(path)
        return f"pid {info['pid']} on {info['host']}, since {info['since']}"
    except (InputError, ValueError, KeyError, TypeError):
        return "a process that has not written its pid yet"


def _review_holder(run: Path) -> str | None:
    """Who serves ``run`` with ``zsl review`` (the text of its ``.zsl-review-lock``), or None when no server does."""
    if fcntl is None:
        return None
    try:  # never through a symlink
        fd = os.open(run / REVIEW_LOCK, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "a process that has not written its pid yet"
    finally:
        os.close(fd)  # closing drops the shared lock taken when no server holds it
    return None


class RunDir:
    """The run directory: what zsl wrote there, the exclusive lock, and create / resume / refuse."""

    def __init__(self, path: Path):
        self.path = path
        self.chunks = path / "chunks"
        self._lock_fd: int | None = None

    def log(self, message: str) -> None:
        fd = open_private(self.path / LOG, append=True)  # never through a link planted in the folder
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def chunk_path(self, i: int) -> Path:
        return self.chunks / f"{i:06d}.jsonl"

    def done_chunks(self) -> set[int]:
        if not self.chunks.is_dir():
            return set()
        return {int(p.name[:-6]) for p in self.chunks.iterdir() if _CHUNK_NAME.fullmatch(p.name)}

    def remove_chunks(self) -> None:
        """Delete zsl's chunk files (and their temp files), then ``chunks/`` if nothing else is in it."""
        if not self.chunks.is_dir():
            return
        for f in self.chunks.iterdir():
            if _CHUNK_NAME.fullmatch(f.name) or own_temp(f.name, chunk=True):
                f.unlink(missing_ok=True)
        try:
            self.chunks.rmdir()
        except OSError:
            pass  # something that is not zsl's is in there: leave it

    def _remove_temp_files(self) -> None:
        """Temp files of atomic writes cut short by ``kill -9`` (only zsl's own, by name)."""
        for f in self.path.iterdir():
            if own_temp(f.name, chunk=False):
                f.unlink(missing_ok=True)
        if self.chunks.is_dir():
            for f in self.chunks.iterdir():
                if own_temp(f.name, chunk=True):
                    f.unlink(missing_ok=True)

    def _read_manifest(self) -> dict[str, Any] | None:
        """The manifest if this folder is a zsl run, None if it is new or empty; refuses anything else."""
        mpath = self.path / MANIFEST
        if not os.path.lexists(mpath):  # a link, even a dangling one, is refused below, not taken for "no manifest"
            if self.path.is_dir() and any(e.name != LOCK for e in self.path.iterdir()):
                raise InputError(f"{self.path} is not empty and is not a zsl run directory (no {MANIFEST}). "
                                 "Fix: choose a new or empty --out folder.")
            return None
        try:
            old = read_run_json(mpath)
        except InputError as exc:
            raise InputError(f"{exc} ({self.path} would be a zsl run directory only with {MANIFEST} a regular "
                             "file.)") from None
        except ValueError as exc:
            why = type(exc).__name__
            raise InputError(f"{mpath} cannot be read as a zsl run manifest ({why}), so {self.path} is not a usable "
                             "zsl run directory. Fix: choose a new or empty --out folder (if it is a zsl run you no "
                             "longer need, delete the folder yourself).") from None
        if not is_run_manifest(old):
            raise InputError(f"{self.path} holds a {MANIFEST} that zsl did not write: it is not a zsl run directory, "
                             "and zsl leaves its files alone. Fix: choose a new or empty --out folder.")
        return old

    def _finished(self) -> bool:
        """The last merge wrote labels and a summary with no item waiting for a retry (chunks are
        kept while items wait for one)."""
        if not ((self.path / SUMMARY).is_file() and (self.path / LABELS).is_file()):
            return False
        try:
            summary = read_run_json(self.path / SUMMARY)
        except (InputError, ValueError):
            return False
        return isinstance(summary, dict) and summary.get("retryable", 0) == 0

    def _make(self) -> None:
        if self.path.is_dir():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.path.mkdir(mode=0o700)
        except FileExistsError:
            return  # another process made it a moment ago; the lock decides who runs
        os.chmod(self.path, 0o700)

    def _lock(self) -> None:
        """Take the run directory's exclusive lock (``flock`` on ``.zsl-lock``) or refuse, naming the holder.

        The kernel drops the lock when its holder exits, however it exits, so a lock left by a
        dead process never blocks; the pid, host and start time in the file are for the message.
        """
        path = self.path / LOCK
        fd = open_private(path)  # never through a link planted in the folder: it is truncated below
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                holder = _lock_holder(path)
                raise ZslError(f"{self.path} is in use by another zsl run ({holder}). Two runs writing one run "
                               "directory would spoil it. Fix: wait for that run to finish (or stop it), then run "
                               "the command again; or choose another --out.") from None
        if os.path.lexists(self.path / LOG):  # a log planted as a link is refused now, before --fresh deletes anything
            try:
                os.close(open_private(self.path / LOG, append=True))
            except InputError:
                os.close(fd)
                raise
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            try:
                os.ftruncate(self._lock_fd, 0)
            except OSError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None

    def prepare(self, manifest: dict[str, Any], fresh: bool) -> str:
        """Create, resume or refuse; on success the caller holds the lock until :meth:`unlock`.
        Returns "new", "resume" or "complete"."""
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"--out {self.path} is a file; a run writes a directory. Fix: --out {self.path}.run/")
        # An input (or vocabulary) inside the run folder could be overwritten or, with --fresh, deleted.
        refuse_overwrite(self.path, [(manifest.get(k) or {}).get("path") for k in ("input", "vocab")], folder=True)
        self._read_manifest()  # refuse a folder that is not zsl's before writing anything into it
        self._make()
        self._lock()
        try:
            server = _review_holder(self.path)
            if server is not None:  # its reviewer's decisions refer to these rows and this vocabulary
                raise ZslError(f"{self.path} is open in a `zsl review` server ({server}); labelling it again would "
                               "change the items under the reviewer. Fix: stop that server (Ctrl-C), then run this "
                               "command again; or choose another --out.")
            return self._prepare_locked(manifest, fresh)
        except BaseException:
            self.unlock()
            raise

    def _prepare_locked(self, manifest: dict[str, Any], fresh: bool) -> str:
        mpath = self.path / MANIFEST
        old = self._read_manifest()  # again: another run may have written it before we took the lock
        self._remove_temp_files()
        if old is not None and fresh:
            # Everything but the manifest first, then the manifest replaced atomically: the folder
            # never lacks a manifest, so an interrupted --fresh is still a recognisable run.
            for name in (LABELS, META, ERRORS, SUMMARY, PLAN):
                (self.path / name).unlink(missing_ok=True)
            self.remove_chunks()
            write_json(mpath, manifest)
            self.log("--fresh: earlier progress discarded")
            return "new"
        if old is not None:
            keys = ("input", "vocab", "settings")
            changes = _diff({k: old.get(k) for k in keys}, {k: manifest.get(k) for k in keys})
            # Where the files are does not matter, only what they hold (input.fingerprint, vocab.hash).
            changes = [c for c in changes if not c.startswith(("input.path:", "vocab.path:"))]
            # A run from before label-set rules, or one whose rule alone changed, gets its own message;
            # any other change is listed with the rest (the rule's fields among them).
            before_rules = "rule" not in (old.get("settings") or {})
            rule_only = all(c.startswith("settings.rule") for c in changes)
            why = rule_change(self.path, old, manifest) if before_rules or rule_only else None
            if why is not None:
                raise InputError(why)
            if changes:
                shown = "; ".join(changes[:8]) + (f"; ... ({len(changes) - 8} more)" if len(changes) > 8 else "")
                raise InputError(
                    f"{self.path} holds a run with different inputs or settings: {shown}. Resuming would mix "
                    f"outputs. Fix: rerun with the original settings, choose a new --out, or add --fresh to "
                    f"discard that run's progress.")
            if "zsl_run" not in old:  # written before the marker existed
                write_json(mpath, {"zsl_run": RUN_FORMAT, **old})
            if self._finished():
                self.remove_chunks()  # left by a stop between the summary and the clean-up
                return "complete"
            return "resume"
        write_json(mpath, manifest)
        return "new"


def rule_change(path: Path, old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Why a run cannot resume under another label-set rule (its rows' sets would differ), with the fix; or None.

    A manifest written before label-set rules existed has no ``settings.rule``: its rows' ``labels``
    are the ``k`` best (a fitted program's set apart, in ``above_threshold``), so resuming it
    with this version, whatever the rule, would mix two notions of the predicted labels.
    """
    was, now = (old.get("settings") or {}).get("rule"), (new.get("settings") or {}).get("rule")
    if now is None or was == now:
        return None
    fix = (f"Fix: add --fresh to label it again from the start, or choose another --out (the rows already in "
           f"{path} stay readable as they are).")
    if was is None:
        k = (old.get("settings") or {}).get("k", "k")
        same = now.get("name") == "topk" and now.get("k") == k
        why = ("this version writes rows of another format (the rule recorded, a fitted program's or a student's set "
               "in 'labels' instead of 'above_threshold'), and a run's rows must come from one format" if same else
               f"this run would choose them by the rule {json.dumps(now)}, so its resumed rows' sets would differ "
               "from the rows already written")
        return (f"{path} holds a run written by zsl {old.get('zsl_version', '(unknown)')}, before label-set rules: its "
                f"rows' 'labels' are the {k} best labels of each item, while {why}. {fix}")
    return (f"{path} holds a run whose label sets were chosen by the rule {json.dumps(was)}; this command asks for "
            f"{json.dumps(now)}, so resumed rows' sets would differ from the rows already written. {fix} Or rerun "
            f"with the original rule.")


def own_temp(name: str, *, chunk: bool) -> bool:
    """Is ``name`` a temp file of :func:`zsl.data.atomic_write` (``.NAME.PID.tmp``) for one of zsl's files?"""
    m = _TEMP_NAME.fullmatch(name)
    if m is None:
        return False
    return bool(_CHUNK_NAME.fullmatch(m["name"])) if chunk else m["name"] in (MANIFEST, LABELS, META, ERRORS, SUMMARY, PLAN)


def check_unchanged(input_path: Path, manifest: dict[str, Any], size: int | None) -> None:
    """Fail loudly when the input changed while it was being labelled: the rows would not match
    the file named in the manifest. The chunks are kept."""
    try:
        now = fingerprint(input_path)
        new_size = input_path.stat().st_size if size is not None else None
    except OSError as exc:
        now, new_size, why = None, None, f"it cannot be read any more ({exc.strerror or exc})"
    else:
        why = f"its size went from {size} to {new_size} bytes" if new_size != size else "its content changed"
    if now == manifest["input"]["fingerprint"]:
        return
    raise InputError(f"{input_path} changed while it was being labelled ({why}), so the labels may not match the "
                     "file and no labels.jsonl was written. Fix: let whatever writes the file finish (or label a copy "
                     "that nothing writes to), then rerun with --fresh.")


def write_plan(path: Path, manifest: dict[str, Any], records: int | None, chunk_size: int) -> None:
    """Write ``plan.json``: how the input is cut into chunks (shards) for whichever engine labels them.

    Chunk ``k`` holds input records ``k * chunk_size`` up to ``(k + 1) * chunk_size`` (records
    counted as the reader yields them, unreadable ones included), so a chunk means the same
    records to every worker and every session; the input fingerprint, vocabulary hash and
    settings say which input and program the plan is for (the manifest holds them in full).
    """
    n = None if records is None else -(-records // chunk_size)
    settings = json.dumps(manifest["settings"], sort_keys=True, ensure_ascii=False)
    write_json(path / PLAN, {
        "input_fingerprint": manifest["input"]["fingerprint"], "vocab_hash": manifest["vocab"]["hash"],
        "settings_hash": hashlib.sha256(settings.encode("utf-8")).hexdigest(), "records": records, "chunk_size": chunk_size, "chunks": n,
        "chunk_files": "chunks/{k:06d}.jsonl holds records [k * chunk_size, (k + 1) * chunk_size)"})


def make_manifest(input_path: Path, fmt: str, text_field: str, id_field: str, vocab: LabelVocab,
              vocab_path: str | None, settings: dict[str, Any], runtime: dict[str, Any], fp: str) -> dict[str, Any]:
    from zsl.version import __version__

    return {
        "zsl_run": RUN_FORMAT,
        "zsl_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "input": {"path": str(input_path.resolve()), "format": fmt, "fingerprint": fp,
                  "text_field": text_field, "id_field": id_field},
        "vocab": {"path": vocab_path, "hash": vocab.hash, "size": len(vocab)},
        "settings": settings,
        "runtime": runtime,
    }


def running_holder(run_dir: str | os.PathLike[str]) -> str | None:
    """Who holds the lock of a run directory (a ``zsl label`` writing it), or None when no one does.

    Takes a shared lock without waiting and drops it at once: it fails only while the lock is held.
    """
    path = Path(run_dir) / LOCK
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: runs are not locked
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            try:
                info = json.loads(Path(path).read_text(encoding="utf-8"))
                return f"pid {info['pid']} on {info['host']}, since {info['since']}"
            except (OSError, ValueError, KeyError, TypeError):
                return "a process that has not written its pid yet"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def check_not_running(run_dir: str | os.PathLike[str]) -> None:
    """Refuse a run directory that a ``zsl label`` run is writing right now.

    Raises:
        ZslError: the directory's lock is held; the message names the holder and the fix.
    """
    holder = running_holder(run_dir)
    if holder is not None:
        raise ZslError(f"{run_dir} is being written by a running `zsl label` ({holder}); its labels.jsonl is not "
                       "final yet. Fix: wait for that run to finish (or stop it), then run this command again.")


def lock_review(run_dir: str | os.PathLike[str]) -> int | None:
    """Take the run's review lock (one ``zsl review`` server per run) and remove temp files of
    ``reviewed.jsonl`` writes that a killed server left behind.

    Two servers would each rewrite the whole file from their own memory, and the last writer
    would drop the other's decisions; so a second one is refused. The kernel drops the lock
    when the server exits, however it exits.

    Returns:
        the lock's file descriptor (close it to release the lock), or None where ``flock`` does not exist.

    Raises:
        ZslError: another server holds the lock (its pid and start time are named).
        InputError: ``.zsl-review-lock`` is a symbolic link or not a regular file (it is never written through).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    from zsl.silver.reviewed import REVIEWED

    path = Path(run_dir) / REVIEW_LOCK
    fd = open_private(path)  # never through a link planted in the run: the file is truncated below
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        try:
            holder = path.read_text(encoding="utf-8").strip() or "a process that has not written its pid yet"
        except OSError:
            holder = "another process"
        raise ZslError(f"Another `zsl review` is serving {run_dir} ({holder}); two would overwrite each other's "
                       "decisions. Fix: use the page it serves, or stop it (Ctrl-C) and run this again.") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}, since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode(), 0)
    for f in Path(run_dir).glob(f".{REVIEWED}.*.tmp"):  # left by a killed server: no writer can be running now
        f.unlink(missing_ok=True)
    return fd
