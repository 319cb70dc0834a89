"""Per-viewer baseline: the first minute of features defines what "usual" is for this viewer,
then the baseline follows the viewer slowly.

During ``calibration_s`` the calibrator only collects ``Features`` rows; then it fixes a
robust centre (median) and scale (standard deviation, floored per feature so a very steady
viewer does not turn noise into large z-scores) and from then on emits ``FeaturesRelative``:
z-scores of heart rate, SCR rate, tonic EDA and blink rate, with the absolute on-screen fraction
and the qualities passed through. It publishes ``baseline.ready`` when calibrated.

**Slow online adaptation.** A calm first minute alone makes a poor reference for a whole film:
its spread is small, so every later scene looks extreme and arousal sits at its ceiling. After
calibration each row (z computed first, so the update is causal) moves the centre towards the
value and the spread towards the value's squared deviation with time constant ``adapt_tau_s``
(default 10 min: a scene of a minute or two still stands out, the viewer's usual range over a
film is learnt). The spread never shrinks below the calibration's, nor below the floor.

>>> BaselineCalibrator(calibration_s=60).relative_channels[:2]
('z_hr', 'z_scr')
"""

from __future__ import annotations

import numpy as np

from engage.core import Chunk, Processor, StreamInfo

from .windows import FEATURE_CHANNELS

__all__ = ["BaselineCalibrator"]

_Z = {"hr_mean": ("z_hr", 2.0), "scr_rate": ("z_scr", 1.0), "eda_tonic": ("z_tonic", 0.2),
      "blink_rate": ("z_blink", 3.0)}
_PASS = ("on_screen", "hr_quality", "eda_quality", "face_quality")


class BaselineCalibrator(Processor):
    """``Features`` rows → ``FeaturesRelative`` z-scores against the viewer's own first minute,
    adapting slowly after it (see the module docstring).

    Parameters
    ----------
    calibration_s
        Seconds of rows that fix the baseline.
    min_quality
        Rows whose modality quality is below this do not move the baseline.
    adapt_tau_s
        Time constant of the slow adaptation (None: none).

    Examples
    --------
    >>> BaselineCalibrator(calibration_s=60).relative_channels[:2]
    ('z_hr', 'z_scr')
    """

    name = "baseline"
    relative_channels = tuple(z for z, _ in _Z.values()) + _PASS

    def __init__(self, calibration_s: float = 60.0, min_quality: float = 0.5, adapt_tau_s: float | None = 600.0) -> None:
        if adapt_tau_s is not None and adapt_tau_s <= 0:
            raise ValueError("adapt_tau_s must be positive (or None: no adaptation)")
        self.calibration_s = calibration_s
        self.min_quality = min_quality
        self.adapt_tau_s = adapt_tau_s
        self._last_t: float | None = None
        self._min_scale: dict[str, float] = {}
        self._rows: list[np.ndarray] = []
        self._start: float | None = None
        self.center: dict[str, float] | None = None
        self.scale: dict[str, float] | None = None

    def accepts(self, info: StreamInfo) -> bool:
        return info.type == "Features"

    @property
    def calibrated(self) -> bool:
        return self.center is not None

    def _fit(self, viewer: str, t: float) -> None:
        rows = np.array(self._rows)
        self.center, self.scale = {}, {}
        for name, (_, floor) in _Z.items():
            col = rows[:, FEATURE_CHANNELS.index(name)]
            col = col[np.isfinite(col)]
            self.center[name] = float(np.median(col)) if col.size else np.nan
            self.scale[name] = float(max(np.std(col), floor)) if col.size else floor
        self._min_scale = dict(self.scale)
        self._last_t = t
        self.ctx.emit("baseline.ready", t, 1.0, {"samples": len(rows), **{f"{k}_baseline": v
                                                                      for k, v in self.center.items()}},
                      source=self.name, viewer=viewer)

    _QUALITY = {"hr_mean": "hr_quality", "scr_rate": "eda_quality", "eda_tonic": "eda_quality",
                "blink_rate": "face_quality"}

    def _adapt(self, t: float, row: np.ndarray) -> None:
        """Move centre and spread towards this row (time constant ``adapt_tau_s``); bad rows are skipped."""
        if self.adapt_tau_s is None or self._last_t is None:
            return
        a = 1.0 - np.exp(-max(0.0, t - self._last_t) / self.adapt_tau_s)
        self._last_t = t
        for n in _Z:
            x = float(row[FEATURE_CHANNELS.index(n)])
            if not np.isfinite(x) or row[FEATURE_CHANNELS.index(self._QUALITY[n])] < self.min_quality:
                continue
            c = self.center[n]
            if not np.isfinite(c):  # a modality absent during calibration: its first good value
                self.center[n] = x
                continue
            d = x - c
            self.center[n] = c + a * d
            var = self.scale[n] ** 2 + a * (d * d - self.scale[n] ** 2)
            self.scale[n] = float(max(np.sqrt(max(var, 0.0)), self._min_scale[n]))

    def process(self, chunk: Chunk) -> list[Chunk]:
        info = chunk.info
        out_rows, out_t = [], []
        for t, row in zip(chunk.timestamps, chunk.data):
            if self._start is None:
                self._start = float(t)
            if not self.calibrated:
                self._rows.append(row)
                if t - self._start >= self.calibration_s:
                    self._fit(info.viewer, float(t))
                continue
            z = [(row[FEATURE_CHANNELS.index(n)] - self.center[n]) / self.scale[n] for n in _Z]
            out_rows.append(z + [row[FEATURE_CHANNELS.index(n)] for n in _PASS])
            out_t.append(t)
            self._adapt(float(t), row)
        if not out_rows:
            return []
        out = StreamInfo(f"{info.viewer}-features-relative", "FeaturesRelative", self.relative_channels,
                         ("z",) * len(_Z) + ("ratio",) * len(_PASS), info.nominal_rate,
                         f"engage-{info.viewer}-features-relative", viewer=info.viewer)
        return [Chunk.from_rows(out, out_rows, out_t)]
