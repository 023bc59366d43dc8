"""A real end-to-end Infer-Retrieve-Rank run on a few ESCO sentences (13,896 labels)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

SENTENCES = [
    "* • Proficiency in one or more modern programming languages - Java and Javascript preferable",
    "* • In-depth HTML5 / JavaScript",
    "* • Competent with developing multithreaded scalable concurrent applications .",
]


def test_irr_on_esco_sentences(shared_data):
    from zsl import LabelVocab, Tagger
    from zsl.evaluation.metrics import rp_at_k

    esco = shared_data / "esco"
    vocab = LabelVocab.from_file(esco / "esco_skills_vocab.txt")
    assert len(vocab) == 13_896
    rows = {json.loads(x)["text"]: json.loads(x)["labels"]
            for x in (esco / "esco_tech_validation.jsonl").read_text(encoding="utf-8").splitlines()}
    gold = [rows[s] for s in SENTENCES]
    tagger = Tagger(vocab, label_kind="skills", rank_top=15)
    scores = tagger.decision_function(SENTENCES)
    assert scores.shape == (3, 13_896)
    y = vocab.to_multi_hot(gold)
    rp10 = rp_at_k(y, scores, 10)
    retrieve_only = Tagger(vocab, label_kind="skills", infer=False, rank=False, encoder=tagger.program_.index.encoder)
    base = rp_at_k(y, retrieve_only.decision_function(SENTENCES), 10)
    # every sentence gets at least one gold skill in its top 10, and the LLM steps do not hurt
    top10 = [{vocab[j] for j in row.argsort()[::-1][:10]} for row in scores]
    assert all(set(g) & t for g, t in zip(gold, top10)), top10
    assert rp10 >= base - 1e-9
