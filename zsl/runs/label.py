"""Labelling runs that survive interruption: a run directory, durable chunks, exactly-once resume.

A run reads its input as a stream of records (:func:`zsl.data.iter_records`), cuts it into
chunks of ``chunk_size`` consecutive records, labels each chunk and writes it as one file
that appears atomically (temp file, fsync, rename). A chunk file is therefore either
complete or absent: after Ctrl-C, a crash or ``kill -9``, running the same command again
skips the chunks on disk and labels the rest, so no item is lost or written twice. When
every chunk is done, the chunks are merged, in input order, into ``labels.jsonl``.

The run directory (created readable by its owner only, files 0600: it holds item texts)::

    manifest.json        "zsl_run": 1, input fingerprint, vocabulary hash, settings, model ids, prompt versions
    chunks/000000.jsonl  one file per finished chunk (removed once merged with nothing left to retry)
    labels.jsonl         the silver data, one row per labelled item, in input order
    labels.jsonl.meta.json  vocabulary + provenance, so `zsl distill` and `zsl eval` need no --labels
    errors.jsonl         every skipped record: file, line, id, reason
    summary.json         counts, seconds, LM calls and tokens per step, cost (remote LMs)
    plan.json            how the input is cut into chunks: records, chunk size, chunk count
    log.txt              one line per start, resume, warning and finish
    .zsl-lock            held (flock) by the run using the folder; pid, host and start time

A folder is a zsl run when its manifest carries ``"zsl_run"``, or (folders written before that
marker) has ``zsl_version``, ``input.fingerprint``, ``vocab.hash`` and ``settings.chunk_size``
together; any other ``manifest.json`` is refused and left alone, even with ``fresh``, which
deletes only the files above (and zsl's own temp files) and never anything else in the folder.
One run at a time: a second one on the same folder is refused and told who holds it; the
kernel releases the lock when its holder dies, so a killed run never blocks the next.

A run refuses to resume when the input, the vocabulary or a setting that changes outputs
differs from its manifest, and says what changed (contents count, not paths: a moved input
or vocabulary file resumes). The input must be a regular file (or a folder): it is read more
than once, and a run fails, keeping its chunks, if the file changed while it was labelled.

An item whose LM call still fails on a transient error (rate limit, time-out, 5xx) after its
retries is written to ``errors.jsonl`` with ``"retryable": true``; the chunks are then kept,
and running the same command again labels just those items and rewrites their chunks
atomically, so the final output is the same as a run that never failed.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "items.txt").write_text("football final tonight\\nstorm warning for the coast\\n")
    >>> _ = (d / "labels.txt").write_text("sports\\nweather\\n")
    >>> s = label_run(d / "items.txt", d / "labels.txt", out=d / "run", encoder="hashing", infer=False, rank=False, k=1)
    >>> s.labelled, s.skipped, (d / "run" / "labels.jsonl").is_file()
    (2, 0, True)
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zsl.data.files import BadRow, Item
from zsl.data.images import image_records
from zsl.data.records import count_records, fingerprint_and_count, iter_records
from zsl.errors import InputError, ZslError
from zsl.runs.chunks import add_usage, label_chunk, retry_chunk
from zsl.runs.driver import Run, open_run, reopen_summary, run_settings
from zsl.runs.labeller import LabelSettings
from zsl.runs.rundir import ERRORS, LABELS, RunDir, check_unchanged, recorded_manifest, write_plan
from zsl.vocab import LabelVocab

__all__ = ["RunSummary", "estimate_run", "label_run"]


@dataclass
class RunSummary:
    """What a run did. ``tokens`` is per LM step: ``{"infer": {"calls", "prompt_tokens",
    "completion_tokens"}, "rank": {...}}``; ``cost_usd`` is set for remote models with a known price.

    ``seconds`` adds up the time spent on each chunk (by any worker, in any session), so
    ``items_per_second`` is the rate of one worker; ``wall_seconds`` is this session's labelling
    time on the clock (with ``workers`` workers of ``engine``; with the catch-all pivot's scoring of
    the first items before labelling), ``startup_seconds`` the part of it
    spent starting them (Ray start-up and worker checks; 0 locally)."""

    run_dir: str
    labels: str
    errors: str
    total: int
    labelled: int
    skipped: int
    seconds: float
    items_per_second: float
    resumed_chunks: int = 0
    already_complete: bool = False
    tokens: dict[str, dict[str, int]] = field(default_factory=dict)
    cost_usd: float | None = None
    eval: dict[str, float] | None = None
    warnings: list[str] = field(default_factory=list)
    retryable: int = 0
    engine: str = "local"
    workers: int = 1
    wall_seconds: float = 0.0
    startup_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _records(input_path: Path, fmt: str, text_field: str, id_field: str) -> Iterator[Item | BadRow]:
    if fmt == "images":
        return image_records(input_path)
    return iter_records(input_path, text_field=text_field, id_field=id_field)


def _nonempty_records(run: Run, total: int | None) -> Iterator[Item | BadRow]:
    """The input's records, read once; an input with none is refused before any directory is made."""
    opts = run.opts
    records = _records(run.input_path, run.fmt, opts.text_field, opts.id_field)
    first = None if total == 0 else next(records, None)  # peeked here, it goes back in front of the rest
    if first is None:
        raise InputError(f"{run.input_path} has no records: it is empty or holds only blank lines or a header. Fix: "
                         f"check the file and --text-field ({opts.text_field!r}).")
    return itertools.chain([first], records)


def _prepare(run: Run, out: str | os.PathLike[str] | None, fresh: bool, show_progress: bool) -> str | None:
    """Let the labeller fit what it learns from the run's first texts (the zero-shot catch-all pivot), or reuse
    what the run directory's manifest recorded when this run resumes; returns a line for the run's log."""
    labeller = run.labeller
    if not getattr(labeller, "wants_texts_first", False) or run.fmt == "images":
        return None  # nothing to fit: the input is not read a second time
    old = None if fresh else recorded_manifest(run.run_path(out))
    record = ((old or {}).get("settings") or {}).get("catch_all")
    if isinstance(record, dict) and "pivot" in record and labeller.set_pivot(record):
        note = f"catch-all pivot {float(record['pivot']):.4f}: the one this run recorded"
    else:
        opts = run.opts
        first = itertools.islice(_records(run.input_path, run.fmt, opts.text_field, opts.id_field),
                                 labeller.pivot_items)
        say = (lambda line: print(f"zsl: {line}", file=sys.stderr, flush=True)) if show_progress else None
        note = labeller.prepare([rec.value for rec in first if isinstance(rec, Item)], show_progress=show_progress,
                                say=say)
    pivot = labeller.tagger.catch_all_
    if pivot is not None:  # Ray workers build their own labeller from the settings: they get this pivot
        run.opts = run.opts.updated(catch_all_pivot=pivot.pivot_)
    return note


def _chunks(records: Iterator[Item | BadRow], size: int) -> Iterator[list[Item | BadRow]]:
    buf: list[Item | BadRow] = []
    for rec in records:
        buf.append(rec)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def _price(model: str | None, usage: dict[str, dict[str, int]]) -> float | None:
    """US dollars for the tokens used, from LiteLLM's bundled price table (no network)."""
    if not model:
        return None
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm

        prompt = sum(u.get("prompt_tokens", 0) for u in usage.values())
        completion = sum(u.get("completion_tokens", 0) for u in usage.values())
        p, c = litellm.cost_per_token(model=model, prompt_tokens=prompt, completion_tokens=completion)
        return float(p + c) + _image_price(litellm.model_cost, model, usage)
    except Exception:  # noqa: BLE001 - an unknown model simply has no price
        return None


def _image_price(table: dict[str, Any], model: str, usage: dict[str, dict[str, int]]) -> float:
    """What photos add to the token price, from LiteLLM's image fields where its table has them: a price per
    image (``input_cost_per_image``), and image tokens at their own rate (``input_cost_per_image_token``) instead
    of the text rate. OpenAI-style servers count a photo's tokens in ``prompt_tokens``, priced already."""
    info = table.get(model) or table.get(model.split("/", 1)[-1]) or {}
    images = sum(u.get("images", 0) for u in usage.values())
    image_tokens = sum(u.get("image_tokens", 0) for u in usage.values())
    extra = images * float(info.get("input_cost_per_image") or 0.0)
    if info.get("input_cost_per_image_token") is not None:
        extra += image_tokens * (float(info["input_cost_per_image_token"]) - float(info.get("input_cost_per_token") or 0))
    return extra


def _as_paid(usage: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Usage as if nothing came from the VLM answer cache (its hits carry ``cached_*``: what they cost when paid):
    a dry run's sample may have been asked before, the rest of the run not."""
    out = {}
    for step, u in usage.items():
        v = {k: n for k, n in u.items() if not k.startswith("cached_") and k != "cache_hits"}
        hits = u.get("cache_hits", 0)
        for key, n in u.items():
            if key.startswith("cached_"):
                v[key[len("cached_"):]] = v.get(key[len("cached_"):], 0) + n
        if hits:
            v["calls"] = v.get("calls", 0) + hits
            if "cached_image_tokens" in u:  # a photo step: each answer was one photo sent
                v["images"] = v.get("images", 0) + hits
        out[step] = v
    return out


def label_run(input: str | os.PathLike[str], labels: str | os.PathLike[str] | LabelVocab | Sequence[str] | None, *,
              out: str | os.PathLike[str] | None = None, settings: LabelSettings | None = None, fresh: bool = False,
              show_progress: bool = False, engine: str = "local", address: str | None = None,
              workers: int | None = None, threads_per_worker: int | None = None, **overrides: Any) -> RunSummary:
    """Label a dataset into a resumable run directory (see the module docstring).

    Args:
        input: ``.jsonl``, ``.csv``/``.tsv``, ``.parquet``, ``.txt`` (one item per line), a
            saved Hugging Face dataset folder, a folder of images, an image file, or a
            ``.jsonl`` with an ``image`` field.
        labels: the vocabulary (:class:`~zsl.vocab.LabelVocab`, a list, or a file: ``.txt``,
            ``.csv``/``.jsonl`` with ``description``/``prior``/``parent`` columns). Blank lines
            and repeated labels in a file are dropped and reported. May be None with ``model``
            (the student's own labels).
        out: the run directory (default: ``<input>.zsl/`` beside the input).
        settings: how to label (:class:`~zsl.runs.labeller.LabelSettings`: ``k``; the text program's
            ``lm``, ``encoder``, ``label_kind``, ``infer``, ``rank``, ``rank_top``, ``program``,
            ``label_descriptions``; remote LMs' ``concurrency``, ``timeout``, ``retries``; images'
            ``image_backend``, ``image_kwargs``; a student ``model``; ``text_field``, ``id_field``
            and ``chunk_size``). Every setting that changes the outputs is part of the manifest.
            A local LLM always runs one item at a time, whatever ``concurrency`` says. Each row's
            ``labels`` is the set the settings' rule chooses (``rule``, ``k``, ``margin``, ``z``,
            ``threshold``, ``min_labels``, ``max_labels``; by default the thresholds of a fitted
            ``program`` or a student, else :data:`zsl.scoring.DEFAULT_SET_RULE`), recorded in the manifest.
        fresh: discard an earlier run's progress in ``out`` instead of resuming it.
        show_progress: a progress bar with items/s and ETA on stderr.
        engine: ``"local"`` (this process labels every chunk) or ``"ray"`` (Ray workers label
            them, see :mod:`zsl.runs.ray_engine`; ``pip install 'zsl[ray]'``). Both write the same
            files, and a run started under one resumes under the other.
        address: with ``engine="ray"``: a running Ray cluster (``host:port`` from ``ray start
            --head``, or ``auto``); None starts Ray on this machine.
        workers: with ``engine="ray"``: workers, each loading the models once (default: the
            cluster's CPUs // ``threads_per_worker``).
        threads_per_worker: with ``engine="ray"``: CPU threads per worker (default 1).
        **overrides: any setting by name (``encoder="hashing", k=3``), over ``settings``.

    Returns:
        A :class:`RunSummary`.

    Raises:
        InputError: bad arguments or an unknown setting, an input with no usable record, or an
            ``out`` holding a different run (the message lists what changed).
    """
    opts = run_settings(settings, overrides)
    _check_engine(engine, address, workers, threads_per_worker)
    run = open_run(input, labels, opts)
    chunk_size = opts.chunk_size
    if chunk_size is None:
        chunk_size = 64 if run.fmt == "images" else (25 if run.labeller.uses_lm else 1000)
    t_prep = time.perf_counter()
    pivot_note = _prepare(run, out, fresh, show_progress)
    t_prep = time.perf_counter() - t_prep
    settings_record = {**run.labeller.config(), "chunk_size": chunk_size}
    input_path = run.input_path
    size = input_path.stat().st_size if input_path.is_file() else None
    fp, total = fingerprint_and_count(input_path, run.fmt)  # one read for both; the count feeds the progress bar
    records = _nonempty_records(run, total)
    rd = run.open_dir(settings_record, fp, out, fresh)
    try:
        for w in run.warnings:
            rd.log(f"warning: {w}")
        if pivot_note:
            rd.log(pivot_note)
        if run.state == "complete":
            return reopen_summary(RunSummary, rd.path)
        done = rd.done_chunks()
        write_plan(rd.path, run.manifest, total, chunk_size)
        rd.log(f"{'resume' if run.state == 'resume' else 'start'}: {input_path} -> {rd.path} "
               f"({len(done)} chunk(s) already done; concurrency {run.labeller.concurrency}; engine {engine})")
        rd.chunks.mkdir(mode=0o700, exist_ok=True)
        engine_info = _label_chunks(run, records, done, total, chunk_size, show_progress,
                                    {"engine": engine, "address": address, "workers": workers,
                                     "threads": threads_per_worker})
        engine_info["wall_seconds"] = round(engine_info["wall_seconds"] + t_prep, 3)  # the pivot's items too
        try:
            check_unchanged(input_path, run.manifest, size)
        except InputError as exc:
            rd.log(f"error: {exc}")
            raise
        summary = _merge(run, settings_record, len(done), engine_info)
        rd.log(f"done: {summary.labelled} labelled, {summary.skipped} skipped, {summary.seconds:.1f}s")
        return summary
    finally:
        rd.unlock()


def _label_chunks(run: Run, records: Iterator[Item | BadRow], done: set[int], total: int | None, chunk_size: int,
                  show_progress: bool, eng: dict[str, Any]) -> dict[str, Any]:
    """Label every chunk not on disk yet (and retry the failed items of those that are) with the local or
    the Ray engine; returns the engine's part of the summary."""
    from zsl.util.progress import Heartbeat, progress_bar

    rd = run.rd
    assert rd is not None
    t0 = time.perf_counter()
    if eng["engine"] == "ray":
        from zsl.runs.ray_engine import RayChunks, prepare_shared

        runner: Any = RayChunks(rd, run.fmt, run.vocab, prepare_shared(run.fmt, run.vocab, run.opts),
                                address=eng["address"], workers=eng["workers"], threads=eng["threads"], log=rd.log)
        rd.log(f"ray start-up: {runner.startup_seconds:.1f}s")
    else:
        runner = _LocalChunks(rd, run.labeller)
    # the chunks whose items the driver scored already (the catch-all pivot's first items) are labelled here
    # from those answers: a worker would ask the LLM for them again
    here = _LocalChunks(rd, run.labeller) if eng["engine"] == "ray" else None
    seen = _IdSet()
    initial = min(total or 0, len(done) * chunk_size)
    beat = Heartbeat(rd.log, total=total, what="labelling", initial=initial)  # log.txt is never silent for long
    try:
        with progress_bar(total=total, desc="labelling", unit="item", disable=not show_progress,
                          initial=initial) as bar:

            def tick(n: int) -> None:
                bar.update(n)
                beat.update(n)
                beat.beat()

            for ci, chunk in enumerate(_chunks(records, chunk_size)):
                dup_reasons = _check_ids(chunk, seen)
                if ci in done:
                    runner.retry(ci, chunk, tick)
                elif here is not None and run.labeller.holds_answers(r.value for r in chunk if isinstance(r, Item)):
                    here.label(ci, chunk, dup_reasons, tick)
                else:
                    runner.label(ci, chunk, dup_reasons, tick)
            runner.wait(tick)
    except KeyboardInterrupt:
        rd.log("interrupted: finished chunks are kept; run the same command to resume")
        raise
    finally:
        runner.close()
    wall = time.perf_counter() - t0
    return {"engine": eng["engine"], "workers": getattr(runner, "workers", 1), "wall_seconds": round(wall, 3),
            "startup_seconds": round(getattr(runner, "startup_seconds", 0.0), 3)}


def _check_engine(engine: str, address: str | None, workers: int | None, threads: int | None) -> None:
    if engine not in ("local", "ray"):
        raise InputError(f"Unknown engine {engine!r}. Expected 'local' (this process) or 'ray' (Ray workers).")
    if engine == "local":
        given = [name for name, v in (("address", address), ("workers", workers), ("threads_per_worker", threads))
                 if v is not None]
        if given:
            raise InputError(f"{', '.join(given)} only apply to engine='ray' (--engine ray); the local engine labels "
                             "in this process. Fix: add --engine ray, or leave them out.")


class _LocalChunks:
    """The local engine: this process labels each chunk as it is read (see :class:`zsl.runs.ray_engine.RayChunks`)."""

    workers = 1
    startup_seconds = 0.0

    def __init__(self, rd: RunDir, labeller: Any):
        self.rd, self.labeller = rd, labeller

    def label(self, ci: int, chunk: list[Item | BadRow], dup: dict[int, str], tick: Callable[[int], None]) -> None:
        label_chunk(self.rd, ci, chunk, dup, self.labeller, tick)

    def retry(self, ci: int, chunk: list[Item | BadRow], tick: Callable[[int], None]) -> None:
        retry_chunk(self.rd, ci, chunk, self.labeller)

    def wait(self, tick: Callable[[int], None]) -> None:
        pass

    def close(self) -> None:
        pass


class _IdSet:
    """Set of 64-bit id hashes that stays small on millions of ids.

    A Python set costs about 60 bytes per entry; here recent hashes sit in a small set and
    are merged into one sorted int64 array (8 bytes per id) every ``merge_at`` additions.
    """

    def __init__(self, merge_at: int = 1 << 16) -> None:
        self._sorted = np.empty(0, dtype=np.int64)
        self._recent: set[int] = set()
        self._merge_at = merge_at

    def __len__(self) -> int:
        return self._sorted.size + len(self._recent)

    def add(self, h: int) -> bool:
        """Add ``h``; False if it was already there."""
        if h in self._recent:
            return False
        if self._sorted.size:
            i = int(np.searchsorted(self._sorted, h))
            if i < self._sorted.size and int(self._sorted[i]) == h:
                return False
        self._recent.add(h)
        if len(self._recent) >= self._merge_at:
            recent = np.fromiter(self._recent, dtype=np.int64, count=len(self._recent))
            self._sorted = np.sort(np.concatenate([self._sorted, recent]), kind="stable")
            self._recent = set()
        return True


def _check_ids(chunk: list[Item | BadRow], seen: _IdSet) -> dict[int, str]:
    """Positions in ``chunk`` whose id repeats an earlier one (ids are kept as 64-bit hashes)."""
    dup: dict[int, str] = {}
    for pos, rec in enumerate(chunk):
        if isinstance(rec, Item) and not seen.add(hash(rec.id)):
            dup[pos] = f"duplicate id {rec.id!r}: an earlier record has the same id (ids must be unique; an integer " \
                       "id counts as its decimal string and a row without an id gets its line number; the first " \
                       "one is kept)"
    return dup


def _merge(run: Run, settings: dict[str, Any], resumed: int, engine: dict[str, Any]) -> RunSummary:
    rd, vocab, labeller = run.rd, run.vocab, run.labeller
    assert rd is not None
    chunk_ids = sorted(rd.done_chunks())
    if chunk_ids != list(range(len(chunk_ids))):
        missing = sorted(set(range(max(chunk_ids) + 1)) - set(chunk_ids)) if chunk_ids else []
        raise ZslError(f"{rd.path}: chunks {missing[:10]} are missing although later ones exist; the input may have "
                       "changed while the run was stopped. Fix: rerun with --fresh.")
    totals = {"records": 0, "labelled": 0, "skipped": 0, "seconds": 0.0}
    usage: dict[str, dict[str, int]] = {}
    hits = {"rp": 0.0, "p1": 0.0, "n": 0}
    k = settings["k"]

    def rows() -> Iterator[str]:
        # Row lines are copied verbatim (no parse) unless they carry gold labels to score.
        for ci in chunk_ids:
            with rd.chunk_path(ci).open(encoding="utf-8") as fh:
                for line in fh:
                    if line.startswith('{"id"'):
                        if '"gold"' in line:
                            _score(json.loads(line), vocab, k, hits)
                        yield line
                    elif line.startswith('{"stats"'):
                        st = json.loads(line)["stats"]
                        for key in totals:
                            totals[key] += st[key]
                        add_usage(usage, st.get("usage") or {})

    retryable = 0

    def errors() -> Iterator[str]:
        nonlocal retryable
        for ci in chunk_ids:
            with rd.chunk_path(ci).open(encoding="utf-8") as fh:
                for line in fh:
                    if line.startswith('{"error"'):
                        err = json.loads(line)["error"]
                        retryable += bool(err.get("retryable"))
                        yield json.dumps(err, ensure_ascii=False) + "\n"

    run.write_outputs(rows(), errors(), settings, lambda: totals["labelled"])
    labelled = int(totals["labelled"])
    summary = RunSummary(
        run_dir=str(rd.path), labels=str(rd.path / LABELS), errors=str(rd.path / ERRORS), total=int(totals["records"]),
        labelled=labelled, skipped=int(totals["skipped"]), seconds=round(float(totals["seconds"]), 3),
        items_per_second=round(labelled / totals["seconds"], 3) if totals["seconds"] > 0 else 0.0,
        resumed_chunks=resumed, tokens=usage, cost_usd=_price(labeller.lm_name, usage) if labeller.remote else None,
        eval={"rp_at_k": hits["rp"] / hits["n"], "p_at_1": hits["p1"] / hits["n"], "n": hits["n"], "k": k}
        if hits["n"] else None, warnings=run.warnings, retryable=retryable, **engine)
    run.finish(summary, "{n} item(s) failed on transient errors: chunks kept; rerun the same command to retry them")
    if not retryable:
        rd.remove_chunks()
    return summary


def _score(row: dict[str, Any], vocab: LabelVocab, k: int, hits: dict[str, Any]) -> None:
    """Add a row's RP@k and P@1 against its gold labels to ``hits`` (rows whose gold lies outside the vocabulary
    are not scored). Counted here, row by row, because the merge streams: zsl.evaluation.metrics wants
    whole (items, labels) matrices."""
    gold = row.get("gold")
    if gold and all(g in vocab for g in gold):
        ranked = list(row.get("top_scores") or row["labels"])  # the ranking, best first (labels: the rule's set)
        got = set(ranked[:k])
        hits["rp"] += len(got & set(gold)) / min(k, len(gold))
        hits["p1"] += float(bool(ranked) and ranked[0] in gold)
        hits["n"] += 1


def estimate_run(input: str | os.PathLike[str], labels: str | os.PathLike[str] | LabelVocab | Sequence[str], *,
                 sample: int = 5, settings: LabelSettings | None = None, **overrides: Any) -> dict[str, Any]:
    """Label the first ``sample`` items (nothing is written) and extrapolate to the whole input.

    Args:
        input, labels, settings, overrides: as for :func:`label_run` (``out``, ``fresh``,
            ``show_progress`` and ``chunk_size`` are ignored).
        sample: items to label for the estimate.

    Returns:
        ``{"sampled", "total", "seconds_per_item", "est_seconds", "tokens_per_item",
        "est_tokens", "est_cost_usd", "lm", "cached_answers", "skipped"}``; ``est_cost_usd`` is None for
        local or unknown-price models (photos add LiteLLM's image prices where it has them). The
        estimate divides by the concurrency for remote LMs. Answers of a VLM found in its cache
        (``cached_answers``) are counted at what they cost when paid, so the estimate is that of a
        run asking every photo; ``skipped``: why sampled items could not be labelled.
    """
    if sample < 1:
        raise InputError(f"sample must be >= 1, got {sample}")
    for ignored in ("out", "fresh", "show_progress", "chunk_size"):
        overrides.pop(ignored, None)
    run = open_run(input, labels, run_settings(settings, overrides))
    input_path, fmt, labeller = run.input_path, run.fmt, run.labeller
    records = _records(input_path, fmt, run.opts.text_field, run.opts.id_field)
    items: list[Item] = []
    for rec in records:
        if isinstance(rec, Item):
            items.append(rec)
            if len(items) == sample:
                break
    if not items:
        raise InputError(f"No usable item in {input_path} to estimate from.")
    total = count_records(input_path) if fmt != "images" else len(list(_records(input_path, fmt, "text", "id")))
    t0 = time.perf_counter()
    from zsl.util.retry import Skipped

    outputs, raw = labeller.label(items, lambda n: None)
    per_item = (time.perf_counter() - t0) / len(items)
    hits = sum(u.get("cache_hits", 0) for u in raw.values())
    usage = _as_paid(raw)
    n = total or len(items)
    scale = n / len(items)
    est_usage = {s: {key: round(v * scale) for key, v in u.items()} for s, u in usage.items()}
    return {
        "sampled": len(items), "total": total, "seconds_per_item": per_item,
        "est_seconds": per_item * n / (labeller.concurrency if labeller.remote else 1),
        "tokens_per_item": {s: {key: v / len(items) for key, v in u.items()} for s, u in usage.items()},
        "est_tokens": est_usage, "est_cost_usd": _price(labeller.lm_name, est_usage) if labeller.remote else None,
        "lm": labeller.lm_name, "cached_answers": hits,
        "skipped": [o.reason for o in outputs if isinstance(o, Skipped)],
    }
