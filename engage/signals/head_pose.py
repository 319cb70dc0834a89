"""Head pose (yaw, pitch, roll in degrees) from face landmarks and a canonical 3-D face model.

Six landmarks of the FaceMesh topology (nose tip, chin, outer eye corners, mouth corners) are
matched to a generic adult face (arbitrary units, camera frame: x to the image right, y down,
z away from the camera) with OpenCV's ``solvePnP`` (SQPnP, refined by Levenberg-Marquardt); the camera is modelled as a pinhole with a
focal length of one frame width and the principal point at the centre. Angles are 0 for a face
looking straight into the camera; ``yaw`` > 0 when the face turns toward the image's right,
``pitch`` > 0 when it looks up, ``roll`` > 0 when it tilts clockwise in the image.

>>> import numpy as np
>>> pts = np.zeros((478, 3))
>>> for i, (x, y, z) in CANONICAL.items():
...     pts[i] = (320 + 0.4 * x, 240 + 0.4 * y, 0)
>>> all(abs(a) < 2 for a in head_pose(pts, 640, 480))   # a flat drawing of a frontal face
True
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

#: FaceMesh landmark → canonical model point (x right, y down, z away; ~0.2 mm per unit).
CANONICAL = {
    1: (0.0, 0.0, 0.0),           # nose tip
    152: (0.0, 330.0, 65.0),      # chin
    33: (-225.0, -170.0, 135.0),  # outer corner of the eye on the image's left
    263: (225.0, -170.0, 135.0),  # outer corner of the eye on the image's right
    61: (-150.0, 150.0, 125.0),   # mouth corner, image left
    291: (150.0, 150.0, 125.0),   # mouth corner, image right
}
_IDX = list(CANONICAL)
_MODEL = np.array([CANONICAL[i] for i in _IDX], dtype=np.float64)
#: Levenberg-Marquardt from SQPnP's global solution converges in ~3 steps; 5 at most
_REFINE = (3, 5, 1e-9)  # cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, iterations, epsilon


def head_pose(points: np.ndarray, width: int, height: int) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of landmarks ``points`` (n, ≥2) in pixels of a width×height frame."""
    import cv2

    image = np.ascontiguousarray(points[_IDX, :2], dtype=np.float64)
    if not np.isfinite(image).all():
        return (float("nan"),) * 3
    camera = _camera(int(width), int(height))
    if math.hypot(*(image[3] - image[2]).tolist()) <= 0:  # no eye span: a degenerate set of points
        return (float("nan"),) * 3
    # SQPnP (Terzakis & Lourakis, ECCV 2020) finds the global minimum, so never the mirrored (face
    # turned away from the camera) solution; Levenberg-Marquardt then refines it on the image
    # reprojection error. Together about a third of the cost of the iterative solver alone.
    ok, rvec, tvec = cv2.solvePnP(_MODEL, image, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        return (float("nan"),) * 3
    rvec, _ = cv2.solvePnPRefineLM(_MODEL, image, camera, None, rvec, tvec, criteria=_REFINE)
    rot, _ = cv2.Rodrigues(rvec)
    return rotation_to_angles(rot)


@lru_cache(maxsize=8)
def _camera(width: int, height: int) -> np.ndarray:
    """The pinhole camera of a width×height frame: focal length one frame width, principal point at the centre."""
    f = float(width)
    camera = np.array([[f, 0, width / 2.0], [0, f, height / 2.0], [0, 0, 1]], dtype=np.float64)
    camera.setflags(write=False)
    return camera


def rotation_to_angles(rot: np.ndarray) -> tuple[float, float, float]:
    """A model→camera rotation matrix → (yaw, pitch, roll) in degrees (conventions: module docstring)."""
    # R = Ry(yaw') Rx(pitch') Rz(roll'): decompose, then map to the sign conventions above
    sy = float(np.clip(-rot[1, 2], -1.0, 1.0))
    pitch = np.degrees(np.arcsin(sy))
    yaw = np.degrees(np.arctan2(rot[0, 2], rot[2, 2]))
    roll = np.degrees(np.arctan2(rot[1, 0], rot[1, 1]))
    return float(-yaw), float(pitch), float(roll)
