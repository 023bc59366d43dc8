import json

import numpy as np
import pytest

from zsl import LabelVocab, VocabularyError
from zsl.errors import InputError


def test_labels_with_commas_quotes_newlines_unicode_survive():
    labels = ["use Python, R and SQL", 'say "hello"', "line\nbreak", "café management", " stray space "]
    v = LabelVocab(labels)
    assert list(v) == labels
    assert v.index("use Python, R and SQL") == 0
    assert v.index(" stray space ") == 4
    assert v.to_multi_hot([["line\nbreak", "café management"]]).tolist() == [[0, 0, 1, 1, 0]]


@pytest.mark.parametrize("bad, match", [
    ([], "empty"),
    (["a", "a", "b"], "duplicated"),
    (["a", "   "], "blank"),
    (["a", 3], "strings"),
    ("abc", "one string"),
])
def test_bad_vocabularies_raise_clear_errors(bad, match):
    with pytest.raises(VocabularyError, match=match):
        LabelVocab(bad)


def test_unknown_label_suggests_close_matches():
    v = LabelVocab(["machine learning", "cooking"])
    with pytest.raises(VocabularyError, match="machine learning"):
        v.index("machine learnin")


def test_hash_depends_on_order_content_and_priors():
    a = LabelVocab(["x", "y"])
    assert a.hash == LabelVocab(["x", "y"]).hash
    assert a.hash != LabelVocab(["y", "x"]).hash
    assert a.hash != LabelVocab(["x", "y"], priors=[1, 3]).hash
    assert LabelVocab(["a,b"]).hash != LabelVocab(["a", "b"]).hash


def test_priors_normalised_and_validated():
    v = LabelVocab(["x", "y"], priors={"x": 1.0, "y": 3.0})
    np.testing.assert_allclose(v.prior_array(), [0.25, 0.75])
    with pytest.raises(VocabularyError):
        LabelVocab(["x", "y"], priors=[1.0])
    with pytest.raises(VocabularyError):
        LabelVocab(["x", "y"], priors=[-1.0, 2.0])


def test_from_file_txt_jsonl_csv(tmp_path):
    txt = tmp_path / "v.txt"
    txt.write_text("alpha\n\nbeta, gamma\n", encoding="utf-8")
    assert list(LabelVocab.from_file(txt)) == ["alpha", "beta, gamma"]

    jl = tmp_path / "v.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in [
        {"label": "a", "description": "first", "prior": 1},
        {"label": "b", "prior": 3},
    ]), encoding="utf-8")
    v = LabelVocab.from_file(jl)
    assert v.descriptions == ("first", None)
    np.testing.assert_allclose(v.prior_array(), [0.25, 0.75])
    assert v.text_for(0, with_description=True) == "a: first"

    csvf = tmp_path / "v.csv"
    csvf.write_text('label,description\n"x, y",has comma\nz,\n', encoding="utf-8")
    v = LabelVocab.from_file(csvf)
    assert list(v) == ["x, y", "z"]


def test_from_file_duplicates_and_dedupe(tmp_path):
    f = tmp_path / "v.txt"
    f.write_text("a\nb\na\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match="dedupe=True"):
        LabelVocab.from_file(f)
    assert list(LabelVocab.from_file(f, dedupe=True)) == ["a", "b"]


def test_from_file_errors(tmp_path):
    with pytest.raises(VocabularyError, match="does not exist"):
        LabelVocab.from_file(tmp_path / "missing.txt")
    bad = tmp_path / "v.jsonl"
    bad.write_text('{"label": "a"}\n{oops\n', encoding="utf-8")
    with pytest.raises(VocabularyError, match=":2"):
        LabelVocab.from_file(bad)
    latin = tmp_path / "l.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(VocabularyError, match="UTF-8"):
        LabelVocab.from_file(latin)


def test_multi_hot_rejects_string_rows_and_unknown_labels():
    v = LabelVocab(["a", "b"])
    with pytest.raises(InputError, match="list of labels"):
        v.to_multi_hot(["a"])
    with pytest.raises(VocabularyError):
        v.to_multi_hot([["c"]])
    assert v.to_multi_hot([["c", "a"]], strict=False).tolist() == [[1, 0]]
