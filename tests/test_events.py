"""The engagement state machine (hysteresis, dwell, refractory period, confidence gate), the rule
model and the event publishers, including real pylsl on loopback."""

from __future__ import annotations

import io
import json
import threading
import time

import numpy as np
import pytest

from engage.core import Chunk, Context, Event, EventBus, VirtualClock
from engage.events.markers import MarkerEvents
from engage.events.publishers import JsonlEventWriter, LslEventOutlet
from engage.events.state_machine import EngagementStateMachine
from engage.models.rules import RuleEngagementModel, engagement_info


def drive(boredom, confidence=None, dt=1.0, **kw):
    """Feed a boredom series (arousal 0.5, attention 1) through a state machine; return events."""
    sm = EngagementStateMachine(**kw)
    ctx = Context(VirtualClock(), EventBus())
    events: list[Event] = []
    ctx.bus.subscribe(events.append)
    sm.start(ctx)
    n = len(boredom)
    conf = np.full(n, 0.9) if confidence is None else np.asarray(confidence, float)
    rows = np.column_stack([np.full(n, 0.5), boredom, np.ones(n), conf, conf])
    sm.process(Chunk.from_rows(engagement_info("viewer-1"), rows, np.arange(n) * dt))
    return events


def test_onset_needs_dwell_and_offset_needs_the_lower_threshold():
    b = [0.3] * 10 + [0.7] * 4 + [0.3] * 3 + [0.7] * 10 + [0.55] * 30 + [0.4] * 10
    events = drive(b, min_dwell_s=5, refractory_s=0)
    assert [(e.type, e.timestamp) for e in events] == [("boredom.onset", 22.0), ("boredom.offset", 62.0)]
    assert "boredom 0.70 ≥ 0.65 for 5.0 s" == events[0].evidence["reason"]


def test_hysteresis_prevents_flapping_around_one_threshold():
    b = [0.3] * 5 + list(np.tile([0.66, 0.62], 40))
    events = drive(b, min_dwell_s=0, refractory_s=0)
    assert [e.type for e in events] == ["boredom.onset"]


def test_refractory_period_delays_the_next_switch():
    b = [0.8] * 10 + [0.2] * 40
    events = drive(b, min_dwell_s=2, refractory_s=20)
    onset, offset = events
    assert onset.timestamp == 2.0 and offset.timestamp == 22.0


def test_low_confidence_never_produces_events():
    b = [0.3] * 5 + [0.9] * 30
    assert drive(b, confidence=[0.3] * 35, min_dwell_s=2) == []
    # confidence dipping during the dwell restarts it
    conf = [0.9] * 10 + [0.2] + [0.9] * 24
    events = drive(b, confidence=conf, min_dwell_s=5, refractory_s=0)
    assert events[0].timestamp == 16.0


def test_attention_is_inverted_and_arousal_has_high_and_low():
    sm = EngagementStateMachine(min_dwell_s=1, refractory_s=0)
    ctx = Context(VirtualClock(), EventBus())
    events: list[Event] = []
    ctx.bus.subscribe(events.append)
    sm.start(ctx)
    rows = [[0.8, 0.2, 0.2, 0.9, 0.9]] * 3 + [[0.3, 0.2, 0.9, 0.9, 0.9]] * 3
    sm.process(Chunk.from_rows(engagement_info("viewer-1"), rows, np.arange(6.0)))
    assert [e.type for e in events] == ["arousal.high", "attention.lost", "arousal.low", "attention.regained"]


def test_rule_model_scores_direction_and_confidence():
    m = RuleEngagementModel()
    base = {"z_hr": 0.0, "z_scr": 0.0, "z_tonic": 0.0, "z_blink": 0.0, "on_screen": 0.95,
            "hr_quality": 1.0, "eda_quality": 1.0, "face_quality": 1.0}
    calm = m.score(base)
    aroused = m.score({**base, "z_hr": 2.0, "z_scr": 2.0})
    bored = m.score({**base, "z_hr": -1.5, "z_blink": 2.0, "on_screen": 0.5})
    assert aroused["arousal"] > 0.85 > calm["arousal"]
    assert bored["boredom"] > 0.9 and calm["boredom"] < 0.5
    blind = m.score({**base, "hr_quality": 0.0, "eda_quality": 0.0, "face_quality": 0.0, "z_hr": np.nan})
    assert blind["confidence"] == 0.0


def test_jsonl_writer_and_marker_events():
    buf = io.StringIO()
    w = JsonlEventWriter(buf)
    ctx = Context(VirtualClock(), EventBus())
    ctx.bus.subscribe(w)
    me = MarkerEvents()
    me.start(ctx)
    from engage.core import StreamInfo

    info = StreamInfo("stim", "Markers", ("m",), ("",), 0.0, "s", channel_format="string")
    me.process(Chunk.from_rows(info, [["start"], ["end"]], [1.0, 2.0]))
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert [(x["type"], x["evidence"]["value"]) for x in lines] == [("marker", "start"), ("marker", "end")]


@pytest.mark.lsl
def test_lsl_outlet_delivers_json_events_to_an_inlet_on_loopback():
    import pylsl

    outlet = LslEventOutlet("pytest-outlet")
    found = pylsl.resolve_byprop("source_id", outlet.source_id, timeout=10)
    assert found, "the events outlet was not resolvable on loopback"
    info = found[0]
    assert (info.type(), info.channel_format(), info.nominal_srate()) == ("Markers", pylsl.cf_string, 0.0)
    inlet = pylsl.StreamInlet(info)
    inlet.open_stream(timeout=10)
    deadline = time.time() + 10
    while not outlet.have_consumers() and time.time() < deadline:
        time.sleep(0.05)
    sent = [Event("boredom.onset", 100.0 + i, "viewer-1", 0.9, {"i": i}) for i in range(5)]
    for e in sent:
        outlet(e)
    got: list[str] = []
    stamps: list[float] = []
    while len(got) < 5 and time.time() < deadline:
        samples, ts = inlet.pull_chunk(timeout=0.5)
        got += [s[0] for s in samples]
        stamps += ts
    assert [Event.from_json(g).evidence["i"] for g in got] == list(range(5))
    assert stamps == pytest.approx([e.timestamp for e in sent])


@pytest.mark.lsl
def test_a_running_pipeline_publishes_its_events_to_an_lsl_inlet(tmp_path):
    """The demo pipeline with --lsl: every event it writes to JSON lines also arrives over LSL."""
    import pylsl

    from engage.core import VirtualClock
    from engage.narrative.story import default_story_path, load_story
    from engage.sensors.simulated import SimulatedViewer
    from engage.session import Session

    events_out = tmp_path / "events.jsonl"
    session = Session([SimulatedViewer(seed=3)], VirtualClock(0.0), story=load_story(default_story_path()),
                      events_out=events_out, lsl=True, session_id="pytest-pipeline")
    found = pylsl.resolve_byprop("source_id", "engage-events-pytest-pipeline", timeout=10)
    assert found
    inlet = pylsl.StreamInlet(found[0], max_buflen=60, recover=False)
    inlet.open_stream(timeout=10)
    received: list[str] = []
    done = threading.Event()

    def reader() -> None:  # a consumer in its own thread, as LabRecorder would be
        while not done.is_set():
            try:
                samples, _ = inlet.pull_chunk(timeout=0.2)
            except pylsl.util.LostError:
                return
            received.extend(s[0] for s in samples)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    time.sleep(0.5)  # let the outlet register its consumer before the (fast) session starts
    session.run(duration=240)
    written = events_out.read_text().splitlines()
    deadline = time.time() + 10
    while len(received) < len(written) and time.time() < deadline:
        time.sleep(0.05)
    done.set()
    thread.join(timeout=5)
    assert any(json.loads(x)["type"] == "boredom.onset" for x in written)
    assert received == written
