"""Draw zsl's floor plan from its imports: docs/architecture.png.

The wings and their order come from tests/unit/test_layout.py (``WING``: module -> wing, its
folder or, for a root contract, ``ROOT_WING``; ``ORDER``: the floors bottom up), loaded by path
so the picture and the layering test read one map. The imports are read with ``ast`` by the same test's helpers (at the top of
a module, inside functions and under ``TYPE_CHECKING``). Each wing is a box on its floor;
an arrow from wing A down to wing B means modules of A import modules of B, and its width
and label give how many (importing module, imported module) pairs there are. Imports
inside a wing are counted in its box.

Run from a checkout (matplotlib and Pillow, no graphviz)::

    python docs/draw_architecture.py            # writes docs/architecture.png
    python docs/draw_architecture.py --out x.png
"""

from __future__ import annotations

import argparse
import importlib.util
import io
from collections import Counter
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
ROW, BOX_H, BOX_W, FLOOR_GAP = 0.62, 0.46, 6.4, 0.22
# one colour per floor (matplotlib tab10, then six more that differ from it)
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#1b9e77", "#7570b3", "#e7298a", "#a6761d", "#4d4d4d", "#000000")


def load_layout(root: Path = ROOT) -> ModuleType:
    """tests/unit/test_layout.py as a module (it imports only ast and pathlib)."""
    spec = importlib.util.spec_from_file_location("zsl_layout_map", root / "tests" / "unit" / "test_layout.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wing_imports(layout: ModuleType, root: Path = ROOT) -> tuple[Counter, Counter]:
    """``(between, inside)``: distinct (importer, imported) module pairs counted per pair of
    wings, and per wing for pairs inside one wing."""
    modules = layout._modules(root)
    pairs = set()
    for name, path in modules.items():
        for target, _, _ in layout._imports(path, name, modules):
            parts = target.split(".")
            owner = next((".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in modules),
                         None)
            if owner and owner != name and owner != "zsl":  # `import zsl` is the face's own business
                pairs.add((name, owner))
    between: Counter = Counter()
    inside: Counter = Counter()
    for a, b in pairs:
        wa, wb = layout.WING[a], layout.WING[b]
        if wa == wb:
            inside[wa] += 1
        else:
            between[(wa, wb)] += 1
    return between, inside


def rows(order: list[tuple[str, ...]]) -> dict[str, float]:
    """The height of each wing's box: one row per wing, bottom up, a small gap between floors."""
    y, out = 0.0, {}
    for floor in order:
        for wing in floor:
            out[wing] = y
            y += ROW
        y += FLOOR_GAP
    return out


def draw(out: Path, root: Path = ROOT) -> Path:
    """Write the picture; returns its path.

    One column of boxes, bottom up in the wing order; every import arrow leaves an importing
    wing's box on the right and arcs down to the imported wing's box, bulging out in
    proportion to the floors it spans, so short arcs nest inside long ones and none crosses
    a box.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

    layout = load_layout(root)
    between, inside = wing_imports(layout, root)
    members: dict[str, list[str]] = {}
    for module, wing in sorted(layout.WING.items()):  # a wing folder's modules by their file names
        name = "__init__" if module == "zsl" else module.removeprefix("zsl.").removeprefix(f"{wing}.")
        members.setdefault(wing, []).append(name)
    for wing, names in members.items():  # the folder's face (zsl/<wing>/__init__.py) goes without saying
        if len(names) > 1 and wing in names:
            names.remove(wing)
    ys = rows(layout.ORDER)
    floor = {w: i for i, f in enumerate(layout.ORDER) for w in f}
    top = max(ys.values()) + ROW
    fig, ax = plt.subplots(figsize=(12, 15))
    for i, fl in enumerate(layout.ORDER):  # a band per floor
        lo, hi = min(ys[w] for w in fl) - ROW / 2 + 0.04, max(ys[w] for w in fl) + ROW / 2 - 0.04
        ax.add_patch(Rectangle((-0.3, lo), BOX_W + 0.6, hi - lo, fc="#eeeeee" if i % 2 else "#f8f8f8", ec="none",
                               zorder=0))
        ax.text(-0.45, (lo + hi) / 2, f"floor {i}", ha="right", va="center", fontsize=8, color="#666666")
    x0 = BOX_W  # arrows leave and arrive at the boxes' right edge
    for (a, b), n in sorted(between.items(), key=lambda e: (-e[1], e[0])):
        ya, yb = ys[a] - BOX_H / 4, ys[b] + BOX_H / 4
        colour = COLOURS[floor[a] % len(COLOURS)]
        arrow = FancyArrowPatch((x0, ya), (x0, yb), connectionstyle="arc3,rad=-0.55", arrowstyle="-|>",
                                mutation_scale=7 + 1.5 * n, lw=0.4 + 0.6 * n, color=colour, alpha=0.75,
                                zorder=1, shrinkA=0, shrinkB=0)
        ax.add_patch(arrow)
        if n > 2:  # the apex of the arc: its bulge is 0.55 of the height it spans
            ax.text(x0 + 0.55 * (ya - yb) / 2, (ya + yb) / 2, str(n), fontsize=7.5, ha="center", va="center",
                    zorder=3, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": colour, "lw": 1})
    for wing, y in ys.items():
        ax.add_patch(FancyBboxPatch((0, y - BOX_H / 2), BOX_W, BOX_H, boxstyle="round,pad=0.02",
                                    fc="white", ec=COLOURS[floor[wing] % len(COLOURS)], lw=2, zorder=2))
        inner = f"   ({inside[wing]} inside)" if inside[wing] else ""
        ax.text(0.15, y, wing, ha="left", va="center", fontsize=10.5, weight="bold", zorder=4)
        ax.text(1.45, y, ", ".join(members.get(wing, [])) + inner, ha="left", va="center", fontsize=8.5, zorder=4)
    span = max(ys.values()) - min(ys.values())
    ax.set_xlim(-1.4, x0 + 0.55 * span / 2 + 0.6)
    ax.set_ylim(-ROW, top)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("zsl's wings bottom up (ORDER in tests/unit/test_layout.py); a floor imports only itself and the "
                 "floors below.\nAn arc = a wing importing another, in the colour of the importing floor; its width "
                 "(and number, from 3) = (importing\nmodule, imported module) pairs. \"inside\" = such pairs within "
                 "the wing. Drawn by docs/draw_architecture.py.", fontsize=10, loc="left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, metadata={"Software": None})
    plt.close(fig)
    from PIL import Image  # a 128-colour palette: a fifth of the bytes, the same picture to the eye

    out.parent.mkdir(parents=True, exist_ok=True)
    Image.open(buf).convert("RGB").quantize(colors=128).save(out, optimize=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "architecture.png")
    args = parser.parse_args(argv)
    print(draw(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
