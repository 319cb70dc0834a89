"""``engage live`` over LSL with real outlets on loopback: the session reads exactly the streams its
profile names - never its own output nor another engage session's, never two people as one viewer."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from engage.cli import main

pylsl = pytest.importorskip("pylsl")
pyxdf = pytest.importorskip("pyxdf")
pytestmark = pytest.mark.lsl


def tag() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


class Device:
    """A real LSL outlet pushing on its own thread: a regular signal (``level`` plus a slow wave) at
    ``rate`` Hz, or (``rate`` 0) one string marker every ``every_s`` seconds."""

    def __init__(self, name: str, type_: str, source_id: str, rate: float = 16.0, level: float = 5.0,
                 every_s: float = 0.5, text: str = "stim", outlet=None) -> None:
        self.name, self.rate, self.level, self.every_s, self.text = name, rate, level, every_s, text
        if outlet is None:
            fmt = pylsl.cf_float32 if rate > 0 else pylsl.cf_string
            outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, type_, 1, rate, fmt, source_id))
        self.outlet = outlet
        self.pushed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _push(self, i: int) -> None:
        if hasattr(self.outlet, "push_sample"):
            self.outlet.push_sample([f"{self.text} {i}"], pylsl.local_clock())
        else:  # an engage event outlet
            from engage.core import Event

            self.outlet(Event("boredom.onset", pylsl.local_clock(), "someone-else", 0.9, {"i": i}, "other"))

    def _run(self) -> None:
        t0 = pylsl.local_clock()
        n = 0
        while not self._stop.is_set():
            if self.rate > 0:
                due = int((pylsl.local_clock() - t0) * self.rate)
                if due > n:
                    x = self.level + 0.2 * np.sin(np.arange(n, due) / self.rate)
                    self.outlet.push_chunk(x.reshape(-1, 1).tolist())
                    n = due
                time.sleep(0.02)
            else:
                self._push(n)
                n += 1
                self._stop.wait(self.every_s)
        self.pushed = n

    def __enter__(self) -> "Device":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)


def run_live(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["live", *args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_live_session_never_reads_its_own_or_another_sessions_events(tmp_path, capsys):
    """Bug 1: a Markers sensor with --lsl subscribed to the session's own engage-events outlet (and to any
    other engage session's), each event coming back re-escaped, doubling every round."""
    from engage.events.publishers import LslEventOutlet

    t = tag()
    profile = tmp_path / "rig.toml"
    profile.write_text(f'[sensor.sim]\nkind = "simulated"\n\n[sensor.markers]\nkind = "lsl"\ntype = "Markers"\n'
                       'wait_s = 2\n')
    files = tmp_path / "files"
    with Device(f"{t}-psychopy", "Markers", f"{t}-psychopy", rate=0, every_s=0.4), \
            Device("engage-events", "Markers", "", rate=0, every_s=0.1, outlet=LslEventOutlet(f"{t}-other")):
        rc, out, err = run_live(capsys, "--profile", str(profile), "--no-story", "--lsl", "--duration", "6",
                                "--out", str(files), "--quiet")
    assert rc == 0, err
    events = jsonl(files / "events.jsonl")
    markers = [e for e in events if e["type"] == "marker"]
    assert {e["evidence"]["stream"] for e in markers} == {f"{t}-psychopy"}
    assert 5 <= len(markers) <= 20 and all(e["evidence"]["value"].startswith("stim ") for e in markers)
    assert not [e for e in events if e["viewer"] == "someone-else"]
    assert (files / "events.jsonl").stat().st_size < 100_000


def test_two_peoples_skin_conductance_is_never_one_viewer(tmp_path, capsys):
    """Bug 2: a type=EDA sensor took every EDA stream on the network into one viewer, interleaved."""
    t = tag()
    refuse = tmp_path / "one.toml"
    refuse.write_text('[sensor.eda]\nkind = "lsl"\ntype = "EDA"\nwait_s = 2\n')
    per_person = tmp_path / "two.toml"
    per_person.write_text(f'[sensor.eda]\nkind = "lsl"\ntype = "EDA"\nwait_s = 2\nviewer_from = "source_id"\n'
                          f'viewer_pattern = "^{t}-(S\\\\d+)"\n')
    xdf = tmp_path / "two.xdf"
    with Device(f"{t}-S01-EDA", "EDA", f"{t}-S01-eda", level=4.0), \
            Device(f"{t}-S02-EDA", "EDA", f"{t}-S02-eda", level=12.0):
        rc, out, err = run_live(capsys, "--profile", str(refuse), "--no-story", "--duration", "3",
                                "--out", str(tmp_path / "a"), "--quiet")
        assert rc == 2, err
        line = [x for x in err.splitlines() if "sensor 'eda'" in x][0]
        assert "not started: 2 LSL streams match 'type=EDA'" in line
        assert f"'{t}-S01-EDA' (EDA, source_id '{t}-S01-eda'" in line and f"'{t}-S02-EDA'" in line
        assert "viewer_from" in line
        rc, out, err = run_live(capsys, "--profile", str(per_person), "--no-story", "--duration", "6",
                                "--record", str(xdf), "--out", str(tmp_path / "b"), "--quiet")
    assert rc == 0, err
    assert "for viewer S01" in err and "for viewer S02" in err
    streams, _ = pyxdf.load_xdf(str(xdf))
    features = {s["info"]["name"][0]: s for s in streams if s["info"]["type"][0] == "EDAFeatures"}
    assert set(features) == {"S01-eda-features", "S02-eda-features"}
    for viewer, level in (("S01", 4.0), ("S02", 12.0)):
        f = features[f"{viewer}-eda-features"]
        labels = [c["label"][0] for c in f["info"]["desc"][0]["channels"][0]["channel"]]
        tonic = f["time_series"][:, labels.index("tonic_us")]
        assert len(tonic) and np.nanmedian(tonic) == pytest.approx(level, abs=1.0)
        assert np.all(np.diff(f["time_stamps"]) >= 0)
    # a replay gives each raw stream back the viewer the live session gave it
    from engage.sensors.replay import XdfReplay

    replayed = {i.name: (i.viewer, i.type) for i in XdfReplay(xdf, recorded_viewers=True).streams()}
    assert replayed == {f"{t}-S01-EDA": ("S01", "EDA"), f"{t}-S02-EDA": ("S02", "EDA")}


class Amplifier(threading.Thread):
    """An EEG amplifier with an ECG lead on its second channel: float32, its own header (manufacturer,
    channel labels, units), each chunk stamped by the device with a little jitter."""

    def __init__(self, source_id: str, rate: float = 250.0) -> None:
        super().__init__(daemon=True)
        info = pylsl.StreamInfo(f"amp-{source_id[-4:]}", "EEG", 2, rate, pylsl.cf_float32, source_id)
        desc = info.desc()
        desc.append_child_value("manufacturer", "Acme Amplifiers")
        chans = desc.append_child("channels")
        for label, unit in (("Cz", "microvolts"), ("ECG1", "microvolts")):
            c = chans.append_child("channel")
            c.append_child_value("label", label)
            c.append_child_value("unit", unit)
        self.outlet = pylsl.StreamOutlet(info)
        self.rate = rate
        self.values: list[np.ndarray] = []
        self.stamps: list[np.ndarray] = []
        self.halt = threading.Event()

    def run(self) -> None:
        import neurokit2 as nk

        ecg = nk.ecg_simulate(duration=10, sampling_rate=int(self.rate), heart_rate=75, method="simple",
                              random_state=1) * 1000.0  # microvolts, repeated every 10 s
        rng = np.random.default_rng(3)
        t0 = pylsl.local_clock()
        n = 0
        while not self.halt.is_set():
            due = int((pylsl.local_clock() - t0) * self.rate)
            if due > n:
                k = np.arange(n, due)
                x = np.column_stack([rng.normal(0, 10, k.size), ecg[k % ecg.size]]).astype(np.float32)
                ts = t0 + k / self.rate + rng.uniform(-0.002, 0.002, k.size)
                self.outlet.push_chunk(x, ts.tolist())
                self.values.append(x)
                self.stamps.append(ts)
                n = due
            time.sleep(0.01)

    def __enter__(self) -> "Amplifier":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.halt.set()
        self.join(2)


def test_live_record_keeps_each_device_stream_raw(tmp_path, capsys, caplog):
    """Bug 3: live --record retyped EEG to ECG, renamed channels, turned float32 into double64, replaced the
    manufacturer and dropped the raw timestamps and clock offsets (what pyxdf needs to redo the sync)."""
    import logging

    t = tag()
    profile = tmp_path / "amp.toml"
    profile.write_text(f'[sensor.ecg]\nkind = "lsl"\nsource_id = "{t}-amp"\nmaps_to = "ECG"\nchannel = "ECG1"\n'
                       'wait_s = 5\n')
    xdf = tmp_path / "amp.xdf"
    with Amplifier(f"{t}-amp") as amp:
        rc, out, err = run_live(capsys, "--profile", str(profile), "--no-story", "--duration", "8", "--record",
                                str(xdf), "--out", str(tmp_path / "files"), "--quiet")
    assert rc == 0, err
    raw, _ = pyxdf.load_xdf(str(xdf), synchronize_clocks=False, dejitter_timestamps=False)
    mine = [s for s in raw if s["info"]["source_id"] == [f"{t}-amp"]]
    assert len(mine) == 1
    s = mine[0]
    info = s["info"]
    assert info["type"] == ["EEG"] and info["channel_format"] == ["float32"]
    assert info["desc"][0]["manufacturer"] == ["Acme Amplifiers"]
    assert [c["label"][0] for c in info["desc"][0]["channels"][0]["channel"]] == ["Cz", "ECG1"]
    assert s["time_series"].dtype == np.float32
    # the samples and stamps the device pushed, bit for bit: a contiguous run of them, none lost
    pushed_x, pushed_t = np.concatenate(amp.values), np.concatenate(amp.stamps)
    start = int(np.searchsorted(pushed_t, s["time_stamps"][0] - 1e-9))
    n = len(s["time_stamps"])
    assert n > 2 * 250  # (the session binds the stream once liblsl's resolver has seen it: a busy machine is slower)
    assert np.array_equal(s["time_stamps"], pushed_t[start:start + n])
    assert np.array_equal(s["time_series"], pushed_x[start:start + n])
    assert len(s["clock_times"]) >= 1 and s["footer"]["info"]["sample_count"] == [str(n)]
    # what the pipeline derived from it is beside it, each derived stream with its own source_id
    derived = [x for x in raw if x["info"]["source_id"][0].startswith("engage-live-amp-")]
    assert {"HeartRate", "SignalQuality"} <= {x["info"]["type"][0] for x in derived}
    ids = [x["info"]["source_id"][0] for x in raw]
    assert len(ids) == len(set(ids))
    # and pyxdf loads the file (synchronised, dejittered) without a single warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pyxdf"):
        pyxdf.load_xdf(str(xdf))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [r.getMessage() for r in caplog.records]


def test_a_stream_that_appears_late_is_picked_up_and_recorded(tmp_path, capsys):
    """Bug 6: a stream that appeared after the profile's wait was never picked up."""
    t = tag()
    profile = tmp_path / "late.toml"
    profile.write_text(f'[sensor.eda]\nkind = "lsl"\nsource_id = "{t}-eda"\nmaps_to = "EDA"\nwait_s = 3\n'
                       f'[sensor.resp]\nkind = "lsl"\nsource_id = "{t}-resp"\nmaps_to = "Respiration"\nwait_s = 0.5\n')
    xdf = tmp_path / "late.xdf"
    result = {}

    def session() -> None:
        result["run"] = run_live(capsys, "--profile", str(profile), "--no-story", "--duration", "8", "--record",
                                 str(xdf), "--out", str(tmp_path / "files"), "--quiet")

    with Device(f"{t}-EDA", "EDA", f"{t}-eda"):
        thread = threading.Thread(target=session)
        thread.start()
        time.sleep(4.0)  # the belt is switched on after the session started
        with Device(f"{t}-belt", "Resp", f"{t}-resp", rate=25.0, level=1.0) as belt:
            thread.join(30)
    rc, out, err = result["run"]
    assert rc == 0, err
    assert f"sensor 'resp' (lsl, source_id={t}-resp as Respiration) waiting: no LSL stream matches" in err
    assert "still looking for the whole session" in err
    streams, _ = pyxdf.load_xdf(str(xdf), synchronize_clocks=False, dejitter_timestamps=False)
    late = [s for s in streams if s["info"]["name"] == [belt.name]]
    assert len(late) == 1 and len(late[0]["time_stamps"]) > 25  # seconds of it, recorded raw
    assert late[0]["info"]["type"] == ["Resp"]
    assert f"{belt.name:<28} Respiration" in out  # and the pipeline had it


def test_a_short_run_says_how_long_the_baseline_still_calibrates(tmp_path, capsys):
    """Issue 18, people: a 60 s test run printed nothing while the baseline calibrated."""
    rc, out, err = run_live(capsys, "--profile", "simulated", "--speed", "0", "--no-story", "--duration", "75",
                            "--out", str(tmp_path))
    assert rc == 0, err
    lines = [x for x in err.splitlines() if "calibrating the viewers' baseline" in x]
    assert lines[0].endswith("60 s to go (events come after it)") and 5 <= len(lines) <= 7
    assert "baseline.ready" in out


def test_a_stream_back_at_another_rate_is_a_gap_and_a_new_segment(tmp_path, capsys):
    """Issue 18, bad input: a device restarted at another sampling rate mid-session. The session marks the gap and
    goes on with the new stream; the recording keeps the two as two streams, each with its own header (one stream
    with the first header would make every sample after the change 'at 16 Hz')."""
    t = tag()
    profile = tmp_path / "eda.toml"
    profile.write_text(f'[sensor.eda]\nkind = "lsl"\nsource_id = "{t}-eda"\nmaps_to = "EDA"\nwait_s = 5\n')
    xdf = tmp_path / "rate.xdf"
    result = {}

    def session() -> None:
        result["run"] = run_live(capsys, "--profile", str(profile), "--no-story", "--duration", "10", "--record",
                                 str(xdf), "--out", str(tmp_path / "files"), "--quiet")

    with Device(f"{t}-EDA", "EDA", f"{t}-eda", rate=16.0):
        thread = threading.Thread(target=session)
        thread.start()
        deadline = time.monotonic() + 30
        while not xdf.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3.0)  # seconds of it recorded
    time.sleep(1.0)  # the device restarts ...
    with Device(f"{t}-EDA", "EDA", f"{t}-eda", rate=32.0):  # ... at another rate
        thread.join(40)
    rc, out, err = result["run"]
    assert rc == 0, err
    events = jsonl(tmp_path / "files" / "events.jsonl")
    gaps = [e for e in events if e["type"] == "sensor.gap"]
    assert gaps, [e["type"] for e in events]
    streams, _ = pyxdf.load_xdf(str(xdf), synchronize_clocks=False, dejitter_timestamps=False)
    raw = sorted((s for s in streams if s["info"]["name"] == [f"{t}-EDA"]), key=lambda s: s["time_stamps"][0])
    assert [float(s["info"]["nominal_srate"][0]) for s in raw] == [16.0, 32.0]
    assert len(raw[0]["time_stamps"]) > 30 and len(raw[1]["time_stamps"]) > 60, [len(s["time_stamps"]) for s in raw]
    assert raw[0]["time_stamps"][-1] < raw[1]["time_stamps"][0]
