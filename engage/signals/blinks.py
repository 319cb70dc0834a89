"""Blink detection from an eye-openness series (eye aspect ratio, or openness in mm), causal.

Per viewer, the **open-eye level** a blink is measured against is the median openness of the
last ``level_s`` seconds outside blinks (blink frames are left out, so it is the open eye): it
is known from the first frame (a blink needs an open eye before it, so the frames seen so far
are that eye: no long baseline has to be learnt before the first blink counts) and follows a
lowered gaze or a half-lidded look within a second, so a blink from half-closed lids is measured
against them. A blink **starts** when the openness falls below ``close_ratio`` × the open level
and **ends** when it comes back above ``open_ratio`` × the open level (hysteresis against noise),
or earlier when, back above the half-way level, it stops rising: the lids have reopened as far as
they will. A head turn or a lowered gaze during a blink moves the level the eye comes back to,
and the lids of a close pair close again from a half-open eye (waiting for the old level took the
first for a closure and the pair for one blink); the next blink is then measured against the
level the lids reopened to, until they are back near the open one. Onset and offset are the
interpolated crossings of the half-way level, so the duration does not depend on
the frame rate's phase. A closure longer than ``max_blink_s`` is not a blink (eyes closed,
looking down): it is reported as a closure and counts toward PERCLOS only. After three blinks
the closing threshold **adapts to the viewer**: half-way between the open eye and the median
depth of their last blinks (within 0.55–0.75 of the open level), so deep blinkers are not
triggered by a squint and shallow ones are not missed.

**PERCLOS** is the fraction of the last ``perclos_window_s`` seconds with the eye at least 80 %
closed (openness < 0.2 of the running median over ``history_s``, the P80 definition); **blink
rate** is blinks per minute over the same window. Frames without a face are gaps: a blink cannot
span them.

>>> import numpy as np
>>> t = np.arange(0, 4, 1 / 30)
>>> ear = np.full(t.size, 0.3); ear[60:66] = [0.2, 0.08, 0.05, 0.06, 0.15, 0.25]
>>> [round(b.duration, 2) for b in detect_blinks(t, ear)]
[0.17]
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass

import numpy as np

#: A blink closes the lids past 30 % below the open level and ends back above 85 % of it
#: (literature values for EAR-based detection, Soukupová & Čech 2016; not fitted to a clip).
CLOSE_RATIO, OPEN_RATIO, HALF_RATIO = 0.7, 0.85, 0.775
P80_RATIO = 0.2
#: the open level is this quantile of the recent openness outside blinks (the median: blink frames are left out)
OPEN_QUANTILE = 0.5
#: the per-viewer closing threshold: half-way to the median depth of the last blinks, within these bounds
ADAPT_AFTER, ADAPT_RANGE = 3, (0.55, 0.75)


@dataclass(frozen=True)
class Blink:
    """One blink: ``onset`` and ``offset`` (s, LSL clock), ``duration`` (s), ``depth`` (min/open)."""

    onset: float
    offset: float
    depth: float

    @property
    def duration(self) -> float:
        return self.offset - self.onset


class BlinkDetector:
    """The streaming detector of the module docstring: feed ``update(t, openness)`` frame by frame.

    >>> d = BlinkDetector()
    >>> [d.update(i / 30, 0.3) for i in range(30)][-1] is None
    True
    """

    def __init__(self, close_ratio: float = CLOSE_RATIO, open_ratio: float = OPEN_RATIO,
                 max_blink_s: float = 0.8, history_s: float = 10.0, perclos_window_s: float = 60.0,
                 min_history: int = 5, level_s: float = 1.5, adapt: bool = True) -> None:
        if not 0 < close_ratio < open_ratio <= 1:
            raise ValueError("blink thresholds need 0 < close_ratio < open_ratio <= 1")
        if not level_s > 0:
            raise ValueError("level_s must be positive")
        self.close_ratio, self.open_ratio = close_ratio, open_ratio
        self.half_ratio = (close_ratio + open_ratio) / 2
        self.max_blink_s = max_blink_s
        self.history_s = history_s
        self.perclos_window_s = perclos_window_s
        self.min_history = min_history
        self.level_s = level_s
        self.adapt = adapt
        self._hist: deque[tuple[float, float]] = deque()
        self._sorted: list[float] = []  # the openness values of _hist, sorted (running median in O(log n) + memmove)
        self._median: float | None = None  # the long-run open level (PERCLOS)
        self._recent: deque[tuple[float, float]] = deque()  # openness outside blinks over the last level_s
        self._recent_sorted: list[float] = []
        self._depths: deque[float] = deque(maxlen=10)
        self._open: float | None = None
        self._closing = False
        self._onset: float | None = None
        self._half_down: float | None = None
        self._half_up: float | None = None
        self._reopened: float | None = None  # how far the lids reopened after a blink that ended partly open
        self._min = np.inf
        self._prev: tuple[float, float] | None = None
        self._blinks: deque[float] = deque()
        self._closed_time: deque[tuple[float, float]] = deque()
        self._closed_count = 0  # running count of closed frames in _closed_time (PERCLOS in O(1))
        self.closures = 0

    @property
    def open_level(self) -> float | None:
        """The open-eye level blinks are measured against (None before the first frame)."""
        return self._open

    def _adapt(self, depth: float) -> None:
        """A blink of this viewer reached ``depth``: after a few, the closing threshold moves half-way to them."""
        self._depths.append(depth)
        if self.adapt and len(self._depths) >= ADAPT_AFTER:
            lo, hi = ADAPT_RANGE
            self.close_ratio = float(np.clip(0.5 * (1.0 + float(np.median(self._depths))), lo, hi))
            self.half_ratio = (self.close_ratio + self.open_ratio) / 2

    def reset(self) -> None:
        """Forget an ongoing blink (face lost); the open level is kept."""
        self._closing, self._onset, self._prev, self._min = False, None, None, np.inf
        self._half_down = self._half_up = self._reopened = None

    def _crossing(self, t: float, x: float, level: float) -> float:
        """Time the openness crossed ``level`` between the previous frame and this one."""
        if self._prev is None:
            return t
        t0, x0 = self._prev
        if x0 == x:
            return t
        frac = float(np.clip((x0 - level) / (x0 - x), 0.0, 1.0))
        return t0 + frac * (t - t0)

    def _start(self, t: float, openness: float) -> None:
        """Not in a blink: follow the half-way crossing down, and start a blink when the lids close from open.

        After a blink that ended with the lids partly reopened, the next one is measured against the level
        they reopened to (the highest since), until they are back near the open level.
        """
        level = self._open
        if self._reopened is not None:
            self._reopened = max(self._reopened, openness)
            if self._reopened >= self.open_ratio * self._open:
                self._reopened = None
            else:
                level = self._reopened
        half = self.half_ratio * level
        if openness < half and self._prev is not None and self._prev[1] >= half:
            self._half_down = self._crossing(t, openness, half)
        elif openness >= half:
            self._half_down = None
        was_open = self._prev is not None and self._prev[1] >= self.close_ratio * level
        if openness < self.close_ratio * level and was_open:  # a blink starts from an open eye
            self._closing, self._min, self._half_up = True, openness, None
            self._onset = self._half_down if self._half_down is not None else t

    def update(self, t: float, openness: float) -> Blink | None:
        """One frame; returns the :class:`Blink` that ended on it, else None. NaN = no face (a gap)."""
        if not np.isfinite(openness):
            self.reset()
            return None
        blink = None
        if self._open is not None and self._open > 0:  # an eye that is never open cannot blink
            half = self.half_ratio * self._open
            was_above = self._prev is not None and self._prev[1] >= half
            if self._closing:
                self._min = min(self._min, openness)
                # the lids came back past half-way (on the previous frame) and stopped rising: the blink is over,
                # whether or not they reach the level they left (a head turn or a lowered gaze during the blink
                # moves it), and a fall right after it is the next blink of a close pair, not the same one
                peaked = self._half_up is not None and openness <= self._prev[1]
                if openness >= half and not was_above and self._half_up is None:
                    self._half_up = self._crossing(t, openness, half)
                elif openness < half and not peaked:
                    self._half_up = None
                if self._onset is not None and t - self._onset > self.max_blink_s and \
                        openness < self.open_ratio * self._open and not peaked:
                    # too long for a blink: a closure (or a new, lower open level); stop freezing the level
                    self.closures += 1
                    self._closing, self._onset, self._min, self._half_down = False, None, np.inf, None
                elif openness >= self.open_ratio * self._open or peaked:
                    offset = self._half_up if self._half_up is not None else t
                    if self._onset is not None and 0 < offset - self._onset <= self.max_blink_s:
                        blink = Blink(self._onset, offset, self._min / self._open)
                        self._blinks.append(offset)
                        self._adapt(blink.depth)
                    else:
                        self.closures += 1
                    self._closing, self._onset, self._min, self._half_down = False, None, np.inf, None
                    if peaked:  # the lids stopped partly open: this frame may already start the next blink
                        self._reopened = self._prev[1]
                        self._start(t, openness)
            else:
                self._start(t, openness)
        if self._median is not None and self._median > 0:
            closed = openness < P80_RATIO * self._median
            self._closed_time.append((t, 1.0 if closed else 0.0))
            self._closed_count += int(closed)
        # PERCLOS's level: the running median of the openness over history_s
        self._hist.append((t, openness))
        insort(self._sorted, openness)
        while self._hist and self._hist[0][0] < t - self.history_s:
            del self._sorted[bisect_left(self._sorted, self._hist.popleft()[1])]
        n = len(self._sorted)
        if n >= self.min_history:
            s = self._sorted
            self._median = float(s[n // 2]) if n % 2 else float((s[n // 2 - 1] + s[n // 2]) / 2)
        # the blinks' level: a high quantile of the last level_s seconds outside blinks (frozen during a blink)
        if not self._closing:
            self._recent.append((t, openness))
            insort(self._recent_sorted, openness)
        while self._recent and self._recent[0][0] < t - self.level_s:
            del self._recent_sorted[bisect_left(self._recent_sorted, self._recent.popleft()[1])]
        if self._recent_sorted and not self._closing:
            r = self._recent_sorted
            self._open = float(r[min(len(r) - 1, int(OPEN_QUANTILE * len(r)))])
        self._prev = (t, openness)
        while self._blinks and self._blinks[0] < t - self.perclos_window_s:
            self._blinks.popleft()
        while self._closed_time and self._closed_time[0][0] < t - self.perclos_window_s:
            self._closed_count -= int(self._closed_time.popleft()[1])
        return blink

    def blink_rate(self, t: float) -> float:
        """Blinks per minute over the last ``perclos_window_s`` (the time observed so far, if shorter)."""
        if not self._closed_time:
            return float("nan")
        span = min(self.perclos_window_s, max(t - self._closed_time[0][0], 1.0))
        return 60.0 * len(self._blinks) / span

    def perclos(self) -> float:
        """Fraction of the last window with the eye ≥ 80 % closed (NaN before ``min_history`` frames)."""
        if not self._closed_time:
            return float("nan")
        return self._closed_count / len(self._closed_time)


def detect_blinks(times: np.ndarray, openness: np.ndarray, **kwargs) -> list[Blink]:
    """All blinks of a whole series (the streaming detector run frame by frame)."""
    d = BlinkDetector(**kwargs)
    out = []
    for t, x in zip(np.asarray(times, dtype=np.float64), np.asarray(openness, dtype=np.float64)):
        b = d.update(float(t), float(x))
        if b is not None:
            out.append(b)
    return out


def match_blinks(detected: list[tuple[float, float]], reference: list[tuple[float, float]]) -> dict:
    """Precision/recall/F1 of detected vs reference intervals; a pair matches when they overlap.

    Each reference blink matches at most one detected blink (greedy by overlap).

    >>> match_blinks([(1.0, 1.2), (5.0, 5.1)], [(1.1, 1.3), (3.0, 3.2)])["f1"]
    0.5
    """
    used: set[int] = set()
    tp = 0
    for r0, r1 in reference:
        best, best_ov = None, 0.0
        for k, (d0, d1) in enumerate(detected):
            ov = min(r1, d1) - max(r0, d0)
            if k not in used and ov >= 0 and (best is None or ov > best_ov):
                best, best_ov = k, ov
        if best is not None:
            used.add(best)
            tp += 1
    n_det, n_ref = len(detected), len(reference)
    precision = tp / n_det if n_det else (1.0 if n_ref == 0 else 0.0)
    recall = tp / n_ref if n_ref else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "n_reference": n_ref, "n_detected": n_det, "true_positives": tp}
