"""The audience's journey: the sample film *The Last Broadcast*, made by ``engage media make-sample``, played by
``engage live --profile simulated --story last_broadcast.ink.json --media DIR --dashboard`` and watched in
Chromium.

What a person checks: ``engage media check`` lists each scene's media; the player shows a moving picture
covering the screen, graded, with the scene's headline as a lower third and subtitles - not a page of text;
no directive labels; sound plays (the scene's ambience and its music stems); the first choice of the story
comes up with the ink's own words. Screenshots go to ``out/player/``.

By default the test makes the film's first two scenes (half a minute here). To shoot the whole film::

    engage media make-sample out/film
    ENGAGE_SAMPLE_FILM=out/film python -m pytest tests/journeys/test_player_film.py

which also waits for the first cut and photographs the next scene.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engage.narrative.ink import sample_ink_path
from support.player import ARGS, AUTOPLAY, CHROMIUM, have_browser_and_ffmpeg, keep

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytest.importorskip("fastapi")
pytestmark = pytest.mark.skipif(not have_browser_and_ffmpeg()[0], reason=have_browser_and_ffmpeg()[1])

FIRST_SCENES = "studio,letters"


def engage(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engage", *args], capture_output=True, text=True, timeout=timeout)


def looks_like_a_film(png: Path) -> dict:
    """Pixel figures of a screenshot: how many distinct colours, how much of it is one flat colour."""
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB").resize((320, 180)), dtype=np.int32)
    codes = (img[..., 0] // 8) * 1024 + (img[..., 1] // 8) * 32 + img[..., 2] // 8
    values, counts = np.unique(codes, return_counts=True)
    return {"colours": int(len(values)), "flattest": float(counts.max() / codes.size),
            "luma_sd": float((img @ np.array([0.2126, 0.7152, 0.0722])).std())}


@pytest.fixture(scope="module")
def film(tmp_path_factory) -> Path:
    given = os.environ.get("ENGAGE_SAMPLE_FILM")
    if given:
        return Path(given)
    folder = tmp_path_factory.mktemp("sample-film")
    done = engage("media", "make-sample", str(folder), "--scenes", FIRST_SCENES)
    assert done.returncode == 0, done.stderr
    assert "clip 2/2: letters" in done.stderr and done.stdout.strip().endswith("MB")
    return folder


def test_media_check_lists_what_each_scene_gets(film):
    done = engage("media", "check", str(film), "--story", str(sample_ink_path()))
    lines = done.stdout.splitlines()
    studio = next(line for line in lines if line.startswith("studio "))
    assert "video /media/clips/studio.webm" in studio and "image /media/stills/studio.jpg" in studio
    assert "4 sound(s)" not in studio and "3 sound(s)" in studio
    if not os.environ.get("ENGAGE_SAMPLE_FILM"):  # two scenes made: the others are title cards
        assert done.returncode == 0 and lines[-1] == "24 scenes, 22 without a picture, 0 problem(s)"
        assert next(line for line in lines if line.startswith("archive ")).endswith("text only")
    else:
        assert done.returncode == 0 and lines[-1] == "24 scenes, 0 without a picture, 0 problem(s)"


def test_the_sample_film_plays_like_a_film(film, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "engage", "live", "--profile", "simulated", "--story",
                             str(sample_ink_path()), "--media", str(film), "--dashboard", "--port", "0",
                             "--duration", "600", "--quiet", "--out", str(tmp_path / "out"),
                             "--choice-window", "25"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    shots: list[Path] = []
    try:
        url = None
        for line in proc.stderr:
            if "(player: " in line:
                url = line.split("(player: ")[1].rstrip(")\n ")
                break
        assert url, "engage live printed no player URL"
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS + AUTOPLAY)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            page.wait_for_function("() => document.getElementById('stage').dataset.scene === 'studio'", timeout=60_000)
            page.wait_for_function("() => { const v = document.querySelector('#videos video.clip.on'); "
                                   "return v && v.currentTime > 0.5 && !v.paused; }", timeout=20_000)
            # a moving picture covering the screen
            box = page.locator("#videos video.clip.on").bounding_box()
            assert box["width"] >= 1279 and box["height"] >= 719
            page.wait_for_function("() => document.getElementById('lower-third').classList.contains('on')",
                                   timeout=10_000)
            assert page.inner_text("#lower-title") == "Midnight at Radio Kestrel."  # the first sentence, whole
            time.sleep(1.5)
            shots.append(keep(page, "player", "film-1-studio-title.png"))
            page.wait_for_function("() => document.getElementById('subtitle-text').classList.contains('on')",
                                   timeout=20_000)
            subtitle = page.inner_text("#subtitle-text")
            assert subtitle and subtitle in ("Lena reads the weather to a sleeping town while Tomas sorts the "
                                             "record shelf.")
            shots.append(keep(page, "player", "film-2-studio-subtitle.png"))
            # text is a small part of the screen; no directive labels; sound: the bed and its stems
            text_area = page.evaluate("""() => ['title', 'text', 'lower-title', 'subtitle-text'].map((id) => {
                const el = document.getElementById(id), r = el.getBoundingClientRect();
                return Number(getComputedStyle(el.closest('.card, #lower-third, #subtitle-text')).opacity) > 0
                    ? r.width * r.height : 0; }).reduce((a, b) => a + b, 0)""")
            assert text_area < 0.12 * 1280 * 720, text_area
            visible = page.inner_text("body").lower()
            for label in ("pacing", "stakes", "music intensity", "amber"):
                assert label not in visible, label
            mix = page.evaluate("EngagePlayer.mix()")
            assert mix["key"].startswith("/media/sound/bed-rain.ogg|/media/sound/tension.ogg")
            assert mix["state"] == "running"
            assert len(mix["stems"]) == 3
            # the first choice, in the ink's own words, for the scene's last 25 s (--choice-window 25)
            page.wait_for_selector("#choice:not([hidden])", timeout=30_000)
            assert page.locator("#choice-options .label").all_inner_texts() == [
                "Read the late letters", "Take the caller on line two", "Answer the red line"]
            shots.append(keep(page, "player", "film-3-studio-choice.png"))
            if os.environ.get("ENGAGE_SAMPLE_FILM"):  # the whole film: one more scene after the cut
                page.wait_for_function("() => document.getElementById('stage').dataset.scene !== 'studio'",
                                       timeout=30_000)
                time.sleep(6)
                shots.append(keep(page, "player", "film-4-next-scene.png"))
                page.keyboard.press("o")
                shots.append(keep(page, "player", "film-5-operator-overlay.png"))
            browser.close()
        assert not errors, errors
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    for shot in shots:
        if shot is None:
            continue
        figures = looks_like_a_film(shot)
        # a picture, not a page: thousands of colours, no flat background taking most of the screen
        assert figures["colours"] > 300 and figures["flattest"] < 0.25, (shot.name, figures)
