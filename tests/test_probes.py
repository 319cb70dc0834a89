"""Thought probes: the schedule, answers from a player and from a simulated viewer, misses, the
labels an XDF session gets from them, and a boredom model in the live chain."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engage.core import ConfigError, EventBus, Runtime, StreamInfo, VirtualClock
from engage.datasets import XdfSessions
from engage.datasets.xdf import probe_labels
from engage.events.probes import ProbeError, ProbeSchedule, ProbeScheduler
from engage.sensors.simulated import SimulatedViewer


def run(schedule, sources=(), responders=None, duration=300.0, scenes=()):
    probes = ProbeScheduler(schedule, responders=responders)
    rt = Runtime(VirtualClock(), list(sources), [probes], bus=EventBus(), step=0.5)
    events = []
    rt.bus.subscribe(events.append, "probe.")
    if scenes:
        from engage.core import Event

        class SceneStarts:
            name = "scenes"

            def __init__(self):
                self.todo = list(scenes)

            def start(self, ctx):
                self.ctx = ctx

            def accepts(self, info):
                return False

            def tick(self, now):
                while self.todo and self.todo[0][0] <= now:
                    t, scene = self.todo.pop(0)
                    self.ctx.bus.publish(Event("scene.start", t, "viewer-1", 1.0, {"scene": scene}, "controller"))
                return []

            def flush(self, now):
                return []

            def close(self):
                pass

        rt.processors.insert(0, SceneStarts())
    rt.run(duration=duration)
    return probes, events


def test_schedules_parse_and_refuse_nonsense():
    assert ProbeSchedule.parse("random:90/boredom,arousal") == ProbeSchedule("random", 90.0, ("boredom", "arousal"),
                                                                             min_gap_s=30.0)
    for bad in ("sometimes", "every:3", "every:x", "random:60/sleepiness", "every:60/"):
        if bad == "every:60/":
            assert ProbeSchedule.parse(bad).questions == ("boredom",)
            continue
        with pytest.raises(ConfigError):
            ProbeSchedule.parse(bad)


def test_a_simulated_viewer_answers_from_its_latent_state():
    viewer = SimulatedViewer(seed=4)
    probes, events = run(ProbeSchedule("every", 20.0, ("boredom", "arousal"), min_gap_s=5.0), [viewer],
                         {"viewer-1": viewer}, duration=200.0)
    shown = [e for e in events if e.type == "probe.shown"]
    answers = [e for e in events if e.type == "probe.answer"]
    assert len(shown) >= 9 and np.allclose(np.diff([e.timestamp for e in shown]), 20.0)
    assert len(answers) >= 2 * (len(shown) - 1)
    for a in answers:
        ev = a.evidence
        assert a.timestamp == pytest.approx(ev["shown_at"] + ev["rt_s"]) and ev["by"] == "simulated"
        truth = viewer.latent_state(ev["shown_at"])
        level = truth.boredom if ev["question"] == "boredom" else truth.arousal
        assert abs(ev["value"] - (1 + 6 * level)) <= 3  # noisy, rounded, sometimes careless - but about right
    # the same seed answers the same
    again = SimulatedViewer(seed=4)
    _, events2 = run(ProbeSchedule("every", 20.0, ("boredom", "arousal"), min_gap_s=5.0), [again],
                     {"viewer-1": again}, duration=200.0)
    assert [e.evidence for e in events2] == [e.evidence for e in events]


def test_a_players_answers_are_checked_and_unanswered_questions_missed():
    probes = ProbeScheduler(ProbeSchedule("every", 30.0, ("boredom", "on_task"), min_gap_s=5.0, timeout_s=10.0))
    rt = Runtime(VirtualClock(), [], [probes], bus=EventBus())
    events = []
    rt.bus.subscribe(events.append, "probe.")
    probes.start(rt.ctx)
    probes.tick(0.0)
    probes.tick(31.0)  # a player shows it; the viewer answers by touch, or not at all
    (shown,) = [e for e in events if e.type == "probe.shown"]
    assert shown.timestamp == 30.0 and shown.evidence["questions"][1]["scale"] == [0, 1]
    pid = shown.evidence["probe"]
    with pytest.raises(ProbeError, match="not on the scale"):
        probes.answer(pid, "boredom", 9, 32.0)
    with pytest.raises(ProbeError, match="before the probe"):
        probes.answer(pid, "boredom", 3, 29.0)
    with pytest.raises(ProbeError, match="no open question"):
        probes.answer(pid, "arousal", 3, 32.0)
    ev = probes.answer(pid, "boredom", 6, 32.5, by="touch")
    assert ev.type == "probe.answer" and ev.evidence["rt_s"] == pytest.approx(2.5) and ev.evidence["by"] == "touch"
    with pytest.raises(ProbeError, match="no open question"):
        probes.answer(pid, "boredom", 5, 33.0)
    probes.tick(45.0)  # past the timeout: the other question is missed
    missed = [e for e in events if e.type == "probe.missed"]
    assert [m.evidence["question"] for m in missed] == ["on_task"]
    with pytest.raises(ProbeError, match="not open"):
        probes.answer(pid, "on_task", 1, 46.0)


def test_scene_end_probes():
    _, events = run(ProbeSchedule("scene-end"), duration=100.0, scenes=[(0.0, "a"), (40.0, "b"), (75.0, "c")])
    shown = [e for e in events if e.type == "probe.shown"]
    assert [e.timestamp for e in shown] == [40.0, 75.0] and shown[0].evidence["reason"] == "scene end"


def test_probe_labels_and_an_xdf_session(tmp_path):
    answers = [{"shown_at": 100.0, "question": "boredom", "value": 6, "scale": [1, 7]},
               {"shown_at": 140.0, "question": "boredom", "value": 4, "scale": [1, 7]},
               {"shown_at": 300.0, "question": "boredom", "value": 2, "scale": [1, 7]}]
    lab = probe_labels(answers, "boredom")
    got = lab.at(np.array([69.0, 75.0, 105.0, 125.0, 160.0, 200.0, 280.0, 320.0, 331.0]))
    # 60 s around each probe, cut where the next one's starts; the scale's midpoint is no label
    np.testing.assert_array_equal(got, [np.nan, 1, 1, np.nan, np.nan, np.nan, 0, 0, np.nan])
    assert probe_labels(answers, "arousal") is None

    from engage.record.xdf import XdfWriter

    w = XdfWriter(tmp_path / "s1.xdf")
    eda = w.add_stream(StreamInfo("eda", "EDA", ("eda",), ("uS",), 4.0, "eda-1"))
    hr = w.add_stream(StreamInfo("hr", "HeartRate", ("hr_bpm", "rr_s", "quality"), ("bpm", "s", "ratio"), 0.0, "hr"))
    ev = w.add_stream(StreamInfo("engage-events", "Markers", ("event",), ("",), 0.0, "engage-events-x",
                                 channel_format="string"))
    t = np.arange(400 * 4) / 4.0
    w.write_samples(eda, np.full((t.size, 1), 2.0), t)
    w.write_samples(hr, np.ones((3, 3)), np.array([1.0, 2.0, 3.0]))
    docs = [{"type": "probe.shown", "timestamp": a["shown_at"], "viewer": "viewer-1", "confidence": 1.0,
             "evidence": {"probe": i}, "source": "probes"} for i, a in enumerate(answers)]
    docs += [{"type": "probe.answer", "timestamp": a["shown_at"] + 2, "viewer": "viewer-1", "confidence": 1.0,
              "evidence": {**a, "probe": i, "rt_s": 2.0, "by": "key"}, "source": "probes"} for i, a in enumerate(answers)]
    docs.sort(key=lambda d: d["timestamp"])
    w.write_samples(ev, np.array([[json.dumps(d)] for d in docs] + [["label=1"]], dtype=object),
                    np.array([d["timestamp"] for d in docs] + [10.0]))
    w.close()
    rec = XdfSessions(tmp_path).load("s1")
    assert [tr.info.type for tr in rec.tracks] == ["EDA"]  # a derived stream is recomputed, not replayed
    assert sorted(rec.label_sets) == ["probe:boredom", "probe:boredom:value"] and len(rec.meta["probes"]) == 3
    np.testing.assert_array_equal(rec.with_label("probe:boredom").label_at(np.array([100.0, 290.0])), [1, 0])
    assert rec.with_label("probe:boredom:value").label_at(np.array([290.0]))[0] == 2
    assert rec.label_at(np.array([20.0]))[0] == 1  # label= markers still set the default label


def test_a_boredom_model_scores_boredom_in_the_live_chain():
    from engage.core import Chunk
    from engage.models.classifier import ClassifierModel, EngagementFusion
    from engage.models.rules import ENGAGEMENT_CHANNELS, engagement_info

    class Loaded:
        target = "probe:boredom"
        features = ("z_blink_rate",)
        info = {"threshold": 0.5}

        class model:  # noqa: N801 - stands in for a fitted estimator
            @staticmethod
            def predict_proba(X):
                p = 1 / (1 + np.exp(-X["z_blink_rate"].to_numpy()))
                return np.column_stack([1 - p, p])

    clf = ClassifierModel(Loaded(), output_type="ArousalModel", required=())
    assert clf.channel == "boredom"
    info = StreamInfo("f", "WristFeaturesRelative", ("z_blink_rate", "face_quality"), ("z", "ratio"), 0.2, "f")
    (row,) = clf.process(Chunk(info, np.array([[2.0, 1.0]]), np.array([10.0])))
    b = ENGAGEMENT_CHANNELS.index("boredom")
    assert row.data[0, b] == pytest.approx(1 / (1 + np.exp(-2))) and np.isnan(row.data[0, 0])
    fusion = EngagementFusion()
    rt = Runtime(VirtualClock(), [], [fusion], bus=EventBus())
    fusion.start(rt.ctx)
    fusion.process(row)
    rules = np.array([[0.4, 0.2, 0.9, 0.5, 1.0]])
    (out,) = fusion.process(Chunk(engagement_info("viewer-1", "EngagementRules"), rules, np.array([12.0])))
    assert out.data[0, b] == pytest.approx(row.data[0, b]) and out.data[0, 0] == 0.4  # boredom from the model
