"""Gaze: where the viewer looks, from iris position and head pose, and on/off the screen.

* :func:`iris_offsets` - the iris centre within each eye (refined FaceMesh landmarks 468/473),
  -1..1 from corner to corner horizontally and lid to lid vertically, averaged over both eyes.
* :func:`gaze_angles` - head pose plus eye-in-head rotation → gaze angles in degrees
  (x > 0 toward the camera's right, y > 0 up), uncalibrated.
* :class:`ScreenGeometry` - a screen of a given size at a given distance below a camera
  decides whether a gaze direction falls on it.
* :class:`GazeCalibration` - optional calibration to screen coordinates (e.g. 9 points) by ridge
  regression, with its error in degrees of visual angle, and :class:`DriftTracker`, which follows
  slow drift during passive viewing (viewers look at the centre of a film on average).

>>> ScreenGeometry(width_cm=53, height_cm=30, distance_cm=60).on_screen(0.0, -10.0)
True
>>> ScreenGeometry().on_screen(60.0, 0.0)
False
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

RIGHT_IRIS, LEFT_IRIS = 468, 473
#: (corner, corner, upper lid, lower lid) of each eye, image-left corner first.
RIGHT_EYE_BOX = (33, 133, 159, 145)
LEFT_EYE_BOX = (362, 263, 386, 374)
#: Degrees of eye rotation per unit of iris offset (iris centre at an eye corner ≈ 1); an
#: anatomical average (the eyeball's radius against half the palpebral fissure), not fitted to data.
EYE_GAIN_X, EYE_GAIN_Y = 40.0, 30.0


#: the landmarks iris_offsets reads, both eyes: iris, corner, corner, upper lid, lower lid
_IRIS_AND_BOXES = np.array([RIGHT_IRIS, *RIGHT_EYE_BOX, LEFT_IRIS, *LEFT_EYE_BOX])


def iris_offsets(points: np.ndarray) -> tuple[float, float]:
    """(x, y) iris position in the eye, -1..1, averaged over both eyes (NaN without iris landmarks)."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] < 478 or points.shape[1] < 2:
        return float("nan"), float("nan")
    return _iris_offsets(points)


@njit(cache=True, nogil=True)
def _iris_offsets(points: np.ndarray) -> tuple[float, float]:
    sx, sy, n = 0.0, 0.0, 0
    for e in range(2):
        i, a, b = _IRIS_AND_BOXES[5 * e], _IRIS_AND_BOXES[5 * e + 1], _IRIS_AND_BOXES[5 * e + 2]
        up, lo = _IRIS_AND_BOXES[5 * e + 3], _IRIS_AND_BOXES[5 * e + 4]
        ix, iy, ax, ay, bx, by = points[i, 0], points[i, 1], points[a, 0], points[a, 1], points[b, 0], points[b, 1]
        dx, dy = bx - ax, by - ay
        width = math.hypot(dx, dy)
        if width <= 0:
            continue
        ux, uy = dx / width, dy / width
        sx += 2.0 * ((ix - (ax + bx) / 2) * ux + (iy - (ay + by) / 2) * uy) / width
        # the lids' midpoint, and the iris's offset from it along the normal (-uy, ux) of the eye's axis
        upx, upy, lox, loy = points[up, 0], points[up, 1], points[lo, 0], points[lo, 1]
        sy += -2.0 * ((ix - (upx + lox) / 2) * -uy + (iy - (upy + loy) / 2) * ux) / width
        n += 1
    if n == 0:
        return math.nan, math.nan
    return sx / n, sy / n


def gaze_angles(yaw: float, pitch: float, iris_x: float, iris_y: float) -> tuple[float, float]:
    """Gaze direction (x, y) in degrees: head pose plus the eye's rotation in the head."""
    return yaw + EYE_GAIN_X * iris_x, pitch + EYE_GAIN_Y * iris_y


@dataclass(frozen=True)
class ScreenGeometry:
    """A screen ``width_cm`` × ``height_cm`` at ``distance_cm``, its top edge ``camera_above_cm`` below the camera.

    ``margin_deg`` widens it to absorb the uncalibrated gaze error.
    """

    width_cm: float = 53.0
    height_cm: float = 30.0
    distance_cm: float = 60.0
    camera_above_cm: float = 0.0
    margin_deg: float = 12.0

    def __post_init__(self) -> None:
        if min(self.width_cm, self.height_cm, self.distance_cm) <= 0:
            raise ValueError("screen width, height and distance must be positive")

    def bounds_deg(self) -> tuple[float, float, float, float]:
        """(left, right, bottom, top) of the screen in degrees as seen from the viewer."""
        half = np.degrees(np.arctan2(self.width_cm / 2, self.distance_cm))
        top = -np.degrees(np.arctan2(self.camera_above_cm, self.distance_cm))
        bottom = -np.degrees(np.arctan2(self.camera_above_cm + self.height_cm, self.distance_cm))
        return -half, half, bottom, top

    def on_screen(self, gaze_x: float, gaze_y: float) -> bool:
        if not (np.isfinite(gaze_x) and np.isfinite(gaze_y)):
            return False
        left, right, bottom, top = self.bounds_deg()
        m = self.margin_deg
        return bool(left - m <= gaze_x <= right + m and bottom - m <= gaze_y <= top + m)

    def to_norm(self, gaze_x: float, gaze_y: float) -> tuple[float, float]:
        """Gaze angles (deg; x > 0 toward the camera's right) → screen coordinates 0..1 (x from the
        viewer's left, y from the top), the ``norm`` units of the ``Face`` stream; outside 0..1 = off screen."""
        if not (np.isfinite(gaze_x) and np.isfinite(gaze_y)):
            return float("nan"), float("nan")
        # the camera faces the viewer: its right is the viewer's left
        x_cm = -self.distance_cm * np.tan(np.radians(gaze_x))
        y_cm = -self.distance_cm * np.tan(np.radians(gaze_y)) - self.camera_above_cm
        return float(0.5 + x_cm / self.width_cm), float(y_cm / self.height_cm)

    def to_degrees(self, xy_cm: np.ndarray) -> np.ndarray:
        """Screen points (x from the centre, y down from the top edge, cm) → visual angles (deg)."""
        xy = np.atleast_2d(np.asarray(xy_cm, dtype=np.float64))
        ax = np.degrees(np.arctan2(xy[:, 0], self.distance_cm))
        ay = -np.degrees(np.arctan2(self.camera_above_cm + xy[:, 1], self.distance_cm))
        return np.column_stack([ax, ay])


def angular_error_deg(pred_cm: np.ndarray, true_cm: np.ndarray, distance_cm: float) -> np.ndarray:
    """Visual angle (deg) between predicted and true screen points seen from ``distance_cm``."""
    p = np.column_stack([np.atleast_2d(pred_cm), np.full(len(np.atleast_2d(pred_cm)), distance_cm)])
    t = np.column_stack([np.atleast_2d(true_cm), np.full(len(np.atleast_2d(true_cm)), distance_cm)])
    cos = np.sum(p * t, axis=1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(t, axis=1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


class GazeCalibration:
    """Maps (iris_x, iris_y, head_yaw, head_pitch) to screen cm by ridge regression.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> targets = np.array([(x, y) for y in (3, 15, 27) for x in (-22, 0, 22)], float)
    >>> feats = np.column_stack([targets[:, 0] / 40, targets[:, 1] / 40, rng.normal(0, 1, 9), rng.normal(0, 1, 9)])
    >>> cal = GazeCalibration(ScreenGeometry()).fit(feats, targets)
    >>> float(cal.error_deg(feats, targets).mean()) < 1.0
    True
    """

    def __init__(self, screen: ScreenGeometry, alpha: float = 1e-3) -> None:
        self.screen = screen
        self.alpha = alpha
        self._model = None

    def fit(self, features: np.ndarray, targets_cm: np.ndarray) -> "GazeCalibration":
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(targets_cm, dtype=np.float64)
        ok = np.all(np.isfinite(x), axis=1) & np.all(np.isfinite(y), axis=1)
        if ok.sum() < 5:
            raise ValueError(f"gaze calibration needs at least 5 valid samples, got {int(ok.sum())}")
        self._model = make_pipeline(StandardScaler(), Ridge(alpha=self.alpha)).fit(x[ok], y[ok])
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        if self._model is None:
            raise RuntimeError("gaze calibration used before fit()")
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        out = np.full((len(x), 2), np.nan)
        ok = np.all(np.isfinite(x), axis=1)
        if ok.any():
            out[ok] = self._model.predict(x[ok])
        return out

    def error_deg(self, features: np.ndarray, targets_cm: np.ndarray) -> np.ndarray:
        """Per-sample error in degrees of visual angle (screen centre as the origin of x)."""
        pred = self.predict(features)
        top = self.screen.camera_above_cm
        return angular_error_deg(pred + [0, top], np.asarray(targets_cm) + [0, top], self.screen.distance_cm)


class DriftTracker:
    """Tracks slow drift of calibrated gaze during passive viewing.

    Viewers of a film look at its centre on average; the running mean (time constant ``tau_s``)
    of on-screen gaze minus the screen centre estimates the drift, and :meth:`correct` removes it.

    >>> d = DriftTracker(ScreenGeometry(), tau_s=1.0)
    >>> for t in range(100):
    ...     _ = d.update(t * 0.1, np.array([3.0, 15.0]))
    >>> [round(float(v), 1) for v in d.offset]
    [3.0, 0.0]
    """

    def __init__(self, screen: ScreenGeometry, tau_s: float = 120.0) -> None:
        self.screen = screen
        self.tau_s = tau_s
        self.offset = np.zeros(2)
        self._last_t: float | None = None

    def update(self, t: float, gaze_cm: np.ndarray) -> np.ndarray:
        """Feed one calibrated gaze point (cm); returns the drift-corrected point."""
        g = np.asarray(gaze_cm, dtype=np.float64)
        if np.all(np.isfinite(g)):
            dt = 0.0 if self._last_t is None else max(t - self._last_t, 0.0)
            self._last_t = t
            a = 1.0 - np.exp(-dt / self.tau_s) if dt > 0 else 0.0
            centre = np.array([0.0, self.screen.height_cm / 2])
            self.offset += a * ((g - centre) - self.offset)
        return self.correct(g)

    def correct(self, gaze_cm: np.ndarray) -> np.ndarray:
        return np.asarray(gaze_cm, dtype=np.float64) - self.offset
