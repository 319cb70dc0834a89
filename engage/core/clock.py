"""The one clock. Live: LSL's ``local_clock()``. Replay and simulation: a virtual clock the
runtime advances as fast as processing allows, so the same input gives the same output.

>>> clock = VirtualClock(start=10.0)
>>> clock.advance(0.5); clock.now()
10.5
"""

from __future__ import annotations

from typing import Protocol

#: The largest absolute timestamp (seconds) engage accepts: about the year 2286 as UNIX time,
#: 300 years of an LSL clock. Past ~9e15 s a float64 cannot tell ``t`` from ``t + 1``, so a clock
#: there cannot advance; a timestamp outside this range is corrupt or in another unit (ms, µs),
#: and is refused with a clear error or dropped and marked as a gap.
MAX_TIMESTAMP_S = 1e10


class Clock(Protocol):
    """Anything that tells the time on the LSL clock, in seconds."""

    realtime: bool

    def now(self) -> float: ...


class LslClock:
    """The live clock: ``pylsl.local_clock()``, shared by every LSL program on this machine."""

    realtime = True

    def __init__(self) -> None:
        import pylsl  # imported here so the package imports without liblsl

        self._local_clock = pylsl.local_clock

    def now(self) -> float:
        return float(self._local_clock())


class VirtualClock:
    """A clock that moves only when told to; used for replay and simulation."""

    realtime = False

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def set(self, t: float) -> None:
        if t < self._now:
            raise ValueError(f"virtual clock cannot go back from {self._now} to {t}")
        self._now = float(t)

    def advance(self, dt: float) -> None:
        self.set(self._now + dt)
