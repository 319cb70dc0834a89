"""Device clock → LSL clock, and beat times reconstructed from RR intervals.

A strap tells *when* beats happened only through its RR intervals (1/1024 s ticks of its own
crystal); a notification arrives some unknown time after its last beat (a strap notifies about
once a second, then the radio and the host add latency). So:

* :class:`DeviceClockMapper` keeps pairs (device time of an event, LSL time the host learnt of
  it). The host can only learn *after* the event, so the truth is the **lower envelope** of
  those pairs: a line ``lsl = device + offset + drift·(device - ref)`` along the lower convex
  hull of a sliding window (continuous offset *and* drift estimation, never one offset taken
  at the start), lowered until no recent pair lies below it.
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


def _lower_hull(x: np.ndarray, y: np.ndarray) -> list[int]:
    """Indices of the lower convex hull of points sorted by ``x`` (Andrew's monotone chain)."""
    hull: list[int] = []
    for i in range(len(x)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            if (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a]) <= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    return hull


class DeviceClockMapper:
    """Map a device's clock onto the LSL clock from (device time, arrival time) pairs.

    ``window_s`` is the span of device time the drift fit looks at: the slope of the lower
    convex hull of (device time, arrival - device time) under the window's middle, widened to
    span at least half the window. Drift is estimated once the pairs span ``min_drift_span_s``
    and clipped to ``max_drift`` (a crystal is within a few hundred ppm). The offset is the
    lowest pair of the last ``anchor_s`` seconds under that slope; the slope is refitted every
    ``refit_s`` seconds of device time.

    >>> m = DeviceClockMapper()
    >>> for d in range(0, 100):
    ...     m.add(float(d), 50.0 + d * (1 + 1e-4) + (0.3 if d % 3 else 0.001))
    >>> round(m.map(99.0) - (50.0 + 99 * (1 + 1e-4)), 3)
    0.001
    """

    def __init__(self, window_s: float = 600.0, min_drift_span_s: float = 60.0,
                 max_drift: float = 3e-4, anchor_s: float = 60.0, refit_s: float = 5.0,
                 max_pairs: int = 4096) -> None:
        self.window_s = float(window_s)
        self.min_drift_span_s = float(min_drift_span_s)
        self.max_drift = float(max_drift)
        self.anchor_s = float(anchor_s)
        self.refit_s = float(refit_s)
        self._fitted_at: float | None = None
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
        self._fitted_at = None
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
        drift = self.drift
        due = self._fitted_at is None or abs(d[-1] - self._fitted_at) >= self.refit_s
        if due and d[-1] - d[0] >= self.min_drift_span_s and len(d) >= 4:
            self._fitted_at = float(d[-1])
            hull = _lower_hull(d, off)
            if len(hull) >= 2:
                # the hull edge under the middle of the window: the line below every pair that is
                # closest to them on average (least total latency)
                mid = 0.5 * (d[0] + d[-1])
                k = int(np.clip(np.searchsorted(d[hull], mid) - 1, 0, len(hull) - 2))
                i, j = hull[k], hull[k + 1]
                # a short edge gives a noisy slope: widen it to the hull vertices a quarter-window away
                span = d[-1] - d[0]
                while d[j] - d[i] < 0.5 * span and (k > 0 or j != hull[-1]):
                    if k > 0:
                        k -= 1
                        i = hull[k]
                    if d[j] - d[i] < 0.5 * span and j != hull[-1]:
                        j = hull[int(np.searchsorted(hull, j)) + 1]
                drift = float(np.clip((off[j] - off[i]) / (d[j] - d[i]), -self.max_drift, self.max_drift))
        ref = float(d[-1])
        self.drift = drift
        self.ref = ref
        recent = d >= ref - self.anchor_s  # anchored on recent pairs: a drift error cannot swing it far
        self.offset = float(np.min((off - drift * (d - ref))[recent]))
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
        self._ticks = 0.0
        self.resyncs = 0
        self.beats = 0

    def new_segment(self) -> None:
        """Beat continuity is lost (a reconnection): start a new device time line."""
        self._ticks = 0.0
        self.mapper.reset(keep_drift=True)

    def feed(self, arrival_s: float, rr_ticks: Sequence[int]) -> np.ndarray:
        rr = np.asarray(rr_ticks, dtype=np.float64)  # integer ticks from a strap; exact sums up to 2**53
        if rr.size == 0:
            return np.empty(0)
        ends = self._ticks + np.cumsum(rr)
        last = float(ends[-1]) / RR_TICKS_PER_S
        if self.mapper.ready and self.mapper.residual(last, arrival_s) > self.gap_s:
            self.resyncs += 1
            self.new_segment()
            ends = np.cumsum(rr)
            last = float(ends[-1]) / RR_TICKS_PER_S
        self._ticks = float(ends[-1])
        self.mapper.add(last, arrival_s)
        self.beats += int(rr.size)
        return np.atleast_1d(self.mapper.map(ends / RR_TICKS_PER_S))
