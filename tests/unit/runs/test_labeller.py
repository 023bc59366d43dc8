"""One labeller over any Scorer, and the grouped settings of a run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zsl.base import BatchScores, ScorerMixin
from zsl.data.files import Item
from zsl.errors import InputError
from zsl.runs.label import label_run
from zsl.runs.labeller import Labeller, LabelSettings
from zsl.scoring import SetRule
from zsl.util.retry import Skipped
from zsl.vocab import LabelVocab


class LengthScorer(ScorerMixin):
    """A scorer zsl knows nothing about: label j scores how close the text's length is to j + 1 words."""

    def __init__(self):
        self.vocab = LabelVocab(["one word", "two words", "three words"])

    def score(self, items):
        n = np.array([len(t.split()) for t in items], dtype=np.float32)[:, None]
        return (1.0 / (1.0 + np.abs(n - np.arange(1, 4)[None, :]))).astype(np.float32)

    def score_batch(self, items):
        ok = [i for i, t in enumerate(items) if "unreadable" not in t]
        failed = {i: f"{items[i]}: cannot read it" for i in range(len(items)) if i not in ok}
        return BatchScores(self.score([items[i] for i in ok]), ok, failed)

    def config(self):
        return {"rule": "length"}


def test_one_labeller_labels_any_scorer_and_builds_its_rows():
    lab = Labeller(LengthScorer(), k=2, kind="custom", rule=SetRule("threshold", threshold=0.9))
    ticks = []
    out, usage = lab.label([Item("a", "hello"), Item("b", "an unreadable thing"), Item("c", "three words here",
                                                                                      gold=["three words"])],
                           ticks.append)
    assert usage == {} and sum(ticks) == 3
    # the rule's set (scores >= 0.9) is the row's labels; the ranking stays in top_scores
    assert out[0] == {"id": "a", "text": "hello", "labels": ["one word"], "scores": [1.0],
                      "top_scores": {"one word": 1.0, "two words": 0.5, "three words": 0.3333}}
    assert out[1] == Skipped("an unreadable thing: cannot read it", retryable=False)
    assert out[2]["labels"] == ["three words"] and out[2]["gold"] == ["three words"]
    assert lab.config() == {"kind": "custom", "k": 2, "top_scores": 3, "vocab_hash": lab.vocab.hash,
                            "settings": {"rule": "length"},
                            "rule": {"name": "threshold", "threshold": 0.9, "min_labels": 0, "max_labels": None,
                                     "fitted": False}}
    # the per-item path (a scorer with an LLM step) builds the same rows
    lab.uses_lm = True
    per_item, _ = lab.label([Item("a", "hello")], ticks.append)
    assert per_item[0] == out[0]


def test_label_run_takes_grouped_settings_or_single_ones_and_refuses_unknown_ones(tmp_path):
    items = tmp_path / "items.txt"
    items.write_text("football final tonight\nstorm warning for the coast\n", encoding="utf-8")
    labels = ["sports", "weather"]
    grouped = LabelSettings(encoder="hashing", infer=False, rank=False, k=1)
    a = label_run(items, labels, out=tmp_path / "a", settings=grouped)
    b = label_run(items, labels, out=tmp_path / "b", encoder="hashing", infer=False, rank=False, k=1)
    assert (tmp_path / "a" / "labels.jsonl").read_bytes() == (tmp_path / "b" / "labels.jsonl").read_bytes()
    assert a.labelled == b.labelled == 2
    settings = json.loads((tmp_path / "a" / "manifest.json").read_text())["settings"]
    assert settings["kind"] == "text" and settings["k"] == 1 and settings["chunk_size"] == 1000
    with pytest.raises(InputError, match=r"Unknown settings \['temprature'\]; expected some of \['k', 'lm'"):
        label_run(items, labels, out=tmp_path / "c", temprature=0.2)
    with pytest.raises(InputError, match="chunk_size must be >= 1"):
        label_run(items, labels, out=tmp_path / "c", settings=grouped.updated(chunk_size=0))
    assert not (tmp_path / "c").exists()


def test_a_skipped_item_is_an_errors_line_with_the_same_keys_as_before():
    from zsl.runs.chunks import item_error

    item = Item("a", "some text")
    assert json.dumps(item_error(item, Skipped("item a: RateLimitError: slow down", retryable=True))) == \
        '{"id": "a", "reason": "item a: RateLimitError: slow down", "retryable": true}'
    assert json.dumps(item_error(item, Skipped("item a: ValueError: nonsense"))) == \
        '{"id": "a", "reason": "item a: ValueError: nonsense"}'
    assert not isinstance(Skipped("x"), str)  # an outcome is a row (dict) or a Skipped, never a bare string


def test_cheap_pass_gives_the_programs_embeddings_and_retrieval_scores_in_batches():
    from zsl.runs.labeller import make_labeller

    lab = make_labeller("jsonl", LabelVocab(["sports", "weather", "politics"]),
                        LabelSettings(encoder="hashing", infer=False, rank=False, k=1))
    texts = ["football final", "storm warning", "election night"]
    done = []
    emb, scores = lab.cheap_pass(texts, done.append, batch=2)
    assert done == [2, 1] and emb.dtype == scores.dtype == np.float32 and scores.shape == (3, 3)
    np.testing.assert_array_equal(emb, np.asarray(lab.program.index.encoder.encode(texts), dtype=np.float32))
    np.testing.assert_array_equal(scores, np.asarray(lab.program.retrieve_embedded(emb), dtype=np.float32))
