"""The scene-plan contract: the versioned JSON Schema, every writer's tag through to the plan, the
changed variables and the fates, and directives that obey the director's decision on every path
that rewrites (the template, a prepared LLM rewrite, a cut-to beat, the story's start)."""

from __future__ import annotations

import json
import threading
import time
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from engage.core import Event, Runtime, VirtualClock
from engage.narrative.canon import check_rewrite
from engage.narrative.controller import Controller
from engage.narrative.ink import load_ink, sample_ink_path
from engage.narrative.plan import ScenePlan, media_cue, media_cues, parse_fate, plan_schema
from engage.narrative.policy import DirectorPolicy
from engage.narrative.rewriter import Rewrite, RewriteService, TemplateRewriter
from engage.narrative.story import Scene, Story

STORIES = Path(__file__).parent / "stories"
CLIFF = STORIES / "cliff_road.ink.json"
VALIDATOR = jsonschema.Draft202012Validator(plan_schema())


def _valid(plan: ScenePlan) -> dict:
    d = json.loads(plan.to_json())
    errors = sorted(VALIDATOR.iter_errors(d), key=str)
    assert not errors, f"{plan.scene}: {errors[0].message} at {list(errors[0].path)}"
    return d


def _play(player, events=(), duration=600.0, rewriter=None, policy=None):
    c = Controller(player, policy=policy or DirectorPolicy(), rewriter=rewriter, stop_at_end=True)
    for e in events:
        c.state.update(e)
    Runtime(VirtualClock(), [], [c], step=1.0).run(duration=duration)
    return c


def test_the_schema_ships_with_the_package_and_is_versioned():
    text = resources.files("engage.narrative").joinpath("schemas", "scene-plan-1.schema.json").read_text()
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema"]["const"] == "engage.scene-plan/1"
    for field in ("speaker", "media", "tags", "variables", "fates", "upcoming", "ai_generated"):
        assert field in schema["required"]


def test_the_schema_refuses_a_plan_that_breaks_the_contract():
    good = _valid(_play(load_ink(sample_ink_path()), duration=50.0).decisions[0])
    for change in ({"ai_generated": True}, {"directives": {"pacing": "warp"}}, {"fates": [{"character": "X"}]},
                   {"media": [{"kind": "hologram", "src": "x", "options": {}}]}, {"schema": "engage.scene-plan/0"},
                   {"surprise": 1}):
        bad = {**good, **change}
        assert list(VALIDATOR.iter_errors(bad)), change


def test_every_writer_tag_reaches_the_plan():
    c = _play(load_ink(CLIFF))
    first = _valid(c.decisions[0])
    assert (first["scene"], first["title"], first["speaker"], first["tone"], first["act"]) == (
        "harbour", "The Harbour", "Mara", "calm", "1")
    assert first["cast"] == ["Mara", "Jonah"] and first["intensity"] == 0.2
    assert first["media"] == [
        {"kind": "image", "src": "harbour_dawn.jpg", "options": {"fit": "cover"}},
        {"kind": "audio", "src": "gulls.ogg", "options": {"loop": True, "volume": 0.4}}]
    assert first["tags"]["lighting"] == "dawn" and first["tags"]["camera"] == "wide"
    assert first["tags"]["palette"] == "slate" and first["duration_s"] == 30.0
    assert [o["title"] for o in first["upcoming"]] == ["Take the coast road", "Take the cliff road"]
    for plan in c.decisions:
        _valid(plan)


class Scripted:
    """A policy that takes the options whose titles start with the given words, in order."""

    def __init__(self, *titles: str) -> None:
        self.titles = list(titles)

    def choose(self, current, options, state, now):
        from engage.narrative.controller import Choice

        want = self.titles.pop(0)
        return Choice(next(o for o in options if o.title.startswith(want)), f"scripted: {want}", "scripted")


def _scripted(*titles: str) -> list[dict]:
    c = _play(load_ink(CLIFF), duration=1200.0, policy=Scripted(*titles))
    return [_valid(p) for p in c.decisions]


def test_sfx_may_repeat_and_variables_that_changed_are_listed():
    coast = _scripted("Take the coast road", "Stop for coffee", "Back on the road", "Wait it out")[1]
    assert coast["scene"] == "coast_road"
    assert [(m["kind"], m["src"], m["options"]) for m in coast["media"]] == [
        ("sfx", "engine.wav", {}), ("sfx", "waves.wav", {"volume": 0.6})]
    assert coast["variables"] == {"has_map": True} and coast["fates"] == []
    assert coast["tags"]["cut_to"] == "rockfall" and coast["tags"]["interruptible"] is True


def test_a_fate_reaches_the_plan_with_who_and_what_and_the_ending_is_named():
    plans = _scripted("Take the cliff road", "Slow down", "Jonah goes for the rope")
    assert [p["scene"] for p in plans] == ["harbour", "cliff_road", "rockfall", "the_fall", "alone"]
    fall, alone = plans[3], plans[4]
    assert fall["fates"] == [{"character": "Jonah", "outcome": "dies"}] and fall["variables"] == {"jonah_alive": False}
    assert fall["speaker"] == "Mara" and fall["media"] == [{"kind": "sfx", "src": "wind.wav", "options": {}}]
    assert plans[2]["upcoming"][1] == {"id": "c1", "title": "Jonah goes for the rope", "intensity": 1.0,
                                       "tone": "neutral", "fate_point": True}
    assert alone["ending"] == "alone" and alone["upcoming"] == [] and alone["fates"] == []
    assert alone["media"] == [{"kind": "audio", "src": "piano.ogg", "options": {"fade": 3.0}}]
    assert parse_fate("Inspector Harlow, escapes") == {"character": "Inspector Harlow", "outcome": "escapes"}


def test_media_cue_syntax():
    assert media_cue("image", '"the pier.jpg" fit=cover') == {"kind": "image", "src": "the pier.jpg",
                                                               "options": {"fit": "cover"}}
    assert media_cue("video", "a.mp4 loop=false start=12.5") == {"kind": "video", "src": "a.mp4",
                                                                  "options": {"loop": False, "start": 12.5}}
    assert media_cue("sfx", 'odd "quote')["src"] == "odd"
    assert media_cue("sfx", "door.wav @ 2.5") == {"kind": "sfx", "src": "door.wav", "options": {"at": 2.5}}
    assert media_cue("sfx", "door.wav @2.5s volume=0.3")["options"] == {"at": 2.5, "volume": 0.3}
    assert media_cue("sfx", "door.wav @ soon")["options"] == {}  # not a time: no start given
    assert media_cue("sfx", "door.wav @")["options"] == {} and media_cue("sfx", "@ 4")["src"] == ""
    assert media_cue("sfx", "door.wav@3s loop") == {"kind": "sfx", "src": "door.wav", "options": {"at": 3.0, "loop": True}}
    assert [(c["src"], c["options"]) for c in media_cues("audio", 'bed.ogg loop, "a, b.ogg" volume=0.5, ')] == [
        ("bed.ogg", {"loop": True}), ("a, b.ogg", {"volume": 0.5})]


# -- directives obey the decision ------------------------------------------------------------------

CALM = Scene("calm", "Calm", "Tea with Tomas.", 0.2, "calm", 30.0, "amber", ("Lena", "Tomas"), ("storm",))
STORM = Scene("storm", "The Storm", "Thunder over the studio.", 0.9, "frantic", 30.0, "black", ("Lena",), ())


def _overloaded(c: Controller, t: float = 1.0) -> None:
    c.state.update(Event("arousal.high", t, "viewer-1", 0.95))


def test_an_overloaded_viewer_gets_calm_directives_even_for_an_intense_scene():
    story = Story("s", "S", "calm", {"calm": CALM, "storm": STORM})
    c = Controller(story, policy=DirectorPolicy(), rewriter=None)
    rt = Runtime(VirtualClock(), [], [c], step=1.0)
    _overloaded(c)
    rt.run(duration=40.0)
    storm = c.decisions[-1]
    assert storm.scene == "storm" and c.policy.director.phase == "relax"
    assert storm.directives == {"pacing": "slow", "palette": "black", "music_intensity": 0.25, "stakes": "low"}


def test_a_director_that_knows_nothing_of_the_viewer_leaves_the_authored_intensity():
    """A film without sensors (or before the first reading) plays its scenes as written - not every scene
    'fast, music 0.8' because the director's first phase builds up; once the viewer is heard from, the
    director's target decides."""
    story = Story("s", "S", "calm", {"calm": CALM, "storm": STORM})
    blind = _play(story, duration=40.0, rewriter=None)
    assert [(p.scene, p.directives["music_intensity"]) for p in blind.decisions] == [("calm", 0.2), ("storm", 0.9)]
    c = Controller(story, policy=DirectorPolicy(), rewriter=None)
    c.state.engagement = {"arousal": 0.1, "confidence": 1.0}  # a calm, sure reading
    Runtime(VirtualClock(), [], [c], step=1.0).run(duration=40.0)
    assert [p.directives["music_intensity"] for p in c.decisions] == [0.8, 0.8]  # build_up: the target


def test_the_template_rewrite_follows_the_final_decision():
    story = Story("s", "S", "calm", {"calm": CALM, "storm": STORM})
    c = Controller(story, policy=DirectorPolicy(), rewriter=RewriteService(TemplateRewriter()))
    rt = Runtime(VirtualClock(), [], [c], step=1.0)
    rt.run(duration=10.0)  # the story starts before anything is known of the viewer: as authored
    _overloaded(c, 10.0)  # then the viewer is overloaded: relax
    rt.run(duration=30.0)
    start, storm = c.decisions[0], c.decisions[-1]
    assert start.text.startswith("[pacing slow, music 0.20, stakes low]") and start.directives["pacing"] == "slow"
    assert storm.rewritten_by == "template" and storm.text.startswith("[pacing slow, music 0.25, stakes low]")
    assert storm.directives["pacing"] == "slow"


class Recorder:
    """A background rewriter that writes for whatever directives it is asked (like an LLM would)."""

    background = True
    name = "llm:fake"

    def __init__(self) -> None:
        self.asked: list[dict] = []

    def rewrite(self, scene, context):
        self.asked.append(dict(context["directives"]))
        return Rewrite(scene.id, f"{scene.text} (written for {context['directives']['pacing']})",
                       dict(context["directives"]), self.name, True)


def _wait(service: RewriteService) -> None:
    deadline = time.monotonic() + 5
    while any(not j.done() for j in list(service._jobs.values()) if hasattr(j, "done")):
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_a_prepared_rewrite_written_for_another_target_is_not_used():
    story = Story("s", "S", "calm", {"calm": CALM, "storm": STORM})
    service = RewriteService(Recorder())
    c = Controller(story, policy=DirectorPolicy(), rewriter=service, on_plan=lambda p: _wait(service))
    rt = Runtime(VirtualClock(), [], [c], step=1.0)
    try:
        rt.run(duration=27.0)  # prepared for build_up (fast)
        _wait(service)
        _overloaded(c, 27.0)  # the director relaxes 3 s before the decision: too late to rewrite again
        rt.run(duration=10.0)
    finally:
        service.close()
    storm = c.decisions[-1]
    assert storm.scene == "storm" and storm.directives["pacing"] == "slow"
    assert not storm.rewritten and not storm.ai_generated and service.stale == 1


def test_a_prepared_rewrite_is_redone_when_the_target_changes_early_enough():
    story = Story("s", "S", "calm", {"calm": CALM, "storm": STORM})
    service = RewriteService(Recorder())
    c = Controller(story, policy=DirectorPolicy(), rewriter=service, on_plan=lambda p: _wait(service))
    rt = Runtime(VirtualClock(), [], [c], step=1.0)
    try:
        rt.run(duration=5.0)
        _wait(service)
        _overloaded(c, 5.0)  # 25 s before the decision: rewritten again for relax
        for _ in range(40):
            rt.run(duration=1.0)
            _wait(service)
    finally:
        service.close()
    storm = next(p for p in c.decisions if p.scene == "storm")
    assert storm.rewritten and storm.ai_generated and storm.text.endswith("(written for slow)")
    assert storm.directives["pacing"] == "slow" and {"pacing": "fast"}.items() <= service.rewriter.asked[0].items()


def test_a_cut_to_beat_gets_the_directives_of_the_moment():
    player = load_ink(sample_ink_path())
    service = RewriteService(TemplateRewriter())
    c = Controller(player, policy=DirectorPolicy(), rewriter=service)
    rt = Runtime(VirtualClock(), [], [c], step=1.0)
    c.state.update(Event("boredom.onset", 0.0, "viewer-1", 0.9))
    rt.run(duration=25.0)
    cut = next(p for p in c.decisions if p.evidence.get("rule") == "interrupt")
    assert cut.scene == "power_cut" and cut.directives["pacing"] == "fast"
    assert cut.text.startswith("[pacing fast, music 0.80, stakes high] The studio goes dark")


def test_an_llm_reply_that_contradicts_the_directives_is_refused():
    asked = {"pacing": "slow", "palette": "amber", "music_intensity": 0.25, "stakes": "low"}
    reply = {"text": "Tea with Tomas.", "cast": ["Lena", "Tomas"], "exits": [],
             "directives": {"pacing": "fast", "palette": "amber", "music_intensity": 0.8, "stakes": "high"}}
    problems = check_rewrite(reply, CALM, ("Lena", "Tomas"), (), {}, directives=asked)
    assert any("directives.pacing is 'fast' but the director asked for 'slow'" in p for p in problems)
    assert any("music_intensity is 0.8 but the director asked for 0.25" in p for p in problems)
    assert check_rewrite({**reply, "directives": asked}, CALM, ("Lena", "Tomas"), (), {}, directives=asked) == []


def test_plans_validate_for_every_packaged_story():
    import gc

    from engage.narrative.story import default_story_path, load_story

    gc.collect()
    threads = threading.active_count()
    for player in (load_ink(sample_ink_path()), load_story(default_story_path())):
        c = _play(player, [Event("boredom.onset", 50.0, "viewer-1", 0.9)], duration=900.0,
                  rewriter=RewriteService(TemplateRewriter()))
        assert len(c.decisions) >= 5
        for plan in c.decisions:
            _valid(plan)
    del c, player
    gc.collect()
    time.sleep(0.2)
    assert threading.active_count() <= threads  # the players' runtimes are gone with them


def test_the_dashboard_shows_the_real_upcoming_options_of_an_ink_story():
    """In live sessions the story is an ink player: the dashboard listed no option and called every
    scene an ending; now it shows the choices the controller has, and 'an ending' only at one."""
    from engage.dashboard.feed import DashboardFeed

    feed = DashboardFeed()
    player = load_ink(CLIFF)
    feed.on_story(player)
    c = _play(player, duration=1200.0, policy=Scripted("Take the coast road", "Push on", "Wait it out"))
    for plan in c.decisions:
        feed.on_plan(plan)
    plans = feed.snapshot()["plans"]
    first, shelter, home = plans[0], plans[-2], plans[-1]
    assert [u["title"] for u in first["upcoming"]] == ["Take the coast road", "Take the cliff road"]
    assert [u["intensity"] for u in first["upcoming"]] == [0.3, 0.7] and first["last"] is False
    assert shelter["scene"] == "shelter" and [u["title"] for u in shelter["upcoming"]] == ["home"]
    assert home["scene"] == "home" and home["upcoming"] == [] and home["last"] is True and home["ending"] == "home"
