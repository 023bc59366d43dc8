"""Few-shot taxonomy tagging from Python: the Infer-Retrieve-Rank program behind a small,
scikit-learn-like estimator.

Example:
    >>> from zsl import Tagger, LabelVocab                            # doctest: +SKIP
    >>> tagger = Tagger(LabelVocab(["python", "sql", "cooking"]), label_kind="skills")
    >>> tagger.top_k(["We need someone fluent in Python."], k=2)       # doctest: +SKIP
    [[('python', 0.83), ('sql', 0.41)]]
    >>> tagger.predict(["We need someone fluent in Python."], k=2)     # doctest: +SKIP
    array([[1, 1, 0]], dtype=uint8)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zsl.base import ItemScores, Ranked, ScorerMixin
from zsl.data.files import write_text_atomic
from zsl.errors import InputError
from zsl.vocab import LabelVocab

__all__ = ["Tagger", "as_examples"]


def as_examples(examples: Iterable[Any]) -> list[tuple[str, list[str]]]:
    """Normalise labelled examples to ``(text, [labels])`` pairs.

    Accepts ``(text, labels)`` tuples or mappings with ``text`` and ``labels`` keys.
    """
    out: list[tuple[str, list[str]]] = []
    for i, ex in enumerate(examples):
        if isinstance(ex, Mapping):
            text, labels = ex.get("text"), ex.get("labels")
        elif isinstance(ex, (tuple, list)) and len(ex) == 2:
            text, labels = ex
        else:
            raise InputError(f"Example {i}: expected (text, labels) or {{'text': ..., 'labels': [...]}}, got {ex!r:.80}")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"Example {i}: text must be a non-empty string, got {text!r:.60}")
        if isinstance(labels, str) or not isinstance(labels, Iterable):
            raise InputError(f"Example {i}: labels must be a list of label strings, got {labels!r:.60}")
        out.append((text, list(labels)))
    return out


class Tagger(ScorerMixin):
    """Tag texts with labels from a vocabulary using Infer-Retrieve-Rank.

    Parameters are stored as given; models load on first use. A :class:`zsl.base.Scorer`:
    ``score`` / ``decision_function`` give the raw ``(N, K)`` scores, ``predict_proba`` the
    same clipped to [0, 1], ``predict(texts, k)`` the top-``k`` label sets as an ``(N, K)``
    0/1 matrix, and ``top_k(texts, k)`` the ``(label, score)`` pairs.

    Args:
        vocab: the label vocabulary (or a list of labels).
        lm: LM for both steps: a name (``"qwen2.5-coder-1.5b"``, ``"openai/gpt-4o-mini"``), a
            ``.gguf`` path, a ``dspy.BaseLM``, or None (``$ZSL_LM`` or the embedded default).
        infer_lm, rank_lm: override the LM of one step (e.g. a small fast Infer model and a
            stronger Rank model).
        encoder: sentence encoder name/path/object (None: ``$ZSL_ENCODER`` or MiniLM).
        label_kind: what the labels are called in prompts (``"skills"``, ``"topics"``).
        infer, rank, rank_top, text_weight, prior_weight, rank_weight, max_phrases:
            see :class:`zsl.programs.irr.InferRetrieveRank`.
        use_descriptions: use the vocabulary's label descriptions: embedded with the label for
            retrieval (``"label: description"``, cut to 48 words / 400 characters) and shown to
            the Rank step as ``"label (description)"`` (cut to 16 words / 120 characters, set
            in ``prompts/rank_*.json``). Labels without a description (or with a blank one, or
            one that repeats the label) are used alone, exactly as without descriptions.
            ``None`` (the default): on when the vocabulary has any description; ``True`` /
            ``False`` force it. See :func:`zsl.vocab.clean_description`.
        random_state: seed for optimisation.

    Attributes:
        program_: the fitted (or zero-shot) ``InferRetrieveRank`` program.
        index_: the :class:`~zsl.index.VocabIndex`.
    """

    def __init__(self, vocab: LabelVocab | Sequence[str], *, lm: Any = None, infer_lm: Any = None, rank_lm: Any = None,
                 encoder: Any = None, label_kind: str = "labels", infer: bool = True, rank: bool = True,
                 rank_top: int = 30, text_weight: float = 0.5, prior_weight: float = 0.0, rank_weight: float = 0.2,
                 max_phrases: int = 8, use_descriptions: bool | None = None, random_state: int = 0):
        self.vocab = vocab if isinstance(vocab, LabelVocab) else LabelVocab(vocab)
        self.lm = lm
        self.infer_lm = infer_lm
        self.rank_lm = rank_lm
        self.encoder = encoder
        self.label_kind = label_kind
        self.infer = infer
        self.rank = rank
        self.rank_top = rank_top
        self.text_weight = text_weight
        self.prior_weight = prior_weight
        self.rank_weight = rank_weight
        self.max_phrases = max_phrases
        self.use_descriptions = use_descriptions
        self.random_state = random_state
        self._program = None

    # -- building -----------------------------------------------------------------------
    def _resolve_lm(self, lm: Any) -> Any:
        if lm is None or isinstance(lm, (str, os.PathLike)):
            from zsl.lm import get_lm

            return get_lm(None if lm is None else str(lm))
        return lm

    @property
    def index_(self):
        return self.program_.index

    @property
    def program_(self):
        if self._program is None:
            self._program = self._build()
        return self._program

    @program_.setter
    def program_(self, program: Any) -> None:
        self._program = program

    def _build(self):
        from zsl.encoders import get_encoder
        from zsl.index import VocabIndex
        from zsl.programs.irr import InferRetrieveRank

        index = VocabIndex(self.vocab, get_encoder(self.encoder), use_descriptions=self.use_descriptions,
                           show_progress=len(self.vocab) > 2000)
        program = InferRetrieveRank(index, label_kind=self.label_kind, infer=self.infer, rank=self.rank,
                                    rank_top=self.rank_top, text_weight=self.text_weight,
                                    prior_weight=self.prior_weight, rank_weight=self.rank_weight,
                                    max_phrases=self.max_phrases)
        if self.infer or self.rank:
            # one shared LM object for the steps that have no LM of their own
            base = self._resolve_lm(self.lm) if self.infer_lm is None or self.rank_lm is None else None
            program.infer.set_lm(self._resolve_lm(self.infer_lm) if self.infer_lm is not None else base)
            program.rank.set_lm(self._resolve_lm(self.rank_lm) if self.rank_lm is not None else base)
        return program

    # -- inference ----------------------------------------------------------------------
    def _check_texts(self, texts: Sequence[str]) -> list[str]:
        if isinstance(texts, str):
            raise InputError("Expected a list of texts, got one string. Fix: tagger.predict([text])")
        items = list(texts)
        bad = [i for i, t in enumerate(items) if not isinstance(t, str) or not t.strip()]
        if bad:
            raise InputError(f"{len(bad)} text(s) are empty or not strings, at positions {bad[:10]}"
                             f"{' ...' if len(bad) > 10 else ''}. Remove or fill them first.")
        return items

    @property
    def uses_lm(self) -> bool:
        """Whether scoring runs an LLM step (Infer or Rank): then items are scored one at a time."""
        program = self.program_
        return bool(program.use_infer or program.use_rank)

    def score(self, texts: Sequence[str], *, show_progress: bool = False, batch_size: int = 1024) -> np.ndarray:
        """Raw scores ``(N, K)`` float32 in vocabulary order (retrieval similarity + rank bonus).

        The :class:`~zsl.base.Scorer` contract; the same scores ``zsl label`` writes. Without
        an LLM step (``infer=False, rank=False``) the texts are encoded ``batch_size`` at a time
        in one batched encoder call each, as ``zsl label --no-infer --no-rank`` does; with one,
        the program runs once per text.
        """
        items = self._check_texts(texts)
        program = self.program_
        out = np.zeros((len(items), len(self.vocab)), dtype=np.float32)
        from zsl.progress import progress

        if not self.uses_lm:
            starts = range(0, len(items), max(1, int(batch_size)))
            for start in progress(starts, desc="tagging", disable=not show_progress, unit="batch"):
                out[start:start + batch_size] = program.retrieve_many(items[start:start + batch_size])
            return out
        for i, text in enumerate(progress(items, desc="tagging", disable=not show_progress)):
            out[i] = program(text=text).scores
        return out

    def explain(self, text: str) -> ItemScores:
        """Score one text with the whole program, keeping what a labelled row shows besides its scores.

        Returns:
            :class:`~zsl.base.ItemScores`: the ``(K,)`` scores, the fields ``phrases`` (with
            Infer), ``retrieval_labels`` (with Rank: the scores before it, as a
            :class:`~zsl.base.Ranked` vector) and ``notes`` (fallbacks taken, if any), and the LM
            usage per step.
        """
        program = self.program_
        pred = program(text=text)
        fields: dict[str, Any] = {}
        if program.use_infer:
            fields["phrases"] = list(pred.phrases)
        if program.use_rank:
            fields["retrieval_labels"] = Ranked(pred.retrieval_scores)
        if pred.notes:
            fields["notes"] = list(pred.notes)
        return ItemScores(np.asarray(pred.scores, dtype=np.float32), fields, dict(pred.get("usage") or {}))

    def setup_notes(self) -> list[str]:
        """What to say once, before labelling, about how the vocabulary is used (e.g. descriptions that are cut)."""
        return self.program_.setup_notes()

    def limit_remote_calls(self, timeout: float | None) -> float | None:
        """Bound every LM call in time and leave retries to the caller (:func:`zsl.retry.retry_call`).

        Each step's LM is replaced by a copy with the time limit (``timeout``, else the LM's own,
        else :data:`zsl.lm.REMOTE_TIMEOUT`) and no retries of DSPy's own (they would multiply the
        caller's); the LM objects passed in are left alone.

        Returns:
            the time limit in seconds (``timeout`` itself when the LM's own is an ``httpx.Timeout``).
        """
        from zsl.lm import REMOTE_TIMEOUT

        program = self.program_
        for predictor in (program.infer.predict, program.rank.predict):
            lm = predictor.lm
            if lm is not None and hasattr(lm, "kwargs") and hasattr(lm, "copy"):
                limit = timeout or lm.kwargs.get("timeout") or REMOTE_TIMEOUT
                predictor.lm = lm.copy(timeout=limit, num_retries=0)
                if isinstance(limit, int | float):  # not an httpx.Timeout the caller set on the LM
                    timeout = float(limit)
        return timeout

    def check_lm(self, name: str | None = None, *, attempt: Any = None) -> None:
        """Check, with one short call, that the LM answers (see :func:`zsl.lm.check_lm`).

        Raises:
            RemoteModelError: it does not.
        """
        from zsl.lm import check_lm

        check_lm(self.program_.infer.predict.lm, name, attempt=attempt)

    def decision_function(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Raw scores ``(N, K)`` in vocabulary order: :meth:`score` (scikit-learn's name)."""
        return self.score(texts, show_progress=show_progress)

    def predict_proba(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Scores clipped to [0, 1], ``(N, K)`` in vocabulary order. Not calibrated probabilities."""
        return np.clip(self.score(texts, show_progress=show_progress), 0.0, 1.0)

    def config(self) -> dict[str, Any]:
        """What produces this tagger's scores: LMs, encoder, vocabulary, program settings and prompts.

        Recorded in run manifests and silver-data provenance (the zsl version is added there).
        """
        program = self.program_
        return {
            "infer_lm": getattr(program.infer.predict.lm, "model", None) if program.use_infer else None,
            "rank_lm": getattr(program.rank.predict.lm, "model", None) if program.use_rank else None,
            "encoder": program.index.encoder.model_id,
            "vocab_hash": self.vocab.hash,
            "vocab_size": len(self.vocab),
            "settings": program.config(),
        }

    # -- optimisation -------------------------------------------------------------------
    def fit(self, examples: Iterable[Any], *, optimizer: str = "bootstrap", metric_k: int = 10,
            max_demos: int = 3, num_candidates: int = 4, valset: Iterable[Any] | None = None,
            fusion: bool = True) -> Tagger:
        """Optimise the program's prompts/demonstrations on a few labelled examples, then refit
        the fusion weights (text vs. phrase similarity, prior, Rank weight and depth) on them.

        Args:
            examples: ``(text, labels)`` pairs (tens are enough).
            optimizer: ``"bootstrap"`` (BootstrapFewShot), ``"random_search"``
                (BootstrapFewShotWithRandomSearch, as the paper) or ``"mipro"`` (MIPROv2, light).
            metric_k: the validation metric is RP@``metric_k``.
            max_demos: demonstrations per predictor.
            num_candidates: candidate programs for random search.
            valset: separate validation examples for random search / MIPRO (default: ``examples``).
                The fusion weights are fitted on it too.
            fusion: refit the fusion weights by RP@``metric_k`` (:func:`zsl.fusion.fit_fusion`;
                the zero-shot weights stay unless another setting is clearly better). ``optimizer="none"``
                with ``fusion=True`` fits the weights alone.

        Returns:
            self, with ``program_`` optimised and ``fusion_`` (the fit, or None) set.
        """
        import dspy

        pairs = as_examples(examples)
        if not pairs:
            raise InputError("fit() needs at least one labelled example")
        for i, (_, labels) in enumerate(pairs):
            missing = [lab for lab in labels if lab not in self.vocab]
            if missing:
                raise InputError(f"Example {i} has labels outside the vocabulary: {missing[:3]}")
        train = [dspy.Example(text=t, gold=list(ls)).with_inputs("text") for t, ls in pairs]
        val = [dspy.Example(text=t, gold=list(ls)).with_inputs("text") for t, ls in as_examples(valset)] if valset else train

        def metric(example, pred, trace=None):
            gold = set(example.gold)
            if not gold:
                return 0.0
            hits = len(gold.intersection(pred.ranking[:metric_k]))
            score = hits / min(metric_k, len(gold))
            return score >= 0.5 if trace is not None else score

        program = self.program_
        if optimizer == "none":
            compiled = program
        elif optimizer == "bootstrap":
            opt = dspy.BootstrapFewShot(metric=metric, max_bootstrapped_demos=max_demos, max_labeled_demos=0)
            compiled = opt.compile(program, trainset=train)
        elif optimizer == "random_search":
            opt = dspy.BootstrapFewShotWithRandomSearch(metric=metric, max_bootstrapped_demos=max_demos,
                                                        max_labeled_demos=0, num_candidate_programs=num_candidates,
                                                        num_threads=1)
            compiled = opt.compile(program, trainset=train, valset=val)
        elif optimizer == "mipro":
            opt = dspy.MIPROv2(metric=metric, auto="light", seed=self.random_state, num_threads=1,
                               max_bootstrapped_demos=max_demos, max_labeled_demos=0)
            compiled = opt.compile(program, trainset=train, valset=val)
        else:
            raise InputError(f"optimizer must be 'bootstrap', 'random_search', 'mipro' or 'none', got {optimizer!r}")
        self._program = compiled
        self.fusion_ = self._fit_fusion(as_examples(valset) if valset else pairs, metric_k) if fusion else None
        return self

    def _fit_fusion(self, pairs: list[tuple[str, list[str]]], k: int) -> Any:
        from zsl.fusion import GRID, FusionItem, fit_fusion

        program = self.program_
        deepest = max(GRID["rank_top"])
        items = []
        for text, labels in pairs:
            c = program.fusion_components(text, rank_top=deepest)
            items.append(FusionItem(gold=[self.vocab.index(lab) for lab in labels], **c))
        defaults = {"text_weight": program.text_weight, "prior_weight": program.prior_weight,
                    "rank_weight": program.rank_weight, "rank_top": program.rank_top}
        fit = fit_fusion(items, self.vocab.prior_array(), k=k, defaults=defaults)
        self._apply_weights(fit.weights)
        return fit

    def _apply_weights(self, weights: dict[str, Any]) -> None:
        program = self.program_
        for key in ("text_weight", "prior_weight", "rank_weight", "rank_top"):
            if key in weights:
                value = int(weights[key]) if key == "rank_top" else float(weights[key])
                setattr(program, key, value)
                setattr(self, key, value)

    # -- persistence --------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save the program state (prompts, demos) and settings as JSON."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        # LMs are injected, never saved: a state file holds prompts, demos and weights only
        state = {name: ({**pred, "lm": None} if isinstance(pred, dict) and "lm" in pred else pred)
                 for name, pred in self.program_.dump_state().items()}
        payload = {"zsl_tagger": 1, "vocab_hash": self.vocab.hash, "settings": self.program_.config(),
                   "program": state}
        return write_text_atomic(p, json.dumps(payload, indent=1, ensure_ascii=False, default=str))

    def load(self, path: str | os.PathLike[str]) -> Tagger:
        """Load a state saved by :meth:`save` into this tagger's program.

        The file is checked before any model is loaded.

        Raises:
            InputError: the file is a folder, not UTF-8 JSON, not a state written by
                :meth:`save`, or its program state does not fit this program.
        """
        p = Path(path)
        fix = "Fix: pass a file written by `zsl optimize ... --out program.json` (or Tagger.save), or omit --program."
        if p.is_dir():
            raise InputError(f"The program {p} is a folder, not a file. {fix}")
        if not p.is_file():
            raise InputError(f"The program file {p} does not exist. {fix}")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise InputError(f"The program {p} is not UTF-8 text (byte {exc.start}). {fix}") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"The program {p} is not valid JSON ({exc.msg} at line {exc.lineno}, column "
                             f"{exc.colno}). {fix}") from None
        if not isinstance(data, dict) or data.get("zsl_tagger") != 1:
            raise InputError(f"{p} is not a zsl tagger state file (expected a JSON object with \"zsl_tagger\": 1). "
                             f"{fix}")
        if not isinstance(data.get("program"), dict):
            raise InputError(f"{p} has no \"program\" object (the saved prompts and demonstrations); the file is "
                             f"incomplete or was edited. {fix}")
        program = self.program_
        # the tagger's own LMs stay: an "lm" saved by an older zsl is ignored, never rebuilt from the file
        lms = {name: pred.lm for name, pred in program.named_predictors()}
        state = {name: ({**pred, "lm": None} if isinstance(pred, dict) and "lm" in pred else pred)
                 for name, pred in data["program"].items()}
        try:
            program.load_state(state)
            for name, pred in program.named_predictors():
                pred.lm = lms.get(name)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"The program state in {p} does not fit this program ({type(exc).__name__}: "
                             f"{str(exc)[:200]}). {fix}") from None
        settings = data.get("settings")
        if isinstance(settings, dict):  # the fusion weights saved with the program (fitted or zero-shot)
            try:
                self._apply_weights({k: v for k, v in settings.items()
                                     if k in ("text_weight", "prior_weight", "rank_weight", "rank_top")})
            except (TypeError, ValueError) as exc:
                raise InputError(f"The weights in {p} are not numbers ({exc}). {fix}") from None
        return self
