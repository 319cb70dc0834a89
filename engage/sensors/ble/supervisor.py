"""Several straps at once (one per viewer), each kept connected by a :class:`StrapLink`, on
one asyncio loop in a background thread; and :class:`StrapSource`, which puts them into the
runtime like any other source.

>>> sup = BleSupervisor([StrapConfig("A0:9E:1A:12:34:56", viewer="viewer-1")])   # doctest: +SKIP
>>> sup.start(); chunks, gaps = sup.drain(); sup.stop()                            # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from engage.core.runtime import Source
from engage.core.stream import Chunk, StreamInfo

from .client import Backoff, StrapLink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StrapConfig:
    """One strap to keep connected: MAC address or name, whose viewer, and whether to ask for ECG."""

    target: str
    viewer: str = "viewer-1"
    label: str | None = None
    ecg: bool = True


class BleSupervisor:
    """Run one supervised link per strap on a private event loop thread.

    ``drain()`` returns (chunks, gaps) gathered since the last call; a gap is
    ``(timestamp, evidence, viewer)``. ``stop()`` shuts every link down cleanly (ECG stopped,
    notifications unsubscribed, disconnected) and joins the thread.
    """

    def __init__(self, straps: list[StrapConfig], clock: Callable[[], float] | None = None,
                 backoff: Callable[[], Backoff] | None = None, connect_timeout: float = 10.0,
                 scan_timeout: float = 10.0) -> None:
        if not straps:
            raise ValueError("BleSupervisor needs at least one strap")
        self._lock = threading.Lock()
        self._chunks: list[Chunk] = []
        self._gaps: list[tuple[float, dict, str]] = []
        self.links = [
            StrapLink(s.target, self._on_chunk, self._gap_cb(s.viewer), label=s.label, viewer=s.viewer, clock=clock,
                      ecg=s.ecg, backoff=backoff() if backoff else None, connect_timeout=connect_timeout,
                      scan_timeout=scan_timeout)
            for s in straps]
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._done: asyncio.Future | None = None

    def _on_chunk(self, chunk: Chunk) -> None:
        with self._lock:
            self._chunks.append(chunk)

    def _gap_cb(self, viewer: str):
        def cb(t: float, evidence: dict) -> None:
            with self._lock:
                self._gaps.append((t, evidence, viewer))
        return cb

    def streams(self) -> list[StreamInfo]:
        return [info for link in self.links for info in link.streams.values()]

    @property
    def counters(self) -> dict[str, Counter]:
        return {link.label: link.counters for link in self.links}

    def start(self) -> "BleSupervisor":
        self._thread = threading.Thread(target=self._main, name="engage-ble", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def _main(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._run())
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        scan_lock = asyncio.Lock()
        for link in self.links:
            link.scan_lock = scan_lock
        self._ready.set()
        results = await asyncio.gather(*(link.run(self._stop) for link in self.links), return_exceptions=True)
        for link, r in zip(self.links, results):
            if isinstance(r, BaseException):
                log.error("%s: link ended with %r", link.label, r)

    def drain(self) -> tuple[list[Chunk], list[tuple[float, dict, str]]]:
        with self._lock:
            chunks, self._chunks = self._chunks, []
            gaps, self._gaps = self._gaps, []
        return chunks, gaps

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop is not None and self._stop is not None and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # loop already closed
                pass
        if self._thread is not None:
            self._thread.join(timeout)


class StrapSource(Source):
    """Straps as a runtime source: their RR/StrapHR/ECG chunks, and ``sensor.gap`` events."""

    name = "ble"

    def __init__(self, straps: list[StrapConfig], **kw) -> None:
        self.supervisor = BleSupervisor(straps, **kw)

    def streams(self) -> list[StreamInfo]:
        return self.supervisor.streams()

    def start(self, ctx) -> None:
        super().start(ctx)
        self.supervisor.start()

    def read(self, until: float) -> list[Chunk]:
        chunks, gaps = self.supervisor.drain()
        for t, ev, viewer in gaps:
            self.ctx.counters[f"{self.name}.gaps"] += 1
            self.ctx.emit("sensor.gap", t, evidence=ev, source=self.name, viewer=viewer)
        return chunks

    def stop(self) -> None:
        self.supervisor.stop()
        chunks, gaps = self.supervisor.drain()
        for t, ev, viewer in gaps:
            self.ctx.emit("sensor.gap", t, evidence=ev, source=self.name, viewer=viewer)
