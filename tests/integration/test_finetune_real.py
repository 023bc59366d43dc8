"""fine_tune_encoder on the real MiniLM and real GoEmotions examples: the fine-tuned encoder ranks
held-out comments better than the base one, and the base model is left as it was."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def test_two_examples_per_label_make_a_better_zero_shot_encoder(shared_data, tmp_path):
    from benchmarks.fewshot import sample_examples
    from zsl import LabelVocab, Tagger
    from zsl.evaluation.metrics import mean_average_precision
    from zsl.models.encoders import SentenceTransformerEncoder
    from zsl.text.finetune import MANIFEST, fine_tune_encoder

    folder = shared_data / "goemotions"
    vocab = LabelVocab.from_file(folder / "goemotions_labels.txt")
    pool = [json.loads(x) for x in (folder / "goemotions_train.jsonl").read_text().splitlines() if x]
    dev = [json.loads(x) for x in (folder / "goemotions_dev.jsonl").read_text().splitlines() if x]
    random.Random(0).shuffle(dev)
    dev = dev[:300]
    examples = sample_examples(pool, vocab.labels, 2, seed=0)
    texts = [r["text"] for r in dev]
    y = vocab.to_multi_hot([r["labels"] for r in dev])

    base = SentenceTransformerEncoder()
    probe = base.encode(["I am so happy for you!"])
    out = fine_tune_encoder(examples, vocab, tmp_path / "ft", encoder=base, show_progress=False)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["examples"] == len(examples) and manifest["base_encoder"] == base.model_id
    assert manifest["loss_per_epoch"][-1] < manifest["loss_per_epoch"][0]
    np.testing.assert_array_equal(base.encode(["I am so happy for you!"]), probe)  # the base is not trained

    zero = Tagger(vocab, infer=False, rank=False, label_kind="emotions", encoder=base).score(texts)
    tuned = Tagger(vocab, infer=False, rank=False, label_kind="emotions", encoder=str(out)).score(texts)
    # 1,000 GoEmotions dev items, seed 0: mAP 16.0 -> 23.7 (python -m benchmarks.fewshot, BENCHMARKS.md, issue #14)
    assert mean_average_precision(y, tuned) > mean_average_precision(y, zero) + 0.03
    assert not list(tmp_path.glob(".ft.*"))  # no temporary folder left behind
