"""The recorder: LSL inlets and in-process streams into one XDF file, as LabRecorder would write it.

LSL streams are recorded raw (their own timestamps) with a ClockOffset chunk from
``time_correction()`` when the stream is opened, every ``clock_offset_interval`` seconds and when
the recording closes, so pyxdf's clock synchronisation lines them up exactly as it does
LabRecorder files; every stream has at least one (see :meth:`XdfRecorder.close`). Streams are resolved
continuously: one that appears later gets its header when it appears; one that dies leaves a
gap (logged, counted, and written as a ``sensor.gap`` event on the recorder's own
``engage-record`` marker stream) while the others go on; when it comes back it continues in
the same XDF stream.

A live session's recorder follows the session's sensors instead of resolving on its own:
:meth:`XdfRecorder.record_stream` is handed each LSL stream a sensor binds, and records it raw,
exactly as ``engage record`` would (the header XML verbatim, the original channel format, raw
timestamps, clock offsets, footer), while the pipeline reads its own, clock-corrected inlet.

In-process streams (a pipeline's derived streams and events) come in through
:class:`RecorderSink`, a runtime processor, already on the LSL clock. Each gets the ``source_id``
its LSL outlet would have (``engage-<session>-<viewer>-<name>``, unique in the file) and a
ClockOffset of zero now and then, so pyxdf synchronises them like any LSL stream, without a warning.

>>> rec = XdfRecorder("session.xdf", ["type=EEG", "name=Markers"])   # doctest: +SKIP
>>> rec.start(); time.sleep(60); rec.close()                          # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from engage.core.event import Event
from engage.core.runtime import Processor
from engage.core.stream import IRREGULAR_RATE, Chunk, StreamInfo

from .xdf import RecordingError, XdfWriter

log = logging.getLogger(__name__)

#: The recorder's own marker stream: gaps and notes about the recording, one JSON event each.
RECORD_LOG_STREAM = StreamInfo("engage-record", "Markers", ("event",), ("",), IRREGULAR_RATE, "engage-record",
                               channel_format="string")
#: Source ids of in-process streams kept as they are (their own contract), not made per session.
_OWN_SOURCE_IDS = ("engage-events-",)


def events_stream(session: str = "default") -> StreamInfo:
    """The stream events are recorded on: the same name, type and source_id as the LSL event outlet."""
    return StreamInfo("engage-events", "Markers", ("event",), ("",), IRREGULAR_RATE, f"engage-events-{session}",
                      channel_format="string")


@dataclass
class RecordedGap:
    stream: str
    start: float
    duration_s: float | None
    reason: str


class XdfRecorder:
    """Records LSL streams matching ``predicates`` and any in-process stream into ``target``.

    Thread-safe: the LSL streams are pulled on one background thread (:meth:`start`), and
    :meth:`write_chunk` / :meth:`write_event` may be called from anywhere. A write error
    (disk full, medium gone) stops the recording; :attr:`error` then holds a
    :class:`RecordingError` naming the file and how much of it stays readable.
    """

    def __init__(self, target: str | os.PathLike, predicates: Sequence[str] = (), resolve_interval: float = 0.5,
                 clock_offset_interval: float = 5.0, flush_interval: float = 0.5, session: str = "default",
                 on_gap: Callable[[RecordedGap], None] | None = None) -> None:
        self.writer = XdfWriter(target, flush_interval=flush_interval)
        self.predicates = list(predicates)
        self.resolve_interval = resolve_interval
        self.clock_offset_interval = clock_offset_interval
        self.session = session
        self.on_gap = on_gap
        self.gaps: list[RecordedGap] = []
        #: Chunks that could not be recorded (a stream whose samples do not fit its header).
        self.bad_chunks = 0
        self._error: RecordingError | None = None
        self._ids: dict[StreamInfo, int] = {}
        self._source_ids: set[str] = set()
        self._offset_due: dict[int, float] = {}  # in-process stream id -> stream time of its next zero offset
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inlets = None
        self._lsl_lock = threading.Lock()
        self._added: deque = deque()  # streams handed in by record_stream, for the loop to declare
        self.started_at: float | None = None

    @property
    def error(self) -> RecordingError | None:
        """Why the recording stopped (disk full, unwritable medium), or None."""
        return self._error or self.writer.error

    @error.setter
    def error(self, value: RecordingError | None) -> None:
        self._error = value

    # ------------------------------------------------------------------ in-process streams
    def stream_id(self, info: StreamInfo, role: str | None = None) -> int:
        """The XDF stream id of an in-process stream (declared on first use; ``role``: ``raw``,
        ``derived``, ``events`` or ``log``, written in its header for a replay to read)."""
        sid = self._ids.get(info)
        if sid is None:
            from engage.events.lsl_outlets import outlet_source_id, unique_source_id

            own = info.source_id.startswith(_OWN_SOURCE_IDS) and info.source_id not in self._source_ids
            source_id = info.source_id if own else unique_source_id(outlet_source_id(info, self.session),
                                                                     self._source_ids)
            self._source_ids.add(source_id)
            sid = self._ids[info] = self.writer.add_stream(replace(info, source_id=source_id), role=role)
        return sid

    def write_chunk(self, chunk: Chunk, role: str | None = None) -> None:
        if len(chunk) and self.error is None:
            self._guard(lambda: self._write(self.stream_id(chunk.info, role), chunk.data, chunk.timestamps))

    def write_event(self, event: Event, stream: StreamInfo | None = None) -> None:
        """One event as a JSON string sample on the events stream (default ``engage-events``; the
        recorder's own notes go on :data:`RECORD_LOG_STREAM`)."""
        info = stream or events_stream(self.session)
        role = "log" if info is RECORD_LOG_STREAM else "events"
        if self.error is None:
            self._guard(lambda: self._write(self.stream_id(info, role), [[event.to_json()]], [event.timestamp]))

    def _write(self, sid: int, data, timestamps) -> None:
        self.writer.write_samples(sid, data, timestamps)
        # in-process streams are on this machine's LSL clock: offset zero, written now and then like
        # LabRecorder's offsets (on the stream's own time, which a faster-than-real-time session moves too)
        t = float(timestamps[-1])
        due = self._offset_due.get(sid)
        if due is None or t >= due:
            self.writer.write_clock_offset(sid, float(timestamps[0]) if due is None else t, 0.0)
            self._offset_due[sid] = t + self.clock_offset_interval

    def _final_offsets(self) -> None:
        """A last zero offset at each in-process stream's last sample, so its clock fit spans all of it."""
        for sid in list(self._offset_due):
            s = self.writer._streams[sid]
            if s.last is not None and s.offsets and s.last > s.offsets[-1][0]:
                self.writer.write_clock_offset(sid, s.last, 0.0)

    def _guard(self, fn) -> None:
        try:
            fn()
        except RecordingError as exc:
            self.error = exc
            self._stop.set()
            raise

    # ------------------------------------------------------------------ LSL streams
    def start(self) -> None:
        """Start resolving and recording the LSL streams (no-op without predicates: see :meth:`record_stream`)."""
        if self.predicates:
            self._start_lsl()

    def _start_lsl(self) -> None:
        with self._lsl_lock:
            if self._inlets is not None:
                return
            from engage.sensors.lsl import InletSet

            import pylsl

            self._pylsl = pylsl
            self._inlets = InletSet(self.predicates, clocksync=False, dejitter=False, raw=True, allow_empty=True)
            self.started_at = pylsl.local_clock()
            self._thread = threading.Thread(target=self._loop, name="engage-recorder", daemon=True)
            self._thread.start()
            # time_correction() blocks for a round trip (longer for a new or dying stream): on threads of their
            # own, so it never holds up the pulling of samples
            self._offset_thread = threading.Thread(target=self._offset_loop, name="engage-recorder-clock",
                                                   daemon=True)
            self._offset_thread.start()

    def record_stream(self, stream) -> None:
        """Record one LSL stream raw: a resolved ``pylsl.StreamInfo``, or an
        :class:`~engage.sensors.lsl.Inlet` a sensor has just bound (its ``lsl_info``). Called on the
        caller's thread (it opens an inlet); a stream handed in again after it came back continues in
        the same XDF stream. Does nothing once the recording has stopped."""
        if self._stop.is_set() or self.error is not None:
            return
        self._start_lsl()
        got = self._inlets.add(getattr(stream, "lsl_info", None) or stream)
        if got is None:
            return
        self._added.append(got)
        binding = getattr(stream, "extra", {}).get("binding")
        if binding is not None and not got[1]:  # how the session reads it: a replay maps it the same way
            info = got[0].lsl_info
            evidence = {"name": info.name(), "type": info.type(), "source_id": info.source_id(),
                        "hostname": info.hostname(), **binding}
            try:
                self.write_event(Event("stream.bound", self._pylsl.local_clock(), str(binding.get("viewer", "")),
                                       1.0, evidence, "engage-record"), RECORD_LOG_STREAM)
            except RecordingError:
                pass  # kept in self.error

    @property
    def inlets(self):
        return list(self._inlets.inlets.values()) if self._inlets is not None else []

    def unmatched(self) -> list[str]:
        """Predicates that have matched no stream so far."""
        return self._inlets.unmatched() if self._inlets is not None else []

    def _loop(self) -> None:
        next_resolve = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                new, back = [], []
                if now >= next_resolve:
                    next_resolve = now + self.resolve_interval
                    new, back = self._inlets.resolve()
                while self._added:
                    item, again = self._added.popleft()
                    (back if again and "sid" in item.extra else new).append(item)
                for item in new:
                    if "sid" not in item.extra:
                        self._declare(item)
                for item in back:
                    self._gap_closed(item)
                got_any = False
                for item in self.inlets:
                    if "sid" not in item.extra:
                        continue
                    if item.lost:
                        if "gap" not in item.extra:
                            self._gap_opened(item)
                        continue
                    got = self._inlets.pull(item)
                    if got is not None:
                        got_any = True
                        try:
                            self.writer.write_samples(item.extra["sid"], got[0], got[1])
                        except ValueError as exc:  # one malformed stream never stops the recording
                            self.bad_chunks += 1
                            log.warning("%s: stream %r: chunk not recorded: %s", self.writer.name, item.info.name, exc)
                            continue
                        item.extra["last_stamp"] = float(got[1][-1])
                self.writer.maybe_flush()
                if not got_any:
                    self._stop.wait(0.005)
        except RecordingError as exc:
            self.error = exc
        except Exception as exc:  # noqa: BLE001 - reported to the caller rather than dying silently
            log.exception("recorder thread failed")
            self.error = RecordingError(f"{self.writer.name}: recording stopped: {type(exc).__name__}: {exc}")

    def _declare(self, item) -> None:
        """Write a new LSL stream's header (verbatim; control characters XML cannot hold made safe)."""
        try:
            sid = self.writer.add_stream_xml(item.xml)
        except ValueError as exc:  # one unusable header never stops the recording of the others
            self.bad_chunks += 1
            log.warning("%s: stream %r not recorded: %s", self.writer.name, item.info.name, exc)
            item.extra["sid_error"] = str(exc)
            return
        item.extra["next_offset"] = 0.0
        item.extra["sid"] = sid

    def _offset_loop(self) -> None:
        """Starts each stream's due clock-offset measurement on a thread of its own, as LabRecorder does:
        ``time_correction()`` blocks for a round trip, up to its timeout for an outlet that does not answer,
        and one such stream must not hold up the others' offsets."""
        while not self._stop.is_set():
            for item in self.inlets:
                if not item.lost and "sid" in item.extra and time.monotonic() >= item.extra["next_offset"]:
                    self._measure_offset(item)
            self._stop.wait(0.05)

    def _measure_offset(self, item, timeout: float = 2.0) -> None:
        """Measure ``item``'s clock offset on a worker thread (none if one is still measuring it)."""
        worker = item.extra.get("offset_worker")
        if worker is not None and worker.is_alive():
            return
        worker = item.extra["offset_worker"] = threading.Thread(target=self._try_offset, args=(item, timeout),
                                                               name="engage-recorder-offset", daemon=True)
        worker.start()

    def _join_offset_workers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for item in self.inlets:
            worker = item.extra.get("offset_worker")
            if worker is not None:
                worker.join(max(0.0, deadline - time.monotonic()))

    #: After a failed measurement, a stream with no clock offset yet is measured again this soon (seconds).
    OFFSET_RETRY_S = 0.5

    def _clock_offset(self, item, timeout: float = 2.0) -> bool:
        """Measure and write one ClockOffset of ``item`` when one is due; returns whether it did. A failed
        measurement is tried again soon while the stream has none, else at the usual interval."""
        now = time.monotonic()
        if now < item.extra["next_offset"]:
            return False
        item.extra["next_offset"] = now + self.clock_offset_interval
        inlet = item.inlet
        if inlet is None:
            return False
        try:
            offset = inlet.time_correction(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - lost, or timed out (no answer to liblsl's time probes in time)
            if not item.extra.get("offsets"):
                item.extra["next_offset"] = time.monotonic() + self.OFFSET_RETRY_S
            if not isinstance(exc, self._pylsl.util.LostError):
                log.info("time_correction of %r failed: %s", item.info.name, exc or type(exc).__name__)
            return False
        local = self._pylsl.local_clock()
        self.writer.write_clock_offset(item.extra["sid"], local - offset, offset)
        item.extra["offsets"] = item.extra.get("offsets", 0) + 1
        return True

    def _closing_offsets(self, timeout: float = 2.0) -> None:
        """At close, one more offset for every stream (measured in parallel), so pyxdf's clock fit spans the
        whole recording. A stream that still has none - its outlet never answered liblsl's time probes in
        time, e.g. on a machine under heavy load - and that comes from this host gets an offset of zero: both
        clocks are this machine's ``local_clock()``, which is what a measurement would find to within its
        noise. Other hosts' streams are named in a warning (pyxdf will not synchronise them)."""
        import socket

        self._join_offset_workers(timeout + 1.0)  # the measurements under way
        for item in self.inlets:
            if not item.lost and "sid" in item.extra and item.inlet is not None:
                item.extra["next_offset"] = 0.0
                self._measure_offset(item, timeout)
        self._join_offset_workers(timeout + 1.0)
        host = socket.gethostname()
        for item in self.inlets:
            if "sid" not in item.extra or item.extra.get("offsets"):
                continue
            info = item.lsl_info
            if info is not None and info.hostname() == host:
                log.warning("%s: stream %r: no clock offset could be measured (its outlet did not answer liblsl's "
                            "time probes); it runs on this machine, so its clock is this machine's: offset 0 written",
                            self.writer.name, item.info.name)
                self.writer.write_clock_offset(item.extra["sid"], self._pylsl.local_clock(), 0.0)
                item.extra["offsets"] = 1
            else:
                log.warning("%s: stream %r: no clock offset could be measured; pyxdf cannot synchronise it to the "
                            "other streams", self.writer.name, item.info.name)

    def _try_offset(self, item, timeout: float) -> None:
        try:
            self._clock_offset(item, timeout=timeout)
        except RecordingError as exc:
            if not self.writer.closed:  # (a measurement that outlived the recording is not an error)
                self.error = exc

    def _gap_opened(self, item) -> None:
        start = item.extra.get("last_stamp", item.lost_at)
        gap = RecordedGap(item.info.name, start, None, "stream lost")
        item.extra["gap"] = gap
        self._report(gap)

    def _gap_closed(self, item) -> None:
        gap = item.extra.pop("gap", None)
        item.extra["next_offset"] = 0.0
        if gap is not None:
            back = RecordedGap(gap.stream, gap.start, self._pylsl.local_clock() - gap.start, "stream recovered")
            self._report(back)

    def _report(self, gap: RecordedGap) -> None:
        self.gaps.append(gap)
        log.warning("%s: %s %r at %.3f%s", self.writer.name, gap.reason, gap.stream, gap.start,
                    "" if gap.duration_s is None else f" after {gap.duration_s:.2f} s")
        evidence = {"stream": gap.stream, "duration_s": gap.duration_s, "reason": gap.reason}
        self.write_event(Event("sensor.gap", gap.start, "", 1.0, evidence, "engage-record"), RECORD_LOG_STREAM)
        if self.on_gap is not None:
            self.on_gap(gap)

    # ------------------------------------------------------------------ end
    def stop(self) -> None:
        self._stop.set()
        for name in ("_thread", "_offset_thread"):
            thread = getattr(self, name, None)
            if thread is not None:
                thread.join(timeout=5.0)
                setattr(self, name, None)
        if self._inlets is not None:
            if self.error is None:
                self._closing_offsets()
            self._join_offset_workers(3.0)
            self._inlets.close()

    def close(self) -> None:
        """Stop recording, write the stream footers and close the file."""
        self.stop()
        try:
            if self.error is None:
                self._final_offsets()
            self.writer.close()
        except RecordingError as exc:
            self.error = self.error or exc

    def __enter__(self) -> "XdfRecorder":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RecorderSink(Processor):
    """Records a pipeline's streams (all, or those whose type is in ``types``) and its events.

    ``lsl_raw``: chunks straight from an LSL inlet are left out, because the recorder records
    those streams raw itself (:meth:`XdfRecorder.record_stream`): a recording keeps each device's
    stream as it came, and what the pipeline derives beside it.

    >>> rec = XdfRecorder("session.xdf")                                      # doctest: +SKIP
    >>> Session([source], clock, extra_processors=[RecorderSink(rec)]).run()  # doctest: +SKIP
    """

    name = "xdf-recorder"

    def __init__(self, recorder: XdfRecorder, types: Sequence[str] | None = None, events: bool = True,
                 close_on_end: bool = True, lsl_raw: bool = False,
                 raw_streams: Callable[[], set[StreamInfo]] | None = None) -> None:
        self.recorder = recorder
        self.types = None if types is None else set(types)
        self.events = events
        self.close_on_end = close_on_end
        self.lsl_raw = lsl_raw
        #: The streams the session's sources produce (raw input; all others are derived), when known.
        self.raw_streams = raw_streams
        self._roles: dict[StreamInfo, str | None] = {}

    def start(self, ctx) -> None:
        super().start(ctx)
        if self.events:
            ctx.bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        try:
            self.recorder.write_event(event)
        except RecordingError:
            pass  # kept in recorder.error; the session goes on

    def accepts(self, info: StreamInfo) -> bool:
        if self.lsl_raw and any(k == "lsl_uid" for k, _ in info.metadata):
            return False
        return self.types is None or info.type in self.types

    def _role(self, info: StreamInfo) -> str | None:
        role = self._roles.get(info, "?")
        if role == "?":
            role = None if self.raw_streams is None else ("raw" if info in self.raw_streams() else "derived")
            self._roles[info] = role
        return role

    def process(self, chunk: Chunk) -> list[Chunk]:
        self.recorder.write_chunk(chunk, self._role(chunk.info))
        return []

    def tick(self, now: float) -> list[Chunk]:
        if self.recorder.error is None:
            try:
                self.recorder.writer.maybe_flush()
            except RecordingError as exc:
                self.recorder.error = exc
        return []

    def close(self) -> None:
        if self.close_on_end:
            self.recorder.close()
