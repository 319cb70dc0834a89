"""Dashboard feed throughput and end-to-end latency, observer → WebSocket client.

Figures:

* ``feed``: messages per second the feed publishes into one subscriber's queue when the pipeline hands
  it events as fast as it can (the cost the pipeline thread pays per message);
* ``session``: a simulated session (ECG 250 Hz, EDA, face 30 Hz, the whole pipeline and the story) on
  the virtual clock with and without the dashboard observer (best of three, interleaved): how much
  faster than real time; and, paced as a live session is, the messages and bytes per second a page gets;
* ``websocket``: a real server on loopback and a real WebSocket client; the pipeline thread emits
  ``rate`` events per second for ``seconds`` seconds, each stamped with the time it was handed to the
  observer; latency percentiles are measured at the client on receipt (same process, same clock);
* ``flood``: the same client while the pipeline publishes as fast as it can: messages per second that
  reach the client, and how many were dropped (the pipeline never waits for it).

Run: ``python benchmarks/dashboard.py [--seconds 5] [--rate 200]``; the last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engage.core import Event, VirtualClock  # noqa: E402
from engage.dashboard import DashboardFeed, DashboardServer  # noqa: E402
from engage.narrative.story import default_story_path, load_story  # noqa: E402
from engage.sensors.simulated import SimulatedViewer  # noqa: E402
from engage.session import Session  # noqa: E402


def bench_feed(n: int) -> dict:
    feed = DashboardFeed(queue_size=n + 16)  # room for every event and the feed's own messages (an "adapt" one)
    sub = feed.subscribe()
    events = [Event("boredom.onset", float(i), "viewer-1", 0.8, {"boredom": 0.71, "dwell_s": 5.0}) for i in range(n)]
    t0 = time.perf_counter()
    for e in events:
        feed.on_event(e)
    wall = time.perf_counter() - t0
    assert sum(m.startswith('{"kind":"event"') for m in sub._items) == n  # every event reached the client queue
    return {"messages": n, "messages_per_s": n / wall, "us_per_message": 1e6 * wall / n}


def bench_session(minutes: float, repeats: int = 3) -> dict:
    """x real time with and without the observer (best of ``repeats``, interleaved), and the messages a
    live-paced session sends: the feed's wall clock is the session clock, as it is when running live."""
    story = load_story(default_story_path())
    best = {"without": 0.0, "with": 0.0}
    for _ in range(repeats):
        for label in ("without", "with"):
            observers = [DashboardFeed(story=story)] if label == "with" else []
            if observers:
                observers[0].subscribe()
            session = Session([SimulatedViewer(seed=0)], VirtualClock(0.0), story=story, observers=observers)
            t0 = time.perf_counter()
            session.run(duration=minutes * 60)
            best[label] = max(best[label], minutes * 60 / (time.perf_counter() - t0))
    clock = VirtualClock(0.0)
    feed = DashboardFeed(story=story, wall_clock=clock.now)
    sub = feed.subscribe(maxlen=10_000_000)
    Session([SimulatedViewer(seed=0)], clock, story=story, observers=[feed]).run(duration=minutes * 60)
    sent = sub.drain()
    return {"x_realtime_without": best["without"], "x_realtime_with": best["with"],
            "overhead_pct": 100 * (best["without"] / best["with"] - 1),
            "observer_ms_per_session_s": 1e3 * (1 / best["with"] - 1 / best["without"]),
            "live_messages_per_s": len(sent) / (minutes * 60),
            "live_kbytes_per_s": sum(len(m.encode()) for m in sent) / 1e3 / (minutes * 60)}


async def _client(url: str, stop: asyncio.Event, on_message) -> None:
    import websockets

    async with websockets.connect(url, max_size=None) as ws:
        await ws.recv()  # the snapshot
        on_message(None)
        while not stop.is_set():
            try:
                text = await asyncio.wait_for(ws.recv(), 0.5)
            except asyncio.TimeoutError:
                continue
            now = time.perf_counter()
            for m in json.loads(text):
                on_message((now, m))


def _run_client(url: str, on_message, stop_after: threading.Event) -> threading.Thread:
    def main() -> None:
        async def go() -> None:
            stop = asyncio.Event()

            async def watch() -> None:
                while not stop_after.is_set():
                    await asyncio.sleep(0.05)
                stop.set()

            await asyncio.gather(_client(url, stop, on_message), watch())

        asyncio.run(go())

    t = threading.Thread(target=main, daemon=True)
    t.start()
    return t


def bench_websocket(seconds: float, rate: float) -> dict:
    server = DashboardServer(port=0).start()
    latencies: list[float] = []
    ready = threading.Event()
    stop = threading.Event()

    def on_message(item) -> None:
        if item is None:
            ready.set()
            return
        now, m = item
        if m.get("kind") == "event" and m["event"]["type"] == "marker":
            latencies.append(now - m["event"]["evidence"]["sent"])

    url = f"ws://127.0.0.1:{server.port}/ws?topics=event"
    client = _run_client(url, on_message, stop)
    ready.wait(10)
    n = int(seconds * rate)
    t0 = time.perf_counter()
    for i in range(n):  # the pipeline thread: one event every 1/rate s
        target = t0 + i / rate
        while time.perf_counter() < target:
            time.sleep(max(0.0, min(0.001, target - time.perf_counter())))
        server.observer.on_event(Event("marker", float(i), "viewer-1", 1.0, {"sent": time.perf_counter()}))
    deadline = time.perf_counter() + 5
    while len(latencies) < n and time.perf_counter() < deadline:
        time.sleep(0.01)
    stop.set()
    client.join(5)
    server.stop()
    ms = np.array(latencies) * 1e3
    # evidence is rounded to 4 digits by Event.to_dict: ±0.05 ms on each figure
    return {"events": n, "received": len(latencies), "rate_per_s": rate,
            "latency_ms": {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
                           "p99": float(np.percentile(ms, 99)), "max": float(ms.max())}}


def bench_flood(seconds: float) -> dict:
    server = DashboardServer(port=0).start()
    received = [0, 0]  # events, snapshots (a client that fell behind gets a snapshot instead of the backlog)
    ready = threading.Event()
    stop = threading.Event()

    def on_message(item) -> None:
        if item is None:
            ready.set()
        elif item[1].get("kind") == "event":
            received[0] += 1
        elif item[1].get("kind") == "snapshot":
            received[1] += 1

    client = _run_client(f"ws://127.0.0.1:{server.port}/ws?topics=event", on_message, stop)
    ready.wait(10)
    feed = server.observer
    sent = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            feed.on_event(Event("marker", float(sent), "viewer-1", 1.0, {"i": sent}))
            sent += 1
    wall = time.perf_counter() - t0
    time.sleep(1.0)
    stop.set()
    client.join(5)
    dropped = feed.dropped
    server.stop()
    return {"sent": sent, "sent_per_s": sent / wall, "received": received[0], "received_per_s": received[0] / wall,
            "snapshots": received[1], "dropped": dropped}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="length of the WebSocket runs (default: 5)")
    ap.add_argument("--rate", type=float, default=200.0, help="events per second in the latency run (default: 200)")
    ap.add_argument("--minutes", type=float, default=2.0, help="simulated session length (default: 2)")
    args = ap.parse_args()
    result = {
        "feed": bench_feed(100_000),
        "session": bench_session(args.minutes),
        "websocket": bench_websocket(args.seconds, args.rate),
        "flood": bench_flood(args.seconds),
    }
    f, s, w, fl = result["feed"], result["session"], result["websocket"], result["flood"]
    print(f"feed: {f['messages_per_s']:,.0f} messages/s into a subscriber queue ({f['us_per_message']:.1f} µs each)")
    print(f"session: {s['x_realtime_without']:.0f}x real time without the dashboard, {s['x_realtime_with']:.0f}x with "
          f"({s['overhead_pct']:+.1f} % time, {s['observer_ms_per_session_s']:.1f} ms CPU per session second); "
          f"a live session sends {s['live_messages_per_s']:.1f} messages/s ({s['live_kbytes_per_s']:.1f} kB/s) "
          "to each page")
    lat = w["latency_ms"]
    print(f"websocket: {w['received']}/{w['events']} events at {w['rate_per_s']:.0f}/s, latency observer → client "
          f"p50 {lat['p50']:.2f} ms, p95 {lat['p95']:.2f} ms, p99 {lat['p99']:.2f} ms, max {lat['max']:.2f} ms")
    print(f"flood: {fl['sent_per_s']:,.0f} messages/s published, {fl['received_per_s']:,.0f}/s reached the client, "
          f"{fl['dropped']} dropped, {fl['snapshots']} resync snapshots")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
