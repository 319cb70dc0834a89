"""Time is bounded: timestamps outside a sane range are a clear error or a marked gap, and every
loop that advances time advances (issue 25, item 2: ``FeatureWindow.tick`` added 1 s to 1e17, a
number that no longer changes, and looped forever while memory grew)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from engage.core import Chunk, EventBus, Runtime, StreamInfo, VirtualClock
from engage.core.clock import MAX_TIMESTAMP_S
from engage.datasets import Recording, Track
from engage.models.windows import FeatureWindow, step_after
from engage.models.wrist import Collector, WristFeatureWindow

HR = StreamInfo("hr", "HeartRate", ("hr_bpm", "rr_s", "quality"), ("bpm", "s", "ratio"), 1.0, "hr")


def hr_chunk(t) -> Chunk:
    t = np.asarray(t, dtype=float)
    return Chunk(HR, np.column_stack([np.full(t.size, 70.0), np.full(t.size, 0.85), np.ones(t.size)]), t)


def test_step_after_always_advances():
    assert step_after(10.0, 1.0) == 11.0
    for t in (1e16, 1e17, 1e300):
        assert step_after(t, 1.0) > t


@pytest.mark.timeout(20)
@pytest.mark.parametrize("window", [FeatureWindow(window_s=30, hop_s=1), WristFeatureWindow(60, 5)],
                         ids=["rules", "wrist"])
def test_windows_at_huge_timestamps_end_and_mark_a_gap(window):
    rt = Runtime(VirtualClock(), [], [window], bus=EventBus())
    events = []
    rt.bus.subscribe(events.append)
    window.start(rt.ctx)
    assert window.process(hr_chunk([1e17, 1e17])) == []
    assert window.tick(1e17) == [] and window.tick(1e17 + 64) == []
    gaps = [e for e in events if e.type == "sensor.gap"]
    assert len(gaps) == 1 and "outside" in gaps[0].evidence["reason"]
    assert rt.ctx.counters[f"{window.name}.out_of_range_samples"] == 2
    # one corrupted timestamp among good ones: the good rows still make windows
    window.process(hr_chunk([np.nan, -1e30, *np.arange(100.0, 200.0)]))
    rows = window.tick(199.0) + window.tick(205.0)  # the rules' window waits up to 5 s for its other inputs
    assert rows and all(np.isfinite(r.timestamps).all() and r.timestamps.max() <= 205.0 for r in rows)


@pytest.mark.timeout(20)
def test_wrist_window_after_a_clock_jump_of_years_stays_bounded():
    w = WristFeatureWindow(60, 5)
    w.process(hr_chunk(np.arange(0.0, 120.0)))
    w.tick(120.0)
    w.process(hr_chunk(np.arange(3e8, 3e8 + 120)))
    (chunk,) = w.tick(3e8 + 120)
    # an hour of empty windows after the silence began, then the windows that can hold data
    assert len(chunk) < (3600 + 2 * 60) / 5 + 5
    assert np.isfinite(chunk.data[-1, 0])


@pytest.mark.timeout(30)
def test_dataset_replay_with_corrupt_timestamps_drops_them():
    t = np.arange(0.0, 300.0)
    t[[5, 150]] = [1e17, -4e12]  # two corrupted times in a 5-minute heart-rate track
    rec = Recording("v", [Track(HR, hr_chunk(t).data, t)])
    src = rec.source()
    assert src.dropped_samples == 2
    col = Collector("WristFeatures")
    Runtime(VirtualClock(), [src], [WristFeatureWindow(60, 5), col], bus=EventBus(), step=1.0).run()
    ts, X = col.arrays()
    assert len(ts) > 40 and ts.max() < 400


def run_engage(*args, cwd, timeout=60):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.run([sys.executable, "-m", "engage", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.timeout(150)
def test_replaying_a_csv_at_1e17_is_a_clear_error(tmp_path):
    (tmp_path / "x.csv").write_text("timestamp,hr\n1e17,70\n1e17,71\n")  # the 29-byte file of the issue
    assert (tmp_path / "x.csv").stat().st_size == 29
    r = run_engage("replay", "x.csv", "--type", "HeartRate", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "x.csv: line 2" in r.stderr and "outside" in r.stderr and "Traceback" not in r.stderr
    assert f"{MAX_TIMESTAMP_S:g}" in r.stderr
