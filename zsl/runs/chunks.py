"""One chunk of a run: label its records and write its durable file; the same code for every engine.

A run (:mod:`zsl.runs.label`) cuts its input into chunks of consecutive records. Whoever labels a
chunk -- the run's own process (``engine="local"``) or a Ray worker on another machine
(:mod:`zsl.runs.ray_engine`) -- calls :func:`label_chunk`, which writes ``chunks/NNNNNN.jsonl``
atomically (temp file, fsync, rename): one line per record (a row, or ``{"error": ...}``
for a skipped one) and a last ``{"stats": ...}`` line. The merge reads only these files, so
the outputs do not depend on where or by whom a chunk was labelled.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from zsl.data.files import BadRow, Item
from zsl.errors import ZslError
from zsl.runs.rundir import RunDir, write_lines
from zsl.util.retry import Skipped

__all__ = ["add_usage", "item_error", "label_chunk", "retry_chunk"]


def add_usage(total: dict[str, dict[str, int]], part: dict[str, dict[str, int]]) -> None:
    """Add one call's LM usage per step (``{"infer": {"calls", "prompt_tokens", ...}}``) into ``total``."""
    for step, u in part.items():
        acc = total.setdefault(step, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0})
        for key, value in u.items():
            acc[key] = acc.get(key, 0) + int(value)


def label_chunk(rd: RunDir, ci: int, chunk: list[Item | BadRow], dup: dict[int, str], labeller: Any,
                tick: Callable[[int], None]) -> dict[str, Any]:
    """Label chunk ``ci`` and write its file; returns the chunk's stats.

    Args:
        rd: the run directory.
        ci: the chunk's number (its records are ``ci * chunk_size ...`` of the input).
        chunk: its records, in input order (unreadable ones as :class:`~zsl.data.BadRow`).
        dup: positions in ``chunk`` whose id repeats an earlier record's, with the reason.
        labeller: a :class:`~zsl.runs.labeller.Labeller`.
        tick: called with the number of records done, for a progress bar.
    """
    t0 = time.perf_counter()
    items = [rec for pos, rec in enumerate(chunk) if isinstance(rec, Item) and pos not in dup]
    outputs, usage = labeller.label(items, tick) if items else ([], {})
    tick(len(chunk) - len(items))
    by_item = dict(zip((id(it) for it in items), outputs, strict=True))
    lines: list[str] = []
    labelled = skipped = 0
    for pos, rec in enumerate(chunk):
        if isinstance(rec, BadRow):
            err = {"file": rec.path, "line": rec.line, "reason": rec.reason}
        elif pos in dup:
            err = {"id": rec.id, "reason": dup[pos]}
        elif isinstance(by_item[id(rec)], Skipped):
            err = item_error(rec, by_item[id(rec)])
        else:
            lines.append(json.dumps(by_item[id(rec)], ensure_ascii=False) + "\n")  # rows start with {"id"
            labelled += 1
            continue
        lines.append(json.dumps({"error": err}, ensure_ascii=False) + "\n")
        skipped += 1
    stats = {"chunk": ci, "records": len(chunk), "labelled": labelled, "skipped": skipped,
             "seconds": round(time.perf_counter() - t0 + labeller.take_carried_seconds(), 3), "usage": usage}
    lines.append(json.dumps({"stats": stats}) + "\n")
    write_lines(rd.chunk_path(ci), lines)
    return stats


def item_error(item: Item, why: Skipped) -> dict[str, Any]:
    """The ``errors.jsonl`` entry of an item that could not be labelled (``retryable`` for a transient failure)."""
    err: dict[str, Any] = {"id": item.id, "reason": why.reason}
    if why.retryable:
        err["retryable"] = True
    return err


def retry_chunk(rd: RunDir, ci: int, chunk: list[Item | BadRow], labeller: Any) -> int:
    """Label again the items of a finished chunk that failed on transient errors, if any, and
    rewrite the chunk atomically. Returns how many items were tried again."""
    t0 = time.perf_counter()
    lines = rd.chunk_path(ci).read_text(encoding="utf-8").splitlines(keepends=True)
    positions = [pos for pos, line in enumerate(lines)
                 if line.startswith('{"error"') and json.loads(line)["error"].get("retryable")]
    if not positions:
        return 0
    rd.log(f"chunk {ci}: retrying {len(positions)} item(s) that failed on transient errors")
    stats = json.loads(lines[-1])["stats"]
    items = [chunk[pos] for pos in positions]
    if not all(isinstance(it, Item) for it in items) or len(lines) != len(chunk) + 1:
        raise ZslError(f"{rd.chunk_path(ci)} does not match the input any more. Fix: rerun with --fresh.")
    outputs, usage = labeller.label(items, lambda n: None)
    for pos, item, got in zip(positions, items, outputs, strict=True):
        if isinstance(got, Skipped):
            lines[pos] = json.dumps({"error": item_error(item, got)}, ensure_ascii=False) + "\n"
        else:
            lines[pos] = json.dumps(got, ensure_ascii=False) + "\n"
            stats["labelled"] += 1
            stats["skipped"] -= 1
    stats["seconds"] = round(stats["seconds"] + time.perf_counter() - t0, 3)
    stats["usage"] = {**(stats.get("usage") or {})}
    add_usage(stats["usage"], usage)
    lines[-1] = json.dumps({"stats": stats}) + "\n"
    write_lines(rd.chunk_path(ci), lines)
    return len(positions)
