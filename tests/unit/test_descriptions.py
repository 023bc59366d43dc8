"""Label descriptions (issue #13 item 2): on by default for retrieval and Rank, cut, cleaned, switchable, recorded."""

import json

import dspy
import numpy as np
import pytest
from zsl.programs.irr import InferRetrieveRank

from tests.fakes import ScriptedLM
from zsl import LabelVocab, Tagger
from zsl.cli import main
from zsl.errors import InputError
from zsl.index import VocabIndex
from zsl.models.encoders import HashingEncoder, encode_cached
from zsl.runs.label import label_run
from zsl.vocab import clean_description

# Reuters-style codes: the label alone says nothing, the description does.
CODES = ["earn", "crude", "acq", "grain"]
GLOSSES = ["earnings forecasts", "crude oil prices", "mergers and acquisitions", "wheat corn barley"]
MERGER = "Regulators cleared the merger of two regional airlines."


def _vocab(descriptions=GLOSSES):
    return LabelVocab(CODES, descriptions=descriptions)


def _top(tagger, text=MERGER):
    return tagger.top_k([text], k=1)[0][0][0]


def _write_tsv(path, rows):
    path.write_text("label\tdescription\n" + "".join(f"{lab}\t{desc}\n" for lab, desc in rows), encoding="utf-8")
    return path


# -- retrieval ------------------------------------------------------------------------------
def test_retrieval_embeds_descriptions_by_default_and_not_when_turned_off():
    on = Tagger(_vocab(), encoder=HashingEncoder(256), infer=False, rank=False)
    off = Tagger(_vocab(), encoder=HashingEncoder(256), infer=False, rank=False, use_descriptions=False)
    assert on.index_.use_descriptions is True and off.index_.use_descriptions is False
    assert _top(on) == "acq"  # "merger" meets "mergers and acquisitions"
    assert _top(off) != "acq"  # "acq" alone shares nothing with the text
    assert on.program_.config()["label_descriptions"] is True
    assert off.program_.config()["label_descriptions"] is False


class _Recording(HashingEncoder):
    """Remembers the texts it embeds."""

    def encode(self, texts, **kw):
        self.seen = list(texts)
        return super().encode(texts, **kw)


def test_blank_or_repeated_descriptions_count_as_none_even_when_forced():
    blank = _vocab(["", "  \n ", None, "Grain."])  # empty, whitespace, missing, the label again
    assert not blank.has_descriptions and not LabelVocab(CODES).has_descriptions
    assert VocabIndex(blank, HashingEncoder(64)).use_descriptions is False  # auto: off
    enc = _Recording(96)  # a model id of its own: no cache hit from the index above
    VocabIndex(blank, enc, use_descriptions=True)
    assert enc.seen == CODES  # forced on, still the bare labels


def test_partial_descriptions_embed_only_the_labels_that_have_one():
    vocab = _vocab(["Earnings and Earnings Forecasts", None, "Mergers/Acquisitions", "  "])
    assert vocab.has_descriptions
    assert [vocab.text_for(i, with_description=True) for i in range(4)] == [
        "earn: Earnings and Earnings Forecasts", "crude", "acq: Mergers/Acquisitions", "grain"]
    index = VocabIndex(vocab, HashingEncoder(64))
    alone = encode_cached(HashingEncoder(64), ["crude", "grain"])
    np.testing.assert_allclose(index.label_emb[[1, 3]], alone, atol=1e-6)


def test_embedding_cache_key_covers_the_description_texts():
    class Counting(HashingEncoder):
        calls = 0

        def encode(self, texts, **kw):
            Counting.calls += 1
            return super().encode(texts, **kw)

    first = VocabIndex(_vocab(), Counting(64))
    assert Counting.calls == 2  # the labels, and the "label: description" texts
    again = VocabIndex(_vocab(), Counting(64))
    assert Counting.calls == 2  # same labels and descriptions: read from the cache
    np.testing.assert_array_equal(first.desc_emb, again.desc_emb)
    other = VocabIndex(_vocab([*GLOSSES[:2], "company takeovers", GLOSSES[3]]), Counting(64))
    assert Counting.calls == 3  # one description changed: its texts get a new key and are encoded again
    np.testing.assert_array_equal(first.label_emb, other.label_emb)  # the labels' own vectors are shared
    row = int(np.where(first.desc_rows == 2)[0][0])
    assert not np.allclose(first.desc_emb[row], other.desc_emb[row]) and np.allclose(first.desc_emb[0], other.desc_emb[0])


# -- cleaning and cutting -------------------------------------------------------------------
def test_long_newline_blank_and_quoted_descriptions():
    long = " ".join(f"w{i}" for i in range(100))
    text, cut = clean_description("x", long)
    assert cut and text == " ".join(long.split()[:48]) + "\u2026"
    text, cut = clean_description("x", "a" * 1000)  # no spaces: the character budget holds
    assert cut and len(text) == 401
    assert clean_description("x", "first line\r\n\tsecond  line") == ("first line second line", False)
    assert clean_description("x", " \n\t ") == (None, False) and clean_description("x", "") == (None, False)
    assert clean_description("x", 'He said "buy", then \'sell\'') == ('He said "buy", then \'sell\'', False)
    vocab = LabelVocab(["a", "b"], descriptions=[long, "short\none"])
    assert vocab.text_for(0, with_description=True) == "a: " + " ".join(long.split()[:48]) + "\u2026"
    assert vocab.text_for(1, with_description=True) == "b: short one"
    assert vocab.descriptions_cut() == 1


# -- Rank -----------------------------------------------------------------------------------
def _yesno_lm():
    return ScriptedLM([], judge=lambda c: 4.0 if "Mergers" in c else -4.0)


def test_yesno_rank_shows_descriptions_with_the_candidates():
    vocab = _vocab(["Earnings and Earnings Forecasts", None, "Mergers/Acquisitions", 'grains, "cereals"\nand feed'])
    lm = _yesno_lm()
    tagger = Tagger(vocab, lm=lm, encoder=HashingEncoder(256), infer=False, rank_top=4, label_kind="topics")
    assert _top(tagger) == "acq"
    prefix, conts, suffix = lm.yesno_calls[0]
    assert sorted(conts) == sorted(["earn (Earnings and Earnings Forecasts)", "crude", "acq (Mergers/Acquisitions)",
                                    'grain (grains, "cereals" and feed)'])
    # the question around the candidates is the one a vocabulary without descriptions gets
    plain_lm = _yesno_lm()
    Tagger(LabelVocab(CODES), lm=plain_lm, encoder=HashingEncoder(256), infer=False, rank_top=4,
           label_kind="topics").predict([MERGER])
    plain_prefix, plain_conts, plain_suffix = plain_lm.yesno_calls[0]
    assert (prefix, suffix) == (plain_prefix, plain_suffix) and sorted(plain_conts) == sorted(CODES)


def test_rank_descriptions_are_cut_to_the_smaller_rank_budget():
    long = " ".join(f"w{i}" for i in range(60))
    lm = ScriptedLM([], judge=lambda c: 0.0)
    Tagger(LabelVocab(["x"], descriptions=[long]), lm=lm, encoder=HashingEncoder(64), infer=False).predict(["t"])
    (cont,) = lm.yesno_calls[0][1]
    assert cont == "x (" + " ".join(f"w{i}" for i in range(16)) + "\u2026)"


def test_list_rank_shows_descriptions_in_the_options():
    vocab = _vocab(["Earnings and Earnings Forecasts", None, "Mergers/Acquisitions", None])
    program = InferRetrieveRank(VocabIndex(vocab, HashingEncoder(256)), infer=False, rank_top=4, rank_mode="list")
    seen = {}

    def fake_predict(text, options):
        seen["options"] = options.splitlines()
        return dspy.Prediction(selected="1")

    program.rank.predict = fake_predict
    program(text=MERGER)
    assert "acq (Mergers/Acquisitions)" in [o.split(". ", 1)[1] for o in seen["options"]]
    assert "crude" in [o.split(". ", 1)[1] for o in seen["options"]]
    program.index = VocabIndex(vocab, HashingEncoder(256), use_descriptions=False)
    program(text=MERGER)
    assert sorted(o.split(". ", 1)[1] for o in seen["options"]) == sorted(CODES)


def test_rank_shows_descriptions_of_one_word_labels_only_by_default():
    from zsl.programs.irr import Rank

    labels = ["acq", "money-fx", "manage budgets", "Haskell"]
    descs = ["Mergers/Acquisitions", "Money/Foreign Exchange", "Plan and monitor a budget.", "A functional language."]
    assert Rank(mode="yesno").shown(labels, descs) == [
        "acq (Mergers/Acquisitions)", "money-fx (Money/Foreign Exchange)", "manage budgets",
        "Haskell (A functional language.)"]
    assert Rank(mode="yesno", descriptions="all").shown(labels, descs)[2] == "manage budgets (Plan and monitor a budget.)"
    assert Rank(mode="yesno", descriptions="none").shown(labels, descs) == labels
    with pytest.raises(InputError, match="auto, all, none"):
        Rank(mode="yesno", descriptions="some")


def test_tagger_and_cli_pass_the_rank_description_rule_and_record_it(tmp_path, monkeypatch):
    import zsl.models.lm

    vocab = LabelVocab(["acq", "manage budgets"], descriptions=["Mergers/Acquisitions", "Plan and monitor a budget."])
    lm = ScriptedLM([], judge=lambda c: 0.0)
    tagger = Tagger(vocab, lm=lm, encoder=HashingEncoder(64), infer=False, rank_top=2, rank_descriptions="all")
    tagger.predict(["a takeover bid"])
    assert sorted(lm.yesno_calls[0][1]) == ["acq (Mergers/Acquisitions)", "manage budgets (Plan and monitor a budget.)"]
    assert tagger.program_.config()["rank_descriptions"] == "all"
    lms = []
    monkeypatch.setattr(zsl.models.lm, "get_lm", lambda name=None, **kw: lms.append(ScriptedLM([], judge=lambda c: 0.0))
                        or lms[-1])
    labels = _write_tsv(tmp_path / "labels.tsv", zip(vocab.labels, vocab.descriptions, strict=True))
    items = tmp_path / "items.txt"
    items.write_text("a takeover bid\n", encoding="utf-8")
    base = ["label", str(items), "--labels", str(labels), "--encoder", "hashing", "--no-infer", "-k", "1"]
    assert main([*base, "--out", str(tmp_path / "auto")]) == 0
    assert sorted(lms[-1].yesno_calls[0][1]) == ["acq (Mergers/Acquisitions)", "manage budgets"]
    assert main([*base, "--out", str(tmp_path / "none"), "--rank-descriptions", "none"]) == 0
    assert sorted(lms[-1].yesno_calls[0][1]) == ["acq", "manage budgets"]
    manifest = json.loads((tmp_path / "none" / "manifest.json").read_text())
    assert manifest["settings"]["settings"]["rank_descriptions"] == "none"


def test_rank_refuses_descriptions_that_do_not_match_the_candidates():
    from zsl.programs.irr import Rank

    with pytest.raises(InputError, match="2 descriptions for 1 candidates"):
        Rank(mode="yesno").shown(["a"], ["x", "y"])


# -- runs: switch, manifest, resume, one note -----------------------------------------------
def test_cli_flag_turns_descriptions_off_is_recorded_and_a_resume_with_the_other_choice_is_refused(
        tmp_path, monkeypatch, capsys):
    import zsl.models.lm

    lms = []

    def fake_get_lm(name=None, **kw):
        lms.append(_yesno_lm())
        return lms[-1]

    monkeypatch.setattr(zsl.models.lm, "get_lm", fake_get_lm)
    vocab = _write_tsv(tmp_path / "labels.tsv", zip(CODES, GLOSSES, strict=True))
    items = tmp_path / "items.txt"
    items.write_text(MERGER + "\n", encoding="utf-8")
    base = ["label", str(items), "--labels", str(vocab), "--encoder", "hashing", "--no-infer", "--rank-top", "4",
            "-k", "1"]
    assert main([*base, "--out", str(tmp_path / "on")]) == 0
    assert "acq (mergers and acquisitions)" in lms[-1].yesno_calls[0][1]
    assert main([*base, "--out", str(tmp_path / "off"), "--no-label-descriptions"]) == 0
    assert sorted(lms[-1].yesno_calls[0][1]) == sorted(CODES)
    settings = {name: json.loads((tmp_path / name / "manifest.json").read_text())["settings"]["settings"]
                for name in ("on", "off")}
    assert settings["on"]["label_descriptions"] is True and settings["off"]["label_descriptions"] is False
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "on"), "--no-label-descriptions"]) == 2
    assert "label_descriptions: true -> false" in capsys.readouterr().err


def test_image_descriptions_flag_is_a_separate_switch():
    from zsl.cli import build_parser

    args = build_parser().parse_args(["label", "x", "--descriptions"])
    assert args.descriptions is True and args.no_label_descriptions is False
    args = build_parser().parse_args(["label", "x", "--no-label-descriptions"])
    assert args.descriptions is False and args.no_label_descriptions is True


def test_label_run_resume_with_the_other_setting_is_refused(tmp_path):
    items = tmp_path / "items.txt"
    items.write_text(MERGER + "\nOil prices fell.\n", encoding="utf-8")
    base = {"encoder": "hashing", "infer": False, "rank": False, "k": 1}
    s = label_run(items, _vocab(), out=tmp_path / "run", **base)
    rows = [json.loads(x) for x in (tmp_path / "run" / "labels.jsonl").read_text().splitlines()]
    assert rows[0]["labels"] == ["acq"]
    with pytest.raises(InputError, match="label_descriptions: true -> false"):
        label_run(items, _vocab(), out=tmp_path / "run", label_descriptions=False, **base)
    again = label_run(items, _vocab(), out=tmp_path / "run", label_descriptions=True, **base)
    assert again.already_complete and s.labelled == 2


def test_cut_descriptions_are_reported_once_per_run_not_per_item(tmp_path):
    long = " ".join(f"w{i}" for i in range(60))  # over both budgets
    mid = " ".join(f"m{i}" for i in range(20))  # over the Rank budget only
    vocab = LabelVocab(["x", "y", "z"], descriptions=[long, mid, "short"])
    items = tmp_path / "items.txt"
    items.write_text("".join(f"item number {i}\n" for i in range(9)), encoding="utf-8")
    lm = ScriptedLM([], judge=lambda c: 0.0)
    s = label_run(items, vocab, out=tmp_path / "run", lm=lm, encoder="hashing", infer=False, k=1, chunk_size=2)
    notes = [w for w in s.warnings if "label descriptions" in w]
    assert len(notes) == 1
    assert "1 longer than 48 words" in notes[0] and "2 longer than 16 words" in notes[0]
    log = (tmp_path / "run" / "log.txt").read_text()
    assert log.count("label descriptions:") == 1
    rows = [json.loads(x) for x in (tmp_path / "run" / "labels.jsonl").read_text().splitlines()]
    assert len(rows) == 9 and not any("notes" in r for r in rows)
    plain = label_run(items, vocab, out=tmp_path / "plain", lm=lm, encoder="hashing", infer=False, k=1,
                      label_descriptions=False)
    assert not any("label descriptions" in w for w in plain.warnings)


def test_a_description_adds_evidence_but_never_hides_the_label_name():
    enc = HashingEncoder(512)
    vocab = LabelVocab(["python programming", "acq"],
                       descriptions=["a long gloss about snakes, reptiles, zoos and venom " * 3, "mergers and acquisitions"])
    bare = VocabIndex(vocab, enc, use_descriptions=False)
    both = VocabIndex(vocab, enc)
    q = enc.encode(["python programming", "mergers and acquisitions"])
    s_bare, s_both = bare.similarities(q), both.similarities(q)
    assert (s_both >= s_bare - 1e-6).all()  # the larger of the label's and the described label's similarity
    assert s_both[0, 0] == pytest.approx(s_bare[0, 0])  # the gloss does not dilute a label named in the text
    assert s_both[1, 1] > s_bare[1, 1] + 0.3  # the code is found through its description


def test_faiss_and_numpy_agree_with_descriptions():
    enc = HashingEncoder(256)
    labels = [f"label {i} {w}" for i, w in enumerate(["oil", "wheat", "steel", "gold", "cars", "ships"] * 5)]
    descs = [f"about {lab.split()[-1]} markets and prices" if i % 2 else None for i, lab in enumerate(labels)]
    vocab = LabelVocab(labels, descriptions=descs)
    exact, fa = VocabIndex(vocab, enc), VocabIndex(vocab, enc, faiss_threshold=0)
    assert fa.backend == "faiss" and exact.desc_rows.size == 15
    q = enc.encode(["gold prices rose", "wheat harvest", "new ships"])
    ve, ie = exact.search(q, 7)
    vf, i_f = fa.search(q, 7)
    np.testing.assert_allclose(ve, vf, atol=1e-5)
    for a, b, v in zip(ie, i_f, ve):  # equal scores may come in either order
        assert set(a[v > v[-1] + 1e-5]) == set(b[v > v[-1] + 1e-5])
