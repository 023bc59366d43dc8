"""Bad input gives one clear error line or a reported bad row, never a traceback or a silent surprise (issue #11)."""

from __future__ import annotations

import json
import pathlib
from pathlib import Path

import numpy as np
import pytest

from zsl.cli import main
from zsl.data import BadRow, Item, input_format, iter_records, read_items
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
    from zsl.distill import StudentClassifier

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
    from zsl.distill import StudentClassifier

    vocab = LabelVocab(["topics", "sports", "weather"], priors=[1, 2, 1], parents=[None, "topics", "topics"])
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 6)).astype(np.float32)
    path = StudentClassifier(**FAST).fit(X, (X[:, :3] > 0).astype(np.float32), vocab=vocab).save(tmp_path / "s")
    back = StudentClassifier.load(path)  # the recorded hash covers priors and parents: they are saved too
    assert back.vocab_.hash == vocab.hash and back.vocab_.parents == vocab.parents


def test_cli_refuses_a_text_student_whose_labels_were_reordered(tmp_path, capsys, items_file):
    pytest.importorskip("torch")
    from zsl.distill import distill_file
    from zsl.encoders import HashingEncoder
    from zsl.pseudo import make_silver, write_silver
    from zsl.scoring import TopK

    texts = [f"{w} {i}" for i in range(10) for w in ("football match", "rain storm", "pasta oven")]
    enc = HashingEncoder()
    silver = make_silver(enc.encode(texts) @ enc.encode(TOPICS).T, LabelVocab(TOPICS), TopK(k=1), texts=texts)
    distill_file(write_silver(silver, tmp_path / "silver.jsonl"), tmp_path / "student", encoder="hashing", **FAST)
    _swap_first_labels(tmp_path / "student")
    code = main(["label", str(items_file), "--model", str(tmp_path / "student"), "--out", str(tmp_path / "run")])
    _one_error_line(capsys, code, "config.json", "edited", "zsl distill")


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
