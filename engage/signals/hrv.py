"""Beats → heart rate and heart-rate variability, streaming, with artifact and ectopic-beat handling.

:class:`BeatTracker` turns beat times (from ECG, PPG or a strap's RR intervals) into one
``HeartRate`` row per beat and, once enough clean beats exist, one ``HRV`` row per beat:

- an interval outside 0.25–2.5 s is an artifact (missed or extra beats, a lost contact): quality 0;
- an interval more than 20 % away from the median of the last 9 accepted intervals is ectopic
  (Malik's rule: a premature beat, a pause or a detection error), and so is the interval after a
  premature one (it starts at the ectopic beat: the compensatory pause): quality 0.3,
  ``ectopic`` = 1, left out of HRV - HRV is defined on normal-to-normal (NN) intervals only;
- ``hr_smooth_bpm`` is an exponential mean of the clean beats (5 s time constant);
- HRV over the trailing ``window_s`` (30–120 s, default 60): mean RR, SDNN, RMSSD and pNN50 from
  clean successive intervals only; LF/HF (Welch on the 4 Hz-resampled tachogram of up to the last
  5 min, refreshed every 30 s) once at least ``lf_hf_min_s`` (2 min) of clean beats exist, NaN before.

``quality`` of an HRV row is the clean fraction of the window times how much of the window
the beats cover.

>>> tr = BeatTracker(window_s=30)
>>> rows = [tr.update(0.8 * k) for k in range(60)]
>>> hr, hrv = rows[-1]
>>> round(hr["hr_bpm"]), round(hrv["rmssd"], 6), hrv["quality"] > 0.9
(75, 0.0, True)
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
from numba import njit

HRV_CHANNELS = ("mean_rr", "sdnn", "rmssd", "pnn50", "lf_hf", "quality")
HRV_UNITS = ("s", "s", "s", "ratio", "ratio", "ratio")

RR_MIN_S = 0.25
RR_MAX_S = 2.5
#: an interval further than this fraction from the median of the last 9 accepted ones is ectopic (Malik's 20 %)
ECTOPIC_FRACTION = 0.20


def hrv_time(rr_s: np.ndarray) -> dict[str, float]:
    """Time-domain HRV of consecutive RR intervals (seconds): mean RR, SDNN, RMSSD, pNN50.

    >>> round(hrv_time(np.array([0.8, 0.82, 0.78, 0.8]))["rmssd"], 4)
    0.0283
    """
    rr = np.asarray(rr_s, dtype=np.float64)
    if rr.size < 2:
        return {"mean_rr": float(rr.mean()) if rr.size else np.nan, "sdnn": np.nan, "rmssd": np.nan, "pnn50": np.nan}
    d = np.diff(rr)
    return {"mean_rr": float(rr.mean()), "sdnn": float(rr.std(ddof=1)), "rmssd": float(np.sqrt(np.mean(d * d))),
            "pnn50": float(np.mean(np.abs(d) > 0.05))}


def hrv_nn(beat_times_s: np.ndarray) -> dict[str, float]:
    """Time-domain HRV of a whole beat series over normal-to-normal intervals only: the intervals that
    :class:`BeatTracker` keeps as clean (plausible, not ectopic), successive differences only between adjacent
    clean intervals - what the streaming ``HRV`` rows are computed from, for any beat series (ours, a
    reference's). ``n_nn`` is the number of clean intervals.

    >>> t = np.cumsum([0.8, 0.82, 0.78, 0.8] * 5 + [0.3, 1.3] + [0.8, 0.82, 0.78, 0.8] * 5)
    >>> r = hrv_nn(t); round(r["rmssd"], 4), r["n_nn"]
    (0.0253, 39)
    """
    tracker = BeatTracker(window_s=120.0)
    rr, diffs = [], []
    for t in np.asarray(beat_times_s, dtype=np.float64).tolist():
        if tracker.update(t) is None:
            continue
        beats, last = tracker.beats, tracker.beats.n - 1
        if beats.clean[last]:
            if beats.after_clean[last]:
                diffs.append(float(beats.rr[last]) - rr[-1])
            rr.append(float(beats.rr[last]))
    r, d = np.array(rr), np.array(diffs)
    return {"mean_rr": float(r.mean()) if r.size else np.nan, "sdnn": float(r.std(ddof=1)) if r.size > 1 else np.nan,
            "rmssd": float(np.sqrt(np.mean(d * d))) if d.size else np.nan,
            "pnn50": float(np.mean(np.abs(d) > 0.05)) if d.size else np.nan, "n_nn": int(r.size)}


def lf_hf_ratio(beat_times: np.ndarray, rr_s: np.ndarray, fs_resample: float = 4.0) -> float:
    """LF (0.04–0.15 Hz) over HF (0.15–0.4 Hz) power of the RR tachogram (linear resampling + Welch)."""
    from scipy import signal  # heavy: imported when the first LF/HF is due, not at start-up
    from scipy.integrate import trapezoid

    t = np.asarray(beat_times, dtype=np.float64)
    rr = np.asarray(rr_s, dtype=np.float64)
    if t.size < 10 or t[-1] - t[0] < 60:
        return np.nan
    grid = np.arange(t[0], t[-1], 1.0 / fs_resample)
    y = np.interp(grid, t, rr)
    y = y - y.mean()
    f, p = signal.welch(y, fs=fs_resample, nperseg=min(len(y), int(120 * fs_resample)), detrend="linear")
    lf = trapezoid(p[(f >= 0.04) & (f < 0.15)], f[(f >= 0.04) & (f < 0.15)])
    hf = trapezoid(p[(f >= 0.15) & (f < 0.4)], f[(f >= 0.15) & (f < 0.4)])
    return float(lf / hf) if hf > 0 else np.nan


@njit(cache=True, nogil=True)
def _block_sum(a, lo, n):  # pragma: no cover - compiled
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - n % 8:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True, nogil=True)
def _sum(a, lo, n):  # pragma: no cover - compiled
    """``np.sum(a[lo:lo + n])`` to the last bit: NumPy's pairwise summation (8 accumulators in blocks of up to
    128, halves above), its recursion unrolled on a stack (numba's cache mishandles recursive functions)."""
    if n <= 128:
        return 0.0 + _block_sum(a, lo, n)
    los, ns, stage = np.empty(130, np.int64), np.empty(130, np.int64), np.zeros(130, np.int64)
    vals = np.empty(130)
    top, nv = 0, 0
    los[0], ns[0] = lo, n
    while top >= 0:
        m = ns[top]
        if m <= 128:
            vals[nv] = _block_sum(a, los[top], m)
            nv += 1
            top -= 1
            continue
        half = m // 2
        half -= half % 8
        if stage[top] < 2:  # push the left half, then the right one
            right = stage[top] == 1
            stage[top] += 1
            top += 1
            los[top], ns[top], stage[top] = los[top - 1] + (half if right else 0), m - half if right else half, 0
        else:  # both halves summed
            vals[nv - 2] = vals[nv - 2] + vals[nv - 1]
            nv -= 1
            top -= 1
    return 0.0 + vals[0]


@njit(cache=True, nogil=True)
def _window_stats(rr, clean, after_clean, out):  # pragma: no cover - compiled
    """The HRV row of a window of intervals, as NumPy computes it (mean, ``std(ddof=1)``, RMS of successive
    differences, pNN50): fills ``out`` with [mean_rr, sdnn, rmssd, pnn50, sum of all intervals] and returns the
    number of clean intervals."""
    n = rr.shape[0]
    nn = np.empty(n)
    d2 = np.empty(n)
    k = 0
    m = 0
    big = 0
    for i in range(n):
        if clean[i]:
            nn[k] = rr[i]
            k += 1
        if i > 0 and after_clean[i]:
            d = rr[i] - rr[i - 1]
            d2[m] = d * d
            if abs(d) > 0.05:
                big += 1
            m += 1
    out[4] = _sum(rr, 0, n)
    if k < 5:
        return k
    mean = _sum(nn, 0, k) / k
    for i in range(k):
        x = nn[i] - mean
        nn[i] = x * x
    out[0] = mean
    out[1] = np.sqrt(_sum(nn, 0, k) / (k - 1))
    out[2] = np.sqrt(_sum(d2, 0, m) / m) if m else np.nan
    out[3] = big / m if m else np.nan
    return k


class _Beats:
    """The beats of the last 5 min in arrays, oldest first (appended in place, compacted when full): ``long`` is
    ``[lo, n)``, the HRV window its suffix ``[win, n)`` (both trimmed from the front, as two queues would be)."""

    def __init__(self, size: int = 256) -> None:
        self.time, self.rr = np.empty(size), np.empty(size)
        self.clean, self.after_clean = np.zeros(size, dtype=bool), np.zeros(size, dtype=bool)
        self.lo = self.win = self.n = 0

    def append(self, time: float, rr: float, clean: bool, after_clean: bool) -> None:
        if self.n == self.time.size:
            keep = slice(self.lo, self.n)
            size = max(256, 2 * (self.n - self.lo))
            for name in ("time", "rr", "clean", "after_clean"):
                old = getattr(self, name)
                new = np.zeros(size, dtype=old.dtype)
                new[:self.n - self.lo] = old[keep]
                setattr(self, name, new)
            self.win, self.n, self.lo = self.win - self.lo, self.n - self.lo, 0
        i = self.n
        self.time[i], self.rr[i], self.clean[i], self.after_clean[i] = time, rr, clean, after_clean
        self.n += 1

    def trim(self, time: float, window_s: float, long_s: float) -> None:
        while self.win < self.n and self.time[self.win] < time - window_s:
            self.win += 1
        while self.lo < self.n and self.time[self.lo] < time - long_s:
            self.lo += 1


class BeatTracker:
    """Streaming beats → HeartRate and HRV rows (see the module docstring)."""

    def __init__(self, window_s: float = 60.0, lf_hf_min_s: float = 120.0, smooth_tau_s: float = 5.0) -> None:
        if not 30.0 <= window_s <= 120.0:
            raise ValueError(f"HRV window must be 30-120 s, got {window_s}")
        self.window_s = window_s
        self.lf_hf_min_s = lf_hf_min_s
        self.smooth_tau_s = smooth_tau_s
        self.last_time: float | None = None
        self.accepted: deque[float] = deque(maxlen=9)
        self.beats = _Beats()  # the HRV window and up to 5 min for LF/HF
        self.smooth: float | None = None
        self.prev_clean = False
        self.prev_premature = False
        self.rejected = 0
        self._lf_hf = (-np.inf, np.nan)  # (time computed, value): refreshed every 30 s

    def reset(self) -> None:
        """Forget the previous beat (after a gap, a clock jump, a lost contact): the next beat starts anew."""
        self.last_time = None
        self.prev_clean = False
        self.prev_premature = False

    def update(self, time: float, bad: float = 0.0, rr: float | None = None,
               contact: float = 1.0) -> tuple[dict, dict | None] | None:
        """Add one beat at ``time`` (``rr`` given by a strap, else the time since the last beat).

        ``bad`` is the fraction of flagged samples before the beat, ``contact`` the strap's
        skin-contact flag. Returns ``(heart_rate_row, hrv_row or None)``, or ``None`` when
        there is no interval yet (first beat, or a non-increasing time that restarted the chain).
        """
        last = self.last_time
        if rr is None:
            if last is None or not math.isfinite(time) or time <= last:
                if last is not None:
                    self.rejected += 1
                self.last_time = time if math.isfinite(time) else last
                self.prev_clean = False
                return None
            rr = time - last
        self.last_time = time
        plausible = RR_MIN_S <= rr <= RR_MAX_S
        ectopic = premature = False
        if plausible and len(self.accepted) >= 3:
            ordered = sorted(self.accepted)
            mid = len(ordered) // 2
            med = ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])
            ectopic = abs(rr - med) > ECTOPIC_FRACTION * med
            premature = ectopic and rr < med
        if plausible and self.prev_premature:
            ectopic = True  # it starts at a premature (ectopic) beat: the compensatory pause, not normal-to-normal
        self.prev_premature = plausible and premature
        quality = float(min(max(1.0 - bad, 0.0), 1.0)) * (1.0 if contact > 0 else 0.0)  # np.clip's value, NaN kept
        if not plausible:
            quality = 0.0
        elif ectopic:
            quality *= 0.3
        if plausible and quality > 0:
            self.accepted.append(rr)
        clean = plausible and not ectopic and quality >= 0.8
        if clean:
            a = 1.0 - np.exp(-rr / self.smooth_tau_s)
            self.smooth = 60.0 / rr if self.smooth is None else (1 - a) * self.smooth + a * 60.0 / rr
        hr = 60.0 / max(rr, 0.06)  # an implausible interval (quality 0) still gives a finite rate
        hr_row = {"hr_bpm": hr, "rr_s": rr, "quality": quality,
                  "hr_smooth_bpm": self.smooth if self.smooth is not None else hr,
                  "ectopic": float(ectopic)}
        self.beats.append(time, rr, clean, self.prev_clean and clean)
        self.prev_clean = clean
        self.beats.trim(time, self.window_s, 300.0)
        return hr_row, self._hrv(time)

    def _hrv(self, now: float) -> dict | None:
        b = self.beats
        stats = np.empty(5)
        n_clean = _window_stats(b.rr[b.win:b.n], b.clean[b.win:b.n], b.after_clean[b.win:b.n], stats)
        if n_clean < 5:
            return None
        covered = min(1.0, float(stats[4]) / self.window_s)
        quality = covered * n_clean / (b.n - b.win)
        if now - self._lf_hf[0] >= 30.0:
            long_clean = b.clean[b.lo:b.n]
            long_rr = b.rr[b.lo:b.n][long_clean]
            lf_hf = np.nan
            if sum(long_rr.tolist()) >= self.lf_hf_min_s:
                lf_hf = lf_hf_ratio(b.time[b.lo:b.n][long_clean], long_rr)
            self._lf_hf = (now, lf_hf)
        return {"mean_rr": float(stats[0]), "sdnn": float(stats[1]), "rmssd": float(stats[2]), "pnn50": float(stats[3]),
                "lf_hf": self._lf_hf[1], "quality": float(quality)}
