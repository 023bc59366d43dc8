"""A tiny OpenAI-compatible chat server on loopback, for testing remote-LM behaviour for real.

It answers ``POST /v1/chat/completions`` the way vLLM or the OpenAI API would, in the format
DSPy's ChatAdapter parses (``[[ ## phrases ## ]]`` ... ``[[ ## completed ## ]]``), and can be
told to fail: answer an HTTP status (429, 503 ...) to the first ``fail_first`` chat requests
(or to all of them), or accept a request and never answer (``hang``).

Example::

    with FakeOpenAI(fail_first=2, fail_status=429) as server:
        lm = dspy.LM("hosted_vllm/x", api_base=server.api_base, ...)
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

__all__ = ["FakeOpenAI", "infer_answer", "item_text"]

_TEXT = re.compile(r"\[\[ ## text ## \]\]\s*(.*?)\s*(?:\n\s*\n|\[\[ ## |$)", re.DOTALL)


def _content(message: dict) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content


def item_text(messages: list[dict]) -> str:
    """The item text a DSPy request is about (its ``[[ ## text ## ]]`` field), or ""."""
    last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    found = _TEXT.findall(_content(last))
    return found[-1] if found else ""


def infer_answer(messages: list[dict]) -> str:
    """An answer derived from the request alone (the same request always gets the same answer).

    Infer (the system message asks for ``phrases``): the first words of the item text, one per
    line, so retrieval with the hashing encoder finds the labels sharing words with the text.
    Rank (``selected``): candidate 1. Anything else (the start-up check): ``ok``.
    """
    system = "".join(_content(m) for m in messages if m.get("role") == "system")
    if "[[ ## selected ## ]]" in system:
        return "[[ ## selected ## ]]\n1\n\n[[ ## completed ## ]]"
    text = item_text(messages)
    if "[[ ## phrases ## ]]" not in system or not text:
        return "ok"
    words = re.findall(r"\w+", text)[:4]
    return "[[ ## phrases ## ]]\n" + "\n".join(words or ["none"]) + "\n\n[[ ## completed ## ]]"


class FakeOpenAI:
    """Serve chat completions on ``127.0.0.1:<free port>`` from a thread.

    Args:
        fail_first: answer ``fail_status`` to this many chat requests before answering normally;
            ``None``: fail every request until :attr:`fail_first` is changed.
        fail_status: the HTTP status of a failure (429 rate limit, 503 unavailable ...).
        fail_when: only requests about an item text for which this is true can fail
            (default: any request, the start-up check included).
        hang: accept every request and never answer (until the server stops).
        delay: seconds to wait before answering each chat request (to see requests overlap).

    Attributes:
        requests: chat requests received (failed ones included).
        failures: requests answered with ``fail_status``.
        texts: the item text of each request ("" for the start-up check), in arrival order.
        max_in_flight: the most chat requests that were being answered at the same time.
    """

    def __init__(self, *, fail_first: int | None = 0, fail_status: int = 429,
                 fail_when: Callable[[str], bool] | None = None, hang: bool = False, delay: float = 0.0):
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.fail_when = fail_when
        self.hang = hang
        self.delay = delay
        self.max_in_flight = 0
        self._in_flight = 0
        self.requests = 0
        self.failures = 0
        self.texts: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                messages = body.get("messages") or []
                text = item_text(messages)
                with server._lock:
                    server.requests += 1
                    server.texts.append(text)
                    fail = server.fail_first is None or server.failures < server.fail_first
                    fail = fail and (server.fail_when is None or server.fail_when(text))
                    if fail and not server.hang:
                        server.failures += 1
                    server._in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server._in_flight)
                try:
                    if server.delay:
                        server._stop.wait(server.delay)
                    self._answer(body, messages, fail)
                finally:
                    with server._lock:
                        server._in_flight -= 1

            def _answer(self, body: dict, messages: list[dict], fail: bool) -> None:
                if server.hang:
                    server._stop.wait()
                    return
                if fail:
                    kind = "rate_limit_exceeded" if server.fail_status == 429 else "server_error"
                    return self._send(server.fail_status, {"error": {"message": f"fake {server.fail_status}",
                                                                     "type": kind, "code": kind}})
                answer = infer_answer(messages)
                self._send(200, {
                    "id": f"chatcmpl-{server.requests}", "object": "chat.completion", "created": 0,
                    "model": body.get("model", "x"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": answer}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                })

            def _send(self, status: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)

    @property
    def api_base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
