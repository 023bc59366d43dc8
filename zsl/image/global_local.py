"""CDUL global-local aggregation and image crops: plain functions on arrays.

The maths of zero-shot image scoring (CDUL, Abdelfattah et al., ICCV 2023, "CLIP-Driven
Unsupervised Learning for Multi-Label Image Classification"):

1. **global**: ``softmax_k(logit_scale * cos(image, label_k))`` for the whole image.
2. **local**: the image is cut into snippets (CDUL uses a 3x3 grid; several grid sizes
   give multi-scale crops, and zsl's default is 2x2 + 3x3) and each snippet is scored the
   same way. Per label,
   ``alpha = max`` and ``beta = min`` over snippets; ``local = alpha`` where
   ``alpha >= threshold`` (some snippet clearly shows the label) else ``beta``.
3. **aggregate**: ``final = (global + local + lam * |global - local|) / 2``; with
   ``lam = 1`` this is the element-wise maximum.

Snippets are either pixel crops (:func:`make_crops`; all crops of a batch of images go
through the backend in one forward pass) or, for CNN backends that offer it, regions of
the last feature map pooled from the whole-image pass (nearly free). The tagger that puts
this to work is :class:`zsl.image.tagger.ImageTagger`.

Example:
    >>> import numpy as np
    >>> g = np.array([[0.6, 0.3, 0.1]])                  # whole image, 3 labels
    >>> snippets = np.array([[[0.9, 0.05, 0.05],         # 2 snippets
    ...                       [0.2, 0.1, 0.7]]])
    >>> local_scores(snippets, threshold=0.5).tolist()
    [[0.9, 0.05, 0.7]]
    >>> aggregate(g, local_scores(snippets), lam=1.0).round(2).tolist()
    [[0.9, 0.3, 0.7]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from zsl.errors import InputError

__all__ = ["CropBatch", "aggregate", "class_probabilities", "global_local_scores", "grid_boxes", "local_scores",
           "make_crops", "softmax"]


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax.

    Example:
        >>> softmax(np.array([0.0, np.log(3.0)])).round(2).tolist()
        [0.25, 0.75]
    """
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.clip(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12, None)


def class_probabilities(image_emb: np.ndarray, text_emb: np.ndarray, *, logit_scale: float = 100.0,
                        groups: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Softmax over labels of ``logit_scale * cosine(image, label)`` (CLIP's zero-shot head).

    Args:
        image_emb: ``(..., D)`` image (or crop) embeddings; normalised here.
        text_emb: ``(T, D)`` text embeddings; normalised here.
        logit_scale: multiplies cosines before the softmax. CLIP's is 100; without it the
            probabilities come out nearly uniform.
        groups: ``(T,)`` label index of each text row. A label's cosine is the mean over
            its texts (prompt ensembles, LLM descriptions). ``None``: one text per label.

    Returns:
        ``(..., K)`` float64 probabilities, rows sum to 1.

    Example:
        >>> img = np.array([[1.0, 0.0]])
        >>> txt = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> class_probabilities(img, txt, logit_scale=100.0).round(4).tolist()
        [[1.0, 0.0]]
        >>> class_probabilities(img, txt, logit_scale=1.0).round(3).tolist()
        [[0.731, 0.269]]
    """
    img = _unit(image_emb)
    txt = _unit(text_emb)
    if txt.ndim != 2 or img.shape[-1] != txt.shape[1]:
        raise InputError(f"image embeddings (..., D) and text embeddings (T, D) must share D; "
                         f"got {img.shape} and {txt.shape}")
    cos = img @ txt.T
    if groups is not None:
        g = np.asarray(groups, dtype=np.int64)
        if g.shape != (txt.shape[0],) or (g.size and g.min() < 0):
            raise InputError(f"groups must give one label index >= 0 per text row ({txt.shape[0]}); got {g!r:.80}")
        n_labels = int(g.max()) + 1
        counts = np.bincount(g, minlength=n_labels)
        if np.any(counts == 0):
            raise InputError(f"groups leave labels {np.flatnonzero(counts == 0)[:5].tolist()} without any text")
        mean_of_group = np.zeros((len(g), n_labels))
        mean_of_group[np.arange(len(g)), g] = 1.0 / counts[g]
        cos = cos @ mean_of_group
    return softmax(logit_scale * cos, axis=-1)


def local_scores(snippet_probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """CDUL's local aggregation over snippets.

    Per label, ``alpha`` is the largest and ``beta`` the smallest snippet score; the local
    score is ``alpha`` where ``alpha >= threshold`` (a snippet is confident the label is
    there) and ``beta`` otherwise (so a label no snippet is sure of stays low).

    Args:
        snippet_probs: ``(N, S, K)`` scores of S snippets per image (several grid sizes
            simply concatenate along S).
        threshold: the confidence ``alpha`` must reach.

    Returns:
        ``(N, K)`` local scores.

    Example:
        >>> s = np.array([[[0.8, 0.3], [0.1, 0.2]]])
        >>> local_scores(s, threshold=0.5).tolist()
        [[0.8, 0.2]]
    """
    s = np.asarray(snippet_probs, dtype=np.float64)
    if s.ndim != 3 or s.shape[1] == 0:
        raise InputError(f"snippet_probs must be (N, S, K) with S >= 1; got shape {s.shape}")
    alpha = s.max(axis=1)
    beta = s.min(axis=1)
    return np.where(alpha >= threshold, alpha, beta)


def aggregate(global_probs: np.ndarray, local: np.ndarray, lam: float = 1.0) -> np.ndarray:
    """CDUL's global-local aggregation: ``(global + local + lam * |global - local|) / 2``.

    ``lam = 1`` gives the element-wise maximum, ``lam = 0`` the mean, ``lam = -1`` the
    minimum.

    Example:
        >>> aggregate(np.array([[0.2, 0.6]]), np.array([[0.4, 0.4]]), lam=0.0).round(2).tolist()
        [[0.3, 0.5]]
    """
    g = np.asarray(global_probs, dtype=np.float64)
    loc = np.asarray(local, dtype=np.float64)
    if g.shape != loc.shape:
        raise InputError(f"global {g.shape} and local {loc.shape} scores must have the same shape")
    return 0.5 * (g + loc + lam * np.abs(g - loc))


def global_local_scores(global_probs: np.ndarray, snippet_probs: np.ndarray, *, threshold: float = 0.5,
                        lam: float = 1.0) -> np.ndarray:
    """Final CDUL scores from whole-image and snippet scores.

    Args:
        global_probs: ``(N, K)`` whole-image label probabilities.
        snippet_probs: ``(N, S, K)`` snippet label probabilities.
        threshold: see :func:`local_scores`.
        lam: see :func:`aggregate`.

    Returns:
        ``(N, K)`` scores in vocabulary order.

    Example:
        >>> g = np.array([[0.5, 0.5]])
        >>> s = np.array([[[0.9, 0.1], [0.3, 0.7]]])
        >>> global_local_scores(g, s).round(2).tolist()
        [[0.9, 0.7]]
    """
    g = np.asarray(global_probs, dtype=np.float64)
    s = np.asarray(snippet_probs, dtype=np.float64)
    if s.ndim != 3 or g.shape != (s.shape[0], s.shape[2]):
        raise InputError(f"global_probs must be (N, K) and snippet_probs (N, S, K); got {g.shape} and {s.shape}")
    return aggregate(g, local_scores(s, threshold), lam)


# --------------------------------------------------------------------------- crops


def grid_boxes(width: int, height: int, grid: int | tuple[int, int] = 3, *, overlap: float = 0.0
               ) -> list[tuple[int, int, int, int]]:
    """Boxes ``(left, top, right, bottom)`` of a ``rows x cols`` grid over an image.

    Args:
        width, height: image size in pixels.
        grid: ``n`` for an ``n x n`` grid, or ``(rows, cols)``.
        overlap: each cell grows by this fraction of its size on every side (clipped to the
            image), so objects cut by a cell border still appear whole in some snippet.

    Returns:
        Row-major boxes; they cover the image.

    Example:
        >>> grid_boxes(90, 60, 3)[:2]
        [(0, 0, 30, 20), (30, 0, 60, 20)]
        >>> grid_boxes(100, 100, 2, overlap=0.1)[0]
        (0, 0, 55, 55)
    """
    rows, cols = (grid, grid) if isinstance(grid, int) else grid
    if rows < 1 or cols < 1:
        raise InputError(f"grid must be >= 1 in each direction, got {grid!r}")
    if not 0.0 <= overlap < 1.0:
        raise InputError(f"overlap must be in [0, 1), got {overlap}")
    if width < 1 or height < 1:
        raise InputError(f"image size must be positive, got {width}x{height}")
    cw, ch = width / cols, height / rows
    boxes = []
    for r in range(rows):
        for c in range(cols):
            left = max(0.0, c * cw - overlap * cw)
            top = max(0.0, r * ch - overlap * ch)
            right = min(float(width), (c + 1) * cw + overlap * cw)
            bottom = min(float(height), (r + 1) * ch + overlap * ch)
            box = (round(left), round(top), round(right), round(bottom))
            # a tiny image can round a cell to nothing; keep at least one pixel
            boxes.append((box[0], box[1], max(box[2], box[0] + 1), max(box[3], box[1] + 1)))
    return boxes


@dataclass
class CropBatch:
    """All crops of a batch of images, flattened so a backend encodes them in one pass.

    Attributes:
        crops: PIL images: for each source image its snippets, grid by grid, row-major.
        image_index: ``(M,)`` which source image each crop comes from.
        grid: ``(M,)`` the grid size each crop belongs to.
        n_images: number of source images.
        per_image: snippets per image (the same for every image).
    """

    crops: list[Any]
    image_index: np.ndarray
    grid: np.ndarray
    n_images: int
    per_image: int

    def reshape(self, rows: np.ndarray) -> np.ndarray:
        """Turn ``(M, ...)`` per-crop rows into ``(n_images, per_image, ...)``."""
        rows = np.asarray(rows)
        if rows.shape[0] != len(self.crops):
            raise InputError(f"expected {len(self.crops)} rows (one per crop), got {rows.shape[0]}")
        return rows.reshape((self.n_images, self.per_image) + rows.shape[1:])


def make_crops(images: Sequence[Any], grids: Sequence[int] = (3,), *, overlap: float = 0.0) -> CropBatch:
    """Cut every image into grid snippets (several grid sizes = multi-scale crops).

    The crops of all images come back in one flat list, so a backend can encode the whole
    batch in one forward pass instead of one pass per crop.

    Args:
        images: PIL images.
        grids: grid sizes; ``(3,)`` is CDUL's 3x3, ``(2, 3)`` adds a 2x2 scale.
        overlap: see :func:`grid_boxes`.

    Example:
        >>> from PIL import Image
        >>> batch = make_crops([Image.new("RGB", (90, 60)), Image.new("RGB", (30, 30))], grids=(1, 2))
        >>> len(batch.crops), batch.per_image, batch.image_index.tolist()
        (10, 5, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
        >>> batch.crops[1].size
        (45, 30)
    """
    grids = tuple(int(g) for g in grids)
    if not grids:
        raise InputError("grids must name at least one grid size, e.g. (3,)")
    crops: list[Any] = []
    owner: list[int] = []
    level: list[int] = []
    for i, img in enumerate(images):
        w, h = img.size
        for g in grids:
            for box in grid_boxes(w, h, g, overlap=overlap):
                crops.append(img.crop(box))
                owner.append(i)
                level.append(g)
    per_image = sum(g * g for g in grids)
    return CropBatch(crops, np.asarray(owner, dtype=np.int64), np.asarray(level, dtype=np.int64), len(images),
                     per_image)
