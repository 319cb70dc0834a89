"""Streaming EDA: tonic/phasic split, SCRs, bad samples, chunk invariance, parity with NeuroKit2."""

from __future__ import annotations

import numpy as np

from engage.core import Chunk, Context, EventBus, StreamInfo, VirtualClock
from engage.signals.eda import EdaFeatures


def _run(processor, info, x, t, chunk_size):
    processor.start(Context(VirtualClock(), EventBus()))
    out = []
    for i in range(0, len(x), chunk_size):
        out += processor.process(Chunk.from_rows(info, x[i:i + chunk_size], t[i:i + chunk_size]))
    if not out:
        return np.zeros(0), np.zeros((0, 1))
    return np.concatenate([o.timestamps for o in out]), np.vstack([o.data for o in out])


def test_eda_counts_responses_and_marks_bad_samples():
    fs = 16.0
    t = np.arange(0, 120, 1 / fs)
    x = 4.0 + 0.002 * t
    onsets = [10, 35, 60, 90]
    for o in onsets:  # Bateman-shaped SCRs of 0.3 µS
        s = np.clip(t - o, 0, None)
        x = x + 0.3 * (np.exp(-s / 6.0) - np.exp(-s / 1.0)) / 0.6
    x[1000:1010] = np.nan
    info = StreamInfo("eda", "EDA", ("eda",), ("uS",), fs, "s")
    a = _run(EdaFeatures(), info, x[:, None], t, 5)
    b = _run(EdaFeatures(), info, x[:, None], t, len(t))
    assert np.array_equal(a[1], b[1])
    rows = a[1]
    assert np.count_nonzero(rows[:, 2]) == len(onsets)
    assert rows[1000:1010, 3].sum() == 0 and rows[:1000, 3].min() == 1.0
    assert np.all(np.isfinite(rows))


