"""Shared fixtures: an isolated $ZSL_HOME for unit tests, reset DSPy settings, fakes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"



def _own_prompts() -> None:
    """Serve zsl.prompts from this checkout's prompts/: an editable install made from another checkout (a git
    worktree's main one) would otherwise serve its own copy and hide prompts added here."""
    import importlib.util

    import zsl

    spec = importlib.util.spec_from_file_location("zsl.prompts", ROOT / "prompts" / "__init__.py",
                                                  submodule_search_locations=[str(ROOT / "prompts")])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["zsl.prompts"] = module
    zsl.prompts = module


_own_prompts()


@pytest.fixture(autouse=True)
def _isolate(request, tmp_path_factory, monkeypatch):
    """Unit tests get a private $ZSL_HOME; integration tests share the real one (assembled models)."""
    if request.node.get_closest_marker("integration") is None:
        monkeypatch.setenv("ZSL_HOME", str(tmp_path_factory.mktemp("zsl_home")))
    monkeypatch.delenv("ZSL_LM", raising=False)
    monkeypatch.delenv("ZSL_ENCODER", raising=False)
    yield
    if "dspy" in sys.modules:
        import dspy

        dspy.configure(lm=None)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA
