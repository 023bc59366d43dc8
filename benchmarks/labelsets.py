"""Label sets (issue #30): how many labels each item gets, with and without examples, and the catch-all label.

One run scores two datasets and compares every way of turning an ``(N, K)`` score matrix into
label sets, all with the library's own code (:mod:`zsl.scoring`, :class:`zsl.Tagger`'s ``fit`` and
``fit_scored``, :class:`zsl.scoring.CatchAll`):

* GoEmotions dev (5,426 comments, 28 emotions incl. the catch-all ``neutral``, 28% of gold);
* Reuters-21578 (the seeded 1,000-item slice of the ModApte train file, 90 topics, no catch-all),
  never tuned on.

Retrieval-only (the default encoder, every item) and with the LLM (the default program's finished
runs on the 200-item slices, read from ``--llm-dir``; the LLM is never started here). Per setting:
micro-F1, macro-F1, example-F1 and labels per item for

* every fixed k from 1 to 5 (``--rule topk -k K``);
* each label-free rule of ``zsl label --rule`` with its default parameter (the same on both datasets;
  ``gap``, the default, was chosen by ``benchmarks.setrules``, retrieval-only);
* the fitted program (what ``zsl fit`` brings: the examples as evidence, the catch-all pivot, per-label
  thresholds on the examples' out-of-fold scores choosing within each item's gap set; beside it the same
  thresholds alone, the rule before the gap bound) with 2 and 8 examples per label. With the LLM it is
  fitted on the examples' LLM run scores (``Tagger.fit_scored``: as ``zsl fit`` would, without demos). Retrieval-only the
  examples come from the train files (GoEmotions train; Reuters train outside the 1,000 slice), drawn
  with a seeded generator: for each label in vocabulary order, n items that carry it, with all their
  labels. The LLM rows need examples with LLM scores: the same train draws, LLM-scored once in
  ``<dataset>-train-shots.run`` (rows "n/label, M ex"; the 8/label target reads these when they
  exist), and, for comparison, cross-fitted inside the 200-item slice: 5 folds, fitted on the other
  folds' items (n per label, same draw), scored on the held-out fold (rows "cross-fit": fewer
  examples than asked for the rarer labels).

Rules marked ``+ca`` treat the vocabulary's catch-all labels (the name-based guess:
:func:`zsl.scoring.guess_catch_all`) as ``zsl label`` does: their score derived from the best other
score (:class:`zsl.scoring.CatchAll`; zero-shot pivot = the 0.2 quantile of that score over the run's
first items: retrieval scores of the first 1,000 without an LLM, the LLM program's scores of the first
200 with one; fitted with examples), never mixed with a real label. For the LLM rows, the recorded
score of the catch-all is replaced by the derived one exactly that way.

    python -m benchmarks.labelsets                      # retrieval-only + the LLM runs that are finished
    python -m benchmarks.labelsets --write              # ... and update BENCHMARKS.md
    python -m benchmarks.labelsets --make-slices        # the LLM runs' inputs, and their zsl label commands
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import ROOT, machine_line, write_jsonl

# ../shared/data beside the checkout (a worktree sits one level deeper: ../../shared/data)
DATA = next((d for d in (ROOT.parent / "shared" / "data", ROOT.parents[1] / "shared" / "data") if d.is_dir()),
            ROOT.parent / "shared" / "data")
KS = (1, 2, 3, 4, 5)
#: the label-free rules of `zsl label --rule NAME` with their default parameters (zsl.scoring.SET_RULE_PARAMS,
#: fixed before this benchmark ran; the same on both datasets), each as `zsl label` resolves it (min 1 label)
LABEL_FREE_RULES = ("gap", "relative", "zscore")


def rule_name(rule: str) -> str:
    """A rule's row name with its default parameter, e.g. ``gap (k 3)``."""
    from zsl.scoring import SET_RULE_PARAMS

    param, value = SET_RULE_PARAMS[rule]
    return f"{rule} ({param} {value})"


def label_free_rules() -> dict[str, Any]:
    """Row name -> the :class:`zsl.scoring.SetRule` that ``zsl label --rule NAME`` uses."""
    from zsl.runs.labeller import LabelSettings, resolve_rule

    return {rule_name(r): resolve_rule(LabelSettings(rule=r), None)[0] for r in LABEL_FREE_RULES}


def default_rule() -> str:
    """The row of `zsl label`'s default rule without examples (zsl.scoring.DEFAULT_SET_RULE)."""
    from zsl.scoring import DEFAULT_SET_RULE

    return rule_name(DEFAULT_SET_RULE)


SHOTS = (2, 8)
FOLDS = 5
SEED = 0


# -- data -------------------------------------------------------------------------------------
def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def reuters_slice(data: Path, n: int = 1000) -> tuple[list[dict], list[dict]]:
    """The seeded slice (COMMON.md's rule: file order of ``default_rng(0).permutation(N)[:n]``) and the rest."""
    rows = read_jsonl(data / "reuters21578" / "reuters21578_modapte_train.jsonl")
    keep = set(np.random.default_rng(0).permutation(len(rows))[:n].tolist())
    return [r for i, r in enumerate(rows) if i in keep], [r for i, r in enumerate(rows) if i not in keep]


def load_dataset(name: str, data: Path) -> dict[str, Any]:
    """Vocabulary, evaluation items and the train items examples are drawn from (those with a text)."""
    ds = _load_dataset(name, data)
    ds["train"] = [r for r in ds["train"] if str(r.get("text") or "").strip()]
    return ds


def _load_dataset(name: str, data: Path) -> dict[str, Any]:
    from zsl.vocab import LabelVocab

    if name == "goemotions":
        vocab = LabelVocab.from_file(data / "goemotions" / "goemotions_labels.txt")
        return {"vocab": vocab, "eval": read_jsonl(data / "goemotions" / "goemotions_dev.jsonl"),
                "train": read_jsonl(data / "goemotions" / "goemotions_train.jsonl"), "slice": "goemotions-dev-200"}
    vocab = LabelVocab.from_file(data / "reuters21578" / "reuters21578_labels.tsv")
    ev, train = reuters_slice(data)
    return {"vocab": vocab, "eval": ev, "train": train, "slice": "reuters-train-200"}


def draw_examples(rows: list[dict], vocab: Any, n: int, seed: int = SEED) -> list[int]:
    """Indices of ``rows``: for each label in vocabulary order, ``n`` items that carry it (seeded), once each."""
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    taken: set[int] = set()
    by_label: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        for lab in r["labels"]:
            by_label.setdefault(lab, []).append(i)
    for lab in vocab:
        pool = [i for i in by_label.get(lab, []) if i not in taken]
        have = sum(1 for i in chosen if lab in rows[i]["labels"])
        pick = rng.permutation(pool)[: max(0, n - have)].tolist()
        chosen += pick
        taken.update(pick)
    return chosen


# -- metrics ----------------------------------------------------------------------------------
def set_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """micro-F1, macro-F1 (labels in gold or predictions), example-F1 and labels per item, in percent / count."""
    from zsl.evaluation.metrics import f1_scores

    f = f1_scores(y, p)
    y, p = y.astype(bool), p.astype(bool)
    tp = (y & p).sum(1)
    denom = y.sum(1) + p.sum(1)
    ex = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 1.0).mean()
    return {"micro": 100 * f["micro_f1"], "macro": 100 * f["macro_f1"], "example": 100 * float(ex),
            "per_item": float(p.sum(1).mean())}


def catch_all_metrics(y: np.ndarray, p: np.ndarray, cols: np.ndarray) -> dict[str, float]:
    """The catch-all's recall and micro-F1 over the other labels."""
    from zsl.evaluation.metrics import f1_scores

    real = np.setdiff1d(np.arange(y.shape[1]), cols)
    yc, pc = y[:, cols].any(1), p[:, cols].any(1)
    return {"ca_recall": 100 * float((yc & pc).sum() / max(1, yc.sum())),
            "micro_other": 100 * f1_scores(y[:, real], p[:, real])["micro_f1"]}


# -- rules ------------------------------------------------------------------------------------
def zero_shot_sets(s: np.ndarray, cols: np.ndarray, pivot: float) -> dict[str, np.ndarray]:
    """Every fixed k and label-free rule, each also with the catch-all handling when there are catch-alls
    (``pivot``: the zero-shot pivot `zsl label` would use, see :func:`zsl_label_pivot`)."""
    from zsl.scoring import CatchAll, SetRule

    rules = {f"top-{k}": SetRule("topk", k=k) for k in KS}
    rules.update(label_free_rules())
    out = {}
    for name, rule in rules.items():
        out[name] = rule.choose(s).astype(np.uint8)
        if cols.size:
            ca = CatchAll(cols, pivot=pivot).fit(s)
            t = ca.transform(s)
            out[f"{name} +ca"] = ca.exclusive(rule.choose(t), t)
    return out


def program_sets(vocab: Any, cols: np.ndarray, examples: list[tuple[str, list[str]]], *, encoder: Any = None,
                 emb_eval: np.ndarray | None = None, zero: np.ndarray | None = None, s_eval: np.ndarray | None = None,
                 texts_eval: list[str] | None = None) -> dict[str, np.ndarray]:
    """The sets of the program ``zsl fit`` builds from ``examples``, plain and, with catch-all labels, ``+ca``
    (the catch-all pivot fitted on them): the examples as evidence, then per-label thresholds on their out-of-fold
    scores, choosing within each item's gap set (:meth:`zsl.Tagger.fitted_rule`). Retrieval-only
    (``zero`` None): :meth:`zsl.Tagger.fit`, eval items from their embeddings. With the LLM: the examples' and
    the eval items' run scores (``zero``, ``s_eval``) through :meth:`zsl.Tagger.fit_scored` and
    :meth:`~zsl.Tagger.score_from`, as if ``zsl fit`` had asked the LLM (no demos). For comparison,
    ``fitted, thresholds alone``: the same thresholds without the gap bound (zsl before it)."""
    import dataclasses

    from zsl.text.tagger import Tagger

    names = [vocab[int(c)] for c in cols]
    out = {}
    for tag, catch_all in (("", []), (" +ca", names)) if names else (("", []),):
        tagger = Tagger(vocab, encoder=encoder, infer=False, rank=False, catch_all=catch_all)
        if zero is None:
            tagger.fit(examples)
            s = tagger.score_embedded(emb_eval)
        else:
            s = tagger.fit_scored(examples, zero).score_from(s_eval, texts_eval)
        out[f"fitted{tag}"] = tagger.sets(s)
        alone = dataclasses.replace(tagger.fitted_rule(), k=None).choose(s).astype(np.uint8)
        out[f"fitted, thresholds alone{tag}"] = alone if tagger.catch_all_ is None else tagger.catch_all_.exclusive(alone, s)
    return out


def zsl_label_pivot(scores: np.ndarray, cols: np.ndarray, *, llm: bool = False) -> float:
    """The zero-shot pivot of `zsl label` (TextLabeller.prepare): the CatchAll quantile of the best other label's
    score over the run's first items, in the units its rows are scored in: the retrieval scores of the first
    1000 without an LLM step, the whole program's scores of the first 200 with one."""
    from zsl.runs.labeller import LM_PIVOT_ITEMS, RETRIEVAL_PIVOT_ITEMS
    from zsl.scoring import CatchAll

    n = LM_PIVOT_ITEMS if llm else RETRIEVAL_PIVOT_ITEMS
    return CatchAll(cols).fit(scores[:n]).pivot_ if cols.size else 0.0


# -- retrieval-only ---------------------------------------------------------------------------
def retrieval_scores(args: argparse.Namespace, name: str, ds: dict[str, Any], texts: list[str], tag: str) -> np.ndarray:
    """``(N, K)`` retrieval-only scores, cached in ``--out`` (keyed by dataset, encoder and the texts)."""
    import hashlib

    from zsl.text.tagger import Tagger

    key = hashlib.sha256(("\n".join(texts) + str(args.encoder) + ds["vocab"].hash).encode()).hexdigest()[:12]
    path = Path(args.out) / f"{name}.{tag}.{key}.npz"
    if path.is_file():
        z = np.load(path)
        return z["scores"], z["emb"]
    tagger = Tagger(ds["vocab"], encoder=args.encoder, infer=False, rank=False)
    emb = tagger.index_.encoder.encode(texts)
    scores = tagger.score_embedded(emb)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, scores=scores, emb=emb)
    return scores, emb


def retrieval_part(args: argparse.Namespace, name: str, ds: dict[str, Any]) -> dict[str, dict[str, float]]:
    from zsl.scoring import guess_catch_all

    vocab, rows = ds["vocab"], ds["eval"][: args.limit or None]
    y = vocab.to_multi_hot([r["labels"] for r in rows])
    cols = np.array([vocab.index(lab) for lab in guess_catch_all(vocab)], dtype=np.int64)
    s, emb = retrieval_scores(args, name, ds, [r["text"] for r in rows], "eval")
    sets = zero_shot_sets(s, cols, zsl_label_pivot(s, cols))
    for n in SHOTS:
        idx = draw_examples(ds["train"], vocab, n)
        examples = [(ds["train"][i]["text"], ds["train"][i]["labels"]) for i in idx]
        for key, p in program_sets(vocab, cols, examples, encoder=args.encoder, emb_eval=emb).items():
            sets[f"{key} ({n}/label, {len(idx)} ex)"] = p
    return {k: {**set_metrics(y, p), **(catch_all_metrics(y, p, cols) if cols.size else {})} for k, p in sets.items()}


# -- with the LLM (finished runs) -------------------------------------------------------------
LLM_LABELS = {"goemotions": "goemotions/goemotions_labels.txt --label-kind emotions --top-scores 28",
              "reuters": "reuters21578/reuters21578_labels.tsv --label-kind topics --top-scores 90"}
SLICE = 200


def make_slices(data: Path, llm: Path) -> None:
    """The LLM runs' inputs: the 200-item slices (file order of ``default_rng(0).permutation(N)[:200]`` of
    GoEmotions dev and of the Reuters train file: the first 200 of the 1,000-item slice's draw) and the train
    examples (both draws, 8 then 2 per label: :func:`draw_examples`); also ``reuters-train-1000.jsonl`` (the
    retrieval rows' slice, for ``benchmarks.setrules``); prints the ``zsl label`` commands."""
    llm.mkdir(parents=True, exist_ok=True)
    sources = {"goemotions": data / "goemotions" / "goemotions_dev.jsonl",
               "reuters": data / "reuters21578" / "reuters21578_modapte_train.jsonl"}
    for name, src in sources.items():
        rows = read_jsonl(src)
        keep = sorted(np.random.default_rng(0).permutation(len(rows))[:SLICE].tolist())
        ds = load_dataset(name, data)
        slice_name = ds["slice"]
        write_jsonl(llm / f"{slice_name}.jsonl", [rows[i] for i in keep])
        idx = list(dict.fromkeys(draw_examples(ds["train"], ds["vocab"], 8) + draw_examples(ds["train"], ds["vocab"], 2)))
        write_jsonl(llm / f"{name}-train-shots.jsonl", [
            {"id": str(ds["train"][i].get("id", i)), "text": ds["train"][i]["text"], "labels": ds["train"][i]["labels"]}
            for i in idx])
        if name == "reuters":  # the retrieval rows' 1,000-item slice, read by benchmarks.setrules
            write_jsonl(llm / "reuters-train-1000.jsonl", reuters_slice(data)[0])
        for stem, extra in ((slice_name, ""), (f"{name}-train-shots", " --no-catch-all-guess")):
            print(f"cd {llm} && zsl label {stem}.jsonl --labels {data}/{LLM_LABELS[name]}{extra} --out {stem}.run")


def read_run(run: Path, vocab: Any) -> tuple[list[str], np.ndarray] | None:
    """Ids and ``(N, K)`` scores of a finished run dir (None while it is missing or running)."""
    if not (run / "summary.json").is_file() or not (run / "labels.jsonl").is_file():
        return None
    ids, scores = [], []
    for row in read_jsonl(run / "labels.jsonl"):
        top = row.get("top_scores") or {}
        if len(top) < len(vocab):
            raise SystemExit(f"{run}: rows keep {len(top)} of {len(vocab)} scores; rerun with --top-scores {len(vocab)}")
        ids.append(str(row["id"]))
        scores.append([float(top[lab]) for lab in vocab])
    return ids, np.asarray(scores, dtype=np.float64)


def llm_part(args: argparse.Namespace, name: str, ds: dict[str, Any]) -> dict[str, dict[str, float]] | str:
    from zsl.scoring import guess_catch_all

    vocab = ds["vocab"]
    llm = Path(os.path.expandvars(args.llm_dir))
    got = read_run(llm / f"{ds['slice']}.run", vocab)
    if got is None:
        return (f"not finished: `python -m benchmarks.labelsets --make-slices`, then `cd {llm} && zsl label "
                f"{ds['slice']}.jsonl --labels {DATA}/{LLM_LABELS[name]} --out {ds['slice']}.run`")
    ids, s = got
    gold = {str(r["id"]): r["labels"] for r in read_jsonl(llm / f"{ds['slice']}.jsonl")}
    y = vocab.to_multi_hot([gold[i] for i in ids])
    cols = np.array([vocab.index(lab) for lab in guess_catch_all(vocab)], dtype=np.int64)
    # the run's rows are in run order: zsl label's pivot comes from the LLM scores of the first of them
    sets = zero_shot_sets(s, cols, zsl_label_pivot(s, cols, llm=True))
    fold = np.random.default_rng(SEED).permutation(len(ids)) % FOLDS
    rows = [{"labels": gold[i]} for i in ids]
    text = {str(r["id"]): r["text"] for r in read_jsonl(llm / f"{ds['slice']}.jsonl")}
    for n in SHOTS:
        pred: dict[str, np.ndarray] = {}
        for f in range(FOLDS):
            train = np.flatnonzero(fold != f)
            pick = train[draw_examples([rows[i] for i in train], vocab, n)]
            test = np.flatnonzero(fold == f)
            examples = [(text[ids[i]], gold[ids[i]]) for i in pick]
            for key, p in program_sets(vocab, cols, examples, encoder=args.encoder, zero=s[pick], s_eval=s[test],
                                       texts_eval=[text[ids[i]] for i in test]).items():
                pred.setdefault(key, np.zeros_like(y, dtype=np.uint8))[test] = p
        for key, p in pred.items():
            sets[f"{key} ({n}/label, cross-fit)"] = p
    sets.update(train_example_sets(llm, name, ds, s, [text[i] for i in ids], cols, args.encoder))
    return {k: {**set_metrics(y, p), **(catch_all_metrics(y, p, cols) if cols.size else {})} for k, p in sets.items()}


def train_example_sets(llm: Path, name: str, ds: dict[str, Any], s: np.ndarray, texts: list[str],
                       cols: np.ndarray, encoder: Any = None) -> dict:
    """The program fitted on n examples per label drawn from the train file as for the retrieval rows, from their
    LLM scores (the finished run ``<name>-train-shots.run`` over ``<name>-train-shots.jsonl``, which holds both
    draws), applied to the slice's scores; nothing while that run is missing or lacks an example."""
    vocab = ds["vocab"]
    got = read_run(llm / f"{name}-train-shots.run", vocab)
    if got is None:
        return {}
    by_id = dict(zip(got[0], got[1], strict=True))
    out = {}
    for n in SHOTS:
        idx = draw_examples(ds["train"], vocab, n)
        ids = [str(ds["train"][i].get("id", i)) for i in idx]
        if any(i not in by_id for i in ids):
            continue
        examples = [(ds["train"][i]["text"], ds["train"][i]["labels"]) for i in idx]
        for key, p in program_sets(vocab, cols, examples, encoder=encoder, zero=np.stack([by_id[i] for i in ids]),
                                   s_eval=s, texts_eval=texts).items():
            out[f"{key} ({n}/label, {len(idx)} ex)"] = p
    return out


# -- targets and the table --------------------------------------------------------------------
def targets(name: str, setting: str, res: dict[str, dict[str, float]], has_ca: bool) -> list[tuple[str, bool, str]]:
    """(target, passed, numbers) for one dataset and setting."""
    # in hindsight, with or without the catch-all handling, whichever is better
    best_k = max((f"top-{k}{ca}" for k in KS for ca in (("", " +ca") if has_ca else ("",))),
                 key=lambda r: res[r]["micro"])
    bk = res[best_k]["micro"]
    default = f"{default_rule()} +ca" if has_ca else default_rule()
    out = [(f"{name} {setting}: default rule `{default}` beats the best fixed k ({best_k}) on micro-F1",
            res[default]["micro"] > bk, f"{res[default]['micro']:.1f} vs {bk:.1f}")]
    for rule in map(rule_name, LABEL_FREE_RULES):  # the same target for every label-free rule, for comparison
        key = f"{rule} +ca" if has_ca else rule
        if key != default:
            out.append((f"{name} {setting}: (candidate) `{key}` beats {best_k} on micro-F1", res[key]["micro"] > bk,
                        f"{res[key]['micro']:.1f} vs {bk:.1f}"))
    # examples from the train file when their LLM scores exist (as the retrieval rows), else the cross-fit
    eight = sorted((k for k in res if k.startswith("fitted" + (" +ca" if has_ca else "") + " (8/label")),
                   key=lambda k: "cross-fit" in k)
    if eight:
        out.append((f"{name} {setting}: fitted rule with 8 examples/label beats {best_k} by >= 5 points",
                    res[eight[0]]["micro"] >= bk + 5, f"{res[eight[0]]['micro']:.1f} vs {bk:.1f} + 5"))
    if has_ca and setting == "LLM":
        plain = res[default_rule()]
        out += _neutral_target(name, plain, res[default], " (+ca: zsl label's pivot, from the run's LLM scores)")
        if eight:  # with examples: the program zsl fit builds with the catch-all vs the same without its handling
            key = eight[0]
            out += _neutral_target(name, res[key.replace(" +ca", "", 1)], res[key],
                                   f" (with 8 examples/label: `{key}` vs the same program without catch-all handling)")
    return out


def _neutral_target(name: str, plain: dict, ca: dict, how: str) -> list[tuple[str, bool, str]]:
    return [(f"{name} LLM: `neutral` recall > 30 with no loss of micro-F1 on the other labels{how}",
             ca["ca_recall"] > 30 and ca["micro_other"] >= plain["micro_other"] - 1e-9,
             (f"recall {ca['ca_recall']:.1f}; other-label micro-F1 {ca['micro_other']:.1f} vs "
              f"{plain['micro_other']:.1f} without catch-all handling"))]


def table(name: str, setting: str, res: dict[str, dict[str, float]]) -> str:
    ca = any("ca_recall" in v for v in res.values())
    head = "| rule | micro-F1 | macro-F1 | example-F1 | labels/item |" + (" catch-all recall | micro-F1 other labels |" if ca else "")
    sep = "|---|---:|---:|---:|---:|" + ("---:|---:|" if ca else "")
    lines = [f"**{name}, {setting}**", "", head, sep]
    for rule, m in res.items():
        extra = f" {m['ca_recall']:.1f} | {m['micro_other']:.1f} |" if ca else ""
        lines.append(f"| {rule} | {m['micro']:.1f} | {m['macro']:.1f} | {m['example']:.1f} | {m['per_item']:.2f} |{extra}")
    return "\n".join(lines)


def _save(args: argparse.Namespace, name: str, res: dict[str, dict[str, float]]) -> None:
    """Each setting's numbers as JSON in ``--out`` (the tables can be rebuilt without rescoring)."""
    path = Path(args.out) / f"results.{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1), encoding="utf-8")


def run(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    blocks, checks, missing = [], [], []
    for name in args.dataset:
        ds = load_dataset(name, Path(args.data))
        has_ca = name == "goemotions"
        if "retrieval" in args.part:
            res = retrieval_part(args, name, ds)
            blocks.append(table(name, f"retrieval-only ({len(ds['eval'][: args.limit or None])} items)", res))
            checks += targets(name, "retrieval-only", res, has_ca)
            print(blocks[-1], flush=True)  # a long run shows each table as it is done
            _save(args, f"{name}.retrieval", res)
        if "llm" in args.part:
            res = llm_part(args, name, ds)
            if isinstance(res, str):
                missing.append(f"{name} LLM: {res}")
            else:
                blocks.append(table(name, "LLM (the default program, 200-item slice; rows \"n/label, M ex\": "
                                          "examples from the train file, LLM-scored; \"cross-fit\": inside the "
                                          f"slice, {FOLDS} folds; rows without +ca: the run's own scores, whose "
                                          "catch-all scores zsl label derived if it had one, under the rule alone)",
                                    res))
                checks += targets(name, "LLM", res, has_ca)
                _save(args, f"{name}.llm", res)
    command = f"python -m benchmarks.labelsets{' --write' if args.write else ''}"
    head = (f"Command: `{command}` ({time.perf_counter() - t0:.0f} s on {machine_line()}; encoder "
            f"{args.encoder or 'the default'}).")
    lines = [head, ""]
    for b in blocks:
        lines += [b, ""]
    lines += ["Targets:", ""] + [f"- {'PASS' if ok else 'FAIL'}: {what} ({nums})" for what, ok, nums in checks]
    lines += [f"- not measured: {m}" for m in missing]
    text = "\n".join(lines)
    print(text)
    if args.write:
        from benchmarks import write_section

        print(f"updated {write_section('labelsets', text, heading='Label sets: rules, examples, catch-all labels (issue #30)')}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.labelsets", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DATA), help="the folder holding goemotions/ and reuters21578/")
    p.add_argument("--llm-dir", default="$ZSL_HOME/bench/llm", help="where the finished LLM run dirs are")
    p.add_argument("--out", default=None, help="score cache (default $ZSL_HOME/bench/labelsets)")
    p.add_argument("--encoder", default=None, help="retrieval encoder (default: zsl's default)")
    p.add_argument("--dataset", action="append", choices=("goemotions", "reuters"))
    p.add_argument("--part", action="append", choices=("retrieval", "llm"))
    p.add_argument("--limit", type=int, default=0, help="score only the first N items (a quick check)")
    p.add_argument("--write", action="store_true", help="update the section in BENCHMARKS.md")
    p.add_argument("--make-slices", action="store_true",
                   help="write the LLM runs' input files into --llm-dir (seeded) and print the commands, then stop")
    args = p.parse_args(argv)
    if "ZSL_HOME" not in os.environ:
        from zsl.util.paths import subdir

        os.environ["ZSL_HOME"] = str(subdir("bench").parent)
    if args.make_slices:
        make_slices(Path(args.data), Path(os.path.expandvars(args.llm_dir)))
        return
    args.dataset = args.dataset or ["goemotions", "reuters"]
    args.part = args.part or ["retrieval", "llm"]
    args.func = run
    from benchmarks import run_parsed

    run_parsed(args, "labelsets")


if __name__ == "__main__":
    main()
