"""Per-frame face features → attention, blinks, PERCLOS, yawns and head motion.

Input: a ``Face`` stream with at least ``face_present``; it uses ``ear_left``/``ear_right``,
``gaze_on_screen``, ``mouth_open``, ``head_yaw``/``head_pitch`` and ``head_motion`` when present
(the webcam pipeline, :class:`~engage.signals.face_mesh.FaceAnalyzer`, and the simulated viewer
both produce it). Blinks come from the streaming, per-viewer adaptive
:class:`~engage.signals.blinks.BlinkDetector` on both eyes' aspect ratios normalised for head pose
(:func:`eye_openness`).

Output ``FaceFeatures``, one row per frame: ``face_present``, ``on_screen``, ``blink_duration``
(non-zero on the frame a blink ends, in seconds), ``quality`` (the contract), then
``blink_rate`` (per minute, last 60 s), ``perclos`` (0..1, last 60 s), ``yawn`` (the duration in
seconds on the frame a yawn ends), ``head_motion`` (face widths per second) and ``ear`` (the
eye openness the blinks are found on: :func:`eye_openness`). ``quality`` is 0 without a face and
falls as the head turns past 30°, where eye landmarks become unreliable.

>>> from engage.core import StreamInfo
>>> FaceFeatures().accepts(StreamInfo("f", "Face", ("face_present",), ("bool",), 30.0, "x"))
True
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from engage.core import Chunk, Processor, StreamInfo

from .blinks import BlinkDetector

FACE_CHANNELS = ("face_present", "on_screen", "blink_duration", "quality", "blink_rate", "perclos", "yawn",
                 "head_motion", "ear")
FACE_UNITS = ("bool", "bool", "s", "ratio", "1/min", "ratio", "s", "face/s", "ratio")
#: A yawn: the mouth opened past this ratio of its width for at least ``min_yawn_s``.
YAWN_MOUTH, MIN_YAWN_S = 0.45, 1.5


#: the input channels read, in the order FaceFeatures.process takes them
_INPUTS = ("face_present", "head_yaw", "head_pitch", "ear_left", "ear_right", "gaze_on_screen", "mouth_open",
           "head_motion")

#: head angles beyond this are clipped in the pose normalisation (the landmarks are unreliable there anyway)
MAX_POSE_DEG = 45.0


def eye_openness(ear_left: np.ndarray, ear_right: np.ndarray, yaw: np.ndarray | None = None,
                 pitch: np.ndarray | None = None) -> np.ndarray:
    """One eye openness per frame from both eyes' aspect ratios, normalised for head pose.

    A turned head foreshortens the eyes' width by cos(yaw), which inflates the aspect ratio, and a
    pitched one their height by cos(pitch): both are undone. The eyes are weighted by how well the
    camera sees them: the nearer eye counts more as the head turns (``yaw`` > 0 turns the face
    toward the image's right, bringing the viewer's right eye nearer), and an eye whose ratio is
    missing leaves the other alone. Angles in degrees; NaN or absent angles count as 0.

    >>> eye_openness(np.array([0.3]), np.array([0.3]), np.array([0.0]), np.array([0.0]))
    array([0.3])
    >>> float(eye_openness(np.array([0.3]), np.array([np.nan]))[0])
    0.3
    """
    left = np.asarray(ear_left, dtype=np.float64)
    right = np.asarray(ear_right, dtype=np.float64)
    yaw = np.zeros(left.shape) if yaw is None else np.asarray(yaw, dtype=np.float64)
    pitch = np.zeros(left.shape) if pitch is None else np.asarray(pitch, dtype=np.float64)
    shape = np.broadcast_shapes(left.shape, right.shape, yaw.shape, pitch.shape)
    left, right, yaw, pitch = (np.ascontiguousarray(a).ravel() for a in np.broadcast_arrays(left, right, yaw, pitch))
    out = np.empty(left.shape)
    _openness_each(left, right, yaw, pitch, out)
    return out.reshape(shape)


# Frame by frame in compiled loops: the same arithmetic whatever the chunk (one frame live, minutes in
# a replay), and no NumPy call per chunk, which dominated a live frame's cost.
@njit(cache=True, nogil=True)
def _openness(left: float, right: float, yaw: float, pitch: float) -> float:
    y = math.radians(min(max(yaw if math.isfinite(yaw) else 0.0, -MAX_POSE_DEG), MAX_POSE_DEG))
    p = math.radians(min(max(pitch if math.isfinite(pitch) else 0.0, -MAX_POSE_DEG), MAX_POSE_DEG))
    w_right = 0.5 * (1.0 + math.sin(y))
    w_left = 1.0 - w_right
    ok_l, ok_r = math.isfinite(left), math.isfinite(right)
    wl, wr = (w_left if ok_l else 0.0), (w_right if ok_r else 0.0)
    total = wl + wr
    if not total > 0:
        return math.nan
    ear = ((left if ok_l else 0.0) * wl + (right if ok_r else 0.0) * wr) / total
    return ear * math.cos(y) / math.cos(p)


@njit(cache=True, nogil=True)
def _openness_each(left, right, yaw, pitch, out) -> None:
    for i in range(len(out)):
        out[i] = _openness(left[i], right[i], yaw[i], pitch[i])


@njit(cache=True, nogil=True)
def _column(x, i: int, column: int, default: float) -> float:
    return x[i, column] if column >= 0 else default


@njit(cache=True, nogil=True)
def _frame_values(x, columns, out) -> None:
    """``out``'s face_present, on_screen, quality, head_motion and ear columns from the input rows ``x``
    (``columns``: where each of :data:`_INPUTS` is in them, -1 if absent)."""
    for i in range(x.shape[0]):
        present = _column(x, i, columns[0], math.nan) > 0.5  # NaN compares False
        yaw, pitch = _column(x, i, columns[1], math.nan), _column(x, i, columns[2], math.nan)
        ear = _openness(_column(x, i, columns[3], math.nan), _column(x, i, columns[4], math.nan), yaw, pitch)
        on = _column(x, i, columns[5], 1.0)
        # the larger head angle, NaN as 0 (an infinite angle stays infinite: its quality is clipped to 0.2)
        turn = max(abs(0.0 if math.isnan(yaw) else yaw), abs(0.0 if math.isnan(pitch) else pitch))
        turned = min(max(1.0 - (turn - 30.0) / 30.0, 0.2), 1.0)
        out[i, 0] = 1.0 if present else 0.0
        out[i, 1] = 1.0 if present and on > 0.5 else 0.0
        out[i, 3] = (turned if math.isfinite(ear) else 0.5 * turned) if present else 0.0
        out[i, 7] = _column(x, i, columns[7], math.nan)
        out[i, 8] = ear


class _FaceState:
    def __init__(self, **blink_kwargs) -> None:
        self.blinks = BlinkDetector(**blink_kwargs)
        self.yawn_start: float | None = None
        self.out_info: StreamInfo | None = None
        self.columns = np.empty(0, np.int64)  # of _INPUTS in the input stream (-1: absent)


class FaceFeatures(Processor):
    """The processor of the module docstring; keeps one blink detector per input stream."""

    name = "face-features"

    def __init__(self, blink_ratio: float = 0.7, max_blink_s: float = 0.8) -> None:
        self.blink_kwargs = {"close_ratio": blink_ratio, "max_blink_s": max_blink_s}
        self._state: dict[StreamInfo, _FaceState] = {}

    def accepts(self, info: StreamInfo) -> bool:
        return info.type == "Face" and "face_present" in info.channels

    def process(self, chunk: Chunk) -> list[Chunk]:
        info = chunk.info
        st = self._state.get(info)
        if st is None:
            st = self._state[info] = _FaceState(**self.blink_kwargs)
            st.columns = np.array([info.channels.index(c) if c in info.channels else -1 for c in _INPUTS])
        n = len(chunk)
        data = np.empty((n, len(FACE_CHANNELS)))
        x = np.asarray(chunk.data, dtype=np.float64)
        _frame_values(x, st.columns, data)
        mouth = x[:, st.columns[6]].tolist() if st.columns[6] >= 0 else [math.nan] * n
        blink, rate, perclos, yawn = [0.0] * n, [math.nan] * n, [math.nan] * n, [0.0] * n
        ts = chunk.timestamps
        blinks = st.blinks
        # frame by frame in Python floats (NumPy scalars cost more than the detector's arithmetic)
        for i, (t, p, e, m) in enumerate(zip(ts.tolist(), data[:, 0].tolist(), data[:, 8].tolist(), mouth)):
            if not p:
                blinks.reset()
                st.yawn_start = None
                continue
            b = blinks.update(t, e)
            if b is not None:
                blink[i] = b.duration
            rate[i] = blinks.blink_rate(t)
            perclos[i] = blinks.perclos()
            if math.isfinite(m) and m > YAWN_MOUTH:
                if st.yawn_start is None:
                    st.yawn_start = t
            elif st.yawn_start is not None:
                if t - st.yawn_start >= MIN_YAWN_S:
                    yawn[i] = t - st.yawn_start
                st.yawn_start = None
        if st.out_info is None:
            st.out_info = StreamInfo(f"{info.viewer}-face-features", "FaceFeatures", FACE_CHANNELS, FACE_UNITS,
                                     info.nominal_rate, f"engage-{info.viewer}-face-features", viewer=info.viewer)
        data[:, 2], data[:, 4], data[:, 5], data[:, 6] = blink, rate, perclos, yawn
        return [Chunk(st.out_info, data, ts)]
