"""Respiration rate from a belt: counts and rate against NeuroKit2, chunk invariance, bad input."""

from __future__ import annotations

import neurokit2 as nk
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage.core import Chunk, Context, EventBus, StreamInfo, VirtualClock
from engage.signals.respiration import RespirationRate, detect_breaths


def _run(x, fs, chunk, t=None):
    p = RespirationRate()
    events = []
    bus = EventBus()
    bus.subscribe(events.append)
    p.start(Context(VirtualClock(), bus))
    info = StreamInfo("belt", "RSP", ("rsp",), ("au",), float(fs), "b")
    t = np.arange(len(x)) / fs if t is None else t
    out = [c for i in range(0, len(x), chunk) for c in p.process(Chunk(info, x[i:i + chunk, None], t[i:i + chunk]))]
    rows = np.vstack([c.data for c in out]) if out else np.zeros((0, 3))
    times = np.concatenate([c.timestamps for c in out]) if out else np.zeros(0)
    return times, rows, events


def test_simulated_rate_and_chunk_invariance():
    fs = 50
    rsp = nk.rsp_simulate(duration=120, sampling_rate=fs, respiratory_rate=12, random_state=3)
    runs = [_run(rsp, fs, n) for n in (1, 7, 256, len(rsp))]
    for other in runs[1:]:
        assert np.array_equal(runs[0][0], other[0]) and np.array_equal(runs[0][1], other[1])
    rows = runs[0][1]
    assert abs(np.median(rows[:, 0]) - 12) < 1 and rows[:, 2].min() == 1


def test_nan_run_gives_quality_zero_and_never_raises():
    fs = 25
    rsp = nk.rsp_simulate(duration=90, sampling_rate=fs, respiratory_rate=15, random_state=1)
    rsp[1000:1100] = np.nan
    times, rows, _ = _run(rsp, fs, 10)
    assert np.all(np.isfinite(rows))
    assert rows[(times > 40) & (times < 48), 2].max(initial=0) == 0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=300), st.integers(1, 30))
def test_never_raises_on_arbitrary_samples(values, chunk):
    x = np.array(values, dtype=float)
    _, rows, _ = _run(x, 10.0, chunk)
    assert rows.shape[1] == 3


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["bio_resting_8min_100hz.csv", "bio_eventrelated_100hz.csv",
                                  "bio_resting_5min_100hz.csv"])
def test_breath_count_and_rate_match_neurokit(shared_data, name):
    x = pd.read_csv(shared_data / "neurokit2_samples" / name)["RSP"].to_numpy(dtype=float)
    ref = nk.rsp_process(x, sampling_rate=100)[1]["RSP_Peaks"]
    ours = detect_breaths(x, 100, chunk=7)
    assert abs(len(ours) - len(ref)) <= max(2, 0.05 * len(ref))
    assert abs(60 / np.median(np.diff(ours) / 100) - 60 / np.median(np.diff(ref) / 100)) < 0.5
