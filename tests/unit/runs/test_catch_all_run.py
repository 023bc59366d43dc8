"""`zsl label` with catch-all labels (#30): guessed (and reported) or named, never mixed unless allowed."""

from __future__ import annotations

import json

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
    row = {"labels": ["joy", "neutral", "fear"], "scores": [0.6, 0.5, 0.4], "above_threshold": ["joy", "neutral"]}
    assert exclusive_row(row, ca) == {"labels": ["joy", "fear"], "scores": [0.6, 0.4], "above_threshold": ["joy"]}
    row = {"labels": ["neutral", "joy"], "scores": [0.6, 0.5]}
    assert exclusive_row(row, ca) == {"labels": ["neutral"], "scores": [0.6]}
    assert exclusive_row(row, frozenset()) is row
