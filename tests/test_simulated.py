"""The simulated viewer: stream contracts, streaming determinism, and a body that reacts."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage.core import Chunk, ConfigError, Context, Event, EventBus, Runtime, VirtualClock
from engage.sensors.simulated import FACE_CHANNELS, SimulatedViewer, ViewerTraits

SEEDS = range(4)


def collect(viewer: SimulatedViewer, reads) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read at each time of ``reads``; per stream type, all timestamps and data concatenated."""
    chunks: dict[str, list[Chunk]] = {}
    for until in reads:
        for c in viewer.read(until):
            assert np.all(c.timestamps <= until)
            chunks.setdefault(c.info.type, []).append(c)
    return {k: (np.concatenate([c.timestamps for c in v]), np.concatenate([c.data for c in v]))
            for k, v in chunks.items()}


def scripted(seed: int = 0, scenes=((0.0, 0.2, "calm"), (30.0, 0.9, "action"))) -> SimulatedViewer:
    viewer = SimulatedViewer(seed=seed)
    for t, intensity, tone in scenes:
        viewer.on_scene(intensity, tone, timestamp=t)
    return viewer


def hr_between(viewer: SimulatedViewer, start: float, end: float) -> float:
    beats = np.asarray(viewer.true_beats)
    rr = np.diff(beats)
    inside = (beats[1:] >= start) & (beats[1:] < end)
    return float(60.0 / rr[inside].mean())


@pytest.fixture(scope="module")
def bored_then_engaged() -> dict:
    """Per seed: 120 s at 0.9, 210 s at 0.2, then 60 s at 0.9, read in 1 s steps."""
    out = {}
    for seed in SEEDS:
        viewer = scripted(seed, ((0.0, 0.9, "action"), (120.0, 0.2, "calm"), (330.0, 0.9, "action")))
        streams = collect(viewer, np.arange(1.0, 391.0, 1.0))
        out[seed] = (viewer, streams)
    return out


# ---------------------------------------------------------------- contracts


def test_stream_infos_follow_the_contract():
    viewer = SimulatedViewer(seed=1, viewer="anna", ecg_rate=500.0, eda_rate=32.0, face_rate=25.0)
    ecg, eda, face = viewer.streams()
    assert (ecg.name, ecg.type, ecg.channels, ecg.units, ecg.nominal_rate, ecg.source_id, ecg.viewer) == (
        "sim-anna-ecg", "ECG", ("ecg",), ("mV",), 500.0, "engage-sim-anna-ecg", "anna")
    assert (eda.name, eda.type, eda.channels, eda.units, eda.nominal_rate, eda.source_id, eda.viewer) == (
        "sim-anna-eda", "EDA", ("eda",), ("uS",), 32.0, "engage-sim-anna-eda", "anna")
    assert face.name == "sim-anna-face" and face.type == "Face" and face.source_id == "engage-sim-anna-face"
    assert face.channels == ("face_present", "ear_left", "ear_right", "gaze_on_screen", "gaze_x", "gaze_y",
                             "head_yaw", "head_pitch", "head_roll", "mouth_open")
    assert face.units == ("bool", "ratio", "ratio", "bool", "norm", "norm", "deg", "deg", "deg", "ratio")
    assert face.nominal_rate == 25.0 and face.viewer == "anna"
    # every chunk carries exactly these infos
    assert {c.info for c in viewer.read(1.0)} == {ecg, eda, face}


def test_timestamps_are_strictly_increasing_and_spaced_one_over_rate():
    viewer = scripted(5)
    reads = np.arange(0.05, 20.0, 0.37)
    streams = collect(viewer, reads)
    rates = {"ECG": 250.0, "EDA": 16.0, "Face": 30.0}
    for kind, (ts, data) in streams.items():
        assert ts[0] == 0.0
        assert np.all(np.diff(ts) > 0)
        np.testing.assert_allclose(np.diff(ts), 1.0 / rates[kind], rtol=0, atol=1e-9)
        # every sample up to the last read, none after it
        assert ts[-1] <= reads[-1] < ts[-1] + 1.0 / rates[kind]
        assert data.shape == (len(ts), len(FACE_CHANNELS) if kind == "Face" else 1)


def test_nothing_is_returned_twice_or_before_the_start():
    viewer = SimulatedViewer(seed=0)
    assert viewer.read(-1.0) == []
    first = viewer.read(1.0)
    assert viewer.read(1.0) == [] and viewer.read(0.5) == []
    assert [len(c) for c in first] == [251, 17, 31]


# ---------------------------------------------------------------- determinism


def _as_bytes(streams) -> dict[str, tuple[bytes, bytes]]:
    return {k: (ts.tobytes(), data.tobytes()) for k, (ts, data) in streams.items()}


def test_output_does_not_depend_on_how_reads_are_stepped():
    reference = scripted(3)
    all_at_once = _as_bytes(collect(reference, [60.0]))
    for step in (0.1, 1.0, 7.3):
        viewer = scripted(3)
        reads = list(np.arange(step, 60.0, step)) + [60.0]
        assert _as_bytes(collect(viewer, reads)) == all_at_once, f"read step {step}"
        assert viewer.true_beats == reference.true_beats
        assert viewer.truth_array().tobytes() == reference.truth_array().tobytes()


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(min_value=0.001, max_value=3.0), min_size=1, max_size=40))
def test_any_read_steps_give_identical_output(steps):
    reads = list(np.cumsum(steps))
    end = reads[-1]
    stepped = collect(scripted(11, ((0.0, 0.4, ""), (5.0, 0.8, "tense"))), reads)
    whole = collect(scripted(11, ((0.0, 0.4, ""), (5.0, 0.8, "tense"))), [end])
    assert _as_bytes(stepped) == _as_bytes(whole)


def test_same_seed_same_bytes_and_different_seeds_differ():
    a, b, c = (collect(scripted(seed), [30.0]) for seed in (7, 7, 8))
    assert _as_bytes(a) == _as_bytes(b)
    assert SimulatedViewer(seed=7).traits == SimulatedViewer(seed=7).traits
    assert SimulatedViewer(seed=7).traits != SimulatedViewer(seed=8).traits
    for kind in a:
        assert a[kind][1].tobytes() != c[kind][1].tobytes()


def test_given_traits_are_used():
    traits = ViewerTraits.sample(np.random.default_rng(123))
    viewer = SimulatedViewer(seed=0, traits=traits)
    assert viewer.traits is traits


# ---------------------------------------------------------------- physiology


def test_ecg_r_peaks_are_at_the_true_beats():
    viewer = scripted(2)
    ts, ecg = collect(viewer, np.arange(0.5, 60.0, 0.5))["ECG"]
    ecg = ecg[:, 0]
    beats = [b for b in viewer.true_beats if 0.2 < b < ts[-1] - 0.2]
    assert len(beats) > 50
    for r in beats:
        window = np.flatnonzero(np.abs(ts - r) <= 0.1)
        peak = ts[window[np.argmax(ecg[window])]]
        assert abs(peak - r) <= 2.0 / 250.0
    # the R peak stands well above the rest of the cycle
    assert np.percentile(ecg, 99) - np.median(ecg) > 0.5


def test_heart_rate_rises_in_an_intense_scene():
    for seed in SEEDS:
        viewer = scripted(seed, ((0.0, 0.2, "calm"), (90.0, 0.9, "action")))
        viewer.read(150.0)
        calm, intense = hr_between(viewer, 60.0, 90.0), hr_between(viewer, 120.0, 150.0)
        assert intense > calm + 5.0, (seed, calm, intense)
        assert viewer.traits.resting_hr - 5 < calm < 100


def test_boredom_grows_in_a_long_dull_scene_and_an_intense_one_ends_it():
    for seed in SEEDS:
        viewer = scripted(seed, ((0.0, 0.2, "calm"), (90.0, 0.9, "action")))
        viewer.read(150.0)
        t, arousal, boredom, attention = viewer.truth_array().T
        at = lambda x: np.searchsorted(t, x)  # noqa: E731
        assert boredom[at(90.0) - 1] > 0.6, seed
        assert boredom[at(110.0)] < 0.3, seed
        assert arousal[at(110.0)] > arousal[at(89.0)] + 0.3, seed
        assert attention[at(110.0)] > attention[at(89.0)] + 0.3, seed
        assert np.all((viewer.truth_array()[:, 1:] >= 0) & (viewer.truth_array()[:, 1:] <= 1))


def test_truth_is_sampled_at_10_hz():
    viewer = scripted(0)
    viewer.read(12.34)
    truth = viewer.truth_array()
    assert truth.shape == (124, 4)
    np.testing.assert_allclose(np.diff(truth[:, 0]), 0.1, atol=1e-9)


def _blinks_per_minute(ts, face, start, end):
    inside = (ts >= start) & (ts < end)
    ear = np.nan_to_num(face[inside, FACE_CHANNELS.index("ear_left")], nan=0.3)
    closed = ear < 0.2
    return np.sum(closed[1:] & ~closed[:-1]) / ((end - start) / 60.0)


def _off_screen_fraction(ts, face, start, end):
    inside = (ts >= start) & (ts < end) & (face[:, 0] == 1.0)
    return float(np.mean(face[inside, FACE_CHANNELS.index("gaze_on_screen")] == 0.0))


def test_bored_viewers_blink_more_and_look_away_more(bored_then_engaged):
    for seed, (viewer, streams) in bored_then_engaged.items():
        truth = viewer.truth_array()
        assert truth[(truth[:, 0] >= 210) & (truth[:, 0] < 330), 2].min() > 0.5, seed  # really bored
        ts, face = streams["Face"]
        engaged, bored = (20.0, 120.0), (210.0, 330.0)
        assert _blinks_per_minute(ts, face, *bored) > 1.4 * _blinks_per_minute(ts, face, *engaged), seed
        assert _off_screen_fraction(ts, face, *bored) > _off_screen_fraction(ts, face, *engaged) + 0.1, seed


def test_face_channels_are_plausible(bored_then_engaged):
    for viewer, streams in bored_then_engaged.values():
        ts, face = streams["Face"]
        col = {name: face[:, i] for i, name in enumerate(FACE_CHANNELS)}
        present = col["face_present"] == 1.0
        assert set(np.unique(col["face_present"])) <= {0.0, 1.0}
        assert present.mean() > 0.98
        assert np.all(np.isnan(face[~present, 1:])) and not np.any(np.isnan(face[present]))
        ear = col["ear_left"][present]
        assert 0.27 < np.median(ear) < 0.33
        assert 0.04 < ear.min() < 0.12  # blinks close the eye
        on = col["gaze_on_screen"][present] == 1.0
        x, y = col["gaze_x"][present], col["gaze_y"][present]
        assert np.all((x[on] >= 0) & (x[on] <= 1) & (y[on] >= 0) & (y[on] <= 1))
        assert np.all((x[~on] < 0) | (x[~on] > 1) | (y[~on] < 0) | (y[~on] > 1))
        assert np.all(np.abs(col["head_yaw"][present]) < 60)
        assert np.all((col["mouth_open"][present] >= 0) & (col["mouth_open"][present] <= 1))


def test_eda_is_positive_and_responds_more_to_arousal(bored_then_engaged):
    from scipy.signal import find_peaks

    for seed, (viewer, streams) in bored_then_engaged.items():
        ts, eda = streams["EDA"]
        assert np.all(eda > 0)
        assert viewer.traits.eda_tonic - 2 < np.median(eda) < viewer.traits.eda_tonic + 3

        def scrs(start, end):
            inside = (ts >= start) & (ts < end)
            return len(find_peaks(eda[inside, 0], prominence=0.05)[0])

        assert scrs(10.0, 120.0) > scrs(220.0, 330.0), seed


# ---------------------------------------------------------------- scenes through the bus


def test_reacts_to_scene_start_events_on_the_bus():
    bus = EventBus()
    viewer = SimulatedViewer(seed=4)
    viewer.start(Context(VirtualClock(), bus))
    quiet = SimulatedViewer(seed=4)
    quiet.start(Context(VirtualClock(), EventBus()))
    bus.publish(Event("scene.start", 0.0, "viewer-1", evidence={"scene": "chase", "intensity": 0.9, "tone": "action"}))
    viewer.read(40.0)
    quiet.read(40.0)
    assert (viewer.intensity, viewer.tone) == (0.9, "action")
    assert (quiet.intensity, quiet.tone) == (0.3, "")
    assert viewer.truth_array()[-1, 1] > quiet.truth_array()[-1, 1] + 0.3
    assert hr_between(viewer, 20.0, 40.0) > hr_between(quiet, 20.0, 40.0)
    assert bus.handler_errors == 0


def test_events_for_another_viewer_or_of_another_type_are_ignored():
    bus = EventBus()
    viewer = SimulatedViewer(seed=4)
    viewer.start(Context(VirtualClock(), bus))
    bus.publish(Event("scene.start", 0.0, "viewer-2", evidence={"scene": "chase", "intensity": 0.9}))
    bus.publish(Event("boredom.onset", 0.0, "viewer-1", evidence={"intensity": 0.9}))
    untouched = SimulatedViewer(seed=4)
    untouched.start(Context(VirtualClock(), EventBus()))
    assert _as_bytes(collect(viewer, [20.0])) == _as_bytes(collect(untouched, [20.0]))
    assert viewer.intensity == 0.3


def test_a_malformed_scene_event_is_counted_not_raised():
    bus = EventBus()
    ctx = Context(VirtualClock(), bus)
    viewer = SimulatedViewer(seed=4)
    viewer.start(ctx)
    bus.publish(Event("scene.start", 0.0, "viewer-1", evidence={"scene": "x"}))
    bus.publish(Event("scene.start", 0.0, "viewer-1", evidence={"scene": "y", "intensity": "loud"}))
    bus.publish(Event("scene.start", 0.0, "viewer-1", evidence={"scene": "z", "intensity": 7}))
    assert ctx.counters["sim-viewer-1.bad_scene_events"] == 3
    assert bus.handler_errors == 0
    viewer.read(5.0)
    assert viewer.intensity == 0.3


def test_a_scene_stamped_in_the_past_starts_at_the_next_step():
    viewer = SimulatedViewer(seed=0)
    viewer.read(10.0)
    viewer.on_scene(0.9, timestamp=2.0)
    viewer.read(10.05)
    assert viewer.intensity == 0.3  # no step between 10.0 and 10.05
    viewer.read(10.1)
    assert viewer.intensity == 0.9
    assert viewer.truth_array()[:101].tobytes() == _truth_without_scene(10.0)


def _truth_without_scene(until: float) -> bytes:
    viewer = SimulatedViewer(seed=0)
    viewer.read(until)
    return viewer.truth_array().tobytes()


def test_runs_in_the_runtime_from_the_clock_start():
    viewer = SimulatedViewer(seed=0)
    runtime = Runtime(VirtualClock(start=100.0), [viewer], [])

    def controller(now: float) -> None:  # stands in for the narrative controller
        if now == 101.0:
            runtime.ctx.emit("scene.start", now, evidence={"scene": "s1", "intensity": 0.7})

    stats = runtime.run(duration=5.0, on_step=controller)
    assert stats.samples == 1251 + 81 + 151
    assert viewer.true_beats[0] >= 100.0
    assert viewer.truth_array()[0, 0] == 100.0
    assert viewer.intensity == 0.7


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", [dict(ecg_rate=0.0), dict(eda_rate=-1.0), dict(face_rate=float("nan")),
                                 dict(ecg_rate=20.0)])
def test_bad_rates_are_config_errors(bad):
    with pytest.raises(ConfigError, match="rate"):
        SimulatedViewer(**bad)


def test_bad_traits_and_scenes_are_config_errors():
    traits = ViewerTraits.sample(np.random.default_rng(0))
    with pytest.raises(ConfigError, match="resting_hr"):
        ViewerTraits(**{**traits.__dict__, "resting_hr": -60.0})
    with pytest.raises(ConfigError, match="noise"):
        ViewerTraits(**{**traits.__dict__, "noise": float("inf")})
    viewer = SimulatedViewer()
    with pytest.raises(ConfigError, match="intensity"):
        viewer.on_scene(1.5)
    with pytest.raises(ConfigError, match="NaN"):
        viewer.on_scene(0.5, timestamp=float("nan"))
    with pytest.raises(ValueError):
        viewer.read(float("nan"))


# ---------------------------------------------------------------- speed


def test_ten_minutes_generate_quickly():
    viewer = scripted(0, ((0.0, 0.5, ""), (120.0, 0.2, ""), (300.0, 0.9, "")))
    viewer.read(0.1)  # the ECG template is made once, outside the timing
    started = time.perf_counter()
    for until in np.arange(1.0, 601.0, 1.0):
        viewer.read(until)
    assert time.perf_counter() - started < 5.0
