"""Reports for people: the evaluation report (``eval.json``, ``report.md``, plots) and the silver-data report.

* :func:`write_report` writes what :func:`zsl.evaluation.evaluate.evaluate` measured: ``eval.json``
  (stable keys), ``report.md`` (metrics, best and worst labels, notes) and three PNG plots;
* :func:`silver_report` summarises :class:`~zsl.silver.data.SilverData` (label frequency, empty
  items, score and confidence distributions) as text and an optional PNG.

Plots use matplotlib's ``Figure`` with the Agg canvas directly: no pyplot, no global backend
state; matplotlib is imported only when a plot is drawn. Every file is written atomically.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zsl.data.files import atomic_write, refuse_overwrite
from zsl.errors import InputError, MissingDependencyError
from zsl.evaluation.evaluate import HIERARCHY_KEYS, MAX_LISTED
from zsl.evaluation.metrics import metric_name, precision_recall_curve, reliability

if TYPE_CHECKING:
    from zsl.evaluation.evaluate import EvalReport
    from zsl.silver.data import SilverData

__all__ = ["SilverReport", "silver_report", "write_report"]


# -- the evaluation report -----------------------------------------------------------------------
def _md_cell(text: str) -> str:
    """Text safe in a Markdown table cell: one line, markup characters escaped."""
    out = " ".join(str(text).split())
    out = out.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]|":
        out = out.replace(ch, "\\" + ch)
    return out


def _short(label: str, width: int) -> str:
    label = " ".join(label.split())
    return label if len(label) <= width else label[: width - 1] + "…"


def _plain(text: str) -> str:
    """Text matplotlib draws as is (a pair of '$' would start math mode)."""
    return text.replace("$", r"\$")


def write_report(report: EvalReport, out_dir: str | os.PathLike[str], *, top_n: int = 30,
                 inputs: Sequence[str | os.PathLike[str] | None] = ()) -> dict[str, Path]:
    """Write ``eval.json``, ``report.md`` and four plots into ``out_dir``.

    Plots: ``per_label_f1.png`` (F1 of the ``top_n`` most frequent gold labels),
    ``pr_curve.png`` (micro precision-recall over the kept scores, operating point
    marked), ``score_hist.png`` (scores of kept labels, correct vs wrong),
    ``reliability.png`` (the kept scores read as probabilities: predicted vs observed
    frequency per bin, with the ECE). Every file is written atomically.

    Args:
        report: from :func:`evaluate`.
        out_dir: the folder (created if needed).
        top_n: labels in the per-label plot.
        inputs: the files the evaluation read; a report file that would overwrite one is refused
            before anything is written.

    With a tree (``report.hierarchy``), ``report.md`` gets the tree's metrics and a per-level table, and a
    fifth plot ``per_level.png`` (accuracy, micro-F1 and macro-F1 at each depth).

    Returns:
        file kind -> path: ``json``, ``markdown``, ``per_label_f1``, ``pr_curve``, ``score_hist``,
        ``reliability`` (and ``per_level`` with a tree).

    Raises:
        InputError: the folder cannot be written, or a report file would be one of ``inputs``.
        MissingDependencyError: matplotlib is not installed.

    Example:
        >>> paths = write_report(evaluate("out/run", "gold.jsonl"), "out/run/eval")  # doctest: +SKIP
    """
    out = Path(out_dir)
    tree_plot = ("per_level.png",) if report.hierarchy is not None else ()
    for name in ("per_label_f1.png", "pr_curve.png", "score_hist.png", "reliability.png", *tree_plot, "eval.json",
                 "report.md"):
        refuse_overwrite(out / name, inputs)  # every file written below
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"Cannot write {out}: {exc.strerror or exc}. Choose a writable output folder.") from None
    paths = {
        "per_label_f1": _save_png(_plot_per_label(report, top_n), out / "per_label_f1.png"),
        "pr_curve": _save_png(_plot_pr_curve(report), out / "pr_curve.png"),
        "score_hist": _save_png(_plot_score_hist(report), out / "score_hist.png"),
        "reliability": _save_png(_plot_reliability(report), out / "reliability.png"),
    }
    if report.hierarchy is not None:
        paths["per_level"] = _save_png(_plot_per_level(report.hierarchy), out / "per_level.png")
    body = json.dumps(report.to_json(), indent=1, ensure_ascii=False) + "\n"
    paths["json"] = _write_text(out / "eval.json", body)
    paths["markdown"] = _write_text(out / "report.md", _markdown(report))
    return paths


def _write_text(path: Path, body: str) -> Path:
    def write(tmp: Path) -> None:
        tmp.write_text(body, encoding="utf-8")

    return atomic_write(path, write)


def _label_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| label | F1 | precision | recall | support | predicted |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {_md_cell(r['label'])} | {r['f1']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} "
            f"| {r['support']} | {r['predicted']} |"
        )
    return lines


def _markdown(report: EvalReport) -> str:
    items = (
        f"- items: {report.n_items} ({report.n_matched} with a prediction, {report.n_missing} without); "
        f"{len(report.labels)} labels; {len(report.bad_rows)} bad rows skipped"
    )
    lines = [
        "# Evaluation",
        "",
        f"- predictions: `{report.pred_source}`",
        f"- gold: `{report.gold_source}`",
        items,
        "",
        "| metric | value |",
        "|---|---:|",
    ]
    lines += [f"| {metric_name(name)} | {value:.4f} |" for name, value in report.metrics.items()]
    if report.hierarchy is not None:
        lines += _tree_markdown(report.hierarchy)
    active = [r for r in report.per_label if r["support"] or r["predicted"]]
    worst = sorted(active, key=lambda r: (r["f1"], -r["support"]))
    best = sorted(active, key=lambda r: (-r["f1"], -r["support"]))
    if len(active) <= MAX_LISTED:
        lines += ["", "## Labels by F1", ""] + _label_table(worst)
    else:
        lines += ["", f"## Worst {MAX_LISTED} labels by F1", ""] + _label_table(worst[:MAX_LISTED])
        lines += ["", f"## Best {MAX_LISTED} labels by F1", ""] + _label_table(best[:MAX_LISTED])
    never = len(report.labels) - len(active)
    if never:
        lines += ["", f"{never} labels are neither gold nor predicted for any item (not listed)."]
    lines += ["", "## Notes", ""] + [f"- {_md_cell(n)}" for n in report.notes]
    if report.missing_ids:
        more = " ..." if report.n_missing > len(report.missing_ids) else ""
        lines.append(f"- Gold items without a prediction: {', '.join(_md_cell(i) for i in report.missing_ids)}{more}")
    if report.bad_rows:
        lines += ["", "## Bad rows", ""] + [f"- {_md_cell(b)}" for b in report.bad_rows[:MAX_LISTED]]
        if len(report.bad_rows) > MAX_LISTED:
            lines.append(f"- ... {len(report.bad_rows) - MAX_LISTED} more in eval.json")
    lines += [
        "",
        "## Plots",
        "",
        "![F1 of the most frequent labels](per_label_f1.png)",
        "",
        "![Micro precision-recall curve](pr_curve.png)",
        "",
        "![Score distribution](score_hist.png)",
        "",
        f"![Reliability: predicted probability vs observed frequency, ECE {_ece(report):.3f}](reliability.png)",
        "",
    ]
    if report.hierarchy is not None:
        lines += ["![Accuracy and F1 at each level of the tree](per_level.png)", ""]
    return "\n".join(lines)


def _tree_markdown(h: dict[str, Any]) -> list[str]:
    """The tree's section of ``report.md``: hierarchical metrics, the levels, gold labels outside the tree."""
    lines = ["", f"## On the tree ({h['n_levels']} levels)", "",
             ("Predicted and gold sets closed upward (a label counts for its ancestors), except example-F1 (the "
             "sets as given), leaf accuracy (the deepest gold labels predicted themselves) and consistent sets "
             "(the share of predicted sets that hold every predicted label's parent)."), "",
             "| metric | value |", "|---|---:|"]
    lines += [f"| {metric_name(name)} | {h[name]:.4f} |" for name in HIERARCHY_KEYS]
    lines += ["", "| level | items | labels | accuracy | micro-F1 | macro-F1 |", "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {lv['level']} | {lv['items']} | {lv['labels']} | {lv['accuracy']:.4f} | {lv['micro_f1']:.4f} "
              f"| {lv['macro_f1']:.4f} |" for lv in h["levels"]]
    out = h["gold_not_in_tree"]
    if out["labels"]:
        shown = ", ".join(_md_cell(repr(g)) for g in out["examples"][:10])
        lines += ["", (f"{out['labels']} gold labels of {out['items']} items are not in the tree (counted as misses): "
                      f"{shown}{' ...' if out['labels'] > 10 else ''}")]
    return lines


# -- plots (matplotlib's Figure + Agg canvas: no pyplot, no global backend state) -------------
def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("matplotlib", "The evaluation report plots", "pip install matplotlib") from None
    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")

    def write(tmp: Path) -> None:
        tmp.write_bytes(buf.getvalue())

    return atomic_write(path, write)


def _plot_per_label(report: EvalReport, top_n: int) -> Any:
    rows = sorted((r for r in report.per_label if r["support"]), key=lambda r: (-r["support"], r["label"]))[:top_n]
    fig = _figure(9.0, 1.4 + 0.3 * max(len(rows), 5))
    ax = fig.add_subplot()
    if not rows:
        ax.text(0.5, 0.5, "no gold labels", ha="center", va="center", transform=ax.transAxes)
        return fig
    rows = rows[::-1]  # barh draws bottom-up; most frequent on top
    f1 = np.array([r["f1"] for r in rows])
    y = np.arange(len(rows))
    good = f1 >= 0.5
    ax.barh(y[good], f1[good], color="#4477aa", height=0.7, label="F1 >= 0.5", zorder=2)
    ax.barh(y[~good], f1[~good], color="#cc6677", height=0.7, label="F1 < 0.5", zorder=2)
    ax.set_yticks(y, [_plain(_short(r["label"], 38)) for r in rows], fontsize=8)
    for yi, r in zip(y, rows, strict=True):
        ax.text(
            r["f1"] + 0.01,
            yi,
            f"{r['f1']:.2f}  (n={r['support']})",
            va="center",
            fontsize=7,
            zorder=3,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5, "alpha": 0.8},
        )
    micro = report.metrics.get("micro_f1", 0.0)
    ax.axvline(micro, color="#333333", ls="--", lw=1, label=f"micro-F1 {micro:.2f}", zorder=1)
    ax.set_xlim(0, 1.22)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.grid(axis="x", alpha=0.3, zorder=0)
    ax.set_xlabel("F1  (bar text: F1 and gold support n)")
    n_sup = sum(1 for r in report.per_label if r["support"])
    ax.set_title(f"Per-label F1: the {len(rows)} most frequent of {n_sup} gold labels", fontsize=10)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.95)
    return fig


def _plot_per_level(h: dict[str, Any]) -> Any:
    levels = h["levels"]
    fig = _figure(7.0, 4.4)
    ax = fig.add_subplot()
    x = np.arange(len(levels))
    width = 0.27
    for shift, key, colour in ((-width, "accuracy", "#4477aa"), (0.0, "micro_f1", "#228833"),
                               (width, "macro_f1", "#ccbb44")):
        ax.bar(x + shift, [lv[key] for lv in levels], width, color=colour, label=metric_name(key), zorder=2)
    hf = h["hierarchical_f1"]
    ax.axhline(hf, color="#333333", ls="--", lw=1, label=f"hierarchical F1 {hf:.2f}", zorder=1)
    ax.set_xticks(x, [f"{lv['level']}\n{lv['items']} items" for lv in levels], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("level of the tree (0: the roots)")
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.set_title(f"Per level (sets closed upward); leaf accuracy {h['leaf_accuracy']:.2f}, "
                 f"consistent sets {h['consistent_share']:.0%}", fontsize=10)
    ax.legend(fontsize=8, framealpha=0.95)
    return fig


def _kept_pairs(report: EvalReport) -> tuple[np.ndarray, np.ndarray]:
    kept = np.isfinite(report.scores)
    return report.scores[kept], report.y_true.astype(bool)[kept]


def _plot_pr_curve(report: EvalReport) -> Any:
    s, y = _kept_pairs(report)
    n_pos = int(report.y_true.sum())
    precision, recall, _ = precision_recall_curve(y, s, n_positives=n_pos)
    fig = _figure(6.4, 5.0)
    ax = fig.add_subplot()
    if recall.size:
        ax.plot(recall, precision, color="#4477aa", lw=1.8, label="micro P-R over kept scores")
        ceiling = float(recall[-1])
        if ceiling < 1.0:
            ax.axvline(
                ceiling,
                color="#999999",
                ls=":",
                lw=1,
                label=f"recall ceiling {ceiling:.2f} (gold labels outside the kept lists)",
            )
    op_p, op_r = report.metrics["micro_precision"], report.metrics["micro_recall"]
    where = "all kept labels" if report.threshold is None else f"score >= {report.threshold:g}"
    ax.plot(
        [op_r],
        [op_p],
        "o",
        color="#cc3311",
        ms=9,
        zorder=5,
        label=f"operating point ({where}): P {op_p:.2f}, R {op_r:.2f}",
    )
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall (micro)")
    ax.set_ylabel("precision (micro)")
    ax.grid(alpha=0.3)
    ax.set_title(f"Precision-recall, {report.n_items} items, {n_pos} gold labels", fontsize=10)
    ax.legend(loc="best", fontsize=7.5, framealpha=0.95)
    return fig


def _ece(report: EvalReport) -> float:
    s, y = _kept_pairs(report)
    return float(reliability(y, s)["ece"]) if s.size else float("nan")


def _plot_reliability(report: EvalReport, bins: int = 10) -> Any:
    """Kept scores read as probabilities (clipped to [0, 1]): per bin, mean predicted vs observed frequency."""
    s, y = _kept_pairs(report)
    fig = _figure(5.6, 5.0)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="#999999", ls=":", lw=1, label="perfectly calibrated")
    if s.size:
        r = reliability(y, s, bins=bins)
        ok = r["count"] > 0
        ax.bar(r["edges"][:-1][ok], r["frequency"][ok], width=1.0 / bins, align="edge", color="#4477aa", alpha=0.35,
               edgecolor="#4477aa", label="observed frequency per bin")
        ax.plot(r["confidence"][ok], r["frequency"][ok], "o-", color="#cc3311", ms=5,
                label=f"mean predicted vs observed (ECE {r['ece']:.3f})")
        for x, f, n in zip(r["edges"][:-1][ok], r["frequency"][ok], r["count"][ok], strict=True):
            ax.text(x + 0.5 / bins, min(f + 0.02, 1.0), str(int(n)), ha="center", fontsize=6, color="#555555")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("predicted probability (score, clipped to [0, 1])")
    ax.set_ylabel("observed frequency of the label")
    ax.set_title(f"Reliability of the kept scores ({s.size} pairs; counts above the bars)", fontsize=10)
    ax.legend(loc="upper left", fontsize=7.5, framealpha=0.95)
    return fig


def _plot_score_hist(report: EvalReport) -> Any:
    s, y = _kept_pairs(report)
    fig = _figure(6.4, 4.4)
    ax = fig.add_subplot()
    if s.size == 0:
        ax.text(0.5, 0.5, "no scores", ha="center", va="center", transform=ax.transAxes)
        return fig
    lo, hi = float(s.min()), float(s.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 41)
    # each group normalised to sum to 1: the shapes compare even when one group is far larger
    for mask, colour, name in ((~y, "#777777", "wrong (not gold)"), (y, "#228833", "correct (gold)")):
        if mask.any():
            w = np.full(int(mask.sum()), 1.0 / mask.sum())
            ax.hist(s[mask], bins=bins, weights=w, histtype="stepfilled", alpha=0.35, color=colour)
            ax.hist(
                s[mask],
                bins=bins,
                weights=w,
                histtype="step",
                lw=1.6,
                color=colour,
                label=f"{name}: {int(mask.sum())} pairs",
            )
    if report.threshold is not None:
        ax.axvline(report.threshold, color="#cc3311", ls="--", lw=1.2, label=f"threshold {report.threshold:g}")
    ax.set_xlabel("score")
    ax.set_ylabel("share of the group's pairs")
    ax.set_title("Scores of the kept labels: correct vs wrong", fontsize=10)
    ax.legend(fontsize=8, framealpha=0.95)
    return fig


# -- the silver-data report ----------------------------------------------------------------------
@dataclass
class SilverReport:
    """Summary statistics of silver data (see :func:`silver_report`).

    Attributes:
        n_items, n_labels: sizes.
        labels_per_item: mean chosen labels per item.
        n_empty: items with no chosen label.
        label_counts: label -> items it was chosen for, most frequent first.
        never_chosen: labels no item got.
        chosen_score_mean, other_score_mean: mean teacher score of chosen / other pairs.
        chosen_confidence_mean: mean confidence of chosen pairs.
        low_confidence_share: share of chosen pairs with confidence below 0.6.
        rule: the rule's name and parameters.
    """

    n_items: int
    n_labels: int
    labels_per_item: float
    max_labels_per_item: int
    n_empty: int
    label_counts: dict[str, int]
    never_chosen: list[str]
    chosen_score_mean: float
    other_score_mean: float
    chosen_confidence_mean: float
    low_confidence_share: float
    rule: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """A short human-readable summary."""
        def pct(a: float, b: float) -> str:
            return f"{100.0 * a / b:.1f}%" if b else "n/a"

        rule = ""
        if self.rule:
            rule = f"; rule {self.rule.get('name')} {json.dumps(self.rule.get('params'), sort_keys=True)}"
        top = list(self.label_counts.items())
        lines = [
            f"Silver data: {self.n_items} items, {self.n_labels} labels{rule}",
            (f"Labels per item: mean {self.labels_per_item:.2f}, max {self.max_labels_per_item}; "
            f"items with no label: {self.n_empty} ({pct(self.n_empty, self.n_items)})"),
            "Most frequent: " + (", ".join(f"{lab} {c} ({pct(c, self.n_items)})" for lab, c in top[:8] if c) or "none"),
            "Least frequent chosen: " + (", ".join(f"{lab} {c}" for lab, c in [t for t in top if t[1]][-5:]) or "none"),
            f"Never chosen ({len(self.never_chosen)}): " + (", ".join(self.never_chosen[:15])
                                                            + (" ..." if len(self.never_chosen) > 15 else "") or "-"),
            f"Teacher scores: chosen mean {self.chosen_score_mean:.4g}, others mean {self.other_score_mean:.4g}",
            (f"Confidence of chosen labels: mean {self.chosen_confidence_mean:.3f}; "
            f"{100 * self.low_confidence_share:.1f}% below 0.6"),
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready statistics."""
        from dataclasses import asdict

        return asdict(self)


def _nanmean(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else math.nan


def silver_report(silver: SilverData, *, png: str | os.PathLike[str] | None = None,
                  txt: str | os.PathLike[str] | None = None) -> SilverReport:
    """Label frequency, items with no label, score and confidence distributions.

    Args:
        silver: the data.
        png: write a 2x2 plot here (label frequency, labels per item, score histograms of
            chosen vs other pairs, confidence of chosen pairs). Needs ``matplotlib``.
        txt: write the text summary here.

    Returns:
        a :class:`SilverReport` (``.text`` is the summary).

    Example:
        >>> print(silver_report(silver, png="out/silver.png").text)   # doctest: +SKIP
    """
    for target in (png, txt):  # fail before the (slow) drawing when a path cannot be written
        if target is not None:
            try:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"Cannot write {target}: {exc.strerror or exc}. Choose a writable output path.") \
                    from None
    lab = silver.labels.astype(bool)
    per_item = lab.sum(axis=1)
    counts = lab.sum(axis=0)
    order = np.argsort(-counts, kind="stable")
    label_counts = {silver.vocab[int(j)]: int(counts[j]) for j in order}
    chosen_conf = silver.confidence[lab]
    report = SilverReport(
        n_items=len(silver), n_labels=len(silver.vocab),
        labels_per_item=float(per_item.mean()) if len(silver) else 0.0,
        max_labels_per_item=int(per_item.max()) if len(silver) else 0,
        n_empty=int((per_item == 0).sum()), label_counts=label_counts,
        never_chosen=[silver.vocab[int(j)] for j in np.flatnonzero(counts == 0)],
        chosen_score_mean=_nanmean(silver.scores[lab]), other_score_mean=_nanmean(silver.scores[~lab]),
        chosen_confidence_mean=float(chosen_conf.mean()) if chosen_conf.size else math.nan,
        low_confidence_share=float((chosen_conf < 0.6).mean()) if chosen_conf.size else 0.0,
        rule=(silver.provenance or {}).get("rule"),
    )
    if png is not None:
        _plot_report(silver, report, Path(png))
    if txt is not None:
        body = report.text + "\n"

        def write(tmp: Path) -> None:
            tmp.write_text(body, encoding="utf-8")

        atomic_write(txt, write)
    return report


def _plot_report(silver: SilverData, report: SilverReport, path: Path) -> Path:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("matplotlib", "The silver-data report plot", "pip install matplotlib") from None
    # Figure + the Agg canvas directly: no pyplot, so no global backend state is touched.
    fig = Figure(figsize=(12, 8), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    lab = silver.labels.astype(bool)

    ax = axes[0, 0]
    items = list(report.label_counts.items())[:30]
    ax.barh([name[:28] for name, _ in items][::-1], [c for _, c in items][::-1], color="#4477aa")
    ax.set_title(f"Label frequency (top {len(items)} of {report.n_labels}; {len(report.never_chosen)} never chosen)")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("items")

    ax = axes[0, 1]
    per_item = lab.sum(axis=1)
    top = int(per_item.max()) if per_item.size else 0
    ax.hist(per_item, bins=np.arange(-0.5, top + 1.5, 1.0), color="#66aa55", rwidth=0.8)
    ax.set_xticks(range(0, top + 1, max(1, (top + 1) // 10)))
    ax.set_title(f"Labels per item ({report.n_empty} items with none)")
    ax.set_xlabel("chosen labels")
    ax.set_ylabel("items")

    ax = axes[1, 0]
    chosen, other = silver.scores[lab], silver.scores[~lab]
    chosen, other = chosen[np.isfinite(chosen)], other[np.isfinite(other)]
    both = np.concatenate([chosen, other]) if chosen.size + other.size else np.zeros(1)
    bins = np.linspace(float(both.min()), float(both.max()) + 1e-9, 50)
    if other.size:
        ax.hist(other, bins=bins, alpha=0.6, density=True, label=f"not chosen ({other.size})", color="#999999")
    if chosen.size:
        ax.hist(chosen, bins=bins, alpha=0.6, density=True, label=f"chosen ({chosen.size})", color="#cc6677")
    ax.set_title("Teacher scores")
    ax.set_xlabel("score")
    ax.legend(fontsize=8)

    ax = axes[1, 1]
    conf = silver.confidence[lab]
    ax.hist(conf, bins=np.linspace(0, 1, 41), color="#ddaa33")
    ax.set_title("Confidence of chosen labels")
    ax.set_xlabel("confidence")
    ax.set_ylabel("pairs")
    fig.suptitle(f"Silver data: {report.n_items} items, {report.n_labels} labels, "
                 f"{report.labels_per_item:.2f} labels/item")
    return _save_png(fig, path)
