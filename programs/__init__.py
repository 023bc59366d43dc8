"""DSPy programs of zsl (shipped as ``zsl.programs``) and their saved, compiled states.

* :mod:`zsl.programs.irr` -- Infer, Rank and InferRetrieveRank.
* ``compiled/*.json`` -- optimised program states saved by ``zsl optimize``.
"""

from importlib import resources
from pathlib import Path

__all__ = ["compiled_dir"]


def compiled_dir() -> Path:
    """Folder of the compiled program states that ship with zsl."""
    return Path(str(resources.files(__name__).joinpath("compiled")))
