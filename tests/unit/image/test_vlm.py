"""Photos through a vision-language model, against a real OpenAI-compatible server on loopback
(tests/fake_openai.py reads each photo and answers from its colour): the payload, Infer and Rank,
paid once, retries and resume, refused photos and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.fake_openai import PALETTE, FakeOpenAI
from zsl.errors import InputError, RemoteModelError
from zsl.image.vlm import parse_vlm_phrases, parse_yes_no, photo_payload, phrase_parts, phrase_similarities

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


class FlatBackend:
    """An image backend that sees nothing: every photo and label text embeds alike, so the VLM decides."""

    model_id = "fake:flat"
    logit_scale = 1.0
    threshold = 0.5

    def encode_images(self, images, *, size=None):
        return np.ones((len(images), 4), dtype=np.float32) / 2.0

    def encode_texts(self, texts):
        return np.ones((len(texts), 4), dtype=np.float32) / 2.0


def _label(folder, labels, out, server, **settings):
    from zsl.models.lm import get_lm
    from zsl.runs.label import label_run

    lm = get_lm("hosted_vllm/fake-vlm", api_base=server.api_base)
    return label_run(folder, labels, out=out, lm=lm, encoder="hashing", image_backend=FlatBackend(), k=2,
                     image_kwargs={"mode": "global"}, **settings)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_each_request_carries_its_photo_and_the_vlm_labels_it(tmp_path, photos):
    folder, labels = photos
    with FakeOpenAI(photos=SEEN) as server:
        assert _label(folder, labels, tmp_path / "run", server).skipped == 0
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


def test_a_described_sentence_is_retrieved_by_each_thing_it_names():
    """A caption embeds as its main object; its parts reach the other things it names (the person, the wave)."""
    assert phrase_parts("A man riding a wave on top of a surfboard.") == ["man riding", "wave", "surfboard"]
    assert phrase_parts("two people and a dog") == ["people", "dog"]
    assert phrase_parts("a red car outside") == [] and phrase_parts("a dining table") == []  # short: names already

    labels = ["person", "surfboard", "cake"]
    words = {"person": {"man", "person"}, "surfboard": {"surfboard"}, "cake": {"cake"}}

    seen: list[str] = []

    class WordIndex:  # a label matches a query holding one of its words, and exactly so only alone
        class encoder:
            @staticmethod
            def encode(texts):
                seen.extend(texts)
                return list(texts)

        @staticmethod
        def similarities(queries):
            return np.array([[1.0 / len(q.split()) if words[lab] & set(q.lower().split()) else 0.0
                              for lab in labels] for q in queries])

    sim = phrase_similarities(WordIndex, ["a man riding a wave on top of a surfboard", "cake"])
    assert sim.tolist() == pytest.approx([0.5, 1.0, 1.0])  # "man riding" -> person; the whole sentence only 1/10
    assert seen == ["a man riding a wave on top of a surfboard", "cake", "man riding", "wave", "surfboard"]  # each query once, the parts after the phrases
    assert phrase_similarities(WordIndex, []) is None


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


def _errors(run: Path) -> dict[str, dict]:
    return {e["id"]: e for e in _rows(run / "errors.jsonl") if "id" in e}


def test_the_same_photo_under_two_names_is_asked_once_and_a_changed_photo_again(tmp_path, photos):
    folder, labels = photos
    (folder / "red-copy.png").write_bytes((folder / "red.png").read_bytes())
    with FakeOpenAI(photos=SEEN) as server:
        _label(folder, labels, tmp_path / "run", server)
        assert [s["colour"] for s in server.seen].count("red") == 2          # Infer + Rank, once for both names
        _photo(folder / "red.png", "blue")                                     # same name, new photo
        _label(folder, labels, tmp_path / "run2", server)
    rows = {r["id"]: r for r in _rows(tmp_path / "run2" / "labels.jsonl")}
    assert rows["red.png"]["labels"][0] == "boat" and rows["red-copy.png"]["labels"][0] == "car"
    assert [s["colour"] for s in server.seen].count("red") == 2  # the copy's answers came from the cache


def test_a_20_mb_png_is_downscaled_before_it_is_sent(tmp_path, photos):
    from PIL import Image

    folder, labels = photos
    noise = np.random.default_rng(0).integers(0, 256, (2600, 2600, 3), dtype=np.uint8)
    big = folder / "big.png"
    Image.fromarray(noise).save(big)
    assert big.stat().st_size > 19_000_000
    with FakeOpenAI(photos=SEEN) as server:
        _label(folder, labels, tmp_path / "run", server)
    sent = [s for s in server.seen if (s["width"], s["height"]) == (768, 768)]
    assert sent and all(s["format"] == "JPEG" and s["bytes"] < 1_000_000 for s in sent)
    assert all(max(s["width"], s["height"]) <= 768 for s in server.seen)


def test_rate_limits_are_retried_and_photos_that_keep_failing_are_relabelled_by_a_rerun(tmp_path, photos):
    folder, labels = photos
    with FakeOpenAI(photos=SEEN, fail_first=3, fail_status=429) as server:
        assert _label(folder, labels, tmp_path / "run", server).skipped == 0
    assert server.failures == 3
    other = tmp_path / "other"  # photos not asked yet (the cache holds the first ones' answers)
    for colour in ("purple", "orange", "white"):
        _photo(other / f"{colour}.png", colour)
    with FakeOpenAI(photos=SEEN, fail_first=None, fail_status=503) as down:
        summary = _label(other, labels, tmp_path / "run2", down, retries=1)
    assert summary.skipped == 3 and all(e.get("retryable") for e in _errors(tmp_path / "run2").values())
    with FakeOpenAI(photos=SEEN) as healthy:
        assert _label(other, labels, tmp_path / "run2", healthy, retries=1).skipped == 0
        _label(other, labels, tmp_path / "clean", healthy)
    assert (tmp_path / "run2" / "labels.jsonl").read_bytes() == (tmp_path / "clean" / "labels.jsonl").read_bytes()


def test_time_outs_are_retried(tmp_path, photos):
    folder, labels = photos
    with FakeOpenAI(photos=SEEN, slow_first=1, slow_seconds=5.0) as server:
        summary = _label(folder, labels, tmp_path / "run", server, timeout=1.0)
    assert summary.skipped == 0 and server.slow == 1


def test_a_refused_photo_is_that_rows_clear_error_and_the_run_goes_on(tmp_path, photos):
    folder, labels = photos
    with FakeOpenAI(photos=SEEN, refuse_photo=lambda colour: colour == "blue") as server:
        summary = _label(folder, labels, tmp_path / "run", server)
    assert summary.skipped == 1 and summary.labelled == 3
    err = _errors(tmp_path / "run")["blue.png"]
    assert "400" in err["reason"] or "Invalid image" in err["reason"]
    assert not err.get("retryable")


def _png_header_only(path: Path, w: int, h: int) -> Path:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
                     + chunk(b"IEND", b""))
    return path


def test_bad_photos_are_skipped_and_reported_and_the_rest_is_labelled(tmp_path, photos):
    from PIL import Image

    folder, labels = photos
    (folder / "notes.jpg").write_text("not an image", encoding="utf-8")
    (folder / "empty.png").write_bytes(b"")
    _png_header_only(folder / "huge.png", 30000, 30000)
    _photo(folder / "cmyk.jpg", "yellow", mode="CMYK", fmt="JPEG")
    frames = [Image.new("RGB", (40, 40), PALETTE[c]) for c in ("green", "red")]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    (folder / "link.png").symlink_to(folder / "red.png")
    with FakeOpenAI(photos=SEEN) as server:
        summary = _label(folder, labels, tmp_path / "run", server)
    errors = _errors(tmp_path / "run")
    assert set(errors) == {"notes.jpg", "empty.png", "huge.png", "link.png"}
    assert "not an image" in errors["notes.jpg"]["reason"] and "0 bytes" in errors["empty.png"]["reason"]
    assert "too large" in errors["huge.png"]["reason"] and "symbolic link" in errors["link.png"]["reason"]
    rows = {r["id"]: r for r in _rows(tmp_path / "run" / "labels.jsonl")}
    assert rows["cmyk.jpg"]["labels"][0] == "cat"      # CMYK converted: the server saw yellow
    assert rows["anim.gif"]["labels"][0] in ("tree", "dog")  # the first frame (green)
    assert summary.labelled == 6


def test_a_prose_or_empty_rank_answer_is_a_row_error_and_the_paid_answer_is_kept(tmp_path, photos):
    folder, labels = photos
    for answer in ("I think this photo shows a car on a road.", ""):
        with FakeOpenAI(photos=SEEN, rank_answer=answer) as server:
            summary = _label(folder, labels, tmp_path / f"run{len(answer)}", server)
        assert summary.skipped == 4
        assert all("could not be read" in e["reason"] for e in _errors(tmp_path / f"run{len(answer)}").values())
        with FakeOpenAI(photos=SEEN) as again:
            _label(folder, labels, tmp_path / f"again{len(answer)}", again)
        assert again.requests == 0  # every answer, readable or not, was kept: nothing is paid twice


def test_phrases_outside_the_vocabulary_map_onto_it_and_rows_only_name_its_labels(tmp_path, photos):
    folder, labels = photos
    seen = {"red": ["car", "zebra", "spaceship"]}
    with FakeOpenAI(photos=seen) as server:
        _label(folder, labels, tmp_path / "run", server)
    rows = {r["id"]: r for r in _rows(tmp_path / "run" / "labels.jsonl")}
    assert rows["red.png"]["phrases"] == ["car", "zebra", "spaceship"]
    assert all(lab in LABELS for r in rows.values() for lab in r["labels"])
    assert rows["red.png"]["labels"][0] == "car"


def test_with_no_rank_only_infer_is_asked(tmp_path, photos):
    folder, labels = photos
    with FakeOpenAI(photos=SEEN) as server:
        _label(folder, labels, tmp_path / "run", server, rank=False)
    assert {s["step"] for s in server.seen} == {"infer"}
    with FakeOpenAI(photos=SEEN) as server:
        _label(folder, labels, tmp_path / "run2", server, infer=False)
    assert {s["step"] for s in server.seen} == {"rank"}
