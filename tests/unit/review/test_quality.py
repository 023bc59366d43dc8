"""Label-quality scores (zsl.review.quality), `zsl issues` and `zsl export --sort label-quality`."""

from __future__ import annotations

import fcntl
import json
import os

import numpy as np
import pytest

from tests.small_run import LABELS, WRONG, make_run
from zsl.cli import main
from zsl.errors import InputError, ZslError
from zsl.models.encoders import HashingEncoder
from zsl.review.quality import (
    QUALITY,
    choose_columns,
    cross_fit_proba,
    label_quality,
    quality_of_rows,
    run_quality,
    silver_matrix,
    student_disagreement,
)
from zsl.rows import read_predictions

pytest.importorskip("cleanlab")


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSL_ENCODER", "hashing")
    return make_run(tmp_path / "run")


def test_cross_fitted_student_and_cleanlab_put_the_planted_errors_first(run):
    report = run_quality(run, encoder=HashingEncoder(256))
    worst = {report.ids[i] for i in report.order()[:2]}
    assert worst == WRONG
    assert set(np.array(report.ids)[report.issue]) >= WRONG
    for item_id in WRONG:  # the student doubts the wrong topic and suggests the right one
        i = report.ids.index(item_id)
        assert report.doubted[i][0] in ("sports", "politics")
        assert report.disagreement[i] > 0
    assert report.label_issues()[0][0] in ("sports", "politics")


def test_out_of_fold_probabilities_never_see_the_row_itself():
    emb = np.eye(4)[[0, 0, 1, 1, 2, 2, 3, 3]]
    y = np.eye(4)[[0, 0, 1, 1, 2, 2, 3, 3]]
    p = cross_fit_proba(emb, y, n_folds=2)
    # each label's two items fall in different folds, so the held-out item's own label is all it can learn from
    assert p.shape == (8, 4) and np.all((p >= 0) & (p <= 1))
    assert np.argmax(p, axis=1).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    with pytest.raises(InputError, match="at least 2 items"):
        cross_fit_proba(emb[:1], y[:1])


def test_columns_are_the_silver_labels_then_the_candidates_capped():
    silver = [["b"], ["b", "a"]]
    assert choose_columns(silver, [["x", "b"], ["x", "y"]], max_columns=None) == ["b", "a", "x", "y"]
    assert choose_columns(silver, [["x"]], max_columns=1) == ["b", "a"]  # silver labels always stay
    with pytest.raises(InputError, match="no column"):
        silver_matrix([["z"]], ["a"])


def test_scores_and_disagreement_on_arrays():
    y = np.array([[1, 0], [0, 1]])
    good = label_quality(y, np.array([[0.9, 0.1], [0.1, 0.9]]))
    bad = label_quality(y, np.array([[0.1, 0.9], [0.9, 0.1]]))
    assert np.all(good > bad)
    assert student_disagreement(y, np.array([[0.1, 0.9], [0.1, 0.9]])).tolist() == [1.0, 0.0]


def test_scores_are_cached_until_labels_change(run, monkeypatch):
    import zsl.review.quality as q

    calls = []
    real = q.quality_of_rows
    monkeypatch.setattr(q, "quality_of_rows", lambda rows, **kw: calls.append(1) or real(rows, **kw))
    run_quality(run)
    run_quality(run)
    assert len(calls) == 1 and (run / QUALITY).is_file()
    with (run / "labels.jsonl").open("a") as fh:
        fh.write(json.dumps({"id": "new", "text": "a new goal", "labels": ["sports"], "scores": [0.5]}) + "\n")
    rep = run_quality(run)
    assert len(calls) == 2 and "new" in rep.ids
    run_quality(run, refresh=True)
    assert len(calls) == 3


def test_rows_without_text_need_features(run):
    rows = read_predictions(run)
    image_rows = [type(r)(r.id, r.ranked, r.chosen, {"image": "x.png", **{k: v for k, v in r.row.items() if k != "text"}})
                  for r in rows]
    with pytest.raises(InputError, match="features="):
        quality_of_rows(image_rows)
    rep = quality_of_rows(image_rows, features=HashingEncoder(64).encode([r.row["text"] for r in rows]))
    assert len(rep.ids) == len(rows)
    with pytest.raises(InputError, match=r"features must be \(24, d\)"):
        quality_of_rows(rows, features=np.zeros((3, 4)))


def test_a_run_being_written_is_refused_with_the_holder(run):
    fd = os.open(run / ".zsl-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, json.dumps({"pid": 4242, "host": "box", "since": "now"}).encode())
        with pytest.raises(ZslError, match=r"being written by a running `zsl label` \(pid 4242 on box"):
            run_quality(run)
    finally:
        os.close(fd)
    assert run_quality(run).ids  # lock released: fine again


def test_zsl_issues_prints_the_worst_rows_and_labels(run, capsys):
    assert main(["issues", str(run), "--top", "3"]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in err  # 12 rows or more for every label in use
    lines = [ln for ln in out.splitlines() if ln.startswith(("*", " ")) and "labels:" not in ln]
    assert {lines[0].split()[2], lines[1].split()[2]} == WRONG
    assert "labels most often doubted on flagged rows: " in out and f"zsl review {run}" in out
    assert main(["issues", str(run), "--json", "--top", "2"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert {w["id"] for w in got["worst"]} == WRONG and got["rows"] == 24


def test_export_sort_label_quality(run, tmp_path, capsys):
    out = tmp_path / "tasks.json"
    assert main(["export", str(run), "--format", "labelstudio", "--out", str(out), "--sort", "label-quality",
                 "--labels", _vocab_file(tmp_path)]) == 0
    assert "labels most likely wrong first" in capsys.readouterr().out
    tasks = json.loads(out.read_text())
    assert {t["data"]["id"] for t in tasks[:2]} == WRONG and len(tasks) == 24


def test_label_quality_order_needs_a_run_not_rows(run):
    from zsl.review.export import export_review, review_order

    rows = [r.row for r in read_predictions(run)]
    with pytest.raises(InputError, match="needs the run directory"):
        export_review(rows, "x.json", sort="label-quality")
    with pytest.raises(InputError, match="quality_order"):
        review_order(rows, by="label-quality")


def test_a_run_without_labels_says_how_to_finish_it(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(InputError, match="without labels.jsonl"):
        run_quality(tmp_path / "run")


def _vocab_file(tmp_path):
    p = tmp_path / "vocab.txt"
    p.write_text("\n".join(LABELS) + "\n")
    return str(p)


def test_adjusted_scores_are_cached_separately(run, capsys):
    plain = run_quality(run)
    adjusted = run_quality(run, adjust=True)
    assert adjusted.settings["adjust"] is True and plain.settings["adjust"] is False
    assert not np.allclose(plain.quality, adjusted.quality)
    assert main(["issues", str(run), "--adjust", "--json", "--top", "2"]) == 0
    assert {w["id"] for w in json.loads(capsys.readouterr().out)["worst"]} == WRONG


def test_zsl_issues_warns_when_the_run_is_too_small_for_the_student(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZSL_ENCODER", "hashing")
    small = make_run(tmp_path / "small", n_per_topic=6)  # sports and politics on 6 rows each
    assert main(["issues", str(small), "--top", "3"]) == 0
    err = capsys.readouterr().err
    assert "labels in use have fewer than 10 rows" in err and "weak evidence" in err


# -- hardening (issue #26) ------------------------------------------------------------------------------------
def _tiny_run(folder, labels_per_row):
    folder.mkdir()
    rows = [{"id": f"n{i}", "text": f"the match and the vote number {i}", "labels": labs, "scores": [0.5 + i / 100] * len(labs)}
            for i, labs in enumerate(labels_per_row)]
    (folder / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.mark.parametrize("shape", ["one-label", "three-rows", "one-row"])
def test_runs_cleanlab_cannot_score_get_one_clear_line_or_confidence_order(tmp_path, monkeypatch, capsys, shape):
    """R26, I1, I2: a 1-label run or a tiny run: `zsl issues` says why, `zsl export` falls back and says so."""
    monkeypatch.setenv("ZSL_ENCODER", "hashing")
    labels = {"one-label": [["only"]] * 30, "three-rows": [["sports"], ["politics"], ["sports"]],
              "one-row": [["sports"]]}[shape]
    run = _tiny_run(tmp_path / "r", labels)
    code = main(["issues", str(run)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if code == 2:
        assert err.count("zsl: error:") == 1 and "--sort confidence" in err
    else:  # scored: every row is listed
        assert code == 0 and f"of {len(labels)} rows" in out
    out_file = tmp_path / "tasks.json"
    assert main(["export", str(run), "--format", "labelstudio", "--out", str(out_file), "--sort", "label-quality"]) == 0
    out, err = capsys.readouterr()
    assert len(json.loads(out_file.read_text())) == len(labels)
    if code == 2:
        assert "confidence order instead" in err and "(least confident first)" in out


def test_zsl_issues_refuses_a_negative_top(run, capsys):
    """I3: --top -5 printed 'the -5 rows' and then all but 5 rows (a Python slice)."""
    assert main(["issues", str(run), "--top", "-5"]) == 2
    err = capsys.readouterr().err
    assert "--top" in err and "-5" in err and "0 or more" in err


@pytest.mark.parametrize("damage", ["ids cut", "doubted int", "quality strings", "student list", "report null"])
def test_a_damaged_quality_cache_is_recomputed_with_a_note(run, capsys, damage):
    """I4, I5: an edited quality.json (fingerprint intact) is never trusted and never crashes."""
    assert main(["issues", str(run), "--json"]) == 0
    fresh = json.loads(capsys.readouterr().out)
    cache = json.loads((run / QUALITY).read_text())
    rep = cache["report"]
    if damage == "ids cut":
        rep["ids"] = rep["ids"][:-5]
    elif damage == "doubted int":
        rep["doubted"] = 5
    elif damage == "quality strings":
        rep["quality"] = ["x"] * len(rep["quality"])
    elif damage == "student list":
        rep["student"] = [[1]] * len(rep["student"])
    else:
        cache["report"] = None
    (run / QUALITY).write_text(json.dumps(cache))
    assert main(["issues", str(run), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {**fresh, "seconds": json.loads(out)["seconds"]}  # all 24 rows, as computed afresh
    assert "zsl: warning:" in err and "damaged" in err and "computing the label-quality scores again" in err
    assert len(json.loads((run / QUALITY).read_text())["report"]["ids"]) == 24
