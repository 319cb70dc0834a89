"""Beats → HR and HRV: time-domain parity with NeuroKit2, ectopic handling, LF/HF availability, windows."""

from __future__ import annotations

import neurokit2 as nk
import numpy as np
import pytest

from engage.signals.hrv import BeatTracker, hrv_time, lf_hf_ratio


def _tachogram(n=400, seed=0):
    rng = np.random.default_rng(seed)
    k = np.arange(n) * 0.8
    return 0.8 + 0.05 * np.sin(2 * np.pi * 0.1 * k) + 0.02 * np.sin(2 * np.pi * 0.25 * k) \
        + 0.005 * rng.standard_normal(n)


def test_time_domain_matches_neurokit():
    rr = _tachogram()
    peaks = np.round(np.concatenate([[0], np.cumsum(rr)]) * 1000).astype(int)
    ref = nk.hrv_time(peaks, sampling_rate=1000)
    ours = hrv_time(np.diff(peaks) / 1000)
    assert ours["mean_rr"] * 1000 == pytest.approx(ref["HRV_MeanNN"].iloc[0], rel=1e-9)
    assert ours["sdnn"] * 1000 == pytest.approx(ref["HRV_SDNN"].iloc[0], rel=1e-9)
    assert ours["rmssd"] * 1000 == pytest.approx(ref["HRV_RMSSD"].iloc[0], rel=1e-9)


def test_lf_hf_sees_which_band_dominates():
    rr = _tachogram()
    t = np.cumsum(rr)
    assert lf_hf_ratio(t, rr) > 2  # 0.1 Hz (LF) oscillation is the larger
    k = np.arange(400) * 0.8
    rr_hf = 0.8 + 0.01 * np.sin(2 * np.pi * 0.1 * k) + 0.05 * np.sin(2 * np.pi * 0.25 * k)
    assert lf_hf_ratio(np.cumsum(rr_hf), rr_hf) < 0.5
    assert np.isnan(lf_hf_ratio(t[:20], rr[:20]))


def test_tracker_flags_ectopics_and_keeps_them_out_of_hrv():
    rr = np.full(200, 0.8) + 0.01 * np.sin(np.arange(200))
    clean = BeatTracker(window_s=60)
    with_pvc = BeatTracker(window_s=60)
    t_clean, t_pvc = 0.0, 0.0
    flagged = 0
    last_clean = last_pvc = None
    for i, r in enumerate(rr):
        t_clean += r
        last_clean = clean.update(t_clean) or last_clean
        if i % 10 == 5:  # a premature beat and its compensatory pause replace one interval
            for part in (0.45 * r, 1.55 * r):
                t_pvc += part
                out = with_pvc.update(t_pvc)
                flagged += bool(out and out[0]["ectopic"])
        else:
            t_pvc += r
            last_pvc = with_pvc.update(t_pvc) or last_pvc
    assert flagged >= 0.9 * 2 * 20
    a, b = last_clean[1], last_pvc[1]
    assert b["rmssd"] == pytest.approx(a["rmssd"], rel=0.25) and b["quality"] < a["quality"]
    assert b["sdnn"] == pytest.approx(a["sdnn"], rel=0.25)


def test_lf_hf_appears_after_two_minutes_of_clean_beats():
    tr = BeatTracker(window_s=30)
    t, first = 0.0, None
    for r in _tachogram(300):
        t += r
        out = tr.update(t)
        if out and out[1] is not None and np.isfinite(out[1]["lf_hf"]) and first is None:
            first = t
    assert first is not None and 120 <= first <= 130


def test_window_bounds_and_implausible_intervals():
    with pytest.raises(ValueError, match="30-120"):
        BeatTracker(window_s=10)
    tr = BeatTracker()
    assert tr.update(1.0) is None
    hr, _ = tr.update(6.0)  # a 5 s interval
    assert hr["quality"] == 0 and np.isfinite(hr["hr_bpm"])
    assert tr.update(5.0) is None and tr.rejected == 1  # going back in time restarts the chain
    hr, _ = tr.update(5.8)
    assert hr["rr_s"] == pytest.approx(0.8) and hr["quality"] == 1
