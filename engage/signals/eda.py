"""Electrodermal activity: causal tonic/phasic split and skin-conductance responses (SCRs).

A causal version of NeuroKit2's default ``eda_process``: the signal is cleaned by a 3 Hz
low-pass (4th-order Butterworth), the tonic level is its 0.05 Hz low-pass and the phasic part
its 0.05 Hz high-pass (NeuroKit2's "highpass" decomposition, run forwards only, filter state
kept between chunks). An SCR peak is a local maximum of the phasic signal at least
``relative_min`` (10 %) of the largest SCR peak of the last ``relative_window_s`` (10 min; None:
of the whole session, as NeuroKit2 does offline - live, one startle or electrode bump would then
silence every smaller response for the rest of a long session), at least ``min_amplitude`` (0.05 µS)
above its onset (the preceding phasic minimum) and reached within ``max_rise_s`` (5 s) of it (a
slower rise is the high-pass filter recovering from the previous response, not a new one). Every decision runs in one compiled per-sample loop,
so the output does not depend on the chunking.

Output ``EDAFeatures`` at the input rate: ``tonic_us``, ``phasic_us``, ``scr_amplitude`` (peak
minus onset, non-zero on the sample where an SCR peaks), ``quality``, ``scr_rise_s`` (onset to
peak, on the peak sample), ``scr_rate_per_min`` (SCRs in the last 60 s).

Bad input never raises: non-finite or out-of-range samples (outside ``valid_range`` µS) are
held at the last good value with quality 0; runs of identical values longer than 10 s (a flat
line, a saturated amplifier) get quality 0 too; runs of bad samples longer than 1 s and
non-increasing timestamps are counted and marked with ``sensor.gap`` events. A change of sampling
rate mid-stream restarts the filters, is marked with a ``sensor.gap`` and gives quality 0 for 2 s
while they settle. ``quality`` is also multiplied by the signal quality index of the last complete
2 s window before the sample (:mod:`engage.signals.quality`: flat, saturated, open electrode, steps
faster than 10 µS/s).

>>> from engage.core import StreamInfo
>>> EdaFeatures().accepts(StreamInfo("eda", "EDA", ("eda",), ("uS",), 16.0, "x"))
True
"""

from __future__ import annotations

from collections import deque

import numpy as np
from numba import njit
from scipy import signal

from engage.core import Chunk, Processor, StreamInfo

from .quality import WindowQuality

EDA_CHANNELS = ("tonic_us", "phasic_us", "scr_amplitude", "quality", "scr_rise_s", "scr_rate_per_min")
EDA_UNITS = ("uS", "uS", "uS", "ratio", "s", "1/min")


@njit(cache=True, nogil=True)
def _scr_kernel(x, valid, phasic, fs, rel, min_amp, max_rise, flat_len, sf, si, blocks, block_len, amp, rise,
                quality):  # pragma: no cover
    # sf: [p1, p2, onset_value, max_peak, prev_x]; si: [n, have2, onset_idx, flat_run, block];
    # blocks: the largest peak of each of the last len(blocks) blocks of block_len samples (a ring),
    # so the relative criterion compares with the recent past; block_len 0: the whole history (sf[3])
    nb = blocks.shape[0]
    for j in range(phasic.shape[0]):
        n = si[0]
        if block_len > 0:
            b = (n - 1) // block_len  # the block of a peak at n - 1
            if b > si[4]:
                for k in range(si[4] + 1, min(b, si[4] + nb) + 1):
                    blocks[k % nb] = 0.0
                si[4] = b
        p = phasic[j]
        ok = valid[j]
        if ok and si[1] >= 1 and x[j] == sf[4]:
            si[3] += 1
        elif ok:
            si[3] = 0
        if ok:
            sf[4] = x[j]
        quality[j] = 1.0 if ok and si[3] < flat_len else 0.0
        amp[j] = 0.0
        rise[j] = 0.0
        if si[1] >= 2:
            p1 = sf[0]
            p2 = sf[1]
            if p1 <= p2 and p1 < p:  # a trough at n-1: a possible onset
                sf[2] = p1
                si[2] = n - 1
            elif p1 > p2 and p1 >= p and si[2] >= 0:  # a peak at n-1
                a = p1 - sf[2]
                if block_len > 0:
                    k = si[4] % nb
                    if p1 > blocks[k]:
                        blocks[k] = p1
                    sf[3] = blocks.max()
                elif p1 > sf[3]:
                    sf[3] = p1
                if a >= min_amp and p1 >= rel * sf[3] and (n - 1 - si[2]) <= max_rise * fs:
                    amp[j] = a
                    rise[j] = (n - 1 - si[2]) / fs
        sf[1] = sf[0]
        sf[0] = p
        if si[1] < 2:
            si[1] += 1
        si[0] = n + 1


class _EdaState:
    def __init__(self, fs: float, x0: float, relative_window_s: float | None) -> None:
        self.fs = fs
        self.sos_clean = signal.butter(4, min(3.0, 0.4 * fs), fs=fs, output="sos")
        self.sos_tonic = signal.butter(2, 0.05, fs=fs, output="sos")
        self.sos_phasic = signal.butter(2, 0.05, btype="highpass", fs=fs, output="sos")
        self.zi_clean = signal.sosfilt_zi(self.sos_clean) * x0
        self.zi_tonic = signal.sosfilt_zi(self.sos_tonic) * x0
        self.zi_phasic = np.zeros((self.sos_phasic.shape[0], 2))  # the high-pass starts at rest on x0
        self.offset = x0
        self.sf = np.array([0.0, 0.0, 0.0, 0.0, x0])
        self.si = np.array([0, 0, -1, 0, 0], dtype=np.int64)
        # the relative criterion's memory: the largest peak per 10 s block over relative_window_s
        self.block_len = 0 if relative_window_s is None else max(1, int(round(10.0 * fs)))
        self.blocks = np.zeros(1 if relative_window_s is None else max(1, int(np.ceil(relative_window_s / 10.0))))
        self.last_value = x0
        self.last_time: float | None = None
        self.scr_times: deque[float] = deque()
        self.bad_start: float | None = None
        self.bad_run = 0
        self.sqi = WindowQuality("EDA", fs)
        self.settle = 0  # samples still given quality 0 (the filters settling after a rate change)


class EdaFeatures(Processor):
    """Streams of type ``EDA`` (µS) → ``EDAFeatures`` (see the module docstring)."""

    name = "eda-features"

    def __init__(self, min_amplitude: float = 0.05, relative_min: float = 0.1, max_rise_s: float = 5.0,
                 valid_range: tuple[float, float] = (0.05, 100.0), relative_window_s: float | None = 600.0) -> None:
        if relative_window_s is not None and not relative_window_s > 0:
            raise ValueError(f"relative_window_s must be positive or None, not {relative_window_s!r}")
        self.min_amplitude = min_amplitude
        self.relative_window_s = relative_window_s
        self.max_rise_s = max_rise_s
        self.relative_min = relative_min
        self.valid_range = valid_range
        self._state: dict[tuple[str, str], _EdaState] = {}
        self._seen: set[tuple[str, str]] = set()
        self._rates: dict[tuple[str, str], float] = {}

    def accepts(self, info: StreamInfo) -> bool:
        return info.type == "EDA" and info.nominal_rate > 0 and not info.is_string

    def _gap(self, info: StreamInfo, t: float, duration: float, reason: str) -> None:
        self.ctx.counters[f"{self.name}.gaps"] += 1
        self.ctx.emit("sensor.gap", float(t), 0.0, {"stream": info.name, "duration_s": float(duration),
                                                     "reason": reason}, source=self.name)

    def process(self, chunk: Chunk) -> list[Chunk]:
        info = chunk.info
        fs = float(info.nominal_rate)
        col = info.channels.index("eda") if "eda" in info.channels else 0
        x = chunk.data[:, col].astype(np.float64)
        lo, hi = self.valid_range
        valid = np.isfinite(x) & (x >= lo) & (x <= hi)
        key = (info.viewer, info.source_id or info.name)
        prev_fs = self._rates.get(key)
        if prev_fs is not None and prev_fs != fs:  # the device changed its rate: new filters, a gap, quality 0 meanwhile
            self.ctx.counters[f"{self.name}.rate_changes"] += 1
            self._gap(info, chunk.first_time, 0.0, f"sampling rate changed from {prev_fs:g} to {fs:g} Hz")
            self._state.pop(key, None)
        self._rates[key] = fs
        st = self._state.get(key)
        if st is None:
            if not np.isfinite(fs) or fs <= 0 or not valid.any():
                self.ctx.counters[f"{self.name}.invalid_samples"] += len(x)
                return []
            settle = 0 if key not in self._seen else int(round(2.0 * fs))
            st = self._state[key] = _EdaState(fs, float(x[valid][0]), self.relative_window_s)
            st.settle = settle
            self._seen.add(key)
        if not valid.all():
            self.ctx.counters[f"{self.name}.invalid_samples"] += int(np.count_nonzero(~valid))
            idx = np.where(valid, np.arange(1, len(x) + 1), 0)
            np.maximum.accumulate(idx, out=idx)
            x = np.where(idx > 0, x[np.maximum(idx - 1, 0)], st.last_value)
        st.last_value = float(x[-1])
        clean, st.zi_clean = signal.sosfilt(st.sos_clean, x, zi=st.zi_clean)
        tonic, st.zi_tonic = signal.sosfilt(st.sos_tonic, clean, zi=st.zi_tonic)
        phasic = self._phasic(st, clean)
        n = len(x)
        amp, rise, quality = np.zeros(n), np.zeros(n), np.zeros(n)
        n0 = int(st.si[0])
        _scr_kernel(x, valid, phasic, fs, self.relative_min, self.min_amplitude, self.max_rise_s, int(10 * fs), st.sf, st.si,
                    st.blocks, st.block_len, amp, rise, quality)
        st.sqi.update(chunk.data[:, col].astype(np.float64))
        quality *= st.sqi.quality_before_samples(n0, n)  # the signal quality of the window before each sample
        if st.settle > 0:
            k = min(st.settle, n)
            quality[:k] = 0.0
            st.settle -= k
        ts = chunk.timestamps.astype(np.float64)
        self._check_time(info, st, ts)
        rate = np.zeros(n)
        peaks = np.flatnonzero(amp)
        if peaks.size or st.scr_times:
            for k in range(n):  # SCRs in the trailing minute (cheap: only near SCRs)
                if amp[k] > 0:
                    st.scr_times.append(ts[k])
                while st.scr_times and st.scr_times[0] <= ts[k] - 60.0:
                    st.scr_times.popleft()
                rate[k] = len(st.scr_times)
        self._bad_runs(info, st, quality, ts)
        out = np.column_stack([tonic, phasic, amp, quality, rise, rate])
        out_info = StreamInfo(f"{info.viewer}-eda-features", "EDAFeatures", EDA_CHANNELS, EDA_UNITS, fs,
                              f"engage-{info.viewer}-eda-features", viewer=info.viewer)
        return [Chunk(out_info, out, chunk.timestamps)]

    @staticmethod
    def _phasic(st: _EdaState, clean: np.ndarray) -> np.ndarray:
        phasic, st.zi_phasic = signal.sosfilt(st.sos_phasic, clean - st.offset, zi=st.zi_phasic)
        return phasic

    def _check_time(self, info: StreamInfo, st: _EdaState, ts: np.ndarray) -> None:
        full = ts if st.last_time is None else np.concatenate([[st.last_time], ts])
        st.last_time = float(ts[-1]) if np.isfinite(ts[-1]) else st.last_time
        back = int(np.count_nonzero(~(np.diff(full) > 0)))
        if back:
            self.ctx.counters[f"{self.name}.timestamps_out_of_order"] += back
            self._gap(info, float(ts[0]), 0.0, f"{back} duplicate or out-of-order timestamps")

    def _bad_runs(self, info: StreamInfo, st: _EdaState, quality: np.ndarray, ts: np.ndarray) -> None:
        bad = quality == 0
        if not bad.any() and st.bad_start is None:
            return
        for k in np.flatnonzero(np.diff(np.concatenate([[st.bad_start is not None], bad]).astype(np.int8))):
            if bad[k]:
                st.bad_start = float(ts[k])
            elif st.bad_start is not None:
                duration = float(ts[k]) - st.bad_start
                if duration >= 1.0:
                    self._gap(info, st.bad_start, duration, "EDA invalid, out of range or flat")
                st.bad_start = None
