"""Signal quality index: per-window SQI streams, chunk invariance, faults in the right channel, quality carried into
derived values, sampling-rate changes and random bad input through every signal processor (hypothesis)."""

from __future__ import annotations

import neurokit2 as nk
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage.core import Chunk, Context, EventBus, StreamInfo, VirtualClock
from engage.signals.cardiac import HR_CHANNELS, EcgHeartRate, PpgHeartRate, StrapRrHeartRate
from engage.signals.eda import EDA_CHANNELS, EdaFeatures
from engage.signals.quality import QUALITY_CHANNELS, SignalQualityIndex, WindowQuality
from engage.signals.respiration import RespirationRate

Q = {c: i for i, c in enumerate(QUALITY_CHANNELS)}


def feed(processors, parts):
    """Feed ``parts`` (a list of chunks, in order) to every processor that accepts them, routing what they produce to
    the others too (as the runtime does). Returns {stream name: (timestamps, rows)}, events, counters."""
    events = []
    bus = EventBus()
    bus.subscribe(events.append)
    ctx = Context(VirtualClock(), bus)
    for p in processors:
        p.start(ctx)
    out: dict[str, list[Chunk]] = {}

    def route(chunk):
        for p in processors:
            if p.accepts(chunk.info):
                for o in p.process(chunk):
                    if len(o):
                        out.setdefault(o.info.name, []).append(o)
                        route(o)

    for c in parts:
        if len(c):
            route(c)
    res = {k: (np.concatenate([c.timestamps for c in v]), np.vstack([c.data for c in v])) for k, v in out.items()}
    return res, events, ctx.counters


def chunks(info, x, t, size):
    x = np.asarray(x, dtype=float).reshape(len(t), -1)
    return [Chunk(info, x[i:i + size], np.asarray(t[i:i + size], dtype=float)) for i in range(0, len(t), size)]


def _faulty_ecg(fs=250, seconds=60, seed=1):
    ecg = nk.ecg_simulate(duration=seconds, sampling_rate=fs, heart_rate=70, noise=0.02, random_state=seed)
    rng = np.random.default_rng(seed)
    ecg[10 * fs:12 * fs] = np.nan  # windows 5: NaN
    ecg[20 * fs:24 * fs] = 0.25  # windows 10-11: flat (lead off)
    rail = np.nanmax(ecg[:30 * fs]) + 0.6  # windows 15-16: the baseline jumps and R peaks hit the amplifier's rail
    ecg[30 * fs:34 * fs] = np.minimum(ecg[30 * fs:34 * fs] + 1.0, rail)
    ecg[40 * fs:42 * fs] += 6.0 * rng.standard_normal(2 * fs)  # window 20: motion
    ecg[50 * fs:52 * fs] *= 0.005  # window 25: the amplitude collapses (electrode off)
    return ecg


def test_each_fault_shows_in_its_channel_and_rows_do_not_depend_on_chunking():
    fs = 250
    ecg = _faulty_ecg(fs)
    t = 5.0 + np.arange(len(ecg)) / fs
    info = StreamInfo("ecg", "ECG", ("ecg",), ("mV",), float(fs), "dev")
    runs = [feed([SignalQualityIndex()], chunks(info, ecg, t, n))[0] for n in (1, 7, 256, len(ecg))]
    for other in runs[1:]:
        assert runs[0].keys() == other.keys()
        for k in runs[0]:
            assert np.array_equal(runs[0][k][0], other[k][0]) and np.array_equal(runs[0][k][1], other[k][1])
    ts, rows = runs[0]["viewer-1-ecg-quality"]
    assert len(rows) == 30 and np.allclose(ts, t[np.arange(1, 31) * 2 * fs - 1])
    assert rows[5, Q["nan"]] == 1.0 and rows[5, Q["quality"]] == 0.0
    assert rows[10, Q["flat"]] == 1.0 and rows[10, Q["lead_off"]] == 1.0 and rows[11, Q["quality"]] == 0.0
    assert rows[15, Q["saturated"]] > 0 and rows[16, Q["saturated"]] > 0
    assert rows[20, Q["motion"]] == 1.0
    assert rows[25, Q["lead_off"]] == 1.0
    good = np.setdiff1d(np.arange(30), [5, 10, 11, 15, 16, 20, 25])
    assert np.all(rows[good, Q["quality"]] == 1.0), rows[good]
    assert np.all((rows >= 0) & (rows <= 1))


def test_quality_carried_into_values_does_not_depend_on_chunk_length():
    """A chunk spanning more than 64 windows (a whole recording handed over at once) gives every sample the quality
    of its own preceding window, as short chunks do (the window memory was 64 windows: later samples got 1.0)."""
    fs = 250
    ecg = np.tile(_faulty_ecg(fs), 3)  # 180 s: 90 windows, faults in the first minute
    t = 5.0 + np.arange(len(ecg)) / fs
    eda = 5.0 + 0.2 * np.sin(t / 3)
    eda[500:1000] = 0.01  # an open electrode in windows 1-2
    ecg_info = StreamInfo("ecg", "ECG", ("ecg",), ("mV",), float(fs), "dev")
    eda_info = StreamInfo("eda", "EDA", ("eda",), ("uS",), float(fs), "eda")
    runs = [feed([EcgHeartRate(), EdaFeatures()], chunks(ecg_info, ecg, t, n) + chunks(eda_info, eda, t, n))[0]
            for n in (256, len(t))]
    for name in ("viewer-1-heart-rate", "viewer-1-eda-features"):
        assert np.array_equal(runs[0][name][1], runs[1][name][1]), name
    hr_q = runs[1]["viewer-1-heart-rate"][1][:, HR_CHANNELS.index("quality")]
    assert np.any(hr_q < 0.5) and np.any(hr_q > 0.9)
    assert np.any(runs[1]["viewer-1-eda-features"][1][:, EDA_CHANNELS.index("quality")] == 0)


def test_clipping_is_saturation():
    fs = 360
    ecg = nk.ecg_simulate(duration=20, sampling_rate=fs, heart_rate=80, random_state=2)
    clipped = np.clip(ecg, -np.inf, 0.5)  # every R peak flattened at the amplifier's rail
    rows = np.array(WindowQuality("ECG", fs).update(clipped))
    assert np.all(rows[1:, Q["saturated"]] > 0.005) and np.all(rows[:, Q["flat"]] == 0)
    assert np.all(np.array(WindowQuality("ECG", fs).update(ecg))[:, Q["saturated"]] == 0)


def test_eda_open_electrode_saturation_and_steps():
    fs = 16.0
    t = np.arange(0, 60, 1 / fs)
    x = 5.0 + 0.2 * np.sin(t / 3)
    x[64:96] = 0.01  # open electrode (window 2)
    x[160:192] = 150.0  # beyond the amplifier's range (window 5)
    x[320:] += 3.0  # a 3 µS step in one sample: motion or pressure on the electrode (window 10)
    rows = np.array(WindowQuality("EDA", fs).update(x))
    assert rows[2, Q["lead_off"]] == 1.0 and rows[5, Q["saturated"]] == 1.0
    assert rows[10, Q["motion"]] > 0 and rows[10, Q["quality"]] < 1
    assert rows[[0, 1, 4, 7, 12], Q["quality"]].min() == 1.0  # (3 and 6 hold the steps back to normal)


def test_beat_stream_quality_counts_implausible_intervals():
    info = StreamInfo("rr", "RR", ("rr_s", "contact"), ("s", "bool"), 0.0, "strap")
    rr = np.full(200, 0.8)
    rr[50:56] = [0.3, 1.3, 0.3, 1.3, 0.3, 1.3]  # ectopic run around 40-45 s
    rr[120] = 4.0  # an implausible pause
    t = 100.0 + np.cumsum(rr)
    res, _, _ = feed([StrapRrHeartRate(), SignalQualityIndex()], chunks(info, np.column_stack([rr, np.ones(200)]), t, 9))
    ts, rows = res["viewer-1-heartrate-quality"]
    bad = rows[:, Q["implausible"]] > 0
    assert bad.any() and np.allclose(rows[:, Q["quality"]], 1 - rows[:, Q["implausible"]])
    spans = [(e - 10, e) for e in ts[bad]]
    assert any(a <= t[52] <= b for a, b in spans) and any(a <= t[120] <= b for a, b in spans)
    assert (~bad).sum() >= len(rows) - 4


def test_heart_rate_quality_carries_the_window_quality():
    """Beats right after a clipped or noisy window get a lower quality than the same beats on a clean signal."""
    fs = 250
    ecg = nk.ecg_simulate(duration=60, sampling_rate=fs, heart_rate=70, noise=0.02, random_state=4)
    bad = ecg.copy()
    bad[30 * fs:32 * fs] = np.minimum(bad[30 * fs:32 * fs] + 1.0, ecg.max() + 0.6)  # R peaks on the rail
    t = np.arange(len(ecg)) / fs
    info = StreamInfo("ecg", "ECG", ("ecg",), ("mV",), float(fs), "dev")
    clean = feed([EcgHeartRate()], chunks(info, ecg, t, 64))[0]["viewer-1-heart-rate"]
    dirty = feed([EcgHeartRate()], chunks(info, bad, t, 64))[0]["viewer-1-heart-rate"]
    qi = HR_CHANNELS.index("quality")
    after = (dirty[0] >= 32) & (dirty[0] < 34)  # beats in the window after the clipped one
    assert after.any() and np.all(dirty[1][after, qi] < 1.0)
    same = (clean[0] >= 40)
    assert np.all(clean[1][same, qi] == dirty[1][(dirty[0] >= 40), qi])


@pytest.mark.parametrize("kind", ["EDA", "ECG", "PPG", "RSP"])
def test_rate_change_mid_stream_marks_a_gap_and_drops_quality(kind):
    if kind == "RSP":
        proc, f1, f2 = RespirationRate(), 25.0, 50.0
        make = lambda fs, d, s: nk.rsp_simulate(duration=d, sampling_rate=int(fs), respiratory_rate=15, random_state=s)  # noqa: E731
    elif kind == "EDA":
        proc, f1, f2 = EdaFeatures(), 16.0, 32.0
        make = lambda fs, d, s: 5 + 0.3 * np.sin(np.arange(int(d * fs)) / fs) + 0.01 * s  # noqa: E731
    elif kind == "ECG":
        proc, f1, f2 = EcgHeartRate(), 250.0, 500.0
        make = lambda fs, d, s: nk.ecg_simulate(duration=d, sampling_rate=int(fs), heart_rate=70, random_state=s)  # noqa: E731
    else:
        proc, f1, f2 = PpgHeartRate(), 64.0, 128.0
        make = lambda fs, d, s: nk.ppg_simulate(duration=d, sampling_rate=int(fs), heart_rate=70, random_state=s)  # noqa: E731
    ch = kind.lower()
    a, b = make(f1, 30, 1), make(f2, 30, 2)
    ta = np.arange(len(a)) / f1
    tb = ta[-1] + 1 / f2 + np.arange(len(b)) / f2
    i1 = StreamInfo(ch, kind, (ch,), ("au",), f1, "dev")
    i2 = StreamInfo(ch, kind, (ch,), ("au",), f2, "dev")
    res, events, counters = feed([proc, SignalQualityIndex()], chunks(i1, a, ta, 50) + chunks(i2, b, tb, 50))
    gaps = [e for e in events if e.type == "sensor.gap" and "sampling rate changed" in e.evidence["reason"]]
    assert len(gaps) == 1 and abs(gaps[0].timestamp - tb[0]) < 1e-9
    sqi_t, _ = res[f"viewer-1-{ch}-quality"]
    assert np.any(sqi_t > tb[0] + 5)  # the quality stream goes on at the new rate
    if kind == "RSP":
        t, rows = res["viewer-1-respiration"]
        assert np.any(t > tb[0] + 10) and np.all(np.diff(t) > 0)
        assert not np.any((t > tb[0]) & (rows[:, 1] > 15))  # no breath interval spans the change
    elif kind == "EDA":
        t, rows = res["viewer-1-eda-features"]
        q = rows[:, EDA_CHANNELS.index("quality")]
        assert q[(t >= tb[0]) & (t < tb[0] + 1.9)].max() == 0 and q[t > tb[0] + 3].min() == 1
        assert q[t < ta[-1]].min() == 1
    else:
        t, rows = res["viewer-1-heart-rate"]
        assert np.any(t > tb[0] + 5) and np.all(np.diff(t) > 0)
        assert not np.any((t > tb[0]) & (t < tb[0] + 0.2) & (rows[:, HR_CHANNELS.index("rr_s")] > 2))


# ------------------------------------------------------------------ hypothesis: bad input never raises

_segment = st.one_of(
    st.tuples(st.just("signal"), st.integers(1, 400)),
    st.tuples(st.just("nan"), st.integers(1, 400)),
    st.tuples(st.just("flat"), st.integers(1, 600)),
    st.tuples(st.just("clip"), st.integers(1, 400)),
    st.tuples(st.just("huge"), st.integers(1, 50)),
)
_time_fault = st.sampled_from(["none", "duplicate", "backwards", "jump", "nan"])


def _build(segments, fs, seed):
    rng = np.random.default_rng(seed)
    parts = []
    for kind, n in segments:
        base = np.sin(2 * np.pi * 1.2 * np.arange(n) / fs) + 0.05 * rng.standard_normal(n) + 2.0
        if kind == "nan":
            base[:] = np.nan
        elif kind == "flat":
            base[:] = base[0]
        elif kind == "clip":
            base = np.clip(base, 1.5, 2.5)
        elif kind == "huge":
            base = base * 1e6
        parts.append(base)
    return np.concatenate(parts)


def _times(n, fs, fault, rng):
    t = 1000.0 + np.arange(n) / fs
    if n > 4:
        k = int(rng.integers(1, n - 2))
        if fault == "duplicate":
            t[k:k + 2] = t[k - 1]
        elif fault == "backwards":
            t[k] -= 5.0
        elif fault == "jump":
            t[k:] += 30.0
        elif fault == "nan":
            t[k] = np.nan
    return t


@settings(max_examples=40, deadline=None)
@given(st.lists(_segment, min_size=1, max_size=6), st.sampled_from([("ECG", 128.0, 360.0), ("PPG", 64.0, 100.0),
                                                                   ("EDA", 4.0, 16.0), ("RSP", 25.0, 50.0)]),
       _time_fault, st.booleans(), st.integers(1, 97), st.integers(0, 2**16))
def test_bad_input_never_raises_out_of_the_signal_processors(segments, stream, fault, change_rate, chunk, seed):
    """NaN runs, flat lines, clipping, absurd values, duplicate / backwards / jumping / NaN timestamps and a rate change
    mid-stream: every signal processor survives, outputs stay finite where they must, quality stays in [0, 1]."""
    kind, f1, f2 = stream
    rng = np.random.default_rng(seed)
    ch = kind.lower()
    x = _build(segments, f1, seed)
    t = _times(len(x), f1, fault, rng)
    parts = chunks(StreamInfo(ch, kind, (ch,), ("au",), f1, "dev"), x, t, chunk)
    if change_rate:
        y = _build(segments[::-1], f2, seed + 1)
        ty = (t[-1] if np.isfinite(t[-1]) else 2000.0) + 0.01 + np.arange(len(y)) / f2
        parts += chunks(StreamInfo(ch, kind, (ch,), ("au",), f2, "dev"), y, ty, chunk)
    procs = [EcgHeartRate(), PpgHeartRate(), EdaFeatures(), RespirationRate(), StrapRrHeartRate(), SignalQualityIndex()]
    res, events, counters = feed(procs, parts)
    for name, (ts, rows) in res.items():
        assert rows.ndim == 2 and len(ts) == len(rows)
        if name.endswith("-quality"):
            assert np.all((rows >= 0) & (rows <= 1)), name
            assert np.all(rows[:, Q["quality"]] <= 1 - rows[:, 1:].max(axis=1) + 1e-12)
        if name.endswith("heart-rate"):
            assert np.all(np.isfinite(rows[:, :3])) and np.all((rows[:, 2] >= 0) & (rows[:, 2] <= 1))
        if name.endswith("eda-features"):
            assert np.all(np.isfinite(rows)) and np.all((rows[:, EDA_CHANNELS.index("quality")] >= 0))
    if change_rate and any(len(c) for c in parts):
        assert any("sampling rate changed" in e.evidence.get("reason", "") for e in events if e.type == "sensor.gap") \
            or not any(np.isfinite(x))
    for e in events:
        if e.type == "sensor.gap":
            assert {"stream", "duration_s", "reason"} <= set(e.evidence)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 5.0, 0.8, 0.81, -1.0, np.nan, np.inf, 1e-9, 2.6]),
                          st.sampled_from([0.0, 1.0, np.nan]), st.sampled_from([0.0, 0.8, -0.5, 0.0, np.nan])),
                min_size=1, max_size=80), st.integers(1, 11))
def test_strap_rr_zero_five_seconds_and_bad_times_never_raise(rows, chunk):
    """RR of 0 or 5 s, negative or NaN intervals, duplicate or backwards beat times: counted, gapped, never raised."""
    info = StreamInfo("rr", "RR", ("rr_s", "contact"), ("s", "bool"), 0.0, "strap")
    t = 50.0 + np.cumsum([r[2] for r in rows])
    data = np.array([[r[0], r[1]] for r in rows], dtype=float)
    res, events, counters = feed([StrapRrHeartRate(), SignalQualityIndex()], chunks(info, data, t, chunk))
    for name, (ts, out) in res.items():
        if name.endswith("heart-rate"):
            assert np.all(np.isfinite(out[:, :3]))
            assert np.all(out[np.isclose(out[:, 1], 5.0), 2] == 0)  # a 5 s interval is never good
        if name.endswith("-quality"):
            assert np.all((out >= 0) & (out <= 1))
    n_zero = sum(1 for r in rows if not (np.isfinite(r[0]) and r[0] > 0) and np.isfinite(r[2]))
    assert counters["strap-rr.invalid_rr"] >= n_zero - sum(1 for r in rows if not np.isfinite(r[2]))


# ------------------------------------------------------------------ real recordings


@pytest.mark.realdata
def test_real_recordings_are_mostly_good_and_the_artifact_is_flagged(shared_data):
    df = pd.read_csv(shared_data / "neurokit2_samples" / "bio_resting_5min_100hz.csv")
    for col in ("ECG", "PPG", "RSP"):
        rows = np.array(WindowQuality(col, 100.0).update(df[col].to_numpy(dtype=float)))
        assert np.mean(rows[:, Q["quality"]] == 1.0) >= 0.95, col
    ecg = np.array(WindowQuality("ECG", 100.0).update(df["ECG"].to_numpy(dtype=float)))
    assert ecg[128, Q["motion"]] == 1.0  # 256-258 s: the large movement artifact (0.9 mV swing at 257.8 s)
    import wfdb

    x = wfdb.rdrecord(str(shared_data / "mitdb_100" / "100"), channels=[0]).p_signal[:, 0]
    rows = np.array(WindowQuality("ECG", 360.0).update(x))
    assert np.mean(rows[:, Q["quality"]] == 1.0) >= 0.99
