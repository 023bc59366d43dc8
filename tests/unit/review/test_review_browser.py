"""A real browser against `zsl review`: Playwright drives Chromium (Debian's /usr/bin/chromium).

CI (`.ci/run`) installs chromium when it is missing and sets ZSL_REQUIRE_BROWSER=1, so there a
missing browser fails the test; on a developer machine without it the test skips and says how to
install it. Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from pathlib import Path

import pytest

from tests.small_run import HOSTILE, WRONG, make_run

if os.environ.get("ZSL_REQUIRE_BROWSER") != "1":  # in CI a missing package fails the run, it does not skip
    pytest.importorskip("fastapi")
    pytest.importorskip("cleanlab")

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    """The Chromium to drive, or fail (CI) / skip (elsewhere) with the install command."""
    path = os.environ.get("ZSL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if Path(path).is_file():
        try:
            import playwright  # noqa: F401
        except ImportError:
            path = ""
        else:
            return path
    why = ("needs Playwright (pip install 'zsl[review]') and Chromium at /usr/bin/chromium (or $ZSL_CHROMIUM). "
           "Install it with: sudo apt-get install -y chromium  (Playwright's own download is not used)")
    if os.environ.get("ZSL_REQUIRE_BROWSER") == "1":
        pytest.fail(f"ZSL_REQUIRE_BROWSER=1 but the browser test cannot run: it {why}")
    pytest.skip(f"the browser test {why}")


class Server:
    """`zsl review` on a free port of 127.0.0.1, in a thread."""

    def __init__(self, run: Path, **kwargs):
        from zsl.review.app import serve

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.started = threading.Event()
        self.thread = threading.Thread(target=serve, args=(run,), kwargs={"sock": sock, "ready": self._ready, **kwargs},
                                       daemon=True)
        self.thread.start()
        assert self.started.wait(60), "the review server did not start"

    def _ready(self, url, server):
        self.url, self.server = url, server  # the URL `zsl review` prints: http://127.0.0.1:P/?token=...
        self.base = url.split("?")[0]
        self.started.set()

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSL_ENCODER", "hashing")
    return make_run(tmp_path / "run")


@pytest.fixture
def browser():
    exe = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _wait_ready(server: Server, page) -> None:
    import urllib.request

    token = server.url.split("?token=")[1]
    urllib.request.urlopen(server.base + "api/state?token=" + token, timeout=10).read()  # it answers before the page loads
    from playwright.sync_api import expect

    page.goto(server.url)
    expect(page.locator("#meta")).to_contain_text("Item")


def test_review_a_worst_item_in_chromium_and_resume_after_reload(run, browser):
    from playwright.sync_api import expect

    server = Server(run)
    try:
        page = browser.new_page()
        _wait_ready(server, page)
        meta = page.locator("#meta").inner_text()
        first = meta.split("id ")[1].split(" ")[0]
        assert first in WRONG, f"the first item must be a planted wrong label, got {meta!r}"
        wrong, right = ("politics", "sports") if first.startswith("s") else ("sports", "politics")
        chips = page.locator("#chips .chip")
        assert chips.count() == 2 and wrong in chips.nth(0).inner_text()
        second = chips.nth(1).get_attribute("data-label")
        chips.nth(0).click()  # remove the wrong label
        expect(page.locator("#chips .chip.removed")).to_have_count(1)
        page.locator("#search").fill(right[:4])
        expect(page.locator("#matches div").first).to_have_text(right)
        page.locator("#search").press("Enter")  # add the first match
        expect(page.locator(f"#chips .chip.added[data-label='{right}']")).to_have_count(1)
        expect(page.locator("#status")).to_contain_text("saved")
        page.locator("body").click(position={"x": 5, "y": 5})
        page.keyboard.press("Enter")  # accept as shown and move on
        expect(page.locator("#meta")).to_contain_text("Item 2 of 24")
        expect(page.locator("#progress")).to_have_text("1 / 24 reviewed")
        page.reload()
        expect(page.locator("#meta")).to_contain_text("Item 2 of 24")  # reopening continues at the first open item
        expect(page.locator("#progress")).to_have_text("1 / 24 reviewed")
        page.close()
    finally:
        server.stop()
    from zsl.silver.reviewed import read_reviewed

    decisions = read_reviewed(run)  # one line per click; the last one of the item counts
    assert list(decisions) == [first]
    got = decisions[first]
    assert got["id"] == first and got["labels"] == [second, right]
    assert got["removed"] == [wrong] and got["added"] == [right] and got["action"] == "edit"
    assert got["proposed"] == [wrong, second]


def test_html_in_a_text_is_shown_as_text_never_run(run, browser):
    server = Server(run, sort="confidence")  # equal scores: file order, the hostile text first
    try:
        page = browser.new_page()
        _wait_ready(server, page)
        assert page.locator("#text").inner_text() == HOSTILE
        assert page.evaluate("window.__pwned === undefined")
        assert page.locator("#text script, #text img").count() == 0
    finally:
        server.stop()


def test_the_label_picker_stays_fast_with_14k_labels(tmp_path, monkeypatch, browser):
    import time

    from playwright.sync_api import expect

    monkeypatch.setenv("ZSL_ENCODER", "hashing")
    run = make_run(tmp_path / "run", n_extra=14_000)
    server = Server(run, sort="confidence")
    try:
        page = browser.new_page()
        _wait_ready(server, page)
        t = time.perf_counter()
        page.locator("#search").fill("number 1234")
        expect(page.locator("#matches div").first).to_have_text("skill number 12340")
        assert page.locator("#matches div").count() == 10  # 12340 .. 12349
        seconds = time.perf_counter() - t
        assert seconds < 2.0, f"filtering 14,044 labels took {seconds:.2f}s"
        page.locator("#search").fill("skill")
        expect(page.locator("#matches div")).to_have_count(30)  # at most 30 drawn
    finally:
        server.stop()


def test_without_the_token_the_page_gets_nothing_and_skipped_rows_are_shown(run, browser):
    """R5 and R16 in a real browser: the bare URL is refused; the token URL shows the notice of skipped rows."""
    from playwright.sync_api import expect

    lines = (run / "labels.jsonl").read_text().splitlines()
    lines[3] = lines[3][:20]  # a torn row
    (run / "labels.jsonl").write_text("\n".join(lines) + "\n")
    server = Server(run, sort="confidence")
    try:
        page = browser.new_page()
        answer = page.goto(server.base)
        assert answer.status == 403 and "token" in page.content()
        _wait_ready(server, page)
        expect(page.locator("#notice")).to_be_visible()
        expect(page.locator("#notice")).to_contain_text("1 row(s) of labels.jsonl could not be read")
        assert "token" not in page.url  # the token left the address bar; the page works on its cookie
        page.reload()
        expect(page.locator("#meta")).to_contain_text("Item 1 of 23")
        page.close()
    finally:
        server.stop()


def test_a_tree_vocabulary_shows_paths_and_the_search_matches_any_part_of_a_path(tmp_path, monkeypatch, browser):
    """Issue #29: each label with its path (ancestors muted), and typing 'Lakes' finds a label under Lakes."""
    from playwright.sync_api import expect

    from tests.unit.review.test_review_tree import tree_run

    server = Server(tree_run(tmp_path, monkeypatch), sort="confidence")
    try:
        page = browser.new_page()
        _wait_ready(server, page)
        chip = page.locator("#chips .chip").first
        expect(chip.locator(".anc")).to_have_text("News")  # sports / politics sit under News
        assert chip.locator(".l").inner_text() in ("sports", "politics")
        page.locator("#search").fill("lakes")
        found = page.locator("#matches div")
        expect(found.first).to_have_attribute("data-label", "Lakes")  # the label's own name first
        expect(page.locator("#matches div[data-label='Africa (Lakes)'] .anc")).to_have_text(
            "Geography › Bodies of water › Lakes")
        page.locator("#search").fill("bodies of")  # a part of the path only: everything under it
        expect(found).to_have_count(3)
        expect(found.nth(1)).to_have_attribute("data-label", "Lakes")
        page.locator("#search").press("ArrowDown")
        page.locator("#search").press("ArrowDown")
        page.locator("#search").press("Enter")
        expect(page.locator("#chips .chip.added[data-label='Africa (Lakes)'] .anc")).to_have_text(
            "Geography › Bodies of water › Lakes")
        expect(page.locator("#status")).to_contain_text("saved")
    finally:
        server.stop()
