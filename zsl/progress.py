"""Progress bars (tqdm on stderr); disabled automatically when stderr is not a terminal
unless ``ZSL_PROGRESS=1``."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], *, desc: str = "", total: int | None = None, disable: bool = False,
             unit: str = "it") -> Iterator[T]:
    """Wrap an iterable in a tqdm progress bar (items/s and ETA)."""
    if disable:
        yield from items
        return
    force = os.environ.get("ZSL_PROGRESS")
    if force == "0" or (force != "1" and not sys.stderr.isatty()):
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=desc, total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)
