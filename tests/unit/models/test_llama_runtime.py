"""Pure parts of the llama.cpp runtime (no model)."""

from __future__ import annotations

import pytest

from zsl.models.llama import _MARK, split_rendered


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


class _FakeLlama:
    """Just the KV-cache bookkeeping of llama_cpp.Llama: which tokens sit in the context."""

    def __init__(self):
        import numpy as np

        self.input_ids = np.zeros(64, dtype=np.intc)
        self.n_tokens = 0
        self.evaluated: list[list[int]] = []

    @property
    def _input_ids(self):
        return self.input_ids[: self.n_tokens]

    def reset(self):
        self.n_tokens = 0

    def eval(self, tokens):
        self.evaluated.append(list(tokens))
        self.input_ids[self.n_tokens:self.n_tokens + len(tokens)] = tokens
        self.n_tokens += len(tokens)


def _runtime_with(llama):
    from zsl.models.llama import LlamaRuntime

    rt = LlamaRuntime.__new__(LlamaRuntime)  # no model: only the cache bookkeeping is under test
    rt.llama = llama
    return rt


def test_the_fixed_prompt_part_is_evaluated_alone_and_reused_only_up_to_its_end():
    llama = _FakeLlama()
    rt = _runtime_with(llama)
    fixed = [1, 2, 3, 4]
    assert rt._load_fixed(fixed) == 4 and llama.evaluated == [fixed]  # cold: the fixed part on its own
    llama.eval([7, 8, 9])  # an item's own tokens follow it
    # the next item shares more than the fixed part (7, 8): reuse stops at the fixed part anyway, so
    # its tokens are evaluated in the same batches as when it comes first
    assert rt._load_fixed(fixed) == 0 and llama.n_tokens == 4 and llama._input_ids.tolist() == fixed
    assert rt._load_fixed([1, 2, 5]) == 3 and llama.evaluated[-1] == [1, 2, 5]  # another program: from empty
    assert rt._load_fixed([]) == 0 and llama.n_tokens == 0


def test_a_runtime_is_opened_per_thread_count(monkeypatch, tmp_path):
    from zsl.models import lm

    made = []

    class FakeRuntime:
        def __init__(self, path, *, n_ctx, n_threads, seed, chat, n_seq):
            made.append(n_threads)

    monkeypatch.setattr(lm, "LlamaRuntime", FakeRuntime)
    monkeypatch.setattr(lm, "_RUNTIMES", {})
    monkeypatch.setenv("ZSL_THREADS", "2")
    two = lm._runtime(tmp_path / "m.gguf", n_ctx=512, n_threads=None, seed=0, chat=True)
    one = lm._runtime(tmp_path / "m.gguf", n_ctx=512, n_threads=1, seed=0, chat=True)
    monkeypatch.setenv("ZSL_THREADS", "1")
    assert lm._runtime(tmp_path / "m.gguf", n_ctx=512, n_threads=None, seed=0, chat=True) is one
    assert two is not one and made == [2, 1]
