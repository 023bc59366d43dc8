"""Infer-Retrieve-Rank benchmark on the ESCO skill-extraction sets (13,896 labels).

One pass per item runs the Infer step once and the Rank step once and records what each
produced (phrases, candidates, yes/no log-odds, tokens, seconds), so the variants

    (a) retrieve-only          text -> nearest labels
    (b) infer + retrieve       phrases (+ the text) -> nearest labels
    (c) infer + retrieve + rank, zero-shot
    (d) the tuned program      (scoring weights and rank_top chosen on 10+10 validation examples)

are all scored from the same records. Records are appended to a JSONL file per split as
items finish, so an interrupted run continues where it stopped.

    python -m benchmarks.irera run --split tech_validation --split house_validation
    python -m benchmarks.irera run --split tech_test --split house_test
    python -m benchmarks.irera report            # prints the table, updates BENCHMARKS.md

With an encoder fine-tuned on the validation items (``zsl.text.finetune``), the test run is the same
program with that retriever:

    python -m benchmarks.irera finetune          # -> $ZSL_HOME/bench/irera/encoder-ft
    python -m benchmarks.irera --encoder $ZSL_HOME/bench/irera/encoder-ft run --variant ft-desc \
        --split tech_test --split house_test --rank-top 30 --no-rank-descriptions

The data folder defaults to ../shared/data/esco next to the repository (``--data``); records
go to $ZSL_HOME/bench/irera (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import ROOT, machine, machine_line
from zsl.prompting import DEFAULT_RANK_PROMPT, RANK_DESCRIPTIONS

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "esco"
# Records live in $ZSL_HOME (not the work tree) so a long run survives a fresh checkout.
DEFAULT_OUT = "$ZSL_HOME/bench/irera"
SPLITS = ("tech_validation", "house_validation", "tech_test", "house_test")


def load_split(data: Path, split: str) -> list[dict[str, Any]]:
    path = data / f"esco_{split}.jsonl"
    if not path.is_file():
        raise SystemExit(f"missing {path}: pass --data pointing at the esco folder")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_vocab(data: Path, descriptions: bool = True):
    """The 13,896 ESCO labels with priors; with their 12,585 descriptions unless ``descriptions`` is False."""
    from zsl import LabelVocab

    name = "esco_skills_vocab.jsonl" if descriptions else "esco_skills_vocab.txt"
    return LabelVocab.from_file(data / name, priors=data / "esco_priors.json")


def make_index(args: argparse.Namespace, encoder: str | None = None, descriptions: bool | None = None,
               show_progress: bool = False):
    """The vocabulary index for ``--encoder`` / ``--no-descriptions`` (or the given overrides)."""
    from zsl.index import VocabIndex
    from zsl.models.encoders import get_encoder

    desc = args.descriptions if descriptions is None else descriptions
    vocab = load_vocab(Path(args.data), desc)
    return VocabIndex(vocab, get_encoder(encoder if encoder is not None else args.encoder), use_descriptions=desc,
                      show_progress=show_progress)


def default_variant(args: argparse.Namespace) -> str:
    """Records are named after the retriever that chose the candidates: ``minilm-l6-desc`` ..."""
    return f"{args.encoder or 'minilm-l6'}{'-desc' if args.descriptions else ''}"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _records_path(out: Path, split: str, variant: str) -> Path:
    return out / f"{split}.{variant}.jsonl"


def run(args: argparse.Namespace) -> None:
    import dspy
    from zsl.programs.irr import InferRetrieveRank

    from zsl.models.lm import get_lm

    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    index = make_index(args, show_progress=True)
    vocab = index.vocab
    print(f"index over {len(vocab)} labels ready in {time.perf_counter() - t0:.1f}s ({index.backend})", flush=True)
    lm = get_lm(args.lm, max_tokens=96)
    program = InferRetrieveRank(index, label_kind="skills", rank_top=args.rank_top, text_weight=0.5,
                                max_phrases=args.max_phrases, rank=not args.no_rank, rank_prompt=args.rank_prompt,
                                rank_descriptions=args.rank_descriptions)
    program.set_lm(lm)
    if args.program:
        from zsl.text.tagger import Tagger

        state = json.loads(Path(args.program).read_text(encoding="utf-8"))
        program.load_state(state["program"])
        for key in ("text_weight", "rank_weight", "prior_weight"):
            if key in state["settings"]:
                setattr(program, key, state["settings"][key])
        del Tagger
    variant = args.variant or default_variant(args)
    for split in args.split:
        rows = load_split(data, split)
        if args.limit:
            rows = rows[: args.limit]
        path = _records_path(out, split, variant)
        done = set()
        if path.exists():
            done = {json.loads(x)["i"] for x in path.read_text(encoding="utf-8").splitlines() if x.strip()}
        todo = [(i, r) for i, r in enumerate(rows) if i not in done]
        print(f"{split}/{variant}: {len(done)} done, {len(todo)} to go", flush=True)
        with path.open("a", encoding="utf-8") as fh:
            for n, (i, row) in enumerate(todo, 1):
                rec = one_item(program, lm, row["text"])
                rec.update(i=i, gold=row["labels"])
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                fh.flush()
                if n % 10 == 0 or n == len(todo):
                    print(f"  {split}: {n}/{len(todo)}  {rec['seconds_infer'] + rec['seconds_rank']:.2f}s/item last, "
                          f"peak {peak_rss_mb():.0f} MB", flush=True)
    dspy.configure(lm=None)


def one_item(program, lm, text: str) -> dict[str, Any]:
    """Run Infer and Rank once for a text, recording everything needed to score all variants.

    With ``program.use_rank`` False only the phrases and candidates are recorded (no log-odds)."""
    rt = lm.scorer
    n_hist = len(lm.history)
    t = time.perf_counter()
    try:
        phrases = program.infer(text=text).phrases
        note = ""
    except Exception as exc:  # noqa: BLE001 - a failed LLM answer is recorded, the item still counts (fallback)
        phrases, note = [], f"infer failed: {type(exc).__name__}"
    t_infer = time.perf_counter() - t
    usage = [h.get("usage") or {} for h in lm.history[n_hist:]]
    cached = not usage
    p_tok = sum(int(u.get("prompt_tokens", u.get("input_tokens", 0)) or 0) for u in usage)
    c_tok = sum(int(u.get("completion_tokens", u.get("output_tokens", 0)) or 0) for u in usage)
    t = time.perf_counter()
    scores = program.retrieve(text, phrases)
    t_retrieve = time.perf_counter() - t
    cand = np.argsort(-scores, kind="stable")[: program.rank_top]
    t = time.perf_counter()
    before = rt.tokens_evaluated
    vocab = program.index.vocab
    # which of them the Rank step shows is its own setting (program.rank.descriptions)
    descs = ([vocab.descriptions[j] for j in cand] if program.index.use_descriptions
             and vocab.descriptions is not None else None)
    if program.use_rank:
        ranked = program.rank(text=text, candidates=[vocab[j] for j in cand], descriptions=descs)
        logodds = np.log(np.clip(ranked.scores, 1e-9, 1)) - np.log(np.clip(1 - ranked.scores, 1e-9, 1))
    else:
        logodds = np.zeros(0)
    t_rank = time.perf_counter() - t
    return {
        "phrases": phrases, "note": note, "cand": cand.tolist(), "logodds": [round(float(x), 4) for x in logodds],
        "seconds_infer": t_infer, "seconds_retrieve": t_retrieve, "seconds_rank": t_rank,
        "infer_calls": len(usage), "infer_cached": cached, "infer_prompt_tokens": p_tok,
        "infer_completion_tokens": c_tok, "rank_tokens": rt.tokens_evaluated - before,
    }


def scores_for(rec: dict[str, Any], text: str, program, *, variant: str, text_weight: float, rank_weight: float,
               prior_weight: float, phrase_cache: dict, rank_top: int | None = None) -> np.ndarray:
    """Score the whole vocabulary for one recorded item under one variant and weights.

    ``rank_top`` below the recorded number of ranked candidates uses the first ``rank_top``
    of them: candidates are recorded in retrieval order and each yes/no score depends on its
    own candidate only, so this equals a run with that smaller ``rank_top``.
    """
    from zsl.index import apply_prior, max_over_phrases

    key = (text, tuple(rec["phrases"]))
    sim = phrase_cache.get(key)
    if sim is None:
        sim = program.index.similarities(program.index.encoder.encode([text, *rec["phrases"]]))
        phrase_cache[key] = sim
    if variant == "a" or not rec["phrases"]:
        s = sim[0].copy()
    else:
        s = text_weight * sim[0] + (1 - text_weight) * max_over_phrases(sim[1:])
    s = apply_prior(s, program.index.vocab.prior_array(), prior_weight)
    if variant in ("c", "d"):
        n = len(rec["cand"]) if rank_top is None else min(rank_top, len(rec["cand"]))
        lo = np.asarray(rec["logodds"][:n], dtype=np.float64)
        s[np.asarray(rec["cand"][:n], dtype=int)] += rank_weight / (1 + np.exp(-lo))
    return s


def evaluate(records: list[dict[str, Any]], texts: list[str], program, **kw) -> dict[str, float]:
    from zsl.evaluation.metrics import rp_at_k

    vocab = program.index.vocab
    y = vocab.to_multi_hot([r["gold"] for r in records], strict=False)
    s = np.stack([scores_for(r, t, program, **kw) for r, t in zip(records, texts)])
    return {"rp5": 100 * rp_at_k(y, s, 5), "rp10": 100 * rp_at_k(y, s, 10)}


def retrievers(args: argparse.Namespace) -> None:
    """Compare retrievers on the validation sets from one set of recorded Infer phrases (no LLM).

    The phrases do not depend on the retriever, so every encoder / description setting is
    scored from the same records: RP@5 and RP@10 of retrieval from the text alone (a) and
    from text + phrases (b), and the share of gold labels among the top N candidates, which
    bounds what a Rank step over N candidates can reach.
    """
    from zsl.programs.irr import InferRetrieveRank

    data, out = Path(args.data), Path(args.out)
    splits = ("tech_validation", "house_validation")
    lines = [(f"Retrievers on the validation sets, from the `{args.variant}` phrase records "
             f"(`python -m benchmarks.irera retrievers --encoders {' '.join(args.encoders)}`):"), "",
             ("| encoder | descriptions | split | items | (a) RP@5 / RP@10 | (b) RP@5 / RP@10 | gold in top 10 / 20 / 30 / 50 "
             "| label encoding s |"), "|---|---|---|---|---|---|---|---|"]
    for enc in args.encoders:
        for desc in (False, True) if args.both else (args.descriptions,):
            t = time.perf_counter()
            index = make_index(args, enc, desc, show_progress=True)
            t_index = time.perf_counter() - t
            program = InferRetrieveRank(index, infer=False, rank=False)
            cache: dict = {}
            for split in splits:
                rows = load_split(data, split)
                recs = _load_records(out, split, args.variant)
                if not recs:
                    continue
                texts = [rows[r["i"]]["text"] for r in recs]
                kw = {"text_weight": 0.5, "rank_weight": 0.0, "prior_weight": 0.0, "phrase_cache": cache}
                ma = evaluate(recs, texts, program, variant="a", **kw)
                mb = evaluate(recs, texts, program, variant="b", **kw)
                hits = {n: 0 for n in (10, 20, 30, 50)}
                n_gold = 0
                for r, text in zip(recs, texts):
                    order = np.argsort(-scores_for(r, text, program, variant="b", **kw), kind="stable")
                    gold = {index.vocab.index(g) for g in r["gold"] if g in index.vocab}
                    n_gold += len(gold)
                    for n in hits:
                        hits[n] += len(gold & set(order[:n].tolist()))
                recall = " / ".join(f"{100 * hits[n] / max(1, n_gold):.1f}" for n in hits)
                lines.append(f"| {enc or 'minilm-l6'} | {'yes' if desc else 'no'} | {split} | {len(recs)} | "
                             f"{ma['rp5']:.1f} / {ma['rp10']:.1f} | {mb['rp5']:.1f} / {mb['rp10']:.1f} | {recall} | "
                             f"{t_index:.0f} |")
                print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    (out / "retrievers.md").write_text(table + "\n", encoding="utf-8")


def report(args: argparse.Namespace) -> None:
    """The quality table of one record set (``--variant``, default the retriever's), every split recorded."""
    from zsl.programs.irr import InferRetrieveRank

    data, out = Path(args.data), Path(args.out)
    variant = args.variant or default_variant(args)
    program = InferRetrieveRank(make_index(args), infer=False, rank=False)
    cache: dict = {}
    zero = {"text_weight": 0.5, "rank_weight": 0.2, "prior_weight": 0.0}
    tuned_path = out / f"tuned.{variant}.json"
    tuned = json.loads(tuned_path.read_text()) if tuned_path.exists() else None
    if args.weights:  # weights chosen earlier (e.g. a validation fit recorded in BENCHMARKS.md)
        tuned = {"weights": parse_weights(args.weights), "examples": args.weights_examples}
    lines = []
    for split in SPLITS:
        rows = load_split(data, split)
        recs = _load_records(out, split, variant)  # read once: a running benchmark may append
        texts = [rows[r["i"]]["text"] for r in recs]
        if not recs:
            continue
        recorded_top = min(len(r["logodds"]) for r in recs)
        runs = [("a", "(a) retrieve-only", None), ("b", "(b) infer + retrieve", None)]
        runs += [("c", f"(c) + rank top {n}, zero-shot", n) for n in (10, 20, 30, 50) if n <= recorded_top]
        for v, label, top in runs:
            m = evaluate(recs, texts, program, variant=v, phrase_cache=cache, rank_top=top, **zero)
            lines.append(_row(split, label, m, recs, v, len(rows), top))
        if tuned and recorded_top:
            w = dict(tuned["weights"])
            top = int(w.pop("rank_top"))
            m = evaluate(recs, texts, program, variant="d", phrase_cache=cache, rank_top=top, **w)
            source = args.weights_note or f"fusion fitted on {tuned['examples']} validation items"
            lines.append(_row(split, f"(d) {source}: "
                                     f"rank top {top}, tw {w['text_weight']}, rw {w['rank_weight']}, "
                                     f"pw {w['prior_weight']}", m, recs, "d", len(rows), top))
    header = (f"Records `{variant}`.\n\n| split | variant | items | RP@5 | RP@10 | s/item | LLM calls/item | "
              "prompt tok/item | completion tok/item | rank tok/item |\n|---|---|---|---|---|---|---|---|---|---|")
    table = header + "\n" + "\n".join(lines)
    print(table)
    if args.write:
        _write_benchmarks(table, variant)


def parse_weights(spec: str) -> dict[str, float]:
    """``"text_weight=0.5,rank_weight=0.3,prior_weight=0,rank_top=30"`` as a weights dict.

    Example:
        >>> parse_weights("text_weight=0.5,rank_weight=0.3,prior_weight=0,rank_top=30")["rank_top"]
        30
    """
    keys = ("text_weight", "rank_weight", "prior_weight", "rank_top")
    out: dict[str, float] = {}
    for part in spec.split(","):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in keys or not value.strip():
            raise SystemExit(f"--weights: expected {'=..,'.join(keys)}=.., got {part!r}")
        out[key] = int(value) if key == "rank_top" else float(value)
    missing = set(keys) - set(out)
    if missing:
        raise SystemExit(f"--weights: missing {', '.join(sorted(missing))}")
    return out


def _load_records(out: Path, split: str, variant: str) -> list[dict[str, Any]]:
    p = _records_path(out, split, variant)
    if not p.exists():
        return []
    recs = {}
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            recs[r["i"]] = r
    return [recs[i] for i in sorted(recs)]


def _row(split: str, label: str, m: dict[str, float], recs: list[dict], variant: str, total: int,
         rank_top: int | None = None) -> str:
    n = len(recs)
    sec = {"a": [r["seconds_retrieve"] for r in recs],
           "b": [r["seconds_infer"] + r["seconds_retrieve"] for r in recs],
           "c": [r["seconds_infer"] + r["seconds_retrieve"] + r["seconds_rank"] for r in recs]}
    sec["d"] = sec["c"]
    med = f"{float(np.median(sec[variant])):.2f}"
    calls = 0 if variant == "a" else (1 if variant == "b" else 2)
    pt = 0 if variant == "a" else np.mean([r["infer_prompt_tokens"] for r in recs])
    ct = 0 if variant == "a" else np.mean([r["infer_completion_tokens"] for r in recs])
    rt = f"{np.mean([r['rank_tokens'] for r in recs]):.0f}" if variant in ("c", "d") else "0"
    if rank_top is not None and variant in ("c", "d") and rank_top < len(recs[0]["cand"]):
        med, rt = "see speed table", "fewer"
    items = f"{n}" if n == total else f"{n}/{total}"
    return (f"| {split} | {label} | {items} | {m['rp5']:.1f} | {m['rp10']:.1f} | {med} | {calls} | {pt:.0f} | "
            f"{ct:.0f} | {rt} |")


def _write_benchmarks(table: str, variant: str) -> None:
    """Into BENCHMARKS.md, between the markers of this record set (``irera-VARIANT``; appended at the end
    when the file has none yet)."""
    from benchmarks import write_section

    print(f"updated {write_section(f'irera-{variant}', table, heading=f'Infer-Retrieve-Rank, records {variant}')}")


def fusion_items(records: list[dict[str, Any]], texts: list[str], program, cache: dict) -> list:
    """The recorded items as :class:`zsl.fusion.FusionItem` (similarities computed once, cached)."""
    from zsl.fusion import FusionItem
    from zsl.index import max_over_phrases

    vocab = program.index.vocab
    out = []
    for rec, text in zip(records, texts, strict=True):
        key = (text, tuple(rec["phrases"]))
        sim = cache.get(key)
        if sim is None:
            sim = cache[key] = program.index.similarities(program.index.encoder.encode([text, *rec["phrases"]]))
        lo = np.asarray(rec["logodds"], dtype=np.float64)
        out.append(FusionItem(text_sim=sim[0], phrase_sim=max_over_phrases(sim[1:]) if rec["phrases"] else None,
                              cand=np.asarray(rec["cand"], dtype=int), p_yes=1 / (1 + np.exp(-lo)),
                              gold=[vocab.index(g) for g in rec["gold"] if g in vocab]))
    return out


def tune(args: argparse.Namespace) -> None:
    """Fit the fusion weights on the validation records only (all of them by default); writes tuned.json.

    The zero-shot defaults stay unless a setting beats them by at least ``--min-gain`` RP@10
    points on the validation items (:func:`zsl.fusion.fit_fusion`).
    """
    from zsl.programs.irr import InferRetrieveRank

    from zsl.fusion import GRID, fit_fusion

    data, out = Path(args.data), Path(args.out)
    variant = args.variant or default_variant(args)
    program = InferRetrieveRank(make_index(args), infer=False, rank=False)
    cache: dict = {}
    items = []
    rng = np.random.default_rng(args.seed)
    for split in ("tech_validation", "house_validation"):
        recs = _load_records(out, split, variant)
        if args.max_examples and len(recs) > args.max_examples:
            keep = sorted(rng.choice(len(recs), size=args.max_examples, replace=False).tolist())
            recs = [recs[i] for i in keep]
        rows = load_split(data, split)
        items += fusion_items(recs, [rows[r["i"]]["text"] for r in recs], program, cache)
    grid = {**GRID, "rank_top": [t for t in GRID["rank_top"] if t <= args.max_rank_top]}
    fit = fit_fusion(items, program.index.vocab.prior_array(), k=10, min_gain=args.min_gain, grid=grid)
    print(f"{variant}: validation RP@10 {fit.score:.1f} with {fit.weights} (zero-shot defaults "
          f"{fit.default_score:.1f}) on {fit.n_examples} validation examples")
    path = out / f"tuned.{args.name or variant}.json"
    path.write_text(json.dumps({"weights": fit.weights, "val_rp10": fit.score, "default_val_rp10": fit.default_score,
                                "examples": fit.n_examples, "variant": variant}, indent=1))
    print(f"wrote {path}")


def compare(args: argparse.Namespace) -> None:
    """RP@10 of several record sets on the validation items they all have, under the same weights."""
    from zsl.programs.irr import InferRetrieveRank

    from zsl.fusion import fused_rp_at_k

    data, out = Path(args.data), Path(args.out)
    program = InferRetrieveRank(make_index(args), infer=False, rank=False)
    prior = program.index.vocab.prior_array()
    w = {"text_weight": args.text_weight, "prior_weight": args.prior_weight, "rank_weight": args.rank_weight,
         "rank_top": args.rank_top}
    cache: dict = {}
    lines = [(f"Record sets on their common items, weights {w} (`python -m benchmarks.irera compare "
             f"{' '.join(args.variants)} --rank-top {args.rank_top} --rank-weight {args.rank_weight}`):"), "",
             "| split | items | " + " | ".join(args.variants) + " |", "|---|---|" + "---|" * len(args.variants)]
    for split in ("tech_validation", "house_validation"):
        rows = load_split(data, split)
        sets = {v: {r["i"]: r for r in _load_records(out, split, v)} for v in args.variants}
        common = sorted(set.intersection(*(set(x) for x in sets.values())))
        if not common:
            continue
        cells = []
        for v in args.variants:
            recs = [sets[v][i] for i in common]
            items = fusion_items(recs, [rows[i]["text"] for i in common], program, cache)
            cells.append(f"{fused_rp_at_k([it for it in items if it.gold], prior, w, 10):.1f}")
        lines.append(f"| {split} | {len(common)} | " + " | ".join(cells) + " |")
    print("\n".join(lines))


def raw_llama_speed(runtime, *, prompt_tokens: int = 512, gen_tokens: int = 48) -> dict[str, float]:
    """The hardware limit in the same process: llama.cpp prompt tok/s in one large batch, and
    generation tok/s (greedy), on the model zsl uses."""
    llama = runtime.llama
    toks = (runtime.tokenize("The quick brown fox jumps over the lazy dog. ") * (prompt_tokens // 10 + 1))[:prompt_tokens]
    with runtime.lock:
        llama.reset()
        t = time.perf_counter()
        llama.eval(toks)
        prompt = prompt_tokens / (time.perf_counter() - t)
        llama.reset()
        llama.eval(toks[:16])
        t = time.perf_counter()
        n = 0
        for tok in llama.generate(toks[:16], temp=0.0, reset=False):
            n += 1
            if n >= gen_tokens:
                break
        gen = n / (time.perf_counter() - t)
        llama.reset()
    return {"prompt_tok_s": prompt, "gen_tok_s": gen}


def speed(args: argparse.Namespace) -> None:
    """Seconds per item of each step on the same items, measured now (no DSPy cache).

    For every item: the Infer step (uncached; prompt tokens sent, and evaluated, i.e. not
    served from llama.cpp's KV cache of the previous prompt), retrieval, and the Rank step at
    each ``--tops`` size with batched scoring, for the default Rank layout (the program's
    prompt and description rule, descriptions included as the program shows them) and each
    of ``--layouts`` (``PROMPT:DESCRIPTIONS``), plus top 20 of the default layout scored one
    candidate at a time. Infer is also timed with the local engine's field-marker prefill
    turned off (a separate pass over the items, run first, so no item follows its own prompt
    in the KV cache). Raw llama.cpp prompt and generation speeds are measured in the same process.
    """
    from zsl.programs.irr import InferRetrieveRank, Rank

    from zsl.models.lm import LlamaCppEngine, get_lm

    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    index = make_index(args)
    vocab = index.vocab
    lm = get_lm(args.lm, max_tokens=96, cache=False)
    program = InferRetrieveRank(index, label_kind="skills", rank_top=max(args.tops), max_phrases=8)
    program.set_lm(lm)
    default = f"{program.rank.yesno_prompt.name}:{program.rank.descriptions}"
    layouts = [default, *[x for x in args.layouts if x != default]]
    ranks = {}
    for lay in layouts:
        name, _, rule = lay.partition(":")
        ranks[lay] = Rank("skills", mode="yesno", yesno_prompt=name, descriptions=rule or "auto")
        ranks[lay].set_lm(lm)
    rows = load_split(data, args.split)[: args.items]
    program.rank(text="warm up", candidates=["a", "b"])
    raw = raw_llama_speed(lm.runtime)
    gen_rt, score_rt = lm.runtime, lm.scorer
    m: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        m.setdefault(key, []).append(value)

    def infer(text: str, tag: str) -> list[str]:
        n_hist, ev0 = len(lm.history), gen_rt.prompt_tokens_evaluated
        t = time.perf_counter()
        phrases = program.infer(text=text).phrases
        add(f"infer{tag}_s", time.perf_counter() - t)
        usage = [h.get("usage") or {} for h in lm.history[n_hist:]]
        add(f"infer{tag}_prompt_sent", sum(int(u.get("prompt_tokens", u.get("input_tokens", 0)) or 0) for u in usage))
        add(f"infer{tag}_prompt_evaluated", gen_rt.prompt_tokens_evaluated - ev0)
        add(f"infer{tag}_completion", sum(int(u.get("completion_tokens", u.get("output_tokens", 0)) or 0) for u in usage))
        return phrases

    LlamaCppEngine.prefill = False  # first pass: Infer as DSPy's adapter asks for it, markers generated
    try:
        unprefilled = [infer(row["text"], "_noprefill") for row in rows]
    finally:
        LlamaCppEngine.prefill = True
    same = 0
    for n, row in enumerate(rows, 1):
        text = row["text"]
        phrases = infer(text, "")
        same += phrases == unprefilled[n - 1]
        t = time.perf_counter()
        scores = program.retrieve(text, phrases)
        add("retrieve_s", time.perf_counter() - t)
        top_idx = np.argsort(-scores, kind="stable")[: max(args.tops)]
        cand = [vocab[j] for j in top_idx]
        descs = [vocab.descriptions[j] for j in top_idx] if vocab.descriptions is not None else None
        values = {**program.rank.kind.fields(), "text": text[: program.rank.max_chars]}
        for lay, rank in ranks.items():
            prompt = rank.yesno_prompt
            prefix, suffix, system = prompt.text("prefix", **values), prompt.text("suffix", **values), prompt.text("system")
            shown = rank.shown(cand, descs, "yesno")
            for top in args.tops:
                before = score_rt.tokens_evaluated
                t = time.perf_counter()
                score_rt.yes_no_logodds(prefix, shown[:top], suffix, system, batched=True)
                add(f"{lay}/rank{top}_s", time.perf_counter() - t)
                add(f"{lay}/rank{top}_tokens", score_rt.tokens_evaluated - before)
            if lay == default:
                t = time.perf_counter()
                score_rt.yes_no_logodds(prefix, shown[:20], suffix, system, batched=False)
                add("rank20_seq_s", time.perf_counter() - t)
        print(f"  {n}/{len(rows)} infer {m['infer_s'][-1]:.2f}s (without prefill {m['infer_noprefill_s'][n - 1]:.2f}s), "
              f"rank top {max(args.tops)} {m[f'{default}/rank{max(args.tops)}_s'][-1]:.2f}s", flush=True)
    med = {k: float(np.median(v)) for k, v in m.items()}
    base = med["infer_s"] + med["retrieve_s"]
    cpu = machine()
    cmd = (f"python -m benchmarks.irera speed --split {args.split} --items {args.items} --tops "
           f"{' '.join(map(str, args.tops))}" + (f" --layouts {' '.join(args.layouts)}" if args.layouts else ""))
    lines = [f"Medians over the first {len(rows)} {args.split} items, one process, nothing cached (`{cmd}`).", "",
             f"- machine: {machine_line(cpu)}",
             (f"- raw llama.cpp in the same process: {raw['prompt_tok_s']:.0f} prompt tok/s (one 512-token batch), "
              f"{raw['gen_tok_s']:.1f} generation tok/s"),
             (f"- Infer: {med['infer_s']:.2f} s; prompt tokens sent {med['infer_prompt_sent']:.0f}, evaluated "
              f"{med['infer_prompt_evaluated']:.0f} (the rest, the program's fixed prompt part, comes from the KV cache), "
              f"completion {med['infer_completion']:.0f}"),
             (f"- Infer with the field markers generated instead of prefilled (the engine before 2026-12-05 evening): "
              f"{med['infer_noprefill_s']:.2f} s, evaluated {med['infer_noprefill_prompt_evaluated']:.0f}, completion "
              f"{med['infer_noprefill_completion']:.0f}; same phrases on {same} of {len(rows)} items"),
             f"- retrieval (encode text + phrases, search {len(vocab):,} labels): {1000 * med['retrieve_s']:.0f} ms",
             f"- Rank top 20 one candidate at a time ({default}): {med['rank20_seq_s']:.2f} s", "",
             ("| Rank layout (prompt:descriptions) | rank top | Rank tokens evaluated | Rank s (batched) | "
             "infer + retrieve + rank s |"), "|---|---|---|---|---|",
             f"| - | 0 (no rank) | 0 | 0 | {base:.2f} |"]
    for lay in layouts:
        for top in args.tops:
            mark = "**" if lay == default else ""
            lines.append(f"| {mark}{lay}{mark}{' (default)' if lay == default else ''} | {top} | "
                         f"{med[f'{lay}/rank{top}_tokens']:.0f} | {med[f'{lay}/rank{top}_s']:.2f} | "
                         f"{base + med[f'{lay}/rank{top}_s']:.2f} |")
    table = "\n".join(lines)
    print(table)
    (out / "speed.md").write_text(table + "\n", encoding="utf-8")
    (out / "speed.json").write_text(json.dumps({"machine": cpu, "raw": raw, "median": med, "items": len(rows),
                                                "layouts": layouts,
                                                "same_phrases": same}, indent=1))


def finetune(args: argparse.Namespace) -> None:
    """Fine-tune the retriever (MiniLM by default, ``--encoder``) on the validation items only, so the
    test sets stay unseen; the folder is what ``--encoder`` takes for ``run``."""
    from zsl.text.finetune import fine_tune_encoder

    data, out = Path(args.data), Path(args.out) / args.name
    vocab = load_vocab(data, args.descriptions)
    pairs = [(r["text"], r["labels"]) for split in args.splits for r in load_split(data, split)]
    if out.exists():
        raise SystemExit(f"{out} exists: delete it to fine-tune again, or pass it to --encoder as it is")
    t = time.perf_counter()
    fine_tune_encoder(pairs, vocab, out, encoder=args.encoder, unknown_labels="skip", seed=args.seed,
                      use_descriptions=args.descriptions, show_progress=True)
    print(f"fine-tuned on {len(pairs)} items of {', '.join(args.splits)} in {time.perf_counter() - t:.0f}s: {out}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.irera", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--out", default=DEFAULT_OUT, help="folder of per-item records (default: $ZSL_HOME/bench/irera)")
    p.add_argument("--encoder", default=None)
    p.add_argument("--no-descriptions", dest="descriptions", action="store_false",
                   help="labels without their ESCO descriptions (retrieval and Rank)")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--split", action="append", choices=SPLITS, required=True)
    r.add_argument("--lm", default=None)
    r.add_argument("--rank-top", type=int, default=50)
    r.add_argument("--no-rank", action="store_true", help="record phrases and candidates only (no Rank step)")
    r.add_argument("--rank-prompt", default=DEFAULT_RANK_PROMPT,
                   help="the yes/no Rank prompt (rank_yesno, rank_yesno_short, rank_yesno_lead)")
    r.add_argument("--rank-descriptions", choices=RANK_DESCRIPTIONS, default="auto",
                   help="which candidates the Rank step shows with their descriptions when retrieval embeds them: "
                        "auto (the program's default: one-word labels only), all, none")
    r.add_argument("--no-rank-descriptions", action="store_const", dest="rank_descriptions", const="none",
                   help="the same as --rank-descriptions none (the records of 2026-12-05 were made with it)")
    r.add_argument("--max-phrases", type=int, default=8)
    r.add_argument("--limit", type=int, default=0)
    r.add_argument("--variant", default=None,
                   help="record set name (default: the retriever, e.g. minilm-l6-desc)")
    r.add_argument("--program", help="compiled program JSON (for --variant optimized)")
    r.set_defaults(func=run)
    t = sub.add_parser("tune")
    t.add_argument("--variant", default=None, help="record set (default: the retriever's)")
    t.add_argument("--max-examples", type=int, default=0,
                   help="labelled validation examples per split used for tuning (default 0 = all)")
    t.add_argument("--max-rank-top", type=int, default=50, help="largest rank_top the fit may choose")
    t.add_argument("--name", default=None, help="write tuned.NAME.json (default: the record set's name), e.g. to "
                   "apply a fit to another record set")
    t.add_argument("--min-gain", type=float, default=0.5,
                   help="RP@10 points a setting must gain over the zero-shot defaults to replace them")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=tune)
    sp = sub.add_parser("speed")
    sp.add_argument("--split", default="tech_validation", choices=SPLITS)
    sp.add_argument("--items", type=int, default=10)
    sp.add_argument("--tops", type=int, nargs="+", default=[10, 20, 30, 50])
    sp.add_argument("--layouts", nargs="*", default=[], metavar="PROMPT:DESCRIPTIONS",
                    help="Rank layouts timed beside the default, e.g. rank_yesno:none rank_yesno_short:auto")
    sp.add_argument("--lm", default=None)
    sp.set_defaults(func=speed)
    rv = sub.add_parser("retrievers")
    rv.add_argument("--encoders", nargs="+", default=["minilm-l6", "mpnet"])
    rv.add_argument("--variant", default="phrases", help="the records whose phrases are scored")
    rv.add_argument("--both", action="store_true", help="each encoder with and without descriptions")
    rv.set_defaults(func=retrievers)
    cp = sub.add_parser("compare")
    cp.add_argument("variants", nargs="+")
    cp.add_argument("--rank-top", type=int, default=30)
    cp.add_argument("--rank-weight", type=float, default=0.3)
    cp.add_argument("--text-weight", type=float, default=0.5)
    cp.add_argument("--prior-weight", type=float, default=0.0)
    cp.set_defaults(func=compare)
    ft = sub.add_parser("finetune", help="fine-tune the encoder on the validation items (for run --encoder)")
    ft.add_argument("--splits", nargs="+", default=["tech_validation", "house_validation"],
                    choices=[x for x in SPLITS if x.endswith("validation")])
    ft.add_argument("--name", default="encoder-ft", help="folder under --out")
    ft.add_argument("--seed", type=int, default=0)
    ft.set_defaults(func=finetune)
    rep = sub.add_parser("report")
    rep.add_argument("--variant", default=None, help="record set (default: the retriever's)")
    rep.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    rep.add_argument("--weights", default=None,
                     help="row (d) with these weights instead of tuned.VARIANT.json, e.g. "
                     "text_weight=0.5,rank_weight=0.3,prior_weight=0,rank_top=30")
    rep.add_argument("--weights-examples", type=int, default=136,
                     help="how many validation items chose --weights (for the row's label)")
    rep.add_argument("--weights-note", default=None,
                     help="what row (d)'s weights are, instead of 'fusion fitted on N validation items'")
    rep.set_defaults(func=report)
    args = p.parse_args(argv)
    if args.out == DEFAULT_OUT:
        from zsl.util.paths import subdir

        args.out = str(subdir("bench") / "irera")
    os.environ.setdefault("ZSL_PROGRESS", "1" if sys.stderr.isatty() else "0")
    args.func(args)


if __name__ == "__main__":
    main()
