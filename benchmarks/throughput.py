"""Throughput of the labelling core (issue #12): every path against the raw encoder, in one run.

On N GoEmotions training texts (28 labels), items/s of

* the raw MiniLM encoder (``encoder.encode(texts)``, model already loaded): the reference;
* the Python API, ``Tagger(vocab, infer=False, rank=False).predict_proba(texts)``: in this
  process (building the tagger and loading its encoder included) and as a whole process
  (``python -c``: interpreter, imports, model loading);
* ``zsl label --no-infer --no-rank`` as a whole process;
* ``zsl label --model student/`` as a whole process, with a student first distilled
  (``zsl distill``, timed apart) from the retrieval-only run's ``labels.jsonl``.

The target is >= 70% of the raw encoder rate for each. The raw rate is measured at the start
and at the end and averaged, so a change in the machine's load during the run shows.

    python -m benchmarks.throughput [--items 3000] [--write]

``--write`` puts the table into BENCHMARKS.md between ``<!-- throughput:start -->`` and
``<!-- throughput:end -->``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import ROOT, checkout_file

DATA = ROOT.parent / "shared" / "data" / "goemotions"
START, END = "<!-- throughput:start -->", "<!-- throughput:end -->"
HEADING = "## Throughput of the labelling core (issue #12)"
TARGET = 0.70


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def _texts(n: int, data: Path) -> list[str]:
    out = []
    with (data / "goemotions_train.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            out.append(json.loads(line)["text"])
            if len(out) == n:
                break
    return out


def _run(cmd: list[str], env: dict[str, str]) -> float:
    """Wall seconds of a whole process (it must succeed)."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds


def _raw_encoder_seconds(texts: list[str], encoder: str) -> float:
    from zsl.models.encoders import get_encoder

    enc = get_encoder(encoder)
    enc.encode(texts[:16])  # loads the model: not part of the raw rate
    t0 = time.perf_counter()
    enc.encode(texts)
    return time.perf_counter() - t0


def measure(n_items: int, data: Path, encoder: str = "minilm-l6") -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="zsl-bench-throughput-"))
    # a cold embedding cache for every path; the encoder by $ZSL_ENCODER, as a user would choose it
    env = {**os.environ, "ZSL_HOME": str(tmp / "home"), "ZSL_PROGRESS": "0", "ZSL_ENCODER": encoder}
    os.environ.update({k: env[k] for k in ("ZSL_HOME", "ZSL_PROGRESS", "ZSL_ENCODER")})
    texts = _texts(n_items, data)
    labels = data / "goemotions_labels.txt"
    items = tmp / "items.jsonl"
    items.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts)),
                     encoding="utf-8")
    py = sys.executable
    zsl = [py, "-m", "zsl.cli"]
    res: dict[str, Any] = {"items": len(texts), "cpus": os.cpu_count(), "encoder": encoder}

    log("raw encoder ...")
    raw_first = _raw_encoder_seconds(texts, encoder)
    log(f"  {len(texts) / raw_first:.0f} sentences/s")

    log("Tagger.predict_proba in this process ...")
    from zsl.text.tagger import Tagger
    from zsl.vocab import LabelVocab

    t0 = time.perf_counter()
    proba = Tagger(LabelVocab.from_file(labels), infer=False, rank=False).predict_proba(texts)
    res["api_in_process_s"] = time.perf_counter() - t0
    assert proba.shape == (len(texts), 28)

    log("Tagger.predict_proba as a whole process ...")
    code = ("import json, sys\nfrom zsl import LabelVocab, Tagger\n"
            "texts = [json.loads(x)['text'] for x in open(sys.argv[1], encoding='utf-8')]\n"
            "p = Tagger(LabelVocab.from_file(sys.argv[2]), infer=False, rank=False).predict_proba(texts)\n"
            "assert p.shape[0] == len(texts)\n")
    res["api_process_s"] = _run([py, "-c", code, str(items), str(labels)], env)

    log("zsl label --no-infer --no-rank ...")
    res["cli_retrieval_s"] = _run([*zsl, "label", str(items), "--labels", str(labels), "--no-infer", "--no-rank",
                                   "-k", "3", "--out", str(tmp / "retrieval")], env)

    log("zsl distill (not a target) ...")
    res["distill_s"] = _run([*zsl, "distill", str(tmp / "retrieval" / "labels.jsonl"), "--out", str(tmp / "student")],
                            env)

    log("zsl label --model student/ ...")
    res["cli_student_s"] = _run([*zsl, "label", str(items), "--model", str(tmp / "student"), "-k", "3",
                                 "--out", str(tmp / "student_run")], env)

    log("raw encoder again ...")
    raw_last = _raw_encoder_seconds(texts, encoder)
    res["raw_s"] = [raw_first, raw_last]
    res["raw_rate"] = len(texts) / ((raw_first + raw_last) / 2)
    meta = json.loads((tmp / "retrieval" / "labels.jsonl.meta.json").read_text(encoding="utf-8"))
    res["top_scores"] = meta["rows"]["top_scores"]
    return res


def table(res: dict[str, Any], command: str) -> str:
    n, raw = res["items"], res["raw_rate"]

    def row(what: str, seconds: float) -> str:
        rate = n / seconds
        return f"| {what} | {seconds:.1f} | {rate:,.0f} | **{rate / raw:.0%}** |"

    r1, r2 = res["raw_s"]
    intro = (f"{n:,} GoEmotions training texts, 28 labels, encoder {res['encoder']} (`{command}`, {res['cpus']} CPU "
             "cores). The ratio to the raw encoder is the headline: another long LLM benchmark shared the cores "
             "during this run, so the absolute rates are low and noisy.")
    raw_row = (f"| raw encoder `encoder.encode(texts)` (model loaded; start / end of the run: {n / r1:,.0f} / "
               f"{n / r2:,.0f} sentences/s) | {(r1 + r2) / 2:.1f} | {raw:,.0f} | 100% |")
    outro = (f"Target: each path >= {TARGET:.0%} of the raw encoder rate, whole process included. The student was "
             "distilled from the retrieval-only run's `labels.jsonl` (soft targets from its `top_scores`, "
             f"{res['top_scores']} per row) by `zsl distill` in {res['distill_s']:.1f} s (not a target).")
    lines = [
        START, "", intro, "",
        "| what | seconds | items/s | vs raw encoder |", "|---|---:|---:|---:|", raw_row,
        row("`Tagger(vocab, infer=False, rank=False).predict_proba(texts)` in a process that has the encoder "
            "loaded (building the tagger and loading its own encoder included)", res["api_in_process_s"]),
        row("the same as a whole process (`python -c`: interpreter, imports, model loading)", res["api_process_s"]),
        row("`zsl label --no-infer --no-rank -k 3` (whole process)", res["cli_retrieval_s"]),
        row("`zsl label --model student/ -k 3` (whole process)", res["cli_student_s"]),
        "", outro, "", END,
    ]
    return "\n".join(lines)


def _write(text: str) -> None:
    path = checkout_file("BENCHMARKS.md")
    body = path.read_text(encoding="utf-8")
    if START in body:
        body = body[: body.index(START)] + text + body[body.index(END) + len(END):]
    else:
        body = body.rstrip() + f"\n\n{HEADING}\n\n" + text + "\n"
    path.write_text(body, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=3000)
    ap.add_argument("--data", type=Path, default=DATA, help="folder with goemotions_train.jsonl and _labels.txt")
    ap.add_argument("--encoder", default="minilm-l6", help="hashing: a quick check of the script itself")
    ap.add_argument("--write", action="store_true", help="put the table into BENCHMARKS.md")
    args = ap.parse_args(argv)
    res = measure(args.items, args.data, args.encoder)
    command = "python -m benchmarks.throughput" + (f" --items {args.items}" if args.items != 3000 else "")
    command += f" --encoder {args.encoder}" if args.encoder != "minilm-l6" else ""
    text = table(res, command)
    print(text)
    print(json.dumps(res), file=sys.stderr)
    if args.write:
        _write(text)


if __name__ == "__main__":
    main()
