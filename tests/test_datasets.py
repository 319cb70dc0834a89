"""Dataset loaders: real Stress-Predict files in place; WESAD, CASE, DEAP and XDF sessions on files
generated here in their documented layouts; malformed and partial folders named in the error."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engage.core import EventBus, Runtime, StreamInfo, VirtualClock
from engage.datasets import (Case, DatasetError, Deap, StressPredict, Wesad, XdfSessions, open_dataset,
                             read_e4_signal)
from engage.datasets.xdf import parse_label_marker
from engage.models.wrist import Collector


# ---------------------------------------------------------------- Empatica E4 / Stress-Predict


def write_e4(folder: Path, t0: float = 1000.0, seconds: int = 120, rng=None) -> None:
    rng = rng or np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)

    def sig(name, fs, cols, values):
        head = ", ".join([f"{t0:.6f}"] * cols) + "\n" + ", ".join([f"{fs:.6f}"] * cols) + "\n"
        body = "\n".join(",".join(f"{v:.3f}" for v in np.atleast_1d(row)) for row in values)
        (folder / f"{name}.csv").write_text(head + body + "\n")

    sig("BVP", 64, 1, rng.normal(0, 30, seconds * 64))
    sig("EDA", 4, 1, 2 + 0.01 * np.arange(seconds * 4))
    sig("TEMP", 4, 1, np.full(seconds * 4, 32.0))
    sig("ACC", 32, 3, rng.integers(-64, 64, (seconds * 32, 3)))
    sig("HR", 1, 1, np.full(seconds, 70.0))
    beats = np.cumsum(np.full(seconds, 0.85))
    (folder / "IBI.csv").write_text(f"{t0:.6f}, IBI\n" + "\n".join(f"{b:.6f},0.850000" for b in beats) + "\n")
    (folder / f"tags_{folder.name}.csv").write_text(f"{t0 + 30:.0f}\n{t0 + 60:.0f}\n")


def make_stress_predict(root: Path, subjects=("S01", "S02")) -> Path:
    rows = ["Participant,HR,respr,Time(sec),Label"]
    for k, s in enumerate(subjects):
        t0 = 1000.0 + 10000 * k
        write_e4(root / "Raw_data" / s, t0)
        rows += [f"{int(s[1:])},70,12,{int(t0 + i)},{int(30 <= i < 60)}" for i in range(120)]
    (root / "Processed_data").mkdir(parents=True)
    (root / "Processed_data" / "Improved_All_Combined_hr_rsp_binary.csv").write_text("\n".join(rows) + "\n")
    return root


def test_stress_predict_generated_layout(tmp_path):
    ds = open_dataset("stress-predict", make_stress_predict(tmp_path))
    assert ds.subjects() == ["S01", "S02"]
    rec = ds.load("S02")
    kinds = {t.info.type: t for t in rec.tracks}
    assert set(kinds) == {"PPG", "EDA", "TEMP", "ACC", "DeviceHR", "IBI"}
    assert kinds["PPG"].info.nominal_rate == 64 and kinds["PPG"].timestamps[0] == 11000.0
    assert np.abs(kinds["ACC"].data).max() <= 1.0  # 1/64 g → g
    assert rec.label_at(np.array([11010.0, 11040.0, 11070.0, 11500.0])).tolist()[:3] == [0.0, 1.0, 0.0]
    assert np.isnan(rec.label_at(np.array([11500.0]))[0])
    assert rec.meta["tags"] == [11030.0, 11060.0]


def test_recording_replays_through_the_runtime(tmp_path):
    rec = StressPredict(make_stress_predict(tmp_path)).load("S01")
    col = Collector("EDA")
    Runtime(VirtualClock(), [rec.source()], [col], bus=EventBus(), step=1.0).run()
    t, x = col.arrays()
    assert len(t) == 480 and np.allclose(x[:, 0], rec.track("EDA").data[:, 0])


def test_stress_predict_partial_folders_name_the_file(tmp_path):
    root = make_stress_predict(tmp_path)
    (root / "Raw_data" / "S01" / "EDA.csv").unlink()
    with pytest.raises(DatasetError, match=r"S01/EDA\.csv: missing"):
        StressPredict(root).load("S01")
    (root / "Processed_data" / "Improved_All_Combined_hr_rsp_binary.csv").unlink()
    with pytest.raises(DatasetError, match="Improved_All_Combined_hr_rsp_binary.csv: missing"):
        StressPredict(root).subjects()
    with pytest.raises(DatasetError, match="Raw_data"):
        StressPredict(tmp_path / "Raw_data" / "S02")
    with pytest.raises(DatasetError, match="no such participant"):
        StressPredict(root).load("S99")


def test_e4_malformed_files(tmp_path):
    p = tmp_path / "ACC.csv"
    p.write_text("1.0, 1.0\n32, 32\n1,2\n")
    with pytest.raises(DatasetError, match="ACC.csv: expected 3 column"):
        read_e4_signal(p, 3)
    p.write_text("1.0\n-4\n1\n")
    with pytest.raises(DatasetError, match="bad start time .* or sample rate"):
        read_e4_signal(p, 1)
    p.write_text("1.0\n4\nabc\n")
    with pytest.raises(DatasetError, match="not an E4 signal file"):
        read_e4_signal(p, 1)
    p.write_text("")
    with pytest.raises(DatasetError, match="ACC.csv"):
        read_e4_signal(p, 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="0123456789.,-e \nabc", max_size=80))
def test_e4_parser_fuzz_typed_error_or_arrays(tmp_path, text):
    p = tmp_path / "EDA.csv"
    p.write_text(text)
    try:
        x, t, fs = read_e4_signal(p, 1)
    except DatasetError as exc:
        assert "EDA.csv" in str(exc)
    else:
        assert x.shape == (len(t), 1) and fs > 0


@pytest.mark.realdata
def test_stress_predict_real(shared_data):
    ds = StressPredict(shared_data / "stress_predict_e4")
    subjects = ds.subjects()
    assert subjects[0] == "S02" and len(subjects) == 19  # S01 has no labels in the processed file
    rec = ds.load("S02")
    eda = rec.track("EDA")
    assert eda.info.nominal_rate == 4.0 and eda.timestamps[0] == 1644227574.0
    assert rec.track("PPG").info.nominal_rate == 64.0
    # the labels' stress blocks start and end at the participant's tag presses
    t = rec.labels.timestamps
    changes = t[1:][np.diff(rec.labels.values) != 0]
    tags = np.array(rec.meta["tags"])
    assert all(np.min(np.abs(tags - c)) <= 1.0 for c in changes)
    assert 0.25 < np.nanmean(rec.labels.values) < 0.4


# ---------------------------------------------------------------- WESAD


def write_wesad(root: Path, subject: str = "S2", seconds: int = 20) -> Path:
    rng = np.random.default_rng(1)
    label = np.repeat([0, 1, 2, 3], seconds * 700 // 4)
    doc = {"subject": subject, "label": label,
           "signal": {"chest": {"ECG": rng.normal(size=(seconds * 700, 1)), "EDA": rng.normal(size=(seconds * 700, 1)),
                                "Resp": rng.normal(size=(seconds * 700, 1)), "ACC": rng.normal(size=(seconds * 700, 3))},
                      "wrist": {"BVP": rng.normal(size=(seconds * 64, 1)), "EDA": rng.random((seconds * 4, 1)) + 1,
                                "TEMP": np.full((seconds * 4, 1), 33.0),
                                "ACC": rng.integers(-64, 64, (seconds * 32, 3)).astype(float)}}}
    (root / subject).mkdir(parents=True, exist_ok=True)
    with open(root / subject / f"{subject}.pkl", "wb") as f:
        pickle.dump(doc, f, protocol=2)
    return root


def test_wesad_generated(tmp_path):
    ds = Wesad(write_wesad(tmp_path))
    assert ds.subjects() == ["S2"]
    rec = ds.load("S2")
    rates = {t.info.type: t.info.nominal_rate for t in rec.tracks}
    assert rates == {"PPG": 64.0, "EDA": 4.0, "TEMP": 4.0, "ACC": 32.0, "ECG": 700.0, "RESP": 700.0}
    # 20 s split in four: transient (NaN), baseline (0), stress (1), amusement (NaN)
    assert np.array_equal(rec.label_at(np.array([1.0, 6.0, 11.0, 16.0])), [np.nan, 0, 1, np.nan], equal_nan=True)


def test_wesad_malformed(tmp_path):
    root = write_wesad(tmp_path)
    doc = pickle.loads((root / "S2" / "S2.pkl").read_bytes(), encoding="latin1")
    del doc["signal"]["wrist"]["BVP"]
    (root / "S2" / "S2.pkl").write_bytes(pickle.dumps(doc))
    with pytest.raises(DatasetError, match=r"S2\.pkl: missing signal/wrist/BVP"):
        Wesad(root).load("S2")
    (root / "S2" / "S2.pkl").write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(DatasetError, match=r"S2\.pkl: unreadable pickle"):
        Wesad(root).load("S2")
    (root / "S2" / "S2.pkl").unlink()
    with pytest.raises(DatasetError, match=r"S2\.pkl: missing"):
        Wesad(root).load("S2")
    with pytest.raises(DatasetError, match="no WESAD subject folders"):
        Wesad(tmp_path / "S2").subjects()


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/engage-evil-pickle-ran"),))


def test_pickles_asking_for_code_are_refused(tmp_path):
    (tmp_path / "s01.dat").write_bytes(pickle.dumps({"data": _Evil()}))
    with pytest.raises(DatasetError, match="refused to load"):
        Deap(tmp_path).load("s01")
    assert not Path("/tmp/engage-evil-pickle-ran").exists()


# ---------------------------------------------------------------- CASE


def write_case(root: Path, n: int = 1, seconds: int = 10) -> Path:
    """10 s: video 1 (an amusing clip) for 4 s, the blue screen (id 10) for 2 s, video 3 (boring-1) for 4 s."""
    (root / "physiological").mkdir(parents=True)
    (root / "annotations").mkdir(parents=True)
    t = np.arange(seconds * 1000)
    video = lambda ms: 1 if ms < 4000 else (10 if ms < 6000 else 3)  # noqa: E731
    phys = "daqtime,ecg,bvp,gsr,rsp,skt,emg_zygo,emg_coru,emg_trap,video\n" + "\n".join(
        f"{i},{0.1:.2f},{35 + np.sin(i / 100):.3f},{5 + i / 1e4:.4f},{30:.1f},{31.5},{0},{0},{0},{video(i)}" for i in t)
    (root / "physiological" / f"sub_{n}.csv").write_text(phys)
    ta = np.arange(seconds * 20) * 50
    arousal = lambda ms: 3.0 if ms < 4000 else (5.0 if ms < 6000 else 7.5)  # noqa: E731
    ann = "jstime,valence,arousal,video\n" + "\n".join(f"{j},6,{arousal(j)},{video(j)}" for j in ta)
    (root / "annotations" / f"sub_{n}.csv").write_text(ann)
    return root


def test_case_generated(tmp_path):
    ds = Case(write_case(tmp_path))
    assert ds.subjects() == ["sub_1"]
    rec = ds.load("sub_1")
    eda = rec.track("EDA")
    assert eda.info.nominal_rate == 1000.0 and len(eda.timestamps) == 10000
    assert {t.info.type for t in rec.tracks} == {"PPG", "EDA", "TEMP", "ECG", "RESP"}
    at = np.array([1.0, 5.0, 7.0])  # a clip, the blue screen, the boring clip
    # the blue screen (joystick at rest, 5.0) is not "low arousal": it is left unlabelled
    np.testing.assert_array_equal(rec.label_at(at), [0.0, np.nan, 1.0])
    np.testing.assert_array_equal(rec.with_label("boring").label_at(at), [0.0, np.nan, 1.0])
    np.testing.assert_array_equal(rec.with_label("video").label_at(at), [1.0, np.nan, 3.0])
    with pytest.raises(DatasetError, match="no label 'bored'.*boring"):
        rec.with_label("bored")


def test_case_partial_and_malformed(tmp_path):
    root = write_case(tmp_path)
    (root / "annotations" / "sub_1.csv").unlink()
    with pytest.raises(DatasetError, match=r"annotations/sub_1\.csv: missing"):
        Case(root).load("sub_1")
    (root / "annotations" / "sub_1.csv").write_text("jstime,valence\n0,5\n")
    with pytest.raises(DatasetError, match="missing column.*arousal"):
        Case(root).load("sub_1")
    with pytest.raises(DatasetError, match="physiological: missing the physiological folder of CASE"):
        Case(root / "physiological")


# ---------------------------------------------------------------- DEAP


def test_deap_generated_and_malformed(tmp_path):
    rng = np.random.default_rng(2)
    data = rng.normal(size=(3, 40, 128 * 4)).astype(np.float32)
    data[:, 36, :] = 2e5  # GSR as skin resistance in ohms: 5 µS
    data[1, 36, :128] = 1e5  # 10 µS during trial 2's first second
    data[2, 36, 5] = 0.0  # a dropout
    labels = np.array([[5, 2, 5, 5], [5, 8, 5, 5], [7, 6, 5, 5]], dtype=float)
    with open(tmp_path / "s01.dat", "wb") as f:
        pickle.dump({"data": data, "labels": labels}, f)
    ds = Deap(tmp_path)
    assert ds.subjects() == ["s01"]
    trials = ds.sessions("s01")
    assert [r.session for r in trials] == ["trial-01", "trial-02", "trial-03"]
    assert all(r.subject == "s01" and len(r.track("EDA").timestamps) == 512 for r in trials)
    eda = trials[1].track("EDA")
    assert eda.info.units == ("uS",) and eda.data[0, 0] == pytest.approx(10.0) and eda.data[-1, 0] == pytest.approx(5.0)
    assert np.isnan(trials[2].track("EDA").data[5, 0])
    period = 4 + Deap.PAUSE_S
    # each trial's rating holds during its video; its pre-trial seconds and the pauses are unlabelled
    assert np.isnan(trials[1].label_at(np.array([period + 1.0]))[0])
    assert trials[1].label_at(np.array([period + 3.5]))[0] == 1.0
    rec = ds.load("s01")
    assert {t.info.type for t in rec.tracks} == {"EDA", "RESP", "PPG", "TEMP"}
    assert len(rec.track("EDA").timestamps) == 3 * 512
    got = rec.label_at(np.array([1.0, 3.5, 5.0, period + 3.5, 2 * period + 3.5]))
    np.testing.assert_array_equal(got, [np.nan, 0, np.nan, 1, 1])
    np.testing.assert_array_equal(rec.with_label("valence").label_at(np.array([3.5, 2 * period + 3.5])), [0, 1])
    with open(tmp_path / "s02.dat", "wb") as f:
        pickle.dump({"data": data[:, :10], "labels": labels}, f)
    with pytest.raises(DatasetError, match=r"s02\.dat: 'data' must be trials × 40 channels"):
        ds.load("s02")
    with pytest.raises(DatasetError, match="no DEAP files"):
        Deap(tmp_path / "nothing-here" if (tmp_path / "nothing-here").mkdir() is None else tmp_path).subjects()


def test_deap_trials_get_their_own_baseline_from_the_pre_trial_seconds(tmp_path):
    """Each trial is replayed alone; its first window covers the 3 pre-trial seconds and sets the
    baseline, so a trial whose skin conductance starts high is not scored against another trial."""
    from engage.models.training import WindowConfig, extract_windows

    t = np.arange(63 * 128) / 128.0
    data = np.zeros((2, 40, t.size))
    data[0, 36] = 1e6 / (2.0 + 0.02 * (t > 3) * (t - 3))  # 2 µS at rest, rising 0.02 µS/s during the video
    data[1, 36] = 1e6 / (8.0 + 0.02 * (t > 3) * (t - 3))  # the same rise from 8 µS
    data[:, 38] = np.sin(2 * np.pi * 1.2 * t)  # a 72 bpm pulse
    data[:, 39] = 33.0
    with open(tmp_path / "s01.dat", "wb") as f:
        pickle.dump({"data": data, "labels": np.array([[5, 8, 5, 5], [5, 2, 5, 5.0]])}, f)
    ds = Deap(tmp_path)
    (ws,) = extract_windows(ds, config=WindowConfig(**Deap.window_defaults))
    assert set(ws.session) == {"trial-01", "trial-02"}
    z = ws.X[:, ws.features.index("z_eda_tonic")]
    first, second = z[ws.session == "trial-01"], z[ws.session == "trial-02"]
    assert len(first) > 20 and len(second) > 20
    # relative to its own pre-trial seconds: both rise from about 0; 8 µS against 2 µS is a smaller relative rise
    assert abs(first[0]) < 3 and abs(second[0]) < 3 and first[-1] > second[-1] > 0
    np.testing.assert_array_equal(np.unique(ws.y[ws.session == "trial-01"]), [1.0])


# ---------------------------------------------------------------- XDF sessions with label markers


def test_xdf_sessions_labels_from_markers(tmp_path):
    from engage.record.xdf import XdfWriter

    w = XdfWriter(tmp_path / "p01.xdf")
    eda = w.add_stream(StreamInfo("eda", "EDA", ("eda",), ("uS",), 4.0, "eda-1"))
    mk = w.add_stream(StreamInfo("markers", "Markers", ("marker",), ("",), 0.0, "mk-1", channel_format="string"))
    t = 100 + np.arange(400) / 4.0
    w.write_samples(eda, np.full((400, 1), 2.0), t)
    w.write_samples(mk, np.array([["label=0"], ["scene.start"], ["label=1"], ["label="]], dtype=object),
                    np.array([100.0, 110.0, 150.0, 180.0]))
    w.close()
    ds = XdfSessions(tmp_path)
    assert ds.subjects() == ["p01"]
    rec = ds.load("p01")
    assert [tr.info.type for tr in rec.tracks] == ["EDA"]
    assert np.array_equal(rec.label_at(np.array([105.0, 160.0, 190.0])), [0, 1, np.nan], equal_nan=True)


def test_xdf_label_marker_parsing_and_errors(tmp_path):
    assert parse_label_marker(" label=2 ") == 2.0 and np.isnan(parse_label_marker("label=nan"))
    with pytest.raises(DatasetError, match="not a number"):
        parse_label_marker("label=high")
    with pytest.raises(DatasetError, match="no .xdf files"):
        XdfSessions(tmp_path).subjects()
    (tmp_path / "bad.xdf").write_bytes(b"not an xdf file at all")
    with pytest.raises(Exception, match="bad.xdf"):
        XdfSessions(tmp_path).load("bad")


def test_a_huge_exponent_is_a_typed_error_not_a_crash(tmp_path):
    """pandas' default float parser segfaults on such exponents (found by the fuzz test above)."""
    p = tmp_path / "EDA.csv"
    p.write_text(".20,229.b5195b06\n.1e603560054328 5")
    with pytest.raises(DatasetError, match="EDA.csv"):
        read_e4_signal(p, 2)
    p.write_text("1.0\n4\n1e603560054328\n")
    with pytest.raises(DatasetError, match="EDA.csv"):
        read_e4_signal(p, 1)
