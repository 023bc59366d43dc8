import dspy
import numpy as np
import pytest
from zsl.programs.irr import Infer, InferRetrieveRank, Rank, parse_numbers, parse_phrases

from tests.fakes import ScriptedLM
from zsl import LabelVocab
from zsl.errors import InputError
from zsl.index import VocabIndex
from zsl.models.encoders import HashingEncoder

LABELS = ["python programming", "SQL, databases and queries", "baking bread", "swimming", "line\nbreak label"]


@pytest.fixture
def index():
    return VocabIndex(LabelVocab(LABELS), HashingEncoder(dim=256))


def test_parse_phrases_keeps_commas_and_drops_bullets_and_repeats():
    raw = "1. Python\n- SQL, databases\n* python\n\n  \n(2) baking"
    assert parse_phrases(raw, 10) == ["Python", "SQL, databases", "baking"]
    assert parse_phrases(raw, 2) == ["Python", "SQL, databases"]
    assert parse_phrases("", 5) == [] and parse_phrases(None, 5) == []


def test_parse_numbers_ignores_out_of_range_and_repeats():
    assert parse_numbers("2, 2, 7, 1", 3) == [1, 0]
    assert parse_numbers("none of them", 3) == []


def test_infer_with_scripted_lm():
    dspy.configure(lm=ScriptedLM([{"phrases": "python\nsql queries"}]))
    pred = Infer("skills")(text="We want a Python and SQL developer.")
    assert pred.phrases == ["python", "sql queries"]
    assert pred.truncated is False


def test_rank_yesno_uses_log_odds_and_label_text_verbatim():
    lm = ScriptedLM([], judge=lambda label: 5.0 if "SQL" in label else -5.0)
    dspy.configure(lm=lm)
    rank = Rank("skills")
    assert rank.resolved_mode() == "yesno"
    pred = rank(text="SQL work", candidates=["baking bread", "SQL, databases and queries"])
    assert pred.scores[1] > 0.99 and pred.scores[0] < 0.01
    prefix, conts, _suffix = lm.yesno_calls[0]
    assert "SQL work" in prefix and "skill" in prefix.lower()
    assert conts == ["baking bread", "SQL, databases and queries"]


def test_default_rank_prompt_ends_each_candidate_at_the_label():
    # rank_yesno_short: the assistant's turn is the answer cue, no "Answer:" after each candidate
    lm = ScriptedLM([], judge=lambda label: 0.0)
    dspy.configure(lm=lm)
    Rank("skills")(text="SQL work", candidates=["SQL"])
    Rank("skills", yesno_prompt="rank_yesno")(text="SQL work", candidates=["SQL"])
    (_, _, short), (_, _, long) = lm.yesno_calls
    assert short == "" and long == "\nAnswer:"
    assert Rank("skills").prompt_id.startswith("rank_yesno_short@")


def test_rank_prompt_with_a_lead_puts_candidates_in_the_answer_turn():
    lm = ScriptedLM([], judge=lambda label: 5.0 if "SQL" in label else -5.0)
    dspy.configure(lm=lm)
    default = Rank("skills")
    default(text="SQL work", candidates=["SQL"])
    lead = Rank("skills", yesno_prompt="rank_yesno_lead")
    pred = lead(text="SQL work", candidates=["baking bread", "SQL"])
    assert lm.yesno_leads == [None, "Skill: "]
    assert pred.scores[1] > 0.99 and pred.scores[0] < 0.01
    assert lead.prompt_id.startswith("rank_yesno_lead@") and lead.prompt_id != default.prompt_id


def test_rank_list_mode_reads_numbers_not_label_strings():
    dspy.configure(lm=ScriptedLM([{"selected": "2, 1"}]))
    pred = Rank("skills", mode="list")(text="t", candidates=["a, b", "c"])
    assert pred.mode == "list"
    assert pred.scores[1] > pred.scores[0] > 0


def test_rank_rejects_unknown_mode():
    with pytest.raises(InputError, match="mode"):
        Rank(mode="bogus")


def test_full_program_ranks_whole_vocabulary(index):
    lm = ScriptedLM([{"phrases": "SQL databases\npython"}], judge=lambda label: 4.0 if "SQL" in label else -4.0)
    dspy.configure(lm=lm)
    program = InferRetrieveRank(index, label_kind="skills", rank_top=3)
    pred = program(text="Experience with SQL databases and Python programming")
    assert sorted(pred.ranking) == sorted(LABELS)
    assert pred.ranking[0] == "SQL, databases and queries"
    assert pred.scores.shape == (len(LABELS),)
    assert pred.notes == []


def test_llm_garbage_falls_back_to_retrieval(index):
    # An Infer answer with no usable phrase, then a Rank that raises: still a full ranking.
    lm = ScriptedLM([{"phrases": "   \n - \n"}], judge=lambda label: (_ for _ in ()).throw(ValueError("bad logits")))
    dspy.configure(lm=lm)
    pred = InferRetrieveRank(index)(text="python programming jobs")
    assert pred.ranking[0] == "python programming"
    assert any("no usable phrase" in n for n in pred.notes)
    assert any("Rank failed" in n for n in pred.notes)


def test_retrieve_only_needs_no_lm(index):
    program = InferRetrieveRank(index, infer=False, rank=False)
    pred = program(text="baking bread at home")
    assert pred.ranking[0] == "baking bread"


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text_is_a_caller_error(index, text):
    with pytest.raises(InputError, match="empty"):
        InferRetrieveRank(index, infer=False, rank=False)(text=text)


def test_long_text_is_truncated_and_said(index):
    dspy.configure(lm=ScriptedLM([{"phrases": "python"}]))
    program = InferRetrieveRank(index, rank=False)
    program.infer.max_chars = 50
    pred = program(text="python " * 100)
    assert any("cut to 50" in n for n in pred.notes)


def test_deepcopy_shares_the_index(index):
    import copy

    program = InferRetrieveRank(index)
    clone = copy.deepcopy(program)
    assert clone.index is program.index
    assert clone.infer is not program.infer


def test_separate_lms_per_step(index):
    infer_lm = ScriptedLM([{"phrases": "python"}])
    rank_lm = ScriptedLM([], judge=lambda label: 1.0)
    program = InferRetrieveRank(index, rank_top=2)
    program.infer.set_lm(infer_lm)
    program.rank.set_lm(rank_lm)
    pred = program(text="python code")
    assert len(rank_lm.yesno_calls) == 1 and len(infer_lm.history) == 1
    assert pred.phrases == ["python"] and np.isfinite(pred.scores).all()
