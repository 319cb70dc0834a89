"""Beat times back-dated from RR intervals onto the LSL clock, against the real beat times of
MIT-BIH record 100 (a strap with a drifting crystal, radio latency, merged and lost notifications)."""

import numpy as np
import pytest

from engage.sensors.ble.clock import BeatTimer, DeviceClockMapper

BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")


def mitdb_beats(root) -> np.ndarray:
    wfdb = pytest.importorskip("wfdb")
    ann = wfdb.rdann(str(root / "mitdb_100" / "100"), "atr")
    samples = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in BEAT_SYMBOLS])
    return samples / float(ann.fs)


def strap_ticks(beats: np.ndarray, drift: float) -> np.ndarray:
    """RR ticks of a strap whose 1024 Hz counter runs ``drift`` fast: beats are stamped by the
    counter, so the intervals sum exactly."""
    d = np.round((beats - beats[0]) * 1024 * (1 + drift)).astype(np.int64)
    return np.diff(d)


def run_strap(beats_lsl, rr, rng, merge_p=0.25, lose=()):
    """Notify after each beat (latency 3-40 ms); a fraction merged into the next notification;
    notifications with index in ``lose`` never arrive. Returns (estimated, true) beat times."""
    send = beats_lsl[1:] + rng.uniform(0.003, 0.040, len(rr))
    keep = rng.random(len(rr)) > merge_p
    keep[-1] = True
    timer = BeatTimer()
    est, truth, start = [], [], 0
    for n, i in enumerate(np.flatnonzero(keep)):
        if n in lose:
            start = i + 1
            continue
        est.append(timer.feed(send[i], rr[start:i + 1]))
        truth.append(beats_lsl[start + 1:i + 2])
        start = i + 1
    return np.concatenate(est), np.concatenate(truth), timer


@pytest.mark.realdata
@pytest.mark.parametrize("drift", [0.0, 80e-6, -150e-6])
def test_mitdb_beat_times_within_10ms(shared_data, drift):
    beats = mitdb_beats(shared_data)
    assert len(beats) > 2000  # 30 min of real rhythm
    lsl = beats + 5000.0
    est, truth, timer = run_strap(lsl, strap_ticks(beats, drift), np.random.default_rng(1))
    err = est - truth
    settled = truth > lsl[0] + 10.0  # the first beats only know their own notification's latency
    assert np.abs(err[settled]).max() < 0.010
    assert np.median(np.abs(err[settled])) < 0.005
    assert np.abs(err).max() < 0.045  # even the first beat is off by no more than one latency
    # without drift estimation the end of the record would be off by drift × 1800 s
    assert timer.mapper.drift == pytest.approx(-drift, abs=3e-5)
    assert timer.resyncs == 0


@pytest.mark.realdata
def test_lost_notifications_resync(shared_data):
    beats = mitdb_beats(shared_data)
    lsl = beats + 100.0
    lose = set(range(500, 505)) | {1200, 1201, 1202, 1203}
    est, truth, timer = run_strap(lsl, strap_ticks(beats, 50e-6), np.random.default_rng(2), lose=lose)
    assert timer.resyncs == 2
    err = np.abs(est - truth)
    # the beats after a loss are back on time once the envelope has re-formed
    assert np.percentile(err, 99) < 0.010
    assert err.max() < 0.045


def test_mapper_drift_and_offset_from_lower_envelope():
    rng = np.random.default_rng(3)
    m = DeviceClockMapper()
    d = np.cumsum(rng.uniform(0.5, 1.2, 800))
    true = 1234.5 + d * (1 + 120e-6)
    for di, ti in zip(d, true + rng.exponential(0.02, len(d)) + 0.002):
        m.add(di, ti)
    assert m.drift == pytest.approx(120e-6, abs=2e-5)
    assert m.map(d[-1]) - true[-1] == pytest.approx(0.002, abs=0.003)


def test_arrival_before_mapping_moves_it_down():
    t = BeatTimer()
    t.feed(10.5, [1024])
    (b,) = t.feed(11.4, [1024])
    assert b == pytest.approx(11.4)
    assert t.feed(12.0, []).size == 0


def test_reconnection_starts_new_segment():
    t = BeatTimer()
    t.feed(10.0, [800, 800])
    t.new_segment()
    out = t.feed(500.0, [900])
    assert out[0] == pytest.approx(500.0)
