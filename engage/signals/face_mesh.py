"""Face tracking with MediaPipe: one viewer's 478 landmarks per frame, and the per-frame features.

Two back-ends give the same :class:`FaceLandmarks`:

- :class:`FaceMeshTracker` - MediaPipe FaceMesh with refined iris landmarks, from the models
  bundled in the ``mediapipe==0.10.14`` wheel (works offline);
- :class:`FaceLandmarkerTracker` - a user-supplied FaceLandmarker ``.task`` file through the
  Tasks API, which adds the 52 blendshapes (``eyeBlinkLeft``, ``jawOpen`` …).

Both track **one viewer** by default (``max_faces=1``): MediaPipe follows the face it has found
from frame to frame and runs its face detector again only when it loses it, so a second person
coming into view does not take the viewer's place. Asking for more faces costs the detector on
every frame (3.7 → 5.2 ms p50 at 640×480 on one core); with several, the one nearest to where the
viewer was is kept (the largest at the start or after the viewer was lost). Several viewers in
front of one camera are :mod:`engage.signals.multi_face`'s.

:class:`FaceAnalyzer` turns a BGR frame into one row of the ``Face`` stream contract:
``face_present, ear_left, ear_right, gaze_on_screen, gaze_x, gaze_y`` (screen coordinates 0..1,
as the simulated viewer's), ``head_yaw, head_pitch, head_roll, mouth_open`` plus ``gaze_yaw,
gaze_pitch`` (degrees), ``iris_x, iris_y`` (eye-in-head gaze, -1..1), ``head_motion``
(landmark motion energy, face widths per second) and the mean ``r, g, b`` of the face's skin
for rPPG (:data:`FACE_OVAL`, its edge eroded away). Every channel but ``face_present`` is NaN when no face is found.

>>> import numpy as np
>>> analyzer = FaceAnalyzer()                     # doctest: +SKIP
>>> row = analyzer(np.zeros((480, 640, 3), np.uint8), timestamp=0.0)   # doctest: +SKIP
>>> row[0]                                        # a black frame: no face   # doctest: +SKIP
0.0
"""

from __future__ import annotations

import logging
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter

import numpy as np
from numba import njit

from engage.core.errors import ConfigError, InputFileError

from .gaze import ScreenGeometry, gaze_angles, iris_offsets
from .head_pose import head_pose

log = logging.getLogger(__name__)

#: Eye aspect ratio landmarks (corner, upper ×2, corner, lower ×2) of the FaceMesh topology.
#: "Left"/"right" are the viewer's own.
LEFT_EYE = (362, 385, 387, 263, 373, 380)
RIGHT_EYE = (33, 160, 158, 133, 153, 144)
MOUTH = (13, 14, 78, 308)  # inner upper lip, inner lower lip, mouth corners
#: The face's outline (FaceMesh's face oval, in order) - the rPPG skin region once its edge is eroded.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176,
             149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
#: the skin region's edge is eroded by this fraction of the face's width: hair, background and the jaw's moving edge
#: mix into the pixels at the outline. On UBFC-rPPG subject 1 (a real webcam, 2.5 s) the eroded oval's green follows
#: the oximeter's pulse at r = 0.69-0.79 for erosions of 2-10 % (measured); the forehead-and-cheeks polygons used
#: before reached 0.57 (their forehead strip reaches the brows, which move with every blink).
SKIN_ERODE = 0.05
FACE_CHANNELS = ("face_present", "ear_left", "ear_right", "gaze_on_screen", "gaze_x", "gaze_y", "head_yaw",
                 "head_pitch", "head_roll", "mouth_open", "gaze_yaw", "gaze_pitch", "iris_x", "iris_y",
                 "head_motion", "r", "g", "b")
FACE_UNITS = ("bool", "ratio", "ratio", "bool", "norm", "norm", "deg", "deg", "deg", "ratio", "deg", "deg",
              "ratio", "ratio", "face/s", "a.u.", "a.u.", "a.u.")
#: Extra channels with a FaceLandmarker .task model: blendshape scores 0..1 (channel ← blendshape).
BLENDSHAPE_CHANNELS = {"bs_eye_blink_left": "eyeBlinkLeft", "bs_eye_blink_right": "eyeBlinkRight",
                       "bs_jaw_open": "jawOpen", "bs_brow_down_left": "browDownLeft",
                       "bs_brow_down_right": "browDownRight"}


@dataclass
class FaceLandmarks:
    """One face: ``points`` (n, 3) in pixels (z in the same scale), optional blendshapes."""

    points: np.ndarray
    width: int
    height: int
    blendshapes: dict[str, float] = field(default_factory=dict)
    _center: tuple[float, float] | None = field(default=None, repr=False, compare=False)
    _size: float | None = field(default=None, repr=False, compare=False)

    @property
    def center(self) -> np.ndarray:
        """The landmarks' mean (x, y) in pixels."""
        return np.array(self.center_xy)

    @property
    def center_xy(self) -> tuple[float, float]:
        """The landmarks' mean (x, y) in pixels, as two floats."""
        if self._center is None:
            self._measure()
        return self._center

    @property
    def size(self) -> float:
        """The diagonal of the landmarks' bounding box (pixels)."""
        if self._size is None:
            self._measure()
        return self._size

    def _measure(self) -> None:
        if len(self.points):
            cx, cy, self._size = _extent(np.asarray(self.points, dtype=np.float64))
            self._center = (cx, cy)
        else:
            self._center, self._size = (math.nan, math.nan), math.nan


def eye_aspect_ratio(points: np.ndarray, idx: tuple[int, ...]) -> float:
    """Soukupová & Čech's eye aspect ratio: lid opening over eye width (about 0.3 open, < 0.15 shut)."""
    return _eye_aspect_ratio(_landmark_table(points, max(idx) + 1), *idx)


def mouth_opening(points: np.ndarray) -> float:
    """Inner-lip opening over mouth width (about 0 closed, > 0.6 in a yawn)."""
    return _mouth_opening(_landmark_table(points, max(MOUTH) + 1))


#: the FaceMesh topology's landmarks without the refined iris: every index the measures read is below it
MESH_LANDMARKS = 468


def _landmark_table(points, at_least: int = MESH_LANDMARKS) -> np.ndarray:
    """``points`` as the (n, ≥2) float64 table the compiled measures index without bounds checks."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] < 2 or pts.shape[0] < at_least:
        raise ValueError(f"expected at least {at_least} landmarks of (x, y), got an array of shape {pts.shape}")
    return pts


# The per-frame measures are compiled: on a few landmarks NumPy's per-call cost dwarfs the arithmetic,
# and right after MediaPipe's inference every Python call runs from cold caches.
@njit(cache=True, nogil=True)
def _eye_aspect_ratio(p, corner, up1, up2, corner2, low2, low1) -> float:
    width = math.hypot(p[corner, 0] - p[corner2, 0], p[corner, 1] - p[corner2, 1])
    if width <= 0:
        return math.nan
    return (math.hypot(p[up1, 0] - p[low1, 0], p[up1, 1] - p[low1, 1])
            + math.hypot(p[up2, 0] - p[low2, 0], p[up2, 1] - p[low2, 1])) / (2.0 * width)


@njit(cache=True, nogil=True)
def _mouth_opening(p) -> float:
    upper, lower, left, right = MOUTH
    width = math.hypot(p[left, 0] - p[right, 0], p[left, 1] - p[right, 1])
    return math.hypot(p[upper, 0] - p[lower, 0], p[upper, 1] - p[lower, 1]) / width if width > 0 else math.nan


@njit(cache=True, nogil=True)
def _extent(points) -> tuple[float, float, float]:
    """(x, y) of the landmarks' mean and the diagonal of their bounding box."""
    sx, sy = 0.0, 0.0
    lx, ly, hx, hy = math.inf, math.inf, -math.inf, -math.inf
    for i in range(points.shape[0]):
        x, y = points[i, 0], points[i, 1]
        sx += x
        sy += y
        lx, hx, ly, hy = min(lx, x), max(hx, x), min(ly, y), max(hy, y)
    n = points.shape[0]
    return sx / n, sy / n, math.hypot(hx - lx, hy - ly)


@njit(cache=True, nogil=True)
def _mean_displacement(points, previous) -> float:
    """The landmarks' mean distance from where they were (pixels)."""
    total = 0.0
    for i in range(points.shape[0]):
        total += math.hypot(points[i, 0] - previous[i, 0], points[i, 1] - previous[i, 1])
    return total / points.shape[0]


def to_rgb(frame_bgr: np.ndarray) -> np.ndarray:
    """A contiguous RGB copy of a BGR frame (OpenCV's conversion: ~20x faster than a numpy flip copy)."""
    import cv2

    if frame_bgr.dtype == np.uint8 and frame_bgr.ndim == 3 and frame_bgr.shape[2] == 3:
        return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(frame_bgr[:, :, ::-1])


def landmarks_array(landmark_list, scale=None) -> np.ndarray:
    """(n, 3) float64 normalised x, y, z of a MediaPipe ``NormalizedLandmarkList``, times ``scale`` if given.

    Reads the protobuf's wire bytes in one compiled pass when every landmark carries just x, y, z
    (as FaceMesh's do; far faster than a Python loop over 478 landmarks), and falls back to the
    loop for anything else (visibility or presence set, another layout).
    """
    xyz = _wire_xyz(landmark_list.SerializeToString(), len(landmark_list.landmark), scale)
    if xyz is None:
        xyz = np.array([(p.x, p.y, p.z) for p in landmark_list.landmark], dtype=np.float64).reshape(-1, 3)
        if scale is not None:
            xyz = xyz * np.asarray(scale, dtype=np.float64)
    return xyz


#: the wire bytes of one serialised ``NormalizedLandmark`` with only x, y, z set, as an entry of a
#: ``NormalizedLandmarkList``: tag 1 length-delimited (0x0A), 15 bytes, then fields 1-3 as fixed32
#: (tags 0x0D, 0x15, 0x1D) each followed by a little-endian float32 - at byte offsets 3, 8 and 13
_LANDMARK_BYTES = 17


def _wire_xyz(raw: bytes, n: int, scale=None) -> np.ndarray | None:
    """x, y, z (times ``scale``) of ``n`` landmarks read from their wire bytes, or None if laid out otherwise."""
    if not n or len(raw) != n * _LANDMARK_BYTES:
        return None
    sx, sy, sz = (1.0, 1.0, 1.0) if scale is None else (float(v) for v in scale)
    out = np.empty((n, 3))
    return out if _read_wire(np.frombuffer(raw, np.uint8), sx, sy, sz, out) else None


@njit(cache=True, nogil=True)
def _read_wire(raw, sx: float, sy: float, sz: float, out) -> bool:
    bits = np.empty(3, np.uint32)
    values = bits.view(np.float32)
    for i in range(out.shape[0]):
        at = _LANDMARK_BYTES * i
        if raw[at] != 0x0A or raw[at + 1] != 15 or raw[at + 2] != 0x0D or raw[at + 7] != 0x15 or raw[at + 12] != 0x1D:
            return False
        for j in range(3):
            b = at + 3 + 5 * j
            bits[j] = (np.uint32(raw[b]) | (np.uint32(raw[b + 1]) << 8) | (np.uint32(raw[b + 2]) << 16)
                       | (np.uint32(raw[b + 3]) << 24))
        out[i, 0], out[i, 1], out[i, 2] = np.float64(values[0]) * sx, np.float64(values[1]) * sy, \
            np.float64(values[2]) * sz
    return True


class _OneViewer:
    """Chooses the tracked viewer among several faces: nearest to the last position, else largest."""

    def __init__(self) -> None:
        self.last_center: tuple[float, float] | None = None
        self.last_size = 0.0

    def _distance(self, face: FaceLandmarks) -> float:
        (x, y), (lx, ly) = face.center_xy, self.last_center
        return math.hypot(x - lx, y - ly)

    def pick(self, faces: list[FaceLandmarks]) -> FaceLandmarks | None:
        if not faces:
            self.last_center = None
            return None
        if self.last_center is None:
            face = max(faces, key=lambda f: f.size)
        elif len(faces) == 1:
            face = faces[0]
            if self._distance(face) > 0.75 * max(self.last_size, 1.0):
                log.debug("face jumped: a different person or a re-detection")
        else:
            face = min(faces, key=self._distance)
        self.last_center, self.last_size = face.center_xy, face.size
        return face


class FaceMeshTracker:
    """MediaPipe FaceMesh (bundled model, refined iris) following one viewer.

    >>> tracker = FaceMeshTracker()                       # doctest: +SKIP
    >>> tracker(frame_bgr)                                # FaceLandmarks or None  # doctest: +SKIP
    """

    def __init__(self, max_faces: int = 1, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, static_image: bool = False) -> None:
        try:
            import mediapipe as mp
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ConfigError("face tracking needs MediaPipe: pip install 'engage[face]'") from exc
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static_image, max_num_faces=max_faces, refine_landmarks=True,
            min_detection_confidence=min_detection_confidence, min_tracking_confidence=min_tracking_confidence)
        self._viewer = _OneViewer()

    def __call__(self, frame_bgr: np.ndarray, timestamp: float | None = None) -> FaceLandmarks | None:
        h, w = frame_bgr.shape[:2]
        result = self._mesh.process(to_rgb(frame_bgr))
        faces = [FaceLandmarks(landmarks_array(lm, (w, h, w)), w, h) for lm in result.multi_face_landmarks or ()]
        return self._viewer.pick(faces)

    def close(self) -> None:
        self._mesh.close()


class FaceLandmarkerTracker:
    """A user-supplied MediaPipe FaceLandmarker ``.task`` model (adds blendshapes).

    Raises :class:`InputFileError` naming the file when it is missing or not a valid model.
    With it, :class:`FaceAnalyzer` adds the :data:`BLENDSHAPE_CHANNELS`.

    >>> FaceLandmarkerTracker("missing.task")
    Traceback (most recent call last):
    ...
    engage.core.errors.InputFileError: missing.task: FaceLandmarker model file not found
    """

    has_blendshapes = True

    def __init__(self, task_path: str | Path, max_faces: int = 1) -> None:
        path = Path(task_path)
        if not path.is_file():
            raise InputFileError(f"{path}: FaceLandmarker model file not found")
        if not zipfile.is_zipfile(path):
            raise InputFileError(f"{path}: not a MediaPipe .task bundle (expected a zip archive with "
                                 f"face_detector.tflite and face_landmarks_detector.tflite)")
        from mediapipe.tasks.python import BaseOptions, vision

        try:
            options = vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(path)), running_mode=vision.RunningMode.VIDEO,
                num_faces=max_faces, output_face_blendshapes=True)
            self._landmarker = vision.FaceLandmarker.create_from_options(options)
        except Exception as exc:  # noqa: BLE001 - MediaPipe raises RuntimeError/ValueError with C++ text
            raise InputFileError(f"{path}: not a valid FaceLandmarker model ({str(exc).splitlines()[0]})") from exc
        self._viewer = _OneViewer()
        self._last_ms = -1

    def __call__(self, frame_bgr: np.ndarray, timestamp: float | None = None) -> FaceLandmarks | None:
        import mediapipe as mp

        h, w = frame_bgr.shape[:2]
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=to_rgb(frame_bgr))
        ms = int(round((timestamp or 0.0) * 1000))
        ms = max(ms, self._last_ms + 1)  # the Tasks API needs strictly increasing timestamps
        self._last_ms = ms
        result = self._landmarker.detect_for_video(image, ms)
        faces = []
        for k, lm in enumerate(result.face_landmarks or ()):
            pts = np.array([(p.x * w, p.y * h, p.z * w) for p in lm], dtype=np.float64)
            shapes = {c.category_name: float(c.score) for c in result.face_blendshapes[k]} \
                if result.face_blendshapes else {}
            faces.append(FaceLandmarks(pts, w, h, shapes))
        return self._viewer.pick(faces)

    def close(self) -> None:
        self._landmarker.close()


_FACE_OVAL_INDEX = np.array(FACE_OVAL)


def _roi_mean(frame_bgr: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Mean (r, g, b) of the face's skin: the face oval with its edge eroded (NaN when it falls outside the frame)."""
    import cv2

    h, w = frame_bgr.shape[:2]
    oval = np.empty((len(_FACE_OVAL_INDEX), 2), np.int32)
    x0, y0, x1, y1, k = _oval_in_box(_landmark_table(points), _FACE_OVAL_INDEX, w, h, oval)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.full(3, np.nan)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [oval], 1)
    if frame_bgr.dtype == np.uint8 and frame_bgr.flags.c_contiguous:
        rgb = np.empty(3)
        count = _eroded_mean(frame_bgr.reshape(h, -1), mask, x0, y0, max(k, 1), rgb)
        if count >= 0:  # -1: a row of the outline is not one run of pixels; OpenCV's erosion below handles it
            return rgb if count >= 4 else np.full(3, np.nan)
    if k > 1:
        mask = cv2.erode(mask, np.ones((k, k), np.uint8))
    if cv2.countNonZero(mask) < 4:
        return np.full(3, np.nan)
    b, g, r = cv2.mean(frame_bgr[y0:y1, x0:x1], mask=mask)[:3]
    return np.array([r, g, b])


@njit(cache=True, nogil=True)
def _oval_in_box(points, index, w: int, h: int, oval) -> tuple[int, int, int, int, int]:
    """The face oval's landmarks rounded to pixels, into ``oval`` relative to their bounding box clipped to
    the w×h frame; that box (x0, y0, x1, y1) and the erosion's size in pixels. An empty box if a point is
    not finite."""
    lx, ly, hx, hy = 1 << 30, 1 << 30, -(1 << 30), -(1 << 30)
    for j in range(len(index)):
        x, y = points[index[j], 0], points[index[j], 1]
        if not (abs(x) < 1e9 and abs(y) < 1e9):
            return 0, 0, 0, 0, 0
        oval[j, 0], oval[j, 1] = round(x), round(y)  # half to even, as NumPy's round
        lx, hx = min(lx, oval[j, 0]), max(hx, oval[j, 0])
        ly, hy = min(ly, oval[j, 1]), max(hy, oval[j, 1])
    x0, y0 = min(max(lx, 0), w), min(max(ly, 0), h)
    x1, y1 = min(max(hx + 1, 0), w), min(max(hy + 1, 0), h)
    for j in range(len(index)):
        oval[j, 0] -= x0
        oval[j, 1] -= y0
    return x0, y0, x1, y1, round(SKIN_ERODE * (hx - lx))


@njit(cache=True, nogil=True)
def _eroded_mean(rows, mask, x0, y0, k, rgb):
    """The mean colour under ``mask`` (at x0, y0 in a BGR frame whose ``rows`` are (height, width × 3)) eroded
    by a k×k square, into ``rgb``; the pixel count, or -1 when a row of the mask is not a single run.

    Exactly ``cv2.mean(frame[...], mask=cv2.erode(mask, np.ones((k, k))))`` - the same pixels (the
    kernel's anchor at its centre, nothing outside the mask's box erodes it) and the same arithmetic
    (integer sums times one over the count) - but in one pass over the rows' runs: OpenCV's masked
    mean of a 3-channel image took two thirds of the skin region's time.
    """
    h, w = mask.shape
    left, right = np.empty(h, np.int64), np.empty(h, np.int64)
    for r in range(h):
        lo, hi = 0, w - 1
        while lo < w and mask[r, lo] == 0:
            lo += 1
        while hi > lo and mask[r, hi] == 0:
            hi -= 1
        if lo == w:
            lo = hi = -1
        else:
            n = 0
            for c in range(lo, hi + 1):  # counted, not searched: a loop without an exit runs vectorised
                n += mask[r, c] != 0
            if n != hi - lo + 1:
                return -1
        left[r], right[r] = lo, hi
    a = k // 2  # OpenCV's anchor: the kernel covers offsets -a .. k - 1 - a
    b = k - 1 - a
    count, s0, s1, s2 = 0, 0, 0, 0
    for y in range(h):
        lo, hi = 0, w - 1
        for r in range(max(y - a, 0), min(y + b + 1, h)):
            if left[r] < 0:
                hi = -1
                break
            # a run touching the box's edge goes on beyond it (OpenCV's border for erosion)
            lo = max(lo, left[r] + a if left[r] > 0 else 0)
            hi = min(hi, right[r] - b if right[r] < w - 1 else w - 1)
        if hi < lo:
            continue
        count += hi - lo + 1
        run = rows[y0 + y, 3 * (x0 + lo):3 * (x0 + hi + 1)]
        # a row's sums fit 32 bits (at most 255 × the frame's width), which lets the loop run vectorised
        r0, r1, r2 = np.uint32(0), np.uint32(0), np.uint32(0)
        for j in range(0, run.shape[0], 3):
            r0 += np.uint32(run[j])
            r1 += np.uint32(run[j + 1])
            r2 += np.uint32(run[j + 2])
        s0, s1, s2 = s0 + r0, s1 + r1, s2 + r2
    if count > 0:
        scale = 1.0 / count
        rgb[0], rgb[1], rgb[2] = s2 * scale, s1 * scale, s0 * scale
    return count


_COMPILED = False


def _prepare_compiled_steps() -> None:
    """Run every compiled per-frame step once on a made-up face, so that numba's first compilation (about
    ten seconds, once per installation: later runs load it from numba's cache in a fraction of a second)
    happens when the analyzer is built, not on a session's first frames."""
    global _COMPILED
    if _COMPILED:
        return
    start = perf_counter()
    points = np.random.default_rng(0).normal((32.0, 24.0, 0.0), (8.0, 8.0, 1.0), (478, 3))
    frame = np.zeros((48, 64, 3), np.uint8)
    head_pose(points, 64, 48)
    iris_offsets(points)
    _eye_aspect_ratio(points, *LEFT_EYE)
    _mouth_opening(points)
    _extent(points)
    _mean_displacement(points, points)
    _roi_mean(frame, points)
    _wire_xyz(bytes(_LANDMARK_BYTES), 1)
    _COMPILED = True
    if perf_counter() - start > 1.0:
        log.info("face pipeline's compiled steps built in %.1f s (once per installation)", perf_counter() - start)


class FaceAnalyzer:
    """BGR frame → one row of the ``Face`` stream (:data:`FACE_CHANNELS`); see the module docstring.

    ``tracker`` is a :class:`FaceMeshTracker` (default) or :class:`FaceLandmarkerTracker`;
    ``screen`` the screen geometry that decides on-screen gaze. With ``profile=True`` the time of
    each step of every frame is kept in ``step_ms`` (``track``, ``head_pose``, ``gaze``,
    ``eyes_mouth_motion``, ``roi``; milliseconds), which ``benchmarks/face.py`` prints.
    """

    STEPS = ("track", "head_pose", "gaze", "eyes_mouth_motion", "roi")

    def __init__(self, tracker=None, screen: ScreenGeometry | None = None, rppg_roi: bool = True,
                 profile: bool = False) -> None:
        self.tracker = tracker if tracker is not None else FaceMeshTracker()
        self.blendshapes = bool(getattr(self.tracker, "has_blendshapes", False))
        extra = tuple(BLENDSHAPE_CHANNELS) if self.blendshapes else ()
        self.channels = FACE_CHANNELS + extra
        self.units = FACE_UNITS + ("score",) * len(extra)
        self.screen = screen or ScreenGeometry()
        self.rppg_roi = rppg_roi
        self._prev: tuple[float, np.ndarray, float] | None = None
        self._warned = False
        self.last: FaceLandmarks | None = None
        self.step_ms: dict[str, list[float]] | None = {k: [] for k in self.STEPS} if profile else None
        _prepare_compiled_steps()

    def __call__(self, frame_bgr: np.ndarray, timestamp: float) -> np.ndarray:
        row = np.full(len(self.channels), np.nan)
        row[0] = 0.0
        if frame_bgr is None or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.size == 0:
            self._prev = None
            return row
        clock = perf_counter if self.step_ms is not None else None
        t0 = clock() if clock else 0.0
        face = self.tracker(frame_bgr, timestamp)
        self.last = face
        if face is None:
            self._prev = None
            return row
        t1 = clock() if clock else 0.0
        try:
            pts = _landmark_table(face.points)
        except ValueError as exc:  # a tracker of another topology: no face this frame, said once
            if not self._warned:
                log.warning("face tracker gave unusable landmarks (%s): frames counted without a face", exc)
                self._warned = True
            self._prev = None
            return row
        yaw, pitch, roll = head_pose(pts, face.width, face.height)
        t2 = clock() if clock else 0.0
        ix, iy = iris_offsets(pts)
        gx, gy = gaze_angles(yaw, pitch, ix, iy)
        on = self.screen.on_screen(gx, gy)
        nx, ny = self.screen.to_norm(gx, gy)
        t3 = clock() if clock else 0.0
        motion = np.nan
        if self._prev is not None and timestamp > self._prev[0] and len(pts) == len(self._prev[1]):
            motion = _mean_displacement(pts, self._prev[1]) / max(self._prev[2], 1.0) / (timestamp - self._prev[0])
        self._prev = (timestamp, pts.copy(), face.size)
        ear_l, ear_r, mouth = _eye_aspect_ratio(pts, *LEFT_EYE), _eye_aspect_ratio(pts, *RIGHT_EYE), _mouth_opening(pts)
        t4 = clock() if clock else 0.0
        rgb = _roi_mean(frame_bgr, pts) if self.rppg_roi else np.full(3, np.nan)
        if clock:
            t5 = clock()
            for k, a, b in zip(self.STEPS, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5)):
                self.step_ms[k].append(1e3 * (b - a))
        values = [1.0, ear_l, ear_r, float(on), nx, ny, yaw, pitch, roll, mouth, gx, gy, ix, iy, motion, *rgb.tolist()]
        if self.blendshapes:
            values += [face.blendshapes.get(name, math.nan) for name in BLENDSHAPE_CHANNELS.values()]
        return np.array(values)

    def close(self) -> None:
        self.tracker.close()
