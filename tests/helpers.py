"""Helpers shared by several test modules (test modules never import from each other)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from tests.fakes import ScriptedLM

# A colour "model" for image tests: an image embeds as its mean colour.
COLOURS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}


class ColourBackend:
    """Embeds an image as its mean colour; a label text embeds as the colour it names."""

    model_id = "fake:colour"
    logit_scale = 100.0
    threshold = 0.5

    def __init__(self):
        self.image_calls: list[int] = []

    def encode_images(self, images, *, size=None):
        self.image_calls.append(len(images))
        rows = [np.asarray(im.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(0) / 255 + 1e-3 for im in images]
        arr = np.array(rows).reshape(-1, 3)
        return arr / np.linalg.norm(arr, axis=1, keepdims=True)

    def encode_texts(self, texts):
        return np.array([next(v for k, v in COLOURS.items() if k in t) for t in texts])


# Items of a few topics for run tests: the text is the topic's words and a number.
TOPICS = ["sports", "weather, storms", "cooking", "politics", "music"]
WORDS = {"sports": "football match goal team", "weather, storms": "rain storm wind forecast",
         "cooking": "pasta recipe oven kitchen", "politics": "election vote parliament", "music": "guitar concert song"}


def write_items(path: Path, n: int, *, bad_every: int = 0) -> None:
    rng = random.Random(0)
    lines = []
    for i in range(n):
        if bad_every and i % bad_every == bad_every - 1:
            lines.append("{not json")
            continue
        topic = TOPICS[rng.randrange(len(TOPICS))]
        lines.append(json.dumps({"id": f"item-{i}", "text": f"{WORDS[topic]} {i}", "labels": [topic]}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# The budget tests' topics and an LLM that counts its calls.
BUDGET_TOPICS = ["sports", "weather", "politics", "cooking"]
BUDGET_WORDS = {"sports": "football match goal", "weather": "rain storm forecast",
                "politics": "election vote parliament", "cooking": "recipe oven flour"}


class CountingLM(ScriptedLM):
    """Infer answers the topic of the text; counts calls; can stop (Ctrl-C) or fail on given items."""

    def __init__(self, rows, stop_after: int | None = None, fail: str | None = None):
        answers = {r["text"]: {"phrases": r["labels"][0]} for r in rows}
        super().__init__(answers, judge=lambda label: 0.0)
        self.calls = 0
        self.stop_after, self.fail = stop_after, fail

    def forward(self, prompt=None, messages=None, **kwargs):
        text = json.dumps(messages or prompt)
        if self.fail and self.fail in text:
            raise RuntimeError("the model broke on this one")
        self.calls += 1
        if self.stop_after is not None and self.calls > self.stop_after:
            raise KeyboardInterrupt
        return super().forward(prompt=prompt, messages=messages, **kwargs)
