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
                 "FeaturesRelative", "Engagement", "RR", "StrapHR", "rPPG")


def outlet_source_id(info: StreamInfo, session: str = "default") -> str:
    """The stable ``source_id`` of the outlet that publishes ``info``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"engage-{session}-{info.viewer}-{info.name}")


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
