"""LSL inlets and outlets on loopback: predicates, continuous resolution, lost streams, metadata."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage.core import Chunk, ConfigError, Context, EventBus, LslClock, Runtime, StreamInfo, VirtualClock
from engage.events.lsl_outlets import LslOutletSink, make_lsl_info, outlet_source_id
from engage.sensors.lsl import InletSet, LslSource, list_streams, parse_predicate, stream_info_from_xml
from support.processing import Take

pylsl = pytest.importorskip("pylsl")


def uid() -> str:
    return f"pytest-{uuid.uuid4().hex[:10]}"


def outlet(name: str, type_: str, n_ch: int, rate: float, source_id: str, fmt=None, labels=None, units=None):
    info = pylsl.StreamInfo(name, type_, n_ch, rate, fmt if fmt is not None else pylsl.cf_float32, source_id)
    if labels:
        chans = info.desc().append_child("channels")
        for i, lab in enumerate(labels):
            c = chans.append_child("channel")
            c.append_child_value("label", lab)
            c.append_child_value("unit", (units or [""] * n_ch)[i])
    return pylsl.StreamOutlet(info)


def wait_for(cond, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# --------------------------------------------------------------------------------------------
# pure parts
# --------------------------------------------------------------------------------------------


def test_predicates():
    assert parse_predicate("type=EEG") == "type='EEG'"
    assert parse_predicate(" name = Markers , hostname=lab ") == "name='Markers' and hostname='lab'"
    assert parse_predicate("starts-with(name,'Bio')") == "starts-with(name,'Bio')"
    for bad, msg in [("", "empty"), ("type", "not key=value"), ("=x", "not key=value"), ("colour=red", "unknown")]:
        with pytest.raises(ConfigError, match=msg):
            parse_predicate(bad)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.text(max_size=40))
def test_any_predicate_text_gives_a_predicate_or_a_config_error(text):
    try:
        out = parse_predicate(text)
    except ConfigError as exc:
        assert "predicate" in str(exc)
    else:
        assert out


def test_stream_info_from_xml_reads_channels_and_survives_bad_headers():
    x = ("<info><name>eeg</name><type>EEG</type><channel_count>3</channel_count><nominal_srate>nan"
         "</nominal_srate><channel_format>string</channel_format><source_id></source_id><uid>u1</uid><desc><channels>"
         "<channel><label>Fz</label><unit>uV</unit></channel><channel><name>Cz</name></channel></channels></desc></info>")
    i = stream_info_from_xml(x)
    assert i.channels == ("Fz", "Cz", "ch2") and i.units == ("uV", "", "")
    assert i.nominal_rate == 0.0 and i.is_string and i.source_id == "u1"
    with pytest.raises(ValueError, match="not XML"):
        stream_info_from_xml("<info><name>")
    with pytest.raises(ValueError, match="channel_count"):
        stream_info_from_xml("<info><name>x</name><channel_count>many</channel_count></info>")


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.text(max_size=200))
def test_any_header_text_gives_a_stream_info_or_a_value_error(text):
    try:
        stream_info_from_xml(text)
    except ValueError:
        pass


def test_outlet_metadata_and_stable_source_ids():
    info = StreamInfo("hr", "HeartRate", ("hr_bpm", "rr_s", "quality"), ("bpm", "s", ""), 0.0, "x", viewer="v 2")
    assert outlet_source_id(info, "s1") == "engage-s1-v-2-hr" == outlet_source_id(info, "s1")
    # a derived stream's name starts with its viewer: the viewer is said once (was engage-s1-S01-S01-eda-features)
    eda = StreamInfo("S01-eda-features", "EDAFeatures", ("tonic_us",), ("uS",), 4.0, "S01-eda", viewer="S01")
    assert outlet_source_id(eda, "s1") == "engage-s1-S01-eda-features"
    back = stream_info_from_xml(make_lsl_info(info, "sid").as_xml())
    assert (back.channels, back.units, back.type, back.source_id) == (info.channels, info.units, "HeartRate", "sid")


# --------------------------------------------------------------------------------------------
# loopback
# --------------------------------------------------------------------------------------------


def run_source(src: LslSource, until, timeout: float = 20.0):
    """Drives an LslSource on a live runtime in a thread until ``until(chunks, events)`` holds."""
    chunks, events = [], []
    bus = EventBus()
    bus.subscribe(events.append)

    rt = Runtime(LslClock(), [src], [Take(chunks)], bus=bus, step=0.02)
    thread = threading.Thread(target=rt.run, kwargs={"duration": timeout}, daemon=True)
    thread.start()
    return rt, thread, chunks, events


def gather(chunks, name):
    got = [c for c in chunks if c.info.name == name]
    return (np.concatenate([c.data for c in got]) if got else np.zeros((0, 0)),
            np.concatenate([c.timestamps for c in got]) if got else np.zeros(0))


@pytest.mark.lsl
def test_source_resolves_several_streams_including_one_that_appears_later():
    tag = uid()
    eeg = outlet("eeg", "EEG", 2, 100, f"{tag}-eeg", labels=["Fz", "Cz"], units=["uV", "uV"])
    src = LslSource([f"source_id={tag}-eeg", f"source_id={tag}-mk"], resolve_interval=0.2)
    rt, thread, chunks, events = run_source(src, None)
    try:
        wait_for(lambda: len(src.streams()) == 1, what="the EEG stream")
        eeg_rows = np.arange(60, dtype=np.float32).reshape(30, 2)
        time.sleep(0.3)
        eeg.push_chunk(eeg_rows)
        mk = outlet("markers", "Markers", 1, 0, f"{tag}-mk", fmt=pylsl.cf_string)  # appears later
        wait_for(lambda: len(src.streams()) == 2, what="the marker stream")
        time.sleep(0.3)
        mk.push_sample(["start"], pylsl.local_clock())
        mk.push_sample(['{"é": 1}'], pylsl.local_clock())
        wait_for(lambda: len(gather(chunks, "markers")[1]) == 2 and len(gather(chunks, "eeg")[1]) == 30,
                 what="all samples")
    finally:
        rt.stop()
        thread.join(10)
    data, ts = gather(chunks, "eeg")
    assert np.array_equal(data, eeg_rows.astype(float))
    assert np.allclose(np.diff(ts), 0.01, atol=1e-5)  # stamped by liblsl, dejittered
    info = src.streams()[0]
    assert (info.channels, info.units, info.nominal_rate) == (("Fz", "Cz"), ("uV", "uV"), 100.0)
    strings, mts = gather(chunks, "markers")
    assert strings[:, 0].tolist() == ["start", '{"é": 1}'] and np.all(np.diff(mts) > 0)
    assert abs(mts[-1] - pylsl.local_clock()) < 30  # on this machine's LSL clock


@pytest.mark.lsl
def test_a_lost_stream_is_a_gap_and_is_picked_up_again_when_it_returns():
    tag = uid()
    o = outlet("ecg", "ECG", 1, 250, f"{tag}-ecg")
    src = LslSource(f"source_id={tag}-ecg", resolve_interval=0.2)
    rt, thread, chunks, events = run_source(src, None, timeout=40)
    try:
        wait_for(lambda: src.streams(), what="the stream")
        time.sleep(0.3)
        o.push_chunk(np.ones((25, 1), dtype=np.float32))
        wait_for(lambda: len(gather(chunks, "ecg")[1]) == 25, what="first samples")
        del o  # the device dies
        wait_for(lambda: any(e.type == "sensor.gap" for e in events), what="a gap event")
        lost = [e for e in events if e.type == "sensor.gap"][0]
        assert lost.evidence["stream"] == "ecg" and lost.evidence["reason"] == "stream lost"
        o = outlet("ecg", "ECG", 1, 250, f"{tag}-ecg")  # and comes back with the same source_id
        wait_for(lambda: len([e for e in events if e.type == "sensor.gap"]) == 2, what="the recovery")
        time.sleep(0.3)
        o.push_chunk(np.full((25, 1), 2.0, dtype=np.float32))
        wait_for(lambda: len(gather(chunks, "ecg")[1]) == 50, what="samples after recovery")
    finally:
        rt.stop()
        thread.join(10)
    back = [e for e in events if e.type == "sensor.gap"][1]
    assert back.evidence["reason"] == "stream recovered" and back.evidence["duration_s"] > 0
    data, _ = gather(chunks, "ecg")
    assert data[:25].sum() == 25 and data[25:].sum() == 50
    assert len(src.streams()) == 1  # the same stream, not a new one
    assert rt.ctx.counters["lsl.gaps"] == 2


@pytest.mark.lsl
def test_inlet_set_reports_predicates_that_match_nothing_and_list_streams():
    tag = uid()
    o = outlet("vis", "Test", 1, 10, f"{tag}-vis")
    s = InletSet([f"source_id={tag}-vis", f"source_id={tag}-none"], clocksync=False, dejitter=False)
    try:
        wait_for(lambda: s.resolve()[0] or s.inlets, what="resolution")
        assert s.unmatched() == [f"source_id={tag}-none"]
        listed = list_streams(2.0, f"source_id={tag}-vis")
        assert [(d["name"], d["channel_format"], d["nominal_srate"]) for d in listed] == [("vis", "float32", 10.0)]
    finally:
        s.close()
        del o


@pytest.mark.lsl
def test_outlet_sink_publishes_derived_streams_with_metadata():
    tag = uid()
    info = StreamInfo("hr", "HeartRate", ("hr_bpm", "rr_s", "quality"), ("bpm", "s", ""), 0.0, "x")
    raw = StreamInfo("ecg", "ECG", ("ecg",), ("mV",), 250.0, "y")
    sink = LslOutletSink(session=tag)
    sink.start(Context(VirtualClock(), EventBus()))
    assert sink.accepts(info) and not sink.accepts(raw)
    first = Chunk.from_rows(info, [[60.0, 1.0, 1.0]], [100.0])
    sink.process(first)  # opens the outlet
    found = pylsl.resolve_byprop("source_id", outlet_source_id(info, tag), timeout=10)
    assert found
    inlet = pylsl.StreamInlet(found[0], recover=False)
    full = inlet.info(10)
    inlet.open_stream(10)
    assert stream_info_from_xml(full.as_xml()).channels == info.channels
    wait_for(lambda: sink.outlets[info].have_consumers(), what="a consumer")
    rows = [[61.0, 0.98, 1.0], [62.5, 0.96, 0.5]]
    sink.process(Chunk.from_rows(info, rows, [101.0, 102.0]))
    got, stamps = [], []
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        s, t = inlet.pull_chunk(timeout=0.5)
        got += s
        stamps += t
    assert got == rows and stamps == [101.0, 102.0]
    sink.close()


def test_lsl_and_record_commands_have_help_with_examples():
    import subprocess
    import sys

    for args in (["lsl", "--help"], ["lsl", "list", "--help"], ["record", "--help"], ["replay", "--help"]):
        r = subprocess.run([sys.executable, "-m", "engage", *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "example" in r.stdout, args
    r = subprocess.run([sys.executable, "-m", "engage", "replay", "--help"], capture_output=True, text=True, timeout=120)
    assert "--realtime" in r.stdout and "--to-lsl" in r.stdout


@pytest.mark.lsl
def test_lsl_list_shows_a_visible_stream():
    import json
    import subprocess
    import sys

    tag = uid()
    o = outlet("listed", "Probe", 2, 50, f"{tag}-listed")
    r = subprocess.run([sys.executable, "-m", "engage", "lsl", "list", "--json", "--predicate", f"source_id={tag}-listed",
                        "--timeout", "3"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [(d["name"], d["type"], d["channel_count"]) for d in rows] == [("listed", "Probe", 2)]
    r = subprocess.run([sys.executable, "-m", "engage", "lsl", "list", "--timeout", "0"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "--timeout must be positive" in r.stderr
    del o
