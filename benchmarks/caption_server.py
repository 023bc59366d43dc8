"""An OpenAI-compatible server on loopback that answers a photo with what people wrote about it.

The VLM benchmark (``python -m benchmarks.images vlm``) stands human COCO captions in for a very
good VLM: this server receives zsl's real requests (``POST /v1/chat/completions`` with the photo
as an ``image_url`` data-URL content part), decodes the photo it was sent, finds which photo it
is and answers with that photo's captions, one per line.

The photo is identified from its pixels, not from anything zsl says about it: the decoded image
is shrunk to a 16x16 grey thumbnail and compared with thumbnails of the known photos made from
the original files. The nearest one is the answer if it is close (mean absolute difference under
:data:`MATCH_DISTANCE` grey levels; re-encoding and downscaling move a thumbnail by 1-2 levels,
different photos are tens apart) and clearly nearer than the second; otherwise the request is
refused (HTTP 400, "unknown photo"), so a request carrying the wrong photo, or none, cannot be
answered with a right photo's captions.

Example::

    with CaptionServer({"a.jpg": ["a dog on a sofa"]}, {"a.jpg": "photos/a.jpg"}) as server:
        ...  # dspy.LM("openai/x", api_base=server.api_base, api_key="x")
        server.asked  # ["a.jpg", ...]: the photo each request carried, in arrival order
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import numpy as np

__all__ = ["MATCH_DISTANCE", "CaptionServer", "image_parts", "thumbnail"]

MATCH_DISTANCE = 8.0  # mean absolute grey-level difference of two 16x16 thumbnails of the same photo


def thumbnail(img: Any) -> np.ndarray:
    """A 16x16 grey thumbnail (float, 0-255) of a PIL image, EXIF orientation applied."""
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(img)
    return np.asarray(img.convert("L").resize((16, 16), Image.Resampling.BOX), dtype=np.float32)


def image_parts(messages: Sequence[Mapping[str, Any]]) -> list[bytes]:
    """The bytes of every data-URL image in the messages' content parts (OpenAI's ``image_url`` parts)."""
    found = []
    for m in messages:
        content = m.get("content")
        for part in content if isinstance(content, list) else ():
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            url = part.get("image_url")
            url = url.get("url", "") if isinstance(url, dict) else str(url or "")
            if url.startswith("data:") and ";base64," in url:
                found.append(base64.b64decode(url.split(";base64,", 1)[1]))
    return found


class CaptionServer:
    """Serve chat completions on ``127.0.0.1:<free port>`` from a thread, answering photos with captions.

    Args:
        captions: photo id -> the sentences to answer it with (one per line).
        photos: photo id -> its original file, for the thumbnails that identify it. Photos without
            captions can be listed too: they are recognised and answered with an empty answer.

    Attributes:
        asked: the photo id each image request carried, in arrival order.
        refused: requests refused because their photo was unknown or missing.
        requests: every chat request (the start-up check without a photo included).
    """

    def __init__(self, captions: Mapping[str, Sequence[str]], photos: Mapping[str, str | Path]):
        from PIL import Image

        self.captions = {k: list(v) for k, v in captions.items()}
        self.ids = list(photos)
        with_thumbs = []
        for key in self.ids:
            with Image.open(photos[key]) as img:
                with_thumbs.append(thumbnail(img))
        self._thumbs = np.stack(with_thumbs) if with_thumbs else np.zeros((0, 16, 16), np.float32)
        self.asked: list[str] = []
        self.refused = 0
        self.requests = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="caption-server", daemon=True)

    def identify(self, data: bytes) -> str | None:
        """The id of the known photo these image bytes show, or None."""
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as img:
                t = thumbnail(img)
        except Exception:  # noqa: BLE001 - anything that does not decode is an unknown photo
            return None
        if not len(self._thumbs):
            return None
        dist = np.abs(self._thumbs - t).mean(axis=(1, 2))
        order = np.argsort(dist)
        best = float(dist[order[0]])
        second = float(dist[order[1]]) if len(order) > 1 else np.inf
        return self.ids[int(order[0])] if best < MATCH_DISTANCE and best < 0.5 * second else None

    def answer(self, messages: Sequence[Mapping[str, Any]]) -> tuple[int, str]:
        """``(HTTP status, answer text or error message)`` for one request's messages."""
        from zsl.image.vlm import CHECK_QUESTION

        images = image_parts(messages)
        if not images or CHECK_QUESTION in json.dumps(list(messages)):
            return 200, "ok"  # zsl's start-up check (its own small photo), or a text-only question
        found = [self.identify(b) for b in images]
        with self._lock:
            if None in found:
                self.refused += 1
                return 400, "unknown photo: the image in the request matches none of the benchmark's photos"
            self.asked.extend(found)  # type: ignore[arg-type]
        return 200, "\n".join(line for key in found for line in self.captions.get(key, []))  # type: ignore[arg-type]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep the benchmark's output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                with server._lock:
                    server.requests += 1
                status, text = server.answer(body.get("messages") or [])
                if status != 200:
                    return self._send(status, {"error": {"message": text, "type": "invalid_request_error"}})
                self._send(200, {
                    "id": f"chatcmpl-{server.requests}", "object": "chat.completion", "created": 0,
                    "model": body.get("model", "captions"),
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": max(1, len(text.split())),
                              "total_tokens": 10 + max(1, len(text.split()))},
                })

            def _send(self, status: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    @property
    def api_base(self) -> str:
        """``http://127.0.0.1:PORT/v1``, what ``--api-base`` takes."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
