"""The player in real headless Chromium: clips, cuts and crossfades, the viewer's choice, the end card and the
loop, a server restart, missing and damaged media, autoplay blocked, a phone.

Debian's ``chromium`` through the ``playwright`` package (no browser download). The media are made in the
test with ffmpeg: clips of one solid colour whose bottom strip counts frames in binary
(:func:`engage.media.synth.colour_clip`), so the page's pixels tell which clip is on screen and that it
moves. A short TOML story names them in its scenes' tags; a session runs on a virtual clock paced at real
time, its plans going to a :class:`DashboardServer` the page is connected to.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from engage.cli.live import pacer
from engage.core import VirtualClock
from engage.media import MediaLibrary
from engage.narrative.story import load_story_text
from engage.session import Session
from support.player import (ARGS, AUTOPLAY, CHROMIUM, PICTURE, WATCH_LAYERS, close_to, have_browser_and_ffmpeg,
                            make_test_media, picture_is)
from support.player import keep as _keep

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
pytest.importorskip("fastapi", reason="the dashboard needs fastapi")
pytestmark = pytest.mark.skipif(not have_browser_and_ffmpeg()[0], reason=have_browser_and_ffmpeg()[1])

from engage.dashboard import DashboardServer  # noqa: E402

STORY = """
[story]
id = "test-film"
title = "The Test Film"
start = "a"

[[scene]]
id = "a"
title = "The Red Room"
text = "Everything is red. The clock ticks."
intensity = 0.2
tone = "calm"
duration_s = 5
palette = "crimson"
next = ["b"]
tags = { video = "red.webm", audio = "bed.ogg", transition = "cut" }

[[scene]]
id = "b"
title = "The Green Room"
text = "Two doors: one blue, one yellow. Which one will you take?"
intensity = 0.5
tone = "uneasy"
duration_s = 8
palette = "green"
next = ["c", "d"]
tags = { video = "green.webm", sfx = "ping.ogg @ 1", transition = "crossfade 2" }

[[scene]]
id = "c"
title = "The Blue Door"
text = "Cold light."
intensity = 0.3
tone = "calm"
duration_s = 4
palette = "blue"
next = []
tags = { video = "blue.webm", transition = "cut" }

[[scene]]
id = "d"
title = "The Yellow Door"
text = "Warm light, and the end."
intensity = 0.8
tone = "tense"
duration_s = 4
palette = "gold"
next = []
tags = { video = "yellow.webm", audio = "bed.ogg", transition = "cut" }
"""

@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    return make_test_media(tmp_path_factory.mktemp("player-media"))


def keep(page, name: str) -> None:
    _keep(page, "browser", name)


class Film:
    """A story and its media served to a page; a session on a paced virtual clock in a thread."""

    def __init__(self, story_text: str, media: Path, tmp: Path, restart_after_s: float = 0.0, seconds: float = 60.0,
                 choice_window_s: float = 5.0, port: int = 0, extra=()) -> None:
        self.story = load_story_text(story_text)
        self.server = DashboardServer(port=port, story=self.story, media=MediaLibrary(media),
                                      choice_window_s=choice_window_s).start()
        self.session = Session([], VirtualClock(0.0), story=self.story, observers=[self.server.observer],
                               scenes_out=tmp / "scenes.jsonl", extra_processors=list(extra))
        if restart_after_s:
            self.session.controller.restart_after_s = restart_after_s
        else:
            self.session.controller.stop_at_end = True
            self.session.controller.on_end = self.session.runtime.stop
        self.thread = threading.Thread(target=self.session.run, kwargs={"duration": seconds, "on_step": pacer(1.0)},
                                       daemon=True)
        self.log = tmp / "scenes.jsonl"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.session.runtime.stop()
        if self.thread.is_alive():
            self.thread.join(timeout=30)
        self.server.stop()

    def decisions(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []


@pytest.fixture(scope="module")
def playwright():
    with sync_api.sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def chromium(playwright):
    """One Chromium for the module (each test has its own context), sound allowed to start by itself."""
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS + AUTOPLAY)
    yield b
    b.close()


def context(b, **options):
    return b.new_context(**({"viewport": {"width": 960, "height": 540}} | options))


def watch_errors(page, errors: list[str]) -> None:
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "favicon" not in m.text else None)


def wait_scene(page, scene: str, timeout: float = 20_000) -> None:
    page.wait_for_function(f"() => document.getElementById('stage').dataset.scene === {scene!r}", timeout=timeout)


def test_each_plan_plays_its_clip_cut_or_crossfaded_then_the_choice_end_card_and_loop(chromium, media, tmp_path):
    film = Film(STORY, media, tmp_path, restart_after_s=5.0, seconds=45.0)
    errors: list[str] = []
    try:
        ctx = context(chromium)
        page = ctx.new_page()
        watch_errors(page, errors)
        page.goto(film.server.player_url + "?endcard=2")
        page.wait_for_function("() => document.getElementById('conn').textContent === 'live'", timeout=15_000)
        assert page.is_visible("#idle") and page.text_content("#kicker") == "waiting for the story to begin…"
        film.start()

        # scene a: the red clip, moving; its headline as a lower third; no directive labels anywhere
        wait_scene(page, "a")
        page.wait_for_function(picture_is("/media/red.webm", 4), timeout=10_000)
        first = page.evaluate(PICTURE)
        assert first["url"] == "/media/red.webm" and close_to(first["rgb"], "red"), first
        page.wait_for_timeout(400)
        later = page.evaluate(PICTURE)
        assert later["frame"] != first["frame"] and not later["paused"]
        page.wait_for_function("() => document.getElementById('lower-third').classList.contains('on')", timeout=5_000)
        assert page.inner_text("#lower-title") == "The Red Room"
        visible = page.inner_text("body")
        for label in ("slow", "stakes", "pacing", "music intensity", "crimson"):
            assert label not in visible.lower(), label
        assert page.is_hidden("#overlay")
        page.keyboard.press("o")  # the operator's overlay: the directives are there
        assert "music intensity" in page.inner_text("#overlay") and "pacing" in page.inner_text("#overlay")
        page.keyboard.press("o")
        assert page.evaluate("EngagePlayer.mix()")["key"] == "/media/bed.ogg"  # the scene's bed plays
        keep(page, "player-test-1-red.png")

        # scene b: a 2 s crossfade - the green clip fades in over the red one, which stays at full opacity
        wait_scene(page, "b")
        fade = page.evaluate(WATCH_LAYERS, 1500)
        mid = [r for r in fade if 0.1 < r.get("/media/green.webm", 0) < 0.9]
        assert len(mid) >= 3, fade[:5]
        assert all(r.get("/media/red.webm") == 1 for r in mid)  # no dip to black under a crossfade
        page.wait_for_timeout(800)
        pic = page.evaluate(PICTURE)
        assert pic["url"] == "/media/green.webm" and close_to(pic["rgb"], "green") and pic["layers"] == 1, pic
        keep(page, "player-test-2-crossfade-done.png")

        # the choice, for the last 5 s of b: the viewer presses 2 (the yellow door)
        page.wait_for_selector("#choice:not([hidden])", timeout=12_000)
        labels = page.locator("#choice-options button .label").all_inner_texts()
        assert labels == ["The Blue Door", "The Yellow Door"], labels
        assert page.locator("#choice-options kbd").all_inner_texts() == ["1", "2"]
        keep(page, "player-test-3-choice.png")
        page.keyboard.press("2")
        page.wait_for_selector("#choice.decided button.chosen", timeout=3_000)
        assert page.inner_text("#choice button.chosen .label") == "The Yellow Door"

        # scene d, by a hard cut: the yellow clip at full opacity from its first frame, the green gone at once
        wait_scene(page, "d")
        cut = page.evaluate(WATCH_LAYERS, 600)
        assert not [r for r in cut if 0.05 < r.get("/media/yellow.webm", 0) < 0.95], cut[:5]
        page.wait_for_timeout(300)
        pic = page.evaluate(PICTURE)
        assert pic["url"] == "/media/yellow.webm" and close_to(pic["rgb"], "yellow") and pic["layers"] == 1, pic

        # d is an ending: the end card, then the idle screen, then the film again (episode 2)
        page.wait_for_selector("#endcard:not([hidden])", timeout=10_000)
        assert page.text_content("#end-title") == "The Test Film"
        keep(page, "player-test-4-end-card.png")
        page.wait_for_selector("#idle:not([hidden])", timeout=6_000)
        assert page.text_content("#kicker") == "the film begins again in a moment"
        page.wait_for_function("() => document.getElementById('stage').dataset.episode === '2'", timeout=12_000)
        wait_scene(page, "a", timeout=5_000)
        page.wait_for_function(picture_is("/media/red.webm", 3), timeout=10_000)
        # the bed the end card faded out comes back with the film (the ending and the opening share it)
        page.wait_for_function("() => { const m = EngagePlayer.mix(); return m && m.level > 0.8; }", timeout=5_000)
        stats = page.evaluate("EngagePlayer.stats")
        ctx.close()
    finally:
        film.stop()
    log = film.decisions()
    assert [p["scene"] for p in log][:4] == ["a", "b", "d", "a"]
    assert log[2]["evidence"]["chosen_by"] == "viewer" and log[2]["evidence"]["via"] == "key"
    assert log[2]["reason"] == "the viewer chose 'The Yellow Door' (by a key press)"
    assert log[3]["episode"] == 2 and "after a 5 s pause" in log[3]["reason"]
    # each cut was timed from the plan to its first frame on screen (the figure benchmarks/player.py reports)
    assert [s["scene"] for s in stats][:4] == ["a", "b", "d", "a"]
    assert all(s["ms"] is not None and 0 < s["ms"] < 10_000 for s in stats), stats
    assert not errors, errors


def test_the_page_keeps_playing_through_a_server_restart_and_resumes(chromium, media, tmp_path):
    story = STORY.replace("duration_s = 5", "duration_s = 14")
    film = Film(story, media, tmp_path, seconds=40.0)
    errors: list[str] = []
    try:
        ctx = context(chromium)
        page = ctx.new_page()
        watch_errors(page, errors)
        page.goto(film.server.player_url + "?kiosk=1")
        page.wait_for_function("() => document.getElementById('conn').textContent === 'live'", timeout=15_000)
        film.start()
        wait_scene(page, "a")
        page.wait_for_selector("#idle", state="hidden", timeout=5_000)
        page.wait_for_timeout(1500)
        cuts = page.evaluate("() => { const v = document.querySelector('#videos video.clip.on'); "
                             "v.dataset.mark = 'before the restart'; return EngagePlayer.shown(); }")
        port = film.server.port
        film.server.stop()  # the server goes away mid-scene
        page.wait_for_function("() => document.getElementById('conn').dataset.state !== 'live'", timeout=10_000)
        before = page.evaluate(PICTURE)
        page.wait_for_timeout(2500)
        during = page.evaluate(PICTURE)
        # the audience sees the film go on: same clip, moving, no error screen
        assert during["url"] == before["url"] == "/media/red.webm" and not during["paused"]
        assert during["frame"] != before["frame"]
        for hidden in ("#idle", "#endcard", "#overlay", "#start"):
            assert page.is_hidden(hidden), hidden
        assert page.evaluate("document.getElementById('stage').dataset.state") == "playing"
        keep(page, "player-test-5-server-down.png")
        film.server.port = port
        film.server.start()  # back on the same port
        page.wait_for_function("() => document.getElementById('conn').textContent === 'live'", timeout=15_000)
        page.wait_for_timeout(500)  # the snapshot it got on reconnecting
        # it held the scene the page was playing: the same clip element plays on, the scene was not shown again
        assert page.evaluate("() => document.querySelector('#videos video.clip.on').dataset.mark") == \
            "before the restart"
        assert page.evaluate("EngagePlayer.shown()") == cuts
        assert page.evaluate("document.getElementById('stage').dataset.scene") == "a"
        wait_scene(page, "b", timeout=20_000)  # and the next plan plays when it comes
        page.wait_for_function(picture_is("/media/green.webm"), timeout=10_000)
        ctx.close()
    finally:
        film.stop()
    assert not [e for e in errors if "WebSocket" not in e and "ERR_CONNECTION_REFUSED" not in e], errors


BAD = """
[story]
id = "bad-media"
title = "Bad Media"
start = "x"

[[scene]]
id = "x"
title = "Nothing to See"
text = "The tape is missing. Only words remain."
intensity = 0.3
tone = "calm"
duration_s = 5
palette = "grey"
next = ["y"]
tags = { video = "missing.webm", audio = "../outside.ogg" }

[[scene]]
id = "y"
title = "Static"
text = "The picture breaks up into snow."
intensity = 0.3
tone = "calm"
duration_s = 8
palette = "grey"
next = []
tags = { video = "damaged.webm", image = "still.png" }
"""


def test_missing_and_damaged_media_leave_the_scene_its_words_and_a_warning(chromium, media, tmp_path, caplog):
    film = Film(BAD, media, tmp_path, seconds=20.0)
    errors: list[str] = []
    try:
        with caplog.at_level(logging.WARNING):
            ctx = context(chromium)
            page = ctx.new_page()
            watch_errors(page, errors)
            page.goto(film.server.player_url)
            page.wait_for_function("() => document.getElementById('conn').textContent === 'live'", timeout=15_000)
            film.start()
            wait_scene(page, "x")
            page.wait_for_function("() => document.getElementById('card').classList.contains('on')", timeout=5_000)
            assert page.inner_text("#title") == "Nothing to See"
            page.wait_for_function("() => document.getElementById('text').textContent.includes('Only words remain.')")
            assert page.evaluate("document.getElementById('stage').dataset.picture") == "none"
            keep(page, "player-test-6-missing-media.png")
            # the damaged clip passes the server's check (a WebM header) but not the browser's decoder: the page
            # says so, the server logs it, and the scene goes on with its still and its words
            wait_scene(page, "y")
            page.wait_for_function("() => document.getElementById('stage').dataset.picture === 'still'", timeout=10_000)
            page.wait_for_function("() => document.getElementById('card').classList.contains('on')", timeout=5_000)
            assert page.inner_text("#title") == "Static"
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and "could not play /media/damaged.webm" not in caplog.text:
                time.sleep(0.1)
            keep(page, "player-test-7-damaged-media.png")
            ctx.close()
    finally:
        film.stop()
    text = caplog.text
    assert "media: video 'missing.webm' of scene 'x': not found in" in text
    assert "media: audio '../outside.ogg' of scene 'x': refused: media must be named by a path inside" in text
    assert "media: the player could not play /media/damaged.webm of scene 'y'" in text
    assert not [e for e in errors if "damaged.webm" not in e and "MEDIA_ERR" not in e and "media" not in e.lower()]


def test_a_browser_that_blocks_autoplay_gets_a_start_card(playwright, media, tmp_path):
    film = Film(STORY, media, tmp_path, seconds=15.0)
    try:
        b = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)  # the browser's own autoplay policy
        ctx = context(b)
        page = ctx.new_page()
        page.goto(film.server.player_url)
        film.start()
        page.wait_for_selector("#start:not([hidden])", timeout=10_000)
        assert page.evaluate("EngagePlayer.sound()") == "suspended"
        wait_scene(page, "a")
        pic = page.evaluate(PICTURE)  # the picture runs (muted) behind the card
        assert pic and pic["url"] == "/media/red.webm"
        keep(page, "player-test-8-start-card.png")
        page.click("#start-button")
        page.wait_for_selector("#start[hidden]", state="attached", timeout=5_000)
        page.wait_for_function("() => EngagePlayer.sound() === 'running'", timeout=5_000)
        b.close()
    finally:
        film.stop()


def test_on_a_phone_the_viewer_chooses_by_touch(chromium, media, tmp_path):
    story = STORY.replace("duration_s = 5", "duration_s = 2")
    film = Film(story, media, tmp_path, seconds=20.0, choice_window_s=6.0)
    try:
        ctx = context(chromium, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                      device_scale_factor=2)
        page = ctx.new_page()
        page.goto(film.server.player_url)
        page.wait_for_function("() => document.getElementById('conn').textContent === 'live'", timeout=15_000)
        film.start()
        page.wait_for_selector("#choice:not([hidden])", timeout=15_000)
        boxes = [page.locator("#choice-options button").nth(i).bounding_box() for i in range(2)]
        assert all(bx["width"] > 300 and bx["x"] >= 0 and bx["x"] + bx["width"] <= 390 for bx in boxes), boxes
        keep(page, "player-test-9-phone-choice.png")
        page.locator("#choice-options button").nth(0).tap()
        page.wait_for_selector("#choice.decided", timeout=3_000)
        wait_scene(page, "c", timeout=10_000)
        ctx.close()
    finally:
        film.stop()
    log = film.decisions()
    assert log[2]["scene"] == "c" and log[2]["evidence"]["chosen_by"] == "viewer"
    assert log[2]["evidence"]["via"] == "touch"


MOOD = """
[story]
id = "mood"
title = "Mood"
start = "m"

[[scene]]
id = "m"
title = "The Waiting Room"
text = "Nothing happens, slowly."
intensity = 0.2
tone = "calm"
duration_s = 60
palette = "amber"
next = []
tags = { video = "magenta.webm", audio = ["bed.ogg", "stem.ogg"] }
"""


def test_the_grade_and_the_mix_follow_the_viewer_within_a_scene(chromium, media, tmp_path):
    """Within one scene, a confident boredom onset brings the second stem in and strengthens the grade, an
    overload thins the mix and softens it; both ease over seconds rather than jump."""
    from engage.core import Event

    film = Film(MOOD, media, tmp_path, seconds=40.0)
    try:
        ctx = context(chromium)
        page = ctx.new_page()
        page.goto(film.server.player_url)
        page.wait_for_function("() => document.getElementById('conn').textContent === 'live'", timeout=15_000)
        film.start()
        wait_scene(page, "m")
        page.wait_for_function("() => { const m = EngagePlayer.mix(); return m && m.stems.length === 2; }",
                               timeout=10_000)
        page.wait_for_timeout(3000)
        calm = page.evaluate("EngagePlayer.mix().stems")
        wash = page.evaluate("() => Number(getComputedStyle(document.getElementById('wash')).opacity)")
        assert calm[1] == pytest.approx(0.25, abs=0.05)  # intensity 0.2: the second stem barely in
        t = film.session.runtime.ctx.clock.now()
        film.server.feed.on_event(Event("boredom.onset", t, "viewer-1", 0.9, {"boredom": 0.8}))
        page.wait_for_function("() => document.getElementById('stage').dataset.mood === 'bored'", timeout=5_000)
        page.wait_for_timeout(300)
        easing = page.evaluate("EngagePlayer.mix().stems")
        assert calm[1] + 0.02 < easing[1] < 0.9, (calm, easing)  # on its way, not there at once
        page.wait_for_timeout(4500)
        bored = page.evaluate("EngagePlayer.mix().stems")
        assert bored[1] > 0.9 and bored[0] > calm[0], (calm, bored)
        assert page.evaluate("() => Number(getComputedStyle(document.getElementById('wash')).opacity)") > wash
        assert page.inner_text("#ov-mood").startswith("bored")
        film.server.feed.on_event(Event("arousal.high", t + 5, "viewer-1", 0.9, {"arousal": 0.9}))
        film.server.feed.on_event(Event("boredom.offset", t + 5, "viewer-1", 0.9, {"boredom": 0.3}))
        page.wait_for_function("() => document.getElementById('stage').dataset.mood === 'overloaded'",
                               timeout=5_000)
        page.wait_for_timeout(5000)
        overloaded = page.evaluate("EngagePlayer.mix().stems")
        assert overloaded[1] < 0.05 and overloaded[0] < calm[0], (calm, overloaded)
        assert page.evaluate("() => Number(getComputedStyle(document.getElementById('veil')).opacity)") > 0.3
        ctx.close()
    finally:
        film.stop()


def test_a_thought_probe_is_answered_by_key_and_touch_and_recorded_in_the_xdf(chromium, media, tmp_path):
    """The session's probe scheduler (engage.events.probes) shows a probe of two questions; the page puts them over
    the film one after the other; a key press answers the first, a touch the second; the answers reach the
    scheduler on the pipeline's thread and are recorded as probe.answer markers with their response times in the
    session's XDF (read back with pyxdf)."""
    import pyxdf

    from engage.events.probes import ProbeSchedule, ProbeScheduler
    from engage.record import RecorderSink, XdfRecorder

    xdf = tmp_path / "session.xdf"
    recorder = XdfRecorder(xdf)
    probes = ProbeScheduler(ProbeSchedule("every", 6.0, ("boredom", "arousal"), min_gap_s=2.0, timeout_s=20.0))
    film = Film(MOOD, media, tmp_path, seconds=14.0, extra=[probes, RecorderSink(recorder)])
    film.server.feed.attach_probes(probes.answer)
    try:
        ctx = context(chromium, has_touch=True)
        page = ctx.new_page()
        page.goto(film.server.player_url)
        page.wait_for_function("() => document.getElementById('conn').textContent === 'live'", timeout=15_000)
        film.start()
        wait_scene(page, "m")
        page.wait_for_selector("#probe:not([hidden])", timeout=15_000)
        assert page.inner_text("#probe-question") == "How bored are you right now?"
        assert page.locator("#probe-scale button").all_inner_texts() == [str(v) for v in range(1, 8)]
        assert page.inner_text("#probe-low") == "not at all"
        keep(page, "player-test-10-probe.png")
        page.wait_for_timeout(1200)
        page.keyboard.press("6")
        page.wait_for_function("() => document.getElementById('probe-question').textContent.startsWith('How calm')",
                               timeout=5_000)
        page.locator("#probe-scale button").nth(1).tap()
        page.wait_for_selector("#probe", state="hidden", timeout=5_000)
        ctx.close()
        film.thread.join(timeout=30)  # the session runs to its end and closes the recording
    finally:
        film.stop()
    streams, _ = pyxdf.load_xdf(str(xdf))
    markers = [json.loads(x[0]) for s in streams if s["info"]["type"][0] == "Markers" for x in s["time_series"]]
    answers = [m for m in markers if m["type"] == "probe.answer"]
    shown = [m for m in markers if m["type"] == "probe.shown"]
    assert [(a["evidence"]["question"], a["evidence"]["value"], a["evidence"]["by"]) for a in answers[:2]] == [
        ("boredom", 6, "key"), ("arousal", 2, "touch")]
    first = answers[0]["evidence"]
    assert first["probe"] == shown[0]["evidence"]["probe"] and 1.0 < first["rt_s"] < 5.0
    assert answers[1]["evidence"]["rt_s"] > first["rt_s"]
    assert answers[0]["timestamp"] == pytest.approx(shown[0]["timestamp"] + first["rt_s"], abs=1e-3)
