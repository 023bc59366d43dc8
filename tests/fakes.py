"""Test doubles: a scripted DSPy LM and a yes/no scorer (no model, no network)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import dspy
from dspy.utils.dummies import DummyLM


class ScriptedLM(DummyLM):
    """DummyLM answering field dicts in order, plus a scripted yes/no scorer.

    Args:
        answers: output-field dicts, one per call, in call order.
        judge: ``judge(label) -> log-odds`` used by ``yes_no_logodds``; None: no yes/no support.
    """

    def __init__(self, answers: Sequence[dict[str, str]] | dict[str, dict[str, str]], judge: Callable[[str], float] | None = None):
        super().__init__(answers)
        self._judge = judge
        self.yesno_calls: list[tuple[str, list[str], str]] = []
        self.yesno_leads: list[str | None] = []

    def __getattr__(self, name):
        if name == "yes_no_logodds" and self.__dict__.get("_judge") is not None:
            return self._yes_no
        raise AttributeError(name)

    def _yes_no(self, prefix: str, continuations: Sequence[str], suffix: str, system: str = "",
                lead: str | None = None) -> list[float]:
        self.yesno_calls.append((prefix, list(continuations), suffix))
        self.yesno_leads.append(lead)
        return [self._judge(c) for c in continuations]


def configure(lm: dspy.BaseLM) -> None:
    dspy.configure(lm=lm)
