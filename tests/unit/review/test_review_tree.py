"""A tree vocabulary in the review exports (issue #29, item 5): Label Studio's Taxonomy, Argilla paths."""

import json
import xml.etree.ElementTree as ET

import pytest

from zsl.cli import main
from zsl.errors import InputError, VocabularyError
from zsl.review.export import argilla_settings, label_studio_taxonomy, to_argilla, to_label_studio

LABELS = ["Geography", "Bodies of water", "Lakes", "Africa (Lakes)", "Arts", "Music & <song>"]
PARENTS = [None, "Geography", "Bodies of water", "Lakes", None, "Arts"]
ROWS = [
    {"id": "1", "text": "Lake Victoria", "labels": ["Geography", "Lakes", "Africa (Lakes)"], "scores": [0.9, 0.8, 0.7]},
    {"id": "2", "text": "a song", "labels": ["Music & <song>", "Bodies of water"], "scores": [0.6, 0.2]},
]


def _tree(elem):
    """The nested Choice elements as {value: children}."""
    return {c.get("value"): _tree(c) for c in elem.findall("Choice")}


def test_taxonomy_config_nests_the_tree_as_label_studio_documents_it():
    root = ET.fromstring(label_studio_taxonomy(LABELS, PARENTS))
    tax = root.find("Taxonomy")
    assert tax is not None and root.find("Choices") is None
    assert tax.get("name") == "labels" and tax.get("toName") == "text"
    assert _tree(tax) == {"Geography": {"Bodies of water": {"Lakes": {"Africa (Lakes)": {}}}},
                          "Arts": {"Music & <song>": {}}}


def test_taxonomy_config_takes_parents_by_name_and_survives_a_deep_tree():
    deep = [f"n{i}" for i in range(3000)]  # deeper than Python's recursion limit
    xml = label_studio_taxonomy(deep, {f"n{i}": f"n{i - 1}" for i in range(1, 3000)})
    elem = ET.fromstring(xml).find("Taxonomy")
    depth = 0
    while (elem := elem.find("Choice")) is not None:
        depth += 1
    assert depth == 3000


def test_label_studio_export_writes_taxonomy_paths_of_the_deepest_labels(tmp_path):
    tasks_path, config_path = to_label_studio(ROWS, tmp_path / "t.json", vocab_labels=LABELS, parents=PARENTS)
    tasks = json.loads(tasks_path.read_text())
    (r1,) = tasks[0]["predictions"][0]["result"]
    assert r1["type"] == "taxonomy" and r1["from_name"] == "labels"
    assert r1["value"] == {"taxonomy": [["Geography", "Bodies of water", "Lakes", "Africa (Lakes)"]]}
    (r2,) = tasks[1]["predictions"][0]["result"]
    assert r2["value"]["taxonomy"] == [["Arts", "Music & <song>"], ["Geography", "Bodies of water"]]
    assert ET.fromstring(config_path.read_text()).find("Taxonomy") is not None


def test_flat_vocabulary_keeps_choices(tmp_path):
    tasks_path, config_path = to_label_studio(ROWS, tmp_path / "t.json", vocab_labels=LABELS,
                                              parents=[None] * len(LABELS))
    assert json.loads(tasks_path.read_text())[0]["predictions"][0]["result"][0]["type"] == "choices"
    assert ET.fromstring(config_path.read_text()).find("Choices") is not None


def test_tree_export_refuses_a_bad_tree_or_missing_vocabulary(tmp_path):
    with pytest.raises(VocabularyError, match="not a label"):
        to_label_studio(ROWS, tmp_path / "t.json", vocab_labels=LABELS, parents={"Lakes": "Oceans"})
    with pytest.raises(InputError, match="vocab_labels"):
        to_label_studio(ROWS, tmp_path / "t.json", parents=PARENTS)


def test_argilla_options_show_paths_and_keep_labels_as_values(tmp_path):
    options = argilla_settings(LABELS, parents=PARENTS)["questions"][0]["settings"]["options"]
    assert options[3] == {"text": "Geography > Bodies of water > Lakes > Africa (Lakes)", "value": "Africa (Lakes)"}
    records, settings = to_argilla(ROWS, tmp_path / "r.jsonl", vocab_labels=LABELS, parents=PARENTS)
    opts = json.loads(settings.read_text())["questions"][0]["settings"]["options"]
    assert opts[5]["text"] == "Arts > Music & <song>"
    first = json.loads(records.read_text().splitlines()[0])
    assert first["suggestions"]["labels"]["value"] == ["Geography", "Lakes", "Africa (Lakes)"]


def test_cli_export_of_a_tree_vocabulary_writes_a_taxonomy(tmp_path, capsys):
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    vocab = tmp_path / "tree.jsonl"
    vocab.write_text("".join(json.dumps({"label": lab, "parent": par}) + "\n" for lab, par in zip(LABELS, PARENTS)),
                     encoding="utf-8")
    out = tmp_path / "tasks.json"
    assert main(["export", str(pred), "--format", "labelstudio", "--out", str(out), "--labels", str(vocab)]) == 0
    config = ET.fromstring((tmp_path / "tasks.config.xml").read_text())
    assert "Africa (Lakes)" in json.dumps(_tree(config.find("Taxonomy")))
    assert json.loads(out.read_text())[1]["predictions"][0]["result"][0]["type"] == "taxonomy"


def tree_run(tmp_path, monkeypatch, **kwargs):
    """A small run whose sidecar records a tree: the topics under 'News', 'Africa (Lakes)' under Geography > ... > Lakes."""
    from tests.small_run import LABELS as RUN_LABELS
    from tests.small_run import make_run
    from zsl.rows import meta_path

    monkeypatch.setenv("ZSL_ENCODER", "hashing")
    run = make_run(tmp_path / "run", **kwargs)
    labels = [*RUN_LABELS, "News", *LABELS]
    parents = ["News", "News", None, None, *[None] * (len(RUN_LABELS) - 4), None, *PARENTS]
    mp = meta_path(run / "labels.jsonl")
    meta = json.loads(mp.read_text())
    meta["vocab"].update(labels=labels, parents=parents)
    mp.write_text(json.dumps(meta))
    return run


def test_review_api_gives_the_tree_and_a_flat_run_none(tmp_path, monkeypatch):
    pytest.importorskip("fastapi")
    pytest.importorskip("cleanlab")
    from fastapi.testclient import TestClient

    from tests.small_run import make_run
    from zsl.review.app import make_app

    client = TestClient(make_app(tree_run(tmp_path, monkeypatch), sort="confidence"))
    assert client.get("/api/state").json()["tree"] is True
    labels, parents = client.get("/api/labels").json(), client.get("/api/parents").json()
    assert dict(zip(labels, parents))["Africa (Lakes)"] == "Lakes" and dict(zip(labels, parents))["sports"] == "News"
    flat = TestClient(make_app(make_run(tmp_path / "flat"), sort="confidence"))
    assert flat.get("/api/state").json()["tree"] is False and flat.get("/api/parents").json() is None


def test_export_of_a_tree_run_takes_the_tree_from_its_sidecar(tmp_path, monkeypatch):
    from zsl.review.export import export_review

    run = tree_run(tmp_path, monkeypatch)
    res = export_review(run, tmp_path / "t.json", format="labelstudio")
    tax = ET.fromstring((tmp_path / "t.config.xml").read_text()).find("Taxonomy")
    assert res["exported"] == 24 and _tree(tax)["News"] == {"sports": {}, "politics": {}}
    first = json.loads((tmp_path / "t.json").read_text())[0]["predictions"][0]["result"][0]
    assert first["type"] == "taxonomy" and first["value"]["taxonomy"][0][0] == "News"
