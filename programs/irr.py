"""Infer-Retrieve-Rank (D'Oosterlinck et al., 2024) as DSPy modules.

* :class:`Infer` -- the LM reads a text and writes short label phrases (free-form).
* retrieval -- each phrase (and the text itself) is embedded and compared with every
  label; a label keeps its best similarity over phrases (:func:`zsl.index.max_over_phrases`),
  mixed with the text's own similarity and optionally a label prior.
* :class:`Rank` -- the LM re-scores the top retrieved candidates. With a local llama.cpp
  model it asks one yes/no question per candidate and reads log P(Yes) - log P(No) from the
  next-token logits (no generation, shared prefix cached). With any other LM it falls back
  to a listwise prompt that returns candidate *numbers*, so labels with commas survive.

The output is a full ranking of the vocabulary: re-ranked candidates first, the rest in
retrieval order. LMs are injected from outside (``dspy.configure(lm=...)``,
``program.set_lm(lm)`` or ``program.infer.set_lm(small)`` / ``program.rank.set_lm(big)``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dspy
import numpy as np
from dspy.utils.usage_tracker import track_usage

from zsl.errors import InputError
from zsl.fusion import DEFAULT_PRIOR_WEIGHT, DEFAULT_RANK_TOP, DEFAULT_RANK_WEIGHT, DEFAULT_TEXT_WEIGHT
from zsl.hierarchy import (
    DEFAULT_BEAM,
    DEFAULT_TREE_BLEND,
    Tree,
    below_visited,
    check_tree_settings,
    consistent_scores,
    top_down,
    top_down_scores,
)
from zsl.index import VocabIndex, apply_prior, max_over_phrases
from zsl.prompting import DEFAULT_RANK_PROMPT, RANK_DESCRIPTIONS, LabelKind, Prompt, load_prompt
from zsl.vocab import DESCRIPTION_CHARS, DESCRIPTION_WORDS, clean_description

__all__ = ["Demo", "Infer", "InferRetrieveRank", "Rank", "parse_numbers", "parse_phrases"]

_BULLET = re.compile(r"^\s*(?:[-*\u2022]+|\d+[.)]|\(\d+\))\s*")


def parse_phrases(raw: str | Sequence[str] | None, max_phrases: int) -> list[str]:
    """Split an LM answer into distinct short phrases (one per line; bullets and numbers dropped).

    Lines separate phrases, so a phrase may contain commas; only an answer that is a
    single comma-separated line of short items (a common small-model habit) is split on commas.

    Example:
        >>> parse_phrases("1. Python\\n- data analysis, reporting\\n\\nPython", 5)
        ['Python', 'data analysis, reporting']
        >>> parse_phrases("HTML, CSS, JavaScript", 5)
        ['HTML', 'CSS', 'JavaScript']
    """
    if raw is None:
        return []
    lines = list(raw) if isinstance(raw, (list, tuple)) else str(raw).splitlines()
    nonempty = [ln for ln in lines if str(ln).strip()]
    if len(nonempty) == 1 and "," in str(nonempty[0]):
        parts = [p.strip() for p in str(nonempty[0]).split(",")]
        if len(parts) >= 2 and all(0 < len(p.split()) <= 5 for p in parts):
            lines = parts
    out: list[str] = []
    seen: set[str] = set()
    for line in lines:
        phrase = _BULLET.sub("", str(line)).strip().strip('"\'`').strip()
        if not phrase or len(phrase) > 200:
            continue
        key = phrase.casefold()
        if key in seen:
            continue
        seen.add(key)
        out.append(phrase)
        if len(out) >= max_phrases:
            break
    return out


def parse_numbers(raw: str | None, n_options: int) -> list[int]:
    """Read 1-based option numbers from an answer; returns distinct 0-based indices in order.

    Example:
        >>> parse_numbers("3, 1, 3 and 9", 4)
        [2, 0]
    """
    out: list[int] = []
    for m in re.findall(r"\d+", raw or ""):
        i = int(m) - 1
        if 0 <= i < n_options and i not in out:
            out.append(i)
    return out


@dataclass(frozen=True)
class Demo:
    """A labelled example shown to the LM next to an item (dynamic few-shot): its text (already cut
    to the demo budget) and its labels."""

    text: str
    labels: tuple[str, ...]


def _signature(prompt_name: str, kind: LabelKind, **extra: Any) -> type[dspy.Signature]:
    prompt = load_prompt(prompt_name)
    values = {**kind.fields(), **extra}
    fields: dict[str, tuple[type, Any]] = {}
    for name, desc in prompt.fields("inputs", **values).items():
        fields[name] = (str, dspy.InputField(desc=desc))
    for name, desc in prompt.fields("outputs", **values).items():
        fields[name] = (str, dspy.OutputField(desc=desc))
    return dspy.make_signature(fields, prompt.text("instructions", **values), signature_name=prompt_name.title())


class Infer(dspy.Module):
    """LM step that writes label phrases for a text.

    Args:
        label_kind: how the prompt names labels (``"skills"``, ``"topics"``, ``"emotions"``).
        max_phrases: at most this many phrases are kept.
        max_chars: longer texts are cut to this many characters (the prediction says so).
    """

    def __init__(self, label_kind: str = "labels", max_phrases: int = 8, max_chars: int = 4000):
        super().__init__()
        self.kind = LabelKind.parse(label_kind)
        self.max_phrases = max_phrases
        self.max_chars = max_chars
        self.prompt_id = load_prompt("infer").id
        # A short budget: phrases are a few words each, and small models otherwise ramble on.
        self.predict = dspy.Predict(_signature("infer", self.kind, max_phrases=max_phrases),
                                    max_tokens=24 + 10 * max_phrases)

    def forward(self, text: str, demos: Sequence[Demo] | None = None) -> dspy.Prediction:
        """Phrases for ``text``; ``demos`` (labelled examples near it) are shown first as worked
        examples whose answer is their labels, after any demonstrations the program was compiled with."""
        truncated = len(text) > self.max_chars
        if demos:
            shown = [dspy.Example(text=d.text, phrases="\n".join(d.labels)).with_inputs("text") for d in demos]
            answer = self.predict(text=text[: self.max_chars], demos=[*self.predict.demos, *shown])
        else:
            answer = self.predict(text=text[: self.max_chars])
        return dspy.Prediction(phrases=parse_phrases(answer.phrases, self.max_phrases), truncated=truncated)


class Rank(dspy.Module):
    """LM step that scores candidate labels for a text.

    A candidate with a description is shown as ``"label (description)"`` (the prompt's
    ``candidate_described`` / ``option_described`` template), the description cleaned and
    cut to the prompt's ``description_max_words`` (16) words / ``description_max_chars``
    (120) characters: smaller than the retrieval budget because every candidate pays it,
    and a gloss of a dozen words is enough to tell a code like ``acq`` apart. A candidate
    without one is shown as its bare label.

    Which candidates show their description is ``descriptions``: ``"auto"`` (the default)
    shows it for one-word labels only (no space in the name: a code such as ``acq`` or
    ``money-fx``, a name such as ``Haskell``), where the name alone may not say what the label
    means; a label of several words (``manage budgets``) is shown bare. A description costs
    ~17 more prompt tokens per candidate than a bare ESCO label (~4), and on ESCO's descriptive
    names showing them all was a wash (BENCHMARKS.md, "Label descriptions"), while on
    Reuters' codes it raised P@1 from 34 to 56. ``"all"`` and ``"none"`` override the rule.

    Args:
        label_kind: how the prompt names labels.
        mode: ``"yesno"`` (needs an LM with ``yes_no_logodds``, i.e. a local llama.cpp
            model), ``"list"`` (any LM), or ``"auto"`` (yesno when available).
        max_chars: longer texts are cut to this many characters.
        yesno_prompt: the yes/no prompt's name (``prompts/``).
        descriptions: ``"auto"``, ``"all"`` or ``"none"`` (see above).
    """

    def __init__(self, label_kind: str = "labels", mode: str = "auto", max_chars: int = 3000,
                 yesno_prompt: str = DEFAULT_RANK_PROMPT, descriptions: str = "auto"):
        super().__init__()
        if mode not in ("auto", "yesno", "list"):
            raise InputError(f"Rank mode must be 'auto', 'yesno' or 'list', got {mode!r}")
        if descriptions not in RANK_DESCRIPTIONS:
            raise InputError(f"Rank descriptions must be one of {', '.join(RANK_DESCRIPTIONS)}, got {descriptions!r}")
        self.descriptions = descriptions
        self.kind = LabelKind.parse(label_kind)
        self.mode = mode
        self.max_chars = max_chars
        self.yesno_prompt = load_prompt(yesno_prompt)
        self.list_prompt = load_prompt("rank_list")
        self.list_prompt_id = self.list_prompt.id
        self.predict = dspy.Predict(_signature("rank_list", self.kind))

    def _lm(self):
        return self.predict.lm or dspy.settings.lm

    def resolved_mode(self) -> str:
        if self.mode != "auto":
            return self.mode
        return "yesno" if hasattr(self._lm(), "yes_no_logodds") else "list"

    @property
    def prompt_id(self) -> str:
        return self.yesno_prompt.id if self.resolved_mode() == "yesno" else self.list_prompt_id

    def _prompt(self, mode: str) -> tuple[Prompt, str]:
        return (self.yesno_prompt, "candidate_described") if mode == "yesno" else (self.list_prompt, "option_described")

    def description_budget(self, mode: str | None = None) -> tuple[int, int]:
        """``(max_words, max_chars)`` of a description shown with a candidate in ``mode``."""
        prompt, _ = self._prompt(mode or self.resolved_mode())
        return int(prompt.data["description_max_words"]), int(prompt.data["description_max_chars"])

    def shown(self, candidates: Sequence[str], descriptions: Sequence[str | None] | None = None,
              mode: str | None = None) -> list[str]:
        """The candidate strings the LM sees: the label (newlines as spaces), with its description
        if it has one and ``self.descriptions`` shows it (see the class docstring).

        Example:
            >>> Rank("topics", mode="yesno").shown(["acq", "earn", "manage budgets"],
            ...                                    ["Mergers/Acquisitions", None, "Plan and monitor a budget."])
            ['acq (Mergers/Acquisitions)', 'earn', 'manage budgets']
        """
        mode = mode or self.resolved_mode()
        descs = list(descriptions) if descriptions is not None else [None] * len(candidates)
        if len(descs) != len(candidates):
            raise InputError(f"Got {len(descs)} descriptions for {len(candidates)} candidates; they must match 1:1.")
        if self.descriptions == "none":
            descs = [None] * len(candidates)
        elif self.descriptions == "auto":
            descs = [d if len(str(c).split()) <= 1 else None for c, d in zip(candidates, descs, strict=True)]
        prompt, key = self._prompt(mode)
        words, chars = self.description_budget(mode)
        out = []
        for label, raw in zip(candidates, descs, strict=True):
            label = label.replace("\n", " ")
            desc = clean_description(label, raw, max_words=words, max_chars=chars)[0]
            out.append(label if desc is None else prompt.text(key, label=label, description=desc))
        return out

    def demo_block(self, demos: Sequence[Demo] | None) -> str:
        """The labelled examples shown before the text in the yes/no prompt ("" without demos)."""
        if not demos:
            return ""
        fields = self.kind.fields()
        shown = "\n\n".join(self.yesno_prompt.text("demo", text=d.text.replace("\n", " "), labels="; ".join(d.labels),
                                                    **fields) for d in demos)
        return self.yesno_prompt.text("demo_block", demos=shown, **fields)

    def forward(self, text: str, candidates: Sequence[str],
                descriptions: Sequence[str | None] | None = None, demos: Sequence[Demo] | None = None
                ) -> dspy.Prediction:
        """Score candidates: ``scores[i]`` in [0, 1] is how applicable ``candidates[i]`` is.

        ``descriptions`` (optional, one per candidate, None for none) are shown with the labels;
        ``demos`` (labelled examples near the text) before the text (yes/no mode; the listwise
        prompt shows none).
        """
        cands = list(candidates)
        if not cands:
            return dspy.Prediction(scores=np.zeros(0, dtype=np.float32), mode=self.resolved_mode())
        text = text[: self.max_chars]
        mode = self.resolved_mode()
        if mode == "yesno":
            lm = self._lm()
            if not hasattr(lm, "yes_no_logodds"):
                raise InputError(f"Rank mode 'yesno' needs a local llama.cpp LM; {lm!r} has no token log-probabilities. "
                                 "Use mode='list' or 'auto'.")
            values = {**self.kind.fields(), "text": text}
            prefix = self.demo_block(demos) + self.yesno_prompt.text("prefix", **values)
            suffix = self.yesno_prompt.text("suffix", **values)
            system = self.yesno_prompt.text("system")
            scorer = getattr(lm, "scorer", None)
            before = getattr(scorer, "tokens_evaluated", 0)
            shown = self.shown(cands, descriptions, mode)
            if "lead" in self.yesno_prompt.data:  # the candidates go in the assistant's turn, after the lead
                logodds = lm.yes_no_logodds(prefix, shown, suffix, system=system,
                                            lead=self.yesno_prompt.text("lead", **values))
            else:
                logodds = lm.yes_no_logodds(prefix, shown, suffix, system=system)
            scores = np.array([1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, x)))) for x in logodds], dtype=np.float32)
            tokens = getattr(scorer, "tokens_evaluated", 0) - before
            return dspy.Prediction(scores=scores, mode=mode, prompt_tokens=tokens)
        options = "\n".join(f"{i + 1}. {c}" for i, c in enumerate(self.shown(cands, descriptions, mode)))
        answer = self.predict(text=text, options=options)
        chosen = parse_numbers(answer.selected, len(cands))
        scores = np.zeros(len(cands), dtype=np.float32)
        for r, i in enumerate(chosen):
            scores[i] = 1.0 - r / (len(chosen) + 1)
        return dspy.Prediction(scores=scores, mode=mode)


def _tokens(tracker: Any, extra_prompt: int = 0, extra_call: bool = False) -> dict[str, int]:
    """Sum a DSPy usage tracker over models: calls, prompt and completion tokens."""
    calls = prompt = completion = 0
    for entries in tracker.usage_data.values():
        for u in entries:
            calls += 1
            prompt += int(u.get("prompt_tokens") or u.get("input_tokens") or 0)
            completion += int(u.get("completion_tokens") or u.get("output_tokens") or 0)
    if extra_call:  # the yes/no pass reads logits directly, outside DSPy's usage tracking
        calls, prompt = calls + 1, prompt + extra_prompt
    return {"calls": calls, "prompt_tokens": prompt, "completion_tokens": completion}


class InferRetrieveRank(dspy.Module):
    """The full program: phrases from the LM, retrieval over the vocabulary, LM re-ranking.

    When the index embeds label descriptions (``index.use_descriptions``, on by default for
    a vocabulary that has them), the Rank step sees them too: one setting for both steps,
    recorded in :meth:`config` as ``label_descriptions``.

    Args:
        index: the vocabulary index (labels + encoder).
        label_kind: how prompts name the labels (``"skills"``, ``"topics"`` ...).
        infer: run the Infer step (False: retrieve from the text alone).
        rank: run the Rank step on the top ``rank_top`` candidates.
        rank_top: how many retrieved candidates the Rank step re-scores.
        text_weight: weight of the text's own similarity vs. the best phrase similarity.
        prior_weight: weight of ``log prior`` (needs priors in the vocabulary).
        rank_weight: how much the Rank score (in [0, 1]) adds to a candidate's score.
        max_phrases: phrases kept from the Infer step.
        tree_blend: for a vocabulary with a hierarchy, ``(a, b)``: how much a label's score takes from the best
            of its descendants and from its parent (:func:`zsl.hierarchy.consistent_scores`; None: the
            measured default, ``(0, 0)``: off; a top-down search uses only ``a``, see :meth:`subtree_evidence`).
            Ignored for a flat vocabulary.
        tree_search: ``"flat"`` (score every label) or ``"top-down"`` (score the top level, descend into the
            ``beam`` best branches; the Rank step sees one group of siblings per call). A flat
            vocabulary is always searched flat.
        beam: branches kept per level of the top-down search.

    The label texts (embedded and shown to Rank) are the index's ``label_texts``: for a vocabulary with a
    hierarchy, a label with the context that disambiguates it (:func:`zsl.hierarchy.label_texts`).

    ``forward(text, demos=None)`` (``demos``: labelled examples near the text, shown to Infer and
    Rank) returns a ``dspy.Prediction`` with ``ranking`` (label strings, best
    first, the whole vocabulary), ``scores`` (``(K,)`` float32 in vocabulary order),
    ``retrieval_scores`` (the scores before the Rank step), ``phrases``, ``notes``
    (fallbacks taken, if any) and ``usage`` (LM tokens per step: ``{"infer": {"calls",
    "prompt_tokens", "completion_tokens"}, "rank": {...}}``; cached answers cost nothing).
    """

    def __init__(self, index: VocabIndex, *, label_kind: str = "labels", infer: bool = True, rank: bool = True,
                 rank_top: int = DEFAULT_RANK_TOP, text_weight: float = DEFAULT_TEXT_WEIGHT,
                 prior_weight: float = DEFAULT_PRIOR_WEIGHT, rank_weight: float = DEFAULT_RANK_WEIGHT,
                 max_phrases: int = 8, rank_mode: str = "auto", rank_prompt: str = DEFAULT_RANK_PROMPT,
                 rank_descriptions: str = "auto", tree_blend: Sequence[float] | None = None,
                 tree_search: str = "flat", beam: int = DEFAULT_BEAM):
        super().__init__()
        check_tree_settings(tree_search=tree_search, tree_blend=tree_blend, beam=beam)
        if not 0.0 <= text_weight <= 1.0:
            raise InputError(f"text_weight must be in [0, 1], got {text_weight}")
        if rank_top < 1:
            raise InputError(f"rank_top must be >= 1, got {rank_top}")
        self.index = index
        self.label_kind = label_kind
        self.use_infer = infer
        self.use_rank = rank
        self.rank_top = rank_top
        self.text_weight = text_weight
        self.prior_weight = prior_weight
        self.rank_weight = rank_weight
        self.infer = Infer(label_kind, max_phrases=max_phrases)
        self.rank = Rank(label_kind, mode=rank_mode, yesno_prompt=rank_prompt, descriptions=rank_descriptions)
        tree = index.vocab.parents is not None
        self.tree = Tree.of(index.vocab) if tree else None
        self.tree_blend = tuple(DEFAULT_TREE_BLEND if tree_blend is None else tree_blend) if tree else (0.0, 0.0)
        self.tree_search = tree_search if tree else "flat"
        self.beam = beam

    def config(self) -> dict[str, Any]:
        """Settings that change outputs; recorded in provenance and cache keys."""
        return {
            "label_kind": self.label_kind, "infer": self.use_infer, "rank": self.use_rank,
            "rank_top": self.rank_top, "text_weight": self.text_weight, "prior_weight": self.prior_weight,
            "rank_weight": self.rank_weight, "max_phrases": self.infer.max_phrases, "rank_mode": self.rank.mode,
            "label_descriptions": self.index.use_descriptions, "rank_descriptions": self.rank.descriptions,
            "prompts": [self.infer.prompt_id, self.rank.yesno_prompt.id, self.rank.list_prompt_id],
            # only a vocabulary with a hierarchy records the tree settings: flat manifests stay as they were
            **({} if self.tree is None else self.tree_config()),
        }

    def tree_config(self) -> dict[str, Any]:
        """The tree settings (a vocabulary with a hierarchy): label context, blend, search and beam."""
        return {"label_context": self.index.label_context, "tree_blend": list(self.tree_blend),
                "tree_search": self.tree_search, "beam": self.beam}

    def subtree_evidence(self, scores: np.ndarray) -> np.ndarray:
        """What a top-down search scores a node by: its retrieval score blended with the best in its subtree
        (the blend's first weight; the parent's part is the search's mean over the path). Without it a
        broad top-level name (``Society and social sciences``) is judged by its own few words alone:
        on HWV validation, retrieval only, hierarchical F1 39.1 instead of 53.4 (beam 3, one path).
        """
        return consistent_scores(scores, self.index.vocab, (self.tree_blend[0], 0.0), tree=self.tree)

    def consistent(self, scores: np.ndarray) -> np.ndarray:
        """Scores made consistent along the tree (unchanged for a flat vocabulary or a top-down search)."""
        if self.tree is None or self.tree_search == "top-down":
            return scores
        return consistent_scores(scores, self.index.vocab, self.tree_blend, tree=self.tree)

    def setup_notes(self) -> list[str]:
        """What to say once per run about how the vocabulary is used (e.g. descriptions that are cut).

        Call it after the LMs are set: the Rank budget depends on the Rank mode.
        """
        if not self.index.use_descriptions:
            return []
        vocab = self.index.vocab
        parts = []
        if self.index.descriptions_cut:
            parts.append(f"{self.index.descriptions_cut} longer than {DESCRIPTION_WORDS} words or {DESCRIPTION_CHARS} "
                         "characters were cut for retrieval")
        if self.use_rank:
            words, chars = self.rank.description_budget()
            n = vocab.descriptions_cut(max_words=words, max_chars=chars)
            if n:
                parts.append(f"{n} longer than {words} words or {chars} characters are cut when shown to the Rank step")
        if not parts:
            return []
        note = (f"label descriptions: {'; '.join(parts)} (the cut ends in an ellipsis). Fix, if the cut hides what "
                "tells labels apart: shorten those descriptions, or turn them off with --no-label-descriptions "
                "(Tagger(use_descriptions=False)).")
        return [note]

    def retrieve(self, text: str, phrases: Sequence[str]) -> np.ndarray:
        """Retrieval scores ``(K,)`` for a text and its phrases (no LM)."""
        emb = self.index.encoder.encode([text, *phrases])
        sim = self.index.similarities(emb)
        text_sim = sim[0]
        if len(phrases):
            scores = self.text_weight * text_sim + (1.0 - self.text_weight) * max_over_phrases(sim[1:])
        else:
            scores = text_sim
        return apply_prior(scores.astype(np.float32), self.index.vocab.prior_array(), self.prior_weight)

    def fusion_components(self, text: str, rank_top: int = 50, demos: Sequence[Demo] | None = None) -> dict[str, Any]:
        """What :mod:`zsl.fusion` needs to refit the weights on a labelled text: the text's and the
        best phrase's similarity to every label, and Rank's P(yes) for the top ``rank_top``
        candidates (retrieved with the current weights). Runs Infer and Rank once (with ``demos``).
        """
        phrases = self.infer(text=text, demos=demos).phrases if self.use_infer else []
        sim = self.index.similarities(self.index.encoder.encode([text, *phrases]))
        scores = self.retrieve(text, phrases)
        cand = np.argsort(-scores, kind="stable")[:rank_top]
        p_yes = np.zeros(0, dtype=np.float32)
        if self.use_rank:
            vocab = self.index.vocab
            descs = ([vocab.descriptions[i] for i in cand]
                     if self.index.use_descriptions and vocab.descriptions is not None else None)
            p_yes = np.asarray(self.rank(text=text, candidates=[self.index.label_texts[i] for i in cand], descriptions=descs,
                                         demos=demos).scores)
        return {"text_sim": sim[0], "phrase_sim": max_over_phrases(sim[1:]) if phrases else None, "cand": cand,
                "p_yes": p_yes}

    def retrieve_many(self, texts: Sequence[str]) -> np.ndarray:
        """Retrieval scores ``(N, K)`` from the texts alone, encoded in one batch (no LM)."""
        return self.retrieve_embedded(self.index.encoder.encode(list(texts)))

    def retrieve_embedded(self, emb: np.ndarray) -> np.ndarray:
        """Retrieval scores ``(N, K)`` of texts already encoded (``(N, d)``, the index's encoder; no LM)."""
        sim = self.index.similarities(emb)
        scores = apply_prior(sim.astype(np.float32), self.index.vocab.prior_array(), self.prior_weight)
        if self.tree is not None and self.tree_search == "top-down":
            return top_down_scores(self.subtree_evidence(scores), self.index.vocab, self.beam, tree=self.tree)
        return self.consistent(scores)

    def forward(self, text: str, demos: Sequence[Demo] | None = None) -> dspy.Prediction:
        if not isinstance(text, str):
            raise InputError(f"InferRetrieveRank expects a string, got {type(text).__name__}")
        if not text.strip():
            raise InputError("The text is empty or whitespace only; there is nothing to label.")
        notes: list[str] = []
        phrases: list[str] = []
        usage: dict[str, dict[str, int]] = {}
        if self.use_infer:
            try:
                with track_usage() as tracker:
                    inferred = self.infer(text=text, demos=demos)
                usage["infer"] = _tokens(tracker)
                phrases = inferred.phrases
                if inferred.truncated:
                    notes.append(f"text cut to {self.infer.max_chars} characters for the Infer step")
                if not phrases:
                    notes.append("Infer returned no usable phrase: retrieved from the text alone")
            except (dspy.utils.exceptions.AdapterParseError, ValueError) as exc:
                notes.append(f"Infer failed ({type(exc).__name__}): retrieved from the text alone")
        scores = self.retrieve(text, phrases)
        retrieved = scores
        vocab = self.index.vocab
        if self.tree is not None and self.tree_search == "top-down":
            scores = self._top_down(text, scores, demos, usage, notes)
        elif self.use_rank:
            cand = np.argsort(-scores, kind="stable")[: self.rank_top]
            descs = ([vocab.descriptions[i] for i in cand]
                     if self.index.use_descriptions and vocab.descriptions is not None else None)
            try:
                with track_usage() as tracker:
                    ranked = self.rank(text=text, candidates=[self.index.label_texts[i] for i in cand], descriptions=descs,
                                       demos=demos)
                usage["rank"] = _tokens(tracker, extra_prompt=int(ranked.get("prompt_tokens", 0) or 0),
                                        extra_call=ranked.mode == "yesno")
                scores = scores.copy()
                scores[cand] += self.rank_weight * np.asarray(ranked.scores, dtype=np.float32)
            except (dspy.utils.exceptions.AdapterParseError, ValueError) as exc:
                notes.append(f"Rank failed ({type(exc).__name__}): kept retrieval order")
        scores = self.consistent(scores)
        order = np.argsort(-scores, kind="stable")
        return dspy.Prediction(ranking=[vocab[i] for i in order], scores=scores, retrieval_scores=retrieved,
                               phrases=phrases, notes=notes, usage=usage)

    def _top_down(self, text: str, scores: np.ndarray, demos: Sequence[Demo] | None,
                  usage: dict[str, dict[str, int]], notes: list[str]) -> np.ndarray:
        """The top-down search (:func:`zsl.hierarchy.top_down`): retrieval scores plus, with Rank, the
        Rank step's score of one group of siblings per call."""
        vocab = self.index.vocab
        evidence = self.subtree_evidence(scores)

        def group_scores(group: np.ndarray) -> np.ndarray:
            got = evidence[group].astype(np.float32)
            if not self.use_rank:
                return got
            descs = ([vocab.descriptions[i] for i in group]
                     if self.index.use_descriptions and vocab.descriptions is not None else None)
            try:
                with track_usage() as tracker:
                    ranked = self.rank(text=text, candidates=[self.index.label_texts[i] for i in group],
                                       descriptions=descs, demos=demos)
                step = _tokens(tracker, extra_prompt=int(ranked.get("prompt_tokens", 0) or 0),
                               extra_call=ranked.mode == "yesno")
                old = usage.setdefault("rank", {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0})
                for key, n in step.items():
                    old[key] += n
                return got + self.rank_weight * np.asarray(ranked.scores, dtype=np.float32)
            except (dspy.utils.exceptions.AdapterParseError, ValueError) as exc:
                notes.append(f"Rank failed ({type(exc).__name__}) on a group of siblings: kept their retrieval order")
                return got

        path, seen = top_down(group_scores, self.tree, self.beam)
        return below_visited(evidence, path, seen)

    def __deepcopy__(self, memo: dict) -> InferRetrieveRank:
        # Optimisers deep-copy programs; the index (arrays + encoder) is read-only, so share it.
        import copy

        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            setattr(new, k, v if k == "index" else copy.deepcopy(v, memo))
        return new
