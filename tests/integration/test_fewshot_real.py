"""Tagger.fit on real data and the real embedded models: examples must beat zero-shot, and the
LLM steps must see the nearest examples through the real chat template."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def _goemotions(shared_data, n_eval: int = 300, k: int = 8):
    from benchmarks.fewshot import sample_examples
    from zsl import LabelVocab

    folder = shared_data / "goemotions"
    vocab = LabelVocab.from_file(folder / "goemotions_labels.txt")
    pool = [json.loads(x) for x in (folder / "goemotions_train.jsonl").read_text().splitlines() if x]
    dev = [json.loads(x) for x in (folder / "goemotions_dev.jsonl").read_text().splitlines() if x]
    random.Random(0).shuffle(dev)
    return vocab, sample_examples(pool, vocab.labels, k, seed=0), dev[:n_eval]


def test_eight_examples_per_label_beat_zero_shot_on_goemotions(shared_data, tmp_path):
    from zsl import Tagger
    from zsl.evaluation.metrics import f1_scores, mean_average_precision

    vocab, examples, dev = _goemotions(shared_data)
    texts = [r["text"] for r in dev]
    y = vocab.to_multi_hot([r["labels"] for r in dev])
    zero = Tagger(vocab, infer=False, rank=False, label_kind="emotions")
    fitted = Tagger(vocab, infer=False, rank=False, label_kind="emotions").fit(examples)
    s0, s1 = zero.score(texts), fitted.score(texts)
    top1 = np.zeros_like(s0, dtype=np.uint8)
    top1[np.arange(len(s0)), s0.argmax(axis=1)] = 1
    # measured 14.3 -> 22 mAP and 14.9 -> ~25 micro-F1 on 1,000 items (BENCHMARKS.md); margins leave room for noise
    assert mean_average_precision(y, s1) > mean_average_precision(y, s0) + 0.03
    assert f1_scores(y, fitted.predict(texts))["micro_f1"] > f1_scores(y, top1)["micro_f1"] + 0.03
    again = Tagger(vocab, infer=False, rank=False, label_kind="emotions").load(fitted.save(tmp_path / "t.json"))
    np.testing.assert_array_equal(again.predict(texts[:50]), fitted.predict(texts[:50]))


def test_the_real_llm_sees_the_nearest_examples_as_demos():
    import dspy

    from zsl import LabelVocab, Tagger
    from zsl.models.lm import get_lm

    lm = get_lm("qwen2.5-coder-1.5b", cache=False)
    vocab = LabelVocab(["sports", "cooking", "weather"])
    train = [("The striker scored twice in the derby.", ["sports"]),
             ("The keeper saved a penalty in extra time.", ["sports"]),
             ("Knead the dough and let it rise overnight.", ["cooking"]),
             ("Heavy rain and strong winds are expected tomorrow.", ["weather"])]
    tagger = Tagger(vocab, lm=lm, label_kind="topics", rank_top=3, n_demos=2).fit(train, fusion=False)
    n_hist = len(lm.history)
    scores = tagger.score(["Our goalkeeper was injured before the cup final."])
    assert int(scores.argmax()) == 0  # sports
    infer_prompt = " ".join(str(m.get("content")) for h in lm.history[n_hist:] for m in h["messages"])
    assert "The striker scored twice in the derby." in infer_prompt  # a demo, through the chat adapter
    assert "The keeper saved a penalty" in infer_prompt
    dspy.configure(lm=None)
