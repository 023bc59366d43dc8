"""Nearest-label search over a :class:`~zsl.vocab.LabelVocab`.

The index embeds every label once (cached on disk by content hash) and answers queries
with cosine similarities. Below ``faiss_threshold`` labels it is an exact numpy matrix
product; above it a faiss ``IndexFlatIP`` (also exact, with faiss's blocked BLAS search).
The stateless scoring maths (max over phrases, prior reweighting) are plain functions;
the top-k selection is :func:`zsl.base.top_k`.

Example:
    >>> from zsl.models.encoders import HashingEncoder
    >>> from zsl.vocab import LabelVocab
    >>> idx = VocabIndex(LabelVocab(["red fruit", "blue car"]), HashingEncoder(64))
    >>> idx.search_texts(["a red fruit"], k=1)[1].tolist()
    [[0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zsl.base import top_k
from zsl.errors import InputError
from zsl.hierarchy import DEFAULT_LABEL_CONTEXT, label_texts
from zsl.models.encoders import Encoder, encode_cached
from zsl.vocab import LabelVocab

__all__ = ["VocabIndex", "apply_prior", "max_over_phrases"]


def max_over_phrases(sim: np.ndarray) -> np.ndarray:
    """Per label, the best similarity over a set of query phrases.

    Args:
        sim: ``(P, K)`` similarities of P phrases to K labels (P may be 0).

    Returns:
        ``(K,)`` scores; all ``-1`` (the cosine minimum) when there are no phrases.
    """
    sim = np.asarray(sim, dtype=np.float32)
    if sim.ndim != 2:
        raise InputError(f"max_over_phrases expects a (P, K) array, got shape {sim.shape}")
    if sim.shape[0] == 0:
        return np.full(sim.shape[1], -1.0, dtype=np.float32)
    return sim.max(axis=0)


def apply_prior(scores: np.ndarray, prior: np.ndarray | None, weight: float) -> np.ndarray:
    """Reweight scores by a label prior: ``score + weight * log(prior + eps)`` (shift-invariant).

    ``weight = 0`` or ``prior = None`` returns the scores unchanged.
    """
    if prior is None or weight == 0:
        return scores
    prior = np.asarray(prior, dtype=np.float64)
    if prior.shape[-1] != scores.shape[-1]:
        raise InputError(f"prior has {prior.shape[-1]} entries but scores have {scores.shape[-1]} columns")
    floor = 1.0 / (10 * prior.size)
    return (scores + weight * np.log(prior + floor)).astype(np.float32)


class VocabIndex:
    """Embeds a vocabulary and finds the labels nearest to query texts or embeddings.

    Args:
        vocab: the labels (column order of every score array).
        encoder: the text encoder (labels and queries must share it).
        use_descriptions: a label with a description gets a second vector,
            ``"label: description"`` (cut to :data:`zsl.vocab.DESCRIPTION_WORDS` words, see
            :func:`zsl.vocab.clean_description`), and its similarity to a query is the larger
            of the two: a description can add evidence for a label but never hide the label's
            own name. (Measured on the validation sets: embedding only ``"label: description"``
            helps terse codes such as Reuters' ``acq`` but hurts ESCO's descriptive skill names;
            the larger of the two keeps both gains, see BENCHMARKS.md.) ``None`` (the
            default): on when the vocabulary has any description.
        faiss_threshold: use faiss above this many labels (exact numpy below).
        show_progress: progress bar while embedding the vocabulary the first time.
        label_context: for a vocabulary with a hierarchy, the context a label is embedded with
            (:data:`zsl.hierarchy.LABEL_CONTEXTS`; None: the measured default,
            :data:`zsl.hierarchy.DEFAULT_LABEL_CONTEXT`). A flat vocabulary embeds its labels as given.

    Attributes:
        label_texts: the text each label is embedded as (and shown to the Rank step as).
        use_descriptions: the resolved setting (a bool).
        descriptions_cut: how many embedded descriptions were cut to the budget.
    """

    def __init__(self, vocab: LabelVocab, encoder: Encoder, *, use_descriptions: bool | None = None,
                 faiss_threshold: int = 50_000, show_progress: bool = False, label_context: str | None = None):
        self.vocab = vocab
        self.label_context = None if vocab.parents is None else (label_context or DEFAULT_LABEL_CONTEXT)
        self.label_texts = label_texts(vocab, self.label_context or "none")
        self.encoder = encoder
        self.use_descriptions = vocab.has_descriptions if use_descriptions is None else bool(use_descriptions)
        self.descriptions_cut = vocab.descriptions_cut() if self.use_descriptions else 0
        labels = [vocab.text_for(i) for i in range(len(vocab))]
        self.label_emb = encode_cached(encoder, self.label_texts, show_progress=show_progress).astype(np.float32)
        # described labels: their rows in the vocabulary and their "label: description" vectors
        self.desc_rows = np.zeros(0, dtype=np.int64)
        self.desc_emb = np.zeros((0, self.label_emb.shape[1]), dtype=np.float32)
        if self.use_descriptions:
            texts = [vocab.text_for(i, with_description=True) for i in range(len(vocab))]
            self.desc_rows = np.array([i for i, t in enumerate(texts) if t != labels[i]], dtype=np.int64)
            if self.desc_rows.size:
                self.desc_emb = encode_cached(encoder, [texts[i] for i in self.desc_rows],
                                              show_progress=show_progress).astype(np.float32)
        self._faiss = None
        if len(vocab) > faiss_threshold:
            import faiss

            self._faiss = faiss.IndexFlatIP(self.label_emb.shape[1])
            self._faiss.add(np.concatenate([self.label_emb, self.desc_emb]))
            self._faiss_label = np.concatenate([np.arange(len(vocab)), self.desc_rows])

    @property
    def backend(self) -> str:
        return "faiss" if self._faiss is not None else "numpy"

    def similarities(self, query_emb: np.ndarray) -> np.ndarray:
        """``(Q, K)`` cosine similarities of query embeddings to every label."""
        q = np.atleast_2d(np.asarray(query_emb, dtype=np.float32))
        if q.shape[1] != self.label_emb.shape[1]:
            raise InputError(f"query dimension {q.shape[1]} != label dimension {self.label_emb.shape[1]}: "
                             "queries and labels must come from the same encoder")
        sim = q @ self.label_emb.T
        if self.desc_rows.size:
            sim[:, self.desc_rows] = np.maximum(sim[:, self.desc_rows], q @ self.desc_emb.T)
        return sim

    def search(self, query_emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k labels per query embedding: ``(scores, indices)``, best first."""
        q = np.atleast_2d(np.asarray(query_emb, dtype=np.float32))
        if self._faiss is None:
            return top_k(self.similarities(q), k)
        k = min(k, len(self.vocab))
        # a described label has two vectors: take enough hits that k distinct labels survive
        vals, rows = self._faiss.search(np.ascontiguousarray(q), min(2 * k, self._faiss.ntotal))
        out_v = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        out_i = np.full((q.shape[0], k), -1, dtype=np.int64)
        for n in range(q.shape[0]):
            seen: set[int] = set()
            for v, r in zip(vals[n], rows[n], strict=True):
                lab = int(self._faiss_label[r]) if r >= 0 else -1
                if lab >= 0 and lab not in seen:  # hits come best first, so the first is the larger
                    out_v[n, len(seen)], out_i[n, len(seen)] = v, lab
                    seen.add(lab)
                    if len(seen) == k:
                        break
        return out_v, out_i

    def search_texts(self, texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k labels for each text."""
        return self.search(self.encoder.encode(list(texts)), k)
