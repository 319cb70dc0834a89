"""A simulated viewer in a flat, low-intensity three-minute film gets bored, and the sensing stack,
which sees only the viewer's ECG, skin conductance and face, notices: the acceptance of issue 21's
simulator (boredom comes from the story, and shows only through physiology and the face)."""

from __future__ import annotations

import numpy as np
import pytest

from engage.core import VirtualClock
from engage.plots import plot_truth_vs_sensed
from engage.sensors.simulated import SimulatedViewer
from engage.session import Session

#: Three one-minute scenes at intensity 0.2, one tone: nothing happens.
FLAT_FILM = ((0.0, 0.2, "calm", "platform"), (60.0, 0.2, "calm", "waiting room"), (120.0, 0.2, "calm", "corridor"))


def watch(seed: int, scenes=FLAT_FILM, duration: float = 180.0):
    viewer = SimulatedViewer(seed=seed)
    for t, intensity, tone, scene in scenes:
        viewer.on_scene(intensity, tone, timestamp=t, scene=scene)
    result = Session([viewer], VirtualClock(0.0), story=None).run(duration=duration)
    return viewer, result


@pytest.fixture(scope="module")
def flat_film_runs():
    return {seed: watch(seed) for seed in range(4)}


def test_viewers_in_a_flat_film_get_bored_and_the_sensing_stack_detects_it(flat_film_runs, tmp_path):
    panels = []
    for seed, (viewer, result) in flat_film_runs.items():
        truth = viewer.truth_array()
        assert truth[-1, 2] > 0.5, f"seed {seed}: not bored by the end of the film"
        bored_from = float(truth[truth[:, 2] > 0.5, 0][0])
        onsets = [e.timestamp for e in result.log.events if e.type == "boredom.onset"]
        # after the calibration minute, the stack announces boredom, not long before the viewer feels it
        assert onsets and bored_from - 20.0 <= onsets[0] <= 180.0, (seed, bored_from, onsets)
        t, sensed = result.log.array("Engagement", "boredom")
        bored = np.interp(t, truth[:, 0], truth[:, 2]) > 0.5
        assert sensed[bored & (t > 60)].mean() > 0.4, seed
        panels.append((f"seed {seed}: bored from {bored_from:.0f} s, boredom.onset at {onsets[0]:.0f} s", truth,
                       result.log))
    png = plot_truth_vs_sensed(panels, tmp_path / "flat_film_boredom.png",
                               title="a flat 3-min film (3 calm scenes, intensity 0.2): true vs sensed boredom")
    assert png.stat().st_size > 20_000


def test_the_sensed_boredom_comes_only_from_the_signals(flat_film_runs):
    """The pipeline never reads the viewer's latent state: the same signals replayed from a recording
    give the same boredom, bit for bit."""
    from engage.sensors.replay import RecordingSource

    viewer, result = flat_film_runs[0]
    fresh = SimulatedViewer(seed=0)
    for t, intensity, tone, scene in FLAT_FILM:
        fresh.on_scene(intensity, tone, timestamp=t, scene=scene)
    recording = RecordingSource("viewer-1")
    for c in fresh.read(180.0):
        recording.add_track(c.info, c.data, c.timestamps)
    replayed = Session([recording], VirtualClock(0.0), story=None).run(duration=180.0)
    assert np.array_equal(replayed.log.array("Engagement", "boredom")[1], result.log.array("Engagement", "boredom")[1])
