"""Catch-all labels (#30): scored from the absence of evidence for the rest, never mixed unless allowed."""

from __future__ import annotations

import numpy as np
import pytest

from zsl.errors import InputError, VocabularyError
from zsl.scoring import CatchAll, TopK, guess_catch_all
from zsl.vocab import LabelVocab


def test_guess_finds_catch_all_names_and_leaves_real_labels():
    labels = ["joy", "neutral", "Other (finance)", "Basics (cooking)", "misc", "none", "another", "otherwise", "anger"]
    assert guess_catch_all(labels) == ["neutral", "Other (finance)", "Basics (cooking)", "misc", "none"]
    assert guess_catch_all(["acq", "earn", "crude"]) == []


def test_derived_score_wins_exactly_below_the_pivot():
    s = np.array([[0.9, 0.2, 0.8], [0.3, 0.1, 0.9], [0.45, 0.4, 0.0]])  # column 2: the catch-all's own score
    ca = CatchAll([2], pivot=0.5).fit(s)
    t = ca.transform(s)
    # the recorded catch-all scores (0.8, 0.9) are replaced: the items whose best other score is below 0.5 get it on top
    assert TopK(k=1).fit(t).predict(t)[:, 2].tolist() == [0, 1, 1]
    # monotone decreasing in the best other score
    m = ca.best_other(s)
    assert np.all(np.diff(t[np.argsort(m), 2]) <= 0)
    assert s[0, 2] == 0.8  # the input is not modified


def test_zero_shot_pivot_is_a_quantile_and_examples_fit_it():
    rng = np.random.default_rng(0)
    s = rng.random((200, 4))
    assert CatchAll([3]).fit(s).source_ == "quantile"
    assert CatchAll([3]).fit(s).pivot_ == pytest.approx(np.quantile(s[:, :3].max(1), 0.2))
    y = np.zeros((200, 4), dtype=int)
    y[s[:, :3].max(1) < 0.7, 3] = 1  # gold: catch-all where no other label reaches 0.7
    ca = CatchAll([3], shrinkage=0).fit(s, y)
    assert ca.source_ == "examples" and ca.pivot_ == pytest.approx(0.7, abs=0.02)
    # shrunk toward the quantile by 5 pseudo-examples: 4 examples move the pivot 4/9 of the way
    few = y.copy()
    few[np.flatnonzero(few[:, 3])[4:], 3] = 0
    q = np.quantile(s[:, :3].max(1), 0.2)
    raw = CatchAll([3], shrinkage=0).fit(s, few).pivot_
    assert CatchAll([3]).fit(s, few).pivot_ == pytest.approx((4 * raw + 5 * q) / 9)


def test_examples_that_do_not_separate_the_catch_all_keep_the_quantile_pivot():
    """8 catch-all examples among 180 whose best other score is no lower than the rest's (as on GoEmotions' train
    draw): their F1-best cut is noise, so the zero-shot quantile of the examples' scores stays, and says why."""
    rng = np.random.default_rng(1)
    s = rng.random((180, 4))
    m = s[:, :3].max(1)
    y = np.zeros((180, 4), dtype=int)
    y[np.argsort(m)[-8:], 3] = 1  # the catch-all items have the *highest* evidence for the others
    ca = CatchAll([3]).fit(s, y)
    assert ca.source_ == "quantile (the examples do not separate it)"
    assert ca.pivot_ == pytest.approx(np.quantile(m, 0.2))
    assert ca.describe()["source"] == ca.source_
    # the same number of examples with the lowest evidence: separated, the cut comes from them
    y[:, 3] = 0
    y[np.argsort(m)[:8], 3] = 1
    assert CatchAll([3]).fit(s, y).source_ == "examples"
    # chance separation (random catch-all items) is not enough
    y[:, 3] = 0
    y[rng.choice(180, 8, replace=False), 3] = 1
    assert CatchAll([3]).fit(s, y).source_.startswith("quantile")


def test_never_mixed_unless_allowed():
    s = np.array([[0.9, 0.2, 0.5], [0.3, 0.1, 0.6], [0.3, 0.4, 0.1]])
    sets = np.array([[1, 0, 1], [1, 0, 1], [0, 1, 0]])
    ca = CatchAll([2], pivot=0.5).fit(s)
    out = ca.exclusive(sets, s)
    assert out.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]  # higher side wins; a set without the catch-all is kept
    real = out[:, :2].any(1)
    assert not (real & out[:, 2].astype(bool)).any()
    mixed = CatchAll([2], pivot=0.5, mix=True).fit(s).exclusive(sets, s)
    assert mixed.tolist() == sets.tolist()


def test_every_label_catch_all_is_refused():
    with pytest.raises(InputError, match="real one"):
        CatchAll([0, 1]).fit(np.zeros((2, 2)))
    with pytest.raises(VocabularyError, match="real one"):
        LabelVocab(["other", "none"], catch_all=["other", "none"])


def test_vocabulary_catch_all_column(tmp_path):
    p = tmp_path / "v.jsonl"
    p.write_text('{"label": "joy"}\n{"label": "nothing special", "catch_all": true}\n{"label": "anger", "catch_all": false}\n')
    assert LabelVocab.from_file(p).catch_all == ("nothing special",)
    c = tmp_path / "v.csv"
    c.write_text("label,catch_all\njoy,\nrest of it,yes\nanger,0\n")
    assert LabelVocab.from_file(c).catch_all == ("rest of it",)
    c.write_text("label,catch_all\njoy,maybe\n")
    with pytest.raises(VocabularyError, match="catch_all must be"):
        LabelVocab.from_file(c)
    with pytest.raises(VocabularyError, match="not in the vocabulary"):
        LabelVocab(["a", "b"], catch_all=["c"])
    assert LabelVocab(["a", "b"]).catch_all == ()


# -- the Tagger: catch-all fitted on examples, calibrated probabilities --------------------
TOPICS = {"football": "football match goal striker league", "cooking": "recipe oven bake flour kitchen",
          "finance": "stock market shares bank interest"}


def _examples(n: int = 8) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        for lab, words in TOPICS.items():
            w = words.split()
            out.append({"text": " ".join(rng.choice(w, 4)) + f" note {i}", "labels": [lab]})
        out.append({"text": f"hello there friend nothing much today {i}", "labels": ["other"]})
    return out


def _tagger(**kw):
    from zsl.models.encoders import HashingEncoder
    from zsl.text.tagger import Tagger

    return Tagger(LabelVocab([*TOPICS, "other"], catch_all=["other"]), encoder=HashingEncoder(256), infer=False,
                  rank=False, **kw)


def test_tagger_fits_the_catch_all_and_never_mixes_it(tmp_path):
    tagger = _tagger().fit(_examples(20))  # 20 examples of "other": its pivot is mostly theirs
    assert tagger.catch_all_ is not None and tagger.catch_all_.source_ == "examples"
    texts = ["football goal league striker", "hello there friend nothing much today", "bank shares recipe oven"]
    sets = tagger.predict(texts)
    other = sets[:, 3].astype(bool)
    assert not (other & sets[:, :3].any(1)).any()  # never beside a real label
    assert sets[1, 3] == 1 and sets[0, 0] == 1
    assert tagger.config()["catch_all"]["labels"] == ["other"]
    # saved with the program and loaded back: the same scores and sets
    again = _tagger().load(tagger.save(tmp_path / "p.json"))
    np.testing.assert_allclose(again.score(texts), tagger.score(texts), atol=1e-6)
    assert again.predict(texts).tolist() == sets.tolist()


def test_catch_all_mix_allows_both():
    tagger = _tagger(catch_all_mix=True).fit(_examples())
    assert tagger.catch_all_.mix is True
    s = tagger.score(["football goal league", "hello friend"])
    both = np.ones_like(s, dtype=np.uint8)
    assert tagger._exclusive(both, s).tolist() == both.tolist()


def test_calibrated_probabilities_are_in_0_1_and_monotone(tmp_path):
    tagger = _tagger().fit(_examples())
    assert tagger.calibrator_ is not None and tagger.calibrator_.a_ > 0
    texts = ["football goal league striker", "hello friend nothing today", "stock bank interest"]
    p = tagger.predict_proba(texts)
    assert p.shape == (3, 4) and ((p >= 0) & (p <= 1)).all()
    s = tagger.score(texts)
    for j in range(4):  # per label, a higher score never gets a lower probability
        order = np.argsort(s[:, j])
        assert np.all(np.diff(p[order, j]) >= -1e-7)
    grid = np.linspace(-1, 1, 50)[:, None].repeat(4, 1)
    q = tagger.proba_from_scores(grid)
    assert np.all(np.diff(q, axis=0) > 0)  # strictly increasing
    again = _tagger().load(tagger.save(tmp_path / "p.json"))
    np.testing.assert_allclose(again.predict_proba(texts), p, atol=1e-6)


def test_zero_shot_probabilities_stay_clipped_scores():
    tagger = _tagger()
    s = tagger.score(["football goal"])
    np.testing.assert_allclose(tagger.predict_proba(["football goal"]), np.clip(s, 0, 1))
