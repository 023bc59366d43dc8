"""The Scorer contract: Tagger, ImageTagger and StudentClassifier mean the same by score/predict/top_k."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.helpers import ColourBackend
from zsl.base import Scorer, top_k, top_k_pairs, top_k_sets
from zsl.errors import InputError
from zsl.image.tagger import ImageTagger
from zsl.models.encoders import HashingEncoder
from zsl.student.classifier import StudentClassifier
from zsl.text.tagger import Tagger


def _scorers():
    texts = ["red apple", "green grass", "blue sky"]
    tagger = Tagger(["red", "green", "blue"], encoder="hashing", infer=False, rank=False)
    images = [Image.new("RGB", (32, 32), c) for c in ((250, 5, 5), (5, 250, 5), (5, 5, 250))]
    image_tagger = ImageTagger(["red", "green", "blue"], ColourBackend(), mode="global", templates=["{label}"])
    enc = HashingEncoder(64)
    student = StudentClassifier(encoder=enc, epochs=30, learning_rate=0.05, threshold=0.5).fit(
        texts * 4, np.eye(3)[[0, 1, 2] * 4], vocab=["red", "green", "blue"])
    return [(tagger, texts), (image_tagger, images), (student, texts)]


def test_every_scorer_keeps_the_contract_and_the_methods_mean_one_thing():
    for scorer, items in _scorers():
        assert isinstance(scorer, Scorer), type(scorer).__name__
        s = scorer.score(items)
        assert s.shape == (3, 3) and s.dtype == np.float32
        assert np.argmax(s, axis=1).tolist() == [0, 1, 2], type(scorer).__name__
        proba = scorer.predict_proba(items)
        assert proba.shape == (3, 3) and proba.min() >= 0 and proba.max() <= 1
        sets = scorer.predict(items)
        assert sets.shape == (3, 3) and sets.dtype == np.uint8 and set(np.unique(sets)) <= {0, 1}
        pairs = scorer.top_k(items, k=2)
        assert pairs[0][0][0] == "red" and all(len(r) == 2 for r in pairs)
        assert pairs[0][0][1] == pytest.approx(float(s[0, 0]), abs=1e-4)
        cfg = scorer.config()
        assert isinstance(cfg, dict) and cfg


def test_label_sets_are_the_top_k_for_taggers_and_the_threshold_for_students():
    (tagger, texts), _, (student, _) = _scorers()
    np.testing.assert_array_equal(tagger.predict(texts, k=2), top_k_sets(tagger.score(texts), 2))
    proba = student.predict_proba(texts)
    np.testing.assert_array_equal(student.predict(texts), (proba >= student.threshold_).astype(np.uint8))
    assert student.config()["threshold"] == student.threshold_ and list(student.vocab.labels) == ["red", "green", "blue"]
    with pytest.raises(InputError, match="k must be >= 1"):
        tagger.top_k(texts, k=0)


def test_an_unfitted_student_has_no_vocabulary_yet():
    st = StudentClassifier()
    assert not isinstance(st, Scorer)
    with pytest.raises(AttributeError, match="not fitted"):
        st.vocab  # noqa: B018


def test_top_k_helpers():
    s = np.array([[0.2, 0.9, 0.9, 0.1]])
    assert top_k(s[0], 2)[1].tolist() == [[1, 2]]  # a 1-D row counts as one row
    assert top_k_pairs(s, ["a", "b", "c", "d"], 3) == [[("b", 0.9), ("c", 0.9), ("a", 0.2)]]
    assert top_k_sets(s, 10).tolist() == [[1, 1, 1, 1]]
    with pytest.raises(InputError):
        top_k(s, 0)


class _CountingEncoder(HashingEncoder):
    """The hashing encoder, counting encode() calls and the texts in each."""

    def __init__(self):
        super().__init__(64)
        self.calls: list[int] = []

    def encode(self, texts, **kw):
        self.calls.append(len(texts))
        return super().encode(texts, **kw)


def test_retrieval_only_tagger_encodes_all_texts_in_one_batched_call():
    enc = _CountingEncoder()
    tagger = Tagger(["red", "green", "blue"], encoder=enc, infer=False, rank=False)
    tagger.program_  # noqa: B018 - embeds the vocabulary (one call of its own)
    enc.calls.clear()
    texts = [f"text {i} about red and blue" for i in range(50)] + ["green grass"]
    proba = tagger.predict_proba(texts)
    assert enc.calls == [51]  # not one DSPy program call (and encode call) per text
    one_by_one = np.stack([tagger.program_(text=t).scores for t in texts])
    np.testing.assert_allclose(tagger.score(texts), one_by_one, atol=1e-6)
    np.testing.assert_allclose(proba, np.clip(one_by_one, 0, 1), atol=1e-6)
    enc.calls.clear()
    tagger.score(texts, batch_size=20)
    assert enc.calls == [20, 20, 11]
