"""Thin signal steps of the walking skeleton: ECG beats, EDA responses, face blinks."""

from __future__ import annotations

import neurokit2 as nk
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage.core import Chunk, Context, EventBus, StreamInfo, VirtualClock
from engage.signals.cardiac import EcgHeartRate
from engage.signals.eda import EdaFeatures
from engage.signals.face import FaceFeatures


def _run(processor, info, x, t, chunk_size):
    processor.start(Context(VirtualClock(), EventBus()))
    out = []
    for i in range(0, len(x), chunk_size):
        out += processor.process(Chunk.from_rows(info, x[i:i + chunk_size], t[i:i + chunk_size]))
    if not out:
        return np.zeros(0), np.zeros((0, 1))
    return np.concatenate([o.timestamps for o in out]), np.vstack([o.data for o in out])


@pytest.mark.parametrize("fs", [128, 250, 360, 1000])
def test_ecg_beats_match_neurokit_and_do_not_depend_on_chunking(fs):
    ecg = nk.ecg_simulate(duration=60, sampling_rate=fs, heart_rate=75, noise=0.05, random_state=2)
    t = np.arange(len(ecg)) / fs
    info = StreamInfo("ecg", "ECG", ("ecg",), ("mV",), float(fs), "s")
    results = [_run(EcgHeartRate(), info, ecg[:, None], t, n) for n in (7, 256, len(ecg))]
    for other in results[1:]:
        assert np.array_equal(results[0][0], other[0]) and np.array_equal(results[0][1], other[1])
    beats, rows = results[0]
    reference = nk.ecg_peaks(ecg, sampling_rate=fs)[1]["ECG_R_Peaks"] / fs
    matched = [np.min(np.abs(reference - b)) <= 0.02 for b in beats]
    assert np.mean(matched) >= 0.97 and len(beats) >= len(reference) - 4
    assert abs(np.median(rows[:, 0]) - 75) < 3


def test_ecg_survives_nan_bursts_and_flat_lines():
    fs = 250
    ecg = nk.ecg_simulate(duration=30, sampling_rate=fs, heart_rate=70, random_state=1)
    ecg[2000:2300] = np.nan
    ecg[4000:5000] = 0.0
    t = np.arange(len(ecg)) / fs
    beats, rows = _run(EcgHeartRate(), StreamInfo("ecg", "ECG", ("ecg",), ("mV",), fs, "s"), ecg[:, None], t, 25)
    assert np.all(np.isfinite(rows))
    assert len(beats) > 20


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=300),
       st.integers(1, 50))
def test_ecg_never_raises_on_arbitrary_samples(values, chunk):
    x = np.array(values, dtype=float)[:, None]
    t = np.arange(len(x)) / 250.0
    beats, rows = _run(EcgHeartRate(), StreamInfo("ecg", "ECG", ("ecg",), ("mV",), 250.0, "s"), x, t, chunk)
    assert len(beats) == len(rows)


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


def test_face_blinks_and_attention():
    fs = 30.0
    n = int(60 * fs)
    t = np.arange(n) / fs
    ear = np.full(n, 0.3)
    blink_starts = np.arange(90, n - 30, 150)
    for s in blink_starts:
        ear[s:s + 6] = 0.06  # 200 ms blinks
    present = np.ones(n)
    present[1200:1230] = 0
    on = np.ones(n)
    on[600:900] = 0
    data = np.column_stack([present, ear, ear, on])
    info = StreamInfo("f", "Face", ("face_present", "ear_left", "ear_right", "gaze_on_screen"),
                      ("bool", "ratio", "ratio", "bool"), fs, "s")
    _, rows = _run(FaceFeatures(), info, data, t, 4)
    blinks = rows[:, 2][rows[:, 2] > 0]
    assert len(blinks) >= len(blink_starts) - 1  # one may fall in the face dropout
    assert np.allclose(blinks, 0.2, atol=0.04)
    assert rows[600:900, 1].sum() == 0 and rows[1200:1230, 0].sum() == 0
