"""`zsl label` with catch-all labels (#30): guessed (and reported) or named, never mixed unless allowed."""

from __future__ import annotations

import json
import time
from typing import ClassVar

import numpy as np
import pytest

from zsl.cli import main
from zsl.errors import VocabularyError
from zsl.runs.labeller import exclusive_row, resolve_catch_all
from zsl.vocab import LabelVocab

TEXTS = ["the match ended with a late goal", "a new bread recipe for the oven", "stock markets fell on bank news",
         "ok", "see you later then", "the striker signed for the league club", "flour and butter in the kitchen",
         "hi", "interest rates and shares", "whatever"]


def _label(tmp_path, *extra: str) -> tuple[list[dict], dict, str]:
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    vocab = tmp_path / "labels.txt"
    vocab.write_text("football\ncooking\nfinance\nneutral\n")
    out = tmp_path / "run"
    rc = main(["label", str(data), "--labels", str(vocab), "--no-infer", "--no-rank", "--encoder", "hashing",
               "-k", "3", "--out", str(out), *extra])
    assert rc == 0
    rows = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    return rows, json.loads((out / "manifest.json").read_text()), (out / "log.txt").read_text()


def test_guessed_catch_all_is_reported_and_never_mixed(tmp_path):
    rows, manifest, log = _label(tmp_path)
    assert "guessed from their names: neutral" in log
    assert manifest["settings"]["catch_all"]["labels"] == ["neutral"]
    with_neutral = [r for r in rows if "neutral" in r["labels"]]
    assert with_neutral and all(r["labels"] == ["neutral"] for r in with_neutral)
    # a row where neutral was among the 3 best but not first loses it (and keeps its real labels)
    assert all(1 <= len(r["labels"]) <= 3 for r in rows)


def test_guess_can_be_turned_off(tmp_path):
    rows, manifest, log = _label(tmp_path, "--no-catch-all-guess")
    assert "catch-all" not in log and "catch_all" not in manifest["settings"]
    assert all(len(r["labels"]) == 3 for r in rows)  # neutral is an ordinary label again


def test_mix_allows_a_catch_all_beside_real_labels(tmp_path):
    rows, manifest, _ = _label(tmp_path, "--catch-all-mix")
    assert manifest["settings"]["catch_all"]["mix"] is True
    assert all(len(r["labels"]) == 3 for r in rows)
    assert any("neutral" in r["labels"] for r in rows)


def test_named_catch_all_and_the_vocabulary_column():
    vocab = LabelVocab(["a", "rest", "other"], catch_all=["rest"])
    assert resolve_catch_all(vocab)[0] == ["rest"]  # named ones replace the guess
    assert resolve_catch_all(LabelVocab(["a", "other"]), guess=False) == ([], "")
    assert resolve_catch_all(LabelVocab(["a", "b"]), ["b"])[0] == ["b"]
    with pytest.raises(VocabularyError, match="Did you mean"):
        resolve_catch_all(LabelVocab(["a", "other"]), ["othr"])


def test_exclusive_row():
    ca = frozenset({"neutral"})
    row = {"labels": ["joy", "neutral", "fear"], "scores": [0.6, 0.5, 0.4]}
    assert exclusive_row(row, ca) == {"labels": ["joy", "fear"], "scores": [0.6, 0.4]}
    row = {"labels": ["neutral", "joy"], "scores": [0.6, 0.5]}
    assert exclusive_row(row, ca) == {"labels": ["neutral"], "scores": [0.6]}
    assert exclusive_row(row, frozenset()) is row


CHAT = {"ok", "hi", "see you later then", "whatever"}  # nothing in them is football, cooking or finance


class TextJudge:
    """A yes/no Rank scorer that reads the text in the prompt: the right label of a topical text is expressed,
    nothing else is (and `neutral`, as for a real LLM, never is)."""

    RIGHT: ClassVar[dict[str, str]] = {"goal": "football", "striker": "football", "bread": "cooking",
                                       "flour": "cooking", "stock": "finance", "interest": "finance"}

    def __init__(self):
        self.calls = 0

    def __call__(self, prefix, continuations, suffix, system="", lead=None):
        self.calls += 1
        right = next((lab for word, lab in self.RIGHT.items() if word in prefix), None)
        return [4.0 if c.strip().lower().startswith(right or "-") else -4.0 for c in continuations]


class SlowJudge(TextJudge):
    def __call__(self, *args, **kw):
        time.sleep(0.05)
        return super().__call__(*args, **kw)


def _llm_run(tmp_path, judge, **kw):
    from tests.fakes import ScriptedLM
    from zsl.runs.label import label_run

    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    vocab = tmp_path / "labels.txt"
    vocab.write_text("football\ncooking\nfinance\nneutral\n")
    lm = ScriptedLM([], judge=lambda label: 0.0)
    lm._yes_no = judge  # the judge sees the prompt
    out = tmp_path / "run"
    summary = label_run(data, vocab, out=out, lm=lm, infer=False, encoder="hashing", **kw)
    rows = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    return summary, rows, json.loads((out / "manifest.json").read_text()), (out / "log.txt").read_text()


def test_with_an_llm_the_catch_all_pivot_is_fitted_on_the_llm_scores_and_wins_where_nothing_is_expressed(
        tmp_path, capsys):
    judge = SlowJudge()  # 10 items, 0.05 s each
    summary, rows, manifest, log = _llm_run(tmp_path, judge, show_progress=True)
    # before the run directory exists, the wait is announced on stderr
    assert "catch-all labels: scoring the first 10 item(s) with the LLM" in capsys.readouterr().err
    ca = manifest["settings"]["catch_all"]
    assert ca["labels"] == ["neutral"] and ca["source"] == "quantile of the LLM scores"
    assert f"catch-all pivot {ca['pivot']:.4f}: from the LLM scores of the first 10 item(s)" in log
    # the pivot is the 0.2 quantile of the best other score: the chit-chat items (no evidence for any label, and
    # tied at the bottom) get `neutral`, alone; a topical text never gets it
    neutral = [r["text"] for r in rows if "neutral" in r["labels"]]
    assert set(neutral) == CHAT, neutral
    assert all(r["labels"] == ["neutral"] for r in rows if "neutral" in r["labels"])
    assert all("neutral" not in r["labels"] for r in rows if r["text"] not in CHAT)
    # the answers prepare() asked for became the rows: one Rank call per item, counted once, and the time they
    # took is the rows' time (not a run that took no time)
    assert judge.calls == len(TEXTS) and summary.tokens["rank"]["calls"] == len(TEXTS)
    assert summary.seconds >= 0.5 and summary.wall_seconds >= 0.5



def test_a_rerun_reuses_the_recorded_pivot_without_asking_the_llm_again(tmp_path):
    _, rows, manifest, _ = _llm_run(tmp_path, TextJudge())
    again = TextJudge()
    _, rows2, manifest2, log = _llm_run(tmp_path, again)
    assert again.calls == 0 and rows2 == rows and manifest2 == manifest
    assert f"catch-all pivot {manifest['settings']['catch_all']['pivot']:.4f}: the one this run recorded" in log


def test_a_given_pivot_is_used_and_recorded(tmp_path):
    judge = TextJudge()
    _, rows, manifest, _ = _llm_run(tmp_path, judge, catch_all_pivot=1e6)  # nothing ever scores above it
    assert manifest["settings"]["catch_all"]["pivot"] == 1e6 and manifest["settings"]["catch_all"]["source"] == "fixed"
    assert all(r["labels"] == ["neutral"] for r in rows)
    assert judge.calls == len(TEXTS)  # nothing was fitted, so nothing was asked before labelling


def test_in_a_tree_only_top_level_leaves_are_guessed_and_deeper_named_ones_are_refused(tmp_path):
    from zsl.scoring import guess_catch_all

    vocab = LabelVocab(["science", "Basics (science)", "physics", "other", "Miscellaneous", "misc topics"],
                       parents=[None, "science", "science", None, None, "Miscellaneous"])
    # `Basics (science)` is a topic of its branch, `Miscellaneous` has a child: only `other` means "none of these"
    assert guess_catch_all(vocab) == ["other"]
    assert resolve_catch_all(vocab, (), True)[0] == ["other"]
    for name, why in (("Basics (science)", "under 'science'"), ("Miscellaneous", "it has children")):
        with pytest.raises(VocabularyError, match="top-level labels without children") as err:
            resolve_catch_all(vocab, [name], True)
        assert why in str(err.value)


def test_one_catch_all_per_row_when_several_win():
    from zsl.scoring import CatchAll

    row = {"labels": ["other", "none", "joy"], "scores": [0.5, 0.5, 0.4]}
    assert exclusive_row(row, frozenset({"other", "none"})) == {"labels": ["other"], "scores": [0.5]}
    s = np.array([[0.1, 0.0, 0.0], [0.9, 0.0, 0.0]])  # columns 1 and 2 are catch-alls
    ca = CatchAll([1, 2], pivot=0.5).fit(s)
    t = ca.transform(s)
    assert ca.exclusive(np.ones((2, 3)), t).tolist() == [[0, 1, 0], [1, 0, 0]]
