"""Per-viewer baseline: the first minute of features defines what "usual" is for this viewer.

During ``calibration_s`` the calibrator only collects ``Features`` rows; then it fixes a
robust centre (median) and scale (standard deviation, floored per feature so a very steady
viewer does not turn noise into large z-scores) and from then on emits ``FeaturesRelative``:
z-scores of heart rate, SCR rate, tonic EDA and blink rate, with the absolute on-screen fraction
and the qualities passed through. It publishes ``baseline.ready`` when calibrated.

>>> BaselineCalibrator(calibration_s=60).relative_channels[:2]
('z_hr', 'z_scr')
"""

from __future__ import annotations

import numpy as np

from engage.core import Chunk, Processor, StreamInfo

from .windows import FEATURE_CHANNELS

_Z = {"hr_mean": ("z_hr", 2.0), "scr_rate": ("z_scr", 1.0), "eda_tonic": ("z_tonic", 0.2),
      "blink_rate": ("z_blink", 3.0)}
_PASS = ("on_screen", "hr_quality", "eda_quality", "face_quality")


class BaselineCalibrator(Processor):
    name = "baseline"
    relative_channels = tuple(z for z, _ in _Z.values()) + _PASS

    def __init__(self, calibration_s: float = 60.0, min_quality: float = 0.5) -> None:
        self.calibration_s = calibration_s
        self.min_quality = min_quality
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
        self.ctx.emit("baseline.ready", t, 1.0, {"samples": len(rows), **{f"{k}_baseline": v
                                                                      for k, v in self.center.items()}},
                      source=self.name, viewer=viewer)

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
        if not out_rows:
            return []
        out = StreamInfo(f"{info.viewer}-features-relative", "FeaturesRelative", self.relative_channels,
                         ("z",) * len(_Z) + ("ratio",) * len(_PASS), info.nominal_rate,
                         f"engage-{info.viewer}-features-relative", viewer=info.viewer)
        return [Chunk.from_rows(out, out_rows, out_t)]
