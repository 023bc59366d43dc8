"""Registry of the prompt templates in ``prompts/`` (shipped as ``zsl.prompts``).

A prompt is a JSON file with a ``name``, a ``version`` and its text fields. Templates use
``{label_kind}``-style placeholders filled per task. Results record ``name@version``.

Example:
    >>> from zsl.prompting import load_prompt, list_prompts
    >>> "infer" in list_prompts()
    True
    >>> load_prompt("infer").id
    'infer@1'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from zsl.errors import InputError

__all__ = ["DEFAULT_RANK_PROMPT", "RANK_DESCRIPTIONS", "LabelKind", "Prompt", "list_prompts", "load_prompt"]

# The Rank step's yes/no prompt, and which candidates it shows with their descriptions
# ("auto": one-word labels only; see programs.irr.Rank). rank_yesno_short is rank_yesno without
# the "Answer:" cue after each candidate (3 of ~12 tokens per bare ESCO candidate); on the 136
# ESCO validation items its RP@10 was 77.6 / 71.6 (TECH / HOUSE) against 75.8 / 71.6 at the
# default weights (BENCHMARKS.md, issue #13).
DEFAULT_RANK_PROMPT = "rank_yesno_short"
RANK_DESCRIPTIONS = ("auto", "all", "none")


@dataclass(frozen=True)
class LabelKind:
    """How prompts name the labels of a task: ``skills``/``skill``, ``topics``/``topic`` ...

    Example:
        >>> LabelKind.parse("skills").singular
        'skill'
    """

    plural: str = "labels"
    singular: str = "label"

    @classmethod
    def parse(cls, text: str | None) -> LabelKind:
        if not text:
            return cls()
        text = text.strip()
        if "/" in text:
            plural, singular = (t.strip() for t in text.split("/", 1))
            return cls(plural, singular)
        singular = text[:-3] + "y" if text.endswith("ies") else text.removesuffix("s")
        return cls(text, singular)

    def fields(self) -> dict[str, str]:
        return {
            "label_kind": self.plural,
            "label_kind_cap": self.plural[:1].upper() + self.plural[1:],
            "label_kind_singular": self.singular,
            "label_kind_singular_cap": self.singular[:1].upper() + self.singular[1:],
        }


@dataclass(frozen=True)
class Prompt:
    """One versioned prompt file."""

    name: str
    version: str
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    def text(self, key: str, **values: Any) -> str:
        """Field ``key`` with ``{placeholders}`` filled from ``values``."""
        if key not in self.data:
            raise InputError(f"Prompt {self.id} has no field '{key}'; it has {sorted(self.data)}")
        raw = self.data[key]
        try:
            return raw.format(**values)
        except KeyError as exc:
            raise InputError(f"Prompt {self.id} field '{key}' needs a value for {exc}.") from None

    def fields(self, key: str, **values: Any) -> dict[str, str]:
        """A dict-valued field (``inputs``/``outputs``) with placeholders filled."""
        return {k: v.format(**values) for k, v in self.data.get(key, {}).items()}


@cache
def list_prompts() -> dict[str, str]:
    """Names of the shipped prompts mapped to their versions."""
    out = {}
    for entry in resources.files("zsl.prompts").iterdir():
        if entry.name.endswith(".json"):
            data = json.loads(entry.read_text(encoding="utf-8"))
            out[data["name"]] = str(data["version"])
    return out


@cache
def load_prompt(name: str) -> Prompt:
    """Load a shipped prompt by name.

    Raises:
        InputError: unknown name; lists the available prompts.
    """
    path = resources.files("zsl.prompts").joinpath(f"{name}.json")
    if not path.is_file():
        raise InputError(f"No prompt named '{name}'. Available: {', '.join(sorted(list_prompts()))}")
    data = json.loads(path.read_text(encoding="utf-8"))
    return Prompt(data["name"], str(data["version"]), data)
