"""Lab Streaming Layer inlets: any LSL stream (EEG, EDA, ECG, eye trackers, markers) as an engage source.

A *predicate* selects streams the way users write them: ``type=EEG``, ``name=Markers``,
``source_id=polar-h10-1``, ``hostname=lab-pc``, several joined with commas (all must hold:
``type=EEG,hostname=lab-pc``). :func:`parse_predicate` turns one into liblsl's XPath; a string
that already looks like XPath (``starts-with(name,'Bio')``) is passed through.

:class:`InletSet` keeps resolving in the background, so a stream that appears later is picked
up, opens one inlet per matching stream (several predicates at once), notices a stream that
dies (``LostError``), and reopens it when a stream with the same ``source_id`` and host comes
back. :class:`LslSource` is the runtime source built on it: clock correction
(``time_correction``, via liblsl's ``proc_clocksync``) and dejittering of regular streams,
channel names and units read from the stream's XML description, numeric and string streams,
and a ``sensor.gap`` event when a stream is lost and again when it comes back.

>>> parse_predicate("type=EEG,name=BioSemi")
"type='EEG' and name='BioSemi'"
>>> src = LslSource(["type=EEG", "name=Markers"])            # doctest: +SKIP
>>> Runtime(LslClock(), [src], processors).run(duration=60)   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence
from xml.etree import ElementTree

import numpy as np

from engage.core.errors import ConfigError
from engage.core.runtime import ThreadedSource
from engage.core.stream import IRREGULAR_RATE, Chunk, StreamInfo

log = logging.getLogger(__name__)

#: Stream properties a predicate may name.
PREDICATE_KEYS = ("name", "type", "source_id", "hostname", "uid", "channel_count", "nominal_srate", "channel_format")
_XPATH_HINT = re.compile(r"['\"()\[\]]|\band\b|\bor\b|starts-with|contains")


def quiet_liblsl() -> bool:
    """Keep liblsl's start-up INFO lines off a command's stderr.

    Points ``LSLAPICFG`` at engage's ``lsl_api.cfg`` (log level: warnings) unless the user
    has a liblsl configuration of their own (``LSLAPICFG``, ``./lsl_api.cfg``,
    ``~/lsl_api/lsl_api.cfg``, ``/etc/lsl_api/lsl_api.cfg``) or pylsl is already loaded.
    Returns whether it did.
    """
    own = [os.environ.get("LSLAPICFG"), "lsl_api.cfg", os.path.expanduser("~/lsl_api/lsl_api.cfg"),
           "/etc/lsl_api/lsl_api.cfg"]
    if "pylsl" in sys.modules or any(p and os.path.exists(p) for p in own) or os.environ.get("LSLAPICFG"):
        return False
    os.environ["LSLAPICFG"] = os.path.join(os.path.dirname(__file__), "lsl_api.cfg")
    return True


def parse_predicate(text: str) -> str:
    """``key=value[,key=value…]`` → a liblsl XPath predicate; XPath is passed through.

    >>> parse_predicate("source_id=engage-events-s1")
    "source_id='engage-events-s1'"
    >>> parse_predicate("colour=red")
    Traceback (most recent call last):
    ...
    engage.core.errors.ConfigError: LSL predicate 'colour=red': unknown property 'colour' (use name, type, source_id, hostname, uid, channel_count, nominal_srate, channel_format)
    """
    text = (text or "").strip()
    if not text:
        raise ConfigError("empty LSL predicate (use e.g. type=EEG or name=Markers)")
    if _XPATH_HINT.search(text):
        return text
    parts = []
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ConfigError(f"LSL predicate {text!r}: {item.strip()!r} is not key=value (e.g. type=EEG)")
        if key not in PREDICATE_KEYS:
            raise ConfigError(f"LSL predicate {text!r}: unknown property {key!r} (use {', '.join(PREDICATE_KEYS)})")
        parts.append(f"{key}='{value}'")
    return " and ".join(parts)


def _channel_format_name(pylsl, fmt: int) -> str:
    names = {pylsl.cf_float32: "float32", pylsl.cf_double64: "double64", pylsl.cf_string: "string",
             pylsl.cf_int32: "int32", pylsl.cf_int16: "int16", pylsl.cf_int8: "int8", pylsl.cf_int64: "int64"}
    return names.get(fmt, "undefined")


def stream_info_from_xml(xml: str, viewer: str = "viewer-1") -> StreamInfo:
    """An LSL stream's XML header (``info.as_xml()``) → :class:`StreamInfo`; channel labels and units
    come from ``desc/channels/channel`` (``ch0``… and ``""`` where the description has none).

    >>> x = ("<info><name>eda</name><type>EDA</type><channel_count>1</channel_count><nominal_srate>4"
    ...      "</nominal_srate><channel_format>float32</channel_format><source_id>e4</source_id><desc>"
    ...      "<channels><channel><label>eda</label><unit>uS</unit></channel></channels></desc></info>")
    >>> i = stream_info_from_xml(x); (i.channels, i.units, i.nominal_rate)
    (('eda',), ('uS',), 4.0)
    """
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise ValueError(f"LSL stream header is not XML: {exc}") from exc

    def text(path: str) -> str:
        return (root.findtext(path) or "").strip()

    name = text("name") or "lsl-stream"
    try:
        count = int(text("channel_count"))
    except ValueError:
        raise ValueError(f"LSL stream {name!r}: bad channel_count {text('channel_count')!r}") from None
    try:
        rate = float(text("nominal_srate") or 0.0)
    except ValueError:
        rate = IRREGULAR_RATE
    if not np.isfinite(rate) or rate < 0:
        rate = IRREGULAR_RATE
    descs = root.findall("desc/channels/channel")
    labels, units = [], []
    for i in range(count):
        d = descs[i] if i < len(descs) else None
        label = (d.findtext("label") or d.findtext("name") or "").strip() if d is not None else ""
        labels.append(label or f"ch{i}")
        units.append((d.findtext("unit") or "").strip() if d is not None else "")
    fmt = text("channel_format")
    meta = tuple((k, v) for k, v in (("lsl_uid", text("uid")), ("hostname", text("hostname")),
                                      ("lsl_channel_format", fmt)) if v)
    return StreamInfo(name=name, type=text("type"), channels=tuple(labels), units=tuple(units), nominal_rate=rate,
                      source_id=text("source_id") or text("uid") or name,
                      channel_format="string" if fmt == "string" else "float64", viewer=viewer, metadata=meta)


def list_streams(timeout: float = 2.0, predicate: str | None = None) -> list[dict[str, Any]]:
    """Every LSL stream visible on the network within ``timeout`` s (optionally matching a predicate),
    as dicts: name, type, channel_count, nominal_srate, channel_format, source_id, hostname, uid."""
    import pylsl

    infos = pylsl.resolve_bypred(parse_predicate(predicate), 0, timeout) if predicate \
        else pylsl.resolve_streams(timeout)
    out = [{"name": i.name(), "type": i.type(), "channel_count": i.channel_count(), "nominal_srate": i.nominal_srate(),
            "channel_format": _channel_format_name(pylsl, i.channel_format()), "source_id": i.source_id(),
            "hostname": i.hostname(), "uid": i.uid()} for i in infos]
    return sorted(out, key=lambda d: (d["name"], d["source_id"], d["uid"]))


@dataclass
class Inlet:
    """One stream an :class:`InletSet` follows (across restarts of its outlet)."""

    key: str
    predicate: str
    xml: str
    info: StreamInfo
    inlet: Any = None
    uid: str = ""
    last_time: float | None = None  # local clock of the last sample received
    lost_at: float | None = None  # local clock when the loss was noticed
    lost_uid: str = ""
    samples: int = 0
    reopened: int = 0
    string: bool = False
    buffer: Any = None
    extra: dict = field(default_factory=dict)

    @property
    def lost(self) -> bool:
        return self.inlet is None


def _stream_key(info) -> str:
    """Identity across restarts: source_id@host when the stream has a source_id, else its uid."""
    return f"{info.source_id()}@{info.hostname()}" if info.source_id() else info.uid()


class InletSet:
    """Inlets on every stream matching any of ``predicates``, kept up to date in the background.

    Call :meth:`resolve` now and then (it is cheap: liblsl's continuous resolvers do the
    work) and :meth:`pull` to read. ``clocksync``/``dejitter`` set liblsl's post-processing:
    the recorder wants raw timestamps (it stores clock offsets), a live source corrected ones.
    """

    def __init__(self, predicates: Sequence[str], clocksync: bool = True, dejitter: bool = True,
                 max_buflen: int = 360, open_timeout: float = 5.0, viewer: str = "viewer-1") -> None:
        import pylsl

        self._pylsl = pylsl
        if isinstance(predicates, str):
            predicates = [predicates]
        if not predicates:
            raise ConfigError("no LSL predicate given (e.g. type=EEG)")
        self.predicates = [(p, parse_predicate(p)) for p in predicates]
        self._resolvers = [(p, pylsl.ContinuousResolver(pred=x, forget_after=5.0)) for p, x in self.predicates]
        self.clocksync, self.dejitter = clocksync, dejitter
        self.max_buflen = max_buflen
        self.open_timeout = open_timeout
        self.viewer = viewer
        self.inlets: dict[str, Inlet] = {}
        self.matched: dict[str, int] = {p: 0 for p, _ in self.predicates}

    def resolve(self) -> tuple[list[Inlet], list[Inlet]]:
        """Open inlets on newly visible streams; returns (new inlets, reopened inlets)."""
        new, reopened = [], []
        for predicate, resolver in self._resolvers:
            for info in resolver.results():
                key = _stream_key(info)
                known = self.inlets.get(key)
                if known is not None and (not known.lost or info.uid() == known.lost_uid):
                    continue
                if known is not None and (info.channel_count() != known.info.channel_count
                                          or (info.channel_format() == self._pylsl.cf_string) != known.string):
                    # back under the same source_id but with another layout: a new stream, not a continuation
                    known.lost_uid = info.uid()
                    key = f"{key}#{info.uid()}"
                    if key in self.inlets:
                        continue
                    known = None
                try:
                    inlet, full = self._open(info)
                except Exception as exc:  # noqa: BLE001 - a stream that vanished while opening is tried again later
                    log.info("LSL stream %r (%s) could not be opened yet: %s", info.name(), key, exc)
                    continue
                self.matched[predicate] += 1
                if known is None:
                    xml = full.as_xml()
                    item = Inlet(key, predicate, xml, stream_info_from_xml(xml, self.viewer), inlet, info.uid(),
                                 string=full.channel_format() == self._pylsl.cf_string)
                    self.inlets = {**self.inlets, key: item}  # copy on write: other threads list it
                    new.append(item)
                    log.info("LSL stream %r (%s) found by %r", item.info.name, key, predicate)
                else:
                    known.inlet, known.uid, known.reopened = inlet, info.uid(), known.reopened + 1
                    reopened.append(known)
                    log.info("LSL stream %r (%s) is back", known.info.name, key)
        return new, reopened

    def _open(self, info):
        pylsl = self._pylsl
        flags = pylsl.proc_threadsafe
        if self.clocksync:
            flags |= pylsl.proc_clocksync
        if self.dejitter and info.nominal_srate() > 0:
            flags |= pylsl.proc_dejitter
        numeric = info.channel_format() != pylsl.cf_string
        inlet = pylsl.StreamInlet(info, max_buflen=self.max_buflen, recover=False, processing_flags=flags,
                                  as_numpy=numeric)
        full = inlet.info(self.open_timeout)
        inlet.open_stream(self.open_timeout)
        return inlet, full

    def pull(self, item: Inlet, max_samples: int = 4096) -> tuple[np.ndarray, np.ndarray] | None:
        """New samples of one inlet as (data (n, channels), timestamps (n,)), or None when there are none.
        A lost stream is marked lost (see :meth:`lost_since`) and returns None."""
        if item.inlet is None:
            return None
        try:
            samples, stamps = item.inlet.pull_chunk(timeout=0.0, max_samples=max_samples)
        except self._pylsl.util.LostError:
            self._mark_lost(item)
            return None
        n = len(stamps)
        if n == 0:
            return None
        ts = np.asarray(stamps, dtype=np.float64).reshape(-1)
        if item.string:
            data = np.empty((n, item.info.channel_count), dtype=object)
            for i, row in enumerate(samples):
                data[i, :] = row
        else:
            data = np.asarray(samples, dtype=np.float64).reshape(n, item.info.channel_count)
        item.samples += n
        item.last_time = self._pylsl.local_clock()
        return data, ts

    def _mark_lost(self, item: Inlet) -> None:
        log.warning("LSL stream %r (%s) was lost", item.info.name, item.key)
        item.lost_uid = item.uid
        item.lost_at = self._pylsl.local_clock()
        try:
            item.inlet.close_stream()
        except Exception:  # noqa: BLE001
            pass
        item.inlet = None

    def unmatched(self) -> list[str]:
        """Predicates that have not matched any stream so far."""
        return [p for p, n in self.matched.items() if n == 0]

    def close(self) -> None:
        for item in self.inlets.values():
            if item.inlet is not None:
                try:
                    item.inlet.close_stream()
                except Exception:  # noqa: BLE001
                    pass
                item.inlet = None
        self._resolvers = []


class LslSource(ThreadedSource):
    """Any LSL stream as an engage source (see the module docstring).

    ``predicates``: one or more predicates (``type=ECG``, ``name=Markers`` …). Timestamps are
    on this machine's LSL clock (liblsl's clock correction) and dejittered for regular streams.
    ``streams()`` lists the streams found so far; new ones are announced to the runtime by
    their chunks (routing is per ``StreamInfo``).

    >>> src = LslSource("type=EDA")                               # doctest: +SKIP
    >>> chunks = src.read(pylsl.local_clock())                    # doctest: +SKIP
    """

    name = "lsl"

    def __init__(self, predicates: str | Sequence[str], resolve_interval: float = 0.5, viewer: str = "viewer-1",
                 dejitter: bool = True, max_chunks: int = 256) -> None:
        super().__init__(max_chunks=max_chunks)
        self.viewer = viewer
        self.resolve_interval = resolve_interval
        self._set = InletSet(predicates, clocksync=True, dejitter=dejitter, viewer=viewer)
        self._pending: deque[Chunk] = deque()
        self._gaps: deque[tuple[float, dict]] = deque()
        self._next_resolve = 0.0
        self._seen_lost: set[str] = set()

    def streams(self) -> list[StreamInfo]:
        return [i.info for i in self._set.inlets.values()]

    def unmatched(self) -> list[str]:
        return self._set.unmatched()

    def acquire(self) -> Chunk | None:
        if self._pending:
            return self._pending.popleft()
        now = time.monotonic()
        if now >= self._next_resolve:
            self._next_resolve = now + self.resolve_interval
            _new, reopened = self._set.resolve()
            for item in reopened:
                gap = item.extra.pop("gap", None)
                if gap is not None:
                    self._gaps.append((gap["start"], dict(gap, reason="stream recovered",
                                                          duration_s=self._set._pylsl.local_clock() - gap["start"])))
                self._seen_lost.discard(item.key)
        for item in list(self._set.inlets.values()):
            got = self._set.pull(item)
            if got is not None:
                self._pending.append(Chunk(item.info, got[0], got[1]))
                item.extra["last_stamp"] = float(got[1][-1])
            elif item.lost and item.key not in self._seen_lost:
                self._seen_lost.add(item.key)
                start = item.extra.get("last_stamp", item.lost_at)
                gap = {"stream": item.info.name, "start": start, "duration_s": item.lost_at - start,
                       "reason": "stream lost"}
                item.extra["gap"] = gap
                self._gaps.append((start, dict(gap)))
        if self._pending:
            return self._pending.popleft()
        time.sleep(0.005)
        return None

    def read(self, until: float) -> list[Chunk]:
        while self._gaps:
            start, gap = self._gaps.popleft()
            self.ctx.counters[f"{self.name}.gaps"] += 1
            evidence = {k: v for k, v in gap.items() if k != "start"}
            self.ctx.emit("sensor.gap", start, evidence=evidence, source=self.name, viewer=self.viewer)
        return super().read(until)

    def stop(self) -> None:
        super().stop()
        self._set.close()
