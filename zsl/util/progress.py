"""Progress bars (tqdm on stderr); disabled automatically when stderr is not a terminal
unless ``ZSL_PROGRESS=1``. :class:`Heartbeat` writes the same progress to a run's log now and then."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
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


def log_interval(env: dict[str, str] | None = None) -> float:
    """Seconds between progress lines in a run's log: ``$ZSL_LOG_EVERY``, default 60 (0: after every chunk).

    Example:
        >>> log_interval({}), log_interval({"ZSL_LOG_EVERY": "0"})
        (60.0, 0.0)
    """
    raw = (os.environ if env is None else env).get("ZSL_LOG_EVERY", "").strip()
    if not raw:
        return 60.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        from zsl.errors import InputError

        raise InputError(f"ZSL_LOG_EVERY must be a number of seconds >= 0, got {raw!r}. Fix: unset it (a progress "
                         "line every 60 s) or set e.g. ZSL_LOG_EVERY=300.")
    return value


def _left(seconds: float) -> str:
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


class Heartbeat:
    """Progress lines for a run's log (``log.txt``), so a long run is never silent there: items done
    of the total, the rate and the time left.

    Count with :meth:`update`; call :meth:`beat` where a line may be written (after each item or
    chunk). A line is written only when ``interval`` seconds have passed since the last one (or the
    start) and something was done since, so a line comes every ``interval`` seconds or every
    update, whichever is later.

    Args:
        log: writes one line (:meth:`zsl.runs.rundir.RunDir.log`).
        total: items in all (None: unknown).
        what: the line's prefix (``"labelling"``, ``"LLM teacher"``).
        unit: what is counted.
        interval: seconds between lines (default :func:`log_interval`).
        initial: items already done before this session (not counted in the rate).
        clock: monotonic seconds (a fake one in tests).

    Example:
        >>> now = [0.0]
        >>> hb = Heartbeat(print, total=10, what="labelling", interval=60, clock=lambda: now[0])
        >>> hb.update(5); now[0] = 100.0; hb.beat()
        labelling: 5/10 item(s) (50%), 0.05 item/s, about 1 min 40 s left
    """

    def __init__(self, log: Callable[[str], None], *, total: int | None, what: str, unit: str = "item",
                 interval: float | None = None, initial: int = 0, clock: Callable[[], float] = time.monotonic):
        self.log, self.total, self.what, self.unit = log, total, what, unit
        self.interval = log_interval() if interval is None else interval
        self.clock = clock
        self.done = self._initial = self._logged = initial
        self._start = self._last = clock()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items done."""
        self.done += n

    def beat(self) -> None:
        """Write a progress line if ``interval`` seconds have passed since the last one."""
        now = self.clock()
        if now - self._last < self.interval or self.done == self._logged:
            return
        self._last, self._logged = now, self.done
        rate = (self.done - self._initial) / max(now - self._start, 1e-9)
        line = f"{self.what}: {self.done}"
        if self.total:
            line += f"/{self.total} {self.unit}(s) ({100 * self.done / self.total:.0f}%), {rate:.2f} {self.unit}/s"
            line += f", about {_left(max(0, self.total - self.done) / rate)} left"
        else:
            line += f" {self.unit}(s), {rate:.2f} {self.unit}/s"
        self.log(line)
