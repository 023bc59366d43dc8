"""Which label-free rule ``zsl label`` uses by default (issue #30): the item-local rules of
:class:`zsl.scoring.SetRule`, exactly as a run applies them, against every fixed k from 1 to 5.

Retrieval-only scores (no LLM; the default encoder) of GoEmotions dev (28 emotions, every
comment with a text) and of the seeded 1,000-item Reuters-21578 slice (90 topics,
``$ZSL_HOME/bench/llm/reuters-train-1000.jsonl``, written by ``python -m benchmarks.labelsets --make-slices``), cached in
``$ZSL_HOME/bench/setrules/``. Items without a gold label in the vocabulary are left out.
Micro-F1, macro-F1 (over labels with gold), example-F1 and labels per item::

    python -m benchmarks.setrules              # prints the table
    python -m benchmarks.setrules --write      # and writes it into BENCHMARKS.md

``benchmarks.labelsets`` (the whole of #30, with the LLM runs and the fitted rules) measures the
across-item rules of :mod:`zsl.scoring` as well; this one measures what a run can apply chunk by chunk.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import ROOT, write_section

DATA = next((d for d in (ROOT.parent / "shared" / "data", ROOT.parents[1] / "shared" / "data") if d.is_dir()),
            ROOT.parent / "shared" / "data")
#: the rules and parameters compared (fixed before measuring, never per dataset; the defaults first)
RULES: list[tuple[str, dict[str, Any]]] = [
    *[("topk", {"k": k}) for k in (1, 2, 3, 4, 5)],
    *[("gap", {"k": k}) for k in (2, 3, 4, 5)],
    *[("relative", {"margin": m}) for m in (0.01, 0.02, 0.03, 0.05)],
    *[("zscore", {"z": z}) for z in (1.5, 2.0, 2.5)],
]


def datasets(home: Path) -> dict[str, tuple[Path, Path, str]]:
    """name -> (items, vocabulary, label kind)."""
    return {"goemotions": (DATA / "goemotions" / "goemotions_dev.jsonl", DATA / "goemotions" / "goemotions_labels.txt",
                           "emotions"),
            "reuters": (home / "bench" / "llm" / "reuters-train-1000.jsonl",
                        DATA / "reuters21578" / "reuters21578_labels.tsv", "topics")}


def scores(name: str, items: Path, labels: Path, kind: str, cache: Path) -> tuple[np.ndarray, np.ndarray, Any]:
    """``(N, K)`` retrieval-only scores and the gold multi-hot of the items with a text and a gold label."""
    from zsl.text.tagger import Tagger
    from zsl.vocab import LabelVocab

    vocab = LabelVocab.from_file(labels)
    rows = [r for r in map(json.loads, items.read_text(encoding="utf-8").splitlines())
            if isinstance(r.get("text"), str) and r["text"].strip()]
    y = vocab.to_multi_hot([[lab for lab in r.get("labels", []) if lab in vocab] for r in rows]).astype(bool)
    key = hashlib.sha256(("\n".join(r["text"] for r in rows) + vocab.hash).encode()).hexdigest()[:12]
    path = cache / f"{name}.{key}.npy"
    if path.is_file():
        s = np.load(path)
    else:
        s = Tagger(vocab, label_kind=kind, infer=False, rank=False).score([r["text"] for r in rows])
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, s)
    keep = y.any(axis=1)
    return s[keep], y[keep], vocab


def set_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Micro-F1, macro-F1 (labels with gold), example-F1 and labels per item of sets ``p`` against ``y``."""
    tp = (y & p).sum()
    per_label = 2 * (y & p).sum(0) / np.maximum(y.sum(0) + p.sum(0), 1)
    per_item = np.where(y.sum(1) + p.sum(1) > 0, 2 * (y & p).sum(1) / np.maximum(y.sum(1) + p.sum(1), 1), 1.0)
    return {"micro_f1": 2 * tp / (y.sum() + p.sum()), "macro_f1": per_label[y.any(0)].mean(),
            "example_f1": per_item.mean(), "labels_per_item": p.sum(1).mean()}


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    names = list(results)
    head = "| rule | " + " | ".join(f"{n} micro-F1 | macro-F1 | ex-F1 | labels/item" for n in names) + " |"
    lines = [head, "|---|" + "---|---|---|---|" * len(names)]
    for rule in results[names[0]]:
        cells = [f"{r['micro_f1'] * 100:.1f} | {r['macro_f1'] * 100:.1f} | {r['example_f1'] * 100:.1f} | "
                 f"{r['labels_per_item']:.2f}" for r in (results[n][rule] for n in names)]
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from zsl.scoring import DEFAULT_SET_RULE, SET_RULE_PARAMS, SetRule
    from zsl.util.paths import zsl_home

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = ap.parse_args(argv)
    home = Path(zsl_home())
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, (items, labels, kind) in datasets(home).items():
        s, y, _ = scores(name, items, labels, kind, home / "bench" / "setrules")
        results[name] = {}
        for rule, params in RULES:
            floor = 0 if rule == "topk" else 1  # as zsl label: a label-free rule keeps at least the best label
            sets = SetRule(rule, **params, min_labels=floor).choose(s)
            results[name][f"{rule} {' '.join(f'{k}={v}' for k, v in params.items())}"] = set_metrics(y, sets)
    param, value = SET_RULE_PARAMS[DEFAULT_SET_RULE]
    block = (f"`python -m benchmarks.setrules` (retrieval only, the default encoder; GoEmotions dev and the seeded "
             f"1,000-item Reuters slice). The default of `zsl label` without examples: `{DEFAULT_SET_RULE} "
             f"{param}={value}`.\n\n{table(results)}\n")
    print(block)
    if args.write:
        write_section("setrules", block, heading="Label-free label-set rules (zsl label's default)")


if __name__ == "__main__":
    main()
