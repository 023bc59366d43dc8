"""A tiny OpenAI-compatible chat server on loopback, for testing remote-LM behaviour for real.

It answers ``POST /v1/chat/completions`` the way vLLM or the OpenAI API would, in the format
DSPy's ChatAdapter parses (``[[ ## phrases ## ]]`` ... ``[[ ## completed ## ]]``), and can be
told to fail: answer an HTTP status (429, 503 ...) to the first ``fail_first`` chat requests
(or to all of them), or accept a request and never answer (``hang``).

It also reads photos (``image_url`` content parts holding base64 data URLs): it decodes each
one and answers from its content, so a test proves that a request carried the right photo.
A photo is named by its mean colour (:data:`PALETTE`; solid-colour test photos survive JPEG
re-encoding and shrinking); ``photos`` maps a colour to the phrases Infer answers, and Rank
answers ``N: yes`` for the candidates among them, ``N: no`` for the rest (with token
log-probabilities when the request asks for them).

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

__all__ = ["PALETTE", "FakeOpenAI", "decode_photo", "infer_answer", "item_text", "photo_answer", "request_photos"]

# Colours of the solid test photos, and the name the server gives a photo (its mean colour's nearest).
PALETTE = {"red": (220, 20, 20), "green": (20, 160, 20), "blue": (20, 20, 220), "yellow": (230, 220, 20),
           "white": (250, 250, 250), "black": (5, 5, 5), "purple": (130, 20, 140), "orange": (240, 140, 10)}

_TEXT = re.compile(r"\[\[ ## text ## \]\]\s*(.*?)\s*(?:\n\s*\n|\[\[ ## |$)", re.DOTALL)


def _content(message: dict) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content


def request_photos(messages: list[dict]) -> list[str]:
    """The data URLs of the photos a request carries (``image_url`` content parts), in order."""
    out = []
    for m in messages:
        for part in m.get("content") if isinstance(m.get("content"), list) else ():
            if isinstance(part, dict) and part.get("type") == "image_url":
                url = part.get("image_url")
                out.append(url.get("url") if isinstance(url, dict) else url)
    return out


def decode_photo(data_url: str) -> dict:
    """A data URL's photo: ``{"colour", "bytes", "width", "height", "format"}`` (the colour: :data:`PALETTE`'s
    nearest to its mean)."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    head, _, b64 = data_url.partition(",")
    raw = base64.b64decode(b64)
    with Image.open(io.BytesIO(raw)) as img:
        fmt, (w, h) = img.format, img.size
        mean = np.asarray(img.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    colour = min(PALETTE, key=lambda c: float(((mean - np.array(PALETTE[c])) ** 2).sum()))
    return {"colour": colour, "bytes": len(raw), "width": w, "height": h, "format": fmt, "media": head}


def photo_answer(question: str, phrases: list[str], *, logprobs: bool = False) -> tuple[str, list | None]:
    """The answer to a photo request: Rank (the question lists ``Candidates:``) says ``N: yes`` for the
    candidates among ``phrases``; Infer lists ``phrases``. With ``logprobs``, OpenAI's ``logprobs.content``."""
    if "Candidates:" not in question:
        return "\n".join(phrases), None
    block = question.split("Candidates:", 1)[1]
    cands = re.findall(r"^(\d+)\. (.+?)(?: \(.*\))?$", block, re.MULTILINE)
    wanted = {p.casefold() for p in phrases}
    lines = [f"{n}: {'yes' if label.casefold() in wanted else 'no'}" for n, label in cands]
    if not logprobs:
        return "\n".join(lines), None
    content = []
    for i, line in enumerate(lines):
        head, word = line.split(" ")
        yes = word == "yes"
        content.append({"token": head + " ", "logprob": 0.0, "top_logprobs": [{"token": head + " ", "logprob": 0.0}]})
        content.append({"token": word, "logprob": -0.05, "top_logprobs": [
            {"token": word, "logprob": -0.05}, {"token": "no" if yes else "yes", "logprob": -3.0}]})
        if i < len(lines) - 1:
            content.append({"token": "\n", "logprob": 0.0, "top_logprobs": [{"token": "\n", "logprob": 0.0}]})
    return "\n".join(lines), content


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
        seen: per photo request, the decoded photo (:func:`decode_photo`) plus ``step`` ("infer" or "rank").

    Photo args:
        photos: colour -> the phrases (labels) a photo of that colour shows.
        rank_answer: answer every Rank request with this text instead (prose, "" ...).
        refuse_photo: answer HTTP 400 to requests whose photo's colour makes this true.
        slow_first, slow_seconds: the first ``slow_first`` photo requests wait this long before answering.
        logprobs: return token log-probabilities to requests that ask for them.
        models: the model names served (None: any); a request for another is answered 404, as vLLM does.

    The start-up check of a photo run (its question is :data:`zsl.image.vlm.CHECK_QUESTION`) is counted in
    :attr:`checks`, not in :attr:`requests` or :attr:`seen`; it fails, hangs and is refused like any photo request.
    """

    def __init__(self, *, fail_first: int | None = 0, fail_status: int = 429,
                 fail_when: Callable[[str], bool] | None = None, hang: bool = False, delay: float = 0.0,
                 photos: dict[str, list[str]] | None = None, rank_answer: str | None = None,
                 refuse_photo: Callable[[str], bool] | None = None, slow_first: int = 0, slow_seconds: float = 0.0,
                 logprobs: bool = True, models: set[str] | None = None):
        self.models = models
        self.checks = 0
        self.photos = photos or {}
        self.rank_answer = rank_answer
        self.refuse_photo = refuse_photo
        self.slow_first, self.slow_seconds, self.slow = slow_first, slow_seconds, 0
        self.logprobs = logprobs
        self.seen: list[dict] = []
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
                if server.models is not None and body.get("model") not in server.models:
                    return self._send(404, {"error": {"message": f"The model `{body.get('model')}` does not exist.",
                                                      "type": "NotFoundError", "code": 404}})
                if request_photos(messages):
                    return self._photo(body, messages)
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

            def _photo(self, body: dict, messages: list[dict]) -> None:
                photo = decode_photo(request_photos(messages)[0])
                question = _content(messages[-1])
                photo["step"] = "rank" if "Candidates:" in question else "infer"
                if question.startswith("Reply with the single word: ok"):
                    photo["step"] = "check"
                with server._lock:
                    if photo["step"] == "check":
                        server.checks += 1
                    else:
                        server.requests += 1
                        server.seen.append(photo)
                    fail = (server.fail_first is None or server.failures < server.fail_first) and \
                        server.fail_first != 0
                    if fail:
                        server.failures += 1
                    slow = server.slow < server.slow_first
                    server.slow += slow
                if slow:
                    server._stop.wait(server.slow_seconds)
                if server.hang:
                    server._stop.wait()
                    return None
                if fail:
                    kind = "rate_limit_exceeded" if server.fail_status == 429 else "server_error"
                    return self._send(server.fail_status, {"error": {"message": f"fake {server.fail_status}",
                                                                     "type": kind, "code": kind}})
                if server.refuse_photo is not None and server.refuse_photo(photo["colour"]):
                    return self._send(400, {"error": {"message": "Invalid image: this photo is refused",
                                                      "type": "invalid_request_error", "code": "invalid_image"}})
                phrases = list(server.photos.get(photo["colour"], [photo["colour"]]))
                text, lps = photo_answer(question, phrases, logprobs=bool(body.get("logprobs")) and server.logprobs)
                if photo["step"] == "rank" and server.rank_answer is not None:
                    text, lps = server.rank_answer, None
                if photo["step"] == "check":
                    text, lps = "ok", None
                choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                if lps is not None:
                    choice["logprobs"] = {"content": lps}
                return self._send(200, {
                    "id": f"chatcmpl-{server.requests}", "object": "chat.completion", "created": 0,
                    "model": body.get("model", "x"), "choices": [choice],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105,
                              "prompt_tokens_details": {"image_tokens": 85}},
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
