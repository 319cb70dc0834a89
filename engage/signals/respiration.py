"""Respiration rate from a respiration belt (stream type ``RSP`` or ``Respiration``), causal and stateful.

The belt signal is band-passed at 0.1–0.7 Hz (6–42 breaths/min, 2nd-order Butterworth, state
kept between chunks). A breath is found with hysteresis on the band-passed signal: it must rise
above ``+h`` and then fall below ``-h``, ``h`` being 30 % of the signal's running RMS (20 s); the
end of inspiration is the maximum in between. Output ``RespirationRate``, irregular, one row per
breath at its inspiration peak: ``rate_bpm`` (breaths per minute), ``interval_s``, ``quality``
(0 when the interval is outside 1.5–15 s or the breath holds flagged samples; times the signal quality
index of the last complete 8 s window before the breath, :mod:`engage.signals.quality`). NaN samples are
held and flagged; the decisions run in one compiled loop, so chunking does not change the output.

>>> import neurokit2 as nk
>>> rsp = nk.rsp_simulate(duration=60, sampling_rate=50, respiratory_rate=15, random_state=1)
>>> peaks = detect_breaths(rsp, 50.0)
>>> 13 <= len(peaks) <= 15
True
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engage.core import Chunk, Processor, StreamInfo

from .beats import _sosfilt
from .quality import WindowQuality

RSP_CHANNELS = ("rate_bpm", "interval_s", "quality")
RSP_UNITS = ("1/min", "s", "ratio")


@njit(cache=True, nogil=True)
def _breath_kernel(bp, bad, fs, sf, si, out_idx, out_bad):  # pragma: no cover - compiled
    # sf: [ms (running mean square), peak value]; si: [n, state (0 below, 1 above +h), peak idx, bad count]
    a = 1.0 - np.exp(-1.0 / (20.0 * fs))
    nout = 0
    for j in range(bp.shape[0]):
        n = si[0]
        v = bp[j]
        sf[0] += a * (v * v - sf[0])
        if bad[j]:
            si[3] += 1
        h = 0.3 * np.sqrt(sf[0])
        if n > 5 * fs:
            if si[1] == 0:
                if v > h:
                    si[1] = 1
                    sf[1] = v
                    si[2] = n
            else:
                if v > sf[1]:
                    sf[1] = v
                    si[2] = n
                if v < -h:
                    si[1] = 0
                    out_idx[nout] = si[2]
                    out_bad[nout] = si[3]
                    nout += 1
                    si[3] = 0
        si[0] = n + 1
    return nout


class BreathDetector:
    """Streaming breath (end-of-inspiration) detector; ``process(x)`` → (absolute indices, flagged counts)."""

    def __init__(self, fs: float) -> None:
        if not np.isfinite(fs) or fs < 2:
            raise ValueError(f"respiration sampling rate {fs} Hz is too low (need >= 2 Hz)")
        from scipy import signal  # heavy: imported by the first respiration stream, not at start-up

        self.fs = float(fs)
        self.sos = signal.butter(2, [0.1, min(0.7, 0.4 * fs)], btype="bandpass", fs=fs, output="sos")
        self.zi = None
        self.offset = 0.0
        self.last = 0.0
        self.sf = np.zeros(2)
        self.si = np.zeros(4, dtype=np.int64)

    @property
    def samples_seen(self) -> int:
        return int(self.si[0])

    def process(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        bad = ~np.isfinite(x)
        if self.zi is None:
            if bad.all():
                self.si[0] += x.size
                return np.zeros(0, dtype=np.int64), np.zeros(0)
            self.offset = self.last = float(x[~bad][0])
            self.zi = np.zeros((self.sos.shape[0], 2))
        if bad.any():
            idx = np.where(bad, 0, np.arange(1, len(x) + 1))
            np.maximum.accumulate(idx, out=idx)
            x = np.where(idx > 0, x[np.maximum(idx - 1, 0)], self.last)
        if x.size:
            self.last = float(x[-1])
        bp = _sosfilt(self.sos, x - self.offset, self.zi)  # scipy's sosfilt arithmetic, without its per-call cost
        out_idx = np.empty(x.size // max(1, int(self.fs)) + 8, dtype=np.int64)
        out_bad = np.empty(out_idx.size)
        n = _breath_kernel(bp, bad, self.fs, self.sf, self.si, out_idx, out_bad)
        return out_idx[:n].copy(), out_bad[:n].copy()


def detect_breaths(x: np.ndarray, fs: float, chunk: int | None = None) -> np.ndarray:
    """Sample indices of the inspiration peaks of a whole belt signal, by the streaming detector."""
    det = BreathDetector(fs)
    x = np.asarray(x, dtype=np.float64)
    step = chunk or max(1, len(x))
    return np.concatenate([np.zeros(0, dtype=np.int64)] + [det.process(x[i:i + step])[0]
                                                           for i in range(0, len(x), step)])


class RespirationRate(Processor):
    """``RSP``/``Respiration`` streams → ``RespirationRate`` (one row per breath).

    >>> RespirationRate().accepts(StreamInfo("belt", "RSP", ("rsp",), ("au",), 50.0, "x"))
    True
    """

    name = "respiration-rate"

    def __init__(self) -> None:
        self._state: dict[tuple[str, str, float], tuple[BreathDetector | None, dict]] = {}
        self._rates: dict[tuple[str, str], float] = {}

    def accepts(self, info: StreamInfo) -> bool:
        return info.type in ("RSP", "Respiration") and info.nominal_rate > 0 and not info.is_string

    def process(self, chunk: Chunk) -> list[Chunk]:
        info = chunk.info
        key = (info.viewer, info.source_id or info.name, float(info.nominal_rate))
        prev_fs = self._rates.get(key[:2])
        if prev_fs is not None and prev_fs != key[2]:  # the device changed its rate: a new detector and a gap
            self.ctx.counters[f"{self.name}.rate_changes"] += 1
            self.ctx.emit("sensor.gap", chunk.first_time, 0.0, {
                "stream": info.name, "duration_s": 0.0,
                "reason": f"sampling rate changed from {prev_fs:g} to {key[2]:g} Hz"}, source=self.name)
            self._state.pop(key, None)  # (a rate seen before starts afresh too)
        self._rates[key[:2]] = key[2]
        if key not in self._state:
            try:
                det = BreathDetector(info.nominal_rate)
            except ValueError as exc:
                self.ctx.counters[f"{self.name}.unusable_streams"] += 1
                self.ctx.emit("sensor.gap", chunk.first_time, 0.0, {"stream": info.name, "duration_s": 0.0,
                                                                    "reason": str(exc)}, source=self.name)
                det = None
            sqi = WindowQuality(info.type, float(info.nominal_rate)) if det is not None else None
            self._state[key] = (det, {"last": None, "ring": np.zeros(max(16, int(40 * info.nominal_rate))), "sqi": sqi})
        det, st = self._state[key]
        if det is None:
            return []
        n0 = det.samples_seen
        col = info.channels.index("rsp") if "rsp" in info.channels else 0
        st["sqi"].update(chunk.data[:, col].astype(np.float64))  # before the breaths: the window before each is complete
        idx, bad = det.process(chunk.data[:, col].astype(np.float64))
        ts = chunk.timestamps.astype(np.float64)
        ring = st["ring"]
        rows, times = [], []
        for i, b in zip(idx.tolist(), bad.tolist()):
            t = float(ts[i - n0]) if i >= n0 else float(ring[i % ring.size])
            last = st["last"]
            st["last"] = t
            if last is None or not np.isfinite(t) or not t > last:
                continue
            interval = t - last
            quality = (1.0 if 1.5 <= interval <= 15.0 and b == 0 else 0.0) * st["sqi"].quality_before(i)
            rows.append([60.0 / interval, interval, quality])
            times.append(t)
        m = len(ts)
        if m >= ring.size:
            ring[np.arange(n0 + m - ring.size, n0 + m) % ring.size] = ts[m - ring.size:]
        else:
            ring[np.arange(n0, n0 + m) % ring.size] = ts
        if not rows:
            return []
        out_info = StreamInfo(f"{info.viewer}-respiration", "RespirationRate", RSP_CHANNELS, RSP_UNITS, 0.0,
                              f"engage-{info.viewer}-respiration", viewer=info.viewer)
        return [Chunk.from_rows(out_info, rows, times)]
