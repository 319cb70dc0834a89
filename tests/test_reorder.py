"""Re-ordered recordings (the training augmentation against the protocol's clock)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engage.core import StreamInfo
from engage.datasets import Labels, Recording, StressPredict, Track
from engage.datasets.reorder import copy_seed, piece_edges, recording_reordered, recording_shuffled


def recording(seconds=3600.0, label_times=(0.0, 600.0, 960.0, 1500.0, 2100.0, 2220.0), label_values=None,
              rates=(4.0, 64.0), end=None) -> Recording:
    """Tracks whose first channel is the original timestamp, so every sample says where it came from."""
    values = label_values if label_values is not None else [i % 2 for i in range(len(label_times))]
    tracks = []
    for k, fs in enumerate(rates):
        t = 1000.0 + np.arange(int(seconds * fs)) / fs
        info = StreamInfo(f"s-{k}", ("EDA", "BVP", "ACC")[k % 3], ("t", "x"), ("s", "u"), fs, f"s-{k}")
        tracks.append(Track(info, np.column_stack([t, np.sin(t)]), t))
    labels = Labels(1000.0 + np.asarray(label_times, dtype=float), np.asarray(values, dtype=float), end=end)
    return Recording("S07", tracks, labels, {"origin": "test"})


def check_invariants(rec: Recording, out: Recording) -> None:
    # pieces are cut between samples, so the first sample and the span may move by under one sample,
    # plus the length of any piece too short to hold a sample (label steps closer than a sample)
    period = 1.0 / max(t.info.nominal_rate for t in rec.tracks)
    period += sum(b - a for a, b in out.meta["reordered"] if b - a < period)
    assert rec.start <= out.start < rec.start + period and out.subject == rec.subject and out.meta["origin"] == "test"
    for a, b in zip(rec.tracks, out.tracks):
        assert b.info == a.info and b.data.shape == a.data.shape
        # every sample once: the multiset of original timestamps is unchanged
        np.testing.assert_array_equal(np.sort(b.data[:, 0]), a.data[:, 0])
        assert np.all(np.diff(b.timestamps) > 0)  # one continuous, increasing clock
        # labels travel with their samples
        np.testing.assert_array_equal(out.label_at(b.timestamps), rec.label_at(b.data[:, 0]))
    assert abs((out.end - out.start) - (rec.end - rec.start)) < period


def test_pieces_cut_at_label_changes_and_within_bounds():
    rec = recording()
    edges = piece_edges(rec, np.random.default_rng(1), 240.0, 600.0)
    changes = 1000.0 + np.array([600.0, 960.0, 1500.0, 2100.0, 2220.0])
    assert set(changes) <= set(edges) and edges[0] == rec.start and edges[-1] > rec.end
    lengths = np.diff(edges)
    # pieces inside long stretches are 240-600 s; a label block shorter than that stays whole (120 s here)
    assert lengths.max() <= 600.0 and sorted(lengths)[0] == pytest.approx(120.0)
    assert np.all(lengths[~np.isclose(lengths, 120.0)] >= 240.0 - 1e-9)
    # no rng: only the label changes
    np.testing.assert_array_equal(piece_edges(rec, None)[1:-1], changes)


def test_shuffled_keeps_every_sample_and_its_label():
    rec = recording()
    out = recording_shuffled(rec, np.random.default_rng(3))
    check_invariants(rec, out)
    assert [p[0] for p in out.meta["reordered"]] != sorted(p[0] for p in out.meta["reordered"])  # really moved
    # stress time is preserved
    grid = np.arange(rec.start, rec.end, 1.0)
    assert np.nansum(out.label_at(np.arange(out.start, out.end, 1.0))) == np.nansum(rec.label_at(grid))


def test_copies_are_deterministic_and_independent_of_order():
    rec = recording()
    a = recording_shuffled(rec, copy_seed(0, "S07", 1))
    b = recording_shuffled(rec, copy_seed(0, "S07", 1))
    c = recording_shuffled(rec, copy_seed(0, "S07", 2))
    d = recording_shuffled(rec, copy_seed(0, "S08", 1))
    assert a.meta["reordered"] == b.meta["reordered"]
    assert c.meta["reordered"] != a.meta["reordered"] and d.meta["reordered"] != a.meta["reordered"]


def test_unlabelled_stretches_and_label_end_travel_too():
    # no label for the first 100 s, a NaN label block, labels stop holding 3000 s in
    rec = recording(label_times=(100.0, 700.0, 1300.0, 2000.0), label_values=[0, np.nan, 1, 0], end=4000.0)
    out = recording_shuffled(rec, np.random.default_rng(5))
    check_invariants(rec, out)
    grid = np.arange(rec.start, rec.end, 0.5)
    new = out.label_at(np.arange(out.start, out.end, 0.5))
    assert abs(np.isnan(new).sum() - np.isnan(rec.label_at(grid)).sum()) <= 1  # the grid may shift by a point


def test_explicit_order_and_bad_arguments():
    rec = recording()
    edges = piece_edges(rec, None)
    out = recording_reordered(rec, edges, list(range(len(edges) - 1))[::-1])
    check_invariants(rec, out)
    assert out.tracks[0].data[0, 0] == pytest.approx(1000.0 + 2220.0)  # the last piece plays first
    with pytest.raises(ValueError, match="permutation"):
        recording_reordered(rec, edges, [0, 0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="cover"):
        recording_reordered(rec, edges[1:], range(len(edges) - 2))
    with pytest.raises(ValueError, match="min_piece_s"):
        piece_edges(rec, np.random.default_rng(0), 600.0, 240.0)
    with pytest.raises(ValueError, match="min_piece_s"):
        piece_edges(rec, np.random.default_rng(0), float("nan"), 240.0)
    empty = Recording("E", [Track(rec.tracks[0].info, np.zeros((0, 2)), np.zeros(0))], None)
    with pytest.raises(ValueError, match="no samples"):
        recording_shuffled(empty, np.random.default_rng(0))
    # a recording without labels is cut at random only
    bare = Recording("B", rec.tracks, None)
    out = recording_shuffled(bare, np.random.default_rng(0))
    assert out.labels is None and len(out.meta["reordered"]) >= 6


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(st.integers(0, 1_800_000).map(lambda ms: ms / 1000.0),  # label times to the ms
                                 st.sampled_from([0.0, 1.0, np.nan])), min_size=1, max_size=12),
       lo=st.floats(30.0, 300.0), span=st.floats(1.0, 3.0), seed=st.integers(0, 2**32 - 1),
       end=st.one_of(st.none(), st.integers(100_000, 2_000_000).map(lambda ms: ms / 1000.0)))
def test_any_label_steps_and_piece_bounds_keep_the_invariants(steps, lo, span, seed, end):
    # times on a 1 ms grid: a label step a few 1e-13 s from a sample can round to either side of it
    # once shifted, which no real file resolves
    steps = sorted(set(steps), key=lambda s: s[0])
    times = np.array([s[0] for s in steps])
    keep = np.r_[True, np.diff(times) > 0]
    rec = recording(seconds=1800.0, label_times=times[keep], label_values=[s[1] for s, k in zip(steps, keep) if k],
                    rates=(2.0,), end=end)
    out = recording_shuffled(rec, np.random.default_rng(seed), lo, lo * span)
    check_invariants(rec, out)


@pytest.fixture
def stress_predict(shared_data):
    root = shared_data / "stress_predict_e4"
    if not root.is_dir():
        pytest.skip("stress_predict_e4 not in ENGAGE_TEST_DATA")
    return StressPredict(root)


def test_real_session_reordered(stress_predict):
    rec = stress_predict.load(stress_predict.subjects()[1])
    out = recording_shuffled(rec, copy_seed(0, rec.subject, 0))
    for a, b in zip(rec.tracks, out.tracks):
        assert b.data.shape == a.data.shape and np.all(np.diff(b.timestamps) >= 0)
        np.testing.assert_allclose(np.sort(b.data, axis=0), np.sort(a.data, axis=0))
    step = 1.0
    old = rec.label_at(np.arange(rec.start, rec.end, step))
    new = out.label_at(np.arange(out.start, out.end, step))
    assert abs(np.nansum(new) - np.nansum(old)) <= 2 and abs(np.isnan(new).sum() - np.isnan(old).sum()) <= 2
    assert len(out.meta["reordered"]) >= 9  # 7 protocol blocks, the long rests cut further
