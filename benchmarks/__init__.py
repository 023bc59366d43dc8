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


def machine() -> dict[str, object]:
    """The CPU a speed was measured on, so a reader can scale it to theirs: model name, cores,
    the vector extensions llama.cpp and torch pick kernels by, and what llama.cpp was built with.

    Example:
        >>> sorted(machine())[:3]
        ['cores', 'cpu', 'flags']
    """
    import os
    import re

    model, flags = "unknown", set()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    if m := re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE):
        model = m.group(1).strip()
    if m := re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE):
        flags = set(m.group(1).split())
    wanted = ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    out: dict[str, object] = {"cpu": model, "cores": os.cpu_count(), "flags": [f for f in wanted if f in flags]}
    try:
        import llama_cpp

        info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
        out["llama_cpp"] = " ".join(sorted({w for w in re.findall(r"([A-Z0-9_]+) = 1", info)}))
    except Exception:  # noqa: BLE001, S110 - a description only: missing or odd builds just leave it out
        pass
    return out


def machine_line(m: dict[str, object] | None = None) -> str:
    """``machine()`` as one Markdown line."""
    m = machine() if m is None else m
    flags = ", ".join(m["flags"]) or "none of AVX2/AVX-512/AMX"  # type: ignore[arg-type]
    built = f"; llama.cpp built with {m['llama_cpp']}" if m.get("llama_cpp") else ""
    return f"{m['cpu']}, {m['cores']} cores ({flags}){built}"


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


def saved_or_run(out: Path, report: bool, compute) -> dict:
    """A benchmark's results: with ``report``, the JSON its last run saved at ``out`` (refused when there is none);
    else ``compute()``, saved there for the next ``--report``."""
    import json

    if report:
        if not out.is_file():
            raise SystemExit(f"no saved results at {out}; run without --report first")
        return json.loads(out.read_text(encoding="utf-8"))
    results = compute()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return results


def write_jsonl(path: Path, rows) -> None:
    """``rows`` (dicts) as JSON lines, non-ASCII kept as is: the LLM runs' input slices."""
    import json

    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
