"""The dashboard and the player in real headless Chromium while a recorded session replays at real-time pace.

Debian's ``chromium`` driven by the ``playwright`` package (no browser download). A simulated
session is recorded to XDF (raw ECG, EDA and face streams, as a lab recording would hold them),
then replayed through the full pipeline on a :class:`PacedClock` into a :class:`DashboardServer`,
with a short story whose scenes last 12 s. The test watches the pages: heart rate values arrive
and keep changing, the scene changes on both pages, nothing throws; screenshots go to the test's
folder and to ``out/browser/``.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from engage.core import VirtualClock
from engage.narrative.story import load_story
from engage.record import RecorderSink, XdfRecorder
from engage.sensors.replay import PacedClock, XdfReplay
from engage.sensors.simulated import SimulatedViewer
from engage.session import Session

CHROMIUM = os.environ.get("ENGAGE_CHROMIUM", "/usr/bin/chromium")
STORY = Path(__file__).with_name("dashboard_story.toml")
KEEP = Path(__file__).resolve().parents[1] / "out" / "browser"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
pytest.importorskip("fastapi", reason="the dashboard needs fastapi")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"no chromium at {CHROMIUM} (apt-get install chromium, or set ENGAGE_CHROMIUM)")

from engage.dashboard import DashboardServer  # noqa: E402


class FaceDropout(RecorderSink):
    """Records like a lab recorder, except that the camera drops out from 6 to 9 s (a gap in the file)."""

    def process(self, chunk):
        if chunk.info.type == "Face" and 6.0 <= chunk.first_time < 9.0:
            return []
        return super().process(chunk)


def record_session(path: Path, seconds: float, seed: int = 1) -> Path:
    """A simulated viewer watching the test story, its raw streams recorded as a lab recorder would,
    with a 3 s hole in the face stream."""
    recorder = XdfRecorder(path)
    sink = FaceDropout(recorder, types=("ECG", "EDA", "Face"), events=False)
    Session([SimulatedViewer(seed=seed)], VirtualClock(0.0), story=load_story(STORY), extra_processors=[sink]) \
        .run(duration=seconds)
    recorder.close()
    return path


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    return record_session(tmp_path_factory.mktemp("browser") / "session.xdf", 32.0)


def shoot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    try:
        KEEP.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, KEEP / name)
    except OSError:
        pass  # keeping a copy is a convenience
    return path


def test_dashboard_and_player_follow_a_realtime_replay(recording, tmp_path):
    story = load_story(STORY)
    server = DashboardServer(port=0, story=story).start()
    errors: list[str] = []
    source = XdfReplay(recording)
    session = Session([source], PacedClock(source.start_time()), story=story, observers=[server.observer],
                      calibration_s=10.0)
    replay = threading.Thread(target=session.run, kwargs={"duration": 27.0}, daemon=True)
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            dash = browser.new_page(viewport={"width": 1400, "height": 1000})
            player = browser.new_page(viewport={"width": 1280, "height": 720})
            for page in (dash, player):
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            dash.goto(server.url)
            player.goto(server.player_url)
            for page in (dash, player):
                page.wait_for_function("() => document.getElementById('conn').textContent === 'live'",
                                       timeout=15_000)
            assert dash.inner_text("#hr-value") == "–" and player.get_attribute("#stage", "data-scene") == ""

            replay.start()
            # the first scene and the first heart rate values arrive
            dash.wait_for_function("() => document.getElementById('scene-title').dataset.scene === 'dusk'",
                                   timeout=15_000)
            player.wait_for_function("() => document.getElementById('stage').dataset.scene === 'dusk'", timeout=15_000)
            dash.wait_for_function("() => /^[0-9]+$/.test(document.getElementById('hr-value').textContent)",
                                   timeout=20_000)
            beats = int(dash.inner_text("#hr-beats"))
            clock = dash.inner_text("#clock")
            shoot(dash, tmp_path, "dashboard-1-first-scene.png")
            shoot(player, tmp_path, "player-1-first-scene.png")
            first_background = player.evaluate("getComputedStyle(document.getElementById('stage')).backgroundColor")

            # values keep updating while the replay plays on
            dash.wait_for_function(f"() => Number(document.getElementById('hr-beats').textContent) >= {beats + 4}",
                                   timeout=15_000)
            assert dash.inner_text("#clock") != clock

            # the scene changes, on both pages, with the reason for it
            dash.wait_for_function("() => document.getElementById('scene-title').dataset.scene === 'telegraph'",
                                   timeout=30_000)
            player.wait_for_function("() => document.getElementById('stage').dataset.scene === 'telegraph'",
                                     timeout=30_000)
            assert dash.inner_text("#scene-title").startswith("The Telegraph Bell")
            assert "The Telegraph Bell" in dash.inner_text("#scene-reason")
            assert dash.inner_text("#upcoming").splitlines()[:2] == ["The Lever intensity 0.60, tense",
                                                                    "Runaway intensity 0.90, frantic"]
            assert dash.locator("#decisions li").count() == 2
            assert dash.locator('#events li[data-type="scene.start"]').count() == 2
            # engagement has a value once the 10 s baseline is in, and the sensors table lists the raw streams
            dash.wait_for_function("() => /^[0-9.]+$/.test(document.getElementById('boredom-value').textContent)",
                                   timeout=15_000)
            rows = dash.inner_text("#sensors tbody")
            assert "sim-viewer-1-ecg" in rows and "sim-viewer-1-face" in rows and "Hz" in rows
            # the camera's 3 s hole in the recording: a sensor.gap event, and the gap on the face stream's row
            assert dash.locator('#events li[data-type="sensor.gap"]').count() >= 1
            # shown at its session time: 6 s after the recording's first sample
            assert dash.inner_text('#events li[data-type="sensor.gap"] .t') in ("00:05", "00:06")
            face_gaps = dash.inner_text('#sensors tr[data-stream="sim-viewer-1-face"] td:last-child')
            assert re.fullmatch(r"1 \((2|3)\.\d s\)", face_gaps), face_gaps
            assert dash.inner_text('#sensors tr[data-stream="sim-viewer-1-ecg"] td:last-child') == "none"
            assert dash.locator("#sensors tr.sensor").count() == 3  # the recording's three; the rest derived
            assert "derived" in dash.get_attribute('#sensors tr[data-stream="viewer-1-heart-rate"]', "class")
            # the heart-rate trace is drawn in its colour (#ff6b6b) on the canvas
            drawn = dash.evaluate("""() => {
                const c = document.getElementById('chart-hr'), d = c.getContext('2d')
                    .getImageData(0, 0, c.width, c.height).data;
                let n = 0;
                for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] < 140 && d[i + 2] < 140) n++;
                return n;
            }""")
            assert drawn > 50
            player.wait_for_timeout(1500)  # let the cross-fade and the word-by-word text finish
            assert player.inner_text("#title") == "The Telegraph Bell"
            assert player.evaluate("getComputedStyle(document.getElementById('stage')).backgroundColor") \
                != first_background  # the palette changed with the scene
            assert player.is_hidden("#ai-label")
            shoot(dash, tmp_path, "dashboard-2-scene-changed.png")
            shoot(player, tmp_path, "player-2-scene-changed.png")
            browser.close()
    finally:
        replay.join(timeout=60)
        server.stop()
    assert not replay.is_alive()
    assert not [e for e in errors if "favicon" not in e], errors


def test_pages_with_a_token_connect_and_pages_without_it_are_refused(tmp_path):
    server = DashboardServer(port=0, token="browser-s3cret").start()
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page()
            refused = page.goto(server.url.split("?")[0])
            assert refused.status == 403 and "a valid token is required" in page.inner_text("body")
            page.goto(server.url)
            page.wait_for_function("() => document.getElementById('conn').textContent === 'live'", timeout=15_000)
            link = page.get_attribute("#player-link", "href")
            assert link == "/player?token=browser-s3cret"
            with page.context.expect_page(timeout=15_000) as opened:
                page.click("#player-link")  # opens the player in a new tab, token carried over
            player = opened.value
            player.wait_for_function("() => document.getElementById('conn').textContent === 'live'",
                                     timeout=15_000)
            assert "waiting for the story" in player.text_content("#kicker")
            shoot(player, tmp_path, "player-0-waiting.png")
            browser.close()
    finally:
        server.stop()
