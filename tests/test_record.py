"""Recording LSL streams into XDF: identical read-back, alignment, dying streams, SIGKILL, other processes,
and replaying a recording back onto LSL."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest
import pyxdf

from engage.core import Event, VirtualClock
from engage.events.publishers import LslEventOutlet
from engage.record import XdfRecorder, XdfWriter
from engage.core import StreamInfo
from engage.sensors.replay import XdfReplay, scan_xdf

pylsl = pytest.importorskip("pylsl")
pytestmark = pytest.mark.lsl


def uid() -> str:
    return f"pytest-{uuid.uuid4().hex[:10]}"


def outlet(name, type_, n_ch, rate, source_id, fmt=None):
    return pylsl.StreamOutlet(pylsl.StreamInfo(name, type_, n_ch, rate, fmt if fmt is not None else pylsl.cf_float32,
                                               source_id))


def wait_for(cond, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def eeg_pusher(tag: str) -> "Pusher":
    """A started Pusher of a 100 Hz one-channel EEG outlet (source_id ``<tag>-eeg``) sending ones."""
    pusher = Pusher([(outlet("eeg", "EEG", 1, 100, f"{tag}-eeg"), 100, 1)], lambda i, t, n: [1.0])
    pusher.start()
    return pusher


class Pusher(threading.Thread):
    """Pushes regular streams in real time, liblsl stamping each chunk as a device driver would.
    ``value(i, t)`` gives the row of sample ``i`` at nominal time ``t`` seconds from the shared start."""

    def __init__(self, outlets, value) -> None:
        super().__init__(daemon=True)
        self.outlets = outlets  # [(outlet, rate, n_ch)]
        self.value = value
        self.halt = threading.Event()
        self.sent = [0] * len(outlets)
        self.dead: set[int] = set()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.halt.is_set():
            elapsed = time.monotonic() - t0
            for k, (o, rate, n_ch) in enumerate(self.outlets):
                if k in self.dead:
                    continue
                due = int(elapsed * rate) + 1  # sample i exists from i / rate on
                if due > self.sent[k]:
                    idx = np.arange(self.sent[k], due)
                    o.push_chunk(np.array([self.value(i, i / rate, n_ch) for i in idx], dtype=np.float32))
                    self.sent[k] = due
            time.sleep(0.004)

    def kill(self, k: int) -> None:
        """Stop pushing outlet ``k`` and drop the reference to it (so it can be destroyed)."""
        self.dead.add(k)
        time.sleep(0.05)
        self.outlets[k] = (None, 0, 0)

    def stop(self) -> None:
        self.halt.set()
        self.join(5)


def load(path, **kw) -> dict[str, dict]:
    streams, _ = pyxdf.load_xdf(str(path), **kw)
    return {s["info"]["name"][0]: s for s in streams}


def test_recorded_lsl_samples_and_timestamps_read_back_identically(tmp_path):
    tag = uid()
    eeg = outlet("eeg", "EEG", 4, 250, f"{tag}-eeg", pylsl.cf_double64)
    mk = outlet("mk", "Markers", 1, 0, f"{tag}-mk", pylsl.cf_string)
    path = tmp_path / "rec.xdf"
    rec = XdfRecorder(path, [f"source_id={tag}-eeg", f"source_id={tag}-mk"], resolve_interval=0.1)
    rec.start()
    try:
        wait_for(lambda: len(rec.inlets) == 2, what="both streams")
        wait_for(lambda: eeg.have_consumers() and mk.have_consumers(), what="consumers")
        rng = np.random.default_rng(1)
        x = rng.normal(size=(500, 4))
        t = 1000.0 + np.arange(500) / 250
        for a in range(0, 500, 50):
            eeg.push_chunk(x[a:a + 50], t[a:a + 50].tolist())
        texts = ["start", '{"type":"scene.start","id":"é"}', "end"]
        for i, s in enumerate(texts):
            mk.push_sample([s], 1000.5 + i)
        wait_for(lambda: rec.writer.samples_written >= 503, what="all samples recorded")
    finally:
        rec.close()
    s = load(path, synchronize_clocks=False, dejitter_timestamps=False)
    assert np.array_equal(s["eeg"]["time_series"], x) and np.array_equal(s["eeg"]["time_stamps"], t)
    assert s["mk"]["time_series"] == [[v] for v in texts]
    assert s["mk"]["time_stamps"].tolist() == [1000.5, 1001.5, 1002.5]
    assert s["eeg"]["info"]["source_id"] == [f"{tag}-eeg"]  # the stream's own header, kept verbatim
    assert len(s["eeg"]["clock_times"]) >= 1  # time_correction recorded as ClockOffset chunks
    assert abs(s["eeg"]["clock_values"][0]) < 0.01  # same machine: (almost) no offset
    assert scan_xdf(path).ok


#: An outlet in a process of its own that pushes 100 samples once it has a consumer, then stops itself (SIGSTOP):
#: its samples reach the recorder, but liblsl's time probes are never answered (as on a machine so loaded that
#: every probe's round trip is over liblsl's limit).
_STOPPING_OUTLET = """
import os, signal, sys, time
import numpy as np, pylsl
o = pylsl.StreamOutlet(pylsl.StreamInfo("stopping", "EEG", 1, 100, pylsl.cf_float32, sys.argv[1]))
print("ready", flush=True)
o.wait_for_consumers(30)
o.push_chunk(np.arange(100, dtype=np.float32).reshape(-1, 1), (pylsl.local_clock() - 1 + np.arange(100) / 100).tolist())
time.sleep(0.05)
os.kill(os.getpid(), signal.SIGSTOP)
time.sleep(60)
"""


def test_every_recorded_stream_has_a_clock_offset_even_when_it_cannot_be_measured(tmp_path, caplog):
    """A short recording used to close with no ClockOffset for a stream whose outlet did not answer liblsl's time
    probes in time (flaky under load): pyxdf then warns and cannot synchronise it. A stream of this host gets the
    offset its clock has with this machine's, zero; the others get one when they open and one when the file closes."""
    tag = uid()
    proc = subprocess.Popen([sys.executable, "-c", _STOPPING_OUTLET, f"{tag}-stop"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        eeg = eeg_pusher(tag)
        path = tmp_path / "offsets.xdf"
        rec = XdfRecorder(path, [f"source_id={tag}-stop", f"source_id={tag}-eeg"], resolve_interval=0.1)
        rec.start()
        try:
            wait_for(lambda: rec.writer.samples_written >= 200, what="the samples of both streams")
        finally:
            with caplog.at_level(logging.WARNING, logger="engage.record.recorder"):
                rec.close()
            eeg.stop()
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(10)
    s = load(path, synchronize_clocks=False, dejitter_timestamps=False)
    assert len(s["stopping"]["time_stamps"]) == 100
    assert list(s["stopping"]["clock_values"]) == [0.0]  # could not be measured: this machine's clock
    assert any("no clock offset could be measured" in r.getMessage() for r in caplog.records)
    assert len(s["eeg"]["clock_times"]) >= 1 and np.all(np.abs(s["eeg"]["clock_values"]) < 0.01)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pyxdf"):
        pyxdf.load_xdf(str(path))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [r.getMessage() for r in caplog.records]


def test_two_streams_recorded_together_stay_aligned_within_5_ms(tmp_path):
    tag = uid()
    a = outlet("fast", "EEG", 2, 500, f"{tag}-a")
    b = outlet("slow", "EDA", 1, 100, f"{tag}-b")
    path = tmp_path / "two.xdf"
    rec = XdfRecorder(path, [f"source_id={tag}-a", f"source_id={tag}-b"], resolve_interval=0.1,
                      clock_offset_interval=0.5)
    rec.start()
    wait_for(lambda: a.have_consumers() and b.have_consumers(), what="consumers")
    step_at = [1.0, 2.0, 3.0]  # both signals step together (nominal time), as if from one stimulus

    def value(i, t, n_ch):
        return [float(sum(t >= s for s in step_at))] * n_ch

    pusher = Pusher([(a, 500, 2), (b, 100, 1)], value)
    pusher.start()
    time.sleep(4.0)
    pusher.stop()
    time.sleep(0.3)
    rec.close()
    s = load(path)  # pyxdf's synchronisation and dejittering, as users load LabRecorder files
    for level in (1, 2, 3):
        ta = s["fast"]["time_stamps"][np.argmax(s["fast"]["time_series"][:, 0] >= level)]
        tb = s["slow"]["time_stamps"][np.argmax(s["slow"]["time_series"][:, 0] >= level)]
        assert abs(ta - tb) < 0.005, f"step {level}: {1000 * (ta - tb):.2f} ms apart"


def test_a_stream_that_dies_mid_recording_is_a_gap_and_the_recording_goes_on(tmp_path):
    tag = uid()
    a = outlet("survivor", "EEG", 1, 200, f"{tag}-a")
    b = outlet("victim", "ECG", 1, 200, f"{tag}-b")
    path = tmp_path / "gap.xdf"
    gaps = []
    rec = XdfRecorder(path, [f"source_id={tag}-a", f"source_id={tag}-b"], resolve_interval=0.1, on_gap=gaps.append)
    rec.start()
    wait_for(lambda o=b: a.have_consumers() and o.have_consumers(), what="consumers")
    pusher = Pusher([(a, 200, 1), (b, 200, 1)], lambda i, t, n: [t])
    pusher.start()
    time.sleep(1.0)
    pusher.kill(1)
    died = pylsl.local_clock()
    del b  # the ECG device dies
    wait_for(lambda: gaps, what="the gap")
    time.sleep(1.0)
    pusher.stop()
    time.sleep(0.2)
    rec.close()
    assert rec.error is None
    assert gaps[0].stream == "victim" and gaps[0].reason == "stream lost"
    s = load(path, synchronize_clocks=False, dejitter_timestamps=False)
    assert s["survivor"]["time_stamps"][-1] > died + 0.5  # recording went on
    assert s["victim"]["time_stamps"][-1] < died + 0.05
    logged = [Event.from_json(x[0]) for x in s["engage-record"]["time_series"]]
    assert logged[0].type == "sensor.gap" and logged[0].evidence["stream"] == "victim"


def _reader(stream, lines: list[str]) -> threading.Thread:
    def read() -> None:
        for line in stream:
            lines.append(line)

    th = threading.Thread(target=read, daemon=True)
    th.start()
    return th


def _engage(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engage", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_sigkill_after_5_s_of_a_250_hz_stream_leaves_at_least_4_s_readable(tmp_path):
    tag = uid()
    o = outlet("ecg", "ECG", 1, 250, f"{tag}-ecg")
    path = tmp_path / "killed.xdf"
    proc = _engage("record", "-o", str(path), "--lsl", f"source_id={tag}-ecg", "--quiet")
    err: list[str] = []
    _reader(proc.stderr, err)
    pusher = Pusher([(o, 250, 1)], lambda i, t, n: [float(i)])
    try:
        wait_for(lambda: any("recording 'ecg'" in line for line in err), timeout=60, what="the recorder")
        wait_for(lambda: o.have_consumers(), what="the recorder's inlet")
        pusher.start()
        time.sleep(5.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        pusher.stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    s = load(path)
    ts = s["ecg"]["time_stamps"]
    assert ts[-1] - ts[0] >= 4.0 and len(ts) >= 1000
    values = s["ecg"]["time_series"][:, 0]
    assert np.array_equal(values, np.arange(values[0], values[0] + len(values)))  # nothing lost in between
    replay = XdfReplay(path)  # and our own replay reads it as well
    assert replay.streams()[0].name == "ecg" and replay.duration >= 4.0


def test_events_published_by_a_pipeline_appear_in_a_recording_made_by_another_process(tmp_path):
    from engage.sensors.simulated import SimulatedViewer
    from engage.session import Session

    session_id = uid()
    path = tmp_path / "events.xdf"
    proc = _engage("record", "-o", str(path), "--lsl", f"source_id=engage-events-{session_id}", "--quiet")
    err: list[str] = []
    _reader(proc.stderr, err)
    events_out = tmp_path / "events.jsonl"
    session = Session([SimulatedViewer(seed=3)], VirtualClock(0.0), story=None, events_out=events_out)
    lsl_out = LslEventOutlet(session_id)
    session.bus.subscribe(lsl_out)
    try:
        wait_for(lambda: lsl_out.have_consumers(), timeout=60, what="engage record to connect")
        session.run(duration=240)
        written = events_out.read_text().splitlines()
        time.sleep(1.0)  # in flight, then flushed by the recorder
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        lsl_out.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(err)
    assert "wrote" in out
    s = load(path, synchronize_clocks=False, dejitter_timestamps=False)
    got = [x[0] for x in s["engage-events"]["time_series"]]
    assert len(written) > 3 and got == written
    assert np.allclose(s["engage-events"]["time_stamps"], [json.loads(x)["timestamp"] for x in written])


def test_record_cli_bad_input_is_clear(tmp_path):
    tag = uid()
    r = subprocess.run([sys.executable, "-m", "engage", "record", "-o", str(tmp_path / "x.xdf"), "--lsl",
                        f"source_id={tag}-nothing", "--wait", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"no LSL stream matches 'source_id={tag}-nothing' after 1 s" in r.stderr
    assert "INFO|" not in r.stderr  # liblsl start-up chatter kept off the command line
    assert not (tmp_path / "x.xdf").exists()
    for args, msg in [(["--lsl", "colour=red"], "unknown property 'colour'"),
                      (["--lsl", "type=EEG", "--duration", "0"], "--duration must be positive")]:
        r = subprocess.run([sys.executable, "-m", "engage", "record", "-o", str(tmp_path / "y.xdf"), *args],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "afile").write_text("not a folder")
    r = subprocess.run([sys.executable, "-m", "engage", "record", "-o", str(tmp_path / "afile" / "y.xdf"), "--lsl",
                        "type=EEG"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "cannot create the folder" in r.stderr
    for args, msg in [([], "needs --lsl PREDICATE"), (["--lsl", "type=EEG"], "needs -o FILE.xdf, or --participant"),
                      (["--participant", "P-1", "--lsl", "type=EEG"], "a BIDS label is letters and digits only"),
                      (["--lsl", "type=EEG", "--rcs", "--rcs-port", "0"], "--rcs-port must be within")]:
        r = subprocess.run([sys.executable, "-m", "engage", "record", *args], capture_output=True, text=True,
                           timeout=120, cwd=tmp_path)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_record_goes_on_when_only_some_predicates_match_and_stops_after_duration(tmp_path):
    tag = uid()
    pusher = eeg_pusher(tag)
    path = tmp_path / "part.xdf"
    try:
        r = subprocess.run([sys.executable, "-m", "engage", "record", "-o", str(path), "--lsl", f"source_id={tag}-eeg",
                            "--lsl", f"source_id={tag}-none", "--wait", "1", "--duration", "3"],
                           capture_output=True, text=True, timeout=120)
    finally:
        pusher.stop()
    assert r.returncode == 0, r.stderr
    assert f"warning: no LSL stream matches 'source_id={tag}-none'" in r.stderr
    assert len(load(path)["eeg"]["time_stamps"]) > 50


def pull_all(inlet, want: int, timeout: float = 30.0) -> tuple[list, list, list]:
    """Samples, stamps and arrival times from ``inlet`` until ``want`` came or the stream ended."""
    got, stamps, arrival = [], [], []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        try:
            s, ts = inlet.pull_chunk(timeout=0.2)
        except pylsl.util.LostError:
            break
        got += s
        stamps += ts
        arrival += [time.monotonic()] * len(ts)
    return got, stamps, arrival


def test_replay_to_lsl_is_a_player(tmp_path):
    """Bug 6: replay --to-lsl created its outlets on the first chunk (every consumer missed the first 1-1.5 s),
    published float32 streams as double64 under new names, and left the events' JSON timestamps on the
    recording's clock while moving their LSL stamps."""
    tag = uid()
    path = tmp_path / f"{tag}.xdf"
    x = np.column_stack([np.arange(300.0), -np.arange(300.0)]).astype(np.float32)
    t = 50.0 + np.arange(300) / 100.0
    with XdfWriter(path) as w:
        sid = w.add_stream(StreamInfo("eeg", "EEG", ("a", "b"), ("uV", "uV"), 100.0, f"{tag}-src"),
                           channel_format="float32")
        w.write_samples(sid, x, t)
        mid = w.add_stream(StreamInfo("mk", "Markers", ("m",), ("",), 0.0, f"{tag}-m", channel_format="string"))
        w.write_samples(mid, [["go"], ["stop"]], [50.5, 52.5])
        eid = w.add_stream(StreamInfo("engage-events", "Markers", ("event",), ("",), 0.0, f"engage-events-{tag}",
                                      channel_format="string"), role="events")
        w.write_samples(eid, [[Event("boredom.onset", 51.0, "viewer-1", 0.8).to_json()]], [51.0])
    proc = _engage("replay", str(path), "--realtime", "--to-lsl", "--no-story", "--quiet", "--lead-in", "2",
                   "--out", str(tmp_path / "o"))
    try:
        found = pylsl.resolve_byprop("source_id", f"{tag}-src", timeout=60)  # the recorded stream's own source_id
        assert found, "the replay's outlet did not appear"
        inlet = pylsl.StreamInlet(found[0], recover=False)
        header = inlet.info(10)
        inlet.open_stream(10)
        events = pylsl.StreamInlet(pylsl.resolve_byprop("source_id", f"engage-events-{tag}", timeout=10)[0])
        events.open_stream(10)
        got, stamps, arrival = pull_all(inlet, 300)
        event, event_stamp = events.pull_sample(timeout=10)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read()
    assert len(got) == 300 and np.array_equal(np.array(got, dtype=np.float32), x)  # from the very first sample
    assert header.channel_format() == pylsl.cf_float32 and header.type() == "EEG"
    assert header.desc().child("engage").child_value("role") == "replay"
    assert np.allclose(np.diff(stamps), 0.01, atol=1e-6)  # the recording's own spacing, moved onto today's clock
    assert abs(stamps[-1] - pylsl.local_clock()) < 30
    assert arrival[-1] - arrival[0] > 1.0  # paced, not dumped at once
    assert Event.from_json(event[0]).timestamp == pytest.approx(event_stamp, abs=1e-5)
    assert event_stamp == pytest.approx(stamps[0] + 1.0, abs=1e-5)  # 1 s after the first sample, as recorded


def test_a_stream_back_with_another_layout_is_recorded_as_a_new_stream(tmp_path):
    tag = uid()
    o = outlet("dev", "EEG", 1, 100, f"{tag}-dev")
    path = tmp_path / "relayout.xdf"
    gaps = []
    rec = XdfRecorder(path, [f"source_id={tag}-dev"], resolve_interval=0.1, on_gap=gaps.append)
    rec.start()
    try:
        wait_for(lambda: o.have_consumers(), what="consumer")
        o.push_chunk(np.ones((10, 1), dtype=np.float32))
        wait_for(lambda: rec.writer.samples_written >= 10, what="first samples")
        del o
        wait_for(lambda: gaps, what="the loss")
        o = outlet("dev", "EEG", 3, 100, f"{tag}-dev")  # same source_id, now three channels
        wait_for(lambda: o.have_consumers(), what="the new consumer")
        o.push_chunk(np.full((10, 3), 2.0, dtype=np.float32))
        wait_for(lambda: rec.writer.samples_written >= 20, what="samples of the new layout")
    finally:
        rec.close()
    assert rec.error is None and rec.bad_chunks == 0
    streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=False, dejitter_timestamps=False)
    shapes = sorted(np.asarray(s["time_series"]).shape for s in streams if s["info"]["name"] == ["dev"])
    assert shapes == [(10, 1), (10, 3)]


def test_one_recording_mixes_lsl_inlets_and_in_process_streams(tmp_path):
    from engage.core import Chunk
    from engage.record import RecorderSink

    tag = uid()
    o = outlet("eeg", "EEG", 2, 100, f"{tag}-eeg")
    path = tmp_path / "mix.xdf"
    rec = XdfRecorder(path, [f"source_id={tag}-eeg"], resolve_interval=0.1, session=tag)
    rec.start()
    sink = RecorderSink(rec, types=None)
    from engage.core import Context, EventBus

    bus = EventBus()
    sink.start(Context(VirtualClock(), bus))
    try:
        wait_for(lambda: o.have_consumers(), what="consumer")
        now = pylsl.local_clock()
        o.push_chunk(np.ones((20, 2), dtype=np.float32), (now + np.arange(20) / 100).tolist())
        hr = StreamInfo("hr", "HeartRate", ("hr_bpm", "quality"), ("bpm", ""), 0.0, "hr")
        sink.process(Chunk.from_rows(hr, [[61.0, 1.0], [62.0, 0.9]], [now, now + 1]))
        bus.publish(Event("boredom.onset", now + 0.5, "viewer-1", 0.8, {"boredom": 0.7}, "rules"))
        wait_for(lambda: rec.writer.samples_written >= 23, what="all samples")
    finally:
        sink.close()
    s = load(path, synchronize_clocks=False, dejitter_timestamps=False)
    assert len(s["eeg"]["time_stamps"]) == 20
    assert s["hr"]["time_series"].tolist() == [[61.0, 1.0], [62.0, 0.9]]
    assert Event.from_json(s["engage-events"]["time_series"][0][0]).type == "boredom.onset"
    assert s["engage-events"]["info"]["source_id"] == [f"engage-events-{tag}"]


def record_two(path, predicate: str, *pushes) -> XdfRecorder:
    """Record ``predicate`` while each (outlet, rows) pair pushes its rows once consumed; returns the closed recorder."""
    rec = XdfRecorder(path, [predicate], resolve_interval=0.1)
    rec.start()
    try:
        wait_for(lambda: all(o.have_consumers() for o, _ in pushes), what="every outlet consumed")
        for o, rows in pushes:
            o.push_chunk(rows.astype(np.float32))
        wait_for(lambda: rec.writer.samples_written >= sum(len(r) for _, r in pushes), what="every sample")
    finally:
        rec.close()
    return rec


def test_streams_that_share_a_source_id_are_all_recorded(tmp_path):
    """Bug 5: two streams with one source_id on one host but different names (cheap amplifiers do this)
    were recorded as one - the second silently dropped."""
    tag = uid()
    a = outlet("amp-exg", "EXG", 2, 100, f"{tag}-amp")
    b = outlet("amp-aux", "AUX", 1, 100, f"{tag}-amp")
    path = tmp_path / "amp.xdf"
    record_two(path, f"source_id={tag}-amp", (a, np.ones((10, 2))), (b, np.full((7, 1), 3.0)))
    s = load(path, synchronize_clocks=False, dejitter_timestamps=False)
    assert set(s) == {"amp-exg", "amp-aux"}
    assert s["amp-exg"]["time_series"].shape == (10, 2) and s["amp-aux"]["time_series"].ravel().tolist() == [3.0] * 7


def test_int64_streams_are_recorded_exactly(tmp_path):
    """int64 went through float64 (2**62 + 1 came back as 2**62)."""
    tag = uid()
    o = outlet("counter", "Counter", 1, 0, f"{tag}-n", pylsl.cf_int64)
    path = tmp_path / "n.xdf"
    rec = XdfRecorder(path, [f"source_id={tag}-n"], resolve_interval=0.1)
    rec.start()
    values = [2**62 + 1, -(2**61) - 3, 2**53 + 1]
    try:
        wait_for(lambda: o.have_consumers(), what="consumer")
        for i, v in enumerate(values):
            o.push_sample([v], 100.0 + i)
        wait_for(lambda: rec.writer.samples_written >= 3, what="samples")
    finally:
        rec.close()
    s = load(path, synchronize_clocks=False, dejitter_timestamps=False)["counter"]
    assert s["time_series"].dtype == np.int64 and s["time_series"].ravel().tolist() == values


def test_a_stream_with_control_characters_in_its_header_does_not_stop_the_others(tmp_path):
    """Issue 25, item 4: a stream whose name or unit held a control character stopped engage record with zero
    samples of any stream; its header is now kept readable and both streams recorded."""
    tag = uid()
    info = pylsl.StreamInfo("bad\x07name", "EDA", 1, 10, pylsl.cf_float32, f"{tag}-bad")
    ch = info.desc().append_child("channels").append_child("channel")
    ch.append_child_value("label", "eda\x01")
    ch.append_child_value("unit", "\x1buS")
    bad = pylsl.StreamOutlet(info)
    good = outlet("good", "EEG", 1, 10, f"{tag}-good")
    path = tmp_path / "ctl.xdf"
    rec = record_two(path, f"starts-with(source_id,'{tag}-')", (bad, np.ones((5, 1))), (good, np.full((4, 1), 2.0)))
    assert rec.error is None and scan_xdf(path).ok
    streams = {s.name: s for s in XdfReplay(path).streams()}
    assert set(streams) == {"bad\x07name", "good"}
    assert streams["bad\x07name"].channels == ("eda\x01",) and streams["bad\x07name"].units == ("\x1buS",)


def engage_record(*args: str, cwd=None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engage", "record", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def test_a_stream_that_never_appears_leaves_an_existing_file_as_it_was(tmp_path):
    """Bug 4: engage record -o existing.xdf with a stream that never appears left an empty 140-byte file in its
    place and exited 0."""
    path = tmp_path / "existing.xdf"
    path.write_bytes(b"XDF: a precious recording")
    r = engage_record("-o", str(path), "--lsl", f"source_id={uid()}-never", "--duration", "2")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "nothing recorded: no LSL stream matched" in r.stderr and "is as it was" in r.stderr
    assert path.read_bytes() == b"XDF: a precious recording"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.xdf"]


def test_an_existing_file_is_moved_aside_like_labrecorder_does(tmp_path):
    tag = uid()
    pusher = eeg_pusher(tag)
    path = tmp_path / "s.xdf"
    path.write_bytes(b"XDF: first")
    try:
        runs = [engage_record("-o", str(path), "--lsl", f"source_id={tag}-eeg", "--duration", "2", *extra)
                for extra in ((), (), ("--overwrite",))]
    finally:
        pusher.stop()
    assert [r.returncode for r in runs] == [0, 0, 0], runs[-1].stderr
    assert f"{path} existed: moved to s_old1.xdf" in runs[0].stderr
    assert f"{path} existed: moved to s_old2.xdf" in runs[1].stderr and "existed" not in runs[2].stderr
    assert (tmp_path / "s_old1.xdf").read_bytes() == b"XDF: first"
    assert len(load(tmp_path / "s_old2.xdf")["eeg"]["time_stamps"]) > 50
    assert len(load(path)["eeg"]["time_stamps"]) > 50
    assert not (tmp_path / "s_old3.xdf").exists()  # --overwrite replaced the file in place


def test_a_required_stream_that_is_absent_fails_the_run(tmp_path):
    tag = uid()
    pusher = eeg_pusher(tag)
    try:
        r = engage_record("-o", str(tmp_path / "r.xdf"), "--lsl", f"source_id={tag}-eeg", "--require",
                          f"source_id={tag}-markers", "--wait", "1.5", "--duration", "10")
    finally:
        pusher.stop()
    assert r.returncode == 2
    assert f"no required stream matches 'source_id={tag}-markers' after 1.5 s" in r.stderr
    assert "visible streams:" in r.stderr and not (tmp_path / "r.xdf").exists()


def test_bids_file_names_from_participant_session_task_and_run(tmp_path):
    tag = uid()
    pusher = eeg_pusher(tag)
    try:
        r = engage_record("--root", str(tmp_path / "study"), "--participant", "P007", "--session", "S02", "--task",
                          "rest", "--run", "3", "--lsl", f"source_id={tag}-eeg", "--duration", "2")
    finally:
        pusher.stop()
    assert r.returncode == 0, r.stderr
    path = tmp_path / "study/sub-P007/ses-S02/eeg/sub-P007_ses-S02_task-rest_run-003_eeg.xdf"
    assert path.is_file() and len(load(path)["eeg"]["time_stamps"]) > 50


def test_labrecorder_remote_control_commands_drive_engage_record(tmp_path):
    """A PsychoPy/MATLAB script written for LabRecorder's remote control socket drives engage record."""
    import socket

    tag = uid()
    mk = outlet("trials", "Markers", 1, 0, f"{tag}-mk", pylsl.cf_string)
    pusher = eeg_pusher(tag)
    with socket.socket() as probe:  # a free port (each test runs in its own network namespace anyway)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "engage", "record", "--rcs", "--rcs-port", str(port), "--lsl",
                             f"source_id={tag}-eeg"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
                time.sleep(0.2)
        replies = sock.makefile("r")

        def send(command: str) -> str:
            sock.sendall(command.encode() + b"\n")
            return replies.readline().strip()

        root = tmp_path / "CurrentStudy"
        assert send("select all") == "OK"
        assert send(f"filename {{root:{root}}} {{task:memory}} {{participant:P003}} {{session:S001}} {{run:2}} "
                    "{modality:eeg}") == "OK"
        assert send("update") == "OK"
        assert send("start") == "OK"
        time.sleep(2.0)
        mk.push_sample(["trial 1"])
        time.sleep(1.0)
        assert send("stop") == "OK"
        assert send("rewind the tape") == "ERR Unknown command"
        # a second run, legacy template
        assert send(f"filename {{template:exp%n/block_%b.xdf}} {{run:4}}") == "OK"
        assert send("start") == "OK"
        time.sleep(1.5)
        assert send("stop") == "OK"
        sock.close()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        pusher.stop()
    assert proc.returncode == 0, err
    first = root / "sub-P003/ses-S001/eeg/sub-P003_ses-S001_task-memory_run-002_eeg.xdf"
    s = load(first)
    assert len(s["eeg"]["time_stamps"]) > 100 and s["trials"]["time_series"] == [["trial 1"]]
    assert len(load(root / "exp004/block_memory.xdf")["eeg"]["time_stamps"]) > 50
    assert "remote control on 127.0.0.1" in err and f"recording to {first}" in err
