"""Silver data: building, JSONL/CSV/Parquet round trips, atomic writes, report."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from zsl.data.records import read_items
from zsl.errors import InputError, MissingDependencyError, VocabularyError
from zsl.evaluation.report import silver_report
from zsl.scoring import GlobalThreshold, PerLabelThreshold, TopK
from zsl.silver.data import (
    SilverData,
    from_hf_dataset,
    make_silver,
    read_silver,
    to_hf_dataset,
    write_silver,
)
from zsl.vocab import LabelVocab, vocab_difference

LABELS = ["sports", "politics, national", 'say "hi"', "émotion", "never"]


@pytest.fixture
def silver() -> SilverData:
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, size=(6, 5)).astype(np.float32)
    scores[:, 4] = 0.0  # a label that is never chosen
    vocab = LabelVocab(LABELS, descriptions=["games", None, "quote", None, None])
    return make_silver(scores, vocab, GlobalThreshold(threshold=0.6, max_labels=3),
                       ids=[f"id{i}" for i in range(6)], texts=[f"text, number {i}" for i in range(6)],
                       provenance={"encoder": "fake:1", "prompts": ["infer@v1"]})


def assert_same(a: SilverData, b: SilverData, atol: float = 1e-5) -> None:
    assert a.vocab.labels == b.vocab.labels
    assert a.ids == b.ids and a.texts == b.texts
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.confidence, b.confidence, atol=atol)
    np.testing.assert_allclose(a.scores, b.scores, atol=atol)
    np.testing.assert_allclose(a.thresholds, b.thresholds, atol=atol)  # NaN == NaN here
    assert a.provenance == b.provenance
    assert a.rule == b.rule


def test_make_silver_records_provenance(silver):
    prov = silver.provenance
    assert prov["vocab_hash"] == silver.vocab.hash and prov["vocab_size"] == 5
    assert prov["encoder"] == "fake:1" and prov["zsl_version"]
    assert prov["rule"]["name"] == "global_threshold" and prov["rule"]["params"]["threshold"] == 0.6
    assert silver.rule["threshold"] == 0.6
    chosen = silver.labels.astype(bool)
    assert np.isnan(silver.thresholds[~chosen]).all() and (silver.thresholds[chosen] == 0.6).all()
    assert silver.labels[:, 4].sum() == 0


def test_make_silver_rejects_bad_scores():
    with pytest.raises(InputError, match="NaN/inf"):
        make_silver(np.array([[0.1, np.nan]]), ["a", "b"], TopK())
    with pytest.raises(InputError, match="2 ids for 1 score rows"):
        make_silver(np.array([[0.1, 0.2]]), ["a", "b"], TopK(), ids=["x", "y"])
    with pytest.raises(InputError, match="columns"):
        make_silver(np.array([[0.1, 0.2, 0.3]]), ["a", "b"], TopK())


def test_make_silver_calibrates_with_a_few_gold_items():
    s = np.array([[0.9, 0.1], [0.6, 0.8], [0.2, 0.3]])
    y = np.array([[1, 0], [1, 1], [0, 0]])
    out = make_silver(s, ["a", "b"], PerLabelThreshold(shrinkage=0), y=y)
    assert out.labels.tolist() == y.tolist()
    assert out.rule["thresholds"] == [0.4, 0.55]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv", ".parquet"])
def test_round_trip(silver, tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    path = write_silver(silver, tmp_path / f"silver{suffix}")
    back = read_silver(path)
    assert_same(silver, back)
    assert back.label_lists() == silver.label_lists()
    assert back.vocab.descriptions == silver.vocab.descriptions
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_jsonl_rows_are_readable_items(silver, tmp_path):
    path = write_silver(silver, tmp_path / "silver.jsonl")
    items = list(read_items(path))
    assert [it.text for it in items] == silver.texts
    assert [it.gold for it in items] == silver.label_lists()
    row = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert set(row) == {"id", "text", "labels", "scores", "confidence", "thresholds", "provenance"}
    assert list(row["scores"]) == LABELS  # every label, in vocabulary order


def test_jsonl_without_sidecar_infers_order_or_asks(silver, tmp_path):
    path = write_silver(silver, tmp_path / "silver.jsonl")
    (tmp_path / "silver.jsonl.meta.json").unlink()
    back = read_silver(path)
    assert back.vocab.labels == silver.vocab.labels
    np.testing.assert_allclose(back.scores, silver.scores, atol=1e-5)
    path = write_silver(silver, tmp_path / "top.jsonl", max_scores=1)
    (tmp_path / "top.jsonl.meta.json").unlink()
    with pytest.raises(InputError, match="cannot tell the label order"):
        read_silver(path)
    back = read_silver(path, vocab=LABELS)
    assert back.labels.tolist() == silver.labels.tolist()
    assert np.isnan(back.scores).any()  # labels beyond max_scores were not recorded


def test_read_with_another_label_order_realigns_by_name(silver, tmp_path):
    path = write_silver(silver, tmp_path / "silver.jsonl")
    reordered = list(reversed(LABELS))
    back = read_silver(path, vocab=reordered)
    np.testing.assert_allclose(back.scores, silver.scores[:, ::-1], atol=1e-5)
    if "pyarrow" in sys.modules or pytest.importorskip("pyarrow"):
        pq_path = write_silver(silver, tmp_path / "silver.parquet")
        np.testing.assert_array_equal(read_silver(pq_path, vocab=reordered).labels, silver.labels[:, ::-1])
        with pytest.raises(VocabularyError, match=r"missing from vocab: \['never'\]"):
            read_silver(pq_path, vocab=LABELS[:4] + ["other"])


def test_unknown_labels_in_rows_are_named(silver, tmp_path):
    path = write_silver(silver, tmp_path / "silver.jsonl")
    with pytest.raises(VocabularyError, match="not in the vocabulary"):
        read_silver(path, vocab=["sports"])


def test_reads_label_file_rows(tmp_path):
    path = tmp_path / "labelled.jsonl"
    path.write_text(json.dumps({"id": "1", "text": "t", "labels": ["b", "a"], "scores": [0.9, 0.4],
                                "provenance": {"vocab_size": 3}}) + "\n", encoding="utf-8")
    back = read_silver(path, vocab=["a", "b", "c"])
    assert back.labels.tolist() == [[1, 1, 0]]
    assert back.confidence.tolist() == [[1.0, 1.0, 0.0]]
    np.testing.assert_allclose(back.scores[0, :2], [0.4, 0.9], atol=1e-6)


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_silver(tmp_path / "none.jsonl")
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="is empty"):
        read_silver(tmp_path / "empty.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n{not json\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.jsonl:2: malformed JSON"):
        read_silver(tmp_path / "bad.jsonl", vocab=["a"])
    with pytest.raises(InputError, match="Unknown silver data format"):
        read_silver(tmp_path / "x.xlsx")


def test_unwritable_path_leaves_nothing(silver, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder", encoding="utf-8")
    for name in ("silver.jsonl", "silver.csv", "silver.parquet", "report.png"):
        with pytest.raises(InputError, match="Cannot write"):
            if name.endswith(".png"):
                silver_report(silver, png=blocker / name)
            else:
                write_silver(silver, blocker / name)
    assert blocker.read_text(encoding="utf-8") == "not a folder"
    assert [p.name for p in tmp_path.iterdir()] == ["a_file"]


def test_failed_write_keeps_the_old_file(silver, tmp_path, monkeypatch):
    path = write_silver(silver, tmp_path / "silver.jsonl")
    before = path.read_bytes()

    def broken_rows(*args, **kwargs):
        yield {"id": "x"}
        raise RuntimeError("disk went away")

    monkeypatch.setattr("zsl.silver.data.silver_rows", broken_rows)
    with pytest.raises(RuntimeError):
        write_silver(silver, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["silver.jsonl", "silver.jsonl.meta.json"]


def test_parquet_without_pyarrow_names_the_install(silver, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MissingDependencyError, match="pip install pyarrow"):
        write_silver(silver, tmp_path / "silver.parquet")
    assert not list(tmp_path.iterdir())


def test_hf_dataset_missing_or_round_trip(silver, monkeypatch):
    try:
        import datasets  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match="pip install datasets"):
            to_hf_dataset(silver)
        return
    ds = to_hf_dataset(silver)
    assert ds.features["labels"].feature.names == LABELS
    assert_same(silver, from_hf_dataset(ds))
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(MissingDependencyError, match="pip install datasets"):
        to_hf_dataset(silver)


def test_report_text_and_png(silver, tmp_path):
    pytest.importorskip("matplotlib")
    rep = silver_report(silver, png=tmp_path / "r.png", txt=tmp_path / "r.txt")
    assert rep.n_items == 6 and rep.n_labels == 5
    assert rep.never_chosen == ["never"]
    assert rep.n_empty == int((silver.labels.sum(axis=1) == 0).sum())
    assert sum(rep.label_counts.values()) == int(silver.labels.sum())
    text = (tmp_path / "r.txt").read_text(encoding="utf-8")
    assert "items with no label" in text and "Never chosen (1): never" in text
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(rep.to_dict())


def test_vocab_difference_messages():
    assert vocab_difference(["a", "b"], ["a", "b"]) == ""
    msg = vocab_difference(["a", "b", "c"], ["a", "c", "d"])
    assert "missing from given: ['b']" in msg and "not in expected: ['d']" in msg
    assert "column 0" in vocab_difference(["a", "b"], ["b", "a"])


def test_silver_data_checks_shapes():
    v = LabelVocab(["a", "b"])
    z = np.zeros((1, 2))
    with pytest.raises(InputError, match="expected \\(1, 2\\)"):
        SilverData(v, ["x"], np.zeros((1, 3)), z, z, z)
    with pytest.raises(InputError, match=r"1 repeated id\(s\): 'x'"):
        SilverData(v, ["x", "x"], np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)))


@pytest.mark.parametrize("name", ["silver.jsonl", "silver.csv", "silver.parquet"])
def test_silver_files_hold_texts_and_are_owner_only_whatever_the_umask(tmp_path, name):
    """Issue #26 (X4): silver data carries every item's text, like the private run it comes from."""
    import os
    import stat

    from zsl.silver.data import make_silver, write_silver

    silver = make_silver(np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32), ["a", "b"], ids=["1", "2"],
                         texts=["secret one", "secret two"])
    old = os.umask(0o022)
    try:
        write_silver(silver, tmp_path / name)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
