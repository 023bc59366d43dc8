"""docs/draw_architecture.py draws the map the layering test checks (docs/architecture.md)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("draw_architecture", ROOT / "docs" / "draw_architecture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_picture_counts_imports_between_the_wings_of_the_layout_map():
    draw = _script()
    layout = draw.load_layout()
    between, inside = draw.wing_imports(layout)
    floor = {wing: i for i, f in enumerate(layout.ORDER) for wing in f}
    assert between and set(inside) <= set(floor)
    for (a, b), n in between.items():
        assert n >= 1 and a != b and floor[a] >= floor[b], (a, b)  # every arrow points down (or across a floor)
    assert between[("runs", "text")] >= 1 and ("text", "runs") not in between
    rows = draw.rows(layout.ORDER)
    assert min(rows, key=rows.get) == layout.ORDER[0][0] and len(rows) == len(floor)


def test_the_script_writes_a_png(tmp_path):
    out = _script().draw(tmp_path / "a.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
