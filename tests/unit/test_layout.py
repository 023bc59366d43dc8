"""The floor plan: zsl's modules import each other without cycles and without each other's private names.

Read from the source, so imports inside functions count as much as those at the top (an import
in a function only hides a cycle until that function runs); ``if TYPE_CHECKING:`` blocks are
left out (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules() -> dict[str, Path]:
    """Module name -> file, for the library, its benchmarks and the shipped programs."""
    out: dict[str, Path] = {}
    for f in sorted((ROOT / "zsl").rglob("*.py")):
        rel = f.relative_to(ROOT / "zsl")
        if rel.parts[0] in ("prompts", "programs"):  # links to the top-level folders in a development checkout
            continue
        parts = ["zsl", *rel.with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    for f in sorted((ROOT / "programs").glob("*.py")):
        out["zsl.programs" if f.stem == "__init__" else f"zsl.programs.{f.stem}"] = f
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, name: str, modules: dict[str, Path]) -> list[tuple[str, str | None, int]]:
    """``(module, imported name or None, line)`` for every zsl import in a file, at any depth."""
    is_package = path.name == "__init__.py"
    found: list[tuple[str, str | None, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
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
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, _, _ in _imports(path, name, modules):
            # importing a.b.c runs the package a.b first, unless the importer is inside a.b (then a.b
            # is already being initialised); zsl itself is always initialised first
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                mod = ".".join(parts[:i])
                inside = name.startswith(mod + ".") and i < len(parts)
                if mod in modules and mod != name and not inside:
                    graph[name].add(mod)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
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


def test_the_module_graph_has_no_cycle():
    graph = _graph()
    assert _cycles(graph) == []
    assert "zsl.image_backends" in graph["zsl.image"] and "zsl.tagger" in graph["zsl.labeller"]  # it sees lazy imports


def test_the_cycle_check_finds_one_hidden_in_a_function():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_another_modules_private_names():
    modules = _modules()
    private = [f"{path.relative_to(ROOT)}:{line}: {target}.{attr}"
               for name, path in modules.items()
               for target, attr, line in _imports(path, name, modules)
               if (attr is not None and attr.startswith("_") and not attr.startswith("__"))
               or any(p.startswith("_") and not p.startswith("__") for p in target.split("."))]
    assert private == []
