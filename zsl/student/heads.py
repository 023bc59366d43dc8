"""Labelled examples as evidence in embedding space, fused with zero-shot scores.

A few labelled examples per label say more about a label than its name does. Two ways to
use them, both on top of the zero-shot score ``z`` (retrieval, or the whole
Infer-Retrieve-Rank program), both chosen by cross-validation on the examples themselves:

* :class:`AnchoredHead` (``Tagger(evidence="head")``, the default): a one-vs-rest logistic
  head on the embeddings, anchored on the zero-shot score,

      P(j | x) = sigmoid(a * z_j(x) + c + b_j + w_j . x)

  ``a, c`` are shared (a label with no example keeps its zero-shot ranking); ``b_j, w_j`` exist
  only for labels with examples and pay an L2 penalty, so their weight grows with the number
  of examples. Measured best of the three on GoEmotions and Reuters (BENCHMARKS.md).

* :class:`ExampleEvidence` (``"knn"`` / ``"prototype"``): an additive bonus

      s_j(x) = z_j(x) + alpha * n_j / (n_j + kappa) * e_j(x)

  where ``e_j`` is the similarity-weighted share of ``j`` among the nearest examples
  (``"knn"``) or the cosine to the mean of ``j``'s examples (``"prototype"``), each minus its
  background level, and ``n_j`` the number of examples of ``j``.

Label sets come from thresholds calibrated on the examples' out-of-fold scores
(:func:`fit_thresholds`: per label, shrunk toward a global threshold for labels with few
examples), so ``predict`` is not a fixed top-k.

Example:
    >>> import numpy as np
    >>> emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> y = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]])
    >>> zero = np.zeros((4, 3))
    >>> ev = ExampleEvidence(method="prototype", alpha=1.0, kappa=1.0).fit(emb, y, zero)
    >>> s = ev.fuse(np.zeros((1, 3)), np.array([[0.95, 0.05]]))
    >>> int(np.argmax(s)), float(s[0, 2])        # label 0 wins; label 2 has no example: unchanged
    (0, 0.0)
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from zsl.base import ParamsMixin
from zsl.errors import InputError

__all__ = [
    "ALPHAS",
    "KAPPAS",
    "LAMBDAS",
    "AnchoredHead",
    "ExampleEvidence",
    "assign_folds",
    "decode_array",
    "encode_array",
    "evidence_from_dict",
    "fit_thresholds",
    "make_evidence",
    "thresholds_from_dict",
    "thresholds_to_dict",
    "unit_rows",
]

ALPHAS: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
KAPPAS: tuple[float, ...] = (1.0, 4.0, 16.0)


def unit_rows(x: Any) -> np.ndarray:
    """Rows scaled to unit length (float32; zero rows stay zero).

    Example:
        >>> unit_rows(np.array([[3.0, 4.0]])).tolist()
        [[0.6000000238418579, 0.800000011920929]]
    """
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def encode_array(a: np.ndarray) -> dict[str, Any]:
    """A float32 array as JSON-safe data (exact: base64 of the raw bytes).

    Example:
        >>> a = np.arange(6, dtype=np.float32).reshape(2, 3)
        >>> bool((decode_array(encode_array(a)) == a).all())
        True
    """
    a = np.ascontiguousarray(a, dtype=np.float32)
    return {"shape": list(a.shape), "float32_b64": base64.b64encode(a.tobytes()).decode("ascii")}


def decode_array(d: dict[str, Any]) -> np.ndarray:
    """The inverse of :func:`encode_array`."""
    try:
        raw = base64.b64decode(d["float32_b64"])
        return np.frombuffer(raw, dtype=np.float32).reshape(d["shape"]).copy()
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"A saved array is damaged ({type(exc).__name__}: {exc}); save the tagger again.") from None


def _map_over_items(y: np.ndarray, s: np.ndarray) -> float:
    """Mean over items of the average precision of their gold labels (items without labels skipped)."""
    from zsl.evaluation.metrics import mean_average_precision

    keep = y.any(axis=1)
    return mean_average_precision(y[keep], s[keep], average="item") if keep.any() else 0.0


def _check_fit_input(emb: Any, y: Any, zero_shot: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit-length embeddings ``(n, d)``, 0/1 labels ``(n, K)`` and zero-shot scores ``(n, K)``, checked."""
    emb = unit_rows(np.asarray(emb, dtype=np.float32))
    y = (np.asarray(y) > 0).astype(np.float32)
    z = np.asarray(zero_shot, dtype=np.float32)
    if emb.ndim != 2 or y.ndim != 2 or len(emb) != len(y) or z.shape != y.shape:
        raise InputError(f"fit expects emb (n, d), y (n, K) and zero_shot (n, K); got {emb.shape}, {y.shape}, "
                         f"{z.shape}")
    if not len(y):
        raise InputError("fit needs at least one labelled example")
    return emb, y, z


def assign_folds(y: np.ndarray, n_folds: int, seed: int) -> np.ndarray | None:
    """A fold id per example (round-robin within each example's rarest label), or None with < 2 examples."""
    n = len(y)
    n_folds = min(n_folds, n)
    if n_folds < 2:
        return None
    rng = np.random.default_rng(seed)
    counts = y.sum(axis=0)
    # stratify on each example's rarest label so a label's examples spread over the folds
    key = np.array([np.flatnonzero(r)[np.argmin(counts[np.flatnonzero(r)])] if r.any() else -1 for r in y])
    order = np.lexsort((rng.random(n), key))
    folds = np.empty(n, dtype=np.int64)
    folds[order] = np.arange(n) % n_folds
    return folds


class ExampleEvidence(ParamsMixin):
    """Per-label evidence from labelled examples' embeddings, fused with zero-shot scores.

    A scikit-learn-style estimator: parameters in ``__init__``, :meth:`fit` returns ``self``,
    fitted attributes end in ``_``. See the module docstring for the formula.

    Args:
        method: ``"knn"`` or ``"prototype"``.
        alpha: weight of the evidence; None: chosen by cross-validation from :data:`ALPHAS`.
        kappa: examples at which a label's evidence gets half its weight; None: chosen by
            cross-validation from :data:`KAPPAS`.
        tau: softmax temperature of ``"knn"`` over cosine similarities.
        n_folds: folds of the cross-validation (fewer when there are fewer examples).
        random_state: seed of the fold assignment.

    Attributes:
        alpha_, kappa_: the weights used.
        counts_: ``(K,)`` examples per label.
        cv_table_: ``[{"alpha", "kappa", "map"}]`` for every setting tried (empty when both were given).
        oof_scores_: ``(n, K)`` out-of-fold fused scores of the examples at the chosen setting
            (what thresholds are calibrated on), or None when there was nothing to fold.
    """

    def __init__(self, method: str = "knn", *, alpha: float | None = None, kappa: float | None = None,
                 tau: float = 0.05, n_folds: int = 5, random_state: int = 0):
        self.method = method
        self.alpha = alpha
        self.kappa = kappa
        self.tau = tau
        self.n_folds = n_folds
        self.random_state = random_state

    # -- evidence from one set of examples -------------------------------------------------
    def _state(self, emb: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        counts = y.sum(axis=0)
        state = {"emb": emb, "y": y, "counts": counts}
        if self.method == "prototype":
            has = counts > 0
            proto = np.zeros((y.shape[1], emb.shape[1]), dtype=np.float32)
            proto[has] = (y[:, has].T @ emb) / counts[has, None]
            proto = unit_rows(proto) * has[:, None]
            sim = emb @ proto.T  # (n, K)
            neg = (1 - y)
            n_neg = neg.sum(axis=0)
            background = np.where(n_neg > 0, (sim * neg).sum(axis=0) / np.maximum(n_neg, 1), 0.0)
            state.update(proto=proto, background=background.astype(np.float32))
        else:
            state["background"] = (counts / max(len(y), 1)).astype(np.float32)
        return state

    def _evidence(self, state: dict[str, np.ndarray], q: np.ndarray) -> np.ndarray:
        counts = state["counts"]
        if self.method == "prototype":
            e = q @ state["proto"].T - state["background"][None, :]
        else:
            sim = q @ state["emb"].T  # (m, n)
            w = np.exp((sim - sim.max(axis=1, keepdims=True)) / self.tau)
            w /= w.sum(axis=1, keepdims=True)
            e = w @ state["y"] - state["background"][None, :]
        e[:, counts == 0] = 0.0
        return e.astype(np.float32)

    @staticmethod
    def _weights(counts: np.ndarray, alpha: float, kappa: float) -> np.ndarray:
        return (alpha * counts / (counts + kappa)).astype(np.float32)

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, emb: Any, y: Any, zero_shot: Any) -> ExampleEvidence:
        """Learn from examples: their embeddings ``(n, d)``, labels ``(n, K)`` 0/1 and zero-shot scores ``(n, K)``.

        Returns:
            self.
        """
        if self.method not in ("knn", "prototype"):
            raise InputError(f"method must be 'knn' or 'prototype', got {self.method!r}")
        if self.tau <= 0:
            raise InputError(f"tau must be > 0, got {self.tau}")
        emb, y, z = _check_fit_input(emb, y, zero_shot)
        self.counts_ = y.sum(axis=0).astype(np.int64)
        self.n_examples_ = len(y)
        self.state_ = self._state(emb, y)
        alphas = ALPHAS if self.alpha is None else (float(self.alpha),)
        kappas = KAPPAS if self.kappa is None else (float(self.kappa),)
        folds = self._folds(y)
        self.cv_table_: list[dict[str, float]] = []
        self.oof_scores_ = None
        if folds is None:  # too few examples to hold any out: the given (or middle) setting
            self.alpha_ = float(self.alpha if self.alpha is not None else 1.0)
            self.kappa_ = float(self.kappa if self.kappa is not None else 4.0)
            return self
        oof_e = np.zeros_like(z)
        oof_counts = np.zeros_like(z)
        for f in range(folds.max() + 1):
            test, train = folds == f, folds != f
            st = self._state(emb[train], y[train])
            oof_e[test] = self._evidence(st, emb[test])
            oof_counts[test] = st["counts"][None, :]
        best = None
        for a in alphas:
            for k in kappas:
                s = z + a * oof_counts / (oof_counts + k) * oof_e
                m = _map_over_items(y, s)
                self.cv_table_.append({"alpha": a, "kappa": k, "map": round(m, 5)})
                # ties: the smaller alpha (closer to zero-shot), then the larger kappa (more cautious)
                if best is None or m > best[0] + 1e-9:
                    best = (m, a, k)
                if a == 0.0:
                    break  # kappa does not matter without evidence
        assert best is not None
        _, self.alpha_, self.kappa_ = best
        self.oof_scores_ = z + self.alpha_ * oof_counts / (oof_counts + self.kappa_) * oof_e
        return self

    def _folds(self, y: np.ndarray) -> np.ndarray | None:
        return assign_folds(y, self.n_folds, self.random_state)

    # -- use ---------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "state_"):
            raise InputError("This ExampleEvidence is not fitted yet. Fix: call fit(emb, y, zero_shot) first.")

    def evidence(self, emb: Any) -> np.ndarray:
        """Weighted evidence ``(N, K)`` for embeddings ``(N, d)`` (0 for labels without examples)."""
        self._check_fitted()
        q = unit_rows(np.asarray(emb, dtype=np.float32))
        if q.ndim != 2 or q.shape[1] != self.state_["emb"].shape[1]:
            raise InputError(f"Expected embeddings (N, {self.state_['emb'].shape[1]}), got {q.shape}: the encoder "
                             "must be the one the examples were embedded with.")
        return self._evidence(self.state_, q) * self._weights(self.counts_, self.alpha_, self.kappa_)[None, :]

    def fuse(self, zero_shot: Any, emb: Any) -> np.ndarray:
        """Zero-shot scores ``(N, K)`` plus the examples' weighted evidence for the same items."""
        z = np.asarray(zero_shot, dtype=np.float32)
        return z + self.evidence(emb)

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fitted state as JSON-safe data (embeddings exact, as base64 float32)."""
        self._check_fitted()
        return {"method": self.method, "params": self.get_params(), "alpha": self.alpha_, "kappa": self.kappa_,
                "emb": encode_array(self.state_["emb"]), "y": encode_array(self.state_["y"]),
                "cv_table": self.cv_table_}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExampleEvidence:
        """Rebuild a fitted estimator from :meth:`to_dict` (no refit: identical outputs)."""
        try:
            ev = cls(**d["params"])
            emb, y = decode_array(d["emb"]), decode_array(d["y"])
            ev.alpha_, ev.kappa_ = float(d["alpha"]), float(d["kappa"])
        except (KeyError, TypeError) as exc:
            raise InputError(f"The saved example evidence is incomplete ({type(exc).__name__}: {exc}); save the "
                             "tagger again.") from None
        if not (np.isfinite(emb).all() and np.isfinite(y).all() and np.isfinite([ev.alpha_, ev.kappa_]).all()):
            raise InputError("The saved example evidence holds NaN or infinite values (embeddings, labels, alpha or "
                             "kappa; the file was damaged or edited): every score would be NaN.")
        if emb.ndim != 2 or y.ndim != 2 or len(emb) != len(y):
            raise InputError(f"The saved example evidence has embeddings of shape {list(emb.shape)} for labels of "
                             f"shape {list(y.shape)}: one row per example each (the file was damaged or edited).")
        ev.counts_ = y.sum(axis=0).astype(np.int64)
        ev.n_examples_ = len(y)
        ev.state_ = ev._state(emb, y)
        ev.cv_table_ = list(d.get("cv_table") or [])
        ev.oof_scores_ = None
        return ev


LAMBDAS: tuple[float, ...] = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4)


class AnchoredHead(ParamsMixin):
    """A one-vs-rest logistic head on the embeddings, anchored on the zero-shot score.

    For label ``j`` and a text with embedding ``x`` and zero-shot score ``z_j``:

        P(j | x) = sigmoid(a * z_j + c + b_j + w_j . x)

    ``a`` and ``c`` are shared by all labels: they turn zero-shot scores into probabilities, so a
    label with no example keeps its zero-shot ranking (``b_j = 0``, ``w_j = 0``). ``b_j`` and
    ``w_j`` exist only for labels with examples and pay an L2 penalty ``lam``: with one or two
    examples they barely move the zero-shot score, with many they dominate it. ``lam`` is chosen
    by cross-validation on the examples (mean average precision of the out-of-fold
    probabilities over each example's labels) from :data:`LAMBDAS`. Fitted with L-BFGS on the
    mean binary cross-entropy over (example, label-with-examples) pairs.

    Args:
        lam: the L2 penalty; None: chosen by cross-validation.
        n_folds: folds of the cross-validation (fewer with fewer examples).
        max_iter: L-BFGS iterations per fit.
        random_state: seed of the fold assignment.

    Attributes:
        lam_: the penalty used.
        a_, c_: the shared calibration of the zero-shot score.
        labels_: ``(E,)`` indices of the labels with examples; ``b_`` ``(E,)`` and ``W_`` ``(E, d)`` their terms.
        counts_: ``(K,)`` examples per label.
        cv_table_: ``[{"lam", "map"}]`` per value tried; oof_scores_: out-of-fold probabilities ``(n, K)`` or None.

    Example:
        >>> import numpy as np
        >>> emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> y = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]])
        >>> head = AnchoredHead(lam=1e-3).fit(emb, y, np.zeros((4, 3)))
        >>> p = head.fuse(np.zeros((1, 3)), np.array([[0.95, 0.05]]))
        >>> int(np.argmax(p)), bool(0 < p[0, 2] < 1)
        (0, True)
    """

    method = "head"

    def __init__(self, *, lam: float | None = None, n_folds: int = 5, max_iter: int = 300, random_state: int = 0):
        self.lam = lam
        self.n_folds = n_folds
        self.max_iter = max_iter
        self.random_state = random_state

    @staticmethod
    def _fit_path(x: np.ndarray, z: np.ndarray, y: np.ndarray, lams: tuple[float, ...],
                  max_iter: int) -> list[dict[str, np.ndarray]]:
        """The head fitted at each penalty in ``lams`` (largest first, each fit warm-started from the last).

        The optimal ``w_j`` lie in the span of the examples' embeddings, so the fit runs on their
        ``r = min(n, d)`` principal coordinates and maps back: the same optimum, fewer parameters.
        """
        from scipy.optimize import minimize
        from scipy.special import expit, log_expit

        n = len(x)
        labels = np.flatnonzero(y.sum(axis=0) > 0)
        ye, ze = y[:, labels].astype(np.float64), z[:, labels].astype(np.float64)
        _, sv, vt = np.linalg.svd(x.astype(np.float64), full_matrices=False)
        basis = vt[sv > 1e-8 * max(sv.max(initial=0.0), 1e-12)]  # (r, d)
        xr = x.astype(np.float64) @ basis.T  # (n, r)
        e, r = len(labels), len(basis)

        def loss(theta: np.ndarray, lam: float) -> tuple[float, np.ndarray]:
            a, c, b, w = theta[0], theta[1], theta[2:2 + e], theta[2 + e:].reshape(e, r)
            logit = a * ze + c + b[None, :] + xr @ w.T
            value = -(ye * log_expit(logit) + (1 - ye) * log_expit(-logit)).sum() / n
            value += 0.5 * lam * ((w * w).sum() + (b * b).sum())
            g = (expit(logit) - ye) / n
            grad = np.concatenate([[(g * ze).sum(), g.sum()], g.sum(axis=0) + lam * b, (g.T @ xr + lam * w).ravel()])
            return float(value), grad

        theta = np.zeros(2 + e + e * r)
        theta[0] = 1.0
        out = []
        for lam in sorted(lams, reverse=True):
            theta = minimize(loss, theta, args=(lam,), jac=True, method="L-BFGS-B",
                             options={"maxiter": max_iter}).x
            out.append({"lam": lam, "a": np.float64(theta[0]), "c": np.float64(theta[1]), "labels": labels,
                        "b": theta[2:2 + e].copy(), "W": theta[2 + e:].reshape(e, r) @ basis})
        return out

    @staticmethod
    def _apply(p: dict[str, np.ndarray], x: np.ndarray, z: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        logit = float(p["a"]) * z.astype(np.float64) + float(p["c"])
        if len(p["labels"]):
            logit[:, p["labels"]] += p["b"][None, :] + x.astype(np.float64) @ p["W"].T
        return expit(logit).astype(np.float32)

    def fit(self, emb: Any, y: Any, zero_shot: Any, *, soft: bool = False) -> AnchoredHead:
        """Learn from examples: embeddings ``(n, d)``, labels ``(n, K)`` 0/1, zero-shot scores ``(n, K)``.

        With ``soft=True``, ``y`` holds targets in [0, 1] (a teacher's probabilities, say) and
        the cross-entropy is taken against them as they are; every label with a target above 0
        gets its own terms. The penalty must then be given (``lam``): the cross-validation
        scores 0/1 labels. A way to choose it: fit the label sets first and reuse their ``lam_``.

        Runs with one BLAS thread: the matrices are small, and on a busy 2-core machine OpenBLAS's
        spinning threads made this fit about 20 times slower (1,000 items x 384 dimensions x 28
        labels with the lambda search, timed by hand beside an LLM job; issue #16's notes).
        """
        import scipy.optimize  # noqa: F401 - loaded before the limit, so that its BLAS is limited too
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return self._fit(emb, y, zero_shot, soft)

    def _fit(self, emb: Any, y: Any, zero_shot: Any, soft: bool = False) -> AnchoredHead:
        targets = np.asarray(y, dtype=np.float32) if soft else None
        emb, y, z = _check_fit_input(emb, y, zero_shot)
        if self.lam is not None and not self.lam > 0:
            raise InputError(f"lam must be > 0, got {self.lam}")
        if targets is not None:
            if self.lam is None:
                raise InputError("soft targets need a fixed penalty: the cross-validation scores 0/1 labels. Fix: "
                                 "AnchoredHead(lam=...), e.g. the lam_ of a head fitted on the label sets.")
            if not np.all(np.isfinite(targets)) or targets.min(initial=0.0) < 0 or targets.max(initial=0.0) > 1:
                raise InputError("soft targets must lie in [0, 1] (probabilities). Fix: rescale the teacher's "
                                 "scores, e.g. a softmax over each row.")
            y = targets
        self.counts_ = np.rint(y.sum(axis=0)).astype(np.int64)  # soft targets: their rounded sum
        self.n_examples_ = len(y)
        lams = LAMBDAS if self.lam is None else (float(self.lam),)
        folds = assign_folds(y, self.n_folds, self.random_state) if self.lam is None else None
        self.cv_table_: list[dict[str, float]] = []
        self.oof_scores_ = None
        best_lam = lams[len(lams) // 2] if self.lam is None else float(self.lam)
        if folds is not None:
            oofs = {lam: np.zeros(y.shape, dtype=np.float32) for lam in lams}
            for f in range(folds.max() + 1):
                test, train = folds == f, folds != f
                for p in self._fit_path(emb[train], z[train], y[train], lams, self.max_iter):
                    oofs[p["lam"]][test] = self._apply(p, emb[test], z[test])
            best = None
            for lam in sorted(lams, reverse=True):  # ties: the larger penalty
                m = _map_over_items(y, oofs[lam])
                self.cv_table_.append({"lam": lam, "map": round(m, 5)})
                if best is None or m > best[0] + 1e-9:
                    best = (m, lam)
            assert best is not None
            best_lam = best[1]
            self.oof_scores_ = oofs[best_lam]
        self.lam_ = best_lam
        path = [lam for lam in sorted(lams, reverse=True) if lam >= best_lam]  # warm start down to the choice
        p = self._fit_path(emb, z, y, tuple(path), self.max_iter)[-1]
        # kept at float32 precision, as saved, so a reloaded head gives identical outputs
        self.a_, self.c_, self.labels_ = float(p["a"]), float(p["c"]), p["labels"]
        self.b_ = p["b"].astype(np.float32).astype(np.float64)
        self.W_ = p["W"].astype(np.float32).astype(np.float64)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "W_"):
            raise InputError("This AnchoredHead is not fitted yet. Fix: call fit(emb, y, zero_shot) first.")

    def fuse(self, zero_shot: Any, emb: Any) -> np.ndarray:
        """Probabilities ``(N, K)`` from zero-shot scores ``(N, K)`` and embeddings ``(N, d)`` of the same items."""
        self._check_fitted()
        q = unit_rows(np.asarray(emb, dtype=np.float32))
        if q.ndim != 2 or q.shape[1] != self.W_.shape[1]:
            raise InputError(f"Expected embeddings (N, {self.W_.shape[1]}), got {q.shape}: the encoder must be the "
                             "one the examples were embedded with.")
        params = {"a": self.a_, "c": self.c_, "labels": self.labels_, "b": self.b_, "W": self.W_}
        return self._apply(params, q, np.asarray(zero_shot, dtype=np.float32))

    def to_dict(self) -> dict[str, Any]:
        """The fitted head as JSON-safe data (weights exact, as base64 float32)."""
        self._check_fitted()
        return {"method": "head", "params": self.get_params(), "lam": self.lam_, "a": self.a_, "c": self.c_,
                "labels": [int(j) for j in self.labels_], "b": encode_array(self.b_), "W": encode_array(self.W_),
                "counts": [int(v) for v in self.counts_], "n_examples": self.n_examples_, "cv_table": self.cv_table_}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnchoredHead:
        """Rebuild a fitted head from :meth:`to_dict` (no refit)."""
        try:
            head = cls(**d["params"])
            head.lam_, head.a_, head.c_ = float(d["lam"]), float(d["a"]), float(d["c"])
            head.labels_ = np.asarray(d["labels"], dtype=np.int64)
            head.b_ = decode_array(d["b"]).astype(np.float64)
            head.W_ = decode_array(d["W"]).astype(np.float64)
            head.counts_ = np.asarray(d["counts"], dtype=np.int64)
            head.n_examples_ = int(d["n_examples"])
            labels = d["labels"]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"The saved example head is incomplete ({type(exc).__name__}: {exc}); save the tagger "
                             "again.") from None
        _check_saved_head(head, labels)
        head.cv_table_ = list(d.get("cv_table") or [])
        head.oof_scores_ = None
        return head


def _check_saved_head(head: AnchoredHead, labels: Any) -> None:
    """Refuse a saved head whose label indices or weights cannot be applied to its vocabulary.

    ``labels`` (the file's list) must name each label with examples once, by its column
    ``0 <= j < K`` (``K = len(counts)``), one bias and one weight row each; every number must be
    finite, or each item would score NaN.
    """
    k, why = len(head.counts_), "(the file was damaged or edited)"
    if not isinstance(labels, list) or not all(isinstance(j, int) and not isinstance(j, bool) for j in labels):
        raise InputError(f"The saved example head's 'labels' must be a list of label indices, got {labels!r:.60} {why}.")
    outside = [j for j in labels if not 0 <= j < k]
    if outside:
        raise InputError(f"The saved example head names label indices {outside[:5]} outside the vocabulary's columns "
                         f"0..{k - 1} {why}.")
    repeated = sorted({j for j in labels if labels.count(j) > 1})
    if repeated:
        raise InputError(f"The saved example head names label indices {repeated[:5]} more than once {why}.")
    if head.b_.shape != (len(labels),) or head.W_.ndim != 2 or head.W_.shape[0] != len(labels):
        raise InputError(f"The saved example head has {len(labels)} label indices but biases of shape "
                         f"{list(head.b_.shape)} and weights of shape {list(head.W_.shape)} {why}.")
    values = {"a": head.a_, "c": head.c_, "lam": head.lam_, "b": head.b_, "W": head.W_}
    bad = [name for name, v in values.items() if not np.isfinite(v).all()]
    if bad:
        raise InputError(f"The saved example head holds NaN or infinite values in {', '.join(bad)} {why}: every "
                         "score would be NaN.")


def make_evidence(method: str, random_state: int = 0):
    """The estimator behind ``Tagger(evidence=method)``: ``"head"``, ``"knn"`` or ``"prototype"``."""
    if method == "head":
        return AnchoredHead(random_state=random_state)
    if method in ("knn", "prototype"):
        return ExampleEvidence(method, random_state=random_state)
    raise InputError(f"evidence must be 'head', 'knn', 'prototype' or None, got {method!r}")


def evidence_from_dict(d: dict[str, Any]):
    """Rebuild what :func:`make_evidence` fitted from its ``to_dict()``."""
    if isinstance(d, dict) and d.get("method") == "head":
        return AnchoredHead.from_dict(d)
    return ExampleEvidence.from_dict(d)


def fit_thresholds(scores: np.ndarray, y: np.ndarray, *, shrinkage: float = 5.0):
    """Per-label thresholds on (out-of-fold) scores of labelled examples, shrunk toward the global
    micro-F1-best threshold by ``shrinkage`` pseudo-examples; every item keeps at least one label
    when every example has one.

    Returns:
        a fitted :class:`zsl.scoring.PerLabelThreshold`.
    """
    from zsl.scoring import PerLabelThreshold

    y = (np.asarray(y) > 0).astype(np.uint8)
    min_labels = 1 if y.any(axis=1).all() else 0
    return PerLabelThreshold(shrinkage=shrinkage, min_labels=min_labels).fit(scores, y)


def thresholds_to_dict(rule) -> dict[str, Any]:
    """A fitted :class:`~zsl.scoring.PerLabelThreshold` as exact JSON-safe data."""
    return {"params": rule.get_params(), "thresholds": encode_array(rule.thresholds_),
            "global_threshold": float(rule.global_threshold_), "support": [int(v) for v in rule.support_],
            "temperature": float(rule.temperature_)}


def thresholds_from_dict(d: dict[str, Any]):
    """Rebuild the rule saved by :func:`thresholds_to_dict` (no refit)."""
    from zsl.scoring import PerLabelThreshold

    try:
        rule = PerLabelThreshold(**d["params"])
        rule.thresholds_ = decode_array(d["thresholds"]).astype(np.float64)
        rule.global_threshold_ = float(d["global_threshold"])
        rule.support_ = np.asarray(d["support"], dtype=np.int64)
        rule.temperature_ = float(d["temperature"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"The saved thresholds are incomplete ({type(exc).__name__}: {exc}); save the tagger "
                         "again.") from None
    numbers = np.append(rule.thresholds_, [rule.global_threshold_, rule.temperature_])
    if rule.thresholds_.ndim != 1 or not np.isfinite(numbers).all() or not rule.temperature_ > 0:
        raise InputError("The saved thresholds must be finite numbers, one per label, with a positive temperature; "
                         "they hold NaN, infinity or another shape (a NaN threshold chooses no label, silently; the "
                         "file was damaged or edited).")
    if isinstance(rule.min_labels, bool) or not isinstance(rule.min_labels, int) or rule.min_labels < 0:
        raise InputError(f"The saved thresholds' min_labels must be an integer >= 0, got {rule.min_labels!r:.40} "
                         "(the file was damaged or edited).")
    rule.raw_thresholds_ = np.full(len(rule.thresholds_), np.nan)
    rule.n_labels_ = len(rule.thresholds_)
    return rule
