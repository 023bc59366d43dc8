"""Fusion weights fitted on examples (zsl.fusion)."""

from __future__ import annotations

import numpy as np
import pytest

from zsl.errors import InputError
from zsl.fusion import DEFAULTS, FusionItem, fit_fusion, fused_scores


def _items(n: int = 30, k: int = 40, seed: int = 0, rank_informative: bool = True) -> list[FusionItem]:
    """Items whose gold label sits at retrieval rank 22-24: only Rank over the top 30 or more can lift it."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        text = rng.uniform(0.0, 0.5, size=k)  # k = 40 labels
        order = np.argsort(-text)
        gold = int(order[22 + rng.integers(0, 3)])
        cand = order[:50]
        p = np.full(cand.size, 0.05)
        if rank_informative:
            p[np.where(cand == gold)[0]] = 0.99
        items.append(FusionItem(text_sim=text, phrase_sim=None, cand=cand, p_yes=p, gold=[gold]))
    return items


def test_fit_finds_rank_weight_and_depth_when_rank_is_informative():
    fit = fit_fusion(_items(), None, k=1)
    assert fit.weights["rank_top"] >= 30
    assert fit.score == pytest.approx(100.0) and fit.default_score == 0.0


def test_defaults_win_when_nothing_is_clearly_better():
    fit = fit_fusion(_items(rank_informative=False), None, k=1)
    assert fit.weights == {**DEFAULTS, "rank_top": 20} and fit.score == fit.default_score


def test_rank_top_never_exceeds_what_was_scored_and_examples_without_gold_are_dropped():
    items = _items(n=5)
    for it in items:
        it.p_yes = it.p_yes[:10]
    items.append(FusionItem(text_sim=np.zeros(40), phrase_sim=None, cand=np.arange(10), p_yes=np.zeros(10), gold=[]))
    fit = fit_fusion(items, None, k=1)
    assert fit.weights["rank_top"] <= 10 and fit.n_examples == 5
    assert all(row["rank_top"] <= 10 for row in fit.table)


def test_fused_scores_add_rank_only_to_the_first_rank_top_candidates():
    it = FusionItem(text_sim=np.zeros(4), phrase_sim=np.ones(4), cand=np.array([3, 2, 1]), p_yes=np.ones(3), gold=[0])
    s = fused_scores(it, None, {"text_weight": 0.5, "prior_weight": 0.0, "rank_weight": 1.0, "rank_top": 2})
    assert s.tolist() == [0.5, 0.5, 1.5, 1.5]


def test_no_gold_anywhere_is_a_clear_error():
    with pytest.raises(InputError, match="gold"):
        fit_fusion([FusionItem(np.zeros(3), None, np.arange(3), np.zeros(3), gold=[])])


# -- Tagger.fit refits the fusion on the examples, and the weights travel with the saved program ----
def _deep_gold_tagger(lm):
    from zsl import Tagger
    from zsl.models.encoders import HashingEncoder

    # 60 one-word labels; every text holds w0..w44 equally, so retrieval order is w0, w1, ...:
    # the gold labels w40-w42 lie beyond the default Rank depth (30), and only Rank knows them.
    return Tagger([f"w{i}" for i in range(60)], lm=lm, encoder=HashingEncoder(4096), infer=False, rank_top=30)


def _examples():
    text = " ".join(f"w{i}" for i in range(45))
    return [(text, [f"w{40 + j}"]) for j in range(3)]


def test_tagger_fit_refits_the_fusion_and_save_load_keeps_it(tmp_path):
    import dspy

    from tests.fakes import ScriptedLM

    lm = ScriptedLM([], judge=lambda label: 6.0 if label in ("w40", "w41", "w42") else -6.0)
    dspy.configure(lm=lm)
    tagger = _deep_gold_tagger(lm).fit(_examples(), optimizer="none")
    fit = tagger.fusion_
    assert fit.default_score == 0.0 and fit.score == pytest.approx(100.0)
    assert tagger.program_.rank_top == 50 == fit.weights["rank_top"]
    text = _examples()[0][0]
    assert set(np.argsort(-tagger.predict_proba([text])[0])[:3]) == {40, 41, 42}
    path = tagger.save(tmp_path / "tagger.json")
    assert "_dspy_lm_class" not in path.read_text()  # LMs are injected, never saved with the program
    other_lm = ScriptedLM([], judge=lambda label: 6.0 if label in ("w40", "w41", "w42") else -6.0)
    again = _deep_gold_tagger(other_lm).load(path)
    assert again.program_.rank.predict.lm is other_lm  # loading keeps the tagger's own LM
    assert again.program_.rank_top == 50 and again.program_.rank_weight == tagger.program_.rank_weight
    np.testing.assert_allclose(again.predict_proba([text]), tagger.predict_proba([text]))
    kept = _deep_gold_tagger(lm).fit(_examples(), optimizer="none", fusion=False)
    assert kept.fusion_ is None and kept.program_.rank_top == 30


def test_every_entry_point_defaults_to_the_same_zero_shot_program():
    """`zsl label`, `zsl optimize`, label_run's settings, Tagger and InferRetrieveRank once disagreed
    (Rank top 20 on the command line, 30 in Python): the same input gave different labels."""
    import inspect

    from zsl.programs.irr import InferRetrieveRank

    from zsl.cli import build_parser
    from zsl.runs.labeller import LabelSettings
    from zsl.text.tagger import Tagger

    parser = build_parser()
    for argv in (["label", "in.jsonl", "--labels", "v.txt"], ["optimize", "ex.jsonl", "--labels", "v.txt", "--out", "p.json"]):
        assert parser.parse_args(argv).rank_top == DEFAULTS["rank_top"], argv
    assert LabelSettings().rank_top == DEFAULTS["rank_top"]
    for cls in (Tagger, InferRetrieveRank):
        params = inspect.signature(cls.__init__).parameters
        for key, value in DEFAULTS.items():
            assert params[key].default == value, (cls.__name__, key)
