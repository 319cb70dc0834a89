"""Stories in ink (bink), YAML stories, `engage story check` on hostile files, The Intercept."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage.cli import main
from engage.narrative.ink import (
    INK_VERSIONS, NEXT, check_ink, check_ink_json, load_ink, parse_tags, sample_ink_path,
)
from engage.narrative.story import StoryError, load_story, open_story

STORIES = Path(__file__).resolve().parents[1] / "engage" / "narrative" / "stories"


def _walk_all(player, limit=200_000):
    """Every ending reachable by some sequence of choices (depth-first over saved states)."""
    endings, fates, scenes = set(), 0, set()
    stack = [[]]
    seen = 0
    while stack and seen < limit:
        path = stack.pop()
        seen += 1
        player.begin()
        scene = player.current
        for option in path:
            scene = player.follow(option)
        scenes.add(scene.id)
        options = player.options()
        if not options:
            endings.add(scene.id)
            continue
        fates += sum(bool(o.tags.get("fate_point")) for o in options)
        for o in options:
            stack.append(path + [o.id])
    return endings, fates, scenes


def test_sample_story_is_authored_in_ink_with_twenty_scenes_endings_and_fate_points():
    source = (STORIES / "last_broadcast.ink").read_text()
    assert source.count("\n=== ") >= 20
    player = load_ink(sample_ink_path())
    assert len(player.knots) >= 20
    endings, fates, scenes = _walk_all(player)
    assert endings == {"dawn", "silence", "last_song"}
    assert fates >= 2 and len(scenes) >= 20
    # Compiled JSON is the compiled form of the committed source.
    doc = json.loads(sample_ink_path().read_text(encoding="utf-8-sig"))
    assert INK_VERSIONS[0] <= doc["inkVersion"] <= INK_VERSIONS[1]
    assert set(player.knots) == {line.split()[1] for line in source.splitlines() if line.startswith("=== ")}


def test_scene_tags_are_read_without_playing_and_choices_carry_their_intensity():
    p = load_ink(sample_ink_path())
    first = p.begin()
    assert (first.id, first.intensity, first.tone, first.palette, first.duration_s) == ("studio", 0.2, "calm", "amber", 40.0)
    assert first.cast == ("Lena", "Tomas") and first.interruptible and first.tags["cut_to"] == "power_cut"
    opts = p.options()
    assert [o.intensity for o in opts] == [0.2, 0.5, 0.8]
    peeked = p.peek(opts[2].id)
    assert peeked.id == "red_line" and p.current.id == "studio"  # peeking commits to nothing
    assert p.follow(opts[2].id) == peeked


def test_story_state_lives_in_ink_variables():
    p = load_ink(sample_ink_path())
    p.begin()
    assert p.facts() == {"nadia_alive": True, "tomas_alive": True, "knows_code": False}
    p.cut_to("intruder")
    fight = next(o for o in p.options() if o.tags.get("fate_point"))
    assert p.follow(fight.id).id == "struggle"
    assert p.facts()["tomas_alive"] is False
    with pytest.raises(StoryError, match="not a knot"):
        p.cut_to("nowhere")


def test_a_scene_without_a_choice_runs_on_into_the_next_knot():
    p = load_ink(sample_ink_path())
    p.begin()
    p.cut_to("talk_down")
    (only,) = p.options()
    assert only.id == NEXT and only.title == "dawn"
    assert p.follow(NEXT).id == "dawn" and p.options() == ()


def test_parse_tags():
    assert parse_tags(["intensity: 0.8", "fate_point", "cast: A, B", "act: 2", "flag: false", "x: nan"]) == {
        "intensity": 0.8, "fate_point": True, "cast": "A, B", "act": 2.0, "flag": False, "x": "nan"}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=8))
def test_parse_tags_never_raises(tags):
    out = parse_tags(tags)
    assert all(isinstance(k, str) for k in out)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                 st.dictionaries(st.text(max_size=10), st.one_of(st.integers(), st.text(max_size=10), st.none()),
                                 max_size=5).map(lambda d: json.dumps(d).encode())))
def test_check_ink_json_raises_only_story_errors(raw):
    try:
        check_ink_json(raw)
    except StoryError as exc:
        assert str(exc).startswith("<ink>: ")


# -- hostile story files through `engage story check` ------------------------------------------

def _check(path, capsys):
    rc = main(["story", "check", str(path)])
    return rc, capsys.readouterr().out


def _toml_scene(i, nxt, text="x"):
    return (f'[[scene]]\nid = "{i}"\ntitle = "{i}"\ntext = "{text}"\nintensity = 0.5\nduration_s = 30\n'
            f"next = {json.dumps(nxt)}\n")


HEAD = '[story]\nid = "h"\ntitle = "Hostile"\nstart = "a"\n'


def test_check_cycle_with_no_exit(tmp_path, capsys):
    f = tmp_path / "cycle.toml"
    f.write_text(HEAD + _toml_scene("a", ["b"]) + _toml_scene("b", ["a"]))
    rc, out = _check(f, capsys)
    assert rc == 1 and "error: no ending reachable from start 'a'" in out and "a → b → a" in out


def test_check_missing_target(tmp_path, capsys):
    f = tmp_path / "missing.toml"
    f.write_text(HEAD + _toml_scene("a", ["ghost"]))
    rc, out = _check(f, capsys)
    assert rc == 1 and "next target 'ghost' does not exist" in out


def test_check_fifty_megabyte_scene(tmp_path, capsys):
    f = tmp_path / "huge.toml"
    with open(f, "w") as fh:
        fh.write(HEAD + '[[scene]]\nid = "a"\ntitle = "a"\ntext = "')
        block = "x" * (1 << 20)
        for _ in range(50):
            fh.write(block)
        fh.write('"\nintensity = 0.5\nduration_s = 30\nnext = []\n')
    rc, out = _check(f, capsys)
    assert rc == 1 and "over the 5 MB limit" in out and "refusing to parse it" in out
    g = tmp_path / "huge.ink.json"
    g.write_bytes(b'{"inkVersion": 21, "root": ["' + b"x" * (6 << 20) + b'"]}')
    rc, out = _check(g, capsys)
    assert rc == 1 and "limit for a story" in out


def test_check_yaml_with_custom_tags_executes_nothing(tmp_path, capsys):
    marker = tmp_path / "pwned"
    for i, tag in enumerate(["!!python/object/apply:os.system", "!!python/object/new:subprocess.Popen"]):
        f = tmp_path / f"evil{i}.yaml"
        f.write_text(f"story: {tag} [[\"touch\", \"{marker}\"]]\nscene: []\n")
        rc, out = _check(f, capsys)
        assert rc == 1 and "YAML tag" in out and "is not allowed" in out
    f = tmp_path / "custom.yml"
    f.write_text("story: !include secrets.yaml\n")
    rc, out = _check(f, capsys)
    assert rc == 1 and "'!include' is not allowed" in out
    assert not marker.exists()


def test_plain_yaml_stories_load_like_toml(tmp_path, capsys):
    f = tmp_path / "tiny.yaml"
    f.write_text("story: {id: tiny, title: Tiny, start: a}\nscene:\n"
                 "  - {id: a, title: A, text: Go, intensity: 0.2, duration_s: 30, next: [b]}\n"
                 "  - {id: b, title: B, text: End, intensity: 0.7, duration_s: 30, next: []}\n")
    story = load_story(f)
    assert [s.id for s in story.endings()] == ["b"]
    rc, out = _check(f, capsys)
    assert rc == 0 and "ok" in out
    f.write_text("story: {id: tiny, title: Tiny, start: a}\nscene: [{id: a, title: A, text: x, intensity: 2, "
                 "duration_s: 30, next: []}]\n")
    rc, out = _check(f, capsys)
    assert rc == 1 and "intensity' must be within [0, 1]" in out


@pytest.mark.parametrize("version, words", [(10, "recompile it"), (17, "recompile it"), (22, "upgrade")])
def test_check_wrong_ink_version(tmp_path, capsys, version, words):
    doc = json.loads(sample_ink_path().read_text(encoding="utf-8-sig"))
    doc["inkVersion"] = version
    f = tmp_path / "old.ink.json"
    f.write_text(json.dumps(doc))
    rc, out = _check(f, capsys)
    assert rc == 1 and f"ink version {version} is not supported" in out and words in out


def test_check_other_broken_ink(tmp_path, capsys):
    cases = {"notjson.ink.json": "not compiled ink JSON", "noversion.ink.json": "no integer 'inkVersion'",
             "noroot.ink.json": "no 'root' container"}
    (tmp_path / "notjson.ink.json").write_text("{nope")
    (tmp_path / "noversion.ink.json").write_text('{"root": []}')
    (tmp_path / "noroot.ink.json").write_text('{"inkVersion": 21}')
    for name, words in cases.items():
        rc, out = _check(tmp_path / name, capsys)
        assert rc == 1 and words in out, out
    src = tmp_path / "story.ink"
    src.write_text("Hello\n-> END\n")
    with pytest.raises(StoryError, match="compile it to JSON first"):
        open_story(src)


def test_check_good_stories(capsys):
    for f in (sample_ink_path(), STORIES / "night_train.toml"):
        rc, out = _check(f, capsys)
        assert rc == 0 and out.strip().endswith("ok (0 warnings)")
    assert check_ink(sample_ink_path()) == ([], [])


# -- The Intercept (inkle), the real ink story of the shared data ------------------------------

@pytest.mark.realdata
def test_the_intercept_plays_to_an_ending_for_twenty_seeds(shared_data):
    path = shared_data / "ink_the_intercept" / "TheIntercept.ink.json"
    player = load_ink(path)
    endings = set()
    for seed in range(20):
        rng = random.Random(seed)
        scene = player.begin()
        for _ in range(1000):
            options = player.options()
            if not options:
                break
            scene = player.follow(rng.choice(options).id)
        else:
            pytest.fail(f"seed {seed}: no ending within 1000 scenes")
        endings.add(scene.text[-60:])
        assert scene.text
    assert check_ink(path) == ([], [])
    assert len(endings) >= 1


@pytest.mark.realdata
def test_the_intercept_is_played_by_the_director_to_an_ending_for_twenty_seeds(shared_data):
    from engage.core import Runtime, VirtualClock
    from engage.narrative.controller import Controller
    from engage.narrative.policy import DirectorPolicy

    path = shared_data / "ink_the_intercept" / "TheIntercept.ink.json"
    paths = set()
    for seed in range(20):
        c = Controller(load_ink(path), policy=DirectorPolicy(seed=seed), stop_at_end=True)
        Runtime(VirtualClock(), [], [c], step=1.0).run(duration=4 * 3600.0)
        assert c.finished and c.policy_errors == 0 and c.plan_errors == 0
        assert any("options carry no intensity" in p.reason for p in c.decisions)
        paths.add(tuple(p.scene for p in c.decisions))
    assert len(paths) > 1  # untagged choices are explored, not always the first


LOOP_TEXT = ('{"inkVersion":21,"root":[["^Start","\\n",{"->":"a"},["done",{"#n":"g-0"}],null],"done",'
             '{"a":["^Loop","\\n",{"->":"a"},null]}],"listDefs":{}}')
LOOP_SILENT = ('{"inkVersion":21,"root":[[{"->":"a"},["done",{"#n":"g-0"}],null],"done",'
               '{"a":[{"->":"b"},null],"b":[{"->":"a"},null]}],"listDefs":{}}')


@pytest.mark.timeout(60)
def test_check_ink_loops_with_no_exit_end_with_an_error_not_a_hang(tmp_path, capsys):
    # Compiled with inkjs from "Start / -> a / === a === / Loop / -> a" and "-> a / === a === / -> b / === b === / -> a".
    (tmp_path / "loop.ink.json").write_text(LOOP_TEXT)
    (tmp_path / "silent.ink.json").write_text(LOOP_SILENT)
    rc, out = _check(tmp_path / "loop.ink.json", capsys)
    assert rc == 1 and "lines without a choice (a loop?)" in out
    t = __import__("time").monotonic()
    rc, out = _check(tmp_path / "silent.ink.json", capsys)
    assert rc == 1 and "endless loop of diverts" in out
    assert __import__("time").monotonic() - t < 30


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_yaml_loader_raises_only_story_errors(text):
    from engage.narrative.story import load_story_yaml_text

    try:
        load_story_yaml_text(text)
    except StoryError:
        pass


# -- ink as writers use it ---------------------------------------------------------------------

TEST_STORIES = Path(__file__).parent / "stories"


def test_the_test_stories_are_the_compiled_form_of_their_sources():
    for name in ("cliff_road", "bored_loop"):
        source = (TEST_STORIES / f"{name}.ink").read_text()
        player = load_ink(TEST_STORIES / f"{name}.ink.json")
        knots = {line.split()[1] for line in source.splitlines() if line.startswith("=== ") and "function" not in line}
        assert set(player.knots) == knots
        player.close()


def test_external_functions_with_an_ink_fallback_run():
    player = load_ink(TEST_STORIES / "cliff_road.ink.json")  # EXTERNAL flash_lights, with a fallback
    player.begin()
    coast = player.follow("c0")
    assert coast.id == "coast_road" and "Jonah hums along to the radio." in coast.text
    assert check_ink(TEST_STORIES / "cliff_road.ink.json")[0] == []


def test_an_external_function_without_a_fallback_is_a_clear_error(tmp_path):
    doc = json.loads((TEST_STORIES / "cliff_road.ink.json").read_text(encoding="utf-8-sig"))
    del doc["root"][-1]["flash_lights"]
    f = tmp_path / "nofallback.ink.json"
    f.write_text(json.dumps(doc))
    with pytest.raises(StoryError, match="EXTERNAL function 'flash_lights' without an ink fallback"):
        load_ink(f)


def test_knots_with_identical_tags_get_their_own_scene_ids():
    # lookout and shelter are written with the very same tags
    player = load_ink(TEST_STORIES / "cliff_road.ink.json")
    player.begin()
    player.follow("c0")  # coast road
    assert player.follow("c1").id == "lookout"  # push on
    shelter = player.follow("c0")  # wait it out
    assert shelter.id == "shelter" and shelter.text.startswith("They shelter in a bus stop")
    assert player.follow(NEXT).id == "home"


def _bored_session(story, overlay=None, minutes=5.0):
    from engage.core import Event, Runtime, VirtualClock
    from engage.narrative.controller import Controller
    from engage.narrative.policy import DirectorPolicy

    c = Controller(load_ink(story, overlay=overlay), policy=DirectorPolicy())
    c.state.update(Event("boredom.onset", 0.0, "viewer-1", 0.95))  # bored all along
    Runtime(VirtualClock(), [], [c], step=1.0).run(duration=minutes * 60)
    return [p for p in c.decisions if p.evidence.get("rule") == "interrupt"]


def test_a_bored_viewer_is_cut_to_a_beat_once_per_playthrough(tmp_path):
    cuts = _bored_session(TEST_STORIES / "bored_loop.ink.json")
    assert [p.scene for p in cuts] == ["alarm"]
    overlay = tmp_path / "repeat.toml"
    overlay.write_text("[knot.alarm]\nrepeatable = true\n")
    again = _bored_session(TEST_STORIES / "bored_loop.ink.json", overlay=overlay)
    assert len(again) > 1 and {p.scene for p in again} == {"alarm"}


def test_story_check_warns_where_a_bored_viewer_could_loop(capsys):
    rc, out = _check(TEST_STORIES / "bored_loop.ink.json", capsys)
    assert rc == 0 and "warning: knot 'lounge': a bored viewer is cut to 'alarm', which leads back here" in out
    assert "lounge ⇢ alarm → lounge" in out
    rc, out = _check(sample_ink_path(), capsys)
    assert rc == 0 and "bored viewer" not in out


def test_overlays_add_tags_by_knot_name_and_refuse_what_does_not_fit(tmp_path, capsys):
    overlay = tmp_path / "tags.toml"
    overlay.write_text('[story]\ncast = ["Old Tom"]\n[knot.alarm]\nintensity = 0.7\nsfx = ["bell.wav", "siren.wav"]\n'
                       'speaker = "Tannoy"\n')
    player = load_ink(TEST_STORIES / "bored_loop.ink.json", overlay=overlay)
    alarm = player.cut_to("alarm")
    assert alarm.intensity == 0.7 and alarm.tags["sfx"] == ("bell.wav", "siren.wav") and alarm.tags["speaker"] == "Tannoy"
    assert "Old Tom" in player.cast
    for text, words in [('[knot.alram]\nintensity = 0.5\n', "no knot or stitch 'alram' (did you mean 'alarm'?)"),
                        ('[knot.alarm]\nintensity = 2\n', "intensity must be a number within [0, 1]"),
                        ('[knot.lounge]\ncut_to = "nowhere"\n', "cut_to 'nowhere' is not a knot"),
                        ('[knot.alarm]\nspeaker = {a = 1}\n', "must be a string, number, boolean"),
                        ('[scene.alarm]\n', "unknown table [scene]"),
                        ('[knot.alarm\n', "not valid TOML"),
                        ("k" + ".k" * 500 + " = 1\n", "dotted parts")]:
        overlay.write_text(text)
        with pytest.raises(StoryError, match=re.escape(words)):
            load_ink(TEST_STORIES / "bored_loop.ink.json", overlay=overlay)
    rc, out = _check(TEST_STORIES / "bored_loop.ink.json", capsys)
    assert rc == 0
    assert main(["story", "check", str(TEST_STORIES / "bored_loop.ink.json"), "--overlay", str(overlay)]) == 1
    with pytest.raises(StoryError, match="an overlay adds tags to the knots of a compiled ink story"):
        open_story(STORIES / "night_train.toml", overlay=overlay)


# -- hostile compiled ink: only StoryErrors, within the runtime's budget ---------------------------

@pytest.mark.timeout(300)
@settings(max_examples=15, deadline=None, database=None, derandomize=True)
@given(st.binary(min_size=1, max_size=16))
def test_structurally_mutated_ink_gives_only_story_errors(tmp_path_factory, key):
    """Valid JSON, nonsense ink (diverts to nowhere, functions calling themselves, stray operators):
    the runtime's own errors become StoryErrors. benchmarks/fuzz.py runs this target by the thousand."""
    from support.fuzz_targets import TARGETS

    try:
        TARGETS["ink-structure"].run(key, tmp_path_factory.mktemp("ink"))
    except StoryError:
        pass


def _peak_of_children_mb(code: str, tmp_path: Path) -> tuple[float, str]:
    """Run ``code`` in a fresh Python; the largest resident size any process it started reached (MB), and
    what it printed. A fresh process, because a test process's own children's peak is that of all of them."""
    import os
    import subprocess
    import sys

    wrapped = code + "\nimport resource\nprint('peak', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    path = os.pathsep.join(p for p in (str(Path(__file__).parents[1]), str(Path(__file__).parent),
                                       os.environ.get("PYTHONPATH", "")) if p)
    r = subprocess.run([sys.executable, "-c", wrapped], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": path})
    assert r.returncode == 0, r.stderr[-2000:]
    return int(r.stdout.split("peak")[-1]) / 1024, r.stdout


def test_a_function_that_calls_itself_is_stopped_by_the_memory_budget(tmp_path):
    """The issue's {"f()": …}: the call stack grows without end (3 GB in story check before); the worker
    is stopped by its memory budget within the 0.5 GB a case may take."""
    doc = json.loads(sample_ink_path().read_text(encoding="utf-8-sig"))
    doc["root"][-1]["studio"].insert(0, {"f()": "studio"})
    (tmp_path / "fbomb.ink.json").write_text(json.dumps(doc))
    peak, out = _peak_of_children_mb(
        "import time; from engage.narrative.ink import check_ink\n"
        "t = time.monotonic(); errors, _ = check_ink('fbomb.ink.json')\n"
        "print(errors, time.monotonic() - t)", tmp_path)
    errors_line = out.splitlines()[0]
    assert any(w in errors_line for w in ("memory", "endless loop", "no line within")), out
    assert float(errors_line.rsplit(" ", 1)[1]) < 30
    assert peak < 500, f"the ink worker grew to {peak:.0f} MB"


def test_a_story_that_allocates_without_end_stays_within_half_a_gigabyte(tmp_path):
    """A structural mutation the long fuzz run found (case 1433 of ink-structure): the runtime allocates
    until its budget stops it; with the old 768-MB budget that took the worker to 800 MB and over 5 s."""
    peak, out = _peak_of_children_mb(
        "from pathlib import Path\n"
        "from support.fuzz_targets import TARGETS\n"
        "from engage.narrative.story import StoryError\n"
        "try:\n    TARGETS['ink-structure'].run(b'2\\x850\\x02+e', Path('.'))\n"
        "except StoryError as exc:\n    print('refused', exc)\n", tmp_path)
    assert "refused" in out and "memory" in out, out
    assert peak < 500, f"the ink worker grew to {peak:.0f} MB"


@pytest.mark.realdata
def test_a_story_at_the_size_limit_plays_within_the_default_memory_budget(tmp_path, shared_data):
    """The budget is not so tight that a real story cannot load: The Intercept's knots copied until the
    file is near the 5 MB limit a story may have (about 160 MB in the worker)."""
    import copy

    from engage.narrative.story import MAX_STORY_BYTES

    doc = json.loads((shared_data / "ink_the_intercept" / "TheIntercept.ink.json").read_text(encoding="utf-8-sig"))
    named = doc["root"][-1]
    knots = {k: v for k, v in named.items() if k not in ("#f", "global decl")}
    for i in range(1, 100):
        for k, v in knots.items():
            named[f"{k}_{i}"] = copy.deepcopy(v)
        if len(json.dumps(doc)) > MAX_STORY_BYTES * 0.9:
            break
    f = tmp_path / "big.ink.json"
    f.write_text(json.dumps(doc))
    assert f.stat().st_size > MAX_STORY_BYTES * 0.9
    with load_ink(f) as player:
        assert player.begin().id == "start"


def test_huge_lists_are_refused_before_the_runtime_sees_them(tmp_path):
    """The issue's 1.5 MB list definition (the runtime aborted at >= 7.9 GB): refused by size, by name."""
    doc = json.loads(sample_ink_path().read_text(encoding="utf-8-sig"))
    doc["listDefs"] = {"crowd": {f"person{i}": i for i in range(1, 60_000)}}
    f = tmp_path / "biglist.ink.json"
    f.write_text(json.dumps(doc))
    assert f.stat().st_size > 1_000_000
    with pytest.raises(StoryError, match="list 'crowd' defines 59999 items; at most 1000"):
        load_ink(f)
    doc["listDefs"] = {"crowd": {f"person{i}": i for i in range(1, 900)}}
    doc["root"][-1]["global decl"][:0] = ["ev", {"list": {f"crowd.person{i}": i for i in range(1, 1500)}}, "/ev",
                                          {"VAR=": "everyone"}]
    f.write_text(json.dumps(doc))
    with pytest.raises(StoryError, match="a list value of 1499 items"):
        load_ink(f)


def test_a_runtime_left_in_the_middle_of_a_continue_is_never_used_again(tmp_path):
    """A line that runs out of its time budget leaves bink mid-continue; the next call must not raise
    the runtime's 'in the middle of a continue' but work on a fresh runtime (or say why not)."""
    (tmp_path / "silent.ink.json").write_text(LOOP_SILENT)
    player = load_ink(tmp_path / "silent.ink.json")
    for _ in range(2):
        with pytest.raises(StoryError, match="endless loop of diverts"):
            player.begin()
    player.close()
    ok = load_ink(sample_ink_path(), sandbox=False)
    ok._run.runner._story.continue_async(0.0001)  # stop a continue halfway, as a time budget does
    assert ok.begin().id == "studio"


# -- TOML and YAML measured before they are parsed -----------------------------------------------

DEEP_KEYS = "k" + ".k" * 100_000 + " = 1\n"  # 200 kB of dotted keys: 23 GB in tomllib before


def _bounded(args, tmp_path, memory_mb=1024, timeout=60):
    """Run the engage CLI with an address-space limit: a parser that eats memory fails, it cannot hang the box."""
    import subprocess
    import sys

    limit = memory_mb * 1024 * 1024
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (%d, %d)); "
            "from engage.cli import main; sys.exit(main(sys.argv[1:]))" % (limit, limit))
    return subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout)


def test_a_story_of_deeply_dotted_keys_is_refused_before_the_parser_sees_it(tmp_path):
    f = tmp_path / "deep.toml"
    f.write_text(DEEP_KEYS)
    r = _bounded(["story", "check", str(f)], tmp_path)
    assert r.returncode == 1 and "a key or table name of 100001 dotted parts (line 1); at most 32" in r.stdout
    g = tmp_path / "nested.toml"
    g.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    r = _bounded(["story", "check", str(g)], tmp_path)
    assert r.returncode == 1 and "nested 5000 deep" in r.stdout


def test_a_profile_of_deeply_dotted_keys_is_refused_the_same_way(tmp_path):
    (tmp_path / "deep.toml").write_text('[sensor.v]\nkind = "simulated"\n' + DEEP_KEYS)
    r = _bounded(["live", "--profile", "deep.toml", "--duration", "1"], tmp_path)
    assert r.returncode == 2 and "deep.toml: a key or table name of 100001 dotted parts" in r.stderr


@pytest.mark.parametrize("text, words", [
    ("story: {id: x, title: T, start: " + "9" * 5000 + "}\nscene: []\n", "a number of 5000 digits"),
    ("a: &a [1]\n" + "".join(f"b{i}: [*a, *a]\n" for i in range(200)), "too many aliases"),
    ("x: " + "[" * 100 + "]" * 100 + "\n", "nested too deep"),
])
def test_yaml_stories_are_measured_before_they_are_built(tmp_path, capsys, text, words):
    f = tmp_path / "story.yaml"
    f.write_text(text)
    rc, out = _check(f, capsys)
    assert rc == 1 and words in out


# -- The Intercept, adapted without editing it --------------------------------------------------

@pytest.mark.realdata
def test_the_shipped_overlay_makes_the_intercept_adapt(shared_data, capsys):
    from engage.narrative.evaluation import compare, format_table

    path = shared_data / "ink_the_intercept" / "TheIntercept.ink.json"
    assert check_ink(path, overlay="intercept") == ([], [])
    player = load_ink(path, overlay="intercept")
    first = player.begin()
    assert first.id == "start" and first.intensity == 0.15 and first.interruptible
    assert first.tags["cut_to"] == "harris_demands_component" and "Harris" in player.cast
    results = compare(path, viewers=3, overlay="intercept", horizon_s=600.0)
    director, fixed = results["director"], results["fixed"]
    assert sum(r["plot_changes"] for r in director) > 0 and all(r["plot_changes"] == 0 for r in fixed)
    assert [r["bored_frac"] for r in director] != [r["bored_frac"] for r in fixed]
    table = format_table(results, "director")
    assert "paired 95 % CI" in table and "target arousal band" in table
