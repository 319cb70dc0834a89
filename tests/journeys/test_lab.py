"""The lab's journey (issue 18), through the real CLI in subprocesses against real pylsl outlets:

two subjects (skin conductance and a pulse sensor each, all on one host), the lab's PsychoPy marker
stream, another engage session's ``engage-events`` on the network, and a pulse sensor switched on
10 s after the session started → ``engage live --profile <two-subject profile> --lsl --record s.xdf``
→ two viewers, nothing of engage's own or of the other session consumed, a bounded events file; the
raw streams in s.xdf are what the devices pushed (values, stamps, format, header) and pyxdf loads the
file without a warning → ``engage replay s.xdf`` gives the live run's events → ``engage export s.xdf
--to fif`` reads back with ``mne.io.read_raw_fif``, the markers as annotations.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

pylsl = pytest.importorskip("pylsl")
pyxdf = pytest.importorskip("pyxdf")
mne = pytest.importorskip("mne")
nk = pytest.importorskip("neurokit2")
pytestmark = pytest.mark.lsl

ROOT = Path(__file__).resolve().parents[2]
DURATION = 75.0  # past the 60 s baseline, so the viewers' engagement is scored


def engage(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "engage", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


class Device(threading.Thread):
    """One LSL outlet pushing ``signal`` (looped) at ``rate`` Hz in 50 ms chunks, each sample stamped by the
    device (t0 + k / rate); keeps what it pushed. ``start_after`` seconds of silence first (switched on late)."""

    def __init__(self, name: str, type_: str, source_id: str, rate: float, signal: np.ndarray, unit: str,
                 fmt=None, start_after: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.name, self.rate, self.signal, self.start_after = name, rate, signal.astype(np.float32), start_after
        self.spec = (name, type_, source_id, fmt if fmt is not None else pylsl.cf_float32, unit)
        self.outlet = None
        self.values: list[np.ndarray] = []
        self.stamps: list[np.ndarray] = []
        self.halt = threading.Event()
        self.ready = threading.Event()

    def open(self) -> None:
        name, type_, source_id, fmt, unit = self.spec
        info = pylsl.StreamInfo(name, type_, 1, self.rate, fmt, source_id)
        info.desc().append_child_value("manufacturer", "LabDevices")
        ch = info.desc().append_child("channels").append_child("channel")
        ch.append_child_value("label", type_.lower())
        ch.append_child_value("unit", unit)
        self.outlet = pylsl.StreamOutlet(info)

    def run(self) -> None:
        if self.halt.wait(self.start_after):
            return
        self.open()
        self.ready.set()
        t0 = pylsl.local_clock()
        n = 0
        while not self.halt.is_set():
            due = int((pylsl.local_clock() - t0) * self.rate)
            if due > n:
                k = np.arange(n, due)
                x = self.signal[k % len(self.signal)].reshape(-1, 1)
                ts = t0 + k / self.rate
                self.outlet.push_chunk(x, ts.tolist())
                self.values.append(x)
                self.stamps.append(ts)
                n = due
            self.halt.wait(0.05)

    def pushed(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.values), np.concatenate(self.stamps)


class Markers(threading.Thread):
    """The lab's marker stream (``stim N`` every 2 s), or another engage session's events (``events=True``)."""

    def __init__(self, source_id: str, events: bool = False) -> None:
        super().__init__(daemon=True)
        self.events = events
        if events:
            from engage.events.publishers import LslEventOutlet

            self.outlet = LslEventOutlet(source_id)
        else:
            self.outlet = pylsl.StreamOutlet(pylsl.StreamInfo("PsychoPy", "Markers", 1, 0, pylsl.cf_string, source_id))
        self.sent: list[tuple[float, str]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        from engage.core import Event

        i = 0
        while not self.halt.wait(0.25 if self.events else 2.0):
            t = pylsl.local_clock()
            if self.events:
                self.outlet(Event("boredom.onset", t, "other-session-viewer", 0.9, {"i": i}, "other"))
            else:
                self.outlet.push_sample([f"stim {i}"], t)
                self.sent.append((t, f"stim {i}"))
            i += 1


def ppg(heart_rate: float) -> np.ndarray:
    return nk.ppg_simulate(duration=30, sampling_rate=64, heart_rate=heart_rate, random_state=3)


def eda(level: float, rise_at_s: float | None) -> np.ndarray:
    t = np.arange(0, 90, 0.25)
    x = level + 0.05 * np.sin(t / 7.0)
    if rise_at_s is not None:  # arousal: tonic level up and a burst of responses
        x = x + (t > rise_at_s) * (0.6 * level + 0.4 * np.abs(np.sin(t * 1.3)))
    return x


PROFILE = """
[profile]
description = "two subjects, skin conductance and pulse each, plus the lab's markers"

[sensor.eda]
kind = "lsl"
type = "EDA"
viewer_from = "source_id"
viewer_pattern = "^{tag}-(S[0-9]+)-"
wait_s = 5

[sensor.pulse]
kind = "lsl"
type = "PPG"
viewer_from = "source_id"
viewer_pattern = "^{tag}-(S[0-9]+)-"
wait_s = 5

[sensor.markers]
kind = "lsl"
type = "Markers"
several = "all"
wait_s = 5
"""


def test_a_lab_session_over_lsl(tmp_path, caplog):
    tag = f"lab{uuid.uuid4().hex[:6]}"
    profile = tmp_path / "two-subjects.toml"
    profile.write_text(PROFILE.format(tag=tag))
    devices = [Device(f"{tag}-S01-EDA", "EDA", f"{tag}-S01-eda", 4.0, eda(4.0, 62.0), "uS"),
               Device(f"{tag}-S02-EDA", "EDA", f"{tag}-S02-eda", 4.0, eda(9.0, None), "uS"),
               Device(f"{tag}-S01-PPG", "PPG", f"{tag}-S01-ppg", 64.0, ppg(68), "au"),
               Device(f"{tag}-S02-PPG", "PPG", f"{tag}-S02-ppg", 64.0, ppg(84), "au", start_after=10.0)]  # late
    markers, foreign = Markers(f"{tag}-psychopy"), Markers(f"{tag}-other-session", events=True)
    for d in devices[:3]:
        d.start()
        d.ready.wait(10)
    markers.start()
    foreign.start()
    live_dir, xdf = tmp_path / "live", tmp_path / "s.xdf"
    proc = subprocess.Popen([sys.executable, "-m", "engage", "live", "--profile", str(profile), "--lsl", "--record",
                             str(xdf), "--no-story", "--duration", str(DURATION), "--out", str(live_dir), "--quiet"],
                            cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        head = []
        while not head or "ready (Ctrl-C to stop)" not in head[-1]:
            line = proc.stderr.readline()
            assert line, "".join(head)
            head.append(line)
        started = time.monotonic()
        devices[3].start()  # switched on 10 s into the session
        out, err = proc.communicate(timeout=DURATION + 120)
    finally:
        if proc.poll() is None:
            proc.kill()
        for t in (*devices, markers, foreign):
            t.halt.set()
        for t in (*devices, markers, foreign):
            t.join(5)
    live = subprocess.CompletedProcess(proc.args, proc.returncode, out, "".join(head) + err)
    assert live.returncode == 0, live.stderr
    # liblsl's own lines come through engage's logging, not in loguru's format between the session's lines
    assert not re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \(.*\) \[.*\|", live.stderr, re.M), live.stderr
    assert time.monotonic() - started > DURATION - 5

    # -- two viewers, each with their own pipeline; nothing of engage's own or of the other session consumed
    assert "for viewer S01" in live.stderr
    events = [json.loads(line) for line in (live_dir / "events.jsonl").read_text().splitlines()]
    assert {"S01", "S02"} <= {e["viewer"] for e in events if e["type"] == "baseline.ready"}
    assert not [e for e in events if e["viewer"] == "other-session-viewer"]
    marks = [e for e in events if e["type"] == "marker"]
    assert marks and {e["evidence"]["stream"] for e in marks} == {"PsychoPy"}
    assert all(e["evidence"]["value"].startswith("stim ") for e in marks)
    assert (live_dir / "events.jsonl").stat().st_size < 200_000  # bounded: no event read back and re-escaped

    # -- the raw streams in s.xdf are what was pushed; pyxdf loads the file without a warning
    raw, _ = pyxdf.load_xdf(str(xdf), synchronize_clocks=False, dejitter_timestamps=False)
    by_name = {s["info"]["name"][0]: s for s in raw}
    for d in devices:
        s = by_name[d.name]
        info = s["info"]
        assert (info["type"][0], info["source_id"][0], info["channel_format"][0]) == (d.spec[1], d.spec[2], "float32")
        assert info["desc"][0]["manufacturer"] == ["LabDevices"]
        x, ts = d.pushed()
        start = int(np.searchsorted(ts, s["time_stamps"][0] - 1e-9))
        n = len(s["time_stamps"])
        assert n > 0.8 * len(ts) and s["time_series"].dtype == np.float32
        assert np.array_equal(s["time_stamps"], ts[start:start + n]) and np.array_equal(s["time_series"],
                                                                                         x[start:start + n])
    late = by_name[devices[3].name]["time_stamps"]
    assert late[0] - by_name[devices[0].name]["time_stamps"][0] > 8.0  # the late sensor, picked up and recorded
    assert not [n for n in by_name if n.startswith("engage-events") and by_name[n]["info"]["source_id"][0]
                == f"engage-events-{tag}-other-session"]  # the other session's events are not in this recording
    engagement = by_name["S01-engagement"]
    labels = [c["label"][0] for c in engagement["info"]["desc"][0]["channels"][0]["channel"]]
    assert np.all(np.isnan(engagement["time_series"][:, labels.index("attention")]))  # no camera: unknown, not 0.5
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pyxdf"):
        pyxdf.load_xdf(str(xdf))
    assert not caplog.records, [r.getMessage() for r in caplog.records]

    # -- engage replay s.xdf gives the live run's events
    replay = engage("replay", str(xdf), "--no-story", "--out", str(tmp_path / "replay"), "--quiet", cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    assert "recorded by engage:" in replay.stdout
    kinds = {"baseline.ready", "boredom.onset", "boredom.offset", "arousal.high", "arousal.low", "marker"}

    def key(path: Path) -> list[tuple]:
        return sorted((e["type"], e["viewer"], round(e["timestamp"], 1)) for e in
                      map(json.loads, path.read_text().splitlines()) if e["type"] in kinds)

    live_events, replayed = key(live_dir / "events.jsonl"), key(tmp_path / "replay" / "events.jsonl")
    assert [k[:2] for k in replayed] == [k[:2] for k in live_events]
    assert np.allclose([k[2] for k in replayed], [k[2] for k in live_events], atol=0.25)

    # -- engage export s.xdf --to fif, read back by MNE with the markers as annotations
    export = engage("export", str(xdf), "--to", "fif", cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    fif = mne.io.read_raw_fif(tmp_path / "s_raw.fif", verbose="error")
    assert {d.name + "-" + d.spec[1].lower() for d in devices} <= set(fif.ch_names)
    labels = list(fif.annotations.description)
    assert sum(label.startswith("stim ") for label in labels) == len(marks)
    assert labels.count("baseline.ready") == 2
