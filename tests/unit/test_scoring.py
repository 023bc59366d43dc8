"""Labelling rules: known-answer thresholds, label-free rules, validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zsl.errors import InputError
from zsl.scoring import (
    GlobalThreshold,
    LabelZScore,
    PerLabelThreshold,
    RelativeToMax,
    TopK,
    best_f1_threshold,
    check_scores,
    get_rule,
    shrink_thresholds,
)

S = np.array([[0.9, 0.2, 0.1],
              [0.8, 0.6, 0.3],
              [0.3, 0.7, 0.2],
              [0.2, 0.1, 0.05]])


# -- validation ----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_scores_are_refused_with_position(bad):
    s = S.copy()
    s[2, 1] = bad
    with pytest.raises(InputError, match=r"1 NaN/inf value.*item 2, label column 1"):
        TopK().fit(s)
    with pytest.raises(InputError, match="NaN/inf"):
        TopK().fit(S).predict(s)


def test_shape_errors_say_what_was_expected():
    with pytest.raises(InputError, match=r"1-D.*scores\[None, :\]"):
        check_scores(np.array([0.1, 0.2]))
    with pytest.raises(InputError, match="no column"):
        check_scores(np.zeros((3, 0)))
    rule = TopK().fit(S)
    with pytest.raises(InputError, match="has 2 columns but the vocabulary .* 3 labels"):
        rule.predict(S[:, :2])
    with pytest.raises(InputError, match="same label order"):
        PerLabelThreshold().fit(S, np.zeros((4, 2)))


def test_unfitted_rule_says_how_to_fit():
    with pytest.raises(InputError, match="not fitted.*no labels needed"):
        TopK().predict(S)
    with pytest.raises(InputError, match="not fitted.*labelled items"):
        PerLabelThreshold().predict(S)


# -- plain maths ---------------------------------------------------------------------------
def test_best_f1_threshold_known_answers():
    assert best_f1_threshold([0.9, 0.8, 0.3, 0.2], [1, 1, 0, 0]) == (0.55, 1.0)
    # best F1 keeps everything: threshold is the lowest score
    thr, f1 = best_f1_threshold([0.9, 0.5], [1, 1])
    assert thr == 0.5 and f1 == 1.0
    # ties are kept together: the cut cannot split the two 0.5s, so keeping both wins (F1 0.8 > 2/3)
    thr, f1 = best_f1_threshold([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0])
    assert thr == pytest.approx(0.3) and f1 == pytest.approx(0.8)
    with pytest.raises(InputError, match="no positive"):
        best_f1_threshold([0.1, 0.2], [0, 0])


def test_shrinkage_known_answer():
    out = shrink_thresholds([0.8, 0.2, np.nan], [2, 8, 0], 0.5, 2.0)
    np.testing.assert_allclose(out, [0.65, 0.26, 0.5])
    np.testing.assert_allclose(shrink_thresholds([0.8, 0.2], [2, 8], 0.5, 0.0), [0.8, 0.2])


# -- label-free rules ----------------------------------------------------------------------
def test_top_k_known_answer_and_confidence_midpoint():
    d = TopK(k=1).fit_decide(S)
    assert d.labels.tolist() == [[1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0]]
    # threshold = midpoint of the 1st and 2nd score; confidence 0.5 exactly there
    np.testing.assert_allclose(d.thresholds.ravel(), [0.55, 0.7, 0.5, 0.15])
    assert d.confidence.dtype == np.float32 and d.labels.dtype == np.uint8
    assert ((d.confidence >= 0.5) == d.labels.astype(bool)).all()
    assert TopK(k=2).fit(S).predict(S).sum(axis=1).tolist() == [2, 2, 2, 2]
    assert TopK(k=5).fit(S).predict(S).all()


def test_top_k_ties_break_by_column():
    s = np.array([[0.5, 0.5, 0.1]])
    assert TopK(k=1).fit_decide(s).labels.tolist() == [[1, 0, 0]]


def test_standardize_stops_a_hub_label_winning_everything():
    rng = np.random.default_rng(0)
    s = rng.normal(0.2, 0.05, size=(50, 4))
    s[:, 3] += 0.3  # a label close to every item
    assert TopK(k=1).fit(s).predict(s)[:, 3].all()
    standardized = TopK(k=1, standardize=True).fit(s).predict(s)
    assert standardized[:, 3].mean() < 0.5


def test_relative_to_max_known_answer():
    s = np.array([[0.50, 0.46, 0.2], [0.3, 0.1, 0.05]])
    d = RelativeToMax(margin=0.05).fit_decide(s)
    assert d.labels.tolist() == [[1, 1, 0], [1, 0, 0]]
    floor = RelativeToMax(margin=0.05, min_score=0.4).fit(s).predict(s)
    assert floor.tolist() == [[1, 1, 0], [0, 0, 0]]  # the second item gets no label


def test_label_zscore_known_answer_and_min_labels():
    s = np.array([[0.9, 0.5], [0.1, 0.5], [0.2, 0.9], [0.2, 0.1]])
    rule = LabelZScore(z=1.0).fit(s)
    np.testing.assert_allclose(rule.mean_.ravel(), [0.35, 0.5])
    assert rule.predict(s).tolist() == [[1, 0], [0, 0], [0, 1], [0, 0]]
    forced = LabelZScore(z=1.0, min_labels=1).fit(s).predict(s)
    assert forced.sum(axis=1).min() == 1
    with pytest.raises(InputError, match="at least 2 items"):
        LabelZScore().fit(s[:1])


def test_max_labels_keeps_the_best():
    s = np.array([[0.9, 0.8, 0.7, 0.1]])
    assert GlobalThreshold(threshold=0.5, max_labels=2).fit(s).predict(s).tolist() == [[1, 1, 0, 0]]


# -- thresholds ----------------------------------------------------------------------------
def test_global_threshold_fixed_calibrated_and_rate():
    assert GlobalThreshold(threshold=0.5).fit(S).predict(S).sum() == 4
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    rule = GlobalThreshold().fit(S, y)
    # positives score 0.9, 0.8, 0.7, 0.6; the best negative 0.3 -> cut at 0.45
    assert rule.threshold_ == pytest.approx(0.45) and rule.source_ == "micro_f1"
    rate = GlobalThreshold(labels_per_item=1.0).fit(S)
    assert rate.source_ == "labels_per_item"
    assert rate.predict(S).sum() == pytest.approx(4, abs=1)
    with pytest.raises(InputError, match="no positive label"):
        GlobalThreshold().fit(S, np.zeros_like(y))


def test_per_label_thresholds_known_answer():
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    rule = PerLabelThreshold(shrinkage=0).fit(S, y)
    # label 0: [0.9, 0.8 | 0.3, 0.2] -> 0.55; label 1: [0.7, 0.6 | 0.2, 0.1] -> 0.4
    np.testing.assert_allclose(rule.thresholds_[:2], [0.55, 0.4])
    # label 2 never occurs: it gets the global (micro-F1) threshold
    assert rule.support_.tolist() == [2, 2, 0]
    assert np.isnan(rule.raw_thresholds_[2])
    assert rule.thresholds_[2] == pytest.approx(rule.global_threshold_)
    assert rule.predict(S)[:, :2].tolist() == y[:, :2].tolist()


def test_per_label_shrinkage_pulls_rare_labels_to_global():
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    strong = PerLabelThreshold(shrinkage=1e6, global_threshold=0.5).fit(S, y)
    np.testing.assert_allclose(strong.thresholds_, 0.5, atol=1e-5)
    mid = PerLabelThreshold(shrinkage=2.0, global_threshold=0.5).fit(S, y)
    np.testing.assert_allclose(mid.thresholds_, [(2 * 0.55 + 1.0) / 4, (2 * 0.4 + 1.0) / 4, 0.5])


def test_per_label_needs_labels_with_positives():
    with pytest.raises(InputError, match="needs gold labels y"):
        PerLabelThreshold().fit(S)
    with pytest.raises(InputError, match="no positive label at all"):
        PerLabelThreshold().fit(S, np.zeros((4, 3)))
    with pytest.raises(InputError, match="only 0 and 1"):
        PerLabelThreshold().fit(S, np.full((4, 3), 0.5))
    # an empty label column with a given global threshold is fine
    rule = PerLabelThreshold(global_threshold=0.4).fit(S, np.zeros((4, 3)))
    np.testing.assert_allclose(rule.thresholds_, 0.4)


# -- the estimator protocol ----------------------------------------------------------------
@pytest.mark.parametrize("rule", [TopK(k=2, standardize=True), RelativeToMax(0.1), LabelZScore(1.0),
                                  GlobalThreshold(threshold=0.4), PerLabelThreshold(shrinkage=1.0)])
def test_rules_follow_the_estimator_protocol(rule):
    from sklearn.base import clone

    y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]])
    copy = clone(rule)
    assert copy.get_params() == rule.get_params() and not hasattr(copy, "n_labels_")
    assert rule.fit(S, y) is rule
    conf = rule.confidence(S)
    assert conf.shape == S.shape and (conf >= 0).all() and (conf <= 1).all()
    json.dumps(rule.describe())
    with pytest.raises(InputError, match="no parameter"):
        rule.set_params(nope=1)


def test_get_rule_lists_options():
    assert isinstance(get_rule("top-k", k=3), TopK)
    with pytest.raises(InputError, match="Available: top_k"):
        get_rule("magic")
    with pytest.raises(InputError, match="Bad parameters"):
        get_rule("top_k", nope=1)
    with pytest.raises(InputError, match="k must be"):
        TopK(k=0).fit(S)
