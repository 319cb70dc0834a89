"""Feature windows across modalities.

Every ``hop_s`` seconds, the window summarises the last ``window_s`` seconds of heart rate and
EDA features and the last ``attention_window_s`` seconds of face features into one ``Features``
row. Each modality carries its quality (0 when it is missing), so a missing strap or a lost face
lowers confidence downstream instead of producing a guess.

>>> w = FeatureWindow(window_s=30, hop_s=1)
>>> w.info("viewer-1").channels[:3]
('hr_mean', 'scr_rate', 'eda_tonic')
"""

from __future__ import annotations

import numpy as np

from engage.core import Chunk, Processor, StreamInfo
from engage.core.clock import MAX_TIMESTAMP_S

FEATURE_CHANNELS = ("hr_mean", "scr_rate", "eda_tonic", "blink_rate", "on_screen",
                    "hr_quality", "eda_quality", "face_quality")
FEATURE_UNITS = ("bpm", "1/min", "uS", "1/min", "ratio", "ratio", "ratio", "ratio")


def step_after(t: float, step: float) -> float:
    """``t + step``, or the next representable time when ``step`` is below ``t``'s resolution, so a
    loop that advances time always advances.

    >>> step_after(1.0, 0.5), step_after(1e17, 1.0) > 1e17
    (1.5, True)
    """
    nxt = t + step
    return nxt if nxt > t else float(np.nextafter(t, np.inf))


def in_time_range(processor: Processor, chunk: Chunk) -> Chunk | None:
    """``chunk`` without the rows whose timestamp is not finite or beyond ±``MAX_TIMESTAMP_S``
    (None when nothing is left). Dropped rows are counted (``<processor>.out_of_range_samples``)
    and marked once per stream as a ``sensor.gap``: a window cannot step through such times."""
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


class _Buffer:
    """Timestamps and rows of one input stream, trimmed to the longest window."""

    def __init__(self, n_channels: int) -> None:
        self.t = np.zeros(0)
        self.x = np.zeros((0, n_channels))

    def add(self, chunk: Chunk, keep_after: float) -> None:
        self.t = np.concatenate([self.t, chunk.timestamps])
        self.x = np.vstack([self.x, chunk.data.astype(np.float64)])
        self.trim(keep_after)

    def trim(self, keep_after: float) -> None:
        i = int(np.searchsorted(self.t, keep_after, side="right"))
        if i:
            self.t, self.x = self.t[i:], self.x[i:]

    def since(self, t0: float, now: float) -> tuple[np.ndarray, np.ndarray]:
        m = (self.t > t0) & (self.t <= now)
        return self.t[m], self.x[m]


class FeatureWindow(Processor):
    """``HeartRate`` + ``EDAFeatures`` + ``FaceFeatures`` of one viewer → ``Features`` rows."""

    name = "feature-window"
    inputs = ("HeartRate", "EDAFeatures", "FaceFeatures")

    def __init__(self, window_s: float = 30.0, hop_s: float = 1.0, attention_window_s: float = 10.0,
                 viewer: str = "viewer-1") -> None:
        self.window_s = window_s
        self.hop_s = hop_s
        self.attention_window_s = attention_window_s
        self.viewer = viewer
        self._buffers: dict[str, _Buffer] = {}
        self._channels: dict[str, tuple[str, ...]] = {}
        self._next: float | None = None
        self._first: float | None = None

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
        if self._first is None:
            self._first = chunk.first_time
        # keep what the next window to summarise still needs (a big chunk may span several windows)
        pending = self._next if self._next is not None else self._first + self.hop_s
        self._buffers[kind].add(chunk, min(chunk.last_time, pending) - max(self.window_s, self.attention_window_s))
        return []

    def _col(self, kind: str, x: np.ndarray, name: str) -> np.ndarray:
        return x[:, self._channels[kind].index(name)]

    def tick(self, now: float) -> list[Chunk]:
        if self._first is None or not abs(now) <= MAX_TIMESTAMP_S:
            return []
        if self._next is None:
            self._next = self._first + self.hop_s
        rows, stamps = [], []
        if now - self._next > self.window_s:  # after a long silence only the last window can hold data
            self._next += np.floor((now - self._next - self.window_s) / self.hop_s) * self.hop_s
        while self._next <= now:
            rows.append(self.summarise(self._next))
            stamps.append(self._next)
            self._next = step_after(self._next, self.hop_s)
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
                hr_mean = float(np.mean(self._col("HeartRate", good, "hr_bpm")))
                hr_q = float(min(1.0, np.sum(self._col("HeartRate", good, "rr_s")) / span))
        if "EDAFeatures" in self._buffers and span > 0:
            t, x = self._buffers["EDAFeatures"].since(now - self.window_s, now)
            if len(x):
                q = self._col("EDAFeatures", x, "quality")
                tonic = float(np.mean(self._col("EDAFeatures", x, "tonic_us")))
                scr_rate = float(np.count_nonzero(self._col("EDAFeatures", x, "scr_amplitude")) / (span / 60.0))
                eda_q = float(np.mean(q) * min(1.0, (t[-1] - t[0] + 1e-9) / (0.8 * span)))
        att_span = min(self.attention_window_s, now - self._first) if self._first is not None else 0.0
        if "FaceFeatures" in self._buffers and att_span > 0:
            t, x = self._buffers["FaceFeatures"].since(now - self.attention_window_s, now)
            if len(x):
                present = self._col("FaceFeatures", x, "face_present")
                on_screen = float(np.mean(self._col("FaceFeatures", x, "on_screen")))
                _, xl = self._buffers["FaceFeatures"].since(now - self.window_s, now)
                blinks = np.count_nonzero(self._col("FaceFeatures", xl, "blink_duration"))
                blink_rate = float(blinks / (span / 60.0)) if span > 0 else np.nan
                face_q = float(np.mean(present) * min(1.0, (t[-1] - t[0] + 1e-9) / (0.8 * att_span)))
        return [hr_mean, scr_rate, tonic, blink_rate, on_screen, hr_q, eda_q, face_q]
