"""Budgeted labelling: the LLM labels the items where it pays, a student labels the rest.

The full Infer-Retrieve-Rank program costs seconds per item on a laptop CPU; retrieval alone
costs milliseconds. With a budget of N LLM items (or a percentage), a run goes:

1. **Cheap pass**: every item is embedded and scored by retrieval (batched).
2. **Rounds** (``rounds``, default 4, of equal size and at least ``min_round`` = 5 items;
   fewer rounds on a small budget): choose items for the LLM, label them
   with the full program (the *teacher*), train the *student* on what the teacher said, and
   let the student score every item.

   * ``selection="active"`` (the default): the first round takes *typical* items (k-means on
     the item embeddings, the item nearest each centre), so the student sees the whole space;
     later rounds take the items the student is least sure of (the smallest gap between its
     k-th and (k+1)-th label) and spread them out (k-means over ``pool_factor`` times as many
     uncertain items, the least sure of each cluster).
   * ``selection="random"``: a seeded random choice of the same size (the baseline).
3. **Rows**: an item the LLM labelled keeps the teacher's row; every other item gets the
   student's scores. Each row says where it came from: ``"source": "llm" | "student" |
   "retrieval"`` (retrieval when no student could be trained: a budget of 0 or 1 item, or a
   teacher that has chosen a single label so far, which gives the student nothing to contrast).

The student is an :class:`~zsl.student.heads.AnchoredHead`: a logistic head on the embeddings,
anchored on the retrieval score, trained on the teacher's label sets (its ``k`` best labels,
or the labels above its thresholds for a program fitted with ``zsl fit``). Labels the teacher
never chose keep their retrieval ranking. A student is used only if it predicts the teacher
better than retrieval does, out of fold on the teacher's items (mAP over items); otherwise the
rest keeps its retrieval scores (``source: "retrieval"``) and the round's note says why.

**Self-training** (``self_train``, default 0.5): a student that passed that check labels the
items the LLM has not seen; the surest ``self_train`` share of them (largest
:func:`student_margin`, at most :data:`MAX_PSEUDO` items) join the teacher's items with the
student's own ``k`` best labels, and the head is fitted again on both, with the penalty
cross-validated on the teacher's items alone. On a Reuters-21578 slice this lifted the final
labels of a 10% budget from 91% to about 100% of the all-LLM labels' micro-F1; on GoEmotions,
whose teacher is weak, it changed little (``python -m benchmarks.budget``). ``0`` turns it off.

**Photos** take a budget only with a vision-language model (``lm``, a VLM behind LiteLLM): the VLM
labels the budget's share (Infer, retrieval, Rank, fused with the global-local scores, as
``zsl label --lm`` does), and the student learns from its labels on the image's embedding (the
backbone's whole-image embedding), anchored on the global-local scores, which are the cheap pass.
Without a VLM the teacher would be the image model itself, whose global-local scores cost about
what the cheap pass does, so a student would save nothing: :func:`budget_run` refuses that. A
photo's answers are keyed on the sha256 of its file's bytes, not only its path: a changed photo is
asked again, and an unreadable one is reported in ``errors.jsonl`` and left out.

LLM results are the expensive part and are never lost nor paid twice: each one is appended to
``teacher.jsonl`` in the run directory and flushed to disk before the next items are asked (one
at a time, or ``concurrency`` at a time for a remote LLM). After Ctrl-C, a crash or ``kill -9``,
the same command reads them back, makes the same choices (they are seeded and depend only on the
teacher's answers) and goes on where it stopped. Raising the budget and rerunning labels only the
extra items. Each record is keyed on what produced it: the item's id and text, the LLM and the
program's settings, and the vocabulary. So an appended or edited item voids no other answer, and
``--fresh`` recomputes everything else but reuses every answer still valid (delete
``teacher.jsonl`` to pay for the LLM again). An item that failed on a transient error (rate limit,
time-out, 5xx) after its retries is recorded as ``"retryable"``: the run exits 3 (like a plain run)
and the same command, with or without ``--fresh``, asks the LLM again for just those items. A line
of ``teacher.jsonl`` that cannot be used is skipped with a warning naming it; only a torn last line
(a stop mid-write) is cut.

Example (retrieval-only "teacher" to keep it quick; a real run uses the LLM):
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> emb = rng.normal(size=(40, 8)).astype(np.float32)
    >>> cheap = rng.normal(size=(40, 3)).astype(np.float32)
    >>> gold = np.abs(emb[:, :3]).argmax(axis=1)
    >>> teach = lambda idx: {i: [int(gold[i])] for i in idx}
    >>> res = budget_loop(emb, cheap, teach, n_llm=8, k=1, rounds=2)
    >>> len(res.llm_items), sorted(set(res.source))
    (8, ['llm', 'student'])
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zsl.data.files import open_private, read_private
from zsl.errors import InputError
from zsl.util.retry import Skipped

__all__ = ["MAX_PSEUDO", "SELECTIONS", "SELF_TRAIN", "TEACHER", "BudgetResult", "BudgetSummary", "budget_loop",
           "budget_run", "parse_budget", "round_sizes", "select_random", "select_typical", "select_uncertain",
           "student_margin"]

SELECTIONS = ("active", "random")
SELF_TRAIN = 0.5  # share of the items the LLM did not see that the student labels for its own refit
MAX_PSEUDO = 5000  # at most this many of them (one more fit of the head, at a fixed penalty)
TEACHER = "teacher.jsonl"
_PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*")


def parse_budget(budget: int | str, n_items: int) -> int:
    """The number of LLM items a budget means for ``n_items`` items.

    ``budget`` is a count (``250``, ``"250"``) or a percentage of the items (``"10%"``,
    rounded up). A budget above the number of items means all of them.

    Example:
        >>> parse_budget("10%", 1000), parse_budget(25, 1000), parse_budget("0", 7), parse_budget(50, 7)
        (100, 25, 0, 7)
    """
    fix = "Fix: give a number of items (--budget 200) or a percentage of the input (--budget 10%)."
    if isinstance(budget, bool):
        raise InputError(f"budget must be a number of items or a percentage, got {budget!r}. {fix}")
    if isinstance(budget, str):
        m = _PERCENT.fullmatch(budget)
        if m:
            pct = float(m.group(1))
            if pct > 100:
                raise InputError(f"budget {budget!r} is more than 100% of the input. {fix}")
            return min(n_items, math.ceil(pct / 100 * n_items - 1e-9))
        try:
            budget = int(budget.strip())
        except ValueError:
            raise InputError(f"budget {budget!r} is neither a number of items nor a percentage. {fix}") from None
    if isinstance(budget, float):
        if not budget.is_integer():
            raise InputError(f"budget {budget!r} is not a whole number of items; write a percentage as '10%'. {fix}")
        budget = int(budget)
    if not isinstance(budget, int | np.integer):
        raise InputError(f"budget must be a number of items or a percentage, got {type(budget).__name__}. {fix}")
    if budget < 0:
        raise InputError(f"budget must be 0 or more items, got {budget}. {fix}")
    return min(int(budget), n_items)


def round_sizes(n_llm: int, rounds: int, min_round: int = 5) -> list[int]:
    """``n_llm`` items split into at most ``rounds`` rounds of (nearly) equal size and at least
    ``min_round`` items each (fewer rounds when the budget is small; one round below that).

    Example:
        >>> round_sizes(100, 4), round_sizes(12, 4), round_sizes(3, 4), round_sizes(0, 4)
        ([25, 25, 25, 25], [6, 6], [3], [])
        >>> round_sizes(10, 4, min_round=1)
        [3, 3, 2, 2]
    """
    if rounds < 1:
        raise InputError(f"rounds must be >= 1, got {rounds}")
    if min_round < 1:
        raise InputError(f"min_round must be >= 1, got {min_round}")
    rounds = max(1, min(rounds, n_llm // min_round))
    base, extra = divmod(n_llm, rounds)
    return [s for s in (base + (1 if r < extra else 0) for r in range(rounds)) if s > 0]


def _free(n: int, taken: Sequence[int]) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    mask[np.asarray(list(taken), dtype=np.int64)] = False
    return np.flatnonzero(mask)


def _kmeans_nearest(x: np.ndarray, m: int, seed: int, order: np.ndarray | None = None) -> np.ndarray:
    """Positions (into ``x``) of one item per k-means cluster: the one nearest its centre, or with
    ``order`` (a rank per row, lower first), the first of each cluster by that order."""
    from sklearn.cluster import KMeans

    if m >= len(x):
        return np.arange(len(x))
    km = KMeans(n_clusters=m, n_init=1, max_iter=50, random_state=seed).fit(x)
    out = []
    for c in range(m):
        members = np.flatnonzero(km.labels_ == c)
        if not len(members):
            continue
        if order is None:
            d = ((x[members] - km.cluster_centers_[c]) ** 2).sum(axis=1)
            out.append(members[np.argmin(d)])
        else:
            out.append(members[np.argmin(order[members])])
    got = np.asarray(sorted({int(i) for i in out}), dtype=np.int64)
    if len(got) < m:  # empty clusters (duplicates in x): fill in order
        rest = np.setdiff1d(np.arange(len(x)), got)
        rest = rest if order is None else rest[np.argsort(order[rest], kind="stable")]
        got = np.concatenate([got, rest[: m - len(got)]])
    return got


def select_typical(emb: np.ndarray, m: int, taken: Sequence[int] = (), *, seed: int = 0) -> list[int]:
    """``m`` typical items not yet taken: k-means with ``m`` clusters on their embeddings, the
    item nearest each centre. Spreads a first round over the whole space."""
    free = _free(len(emb), taken)
    return [int(free[p]) for p in _kmeans_nearest(np.asarray(emb[free], dtype=np.float32), m, seed)]


def student_margin(probs: np.ndarray, k: int = 1) -> np.ndarray:
    """How sure a scorer is of its label set: the gap between each item's k-th and (k+1)-th
    best score (small: unsure which labels make the set).

    Example:
        >>> student_margin(np.array([[0.9, 0.1, 0.0], [0.5, 0.45, 0.0]])).round(2).tolist()
        [0.8, 0.05]
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape[1] <= k:
        return np.zeros(len(probs))
    part = -np.sort(-probs, axis=1)
    return part[:, k - 1] - part[:, k]


def select_uncertain(emb: np.ndarray, probs: np.ndarray, m: int, taken: Sequence[int] = (), *, k: int = 1,
                     pool_factor: int = 3, seed: int = 0) -> list[int]:
    """``m`` items the student is least sure of, spread out: the ``pool_factor * m`` untaken
    items with the smallest :func:`student_margin`, clustered into ``m`` groups by k-means on
    their embeddings, the least sure item of each group."""
    free = _free(len(emb), taken)
    margin = student_margin(probs[free], k)
    pool = np.argsort(margin, kind="stable")[: max(m, pool_factor * m)]
    rank = np.empty(len(pool), dtype=np.int64)
    rank[np.argsort(margin[pool], kind="stable")] = np.arange(len(pool))
    picks = _kmeans_nearest(np.asarray(emb[free[pool]], dtype=np.float32), m, seed, order=rank)
    return [int(free[pool[p]]) for p in picks]


def select_random(n: int, m: int, taken: Sequence[int] = (), *, seed: int = 0) -> list[int]:
    """``m`` untaken items at random (seeded): the baseline the active selection must beat."""
    free = _free(n, taken)
    return sorted(int(i) for i in np.random.default_rng(seed).choice(free, size=min(m, len(free)), replace=False))


@dataclass
class BudgetResult:
    """What :func:`budget_loop` did.

    Attributes:
        student_scores: ``(N, K)`` the last student's probabilities for every item (the cheap
            scores when no student was trained).
        source: per item, ``"llm"`` (the teacher labelled it), ``"student"`` or ``"retrieval"``.
        student: the last fitted :class:`~zsl.student.heads.AnchoredHead`, or None.
        llm_items: the items sent to the teacher, in the order they were chosen.
        teacher_labels: item -> the teacher's label indices (None: the teacher failed on it).
        rounds: one dict per round: ``round``, ``selected``, ``trained_on``, ``pseudo`` (items
            the student labelled for its own refit), ``seconds_teacher``, ``seconds_student``
            (fits and scoring), ``seconds_select``, ``note``.
    """

    student_scores: np.ndarray
    source: list[str]
    student: Any
    llm_items: list[int]
    teacher_labels: dict[int, list[int] | None]
    rounds: list[dict[str, Any]] = field(default_factory=list)


def _check_self_train(self_train: float) -> float:
    """``self_train`` as a float in [0, 1], or a clear error."""
    try:
        value = float(self_train)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(self_train, bool) or not 0.0 <= value <= 1.0:
        raise InputError(f"self_train must be a share between 0 and 1 of the items the LLM does not label, got "
                         f"{self_train!r}. Fix: 0.5 (the default), or 0 to train the student on the LLM's labels only.")
    return value


def _self_train(head: Any, emb: np.ndarray, cheap: np.ndarray, idx: list[int], y: np.ndarray, rest: np.ndarray,
                share: float, k: int, seed: int) -> tuple[Any, int]:
    """The head fitted again on the teacher's items plus the surest ``share`` of ``rest``, labelled
    with its own ``k`` best labels, at the penalty it chose on the teacher's items."""
    from zsl.base import top_k_sets
    from zsl.student.heads import AnchoredHead

    n = min(MAX_PSEUDO, int(share * len(rest)))
    if n < 1:
        return head, 0
    probs = head.fuse(cheap[rest], emb[rest])
    order = np.argsort(-student_margin(probs, k), kind="stable")[:n]
    sure = rest[order]
    pseudo = top_k_sets(probs[order], k).astype(np.float32)
    rows = np.concatenate([np.asarray(idx, dtype=np.int64), sure])
    try:
        again = AnchoredHead(lam=head.lam_, random_state=seed).fit(emb[rows], np.concatenate([y, pseudo]),
                                                                    cheap[rows])
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        return head, 0
    return again, n


def _fit_student(emb: np.ndarray, cheap: np.ndarray, teacher: dict[int, list[int] | None], seed: int,
                 k: int = 1, self_train: float = 0.0) -> tuple[Any, str | None, int]:
    from zsl.student.heads import AnchoredHead

    idx = sorted(i for i, labs in teacher.items() if labs)
    if len(idx) < 2:
        return None, f"{len(idx)} item(s) with teacher labels: too few to train a student (retrieval scores kept)", 0
    y = np.zeros((len(idx), cheap.shape[1]), dtype=np.float32)
    for row, i in enumerate(idx):
        y[row, teacher[i]] = 1.0
    seen = np.flatnonzero(y.any(axis=0))
    if len(seen) < 2:  # nothing to contrast: the head would push every label up alike
        return None, (f"the teacher chose only one label ({seen.tolist()}) so far: a student cannot tell labels "
                      "apart yet (retrieval scores kept)"), 0
    try:
        head = AnchoredHead(random_state=seed).fit(emb[idx], y, cheap[idx])
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
        return None, f"the student could not be trained ({type(exc).__name__}: {exc}); retrieval scores kept", 0
    if head.oof_scores_ is not None:
        # A student must predict the teacher better than retrieval does, judged out of fold on the
        # teacher's own items; a noisy teacher and few items can make it worse (measured on GoEmotions).
        from zsl.evaluation.metrics import mean_average_precision

        own = mean_average_precision(y, head.oof_scores_, average="item")
        base = mean_average_precision(y, cheap[idx], average="item")
        if own <= base:
            return None, (f"the student predicts the teacher no better than retrieval does (out-of-fold mAP "
                          f"{own:.3f} vs {base:.3f} on {len(idx)} items): retrieval scores kept"), 0
    if self_train > 0:
        rest = _free(len(emb), list(teacher))
        head, n = _self_train(head, emb, cheap, idx, y, rest, self_train, k, seed)
        return head, None, n
    return head, None, 0


def budget_loop(emb: Any, cheap: Any, teach: Callable[[list[int]], dict[int, list[int] | None]], *, n_llm: int,
                k: int = 1, rounds: int = 4, selection: str = "active", pool_factor: int = 3, seed: int = 0,
                initial: Sequence[int] = (), min_round: int = 5, self_train: float = SELF_TRAIN,
                log: Callable[[str], None] | None = None) -> BudgetResult:
    """Spend ``n_llm`` teacher calls in ``rounds`` rounds; see the module docstring.

    Args:
        emb: ``(N, d)`` item embeddings; cheap: ``(N, K)`` retrieval scores of the same items.
        teach: labels the given items with the teacher; returns item -> label indices (its label
            set), or None for an item it failed on (the item stays with the student).
        n_llm: teacher calls in all (at most N).
        k: labels per item the student's sureness is judged on (see :func:`student_margin`).
        rounds, selection, pool_factor, seed: see the module docstring.
        initial: items the teacher labelled already (paid for): they go first, as round 0, and
            count against ``n_llm``; the rest of the budget is spent in ``rounds`` rounds.
        min_round: the smallest round (see :func:`round_sizes`): a student retrained after one
            or two new items costs time and changes little.
        self_train: the share of the other items the student labels for its own refit (see the
            module docstring; 0: the teacher's items only).
        log: called with one line per round.
    """
    emb = np.asarray(emb, dtype=np.float32)
    cheap = np.asarray(cheap, dtype=np.float32)
    if emb.ndim != 2 or cheap.ndim != 2 or len(emb) != len(cheap):
        raise InputError(f"budget_loop expects emb (N, d) and cheap scores (N, K) for the same N items; got "
                         f"{emb.shape} and {cheap.shape}")
    if selection not in SELECTIONS:
        raise InputError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    self_train = _check_self_train(self_train)
    n = len(emb)
    n_llm = min(int(n_llm), n)
    taken: list[int] = []
    teacher: dict[int, list[int] | None] = {}
    student, probs = None, None
    info: list[dict[str, Any]] = []
    initial = sorted({int(i) for i in initial})
    plan = ([initial] if initial else []) + round_sizes(max(0, n_llm - len(initial)), rounds, min_round)
    for r, size in enumerate(plan):
        t = time.perf_counter()
        rseed = seed + 1000 * r
        if isinstance(size, list):
            pick, size = size, len(size)
        elif selection == "random":
            pick = select_random(n, size, taken, seed=rseed)
        elif probs is None:
            pick = select_typical(emb, size, taken, seed=rseed)
        else:
            pick = select_uncertain(emb, probs, size, taken, k=k, pool_factor=pool_factor, seed=rseed)
        t_sel = time.perf_counter() - t
        t = time.perf_counter()
        got = teach(pick)
        t_teach = time.perf_counter() - t
        for i in pick:
            teacher[i] = got.get(i)
        taken += pick
        t = time.perf_counter()
        fitted, note, n_pseudo = _fit_student(emb, cheap, teacher, seed, k=k, self_train=self_train)
        if fitted is not None:
            student, probs = fitted, fitted.fuse(cheap, emb)
        t_student = time.perf_counter() - t
        rec = {"round": r + (0 if initial else 1), "selected": len(pick),
               "trained_on": sum(1 for v in teacher.values() if v), "pseudo": n_pseudo,
               "seconds_select": round(t_sel, 3), "seconds_teacher": round(t_teach, 3),
               "seconds_student": round(t_student, 3)}
        if note:
            rec["note"] = note
        info.append(rec)
        if log is not None:
            log(f"round {rec['round']}: {len(pick)} item(s) to the LLM ({len(taken)}/{n_llm}), student trained on "
                f"{rec['trained_on']}" + (f" + {n_pseudo} it labelled itself" if n_pseudo else "")
                + (f"; {note}" if note else ""))
    source = ["student" if student is not None else "retrieval"] * n
    for i, labs in teacher.items():
        if labs is not None:
            source[i] = "llm"
    return BudgetResult(student_scores=cheap if probs is None else probs, source=source, student=student,
                        llm_items=taken, teacher_labels=teacher, rounds=info)


# -- the run directory ------------------------------------------------------------------------------
@dataclass
class BudgetSummary:
    """What :func:`budget_run` did. ``by_source`` counts rows per source; ``seconds_llm`` is the time
    spent in the teacher during this call (LLM results read back from an earlier call cost nothing);
    ``retryable`` counts LLM items that failed on transient errors (the same command asks them again)."""

    run_dir: str
    labels: str
    errors: str
    total: int
    labelled: int
    skipped: int
    budget: int
    llm_items: int
    by_source: dict[str, int]
    rounds: list[dict[str, Any]]
    seconds: float
    seconds_llm: float
    reused_llm: int = 0
    tokens: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    already_complete: bool = False
    retryable: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _old_teacher_key(settings: dict[str, Any], vocab_hash: str, fingerprint: str) -> str:
    """The key of a record in the previous format (``"teacher"``): the settings, the vocabulary and the
    whole input's fingerprint. Such a record is valid only while the input is unchanged."""
    blob = json.dumps({"settings": settings, "vocab": vocab_hash, "input": fingerprint}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _teacher_base(settings: dict[str, Any], vocab_hash: str) -> str:
    """What makes every LLM answer of a run what it is: the LLMs, the program's settings and prompts
    (``settings`` names them) and the vocabulary."""
    blob = json.dumps({"settings": settings, "vocab": vocab_hash}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _key_text(item: Any) -> str:
    """What an answer's key holds of the item: its text, or for a photo the sha256 of its bytes (set by the
    cheap pass), so an edited photo under the same name is asked again."""
    if item.text is not None:
        return item.text
    return f"photo sha256:{item.meta['sha256']}"


def _item_key(base: str, item_id: str, text: str) -> str:
    """The key of one LLM answer: :func:`_teacher_base` plus the item's id and text. An edit to
    another item, or an appended one, leaves it valid."""
    return hashlib.sha256(f"{base}\0{item_id}\0{text}".encode()).hexdigest()[:16]


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _record_problem(rec: Any) -> str | None:
    """Why a teacher record cannot be used (None: it can)."""
    if not isinstance(rec, dict):
        return f"a JSON {type(rec).__name__}, not a record"
    if not isinstance(rec.get("id"), str):
        return "no string 'id'"
    if not isinstance(rec.get("key", rec.get("teacher")), str):
        return "no string 'key'"
    if "row" in rec:
        row = rec["row"]
        if not isinstance(row, dict) or not _str_list(row.get("labels")):
            return "its 'row' has no list of 'labels'"
        if "above_threshold" in row and not _str_list(row["above_threshold"]):
            return "its 'row' has an 'above_threshold' that is not a list of labels"
    elif not isinstance(rec.get("error"), str):
        return "neither a 'row' nor an 'error'"
    return None


def _read_teacher(path: Path) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The usable teacher records in file order, a warning per unusable line, and notes.

    A line that is not a usable record is skipped and named in a warning; the records after it
    are kept (nothing is cut). Only a torn last line, which a kill mid-write leaves without its
    newline, is cut off so the next append starts a line of its own; a whole record that lost
    only its newline gets it back.
    """
    if not path.exists() and not path.is_symlink():
        return [], [], []
    data = read_private(path)  # never through a link, never a FIFO or a device
    records: list[dict[str, Any]] = []
    warnings: list[str] = []
    notes: list[str] = []
    lines = data.splitlines(keepends=True)
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            why = _record_problem(rec)
        except ValueError as exc:  # UnicodeDecodeError included
            rec, why = None, f"not JSON: {exc}"
        if n == len(lines) and not line.endswith(b"\n"):
            # never through a link: a teacher.jsonl planted as one must not cut or grow another file
            fd = open_private(path, append=True)
            try:
                if why is None:
                    os.write(fd, b"\n")
                else:
                    os.ftruncate(fd, len(data) - len(line))
            finally:
                os.close(fd)
            if why is not None:
                notes.append(f"{path}:{n}: cut a torn last line (a stop mid-write; {why})")
                break
        if why is not None:
            warnings.append(f"{path}:{n}: skipped ({why}); the answers after it are kept, and its item is asked "
                            "again if it is chosen. Fix: nothing needed; delete or repair that line to silence this.")
            continue
        records.append(rec)
    return records, warnings, notes


class _TeacherAnswers:
    """The LLM answers that are valid for this run's items, read from ``teacher.jsonl`` and kept up to date.

    ``done``: item id -> its final record (an answer, or a permanent failure such as a bad answer);
    ``pending``: item id -> the record of a transient failure (rate limit, time-out, 5xx), asked again
    when the item is chosen. Each record carries ``key`` (:func:`_item_key`); records of other
    texts, settings or vocabularies stay in the file but are not used.
    """

    def __init__(self, path: Path, items: Sequence[Any], settings: dict[str, Any], vocab_hash: str,
                 fingerprint: str, log: Callable[[str], None]):
        self.path = path
        base = _teacher_base(settings, vocab_hash)
        self.keys = {it.id: _item_key(base, it.id, _key_text(it)) for it in items}
        old_key = _old_teacher_key(settings, vocab_hash, fingerprint)
        records, self.warnings, notes = _read_teacher(path)
        for note in notes:
            log(note)
        self.done: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, dict[str, Any]] = {}
        other = old_void = 0
        for rec in records:
            if "key" in rec:
                if rec["key"] != self.keys.get(rec["id"]):
                    other += 1
                    continue
            elif rec["teacher"] != old_key or rec["id"] not in self.keys:
                old_void += 1
                continue
            elif "row" not in rec:  # an old failure: transient or not, it was not recorded; ask again
                continue
            self.add(rec)
        if other:
            log(f"{other} record(s) in {path.name} answer other texts, settings or vocabularies: kept, not used")
        if old_void:
            log(f"{old_void} record(s) in {path.name} use the previous format, whose key covers the whole input: "
                "the input (or a setting) changed since, so they cannot be matched to their texts and are not "
                "used (they stay in the file)")

    def add(self, rec: dict[str, Any]) -> None:
        """Take a record into ``done`` or ``pending`` (a final answer is never replaced by a later failure)."""
        iid = rec["id"]
        if rec.get("retryable"):
            if iid not in self.done:
                self.pending[iid] = rec
        else:
            self.done[iid] = rec
            self.pending.pop(iid, None)

    def write(self, fh: Any, item_id: str, out: dict[str, Any] | Skipped, seconds: float,
              usage: dict[str, Any]) -> dict[str, Any]:
        """Append one LLM result (a row, or the reason it failed) and take it in."""
        rec: dict[str, Any] = {"id": item_id, "key": self.keys[item_id], "seconds": round(seconds, 3)}
        if isinstance(out, Skipped):
            rec["error"] = out.reason
            if out.retryable:
                rec["retryable"] = True
        else:
            rec["row"] = out
        rec["usage"] = usage
        fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.add(rec)
        return rec


def _input_changed_only(run_path: Path, manifest: dict[str, Any]) -> bool:
    """Does ``run_path`` hold a run of the same vocabulary and settings on another input? A budget
    run then starts again on the new input (its answers are keyed per item, so none is lost)."""
    from zsl.runs.rundir import MANIFEST, read_run_json

    try:
        old = read_run_json(run_path / MANIFEST)
    except (InputError, ValueError):
        return False
    if not isinstance(old, dict) or not isinstance(old.get("input"), dict) or not isinstance(old.get("vocab"), dict):
        return False
    new = json.loads(json.dumps(manifest, default=str))
    if old.get("settings") != new["settings"] or old["vocab"].get("hash") != new["vocab"]["hash"]:
        return False
    keys = ("fingerprint", "format", "text_field", "id_field")
    return any(old["input"].get(k) != new["input"][k] for k in keys)


def budget_run(input: str | os.PathLike[str], labels: Any, *, budget: int | str, out: str | os.PathLike[str] | None = None,
               settings: Any = None, rounds: int = 4, selection: str = "active", pool_factor: int = 3, seed: int = 0,
               min_round: int = 5, self_train: float = SELF_TRAIN, fresh: bool = False, show_progress: bool = False,
               **overrides: Any) -> BudgetSummary:
    """Label a text dataset with at most ``budget`` LLM items; a student labels the rest.

    Writes a run directory like :func:`zsl.runs.label.label_run` (``labels.jsonl`` in input order,
    ``errors.jsonl``, ``manifest.json``, ``summary.json``, ``log.txt``, the vocabulary beside
    the labels) plus ``teacher.jsonl``, every LLM result as it arrives. Rows carry ``source``.

    Args:
        input, labels, out, settings, fresh, show_progress, **overrides: as for
            :func:`zsl.runs.label.label_run` (``k`` labels per row; the LLM program's settings).
        budget: LLM items: a count or a percentage (``"10%"``); see :func:`parse_budget`.
        rounds, selection, pool_factor, seed, min_round, self_train: see the module docstring
            and :func:`round_sizes`.

    Raises:
        InputError: a malformed or negative budget, an unknown selection, an image input, a
            program without an LLM step, or the errors of :func:`zsl.runs.label.label_run`.
    """
    from zsl.data.records import fingerprint_and_count
    from zsl.runs.driver import open_run, reopen_summary, run_settings
    from zsl.runs.rundir import ERRORS, LABELS, MANIFEST, SUMMARY, read_run_json, write_json

    opts = run_settings(settings, overrides)
    _check_loop(selection, rounds, min_round, pool_factor)
    self_train = _check_self_train(self_train)
    run = open_run(input, labels, opts, check=lambda fmt: _check_budget_input(fmt, opts, labels))
    if run.fmt == "images" and not getattr(run.labeller.scorer, "uses_lm", False):
        raise InputError(f"{NO_VLM_BUDGET} ({opts.lm!r} was given, but it reads no photos here: a budget needs a "
                         "vision-language model behind LiteLLM, `provider/model`.)")
    if getattr(run.labeller, "wants_texts_first", False):
        run.warnings.append(_NO_BUDGET_PIVOT.format(labels=", ".join(sorted(run.labeller.catch_all)) or "catch-all"))
    fp, _ = fingerprint_and_count(run.input_path, run.fmt)
    n_records, items, errors = _read_items(run.input_path, opts.text_field, opts.id_field, run.fmt)
    n_llm = parse_budget(budget, len(items))
    plan = {"budget": budget if isinstance(budget, str) else int(budget), "llm_items": n_llm, "rounds": rounds,
            "selection": selection, "pool_factor": pool_factor, "seed": seed, "min_round": min_round,
            "self_train": self_train}
    settings_record = {**run.labeller.config(), "mode": "budget"}
    # A remote teacher answers `concurrency` items at once (threads); a local LLM, one (make_labeller warns).
    # The plan is not compared on resume: a new budget reuses every LLM result. The LLM answers are keyed
    # per item (id and text), so another input only needs the rest redone.
    rd = run.open_dir(settings_record, fp, out, fresh, extra={"budget": plan}, restart_if=_input_changed_only)
    try:
        old_manifest = read_run_json(rd.path / MANIFEST)
        old = old_manifest.get("budget")
        if run.state == "complete" and old == plan:
            summary = reopen_summary(BudgetSummary, rd.path)
            if not summary.retryable:
                return summary
        # The summary of another plan (or of a run with items to ask again) no longer describes this
        # run: without it, a stop before the end resumes this plan instead of reporting the old one.
        (rd.path / SUMMARY).unlink(missing_ok=True)
        t0 = time.perf_counter()
        emb_cheap = _emb_and_cheap(items, run.labeller, show_progress)
        if run.fmt == "images":  # unreadable photos are reported; a percentage counted every listed photo
            items, emb_cheap = _readable_photos(items, emb_cheap, errors)
            n_llm = min(n_llm, len(items))
        _log_start(run, n_llm, len(items), plan)
        answers = _TeacherAnswers(rd.path / TEACHER, items, settings_record, run.vocab.hash, fp, rd.log)
        for w in answers.warnings:
            rd.log(f"warning: {w}")
        run.warnings += answers.warnings
        start = _start(items, answers, rd.log, replay=run.state == "resume" and old == plan,
                       old_start=old_manifest.get("budget_start", []))
        write_json(rd.path / MANIFEST, {**run.manifest, "budget_start": [items[i].id for i in start]})
        res, stats, usage = _spend(items, answers, run.labeller, emb_cheap,
                                   n_llm=n_llm, start=start, rd=rd, show_progress=show_progress,
                                   loop={"k": run.labeller.k, **{key: plan[key] for key in _LOOP}})
        by_source, teacher_errors = _write_outputs(run, items, res, answers, errors, settings_record, plan)
        summary = BudgetSummary(
            run_dir=str(rd.path), labels=str(rd.path / LABELS), errors=str(rd.path / ERRORS),
            total=n_records, labelled=len(items), skipped=n_records - len(items), budget=n_llm,
            llm_items=len(res.llm_items), by_source=by_source, rounds=res.rounds,
            seconds=round(time.perf_counter() - t0, 3), seconds_llm=round(stats["seconds_llm"], 3),
            reused_llm=stats["reused"], tokens=usage, warnings=run.warnings,
            retryable=sum(1 for e in teacher_errors if e.get("retryable")))
        run.finish(summary, "{n} LLM item(s) failed on transient errors (rate limit, time-out, server error): "
                            "rerun the same command to ask the LLM again for just those")
        rd.log(f"done: {by_source}, {summary.seconds:.1f}s ({summary.seconds_llm:.1f}s in the LLM, "
               f"{summary.reused_llm} LLM result(s) reused)")
        return summary
    finally:
        rd.unlock()


_LOOP = ("rounds", "selection", "pool_factor", "seed", "min_round", "self_train")  # the plan's settings of the loop


_NO_BUDGET_PIVOT = (
    "catch-all labels ({labels}) get no zero-shot pivot in a --budget run (fitting one would ask the LLM about "
    "items beyond the budget), so the teacher scores them as any other label and they will rarely be chosen. Fix: "
    "pass --catch-all-pivot S (a plain `zsl label` run of a sample records its pivot in manifest.json, "
    "settings.catch_all.pivot), or --no-catch-all-guess to treat them as ordinary labels")


def _log_start(run: Any, n_llm: int, n_items: int, plan: dict[str, Any]) -> None:
    rd = run.rd
    for w in run.warnings:
        rd.log(f"warning: {w}")
    if run.restarted:
        rd.log(f"the input changed since the last run in {rd.path}: LLM answers of unchanged items are reused")
    rd.log(f"budget {run.state}: {run.input_path} -> {rd.path}, {n_llm} of {n_items} item(s) to the LLM, "
           f"{len(round_sizes(n_llm, plan['rounds'], plan['min_round']))} round(s), selection {plan['selection']}, "
           f"concurrency {run.labeller.concurrency}")


def _check_loop(selection: str, rounds: int, min_round: int, pool_factor: int) -> None:
    if selection not in SELECTIONS:
        raise InputError(f"selection must be one of {', '.join(SELECTIONS)}, got {selection!r}")
    round_sizes(0, rounds, min_round)  # checks rounds and min_round
    if pool_factor < 1:
        raise InputError(f"pool_factor must be >= 1, got {pool_factor}")


NO_VLM_BUDGET = (
    "--budget decides which items the LLM labels; an image run has no LLM step to budget unless a vision-language "
    "model is given. Without one, its teacher is the image model, whose global-local scores (feature regions, the default) cost about "
    "what a global-only cheap pass would (BENCHMARKS.md, Images), so a student would save nothing. Fix: give a VLM "
    "with --lm provider/model (and --api-base URL for your own server): it labels the budget's share and a student "
    "the rest; or label the images without --budget.")


def _check_budget_input(fmt: str, opts: Any, labels: Any) -> None:
    """Refuse what a budget cannot spend an LLM on (photos without a VLM, a student, no LLM step, no vocabulary)."""
    if fmt == "images" and opts.lm is None:
        raise InputError(NO_VLM_BUDGET)
    if opts.model is not None:
        raise InputError("--budget spends an LLM program; --model labels with a student only. Fix: drop one of them.")
    if not (opts.infer or opts.rank):
        raise InputError("--budget decides where the LLM steps run, but --no-infer and --no-rank turn both off. "
                         "Fix: keep at least one LLM step, or drop --budget (retrieval alone labels everything).")
    if labels is None:
        raise InputError("A label vocabulary is required.")


def _read_items(input_path: Path, text_field: str, id_field: str,
                fmt: str = "text") -> tuple[int, list[Any], list[dict[str, Any]]]:
    """The number of records, the usable items (first of each id) and the ``errors.jsonl`` entries of the rest."""
    from zsl.data.files import BadRow
    from zsl.data.images import image_records
    from zsl.data.records import iter_records

    records = list(image_records(input_path) if fmt == "images" else
                   iter_records(input_path, text_field=text_field, id_field=id_field))
    items, errors, seen = [], [], set()
    for rec in records:
        if isinstance(rec, BadRow):
            errors.append({"file": rec.path, "line": rec.line, "reason": rec.reason})
        elif rec.id in seen:
            errors.append({"id": rec.id, "reason": f"duplicate id {rec.id!r}: only its first record is labelled"})
        else:
            seen.add(rec.id)
            items.append(rec)
    if not items:
        raise InputError(f"{input_path} has no usable records (see --text-field, {text_field!r}).")
    return len(records), items, errors


def _start(items: Sequence[Any], answers: _TeacherAnswers, log: Callable[[str], None], *, replay: bool,
           old_start: list[str]) -> list[int]:
    """The items the loop starts from. The same plan replays its choices (they depend only on the teacher's
    answers, read back for free) from the same start, so a resumed run ends exactly as an uninterrupted one.
    Otherwise (another budget or input, --fresh, or items to ask again after a transient failure) every
    answer already paid for, and every item still owed one, goes first."""
    ids = {it.id: i for i, it in enumerate(items)}
    if replay and not answers.pending:
        return [ids[i] for i in old_start if i in ids]
    start = [i for i, it in enumerate(items) if it.id in answers.done or it.id in answers.pending]
    if start:
        log(f"{len(start)} item(s) with LLM results first ({len(answers.pending)} of them to ask again)")
    return start


def _write_outputs(run: Any, items: Sequence[Any], res: BudgetResult, answers: _TeacherAnswers,
                   errors: list[dict[str, Any]], settings_record: dict[str, Any],
                   plan: dict[str, Any]) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Write the rows (the LLM's where it answered, else the student's), the errors and the vocabulary;
    returns the rows per source and the teacher's errors."""
    student_rows = run.labeller.rows(items, res.student_scores)  # as the teacher's: never a catch-all beside a label
    by_source: dict[str, int] = {}
    lines = []
    for i, item in enumerate(items):
        rec = answers.done.get(item.id) if res.source[i] == "llm" else None
        row = dict(rec["row"]) if rec is not None else student_rows[i]
        row["source"] = res.source[i]
        by_source[row["source"]] = by_source.get(row["source"], 0) + 1
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    teacher_errors = _teacher_errors(items, res, answers)
    run.write_outputs(lines, (json.dumps(e, ensure_ascii=False) + "\n" for e in errors + teacher_errors),
                      settings_record, lambda: len(items), provenance={"budget": plan})
    return by_source, teacher_errors


def _emb_and_cheap(items: Sequence[Any], teacher_lab: Any, show_progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """The cheap pass: every item's embedding and retrieval scores (batched); for photos, see
    :func:`photo_cheap_pass` (rows of unreadable photos are NaN)."""
    from zsl.util.progress import progress_bar

    if teacher_lab.kind == "images":
        with progress_bar(total=len(items), desc="global-local (cheap pass)", unit="photo",
                          disable=not show_progress) as bar:
            return photo_cheap_pass(items, teacher_lab.scorer, bar.update)
    with progress_bar(total=len(items), desc="retrieval (cheap pass)", unit="item", disable=not show_progress) as bar:
        return teacher_lab.cheap_pass([it.text for it in items], bar.update)


def photo_cheap_pass(items: Sequence[Any], tagger: Any,
                     done: Callable[[int], None] = lambda n: None) -> tuple[np.ndarray, np.ndarray]:
    """Every photo's whole-image embedding (the backbone's, unit length) and global-local scores, without the VLM.

    Each file is read once: its bytes are hashed into ``item.meta["sha256"]`` (the key of its VLM answer)
    and decoded with the guards of :func:`zsl.data.images.load_image`. A photo that cannot be read gets
    NaN rows and ``item.meta["unreadable"]``, the reason (:func:`_readable_photos` drops it).
    """
    from zsl.data.images import load_image
    from zsl.image.global_local import global_local_scores

    backend = tagger.backend_
    embs: list[np.ndarray | None] = []
    cheap: list[np.ndarray | None] = []
    for start in range(0, len(items), tagger.batch_size):
        part = items[start:start + tagger.batch_size]
        images, ok = [], []
        for j, it in enumerate(part):
            try:
                it.meta["sha256"] = hashlib.sha256(read_private(it.path)).hexdigest()
                images.append(load_image(it.path, max_pixels=tagger.max_pixels, max_side=tagger.max_side))
                ok.append(j)
            except InputError as exc:
                it.meta["unreadable"] = f"{it.path}: {exc}"
        got_emb: list[np.ndarray | None] = [None] * len(part)
        got_cheap: list[np.ndarray | None] = [None] * len(part)
        if images:
            g, s = tagger.score_parts(images)
            scores = g if s is None else global_local_scores(g, s, threshold=tagger.threshold_, lam=tagger.lam)
            emb = np.asarray(backend.encode_images(images), dtype=np.float32)
            for n, j in enumerate(ok):
                got_emb[j], got_cheap[j] = emb[n], np.asarray(scores[n], dtype=np.float32)
        embs += got_emb
        cheap += got_cheap
        done(len(part))
    dim = next((e.shape[0] for e in embs if e is not None), 1)
    k = len(tagger.vocab)
    nan = np.float32(np.nan)
    return (np.stack([e if e is not None else np.full(dim, nan) for e in embs]) if embs else np.zeros((0, dim)),
            np.stack([c if c is not None else np.full(k, nan) for c in cheap]) if cheap else np.zeros((0, k)))


def _readable_photos(items: list[Any], emb_cheap: tuple[np.ndarray, np.ndarray],
                     errors: list[dict[str, Any]]) -> tuple[list[Any], tuple[np.ndarray, np.ndarray]]:
    """The photos the cheap pass could read, with their rows; each other one goes to ``errors``."""
    keep = [i for i, it in enumerate(items) if "unreadable" not in it.meta]
    errors += [{"id": it.id, "image": it.path, "reason": it.meta["unreadable"]} for it in items
               if "unreadable" in it.meta]
    if not keep:
        raise InputError("none of the input's photos could be read (see the reasons in the run's errors): "
                         f"first: {errors[-1]['reason'] if errors else 'no photos'}")
    emb, cheap = emb_cheap
    return [items[i] for i in keep], (emb[keep], cheap[keep])


def _spend(items: Sequence[Any], answers: _TeacherAnswers, teacher_lab: Any, emb_cheap: tuple[np.ndarray, np.ndarray],
           *, n_llm: int, start: list[int], rd: Any, show_progress: bool,
           loop: dict[str, Any]) -> tuple[BudgetResult, dict[str, Any], dict[str, dict[str, int]]]:
    """Run :func:`budget_loop` with the LLM as teacher: every answer is appended to ``teacher.jsonl``
    and fsynced before the next items are asked; answers already there are reused for free."""
    from zsl.runs.chunks import add_usage
    from zsl.util.progress import Heartbeat, progress_bar

    label_pos = {lab: j for j, lab in enumerate(teacher_lab.vocab.labels)}
    stats: dict[str, Any] = {"seconds_llm": 0.0, "reused": 0}
    usage: dict[str, dict[str, int]] = {}
    total = max(n_llm, len(start))
    beat = Heartbeat(rd.log, total=total, what="LLM teacher")  # log.txt is never silent for long

    def labels_of(rec: dict[str, Any]) -> list[int] | None:
        row = rec.get("row")
        if row is None:
            return None
        return [label_pos[lab] for lab in row.get("above_threshold", row["labels"]) if lab in label_pos]

    def teach(idx: list[int]) -> dict[int, list[int] | None]:
        got: dict[int, list[int] | None] = {}
        todo = []
        for i in idx:
            rec = answers.done.get(items[i].id)
            if rec is None:
                todo.append(i)
                continue
            stats["reused"] += 1
            got[i] = labels_of(rec)
            bar.update(1)
            beat.update(1)
        step = teacher_lab.concurrency
        with os.fdopen(open_private(answers.path, append=True), "a", encoding="utf-8") as fh:  # never through a link
            for s in range(0, len(todo), step):
                part = todo[s:s + step]
                t = time.perf_counter()
                outputs, use = teacher_lab.label([items[i] for i in part], lambda _n: None)
                secs = time.perf_counter() - t
                stats["seconds_llm"] += secs
                add_usage(usage, use)
                for j, (i, out) in enumerate(zip(part, outputs, strict=True)):
                    # The group's usage goes on its first record: calls cannot be told apart per item.
                    rec = answers.write(fh, items[i].id, out, secs / len(part), use if j == 0 else {})
                    got[i] = labels_of(rec)
                fh.flush()
                os.fsync(fh.fileno())
                bar.update(len(part))
                beat.update(len(part))
                beat.beat()
        return got

    try:
        with progress_bar(total=total, desc="LLM teacher", unit="item", disable=not show_progress) as bar:
            res = budget_loop(*emb_cheap, teach, n_llm=total, initial=start, log=rd.log, **loop)
    except KeyboardInterrupt:
        rd.log("interrupted: every LLM result so far is in teacher.jsonl; run the same command to continue")
        raise
    beat.beat()
    return res, stats, usage


def _teacher_errors(items: Sequence[Any], res: BudgetResult, answers: _TeacherAnswers) -> list[dict[str, Any]]:
    """The ``errors.jsonl`` entries of the items the LLM failed on, naming who labelled each row instead."""
    out = []
    for i in res.llm_items:
        iid = items[i].id
        rec = answers.pending.get(iid) or answers.done.get(iid)
        if rec is None or "error" not in rec:
            continue
        src = res.source[i]
        who = "the student" if src == "student" else "retrieval"
        if rec.get("retryable"):
            out.append({"id": iid, "reason": f"LLM teacher failed on a transient error ({rec['error']}); labelled by "
                        f"{who} for now. Fix: rerun the same command to ask the LLM again for this item",
                        "labelled_by": src, "retryable": True})
        else:
            out.append({"id": iid, "reason": f"LLM teacher failed ({rec['error']}); labelled by {who}",
                        "labelled_by": src})
    return out
