"""XDF recordings into MNE-Python: engage.io.read_raw and engage export (FIF, EDF, BrainVision), read back
with MNE's own readers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from engage.cli import main
from engage.core import ConfigError, Event, InputFileError, StreamInfo
from engage.record import XdfWriter

mne = pytest.importorskip("mne")


def recording(path: Path) -> Path:
    """250 Hz EEG (µV), 4 Hz EDA with a hole, a marker stream and engage events."""
    rng = np.random.default_rng(0)
    with XdfWriter(path) as w:
        eeg = w.add_stream(StreamInfo("amp", "EEG", ("Cz", "Pz"), ("microvolts", "microvolts"), 250.0, "amp"),
                           channel_format="float32")
        x = rng.normal(0, 20, (2500, 2)).astype(np.float32)
        w.write_samples(eeg, x, 100 + np.arange(2500) / 250)
        eda = w.add_stream(StreamInfo("gsr", "EDA", ("eda",), ("uS",), 4.0, "gsr"))
        t_eda = np.concatenate([100 + np.arange(12) / 4, 106 + np.arange(12) / 4])  # nothing from 103 to 106 s
        w.write_samples(eda, (5 + np.arange(24) / 10).reshape(-1, 1), t_eda)
        mk = w.add_stream(StreamInfo("psychopy", "Markers", ("m",), ("",), 0.0, "pp", channel_format="string"))
        w.write_samples(mk, [["trial 1"], ["trial 2"]], [101.0, 108.0])
        ev = w.add_stream(StreamInfo("engage-events", "Markers", ("event",), ("",), 0.0, "engage-events-s",
                                     channel_format="string"), role="events")
        w.write_samples(ev, [[Event("boredom.onset", 104.5, "viewer-1", 0.9, {"boredom": 0.7}).to_json()]], [104.5])
    return path, x


def test_read_raw_puts_streams_on_one_grid_with_markers_as_annotations(tmp_path):
    from engage.io import read_raw

    path, x = recording(tmp_path / "r.xdf")
    raw = read_raw(path)
    assert raw.info["sfreq"] == 250.0 and raw.ch_names == ["Cz", "Pz", "eda"]
    assert raw.get_channel_types() == ["eeg", "eeg", "gsr"]
    data = raw.get_data()
    assert np.allclose(data[:2].T, x.astype(np.float64) * 1e-6)  # the fastest stream as it was, in volts
    eda = data[2]
    assert eda[0] == pytest.approx(5.0) and eda[int(2.5 * 250)] == pytest.approx(6.0)  # interpolated on the grid
    assert np.all(eda[int(4.0 * 250):int(5.5 * 250)] == 0.0)  # the hole holds zeros ...
    a = raw.annotations
    holes = [(o, d) for o, d, label in zip(a.onset, a.duration, a.description) if label == "BAD_no_data"]
    assert any(o < 3.0 and o + d > 5.9 for o, d in holes)  # ... and is marked
    labels = [(round(o, 3), label) for o, label in zip(a.onset, a.description) if label != "BAD_no_data"]
    assert labels == [(1.0, "trial 1"), (4.5, "boredom.onset"), (8.0, "trial 2")]
    event = [e for e, label in zip(a.extras, a.description) if label == "boredom.onset"][0]
    assert json.loads(event["json"])["evidence"] == {"boredom": 0.7} and event["stream"] == "engage-events"


def test_export_round_trips_through_mnes_readers(tmp_path):
    path, x = recording(tmp_path / "r.xdf")
    assert main(["export", str(path), "--to", "fif"]) == 0
    fif = mne.io.read_raw_fif(tmp_path / "r_raw.fif", preload=True, verbose="error")
    assert np.allclose(fif.get_data(picks=["Cz"])[0], x[:, 0] * 1e-6)
    assert ["trial 1", "boredom.onset", "trial 2"] == [d for d in fif.annotations.description if d != "BAD_no_data"]
    with open(tmp_path / "r_events.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [json.loads(r["json"])["type"] for r in rows if r["json"]] == ["boredom.onset"]
    for fmt, name, reader in (("edf", "r.edf", mne.io.read_raw_edf), ("brainvision", "r.vhdr",
                                                                        mne.io.read_raw_brainvision)):
        assert main(["export", str(path), "--to", fmt]) == 0
        back = reader(tmp_path / name, preload=True, verbose="error")
        assert back.ch_names[:2] == ["Cz", "Pz"] and back.info["sfreq"] == 250.0
        assert np.allclose(back.get_data(picks=["Cz"])[0], x[:, 0] * 1e-6, atol=2e-8)
        assert any(d.endswith("boredom.onset") for d in back.annotations.description)  # BrainVision: Comment/…
    # an existing export is moved aside, not overwritten
    assert main(["export", str(path), "--to", "fif"]) == 0 and (tmp_path / "r_raw_old1.fif").exists()


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    from engage.io import export, read_raw

    only_markers = tmp_path / "m.xdf"
    with XdfWriter(only_markers) as w:
        sid = w.add_stream(StreamInfo("mk", "Markers", ("m",), ("",), 0.0, "m", channel_format="string"))
        w.write_samples(sid, [["a"]], [1.0])
    with pytest.raises(InputFileError, match="no regularly sampled numeric stream to read into MNE"):
        read_raw(only_markers)
    with pytest.raises(ConfigError, match="export format 'xls'"):
        export(recording(tmp_path / "r.xdf")[0], to="xls")
    (tmp_path / "junk.xdf").write_bytes(b"not xdf at all")
    assert main(["export", str(tmp_path / "junk.xdf")]) == 2
    assert "not an XDF file" in capsys.readouterr().err
