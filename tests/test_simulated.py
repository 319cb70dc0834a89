"""The simulated viewer: stream contracts, streaming determinism, a mind driven by the story, a body
that reacts, sensors that fail, audiences."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage.core import Chunk, ConfigError, Context, Event, EventBus, Runtime, VirtualClock
from engage.sensors.simulated import (FACE_CHANNELS, LATENT_COLUMNS, SensorFaults, SimulatedAudience, SimulatedViewer,
                                      ViewerTraits)

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


def scripted(seed: int = 0, scenes=((0.0, 0.2, "calm"), (30.0, 0.9, "action")), **kw) -> SimulatedViewer:
    viewer = SimulatedViewer(seed=seed, **kw)
    for t, intensity, tone, *scene in scenes:
        viewer.on_scene(intensity, tone, timestamp=t, scene=scene[0] if scene else "")
    return viewer


def typical(**override) -> ViewerTraits:
    """A viewer in the middle of the population, with ``override``."""
    base = dict(resting_hr=75.0, resting_scl=0.5, reactivity=1.0, boredom_proneness=1.0, blink_rate=16.0,
                habituation_s=45.0, hrv_ms=25.0, noise=0.03)
    return ViewerTraits(**{**base, **override})


def hr_between(viewer: SimulatedViewer, start: float, end: float) -> float:
    beats = np.asarray(viewer.true_beats)
    rr = np.diff(beats)
    inside = (beats[1:] >= start) & (beats[1:] < end)
    return float(60.0 / rr[inside].mean())


@pytest.fixture(scope="module")
def bored_then_engaged() -> dict:
    """Per seed: 120 s at 0.9, 300 s at 0.15, then 60 s at 0.9, read in 1 s steps."""
    out = {}
    for seed in SEEDS:
        viewer = scripted(seed, ((0.0, 0.9, "action"), (120.0, 0.15, "calm"), (420.0, 0.9, "action")))
        streams = collect(viewer, np.arange(1.0, 481.0, 1.0))
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


def test_heart_rate_rises_in_an_intense_scene_by_the_calibrated_amount():
    """A stress task moves heart rate by a few bpm (Stress-Predict's median 3.3): a very reactive
    viewer (reactivity 4) shows it above the slow fluctuation (SD 3 bpm); a typical one on average."""
    for seed in SEEDS:
        viewer = scripted(seed, ((0.0, 0.2, "calm"), (90.0, 0.9, "action")), traits=typical(reactivity=4.0))
        viewer.read(180.0)
        calm, intense = hr_between(viewer, 60.0, 90.0), hr_between(viewer, 150.0, 180.0)
        assert intense > calm + 5.0, (seed, calm, intense)
        assert 60 < calm < 100
    rises = []
    for seed in range(8):
        viewer = scripted(seed, ((0.0, 0.2, "calm"), (90.0, 0.9, "action")), traits=typical())
        viewer.read(180.0)
        rises.append(hr_between(viewer, 150.0, 180.0) - hr_between(viewer, 60.0, 90.0))
    assert 0.5 < np.mean(rises) < 8.0, rises


def test_beats_follow_the_latent_heart_rate():
    viewer = scripted(1, ((0.0, 0.3, "calm"), (60.0, 0.9, "action")), sensors=())
    viewer.read(240.0)
    beats = np.asarray(viewer.true_beats)
    lat = viewer.latent_array()
    hr_lat = np.interp(beats[1:] - 0.6, lat[:, 0], lat[:, 1 + LATENT_COLUMNS.index("hr_bpm")])
    hr_beats = 60.0 / np.diff(beats)
    # 30-beat means agree within the beat jitter and breathing
    k = len(hr_beats) // 30 * 30
    assert np.max(np.abs(hr_beats[:k].reshape(-1, 30).mean(1) - hr_lat[:k].reshape(-1, 30).mean(1))) < 3.0


def test_boredom_grows_in_a_long_dull_scene_and_an_intense_one_ends_it():
    for seed in SEEDS:
        viewer = scripted(seed, ((0.0, 0.2, "calm"), (180.0, 0.9, "action")), traits=typical())
        viewer.read(240.0)
        t, arousal, boredom, attention = viewer.truth_array().T
        at = lambda x: np.searchsorted(t, x)  # noqa: E731
        assert boredom[at(180.0) - 1] > 0.5, seed
        assert boredom[at(210.0)] < 0.3, seed
        assert arousal[at(210.0)] > arousal[at(179.0)] + 0.2, seed
        assert attention[at(210.0)] > attention[at(179.0)] + 0.2, seed
        assert np.all((viewer.truth_array()[:, 1:] >= 0) & (viewer.truth_array()[:, 1:] <= 1))


def _boredom_at(scenes, until: float, seeds=range(30)) -> np.ndarray:
    out = []
    for seed in seeds:
        viewer = scripted(seed, scenes, sensors=())
        viewer.read(until)
        out.append(viewer.truth_array()[-1, 2])
    return np.array(out)


def test_a_flat_low_intensity_three_minute_film_bores_most_viewers():
    """Three one-minute scenes at intensity 0.2 and one tone: most of the population is bored by the
    end (boredom > 0.5); the least boredom-prone need not be."""
    flat = ((0.0, 0.2, "calm", "a"), (60.0, 0.2, "calm", "b"), (120.0, 0.2, "calm", "c"))
    bored = _boredom_at(flat, 180.0)
    assert np.mean(bored > 0.5) >= 0.7, bored


def test_boredom_comes_from_the_story_not_from_intensity_alone():
    """A varied calm film bores less than a flat one at the same intensities; the same chase shown
    over and over bores although it is intense."""
    flat = ((0.0, 0.2, "calm", "a"), (60.0, 0.25, "calm", "b"), (120.0, 0.3, "calm", "c"))
    varied = ((0.0, 0.2, "calm", "a"), (45.0, 0.3, "warm", "b"), (90.0, 0.25, "eerie", "c"), (135.0, 0.3, "tender", "d"))
    assert np.median(_boredom_at(varied, 180.0)) < np.median(_boredom_at(flat, 180.0)) - 0.2
    again = tuple((60.0 * k, 0.9, "frantic", "chase") for k in range(8))
    fresh = tuple((60.0 * k, 0.9, ("frantic", "tense")[k % 2], f"scene{k}") for k in range(8))
    assert np.median(_boredom_at(again, 480.0, range(10))) > 0.6
    assert np.median(_boredom_at(fresh, 480.0, range(10))) < 0.2


def test_arousal_stays_out_of_the_upper_band_in_calm_scenes():
    calm = ((0.0, 0.2, "calm", "a"), (75.0, 0.3, "quiet", "b"), (150.0, 0.25, "warm", "c"), (225.0, 0.3, "hushed", "d"))
    for seed in range(20):
        viewer = scripted(seed, calm, sensors=())
        viewer.read(300.0)
        assert viewer.truth_array()[:, 1].max() < 0.7, seed


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
        assert truth[(truth[:, 0] >= 270) & (truth[:, 0] < 420), 2].min() > 0.5, seed  # really bored
        ts, face = streams["Face"]
        engaged, bored = (20.0, 120.0), (270.0, 420.0)
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
        assert 0.5 * viewer.traits.resting_scl < np.median(eda) < 2.0 * viewer.traits.resting_scl

        def scrs(start, end):
            inside = (ts >= start) & (ts < end)
            return len(find_peaks(eda[inside, 0], prominence=0.01)[0])

        assert scrs(20.0, 120.0) > scrs(270.0, 370.0), seed


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


# ---------------------------------------------------------------- the latent state (thought probes read it)


def test_latent_state_at_any_simulated_time():
    viewer = scripted(2, ((0.0, 0.2, "calm", "platform"), (30.0, 0.9, "tense", "chase")))
    viewer.read(60.0)
    s = viewer.latent_state(45.0)
    assert (s.scene, s.tone, s.intensity) == ("chase", "tense", 0.9)
    assert s.t == pytest.approx(45.0) and s.time_in_scene == pytest.approx(15.0)
    for name in ("arousal", "boredom", "attention", "novelty"):
        assert 0.0 <= getattr(s, name) <= 1.0
    assert isinstance(s.mind_wandering, bool)
    truth = viewer.truth_array()
    assert (s.arousal, s.boredom, s.attention) == tuple(truth[450, 1:])
    assert viewer.latent_state().t == pytest.approx(60.0)  # the last step made
    assert viewer.latent_state(10.0).scene == "platform"
    lat = viewer.latent_array()
    assert lat.shape == (601, 1 + len(LATENT_COLUMNS)) and np.array_equal(lat[:, :4], truth)
    with pytest.raises(ValueError, match="no latent state at"):
        viewer.latent_state(61.0)
    with pytest.raises(ValueError, match="read the viewer first"):
        SimulatedViewer().latent_state()


def test_mind_wandering_episodes_come_with_boredom():
    wander = {"engaged": [], "bored": []}
    for seed in range(6):
        viewer = scripted(seed, tuple((45.0 * k, 0.8, ("tense", "frantic", "grave")[k % 3], f"s{k}") for k in range(8))
                          + ((360.0, 0.1, "calm", "long"),), sensors=())
        viewer.read(720.0)
        lat = viewer.latent_array()
        mw = lat[:, 1 + LATENT_COLUMNS.index("mind_wandering")]
        wander["engaged"].append(mw[(lat[:, 0] > 30) & (lat[:, 0] < 360)].mean())
        wander["bored"].append(mw[lat[:, 0] > 540].mean())
    assert np.mean(wander["bored"]) > np.mean(wander["engaged"]) + 0.1, wander


# ---------------------------------------------------------------- audiences


def test_an_audience_is_n_viewers_of_the_population_stable_as_it_grows():
    small, big = SimulatedAudience(3, seed=5), SimulatedAudience(6, seed=5)
    assert [v.viewer for v in big] == [f"viewer-{i}" for i in range(1, 7)] and len(big) == 6
    assert [v.traits for v in small] == [v.traits for v in big[:3]]
    assert len({v.traits for v in big}) == 6 and len({v.seed for v in big}) == 6
    assert SimulatedAudience(3, seed=6)[0].traits != small[0].traits
    table = big.traits_table()
    assert table[0]["viewer"] == "viewer-1" and set(table[0]) >= {"resting_hr", "boredom_proneness", "blink_rate"}
    # the population spread: resting heart rates and SCLs differ as Stress-Predict's participants do
    pop = SimulatedAudience(200, seed=1, sensors=())
    hr = np.array([v.traits.resting_hr for v in pop])
    scl = np.array([v.traits.resting_scl for v in pop])
    assert 70 < np.median(hr) < 85 and 8 < np.subtract(*np.percentile(hr, [75, 25])) < 20
    assert 0.25 < np.median(scl) < 0.8 and np.percentile(scl, 75) / np.percentile(scl, 25) > 2


def test_audience_viewers_watch_their_own_and_the_group_scenes():
    bus = EventBus()
    audience = SimulatedAudience(3, seed=2, scene_viewers=("group",), sensors=())
    for v in audience:
        v.start(Context(VirtualClock(), bus))
    bus.publish(Event("scene.start", 0.0, "group", evidence={"scene": "chase", "intensity": 0.9, "tone": "tense"}))
    bus.publish(Event("scene.start", 0.0, "viewer-2", evidence={"scene": "calm", "intensity": 0.1, "tone": "calm"}))
    for v in audience:
        v.read(1.0)
    assert [v.scene for v in audience] == ["chase", "calm", "chase"]
    with pytest.raises(ConfigError, match="at least one viewer"):
        SimulatedAudience(0)


# ---------------------------------------------------------------- sensors worn, missing, dropping out


def _gaps(bus_events, reason=None):
    return [e for e in bus_events if e.type == "sensor.gap" and (reason is None or e.evidence["reason"] == reason)]


def _started(viewer: SimulatedViewer) -> tuple[Context, list[Event]]:
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append, "")
    ctx = Context(VirtualClock(), bus)
    viewer.start(ctx)
    return ctx, seen


def test_a_sensor_that_never_connects_is_a_gap_not_a_stream():
    viewer = SimulatedViewer(seed=3, faults=SensorFaults(never=("ecg",)))
    ctx, events = _started(viewer)
    assert [i.type for i in viewer.streams()] == ["EDA", "Face"]
    streams = collect(viewer, np.arange(0.5, 20.0, 0.5))
    assert set(streams) == {"EDA", "Face"}
    gap = _gaps(events, "not connected")
    assert len(gap) == 1 and gap[0].evidence["stream"] == "sim-viewer-1-ecg" and gap[0].viewer == "viewer-1"
    assert ctx.counters["sim-viewer-1.gaps"] == 1
    # the other streams are exactly those of a viewer whose ECG works
    intact = collect(SimulatedViewer(seed=3), np.arange(0.5, 20.0, 0.5))
    assert _as_bytes(streams) == {k: v for k, v in _as_bytes(intact).items() if k != "ECG"}
    assert viewer.true_beats == SimulatedViewer(seed=3).true_beats or len(viewer.true_beats) > 15


def test_a_dropout_leaves_a_hole_reported_when_lost_and_when_back():
    faults = SensorFaults(dropouts=(("eda", 10.0, 5.0), ("face", 12.0, 0.5)))
    viewer = SimulatedViewer(seed=4, faults=faults)
    _, events = _started(viewer)
    streams = collect(viewer, np.arange(0.25, 30.0, 0.25))
    intact = collect(SimulatedViewer(seed=4), [30.0 - 0.25 * 0.999])
    ts, eda = streams["EDA"]
    assert not np.any((ts >= 10.0) & (ts < 15.0)) and np.any(ts >= 15.0)
    its, ieda = intact["EDA"]
    keep = (its < 10.0) | (its >= 15.0)
    assert np.array_equal(ts, its[keep]) and np.array_equal(eda, ieda[keep])  # the rest is untouched
    assert np.array_equal(streams["ECG"][1], intact["ECG"][1])
    lost, back = _gaps(events, "stream lost"), _gaps(events, "stream recovered")
    assert [(e.evidence["stream"], e.timestamp) for e in lost] == [("sim-viewer-1-eda", 10.0), ("sim-viewer-1-face", 12.0)]
    assert [(e.evidence["stream"], e.evidence["duration_s"]) for e in back] == [("sim-viewer-1-face", 0.5),
                                                                                  ("sim-viewer-1-eda", 5.0)]


def test_random_dropouts_follow_the_seed():
    def run(seed):
        v = SimulatedViewer(seed=seed, faults=SensorFaults(dropout_rate_per_hour=30.0, dropout_median_s=10.0))
        _, events = _started(v)
        collect(v, np.arange(1.0, 600.0, 1.0))
        return [(e.evidence["stream"], e.evidence["reason"], round(e.timestamp, 6)) for e in _gaps(events)]

    first = run(8)
    assert first == run(8) and first != run(9)
    assert {s for s, _, _ in first} <= {"sim-viewer-1-ecg", "sim-viewer-1-eda", "sim-viewer-1-face"} and len(first) >= 4


def test_sessions_survive_sensors_that_never_connect_or_drop_out():
    """Through the whole pipeline: no crash, the gaps are events, the engagement keeps coming with a
    confidence that says what is missing."""
    from engage.session import Session

    faults = SensorFaults(never=("ecg",), dropouts=(("face", 90.0, 40.0), ("eda", 100.0, 20.0)))
    viewer = SimulatedViewer(seed=5, faults=faults)
    result = Session([viewer], VirtualClock(0.0), story=None, calibration_s=30.0).run(duration=180.0)
    gaps = [e for e in result.log.events if e.type == "sensor.gap"]
    reasons = {(e.evidence.get("stream"), e.evidence.get("reason")) for e in gaps}
    assert ("sim-viewer-1-ecg", "not connected") in reasons
    assert ("sim-viewer-1-face", "stream lost") in reasons and ("sim-viewer-1-face", "stream recovered") in reasons
    t, confidence = result.log.array("Engagement", "confidence")
    assert len(t) > 100 and np.all(np.isfinite(confidence))
    tf, face_q = result.log.array("Features", "face_quality")
    _, hr_q = result.log.array("Features", "hr_quality")
    assert np.all(face_q[(tf > 101) & (tf < 130)] == 0) and np.all(face_q[(tf > 40) & (tf < 80)] > 0.8)
    assert np.all(hr_q == 0)  # no heart rate at all: its quality says so
    # nothing worn at all: a session of gaps, not a crash
    nothing = SimulatedViewer(seed=5, faults=SensorFaults(never=("ecg", "eda", "face")))
    assert nothing.streams() == []
    quiet = Session([nothing], VirtualClock(0.0), story=None).run(duration=20.0)
    assert sum(e.type == "sensor.gap" for e in quiet.log.events) == 3


def test_bad_sensors_and_faults_are_config_errors():
    with pytest.raises(ConfigError, match="sensors must be distinct names"):
        SimulatedViewer(sensors=("ecg", "thermal"))
    with pytest.raises(ConfigError, match="sensors must be distinct names"):
        SimulatedViewer(sensors=("ecg", "ecg"))
    with pytest.raises(ConfigError, match="unknown sensor 'gsr'"):
        SensorFaults(never=("gsr",))
    with pytest.raises(ConfigError, match="start_s >= 0 and duration_s > 0"):
        SensorFaults(dropouts=(("eda", 5.0, -1.0),))
    with pytest.raises(ConfigError, match="a dropout is"):
        SensorFaults(dropouts=(("eda", 5.0),))
    with pytest.raises(ConfigError, match="dropout_rate_per_hour"):
        SensorFaults(dropout_rate_per_hour=float("nan"))
    with pytest.raises(ConfigError, match="start_s >= 0 and duration_s > 0"):
        SensorFaults(dropouts=(("eda", 10 ** 400, 1.0),))
    # NumPy's numbers are numbers (a fault schedule drawn with NumPy)
    assert SensorFaults(dropouts=(("eda", np.float32(5.0), np.int64(2)),), dropout_median_s=np.int64(3)).dropouts
    with pytest.raises(ConfigError, match="ppg_rate"):
        SimulatedViewer(ppg_rate=5.0)
    with pytest.raises(ConfigError, match="traits must be a ViewerTraits"):
        SimulatedViewer(traits={"resting_hr": 60})


# ---------------------------------------------------------------- the pulse wave


def test_a_wrist_pulse_wave_gives_the_true_heart_rate():
    from engage.signals.cardiac import PpgHeartRate

    viewer = scripted(6, ((0.0, 0.3, "calm"), (60.0, 0.9, "tense")), sensors=("ppg",))
    (ppg,) = viewer.read(120.0)
    assert ppg.info.type == "PPG" and ppg.info.nominal_rate == 64.0 and len(ppg) == 120 * 64 + 1
    rt = Runtime(VirtualClock(), [], [])
    proc = PpgHeartRate()
    proc.start(rt.ctx)
    out = [c for c in proc.process(ppg) if c.info.type == "HeartRate"] + [c for c in proc.flush(120.0)
                                                                           if c.info.type == "HeartRate"]
    t = np.concatenate([c.timestamps for c in out])
    hr = np.concatenate([c.channel("hr_bpm") for c in out])
    beats = np.asarray(viewer.true_beats)
    true_hr = np.interp(t, beats[1:], 60.0 / np.diff(beats))
    ok = t > 10
    assert ok.sum() > 100 and np.median(np.abs(hr[ok] - true_hr[ok])) < 3.0


# ---------------------------------------------------------------- no neurokit2, same bytes on every CPU


def _run_python(code: str, env_extra: dict | None = None) -> str:
    import os
    import subprocess
    import sys

    env = {**os.environ, **(env_extra or {})}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


_DIGEST = """
import hashlib, sys
from engage.sensors.simulated import SimulatedViewer
v = SimulatedViewer(seed=12, sensors=("ecg", "ppg", "eda", "face"))
v.on_scene(0.2, "calm", timestamp=0.0, scene="a"); v.on_scene(0.9, "tense", timestamp=40.0, scene="b")
h = hashlib.sha256()
for until in range(1, 91):
    for c in v.read(float(until)):
        h.update(c.timestamps.tobytes()); h.update(c.data.tobytes())
h.update(v.latent_array().tobytes())
print(h.hexdigest(), "neurokit2" in sys.modules)
"""


def test_the_simulator_needs_no_neurokit2_and_is_the_same_without_avx512():
    """NumPy chooses SIMD exp/sin per CPU and they differ in the last bits (NeuroKit2's ECGSYN output
    differs with and without AVX-512); the simulator renders with arithmetic and interpolation only,
    so disabling the wide SIMD paths changes nothing."""
    default = _run_python(_DIGEST)
    digest, nk = default.split()
    assert nk == "False"
    assert _run_python(_DIGEST, {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}).split()[0] == digest
    assert _run_python(_DIGEST, {"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"}).split()[0] == digest


# ---------------------------------------------------------------- in a profile, through the CLI


def test_a_profile_sets_what_the_viewer_wears_and_what_fails():
    from engage.sensors.profiles import profile_from_text

    p = profile_from_text('[sensor.v]\nkind = "simulated"\nwears = ["ecg", "ppg", "face"]\nppg_rate = 32\n'
                          '[sensor.v.faults]\nnever = ["ecg"]\ndropouts = [["face", 60, 20.5]]\n'
                          'dropout_rate_per_hour = 2\n')
    spec = p.sensors[0]
    assert spec.wears == ("ecg", "ppg", "face") and spec.ppg_rate == 32.0
    assert spec.faults == SensorFaults(never=("ecg",), dropouts=(("face", 60.0, 20.5),), dropout_rate_per_hour=2.0)
    assert "wearing ecg, ppg, face, with sensor faults" in spec.describe()
    assert profile_from_text('[sensor.v]\nkind = "simulated"\n').sensors[0].faults is None


@pytest.mark.parametrize("text, message", [
    ('wears = ["ecg", "gsr"]', "wears must be an array of distinct sensors among ecg, ppg, eda, face"),
    ('wears = "ecg"', "wears must be an array"),
    ('faults = 3', "faults must be a table"),
    ('[sensor.v.faults]\nnever = "ecg"', "faults.never must be an array of sensor names"),
    ('[sensor.v.faults]\nnever = ["gsr"]', "unknown sensor 'gsr'"),
    ('[sensor.v.faults]\ndropouts = [["face", 60]]', "faults.dropouts must be an array of [sensor, start_s, duration_s]"),
    ('[sensor.v.faults]\ndropouts = [["face", 60, -1]]', "needs start_s >= 0 and duration_s > 0"),
    ('[sensor.v.faults]\ndropout_rate_per_hour = -1', "faults: dropout_rate_per_hour must be >= 0"),
    ('[sensor.v.faults]\nsometimes = 1', "faults: unknown key 'sometimes'"),
])
def test_bad_simulated_profile_keys_are_named(text, message):
    from engage.sensors.profiles import profile_from_text

    with pytest.raises(ConfigError, match=re.escape(message)):
        profile_from_text('[sensor.v]\nkind = "simulated"\n' + text + "\n")


def test_engage_live_with_a_strap_that_never_connects_and_a_face_that_drops_out(tmp_path):
    """The user's view: the session runs to its end, says which stream is missing and when the face was
    lost, and the recording holds the streams that did come."""
    import subprocess
    import sys

    import pyxdf

    profile = tmp_path / "flaky.toml"
    profile.write_text('[sensor.viewer]\nkind = "simulated"\nseed = 4\nwears = ["ecg", "eda", "face", "ppg"]\n'
                       '[sensor.viewer.faults]\nnever = ["ecg"]\ndropouts = [["face", 60, 20]]\n')
    xdf = tmp_path / "flaky.xdf"
    r = subprocess.run([sys.executable, "-m", "engage", "live", "--profile", str(profile), "--speed", "0",
                        "--duration", "100", "--record", str(xdf), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "sim-viewer-1-ecg" in out and "not connected" in out
    assert "sim-viewer-1-face 20.0 s (stream recovered)" in out
    streams, _ = pyxdf.load_xdf(str(xdf))
    names = {s["info"]["name"][0] for s in streams}
    assert {"sim-viewer-1-eda", "sim-viewer-1-face", "sim-viewer-1-ppg", "viewer-1-heart-rate"} <= names
    assert "sim-viewer-1-ecg" not in names
    face = next(s for s in streams if s["info"]["name"][0] == "sim-viewer-1-face")
    t = face["time_stamps"] - face["time_stamps"][0]
    assert not np.any((t > 60.05) & (t < 79.95)) and t[-1] > 99


def test_a_viewer_keeping_ten_minutes_of_truth_makes_the_same_signals_and_forgets_the_rest():
    """engage live keeps 10 minutes of a simulated viewer's ground truth (issue 25: a 4-h session grew 4 MB/h)."""
    import numpy as np

    from engage.core import Context, Event, EventBus, VirtualClock
    from engage.sensors.simulated import SimulatedViewer

    def run(**kw):
        viewer = SimulatedViewer(seed=5, sensors=("ecg", "eda", "face"), **kw)
        viewer.start(Context(VirtualClock(), EventBus()))
        viewer.ctx.bus.publish(Event("scene.start", 0.0, "viewer-1", evidence={"scene": "a", "intensity": 0.8}))
        chunks = []
        for until in np.arange(7.0, 1500.0, 7.0):
            chunks += viewer.read(float(until))
        return viewer, chunks

    everything, full = run()
    bounded, kept = run(history_s=60.0)
    assert len(full) == len(kept)
    for a, b in zip(full, kept):
        assert a.info.name == b.info.name
        np.testing.assert_array_equal(a.timestamps, b.timestamps)
        np.testing.assert_array_equal(a.data, b.data)
    truth = bounded.truth_array()
    assert 60.0 <= truth[-1, 0] - truth[0, 0] <= 121.0
    np.testing.assert_array_equal(truth, everything.truth_array()[-len(truth):])
    assert bounded.latent_state(truth[-1, 0]) == everything.latent_state(truth[-1, 0])
    with pytest.raises(ValueError, match="no latent state"):
        bounded.latent_state(100.0)
    assert len(bounded._lat) <= 2048 < len(everything._lat)  # 2 x 60 s of steps, not the whole 25 min
    assert bounded.true_beats == [r for r in everything.true_beats if r >= truth[0, 0]]
