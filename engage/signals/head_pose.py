"""Head pose (yaw, pitch, roll in degrees) from face landmarks and a canonical 3-D face model.

Six landmarks of the FaceMesh topology (nose tip, chin, outer eye corners, mouth corners) are
matched to a generic adult face (arbitrary units, camera frame: x to the image right, y down,
z away from the camera): the pose that minimises the reprojection error, found by Levenberg-Marquardt
(a compiled loop) from the scaled-orthographic pose, and also from OpenCV's SQPnP when the face fits
the model badly; the camera is modelled as a pinhole with a focal length of one frame width and the
principal point at the centre. Angles are 0 for a face
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
from numba import njit

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
#: Levenberg-Marquardt from the scaled-orthographic pose converges in a few steps; this many at most
_MAX_STEPS = 30
_CENTROID = _MODEL.mean(axis=0)
#: the least-squares affine camera of the centred model: (2, 6) centred image points @ _AFFINE = (2, 3)
_AFFINE = np.linalg.solve((_MODEL - _CENTROID).T @ (_MODEL - _CENTROID), (_MODEL - _CENTROID).T).T
#: a fit whose rms reprojection error is above this fraction of the eye span also tries SQPnP's start
#: (real faces: 0.045 median, 0.079 at most on the talking-head clip; the generic model never fits exactly)
POOR_FIT = 0.1


def head_pose(points: np.ndarray, width: int, height: int) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of landmarks ``points`` (n, ≥2) in pixels of a width×height frame."""
    image = np.ascontiguousarray(points[_IDX, :2], dtype=np.float64)
    if not np.isfinite(image).all():
        return (float("nan"),) * 3
    span = math.hypot(*(image[3] - image[2]).tolist())
    if span <= 0:  # no eye span: a degenerate set of points
        return (float("nan"),) * 3
    f, cx, cy = float(width), width / 2.0, height / 2.0
    # Levenberg-Marquardt on the reprojection error, from the scaled-orthographic pose (a least-squares
    # fit, closed form): on faces it converges to the same pose as from SQPnP's global solution
    # (Terzakis & Lourakis, ECCV 2020) - within 0.0003° on the talking-head clip, 0.011° on 4,000
    # synthetic heads up to 60° of yaw - at a fifth of the cost.
    rot, t = np.empty((3, 3)), np.empty(3)
    cost = _fit_pose(_MODEL, _CENTROID, _AFFINE, image, f, cx, cy, rot, t)
    if not math.sqrt(cost / len(_IDX)) <= POOR_FIT * span:
        # the generic face fits these points badly (noise, a grimace, a tiny face): the pose is ambiguous
        # and the nearest minimum may be the wrong one, so SQPnP's global start is tried too
        import cv2

        ok, rvec, tvec = cv2.solvePnP(_MODEL, image, _camera(int(width), int(height)), None,
                                      flags=cv2.SOLVEPNP_SQPNP)
        if ok:
            rot2, t2 = cv2.Rodrigues(rvec)[0], tvec.reshape(3).copy()
            if _refine_pose(_MODEL, image, f, cx, cy, rot2, t2) < cost:
                rot, cost = rot2, 0.0
    if not math.isfinite(cost):
        return (float("nan"),) * 3
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
    (r00, _, r02), (r10, r11, r12), (_, _, r22) = np.asarray(rot, dtype=np.float64).tolist()
    pitch = math.degrees(math.asin(min(max(-r12, -1.0), 1.0)))
    yaw = math.degrees(math.atan2(r02, r22))
    roll = math.degrees(math.atan2(r10, r11))
    return -yaw, pitch, roll


@njit(cache=True, nogil=True)
def _reprojection(model, image, f, cx, cy, rot, t, res, jac) -> float:
    """Sum of squared reprojection errors; the residuals into ``res`` and, if ``jac`` has rows, their
    Jacobian in (ω, t) for the update R ← exp([ω]×) R, t ← t + δt. Infinite when a point is behind
    the camera."""
    cost = 0.0
    for i in range(model.shape[0]):
        y0 = rot[0, 0] * model[i, 0] + rot[0, 1] * model[i, 1] + rot[0, 2] * model[i, 2]
        y1 = rot[1, 0] * model[i, 0] + rot[1, 1] * model[i, 1] + rot[1, 2] * model[i, 2]
        y2 = rot[2, 0] * model[i, 0] + rot[2, 1] * model[i, 1] + rot[2, 2] * model[i, 2]
        x, y, z = y0 + t[0], y1 + t[1], y2 + t[2]
        if z <= 0.0:
            return math.inf
        ru, rv = f * x / z + cx - image[i, 0], f * y / z + cy - image[i, 1]
        res[2 * i], res[2 * i + 1] = ru, rv
        cost += ru * ru + rv * rv
        if jac.shape[0]:
            fz, fxz, fyz = f / z, f * x / (z * z), f * y / (z * z)
            # the camera point moves by ω × (R X) for a small rotation ω, and by δt
            ju, jv = jac[2 * i], jac[2 * i + 1]
            ju[0], ju[1], ju[2] = -fxz * y1, fz * y2 + fxz * y0, -fz * y1
            jv[0], jv[1], jv[2] = -fz * y2 - fyz * y1, fyz * y0, fz * y0
            ju[3], ju[4], ju[5] = fz, 0.0, -fxz
            jv[3], jv[4], jv[5] = 0.0, fz, -fyz
    return cost


@njit(cache=True, nogil=True)
def _rotate(omega, rot, out) -> None:
    """out = exp([ω]×) @ rot (Rodrigues' formula)."""
    theta = math.sqrt(omega[0] ** 2 + omega[1] ** 2 + omega[2] ** 2)
    s, c = (math.sin(theta) / theta, (1.0 - math.cos(theta)) / (theta * theta)) if theta > 1e-12 else (1.0, 0.5)
    kx, ky, kz = omega[0], omega[1], omega[2]
    e = np.empty((3, 3))
    e[0, 0], e[0, 1], e[0, 2] = 1.0 - c * (ky * ky + kz * kz), -s * kz + c * kx * ky, s * ky + c * kx * kz
    e[1, 0], e[1, 1], e[1, 2] = s * kz + c * kx * ky, 1.0 - c * (kx * kx + kz * kz), -s * kx + c * ky * kz
    e[2, 0], e[2, 1], e[2, 2] = -s * ky + c * kx * kz, s * kx + c * ky * kz, 1.0 - c * (kx * kx + ky * ky)
    for i in range(3):
        for j in range(3):
            out[i, j] = e[i, 0] * rot[0, j] + e[i, 1] * rot[1, j] + e[i, 2] * rot[2, j]


@njit(cache=True, nogil=True)
def _solve_spd(a, g, out) -> bool:
    """out = a⁻¹ g for a symmetric positive definite 6×6 ``a`` (Cholesky); False if it is not."""
    n = a.shape[0]
    low = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1):
            acc = a[i, j]
            for k in range(j):
                acc -= low[i, k] * low[j, k]
            if i == j:
                if acc <= 0.0:
                    return False
                low[i, i] = math.sqrt(acc)
            else:
                low[i, j] = acc / low[j, j]
    for i in range(n):
        acc = g[i]
        for k in range(i):
            acc -= low[i, k] * out[k]
        out[i] = acc / low[i, i]
    for i in range(n - 1, -1, -1):
        acc = out[i]
        for k in range(i + 1, n):
            acc -= low[k, i] * out[k]
        out[i] = acc / low[i, i]
    return True


@njit(cache=True, nogil=True)
def _dot(a, b) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


@njit(cache=True, nogil=True)
def _fit_pose(model, centroid, affine, image, f, cx, cy, rot, t) -> float:
    """The scaled-orthographic pose of the points (into ``rot``, ``t``), refined by :func:`_refine_pose`;
    its sum of squared reprojection errors (infinite if there is none)."""
    n = image.shape[0]
    mx, my = 0.0, 0.0
    for i in range(n):
        mx += (image[i, 0] - cx) / f
        my += (image[i, 1] - cy) / f
    mx, my = mx / n, my / n
    r1, r2 = np.zeros(3), np.zeros(3)
    for i in range(n):
        ax, ay = (image[i, 0] - cx) / f - mx, (image[i, 1] - cy) / f - my
        for j in range(3):
            r1[j] += ax * affine[i, j]
            r2[j] += ay * affine[i, j]
    # (scalar arithmetic rather than @ and np.cross: those bring in BLAS, which makes numba's first
    # compilation of this module take seconds longer)
    s1, s2 = math.sqrt(_dot(r1, r1)), math.sqrt(_dot(r2, r2))
    if not (s1 > 0 and s2 > 0):
        return math.inf
    r1 /= s1
    r2 -= _dot(r2, r1) * r1  # the nearest orthonormal pair (Gram-Schmidt), then their cross product
    norm = math.sqrt(_dot(r2, r2))
    if not norm > 0:
        return math.inf
    r2 /= norm
    rot[0, :], rot[1, :] = r1, r2
    rot[2, 0], rot[2, 1], rot[2, 2] = r1[1] * r2[2] - r1[2] * r2[1], r1[2] * r2[0] - r1[0] * r2[2], \
        r1[0] * r2[1] - r1[1] * r2[0]
    depth = 2.0 / (s1 + s2)  # the model's centroid's distance, in the model's units
    for j in range(3):
        t[j] = -(rot[j, 0] * centroid[0] + rot[j, 1] * centroid[1] + rot[j, 2] * centroid[2])
    t[0] += mx * depth
    t[1] += my * depth
    t[2] += depth
    return _refine_pose(model, image, f, cx, cy, rot, t)


@njit(cache=True, nogil=True)
def _refine_pose(model, image, f, cx, cy, rot, t) -> float:
    """Levenberg-Marquardt (Marquardt's scaling) on the reprojection error, from and into (``rot``, ``t``);
    the final sum of squared errors."""
    m = 2 * model.shape[0]
    res, jac, none = np.empty(m), np.empty((m, 6)), np.empty((0, 6))
    trial_res, trial_rot, trial_t = np.empty(m), np.empty((3, 3)), np.empty(3)
    a, damped, g, step = np.empty((6, 6)), np.empty((6, 6)), np.empty(6), np.empty(6)
    cost = _reprojection(model, image, f, cx, cy, rot, t, res, jac)
    damping = 1e-3
    for _ in range(_MAX_STEPS):
        if not math.isfinite(cost) or cost == 0.0:
            return cost
        for i in range(6):
            g[i] = 0.0
            for k in range(m):
                g[i] -= jac[k, i] * res[k]
            for j in range(6):
                acc = 0.0
                for k in range(m):
                    acc += jac[k, i] * jac[k, j]
                a[i, j] = acc
        improved = False
        while damping < 1e10:
            damped[:, :] = a
            for i in range(6):
                damped[i, i] *= 1.0 + damping
            if _solve_spd(damped, g, step):
                _rotate(step[:3], rot, trial_rot)
                for i in range(3):
                    trial_t[i] = t[i] + step[3 + i]
                trial = _reprojection(model, image, f, cx, cy, trial_rot, trial_t, trial_res, none)
                if trial < cost:
                    improved = True
                    break
            damping *= 10.0
        if not improved:
            return cost
        rot[:, :] = trial_rot
        t[:] = trial_t
        damping = max(damping / 10.0, 1e-9)
        done = cost - trial <= 1e-12 * cost
        cost = _reprojection(model, image, f, cx, cy, rot, t, res, jac)
        if done:
            return cost
    return cost
