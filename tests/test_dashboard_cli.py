"""`engage replay FILE --realtime --dashboard`: the URLs are printed, the pages serve while the recording plays,
and bad options (busy port, open address without a token) are one clear line and exit 2."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from engage.cli import main
from engage.core import VirtualClock
from engage.narrative.story import load_story
from engage.record import RecorderSink, XdfRecorder
from engage.sensors.simulated import SimulatedViewer
from engage.session import Session

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

STORY = Path(__file__).with_name("dashboard_story.toml")


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dash-cli") / "short.xdf"
    recorder = XdfRecorder(path)
    sink = RecorderSink(recorder, types=("ECG", "EDA", "Face"), events=False)
    Session([SimulatedViewer(seed=2)], VirtualClock(0.0), story=load_story(STORY), extra_processors=[sink]) \
        .run(duration=8.0)
    recorder.close()
    return path


def test_replay_with_dashboard_prints_urls_serves_and_keeps_open_until_ctrl_c(recording, tmp_path):
    # started with SIGINT ignored, as a shell starts a script's background jobs (and CI, when run as one): Ctrl-C
    # must still end the wait, although Python then installs no handler of its own
    proc = subprocess.Popen([sys.executable, "-m", "engage", "replay", str(recording), "--realtime", "--dashboard",
                             "--port", "0", "--keep-open", "--quiet", "--story", str(STORY),
                             "--out", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        dash = re.search(r"dashboard (http://127\.0\.0\.1:\d+/)$", lines[0].strip())
        player = re.search(r"player +(http://127\.0\.0\.1:\d+/player)$", lines[1].strip())
        assert dash and player, lines
        assert "engage - dashboard" in httpx.get(dash.group(1)).text
        assert "engage - player" in httpx.get(player.group(1)).text
        # the whole recording reaches the dashboard, and it stays up after the replay
        for line in proc.stdout:
            if "the dashboard stays up" in line:
                break
        state = httpx.get(dash.group(1) + "api/state").json()
        assert state["series"]["hr"]["t"], "no heart rate reached the dashboard"
        assert state["plans"][0]["scene"] == "dusk" and state["plans"][0]["upcoming"][0]["scene"] == "telegraph"
        assert {s["name"] for s in state["status"]["streams"]} >= {"sim-viewer-1-ecg", "sim-viewer-1-face"}
        assert state["now"] == pytest.approx(8.0, abs=0.5)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    events = [json.loads(x) for x in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    assert any(e["type"] == "scene.start" for e in events)
    with pytest.raises(httpx.ConnectError):  # stopped with the command
        httpx.get(dash.group(1), timeout=2)


def test_busy_port_and_open_address_without_token_are_clear_errors(recording, tmp_path, capsys):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        code = main(["replay", str(recording), "--dashboard", "--port", str(port), "--quiet",
                     "--out", str(tmp_path / "a")])
    finally:
        blocker.close()
    err = capsys.readouterr().err
    assert code == 2 and f"engage: error: port {port} on 127.0.0.1 is busy; choose another with --port" in err

    code = main(["replay", str(recording), "--dashboard", "--host", "0.0.0.0", "--quiet", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and "engage: error: dashboard on 0.0.0.0: an address other than 127.0.0.1 needs a token" in err


def test_replay_help_shows_the_dashboard_options():
    out = subprocess.run([sys.executable, "-m", "engage", "replay", "--help"], capture_output=True, text=True,
                         timeout=60).stdout
    for option in ("--dashboard", "--host", "--port", "--token", "--keep-open", "--realtime --dashboard"):
        assert option in out


def test_token_from_the_environment_allows_an_open_address(recording, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ENGAGE_DASHBOARD_TOKEN", "env-s3cret")
    code = main(["replay", str(recording), "--dashboard", "--host", "0.0.0.0", "--port", "0", "--quiet",
                 "--story", str(STORY), "--out", str(tmp_path / "c")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert re.search(r"dashboard http://\S+:\d+/\?token=env-s3cret$", out.splitlines()[0])
    assert "without --realtime the replay runs as fast as it can" in err
