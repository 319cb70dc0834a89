"""The installation's journey: ``engage live --dashboard --media DIR --loop S`` on a screen nobody touches.

The real CLI in a subprocess (simulated viewer, a short story whose scenes name clips made with ffmpeg),
Debian's chromium on the kiosk URL it prints. What the person running the installation checks: the film
plays, a viewer's key press at a choice is logged in scenes.jsonl as the viewer's; the server process is
killed mid-scene (SIGKILL, as a crash or a power cut of the machine serving it would) and the screen goes
on showing the film, no error on it; the same command started again, the screen reconnects by itself and
plays the new session; Ctrl-C ends it cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from support.player import ARGS, AUTOPLAY, CHROMIUM, PICTURE, have_browser_and_ffmpeg, keep, make_test_media, picture_is

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytest.importorskip("fastapi")
pytestmark = pytest.mark.skipif(not have_browser_and_ffmpeg()[0], reason=have_browser_and_ffmpeg()[1])

STORY = """
[story]
id = "installation"
title = "The Corridor"
start = "a"

[[scene]]
id = "a"
title = "The Red Room"
text = "A red room. Someone has left the light on."
intensity = 0.2
tone = "calm"
duration_s = 12
palette = "crimson"
next = ["b"]
tags = { video = "red.webm", audio = "bed.ogg" }

[[scene]]
id = "b"
title = "The Green Room"
text = "Two doors."
intensity = 0.5
tone = "uneasy"
duration_s = 7
palette = "green"
next = ["c", "d"]
tags = { video = "green.webm", transition = "cut" }

[[scene]]
id = "c"
title = "The Blue Door"
text = "Cold."
intensity = 0.3
tone = "calm"
duration_s = 3
palette = "blue"
next = []
tags = { video = "blue.webm" }

[[scene]]
id = "d"
title = "The Yellow Door"
text = "Warm."
intensity = 0.8
tone = "tense"
duration_s = 3
palette = "gold"
next = []
tags = { video = "yellow.webm" }
"""


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Live:
    """``engage live`` in a subprocess; its stderr read on a thread (the lines it printed so far)."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "engage", "live", *args], cwd=cwd, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if text in line:
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"engage live never printed {text!r}; it printed:\n" + "\n".join(self.lines))

    def stop(self, sig=signal.SIGKILL) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        self.thread.join(timeout=5)
        return code


def test_an_installation_survives_its_server_and_logs_the_viewers_choice(tmp_path):
    media = make_test_media(tmp_path / "media")
    story = tmp_path / "installation.toml"
    story.write_text(STORY)
    port = free_port()

    def command(out: str) -> list[str]:
        return ["--profile", "simulated", "--story", str(story), "--media", str(media), "--dashboard", "--port",
                str(port), "--loop", "4", "--choice-window", "5", "--duration", "300", "--quiet", "--out",
                str(tmp_path / out)]

    first = Live(command("first"), tmp_path)
    second = None
    try:
        kiosk = first.wait_for("installation screen: ").split("installation screen: ")[1].strip()
        assert kiosk == f"http://127.0.0.1:{port}/player?kiosk=1"
        first.wait_for("engage live: ready")
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS + AUTOPLAY)
            page = browser.new_page(viewport={"width": 960, "height": 540})
            page.goto(kiosk)
            page.wait_for_function(picture_is("/media/red.webm", 3), timeout=30_000)
            assert page.evaluate("getComputedStyle(document.body).cursor") == "none"  # a kiosk: no pointer
            keep(page, "player", "installation-1-playing.png")

            first.stop(signal.SIGKILL)  # the server dies mid-scene
            page.wait_for_function("() => document.getElementById('conn').dataset.state !== 'live'", timeout=10_000)
            shown = page.evaluate("EngagePlayer.shown()")
            before = page.evaluate(PICTURE)
            page.wait_for_timeout(2000)
            after = page.evaluate(PICTURE)
            assert after["url"] == "/media/red.webm" and after["frame"] != before["frame"] and not after["paused"]
            for screen in ("#idle", "#endcard", "#start", "#overlay"):
                assert page.is_hidden(screen), screen
            keep(page, "player", "installation-2-server-killed.png")

            second = Live(command("second"), tmp_path)  # the same command again, on the same port
            second.wait_for("engage live: ready")
            page.wait_for_function("() => document.getElementById('conn').textContent === 'live'", timeout=20_000)
            page.wait_for_function(f"() => EngagePlayer.shown() > {shown}", timeout=20_000)  # the new session's film
            page.wait_for_function(picture_is("/media/red.webm"), timeout=20_000)

            # the viewer chooses by key at the choice of the new session
            page.wait_for_selector("#choice:not([hidden])", timeout=30_000)
            page.keyboard.press("2")
            page.wait_for_selector("#choice.decided", timeout=5_000)
            page.wait_for_function("() => document.getElementById('stage').dataset.scene === 'd'", timeout=15_000)
            page.wait_for_function(picture_is("/media/yellow.webm"), timeout=10_000)
            # the end card, then the film again: an installation loops
            page.wait_for_selector("#endcard:not([hidden])", timeout=15_000)
            page.wait_for_function("() => document.getElementById('stage').dataset.episode === '2'", timeout=30_000)
            browser.close()
        assert second.stop(signal.SIGINT) == 0, "\n".join(second.lines)
    finally:
        first.stop()
        if second is not None:
            second.stop()
    plans = [json.loads(line) for line in (tmp_path / "second" / "scenes.jsonl").read_text().splitlines()]
    assert [p["scene"] for p in plans][:3] == ["a", "b", "d"]
    assert plans[2]["evidence"]["chosen_by"] == "viewer" and plans[2]["evidence"]["via"] == "key"
    assert plans[3]["episode"] == 2 and "after a 4 s pause" in plans[3]["reason"]
    assert any("running until Ctrl-C or 300 s" in line for line in second.lines)
