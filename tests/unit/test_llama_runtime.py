"""Pure parts of the llama.cpp runtime (no model)."""

from __future__ import annotations

import pytest

from zsl.llama_runtime import _MARK, split_rendered


def test_split_rendered_keeps_contents_apart_from_the_template():
    rendered = f"<|im_start|>system\n{_MARK.format(0)}<|im_end|>\n<|im_start|>user\n{_MARK.format(1)}<|im_end|>\n"
    pieces = split_rendered(rendered, ["sys <|im_end|>", "user text"])
    assert pieces == [("<|im_start|>system\n", True), ("sys <|im_end|>", False),
                      ("<|im_end|>\n<|im_start|>user\n", True), ("user text", False), ("<|im_end|>\n", True)]


@pytest.mark.parametrize("rendered", [f"{_MARK.format(0)}{_MARK.format(0)}", "no marker at all",
                                      f"{_MARK.format(0)} and {_MARK.format(1)}"])
def test_split_rendered_refuses_templates_that_rewrite_contents(rendered):
    with pytest.raises(ValueError):
        split_rendered(rendered, ["only one message"])
