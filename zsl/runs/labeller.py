"""One labeller over any :class:`~zsl.base.Scorer`: a chunk of items in, one row (or a reason) per item out.

:class:`Labeller` scores a chunk in one batched call (``scorer.score_batch``) or, for a scorer
that runs an LLM step, item by item (``scorer.explain``) with retries on transient errors and,
for a remote LM, several items at once; either way the rows are built by :mod:`zsl.rows`.
:class:`LabelSettings` groups how ``zsl label`` labels (the scorer's settings, remote-call
limits, images, a student, row contents), and :func:`make_labeller` builds the labeller the
input needs from them: the text :class:`~zsl.text.tagger.Tagger`, the
:class:`~zsl.image.tagger.ImageTagger` or a distilled :class:`~zsl.student.classifier.StudentClassifier`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import numpy as np

from zsl.base import ItemScores, top_k
from zsl.data.files import Item
from zsl.errors import InputError, VocabularyError
from zsl.fusion import DEFAULT_RANK_TOP
from zsl.prompting import RANK_DESCRIPTIONS
from zsl.rows import build_rows, default_top_scores, make_row, nonfinite_reason
from zsl.runs.chunks import add_usage
from zsl.util.retry import Skipped, http_status, is_transient, retry_base_delay, retry_call
from zsl.vocab import LabelVocab

__all__ = ["LabelSettings", "Labeller", "TextLabeller", "make_labeller"]


Outputs = tuple[list[dict[str, Any] | Skipped], dict[str, dict[str, int]]]


@dataclass(frozen=True)
class LabelSettings:
    """How items are labelled: everything :func:`zsl.runs.label.label_run` needs besides the input and the output.

    Attributes:
        k: labels kept per item.
        lm, encoder, label_kind, infer, rank, rank_top, program, label_descriptions,
            rank_descriptions: the text program (see :class:`zsl.text.tagger.Tagger`; ``program`` is
            a file from ``zsl fit``, ``label_descriptions`` is ``Tagger(use_descriptions=...)``).
        concurrency, timeout, retries: remote LMs: items labelled at once (threads), seconds per
            call, retries per item on transient errors.
        image_backend, image_kwargs: images (see :class:`zsl.image.tagger.ImageTagger`).
        model: a student folder from ``zsl distill`` (or a loaded
            :class:`~zsl.student.classifier.StudentClassifier`) to label texts with instead of the program.
        text_field, id_field: where the text and the id are (JSONL keys / columns).
        chunk_size: records per durable chunk (None: 25 with an LLM, 64 for images, 1000 otherwise).
        top_scores: how many of the best labels' scores a row keeps (``R >= k``; None: every
            label of a vocabulary of up to 50, else ``max(k, 50)``; see :mod:`zsl.rows`).
    """

    k: int = 5
    lm: Any = None
    encoder: Any = None
    label_kind: str = "labels"
    infer: bool = True
    rank: bool = True
    rank_top: int = DEFAULT_RANK_TOP
    program: str | os.PathLike[str] | None = None
    label_descriptions: bool | None = None
    rank_descriptions: str = "auto"
    concurrency: int = 1
    timeout: float | None = None
    retries: int = 3
    image_backend: Any = None
    image_kwargs: dict[str, Any] | None = None
    model: Any = None
    text_field: str = "text"
    id_field: str = "id"
    chunk_size: int | None = None
    top_scores: int | None = None

    @classmethod
    def names(cls) -> list[str]:
        """The setting names, in order."""
        return [f.name for f in dataclasses.fields(cls)]

    def updated(self, **overrides: Any) -> LabelSettings:
        """A copy with some settings changed; unknown names are refused, naming the valid ones."""
        unknown = sorted(set(overrides) - set(self.names()))
        if unknown:
            raise InputError(f"Unknown settings {unknown}; expected some of {self.names()}.")
        return dataclasses.replace(self, **overrides)

    def check(self) -> None:
        """Refuse values that cannot work, before anything is read or written."""
        if self.k < 1:
            raise InputError(f"k must be >= 1, got {self.k}")
        if self.concurrency < 1 or self.retries < 0 or (self.timeout is not None and self.timeout <= 0):
            raise InputError("concurrency must be >= 1, retries >= 0 and timeout > 0 seconds.")
        if self.rank_descriptions not in RANK_DESCRIPTIONS:
            raise InputError(f"rank_descriptions must be one of {', '.join(RANK_DESCRIPTIONS)}, got "
                             f"{self.rank_descriptions!r}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise InputError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.top_scores is not None and self.top_scores < self.k:
            raise InputError(f"top_scores must be >= k ({self.k}): a row keeps the scores of at least its k labels; "
                             f"got {self.top_scores}.")


class Labeller:
    """Labels chunks of :class:`~zsl.data.Item` with any scorer.

    Args:
        scorer: a :class:`~zsl.base.Scorer` (with :class:`~zsl.base.ScorerMixin`'s
            ``score_batch`` and ``explain``).
        k: labels kept per item.
        kind: what the manifest calls it (``"text"``, ``"images"``, ``"student"``).
        input_field: the row field holding the item (``"text"`` or ``"image"``).
        concurrency: items scored at once on the per-item path (threads; only for a remote LM).
        timeout: seconds one call may take (for the message when a thread gives up waiting).
        retries: tries after the first on a transient error (only for a remote LM).
        remote: the scorer calls a remote LM (retries, threads and a cost apply).
        lm_name: the LM's name, for messages and prices.
        threshold: rows also list the kept labels at or above it (``above_threshold``): one
            number, or per-label thresholds ``(K,)``.
        min_above: ``above_threshold`` keeps at least this many labels (the best ones).
        top_scores: how many of the best labels' scores a row keeps (None: the default of
            :func:`zsl.rows.default_top_scores`).
        warnings: what to log once before labelling.
        source: what produced the scores, for messages (default: ``the <kind> scorer``).

    Attributes:
        uses_lm: score item by item with ``explain`` (a scorer with an LLM step) instead of a
            batched ``score_batch`` per chunk.
    """

    def __init__(self, scorer: Any, *, k: int, kind: str, input_field: str = "text", concurrency: int = 1,
                 timeout: float | None = None, retries: int = 0, remote: bool = False, lm_name: str | None = None,
                 threshold: float | np.ndarray | None = None, min_above: int = 0, top_scores: int | None = None,
                 warnings: Sequence[str] = (), source: str | None = None):
        self.scorer = scorer
        self.vocab: LabelVocab = scorer.vocab
        self.k, self.kind, self.input_field = k, kind, input_field
        self.top_scores = default_top_scores(k, len(self.vocab), top_scores)
        self.uses_lm = bool(getattr(scorer, "uses_lm", False))
        self.concurrency = max(1, concurrency)
        self.timeout, self.retries, self.retry_delay = timeout, retries, retry_base_delay()
        self.remote, self.lm_name, self.threshold, self.min_above = remote, lm_name, threshold, min_above
        self.warnings: list[str] = list(warnings)
        self.source = source or f"the {kind} scorer"

    def config(self) -> dict[str, Any]:
        """The run's settings from the scorer: ``kind``, ``k``, ``top_scores`` and the scorer's ``config()`` (a config
        that does not name its vocabulary gets ``vocab_hash`` beside it, under ``settings``)."""
        cfg = self.scorer.config()
        body = cfg if "vocab_hash" in cfg else {"vocab_hash": self.vocab.hash, "settings": cfg}
        return {"kind": self.kind, "k": self.k, "top_scores": self.top_scores, **body}

    def check_remote(self) -> None:
        """Check the model with one call (its scorer's ``check_lm``), with the run's time limit and retries.

        A server that never answers, a wrong model name, a model that refuses the input fails the
        run here, before anything is written; one that answers with a rate limit or a 5xx is
        reachable, so the run goes on and marks items that keep failing retryable.
        """
        from zsl.errors import RemoteModelError

        try:
            self.scorer.check_lm(self.lm_name,
                                 attempt=lambda call: retry_call(call, retries=self.retries, base_delay=self.retry_delay))
        except RemoteModelError as exc:
            cause = exc.__cause__
            if cause is None or http_status(cause) is None or not is_transient(cause):
                raise
            self.warnings.append(f"{self.lm_name} answered the start-up check with HTTP {http_status(cause)} "
                                 f"after {self.retries} retries; labelling anyway (items that keep failing are "
                                 "marked retryable: rerun the same command to label them)")

    def _one(self, item: Item) -> ItemScores:
        return retry_call(lambda: self.scorer.explain(item.value), retries=self.retries if self.remote else 0,
                          base_delay=self.retry_delay)

    def _unscorable(self, item: Item, scores: np.ndarray) -> str | None:
        """Why an item's scores cannot make a row (NaN or infinity: a damaged model), or None."""
        if np.isfinite(scores).all():
            return None
        return f"item {item.id}: {nonfinite_reason(scores, self.vocab.labels, self.source)}"

    def _row(self, item: Item, got: ItemScores) -> dict[str, Any] | Skipped:
        why = self._unscorable(item, np.asarray(got.scores, dtype=np.float64))
        if why is not None:
            return Skipped(why)
        vals, idx = top_k(got.scores, self.top_scores)
        return make_row(item, self.vocab, idx[0], vals[0], k=self.k, input_field=self.input_field, fields=got.fields,
                        threshold=self.threshold, min_above=self.min_above)

    def label(self, items: Sequence[Item], tick: Callable[[int], None]) -> Outputs:
        """One output per item, in order: a row, or why it was skipped (:class:`~zsl.util.retry.Skipped`, ``retryable``
        when the item failed on a transient error after its retries); plus LM usage per step."""
        if not self.uses_lm:
            return self._label_batch(items, tick), {}
        usage: dict[str, dict[str, int]] = {}
        out: list[dict[str, Any] | Skipped] = []

        def collect(item: Item, get: Callable[[], ItemScores]) -> None:
            try:
                got = get()
            except FutureTimeout:
                out.append(Skipped(f"item {item.id}: no answer within the time limit ({self.timeout}s per "
                                   f"call, {self.retries} retries)", retryable=True))
            except Exception as exc:  # noqa: BLE001 - one failing item is reported and skipped, the run goes on
                first = (str(exc).strip().splitlines() or [""])[0]  # DSPy appends a multi-line "To fix" list
                why = f"item {item.id}: {type(exc).__name__}: {first[:300]}"
                out.append(Skipped(why, retryable=is_transient(exc)))
            else:
                add_usage(usage, got.usage)
                out.append(self._row(item, got))
            tick(1)

        if self.concurrency == 1:
            for item in items:
                collect(item, lambda item=item: self._one(item))
        else:
            guard = None if not self.timeout else self.timeout * (self.retries + 1) + 60.0 * self.retries
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="zsl-label") as pool:
                futures = [pool.submit(self._one, item) for item in items]
                for item, fut in zip(items, futures, strict=True):
                    collect(item, lambda fut=fut: fut.result(timeout=guard))
        return out, usage

    def _label_batch(self, items: Sequence[Item], tick: Callable[[int], None]) -> list[dict[str, Any] | Skipped]:
        batch = self.scorer.score_batch([it.value for it in items])
        tick(len(items))
        failed = dict(batch.failed)
        finite = np.isfinite(batch.scores).all(axis=1) if len(batch.ok) else np.zeros(0, dtype=bool)
        for n in np.flatnonzero(~finite):  # a damaged model: these items are reported, the others labelled
            i = batch.ok[n]
            failed[i] = self._unscorable(items[i], batch.scores[n]) or ""
        ok = [i for n, i in enumerate(batch.ok) if finite[n]]
        rows = build_rows([items[i] for i in ok], batch.scores[finite], self.vocab, k=self.k,
                          top_scores=self.top_scores, input_field=self.input_field, threshold=self.threshold,
                          min_above=self.min_above)
        out: list[dict[str, Any] | Skipped] = [Skipped(failed.get(i, f"{items[i].value}: could not be scored"))
                                               for i in range(len(items))]
        for i, row in zip(ok, rows, strict=True):
            out[i] = row
        return out


class TextLabeller(Labeller):
    """The labeller of a text run: a :class:`~zsl.text.tagger.Tagger` built from the run's settings.

    Only the construction is text-specific: the LM checks and warnings. With a remote LM
    every call gets a time limit and zsl's retries instead of DSPy's, and the server is
    checked once (with retries) before anything is written.
    """

    def __init__(self, vocab: LabelVocab, *, lm: Any, encoder: Any, k: int, label_kind: str, infer: bool,
                 rank: bool, rank_top: int, program: str | os.PathLike[str] | None, concurrency: int,
                 timeout: float | None, retries: int, label_descriptions: bool | None = None,
                 rank_descriptions: str = "auto", top_scores: int | None = None):
        from zsl.models.lm import is_remote_lm, resolve_lm_name
        from zsl.text.tagger import Tagger

        tagger = Tagger(vocab, lm=lm, encoder=encoder, label_kind=label_kind, infer=infer, rank=rank,
                        rank_top=rank_top, use_descriptions=label_descriptions, rank_descriptions=rank_descriptions)
        if program is not None:
            tagger.load(program)
        uses_lm = infer or rank
        remote = uses_lm and is_remote_lm(lm)
        lm_name = resolve_lm_name(lm) if isinstance(lm, str | None) else getattr(lm, "model", type(lm).__name__)
        warnings = tagger.setup_notes()
        if concurrency > 1 and uses_lm and not remote:
            warnings.append(f"concurrency {concurrency} ignored: the local LLM labels one item at a time "
                            "(it already uses every core)")
            concurrency = 1
        rule = tagger.thresholds_  # a program fitted on examples brings per-label thresholds
        super().__init__(tagger, k=k, kind="text", concurrency=concurrency, timeout=timeout, retries=retries,
                         remote=remote, lm_name=lm_name, top_scores=top_scores, warnings=warnings,
                         source=f"the program {program}" if program is not None else None,
                         threshold=None if rule is None else np.asarray(rule.thresholds_, dtype=np.float64),
                         min_above=0 if rule is None else int(rule.min_labels))
        self.tagger = tagger
        if self.remote:
            self._prepare_remote()

    @property
    def program(self) -> Any:
        """The tagger's Infer-Retrieve-Rank program."""
        return self.tagger.program_

    def cheap_pass(self, texts: Sequence[str], done: Callable[[int], None] = lambda n: None,
                   batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Every text's embedding and retrieval scores (float32), without any LLM step: what a budget run's
        student learns from. Texts are encoded ``batch`` at a time; ``done(n)`` after each batch."""
        program = self.program
        encode = program.index.encoder.encode
        parts = []
        for s in range(0, len(texts), batch):
            parts.append(np.asarray(encode(texts[s:s + batch]), dtype=np.float32))
            done(len(texts[s:s + batch]))
        emb = np.concatenate(parts)
        return emb, np.asarray(program.retrieve_embedded(emb), dtype=np.float32)

    @program.setter
    def program(self, program: Any) -> None:
        self.tagger.program_ = program

    def _prepare_remote(self) -> None:
        """Bound every call in time, leave retries to :func:`~zsl.util.retry.retry_call`, then check the server.

        The start-up check runs with the same limit and retries: a server that never answers
        fails the run here, before anything is written; one that answers with a rate limit or a
        5xx is reachable, so the run goes on and marks items that keep failing retryable.
        """
        self.timeout = self.tagger.limit_remote_calls(self.timeout)
        self.check_remote()


def _student(model: Any, vocab: LabelVocab | None) -> Any:
    from zsl.student.classifier import StudentClassifier
    from zsl.vocab import vocab_difference

    student = model if isinstance(model, StudentClassifier) else StudentClassifier.load(model, vocab=vocab)
    if isinstance(model, StudentClassifier) and vocab is not None:  # load() checks a saved one
        diff = vocab_difference(model.vocab_.labels, vocab.labels, expected_name="the student",
                                got_name="your vocabulary")
        if diff:
            raise VocabularyError(f"The student was trained on a different vocabulary: {diff}. Fix: omit the "
                                  "labels to use its own.")
    return student


def _image_labeller(vocab: LabelVocab, s: LabelSettings) -> Labeller:
    """The labeller of photos: an :class:`~zsl.image.tagger.ImageTagger`; with a vision-language ``lm`` photo by
    photo with retries (as for a remote text LM), else in batches."""
    from zsl.image.tagger import ImageTagger
    from zsl.models.lm import is_remote_lm

    kwargs = {"lm": s.lm, "infer": s.infer, "rank": s.rank, "rank_top": s.rank_top, "encoder": s.encoder,
              "label_kind": s.label_kind, "timeout": s.timeout, **dict(s.image_kwargs or {})}
    tagger = ImageTagger(vocab, s.image_backend, **kwargs)
    if s.program is not None:  # fusion weights fitted on labelled photos (`zsl fit photos.jsonl --lm ...`)
        tagger.load(s.program)
    if not tagger.uses_lm:
        notes = [f"{s.lm} reads no images here: --lm only writes --descriptions"] if (
            s.lm is not None and (s.infer or s.rank) and not kwargs.get("descriptions")) else []
        if s.program is not None:
            notes.append(f"the program {s.program} holds fusion weights for a vision-language --lm; without one "
                         "the photos are scored by the image model alone")
        return Labeller(tagger, k=s.k, kind="images", input_field="image", top_scores=s.top_scores, warnings=notes)
    lm = tagger.vlm_.steps.lm
    labeller = Labeller(tagger, k=s.k, kind="images", input_field="image", top_scores=s.top_scores,
                        concurrency=s.concurrency, timeout=s.timeout, retries=s.retries, remote=is_remote_lm(lm),
                        lm_name=getattr(lm, "model", type(lm).__name__), source=f"the VLM {getattr(lm, 'model', '')}")
    if labeller.remote:
        labeller.check_remote()
    return labeller


def make_labeller(fmt: str, vocab: LabelVocab | None, settings: LabelSettings) -> Labeller:
    """The labeller for an input of format ``fmt`` (:func:`zsl.data.input_format`) and these settings.

    Raises:
        InputError: a student asked to label images.
    """
    s = settings
    if s.model is not None:
        if fmt == "images":
            raise InputError("--model labels texts with a distilled text student; images take --image-model.")
        student = _student(s.model, vocab)
        return Labeller(student, k=s.k, kind="student", threshold=float(student.threshold_), top_scores=s.top_scores,
                        source=f"the student {getattr(student, 'path_', '(in memory)')}")
    assert vocab is not None
    if fmt == "images":
        return _image_labeller(vocab, s)
    return TextLabeller(vocab, lm=s.lm, encoder=s.encoder, k=s.k, label_kind=s.label_kind, infer=s.infer, rank=s.rank,
                        rank_top=s.rank_top, program=s.program, concurrency=s.concurrency, timeout=s.timeout,
                        retries=s.retries, label_descriptions=s.label_descriptions,
                        rank_descriptions=s.rank_descriptions, top_scores=s.top_scores)
