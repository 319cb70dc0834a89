"""Wrist feature windows on the live path, baseline, classifiers, skops persistence, training CLI."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from engage.core import Chunk, EventBus, Runtime, StreamInfo, VirtualClock
from engage.datasets import Labels, Recording, StressPredict, Track
from engage.models.classifier import ClassifierModel, make_classifier
from engage.models.evaluation import MODEL_FEATURES, _align, load_shipped, shipped_model_path
from engage.models.persistence import ModelFileError, load_model, save_model
from engage.models.training import (WindowConfig, accuracy_since_change, extract_windows, fit, loso, metrics, predict,
                                    report)
from engage.models.wrist import WRIST_FEATURES, BaselineNormaliser, Collector, WristFeatureWindow, wrist_features



@pytest.fixture(autouse=True)
def _one_openmp_thread():
    """Gradient boosting's OpenMP threads spin-wait on tiny training sets; on a shared, loaded
    machine one thread is several times faster (11 s instead of 51 s for a test training)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        yield

def synthetic_recording(subject="v1", minutes=12, seed=0, effect=1.0) -> Recording:
    """EDA, HR, ACC and TEMP with 'stress' blocks (minutes 6-8 and 10-12) raising HR and EDA."""
    rng = np.random.default_rng(seed)
    stress = lambda t: ((t >= 360) & (t < 480)) | (t >= 600)  # noqa: E731
    t4 = np.arange(minutes * 60 * 4) / 4.0
    eda = 2.0 + 0.8 * effect * stress(t4) + 0.02 * rng.normal(size=t4.size)
    t1 = np.arange(minutes * 60, dtype=float)
    hr = 70 + 12 * effect * stress(t1) + rng.normal(0, 2, t1.size)
    t32 = np.arange(minutes * 60 * 32) / 32.0
    acc = rng.normal(0, 0.02, (t32.size, 3)) + [0, 0, 1]

    def info(name, kind, ch, rate):
        return StreamInfo(f"{subject}-{name}", kind, ch, ("u",) * len(ch), rate, f"{subject}-{name}", viewer=subject)

    tracks = [Track(info("eda", "EDA", ("eda",), 4.0), eda[:, None], t4),
              Track(info("hr", "DeviceHR", ("hr_bpm",), 1.0), hr[:, None], t1),
              Track(info("acc", "ACC", ("acc_x", "acc_y", "acc_z"), 32.0), acc, t32),
              Track(info("temp", "TEMP", ("temp",), 4.0), np.full((t4.size, 1), 32.0), t4)]
    return Recording(subject, tracks, Labels(t1, stress(t1).astype(float)))


def test_wrist_windows_do_not_depend_on_chunking():
    rec = synthetic_recording()
    a = wrist_features(rec, window_s=30, hop_s=5, calibration_s=120, step=1.0)
    b = wrist_features(rec, window_s=30, hop_s=5, calibration_s=120, step=0.37)
    assert a.features == b.features and a.X.shape == b.X.shape and len(a.X) > 100
    np.testing.assert_allclose(a.X, b.X, equal_nan=True)
    np.testing.assert_array_equal(a.t, b.t)


def test_wrist_features_replays_through_a_given_chain():
    from engage.models.wrist import wrist_processors
    from engage.signals.eda import EdaFeatures
    from engage.signals.cardiac import PpgHeartRate

    rec = synthetic_recording(minutes=10)
    shipped = wrist_features(rec, window_s=30, hop_s=5, calibration_s=120)
    same = wrist_features(rec, window_s=30, hop_s=5, calibration_s=120,
                          chain=wrist_processors(30, 5, 120))
    np.testing.assert_array_equal(shipped.X, same.X)
    # SCRs must be 100 µS tall: none is found, every other feature is unchanged
    strict = wrist_features(rec, window_s=30, hop_s=5, calibration_s=120,
                            chain=[PpgHeartRate(), EdaFeatures(min_amplitude=100.0), WristFeatureWindow(30, 5),
                                   BaselineNormaliser(120)])
    scr = WRIST_FEATURES.index("scr_rate")
    assert np.any(shipped.raw[:, scr] > 0) and np.all(strict.raw[:, scr] == 0)
    others = [i for i, f in enumerate(WRIST_FEATURES) if f not in ("scr_rate", "scr_amp")]
    np.testing.assert_array_equal(shipped.raw[:, others], strict.raw[:, others])


def test_wrist_window_values_and_missing_modalities():
    rec = synthetic_recording()
    rec.tracks = [t for t in rec.tracks if t.info.type in ("DeviceHR",)]  # HR only
    col = Collector("WristFeatures")
    Runtime(VirtualClock(), [rec.source()], [WristFeatureWindow(60, 10), col], bus=EventBus(), step=1.0).run()
    t, X = col.arrays()
    names = col.channels
    row = X[np.searchsorted(t, 300.0)]
    assert 64 < row[names.index("hr_mean")] < 76 and row[names.index("hr_quality")] > 0.9
    assert np.isnan(row[names.index("eda_tonic")]) and row[names.index("eda_quality")] == 0.0
    assert row[names.index("acc_quality")] == 0.0 and names[: len(WRIST_FEATURES)] == WRIST_FEATURES


def test_baseline_normaliser_z_scores_and_adapts():
    info = StreamInfo("f", "WristFeatures", ("hr_mean", "other"), ("bpm", "x"), 1.0, "f")
    norm = BaselineNormaliser(calibration_s=60, adapt_tau_s=100.0, levels=("hr_mean",))
    vals = np.concatenate([70 + np.tile([-2.0, 0, 2.0], 21)[:61], np.full(300, 80.0)])
    out = norm.process(Chunk.from_rows(info, np.column_stack([vals, np.ones(vals.size)]), np.arange(vals.size)))
    (c,) = out
    assert c.info.type == "WristFeaturesRelative" and c.info.channels == ("z_hr_mean", "other")
    z = c.channel("z_hr_mean")
    assert z[0] == pytest.approx(10 / (4 / 1.35), rel=0.02)  # 10 bpm over the IQR-based spread
    assert z[-1] < 0.2 * z[0]  # the slow adaptation has followed the new level after 3 time constants
    assert np.all(c.channel("other") == 1.0)


def test_classifier_learns_across_subjects_and_runs_live():
    sets = [wrist_features(synthetic_recording(f"v{i}", seed=i), window_s=30, hop_s=5, calibration_s=120)
            for i in range(4)]
    probs = loso(sets, "logistic")
    result = report(sets, probs)
    assert result["balanced_accuracy"] > 0.85 and set(result["per_subject"]) == {"v0", "v1", "v2", "v3"}
    # the same model as a live processor on a new viewer
    model = fit(sets, "logistic")
    loaded = type("M", (), {"model": model, "features": sets[0].features})()
    col = Collector("Engagement")
    rec = synthetic_recording("v9", seed=9)
    from engage.models.wrist import wrist_processors

    Runtime(VirtualClock(), [rec.source()], wrist_processors(30, 5, 120) + [ClassifierModel(loaded), col],
            bus=EventBus(), step=1.0, viewer="v9").run()
    t, X = col.arrays()
    y = rec.label_at(t)
    assert metrics(y.astype(int), X[:, 0])["balanced_accuracy"] > 0.85
    assert np.all((X[:, 3] >= 0) & (X[:, 3] <= 1)) and np.isnan(X[:, 1]).all()
    # estimator parameters reach the pipeline; windows with a NaN label are left out of training
    assert fit(sets, "logistic", estimator__clf__C=0.5).get_params()["estimator__clf__C"] == 0.5
    np.testing.assert_allclose(loso(sets, "logistic", estimator__clf__C=0.5)[0],
                               fit(sets[1:], "logistic", estimator__clf__C=0.5).predict_proba(sets[0].frame())[:, 1])
    blanked = [type(s)(s.subject, s.features, s.X, s.t, np.where(np.arange(len(s.y)) % 2 == 0, s.y, np.nan))
               for s in sets]
    even = [type(s)(s.subject, s.features, s.X[::2], s.t[::2], s.y[::2]) for s in sets]
    np.testing.assert_allclose(fit(blanked).predict_proba(sets[0].frame()), fit(even).predict_proba(sets[0].frame()))


class SyntheticDataset:
    """A dataset of :func:`synthetic_recording` subjects (for extract_windows / extract_reordered)."""

    name = "synthetic"

    def __init__(self, root, n=3):
        self.root = root
        self.n = n

    def subjects(self):
        return [f"v{i}" for i in range(self.n)]

    def load(self, subject):
        return synthetic_recording(subject, minutes=16, seed=int(subject[1:]))


def test_reordered_copies_train_and_loso_keeps_each_subject_out(tmp_path):
    from engage.models.training import ReorderConfig, extract_reordered

    ds = SyntheticDataset(tmp_path)
    config = WindowConfig(window_s=30, calibration_s=120, rank_history_s=None)
    reorder = ReorderConfig(copies=2, min_piece_s=120.0, max_piece_s=240.0, seed=4)
    sets = extract_windows(ds, config=config)
    copies = extract_reordered(ds, config=config, reorder=reorder, cache=tmp_path / "c")
    assert [len(c) for c in copies] == [2, 2, 2] and all(c.subject == s.subject for s, cs in zip(sets, copies) for c in cs)
    # each copy is as long as the session, its labels in another order (the 120 s calibration,
    # which gives no windows, may now hold stress)
    for s, cs in zip(sets, copies):
        for c in cs:
            assert abs(len(c.y) - len(s.y)) <= 1 and not np.array_equal(c.y, s.y)
            assert abs(np.nansum(c.y) - np.nansum(s.y)) <= 120 / 5 + 1
    # the same copies again, from the cache and without it
    again = extract_reordered(ds, config=config, reorder=reorder, cache=tmp_path / "c")
    fresh = extract_reordered(ds, ["v1"], config=config, reorder=reorder)
    np.testing.assert_array_equal(again[1][0].X, copies[1][0].X)
    np.testing.assert_array_equal(fresh[0][1].X, copies[1][1].X)
    probs = loso(sets, "ensemble", train_sets=copies)
    assert report(sets, probs)["balanced_accuracy"] > 0.85
    # fold i never trains on subject i's copies: poisoning them changes no prediction of subject i
    flipped = [[type(c)(c.subject, c.features, c.X, c.t, 1.0 - c.y) for c in copies[0]]] + copies[1:]
    np.testing.assert_allclose(loso(sets, "logistic", train_sets=flipped)[0], loso(sets, "logistic", train_sets=copies)[0])
    with pytest.raises(ValueError, match="train_sets has 2 entries for 3 subjects"):
        loso(sets, train_sets=copies[:2])
    with pytest.raises(ValueError, match="copies"):
        ReorderConfig(copies=-1)


def test_ensemble_is_the_mean_of_its_calibrated_members_and_persists(tmp_path):
    from sklearn.utils.class_weight import compute_sample_weight

    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] * X[:, 1] + 0.5 * X[:, 2] + rng.normal(0, 0.3, 400) > 0).astype(int)
    m = make_classifier("ensemble").fit(X, y, sample_weight=compute_sample_weight("balanced", y))
    members = [est.predict_proba(X)[:, 1] for est in m.estimators_]
    np.testing.assert_allclose(m.predict_proba(X)[:, 1], np.mean(members, axis=0))
    p = tmp_path / "e.skops"
    save_model(m, p, ("a", "b", "c"), "arousal", {"kind": "ensemble"})
    np.testing.assert_allclose(load_model(p).model.predict_proba(X), m.predict_proba(X))
    with pytest.raises(ValueError, match="choose from logistic, boosting, ensemble"):
        make_classifier("forest")


def test_accuracy_since_change_finds_a_lagging_model():
    """A model that follows the labels 3 windows (15 s) late is wrong only just after each change."""
    from engage.models.wrist import WindowSet

    y = np.r_[np.zeros(20), np.ones(20), np.zeros(20)]
    t = 5.0 * np.arange(1, 61)
    p = np.r_[np.zeros(3), y[:-3]] * 0.8 + 0.1  # the label 3 windows earlier
    s = WindowSet("a", ("x",), np.zeros((60, 1)), t, y)
    out = accuracy_since_change([s], [p])
    assert out["0"]["before the first change"] == {"n": 20, "accuracy": 1.0}
    # each change: 12 windows 0-55 s after it (3 wrong), 8 windows 60-95 s (right)
    assert out["1"]["0-60 s"] == {"n": 12, "accuracy": 0.75} and out["0"]["0-60 s"] == {"n": 12, "accuracy": 0.75}
    assert out["1"]["60-120 s"] == {"n": 8, "accuracy": 1.0}
    assert out["1"]["before the first change"] == {"n": 0, "accuracy": None}
    json.dumps(out, allow_nan=False)  # empty bins are null, not NaN

    # unlabelled windows are skipped (a gap is not a change); every subject starts afresh
    gap = WindowSet("b", ("x",), np.zeros((60, 1)), t, np.where((t > 50) & (t < 80), np.nan, y))
    both = accuracy_since_change([s, gap], [p, p])
    assert both["0"]["before the first change"]["n"] == 20 + 15  # 5 of its first 20 unlabelled
    assert both["1"]["0-60 s"]["n"] == 24 and both["0"]["0-60 s"]["n"] == 24
    # the bins are the caller's: a change 200 s back falls in the last one
    three = accuracy_since_change([WindowSet("c", ("x",), np.zeros((3, 1)), t[:3], np.array([0.0, 2.0, 2.0]))],
                                  [np.zeros(3)])
    assert three["2"]["0-60 s"] == {"n": 2, "accuracy": 0.0} and three["1"]["0-60 s"]["n"] == 0
    late = accuracy_since_change([s], [p], edges_s=(0.0, 30.0))
    assert late["1"]["30 s-"] == {"n": 14, "accuracy": 1.0} and late["1"]["0-30 s"]["n"] == 6


def test_metrics_values():
    m = metrics(np.array([0, 0, 0, 1]), np.array([0.1, 0.2, 0.7, 0.9]))
    assert m["confusion"] == [[2, 1], [0, 1]] and m["balanced_accuracy"] == pytest.approx(5 / 6)
    assert m["roc_auc"] == 1.0 and m["f1"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="unknown classifier kind"):
        make_classifier("svm")


# ---------------------------------------------------------------- persistence


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "m.skops"
    X = np.random.default_rng(0).normal(size=(60, 2))
    y = (X[:, 0] > 0).astype(int)
    save_model(make_classifier("logistic").fit(X, y), p, ("a", "b"), "arousal", {"kind": "logistic"})
    return p


def test_roundtrip_and_feature_check(saved):
    m = load_model(saved, expected_features=("a", "b"))
    assert m.features == ("a", "b") and m.target == "arousal" and "sklearn" in m.versions
    assert m.model.predict_proba([[3.0, 0.0]])[0, 1] > 0.5
    with pytest.raises(ModelFileError, match="feature names differ.*'c'"):
        load_model(saved, expected_features=("a", "c"))


def test_tampered_file_refused(saved, tmp_path):
    raw = bytearray(saved.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 40] = b"\x00" * 40
    bad = tmp_path / "tampered.skops"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="tampered.skops: (damaged or tampered|not a skops)"):
        load_model(bad)
    text = tmp_path / "text.skops"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="not a skops model file"):
        load_model(text)
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "none.skops")


def test_schema_edited_to_an_untrusted_type_is_refused(saved, tmp_path):
    with zipfile.ZipFile(saved) as z:
        files = {n: z.read(n) for n in z.namelist()}
    schema = json.loads(files["schema.json"])
    schema["content"]["model"]["__module__"] = "os"
    schema["content"]["model"]["__class__"] = "system"
    files["schema.json"] = json.dumps(schema).encode()
    bad = tmp_path / "evil.skops"
    with zipfile.ZipFile(bad, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    with pytest.raises(ModelFileError, match="evil.skops: (refused - the file contains untrusted type.*os.system"
                                              "|damaged or tampered)"):
        load_model(bad)


class Foreign:
    """A class outside scikit-learn/NumPy/engage models."""


def test_foreign_skops_files_refused(tmp_path):
    import skops.io as sio

    p = tmp_path / "foreign.skops"
    sio.dump({"format": "engage-model", "model": Foreign()}, p)
    with pytest.raises(ModelFileError, match=r"untrusted type\(s\) .*Foreign"):
        load_model(p)
    q = tmp_path / "plain.skops"
    sio.dump({"weights": [1, 2, 3]}, q)
    with pytest.raises(ModelFileError, match="not an engage model"):
        load_model(q)


def test_shipped_model_is_found_and_valid():
    assert shipped_model_path().is_file()
    m = load_shipped()
    assert m.features == MODEL_FEATURES and m.info["dataset"] == "stress-predict"
    assert "loso" in m.info and len(m.info["subjects"]) >= 10


@pytest.mark.realdata
def test_real_stress_predict_few_participants(shared_data):
    ds = StressPredict(shared_data / "stress_predict_e4")
    sets = _align(extract_windows(ds, ["S05", "S11", "S16"], WindowConfig(), n_jobs=1), MODEL_FEATURES)
    assert all(s.features == MODEL_FEATURES and np.isfinite(s.y).mean() > 0.9 for s in sets)
    shipped = load_shipped()
    k = MODEL_FEATURES.index("p_eda_tonic")
    for s, p in zip(sets, predict(shipped.model, sets)):
        ok = np.isfinite(s.y)
        # the windows computed now are the ones the shipped model learnt from (it saw these people:
        # a change to the signal code that shifts the features without a retrain shows here)
        assert metrics(s.y[ok].astype(int), p[ok])["roc_auc"] > 0.7, s.subject
        # physiology without any fitting: skin conductance ranks higher in the viewer's own last
        # 30 minutes during the stress tasks than at rest
        x = s.X[ok, k]
        good = np.isfinite(x)
        assert metrics(s.y[ok][good].astype(int), x[good] + 0.5)["roc_auc"] > 0.6, s.subject
    # Generalisation to unseen participants is measured leave-one-subject-out over all 19 (engage
    # evaluate --cv loso, benchmarks/models.py): a model fitted on 2-3 participants here is not a
    # test of it (held-out ROC AUC 0.3-0.8 depending on which two, measured).


def test_feature_window_does_not_depend_on_chunking():
    from engage.models.windows import FeatureWindow

    rng = np.random.default_rng(3)
    info = StreamInfo("e", "EDAFeatures", ("tonic_us", "phasic_us", "scr_amplitude", "quality"), ("uS",) * 4, 4.0,
                      "e", viewer="viewer-1")
    t = np.arange(4 * 200) / 4.0
    x = np.column_stack([2 + 0.01 * t, rng.normal(0, 0.01, t.size), (rng.random(t.size) > 0.97) * 0.1,
                         np.ones(t.size)])
    outs = []
    for size in (1, 7, 40):  # chunks shorter than the window (longer ones count as a silence, by design)
        w = FeatureWindow(window_s=30, hop_s=1)
        rows = []
        for i in range(0, t.size, size):
            w.process(Chunk(info, x[i:i + size], t[i:i + size]))
            rows += [c.data for c in w.tick(float(t[min(i + size, t.size) - 1]))]
        outs.append(np.vstack(rows))
    for o in outs[1:]:
        np.testing.assert_allclose(o, outs[0], equal_nan=True)


def test_baseline_recovers_a_feature_missing_during_calibration():
    """Issue 24, bug 1: a feature absent for the whole calibration stayed NaN as a z-score for the
    whole session (its scale was NaN); now it gets its own calibration once it appears."""
    info = StreamInfo("f", "WristFeatures", ("hr_mean", "hrv_lf_hf"), ("bpm", "ratio"), 1.0, "f")
    n = 900
    t = np.arange(n, dtype=float)
    hr = 70 + np.tile([-2.0, 0, 2.0], n // 3)
    lf_hf = np.where(t < 200, np.nan, 0.5 + 0.2 * np.tile([-1.0, 0, 1.0], n // 3))  # appears at 200 s
    lf_hf[t >= 600] += 1.0  # and rises later
    norm = BaselineNormaliser(calibration_s=60, adapt_tau_s=1800.0, levels=("hr_mean", "hrv_lf_hf"))
    (c,) = norm.process(Chunk.from_rows(info, np.column_stack([hr, lf_hf]), t))
    z = c.channel("z_hrv_lf_hf")
    tz = c.timestamps
    assert np.isnan(z[tz < 260]).all()  # not seen in calibration: its own first 60 s of values
    later = z[(tz >= 261) & (tz < 600)]
    assert np.isfinite(later).all() and np.abs(later).max() < 2.0
    assert np.nanmedian(z[tz >= 600]) > 3.0  # the rise stands out
    assert np.isfinite(c.channel("z_hr_mean")).all()


def test_the_window_summarises_a_face_when_there_is_one():
    from engage.core import Runtime
    from engage.sensors.simulated import SimulatedViewer
    from engage.signals.face import FaceFeatures

    viewer = SimulatedViewer(seed=3, sensors=("face",))
    viewer.on_scene(0.05, "calm", timestamp=0.0)
    col = Collector("WristFeatures")
    Runtime(VirtualClock(), [viewer], [FaceFeatures(), WristFeatureWindow(30, 5), col], bus=EventBus(),
            step=0.5).run(duration=180.0)
    t, X = col.arrays()
    names = col.channels
    late = X[t > 60]
    blinks, on, q = (late[:, names.index(n)] for n in ("blink_rate", "on_screen", "face_quality"))
    assert np.all((blinks > 2) & (blinks < 60)) and np.all((on >= 0) & (on <= 1)) and np.all(q > 0.5)
    assert np.isnan(late[:, names.index("hr_mean")]).all()  # no pulse: no heart-rate features
