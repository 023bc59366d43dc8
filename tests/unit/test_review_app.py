"""`zsl review`'s server and reviewed.jsonl (no browser: FastAPI's test client), and how the fixes flow back."""

from __future__ import annotations

import fcntl
import json
import os

import numpy as np
import pytest

from tests.small_run import HOSTILE, LABELS, WRONG, make_run
from zsl.cli import main
from zsl.errors import InputError, VocabularyError, ZslError
from zsl.reviewed import REVIEWED, ReviewStore, override_silver, read_reviewed

pytest.importorskip("fastapi")
pytest.importorskip("cleanlab")


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSL_ENCODER", "hashing")
    return make_run(tmp_path / "run")


@pytest.fixture
def client(run):
    from fastapi.testclient import TestClient

    from zsl.review_app import make_app

    return TestClient(make_app(run))


def test_items_come_worst_first_with_labels_scores_and_student_view(client):
    state = client.get("/api/state").json()
    assert state == {**state, "total": 24, "reviewed": 0, "start": 0, "sort": "label-quality", "kind": "text"}
    first = client.get("/api/item/0").json()
    assert first["id"] in WRONG and first["decision"] is None
    assert first["proposed"][0]["label"] in ("sports", "politics") and first["proposed"][0]["score"] == 0.61
    assert first["quality"]["issue"] and first["quality"]["doubted"]
    assert client.get("/api/labels").json() == LABELS
    assert client.get("/api/item/99").status_code == 404


def test_every_decision_is_on_disk_before_the_answer_and_reopening_continues(run, client):
    from zsl.review_app import ReviewSession

    first = client.get("/api/item/0").json()
    r = client.post("/api/decide", json={"id": first["id"], "labels": ["weather"]})
    assert r.status_code == 200 and r.json()["reviewed"] == 1
    on_disk = read_reviewed(run)
    assert on_disk[first["id"]]["labels"] == ["weather"] and on_disk[first["id"]]["action"] == "edit"
    # a second change to the same item replaces its line; nothing else is written
    client.post("/api/decide", json={"id": first["id"], "labels": ["weather", "cooking"]})
    lines = (run / REVIEWED).read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["labels"] == ["weather", "cooking"]
    assert not [f for f in os.listdir(run) if f.endswith(".tmp")]  # no temp file left behind
    # a new server (the old one killed) starts at the first item not reviewed, and shows the decision
    again = ReviewSession(run)
    assert again.first_open() == 1
    assert again.item(0)["decision"]["labels"] == ["weather", "cooking"]


def test_bad_decisions_are_refused_with_a_reason(client):
    first = client.get("/api/item/0").json()
    r = client.post("/api/decide", json={"id": first["id"], "labels": ["no such label"]})
    assert r.status_code == 422 and "not in the run's vocabulary" in r.json()["detail"]
    assert client.post("/api/decide", json={"id": "nope", "labels": []}).status_code == 422
    assert client.post("/api/decide", json={"labels": []}).status_code == 422


def test_the_page_puts_item_content_in_with_textContent_only(client, run):
    page = client.get("/")
    assert page.status_code == 200 and "Content-Security-Policy" in page.headers
    assert "innerHTML" not in page.text and "insertAdjacentHTML" not in page.text
    texts = [client.get(f"/api/item/{i}").json()["text"] for i in range(24)]
    assert HOSTILE in texts  # sent as JSON data, unchanged; the browser test checks it is shown as text


def test_unknown_labels_in_reviewed_jsonl_are_listed_at_start(run):
    from zsl.review_app import ReviewSession

    (run / REVIEWED).write_text(json.dumps({"id": "s1", "labels": ["sports", "footbal"]}) + "\n")
    with pytest.raises(VocabularyError, match=r"1 label\(s\) that are not in the run's vocabulary: 'footbal' \(items s1\)"):
        ReviewSession(run, sort="confidence")
    (run / REVIEWED).write_text("{not json\n")
    with pytest.raises(InputError, match=r"reviewed.jsonl:1: not JSON"):
        ReviewSession(run, sort="confidence")


def test_a_run_without_scores_or_being_written_is_refused_clearly(tmp_path, run):
    from zsl.review_app import ReviewSession

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="without labels.jsonl"):
        ReviewSession(empty)
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "labels.jsonl").write_text(json.dumps({"id": "1", "text": "x", "labels": ["a"]}) + "\n")
    with pytest.raises(InputError, match="missing 'scores'"):
        ReviewSession(bare, sort="confidence")
    fd = os.open(run / ".zsl-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ZslError, match="being written by a running `zsl label`"):
            ReviewSession(run, sort="confidence")
    finally:
        os.close(fd)


def test_server_binds_to_localhost_by_default_and_warns_otherwise(run, monkeypatch, capsys):
    import uvicorn

    from zsl.review_app import DEFAULT_HOST, serve

    bound = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: bound.append(sockets[0].getsockname()))
    serve(run, port=0, sort="confidence")
    assert DEFAULT_HOST == "127.0.0.1" and bound[0][0] == "127.0.0.1"
    assert "warning" not in capsys.readouterr().err
    serve(run, host="0.0.0.0", port=0, sort="confidence")
    assert bound[1][0] == "0.0.0.0"
    assert "warning: serving on 0.0.0.0" in capsys.readouterr().err
    from zsl.cli import build_parser

    assert build_parser().parse_args(["review", str(run)]).host == "127.0.0.1"


def test_store_keeps_first_decision_order_and_refuses_bad_labels(tmp_path):
    store = ReviewStore(tmp_path / REVIEWED, known_labels=["a", "b"])
    store.decide({"id": "1", "labels": ["a"]}, ["a"])
    store.decide({"id": "2", "labels": ["a"]}, ["b"])
    store.decide({"id": "1", "labels": ["a"]}, ["a", "b"])
    assert list(read_reviewed(tmp_path)) == ["1", "2"]
    assert read_reviewed(tmp_path)["2"]["action"] == "edit" and read_reviewed(tmp_path)["1"]["added"] == ["b"]
    with pytest.raises(VocabularyError):
        store.decide({"id": "3", "labels": []}, ["c"])
    with pytest.raises(InputError, match="list of non-empty strings"):
        store.decide({"id": "3", "labels": []}, "a")
    assert len((tmp_path / REVIEWED).read_text().splitlines()) == 2


def _review_two(run):
    store = ReviewStore(run / REVIEWED, known_labels=LABELS)
    rows = {json.loads(x)["id"]: json.loads(x) for x in (run / "labels.jsonl").read_text().splitlines()}
    store.decide(rows["s3"], ["sports"])  # was politics: fixed
    store.decide(rows["p5"], ["politics", "weather"])
    return rows


def test_eval_takes_reviewed_rows_as_gold(run, capsys):
    from zsl.evaluate import evaluate

    rows = _review_two(run)
    ReviewStore(run / REVIEWED, known_labels=LABELS).decide(rows["s4"], rows["s4"]["labels"])  # accepted as is
    rep = evaluate(run, run / REVIEWED, k=[1])
    assert rep.n_items == 3 and rep.n_extra == 21  # only reviewed items are scored
    # the silver top labels of s3 (politics) and p5 (sports) were wrong, s4's (sports) right: P@1 = 1/3
    assert rep.metrics["p@1"] == pytest.approx(1 / 3)
    assert main(["eval", str(run), str(run / REVIEWED), "--k", "1"]) == 0
    assert "report:" in capsys.readouterr().out


def test_distill_reviewed_overrides_the_silver_labels(run, tmp_path, capsys):
    from zsl.pseudo import read_silver

    _review_two(run)
    silver = read_silver(run / "labels.jsonl")
    fixed, n = override_silver(silver, read_reviewed(run))
    assert n == 2
    i = silver.ids.index("s3")
    names = lambda row: sorted(silver.vocab[int(j)] for j in np.flatnonzero(row))
    assert "politics" in names(silver.labels[i]) and names(fixed.labels[i]) == ["sports"]
    assert fixed.confidence[i].max() == 1.0 and fixed.confidence[i].sum() == 1.0
    j = silver.ids.index("s4")
    assert (fixed.labels[j] == silver.labels[j]).all()
    out = tmp_path / "student"
    assert main(["distill", str(run / "labels.jsonl"), "--out", str(out), "--encoder", "hashing", "--epochs", "5",
                 "--reviewed", str(run / REVIEWED)]) == 0
    assert "2 items took their labels from" in capsys.readouterr().out
    (tmp_path / "other.jsonl").write_text(json.dumps({"id": "zzz", "labels": ["sports"]}) + "\n")
    assert main(["distill", str(run / "labels.jsonl"), "--out", str(out), "--encoder", "hashing", "--epochs", "5",
                 "--reviewed", str(tmp_path / "other.jsonl")]) == 2
    assert "names an item of" in capsys.readouterr().err


def test_reviewed_jsonl_is_a_training_file_for_fit(run):
    from zsl.data import read_items

    _review_two(run)
    items = read_items(run / REVIEWED)
    assert {i.id: i.gold for i in items} == {"s3": ["sports"], "p5": ["politics", "weather"]}
    assert all(i.text for i in items)


def test_reviewed_rows_are_examples_for_tagger_fit_and_data_for_thresholds(run):
    from zsl.encoders import HashingEncoder
    from zsl.reviewed import calibration_data
    from zsl.scoring import PerLabelThreshold
    from zsl.tagger import Tagger
    from zsl.vocab import LabelVocab

    rows = _review_two(run)
    ReviewStore(run / REVIEWED, known_labels=LABELS).decide(rows["s4"], ["sports"])
    tagger = Tagger(LabelVocab(LABELS), encoder=HashingEncoder(64), infer=False, rank=False)
    tagger.fit(read_reviewed(run).values())
    assert tagger.evidence_ is not None and tagger.evidence_.counts_[LABELS.index("sports")] == 2
    scores, y, labels = calibration_data(run)
    assert labels == LABELS and scores.shape == y.shape == (3, len(LABELS))
    assert y[:, LABELS.index("sports")].tolist() == [1, 1, 0]  # s3, s4 (file order), p5
    assert scores[0, LABELS.index("politics")] == pytest.approx(0.61)
    assert scores[0, LABELS.index("extra label 00001")] < scores[0].max() - 1  # not scored: below everything
    rule = PerLabelThreshold().fit(scores, y)
    assert rule.thresholds_.shape == (len(LABELS),)


def _vocab(run):
    p = run.parent / "vocab.txt"
    p.write_text("\n".join(LABELS) + "\n")
    return str(p)


def test_an_image_run_is_served_by_confidence_and_its_images_only(tmp_path):
    from fastapi.testclient import TestClient
    from PIL import Image

    from zsl.review_app import ReviewSession, make_app

    run = tmp_path / "imgrun"
    run.mkdir()
    rows = []
    for i in range(3):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(run / f"p{i}.png")
        rows.append({"id": f"p{i}.png", "image": str(run / f"p{i}.png"), "labels": ["cat"], "scores": [0.9 - i / 10]})
    (run / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match="--sort confidence"):
        ReviewSession(run)
    client = TestClient(make_app(run, sort="confidence"))
    first = client.get("/api/item/0").json()
    assert first["kind"] == "image" and first["text"] is None and first["id"] == "p2.png"  # least confident first
    img = client.get("/api/image/0")
    assert img.status_code == 200 and img.content[:4] == b"\x89PNG"
    assert client.get("/api/image/7").status_code == 404


def test_kill_9_of_the_server_loses_no_decision(run):
    import signal
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    from zsl.review_app import ReviewSession

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "ZSL_ENCODER": "hashing", "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "zsl.cli", "review", str(run), "--port", "0", "--sort", "confidence"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = None
        for line in proc.stderr:
            if line.startswith("open http://127.0.0.1:"):
                url = line.split()[1]
                break
        assert url, "the server did not say where it listens"
        item = json.loads(urllib.request.urlopen(url + "api/item/0", timeout=30).read())
        req = urllib.request.Request(url + "api/decide", json.dumps({"id": item["id"], "labels": ["weather"]}).encode(),
                                     {"Content-Type": "application/json"})
        assert json.loads(urllib.request.urlopen(req, timeout=30).read())["reviewed"] == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert read_reviewed(run)[item["id"]]["labels"] == ["weather"]
    assert ReviewSession(run, sort="confidence").first_open() == 1


def test_a_second_server_on_the_same_run_is_refused_and_stale_temp_files_go(run, monkeypatch):
    import uvicorn

    from zsl.review_app import serve
    from zsl.reviewed import lock_review

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    (run / ".reviewed.jsonl.99999.tmp").write_text("half a line")
    fd = lock_review(run)  # the first server
    assert not (run / ".reviewed.jsonl.99999.tmp").exists()
    try:
        with pytest.raises(ZslError, match=r"Another `zsl review` is serving .* \(pid \d+, since "):
            serve(run, port=0, sort="confidence")
    finally:
        os.close(fd)
    serve(run, port=0, sort="confidence")  # released: fine, and serve releases its own lock when it returns
    serve(run, port=0, sort="confidence")


def test_a_loopback_server_answers_only_requests_for_its_own_host_name(run):
    """DNS rebinding: a page on evil.example whose name now points at 127.0.0.1 must not read the run."""
    import signal
    import subprocess
    import sys
    import urllib.error
    import urllib.request
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "ZSL_ENCODER": "hashing", "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "zsl.cli", "review", str(run), "--port", "0", "--sort", "confidence"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = next((line.split()[1] for line in proc.stderr if line.startswith("open http://127.0.0.1:")), None)
        assert url, "the server did not say where it listens"
        assert json.loads(urllib.request.urlopen(url + "api/state", timeout=30).read())["total"] == 24
        port = url.rstrip("/").rsplit(":", 1)[1]
        ok = urllib.request.Request(url + "api/state", headers={"Host": f"localhost:{port}"})
        assert urllib.request.urlopen(ok, timeout=30).status == 200
        evil = urllib.request.Request(url + "api/item/0", headers={"Host": f"evil.example:{port}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(evil, timeout=30)
        assert refused.value.code == 400
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
