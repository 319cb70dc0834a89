"""The player's side of a session without a browser: what each plan message tells the page (media cues, the
next candidates, the choice), the viewer's picks reaching the controller and the decision log, the mood
within a scene, the pause between episodes of an installation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage.core import Event, Runtime, VirtualClock
from engage.dashboard import DashboardFeed
from engage.media import MediaLibrary
from engage.narrative.choice import ChoiceBox, ViewerChoicePolicy
from engage.narrative.controller import Controller, RulePolicy
from engage.narrative.ink import sample_ink_path
from engage.narrative.story import load_story_text, open_story
from engage.sensors.simulated import SimulatedViewer
from engage.session import Session

STORY = """
[story]
id = "fork"
title = "The Fork"
start = "hall"

[[scene]]
id = "hall"
title = "The Hall"
text = "Two doors."
intensity = 0.3
tone = "calm"
duration_s = 20
palette = "amber"
next = ["left", "right"]
tags = { video = "hall.webm", audio = ["bed.ogg"], cut_to = "right" }

[[scene]]
id = "left"
title = "The Left Door"
text = "A garden."
intensity = 0.2
tone = "calm"
duration_s = 10
palette = "green"
next = []
tags = { image = "left.jpg" }

[[scene]]
id = "right"
title = "The Right Door"
text = "A storm."
intensity = 0.9
tone = "frantic"
duration_s = 10
palette = "storm-black"
next = []
tags = { video = "right.webm", transition = "cut" }
"""


@pytest.fixture
def media(tmp_path: Path) -> MediaLibrary:
    for name, head in (("hall.webm", "1a45dfa3"), ("right.webm", "1a45dfa3"), ("left.jpg", "ffd8ffe0"),
                       ("bed.ogg", "4f676753")):
        (tmp_path / name).write_bytes(bytes.fromhex(head) + bytes(64))
    return MediaLibrary(tmp_path)


def plans_of(sub) -> list[dict]:
    return [m["plan"] for m in map(json.loads, sub.drain()) if m["kind"] == "plan"]


def run(story, feed, seconds: float, **controller) -> Session:
    session = Session([], VirtualClock(0.0), story=story, observers=[feed])
    for k, v in controller.items():
        setattr(session.controller, k, v)
    session.run(duration=seconds)
    return session


def test_plan_messages_carry_cues_candidates_and_the_choice(media):
    story = load_story_text(STORY)
    feed = DashboardFeed(story=story, media=media, choice_window_s=8)
    sub = feed.subscribe(["plan"])
    run(story, feed, 1.0)
    (plan,) = plans_of(sub)
    film = plan["film"]
    assert film["cues"]["video"] == {"url": "/media/hall.webm", "loop": True}
    assert film["cues"]["audio"] == ["/media/bed.ogg"] and film["cues"]["text"] == "subtitles"
    assert [c["scene"] for c in film["candidates"]] == ["left", "right", "right"]  # the options, then cut_to
    assert film["candidates"][0] == {"scene": "left", "video": None, "image": "/media/left.jpg", "audio": []}
    assert film["choice"]["options"] == [{"id": "left", "label": "The Left Door", "scene": "left"},
                                         {"id": "right", "label": "The Right Door", "scene": "right"}]
    assert film["choice"]["window_s"] == 8
    assert film["choice"]["closes_at"] - film["choice"]["opens_at"] == pytest.approx(8)
    assert film["ending"] is False and film["story"] == "The Fork"
    assert isinstance(json.loads(json.dumps(plan)), dict)


def test_ink_choices_are_offered_with_their_own_words():
    player = open_story(sample_ink_path())
    feed = DashboardFeed(choice_window_s=10)
    sub = feed.subscribe(["plan"])
    run(player, feed, 1.0)
    (plan,) = plans_of(sub)
    options = plan["film"]["choice"]["options"]
    assert [o["label"] for o in options] == ["Read the late letters", "Take the caller on line two",
                                             "Answer the red line"]
    assert [o["scene"] for o in options] == ["letters", "caller", "red_line"]  # peeked, the story left where it was
    assert plan["film"]["cues"]["headline"] == "Midnight at Radio Kestrel."
    assert player.current.id == "studio" and [o.id for o in player.options()] == ["c0", "c1", "c2"]


def test_a_viewers_key_press_decides_and_the_log_says_so(media, tmp_path):
    story = load_story_text(STORY)
    feed = DashboardFeed(story=story, media=media)
    page = feed.subscribe()
    session = Session([], VirtualClock(0.0), story=story, observers=[feed], scenes_out=tmp_path / "scenes.jsonl")
    assert isinstance(session.controller.policy, ViewerChoicePolicy)
    session.runtime.run(duration=12.0)  # into the hall scene (20 s): the page picks the right door by key
    plan = [m for m in map(json.loads, page.drain()) if m["kind"] == "plan"][-1]["plan"]
    feed.client_message(page, json.dumps({"op": "choose", "scene": "hall", "at": plan["timestamp"], "option": "right",
                                          "via": "key", "response_s": 1.25}))
    taken = [m for m in map(json.loads, page.drain()) if m["kind"] == "choice"]
    assert taken == [{"kind": "choice", "origin": taken[0]["origin"], "scene": "hall", "at": plan["timestamp"],
                      "option": "right", "via": "key", "taken": True}]
    session.run(duration=12.0)
    log = [json.loads(line) for line in (tmp_path / "scenes.jsonl").read_text().splitlines()]
    assert [p["scene"] for p in log] == ["hall", "right"]
    assert log[1]["evidence"]["chosen_by"] == "viewer" and log[1]["evidence"]["via"] == "key"
    assert log[1]["evidence"]["response_s"] == 1.25
    assert log[1]["reason"] == "the viewer chose 'The Right Door' (by a key press)"


def test_without_a_pick_the_policy_chooses_and_the_log_says_so():
    story = load_story_text(STORY)
    feed = DashboardFeed(story=story)
    session = run(story, feed, 22.0)
    assert [p.scene for p in session.log.plans][:1] == ["hall"] and len(session.log.plans) == 2
    assert session.log.plans[1].evidence["chosen_by"] == "policy"
    assert session.log.plans[1].reason.startswith("director")  # the director's own reason, untouched


def test_late_wrong_and_malformed_picks_are_refused():
    story = load_story_text(STORY)
    feed = DashboardFeed(story=story)
    page = feed.subscribe()
    session = Session([], VirtualClock(0.0), story=story, observers=[feed])
    session.runtime.run(duration=1.0)
    at = session.log.plans[0].timestamp
    for msg in ({"op": "choose", "scene": "hall", "at": at, "option": "cellar"},     # not offered
                {"op": "choose", "scene": "left", "at": at, "option": "left"},       # another scene
                {"op": "choose", "scene": "hall", "at": at - 30, "option": "left"}):  # an earlier plan
        feed.client_message(page, json.dumps(msg))
    replies = [m for m in map(json.loads, page.drain()) if m["kind"] == "choice"]
    assert [r["taken"] for r in replies] == [False, False, False]
    for bad in ({"op": "choose"}, {"op": "choose", "scene": 3, "at": "x", "option": None}):
        feed.client_message(page, json.dumps(bad))
    assert feed.malformed == 2 and feed.choices.accepted == 0 and feed.choices.refused == 3


def test_a_pick_is_good_for_one_scene_only():
    box = ChoiceBox()
    box.open("hall", 0.0, ["a", "b"])
    assert box.put("hall", 0.0, "a")
    box.open("garden", 20.0, ["c", "d"])  # the next plan came first: the pick is gone
    assert box.take("hall") is None and box.take("garden") is None
    box.open("one-way", 30.0, ["e"])  # a single way on is no choice
    assert not box.put("one-way", 30.0, "e")


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["op", "scene", "at", "option", "via", "response_s", "url", "error"]),
                       st.one_of(st.none(), st.text(max_size=20), st.floats(allow_nan=True), st.integers(),
                                 st.just("choose"), st.just("media_error"), st.just("hall"))))
def test_any_page_message_is_understood_or_counted(msg):
    feed = DashboardFeed(story=load_story_text(STORY))
    feed.film.choices.open("hall", 0.0, ["left", "right"])
    sub = feed.subscribe()
    feed.client_message(sub, json.dumps(msg, allow_nan=True))  # never raises


def test_mood_follows_confident_events_within_a_scene():
    feed = DashboardFeed()
    sub = feed.subscribe(["adapt"])
    for e in (Event("boredom.onset", 10.0, "v", 0.3), Event("boredom.onset", 11.0, "v", 0.9),
              Event("boredom.onset", 12.0, "v", 0.95), Event("boredom.offset", 20.0, "v", 0.9),
              Event("arousal.high", 30.0, "v", 0.8), Event("arousal.low", 40.0, "v", 0.8)):
        feed.on_event(e)
    moods = [json.loads(m)["mood"] for m in sub.drain()]
    assert [(m["state"], m["boost"]) for m in moods] == [("bored", 0.25), ("neutral", 0.0), ("overloaded", -0.25),
                                                         ("neutral", 0.0)]
    assert feed.snapshot()["mood"]["state"] == "neutral"


def test_an_installation_pauses_between_episodes():
    story = load_story_text(STORY)
    c = Controller(story, policy=RulePolicy(), restart_after_s=15.0)
    Runtime(VirtualClock(0.0), [], [c], step=1.0).run(duration=60)
    starts = [(p.scene, p.timestamp, p.episode) for p in c.decisions]
    assert starts[:3] == [("hall", 1.0, 1), ("left", 21.0, 1), ("hall", 46.0, 2)]  # ended at 31, 15 s pause
    assert "after a 15 s pause" in c.decisions[2].reason
    with pytest.raises(Exception, match="restart_after_s must be >= 0"):
        Controller(story, restart_after_s=-1)


def test_the_viewer_state_keeps_flowing_during_the_pause_between_episodes():
    """A light desk or a visualiser follows the state at >= 1 Hz also while the installation pauses."""
    story = load_story_text(STORY)
    states = []
    c = Controller(story, policy=RulePolicy(), restart_after_s=15.0, on_state=states.append, state_interval_s=1.0)
    Runtime(VirtualClock(0.0), [], [c], step=1.0).run(duration=60)
    times = [s["timestamp"] for s in states]
    pause = [t for t in times if 31.0 <= t < 46.0]  # the first episode ended at 31, the next starts at 46
    assert len(pause) >= 14, times
    assert max(b - a for a, b in zip(times, times[1:])) <= 1.0 + 1e-9


def test_a_simulated_session_with_the_sample_ink_and_media_plays_through(tmp_path):
    """The whole pipeline with a dashboard feed and an empty media folder: every plan is described, none fails."""
    feed = DashboardFeed(media=MediaLibrary(tmp_path))
    sub = feed.subscribe(["plan"])
    session = Session([SimulatedViewer(seed=3)], VirtualClock(0.0), story=open_story(sample_ink_path()),
                      observers=[feed])
    session.run(duration=150.0)
    plans = plans_of(sub)
    assert len(plans) >= 3 and all(p["film"] and p["film"]["cues"]["headline"] for p in plans)
    assert all(not p["film"]["cues"]["headline"].endswith(("-", " ")) for p in plans)


def test_probe_answers_from_a_page_reach_the_scheduler_on_the_pipeline_thread():
    """A page's answer waits for the next tick and is handed over stamped at the probe's time plus the seconds the
    page measured; one the scheduler refuses, or one for a probe that is not open, is sent back to that page."""
    feed = DashboardFeed()
    page = feed.subscribe()
    got = []

    def answer(probe, question, value, timestamp, by="key"):
        if value > 7:
            raise ValueError(f"probe {probe}: answer {value} is not on the scale 1-7")
        got.append((probe, question, value, timestamp, by))

    feed.attach_probes(answer)
    shown = Event("probe.shown", 100.0, "viewer-1", 1.0, {"probe": 3, "reason": "random", "questions": [
        {"id": "boredom", "text": "How bored are you right now?", "scale": [1, 7],
         "anchors": ["not at all", "extremely"]},
        {"id": "arousal", "text": "How calm or excited?", "scale": [1, 7], "anchors": ["calm", "excited"]}]})
    feed.on_event(shown)
    sent = [json.loads(m) for m in page.drain()]
    assert [m["kind"] for m in sent] == ["event", "probe"] and sent[1]["event"]["evidence"]["probe"] == 3
    assert feed.snapshot()["probes"][0]["pending"] == ["arousal", "boredom"]
    feed.client_message(page, json.dumps({"op": "probe", "probe": 3, "question": "boredom", "value": 6,
                                          "elapsed_s": 2.25, "via": "touch"}))
    feed.client_message(page, json.dumps({"op": "probe", "probe": 3, "question": "arousal", "value": 9,
                                          "elapsed_s": 4.0, "via": "key"}))
    feed.client_message(page, json.dumps({"op": "probe", "probe": 4, "question": "boredom", "value": 2}))
    assert got == []  # nothing before the pipeline's tick
    feed.tick(105.0)
    assert got == [(3, "boredom", 6, 102.25, "touch")]
    replies = [json.loads(m) for m in page.drain() if '"probe"' in m and "refused" in m]
    assert [(r["probe"], r["question"], r["refused"]) for r in replies] == [
        (4, "boredom", "not open"), (3, "arousal", "probe 3: answer 9 is not on the scale 1-7")]
    feed.on_event(Event("probe.answer", 102.25, "viewer-1", 1.0, {"probe": 3, "question": "boredom", "value": 6}))
    feed.on_event(Event("probe.missed", 130.0, "viewer-1", 0.0, {"probe": 3, "question": "arousal"}))
    assert feed.snapshot()["probes"] == []
    feed.client_message(page, json.dumps({"op": "probe", "probe": "3", "question": ["x"], "value": "six"}))
    assert feed.malformed == 1


def test_probe_answers_without_a_scheduler_are_refused_not_lost_silently():
    feed = DashboardFeed()
    page = feed.subscribe()
    feed.on_event(Event("probe.shown", 1.0, "viewer-1", 1.0, {"probe": 1, "questions": [{"id": "boredom"}]}))
    feed.client_message(page, json.dumps({"op": "probe", "probe": 1, "question": "boredom", "value": 4}))
    page.drain()
    feed.tick(2.0)
    (reply,) = [json.loads(m) for m in page.drain() if "refused" in m]
    assert reply["refused"] == "this session shows no probes"
