"""Capture: video files replayed on the session clock, and a fake device at the OpenCV
VideoCapture edge (a camera that vanishes mid-session, an index that does not exist)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from engage.core import Context, EventBus, VirtualClock  # noqa: E402
from engage.core.errors import InputFileError  # noqa: E402
from engage.sensors.webcam import VideoFileSource, WebcamSource  # noqa: E402


class FakeCamera:
    """Stands in for cv2.VideoCapture: delivers frames, can be unplugged and plugged back."""

    def __init__(self, plugged: threading.Event, frames_before_unplug: int | None = None):
        self.plugged = plugged
        self.count = 0
        self.frames_before_unplug = frames_before_unplug
        self.released = False
        self.props: dict[int, float] = {}

    def isOpened(self):  # noqa: N802 - OpenCV's name
        return self.plugged.is_set() and not self.released

    def set(self, prop, value):
        self.props[prop] = value
        return True

    def get(self, prop):
        return self.props.get(prop, 0.0)

    def read(self):
        time.sleep(0.005)
        if self.released or not self.plugged.is_set():
            return False, None
        self.count += 1
        if self.frames_before_unplug is not None and self.count > self.frames_before_unplug:
            self.plugged.clear()  # the cable is pulled
            return False, None
        frame = np.full((48, 64, 3), self.count % 255, np.uint8)
        return True, frame

    def release(self):
        self.released = True


class Analyzer:
    channels = ("face_present", "brightness")
    units = ("bool", "a.u.")

    def __call__(self, frame, t):
        return np.array([0.0, frame.mean()])


def _ctx():
    events = []
    bus = EventBus()
    bus.subscribe(events.append)
    return Context(VirtualClock(0.0), bus), events


def test_missing_camera_index_is_a_clear_error():
    class Closed:
        def isOpened(self):  # noqa: N802
            return False

        def release(self):
            pass

    with pytest.raises(InputFileError, match="camera 3: cannot be opened"):
        WebcamSource(3, capture_factory=lambda d: Closed())


def test_real_opencv_on_a_missing_device():
    with pytest.raises(InputFileError, match="cannot be opened"):
        WebcamSource(97)  # no camera on this machine, and never index 97


def test_camera_unplugged_mid_session_is_a_gap_and_a_retry():
    plugged = threading.Event()
    plugged.set()
    cams = []

    def factory(device):
        cam = FakeCamera(plugged, frames_before_unplug=20 if not cams else None)
        cams.append(cam)
        return cam

    src = WebcamSource(0, analyzer=Analyzer(), capture_factory=factory, clock=time.monotonic, retry_s=0.05)
    ctx, events = _ctx()
    src.start(ctx)
    rows = 0
    deadline = time.monotonic() + 10
    replugged = False
    while time.monotonic() < deadline:
        rows += sum(len(c) for c in src.read(float("inf")))
        if not plugged.is_set() and not replugged and len(cams) >= 2:
            time.sleep(0.2)
            plugged.set()  # plugged back in
            replugged = True
        if replugged and any(e.type == "sensor.gap" for e in events) and rows > 40:
            break
        time.sleep(0.01)
    src.stop()
    gaps = [e for e in events if e.type == "sensor.gap"]
    assert gaps and gaps[0].evidence["reason"] == "camera lost" and gaps[0].evidence["duration_s"] > 0.1
    assert src.reconnects >= 1 and rows > 40
    assert cams[0].released  # the dead handle was let go


def test_dropped_frames_counted_from_frame_times():
    plugged = threading.Event()
    plugged.set()
    times = iter(np.concatenate([np.arange(10) / 30, 10 / 30 + 5 / 30 + np.arange(10) / 30]))
    last = [0.0]

    def clock():
        try:
            last[0] = float(next(times))
        except StopIteration:
            pass
        return last[0]

    src = WebcamSource(0, analyzer=Analyzer(), capture_factory=lambda d: FakeCamera(plugged), clock=clock, fps=30)
    for _ in range(20):
        src.acquire()
    assert src.dropped_frames == 5


@pytest.mark.realdata
def test_video_file_replays_on_the_session_clock(shared_data):
    path = shared_data / "talking_head_blinks" / "WDA_AlexandriaOcasioCortez_000.mp4"
    if not path.exists():
        pytest.skip("clip not present")
    src = VideoFileSource(path, analyzer=None, start=100.0)
    ctx, events = _ctx()
    src.start(ctx)
    assert src.fps == 25.0 and src.streams()[0].type == "VideoFrames"
    first = src.read(100.5)
    assert len(first[0]) == 13 and first[0].first_time == 100.0  # frames 0..12 at 25 fps
    rest = src.read(1e9)
    assert len(first[0]) + len(rest[0]) == 200 and src.exhausted
    assert np.allclose(np.diff(rest[0].timestamps), 0.04)
    assert not [e for e in events if e.type == "sensor.gap"]


def test_video_file_errors(tmp_path):
    with pytest.raises(InputFileError, match="video file not found"):
        VideoFileSource(tmp_path / "none.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01 not a video at all" * 100)
    with pytest.raises(InputFileError, match="junk.mp4"):
        VideoFileSource(junk)


@pytest.mark.realdata
def test_truncated_video_replays_up_to_the_damage(shared_data, tmp_path):
    path = shared_data / "talking_head_blinks" / "WDA_AlexandriaOcasioCortez_000.mp4"
    if not path.exists():
        pytest.skip("clip not present")
    # re-encode a short AVI (MJPG: frames stored one after another), then cut it in half
    cap = cv2.VideoCapture(str(path))
    avi = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (128, 128))
    for _ in range(50):
        ok, f = cap.read()
        w.write(cv2.resize(f, (128, 128)))
    w.release()
    data = avi.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    try:
        src = VideoFileSource(cut, analyzer=None)
    except InputFileError as exc:  # some builds refuse a file without an index: still a clear error
        assert "cut.avi" in str(exc)
        return
    ctx, events = _ctx()
    src.start(ctx)
    n = sum(len(c) for c in src.read(1e9))
    assert 0 < n < 50 and src.exhausted
    gaps = [e for e in events if e.type == "sensor.gap"]
    assert gaps and gaps[0].evidence["reason"] == "decode error"


def test_save_video_only_when_asked(tmp_path):
    plugged = threading.Event()
    plugged.set()
    src = WebcamSource(0, analyzer=Analyzer(), capture_factory=lambda d: FakeCamera(plugged), clock=time.monotonic)
    for _ in range(5):
        src.acquire()
    src.stop()
    assert list(tmp_path.iterdir()) == []
    out = tmp_path / "me.mp4"
    src = WebcamSource(0, analyzer=Analyzer(), capture_factory=lambda d: FakeCamera(plugged), clock=time.monotonic,
                       save_video=out)
    for _ in range(5):
        src.acquire()
    src.stop()
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
