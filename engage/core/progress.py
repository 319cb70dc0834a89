"""Progress of long work on stderr, on a terminal and off it.

On a terminal it is a tqdm bar. Off a terminal (a batch job, a log file, CI, a test harness) a bar
would be either silent or a wall of carriage returns, so :class:`Progress` writes a plain line at
most every :data:`PROGRESS_EVERY_S` seconds and one at the end: what, done/total, elapsed, time
left. Every long command uses it, so nobody waits half an hour on a silent process.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

__all__ = ["PROGRESS_EVERY_S", "Progress"]

#: seconds between progress lines when the output is not a terminal ($ENGAGE_PROGRESS_EVERY_S overrides)
PROGRESS_EVERY_S = 5.0


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


class Progress:
    """A progress counter: a tqdm bar on a terminal, otherwise a line every few seconds and at the end.

    Parameters
    ----------
    total : float
        How many units the work has (0 or less: unknown; lines then say only what is done).
    desc : str
        What is being done (``"replay"``, ``"compare"`` …).
    unit : str
        What one unit is, singular (``"run"``, ``"frame"`` …).
    units : str, optional
        The plural (default: ``unit`` + "s"; ``"s of session"`` for session seconds).
    file : file, optional
        Where to write (default ``sys.stderr``).

    Example
    -------
    >>> import io
    >>> out = io.StringIO()
    >>> with Progress(3, "demo", "run", file=out) as bar:
    ...     for _ in range(3):
    ...         bar.update(1)
    >>> out.getvalue().splitlines()[-1].startswith("demo: 3/3 runs, 0:00 elapsed")
    True
    """

    def __init__(self, total: float, desc: str, unit: str = "item", file: TextIO | None = None,
                 units: str | None = None) -> None:
        self.file = file if file is not None else sys.stderr
        self.total = float(total) if total and total > 0 else 0.0
        self.desc, self.unit, self.units = desc, unit, units if units is not None else unit + "s"
        self.n = 0.0
        self._bar = None
        self._closed = False
        self._start = self._last = time.monotonic()
        try:
            self.every_s = float(os.environ.get("ENGAGE_PROGRESS_EVERY_S", PROGRESS_EVERY_S))
        except ValueError:
            self.every_s = PROGRESS_EVERY_S
        if getattr(self.file, "isatty", lambda: False)():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total or None, desc=desc, unit=unit, leave=False, file=self.file)

    def update(self, n: float = 1.0) -> None:
        """Count ``n`` more units done."""
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._line(now)

    def set(self, done: float) -> None:
        """Set how many units are done (for work counted in session seconds)."""
        if done > self.n:
            self.update(done - self.n)

    def close(self) -> None:
        """The last line (off a terminal) or the bar's end; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.n > 0:
            self._line(time.monotonic())

    def _line(self, now: float) -> None:
        self._last = now
        elapsed = now - self._start
        done = f"{self.n:.0f}/{self.total:.0f}" if self.total else f"{self.n:.0f}"
        line = f"{self.desc}: {done} {self.units}, {_clock(elapsed)} elapsed"
        if self.total and 0 < self.n < self.total:
            line += f", about {_clock(elapsed / self.n * (self.total - self.n))} left"
        print(line, file=self.file, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
