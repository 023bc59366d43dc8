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


def _scripted_llamacpp_lm(monkeypatch, tmp_path):
    """A LlamaCppLM over a fake runtime that counts the yes/no prompts it really scores."""
    from zsl.models import lm

    scored: list[tuple] = []

    class FakeRuntime:
        n_ctx = 512

        def __init__(self, *args, **kwargs):
            pass

        def yes_no_logodds(self, prefix, continuations, suffix, system="", *, lead=None):
            scored.append((prefix, tuple(continuations), suffix, system, lead))
            return [len(c) / 3.0 - 1.1 for c in continuations]  # not float32-exact: a cache must keep them

    monkeypatch.setattr(lm, "_runtime", lambda *a, **k: FakeRuntime())
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 16)
    return lm.LlamaCppLM(model, name="fake"), model, scored


def test_yes_no_scores_are_cached_on_disk_per_prompt_and_model_file(monkeypatch, tmp_path):
    import os

    llm, model, scored = _scripted_llamacpp_lm(monkeypatch, tmp_path)
    first = llm.yes_no_logodds("Text: a cat.", ["animals", "cars"], "Answer:", system="sys")
    assert llm.yes_no_logodds("Text: a cat.", ["animals", "cars"], "Answer:", system="sys") == first
    assert first == [len("animals") / 3.0 - 1.1, len("cars") / 3.0 - 1.1] and len(scored) == 1  # the same numbers
    from zsl.util.paths import zsl_home

    kept = list((zsl_home() / "yesno").rglob("*.npy"))  # one file per call, in a subfolder per key prefix
    assert len(kept) == 1 and kept[0].parent.name == kept[0].stem[:2]
    llm.yes_no_logodds("Text: a cat.", ["animals"], "Answer:", system="sys")  # other candidates
    llm.yes_no_logodds("Text: a cat.", ["animals", "cars"], "Answer:", system="sys", lead="")  # a lead, even empty
    llm.yes_no_logodds("Text: a dog.", ["animals", "cars"], "Answer:", system="sys")  # another text
    assert len(scored) == 4
    st = model.stat()
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the model file was replaced
    llm.yes_no_logodds("Text: a cat.", ["animals", "cars"], "Answer:", system="sys")
    assert len(scored) == 5
    plain = type(llm)(model, name="fake", chat=False)  # the same file read as plain text: other scores
    plain.yes_no_logodds("Text: a cat.", ["animals", "cars"], "Answer:", system="sys")
    assert len(scored) == 6
    monkeypatch.setenv("ZSL_LM_CACHE", "0")  # off: every call is scored
    llm.yes_no_logodds("Text: a cat.", ["animals", "cars"], "Answer:", system="sys")
    assert len(scored) == 7


def test_a_yes_no_answer_the_cache_cannot_keep_is_still_returned(monkeypatch, tmp_path):
    from zsl.util.cache import EmbeddingCache

    llm, _, scored = _scripted_llamacpp_lm(monkeypatch, tmp_path)

    def full_disk(self, key, arr, dtype=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(EmbeddingCache, "put", full_disk)
    assert llm.yes_no_logodds("Text: a cat.", ["animals"], "Answer:") == [len("animals") / 3.0 - 1.1]
    assert llm.yes_no_logodds("Text: a cat.", ["animals"], "Answer:") == [len("animals") / 3.0 - 1.1]
    assert len(scored) == 2  # nothing was kept, so both were scored
