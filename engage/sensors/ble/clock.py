"""Device clock → LSL clock, and beat times reconstructed from RR intervals.

A strap tells *when* beats happened only through its RR intervals (1/1024 s ticks of its own
crystal); a notification arrives some unknown time after its last beat (a strap notifies about
once a second, then the radio and the host add latency). So:

* :class:`DeviceClockMapper` keeps pairs (device time of an event, LSL time the host learnt of
  it). The host can only learn *after* the event, so the truth is the **lower envelope** of
  those pairs: a line ``lsl = device + offset + drift·(device - ref)`` fitted through the
  minima of time bins over a sliding window (continuous offset *and* drift estimation, never
  one offset taken at the start), then lowered until no pair lies below it.
* :class:`BeatTimer` accumulates the RR ticks into a continuous device time line (sums of
  integer ticks: no rounding error builds up), so each beat's device time is known exactly;
  the mapper puts it on the LSL clock. Beats are back-dated from the notification that
  carried them. Lost notifications show as a jump of the arrival times against the device
  line; the timer then starts a new segment (counted in ``resyncs``).

>>> bt = BeatTimer()
>>> [round(float(t), 3) for t in bt.feed(100.02, [1024])]
[100.02]
>>> [round(float(t), 3) for t in bt.feed(101.01, [1024])]   # arrives earlier than expected → better estimate
[101.01]
"""

from __future__ import annotations

from collections import deque
from typing import Sequence

import numpy as np

from .hrm import RR_TICKS_PER_S


class DeviceClockMapper:
    """Map a device's clock onto the LSL clock from (device time, arrival time) pairs.

    ``window_s`` is the span of device time the fit looks at; ``bins`` the number of time bins
    whose minima define the lower envelope; drift is estimated once the pairs span
    ``min_drift_span_s`` and clipped to ``max_drift`` (a crystal is within a few hundred ppm).

    >>> m = DeviceClockMapper()
    >>> for d in range(0, 100):
    ...     m.add(float(d), 50.0 + d * (1 + 1e-4) + (0.3 if d % 3 else 0.001))
    >>> round(m.map(99.0) - (50.0 + 99 * (1 + 1e-4)), 3)
    0.001
    """

    def __init__(self, window_s: float = 120.0, bins: int = 8, min_drift_span_s: float = 20.0,
                 max_drift: float = 1e-3, max_pairs: int = 4096) -> None:
        self.window_s = float(window_s)
        self.bins = int(bins)
        self.min_drift_span_s = float(min_drift_span_s)
        self.max_drift = float(max_drift)
        self._pairs: deque[tuple[float, float]] = deque(maxlen=max_pairs)
        self.offset = 0.0
        self.drift = 0.0
        self.ref = 0.0
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    def reset(self, keep_drift: bool = True) -> None:
        """Forget the pairs (a new device time line); keep the drift estimate unless told not to."""
        self._pairs.clear()
        self._ready = False
        if not keep_drift:
            self.drift = 0.0

    def add(self, device_s: float, arrival_s: float) -> None:
        """One event at ``device_s`` on the device clock that the host saw at ``arrival_s`` (LSL)."""
        self._pairs.append((float(device_s), float(arrival_s)))
        while self._pairs and self._pairs[-1][0] - self._pairs[0][0] > self.window_s:
            self._pairs.popleft()
        self._fit()

    def _fit(self) -> None:
        p = np.asarray(self._pairs)
        d, off = p[:, 0], p[:, 1] - p[:, 0]
        span = d[-1] - d[0]
        drift = self.drift
        if span >= self.min_drift_span_s and len(d) >= 4:
            edges = np.linspace(d[0], d[-1] + 1e-9, self.bins + 1)
            idx = np.clip(np.searchsorted(edges, d, side="right") - 1, 0, self.bins - 1)
            xs, ys = [], []
            for b in range(self.bins):
                sel = np.flatnonzero(idx == b)
                if sel.size:
                    j = sel[np.argmin(off[sel])]
                    xs.append(d[j])
                    ys.append(off[j])
            if len(xs) >= 3:
                drift = float(np.clip(np.polyfit(np.asarray(xs), np.asarray(ys), 1)[0], -self.max_drift, self.max_drift))
        ref = float(d[-1])
        self.drift = drift
        self.ref = ref
        self.offset = float(np.min(off - drift * (d - ref)))
        self._ready = True

    def map(self, device_s):
        """LSL time(s) of device time(s) ``device_s``."""
        d = np.asarray(device_s, dtype=np.float64)
        out = d + self.offset + self.drift * (d - self.ref)
        return float(out) if out.ndim == 0 else out

    def residual(self, device_s: float, arrival_s: float) -> float:
        """How late ``arrival_s`` is against the current mapping (negative: earlier than possible)."""
        return float(arrival_s - self.map(device_s))


class BeatTimer:
    """Beat times on the LSL clock from notifications carrying RR intervals (see the module doc).

    ``feed(arrival, rr_ticks)`` returns the LSL times of the beats that end each RR interval.
    ``gap_s``: an arrival later than this against the device line means beats were lost.
    """

    def __init__(self, mapper: DeviceClockMapper | None = None, gap_s: float = 2.0) -> None:
        self.mapper = mapper or DeviceClockMapper()
        self.gap_s = float(gap_s)
        self._ticks = 0
        self.resyncs = 0
        self.beats = 0

    def new_segment(self) -> None:
        """Beat continuity is lost (a reconnection): start a new device time line."""
        self._ticks = 0
        self.mapper.reset(keep_drift=True)

    def feed(self, arrival_s: float, rr_ticks: Sequence[int]) -> np.ndarray:
        rr = np.asarray(rr_ticks, dtype=np.int64)
        if rr.size == 0:
            return np.empty(0)
        ends = self._ticks + np.cumsum(rr)
        last = float(ends[-1]) / RR_TICKS_PER_S
        if self.mapper.ready and self.mapper.residual(last, arrival_s) > self.gap_s:
            self.resyncs += 1
            self.new_segment()
            ends = np.cumsum(rr)
            last = float(ends[-1]) / RR_TICKS_PER_S
        self._ticks = int(ends[-1])
        self.mapper.add(last, arrival_s)
        self.beats += int(rr.size)
        return np.atleast_1d(self.mapper.map(ends / RR_TICKS_PER_S))
