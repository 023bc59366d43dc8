"""Fusion weights of the Infer-Retrieve-Rank score, fitted on labelled examples.

The program scores every label ``j`` of the vocabulary as

    score_j = tw * text_sim_j + (1 - tw) * phrase_sim_j + pw * log(prior_j) + rw * P(yes)_j

where ``text_sim`` is the text's own similarity, ``phrase_sim`` the best similarity over the
Infer step's phrases (the text's own when there are none), ``P(yes)`` the Rank step's
probability for the first ``rank_top`` retrieved candidates (0 elsewhere). The weights
``(tw, pw, rw, rank_top)`` are the fusion; :func:`fit_fusion` chooses them on examples by a
grid search of RP@K, keeping the zero-shot defaults unless another setting is better by at
least ``min_gain`` points (about one example's worth on a hundred examples), so a handful of
examples cannot talk the program into noise.

Example:
    >>> import numpy as np
    >>> item = FusionItem(text_sim=np.array([0.2, 0.5, 0.1]), phrase_sim=np.array([0.9, 0.4, 0.1]),
    ...                   cand=np.array([0, 1]), p_yes=np.array([0.9, 0.1]), gold=[0])
    >>> int(np.argmax(fused_scores(item, None, DEFAULTS)))
    0
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zsl.errors import InputError
from zsl.index import apply_prior

__all__ = ["DEFAULTS", "DEFAULT_PRIOR_WEIGHT", "DEFAULT_RANK_TOP", "DEFAULT_RANK_WEIGHT", "DEFAULT_TEXT_WEIGHT",
           "FusionFit", "FusionItem", "fit_fusion", "fused_rp_at_k", "fused_scores"]

# The zero-shot program's settings: the one place `zsl label`, `zsl optimize`, LabelSettings, Tagger and
# InferRetrieveRank take their defaults from. Rank top 20, not 30: on the ESCO validation sets top 30 gained
# 1.1 / 3.4 RP@10 (TECH / HOUSE) for 18% more time per item (BENCHMARKS.md, issue #13); a vocabulary of
# thousands of labels should pass rank_top=30, or let `zsl fit` / `Tagger.fit` choose it on examples.
DEFAULT_TEXT_WEIGHT = 0.5
DEFAULT_PRIOR_WEIGHT = 0.0
DEFAULT_RANK_WEIGHT = 0.2
DEFAULT_RANK_TOP = 20
DEFAULTS: dict[str, float] = {"text_weight": DEFAULT_TEXT_WEIGHT, "prior_weight": DEFAULT_PRIOR_WEIGHT,
                              "rank_weight": DEFAULT_RANK_WEIGHT, "rank_top": DEFAULT_RANK_TOP}
GRID: dict[str, Sequence[float]] = {
    "text_weight": (0.3, 0.4, 0.5, 0.6, 0.7),
    "prior_weight": (0.0, 0.01, 0.02),
    "rank_weight": (0.1, 0.2, 0.3, 0.5, 0.8),
    "rank_top": (10, 20, 30, 50),
}


@dataclass
class FusionItem:
    """One labelled example's score components (see the module docstring).

    Attributes:
        text_sim: ``(K,)`` similarity of the text to every label.
        phrase_sim: ``(K,)`` best similarity over the phrases, or None when Infer gave none.
        cand: retrieved candidates in retrieval order (the Rank step scored a prefix of them).
        p_yes: the Rank step's P(yes) per candidate (may be shorter than ``cand``; empty: no Rank).
        gold: gold label indices.
    """

    text_sim: np.ndarray
    phrase_sim: np.ndarray | None
    cand: np.ndarray
    p_yes: np.ndarray
    gold: Sequence[int]


@dataclass
class FusionFit:
    """The result of :func:`fit_fusion`."""

    weights: dict[str, float]
    score: float
    default_score: float
    n_examples: int
    metric: str
    table: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"weights": self.weights, "score": self.score, "default_score": self.default_score,
                "n_examples": self.n_examples, "metric": self.metric}


def fused_scores(item: FusionItem, prior: np.ndarray | None, weights: dict[str, float]) -> np.ndarray:
    """The ``(K,)`` scores of one item under ``weights`` (keys as in :data:`DEFAULTS`)."""
    tw = float(weights["text_weight"])
    s = item.text_sim if item.phrase_sim is None else tw * item.text_sim + (1 - tw) * item.phrase_sim
    s = apply_prior(np.asarray(s, dtype=np.float64), prior, float(weights.get("prior_weight", 0.0)))
    s = np.array(s, dtype=np.float64)
    n = min(int(weights.get("rank_top", len(item.p_yes))), len(item.p_yes), len(item.cand))
    if n:
        s[np.asarray(item.cand[:n], dtype=int)] += float(weights["rank_weight"]) * np.asarray(item.p_yes[:n])
    return s


def fused_rp_at_k(items: Sequence[FusionItem], prior: np.ndarray | None, weights: dict[str, float], k: int) -> float:
    """RP@K (in percent) of ``items`` scored with ``weights``; every item needs a gold label."""
    total = 0.0
    for it in items:
        s = fused_scores(it, prior, weights)
        top = np.argpartition(-s, k - 1)[:k] if k < s.size else np.arange(s.size)
        total += len(set(top.tolist()) & set(it.gold)) / min(k, len(it.gold))
    return 100.0 * total / len(items)


def fit_fusion(items: Sequence[FusionItem], prior: np.ndarray | None = None, *, k: int = 10,
               grid: dict[str, Sequence[float]] | None = None, defaults: dict[str, float] | None = None,
               min_gain: float = 0.5) -> FusionFit:
    """Choose fusion weights by RP@K on labelled examples (a grid search).

    Args:
        items: examples with at least one gold label each (others are dropped).
        prior: label prior ``(K,)`` or None (then ``prior_weight`` stays 0).
        k: the K of RP@K.
        grid: values to try per weight (default :data:`GRID`; ``rank_top`` values above the
            number of Rank-scored candidates are dropped).
        defaults: the zero-shot weights (default :data:`DEFAULTS`).
        min_gain: RP@K points a setting must gain over the defaults to replace them.

    Returns:
        A :class:`FusionFit`: the weights chosen, their RP@K, the defaults' RP@K.
    """
    items = [it for it in items if len(it.gold)]
    if not items:
        raise InputError("fit_fusion needs examples with gold labels; none of the given examples has one.")
    defaults = dict(DEFAULTS if defaults is None else defaults)
    grid = dict(GRID if grid is None else grid)
    scored = max((len(it.p_yes) for it in items), default=0)
    if prior is None:
        grid["prior_weight"] = (0.0,)
    if scored == 0:  # no Rank scores recorded: only the retrieval weights can move
        grid["rank_weight"], grid["rank_top"] = (defaults["rank_weight"],), (defaults["rank_top"],)
    else:
        tops = [t for t in grid["rank_top"] if t <= scored] or [scored]
        grid["rank_top"] = tops
        defaults["rank_top"] = min(defaults["rank_top"], scored)
    keys = list(DEFAULTS)
    table = []
    base = fused_rp_at_k(items, prior, defaults, k)
    best_w, best = dict(defaults), base
    for values in itertools.product(*(grid[key] for key in keys)):
        w = dict(zip(keys, values, strict=True))
        score = fused_rp_at_k(items, prior, w, k)
        table.append({**w, "score": score})
        if score > best + 1e-9:
            best_w, best = w, score
    if best < base + min_gain:
        best_w, best = dict(defaults), base
    best_w["rank_top"] = int(best_w["rank_top"])
    return FusionFit(weights=best_w, score=best, default_score=base, n_examples=len(items), metric=f"rp@{k}",
                     table=table)
