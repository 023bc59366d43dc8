"""`--budget` on photos (issue #28, item 4): with a VLM the VLM labels the budget's share and a student the rest;
without one the refusal stands, with its reason.

The VLM is a real OpenAI-compatible server on loopback (benchmarks/caption_server.py) that answers each photo
with scripted phrases chosen from the photo's decoded pixels, so a test sees which photos were sent; the image
model is the colour backend of tests/helpers.py, the text encoder the hashing one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.caption_server import CaptionServer
from tests.helpers import ColourBackend
from zsl.errors import InputError
from zsl.runs.budget import TEACHER, budget_run

COLOUR_RGB = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}
SAID = {"red": ["a red apple", "red"], "green": ["green grass", "green"], "blue": ["blue sky", "blue"]}


@pytest.fixture(autouse=True)
def _uncached(monkeypatch):
    monkeypatch.setenv("ZSL_LM_CACHE", "0")
    monkeypatch.setenv("ZSL_RETRY_BASE_DELAY", "0.01")


def _photo(path: Path, colour: str, seed: int) -> None:
    """A photo of one dominant colour with its own block pattern (so the server tells every photo apart)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = np.array(COLOUR_RGB[colour], dtype=np.int16)
    blocks = np.clip(base + rng.integers(-25, 26, size=(6, 8, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(blocks).resize((160, 120), Image.Resampling.NEAREST).save(path)


@pytest.fixture
def photos(tmp_path):
    """18 photos, 6 of each colour, the vocabulary red/green/blue, and the colour of each photo."""
    folder = tmp_path / "photos"
    folder.mkdir()
    colour_of = {}
    for n in range(18):
        colour = list(COLOUR_RGB)[n % 3]
        path = folder / f"p{n:02d}.png"
        _photo(path, colour, n)
        colour_of[str(path)] = colour
    vocab = tmp_path / "labels.txt"
    vocab.write_text("red\ngreen\nblue\n", encoding="utf-8")
    return folder, vocab, colour_of


def _server(colour_of: dict[str, str]) -> CaptionServer:
    return CaptionServer({p: SAID[c] for p, c in colour_of.items()}, {p: p for p in colour_of})


def _settings(server: CaptionServer, **kw):
    from zsl.models.lm import get_lm
    from zsl.runs.labeller import LabelSettings

    return LabelSettings(lm=get_lm("hosted_vllm/vlm", api_base=server.api_base), encoder="hashing",
                         image_backend=ColourBackend(), rank=False, k=1, retries=1, **kw)


def _rows(run: Path, name: str = "labels.jsonl") -> list[dict]:
    return [json.loads(x) for x in (run / name).read_text(encoding="utf-8").splitlines() if x.strip()]


def test_the_vlm_labels_the_budgets_photos_and_a_student_the_rest(photos, tmp_path):
    folder, vocab, colour_of = photos
    with _server(colour_of) as server:
        s = budget_run(folder, vocab, budget=9, out=tmp_path / "run", settings=_settings(server), rounds=1,
                       self_train=0)
        asked = list(server.asked)
    rows = _rows(tmp_path / "run")
    assert s.llm_items == 9 and s.total == 18 and s.skipped == 0
    llm = [r for r in rows if r["source"] == "llm"]
    rest = [r for r in rows if r["source"] != "llm"]
    assert len(llm) == 9 and len(rest) == 9 and {r["source"] for r in rest} <= {"student", "retrieval"}
    # exactly the budget's photos went to the VLM, each once, and each row carries what the VLM said about it
    assert sorted(asked) == sorted(r["image"] for r in llm)
    for r in llm:
        assert r["phrases"] == SAID[colour_of[r["image"]]] and r["labels"] == [colour_of[r["image"]]]
    assert all("phrases" not in r and r["image"] in colour_of for r in rest)
    assert [r["id"] for r in rows] == sorted(Path(p).name for p in colour_of)  # input order, ids relative
    assert all(r["labels"] == [colour_of[r["image"]]] for r in rest)  # the colours are easy: all right


def test_a_rerun_pays_nothing_and_a_larger_budget_pays_only_the_extra_photos(photos, tmp_path):
    folder, vocab, colour_of = photos
    with _server(colour_of) as server:
        budget_run(folder, vocab, budget=6, out=tmp_path / "run", settings=_settings(server), rounds=1)
        first = len(server.asked)
        again = budget_run(folder, vocab, budget=6, out=tmp_path / "run", settings=_settings(server), rounds=1)
        assert again.already_complete and len(server.asked) == first == 6
        more = budget_run(folder, vocab, budget=10, out=tmp_path / "run", settings=_settings(server), rounds=1)
        assert more.llm_items == 10 and len(server.asked) == 10 and len(set(server.asked)) == 10
    assert len(_rows(tmp_path / "run", TEACHER)) == 10


def test_a_changed_photo_under_the_same_name_is_asked_again(photos, tmp_path):
    folder, vocab, colour_of = photos
    for p in sorted(colour_of)[6:]:  # keep 6 photos: a budget of all of them
        Path(p).unlink()
        del colour_of[p]
    changed = min(colour_of)
    old_colour = colour_of[changed]
    new_colour = "blue" if old_colour != "blue" else "red"
    with _server(colour_of) as server:
        budget_run(folder, vocab, budget="100%", out=tmp_path / "run", settings=_settings(server))
        assert len(server.asked) == 6
    _photo(Path(changed), new_colour, 1234)  # same name, other pixels
    colour_of[changed] = new_colour
    with _server(colour_of) as server:
        budget_run(folder, vocab, budget="100%", out=tmp_path / "run", settings=_settings(server), fresh=True)
        assert server.asked == [changed]  # only the changed photo; the 5 others' answers are reused
    row = next(r for r in _rows(tmp_path / "run") if r["image"] == changed)
    assert row["labels"] == [new_colour] and row["phrases"] == SAID[new_colour]


def test_an_unreadable_photo_is_reported_and_the_others_are_labelled(photos, tmp_path):
    folder, vocab, colour_of = photos
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "empty.jpg").write_bytes(b"")
    with _server(colour_of) as server:
        s = budget_run(folder, vocab, budget=4, out=tmp_path / "run", settings=_settings(server), rounds=1)
        assert len(server.asked) == 4 and not {"broken.png", "empty.jpg"} & {Path(a).name for a in server.asked}
    assert s.total == 20 and s.labelled == 18 and s.skipped == 2
    errors = _rows(tmp_path / "run", "errors.jsonl")
    assert sorted(e["id"] for e in errors) == ["broken.png", "empty.jpg"] and all(e["reason"] for e in errors)
    assert len(_rows(tmp_path / "run")) == 18


def test_without_a_vlm_the_refusal_stands_with_its_reason(photos, tmp_path, capsys):
    from zsl.cli import main
    from zsl.runs.labeller import LabelSettings

    folder, vocab, _ = photos
    with pytest.raises(InputError, match=r"an image run has no LLM step to budget.*--lm provider/model"):
        budget_run(folder, vocab, budget=4, out=tmp_path / "run")
    assert main(["label", str(folder), "--labels", str(vocab), "--budget", "4", "--out", str(tmp_path / "r")]) != 0
    assert "cost about what a global-only cheap pass would" in capsys.readouterr().err
    # an LM that reads no photos (a local text model's name) is no VLM either
    with pytest.raises(InputError, match="reads no photos here"):
        budget_run(folder, vocab, budget=4, out=tmp_path / "run2",
                   settings=LabelSettings(lm="qwen2.5-coder-1.5b", image_backend=ColourBackend(), encoder="hashing"))
    assert not (tmp_path / "run").exists() and not (tmp_path / "run2").exists()

