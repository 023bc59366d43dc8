"""prompts/ and programs/ live at the top of the repository but must ship inside the wheel."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_prompts_programs_and_examples(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("zsl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for prompt in (ROOT / "prompts").glob("*.json"):
        assert f"zsl/prompts/{prompt.name}" in names
    assert "zsl/programs/irr.py" in names
    assert "zsl/examples/news_topics.jsonl" in names and "zsl/examples/news_topics_labels.txt" in names
    assert not any(n.startswith(("prompts/", "programs/", "tests/")) for n in names)
    # every module of the library ships, subpackages (zsl.data) included
    modules = [f.relative_to(ROOT).as_posix() for f in (ROOT / "zsl").rglob("*.py")
               if f.relative_to(ROOT).parts[1] not in ("prompts", "programs")]
    assert "zsl/data/files.py" in modules and [m for m in modules if m not in names] == []
