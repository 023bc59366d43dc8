"""Label-quality ranking on silver data with known errors (issue #17): does it find the wrong rows?

    python -m benchmarks.quality run [--dataset goemotions reuters] [--n 10000] [--seeds 0 1 2]
    python -m benchmarks.quality timing          # cleanlab / student time against rows x label columns
    python -m benchmarks.quality report [--write]

Data: gold-labelled items of the shared train files (GoEmotions: a seeded slice of ``--n``
items, 28 labels; Reuters-21578 ModApte train: every item with a label, 7,770, 90 labels).
Their gold labels play the silver labels, and 10% of the rows (seeded) are corrupted, in
three documented ways, a third each:

* ``swap``: one of the row's labels is replaced by a label drawn uniformly from the others;
* ``add``: a label drawn uniformly from the others is added;
* ``confuse``: one of the row's labels is replaced by the label the zero-shot teacher ranks
  highest among those the row lacks (a plausible mistake, the kind a teacher makes).

Scores compared, each ranking the rows most-likely-wrong first:

* ``cleanlab``: 1 - cleanlab's multi-label label-quality score of the silver labels against a
  student cross-fitted on them (:func:`zsl.review.quality.cross_fit_proba`, 5 folds, MiniLM embeddings);
* ``cleanlab adjusted``: the same with cleanlab's ``adjust_pred_probs`` (each label's average
  confidence subtracted first, so rare labels do not fill the top);
* ``student disagreement``: share of a row's labels outside the student's top ``len(labels)``;
* ``teacher confidence``: 1 - the zero-shot teacher's mean score of the row's labels (retrieval
  on the MiniLM encoder, the vocabulary's descriptions when it has them: ``zsl label --no-infer
  --no-rank``);
* ``teacher disagreement``: share of a row's labels outside the teacher's top ``len(labels)``
  (the ``disagreement`` of ``zsl export``).

Metrics: precision of the 100 worst-ranked rows (share that were corrupted; 10% by chance) and
the AUROC of the score for "this row was corrupted", overall and per kind of corruption; and,
to show what fills the top of each ranking, the median over the 100 worst rows of how many
rows carry the row's rarest label. ``timing`` measures, on 10,000 rows, the
cross-fitted student and cleanlab (quality scores + ``find_label_issues``) at 90 label columns
(Reuters rows, resampled to 10,000) and cleanlab alone at 1,000 and 2,000 columns (the Reuters
probabilities padded with columns no row uses and small random probabilities: what a
14k-label vocabulary costs after :func:`zsl.review.quality.choose_columns` keeps at most 2,000).
Embeddings are cached in ``$ZSL_HOME/bench/quality/``; records go to ``records.jsonl`` there.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

DATASETS = ("goemotions", "reuters")
KINDS = ("swap", "add", "confuse")
METHODS = ("cleanlab", "cleanlab adjusted", "student disagreement", "teacher confidence", "teacher disagreement")


def load(name: str, n: int, seed: int = 0) -> tuple[Any, list[dict[str, Any]]]:
    """``(vocab, rows)``: up to ``n`` seeded gold-labelled rows of the shared train file."""
    from benchmarks.budget import load as budget_load

    vocab, _kind, rows, _ = budget_load(name, n, 0, seed)
    return vocab, rows


def corrupt(y: np.ndarray, teacher: np.ndarray, frac: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(corrupted labels, corrupted-row mask, kind per row)``: ``frac`` of the rows, the three KINDS in turn.

    Example:
        >>> y = np.eye(4, dtype=np.uint8)[[0, 1, 2, 3] * 5]
        >>> z, mask, kinds = corrupt(y, np.random.default_rng(0).random((20, 4)), frac=0.15)
        >>> int(mask.sum()), sorted(set(k for k in kinds if k))
        (3, ['add', 'confuse', 'swap'])
        >>> bool((z[mask] != y[mask]).any(axis=1).all()), bool((z[~mask] == y[~mask]).all())
        (True, True)
    """
    rng = np.random.default_rng(seed)
    n = len(y)
    rows = rng.choice(n, size=round(frac * n), replace=False)
    out = y.copy()
    kinds = [""] * n
    for t, i in enumerate(rows):
        kind = KINDS[t % len(KINDS)]
        have = np.flatnonzero(out[i])
        lack = np.flatnonzero(out[i] == 0)
        if kind == "add" or not len(have):
            out[i, rng.choice(lack)] = 1
        else:
            drop = rng.choice(have)
            new = rng.choice(lack) if kind == "swap" else lack[np.argmax(teacher[i, lack])]
            out[i, drop], out[i, new] = 0, 1
        kinds[i] = kind
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return out, mask, kinds


def suspicion(y: np.ndarray, teacher: np.ndarray, proba: np.ndarray) -> dict[str, np.ndarray]:
    """Per method, a score per row: higher = more likely wrong."""
    from zsl.review.quality import label_quality, student_disagreement

    m = np.maximum(y.sum(axis=1), 1)
    return {"cleanlab": 1.0 - label_quality(y, proba),
            "cleanlab adjusted": 1.0 - label_quality(y, proba, adjust=True),
            "student disagreement": student_disagreement(y, proba),
            "teacher confidence": -(teacher * y).sum(axis=1) / m,
            "teacher disagreement": student_disagreement(y, teacher)}


def precision_at(score: np.ndarray, truth: np.ndarray, k: int = 100) -> float:
    """Share of the ``k`` highest-scored rows that are true (ties broken by row order)."""
    top = np.argsort(-score, kind="stable")[:k]
    return float(truth[top].mean())


def _embed(name: str, texts: list[str], out: Path, encoder: Any) -> np.ndarray:
    path = out / f"{name}.{len(texts)}.emb.npy"
    if path.is_file():
        emb = np.load(path)
        if len(emb) == len(texts):
            return emb
    t = time.perf_counter()
    emb = encoder.encode(texts, batch_size=64).astype(np.float32)
    print(f"{name}: embedded {len(texts)} texts in {time.perf_counter() - t:.0f}s", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    np.save(path, emb)
    return emb


def _data(name: str, n: int, out: Path, encoder: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """``(vocab, embeddings, gold (N, K), teacher scores (N, K))``."""
    from zsl import Tagger

    vocab, rows = load(name, n)
    emb = _embed(name, [r["text"] for r in rows], out, encoder)
    col = {lab: j for j, lab in enumerate(vocab.labels)}
    y = np.zeros((len(rows), len(vocab)), dtype=np.uint8)
    for i, r in enumerate(rows):
        y[i, [col[lab] for lab in r["labels"] if lab in col]] = 1
    teacher = Tagger(vocab, encoder=encoder, infer=False, rank=False).score_embedded(emb)
    return vocab, emb, y, np.asarray(teacher, dtype=np.float32)


def run(args: argparse.Namespace) -> None:
    from sklearn.metrics import roc_auc_score

    from zsl.models.encoders import get_encoder
    from zsl.review.quality import cross_fit_proba

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    encoder = get_encoder(None)
    records = out / "records.jsonl"
    for name in args.dataset:
        vocab, emb, gold, teacher = _data(name, args.n, out, encoder)
        for seed in args.seeds:
            y, mask, kinds = corrupt(gold, teacher, args.frac, seed)
            t = time.perf_counter()
            proba = cross_fit_proba(emb, y, random_state=seed)
            student_s = time.perf_counter() - t
            t = time.perf_counter()
            scores = suspicion(y, teacher, proba)
            cleanlab_s = time.perf_counter() - t
            freq = y.sum(axis=0)
            rare_all = float(np.median([freq[np.flatnonzero(r)].min() for r in y if r.any()]))
            rec: dict[str, Any] = {"dataset": name, "rows": len(y), "labels": len(vocab), "seed": seed,
                                   "rarest_label_rows": rare_all,
                                   "corrupted": int(mask.sum()), "student_s": round(student_s, 2),
                                   "cleanlab_s": round(cleanlab_s, 2), "methods": {}}
            for method, s in scores.items():
                per_kind = {k: round(float(roc_auc_score(mask[(~mask) | (np.array(kinds) == k)],
                                                         s[(~mask) | (np.array(kinds) == k)])), 4) for k in KINDS}
                top = np.argsort(-s, kind="stable")[:100]
                rarest = [int(freq[np.flatnonzero(y[i])].min()) for i in top if y[i].any()]
                rec["methods"][method] = {"p_at_100": precision_at(s, mask), "auroc": round(float(roc_auc_score(mask, s)), 4),
                                          "auroc_by_kind": per_kind, "rarest_label_rows_top100": float(np.median(rarest))}
            print(json.dumps(rec), flush=True)
            with records.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(rec) + "\n")


def timing(args: argparse.Namespace) -> None:
    from zsl.models.encoders import get_encoder
    from zsl.review.quality import cross_fit_proba, find_issues, label_quality

    out = Path(args.out)
    encoder = get_encoder(None)
    _vocab, emb, gold, _teacher = _data("reuters", 100_000, out, encoder)
    rng = np.random.default_rng(0)
    idx = rng.choice(len(gold), size=args.rows, replace=len(gold) < args.rows)
    emb, y = emb[idx], gold[idx]
    recs = []
    t = time.perf_counter()
    proba = cross_fit_proba(emb, y)
    recs.append({"what": "student (5-fold cross-fit)", "rows": len(y), "columns": y.shape[1],
                 "seconds": round(time.perf_counter() - t, 2)})
    for cols in args.columns:
        extra = cols - y.shape[1]
        yy = np.hstack([y, np.zeros((len(y), max(extra, 0)), dtype=y.dtype)])[:, :cols]
        pp = np.hstack([proba, 0.02 * rng.random((len(y), max(extra, 0)))])[:, :cols]
        t = time.perf_counter()
        label_quality(yy, pp)
        t_rank = time.perf_counter() - t
        t = time.perf_counter()
        find_issues(yy, pp)
        t_find = time.perf_counter() - t
        recs.append({"what": "cleanlab", "rows": len(y), "columns": cols, "quality_s": round(t_rank, 2),
                     "find_issues_s": round(t_find, 2)})
        print(json.dumps(recs[-1]), flush=True)
    print(json.dumps(recs[0]))
    path = out / "timing.json"
    old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    key = lambda r: (r["what"], r["rows"], r["columns"])  # a rerun replaces the same measurement
    merged = {key(r): r for r in old} | {key(r): r for r in recs}
    path.write_text(json.dumps(sorted(merged.values(), key=lambda r: (r["what"] != "cleanlab", r["columns"])),
                               indent=1), encoding="utf-8")


def report(args: argparse.Namespace) -> None:
    out = Path(args.out)
    recs = [json.loads(x) for x in (out / "records.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    last: dict[tuple, dict] = {}
    for r in recs:
        last[(r["dataset"], r["seed"])] = r  # a rerun replaces its earlier record
    lines = [("| dataset (rows x labels, seeds) | score | precision of the 100 worst | AUROC | AUROC swap / add / "
              "confuse | rarest label of a worst-100 row: rows with it (median) |"), "|---|---|---|---|---|---|"]
    for name in DATASETS:
        group = [r for (d, _), r in sorted(last.items()) if d == name]
        if not group:
            continue
        head = f"{name} ({group[0]['rows']:,} x {group[0]['labels']}, {len(group)})"
        if "rarest_label_rows" in group[0]:
            lines.append(f"| {head} | (all rows) | 0.10 (chance) | 0.500 | | {group[0]['rarest_label_rows']:,.0f} |")
            head = ""
        for m in METHODS:
            if any(m not in r["methods"] for r in group):
                continue
            p = np.mean([r["methods"][m]["p_at_100"] for r in group])
            a = np.mean([r["methods"][m]["auroc"] for r in group])
            kinds = " / ".join(f"{np.mean([r['methods'][m]['auroc_by_kind'][k] for r in group]):.3f}" for k in KINDS)
            rare = np.median([r["methods"][m].get("rarest_label_rows_top100", np.nan) for r in group])
            lines.append(f"| {head} | {m} | {p:.2f} | {a:.3f} | {kinds} | {rare:,.0f} |")
            head = ""
    table = "\n".join(lines)
    tpath = out / "timing.json"
    if tpath.is_file():
        t = json.loads(tpath.read_text(encoding="utf-8"))
        rows = ["| what | rows x label columns | seconds |", "|---|---|---|"]
        for r in t:
            if r["what"] == "cleanlab":
                rows.append(f"| cleanlab: quality scores + find_label_issues | {r['rows']:,} x {r['columns']:,} | "
                            f"{r['quality_s']:.2f} + {r['find_issues_s']:.1f} |")
            else:
                rows.append(f"| {r['what']} | {r['rows']:,} x {r['columns']:,} | {r['seconds']:.1f} |")
        for name in DATASETS:
            group = [r for (d, _), r in sorted(last.items()) if d == name]
            if group:
                secs = [r["student_s"] for r in group]
                rows.append(f"| student (5-fold cross-fit), the {name} runs above | {group[0]['rows']:,} x "
                            f"{group[0]['labels']} | {min(secs):.0f}-{max(secs):.0f} |")
        table += "\n\nTime (2 CPU cores, shared with other jobs; the load varied):\n\n" + "\n".join(rows)
    print(table)
    if args.write:
        from benchmarks import write_section

        cmd = ("`python -m benchmarks.quality run` (GoEmotions 10,000-item slice and Reuters ModApte train, "
               "10% of rows corrupted, 3 seeds), `python -m benchmarks.quality timing` and "
               "`python -m benchmarks.quality timing --columns 13896` (every ESCO label, unrestricted), then "
               "`python -m benchmarks.quality report --write`")
        print(f"updated {write_section('quality', cmd + chr(10) + chr(10) + table, heading='Label-quality ranking (issue #17)')}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="records folder (default: $ZSL_HOME/bench/quality)")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dataset", nargs="+", default=list(DATASETS), choices=DATASETS)
    r.add_argument("--n", type=int, default=10_000, help="rows per dataset (default 10,000; Reuters has 7,770)")
    r.add_argument("--frac", type=float, default=0.1, help="share of rows corrupted (default 0.1)")
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    r.set_defaults(func=run)
    t = sub.add_parser("timing")
    t.add_argument("--rows", type=int, default=10_000)
    t.add_argument("--columns", nargs="+", type=int, default=[90, 1000, 2000])
    t.set_defaults(func=timing)
    rep = sub.add_parser("report")
    rep.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    rep.set_defaults(func=report)
    from benchmarks import run_parsed

    random.seed(0)
    run_parsed(p.parse_args(argv), "quality")


if __name__ == "__main__":
    main()
