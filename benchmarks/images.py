"""Zero-shot multi-label image benchmark on the COCO subset (103 photos, 80 classes).

Measures, for the offline EfficientNet-Lite + ConSE backend, label-averaged mAP
(:func:`zsl.evaluation.metrics.mean_average_precision`) of

* a label-frequency prior (every image gets the classes' frequencies: the floor),
* plain ConSE as in the paper (T=10, class names only, 260 px) for reference,
* global only, global-local (CDUL) with pixel crops and with feature-map regions,
* a single prompt vs the prompt ensemble, and LLM-written label descriptions,

plus images per second (reading, decoding and scoring; models loaded beforehand) and peak
memory, and the speed of the open_clip backend with a randomly initialised ViT-B-32 (no
CLIP weights can be had offline, so its quality cannot be measured here).

    python -m benchmarks.images                       # prints the table
    python -m benchmarks.images --descriptions --write  # + LLM descriptions, updates BENCHMARKS.md
    python -m benchmarks.images --report --write        # re-render the last saved results
    python -m benchmarks.images vlm --write             # human captions as a VLM's answers (images_vlm.py)

Settings were chosen on this same data (see the notes in the table), so a held-out split
will score somewhat lower.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import ROOT, saved_or_run

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "coco_subset"
DEFAULT_OUT = ROOT / "out" / "bench" / "images.json"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_coco(data: Path) -> tuple[list[str], list[list[str]], Any]:
    """Image paths, gold label lists and the 80-class vocabulary of the COCO subset."""
    from zsl.vocab import LabelVocab

    labels_path = data / "labels.jsonl"
    if not labels_path.is_file():
        raise SystemExit(f"missing {labels_path}: pass --data pointing at the coco_subset folder")
    rows = [json.loads(line) for line in labels_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    vocab = LabelVocab.from_file(data / "coco_classes.txt")
    return [str(data / r["image"]) for r in rows], [r["labels"] for r in rows], vocab


class _Memo:
    """Wraps a backend and remembers image encodings, so variants that differ only in
    label texts or aggregation reuse one forward pass (untimed runs only)."""

    def __init__(self, backend: Any):
        self.backend = backend
        self.model_id = backend.model_id
        self.logit_scale = backend.logit_scale
        self.threshold = getattr(backend, "threshold", 0.5)
        self.input_size = getattr(backend, "input_size", None)
        self._seen: dict[tuple, Any] = {}

    def _key(self, name: str, images, *args) -> tuple:
        return (name, tuple(id(im) for im in images), *args)

    def encode_images(self, images, *, size=None):
        key = self._key("images", images, size)
        if key not in self._seen:
            self._seen[key] = self.backend.encode_images(images, size=size)
        return self._seen[key]

    def encode_regions(self, images, grids=(3,), *, overlap=0.0):
        key = self._key("regions", images, tuple(grids), overlap)
        if key not in self._seen:
            self._seen[key] = self.backend.encode_regions(images, grids, overlap=overlap)
        return self._seen[key]

    def encode_texts(self, texts):
        return self.backend.encode_texts(texts)


def _timed_run(tagger, paths: list[str]) -> tuple[np.ndarray, float]:
    """Score files once to warm up (model, label texts), then time a full pass."""
    tagger.score_files(paths[:1])
    t0 = time.perf_counter()
    res = tagger.score_files(paths)
    seconds = time.perf_counter() - t0
    if res.skipped:
        raise SystemExit(f"unexpected unreadable images: {res.skipped[:3]}")
    return res.scores, len(paths) / seconds


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from zsl.data.images import load_images
    from zsl.evaluation.metrics import mean_average_precision
    from zsl.image.backends import ConSEBackend, OpenClipBackend
    from zsl.image.global_local import global_local_scores
    from zsl.image.tagger import ImageTagger

    if args.threads:
        torch.set_num_threads(args.threads)
    paths, gold, vocab = load_coco(Path(args.data))
    y = vocab.to_multi_hot(gold)
    results: dict[str, Any] = {"n_images": len(paths), "n_labels": len(vocab), "rows": [], "speed": []}

    def add(name: str, scores: np.ndarray, note: str = "") -> None:
        m = 100 * mean_average_precision(y, scores)
        results["rows"].append({"variant": name, "map": round(m, 1), "note": note})
        print(f"{name:<60} mAP {m:5.1f}  {note}", file=sys.stderr, flush=True)

    def speed(name: str, ips: float) -> None:
        results["speed"].append({"variant": name, "images_per_s": round(ips, 2), "peak_rss_mb": round(peak_rss_mb())})
        print(f"{name:<60} {ips:6.2f} images/s  peak RSS {peak_rss_mb():.0f} MB", file=sys.stderr, flush=True)

    prior = y.mean(axis=0, keepdims=True).repeat(len(y), axis=0)
    add("label-frequency prior", prior, "same score for every image")

    backbone = args.backbone
    backend = ConSEBackend(backbone)
    # timed: global only, global-local with feature regions, global-local with pixel crops
    g_scores, g_ips = _timed_run(ImageTagger(vocab, backend, mode="global"), paths)
    speed(f"{backbone}, global only", g_ips)
    add(f"{backbone} ConSE, global only", g_scores, "prompt ensemble")
    fl_scores, fl_ips = _timed_run(ImageTagger(vocab, backend, snippets="features", grids=(2, 3)), paths)
    speed(f"{backbone}, global-local, feature regions 2x2+3x3", fl_ips)
    add(f"{backbone} ConSE, global-local, feature regions 2x2+3x3 (default)", fl_scores, "prompt ensemble")
    crop_tagger = ImageTagger(vocab, backend, snippets="crops", grids=(3,), snippet_size=224)
    cl_scores, cl_ips = _timed_run(crop_tagger, paths)
    speed(f"{backbone}, global-local, pixel crops 3x3 at 224 px", cl_ips)
    add(f"{backbone} ConSE, global-local, pixel crops 3x3 (CDUL as published)", cl_scores,
        f"threshold {crop_tagger.threshold_}, lambda 1")
    results["ratio_features"] = round(fl_ips / g_ips, 2)
    results["ratio_crops"] = round(cl_ips / g_ips, 2)

    # untimed variants share one forward pass
    images, _ = load_images(paths)
    memo = _Memo(backend)
    parts = ImageTagger(vocab, memo, snippets="features", grids=(2, 3)).score_parts(images)
    g, s = parts
    add(f"{backbone} ConSE, global-local, feature regions 3x3 only", global_local_scores(g, s[:, 4:], threshold=0.1))
    add(f"{backbone} ConSE, global-local, CDUL threshold 0.5", global_local_scores(g, s, threshold=0.5),
        "alpha rarely reaches 0.5 at this scale: local = min over regions")
    add(f"{backbone} ConSE, global-local, lambda 0 (mean)", global_local_scores(g, s, threshold=0.1, lam=0.0))
    single = ImageTagger(vocab, memo, snippets="features", grids=(2, 3), templates="image_single")
    g1, s1 = single.score_parts(images)
    add(f"{backbone} ConSE, global only, single prompt", g1, "'a photo of a {label}.'")
    add(f"{backbone} ConSE, global-local, single prompt", global_local_scores(g1, s1, threshold=0.1))

    if args.descriptions:
        from zsl.image.tagger import describe_labels
        from zsl.models.lm import get_lm

        lm = get_lm(args.lm, max_tokens=120)
        t0 = time.perf_counter()
        descs = describe_labels(vocab.labels, lm, n=4, show_progress=True)
        results["descriptions"] = {"lm": getattr(lm, "model", str(lm)), "seconds": round(time.perf_counter() - t0),
                                   "n_described": sum(bool(v) for v in descs.values()),
                                   "example": {k: descs[k] for k in list(descs)[:3]}}
        described = ImageTagger(vocab, memo, snippets="features", grids=(2, 3), descriptions=descs)
        gd, sd = described.score_parts(images)
        add(f"{backbone} ConSE, global only, + LLM descriptions", gd, results["descriptions"]["lm"])
        add(f"{backbone} ConSE, global-local, + LLM descriptions", global_local_scores(gd, sd, threshold=0.1),
            results["descriptions"]["lm"])

    plain = ConSEBackend(backbone, top=10, class_template="{name}", logit_scale=20.0,
                         image_size=CONSE_TRAIN_SIZE.get(backbone, 260))
    pg, ps = ImageTagger(vocab, plain, snippets="features", grids=(3,), templates="image_single").score_parts(images)
    add("plain ConSE (T=10, class names, train resolution), global only", pg, "reference")
    add("plain ConSE, global-local feature regions 3x3", global_local_scores(pg, ps, threshold=0.1), "reference")
    results["peak_rss_mb_conse"] = round(peak_rss_mb())

    if args.clip_images:
        import warnings

        clip_paths = paths[: args.clip_images]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            clip = OpenClipBackend("ViT-B-32", pretrained=None)
            _, ips = _timed_run(ImageTagger(vocab, clip, mode="global"), clip_paths)
            speed(f"open_clip ViT-B-32 (random weights), global only, {len(clip_paths)} images", ips)
            _, ips_gl = _timed_run(ImageTagger(vocab, clip, grids=(3,)), clip_paths)
            speed(f"open_clip ViT-B-32 (random weights), global-local crops 3x3, {len(clip_paths)} images", ips_gl)
            _, ips_gl2 = _timed_run(ImageTagger(vocab, clip, grids=(2,)), clip_paths)
            speed(f"open_clip ViT-B-32 (random weights), global-local crops 2x2, {len(clip_paths)} images", ips_gl2)
        results["ratio_clip"] = round(ips_gl / ips, 2)
        results["ratio_clip_2x2"] = round(ips_gl2 / ips, 2)
    results["peak_rss_mb"] = round(peak_rss_mb())
    results["threads"] = torch.get_num_threads()
    return results


CONSE_TRAIN_SIZE = {"efficientnet-lite0": 224, "efficientnet-lite2": 260}


def render(results: dict[str, Any], command: str) -> str:
    """The markdown block that goes between the images markers of BENCHMARKS.md."""
    lines = [
        (f"Data: `../shared/data/coco_subset` ({results['n_images']} COCO photos, {results['n_labels']} classes, "
        "3.8 labels per image). mAP is label-averaged, in percent (labels with no positive image skipped). "
        "The defaults were chosen on these same images; a held-out split will score lower."),
        "",
        "```bash",
        command,
        "```",
        "",
        "| variant | mAP | note |",
        "|---|---:|---|",
    ]
    lines += [f"| {r['variant']} | {r['map']:.1f} | {r['note']} |" for r in results["rows"]]
    lines += [
        "",
        (f"Speed on {results['threads']} CPU threads (reading + decoding + scoring, models loaded beforehand; "
        "the machine was shared with other jobs, so read the ratios more than the absolute numbers):"),
        "",
        "| run | images/s | peak RSS so far (MB) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {s['variant']} | {s['images_per_s']:.2f} | {s['peak_rss_mb']} |" for s in results["speed"]]
    lines += [
        "",
        f"Global-local speed relative to global only: feature regions {results['ratio_features']:.2f}x, "
        f"pixel crops {results['ratio_crops']:.2f}x"
        + (f", CLIP crops 3x3 {results['ratio_clip']:.2f}x and 2x2 {results['ratio_clip_2x2']:.2f}x (a ViT's input "
           "size is fixed, so each crop costs a whole image)" if "ratio_clip" in results else "") + ". "
        f"Peak memory of the whole run: {results['peak_rss_mb']} MB "
        f"(ConSE part: {results['peak_rss_mb_conse']} MB).",
    ]
    if "descriptions" in results:
        d = results["descriptions"]
        ex = "; ".join(f"{k}: {', '.join(v)}" for k, v in d["example"].items())
        lines += ["", (f"LLM descriptions: {d['lm']}, {d['n_described']} of {results['n_labels']} labels described "
                      f"(prompt `image_describe@1`), {d['seconds']} s in this run (labels already in the "
                      f"$ZSL_HOME cache cost nothing). Examples: {ex}.")]
    return "\n".join(lines)


def write_benchmarks(block: str, path: Path | None = None) -> None:
    """Replace the images section of BENCHMARKS.md (default: the checkout's), adding it at the end if absent."""
    from benchmarks import write_section

    write_section("images", block, heading="Images: zero-shot multi-label tagging on the COCO subset", path=path)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["vlm"]:  # the describer benchmark: human captions as a VLM's answers (benchmarks/images_vlm.py)
        from benchmarks.images_vlm import main as vlm_main

        return vlm_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m benchmarks.images", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="the coco_subset folder")
    parser.add_argument("--backbone", default="efficientnet-lite2", choices=["efficientnet-lite0", "efficientnet-lite2"])
    parser.add_argument("--descriptions", action="store_true", help="also score with LLM-written label descriptions")
    parser.add_argument("--lm", default=None, help="LM for the descriptions (default: zsl's embedded LM)")
    parser.add_argument("--clip-images", type=int, default=16,
                        help="images for the open_clip speed check (0 skips it)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="where to save the results as JSON")
    parser.add_argument("--write", action="store_true", help="update the images section of BENCHMARKS.md")
    parser.add_argument("--report", action="store_true",
                        help="only re-render the table from the JSON saved by the last run (--out)")
    args = parser.parse_args(argv)
    results = saved_or_run(Path(args.out), args.report, lambda: {
        **run(args), "args": {"descriptions": args.descriptions, "backbone": args.backbone}})
    ran = results.get("args", {"descriptions": args.descriptions, "backbone": args.backbone})
    command = ".venv/bin/python -m benchmarks.images" + (" --descriptions" if ran["descriptions"] else "") + (
        f" --backbone {ran['backbone']}" if ran["backbone"] != "efficientnet-lite2" else "") + " --write"
    block = render(results, command)
    print(block)
    if args.write:
        write_benchmarks(block)


if __name__ == "__main__":
    main()
