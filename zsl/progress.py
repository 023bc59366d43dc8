"""Progress bars (tqdm on stderr); disabled automatically when stderr is not a terminal
unless ``ZSL_PROGRESS=1``."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, Self, TypeVar

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


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def progress_bar(*, total: int | None = None, desc: str = "", unit: str = "it", initial: int = 0,
                 disable: bool = False) -> Any:
    """A manually updated progress bar (``with progress_bar(total=n) as bar: bar.update(k)``),
    or a do-nothing stand-in when progress is off (see :func:`progress`)."""
    force = os.environ.get("ZSL_PROGRESS")
    if disable or force == "0" or (force != "1" and not sys.stderr.isatty()):
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, initial=initial, file=sys.stderr, dynamic_ncols=True,
                smoothing=0.1)
