"""Streaming cardiac processing: ECG/PPG beat detection, strap RR, chunk invariance, bad input, real data."""

from __future__ import annotations

import json
from fractions import Fraction

import neurokit2 as nk
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from engage.cli import main as cli_main
from engage.core import Chunk, Context, EventBus, StreamInfo, VirtualClock
from engage.signals.beats import EcgBeatDetector, PpgBeatDetector, detect_ecg_beats, detect_ppg_beats
from engage.signals.cardiac import HR_CHANNELS, EcgHeartRate, PpgHeartRate, StrapRrHeartRate
from engage.signals.hrv import HRV_CHANNELS, hrv_nn, hrv_time


def _ecg_info(fs: float, source: str = "s") -> StreamInfo:
    return StreamInfo("ecg", "ECG", ("ecg",), ("mV",), float(fs), source)


def run(processor, info, x, t, chunk_size):
    """Feed ``x`` in chunks; return {stream type: (timestamps, rows)}, the events and the counters."""
    events = []
    bus = EventBus()
    bus.subscribe(events.append)
    ctx = Context(VirtualClock(), bus)
    processor.start(ctx)
    out: dict[str, list[Chunk]] = {}
    x = np.asarray(x, dtype=float).reshape(len(t), -1)
    for i in range(0, len(t), chunk_size):
        for c in processor.process(Chunk(info, x[i:i + chunk_size], np.asarray(t[i:i + chunk_size], dtype=float))):
            out.setdefault(c.info.type, []).append(c)
    res = {k: (np.concatenate([c.timestamps for c in v]), np.vstack([c.data for c in v])) for k, v in out.items()}
    return res, events, ctx.counters


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k][0], b[k][0]) and np.array_equal(a[k][1], b[k][1],
                                                                                          equal_nan=True) for k in a)


def _within(ref_idx, det_idx, fs, tol_s):
    det = np.asarray(det_idx)
    return np.array([np.min(np.abs(det - r)) / fs <= tol_s for r in ref_idx])


# ---------------------------------------------------------------- chunk invariance


@pytest.mark.parametrize("fs", [100, 128, 250, 360, 1000])
def test_ecg_beats_and_hrv_do_not_depend_on_chunking(fs):
    ecg = nk.ecg_simulate(duration=45, sampling_rate=fs, heart_rate=72, noise=0.08, random_state=fs)
    ecg += 0.4 * np.sin(2 * np.pi * 0.15 * np.arange(len(ecg)) / fs)  # baseline wander
    t = 100.0 + np.arange(len(ecg)) / fs
    results = [run(EcgHeartRate(), _ecg_info(fs), ecg, t, n)[0] for n in (1, 7, 256, len(ecg))]
    for other in results[1:]:
        assert _same(results[0], other)
    beats, rows = results[0]["HeartRate"]
    reference = nk.ecg_peaks(nk.ecg_clean(ecg, sampling_rate=fs), sampling_rate=fs)[1]["ECG_R_Peaks"]
    assert _within(reference[1:], np.round((beats - 100.0) * fs), fs, 0.02).mean() >= 0.97
    assert abs(np.median(rows[:, HR_CHANNELS.index("hr_bpm")]) - 72) < 3
    assert "HRV" in results[0] and results[0]["HRV"][1].shape[1] == len(HRV_CHANNELS)


def test_ppg_pulses_do_not_depend_on_chunking():
    fs = 100
    ppg = nk.ppg_simulate(duration=60, sampling_rate=fs, heart_rate=80, random_state=4)
    t = np.arange(len(ppg)) / fs
    info = StreamInfo("ppg", "PPG", ("ppg",), ("au",), float(fs), "p")
    results = [run(PpgHeartRate(), info, ppg, t, n)[0] for n in (1, 7, 256, len(ppg))]
    for other in results[1:]:
        assert _same(results[0], other)
    rows = results[0]["HeartRate"][1]
    assert abs(np.median(rows[:, 0]) - 80) < 4


def test_detector_indices_are_identical_for_every_chunking():
    ecg = nk.ecg_simulate(duration=30, sampling_rate=500, heart_rate=95, noise=0.2, random_state=9)
    whole = detect_ecg_beats(ecg, 500)
    for n in (1, 7, 256):
        assert np.array_equal(whole, detect_ecg_beats(ecg, 500, chunk=n))
    ppg = nk.ppg_simulate(duration=30, sampling_rate=64, heart_rate=70, random_state=2)
    assert np.array_equal(detect_ppg_beats(ppg, 64), detect_ppg_beats(ppg, 64, chunk=7))


# ---------------------------------------------------------------- robustness


def test_premature_ventricular_beats_are_found_and_flagged_ectopic():
    """Wide, tall, premature beats (every 4th) are detected and marked ectopic; HRV leaves them out."""
    fs = 360
    rng = np.random.default_rng(3)
    times, t = [], 1.0
    for k in range(120):
        t += 0.85 * (0.6 if k % 4 == 3 else 1.0) + (0.5 if k % 4 == 0 and k else 0.0) + 0.01 * rng.standard_normal()
        times.append(t)
    n = int((times[-1] + 2) * fs)
    x = 0.02 * rng.standard_normal(n)
    tt = np.arange(n) / fs
    for k, bt in enumerate(times):
        if k % 4 == 3:  # PVC: wide, inverted-then-tall, no P wave
            x += 1.8 * np.exp(-0.5 * ((tt - bt) / 0.03) ** 2) - 0.8 * np.exp(-0.5 * ((tt - bt - 0.07) / 0.04) ** 2)
        else:
            x += np.exp(-0.5 * ((tt - bt) / 0.01) ** 2) + 0.25 * np.exp(-0.5 * ((tt - bt - 0.25) / 0.05) ** 2)
    res, _, _ = run(EcgHeartRate(), _ecg_info(fs), x, tt, 100)
    beats, rows = res["HeartRate"]
    found = _within(np.round(np.array(times) * fs), np.round(beats * fs), fs, 0.05)
    assert found[1:].mean() >= 0.99 and len(beats) <= len(times)
    ectopic = rows[:, HR_CHANNELS.index("ectopic")] > 0
    assert ectopic.sum() >= 0.4 * len(times) / 4  # premature beats and their pauses are flagged
    assert np.all(rows[ectopic, HR_CHANNELS.index("quality")] < 0.5)


def test_noise_burst_does_not_blind_the_detector():
    fs = 250
    ecg = nk.ecg_simulate(duration=60, sampling_rate=fs, heart_rate=70, random_state=5)
    rng = np.random.default_rng(0)
    ecg[5000:5500] += 3.0 * rng.standard_normal(500)  # 2 s of heavy noise
    beats = detect_ecg_beats(ecg, fs)
    ref = nk.ecg_peaks(nk.ecg_simulate(duration=60, sampling_rate=fs, heart_rate=70, random_state=5),
                       sampling_rate=fs)[1]["ECG_R_Peaks"]
    after = ref[ref > 6000]
    assert _within(after, beats, fs, 0.02).mean() >= 0.99


def test_bad_samples_mark_gaps_and_lower_quality():
    fs = 250
    ecg = nk.ecg_simulate(duration=60, sampling_rate=fs, heart_rate=70, random_state=1)
    ecg[2500:3000] = np.nan  # 2 s NaN
    ecg[6000:7500] = 0.3  # 6 s flat line (lead off)
    ecg[10000:10500] = np.clip(ecg[10000:10500], -0.1, 0.1)  # clipped
    t = np.arange(len(ecg)) / fs
    res, events, counters = run(EcgHeartRate(), _ecg_info(fs), ecg, t, 25)
    beats, rows = res["HeartRate"]
    assert np.all(np.isfinite(rows))
    gaps = [e for e in events if e.type == "sensor.gap"]
    assert gaps and all({"stream", "duration_s", "reason"} <= set(e.evidence) for e in gaps)
    flat_gap = [e for e in gaps if e.timestamp < 30 and e.timestamp + e.evidence["duration_s"] > 26]
    assert flat_gap, [(e.timestamp, e.evidence) for e in gaps]
    assert counters["ecg-heart-rate.nan_samples"] == 500
    assert not np.any((beats > 24.5) & (beats < 29.5) & (rows[:, 2] > 0.5))  # nothing good from the flat line
    assert len(beats) > 50


def test_timestamp_faults_and_rate_change_are_survived():
    fs = 250
    ecg = nk.ecg_simulate(duration=40, sampling_rate=fs, heart_rate=70, random_state=2)
    t = np.arange(len(ecg)) / fs
    t[3000:3010] = t[2990]  # duplicates
    t[5000:5005] = t[5000:5005][::-1]  # out of order
    t[7000:] += 20.0  # a 20 s jump (samples lost)
    info = _ecg_info(fs, "dev")
    p = EcgHeartRate()
    res, events, counters = run(p, info, ecg, t, 50)
    beats, rows = res["HeartRate"]
    assert np.all(np.diff(beats) > 0)
    reasons = " ".join(e.evidence["reason"] for e in events if e.type == "sensor.gap")
    assert "out-of-order" in reasons and "jump" in reasons
    assert counters["ecg-heart-rate.timestamps_out_of_order"] > 0
    assert not np.any(rows[:, 1] > 15)  # no interval spans the jump
    # the same device continues at another rate: a new detector, a gap, no exception
    ecg2 = nk.ecg_simulate(duration=20, sampling_rate=500, heart_rate=70, random_state=3)
    t2 = t[-1] + 0.002 + np.arange(len(ecg2)) / 500
    info2 = StreamInfo("ecg", "ECG", ("ecg",), ("mV",), 500.0, "dev")
    out = []
    for i in range(0, len(ecg2), 100):
        out += p.process(Chunk(info2, ecg2[i:i + 100, None], t2[i:i + 100]))
    assert sum(len(c) for c in out if c.info.type == "HeartRate") > 15
    assert any("sampling rate changed" in e.evidence.get("reason", "") for e in events)
    assert p.ctx.counters["ecg-heart-rate.gaps"] >= 3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=400),
       st.lists(st.one_of(st.floats(-1e3, 1e3), st.just(float('nan'))), min_size=1, max_size=400), st.integers(1, 60),
       st.sampled_from([100.0, 128.0, 360.0]))
def test_sampled_processors_never_raise(values, times, chunk, fs):
    x = np.array(values, dtype=float)
    t = np.resize(np.array(times, dtype=float), len(x))
    for proc, kind in ((EcgHeartRate(), "ECG"), (PpgHeartRate(), "PPG")):
        info = StreamInfo("s", kind, (kind.lower(),), ("au",), fs, "h")
        res, events, _ = run(proc, info, x, t, chunk)
        for _, rows in res.values():
            assert rows.ndim == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.floats(-10, 10), st.just(float('nan'))), st.floats(allow_nan=True, allow_infinity=True),
                          st.sampled_from([0.0, 1.0, np.nan])), min_size=1, max_size=100))
def test_strap_rr_never_raises(rows):
    info = StreamInfo("rr", "RR", ("rr_s", "contact"), ("s", "bool"), 0.0, "strap")
    t = np.cumsum([abs(r[0]) if np.isfinite(r[0]) else 0.5 for r in rows])
    data = np.array([[r[1], r[2]] for r in rows], dtype=float)
    res, events, _ = run(StrapRrHeartRate(), info, data, t, 3)
    if "HeartRate" in res:
        assert np.all(np.isfinite(res["HeartRate"][1][:, :3]))


def test_strap_rr_zero_long_and_lost_contact():
    info = StreamInfo("rr", "RR", ("rr_s", "contact"), ("s", "bool"), 0.0, "strap")
    rr = np.full(120, 0.8)
    rr[30] = 0.0  # a zero interval
    rr[60] = 5.0  # a 5 s interval
    contact = np.ones(120)
    contact[90:95] = 0
    t = 10.0 + np.cumsum(rr)
    res, events, counters = run(StrapRrHeartRate(), info, np.column_stack([rr, contact]), t, 8)
    beats, rows = res["HeartRate"]
    assert len(beats) == 119 - 1 + 1  # the zero is dropped; the first beat has its own interval
    q = rows[:, HR_CHANNELS.index("quality")]
    assert q[np.isclose(rows[:, 1], 5.0)] == 0 and np.all(q[np.isin(beats, t[90:95])] == 0)
    reasons = [e.evidence["reason"] for e in events if e.type == "sensor.gap"]
    assert any("invalid RR" in r for r in reasons) and any("implausible" in r for r in reasons)
    assert any("contact" in r for r in reasons)
    assert counters["strap-rr.invalid_rr"] == 1
    assert np.allclose(rows[q == 1, 0], 75.0)
    hrv = res["HRV"][1]
    assert np.allclose(hrv[-1, HRV_CHANNELS.index("rmssd")], 0.0)


# ---------------------------------------------------------------- real recordings


@pytest.mark.realdata
def test_mitdb_100_cli_f1_and_parity_with_neurokit(shared_data, capsys):
    record = shared_data / "mitdb_100" / "100"
    assert cli_main(["eval", "beats", "--wfdb", str(record)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["f1"] >= 0.997 and result["n_reference"] == 2273
    assert set(result) >= {"sensitivity", "ppv", "f1", "n_reference", "n_detected", "mean_abs_error_ms"}
    import wfdb

    x = wfdb.rdrecord(str(record), channels=[0]).p_signal[:, 0]
    ref = nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=360), sampling_rate=360)[1]["ECG_R_Peaks"]
    ours = detect_ecg_beats(x, 360, chunk=256)
    assert _within(ref, ours, 360, 0.010).mean() >= 0.99
    # RMSSD against the cardiologists' beats: NeuroKit2 misses 3 of the 2273 beats here (measured), which
    # lifts its RMSSD to 5.1 % above the annotations' (each missed beat doubles one interval); ours is 1.4 % below.
    ann = wfdb.rdann(str(record), "atr")
    truth = np.array([s for s, c in zip(ann.sample, ann.symbol) if c in "NLRBAaJSVrFejnE/fQ?"])
    rmssd_truth, rmssd_ours = hrv_time(np.diff(truth) / 360)["rmssd"], hrv_time(np.diff(ours) / 360)["rmssd"]
    assert abs(rmssd_ours / rmssd_truth - 1) <= 0.05
    assert abs(rmssd_ours / rmssd_truth - 1) < abs(hrv_time(np.diff(ref) / 360)["rmssd"] / rmssd_truth - 1)
    # HRV proper, over normal-to-normal intervals. The cardiologists label 33 atrial premature beats and one
    # ventricular one: their N-to-N RMSSD is 27.5 ms. Ours (the HRV rows' rule: 20 % from the running median, and
    # the compensatory interval after a premature beat) is 29.0 ms (+5.5 %); the same rule on NeuroKit2's beats
    # 29.0 ms too (the detectors agree); NeuroKit2's own offline pipeline (ecg_process, which moves ectopic beats
    # to interpolated places instead of leaving them out, then hrv_time) 32.2 ms (+17 %). With a 25 % rule and no
    # compensatory-interval rule ours was 42.3 ms (+54 %): most premature beats here are only 17-33 % early.
    sym = [c for c in ann.symbol if c in "NLRBAaJSVrFejnE/fQ?"]
    rr = np.diff(truth) / 360
    normal = {i for i in range(len(rr)) if sym[i] == "N" and sym[i + 1] == "N"}
    d = [rr[i + 1] - rr[i] for i in sorted(normal) if i + 1 in normal]
    gold = float(np.sqrt(np.mean(np.square(d))))
    nn_ours = hrv_nn(ours / 360)["rmssd"]
    assert abs(nn_ours / gold - 1) <= 0.10
    assert abs(nn_ours / hrv_nn(np.asarray(ref) / 360)["rmssd"] - 1) <= 0.05
    assert abs(nn_ours / gold - 1) < abs(_neurokit_offline_rmssd(x, 360) / gold - 1)


@pytest.mark.realdata
def test_mitdb_100_at_128_hz_and_first_minute_chunk_invariance(shared_data):
    import wfdb

    x = wfdb.rdrecord(str(shared_data / "mitdb_100" / "100"), channels=[0]).p_signal[:, 0]
    ann = wfdb.rdann(str(shared_data / "mitdb_100" / "100"), "atr")
    ref_s = np.array([s for s, c in zip(ann.sample, ann.symbol) if c in "NLRBAaJSVrFejnE/fQ?"]) / 360
    fr = Fraction(128, 360)
    x128 = signal.resample_poly(x, fr.numerator, fr.denominator)
    from engage.cli.eval_beats import match_beats

    assert match_beats(ref_s, detect_ecg_beats(x128, 128) / 128)["f1"] >= 0.997
    first = x[:360 * 60]
    t = np.arange(len(first)) / 360
    runs = [run(EcgHeartRate(), _ecg_info(360), first, t, n)[0] for n in (1, 7, 256, len(first))]
    for other in runs[1:]:
        assert _same(runs[0], other)


#: F1 that ``engage eval beats`` must reach on the MIT-BIH records rich in ectopy (measured before this detector
#: learnt ventricular beats: 106 0.99975, 119 0.99975, 200 0.99923 with a 14 ms mean timing error, 203 0.981,
#: 213 0.99985, 214 0.99845). 203 was 0.99124 before the second channel (sub-threshold regions whose wave is a QRS),
#: the couplet placement and the discordant T wave: 0.99496 since, 18 beats missed and 12 extra, 20 of the 30 at the
#: artifacts the cardiologists marked (isolated QRS-like spikes, electrode steps). A QRS-like wave within the
#: refractory period of the last beat now takes its place when more like the usual R wave: 0.99580, 15 missed, 10 extra
ECTOPY_F1 = {"106": 0.998, "119": 0.998, "200": 0.998, "203": 0.995, "213": 0.998, "214": 0.998}


@pytest.mark.realdata
@pytest.mark.parametrize("record", sorted(ECTOPY_F1))
def test_mitdb_ectopy_records_cli_f1(shared_data, capsys, record):
    """Premature ventricular beats (wide, early, of either polarity), fusion beats, bigeminy, runs, left bundle
    branch block, noise and flutter (203): every record through the CLI as a user runs it."""
    assert cli_main(["eval", "beats", "--wfdb", str(shared_data / "mitdb_ectopy" / record)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["f1"] >= ECTOPY_F1[record]
    # the beat is placed on the ventricular beat's main deflection, not on the small wave before it (200's
    # inverted premature beats were placed 44 ms early: a 14 ms mean error over the record)
    assert result["mean_abs_error_ms"] <= 4.0


@pytest.mark.realdata
def test_ventricular_runs_are_chunk_invariant(shared_data):
    """203's first three minutes (noise, couplets, a ventricular run): the same beats for every chunking."""
    import wfdb

    x = wfdb.rdrecord(str(shared_data / "mitdb_ectopy" / "203"), channels=[0], sampto=360 * 180).p_signal[:, 0]
    runs = [detect_ecg_beats(x, 360, chunk=n) for n in (1, 7, 256, len(x))]
    for other in runs[1:]:
        assert np.array_equal(runs[0], other)


def _ventricular_run(fs: float, rr_run: float) -> tuple[np.ndarray, np.ndarray]:
    """Sinus beats (RR 0.8 s) with, every 6 s, a run of 5 wide inverted ventricular beats ``rr_run`` apart whose
    QRS energy never falls back to the baseline between them; closed-form waves, and the true beat times."""
    times, kinds, t = [], [], 0.6
    while t < 58:
        times.append(t)
        kinds.append("N")
        t += 0.8
        if len(times) % 8 == 0:
            for _ in range(5):
                times.append(t)
                kinds.append("V")
                t += rr_run
            t += 0.3  # compensatory pause
    n = int(60 * fs)
    tt = np.arange(n) / fs
    x = 0.2 * np.sin(2 * np.pi * 0.25 * tt)
    for bt, kind in zip(times, kinds):
        near = slice(max(0, int((bt - 0.4) * fs)), min(n, int((bt + 0.6) * fs)))
        u = tt[near] - bt
        if kind == "N":
            x[near] += np.exp(-0.5 * (u / 0.012) ** 2) - 0.2 * np.exp(-0.5 * ((u - 0.03) / 0.01) ** 2) \
                + 0.25 * np.exp(-0.5 * ((u - 0.25) / 0.05) ** 2)
        else:
            x[near] += -1.6 * np.exp(-0.5 * (u / 0.04) ** 2) + 0.5 * np.exp(-0.5 * ((u - rr_run / 2) / 0.05) ** 2)
    return x, np.asarray(times)


@pytest.mark.parametrize("fs,rr_run", [(128, 0.33), (250, 0.3), (360, 0.36)])
def test_every_beat_of_a_ventricular_run_is_found(fs, rr_run):
    """A run of wide ventricular beats 300-360 ms apart: the QRS energy stays high between them, which made the
    run one long region (a 'noise burst') and lost every beat of it; each beat is now its own region, placed on
    its inverted main deflection."""
    from engage.cli.eval_beats import match_beats

    x, times = _ventricular_run(fs, rr_run)
    beats = detect_ecg_beats(x, fs, chunk=7) / fs
    result = match_beats(times, beats, tolerance_s=0.05)
    assert result["f1"] >= 0.995
    assert result["mean_abs_error_ms"] <= 10


def _sinus_beat(x: np.ndarray, tt: np.ndarray, t: float) -> None:
    """Add a narrow sinus beat (R, S and T waves) with its R peak at ``t`` s."""
    near = np.abs(tt - t) < 0.6
    u = tt[near] - t
    x[near] += np.exp(-0.5 * (u / 0.012) ** 2) - 0.2 * np.exp(-0.5 * ((u - 0.03) / 0.01) ** 2) \
        + 0.25 * np.exp(-0.5 * ((u - 0.25) / 0.05) ** 2)


def _fibrillation_ecg(fs: float, kind: str, seed: int, start: float = 20.0, length: float = 30.0):
    """Sinus rhythm (RR 0.8 s), then ``length`` s of ventricular flutter (``kind`` "flutter": a 4-5 Hz sine-like wave
    whose rate and size wander, with its second harmonic, as large as the QRS complexes, no isoelectric line) or
    fibrillation ("fibrillation": an irregular 4-8 Hz wave waxing and waning), then sinus rhythm again; breathing
    wander and noise throughout. Returns the signal and the true sinus beat times."""
    rng = np.random.default_rng(seed)
    end = start + length
    n = int((end + 20.0) * fs)
    tt = np.arange(n) / fs
    x = 0.15 * np.sin(2 * np.pi * 0.2 * tt) + 0.02 * rng.standard_normal(n)
    beats, t = [], 0.5
    while t < tt[-1] - 0.5:
        if start - 0.3 <= t < end + 0.3:
            t = end + 0.4
            continue
        beats.append(t)
        _sinus_beat(x, tt, t)
        t += 0.8 + 0.03 * rng.standard_normal()
    inside = (tt >= start) & (tt < end)
    m = int(inside.sum())
    pad = int(2 * fs)

    def wander(seconds: float) -> np.ndarray:  # a slow random walk, unit standard deviation
        w = np.convolve(rng.standard_normal(m + 2 * pad), np.hanning(int(seconds * fs)), mode="same")[pad:pad + m]
        return w / w.std()

    if kind == "flutter":
        phase = 2 * np.pi * np.cumsum(np.clip(4.6 + 0.25 * wander(2.0), 4.0, 5.2)) / fs
        wave = 0.8 * np.exp(0.2 * wander(1.5)) * (np.sin(phase) + 0.15 * np.sin(2 * phase + 0.7))
    else:
        wave = signal.sosfilt(signal.butter(2, [4.0, 8.0], btype="bandpass", fs=fs, output="sos"),
                              rng.standard_normal(m))
        wave *= 0.35 / wave.std() * np.exp(0.3 * wander(1.5))
    ramp = np.clip(np.minimum(tt[inside] - start, end - tt[inside]) / 0.2, 0.0, 1.0)
    x[inside] += wave * ramp + 0.03 * rng.standard_normal(m)
    return x, np.asarray(beats)


@pytest.mark.parametrize("fs,kind", [(250, "flutter"), (360, "flutter"), (250, "fibrillation"),
                                     (360, "fibrillation")])
def test_flutter_and_fibrillation_waves_are_not_beats(fs, kind):
    """30 s of ventricular flutter or fibrillation between sinus beats: no beat is output inside the episode (its
    first and last second allowed: ~1 of its ~130 waves at most; measured over 8 seeds at 128-1000 Hz, 60 of 80
    episodes had none, the worst 5), every sinus beat before and after is found and none is added, and the heart-rate
    step has no usable row over the episode but a gap saying why. Before: 16-45 of the waves came out as beats (the
    two-short-intervals rule never saw them: the refractory period drops every other wave, so the beats it took there
    came 0.23-2 s apart)."""
    from engage.cli.eval_beats import match_beats

    x, times = _fibrillation_ecg(fs, kind, seed=0)
    det = EcgBeatDetector(fs)
    beats = np.concatenate([det.process(part)[0] for part in np.array_split(x, 9)] + [det.finish()[0]]) / fs
    assert np.sum((beats > 21.0) & (beats < 49.0)) <= 1
    outside = beats[(beats < 20.0) | (beats > 50.0)]
    result = match_beats(times, outside)
    assert result["sensitivity"] == 1.0 and result["ppv"] == 1.0
    assert det.flutter_episodes >= 1
    res, events, counters = run(EcgHeartRate(), _ecg_info(fs), x, np.arange(len(x)) / fs, 256)
    t, rows = res["HeartRate"]
    rr, quality = rows[:, HR_CHANNELS.index("rr_s")], rows[:, HR_CHANNELS.index("quality")]
    usable = quality > 0
    assert not np.any(usable & (t - rr < 49.0) & (t > 21.0))  # no usable interval overlaps the episode
    assert usable[t > 52.0].all() and usable[(t > 3.0) & (t < 20.0)].all()  # ... and the rhythm around it is usable
    gaps = [e for e in events if e.type == "sensor.gap" and "flutter or fibrillation" in e.evidence["reason"]]
    assert any(e.timestamp <= 21.0 and e.timestamp + e.evidence["duration_s"] >= 49.0 for e in gaps)
    assert counters["ecg-heart-rate.flutter_episodes"] >= 1


def test_flutter_detection_does_not_depend_on_chunking():
    """A fibrillation episode held, dropped and ended the same way whatever the chunking (beats and HR/HRV rows)."""
    fs = 250
    x, _ = _fibrillation_ecg(fs, "fibrillation", seed=3, start=8.0, length=10.0)
    whole = detect_ecg_beats(x, fs)
    for n in (1, 7, 256):
        assert np.array_equal(whole, detect_ecg_beats(x, fs, chunk=n))
    t = np.arange(len(x)) / fs
    results = [run(EcgHeartRate(), _ecg_info(fs), x, t, n)[0] for n in (1, 7, 256, len(x))]
    for other in results[1:]:
        assert _same(results[0], other)


@pytest.mark.parametrize("fs", [250, 360])
def test_ventricular_tachycardia_beats_are_kept(fs):
    """10 s of wide ventricular beats at 180-220 a minute (RR 0.27-0.33 s) between sinus beats: every beat is kept,
    none is taken for flutter (guards the flutter rule: the fastest organised ventricular rhythm stays a rhythm)."""
    from engage.cli.eval_beats import match_beats

    rng = np.random.default_rng(fs)
    n = int(40 * fs)
    tt = np.arange(n) / fs
    x = 0.15 * np.sin(2 * np.pi * 0.2 * tt) + 0.02 * rng.standard_normal(n)
    times, t = [], 0.5
    while t < 39.5:
        times.append(t)
        if 15 <= t < 25:
            near = np.abs(tt - t) < 0.4
            u = tt[near] - t
            x[near] += -1.4 * np.exp(-0.5 * (u / 0.035) ** 2) + 0.45 * np.exp(-0.5 * ((u - 0.15) / 0.04) ** 2)
            t += rng.uniform(0.27, 0.33)
        else:
            _sinus_beat(x, tt, t)
            t += 0.8 + 0.03 * rng.standard_normal()
    det = EcgBeatDetector(fs)
    beats = np.concatenate([det.process(x)[0], det.finish()[0]]) / fs
    result = match_beats(np.asarray(times), beats)
    assert result["sensitivity"] == 1.0 and result["ppv"] == 1.0
    assert det.flutter_episodes == 0


@pytest.mark.parametrize("rr", [0.33, 0.4, 0.46])
def test_sinus_tachycardia_with_tall_t_waves_is_no_flutter(rr):
    """A fast sinus rhythm (130-180 a minute) with T waves 0.6 of the R wave: R and T waves alternate under 0.24 s
    apart, but the QRS energy falls back to the baseline between them (an isoelectric line), so it is no flutter
    (without that test every beat after the first seconds was dropped: sensitivity 0.05)."""
    fs = 250
    rng = np.random.default_rng(1)
    n = int(40 * fs)
    tt = np.arange(n) / fs
    x = 0.15 * np.sin(2 * np.pi * 0.2 * tt) + 0.02 * rng.standard_normal(n)
    times = np.arange(0.5, 39.5, rr) + 0.01 * rng.standard_normal(len(np.arange(0.5, 39.5, rr)))
    for t in times:
        near = np.abs(tt - t) < 0.6
        u = tt[near] - t
        x[near] += np.exp(-0.5 * (u / 0.012) ** 2) - 0.2 * np.exp(-0.5 * ((u - 0.03) / 0.01) ** 2) \
            + 0.6 * np.exp(-0.5 * ((u - 0.2 - 0.1 * rr) / 0.04) ** 2) + 0.1 * np.exp(-0.5 * ((u + 0.12) / 0.02) ** 2)
    det = EcgBeatDetector(fs)
    beats = np.concatenate([det.process(x)[0], det.finish()[0]])
    assert det.flutter_episodes == 0
    assert _within(np.round(times * fs), beats, fs, 0.05).mean() >= 0.97


def _pqrst_ecg(fs: float, duration: float, hr: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic ECG built as sums of Gaussian P, Q, R, S and T waves (ecgsyn's morphology, in time rather than
    through its ODE), RR varying with breathing and a seeded jitter, plus baseline wander; and its R-peak indices.

    NeuroKit2's ``ecg_simulate(method="ecgsyn")`` is not the same signal on every machine: it integrates an ODE with
    an adaptive step, and NumPy's SIMD exp/sin differ in the last bits between CPUs with and without AVX-512. On the
    latter, its 60-s 360 Hz output (seed 2) has a transient at 8.6 s that its rescaling to [-0.4, 1.2] mV turns
    into beats a third as tall (reproduce with ``NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL"``). This one is
    built from closed-form waves, so every machine gets it to the last bit or two."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration * fs)) / fs
    rr0 = 60.0 / hr
    r_times, tr = [], 0.35
    while tr < duration - 0.3:
        r_times.append(tr)
        tr += rr0 + 0.04 * np.sin(2 * np.pi * 0.25 * tr) + 0.01 * rng.standard_normal()
    # (offset from R in s, amplitude in mV, SD in s) of P, Q, R, S, T
    waves = [(-0.20, 0.12, 0.025), (-0.03, -0.12, 0.010), (0.0, 1.0, 0.011), (0.03, -0.25, 0.011), (0.26, 0.30, 0.045)]
    x = 0.1 * np.sin(2 * np.pi * 0.2 * t)
    for r in r_times:
        near = slice(max(0, int((r - 0.4) * fs)), min(len(t), int((r + 0.5) * fs)))
        for dt, amp, sd in waves:
            x[near] += amp * np.exp(-0.5 * ((t[near] - r - dt) / sd) ** 2)
    return x, np.round(np.asarray(r_times) * fs).astype(np.int64)


@pytest.mark.parametrize("fs", [100, 250, 360])
def test_r_peak_is_the_sharp_wave_not_a_taller_wide_wave_after_it(fs):
    """A motion wave 80 ms after every 4th R wave, taller than the R wave's prominence but wider (SD 30 ms): the
    beat stays on the R wave (the most prominent peak, the rule before, puts 100 % of them on the motion wave)."""
    x, true = _pqrst_ecg(fs, duration=60, hr=70, seed=2)
    t = np.arange(len(x)) / fs
    hit = true[5::4]
    y = x + sum(0.8 * np.ptp(x) * np.exp(-0.5 * ((t - r / fs - 0.08) / 0.03) ** 2) for r in hit)
    ours = detect_ecg_beats(y, fs, chunk=7)
    assert _within(hit, ours, fs, 0.010).all()
    assert _within(true, ours, fs, 0.010).all()
    assert _within(ours, true, fs, 0.010).all()


@pytest.mark.realdata
@pytest.mark.parametrize("name,column,fs", [("bio_resting_8min_100hz.csv", "ECG", 100),
                                            ("bio_eventrelated_100hz.csv", "ECG", 100),
                                            ("ecg_1000hz.csv", "ECG", 1000)])
def test_neurokit_samples_parity(shared_data, name, column, fs):
    """Against NeuroKit2's beats as ecg_peaks(ecg_clean(x)) gives them. (ecg_process adds Kubios artifact correction,
    which moves flagged beats to interpolated places: its peaks agree with its own uncorrected ones only 96.3 %,
    99.8 %, 98.7 % and 98.0 % within 10 ms on bio_resting_5min, _8min, bio_eventrelated and ecg_1000hz - measured -
    so no detector reporting real R peaks can reach 99 % against it. RMSSD is also compared over NN intervals: both
    beat series through the same artifact and ectopic rule, hrv_nn.)"""
    x = pd.read_csv(shared_data / "neurokit2_samples" / name)[column].to_numpy(dtype=float)
    ref = nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=fs), sampling_rate=fs)[1]["ECG_R_Peaks"]
    ours = detect_ecg_beats(x, fs, chunk=7)
    assert _within(ref, ours, fs, 0.010).mean() >= 0.99
    assert abs(len(ours) - len(ref)) <= max(1, 0.01 * len(ref))
    rmssd_nk, rmssd_ours = hrv_time(np.diff(ref) / fs)["rmssd"], hrv_time(np.diff(ours) / fs)["rmssd"]
    assert abs(rmssd_ours / rmssd_nk - 1) <= 0.05
    assert abs(hrv_nn(ours / fs)["rmssd"] / hrv_nn(ref / fs)["rmssd"] - 1) <= 0.05
    # the HRV a user gets from either tool: ours over NN intervals, NeuroKit2's offline pipeline (measured
    # -0.2 %, +2.1 %, +4.5 %: the same beats, Kubios correction against our ectopic rule)
    assert abs(hrv_nn(ours / fs)["rmssd"] / _neurokit_offline_rmssd(x, fs) - 1) <= 0.05


@pytest.mark.realdata
def test_noisy_5min_recording_ecg_and_ppg(shared_data):
    """bio_resting_5min has motion artifacts (~93 s, ~127 s, 215-236 s, 257-262 s, ~295 s). Measured: 99.3 % of
    NeuroKit2's beats within 10 ms (97.4 % before R peaks were placed on a zero-phase high-passed copy, the levels
    learnt on good samples only, search-back made to wait a refractory period and the last beat confirmed; 99.1 %
    before the R peak became the steepest local maximum rather than the most prominent: two wide motion waves just
    after a sharp R wave took the beat). The 3 left: a beat NeuroKit2 finds inside a noise burst that we skip, a
    0.004 mV notch at the edge of NeuroKit2's QRS region where we take the sharper wave 40 ms before it, and a
    double spike where we take the sharper one, 80 ms before NeuroKit2's; we also have one extra beat at 232 s.
    RMSSD: over raw intervals 12.9 % above NeuroKit2's raw peaks (each artifact beat makes two large successive
    differences: not an HRV figure anyone should report); over NN intervals ours is 38.9 ms, NeuroKit2's offline
    pipeline (ecg_process with its Kubios artifact correction, then hrv_time) 38.8 ms; NeuroKit2's raw peaks
    through our own NN rule give 40.6 ms (-4.1 %: artifact differences of 150-220 ms that the ectopic rule lets
    through for its beats and not for ours). On this recording RMSSD is defined only to within the artifact
    handling."""
    df = pd.read_csv(shared_data / "neurokit2_samples" / "bio_resting_5min_100hz.csv")
    ecg, ppg = df["ECG"].to_numpy(dtype=float), df["PPG"].to_numpy(dtype=float)
    ref = nk.ecg_peaks(nk.ecg_clean(ecg, sampling_rate=100), sampling_rate=100)[1]["ECG_R_Peaks"]
    ours = detect_ecg_beats(ecg, 100, chunk=256)
    assert _within(ref, ours, 100, 0.010).mean() >= 0.99
    assert _within(ref[[0, -1]], ours, 100, 0.010).all()
    assert len(ours) == len(ref)
    # RMSSD as each tool reports it: ours over NN intervals, NeuroKit2's offline HRV pipeline (ecg_process, which
    # corrects artifacts, then hrv_time): 38.9 against 38.8 ms; the same NN rule on both beat series: -4.1 %
    nn_ours, nn_ref = hrv_nn(ours / 100), hrv_nn(ref / 100)
    assert abs(nn_ours["rmssd"] / _neurokit_offline_rmssd(ecg, 100) - 1) <= 0.05
    assert abs(nn_ours["rmssd"] / nn_ref["rmssd"] - 1) <= 0.05 and abs(nn_ours["n_nn"] - nn_ref["n_nn"]) <= 5
    ppg_ref = nk.ppg_peaks(nk.ppg_clean(ppg, sampling_rate=100), sampling_rate=100)[1]["PPG_Peaks"]
    ppg_ours = detect_ppg_beats(ppg, 100, chunk=7)
    assert _within(ppg_ref, ppg_ours, 100, 0.05).mean() >= 0.98
    # pulse rate from PPG agrees with heart rate from ECG
    assert abs(60 / np.median(np.diff(ppg_ours) / 100) - 60 / np.median(np.diff(ours) / 100)) < 2


def _neurokit_offline_rmssd(ecg: np.ndarray, fs: int) -> float:
    """RMSSD (s) from NeuroKit2's offline HRV pipeline: ecg_process (clean, peaks, Kubios correction), hrv_time."""
    signals, _ = nk.ecg_process(ecg, sampling_rate=fs)
    peaks = np.flatnonzero(signals["ECG_R_Peaks"].to_numpy())
    return float(nk.hrv_time(peaks, sampling_rate=fs)["HRV_RMSSD"].iloc[0]) / 1000


def test_detector_rejects_unusable_rates_and_the_processor_reports_it():
    with pytest.raises(ValueError, match="too low"):
        EcgBeatDetector(20.0)
    with pytest.raises(ValueError, match="too low"):
        PpgBeatDetector(float("nan"))
    res, events, counters = run(EcgHeartRate(), _ecg_info(20.0), np.zeros(100), np.arange(100) / 20, 10)
    assert res == {} and counters["ecg-heart-rate.unusable_streams"] == 1
    assert [e.evidence["reason"] for e in events if e.type == "sensor.gap"][0].startswith("ECG sampling rate 20")


def test_eval_beats_csv_and_clear_errors(tmp_path, capsys):
    fs = 250
    ecg = nk.ecg_simulate(duration=60, sampling_rate=fs, heart_rate=66, random_state=8)
    pd.DataFrame({"time": np.arange(len(ecg)) / fs, "ECG": ecg}).to_csv(tmp_path / "ecg.csv", index=False)
    ref = nk.ecg_peaks(ecg, sampling_rate=fs)[1]["ECG_R_Peaks"]
    np.savetxt(tmp_path / "ref.txt", ref, fmt="%d")
    args = ["eval", "beats", "--csv", str(tmp_path / "ecg.csv"), "--fs", str(fs), "--column", "ECG",
            "--reference", str(tmp_path / "ref.txt"), "--chunk", "7"]
    assert cli_main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["f1"] >= 0.99 and result["n_reference"] == len(ref)
    assert cli_main(args[:-6] + ["--column", "nope", "--reference", str(tmp_path / "ref.txt")]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert cli_main(["eval", "beats", "--csv", str(tmp_path / "ecg.csv"), "--column", "ECG"]) == 2
    assert "--fs" in capsys.readouterr().err
    (tmp_path / "bad.hea").write_text("this is not a header\n")
    assert cli_main(["eval", "beats", "--wfdb", str(tmp_path / "bad")]) == 2
    assert "could not be read" in capsys.readouterr().err


@pytest.mark.parametrize("prefix", ["flat", "nan", "zeros"])
def test_detector_learns_its_levels_on_good_signal_only(prefix):
    """A stream that starts flat, NaN or at zero (lead not yet on) still finds every beat once the signal comes."""
    fs = 250
    ecg = nk.ecg_simulate(duration=30, sampling_rate=fs, heart_rate=70, noise=0.05, random_state=11)
    lead = {"flat": np.full(3 * fs, 0.7), "nan": np.full(3 * fs, np.nan), "zeros": np.zeros(3 * fs)}[prefix]
    beats = detect_ecg_beats(np.concatenate([lead, ecg]), fs, chunk=7) - len(lead)
    ref = nk.ecg_peaks(nk.ecg_clean(ecg, sampling_rate=fs), sampling_rate=fs)[1]["ECG_R_Peaks"]
    assert _within(ref, beats, fs, 0.010).mean() >= 0.99
    assert np.all(beats > -0.25 * fs)  # nothing invented on the lead-in


def test_finish_confirms_the_open_last_beat_once():
    fs = 360
    ecg = nk.ecg_simulate(duration=20, sampling_rate=fs, heart_rate=60, random_state=3)
    ref = nk.ecg_peaks(nk.ecg_clean(ecg, sampling_rate=fs), sampling_rate=fs)[1]["ECG_R_Peaks"]
    cut = ref[-1] + int(0.04 * fs)  # the stream ends 40 ms after the last R peak: its region is still open
    det = EcgBeatDetector(fs)
    streamed = np.concatenate([det.process(ecg[i:i + 7])[0] for i in range(0, cut, 7)])
    assert not np.any(np.abs(streamed - ref[-1]) <= 4)
    last = det.finish()[0]
    assert last.size == 1 and abs(int(last[0]) - ref[-1]) <= 4
    assert det.finish()[0].size == 0  # said once
    assert np.array_equal(np.concatenate([streamed, last]), detect_ecg_beats(ecg[:cut], fs, chunk=256))


@pytest.mark.parametrize("fs,every", [(128, 2), (128, 3), (360, 2)])
def test_frequent_ventricular_ectopy_at_low_and_high_rates(fs, every):
    """Ventricular bigeminy / trigeminy (every 2nd or 3rd beat a wide, inverted, premature complex) with noise and
    baseline wander, at 128 Hz and 360 Hz: every beat is found, nothing is invented (F1 >= 0.997)."""
    from engage.cli.eval_beats import match_beats

    rng = np.random.default_rng(fs + every)
    times, t = [], 1.0
    for k in range(240):
        t += 0.8 * (0.62 if k % every == every - 1 else 1.0) + (0.45 if k % every == 0 and k else 0.0)
        t += 0.015 * rng.standard_normal()
        times.append(t)
    n = int((times[-1] + 2) * fs)
    tt = np.arange(n) / fs
    x = 0.03 * rng.standard_normal(n) + 0.3 * np.sin(2 * np.pi * 0.2 * tt)
    for k, bt in enumerate(times):
        if k % every == every - 1:
            x += -1.5 * np.exp(-0.5 * ((tt - bt) / 0.035) ** 2) + 0.6 * np.exp(-0.5 * ((tt - bt - 0.09) / 0.05) ** 2)
        else:
            x += (np.exp(-0.5 * ((tt - bt) / 0.012) ** 2) - 0.15 * np.exp(-0.5 * ((tt - bt - 0.03) / 0.01) ** 2)
                  + 0.25 * np.exp(-0.5 * ((tt - bt - 0.25) / 0.05) ** 2))
    beats = detect_ecg_beats(x, fs, chunk=7)
    assert match_beats(np.array(times), beats / fs)["f1"] >= 0.997


def test_the_last_beat_of_a_replayed_recording_is_not_lost():
    """A recording that ends 80 ms after an R peak: its QRS complex is still open when the input ends, and the
    runtime's end-of-input flush hands that beat on (it was lost before: 21 heart-rate rows instead of 22)."""
    from engage.core import Processor, Runtime
    from engage.sensors.replay import RecordingSource

    fs = 250
    x = nk.ecg_simulate(duration=20, sampling_rate=fs, heart_rate=70, random_state=4)
    beats = detect_ecg_beats(x, fs)
    cut = beats[-1] + int(0.08 * fs)
    src = RecordingSource("v")
    src.add_track(_ecg_info(fs), x[:cut, None], np.arange(cut) / fs + 100.0)

    class Sink(Processor):
        def __init__(self):
            self.times = []

        def accepts(self, info):
            return info.type == "HeartRate"

        def process(self, chunk):
            self.times.extend(chunk.timestamps.tolist())
            return []

    sink = Sink()
    Runtime(VirtualClock(), [src], [EcgHeartRate(), sink]).run()
    assert len(sink.times) == len(beats) - 1  # one row per interval
    assert sink.times[-1] == pytest.approx(100.0 + beats[-1] / fs)


@pytest.mark.parametrize("fs", [100, 250, 360])
def test_an_electrode_spike_does_not_hide_the_beat_after_it(fs):
    """A flat-topped electrode spike (20 ms, 1.5 times the R wave) 160 ms before every 6th beat (MIT-BIH 203's
    isolated QRS-like artifacts): two QRS complexes cannot be 160 ms apart, so the one like the usual R wave is the
    beat, not the spike that came first (before, each spike was taken and its refractory period hid the real beat:
    F1 0.85), whatever the chunking."""
    x, true = _pqrst_ecg(fs, duration=40, hr=70, seed=3)
    w = max(2, int(round(0.02 * fs)))
    spikes = true[6:-2:6] - int(round(0.16 * fs))
    for s in spikes:
        x[s:s + w] += 1.5  # mV (the R wave is 1 mV)
    runs = [detect_ecg_beats(x, fs, chunk=c) for c in (1, 7, len(x))]
    for other in runs[1:]:
        assert np.array_equal(runs[0], other)
    assert _within(true, runs[0], fs, 0.010).all()
    assert not _within(spikes, runs[0], fs, 0.05).any()
    assert len(runs[0]) == len(true)
