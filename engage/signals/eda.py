"""Electrodermal activity: causal tonic/phasic split and skin-conductance responses (SCRs).

A causal version of NeuroKit2's default ``eda_process``: the signal is cleaned by a 3 Hz
low-pass (4th-order Butterworth), the tonic level is its 0.05 Hz low-pass and the phasic part
its 0.05 Hz high-pass (NeuroKit2's "highpass" decomposition, run forwards only, filter state
kept between chunks). An SCR peak is a local maximum of the phasic signal at least
``relative_min`` (10 %) of the largest SCR peak of the last ``relative_window_s`` (10 min; None:
of the whole session, as NeuroKit2 does offline - live, one startle or electrode bump would then
silence every smaller response for the rest of a long session), at least ``min_amplitude`` (0.05 µS)
above its onset (the preceding phasic minimum) and reached within ``max_rise_s`` (5 s) of it (a
slower rise is the high-pass filter recovering from the previous response, not a new one). Every step (the filters in
SciPy's ``sosfilt`` arithmetic, the decisions, the SCR rate) runs in one compiled per-sample loop, so the
output does not depend on the chunking and a chunk of one sample costs a few microseconds.

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

import numpy as np
from numba import njit

from engage.core import Chunk, Processor, StreamInfo

from .beats import _sosfilt
from .quality import WindowQuality

EDA_CHANNELS = ("tonic_us", "phasic_us", "scr_amplitude", "quality", "scr_rise_s", "scr_rate_per_min")
EDA_UNITS = ("uS", "uS", "uS", "ratio", "s", "1/min")

# the kernel's state besides the SCR detector's: tf = [last good value, last timestamp, phasic offset];
# ti = [a last timestamp exists, the oldest SCR time's slot in the ring, SCR times in the ring]
_TF_LAST, _TF_TIME, _TF_OFFSET = range(3)
_TI_HAVE_TIME, _TI_HEAD, _TI_COUNT = range(3)


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


@njit(cache=True, nogil=True)
def _eda_kernel(raw, ts, lo, hi, fs, rel, min_amp, max_rise, flat_len, sos_c, zi_c, sos_t, zi_t, sos_p, zi_p,
                sf, si, blocks, block_len, tf, ti, ring, out):  # pragma: no cover - compiled
    """One chunk: bad samples held at the last good value, the clean, tonic and phasic filters, the SCR
    decisions, the SCRs of the trailing minute (``ring`` holds their times and must have room for ``len(raw)``
    more) and the timestamp check. Fills ``out``'s columns (quality before the signal quality index) and
    returns (bad samples, duplicate or out-of-order timestamps)."""
    n = raw.shape[0]
    x = np.empty(n)
    valid = np.empty(n, dtype=np.bool_)
    invalid = 0
    last = tf[_TF_LAST]
    for j in range(n):
        v = raw[j]
        ok = np.isfinite(v) and v >= lo and v <= hi
        valid[j] = ok
        if ok:
            last = v
        else:
            invalid += 1
        x[j] = last
    tf[_TF_LAST] = last
    clean = _sosfilt(sos_c, x, zi_c)
    tonic = _sosfilt(sos_t, clean, zi_t)
    phasic = _sosfilt(sos_p, clean - tf[_TF_OFFSET], zi_p)
    amp = np.empty(n)
    rise = np.empty(n)
    quality = np.empty(n)
    _scr_kernel(x, valid, phasic, fs, rel, min_amp, max_rise, flat_len, sf, si, blocks, block_len, amp, rise, quality)
    back = 0
    size = ring.shape[0]
    for j in range(n):
        t = ts[j]
        if j > 0:
            if not (t - ts[j - 1] > 0):
                back += 1
        elif ti[_TI_HAVE_TIME] == 1 and not (t - tf[_TF_TIME] > 0):
            back += 1
        if amp[j] > 0:
            ring[(ti[_TI_HEAD] + ti[_TI_COUNT]) % size] = t
            ti[_TI_COUNT] += 1
        while ti[_TI_COUNT] > 0 and ring[ti[_TI_HEAD]] <= t - 60.0:
            ti[_TI_HEAD] = (ti[_TI_HEAD] + 1) % size
            ti[_TI_COUNT] -= 1
        out[j, 0] = tonic[j]
        out[j, 1] = phasic[j]
        out[j, 2] = amp[j]
        out[j, 3] = quality[j]
        out[j, 4] = rise[j]
        out[j, 5] = ti[_TI_COUNT]
    if n > 0 and np.isfinite(ts[n - 1]):
        tf[_TF_TIME] = ts[n - 1]
        ti[_TI_HAVE_TIME] = 1
    return invalid, back


class _EdaState:
    def __init__(self, fs: float, x0: float, relative_window_s: float | None, info: StreamInfo) -> None:
        from scipy import signal  # heavy: imported by the first EDA stream, not at start-up

        self.fs = fs
        self.sos_clean = signal.butter(4, min(3.0, 0.4 * fs), fs=fs, output="sos")
        self.sos_tonic = signal.butter(2, 0.05, fs=fs, output="sos")
        self.sos_phasic = signal.butter(2, 0.05, btype="highpass", fs=fs, output="sos")
        self.zi_clean = signal.sosfilt_zi(self.sos_clean) * x0
        self.zi_tonic = signal.sosfilt_zi(self.sos_tonic) * x0
        self.zi_phasic = np.zeros((self.sos_phasic.shape[0], 2))  # the high-pass starts at rest on x0
        self.sf = np.array([0.0, 0.0, 0.0, 0.0, x0])
        self.si = np.array([0, 0, -1, 0, 0], dtype=np.int64)
        # the relative criterion's memory: the largest peak per 10 s block over relative_window_s
        self.block_len = 0 if relative_window_s is None else max(1, int(round(10.0 * fs)))
        self.blocks = np.zeros(1 if relative_window_s is None else max(1, int(np.ceil(relative_window_s / 10.0))))
        self.tf = np.array([x0, 0.0, x0])
        self.ti = np.zeros(3, dtype=np.int64)
        self.ring = np.zeros(64)  # times of the SCRs of the last minute (grows when needed)
        self.bad_start: float | None = None
        self.sqi = WindowQuality("EDA", fs)
        self.settle = 0  # samples still given quality 0 (the filters settling after a rate change)
        self.out_info = StreamInfo(f"{info.viewer}-eda-features", "EDAFeatures", EDA_CHANNELS, EDA_UNITS, fs,
                                   f"engage-{info.viewer}-eda-features", viewer=info.viewer)

    def room(self, n: int) -> None:
        """Make room in the SCR-time ring for ``n`` more (the oldest first, order kept)."""
        count, size = int(self.ti[_TI_COUNT]), self.ring.size
        if count + n <= size:
            return
        head = int(self.ti[_TI_HEAD])
        kept = self.ring[(head + np.arange(count)) % size]
        self.ring = np.zeros(2 * (count + n))
        self.ring[:count] = kept
        self.ti[_TI_HEAD] = 0


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
        raw = np.ascontiguousarray(chunk.data[:, col], dtype=np.float64)
        key = (info.viewer, info.source_id or info.name)
        prev_fs = self._rates.get(key)
        if prev_fs != fs:
            if prev_fs is not None:  # the device changed its rate: new filters, a gap, quality 0 meanwhile
                self.ctx.counters[f"{self.name}.rate_changes"] += 1
                self._gap(info, chunk.first_time, 0.0, f"sampling rate changed from {prev_fs:g} to {fs:g} Hz")
                self._state.pop(key, None)
            self._rates[key] = fs
        st = self._state.get(key)
        if st is None:
            lo, hi = self.valid_range
            valid = np.isfinite(raw) & (raw >= lo) & (raw <= hi)
            if not np.isfinite(fs) or fs <= 0 or not valid.any():
                self.ctx.counters[f"{self.name}.invalid_samples"] += len(raw)
                return []
            settle = 0 if key not in self._seen else int(round(2.0 * fs))
            st = self._state[key] = _EdaState(fs, float(raw[valid][0]), self.relative_window_s, info)
            st.settle = settle
            self._seen.add(key)
        n = len(raw)
        st.room(n)
        out = np.empty((n, len(EDA_CHANNELS)))
        n0 = int(st.si[0])
        ts = np.ascontiguousarray(chunk.timestamps, dtype=np.float64)
        lo, hi = self.valid_range
        invalid, back = _eda_kernel(raw, ts, float(lo), float(hi), fs, self.relative_min, self.min_amplitude,
                                    self.max_rise_s, int(10 * fs), st.sos_clean, st.zi_clean, st.sos_tonic,
                                    st.zi_tonic, st.sos_phasic, st.zi_phasic, st.sf, st.si, st.blocks, st.block_len,
                                    st.tf, st.ti, st.ring, out)
        if invalid:
            self.ctx.counters[f"{self.name}.invalid_samples"] += invalid
        quality = out[:, 3]
        st.sqi.update(raw)
        quality *= st.sqi.quality_before_samples(n0, n)  # the signal quality of the window before each sample
        if st.settle > 0:
            k = min(st.settle, n)
            quality[:k] = 0.0
            st.settle -= k
        if back:
            self.ctx.counters[f"{self.name}.timestamps_out_of_order"] += back
            self._gap(info, float(chunk.timestamps[0]), 0.0, f"{back} duplicate or out-of-order timestamps")
        self._bad_runs(info, st, quality, chunk.timestamps)
        return [Chunk(st.out_info, out, chunk.timestamps)]

    def _bad_runs(self, info: StreamInfo, st: _EdaState, quality: np.ndarray, ts: np.ndarray) -> None:
        bad = quality == 0
        if st.bad_start is None and not bad.any():
            return
        for k in np.flatnonzero(np.diff(np.concatenate([[st.bad_start is not None], bad]).astype(np.int8))):
            if bad[k]:
                st.bad_start = float(ts[k])
            elif st.bad_start is not None:
                duration = float(ts[k]) - st.bad_start
                if duration >= 1.0:
                    self._gap(info, st.bad_start, duration, "EDA invalid, out of range or flat")
                st.bad_start = None
