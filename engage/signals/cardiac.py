"""Heart rate and HRV from three beat sources: ECG (R peaks), PPG (pulse peaks) and a strap's RR.

Each processor is causal and stateful (see :mod:`engage.signals.beats` for the detectors and
:mod:`engage.signals.hrv` for the beat → HR/HRV step) and produces two irregular streams, one
row per beat, timestamped at the beat on the LSL clock:

- ``HeartRate``: ``hr_bpm``, ``rr_s``, ``quality``, ``hr_smooth_bpm``, ``ectopic``;
- ``HRV``: ``mean_rr``, ``sdnn``, ``rmssd``, ``pnn50``, ``lf_hf``, ``quality`` (from the first
  rows with 5 clean beats in the window; ``lf_hf`` is NaN until 2 min of clean beats exist).

Bad input never raises: NaN samples are held and flagged, flat or clipped runs flagged, beats
after them get a low quality; each beat's quality is also multiplied by the signal quality index
of the last complete 2 s window before it (:mod:`engage.signals.quality`: NaN, flat, saturated,
lead off, motion); non-increasing or jumping timestamps, a sampling-rate change
mid-stream, an RR of 0 or of several seconds and lost skin contact are counted in
``ctx.counters`` and marked with a ``sensor.gap`` event (evidence ``stream``, ``duration_s``,
``reason``). An episode of ventricular flutter or fibrillation (waves, not beats: see
:mod:`engage.signals.beats`) gives no row at all, so no usable heart rate or HRV over it; it is
counted (``<processor>.flutter_episodes``) and its gap says so.

>>> from engage.core import StreamInfo
>>> EcgHeartRate().accepts(StreamInfo("ecg", "ECG", ("ecg",), ("mV",), 250.0, "x"))
True
>>> StrapRrHeartRate().accepts(StreamInfo("rr", "RR", ("rr_s", "contact"), ("s", "bool"), 0.0, "x"))
True
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engage.core import Chunk, Processor, StreamInfo

from .beats import EcgBeatDetector, PpgBeatDetector
from .hrv import HRV_CHANNELS, HRV_UNITS, RR_MAX_S, BeatTracker
from .quality import WindowQuality

HR_CHANNELS = ("hr_bpm", "rr_s", "quality", "hr_smooth_bpm", "ectopic")
HR_UNITS = ("bpm", "s", "ratio", "bpm", "bool")


@njit(cache=True, nogil=True)
def _timestamp_faults(ts, prev, have_prev, max_step):  # pragma: no cover - compiled
    """Over the intervals of ``[prev] + ts`` (``prev`` only when ``have_prev``): how many are not positive, how
    many exceed ``max_step``, and the start and length of the first that does (index -1: none)."""
    back = 0
    jumps = 0
    first = -1
    first_t = 0.0
    first_d = 0.0
    for j in range(ts.shape[0]):
        if j == 0:
            if not have_prev:
                continue
            a = prev
        else:
            a = ts[j - 1]
        d = ts[j] - a
        if not d > 0:
            back += 1
        if d > max_step:
            jumps += 1
            if first < 0:
                first = j
                first_t = a
                first_d = d
    return back, jumps, first, first_t, first_d


def _ring_put(ring: np.ndarray, n0: int, values: np.ndarray) -> None:
    """Write ``values`` (absolute sample indices ``n0`` on) into ``ring`` at index modulo its size."""
    size, m = ring.size, len(values)
    if m > size:
        values, n0, m = values[m - size:], n0 + m - size, size
    i = n0 % size
    k = min(m, size - i)
    ring[i:i + k] = values[:k]
    ring[:m - k] = values[k:]


def heart_rate_info(viewer: str, source: str) -> StreamInfo:
    """The ``HeartRate`` stream contract shared by every beat source (ECG, PPG, strap RR)."""
    return StreamInfo(f"{viewer}-heart-rate", "HeartRate", HR_CHANNELS, HR_UNITS, 0.0,
                      f"engage-{viewer}-hr-{source}", viewer=viewer)


def hrv_info(viewer: str, source: str) -> StreamInfo:
    """The ``HRV`` stream: rolling heart-rate variability, one row per beat."""
    return StreamInfo(f"{viewer}-hrv", "HRV", HRV_CHANNELS, HRV_UNITS, 0.0, f"engage-{viewer}-hrv-{source}",
                      viewer=viewer)


class _BeatOutput:
    """Beat tracker + output rows of one input stream."""

    def __init__(self, viewer: str, source: str, window_s: float) -> None:
        self.tracker = BeatTracker(window_s=window_s)
        self.hr_info = heart_rate_info(viewer, source)
        self.hrv_info = hrv_info(viewer, source)
        self.hr_rows: list[list[float]] = []
        self.hr_t: list[float] = []
        self.hrv_rows: list[list[float]] = []
        self.hrv_t: list[float] = []

    def add(self, t: float, **kw) -> dict | None:
        out = self.tracker.update(t, **kw)
        if out is None:
            return None
        hr, hrv = out
        self.hr_rows.append([hr[c] for c in HR_CHANNELS])
        self.hr_t.append(t)
        if hrv is not None:
            self.hrv_rows.append([hrv[c] for c in HRV_CHANNELS])
            self.hrv_t.append(t)
        return hr

    def flush(self) -> list[Chunk]:
        if not self.hr_rows and not self.hrv_rows:
            return []
        out = []
        if self.hr_rows:
            out.append(Chunk.from_rows(self.hr_info, self.hr_rows, self.hr_t))
        if self.hrv_rows:
            out.append(Chunk.from_rows(self.hrv_info, self.hrv_rows, self.hrv_t))
        self.hr_rows, self.hr_t, self.hrv_rows, self.hrv_t = [], [], [], []
        return out


class _SampledState:
    def __init__(self, detector, fs: float, out: _BeatOutput, kind: str) -> None:
        self.det = detector
        self.fs = fs
        self.sqi = WindowQuality(kind, fs) if detector is not None else None
        self.out = out
        self.ring = np.zeros(max(16, int(6 * min(fs, 1e5))))  # recent timestamps by absolute sample index
        self.last_ts: float | None = None
        self.bad_run_start: float | None = None
        self.flutter_seen = 0  # the detector's flutter episodes so far
        self.flutter = False  # the bad run now open holds one
        self.info: StreamInfo | None = None


class _SampledHeartRate(Processor):
    """Shared streaming logic for ECG and PPG: detector → beat times → HeartRate/HRV."""

    stream_type = ""
    source_tag = ""
    channel = ""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self._state: dict[tuple[str, str], _SampledState] = {}

    def _detector(self, fs: float):
        raise NotImplementedError

    def accepts(self, info: StreamInfo) -> bool:
        return info.type == self.stream_type and info.nominal_rate > 0 and not info.is_string

    def _gap(self, info: StreamInfo, t: float, duration: float, reason: str) -> None:
        self.ctx.counters[f"{self.name}.gaps"] += 1
        self.ctx.emit("sensor.gap", t, 0.0, {"stream": info.name, "duration_s": float(duration), "reason": reason},
                      source=self.name)

    def process(self, chunk: Chunk) -> list[Chunk]:
        info = chunk.info
        key = (info.viewer, info.source_id or info.name)
        st = self._state.get(key)
        fs = float(info.nominal_rate)
        if st is None or st.fs != fs:
            out = st.out if st is not None else _BeatOutput(info.viewer, self.source_tag, self.window_s)
            if st is not None:  # a rate change: a new detector, the beat chain restarts
                self._gap(info, chunk.first_time, 0.0, f"sampling rate changed from {st.fs:g} to {fs:g} Hz")
                out.tracker.reset()
            try:
                det = self._detector(fs)
            except ValueError as exc:  # a rate no detector can use: said once, then ignored
                self.ctx.counters[f"{self.name}.unusable_streams"] += 1
                self._gap(info, chunk.first_time, 0.0, str(exc))
                det = None
            st = self._state[key] = _SampledState(det, fs, out, self.stream_type)
        if st.det is None:
            return []
        st.info = info
        col = info.channels.index(self.channel) if self.channel in info.channels else 0
        x = np.ascontiguousarray(chunk.data[:, col], dtype=np.float64)  # read only, by every step below
        ts = np.ascontiguousarray(chunk.timestamps, dtype=np.float64)
        self._check_timestamps(info, st, ts)
        n0 = st.det.samples_seen
        st.sqi.update(x)  # before the beats: the window before each beat is then complete
        idx, bad = st.det.process(x)
        self._count_flutter(st)
        if idx.size:
            self._add_beats(info, st, idx, bad, ts, n0)
        _ring_put(st.ring, n0, ts)
        finite = np.isfinite(x)
        if not finite.all():
            self.ctx.counters[f"{self.name}.nan_samples"] += int(np.count_nonzero(~finite))
        return st.out.flush()

    def flush(self, now: float) -> list[Chunk]:
        """End of input: the beat each detector still holds (its QRS complex was open when the stream ended)."""
        out: list[Chunk] = []
        for st in self._state.values():
            finish = getattr(st.det, "finish", None)
            if finish is None or st.info is None:
                continue
            idx, bad = finish()
            self._count_flutter(st)
            n = st.det.samples_seen
            held = (idx < n) & (idx >= n - st.ring.size)
            self._add_beats(st.info, st, idx[held], bad[held], np.zeros(0), n)
            out.extend(st.out.flush())
        return out

    def _count_flutter(self, st: "_SampledState") -> None:
        """Count the detector's new episodes of ventricular flutter or fibrillation (no beats in them: the beat after
        one carries its interval as bad signal, and the gap it opens says why)."""
        seen = getattr(st.det, "flutter_episodes", 0)
        if seen > st.flutter_seen:
            self.ctx.counters[f"{self.name}.flutter_episodes"] += seen - st.flutter_seen
            st.flutter_seen = seen
            st.flutter = True

    def _add_beats(self, info: StreamInfo, st: "_SampledState", idx: np.ndarray, bad: np.ndarray, ts: np.ndarray,
                   n0: int) -> None:
        """Beats at absolute sample indices ``idx`` → the tracker (``ts`` holds the timestamps from ``n0`` on,
        the ring those before)."""
        size = st.ring.size
        for i, b in zip(idx.tolist(), bad.tolist()):
            t = float(ts[i - n0]) if i >= n0 else float(st.ring[i % size])
            if b > 0.5:
                if st.bad_run_start is None:
                    st.bad_run_start = st.out.tracker.last_time if st.out.tracker.last_time is not None else t
                st.out.tracker.reset()
                st.out.tracker.last_time = t
                continue
            if st.bad_run_start is not None:
                reason = ("ventricular flutter or fibrillation (waves, not beats)" if st.flutter
                          else "bad signal (NaN, flat line, clipping, flutter or fibrillation)")
                self._gap(info, st.bad_run_start, t - st.bad_run_start, reason)
                st.bad_run_start = None
                st.flutter = False
            prev = st.out.tracker.last_time
            # the beat's quality: its own flagged samples and the signal quality of the window before it
            hr = st.out.add(t, bad=1.0 - (1.0 - b) * st.sqi.quality_before(i))
            if hr is not None and hr["rr_s"] > RR_MAX_S and prev is not None:
                self._gap(info, prev, hr["rr_s"], "no beat detected")

    def _check_timestamps(self, info: StreamInfo, st: _SampledState, ts: np.ndarray) -> None:
        prev = st.last_ts
        st.last_ts = float(ts[-1]) if np.isfinite(ts[-1]) else prev
        back, jumps, first, first_t, first_d = _timestamp_faults(ts, 0.0 if prev is None else prev, prev is not None,
                                                                 5.0 / st.fs)
        if back:
            self.ctx.counters[f"{self.name}.timestamps_out_of_order"] += back
            self._gap(info, float(ts[0]), 0.0, f"{back} duplicate or out-of-order timestamps")
            st.out.tracker.reset()
        if jumps:
            self.ctx.counters[f"{self.name}.timestamp_jumps"] += jumps
            self._gap(info, float(first_t), float(first_d), "timestamps jump (samples missing)")
            st.out.tracker.reset()


class EcgHeartRate(_SampledHeartRate):
    """Streams of type ``ECG`` → ``HeartRate`` and ``HRV`` (one row per detected beat).

    Reads the channel named ``ecg`` (else the first channel).
    """

    name = "ecg-heart-rate"
    stream_type = "ECG"
    source_tag = "ecg"
    channel = "ecg"

    def _detector(self, fs: float) -> EcgBeatDetector:
        return EcgBeatDetector(fs)


class PpgHeartRate(_SampledHeartRate):
    """Streams of type ``PPG`` → ``HeartRate`` and ``HRV`` (one row per pulse).

    >>> from engage.core import StreamInfo
    >>> PpgHeartRate().accepts(StreamInfo("ppg", "PPG", ("ppg",), ("au",), 64.0, "x"))
    True
    """

    name = "ppg-heart-rate"
    stream_type = "PPG"
    source_tag = "ppg"
    channel = "ppg"

    def _detector(self, fs: float) -> PpgBeatDetector:
        return PpgBeatDetector(fs)


class StrapRrHeartRate(Processor):
    """``RR`` streams from heart-rate straps (``rr_s``, ``contact``; timestamp = beat time) → ``HeartRate``/``HRV``.

    The strap's own intervals are used (more precise than differences of reconstructed times).
    An RR of 0 or below, or non-finite, is dropped and counted; one above 2.5 s, or a lost
    contact, gives quality 0 and a ``sensor.gap``.
    """

    name = "strap-rr"

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self._out: dict[tuple[str, str], _BeatOutput] = {}

    def accepts(self, info: StreamInfo) -> bool:
        return info.type == "RR" and "rr_s" in info.channels and not info.is_string

    def process(self, chunk: Chunk) -> list[Chunk]:
        info = chunk.info
        key = (info.viewer, info.source_id or info.name)
        out = self._out.get(key)
        if out is None:
            out = self._out[key] = _BeatOutput(info.viewer, "strap", self.window_s)
        rr = chunk.channel("rr_s").astype(np.float64)
        contact = chunk.channel("contact").astype(np.float64) if "contact" in info.channels else np.ones(len(rr))
        for t, r, c in zip(chunk.timestamps.tolist(), rr.tolist(), contact.tolist()):
            last = out.tracker.last_time
            if not np.isfinite(r) or r <= 0 or not np.isfinite(t):
                self.ctx.counters[f"{self.name}.invalid_rr"] += 1
                self._gap(info, t if np.isfinite(t) else (last or 0.0), 0.0, f"invalid RR interval {r!r}")
                continue
            if last is not None and t <= last:
                self.ctx.counters[f"{self.name}.timestamps_out_of_order"] += 1
                self._gap(info, t, 0.0, "duplicate or out-of-order beat time")
                out.tracker.reset()
                out.tracker.last_time = t
                continue
            contact_ok = bool(np.isfinite(c) and c > 0)
            out.add(t, rr=r, contact=1.0 if contact_ok else 0.0)
            if r > RR_MAX_S:
                self._gap(info, t - r, r, f"implausible RR interval {r:.3f} s")
            elif not contact_ok:
                self.ctx.counters[f"{self.name}.no_contact"] += 1
                self._gap(info, t - r, r, "strap lost skin contact")
        return out.flush()

    def _gap(self, info: StreamInfo, t: float, duration: float, reason: str) -> None:
        self.ctx.counters[f"{self.name}.gaps"] += 1
        self.ctx.emit("sensor.gap", float(t), 0.0, {"stream": info.name, "duration_s": float(duration),
                                                     "reason": reason}, source=self.name)
