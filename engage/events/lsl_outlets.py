"""LSL outlets for every stream a pipeline derives, so LabRecorder records them beside the raw data.

:class:`LslOutletSink` is a runtime processor (a sink): for each stream it accepts (by default
the derived ones: heart rate, HRV, EDA features, face features, features, engagement, strap
streams) it opens one outlet the first time a chunk arrives, with the channel labels, units and
types in the stream's ``desc/channels``, the ``<engage>`` mark that keeps engage's sensors from
reading it back (:func:`~engage.sensors.lsl.mark_engage`), and a stable ``source_id``
(``engage-<session>-<viewer>-<name>``, numbered when two streams would share one), so LabRecorder
and other tools reconnect after a restart. Samples go out with their own timestamps (plus ``time_offset``, which replay uses to
move a recording onto the current LSL clock).

>>> sink = LslOutletSink(session="s1")                                        # doctest: +SKIP
>>> Session([source], LslClock(), extra_processors=[sink]).run()               # doctest: +SKIP
>>> outlet_source_id(StreamInfo("hr", "HeartRate", ("hr_bpm",), ("bpm",), 0.0, "x"), "s1")
'engage-s1-viewer-1-hr'
"""

from __future__ import annotations

import logging
import re
import time
from typing import Sequence

import numpy as np

from engage.core import Chunk, Processor, StreamInfo

log = logging.getLogger(__name__)

#: Stream types the pipeline derives (published by default).
DERIVED_TYPES = ("HeartRate", "HRV", "EDAFeatures", "FaceFeatures", "Gaze", "Blinks", "Features",
                 "FeaturesRelative", "Engagement", "GroupEngagement", "RR", "StrapHR", "rPPG")


def outlet_source_id(info: StreamInfo, session: str = "default") -> str:
    """The stable ``source_id`` of the outlet that publishes ``info``: ``engage-<session>-<viewer>-<name>``,
    the viewer said once when the stream's name already starts with it (``S01-eda-features``).

    >>> outlet_source_id(StreamInfo("S01-eda-features", "EDAFeatures", ("x",), ("",), 4.0, "x", viewer="S01"), "live")
    'engage-live-S01-eda-features'
    """
    name = info.name
    if info.viewer and name.startswith(f"{info.viewer}-"):
        name = name[len(info.viewer) + 1:]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"engage-{session}-{info.viewer}-{name}")


def unique_source_id(wanted: str, taken) -> str:
    """``wanted``, or ``wanted-2``, ``wanted-3``… when it is among ``taken``.

    >>> unique_source_id("engage-s-v-hr", ["engage-s-v-hr"])
    'engage-s-v-hr-2'
    """
    taken = set(taken)
    n, sid = 1, wanted
    while sid in taken:
        n += 1
        sid = f"{wanted}-{n}"
    return sid


def make_lsl_info(info: StreamInfo, source_id: str, role: str = "derived", session: str = ""):
    """A ``pylsl.StreamInfo`` for ``info`` with channel labels, units and types in its description and
    the engage mark of ``role`` (``derived``, ``sensor`` for a bridged device, …)."""
    import pylsl

    from engage.sensors.lsl import mark_engage

    fmt = pylsl.cf_string if info.is_string else pylsl.cf_double64
    lsl_info = pylsl.StreamInfo(info.name, info.type, info.channel_count, info.nominal_rate, fmt, source_id)
    desc = lsl_info.desc()
    mark_engage(desc, role, session, info.viewer)
    desc.append_child_value("viewer", info.viewer)
    channels = desc.append_child("channels")
    for label, unit in zip(info.channels, info.units):
        ch = channels.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", unit)
        ch.append_child_value("type", info.type)
    return lsl_info


class LslOutletSink(Processor):
    """Publishes chunks on LSL outlets, one per stream (see the module docstring).

    ``types``: the stream types to publish (default :data:`DERIVED_TYPES`; ``None``: every
    stream). ``time_offset`` is added to every timestamp. ``role`` marks the outlets
    (``derived``; ``sensor`` for a bridge that publishes a device's own data, which sessions read).
    """

    name = "lsl-outlets"

    def __init__(self, session: str = "default", types: Sequence[str] | None = DERIVED_TYPES,
                 time_offset: float = 0.0, linger_s: float = 0.5, role: str = "derived") -> None:
        self.session = session
        self.types = None if types is None else set(types)
        self.time_offset = time_offset
        self.linger_s = linger_s
        self.role = role
        self.outlets: dict[StreamInfo, object] = {}
        self.source_ids: dict[StreamInfo, str] = {}
        self.pushed = 0

    def accepts(self, info: StreamInfo) -> bool:
        return self.types is None or info.type in self.types

    def outlet(self, info: StreamInfo):
        """The outlet of ``info`` (created on first use)."""
        out = self.outlets.get(info)
        if out is None:
            import pylsl

            sid = unique_source_id(outlet_source_id(info, self.session), self.source_ids.values())
            out = pylsl.StreamOutlet(make_lsl_info(info, sid, self.role, self.session))
            self.outlets[info] = out
            self.source_ids[info] = sid
            log.info("LSL outlet %r (%s) opened", info.name, sid)
        return out

    def process(self, chunk: Chunk) -> list[Chunk]:
        if len(chunk) == 0:
            return []
        out = self.outlet(chunk.info)
        stamps = (chunk.timestamps + self.time_offset).tolist()
        if chunk.info.is_string:
            out.push_chunk([[str(v) for v in row] for row in chunk.data], stamps)
        else:
            out.push_chunk(np.ascontiguousarray(chunk.data, dtype=np.float64), stamps)
        self.pushed += len(chunk)
        return []

    def close(self) -> None:
        if self.pushed and any(o.have_consumers() for o in self.outlets.values()):
            time.sleep(self.linger_s)  # liblsl sends from its own thread; let consumers get the last samples
        self.outlets.clear()


# ---------------------------------------------------------------------------------------------
# A recording played back as it was recorded
# ---------------------------------------------------------------------------------------------

_LSL_FORMATS = ("float32", "double64", "string", "int32", "int16", "int8", "int64")


def _copy_children(src, dst) -> None:
    """Copy an ElementTree element's children into a pylsl XML element (text leaves as values)."""
    for child in src:
        if len(child):
            _copy_children(child, dst.append_child(child.tag))
        else:
            dst.append_child_value(child.tag, child.text or "")


def lsl_info_from_header(header: str, session: str = "", role: str = "replay"):
    """A ``pylsl.StreamInfo`` that reproduces a recorded stream's XML header: its name, type, channel
    count and format, rate, source_id and whole ``desc`` (channel labels, units, the manufacturer …),
    plus the engage mark of ``role`` in place of any mark it had.

    >>> lsl_info_from_header("<info><name>eeg</name><type>EEG</type><channel_count>2</channel_count>"
    ...     "<nominal_srate>250</nominal_srate><channel_format>float32</channel_format><source_id>amp"
    ...     "</source_id><desc><manufacturer>Acme</manufacturer></desc></info>").channel_format()  # doctest: +SKIP
    1
    """
    import pylsl
    from xml.etree import ElementTree

    from engage.core.stream import xml_restore, xml_safe
    from engage.sensors.lsl import ENGAGE_ELEMENT, mark_engage

    root = ElementTree.fromstring(xml_safe(header))

    def text(path: str) -> str:
        return xml_restore((root.findtext(path) or "").strip())

    fmt = text("channel_format")
    if fmt not in _LSL_FORMATS:
        raise ValueError(f"recorded stream {text('name')!r}: unknown channel_format {fmt!r}")
    try:
        rate = float(text("nominal_srate") or 0.0)
    except ValueError:
        rate = 0.0
    info = pylsl.StreamInfo(text("name") or "stream", text("type"), int(text("channel_count") or 0),
                            rate if rate >= 0 and rate == rate else 0.0, fmt, text("source_id"))
    desc = root.find("desc")
    if desc is not None:
        _copy_children([c for c in desc if c.tag != ENGAGE_ELEMENT], info.desc())
    mark_engage(info.desc(), role, session)
    return info


class RecordingPlayer:
    """Plays a recording onto LSL like a player: every stream's outlet is declared from its recorded header
    (original name, type, channel format, source_id and description; marked ``replay`` so engage's own
    sensors leave it alone) before the first sample goes out, then a ``lead_in_s`` pause lets consumers
    connect, then :meth:`advance` pushes each sample when the clock reaches it, its timestamp moved onto
    this machine's LSL clock (``offset``). Engage events in a recorded events stream have their JSON
    ``timestamp`` moved the same way, so the JSON and the LSL stamp agree.

    ``source`` is :meth:`~engage.sensors.replay.XdfReplay.player_source`, ``recorded`` its
    :attr:`~engage.sensors.replay.XdfReplay.recorded` list.
    """

    def __init__(self, source, recorded, session: str = "replay", lead_in_s: float = 2.0) -> None:
        self.source = source
        self.recorded = recorded
        self.session = session
        self.lead_in_s = lead_in_s
        self.outlets: dict[int, object] = {}
        self.offset = 0.0
        self.pushed = 0

    def declare(self) -> None:
        """Create every outlet (before anything is pushed)."""
        import pylsl

        for i, r in enumerate(self.recorded):
            try:
                info = lsl_info_from_header(r.header, self.session) if r.header else \
                    make_lsl_info(r.info, r.info.source_id, "replay", self.session)
            except ValueError as exc:
                log.warning("not published: %s", exc)
                continue
            self.outlets[i] = pylsl.StreamOutlet(info)

    def start(self, recording_start: float) -> float:
        """Wait the lead-in, then fix the offset that puts ``recording_start`` at "now"; returns it."""
        import pylsl

        if self.lead_in_s > 0:
            time.sleep(self.lead_in_s)
        self.offset = pylsl.local_clock() - recording_start
        return self.offset

    def advance(self, now: float) -> None:
        """Push every sample recorded up to ``now`` (recording clock)."""
        from engage.core.event import Event

        for chunk in self.source.read(now):
            index = int(dict(chunk.info.metadata)["recorded_index"])
            out = self.outlets.get(index)
            if out is None:
                continue
            stamps = (np.asarray(chunk.timestamps, dtype=np.float64) + self.offset).tolist()
            if chunk.info.is_string:
                rows = [[str(v) for v in row] for row in chunk.data]
                if self.recorded[index].role == "events" and self.offset:
                    rows = [[_shift_event(row[0], self.offset, Event)] + row[1:] for row in rows]
                out.push_chunk(rows, stamps)
            else:
                out.push_chunk(np.ascontiguousarray(chunk.data), stamps)
            self.pushed += len(chunk)

    def close(self, linger_s: float = 0.5) -> None:
        if self.pushed and any(o.have_consumers() for o in self.outlets.values()):
            time.sleep(linger_s)
        self.outlets.clear()


def _shift_event(text: str, offset: float, event_cls) -> str:
    """An event's JSON with its timestamp moved by ``offset`` (text that is not an event: unchanged)."""
    try:
        e = event_cls.from_json(text)
    except (ValueError, KeyError, TypeError):
        return text
    return event_cls(e.type, e.timestamp + offset, e.viewer, e.confidence, e.evidence, e.source).to_json()
