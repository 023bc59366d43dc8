import numpy as np
import pytest

from zsl import LabelVocab
from zsl.base import top_k
from zsl.errors import InputError
from zsl.evaluation.metrics import f1_scores, mean_average_precision, p_at_k, r_at_k, rp_at_k
from zsl.index import VocabIndex, apply_prior, max_over_phrases
from zsl.models.encoders import HashingEncoder


def test_top_k_is_sorted_and_breaks_ties_by_column():
    s = np.array([[0.1, 0.5, 0.5, 0.9]])
    vals, idx = top_k(s, 3)
    assert idx.tolist() == [[3, 1, 2]]
    assert vals.tolist() == [[0.9, 0.5, 0.5]]
    assert top_k(s, 10)[1].shape == (1, 4)
    with pytest.raises(InputError):
        top_k(s, 0)


def test_max_over_phrases_and_prior():
    sim = np.array([[0.1, 0.9], [0.7, 0.2]])
    assert max_over_phrases(sim).tolist() == pytest.approx([0.7, 0.9])
    assert max_over_phrases(np.zeros((0, 3))).tolist() == [-1, -1, -1]
    out = apply_prior(np.array([0.5, 0.5]), np.array([0.9, 0.1]), 0.1)
    assert out[0] > out[1]
    np.testing.assert_array_equal(apply_prior(np.array([0.5, 0.4]), None, 1.0), [0.5, 0.4])


def test_numpy_and_faiss_backends_agree():
    labels = [f"label number {i} about {w}" for i, w in enumerate(["cats", "dogs", "cars", "trains", "food"] * 20)]
    v = LabelVocab(labels)
    enc = HashingEncoder(dim=64)
    exact = VocabIndex(v, enc)
    fa = VocabIndex(v, enc, faiss_threshold=0)
    assert exact.backend == "numpy" and fa.backend == "faiss"
    q = enc.encode(["cats and dogs", "fast trains"])
    s1, _i1 = exact.search(q, 5)
    s2, _i2 = fa.search(q, 5)
    np.testing.assert_allclose(s1, s2, atol=1e-5)


def test_dimension_mismatch_is_reported():
    idx = VocabIndex(LabelVocab(["a"]), HashingEncoder(dim=16))
    with pytest.raises(InputError, match="same encoder"):
        idx.similarities(np.ones((1, 8)))


Y = np.array([[1, 0, 1, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0]])
S = np.array([[0.9, 0.8, 0.1, 0.0, 0.2], [0.1, 0.2, 0.3, 0.4, 0.5], [0.5, 0.4, 0.3, 0.2, 0.1]])


def test_rank_metrics_known_answers():
    # item 0: top2 = {0, 1} -> 1 hit of 2 gold; item 1: top2 = {4, 3} -> 0 hits; item 2 has no gold (skipped)
    assert rp_at_k(Y, S, 2) == pytest.approx((1 / 2 + 0 / 1) / 2)
    assert p_at_k(Y, S, 2) == pytest.approx((1 / 2 + 0) / 2)
    assert r_at_k(Y, S, 2) == pytest.approx((1 / 2 + 0) / 2)
    # at K=5 everything is retrieved: RP = recall = 1
    assert rp_at_k(Y, S, 5) == pytest.approx(1.0)


def test_map_and_f1_known_answers():
    y = np.array([[1, 0], [0, 1], [1, 1]])
    s = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    # label 0: positives at ranks 1 and 2 of [0.9, 0.3, 0.2] -> AP 1; label 1: [0.8, 0.7, 0.1] -> AP 1
    assert mean_average_precision(y, s) == pytest.approx(1.0)
    s_bad = np.array([[0.1, 0.9], [0.9, 0.1], [0.5, 0.5]])
    assert mean_average_precision(y, s_bad) < 1.0
    f = f1_scores(y, (s > 0.5).astype(int))
    # tp=3 (0,0),(1,1),(2,1); fn=1 (2,0); fp=0
    assert f["micro_f1"] == pytest.approx(6 / 7)


@pytest.mark.parametrize("y, s, match", [
    (np.ones((2, 3)), np.ones((2, 4)), "same shape"),
    (np.ones(3), np.ones(3), "2-D"),
    (np.ones((1, 2)), np.array([[np.nan, 1.0]]), "NaN"),
    (np.array([[2, 0]]), np.ones((1, 2)), "only 0 and 1"),
])
def test_metric_input_errors(y, s, match):
    with pytest.raises(InputError, match=match):
        rp_at_k(y, s, 1)
