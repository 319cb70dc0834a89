"""Wrist features (BVP/heart rate, EDA, ACC, skin temperature) in windows, on the live path.

:class:`WristFeatureWindow` is a streaming processor: every ``hop_s`` it summarises the last
``window_s`` seconds of its inputs into one ``WristFeatures`` row, each modality with a quality
(coverage of the window; 0 and NaN features when the modality is missing):

=============== ============================================ ===================================
input type      features                                     from
=============== ============================================ ===================================
``HeartRate``   ``hr_mean``, ``hr_std``, ``hrv_rmssd``,      engage's beat detectors (PPG pulses)
                ``hr_slope``
``HRV``         ``hrv_sdnn``, ``hrv_lf_hf``                    the same detectors' HRV rows
``DeviceHR``    same, in windows without clean beats          a watch's own 1 Hz HR (E4 HR.csv)
``IBI``         ``hrv_rmssd`` in windows without clean beats   a watch's own beats (E4 IBI.csv)
``EDAFeatures`` ``eda_tonic``, ``eda_phasic_sd``, ``scr_rate``, :class:`engage.signals.eda.EdaFeatures`
                ``eda_slope``, ``scr_amp`` (mean SCR amplitude),
                ``eda_range`` (max − min of tonic + phasic)
``ACC``         ``acc_sd`` (magnitude), ``acc_energy``         raw accelerometer (g)
``TEMP``        ``temp_mean``, ``temp_slope``                  skin temperature (°C)
``PPG``         ``bvp_amp``, ``bvp_amp_sd`` (log pulse amplitude)  the raw pulse wave (BVP)
=============== ============================================ ===================================

:class:`BaselineNormaliser` then expresses each level feature relative to the viewer's own
baseline (``WristFeaturesRelative``), and :func:`wrist_features` runs a whole
:class:`~engage.datasets.base.Recording` through the replay runtime on a virtual clock - exactly
the live pipeline - and returns the relative feature matrix with the label of every window.

>>> WRIST_FEATURES[:3]
('hr_mean', 'hr_std', 'hrv_rmssd')
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from engage.core import Chunk, EventBus, Processor, Runtime, StreamInfo, VirtualClock
from engage.signals.cardiac import EcgHeartRate, PpgHeartRate
from engage.signals.eda import EdaFeatures
from engage.signals.face import FaceFeatures

from .windows import MAX_TIMESTAMP_S, _Buffer, in_time_range, step_after

__all__ = ["BaselineNormaliser", "Collector", "FACE_FEATURES", "FACE_QUALITIES", "LEVEL_FEATURES", "WINDOW_CHANNELS",
           "WRIST_FEATURES", "WRIST_QUALITIES", "WindowSet",
           "WristFeatureWindow", "concat_windows", "renormalise", "windows_frame", "wrist_features", "wrist_processors"]

WRIST_FEATURES = ("hr_mean", "hr_std", "hrv_rmssd", "eda_tonic", "eda_phasic_sd", "scr_rate", "eda_slope",
                  "acc_sd", "acc_energy", "temp_mean", "temp_slope", "bvp_amp", "bvp_amp_sd",
                  "hr_slope", "hrv_sdnn", "hrv_lf_hf", "scr_amp", "eda_range")
WRIST_QUALITIES = ("hr_quality", "eda_quality", "acc_quality", "temp_quality")
#: face features (a webcam or the simulated viewer's face), after the wrist ones: blinks per minute,
#: the share of frames with the gaze on the screen, head motion (face widths/s), PERCLOS, and quality
FACE_FEATURES = ("blink_rate", "on_screen", "head_motion", "perclos")
FACE_QUALITIES = ("face_quality",)
_UNITS = ("bpm", "bpm", "s", "uS", "uS", "1/min", "uS/min", "g", "g2", "degC", "degC/min", "log", "log",
          "bpm/min", "s", "ratio", "uS", "uS", "ratio", "ratio", "ratio", "ratio", "1/min", "ratio", "face/s",
          "ratio", "ratio")
#: every channel of a ``WristFeatures`` row, in order
WINDOW_CHANNELS = WRIST_FEATURES + WRIST_QUALITIES + FACE_FEATURES + FACE_QUALITIES
#: level features made relative to the viewer's baseline (z-scored); the others are kept as they are
LEVEL_FEATURES = ("hr_mean", "hr_std", "hrv_rmssd", "eda_tonic", "eda_phasic_sd", "scr_rate", "acc_sd",
                  "acc_energy", "temp_mean", "bvp_amp", "bvp_amp_sd", "hrv_sdnn", "hrv_lf_hf", "scr_amp",
                  "eda_range", "blink_rate", "head_motion")


def _slope_per_min(t: np.ndarray, x: np.ndarray) -> float:
    ok = np.isfinite(x)
    if ok.sum() < 3 or np.ptp(t[ok]) <= 0:
        return np.nan
    return float(np.polyfit(t[ok] - t[ok][0], x[ok], 1)[0] * 60.0)


class WristFeatureWindow(Processor):
    """Wrist streams of one viewer → ``WristFeatures`` every ``hop_s`` (see the module docstring).

    Parameters
    ----------
    window_s
        Seconds summarised by each row.
    hop_s
        Seconds between rows.
    viewer
        Take only this viewer's streams (None: the first viewer seen).
    first_s
        When the first row comes, in seconds after the first sample (default ``window_s``: a full
        window). Shorter gives a first row over just that stretch - DEAP's 3 pre-trial seconds,
        which then set each trial's baseline.

    Examples
    --------
    >>> WristFeatureWindow(window_s=60, hop_s=5).info("s1").channels[18:22]
    ('hr_quality', 'eda_quality', 'acc_quality', 'temp_quality')
    """

    name = "wrist-window"
    inputs = ("HeartRate", "HRV", "DeviceHR", "IBI", "EDAFeatures", "ACC", "TEMP", "PPG", "FaceFeatures")
    #: after a silence longer than this (plus a window), rows resume at the last window before
    #: ``now``: an hour of empty rows is kept, not the ten million of a clock that jumped a year
    max_empty_s = 3600.0

    def __init__(self, window_s: float = 60.0, hop_s: float = 5.0, viewer: str | None = None,
                 first_s: float | None = None) -> None:
        if window_s <= 0 or hop_s <= 0 or (first_s is not None and not 0 < first_s <= window_s):
            raise ValueError("window_s and hop_s must be positive, first_s in (0, window_s]")
        self.window_s = window_s
        self.hop_s = hop_s
        self.first_s = window_s if first_s is None else first_s
        self.viewer = viewer
        self._buffers: dict[str, _Buffer] = {}
        self._channels: dict[str, tuple[str, ...]] = {}
        self._first: float | None = None
        self._next: float | None = None
        self._viewer: str | None = viewer

    def info(self, viewer: str) -> StreamInfo:
        return StreamInfo(f"{viewer}-wrist-features", "WristFeatures", WINDOW_CHANNELS, _UNITS,
                          1.0 / self.hop_s, f"engage-{viewer}-wrist-features", viewer=viewer)

    def accepts(self, info: StreamInfo) -> bool:
        return info.type in self.inputs and (self.viewer is None or info.viewer == self.viewer)

    def process(self, chunk: Chunk) -> list[Chunk]:
        chunk = in_time_range(self, chunk)
        if chunk is None:
            return []
        kind = chunk.info.type
        if kind not in self._buffers:
            self._buffers[kind] = _Buffer(chunk.info.channel_count)
            self._channels[kind] = chunk.info.channels
        if self._viewer is None:
            self._viewer = chunk.info.viewer
        if self._first is None or chunk.first_time < self._first:
            self._first = chunk.first_time if self._first is None else self._first
        # keep what the next window to summarise still needs (a big chunk may span several windows)
        pending = self._next if self._next is not None else self._first + self.first_s
        self._buffers[kind].add(chunk, min(chunk.last_time, pending) - self.window_s)
        return []

    def tick(self, now: float) -> list[Chunk]:
        if self._first is None or not abs(now) <= MAX_TIMESTAMP_S:
            return []
        if self._next is None:
            self._next = self._first + self.first_s
        rows, stamps = [], []
        if now - self._next > self.window_s + self.max_empty_s:  # a long silence: its empty windows are skipped
            self._next += np.floor((now - self._next - self.window_s) / self.hop_s) * self.hop_s
        while self._next <= now:
            rows.append(self.summarise(self._next))
            stamps.append(self._next)
            self._next = step_after(self._next, self.hop_s)
        return [Chunk.from_rows(self.info(self._viewer or "viewer-1"), rows, stamps)] if rows else []

    def _get(self, kind: str, now: float) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]] | None:
        if kind not in self._buffers:
            return None
        t, x = self._buffers[kind].since(now - self.window_s, now)
        return (t, x, self._channels[kind]) if len(t) else None

    def _coverage(self, t: np.ndarray) -> float:
        return float(min(1.0, (t[-1] - t[0]) / (0.8 * self.window_s))) if len(t) > 1 else 0.0

    def summarise(self, now: float) -> list[float]:
        """One feature row for the window ending at ``now``."""
        f = dict.fromkeys(WRIST_FEATURES, np.nan)
        q = dict.fromkeys(WRIST_QUALITIES, 0.0)
        hr = self._get("HeartRate", now)
        if hr is not None:
            t, x, ch = hr
            good = x[:, ch.index("quality")] >= 0.5
            bpm, rr = x[good, ch.index("hr_bpm")], x[good, ch.index("rr_s")]
            if bpm.size >= 2:
                f["hr_mean"], f["hr_std"] = float(np.mean(bpm)), float(np.std(bpm))
                f["hrv_rmssd"] = float(np.sqrt(np.mean(np.diff(rr) ** 2)))
                f["hr_slope"] = _slope_per_min(t[good], bpm)
                q["hr_quality"] = float(min(1.0, np.sum(rr) / self.window_s))
        hrv = self._get("HRV", now)
        if hrv is not None:
            t, x, ch = hrv
            good = x[:, ch.index("quality")] >= 0.5
            if good.any():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # LF/HF is NaN until 2 min of clean beats
                    f["hrv_sdnn"] = float(np.nanmedian(x[good, ch.index("sdnn")]))
                    lf_hf = float(np.nanmedian(x[good, ch.index("lf_hf")]))
                f["hrv_lf_hf"] = float(np.log(lf_hf)) if lf_hf > 0 else np.nan  # log: a ratio's skew
        if q["hr_quality"] == 0.0:  # no clean beats of our own in this window: the device's estimate, if any
            dev = self._get("DeviceHR", now)
            if dev is not None:
                t, x, ch = dev
                bpm = x[:, 0][np.isfinite(x[:, 0]) & (x[:, 0] > 25) & (x[:, 0] < 240)]
                if bpm.size >= 2:
                    f["hr_mean"], f["hr_std"] = float(np.mean(bpm)), float(np.std(bpm))
                    q["hr_quality"] = self._coverage(t) * bpm.size / max(1, len(t))
            ibi = self._get("IBI", now)
            if ibi is not None and len(ibi[0]) >= 5:
                t, x, _ = ibi
                rr = x[:, 0]
                consecutive = np.abs(np.diff(t) - rr[1:]) < 0.05  # both beats detected, no beat missing between
                if consecutive.sum() >= 3:
                    f["hrv_rmssd"] = float(np.sqrt(np.mean(np.diff(rr)[consecutive] ** 2)))
        eda = self._get("EDAFeatures", now)
        if eda is not None:
            t, x, ch = eda
            tonic = x[:, ch.index("tonic_us")]
            f["eda_tonic"] = float(np.mean(tonic))
            f["eda_phasic_sd"] = float(np.std(x[:, ch.index("phasic_us")]))
            f["scr_rate"] = float(np.count_nonzero(x[:, ch.index("scr_amplitude")]) / (self.window_s / 60.0))
            f["eda_slope"] = _slope_per_min(t, tonic)
            amp = x[:, ch.index("scr_amplitude")]
            f["scr_amp"] = float(np.mean(amp[amp > 0])) if np.any(amp > 0) else 0.0
            f["eda_range"] = float(np.ptp(tonic + x[:, ch.index("phasic_us")]))
            q["eda_quality"] = float(np.mean(x[:, ch.index("quality")])) * self._coverage(t)
        acc = self._get("ACC", now)
        if acc is not None:
            t, x, _ = acc
            mag = np.linalg.norm(x, axis=1)
            f["acc_sd"] = float(np.std(mag))
            f["acc_energy"] = float(np.mean(np.sum((x - x.mean(axis=0)) ** 2, axis=1)))
            q["acc_quality"] = self._coverage(t)
        bvp = self._get("PPG", now)
        if bvp is not None and len(bvp[0]) > 8:
            t, x, _ = bvp
            # pulse amplitude: the spread of the pulse wave in 5 s pieces (vasoconstriction narrows it)
            n = max(2, int(round(5.0 * len(t) / max(t[-1] - t[0], 1e-9))))
            pieces = [np.subtract(*np.nanpercentile(x[i:i + n, 0], [90, 10])) for i in range(0, len(t) - n + 1, n)]
            amp = np.log(np.maximum(np.array(pieces), 1e-3)) if pieces else np.array([np.nan])
            f["bvp_amp"], f["bvp_amp_sd"] = float(np.median(amp)), float(np.std(amp))
        temp = self._get("TEMP", now)
        if temp is not None:
            t, x, _ = temp
            f["temp_mean"] = float(np.nanmean(x[:, 0]))
            f["temp_slope"] = _slope_per_min(t, x[:, 0])
            q["temp_quality"] = self._coverage(t)
        face = dict.fromkeys(FACE_FEATURES, np.nan)
        face_q = 0.0
        got = self._get("FaceFeatures", now)
        if got is not None:
            t, x, ch = got
            present = x[:, ch.index("face_present")] > 0.5
            if present.any():
                seen = x[present]
                face["blink_rate"] = float(np.count_nonzero(seen[:, ch.index("blink_duration")])
                                           / (self.window_s / 60.0) / max(present.mean(), 1e-9))
                face["on_screen"] = float(np.mean(seen[:, ch.index("on_screen")]))
                if "head_motion" in ch:
                    face["head_motion"] = float(np.nanmean(seen[:, ch.index("head_motion")])) \
                        if np.isfinite(seen[:, ch.index("head_motion")]).any() else np.nan
                if "perclos" in ch and np.isfinite(seen[:, ch.index("perclos")]).any():
                    face["perclos"] = float(np.nanmean(seen[:, ch.index("perclos")]))
                face_q = float(np.mean(x[:, ch.index("quality")])) * self._coverage(t)
        return ([f[k] for k in WRIST_FEATURES] + [q[k] for k in WRIST_QUALITIES] + [face[k] for k in FACE_FEATURES]
                + [face_q])


class BaselineNormaliser(Processor):
    """Features relative to the viewer's own baseline, with slow online adaptation.

    The first ``calibration_s`` seconds of rows (a calibration phase or the first minutes) fix
    each level feature's centre (median) and scale (inter-quartile range / 1.35, floored at
    ``floor`` × |centre| so a very steady viewer does not turn noise into large z-scores). After
    that, the centre follows the feature with an exponential time constant ``adapt_tau_s`` (slow
    enough that a task of a few minutes is not absorbed). Output rows are z-scores of the level
    features followed by the other channels unchanged; type ``<input type>Relative``. Rows during
    calibration are not emitted (the baseline is not known yet). A feature without any value
    during the calibration (a modality that starts late; LF/HF before two minutes of clean beats)
    is calibrated on its own first ``calibration_s`` seconds of values; its z-score is NaN until then.

    With ``rank_history_s`` set, each level feature also gets ``p_<name>``: the percentile rank
    (−0.5 … +0.5) of the current value among the viewer's own rows of the last ``rank_history_s``
    seconds (calibration rows included; NaN with fewer than 5 values). A rank is causal, robust
    to outliers and to a flat calibration, and puts viewers with very different EDA levels or
    pulse amplitudes on one scale.

    With ``delta_s`` set, each level feature also gets ``d_<name>``: its change against the
    viewer's own row ``delta_s`` seconds earlier (the latest row at or before then, calibration
    rows included; NaN when there is none or it is more than ``delta_s / 2`` older), in units of
    the baseline scale. The onset of a stressor is a *rise* (EDA, heart rate) whatever the
    level the viewer started from; the change is causal and uses no time since the start.

    Parameters
    ----------
    calibration_s
        Seconds of rows that fix the baseline.
    adapt_tau_s
        Time constant of the centre's slow adaptation.
    floor
        The least scale, as a fraction of the centre.
    input_type
        The feature stream it reads (output: ``<input_type>Relative``).
    levels
        The features made relative (the others pass through).
    rank_history_s
        Seconds of the viewer's own rows that percentile ranks are taken among (None: no ranks).
    delta_s
        Change features against the viewer's row this long before (None: none).

    Examples
    --------
    >>> BaselineNormaliser(calibration_s=180).input_type
    'WristFeatures'
    """

    name = "wrist-baseline"

    def __init__(self, calibration_s: float = 180.0, adapt_tau_s: float = 1800.0, floor: float = 0.02,
                 input_type: str = "WristFeatures", levels: tuple[str, ...] = LEVEL_FEATURES,
                 rank_history_s: float | None = None, delta_s: float | None = None) -> None:
        if rank_history_s is not None and rank_history_s <= 0:
            raise ValueError("rank_history_s must be positive (or None)")
        if delta_s is not None and delta_s <= 0:
            raise ValueError("delta_s must be positive (or None)")
        self.rank_history_s = rank_history_s
        self.delta_s = delta_s
        self._past_t: list[float] = []
        self._past_x: list[np.ndarray] = []
        self._hist_t: list[float] = []
        self._hist_x: list[np.ndarray] = []
        self.calibration_s = calibration_s
        self.adapt_tau_s = adapt_tau_s
        self.floor = floor
        self.input_type = input_type
        self.levels = levels
        self._rows: list[np.ndarray] = []
        self._start: float | None = None
        self._last_t: float | None = None
        self.center: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self._late: dict[int, list[float]] = {}
        self._late_start: dict[int, float] = {}

    def accepts(self, info: StreamInfo) -> bool:
        return info.type == self.input_type

    def _robust(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centre (median) and floored IQR scale of each column; NaN for a column without values."""
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a modality absent during calibration: NaN centre
            center = np.nanmedian(rows, axis=0) if len(rows) else np.full(rows.shape[1], np.nan)
            q75, q25 = np.nanpercentile(rows, [75, 25], axis=0) if len(rows) else (center, center)
        scale = (q75 - q25) / 1.35
        floor = np.maximum(self.floor * np.abs(center), 1e-6)
        return center, np.where(np.isfinite(scale), np.maximum(scale, floor), floor)

    def _fit(self, idx: list[int]) -> None:
        self.center, self.scale = self._robust(np.array(self._rows)[:, idx])
        # a feature never seen during calibration (a strap put on late, LF/HF before 2 min of clean
        # beats) gets its own calibration from its first calibration_s of values
        self._late = {j: [] for j in np.flatnonzero(~np.isfinite(self.center))}
        self._late_start: dict[int, float] = {}

    def _calibrate_late(self, t: float, x: np.ndarray) -> None:
        for j in [j for j in self._late if np.isfinite(x[j])]:
            self._late_start.setdefault(j, t)
            self._late[j].append(x[j])
            if t - self._late_start[j] >= self.calibration_s:
                c, sc = self._robust(np.array(self._late.pop(j))[:, None])
                self.center[j], self.scale[j] = c[0], sc[0]

    def _rank(self, t: float, x: np.ndarray) -> np.ndarray:
        """Percentile rank of ``x`` among the rows of the last ``rank_history_s`` (see the class docstring)."""
        cut = int(np.searchsorted(np.asarray(self._hist_t), t - self.rank_history_s, side="right"))
        if cut:
            del self._hist_t[:cut], self._hist_x[:cut]
        h = np.array(self._hist_x)
        ok = np.isfinite(h)
        n = ok.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            below = np.sum(ok & (h < x), axis=0) + 0.5 * np.sum(ok & (h == x), axis=0)
            p = below / n - 0.5
        return np.where((n >= 5) & np.isfinite(x), p, np.nan)

    def _delta(self, t: float, x: np.ndarray) -> np.ndarray:
        """Change of ``x`` against the viewer's row ``delta_s`` earlier, in baseline scales (see the class docstring)."""
        i = int(np.searchsorted(np.asarray(self._past_t), t - self.delta_s, side="right")) - 1
        if i < 0 or self._past_t[i] < t - 1.5 * self.delta_s:
            return np.full(len(x), np.nan)
        if i:
            del self._past_t[:i], self._past_x[:i]  # rows older than the one needed now are never needed again
        return (x - self._past_x[0]) / self.scale

    def process(self, chunk: Chunk) -> list[Chunk]:
        names = chunk.info.channels
        idx = [names.index(n) for n in self.levels if n in names]
        rest = [i for i in range(len(names)) if i not in idx]
        out_rows, out_t = [], []
        for t, row in zip(chunk.timestamps, chunk.data.astype(float)):
            t = float(t)
            if self._start is None:
                self._start = t
            if self.rank_history_s is not None:
                self._hist_t.append(t)
                self._hist_x.append(row[idx])
            if self.delta_s is not None:
                self._past_t.append(t)
                self._past_x.append(row[idx])
            if self.center is None:
                self._rows.append(row)
                if t - self._start >= self.calibration_s:
                    self._fit(idx)
                    self._last_t = t
                continue
            x = row[idx]
            z = (x - self.center) / self.scale
            parts = [z, row[rest]] + ([self._rank(t, x)] if self.rank_history_s else [])
            out_rows.append(np.concatenate(parts + ([self._delta(t, x)] if self.delta_s else [])))
            out_t.append(t)
            # slow adaptation of the calibrated centres; a feature still calibrating collects its values
            a = 1.0 - np.exp(-(t - self._last_t) / self.adapt_tau_s) if self.adapt_tau_s > 0 else 0.0
            self._last_t = t
            ok = np.isfinite(x) & np.isfinite(self.center)
            self.center = np.where(ok, self.center + a * (x - self.center), self.center)
            if self._late:
                self._calibrate_late(t, x)
        if not out_rows:
            return []
        info = chunk.info
        channels = tuple(f"z_{names[i]}" for i in idx) + tuple(names[i] for i in rest)
        units = ("z",) * len(idx) + tuple(info.units[i] for i in rest)
        if self.rank_history_s:
            channels += tuple(f"p_{names[i]}" for i in idx)
            units += ("rank",) * len(idx)
        if self.delta_s:
            channels += tuple(f"d_{names[i]}" for i in idx)
            units += ("z",) * len(idx)
        out = StreamInfo(f"{info.viewer}-{self.input_type.lower()}-relative", f"{self.input_type}Relative",
                         channels, units, info.nominal_rate, f"engage-{info.viewer}-{self.input_type.lower()}-rel",
                         viewer=info.viewer)
        return [Chunk.from_rows(out, out_rows, out_t)]


class Collector(Processor):
    """A sink keeping every row of one stream type (for training and evaluation).

    Parameters
    ----------
    stream_type
        The type it keeps.

    Examples
    --------
    >>> c = Collector("WristFeatures")
    >>> c.accepts(WristFeatureWindow().info("v1")), c.arrays()[0].size
    (True, 0)
    """

    name = "collector"

    def __init__(self, stream_type: str) -> None:
        self.stream_type = stream_type
        self.channels: tuple[str, ...] = ()
        self._t: list[np.ndarray] = []
        self._x: list[np.ndarray] = []

    def accepts(self, info: StreamInfo) -> bool:
        return info.type == self.stream_type

    def process(self, chunk: Chunk) -> list[Chunk]:
        self.channels = chunk.info.channels
        self._t.append(chunk.timestamps)
        self._x.append(chunk.data.astype(float))
        return []

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._t:
            return np.zeros(0), np.zeros((0, len(self.channels)))
        return np.concatenate(self._t), np.vstack(self._x)


@dataclass
class WindowSet:
    """The feature windows of one participant: ``X`` (windows × features), their end times and labels.

    Parameters
    ----------
    subject
        The participant.
    features
        The column names of ``X``, in order.
    X
        One row per window.
    t
        Each window's end time on the recording's clock.
    y
        Each window's label (NaN: unlabelled).
    raw, raw_t
        The windows before baseline normalisation (``WristFeatures`` rows and their times), so
        other baseline settings can be tried without replaying the recording (:func:`renormalise`).
    session
        Each window's session when the participant has several (DEAP's trials), else None.

    Examples
    --------
    >>> ws = WindowSet("s1", ("z_hr_mean", "eda_quality"), np.array([[0.5, 1.0]]), np.array([60.0]),
    ...                np.array([1.0]))
    >>> ws.frame()
          z_hr_mean  eda_quality
    time                        
    60.0        0.5          1.0
    """

    subject: str
    features: tuple[str, ...]
    X: np.ndarray
    t: np.ndarray
    y: np.ndarray
    raw: np.ndarray | None = None
    raw_t: np.ndarray | None = None
    session: np.ndarray | None = None

    def frame(self):
        """The windows as a ``pandas.DataFrame``: one column per feature (named), indexed by ``time``.

        Returns
        -------
        pandas.DataFrame
            ``X`` with its column names; a model trained by engage refuses anything else.
        """
        import pandas as pd

        return pd.DataFrame(self.X, columns=list(self.features), index=pd.Index(self.t, name="time"))


def windows_frame(sets) -> "pd.DataFrame":
    """Every participant's windows in one long ``pandas.DataFrame``: ``subject``, ``session``,
    ``time``, ``label`` and one column per feature.

    Parameters
    ----------
    sets
        :class:`WindowSet` objects with the same features.

    Returns
    -------
    pandas.DataFrame
        One row per window.

    Examples
    --------
    >>> ws = WindowSet("s1", ("z_hr_mean",), np.array([[0.5], [0.7]]), np.array([60.0, 65.0]), np.array([0, 1.0]))
    >>> list(windows_frame([ws]).columns)
    ['subject', 'session', 'time', 'label', 'z_hr_mean']
    """
    import pandas as pd

    parts = []
    for s in sets:
        head = pd.DataFrame({"subject": s.subject, "session": s.session if s.session is not None else "",
                             "time": s.t, "label": s.y})
        parts.append(pd.concat([head, pd.DataFrame(s.X, columns=list(s.features))], axis=1))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["subject", "session", "time", "label"])


def concat_windows(parts: list[WindowSet]) -> WindowSet:
    """The windows of one participant's sessions in one :class:`WindowSet` (``session`` says which).

    Parameters
    ----------
    parts
        One :class:`WindowSet` per session, same subject and features, sessions named in their
        ``session`` arrays.

    Returns
    -------
    WindowSet
        Their rows in order.

    Examples
    --------
    >>> a = WindowSet("s1", ("x",), np.ones((2, 1)), np.array([1.0, 2.0]), np.zeros(2), session=np.array(["t1"] * 2))
    >>> b = WindowSet("s1", ("x",), np.ones((1, 1)), np.array([9.0]), np.ones(1), session=np.array(["t2"]))
    >>> concat_windows([a, b]).session.tolist()
    ['t1', 't1', 't2']
    """
    parts = [p for p in parts if len(p.t)] or parts[:1]
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    raw = [p.raw for p in parts if p.raw is not None]
    return WindowSet(first.subject, first.features,
                     np.vstack([p.X.reshape(-1, len(first.features)) for p in parts]),
                     np.concatenate([p.t for p in parts]), np.concatenate([p.y for p in parts]),
                     np.vstack(raw) if len(raw) == len(parts) else None,
                     np.concatenate([p.raw_t for p in parts]) if len(raw) == len(parts) else None,
                     np.concatenate([p.session if p.session is not None else np.full(len(p.t), "") for p in parts]))


def renormalise(ws: WindowSet, calibration_s: float, adapt_tau_s: float, rank_history_s: float | None,
                labels=None, label_lag_s: float = 0.0, delta_s: float | None = None) -> WindowSet:
    """``ws`` with its raw windows put through another :class:`BaselineNormaliser` - the same rows
    the live chain would give with those settings (the normaliser works row by row, causally).

    Parameters
    ----------
    ws
        Windows with their raw rows kept (as :func:`wrist_features` returns them).
    calibration_s, adapt_tau_s, rank_history_s, delta_s
        The normaliser's settings.
    labels
        A callable time → label (e.g. ``recording.label_at``) to relabel the windows; None keeps
        the labels ``ws`` has.
    label_lag_s
        With ``labels``: each window takes the label this long before its end.

    Returns
    -------
    WindowSet
        The renormalised windows.

    Examples
    --------
    >>> # wide = renormalise(ws, calibration_s=600, adapt_tau_s=1800, rank_history_s=None)
    """
    if ws.raw is None or ws.raw_t is None:
        raise ValueError(f"{ws.subject}: no raw windows kept")
    info = StreamInfo(f"{ws.subject}-wrist-features", "WristFeatures", WINDOW_CHANNELS[:ws.raw.shape[1]],
                      _UNITS[:ws.raw.shape[1]],
                      0.0, f"engage-{ws.subject}-wrist-features", viewer=ws.subject)
    norm = BaselineNormaliser(calibration_s, adapt_tau_s, rank_history_s=rank_history_s, delta_s=delta_s)
    out = norm.process(Chunk(info, ws.raw, ws.raw_t)) if len(ws.raw_t) else []
    if not out:
        return WindowSet(ws.subject, ws.features, np.zeros((0, len(ws.features))), np.zeros(0), np.zeros(0), ws.raw, ws.raw_t)
    t = out[0].timestamps
    y = labels(t - label_lag_s) if labels is not None else ws.y[np.searchsorted(ws.t, t)] if len(ws.t) else np.full(len(t), np.nan)
    return WindowSet(ws.subject, out[0].info.channels, out[0].data, t, y, ws.raw, ws.raw_t)


def wrist_processors(window_s: float = 60.0, hop_s: float = 5.0, calibration_s: float = 180.0,
                     adapt_tau_s: float = 1800.0, rank_history_s: float | None = None,
                     delta_s: float | None = None, first_window_s: float | None = None) -> list[Processor]:
    """The sensing chain of a trained model, in routing order: pulse or ECG beats, EDA features and
    face features (whichever the recording has) → windows → baseline.

    Parameters
    ----------
    window_s, hop_s, first_window_s
        Of the :class:`WristFeatureWindow` (``first_window_s`` is its ``first_s``).
    calibration_s, adapt_tau_s, rank_history_s, delta_s
        Of the :class:`BaselineNormaliser`.

    Returns
    -------
    list of Processor
        In routing order.

    Examples
    --------
    >>> [p.name for p in wrist_processors()][-2:]
    ['wrist-window', 'wrist-baseline']
    """
    return [PpgHeartRate(), EcgHeartRate(), EdaFeatures(), FaceFeatures(),
            WristFeatureWindow(window_s, hop_s, first_s=first_window_s),
            BaselineNormaliser(calibration_s, adapt_tau_s, rank_history_s=rank_history_s, delta_s=delta_s)]


def wrist_features(recording, window_s: float = 60.0, hop_s: float = 5.0, calibration_s: float = 180.0,
                   adapt_tau_s: float = 1800.0, rank_history_s: float | None = None, label_lag_s: float = 0.0,
                   step: float = 1.0, delta_s: float | None = None, chain: list[Processor] | None = None,
                   first_window_s: float | None = None) -> WindowSet:
    """Replay ``recording`` through the wrist chain on a virtual clock - exactly the live processors.

    Parameters
    ----------
    recording
        A :class:`~engage.datasets.base.Recording`.
    window_s, hop_s, calibration_s, adapt_tau_s, rank_history_s, delta_s, first_window_s
        As in :func:`wrist_processors`.
    label_lag_s
        Each window takes the label in force this long before its end (0: its end;
        ``window_s / 2``: its centre, the label covering most of it). Windows without a label get NaN.
    step
        The runtime's step in seconds (results do not depend on it).
    chain
        Other processors to replay through instead of :func:`wrist_processors` with these settings
        (e.g. an ``EdaFeatures`` with other SCR criteria); it must end in a ``WristFeatureWindow``
        and a ``BaselineNormaliser``.

    Returns
    -------
    WindowSet
        The relative windows, their labels, and the raw windows.

    Examples
    --------
    >>> # ws = wrist_features(StressPredict(root).load("S02")); ws.frame().shape
    """
    collector, raw = Collector("WristFeaturesRelative"), Collector("WristFeatures")
    runtime = Runtime(VirtualClock(), [recording.source()],
                      list(chain or wrist_processors(window_s, hop_s, calibration_s, adapt_tau_s, rank_history_s,
                                                     delta_s, first_window_s)) + [collector, raw],
                      bus=EventBus(), step=step, viewer=recording.subject)
    runtime.run()
    t, X = collector.arrays()
    raw_t, raw_x = raw.arrays()
    return WindowSet(recording.subject, collector.channels, X, t, recording.label_at(t - label_lag_s), raw_x, raw_t,
                     np.full(len(t), recording.session) if getattr(recording, "session", "") else None)
