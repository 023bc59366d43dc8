"""A small local classifier distilled from pseudo-labels.

The student is a frozen feature extractor plus a trainable one-vs-rest head:

* text: the sentence encoder of :mod:`zsl.models.encoders` (MiniLM by default) gives ``(N, D)``
  embeddings; the encoder is never trained;
* anything else (e.g. image-backbone features): pass an ``(N, D)`` array to ``fit`` and
  ``predict`` and leave ``encoder=None``.

The head is linear (one logistic unit per label) or a one-hidden-layer MLP, trained on
the CPU with torch on *soft* targets in [0, 1] (a rule's confidences from
:mod:`zsl.scoring`, or 0/1 labels). Losses, chosen for noisy pseudo-labels:

* ``"bce"``: binary cross-entropy against soft targets (distillation's usual loss).
* ``"asl"``: the asymmetric loss of Ridnik et al. (ICCV 2021): positives
  ``q (1-p)^g+ log p``, negatives ``(1-q) p_m^g- log(1-p_m)`` with ``p_m = max(p - m, 0)``.
  Easy negatives are down-weighted and very low probabilities are cut off (``m``), which
  also ignores negatives the teacher probably missed (defaults ``g+ = 0, g- = 4, m = 0.05``
  as in the paper).
* ``refine=True``: CDUL-style label refinement (Abdelfattah et al., ICCV 2023). The
  targets become latent variables; after a warm-up, each epoch moves them along the
  negative gradient of the training loss *with respect to the labels*, evaluated at the
  student's current predictions, plus a pull back to the teacher's labels::

      y <- clip(y - rate * (dL(p, y)/dy + anchor * (y - q)), 0, 1)

  For BCE ``dL/dy = -logit(p)``: a label the student is sure about moves toward the
  student's view; ``anchor`` bounds how far from the teacher's ``q`` it may go
  (the fixed point is ``y = q + logit(p) / anchor``). A reproduction study of CDUL
  (Shah & Bhalgat, 2024) found this gives modest gains; the benchmark measures it here.

Example:
    >>> import numpy as np
    >>> from zsl.student.classifier import StudentClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 16)).astype(np.float32)
    >>> Y = (X[:, :3] > 0).astype(np.float32)          # 3 labels, learnable
    >>> student = StudentClassifier(learning_rate=0.05, random_state=0).fit(X, Y, vocab=["a", "b", "c"])
    >>> float((student.predict(X) == Y).mean()) > 0.9
    True
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zsl.base import ParamsMixin, ScorerMixin
from zsl.errors import InputError, MissingDependencyError, ModelIntegrityError, VocabularyError
from zsl.models.registry import sha256_file
from zsl.silver.data import SilverData
from zsl.vocab import LabelVocab, vocab_difference

__all__ = ["LOSSES", "StudentClassifier", "distill_file", "folder_size"]

LOSSES = ("bce", "asl")
HEADS = ("linear", "mlp")
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


# -- losses (torch; imported lazily) --------------------------------------------------------
def soft_bce(logits: Any, targets: Any) -> Any:
    """Element-wise binary cross-entropy of logits against soft targets in [0, 1].

    Args:
        logits: ``(N, K)`` torch tensor.
        targets: ``(N, K)`` torch tensor in [0, 1].

    Returns:
        ``(N, K)`` losses (sum or average them yourself).
    """
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")


def asymmetric_loss(logits: Any, targets: Any, *, gamma_pos: float = 0.0, gamma_neg: float = 4.0,
                    clip: float = 0.05, eps: float = 1e-8) -> Any:
    """Element-wise asymmetric loss (ASL, Ridnik et al. 2021) for soft targets.

    Args:
        logits: ``(N, K)`` torch tensor.
        targets: ``(N, K)`` torch tensor in [0, 1]; ``q`` weighs the positive term and
            ``1 - q`` the negative one.
        gamma_pos, gamma_neg: focusing exponents of positives and negatives.
        clip: probability margin ``m``; negatives with ``p < m`` cost nothing.
        eps: floor inside the logarithm.

    Returns:
        ``(N, K)`` losses.
    """
    import torch
    import torch.nn.functional as F

    p = torch.sigmoid(logits)
    log_p = F.logsigmoid(logits)
    p_m = (p - clip).clamp(min=0.0) if clip > 0 else p
    log_not = torch.log((1.0 - p_m).clamp(min=eps))
    pos = log_p if gamma_pos == 0 else log_p * (1.0 - p).pow(gamma_pos)
    neg = log_not * p_m.pow(gamma_neg) if gamma_neg != 0 else log_not
    return -(targets * pos + (1.0 - targets) * neg)


# -- the estimator --------------------------------------------------------------------------
class StudentClassifier(ParamsMixin, ScorerMixin):
    """Frozen encoder features + a one-vs-rest head trained on (soft) pseudo-labels.

    A :class:`zsl.base.Scorer` once fitted: ``predict_proba`` / ``score`` give ``(N, K)``
    probabilities, ``predict`` the label sets (probability >= ``threshold_``, at least
    ``min_labels``) as an ``(N, K)`` 0/1 matrix, ``top_k(X, k)`` the ``(label, probability)``
    pairs and ``predict_labels`` the chosen ones.

    Args:
        encoder: the text encoder (a name, a path or an encoder object; None: the default,
            ``$ZSL_ENCODER`` or MiniLM). Used when ``fit``/``predict`` get texts. When ``fit``
            gets an array and ``encoder`` is None, the student is a pure feature classifier
            (e.g. on image-backbone features) and only accepts arrays; pass ``encoder`` with
            an array to say the array holds that encoder's embeddings.
        head: ``"linear"`` or ``"mlp"`` (one hidden layer, GELU, dropout).
        hidden_size: MLP width.
        dropout: MLP dropout.
        loss: ``"bce"`` (soft-target BCE) or ``"asl"`` (asymmetric loss).
        asl_gamma_pos, asl_gamma_neg, asl_clip: ASL parameters.
        refine: CDUL-style refinement of the pseudo-labels during training.
        refine_rate: step size of the label update per epoch.
        refine_anchor: pull of the teacher's labels (higher: labels move less).
        refine_warmup: fraction of the epochs trained before labels start to move.
        standardize: standardise each feature with the training mean/std (kept in the model).
            Off by default: sentence embeddings are already L2-normalised, and small raw
            steps keep a zero-shot start intact; turn it on for raw backbone features.
        epochs, batch_size: training length and mini-batch size.
        learning_rate: AdamW step size; None: 1e-3 for linear (small steps around the
            zero-shot start), 3e-3 for MLP.
        weight_decay: AdamW weight decay.
        threshold: probability at which ``predict`` chooses a label, or ``"auto"``: the
            threshold at which the student's labels on its training items agree best (F1)
            with the hard pseudo-labels (targets >= 0.5), so ``predict`` reproduces the
            teacher's labelling rule without any gold label.
        min_labels: ``predict`` gives every item at least this many labels.
        zero_shot_init: start a linear head at the zero-shot classifier (cosine similarity
            to each label's embedding, scaled and shifted to fit the targets), so labels
            the pseudo-labels rarely show keep the teacher's knowledge instead of starting
            from nothing. Uses ``label_embeddings`` given to ``fit``, else (for a text
            student) the encoder's embeddings of the vocabulary's label texts (with
            descriptions); otherwise, or for an MLP head, the head starts at random.
        n_threads: torch CPU threads while training and predicting (restored afterwards);
            1 is fastest for heads this small and does not fight other processes for
            cores. None: torch's default.
        random_state: seed for initialisation, shuffling and dropout (local generators;
            global torch/numpy state is left alone).
        show_progress: progress bar while encoding texts.

    Attributes:
        vocab_: the :class:`~zsl.vocab.LabelVocab`; column ``j`` of every output is ``vocab_[j]``.
        classes_: the labels as an array (scikit-learn convention).
        n_features_in_: feature dimension.
        input_kind_: ``"text"`` or ``"features"``.
        threshold_: the probability threshold ``predict`` uses.
        head_: the trained torch module.
        history_: mean training loss per epoch.
        refined_targets_: ``(N, K)`` targets after refinement (``refine=True`` only).
        provenance_: where the training labels came from (from the silver data).

    Example:
        >>> student = StudentClassifier(loss="asl", refine=True)          # doctest: +SKIP
        >>> student.fit_silver(read_silver("silver.jsonl")).save("student/")  # doctest: +SKIP
        >>> StudentClassifier.load("student/").predict(["great, thanks!"])   # doctest: +SKIP
    """

    def __init__(self, *, encoder: Any = None, head: str = "linear", hidden_size: int = 256, dropout: float = 0.1,
                 loss: str = "bce", asl_gamma_pos: float = 0.0, asl_gamma_neg: float = 4.0, asl_clip: float = 0.05,
                 refine: bool = False, refine_rate: float = 0.1, refine_anchor: float = 5.0,
                 refine_warmup: float = 0.3, standardize: bool = False, epochs: int = 60, batch_size: int = 256,
                 learning_rate: float | None = None, weight_decay: float = 1e-4, threshold: float | str = "auto",
                 min_labels: int = 0, zero_shot_init: bool = True, n_threads: int | None = 1,
                 random_state: int = 0, show_progress: bool = False):
        self.encoder = encoder
        self.head = head
        self.hidden_size = hidden_size
        self.dropout = dropout
        self.loss = loss
        self.asl_gamma_pos = asl_gamma_pos
        self.asl_gamma_neg = asl_gamma_neg
        self.asl_clip = asl_clip
        self.refine = refine
        self.refine_rate = refine_rate
        self.refine_anchor = refine_anchor
        self.refine_warmup = refine_warmup
        self.standardize = standardize
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.threshold = threshold
        self.min_labels = min_labels
        self.zero_shot_init = zero_shot_init
        self.n_threads = n_threads
        self.random_state = random_state
        self.show_progress = show_progress

    # -- checks ---------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.head not in HEADS:
            raise InputError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.loss not in LOSSES:
            raise InputError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("epochs", "batch_size", "hidden_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise InputError(f"{name} must be an integer >= 1, got {v!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.refine_warmup < 1.0:
            raise InputError(f"refine_warmup must be in [0, 1), got {self.refine_warmup}")
        if self.refine_rate < 0 or self.refine_anchor < 0:
            raise InputError("refine_rate and refine_anchor must be >= 0")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise InputError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.threshold != "auto" and not (isinstance(self.threshold, (int, float)) and 0.0 < self.threshold < 1.0):
            raise InputError(f"threshold must be 'auto' or a probability in (0, 1), got {self.threshold!r}")

    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise InputError("This StudentClassifier is not fitted yet. Fix: call fit(X, y, vocab=...) or "
                             "fit_silver(silver), or load a saved one with StudentClassifier.load(path).")

    # -- features -------------------------------------------------------------------------
    def _encoder_obj(self) -> Any:
        enc = getattr(self, "_encoder", None)
        if enc is None:
            from zsl.models.encoders import get_encoder

            enc = get_encoder(self.encoder, **getattr(self, "_encoder_kwargs", {}))
            self._encoder = enc
        return enc

    def _features(self, X: Any, *, fitting: bool = False) -> np.ndarray:
        if isinstance(X, str):
            raise InputError("Expected a list of texts or an (N, D) array, got one string. Fix: wrap it: [text]")
        if hasattr(X, "shape") and hasattr(X, "dtype"):
            arr = np.asarray(X, dtype=np.float32)
            if arr.ndim != 2:
                raise InputError(f"Feature arrays must be 2-D (N items, D features); got shape {arr.shape}.")
            if not np.isfinite(arr).all():
                raise InputError(f"The feature array has {int((~np.isfinite(arr)).sum())} NaN/inf values; "
                                 "fix the feature extractor.")
            if fitting:
                self.input_kind_ = "text" if self.encoder is not None else "features"
            elif arr.shape[1] != self.n_features_in_:
                raise InputError(f"The student expects {self.n_features_in_} features per item, got {arr.shape[1]}: "
                                 "features must come from the same encoder/backbone it was trained on.")
            return arr
        items = list(X)
        bad = [i for i, t in enumerate(items) if not isinstance(t, str) or not t.strip()]
        if bad:
            raise InputError(f"{len(bad)} text(s) are empty or not strings (positions {bad[:10]}); "
                             "pass non-empty strings or an (N, D) feature array.")
        if not fitting and self.input_kind_ == "features":
            raise InputError(f"This student was trained on {self.n_features_in_}-d feature arrays, not texts. Fix: "
                             "pass the same kind of (N, D) features, or train with encoder=... to read texts.")
        if fitting:
            self.input_kind_ = "text"
        if not items:
            return np.zeros((0, getattr(self, "n_features_in_", 0)), dtype=np.float32)
        emb = self._encoder_obj().encode(items, show_progress=self.show_progress)
        emb = np.asarray(emb, dtype=np.float32)
        if not fitting and emb.shape[1] != self.n_features_in_:
            raise InputError(f"The encoder gives {emb.shape[1]}-d embeddings but the student expects "
                             f"{self.n_features_in_}: load it with the encoder it was trained with.")
        return emb

    # -- training -------------------------------------------------------------------------
    def _build_head(self, d: int, k: int) -> Any:
        from torch import nn

        if self.head == "linear":
            return nn.Sequential(nn.Linear(d, k))
        return nn.Sequential(nn.Linear(d, self.hidden_size), nn.GELU(), nn.Dropout(self.dropout),
                             nn.Linear(self.hidden_size, k))

    def _loss_fn(self):
        if self.loss == "bce":
            return soft_bce
        gp, gn, clip = self.asl_gamma_pos, self.asl_gamma_neg, self.asl_clip

        def asl(logits: Any, targets: Any) -> Any:
            return asymmetric_loss(logits, targets, gamma_pos=gp, gamma_neg=gn, clip=clip)

        return asl

    def fit(self, X: Any, y: Any, *, vocab: LabelVocab | Sequence[str] | None = None,
            label_embeddings: Any = None, provenance: dict[str, Any] | None = None) -> StudentClassifier:
        """Train the head on features of ``X`` against targets ``y``.

        Args:
            X: texts, or an ``(N, D)`` feature array.
            y: ``(N, K)`` targets in [0, 1]: soft confidences or 0/1 pseudo-labels, columns
                in vocabulary order.
            vocab: the labels of the columns (default ``label_0`` ... ``label_{K-1}``).
            label_embeddings: ``(K, D)`` embeddings of the labels in the feature space, for
                ``zero_shot_init`` (e.g. CLIP text embeddings for an image student).
            provenance: where the targets came from; saved with the model.

        Returns:
            self.

        Raises:
            InputError: shapes disagree, targets outside [0, 1] or NaN, no items.
        """
        import torch

        self._check_params()
        t0 = time.perf_counter()
        Y, vocab = _checked_targets(y, vocab)
        feats = self._features(X, fitting=True)
        if feats.shape[0] != Y.shape[0]:
            raise InputError(f"Got {feats.shape[0]} items but {Y.shape[0]} target rows; they must match 1:1.")
        if feats.shape[0] == 0:
            raise InputError("fit() needs at least one item.")
        n, d = feats.shape
        self._fit_standardizer(feats)
        label_emb = self._label_embeddings(vocab, d, label_embeddings)
        Xs = torch.from_numpy((feats - self.feature_mean_) / self.feature_scale_)
        head, targets, history = self._train_head(feats, Xs, torch.from_numpy(Y.copy()), label_emb)
        self.head_ = head
        self.threshold_ = self._fit_threshold(Xs, Y)
        self.vocab_ = vocab
        self.classes_ = np.asarray(vocab.labels, dtype=object)
        self.n_features_in_ = d
        self.history_ = history
        self.refined_targets_ = targets.numpy() if self.refine else None
        self.provenance_ = dict(provenance or {})
        self.fit_seconds_ = time.perf_counter() - t0
        self.n_train_ = n
        return self

    def _fit_standardizer(self, feats: np.ndarray) -> None:
        """Set ``feature_mean_`` and ``feature_scale_`` (a zero mean and unit scale without ``standardize``)."""
        d = feats.shape[1]
        if self.standardize:
            mean = feats.mean(axis=0)
            scale = feats.std(axis=0)
            scale = np.where(scale > 1e-8, scale, 1.0)
        else:
            mean, scale = np.zeros(d), np.ones(d)
        self.feature_mean_, self.feature_scale_ = mean.astype(np.float32), scale.astype(np.float32)

    def _train_head(self, feats: np.ndarray, Xs: Any, targets: Any, label_emb: np.ndarray | None
                    ) -> tuple[Any, Any, list[float]]:
        """Train a new head on the standardised features ``Xs`` (seeded, torch's global RNG left as it was).

        Returns the head (in eval mode), the targets after refinement (``targets`` itself without
        ``refine``) and the mean training loss per epoch.
        """
        import torch

        n, d = feats.shape
        k = targets.shape[1]
        teacher = targets.clone()
        loss_fn = self._loss_fn()
        lr = self.learning_rate or (1e-3 if self.head == "linear" else 3e-3)
        warm = round(self.refine_warmup * self.epochs)
        history: list[float] = []
        with _threads(self.n_threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            head = self._build_head(d, k)
            self.init_ = "random"
            with torch.no_grad():  # start from the label base rates: faster, steadier on rare labels
                rate = targets.mean(0).clamp(1e-4, 1 - 1e-4)
                head[-1].bias.copy_(torch.log(rate / (1 - rate)))
            if label_emb is not None and self.head == "linear":
                self._zero_shot_init(head, feats, label_emb, targets)
            opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=self.weight_decay)
            gen = torch.Generator().manual_seed(self.random_state)
            for epoch in range(self.epochs):
                head.train()
                perm = torch.randperm(n, generator=gen)
                total = 0.0
                for start in range(0, n, self.batch_size):
                    idx = perm[start:start + self.batch_size]
                    loss = loss_fn(head(Xs[idx]), targets[idx]).sum(dim=1).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                history.append(total / n)
                if self.refine and epoch >= warm and epoch < self.epochs - 1:
                    targets = self._refine_step(head, Xs, targets, teacher, loss_fn)
        head.eval()
        return head, targets, history

    def _fit_threshold(self, Xs: Any, Y: np.ndarray) -> float:
        if self.threshold != "auto":
            return float(self.threshold)
        import torch

        from zsl.scoring import best_f1_threshold

        hard = Y >= 0.5
        if not hard.any():
            return 0.5
        with _threads(self.n_threads), torch.inference_mode():
            proba = torch.sigmoid(self.head_(Xs)).numpy()
        thr, _ = best_f1_threshold(proba.ravel(), hard.ravel())
        return float(min(max(thr, 1e-4), 1.0 - 1e-4))

    def _label_embeddings(self, vocab: LabelVocab, d: int, given: Any) -> np.ndarray | None:
        if not self.zero_shot_init or self.head != "linear":
            return None
        if given is not None:
            emb = np.asarray(given, dtype=np.float32)
            if emb.shape != (len(vocab), d):
                raise InputError(f"label_embeddings must have shape ({len(vocab)}, {d}) (one row per label, in the "
                                 f"feature space); got {emb.shape}.")
            return emb
        if self.input_kind_ != "text":
            return None
        from zsl.models.encoders import encode_cached

        texts = [vocab.text_for(j, with_description=True) for j in range(len(vocab))]
        emb = np.asarray(encode_cached(self._encoder_obj(), texts), dtype=np.float32)
        return emb if emb.shape == (len(vocab), d) else None

    def _zero_shot_init(self, head: Any, feats: np.ndarray, label_emb: np.ndarray, targets: Any) -> None:
        """Set the linear head to ``a * cos(x, label) + b``, with ``a, b`` fitted to the targets."""
        import torch

        sims = torch.from_numpy(feats @ label_emb.T)
        a = torch.tensor(10.0, requires_grad=True)
        b = torch.tensor(0.0, requires_grad=True)
        opt = torch.optim.LBFGS([a, b], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = soft_bce(a * sims + b, targets).mean()
            loss.backward()
            return loss

        opt.step(closure)
        a_v, b_v = float(a.detach()), float(b.detach())
        if not (np.isfinite(a_v) and np.isfinite(b_v)) or a_v <= 0:
            return  # the targets do not follow the label similarities: keep the plain start
        lin = head[-1]
        with torch.no_grad():
            # the head sees standardised features x' = (x - mean) / scale, so x.l = x'.(scale*l) + mean.l
            w = a_v * label_emb * self.feature_scale_[None, :]
            lin.weight.copy_(torch.from_numpy(w.astype(np.float32)))
            lin.bias.copy_(torch.from_numpy((a_v * (label_emb @ self.feature_mean_) + b_v).astype(np.float32)))
        self.init_ = "zero_shot"
        self.zero_shot_scale_ = (a_v, b_v)

    def _refine_step(self, head: Any, Xs: Any, targets: Any, teacher: Any, loss_fn: Any) -> Any:
        """One CDUL-style update of the latent labels from the student's current view."""
        import torch

        head.eval()
        with torch.no_grad():
            logits = head(Xs)
        latent = targets.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(logits, latent).sum(), latent)
        with torch.no_grad():
            step = grad + self.refine_anchor * (targets - teacher)
            return (targets - self.refine_rate * step).clamp_(0.0, 1.0)

    def fit_silver(self, silver: SilverData, *, targets: str = "soft", features: Any = None) -> StudentClassifier:
        """Train on silver data (:mod:`zsl.silver.data`).

        Args:
            silver: the pseudo-labelled items.
            targets: ``"soft"`` (the rule's confidences) or ``"hard"`` (its 0/1 labels).
            features: an ``(N, D)`` array to use instead of encoding ``silver.texts``.

        Returns:
            self.
        """
        if targets not in ("soft", "hard"):
            raise InputError(f"targets must be 'soft' or 'hard', got {targets!r}")
        if features is None and silver.texts is None:
            raise InputError("This silver data has no texts, so a text student cannot be trained on it. Fix: "
                             "export silver data with texts, or pass features=(N, D) array.")
        y = silver.confidence if targets == "soft" else silver.labels.astype(np.float32)
        prov = {**silver.provenance, "targets": targets, "n_items": len(silver)}
        return self.fit(silver.texts if features is None else features, y, vocab=silver.vocab, provenance=prov)

    # -- inference ------------------------------------------------------------------------
    def decision_function(self, X: Any, *, batch_size: int = 8192) -> np.ndarray:
        """``(N, K)`` float32 logits in vocabulary order."""
        import torch

        self._check_fitted()
        feats = self._features(X)
        out = np.empty((feats.shape[0], len(self.vocab_)), dtype=np.float32)
        with _threads(self.n_threads), torch.inference_mode():
            for start in range(0, feats.shape[0], batch_size):
                chunk = (feats[start:start + batch_size] - self.feature_mean_) / self.feature_scale_
                out[start:start + batch_size] = self.head_(torch.from_numpy(chunk)).numpy()
        return out

    def predict_proba(self, X: Any, *, batch_size: int = 8192) -> np.ndarray:
        """``(N, K)`` float32 probabilities, one independent probability per label.

        Args:
            X: texts or an ``(N, D)`` feature array.
            batch_size: items per forward pass.
        """
        logits = self.decision_function(X, batch_size=batch_size)
        return (0.5 * (1.0 + np.tanh(0.5 * logits))).astype(np.float32)

    def score(self, X: Any) -> np.ndarray:
        """``(N, K)`` float32 probabilities: :meth:`predict_proba` (the :class:`~zsl.base.Scorer` contract)."""
        return self.predict_proba(X)

    @property
    def vocab(self) -> LabelVocab:
        """The fitted vocabulary (``vocab_``), the column order of every output."""
        try:
            return self.vocab_
        except AttributeError:
            raise AttributeError("This StudentClassifier is not fitted yet, so it has no vocabulary. Fix: fit it or "
                                 "load a saved one with StudentClassifier.load(path).") from None

    def config(self) -> dict[str, Any]:
        """What produces this student's outputs: its folder and weights hash, encoder, threshold, vocabulary
        and the teacher it was distilled from (run manifests record it)."""
        self._check_fitted()
        return {"student": str(getattr(self, "path_", "in-memory")), "student_sha256": getattr(self, "weights_sha256_", None),
                "encoder": (self._encoder_spec() or {}).get("model_id"), "threshold": float(self.threshold_),
                "vocab_hash": self.vocab_.hash, "teacher": self.provenance_}

    def predict(self, X: Any, *, threshold: float | None = None) -> np.ndarray:
        """``(N, K)`` uint8 labels: probability >= ``threshold`` (default ``self.threshold_``),
        plus each item's best labels up to ``min_labels``."""
        proba = self.predict_proba(X)
        thr = self.threshold_ if threshold is None else threshold
        out = proba >= thr
        if self.min_labels:
            top = np.argsort(-proba, axis=1, kind="stable")[:, : self.min_labels]
            np.put_along_axis(out, top, True, axis=1)
        return out.astype(np.uint8)

    def predict_labels(self, X: Any, *, threshold: float | None = None) -> list[list[tuple[str, float]]]:
        """Chosen ``(label, probability)`` pairs per item, most probable first."""
        proba = self.predict_proba(X)
        thr = self.threshold_ if threshold is None else threshold
        out = []
        for row in proba:
            idx = np.flatnonzero(row >= thr)
            if self.min_labels:
                idx = np.union1d(idx, np.argsort(-row, kind="stable")[: self.min_labels])
            idx = idx[np.argsort(-row[idx], kind="stable")]
            out.append([(self.vocab_[int(j)], round(float(row[j]), 4)) for j in idx])
        return out

    # -- persistence ----------------------------------------------------------------------
    def _encoder_spec(self) -> dict[str, Any] | None:
        if self.input_kind_ != "text":
            return None
        enc = self._encoder_obj() if self.encoder is None or isinstance(self.encoder, (str, os.PathLike)) \
            else self.encoder
        from zsl.models.encoders import HashingEncoder

        if isinstance(enc, HashingEncoder):
            return {"name": "hashing", "kwargs": {"dim": enc.dim}, "model_id": enc.model_id}
        name = getattr(enc, "name", None)
        return {"name": name if isinstance(name, str) else None, "kwargs": {},
                "model_id": getattr(enc, "model_id", None)}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to a folder: ``model.safetensors`` (weights) + ``config.json`` (labels in column
        order, vocabulary hash, parameters, encoder, training summary, provenance).

        The folder appears complete or not at all (written beside it, then renamed). An
        existing student folder at ``path`` (``"zsl_student"`` in its ``config.json``, and
        ``model.safetensors``) or an empty folder is replaced; anything else there is refused.

        Returns:
            the folder.

        Raises:
            InputError: ``path`` is the current folder, or holds something other than a student.
        """
        save_file = _safetensors().save_file
        self._check_fitted()
        p = Path(path)
        _check_replaceable(p)
        tensors = {f"head.{k}": v.detach().contiguous() for k, v in self.head_.state_dict().items()}
        import torch

        tensors["feature_mean"] = torch.from_numpy(self.feature_mean_)
        tensors["feature_scale"] = torch.from_numpy(self.feature_scale_)
        params = {k: v for k, v in self.get_params().items() if k != "encoder"}
        from zsl.version import __version__

        config: dict[str, Any] = {
            "zsl_student": FORMAT_VERSION, "zsl_version": __version__,
            "labels": list(self.vocab_.labels),
            "descriptions": None if self.vocab_.descriptions is None else list(self.vocab_.descriptions),
            "priors": None if self.vocab_.priors is None else list(self.vocab_.priors),
            "parents": None if self.vocab_.parents is None else list(self.vocab_.parents),
            "vocab_name": self.vocab_.name, "vocab_hash": self.vocab_.hash,
            "input_kind": self.input_kind_, "n_features_in": self.n_features_in_, "threshold": self.threshold_,
            "encoder": self._encoder_spec(), "params": params,
            "training": {"n_items": self.n_train_, "seconds": round(self.fit_seconds_, 3),
                         "final_loss": round(self.history_[-1], 6) if self.history_ else None},
            "provenance": self.provenance_,
        }
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        old = p.with_name(f".{p.name}.{os.getpid()}.old")
        try:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
            # one metadata key: safetensors orders the header's keys by a per-map random hash, so two keys
            # gave one student two sha256s. The format marker lives in config.json ("zsl_student").
            save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
            config["weights_sha256"] = sha256_file(tmp / WEIGHTS_NAME)
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=1, ensure_ascii=False, default=str),
                                           encoding="utf-8")
            if p.exists():
                os.replace(p, old)
            os.replace(tmp, p)
        except OSError as exc:
            if old.exists() and not p.exists():
                os.replace(old, p)
            raise InputError(f"Cannot write the student to {p}: {exc.strerror or exc}. Choose a writable --out path.") \
                from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, vocab: LabelVocab | Sequence[str] | None = None,
             encoder: Any = None) -> StudentClassifier:
        """Load a student saved by :meth:`save`.

        Args:
            path: the student folder.
            vocab: the vocabulary you will read its outputs with; refused (with the
                difference spelled out) unless its labels are the student's, in order.
            encoder: an encoder object to use instead of the recorded one (needed when it
                was an object zsl cannot rebuild by name).

        Returns:
            the fitted student.

        Raises:
            InputError: not a student folder, unreadable, or a ``config.json`` that is not
                JSON or lacks a field.
            VocabularyError: ``vocab`` differs from the student's labels.
            ModelIntegrityError: the weights file does not match its recorded sha256, or the
                labels in ``config.json`` do not match its recorded ``vocab_hash`` (the label
                order was edited: the output columns would silently mean other labels).
        """
        _safetensors()
        p = Path(path)
        cfg_path = p / CONFIG_NAME
        if not cfg_path.is_file():
            raise InputError(f"{p} is not a zsl student folder (no {CONFIG_NAME}). Train one with "
                             "`zsl distill SILVER.jsonl --out DIR` or StudentClassifier.save().")
        cfg = _read_config(cfg_path)
        labels = cfg["labels"]
        saved_vocab = _config_vocab(cfg, cfg_path)
        if vocab is not None:
            _check_same_vocab(p, labels, vocab)
        weights = _checked_weights(p, cfg)
        student = cls._from_config(p, cfg_path, cfg, encoder)
        d, k = int(cfg["n_features_in"]), len(labels)
        student.head_, tensors = _load_head(student, weights, cfg_path, d, k)
        _restore_fitted(student, p, cfg, tensors, saved_vocab)
        return student

    @classmethod
    def _from_config(cls, p: Path, cfg_path: Path, cfg: dict[str, Any], encoder: Any) -> StudentClassifier:
        """An unfitted student with the saved params and the saved (or given) encoder."""
        known = set(cls._param_names())
        params = {k: v for k, v in cfg.get("params", {}).items() if k in known and k != "encoder"}
        spec = cfg.get("encoder")
        if encoder is None and cfg["input_kind"] == "text" and (spec or {}).get("name"):
            from zsl.models.encoders import check_encoder_name

            check_encoder_name(spec["name"], what=f"The student at {p} was trained with the encoder")
        student = cls(**params, encoder=encoder if encoder is not None else (spec or {}).get("name"))
        try:
            student._check_params()
        except (InputError, TypeError) as exc:
            raise InputError(f"{cfg_path}: the saved 'params' are invalid ({exc}). {_RETRAIN}") from None
        if encoder is not None:
            student._encoder = encoder if not isinstance(encoder, (str, os.PathLike)) else None
        student._encoder_kwargs = dict((spec or {}).get("kwargs") or {})
        if cfg["input_kind"] == "text" and spec is not None and spec.get("name") is None and encoder is None:
            raise InputError(f"The student at {p} was trained with an encoder object zsl cannot rebuild by name "
                             f"({spec.get('model_id')}). Fix: StudentClassifier.load(path, encoder=that_encoder).")
        return student


_RETRAIN = "Fix: restore the folder from a copy, or train the student again (zsl distill SILVER --out DIR)."


def _checked_targets(y: Any, vocab: LabelVocab | Sequence[str] | None) -> tuple[np.ndarray, LabelVocab]:
    """``y`` as a float32 ``(N, K)`` matrix of targets in [0, 1], and the vocabulary of its columns."""
    Y = np.asarray(y, dtype=np.float32)
    if Y.ndim != 2 or Y.shape[1] == 0:
        raise InputError(f"y must be an (N, K) matrix of targets; got shape {Y.shape}.")
    if not np.isfinite(Y).all() or Y.min() < 0 or Y.max() > 1:
        raise InputError("y must hold finite targets in [0, 1] (confidences or 0/1 labels). Fix: use "
                         "silver.confidence or silver.labels, or clip/normalise your scores first.")
    if vocab is None:
        vocab = LabelVocab([f"label_{j}" for j in range(Y.shape[1])])
    elif not isinstance(vocab, LabelVocab):
        vocab = LabelVocab(vocab)
    if len(vocab) != Y.shape[1]:
        raise InputError(f"y has {Y.shape[1]} columns but the vocabulary has {len(vocab)} labels.")
    return Y, vocab


def _check_same_vocab(p: Path, labels: list[str], vocab: LabelVocab | Sequence[str]) -> None:
    """Refuse a vocabulary other than the student's labels in their order, spelling out the difference."""
    given = list(vocab.labels if isinstance(vocab, LabelVocab) else vocab)
    diff = vocab_difference(labels, given, expected_name="the student", got_name="your vocabulary")
    if diff:
        raise VocabularyError(
            f"The student at {p} was trained on a different vocabulary ({len(labels)} labels): {diff}. Its "
            "output columns would not mean your labels. Fix: use the student's own labels (omit --labels / "
            "vocab=) or train a student for this vocabulary (zsl distill).")


def _checked_weights(p: Path, cfg: dict[str, Any]) -> Path:
    """The student's weights file, present and matching the sha256 recorded in its config."""
    weights = p / WEIGHTS_NAME
    if not weights.is_file():
        raise InputError(f"{p} has no {WEIGHTS_NAME}; the student folder is incomplete. Re-save or retrain it.")
    if cfg.get("weights_sha256") and sha256_file(weights) != cfg["weights_sha256"]:
        raise ModelIntegrityError(f"{weights} does not match the sha256 recorded in {CONFIG_NAME}; the file was "
                                  "changed or truncated. Re-save or retrain the student.")
    return weights


def _load_head(student: StudentClassifier, weights: Path, cfg_path: Path, d: int, k: int) -> tuple[Any, dict]:
    """The saved head (in eval mode) and every tensor of the weights file."""
    # every size config.json claims is checked against the weights' header before anything of that size exists
    tensors = _read_weights(weights, _tensor_shapes(student, d, k), cfg_path)
    head = student._build_head(d, k)
    state = {key[len("head."):]: t for key, t in tensors.items() if key.startswith("head.")}
    try:
        head.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"{weights} does not fit the configured head ({exc}).") from None
    head.eval()
    return head, tensors


def _restore_fitted(student: StudentClassifier, p: Path, cfg: dict[str, Any], tensors: dict,
                    vocab: LabelVocab) -> None:
    """Set a loaded student's fitted attributes (all but ``head_``) from its config and tensors."""
    student.feature_mean_ = tensors["feature_mean"].numpy()
    student.feature_scale_ = tensors["feature_scale"].numpy()
    student.vocab_ = vocab
    student.classes_ = np.asarray(cfg["labels"], dtype=object)
    student.n_features_in_ = int(cfg["n_features_in"])
    student.input_kind_ = cfg["input_kind"]
    thr = cfg.get("threshold", student.threshold)
    student.threshold_ = float(thr) if thr != "auto" else 0.5
    student.history_ = []
    student.refined_targets_ = None
    student.provenance_ = cfg.get("provenance") or {}
    student.n_train_ = (cfg.get("training") or {}).get("n_items")
    student.fit_seconds_ = (cfg.get("training") or {}).get("seconds") or 0.0
    student.path_ = p
    student.weights_sha256_ = cfg.get("weights_sha256")


def _has_student_config(p: Path) -> bool:
    """Does ``p/config.json`` carry the ``"zsl_student"`` marker that :meth:`StudentClassifier.save` writes?"""
    try:
        cfg = json.loads((p / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    marker = cfg.get("zsl_student") if isinstance(cfg, dict) else None
    return isinstance(marker, int) and not isinstance(marker, bool) and marker >= 1


def _check_replaceable(p: Path) -> None:
    """Refuse a save target that is not new, an empty folder or a student (marked ``config.json`` plus
    ``model.safetensors``): saving replaces the whole folder. Loading does not need this test."""
    here = Path.cwd().resolve()
    if p.name in ("", ".", "..") or (p.exists() and (p.resolve() == here or p.resolve() in here.parents)):
        raise InputError(f"--out {p} is the current folder (or holds it); a student is saved by replacing its whole "
                         f"folder, which cannot be the one you are in. Fix: name a new folder, e.g. --out student/.")
    if not p.exists():
        return
    if p.is_dir() and (not any(p.iterdir()) or (_has_student_config(p) and (p / WEIGHTS_NAME).is_file())):
        return
    if not p.is_dir():
        what = "a file"
    elif _has_student_config(p):
        what = f"a folder with a student's {CONFIG_NAME} but no {WEIGHTS_NAME}"
    elif (p / CONFIG_NAME).exists():
        what = f"a folder whose {CONFIG_NAME} zsl did not write"
    else:
        what = "a folder"
    raise InputError(f"--out {p} is {what}, not a zsl student folder; refusing to overwrite it (saving a student "
                     f"replaces the whole folder and everything in it). A folder is replaced only when it is empty or "
                     f"holds a zsl student ({CONFIG_NAME} with \"zsl_student\" and {WEIGHTS_NAME}). Fix: choose a new "
                     "or empty --out folder.")


def _read_config(cfg_path: Path) -> dict[str, Any]:
    """``config.json`` of a student, checked for the fields :meth:`StudentClassifier.load` needs."""
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{cfg_path} is not valid JSON ({exc}). {_RETRAIN}") from None
    if not isinstance(cfg, dict):
        raise InputError(f"{cfg_path} holds a JSON {type(cfg).__name__}, not a student config object. {_RETRAIN}")
    if cfg.get("zsl_student") != FORMAT_VERSION:
        raise InputError(f"{cfg_path} is not a zsl student config of format {FORMAT_VERSION} "
                         f"(found {cfg.get('zsl_student')!r}).")
    missing = [k for k in ("labels", "vocab_hash", "input_kind", "n_features_in") if k not in cfg]
    if missing:
        raise InputError(f"{cfg_path} lacks {', '.join(repr(k) for k in missing)}; the config is incomplete or was "
                         f"edited. {_RETRAIN}")
    labels, n = cfg["labels"], cfg["n_features_in"]
    if not isinstance(labels, list) or not labels or not all(isinstance(lab, str) for lab in labels):
        raise InputError(f"{cfg_path}: 'labels' must be a non-empty list of strings, got {labels!r:.60}. {_RETRAIN}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InputError(f"{cfg_path}: 'n_features_in' must be a positive integer, got {n!r:.40}. {_RETRAIN}")
    if cfg["input_kind"] not in ("text", "features"):
        raise InputError(f"{cfg_path}: unknown 'input_kind' {cfg['input_kind']!r:.40}. {_RETRAIN}")
    thr = cfg.get("threshold", "auto")
    # JSON allows NaN and Infinity: a NaN threshold would silently choose no label for any item
    if thr != "auto" and (isinstance(thr, bool) or not isinstance(thr, (int, float)) or not 0.0 < thr < 1.0):
        raise InputError(f"{cfg_path}: 'threshold' must be a probability between 0 and 1 (exclusive), got "
                         f"{thr!r:.40}. {_RETRAIN}")
    for key in ("params", "encoder", "training", "provenance"):
        if cfg.get(key) is not None and not isinstance(cfg[key], dict):
            raise InputError(f"{cfg_path}: {key!r} must be an object, got {type(cfg[key]).__name__}. {_RETRAIN}")
    return cfg


def _config_vocab(cfg: dict[str, Any], cfg_path: Path) -> LabelVocab:
    """The student's vocabulary as saved, verified against the recorded ``vocab_hash``.

    The hash covers the labels in column order: swapping two labels in the config would
    otherwise silently swap what the student's outputs mean.
    """
    try:
        vocab = LabelVocab(cfg["labels"], cfg.get("descriptions"), cfg.get("priors"), name=cfg.get("vocab_name") or "",
                           parents=cfg.get("parents"))
    except (VocabularyError, TypeError, ValueError) as exc:
        raise InputError(f"{cfg_path}: the saved vocabulary is invalid ({exc}) {_RETRAIN}") from None
    recorded = cfg["vocab_hash"]
    if vocab.hash != recorded:
        raise ModelIntegrityError(
            f"The labels in {cfg_path} do not match the vocabulary hash recorded when the student was trained "
            f"({recorded}, now {vocab.hash}): the config was edited (labels reordered, renamed, added or removed) or "
            f"corrupted, so the output columns would not mean these labels. {_RETRAIN}"
            + ("" if "priors" in cfg else " (A student saved by an older zsl whose vocabulary had priors or a "
                                          "hierarchy is refused too: its config did not keep them.)"))
    return vocab


def _tensor_shapes(student: StudentClassifier, d: int, k: int) -> dict[str, tuple[int, ...]]:
    """The tensors a student of these sizes saves, with their shapes (see :meth:`StudentClassifier._build_head`)."""
    shapes: dict[str, tuple[int, ...]] = {"feature_mean": (d,), "feature_scale": (d,)}
    if student.head == "linear":
        return {**shapes, "head.0.weight": (k, d), "head.0.bias": (k,)}
    h = int(student.hidden_size)
    return {**shapes, "head.0.weight": (h, d), "head.0.bias": (h,), "head.3.weight": (k, h), "head.3.bias": (k,)}


def _read_weights(weights: Path, expected: dict[str, tuple[int, ...]], cfg_path: Path) -> dict[str, Any]:
    """The student's tensors, after their names, shapes and dtype in the file's header match ``expected``.

    The header is read alone first: sizes edited in ``config.json`` (or weights of another
    student) are refused before any tensor or head is allocated, however large they claim to be.
    Non-finite weights, or a ``feature_scale`` that is not positive, are refused too: every score
    would be NaN or infinite.
    """
    from safetensors import SafetensorError, safe_open

    folder = weights.parent
    try:
        with safe_open(str(weights), framework="numpy") as fh:
            slices = {name: fh.get_slice(name) for name in fh.keys()}  # noqa: SIM118 - no __iter__; header only
            found = {name: (tuple(sl.get_shape()), sl.get_dtype()) for name, sl in slices.items()}
        missing = [name for name in expected if name not in found]
        if missing:
            raise InputError(f"{weights} lacks the tensor(s) {', '.join(missing)} that the student in {folder} needs; "
                             f"the weights are incomplete or were edited. {_RETRAIN}")
        extra = sorted(set(found) - set(expected))
        wrong = [f"{name} is {list(found[name][0])} in the weights but {list(shape)} by {cfg_path.name}"
                 for name, shape in expected.items() if found[name][0] != shape]
        if extra or wrong:
            raise InputError(f"The weights in {weights} do not fit the student described by {cfg_path} "
                             f"({'; '.join(wrong[:4]) or 'unexpected tensors ' + ', '.join(extra[:4])}): its sizes "
                             f"(n_features_in, params.hidden_size, labels) or its weights were edited. {_RETRAIN}")
        odd = [f"{name} ({dtype})" for name, (_, dtype) in found.items() if dtype != "F32"]
        if odd:
            raise InputError(f"{weights} holds tensors that are not float32: {', '.join(odd[:4])}. {_RETRAIN}")
        tensors = _safetensors().load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise InputError(f"Cannot read {weights} ({exc}). {_RETRAIN}") from None
    import torch

    bad = [name for name, t in tensors.items() if not bool(torch.isfinite(t).all())]
    if bad:
        raise InputError(f"{weights} holds NaN or infinite values in {', '.join(bad)}: every score of the student in "
                         f"{folder} would be NaN. {_RETRAIN}")
    if not bool((tensors["feature_scale"] > 0).all()):
        raise InputError(f"{weights}: feature_scale has {int((tensors['feature_scale'] <= 0).sum())} value(s) that are "
                         f"not positive (features are divided by it). {_RETRAIN}")
    return tensors


def _safetensors():
    try:
        import safetensors.torch as st_torch
    except ImportError:
        raise MissingDependencyError("safetensors", "Saving and loading a student", "pip install safetensors") from None
    return st_torch


class _threads:
    """Set torch's CPU thread count for a block and restore it afterwards."""

    def __init__(self, n: int | None):
        self.n = n
        self.prev: int | None = None

    def __enter__(self) -> None:
        if self.n is not None:
            import torch

            self.prev = torch.get_num_threads()
            if self.prev != self.n:
                torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        if self.prev is not None and self.n is not None and self.prev != self.n:
            import torch

            torch.set_num_threads(self.prev)


def folder_size(path: str | os.PathLike[str]) -> int:
    """Bytes on disk of every file below ``path`` (the student's size)."""
    p = Path(path)
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size


# -- file-level entry points for the CLI -----------------------------------------------------
def distill_file(silver_path: str | os.PathLike[str], out: str | os.PathLike[str], *,
                 vocab: LabelVocab | Sequence[str] | None = None, targets: str = "soft",
                 reviewed: str | os.PathLike[str] | None = None, **params: Any) -> dict[str, Any]:
    """Train a student on a silver-data file and save it (``zsl distill SILVER --out DIR``).

    Args:
        silver_path: ``.jsonl``/``.csv``/``.parquet`` written by :func:`zsl.silver.data.write_silver`.
        out: the student folder to write.
        vocab: only needed when the silver file cannot tell its label order.
        targets: ``"soft"`` or ``"hard"`` (see :meth:`StudentClassifier.fit_silver`).
        reviewed: a ``reviewed.jsonl`` from ``zsl review`` (or the run directory holding it):
            its decisions replace the silver labels of the items they name, with targets of
            exactly 1 and 0 (see :func:`zsl.silver.reviewed.override_silver`).
        **params: :class:`StudentClassifier` parameters (``loss="asl"``, ``refine=True``, ...).

    Returns:
        a summary: ``out``, ``n_items``, ``n_labels``, ``seconds``, ``size_bytes``,
        ``agreement`` (micro-F1 of the student's labels vs. the silver labels, on the
        training items), ``reviewed`` (items whose labels a person's decision replaced).
    """
    from zsl.evaluation.metrics import f1_scores
    from zsl.silver.data import read_silver

    _check_replaceable(Path(out))  # before the training, not after it
    silver = read_silver(silver_path, vocab=vocab)
    n_reviewed = 0
    if reviewed is not None:
        from zsl.silver.reviewed import override_silver, read_reviewed

        decisions = read_reviewed(reviewed, known_labels=silver.vocab.labels)
        silver, n_reviewed = override_silver(silver, decisions)
        if n_reviewed == 0:
            raise InputError(f"None of the {len(decisions)} decisions in {reviewed} names an item of {silver_path}. "
                             "Fix: pass the reviewed.jsonl of the run these silver labels come from.")
    if silver.texts is None:
        raise InputError(f"{silver_path} has no texts, so a text student cannot be trained on it. Export the silver "
                         "data with texts (make_silver(..., texts=...)).")
    from zsl.models.encoders import get_encoder

    encoder = params.pop("encoder", None)
    encoder = encoder if encoder is not None and not isinstance(encoder, (str, os.PathLike)) else get_encoder(encoder)
    feats = encoder.encode(silver.texts, show_progress=bool(params.get("show_progress", False)))  # once, reused
    student = StudentClassifier(encoder=encoder, **params).fit_silver(silver, targets=targets, features=feats)
    path = student.save(out)
    pred = student.predict(feats)
    return {"out": str(path), "n_items": len(silver), "n_labels": len(silver.vocab),
            "seconds": round(student.fit_seconds_, 3), "size_bytes": folder_size(path),
            "agreement": f1_scores(silver.labels, pred)["micro_f1"], "final_loss": student.history_[-1],
            "threshold": student.threshold_, "reviewed": n_reviewed}
