"""fine_tune_encoder's bad input: each refused with a clear message before any model loads."""

from __future__ import annotations

import pytest

from zsl import LabelVocab
from zsl.errors import InputError
from zsl.models.encoders import HashingEncoder
from zsl.text.finetune import fine_tune_encoder

VOCAB = LabelVocab(["joy", "anger"])
EXAMPLES = [("I love it", ["joy"]), ("This is outrageous", ["anger"])]


def test_an_out_folder_that_holds_files_is_refused(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(InputError, match="not an empty folder"):
        fine_tune_encoder(EXAMPLES, VOCAB, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["old.txt"]


def test_an_out_path_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "enc"
    f.write_text("x")
    with pytest.raises(InputError, match="new folder"):
        fine_tune_encoder(EXAMPLES, VOCAB, f)


def test_labels_outside_the_vocabulary_are_listed(tmp_path):
    with pytest.raises(InputError, match=r"'fear' \(example 1\)"):
        fine_tune_encoder([("a", ["joy"]), ("b", ["fear"])], VOCAB, tmp_path / "enc")
    assert not (tmp_path / "enc").exists()


@pytest.mark.parametrize("examples", [[], [("   ", ["joy"])], ["just a text"]])
def test_no_usable_example_is_refused(tmp_path, examples):
    with pytest.raises(InputError, match="(?i)example"):
        fine_tune_encoder(examples, VOCAB, tmp_path / "enc")


@pytest.mark.parametrize("setting", [{"epochs": 0}, {"batch_size": 1.5}, {"negatives": 1}, {"lr": 0},
                                     {"scale": -1.0}, {"epochs": True}])
def test_bad_settings_are_refused(tmp_path, setting):
    with pytest.raises(InputError, match=next(iter(setting))):
        fine_tune_encoder(EXAMPLES, VOCAB, tmp_path / "enc", **setting)


def test_the_hashing_encoder_has_nothing_to_train(tmp_path):
    with pytest.raises(InputError, match="sentence-transformers"):
        fine_tune_encoder(EXAMPLES, VOCAB, tmp_path / "enc", encoder=HashingEncoder(16))


def test_zsl_fit_refuses_to_fine_tune_the_hashing_encoder_in_one_line(tmp_path, capsys):
    from zsl.cli import main

    train = tmp_path / "train.jsonl"
    train.write_text('{"text": "I love it", "labels": ["joy"]}\n{"text": "How dare you", "labels": ["anger"]}\n')
    vocab = tmp_path / "labels.txt"
    vocab.write_text("joy\nanger\n")
    code = main(["fit", str(train), "--labels", str(vocab), "--out", str(tmp_path / "p.json"), "--no-infer",
                 "--no-rank", "--encoder", "hashing", "--fine-tune-encoder", str(tmp_path / "enc")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("zsl: error:") and "sentence-transformers" in err
    assert not (tmp_path / "enc").exists() and not (tmp_path / "p.json").exists()
