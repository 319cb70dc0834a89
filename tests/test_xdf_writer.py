"""The XDF writer: pyxdf reads back exactly what we wrote; crash safety; full disks and bad paths."""

from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
import uuid

import numpy as np
import pytest
import pyxdf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engage.core import Event, Runtime, StreamInfo, VirtualClock
from engage.record import RecorderSink, RecordingError, XdfRecorder, XdfWriter
from engage.record.xdf import BOUNDARY_UUID, chunk_bytes, encode_samples
from engage.sensors.replay import XdfReplay, scan_xdf

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

EEG = StreamInfo("eeg", "EEG", ("Fz", "Cz", "Pz"), ("uV", "uV", "uV"), 100.0, "pytest-eeg")
MARKERS = StreamInfo("markers", "Markers", ("event",), ("",), 0.0, "pytest-markers", channel_format="string")


def load_raw(path) -> dict[str, dict]:
    streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=False, dejitter_timestamps=False)
    return {s["info"]["name"][0]: s for s in streams}


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_pyxdf_reads_back_identical_samples_timestamps_and_metadata(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(250, 3)) * 1e3
    t = 5000.0 + np.arange(250) / 100.0 + rng.normal(size=250) * 1e-4
    path = tmp_path / "a.xdf"
    with XdfWriter(path) as w:
        eeg, mk = w.add_stream(EEG), w.add_stream(MARKERS)
        for a in range(0, 250, 37):
            w.write_samples(eeg, x[a:a + 37], t[a:a + 37])
        w.write_samples(mk, [["start"], ["ünïcode ✓"], [""], ['{"type": "x"}']], [5000.0, 5001.0, 5001.5, 5002.0])
        w.write_clock_offset(eeg, 5000.0, -0.25)
        w.write_boundary()
    s = load_raw(path)
    assert np.array_equal(s["eeg"]["time_series"], x)
    assert np.array_equal(s["eeg"]["time_stamps"], t)
    assert s["markers"]["time_series"] == [["start"], ["ünïcode ✓"], [""], ['{"type": "x"}']]
    assert s["markers"]["time_stamps"].tolist() == [5000.0, 5001.0, 5001.5, 5002.0]
    info = s["eeg"]["info"]
    chans = info["desc"][0]["channels"][0]["channel"]
    assert [c["label"][0] for c in chans] == ["Fz", "Cz", "Pz"] and [c["unit"][0] for c in chans] == ["uV"] * 3
    assert (info["source_id"][0], info["type"][0], float(info["nominal_srate"][0])) == ("pytest-eeg", "EEG", 100.0)
    assert s["eeg"]["footer"]["info"]["sample_count"] == ["250"]
    assert float(s["eeg"]["footer"]["info"]["first_timestamp"][0]) == t[0]
    assert s["eeg"]["clock_times"] == [5000.0] and s["eeg"]["clock_values"] == [-0.25]
    assert BOUNDARY_UUID in path.read_bytes()
    scan = scan_xdf(path)
    assert scan.ok and scan.good_bytes == path.stat().st_size


@pytest.mark.parametrize("fmt,dtype", [("float32", np.float32), ("int16", np.int16), ("int32", np.int32),
                                       ("int64", np.int64), ("int8", np.int8), ("double64", np.float64)])
def test_every_numeric_channel_format_round_trips(tmp_path, fmt, dtype):
    x = (np.arange(40).reshape(20, 2) - 20).astype(dtype)
    with XdfWriter(tmp_path / "f.xdf") as w:
        sid = w.add_stream(StreamInfo("s", "T", ("a", "b"), ("", ""), 10.0, "x"), channel_format=fmt)
        w.write_samples(sid, x, np.arange(20) / 10.0)
    got = load_raw(tmp_path / "f.xdf")["s"]["time_series"]
    assert got.dtype == dtype and np.array_equal(got, x)


@SETTINGS
@given(st.lists(st.tuples(st.floats(allow_nan=False, width=64), st.floats(-1e9, 1e9)), min_size=1, max_size=60),
       st.lists(st.text(max_size=300), min_size=1, max_size=10), st.integers(1, 7))
def test_any_values_round_trip_through_pyxdf(tmp_path, rows, texts, split):
    values = np.array([[v] for v, _ in rows])
    stamps = np.sort(np.array([t for _, t in rows]))
    path = tmp_path / f"h-{uuid.uuid4().hex}.xdf"
    with XdfWriter(path) as w:
        a = w.add_stream(StreamInfo("v", "T", ("v",), ("",), 0.0, "v"))
        b = w.add_stream(StreamInfo("s", "M", ("s",), ("",), 0.0, "s", channel_format="string"))
        for part_v, part_t in zip(np.array_split(values, split), np.array_split(stamps, split)):
            w.write_samples(a, part_v, part_t)
        w.write_samples(b, [[x] for x in texts], np.arange(len(texts), dtype=float))
    s = load_raw(path)
    assert np.array_equal(s["v"]["time_series"], values) and np.array_equal(s["v"]["time_stamps"], stamps)
    assert s["s"]["time_series"] == [[x] for x in texts]
    path.unlink()


def test_long_strings_use_wider_length_fields():
    big = "x" * 70000
    body = encode_samples(np.array([[big]], dtype=object), np.array([1.0]), "string")
    assert body[:2] == b"\x01\x01" and body[11] == 4  # count, stamp flag+8, then a 4-byte length
    assert chunk_bytes(3, b"a" * 300)[0] == 4


def test_writer_rejects_misuse_with_clear_messages(tmp_path):
    with XdfWriter(tmp_path / "m.xdf") as w:
        sid = w.add_stream(EEG)
        with pytest.raises(ValueError, match="expected \\(2, 3\\)"):
            w.write_samples(sid, np.zeros((2, 2)), [0.0, 1.0])
        with pytest.raises(ValueError, match="never added"):
            w.write_samples(99, np.zeros((1, 3)), [0.0])
        with pytest.raises(ValueError, match="channel_format"):
            w.add_stream_xml("<info><name>x</name><channel_count>1</channel_count>"
                             "<channel_format>complex</channel_format></info>")
        with pytest.raises(ValueError, match="not XML"):
            w.add_stream_xml("<info>")
    with pytest.raises(RecordingError, match="closed"):
        w.write_samples(sid, np.zeros((1, 3)), [0.0])
    with pytest.raises(ValueError, match="flush_interval"):
        XdfWriter(io.BytesIO(), flush_interval=5.0)


def test_data_reaches_the_file_within_the_flush_interval_without_close(tmp_path):
    clock = FakeClock()
    path = tmp_path / "live.xdf"
    w = XdfWriter(path, flush_interval=0.5, boundary_interval=2.0, clock=clock)
    sid = w.add_stream(EEG)
    w.write_samples(sid, np.ones((10, 3)), np.arange(10) / 100)
    size_before = path.stat().st_size
    clock.t = 0.6  # half a second later the next write flushes
    w.write_samples(sid, np.ones((10, 3)), 0.1 + np.arange(10) / 100)
    assert path.stat().st_size > size_before
    clock.t = 2.5
    w.maybe_flush()  # a boundary chunk is due, and is flushed with the rest
    raw = path.read_bytes()
    assert BOUNDARY_UUID in raw
    # never closed (as after SIGKILL): no footers, yet pyxdf and the replay read all 20 samples
    assert len(load_raw(path)["eeg"]["time_stamps"]) == 20
    assert scan_xdf(path).ok
    w.close()


class FullDisk(io.RawIOBase):
    """A file that accepts ``capacity`` bytes, then fails like a full disk (and may write part of a block)."""

    def __init__(self, capacity: int) -> None:
        self.buf = bytearray()
        self.capacity = capacity

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        room = self.capacity - len(self.buf)
        if room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        part = bytes(b[:room])
        self.buf += part
        return len(part)

    def truncate(self, size=None) -> int:
        del self.buf[size:]
        return size

    def seek(self, pos, whence=0) -> int:
        return pos


def test_a_full_disk_is_a_clear_error_and_what_was_written_stays_readable(tmp_path):
    disk = FullDisk(20_000)
    w = XdfWriter(disk, flush_interval=0.01)
    sid = w.add_stream(EEG)
    with pytest.raises(RecordingError, match="disk full.*stay readable"):
        for i in range(1000):
            w.write_samples(sid, np.full((10, 3), i, dtype=float), i * 0.1 + np.arange(10) / 100)
            w.flush()
    with pytest.raises(RecordingError):  # every later write says so too
        w.write_samples(sid, np.zeros((1, 3)), [0.0])
    assert 0 < w.samples_committed < w.samples_written
    path = tmp_path / "full.xdf"
    path.write_bytes(bytes(disk.buf))
    assert scan_xdf(path).ok  # cut back to whole chunks
    got = load_raw(path)["eeg"]
    assert len(got["time_stamps"]) == w.samples_committed
    assert np.array_equal(got["time_series"][:, 0], np.repeat(np.arange(w.samples_committed // 10), 10))
    w.close()


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 256 kB tmpfs (needs root and mount rights; skipped otherwise)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], capture_output=True)


def test_a_real_full_disk(tiny_tmpfs):
    path = tiny_tmpfs / "rec.xdf"
    rec = XdfRecorder(path)
    info = StreamInfo("ecg", "ECG", ("ecg",), ("mV",), 250.0, "pytest-full")
    with pytest.raises(RecordingError, match=f"{path}.*disk full"):
        for i in range(10_000):
            rec.write_chunk(_chunk(info, i))
            rec.writer.flush()
    rec.close()
    assert rec.error is not None
    scan = scan_xdf(path)
    assert scan.ok
    src = XdfReplay(path)
    assert src.streams()[0].name == "ecg" and src.problem is None


def test_engage_live_on_a_full_disk_keeps_the_session_and_exits_non_zero(tiny_tmpfs, tmp_path):
    """Issue 18, bad input: the disk fills during ``engage live --record``: the session goes on to its end (its
    events are kept), the recording keeps everything written before, and the command exits non-zero saying so."""
    import json
    import sys

    path = tiny_tmpfs / "s.xdf"
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "engage", "live", "--profile", "simulated", "--speed", "20",
                          "--duration", "300", "--record", str(path), "--out", str(out)],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 1, run.stderr
    assert f"engage: error: {path}: cannot write (disk full)" in run.stderr and "stay readable" in run.stderr
    assert "Traceback" not in run.stderr, run.stderr  # a typed error: one line where it happened, no traceback
    assert "duration reached after 300.0 s of session" in run.stdout  # the session was not cut short
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events and max(e["timestamp"] for e in events) - min(e["timestamp"] for e in events) > 200
    streams, _ = pyxdf.load_xdf(str(path))
    ecg = {s["info"]["name"][0]: s for s in streams}["sim-viewer-1-ecg"]
    assert len(ecg["time_stamps"]) > 100 and np.all(np.diff(ecg["time_stamps"]) > 0)


def _chunk(info, i):
    from engage.core import Chunk

    return Chunk(info, np.full((25, 1), float(i)), i * 0.1 + np.arange(25) / 250)


@pytest.mark.parametrize("case", ["dir", "nofolder", "readonly"])
def test_an_unwritable_path_is_a_clear_error(tmp_path, case):
    if case == "dir":
        target = tmp_path
    elif case == "nofolder":
        target = tmp_path / "missing" / "x.xdf"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = ro / "x.xdf"
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
    with pytest.raises(RecordingError, match=str(target).replace("/", ".")):
        XdfWriter(target)


def test_recorder_sink_records_a_pipeline_and_its_events(tmp_path):
    """In-process streams and events through the runtime, replayed identically by XdfReplay."""
    from engage.sensors.simulated import SimulatedViewer
    from engage.session import Session

    path = tmp_path / "session.xdf"
    rec = XdfRecorder(path, session="pytest")
    sink = RecorderSink(rec, types=None)
    events = tmp_path / "events.jsonl"
    result = Session([SimulatedViewer(seed=2)], VirtualClock(0.0), story=None, events_out=events,
                     extra_processors=[sink]).run(duration=150)
    assert rec.error is None and rec.writer.closed
    s = load_raw(path)
    assert {"engage-events", "sim-ecg"} <= set(s) or "engage-events" in s
    written = events.read_text().splitlines()
    assert [x[0] for x in s["engage-events"]["time_series"]] == written
    assert any(Event.from_json(x).type == "baseline.ready" for x in written) or written
    hr = [k for k, v in s.items() if v["info"]["type"][0] == "HeartRate"]
    assert hr, f"no HeartRate stream among {sorted(s)}"
    t, v = result.log.array("HeartRate", "hr_bpm")
    got = s[hr[0]]
    col = [c["label"][0] for c in got["info"]["desc"][0]["channels"][0]["channel"]].index("hr_bpm")
    assert np.array_equal(got["time_stamps"], t) and np.array_equal(got["time_series"][:, col], v, equal_nan=True)
    replayed = XdfReplay(path, derived=True)  # what engage derived and recorded too
    assert {i.type for i in replayed.streams()} >= {"HeartRate", "Markers"}


def test_runtime_with_recorder_sink_is_not_affected_by_a_full_disk(tmp_path):
    """A recording that fails does not take the session down: the error is kept, the run completes."""
    rec = XdfRecorder(tmp_path / "x.xdf")
    rec.writer._file.close()
    rec.writer._file = FullDisk(0)
    sink = RecorderSink(rec, types=None, close_on_end=True)
    from engage.sensors.simulated import SimulatedViewer

    stats = Runtime(VirtualClock(), [SimulatedViewer(seed=1)], [sink]).run(duration=5)
    assert stats.steps == 50 and rec.error is not None and "disk full" in str(rec.error)


def test_a_corrupt_chunk_mid_file_names_its_offset_and_the_chunks_before_it_replay(tmp_path):
    """Damage one Samples chunk in the middle of a file we wrote: the replay names the byte offset and
    hands out every sample of the chunks before it."""
    path = tmp_path / "c.xdf"
    with XdfWriter(path) as w:
        sid = w.add_stream(EEG)
        offsets = []
        for k in range(10):
            w.flush()
            offsets.append(w._committed)
            w.write_samples(sid, np.full((10, 3), float(k)), k + np.arange(10) / 100)
    raw = bytearray(path.read_bytes())
    bad = offsets[6]
    raw[bad] = 3  # a length-byte count that XDF does not have
    path.write_bytes(bytes(raw))
    src = XdfReplay(path)
    assert src.problem is not None and f"byte {bad}" in src.problem
    from engage.core import Processor

    class Take(Processor):
        def __init__(self):
            self.rows = []

        def accepts(self, info):
            return True

        def process(self, c):
            self.rows.append(c.data)
            return []

    take = Take()
    Runtime(VirtualClock(), [src], [take]).run()
    got = np.concatenate(take.rows)
    assert np.array_equal(got[:, 0], np.repeat(np.arange(6.0), 10))


def test_names_and_units_with_xml_characters_survive(tmp_path):
    info = StreamInfo("a<b & c>", "T&T", ("x<1", "y&z"), ("µV", '"s"'), 2.0, "id&<>", viewer="v&1")
    path = tmp_path / "esc.xdf"
    with XdfWriter(path) as w:
        w.write_samples(w.add_stream(info), np.ones((2, 2)), [0.0, 0.5])
    back = XdfReplay(path).streams()[0]
    assert (back.name, back.type, back.channels, back.units, back.source_id) == \
        (info.name, info.type, info.channels, info.units, info.source_id)


def test_control_characters_in_names_types_and_units_are_written_readably_and_read_back_intact(tmp_path):
    """Issue 25, item 4: a name, unit or type with a control character made the writer's file unreadable."""
    info = StreamInfo("EDA\x07left", "E\x01DA", ("ch\x1b[31m", "tab\tok"), ("\x00uS", "µS\x7f"), 4.0, "dev\x02",
                      viewer="v\x03")
    path = tmp_path / "ctl.xdf"
    with XdfWriter(path) as w:
        w.write_samples(w.add_stream(info), np.ones((3, 2)), [0.0, 0.25, 0.5])
    assert scan_xdf(path).ok
    streams, _ = pyxdf.load_xdf(str(path))  # any XML reader takes it
    assert len(streams) == 1 and len(streams[0]["time_stamps"]) == 3
    back = XdfReplay(path).streams()[0]
    assert (back.name, back.type, back.channels, back.units, back.source_id) == \
        (info.name, info.type, info.channels, info.units, info.source_id)


@given(st.text(min_size=1, max_size=20), st.text(max_size=10))
@SETTINGS
def test_any_name_and_unit_round_trip(tmp_path_factory, name, unit):
    name = name.strip() or "x"
    info = StreamInfo(name, "T", ("c",), (unit.strip(),), 1.0, "sid")
    path = tmp_path_factory.mktemp("any") / "any.xdf"
    with XdfWriter(path) as w:
        w.write_samples(w.add_stream(info), np.ones((1, 1)), [0.0])
    back = XdfReplay(path).streams()[0]
    assert (back.name, back.units) == (name, (unit.strip(),))


def test_the_file_header_datetime_is_labrecorders(tmp_path):
    """MNELAB's read_raw_xdf refused every engage file: its datetime was '…130205.123456+00:00', LabRecorder
    writes '2024-05-08T13:02:05+0200' (local time, offset without a colon)."""
    import datetime as dt
    import re

    path = tmp_path / "h.xdf"
    XdfWriter(path).close()
    _, header = pyxdf.load_xdf(str(path))
    text = header["info"]["datetime"][0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", text), text
    when = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
    assert abs((dt.datetime.now(dt.timezone.utc) - when).total_seconds()) < 120


def test_int64_values_are_written_exactly(tmp_path):
    info = StreamInfo("counter", "Counter", ("n",), ("",), 0.0, "c")
    values = np.array([[2**62 + 1], [-(2**61) - 3], [2**53 + 1]], dtype=np.int64)
    path = tmp_path / "i64.xdf"
    with XdfWriter(path) as w:
        w.write_samples(w.add_stream(info, channel_format="int64"), values, [0.0, 1.0, 2.0])
    got = load_raw(path)["counter"]["time_series"]
    assert got.dtype == np.int64 and got.tolist() == values.tolist()
