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
from typing import TYPE_CHECKING, Any

import numpy as np

from zsl.base import ItemScores, Ranked, ScorerMixin, top_k_sets
from zsl.data.files import write_text_atomic
from zsl.errors import InputError, VocabularyError
from zsl.fusion import DEFAULT_PRIOR_WEIGHT, DEFAULT_RANK_TOP, DEFAULT_RANK_WEIGHT, DEFAULT_TEXT_WEIGHT
from zsl.hierarchy import DEFAULT_BEAM, DEFAULT_TREE_OUTPUT, Tree, check_tree_settings, tree_columns
from zsl.vocab import LabelVocab

if TYPE_CHECKING:
    from zsl.scoring import SetRule

__all__ = ["Tagger", "as_examples", "clean_examples"]


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_k(k: int | None) -> None:
    if k is not None and k < 1:
        raise InputError(f"k must be >= 1, got {k}")


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


def clean_examples(vocab: LabelVocab, examples: Iterable[Any] | None, unknown_labels: str = "error"
                   ) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Validated ``(text, labels)`` pairs and notes: labels in ``vocab``, one pair per distinct text.

    ``unknown_labels``: ``"error"`` (an example label outside the vocabulary is an error listing
    them) or ``"skip"`` (dropped, with a note). Repeated texts are merged, their labels united.
    With a hierarchy, an example may be labelled at any level: its labels count for their
    ancestors too (added before them, root first).

    Example:
        >>> clean_examples(LabelVocab(["a", "b"]), [("x", ["a"]), ("x", ["b"]), ("y", ["c"])], "skip")[0]
        [('x', ['a', 'b'])]
    """
    if unknown_labels not in ("error", "skip"):
        raise InputError(f"unknown_labels must be 'error' or 'skip', got {unknown_labels!r}")
    pairs = as_examples(examples or [])
    if not pairs:
        raise InputError("fit() needs at least one labelled example: (text, [labels]) pairs.")
    notes: list[str] = []
    unknown: dict[str, int] = {}
    merged: dict[str, list[str]] = {}
    kept = 0
    for i, (text, labels) in enumerate(pairs):
        bad = [lab for lab in labels if lab not in vocab]
        for lab in bad:
            unknown.setdefault(lab, i)
        keep = [lab for lab in labels if lab in vocab]
        if bad and unknown_labels == "error":
            continue
        if not keep:
            continue
        kept += 1
        have = merged.setdefault(text, [])
        have += [lab for lab in keep if lab not in have]
    if unknown and unknown_labels == "error":
        shown = ", ".join(f"{lab!r} (example {i})" for lab, i in list(unknown.items())[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise InputError(f"{len(unknown)} example label(s) are not in the vocabulary: {shown}{more}. Fix: correct "
                         "them, add them to the vocabulary, or pass unknown_labels='skip' to drop them.")
    if unknown:
        notes.append(f"dropped {len(unknown)} label(s) not in the vocabulary: {', '.join(list(unknown)[:10])}")
    n_dupes = kept - len(merged)
    if n_dupes > 0:
        notes.append(f"merged {n_dupes} repeated example text(s) (their labels are united)")
    if vocab.parents is not None:  # a label says its ancestors apply too
        merged = {t: _with_ancestors(vocab, labs) for t, labs in merged.items()}
    out = list(merged.items())
    if not out:
        raise InputError("No example has a label in the vocabulary; nothing to learn from. Fix: check that the "
                         "examples' labels are spelled as in the vocabulary.")
    return out, notes


def _with_ancestors(vocab: LabelVocab, labels: list[str]) -> list[str]:
    """``labels`` with each one's ancestors before it (root first), each label once."""
    out: list[str] = []
    for lab in labels:
        out += [a for a in [*vocab.ancestors(lab), lab] if a not in out]
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
        rank_descriptions: which Rank candidates are shown with their description when
            descriptions are on: ``"auto"`` (the default: one-word labels only, such as the
            code ``acq``; a label of several words already says what it means, and every
            shown description costs each candidate ~17 prompt tokens), ``"all"`` or ``"none"``.
        evidence: how :meth:`fit` learns from labelled examples' embeddings: ``"head"`` (the
            default: a logistic head anchored on the zero-shot score,
            :class:`~zsl.student.heads.AnchoredHead`), ``"knn"`` or ``"prototype"``
            (:class:`~zsl.student.heads.ExampleEvidence`), or None to leave scores zero-shot. Labels
            without examples keep their zero-shot ranking either way.
        n_demos: after :meth:`fit`, how many of the labelled examples nearest to an item (by
            embedding) the LLM steps see as worked examples (dynamic few-shot; 0: none).
        demo_chars: each demo's text is cut to this many characters (the token budget).
        random_state: seed for optimisation and cross-validation folds.
        label_context, tree_blend, tree_search, beam: for a vocabulary with a hierarchy, the context a
            label is embedded and shown with (:func:`zsl.hierarchy.label_texts`), the blend of scores
            along the tree, and a flat or top-down search (see
            :class:`~zsl.programs.irr.InferRetrieveRank`); None: the measured defaults. A flat
            vocabulary ignores them.
        tree_output: ``"path"``, ``"leaf"`` or ``"flat"``: what :meth:`predict` returns for a vocabulary
            with a hierarchy (:func:`zsl.hierarchy.tree_columns`: ``path`` closes each predicted set
            upward); None: :data:`zsl.hierarchy.DEFAULT_TREE_OUTPUT`.
        catch_all: labels that mean "none of the others" (None: the vocabulary's own
            ``catch_all`` labels, see :class:`~zsl.vocab.LabelVocab`). Their score is derived
            from the best other score (:class:`~zsl.scoring.CatchAll`): the pivot is fitted by
            :meth:`fit` on the examples, or zero-shot by :meth:`fit_catch_all` on unlabelled items;
            until then their scores are the program's own.
        catch_all_mix: allow a catch-all in the same set as a real label.

    Attributes:
        program_: the fitted (or zero-shot) ``InferRetrieveRank`` program.
        index_: the :class:`~zsl.index.VocabIndex`.
        evidence_: the fitted :class:`~zsl.student.heads.AnchoredHead` or
            :class:`~zsl.student.heads.ExampleEvidence` (None before :meth:`fit`).
        examples_: the examples kept for dynamic demos (texts cut to ``demo_chars``, labels,
            embeddings), when an LLM step runs and ``n_demos > 0``; else None.
        thresholds_: the per-label thresholds :meth:`predict` uses after :meth:`fit`
            (a :class:`~zsl.scoring.PerLabelThreshold`), None before.
        fusion_: the fusion-weight fit of the last :meth:`fit` (None: not refitted).
        catch_all_: the fitted :class:`~zsl.scoring.CatchAll` (None: no catch-all, or not fitted yet).
        calibrator_: after :meth:`fit`, the :class:`~zsl.scoring.PlattCalibrator` that makes
            :meth:`predict_proba` probabilities (fitted on the examples' out-of-fold scores).
    """

    def __init__(self, vocab: LabelVocab | Sequence[str], *, lm: Any = None, infer_lm: Any = None, rank_lm: Any = None,
                 encoder: Any = None, label_kind: str = "labels", infer: bool = True, rank: bool = True,
                 rank_top: int = DEFAULT_RANK_TOP, text_weight: float = DEFAULT_TEXT_WEIGHT,
                 prior_weight: float = DEFAULT_PRIOR_WEIGHT, rank_weight: float = DEFAULT_RANK_WEIGHT,
                 max_phrases: int = 8, use_descriptions: bool | None = None, rank_descriptions: str = "auto",
                 evidence: str | None = "head", n_demos: int = 2, demo_chars: int = 200, random_state: int = 0,
                 label_context: str | None = None, tree_blend: Sequence[float] | None = None,
                 tree_search: str = "flat", beam: int = DEFAULT_BEAM, tree_output: str | None = None,
                 catch_all: Sequence[str] | None = None, catch_all_mix: bool = False):
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
        self.rank_descriptions = rank_descriptions
        self.evidence = evidence
        self.n_demos = n_demos
        self.demo_chars = demo_chars
        self.random_state = random_state
        self.label_context = label_context
        self.tree_blend = tree_blend
        self.tree_search = tree_search
        self.beam = beam
        self.tree_output = tree_output
        check_tree_settings(tree_output=tree_output, tree_search=tree_search, label_context=label_context,
                            tree_blend=tree_blend, beam=beam)
        self.catch_all = catch_all
        self.catch_all_mix = catch_all_mix
        self.catch_all_ = None
        self.calibrator_ = None
        self._program = None
        self.examples_ = None
        self.evidence_ = None
        self.thresholds_ = None
        self.fusion_ = None

    # -- building -----------------------------------------------------------------------
    def _resolve_lm(self, lm: Any) -> Any:
        if lm is None or isinstance(lm, (str, os.PathLike)):
            from zsl.models.lm import get_lm

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
        from zsl.index import VocabIndex
        from zsl.models.encoders import get_encoder
        from zsl.programs.irr import InferRetrieveRank

        index = VocabIndex(self.vocab, get_encoder(self.encoder), use_descriptions=self.use_descriptions,
                           show_progress=len(self.vocab) > 2000, label_context=self.label_context)
        program = InferRetrieveRank(index, label_kind=self.label_kind, infer=self.infer, rank=self.rank,
                                    rank_top=self.rank_top, text_weight=self.text_weight,
                                    prior_weight=self.prior_weight, rank_weight=self.rank_weight,
                                    max_phrases=self.max_phrases, rank_descriptions=self.rank_descriptions,
                                    tree_blend=self.tree_blend, tree_search=self.tree_search, beam=self.beam)
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
        from zsl.util.progress import progress

        if not self.uses_lm:
            starts = range(0, len(items), max(1, int(batch_size)))
            for start in progress(starts, desc="tagging", disable=not show_progress, unit="batch"):
                out[start:start + batch_size] = self.score_embedded(program.index.encoder.encode(
                    items[start:start + batch_size]))
            return out
        emb = None
        if self.evidence_ is not None or self.examples_ is not None:
            emb = np.concatenate([program.index.encoder.encode(items[start:start + batch_size])
                                  for start in range(0, len(items), max(1, int(batch_size)))])
        for i, text in enumerate(progress(items, desc="tagging", disable=not show_progress)):
            demos = self._demos(emb[i], text) if emb is not None else None
            out[i] = (program(text=text, demos=demos) if demos else program(text=text)).scores
        return self._with_evidence(out, emb)

    def _demos(self, emb: np.ndarray, text: str, skip: int | None = None) -> list | None:
        """The ``n_demos`` stored examples nearest to an item (never the item itself), or None."""
        ex = self.examples_
        if ex is None or self.n_demos <= 0:
            return None
        from zsl.programs.irr import Demo

        sim = ex["emb"] @ np.asarray(emb, dtype=np.float32)
        key = _sha(text)  # an example is never its own demo, whatever its position
        out = []
        for j in np.argsort(-sim, kind="stable"):
            if j == skip or ex["sha256"][j] == key:
                continue
            out.append(Demo(ex["texts"][j], tuple(ex["labels"][j])))
            if len(out) >= self.n_demos:
                break
        return out or None

    def score_embedded(self, emb: np.ndarray) -> np.ndarray:
        """Scores ``(N, K)`` of texts already encoded (``(N, d)``, with this tagger's encoder), as
        :meth:`score` gives without an LLM step: for callers that keep embeddings around.

        Raises:
            InputError: the tagger runs an LLM step (it needs the texts themselves).
        """
        if self.uses_lm:
            raise InputError("score_embedded needs a tagger without LLM steps (infer=False, rank=False); with "
                             "them, use score(texts).")
        emb = np.asarray(emb, dtype=np.float32)
        return self._with_evidence(self.program_.retrieve_embedded(emb), emb)

    def _with_evidence(self, scores: np.ndarray, emb: np.ndarray | None) -> np.ndarray:
        """Zero-shot scores plus the fitted examples' evidence (unchanged before :meth:`fit`), then the
        catch-all labels' derived scores."""
        if self.evidence_ is not None:
            scores = self.evidence_.fuse(scores, emb).astype(np.float32)
        return self.catch_all_scores(scores)

    # -- catch-all labels ---------------------------------------------------------------
    def catch_all_columns(self) -> np.ndarray:
        """The catch-all labels' columns: ``catch_all`` if given, else the vocabulary's own."""
        names = self.vocab.catch_all if self.catch_all is None else self.catch_all
        return np.array([self.vocab.index(name) for name in names], dtype=np.int64)

    def fit_catch_all(self, scores: np.ndarray, y: np.ndarray | None = None) -> Tagger:
        """Fit the catch-all pivot on ``(N, K)`` scores of unlabelled items (zero-shot: a quantile of the
        best other score) or of labelled ones (``y``: the catch-all's F1-best cut); see
        :class:`~zsl.scoring.CatchAll`. Without catch-all labels this leaves ``catch_all_`` None."""
        from zsl.scoring import CatchAll

        cols = self.catch_all_columns()
        self.catch_all_ = CatchAll(cols, mix=self.catch_all_mix).fit(scores, y) if cols.size else None
        return self

    def catch_all_scores(self, scores: np.ndarray) -> np.ndarray:
        """``(N, K)`` scores with the catch-all labels' scores derived (:class:`~zsl.scoring.CatchAll`; unchanged
        without a fitted one)."""
        if self.catch_all_ is None:
            return scores
        return self.catch_all_.transform(scores).astype(np.float32)

    def predict(self, texts: Sequence[str], k: int | None = None) -> np.ndarray:
        """``(N, K)`` uint8 label sets (:meth:`sets` of :meth:`score`).

        After :meth:`fit`, each label's threshold was calibrated on the examples
        (cross-validated; every item keeps at least one label when every example had one) and
        chooses within the item's ``gap`` set (:meth:`fitted_rule`); pass ``k`` to get the ``k``
        best labels instead. Before :meth:`fit`: the 5 best (or ``k``).
        """
        _check_k(k)  # before the scoring, which may be an LLM pass
        return self.sets(self.score(texts), k)

    def sets(self, scores: np.ndarray, k: int | None = None) -> np.ndarray:
        """The ``(N, K)`` uint8 label sets :meth:`predict` gives for items with these scores (from
        :meth:`score` or :meth:`score_from`): the fitted rule after :meth:`fit`, else the ``k``
        (default 5) best; a catch-all never beside a real label; closed along a tree as
        ``tree_output`` says."""
        from zsl.scoring import check_scores

        _check_k(k)
        scores = check_scores(scores, n_labels=len(self.vocab)).astype(np.float32)
        rule = self.fitted_rule()
        chosen = (rule.choose(scores).astype(np.uint8) if k is None and rule is not None
                  else top_k_sets(scores, 5 if k is None else k))
        return self._tree_sets(scores, self._exclusive(chosen, scores))

    def fitted_rule(self) -> SetRule | None:
        """The label-set rule :meth:`fit` leaves (None before): each label's threshold, within the item's
        ``gap`` set of :data:`~zsl.scoring.FITTED_GAP_K` labels; ``zsl label`` with this program uses it."""
        from zsl.scoring import FITTED_GAP_K, SetRule

        fitted = self.thresholds_
        if fitted is None:
            return None
        return SetRule("fitted", thresholds=tuple(float(v) for v in fitted.thresholds_), k=FITTED_GAP_K,
                       min_labels=int(fitted.min_labels), max_labels=fitted.max_labels)

    def _tree_sets(self, scores: np.ndarray, sets: np.ndarray) -> np.ndarray:
        """Label sets in the tree output mode (a flat vocabulary's sets unchanged)."""
        if self.vocab.parents is None:
            return sets
        mode = self.tree_output or DEFAULT_TREE_OUTPUT
        tree = Tree.of(self.vocab)
        out = np.zeros_like(sets)
        for n, row in enumerate(sets):
            chosen = np.flatnonzero(row)
            chosen = chosen[np.argsort(-scores[n, chosen], kind="stable")]
            out[n, tree_columns(self.vocab, scores[n], chosen, mode, tree=tree)] = 1
        return out

    def _exclusive(self, sets: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Sets without a catch-all beside a real label (unless ``catch_all_mix``)."""
        return sets if self.catch_all_ is None else self.catch_all_.exclusive(sets, scores)

    def explain(self, text: str) -> ItemScores:
        """Score one text with the whole program, keeping what a labelled row shows besides its scores.

        Returns:
            :class:`~zsl.base.ItemScores`: the ``(K,)`` scores, the fields ``phrases`` (with
            Infer), ``retrieval_labels`` (with Rank: the scores before it, as a
            :class:`~zsl.base.Ranked` vector) and ``notes`` (fallbacks taken, if any), and the LM
            usage per step.
        """
        program = self.program_
        emb = None
        if self.evidence_ is not None or self.examples_ is not None:
            emb = program.index.encoder.encode([text])
        demos = self._demos(emb[0], text) if emb is not None else None
        pred = program(text=text, demos=demos) if demos else program(text=text)
        # as score() gives them: the examples' evidence (after fit), then the catch-all labels' derived scores
        scores = self._with_evidence(np.asarray(pred.scores, dtype=np.float32)[None, :], emb)[0]
        fields: dict[str, Any] = {}
        if program.use_infer:
            fields["phrases"] = list(pred.phrases)
        if program.use_rank:
            fields["retrieval_labels"] = Ranked(pred.retrieval_scores)
        if pred.notes:
            fields["notes"] = list(pred.notes)
        return ItemScores(scores, fields, dict(pred.get("usage") or {}))

    def setup_notes(self) -> list[str]:
        """What to say once, before labelling, about how the vocabulary is used (e.g. descriptions that are cut)."""
        return self.program_.setup_notes()

    def limit_remote_calls(self, timeout: float | None) -> float | None:
        """Bound every LM call in time and leave retries to the caller (:func:`zsl.util.retry.retry_call`).

        Each step's LM is replaced by a copy with the time limit (``timeout``, else the LM's own,
        else :data:`zsl.models.lm.REMOTE_TIMEOUT`) and no retries of DSPy's own (they would multiply the
        caller's); the LM objects passed in are left alone.

        Returns:
            the time limit in seconds (``timeout`` itself when the LM's own is an ``httpx.Timeout``).
        """
        from zsl.models.lm import REMOTE_TIMEOUT

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
        """Check, with one short call, that the LM answers (see :func:`zsl.models.lm.check_lm`).

        Raises:
            RemoteModelError: it does not.
        """
        from zsl.models.lm import check_lm

        check_lm(self.program_.infer.predict.lm, name, attempt=attempt)

    def decision_function(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Raw scores ``(N, K)`` in vocabulary order: :meth:`score` (scikit-learn's name)."""
        return self.score(texts, show_progress=show_progress)

    def predict_proba(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """``(N, K)`` in vocabulary order, in [0, 1]. After :meth:`fit`: probabilities, one increasing curve of the
        score calibrated on the examples' out-of-fold scores (:class:`~zsl.scoring.PlattCalibrator`, so they rank
        labels exactly as the scores do). Zero-shot: the scores clipped to [0, 1], similarities rather than
        probabilities."""
        return self.proba_from_scores(self.score(texts, show_progress=show_progress))

    def proba_from_scores(self, scores: np.ndarray) -> np.ndarray:
        """:meth:`predict_proba` of scores already computed (``(N, K)``, this tagger's :meth:`score`)."""
        if self.calibrator_ is not None:
            return self.calibrator_.predict_proba(scores)
        return np.clip(scores, 0.0, 1.0)

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
            "examples": self._examples_config(),
            # only with a catch-all: runs labelled before catch-alls existed keep the manifest they had
            **({"catch_all": self.catch_all_.describe(self.vocab)} if self.catch_all_ is not None else {}),
        }

    def _examples_config(self) -> dict[str, Any] | None:
        """What :meth:`fit` learnt from examples (None: zero-shot)."""
        if self.evidence_ is None and self.thresholds_ is None and self.examples_ is None:
            return None
        ev = self.evidence_
        fitted = None
        if ev is not None:
            fitted = {"method": ev.method, **({"lam": ev.lam_} if ev.method == "head" else
                                              {"alpha": ev.alpha_, "kappa": ev.kappa_})}
        return {"n_examples": None if ev is None else ev.n_examples_,
                "labels_with_examples": None if ev is None else int((ev.counts_ > 0).sum()),
                "evidence": fitted,
                "thresholds": None if self.thresholds_ is None else "per_label",
                "demos": 0 if self.examples_ is None else self.n_demos}

    # -- learning from examples ---------------------------------------------------------
    def fit(self, examples: Iterable[Any], *, optimizer: str = "none", metric_k: int = 10,
            max_demos: int = 3, num_candidates: int = 4, valset: Iterable[Any] | None = None,
            fusion: bool = True, unknown_labels: str = "error", show_progress: bool = False) -> Tagger:
        """Learn from a few labelled examples per label.

        Five things happen, each optional:

        1. ``optimizer``: a DSPy optimiser tunes the LLM steps' prompts/demonstrations
           (off by default: on the embedded 1.5B model bootstrapped demos did not help on
           average, and they cost an LLM pass over the examples).
        2. ``fusion``: the weights that combine text similarity, phrase similarity, prior and
           Rank are refitted by RP@``metric_k`` (:func:`zsl.fusion.fit_fusion`; the current
           weights stay unless another setting is clearly better).
        3. The examples' embeddings become evidence for their labels (``evidence`` in the
           constructor; by default :class:`zsl.student.heads.AnchoredHead`, a logistic head anchored on
           the zero-shot score): its weight grows with a label's number of examples and is chosen
           by cross-validation on the examples; labels with no example keep their zero-shot ranking.
        4. Per-label thresholds are calibrated on the examples' out-of-fold scores, so
           :meth:`predict` returns label sets instead of a fixed top-k.
        5. With an LLM step and ``n_demos > 0``, the examples are kept: Infer and Rank see the
           ``n_demos`` nearest to each item as worked examples (``examples_``).

        With an LLM step, each example runs through the program once (Infer and Rank, with the
        other examples nearest to it as demos); steps 2-4 share that pass.

        Args:
            examples: ``(text, labels)`` pairs or ``{"text", "labels"}`` mappings. An example may
                have several labels; duplicates (same text) are merged.
            optimizer: ``"none"`` (default), ``"bootstrap"`` (BootstrapFewShot),
                ``"random_search"`` (as the paper) or ``"mipro"`` (MIPROv2, light).
            metric_k: the optimisers' and the fusion fit's metric is RP@``metric_k``.
            max_demos: demonstrations per predictor (DSPy optimisers).
            num_candidates: candidate programs for random search.
            valset: separate examples for random search / MIPRO and the fusion fit (default: ``examples``).
            fusion: refit the fusion weights.
            unknown_labels: ``"error"`` (default): an example label outside the vocabulary is an
                error listing them; ``"skip"``: such labels are dropped (an example left with no
                label is dropped too) and counted in ``fit_notes_``.
            show_progress: a progress bar over the examples when an LLM step runs.

        Returns:
            self, with ``evidence_``, ``thresholds_``, ``fusion_`` and ``fit_notes_`` set.
        """
        pairs, notes = clean_examples(self.vocab, examples, unknown_labels)
        val_pairs = clean_examples(self.vocab, valset, unknown_labels)[0] if valset is not None else None
        if optimizer != "none":
            self._optimise(pairs, val_pairs, optimizer, metric_k, max_demos, num_candidates)
        from zsl.fusion import fused_scores

        program = self.program_
        texts = [t for t, _ in pairs]
        emb = program.index.encoder.encode(texts)
        self._keep_examples(texts, pairs, emb)
        items = self._components(texts, emb=emb, own=True, show_progress=show_progress)
        self.fusion_ = None
        if fusion:
            self.fusion_ = self._refit_fusion(items, pairs, val_pairs, metric_k, show_progress)
        weights = {"text_weight": program.text_weight, "prior_weight": program.prior_weight,
                   "rank_weight": program.rank_weight, "rank_top": program.rank_top}
        prior = self.vocab.prior_array()
        # the zero-shot scores the evidence is anchored on, as score() gives them (consistent along a tree)
        zero = program.consistent(np.stack([fused_scores(it, prior, weights) for it in items]).astype(np.float32))
        self._fit_evidence_and_thresholds(emb, self.vocab.to_multi_hot([labels for _, labels in pairs]), zero)
        self.fit_notes_ = notes
        return self

    def fit_scored(self, examples: Iterable[Any], scores: np.ndarray, *, unknown_labels: str = "error") -> Tagger:
        """Learn from labelled examples whose zero-shot scores you already have, without calling the LLM:
        e.g. a finished ``zsl label`` run over them with ``--top-scores`` the vocabulary's size.

        What :meth:`fit` learns after its LLM pass, from these scores: the examples' evidence, the
        catch-all pivot, the per-label thresholds and the calibration (no fusion weights, no
        optimiser). No demos are kept, so :meth:`score` asks the LLM as these scores were asked;
        score items you have run scores for with :meth:`score_from`, without a call.

        Args:
            examples: as for :meth:`fit`, one per row of ``scores``.
            scores: ``(len(examples), K)`` zero-shot scores over this vocabulary, in example order.
            unknown_labels: as for :meth:`fit`.

        Example:
            >>> from zsl.models.encoders import HashingEncoder
            >>> tagger = Tagger(["sports", "weather"], encoder=HashingEncoder(64), infer=False, rank=False)
            >>> ex = [("a cup final", ["sports"]), ("rain all day", ["weather"])]
            >>> tagger.fit_scored(ex, np.array([[0.6, 0.2], [0.3, 0.5]])).sets(np.array([[0.7, 0.1]])).tolist()
            [[1, 0]]
        """
        from zsl.scoring import check_scores

        raw = as_examples(examples)
        scores = np.asarray(scores, dtype=np.float32)
        if scores.ndim != 2 or scores.shape != (len(raw), len(self.vocab)):
            raise InputError(f"scores must hold one row per example over the {len(self.vocab)} labels: expected shape "
                             f"[{len(raw)}, {len(self.vocab)}], got {list(scores.shape)}. Fix: read them from a run "
                             f"labelled with --top-scores {len(self.vocab)}, in the examples' order.")
        check_scores(scores, n_labels=len(self.vocab))  # NaN or infinity: every fitted threshold would be meaningless
        first: dict[str, int] = {}
        for i, (text, _) in enumerate(raw):
            first.setdefault(text, i)  # a repeated text is one example (its labels united), scored once
        pairs, notes = clean_examples(self.vocab, raw, unknown_labels)
        texts = [text for text, _ in pairs]
        emb = self.program_.index.encoder.encode(texts)
        self.examples_ = None
        self._fit_evidence_and_thresholds(emb, self.vocab.to_multi_hot([labels for _, labels in pairs]),
                                          scores[[first[text] for text in texts]])
        self.fit_notes_ = notes
        return self

    def score_from(self, scores: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """What :meth:`score` gives for ``texts`` whose zero-shot scores (``(N, K)``, e.g. a finished run's)
        are known: the fitted examples' evidence and the catch-all labels' derived scores applied,
        without calling the LLM. Before any fit: the scores with the catch-all derived."""
        from zsl.scoring import check_scores

        scores = np.asarray(scores, dtype=np.float32)
        items = self._check_texts(texts)
        if scores.ndim != 2 or scores.shape != (len(items), len(self.vocab)):
            raise InputError(f"scores must hold one row per text over the {len(self.vocab)} labels: expected shape "
                             f"[{len(items)}, {len(self.vocab)}], got {list(scores.shape)}")
        check_scores(scores, n_labels=len(self.vocab))
        emb = self.program_.index.encoder.encode(items) if self.evidence_ is not None else None
        return self._with_evidence(scores, emb)

    def _keep_examples(self, texts: list[str], pairs: list[tuple[str, list[str]]], emb: np.ndarray) -> None:
        """Set ``examples_``: the examples the LLM steps see as demos (``None`` without an LLM step or demos)."""
        self.examples_ = None
        if self.uses_lm and self.n_demos > 0:
            from zsl.student.heads import unit_rows

            self.examples_ = {"texts": [t[: self.demo_chars] for t in texts], "sha256": [_sha(t) for t in texts],
                              "labels": [list(ls) for _, ls in pairs], "emb": unit_rows(emb)}

    def _refit_fusion(self, items: list, pairs: list[tuple[str, list[str]]],
                      val_pairs: list[tuple[str, list[str]]] | None, metric_k: int, show_progress: bool) -> Any:
        """Refit the fusion weights on the examples' components, or on ``val_pairs``' when given."""
        if val_pairs is None:
            return self._fit_fusion(items, pairs, metric_k)
        val_texts = [t for t, _ in val_pairs]
        val_items = self._components(val_texts, emb=self.program_.index.encoder.encode(val_texts),
                                     show_progress=show_progress)
        return self._fit_fusion(val_items, val_pairs, metric_k)

    def _fit_evidence_and_thresholds(self, emb: np.ndarray, y: np.ndarray, zero: np.ndarray) -> None:
        """Set ``evidence_`` (the examples' embeddings as evidence over the zero-shot scores ``zero``) and
        ``thresholds_`` (per label, calibrated on the out-of-fold scores when there are any)."""
        scores = zero
        self.evidence_ = None
        if self.evidence is not None:
            from zsl.student.heads import make_evidence

            ev = make_evidence(self.evidence, self.random_state).fit(emb, y, zero)
            self.evidence_ = ev
            scores = ev.oof_scores_ if ev.oof_scores_ is not None else ev.fuse(zero, emb)
        from zsl.student.heads import fit_thresholds

        self.catch_all_ = None  # the evidence and thresholds see the program's own catch-all scores ...
        self.fit_catch_all(scores, y)  # ... then the pivot is fitted on the out-of-fold scores, and the
        scores = self.catch_all_scores(scores)  # thresholds on the derived ones, as predict() will see them
        self.thresholds_ = fit_thresholds(scores, y)
        self.calibrator_ = None
        if 0 < y.sum() < y.size:  # probabilities: one Platt curve on the out-of-fold scores, pooled over labels
            from zsl.scoring import PlattCalibrator

            self.calibrator_ = PlattCalibrator().fit(scores, y)

    def _components(self, texts: list[str], *, emb: np.ndarray, own: bool = False, show_progress: bool = False) -> list:
        """What the program computes for each text (:class:`zsl.fusion.FusionItem` without gold): one LLM
        pass per text with an LLM step (each example sees the other examples nearest to it as demos,
        as an unseen item would: ``own`` says ``texts`` are the stored examples, in order), the batched
        similarities of ``emb`` without."""
        from zsl.fusion import GRID, FusionItem
        from zsl.util.progress import progress

        program = self.program_
        if not self.uses_lm:
            sim = program.index.similarities(emb)
            empty = np.zeros(0, dtype=np.int64)
            return [FusionItem(text_sim=row, phrase_sim=None, cand=empty, p_yes=np.zeros(0), gold=[]) for row in sim]
        deepest = max(max(GRID["rank_top"]), program.rank_top)
        return [FusionItem(gold=[], **program.fusion_components(text, rank_top=deepest,
                                                                demos=self._demos(emb[i], text, skip=i if own else None)))
                for i, text in enumerate(progress(texts, desc="examples", disable=not show_progress))]

    def _optimise(self, pairs: list, val_pairs: list | None, optimizer: str, metric_k: int, max_demos: int,
                  num_candidates: int) -> None:
        import dspy

        train = [dspy.Example(text=t, gold=list(ls)).with_inputs("text") for t, ls in pairs]
        val = [dspy.Example(text=t, gold=list(ls)).with_inputs("text") for t, ls in val_pairs] if val_pairs else train

        def metric(example, pred, trace=None):
            gold = set(example.gold)
            if not gold:
                return 0.0
            hits = len(gold.intersection(pred.ranking[:metric_k]))
            score = hits / min(metric_k, len(gold))
            return score >= 0.5 if trace is not None else score

        program = self.program_
        if optimizer == "bootstrap":
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
            raise InputError(f"optimizer must be 'none', 'bootstrap', 'random_search' or 'mipro', got {optimizer!r}")
        self._program = compiled

    def _fit_fusion(self, items: list, pairs: list[tuple[str, list[str]]], k: int) -> Any:
        from dataclasses import replace

        from zsl.fusion import fit_fusion

        program = self.program_
        gold_items = [replace(it, gold=[self.vocab.index(lab) for lab in labels]) for it, (_, labels) in zip(items, pairs)]
        defaults = {"text_weight": program.text_weight, "prior_weight": program.prior_weight,
                    "rank_weight": program.rank_weight, "rank_top": program.rank_top}
        fit = fit_fusion(gold_items, self.vocab.prior_array(), k=k, defaults=defaults)
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
        from zsl.student.heads import encode_array, thresholds_to_dict

        payload = {"zsl_tagger": 1, "vocab_hash": self.vocab.hash, "encoder": self.program_.index.encoder.model_id,
                   "settings": self.program_.config(),
                   "program": state,
                   "evidence": None if self.evidence_ is None else self.evidence_.to_dict(),
                   "examples": None if self.examples_ is None else {
                       "texts": self.examples_["texts"], "full_sha256": self.examples_["sha256"],
                       "labels": self.examples_["labels"], "emb": encode_array(self.examples_["emb"])},
                   "thresholds": None if self.thresholds_ is None else thresholds_to_dict(self.thresholds_),
                   "catch_all": None if self.catch_all_ is None else self.catch_all_.describe(self.vocab),
                   "calibrator": None if self.calibrator_ is None else self.calibrator_.to_dict()}
        # owner-only (0600), like a run: the program keeps the example texts
        return write_text_atomic(p, json.dumps(payload, indent=1, ensure_ascii=False, default=str), private=True)

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
            weights = [program.text_weight, program.prior_weight, program.rank_weight]
            if not np.isfinite(weights).all():
                raise InputError(f"The fusion weights in {p} hold NaN or infinity ({weights}): every score would be "
                                 f"NaN. {fix}")
        self._load_examples_state(data, p, fix)
        return self

    def _load_catch_all_and_calibrator(self, data: dict[str, Any], p: Path, fix: str) -> None:
        """The catch-all pivot and the calibrator saved by :meth:`save` (absent in older files: none)."""
        from zsl.scoring import CatchAll, PlattCalibrator

        ca, cal = data.get("catch_all"), data.get("calibrator")
        try:
            self.calibrator_ = PlattCalibrator.from_dict(cal) if isinstance(cal, dict) else None
            self.catch_all_ = None
            if isinstance(ca, dict):
                self.catch_all = list(ca["labels"])
                self.catch_all_mix = bool(ca.get("mix", False))
                self.catch_all_ = CatchAll.from_record(ca, self.catch_all_columns(), len(self.vocab),
                                                       mix=self.catch_all_mix)
        except (KeyError, TypeError, ValueError, VocabularyError) as exc:
            raise InputError(f"{p}: the saved catch-all is not usable ({type(exc).__name__}: {exc}). {fix}") from None
        except InputError as exc:
            raise InputError(f"{p}: {exc} {fix}") from None

    def _load_examples_state(self, data: dict[str, Any], p: Path, fix: str) -> None:
        """The example evidence and thresholds saved by :meth:`save` (absent in older files: zero-shot)."""
        from zsl.student.heads import decode_array, evidence_from_dict, thresholds_from_dict

        ev, thr, ex = data.get("evidence"), data.get("thresholds"), data.get("examples")
        if (ev is not None or thr is not None or ex is not None) and data.get("vocab_hash") != self.vocab.hash:
            raise InputError(f"{p} was fitted on another vocabulary (hash {str(data.get('vocab_hash'))[:12]}, this "
                             f"one {self.vocab.hash[:12]}); its examples and thresholds are per label. {fix}")
        try:
            self.evidence_ = evidence_from_dict(ev) if isinstance(ev, dict) else None
            self.thresholds_ = thresholds_from_dict(thr) if isinstance(thr, dict) else None
            self.examples_ = None
            if isinstance(ex, dict):
                self.examples_ = {"texts": list(ex["texts"]), "labels": [list(x) for x in ex["labels"]],
                                  "emb": decode_array(ex["emb"]), "sha256": list(ex["full_sha256"])}
        except (KeyError, TypeError) as exc:
            raise InputError(f"{p}: the saved examples are incomplete ({type(exc).__name__}: {exc}). {fix}") from None
        except InputError as exc:
            raise InputError(f"{p}: {exc} {fix}") from None
        self._load_catch_all_and_calibrator(data, p, fix)
        saved_encoder, encoder = data.get("encoder"), self.program_.index.encoder.model_id
        if (self.evidence_ is not None or self.examples_ is not None) and saved_encoder not in (None, encoder):
            import warnings

            # a warning, not an error: a model folder that was copied or moved has a new id but the same weights
            warnings.warn(f"{p} was fitted with the encoder {saved_encoder}; this tagger uses {encoder}. Its "
                          "examples' evidence lives in the first one's embedding space: unless both are the same "
                          "weights, pass that encoder (encoder=..., --encoder ...).", UserWarning, stacklevel=3)
        if self.evidence_ is not None and len(self.evidence_.counts_) != len(self.vocab):
            raise InputError(f"{p} holds examples over {len(self.evidence_.counts_)} labels; this vocabulary "
                             f"has {len(self.vocab)}. {fix}")
        if self.thresholds_ is not None and len(self.thresholds_.thresholds_) != len(self.vocab):
            raise InputError(f"{p} holds thresholds for {len(self.thresholds_.thresholds_)} labels; this vocabulary "
                             f"has {len(self.vocab)}. {fix}")
        if self.examples_ is not None and not np.isfinite(self.examples_["emb"]).all():
            raise InputError(f"{p}: the saved examples' embeddings hold NaN or infinity. {fix}")
