"""Where events go: JSON lines on disk and an LSL marker outlet (and, later, OSC/WebSocket).

Each publisher is a bus subscriber: ``bus.subscribe(publisher)``.

The LSL outlet is an irregular-rate string stream of type ``Markers`` with one channel; each
sample is one event as a JSON object, stamped with the event's own timestamp, and its
``source_id`` is stable (``engage-events-<session>``) so LabRecorder and other tools reconnect to
it after a restart. Its header carries the engage mark (role ``events``), so no engage sensor reads it.

>>> import io
>>> buf = io.StringIO(); w = JsonlEventWriter(buf)
>>> w(Event("boredom.onset", 1.0, "v1", 0.9)); buf.getvalue().count("\\n")
1
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import IO

from engage.core import Event

log = logging.getLogger(__name__)


class JsonlEventWriter:
    """Writes every event it receives as one JSON line; flushes each line so a crash loses nothing."""

    def __init__(self, target: str | Path | IO[str]) -> None:
        if isinstance(target, (str, Path)):
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] = open(path, "w", encoding="utf-8")
            self._owned = True
        else:
            self._file, self._owned = target, False
        self.count = 0

    def __call__(self, event: Event) -> None:
        self._file.write(event.to_json() + "\n")
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        if self._owned and not self._file.closed:
            self._file.close()


class LslEventOutlet:
    """Publishes events on an LSL string marker stream; ``time_offset`` is added to every timestamp
    (replay uses it to move a recording's events onto the current LSL clock)."""

    def __init__(self, session: str = "default", name: str = "engage-events", time_offset: float = 0.0) -> None:
        import pylsl

        from engage.sensors.lsl import mark_engage

        self.time_offset = time_offset
        self.source_id = f"engage-events-{session}"
        info = pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, self.source_id)
        desc = info.desc()
        mark_engage(desc, "events", session)
        desc.append_child_value("format", "one JSON object per sample (engage event)")
        ch = desc.append_child("channels").append_child("channel")
        ch.append_child_value("label", "event")
        ch.append_child_value("type", "Markers")
        self._outlet = pylsl.StreamOutlet(info)
        self.count = 0

    def __call__(self, event: Event) -> None:
        if self.time_offset:  # the JSON's timestamp on the same clock as the LSL stamp
            event = replace(event, timestamp=event.timestamp + self.time_offset)
        self._outlet.push_sample([event.to_json()], event.timestamp)
        self.count += 1

    def have_consumers(self) -> bool:
        return bool(self._outlet.have_consumers())

    def close(self, linger_s: float = 0.5) -> None:
        """Destroy the outlet, first giving connected consumers ``linger_s`` to receive what was pushed
        (liblsl sends from its own thread; destroying the outlet at once can drop the last samples)."""
        if self._outlet is not None and self.count and self._outlet.have_consumers():
            time.sleep(linger_s)
        self._outlet = None
