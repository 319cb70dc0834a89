"""One webcam, several faces (issue 21): stable viewer ids across frames, one ``Face`` row per viewer.

:class:`FaceIdentities` gives every face MediaPipe finds in a frame a viewer id that stays with
that person: a face is matched to the track nearest to where it was (within ``max_jump`` face
sizes); a face that left and comes back within ``remember_s`` gets its old id back when it is
near where it left or its face descriptor (the shape of its rigid landmarks: eye corners, nose,
chin, cheeks, scaled by the face's size) is the closest of the departed; any other face is a new
viewer (``new_faces="new"``) or is ignored (``new_faces="refuse"``: the viewers are those seen in
the first frame with faces, up to ``max_viewers``).

:class:`MultiFaceAnalyzer` runs the face mesh for several faces and hands each viewer's landmarks
to a :class:`~engage.signals.face_mesh.FaceAnalyzer` of their own, so every viewer gets the
``Face`` row a single-viewer camera gives (eye aspect ratio for blinks, gaze, head pose, skin
colour for rPPG), with their own motion history.

>>> ids = FaceIdentities()
>>> import numpy as np
>>> from engage.signals.face_mesh import FaceLandmarks
>>> def face(x):  # a toy face: 478 points in a 100-pixel box at x
...     pts = np.zeros((478, 3)); pts[:, 0] = x + np.linspace(0, 100, 478); pts[:, 1] = np.linspace(0, 100, 478)
...     return FaceLandmarks(pts, 640, 480)
>>> [v for v, _ in ids.assign([face(0), face(300)], 0.0)]
['face-1', 'face-2']
>>> [v for v, _ in ids.assign([face(305)], 0.04)]   # the left one left; the right one keeps its id
['face-2']
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from engage.core.errors import ConfigError

from .face_mesh import FACE_CHANNELS, FACE_UNITS, FaceAnalyzer, FaceLandmarks, landmarks_array, to_rgb

log = logging.getLogger(__name__)

__all__ = ["FaceIdentities", "MultiFaceAnalyzer", "face_descriptor"]

#: Rigid landmarks (eye corners, nose tip and bridge, chin, cheeks, forehead): their layout is a person's
#: face shape more than their expression.
RIGID = (33, 133, 362, 263, 1, 168, 152, 234, 454, 10)
NEW_FACES = ("new", "refuse")


def face_descriptor(face: FaceLandmarks) -> np.ndarray:
    """The pairwise distances of the :data:`RIGID` landmarks over the face's size (scale-free)."""
    pts = face.points[list(RIGID), :2] if len(face.points) > max(RIGID) else face.points[:, :2]
    d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    return d[np.triu_indices(len(pts), 1)] / max(face.size, 1.0)


@dataclass
class _Track:
    viewer: str
    center: np.ndarray
    size: float
    descriptor: np.ndarray
    last_t: float


class FaceIdentities:
    """Stable viewer ids for the faces of each frame (see the module docstring).

    Parameters
    ----------
    prefix
        Viewer ids are ``{prefix}-1``, ``{prefix}-2`` … in order of appearance.
    new_faces
        ``"new"``: a face nobody was is a new viewer; ``"refuse"``: it is ignored (the viewers are
        those of the first frame with faces).
    max_viewers
        At most this many viewers (further faces are ignored).
    max_jump
        A face further than this many face sizes from a track's last place is not that track.
    remember_s
        How long a viewer who left keeps their id for a return.
    """

    def __init__(self, prefix: str = "face", new_faces: str = "new", max_viewers: int = 8,
                 max_jump: float = 0.75, remember_s: float = 600.0) -> None:
        if new_faces not in NEW_FACES:
            raise ConfigError(f"new_faces must be one of {', '.join(NEW_FACES)}, got {new_faces!r}")
        if not isinstance(max_viewers, int) or max_viewers < 1:
            raise ConfigError(f"max_viewers must be an integer >= 1, got {max_viewers!r}")
        self.prefix, self.new_faces, self.max_viewers = prefix, new_faces, max_viewers
        self.max_jump, self.remember_s = float(max_jump), float(remember_s)
        self.tracks: dict[str, _Track] = {}
        self.refused = 0  # faces ignored (refused, or beyond max_viewers), counted per frame
        self._closed = False  # refuse: the first frame with faces fixed the viewers

    def assign(self, faces: list[FaceLandmarks], t: float) -> list[tuple[str, FaceLandmarks]]:
        """``(viewer, face)`` for the faces of the frame at ``t`` that belong to a viewer, in viewer order."""
        for tr in [tr for tr in self.tracks.values() if t - tr.last_t > self.remember_s]:
            del self.tracks[tr.viewer]
        pairs = sorted(((float(np.linalg.norm(f.center - tr.center)) / max(tr.size, 1.0), i, tr.viewer)
                        for i, f in enumerate(faces) for tr in self.tracks.values()), key=lambda p: p[0])
        taken: dict[int, str] = {}
        used: set[str] = set()
        for dist, i, viewer in pairs:  # nearest first: each face and each track at most once
            if dist <= self.max_jump and i not in taken and viewer not in used:
                taken[i] = viewer
                used.add(viewer)
        for i, f in enumerate(faces):
            if i in taken:
                continue
            gone = [tr for tr in self.tracks.values() if tr.viewer not in used and tr.last_t < t]
            if gone:  # someone came back: the departed with the nearest face descriptor
                d = face_descriptor(f)
                back = min(gone, key=lambda tr: float(np.linalg.norm(tr.descriptor - d)))
                taken[i] = back.viewer
                used.add(back.viewer)
            elif (self.new_faces == "new" or not self._closed) and len(self.tracks) < self.max_viewers:
                viewer = f"{self.prefix}-{len(self.tracks) + 1}"
                while viewer in self.tracks:
                    viewer += "'"
                self.tracks[viewer] = _Track(viewer, f.center, f.size, face_descriptor(f), t)
                taken[i] = viewer
                used.add(viewer)
                log.info("face %s appeared at %.1f s", viewer, t)
            else:
                self.refused += 1
        if faces:
            self._closed = True
        out = []
        for i, viewer in taken.items():
            f = faces[i]
            tr = self.tracks[viewer]
            tr.center, tr.size, tr.last_t = f.center, f.size, t
            tr.descriptor = 0.9 * tr.descriptor + 0.1 * face_descriptor(f)
            out.append((viewer, f))
        return sorted(out, key=lambda p: list(self.tracks).index(p[0]))


class _Given:
    """A 'tracker' handing a FaceAnalyzer the landmarks already found for its viewer."""

    has_blendshapes = False

    def __init__(self) -> None:
        self.face: FaceLandmarks | None = None

    def __call__(self, frame_bgr: np.ndarray, timestamp: float | None = None) -> FaceLandmarks | None:
        return self.face

    def close(self) -> None:
        pass


class MultiFaceAnalyzer:
    """BGR frame → ``{viewer: Face row}`` for every viewer in view (see the module docstring).

    Parameters
    ----------
    max_faces
        How many faces MediaPipe looks for.
    identities
        The :class:`FaceIdentities` (default: ids ``face-1`` …, new faces are new viewers).
    analyzer_kw
        Passed to each viewer's :class:`~engage.signals.face_mesh.FaceAnalyzer` (``screen``, ``rppg_roi``).
    """

    def __init__(self, max_faces: int = 4, identities: FaceIdentities | None = None, **analyzer_kw) -> None:
        try:
            import mediapipe as mp
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ConfigError("face tracking needs MediaPipe: pip install 'engage[face]'") from exc
        self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=max_faces,
                                                     refine_landmarks=True, min_detection_confidence=0.5,
                                                     min_tracking_confidence=0.5)
        self.identities = identities or FaceIdentities()
        self.analyzer_kw = analyzer_kw
        self.analyzers: dict[str, tuple[_Given, FaceAnalyzer]] = {}
        self.channels: tuple[str, ...] = FACE_CHANNELS
        self.units: tuple[str, ...] = FACE_UNITS

    #: a camera source gives each viewer their own stream (engage.sensors.webcam)
    multi_face = True

    def __call__(self, frame_bgr: np.ndarray, timestamp: float) -> dict[str, np.ndarray]:
        """Every known viewer's row for this frame (a viewer out of view gets a row with ``face_present`` 0)."""
        faces: list[FaceLandmarks] = []
        if frame_bgr is not None and frame_bgr.ndim == 3 and frame_bgr.shape[2] == 3 and frame_bgr.size:
            h, w = frame_bgr.shape[:2]
            result = self._mesh.process(to_rgb(frame_bgr))
            faces = [FaceLandmarks(landmarks_array(lm, (w, h, w)), w, h)
                     for lm in result.multi_face_landmarks or ()]
        seen = dict(self.identities.assign(faces, float(timestamp)))
        rows = {}
        for viewer in self.identities.tracks:
            if viewer not in self.analyzers:
                given = _Given()
                self.analyzers[viewer] = (given, FaceAnalyzer(tracker=given, **self.analyzer_kw))
            given, analyzer = self.analyzers[viewer]
            given.face = seen.get(viewer)
            rows[viewer] = analyzer(frame_bgr, timestamp)
        return rows

    def close(self) -> None:
        self._mesh.close()
