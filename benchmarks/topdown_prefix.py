"""Top-down Rank with the text kept in the scoring context: what it saves, on HWV with the embedded LLM.

A top-down search (``Tagger(..., tree_search="top-down")``) asks Rank about one document once per
level and kept branch, each time with the same text. llama.cpp's scoring context keeps the last
call's prompt prefix when the next call's is the same (:meth:`zsl.models.llama.LlamaRuntime.yes_no_logodds`),
so only the candidates are evaluated. This compares that with evaluating the prefix on every call
(the behaviour before), each arm in its own process on the same documents, with every answer cache
off (``ZSL_LM_CACHE=0``: Infer and Rank both run in both arms, as on documents never seen).

    python -m benchmarks.topdown_prefix [--docs 3] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import ROOT

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hwv"
ARMS = ("kept", "cleared")


def arm(name: str, data: Path, start: int, n_docs: int) -> dict[str, float]:
    """One arm in this process: ``kept`` (zsl's code) or ``cleared`` (the prefix evaluated on every call)."""
    from benchmarks.hierarchy import load, slice_positions
    from zsl import Tagger
    from zsl.models.lm import get_lm

    vocab, docs = load(data)
    picked = slice_positions(len(docs), size=len(docs))[start:start + n_docs + 1]  # the first one warms up
    texts = [docs[i]["text"] for i in picked]
    llm = get_lm("qwen2.5-coder-1.5b")
    llm._yes_no_cache = lambda: None  # every yes/no question reaches the model (ZSL_LM_CACHE=0 says so too)
    if name == "cleared":
        _clear_every_call()
    tagger = Tagger(vocab, lm=llm, label_kind="topics", tree_search="top-down")
    tagger.score(texts[:1])  # model, encoder and label index loaded; not timed
    scorer = llm.scorer
    t0, tokens = time.perf_counter(), scorer.tokens_evaluated
    scores = tagger.score(texts[1:])
    seconds = time.perf_counter() - t0
    return {"arm": name, "docs": n_docs, "s_per_doc": seconds / n_docs,
            "tokens_per_doc": (scorer.tokens_evaluated - tokens) / n_docs, "checksum": float(scores.sum())}


def _clear_every_call() -> None:
    from zsl.models.llama import LlamaRuntime, import_llama

    def clear(self, mem, pre):  # what _score_batched did before: a clean context, the whole prefix again
        import_llama().llama_memory_clear(mem, True)
        return 0

    LlamaRuntime._keep_score_prefix = clear


def render(results: list[dict], command: str, machine_line: str) -> str:
    kept, cleared = (next(r for r in results if r["arm"] == a) for a in ARMS)
    same = "identical" if kept["checksum"] == cleared["checksum"] else "DIFFERENT"
    return "\n".join([
        (f"`{command}` on {machine_line}; the embedded Qwen2.5-1.5B (llama.cpp), HWV's 1,186-label tree, "
        f"top-down with beam 3, {kept['docs']} validation documents after one untimed warm-up, each arm in its own "
        "process one after the other, nothing else running; every answer cache off (Infer and Rank run in both arms)."),
        "",
        "| scoring context | s/doc (Infer + Rank) | yes/no tokens evaluated per doc |",
        "|---|---:|---:|",
        f"| the prefix evaluated on every call (before) | {cleared['s_per_doc']:.1f} | {cleared['tokens_per_doc']:,.0f} |",
        f"| the same prefix kept between calls (zsl now) | {kept['s_per_doc']:.1f} | {kept['tokens_per_doc']:,.0f} |",
        "",
        (f"Speed-up {cleared['s_per_doc'] / kept['s_per_doc']:.1f}x; the scores of both arms are {same} "
        "(a kept prefix holds the very cells a fresh evaluation computes). A flat search asks Rank once per "
        "document, so it gains nothing here."),
    ])


def main(argv: list[str] | None = None) -> None:
    from benchmarks import machine_line, write_section

    p = argparse.ArgumentParser(prog="python -m benchmarks.topdown_prefix", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="the hwv folder (hwv_labels.jsonl, hwv_val.jsonl)")
    p.add_argument("--docs", type=int, default=3, help="documents timed per arm (default 3)")
    p.add_argument("--start", type=int, default=200, help="where in the seeded order of hwv_val to start")
    p.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # one arm, in a child process
    p.add_argument("--write", action="store_true", help="update this section of BENCHMARKS.md")
    args = p.parse_args(argv)
    if args.arm:
        print(json.dumps(arm(args.arm, Path(args.data), args.start, args.docs)))
        return
    results = []
    for name in ARMS:
        out = subprocess.run([sys.executable, "-m", "benchmarks.topdown_prefix", "--arm", name, "--data", args.data,
                              "--docs", str(args.docs), "--start", str(args.start)],
                             cwd=ROOT, check=True, capture_output=True, text=True,
                             env={**os.environ, "ZSL_LM_CACHE": "0"}).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(results[-1], file=sys.stderr, flush=True)
    command = f"python -m benchmarks.topdown_prefix --docs {args.docs}" + (
        f" --start {args.start}" if args.start != 200 else "")
    block = render(results, command, machine_line())
    print(block)
    if args.write:
        write_section("topdown-prefix", block, heading="Top-down Rank: the document's text evaluated once (issue #29)")


if __name__ == "__main__":
    main()
