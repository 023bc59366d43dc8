"""`zsl review` shows a VLM's phrases beside the photo (issue #28, item 5): the API and a real Chromium."""

from __future__ import annotations

import json
import os

import pytest

if os.environ.get("ZSL_REQUIRE_BROWSER") != "1":
    pytest.importorskip("fastapi")

HOSTILE_PHRASE = '<img src=x onerror="window.__pwned=1">a red bus'


def _image_run(tmp_path):
    """An image run of 3 photos: two rows carry the VLM's phrases, one (a row of an older zsl) none."""
    from PIL import Image

    run = tmp_path / "imgrun"
    run.mkdir()
    phrases = [["a man riding a wave", "surfboard", "ocean"], [HOSTILE_PHRASE, "street"], None]
    rows = []
    for i, said in enumerate(phrases):
        Image.new("RGB", (16, 12), (60 * i, 90, 0)).save(run / f"p{i}.png")
        row = {"id": f"p{i}.png", "image": str(run / f"p{i}.png"), "labels": ["person"], "scores": [0.9 - i / 10]}
        if said is not None:
            row["phrases"] = said
        rows.append(row)
    (run / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_image_items_carry_the_vlms_phrases_and_rows_without_them_carry_none(tmp_path):
    from fastapi.testclient import TestClient

    from zsl.review.app import make_app

    client = TestClient(make_app(_image_run(tmp_path), sort="confidence"))
    items = {it["id"]: it for it in (client.get(f"/api/item/{i}").json() for i in range(3))}
    assert items["p0.png"]["phrases"] == ["a man riding a wave", "surfboard", "ocean"]
    assert items["p1.png"]["phrases"] == [HOSTILE_PHRASE, "street"]  # data, unchanged; the page shows it as text
    assert items["p2.png"]["phrases"] == []
    assert items["p0.png"]["proposed"] == [{"label": "person", "score": 0.9}]


def test_phrases_that_are_not_a_list_of_words_are_not_shown(tmp_path):
    from zsl.review.app import _phrases

    assert _phrases({"phrases": "a dog"}) == []  # a string is not split into letters
    assert _phrases({"phrases": {"a": 1}}) == []
    assert _phrases({"phrases": ["a dog", None, " ", 3]}) == ["a dog", "3"]
    assert len(_phrases({"phrases": [f"p{i}" for i in range(500)]})) == 50


def test_text_items_show_no_phrases(tmp_path, monkeypatch):
    pytest.importorskip("cleanlab")
    from fastapi.testclient import TestClient

    from tests.small_run import make_run
    from zsl.review.app import make_app

    monkeypatch.setenv("ZSL_ENCODER", "hashing")
    client = TestClient(make_app(make_run(tmp_path / "run"), sort="confidence"))
    assert client.get("/api/item/0").json()["phrases"] == []


def test_chromium_shows_the_phrases_beside_the_photo_as_text(tmp_path):
    from playwright.sync_api import expect

    from tests.unit.review.test_review_browser import CHROMIUM_ARGS, Server, _wait_ready, chromium_path

    exe = chromium_path()
    from playwright.sync_api import sync_playwright

    run = _image_run(tmp_path)
    server = Server(run, sort="confidence")  # least confident first: p2 (no phrases), p1, p0
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
            page = browser.new_page()
            _wait_ready(server, page)
            expect(page.locator("#meta")).to_contain_text("id p2.png")
            expect(page.locator("#img")).to_be_visible()
            expect(page.locator("#phrases")).to_be_hidden()  # no phrases, no empty box
            page.keyboard.press("ArrowRight")
            expect(page.locator("#meta")).to_contain_text("id p1.png")
            expect(page.locator("#phrases")).to_be_visible()
            expect(page.locator("#phraselist li")).to_have_text([HOSTILE_PHRASE, "street"])
            assert page.locator("#phrases img").count() == 0 and page.evaluate("window.__pwned === undefined")
            page.keyboard.press("ArrowRight")
            expect(page.locator("#phraselist li")).to_have_text(["a man riding a wave", "surfboard", "ocean"])
            box, img = page.locator("#phrases").bounding_box(), page.locator("#img").bounding_box()
            assert box["x"] >= img["x"] + img["width"] - 1  # beside the photo, not under it
            expect(page.locator("#chips .chip")).to_have_count(1)  # the labels still shown
            browser.close()
    finally:
        server.stop()
