"""The group's aggregate: the GroupEngagement stream, k-of-n group events, viewers who leave or whose
sensors fail, a viewer who never connects, a group of one, chunking, and bad [group] tables."""

from __future__ import annotations


import numpy as np
import pytest

from engage.core import GROUP_VIEWER, Chunk, ConfigError, Event, Runtime, Source, VirtualClock
from engage.events.group import GROUP_CHANNELS, GroupConfig, GroupEngagement
from engage.events.state_machine import EngagementStateMachine
from engage.models.rules import engagement_info
from engage.sensors.profiles import load_profile, profile_from_text
from tests.support.processing import Take


class Script(Source):
    """Engagement rows of several viewers, handed out as the clock reaches them, ``rows_per_chunk`` at a time."""

    name = "script"

    def __init__(self, rows: dict[str, list[tuple[float, list[float]]]], rows_per_chunk: int = 1) -> None:
        self.rows = {v: list(r) for v, r in rows.items()}
        self.per = rows_per_chunk
        self.ends = True  # False: a live source that goes quiet

    def streams(self):
        return [engagement_info(v) for v in self.rows]

    def read(self, until):
        out = []
        for v, rows in self.rows.items():
            ready = [r for r in rows if r[0] <= until]
            while len(ready) >= self.per or (ready and (len(ready) == len(rows))):
                part, ready = ready[:self.per], ready[self.per:]
                del rows[:len(part)]
                out.append(Chunk.from_rows(engagement_info(v), [p[1] for p in part], [p[0] for p in part]))
        return out

    @property
    def exhausted(self):
        return self.ends and not any(self.rows.values())


def engagement_rows(times, boredom, arousal=0.5, attention=1.0, confidence=1.0):
    """Rows of the Engagement contract; each argument a number or a function of time."""
    f = lambda x, t: x(t) if callable(x) else x  # noqa: E731
    return [(float(t), [f(arousal, t), f(boredom, t), f(attention, t), f(confidence, t), 1.0]) for t in times]


def run(rows, config, step=0.1, rows_per_chunk=1, duration=None):
    take = Take()
    group = GroupEngagement(config)
    source = Script(rows, rows_per_chunk)
    source.ends = duration is None
    rt = Runtime(VirtualClock(0.0), [source], [EngagementStateMachine(), group, take], step=step)
    events = []
    rt.bus.subscribe(events.append)
    rt.run(duration=duration)
    out = [c for c in take.chunks if c.info.type == "GroupEngagement"]
    t = np.concatenate([c.timestamps for c in out])
    data = np.vstack([c.data for c in out])
    return t, {name: data[:, i] for i, name in enumerate(GROUP_CHANNELS)}, events, group


T = np.arange(0.0, 61.0)


def three_viewers():
    return {
        "a": engagement_rows(T, lambda t: 0.9 if t >= 10 else 0.2),
        "b": engagement_rows(T, lambda t: 0.9 if 20 <= t < 40 else 0.2),
        "c": engagement_rows(T, 0.2),
    }


def test_k_of_n_bored_for_the_dwell_time_is_a_group_boredom_onset_and_fewer_an_offset():
    t, g, events, _ = run(three_viewers(), GroupConfig(dwell_s=5.0))
    group = [(e.type, e.timestamp) for e in events if e.viewer == GROUP_VIEWER]
    mine = [(e.type, e.viewer, e.timestamp) for e in events if e.type.startswith("boredom.")]
    # the viewers' own events: a bored at 15, b at 25 and back at 45 (5 s dwell each)
    assert mine == [("boredom.onset", "a", 15.0), ("boredom.onset", "b", 25.0), ("boredom.offset", "b", 45.0)]
    # k = 2 of 3 (half the group, rounded up): from 25 on, held 5 s -> 30; fewer from 45, held 5 s -> 50
    assert ("group.boredom.onset", 30.0) in group and ("group.boredom.offset", 50.0) in group
    onset = next(e for e in events if e.type == "group.boredom.onset")
    assert onset.viewer == GROUP_VIEWER and onset.evidence["viewers"] == ["a", "b"]
    assert onset.evidence["k"] == 2 and onset.evidence["n"] == 3 and 0.9 < onset.confidence <= 1.0
    assert "2 of 3 viewers bored (a, b)" in onset.evidence["reason"]
    at = lambda x: int(np.flatnonzero(t == x)[0])  # noqa: E731
    assert g["bored_share"][at(20.0)] == pytest.approx(1 / 3) and g["bored_share"][at(30.0)] == pytest.approx(2 / 3)
    assert g["boredom"][at(30.0)] == pytest.approx((0.9 + 0.9 + 0.2) / 3)
    assert g["boredom_spread"][at(30.0)] == pytest.approx(np.std([0.9, 0.9, 0.2]))
    assert np.all(g["viewers"] == 3) and np.all(g["present"] == 3) and np.allclose(g["confidence"], 1.0)
    assert np.allclose(t, np.arange(0.0, 61.0))  # one row a second, from the first engagement row


def test_a_viewer_whose_sensors_fail_or_who_leaves_lowers_the_confidence_not_the_score():
    rows = {
        "a": engagement_rows(T, 0.8),
        "b": engagement_rows(T, 0.6),
        # c's sensors fail at 20 (the model's confidence falls to 0 and its boredom to a meaningless 0.5)
        "c": engagement_rows(T, lambda t: 0.5 if t >= 20 else 0.1, confidence=lambda t: 0.0 if t >= 20 else 1.0),
        "d": engagement_rows(T[T < 30], 0.1),  # d leaves at 30
    }
    t, g, _, _ = run(rows, GroupConfig())
    at = lambda x: int(np.flatnonzero(t == x)[0])  # noqa: E731
    assert g["boredom"][at(10.0)] == pytest.approx((0.8 + 0.6 + 0.1 + 0.1) / 4)
    assert g["confidence"][at(10.0)] == pytest.approx(1.0)
    # c's failed sensors: the score is the mean of the others, the confidence 3/4
    assert g["boredom"][at(25.0)] == pytest.approx((0.8 + 0.6 + 0.1) / 3)
    assert g["boredom_confidence"][at(25.0)] == pytest.approx(0.75) and g["confidence"][at(25.0)] == pytest.approx(0.75)
    assert g["bored_share_confidence"][at(25.0)] == pytest.approx(0.75)
    # d gone (its last row older than stale_s = 5 s): present 2 of 4, confidence 1/2, score of a and b
    assert g["present"][at(40.0)] == 4 - 1 and g["present"][at(50.0)] == 3  # c is present, but unsure
    assert g["boredom"][at(50.0)] == pytest.approx(0.7)
    assert g["confidence"][at(50.0)] == pytest.approx(0.5) and g["viewers"][at(50.0)] == 4


def test_a_viewer_whose_sensors_never_connect_counts_in_the_group_with_no_confidence():
    rows = {"a": engagement_rows(T, 0.9), "b": engagement_rows(T, 0.9)}
    t, g, events, group = run(rows, GroupConfig(viewers=("a", "b", "never"), k=2))
    assert group.viewers == ["a", "b", "never"] and np.all(g["viewers"] == 3)
    assert np.allclose(g["confidence"], 2 / 3) and np.allclose(g["boredom"], 0.9)  # the score is who is there
    onset = next(e for e in events if e.type == "group.boredom.onset")
    assert onset.evidence["n"] == 3 and onset.confidence == pytest.approx(2 / 3, abs=0.01)


def test_a_group_of_one_follows_its_viewer():
    t, g, events, _ = run({"solo": engagement_rows(T, lambda t: 0.9 if t >= 10 else 0.2)}, GroupConfig())
    assert [(e.type, e.timestamp) for e in events if e.viewer == GROUP_VIEWER and "boredom" in e.type] == \
        [("group.boredom.onset", 20.0)]  # the viewer's onset at 15, held 5 s
    assert np.allclose(g["boredom"], [0.9 if x >= 10 else 0.2 for x in t]) and np.all(g["boredom_spread"] == 0)


def test_no_viewer_present_is_a_row_with_no_confidence_and_no_score():
    rows = {"a": engagement_rows(T[T < 10], 0.3)}
    t, g, _, _ = run(rows, GroupConfig(), duration=40.0)
    late = t >= 20
    assert late.any() and np.all(np.isnan(g["boredom"][late])) and np.all(g["confidence"][late] == 0)
    assert np.all(g["present"][late] == 0)


@pytest.mark.parametrize("step,per", [(1.0, 1), (0.1, 7), (2.5, 3)])
def test_the_rows_and_events_do_not_depend_on_chunking_or_pace(step, per):
    ref_t, ref, ref_events, _ = run(three_viewers(), GroupConfig(), step=0.1, rows_per_chunk=1)
    t, g, events, _ = run(three_viewers(), GroupConfig(), step=step, rows_per_chunk=per)
    assert np.array_equal(t, ref_t)
    for name in GROUP_CHANNELS:
        assert np.allclose(g[name], ref[name], equal_nan=True), name
    key = lambda es: [e.to_json() for e in es if e.viewer == GROUP_VIEWER]  # noqa: E731
    assert key(events) == key(ref_events)


@pytest.mark.parametrize("table,phrase", [
    ({"policy": "loudest"}, "unknown policy 'loudest'"),
    ({"k": 0}, "k must be > 0"),
    ({"k": 1.5}, "k must be an integer"),
    ({"share": 1.5}, "share must be > 0 and <= 1"),
    ({"dwell_s": -1}, "dwell_s must be > 0"),
    ({"dwell_s": 10 ** 400}, "dwell_s must be > 0"),  # no float holds it: refused, not an OverflowError
    ({"min_confidence": 2}, "min_confidence must be within [0, 1]"),
    ({"viewers": "a"}, "viewers must be a list"),
    ({"viewers": ["a", "group"]}, "'group' is the group's own id"),
    ({"dwel_s": 5}, "unknown key 'dwel_s'"),
])
def test_bad_group_tables_are_named(table, phrase):
    with pytest.raises(ConfigError) as exc:
        GroupConfig.from_table(table, "rig.toml: [group]")
    assert str(exc.value).startswith("rig.toml: [group]: ") and phrase in str(exc.value)


def test_k_is_at_least_one_and_at_most_the_group():
    assert [GroupConfig().k_of(n) for n in (1, 2, 3, 4, 5)] == [1, 1, 2, 2, 3]
    assert GroupConfig(k=3).k_of(2) == 2 and GroupConfig(share=1.0).k_of(4) == 4


def test_profiles_with_a_group():
    p = load_profile("group-sim")
    assert p.declared_viewers == ["viewer-1", "viewer-2", "viewer-3", "viewer-4"] and p.simulated_only
    assert GroupConfig.from_table(p.group).policy == "aggregate"
    with pytest.raises(ConfigError, match=r"\[sensor.s\]: viewer 'group' is the id of the group"):
        profile_from_text('[sensor.s]\nkind = "simulated"\nviewer = "group"\n', "rig.toml")
    with pytest.raises(ConfigError, match=r"'group' must be a table"):
        profile_from_text('group = 3\n[sensor.s]\nkind = "simulated"\n', "rig.toml")
    assert not load_profile("simulated").group


def test_a_profile_including_a_group_keeps_its_group_and_may_override_keys(tmp_path):
    rig = tmp_path / "rig.toml"
    rig.write_text('[profile]\ninclude = ["group-sim"]\n[group]\npolicy = "least-engaged"\n')
    p = load_profile(rig)
    assert p.group == {"policy": "least-engaged", "share": 0.5, "dwell_s": 5}
    assert len(p.sensors) == 4
    rig.write_text('[profile]\ninclude = ["group-sim"]\n')
    assert load_profile(rig).group["policy"] == "aggregate"


def test_the_timeline_names_the_group_on_its_lines_from_the_start():
    import io

    from engage.timeline import TimelinePrinter

    out = io.StringIO()
    printer = TimelinePrinter(out, origin=0.0)
    printer.on_event(Event("scene.start", 0.1, GROUP_VIEWER, 1.0, {"scene": "platform", "title": "The Platform",
                                                                     "intensity": 0.2, "reason": "story start"}))
    printer.on_event(Event("baseline.ready", 60.0, "viewer-1", 1.0, {"samples": 61}))
    lines = out.getvalue().splitlines()
    assert 'group: "The Platform"' in lines[0] and "viewer-1:" not in lines[1]  # one viewer so far: no name


def test_a_camera_for_several_faces_in_a_profile():
    p = profile_from_text('[sensor.cam]\nkind = "webcam"\nfile = "x.mp4"\nfaces = 3\nnew_faces = "refuse"\n', "rig.toml")
    cam = p.sensors[0]
    assert (cam.faces, cam.new_faces) == (3, "refuse") and p.declared_viewers == []  # its viewers come at run time
    for body, phrase in (("faces = 0", "faces"), ("faces = 2.5", "faces"), ('new_faces = "maybe"', "new_faces")):
        with pytest.raises(ConfigError, match=phrase):
            profile_from_text(f'[sensor.cam]\nkind = "webcam"\n{body}\n', "rig.toml")
