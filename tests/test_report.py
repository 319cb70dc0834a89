"""Session reports: engage recordings read directly, raw recordings replayed, damaged and bad files."""

from __future__ import annotations

import base64
import re
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engage.cli import main
from engage.core import Chunk, Event, InputFileError, Source, StreamInfo, VirtualClock
from engage.narrative.story import default_story_path, load_story
from engage.record import RecorderSink, XdfRecorder
from engage.record.recorder import RECORD_LOG_STREAM
from engage.report import analyse_recording, build_report, parse_event
from engage.sensors.simulated import SimulatedViewer
from engage.session import Session

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DROP = (70.0, 85.0)  # seconds of the test session during which the ECG "strap" is off
SESSION_S = 150.0


class EcgDropout(Source):
    """A simulated viewer whose ECG delivers nothing during ``DROP`` (a strap taken off)."""

    name = "sim-with-dropout"

    def __init__(self, viewer: SimulatedViewer) -> None:
        self.viewer = viewer

    def streams(self):
        return self.viewer.streams()

    def start(self, ctx) -> None:
        super().start(ctx)
        self.viewer.start(ctx)

    def read(self, until: float):
        out = []
        for c in self.viewer.read(until):
            if c.info.type == "ECG":
                keep = (c.timestamps < DROP[0]) | (c.timestamps >= DROP[1])
                c = Chunk(c.info, c.data[keep], c.timestamps[keep])
            if len(c):
                out.append(c)
        return out


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A short closed-loop session recorded twice: everything (as `engage live --record` does), and
    the raw sensor streams only (as LabRecorder would have it)."""
    d = tmp_path_factory.mktemp("report")
    full, raw = XdfRecorder(d / "session.xdf"), XdfRecorder(d / "raw.xdf")
    session = Session([EcgDropout(SimulatedViewer(seed=3))], VirtualClock(0.0), story=load_story(default_story_path()),
                      calibration_s=30.0,
                      extra_processors=[RecorderSink(full), RecorderSink(raw, types=("ECG", "EDA", "Face"),
                                                                          events=False)])
    result = session.run(duration=SESSION_S)
    return d, result


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)]


def _self_contained(html: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:|//|file:)""", html)
    assert "<link" not in html and "<script" not in html


def test_engage_recording_is_read_directly(recorded, tmp_path):
    d, live = recorded
    r = build_report(d / "session.xdf", tmp_path / "report.html")
    data = r.data
    assert data.mode == "recorded"
    types = {s.type for s in data.derived}
    assert {"Engagement", "HeartRate", "EDAFeatures"} <= types
    # the decisions are the scenes the controller started, with their reasons, in order
    assert [d_.scene for d_ in data.decisions] == [p.scene for p in live.log.plans]
    assert [d_.reason for d_ in data.decisions] == [p.reason for p in live.log.plans]
    assert len(data.decisions) >= 2
    # every event of the live session is in the report
    assert sorted(e.type for e in data.events) == sorted(e.type for e in live.log.events)
    html = r.html.read_text()
    _self_contained(html)
    images = _images(html)
    assert len(images) == len(r.pngs) == 4
    assert all(img.startswith(PNG_MAGIC) for img in images)
    for p in r.pngs:
        assert p.parent == tmp_path and p.read_bytes() in images
    for plan in live.log.plans:
        assert plan.title in html
    assert "id=decisions" in html and "id=gaps" in html


def test_a_gap_in_the_recording_is_listed_and_shaded(recorded, tmp_path):
    d, _ = recorded
    r = build_report(d / "session.xdf", tmp_path / "r.html")
    ecg = [g for g in r.data.gaps if g.stream == "sim-viewer-1-ecg"]
    assert len(ecg) == 1
    g = ecg[0]
    origin = r.data.origin
    assert g.start - origin == pytest.approx(DROP[0], abs=0.01)
    assert g.end - origin == pytest.approx(DROP[1], abs=0.01)
    html = r.html.read_text()
    gap_table = html.split("id=gaps", 1)[1].split("<h2", 1)[0]
    assert "sim-viewer-1-ecg" in gap_table and "1:10.0" in gap_table and "1:25.0" in gap_table
    # the ECG stream's coverage has a hole where the strap was off
    ecg_stream = next(s for s in r.data.streams if s.name == "sim-viewer-1-ecg")
    assert len(ecg_stream.segments) == 2


def test_raw_recording_is_run_through_the_pipeline(recorded, tmp_path):
    d, live = recorded
    r = build_report(d / "raw.xdf", tmp_path / "raw.html")
    data = r.data
    assert data.mode == "replayed"
    assert {s.type for s in data.streams} == {"ECG", "EDA", "Face"}
    derived = {s.type for s in data.derived}
    assert {"HeartRate", "EDAFeatures", "FaceFeatures", "Engagement"} <= derived
    assert not data.decisions  # no story given: a raw recording was not watched with one
    # the replay derives what the live session derived from the same samples
    _, hr_live = live.log.array("HeartRate", "hr_bpm")
    _, hr_replay = data.array("HeartRate", "hr_bpm")
    assert abs(len(hr_replay) - len(hr_live)) <= 2
    assert np.median(hr_replay) == pytest.approx(np.median(hr_live), abs=1.0)
    html = r.html.read_text()
    assert "Derived by the pipeline" in html and "viewer-1-engagement" in html
    assert len(_images(html)) == 4
    assert any(g.stream == "sim-viewer-1-ecg" for g in data.gaps)


def test_raw_recording_with_a_story_gets_decisions(recorded, tmp_path):
    d, _ = recorded
    data = analyse_recording(d / "raw.xdf", story=load_story(default_story_path()))
    assert data.decisions and data.decisions[0].reason.startswith("story start")


def test_cli_report_writes_html_and_pngs(recorded, tmp_path, capsys):
    d, _ = recorded
    out = tmp_path / "html" / "report.html"
    pngs = tmp_path / "png"
    assert main(["report", str(d / "session.xdf"), "-o", str(out), "--png-dir", str(pngs)]) == 0
    printed = capsys.readouterr().out
    assert "recorded by engage" in printed and str(out) in printed
    assert out.exists() and sorted(p.name for p in pngs.iterdir()) == [
        "report-physiology.png", "report-signals.png", "report-streams.png", "report-timeline.png"]


def test_cli_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "engage report session.xdf -o report.html" in text


def test_truncated_recording_reports_its_readable_part(recorded, tmp_path, capsys):
    d, live = recorded
    whole = (d / "session.xdf").read_bytes()
    cut = tmp_path / "cut.xdf"
    cut.write_bytes(whole[: int(len(whole) * 0.6)])
    assert main(["report", str(cut), "-o", str(tmp_path / "cut.html")]) == 1
    err = capsys.readouterr().err
    assert "damaged file" in err and "truncated at byte" in err
    data = analyse_recording(cut)
    assert data.problem and data.good_bytes < len(whole) * 0.6
    assert 0 < len(data.decisions) <= len(live.log.plans)
    html = (tmp_path / "cut.html").read_text()
    assert "Damaged file." in html and f"damage at byte {data.problem_offset}" in html
    assert _images(html)


def _without_footers(data: bytes) -> bytes:
    """An XDF file's bytes with its StreamFooter chunks left out: what a recorder killed before it closed leaves."""
    out, pos = bytearray(data[:4]), 4
    while pos < len(data):
        n = data[pos]
        length = int.from_bytes(data[pos + 1:pos + 1 + n], "little")
        end = pos + 1 + n + length
        if struct.unpack("<H", data[pos + 1 + n:pos + 3 + n])[0] != 6:
            out += data[pos:end]
        pos = end
    return bytes(out)


def test_a_recording_that_was_not_closed_cleanly_is_said_so(recorded, tmp_path, capsys):
    """Issue 18: engage replay said when a recording was not closed cleanly, engage report did not."""
    d, _ = recorded
    killed = tmp_path / "killed.xdf"
    killed.write_bytes(_without_footers((d / "session.xdf").read_bytes()))
    assert main(["report", str(killed), "-o", str(tmp_path / "killed.html")]) == 0  # nothing is lost: not an error
    err = capsys.readouterr().err
    assert "was not closed cleanly" in err and "no footer" in err and "killed or lost its disk" in err
    html = (tmp_path / "killed.html").read_text()
    assert "Not closed cleanly." in html and "engage-events" in html
    assert main(["report", str(d / "session.xdf"), "-o", str(tmp_path / "whole.html")]) == 0
    assert "closed cleanly" not in capsys.readouterr().err
    assert "Not closed cleanly" not in (tmp_path / "whole.html").read_text()


def test_truncated_before_any_sample_is_a_clear_error(recorded, tmp_path, capsys):
    d, _ = recorded
    head = tmp_path / "head.xdf"
    head.write_bytes((d / "session.xdf").read_bytes()[:300])
    with pytest.raises(InputFileError, match="head.xdf"):
        analyse_recording(head)
    assert main(["report", str(head), "-o", str(tmp_path / "h.html")]) == 2
    assert "engage: error:" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"not an xdf file at all\n", b"XDF"])
def test_not_xdf_is_a_clear_error(tmp_path, capsys, content):
    bad = tmp_path / "bad.xdf"
    bad.write_bytes(content)
    assert main(["report", str(bad), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("engage: error:") and "not an XDF file" in err[-1] and "bad.xdf" in err[-1]
    assert not (tmp_path / "r.html").exists()


def test_missing_file_and_directory_output(tmp_path, capsys, recorded):
    assert main(["report", str(tmp_path / "nope.xdf")]) == 2
    assert "does not exist" in capsys.readouterr().err
    d, _ = recorded
    assert main(["report", str(d / "session.xdf"), "-o", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def _stream_header(sid: int, name: str, type_: str, n: int, rate: float, fmt: str) -> bytes:
    xml = (f'<?xml version="1.0"?><info><name>{name}</name><type>{type_}</type><channel_count>{n}</channel_count>'
           f'<nominal_srate>{rate}</nominal_srate><channel_format>{fmt}</channel_format></info>').encode()
    body = struct.pack("<H", 2) + struct.pack("<I", sid) + xml
    return b"\x04" + struct.pack("<I", len(body)) + body


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(tail=st.binary(max_size=400))
def test_any_bytes_after_a_header_give_a_report_or_a_typed_error(tmp_path, tail):
    f = tmp_path / "fuzz.xdf"
    f.write_bytes(b"XDF:" + _stream_header(1, "x", "EEG", 1, 10.0, "float32") + tail)
    try:
        data = analyse_recording(f)
    except InputFileError as exc:
        assert "fuzz.xdf" in str(exc)
    else:
        assert data.streams


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(text=st.one_of(st.text(max_size=200), st.builds(lambda d: __import__("json").dumps(d), st.dictionaries(
    st.sampled_from(["type", "timestamp", "viewer", "evidence", "confidence", "x"]),
    st.one_of(st.none(), st.floats(allow_nan=True), st.text(max_size=5), st.integers(), st.lists(st.integers()))))))
def test_parse_event_never_raises(text):
    e = parse_event(text)
    assert e is None or isinstance(e, Event)


def test_recorder_gap_pairs_and_html_escaping(tmp_path):
    """A strap lost then recovered (the recorder's own gap events) is one gap; text from a file is escaped."""
    rec = XdfRecorder(tmp_path / "g.xdf")
    info = StreamInfo("viewer-1-engagement", "Engagement", ("arousal", "boredom", "attention", "confidence", "quality"),
                      ("",) * 5, 1.0, "eng")
    t = np.concatenate([np.arange(0.0, 30.0, 1.0), np.arange(41.0, 60.0, 1.0)])  # no scores from 29 s to 41 s
    rec.write_chunk(Chunk(info, np.full((len(t), 5), 0.5), t))
    # the same hole as the live pipeline reported it: one gap, not two
    rec.write_event(Event("sensor.gap", 30.0, "viewer-1", 1.0, {"stream": "viewer-1-engagement", "duration_s": 10.0,
                                                               "reason": "no features"}, "rules"))
    rec.write_event(Event("sensor.gap", 20.0, "", 1.0, {"stream": "polar", "duration_s": None,
                                                        "reason": "stream lost"}, "engage-record"), RECORD_LOG_STREAM)
    rec.write_event(Event("sensor.gap", 20.0, "", 1.0, {"stream": "polar", "duration_s": 12.5,
                                                        "reason": "stream recovered"}, "engage-record"), RECORD_LOG_STREAM)
    rec.write_event(Event("sensor.gap", 40.0, "", 1.0, {"stream": "cam", "duration_s": None, "reason": "stream lost"},
                          "engage-record"), RECORD_LOG_STREAM)
    rec.write_event(Event("scene.start", 5.0, "viewer-1", 0.9, {"scene": "s1", "title": "<script>alert(1)</script>",
                                                                "reason": "a & b", "intensity": 0.4}))
    rec.close()
    r = build_report(tmp_path / "g.xdf", tmp_path / "g.html")
    gaps = [(g.stream, round(g.start, 6), None if g.duration_s is None else round(g.duration_s, 6), g.reason)
            for g in r.data.gaps]
    assert gaps == [("polar", 20.0, 12.5, "stream lost; stream recovered"),
                    ("viewer-1-engagement", 29.0, 12.0, "no samples; no features"),
                    ("cam", 40.0, None, "stream lost")]
    html = r.html.read_text()
    assert str(tmp_path) not in html  # the file's name only: paths often hold a person's name
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a &amp; b" in html and "(never came back)" in html
    assert r.data.decisions[0].title == "<script>alert(1)</script>"


@pytest.mark.realdata
def test_report_on_labrecorder_clock_resets(shared_data, tmp_path):
    path = shared_data / "xdf_examples" / "clock_resets.xdf"
    r = build_report(path, tmp_path / "lab.html")
    data = r.data
    assert data.mode == "replayed"
    by_name = {s.name: s for s in data.streams}
    # documented in the data's SOURCE.md: 175 markers, 27815 EEG samples at 100 Hz nominal, one clock reset
    assert by_name["MyMarkerStream"].samples == 175 and by_name["BioSemi"].samples == 27815
    assert by_name["BioSemi"].clock_segments == 2
    assert sum(e.type == "marker" for e in data.events) == 175
    assert not data.derived and data.notes and "EEG" in data.notes[0]
    resets = [g for g in data.gaps if g.stream == "BioSemi"]
    assert len(resets) == 1 and resets[0].reason == "clock reset"
    html = r.html.read_text()
    _self_contained(html)
    assert len(_images(html)) == len(r.pngs) == 2  # streams and signals: no engagement, HR or EDA to plot
    assert "BioSemi" in html.split("id=gaps", 1)[1].split("<h2", 1)[0]
    assert "Segments and clock-segments differ" in html
    assert "marker 175, sensor.gap 1" in html


def test_replay_reports_its_length_and_progress(recorded):
    d, _ = recorded
    told, steps = [], []
    data = analyse_recording(d / "raw.xdf", on_duration=told.append, on_step=steps.append)
    assert told == [pytest.approx(data.end - data.origin, abs=1.0)]
    assert steps == sorted(steps) and steps[-1] >= data.end - 0.5 and len(steps) > 100
    # a recording made by engage is read, not replayed: no progress to report
    told.clear()
    analyse_recording(d / "session.xdf", on_duration=told.append)
    assert told == []
