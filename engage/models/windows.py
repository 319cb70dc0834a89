"""Feature windows across modalities.

Every ``hop_s`` seconds, the window summarises the last ``window_s`` seconds of heart rate and
EDA features and the last ``attention_window_s`` seconds of face features into one ``Features``
row. Each modality carries its quality (0 when it is missing), so a missing strap or a lost face
lowers confidence downstream instead of producing a guess.

A window is summarised once every input has delivered a row past its end (a beat is known only
some time after it happened; a device may send its samples in packets), or has sent nothing for
``max_wait_s`` of session time (a sensor that stopped or never came), or at the end of the input:
so its rows hold the same data whatever the chunking and pace at which the inputs arrive.

>>> w = FeatureWindow(window_s=30, hop_s=1)
>>> w.info("viewer-1").channels[:3]
('hr_mean', 'scr_rate', 'eda_tonic')
"""

from __future__ import annotations

import numpy as np

from engage.core import Chunk, Processor, StreamInfo
from engage.core.clock import MAX_TIMESTAMP_S
from engage.core.rows import RowBuffer

__all__ = ["FEATURE_CHANNELS", "FEATURE_UNITS", "FeatureWindow", "in_time_range", "step_after"]

FEATURE_CHANNELS = ("hr_mean", "scr_rate", "eda_tonic", "blink_rate", "on_screen",
                    "hr_quality", "eda_quality", "face_quality")
FEATURE_UNITS = ("bpm", "1/min", "uS", "1/min", "ratio", "ratio", "ratio", "ratio")


def step_after(t: float, step: float) -> float:
    """``t + step``, or the next representable time when ``step`` is below ``t``'s resolution, so a
    loop that advances time always advances.

    Parameters
    ----------
    t
        A time in seconds.
    step
        How far to move (positive).

    Returns
    -------
    float
        The next time, always greater than ``t``.

    Examples
    --------
    >>> step_after(1.0, 0.5), step_after(1e17, 1.0) > 1e17
    (1.5, True)
    """
    nxt = t + step
    return nxt if nxt > t else float(np.nextafter(t, np.inf))


def in_time_range(processor: Processor, chunk: Chunk) -> Chunk | None:
    """``chunk`` without the rows whose timestamp is not finite or beyond ±``MAX_TIMESTAMP_S``
    (None when nothing is left). Dropped rows are counted (``<processor>.out_of_range_samples``)
    and marked once per stream as a ``sensor.gap``: a window cannot step through such times.

    Parameters
    ----------
    processor
        The processor receiving the chunk (its context counts and marks the gap, when started).
    chunk
        The input.

    Returns
    -------
    Chunk or None
        The rows with usable times.

    Examples
    --------
    >>> info = StreamInfo("hr", "HeartRate", ("hr_bpm",), ("bpm",), 1.0, "hr")
    >>> c = in_time_range(FeatureWindow(), Chunk(info, np.ones((3, 1)), np.array([1.0, 1e17, 2.0])))
    >>> c.timestamps.tolist()
    [1.0, 2.0]
    """
    ts = chunk.timestamps
    ok = np.abs(ts) <= MAX_TIMESTAMP_S  # NaN compares False
    if ok.all():
        return chunk
    ctx = getattr(processor, "ctx", None)
    if ctx is not None:
        ctx.counters[f"{processor.name}.out_of_range_samples"] += int((~ok).sum())
        key = f"{processor.name}.out_of_range:{chunk.info.name}"
        if not ctx.counters[key]:
            bad = float(ts[~ok][0])
            ctx.emit("sensor.gap", float(ts[ok][0]) if ok.any() else 0.0, 0.0,
                     {"stream": chunk.info.name, "reason": f"timestamp {bad!r} s outside ±{MAX_TIMESTAMP_S:g} s",
                      "samples": int((~ok).sum())}, source=processor.name)
        ctx.counters[key] += 1
    if not ok.any():
        return None
    return Chunk(chunk.info, chunk.data[ok], ts[ok])


def _mean(x: np.ndarray) -> float:
    """``np.mean`` of a non-empty 1-D array, to the last bit, without its Python-level overhead."""
    return float(np.add.reduce(x) / x.shape[0])


class _Buffer(RowBuffer):
    """Timestamps and rows of one input stream, trimmed to the longest window."""

    def __init__(self, n_channels: int) -> None:
        super().__init__(n_channels)
        self._sorted = True  # timestamps never decreased: windows are found by bisection

    def add(self, chunk: Chunk, keep_after: float) -> None:
        ts = chunk.timestamps
        if self._sorted and len(ts) and ((len(self) and ts[0] < self._t[self._n - 1]) or np.any(ts[1:] < ts[:-1])):
            self._sorted = False
        self.append(ts, chunk.data)
        self.trim(keep_after)

    def trim(self, keep_after: float) -> None:
        self.drop_front(int(np.searchsorted(self.t, keep_after, side="right")))

    def since(self, t0: float, now: float) -> tuple[np.ndarray, np.ndarray]:
        """The rows with ``t0 < t <= now`` (read only)."""
        t = self.t
        if self._sorted:
            i, j = np.searchsorted(t, (t0, now), side="right")
            return t[i:j], self.x[i:j]
        m = (t > t0) & (t <= now)
        return t[m], self.x[m]


class FeatureWindow(Processor):
    """``HeartRate`` + ``EDAFeatures`` + ``FaceFeatures`` of one viewer → ``Features`` rows (see
    the module docstring).

    Parameters
    ----------
    window_s
        Seconds of heart rate and EDA summarised by each row.
    hop_s
        Seconds between rows.
    attention_window_s
        Seconds of face features (gaze on screen) summarised by each row.
    viewer
        The viewer whose streams it takes.

    Examples
    --------
    >>> w = FeatureWindow(window_s=30, hop_s=1)
    >>> w.info("viewer-1").channels[:3]
    ('hr_mean', 'scr_rate', 'eda_tonic')
    """

    name = "feature-window"
    inputs = ("HeartRate", "EDAFeatures", "FaceFeatures")

    def __init__(self, window_s: float = 30.0, hop_s: float = 1.0, attention_window_s: float = 10.0,
                 viewer: str = "viewer-1", max_wait_s: float = 5.0) -> None:
        self.window_s = window_s
        self.hop_s = hop_s
        self.attention_window_s = attention_window_s
        self.viewer = viewer
        self.max_wait_s = max_wait_s
        self._buffers: dict[str, _Buffer] = {}
        self._channels: dict[str, tuple[str, ...]] = {}
        self._next: float | None = None  # the end of the next window (None until the first is summarised)
        self._first: float | None = None
        self._latest: dict[str, float] = {}  # per input: the latest row time received
        self._arrived: dict[str, float] = {}  # per input: the session time of its last chunk
        self._fresh: set[str] = set()  # inputs that delivered since the last tick
        self._opened: float | None = None  # the session time the first input arrived

    def info(self, viewer: str) -> StreamInfo:
        return StreamInfo(f"{viewer}-features", "Features", FEATURE_CHANNELS, FEATURE_UNITS, 1.0 / self.hop_s,
                          f"engage-{viewer}-features", viewer=viewer)

    def accepts(self, info: StreamInfo) -> bool:
        return info.type in self.inputs and info.viewer == self.viewer

    def process(self, chunk: Chunk) -> list[Chunk]:
        chunk = in_time_range(self, chunk)
        if chunk is None:
            return []
        kind = chunk.info.type
        if kind not in self._buffers:
            self._buffers[kind] = _Buffer(chunk.info.channel_count)
            self._channels[kind] = chunk.info.channels
        first = chunk.first_time
        if self._next is None and (self._first is None or first < self._first):
            self._first = first  # the earliest row of any input, until the first window is out
        last = float(chunk.timestamps.max())
        if last > self._latest.get(kind, -np.inf):
            self._latest[kind] = last
        self._fresh.add(kind)
        # keep what the next window to summarise still needs (a big chunk may span several windows)
        pending = self._next if self._next is not None else self._first + self.hop_s
        self._buffers[kind].add(chunk, min(chunk.last_time, pending) - max(self.window_s, self.attention_window_s))
        return []

    def _col(self, kind: str, x: np.ndarray, name: str) -> np.ndarray:
        return x[:, self._channels[kind].index(name)]

    def _ready(self, end: float, now: float) -> bool:
        """Whether every input has delivered a row after ``end`` or has been silent for ``max_wait_s``."""
        for kind in self.inputs:
            if self._latest.get(kind, -np.inf) > end:
                continue
            if now - self._arrived.get(kind, self._opened) >= self.max_wait_s:  # stopped, or never came
                continue
            return False
        return True

    def _arrivals(self, now: float) -> None:
        for kind in self._fresh:
            self._arrived[kind] = now
        if self._fresh and self._opened is None:
            self._opened = now
        self._fresh.clear()

    def tick(self, now: float) -> list[Chunk]:
        self._arrivals(now)
        if self._first is None or not abs(now) <= MAX_TIMESTAMP_S:
            return []
        return self._summarise_until(now, wait=True)

    def flush(self, now: float) -> list[Chunk]:
        """The input has ended: every window up to ``now``, without waiting for more."""
        self._arrivals(now)
        if self._first is None or not abs(now) <= MAX_TIMESTAMP_S:
            return []
        return self._summarise_until(now, wait=False)

    def _summarise_until(self, now: float, wait: bool) -> list[Chunk]:
        nxt = self._next if self._next is not None else self._first + self.hop_s
        if now - nxt > self.window_s:  # after a long silence only the last window can hold data, unless data came
            skip = np.floor((now - nxt - self.window_s) / self.hop_s)
            held = [b.t[b.t > nxt - self.window_s] for b in self._buffers.values()]
            earliest = min((float(h.min()) for h in held if h.size), default=np.inf)
            skip = min(skip, max(0.0, np.floor((earliest - nxt) / self.hop_s)))
            if skip > 0:
                nxt += skip * self.hop_s
                self._next = nxt
        rows, stamps = [], []
        while nxt <= now and (not wait or self._ready(nxt, now)):
            rows.append(self.summarise(nxt))
            stamps.append(nxt)
            nxt = step_after(nxt, self.hop_s)
            self._next = nxt
        return [Chunk.from_rows(self.info(self.viewer), rows, stamps)] if rows else []

    def summarise(self, now: float) -> list[float]:
        """One feature row for the window ending at ``now``."""
        span = min(self.window_s, now - self._first) if self._first is not None else self.window_s
        hr_mean = scr_rate = tonic = blink_rate = on_screen = np.nan
        hr_q = eda_q = face_q = 0.0
        if "HeartRate" in self._buffers and span > 0:
            _, x = self._buffers["HeartRate"].since(now - self.window_s, now)
            good = x[self._col("HeartRate", x, "quality") >= 0.5] if len(x) else x
            if len(good):
                hr_mean = _mean(self._col("HeartRate", good, "hr_bpm"))
                hr_q = float(min(1.0, np.add.reduce(self._col("HeartRate", good, "rr_s")) / span))
        if "EDAFeatures" in self._buffers and span > 0:
            t, x = self._buffers["EDAFeatures"].since(now - self.window_s, now)
            if len(x):
                q = self._col("EDAFeatures", x, "quality")
                tonic = _mean(self._col("EDAFeatures", x, "tonic_us"))
                scr_rate = float(np.count_nonzero(self._col("EDAFeatures", x, "scr_amplitude")) / (span / 60.0))
                eda_q = float(_mean(q) * min(1.0, (t[-1] - t[0] + 1e-9) / (0.8 * span)))
        att_span = min(self.attention_window_s, now - self._first) if self._first is not None else 0.0
        if "FaceFeatures" in self._buffers and att_span > 0:
            t, x = self._buffers["FaceFeatures"].since(now - self.attention_window_s, now)
            if len(x):
                present = self._col("FaceFeatures", x, "face_present")
                on_screen = _mean(self._col("FaceFeatures", x, "on_screen"))
                _, xl = self._buffers["FaceFeatures"].since(now - self.window_s, now)
                blinks = np.count_nonzero(self._col("FaceFeatures", xl, "blink_duration"))
                blink_rate = float(blinks / (span / 60.0)) if span > 0 else np.nan
                face_q = float(_mean(present) * min(1.0, (t[-1] - t[0] + 1e-9) / (0.8 * att_span)))
        return [hr_mean, scr_rate, tonic, blink_rate, on_screen, hr_q, eda_q, face_q]
