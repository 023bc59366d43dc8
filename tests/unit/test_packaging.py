"""prompts/ and programs/ live at the top of the repository but must ship inside the wheel; benchmarks/ must not."""

import subprocess
import sys
import tomllib
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
    assert not any(n.startswith(("prompts/", "programs/", "tests/", "benchmarks/", "zsl/bench/")) for n in names)
    # every module of the library ships, subpackages (zsl.data) included
    modules = [f.relative_to(ROOT).as_posix() for f in (ROOT / "zsl").rglob("*.py")
               if f.relative_to(ROOT).parts[1] not in ("prompts", "programs")]
    assert "zsl/data/files.py" in modules and [m for m in modules if m not in names] == []


def test_the_package_list_leaves_the_benchmarks_out():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    packages, package_dir = setuptools["packages"], setuptools["package-dir"]
    assert "zsl" in packages and not any("bench" in p for p in packages)
    assert not any("bench" in d for d in package_dir.values())
    assert (ROOT / "benchmarks" / "__init__.py").is_file() and not (ROOT / "zsl" / "bench").exists()
    # every package listed is a folder of the checkout, none of them benchmarks/
    folders = {(ROOT / package_dir.get(p, p.replace(".", "/"))).resolve() for p in packages}
    assert (ROOT / "benchmarks").resolve() not in folders and all(f.is_dir() for f in folders)
