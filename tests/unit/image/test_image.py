"""Image scoring: CDUL maths on hand-made arrays, crops, defensive image reading, the tagger
over a fake backend, a tiny random open_clip model, and LLM label descriptions (scripted LM)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fakes import ScriptedLM
from tests.helpers import ColourBackend
from zsl import LabelVocab
from zsl.base import Scorer
from zsl.data.images import list_image_files, load_image, load_images, to_rgb
from zsl.errors import InputError, ModelNotFoundError
from zsl.image.backends import conse_embeddings, get_image_backend
from zsl.image.global_local import (
    aggregate,
    class_probabilities,
    global_local_scores,
    grid_boxes,
    local_scores,
    make_crops,
    softmax,
)
from zsl.image.tagger import ImageTagger, describe_labels, label_texts

# ----------------------------------------------------------------------------- maths


def test_softmax_rows_sum_to_one_and_survive_large_logits():
    p = softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]]))
    assert np.allclose(p, [[0.5, 0.5], [0.25, 0.75]])


def test_class_probabilities_use_the_logit_scale_of_100():
    img = np.array([[1.0, 0.0, 0.0]])
    # cosines 0.3 and 0.2 with the two label texts
    txt = np.array([[0.3, np.sqrt(1 - 0.09), 0.0], [0.2, 0.0, np.sqrt(1 - 0.04)]])
    p = class_probabilities(img, txt, logit_scale=100.0)
    expected = 1.0 / (1.0 + np.exp(-10.0))  # softmax(100 * [0.3, 0.2]); ln(100)=4.6 would give 0.61
    assert p[0, 0] == pytest.approx(expected, rel=1e-9)
    assert p.sum() == pytest.approx(1.0)


def test_class_probabilities_normalise_inputs_and_average_grouped_texts():
    img = np.array([[2.0, 0.0]])  # not unit length on purpose
    txt = np.array([[1.0, 0.0], [0.0, 3.0], [0.0, 1.0]])  # label 0: cos 1 and 0 -> mean 0.5; label 1: cos 0
    p = class_probabilities(img, txt, logit_scale=10.0, groups=[0, 0, 1])
    assert np.allclose(p, softmax(np.array([[5.0, 0.0]])))
    with pytest.raises(InputError, match="without any text"):
        class_probabilities(img, txt, groups=[0, 0, 2])
    with pytest.raises(InputError, match="share D"):
        class_probabilities(np.ones((1, 3)), txt)


def test_class_probabilities_keep_leading_dimensions():
    emb = np.random.default_rng(0).normal(size=(2, 5, 8))
    txt = np.random.default_rng(1).normal(size=(3, 8))
    p = class_probabilities(emb, txt, logit_scale=100.0)
    assert p.shape == (2, 5, 3)
    assert np.allclose(p.sum(-1), 1.0)


def test_local_scores_take_alpha_above_threshold_else_beta():
    snippets = np.array([[[0.9, 0.30, 0.2],
                          [0.1, 0.45, 0.5],
                          [0.0, 0.25, 0.3]]])
    # label 0: alpha 0.9 >= 0.5 -> 0.9; label 1: alpha 0.45 < 0.5 -> beta 0.25; label 2: alpha 0.5 -> 0.5
    assert np.allclose(local_scores(snippets, threshold=0.5), [[0.9, 0.25, 0.5]])
    assert np.allclose(local_scores(snippets, threshold=0.4), [[0.9, 0.45, 0.5]])
    with pytest.raises(InputError):
        local_scores(np.zeros((2, 3)))


def test_aggregate_formula_and_its_special_cases():
    g = np.array([[0.2, 0.8, 0.5]])
    loc = np.array([[0.6, 0.4, 0.5]])
    assert np.allclose(aggregate(g, loc, lam=1.0), [[0.6, 0.8, 0.5]])      # maximum
    assert np.allclose(aggregate(g, loc, lam=0.0), [[0.4, 0.6, 0.5]])      # mean
    assert np.allclose(aggregate(g, loc, lam=-1.0), [[0.2, 0.4, 0.5]])     # minimum
    assert np.allclose(aggregate(g, loc, lam=0.5), [[0.5, 0.7, 0.5]])      # (g + l + 0.5 |g - l|) / 2
    with pytest.raises(InputError):
        aggregate(g, loc[:, :2])


def test_global_local_scores_known_answer():
    g = np.array([[0.70, 0.20, 0.10], [0.10, 0.10, 0.80]])
    s = np.array([
        [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]],   # image 0: label 1 is clear in snippet 2
        [[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]],   # image 1: nothing above 0.5 except label 2
    ])
    out = global_local_scores(g, s, threshold=0.5, lam=1.0)
    # image 0 local = [0.6, 0.7, 0.1]; image 1 local = [0.1, 0.2, 0.7]; final = max(global, local)
    assert np.allclose(out, [[0.70, 0.70, 0.10], [0.10, 0.20, 0.80]])
    with pytest.raises(InputError):
        global_local_scores(g, s[:1])


def test_conse_embedding_is_weighted_mean_of_top_classes():
    probs = np.array([[0.6, 0.3, 0.1, 0.0]])
    emb = np.eye(4)
    out = conse_embeddings(probs, emb, top=2)
    assert np.allclose(out, [[2 / np.sqrt(5), 1 / np.sqrt(5), 0, 0]])
    assert np.allclose(np.linalg.norm(conse_embeddings(probs, emb, top=10), axis=1), 1.0)


# ----------------------------------------------------------------------------- crops


def test_grid_boxes_tile_the_image_without_gaps():
    boxes = grid_boxes(100, 70, 3)
    area = np.zeros((70, 100), dtype=int)
    for left, top, right, bottom in boxes:
        area[top:bottom, left:right] += 1
    assert len(boxes) == 9 and (area == 1).all()
    assert grid_boxes(100, 100, (1, 2)) == [(0, 0, 50, 100), (50, 0, 100, 100)]


def test_grid_boxes_overlap_and_tiny_images():
    assert grid_boxes(90, 90, 3, overlap=0.5)[4] == (15, 15, 75, 75)
    tiny = grid_boxes(2, 2, 3)
    assert all(r > left and b > t for left, t, r, b in tiny)
    with pytest.raises(InputError):
        grid_boxes(10, 10, 0)
    with pytest.raises(InputError):
        grid_boxes(10, 10, 2, overlap=1.5)


def test_make_crops_flattens_all_images_for_one_pass():
    imgs = [Image.new("RGB", (60, 30)), Image.new("RGB", (9, 9))]
    batch = make_crops(imgs, grids=(2, 3))
    assert batch.per_image == 13 and len(batch.crops) == 26
    assert batch.image_index.tolist() == [0] * 13 + [1] * 13
    assert batch.grid.tolist()[:5] == [2, 2, 2, 2, 3]
    assert batch.crops[0].size == (30, 15)
    assert batch.reshape(np.arange(26)).shape == (2, 13)


# ----------------------------------------------------------------------------- reading images


def _png_with_header_size(path: Path, width: int, height: int) -> None:
    """A tiny PNG file whose header claims a huge size (no big allocation needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.jpg"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(good, quality=90)
    files = {"good": good}
    files["empty"] = tmp_path / "empty.jpg"
    files["empty"].write_bytes(b"")
    files["text"] = tmp_path / "notes.png"
    files["text"].write_text("this is not an image\n")
    files["garbage"] = tmp_path / "garbage.jpg"
    files["garbage"].write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    big = tmp_path / "big_source.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(big)
    files["truncated"] = tmp_path / "truncated.jpg"
    files["truncated"].write_bytes(big.read_bytes()[: big.stat().st_size // 2])
    files["bomb"] = tmp_path / "bomb.png"
    _png_with_header_size(files["bomb"], 20000, 20000)
    files["missing"] = tmp_path / "missing.jpg"
    files["folder"] = tmp_path / "folder.jpg"
    files["folder"].mkdir()
    return files


@pytest.mark.parametrize("kind, reason", [
    ("empty", "empty file"),
    ("text", "not an image"),
    ("garbage", "not an image"),
    ("truncated", "truncated"),
    ("bomb", "too large"),
    ("missing", "does not exist"),
    ("folder", "not a regular file"),
])
def test_load_image_rejects_bad_files_with_a_reason(bad_files, kind, reason):
    with pytest.raises(InputError, match=reason):
        load_image(bad_files[kind])


def test_load_images_skips_bad_files_and_keeps_the_rest(bad_files):
    order = ["empty", "good", "text", "truncated", "bomb", "missing", "good"]
    skipped = []
    images, ok = load_images([bad_files[k] for k in order], skipped=skipped)
    assert ok == [str(bad_files["good"])] * 2
    assert all(im.mode == "RGB" and im.size == (64, 48) for im in images)
    assert [s.path for s in skipped] == [str(bad_files[k]) for k in order if k != "good"]
    assert all(s.reason for s in skipped) and str(bad_files["bomb"]) in str(skipped[3])


def test_large_images_are_downscaled_or_refused(tmp_path):
    jpg = tmp_path / "large.jpg"
    Image.new("RGB", (1600, 1200), (0, 90, 0)).save(jpg)
    img = load_image(jpg, max_side=300)        # JPEG: decoded at reduced scale, then shrunk
    assert max(img.size) <= 300 and img.size[0] > img.size[1]
    png = tmp_path / "large.png"
    Image.new("RGB", (800, 800)).save(png)
    with pytest.raises(InputError, match="above the limit"):
        load_image(png, max_pixels=100_000)    # other formats: refused before decoding
    assert max(load_image(png, max_side=256).size) == 256


def test_colour_modes_become_sensible_rgb(tmp_path):
    gray = tmp_path / "gray.png"
    Image.new("L", (8, 8), 128).save(gray)
    assert load_image(gray).getpixel((0, 0)) == (128, 128, 128)

    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(cmyk)
    r, g, b = load_image(cmyk).getpixel((4, 4))
    assert r > 200 and g < 60 and b < 60

    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(rgba)           # fully transparent black
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)   # composited onto white

    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(deep)  # 16-bit mid grey
    assert Image.open(deep).mode.startswith("I")
    assert load_image(deep).getpixel((0, 0))[0] in (127, 128)     # not clipped to white

    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([255, 0, 0] * 256)
    pal.info["transparency"] = 0
    assert to_rgb(pal).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(Image.new("1", (4, 4), 1)).getpixel((0, 0)) == (255, 255, 255)


def test_list_image_files_by_extension(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ["b.JPG", "a.png", "sub/c.webp", "notes.txt", ".hidden.jpg"]:
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_image_files(tmp_path)] == ["a.png", "b.JPG", "c.webp"]
    assert [p.name for p in list_image_files(tmp_path, recursive=False)] == ["a.png", "b.JPG"]
    with pytest.raises(InputError):
        list_image_files(tmp_path / "nope")


# ----------------------------------------------------------------------------- tagger over a fake backend

def _red_with_blue_corner() -> Image.Image:
    img = Image.new("RGB", (90, 90), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 30, 30))  # exactly the top-left cell of a 3x3 grid
    return img


def test_global_local_finds_the_small_object_global_misses():
    vocab = ["red", "green", "blue"]
    img = _red_with_blue_corner()
    g_only = ImageTagger(vocab, ColourBackend(), mode="global", templates=["{label}"]).predict_proba([img])
    cdul = ImageTagger(vocab, ColourBackend(), grids=(3,), templates=["{label}"]).predict_proba([img])
    assert g_only[0, 2] < 0.01                     # blue is 1/9 of the image: invisible globally
    assert cdul[0, 2] > 0.99 and cdul[0, 0] > 0.99  # a snippet is pure blue; red stays
    assert isinstance(ImageTagger(vocab, ColourBackend()), Scorer)


def test_crops_of_a_batch_go_through_the_backend_together_and_batching_does_not_change_scores():
    vocab = ["red", "green", "blue"]
    imgs = [_red_with_blue_corner(), Image.new("RGB", (40, 20), (0, 200, 0)), Image.new("L", (30, 30), 90)]
    backend = ColourBackend()
    together = ImageTagger(vocab, backend, grids=(2, 3), batch_size=8).predict_proba(imgs)
    assert backend.image_calls == [3, 3 * 13]       # one pass for whole images, one for all 39 crops
    one_by_one = ImageTagger(vocab, ColourBackend(), grids=(2, 3), batch_size=1).predict_proba(imgs)
    assert together.shape == (3, 3)
    assert np.allclose(together, one_by_one, atol=1e-6)


def test_feature_snippets_need_a_backend_with_regions():
    tagger = ImageTagger(["red", "blue"], ColourBackend(), snippets="features")
    with pytest.raises(InputError, match="encode_regions"):
        tagger.predict_proba([Image.new("RGB", (8, 8))])
    assert ImageTagger(["red", "blue"], ColourBackend()).snippets_ == "crops"


def test_feature_snippets_use_encode_regions():
    class RegionBackend(ColourBackend):
        def encode_regions(self, images, grids, *, overlap=0.0):
            batch = make_crops(images, grids, overlap=overlap)
            return self.encode_images(images), batch.reshape(self.encode_images(batch.crops))

    img = _red_with_blue_corner()
    scores = ImageTagger(["red", "green", "blue"], RegionBackend(), grids=(3,), templates=["{label}"],
                         ).predict_proba([img])
    assert scores[0, 2] > 0.99


def test_tagger_rejects_bad_arguments_and_inputs():
    with pytest.raises(InputError, match="mode"):
        ImageTagger(["a"], ColourBackend(), mode="local")
    with pytest.raises(InputError, match="snippets"):
        ImageTagger(["a"], ColourBackend(), snippets="pixels")
    tagger = ImageTagger(["red", "blue"], ColourBackend())
    with pytest.raises(InputError, match="one path"):
        tagger.predict_proba("image.jpg")
    with pytest.raises(InputError, match="expected a PIL image"):
        tagger.predict_proba([np.zeros((4, 4, 3))])
    with pytest.raises(InputError, match="does not exist"):
        tagger.predict_proba(["/no/such/image.jpg"])


def test_score_files_reports_skipped_files(bad_files):
    tagger = ImageTagger(["red", "green", "blue"], ColourBackend(), batch_size=2)
    paths = [bad_files[k] for k in ["good", "garbage", "bomb", "good", "empty"]]
    res = tagger.score_files(paths)
    assert res.scores.shape == (2, 3) and res.paths == [str(bad_files["good"])] * 2
    assert [s.path for s in res.skipped] == [str(bad_files[k]) for k in ["garbage", "bomb", "empty"]]
    assert res.scores[0].argmax() == 0  # the good image is red


# ----------------------------------------------------------------------------- label texts and descriptions


def test_label_texts_group_templates_and_descriptions():
    vocab = LabelVocab(["cat", "hot dog"])
    texts, groups = label_texts(vocab, ["a photo of a {label}.", "{label}"],
                                descriptions={"hot dog": ["sausage in a bun", "mustard"]})
    assert texts == ["a photo of a cat.", "cat", "a photo of a hot dog: sausage in a bun.",
                     "a photo of a hot dog: mustard.", "hot dog: sausage in a bun", "hot dog: mustard"]
    assert groups.tolist() == [0, 0, 1, 1, 1, 1]


def test_describe_labels_parses_and_caches_per_lm():
    lm = ScriptedLM([{"descriptions": "1. long neck\n- brown patches\ngiraffe\nlong neck"}])
    assert describe_labels(["giraffe"], lm, n=4) == {"giraffe": ["long neck", "brown patches"]}
    # the cache answers the same (label, LM, prompt, n) without calling the LM again
    assert describe_labels(["giraffe"], ScriptedLM([]), n=4) == {"giraffe": ["long neck", "brown patches"]}

    class OtherLM(ScriptedLM):
        pass

    other = OtherLM([{"descriptions": "tall"}])
    other.model = "other-model"
    assert describe_labels(["giraffe"], other, n=4) == {"giraffe": ["tall"]}


def test_tagger_averages_scores_over_llm_descriptions():
    lm = ScriptedLM([{"descriptions": "red paint\nred light"}, {"descriptions": "blue sky"}])
    tagger = ImageTagger(["red", "blue"], ColourBackend(), mode="global", templates=["{label}"],
                         descriptions="lm", lm=lm)
    scores = tagger.predict_proba([Image.new("RGB", (8, 8), (0, 0, 255))])
    _texts, groups = tagger.text_embeddings_
    assert groups.tolist() == [0, 0, 1]
    assert scores[0, 1] > 0.99
    assert tagger.config()["descriptions"]["prompt"] == "image_describe@1"


# ----------------------------------------------------------------------------- backends


def test_import_stays_light():
    code = ("import sys, zsl.image.tagger, zsl.image.backends\n"
            "print(','.join(m for m in ('torch', 'open_clip', 'timm', 'PIL', 'dspy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_get_image_backend_names():
    assert get_image_backend("efficientnet-lite0").backbone == "efficientnet-lite0"
    assert get_image_backend("clip:ViT-B-32@/w.pt").pretrained == "/w.pt"
    with pytest.raises(ModelNotFoundError, match="efficientnet-lite2"):
        get_image_backend("resnet-50")
    with pytest.raises(InputError, match="encode_texts"):
        get_image_backend(object())


TINY_CLIP = {"model_cfg": {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}, "preprocess_cfg": {}}


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory) -> Path:
    pytest.importorskip("open_clip")
    folder = tmp_path_factory.mktemp("tiny_clip")
    (folder / "open_clip_config.json").write_text(json.dumps(TINY_CLIP))
    return folder


def test_tiny_random_open_clip_shapes_and_batching(tiny_clip_dir):
    from zsl.image.backends import OpenClipBackend

    backend = OpenClipBackend(str(tiny_clip_dir))
    with pytest.warns(UserWarning, match="random weights"):
        emb = backend.encode_images([Image.new("RGB", (50, 40), (i * 40, 0, 0)) for i in range(5)])
    assert emb.shape == (5, 16) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert backend.encode_texts(["a photo of a cat.", "dog"]).shape == (2, 16)
    assert backend.input_size == 32 and backend.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)

    imgs = [_red_with_blue_corner(), Image.new("RGB", (64, 32), (0, 120, 0)), Image.new("RGB", (20, 30))]
    tagger = ImageTagger(["cat", "dog", "car"], backend, grids=(2, 3), batch_size=3)
    scores = tagger.predict_proba(imgs)
    assert tagger.snippets_ == "crops"
    assert scores.shape == (3, 3) and np.isfinite(scores).all()
    again = ImageTagger(["cat", "dog", "car"], backend, grids=(2, 3), batch_size=1).predict_proba(imgs)
    assert np.allclose(scores, again, atol=1e-4)


def test_open_clip_checkpoint_in_folder_is_loaded(tiny_clip_dir, tmp_path):
    import torch

    from zsl.image.backends import OpenClipBackend

    first = OpenClipBackend(str(tiny_clip_dir))
    with pytest.warns(UserWarning):
        ref = first.encode_texts(["a cat"])
    folder = tmp_path / "with_weights"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps(TINY_CLIP))
    torch.save(first.clip.state_dict(), folder / "open_clip_pytorch_model.bin")
    loaded = OpenClipBackend(str(folder))
    assert np.allclose(loaded.encode_texts(["a cat"]), ref, atol=1e-5)
    assert loaded.model_id.startswith("open_clip:with_weights:open_clip_pytorch_model.bin")


def test_missing_clip_weights_say_how_to_point_at_them():
    pytest.importorskip("open_clip")
    from zsl.image.backends import OpenClipBackend

    with pytest.raises(ModelNotFoundError, match="No CLIP checkpoint at .*pretrained="):
        OpenClipBackend("ViT-B-32", pretrained="/no/such/weights.pt").encode_texts(["x"])
    with pytest.raises(ModelNotFoundError, match="allow_download=True"):
        OpenClipBackend("ViT-B-32", pretrained="openai").encode_texts(["x"])
    with pytest.raises(ModelNotFoundError, match="no architecture 'ViT-Nope'"):
        OpenClipBackend("ViT-Nope").encode_texts(["x"])


def test_an_image_item_carries_its_path_in_its_own_field_and_its_row_writes_it_as_image(tmp_path):
    """Smell 8 of the December 7 review: an image path travelled as ``Item.text``."""
    from zsl.data.files import Item
    from zsl.data.images import image_records
    from zsl.rows import build_rows

    (tmp_path / "images").mkdir()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "images" / "x.png")
    (item,) = [r for r in image_records(tmp_path) if isinstance(r, Item)]
    assert item.id == "images/x.png" and item.path == str(tmp_path / "images" / "x.png")
    assert item.text is None and item.value == item.path  # the scorer reads .value: the path
    assert Item("t1", "some text").value == "some text" and Item("t1", "some text").path is None
    (row,) = build_rows([item], np.array([[0.1, 0.7]]), LabelVocab(["cat", "dog"]), k=1, input_field="image")
    assert list(row)[:2] == ["id", "image"] and row["image"] == item.path and "text" not in row
