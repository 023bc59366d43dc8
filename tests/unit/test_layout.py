"""The floor plan of zsl (issue #27): wings stacked in one order, imports only pointing down it.

Every module under zsl/ (and the shipped programs/) belongs to a wing of docs/architecture.md: a
wing is a folder (zsl/<wing>/), and the root contracts at the top of zsl/ name theirs in
:data:`ROOT_WING`; the wings stand in :data:`ORDER`, bottom up. Read from the source with
``ast``, so every import counts: at the top, inside functions (an import in a function only hides
a cycle until that function runs) and under ``if TYPE_CHECKING:`` (a loop of types is still a loop
a reader has to untangle). The checks:

* no import points up the order (a module may import its own floor and the floors below);
* no circle among modules;
* no private name (``_x``, or a ``_private`` module) is imported from another wing;
* only the package face (zsl/__init__.py) and the CLI import the package root (``import zsl``;
  the version is in zsl/version.py);
* no module re-exports a name it does not define (lists an imported name in ``__all__`` or binds
  it to a module-level name; the wing faces ``zsl.<wing>`` and the root face are excepted), and no
  module imports a name from a module that only imported it, a wing face included;
* a wing face is under 40 lines, and one that hands on names holds only a docstring, imports and
  ``__all__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The wings, bottom up (docs/architecture.md, "target layout"). Each floor may import itself and
# any floor below it. The root contracts (errors, version, vocab, base, rules, rows, retrieval,
# prompting) are floors of their own, as are cli and the package face.
ORDER: list[tuple[str, ...]] = [
    ("errors", "version", "examples"),
    ("data",),
    ("util",),
    ("vocab",),
    ("base",),
    ("rules", "rows"),
    ("models",),
    ("retrieval", "prompting"),
    ("programs",),
    ("image", "silver"),
    ("evaluation",),
    ("student",),
    ("text",),
    ("runs",),
    ("review",),
    ("cli", "face"),
]

# The root contracts sit at the top of zsl/ and name their wing here; every other module's wing is
# its folder (zsl/<wing>/...), which must be a wing of ORDER. A new module at the top of zsl/ that is
# not listed here, or a new folder that is not in ORDER, has no wing and fails the first test.
ROOT_WING: dict[str, str] = {
    "zsl": "face",
    "zsl.cli": "cli",
    "zsl.errors": "errors",
    "zsl.version": "version",
    "zsl.vocab": "vocab",
    "zsl.taxonomy": "vocab",
    "zsl.hierarchy": "vocab",
    "zsl.base": "base",
    "zsl.scoring": "rules",
    "zsl.rows": "rows",
    "zsl.index": "retrieval",
    "zsl.fusion": "retrieval",
    "zsl.prompting": "prompting",
}

FACES = {"zsl", *(f"zsl.{wing}" for floor in ORDER for wing in floor)}  # imports plus __all__: re-exporting is their job
ROOT_IMPORTERS = {"zsl", "zsl.cli"}
FLOOR = {wing: i for i, floor in enumerate(ORDER) for wing in floor}


def wing_of(name: str, path: Path) -> str | None:
    """A root contract's wing from ROOT_WING; any other module's from its folder (None: no wing)."""
    if name in ROOT_WING:
        return ROOT_WING[name]
    parts = name.split(".")
    in_folder = len(parts) > 2 or (len(parts) == 2 and path.name == "__init__.py")
    return parts[1] if in_folder and parts[1] in FLOOR else None


def wings(root: Path = ROOT) -> dict[str, str | None]:
    """Module -> its wing, for every module of the tree."""
    return {name: wing_of(name, path) for name, path in _modules(root).items()}


def _modules(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> file, for the library and the shipped programs."""
    out: dict[str, Path] = {}
    for f in sorted((root / "zsl").rglob("*.py")):
        rel = f.relative_to(root / "zsl")
        if rel.parts[0] in ("prompts", "programs"):  # links to the top-level folders in a development checkout
            continue
        parts = ["zsl", *rel.with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    for f in sorted((root / "programs").glob("*.py")):
        out["zsl.programs" if f.stem == "__init__" else f"zsl.programs.{f.stem}"] = f
    return out


WING = wings()  # the real tree's map (docs/draw_architecture.py draws it)


def _imports(path: Path, name: str, modules: dict[str, Path]) -> list[tuple[str, str | None, int]]:
    """``(module, imported name or None, line)`` for every zsl import in a file, at any depth.

    ``import zsl`` gives ``("zsl", None, line)``; ``from zsl.a import b`` gives ``("zsl.a.b", None, line)``
    when ``zsl.a.b`` is a module, else ``("zsl.a", "b", line)``.
    """
    is_package = path.name == "__init__.py"
    found: list[tuple[str, str | None, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "zsl")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}".rstrip(".")
            if base.split(".")[0] == "zsl":
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    found.append((sub, None, node.lineno) if sub in modules else (base, a.name, node.lineno))
    return found


def _graph(modules: dict[str, Path]) -> dict[str, dict[str, int]]:
    """Module -> {module it makes Python run: first line}. Importing a.b.c runs the package a.b
    first, unless the importer is inside a.b (then a.b is already being initialised); the package
    root ``zsl`` is always initialised first, so it is no edge here (see the root-import check)."""
    graph: dict[str, dict[str, int]] = {m: {} for m in modules}
    for name, path in modules.items():
        for target, _, line in _imports(path, name, modules):
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                mod = ".".join(parts[:i])
                inside = name.startswith(mod + ".") and i < len(parts)
                if mod in modules and mod != name and not inside:
                    graph[name].setdefault(mod, line)
    return graph


def _cycles(graph: dict[str, set[str]] | dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def upward_imports(root: Path = ROOT) -> list[str]:
    modules, wing = _modules(root), wings(root)
    return [f"{modules[m].relative_to(root)}:{line}: {m} ({wing[m]}) imports {t} ({wing[t]}), a higher floor"
            for m, targets in sorted(_graph(modules).items()) for t, line in sorted(targets.items())
            if wing[m] and wing[t] and FLOOR[wing[t]] > FLOOR[wing[m]]]  # a module without a wing fails above


def private_imports(root: Path = ROOT) -> list[str]:
    modules, wing = _modules(root), wings(root)
    out = []
    for name, path in modules.items():
        for target, attr, line in _imports(path, name, modules):
            owner = next((".".join(target.split(".")[:i]) for i in range(target.count(".") + 1, 0, -1)
                          if ".".join(target.split(".")[:i]) in modules), target)
            private = (attr is not None and attr.startswith("_") and not attr.startswith("__")) or any(
                p.startswith("_") and not p.startswith("__") for p in target.split("."))
            if private and wing.get(owner) != wing.get(name):
                out.append(f"{path.relative_to(root)}:{line}: {target}{'.' + attr if attr else ''} from wing "
                           f"{wing.get(owner)} into {wing.get(name)}")
    return out


def root_imports(root: Path = ROOT) -> list[str]:
    """``import zsl`` or ``from zsl import NAME`` (NAME not a module) outside the face and the CLI."""
    modules = _modules(root)
    return [f"{path.relative_to(root)}:{line}: {name} imports the package root"
            f"{' for ' + attr if attr else ''}"
            for name, path in modules.items() if name not in ROOT_IMPORTERS
            for target, attr, line in _imports(path, name, modules) if target == "zsl"]


def _bindings(path: Path) -> tuple[dict[str, int], set[str], list[str], list[tuple[str, str, int]]]:
    """A module's top-level names bound by an import (name -> line), the names it defines, its
    ``__all__``, and ``(alias, imported name, line)`` for module-level ``alias = imported_name``."""
    imported: dict[str, int] = {}
    defined: set[str] = set()
    exported: list[str] = []
    aliases: list[tuple[str, str, int]] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    imported.setdefault((a.asname or a.name).split(".")[0], node.lineno)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
                if names == ["__all__"] and isinstance(node.value, (ast.List, ast.Tuple)):
                    exported.extend(e.value for e in node.value.elts if isinstance(e, ast.Constant))
                    continue
                defined.update(names)
                value = node.value
                while isinstance(value, ast.Attribute):
                    value = value.value
                if isinstance(value, ast.Name):
                    aliases.extend((n, value.id, node.lineno) for n in names)
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For)):
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(node, field, []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    aliases = [(n, v, line) for n, v, line in aliases if v in imported and v not in defined]
    return imported, defined, exported, aliases


def reexports(root: Path = ROOT) -> list[str]:
    """Names a module hands on without defining them, and imports that take a name from such a module."""
    modules = _modules(root)
    bindings = {name: _bindings(path) for name, path in modules.items()}
    out = []
    for name, path in modules.items():
        if name in FACES:
            continue
        imported, defined, exported, aliases = bindings[name]
        rel = path.relative_to(root)
        out += [f"{rel}:{imported[n]}: {name} lists {n} in __all__ but imports it" for n in exported
                if n in imported and n not in defined]
        out += [f"{rel}:{line}: {name} re-binds the imported {v} as {n}" for n, v, line in aliases]
    for name, path in modules.items():
        for target, attr, line in _imports(path, name, modules):
            if attr is None or target == "zsl" or target not in bindings:  # `from zsl import X`: root_imports
                continue
            imported, defined, _, _ = bindings[target]
            if attr in imported and attr not in defined:
                out.append(f"{path.relative_to(root)}:{line}: {name} imports {attr} from {target}, which does not "
                           "define it")
    return out


def face_problems(root: Path = ROOT) -> list[str]:
    """Wing faces (zsl/<wing>/__init__.py) over 39 lines, or that hand on names and hold more than
    a docstring, imports and ``__all__``."""
    out = []
    for name, path in _modules(root).items():
        if name == "zsl" or path.name != "__init__.py":
            continue
        text = path.read_text(encoding="utf-8")
        rel, body = path.relative_to(root), ast.parse(text).body
        if len(text.splitlines()) >= 40:
            out.append(f"{rel}: {len(text.splitlines())} lines; a wing face has under 40")
        if any(isinstance(s, ast.ImportFrom) and (s.module or "").startswith("zsl.") for s in body):
            out += [f"{rel}:{s.lineno}: a face holds only a docstring, imports and __all__" for s in body
                    if not (isinstance(s, (ast.Import, ast.ImportFrom))
                            or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
                            or (isinstance(s, ast.Assign) and [getattr(x, "id", "") for x in s.targets] == ["__all__"]))]
    return out


def test_every_module_has_a_wing_and_every_wing_a_floor():
    assert [m for m, w in wings().items() if w is None] == [], (
        "put a new module in a wing folder of ORDER (zsl/<wing>/), or list a root contract in ROOT_WING")
    assert set(ROOT_WING.values()) <= set(FLOOR)


def test_a_module_outside_the_wings_has_no_wing(tmp_path):
    for rel in ("zsl/__init__.py", "zsl/errors.py", "zsl/stray.py", "zsl/runs/__init__.py", "zsl/runs/label.py",
                "zsl/attic/__init__.py", "zsl/attic/old.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("", encoding="utf-8")
    (tmp_path / "programs").mkdir()
    assert wings(tmp_path) == {"zsl": "face", "zsl.errors": "errors", "zsl.stray": None, "zsl.runs": "runs",
                               "zsl.runs.label": "runs", "zsl.attic": None, "zsl.attic.old": None}


def test_no_import_points_up_the_wing_order():
    assert upward_imports() == []


def test_the_module_graph_has_no_cycle():
    graph = _graph(_modules())
    assert _cycles(graph) == []
    # it sees imports inside functions and under TYPE_CHECKING
    assert "zsl.image.backends" in graph["zsl.image.tagger"] and "zsl.text.tagger" in graph["zsl.runs.labeller"]
    assert "zsl.evaluation.evaluate" in graph["zsl.evaluation.report"] and "zsl.silver.data" in graph["zsl.evaluation.report"]


def test_the_cycle_check_finds_one_hidden_in_a_function():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_private_name_is_imported_from_another_wing():
    assert private_imports() == []


def test_only_the_face_and_the_cli_import_the_package_root():
    assert root_imports() == []


def test_no_module_re_exports_a_name_it_does_not_define():
    assert reexports() == []


def test_wing_faces_are_short_and_nothing_in_zsl_imports_through_one():
    assert face_problems() == []


def test_the_face_checks_catch_a_long_face_and_an_import_through_one(tmp_path):
    files = {
        "zsl/__init__.py": "",
        "zsl/errors.py": "from zsl.runs import Job\n",
        "zsl/runs/__init__.py": "from zsl.runs.jobs import Job\n__all__ = ['Job']\n\ndef run():\n    pass\n" + "#\n" * 40,
        "zsl/runs/jobs.py": "class Job:\n    pass\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    (tmp_path / "programs").mkdir()
    assert face_problems(tmp_path) == ["zsl/runs/__init__.py: 45 lines; a wing face has under 40",
                                       "zsl/runs/__init__.py:4: a face holds only a docstring, imports and __all__"]
    assert reexports(tmp_path) == ["zsl/errors.py:1: zsl.errors imports Job from zsl.runs, which does not define it"]


def test_the_checks_catch_what_they_are_for(tmp_path):
    """Each check fails on a small tree that breaks it (the real tree is clean, so this shows they can fail)."""
    zsl = tmp_path / "zsl"
    (tmp_path / "programs").mkdir()
    (zsl / "runs").mkdir(parents=True)
    files = {
        "__init__.py": "from zsl.errors import ZslError\n__all__ = ['ZslError']\n",
        "errors.py": "class ZslError(Exception):\n    pass\n",
        "vocab.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from zsl.base import Scorer\n",
        "base.py": "from zsl.vocab import LabelVocab\n\ndef f():\n    import zsl\n    from zsl.runs.jobs import _merge\n",
        "runs/__init__.py": "",
        "runs/jobs.py": "from zsl.errors import ZslError\n__all__ = ['ZslError']\n_Err = ZslError\n",
        "rows.py": "from zsl.runs.jobs import ZslError\n",
    }
    for name, text in files.items():
        (zsl / name).write_text(text, encoding="utf-8")
    assert _cycles(_graph(_modules(tmp_path))) == [["zsl.base", "zsl.vocab"]]
    assert [u.split(": ", 1)[1] for u in upward_imports(tmp_path)] == [
        "zsl.base (base) imports zsl.runs (runs), a higher floor",
        "zsl.base (base) imports zsl.runs.jobs (runs), a higher floor",
        "zsl.rows (rows) imports zsl.runs (runs), a higher floor",
        "zsl.rows (rows) imports zsl.runs.jobs (runs), a higher floor",
        "zsl.vocab (vocab) imports zsl.base (base), a higher floor"]
    assert private_imports(tmp_path) == ["zsl/base.py:5: zsl.runs.jobs._merge from wing runs into base"]
    assert root_imports(tmp_path) == ["zsl/base.py:4: zsl.base imports the package root"]
    assert reexports(tmp_path) == [
        "zsl/runs/jobs.py:1: zsl.runs.jobs lists ZslError in __all__ but imports it",
        "zsl/runs/jobs.py:3: zsl.runs.jobs re-binds the imported ZslError as _Err",
        "zsl/rows.py:1: zsl.rows imports ZslError from zsl.runs.jobs, which does not define it"]
