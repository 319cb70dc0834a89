"""The writer's journey: a story of their own in ink, a local LLM server, a player on OSC and one on a
WebSocket - all real processes and sockets on loopback.

The compiled ink of a test story with a fate point (tests/stories/night_ferry.ink) is played by
``engage story play --simulate --rewriter llm --llm-url … --osc … --ws …``; the LLM is the
OpenAI-compatible test server process (vLLM's reply shape, ``<think>`` blocks, streamed, refusing
JSON schemas, every 5th reply hostile); a python-osc server and a websockets client receive what a
player would. What the writer checks: every plan arrives on both, validates against the shipped
schema and carries their tags, the fate says who and what, ``ai_generated`` is set exactly on the
plans an LLM rewrote, no rewrite undoes the death, the viewer's state arrives at least once a second,
and the story's end."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import pytest

from engage.narrative.plan import plan_schema

ROOT = Path(__file__).resolve().parents[1]
STORY = ROOT / "stories" / "night_ferry.ink.json"
SERVER = ROOT / "support" / "openai_server.py"
SENTENCE = "The rain keeps on against the glass."


def _free_port(kind=socket.SOCK_STREAM) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def llm_server(tmp_path):
    log = tmp_path / "llm-requests.jsonl"
    proc = subprocess.Popen([sys.executable, str(SERVER), "--port", "0", "--shape", "vllm", "--wrap", "think",
                             "--stream", "--refuse-schema", "--hostile", "5", "--log", str(log)],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    yield line.split()[-1], log
    proc.terminate()
    proc.wait(timeout=5)


@pytest.fixture
def osc_player():
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import BlockingOSCUDPServer

    got: list[tuple[str, tuple]] = []
    lock = threading.Lock()

    def record(address, *args):
        with lock:
            got.append((address, args))

    d = Dispatcher()
    d.set_default_handler(record)
    server = BlockingOSCUDPServer(("127.0.0.1", 0), d)  # one datagram after the other, no thread each
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server.server_address[1], got
    server.shutdown()
    server.server_close()


def _ws_player(port: int, messages: list, done: threading.Event) -> None:
    from websockets.sync.client import connect

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with connect(f"ws://127.0.0.1:{port}", open_timeout=2) as ws:
                for raw in ws:
                    msg = json.loads(raw)
                    messages.append(msg)
                    if msg["kind"] == "story.end":
                        done.set()
                        return
            return
        except OSError:
            time.sleep(0.05)


def test_story_play_sends_checked_llm_rewrites_with_the_writers_tags_over_osc_and_websocket(
        tmp_path, llm_server, osc_player):
    url, llm_log = llm_server
    osc_port, osc_got = osc_player
    ws_port = _free_port()
    ws_messages: list[dict] = []
    ws_done = threading.Event()
    threading.Thread(target=_ws_player, args=(ws_port, ws_messages, ws_done), daemon=True).start()
    scenes = tmp_path / "scenes.jsonl"
    r = subprocess.run([sys.executable, "-m", "engage", "story", "play", str(STORY), "--simulate", "--seed", "3",
                        "--rewriter", "llm", "--llm-url", url, "--llm-model", "qwen2.5", "--llm-timeout", "10",
                        "--osc", f"127.0.0.1:{osc_port}", "--ws", f"127.0.0.1:{ws_port}", "--ws-wait", "30",
                        "--scenes-out", str(scenes)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1/1 viewers reached an ending" in r.stdout
    assert ws_done.wait(10), "the WebSocket player never heard the story end"
    time.sleep(0.5)  # the last UDP datagrams

    # the same plans over the WebSocket, over OSC and in the decision log, each valid against the schema
    logged = [json.loads(x) for x in scenes.read_text().splitlines()]
    ws_plans = [m["plan"] for m in ws_messages if m["kind"] == "plan"]
    osc_plans = [json.loads(args[0]) for address, args in osc_got if address == "/engage/scene/json"]
    assert ws_plans == logged == osc_plans and len(logged) >= 5
    validator = jsonschema.Draft202012Validator(plan_schema())
    for plan in logged:
        assert not list(validator.iter_errors(plan)), plan["scene"]

    # the writer's tags reach the player
    by_scene = {p["scene"]: p for p in logged}
    dock = by_scene["dock"]
    assert (dock["title"], dock["speaker"], dock["cast"], dock["act"]) == ("The Dock", "Mara", ["Mara", "Ivo"], "1")
    assert dock["media"] == [{"kind": "image", "src": "dock_night.jpg", "options": {"fit": "cover"}},
                             {"kind": "audio", "src": "harbour.ogg", "options": {"loop": True, "volume": 0.5}}]
    assert dock["tags"]["lighting"] == "sodium" and dock["variables"] == {"has_ticket": True}
    deck = by_scene["deck"]
    assert deck["speaker"] == "Ivo" and deck["media"] == [{"kind": "video", "src": "deck_storm.mp4",
                                                           "options": {"muted": True}}]
    assert deck["upcoming"] == [{"id": "c0", "title": "Reach for Ivo", "intensity": 1.0, "tone": "neutral",
                                 "fate_point": True}]
    ending = logged[-1]
    assert ending["scene"] in ("shore", "rescued") and ending["ending"] in ("alone", "rescued")

    # the fate: who and what, in the plan and as its own OSC message; no rewrite brings Ivo back
    overboard = by_scene["overboard"]
    assert overboard["fates"] == [{"character": "Ivo", "outcome": "dies"}]
    assert overboard["variables"] == {"ivo_alive": False}
    assert ("/engage/scene/fate", ("Ivo", "dies")) in osc_got
    assert "Ivo falls into the black water and is gone." in overboard["text"]
    for plan in logged[logged.index(overboard) + 1:]:
        assert "alive" not in plan["text"].lower()

    # ai_generated exactly on the plans the LLM rewrote
    rewritten = [p for p in logged if p["rewritten"]]
    assert rewritten, "no plan was rewritten"
    for p in logged:
        assert p["ai_generated"] == p["rewritten"]
        assert (p["rewritten_by"] == "llm:qwen2.5") == p["rewritten"]
        assert p["text"].endswith(SENTENCE) == p["rewritten"]
    osc_scene = [args for address, args in osc_got if address == "/engage/scene"]
    assert [a[7] for a in osc_scene] == [p["ai_generated"] for p in logged]
    assert [a[0] for a in osc_scene] == [p["scene"] for p in logged]

    # the LLM server was asked the way real servers need: schema refused, json_object after that
    asked = [json.loads(x) for x in llm_log.read_text().splitlines()]
    assert asked[0]["response_format"] == "json_schema" and asked[-1]["response_format"] == "json_object"
    assert all(a["authorization"] is None and a["model"] == "qwen2.5" for a in asked)

    # the viewer's state at least once a second of session time, on both; numbers-only addresses
    states = [m["state"] for m in ws_messages if m["kind"] == "state"]
    times = [s["timestamp"] for s in states]
    assert len(states) >= 10 and max(b - a for a, b in zip(times, times[1:])) <= 1.0 + 1e-6
    osc_states = [json.loads(args[0]) for address, args in osc_got if address == "/engage/state"]
    # UDP may drop a datagram when a fast (virtual-clock) session outruns the receiver: what arrives is the same
    assert all(s in states for s in osc_states) and len(osc_states) >= 0.9 * len(states)
    numbers = {address for address, args in osc_got if address.startswith("/engage/num/")}
    assert {"/engage/num/scene/pacing", "/engage/num/scene/ai_generated", "/engage/num/state/arousal",
            "/engage/num/state/bored", "/engage/num/story/end"} <= numbers
    assert all(isinstance(args[0], float) and len(args) == 1 for address, args in osc_got
               if address.startswith("/engage/num/"))

    # the story's end, on both
    end = next(m for m in ws_messages if m["kind"] == "story.end")
    assert end["event"]["evidence"]["scene"] == ending["scene"]
    assert ("/engage/story/end", (ending["scene"], 1)) in osc_got
