"""Scene plans over OSC and WebSocket, on loopback; closed-loop evaluation and `engage story` CLI."""

from __future__ import annotations

import json
import threading
import time

import pytest

from engage.cli import main
from engage.core import Runtime, VirtualClock
from engage.narrative.controller import Controller
from engage.narrative.evaluation import compare, format_table, paired_difference, run_viewer
from engage.narrative.ink import load_ink, sample_ink_path
from engage.narrative.plan import ScenePlan
from engage.narrative.policy import DirectorPolicy
from engage.narrative.publish import OscScenePublisher, WebSocketScenePublisher

PLAN = ScenePlan("viewer-1", 12.0, 1, "red_line", "The red line", "Nadia again.", 35.0,
                 {"pacing": "fast", "palette": "crimson", "music_intensity": 0.8, "stakes": "high"},
                 "viewer bored (boredom.onset at 00:40)", {"rule": "director"}, 1.0, ("letters",))


def test_osc_publisher_sends_scene_and_json_to_a_real_udp_server():
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer

    got = []
    done = threading.Event()
    d = Dispatcher()
    d.map("/engage/scene*", lambda address, *args: (got.append((address, args)), len(got) >= 2 and done.set()))
    server = ThreadingOSCUDPServer(("127.0.0.1", 0), d)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    pub = OscScenePublisher("127.0.0.1", server.server_address[1])
    try:
        pub(PLAN)
        assert done.wait(5.0)
    finally:
        pub.close()
        server.shutdown()
        server.server_close()
    by = dict(got)
    assert by["/engage/scene"] == ("red_line", "The red line", 35.0, "fast", "crimson", pytest.approx(0.8), "high", False)
    assert ScenePlan.from_json(by["/engage/scene/json"][0]) == PLAN
    assert pub.sent == 1 and pub.errors == 0


def test_websocket_publisher_broadcasts_plans_and_greets_late_clients():
    from websockets.sync.client import connect

    pub = WebSocketScenePublisher("127.0.0.1", 0)
    try:
        assert pub.url.startswith("ws://127.0.0.1:")
        with connect(pub.url) as a:
            deadline = time.monotonic() + 5
            while pub.clients < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            c = Controller(load_ink(sample_ink_path()), policy=DirectorPolicy(), on_plan=pub, stop_at_end=True)
            Runtime(VirtualClock(), [], [c], step=1.0).run(duration=120.0)
            received = [ScenePlan.from_dict(json.loads(a.recv(timeout=5))["plan"]) for _ in c.decisions]
            assert [p.scene for p in received] == [p.scene for p in c.decisions]
        with connect(pub.url) as late:
            message = json.loads(late.recv(timeout=5))
            assert message["kind"] == "plan" and ScenePlan.from_dict(message["plan"]) == c.decisions[-1]
        pub(PLAN)  # the first client is gone: nothing breaks
    finally:
        pub.close()


TINY = """
[story]
id = "tiny"
title = "Tiny"
start = "a"
[[scene]]
id = "a"
title = "A"
text = "Quiet."
intensity = 0.1
duration_s = 20
next = ["b", "c"]
[[scene]]
id = "b"
title = "B"
text = "Still quiet."
intensity = 0.1
duration_s = 20
next = []
[[scene]]
id = "c"
title = "C"
text = "A storm."
intensity = 0.9
duration_s = 20
next = []
"""


@pytest.fixture
def tiny(tmp_path):
    f = tmp_path / "tiny.toml"
    f.write_text(TINY)
    return f


def test_closed_loop_run_scores_a_simulated_viewer(tiny):
    r = run_viewer(tiny, "director", seed=1)
    assert r.ended and r.ending in ("b", "c") and r.scenes == 2 == len(r.plans)
    assert 0.0 <= r.bored_frac <= 1.0 and 0.0 <= r.band_frac <= 1.0
    assert r.watched_s == pytest.approx(40.0, abs=0.5)
    cut = run_viewer(None, "fixed", seed=1, horizon_s=50.0)  # the sample story, stopped early
    assert not cut.ended and cut.ending is None and cut.plans[0].scene == "studio"


def test_compare_pairs_viewers_and_reports_the_difference(tiny):
    results = compare(tiny, viewers=2, adaptive="director")
    assert [r["seed"] for r in results["director"]] == [0, 1] == [r["seed"] for r in results["fixed"]]
    assert all(r["plot_changes"] == 0 for r in results["fixed"])
    d = paired_difference(results, "director")
    assert d["n"] == 2 and d["diff"] == pytest.approx(d["adaptive"] - d["fixed"])
    table = format_table(results, "director")
    assert "bored %" in table and "the adaptive policy (director) spent" in table


def test_story_cli_play_and_errors(capsys, tmp_path, tiny):
    out_file = tmp_path / "scenes.jsonl"
    assert main(["story", "play", str(tiny), "--simulate", "--seed", "2", "--scenes-out", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "1/1 viewers reached an ending" in out and "story start" in out
    assert main(["story", "compare", str(tiny), "--viewers", "1"]) == 0
    out = capsys.readouterr().out
    assert "plot changes" in out and json.loads(out.splitlines()[-1])["viewers"] == 1
    lines = out_file.read_text().splitlines()
    assert lines and all(json.loads(x)["viewer"] == "viewer-1" for x in lines)
    assert main(["story", "play", str(tiny), "--simulate", "--rewrite", "template", "--scenes-out", str(out_file)]) == 0
    rewritten = [json.loads(x) for x in out_file.read_text().splitlines()]
    assert rewritten[-1]["rewritten_by"] == "template" and rewritten[-1]["text"].startswith("[pacing ")
    assert not any(p["ai_generated"] for p in rewritten)
    capsys.readouterr()
    assert main(["story", "play"]) == 2
    assert "needs --simulate" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("nope = [")
    assert main(["story", "play", str(bad), "--simulate"]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["story", "compare", "--viewers", "0"]) == 2
    with pytest.raises(SystemExit):
        main(["story", "play", "--help"])
    assert "examples:" in capsys.readouterr().out
