"""Replay sources: XDF structure scan, XDF and CSV replay, gaps, damaged and bad files."""

from __future__ import annotations

import logging
import math
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engage.core import ConfigError, InputFileError, Processor, Runtime, VirtualClock
from engage.sensors.replay import CsvReplay, XdfReplay, XdfScan, find_gaps, gap_threshold, scan_xdf

HYPOTHESIS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------------------------
# A tiny XDF writer, so the structure tests do not depend on the shared data
# --------------------------------------------------------------------------------------------


def xdf_chunk(tag: int, content: bytes, length_bytes: int = 4) -> bytes:
    body = struct.pack("<H", tag) + content
    fmt = {1: "<B", 4: "<I", 8: "<Q"}[length_bytes]
    return bytes([length_bytes]) + struct.pack(fmt, len(body)) + body


def file_header() -> bytes:
    return xdf_chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')


def stream_header(sid: int, name: str, type_: str, n_ch: int, rate: float, fmt: str,
                  labels: list[str] | None = None, units: list[str] | None = None) -> bytes:
    channels = ""
    if labels:
        channels = "<channels>" + "".join(
            f"<channel><label>{lab}</label><unit>{(units or [''] * n_ch)[i]}</unit></channel>"
            for i, lab in enumerate(labels)) + "</channels>"
    xml = (f'<?xml version="1.0"?><info><name>{name}</name><type>{type_}</type><channel_count>{n_ch}'
           f'</channel_count><nominal_srate>{rate}</nominal_srate><channel_format>{fmt}</channel_format>'
           f'<source_id>src-{sid}</source_id><desc>{channels}</desc></info>')
    return xdf_chunk(2, struct.pack("<I", sid) + xml.encode())


def samples(sid: int, timestamps, values, fmt: str = "float32") -> bytes:
    out = bytearray(struct.pack("<I", sid))
    out += bytes([4]) + struct.pack("<I", len(timestamps))
    for t, row in zip(timestamps, values):
        out += b"\x08" + struct.pack("<d", t)
        if fmt == "string":
            for v in row:
                raw = v.encode()
                out += bytes([4]) + struct.pack("<I", len(raw)) + raw
        else:
            out += np.asarray(row, dtype={"float32": "<f4", "double64": "<f8"}[fmt]).tobytes()
    return xdf_chunk(3, bytes(out))


def footer(sid: int, n: int) -> bytes:
    return xdf_chunk(6, struct.pack("<I", sid) + f"<info><sample_count>{n}</sample_count></info>".encode())


def write(path: Path, *chunks: bytes) -> Path:
    path.write_bytes(b"XDF:" + b"".join(chunks))
    return path


def gappy_recording(path: Path) -> Path:
    """A 10 Hz 2-channel stream: 0-9.9 s, a hole, 15-19.9 s, a clock reset back to 12 s;
    plus a marker stream with a long quiet interval (irregular: not a gap)."""
    ts = np.concatenate([np.arange(100) * 0.1, 15 + np.arange(50) * 0.1, 12 + np.arange(20) * 0.1])
    values = np.column_stack([np.arange(170), -np.arange(170)]).astype(np.float32)
    return write(path, file_header(),
                 stream_header(1, "ecg", "ECG", 2, 10, "float32", ["lead1", "lead2"], ["mV", "mV"]),
                 stream_header(2, "events", "Markers", 1, 0, "string"),
                 samples(1, ts[:60], values[:60]),
                 samples(2, [1.0, 30.0], [["start"], ["end"]], "string"),
                 samples(1, ts[60:], values[60:]),
                 footer(1, 170), footer(2, 2))


def concat(chunks, name: str) -> tuple[np.ndarray, np.ndarray]:
    """All data and timestamps of stream ``name`` in ``chunks``."""
    got = [c for c in chunks if c.info.name == name]
    return np.concatenate([c.data for c in got]), np.concatenate([c.timestamps for c in got])


class Collector(Processor):
    """Records every chunk and every event, in the order the pipeline produced them."""

    name = "collector"

    def __init__(self) -> None:
        self.chunks = []
        self.timeline = []  # ("chunk", chunk) | ("event", event, clock time)

    def start(self, ctx) -> None:
        super().start(ctx)
        ctx.bus.subscribe(lambda e: self.timeline.append(("event", e, ctx.clock.now())))

    def accepts(self, info) -> bool:
        return True

    def process(self, chunk):
        self.chunks.append(chunk)
        self.timeline.append(("chunk", chunk))
        return []

    def stream(self, name: str):
        return concat(self.chunks, name)

    def events(self):
        return [item[1] for item in self.timeline if item[0] == "event"]


def replay(source, step: float = 0.1) -> Collector:
    collector = Collector()
    Runtime(VirtualClock(), [source], [collector], step=step).run()
    assert source.exhausted
    return collector


# --------------------------------------------------------------------------------------------
# scan_xdf
# --------------------------------------------------------------------------------------------


def test_scan_of_an_intact_file(tmp_path):
    path = gappy_recording(tmp_path / "ok.xdf")
    scan = scan_xdf(path)
    assert isinstance(scan, XdfScan) and scan.ok
    assert (scan.n_chunks, scan.stream_ids) == (8, [1, 2])
    assert scan.good_bytes == scan.file_size == path.stat().st_size
    assert scan.problem_offset is None


def test_scan_reports_a_bad_length_byte_count_and_its_offset(tmp_path):
    good = file_header() + stream_header(1, "x", "EEG", 1, 10, "float32")
    bad = bytearray(samples(1, [0.0], [[1.0]]))
    bad[0] = 7
    scan = scan_xdf(write(tmp_path / "bad.xdf", good, bytes(bad)))
    offset = 4 + len(good)
    assert scan.problem == f"bad length-byte count 7 at byte {offset}"
    assert (scan.problem_offset, scan.good_bytes, scan.n_chunks) == (offset, offset, 2)


def test_scan_reports_an_unknown_tag(tmp_path):
    good = file_header()
    later = stream_header(1, "x", "EEG", 1, 1, "int16")
    scan = scan_xdf(write(tmp_path / "tag.xdf", good, xdf_chunk(99, b"abc"), later))
    assert scan.problem == f"unknown chunk tag 99 at byte {4 + len(good)}"
    assert scan.stream_ids == []


def test_scan_reports_a_truncated_chunk_with_sizes(tmp_path):
    head = file_header()
    chunk = stream_header(1, "x", "EEG", 1, 10, "float32")
    path = write(tmp_path / "cut.xdf", head, chunk[:20])
    declared = struct.unpack("<I", chunk[1:5])[0]
    scan = scan_xdf(path)
    assert scan.problem == f"truncated at byte {4 + len(head)}: chunk declares {declared} bytes, 15 remain"
    assert scan.good_bytes == 4 + len(head) and scan.file_size == 4 + len(head) + 20


def test_scan_rejects_samples_that_cannot_fit_their_chunk(tmp_path):
    # a corrupt sample count must not make a reader allocate memory for billions of samples
    good = file_header() + stream_header(1, "x", "Markers", 1, 0, "string")
    chunk = bytearray(samples(1, [0.0], [["hello"]], "string"))
    chunk[1 + 4 + 2 + 4 + 1:1 + 4 + 2 + 4 + 5] = struct.pack("<I", 2**31)
    scan = scan_xdf(write(tmp_path / "count.xdf", good, bytes(chunk)))
    assert scan.problem.startswith("Samples chunk declares 2147483648 samples")
    assert scan.problem_offset == 4 + len(good)


@pytest.mark.parametrize("case", ["garbage", "empty", "missing", "directory", "magic-only-prefix"])
def test_not_an_xdf_file_is_a_typed_error_naming_the_file(tmp_path, case):
    path = tmp_path / f"{case}.xdf"
    if case == "garbage":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "directory":
        path.mkdir()
    elif case == "magic-only-prefix":
        path.write_bytes(b"XD")
    for load in (scan_xdf, XdfReplay):
        with pytest.raises(InputFileError) as err:
            load(path)
        assert str(path) in str(err.value) and "not an XDF file" in str(err.value)


def _mutated_xdf():
    valid = b"XDF:" + file_header() + stream_header(1, "x", "EEG", 2, 100, "float32") + samples(
        1, [0.0, 0.01, 0.02], [[1, 2], [3, 4], [5, 6]]) + stream_header(2, "m", "Markers", 1, 0, "string") + samples(
        2, [0.5], [["go"]], "string") + footer(1, 3)
    return st.tuples(st.integers(0, len(valid)), st.lists(st.tuples(st.integers(0, len(valid) - 1),
                                                                     st.integers(0, 255)), max_size=4)).map(
        lambda cut_edits: _apply(valid, *cut_edits))


def _apply(valid: bytes, cut: int, edits) -> bytes:
    data = bytearray(valid)
    for i, v in edits:
        data[i] = v
    return bytes(data[:cut])


@HYPOTHESIS
@given(st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: b"XDF:" + b), _mutated_xdf()))
def test_scan_of_any_bytes_returns_a_scan_or_a_typed_error(data):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "any.xdf"
        path.write_bytes(data)
        try:
            scan = scan_xdf(path)
        except InputFileError as exc:
            assert str(path) in str(exc)
            return
        assert isinstance(scan, XdfScan)
        assert 4 <= scan.good_bytes <= scan.file_size == len(data)
        assert (scan.problem is None) == (scan.good_bytes == scan.file_size)
        assert scan.problem_offset == (None if scan.problem is None else scan.good_bytes)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(_mutated_xdf())
def test_replay_of_a_damaged_file_replays_or_raises_a_typed_error(data):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "damaged.xdf"
        path.write_bytes(data)
        try:
            source = XdfReplay(path)
        except InputFileError as exc:
            assert str(path) in str(exc)
            return
        chunks = source.read(math.inf)
        assert source.exhausted
        assert all(len(c) > 0 for c in chunks)


# --------------------------------------------------------------------------------------------
# XdfReplay on synthetic recordings: mapping, gaps, chunking
# --------------------------------------------------------------------------------------------


def test_stream_info_mapping_from_the_header(tmp_path):
    source = XdfReplay(gappy_recording(tmp_path / "g.xdf"), viewer="viewer-7")
    ecg, markers = source.streams()
    assert (ecg.name, ecg.type, ecg.channels, ecg.units, ecg.nominal_rate) == (
        "ecg", "ECG", ("lead1", "lead2"), ("mV", "mV"), 10.0)
    assert (ecg.source_id, ecg.channel_format, ecg.viewer, ecg.metadata) == (
        "src-1", "float64", "viewer-7", (("xdf_stream_id", "1"),))
    assert (markers.channels, markers.units, markers.channel_format, markers.nominal_rate) == (
        ("ch0",), ("",), "string", 0.0)


def test_gaps_are_published_when_noticeable_and_chunks_never_straddle_them(tmp_path):
    source = XdfReplay(gappy_recording(tmp_path / "g.xdf"))
    assert [(g.index, g.reason) for g in source.found_gaps] == [(100, "no samples"), (150, "clock reset")]
    collector = replay(source)
    gaps = collector.events()
    assert [e.type for e in gaps] == ["sensor.gap", "sensor.gap"] and source.gaps == 2
    first, second = gaps
    assert first.timestamp == pytest.approx(9.9) and first.source == "xdf-replay" and first.viewer == "viewer-1"
    assert first.evidence["stream"] == "ecg" and first.evidence["reason"] == "no samples"
    assert first.evidence["duration_s"] == pytest.approx(5.1)
    assert second.timestamp == pytest.approx(19.9) and second.evidence["reason"] == "clock reset"
    assert second.evidence["duration_s"] == pytest.approx(7.9)
    # the hole is told as soon as a live system would notice it: 1 s without a sample
    noticed_at = [item[2] for item in collector.timeline if item[0] == "event"][0]
    assert 10.9 - 1e-9 <= noticed_at < 11.0 + 1e-9
    # order: the event comes after the last chunk before the hole and before the first after it
    i_event = next(i for i, item in enumerate(collector.timeline) if item[0] == "event")
    ecg_before = [item[1] for item in collector.timeline[:i_event] if item[0] == "chunk" and item[1].info.name == "ecg"]
    ecg_after = [item[1] for item in collector.timeline[i_event:] if item[0] == "chunk" and item[1].info.name == "ecg"]
    assert ecg_before[-1].last_time == pytest.approx(9.9) and ecg_after[0].first_time == pytest.approx(15.0)
    for chunk in collector.chunks:
        if chunk.info.name == "ecg" and len(chunk) > 1:
            assert 0 < np.diff(chunk.timestamps).max() <= gap_threshold(10.0)
    data, ts = collector.stream("ecg")
    np.testing.assert_array_equal(data[:, 0], np.arange(170))
    np.testing.assert_array_equal(data[:, 1], -np.arange(170))
    assert ts[100] == pytest.approx(15.0) and ts[150] == pytest.approx(12.0)
    markers, _ = collector.stream("events")
    assert markers[:, 0].tolist() == ["start", "end"]  # 29 s of silence in a marker stream is no gap


def test_replay_does_not_depend_on_the_step(tmp_path):
    path = gappy_recording(tmp_path / "g.xdf")
    runs = [replay(XdfReplay(path), step=step) for step in (0.1, 0.37, 2.5)]
    for other in runs[1:]:
        for name in ("ecg", "events"):
            np.testing.assert_array_equal(runs[0].stream(name)[0], other.stream(name)[0])
            np.testing.assert_array_equal(runs[0].stream(name)[1], other.stream(name)[1])
        assert [e.to_json() for e in runs[0].events()] == [e.to_json() for e in other.events()]


def test_read_without_a_runtime_slices_by_time(tmp_path):
    source = XdfReplay(gappy_recording(tmp_path / "g.xdf"))
    assert source.start_time() == pytest.approx(0.0) and source.duration == pytest.approx(30.0)
    first = source.read(0.95)
    assert [(c.info.name, len(c)) for c in first] == [("ecg", 10)]
    assert source.read(0.95) == [] and not source.exhausted
    rest = source.read(1e9)
    assert sum(len(c) for c in rest if c.info.name == "ecg") == 160
    assert source.exhausted and source.gaps == 2


def test_until_is_inclusive(tmp_path):
    path = gappy_recording(tmp_path / "g.xdf")
    _, ts = concat(XdfReplay(path).read(math.inf), "ecg")
    for k in (0, 37, 99):
        chunks = XdfReplay(path).read(float(ts[k]))
        assert sum(len(c) for c in chunks if c.info.name == "ecg") == k + 1


def test_next_time_tells_when_there_is_something_new(tmp_path):
    source = XdfReplay(gappy_recording(tmp_path / "g.xdf"))
    assert source.next_time() == pytest.approx(0.0)
    source.read(9.95)
    assert source.next_time() == pytest.approx(10.9)  # the hole becomes noticeable
    source.read(10.95)
    assert source.gaps == 1 and source.next_time() == pytest.approx(15.0)
    source.read(math.inf)
    assert source.next_time() is None


def test_samples_without_a_finite_timestamp_are_left_out(tmp_path, caplog):
    ts = np.arange(30) * 0.1
    ts[12] = np.nan
    path = write(tmp_path / "nan.xdf", file_header(), stream_header(1, "x", "EEG", 1, 10, "double64"),
                 stream_header(2, "m", "Markers", 1, 0, "string"), stream_header(3, "none", "EEG", 0, 10, "float32"),
                 samples(1, ts, np.arange(30)[:, None], "double64"),
                 samples(2, [0.5, np.inf, 2.5], [["a"], ["b"], ["c"]], "string"),
                 samples(3, [0.0, 0.1], [[], []]))
    with caplog.at_level(logging.WARNING):
        source = XdfReplay(path)
    assert source.dropped_samples == 2 and "2 samples without a finite timestamp" in caplog.text
    assert [s.name for s in source.streams()] == ["x", "m"]  # a stream without channels has nothing to replay
    collector = replay(source)
    data, ts_out = collector.stream("x")
    assert data[:, 0].tolist() == [v for v in range(30) if v != 12]
    # dejittering spaces the remaining 29 samples evenly: the one-sample hole is spread, not lost
    assert np.all(np.diff(ts_out) > 0)
    np.testing.assert_allclose(ts_out, np.delete(np.arange(30) * 0.1, 12), atol=0.06)
    assert collector.stream("m")[0][:, 0].tolist() == ["a", "c"] and collector.events() == []


def test_stream_selection_by_name_or_type(tmp_path):
    path = gappy_recording(tmp_path / "g.xdf")
    assert [s.name for s in XdfReplay(path, streams=["Markers"]).streams()] == ["events"]
    assert [s.name for s in XdfReplay(path, streams=["ecg"]).streams()] == ["ecg"]
    with pytest.raises(ConfigError, match="no stream named or typed 'EEG'.*'ecg'"):
        XdfReplay(path, streams=["EEG"])


def test_damaged_middle_replays_the_good_part(tmp_path):
    head = [file_header(), stream_header(1, "x", "EEG", 1, 10, "double64"),
            samples(1, np.arange(20) * 0.1, np.arange(20)[:, None], "double64")]
    bad = xdf_chunk(99, b"\x00" * 10)
    path = write(tmp_path / "mid.xdf", *head, bad, samples(1, [2.0], [[20.0]], "double64"))
    source = XdfReplay(path)
    assert source.problem == f"unknown chunk tag 99 at byte {4 + sum(map(len, head))}"
    data, _ = replay(source).stream("x")
    np.testing.assert_array_equal(data[:, 0], np.arange(20))


def test_find_gaps_rules():
    ts = np.array([0.0, 0.1, 0.2, 0.2, 3.0, 1.0])
    assert [(g.index, g.reason) for g in find_gaps("s", ts, 10.0)] == [
        (3, "clock reset"), (4, "no samples"), (5, "clock reset")]
    assert [(g.index, g.reason) for g in find_gaps("m", ts, 0.0)] == [(5, "clock reset")]
    assert [g.reason for g in find_gaps("s", np.array([0.0, 5.0]), 10.0, clock_breaks=[1])] == ["clock reset"]
    assert find_gaps("slow", np.array([0.0, 4.0, 8.0]), 0.5) == []  # 5 samples at 0.5 Hz is 10 s


# --------------------------------------------------------------------------------------------
# Real LabRecorder files (../shared/data/xdf_examples)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xdf_dir(shared_data) -> Path:
    d = shared_data / "xdf_examples"
    if not d.is_dir():
        pytest.skip("xdf_examples not in the shared data")
    return d


@pytest.fixture(scope="module")
def clock_resets_run(xdf_dir):
    source = XdfReplay(xdf_dir / "clock_resets.xdf")
    return source, replay(source)


@pytest.mark.realdata
def test_minimal_values_and_timestamps_as_documented(xdf_dir):
    source = XdfReplay(xdf_dir / "minimal.xdf")
    assert source.problem is None
    eeg, text = source.streams()
    assert (eeg.name, eeg.type, eeg.channels, eeg.nominal_rate, eeg.source_id) == (
        "SendDataC", "EEG", ("ch0", "ch1", "ch2"), 10.0, "xdf-0")
    assert (text.name, text.type, text.channel_format, text.metadata) == (
        "SendDataString", "StringMarker", "string", (("xdf_stream_id", "46202862"),))
    early = source.read(5.45)
    assert [len(c) for c in early] == [5, 4]
    chunks = early + source.read(100.0)
    assert source.exhausted
    data, ts = concat(chunks, "SendDataC")
    assert data.dtype == np.float64
    np.testing.assert_array_equal(data, [[192, 255, 238], [12, 22, 32], [13, 23, 33], [14, 24, 34], [15, 25, 35],
                                         [12, 22, 32], [13, 23, 33], [14, 24, 34], [15, 25, 35]])
    # recorded at 5.1 … 5.9; the documented clock offset of -0.1 s maps them onto 5.0 … 5.8
    np.testing.assert_allclose(ts, np.arange(9) * 0.1 + 5.1 - 0.1, atol=1e-9)
    strings, sts = concat(chunks, "SendDataString")
    assert strings.dtype == object and strings[0, 0].startswith("<?xml") and "<sample_count>9" in strings[0, 0]
    assert strings[1:, 0].tolist() == ["Hello", "World", "from", "LSL", "Hello", "World", "from", "LSL"]
    np.testing.assert_allclose(sts, np.arange(9) * 0.1 + 5.1, atol=1e-9)  # no clock offsets: unchanged
    assert source.start_time() == pytest.approx(5.0) and source.duration == pytest.approx(0.9)


@pytest.mark.realdata
def test_clock_resets_replays_to_the_end_through_the_runtime(clock_resets_run):
    source, collector = clock_resets_run
    assert [s.name for s in source.streams()] == ["MyMarkerStream", "BioSemi"]
    eeg, eeg_ts = collector.stream("BioSemi")
    markers, marker_ts = collector.stream("MyMarkerStream")
    assert eeg.shape == (27815, 8) and markers.shape == (175, 1)
    assert np.all(np.diff(eeg_ts) >= 0) and np.all(np.diff(marker_ts) >= 0)
    assert markers[0, 0] == "XXX" and markers[-1, 0] == "XXX"
    np.testing.assert_allclose(eeg[0], [0.142, 0.463, 0.354, 0.220, 0.761, 0.323, 0.312, 0.861], atol=5e-4)
    np.testing.assert_allclose(eeg[-1], [0.873, 0.064, 0.684, 0.153, 0.306, 0.123, 0.711, 0.892], atol=5e-4)
    assert source.duration == pytest.approx(eeg_ts[-1] - eeg_ts[0], abs=5.0)


@pytest.mark.realdata
def test_clock_reset_is_a_gap_and_pyxdf_segments_are_kept(clock_resets_run):
    source, collector = clock_resets_run
    assert source.clock_segments["BioSemi"] == [(0, 12875), (12876, 27814)]
    assert source.clock_segments["MyMarkerStream"] == [(0, 90), (91, 174)]
    assert any("Segments and clock-segments differ" in w for w in source.load_warnings)
    (gap,) = collector.events()
    _, ts = collector.stream("BioSemi")
    assert gap.type == "sensor.gap" and gap.evidence["stream"] == "BioSemi"
    assert gap.evidence["reason"] == "clock reset" and source.gaps == 1
    assert gap.timestamp == ts[12875]
    assert gap.evidence["duration_s"] == pytest.approx(ts[12876] - ts[12875], abs=1e-4)


@pytest.mark.realdata
def test_pyxdf_warnings_are_not_passed_on_as_warnings(xdf_dir, caplog):
    with caplog.at_level(logging.DEBUG):
        XdfReplay(xdf_dir / "clock_resets.xdf", streams=["Markers"])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("Segments and clock-segments differ" in r.getMessage() and r.name == "engage.sensors.replay"
               for r in caplog.records)


@pytest.mark.realdata
def test_empty_streams_are_skipped(xdf_dir):
    source = XdfReplay(xdf_dir / "empty_streams.xdf")
    infos = {s.name: s for s in source.streams()}
    assert set(infos) == {"Data stream: test stream 0 counter", "ctrl"}
    assert infos["Data stream: test stream 0 counter"].channels == ("ch:00",)
    collector = replay(source)
    data, _ = collector.stream("Data stream: test stream 0 counter")
    np.testing.assert_array_equal(data[:, 0], np.arange(10))
    assert collector.stream("ctrl")[0].tolist() == [['{"state": 2}']]
    assert collector.events() == []


@pytest.mark.realdata
@pytest.mark.parametrize("fraction", [0.5, 0.003, 0.1, 0.37, 0.81, 0.999])
def test_truncated_recording_replays_the_good_part(xdf_dir, tmp_path, clock_resets_run, fraction):
    full = (xdf_dir / "clock_resets.xdf").read_bytes()
    cut = int(len(full) * fraction)
    path = tmp_path / "cut.xdf"
    path.write_bytes(full[:cut])
    scan = scan_xdf(path)
    assert scan.problem.startswith(f"truncated at byte {scan.problem_offset}:")
    assert 4 < scan.problem_offset == scan.good_bytes <= cut
    source = XdfReplay(path)
    assert source.problem == scan.problem
    collector = replay(source)
    _, full_run = clock_resets_run
    for info in source.streams():
        data, ts = collector.stream(info.name)
        reference, _ = full_run.stream(info.name)
        assert 0 < len(data) <= len(reference)
        np.testing.assert_array_equal(data, reference[:len(data)])  # samples are never altered
        assert np.all(np.diff(ts) >= 0)
    if fraction == 0.5:
        assert len(collector.stream("BioSemi")[0]) > 10000


@pytest.mark.realdata
def test_cut_inside_the_headers_leaves_nothing_to_replay(xdf_dir, tmp_path):
    path = tmp_path / "head.xdf"
    path.write_bytes((xdf_dir / "minimal.xdf").read_bytes()[:30])
    source = XdfReplay(path)
    assert source.problem.startswith("truncated at byte 4:")
    assert source.streams() == [] and source.exhausted and source.start_time() is None


# --------------------------------------------------------------------------------------------
# CsvReplay
# --------------------------------------------------------------------------------------------


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_round_trip_through_the_runtime(tmp_path):
    rng = np.random.default_rng(7)
    ts = 100.0 + np.arange(500) / 250.0
    ecg, resp = rng.normal(size=500), rng.normal(size=500)
    lines = ["timestamp,ecg,resp"] + [f"{float(t)!r},{float(a)!r},{float(b)!r}" for t, a, b in zip(ts, ecg, resp)]
    path = write_csv(tmp_path / "session.csv", "\n".join(lines) + "\n")
    source = CsvReplay(path, "ECG", units=["mV", "a.u."], viewer="viewer-2")
    (info,) = source.streams()
    assert (info.name, info.type, info.channels, info.units, info.viewer) == (
        "session", "ECG", ("ecg", "resp"), ("mV", "a.u."), "viewer-2")
    assert info.nominal_rate == pytest.approx(250.0)
    collector = replay(source)
    data, got_ts = collector.stream("session")
    np.testing.assert_array_equal(got_ts, ts)
    np.testing.assert_array_equal(data, np.column_stack([ecg, resp]))
    assert collector.events() == [] and source.duration == pytest.approx(ts[-1] - ts[0])


def test_csv_options_and_missing_values(tmp_path):
    path = write_csv(tmp_path / "hr.csv", "hr,t\n60,1.0\n,2.0\n62.5,3.0\n")
    source = CsvReplay(path, "HeartRate", name="strap", time_column="t", rate=1.0)
    (info,) = source.streams()
    assert (info.name, info.channels, info.units, info.nominal_rate) == ("strap", ("hr",), ("",), 1.0)
    data = np.concatenate([c.data for c in source.read(10.0)])[:, 0]
    assert data[0] == 60 and math.isnan(data[1]) and data[2] == 62.5
    with pytest.raises(ConfigError, match="2 units given for 1 channels"):
        CsvReplay(path, "HeartRate", time_column="t", units=["bpm", "x"])


def test_csv_timestamps_that_do_not_increase_are_gaps(tmp_path):
    rows = [(0.0, 1), (0.5, 2), (1.0, 3), (0.2, 4), (0.7, 5), (4.0, 6), (4.5, 7)]
    path = write_csv(tmp_path / "jumpy.csv", "timestamp,x\n" + "".join(f"{t},{v}\n" for t, v in rows))
    source = CsvReplay(path, "Misc")
    assert source.streams()[0].nominal_rate == pytest.approx(2.0)
    collector = replay(source)
    assert [(e.timestamp, e.evidence["reason"]) for e in collector.events()] == [
        (1.0, "clock reset"), (0.7, "no samples")]
    assert source.gaps == 2
    data, _ = collector.stream("jumpy")
    assert data[:, 0].tolist() == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("text, where", [
    ("time,x\n1,2\n", "line 1: no time column 'timestamp' (columns: time, x)"),
    ("timestamp,x\n0.0,1\n0.1,2\n0.2,abc\n", "line 4, column 'x': not a number: 'abc'"),
    ("timestamp,x\n0.0,1\nsoon,2\n", "line 3, column 'timestamp': not a time in seconds: 'soon'"),
    ("timestamp,x\n0.0,1\nnan,2\n", "line 3, column 'timestamp': time must be finite"),
    ("timestamp,x\n0.0,1\n0.1,2,3\n", "line 3: 3 fields, the header has 2"),
    ("", "empty file"),
    ("\n\n", "empty file"),
    ("timestamp,x\n", "header but no data rows"),
])
def test_bad_csv_is_a_typed_error_naming_file_and_line(tmp_path, text, where):
    path = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(InputFileError) as err:
        CsvReplay(path, "Misc")
    assert str(err.value).startswith(f"{path}: ") and where in str(err.value)


def test_missing_csv_and_binary_csv(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        CsvReplay(tmp_path / "nope.csv", "Misc")
    path = tmp_path / "bin.csv"
    path.write_bytes(b"timestamp,x\n\xff\xfe\x00\n")
    with pytest.raises(InputFileError, match="not a UTF-8 text file"):
        CsvReplay(path, "Misc")


@HYPOTHESIS
@given(st.text(alphabet=st.sampled_from(list("timestap,x0123456789.-e\n\r\" nan")), max_size=120))
def test_any_csv_text_replays_or_raises_a_typed_error(text):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "any.csv"
        path.write_text(text, newline="")
        try:
            source = CsvReplay(path, "Misc")
        except InputFileError as exc:
            assert str(path) in str(exc)
            return
        chunks = source.read(math.inf)
        assert source.exhausted and sum(len(c) for c in chunks) >= 1


@HYPOTHESIS
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(allow_nan=False, allow_infinity=False)),
                min_size=1, max_size=40))
def test_csv_values_round_trip_exactly(rows):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "rt.csv"
        path.write_text("timestamp,v\n" + "".join(f"{t!r},{v!r}\n" for t, v in rows))
        source = CsvReplay(path, "Misc")
        chunks = source.read(math.inf)
        assert np.concatenate([c.data for c in chunks])[:, 0].tolist() == [v for _, v in rows]
        assert np.concatenate([c.timestamps for c in chunks]).tolist() == [t for t, _ in rows]
        assert source.gaps == len(find_gaps("rt", np.array([t for t, _ in rows]), source.streams()[0].nominal_rate))


# --------------------------------------------------------------------------------------------
# engage recordings, windows, loops
# --------------------------------------------------------------------------------------------


def engage_recording(path: Path) -> Path:
    """What a live session writes: a raw ECG, a derived HeartRate and the events, each with its role."""
    from engage.core import Event, StreamInfo
    from engage.record import XdfWriter

    with XdfWriter(path) as w:
        raw = w.add_stream(StreamInfo("ecg", "ECG", ("ecg",), ("mV",), 10.0, "e"), role="raw")
        w.write_samples(raw, np.arange(100.0).reshape(-1, 1), 100 + np.arange(100) * 0.1)
        hr = w.add_stream(StreamInfo("viewer-1-heart-rate", "HeartRate", ("hr_bpm",), ("bpm",), 0.0, "h"),
                          role="derived")
        w.write_samples(hr, [[60.0], [61.0]], [102.0, 104.0])
        ev = w.add_stream(StreamInfo("engage-events", "Markers", ("event",), ("",), 0.0, "engage-events-x",
                                     channel_format="string"), role="events")
        w.write_samples(ev, [[Event("boredom.onset", 105.0, "viewer-1", 0.9).to_json()]], [105.0])
    return path


def test_an_engage_recording_feeds_only_its_raw_streams_unless_asked(tmp_path):
    path = engage_recording(tmp_path / "e.xdf")
    src = XdfReplay(path)
    assert [s.name for s in src.streams()] == ["ecg"] and src.made_by_engage and src.closed_cleanly
    assert {r.info.name: r.role for r in src.recorded} == {"ecg": "raw", "viewer-1-heart-rate": "derived",
                                                            "engage-events": "events"}
    assert [e.type for e in src.recorded_events] == ["boredom.onset"]
    assert not [e for e in replay(src).events() if e.type == "marker"]  # the recorded events are not re-read
    assert {s.name for s in XdfReplay(path, derived=True).streams()} == {"ecg", "viewer-1-heart-rate", "engage-events"}
    # a LabRecorder file (no roles, no engage manufacturer) is all raw
    assert all(r.role == "raw" for r in XdfReplay(gappy_recording(tmp_path / "g.xdf")).recorded)


def test_a_window_of_the_recording(tmp_path):
    src = XdfReplay(engage_recording(tmp_path / "e.xdf"), start_s=2.0, end_s=4.0)
    _, ts = concat(src.read(math.inf), "ecg")
    assert ts[0] == pytest.approx(102.0) and ts[-1] == pytest.approx(104.0) and len(ts) == 21
    with pytest.raises(ConfigError, match="must come after its start"):
        XdfReplay(tmp_path / "e.xdf", start_s=5, end_s=1)
    with pytest.raises(ConfigError, match="nothing recorded between 60 s and the end"):
        XdfReplay(tmp_path / "e.xdf", start_s=60)


def test_a_looping_replay_moves_time_forward_and_marks_each_restart(tmp_path):
    src = XdfReplay(engage_recording(tmp_path / "e.xdf"), loop=True)
    collector = Collector()
    Runtime(VirtualClock(), [src], [collector], step=0.5).run(duration=25.0)
    _, ts = collector.stream("ecg")
    assert len(ts) > 200 and np.all(np.diff(ts) > 0)  # two passes and more, never backwards
    restarts = [e for e in collector.events() if e.evidence.get("reason") == "replay loop"]
    assert len(restarts) == src.passes - 1 >= 2
    assert restarts[0].evidence["duration_s"] == pytest.approx(1.0)  # last sample to first: the 1 s loop gap


def test_replay_says_when_a_recording_was_not_closed_cleanly(tmp_path, capsys):
    from engage.cli import main
    from engage.core import StreamInfo
    from engage.record import XdfWriter

    path = tmp_path / "killed.xdf"
    w = XdfWriter(path)
    sid = w.add_stream(StreamInfo("ecg", "ECG", ("ecg",), ("mV",), 100.0, "e"))
    w.write_samples(sid, np.zeros((300, 1)), 10 + np.arange(300) / 100)
    w.flush()  # and the recorder dies: no footer
    assert not XdfReplay(path).closed_cleanly
    assert main(["replay", str(path), "--no-story", "--quiet", "--out", str(tmp_path / "o")]) == 0
    assert "was not closed cleanly" in capsys.readouterr().err
    w.close()
    assert main(["replay", str(path), "--no-story", "--quiet", "--out", str(tmp_path / "o")]) == 0
    assert "was not closed cleanly" not in capsys.readouterr().err
