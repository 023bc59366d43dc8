"""Budgeted labelling: budget parsing, selection, the loop, and a resumable run with a scripted LM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import BUDGET_TOPICS as TOPICS
from tests.helpers import BUDGET_WORDS as WORDS
from tests.helpers import CountingLM
from zsl.errors import InputError
from zsl.runs.budget import (
    TEACHER,
    budget_loop,
    budget_run,
    parse_budget,
    round_sizes,
    select_random,
    select_typical,
    select_uncertain,
    student_margin,
)


@pytest.mark.parametrize("budget, n, want", [("10%", 1000, 100), ("10 %", 15, 2), (25, 1000, 25), ("25", 10, 10),
                                             (0, 5, 0), ("0%", 5, 0), ("100%", 7, 7), (3.0, 9, 3)])
def test_parse_budget_counts_and_percentages(budget, n, want):
    assert parse_budget(budget, n) == want


@pytest.mark.parametrize("bad", [-1, "-5", "abc", "150%", 2.5, True, None, "5 items"])
def test_parse_budget_refuses_bad_values_with_a_fix(bad):
    with pytest.raises(InputError, match="Fix: give a number of items"):
        parse_budget(bad, 100)


def test_round_sizes_split_evenly_and_refuse_zero_rounds():
    assert round_sizes(7, 3, min_round=1) == [3, 2, 2] and sum(round_sizes(101, 4)) == 101
    assert round_sizes(7, 3) == [7] and round_sizes(12, 4) == [6, 6]  # rounds of at least 5 by default
    with pytest.raises(InputError, match="rounds must be >= 1"):
        round_sizes(5, 0)
    with pytest.raises(InputError, match="min_round must be >= 1"):
        round_sizes(5, 2, min_round=0)


def _blobs(n_per: int = 20, seed: int = 0):
    """Four well-separated clusters of items; label = cluster."""
    rng = np.random.default_rng(seed)
    centers = np.eye(4, 8) * 5
    emb = np.concatenate([c + rng.normal(size=(n_per, 8)) for c in centers]).astype(np.float32)
    gold = np.repeat(np.arange(4), n_per)
    return emb, gold


def test_select_typical_covers_every_cluster_and_skips_taken():
    emb, gold = _blobs()
    pick = select_typical(emb, 4, taken=[0, 1], seed=0)
    assert len(pick) == 4 and not {0, 1} & set(pick)
    assert sorted(gold[pick].tolist()) == [0, 1, 2, 3]


def test_select_uncertain_prefers_small_margins():
    emb, _ = _blobs()
    probs = np.tile([0.9, 0.05, 0.03, 0.02], (len(emb), 1))
    unsure = [5, 25, 45, 65]
    probs[unsure] = [0.4, 0.39, 0.11, 0.1]
    assert student_margin(probs[[0, 5]]).round(2).tolist() == [0.85, 0.01]
    assert sorted(select_uncertain(emb, probs, 4, taken=[], pool_factor=1)) == unsure
    assert 5 not in select_uncertain(emb, probs, 3, taken=[5], pool_factor=1)


def test_select_random_is_seeded_and_never_repeats_taken():
    a, b = select_random(50, 10, taken=range(20), seed=3), select_random(50, 10, taken=range(20), seed=3)
    assert a == b and len(set(a)) == 10 and min(a) >= 20
    assert select_random(5, 10, taken=[0]) == [1, 2, 3, 4]  # asks for more than is left: what is left


@pytest.mark.parametrize("selection", ["active", "random"])
def test_loop_spends_the_budget_once_and_the_student_learns(selection):
    emb, gold = _blobs()
    cheap = np.zeros((len(emb), 4), dtype=np.float32)  # retrieval knows nothing
    calls: list[int] = []

    def teach(idx):
        calls.extend(idx)
        return {i: [int(gold[i])] for i in idx}

    res = budget_loop(emb, cheap, teach, n_llm=12, k=1, rounds=3, selection=selection, seed=0, min_round=1)
    assert len(calls) == len(set(calls)) == 12 and res.llm_items == calls
    assert [r["selected"] for r in res.rounds] == [4, 4, 4]
    assert res.source.count("llm") == 12 and res.source.count("student") == len(emb) - 12
    student_top = res.student_scores.argmax(axis=1)
    others = [i for i in range(len(emb)) if i not in calls]
    assert (student_top[others] == gold[others]).mean() > 0.9  # from zero retrieval knowledge


def test_loop_with_no_budget_keeps_retrieval_and_a_failed_item_stays_with_the_student():
    emb, gold = _blobs()
    cheap = np.random.default_rng(1).normal(size=(len(emb), 4)).astype(np.float32)
    res = budget_loop(emb, cheap, lambda idx: {}, n_llm=0)
    assert set(res.source) == {"retrieval"} and res.student is None and np.array_equal(res.student_scores, cheap)
    one = budget_loop(emb, cheap, lambda idx: {i: [int(gold[i])] for i in idx[:1]}, n_llm=1)
    assert one.source.count("llm") == 1 and "too few" in one.rounds[0]["note"]  # one item cannot train a student
    res = budget_loop(emb, cheap, lambda idx: {i: (None if i == idx[0] else [int(gold[i])]) for i in idx},
                      n_llm=8, rounds=1)
    failed = res.llm_items[0]
    assert res.teacher_labels[failed] is None and res.source[failed] == "student"
    assert res.source.count("llm") == 7


def test_self_training_adds_the_students_surest_labels_and_zero_turns_it_off():
    from zsl.student.heads import AnchoredHead

    emb, gold = _blobs(n_per=30)
    cheap = np.zeros((len(emb), 4), dtype=np.float32)

    def teach(idx):
        return {i: [int(gold[i])] for i in idx}

    plain = budget_loop(emb, cheap, teach, n_llm=12, rounds=1, selection="random", self_train=0)
    assert plain.rounds[0]["pseudo"] == 0
    y = np.eye(4, dtype=np.float32)[gold[plain.llm_items]]
    direct = AnchoredHead(random_state=0).fit(emb[plain.llm_items], y, cheap[plain.llm_items])
    assert np.allclose(plain.student_scores, direct.fuse(cheap, emb))  # 0: the teacher's items only
    own = budget_loop(emb, cheap, teach, n_llm=12, rounds=1, selection="random", self_train=0.5)
    assert own.llm_items == plain.llm_items and own.rounds[0]["pseudo"] == (len(emb) - 12) // 2
    assert own.student.n_examples_ == 12 + (len(emb) - 12) // 2 and own.student.lam_ == plain.student.lam_
    rest = [i for i in range(len(emb)) if i not in own.llm_items]
    assert (own.student_scores[rest].argmax(axis=1) == gold[rest]).mean() > 0.9


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half", True, None])
def test_loop_refuses_a_self_train_share_outside_0_to_1(bad):
    emb, _ = _blobs()
    with pytest.raises(InputError, match="self_train must be a share between 0 and 1"):
        budget_loop(emb, np.zeros((len(emb), 4)), lambda idx: {}, n_llm=1, self_train=bad)


def test_loop_refuses_mismatched_shapes_and_unknown_selection():
    emb, _ = _blobs()
    with pytest.raises(InputError, match="same N items"):
        budget_loop(emb, np.zeros((3, 4)), lambda idx: {}, n_llm=1)
    with pytest.raises(InputError, match="selection must be one of"):
        budget_loop(emb, np.zeros((len(emb), 4)), lambda idx: {}, n_llm=1, selection="best")


# -- runs -------------------------------------------------------------------------------------------
@pytest.fixture
def data(tmp_path: Path):
    rng = np.random.default_rng(0)
    rows = []
    for n in range(24):
        topic = TOPICS[n % 4]
        words = WORDS[topic].split()
        rows.append({"id": f"t{n:02d}", "text": f"item {n}: " + " ".join(rng.choice(words, size=4)),
                     "labels": [topic]})
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    vocab = tmp_path / "labels.txt"
    vocab.write_text("\n".join(TOPICS) + "\n", encoding="utf-8")
    return items, vocab, rows


def _run(data, tmp_path, lm, **kw):
    items, vocab, _ = data
    args = {"budget": 8, "out": tmp_path / "run", "lm": lm, "encoder": "hashing", "k": 1, "rank": False,
            "rounds": 2, **kw}
    return budget_run(items, vocab, **args)


def _rows(tmp_path):
    return [json.loads(x) for x in (tmp_path / "run" / "labels.jsonl").read_text().splitlines()]


def test_run_labels_budget_items_with_the_llm_and_the_rest_with_the_student(data, tmp_path):
    lm = CountingLM(data[2])
    s = _run(data, tmp_path, lm)
    rows = _rows(tmp_path)
    assert [r["id"] for r in rows] == [r["id"] for r in data[2]]  # input order
    assert s.by_source == {"llm": 8, "student": 16} and s.llm_items == 8 and lm.calls == 8
    assert all(r["labels"] == r["gold"] for r in rows if r["source"] == "llm")  # the teacher's rows, kept
    assert len((tmp_path / "run" / TEACHER).read_text().splitlines()) == 8
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["budget"]["llm_items"] == 8 and manifest["settings"]["mode"] == "budget"
    assert manifest["budget"]["self_train"] == 0.5 and s.rounds[-1]["pseudo"] == 8  # half of the 16 the LLM did not see
    assert (tmp_path / "run" / "labels.jsonl.meta.json").is_file()
    again = _run(data, tmp_path, CountingLM(data[2]))
    assert again.already_complete


def test_interrupted_run_resumes_without_relabelling_and_matches_an_uninterrupted_one(data, tmp_path):
    whole = tmp_path / "whole"
    whole.mkdir()
    _run(data, whole, CountingLM(data[2]))
    with pytest.raises(KeyboardInterrupt):
        _run(data, tmp_path, CountingLM(data[2], stop_after=5))
    assert len((tmp_path / "run" / TEACHER).read_text().splitlines()) == 5  # every LLM answer kept
    with (tmp_path / "run" / TEACHER).open("a") as fh:
        fh.write('{"id": "t99", "teach')  # a torn last line, as a kill mid-write leaves it
    lm = CountingLM(data[2])
    s = _run(data, tmp_path, lm)
    assert lm.calls == 3 and s.reused_llm == 5
    assert (tmp_path / "run" / "labels.jsonl").read_bytes() == (whole / "run" / "labels.jsonl").read_bytes()
    bigger = CountingLM(data[2])
    s = _run(data, tmp_path, bigger, budget="50%")  # a larger budget pays only for the extra items
    assert bigger.calls == 4 and s.llm_items == 12 and s.by_source["llm"] == 12


def test_one_failing_item_is_reported_and_labelled_by_the_student(data, tmp_path):
    rows = data[2]
    lm = CountingLM(rows, fail="item 0:")
    s = _run(data, tmp_path, lm, budget="100%", rounds=1)
    errors = [json.loads(x) for x in (tmp_path / "run" / "errors.jsonl").read_text().splitlines()]
    assert [e["id"] for e in errors] == ["t00"] and "the model broke" in errors[0]["reason"]
    assert s.by_source == {"llm": 23, "student": 1} and s.labelled == 24


def test_changed_teacher_settings_are_refused_and_fresh_does_not_reuse_their_llm_results(data, tmp_path):
    _run(data, tmp_path, CountingLM(data[2]))
    with pytest.raises(InputError, match="different inputs or settings"):
        _run(data, tmp_path, CountingLM(data[2]), k=2)
    lm = CountingLM(data[2])
    s = _run(data, tmp_path, lm, k=2, fresh=True)
    assert lm.calls == 8 and s.reused_llm == 0  # another teacher: its answers are not the old ones


@pytest.mark.parametrize("kw, match", [({"rank": False, "infer": False}, "turn both off"),
                                       ({"selection": "best"}, "selection must be one of"),
                                       ({"budget": "-3"}, "0 or more items"),
                                       ({"rounds": 0}, "rounds must be >= 1"),
                                       ({"pool_factor": 0}, "pool_factor must be >= 1"),
                                       ({"self_train": 2}, "self_train must be a share")])
def test_run_refuses_bad_settings_before_writing_anything(data, tmp_path, kw, match):
    with pytest.raises(InputError, match=match):
        _run(data, tmp_path, CountingLM(data[2]), **kw)
    assert not (tmp_path / "run").exists()


def test_cli_budget_refuses_model_and_malformed_budget(data, tmp_path, capsys):
    from zsl.cli import main

    items, vocab, _ = data
    assert main(["label", str(items), "--labels", str(vocab), "--budget", "5", "--model", "x"]) != 0
    assert "does not combine with --model" in capsys.readouterr().err
    assert main(["label", str(items), "--labels", str(vocab), "--budget", "lots", "--encoder", "hashing",
                 "--out", str(tmp_path / "r")]) != 0
    assert "neither a number of items nor a percentage" in capsys.readouterr().err
    assert main(["label", str(items), "--labels", str(vocab), "--rounds", "3", "--self-train", "0"]) != 0
    assert "--rounds, --self-train only apply with --budget" in capsys.readouterr().err


def test_run_refuses_an_image_folder_and_says_why(data, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not read: refused before any image is opened")
    with pytest.raises(InputError, match="an image run has no LLM step to budget.*without --budget"):
        budget_run(folder, data[1], budget="10%", out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_teacher_that_always_says_the_same_label_leaves_retrieval_in_place_and_says_why():
    emb, _ = _blobs()
    cheap = np.random.default_rng(2).normal(size=(len(emb), 4)).astype(np.float32)
    res = budget_loop(emb, cheap, lambda idx: {i: [2] for i in idx}, n_llm=10, rounds=2)
    assert res.student is None and np.array_equal(res.student_scores, cheap)
    assert "only one label" in res.rounds[-1]["note"]
    assert res.source.count("llm") == 10 and res.source.count("retrieval") == len(emb) - 10


def test_a_student_that_predicts_the_teacher_worse_than_retrieval_is_not_used():
    emb, gold = _blobs(n_per=30)
    cheap = np.eye(4, dtype=np.float32)[gold]  # retrieval already says what the teacher says
    res = budget_loop(emb, cheap, lambda idx: {i: [int(gold[i])] for i in idx}, n_llm=40, rounds=1)
    assert res.student is None and "no better than retrieval" in res.rounds[0]["note"]
    assert np.array_equal(res.student_scores, cheap) and res.source.count("retrieval") == len(emb) - 40


def test_a_vocabulary_file_with_repeats_is_read_as_label_run_reads_it(data, tmp_path):
    _items, vocab, rows = data
    vocab.write_text("\n".join(TOPICS + ["sports", ""]) + "\n", encoding="utf-8")
    s = _run(data, tmp_path, CountingLM(rows))
    assert s.labelled == 24 and any("sports" in w for w in s.warnings)
    assert "warning:" in (tmp_path / "run" / "log.txt").read_text()


def test_a_budget_run_with_a_catch_all_label_says_how_to_give_its_pivot_and_never_mixes_it(data, tmp_path):
    """Fitting the zero-shot pivot would ask the LLM beyond the budget: the run says so with the fix, and neither
    the teacher's rows nor the student's put the catch-all beside a real label."""
    items, _, rows = data
    vocab = tmp_path / "with_other.txt"
    vocab.write_text("\n".join([*TOPICS, "other"]) + "\n", encoding="utf-8")
    s = _run((items, vocab, rows), tmp_path, CountingLM(rows), k=3, rule="topk")
    said = [w for w in s.warnings if "catch-all labels (other)" in w]
    assert len(said) == 1 and "--catch-all-pivot" in said[0] and "--no-catch-all-guess" in said[0]
    assert "catch-all labels (other)" in (tmp_path / "run" / "log.txt").read_text()
    got = _rows(tmp_path)
    assert {r["source"] for r in got} == {"llm", "student"}
    assert all("other" not in r["labels"] or r["labels"] == ["other"] for r in got)
    assert any(len(r["labels"]) == 3 for r in got if r["source"] == "student")  # the rule's sets, catch-all left out
    given = _run((items, vocab, rows), tmp_path / "given", CountingLM(rows), catch_all_pivot=0.3)
    assert not [w for w in given.warnings if "no zero-shot pivot" in w]
