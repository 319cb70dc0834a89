"""Tests of the narrative layer: story loading and validation, the sample story, scene plans and
the controller running inside a real Runtime on a virtual clock."""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import re

import jsonschema
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engage.core import ConfigError, Event, Processor, Runtime, StreamInfo, VirtualClock
from engage.core.stream import Chunk
from engage.narrative import (
    MAX_STORY_BYTES,
    Choice,
    Controller,
    RulePolicy,
    Scene,
    ScenePlan,
    ScenePlanWriter,
    Story,
    StoryError,
    ViewerState,
    default_story_path,
    directives_for,
    load_story,
    load_story_text,
    read_scene_plans,
    validate,
)
from engage.narrative import story as story_module
from engage.narrative.plan import plan_schema

# ----------------------------------------------------------------------------------------------
# helpers


def toml_value(v) -> str:
    """A tiny TOML emitter for the values the tests generate."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        out = []
        for ch in v:
            if ch in '"\\':
                out.append("\\" + ch)
            elif ord(ch) < 0x20 or ord(ch) == 0x7F:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        return '"' + "".join(out) + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_value(str(k))} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    raise TypeError(type(v))


def story_toml(head: dict, scenes: list[dict]) -> str:
    lines = ["[story]"] + [f"{k} = {toml_value(v)}" for k, v in head.items()]
    for s in scenes:
        lines.append("[[scene]]")
        lines += [f"{toml_value(k)} = {toml_value(v)}" for k, v in s.items()]
    return "\n".join(lines) + "\n"


def scene_dict(id, next, intensity=0.3, duration_s=60, title=None, **extra) -> dict:
    d = {"id": id, "title": title or id.title(), "text": f"Scene {id}.", "intensity": intensity,
         "tone": "calm", "duration_s": duration_s, "palette": "grey", "cast": ["Mara"],
         "next": next if isinstance(next, str) else list(next)}
    d.update(extra)
    return d


HEAD = {"id": "t", "title": "T", "start": "a"}


def two_ending_story() -> list[dict]:
    return [scene_dict("a", ["b", "c"]), scene_dict("b", []), scene_dict("c", [], intensity=0.9)]


def branching_story() -> Story:
    """A choice whose authored first option is neither the calmest nor the highest."""
    return load_story_text(story_toml(HEAD, [
        scene_dict("a", ["mid", "calm", "high"], intensity=0.4, duration_s=40, title="Start"),
        scene_dict("mid", [], intensity=0.5, title="Middle Way"),
        scene_dict("calm", [], intensity=0.1, title="Quiet Room"),
        scene_dict("high", [], intensity=0.9, title="The Chase"),
    ]))


class ScriptedEvents(Processor):
    """Publishes prepared events once the runtime's clock reaches their timestamps."""

    name = "scripted-events"

    def __init__(self, events: list[Event]) -> None:
        self.pending = sorted(events, key=lambda e: e.timestamp)

    def tick(self, now: float):
        while self.pending and self.pending[0].timestamp <= now:
            self.ctx.bus.publish(self.pending.pop(0))
        return []


def run(story: Story, events=(), duration=700.0, step=0.5, **kwargs):
    """Run a controller with scripted events; returns (controller, every bus event)."""
    controller = Controller(story, **kwargs)
    rt = Runtime(VirtualClock(), [], [ScriptedEvents(list(events)), controller], step=step)
    seen: list[Event] = []
    rt.bus.subscribe(seen.append)
    rt.run(duration=duration)
    return controller, seen


@pytest.fixture(scope="module")
def night_train() -> Story:
    return load_story(default_story_path())


# ----------------------------------------------------------------------------------------------
# the sample story


def test_sample_story_loads_and_is_valid(night_train):
    assert night_train.id == "night-train" and night_train.start == "platform"
    assert validate(night_train) == []
    assert len(night_train.scenes) >= 10
    assert len(night_train.endings()) >= 2
    for s in night_train.scenes.values():
        assert 40 <= s.duration_s <= 110, s.id
        assert 0 <= s.intensity <= 1 and s.tone and s.palette and s.cast, s.id
        sentences = re.findall(r"[.!?](?:\s|$)", s.text)
        assert 1 <= len(sentences) <= 3, (s.id, s.text)


def test_sample_story_choices_offer_calm_first_and_higher_stakes(night_train):
    choice_points = [s for s in night_train.scenes.values() if s.is_choice]
    assert len(choice_points) >= 3
    for s in choice_points:
        options = night_train.choices(s.id)
        intensities = [o.intensity for o in options]
        assert intensities[0] == min(intensities), s.id
        assert max(intensities) > intensities[0], s.id


def test_sample_story_authored_path_is_long_and_opens_quietly(night_train):
    path = night_train.authored_path()
    assert path[0].id == "platform" and path[-1].is_ending
    assert sum(s.duration_s for s in path) >= 600
    quiet = 0.0
    for s in path:
        if s.intensity > 0.35:
            break
        quiet += s.duration_s
    assert quiet >= 180


def test_story_api(night_train):
    assert [s.id for s in night_train.choices("compartment")] == ["dining_car", "corridor_shadow"]
    assert night_train.choices("dawn_arrival") == ()
    assert night_train.scene("letter").title == "The Letter"
    with pytest.raises(KeyError, match="night-train.*nowhere"):
        night_train.scene("nowhere")
    assert set(night_train.reachable()) == set(night_train.scenes)
    assert {s.id for s in night_train.endings()} == {"dawn_arrival", "border_post", "gorge_bridge"}
    assert night_train.scene("border_post").tags["ending"] == "surrender"


# ----------------------------------------------------------------------------------------------
# hostile and broken story files

def one_scene(**fields) -> str:
    """A one-scene story (an ending) with some fields replaced."""
    return story_toml(HEAD, [scene_dict("a", [], **fields)])


def without(key: str) -> str:
    return story_toml(HEAD, [{k: v for k, v in scene_dict("a", []).items() if k != key}])


def graph(*scenes) -> str:
    return story_toml(HEAD, [scene_dict(id, nxt) for id, nxt in scenes])


HEAD_ONLY = '[story]\nid = "t"\ntitle = "T"\nstart = "a"\n'

#: name → (file text, pattern its error message must match)
HOSTILE = {
    "not_toml": ('[story\nid = "t"\n', r"not valid TOML.*line 1"),
    "missing_target": (graph(("a", ["nowhere"])), r"scene 'a': next target 'nowhere' does not exist"),
    "missing_start": (story_toml({**HEAD, "start": "zz"}, [scene_dict("a", [])]), r"story.start 'zz' is not a scene"),
    "duplicate_id": (graph(("a", []), ("a", [])), r"scene #2: duplicate id 'a'"),
    "intensity_2": (one_scene(intensity=2), r"scene 'a': key 'intensity' must be within \[0, 1\], got 2"),
    "no_ending": (graph(("a", ["b"]), ("b", ["a"])), r"no ending reachable from start 'a'.*a → b → a"),
    "cycle_no_exit": (graph(("a", ["end", "b"]), ("end", []), ("b", ["c"]), ("c", ["b"])),
                      r"can never reach an ending: 'b', 'c'.*cycle with no exit: b → c → b"),
    "missing_key": (without("intensity"), r"scene 'a': missing key 'intensity'"),
    "missing_next": (without("next"), r"missing key 'next' \(use next = \[\] for an ending\)"),
    "unknown_key": (one_scene(intesity=0.2), r"unknown key 'intesity' \(did you mean 'intensity'\?\)"),
    "intensity_string": (one_scene(intensity="high"), r"key 'intensity' must be a number, got string"),
    "next_string": (story_toml(HEAD, [scene_dict("a", "b")]), r"key 'next' must be an array of strings, got string"),
    "cast_numbers": (one_scene(cast=[1, 2]), r"key 'cast\[0\]' must be a string, got integer"),
    "duration_date": (one_scene(duration_s=dt.date(1979, 5, 27)), r"key 'duration_s' must be a number, got date"),
    "duration_nan": (one_scene(duration_s=float("nan")), r"key 'duration_s' must be finite"),
    "interruptible_string": (one_scene(interruptible="yes"), r"'interruptible' must be a boolean"),
    "tags_array": (one_scene(tags=[1]), r"key 'tags' must be a table, got array"),
    "story_not_table": ('story = [1, 2]\n[[scene]]\nid = "a"\n', r"'story' must be a table, got array"),
    "scene_not_array": ('scene = "a"\n' + HEAD_ONLY, r"'scene' must be an array of tables"),
    "no_scenes": (HEAD_ONLY, r"no scenes"),
    "unknown_top": (one_scene() + "[extra]\nx = 1\n", r"top level: unknown key 'extra'"),
    "bad_id": (story_toml(HEAD, [scene_dict("a b", [])]), r"key 'id' is 'a b'"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_story_files_give_config_errors_naming_file_and_problem(tmp_path, name):
    text, pattern = HOSTILE[name]
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_story(path)
    message = str(info.value)
    assert message.startswith(str(path) + ": "), message
    assert re.search(pattern, message), message
    assert isinstance(info.value, StoryError) and info.value.problems


def test_several_problems_are_all_listed():
    text = story_toml(HEAD, [scene_dict("a", [], intensity=2), scene_dict("b", [], duration_s=-1)])
    with pytest.raises(StoryError) as info:
        load_story_text(text, source="two.toml")
    assert str(info.value).startswith("two.toml: 2 problems: ")
    assert "scene 'a'" in str(info.value) and "scene 'b'" in str(info.value)


def test_oversized_file_is_refused_before_parsing(tmp_path, monkeypatch):
    path = tmp_path / "huge.toml"
    path.write_bytes(b"# padding\n" * (6 * 1024 * 1024 // 10))

    def no_parse(*args, **kwargs):
        raise AssertionError("an oversized story must not be parsed")

    import engage.core.safeload as safeload

    monkeypatch.setattr(safeload.tomllib, "loads", no_parse)
    monkeypatch.setattr(safeload, "toml_shape", no_parse)
    with pytest.raises(ConfigError, match=r"huge\.toml: file is 6\.3 MB, over the 5 MB limit"):
        load_story(path)
    with pytest.raises(ConfigError, match="over the 5 MB limit"):
        load_story_text("#" * (MAX_STORY_BYTES + 1))


def test_missing_file_not_utf8_and_directory(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read story file"):
        load_story(tmp_path / "nope.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('[story]\ntitle = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.toml: not UTF-8 text \(invalid byte at offset 20\)"):
        load_story(bad)
    with pytest.raises(ConfigError, match="not a file"):
        load_story(tmp_path)


def test_unreachable_scene_loads_but_is_listed_by_validate():
    story = load_story_text(story_toml(HEAD, [scene_dict("a", []), scene_dict("orphan", [])]))
    assert validate(story) == ["scene 'orphan' is unreachable from start 'a'"]


def test_validate_checks_stories_built_in_code():
    bad = Scene("a", "A", "", 2.0, "calm", 0.0, "grey", (), ("zz",))
    problems = validate(Story("t", "T", "a", {"x": bad}))
    assert "story.start 'a' is not a scene" in problems
    assert "scene 'x': stored under 'x' but its id is 'a'" in problems
    assert any("intensity must be within [0, 1]" in p for p in problems)
    assert any("duration_s must be a positive number" in p for p in problems)
    assert "scene 'x': next target 'zz' does not exist" in problems


# property-based: parsing never fails with anything but a ConfigError, and valid stories round-trip

@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.text(max_size=300))
def test_arbitrary_text_gives_story_or_config_error(text):
    try:
        load_story_text(text)
    except ConfigError:
        pass


toml_values = st.recursive(
    st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
    | st.text(max_size=10) | st.dates() | st.datetimes(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text("abc", min_size=1, max_size=3), children,
                                                                      max_size=3),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(scene=st.sampled_from([0, 1, 2]),
       key=st.sampled_from(list(scene_dict("a", [])) + ["tags", "interruptible", "zzz"]), value=toml_values)
def test_any_value_in_any_key_gives_story_or_config_error(scene, key, value):
    scenes = two_ending_story()
    scenes[scene][key] = value
    try:
        story = load_story_text(story_toml(HEAD, scenes))
    except ConfigError as exc:
        assert str(exc).startswith("<string>: ")
    else:
        assert validate(story) in ([], [f"scene {s!r} is unreachable from start 'a'" for s in ("b",)],
                                   [f"scene {s!r} is unreachable from start 'a'" for s in ("c",)],
                                   [f"scene {s!r} is unreachable from start 'a'" for s in ("b", "c")])


@st.composite
def generated_stories(draw):
    n = draw(st.integers(1, 7))
    ids = [f"s{i}" for i in range(n)]
    scenes = []
    for i, sid in enumerate(ids):
        later = ids[i + 1:]
        nxt = draw(st.lists(st.sampled_from(later), unique=True, max_size=3)) if later else []
        scenes.append(Scene(
            id=sid, title=draw(st.text(min_size=1, max_size=12).filter(str.strip)), text=draw(st.text(max_size=40)),
            intensity=draw(st.floats(0, 1)), tone=draw(st.text(max_size=8)),
            duration_s=draw(st.floats(0.5, 1000)), palette=draw(st.text(max_size=8)),
            cast=tuple(draw(st.lists(st.text(max_size=6), max_size=3))), next=tuple(nxt),
            interruptible=draw(st.booleans()),
            tags=draw(st.dictionaries(st.sampled_from(["act", "motif", "beat"]),
                                      st.integers(0, 9) | st.text(max_size=5), max_size=2)),
        ))
    return Story("gen", "Generated", "s0", {s.id: s for s in scenes})


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(generated_stories())
def test_generated_stories_round_trip_through_toml(story):
    scenes = [{"id": s.id, "title": s.title, "text": s.text, "intensity": s.intensity, "tone": s.tone,
               "duration_s": s.duration_s, "palette": s.palette, "cast": list(s.cast), "next": list(s.next),
               "interruptible": s.interruptible, "tags": dict(s.tags)} for s in story.scenes.values()]
    loaded = load_story_text(story_toml({"id": story.id, "title": story.title, "start": story.start}, scenes))
    assert loaded == story
    assert all(p.endswith(f"unreachable from start {story.start!r}") for p in validate(loaded))


# ----------------------------------------------------------------------------------------------
# scene plans


def make_plan(**overrides) -> ScenePlan:
    values = dict(viewer="viewer-1", timestamp=12.3456789, episode=1, scene="a", title="A", text="Rain.",
                  duration_s=60.0, directives={"pacing": "slow"}, reason="story start",
                  evidence={"x": np.float64(0.123456), "bad": float("nan")}, probability=1.0, alternatives=("b",))
    values.update(overrides)
    return ScenePlan(**values)


def test_directives_follow_intensity():
    def d(x):
        return directives_for(Scene("s", "S", "", x, "calm", 60.0, "grey"))

    assert (d(0.1)["pacing"], d(0.1)["stakes"]) == ("slow", "low")
    assert (d(0.5)["pacing"], d(0.5)["stakes"]) == ("steady", "medium")
    assert (d(0.9)["pacing"], d(0.9)["stakes"]) == ("fast", "high")
    assert d(0.9)["music_intensity"] == 0.9 and d(0.9)["palette"] == "grey"


def test_scene_plan_json_is_stable_and_clean():
    line = make_plan().to_json()
    d = json.loads(line)
    assert list(d) == sorted(d) and " " not in line.replace("Rain.", "").replace("story start", "")
    assert d["timestamp"] == 12.345679 and d["evidence"] == {"x": 0.1235, "bad": None}
    assert d["alternatives"] == ["b"] and d["ai_generated"] is False and d["rewritten_by"] is None
    with pytest.raises(ValueError, match="probability"):
        make_plan(probability=1.5)
    with pytest.raises(ValueError, match="rewritten_by"):
        make_plan(rewritten_by="template")


def test_scene_plan_writer_writes_json_lines(tmp_path):
    path = tmp_path / "log" / "plans.jsonl"
    with ScenePlanWriter(path) as write:
        write(make_plan())
        write(make_plan(scene="b", rewritten=True, rewritten_by="template", ai_generated=True))
    with ScenePlanWriter(path) as write:  # appends, never overwrites a log by default
        write(make_plan(scene="c"))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["scene"] for x in lines] == ["a", "b", "c"]
    plans = read_scene_plans(path)
    assert plans[1].rewritten_by == "template" and plans[1].ai_generated
    with pytest.raises(ValueError, match="closed"):
        write(make_plan())
    buf = io.StringIO()
    writer = ScenePlanWriter(buf)
    writer(make_plan())
    writer.close()
    assert not buf.closed and buf.getvalue().endswith("\n")


def test_reading_a_corrupt_plan_log_names_the_line(tmp_path):
    path = tmp_path / "plans.jsonl"
    path.write_text(make_plan().to_json() + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(Exception, match=r"plans\.jsonl: line 3 is not a scene plan"):
        read_scene_plans(path)


# ----------------------------------------------------------------------------------------------
# the controller


def test_authored_path_plays_to_an_ending_and_starts_again(night_train):
    controller, seen = run(night_train, duration=700.0)
    authored = [s.id for s in night_train.authored_path()]
    played = [p.scene for p in controller.decisions]
    assert played[:len(authored)] == authored
    assert played[len(authored)] == "platform" and controller.decisions[len(authored)].episode == 2
    assert controller.current.id == "platform" and controller.episode == 2
    reasons = [p.reason for p in controller.decisions]
    assert reasons[0] == "story start: 'The Platform'"
    assert reasons[1] == "only way on: 'Compartment Nine' (intensity 0.25)"
    assert reasons[2] == "authored path: 'The Dining Car' (intensity 0.30)"
    assert reasons[len(authored)].startswith("story ended at 'Dawn at Vell' (episode 1)")
    # each scene starts once the previous one's duration has elapsed (0.5 s runtime steps)
    times = [p.timestamp for p in controller.decisions]
    for plan, nxt in zip(controller.decisions, times[1:]):
        assert plan.timestamp + plan.duration_s <= nxt < plan.timestamp + plan.duration_s + 0.5 + 1e-9
    starts = [e for e in seen if e.type == "scene.start"]
    assert [e.evidence["scene"] for e in starts] == played
    assert set(starts[1].evidence) == {"scene", "title", "intensity", "tone", "duration_s", "episode", "reason",
                                       "previous"}
    assert starts[1].evidence["previous"] == "platform" and starts[0].evidence["previous"] is None
    assert starts[0].source == "controller" and starts[0].viewer == "viewer-1"
    ends = [e for e in seen if e.type == "story.end"]
    assert len(ends) == 1 and ends[0].evidence["scene"] == "dawn_arrival"
    assert ends[0].evidence["scenes"] == len(authored)
    plan = controller.decisions[2]
    assert plan.directives == {"pacing": "slow", "palette": "candle-gold", "music_intensity": 0.3, "stakes": "low"}
    assert plan.alternatives == ("corridor_shadow",) and plan.probability == 1.0


def test_boredom_onset_raises_the_stakes(night_train):
    # compartment plays 75.5 .. 155.5 s; the viewer gets bored at 100 s (01:40 into the session, counted from the clock at start)
    controller, seen = run(night_train, [Event("boredom.onset", 100.0, "viewer-1", 0.9, {"boredom": 0.8}, "rules")],
                           duration=200.0)
    third = controller.decisions[2]
    assert third.scene == "corridor_shadow"
    assert third.reason == ("viewer bored (boredom.onset at 01:40, confidence 0.90): raising the stakes with "
                            "'A Shadow in the Corridor' (intensity 0.60) over 'The Dining Car' (0.30)")
    assert third.evidence["rule"] == "bored" and third.evidence["trigger"]["type"] == "boredom.onset"
    assert third.alternatives == ("dining_car",)
    start = [e for e in seen if e.type == "scene.start"][2]
    assert start.confidence == 0.9 and "boredom.onset" in start.evidence["reason"]


def test_rules_pick_highest_calmest_or_authored():
    story = branching_story()

    def after(events, **kwargs):
        controller, _ = run(story, events, duration=45.0, **kwargs)
        assert len(controller.decisions) == 2
        return controller.decisions[1]

    assert after([]).scene == "mid"
    assert after([Event("boredom.onset", 10.0, "viewer-1", 0.9)]).scene == "high"
    overloaded = after([Event("arousal.high", 10.0, "viewer-1", 0.8)])
    assert overloaded.scene == "calm"
    assert overloaded.reason == ("viewer overloaded (arousal.high at 00:10, confidence 0.80): letting them breathe "
                                 "with 'Quiet Room' (intensity 0.10) over 'Middle Way' (0.50) and 'The Chase' (0.90)")
    assert overloaded.alternatives == ("mid", "high")
    # boredom that has ended, or arousal back to low, is no longer acted on
    ended = [Event("boredom.onset", 10.0, "viewer-1", 0.9), Event("boredom.offset", 20.0, "viewer-1", 0.9)]
    assert after(ended).scene == "mid"
    calmed = [Event("arousal.high", 10.0, "viewer-1", 0.9), Event("arousal.low", 20.0, "viewer-1", 0.9)]
    assert after(calmed).scene == "mid"
    # both at once: boredom is checked first (documented)
    both = [Event("arousal.high", 5.0, "viewer-1", 0.9), Event("boredom.onset", 10.0, "viewer-1", 0.9)]
    assert after(both).scene == "high"
    # the threshold is the controller's
    assert after([Event("boredom.onset", 10.0, "viewer-1", 0.6)], min_confidence=0.7).scene == "mid"


def test_low_confidence_boredom_is_ignored_and_said_so():
    controller, _ = run(branching_story(), [Event("boredom.onset", 10.0, "viewer-1", 0.3)], duration=45.0)
    plan = controller.decisions[1]
    assert plan.scene == "mid"
    assert plan.reason == ("authored path: 'Middle Way' (intensity 0.50); boredom.onset at 00:10 ignored "
                           "(confidence 0.30 < 0.50)")
    assert plan.evidence["state"]["boredom"]["confidence"] == 0.3


def test_events_of_another_viewer_are_ignored():
    events = [Event("boredom.onset", 10.0, "viewer-2", 0.95), Event("arousal.high", 11.0, "viewer-2", 0.95)]
    controller, _ = run(branching_story(), events, duration=45.0)
    plan = controller.decisions[1]
    assert plan.scene == "mid" and plan.reason == "authored path: 'Middle Way' (intensity 0.50)"
    assert controller.state.boredom is None and controller.state.arousal is None
    # the same events for a controller of viewer-2 are acted on
    other, _ = run(branching_story(), events, duration=45.0, viewer="viewer-2")
    assert other.decisions[1].scene == "high" and other.decisions[1].viewer == "viewer-2"


def test_ties_go_to_the_option_written_first():
    story = load_story_text(story_toml(HEAD, [
        scene_dict("a", ["x", "y", "z"], duration_s=40), scene_dict("x", [], intensity=0.2),
        scene_dict("y", [], intensity=0.8), scene_dict("z", [], intensity=0.8)]))
    controller, _ = run(story, [Event("boredom.onset", 10.0, "viewer-1", 0.9)], duration=45.0)
    assert controller.decisions[1].scene == "y"


def test_engagement_stream_is_kept_as_evidence():
    info = StreamInfo("viewer-1-engagement", "Engagement", ("arousal", "boredom", "attention", "confidence", "quality"),
                      ("score",) * 5, 1.0, "eng-1")
    controller = Controller(branching_story())
    assert controller.accepts(info)
    assert not controller.accepts(StreamInfo("x", "Engagement", ("boredom",), ("score",), 1.0, "e2", viewer="viewer-2"))
    assert not controller.accepts(StreamInfo("x", "ECG", ("ecg",), ("mV",), 250.0, "e3"))

    class EngagementSource(Processor):
        def tick(self, now):
            return [Chunk.from_rows(info, [[0.2, 0.7, 0.9, 0.8, 1.0], [0.25, 0.75, float("nan"), 0.8, 0.9]],
                                    [now - 0.5, now])]

    rt = Runtime(VirtualClock(), [], [EngagementSource(), controller], step=1.0)
    rt.run(duration=45.0)
    assert controller.state.engagement["boredom"] == 0.75 and math.isnan(controller.state.engagement["attention"])
    evidence = json.loads(controller.decisions[1].to_json())["evidence"]["state"]
    assert evidence["engagement"] == {"arousal": 0.25, "boredom": 0.75, "attention": None, "confidence": 0.8,
                                      "quality": 0.9}


def test_plans_written_by_the_writer_are_valid_json_lines(night_train, tmp_path):
    path = tmp_path / "plans.jsonl"
    with ScenePlanWriter(path, append=False) as writer:
        controller, _ = run(night_train, [Event("boredom.onset", 100.0, "viewer-1", 0.9)], duration=700.0,
                            on_plan=[writer])
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(controller.decisions) >= 8
    for line, plan in zip(lines, controller.decisions):
        d = json.loads(line)
        assert d["scene"] == plan.scene and d["viewer"] == "viewer-1" and d["ai_generated"] is False
        jsonschema.validate(d, plan_schema())
        assert d["schema"] == "engage.scene-plan/1" and d["act"] in ("1", "2", "3")
        assert line == plan.to_json()
    assert [p.scene for p in read_scene_plans(path)] == [p.scene for p in controller.decisions]


def test_same_inputs_give_identical_output(night_train):
    events = [Event("boredom.onset", 100.0, "viewer-1", 0.9), Event("boredom.offset", 300.0, "viewer-1", 0.8),
              Event("arousal.high", 320.0, "viewer-1", 0.7), Event("attention.lost", 330.0, "viewer-1", 0.6)]

    def once() -> str:
        buf = io.StringIO()
        controller, seen = run(night_train, events, duration=1500.0, on_plan=[ScenePlanWriter(buf)])
        return buf.getvalue() + "\n".join(e.to_json() for e in seen)

    first = once()
    assert first == once()
    assert "viewer overloaded" in first and "viewer bored" in first


def test_long_sessions_keep_going(night_train):
    controller, seen = run(night_train, duration=3 * 3600.0, step=5.0)
    assert controller.episode >= 15
    assert sum(e.type == "story.end" for e in seen) == controller.episode - 1


def test_a_failing_callback_or_policy_does_not_stop_the_story(night_train, caplog):
    def broken(plan):
        raise RuntimeError("player crashed")

    class BadPolicy:
        def choose(self, current, options, state, now):
            return Choice(night_train.scene("gorge_bridge"), "nonsense", "bad")

    controller, _ = run(night_train, duration=700.0, on_plan=[broken], policy=BadPolicy())
    assert [p.scene for p in controller.decisions][:8] == [s.id for s in night_train.authored_path()]
    assert controller.plan_errors == len(controller.decisions)
    assert controller.policy_errors >= 1
    assert "policy failed (ValueError: chose 'gorge_bridge'" in controller.decisions[2].reason


def test_a_custom_policy_reports_its_probability(night_train):
    class Second:
        def choose(self, current, options, state, now):
            return Choice(options[1], "exploring", "explore", probability=0.25)

    controller, _ = run(night_train, duration=200.0, policy=Second())
    assert controller.decisions[2].scene == "corridor_shadow" and controller.decisions[2].probability == 0.25


def test_controller_refuses_bad_stories_and_options(night_train):
    with pytest.raises(ConfigError, match="story.start 'nowhere' is not a scene"):
        Controller(Story("t", "T", "nowhere", {}))
    with pytest.raises(ConfigError, match="min_confidence"):
        Controller(night_train, min_confidence=1.5)


def test_viewer_state_clock_and_updates():
    state = ViewerState("v1", session_start=10.0)
    assert state.clock(3733.0) == "1:02:03" and state.clock(5.0) == "-00:05"
    assert not state.update(Event("boredom.onset", 1.0, "v2", 0.9))
    assert state.update(Event("attention.lost", 20.0, "v1", 0.9))
    assert state.attention_lost(0.5) is not None
    state.update(Event("attention.regained", 30.0, "v1", 0.9))
    assert state.attention is None
    state.update(Event("boredom.onset", 40.0, "v1", float("nan")))
    assert state.bored(0.0) is None  # an unknown confidence is never acted on
    assert RulePolicy(0.5).choose(
        Scene("a", "A", "", 0.1, "c", 40.0, "p"),
        [Scene("b", "B", "", 0.1, "c", 40.0, "p"), Scene("c", "C", "", 0.9, "c", 40.0, "p")], state, 50.0,
    ).scene.id == "b"
