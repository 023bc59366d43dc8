"""Benchmark of the Ray engine (issue #16) against the local engine, in the same run.

    python -m benchmarks.ray run                 # needs ../shared/data/goemotions and `pip install 'zsl[ray]'`
    python -m benchmarks.ray report [--write]    # table (and BENCHMARKS.md with --write)
    python -m benchmarks.ray threads             # the local engine: torch's default threads vs one

Two workloads, each labelled by ``zsl label`` in a fresh process per configuration, as a user
would run it:

* **retrieval**: the first 20,000 GoEmotions training texts, its 28 labels, MiniLM, no LLM
  (``--no-infer --no-rank``; chunks of 1,000).
* **llm**: the first 40 of those texts with the full program on the embedded LLM (Infer +
  Rank top 20; chunks of 5, so two workers share the work).

Configurations: the local engine (one process, every core), and Ray with 1 worker x 1 thread
and 2 x 1 (for scaling efficiency), plus 1 x 2 for the LLM (one worker with both cores, as the
local engine has them). For each: labelling time on the clock (the run's ``wall_seconds``: chunks,
models loaded by the workers, merge), Ray's start-up (``startup_seconds``: starting Ray and the
workers, reported apart), the items/s they give, and whether ``labels.jsonl`` is byte-identical
to the local engine's. Records go to ``$ZSL_HOME/bench/ray/results.jsonl``, one line per
configuration; ``run`` skips the ones already there (delete the file to start over).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import ROOT, checkout_file

DATA = ROOT.parent / "shared" / "data" / "goemotions"
START, END = "<!-- ray:start -->", "<!-- ray:end -->"
WORKLOADS = {
    "retrieval": {"items": 20_000, "args": ["--no-infer", "--no-rank", "--chunk-size", "1000"],
                  "configs": (("local", None, None), ("ray", 1, 1), ("ray", 2, 1))},
    "llm": {"items": 40, "args": ["--chunk-size", "5", "--label-kind", "emotions"],
            "configs": (("local", None, None), ("ray", 1, 2), ("ray", 2, 1), ("ray", 1, 1))},
}


def _records_dir(out: str | None) -> Path:
    from zsl.util.paths import subdir

    return Path(out) if out else subdir("bench") / "ray"


def _inputs(folder: Path, n: int) -> tuple[Path, Path]:
    src = DATA / "goemotions_train.jsonl"
    if not src.is_file():
        raise SystemExit(f"missing {src}: the shared data folder must sit beside the repository")
    items = folder / f"goemotions_{n}.jsonl"
    if not items.is_file():
        lines = []
        with src.open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                lines.append(json.dumps({"id": row["id"], "text": row["text"]}, ensure_ascii=False))
                if len(lines) == n:
                    break
        items.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return items, DATA / "goemotions_labels.txt"


def _key(workload: str, engine: str, workers: int | None, threads: int | None) -> str:
    return f"{workload}/{engine}" + (f"/{workers}x{threads}" if engine == "ray" else "")


def _load(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    return {r["key"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if r}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(args: argparse.Namespace) -> None:
    folder = _records_dir(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    results = folder / "results.jsonl"
    done = _load(results)
    for workload in args.workloads:
        spec = WORKLOADS[workload]
        n = args.items if workload == "retrieval" and args.items else spec["items"]
        items, vocab = _inputs(folder, n)
        for engine, workers, threads in spec["configs"]:
            key = _key(workload, engine, workers, threads)
            if key in done:
                print(f"{key}: already measured", file=sys.stderr)
                continue
            out = folder / "runs" / key.replace("/", "_")
            cmd = [sys.executable, "-m", "zsl.cli", "label", str(items), "--labels", str(vocab), "--out", str(out),
                   "--fresh", "-k", "3", *spec["args"]]
            if engine == "ray":
                cmd += ["--engine", "ray", "--workers", str(workers), "--threads-per-worker", str(threads)]
            print(f"{key}: {' '.join(cmd[3:])}", file=sys.stderr)
            t0 = time.perf_counter()
            got = subprocess.run(cmd, capture_output=True, text=True, check=False)
            process = time.perf_counter() - t0
            if got.returncode not in (0, 3):
                raise SystemExit(f"{key} failed ({got.returncode}):\n{got.stderr[-3000:]}")
            s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
            rec = {"key": key, "workload": workload, "engine": engine, "workers": workers or 1,
                   "threads": threads or os.cpu_count(), "items": n, "labelled": s["labelled"],
                   "wall_seconds": s["wall_seconds"], "startup_seconds": s["startup_seconds"],
                   "process_seconds": round(process, 3), "chunk_seconds": s["seconds"],
                   "labels_sha256": _sha(out / "labels.jsonl"), "tokens": s["tokens"],
                   "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
            with results.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            done[key] = rec
            print(f"{key}: {rec['labelled']} items, {rec['wall_seconds']:.1f}s labelling "
                  f"(+{rec['startup_seconds']:.1f}s start-up), process {process:.1f}s", file=sys.stderr)


def _table(recs: dict[str, dict[str, Any]]) -> str:
    out = [("| workload | engine | workers x threads | start-up s | labelling s | items/s | vs local | items/s per "
           "worker | scaling efficiency | labels.jsonl = local's |"),
           "|---|---|---|---|---|---|---|---|---|---|"]
    for workload in WORKLOADS:
        local = recs.get(_key(workload, "local", None, None))
        one = recs.get(_key(workload, "ray", 1, 1))
        for engine, workers, threads in WORKLOADS[workload]["configs"]:
            r = recs.get(_key(workload, engine, workers, threads))
            if r is None:
                continue
            labelling = r["wall_seconds"] - r["startup_seconds"]
            rate = r["labelled"] / labelling if labelling > 0 else float("nan")
            vs = ""
            if local is not None:
                local_rate = local["labelled"] / local["wall_seconds"]
                vs = f"{rate / local_rate:.2f}x"
            eff = ""
            if engine == "ray" and workers and workers > 1 and one is not None:
                one_rate = one["labelled"] / (one["wall_seconds"] - one["startup_seconds"])
                eff = f"{rate / (workers * one_rate):.0%}"
            same = "" if local is None or r is local else ("yes" if r["labels_sha256"] == local["labels_sha256"] else "**no**")
            wt = "1 x all cores" if engine == "local" else f"{workers} x {threads}"
            n = f"{r['items']:,}"
            out.append(f"| {workload} ({n}) | {engine} | {wt} | {r['startup_seconds']:.1f} | {labelling:.1f} | "
                       f"{rate:.2f} | {vs} | {rate / r['workers']:.2f} | {eff} | {same} |")
    return "\n".join(out)


def report(args: argparse.Namespace) -> None:
    recs = _load(_records_dir(args.out) / "results.jsonl")
    if not recs:
        raise SystemExit("no records yet: run `python -m benchmarks.ray run` first")
    table = _table(recs)
    print(table)
    if args.write:
        path = checkout_file("BENCHMARKS.md")
        text = path.read_text(encoding="utf-8")
        if START not in text:
            raise SystemExit(f"BENCHMARKS.md has no {START} ... {END} markers")
        head, rest = text.split(START, 1)
        path.write_text(head + START + "\n" + table + "\n" + END + rest.split(END, 1)[1], encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)


def threads(args: argparse.Namespace) -> None:
    """The local engine with torch's default threads against ``OMP_NUM_THREADS=1``, alternating:
    wall and CPU seconds of the whole ``zsl label`` process (retrieval only)."""
    import resource

    folder = _records_dir(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    items, vocab = _inputs(folder, args.items)
    rows: dict[str, list[tuple[float, float]]] = {"default threads": [], "OMP_NUM_THREADS=1": []}
    for _ in range(args.repeats):
        for name, got in rows.items():
            env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
            if name != "default threads":
                env["OMP_NUM_THREADS"] = "1"
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "zsl.cli", "label", str(items), "--labels", str(vocab), "--out",
                            str(folder / "runs" / "threads"), "--fresh", "-k", "3", "--no-infer", "--no-rank"],
                           env=env, capture_output=True, check=True)
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            got.append((wall, cpu))
            print(f"{name}: {wall:.1f}s wall, {cpu:.1f} CPU-s", file=sys.stderr)
    print(f"`zsl label --no-infer --no-rank` on {args.items:,} GoEmotions texts (MiniLM), medians of "
          f"{args.repeats} alternating repeats (`python -m benchmarks.ray threads --items {args.items} "
          f"--repeats {args.repeats}`):\n")
    print("| torch threads | wall s | CPU s |\n|---|---|---|")
    for name, got in rows.items():
        print(f"| {name} | {statistics.median(w for w, _ in got):.1f} | {statistics.median(c for _, c in got):.1f} |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ray", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="records folder (default: $ZSL_HOME/bench/ray)")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    r.add_argument("--items", type=int, help="texts for the retrieval workload (default 20,000)")
    r.set_defaults(func=run)
    t = sub.add_parser("threads", help="the local engine with torch's default threads vs OMP_NUM_THREADS=1")
    t.add_argument("--items", type=int, default=3000)
    t.add_argument("--repeats", type=int, default=3)
    t.set_defaults(func=threads)
    rep = sub.add_parser("report")
    rep.add_argument("--write", action="store_true", help="put the table into BENCHMARKS.md")
    rep.set_defaults(func=report)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
