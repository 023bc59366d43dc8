"""Photos through a vision-language model, against a real OpenAI-compatible server on loopback
(tests/fake_openai.py reads each photo and answers from its colour): the payload, Infer and Rank,
paid once, retries and resume, refused photos and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.fake_openai import PALETTE, FakeOpenAI
from zsl.cli import main
from zsl.errors import InputError, RemoteModelError
from zsl.image.vlm import parse_vlm_phrases, parse_yes_no, photo_payload

LABELS = ["cat", "dog", "car", "tree", "boat"]
# What the server "sees" on a photo of each colour.
SEEN = {"red": ["car"], "green": ["tree", "dog"], "blue": ["boat"], "yellow": ["cat"]}


@pytest.fixture(autouse=True)
def _fast_and_uncached(monkeypatch):
    monkeypatch.setenv("ZSL_LM_CACHE", "0")  # DSPy's cache off: only zsl's own answer cache may save a call
    monkeypatch.setenv("ZSL_RETRY_BASE_DELAY", "0.01")


def _photo(path: Path, colour: str, size=(64, 48), mode: str = "RGB", fmt: str | None = None) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, PALETTE[colour])
    (img.convert(mode) if mode != "RGB" else img).save(path, format=fmt)
    return path


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    for colour in ("red", "green", "blue", "yellow"):
        _photo(folder / f"{colour}.png", colour)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    return folder, labels


def _label(folder, labels, out, server, *extra) -> int:
    return main(["label", str(folder), "--labels", str(labels), "--out", str(out), "--lm", "openai/fake-vlm",
                 "--api-base", server.api_base, "--encoder", "hashing", "--image-model", "efficientnet-lite0",
                 "-k", "2", *extra])


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_each_request_carries_its_photo_and_the_vlm_labels_it(tmp_path, photos):
    folder, labels = photos
    with FakeOpenAI(photos=SEEN) as server:
        assert _label(folder, labels, tmp_path / "run", server) == 0
    rows = {r["id"]: r for r in _rows(tmp_path / "run" / "labels.jsonl")}
    assert rows["red.png"]["labels"][0] == "car" and rows["red.png"]["phrases"] == ["car"]
    assert rows["blue.png"]["labels"][0] == "boat"
    assert set(rows["green.png"]["labels"]) == {"tree", "dog"}
    assert rows["yellow.png"]["labels"][0] == "cat"
    # one Infer and one Rank request per photo, each with the photo it is about
    assert sorted((s["colour"], s["step"]) for s in server.seen) == sorted(
        (c, step) for c in SEEN for step in ("infer", "rank"))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    text = json.dumps(summary)
    assert '"bytes_sent"' in text and '"image_tokens"' in text


def test_parse_vlm_phrases_and_yes_no():
    assert parse_vlm_phrases("") == []
    assert parse_vlm_phrases("1. a red car\n2. street") == ["a red car", "street"]
    assert parse_yes_no("Sure!\n1: no\n2: YES", ["a", "b"]).tolist() == [0.0, 1.0]
    assert parse_yes_no("a: yes", ["a", "b"]).tolist() == [1.0, 0.0]
    logprobs = [["1: ", 0.0, []], ["yes", -0.1, [["yes", -0.1], ["no", -2.5]]]]
    assert parse_yes_no("1: yes", ["a"], logprobs)[0] == pytest.approx(1 / (1 + np.exp(-2.4)), abs=1e-5)
    for bad in ("The photo shows a cat sitting on a mat.", "", None):
        with pytest.raises(RemoteModelError, match="could not be read"):
            parse_yes_no(bad, ["a", "b"])


def test_the_payload_is_downscaled_re_encoded_and_keyed_by_the_original_bytes(tmp_path):
    a = _photo(tmp_path / "a.png", "red", size=(3000, 1500))
    b = tmp_path / "copy-of-a.png"
    b.write_bytes(a.read_bytes())
    pa, pb = photo_payload(a), photo_payload(b)
    assert pa == pb and (pa.width, pa.height) == (768, 384)
    assert pa.data_url.startswith("data:image/jpeg;base64,")
    import hashlib

    assert pa.sha256 == hashlib.sha256(a.read_bytes()).hexdigest()
    with pytest.raises(InputError, match="URL"):
        photo_payload("https://example.com/cat.jpg")
