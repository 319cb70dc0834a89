"""The engagement state machine: hysteresis, dwell, refractory period, confidence gate, reason codes."""

from __future__ import annotations

import math

import numpy as np

from engage.core import Chunk, EventBus, Runtime, VirtualClock
from engage.events.state_machine import EngagementStateMachine, Transition
from engage.models.rules import ENGAGEMENT_CHANNELS, engagement_info


def run(scores, conf=1.0, **kw):
    """Feed one Engagement row per second (boredom = scores[i]); return events and the machine."""
    sm = EngagementStateMachine(**kw)
    bus = EventBus()
    events = []
    bus.subscribe(events.append)
    rt = Runtime(VirtualClock(), [], [sm], bus=bus)
    sm.start(rt.ctx)
    confs = conf if np.ndim(conf) else [conf] * len(scores)
    rows = [[0.5, b, 0.8, c, 1.0] for b, c in zip(scores, confs)]
    for i, row in enumerate(rows):
        sm.process(Chunk.from_rows(engagement_info("v"), [row], [float(i)]))
    return [e for e in events if e.type.startswith("boredom")], sm


def test_hysteresis_no_flapping_between_thresholds():
    # crosses 0.65 once, then hovers between the off (0.45) and on (0.65) thresholds: one onset only
    scores = [0.7] * 10 + [0.5, 0.6, 0.55, 0.62, 0.47] * 8
    events, _ = run(scores, min_dwell_s=3, refractory_s=0)
    assert [e.type for e in events] == ["boredom.onset"]
    events, _ = run(scores + [0.4] * 10, min_dwell_s=3, refractory_s=0)
    assert [e.type for e in events] == ["boredom.onset", "boredom.offset"]


def test_dwell_needed_before_switching():
    events, _ = run([0.2] * 5 + [0.9] * 4 + [0.2] * 5, min_dwell_s=5, refractory_s=0)
    assert events == []  # 4 s above the threshold is shorter than the 5 s dwell
    events, _ = run([0.2] * 5 + [0.9] * 7, min_dwell_s=5, refractory_s=0)
    assert [e.type for e in events] == ["boredom.onset"]
    assert events[0].timestamp == 10.0 and math.isclose(events[0].evidence["dwell_s"], 5.0)


def test_refractory_period_delays_the_next_switch():
    scores = [0.9] * 3 + [0.1] * 30
    events, sm = run(scores, min_dwell_s=1, refractory_s=10)
    onset, offset = events
    assert offset.timestamp - onset.timestamp >= 10  # held back, then allowed
    assert sm.suppressed["gate.refractory"] > 0
    events, _ = run(scores, min_dwell_s=1, refractory_s=0)
    assert events[1].timestamp - events[0].timestamp < 10


def test_confidence_gate_blocks_events_and_counts():
    events, sm = run([0.9] * 20, conf=0.3, min_dwell_s=2, min_confidence=0.5)
    assert events == [] and sm.suppressed["gate.low_confidence"] == 20
    # a dip in confidence restarts the dwell
    conf = [1.0] * 3 + [0.2] + [1.0] * 10
    events, _ = run([0.9] * 14, conf=conf, min_dwell_s=5, refractory_s=0)
    assert [e.timestamp for e in events] == [9.0]


def test_nan_scores_never_switch_and_reason_codes_are_typed():
    events, sm = run([math.nan] * 20, min_dwell_s=1)
    assert events == [] and sm.history == []
    events, sm = run([0.9] * 5 + [0.1] * 5, min_dwell_s=1, refractory_s=0)
    assert [e.evidence["reason_code"] for e in events] == ["boredom.on.threshold_held", "boredom.off.threshold_held"]
    assert all(isinstance(t, Transition) for t in sm.history)
    assert [t.event_type for t in sm.history if t.dimension == "boredom"] == [e.type for e in events]
    assert ENGAGEMENT_CHANNELS[0] == "arousal"
