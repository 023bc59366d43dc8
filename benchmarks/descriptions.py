"""Do label descriptions help? Reuters-21578 topics and ESCO skills, with and without them.

Reuters labels are terse codes (``acq``, ``earn``, ``dlr``) whose descriptions say what they
mean ("Mergers/Acquisitions"); ESCO skills carry a sentence or two each. For each item the
benchmark records the Infer step's phrases once, then the Rank step's yes/no log-odds over
the top candidates of each setting (descriptions embedded with the labels and shown to Rank,
or bare labels), so both settings are scored from the same Infer answers:

    python -m benchmarks.descriptions run --dataset reuters            # the LLM steps (resumable)
    python -m benchmarks.descriptions run --dataset reuters --no-llm   # retrieval only: nothing to run
    python -m benchmarks.descriptions report [--write]

Data: a seeded 200-article slice of the shared Reuters ModApte train file that nothing is
tuned on (``--n``, ``--seed``), and the ESCO TECH + HOUSE validation sets. Metrics: P@1,
RP@5 and mAP (averaged over items: each item's ranking of the vocabulary).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import ROOT

DATA = ROOT.parent / "shared" / "data"
DATASETS = ("reuters", "esco")
SETTINGS = ("bare", "desc")


def load(dataset: str, n: int, seed: int) -> tuple[Any, list[dict[str, Any]], str]:
    """``(vocab, items, label_kind)``; items are ``{"text", "labels"}`` dicts."""
    from zsl import LabelVocab

    if dataset == "reuters":
        folder = DATA / "reuters21578"
        vocab = LabelVocab.from_file(folder / "reuters21578_labels.tsv")
        rows = [json.loads(x) for x in (folder / "reuters21578_modapte_train.jsonl").read_text().splitlines() if x]
        rows = [r for r in rows if r.get("labels")]
        pick = np.random.default_rng(seed).choice(len(rows), size=min(n, len(rows)), replace=False)
        return vocab, [rows[i] for i in sorted(pick.tolist())], "topics"
    folder = DATA / "esco"
    vocab = LabelVocab.from_file(folder / "esco_skills_vocab.jsonl", priors=folder / "esco_priors.json")
    rows = []
    for split in ("tech_validation", "house_validation"):
        rows += [json.loads(x) for x in (folder / f"esco_{split}.jsonl").read_text().splitlines() if x.strip()]
    return vocab, rows, "skills"


def _program(vocab, kind: str, descriptions: bool, encoder: str | None, *, infer: bool = False, rank: bool = False):
    from zsl.programs.irr import InferRetrieveRank

    from zsl.index import VocabIndex
    from zsl.models.encoders import get_encoder

    index = VocabIndex(vocab, get_encoder(encoder), use_descriptions=descriptions, show_progress=True)
    return InferRetrieveRank(index, label_kind=kind, infer=infer, rank=rank, rank_top=20)


def _records_path(out: Path, dataset: str) -> Path:
    return out / f"{dataset}.jsonl"


def _read(path: Path) -> dict[int, dict[str, Any]]:
    recs: dict[int, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                recs.setdefault(r["i"], {}).update(r)
    return recs


def run(args: argparse.Namespace) -> None:
    from zsl.models.lm import get_lm

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    vocab, items, kind = load(args.dataset, args.n, args.seed)
    if args.no_llm:
        for desc in (False, True):  # build (and cache) both label embeddings
            _program(vocab, kind, desc, args.encoder)
        print("retrieval only: nothing to record; run `report`")
        return
    lm = get_lm(args.lm, max_tokens=96)
    programs = {s: _program(vocab, kind, s == "desc", args.encoder, infer=True, rank=True) for s in SETTINGS}
    for p in programs.values():
        p.set_lm(lm)
    path = _records_path(out, args.dataset)
    done = _read(path)
    todo = [i for i in range(len(items)) if not all(s in done.get(i, {}) for s in SETTINGS)]
    print(f"{args.dataset}: {len(items) - len(todo)} done, {len(todo)} to go", flush=True)
    if args.limit is not None and args.limit < len(todo):
        todo = todo[: args.limit]
        print(f"  this call labels {len(todo)} (--limit); rerun to continue", flush=True)
    with path.open("a", encoding="utf-8") as fh:
        for n, i in enumerate(todo, 1):
            text = items[i]["text"]
            t = time.perf_counter()
            phrases = done.get(i, {}).get("phrases")
            if phrases is None:
                phrases = programs["bare"].infer(text=text).phrases
            rec: dict[str, Any] = {"i": i, "phrases": phrases, "seconds_infer": time.perf_counter() - t}
            for s, prog in programs.items():
                scores = prog.retrieve(text, phrases)
                cand = np.argsort(-scores, kind="stable")[: prog.rank_top]
                descs = [vocab.descriptions[j] for j in cand] if s == "desc" and vocab.descriptions else None
                t = time.perf_counter()
                ranked = prog.rank(text=text, candidates=[vocab[j] for j in cand], descriptions=descs)
                p = np.clip(np.asarray(ranked.scores, dtype=np.float64), 1e-9, 1 - 1e-9)
                rec[s] = {"cand": cand.tolist(), "logodds": np.round(np.log(p / (1 - p)), 4).tolist(),
                          "seconds_rank": time.perf_counter() - t}
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            if n % 10 == 0 or n == len(todo):
                print(f"  {n}/{len(todo)}", flush=True)


def _metrics(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    from zsl.evaluation.metrics import mean_average_precision, p_at_k, rp_at_k

    return {"p1": 100 * p_at_k(y, s, 1), "rp5": 100 * rp_at_k(y, s, 5),
            "map": 100 * mean_average_precision(y, s, average="item")}


def report(args: argparse.Namespace) -> None:
    from zsl.fusion import DEFAULTS, FusionItem, fused_scores
    from zsl.index import max_over_phrases
    from zsl.vocab import clean_description

    out = Path(args.out)
    lines = ["| data | items | labels | descriptions | retrieval only P@1 / RP@5 / mAP | full program P@1 / RP@5 / mAP |",
             "|---|---|---|---|---|---|"]
    for dataset in args.dataset or DATASETS:
        vocab, items, kind = load(dataset, args.n, args.seed)
        recs = _read(_records_path(out, dataset))
        y = vocab.to_multi_hot([it["labels"] for it in items], strict=False)
        for s in SETTINGS:
            prog = _program(vocab, kind, s == "desc", args.encoder)
            sim0 = prog.retrieve_many([it["text"] for it in items])
            retr = _metrics(y, sim0)
            full = "not run"
            have = [i for i in range(len(items)) if s in recs.get(i, {})]
            if have:
                rows = []
                for i in have:
                    r = recs[i]
                    sim = prog.index.similarities(prog.index.encoder.encode([items[i]["text"], *r["phrases"]]))
                    lo = np.asarray(r[s]["logodds"])
                    fi = FusionItem(sim[0], max_over_phrases(sim[1:]) if r["phrases"] else None,
                                    np.asarray(r[s]["cand"]), 1 / (1 + np.exp(-lo)), [])
                    rows.append(fused_scores(fi, vocab.prior_array(), {**DEFAULTS, "prior_weight": 0.0}))
                m = _metrics(y[have], np.stack(rows))
                full = f"{m['p1']:.1f} / {m['rp5']:.1f} / {m['map']:.1f}" + ("" if len(have) == len(items)
                                                                              else f" ({len(have)} items)")
            n_desc = sum(clean_description(lab, d)[0] is not None
                         for lab, d in zip(vocab.labels, vocab.descriptions or [None] * len(vocab)))
            lines.append(f"| {dataset} | {len(items)} | {len(vocab):,} ({n_desc:,} described) | "
                         f"{'yes' if s == 'desc' else 'no'} | {retr['p1']:.1f} / {retr['rp5']:.1f} / {retr['map']:.1f} "
                         f"| {full} |")
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if args.write:
        _write(table, args)


def _write(table: str, args: argparse.Namespace) -> None:
    from benchmarks import write_section

    cmd = f"`python -m benchmarks.descriptions report --n {args.n} --seed {args.seed}`"
    path = write_section("descriptions", f"{cmd}\n\n{table}", heading="Label descriptions (Reuters-21578, ESCO)")
    print(f"updated {path}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.descriptions", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="records folder (default $ZSL_HOME/bench/descriptions)")
    p.add_argument("--encoder", default=None)
    p.add_argument("--n", type=int, default=200, help="Reuters articles in the slice")
    p.add_argument("--seed", type=int, default=0)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dataset", choices=DATASETS, required=True)
    r.add_argument("--lm", default=None)
    r.add_argument("--no-llm", action="store_true")
    r.add_argument("--limit", type=int, default=None,
                   help="label at most this many more items in this call (rerun to continue; report counts what is done)")
    r.set_defaults(func=run)
    rep = sub.add_parser("report")
    rep.add_argument("--dataset", action="append", choices=DATASETS)
    rep.add_argument("--write", action="store_true")
    rep.set_defaults(func=report)
    args = p.parse_args(argv)
    if args.out is None:
        from zsl.util.paths import subdir

        args.out = str(subdir("bench") / "descriptions")
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
