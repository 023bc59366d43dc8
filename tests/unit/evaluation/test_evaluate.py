import json
import subprocess
import sys

import numpy as np
import pytest

from zsl import LabelVocab
from zsl.cli import main
from zsl.errors import InputError, VocabularyError
from zsl.evaluation.evaluate import evaluate
from zsl.evaluation.metrics import per_label_prf, precision_recall_curve
from zsl.evaluation.report import write_report
from zsl.rows import read_gold, read_predictions

# Three predicted items, one gold item without a prediction ("4"), one prediction without
# gold ("5"). Every expected value below is worked out by hand in the comments.
ROWS = [
    {"id": "1", "text": "one", "labels": ["a", "b", "c"], "scores": [0.9, 0.6, 0.2]},
    {"id": "2", "text": "two", "labels": ["b", "a", "d"], "scores": [0.8, 0.5, 0.4]},
    {"id": "3", "text": "three", "labels": ["c", "d", "a"], "scores": [0.7, 0.3, 0.1]},
    {"id": "5", "text": "five", "labels": ["a"], "scores": [0.3]},
]
GOLD = {"1": ["a", "c"], "2": ["a"], "3": ["b"], "4": ["d"]}


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_known_answer_metrics():
    r = evaluate(ROWS, GOLD, k=(1, 2, 3, 5))
    m = r.metrics
    # item 4 has no prediction: per-item metrics average over items 1-3 and scale by 3/4
    assert m["rp@1"] == pytest.approx(0.25)  # hits 1,0,0 -> 1/3 * 3/4
    assert m["rp@2"] == pytest.approx(0.375)  # 1/2, 1/1, 0 -> 0.5 * 3/4
    assert m["rp@3"] == pytest.approx(0.5)  # 2/2, 1/1, 0/1
    assert m["p@2"] == pytest.approx(0.25) and m["p@3"] == pytest.approx(0.25)
    assert m["r@1"] == pytest.approx(0.125) and m["r@2"] == pytest.approx(0.375)
    # predicted sets = all kept labels: tp 3, fp 6, fn 2 (item 3's b, item 4's d)
    assert m["micro_f1"] == pytest.approx(6 / 14)
    assert m["micro_precision"] == pytest.approx(3 / 9) and m["micro_recall"] == pytest.approx(3 / 5)
    assert m["macro_f1"] == pytest.approx((0.8 + 0 + 2 / 3 + 0) / 4)
    # label AP: a 1, b 1/4 (never kept for its item: ranked last), c 1/2, d 1/4 (item 4 unpredicted)
    assert m["map"] == pytest.approx(0.5)
    assert m["map_item"] == pytest.approx((5 / 6 + 1 / 2 + 1 / 4) / 3 * 3 / 4)
    assert r.k == [1, 2, 3] and r.skipped_k == [5] and r.labels_kept == (3, 3)
    assert (r.n_items, r.n_matched, r.n_missing, r.n_extra) == (4, 3, 1, 1)
    assert r.missing_ids == ["4"]
    assert r.labels == ["a", "b", "c", "d"]
    assert r.per_label[0] == {
        "label": "a",
        "precision": pytest.approx(2 / 3),
        "recall": 1.0,
        "f1": pytest.approx(0.8),
        "support": 2,
        "predicted": 3,
    }
    assert r.per_label[2]["f1"] == pytest.approx(2 / 3) and r.per_label[3]["support"] == 1
    text = " ".join(r.notes)
    assert "K = 5 skipped" in text and "truncated to the kept labels" in text and "no prediction" in text
    assert "RP@1" in r.text and "0.2500" in r.text


def test_threshold_sets_the_predicted_labels():
    r = evaluate(ROWS, GOLD, k=1, threshold=0.5)
    # kept: 1 {a, b}, 2 {b, a}, 3 {c}: tp 2, fp 3, fn 3
    assert r.metrics["micro_f1"] == pytest.approx(0.4)
    assert r.y_pred.sum() == 5 and r.threshold == 0.5
    assert "score >= 0.5" in " ".join(r.notes)
    # the ranking metrics do not depend on the threshold
    assert r.metrics["rp@1"] == pytest.approx(0.25)


def test_missing_item_is_all_misses_even_when_every_label_is_gold():
    # 2 labels, item "y" unpredicted with both as gold: an empty prediction finds nothing
    r = evaluate([{"id": "x", "labels": ["p", "q"], "scores": [0.9, 0.1]}], {"x": ["p"], "y": ["p", "q"]}, k=(1, 2))
    assert r.metrics["rp@1"] == pytest.approx(0.5) and r.metrics["r@2"] == pytest.approx(0.5)


def test_files_with_bad_rows_are_skipped_and_reported(tmp_path):
    pred = _jsonl(
        tmp_path / "pred.jsonl",
        [
            ROWS[0],
            "{not json",
            {"id": "7", "labels": ["a"], "scores": [0.1, 0.2]},
            {"id": "8", "scores": [0.1]},
            {"id": "9", "labels": "a|b", "scores": [0.1]},
            {"id": "10", "labels": ["a", 3], "scores": [0.1, 0.2]},
            {"id": "11", "labels": ["a"], "scores": ["high"]},
            {"labels": ["a"], "scores": [0.1]},
            ROWS[1],
            ROWS[2],
            ROWS[3],
        ],
    )
    gold = _jsonl(
        tmp_path / "gold.jsonl",
        [{"id": k, "text": "t", "labels": v} for k, v in GOLD.items()] + [{"id": "12", "labels": "a"}],
    )
    r = evaluate(pred, gold, k=(1, 2, 3))
    assert r.metrics == evaluate(ROWS, GOLD, k=(1, 2, 3)).metrics
    assert len(r.bad_rows) == 8
    joined = "\n".join(r.bad_rows)
    for expected in (
        "pred.jsonl:2: malformed JSON",
        "pred.jsonl:3: 'labels' has 1 entries but 'scores' has 2",
        "pred.jsonl:4: missing 'labels'",
        "pred.jsonl:5: 'labels' must be a list",
        "pred.jsonl:6: 'labels' must be a list of strings; entry 1 is int",
        "pred.jsonl:7: 'scores' must be finite numbers",
        "pred.jsonl:8: missing 'id'",
        "gold.jsonl:5: 'labels' must be a list",
    ):
        assert expected in joined
    assert r.to_json()["counts"]["bad_rows"] == 8 and "8 bad rows skipped" in " ".join(r.notes)


def test_gold_csv_and_run_directory(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _jsonl(
        run / "labels.jsonl",
        [
            {"id": "1", "labels": ["weather, storms", "sports"], "scores": [0.8, 0.3]},
            {"id": "2", "labels": ["sports", "weather, storms"], "scores": [0.9, 0.1]},
        ],
    )
    gold = tmp_path / "gold.csv"
    gold.write_text('id,text,labels\n1,"rain","weather, storms"\n2,"goal","sports|weather, storms"\n', encoding="utf-8")
    assert read_gold(gold) == {"1": ["weather, storms"], "2": ["sports", "weather, storms"]}
    r = evaluate(run, gold, k=(1, 2))
    assert r.metrics["rp@1"] == 1.0 and r.metrics["rp@2"] == 1.0
    assert r.pred_source.endswith("labels.jsonl")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("id,gold\n1,a\n", encoding="utf-8")
    with pytest.raises(InputError, match="'id' and 'labels' columns"):
        read_gold(bad_csv)


def test_gold_from_the_rows_and_image_rows():
    rows = [
        {"image": "/img/cat.jpg", "labels": ["cat", "dog"], "scores": [0.7, 0.2], "gold": ["cat"]},
        {"image": "/img/dog.jpg", "labels": ["cat", "dog"], "scores": [0.6, 0.5], "gold": ["dog"]},
        {"image": "/img/none.jpg", "labels": ["cat"], "scores": [0.4]},
    ]
    r = evaluate(rows, k=(1, 2))
    assert r.ids == ["/img/cat.jpg", "/img/dog.jpg"] and r.n_extra == 1
    assert r.metrics["rp@1"] == 0.5 and r.metrics["rp@2"] == 1.0
    assert "'gold' fields" in r.gold_source


def test_silver_rows_with_a_score_mapping():
    rows = [{"id": "1", "labels": ["b"], "scores": {"a": 0.2, "b": 0.7, "c": 0.6}}]
    r = evaluate(rows, {"1": ["c"]}, k=(1, 2, 3))
    assert r.labels_kept == (3, 3)
    assert r.metrics["rp@1"] == 0.0 and r.metrics["rp@2"] == 1.0
    assert r.y_pred[0].tolist() == [0, 1, 0] and r.metrics["micro_f1"] == 0.0
    assert evaluate(rows, {"1": ["c"]}, k=1, threshold=0.5).y_pred[0].tolist() == [0, 1, 1]


def test_vocab_gives_the_label_order_and_is_checked():
    vocab = LabelVocab(["d", "c", "b", "a", "unused"])
    r = evaluate(ROWS, GOLD, k=1, vocab=vocab)
    assert r.labels == ["d", "c", "b", "a", "unused"]
    assert [p["label"] for p in r.per_label][:4] == ["d", "c", "b", "a"]
    assert r.metrics == evaluate(ROWS, GOLD, k=1).metrics
    with pytest.raises(VocabularyError, match="'d'"):
        evaluate(ROWS, GOLD, vocab=LabelVocab(["a", "b", "c"]))
    r = evaluate(ROWS, {**GOLD, "3": ["b", "zzz"]}, k=1, vocab=vocab)
    assert r.labels[-1] == "zzz" and any("not in the vocabulary" in n for n in r.notes)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d: (d / "nope.jsonl", GOLD), "does not exist"),
        (lambda d: (_jsonl(d / "p.jsonl", ["", "  "]), GOLD), "empty"),
        (lambda d: (d, GOLD), "without labels.jsonl"),
        (lambda d: (_jsonl(d / "p.jsonl", ["{oops", {"id": "1"}]), GOLD), "No usable prediction row.*malformed JSON"),
        (lambda d: (ROWS, _jsonl(d / "g.jsonl", [""])), "empty"),
        (lambda d: (ROWS, d / "missing.jsonl"), "does not exist"),
        (lambda d: (ROWS + [ROWS[0]], GOLD), "repeated id.*'1'"),
        (
            lambda d: (ROWS, _jsonl(d / "g.jsonl", [{"id": "1", "labels": ["a"]}, {"id": "1", "labels": ["b"]}])),
            "repeated id.*'1'",
        ),
        (lambda d: (ROWS, {"x": ["a"], "y": ["b"]}), "None of the 4 prediction ids"),
        (lambda d: (ROWS, None), "no 'gold' field"),
        (lambda d: (ROWS, {"1": [], "2": []}), "has a label"),
        (lambda d: (ROWS, {"1": "a"}), "must be a list"),
    ],
)
def test_input_errors(tmp_path, make, match):
    pred, gold = make(tmp_path)
    with pytest.raises(InputError, match=match):
        evaluate(pred, gold)


@pytest.mark.parametrize(
    "kwargs, match", [({"k": 0}, "k must be"), ({"k": []}, "k must be"), ({"threshold": float("nan")}, "threshold")]
)
def test_argument_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        evaluate(ROWS, GOLD, **kwargs)


def test_read_predictions_not_utf8(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_bytes('{"id": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(InputError, match="UTF-8"):
        read_predictions(f)


def test_write_report_files(tmp_path):
    nasty = 'a, "b" & <c>'
    rows = [
        {"id": str(i), "labels": [nasty, "cost $5 or $10", "x" * 90], "scores": [0.9 - i / 50, 0.5, 0.1]}
        for i in range(12)
    ]
    gold = {str(i): [nasty] if i % 2 else ["cost $5 or $10", "x" * 90] for i in range(12)}
    report = evaluate(rows, gold, threshold=0.4)
    paths = write_report(report, tmp_path / "eval")
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == [
        "eval.json",
        "per_label_f1.png",
        "pr_curve.png",
        "reliability.png",
        "report.md",
        "score_hist.png",
    ]
    for name in ("per_label_f1", "pr_curve", "score_hist"):
        data = paths[name].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    md = paths["markdown"].read_text(encoding="utf-8")
    for img in ("per_label_f1.png", "pr_curve.png", "score_hist.png"):
        assert f"]({img})" in md
    assert 'a, "b" &amp; &lt;c&gt;' in md and "| RP@1 |" in md and "## Notes" in md
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert list(data) == [
        "format_version",
        "pred",
        "gold",
        "counts",
        "k",
        "skipped_k",
        "labels_kept",
        "threshold",
        "metrics",
        "per_label",
        "missing_ids",
        "bad_rows",
        "notes",
    ]
    assert data["metrics"]["rp@1"] == pytest.approx(report.metrics["rp@1"])
    assert data["counts"]["items"] == 12 and data["threshold"] == 0.4 and data["skipped_k"] == [5, 10]


def test_write_report_unwritable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="writable"):
        write_report(evaluate(ROWS, GOLD), blocker / "eval")


def test_metric_additions_known_answers():
    out = per_label_prf(np.array([[1, 0, 0], [1, 1, 0]]), np.array([[1, 1, 0], [0, 1, 0]]))
    assert out["precision"].tolist() == [1.0, 0.5, 0.0]
    assert out["recall"].tolist() == [0.5, 1.0, 0.0]
    assert out["f1"].tolist() == pytest.approx([2 / 3, 2 / 3, 0.0])
    assert out["support"].tolist() == [2, 1, 0] and out["predicted"].tolist() == [1, 2, 0]
    p, r, t = precision_recall_curve(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.8, 0.1]), n_positives=4)
    assert t.tolist() == [0.9, 0.8, 0.1]
    assert p.tolist() == pytest.approx([1.0, 2 / 3, 0.5]) and r.tolist() == [0.25, 0.5, 0.5]
    with pytest.raises(InputError):
        precision_recall_curve(np.array([1, 1]), np.array([0.1, 0.2]), n_positives=1)


def test_cli_eval(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    _jsonl(run / "labels.jsonl", ROWS)
    gold = _jsonl(tmp_path / "gold.jsonl", [{"id": k, "labels": v} for k, v in GOLD.items()])
    assert main(["eval", str(run), str(gold), "--k", "1", "3"]) == 0
    out = capsys.readouterr().out
    assert "RP@1" in out and "0.2500" in out and "RP@5" not in out
    assert (run / "eval" / "report.md").is_file() and str(run / "eval" / "report.md") in out
    assert main(["eval", str(run / "labels.jsonl"), str(gold), "--threshold", "0.5", "--out", str(tmp_path / "e")]) == 0
    assert json.loads((tmp_path / "e" / "eval.json").read_text())["metrics"]["micro_f1"] == pytest.approx(0.4)
    _jsonl(tmp_path / "bad.jsonl", ROWS + ["{oops"])
    assert main(["eval", str(tmp_path / "bad.jsonl"), str(gold)]) == 3
    assert "bad.jsonl:5: malformed JSON" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing.jsonl"), str(gold)]) == 2
    assert capsys.readouterr().err.startswith("zsl: error: Predictions file")


def test_new_modules_import_no_plotting_or_heavy_packages():
    code = (
        "import sys, zsl.evaluation.evaluate, zsl.review.export\n"
        "print(','.join(m for m in ('matplotlib', 'torch', 'dspy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
