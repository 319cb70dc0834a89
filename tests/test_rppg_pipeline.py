"""rPPG in the session pipeline, on the real talking-head video through the real MediaPipe model:
the face's heart rate reaches the feature windows on the cardiac ``HeartRate`` contract, gated by
its quality, and steps aside while a better beat source (here a simulated viewer's ECG) is live.

The clip's own pulse is not detectable (8 s of a compressed, talking, moving face: its SNR is
that of noise alone), so a known pulse is also added to the frames themselves, before MediaPipe
and the skin regions see them: a 2 % colour change along the blood-volume signature, above a
real pulse's strength, so the test checks the plumbing and the gating, not the sensitivity.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mediapipe")
pytest.importorskip("cv2")

from engage.core import Processor, VirtualClock  # noqa: E402
from engage.sensors.webcam import VideoFileSource  # noqa: E402
from engage.session import Session, build_processors  # noqa: E402
from engage.signals.face_mesh import FaceAnalyzer  # noqa: E402
from engage.signals.rppg import RppgHeartRate  # noqa: E402

PULSE_BGR = np.array([0.53, 0.77, 0.33])  # the blood-volume pulse's colour signature, in B, G, R


class PulsedFrames:
    """A frame analyzer that first adds a known pulse (``bpm``, relative ``amp``) to the whole frame."""

    def __init__(self, analyzer: FaceAnalyzer, bpm: float, amp: float) -> None:
        self.analyzer, self.bpm, self.amp = analyzer, bpm, amp
        self.channels, self.units = analyzer.channels, analyzer.units

    def __call__(self, frame, t):
        if self.amp:
            gain = 1.0 + self.amp * np.sin(2 * np.pi * self.bpm / 60.0 * t) * PULSE_BGR
            frame = np.clip(np.rint(frame * gain), 0, 255).astype(np.uint8)
        return self.analyzer(frame, t)


class Collect(Processor):
    """Keeps the chunks of the given stream types."""

    name = "collect"

    def __init__(self, *kinds: str) -> None:
        self.kinds, self.chunks = kinds, []

    def accepts(self, info) -> bool:
        return info.type in self.kinds

    def process(self, chunk):
        self.chunks.append(chunk)
        return []

    def rows(self, kind, source_suffix=""):
        cs = [c for c in self.chunks if c.info.type == kind and c.info.source_id.endswith(source_suffix)]
        if not cs:
            return np.zeros(0), np.zeros((0, 0)), None
        return np.concatenate([c.timestamps for c in cs]), np.vstack([c.data for c in cs]), cs[0].info


@pytest.fixture(scope="module")
def clip(talking_head_clip):
    return talking_head_clip


def _session(clip, bpm=72.0, amp=0.0, with_ecg=False):
    analyzer = FaceAnalyzer()
    source = VideoFileSource(clip, analyzer=PulsedFrames(analyzer, bpm, amp))
    sources = [source]
    if with_ecg:
        from engage.sensors.simulated import SimulatedViewer

        sources.append(SimulatedViewer(seed=3))
    collect = Collect("HeartRate", "RPPG", "Features")
    session = Session(sources, VirtualClock(0.0), story=None, calibration_s=5.0, extra_processors=[collect])
    try:
        result = session.run(duration=source.frame_count / source.fps + 0.5)
    finally:
        source.stop()
        analyzer.close()
    return result, collect


def test_rppg_is_a_standard_step_of_the_session():
    assert sum(isinstance(p, RppgHeartRate) for p in build_processors()) == 1


@pytest.mark.realdata
def test_face_heart_rate_reaches_the_feature_windows(clip):
    result, got = _session(clip, bpm=72.0, amp=0.02)
    t, est, info = got.rows("RPPG")
    assert info.source_id == "engage-viewer-1-rppg" and len(t) >= 2  # from 6 s of video, every second
    assert np.all(np.abs(est[:, 0] - 72) < 5) and np.all(est[:, 2] >= 0.5) and np.all(est[:, 4] == 1)
    bt, beats, hr_info = got.rows("HeartRate", "-hr-rppg")
    assert hr_info.name == "viewer-1-heart-rate" and len(bt) >= 3
    assert abs(np.median(beats[:, 0]) - 72) < 6 and np.all(beats[:, 2] >= 0.5)
    ft, feats, finfo = got.rows("Features")
    hr_mean = feats[:, finfo.index("hr_mean")]
    # beats are published about a second after they happen, so the first windows have none yet
    has = np.isfinite(hr_mean)
    assert has.sum() >= 2 and has[-1] and np.all(has[np.argmax(has):])
    assert np.all(np.abs(hr_mean[has] - 72) < 6) and np.all(feats[has, finfo.index("hr_quality")] > 0)
    # the session log keeps the face's heart rate like any other
    ts, hr = result.log.array("HeartRate", "hr_bpm")
    assert len(ts) == len(bt)


@pytest.mark.realdata
def test_the_clip_alone_gives_plausible_estimates_that_do_not_claim_a_pulse(clip):
    _, got = _session(clip)
    t, est, _ = got.rows("RPPG")
    assert len(t) >= 2 and np.all((est[:, 0] >= 42) & (est[:, 0] <= 180))
    bt, beats, _ = got.rows("HeartRate", "-hr-rppg")
    # whatever is published is gated: a beat only from a window whose SNR beats noise
    assert np.all(beats[:, 2] >= 0.5) if len(bt) else True
    assert np.sum(est[:, 3]) == len(bt)


@pytest.mark.realdata
def test_an_ecg_wins_over_the_face(clip):
    result, got = _session(clip, bpm=72.0, amp=0.02, with_ecg=True)
    _, est, _ = got.rows("RPPG")
    assert len(est) >= 2 and np.all(est[:, 4] == 0)  # estimated, but not fed to the cardiac path
    assert len(got.rows("HeartRate", "-hr-rppg")[0]) == 0
    assert len(got.rows("HeartRate", "-hr-ecg")[0]) > 3
    assert result.counters.get("rppg.deferred_beats", 0) >= 3


def test_a_second_rppg_processor_stands_aside():
    from engage.core.clock import VirtualClock as Clock
    from engage.core.runtime import Context
    from engage.core.bus import EventBus

    ctx = Context(Clock(), EventBus())
    first, second = RppgHeartRate(), RppgHeartRate()
    first.start(ctx)
    second.start(ctx)
    from engage.core import Chunk, StreamInfo

    t = np.arange(0, 12, 1 / 30.0)
    rgb = np.column_stack([120 + np.sin(2 * np.pi * 1.2 * t), 90 + 2 * np.sin(2 * np.pi * 1.2 * t), 70 + 0 * t])
    chunk = Chunk(StreamInfo("x", "RGB", ("r", "g", "b"), ("a.u.",) * 3, 30.0, "x"), rgb, t)
    assert first.process(chunk) and second.process(chunk) == []
