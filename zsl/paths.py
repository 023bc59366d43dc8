"""Where zsl keeps its caches: one folder, ``$ZSL_HOME``."""

from __future__ import annotations

import os
from pathlib import Path


def zsl_home() -> Path:
    """Return the zsl cache folder, creating it if needed.

    ``$ZSL_HOME`` wins; otherwise ``$XDG_CACHE_HOME/zsl`` or ``~/.cache/zsl``.
    Assembled model files, the LM call cache and embedding caches live below it.

    Example: ``ZSL_HOME=/data/zsl zsl models`` keeps every model file and cache in ``/data/zsl``.
    """
    env = os.environ.get("ZSL_HOME")
    if env:
        home = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        home = Path(base).expanduser() / "zsl"
    home.mkdir(parents=True, exist_ok=True)
    return home


def subdir(name: str) -> Path:
    """A named folder below :func:`zsl_home`, created on demand."""
    path = zsl_home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path
