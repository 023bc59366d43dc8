"""Retrying calls to remote LMs: which errors are transient, how long to wait, and the retry loop.

A rate limit, a time-out, a dropped connection or a 5xx answer is *transient*: worth trying
again after a pause. :func:`retry_call` waits exponentially longer between tries (with
jitter, and at least as long as a server asked), and lets every other error through at once.
An item whose last try still failed on a transient error is reported as a retryable
:class:`Skipped`, so a run can label it again later (:mod:`zsl.runs.label`).
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zsl.errors import InputError

__all__ = ["Skipped", "http_status", "is_transient", "retry_after", "retry_base_delay", "retry_call"]

_TRANSIENT_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}
_TRANSIENT_NAMES = {"RateLimitError", "APIConnectionError", "Timeout", "APITimeoutError", "ServiceUnavailableError",
                    "InternalServerError", "ReadTimeout", "ConnectTimeout"}


@dataclass(frozen=True)
class Skipped:
    """Why an item got no row: ``reason`` (the text of its ``errors.jsonl`` entry), and ``retryable`` when it failed
    on a transient error (rate limit, time-out, 5xx) after its retries, so that rerunning the same command labels it."""

    reason: str
    retryable: bool = False


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an error carries: ``status_code`` (OpenAI SDK, LiteLLM) or ``status`` (DSPy's LM errors).

    Example:
        >>> class Err(Exception):
        ...     status_code = 429
        >>> http_status(Err()), http_status(ValueError())
        (429, None)
    """
    for attr in ("status_code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def is_transient(exc: BaseException) -> bool:
    """A rate limit, time-out, dropped connection or 5xx: worth retrying after a pause.

    DSPy's own classification is used for its LM errors (``LMRateLimitError``,
    ``LMTimeoutError``, ``LMServerError``, ``LMTransportError``), which carry ``.status``;
    other errors count by their HTTP status or their type's name.

    Example:
        >>> is_transient(TimeoutError("slow")), is_transient(ValueError("bad answer"))
        (True, False)
    """
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    dspy_errors = sys.modules.get("dspy.utils.exceptions")  # loaded whenever one of its errors exists
    if dspy_errors is not None and dspy_errors.is_retryable_lm_error(exc):
        return True
    status = http_status(exc)
    if status is not None and status in _TRANSIENT_STATUS:
        return True
    return any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__)


def retry_after(exc: BaseException) -> float:
    """The wait a rate-limited server asked for (``retry_after``, seconds), or 0."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    return 0.0


def retry_base_delay(env: dict[str, str] | None = None) -> float:
    """The first retry wait in seconds: ``$ZSL_RETRY_BASE_DELAY``, default 1 (later waits double).

    Example:
        >>> retry_base_delay({}), retry_base_delay({"ZSL_RETRY_BASE_DELAY": "0.05"})
        (1.0, 0.05)
    """
    raw = (os.environ if env is None else env).get("ZSL_RETRY_BASE_DELAY", "").strip()
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise InputError(f"ZSL_RETRY_BASE_DELAY must be a number of seconds >= 0, got {raw!r}. Fix: unset it "
                         "(default 1) or set e.g. ZSL_RETRY_BASE_DELAY=2.")
    return value


def retry_call(fn: Callable[[], Any], *, retries: int = 3, base_delay: float = 1.0, max_delay: float = 60.0,
               sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> Any:
    """Call ``fn()``; on a transient error (:func:`is_transient`) wait and try again.

    The waits grow exponentially (``base_delay * 2**attempt``, capped at ``max_delay``) with up
    to 50% random jitter so that concurrent workers do not retry in lockstep; a server that
    says how long to wait (``retry_after`` on the error) is waited for at least that long (up
    to ``max_delay``). Other errors, and the last transient one, propagate.

    Example:
        >>> calls = []
        >>> def flaky():
        ...     calls.append(1)
        ...     if len(calls) < 3:
        ...         raise TimeoutError("slow")
        ...     return "ok"
        >>> retry_call(flaky, sleep=lambda s: None), len(calls)
        ('ok', 3)
    """
    rng = rng or random.Random()
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt >= retries or not is_transient(exc):
                raise
            delay = min(max_delay, base_delay * 2**attempt) * (1.0 + 0.5 * rng.random())
            sleep(min(max_delay, max(delay, retry_after(exc))))
    raise AssertionError("unreachable")  # pragma: no cover
