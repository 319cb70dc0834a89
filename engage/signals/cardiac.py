"""Heart rate from ECG: a causal, stateful R-peak detector (Pan–Tompkins style).

It band-passes (5–15 Hz), squares the derivative, integrates over 120 ms and finds peaks with an
adaptive threshold and a 250 ms refractory period; each R peak is placed on the band-passed
signal's maximum just before the integrator's peak. Filter state and the recent history are kept
between chunks, so the beats do not depend on how the signal was chunked. Output is an irregular
``HeartRate`` stream, one row per beat: ``hr_bpm``, ``rr_s``, ``quality``.

This is the walking skeleton's detector; the cardiac issue replaces it with a validated one
behind the same stream contract.

>>> from engage.core import StreamInfo
>>> det = EcgHeartRate()
>>> det.accepts(StreamInfo("ecg", "ECG", ("ecg",), ("mV",), 250.0, "x"))
True
"""

from __future__ import annotations

from collections import deque

import numpy as np
from scipy import signal

from engage.core import Chunk, Processor, StreamInfo

HR_CHANNELS = ("hr_bpm", "rr_s", "quality")
HR_UNITS = ("bpm", "s", "ratio")


def heart_rate_info(viewer: str, source: str) -> StreamInfo:
    """The ``HeartRate`` stream contract shared by every beat source (ECG, PPG, strap RR)."""
    return StreamInfo(f"{viewer}-heart-rate", "HeartRate", HR_CHANNELS, HR_UNITS, 0.0,
                      f"engage-{viewer}-hr-{source}", viewer=viewer)


class _StreamState:
    def __init__(self, fs: float) -> None:
        self.fs = fs
        self.sos = signal.butter(2, [5.0, min(15.0, 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
        self.zi = np.zeros((self.sos.shape[0], 2))
        self.n_int = max(1, int(round(0.12 * fs)))
        self.int_zi = np.zeros(self.n_int - 1)
        self.prev_bp = 0.0
        self.last_value = 0.0
        self.history = deque(maxlen=int(0.5 * fs) + 1)  # recent (t, raw, band-passed) for peak placement
        b, a = signal.sos2tf(self.sos)
        # the band-pass delays the QRS by its group delay near 10 Hz; undone when placing the peak
        self.delay = float(signal.group_delay((b, a), w=[10.0], fs=fs)[1][0]) / fs
        self.signal_level = None
        self.noise_level = 0.0
        self.candidate: tuple[float, float] | None = None  # (integrated value, time)
        self.candidate_age = 0
        self.last_beat: float | None = None
        self.rr: deque[float] = deque(maxlen=8)
        self.warmup = int(2.0 * fs)


class EcgHeartRate(Processor):
    """Streams of type ``ECG`` → ``HeartRate`` (one row per detected beat)."""

    name = "ecg-heart-rate"

    def __init__(self, refractory_s: float = 0.25) -> None:
        self.refractory_s = refractory_s
        self._state: dict[StreamInfo, _StreamState] = {}

    def accepts(self, info: StreamInfo) -> bool:
        return info.type == "ECG" and info.nominal_rate > 0

    def process(self, chunk: Chunk) -> list[Chunk]:
        info = chunk.info
        st = self._state.get(info)
        if st is None:
            st = self._state[info] = _StreamState(info.nominal_rate)
        x = chunk.data[:, 0].astype(np.float64)
        bad = ~np.isfinite(x)
        if bad.any():  # hold the last good value through NaN bursts; the beats there get low quality
            self.ctx.counters[f"{self.name}.nan_samples"] += int(bad.sum())
            x = x.copy()
            for i in np.flatnonzero(bad):
                x[i] = x[i - 1] if i > 0 else st.last_value
        st.last_value = float(x[-1])
        bp, st.zi = signal.sosfilt(st.sos, x, zi=st.zi)
        d = np.diff(bp, prepend=st.prev_bp)
        st.prev_bp = float(bp[-1])
        integ, st.int_zi = signal.lfilter(np.ones(st.n_int) / st.n_int, [1.0], (d * st.fs) ** 2, zi=st.int_zi)
        beats: list[tuple[float, float, float]] = []
        ts = chunk.timestamps
        for i in range(len(x)):
            st.history.append((ts[i], x[i], bp[i]))
            self._step(st, float(integ[i]), float(ts[i]), bool(bad[i]), beats)
        if not beats:
            return []
        return [Chunk.from_rows(heart_rate_info(info.viewer, "ecg"), [b[1:] for b in beats], [b[0] for b in beats])]

    def _step(self, st: _StreamState, v: float, t: float, bad: bool, beats: list) -> None:
        if st.warmup > 0:  # learn the signal level on the first two seconds
            st.warmup -= 1
            st.signal_level = max(st.signal_level or 0.0, v) * (1.0 if st.warmup else 0.5)
            return
        threshold = st.noise_level + 0.25 * (st.signal_level - st.noise_level)
        if st.candidate is not None:
            st.candidate_age += 1
            if v > st.candidate[0]:
                st.candidate = (v, t)
                st.candidate_age = 0
            elif v < 0.5 * st.candidate[0] or st.candidate_age > 0.2 * st.fs:
                self._confirm(st, beats)
            return
        if v > threshold and (st.last_beat is None or t - st.last_beat > self.refractory_s):
            st.candidate = (v, t)
            st.candidate_age = 0
        else:
            st.noise_level = 0.999 * st.noise_level + 0.001 * v

    def _confirm(self, st: _StreamState, beats: list) -> None:
        peak_value, peak_time = st.candidate
        st.candidate = None
        st.signal_level = 0.875 * st.signal_level + 0.125 * peak_value
        window = [(t, abs(b)) for t, _, b in st.history if peak_time - 0.2 <= t <= peak_time]
        r_time = max(window, key=lambda p: p[1])[0] - st.delay if window else peak_time
        # refine on the raw signal: the largest deflection from the local median within ±40 ms
        raw = [(t, r) for t, r, _ in st.history if abs(t - r_time) <= 0.04]
        if raw:
            med = float(np.median([r for _, r, _ in st.history]))
            r_time = max(raw, key=lambda p: abs(p[1] - med))[0]
        if st.last_beat is not None and r_time - st.last_beat <= self.refractory_s:
            return
        if st.last_beat is not None:
            rr = r_time - st.last_beat
            quality = 1.0
            if not 0.3 <= rr <= 2.0:
                quality = 0.0
            elif st.rr and abs(rr - float(np.median(st.rr))) > 0.3 * float(np.median(st.rr)):
                quality = 0.3
            if quality > 0:
                st.rr.append(rr)
            beats.append((r_time, 60.0 / rr, rr, quality))
        st.last_beat = r_time
