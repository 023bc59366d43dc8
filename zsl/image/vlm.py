"""Photos through a vision-language model (VLM): the photo on the wire, the Infer and Rank steps, paid once.

* :func:`photo_payload` turns an image file into what is sent: read once without following a
  link, hashed (sha256 of the file's own bytes), decoded with the guards of
  :mod:`zsl.data.images` (decompression bombs, broken files; EXIF rotation, transparency
  flattened onto white, CMYK / palette / 16-bit to RGB, the first frame of an animation),
  shrunk to ``max_side`` on its longest side and re-encoded as a JPEG of fixed quality, so
  the same bytes always give the same :class:`PhotoPayload`.
* :class:`VisionSteps` asks the VLM (any LiteLLM vision model behind a ``dspy.LM``): Infer
  (the photo -> short phrases: objects, scene, attributes) and Rank (the photo and numbered
  candidate labels -> one ``N: yes`` / ``N: no`` line each; the score is the yes/no log-odds
  where the server returns token log-probabilities, else the answer itself, parsed by
  :func:`parse_yes_no`). A Rank answer that cannot be read raises :class:`RemoteModelError`:
  the labeller reports that photo and goes on.
* Every answer is kept in :class:`AnswerCache` (``$ZSL_HOME/vlm``), keyed by the photo's
  sha256, the model, the prompt version, ``max_side`` and the question, never by the path:
  the same photo under two names is asked once, a changed photo is asked again, and a paid
  answer survives a crash, a kill or a parse failure.
* :func:`fuse_photo` combines the global-local image-text scores with the retrieval of the
  phrases onto the vocabulary and the Rank scores (:func:`zsl.fusion.fused_scores`).

Example:
    >>> from PIL import Image
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "red.png"
    >>> Image.new("RGB", (2000, 1000), "red").save(f)
    >>> p = photo_payload(f, max_side=768)
    >>> (p.width, p.height), p.data_url[:23]
    ((768, 384), 'data:image/jpeg;base64,')
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zsl.base import ItemScores, Ranked
from zsl.data.files import read_private, write_text_atomic
from zsl.data.images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE, decode_image
from zsl.errors import InputError, RemoteModelError
from zsl.fusion import DEFAULTS, FusionItem, fused_scores
from zsl.index import max_over_phrases

__all__ = ["CHECK_QUESTION", "DEFAULT_IMAGE_SHARE", "DEFAULT_VLM_MAX_SIDE", "JPEG_QUALITY", "MAX_PHOTO_BYTES",
           "PHOTO_DEFAULTS", "AnswerCache", "PhotoIRR", "PhotoPayload",
           "VisionSteps", "build_photo_irr", "check_vlm", "encode_photo", "fuse_photo", "fusion_item",
           "parse_vlm_phrases", "parse_yes_no", "photo_payload", "phrase_parts", "phrase_similarities", "read_photo",
           "reads_images", "resolve_vlm", "retrieval_queries"]

DEFAULT_VLM_MAX_SIDE = 768  # what OpenAI's "high detail" tiles and most open VLMs see anyway

#: The image scores' share of a photo's fused scores when no weights were fitted; the describer's phrases get the
#: rest. Not the text default (0.5): a describer that names what it sees is far more precise than the offline
#: backbone's global-local scores. On the 50 captioned COCO photos (human captions standing in for a very good
#: VLM, BENCHMARKS.md "Images with a describer"), ``zsl fit`` chose 0.1 or 0.2 on every fold, and an equal share
#: let the image scores decide each photo's top labels (P@1 70 as for the image scores alone, against 96 for the
#: captions). A weaker describer deserves more: fit the weights on a few labelled photos.
DEFAULT_IMAGE_SHARE = 0.2
#: The fusion weights of photos without fitted ones (:data:`zsl.fusion.DEFAULTS` with the image share above).
PHOTO_DEFAULTS: dict[str, float] = {**DEFAULTS, "text_weight": DEFAULT_IMAGE_SHARE}
JPEG_QUALITY = 90
# A photo file above this is refused before it is read (a camera RAW is ~50 MB; a file of gigabytes is not a photo).
MAX_PHOTO_BYTES = 256 * 1024 * 1024
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass(frozen=True)
class PhotoPayload:
    """A photo as a VLM request carries it.

    Attributes:
        data_url: ``data:image/jpeg;base64,...`` of the re-encoded photo.
        sha256: of the ORIGINAL file's bytes (the cache key; never the path).
        sent_bytes: bytes of the re-encoded JPEG (before base64).
        width, height: of the re-encoded photo.
    """

    data_url: str
    sha256: str
    sent_bytes: int
    width: int
    height: int


def read_photo(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS,
               max_side: int = DEFAULT_MAX_SIDE) -> tuple[str, Any]:
    """``(sha256 of the file's bytes, the decoded RGB image)``, the bytes read once, never through a link.

    Raises:
        InputError: a URL instead of a path, a link, a missing, empty, oversized or unreadable file, or
            a non-image (the message says which and the fix).
    """
    text = os.fspath(path)
    if _URL.match(str(text)):
        raise InputError(f"{text} is a URL; zsl labels files on this machine and never downloads them. Fix: "
                         "download the photo and list its local path.")
    p = Path(text)
    try:
        size = p.lstat().st_size
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror or exc}") from None
    if size > MAX_PHOTO_BYTES:
        raise InputError(f"{p} is {size / 2**20:.0f} MB, above the {MAX_PHOTO_BYTES // 2**20} MB a photo may have. "
                         "Fix: downscale or re-encode it first.")
    data = read_private(p)
    return hashlib.sha256(data).hexdigest(), decode_image(data, max_pixels=max_pixels, max_side=max_side)


def encode_photo(img: Any, sha256: str, *, max_side: int = DEFAULT_VLM_MAX_SIDE) -> PhotoPayload:
    """The payload of a decoded RGB image: shrunk to ``max_side`` (bicubic) and saved as a JPEG of
    quality :data:`JPEG_QUALITY`, without metadata (deterministic: the same pixels give the same bytes)."""
    from PIL import Image

    if max_side < 16:
        raise InputError(f"max_side must be at least 16 pixels, got {max_side}")
    if max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=2, optimize=False, progressive=False)
    jpg = buf.getvalue()
    url = "data:image/jpeg;base64," + base64.b64encode(jpg).decode("ascii")
    return PhotoPayload(url, sha256, len(jpg), img.size[0], img.size[1])


def photo_payload(path: str | os.PathLike[str], *, max_side: int = DEFAULT_VLM_MAX_SIDE,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> PhotoPayload:
    """The photo at ``path`` as a VLM request carries it (see the module docstring).

    Args:
        path: an image file (a URL is refused: nothing is downloaded).
        max_side: longest side of the photo sent, in pixels.
        max_pixels: images with more pixels are refused (JPEGs are first decoded at a reduced scale).

    Raises:
        InputError: the file cannot be used; the message says why.
    """
    sha, img = read_photo(path, max_pixels=max_pixels)
    return encode_photo(img, sha, max_side=max_side)


# --------------------------------------------------------------------------- answers


_BULLET = re.compile(r"^\s*(?:[-*\u2022]+|\d+[.)]|\(\d+\))\s*")
_LEAD = re.compile(r"^(?:the |this )?(?:image|photo|picture)\s+(?:shows|contains|depicts)\s+|^there (?:is|are)\s+",
                   re.IGNORECASE)


def parse_vlm_phrases(raw: str | None, max_phrases: int = 8) -> list[str]:
    """Short distinct phrases from a VLM's Infer answer: one per line (bullets dropped); a one-line list is
    split on commas; prose (a line of more than 6 words) is split into sentences and clauses, and a lead
    such as "The image shows" is dropped.

    Example:
        >>> parse_vlm_phrases("- dog\\n- frisbee\\nDog")
        ['dog', 'frisbee']
        >>> parse_vlm_phrases("The image shows a man riding a wave on a surfboard, and a beach in the back.")
        ['a man riding a wave on a surfboard', 'a beach in the back']
    """
    lines = str(raw or "").splitlines()
    nonempty = [ln.strip() for ln in lines if ln.strip()]
    if len(nonempty) == 1 and "," in nonempty[0] and all(len(p.split()) <= 5 for p in nonempty[0].split(",")):
        lines = nonempty[0].split(",")
    pieces: list[str] = []
    for line in lines:
        line = _BULLET.sub("", line).strip().strip("\"'`*").strip()
        if len(line.split()) > 6:
            for sentence in re.split(r"(?<=[.;!?])\s+", line):
                pieces.extend(re.split(r",\s*(?:and\s+|with\s+)?|\s+and\s+(?=an?\s|the\s)", sentence))
        else:
            pieces.append(line)
    out: list[str] = []
    for piece in pieces:
        text = _LEAD.sub("", piece.strip()).strip(" .;:!").strip()
        if text and len(text) <= 120 and text.casefold() not in {o.casefold() for o in out}:
            out.append(text)
    return out[:max_phrases]


_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}
_LINE = re.compile(r"^\W*(\d+)\s*[:.)=\-]\s*\**\s*(yes|no|true|false)\b", re.IGNORECASE | re.MULTILINE)


def _json_answers(text: str, n: int, labels: Sequence[str]) -> dict[int, float]:
    """``{candidate: score}`` from a JSON object in the answer (keys: numbers or labels; values: yes/no, bools or
    numbers in [0, 1]); empty when there is none."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return {}
    try:
        obj = json.loads(text[start:end + 1])
    except ValueError:
        return {}
    by_label = {str(lab).casefold(): i for i, lab in enumerate(labels)}
    out: dict[int, float] = {}
    for key, value in obj.items() if isinstance(obj, dict) else ():
        key = str(key).strip()
        i = int(key) - 1 if key.isdigit() else by_label.get(key.casefold(), -1)
        if not 0 <= i < n:
            continue
        word = str(value).strip().casefold()
        if isinstance(value, bool) or word in _YES | _NO:
            out[i] = 1.0 if (value is True or word in _YES) else 0.0
        elif isinstance(value, int | float) and 0.0 <= float(value) <= 1.0:
            out[i] = float(value)
    return out


def _logodds_at(logprobs: Sequence[Sequence[Any]] | None, offset: int) -> float | None:
    """P(yes) from the token that covers character ``offset`` of the answer: its top alternatives'
    log-probabilities of "yes" and "no" (sigmoid of their difference), or None without log-probabilities."""
    if not logprobs:
        return None
    pos = 0
    for token, lp, top in logprobs:
        if pos <= offset < pos + len(token) or (pos >= offset and token.strip()):
            alts = {str(t).strip().casefold(): float(v) for t, v in top}
            alts.setdefault(str(token).strip().casefold(), float(lp))
            yes = max((v for t, v in alts.items() if t in ("yes", "true")), default=None)
            no = max((v for t, v in alts.items() if t in ("no", "false")), default=None)
            if yes is not None and no is not None:
                x = max(-30.0, min(30.0, yes - no))
                return 1.0 / (1.0 + math.exp(-x))
            if yes is not None:
                return math.exp(yes)
            return 1.0 - math.exp(no) if no is not None else None
        pos += len(token)
    return None


def parse_yes_no(text: str | None, labels: Sequence[str],
                 logprobs: Sequence[Sequence[Any]] | None = None) -> np.ndarray:
    """Rank scores in [0, 1], one per candidate, from a VLM's answer.

    Read in this order: lines ``N: yes`` / ``N: no`` (the score is the yes/no log-odds of that
    token when ``logprobs`` -- ``[(token, logprob, [(alternative, logprob), ...]), ...]`` -- are
    given, else 1 or 0); lines ``label: yes``; a JSON object. A candidate the answer does not
    mention scores 0.

    Raises:
        RemoteModelError: nothing in the answer says yes or no about any candidate (prose, an empty
            answer): the message quotes the start of the answer.

    Example:
        >>> parse_yes_no("1: yes\\n2: No", ["dog", "cat"]).tolist()
        [1.0, 0.0]
        >>> parse_yes_no('{"cat": true}', ["dog", "cat"]).tolist()
        [0.0, 1.0]
    """
    text = str(text or "")
    n = len(labels)
    found: dict[int, float] = {}
    for m in _LINE.finditer(text):
        i = int(m.group(1)) - 1
        if 0 <= i < n and i not in found:
            p = _logodds_at(logprobs, m.start(2))
            found[i] = p if p is not None else (1.0 if m.group(2).casefold() in _YES else 0.0)
    if not found:
        for i, label in enumerate(labels):
            m = re.search(rf"^\W*{re.escape(str(label))}\s*[:=\-]\s*(yes|no|true|false)\b", text,
                          re.IGNORECASE | re.MULTILINE)
            if m:
                found[i] = 1.0 if m.group(1).casefold() in _YES else 0.0
    found = found or _json_answers(text, n, labels)
    if not found:
        shown = " ".join(text.split())[:160] or "(an empty answer)"
        raise RemoteModelError(f"the VLM's Rank answer could not be read: expected one line 'N: yes' or 'N: no' per "
                               f"candidate (N = 1..{n}), got: {shown!r}. The answer is kept (a rerun does not pay for "
                               "it again). Fix: a model that follows the format, or --no-rank.")
    scores = np.zeros(n, dtype=np.float32)
    for i, p in found.items():
        scores[i] = p
    return scores


# --------------------------------------------------------------------------- the cache


class AnswerCache:
    """VLM answers on disk (``$ZSL_HOME/vlm/<key>.json``), written atomically; a damaged file is a miss.

    A key hashes the step, the model, the prompt version, ``max_side``, the question and the
    photo's sha256: never its path.
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None):
        from zsl.util.paths import subdir

        self.folder = Path(folder) if folder is not None else subdir("vlm")
        self.folder.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(*parts: str) -> str:
        from zsl.util.cache import content_hash

        return content_hash("zsl-vlm-answer/1", list(parts))

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            got = json.loads(read_private(self.folder / f"{key}.json"))
        except (InputError, OSError, ValueError):
            return None
        return got if isinstance(got, dict) and isinstance(got.get("text"), str) else None

    def put(self, key: str, answer: dict[str, Any]) -> None:
        write_text_atomic(self.folder / f"{key}.json", json.dumps(answer, ensure_ascii=False))


# --------------------------------------------------------------------------- the model


def reads_images(lm: Any) -> bool:
    """True for an LM that can be sent photos: a ``provider/model`` name or LM (LiteLLM routes images to any
    vision model), or an object that says so (``reads_images = True``, e.g. a local multimodal model)."""
    if lm is None:
        return False
    if getattr(lm, "reads_images", False):
        return True
    from zsl.models.lm import is_remote_lm

    return is_remote_lm(lm)


def _as_logprobs(response: Any) -> list[list[Any]] | None:
    """The answer's token log-probabilities as JSON-ready ``[token, logprob, [[alternative, logprob], ...]]``."""
    seq = getattr(response, "logprobs", None)
    if not seq:
        return None
    return [[t.token, float(t.logprob), [[a.token, float(a.logprob)] for a in (t.top or ())]] for t in seq]


def _usage(response: Any, payload: PhotoPayload) -> dict[str, int]:
    """One call's usage: tokens (image tokens where the server reports them) and the photo's bytes."""
    u = getattr(response, "usage", None)
    raw = (getattr(response, "provider_data", None) or {}).get("usage") or {}
    details = raw.get("prompt_tokens_details") or {} if isinstance(raw, dict) else {}
    return {"calls": 1, "prompt_tokens": int(getattr(u, "input_tokens", 0) or 0),
            "completion_tokens": int(getattr(u, "output_tokens", 0) or 0),
            "image_tokens": int(details.get("image_tokens") or 0) if isinstance(details, dict) else 0,
            "images": 1, "bytes_sent": payload.sent_bytes}


_TOKENS = ("prompt_tokens", "completion_tokens", "image_tokens")


@dataclass
class VisionSteps:
    """The VLM's two steps for one photo, each answer asked once (:class:`AnswerCache`).

    Args:
        lm: a ``dspy.LM`` of a vision model (LiteLLM name ``provider/model``).
        label_kind: how the prompts name the labels (``"objects"``, ``"labels"`` ...).
        max_phrases: phrases kept from Infer.
        max_side: longest side of the photo sent (part of the cache key).
        logprobs: ask Rank for token log-probabilities (``False``: parse the answer only). A server
            that refuses them (HTTP 400) is asked again without, once per run.
        cache: the answer cache (None: ``$ZSL_HOME/vlm``).

    Attributes:
        notes: what happened once per run (log-probabilities refused ...).
    """

    lm: Any
    label_kind: str = "labels"
    max_phrases: int = 8
    max_side: int = DEFAULT_VLM_MAX_SIDE
    logprobs: bool = True
    cache: AnswerCache | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.cache is None:
            self.cache = AnswerCache()

    @property
    def model(self) -> str:
        return str(getattr(self.lm, "model", None) or type(self.lm).__name__)

    def _ask(self, step: str, question: str, payload: PhotoPayload, *, max_tokens: int,
             logprobs: bool = False) -> tuple[dict[str, Any], dict[str, int]]:
        """The answer to ``question`` about the photo, from the cache or the model (then kept)."""
        from zsl.prompting import load_prompt

        key = AnswerCache.key(step, self.model, load_prompt(f"image_{step}").id, str(self.max_side),
                              str(JPEG_QUALITY), question, payload.sha256)
        assert self.cache is not None
        got = self.cache.get(key)
        if got is not None:  # free now; what it cost when paid (kept with it) lets --dry-run price a fresh run
            paid = got.get("usage") if isinstance(got.get("usage"), dict) else {}
            return got, {"cache_hits": 1, **{f"cached_{k}": int(paid.get(k) or 0) for k in _TOKENS}}
        response = self._call(question, payload, max_tokens=max_tokens, logprobs=logprobs)
        usage = _usage(response, payload)
        answer = {"text": response.text or "", "logprobs": _as_logprobs(response), "model": self.model,
                  "step": step, "sha256": payload.sha256, "usage": {k: usage[k] for k in _TOKENS}}
        self.cache.put(key, answer)
        return answer, usage

    def _call(self, question: str, payload: PhotoPayload, *, max_tokens: int, logprobs: bool) -> Any:
        from dspy.lm15 import Config, ImagePart, Message, Request, TextPart

        image = ImagePart(media_type="image/jpeg", url=payload.data_url)
        request = Request(model=self.model, messages=(Message.user([TextPart(question), image]),),
                          config=Config(max_tokens=max_tokens, temperature=0.0, logprobs=5 if logprobs else None))
        return self.lm(request)

    def infer(self, payload: PhotoPayload) -> tuple[list[str], dict[str, int]]:
        """The photo's phrases (possibly none) and the call's usage."""
        from zsl.prompting import LabelKind, load_prompt

        question = load_prompt("image_infer").text("instructions", max_phrases=self.max_phrases,
                                                   **LabelKind.parse(self.label_kind).fields())
        answer, usage = self._ask("infer", question, payload, max_tokens=16 + 10 * self.max_phrases)
        return parse_vlm_phrases(answer["text"], self.max_phrases), usage

    def rank_question(self, shown: Sequence[str]) -> str:
        """The Rank prompt for candidates as shown (``label`` or ``label (description)``)."""
        from zsl.prompting import LabelKind, load_prompt

        options = "\n".join(f"{i + 1}. {c}" for i, c in enumerate(shown))
        return load_prompt("image_rank").text("instructions", options=options,
                                              **LabelKind.parse(self.label_kind).fields())

    def rank(self, payload: PhotoPayload, candidates: Sequence[str],
             shown: Sequence[str] | None = None) -> tuple[np.ndarray, dict[str, int]]:
        """P(yes) per candidate and the call's usage.

        Raises:
            RemoteModelError: the answer cannot be read (kept in the cache all the same).
        """
        if not candidates:
            return np.zeros(0, dtype=np.float32), {}
        question = self.rank_question(list(shown or candidates))
        budget = 8 + 6 * len(candidates)
        try:
            answer, usage = self._ask("rank", question, payload, max_tokens=budget, logprobs=self.logprobs)
        except Exception as exc:
            from zsl.util.retry import http_status

            if not self.logprobs or http_status(exc) != 400:
                raise
            self.logprobs = False  # a server without log-probabilities: parse answers from now on
            self.notes.append(f"{self.model} refused token log-probabilities (HTTP 400): Rank reads its answers")
            answer, usage = self._ask("rank", question, payload, max_tokens=budget)
        return parse_yes_no(answer["text"], list(candidates), answer.get("logprobs")), usage


CHECK_QUESTION = "Reply with the single word: ok"


def _check_fix(status: int | None) -> str:
    """What to do about a start-up check that failed with HTTP ``status`` (None: no answer at all)."""
    if status in (400, 415, 422):
        return ("the model refused a photo: it is not a vision model, or its server was started without image "
                "support. Fix: a vision-language model (e.g. Qwen2.5-VL or LLaVA on vLLM / Ollama / llama.cpp's "
                "server, or openai/gpt-4o-mini), or drop --lm to label with the image model alone")
    if status == 404:
        return ("the server serves no model of that name (or --api-base is not its /v1 address). Fix: --lm "
                "PROVIDER/NAME with the NAME the server lists at GET <api-base>/models, e.g. --lm hosted_vllm/NAME")
    if status in (401, 403):
        return ("the server refused the API key. Fix: set the provider's key variable (OPENAI_API_KEY for "
                "openai/..., any value for a local server that checks none)")
    return ("Fix: check that the server is running and reachable (--api-base URL, e.g. http://127.0.0.1:8000/v1), "
            "that the API key variable is set (e.g. OPENAI_API_KEY), and that the model name is right")


def check_vlm(steps: VisionSteps, name: str | None = None, *, attempt: Any = None) -> None:
    """Before labelling, one small real call with a photo (32x32, white; never cached), so a server that is not
    there, a wrong model name or a model that reads no images fails the run at once instead of every photo.

    Args:
        steps: the VLM's steps (their ``lm`` and ``max_side``).
        name: how messages name the model (default: ``steps.model``).
        attempt: runs the call, e.g. with retries (``lambda call: retry_call(call, retries=3)``).

    Raises:
        RemoteModelError: no usable answer; the message says which of the causes above it is and the fix, and
            the error it wraps is its ``__cause__``.
    """
    from PIL import Image

    from zsl.util.retry import http_status

    label = name or steps.model
    payload = encode_photo(Image.new("RGB", (32, 32), (250, 250, 250)), "zsl-start-up-check", max_side=steps.max_side)
    run = attempt or (lambda call: call())
    try:
        out = run(lambda: steps._call(CHECK_QUESTION, payload, max_tokens=4, logprobs=False))
    except Exception as exc:  # provider SDKs raise many types; each is translated here
        status = http_status(exc)
        got = f"HTTP {status}: " if status is not None else f"{type(exc).__name__}: "
        raise RemoteModelError(f"The start-up check of {label} (one photo and '{CHECK_QUESTION}') failed with "
                               f"{got}{' '.join(str(exc).split())[:300]}. {_check_fix(status)}.") from exc
    if not str(getattr(out, "text", "") or "").strip():
        raise RemoteModelError(f"{label} answered nothing to the start-up check (one photo and '{CHECK_QUESTION}'). "
                               "Fix: a vision-language model that answers chat requests with images.")


def fuse_photo(image_scores: np.ndarray, phrase_sim: np.ndarray | None, *, cand: np.ndarray | None = None,
               p_yes: np.ndarray | None = None, weights: dict[str, float] | None = None,
               prior: np.ndarray | None = None) -> np.ndarray:
    """``(K,)`` fused scores of one photo (:func:`zsl.fusion.fused_scores`).

    The global-local scores are divided by the photo's best one first, so they share the [0, 1]
    range of the phrase similarities; ``text_weight`` is their share (default
    :data:`DEFAULT_IMAGE_SHARE`), ``rank_weight`` the Rank bonus.

    Example:
        >>> [round(float(v), 2) for v in fuse_photo(np.array([0.2, 0.1]), np.array([0.1, 0.9]))]
        [0.28, 0.82]
    """
    item = fusion_item(image_scores, phrase_sim, cand=cand, p_yes=p_yes)
    return fused_scores(item, prior, dict(PHOTO_DEFAULTS if weights is None else weights)).astype(np.float32)


def fusion_item(image_scores: np.ndarray, phrase_sim: np.ndarray | None, *, cand: np.ndarray | None = None,
                p_yes: np.ndarray | None = None, gold: Sequence[int] = ()) -> FusionItem:
    """One photo's :class:`zsl.fusion.FusionItem`: its global-local scores divided by their best one (so they share
    the [0, 1] range of the phrase similarities) as ``text_sim``; what :func:`zsl.fusion.fit_fusion` fits on.

    Example:
        >>> fusion_item(np.array([0.2, 0.1]), None, gold=[0]).text_sim.tolist()
        [1.0, 0.5]
    """
    g = np.asarray(image_scores, dtype=np.float64)
    top = float(g.max()) if g.size else 0.0
    g = g / top if top > 0 else g
    cand = np.zeros(0, dtype=np.int64) if cand is None else np.asarray(cand)
    p = np.zeros(0, dtype=np.float32) if p_yes is None else np.asarray(p_yes)
    return FusionItem(text_sim=g, phrase_sim=None if phrase_sim is None else np.asarray(phrase_sim, dtype=np.float64),
                      cand=cand, p_yes=p, gold=list(gold))


#: the image share (``text_weight``) :func:`fit_photo_fusion` tries: wider than the text grid's (0.3 to 0.7), down
#: to 0.1, because a describer that names what it sees can be far more precise than the offline backbone's
#: global-local scores (on COCO, human captions rank a true class first for 94% of photos, ConSE for 70%).
IMAGE_SHARE_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def photo_metric_k(golds: Sequence[Sequence[int]], n_labels: int, k: int | None = None) -> int:
    """The K of RP@K that :func:`fit_photo_fusion` is scored by: ``k``, or else the photos' mean number of gold
    labels rounded up (R-precision); at most half the vocabulary (RP@K over every label is always 100)."""
    if k is None:
        k = math.ceil(float(np.mean([len(g) for g in golds]))) if len(golds) else 1
    return max(1, min(int(k), n_labels // 2))


def fit_photo_fusion(items: Sequence[FusionItem], n_labels: int, *, k: int | None = None,
                     defaults: dict[str, float] | None = None) -> Any:
    """Fusion weights for photos fitted on labelled ones (:func:`zsl.fusion.fit_fusion` with
    :data:`IMAGE_SHARE_GRID`): what ``ImageTagger.fit`` / ``zsl fit photos.jsonl --lm ...`` keep.

    Args:
        items: each photo's :func:`fusion_item` with its gold columns.
        n_labels: the vocabulary's size.
        k: the K of RP@K (None: :func:`photo_metric_k`).
        defaults: the weights in use (kept unless others rank the gold labels better).

    Returns:
        The :class:`zsl.fusion.FusionFit`.
    """
    from zsl.fusion import GRID, fit_fusion

    k = photo_metric_k([it.gold for it in items if len(it.gold)], n_labels) if k is None else k
    return fit_fusion(items, None, k=k, grid={**GRID, "text_weight": IMAGE_SHARE_GRID},
                      defaults=dict(PHOTO_DEFAULTS if defaults is None else defaults))


# Where a describer's sentence is cut into the things it names: articles, numbers, possessives, prepositions (also
# the spatial ones of several words, whose noun names no thing) and conjunctions (English; a phrase in another
# language is kept whole).
_PART_BOUNDARY = re.compile(
    r"\b(?:on top of|in front of|in the middle of|at the end of|on the side of|"
    r"a|an|the|one|two|three|four|five|several|some|many|few|his|her|their|its|"
    r"on|in|at|with|near|next to|beside|by|under|over|behind|above|below|of|and|or|while|from|into|onto|down|up|"
    r"through|around|across)\b",
    re.IGNORECASE)
#: phrases of at most this many words are names already ("a red car", "dining table") and are not cut
PART_MIN_WORDS = 4


def phrase_parts(phrase: str) -> list[str]:
    """The things a sentence-like phrase names, cut at its articles, numbers, prepositions and conjunctions.

    A sentence embeds as its main object ("a man riding a wave on top of a surfboard" lands on
    `surfboard` only); its parts land on each thing it names. Phrases of up to
    :data:`PART_MIN_WORDS` words give no parts.

    Example:
        >>> phrase_parts("a man riding a wave on top of a surfboard")
        ['man riding', 'wave', 'surfboard']
        >>> phrase_parts("a dining table")
        []
    """
    if len(phrase.split()) <= PART_MIN_WORDS:
        return []
    parts = (p.strip(" ,.;:!?'\"") for p in _PART_BOUNDARY.split(phrase))
    return [p for p in dict.fromkeys(parts) if len(p) > 2 and p.casefold() != phrase.strip().casefold()]


def retrieval_queries(phrases: Sequence[str]) -> list[str]:
    """What a VLM's phrases are retrieved by: each phrase, then each of their parts (:func:`phrase_parts`), once.

    Example:
        >>> retrieval_queries(["dog", "a man riding a wave on a surfboard"])
        ['dog', 'a man riding a wave on a surfboard', 'man riding', 'wave', 'surfboard']
    """
    return list(dict.fromkeys([*phrases, *(part for p in phrases for part in phrase_parts(p))]))


def phrase_similarities(index: Any, phrases: Sequence[str]) -> np.ndarray | None:
    """``(K,)`` best similarity of each label over the phrases and their parts (:func:`retrieval_queries`; the text
    encoder of ``index``), None without any phrase."""
    if not phrases:
        return None
    return max_over_phrases(index.similarities(index.encoder.encode(retrieval_queries(phrases))))


class PhotoIRR:
    """Infer-Retrieve-Rank for one photo, on top of its global-local scores.

    Infer's phrases are retrieved onto the vocabulary with the text encoder (``index``, a
    :class:`~zsl.index.VocabIndex`: label descriptions as for text), fused with the image's own
    scores (:func:`fuse_photo`), and Rank re-scores the ``rank_top`` best candidates.

    Args:
        steps: the VLM (:class:`VisionSteps`).
        index: the vocabulary index of the text encoder.
        infer, rank: run these steps.
        rank_top: candidates Rank sees.
        weights: fusion weights (keys of :data:`zsl.fusion.DEFAULTS`; None: :data:`PHOTO_DEFAULTS`).
    """

    def __init__(self, steps: VisionSteps, index: Any, *, infer: bool = True, rank: bool = True, rank_top: int = 20,
                 weights: dict[str, float] | None = None):
        if rank_top < 1:
            raise InputError(f"rank_top must be >= 1, got {rank_top}")
        self.steps, self.index = steps, index
        self.infer, self.rank, self.rank_top = infer, rank, rank_top
        # Rank scores rank_top candidates: the fusion adds all of them (weights saved before may name another count)
        self.weights = {**PHOTO_DEFAULTS, **dict(weights or {}), "rank_top": rank_top}

    def shown(self, cand: np.ndarray) -> list[str]:
        """The candidates as Rank shows them: ``label (description)`` where the index uses descriptions."""
        from zsl.prompting import load_prompt
        from zsl.vocab import clean_description

        vocab, prompt = self.index.vocab, load_prompt("image_rank")
        out = []
        for i in cand:
            label = str(vocab[int(i)]).replace("\n", " ")
            raw = vocab.descriptions[int(i)] if self.index.use_descriptions and vocab.descriptions else None
            desc = clean_description(label, raw, max_words=int(prompt.data["description_max_words"]),
                                     max_chars=int(prompt.data["description_max_chars"]))[0]
            out.append(label if desc is None else prompt.text("option_described", label=label, description=desc))
        return out

    def components(self, image_scores: np.ndarray, payload: PhotoPayload) -> dict[str, Any]:
        """What :func:`zsl.fusion.fit_fusion` needs: image and phrase similarities, candidates, P(yes); plus the
        phrases and the usage per step."""
        usage: dict[str, dict[str, int]] = {}
        phrases: list[str] = []
        if self.infer:
            phrases, usage["infer"] = self.steps.infer(payload)
        phrase_sim = phrase_similarities(self.index, phrases)
        before = fuse_photo(image_scores, phrase_sim, weights=self.weights)
        cand = np.argsort(-before, kind="stable")[: self.rank_top]
        p_yes = np.zeros(0, dtype=np.float32)
        if self.rank:
            vocab = self.index.vocab
            p_yes, usage["rank"] = self.steps.rank(payload, [vocab[int(i)] for i in cand], self.shown(cand))
        return {"image_sim": np.asarray(image_scores), "phrase_sim": phrase_sim, "cand": cand, "p_yes": p_yes,
                "phrases": phrases, "before": before, "usage": usage}

    def __call__(self, image_scores: np.ndarray, payload: PhotoPayload) -> ItemScores:
        """The photo's ``(K,)`` fused scores with the row fields ``phrases`` (with Infer), ``retrieval_labels``
        (with Rank: the scores before it) and ``notes``, and the usage per step."""
        c = self.components(image_scores, payload)
        scores = fuse_photo(c["image_sim"], c["phrase_sim"], cand=c["cand"], p_yes=c["p_yes"], weights=self.weights)
        fields: dict[str, Any] = {}
        if self.infer:
            fields["phrases"] = list(c["phrases"])
        if self.rank:
            fields["retrieval_labels"] = Ranked(c["before"])
        notes = [] if c["phrases"] or not self.infer else ["the VLM gave no phrases: scored from the image alone"]
        if notes:
            fields["notes"] = notes
        return ItemScores(scores, fields, c["usage"])

    def config(self) -> dict[str, Any]:
        """What changes this step's scores (the run manifest records it)."""
        from zsl.prompting import load_prompt

        return {"lm": self.steps.model, "infer": self.infer, "rank": self.rank, "rank_top": self.rank_top,
                "max_side": self.steps.max_side, "jpeg_quality": JPEG_QUALITY, "label_kind": self.steps.label_kind,
                "prompts": [load_prompt("image_infer").id, load_prompt("image_rank").id],
                "encoder": self.index.encoder.model_id, "label_descriptions": bool(self.index.use_descriptions),
                "weights": self.weights}


def resolve_vlm(lm: Any, *, api_base: str | None = None, timeout: float | None = None) -> Any:
    """The LM object of ``lm`` for VLM calls: a name is built with :func:`zsl.models.lm.get_lm` (``api_base``); a
    ``dspy.LM`` is copied with the time limit and without DSPy's own retries (zsl retries, see
    :func:`zsl.util.retry.retry_call`); the objects passed in are left alone."""
    from zsl.models.lm import REMOTE_TIMEOUT, get_lm

    if isinstance(lm, str | os.PathLike):
        extra = {"api_base": api_base} if api_base else {}
        lm = get_lm(str(lm), **extra)
    if hasattr(lm, "kwargs") and hasattr(lm, "copy"):
        limit = timeout or lm.kwargs.get("timeout") or REMOTE_TIMEOUT
        lm = lm.copy(timeout=limit, num_retries=0)
    return lm


def build_photo_irr(tagger: Any) -> PhotoIRR | None:
    """The :class:`PhotoIRR` of an :class:`~zsl.image.tagger.ImageTagger`'s settings (``lm``, ``infer``,
    ``rank`` ...), or None when its ``lm`` reads no images or both steps are off."""
    lm = tagger.lm
    if lm is None or not (tagger.infer or tagger.rank):
        return None
    if isinstance(lm, str | os.PathLike):
        from zsl.models.lm import is_remote

        if not is_remote(str(lm)):
            return None
    elif not reads_images(lm):
        return None
    from zsl.index import VocabIndex
    from zsl.models.encoders import get_encoder

    steps = VisionSteps(resolve_vlm(lm, api_base=tagger.api_base, timeout=tagger.timeout),
                        label_kind=tagger.label_kind, max_side=tagger.vlm_max_side)
    index = VocabIndex(tagger.vocab, get_encoder(tagger.encoder))
    return PhotoIRR(steps, index, infer=tagger.infer, rank=tagger.rank, rank_top=tagger.rank_top,
                    weights=tagger.fusion)
