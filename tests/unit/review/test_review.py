import json
import xml.etree.ElementTree as ET

import pytest

from zsl.cli import main
from zsl.errors import InputError, VocabularyError
from zsl.review.export import (
    argilla_settings,
    argilla_warnings,
    confidence,
    disagreement,
    export_review,
    label_studio_config,
    model_id,
    review_order,
    to_argilla,
    to_label_studio,
)

NASTY = 'a, "b" & <c>'
PROV = {"infer_lm": "qwen2.5-1.5b", "rank_lm": "qwen2.5-1.5b", "encoder": "minilm-l6"}
ROWS = [
    {
        "id": "1",
        "text": "sure",
        "labels": [NASTY, "sports"],
        "scores": [0.9, 0.4],
        "retrieval_labels": [NASTY, "sports"],
        "provenance": PROV,
    },
    {
        "id": "2",
        "text": "unsure",
        "labels": ["sports", "café"],
        "scores": [0.3, 0.2],
        "retrieval_labels": ["café", "weather"],
        "provenance": PROV,
    },
    {
        "id": "3",
        "text": "tie with 1",
        "labels": ["weather"],
        "scores": [0.9],
        "retrieval_labels": ["sports"],
        "provenance": PROV,
    },
    {"id": "4", "text": "nothing", "labels": [], "scores": [], "retrieval_labels": [], "provenance": PROV},
]


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_confidence_and_disagreement_values():
    assert [confidence(r) for r in ROWS] == [0.9, 0.3, 0.9, None]
    assert [disagreement(r) for r in ROWS] == [0.0, 0.5, 1.0, 1.0]
    assert disagreement({"id": "x", "labels": ["a"], "scores": [0.5]}) is None
    # silver rows: scores keyed by label; the best score counts, chosen or not
    assert confidence({"id": "s", "labels": ["b"], "scores": {"a": 0.95, "b": 0.6}}) == 0.95


def test_review_order_is_stable_and_puts_the_least_sure_first():
    assert review_order(ROWS) == [3, 1, 0, 2]  # None first; 1 and 3 tie at 0.9 and keep input order
    assert review_order(ROWS, by="disagreement") == [2, 3, 1, 0]  # 1.0 tie keeps input order
    assert review_order([]) == []


def test_review_order_errors():
    rows = [{"id": "1", "labels": ["a"], "scores": [0.5]}, ROWS[0]]
    with pytest.raises(InputError, match="retrieval_labels.*1 of 2 rows.*'1'"):
        review_order(rows, by="disagreement")
    with pytest.raises(InputError, match="confidence, disagreement"):
        review_order(ROWS, by="random")
    with pytest.raises(InputError, match="Row 1: 'labels' has 1 entries but 'scores' has 2"):
        review_order([{"id": "1", "labels": ["a"], "scores": [0.5, 0.1]}])


def test_model_id_from_provenance():
    assert model_id(PROV) == "qwen2.5-1.5b + minilm-l6"
    assert model_id({"settings": {"backend": "efficientnet-lite2"}}) == "efficientnet-lite2"
    assert model_id(None) == "zsl"


def test_label_studio_tasks_and_escaped_config(tmp_path):
    vocab = [NASTY, "sports", "café", "weather", "tab\there"]
    tasks_path, config_path = to_label_studio(
        [ROWS[i] for i in review_order(ROWS)], tmp_path / "tasks.json", vocab_labels=vocab
    )
    assert config_path == tmp_path / "tasks.config.xml"
    tasks = json.loads(tasks_path.read_text(encoding="utf-8"))
    assert [t["data"]["id"] for t in tasks] == ["4", "2", "1", "3"]
    first_sure = tasks[2]
    assert first_sure["data"] == {"text": "sure", "id": "1", "confidence": 0.9, "disagreement": 0.0}
    (pred,) = first_sure["predictions"]
    assert pred == {
        "model_version": "qwen2.5-1.5b + minilm-l6",
        "score": 0.9,
        "result": [
            {"from_name": "labels", "to_name": "text", "type": "choices", "value": {"choices": [NASTY, "sports"]}}
        ],
    }
    assert tasks[0]["predictions"][0]["result"] == [] and "score" not in tasks[0]["predictions"][0]
    xml = config_path.read_text(encoding="utf-8")
    assert '<Choice value="a, &quot;b&quot; &amp; &lt;c&gt;"/>' in xml and "&#9;" in xml
    root = ET.fromstring(xml)
    assert root.tag == "View" and root.find("Text").attrib == {"name": "text", "value": "$text"}
    choices = root.find("Choices")
    assert choices.attrib["choice"] == "multiple" and choices.attrib["toName"] == "text"
    assert [c.attrib["value"] for c in choices] == vocab
    assert root.find("Filter") is None


def test_label_studio_images_and_large_vocabularies(tmp_path):
    rows = [{"image": "/data/cat.jpg", "labels": ["cat"], "scores": [0.8]}]
    labels = ["cat"] + [f"label {i}" for i in range(30)]
    _, config = to_label_studio(rows, tmp_path / "img.json", vocab_labels=labels)
    root = ET.fromstring(config.read_text(encoding="utf-8"))
    assert root.find("Image").attrib == {"name": "image", "value": "$image"}
    assert root.find("Filter").attrib["toName"] == "labels" and len(root.find("Choices")) == 31
    task = json.loads((tmp_path / "img.json").read_text())[0]
    assert task["data"] == {"image": "/data/cat.jpg", "id": "/data/cat.jpg", "confidence": 0.8}
    assert task["predictions"][0]["result"][0]["to_name"] == "image"


def test_export_errors(tmp_path):
    with pytest.raises(VocabularyError, match="'café'"):
        to_label_studio(ROWS, tmp_path / "t.json", vocab_labels=[NASTY, "sports", "weather"])
    with pytest.raises(InputError, match="mix texts and images"):
        to_argilla([ROWS[0], {"image": "x.jpg", "labels": [], "scores": []}], tmp_path / "r.json")
    with pytest.raises(InputError, match="no 'text'"):
        to_label_studio([{"id": "1", "labels": ["a"], "scores": [0.5]}], tmp_path / "t.json")
    assert not (tmp_path / "t.json").exists()


def test_label_studio_config_without_labels_is_still_valid_xml():
    assert ET.fromstring(label_studio_config([])).find("Choices") is not None


@pytest.mark.parametrize("name", ["records.json", "records.jsonl"])
def test_argilla_records_and_settings(tmp_path, name):
    records_path, settings_path = to_argilla(ROWS, tmp_path / name, vocab_labels=[NASTY, "sports", "café", "weather"])
    text = records_path.read_text(encoding="utf-8")
    records = [json.loads(x) for x in text.splitlines()] if name.endswith(".jsonl") else json.loads(text)
    assert len(records) == 4 and [r["id"] for r in records] == ["1", "2", "3", "4"]
    assert records[1] == {
        "id": "2",
        "fields": {"text": "unsure"},
        "metadata": {"item_id": "2", "confidence": 0.3, "disagreement": 0.5},
        "suggestions": {
            "labels": {"value": ["sports", "café"], "score": [0.3, 0.2], "agent": "qwen2.5-1.5b + minilm-l6"}
        },
        "responses": {},
        "vectors": {},
    }
    assert records[3]["suggestions"] == {} and "confidence" not in records[3]["metadata"]
    assert settings_path == tmp_path / "records.settings.json"
    settings = json.loads(settings_path.read_text(encoding="utf-8"))
    (question,) = settings["questions"]
    assert question["name"] == "labels" and question["settings"]["type"] == "multi_label_selection"
    assert question["settings"]["options"][0] == {"text": NASTY, "value": NASTY}
    assert question["settings"]["visible_options"] == 4
    assert settings["fields"] == [
        {
            "name": "text",
            "title": "Text",
            "required": True,
            "description": None,
            "settings": {"type": "text", "use_markdown": False},
        }
    ]
    assert [(m["name"], m["type"], m["settings"]["type"]) for m in settings["metadata"]] == [
        ("confidence", "float", "float"),
        ("disagreement", "float", "float"),
        ("item_id", "terms", "terms"),
    ]


def test_argilla_settings_for_images_and_warnings():
    s = argilla_settings(["a", "b"], "image")
    assert s["fields"][0]["settings"] == {"type": "image"} and s["questions"][0]["settings"]["visible_options"] is None
    assert [m["name"] for m in s["metadata"]] == ["confidence", "item_id"]
    assert argilla_warnings(["a", "b"]) == []
    assert "500" in argilla_warnings([str(i) for i in range(501)])[0]
    assert "200 characters" in argilla_warnings(["a", "x" * 201])[0]


def test_export_review_sorts_limits_and_reports_bad_rows(tmp_path):
    pred = _jsonl(tmp_path / "labels.jsonl", ROWS + ["{oops"])
    res = export_review(tmp_path, tmp_path / "out" / "tasks.json", sort="disagreement", limit=2)
    assert res["exported"] == 2 and res["rows"] == 4
    assert res["bad_rows"] == [f"{pred}:5: malformed JSON (Expecting property name enclosed in double quotes)"]
    tasks = json.loads((tmp_path / "out" / "tasks.json").read_text())
    assert [t["data"]["id"] for t in tasks] == ["3", "4"]
    assert (tmp_path / "out" / "tasks.config.xml").is_file()
    with pytest.raises(InputError, match="format must be one of labelstudio, argilla"):
        export_review(pred, tmp_path / "x.json", format="csv")
    with pytest.raises(InputError, match="limit"):
        export_review(pred, tmp_path / "x.json", limit=0)


def test_cli_export(tmp_path, capsys):
    pred = _jsonl(tmp_path / "labels.jsonl", ROWS)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text(f"{NASTY}\nsports\ncafé\nweather\nextra\n", encoding="utf-8")
    out = tmp_path / "review" / "records.jsonl"
    assert (
        main(["export", str(pred), "--format", "argilla", "--out", str(out), "--labels", str(vocab), "--limit", "3"])
        == 0
    )
    assert "exported 3 of 4 rows (least confident first)" in capsys.readouterr().out
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["4", "2", "1"]
    options = json.loads((tmp_path / "review" / "records.settings.json").read_text())["questions"][0]["settings"]
    assert [o["value"] for o in options["options"]] == [NASTY, "sports", "café", "weather", "extra"]
    assert main(["export", str(pred), "--format", "labelstudio", "--out", str(tmp_path / "t.json")]) == 0
    _jsonl(tmp_path / "bad.jsonl", ROWS + [{"id": "9", "labels": ["a"]}])
    assert (
        main(["export", str(tmp_path / "bad.jsonl"), "--format", "labelstudio", "--out", str(tmp_path / "t2.json")])
        == 3
    )
    assert "bad.jsonl:5: missing 'scores'" in capsys.readouterr().err
    no_retrieval = _jsonl(tmp_path / "plain.jsonl", [{"id": "1", "text": "t", "labels": ["a"], "scores": [0.5]}])
    assert (
        main(
            [
                "export",
                str(no_retrieval),
                "--format",
                "labelstudio",
                "--out",
                str(tmp_path / "t3.json"),
                "--sort",
                "disagreement",
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.startswith("zsl: error: Sorting by disagreement needs 'retrieval_labels'")
    with pytest.raises(SystemExit) as exc:
        main(["export", str(pred), "--format", "csv", "--out", str(tmp_path / "t4.json")])
    assert exc.value.code == 2
