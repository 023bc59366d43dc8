"""Content-addressed caches under ``$ZSL_HOME``.

* Embeddings: ``$ZSL_HOME/embeddings/<sha256>.npy``, keyed by the encoder's model id and
  the exact texts, so a second run over the same 14k-label vocabulary loads in
  milliseconds and any change to a label, its order or the model is a new key.
* LM calls: DSPy's own cache, pointed at ``$ZSL_HOME/dspy`` by :func:`configure_lm_cache`.
* Local yes/no scores (Rank on a llama.cpp model, which does not pass through DSPy): arrays in
  ``$ZSL_HOME/yesno``, keyed by the model file and the prompt parts (``LlamaCppLM.yes_no_logodds``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from zsl.util.paths import subdir

__all__ = ["EmbeddingCache", "configure_lm_cache", "content_hash"]


def content_hash(*parts: str | Iterable[str]) -> str:
    """sha256 over strings and lists of strings, length-prefixed so no two inputs collide.

    Example:
        >>> content_hash("a,b") != content_hash(["a", "b"])
        True
    """
    h = hashlib.sha256()
    for part in parts:
        items = [part] if isinstance(part, str) else list(part)
        h.update(f"[{len(items)}]".encode())
        for s in items:
            b = s.encode("utf-8")
            h.update(f"{len(b)}:".encode())
            h.update(b)
    return h.hexdigest()


class EmbeddingCache:
    """A folder of ``.npy`` arrays addressed by content hash.

    Args:
        folder: where to keep the files; default ``$ZSL_HOME/embeddings``.
        shard: keep each file in a subfolder named by its key's first two characters (for caches
            of many small arrays, one per LM call, so no folder grows past a few thousand files).
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None, *, shard: bool = False):
        self.folder = Path(folder) if folder is not None else subdir("embeddings")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard = shard

    def key(self, model_id: str, texts: Iterable[str]) -> str:
        return content_hash(model_id, list(texts))

    def path(self, key: str) -> Path:
        return (self.folder / key[:2] if self.shard else self.folder) / f"{key}.npy"

    def get(self, key: str, n_rows: int | None = None) -> np.ndarray | None:
        """The cached array, or None when absent or unreadable (a corrupt file is a miss)."""
        p = self.path(key)
        if not p.exists():
            return None
        try:
            arr = np.load(p, allow_pickle=False)
        except (OSError, ValueError):
            return None
        if n_rows is not None and arr.shape[0] != n_rows:
            return None
        return arr

    def put(self, key: str, arr: np.ndarray | Sequence[float], dtype: str | type = np.float32) -> Path:
        """Write atomically (temp file + rename) so a crash never leaves half an array."""
        from zsl.data.files import atomic_write

        data = np.ascontiguousarray(arr, dtype=dtype)

        def write(tmp: Path) -> None:
            with tmp.open("wb") as fh:  # a file object: np.save would add ".npy" to a path
                np.save(fh, data, allow_pickle=False)

        return atomic_write(self.path(key), write)


def configure_lm_cache(enable: bool = True) -> Path:
    """Point DSPy's disk cache at ``$ZSL_HOME/dspy`` (imports dspy; call lazily).

    The cache is a pickle store, so it is read with DSPy's restricted unpickler: an entry of
    any type outside DSPy's allowlist (plain response data, LiteLLM/OpenAI response models,
    numpy arrays) is dropped as a miss instead of being loaded, so a file planted in the
    folder cannot run code. The folder itself is owner-only (:func:`zsl.util.paths.subdir`).
    """
    import dspy

    folder = subdir("dspy")
    dspy.configure_cache(
        enable_disk_cache=enable,
        enable_memory_cache=enable,
        disk_cache_dir=str(folder),
        restrict_pickle=True,
    )
    return folder
