"""Label a file end to end: read items, run Infer-Retrieve-Rank, write silver data.

Each output row carries the chosen labels, their scores and provenance (model ids, prompt
versions, vocabulary hash, settings, zsl version). A bad input row or an item whose
labelling fails is reported and skipped; the others are all written.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from zsl.data import BadRow, read_items, write_jsonl_atomic
from zsl.errors import InputError, ZslError
from zsl.vocab import LabelVocab

__all__ = ["label_file", "provenance"]


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


def label_file(input_path: str | os.PathLike[str], labels: str | os.PathLike[str] | LabelVocab, *,
               out: str | os.PathLike[str] | None = None, lm: Any = None, encoder: Any = None, k: int = 5,
               label_kind: str = "labels", infer: bool = True, rank: bool = True, rank_top: int = 20,
               text_field: str = "text", program_path: str | os.PathLike[str] | None = None,
               show_progress: bool = False) -> dict[str, Any]:
    """Label every item of a file and write silver data (JSON Lines).

    Args:
        input_path: ``.jsonl``/``.csv``/``.tsv``/``.txt`` items (see :func:`zsl.data.read_items`).
        labels: the vocabulary, or a vocabulary file.
        out: output path; default ``<input>.zsl.jsonl`` beside the input.
        lm, encoder: model choices (see :class:`zsl.tagger.Tagger`).
        k: labels kept per item.
        program_path: a compiled program saved by ``zsl optimize`` / ``Tagger.save``.

    Returns:
        A summary: ``rows`` written, ``bad_rows``, counts, timing, model ids and (when the
        input has gold labels) ``eval`` with RP@k and P@1.
    """
    from zsl.lm import check_lm, is_remote, resolve_lm_name
    from zsl.progress import progress
    from zsl.tagger import Tagger

    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    vocab = labels if isinstance(labels, LabelVocab) else LabelVocab.from_file(labels)
    bad: list[BadRow] = []
    items = list(read_items(input_path, text_field=text_field, bad=bad))
    if not items:
        raise InputError(f"No usable item in {input_path}" + (f"; first problem: {bad[0]}" if bad else ""))
    tagger = Tagger(vocab, lm=lm, encoder=encoder, label_kind=label_kind, infer=infer, rank=rank, rank_top=rank_top)
    if program_path is not None:
        tagger.load(program_path)
    t0 = time.perf_counter()
    program = tagger.program_
    if (infer or rank) and isinstance(lm, str | None) and is_remote(resolve_lm_name(lm)):
        check_lm(program.infer.predict.lm, resolve_lm_name(lm))
    prov = provenance(tagger)
    rows: list[dict[str, Any]] = []
    gold_rows: list[tuple[list[str], np.ndarray]] = []
    for item in progress(items, desc="labelling", disable=not show_progress, unit="item"):
        try:
            pred = program(text=item.text)
        except ZslError as exc:
            bad.append(BadRow(str(input_path), -1, f"item {item.id}: {exc}"))
            continue
        order = np.argsort(-pred.scores, kind="stable")[:k]
        row: dict[str, Any] = {
            "id": item.id,
            "text": item.text,
            "labels": [vocab[j] for j in order],
            "scores": [round(float(pred.scores[j]), 4) for j in order],
            "phrases": list(pred.phrases),
        }
        if pred.notes:
            row["notes"] = list(pred.notes)
        if item.gold is not None:
            row["gold"] = item.gold
            gold_rows.append((item.gold, pred.scores))
        rows.append(row)
    seconds = time.perf_counter() - t0
    out_path = Path(out) if out else Path(str(input_path) + ".zsl.jsonl")
    write_jsonl_atomic(out_path, ({**r, "provenance": prov} for r in rows))
    summary: dict[str, Any] = {
        "rows": rows, "bad_rows": [str(b) for b in bad], "labelled": len(rows), "skipped": len(bad),
        "seconds": seconds, "out": str(out_path), "lm": prov["infer_lm"] or prov["rank_lm"] or "none",
        "encoder": prov["encoder"], "provenance": prov,
    }
    usable = [(g, s) for g, s in gold_rows if g and all(lab in vocab for lab in g)]
    if usable:
        from zsl.metrics import p_at_k, rp_at_k

        y = vocab.to_multi_hot([g for g, _ in usable])
        s = np.stack([sc for _, sc in usable])
        summary["eval"] = {"rp": rp_at_k(y, s, k), "p1": p_at_k(y, s, 1), "n": len(usable), "k": k}
    return summary
