"""One loaded llama.cpp model: safe tokenisation, chat completion and batched yes/no scoring.

Two jobs live here, both below DSPy (``zsl.models.lm`` wraps this in a ``dspy.LM``):

* **Completion** with the model's own chat template. The template is rendered by us, with
  a marker in place of each message's content, so the template's control tokens
  (``<|im_start|>`` ...) are parsed as control tokens while user text is tokenised as
  plain text: a ``<|im_end|>`` typed inside an item is just characters, never the end of
  a turn.
* **Yes/no scoring** of many continuations of one prefix: log P(Yes) - log P(No) of the
  next token after ``prefix + continuation + suffix``. The prefix is evaluated once; every
  continuation then gets its own sequence id sharing the prefix's KV cells, and all of
  them go through ``llama_decode`` together, in batches of up to ``n_batch`` tokens. That
  is the same number of prompt tokens as scoring them one by one, in a few large batches
  instead of many small ones (which is what a CPU is fast at). Groups are sized so the
  prefix plus a group's tokens always fit the context window.

Example:
    >>> split_rendered("<s>A\\x00zsl-0\\x00B\\x00zsl-1\\x00C", ["hi", "yo"])
    [('<s>A', True), ('hi', False), ('B', True), ('yo', False), ('C', True)]
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from zsl.errors import InputError, MissingDependencyError

__all__ = ["LlamaRuntime", "default_threads", "import_llama", "split_rendered"]

_MARK = "\x00zsl-{}\x00"  # stands in for message contents while the chat template is rendered


def default_threads() -> int:
    """llama.cpp threads when none are given: ``$ZSL_THREADS`` if set (a Ray worker's share of a
    machine, see :mod:`zsl.runs.ray_engine`), else every core."""
    env = os.environ.get("ZSL_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, os.cpu_count() or 1)


def import_llama():
    """Import ``llama_cpp`` (passive OpenMP waiting first), or name the install command."""
    # llama.cpp's OpenMP threads spin at barriers by default; on a small machine shared with
    # other work (an encoder, a second process) that collapses throughput (measured here:
    # 7 vs 21 prompt tok/s with 2 threads under load). Its cost on an idle machine is not
    # measured yet; set OMP_WAIT_POLICY=ACTIVE to compare.
    # Read by libgomp when it loads, so it must be set before llama_cpp is imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
    except ImportError:
        raise MissingDependencyError("llama-cpp-python", "Running local GGUF models",
                                     "pip install 'llama-cpp-python==0.3.36' (builds from source, 8-15 min on 2 cores)") from None
    return llama_cpp


def split_rendered(rendered: str, contents: Sequence[str]) -> list[tuple[str, bool]]:
    """Cut a template rendered with content markers into ``(text, is_template)`` pieces.

    ``rendered`` holds ``_MARK.format(i)`` where message ``i``'s content goes; each marker is
    replaced by ``contents[i]`` as a non-template piece. Raises ``ValueError`` when a marker
    is missing or repeated (a template that rewrites contents), so the caller can fall back.
    """
    pieces: list[tuple[str, bool]] = []
    rest = rendered
    for i, content in enumerate(contents):
        mark = _MARK.format(i)
        if rest.count(mark) != 1:
            raise ValueError(f"the chat template did not place message {i} exactly once")
        head, rest = rest.split(mark)
        pieces += [(head, True), (content, False)]
    if "\x00zsl-" in rest:
        raise ValueError("the chat template repeated a message")
    pieces.append((rest, True))
    return [p for p in pieces if p[0]]


def _as_completion_prompt(messages: Sequence[dict[str, str]]) -> str:
    """Flatten chat messages for a base model with no chat template."""
    lines = []
    for m in messages:
        role = m.get("role", "user")
        content = m.get("content") or ""
        lines.append(content if role == "system" else f"{role.capitalize()}: {content}")
    lines.append("Assistant:")
    return "\n\n".join(lines)


class LlamaRuntime:
    """One loaded llama.cpp model shared by LM copies; calls are serialised by a lock.

    Args:
        path: the ``.gguf`` file.
        n_ctx: context window in tokens.
        n_threads: CPU threads (default: ``$ZSL_THREADS``, else all cores).
        seed: sampling seed.
        chat: use the model's chat template (False: plain completion for base models).
        n_seq: sequences decoded together by :meth:`yes_no_logodds` (1 scores one
            continuation at a time).
    """

    def __init__(self, path: Path, *, n_ctx: int, n_threads: int | None, seed: int, chat: bool, n_seq: int = 1):
        llama_cpp = import_llama()
        self.path = path
        self.chat = chat
        self.lock = threading.Lock()
        self.n_threads = n_threads or default_threads()
        self.llama = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=self.n_threads, n_batch=512,
                                     seed=seed, verbose=False)
        self.n_ctx = n_ctx
        self.n_batch = 512
        self.n_seq = max(1, min(int(n_seq), llama_cpp.llama_max_parallel_sequences()))
        self._score_ctx = self._open_score_context(n_ctx) if n_seq > 1 else None
        self.tokens_evaluated = 0  # prompt tokens run through yes/no scoring (for accounting)
        self._score_prefix: list[int] = []  # the prefix sequence 0 of the scoring context holds now
        self.prompt_tokens_evaluated = 0  # completion prompt tokens not served from the KV cache
        self._formatter = None

    def close(self) -> None:
        """Free the llama.cpp contexts and the model (the runtime is unusable afterwards)."""
        with self.lock:
            if self._score_ctx is not None:
                self._score_ctx.close()
                self._score_ctx = None
            self.llama.close()

    # -- tokens ------------------------------------------------------------------------------
    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Tokens of ``text``; control-token names in it are parsed only with ``special=True``."""
        if not text:
            return []
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def n_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def _bos(self) -> list[int]:
        llama_cpp = import_llama()
        vocab = self.llama._model.vocab
        return [llama_cpp.llama_vocab_bos(vocab)] if llama_cpp.llama_vocab_get_add_bos(vocab) else []

    def _pieces_tokens(self, pieces: Sequence[tuple[str, bool]]) -> list[int]:
        out: list[int] = []
        for text, special in pieces:
            out += self.tokenize(text, special=special)
        return out

    @property
    def chatml(self) -> bool:
        template = (self.llama.metadata or {}).get("tokenizer.chat_template", "")
        return self.chat and "<|im_start|>" in template

    def chat_tokens(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """The prompt tokens of ``messages`` under the model's chat template (or the plain
        completion layout for base models), with every message content tokenised as text."""
        return self._prompt_tokens(messages)[0]

    def _prompt_tokens(self, messages: Sequence[dict[str, str]]) -> tuple[list[int], int]:
        """The prompt tokens of ``messages`` and how many of them come before the last
        message's content: the part a program repeats for every item (instructions, demos)."""
        if not self.chat or not (self.llama.metadata or {}).get("tokenizer.chat_template"):
            tokens = self._bos() + self.tokenize(_as_completion_prompt(messages))
            head = self._bos() + self.tokenize(_as_completion_prompt(messages[:-1])) if len(messages) > 1 else []
            # a plain-text prompt is tokenised whole, so its head only counts where the tokens agree
            return tokens, len(head) if tokens[:len(head)] == head else 0
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llama = self.llama
            eos = llama._model.token_get_text(llama.token_eos()) if llama.token_eos() != -1 else ""
            bos = llama._model.token_get_text(llama.token_bos()) if llama.token_bos() != -1 else ""
            self._formatter = Jinja2ChatFormatter(template=llama.metadata["tokenizer.chat_template"],
                                                  eos_token=eos, bos_token=bos)
        contents = [m.get("content") or "" for m in messages]
        marked = [{**m, "content": _MARK.format(i)} for i, m in enumerate(messages)]
        rendered = self._formatter(messages=marked).prompt
        try:
            pieces = split_rendered(rendered, contents)
        except ValueError as exc:
            raise InputError(f"The chat template of {self.path.name} rewrites message contents ({exc}); zsl cannot "
                             "keep user text apart from control tokens with it. Fix: use chat=False for this model "
                             "or another GGUF.") from None
        # As in llama-cpp-python's chat handler: no BOS is added; a template that wants one writes it.
        last = max((i for i, (text, special) in enumerate(pieces) if not special), default=len(pieces))
        head = self._pieces_tokens(pieces[:last])
        return head + self._pieces_tokens(pieces[last:]), len(head)

    # -- completion --------------------------------------------------------------------------
    def complete(self, messages: Sequence[dict[str, str]], *, max_tokens: int, temperature: float,
                 stop: Sequence[str] = (), prefill: str = "") -> tuple[str, str, int, int]:
        """Run one completion; returns (text, finish_reason, prompt_tokens, completion_tokens).

        The prompt's fixed part (everything before the last message's content: a DSPy
        program's instructions and demos) comes from the KV cache when the previous call had
        the same one, and is otherwise evaluated on its own from an empty cache; the rest is
        evaluated after it. So the computation of an answer never depends on which prompt came
        before it: an item gets the same answer whatever the chunk, worker, resume or order
        (for one llama.cpp build, CPU and thread count). ``prompt_tokens_evaluated`` counts the
        tokens actually evaluated. ``prefill`` is text the answer is known to start with: it
        is evaluated as prompt (about six times cheaper per token here than generating it) and
        is not part of the returned text.
        """
        tokens, n_fixed = self._prompt_tokens(messages)
        tokens += self.tokenize(prefill)
        budget = self.n_ctx - max_tokens
        if len(tokens) > budget:
            raise InputError(f"The prompt has {len(tokens)} tokens; the context holds {self.n_ctx} with "
                             f"{max_tokens} for the answer. Fix: shorter texts (they are cut by characters "
                             "first) or a larger n_ctx.")
        with self.lock:
            llama = self.llama
            n_fixed = min(n_fixed, len(tokens) - 1)  # at least one token is evaluated, for the logits
            self.prompt_tokens_evaluated += self._load_fixed(tokens[:n_fixed]) + len(tokens) - n_fixed
            eos_text = llama._model.token_get_text(llama.token_eos()) if self.chat and llama.token_eos() != -1 else ""
            stops = [s for s in (*stop, eos_text) if s]
            out = llama.create_completion(tokens, max_tokens=max_tokens, temperature=temperature,
                                          stop=stops or None)
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return (choice.get("text") or "", choice.get("finish_reason") or "stop", int(usage.get("prompt_tokens", 0)),
                int(usage.get("completion_tokens", 0)))

    def _load_fixed(self, fixed: list[int]) -> int:
        """Leave exactly ``fixed`` in the generation context's KV cache; returns the tokens evaluated.

        The cache is reused only up to the fixed part, never into the previous item's own tokens:
        llama.cpp's float sums depend on how tokens are cut into batches, so a longer reuse would
        make an answer depend on the item before it (seen: a near tie in Infer flipped).
        """
        llama = self.llama
        n = len(fixed)
        if llama.n_tokens >= n and llama._input_ids[:n].tolist() == fixed:
            llama.n_tokens = n  # the next eval drops the cells past it
            return 0
        llama.reset()
        if fixed:
            llama.eval(fixed)
        return n

    # -- yes/no scoring ----------------------------------------------------------------------
    def _open_score_context(self, n_ctx: int):
        llama_cpp = import_llama()
        from llama_cpp._internals import LlamaContext

        # The generation context's own settings (attention kernel, KV types, threads), so both
        # paths compute the same numbers; only the sequence bookkeeping differs.
        params = llama_cpp.llama_context_params.from_buffer_copy(self.llama.context_params)
        params.n_ctx = n_ctx
        params.n_seq_max = self.n_seq
        params.kv_unified = True  # one pool of cells: the prefix's cells are shared by every sequence
        return LlamaContext(model=self.llama._model, params=params, verbose=False)

    def _yes_no_tokens(self, prefix: str, continuations: Sequence[str], suffix: str, system: str,
                       lead: str | None = None) -> tuple[list[int], list[list[int]], int, int]:
        """Tokens of the shared prefix and of each continuation (+ suffix), and the Yes/No ids.

        Prompt wording, item text and labels are tokenised as plain text; only the chat
        template's own markers are control tokens. With ``lead``, the question closes the user
        turn and the assistant's turn starts with ``lead``: each continuation then carries no
        turn markers of its own (fewer tokens per candidate).
        """
        if self.chatml:
            head = [("<|im_start|>", True), ("system\n" + system, False), ("<|im_end|>", True), ("\n", False),
                    ("<|im_start|>", True), ("user\n" + prefix, False)]
            close = [("<|im_end|>", True), ("\n", False), ("<|im_start|>", True), ("assistant\n", False)]
            yes, no = "Yes", "No"
            if lead is not None:  # the turn closes once, in the prefix; the assistant's turn opens with the lead
                head, close = head + close[:-1] + [("assistant\n" + lead, False)], []
                yes, no = " Yes", " No"
        else:
            text = prefix if lead is None else f"{prefix}\n{lead}"
            head = [(f"{system}\n\n{text}" if system else text, False)]
            close = []
            yes, no = " Yes", " No"
        pre = self._bos() + self._pieces_tokens(head)
        close_tokens = self._pieces_tokens(close)
        bodies = [self.tokenize(c + suffix) + close_tokens for c in continuations]
        return pre, bodies, self.tokenize(yes)[0], self.tokenize(no)[0]

    def yes_no_logodds(self, prefix: str, continuations: Sequence[str], suffix: str, system: str = "", *,
                       lead: str | None = None, batched: bool | None = None) -> list[float]:
        """log P(Yes) - log P(No) of the next token after ``prefix + c + suffix``, per continuation.

        Chat models get the question inside a user turn and answer as the assistant; base
        models continue the plain text. The prefix is evaluated once. With ``batched`` (the
        default when the runtime was opened with ``n_seq > 1``) the continuations are decoded
        together as parallel sequences; otherwise one after another. Both give the same
        scores up to float rounding. A continuation that would overflow the context is cut.
        ``lead`` moves the candidates into the assistant's turn (see :meth:`_yes_no_tokens`).
        """
        pre, bodies, yes_id, no_id = self._yes_no_tokens(prefix, continuations, suffix, system, lead)
        if len(pre) >= self.n_ctx - 1:
            raise InputError(f"The Rank prompt has {len(pre)} tokens, more than the context ({self.n_ctx}). "
                             "Fix: cut the text shorter (Rank's max_chars) or open the model with a larger n_ctx.")
        budget = self.n_ctx - len(pre) - 1
        bodies = [b[:budget] for b in bodies]
        use_batch = (self._score_ctx is not None) if batched is None else batched
        if use_batch and self._score_ctx is None:
            raise InputError("batched=True needs a runtime opened with n_seq > 1")
        with self.lock:
            logits = self._score_batched(pre, bodies, yes_id, no_id) if use_batch else \
                self._score_sequential(pre, bodies, yes_id, no_id)
        return [d if math.isfinite(d) else 0.0 for d in logits]

    def _score_sequential(self, pre: list[int], bodies: list[list[int]], yes_id: int, no_id: int) -> list[float]:
        llama_cpp = import_llama()
        llama = self.llama
        llama.reset()
        llama.eval(pre)
        self.tokens_evaluated += len(pre)
        n_pre = llama.n_tokens
        out = []
        for body in bodies:
            llama.n_tokens = n_pre  # roll back to the shared prefix; eval() drops the KV cache past it
            llama.eval(body)
            self.tokens_evaluated += len(body)
            ptr = llama_cpp.llama_get_logits_ith(llama._ctx.ctx, -1)
            out.append(float(ptr[yes_id]) - float(ptr[no_id]))
        return out

    def _score_batched(self, pre: list[int], bodies: list[list[int]], yes_id: int, no_id: int) -> list[float]:
        llama_cpp = import_llama()
        ctx = self._score_ctx
        mem = ctx.memory
        n_batch, n_pre = self.n_batch, len(pre)
        batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        try:
            kept = self._keep_score_prefix(mem, pre)
            self._score_prefix = []  # until the prefix is whole again (an error below leaves it unknown)
            for start in range(kept, n_pre, n_batch):  # the prefix, once, in sequence 0
                part = pre[start:start + n_batch]
                self._fill(batch, [(tok, start + i, 0, False) for i, tok in enumerate(part)])
                self._decode(ctx, batch)
            self.tokens_evaluated += n_pre - kept
            self._score_prefix = list(pre)
            out: list[float] = [0.0] * len(bodies)
            free = self.n_ctx - n_pre
            i = 0
            while i < len(bodies):
                # a group: as many continuations as there are free sequence ids (0 holds the prefix,
                # so n_seq - 1 of them) and free cells
                group, used = [], 0
                while i < len(bodies) and len(group) < max(1, self.n_seq - 1) and (used + len(bodies[i]) <= free or not group):
                    group.append(i)
                    used += len(bodies[i])
                    i += 1
                for s in range(1, len(group) + 1):
                    llama_cpp.llama_memory_seq_cp(mem, 0, s, -1, -1)
                entries = [(tok, n_pre + j, s, j == len(bodies[b]) - 1)
                           for s, b in enumerate(group, start=1) for j, tok in enumerate(bodies[b])]
                owner = [group[e[2] - 1] if e[3] else -1 for e in entries]
                for start in range(0, len(entries), n_batch):
                    self._fill(batch, entries[start:start + n_batch])
                    self._decode(ctx, batch)
                    for k, b in enumerate(owner[start:start + n_batch]):
                        if b >= 0:
                            ptr = llama_cpp.llama_get_logits_ith(ctx.ctx, k)
                            out[b] = float(ptr[yes_id]) - float(ptr[no_id])
                self.tokens_evaluated += len(entries)
                for s in range(1, len(group) + 1):
                    llama_cpp.llama_memory_seq_rm(mem, s, -1, -1)
            return out
        finally:
            llama_cpp.llama_batch_free(batch)

    def _keep_score_prefix(self, mem, pre: list[int]) -> int:
        """Keep the last call's prefix when ``pre`` is the same (a text asked about in several calls, as a top-down
        search does level by level, is evaluated once), else clear the context. Returns the tokens kept.

        Only a whole prefix is reused: its cells are the very ones a fresh evaluation would compute, so the
        scores do not depend on what was asked before. Reusing a common start of two texts would split the
        prefix into other batches and move the scores by float rounding (~0.1 log-odds on Qwen2.5-1.5B)
        depending on the item before, and a run's scores would differ with the order items come in.
        """
        llama_cpp = import_llama()
        if pre and pre == self._score_prefix:
            return len(pre)
        llama_cpp.llama_memory_clear(mem, True)
        return 0

    @staticmethod
    def _fill(batch, entries: Sequence[tuple[int, int, int, bool]]) -> None:
        """Put ``(token, position, sequence id, wants logits)`` entries into ``batch``."""
        batch.n_tokens = len(entries)
        for k, (tok, pos, seq, logits) in enumerate(entries):
            batch.token[k] = tok
            batch.pos[k] = pos
            batch.n_seq_id[k] = 1
            batch.seq_id[k][0] = seq
            batch.logits[k] = logits

    @staticmethod
    def _decode(ctx, batch) -> None:
        llama_cpp = import_llama()
        rc = llama_cpp.llama_decode(ctx.ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed with code {rc} (batch of {batch.n_tokens} tokens)")

