"""Fine-tune the sentence encoder on a few labelled examples: each text pulled towards its labels.

Zero-shot retrieval scores a text against every label's embedding. With a handful of examples
per label, :func:`fine_tune_encoder` trains the encoder (the whole MiniLM body) so that a text
lands near the embeddings of its own labels and away from the others: for each example, a
softmax over the label texts (every label of a vocabulary of up to ``negatives`` labels, else the
batch's labels plus a random sample of the rest), with its gold labels as the target. It differs
from SetFit's objective (pairs of example texts with the same label): here the label texts are
trained too, so labels without an example move as well, and the zero-shot anchor that
:class:`~zsl.student.heads.AnchoredHead` builds on gets better, not just the head's features.

The result is an ordinary sentence-transformers folder: pass it as the encoder anywhere
(``Tagger(vocab, encoder=folder)``, ``zsl label --encoder folder``). A ``zsl_fine_tune.json``
inside records what it was trained from (base model, examples' hash, settings, loss per epoch).

Example:
    >>> from zsl import LabelVocab, Tagger                                      # doctest: +SKIP
    >>> from zsl.text.finetune import fine_tune_encoder                              # doctest: +SKIP
    >>> vocab = LabelVocab(["joy", "anger", "sadness"])                         # doctest: +SKIP
    >>> examples = [("I love this!", ["joy"]), ("This is outrageous.", ["anger"])]  # doctest: +SKIP
    >>> folder = fine_tune_encoder(examples, vocab, "encoder-ft/")             # doctest: +SKIP
    >>> tagger = Tagger(vocab, encoder=folder, infer=False, rank=False).fit(examples)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from zsl.errors import InputError
from zsl.text.tagger import clean_examples
from zsl.vocab import LabelVocab

__all__ = ["fine_tune_encoder"]

MANIFEST = "zsl_fine_tune.json"
MIN_STEPS = 40  # the default number of epochs makes at least this many optimiser steps


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} already exists and is not an empty folder. Fix: pass a new folder for the "
                         "fine-tuned encoder, or delete the old one.")


def _label_texts(vocab: LabelVocab, use_descriptions: bool | None) -> list[str]:
    with_desc = vocab.has_descriptions if use_descriptions is None else bool(use_descriptions)
    return [vocab.text_for(i, with_description=with_desc) for i in range(len(vocab))]


def _examples_hash(pairs: list[tuple[str, list[str]]]) -> str:
    h = hashlib.sha256()
    for text, labels in pairs:
        h.update(json.dumps([text, sorted(labels)], ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()


def fine_tune_encoder(examples: Iterable[Any], vocab: LabelVocab | Iterable[str], out: str | os.PathLike[str], *,
                      encoder: Any = None, epochs: int | None = None, batch_size: int = 16, lr: float = 1e-4,
                      scale: float = 20.0, negatives: int = 256, use_descriptions: bool | None = None,
                      unknown_labels: str = "error", seed: int = 0, show_progress: bool = True) -> Path:
    """Fine-tune a sentence encoder so that example texts land near their labels; save it to ``out``.

    Args:
        examples: ``(text, labels)`` pairs or ``{"text", "labels"}`` mappings (as ``Tagger.fit``);
            repeated texts are merged.
        vocab: the label vocabulary (a :class:`~zsl.vocab.LabelVocab` or a list of labels).
        out: a new (or empty) folder for the fine-tuned encoder; written completely or not at all.
        encoder: the encoder to start from: an embedded name (default ``minilm-l6``), a
            sentence-transformers folder, or a :class:`~zsl.models.encoders.SentenceTransformerEncoder`.
        epochs: passes over the examples (default: 3, or more to make at least 40 steps: a few
            examples per label need more passes; on GoEmotions with 2 per label, 10 passes gave a
            held-out mAP of 25.2 against 21.7 for 3).
        batch_size: examples per step.
        lr: AdamW learning rate (constant after a 10% linear warm-up; 1e-4 beat 2e-5 on held-out
            GoEmotions and Reuters items: BENCHMARKS.md, issue #14).
        scale: inverse temperature of the softmax over label similarities (20, as
            sentence-transformers' MultipleNegativesRankingLoss).
        negatives: label texts per step: every label when the vocabulary has at most this many,
            else the batch's own labels plus a random sample of the others.
        use_descriptions: train on ``"label: description"`` texts (default: when the vocabulary
            has descriptions, as the retrieval index does).
        unknown_labels: ``"error"`` or ``"skip"`` for example labels outside the vocabulary.
        seed: seeds the example order, the negatives and torch.
        show_progress: a progress bar over the steps.

    Returns:
        The folder, ready to pass as ``encoder=`` (a :class:`~pathlib.Path`).

    Raises:
        InputError: no usable example, a label outside the vocabulary, a bad setting, ``out``
            not empty, or an encoder that is not a sentence-transformers model.
    """
    if not isinstance(vocab, LabelVocab):
        vocab = LabelVocab(list(vocab))
    _check_settings(epochs=epochs, batch_size=batch_size, negatives=negatives, lr=lr, scale=scale)
    pairs, notes = clean_examples(vocab, examples, unknown_labels)
    out = Path(out).expanduser()
    _check_out(out)
    base = _base_encoder(encoder)
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = _trainable_copy(base)
    label_texts = _label_texts(vocab, use_descriptions)
    n_steps_epoch = (len(pairs) + batch_size - 1) // batch_size
    if epochs is None:
        epochs = max(3, -(-MIN_STEPS // n_steps_epoch))
    t0 = time.perf_counter()
    losses = _train(model, vocab, pairs, label_texts, rng, epochs=epochs, batch_size=batch_size, lr=lr,
                    scale=scale, negatives=negatives, show_progress=show_progress)
    manifest = {"zsl_fine_tune": 1, "base_encoder": base.model_id, "vocab_hash": vocab.hash,
                "examples": len(pairs), "examples_sha256": _examples_hash(pairs), "notes": notes,
                "label_texts": "label: description" if label_texts != list(vocab.labels) else "label",
                "settings": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "scale": scale,
                             "negatives": negatives, "seed": seed},
                "loss_per_epoch": losses}
    return _save_atomically(model, out, manifest, t0)


def _check_settings(*, epochs: int | None, batch_size: int, negatives: int, lr: float, scale: float) -> None:
    """Refuse a training setting of the wrong type or out of range (``epochs=None`` means automatic)."""
    for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 1), ("negatives", negatives, 2)):
        if name == "epochs" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    for name, value in (("lr", lr), ("scale", scale)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise InputError(f"{name} must be a positive number, got {value!r}")


def _base_encoder(encoder: Any) -> Any:
    """The sentence-transformers encoder to start from; the hashing encoder has no weights to train."""
    from zsl.models.encoders import HashingEncoder, SentenceTransformerEncoder

    if isinstance(encoder, HashingEncoder) or encoder == "hashing":
        raise InputError("fine_tune_encoder needs a sentence-transformers encoder (an embedded name such as "
                         "'minilm-l6' or a model folder); the hashing encoder has nothing to train.")
    return encoder if isinstance(encoder, SentenceTransformerEncoder) else SentenceTransformerEncoder(encoder)


def _trainable_copy(base: Any) -> Any:
    """A private ``SentenceTransformer`` copy of ``base`` on the CPU, so the base (maybe shared, cached) is never
    trained in place."""
    from sentence_transformers import SentenceTransformer

    try:  # transformers' own "Loading weights" / "Writing model shards" bars: ours is the one that counts
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    return SentenceTransformer(base.model_path, device="cpu", local_files_only=base.is_local)


def _step_candidates(rows: np.ndarray, gold: list[list[int]], n_labels: int, negatives: int,
                     rng: np.random.Generator) -> np.ndarray:
    """The label columns one step's softmax runs over: every label, or the batch's own plus sampled others."""
    if n_labels <= negatives:
        return np.arange(n_labels)
    own = sorted({j for r in rows for j in gold[r]})
    others = np.setdiff1d(np.arange(n_labels), own)
    extra = rng.choice(others, size=max(0, min(len(others), negatives - len(own))), replace=False)
    return np.concatenate([np.asarray(own, dtype=int), np.sort(extra)])


def _train(model: Any, vocab: LabelVocab, pairs: list[tuple[str, list[str]]], label_texts: list[str],
           rng: np.random.Generator, *, epochs: int, batch_size: int, lr: float, scale: float, negatives: int,
           show_progress: bool) -> list[float]:
    """Train ``model`` in place (softmax over label similarities, AdamW with a linear warm-up); the mean loss per
    epoch, rounded to 4 digits."""
    import torch

    from zsl.util.progress import progress_bar

    index = {lab: i for i, lab in enumerate(vocab.labels)}
    texts = [t for t, _ in pairs]
    gold = [[index[lab] for lab in labels] for _, labels in pairs]
    n_steps_epoch = (len(pairs) + batch_size - 1) // batch_size
    total = epochs * n_steps_epoch
    warmup = max(1, total // 10)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))

    def embed(batch: list[str]) -> torch.Tensor:
        feats = model.preprocess(batch) if hasattr(model, "preprocess") else model.tokenize(batch)
        return torch.nn.functional.normalize(model(dict(feats))["sentence_embedding"], dim=-1)

    losses: list[float] = []
    model.train()
    with progress_bar(total=total, desc="fine-tuning the encoder", unit="step", disable=not show_progress) as bar:
        for _ in range(epochs):
            order = rng.permutation(len(pairs))
            epoch_loss = 0.0
            for s in range(n_steps_epoch):
                rows = order[s * batch_size:(s + 1) * batch_size]
                cand = _step_candidates(rows, gold, len(vocab), negatives, rng)
                pos = {int(j): c for c, j in enumerate(cand)}
                target = torch.zeros(len(rows), len(cand))
                for i, r in enumerate(rows):
                    for j in gold[r]:
                        target[i, pos[j]] = 1.0 / len(gold[r])
                x = embed([texts[r] for r in rows])
                y = embed([label_texts[j] for j in cand])
                logp = torch.log_softmax(scale * x @ y.T, dim=-1)
                loss = -(target * logp).sum(dim=-1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                epoch_loss += float(loss.detach()) * len(rows)
                bar.update(1)
            losses.append(round(epoch_loss / len(pairs), 4))
    model.eval()
    return losses


def _save_atomically(model: Any, out: Path, manifest: dict[str, Any], t0: float) -> Path:
    """Save the model and its manifest (plus the seconds since ``t0``) in a temporary folder beside ``out``,
    then move it into place: ``out`` is written completely or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save(str(tmp))
        manifest = {**manifest, "seconds": round(time.perf_counter() - t0, 1)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
        if out.exists():
            out.rmdir()  # checked empty above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
