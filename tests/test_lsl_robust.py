"""One bad stream cannot hurt the others (issue 25, item 4): a sensor that keeps failing is one gap and a retry
with backoff, not a traceback twice a second; a device clock that jumps by an hour starts a new segment and
the stream recovers."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import numpy as np
import pytest

from engage.core import Chunk, EventBus, LslClock, Runtime, StreamInfo, ThreadedSource
from engage.sensors.lsl import LslSource, StreamClock
from support.processing import Take

pylsl = pytest.importorskip("pylsl")


def run_for(source, seconds: float) -> tuple[Take, list]:
    take, events, bus = Take(), [], EventBus()
    bus.subscribe(events.append)
    Runtime(LslClock(), [source], [take], bus=bus, step=0.05).run(duration=seconds)
    return take, events


class Flaky(ThreadedSource):
    """A device whose driver raises on its first ``fail`` reads, then delivers."""

    name = "flaky"
    INFO = StreamInfo("flaky", "EDA", ("eda",), ("uS",), 0.0, "flaky")

    def __init__(self, fail: int) -> None:
        super().__init__()
        self.fail = fail
        self.calls = 0
        self.times: list[float] = []

    def acquire(self):
        self.calls += 1
        if self.calls <= self.fail:
            self.times.append(time.monotonic())
            raise OSError("device not responding")
        time.sleep(0.05)
        return Chunk.from_rows(self.INFO, [[1.0]], [pylsl.local_clock()])

    def streams(self):
        return [self.INFO]


def test_a_failing_sensor_is_one_gap_and_a_retry_with_backoff_not_a_traceback_each_time(caplog):
    src = Flaky(fail=6)
    with caplog.at_level(logging.DEBUG, logger="engage.core.runtime"):
        take, events = run_for(src, 8.0)
    gaps = [e for e in events if e.type == "sensor.gap" and e.source == "flaky"]
    assert [g.evidence["reason"] for g in gaps] == ["OSError: device not responding", "acquisition works again"]
    assert gaps[1].evidence["failures"] == 6 and gaps[1].evidence["duration_s"] > 3.0
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "engage.core.runtime"]
    assert len(warnings) == 2 and not any(r.exc_info for r in warnings)  # no traceback at warning level
    waits = np.diff(src.times)
    assert np.all(np.diff(waits) > 0) and waits[0] < 0.3 and waits[-1] > 1.0  # backing off
    assert take.chunks  # and the device's data once it works


def test_an_hour_clock_jump_is_a_gap_and_the_stream_recovers():
    """A +3600 s jump for 1 s used to corrupt the stream for the rest of the session (356 spurious gaps,
    event times from -245 s to +4,206 s)."""
    sid = f"pytest-{uuid.uuid4().hex[:10]}"
    out = pylsl.StreamOutlet(pylsl.StreamInfo("jumpy", "ECG", 1, 250, pylsl.cf_float32, sid))
    src = LslSource(f"source_id={sid}", resolve_interval=0.1)
    truth: list[float] = []
    jumped: list[float] = []

    def device() -> None:
        deadline = time.monotonic() + 10
        while not out.have_consumers() and time.monotonic() < deadline:
            time.sleep(0.02)
        t0 = pylsl.local_clock()
        for k in range(0, 250 * 5, 25):  # 5 s in chunks of 100 ms, stamped by the device
            ts = t0 + (k + np.arange(25)) / 250
            shift = 3600.0 if 2.0 <= k / 250 < 3.0 else 0.0  # its clock jumps by an hour for one second
            (jumped if shift else truth).extend(ts.tolist())
            out.push_chunk(np.zeros((25, 1), dtype=np.float32), (ts + shift).tolist())
            time.sleep(max(0.0, ts[-1] - pylsl.local_clock()))

    thread = threading.Thread(target=device, daemon=True)
    thread.start()
    take, events = run_for(src, 8.0)
    thread.join(5)
    stamps = np.concatenate([c.timestamps for c in take.chunks if c.info.name == "jumpy"])
    now = pylsl.local_clock()
    assert np.all(np.abs(stamps - now) < 60)  # nothing an hour away reached the pipeline
    assert np.all(np.diff(stamps) > 0)
    gaps = [e for e in events if e.type == "sensor.gap"]
    assert [g.evidence["reason"] for g in gaps] == ["clock jump"]
    assert gaps[0].evidence["samples"] == len(jumped) and gaps[0].evidence["duration_s"] == pytest.approx(1.0, abs=0.1)
    after = stamps[stamps > jumped[-1]]
    assert len(after) > 300  # the stream went on, on the right clock, within a millisecond of the device's stamps
    assert np.max(np.abs(after - np.asarray(truth)[-len(after):])) < 1e-3


def test_stream_clock_dejitters_follows_drift_and_breaks_at_jumps():
    rng = np.random.default_rng(1)
    true = 500 + np.arange(250 * 120) / 250 * 1.0002  # a device clock 0.02 % fast
    noisy = true + rng.uniform(-0.004, 0.004, true.size)
    clock = StreamClock(250.0)
    got = np.concatenate([clock.apply(noisy[i:i + 40]) for i in range(0, noisy.size, 40)])
    assert np.max(np.abs(got[2500:] - true[2500:])) < 1e-3 and clock.segments == 1
    a, b = StreamClock(250.0), StreamClock(250.0)
    first = noisy[:2000]
    whole = a.apply(first)
    parts = np.concatenate([b.apply(first[i:i + 13]) for i in range(0, first.size, 13)])
    assert np.allclose(whole, parts, atol=1e-9)  # the same stamps however the samples were chunked
