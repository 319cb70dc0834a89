"""Thin signal steps of the walking skeleton: face blinks (cardiac and EDA tests: test_cardiac.py, test_eda.py)."""

from __future__ import annotations

import numpy as np

from engage.core import StreamInfo
from engage.signals.face import FaceFeatures
from support.processing import run_processor as _run


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
