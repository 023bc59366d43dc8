"""A small run directory for the review-loop tests: two topics, a few planted wrong labels, one hostile text."""

from __future__ import annotations

import json
from pathlib import Path

from zsl.rows import meta_path, run_meta
from zsl.vocab import LabelVocab

LABELS = ["sports", "politics", "cooking", "weather"] + [f"extra label {i:05d}" for i in range(40)]
HOSTILE = 'Match report <script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2"> & goal'
SPORTS = ["the striker scored a goal in the football match", "the team won the league final on penalties",
          "a late goal decided the football derby", "the keeper saved a penalty in the match"]
POLITICS = ["parliament passed the budget after a long vote", "the election campaign and the party leader",
            "the minister resigned after the vote in parliament", "voters went to the polls in the election"]
WRONG = {"s3", "p5"}  # rows whose silver label is the other topic's


def make_run(folder: Path, n_per_topic: int = 12, *, with_meta: bool = True, n_extra: int = 0) -> Path:
    """Write ``folder/labels.jsonl`` (+ sidecar and manifest) as `zsl label` would, and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for topic, texts, other, prefix in (("sports", SPORTS, "politics", "s"), ("politics", POLITICS, "sports", "p")):
        for i in range(n_per_topic):
            item_id = f"{prefix}{i}"
            label = other if item_id in WRONG else topic
            text = texts[i % len(texts)] + f" (report {i})"
            if item_id == "s0":
                text = HOSTILE
            second = "weather" if i % 2 else "cooking"
            rows.append({"id": item_id, "text": text, "labels": [label, second], "scores": [0.61, 0.2],
                         "top_scores": {label: 0.61, second: 0.2, other if label == topic else topic: 0.1}})
    (folder / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    if with_meta:
        vocab = LabelVocab(LABELS + [f"skill number {i:05d}" for i in range(n_extra)])
        meta = run_meta(vocab, k=2, top_scores=3, provenance={"encoder": "hashing"}, n_items=len(rows))
        meta_path(folder / "labels.jsonl").write_text(json.dumps(meta), encoding="utf-8")
    (folder / "manifest.json").write_text(json.dumps({"zsl_run": 1}), encoding="utf-8")
    return folder
