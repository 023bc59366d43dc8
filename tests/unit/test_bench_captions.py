"""The describer benchmark's caption server: it answers a photo from the photo's own pixels, over real HTTP."""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from benchmarks.caption_server import CaptionServer


def _photo(path, seed):
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(6, 8, 3), dtype=np.uint8)  # coarse blocks: survives JPEG and resizing
    Image.fromarray(small).resize((640, 480), Image.Resampling.NEAREST).save(path)
    return str(path)


def _data_url(path, *, side=300, quality=80):
    from PIL import Image

    img = Image.open(path).convert("RGB")
    img.thumbnail((side, side))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _ask(server, content):
    body = json.dumps({"model": "x", "messages": [{"role": "user", "content": content}]}).encode()
    req = urllib.request.Request(server.api_base + "/chat/completions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["choices"][0]["message"]["content"]


def test_each_photo_is_answered_with_its_own_captions_after_downscaling_and_reencoding(tmp_path):
    a, b, c = (_photo(tmp_path / f"{n}.png", n) for n in range(3))
    captions = {a: ["a man riding a wave", "a surfer on a board"], b: ["a cat on a sofa"]}
    with CaptionServer(captions, {a: a, b: b, c: c}) as server:
        assert _ask(server, "hello") == "ok"  # a start-up check without a photo
        question = {"type": "text", "text": "What do you see?"}
        assert _ask(server, [question, {"type": "image_url", "image_url": {"url": _data_url(b)}}]) == "a cat on a sofa"
        got = _ask(server, [question, {"type": "image_url", "image_url": {"url": _data_url(a, side=768, quality=95)}}])
        assert got == "a man riding a wave\na surfer on a board"
        assert _ask(server, [{"type": "image_url", "image_url": {"url": _data_url(c)}}]) == ""  # known, no captions
        assert server.asked == [b, a, c]


def test_a_photo_it_does_not_know_is_refused_not_answered(tmp_path):
    a = _photo(tmp_path / "a.png", 0)
    stranger = _photo(tmp_path / "s.png", 99)
    with CaptionServer({a: ["a dog"]}, {a: a}) as server:
        for url in (_data_url(stranger), "data:image/jpeg;base64," + base64.b64encode(b"not an image").decode()):
            with pytest.raises(urllib.error.HTTPError) as err:
                _ask(server, [{"type": "image_url", "image_url": {"url": url}}])
            assert err.value.code == 400 and b"unknown photo" in err.value.read()
        assert server.refused == 2 and server.asked == []


def test_the_images_benchmark_dispatches_vlm_to_its_own_parser(capsys):
    from benchmarks.images import main

    with pytest.raises(SystemExit):
        main(["vlm", "--help"])
    assert "benchmarks.images vlm" in capsys.readouterr().out


def test_the_share_sweep_scores_each_grid_share_and_the_table_marks_the_default():
    from benchmarks.images_vlm import render, share_sweep
    from zsl.image.vlm import DEFAULT_IMAGE_SHARE, IMAGE_SHARE_GRID

    # two photos, three labels: the image scores favour label 0, the describer the gold label 2
    image = np.array([[1.0, 0.2, 0.1], [1.0, 0.1, 0.2]])
    sims = [np.array([0.1, 0.0, 0.9]), np.array([0.0, 0.1, 0.9])]
    y = np.array([[0, 0, 1], [0, 0, 1]], dtype=np.uint8)
    sweep = share_sweep(image, sims, y)
    assert [r["share"] for r in sweep] == list(IMAGE_SHARE_GRID)
    by_share = {r["share"]: r["p_at_1"] for r in sweep}
    assert by_share[0.1] == 100.0 and by_share[0.7] == 0.0  # a small share follows the describer, a large one not
    row = {"p_at_1": 1.0, "map": 1.0, "micro_f1": 1.0, "sets_f1": 1.0}
    results = {"n_photos": 2, "n_labels": 3, "gold_per_photo": 1.0, "requests": 2, "cached": 0, "wrong_photo": 0,
               "refused": 0, "phrases_per_photo": 1.0, "encoder": "fake", "seconds": 1.0,
               "rows": [{"variant": v, **row} for v in "abcd"], "fitted_image_share": [0.1] * 5,
               "share_sweep": sweep, "mapping": {"captions": 0, "precision": 0.0, "recall": 0.0, "photo_recall": 0.0,
                                                 "examples": []}}
    text = render(results, "cmd", "machine")
    assert f"| {DEFAULT_IMAGE_SHARE} (default) |" in text and f"(default {DEFAULT_IMAGE_SHARE})" in text
