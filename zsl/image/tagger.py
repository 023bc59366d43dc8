"""Zero-shot image labelling: :class:`ImageTagger`, CDUL global-local scores over an image-text backend.

The maths live in :mod:`zsl.image.global_local` (global and snippet probabilities, CDUL's local and
global-local aggregation, grid crops) and image files are read by :mod:`zsl.data.images`;
import them from there.

Label texts come from prompt templates (an ensemble averages them) and, optionally, from
short visual descriptions written by an LLM ("Visual Classification via Description from
Large Language Models", Menon & Vondrick, 2023): a label's similarity is the mean of its
texts' similarities.

:class:`ImageTagger` puts this together over any backend of :mod:`zsl.image.backends`;
``zsl label FOLDER`` (:func:`zsl.runs.label.label_run`) labels a folder (or an image file, or a JSONL
file of image paths) into a run directory, reporting unreadable images instead of stopping.

Example:
    >>> import numpy as np
    >>> from zsl.image.global_local import aggregate, local_scores
    >>> g = np.array([[0.6, 0.3, 0.1]])                  # whole image, 3 labels
    >>> snippets = np.array([[[0.9, 0.05, 0.05],         # 2 snippets
    ...                       [0.2, 0.1, 0.7]]])
    >>> aggregate(g, local_scores(snippets), lam=1.0).round(2).tolist()
    [[0.9, 0.3, 0.7]]
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from zsl.base import BatchScores, ItemScores, ScorerMixin
from zsl.data.files import write_text_atomic
from zsl.data.images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE, SkippedImage, load_image, load_images, to_rgb
from zsl.errors import InputError
from zsl.fusion import DEFAULT_RANK_TOP
from zsl.image.global_local import class_probabilities, global_local_scores, grid_boxes, make_crops
from zsl.image.vlm import DEFAULT_VLM_MAX_SIDE, build_photo_irr, check_vlm, encode_photo, read_photo
from zsl.vocab import LabelVocab

__all__ = [
    "ImageScores",
    "ImageTagger",
    "ImageTextBackend",
    "describe_labels",
    "label_texts",
    "parse_descriptions",
]


# --------------------------------------------------------------------------- protocols


@runtime_checkable
class ImageTextBackend(Protocol):
    """What :class:`ImageTagger` needs from a model: images and texts in one space.

    Attributes:
        model_id: changes whenever the outputs would; recorded in provenance.
        logit_scale: multiplies cosine similarities before the softmax over labels.
    """

    model_id: str
    logit_scale: float

    def encode_images(self, images: Sequence[Any], *, size: int | None = None) -> np.ndarray:
        """``(M, D)`` unit-length embeddings of RGB PIL images, in one batched pass."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``(T, D)`` unit-length embeddings of label texts."""
        ...


# --------------------------------------------------------------------------- label texts


def _templates(spec: str | Sequence[str]) -> tuple[list[str], str, str]:
    """(templates, description template, id) from a prompt name or a list of templates."""
    from zsl.prompting import load_prompt

    if isinstance(spec, str):
        prompt = load_prompt(spec)
        templates = list(prompt.data.get("templates") or [])
        if not templates:
            raise InputError(f"Prompt {prompt.id} has no 'templates' list.")
        desc = prompt.data.get("description_template") or "{label}: {description}"
        return templates, desc, prompt.id
    templates = list(spec)
    if not templates or not all(isinstance(t, str) and "{label}" in t for t in templates):
        raise InputError("templates must be a prompt name or a list of strings that each contain '{label}', "
                         "e.g. ['a photo of a {label}.']")
    digest = hashlib.sha256("\n".join(templates).encode()).hexdigest()[:8]
    return templates, "{label}: {description}", f"custom:{digest}"


def label_texts(vocab: LabelVocab, templates: Sequence[str] = ("a photo of a {label}.",), *,
                descriptions: Mapping[str, Sequence[str]] | None = None,
                description_template: str = "{label}: {description}") -> tuple[list[str], np.ndarray]:
    """The texts that stand for each label, and which label each text belongs to.

    Every label gets one text per template. A label with descriptions gets, instead, one
    text per (template, description) pair, the template filled with
    ``description_template`` (``"giraffe: long neck"``), so its score becomes
    the mean over its descriptions.

    Args:
        vocab: the labels, in column order.
        templates: strings with ``{label}``.
        descriptions: label -> short visual descriptions (labels missing here use the plain
            templates).
        description_template: how a label and one description are joined.

    Returns:
        ``(texts, groups)`` with ``groups[t]`` the column of ``texts[t]``.

    Example:
        >>> v = LabelVocab(["cat", "dog"])
        >>> texts, groups = label_texts(v, ["a photo of a {label}."], descriptions={"dog": ["floppy ears"]})
        >>> texts, groups.tolist()
        (['a photo of a cat.', 'a photo of a dog: floppy ears.'], [0, 1])
    """
    texts: list[str] = []
    groups: list[int] = []
    for j, label in enumerate(vocab.labels):
        label_text = label.replace("\n", " ").strip()
        descs = [d for d in (descriptions or {}).get(label, []) if d and d.strip()]
        fills = [description_template.format(label=label_text, description=d.strip().rstrip(".")) for d in descs] \
            or [label_text]
        for tmpl in templates:
            for fill in fills:
                texts.append(tmpl.format(label=fill))
                groups.append(j)
    return texts, np.asarray(groups, dtype=np.int64)


def _lm_id(lm: Any) -> str:
    return str(getattr(lm, "model", None) or type(lm).__name__)


_BULLET = re.compile(r"^\s*(?:[-*\u2022]+|\d+[.)]|\(\d+\))\s*")


def parse_descriptions(raw: str | Sequence[str] | None, n: int, *, label: str = "") -> list[str]:
    """Short, distinct descriptions from an LM answer (one per line; bullets dropped).

    Small LMs sometimes answer in prose; a line longer than 12 words is split into
    sentences and clauses, and pieces still longer than 12 words are dropped.

    Example:
        >>> parse_descriptions("- long neck\\n2. brown patches\\ngiraffe\\nLong neck", 4, label="giraffe")
        ['long neck', 'brown patches']
        >>> parse_descriptions("It has a very long neck that reaches high trees, and its coat has brown patches.", 4)
        ['It has a very long neck that reaches high trees', 'its coat has brown patches']
    """
    if raw is None:
        return []
    lines = list(raw) if isinstance(raw, (list, tuple)) else str(raw).splitlines()
    pieces: list[str] = []
    for line in lines:
        line = _BULLET.sub("", str(line)).strip().strip("\"'`").strip()
        if len(line.split()) > 12:
            for sentence in re.split(r"(?<=[.;!?])\s+", line):
                pieces.extend(re.split(r",\s*(?:and\s+|but\s+)?", sentence))
        else:
            pieces.append(line)
    out: list[str] = []
    seen = {label.casefold().strip()} if label else set()
    for piece in pieces:
        text = piece.strip().strip(" .;:").strip()
        key = text.casefold()
        if not text or key in seen or len(text.split()) > 12:
            continue
        seen.add(key)
        out.append(text)
    return out[:n]


def describe_labels(labels: Sequence[str], lm: Any = None, *, n: int = 4, prompt: str = "image_describe",
                    cache: bool = True, show_progress: bool = False) -> dict[str, list[str]]:
    """Ask an LM for a few short visual descriptions of each label.

    Descriptions are cached on disk per (label, LM id, prompt version, n) under
    ``$ZSL_HOME/descriptions``, so each label is described once per LM.

    Args:
        labels: label names.
        lm: a DSPy LM; ``None`` builds the default from :func:`zsl.models.lm.get_lm`.
        n: descriptions kept per label.
        prompt: the prompt file (``prompts/image_describe.json``).
        cache: read and write the disk cache.
        show_progress: a progress bar over labels.

    Returns:
        label -> up to ``n`` descriptions (possibly empty when the LM gave nothing usable).

    Example:
        >>> from tests.fakes import ScriptedLM        # doctest: +SKIP
        >>> describe_labels(["giraffe"], ScriptedLM([{"descriptions": "long neck\\nspotted coat"}]))  # doctest: +SKIP
        {'giraffe': ['long neck', 'spotted coat']}
    """
    import dspy

    from zsl.prompting import load_prompt
    from zsl.util.paths import subdir
    from zsl.util.progress import progress

    if lm is None:
        from zsl.models.lm import get_lm

        lm = get_lm()
    p = load_prompt(prompt)
    module = _describe_module()(n=n, prompt=prompt)
    folder = subdir("descriptions")
    out: dict[str, list[str]] = {}
    for label in progress(list(labels), desc="describing labels", disable=not show_progress, unit="label"):
        key = hashlib.sha256(json.dumps([label, _lm_id(lm), p.id, n]).encode()).hexdigest()
        path = folder / f"{key}.json"
        if cache and path.is_file():
            try:
                out[label] = list(json.loads(path.read_text(encoding="utf-8"))["descriptions"])
                continue
            except (OSError, ValueError, KeyError):
                pass  # a damaged cache file is a miss
        with dspy.context(lm=lm):
            raw = module(label=label).descriptions
        descs = parse_descriptions(raw, n, label=label)
        out[label] = descs
        if cache:
            write_text_atomic(path, json.dumps({"label": label, "lm": _lm_id(lm), "prompt": p.id, "n": n,
                                                "descriptions": descs}))
    return out


_DESCRIBE_CLS: list[type] = []


def _describe_module() -> type:
    if _DESCRIBE_CLS:
        return _DESCRIBE_CLS[0]
    import dspy

    class DescribeLabel(dspy.Module):
        """LM step that writes short visual descriptions of one label.

        Args:
            n: how many descriptions to ask for.
            prompt: the prompt file with instructions, inputs and outputs.
        """

        def __init__(self, n: int = 4, prompt: str = "image_describe"):
            super().__init__()
            from zsl.prompting import load_prompt

            p = load_prompt(prompt)
            self.prompt_id = p.id
            fields: dict[str, tuple[type, Any]] = {}
            for name, desc in p.fields("inputs", n=n).items():
                fields[name] = (str, dspy.InputField(desc=desc))
            for name, desc in p.fields("outputs", n=n).items():
                fields[name] = (str, dspy.OutputField(desc=desc))
            sig = dspy.make_signature(fields, p.text("instructions", n=n), signature_name="DescribeLabel")
            self.predict = dspy.Predict(sig)

        def forward(self, label: str) -> Any:
            return self.predict(label=label)

    _DESCRIBE_CLS.append(DescribeLabel)
    return DescribeLabel


def __getattr__(name: str) -> Any:
    # DescribeLabel subclasses dspy.Module, so it is built on first use: `import zsl.image.tagger` stays light.
    if name == "DescribeLabel":
        return _describe_module()
    raise AttributeError(f"module 'zsl.image.tagger' has no attribute '{name}'")


# --------------------------------------------------------------------------- the tagger


@dataclass
class ImageScores:
    """Scores of the images that could be read, and the ones that could not.

    Attributes:
        scores: ``(N, K)`` scores of the readable images, columns in vocabulary order.
        paths: the N readable inputs, in input order.
        skipped: the unreadable inputs with reasons.
    """

    scores: np.ndarray
    paths: list[str]
    skipped: list[SkippedImage] = field(default_factory=list)


class ImageTagger(ScorerMixin):
    """Zero-shot multi-label image scorer: a backend plus CDUL global-local aggregation.

    Parameters are only stored here; models load on first use. A :class:`zsl.base.Scorer`:
    ``predict_proba`` / ``score`` give the ``(N, K)`` scores, ``predict(images, k)`` the
    top-``k`` label sets as an ``(N, K)`` 0/1 matrix, ``top_k(images, k)`` the
    ``(label, score)`` pairs.

    Args:
        vocab: the labels (a :class:`LabelVocab` or a list of strings).
        backend: an image backend name (see :func:`zsl.image.backends.get_image_backend`;
            default ``"efficientnet-lite2"``, offline) or a backend object.
        mode: ``"global-local"`` (CDUL) or ``"global"`` (whole image only).
        snippets: how snippets are made. ``"crops"``: pixel crops, encoded together in one
            batched pass (CDUL as published; any backend). ``"features"``: regions of the
            backbone's last feature map, pooled from the whole-image pass (needs a backend
            with ``encode_regions``, such as the EfficientNet/ConSE one; nearly free and
            more accurate there). ``"auto"``: features when the backend has them.
        grids: snippet grid sizes; ``(3,)`` is CDUL's 3x3, ``(2, 3)`` multi-scale.
        overlap: snippets grow by this fraction of a cell on each side.
        threshold: ``alpha`` threshold of the local aggregation; ``None``: the backend's
            ``threshold`` (0.5 for CLIP as in CDUL, 0.1 for the flatter ConSE scores).
        lam: weight of ``|global - local|`` in the aggregation (1: maximum).
        snippet_size: input resolution of pixel crops (backends with a fixed input size
            ignore it); ``None``: the backend's training size.
        templates: a prompt name (``"image_templates"``: an ensemble) or a list of strings
            with ``{label}``.
        descriptions: ``None``; a mapping label -> descriptions; or ``"lm"`` to have the
            LM write them (:func:`describe_labels`, cached).
        lm: the LM for ``descriptions="lm"`` (default: :func:`zsl.models.lm.get_lm`).
        n_descriptions: descriptions per label when the LM writes them.
        logit_scale: override the backend's softmax temperature.
        batch_size: images whose crops go through the backend together.
        max_pixels, max_side: image-reading limits (see :func:`load_image`).
        infer, rank, rank_top: with a vision-language model as ``lm`` (a LiteLLM ``provider/model``
            name or LM; :func:`zsl.image.vlm.reads_images`), the VLM's Infer (phrases, retrieved onto
            the vocabulary with the text ``encoder``) and Rank (``rank_top`` candidates) steps, fused
            with the global-local scores (:class:`zsl.image.vlm.PhotoIRR`). An LM that reads no
            images only writes ``descriptions``.
        api_base: the server of a ``provider/model`` ``lm`` given by name.
        encoder: the text encoder of the retrieval (see :func:`zsl.models.encoders.get_encoder`).
        label_kind: how the VLM prompts name the labels (``"objects"``, ``"labels"`` ...).
        vlm_max_side: longest side of the photo sent to the VLM (re-encoded as JPEG).
        fusion: fusion weights (keys of :data:`zsl.fusion.DEFAULTS`; None: :data:`zsl.image.vlm.PHOTO_DEFAULTS`).
        timeout: seconds one VLM call may wait (default :data:`zsl.models.lm.REMOTE_TIMEOUT`).

    Example:
        >>> tagger = ImageTagger(["cat", "dog"], backend="efficientnet-lite0")   # doctest: +SKIP
        >>> tagger.predict_proba(["cat.jpg"]).shape                              # doctest: +SKIP
        (1, 2)
    """

    def __init__(self, vocab: LabelVocab | Sequence[str], backend: Any = None, *, mode: str = "global-local",
                 snippets: str = "auto", grids: Sequence[int] = (2, 3), overlap: float = 0.0,
                 threshold: float | None = None, lam: float = 1.0,
                 snippet_size: int | None = None, templates: str | Sequence[str] = "image_templates",
                 descriptions: Mapping[str, Sequence[str]] | str | None = None, lm: Any = None,
                 n_descriptions: int = 4, logit_scale: float | None = None, batch_size: int = 8,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int = DEFAULT_MAX_SIDE, infer: bool = True,
                 rank: bool = True, rank_top: int = DEFAULT_RANK_TOP, api_base: str | None = None, encoder: Any = None,
                 label_kind: str = "labels", vlm_max_side: int = DEFAULT_VLM_MAX_SIDE,
                 fusion: Mapping[str, float] | None = None, timeout: float | None = None):
        self.vocab = vocab if isinstance(vocab, LabelVocab) else LabelVocab(vocab)
        if mode not in ("global-local", "global"):
            raise InputError(f"mode must be 'global-local' or 'global', got {mode!r}")
        if snippets not in ("auto", "crops", "features"):
            raise InputError(f"snippets must be 'auto', 'crops' or 'features', got {snippets!r}")
        if isinstance(descriptions, str) and descriptions != "lm":
            raise InputError(f"descriptions must be None, a mapping label -> list of texts, or 'lm'; "
                             f"got {descriptions!r}")
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.backend = backend
        self.mode = mode
        self.snippets = snippets
        self.grids = tuple(int(g) for g in grids)
        self.overlap = overlap
        self.threshold = threshold
        self.lam = lam
        self.snippet_size = snippet_size
        self.templates = templates
        self.descriptions = descriptions
        self.lm = lm
        self.n_descriptions = n_descriptions
        self.logit_scale = logit_scale
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.max_side = max_side
        self.infer, self.rank, self.rank_top, self.api_base = infer, rank, rank_top, api_base
        self.encoder, self.label_kind, self.vlm_max_side = encoder, label_kind, vlm_max_side
        self.fusion = None if fusion is None else dict(fusion)
        self.timeout = timeout
        self.fusion_: Any = None
        self.fit_notes_: list[str] = []
        self._vlm: Any = None
        self._backend = None
        self._text = None
        self._descs: dict[str, list[str]] | None = None
        if mode == "global-local":
            grid_boxes(8, 8, min(self.grids) if self.grids else 0, overlap=overlap)  # validates early

    @property
    def backend_(self) -> Any:
        """The resolved backend object."""
        if self._backend is None:
            from zsl.image.backends import get_image_backend

            self._backend = get_image_backend(self.backend)
        return self._backend

    @property
    def descriptions_(self) -> dict[str, list[str]] | None:
        """The label descriptions in use (written by the LM on first use for ``"lm"``)."""
        if self.descriptions is None:
            return None
        if self.descriptions == "lm":
            if self._descs is None:
                self._descs = describe_labels(self.vocab.labels, self.lm, n=self.n_descriptions)
            return self._descs
        assert isinstance(self.descriptions, Mapping)
        return {k: list(v) for k, v in self.descriptions.items()}

    @property
    def text_embeddings_(self) -> tuple[np.ndarray, np.ndarray]:
        """``(texts (T, D), groups (T,))`` for the vocabulary, computed once."""
        if self._text is None:
            templates, desc_tmpl, _ = _templates(self.templates)
            texts, groups = label_texts(self.vocab, templates, descriptions=self.descriptions_,
                                        description_template=desc_tmpl)
            emb = np.asarray(self.backend_.encode_texts(texts), dtype=np.float32)
            self._text = (emb, groups)
        return self._text

    @property
    def vlm_(self) -> Any:
        """The photo's Infer-Retrieve-Rank with the VLM (:class:`zsl.image.vlm.PhotoIRR`), built on first use; None
        without a vision-language ``lm`` or with neither step."""
        if self._vlm is None:
            self._vlm = build_photo_irr(self) or False
        return self._vlm or None

    @property
    def uses_lm(self) -> bool:
        """True when a VLM step runs: a run then labels photo by photo (:meth:`explain`), with retries."""
        return self.vlm_ is not None

    def explain(self, image: Any) -> ItemScores:
        """Score one photo (a path) with the VLM steps, keeping the row fields ``phrases``, ``retrieval_labels``,
        ``notes`` and the usage per step (without a VLM: the global-local scores alone).

        Raises:
            InputError: the file cannot be used (a URL, a link, not an image ...).
            RemoteModelError: the VLM's Rank answer cannot be read.
        """
        if self.vlm_ is None:
            return super().explain(image)
        return self.vlm_(*self._photo_parts(image))

    def _photo_parts(self, image: Any) -> tuple[np.ndarray, Any]:
        """One photo's ``(K,)`` global-local scores and its VLM payload (a path or a PIL image)."""
        if hasattr(image, "mode") and hasattr(image, "crop"):
            img = to_rgb(image)
            sha = hashlib.sha256(img.tobytes() + repr(img.size).encode()).hexdigest()
        else:
            sha, img = read_photo(image, max_pixels=self.max_pixels, max_side=self.max_side)
        g, s = self.score_parts([img])
        gl = g if s is None else global_local_scores(g, s, threshold=self.threshold_, lam=self.lam)
        return gl[0], encode_photo(img, sha, max_side=self.vlm_max_side)

    def check_lm(self, name: str | None = None, *, attempt: Any = None) -> None:
        """Check, with one small call carrying a photo, that the VLM answers and reads images
        (:func:`zsl.image.vlm.check_vlm`); nothing to check without a VLM.

        Raises:
            RemoteModelError: it does not (unreachable, a wrong model name, a model that refuses images).
        """
        if self.vlm_ is not None:
            check_vlm(self.vlm_.steps, name, attempt=attempt)

    def fit(self, photos: Sequence[Any], labels: Sequence[Sequence[str]], *, metric_k: int | None = None,
            retries: int = 3, show_progress: bool = False) -> ImageTagger:
        """Fit the fusion weights (image share, Rank weight and depth) on labelled photos
        (:func:`zsl.image.vlm.fit_photo_fusion`).

        Each photo is asked once (Infer and Rank, as :meth:`explain` asks it; answers are cached, so a
        later run over the same photos pays nothing more) and its score components go to
        :func:`zsl.fusion.fit_fusion`, which keeps the current weights unless others rank the gold
        labels better by RP@K. ``rank_top`` can only shrink: Rank scored the tagger's ``rank_top``
        candidates.

        Args:
            photos: image paths (or PIL images).
            labels: each photo's gold labels (vocabulary labels; a photo without any is left out).
            metric_k: the K of RP@K (default: the photos' mean number of labels, rounded up, as R-precision;
                at most half the vocabulary, since RP@K over every label is always 100).
            retries: tries after the first on a rate limit, a time-out or a 5xx.
            show_progress: a progress bar over the photos.

        Returns:
            self, with ``fusion`` and ``rank_top`` set to the weights chosen, ``fusion_`` (the
            :class:`~zsl.fusion.FusionFit`) and ``fit_notes_`` (photos left out, and why).

        Raises:
            InputError: no vision-language ``lm``, lengths that differ, labels outside the vocabulary,
                or no photo that could be used.

        Example:
            >>> tagger = ImageTagger(vocab, lm="hosted_vllm/qwen2.5-vl", api_base=URL)   # doctest: +SKIP
            >>> tagger.fit(["a.jpg", "b.jpg"], [["dog"], ["cat", "sofa"]]).fusion       # doctest: +SKIP
            {'text_weight': 0.3, 'prior_weight': 0.0, 'rank_weight': 0.5, 'rank_top': 20}
        """
        from zsl.image.vlm import fit_photo_fusion, photo_metric_k

        irr, pairs = self.vlm_, self._fit_pairs(photos, labels)
        items, notes = self._fit_items(irr, pairs, retries, show_progress)
        if not items:
            raise InputError(f"none of the {len(pairs)} labelled photo(s) could be used: {'; '.join(notes[:3])}")
        k = photo_metric_k([gold for _, gold in pairs], len(self.vocab), metric_k)
        fit = fit_photo_fusion(items, len(self.vocab), k=k, defaults=dict(irr.weights))
        self.fusion, self.rank_top = dict(fit.weights), int(fit.weights["rank_top"])
        self.fusion_, self.fit_notes_ = fit, notes
        self._vlm = None  # rebuilt with the weights chosen
        return self

    def _fit_pairs(self, photos: Sequence[Any], labels: Sequence[Sequence[str]]) -> list[tuple[Any, list[int]]]:
        """``(photo, gold label columns)`` of the photos with labels; everything else refused by name."""
        if self.vlm_ is None:
            raise InputError("ImageTagger.fit fits how the VLM's answers are fused with the image scores, so it "
                             "needs a vision-language lm (e.g. lm='hosted_vllm/NAME', api_base=URL) with Infer or "
                             f"Rank on; this tagger has lm={self.lm!r}.")
        if isinstance(photos, (str, os.PathLike)) or len(photos) != len(labels):
            raise InputError(f"fit expects a list of photos and a list of label lists of the same length; got "
                             f"{'one path' if isinstance(photos, (str, os.PathLike)) else len(photos)} and "
                             f"{len(labels)}.")
        unknown = sorted({str(lab) for labs in labels for lab in labs if lab not in self.vocab})
        if unknown:
            raise InputError(f"{len(unknown)} label(s) of the photos are not in the vocabulary: "
                             f"{', '.join(map(repr, unknown[:10]))}. Fix: correct them or add them to the vocabulary.")
        return [(ph, [self.vocab.index(lab) for lab in labs]) for ph, labs in zip(photos, labels) if len(labs)]

    def _fit_items(self, irr: Any, pairs: list[tuple[Any, list[int]]], retries: int,
                   show_progress: bool) -> tuple[list[Any], list[str]]:
        """The :class:`~zsl.fusion.FusionItem` of each usable photo, and a note per photo left out."""
        from zsl.image.vlm import fusion_item
        from zsl.util.progress import progress
        from zsl.util.retry import is_transient, retry_base_delay, retry_call

        items, notes = [], []
        for photo, gold in progress(pairs, desc="asking the VLM", disable=not show_progress, unit="photo"):
            try:
                gl, payload = self._photo_parts(photo)
                c = retry_call(lambda gl=gl, payload=payload: irr.components(gl, payload), retries=retries,
                               base_delay=retry_base_delay())
            except Exception as exc:  # a photo that cannot be used is left out and named
                if is_transient(exc):  # still failing after its retries: stop (the answers paid so far are kept)
                    raise
                notes.append(f"{photo}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
                continue
            items.append(fusion_item(c["image_sim"], c["phrase_sim"], cand=c["cand"], p_yes=c["p_yes"], gold=gold))
        return items, notes

    def save(self, path: str | os.PathLike[str]) -> Any:
        """Save the fusion weights (fitted by :meth:`fit`, else the ones in force) as a program file for
        ``zsl label PHOTOS --lm ... --program FILE`` (:meth:`load`); models are never saved, only named."""
        irr = self.vlm_
        weights = dict(irr.weights) if irr is not None else dict(self.fusion or {})
        payload = {"zsl_image_tagger": 1, "vocab_hash": self.vocab.hash, "weights": weights,
                   "fit": None if self.fusion_ is None else self.fusion_.to_dict(),
                   "settings": None if irr is None else irr.config()}
        return write_text_atomic(path, json.dumps(payload, indent=1, ensure_ascii=False, default=str))

    def load(self, path: str | os.PathLike[str]) -> ImageTagger:
        """Use the fusion weights of a program saved by :meth:`save` (its ``rank_top`` too, as a text program's).

        Raises:
            InputError: not such a file (a text program among them), another vocabulary, or weights that are
                not finite numbers.
        """
        from pathlib import Path

        p = Path(path)
        fix = "Fix: pass a file written by `zsl fit PHOTOS.jsonl --lm ... --out program.json`, or omit --program."
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"cannot read the program {p}: {type(exc).__name__}: {exc}. {fix}") from None
        if isinstance(data, dict) and "zsl_tagger" in data:
            raise InputError(f"{p} is a program for texts (fitted on texts); photos need one fitted on labelled "
                             f"photos. {fix}")
        if not isinstance(data, dict) or data.get("zsl_image_tagger") != 1 or not isinstance(data.get("weights"), dict):
            raise InputError(f"{p} is not a zsl image program (a JSON object with \"zsl_image_tagger\": 1 and "
                             f"\"weights\"). {fix}")
        if data.get("vocab_hash") != self.vocab.hash:
            raise InputError(f"{p} was fitted on another vocabulary (hash {data.get('vocab_hash')}, yours "
                             f"{self.vocab.hash}): its weights belong to those labels. Fix: fit it again on this "
                             "vocabulary, or pass the vocabulary it was fitted on.")
        from zsl.image.vlm import PHOTO_DEFAULTS

        try:
            weights = {key: float(data["weights"].get(key, PHOTO_DEFAULTS[key])) for key in PHOTO_DEFAULTS}
        except (TypeError, ValueError) as exc:
            raise InputError(f"the weights in {p} are not numbers ({exc}). {fix}") from None
        if not np.isfinite(list(weights.values())).all() or weights["rank_top"] < 1:
            raise InputError(f"the weights in {p} are not usable ({weights}). {fix}")
        weights["rank_top"] = int(weights["rank_top"])
        self.fusion, self.rank_top, self._vlm = weights, int(weights["rank_top"]), None
        return self

    @property
    def threshold_(self) -> float:
        """The ``alpha`` threshold in force (the argument, else the backend's, else 0.5)."""
        if self.threshold is not None:
            return float(self.threshold)
        return float(getattr(self.backend_, "threshold", 0.5))

    @property
    def snippets_(self) -> str:
        """``"crops"`` or ``"features"``, after resolving ``"auto"``."""
        has_regions = hasattr(self.backend_, "encode_regions")
        if self.snippets == "features" and not has_regions:
            raise InputError(f"snippets='features' needs a backend with encode_regions(); {self.backend_!r} has "
                             "none. Use snippets='crops'.")
        if self.snippets == "auto":
            return "features" if has_regions else "crops"
        return self.snippets

    @property
    def logit_scale_(self) -> float:
        return float(self.logit_scale if self.logit_scale is not None else self.backend_.logit_scale)

    def probabilities(self, emb: np.ndarray) -> np.ndarray:
        """``(..., K)`` label probabilities of image (or snippet) embeddings: the softmax over the
        vocabulary's label texts (:func:`~zsl.image.global_local.class_probabilities`)."""
        text, groups = self.text_embeddings_
        return class_probabilities(emb, text, logit_scale=self.logit_scale_, groups=groups)

    def score_parts(self, images: Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None]:
        """Whole-image and snippet probabilities of RGB PIL images.

        Returns:
            ``(global (N, K), snippets (N, S, K) or None in "global" mode)``; combine them
            with :func:`global_local_scores`.
        """
        backend = self.backend_
        self.text_embeddings_  # noqa: B018 - build label texts before timing-sensitive loops
        globals_, snippets = [], []
        regions = self.mode == "global-local" and self.snippets_ == "features"
        crop_size = self.snippet_size or getattr(backend, "input_size", None)
        for start in range(0, len(images), self.batch_size):
            chunk = list(images[start:start + self.batch_size])
            if regions:
                g_emb, r_emb = backend.encode_regions(chunk, self.grids, overlap=self.overlap)
                globals_.append(self.probabilities(g_emb))
                snippets.append(self.probabilities(r_emb))
                continue
            globals_.append(self.probabilities(backend.encode_images(chunk)))
            if self.mode == "global-local":
                batch = make_crops(chunk, self.grids, overlap=self.overlap)
                emb = backend.encode_images(batch.crops, size=crop_size)
                snippets.append(batch.reshape(self.probabilities(emb)))
        k = len(self.vocab)
        g = np.concatenate(globals_) if globals_ else np.zeros((0, k))
        if self.mode != "global-local":
            return g, None
        per = sum(x * x for x in self.grids)
        return g, np.concatenate(snippets) if snippets else np.zeros((0, per, k))

    def _as_images(self, images: Sequence[Any]) -> list[Any]:
        if isinstance(images, (str, os.PathLike)):
            raise InputError("predict_proba expects a list of images or paths, got one path. Fix: wrap it in a list.")
        out = []
        for i, im in enumerate(images):
            if isinstance(im, (str, os.PathLike)):
                try:
                    out.append(load_image(im, max_pixels=self.max_pixels, max_side=self.max_side))
                except InputError as exc:
                    raise InputError(f"image {i} ({im}): {exc}. Use score_files() to skip bad files instead.") \
                        from None
            elif hasattr(im, "mode") and hasattr(im, "crop"):
                out.append(to_rgb(im))
            else:
                raise InputError(f"image {i} is a {type(im).__name__}; expected a PIL image or a file path")
        return out

    def predict_proba(self, images: Sequence[Any]) -> np.ndarray:
        """``(N, K)`` scores in vocabulary order for PIL images or image paths.

        Raises:
            InputError: an input is not an image or cannot be read (use
                :meth:`score_files` to skip bad files instead).
        """
        if self.vlm_ is not None:
            if isinstance(images, (str, os.PathLike)):
                raise InputError("predict_proba expects a list of images or paths, got one path. Fix: wrap it in a "
                                 "list.")
            return np.stack([self.explain(im).scores for im in images]) if len(images) else \
                np.zeros((0, len(self.vocab)), dtype=np.float32)
        imgs = self._as_images(images)
        g, s = self.score_parts(imgs)
        if s is None:
            return g
        return global_local_scores(g, s, threshold=self.threshold_, lam=self.lam)

    def score(self, images: Sequence[Any]) -> np.ndarray:
        """``(N, K)`` float32 scores in vocabulary order: :meth:`predict_proba` (the
        :class:`~zsl.base.Scorer` contract)."""
        return self.predict_proba(images).astype(np.float32)

    def score_batch(self, paths: Sequence[str | os.PathLike[str]]) -> BatchScores:
        """Score image files, skipping those that cannot be read (reason: ``"PATH: why"``)."""
        paths = [str(p) for p in paths]
        result = self.score_files(paths)
        row_of = {p: i for i, p in enumerate(result.paths)}
        why = {str(s.path): s.reason for s in result.skipped}
        ok = [i for i, p in enumerate(paths) if p in row_of]
        failed = {i: f"{p}: {why.get(p, 'could not be read')}" for i, p in enumerate(paths) if p not in row_of}
        return BatchScores(result.scores[[row_of[paths[i]] for i in ok]], ok, failed)

    def score_files(self, paths: Iterable[str | os.PathLike[str]], *, show_progress: bool = False) -> ImageScores:
        """Score image files, skipping (and reporting) those that cannot be read.

        Files are read ``batch_size`` at a time, so memory stays flat on large folders.

        Returns:
            :class:`ImageScores` with the scores of readable files, their paths and the
            skipped files with reasons.
        """
        from zsl.util.progress import progress

        paths = [str(p) for p in paths]
        skipped: list[SkippedImage] = []
        parts, ok = [], []
        starts = range(0, len(paths), self.batch_size)
        for start in progress(starts, desc="scoring images", disable=not show_progress, unit="batch"):
            imgs, good = load_images(paths[start:start + self.batch_size], skipped=skipped,
                                     max_pixels=self.max_pixels, max_side=self.max_side)
            if imgs:
                g, s = self.score_parts(imgs)
                parts.append(g if s is None else global_local_scores(g, s, threshold=self.threshold_, lam=self.lam))
                ok.extend(good)
        scores = np.concatenate(parts) if parts else np.zeros((0, len(self.vocab)))
        return ImageScores(scores.astype(np.float32), ok, skipped)

    def config(self) -> dict[str, Any]:
        """Settings that change the scores (recorded in provenance)."""
        _, _, templates_id = _templates(self.templates)
        cfg: dict[str, Any] = {
            "backend": self.backend_.model_id, "mode": self.mode, "templates": templates_id,
            "logit_scale": self.logit_scale_,
        }
        if self.mode == "global-local":
            cfg.update(snippets=self.snippets_, grids=list(self.grids), overlap=self.overlap,
                       threshold=self.threshold_, lam=self.lam)
            if self.snippets_ == "crops":
                cfg["snippet_size"] = self.snippet_size
        if self.descriptions == "lm":
            from zsl.prompting import load_prompt

            cfg["descriptions"] = {"lm": _lm_id(self.lm) if self.lm is not None else "default",
                                   "prompt": load_prompt("image_describe").id, "n": self.n_descriptions}
        elif self.descriptions is not None:
            cfg["descriptions"] = "given"
        if self.vlm_ is not None:
            cfg["vlm"] = self.vlm_.config()
        return cfg

    def __repr__(self) -> str:
        return f"ImageTagger({len(self.vocab)} labels, backend={self.backend!r}, mode={self.mode!r})"
