"""Per-window signal quality index (SQI) for every physiological modality, as its own stream.

:class:`SignalQualityIndex` reads the raw sampled streams (``ECG``, ``PPG``, ``EDA``, ``RSP`` /
``Respiration``) and the beat streams (``HeartRate``, from ECG, PPG, a strap's RR or rPPG), and
writes one ``SignalQuality`` row per window (2 s of samples, 8 s for respiration, 10 s of beats), stream
``<viewer>-<input type>-quality`` (e.g. ``viewer-1-ecg-quality``, ``viewer-1-heartrate-quality``), source
``engage-sqi-<input source id>``. Channels, each a fraction of
the window in [0, 1]:

- ``nan``: non-finite samples (a dropped sensor, a NaN burst);
- ``flat``: samples in runs of identical values longer than a modality's limit (0.25 s for ECG
  and PPG, 5 s for respiration, 10 s for EDA): a lead off, a frozen amplifier;
- ``saturated``: samples in runs (≥ 3 samples, ≥ 10 ms) at the stream's running minimum or maximum
  (a clipped amplifier), and for EDA samples above 100 µS;
- ``lead_off``: for ECG, PPG and respiration 1 when the window's peak-to-peak amplitude is under
  2 % of the median of the last 30 good windows' (or the window is all NaN or flat); for EDA the
  samples under 0.05 µS (an open electrode);
- ``motion``: for ECG, PPG and respiration 1 when the amplitude is over 4 times that median
  (movement, electrode pops); for EDA the samples changing faster than 10 µS/s (no skin
  conductance response is that steep);
- ``implausible``: for beat streams, the beats whose interval is implausible or ectopic (the
  ``HeartRate`` row's quality under 0.5); 0 for sampled streams;
- ``quality`` = 1 − the largest of them.

Windows are counted in samples (beats: in time from the first beat), so the rows do not depend
on how the input was chunked. The same :class:`WindowQuality` runs inside the cardiac and EDA
processors, which multiply each derived value's ``quality`` by the SQI of the last complete window
before it: quality travels with the data.

>>> import numpy as np
>>> wq = WindowQuality("ECG", 100.0)
>>> x = np.sin(np.arange(600) / 5.0); x[250:400] = 0.3   # 1.5 s flat line (lead off) in the second window
>>> rows = wq.update(x)
>>> [round(r[QUALITY_CHANNELS.index("flat")], 2) for r in rows]
[0.0, 0.75, 0.0]
"""

from __future__ import annotations

import bisect
import math
from collections import deque

import numpy as np
from numba import njit

from engage.core import Chunk, Processor, StreamInfo

QUALITY_CHANNELS = ("quality", "nan", "flat", "saturated", "lead_off", "motion", "implausible")
QUALITY_UNITS = ("ratio",) * len(QUALITY_CHANNELS)

#: stream types read as raw samples, with the flat-run limit in seconds
SAMPLED_TYPES = {"ECG": 0.25, "PPG": 0.25, "EDA": 10.0, "RSP": 5.0, "Respiration": 5.0}
#: window lengths in seconds (respiration: two breaths or more, so a window's amplitude is a breath's)
WINDOW_S = {"ECG": 2.0, "PPG": 2.0, "EDA": 2.0, "RSP": 8.0, "Respiration": 8.0}
EDA_RANGE_US = (0.05, 100.0)
EDA_MAX_SLOPE_US_S = 10.0

# kernel state: sf = [prev value, run value, running min, running max, window min, window max]
#               si = [n, run length, in window, nan, flat, saturated, low, high, steep, have prev, run counted flat,
#                     run counted saturated]
_NSF, _NSI = 6, 12


@njit(cache=True, nogil=True)
def _sqi_kernel(x, wlen, flat_len, sat_len, lo, hi, steep, sf, si, out):  # pragma: no cover - compiled
    """Accumulate per-window counts; each completed window writes one row of ``out``:
    [nan, flat, saturated, low, high, steep, window min, window max, finite samples]."""
    nout = 0
    for j in range(x.shape[0]):
        v = x[j]
        if not np.isfinite(v):
            si[3] += 1
            si[1] = 0
            si[10] = 0
            si[11] = 0
        else:
            if si[9] == 1 and v == sf[1]:
                si[1] += 1
            else:
                si[1] = 1
                sf[1] = v
                si[10] = 0
                si[11] = 0
            # a run reaching a limit counts all its samples in this window (earlier windows are already out)
            if si[1] >= flat_len:
                if si[10] == 0:
                    si[4] += min(si[1], si[2] + 1)
                    si[10] = 1
                else:
                    si[4] += 1
            at_edge = v <= sf[2] or v >= sf[3]
            if si[1] >= sat_len and at_edge:
                if si[11] == 0:
                    si[5] += min(si[1], si[2] + 1)
                    si[11] = 1
                else:
                    si[5] += 1
            if v < lo:
                si[6] += 1
            if v > hi:
                si[7] += 1
            if si[9] == 1 and abs(v - sf[0]) > steep:
                si[8] += 1
            if si[9] == 0 or v < sf[2]:
                sf[2] = v
            if si[9] == 0 or v > sf[3]:
                sf[3] = v
            if v < sf[4]:
                sf[4] = v
            if v > sf[5]:
                sf[5] = v
            sf[0] = v
            si[9] = 1
        si[2] += 1
        si[0] += 1
        if si[2] == wlen:
            out[nout, 0] = si[3]
            out[nout, 1] = si[4]
            out[nout, 2] = si[5]
            out[nout, 3] = si[6]
            out[nout, 4] = si[7]
            out[nout, 5] = si[8]
            out[nout, 6] = sf[4]
            out[nout, 7] = sf[5]
            out[nout, 8] = wlen - si[3]
            nout += 1
            for k in range(2, 9):
                si[k] = 0
            sf[4] = 1e300
            sf[5] = -1e300
    return nout


class WindowQuality:
    """The SQI of one sampled stream, window by window (see the module docstring).

    ``update(x)`` takes the next samples and returns the rows (one list of
    :data:`QUALITY_CHANNELS` values per window completed by them); ``window_index(i)`` is the
    window of absolute sample ``i`` and ``quality_before(i)`` the ``quality`` of the last complete
    window before the one holding sample ``i`` (1 when there is none yet).
    """

    def __init__(self, kind: str, fs: float, window_s: float | None = None, history: int = 30) -> None:
        if kind not in SAMPLED_TYPES:
            raise ValueError(f"no signal quality rules for stream type {kind!r} (known: {', '.join(SAMPLED_TYPES)})")
        if not np.isfinite(fs) or fs <= 0:
            raise ValueError(f"sampling rate must be positive, got {fs}")
        if history < 1:
            raise ValueError(f"the amplitude reference needs a history of at least 1 window, got {history}")
        self.kind = kind
        self.fs = float(fs)
        self.window_s = float(window_s if window_s is not None else WINDOW_S[kind])
        self.wlen = max(2, int(round(self.window_s * fs)))
        self.flat_len = max(2, int(round(SAMPLED_TYPES[kind] * fs)))
        self.sat_len = max(3, int(round(0.01 * fs)))
        eda = kind == "EDA"
        self.lo, self.hi = EDA_RANGE_US if eda else (-np.inf, np.inf)
        self.steep = EDA_MAX_SLOPE_US_S / fs if eda else np.inf
        self._sf = np.array([0.0, 0.0, 0.0, 0.0, 1e300, -1e300])
        self._si = np.zeros(_NSI, dtype=np.int64)
        self._out = np.empty((4, 9))
        self._amps: deque[float] = deque(maxlen=history)
        self._amps_sorted: list[float] = []  # the same amplitudes in order: their median without a sort per window
        self._recent: deque[float] = deque(maxlen=64)  # quality of the last windows, the newest last
        self.windows = 0

    def window_index(self, sample: int) -> int:
        return int(sample) // self.wlen

    def quality_before(self, sample: int) -> float:
        back = self.windows - self.window_index(sample) + 1  # window k - 1 is the back-th newest
        return self._recent[-back] if 1 <= back <= len(self._recent) else 1.0

    def quality_before_samples(self, first: int, count: int) -> np.ndarray:
        """:meth:`quality_before` of the ``count`` samples from absolute index ``first`` on (vectorised)."""
        if count and first // self.wlen == (first + count - 1) // self.wlen:  # one window (a short chunk): one value
            return np.full(count, self.quality_before(first))
        recent = np.array(self._recent, dtype=np.float64)
        back = self.windows - (np.arange(first, first + count) // self.wlen) + 1
        ok = (back >= 1) & (back <= recent.size)
        return np.where(ok, recent[np.clip(recent.size - back, 0, max(0, recent.size - 1))] if recent.size else 1.0, 1.0)

    def update(self, x: np.ndarray) -> list[list[float]]:
        x = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
        if x.size // self.wlen + 2 > self._recent.maxlen:  # a long chunk: every sample of it still finds its window
            self._recent = deque(self._recent, maxlen=x.size // self.wlen + 2)
        if x.size // self.wlen + 1 > self._out.shape[0]:
            self._out = np.empty((x.size // self.wlen + 1, 9))
        out = self._out  # (reused: the rows are read out below)
        n = _sqi_kernel(x, self.wlen, self.flat_len, self.sat_len, self.lo, self.hi, self.steep, self._sf, self._si, out)
        rows = []
        for c in out[:n]:
            rows.append(self._row(c))
        return rows

    def _row(self, c: np.ndarray) -> list[float]:
        w = float(self.wlen)
        nan, flat, sat = c[0] / w, min(1.0, c[1] / w), min(1.0, c[2] / w)
        if self.kind == "EDA":
            sat = min(1.0, sat + c[4] / w)
            lead_off = c[3] / w
            motion = c[5] / w
        else:
            amp = float(c[7] - c[6]) if c[8] > 0 else 0.0
            ref = _median(self._amps_sorted)
            dead = c[8] == 0 or flat >= 0.99
            lead_off = 1.0 if dead or (np.isfinite(ref) and amp < 0.02 * ref) else 0.0
            motion = 1.0 if np.isfinite(ref) and amp > 4.0 * ref else 0.0
            if max(nan, flat, sat, lead_off, motion) < 0.5 and amp > 0:
                if len(self._amps) == self._amps.maxlen:
                    del self._amps_sorted[bisect.bisect_left(self._amps_sorted, self._amps[0])]
                self._amps.append(amp)
                bisect.insort(self._amps_sorted, amp)
        q = 1.0 - max(nan, flat, sat, lead_off, motion)
        self._recent.append(q)
        self.windows += 1
        return [float(v) for v in (q, nan, flat, sat, lead_off, motion, 0.0)]


def _median(ordered: list[float]) -> float:
    """``np.median`` of sorted numbers (NaN when there are none), to the last bit: the middle one, or the mean
    of the middle two.

    >>> _median([1.0, 2.0, 4.0]), _median([1.0, 2.0]), _median([])
    (2.0, 1.5, nan)
    """
    k = len(ordered)
    if not k:
        return math.nan
    mid = k // 2
    return ordered[mid] if k % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


class _BeatWindows:
    """SQI rows of a beat stream: windows of ``window_s`` seconds from the first beat."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.t0: float | None = None
        self.k = 0
        self.n = 0
        self.bad = 0

    def add(self, t: float, quality: float) -> list[tuple[float, list[float]]]:
        rows: list[tuple[float, list[float]]] = []
        if not np.isfinite(t):
            return rows
        if self.t0 is None:
            self.t0 = t
        k = int((t - self.t0) // self.window_s)
        if k > self.k:  # the beat opens a later window: the current one is complete
            if self.n:
                frac = self.bad / self.n
                rows.append((self.t0 + (self.k + 1) * self.window_s, [1.0 - frac, 0.0, 0.0, 0.0, 0.0, 0.0, frac]))
            self.k, self.n, self.bad = k, 0, 0
        if k == self.k:  # (a beat earlier than the open window is out of order: not counted)
            self.n += 1
            self.bad += int(not quality >= 0.5)
        return rows


def quality_info(info: StreamInfo, window_s: float) -> StreamInfo:
    """The ``SignalQuality`` stream describing input stream ``info``."""
    return StreamInfo(f"{info.viewer}-{info.type.lower()}-quality", "SignalQuality", QUALITY_CHANNELS, QUALITY_UNITS,
                      1.0 / window_s, f"engage-sqi-{info.source_id or info.name}", viewer=info.viewer)


class SignalQualityIndex(Processor):
    """Raw ``ECG``/``PPG``/``EDA``/``RSP`` streams and ``HeartRate`` beat streams → ``SignalQuality`` rows.

    A row's timestamp is the time of its window's last sample (beats: the window's end). A change
    of sampling rate restarts the windows of that stream.

    >>> SignalQualityIndex().accepts(StreamInfo("eda", "EDA", ("eda",), ("uS",), 4.0, "x"))
    True
    """

    name = "signal-quality"

    def __init__(self, window_s: float | None = None, beat_window_s: float = 10.0) -> None:
        self.window_s = window_s
        self.beat_window_s = beat_window_s
        self._sampled: dict[tuple[str, str], tuple[WindowQuality, StreamInfo]] = {}
        self._beats: dict[tuple[str, str], tuple[_BeatWindows, StreamInfo]] = {}

    def accepts(self, info: StreamInfo) -> bool:
        if info.is_string:
            return False
        if info.type in SAMPLED_TYPES:
            return bool(info.nominal_rate > 0 and np.isfinite(info.nominal_rate))
        return info.type == "HeartRate" and "quality" in info.channels

    def process(self, chunk: Chunk) -> list[Chunk]:
        info = chunk.info
        key = (info.viewer, info.source_id or info.name)
        if info.type == "HeartRate":
            st = self._beats.get(key)
            if st is None:
                st = self._beats[key] = (_BeatWindows(self.beat_window_s), quality_info(info, self.beat_window_s))
            rows, ts = [], []
            for t, q in zip(chunk.timestamps.tolist(), chunk.channel("quality").tolist()):
                for end, row in st[0].add(t, q):
                    ts.append(end)
                    rows.append(row)
            return [Chunk.from_rows(st[1], rows, ts)] if rows else []
        fs = float(info.nominal_rate)
        cur = self._sampled.get(key)
        if cur is None or cur[0].fs != fs:
            wq = WindowQuality(info.type, fs, self.window_s)
            cur = self._sampled[key] = (wq, quality_info(info, wq.window_s))
        wq, out_info = cur
        col = info.channels.index(info.type.lower()) if info.type.lower() in info.channels else 0
        n0 = int(wq._si[0])
        rows = wq.update(chunk.data[:, col])
        if not rows:
            return []
        # each completed window's last sample is in this chunk: its timestamp is the row's
        ends = np.arange(n0 // wq.wlen + 1, n0 // wq.wlen + 1 + len(rows)) * wq.wlen - 1 - n0
        out_t = chunk.timestamps.astype(np.float64)[ends]
        return [Chunk.from_rows(out_info, rows, out_t)]
