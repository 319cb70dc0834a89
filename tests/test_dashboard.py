"""The dashboard: feed (downsampling, rate limits, bounded queues), server security, busy ports, bad clients."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("fastapi", reason="the dashboard needs fastapi (pip install -e '.[test]')")
httpx = pytest.importorskip("httpx", reason="the dashboard tests need httpx")
websockets = pytest.importorskip("websockets")

from engage.core import Chunk, Event, StreamInfo  # noqa: E402
from engage.core.errors import ConfigError  # noqa: E402
from engage.dashboard import DashboardFeed, DashboardServer, Subscriber, is_loopback  # noqa: E402
from engage.dashboard.feed import parse_topics  # noqa: E402
from engage.narrative.plan import ScenePlan  # noqa: E402
from engage.narrative.story import load_story  # noqa: E402
from engage.session import SessionObserver  # noqa: E402

STORY = Path(__file__).with_name("dashboard_story.toml")
FACE = StreamInfo("cam", "FaceFeatures", ("face_present", "on_screen", "blink_duration", "quality"),
                  ("bool", "bool", "s", "ratio"), 30.0, "cam-1")
HR = StreamInfo("hr", "HeartRate", ("hr_bpm", "rr_s", "quality"), ("bpm", "s", "ratio"), 0.0, "hr-1")


class FakeWall:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def messages(sub: Subscriber) -> list[dict]:
    return [json.loads(m) for m in sub.drain()]


def face_data(n: int, rate: float = 30.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    x = np.column_stack([np.ones(n), (rng.random(n) > 0.2).astype(float), np.zeros(n), rng.random(n)])
    x[::45, 2] = 0.15  # a blink ends every 1.5 s
    x[7, 3] = np.nan
    return t, x


def plan(scene: str, t: float, duration: float = 12.0) -> ScenePlan:
    return ScenePlan("viewer-1", t, 1, scene, scene.title(), "text", duration, {"pacing": "slow", "palette": "amber",
                     "music_intensity": 0.2}, f"because {scene}", {}, 1.0, ())


# ---------------------------------------------------------------------------------- the feed


def test_feed_is_a_session_observer():
    assert isinstance(DashboardFeed(), SessionObserver)


def _series_points(feed: DashboardFeed, chunk_size: int) -> tuple[list, list, list]:
    sub = feed.subscribe(topics=("series",))
    t, x = face_data(900)
    for a in range(0, len(t), chunk_size):
        feed.process(Chunk(FACE, x[a:a + chunk_size], t[a:a + chunk_size]))
    feed.close()
    ts, vs, blinks = [], [], []
    for m in messages(sub):
        if m["series"] == "face":
            ts += m["t"]
            vs += m["v"]
            blinks += m["blinks"]
    return ts, vs, blinks


def test_traces_are_bin_means_on_the_data_clock_whatever_the_chunking():
    results = [_series_points(DashboardFeed(points_per_s=5.0, wall_clock=FakeWall()), size) for size in (1, 37, 900)]
    assert results[0] == results[1]
    ts, vs, blinks = results[0]
    # 30 s at 5 points/s: one point per closed 0.2 s bin; the last bin stays open (causal)
    assert len(ts) == 149 and np.all(np.diff(ts) > 0)
    t, x = face_data(900)
    first = x[:6]  # the first bin: frames 0..5
    channels = ("on_screen", "face_present", "blink_rate", "perclos", "quality")
    assert vs[0][channels.index("on_screen")] == pytest.approx(first[:, 1].mean(), abs=1e-4)
    assert vs[0][channels.index("face_present")] == 1.0
    assert vs[0][channels.index("blink_rate")] is None  # the stream lacks it: null, not 0
    assert vs[1][channels.index("quality")] == pytest.approx(np.nanmean(x[6:12, 3]), abs=1e-4)  # NaN skipped
    assert [b[0] for b in blinks] == pytest.approx(list(t[::45]))  # every blink, none lost to downsampling
    assert len(results[2][0]) == 149


def test_a_snapshot_between_sends_has_every_point_the_next_send_carries():
    # points are made when a series is due to be sent (once per batch of chunks); a page that connects
    # in between must still get every closed bin, and the next message the same points again
    feed = DashboardFeed(points_per_s=5.0, wall_clock=FakeWall())
    sub = feed.subscribe(topics=("series",))
    t, x = face_data(300)
    for a in range(0, 300, 2):
        feed.process(Chunk(FACE, x[a:a + 2], t[a:a + 2]))
    first = messages(sub)  # the first chunk went out at once; the rest waits for the next wall tenth
    assert len(first) == 1 and first[0]["t"] == [] and first[0]["blinks"] == [[0.0, 0.15]]
    snap = feed.snapshot()["series"]["face"]
    assert len(snap["t"]) == 49 and snap["t"] == sorted(snap["t"])  # 10 s at 5 points/s, the last bin open
    feed.close()
    (rest,) = messages(sub)
    assert rest["t"] == snap["t"] and rest["v"] == snap["v"] and len(rest["blinks"]) == 6


def test_each_series_is_sent_at_most_max_rate_times_per_wall_second():
    wall = FakeWall()
    feed = DashboardFeed(max_rate=10.0, wall_clock=wall)
    sub = feed.subscribe(topics=("series",))
    for i in range(200):  # 200 beats arrive within one wall instant (a fast replay)
        feed.process(Chunk.from_rows(HR, [[60.0 + i % 7, 1.0, 1.0]], [float(i)]))
    first = messages(sub)
    assert len(first) == 1 and len(first[0]["t"]) == 1  # sent once; the rest waits
    wall.t += 0.05
    feed.tick(200.0)
    assert not [m for m in messages(sub) if m["series"] == "hr"]  # still within 1/10 s
    wall.t += 0.06
    feed.tick(200.0)
    later = [m for m in messages(sub) if m["series"] == "hr"]
    assert len(later) == 1 and len(later[0]["t"]) == 199  # nothing lost: every beat is in the batch


def test_events_plans_status_and_gaps():
    wall = FakeWall()
    feed = DashboardFeed(story=load_story(STORY), wall_clock=wall)
    sub = feed.subscribe()
    ecg = StreamInfo("strap-ecg", "ECG", ("ecg",), ("mV",), 130.0, "strap")
    feed.process(Chunk(ecg, np.zeros((130, 1)), np.arange(130) / 130.0))
    feed.on_event(Event("sensor.gap", 1.0, "viewer-1", 1.0, {"stream": "strap-ecg", "duration_s": 2.5,
                                                              "reason": "contact lost"}))
    feed.on_event(Event("sensor.gap", 1.0, "viewer-1", 1.0, {"stream": "never-seen", "duration_s": 1.0}))
    feed.on_plan(plan("telegraph", 12.0))
    feed.tick(4.0)
    got = messages(sub)
    kinds = [m["kind"] for m in got]
    assert kinds == ["event", "event", "plan", "status"]
    p = got[2]["plan"]
    assert p["reason"] == "because telegraph" and p["decision_at"] == 24.0
    assert [u["scene"] for u in p["upcoming"]] == ["lever", "runaway"] and p["last"] is False
    (status,) = [s for s in got[3]["streams"] if s["name"] == "strap-ecg"]
    assert status["sensor"] and status["gaps"] == 1 and status["gap_s"] == 2.5
    assert status["age_s"] == pytest.approx(4.0 - 129 / 130.0, abs=1e-3)
    assert status["rate"] == pytest.approx(130.0, abs=0.01) and status["nominal_rate"] == 130.0
    assert got[3]["unmatched_gaps"] == 1
    wall.t += 1.0
    feed.tick(30.0)  # the strap went quiet: no rate any more, and the age grows
    (stalled,) = [s for s in messages(sub)[-1]["streams"] if s["name"] == "strap-ecg"]
    assert stalled["rate"] == 0.0 and stalled["age_s"] == pytest.approx(30.0 - 129 / 130.0, abs=1e-3)
    snap = feed.snapshot()
    assert len(snap["events"]) == 2 and snap["plans"][0]["scene"] == "telegraph"


def test_a_stalled_client_never_blocks_the_pipeline_and_drops_are_counted():
    feed = DashboardFeed(queue_size=50)
    stalled = feed.subscribe()  # never drained
    for i in range(5000):
        feed.on_event(Event("marker", float(i), "viewer-1", 1.0, {"label": "x" * 50}))
    assert len(stalled) <= 50 and stalled.dropped >= 4950 - 50 and stalled.resync
    assert feed.dropped == stalled.dropped
    # reading again starts from a fresh snapshot, and the snapshot empties the stale queue
    snap = json.loads(feed.snapshot_message(stalled))
    assert snap["kind"] == "snapshot" and len(snap["events"]) == 200 and len(stalled) == 0 and not stalled.resync
    feed.unsubscribe(stalled)
    assert feed.subscribers == 0 and feed.dropped == stalled.dropped  # counted after it left, too


@pytest.mark.parametrize("text", ["", "nonsense", "[1, 2]", '{"op": "reboot"}', '"ping"', "{" * 10_000, None,
                                  b"\x00\xff".decode("latin-1"), '{"op": ["ping"]}'])
def test_malformed_client_messages_are_ignored_and_counted(text):
    feed = DashboardFeed()
    sub = feed.subscribe()
    feed.client_message(sub, text)
    assert feed.malformed == 1 and len(sub) == 0
    feed.client_message(sub, '{"op": "ping"}')
    assert [m["kind"] for m in messages(sub)] == ["pong"] and feed.malformed == 1


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=64), st.none()))
def test_any_client_message_is_either_understood_or_counted(text):
    feed = DashboardFeed()
    sub = feed.subscribe()
    feed.client_message(sub, text)  # never raises
    assert feed.malformed + len(sub) == 1


def test_topics():
    assert parse_topics(None) == parse_topics("") == ("snapshot", "series", "event", "plan", "status", "adapt",
                                                      "choice", "probe", "pong")
    assert parse_topics("plan") == ("snapshot", "plan", "pong")


# ---------------------------------------------------------------------------------- the server


def test_non_loopback_needs_a_token():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    for host in ("0.0.0.0", "192.168.1.5", "::"):
        with pytest.raises(ConfigError, match=f"dashboard on {host}: an address other than 127.0.0.1 needs a token"):
            DashboardServer(host=host, port=0)
        with pytest.raises(ConfigError, match="needs a token"):
            DashboardServer(host=host, port=0, token="")
    DashboardServer(host="0.0.0.0", port=0, token="s3cret-token")
    with pytest.raises(ConfigError, match="without spaces"):
        DashboardServer(port=0, token="two words")


def test_busy_port_is_a_config_error_naming_the_port():
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        with pytest.raises(ConfigError) as err:
            DashboardServer(port=port).start()
        assert str(err.value) == f"port {port} on 127.0.0.1 is busy; choose another with --port"
    finally:
        blocker.close()


@pytest.fixture
def server():
    srv = DashboardServer(port=0, story=load_story(STORY)).start()
    yield srv
    srv.stop()


@pytest.fixture
def token_server():
    srv = DashboardServer(host="0.0.0.0", port=0, token="s3cret/token+x").start()
    yield srv
    srv.stop()


def base(srv: DashboardServer) -> str:
    return f"http://127.0.0.1:{srv.port}"


def test_pages_api_and_static_on_loopback(server):
    assert server.url == f"http://127.0.0.1:{server.port}/" and server.player_url.endswith("/player")
    page = httpx.get(server.url)
    assert page.status_code == 200 and "engage - dashboard" in page.text and "<script src=" in page.text
    assert "Content-Security-Policy" in page.headers and "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert "engage - player" in httpx.get(server.player_url).text
    js = httpx.get(base(server) + "/static/dashboard.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert httpx.get(base(server) + "/static/..%2Fserver.py").status_code == 404
    assert httpx.get(base(server) + "/static/feed.py").status_code == 404
    assert httpx.get(base(server) + "/api/state").json()["kind"] == "snapshot"
    # no token: only requests naming a loopback host (a DNS-rebinding page names its own)
    assert httpx.get(base(server) + "/api/state", headers={"Host": "attacker.example:8765"}).status_code == 403
    assert httpx.get(f"http://localhost:{server.port}/api/stats").json()["subscribers"] == 0


def test_token_is_required_on_pages_api_and_websocket(token_server, caplog, capfd):
    server_loggers = ("engage", "uvicorn", "uvicorn.access", "uvicorn.error", "fastapi", "starlette")
    for name in server_loggers:
        caplog.set_level(logging.DEBUG, logger=name)
    srv, b = token_server, base(token_server)
    assert srv.url.endswith("/?token=s3cret%2Ftoken%2Bx") and "token=" in srv.player_url
    for path in ("/", "/player", "/api/state", "/api/stats"):
        assert httpx.get(b + path).status_code == 403
        assert httpx.get(b + path, params={"token": "s3cret/token+y"}).status_code == 403
        assert httpx.get(b + path, params={"token": "s3cret/token+x"}).status_code == 200
    assert httpx.get(b + "/api/state", headers={"Authorization": "Bearer s3cret/token+x"}).status_code == 200
    assert httpx.get(b + "/api/state", headers={"Authorization": "Bearer nope"}).status_code == 403

    async def attempt(query: str) -> str:
        try:
            async with websockets.connect(f"ws://127.0.0.1:{srv.port}/ws{query}") as ws:
                return json.loads(await asyncio.wait_for(ws.recv(), 5))[0]["kind"]
        except websockets.exceptions.WebSocketException as exc:
            return type(exc).__name__

    assert asyncio.run(attempt("")) != "snapshot"
    assert asyncio.run(attempt("?token=wrong")) != "snapshot"
    assert asyncio.run(attempt("?token=s3cret%2Ftoken%2Bx")) == "snapshot"
    out, errs = capfd.readouterr()
    server_side = [r.getMessage() for r in caplog.records if r.name.split(".")[0] in server_loggers]
    assert not [m for m in server_side if "s3cret" in m]  # the server never logs it
    assert "s3cret" not in out + errs


def test_websocket_from_another_origin_is_refused(server):
    async def attempt(origin: str | None) -> str:
        try:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws", origin=origin) as ws:
                return json.loads(await asyncio.wait_for(ws.recv(), 5))[0]["kind"]
        except websockets.exceptions.WebSocketException as exc:
            return type(exc).__name__

    assert asyncio.run(attempt("http://evil.example")) != "snapshot"
    assert asyncio.run(attempt(f"http://127.0.0.1:{server.port}")) == "snapshot"


def test_websocket_streams_messages_ignores_garbage_and_filters_topics(server):
    feed = server.feed

    async def session() -> tuple[list[dict], list[dict]]:
        url = f"ws://127.0.0.1:{server.port}/ws"
        async with websockets.connect(url) as ws, websockets.connect(url + "?topics=plan") as player:
            first = json.loads(await ws.recv()) + json.loads(await player.recv())
            for junk in ("nonsense", b"\x00\x01", "[]", '{"op": 5}'):
                await ws.send(junk)
            await ws.send('{"op": "ping"}')
            got = []
            while not any(m["kind"] == "pong" for m in got):
                got += json.loads(await asyncio.wait_for(ws.recv(), 5))
            await asyncio.to_thread(feed.on_event, Event("boredom.onset", 5.0, "viewer-1", 0.8, {"boredom": 0.7}))
            await asyncio.to_thread(feed.on_plan, plan("dusk", 6.0))
            while not any(m["kind"] == "plan" for m in got):
                got += json.loads(await asyncio.wait_for(ws.recv(), 5))
            seen = json.loads(await asyncio.wait_for(player.recv(), 5))
            return first + got, seen

    got, player_got = asyncio.run(session())
    kinds = [m["kind"] for m in got]
    assert kinds[:2] == ["snapshot", "snapshot"] and "event" in kinds and "plan" in kinds
    assert feed.malformed == 4
    assert [m["kind"] for m in player_got] == ["plan"]  # no event for the player's topics
    assert player_got[0]["plan"]["upcoming"][0]["scene"] == "telegraph"


def _raw_ws(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads: the slowest client there is."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def test_a_slow_and_then_closed_client_never_blocks_the_pipeline(server):
    feed = server.feed
    slow = _raw_ws(server.port)
    deadline = time.monotonic() + 10
    while feed.subscribers < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    done = threading.Event()

    def pipeline() -> None:  # what the session thread does: many events with large evidence
        for i in range(20_000):
            feed.on_event(Event("marker", float(i), "viewer-1", 1.0, {"label": "y" * 400}))
        done.set()

    worker = threading.Thread(target=pipeline, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert done.is_set(), "the pipeline blocked on a client that does not read"
    assert feed.dropped > 0  # the unread client's queue overflowed; counted, not waited for
    slow.close()
    deadline = time.monotonic() + 10
    while feed.subscribers and time.monotonic() < deadline:
        feed.on_event(Event("marker", 0.0, "viewer-1"))
        time.sleep(0.05)
    assert feed.subscribers == 0  # the closed client is gone; the pipeline went on


def test_stop_twice_and_restart_on_the_same_port():
    srv = DashboardServer(port=0).start()
    port = srv.port
    srv.stop()
    srv.stop()
    again = DashboardServer(port=port).start()
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/api/stats").status_code == 200
    finally:
        again.stop()


def test_request_lines_in_logs_have_the_token_blanked():
    from engage.dashboard.server import _RedactToken

    f = _RedactToken("s3cret/token+x")
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
                               ("127.0.0.1:5555", "/ws?token=s3cret%2Ftoken%2Bx&topics=plan"), None)
    assert f.filter(record)
    assert record.getMessage() == '127.0.0.1:5555 - "WebSocket /ws?token=***&topics=plan" [accepted]'
    other = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "Bearer %s refused", ("s3cret/token+x",),
                              None)
    f.filter(other)
    assert "s3cret" not in other.getMessage()
    plain = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "started %d", (3,), None)
    f.filter(plain)
    assert plain.getMessage() == "started 3" and plain.args == (3,)


def test_time_zero_is_the_earliest_sample_of_the_first_step_not_the_first_chunk_seen():
    feed = DashboardFeed(wall_clock=FakeWall())
    sub = feed.subscribe(topics=("series", "status"))
    ecg = StreamInfo("ecg", "ECG", ("ecg",), ("mV",), 250.0, "ecg-1")
    # a derived heart-rate row reaches the observer before the raw ECG it came from (depth-first routing)
    feed.process(Chunk.from_rows(HR, [[61.0, 0.98, 1.0]], [1.656]))
    feed.process(Chunk(ecg, np.zeros((500, 1)), np.arange(500) / 250.0 + 0.004))
    feed.tick(2.0)
    feed.process(Chunk(ecg, np.zeros((25, 1)), np.arange(25) / 250.0 + 2.004))
    feed.tick(2.1)
    got = messages(sub)
    assert got[0]["origin"] is None and got[0]["series"] == "hr"  # before the first tick: not known yet
    assert feed.origin == 0.004 and all(m["origin"] == 0.004 for m in got[1:])


def test_a_bad_static_name_is_a_404_not_a_server_error(server, capfd):
    for name in ("a%00.js", "%00", "x%2F..%2Fa.js", "a.b.js", "a%0a.js", "%C3%A9.css"):
        assert httpx.get(base(server) + "/static/" + name).status_code == 404, name
    assert "Traceback" not in capfd.readouterr().err


def test_snapshot_requests_in_a_loop_are_rate_limited(server):
    """A page (or a script) asking for snapshots in a loop, or polling /api/state, gets at most one new snapshot
    per snapshot_interval: it used to slow the pipeline 3-25 times."""
    import websockets

    feed = server.feed
    built, start = feed.snapshots_built, time.monotonic()
    with httpx.Client() as client:
        for _ in range(200):
            assert client.get(base(server) + "/api/state").status_code == 200
    assert feed.snapshots_built - built <= (time.monotonic() - start) / feed.snapshot_interval + 1

    async def spam() -> tuple[int, float]:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            await ws.recv()  # the first snapshot
            start = time.monotonic()
            for _ in range(300):
                await ws.send('{"op": "snapshot"}')
            snapshots = 0
            while time.monotonic() - start < 1.6:
                try:
                    msgs = json.loads(await asyncio.wait_for(ws.recv(), 0.3))
                except asyncio.TimeoutError:
                    continue
                snapshots += sum(m["kind"] == "snapshot" for m in msgs)
            return snapshots, time.monotonic() - start

    snapshots, elapsed = asyncio.run(spam())
    assert 1 <= snapshots <= elapsed / feed.snapshot_interval + 1
