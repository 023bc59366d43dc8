"""Benchmarks of the labelling-run machinery (issue #6): overhead and memory.

    python -m benchmarks.runs overhead [--items 10000] [--repeats 3]   # needs ../shared/data/goemotions
    python -m benchmarks.runs memory [--lines 10000 100000 1000000]
    python -m benchmarks.runs all --write                              # both, table into BENCHMARKS.md

*overhead*: a retrieve-only run (MiniLM, GoEmotions' 28 labels) over the first N GoEmotions
training texts through :func:`zsl.runs.label.label_run` (chunks, fsync, manifest, merge, progress
bar) against a bare loop doing the same labelling work (stream, batch-encode, score, top-k,
one JSONL write at the end). The two alternate, and medians are compared in the same run.

*memory*: peak RSS of ``label_run`` on generated JSON Lines inputs of growing size (retrieve
only with the dependency-free hashing encoder, so the run machinery dominates). Each size
runs in a fresh subprocess. Flat memory means the input is streamed, never loaded whole.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stderr
from pathlib import Path

from benchmarks import ROOT, checkout_file

DATA = ROOT.parent / "shared" / "data"
START, END = "<!-- runs:start -->", "<!-- runs:end -->"


def _bare_loop(items_path: Path, vocab, encoder, out: Path, k: int = 3, batch: int = 1000) -> int:
    """The same labelling work with no run machinery: the baseline."""
    from zsl.base import top_k
    from zsl.data.files import Item
    from zsl.data.records import iter_records
    from zsl.text.tagger import Tagger

    program = Tagger(vocab, encoder=encoder, infer=False, rank=False).program_
    rows = []
    buf: list[Item] = []

    def flush() -> None:
        scores = program.retrieve_many([it.text for it in buf])
        vals, idx = top_k(scores, k)
        for i, it in enumerate(buf):
            rows.append({"id": it.id, "text": it.text, "labels": [vocab[int(j)] for j in idx[i]],
                         "scores": [round(float(v), 4) for v in vals[i]]})
        buf.clear()

    for rec in iter_records(items_path):
        if isinstance(rec, Item):
            buf.append(rec)
            if len(buf) == batch:
                flush()
    if buf:
        flush()
    with out.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    return len(rows)


def overhead(n_items: int = 10_000, repeats: int = 3, encoder_name: str = "minilm-l6") -> dict:
    from zsl.models.encoders import get_encoder
    from zsl.runs.label import label_run
    from zsl.vocab import LabelVocab

    src = DATA / "goemotions" / "goemotions_train.jsonl"
    vocab = LabelVocab.from_file(DATA / "goemotions" / "goemotions_labels.txt")
    encoder = get_encoder(encoder_name)
    encoder.encode(["warm up"])
    tmp = Path(tempfile.mkdtemp(prefix="zsl-bench-runs-"))
    items = tmp / "items.jsonl"
    with src.open(encoding="utf-8") as fin, items.open("w", encoding="utf-8") as fout:
        for i, line in enumerate(fin):
            if i == n_items:
                break
            obj = json.loads(line)
            fout.write(json.dumps({"id": str(i), "text": obj["text"]}) + "\n")
    bare, run = [], []
    os.environ["ZSL_PROGRESS"] = "1"  # the bar is part of what a user pays for
    for r in range(repeats):
        t = time.perf_counter()
        n = _bare_loop(items, vocab, encoder, tmp / f"bare{r}.jsonl")
        bare.append(time.perf_counter() - t)
        t = time.perf_counter()
        with redirect_stderr(io.StringIO()):
            s = label_run(items, vocab, out=tmp / f"run{r}", encoder=encoder, infer=False, rank=False, k=3,
                          show_progress=True)
        run.append(time.perf_counter() - t)
        assert s.labelled == n
        print(f"  repeat {r + 1}: bare loop {bare[-1]:.1f}s, label_run {run[-1]:.1f}s", flush=True)
    mb, mr = statistics.median(bare), statistics.median(run)
    return {"encoder": encoder_name, "items": n_items, "bare_median_s": mb, "run_median_s": mr, "overhead_pct": 100 * (mr / mb - 1),
            "bare_s": bare, "run_s": run}


def _child_memory(path: str, vocab_path: str, out: str) -> None:
    from zsl.runs.label import label_run

    t = time.perf_counter()
    s = label_run(path, vocab_path, out=out, encoder="hashing", infer=False, rank=False, k=3)
    print(json.dumps({"labelled": s.labelled, "seconds": time.perf_counter() - t,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def memory(sizes: list[int]) -> list[dict]:
    tmp = Path(tempfile.mkdtemp(prefix="zsl-bench-mem-"))
    vocab = DATA / "goemotions" / "goemotions_labels.txt"
    if not vocab.is_file():
        vocab = tmp / "labels.txt"
        vocab.write_text("\n".join(f"topic {i}" for i in range(28)) + "\n", encoding="utf-8")
    rng = random.Random(0)
    words = ["the", "a", "storm", "goal", "match", "vote", "rain", "pasta", "song", "guitar", "team", "election", "oven", "wind", "forecast"]
    results = []
    for n in sizes:
        path = tmp / f"items_{n}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for i in range(n):
                fh.write(json.dumps({"id": f"x{i}", "text": " ".join(rng.choices(words, k=12))}) + "\n")
        proc = subprocess.run([sys.executable, "-m", "benchmarks.runs", "_child", str(path), str(vocab),
                               str(tmp / f"run_{n}")], capture_output=True, text=True, check=True,
                              cwd=ROOT)  # -m benchmarks.runs resolves from the checkout
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res.update(lines=n, input_mb=path.stat().st_size / 1e6)
        results.append(res)
        print(f"  {n:>9,} lines ({res['input_mb']:.0f} MB): peak RSS {res['peak_rss_mb']:.0f} MB, "
              f"{res['seconds']:.1f}s", flush=True)
        path.unlink()
    return results


def _table(ov: dict | None, mem: list[dict] | None) -> str:
    lines = [START, ""]
    if ov:
        lines += [
            (f"Overhead of the run machinery, retrieve-only ({ov['encoder']} encoder) over {ov['items']:,} "
             f"GoEmotions texts (28 labels), medians of {len(ov['run_s'])} alternating repeats "
             f"(`python -m benchmarks.runs overhead --encoder {ov['encoder']} --repeats {len(ov['run_s'])}`):"), "",
            "| | median seconds | items/s |", "|---|---|---|",
            (f"| bare loop (same labelling work, one write at the end) | {ov['bare_median_s']:.1f} | "
            f"{ov['items'] / ov['bare_median_s']:.0f} |"),
            (f"| `label_run` (chunks + fsync + manifest + merge + progress bar) | {ov['run_median_s']:.1f} | "
            f"{ov['items'] / ov['run_median_s']:.0f} |"),
            "", f"Overhead: **{ov['overhead_pct']:+.1f}%** (target < 5%).", ""]
    if mem:
        lines += [("Peak memory of `label_run` on generated JSON Lines inputs (retrieve-only, hashing encoder, "
                  "each size in a fresh process; `python -m benchmarks.runs memory`):"), "",
                  "| lines | input size | peak RSS | seconds |", "|---|---|---|---|"]
        lines += [f"| {m['lines']:,} | {m['input_mb']:.0f} MB | {m['peak_rss_mb']:.0f} MB | {m['seconds']:.0f} |"
                  for m in mem]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def _write(table: str) -> None:
    path = checkout_file("BENCHMARKS.md")
    text = path.read_text(encoding="utf-8")
    if START in text:
        text = text[: text.index(START)] + table + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n## Labelling runs (issue #6)\n\n" + table + "\n"
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        _child_memory(*argv[1:4])
        return
    ap = argparse.ArgumentParser(prog="python -m benchmarks.runs", description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["overhead", "memory", "all"])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--encoder", default="minilm-l6",
                    help="hashing = the fastest labelling, so the machinery's share is largest (worst case)")
    ap.add_argument("--lines", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--write", action="store_true", help="put the table into BENCHMARKS.md")
    args = ap.parse_args(argv)
    ov = overhead(args.items, args.repeats, args.encoder) if args.what in ("overhead", "all") else None
    mem = memory(args.lines) if args.what in ("memory", "all") else None
    table = _table(ov, mem)
    print(table)
    if args.write:
        _write(table)


if __name__ == "__main__":
    main()
