"""Benchmark runners (not part of the library's API): ``python -m zsl.bench.<name>``.

Each writes its table into its own marked section of BENCHMARKS.md with :func:`write_section`.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "BENCHMARKS.md"


def write_section(name: str, block: str, *, heading: str | None = None, path: Path = BENCHMARKS) -> Path:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``path``.

    A file without those markers gets them at the end, under ``heading`` when given. The file
    is replaced atomically.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = f"{head}{start}\n{block}\n{end}{rest.split(end, 1)[1]}"
    else:
        title = f"## {heading}\n\n" if heading else ""
        text = f"{text.rstrip(chr(10))}\n\n{title}{start}\n{block}\n{end}\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def run_parsed(args, name: str) -> None:
    """Finish a benchmark's parsed arguments and run its subcommand: ``--out`` defaults to
    ``$ZSL_HOME/bench/<name>``; progress bars show only on a terminal unless ``ZSL_PROGRESS`` says."""
    import os
    import sys

    if args.out is None:
        from zsl.paths import subdir

        args.out = str(subdir("bench") / name)
    os.environ.setdefault("ZSL_PROGRESS", "1" if sys.stderr.isatty() else "0")
    args.func(args)
