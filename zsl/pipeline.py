"""Provenance of a text tagger: which models, prompts, vocabulary and settings produced its labels.

Labelling whole datasets lives in :mod:`zsl.run` (resumable run directories).
"""

from __future__ import annotations

from typing import Any

__all__ = ["provenance"]


def provenance(tagger: Any) -> dict[str, Any]:
    """What produced a set of labels: models, prompts, vocabulary, settings, zsl version."""
    import zsl

    program = tagger.program_
    infer_lm = program.infer.predict.lm
    rank_lm = program.rank.predict.lm
    return {
        "zsl_version": zsl.__version__,
        "infer_lm": getattr(infer_lm, "model", None) if program.use_infer else None,
        "rank_lm": getattr(rank_lm, "model", None) if program.use_rank else None,
        "encoder": program.index.encoder.model_id,
        "vocab_hash": tagger.vocab.hash,
        "vocab_size": len(tagger.vocab),
        "settings": program.config(),
    }
