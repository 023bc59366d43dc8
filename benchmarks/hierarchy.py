"""Hierarchical labelling on HWV validation (issue #29): the tree ignored against the tree used.

One table: per-level accuracy, hierarchical F1 (sets closed upward on both sides), leaf accuracy,
the share of consistent predicted sets and seconds per document, for

* retrieval only (no LLM), on all 1,602 documents and on the seeded 100-document slice:
  ``flat`` (the tree ignored: no score blending, the labels as the default rule chose them),
  ``tree`` (zsl's defaults for a tree: names as given, scores consistent along the tree, ``path``
  output) and ``top-down`` (``--tree-search top-down``), all
  through :class:`zsl.text.tagger.Tagger` and :mod:`zsl.hierarchy` as ``zsl label`` runs them;
* the full program (Infer, retrieval, Rank top 20) on the slice, read from finished run
  directories (``zsl label`` writes them; the LLM is never started here):
  ``$ZSL_HOME/bench/llm/hwv-val-100.flat.run``, ``.tree.run`` and ``.top-down.run``; each row's sets
  are the default rule applied to the run's recorded scores. For a missing run the exact ``zsl label`` command is printed instead;
* few-shot, retrieval only: 2 and 8 examples per top-level branch (seeded, taken from the
  validation file; the rest evaluated) against zero-shot on the same documents.

Scores are cached under ``$ZSL_HOME/bench/hierarchy`` (``--out``), so a second run only decodes.

    python -m benchmarks.hierarchy run                 # prints the table and the targets
    python -m benchmarks.hierarchy run --write         # ... and updates BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import ROOT, machine_line, run_parsed, write_jsonl, write_section

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hwv"
SLICE = 100  # the LLM slice (--slice): the seeded 100 of hwv_val, in file order (300 took too long here so far)


def slice_stem(size: int) -> str:
    """The slice's file name without ``.jsonl``: its runs are ``<stem>.flat.run``, ``.tree.run``, ``.top-down.run``."""
    return f"hwv-val-{size}"
SHOTS = (2, 8)
# How the tree-used LLM runs are asked for (the output mode flag of `zsl label`).


# -- the modes ---------------------------------------------------------------------------
# Tagger settings of each row, as `zsl label` flags set them (the tree ignored, zsl's defaults, top-down).
MODES: dict[str, dict[str, Any]] = {
    "flat": {"label_context": "none", "tree_blend": (0.0, 0.0), "tree_output": "flat"},
    "tree": {},
    "top-down": {"tree_search": "top-down"},
    # the other label contexts (the defaults otherwise): how the default 'none' was chosen
    "tree, context ambiguous": {"label_context": "ambiguous"},
    "tree, context parent": {"label_context": "parent"},
    "tree, context path": {"label_context": "path"},
}
CONTEXT_ROWS = ("tree, context ambiguous", "tree, context parent", "tree, context path")
FLAGS: dict[str, list[str]] = {
    "flat": ["--tree-output", "flat", "--label-context", "none", "--tree-blend", "0,0"],
    "tree": [],
    "top-down": ["--tree-search", "top-down"],
}


def label_sets(vocab, scores: np.ndarray, sets: np.ndarray, mode: str) -> list[list[int]]:
    """Each row's columns as the tagger writes them: its chosen labels (best first) in the mode's output."""
    from zsl.hierarchy import DEFAULT_TREE_OUTPUT, tree_columns, tree_of

    output = MODES[mode].get("tree_output", DEFAULT_TREE_OUTPUT)
    tree = tree_of(vocab)
    out = []
    for s, row in zip(scores, sets, strict=True):
        chosen = np.flatnonzero(row)
        chosen = chosen[np.argsort(-s[chosen], kind="stable")]
        out.append(tree_columns(vocab, s, chosen, output, tree=tree))
    return out


# -- metrics -------------------------------------------------------------------------------
def hier_metrics(tree: Any, pred: Sequence[Sequence[int]], gold: Sequence[Sequence[int]]) -> dict[str, Any]:
    """The table's metrics, in percent, from :func:`zsl.evaluation.metrics.hierarchical_metrics` (what
    ``zsl eval`` reports on a tree): per-level accuracy, hierarchical P/R/F1, leaf accuracy, consistency."""
    from zsl.evaluation.metrics import hierarchical_metrics

    m = hierarchical_metrics(tree, [np.asarray(g, dtype=np.int64) for g in gold],
                             [np.unique(np.asarray(p, dtype=np.int64)) for p in pred])
    return {"levels": [100 * lv["accuracy"] if lv["items"] else None for lv in m["levels"]],
            "hp": 100 * m["hierarchical_precision"], "hr": 100 * m["hierarchical_recall"],
            "hf1": 100 * m["hierarchical_f1"], "leaf": 100 * m["leaf_accuracy"],
            "consistent": 100 * m["consistent_share"]}


# -- data ------------------------------------------------------------------------------------
def load(data: Path):
    """The HWV vocabulary (with its tree) and the validation documents."""
    from zsl.vocab import LabelVocab

    vocab = LabelVocab.from_file(data / "hwv_labels.jsonl")
    path = data / "hwv_val.jsonl"
    if not path.is_file():
        raise SystemExit(f"missing {path}: pass --data pointing at the hwv folder")
    docs = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return vocab, docs


def default_rule():
    """The :class:`zsl.scoring.SetRule` of ``zsl label`` without examples (what the zero-shot rows use)."""
    from zsl.runs.labeller import LabelSettings, resolve_rule

    return resolve_rule(LabelSettings(), None)[0]


def slice_positions(n: int, size: int = SLICE) -> list[int]:
    """The seeded slice of the lead's LLM runs: ``default_rng(0).permutation(n)[:size]``, in file order."""
    return sorted(int(i) for i in np.random.default_rng(0).permutation(n)[:size])


def few_shot_split(docs: list[dict], shots: int, seed: int = 0, pool: int = max(SHOTS)) -> tuple[list[int], list[int]]:
    """``shots`` examples per top-level branch (the first of a seeded ``pool`` per branch, so 2 is a
    subset of 8) and the evaluated rest (every document outside the largest pool, for every ``shots``)."""
    rng = np.random.default_rng(seed)
    by_branch: dict[str, list[int]] = {}
    for i, d in enumerate(docs):
        by_branch.setdefault(d["labels"][0], []).append(i)
    chosen, held = [], set()
    for branch in sorted(by_branch):
        order = [by_branch[branch][j] for j in rng.permutation(len(by_branch[branch]))[:pool]]
        chosen += order[:shots]
        held |= set(order)
    return chosen, [i for i in range(len(docs)) if i not in held]


# -- scores ----------------------------------------------------------------------------------
class Retrieval:
    """Retrieval-only scores of the documents, cached under ``out``: the texts are encoded once
    (timed), each label context and few-shot fit scores those embeddings."""

    def __init__(self, args: argparse.Namespace, vocab, docs: list[dict]):
        from zsl.models.encoders import get_encoder

        self.out, self.vocab, self.docs = Path(args.out), vocab, docs
        self.encoder = get_encoder(args.encoder)
        self.out.mkdir(parents=True, exist_ok=True)
        # the cache is keyed by what changes the embeddings: the encoder's model id
        self.tag = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.encoder.model_id)
        self._emb: np.ndarray | None = None
        self.encode_s = 0.0

    def embeddings(self) -> np.ndarray:
        if self._emb is None:
            path, meta = self.out / f"texts.{self.tag}.npy", self.out / f"texts.{self.tag}.json"
            if path.is_file() and meta.is_file():
                self._emb, self.encode_s = np.load(path), json.loads(meta.read_text())["seconds"]
            else:
                t = time.perf_counter()
                self._emb = np.asarray(self.encoder.encode([d["text"] for d in self.docs]), dtype=np.float32)
                self.encode_s = time.perf_counter() - t
                np.save(path, self._emb)
                meta.write_text(json.dumps({"seconds": self.encode_s, "n": len(self.docs)}))
        return self._emb

    def predict(self, mode: str, shots: int = 0) -> tuple[list[list[int]], float]:
        """``(each document's label columns, seconds per document)`` in ``mode`` (:data:`MODES`),
        zero-shot (``zsl label``'s default rule) or fitted on ``shots`` examples per top-level branch (its
        fitted rule: the thresholds within each document's gap set, as ``zsl label --program`` chooses)."""
        from zsl.scoring import FITTED_GAP_K
        from zsl.text.tagger import Tagger

        rule = default_rule()
        name = f"{mode.replace(', ', '-').replace(' ', '-')}.{rule.name}{rule.k or ''}"
        name += f".fitted-gap{FITTED_GAP_K}" if shots else ""  # the fitted rule's sets (thresholds within the gap)
        path = self.out / f"sets.{self.tag}.{name}.{shots}shot.json"
        emb = self.embeddings()
        per_doc = self.encode_s / len(self.docs)
        if path.is_file():
            rec = json.loads(path.read_text())
            return rec["sets"], per_doc + rec["seconds"] / len(self.docs)
        tagger = Tagger(self.vocab, encoder=self.encoder, infer=False, rank=False, **MODES[mode])
        if shots:
            examples, _ = few_shot_split(self.docs, shots)
            tagger.fit([(self.docs[i]["text"], self.docs[i]["labels"]) for i in examples])
        t = time.perf_counter()
        s = np.asarray(tagger.score_embedded(emb), dtype=np.float32)
        sets = (tagger.fitted_rule() or rule).choose(s)
        cols = [[int(c) for c in row] for row in label_sets(self.vocab, s, sets, mode)]
        secs = time.perf_counter() - t
        path.write_text(json.dumps({"seconds": secs, "n": len(self.docs), "sets": cols}))
        return cols, per_doc + secs / len(self.docs)


def run_complete(run: Path) -> bool:
    """A finished `zsl label` run directory: its summary and labels are written."""
    return (run / "summary.json").is_file() and (run / "labels.jsonl").is_file() and (run / "manifest.json").is_file()


def run_mode(run: Path) -> str:
    """The tree mode a run was made in, from its manifest: ``flat`` (no tree settings recorded, as runs
    before the tree code, or the tree turned off), ``top-down``, or ``tree`` (any other use of the tree)."""
    settings = json.loads((run / "manifest.json").read_text(encoding="utf-8")).get("settings") or {}
    program = settings.get("settings") or {}
    if program.get("tree_search") == "top-down":
        return "top-down"
    used = (settings.get("tree_output", "flat") != "flat" or program.get("label_context", "none") != "none"
            or any(program.get("tree_blend") or []))
    return "tree" if used else "flat"


def run_scores(run: Path, vocab, ids: list[str]) -> tuple[np.ndarray, float]:
    """``(scores, seconds per document)`` of a finished run, rows in ``ids`` order."""
    from zsl.rows import read_predictions

    rows = {r.id: r for r in read_predictions(run)}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise SystemExit(f"{run} has no row for {len(missing)} of the slice's documents (e.g. {missing[0]}); "
                         f"it was made on another slice. Fix: pass the run of the same slice (--slice).")
    s = np.full((len(ids), len(vocab)), np.nan, dtype=np.float32)
    for n, i in enumerate(ids):
        for lab, score in rows[i].ranked:
            s[n, vocab.index(lab)] = score
    s = np.where(np.isnan(s), np.nanmin(s) - 1.0, s)  # unscored labels rank below every scored one
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    return s, float(summary["seconds"]) / max(int(summary.get("labelled") or len(ids)), 1)


def label_command(data: Path, slice_file: Path, run: Path, extra: list[str]) -> str:
    """The `zsl label` command that makes a missing LLM run of the slice."""
    cmd = ["zsl", "label", str(slice_file), "--labels", str(data / "hwv_labels.jsonl"), "--label-kind", "topics",
           "--top-scores", "1186", *extra, "--out", str(run)]
    return shlex.join(cmd)


# -- the table -------------------------------------------------------------------------------
@dataclass
class Row:
    """One line of the table."""

    group: str
    program: str
    tree: str
    docs: int
    m: dict[str, Any]
    seconds: float


def retrieval_rows(ret: Retrieval, gold: list[list[int]], positions: list[int], group: str,
                   shots: int = 0, modes: Sequence[str] = ("flat", "tree", "top-down")) -> list[Row]:
    """Retrieval only over ``positions``, one row per mode."""
    rows = []
    tree = ret.vocab.tree
    for mode in modes:
        sets, per_doc = ret.predict(mode, shots)
        m = hier_metrics(tree, [sets[i] for i in positions], [gold[i] for i in positions])
        program = "retrieval only" + (f", {shots} shots/branch" if shots else (", zero-shot" if group == "few" else ""))
        rows.append(Row(group, program, mode, len(positions), m, per_doc))
    return rows


def llm_rows(args: argparse.Namespace, vocab, docs: list[dict], positions: list[int],
             gold: list[list[int]], size: int = SLICE) -> tuple[list[Row], list[str]]:
    """The full program on the slice of ``size`` documents from finished runs, and the commands of the missing
    ones."""
    from zsl.hierarchy import consistent_scores

    llm, stem = Path(args.llm), slice_stem(size)
    slice_file = llm / f"{stem}.jsonl"
    ids = [docs[i]["id"] for i in positions]
    g = [gold[i] for i in positions]
    rows, todo = [], []
    runs = {"flat": Path(args.llm_flat) if args.llm_flat else llm / f"{stem}.flat.run",
            "tree": Path(args.llm_tree) if args.llm_tree else llm / f"{stem}.tree.run",
            "top-down": Path(args.llm_top_down) if args.llm_top_down else llm / f"{stem}.top-down.run"}
    for mode, run in runs.items():
        if not run_complete(run):
            todo.append(label_command(Path(args.data), slice_file, run, FLAGS[mode]))
            continue
        made = run_mode(run)
        if made != mode:
            raise SystemExit(f"{run} was labelled in the {made!r} tree mode (its manifest says so), but it is read "
                             f"as the {mode!r} row. Fix: label it again with: "
                             f"{label_command(Path(args.data), slice_file, run.with_name(run.name + '.new'), FLAGS[mode])}")
        s, per_doc = run_scores(run, vocab, ids)  # the sets again from the run's scores, by the default rule
        chosen = label_sets(vocab, s, default_rule().choose(s), mode)
        rows.append(Row("slice", "full program", mode, len(ids), hier_metrics(vocab.tree, chosen, g), per_doc))
        if mode == "flat":  # what consistent scores and path output add to the same LLM scores, afterwards
            c = consistent_scores(s, vocab)
            sets = label_sets(vocab, c, default_rule().choose(c), "tree")
            rows.append(Row("slice", "full program", "flat run, tree applied after", len(ids),
                            hier_metrics(vocab.tree, sets, g), per_doc))
    return rows, todo


def _cell(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def table(rows: list[Row], n_levels: int, size: int = SLICE) -> str:
    """The Markdown table of ``rows`` (``size``: the LLM slice's documents)."""
    levels = " | ".join(f"L{d + 1} acc" for d in range(n_levels))
    lines = [f"| program | tree | docs | {levels} | hP | hR | **hF1** | leaf acc | consistent % | s/doc |",
             "|---|---|---|" + "---|" * (n_levels + 6)]
    titles = {"all": "*all 1,602 validation documents*", "slice": f"*the seeded {size}-document slice*",
              "few": "*few-shot: the documents outside the 8-per-branch pool*"}
    group = None
    for r in rows:
        if r.group != group:
            group = r.group
            lines.append(f"| {titles[group]} |" + " |" * (n_levels + 8))
        lv = " | ".join(_cell(x) for x in (r.m["levels"] + [None] * n_levels)[:n_levels])
        lines.append(f"| {r.program} | {r.tree} | {r.docs} | {lv} | {r.m['hp']:.1f} | {r.m['hr']:.1f} | "
                     f"**{r.m['hf1']:.1f}** | {r.m['leaf']:.1f} | {r.m['consistent']:.0f} | {r.seconds:.4f} |")
    return "\n".join(lines)


def targets(rows: list[Row]) -> list[str]:
    """The issue's targets, each with a pass/fail mark (or what is missing to judge it)."""
    def find(group: str, program: str, tree: str) -> Row | None:
        return next((r for r in rows if (r.group, r.program, r.tree) == (group, program, tree)), None)

    out = []

    def check(name: str, ok: bool | None, detail: str) -> None:
        mark = "n/a (run missing)" if ok is None else ("PASS" if ok else "FAIL")
        out.append(f"- [{mark}] {name}: {detail}")

    for group, program in (("all", "retrieval only"), ("slice", "retrieval only"), ("slice", "full program")):
        flat, used = find(group, program, "flat"), find(group, program, "tree")
        gain = None if flat is None or used is None else used.m["hf1"] - flat.m["hf1"]
        check(f"{program} ({group}): tree used >= 5 hF1 points above flat", None if gain is None else gain >= 5,
              "missing" if gain is None else f"{used.m['hf1']:.1f} vs {flat.m['hf1']:.1f} ({gain:+.1f})")
    paths = [r for r in rows if r.tree in ("tree", "top-down")]
    bad = [f"{r.program}/{r.tree} {r.m['consistent']:.1f}%" for r in paths if r.m["consistent"] < 100]
    check("100% consistent sets in path mode", not bad, "all path-mode rows 100%" if not bad else "; ".join(bad))
    for mode in ("flat", "tree", "top-down"):
        full, ret = find("slice", "full program", mode), find("slice", "retrieval only", mode)
        check(f"full program above retrieval only ({mode}, slice)", None if full is None else
              full.m["hf1"] > ret.m["hf1"],
              "missing" if full is None else f"hF1 {full.m['hf1']:.1f} vs {ret.m['hf1']:.1f}")
    return out


def make_slice(llm: Path, docs: list[dict], positions: list[int], data: Path, size: int) -> None:
    """Write ``<stem>.jsonl`` (the slice's documents, in file order) and print the commands of its LLM runs."""
    llm.mkdir(parents=True, exist_ok=True)
    stem = slice_stem(size)
    write_jsonl(llm / f"{stem}.jsonl", [docs[i] for i in positions])
    for mode, extra in FLAGS.items():
        print(label_command(data, llm / f"{stem}.jsonl", llm / f"{stem}.{mode}.run", extra))


def run(args: argparse.Namespace) -> None:
    vocab, docs = load(Path(args.data))
    gold = [[vocab.index(g) for g in d["labels"]] for d in docs]
    size = getattr(args, "slice", SLICE)  # a Namespace built in Python may lack the options
    positions = slice_positions(len(docs), size)
    if getattr(args, "make_slice", False):
        make_slice(Path(args.llm), docs, positions, Path(args.data), size)
        return
    ret = Retrieval(args, vocab, docs)
    rows = retrieval_rows(ret, gold, list(range(len(docs))), "all",
                          modes=("flat", "tree", "top-down", *CONTEXT_ROWS))
    rows += retrieval_rows(ret, gold, positions, "slice")
    full, todo = llm_rows(args, vocab, docs, positions, gold, size)
    rows += full
    if not args.no_few_shot:
        _, rest = few_shot_split(docs, max(SHOTS))
        for shots in (0, *SHOTS):
            rows += retrieval_rows(ret, gold, rest, "few", shots, modes=("flat", "tree"))
    cmd = ("python -m benchmarks.hierarchy run" + (f" --encoder {args.encoder}" if args.encoder else "")
           + (f" --slice {size}" if size != SLICE else "") + (" --no-few-shot" if args.no_few_shot else ""))
    rule = default_rule().record()
    notes = [(
        f"`{cmd}` on {machine_line()}; encoder `{ret.encoder.model_id}`. Every zero-shot row's sets come from "
        f"`zsl label`'s default rule ({rule['name']}, k {rule.get('k')}, at least 1 label; for the LLM rows applied "
        "to each run's recorded scores of all 1,186 labels). flat = the tree ignored (`zsl label "
        f"{' '.join(FLAGS['flat'])}`: no blending, labels as chosen); tree = zsl's defaults for a tree (names as "
        "given, scores consistent along the tree, each chosen label written with its ancestors); top-down = "
        "`--tree-search top-down`; tree, context X = the defaults with `--label-context X` (labels embedded "
        "with their parent, or path, where ambiguous / always). Few-shot: examples taken from hwv_val (seed 0), `Tagger.fit`, its calibrated "
        "thresholds choose the labels within each document's gap set (`Tagger.fitted_rule`). s/doc: text encoding, scoring and the output mode (the label index is "
        "built once and not counted; for the full program the run's seconds). Metrics: "
        "`zsl.evaluation.metrics.hierarchical_metrics`, what `zsl eval` reports on a tree: level d acc = the "
        "predicted labels at depth d (sets closed upward) are exactly the gold one; hP/hR/hF1 micro over sets "
        "closed upward; leaf acc = the gold deepest label is predicted; consistent = the predicted set is closed "
        "upward.")]
    text = "\n\n".join([*notes, table(rows, vocab.tree.n_levels, size), "Targets:\n\n" + "\n".join(targets(rows))])
    if todo:
        text += ("\n\nLLM runs still missing (the benchmark reads them when complete; run each, then rerun this):\n\n"
                 + "\n".join(f"    {c}" for c in todo))
    print(text)
    (Path(args.out) / "hierarchy.md").write_text(text + "\n", encoding="utf-8")
    if args.write:  # each slice keeps its own table
        write_section("hierarchy" if size == SLICE else f"hierarchy-{size}", text,
                      heading="Hierarchical labelling on HWV (issue #29)" if size == SLICE else
                      f"Hierarchical labelling on HWV, the {size}-document slice (issue #29)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.hierarchy", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="the hwv folder (hwv_labels.jsonl, hwv_val.jsonl)")
    p.add_argument("--out", default=None, help="score cache and table (default: $ZSL_HOME/bench/hierarchy)")
    p.add_argument("--encoder", default=None, help="sentence encoder (default: zsl's default)")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="score, decode, print the table and the targets")
    r.add_argument("--llm", default=None, help="folder of the lead's LLM runs (default: $ZSL_HOME/bench/llm)")
    r.add_argument("--llm-flat", default=None, help="the full program's flat run of the slice (default: "
                   "LLM/hwv-val-100.run)")
    r.add_argument("--llm-tree", default=None, help="its run with the tree used (default: LLM/hwv-val-100.tree.run)")
    r.add_argument("--llm-top-down", default=None, help="its top-down run (default: LLM/hwv-val-100.top-down.run)")
    r.add_argument("--no-few-shot", action="store_true", help="leave out the few-shot rows")
    r.add_argument("--slice", type=int, default=SLICE, help=f"documents in the LLM rows' seeded slice (default {SLICE})")
    r.add_argument("--make-slice", action="store_true",
                   help="write the slice's input file into --llm, print the LLM runs' commands, and stop")
    r.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    r.set_defaults(func=run)
    args = p.parse_args(argv)
    if getattr(args, "llm", "") is None:
        from zsl.util.paths import subdir

        args.llm = str(subdir("bench") / "llm")
    run_parsed(args, "hierarchy")


if __name__ == "__main__":
    main()
