"""LM factory: the embedded local default, a local GGUF file, or any provider model.

One setting chooses the LM: the ``lm=`` argument, the ``--lm`` CLI flag, or ``$ZSL_LM``.

* ``"qwen2.5-coder-1.5b"`` (default) or ``"gemma3-270m"``: embedded GGUF models run
  in-process by llama.cpp (no network).
* a path to a ``.gguf`` file: any local llama.cpp model.
* ``"provider/model"`` (``openai/gpt-4o-mini``, ``ollama_chat/qwen2.5``,
  ``hosted_vllm/my-model`` with ``api_base=...``): DSPy/LiteLLM. This is the only path
  that touches the network, and only because the user named a remote model. Every call
  waits at most :data:`REMOTE_TIMEOUT` seconds for an answer unless ``timeout=`` says
  otherwise, and nothing else is fetched (see :mod:`zsl.util.offline`).

Every LM returned is a ``dspy.BaseLM``; the local ones are :class:`LlamaCppLM`, a
``dspy.LM`` driven by a llama.cpp engine, so DSPy's cache, history and usage tracking work
unchanged.

Example:
    >>> from zsl.models.lm import resolve_lm_name
    >>> resolve_lm_name(None, env={})
    'qwen2.5-coder-1.5b'
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zsl.errors import ModelNotFoundError, RemoteModelError, ZslError
from zsl.models.llama import LlamaRuntime, default_threads
from zsl.models.registry import DEFAULT_LM, MODELS, get_spec, model_path

__all__ = ["REMOTE_TIMEOUT", "LlamaCppLM", "check_lm", "ensure_lm_cache", "get_lm", "is_remote", "is_remote_lm",  # noqa: F822
           "lm_cache_enabled", "resolve_lm_name"]  # LlamaCppLM is built lazily

# Seconds a remote call may wait for the server's answer (the reply's first byte, then each
# next one) before it fails as a time-out and is retried. Generous for the few hundred tokens
# an Infer or Rank answer takes even on a loaded server, yet a server that accepts the
# connection and never answers costs minutes, not the transports' defaults (600 s per try in
# DSPy's own engine, 6,000 s in LiteLLM's), which DSPy then retries three more times.
REMOTE_TIMEOUT = 120.0


def resolve_lm_name(name: str | None, env: Mapping[str, str] | None = None) -> str:
    """The LM name in force: the argument, else ``$ZSL_LM``, else the embedded default."""
    env = os.environ if env is None else env
    return name or env.get("ZSL_LM") or DEFAULT_LM


def is_remote(name: str) -> bool:
    """True for ``provider/model`` names that DSPy/LiteLLM would send over the network."""
    if name in MODELS or name.endswith(".gguf") or Path(name).expanduser().exists():
        return False
    return "/" in name


def is_remote_lm(lm: Any) -> bool:
    """True when ``lm`` -- a name (None: ``$ZSL_LM`` or the default) or an LM object -- calls a server.

    An object counts as remote when it is a ``dspy.LM`` routed by DSPy itself (not a custom
    engine such as the local llama.cpp one) to a ``provider/model``.
    """
    if lm is None or isinstance(lm, (str, os.PathLike)):
        return is_remote(resolve_lm_name(None if lm is None else str(lm)))
    local_cls = globals().get("_LLAMACPP_CLS")
    if local_cls is not None and isinstance(lm, local_cls):
        return False
    model = getattr(lm, "model", None)
    return isinstance(getattr(lm, "engine", None), str) and isinstance(model, str) and is_remote(model)


def get_lm(name: str | None = None, *, temperature: float = 0.0, max_tokens: int = 256, **kwargs: Any):
    """Build the DSPy LM that ``name`` refers to.

    Args:
        name: embedded model name, ``.gguf`` path or ``provider/model``; ``None`` reads
            ``$ZSL_LM`` and falls back to ``qwen2.5-coder-1.5b``.
        temperature: sampling temperature (0 = greedy, reproducible).
        max_tokens: default completion budget per call.
        **kwargs: passed to :class:`LlamaCppLM` (``n_ctx``, ``n_threads``, ``seed``) or to
            ``dspy.LM`` for provider models (``api_base``, ``api_key`` ...).

    Raises:
        ModelNotFoundError: the name is neither embedded, a file, nor ``provider/model``.
        ModelIntegrityError: a model file is not GGUF.
        InputError: ``openai/NAME`` with ``api_base`` and neither ``api_key`` nor ``$OPENAI_API_KEY``.
    """
    resolved = resolve_lm_name(name)
    ensure_lm_cache()
    if resolved in MODELS:
        spec = get_spec(resolved)
        if spec.kind != "llm":
            raise ModelNotFoundError(f"'{resolved}' is {'an' if spec.kind[0] in 'aeiou' else 'a'} {spec.kind} model, "
                                     f"not an LLM. LLMs: {_llm_names()}")
        return _llamacpp_cls()(model_path(resolved), name=resolved, chat=spec.chat, n_ctx=kwargs.pop("n_ctx", spec.context),
                          temperature=temperature, max_tokens=max_tokens, **kwargs)
    path = Path(resolved).expanduser()
    if resolved.endswith(".gguf") or path.is_file():
        if not path.is_file():
            raise ModelNotFoundError(f"No GGUF file at {path}. Give an existing path or one of: {_llm_names()}")
        _check_gguf_magic(path)
        return _llamacpp_cls()(path, name=str(path), temperature=temperature, max_tokens=max_tokens, **kwargs)
    if "/" in resolved:
        import dspy

        _refuse_keyless_openai(resolved, kwargs)
        kwargs.setdefault("timeout", REMOTE_TIMEOUT)
        return dspy.LM(resolved, temperature=temperature, max_tokens=max_tokens, **kwargs)
    raise ModelNotFoundError(
        f"Unknown LM '{resolved}'. Expected one of the embedded models ({_llm_names()}), a path to a .gguf "
        "file, or a provider model such as 'openai/gpt-4o-mini' or 'ollama_chat/qwen2.5'."
    )


def _refuse_keyless_openai(name: str, kwargs: Mapping[str, Any]) -> None:
    """``openai/NAME`` always sends an API key, to OpenAI or to the ``api_base`` server; without one LiteLLM fails
    every call. Say so once, up front, with the two fixes (texts and photos alike)."""
    if name.startswith("openai/") and kwargs.get("api_base") and not kwargs.get("api_key") \
            and not os.environ.get("OPENAI_API_KEY"):
        from zsl.errors import InputError

        raise InputError(f"--lm {name} --api-base {kwargs['api_base']} sends the OPENAI_API_KEY variable to that "
                         "server, and it is not set. Fix: for a local server that checks no key, set any value "
                         f"(OPENAI_API_KEY=none zsl label ...), or use --lm hosted_vllm/{name.split('/', 1)[1]}, "
                         "which needs no key (vLLM, SGLang, llama.cpp's server, Ollama's /v1).")


def _check_gguf_magic(path: Path) -> None:
    """Refuse a file that does not start with the GGUF magic before llama.cpp sees it (it
    would fail with an opaque message, or crash, on an HTML error page or a cut download)."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head != b"GGUF":
        from zsl.errors import ModelIntegrityError

        raise ModelIntegrityError(f"{path} is not a GGUF model file: it starts with {head!r} instead of b'GGUF' (a "
                                  "failed download, an HTML page, or another model format). Fix: download the .gguf "
                                  f"again, convert the model to GGUF, or use an embedded model: {_llm_names()}")


_CACHE_DIR: list[str] = []


def lm_cache_enabled() -> bool:
    """Are LM answers cached (DSPy's cache and the local yes/no answers)? ``$ZSL_LM_CACHE=0`` says no."""
    return os.environ.get("ZSL_LM_CACHE", "1") != "0"


def ensure_lm_cache() -> None:
    """Point DSPy's LM cache at $ZSL_HOME/dspy (again if $ZSL_HOME changed); $ZSL_LM_CACHE=0 disables it."""
    from zsl.util.cache import configure_lm_cache
    from zsl.util.paths import subdir

    enable = lm_cache_enabled()
    key = f"{subdir('dspy')}:{enable}"
    if _CACHE_DIR != [key]:
        configure_lm_cache(enable)
        _CACHE_DIR[:] = [key]


def _llm_names() -> str:
    return ", ".join(n for n, s in MODELS.items() if s.kind == "llm")


def check_lm(lm: Any, name: str | None = None, *,
             attempt: Callable[[Callable[[], Any]], Any] | None = None) -> None:
    """Make one tiny call so an unreachable or misconfigured model fails early and clearly.

    Args:
        lm: the LM to check.
        name: how messages name it (default: its ``model``).
        attempt: runs the call, e.g. with retries:
            ``attempt=lambda call: zsl.util.retry.retry_call(call, retries=3)``; default: one try.

    Raises:
        RemoteModelError: the call failed; the message names the model and the likely fix,
            and the error it wraps is its ``__cause__``.
    """
    label = name or getattr(lm, "model", "the LM")
    limit = (getattr(lm, "kwargs", None) or {}).get("timeout")
    run = attempt or (lambda call: call())
    try:
        out = run(lambda: lm("Reply with the single word: ok", max_tokens=4, cache=False))  # a real call
    except Exception as exc:  # provider SDKs raise many types; we translate them all here
        waited = (f" within {limit:g}s (the time limit per call; raise it with --timeout)"
                  if isinstance(limit, int | float) else "")
        raise RemoteModelError(
            f"Could not get an answer from {label}{waited}: {type(exc).__name__}: {str(exc)[:300]}. "
            "Fix: check that the server is running and reachable (api_base), that the API key variable is set "
            "(e.g. OPENAI_API_KEY), and that the model name is right; or use the embedded default with "
            f"--lm {DEFAULT_LM}."
        ) from exc
    if not out:
        raise RemoteModelError(f"{label} answered with nothing to a test prompt.")


_CUT = threading.local()  # set by LlamaCppEngine.complete when an answer hit max_tokens


class _QuietTruncation:
    """Drops DSPy's "LM response was truncated" warning for answers of the local engine only.

    DSPy logs it right after ``Engine.complete`` returns, in the same thread; the engine marks
    its own cut-off answers in a thread-local flag, so remote LMs keep their warning. A
    cut-off Infer answer is still parsed (its complete phrases are kept), and the engine counts
    them (``LlamaCppEngine.truncated``) instead of printing a line per item of a long run.
    """

    def filter(self, record) -> bool:
        if getattr(_CUT, "pending", False) and record.getMessage().startswith("LM response was truncated"):
            _CUT.pending = False
            return False
        return True


def _install_quiet_truncation() -> None:
    import logging

    logger = logging.getLogger("dspy.clients.lm")
    if not any(isinstance(f, _QuietTruncation) for f in logger.filters):
        logger.addFilter(_QuietTruncation())


class LlamaCppEngine:
    """A DSPy engine (``complete(Request) -> Response``) that runs a llama.cpp model in-process."""

    truncated = 0  # answers cut off at max_tokens
    prefill = True  # write a one-field answer's markers instead of generating them (see answer_field)

    def __init__(self, runtime: LlamaRuntime, model_id: str):
        self.runtime = runtime
        self.model_id = model_id
        _install_quiet_truncation()

    def complete(self, request):
        from dspy.lm15 import Message, Response, TextPart, Usage

        messages: list[dict[str, str]] = []
        if request.system is not None:
            system = request.system if isinstance(request.system, str) else "".join(
                getattr(p, "text", "") for p in request.system)
            messages.append({"role": "system", "content": system})
        messages.extend({"role": m.role, "content": _message_text(m)} for m in request.messages)
        cfg = request.config
        field = answer_field(messages) if self.prefill else None
        head = f"[[ ## {field} ## ]]\n" if field else ""
        text, finish, n_in, n_out = self.runtime.complete(
            messages,
            max_tokens=cfg.max_tokens or 256,
            temperature=cfg.temperature if cfg.temperature is not None else 0.0,
            stop=(*(cfg.stop or ()), *(FIELD_END if field else ())),
            prefill=head,
        )
        if field:
            # The answer as the model would have written it: DSPy's parser sees no difference (an
            # answer cut at max_tokens stays without its closing marker, as it was).
            text = head + (text if finish == "length" else f"{text.rstrip()}\n\n[[ ## completed ## ]]")
        finish_reason = "length" if finish == "length" else "stop"
        _CUT.pending = finish_reason == "length"
        if _CUT.pending:
            self.truncated += 1
        return Response(id=None, model=self.model_id, message=Message.assistant([TextPart(text)]),
                        finish_reason=finish_reason,
                        usage=Usage(input_tokens=n_in, output_tokens=n_out, total_tokens=n_in + n_out))

    def stream(self, request):
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        pass


# DSPy's ChatAdapter ends its last user message with this sentence; for a signature with one
# output field the answer is then "[[ ## field ## ]]\n<value>\n\n[[ ## completed ## ]]".
# Only a plain-text field (no "(must be formatted as ...)" type note): a typed value such as a
# nested list may itself start a line with "[[".
_ONE_FIELD = re.compile(r"Respond with the corresponding output fields, starting with the field "
                        r"`\[\[ ## (\w+) ## \]\]`, and then ending with the marker for "
                        r"`\[\[ ## completed ## \]\]`\.\s*$")
# Where a one-field answer's value ends: a line that starts the next marker. One stop string, so
# "\n\n[[" and "\n[[" end at the same token (with two, the answer's token count depended on a
# near tie between them, and differed between 1 and 2 llama.cpp threads).
FIELD_END = ("\n[[",)


def answer_field(messages: Sequence[Mapping[str, str]]) -> str | None:
    """The output field of a one-field DSPy ChatAdapter request, else None.

    For such a request the local engine writes the field's opening marker into the prompt
    instead of generating it, and stops at the closing marker instead of generating it: of
    the ~16-24 tokens of a typical Infer answer, 11 are these markers, and a generated token
    costs about six prompt tokens on a CPU. The model writes exactly these marker tokens itself,
    so from the same state greedy decoding gives the same answer (``tests/integration`` checks it
    on real items); like any llama.cpp answer it can still flip on a near tie when the prompt is
    evaluated in other chunks (after another prompt in the KV cache): on 10 ESCO validation items
    8 gave the same phrases both ways, and the other 2 also changed between two runs without it.
    Anything else (several output fields, another adapter, a plain prompt) is left alone.
    """
    if not messages or messages[-1].get("role") != "user":
        return None
    found = _ONE_FIELD.search(messages[-1].get("content") or "")
    return found.group(1) if found else None


def _message_text(message: Any) -> str:
    text = getattr(message, "text", None)
    if text is not None:
        return text
    return "".join(getattr(p, "text", "") or "" for p in getattr(message, "parts", ()))


SCORE_SEQUENCES = 64
_RUNTIMES: dict[tuple[str, int, bool, str, int], LlamaRuntime] = {}
_RUNTIMES_LOCK = threading.Lock()


def _runtime(path: Path, *, n_ctx: int, n_threads: int | None, seed: int, chat: bool,
             role: str = "generate") -> LlamaRuntime:
    # One llama.cpp context per (model, role): generation and yes/no scoring keep separate KV
    # caches, so the long, fixed Infer prompt prefix stays cached between items. The weights
    # are memory-mapped once by the OS, so a second context costs only its KV cache.
    # Threads are part of the key: llama.cpp's sums depend on the thread count, so a caller asking
    # for 1 thread (a Ray worker's share, or $ZSL_THREADS=1) never gets a context opened with 2.
    n_threads = n_threads or default_threads()
    key = (str(path), n_ctx, chat, role, n_threads)
    with _RUNTIMES_LOCK:
        if not _RUNTIMES:
            import atexit

            atexit.register(_close_runtimes)
        if key not in _RUNTIMES:
            # The scoring context decodes up to SCORE_SEQUENCES Rank candidates side by side.
            _RUNTIMES[key] = LlamaRuntime(path, n_ctx=n_ctx, n_threads=n_threads, seed=seed, chat=chat,
                                          n_seq=SCORE_SEQUENCES if role == "score" else 1)
        return _RUNTIMES[key]


def _close_runtimes() -> None:
    # Free llama.cpp while the interpreter is whole: left to garbage collection at exit,
    # llama-cpp-python's finalisers run after its own modules are torn down and print
    # "Exception ignored in Llama.__del__ ... 'NoneType' object is not callable".
    with _RUNTIMES_LOCK:
        for rt in _RUNTIMES.values():
            try:
                rt.close()
            except Exception:  # noqa: BLE001, S110 - best effort at exit
                pass
        _RUNTIMES.clear()


def _lm_base():
    import dspy

    return dspy.LM


def _llamacpp_cls():
    # LlamaCppLM subclasses dspy.LM, so the class is built on first use: `import zsl` stays light.
    cls = globals().get("_LLAMACPP_CLS")
    if cls is None:
        cls = globals()["_LLAMACPP_CLS"] = _make_llamacpp_lm()
    return cls


def __getattr__(attr: str):
    if attr == "LlamaCppLM":
        return _llamacpp_cls()
    raise AttributeError(f"module 'zsl.models.lm' has no attribute '{attr}'")


def _make_llamacpp_lm():
    base = _lm_base()

    class LlamaCppLM(base):  # type: ignore[misc, valid-type]
        """A ``dspy.LM`` whose requests run on a local GGUF model through llama.cpp.

        Args:
            path: the ``.gguf`` file (verified by the caller for embedded models).
            name: a stable model id recorded in history, caches and provenance.
            chat: use the model's chat template (False for base models: plain completion).
            n_ctx: context window in tokens.
            n_threads: CPU threads (default: ``$ZSL_THREADS``, else all cores).
            seed: llama.cpp sampling seed.
            temperature, max_tokens: request defaults.

        Example:
            >>> lm = get_lm("qwen2.5-coder-1.5b")            # doctest: +SKIP
            >>> lm("Name one fruit.")                         # doctest: +SKIP
            ['Apple']
        """

        def __init__(self, path: str | os.PathLike[str], *, name: str | None = None, chat: bool = True,
                     n_ctx: int = 4096, n_threads: int | None = None, seed: int = 0,
                     temperature: float = 0.0, max_tokens: int = 256, cache: bool = True):
            self.path = Path(path)
            self.runtime = _runtime(self.path, n_ctx=n_ctx, n_threads=n_threads, seed=seed, chat=chat)
            self._runtime_args = {"n_ctx": n_ctx, "n_threads": n_threads, "seed": seed, "chat": chat}
            model_id = f"local/{name or self.path.name}"
            super().__init__(model_id, model_type="chat", temperature=temperature, max_tokens=max_tokens,
                             cache=cache, num_retries=0, engine=LlamaCppEngine(self.runtime, model_id))

        @property
        def n_ctx(self) -> int:
            return self.runtime.n_ctx

        def count_tokens(self, text: str) -> int:
            """Tokens in ``text`` under this model's tokenizer."""
            return self.runtime.n_tokens(text)

        def yes_no_logodds(self, prefix: str, continuations: Sequence[str], suffix: str,
                           system: str = "", lead: str | None = None) -> list[float]:
            """Score ``prefix + c + suffix`` by log P(Yes) - log P(No) for each continuation
            (``lead``: the candidates go in the assistant's turn, after that text).

            Answers are kept on disk (``$ZSL_HOME/yesno``) like DSPy's cache keeps generations, so a
            resumed or repeated run does not score the same prompt twice. The key covers the model
            file (path, size, modification time), the context size, chat or plain text, the
            llama-cpp-python version and every prompt part;
            ``$ZSL_LM_CACHE=0`` or ``cache=False`` turns it off.
            """
            from zsl.util.cache import content_hash

            cache = self._yes_no_cache()
            if cache is None:
                return self.scorer.yes_no_logodds(prefix, continuations, suffix, system, lead=lead)
            key = content_hash("yes_no_logodds/1", self._score_identity(), prefix, suffix, system,
                               [] if lead is None else [lead], list(continuations))
            hit = cache.get(key, n_rows=len(continuations))
            if hit is not None and hit.ndim == 1:
                return [float(x) for x in hit]
            out = self.scorer.yes_no_logodds(prefix, continuations, suffix, system, lead=lead)
            try:
                cache.put(key, out, dtype="float64")  # as computed: a cached answer is the same number
            except (OSError, ZslError):  # a full disk or a read-only $ZSL_HOME costs the cache, not the answer
                pass
            return out

        def _yes_no_cache(self):
            from zsl.util.cache import EmbeddingCache
            from zsl.util.paths import subdir

            if not self.cache or not lm_cache_enabled():
                return None
            try:
                return EmbeddingCache(subdir("yesno"), shard=True)
            except (OSError, ZslError):  # no writable $ZSL_HOME: score without the cache
                return None

        def _score_identity(self) -> str:
            """What the yes/no scores depend on besides the prompt: the model file, how it is opened
            (context size, chat template or plain text) and the llama.cpp build that runs it."""
            from zsl.models.llama import import_llama

            st = self.path.stat()
            return (f"{self.model}|{self.path.resolve()}|{st.st_size}|{st.st_mtime_ns}|n_ctx={self.n_ctx}"
                    f"|chat={self._runtime_args['chat']}|llama_cpp={getattr(import_llama(), '__version__', '?')}")

        @property
        def scorer(self) -> LlamaRuntime:
            """The llama.cpp context used for yes/no scoring (created on first use)."""
            return _runtime(self.path, role="score", **self._runtime_args)

        def dump_state(self) -> dict[str, Any]:
            return {"model": self.model, "path": str(self.path)}

    LlamaCppLM.__module__ = __name__
    return LlamaCppLM
