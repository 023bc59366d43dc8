"""The ``zsl`` command line. Thin: it parses arguments and calls the library.

    zsl models [--assemble NAME|all] [--json]
    zsl label INPUT --labels VOCAB [--lm NAME] [--encoder NAME] [--out FILE] [-k 3]
    zsl optimize TRAIN.jsonl --labels VOCAB --out program.json [--optimizer bootstrap]
    zsl distill SILVER.jsonl --out student/ [--labels VOCAB]
    zsl label INPUT --model student/
    zsl demo [--lm NAME] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from zsl.errors import ZslError

__all__ = ["main"]


def _cmd_models(args: argparse.Namespace) -> int:
    from zsl.models import list_models, model_path, model_status

    if args.assemble:
        names = [m.name for m in list_models() if m.kind == "llm"] if args.assemble == "all" else [args.assemble]
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


def _print_table(rows: list[dict], k: int, out=sys.stdout) -> None:
    width = 60
    print(f"{'id':<5} {'text':<{width}} predicted (score)", file=out)
    print("-" * (width + 50), file=out)
    for r in rows:
        text = r["text"].replace("\n", " ")
        text = text if len(text) <= width else text[: width - 1] + "…"
        preds = ", ".join(f"{lab} ({s:.2f})" for lab, s in zip(r["labels"][:k], r["scores"][:k]))
        mark = ""
        if r.get("gold") is not None:
            hits = len(set(r["gold"]) & set(r["labels"][:k]))
            mark = f"  [{hits}/{min(k, len(r['gold']))} gold]" if r["gold"] else ""
        print(f"{r['id']:<5} {text:<{width}} {preds}{mark}", file=out)


def _cmd_label(args: argparse.Namespace) -> int:
    if args.model:
        from zsl.distill import label_file as student_label_file

        res = student_label_file(args.input, args.model, out=args.out, vocab=_vocab_arg(args.labels),
                                 text_field=args.text_field, show_progress=True)
        for b in res["bad_rows"][:20]:
            print(f"skipped {b}", file=sys.stderr)
        if res.get("eval"):
            print("against the gold labels in the input: " + ", ".join(f"{k} = {v:.3f}" for k, v in res["eval"].items()
                                                                       if isinstance(v, float)))
        print(f"labelled {res['labelled']} items in {res['seconds']:.1f}s ({res['items_per_second']:.0f} items/s) "
              f"with the student {args.model}, skipped {res['skipped']}; silver data: {res['out']}")
        return 3 if res["skipped"] else 0
    if not args.labels:
        print("zsl: error: --labels VOCAB is required (or --model STUDENT_DIR to use a distilled student)",
              file=sys.stderr)
        return 2
    if _is_image_input(args.input):
        return _label_images(args)
    from zsl.pipeline import label_file

    summary = label_file(args.input, args.labels, out=args.out, lm=args.lm, encoder=args.encoder, k=args.k,
                         label_kind=args.label_kind, infer=not args.no_infer, rank=not args.no_rank,
                         rank_top=args.rank_top, text_field=args.text_field, program_path=args.program,
                         show_progress=True)
    _report(summary, args.k)
    return 3 if summary["skipped"] else 0


def _is_image_input(path: str) -> bool:
    """A folder, an image file, or a JSONL whose first record has an "image" field."""
    p = Path(path)
    if p.is_dir():
        return True
    from zsl.image import IMAGE_EXTENSIONS

    if p.suffix.lower() in IMAGE_EXTENSIONS:
        return True
    if p.suffix.lower() == ".jsonl" and p.is_file():
        with p.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.strip():
                    try:
                        first = json.loads(line)
                    except ValueError:
                        return False
                    return isinstance(first, dict) and "image" in first and "text" not in first
    return False


def _label_images(args: argparse.Namespace) -> int:
    from zsl.image import label_images

    extra = {"descriptions": "lm", "lm": args.lm} if args.descriptions else {}
    summary = label_images(args.input, args.labels, out=args.out, backend=args.image_model, k=args.k,
                           show_progress=True, **extra)
    for r in summary["rows"][:50]:
        preds = ", ".join(f"{lab} ({s:.2f})" for lab, s in zip(r["labels"], r["scores"]))
        print(f"{Path(r['image']).name:<32} {preds}")
    if len(summary["rows"]) > 50:
        print(f"... ({len(summary['rows']) - 50} more rows in the output file)")
    for b in summary["bad_rows"][:20]:
        print(f"skipped {b}", file=sys.stderr)
    if summary.get("eval"):
        print(f"against the gold labels in the input: mAP = {100 * summary['eval']['map']:.1f} "
              f"over {summary['eval']['n']} images")
    print(f"labelled {summary['labelled']} images in {summary['seconds']:.1f}s, skipped {summary['skipped']}; "
          f"backend: {summary['backend']}; silver data: {summary['out']}")
    return 3 if summary["skipped"] else 0


def _vocab_arg(path: str | None):
    if not path:
        return None
    from zsl.vocab import LabelVocab

    return LabelVocab.from_file(path)


def _cmd_distill(args: argparse.Namespace) -> int:
    from zsl.distill import distill_file

    res = distill_file(args.silver, args.out, vocab=_vocab_arg(args.labels), targets=args.targets,
                       encoder=args.encoder, loss=args.loss, refine=args.refine, head=args.head, epochs=args.epochs,
                       random_state=args.seed, show_progress=True)
    print(f"student trained on {res['n_items']} items x {res['n_labels']} labels in {res['seconds']:.1f}s; "
          f"agreement with the silver labels (micro-F1) {res['agreement']:.3f}; "
          f"{res['size_bytes'] / 1024:.0f} KiB on disk (encoder excluded): {res['out']}")
    print(f"use it: zsl label INPUT --model {res['out']}")
    return 0


def _report(summary: dict, k: int) -> None:
    if summary["rows"]:
        _print_table(summary["rows"][:50], k)
        if len(summary["rows"]) > 50:
            print(f"... ({len(summary['rows']) - 50} more rows in the output file)")
    print()
    for b in summary["bad_rows"][:20]:
        print(f"skipped {b}", file=sys.stderr)
    ev = summary.get("eval")
    if ev:
        print(f"against the gold labels in the input: RP@{k} = {ev['rp']:.3f}, P@1 = {ev['p1']:.3f} "
              f"over {ev['n']} items")
    print(f"labelled {summary['labelled']} items in {summary['seconds']:.1f}s "
          f"({summary['seconds'] / max(1, summary['labelled']):.2f}s/item), skipped {summary['skipped']}; "
          f"LM: {summary['lm']}; encoder: {summary['encoder']}")
    print(f"silver data: {summary['out']}")


def _cmd_demo(args: argparse.Namespace) -> int:
    from zsl.examples import example_path
    from zsl.pipeline import label_file

    out = args.out or "out/demo_silver.jsonl"
    print("zsl demo: labelling 16 example news texts with 22 topics using the embedded models "
          "(Infer-Retrieve-Rank).", flush=True)
    summary = label_file(example_path("news_topics.jsonl"), example_path("news_topics_labels.txt"), out=out,
                         lm=args.lm, k=3, label_kind="topics", show_progress=True)
    _report(summary, 3)
    return 0


def _cmd_optimize(args: argparse.Namespace) -> int:
    import random

    from zsl.data import read_items
    from zsl.tagger import Tagger
    from zsl.vocab import LabelVocab

    vocab = LabelVocab.from_file(args.labels)
    items = [i for i in read_items(args.train) if i.gold]
    if not items:
        print(f"zsl: error: {args.train} has no item with gold 'labels'", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    rng.shuffle(items)
    items = items[: args.max_examples]
    tagger = Tagger(vocab, lm=args.lm, encoder=args.encoder, label_kind=args.label_kind, rank_top=args.rank_top,
                    random_state=args.seed)
    t0 = time.perf_counter()
    tagger.fit([(i.text, i.gold) for i in items], optimizer=args.optimizer, max_demos=args.max_demos)
    path = tagger.save(args.out)
    print(f"optimised on {len(items)} examples with {args.optimizer} in {time.perf_counter() - t0:.0f}s; saved {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zsl", description="Label data without annotations.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the embedded models, where they come from, and their status")
    p.add_argument("--assemble", metavar="NAME", help="assemble and verify an LLM file now ('all' for every LLM)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("label", help="label a file of texts with a label vocabulary")
    p.add_argument("input", help="items: .jsonl (a 'text' field), .csv/.tsv (a 'text' column), .txt (one per line); "
                                 "or images: a folder, an image file, or a .jsonl with an 'image' field")
    p.add_argument("--labels", help="vocabulary: .txt (one per line), .jsonl or .csv with 'label'")
    p.add_argument("--model", help="a student folder from `zsl distill` (labels with it instead of the LLM)")
    p.add_argument("--out", help="silver data output (.jsonl); default: <input>.zsl.jsonl")
    p.add_argument("--lm", help="LLM: embedded name, .gguf path or provider/model (default: $ZSL_LM or qwen2.5-coder-1.5b)")
    p.add_argument("--encoder", help="sentence encoder name or folder (default: $ZSL_ENCODER or minilm-l6)")
    p.add_argument("-k", type=int, default=5, help="labels kept per item (default 5)")
    p.add_argument("--label-kind", default="labels", help="what the labels are, for prompts: skills, topics ...")
    p.add_argument("--no-infer", action="store_true", help="skip the LLM Infer step (retrieve from the text alone)")
    p.add_argument("--no-rank", action="store_true", help="skip the LLM Rank step")
    p.add_argument("--rank-top", type=int, default=20, help="candidates the Rank step re-scores (default 20)")
    p.add_argument("--text-field", default="text", help="JSON key / CSV column with the text")
    p.add_argument("--program", help="compiled program from `zsl optimize` (default: zero-shot)")
    p.add_argument("--image-model", help="image backend: efficientnet-lite2 (default, offline), efficientnet-lite0, "
                                         "or clip:ARCH@/path/to/checkpoint.pt")
    p.add_argument("--descriptions", action="store_true", help="images: let the LLM write visual label descriptions")
    p.set_defaults(func=_cmd_label)

    p = sub.add_parser("optimize", help="optimise the DSPy program on a few labelled examples and save it")
    p.add_argument("train", help="labelled examples (.jsonl with 'text' and 'labels')")
    p.add_argument("--labels", required=True, help="vocabulary file")
    p.add_argument("--out", required=True, help="where to save the compiled program (.json)")
    p.add_argument("--optimizer", default="bootstrap", choices=["bootstrap", "random_search", "mipro"])
    p.add_argument("--max-examples", type=int, default=10, help="examples used (default 10)")
    p.add_argument("--max-demos", type=int, default=3, help="demonstrations per predictor (default 3)")
    p.add_argument("--lm", help="LLM (default: $ZSL_LM or qwen2.5-coder-1.5b)")
    p.add_argument("--encoder", help="sentence encoder (default: minilm-l6)")
    p.add_argument("--label-kind", default="labels")
    p.add_argument("--rank-top", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_optimize)

    p = sub.add_parser("distill", help="train a small fast student classifier on silver data")
    p.add_argument("silver", help="silver data (.jsonl/.csv/.parquet) from `zsl label` or zsl.pseudo.write_silver")
    p.add_argument("--out", required=True, help="folder to save the student in")
    p.add_argument("--labels", help="vocabulary, when the silver file does not carry the full label order")
    p.add_argument("--encoder", help="sentence encoder for the student's features (default: minilm-l6)")
    p.add_argument("--targets", default="soft", choices=["soft", "hard"])
    p.add_argument("--loss", default="bce", choices=["bce", "asl"])
    p.add_argument("--refine", action=argparse.BooleanOptionalAction, default=True,
                   help="CDUL-style pseudo-label refinement (default on: best in BENCHMARKS.md)")
    p.add_argument("--head", default="linear", choices=["linear", "mlp"])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_distill)

    p = sub.add_parser("demo", help="label the shipped example texts with the embedded models")
    p.add_argument("--lm", help="LLM to use (default: the embedded Qwen2.5 1.5B)")
    p.add_argument("--out", help="silver data output (default: out/demo_silver.jsonl)")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ZslError as exc:
        print(f"zsl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zsl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
