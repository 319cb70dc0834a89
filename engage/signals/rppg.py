"""Remote photoplethysmography: heart rate from the colour of the skin in video.

Input: an ``RGB`` stream (or the webcam's ``Face`` stream, which carries them), one row per
video frame, the mean red, green and blue of skin regions (channels ``r``, ``g``, ``b``; the
face pipeline averages the skin of the whole face, the ``--roi frame`` evaluation the whole
frame). The pulse is recovered with **POS** (Wang et al. 2017, "Algorithmic principles of remote
PPG") or **CHROM** (de Haan & Jeanne 2013), both computed causally over short overlapping
windows (1.6 s) and overlap-added, then detrended and band-passed to 0.7–3.5 Hz; the heart rate
is searched for in 0.7–3.0 Hz (42–180 bpm). Before that, frames whose brightness jumps away
from a 0.6 s running median by more than 3 robust standard deviations (exposure flashes,
flicker, momentary occlusion) are replaced by interpolation from their neighbours
(:func:`reject_spikes`). Heart rate comes from a sliding window (default 10 s, re-estimated
every second) as the peak of the spectrum; its quality is the SNR of de Haan & Jeanne (power
within ±0.1 Hz of the fundamental and the first harmonic against the rest of the band), mapped
to 0..1 against the SNR that noise alone reaches (:data:`SNR_FLOOR_DB`). When the SNR is high
enough, beat intervals are taken from the filtered pulse's peaks.

Output of the streaming :class:`RppgHeartRate`: the window estimates as an ``RPPG`` stream, the
beats on the cardiac ``HeartRate`` contract (source id ``engage-<viewer>-hr-rppg``), which
the session's feature windows use when no better beat source (ECG, PPG, strap) is live, and the
**pulse waveform** itself as a ``PulseWave`` stream, one row per frame (:class:`PulseWaveform`:
the skin's green, where haemoglobin absorbs most, as a relative change with blood volume
upwards, band-passed causally to 0.7–3.5 Hz; with its quality, the SNR quality of the last
window of that waveform).

>>> import numpy as np
>>> fs, t = 30.0, np.arange(0, 20, 1 / 30.0)
>>> pulse = 0.002 * np.sin(2 * np.pi * 1.2 * t)              # 72 bpm
>>> rgb = np.column_stack([0.6 + 0.3 * pulse, 0.4 + pulse, 0.3 + 0.4 * pulse]) * 200
>>> est = estimate_hr(rgb, fs)
>>> round(est.hr_bpm)
72
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import numpy as np

from engage.core import Chunk, Processor, StreamInfo

from .cardiac import heart_rate_info

log = logging.getLogger(__name__)

RGB_CHANNELS = ("r", "g", "b")
#: channels of the ``RPPG`` stream of window estimates (the beats go out on the cardiac ``HeartRate`` contract)
RPPG_CHANNELS = ("hr_bpm", "snr_db", "quality", "beats", "active")
RPPG_UNITS = ("bpm", "dB", "ratio", "count", "bool")
#: channels of the ``PulseWave`` stream: the pulse waveform (relative change of the skin's green, blood volume up)
#: and its quality (the SNR quality of the waveform's last window)
PULSE_CHANNELS, PULSE_UNITS = ("pulse", "quality"), ("ratio", "ratio")
#: the waveform's quality needs this much of it (then it uses the last ``window_s``)
PULSE_QUALITY_MIN_S = 2.0
LOW_HZ, HIGH_HZ = 0.7, 3.5
#: the heart rate is searched for in 0.7–3.0 Hz (42–180 bpm), a resting viewer's range.
HR_MAX_HZ = 3.0
#: a frame is a brightness spike when it is this many robust SDs from the 0.6 s running median.
SPIKE_K, SPIKE_MEDIAN_S = 3.0, 0.6
#: ... and its robust SD is taken as at least this fraction of the median brightness.
SPIKE_FLOOR = 0.01
#: SNR (dB) at which the quality is 0 and 1, and above which beat intervals are published.
#: Calibrated against noise, not against any clip: band-passed white noise with no pulse, in 8-10 s
#: windows at 15-30 fps, gets a median SNR of -4.5 dB and a 95th percentile of -1 dB from
#: :func:`spectrum_hr` (peak picking always finds *some* peak). So the quality is 0 at the level
#: of noise alone, 0.5 at the noise's 95th percentile (-1 dB: the first SNR that says "a pulse,
#: not noise" with 95 % confidence) and 1 where the pulse carries twice the power of everything
#: else in the band; beats only above 0 dB.
SNR_FLOOR_DB, SNR_GOOD_DB, SNR_BEATS_DB = -5.0, 3.0, 0.0
#: the streaming processor's first estimate needs this much video (then the window grows to ``window_s``)
MIN_WINDOW_S = 6.0


def pulse_signal(rgb: np.ndarray, fs: float, method: str = "pos", window_s: float = 1.6) -> np.ndarray:
    """The raw pulse of an (n, 3) RGB series by overlap-adding short POS/CHROM windows.

    Causal: the value at frame i only uses frames <= i. Windows with a NaN (no face) or a
    non-positive mean (a black frame) contribute nothing.
    """
    if method not in ("pos", "chrom"):
        raise ValueError(f"unknown rPPG method {method!r} (pos or chrom)")
    rgb = np.asarray(rgb, dtype=np.float64)
    n = len(rgb)
    w = max(int(round(window_s * fs)), 2)
    out = np.zeros(n)
    if n < w:
        return out
    win = np.lib.stride_tricks.sliding_window_view(rgb, w, axis=0).transpose(0, 2, 1)  # (n-w+1, w, 3)
    mean = win.mean(axis=1, keepdims=True)
    ok = np.all(np.isfinite(mean[:, 0]) & (mean[:, 0] > 0), axis=1) & np.all(np.isfinite(win), axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = win / mean
        if method == "pos":
            s1 = c[..., 1] - c[..., 2]
            s2 = -2.0 * c[..., 0] + c[..., 1] + c[..., 2]
        else:
            s1 = 3.0 * c[..., 0] - 2.0 * c[..., 1]
            s2 = 1.5 * c[..., 0] + c[..., 1] - 1.5 * c[..., 2]
        sd1, sd2 = s1.std(axis=1), s2.std(axis=1)
        alpha = np.where(sd2 > 1e-12, sd1 / np.where(sd2 > 1e-12, sd2, 1.0), 0.0)[:, None]
        h = s1 + alpha * s2 if method == "pos" else s1 - alpha * s2
        h = h - h.mean(axis=1, keepdims=True)
        sd = h.std(axis=1)
    good = ok & np.isfinite(sd) & (sd > 0)
    h = np.where(good[:, None], h / np.where(good, sd, 1.0)[:, None], 0.0)
    # overlap-add: window k covers frames k .. k+w-1
    for j in range(w):
        out[j:j + len(h)] += h[:, j]
    return out


class PulseWaveform:
    """The pulse waveform of a stream of skin colours, causally, one value per frame.

    The green channel carries the pulse best (haemoglobin absorbs green light most): each frame's
    green relative to its running mean (an exponential average over ``mean_s``), negated so that
    the waveform rises with blood volume as an oximeter's PPG does, band-passed to 0.7–3.5 Hz by
    a second-order Butterworth filter whose state is carried across calls (the output is the same
    whatever the chunking; its phase moves a pulse at 60-180 bpm by -0.13 to +0.06 s).
    Frames without a colour (no face) are held at the last one and give NaN. POS and CHROM, which
    cancel motion and light over windows, are what the heart rate uses; on a frame-by-frame
    waveform their per-window normalisation makes steps at every window edge.

    >>> fs = 30.0; t = np.arange(0, 10, 1 / fs)
    >>> g = 100 * (1 - 0.002 * np.sin(2 * np.pi * 1.2 * t))          # green dips as blood arrives
    >>> wave = PulseWaveform(fs).process(np.column_stack([g, g, g]))
    >>> pulse = np.sin(2 * np.pi * 1.2 * t)                          # blood volume
    >>> bool(max(np.corrcoef(wave[150:-5], pulse[150 + k:len(t) + k - 5])[0, 1] for k in range(5)) > 0.95)
    True
    """

    def __init__(self, fs: float, mean_s: float = 1.6) -> None:
        from scipy import signal  # heavy: imported by the first use, not at start-up

        if not np.isfinite(fs) or fs < 2 * LOW_HZ:
            raise ValueError(f"pulse waveform needs a frame rate of at least {2 * LOW_HZ} fps, got {fs}")
        self.fs = float(fs)
        self.sos = signal.butter(2, [LOW_HZ, min(HIGH_HZ, 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
        self._zi = np.zeros((self.sos.shape[0], 2))
        self._alpha = 1.0 - np.exp(-1.0 / (mean_s * fs))
        self._mean: float | None = None
        self._last = 0.0

    def process(self, rgb: np.ndarray) -> np.ndarray:
        """The waveform at each of the next frames' (n, 3) colours (NaN where a frame has none)."""
        from .beats import sosfilt_stateful

        rgb = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
        g = rgb[:, 1]
        ok = np.isfinite(rgb).all(axis=1) & (g > 0)
        rel = np.empty(len(g))
        for i in range(len(g)):  # a running mean per frame: a few operations, and the exact same for any chunking
            if ok[i]:
                self._mean = g[i] if self._mean is None else self._mean + self._alpha * (g[i] - self._mean)
                self._last = 1.0 - g[i] / self._mean
            rel[i] = self._last
        out = sosfilt_stateful(self.sos, rel, self._zi)
        out[~ok] = np.nan
        return out


def reject_spikes(rgb: np.ndarray, fs: float, k: float = SPIKE_K,
                  median_s: float = SPIKE_MEDIAN_S) -> tuple[np.ndarray, np.ndarray]:
    """(RGB with brightness-spike frames interpolated over, boolean mask of those frames).

    A frame is a spike when its mean brightness differs from the running median over
    ``median_s`` seconds by more than ``k`` robust standard deviations (1.4826 x the median
    absolute deviation of those differences, at least ``SPIKE_FLOOR`` of the median brightness).
    The pulse changes brightness by well under a percent and never trips this; exposure flashes and flicker do. Non-finite frames are left
    alone (the callers treat them as missing). If half the frames or more would be flagged, the
    series is returned unchanged: then there is no stable baseline to call anything a spike.

    >>> rgb = np.full((40, 3), 100.0); rgb[20] = 250.0
    >>> fixed, bad = reject_spikes(rgb, 15.0)
    >>> bool(bad[20]), float(fixed[20, 0])
    (True, 100.0)
    """
    from scipy import signal  # heavy: imported by the first use, not at start-up

    rgb = np.asarray(rgb, dtype=np.float64)
    bad = np.zeros(len(rgb), dtype=bool)
    finite = np.isfinite(rgb).all(axis=1)
    idx = np.flatnonzero(finite)
    kernel = max(3, int(round(median_s * fs)) | 1)
    if len(idx) < kernel:
        return rgb, bad
    lum = rgb[idx].mean(axis=1)
    dev = lum - signal.medfilt(lum, kernel)
    # a robust SD, but never below 1 % of the brightness: the pulse (well under 1 %) and slow
    # motion must never count as spikes, even in a clean, noise-free series
    scale = max(1.4826 * np.median(np.abs(dev)), SPIKE_FLOOR * float(np.median(np.abs(lum))))
    if not np.isfinite(scale) or scale <= 0:
        return rgb, bad
    spike = np.abs(dev) > k * scale
    if spike.mean() >= 0.5 or not spike.any():
        return rgb, bad
    out = rgb.copy()
    keep, drop = idx[~spike], idx[spike]
    for c in range(3):
        out[drop, c] = np.interp(drop, keep, rgb[keep, c])
    bad[drop] = True
    return out, bad


def bandpass(x: np.ndarray, fs: float, low: float = LOW_HZ, high: float = HIGH_HZ) -> np.ndarray:
    """Detrend and band-pass a pulse (zero-phase; for a whole window, not the live edge)."""
    from scipy import signal  # heavy: imported by the first use, not at start-up

    x = signal.detrend(np.asarray(x, dtype=np.float64))
    high = min(high, 0.45 * fs)
    sos = signal.butter(3, [low, high], btype="bandpass", fs=fs, output="sos")
    pad = min(len(x) - 1, 3 * int(fs))
    return signal.sosfiltfilt(sos, x, padlen=max(pad, 0))


@dataclass(frozen=True)
class HrEstimate:
    """Heart rate of one window: bpm, its SNR (dB), quality 0..1 and the beat intervals (s)."""

    hr_bpm: float
    snr_db: float
    quality: float
    rr_s: np.ndarray
    beat_times: np.ndarray


def snr_quality(snr_db: float) -> float:
    """Map an SNR (dB) to a 0..1 quality."""
    if not np.isfinite(snr_db):
        return 0.0
    return float(np.clip((snr_db - SNR_FLOOR_DB) / (SNR_GOOD_DB - SNR_FLOOR_DB), 0.0, 1.0))


def spectrum_hr(pulse: np.ndarray, fs: float) -> tuple[float, float]:
    """(heart rate in bpm, SNR in dB) of a band-passed pulse window from its periodogram."""
    from scipy import signal  # heavy: imported by the first use, not at start-up

    n = len(pulse)
    nfft = max(4096, 1 << int(np.ceil(np.log2(max(n, 2)))))
    freqs, power = signal.periodogram(pulse * np.hanning(n), fs=fs, nfft=nfft)
    band = (freqs >= LOW_HZ) & (freqs <= min(HIGH_HZ, 0.45 * fs))
    if not band.any() or power[band].sum() <= 0:
        return float("nan"), float("-inf")
    search = band & (freqs <= HR_MAX_HZ)
    f0 = float(freqs[search][np.argmax(power[search])])
    signal_mask = (np.abs(freqs - f0) <= 0.1) | (np.abs(freqs - 2 * f0) <= 0.2)
    sig = power[band & signal_mask].sum()
    noise = power[band & ~signal_mask].sum()
    snr = 10 * np.log10(sig / noise) if noise > 0 else float("inf")
    return 60.0 * f0, float(snr)


def estimate_hr(rgb: np.ndarray, fs: float, method: str = "pos") -> HrEstimate:
    """Heart rate of one window of RGB means (n, 3) sampled at ``fs`` frames per second."""
    from scipy import signal  # heavy: imported by the first use, not at start-up

    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim != 2 or rgb.shape[1] != 3:
        raise ValueError(f"rPPG needs an (n, 3) RGB array, got shape {rgb.shape}")
    if len(rgb) < max(8, int(2 * fs)):
        raise ValueError(f"rPPG needs at least 2 s of frames, got {len(rgb)} at {fs} fps")
    rgb, _ = reject_spikes(rgb, fs)
    pulse = bandpass(pulse_signal(rgb, fs, method), fs)
    hr, snr = spectrum_hr(pulse, fs)
    rr = np.empty(0)
    beats = np.empty(0)
    if np.isfinite(hr) and snr >= SNR_BEATS_DB:
        # beats: peaks at least 60 % of the dominant period apart
        peaks, _ = signal.find_peaks(pulse, distance=max(1, int(0.6 * fs * 60.0 / hr)))
        beats = peaks / fs
        rr = np.diff(beats)
        period = 60.0 / hr
        rr = rr[(rr > 0.6 * period) & (rr < 1.5 * period)]
    return HrEstimate(hr, snr, snr_quality(snr), rr, beats)


def combine_estimates(estimates: list[HrEstimate]) -> float:
    """One heart rate from several windows' estimates: their median weighted by SNR.

    Each window counts in proportion to its SNR as a power ratio (10^(dB/10)), so the windows
    where the pulse stands out decide, and noisy windows whose spectral peak is wherever the
    noise put it count little. Falls back to the plain median if no window has a finite SNR.

    >>> e = [HrEstimate(h, s, 0.0, np.empty(0), np.empty(0)) for h, s in [(70, 3), (72, 2), (140, -8), (150, -9)]]
    >>> combine_estimates(e)
    70.0
    """
    hr = np.array([e.hr_bpm for e in estimates], dtype=np.float64)
    snr = np.array([e.snr_db for e in estimates], dtype=np.float64)
    ok = np.isfinite(hr)
    if not ok.any():
        return float("nan")
    hr, snr = hr[ok], snr[ok]
    w = np.where(np.isnan(snr), 0.0, 10.0 ** (np.clip(snr, -60.0, 60.0) / 10.0))
    if w.sum() <= 0:
        return float(np.median(hr))
    order = np.argsort(hr, kind="stable")
    hr, cw = hr[order], np.cumsum(w[order])
    return float(hr[np.searchsorted(cw, 0.5 * cw[-1])])


class RppgHeartRate(Processor):
    """Streaming rPPG: ``RGB`` frames (or the webcam's ``Face`` stream) in, three streams out.

    - ``RPPG`` (source id ``engage-<viewer>-rppg``): one row per estimate, every ``step_s``
      seconds over the last ``window_s`` seconds (the first once ``min_window_s`` of frames
      exist): ``hr_bpm``, ``snr_db``, ``quality``, ``beats`` (how many beats it published) and
      ``active`` (1 when it fed the cardiac path, 0 when a better beat source did).
    - ``PulseWave`` (source id ``engage-<viewer>-pulse-rppg``, the input's frame rate): one row per frame,
      ``pulse`` (:class:`PulseWaveform`) and ``quality`` (the SNR quality of the waveform's last
      ``window_s``, refreshed every ``step_s`` once 2 s exist; 0 before, and on frames without a face).
    - ``HeartRate`` on the cardiac contract (:func:`engage.signals.cardiac.heart_rate_info`,
      source id ``engage-<viewer>-hr-rppg``): one row per beat, stamped at the beat, only when
      the window's SNR allows beats; ``hr_smooth_bpm`` is the window's spectral heart rate,
      ``quality`` its SNR quality. So feature windows, baselines and models get heart rate from
      the face exactly as from a strap, gated on the same quality.

    **A better beat source wins.** The processor also listens to the other ``HeartRate``
    streams of the viewer (ECG, PPG, a strap's RR): while one of them delivered a beat of
    quality >= 0.5 in the last ``defer_s`` seconds, rPPG beats are not published (counted as
    ``rppg.deferred_beats``) and the ``RPPG`` estimates say ``active = 0``. Each beat is
    published once, at least 1 s after it happened (the filter's edge is unreliable).

    >>> p = RppgHeartRate()
    >>> p.accepts(StreamInfo("w", "RGB", ("r", "g", "b"), ("a.u.",) * 3, 30.0, "x"))
    True
    """

    name = "rppg"

    def __init__(self, method: str = "pos", window_s: float = 10.0, step_s: float = 1.0,
                 min_window_s: float | None = None, defer_s: float = 5.0) -> None:
        if min_window_s is None:
            min_window_s = min(MIN_WINDOW_S, window_s)
        if method not in ("pos", "chrom"):
            raise ValueError(f"unknown rPPG method {method!r} (pos or chrom)")
        if not 2.0 <= min_window_s <= window_s:
            raise ValueError(f"rPPG needs 2 s <= min_window_s ({min_window_s}) <= window_s ({window_s})")
        self.method, self.window_s, self.step_s = method, window_s, step_s
        self.min_window_s, self.defer_s = min_window_s, defer_s
        self._buf: dict[StreamInfo, tuple[deque, deque]] = {}
        self._next: dict[StreamInfo, float] = {}
        self._last_beat: dict[StreamInfo, float] = {}
        self._better: dict[str, float] = {}  # viewer -> time of the last good beat of another source
        self._wave: dict[StreamInfo, _WaveState] = {}
        self.deferred_beats = 0

    def accepts(self, info: StreamInfo) -> bool:
        # an RGB stream, or the webcam's Face stream, which carries the skin regions' r, g, b;
        # and every other beat source's HeartRate, to step aside while a better one is live
        if info.type == "HeartRate":
            return not info.source_id.endswith("-hr-rppg") and all(c in info.channels for c in ("hr_bpm", "quality"))
        return info.type in ("RGB", "Face") and all(c in info.channels for c in RGB_CHANNELS)

    def start(self, ctx) -> None:
        # one rPPG per pipeline: the session's standard steps include one, so a second instance
        # (e.g. added again as an extra processor) stands aside instead of publishing every beat twice
        super().start(ctx)
        owner = getattr(ctx, "_rppg_owner", None)
        if owner is None:
            ctx._rppg_owner = owner = self
        self._inert = owner is not self
        if self._inert:
            log.warning("a second rPPG processor in one pipeline does nothing (the session already runs one)")

    def _note_other_beats(self, chunk: Chunk) -> None:
        q, hr = chunk.channel("quality"), chunk.channel("hr_bpm")
        good = np.flatnonzero((q >= 0.5) & np.isfinite(hr))
        if good.size:
            viewer = chunk.info.viewer
            self._better[viewer] = max(self._better.get(viewer, -np.inf), float(np.max(chunk.timestamps[good])))

    def process(self, chunk: Chunk) -> list[Chunk]:
        info = chunk.info
        if getattr(self, "_inert", False):
            return []
        if info.type == "HeartRate":
            self._note_other_beats(chunk)
            return []
        rows, times = self._buf.setdefault(info, (deque(), deque()))
        rgb = np.column_stack([chunk.channel(c) for c in RGB_CHANNELS])
        out = self._pulse_wave(info, chunk, rgb)
        est_rows, est_ts, hr_rows, hr_ts = [], [], [], []
        for i in range(len(chunk)):
            t = float(chunk.timestamps[i])
            rows.append(rgb[i])
            times.append(t)
            while times and times[0] < t - self.window_s:
                times.popleft()
                rows.popleft()
            nxt = self._next.setdefault(info, times[0] + self.min_window_s)
            if t < nxt:
                continue
            self._next[info] = t + self.step_s
            est, beats = self._estimate(info, np.asarray(rows), np.asarray(times), t)
            active = self._better.get(info.viewer, -np.inf) < t - self.defer_s
            if beats and active:
                for bt, rr in beats:
                    beat = {"hr_bpm": 60.0 / rr, "rr_s": rr, "quality": est.quality, "hr_smooth_bpm": est.hr_bpm,
                            "ectopic": 0.0}
                    hr_rows.append([beat.get(c, np.nan) for c in self._hr_info(info.viewer).channels])
                    hr_ts.append(bt)
            elif beats:
                self.deferred_beats += len(beats)
                if hasattr(self, "ctx"):
                    self.ctx.counters["rppg.deferred_beats"] += len(beats)
            est_rows.append([est.hr_bpm, est.snr_db, est.quality, float(len(beats) if active else 0), float(active)])
            est_ts.append(t)
        if est_rows:
            out.append(Chunk(rppg_info(info.viewer), np.asarray(est_rows, dtype=np.float64), np.asarray(est_ts)))
        if hr_rows:
            out.append(Chunk(self._hr_info(info.viewer), np.asarray(hr_rows, dtype=np.float64), np.asarray(hr_ts)))
        return out

    def _pulse_wave(self, info: StreamInfo, chunk: Chunk, rgb: np.ndarray) -> list[Chunk]:
        """The ``PulseWave`` rows of this chunk: the waveform of each frame and the quality of its last window."""
        st = self._wave.get(info)
        if st is None:
            fs = float(info.nominal_rate)
            if not fs > 0 and len(chunk) > 1:
                dt = np.diff(chunk.timestamps)
                fs = 1.0 / float(np.median(dt)) if np.median(dt) > 0 else 0.0
            if not fs >= 2 * LOW_HZ:
                return []
            st = self._wave[info] = _WaveState(PulseWaveform(fs), pulse_info(info.viewer, fs))
        wave = st.wave.process(rgb)
        quality = np.empty(len(wave))
        for i, (t, v) in enumerate(zip(chunk.timestamps.tolist(), wave.tolist())):
            st.times.append(t)
            st.values.append(v)
            while st.times[0] < t - self.window_s:
                st.times.popleft()
                st.values.popleft()
            if t >= st.next and t - st.times[0] >= PULSE_QUALITY_MIN_S:
                st.next = t + self.step_s
                values = np.asarray(st.values)
                values = values[np.isfinite(values)]
                st.quality = snr_quality(spectrum_hr(values, st.wave.fs)[1]) if len(values) >= 8 else 0.0
            quality[i] = st.quality if np.isfinite(v) else 0.0
        return [Chunk(st.info, np.column_stack([wave, quality]), chunk.timestamps.astype(np.float64))]

    @staticmethod
    def _hr_info(viewer: str) -> StreamInfo:
        # the cardiac contract; its channels are filled by name (any the rPPG cannot know are NaN)
        return heart_rate_info(viewer, "rppg")

    def _estimate(self, info: StreamInfo, arr: np.ndarray, ts: np.ndarray,
                  t: float) -> tuple[HrEstimate, list[tuple[float, float]]]:
        """The window's estimate and its new beats (time, interval) not published before."""
        fs = (len(ts) - 1) / (ts[-1] - ts[0]) if ts[-1] > ts[0] else 0.0
        valid = np.isfinite(arr).all(axis=1)
        if fs <= 0 or valid.mean() < 0.8:
            return HrEstimate(float("nan"), float("nan"), 0.0, np.empty(0), np.empty(0)), []
        if not valid.all():  # short face dropouts: hold the last value
            arr = arr.copy()
            for k in np.flatnonzero(~valid):
                arr[k] = arr[k - 1] if k > 0 else arr[np.flatnonzero(valid)[0]]
        est = estimate_hr(arr, fs, self.method)
        if not est.rr_s.size:
            return est, []
        last = self._last_beat.get(info, -np.inf)
        period = 60.0 / est.hr_bpm
        beat_ts = ts[0] + est.beat_times
        # beats from the filter's edge are unreliable: keep those at least 1 s before the end
        new = [(float(bt), float(rr)) for bt, rr in zip(beat_ts[1:], np.diff(beat_ts))
               if last < bt <= t - 1.0 and 0.6 * period < rr < 1.5 * period]
        if new:
            self._last_beat[info] = new[-1][0]
        return est, new


class _WaveState:
    """One input stream's pulse waveform: the filter, the recent waveform (for its quality), the output info."""

    def __init__(self, wave: PulseWaveform, info: StreamInfo) -> None:
        self.wave, self.info = wave, info
        self.times: deque[float] = deque()
        self.values: deque[float] = deque()
        self.next = -np.inf
        self.quality = 0.0


def pulse_info(viewer: str, fs: float) -> StreamInfo:
    """The ``PulseWave`` stream: the face's pulse waveform, one row per frame (see :class:`PulseWaveform`)."""
    return StreamInfo(f"{viewer}-pulse", "PulseWave", PULSE_CHANNELS, PULSE_UNITS, float(fs),
                      f"engage-{viewer}-pulse-rppg", viewer=viewer)


def rppg_info(viewer: str) -> StreamInfo:
    """The ``RPPG`` stream of window estimates (see :class:`RppgHeartRate`)."""
    return StreamInfo(f"{viewer}-rppg", "RPPG", RPPG_CHANNELS, RPPG_UNITS, 0.0, f"engage-{viewer}-rppg",
                      viewer=viewer)
