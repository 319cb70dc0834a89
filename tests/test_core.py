"""The shared core: chunks, events, bus, clocks, runtime routing and failure containment."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from engage.core import (Chunk, Context, Event, EventBus, Processor, Runtime, Source, StreamInfo,
                         ThreadedSource, VirtualClock)

INFO = StreamInfo("x", "ECG", ("a", "b"), ("mV", "mV"), 10.0, "src-x")


def test_chunk_validates_shapes_and_names_the_stream():
    with pytest.raises(ValueError, match="'x'.*3 samples but 2 timestamps"):
        Chunk(INFO, np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="3 columns but 2 channels"):
        Chunk(INFO, np.zeros((2, 3)), np.zeros(2))
    c = Chunk.from_rows(INFO, [[1, 2], [3, 4]], [0.0, 0.1])
    assert c.channel("b").tolist() == [2.0, 4.0]
    with pytest.raises(KeyError, match="no channel 'z'"):
        c.channel("z")


def test_stream_info_rejects_unit_mismatch():
    with pytest.raises(ValueError, match="2 channels but 1 units"):
        StreamInfo("x", "ECG", ("a", "b"), ("mV",), 10.0, "s")


def test_event_json_is_stable_and_safe():
    e = Event("boredom.onset", 1.23456789, "v1", 0.87654321, {"x": np.float64(0.123456), "n": math.nan,
                                                              "arr": (1, 2)}, source="t")
    d = json.loads(e.to_json())
    assert d == {"type": "boredom.onset", "timestamp": 1.234568, "viewer": "v1", "confidence": 0.8765,
                 "evidence": {"x": 0.1235, "n": None, "arr": [1, 2]}, "source": "t"}
    assert Event.from_json(e.to_json()).type == "boredom.onset"
    again = Event.from_json(e.to_json())
    assert again.to_json() == e.to_json()  # round trip is exact once rounded


def test_bus_delivers_in_order_including_nested_publishes_and_survives_bad_handlers():
    bus = EventBus()
    seen: list[str] = []

    def chain(e: Event) -> None:
        seen.append("chain:" + e.type)
        if e.type == "a":
            bus.publish(Event("b", 1.0, "v"))

    def broken(e: Event) -> None:
        raise RuntimeError("boom")

    bus.subscribe(chain)
    bus.subscribe(broken)
    bus.subscribe(lambda e: seen.append("tail:" + e.type))
    bus.publish(Event("a", 0.0, "v"))
    assert seen == ["chain:a", "tail:a", "chain:b", "tail:b"]
    assert bus.handler_errors == 2


def test_virtual_clock_never_goes_back():
    c = VirtualClock(5.0)
    c.advance(1.0)
    assert c.now() == 6.0
    with pytest.raises(ValueError):
        c.set(1.0)


class Ramp(Source):
    """A recording-like source: 10 Hz samples from 0 to 3 s."""

    name = "ramp"

    def __init__(self) -> None:
        self.t = np.arange(0, 3.0, 0.1)
        self.i = 0

    def streams(self):
        return [INFO]

    def read(self, until):
        j = int(np.searchsorted(self.t, until + 1e-9, side="right"))
        t = self.t[self.i:j]
        self.i = j
        return [Chunk.from_rows(INFO, np.column_stack([t, -t]), t)] if len(t) else []

    @property
    def exhausted(self):
        return self.i >= len(self.t)

    def start_time(self):
        return 0.0


class Doubler(Processor):
    name = "doubler"

    def accepts(self, info):
        return info.type == "ECG"

    def process(self, chunk):
        out_info = StreamInfo("y", "Derived", ("a2",), ("mV",), 10.0, "src-y")
        return [Chunk(out_info, chunk.data[:, :1] * 2, chunk.timestamps)]


class Collector(Processor):
    name = "collector"

    def __init__(self, kind):
        self.kind, self.t, self.x, self.ticks = kind, [], [], 0

    def accepts(self, info):
        return info.type == self.kind

    def process(self, chunk):
        self.t.extend(chunk.timestamps)
        self.x.extend(chunk.data[:, 0])
        return []

    def tick(self, now):
        self.ticks += 1
        return []


class Exploder(Processor):
    name = "exploder"

    def accepts(self, info):
        return True

    def process(self, chunk):
        raise ValueError("bad chunk")


def test_runtime_routes_derived_chunks_and_contains_failures():
    col = Collector("Derived")
    rt = Runtime(VirtualClock(), [Ramp()], [Exploder(), Doubler(), col])
    errors = []
    rt.bus.subscribe(errors.append, "pipeline.error")
    stats = rt.run(duration=10.0)
    assert np.allclose(col.x, 2 * np.arange(0, 3.0, 0.1))
    assert stats.processor_errors > 0 and errors and errors[0].evidence["processor"] == "exploder"
    assert stats.steps < 100  # stopped when the source was exhausted, not at 10 s
    assert col.ticks == stats.steps


def test_timeline_names_the_failing_step_and_does_not_flood():
    import io

    from engage.timeline import TimelinePrinter

    out = io.StringIO()
    timeline = TimelinePrinter(out)
    rt = Runtime(VirtualClock(), [Ramp()], [Exploder(), timeline])
    rt.bus.subscribe(timeline.on_event)
    stats = rt.run(duration=10.0)
    lines = [line for line in out.getvalue().splitlines() if "pipeline.error" in line]
    assert stats.processor_errors > TimelinePrinter.MAX_ERRORS_SHOWN
    assert len(lines) == TimelinePrinter.MAX_ERRORS_SHOWN
    assert all("exploder: ValueError: bad chunk" in line for line in lines)
    assert "counted, not shown" in lines[-1]


class FlakySource(ThreadedSource):
    """A live-like source whose device produces faster than a full queue is drained."""

    name = "flaky"

    def __init__(self):
        super().__init__(max_chunks=2)
        self.n = 0

    def streams(self):
        return [INFO]

    def acquire(self):
        self.n += 1
        if self.n % 50 == 0:
            raise OSError("device hiccup")
        time.sleep(0.001)
        t = float(self.n)
        return Chunk.from_rows(INFO, [[t, t]], [t])


def test_threaded_source_bounded_queue_reports_drops_as_gaps():
    src = FlakySource()
    ctx = Context(VirtualClock(), EventBus())
    gaps = []
    ctx.bus.subscribe(gaps.append, "sensor.gap")
    src.start(ctx)
    time.sleep(0.3)  # nobody reads: the queue overflows
    chunks = src.read(0.0)
    src.stop()
    assert 1 <= len(chunks) <= 2
    drops = [g for g in gaps if g.evidence["reason"] == "queue full"]
    assert drops and ctx.counters["flaky.dropped_samples"] == len(drops)
    # each hiccup is a failure episode: a gap when it starts and one when the device works again
    others = [g.evidence["reason"] for g in gaps if g not in drops]
    assert others[::2] == ["OSError: device hiccup"] * (len(others) // 2) + others[len(others) // 2 * 2:]


def test_flush_at_end_of_input_is_routed_downstream_in_pipeline_order():
    info = StreamInfo("held", "Held", ("x",), ("a.u.",), 0.0, "held")
    calls = []

    class Upstream(Processor):
        name = "upstream"

        def flush(self, now):
            calls.append("upstream")
            return [Chunk(info, np.array([[1.0]]), np.array([now]))]

    class Downstream(Processor):
        name = "downstream"

        def accepts(self, i):
            return i.type == "Held"

        def process(self, chunk):
            calls.append("got held")
            return []

        def flush(self, now):
            calls.append("downstream")
            raise RuntimeError("broken flush")  # counted and reported, never fatal

    rt = Runtime(VirtualClock(), sources=[], processors=[Upstream(), Downstream()])
    stats = rt.run(duration=0.5)
    assert calls == ["upstream", "got held", "downstream"]
    assert stats.processor_errors == 1 and rt.ctx.counters["downstream.errors"] == 1
