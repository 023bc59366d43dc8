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
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import numpy as np

from zsl.base import ItemScores, top_k
from zsl.data.files import Item
from zsl.errors import InputError, VocabularyError
from zsl.fusion import DEFAULT_RANK_TOP
from zsl.hierarchy import DEFAULT_BEAM, DEFAULT_TREE_OUTPUT, check_tree_settings
from zsl.prompting import RANK_DESCRIPTIONS
from zsl.rows import build_rows, chosen_sets, default_top_scores, make_row, nonfinite_reason
from zsl.runs.chunks import add_usage
from zsl.scoring import DEFAULT_K, DEFAULT_SET_RULE, SET_RULE_PARAMS, SetRule
from zsl.util.retry import Skipped, http_status, is_transient, retry_base_delay, retry_call
from zsl.vocab import LabelVocab

__all__ = ["LabelSettings", "Labeller", "TextLabeller", "make_labeller", "resolve_rule"]


Outputs = tuple[list[dict[str, Any] | Skipped], dict[str, dict[str, int]]]
#: the first items whose scores fit a zero-shot catch-all pivot: with an LLM step (the program's scores; their
#: answers become their rows), and without one (retrieval scores, cheap). 200: the 0.2 quantile's position is
#: then known to about +-3 points of the items (binomial standard error), at no extra LLM call.
LM_PIVOT_ITEMS = 200
RETRIEVAL_PIVOT_ITEMS = 1000

#: a rule's parameter given without --rule picks that rule (-k alone: today's top k)
_PICKS = {"k": "topk", "margin": "relative", "z": "zscore", "threshold": "threshold"}


@dataclass(frozen=True)
class LabelSettings:
    """How items are labelled: everything :func:`zsl.runs.label.label_run` needs besides the input and the output.

    Attributes:
        k: the ranking's depth: with ``rule`` None (or ``"topk"``) each row's set is its ``k`` best
            labels, today's rows; it also sets what ``retrieval_labels`` and ``top_scores`` keep
            (None: 5).
        rule: how each row's ``labels`` set is chosen (:class:`zsl.scoring.SetRule`): ``"topk"``,
            ``"relative"``, ``"zscore"`` or ``"threshold"``. None: ``"topk"`` when ``k`` (or only
            that rule's parameter) is given; else the thresholds a fitted program (``zsl fit``) or a
            student brings; else :data:`zsl.scoring.DEFAULT_SET_RULE`. A rule given overrides fitted
            thresholds (with a warning).
        margin, z, threshold: the parameter of ``relative``, ``zscore``, ``threshold`` (None: the
            rule's default; ``threshold`` has none). Given alone, one of them picks its rule.
        min_labels, max_labels: each item keeps at least / at most this many labels (None: at least
            1 for a label-free rule, the fitted rule's own for fitted thresholds; no maximum).
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
        tree_output: for a vocabulary with a hierarchy, which of the chosen labels a row keeps:
            ``"path"`` (each with its ancestors), ``"leaf"`` (the deepest only) or ``"flat"`` (as
            chosen); None: :data:`zsl.hierarchy.DEFAULT_TREE_OUTPUT`. Any scorer, a student too.
        label_context, tree_blend, tree_search, beam: the text program's use of the tree (see
            :class:`zsl.text.tagger.Tagger`; None: the measured defaults).
        catch_all: labels meaning "none of the others" besides the vocabulary's own ``catch_all``
            column (see :class:`zsl.scoring.CatchAll`).
        catch_all_guess: without any named catch-all, guess them from the label names
            (:func:`zsl.scoring.guess_catch_all`; reported in the log and the manifest).
        catch_all_mix: allow a catch-all in the same row as a real label.
        catch_all_pivot: the catch-all pivot in score units (None: fitted zero-shot on the run's
            first items, see :meth:`TextLabeller.prepare`; a run's manifest records the one it
            used, under ``catch_all``, so another run can reuse it).
    """

    k: int | None = None
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
    tree_output: str | None = None
    label_context: str | None = None
    tree_blend: tuple[float, float] | None = None
    tree_search: str = "flat"
    beam: int = DEFAULT_BEAM
    rule: str | None = None
    margin: float | None = None
    z: float | None = None
    threshold: float | None = None
    min_labels: int | None = None
    max_labels: int | None = None
    catch_all: tuple[str, ...] = ()
    catch_all_guess: bool = True
    catch_all_mix: bool = False
    catch_all_pivot: float | None = None

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

    @property
    def ranked_k(self) -> int:
        """The ranking's ``k``: ``k``, else 5 (what ``retrieval_labels`` and the default ``top_scores`` keep)."""
        return DEFAULT_K if self.k is None else self.k

    def rule_name(self) -> str | None:
        """The label-set rule asked for: ``rule``, else the one whose parameter alone is given (``k``: topk),
        else None (fitted thresholds, else the default).

        Raises:
            InputError: an unknown rule, or a parameter of another rule than the one asked for.
        """
        given = [param for param in _PICKS if getattr(self, param) is not None]
        if self.rule is not None:
            if self.rule not in SET_RULE_PARAMS:
                raise InputError(f"Unknown rule {self.rule!r}. Expected one of {', '.join(SET_RULE_PARAMS)}.")
            # -k is also the ranking's depth, so it goes with any rule
            other = [p for p in given if p not in (SET_RULE_PARAMS[self.rule][0], "k")]
            if other:
                raise InputError(f"--{other[0]} is the parameter of --rule {_PICKS[other[0]]}, not of --rule "
                                 f"{self.rule}. Fix: drop it, or use --rule {_PICKS[other[0]]}.")
            return self.rule
        if len(given) > 1:
            raise InputError(f"{' and '.join('-k' if p == 'k' else '--' + p for p in given)} belong to different "
                             "rules. Fix: keep one, or name the rule with --rule.")
        return _PICKS[given[0]] if given else None

    def check(self) -> None:
        """Refuse values that cannot work, before anything is read or written."""
        if self.k is not None and self.k < 1:
            raise InputError(f"k must be >= 1, got {self.k}")
        self.rule_name()
        if (self.min_labels is not None and self.min_labels < 0) or (
                self.max_labels is not None and self.max_labels < max(1, self.min_labels or 0)):
            raise InputError(f"min_labels must be >= 0 and max_labels >= max(1, min_labels); got {self.min_labels} "
                             f"and {self.max_labels}.")
        if self.concurrency < 1 or self.retries < 0 or (self.timeout is not None and self.timeout <= 0):
            raise InputError("concurrency must be >= 1, retries >= 0 and timeout > 0 seconds.")
        if self.rank_descriptions not in RANK_DESCRIPTIONS:
            raise InputError(f"rank_descriptions must be one of {', '.join(RANK_DESCRIPTIONS)}, got "
                             f"{self.rank_descriptions!r}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise InputError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.top_scores is not None and self.top_scores < self.ranked_k:
            raise InputError(f"top_scores must be >= k ({self.ranked_k}): a row keeps the scores of at least its k "
                             f"labels; got {self.top_scores}.")
        check_tree_settings(tree_output=self.tree_output, tree_search=self.tree_search,
                            label_context=self.label_context, tree_blend=self.tree_blend, beam=self.beam)


def resolve_rule(settings: LabelSettings, fitted: SetRule | None) -> tuple[SetRule, list[str]]:
    """The rule behind a run's sets, and a warning when it overrides ``fitted`` thresholds.

    Order: the rule the settings ask for (:meth:`LabelSettings.rule_name`); else ``fitted`` (a
    program's per-label thresholds or a student's, ``min_labels`` / ``max_labels`` as given);
    else :data:`zsl.scoring.DEFAULT_SET_RULE` with its default parameter.

    Example:
        >>> resolve_rule(LabelSettings(k=3), None)[0].record()
        {'name': 'topk', 'k': 3, 'min_labels': 0, 'max_labels': None, 'fitted': False}
    """
    s = settings
    name = s.rule_name()
    bounds = {"max_labels": s.max_labels}
    if name is None and fitted is not None:
        return dataclasses.replace(fitted, min_labels=fitted.min_labels if s.min_labels is None else s.min_labels,
                                   max_labels=fitted.max_labels if s.max_labels is None else s.max_labels), []
    name = name or DEFAULT_SET_RULE
    param, default = SET_RULE_PARAMS[name]
    value = getattr(s, param)
    floor = 0 if name == "topk" else 1  # a label-free rule gives every item at least its best label
    rule = SetRule(name, **{param: default if value is None else value},
                   min_labels=floor if s.min_labels is None else s.min_labels, **bounds)
    why = (f"the rule {rule.name} ({rule.record()}) overrides the thresholds the program or student brings (fitted "
           "on examples); drop --rule / -k (and the rule's parameter) to use them")
    notes = [] if fitted is None else [why]
    return rule, notes


class Labeller:
    """Labels chunks of :class:`~zsl.data.Item` with any scorer.

    Args:
        scorer: a :class:`~zsl.base.Scorer` (with :class:`~zsl.base.ScorerMixin`'s
            ``score_batch`` and ``explain``).
        k: the ranking's depth (see :attr:`LabelSettings.k`); each item's set when ``rule`` is None.
        kind: what the manifest calls it (``"text"``, ``"images"``, ``"student"``).
        input_field: the row field holding the item (``"text"`` or ``"image"``).
        concurrency: items scored at once on the per-item path (threads; only for a remote LM).
        timeout: seconds one call may take (for the message when a thread gives up waiting).
        retries: tries after the first on a transient error (only for a remote LM).
        remote: the scorer calls a remote LM (retries, threads and a cost apply).
        lm_name: the LM's name, for messages and prices.
        rule: how each row's ``labels`` are chosen (:class:`~zsl.scoring.SetRule`; None: the ``k`` best).
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
                 rule: SetRule | None = None, top_scores: int | None = None, warnings: Sequence[str] = (),
                 source: str | None = None, tree_output: str | None = None):
        self.scorer = scorer
        self.vocab: LabelVocab = scorer.vocab
        self.k, self.kind, self.input_field = k, kind, input_field
        self.top_scores = default_top_scores(k, len(self.vocab), top_scores)
        self.uses_lm = bool(getattr(scorer, "uses_lm", False))
        self.concurrency = max(1, concurrency)
        self.timeout, self.retries, self.retry_delay = timeout, retries, retry_base_delay()
        self.remote, self.lm_name = remote, lm_name
        self.rule = rule if rule is not None else SetRule("topk", k=k)
        self.warnings: list[str] = list(warnings)
        self.source = source or f"the {kind} scorer"
        self.catch_all: frozenset[str] = frozenset()  # labels never kept beside a real one in a row
        # a flat vocabulary's rows are as they always were; a tree's follow the output mode
        self.tree_output = "flat" if self.vocab.parents is None else (tree_output or DEFAULT_TREE_OUTPUT)

    def config(self) -> dict[str, Any]:
        """The run's settings from the scorer: ``kind``, ``k``, ``top_scores``, the ``rule`` behind the rows' sets
        (:meth:`~zsl.scoring.SetRule.record`) and the scorer's ``config()`` (a config that does not name its
        vocabulary gets ``vocab_hash`` beside it, under ``settings``)."""
        cfg = self.scorer.config()
        body = cfg if "vocab_hash" in cfg else {"vocab_hash": self.vocab.hash, "settings": cfg}
        tree = {} if self.vocab.parents is None else {"tree_output": self.tree_output}
        return {"kind": self.kind, "k": self.k, "top_scores": self.top_scores, **tree, **body,
                "rule": self.rule.record()}

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
        return self._explain(item.value)

    def holds_answers(self, texts: Iterable[Any]) -> bool:
        """Does this labeller keep an answer got before labelling for one of ``texts`` (see :class:`TextLabeller`)?
        Then this process labels them: another one would ask the LLM again. None here."""
        return False

    def take_carried_seconds(self) -> float:
        """Seconds spent earlier on items labelled since the last call (see :class:`TextLabeller`); none here."""
        return 0.0

    def _explain(self, value: Any) -> ItemScores:
        """One item through the scorer's ``explain``, with the run's retries (remote models only)."""
        return retry_call(lambda: self.scorer.explain(value), retries=self.retries if self.remote else 0,
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
        return exclusive_row(make_row(item, self.vocab, idx[0], vals[0], k=self.k, input_field=self.input_field,
                                      fields=got.fields, chosen=chosen_sets(got.scores, self.rule, self.k)[0],
                                      tree_output=self.tree_output), self.catch_all)

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
        out: list[dict[str, Any] | Skipped] = [Skipped(failed.get(i, f"{items[i].value}: could not be scored"))
                                               for i in range(len(items))]
        for i, row in zip(ok, self.rows([items[i] for i in ok], batch.scores[finite]), strict=True):
            out[i] = row
        return out

    def rows(self, items: Sequence[Item], scores: np.ndarray) -> list[dict[str, Any]]:
        """The rows of ``items`` from their ``(N, K)`` scores as this labeller writes them: its ``k``, top scores,
        rule and tree output, and never a catch-all beside a real label (:func:`exclusive_row`)."""
        rows = build_rows(items, scores, self.vocab, k=self.k, top_scores=self.top_scores,
                          input_field=self.input_field, rule=self.rule, tree_output=self.tree_output)
        return [exclusive_row(row, self.catch_all) for row in rows]


def exclusive_row(row: dict[str, Any], catch_all: frozenset[str]) -> dict[str, Any]:
    """A row whose ``labels`` (best first) never hold a catch-all beside a real label: the catch-all stays alone
    when it is the row's best label (one catch-all: the first), and is dropped otherwise. (Only rows being
    written go through here, and those carry no ``above_threshold``: the set is ``labels``.)

    Example:
        >>> exclusive_row({"labels": ["joy", "neutral"], "scores": [0.6, 0.5]}, frozenset({"neutral"}))
        {'labels': ['joy'], 'scores': [0.6]}
        >>> exclusive_row({"labels": ["neutral", "joy"], "scores": [0.6, 0.5]}, frozenset({"neutral"}))["labels"]
        ['neutral']
    """
    labels = row.get("labels") or []
    n_ca = sum(lab in catch_all for lab in labels)
    if not n_ca or (n_ca == 1 and len(labels) == 1):
        return row
    keep_ca = labels[0] in catch_all
    # one catch-all at most (several say the same thing: the best, first among ties), or the real labels
    keep = [0] if keep_ca else [i for i, lab in enumerate(labels) if lab not in catch_all]
    out = {**row, "labels": [labels[i] for i in keep]}
    if isinstance(row.get("scores"), list) and len(row["scores"]) == len(labels):
        out["scores"] = [row["scores"][i] for i in keep]
    return out


class TextLabeller(Labeller):
    """The labeller of a text run: a :class:`~zsl.text.tagger.Tagger` built from the run's settings.

    Only the construction is text-specific: the LM checks and warnings. With a remote LM
    every call gets a time limit and zsl's retries instead of DSPy's, and the server is
    checked once (with retries) before anything is written.
    """

    def __init__(self, vocab: LabelVocab, settings: LabelSettings):
        from zsl.models.lm import is_remote_lm, resolve_lm_name
        from zsl.text.tagger import Tagger

        s = settings
        names, note = resolve_catch_all(vocab, s.catch_all, s.catch_all_guess)
        tagger = Tagger(vocab, lm=s.lm, encoder=s.encoder, label_kind=s.label_kind, infer=s.infer, rank=s.rank,
                        rank_top=s.rank_top, use_descriptions=s.label_descriptions,
                        rank_descriptions=s.rank_descriptions, catch_all=names, catch_all_mix=s.catch_all_mix,
                        label_context=s.label_context, tree_blend=s.tree_blend, tree_search=s.tree_search,
                        beam=s.beam)
        program, lm, k, concurrency = s.program, s.lm, s.ranked_k, s.concurrency
        if program is not None:
            tagger.load(program)  # a program fitted with a catch-all brings its own pivot
        uses_lm = s.infer or s.rank
        remote = uses_lm and is_remote_lm(lm)
        lm_name = resolve_lm_name(lm) if isinstance(lm, str | None) else getattr(lm, "model", type(lm).__name__)
        warnings = tagger.setup_notes()
        if concurrency > 1 and uses_lm and not remote:
            warnings.append(f"concurrency {concurrency} ignored: the local LLM labels one item at a time "
                            "(it already uses every core)")
            concurrency = 1
        rule, notes = resolve_rule(s, tagger.fitted_rule())  # a program fitted on examples brings thresholds
        super().__init__(tagger, k=rule.k if rule.name == "topk" else k, kind="text", concurrency=concurrency,
                         timeout=s.timeout, retries=s.retries, remote=remote, lm_name=lm_name,
                         top_scores=s.top_scores, warnings=warnings + notes,
                         source=f"the program {program}" if program is not None else None, rule=rule,
                         tree_output=s.tree_output)
        self.tagger = tagger
        if note:
            self.warnings.append(note)
        self.catch_all = frozenset() if tagger.catch_all_mix else frozenset(
            tagger.vocab[int(j)] for j in tagger.catch_all_columns())
        self._prepared: dict[str, ItemScores] = {}  # the first items, scored by prepare() before the catch-all
        self._seconds_each, self._carried, self._carried_lock = 0.0, 0.0, threading.Lock()
        if s.catch_all_pivot is not None:
            self.set_pivot({"pivot": s.catch_all_pivot, "source": "fixed"})
        if self.remote:
            self._prepare_remote()

    @property
    def wants_texts_first(self) -> bool:
        """Does :meth:`prepare` need the run's first texts (catch-all labels without a fitted pivot)?"""
        return self.tagger.catch_all_ is None and bool(self.tagger.catch_all_columns().size)

    @property
    def pivot_items(self) -> int:
        """How many of the run's first texts :meth:`prepare` fits the zero-shot pivot on."""
        return LM_PIVOT_ITEMS if self.uses_lm else RETRIEVAL_PIVOT_ITEMS

    def prepare(self, texts: Sequence[str], *, show_progress: bool = False,
                say: Callable[[str], None] | None = None) -> str | None:
        """Fit the catch-all pivot zero-shot, before labelling, on the run's first items (so a resumed run gets
        the same pivot): the 0.2 quantile of each item's best other score (:class:`~zsl.scoring.CatchAll`), in
        the units the rows are scored in. Without an LLM step these are the retrieval scores of the first
        :data:`RETRIEVAL_PIVOT_ITEMS`; with one, the whole program's scores of the first
        :data:`LM_PIVOT_ITEMS` (the LLM's evidence moves every score, so a pivot in retrieval units would
        let the catch-all win almost never). Those items' answers are kept and become their rows: nothing
        is asked twice. A program fitted on examples keeps its own pivot; without catch-all labels this
        does nothing. ``show_progress``: a bar on a terminal; ``say`` gets what is done and, without a
        terminal, a progress line every minute (the run directory does not exist yet). Returns a line for
        the run's log (None: nothing was fitted)."""
        if not (self.wants_texts_first and texts):
            return None
        texts = list(texts)[: self.pivot_items]
        if not self.uses_lm:
            self.tagger.fit_catch_all(self.cheap_pass(texts)[1])
            return f"catch-all pivot {self.tagger.catch_all_.pivot_:.4f}: from the retrieval scores of the first " \
                   f"{len(texts)} item(s)"
        if say is not None:
            say(f"catch-all labels: scoring the first {len(texts)} item(s) with the LLM to fit the pivot, before "
                "any row is written (their answers become their rows: nothing is asked twice)")
        scores = self._score_first(texts, show_progress, say)
        if not scores:  # every item failed: they are reported when labelled; the pivot comes from retrieval
            self.tagger.fit_catch_all(self.cheap_pass(texts)[1])
            return "catch-all pivot: the LLM scored none of the first items, so it comes from their retrieval scores"
        self.tagger.fit_catch_all(np.stack(scores))
        self.tagger.catch_all_.source_ = "quantile of the LLM scores"
        return (f"catch-all pivot {self.tagger.catch_all_.pivot_:.4f}: from the LLM scores of the first "
                f"{len(scores)} item(s) (their rows reuse these answers)")

    def _score_first(self, texts: list[str], show_progress: bool,
                     say: Callable[[str], None] | None) -> list[np.ndarray]:
        """The program's scores of ``texts`` (before any catch-all), keeping each answer for the item's row; an
        item that fails is left out here (labelling reports it)."""
        from zsl.util.progress import Heartbeat, progress

        unique = list(dict.fromkeys(texts))
        beat = Heartbeat(say, total=len(unique), what="catch-all pivot") if say is not None and not (
            show_progress and sys.stderr.isatty()) else None

        def one(text: str) -> ItemScores | None:
            try:
                return Labeller._explain(self, text)
            except Exception:  # noqa: BLE001 - labelling tries the item again and reports why it fails
                return None
            finally:
                if beat is not None:
                    beat.update(1)
                    beat.beat()

        t0 = time.perf_counter()
        if self.concurrency > 1:  # as labelling does: threads for a remote LM, the caller's thread otherwise
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="zsl-pivot") as pool:
                got = list(progress(pool.map(one, unique), total=len(unique), desc="catch-all pivot", unit="item",
                                    disable=not show_progress))  # in input order, counted as they finish
        else:
            got = [one(text) for text in progress(unique, desc="catch-all pivot", unit="item",
                                                  disable=not show_progress)]
        self._prepared = {t: g for t, g in zip(unique, got, strict=True) if g is not None}
        self._seconds_each = (time.perf_counter() - t0) / max(1, len(unique))
        return [g.scores for g in self._prepared.values()]

    def holds_answers(self, texts: Iterable[Any]) -> bool:
        """Does this labeller keep an answer :meth:`prepare` got for one of ``texts``? (Then this process labels
        them: another one would ask the LLM again.)"""
        return bool(self._prepared) and any(isinstance(t, str) and t in self._prepared for t in texts)

    def take_carried_seconds(self) -> float:
        """Seconds spent before labelling on the items labelled since the last call (their share of the
        pivot's scoring), so a chunk's time counts the work its rows took; reset to 0 by the call."""
        with self._carried_lock:
            out, self._carried = self._carried, 0.0
        return out

    def _explain(self, value: Any) -> ItemScores:
        got = self._prepared.pop(value, None) if self._prepared else None
        if got is None:
            return super()._explain(value)
        with self._carried_lock:
            self._carried += self._seconds_each
        return ItemScores(self.tagger.catch_all_scores(np.asarray(got.scores)[None, :])[0], got.fields, got.usage)

    def set_pivot(self, record: dict[str, Any]) -> bool:
        """Use a known catch-all pivot (``{"pivot", "source", ...}``, as a run manifest records it under
        ``catch_all``) instead of fitting one; False (nothing changed) without catch-all labels or when the
        record names other catch-all labels than this run's."""
        from zsl.scoring import CatchAll

        cols = self.tagger.catch_all_columns()
        names = [self.vocab[int(c)] for c in cols]
        if not cols.size or record.get("labels", names) != names:
            return False
        self.tagger.catch_all_ = CatchAll.from_record(record, cols, len(self.vocab), mix=self.tagger.catch_all_mix)
        return True

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
    rule, _ = resolve_rule(s, None)
    if s.program is not None:  # fusion weights fitted on labelled photos (`zsl fit photos.jsonl --lm ...`)
        tagger.load(s.program)
    if not tagger.uses_lm:
        notes = [f"{s.lm} reads no images here: --lm only writes --descriptions"] if (
            s.lm is not None and (s.infer or s.rank) and not kwargs.get("descriptions")) else []
        if s.program is not None:
            notes.append(f"the program {s.program} holds fusion weights for a vision-language --lm; without one "
                         "the photos are scored by the image model alone")
        return Labeller(tagger, k=_k(s, rule), kind="images", input_field="image", top_scores=s.top_scores,
                        warnings=notes, rule=rule, tree_output=s.tree_output)
    lm = tagger.vlm_.steps.lm
    labeller = Labeller(tagger, k=_k(s, rule), kind="images", input_field="image", top_scores=s.top_scores,
                        rule=rule, tree_output=s.tree_output,
                        concurrency=s.concurrency, timeout=s.timeout, retries=s.retries, remote=is_remote_lm(lm),
                        lm_name=getattr(lm, "model", type(lm).__name__), source=f"the VLM {getattr(lm, 'model', '')}")
    if labeller.remote:
        labeller.check_remote()
    return labeller


def resolve_catch_all(vocab: LabelVocab, named: Sequence[str] = (), guess: bool = True) -> tuple[list[str], str]:
    """The catch-all labels of a run and what to log about them: the vocabulary's ``catch_all`` column plus
    ``named`` (``--catch-all``); when both are empty and ``guess``, the labels whose names say so.

    Raises:
        VocabularyError: a named catch-all is not a label of the vocabulary.
    """
    from zsl.scoring import guess_catch_all

    for name in named:
        vocab.index(name)  # names close matches when misspelt
    names = [lab for lab in vocab if lab in set(vocab.catch_all) | set(named)]
    tree = vocab.tree
    if names and tree is not None:
        cols = [vocab.index(lab) for lab in names]
        deep = [f"{lab!r} (under {tree.labels[tree.parent[j]]!r})" if tree.parent[j] >= 0 else f"{lab!r} (it has children)"
                for lab, j in zip(names, cols, strict=True) if tree.parent[j] >= 0 or not tree.leaves[j]]
        if deep:
            raise VocabularyError(
                f"catch-all label(s) {', '.join(deep[:5])}{' ...' if len(deep) > 5 else ''} are not top-level labels "
                "without children: in a tree, a catch-all means 'none of the other labels', so it must stand alone "
                "at the top. Fix: drop them from --catch-all / the catch_all column (they are then ordinary labels), "
                "or move them to the top level.")
    if names:
        return names, f"catch-all label(s): {', '.join(names)} (scored from the absence of evidence for the others)"
    if not guess:
        return [], ""
    guessed = guess_catch_all(vocab)
    if not guessed:
        return [], ""
    return guessed, (f"catch-all label(s) guessed from their names: {', '.join(guessed)} (scored from the absence of "
                     "evidence for the others; --no-catch-all-guess turns this off, --catch-all LABEL names them)")


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
        rule, notes = resolve_rule(s, SetRule("fitted", thresholds=(float(student.threshold_),),
                                              min_labels=int(getattr(student, "min_labels", 0))))
        return Labeller(student, k=_k(s, rule), kind="student", rule=rule, top_scores=s.top_scores, warnings=notes,
                        tree_output=s.tree_output, source=f"the student {getattr(student, 'path_', '(in memory)')}")
    assert vocab is not None
    if fmt == "images":
        return _image_labeller(vocab, s)
    return TextLabeller(vocab, s)


def _k(settings: LabelSettings, rule: SetRule) -> int:
    """The ranking's depth of a run: a topk rule's ``k``, else the settings' (default 5)."""
    return int(rule.k) if rule.name == "topk" else settings.ranked_k
