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


def _best_lag_r(x: np.ndarray, ref: np.ndarray, fs: float, max_lag_s: float = 0.3) -> tuple[float, float]:
    """(largest Pearson r, its lag in s) of ``x`` against ``ref`` shifted by up to ``max_lag_s`` either way."""
    best = (-1.0, 0.0)
    for lag in range(-int(max_lag_s * fs), int(max_lag_s * fs) + 1):
        i = np.arange(len(x))
        ok = (i - lag >= 0) & (i - lag < len(ref)) & np.isfinite(x)
        r = float(np.corrcoef(x[ok], ref[i[ok] - lag])[0, 1])
        best = max(best, (r, lag / fs))
    return best


@pytest.mark.realdata
def test_face_pulse_waveform_follows_the_oximeter(ubfc_face_rows):
    """UBFC-rPPG subject 1: the PulseWave stream from the webcam's Face stream follows the pulse oximeter's PPG
    beat by beat (measured r = 0.70 at 0.10 s; the forehead-and-cheeks region used before gave 0.57), whatever the
    chunking, one row per frame, with a quality in 0..1."""
    from engage.core import Chunk, Context, EventBus, StreamInfo
    from engage.signals.face_mesh import FACE_CHANNELS, FACE_UNITS

    t, rows, fps, ppg = ubfc_face_rows
    info = StreamInfo("webcam-v-face", "Face", FACE_CHANNELS, FACE_UNITS, fps, "cam", viewer="v")
    waves = []
    for size in (1, 7, len(t)):
        p = RppgHeartRate()
        p.start(Context(VirtualClock(), EventBus()))
        out = [c for i in range(0, len(t), size) for c in p.process(Chunk(info, rows[i:i + size], t[i:i + size]))
               if c.info.type == "PulseWave"]
        waves.append((np.concatenate([c.timestamps for c in out]), np.vstack([c.data for c in out])))
    for other in waves[1:]:
        assert np.array_equal(waves[0][0], other[0]) and np.array_equal(waves[0][1], other[1], equal_nan=True)
    ts, data = waves[0]
    assert np.array_equal(ts, t) and out[0].info.channels == ("pulse", "quality") and out[0].info.nominal_rate == fps
    r, lag = _best_lag_r(data[:, 0], ppg, fps)
    assert r >= 0.6, (r, lag)
    assert np.all((data[:, 1] >= 0) & (data[:, 1] <= 1)) and np.all(data[t < 2.0, 1] == 0)  # known after 2 s


def test_pulse_waveform_survives_lost_faces_and_odd_rates():
    """Frames without a face give NaN and quality 0 and do not disturb the frames after them; a frame rate no
    band-pass can use is refused with a clear message."""
    from engage.signals.rppg import PulseWaveform

    fs = 30.0
    tt = np.arange(0, 12, 1 / fs)
    g = 100 * (1 - 0.003 * np.sin(2 * np.pi * 1.1 * tt))
    rgb = np.column_stack([g, g, g])
    rgb[100:110] = np.nan
    wave = PulseWaveform(fs).process(rgb)
    assert np.all(np.isnan(wave[100:110])) and np.all(np.isfinite(wave[:100])) and np.all(np.isfinite(wave[110:]))
    after = np.arange(len(tt)) > 200  # the filter has forgotten the gap 3 s later
    assert _best_lag_r(wave[after], np.sin(2 * np.pi * 1.1 * tt[after]), fs, 0.15)[0] > 0.95
    with pytest.raises(ValueError, match="frame rate"):
        PulseWaveform(1.0)
