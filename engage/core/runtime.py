"""The runtime: wires sources → processors → sinks and drives them on one clock.

How a new part plugs in
-----------------------
*A source* (a device, a file, a simulator) subclasses :class:`Source`: it lists the
:class:`~engage.core.stream.StreamInfo` of its streams and returns, from ``read(until)``, the
chunks whose timestamps are ``<= until``. A live device acquires on its own thread: subclass
:class:`ThreadedSource` and implement ``acquire()``; the bounded queue, the drop counting and
the ``sensor.gap`` events are handled for you. A recording simply slices its arrays.

*A processor* (a filter, a detector, a feature window, a classifier, a writer) subclasses
:class:`Processor`: ``accepts(info)`` says which streams it wants (usually by ``info.type``),
``process(chunk)`` consumes one chunk and returns derived chunks, ``tick(now)`` is called once
per runtime step for periodic output (feature windows, scene changes), and ``flush(now)`` once when
the run ends, before anything is closed, for output a causal step still holds back (a beat whose
QRS complex was open when the recording ended): it is routed like any other. Processors keep their
state between calls and never look at future samples, so their output does not depend on how
the input was chunked. A sink is a processor that returns nothing. Events go on
``self.ctx.bus``.

The runtime routes every chunk a source or processor produces to every processor that accepts
it, in the order the processors were given, so one list describes the whole pipeline. Live and
replay differ only in the clock: with :class:`~engage.core.clock.LslClock` the runtime sleeps
between steps; with :class:`~engage.core.clock.VirtualClock` it advances time step by step as
fast as processing allows, which makes replay deterministic.

>>> from engage.core.clock import VirtualClock
>>> rt = Runtime(VirtualClock(), sources=[], processors=[])
>>> rt.run(duration=1.0).steps
10
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from .bus import EventBus
from .clock import Clock, VirtualClock
from .errors import EngageError
from .event import Event
from .stream import Chunk, StreamInfo

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What every part of a running pipeline may use: the clock, the bus and shared counters."""

    clock: Clock
    bus: EventBus
    viewer: str = "viewer-1"
    counters: Counter = field(default_factory=Counter)

    def emit(self, type: str, timestamp: float, confidence: float = 1.0, evidence=None, source: str = "",
             viewer: str | None = None) -> Event:
        """Publish an event on the bus and return it."""
        event = Event(type, timestamp, viewer or self.viewer, confidence, evidence or {}, source)
        self.bus.publish(event)
        return event


class Source:
    """A producer of timestamped chunks (see the module docstring)."""

    name = "source"

    def streams(self) -> list[StreamInfo]:
        raise NotImplementedError

    def start(self, ctx: Context) -> None:
        self.ctx = ctx

    def read(self, until: float) -> list[Chunk]:
        """Chunks with every timestamp ``<= until`` that have not been returned yet."""
        raise NotImplementedError

    @property
    def exhausted(self) -> bool:
        """True once the source will never produce again (end of a recording)."""
        return False

    def start_time(self) -> float | None:
        """The first timestamp of a recording, so a virtual clock can start there."""
        return None

    def next_time(self) -> float | None:
        """The timestamp of the next sample a recording holds (None: unknown, or live)."""
        return None

    def stop(self) -> None:
        pass


class ThreadedSource(Source):
    """A live source acquiring on its own thread into a bounded queue.

    Subclasses implement ``acquire()``, which returns the next chunk (blocking on the device)
    or ``None`` when the device has nothing right now. When the consumer falls behind and the
    queue is full, the oldest chunk is dropped, counted and reported as a ``sensor.gap``.
    """

    def __init__(self, max_chunks: int = 256) -> None:
        self._queue: queue.Queue[Chunk] = queue.Queue(maxsize=max_chunks)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dropped: list[Chunk] = []
        self._failures: list[tuple[str, str, float, int]] = []
        self._lock = threading.Lock()

    def acquire(self) -> Chunk | None:
        raise NotImplementedError

    def start(self, ctx: Context) -> None:
        super().start(ctx)
        self._thread = threading.Thread(target=self._loop, name=f"engage-{self.name}", daemon=True)
        self._thread.start()

    #: Retries of a failing ``acquire()`` wait this long at first, doubling up to ``RETRY_MAX_S``.
    RETRY_FIRST_S = 0.1
    RETRY_MAX_S = 5.0

    def _loop(self) -> None:
        failing: dict | None = None  # since when and how often acquire() has been failing
        while not self._stop.is_set():
            try:
                chunk = self.acquire()
            except Exception as exc:  # noqa: BLE001 - a device error is a gap and a retry, the thread goes on
                if failing is None:  # said once (the traceback at debug), not at every retry
                    failing = {"since": time.monotonic(), "count": 0, "wait": self.RETRY_FIRST_S}
                    log.warning("%s: acquisition failed: %s: %s; retrying with backoff", self.name,
                                type(exc).__name__, exc)
                    log.debug("%s: acquisition failed", self.name, exc_info=True)
                    with self._lock:
                        self._failures.append(("start", f"{type(exc).__name__}: {exc}", 0.0, 0))
                failing["count"] += 1
                self._stop.wait(failing["wait"])
                failing["wait"] = min(self.RETRY_MAX_S, failing["wait"] * 2)
                continue
            if failing is not None:
                spent = time.monotonic() - failing["since"]
                log.warning("%s: acquisition works again after %d failures (%.1f s)", self.name, failing["count"],
                            spent)
                with self._lock:
                    self._failures.append(("end", "acquisition works again", spent, failing["count"]))
                failing = None
            if chunk is None or len(chunk) == 0:
                continue
            while True:
                try:
                    self._queue.put_nowait(chunk)
                    break
                except queue.Full:
                    try:
                        dropped = self._queue.get_nowait()
                    except queue.Empty:
                        continue
                    with self._lock:
                        self._dropped.append(dropped)

    def read(self, until: float) -> list[Chunk]:
        with self._lock:
            dropped, self._dropped = self._dropped, []
            failures, self._failures = self._failures, []
        for what, reason, spent, count in failures:  # one gap when a device starts failing, one when it is back
            now = self.ctx.clock.now()
            self.ctx.counters[f"{self.name}.failures"] += count
            self.ctx.emit("sensor.gap", now - spent, evidence={
                "source": self.name, "reason": reason, "duration_s": spent if what == "end" else None,
                "failures": count}, source=self.name)
        for d in dropped:
            self.ctx.counters[f"{self.name}.dropped_samples"] += len(d)
            self.ctx.emit("sensor.gap", d.first_time, evidence={
                "stream": d.info.name, "duration_s": d.last_time - d.first_time, "reason": "queue full",
                "samples": len(d)}, source=self.name)
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


class Processor:
    """A stateful, causal step of the pipeline (see the module docstring)."""

    name = "processor"

    def start(self, ctx: Context) -> None:
        self.ctx = ctx

    def accepts(self, info: StreamInfo) -> bool:
        return False

    def process(self, chunk: Chunk) -> list[Chunk]:
        return []

    def tick(self, now: float) -> list[Chunk]:
        return []

    def flush(self, now: float) -> list[Chunk]:
        """The input has ended: return what is still held back (called once, before any ``close``)."""
        return []

    def close(self) -> None:
        pass


@dataclass
class RunStats:
    steps: int = 0
    start: float = 0.0
    end: float = 0.0
    chunks: int = 0
    samples: int = 0
    processor_errors: int = 0
    interrupted: bool = False

    @property
    def duration(self) -> float:
        return self.end - self.start


class Runtime:
    """Drives sources and processors on a clock; see the module docstring."""

    def __init__(
        self,
        clock: Clock,
        sources: Sequence[Source],
        processors: Sequence[Processor],
        bus: EventBus | None = None,
        step: float = 0.1,
        viewer: str = "viewer-1",
        max_idle_s: float = 30.0,
    ) -> None:
        if step <= 0:
            raise ValueError("runtime step must be positive")
        self.clock = clock
        self.sources = list(sources)
        self.processors = list(processors)
        self.ctx = Context(clock, bus or EventBus(), viewer)
        self.step = step
        self.max_idle_s = max_idle_s
        self._routes: dict[StreamInfo, list[Processor]] = {}
        self._stopped = threading.Event()
        self.stats = RunStats()

    @property
    def bus(self) -> EventBus:
        return self.ctx.bus

    def stop(self) -> None:
        """Ask a running ``run()`` to finish after the current step (thread-safe)."""
        self._stopped.set()

    def _targets(self, info: StreamInfo) -> list[Processor]:
        targets = self._routes.get(info)
        if targets is None:
            targets = [p for p in self.processors if p.accepts(info)]
            self._routes[info] = targets
        return targets

    def route(self, chunk: Chunk) -> None:
        """Hand ``chunk`` to every processor that accepts it, then route what they produce."""
        if len(chunk) == 0:
            return
        self.stats.chunks += 1
        self.stats.samples += len(chunk)
        for p in self._targets(chunk.info):
            self._route_all(self._call(p, p.process, chunk), p)

    def _route_all(self, chunks: Iterable[Chunk] | None, producer: Processor) -> None:
        for out in chunks or ():
            self.route(out)

    def _call(self, p: Processor, fn: Callable, arg):
        try:
            return fn(arg)
        except Exception as exc:  # noqa: BLE001 - a failing step is counted and reported, not fatal
            self.stats.processor_errors += 1
            self.ctx.counters[f"{p.name}.errors"] += 1
            if self.ctx.counters[f"{p.name}.errors"] <= 3:
                if isinstance(exc, EngageError):  # a typed error says what went wrong: no traceback
                    log.error("%s failed: %s", p.name, exc)
                else:
                    log.exception("%s failed", p.name)
            self.ctx.emit("pipeline.error", self.clock.now(), 0.0,
                          {"processor": p.name, "error": f"{type(exc).__name__}: {exc}"}, source="runtime")
            return []

    def _step(self, now: float) -> None:
        for s in self.sources:
            try:
                chunks = s.read(now)
            except Exception as exc:  # noqa: BLE001 - a broken source is a gap, not a crash
                self.ctx.counters[f"{s.name}.errors"] += 1
                log.exception("source %s failed", s.name)
                self.ctx.emit("sensor.gap", now, 0.0, {"source": s.name, "reason": f"{type(exc).__name__}: {exc}"},
                              source="runtime")
                continue
            for c in chunks:
                self.route(c)
        for p in self.processors:
            self._route_all(self._call(p, p.tick, now), p)
        self.stats.steps += 1

    def run(
        self,
        duration: float | None = None,
        until: float | None = None,
        on_step: Callable[[float], None] | None = None,
    ) -> RunStats:
        """Run until ``duration`` seconds have passed, ``until`` is reached, every source is
        exhausted or :meth:`stop` is called. Ctrl-C ends the run cleanly."""
        virtual = isinstance(self.clock, VirtualClock)
        if virtual:
            starts = [t for t in (s.start_time() for s in self.sources) if t is not None]
            if starts and min(starts) > self.clock.now():
                self.clock.set(min(starts))
        for p in self.processors:
            p.start(self.ctx)
        for s in self.sources:
            s.start(self.ctx)
        start = self.clock.now()
        end = until if until is not None else (start + duration if duration is not None else None)
        self.stats.start = start
        step_index = 0
        try:
            while not self._stopped.is_set():
                if virtual:
                    step_index += 1
                    now = start + step_index * self.step
                    if end is not None:
                        now = min(now, end)
                    self.clock.set(now)
                else:
                    now = self.clock.now()
                    if end is not None:
                        now = min(now, end)
                self._step(now)
                if on_step is not None:
                    on_step(now)
                if end is not None and now >= end:
                    break
                if self.sources and all(s.exhausted for s in self.sources):
                    break
                if virtual:  # a recording's long silence (a clock jump, a pause) is skipped, not stepped through
                    upcoming = [s.next_time() for s in self.sources if not s.exhausted]
                    if upcoming and None not in upcoming and min(upcoming) - now > self.max_idle_s:
                        step_index = max(step_index, int((min(upcoming) - start) / self.step) - 1)
                else:
                    time.sleep(max(0.0, start + (int((now - start) / self.step) + 1) * self.step - self.clock.now()))
        except KeyboardInterrupt:
            self.stats.interrupted = True
            log.warning("interrupted; closing cleanly")
        finally:
            self.stats.end = self.clock.now()
            self.flush(self.stats.end)
            self.close()
        return self.stats

    def flush(self, now: float) -> None:
        """End of input: each processor, in pipeline order, hands over what it still holds back, and that is
        routed downstream (so a later step's flush sees it)."""
        for p in self.processors:
            self._route_all(self._call(p, p.flush, now), p)

    def close(self) -> None:
        for s in self.sources:
            try:
                s.stop()
            except Exception:  # noqa: BLE001
                log.exception("stopping %s failed", s.name)
        for p in self.processors:
            try:
                p.close()
            except Exception:  # noqa: BLE001
                log.exception("closing %s failed", p.name)
