"""Group policies: the group as one, nobody left behind, majority vote, personal tracks; every decision
says whom it served. Driven by real events and engagement rows on a bus, and by simulated audiences
through the whole pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engage.core import GROUP_VIEWER, Chunk, ConfigError, Context, Event, EventBus, Runtime, VirtualClock
from engage.events.group import GroupConfig
from engage.models.rules import engagement_info
from engage.narrative.controller import ViewerState
from engage.narrative.group import GroupPolicy, GroupTracker, PersonalTracks
from engage.narrative.policy import DirectorPolicy
from engage.narrative.story import Scene, default_story_path, load_story

CALM = Scene("calm", "Tea", "", 0.2, "calm", 60.0, "amber")
CHASE = Scene("chase", "The Chase", "", 0.9, "frantic", 60.0, "black")


def tracker_with(viewers: dict[str, float], now: float = 100.0) -> GroupTracker:
    """A started tracker whose viewers have sent a minute of engagement rows at the given boredom."""
    tracker = GroupTracker(GroupConfig(viewers=tuple(viewers)))
    tracker.start(Context(VirtualClock(0.0), EventBus()))
    t = np.arange(now - 60.0, now + 0.5)
    for v, boredom in viewers.items():
        rows = np.tile([0.5, boredom, 1.0, 1.0, 1.0], (len(t), 1))
        tracker.process(Chunk(engagement_info(v), rows, t))
    return tracker


def test_nobody_left_behind_follows_the_least_engaged_viewer_and_serves_them():
    tracker = tracker_with({"a": 0.2, "b": 0.55, "c": 0.3})
    policy = GroupPolicy("least-engaged", DirectorPolicy(), tracker)
    state = ViewerState(GROUP_VIEWER)
    policy.observe(state, 100.0)
    assert tracker.least_engaged(100.0) == "b"
    assert state.engagement["boredom"] == 0.55  # the controller's state is the followed viewer's
    tracker.ctx.bus.publish(Event("boredom.onset", 95.0, "c", 0.9))  # a sure onset outranks a higher score
    assert tracker.least_engaged(100.0) == "c"
    choice = policy.choose(CALM, [CALM, CHASE], state, 100.0)
    assert choice.scene.id == "chase" and choice.evidence["served"] == ["c"]
    assert choice.reason.startswith("nobody left behind: following c, the least engaged of 3 present (bored since")
    assert choice.evidence["group"]["present"] == ["a", "b", "c"]


def test_the_group_as_one_answers_the_group_event_not_one_viewer():
    tracker = tracker_with({"a": 0.9, "b": 0.2})
    policy = GroupPolicy("aggregate", DirectorPolicy(), tracker)
    bus = tracker.ctx.bus
    bus.publish(Event("boredom.onset", 90.0, "a", 0.9))  # one viewer bored: not the group
    state = ViewerState(GROUP_VIEWER)
    policy.observe(state, 100.0)
    assert state.bored(0.5) is None
    bus.publish(Event("group.boredom.onset", 99.0, GROUP_VIEWER, 0.8, {"viewers": ["a", "b"]}))
    choice = policy.choose(CALM, [CALM, CHASE], state, 100.0)
    assert state.bored(0.5).type == "boredom.onset" and state.bored(0.5).evidence["viewers"] == ["a", "b"]
    assert choice.scene.id == "chase" and choice.evidence["served"] == ["a", "b"]
    assert choice.reason.startswith("the group as one: 2 of 2 viewers present and sure; viewer bored")


def test_a_majority_vote_plays_what_most_viewers_directors_want_and_serves_the_majority():
    tracker = tracker_with({"a": 0.2, "b": 0.2, "c": 0.2})
    policy = GroupPolicy("majority", DirectorPolicy(), tracker)
    tracker.ctx.bus.publish(Event("arousal.high", 95.0, "c", 0.9))  # c is overloaded: c's director relaxes
    state = ViewerState(GROUP_VIEWER)
    policy.observe(state, 100.0)
    choice = policy.choose(CALM, [CALM, CHASE], state, 100.0)
    assert choice.evidence["votes"] == {"a": "chase", "b": "chase", "c": "calm"}
    assert choice.scene.id == "chase" and choice.evidence["served"] == ["a", "b"] and choice.rule == "majority"
    assert "majority vote of 3 viewers ('Tea' 1, 'The Chase' 2)" in choice.reason
    # the group's director still limits plot changes: within its cooldown the authored option plays
    again = policy.choose(CALM, [CALM, CHASE], state, 103.0)
    assert again.scene.id == "calm" and again.rule == "authored" and "cooldown" in again.reason
    assert again.evidence["served"] == ["c"]


def test_a_tie_goes_to_the_option_written_first_and_nobody_present_lets_the_group_decide():
    tracker = tracker_with({"a": 0.2, "b": 0.2})
    tracker.ctx.bus.publish(Event("arousal.high", 95.0, "b", 0.9))
    policy = GroupPolicy("majority", DirectorPolicy(), tracker)
    state = ViewerState(GROUP_VIEWER)
    policy.observe(state, 100.0)
    assert policy.choose(CALM, [CALM, CHASE], state, 100.0).scene.id == "calm"
    gone = policy.choose(CALM, [CALM, CHASE], state, 200.0)  # every row older than stale_s
    assert gone.evidence["served"] == [] and gone.reason.startswith("majority vote: nobody present and sure")


def test_personal_is_not_a_single_film_policy():
    with pytest.raises(ConfigError, match="'personal' gives each viewer their own film"):
        GroupPolicy("personal", None, GroupTracker())


def test_personal_tracks_give_each_viewer_their_own_film_from_a_shared_start():
    story = load_story(default_story_path())
    plans = []
    tracks = PersonalTracks(story, GroupConfig(viewers=("a", "b"), policy="personal"), on_plan=plans.append)
    rt = Runtime(VirtualClock(0.0), [], [tracks], step=1.0)
    bus_events = []
    rt.bus.subscribe(bus_events.append, "scene.start")

    def overload_a(now: float) -> None:  # only a is overloaded: a's director relaxes, b's builds up
        if now == 100.0:
            rt.bus.publish(Event("arousal.high", now, "a", 0.9))

    rt.run(duration=200.0, on_step=overload_a)
    starts = [(p.viewer, p.timestamp) for p in plans if p.evidence.get("rule") == "start"]
    assert starts == [("a", 1.0), ("b", 1.0)]  # a shared start
    assert {e.viewer for e in bus_events} == {"a", "b"}
    a = [p.scene for p in plans if p.viewer == "a"]
    b = [p.scene for p in plans if p.viewer == "b"]
    assert a[:2] == b[:2] == ["platform", "compartment"]
    assert a[2] == "dining_car" and b[2] == "corridor_shadow"  # each viewer's own film
    assert tracks.plot_changes >= 1 and not tracks.finished
    assert all(p.evidence["served"] == [p.viewer] for p in plans)  # each film serves its own viewer


def test_a_simulated_audience_watches_one_film_chosen_for_the_group(tmp_path):
    """Three simulated viewers through the whole pipeline: the film plays to the group, every viewer watches
    it (their mind follows the group's scenes), and every choice names the viewers it served."""
    from engage.sensors.simulated import SimulatedAudience
    from engage.session import Session

    audience = SimulatedAudience(3, seed=5, scene_viewers=(GROUP_VIEWER,))
    group = GroupConfig(viewers=tuple(v.viewer for v in audience), policy="least-engaged")
    session = Session(list(audience), VirtualClock(0.0), story=load_story(default_story_path()), calibration_s=20.0,
                      group=group, step=0.5)
    result = session.run(duration=260.0)
    plans = result.log.plans
    assert plans and all(p.viewer == GROUP_VIEWER for p in plans)
    # every decision, the story's start and a scene with one way on included, names the viewers it served
    # (at the start nobody's state is known yet: it serves no one in particular)
    assert len(plans) >= 3 and plans[0].evidence["served"] == []
    assert all(p.evidence["served"] and set(p.evidence["served"]) <= set(group.viewers) for p in plans[1:])
    assert all(v.scene == plans[-1].scene for v in audience)  # each viewer is watching the group's scene
    assert session.group is not None and session.group.viewers == list(group.viewers)
    assert session.group.last_row["viewers"] == 3 and session.group.last_row["present"] == 3


def test_story_compare_group_refuses_bad_sizes(capsys):
    from engage.cli import main

    assert main(["story", "compare", "--group", "0"]) == 2
    assert "--group must be >= 1" in capsys.readouterr().err
    assert main(["story", "compare", "--group", "4", "--viewers", "3"]) == 2
    assert "fewer than one audience of --group 4" in capsys.readouterr().err
    assert main(["story", "compare", "--group", "2", "--viewers", "4", "--overlay", "tags.toml"]) == 2
    assert "--overlay is not supported with --group" in capsys.readouterr().err


def test_run_group_refuses_personal_and_unknown_policies():
    from engage.narrative.group_evaluation import run_group

    for policy in ("personal", "loudest"):
        with pytest.raises(ValueError, match="unknown group policy"):
            run_group(None, policy, seed=0)


def _ink_workers() -> int:
    """This process's ink runtime worker processes still running (Linux /proc)."""
    import os

    me, n = str(os.getpid()), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = stat.read_text().rsplit(")", 1)[1].split()[1]
            cmd = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        n += ppid == me and b"inkrun.py" in cmd
    return n


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_group_runs_leave_no_ink_runtime_behind():
    """Each run of a group comparison used to open the ink story afresh and never stop its runtime: a
    100-audience comparison left hundreds of worker processes running until the end."""
    from engage.narrative.group_evaluation import compare_groups

    before = _ink_workers()
    results = compare_groups(None, groups=2, size=1, policies=("aggregate",), horizon_s=20.0)
    assert [len(r) for r in results.values()] == [2, 2]
    assert _ink_workers() - before <= 1  # this process's one shared runtime, whatever the number of runs
