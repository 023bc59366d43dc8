"""Where zsl keeps its caches: one folder, ``$ZSL_HOME``.

The folder holds item texts (embedding and LM-call caches) and DSPy's LM cache, so zsl
creates it, and every folder below it, readable by its owner only (mode 0700), whatever the
umask. Folders that already exist keep their permissions.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700


def _private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as owner-only folders; an existing folder is left as it is."""
    if path.is_dir():
        return path
    if not path.parent.is_dir():
        _private_dir(path.parent)
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE)
    except FileExistsError:  # another process made it meanwhile
        return path
    os.chmod(path, PRIVATE_DIR_MODE)  # mkdir's mode is masked by the umask; chmod is not
    return path


def zsl_home() -> Path:
    """Return the zsl cache folder, creating it (owner-only) if needed.

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
    return _private_dir(home)


def subdir(name: str) -> Path:
    """A named folder below :func:`zsl_home`, created on demand (owner-only)."""
    return _private_dir(zsl_home() / name)
