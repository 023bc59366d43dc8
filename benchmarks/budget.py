"""Budgeted labelling: how much of the 100%-LLM quality does a 5-25% LLM budget keep, and at what time?

    python -m benchmarks.budget run [--dataset goemotions reuters] [--n 300]   # resumable
    python -m benchmarks.budget report [--write]                                # table + docs/budget.png

Data: a seeded slice of ``--n`` items of each shared train file (GoEmotions, Reuters-21578
ModApte) is labelled with LLM budgets of 0, 5, 10, 25 and 100%, by the active selection of
:mod:`zsl.runs.budget` and by random selection (the baseline), each with 5 seeds. Quality of the
slice's final labels against its gold labels: micro- and macro-F1 of each row's ``k`` = 1 label
(the rows' own label sets) and mAP over items; and of the student each budget produces, on
``--heldout`` further seeded items of the same file (retrieval only at 0%). Once the LLM has
answered every slice item (the 100% run), each record also says how often the rows it did not
label agree with its answer (and how often retrieval's would): whether the student imitates the
teacher at all. Records are kept per slice size, so ``--n 300`` and ``--n 1000`` sit side by side.

The teacher (the full Infer-Retrieve-Rank program on the embedded LLM, ``zsl label``'s
defaults) labels each slice item at most once, when some configuration first asks for it; its
answer and its measured seconds are kept in ``$ZSL_HOME/bench/budget/<dataset>.teacher.jsonl``
(by position in the seeded order, so a larger ``--n`` reuses them).
A configuration's LLM seconds are the sum of the recorded seconds of the items it sent to the
LLM; its total adds the cheap pass (embedding + retrieval of the slice, measured once) and its
own selection and student time. The 100% row is the LLM alone on every item. Students
self-train as zsl's default does (``--self-train``; the report adds the other shares run).

``students`` asks whether the student or the teacher is the limit: heads trained on ``n`` items'
teacher labels, on the teacher's scores as soft targets (:func:`soft_targets`), or on the same
items' gold labels, and the encoder fine-tuned on the pairs, all scored on the held-out items.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import ROOT, checkout_file
from zsl.base import top_k_sets
from zsl.runs.budget import SELF_TRAIN

DATA = ROOT.parent / "shared" / "data"
DATASETS = ("goemotions", "reuters")
BUDGETS = (0, 5, 10, 25, 100)
SELECTIONS = ("active", "random")
PLOT = ROOT / "docs" / "budget.png"


def load(name: str, n: int, heldout: int, seed: int = 0) -> tuple[Any, str, list[dict], list[dict]]:
    """``(vocab, label_kind, slice rows, held-out rows)`` from the shared train file, seeded."""
    from zsl import LabelVocab

    if name == "goemotions":
        folder, vocab_file, train, kind = DATA / "goemotions", "goemotions_labels.txt", "goemotions_train.jsonl", "emotions"
    elif name == "reuters":
        folder, vocab_file, train, kind = (DATA / "reuters21578", "reuters21578_labels.tsv",
                                           "reuters21578_modapte_train.jsonl", "topics")
    else:
        raise SystemExit(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if not (folder / train).is_file():
        raise SystemExit(f"missing {folder / train}: the shared data folder must sit beside the repository")
    vocab = LabelVocab.from_file(folder / vocab_file)
    rows = [json.loads(x) for x in (folder / train).read_text(encoding="utf-8").splitlines() if x.strip()]
    rows = [r for r in rows if str(r.get("text") or "").strip() and r.get("labels")]
    random.Random(seed).shuffle(rows)
    return vocab, kind, rows[:n], rows[n:n + heldout]


def _metrics(y: np.ndarray, pred: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    from zsl.evaluation.metrics import f1_scores, mean_average_precision

    f1 = f1_scores(y, pred)
    keep = y.any(axis=1)
    return {"micro_f1": round(100 * f1["micro_f1"], 2), "macro_f1": round(100 * f1["macro_f1"], 2),
            "map": round(100 * mean_average_precision(y[keep], scores[keep], average="item"), 2)}


class Teacher:
    """The LLM program over the slice, each item labelled once and kept on disk with its seconds."""

    def __init__(self, vocab, kind: str, texts: list[str], path: Path, lm: str | None):
        self.vocab, self.kind, self.texts, self.path, self.lm = vocab, kind, texts, path, lm
        self.records: dict[int, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    r = json.loads(line)
                    if r.get("lm") != lm:  # records made before this field: the embedded LLM (None)
                        raise SystemExit(f"{path} holds answers of the LLM {r.get('lm') or 'embedded'}, not "
                                         f"{lm or 'embedded'}: give another teacher its own records folder "
                                         "(python -m benchmarks.budget --out DIR run ...)")
                    self.records[int(r["i"])] = r
        self._labeller = None
        self.pos = {lab: j for j, lab in enumerate(vocab.labels)}

    def _get(self):
        if self._labeller is None:
            from zsl.runs.labeller import LabelSettings, make_labeller

            self._labeller = make_labeller("jsonl", self.vocab, LabelSettings(k=1, label_kind=self.kind, lm=self.lm))
        return self._labeller

    def __call__(self, idx: list[int]) -> dict[int, list[int] | None]:
        from zsl.data.files import Item
        from zsl.util.retry import Skipped

        todo = [i for i in idx if i not in self.records]
        if todo:
            print(f"    LLM: {len(todo)} new item(s)", flush=True)
        with self.path.open("a", encoding="utf-8") as fh:
            for i in todo:
                t = time.perf_counter()
                out, _ = self._get().label([Item(id=str(i), text=self.texts[i])], lambda _n: None)
                rec = {"i": i, "seconds": round(time.perf_counter() - t, 3), **({"lm": self.lm} if self.lm else {})}
                rec.update({"error": out[0].reason} if isinstance(out[0], Skipped) else
                           {"labels": out[0]["labels"], "top_scores": out[0]["top_scores"]})
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
                self.records[i] = rec
        return {i: ([self.pos[lab] for lab in self.records[i]["labels"]] if "labels" in self.records[i] else None)
                for i in idx}

    def agreement(self, pred: np.ndarray, items: list[int]) -> float | None:
        """% of ``items`` (those the teacher has answered) whose predicted set ``pred[i]`` shares a
        label with the teacher's answer: how well the rows the LLM did not label imitate it."""
        known = [i for i in items if "labels" in self.records.get(i, {})]
        if not known:
            return None
        hits = sum(bool(pred[i, [self.pos[lab] for lab in self.records[i]["labels"]]].any()) for i in known)
        return round(100 * hits / len(known), 1)

    def scores(self, i: int) -> np.ndarray:
        """The teacher's scores of item ``i`` over the vocabulary (labels it did not keep: below all)."""
        rec = self.records[i]
        s = np.full(len(self.vocab), -1e6, dtype=np.float32)
        for lab, v in rec["top_scores"].items():
            s[self.pos[lab]] = v
        return s


def _records(out: Path) -> dict[tuple, dict[str, Any]]:
    p = out / "results.jsonl"
    if not p.exists():
        return {}
    recs = {}
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            r.setdefault("self_train", 0.0)  # records made before self-training existed
            recs[(r["dataset"], r["items"], r["budget"], r["selection"], r["seed"], r["self_train"])] = r
    return recs


def _cheap_pass(vocab, kind: str, texts: list[str], held_texts: list[str]):
    """Retrieval over the slice and the held-out items: ``(emb, scores, seconds of the slice's
    pass, held-out emb, held-out scores)``, with the default encoder."""
    from zsl.text.tagger import Tagger

    tagger = Tagger(vocab, label_kind=kind, infer=False, rank=False)
    encoder = tagger.program_.index.encoder
    t = time.perf_counter()
    emb = np.asarray(encoder.encode(texts, batch_size=64), dtype=np.float32)
    cheap = tagger.score_embedded(emb)
    seconds = time.perf_counter() - t
    emb_h = np.asarray(encoder.encode(held_texts, batch_size=64), dtype=np.float32)
    return emb, cheap, seconds, emb_h, tagger.score_embedded(emb_h)


def run(args: argparse.Namespace) -> None:
    from zsl.runs.budget import budget_loop, parse_budget

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done = _records(out)
    for name in args.dataset:
        vocab, kind, rows, held = load(name, args.n, args.heldout)
        texts = [r["text"] for r in rows]
        y = vocab.to_multi_hot([r["labels"] for r in rows], strict=False)
        yh = vocab.to_multi_hot([r["labels"] for r in held], strict=False)
        emb, cheap, cheap_s, emb_h, cheap_h = _cheap_pass(vocab, kind, texts, [r["text"] for r in held])
        teacher = Teacher(vocab, kind, texts, out / f"{name}.teacher.jsonl", args.lm)
        print(f"{name}: {len(rows)} items in the slice, {len(held)} held out; cheap pass {cheap_s:.1f}s", flush=True)
        for budget in args.budgets:
            for selection in SELECTIONS:
                for seed in args.seeds:
                    key = (name, len(rows), budget, selection, seed, args.self_train)
                    if key in done or (budget in (0, 100) and (
                            selection != "active" or any(k[:3] == key[:3] for k in done))):
                        continue  # 0% and 100% choose nothing: one run (seeds added later do not repeat it)
                    print(f"  {name} budget {budget}% {selection} seed {seed} self-train {args.self_train}", flush=True)
                    n_llm = parse_budget(f"{budget}%", len(rows))
                    t = time.perf_counter()
                    res = budget_loop(emb, cheap, teacher, n_llm=n_llm, k=1, selection=selection, seed=seed,
                                      self_train=args.self_train)
                    loop_s = time.perf_counter() - t - sum(r["seconds_teacher"] for r in res.rounds)
                    final = res.student_scores.copy()
                    pred = top_k_sets(final, 1)
                    for i in res.llm_items:
                        if res.source[i] == "llm":
                            final[i] = teacher.scores(i)
                            pred[i] = 0
                            pred[i, res.teacher_labels[i]] = 1
                    llm_s = sum(teacher.records[i]["seconds"] for i in res.llm_items)
                    total_s = llm_s if budget == 100 else llm_s + cheap_s + loop_s
                    if res.student is not None:
                        sh = res.student.fuse(cheap_h, emb_h)
                    else:
                        sh = cheap_h
                    rest = [i for i in range(len(rows)) if res.source[i] != "llm"]
                    rec = {"dataset": name, "budget": budget, "selection": selection, "seed": seed,
                           "self_train": args.self_train, "items": len(rows),
                           "rest_agrees": {"final": teacher.agreement(pred, rest),
                                           "retrieval": teacher.agreement(top_k_sets(cheap, 1), rest)},
                           "llm_items": len(res.llm_items), "slice": _metrics(y, pred, final),
                           "heldout_student": _metrics(yh, top_k_sets(sh, 1), sh), "heldout_items": len(held),
                           "llm_s": round(llm_s, 1), "other_s": round(0.0 if budget == 100 else cheap_s + loop_s, 2),
                           "total_s": round(total_s, 1), "rounds": res.rounds}
                    print(f"    slice {rec['slice']}  held-out student {rec['heldout_student']}  "
                          f"LLM {llm_s:.0f}s total {total_s:.0f}s", flush=True)
                    with (out / "results.jsonl").open("a", encoding="utf-8") as fh:
                        fh.write(json.dumps(rec) + "\n")
                    done[key] = rec


def students(args: argparse.Namespace) -> None:
    """Is the student or the teacher the limit? Students trained on ``n`` slice items' teacher labels
    vs. the same items' gold labels, scored on the held-out items against gold (no LLM call: the
    teacher's answers come from ``run``'s records).

    Two students: the budget loop's own (an :class:`~zsl.student.heads.AnchoredHead` on the frozen
    encoder, anchored on retrieval; no guard here) and the encoder fine-tuned on the pairs
    (:func:`zsl.text.finetune.fine_tune_encoder`, then retrieval with it). The ``n`` items are a seeded
    random choice of the teacher's items, as random selection would send them.
    """
    import shutil
    import tempfile

    from zsl.student.heads import AnchoredHead
    from zsl.text.finetune import fine_tune_encoder
    from zsl.text.tagger import Tagger

    out = Path(args.out)
    path = out / "students.jsonl"
    done = set()
    if path.exists():
        done = {(r["dataset"], r["n"], r["labels"], r["student"], r["seed"])
                for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}
    for name in args.dataset:
        vocab, kind, rows, held = load(name, args.n_slice, args.heldout)
        teacher = Teacher(vocab, kind, [r["text"] for r in rows], out / f"{name}.teacher.jsonl", None)
        have = sorted(i for i, r in teacher.records.items() if "labels" in r and i < len(rows))  # this slice's
        if not have:
            raise SystemExit(f"no teacher answers for {name}: run `python -m benchmarks.budget run --dataset {name}` first")
        held_texts = [r["text"] for r in held]
        emb, cheap, _, emb_h, cheap_h = _cheap_pass(vocab, kind, [r["text"] for r in rows], held_texts)
        yh = vocab.to_multi_hot([r["labels"] for r in held], strict=False)
        rec0 = {"dataset": name, "n": 0, "labels": "-", "student": "retrieval", "seed": 0,
                "heldout": _metrics(yh, top_k_sets(cheap_h, 1), cheap_h)}
        print(f"{name}: retrieval on {len(held)} held-out items {rec0['heldout']}", flush=True)
        for n in args.n:
            for seed in args.seeds:
                pick = list(have)
                random.Random(seed).shuffle(pick)
                pick = sorted(pick[:n])
                for source in ("teacher", "gold"):
                    labels = [teacher.records[i]["labels"] if source == "teacher" else rows[i]["labels"] for i in pick]
                    y = vocab.to_multi_hot(labels, strict=False)
                    for student in args.students:
                        key = (name, n, source, student, seed)
                        if key in done:
                            continue
                        t = time.perf_counter()
                        if student == "head-soft" and source == "gold":
                            continue  # gold labels have no scores
                        if student in ("head", "head-soft"):
                            head = AnchoredHead(random_state=seed).fit(emb[pick], y, cheap[pick])
                            if student == "head-soft":  # the same penalty, the teacher's scores as targets
                                soft = soft_targets(np.stack([teacher.scores(i) for i in pick]))
                                head = AnchoredHead(lam=head.lam_, random_state=seed).fit(emb[pick], soft,
                                                                                          cheap[pick], soft=True)
                            sh = head.fuse(cheap_h, emb_h)
                        else:
                            tmp = Path(tempfile.mkdtemp(prefix="zsl-student-"))
                            try:
                                folder = fine_tune_encoder([(rows[i]["text"], lab) for i, lab in zip(pick, labels)],
                                                           vocab, tmp / "enc", unknown_labels="skip", seed=seed,
                                                           show_progress=False)
                                ft = Tagger(vocab, label_kind=kind, infer=False, rank=False, encoder=str(folder))
                                sh = ft.score_embedded(np.asarray(ft.program_.index.encoder.encode(
                                    held_texts, batch_size=64), dtype=np.float32))
                            finally:
                                shutil.rmtree(tmp, ignore_errors=True)
                        rec = {"dataset": name, "n": n, "labels": source, "student": student, "seed": seed,
                               "heldout": _metrics(yh, top_k_sets(sh, 1), sh), "seconds": round(time.perf_counter() - t, 1),
                               "retrieval": rec0["heldout"]}
                        print(f"  n {n} seed {seed} {source} labels, {student}: {rec['heldout']} "
                              f"({rec['seconds']:.0f}s)", flush=True)
                        with path.open("a", encoding="utf-8") as fh:
                            fh.write(json.dumps(rec) + "\n")


SOFT_TEMPERATURE = 0.05  # the teacher's fused scores span about 0.5 per item


def soft_targets(scores: np.ndarray, temperature: float = SOFT_TEMPERATURE) -> np.ndarray:
    """A teacher's scores ``(n, K)`` as soft targets: a softmax over each row at ``temperature``
    (labels the teacher did not score, at -1e6, get 0).

    Example:
        >>> soft_targets(np.array([[0.3, 0.25, -1e6]])).astype(float).round(2).tolist()
        [[0.73, 0.27, 0.0]]
    """
    from zsl.image.global_local import softmax

    return softmax(np.asarray(scores, dtype=np.float64) / temperature, axis=1).astype(np.float32)


ESCO_WEIGHTS = {"text_weight": 0.5, "rank_weight": 0.3, "prior_weight": 0.0, "rank_top": 30}  # fitted on validation (#13)


def esco(args: argparse.Namespace) -> None:
    """The 14k-label regime from the recorded LLM answers of the #13 test run (no LLM call here).

    Items: ESCO TECH + HOUSE test (600 sentences), from the records ``--variant`` of
    ``python -m benchmarks.irera run`` (made with ``--rank-top 30`` or more). The teacher's scores are
    the recorded Infer phrases and Rank log-odds fused with the weights fitted on validation; its
    seconds are the recorded ones. Students learn the teacher's 3 best skills per item. RP@5 /
    RP@10 of the final scores, with the student (self-training as zsl's default, and without) or
    with plain retrieval for the items the LLM did not see.
    """
    from types import SimpleNamespace

    from benchmarks import irera
    from zsl.evaluation.metrics import rp_at_k
    from zsl.runs.budget import budget_loop, parse_budget

    data = DATA / "esco"
    ns = SimpleNamespace(data=str(data), descriptions=True, encoder=None)
    index = irera.make_index(ns)
    vocab = index.vocab
    store = Path(args.irera_out) if args.irera_out else Path(args.out).parent / "irera"
    texts, gold, recs = [], [], []
    for split in ("tech_test", "house_test"):
        rows = irera.load_split(data, split)
        path = store / f"{split}.{args.variant}.jsonl"
        if not path.exists():
            raise SystemExit(f"missing {path}: run `python -m benchmarks.irera run --split {split} --rank-top 30 "
                             f"--variant {args.variant}` first")
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                texts.append(rows[r["i"]]["text"])
                gold.append(rows[r["i"]]["labels"])
                recs.append(r)
    y = vocab.to_multi_hot(gold, strict=False)
    t = time.perf_counter()
    emb = np.asarray(index.encoder.encode(texts, batch_size=64), dtype=np.float32)
    cheap = np.asarray(index.similarities(emb), dtype=np.float32)
    cheap_s = time.perf_counter() - t
    w = dict(ESCO_WEIGHTS)
    top = int(w.pop("rank_top"))
    program = SimpleNamespace(index=index)
    cache: dict = {}
    full = np.stack([irera.scores_for(r, x, program, variant="d", phrase_cache=cache, rank_top=top, **w)
                     for r, x in zip(recs, texts, strict=True)]).astype(np.float32)
    secs = np.array([r["seconds_infer"] + r.get("seconds_retrieve", 0.0) + r["seconds_rank"] for r in recs])
    k = 3
    teacher_top = np.argsort(-full, axis=1)[:, :k]

    def teach(idx: list[int]) -> dict[int, list[int] | None]:
        return {i: teacher_top[i].tolist() for i in idx}

    def rp(s: np.ndarray) -> tuple[float, float]:
        return 100 * rp_at_k(y, s, 5), 100 * rp_at_k(y, s, 10)

    def cell(runs: list[tuple[float, float]]) -> str:
        """The run with the median RP@10, as "RP@5 / RP@10"."""
        rp5, rp10 = sorted(runs, key=lambda r: r[1])[len(runs) // 2]
        return f"{rp5:.1f} / {rp10:.1f}"

    lines = [(f"ESCO TECH + HOUSE test ({len(texts)} sentences, {len(vocab):,} skills), teacher = the program of the "
             f"irera records `{args.variant}` (rank top {top}, fitted weights); students learn its {k} best skills. "
             "RP@5 / RP@10 of the final scores, medians over 3 seeds:"), "",
             ("| LLM budget | selection | LLM s | rest by the student | the same, no self-training | rest by retrieval |"),
             "|---|---|---|---|---|---|", f"| 0% | - | 0 | - | - | {cell([rp(cheap)])} |"]
    for budget in (5, 10, 25):
        n_llm = parse_budget(f"{budget}%", len(texts))
        for selection in SELECTIONS:
            with_student, plain, with_retrieval, llm_s = [], [], [], []
            for seed in (0, 1, 2):
                res = budget_loop(emb, cheap, teach, n_llm=n_llm, k=k, selection=selection, seed=seed)
                res0 = budget_loop(emb, cheap, teach, n_llm=n_llm, k=k, selection=selection, seed=seed, self_train=0)
                a, a0, b = res.student_scores.copy(), res0.student_scores.copy(), cheap.copy()
                a[res.llm_items] = b[res.llm_items] = full[res.llm_items]  # RP@K ranks each item on its own
                a0[res0.llm_items] = full[res0.llm_items]
                with_student.append(rp(a))
                plain.append(rp(a0))
                with_retrieval.append(rp(b))
                llm_s.append(secs[res.llm_items].sum())
            lines.append(f"| {budget}% | {selection} | {np.median(llm_s):.0f} | {cell(with_student)} | {cell(plain)} | "
                         f"{cell(with_retrieval)} |")
            print(lines[-1], flush=True)
    lines.append(f"| 100% | - | {secs.sum():.0f} | - | - | {cell([rp(full)])} |")
    table = "\n".join(lines) + f"\n\n(cheap pass: {cheap_s:.0f} s for {len(texts)} sentences.)"
    print(table)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "esco.md").write_text(table + "\n", encoding="utf-8")


def _median(recs: list[dict], *path: str) -> float:
    vals = []
    for r in recs:
        v: Any = r
        for p in path:
            v = v[p]
        vals.append(v)
    return float(np.median(vals))


def report(args: argparse.Namespace) -> None:
    recs = list(_records(Path(args.out)).values())
    if not recs:
        raise SystemExit("no results yet: run `python -m benchmarks.budget run` first")
    lines = []
    groups: dict[tuple, list[dict]] = {}  # zsl's default self-training (0% and 100% have no rest to self-train on)
    ablation: dict[tuple, list[dict]] = {}  # the budgets with the other self-training settings run
    for r in recs:  # a slice is a dataset and its size: (name, items)
        key = ((r["dataset"], r["items"]), r["budget"], r["selection"])
        if r["budget"] in (0, 100) or r["self_train"] == SELF_TRAIN:
            groups.setdefault(key, []).append(r)
        else:
            ablation.setdefault(key + (r["self_train"],), []).append(r)
    for name in _slices(groups):
        full = groups.get((name, 100, "active"))
        nh = next(r["heldout_items"] for r in recs if (r["dataset"], r["items"]) == name)
        lines += [f"**{name[0]}** ({name[1]}-item slice, {nh} held-out items; medians over seeds):", "",
                  ("| LLM budget | selection | seeds | LLM items | LLM s | total s | slice micro-F1 / macro-F1 / mAP "
                   "| vs 100%: micro-F1, time | held-out student micro-F1 / mAP | rest = the LLM's label: final "
                   "(retrieval) |"), "|---|---|---|---|---|---|---|---|---|---|"]
        for budget in sorted({k[1] for k in groups if k[0] == name}):
            for sel in SELECTIONS:
                g = groups.get((name, budget, sel))
                if not g:
                    continue
                mi, ma, mp = (_median(g, "slice", m) for m in ("micro_f1", "macro_f1", "map"))
                tot = _median(g, "total_s")
                vs = "-"
                if full:
                    vs = (f"{100 * mi / max(full[0]['slice']['micro_f1'], 1e-9):.0f}%, "
                          f"{100 * tot / max(full[0]['total_s'], 1e-9):.1f}%")
                label = {0: "0% (retrieval only)", 100: "100% (LLM on every item)"}.get(budget, f"{budget}%")
                sel_cell = "-" if budget in (0, 100) else sel
                lines.append(f"| {label} | {sel_cell} | {len(g)} | {g[0]['llm_items']} | {_median(g, 'llm_s'):.0f} "
                             f"| {tot:.0f} | {mi:.1f} / {ma:.1f} / {mp:.1f} | {vs} | "
                             f"{_median(g, 'heldout_student', 'micro_f1'):.1f} / "
                             f"{_median(g, 'heldout_student', 'map'):.1f} | {_agree(g)} |")
        lines.append("")
        lines += _ablation_table(name, groups, ablation)
    lines += _students_table(Path(args.out))
    esco_md = Path(args.out) / "esco.md"
    if esco_md.exists():
        lines += ["The 14k-label regime (`python -m benchmarks.budget esco`):", "",
                  *esco_md.read_text(encoding="utf-8").splitlines()]
    else:  # records made on another machine: keep the published table rather than drop it
        old = _published_esco()
        if old:
            lines += [("The 14k-label regime (`python -m benchmarks.budget esco`; the table of an earlier run, whose "
                      "records are not on this machine):"), "", *old]
    table = "\n".join(lines).rstrip()
    print(table)
    _plot(groups)
    if args.write:
        from benchmarks import write_section

        slices = _slices(groups)
        sizes = "; ".join(f"N = {n} with `--dataset {' '.join(d for d, m in slices if m == n)}`"
                          for n in sorted({m for _, m in slices}))
        cmd = (f"`python -m benchmarks.budget run --n N --budgets 100` (the LLM part, alone), `python -m "
               f"benchmarks.budget run --n N` (every budget, from the recorded answers), for the ablation "
               f"`python -m benchmarks.budget run --n N --budgets 5 10 25 --self-train S` with S = 0, 0.25, 0.75, 1, "
               f"then `python -m benchmarks.budget report --write`; {sizes} (the ablations run are the columns shown)")
        block = f"{cmd}\n\n{table}\n\n![micro-F1 against LLM seconds](docs/budget.png)"
        print(f"updated {write_section('budget', block, heading='Budgeted labelling (issue #15)')}")


def _agree(g: list[dict]) -> str:
    """Median % of the rows the LLM did not label that match its answer, final (retrieval)."""
    got = [r["rest_agrees"] for r in g if r.get("rest_agrees", {}).get("final") is not None]
    if not got:
        return "-"
    return (f"{np.median([a['final'] for a in got]):.0f}% "
            f"({np.median([a['retrieval'] for a in got]):.0f}%)")


def _slices(groups: dict[tuple, list[dict]]) -> list[tuple[str, int]]:
    """The ``(dataset, items)`` slices with records, in :data:`DATASETS` order, smaller slices first."""
    return sorted({k[0] for k in groups}, key=lambda s: (DATASETS.index(s[0]), s[1]))


def _ablation_table(name: tuple[str, int], groups: dict[tuple, list[dict]],
                    ablation: dict[tuple, list[dict]]) -> list[str]:
    """Slice and held-out micro-F1 with zsl's self-training share vs. the other shares that were run."""
    others = sorted({k[3] for k in ablation if k[0] == name})
    if not others:
        return []
    cols = [SELF_TRAIN, *others]
    lines = [(f"Self-training ({name[0]}, {name[1]} items; `run --self-train S`; slice micro-F1, then held-out "
              f"student micro-F1, medians over seeds; the table above uses {SELF_TRAIN}):"), "",
             "| LLM budget | selection | " + " | ".join(f"self-train {c}" for c in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for budget in sorted({k[1] for k in ablation if k[0] == name}):
        for sel in SELECTIONS:
            cells = []
            for c in cols:
                g = groups.get((name, budget, sel)) if c == SELF_TRAIN else ablation.get((name, budget, sel, c))
                cells.append(f"{_median(g, 'slice', 'micro_f1'):.1f}, {_median(g, 'heldout_student', 'micro_f1'):.1f}"
                             if g else "-")
            lines.append(f"| {budget}% | {sel} | " + " | ".join(cells) + " |")
    return lines + [""]


def _students_table(out: Path) -> list[str]:
    path = out / "students.jsonl"
    if not path.exists():
        return []
    recs = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    lines = []
    for name in DATASETS:
        mine = [r for r in recs if r["dataset"] == name]
        if not mine:
            continue
        base = mine[0]["retrieval"]
        lines += [(f"Students from the teacher's labels, its scores (soft targets) and the same items' gold labels "
                   f"(**{name}**, `python -m benchmarks.budget students`; held-out micro-F1 / mAP against gold; "
                   f"retrieval alone {base['micro_f1']:.1f} / {base['map']:.1f}):"), "",
                  ("| labelled items | seeds | head, teacher labels | head, teacher scores (soft) | head, gold labels | "
                   "fine-tuned encoder, teacher labels | fine-tuned encoder, gold labels |"), "|---|---|---|---|---|---|---|"]
        for n in sorted({r["n"] for r in mine}):
            seeds = len({r["seed"] for r in mine if r["n"] == n})
            cells = []
            for student, source in (("head", "teacher"), ("head-soft", "teacher"), ("head", "gold"),
                                    ("finetune", "teacher"), ("finetune", "gold")):
                g = [r for r in mine if r["n"] == n and r["student"] == student and r["labels"] == source]
                cells.append((f"{_median(g, 'heldout', 'micro_f1'):.1f} / {_median(g, 'heldout', 'map'):.1f}"
                              + ("" if len(g) == seeds else f" ({len(g)} seed{'s' if len(g) > 1 else ''})"))
                             if g else "-")
            lines.append(f"| {n} | {seeds} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _published_esco() -> list[str]:
    path = ROOT / "BENCHMARKS.md"
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    start = text.find("The 14k-label regime (`python -m benchmarks.budget esco`")
    end = text.find("![micro-F1 against LLM seconds]", start)
    if start < 0 or end < 0:
        return []
    return text[start:end].strip().splitlines()[2:]


def _plot(groups: dict[tuple, list[dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = _slices(groups)
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for sel, style in (("active", "o-"), ("random", "s--")):
            pts = []
            for budget in sorted({k[1] for k in groups if k[0] == name}):
                g = groups.get((name, budget, sel)) or (groups.get((name, budget, "active"))
                                                         if budget in (0, 100) else None)
                if g:
                    pts.append((_median(g, "llm_s"), _median(g, "slice", "micro_f1"), budget))
            if pts:
                xs, ys, _bs = zip(*pts, strict=True)
                ax.plot(xs, ys, style, label=f"{sel} selection")
                if sel == "active":
                    for x, yv, b in pts:
                        ax.annotate(f"{b}%", (x, yv), textcoords="offset points", xytext=(4, -10), fontsize=8)
        ax.set_title(f"{name[0]}: final labels of the {name[1]}-item slice")
        ax.set_xlabel("LLM seconds (2 CPU cores)")
        ax.set_ylabel("micro-F1 (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    plot = checkout_file(PLOT.relative_to(ROOT).as_posix())
    plot.parent.mkdir(exist_ok=True)
    fig.savefig(plot, dpi=110)
    print(f"wrote {plot}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.budget", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="records folder (default: $ZSL_HOME/bench/budget)")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dataset", nargs="+", default=list(DATASETS), choices=DATASETS)
    r.add_argument("--n", type=int, default=1000, help="items in the slice (default 1000)")
    r.add_argument("--heldout", type=int, default=1000, help="held-out items the students are scored on")
    r.add_argument("--budgets", nargs="+", type=int, default=list(BUDGETS), help="percentages of the slice")
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    r.add_argument("--lm", default=None, help="the teacher's LLM (default: the embedded one; another LLM needs its own --out)")
    r.add_argument("--self-train", type=float, default=SELF_TRAIN,
                   help=f"the student's self-training share (default {SELF_TRAIN}, zsl's; 0 for the ablation)")
    r.set_defaults(func=run)
    st = sub.add_parser("students", help="students from the teacher's vs. gold labels of the same items (no LLM call)")
    st.add_argument("--dataset", nargs="+", default=["goemotions"], choices=DATASETS)
    st.add_argument("--n-slice", type=int, default=300, help="the slice whose teacher answers run recorded")
    st.add_argument("--heldout", type=int, default=1000)
    st.add_argument("--n", nargs="+", type=int, default=[15, 30, 75], help="labelled items per student")
    st.add_argument("--seeds", nargs="+", type=int, default=[0])
    st.add_argument("--students", nargs="+", default=["head", "head-soft", "finetune"],
                    choices=["head", "head-soft", "finetune"],
                    help="head-soft: the head at the same penalty, trained on the teacher's scores (softmax) instead")
    st.set_defaults(func=students)
    e = sub.add_parser("esco", help="the 14k-label regime, from the #13 test records (no LLM call)")
    e.add_argument("--irera-out", default=None, help="records of python -m benchmarks.irera (default: beside --out)")
    e.add_argument("--variant", default="minilm-l6-desc", help="which irera records (base MiniLM + descriptions)")
    e.set_defaults(func=esco)
    rep = sub.add_parser("report")
    rep.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    rep.set_defaults(func=report)
    from benchmarks import run_parsed

    run_parsed(p.parse_args(argv), "budget")


if __name__ == "__main__":
    main()
