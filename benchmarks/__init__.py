"""Benchmark runners, run from a checkout of the zsl repository: ``python -m benchmarks.<name>``.

They are not part of the library and not in its wheel. Each writes its table into its own
marked section of the checkout's BENCHMARKS.md with :func:`write_section`.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout: benchmarks/ sits beside zsl/ and pyproject.toml
BENCHMARKS = ROOT / "BENCHMARKS.md"


def checkout_file(name: str) -> Path:
    """``ROOT / name``, a file of the repository checkout (BENCHMARKS.md, a plot in docs/) to write results into.

    Raises:
        SystemExit: ``ROOT`` is not a zsl checkout (no ``pyproject.toml`` of the project ``zsl``
            and no ``zsl/`` package beside ``benchmarks/``), e.g. a copied benchmarks folder.
    """
    pyproject = ROOT / "pyproject.toml"
    project = pyproject.read_text(encoding="utf-8") if pyproject.is_file() else ""
    if 'name = "zsl"' not in project or not (ROOT / "zsl" / "__init__.py").is_file():
        raise SystemExit(f"benchmark results go into {name} of the zsl repository checkout, but {ROOT} (the "
                         "folder above benchmarks/) is not one: it has no pyproject.toml of the zsl project beside a "
                         "zsl/ package. Fix: run `python -m benchmarks.<name>` from a checkout of the zsl repository, "
                         "or leave out --write.")
    return ROOT / name


def write_section(name: str, block: str, *, heading: str | None = None, path: Path | None = None) -> Path:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``path``
    (default: the checkout's BENCHMARKS.md, see :func:`checkout_file`).

    A file without those markers gets them at the end, under ``heading`` when given. The file
    is replaced atomically.
    """
    path = checkout_file("BENCHMARKS.md") if path is None else path
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
        from zsl.util.paths import subdir

        args.out = str(subdir("bench") / name)
    os.environ.setdefault("ZSL_PROGRESS", "1" if sys.stderr.isatty() else "0")
    args.func(args)
