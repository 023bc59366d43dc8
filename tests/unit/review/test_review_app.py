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
from zsl.silver.reviewed import REVIEWED, ReviewStore, override_silver, read_reviewed

pytest.importorskip("fastapi")
pytest.importorskip("cleanlab")


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSL_ENCODER", "hashing")
    return make_run(tmp_path / "run")


@pytest.fixture
def client(run):
    from fastapi.testclient import TestClient

    from zsl.review.app import make_app

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
    from zsl.review.app import ReviewSession

    first = client.get("/api/item/0").json()
    r = client.post("/api/decide", json={"id": first["id"], "labels": ["weather"]})
    assert r.status_code == 200 and r.json()["reviewed"] == 1
    on_disk = read_reviewed(run)
    assert on_disk[first["id"]]["labels"] == ["weather"] and on_disk[first["id"]]["action"] == "edit"
    # a second change to the same item is appended: the file is not rewritten, the last line wins
    before, inode = (run / REVIEWED).read_bytes(), (run / REVIEWED).stat().st_ino
    client.post("/api/decide", json={"id": first["id"], "labels": ["weather", "cooking"]})
    after = (run / REVIEWED).read_bytes()
    assert after.startswith(before) and (run / REVIEWED).stat().st_ino == inode
    assert json.loads(after.decode().splitlines()[-1])["labels"] == ["weather", "cooking"]
    assert read_reviewed(run)[first["id"]]["labels"] == ["weather", "cooking"]
    assert (run / REVIEWED).stat().st_mode & 0o777 == 0o600
    assert not [f for f in os.listdir(run) if f.endswith(".tmp")]  # no temp file left behind
    # a new server (the old one killed) starts at the first item not reviewed, shows the decision, and
    # compacts the file to one line per item
    again = ReviewSession(run)
    assert again.first_open() == 1
    assert again.item(0)["decision"]["labels"] == ["weather", "cooking"]
    assert len((run / REVIEWED).read_text().splitlines()) == 1


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
    from zsl.review.app import ReviewSession

    (run / REVIEWED).write_text(json.dumps({"id": "s1", "labels": ["sports", "footbal"]}) + "\n")
    with pytest.raises(VocabularyError, match=r"1 label\(s\) that are not in the run's vocabulary: 'footbal' \(items s1\)"):
        ReviewSession(run, sort="confidence")
    (run / REVIEWED).write_text("{not json\n")
    with pytest.raises(InputError, match=r"reviewed.jsonl:1: not JSON"):
        ReviewSession(run, sort="confidence")


def test_a_run_without_scores_or_being_written_is_refused_clearly(tmp_path, run):
    from zsl.review.app import ReviewSession

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

    from zsl.review.app import DEFAULT_HOST, serve

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
    assert len((tmp_path / REVIEWED).read_text().splitlines()) == 3  # one line per decision
    assert list(ReviewStore(tmp_path / REVIEWED).decisions) == ["1", "2"]  # reopening compacts
    assert len((tmp_path / REVIEWED).read_text().splitlines()) == 2


def _review_two(run):
    store = ReviewStore(run / REVIEWED, known_labels=LABELS)
    rows = {json.loads(x)["id"]: json.loads(x) for x in (run / "labels.jsonl").read_text().splitlines()}
    store.decide(rows["s3"], ["sports"])  # was politics: fixed
    store.decide(rows["p5"], ["politics", "weather"])
    return rows


def test_eval_takes_reviewed_rows_as_gold(run, capsys):
    from zsl.evaluation.evaluate import evaluate

    rows = _review_two(run)
    ReviewStore(run / REVIEWED, known_labels=LABELS).decide(rows["s4"], rows["s4"]["labels"])  # accepted as is
    rep = evaluate(run, run / REVIEWED, k=[1])
    assert rep.n_items == 3 and rep.n_extra == 21  # only reviewed items are scored
    # the silver top labels of s3 (politics) and p5 (sports) were wrong, s4's (sports) right: P@1 = 1/3
    assert rep.metrics["p@1"] == pytest.approx(1 / 3)
    assert main(["eval", str(run), str(run / REVIEWED), "--k", "1"]) == 0
    assert "report:" in capsys.readouterr().out


def test_distill_reviewed_overrides_the_silver_labels(run, tmp_path, capsys):
    from zsl.silver.data import read_silver

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
    from zsl.data.records import read_items

    _review_two(run)
    items = read_items(run / REVIEWED)
    assert {i.id: i.gold for i in items} == {"s3": ["sports"], "p5": ["politics", "weather"]}
    assert all(i.text for i in items)


def test_reviewed_rows_are_examples_for_tagger_fit_and_data_for_thresholds(run):
    from zsl.models.encoders import HashingEncoder
    from zsl.scoring import PerLabelThreshold
    from zsl.silver.reviewed import calibration_data
    from zsl.text.tagger import Tagger
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

    from zsl.review.app import ReviewSession, make_app

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

    from zsl.review.app import ReviewSession

    root = Path(__file__).resolve().parents[3]
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
        base, token = _split_token(url)
        item = json.loads(urllib.request.urlopen(base + "api/item/0?token=" + token, timeout=30).read())
        req = urllib.request.Request(base + "api/decide", json.dumps({"id": item["id"], "labels": ["weather"]}).encode(),
                                     {"Content-Type": "application/json", "X-Zsl-Token": token})
        assert json.loads(urllib.request.urlopen(req, timeout=30).read())["reviewed"] == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert read_reviewed(run)[item["id"]]["labels"] == ["weather"]
    assert ReviewSession(run, sort="confidence").first_open() == 1


def test_a_second_server_on_the_same_run_is_refused_and_stale_temp_files_go(run, monkeypatch):
    import uvicorn

    from zsl.review.app import serve
    from zsl.runs.rundir import lock_review

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

    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "ZSL_ENCODER": "hashing", "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "zsl.cli", "review", str(run), "--port", "0", "--sort", "confidence"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = next((line.split()[1] for line in proc.stderr if line.startswith("open http://127.0.0.1:")), None)
        assert url, "the server did not say where it listens"
        url, token = _split_token(url)
        auth = {"X-Zsl-Token": token}
        got = urllib.request.urlopen(urllib.request.Request(url + "api/state", headers=auth), timeout=30)
        assert json.loads(got.read())["total"] == 24
        port = url.rstrip("/").rsplit(":", 1)[1]
        ok = urllib.request.Request(url + "api/state", headers={"Host": f"localhost:{port}", **auth})
        assert urllib.request.urlopen(ok, timeout=30).status == 200
        evil = urllib.request.Request(url + "api/item/0", headers={"Host": f"evil.example:{port}", **auth})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(evil, timeout=30)
        assert refused.value.code == 400
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


# -- hardening (issue #26): through the real server over HTTP on 127.0.0.1 -------------------------------------
def _split_token(url):
    """``(base URL ending in /, token)`` of the URL `zsl review` prints (``http://127.0.0.1:P/?token=T``)."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    token = parse_qs(parts.query).get("token", [""])[0]
    assert token, f"the printed URL carries no token: {url}"
    return f"{parts.scheme}://{parts.netloc}/", token


class _Live:
    """`serve` in a thread on a free port of 127.0.0.1 (the real uvicorn server), stopped on exit."""

    def __init__(self, run, **kwargs):
        import socket
        import threading

        from zsl.review.app import serve

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.started = threading.Event()
        self.thread = threading.Thread(target=serve, args=(run,), daemon=True,
                                       kwargs={"sock": sock, "ready": self._ready, **kwargs})

    def _ready(self, url, server):
        self.url, self.server = url, server
        self.started.set()

    def __enter__(self):
        self.thread.start()
        assert self.started.wait(60), "the review server did not start"
        self.base, self.token = _split_token(self.url)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)

    def get(self, path, token=True, headers=None):
        """``(status, headers, body)`` of GET base+path (with ``?token=`` unless ``token`` is False)."""
        import urllib.error
        import urllib.request

        sep = "&" if "?" in path else "?"
        url = self.base + path + (f"{sep}token={self.token}" if token else "")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def post(self, path, body, headers):
        import urllib.error
        import urllib.request

        req = urllib.request.Request(self.base + path, json.dumps(body).encode(),
                                     {"Content-Type": "application/json", **headers})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


SECRET = b"root:x:0:0:the secret the review server must never serve\n"


def _hostile_image_run(tmp_path):
    """An image run (its manifest names imgs/ as the input) whose rows name files inside and outside it."""
    from PIL import Image

    imgs, run = tmp_path / "imgs", tmp_path / "run"
    imgs.mkdir()
    run.mkdir()
    (tmp_path / "secret.txt").write_bytes(SECRET)
    Image.new("RGB", (8, 8), (200, 0, 0)).save(imgs / "ok.png")
    (imgs / "good.png").symlink_to(imgs / "ok.png")  # a link that stays inside: fine
    (imgs / "link.png").symlink_to(tmp_path / "secret.txt")  # a link out of the folder
    (imgs / "page.html").write_text("<script>fetch('/api/item/0')</script>")
    (imgs / "pic.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    (imgs / "fake.png").write_text("<html><script>alert(1)</script></html>")  # an image suffix, html inside
    names = {"ok": str(imgs / "ok.png"), "good": "good.png", "link": "link.png", "html": str(imgs / "page.html"),
             "svg": "pic.svg", "fake": "fake.png", "dotdot": "../" * 12 + str(tmp_path / "secret.txt").lstrip("/"),
             "updir": "../secret.txt", "absolute": str(tmp_path / "secret.txt")}
    rows = [{"id": k, "image": v, "labels": ["cat"], "scores": [0.9 - n / 100]} for n, (k, v) in enumerate(names.items())]
    (run / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "manifest.json").write_text(json.dumps({"zsl_run": 1, "input": {"path": str(imgs)}}))
    return run


def test_image_endpoint_serves_only_image_files_of_the_input_folder(tmp_path, monkeypatch):
    """R1-R4: ../ traversal, absolute paths, a symlink out, html and svg are refused; images carry a no-script CSP."""
    run = _hostile_image_run(tmp_path)
    monkeypatch.chdir(tmp_path / "imgs")  # relative names resolve here too: still only inside the roots
    served = {}
    with _Live(run, sort="confidence") as live:
        for pos in range(9):
            item = json.loads(live.get(f"api/item/{pos}")[2])
            served[item["id"]] = live.get(f"api/image/{pos}")
    for name in ("ok", "good"):
        status, headers, body = served.pop(name)
        assert status == 200 and body[:4] == b"\x89PNG" and headers["Content-Type"] == "image/png"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
        assert headers["Content-Disposition"].startswith("inline")
    for name, (status, headers, body) in served.items():
        assert status == 404, f"{name} was served"
        assert b"secret" not in body and b"<script" not in body and b"<svg" not in body, name
        assert headers["Content-Type"].startswith("application/json")


def test_every_request_needs_the_token_of_this_server_start(run):
    """R5: another local user who can reach the port but not the printed URL reads and writes nothing."""
    with _Live(run, sort="confidence") as live:
        for path in ("", "api/state", "api/labels", "api/item/0"):
            status, _, body = live.get(path, token=False)
            assert status == 403 and b"token" in body, path
            assert live.get(path, headers={"Cookie": "zsl_review=guess"}, token=False)[0] == 403
            wrong = live.token[:-1] + ("A" if live.token[-1] != "A" else "B")
            assert live.get(path + "?token=" + wrong, token=False)[0] == 403
        status, body = live.post("api/decide", {"id": "s3", "labels": ["sports"]}, {})
        assert status == 403 and not (run / REVIEWED).exists()
        # with the token: the page, then the page's own requests by the cookie it set
        status, headers, page = live.get("")
        assert status == 200 and b"zsl review" in page
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        jar = {"Cookie": cookie.split(";")[0]}
        assert json.loads(live.get("api/state", token=False, headers=jar)[2])["total"] == 24
        assert live.post("api/decide", {"id": "s3", "labels": ["sports"]}, jar)[0] == 200
        assert live.post("api/decide", {"id": "s4", "labels": ["sports"]}, {"X-Zsl-Token": live.token})[0] == 200
    assert set(read_reviewed(run)) == {"s3", "s4"}
    with _Live(run, sort="confidence") as again:  # a new start: a new token, the old one is refused
        assert again.token != live.token
        assert again.get("api/state", token=False, headers={"X-Zsl-Token": live.token})[0] == 403


def test_zsl_review_open_opens_the_url_with_its_token(run, monkeypatch):
    import webbrowser

    import uvicorn

    opened = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    monkeypatch.setattr(webbrowser, "open", opened.append)
    assert main(["review", str(run), "--port", "0", "--sort", "confidence", "--open"]) == 0
    assert len(opened) == 1 and _split_token(opened[0])[1]


def test_the_page_cannot_be_framed(client):
    """R9: clickjacking (a framing site tricks the reviewer into pressing Enter)."""
    page = client.get("/")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert client.get("/api/state").headers["X-Frame-Options"] == "DENY"


def test_rows_skipped_in_labels_jsonl_are_said_at_start_and_on_the_page(run, capsys):
    """R16: a torn line and a NaN score are not silently dropped from the review."""
    lines = (run / "labels.jsonl").read_text().splitlines()
    lines[4] = lines[4][:30]  # torn
    lines[9] = lines[9].replace("0.61", "NaN")
    (run / "labels.jsonl").write_text("\n".join(lines) + "\n")
    with _Live(run, sort="confidence") as live:
        state = json.loads(live.get("api/state")[2])
        page = live.get("")[2].decode()
    err = capsys.readouterr().err
    assert "2 row(s) of" in err and "lines 5, 10" in err and "not shown" in err
    assert state["skipped_rows"] == 2 and "labels.jsonl:5" in state["skipped"][0]
    assert 'id="notice"' in page and "could not be read and are not shown" in page


@pytest.mark.parametrize("case", ["busy", "range", "host"])
def test_port_and_host_mistakes_are_one_line_naming_them(run, capsys, case):
    """R17-R19: a busy port, a port outside 0-65535, a host that does not resolve."""
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    args = {"busy": ["--port", str(port)], "range": ["--port", "99999"],
            "host": ["--host", "no.such.host.invalid", "--port", "0"]}[case]
    try:
        code = main(["review", str(run), "--sort", "confidence", *args])
    finally:
        busy.close()
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("zsl: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err and "check the paths" not in err
    want = {"busy": (f"port {port}", "--port 0"), "range": ("--port 99999", "0-65535"),
            "host": ("--host no.such.host.invalid", "127.0.0.1")}[case]
    assert all(w in lines[0] for w in want), lines[0]
    assert not (run / ".zsl-review-lock").exists()  # the address is checked before the run is touched


def test_a_folder_that_is_not_a_run_gets_no_review_lock_file(tmp_path, capsys):
    """R22."""
    empty = tmp_path / "emptydir"
    empty.mkdir()
    assert main(["review", str(empty), "--port", "0", "--sort", "confidence"]) == 2
    assert "without labels.jsonl" in capsys.readouterr().err
    assert os.listdir(empty) == []


def test_a_click_appends_one_line_and_a_torn_last_line_loses_no_confirmed_decision(run):
    """R23: O(1) per click; a crash mid-append leaves half a line, which is dropped, never blocks, never glues."""
    from zsl.review.app import ReviewSession

    s = ReviewSession(run, sort="confidence")
    rows = {r.id: r.row for r in s.rows}
    s.decide("s3", ["sports"])
    os.chmod(run / REVIEWED, 0o644)  # e.g. copied in by hand: the next click makes it private again
    s.decide("p5", ["politics"])
    assert (run / REVIEWED).stat().st_mode & 0o777 == 0o600
    confirmed = (run / REVIEWED).read_bytes()
    with open(run / REVIEWED, "ab") as fh:  # the server died in the middle of the third write
        fh.write(json.dumps({"id": "s4", "text": rows["s4"]["text"], "labels": ["sports"]}).encode()[:25])
    with pytest.warns(UserWarning, match=r"reviewed.jsonl:3: a decision cut short"):
        assert set(read_reviewed(run)) == {"s3", "p5"}  # eval / distill / fit read it too
    with pytest.warns(UserWarning, match="cut short"):
        again = ReviewSession(run, sort="confidence")
    assert set(again.store.decisions) == {"s3", "p5"} and (run / REVIEWED).read_bytes() == confirmed
    again.decide("s4", ["sports", "weather"])  # the next click lands on a line of its own
    assert read_reviewed(run)["s4"]["labels"] == ["sports", "weather"] and len(read_reviewed(run)) == 3
    (run / REVIEWED).write_bytes(confirmed[:40] + b"\n" + confirmed)  # a bad line in the middle: still an error
    with pytest.raises(InputError, match=r"reviewed.jsonl:1: not JSON"):
        read_reviewed(run)


def test_a_line_separator_inside_a_text_does_not_split_a_decision(tmp_path):
    store = ReviewStore(tmp_path / REVIEWED, known_labels=["a"])
    store.decide({"id": "1", "text": "one\u2028two\u0085three", "labels": ["a"]}, ["a"])
    assert read_reviewed(tmp_path)["1"]["text"] == "one\u2028two\u0085three"


def test_a_planted_symlink_as_reviewed_jsonl_is_not_written_through(run, tmp_path):
    from zsl.review.app import ReviewSession

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    s = ReviewSession(run, sort="confidence")
    (run / REVIEWED).symlink_to(victim)
    with pytest.raises(InputError, match="symlink"):
        s.decide("s3", ["sports"])
    assert victim.read_text() == "keep me\n"


def test_zsl_label_refuses_a_run_a_review_server_holds(run, tmp_path, capsys):
    """R25: relabelling (even --fresh) under a running review would change the items under the reviewer."""
    from zsl.runs.rundir import lock_review

    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": f"n{i}", "text": f"the match and the vote {i}"}) + "\n"
                             for i in range(5)))
    vocab = tmp_path / "labels.txt"
    vocab.write_text("sports\npolitics\n")
    before = (run / "labels.jsonl").read_bytes()
    fd = lock_review(run)
    try:
        code = main(["label", str(items), "--labels", str(vocab), "--no-infer", "--no-rank", "--encoder", "hashing",
                     "-k", "2", "--out", str(run), "--fresh"])
    finally:
        os.close(fd)
    err = capsys.readouterr().err
    assert code == 2 and "zsl review" in err and f"pid {os.getpid()}" in err and "Ctrl-C" in err
    assert (run / "labels.jsonl").read_bytes() == before


def test_a_one_label_run_falls_back_to_confidence_order_with_a_note(tmp_path, monkeypatch, capsys):
    """R26: cleanlab has nothing to compare on a 1-label vocabulary; the page opens in confidence order."""
    from zsl.review.app import ReviewSession

    monkeypatch.setenv("ZSL_ENCODER", "hashing")
    run = tmp_path / "one"
    run.mkdir()
    rows = [{"id": f"n{i}", "text": f"text {i}", "labels": ["only"], "scores": [0.5 + i / 100]} for i in range(30)]
    (run / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.warns(UserWarning, match=r"at least 2 labels in use; the 30 rows use 1 \('only'\)\. Showing the items in "
                                         "confidence order instead"):
        s = ReviewSession(run)
    assert s.sort == "confidence" and s.rows[0].id == "n0"
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    assert main(["review", str(run), "--port", "0"]) == 0
    err = capsys.readouterr().err
    assert "confidence order" in err and "Traceback" not in err
