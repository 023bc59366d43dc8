"""Photos with a VLM, the pieces around the core: fusion weights fitted on labelled photos (ImageTagger.fit,
`zsl fit PHOTOS.jsonl`, `zsl label --program`), the start-up check of the VLM server, `--dry-run` with
prices, and the API key of `openai/NAME --api-base`. All against the loopback server of tests/fake_openai.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.fake_openai import PALETTE, FakeOpenAI
from zsl.errors import InputError, RemoteModelError

LABELS = ["cat", "dog", "car", "tree", "boat"]
# What each photo is (gold), and what the VLM says it shows: right on red and yellow, wrong on blue and green.
GOLD = {"red": ["car"], "yellow": ["cat"], "blue": ["boat"], "green": ["tree"], "purple": ["dog"]}
SAYS = {"red": ["car"], "yellow": ["cat"], "blue": ["car"], "green": ["dog"], "purple": ["dog"]}


@pytest.fixture(autouse=True)
def _fast_and_uncached(monkeypatch, tmp_path):
    monkeypatch.setenv("ZSL_LM_CACHE", "0")
    monkeypatch.setenv("ZSL_RETRY_BASE_DELAY", "0.01")
    monkeypatch.setenv("ZSL_HOME", str(tmp_path / "home"))  # a fresh answer cache per test


class ColourBackend:
    """An image backend that sees each photo's gold label (by its colour): the image scores are right."""

    model_id = "fake:colour"
    logit_scale = 1.0
    threshold = 0.5

    def _onehot(self, j: int) -> np.ndarray:
        v = np.zeros(len(LABELS), dtype=np.float32)
        v[j] = 1.0
        return v

    def encode_images(self, images, *, size=None):
        out = []
        for img in images:
            mean = np.asarray(img.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
            colour = min(GOLD, key=lambda c: float(((mean - np.array(PALETTE[c])) ** 2).sum()))
            out.append(self._onehot(LABELS.index(GOLD[colour][0])))
        return np.stack(out)

    def encode_texts(self, texts):
        return np.stack([self._onehot(next(j for j, lab in enumerate(LABELS) if f" {lab}" in t)) for t in texts])


def _photos(folder: Path) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for colour in GOLD:
        Image.new("RGB", (48, 40), PALETTE[colour]).save(folder / f"{colour}.png")
        out.append(folder / f"{colour}.png")
    return out


def _tagger(server, **kw):
    from zsl.image.tagger import ImageTagger
    from zsl.models.lm import get_lm

    lm = get_lm("hosted_vllm/fake-vlm", api_base=server.api_base)
    return ImageTagger(LABELS, ColourBackend(), mode="global", lm=lm, encoder="hashing", **kw)


def _map(tagger, photos) -> float:
    from zsl.evaluation.metrics import mean_average_precision

    y = np.zeros((len(photos), len(LABELS)), dtype=np.uint8)
    for i, p in enumerate(photos):
        y[i, [LABELS.index(lab) for lab in GOLD[p.stem]]] = 1
    return mean_average_precision(y, tagger.score([str(p) for p in photos]), average="item")


def test_fit_chooses_weights_that_rank_the_gold_labels_better_than_the_defaults(tmp_path):
    from zsl.image.vlm import PHOTO_DEFAULTS

    photos = _photos(tmp_path / "photos")
    with FakeOpenAI(photos=SAYS) as server:
        zero = _tagger(server)
        before = _map(zero, photos)
        fitted = _tagger(server).fit([str(p) for p in photos], [GOLD[p.stem] for p in photos])
        assert sorted(s["step"] for s in server.seen) == ["infer"] * 5 + ["rank"] * 5  # fit reused the answers
        after = _map(fitted, photos)
        assert fitted.fusion != {**PHOTO_DEFAULTS, "rank_top": len(LABELS)} and fitted.fusion_.score > fitted.fusion_.default_score
        assert after > before + 0.1, (before, after)
        # the weights move the image scores' share up and the VLM's down: the VLM is wrong on two photos
        assert fitted.fusion["text_weight"] > PHOTO_DEFAULTS["text_weight"]
        assert fitted.fusion["rank_weight"] < PHOTO_DEFAULTS["rank_weight"]
        # saved and loaded, the weights score alike; the answers were paid once (the cache)
        path = fitted.save(tmp_path / "photos.program.json")
        loaded = _tagger(server).load(path)
        assert loaded.fusion == fitted.fusion
        np.testing.assert_allclose(loaded.score([str(p) for p in photos]), fitted.score([str(p) for p in photos]))


def test_fitted_weights_can_let_a_describer_outweigh_the_image_scores():
    from zsl.fusion import DEFAULTS, GRID, fit_fusion, fused_scores
    from zsl.image.vlm import PHOTO_DEFAULTS, fit_photo_fusion, fusion_item

    # each photo: the backbone puts a wrong label (column j+1) far above the gold one (j); the describer names
    # the gold label (similarity 1) and something close to the wrong one (0.7)
    items = []
    for j in range(4):
        image, phrases = np.full(5, 0.05), np.zeros(5)
        image[j + 1], image[j], phrases[j], phrases[j + 1] = 1.0, 0.1, 1.0, 0.7
        items.append(fusion_item(image, phrases, gold=[j]))

    def top1(weights):
        return [int(np.argmax(fused_scores(it, None, weights))) for it in items]

    assert top1(dict(DEFAULTS)) == [1, 2, 3, 4]  # the text default's equal shares follow the backbone
    assert top1(dict(PHOTO_DEFAULTS)) == [0, 1, 2, 3]  # the photo default's small image share, the describer
    text_fit = fit_fusion(items, None, k=1)  # the text grid's image share stops at 0.3: still wrong
    assert min(GRID["text_weight"]) == 0.3 and top1(text_fit.weights) == [1, 2, 3, 4]
    fit = fit_photo_fusion(items, 5, k=1)
    assert fit.weights["text_weight"] < 0.3 and top1(fit.weights) == [0, 1, 2, 3], fit.weights


def test_fit_refuses_what_it_cannot_use(tmp_path):
    from zsl.image.tagger import ImageTagger

    photos = _photos(tmp_path / "photos")
    with pytest.raises(InputError, match="vision-language lm"):
        ImageTagger(LABELS, ColourBackend(), mode="global").fit([str(photos[0])], [["car"]])
    with FakeOpenAI(photos=SAYS) as server:
        with pytest.raises(InputError, match="not in the vocabulary: 'zebra'"):
            _tagger(server).fit([str(photos[0])], [["zebra"]])
        with pytest.raises(InputError, match="same length"):
            _tagger(server).fit([str(photos[0])], [["car"], ["cat"]])
        (tmp_path / "notes.png").write_text("not a photo", encoding="utf-8")
        t = _tagger(server).fit([str(tmp_path / "notes.png")] + [str(p) for p in photos],
                                [["car"]] + [GOLD[p.stem] for p in photos])
    assert t.fusion_.n_examples == len(photos) and "notes.png" in t.fit_notes_[0]


def test_a_program_of_another_vocabulary_or_a_text_program_is_refused(tmp_path):
    from zsl.image.tagger import ImageTagger

    photos = _photos(tmp_path / "photos")
    with FakeOpenAI(photos=SAYS) as server:
        path = _tagger(server).fit([str(p) for p in photos], [GOLD[p.stem] for p in photos]).save(tmp_path / "p.json")
    with pytest.raises(InputError, match="another vocabulary"):
        ImageTagger(LABELS + ["bird"], ColourBackend()).load(path)
    text = tmp_path / "text.json"
    text.write_text(json.dumps({"zsl_tagger": 1, "program": {}}), encoding="utf-8")
    with pytest.raises(InputError, match="program for texts"):
        ImageTagger(LABELS, ColourBackend()).load(text)


def _cli(argv, monkeypatch) -> int:
    from zsl.cli import main
    from zsl.image import backends

    real = backends.get_image_backend
    monkeypatch.setattr(backends, "get_image_backend", lambda name=None, **kw: ColourBackend() if name is None
                        else real(name, **kw))
    return main(argv)


def test_zsl_fit_on_labelled_photos_writes_a_program_zsl_label_uses(tmp_path, monkeypatch, capsys):
    photos = _photos(tmp_path / "photos")
    listing = tmp_path / "train.jsonl"
    listing.write_text("".join(json.dumps({"image": f"photos/{p.name}", "labels": GOLD[p.stem]}) + "\n"
                               for p in photos), encoding="utf-8")
    vocab = tmp_path / "labels.txt"
    vocab.write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    program = tmp_path / "photos.program.json"
    with FakeOpenAI(photos=SAYS) as server:
        common = ["--labels", str(vocab), "--lm", "hosted_vllm/fake-vlm", "--api-base", server.api_base,
                  "--encoder", "hashing"]
        assert _cli(["fit", str(listing), "--out", str(program), *common], monkeypatch) == 0
        out = capsys.readouterr().out
        assert "fitted on 5 photos" in out and "--program" in out
        assert _cli(["label", str(tmp_path / "photos"), "--out", str(tmp_path / "run"), "-k", "1",
                     "--program", str(program), *common], monkeypatch) == 0
        assert _cli(["label", str(tmp_path / "photos"), "--out", str(tmp_path / "zero"), "-k", "1", *common],
                    monkeypatch) == 0
    saved = json.loads(program.read_text())["weights"]
    manifest = (tmp_path / "run" / "manifest.json").read_text()
    assert json.dumps(saved, indent=None)[1:-1].replace(", ", ",") in manifest.replace(", ", ",").replace("\n", "") \
        or f'"text_weight": {saved["text_weight"]}' in manifest

    def top(run):
        rows = [json.loads(x) for x in (tmp_path / run / "labels.jsonl").read_text().splitlines()]
        return {r["id"]: r["labels"][0] for r in rows}

    assert top("run") == {f"{c}.png": g[0] for c, g in GOLD.items()}   # every photo right with the fitted weights
    assert top("zero")["blue.png"] == "car"                              # the defaults follow the VLM's mistake


def test_zsl_fit_on_photos_needs_a_vlm(tmp_path, monkeypatch, capsys):
    photos = _photos(tmp_path / "photos")
    listing = tmp_path / "train.jsonl"
    listing.write_text(json.dumps({"image": str(photos[0]), "labels": ["car"]}) + "\n", encoding="utf-8")
    vocab = tmp_path / "labels.txt"
    vocab.write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    assert _cli(["fit", str(listing), "--labels", str(vocab), "--out", str(tmp_path / "p.json")], monkeypatch) != 0
    assert "needs one: --lm hosted_vllm/NAME --api-base URL" in capsys.readouterr().err


# --------------------------------------------------------------------------- the start-up check


def _label(folder, server, *, model="hosted_vllm/fake-vlm", **settings):
    from zsl.models.lm import get_lm
    from zsl.runs.label import label_run

    lm = get_lm(model, api_base=server.api_base)
    return label_run(folder, LABELS, out=folder.parent / "run", lm=lm, encoder="hashing",
                     image_backend=ColourBackend(), k=1, image_kwargs={"mode": "global"}, **settings)


def test_the_start_up_check_fails_a_run_at_once_on_a_model_that_refuses_images(tmp_path):
    photos = _photos(tmp_path / "photos")
    with FakeOpenAI(photos=SAYS, refuse_photo=lambda colour: True) as server, \
            pytest.raises(RemoteModelError, match="refused a photo: it is not a vision model") as err:
        _label(photos[0].parent, server)
    assert "HTTP 400" in str(err.value) and server.checks == 1 and server.requests == 0
    assert not (tmp_path / "run" / "labels.jsonl").exists()


def test_the_start_up_check_names_a_wrong_model_and_an_unreachable_server(tmp_path):
    photos = _photos(tmp_path / "photos")
    with FakeOpenAI(photos=SAYS, models={"qwen2.5-vl"}) as server:
        with pytest.raises(RemoteModelError, match="HTTP 404.*serves no model of that name"):
            _label(photos[0].parent, server)
        assert server.requests == 0
    # the server is gone: nothing listens on its port any more
    with pytest.raises(RemoteModelError, match="server is running and reachable"):
        _label(photos[0].parent, server, retries=0)


def test_a_server_that_answers_the_check_with_429_is_labelled_anyway(tmp_path):
    photos = _photos(tmp_path / "photos")
    with FakeOpenAI(photos=SAYS, fail_first=None, fail_status=429) as server:
        summary = _label(photos[0].parent, server, retries=1)
    assert server.checks == 2 and summary.skipped == len(photos)  # retryable rows: a rerun labels them


# --------------------------------------------------------------------------- the API key


def test_openai_name_with_api_base_and_no_key_says_the_fix(monkeypatch, tmp_path):
    from zsl.models.lm import get_lm

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(InputError, match="OPENAI_API_KEY=none.*hosted_vllm/qwen"):
        get_lm("openai/qwen", api_base="http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "none")  # any value: a local server checks none
    photos = _photos(tmp_path / "photos")
    with FakeOpenAI(photos=SAYS) as server:
        assert _label(photos[0].parent, server, model="openai/fake-vlm").skipped == 0


# --------------------------------------------------------------------------- --dry-run


def test_dry_run_labels_a_sample_writes_nothing_and_prices_photos_where_litellm_knows_the_model(tmp_path, monkeypatch,
                                                                                               capsys):
    import litellm

    from zsl.models.lm import get_lm
    from zsl.runs.label import estimate_run

    monkeypatch.setenv("OPENAI_API_KEY", "none")
    photos = _photos(tmp_path / "photos")
    folder = photos[0].parent
    with FakeOpenAI(photos=SAYS) as server:
        lm = get_lm("openai/gpt-4o-mini", api_base=server.api_base)
        kw = {"lm": lm, "encoder": "hashing", "image_backend": ColourBackend(), "image_kwargs": {"mode": "global"}}
        est = estimate_run(folder, LABELS, sample=2, **kw)
        assert len(server.seen) == 4 and server.checks == 1     # 2 photos, Infer + Rank each, and the check
        again = estimate_run(folder, LABELS, sample=2, **kw)    # the sample is cached now: priced all the same
        assert len(server.seen) == 4 and again["cached_answers"] == 4
        # the fake server reports 100 prompt tokens (85 of them image tokens) and 5 completion tokens per call
        for e in (est, again):
            assert e["total"] == 5 and e["est_tokens"]["infer"]["prompt_tokens"] == 500
            assert e["est_tokens"]["rank"]["image_tokens"] == 425 and e["est_tokens"]["rank"]["images"] == 5
            p, c = litellm.cost_per_token(model="openai/gpt-4o-mini", prompt_tokens=1000, completion_tokens=50)
            assert e["est_cost_usd"] == pytest.approx(p + c)
        # the CLI: no run directory, and an unknown model says it has no price
        code = _cli(["label", str(folder), "--labels", str(_vocab(tmp_path)), "--lm", "hosted_vllm/fake-vlm",
                     "--api-base", server.api_base, "--encoder", "hashing", "--dry-run", "2"], monkeypatch)
    out = capsys.readouterr().out
    assert code == 0 and not (tmp_path / "photos.zsl").exists()
    assert "image tokens" in out and "whole input: 5 records" in out
    assert "not known: LiteLLM's price table has no price for hosted_vllm/fake-vlm" in out


def _vocab(tmp_path: Path) -> Path:
    vocab = tmp_path / "labels.txt"
    vocab.write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    return vocab


def test_image_prices_of_litellms_table_are_added_where_a_model_has_them():
    from zsl.runs.label import _image_price

    usage = {"infer": {"images": 10, "image_tokens": 1000, "prompt_tokens": 1200}}
    table = {"per-image": {"input_cost_per_image": 0.001}, "vendor/image-tokens": {
        "input_cost_per_token": 1e-6, "input_cost_per_image_token": 3e-6}}
    assert _image_price(table, "p/per-image", usage) == pytest.approx(0.01)
    assert _image_price(table, "vendor/image-tokens", usage) == pytest.approx(1000 * 2e-6)
    assert _image_price(table, "openai/unknown", usage) == 0.0
