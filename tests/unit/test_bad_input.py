"""Bad input gives one clear error line or a reported bad row, never a traceback or a silent surprise (issue #11)."""

from __future__ import annotations

import json
import pathlib
from pathlib import Path

import numpy as np
import pytest

from zsl.cli import main
from zsl.data.files import BadRow, Item
from zsl.data.records import input_format, iter_records, read_items
from zsl.errors import InputError, ModelIntegrityError, VocabularyError
from zsl.vocab import LabelVocab

TOPICS = ["sports", "weather", "cooking"]


@pytest.fixture
def vocab_file(tmp_path: Path) -> Path:
    p = tmp_path / "labels.txt"
    p.write_text("\n".join(TOPICS) + "\n", encoding="utf-8")
    return p


@pytest.fixture
def items_file(tmp_path: Path) -> Path:
    p = tmp_path / "items.jsonl"
    p.write_text("".join(json.dumps({"id": f"i{n}", "text": t}) + "\n" for n, t in
                         enumerate(["football match", "rain storm", "pasta oven"])), encoding="utf-8")
    return p


def _label(items: Path, vocab: Path, out: Path, *extra: str) -> list[str]:
    return ["label", str(items), "--labels", str(vocab), "--encoder", "hashing", "--no-infer", "--no-rank",
            "--out", str(out), *extra]


def _one_error_line(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("zsl: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- 5: a student's label order is integrity-checked ----------------------------------------------
FAST = {"epochs": 10, "learning_rate": 0.05, "batch_size": 32}


def _swap_first_labels(student: Path) -> None:
    cfg_path = student / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["labels"][0], cfg["labels"][1] = cfg["labels"][1], cfg["labels"][0]
    cfg_path.write_text(json.dumps(cfg), encoding="utf-8")


def test_student_with_swapped_labels_in_config_is_refused(tmp_path):
    pytest.importorskip("torch")
    from zsl.student.classifier import StudentClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 6)).astype(np.float32)
    Y = (X[:, :3] > 0).astype(np.float32)
    path = StudentClassifier(**FAST).fit(X, Y, vocab=TOPICS).save(tmp_path / "student")
    assert list(StudentClassifier.load(path).classes_) == TOPICS
    _swap_first_labels(path)
    with pytest.raises(ModelIntegrityError, match=r"config was edited .*zsl distill"):
        StudentClassifier.load(path)


def test_student_vocabulary_with_priors_and_hierarchy_round_trips(tmp_path):
    pytest.importorskip("torch")
    from zsl.student.classifier import StudentClassifier

    vocab = LabelVocab(["topics", "sports", "weather"], priors=[1, 2, 1], parents=[None, "topics", "topics"])
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 6)).astype(np.float32)
    path = StudentClassifier(**FAST).fit(X, (X[:, :3] > 0).astype(np.float32), vocab=vocab).save(tmp_path / "s")
    back = StudentClassifier.load(path)  # the recorded hash covers priors and parents: they are saved too
    assert back.vocab_.hash == vocab.hash and back.vocab_.parents == vocab.parents


def test_cli_refuses_a_text_student_whose_labels_were_reordered(tmp_path, capsys, items_file):
    pytest.importorskip("torch")
    from zsl.models.encoders import HashingEncoder
    from zsl.scoring import TopK
    from zsl.silver.data import make_silver, write_silver
    from zsl.student.classifier import distill_file

    texts = [f"{w} {i}" for i in range(10) for w in ("football match", "rain storm", "pasta oven")]
    enc = HashingEncoder()
    silver = make_silver(enc.encode(texts) @ enc.encode(TOPICS).T, LabelVocab(TOPICS), TopK(k=1), texts=texts)
    distill_file(write_silver(silver, tmp_path / "silver.jsonl"), tmp_path / "student", encoder="hashing", **FAST)
    _swap_first_labels(tmp_path / "student")
    code = main(["label", str(items_file), "--model", str(tmp_path / "student"), "--out", str(tmp_path / "run")])
    _one_error_line(capsys, code, "config.json", "edited", "zsl distill")


# -- 9: one `zsl: error:` line instead of a traceback --------------------------------------------------
def test_parquet_file_that_is_not_parquet(tmp_path, capsys, vocab_file):
    bad = tmp_path / "items.parquet"
    bad.write_text("id,text\n1,hello\n", encoding="utf-8")
    code = main(_label(bad, vocab_file, tmp_path / "run"))
    _one_error_line(capsys, code, str(bad), "not a Parquet file")
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    code = main(_label(empty, vocab_file, tmp_path / "run2"))
    _one_error_line(capsys, code, "empty")


def test_unreadable_vocabulary_is_one_line_naming_the_path(tmp_path, capsys, items_file, vocab_file, monkeypatch):
    # tests run as root, where chmod 000 does not stop reads: make the read itself fail
    real = pathlib.Path.read_text

    def denied(self, *args, **kwargs):
        if self == vocab_file:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "read_text", denied)
    code = main(_label(items_file, vocab_file, tmp_path / "run"))
    _one_error_line(capsys, code, str(vocab_file), "Permission denied", "Fix:")


def test_folder_given_where_a_file_is_expected(tmp_path, capsys, items_file, vocab_file):
    folder = tmp_path / "folder"
    folder.mkdir()
    code = main(_label(items_file, folder, tmp_path / "run"))
    _one_error_line(capsys, code, str(folder), "is a folder")
    code = main(_label(items_file, vocab_file, tmp_path / "run2", "--program", str(folder)))
    _one_error_line(capsys, code, str(folder), "folder")


def test_os_errors_reaching_main_become_one_line(capsys, monkeypatch):
    import zsl.cli

    def boom(args):
        raise IsADirectoryError(21, "Is a directory", "/some/where")

    monkeypatch.setattr(zsl.cli, "_cmd_models", boom)
    code = main(["models"])
    _one_error_line(capsys, code, "/some/where: Is a directory", "folder was given where a file is expected")


def test_out_under_a_regular_file(tmp_path, capsys, items_file, vocab_file):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x", encoding="utf-8")
    code = main(_label(items_file, vocab_file, blocker / "run"))
    _one_error_line(capsys, code, str(blocker))
    assert blocker.read_text(encoding="utf-8") == "x"


def test_image_jsonl_with_a_non_utf8_line_skips_that_row(tmp_path):
    from zsl.data.images import image_records, read_image_inputs

    listing = tmp_path / "images.jsonl"
    listing.write_bytes(b'{"image": "a.png", "labels": ["cat"]}\n{"image": "b\xff.png"}\n{"image": "c.png"}\n')
    paths, gold, bad = read_image_inputs(listing)
    assert [Path(p).name for p in paths] == ["a.png", "c.png"] and gold == [["cat"], None]
    assert len(bad) == 1 and bad[0].path == f"{listing}:2" and "not UTF-8" in bad[0].reason
    recs = list(image_records(listing))
    assert [(r.path, r.line) for r in recs if isinstance(r, BadRow)] == [(str(listing), 2)]
    assert [r.id for r in recs if isinstance(r, Item)] == ["a.png", "c.png"]


def test_gguf_file_that_is_not_gguf(tmp_path, capsys, items_file, vocab_file):
    fake = tmp_path / "model.gguf"
    fake.write_text("<html>404 Not Found</html>", encoding="utf-8")
    code = main(["label", str(items_file), "--labels", str(vocab_file), "--encoder", "hashing", "--lm", str(fake),
                 "--out", str(tmp_path / "run")])
    _one_error_line(capsys, code, str(fake), "not a GGUF model file", "Fix:")


@pytest.mark.parametrize(("content", "needle"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a zsl tagger state file"),
    ('{"zsl_tagger": 1}', 'no "program" object'),
    ('{"zsl_tagger": 1, "program": {"nothing": {}}}', "does not fit this program"),
])
def test_bad_program_file(tmp_path, capsys, items_file, vocab_file, content, needle):
    program = tmp_path / "program.json"
    program.write_text(content, encoding="utf-8")
    code = main(_label(items_file, vocab_file, tmp_path / "run", "--program", str(program)))
    _one_error_line(capsys, code, str(program), needle)


@pytest.mark.parametrize(("name", "content", "where"), [
    ("v.csv", "label,prior\nsports,1\nweather,high\n", ":3:"),
    ("v.jsonl", '{"label": "sports", "prior": 1}\n{"label": "weather", "prior": "high"}\n', ":2:"),
    ("v.tsv", "label\tprior\nsports\t-1\n", ":2:"),
])
def test_non_numeric_vocabulary_prior(tmp_path, capsys, items_file, name, content, where):
    vocab = tmp_path / name
    vocab.write_text(content, encoding="utf-8")
    with pytest.raises(VocabularyError, match="not a non-negative number"):
        LabelVocab.from_file(vocab)
    code = main(_label(items_file, vocab, tmp_path / "run"))
    _one_error_line(capsys, code, f"{vocab}{where}", "prior", "Fix:")


@pytest.mark.parametrize(("config", "needle"), [
    ("{broken", "is not valid JSON"),
    ("[]", "not a student config object"),
    ('{"zsl_student": 1}', "lacks 'labels', 'vocab_hash', 'input_kind', 'n_features_in'"),
    ('{"zsl_student": 1, "labels": "abc", "vocab_hash": "x", "input_kind": "text", "n_features_in": 4}',
     "non-empty list of strings"),
])
def test_broken_student_config(tmp_path, capsys, items_file, config, needle):
    pytest.importorskip("safetensors")
    student = tmp_path / "student"
    student.mkdir()
    (student / "config.json").write_text(config, encoding="utf-8")
    code = main(["label", str(items_file), "--model", str(student), "--out", str(tmp_path / "run")])
    _one_error_line(capsys, code, str(student / "config.json"), needle)


# -- 10: poor messages and surprises -------------------------------------------------------------------------
def test_jsonl_with_a_wrong_text_field_names_the_keys_it_has(tmp_path, capsys, vocab_file):
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "a", "body": "football"}\n{"id": "b", "body": "rain", "lang": "en"}\n', encoding="utf-8")
    bad = list(iter_records(items))
    assert all(isinstance(b, BadRow) for b in bad)
    assert "no 'text' field" in bad[1].reason and "'id', 'body', 'lang'" in bad[1].reason
    assert "--text-field" in bad[1].reason
    code = main(_label(items, vocab_file, tmp_path / "run"))
    err = capsys.readouterr().err
    assert code == 3 and "Traceback" not in err
    assert "'id', 'body'" in err and "nothing was labelled: all 2 record(s) were skipped" in err
    assert [i.text for i in read_items(items, text_field="body")] == ["football", "rain"]


def test_json_array_input_is_read_as_records(tmp_path):
    items = tmp_path / "items.json"
    items.write_text(json.dumps([{"id": "a", "text": "football", "labels": ["sports"]}, "rain storm", 7,
                                 {"text": "pasta"}], indent=2), encoding="utf-8")
    assert input_format(items) == "json"
    recs = list(iter_records(items))
    assert [(r.id, r.text) for r in recs if isinstance(r, Item)] == [("a", "football"), ("2", "rain storm"),
                                                                    ("4", "pasta")]
    assert recs[0].gold == ["sports"]
    assert isinstance(recs[2], BadRow) and recs[2].line == 3 and "expected a JSON object" in recs[2].reason


@pytest.mark.parametrize(("content", "needle"), [
    ('{"data": [{"text": "a"}]}', "holds a JSON dict"),
    ('[{"text": "a"},', "not valid JSON"),
])
def test_json_input_that_is_not_an_array_is_refused(tmp_path, capsys, vocab_file, content, needle):
    items = tmp_path / "items.json"
    items.write_text(content, encoding="utf-8")
    code = main(_label(items, vocab_file, tmp_path / "run"))
    _one_error_line(capsys, code, str(items), needle, "Fix:")


@pytest.mark.parametrize("name", ["drawing.svg", "report.pdf", "items.jsonl.gz", "README"])
def test_unknown_suffixes_are_refused_with_the_supported_formats(tmp_path, capsys, vocab_file, name):
    f = tmp_path / name
    f.write_text('<svg xmlns="http://www.w3.org/2000/svg"><text>sports</text></svg>\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"Supported: \.jsonl, \.json, \.csv, \.tsv, \.parquet, \.txt"):
        input_format(f)
    code = main(_label(f, vocab_file, tmp_path / "run"))
    _one_error_line(capsys, code, str(f), ".png", "rename a plain-text file to .txt")
    assert not (tmp_path / "run").exists()


def test_supported_suffixes_still_resolve(tmp_path):
    for name, fmt in [("a.txt", "text"), ("a.TXT", "text"), ("a.jsonl", "jsonl"), ("a.csv", "csv"), ("a.tsv", "tsv"),
                      ("a.png", "images")]:
        (tmp_path / name).write_text("x\n", encoding="utf-8")
        assert input_format(tmp_path / name) == fmt
    (tmp_path / "d").mkdir()
    assert input_format(tmp_path / "d") == "images"


def test_id_rule_numbers_and_odd_types(tmp_path):
    items = tmp_path / "items.jsonl"
    rows = [{"id": 7, "text": "a"}, {"id": "x", "text": "b"}, {"id": True, "text": "c"}, {"id": 1.5, "text": "d"},
            {"id": [1], "text": "e"}, {"id": None, "text": "f"}, {"text": "g"}]
    items.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    recs = list(iter_records(items))
    assert [r.id for r in recs if isinstance(r, Item)] == ["7", "x", "6", "7"]
    reasons = [r.reason for r in recs if isinstance(r, BadRow)]
    assert len(reasons) == 3 and all("'id' must be a string or an integer" in r for r in reasons)
    assert "bool" in reasons[0] and "float" in reasons[1] and "list" in reasons[2]


def test_colliding_ids_are_reported_with_the_rule(tmp_path, vocab_file):
    from zsl.runs.label import label_run

    items = tmp_path / "items.jsonl"
    items.write_text('{"id": 1, "text": "football"}\n{"id": "1", "text": "rain"}\n{"text": "pasta"}\n'
                     '{"id": "3", "text": "oven"}\n', encoding="utf-8")
    s = label_run(items, vocab_file, out=tmp_path / "run", encoder="hashing", infer=False, rank=False, k=1)
    assert (s.labelled, s.skipped) == (2, 2)
    errors = [json.loads(x) for x in (tmp_path / "run" / "errors.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [e["id"] for e in errors] == ["1", "3"]
    assert all("an integer id counts as its decimal string" in e["reason"] and "gets its line number" in e["reason"]
               for e in errors)


def test_txt_vocabulary_splits_only_on_newlines(tmp_path):
    p = tmp_path / "v.txt"
    p.write_bytes("\ufeffsports\r\nline\u2028separated\nnext\u0085line\nform\x0cfeed\n".encode())
    assert LabelVocab.from_file(p).labels == ("sports", "line\u2028separated", "next\u0085line", "form\x0cfeed")
    j = tmp_path / "v.jsonl"
    j.write_text(json.dumps({"label": "a\u2028b"}, ensure_ascii=False) + "\n" + json.dumps({"label": "c"}) + "\n",
                 encoding="utf-8")
    assert LabelVocab.from_file(j).labels == ("a\u2028b", "c")
    c = tmp_path / "v.csv"
    c.write_bytes("\ufefflabel,prior\nsports,1\nweather,\n".encode())
    assert LabelVocab.from_file(c).priors == (1.0, 0.0)


def test_jsonl_items_keep_u2028_inside_a_text(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"id": "a", "text": "one\u2028two"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert [i.text for i in read_items(items)] == ["one\u2028two"]


# -- issue #26: zsl fit and zsl distill given hostile files ------------------------------------------------------
def _fit(train: Path, vocab: Path, out: Path, *extra: str) -> list[str]:
    return ["fit", str(train), "--labels", str(vocab), "--out", str(out), "--no-infer", "--no-rank",
            "--encoder", "hashing", *extra]


def _train_file(tmp_path: Path, *odd: dict) -> Path:
    rows = [{"id": f"t{n}", "text": f"{t} {n}", "labels": [lab]} for n in range(4)
            for t, lab in (("football match goal", "sports"), ("rain storm wind", "weather"), ("pasta oven", "cooking"))]
    p = tmp_path / "train.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in [*rows, *odd]), encoding="utf-8")
    return p


@pytest.mark.parametrize(("odd", "needle"), [
    ({"id": "x", "text": "a cake", "labels": "cooking"}, "'labels' must be a list of strings"),
    ({"id": "x", "text": "a cake", "labels": [1]}, "'labels' must be a list of strings"),
    ({"id": "x", "text": "", "labels": ["cooking"]}, "empty 'text' field"),
])
def test_fit_refuses_an_example_it_cannot_read_instead_of_dropping_it(tmp_path, capsys, vocab_file, odd, needle):
    train = _train_file(tmp_path, odd)
    code = main(_fit(train, vocab_file, tmp_path / "prog.json"))
    _one_error_line(capsys, code, f"{train}:13: {needle}", "Fix:")
    assert not (tmp_path / "prog.json").exists()


def test_fit_names_the_examples_it_skips_for_having_no_label(tmp_path, capsys, vocab_file):
    train = _train_file(tmp_path, {"id": "empty", "text": "a cake", "labels": []}, {"id": "none", "text": "a pie"})
    assert main(_fit(train, vocab_file, tmp_path / "prog.json")) == 0
    err = capsys.readouterr().err
    assert "skipped 2 example(s)" in err and "'empty', 'none'" in err


@pytest.mark.parametrize("value", ["0", "-3"])
def test_fit_refuses_max_examples_below_one(tmp_path, capsys, vocab_file, value):
    code = main(_fit(_train_file(tmp_path), vocab_file, tmp_path / "prog.json", "--max-examples", value))
    _one_error_line(capsys, code, f"--max-examples must be at least 1, got {value}", "Fix:")
    assert main(_fit(_train_file(tmp_path), vocab_file, tmp_path / "prog.json", "--max-examples", "5")) == 0
    assert "fitted on 5 examples" in capsys.readouterr().out


def test_distill_names_the_repeated_ids_of_its_silver_data(tmp_path, capsys, items_file, vocab_file):
    pytest.importorskip("torch")
    assert main(_label(items_file, vocab_file, tmp_path / "run")) == 0
    silver = tmp_path / "run" / "labels.jsonl"
    lines = silver.read_text(encoding="utf-8").splitlines()
    silver.write_text("\n".join([*lines, lines[0]]) + "\n", encoding="utf-8")
    meta = json.loads((tmp_path / "run" / "labels.jsonl.meta.json").read_text(encoding="utf-8"))
    meta["n_rows"] = len(lines) + 1
    (tmp_path / "run" / "labels.jsonl.meta.json").write_text(json.dumps(meta), encoding="utf-8")
    capsys.readouterr()
    code = main(["distill", str(silver), "--out", str(tmp_path / "student"), "--encoder", "hashing", "--epochs", "2"])
    _one_error_line(capsys, code, str(silver), "1 repeated id(s): 'i0'", "remove the repeats")
