"""Take the README's screenshots of `zsl review` with Playwright and Debian's Chromium.

    cd DIR && python $REPO/docs/review_screenshots.py run [SEARCH]   # writes $REPO/docs/review*.png

The README's pictures: DIR/run is a copy of a retrieval-only run of 300 GoEmotions dev comments
(`zsl label ... --no-infer --no-rank -k 3`), SEARCH is "ness". Use a copy you can spare: the
script removes the first item's first label, which `zsl review` writes to run/reviewed.jsonl.
"""

from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from zsl.review.app import serve

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DOCS = Path(__file__).resolve().parent


def main(run: str, search: str = "gra") -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    ready = threading.Event()
    box: dict = {}

    def on_ready(url, server):
        box.update(url=url, server=server)
        ready.set()

    threading.Thread(target=serve, args=(run,), kwargs={"sock": sock, "ready": on_ready}, daemon=True).start()
    ready.wait(600)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 560})
        page.goto(box["url"])
        expect(page.locator("#meta")).to_contain_text("Item")
        page.screenshot(path=str(DOCS / "review.png"))
        page.keyboard.press("1")  # remove the first label
        expect(page.locator("#chips .chip.removed")).to_have_count(1)
        page.locator("#search").fill(search)
        expect(page.locator("#matches div").first).to_be_visible()
        page.screenshot(path=str(DOCS / "review-search.png"))
        browser.close()
    box["server"].should_exit = True
    print(f"wrote {DOCS / 'review.png'} and {DOCS / 'review-search.png'}")


if __name__ == "__main__":
    main(*sys.argv[1:])
