r"""Lab Streaming Layer inlets: any LSL stream (EEG, EDA, ECG, eye trackers, markers) as an engage source.

A *predicate* selects streams the way users write them: ``type=EEG``, ``name=Markers``,
``source_id=polar-h10-1``, ``hostname=lab-pc``, several joined with commas (all must hold:
``type=EEG,hostname=lab-pc``). :func:`parse_predicate` turns one into liblsl's XPath; a string
that already looks like XPath (``starts-with(name,'Bio')``) is passed through.

A stream is known by its identity, as LabRecorder knows it: name, type, source_id and host
(:func:`stream_key`). Two streams that share a ``source_id`` but differ in name or host are two
streams. A :class:`StreamSelector` says what a sensor binds to: its predicate, whose streams
they are (a fixed viewer, or one viewer per stream from its ``name``, ``source_id`` or
``hostname``), and what to do when the predicate matches several streams: refuse (the default
for a sensor: two people's skin conductance must never become one viewer's), one viewer per
stream, or all of them (the recorder's way). Every outlet an engage process publishes carries
``<desc><engage><role>…</role>…</engage></desc>`` (:func:`mark_engage`); a sensor never binds to
one unless its selector asks for it (``from_engage``), so a session cannot read its own output.
A BLE bridge's outlets (role ``sensor``) are sources like any other device.

:class:`InletSet` keeps resolving in the background, so a stream that appears later is picked
up, opens one inlet per matching stream (several predicates at once), notices a stream that
dies (``LostError``), and reopens it when a stream with the same identity comes back.
:class:`LslSource` is the runtime source built on it: clock correction
(``time_correction``, via liblsl's ``proc_clocksync``) and dejittering of regular streams,
channel names and units read from the stream's XML description, numeric and string streams,
and a ``sensor.gap`` event when a stream is lost and again when it comes back.

>>> parse_predicate("type=EEG,name=BioSemi")
"type='EEG' and name='BioSemi'"
>>> StreamSelector("type=EDA", viewer_from="source_id", viewer_pattern=r"^(S\d+)").viewer_for("eda", "S01-eda", "pc")
'S01'
>>> src = LslSource(["type=EEG", "name=Markers"])            # doctest: +SKIP
>>> Runtime(LslClock(), [src], processors).run(duration=60)   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence
from xml.etree import ElementTree

import numpy as np

from engage.core.errors import ConfigError
from engage.core.runtime import ThreadedSource
from engage.core.stream import IRREGULAR_RATE, Chunk, StreamInfo, xml_restore, xml_safe

log = logging.getLogger(__name__)

#: Stream properties a predicate may name.
PREDICATE_KEYS = ("name", "type", "source_id", "hostname", "uid", "channel_count", "nominal_srate", "channel_format")
_XPATH_HINT = re.compile(r"['\"()\[\]]|\band\b|\bor\b|starts-with|contains")


def quiet_liblsl() -> bool:
    """liblsl's log lines through Python logging at the user's level (see :mod:`engage.sensors.liblsl_log`);
    call before anything uses liblsl. Returns whether they are."""
    from engage.sensors.liblsl_log import route_liblsl_log

    return route_liblsl_log()


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


# --------------------------------------------------------------------------------------------
# engage's own outlets
# --------------------------------------------------------------------------------------------

#: The element of an LSL stream's ``desc`` that marks it as published by engage.
ENGAGE_ELEMENT = "engage"
#: The role of outlets that publish a device's own data (a BLE bridge): sources, not engage's output.
SENSOR_ROLE = "sensor"
#: XPath that holds for every stream a sensor may bind to by default: not marked as engage's output
#: (engage releases before the mark named themselves in ``desc/manufacturer``).
NOT_ENGAGE_XPATH = (f"(desc/{ENGAGE_ELEMENT}/role='{SENSOR_ROLE}' or (not(desc/{ENGAGE_ELEMENT}) "
                    "and not(desc/manufacturer='engage')))")


def mark_engage(desc, role: str, session: str = "", viewer: str = "") -> None:
    """Mark a ``pylsl.StreamInfo``'s ``desc()`` as an engage outlet: ``<engage><role>…</role>
    <session>…</session><viewer>…</viewer><version>…</version></engage>``.

    ``role``: ``derived`` (a stream the pipeline computes), ``events``, ``replay`` (a recording
    played back), ``sensor`` (a device bridged onto LSL: consumed like any other device).
    """
    from engage import __version__

    mark = desc.append_child(ENGAGE_ELEMENT)
    mark.append_child_value("role", role)
    mark.append_child_value("session", session)
    if viewer:
        mark.append_child_value("viewer", viewer)
    mark.append_child_value("version", __version__)


def engage_role(root: ElementTree.Element) -> str | None:
    """The engage role of a parsed stream header (``None``: not published by engage).

    >>> engage_role(ElementTree.fromstring("<info><desc><engage><role>events</role></engage></desc></info>"))
    'events'
    """
    mark = root.find(f"desc/{ENGAGE_ELEMENT}")
    if mark is not None:
        return (mark.findtext("role") or "").strip() or "unknown"
    if (root.findtext("desc/manufacturer") or "").strip() == "engage":
        return "unknown"
    return None


# --------------------------------------------------------------------------------------------
# Identity and selection
# --------------------------------------------------------------------------------------------

#: Stream properties a viewer id may be taken from (``viewer_from``).
VIEWER_FROM = ("name", "source_id", "hostname")
#: What a selector does when its predicate matches several streams.
SEVERAL = ("refuse", "viewer", "all")
_VIEWER_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


def stream_key(name: str, type_: str, source_id: str, hostname: str, uid: str = "") -> str:
    """A stream's identity across restarts of its outlet: name, type, source_id and host (LabRecorder's
    identity); a stream without a source_id cannot be recognised after a restart and is known by its uid.

    >>> stream_key("EDA", "EDA", "shimmer-1", "lab-pc") == stream_key("EDA2", "EDA", "shimmer-1", "lab-pc")
    False
    """
    if source_id:
        return "\x1f".join((name, type_, source_id, hostname))
    return f"uid:{uid}"


def describe_stream(name: str, type_: str, source_id: str, hostname: str) -> str:
    """One line naming a stream by its identity: ``'EDA' (EDA, source_id 'shimmer-1', host lab-pc)``."""
    return f"{name!r} ({type_ or 'no type'}, source_id {source_id!r}, host {hostname or '?'})"


@dataclass(frozen=True)
class StreamSelector:
    """Which LSL streams a sensor binds to, and whose they are (see the module docstring).

    ``several``: ``"refuse"`` (bind one stream; another that also matches is named and left
    alone), ``"viewer"`` (one viewer per stream, its id from ``viewer_from``: the stream's
    ``name``, ``source_id`` or ``hostname``, narrowed by ``viewer_pattern``, a regular
    expression whose first group, or whole match, is the id) or ``"all"`` (every match, each its
    own stream, for ``viewer``). ``from_engage`` also binds streams published by engage.

    >>> StreamSelector("type=EDA").xpath
    "(type='EDA') and (desc/engage/role='sensor' or (not(desc/engage) and not(desc/manufacturer='engage')))"
    """

    predicate: str
    viewer: str = "viewer-1"
    viewer_from: str | None = None
    viewer_pattern: str | None = None
    several: str | None = None  # default: "viewer" with viewer_from, else "refuse"
    from_engage: bool = False

    def __post_init__(self) -> None:
        parse_predicate(self.predicate)
        if self.several is None:
            object.__setattr__(self, "several", "viewer" if self.viewer_from is not None else "refuse")
        if self.viewer_from is not None and self.viewer_from not in VIEWER_FROM:
            raise ConfigError(f"viewer_from {self.viewer_from!r}: use one of {', '.join(VIEWER_FROM)}")
        if self.several not in SEVERAL:
            raise ConfigError(f"several {self.several!r}: use one of {', '.join(SEVERAL)}")
        if (self.several == "viewer") != (self.viewer_from is not None):
            raise ConfigError("one viewer per stream needs viewer_from (name, source_id or hostname), "
                              "and viewer_from means one viewer per stream")
        if self.viewer_pattern is not None:
            if self.viewer_from is None:
                raise ConfigError("viewer_pattern needs viewer_from")
            try:
                re.compile(self.viewer_pattern)
            except re.error as exc:
                raise ConfigError(f"viewer_pattern {self.viewer_pattern!r} is not a regular expression: {exc}") \
                    from None

    @property
    def xpath(self) -> str:
        """The liblsl query: the predicate, and (unless ``from_engage``) not an engage output."""
        base = parse_predicate(self.predicate)
        return base if self.from_engage else f"({base}) and {NOT_ENGAGE_XPATH}"

    def allows(self, role: str | None) -> bool:
        """Whether a stream of this engage role (``None``: not engage's) may be bound."""
        return role is None or role == SENSOR_ROLE or self.from_engage

    def viewer_for(self, name: str, source_id: str, hostname: str) -> str | None:
        """The viewer a stream with these properties belongs to; ``None`` when ``viewer_pattern`` does not
        match it (the stream is then not bound)."""
        if self.viewer_from is None:
            return self.viewer
        value = {"name": name, "source_id": source_id, "hostname": hostname}[self.viewer_from]
        if self.viewer_pattern is not None:
            m = re.search(self.viewer_pattern, value)
            if m is None:
                return None
            value = m.group(1) if m.groups() and m.group(1) else m.group(0)
        value = _VIEWER_CHARS.sub("-", value).strip("-.")[:64]
        return value or None


def as_selector(predicate: "str | StreamSelector", **defaults: Any) -> StreamSelector:
    """A :class:`StreamSelector` for a predicate string (``defaults`` set its other fields)."""
    return predicate if isinstance(predicate, StreamSelector) else StreamSelector(predicate, **defaults)


class SourceIds:
    """The engage ``source_id`` of each bound LSL stream, unique within a session: the stream's own
    ``source_id`` unless another stream of the same viewer and type already has it (cheap amplifiers
    give every stream the same one), then ``<source_id>.<name>`` (numbered if needed). The processors
    keep their state per viewer and ``source_id``, so this is what keeps such streams apart.
    Thread-safe; share one between the sources of a session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: dict[tuple[str, str, str], str] = {}

    def claim(self, key: str, viewer: str, type_: str, source_id: str, name: str) -> str:
        base = source_id or name
        with self._lock:
            candidate, n = base, 1
            while True:
                owner = self._owner.setdefault((viewer, type_, candidate), key)
                if owner == key:
                    return candidate
                n += 1
                candidate = f"{base}.{_VIEWER_CHARS.sub('-', name)}" if n == 2 else f"{base}.{n - 1}"


def _channel_format_name(pylsl, fmt: int) -> str:
    names = {pylsl.cf_float32: "float32", pylsl.cf_double64: "double64", pylsl.cf_string: "string",
             pylsl.cf_int32: "int32", pylsl.cf_int16: "int16", pylsl.cf_int8: "int8", pylsl.cf_int64: "int64"}
    return names.get(fmt, "undefined")


def stream_info_from_xml(xml: str, viewer: str = "viewer-1") -> StreamInfo:
    """An LSL stream's XML header (``info.as_xml()``) → :class:`StreamInfo`; channel labels and units
    come from ``desc/channels/channel`` (``ch0``… and ``""`` where the description has none).
    Control characters in the header (which XML cannot hold) are kept, not refused.

    >>> x = ("<info><name>eda</name><type>EDA</type><channel_count>1</channel_count><nominal_srate>4"
    ...      "</nominal_srate><channel_format>float32</channel_format><source_id>e4</source_id><desc>"
    ...      "<channels><channel><label>eda</label><unit>uS</unit></channel></channels></desc></info>")
    >>> i = stream_info_from_xml(x); (i.channels, i.units, i.nominal_rate)
    (('eda',), ('uS',), 4.0)
    """
    try:
        root = ElementTree.fromstring(xml_safe(xml))
    except ElementTree.ParseError as exc:
        raise ValueError(f"LSL stream header is not XML: {exc}") from exc

    def text(path: str, node=root) -> str:
        return xml_restore((node.findtext(path) or "").strip())

    name = text("name") or "lsl-stream"
    try:
        count = int(text("channel_count"))
    except ValueError:
        raise ValueError(f"LSL stream {name!r}: bad channel_count {text('channel_count')!r}") from None
    if not 0 <= count <= 1_000_000:
        raise ValueError(f"LSL stream {name!r}: bad channel_count {count}")
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
        label = (text("label", d) or text("name", d)) if d is not None else ""
        labels.append(label or f"ch{i}")
        units.append(text("unit", d) if d is not None else "")
    fmt = text("channel_format")
    meta = tuple((k, v) for k, v in (("lsl_uid", text("uid")), ("hostname", text("hostname")),
                                      ("lsl_source_id", text("source_id")), ("lsl_channel_format", fmt)) if v)
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
    lsl_info: Any = None  # the resolved pylsl.StreamInfo the inlet was opened on
    label: str = ""  # the stream's identity in words, for messages

    @property
    def lost(self) -> bool:
        return self.inlet is None

    @property
    def viewer(self) -> str:
        return self.info.viewer


class InletSet:
    """Inlets on every stream matching any of ``predicates``, kept up to date in the background.

    ``predicates`` are :class:`StreamSelector` s or predicate strings (a string binds every stream
    it matches, engage's own outlets included: the recorder's way). Call :meth:`resolve` now and
    then (it is cheap: liblsl's continuous resolvers do the work) and :meth:`pull` to read.
    ``clocksync``/``dejitter`` set liblsl's post-processing: the recorder wants raw timestamps
    (it stores clock offsets), a live source corrected ones. ``raw``: :meth:`pull` returns numeric
    samples in the stream's own type (int64 stays exact) rather than float64.
    ``on_open(item)`` is called after each stream is opened or reopened. :meth:`add` binds one
    stream another part has chosen (``predicates`` may then be empty: the recorder of a live
    session records exactly what the session's sensors bind).
    Streams a ``"refuse"`` selector left alone are in :attr:`refused` (selector predicate → list of
    stream descriptions).
    """

    #: The selector of streams bound with :meth:`add`.
    FOLLOWED = "followed"

    def __init__(self, predicates: Sequence["str | StreamSelector"], clocksync: bool = True, dejitter: bool = True,
                 max_buflen: int = 360, open_timeout: float = 5.0, viewer: str = "viewer-1", raw: bool = False,
                 on_open: Callable[[Inlet], None] | None = None, source_ids: SourceIds | None = None,
                 allow_empty: bool = False) -> None:
        import pylsl

        self._pylsl = pylsl
        if isinstance(predicates, (str, StreamSelector)):
            predicates = [predicates]
        if not predicates and not allow_empty:
            raise ConfigError("no LSL predicate given (e.g. type=EEG)")
        self.selectors = [as_selector(p, viewer=viewer, several="all", from_engage=True) for p in predicates]
        self.predicates = [(sel.predicate, sel.xpath) for sel in self.selectors]
        self._resolvers = [(sel, pylsl.ContinuousResolver(pred=sel.xpath, forget_after=5.0)) for sel in self.selectors]
        self.clocksync, self.dejitter = clocksync, dejitter
        self.max_buflen = max_buflen
        self.open_timeout = open_timeout
        self.viewer = viewer
        self.raw = raw
        self.on_open = on_open
        self.source_ids = source_ids if source_ids is not None else SourceIds()
        self.inlets: dict[str, Inlet] = {}
        self.matched: dict[str, int] = {sel.predicate: 0 for sel in self.selectors}
        self.refused: dict[str, list[str]] = {}
        self._bound: dict[int, set[str]] = {i: set() for i in range(-1, len(self.selectors))}
        self._skipped: set[str] = set()  # uids not to open again (engage outlets found by XPath-less queries, …)
        self._lock = threading.RLock()
        self._follow = StreamSelector(f"name={self.FOLLOWED}", viewer=viewer, several="all", from_engage=True)

    def add(self, info) -> tuple[Inlet, bool] | None:
        """Bind the resolved ``pylsl.StreamInfo`` ``info`` (on the caller's thread): (its Inlet, whether it
        is a known stream come back), or None when it cannot be opened now."""
        with self._lock:
            key = stream_key(info.name(), info.type(), info.source_id(), info.hostname(), info.uid())
            known = self.inlets.get(key)
            if known is not None and not known.lost and known.uid == info.uid():
                return known, False
            return self._bind(-1, self._follow, key, info)

    def resolve(self) -> tuple[list[Inlet], list[Inlet]]:
        """Open inlets on newly visible streams; returns (new inlets, reopened inlets)."""
        with self._lock:
            return self._resolve()

    def bind(self, infos: Sequence, index: int = 0) -> list[Inlet]:
        """Open streams already resolved (``pylsl.StreamInfo`` s) for selector ``index`` now, with its rules,
        rather than waiting for the continuous resolver to see them; returns the new inlets."""
        with self._lock:
            sel = self.selectors[index]
            fresh = {}
            for info in infos:
                key = stream_key(info.name(), info.type(), info.source_id(), info.hostname(), info.uid())
                if key not in self.inlets and info.uid() not in self._skipped:
                    fresh.setdefault(key, info)
            if sel.several == "refuse":
                fresh = self._refuse_several(index, sel, fresh)
            return [b[0] for key, info in fresh.items() if (b := self._bind(index, sel, key, info)) is not None]

    def _resolve(self) -> tuple[list[Inlet], list[Inlet]]:
        new, reopened = [], []
        for index, (sel, resolver) in enumerate(self._resolvers):
            results = resolver.results()
            fresh = {}
            for info in results:
                if info.uid() in self._skipped:
                    continue
                key = stream_key(info.name(), info.type(), info.source_id(), info.hostname(), info.uid())
                known = self.inlets.get(key)
                if known is not None and (not known.lost or info.uid() == known.lost_uid):
                    continue
                fresh.setdefault(key, info)
            if sel.several == "refuse":
                fresh = self._refuse_several(index, sel, fresh)
            for key, info in fresh.items():
                bound = self._bind(index, sel, key, info)
                if bound is not None:
                    (reopened if bound[1] else new).append(bound[0])
        return new, reopened

    def _refuse_several(self, index: int, sel: StreamSelector, fresh: dict) -> dict:
        """A ``"refuse"`` selector binds one identity only: others are named once and left alone.

        With none bound yet, the first of the fresh streams in identity order (name, type, source_id, host) is
        kept, whether the others appear in the same resolve round or later ones (all of them used to be refused
        when two appeared in one round, which depended on how fast liblsl's resolver saw them)."""
        bound = self._bound[index]
        keep = {}
        first = None if bound else min(fresh, default=None)
        for key, info in fresh.items():
            if key in bound or key == first:
                keep[key] = info
                continue
            self._skipped.add(info.uid())
            text = describe_stream(info.name(), info.type(), info.source_id(), info.hostname())
            self.refused.setdefault(sel.predicate, []).append(text)
            log.warning("LSL predicate %r matches several streams; not binding %s (one viewer per stream: "
                        "viewer_from; or a narrower predicate)", sel.predicate, text)
        return keep

    def _bind(self, index: int, sel: StreamSelector, key: str, info) -> tuple[Inlet, bool] | None:
        """Open ``info`` for selector ``index``: (its Inlet, whether it is a known stream come back)."""
        known = self.inlets.get(key)
        if known is not None and (info.channel_count() != known.info.channel_count
                                  or (info.channel_format() == self._pylsl.cf_string) != known.string
                                  or info.nominal_srate() != known.info.nominal_rate):
            # back under the same identity but with another layout or rate: a new stream, not a continuation
            known.lost_uid = info.uid()
            key = f"{key}#{info.uid()}"
            if key in self.inlets:
                return None
            known = None
        viewer = sel.viewer_for(info.name(), info.source_id(), info.hostname()) if known is None else known.viewer
        label = describe_stream(info.name(), info.type(), info.source_id(), info.hostname())
        if viewer is None:
            self._skipped.add(info.uid())
            log.warning("LSL stream %s: its %s does not match viewer_pattern %r; not bound", label, sel.viewer_from,
                        sel.viewer_pattern)
            return None
        try:
            inlet, full = self._open(info)
        except Exception as exc:  # noqa: BLE001 - a stream that vanished while opening is tried again later
            log.info("LSL stream %s could not be opened yet: %s", label, exc)
            return None
        xml = full.as_xml()
        try:
            root = ElementTree.fromstring(xml_safe(xml))
        except ElementTree.ParseError:
            root = None
        role = engage_role(root) if root is not None else None
        if not sel.allows(role):  # a query without XPath support, or an engage outlet of an older release
            self._skipped.add(info.uid())
            self._close(inlet)
            log.info("LSL stream %s is published by engage (%s); not bound", label, role)
            return None
        if sel is not self._follow:
            self.matched[sel.predicate] += 1
        self._bound[index].add(key)
        if known is None:
            try:
                sinfo = stream_info_from_xml(xml, viewer)
            except ValueError as exc:
                self._skipped.add(info.uid())
                self._close(inlet)
                log.warning("LSL stream %s: unusable header (%s); not bound", label, exc)
                return None
            sid = self.source_ids.claim(key, viewer, sinfo.type, info.source_id(), info.name())
            if sid != sinfo.source_id:
                sinfo = _replace_source_id(sinfo, sid)
            item = Inlet(key, sel.predicate, xml, sinfo, inlet, info.uid(),
                         string=full.channel_format() == self._pylsl.cf_string, lsl_info=info, label=label)
            self.inlets = {**self.inlets, key: item}  # copy on write: other threads list it
            log.info("LSL stream %s found by %r (viewer %s)", label, sel.predicate, viewer)
        else:
            known.inlet, known.uid, known.reopened, known.lsl_info = inlet, info.uid(), known.reopened + 1, info
            item = known
            log.info("LSL stream %s is back", label)
        if self.on_open is not None:
            self.on_open(item)
        return item, known is not None

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

    @staticmethod
    def _close(inlet) -> None:
        try:
            inlet.close_stream()
        except Exception:  # noqa: BLE001
            pass

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
        elif self.raw:
            data = np.asarray(samples).reshape(n, item.info.channel_count)
        else:
            data = np.asarray(samples, dtype=np.float64).reshape(n, item.info.channel_count)
        item.samples += n
        item.last_time = self._pylsl.local_clock()
        return data, ts

    def _mark_lost(self, item: Inlet) -> None:
        log.warning("LSL stream %s was lost", item.label or item.info.name)
        item.lost_uid = item.uid
        item.lost_at = self._pylsl.local_clock()
        self._close(item.inlet)
        item.inlet = None

    def unmatched(self) -> list[str]:
        """Predicates that have not matched any stream so far."""
        return [p for p, n in self.matched.items() if n == 0]

    def close(self) -> None:
        for item in self.inlets.values():
            if item.inlet is not None:
                self._close(item.inlet)
                item.inlet = None
        self._resolvers = []


def map_stream(info: StreamInfo, maps_to: str, channel: str | None = None, sensor: str = "") -> StreamInfo:
    """``info`` as a profile's sensor hands it to the pipeline: retyped to ``maps_to`` and the device's
    ``channel`` renamed to the name that type's consumers look up (``GSR`` → ``eda`` for ``EDA``); the
    original type is kept in the metadata (``lsl_type``). Only what the pipeline sees: a recording keeps
    the stream as the device sent it.

    >>> i = StreamInfo("shimmer", "GSR", ("GSR", "PPG"), ("uS", ""), 32.0, "s1")
    >>> m = map_stream(i, "EDA", "GSR"); (m.type, m.channels)
    ('EDA', ('eda', 'PPG'))
    """
    from dataclasses import replace

    from engage.sensors.profiles import LSL_STREAM_TYPES

    channels = list(info.channels)
    wanted = LSL_STREAM_TYPES.get(maps_to)
    if channel is not None and wanted and wanted not in channels and channel in channels:
        channels[channels.index(channel)] = wanted
    elif channel is not None and channel not in channels:
        log.warning("%s: stream %r has no channel %r (channels: %s); using the first", sensor or "lsl", info.name,
                    channel, ", ".join(info.channels))
    meta = tuple(info.metadata) + (("lsl_type", info.type),) + ((("profile_sensor", sensor),) if sensor else ())
    return replace(info, type=maps_to, channels=tuple(channels), metadata=meta)


def _replace_source_id(info: StreamInfo, source_id: str) -> StreamInfo:
    from dataclasses import replace

    return replace(info, source_id=source_id)


class StreamClock:
    """Causal dejittering of one regular stream's clock-corrected timestamps, in segments.

    Within a segment the timestamps are fitted as ``a + b·k`` (k: the sample's index in the
    segment) by least squares with exponential forgetting (half-life ``halflife_s``, as liblsl's
    own dejitter), so a stamp's jitter is smoothed and a device clock's drift followed. A stamp
    more than ``break_s`` (default: 5 samples, at least 0.1 s) from the fit - a hole, or the device's
    clock jumping - ends the segment:
    the next starts fresh from that stamp, so one jump never bends the timestamps after it.

    >>> c = StreamClock(10.0); t = c.apply(np.arange(20) / 10.0 + 100.0); float(t[-1])
    101.9
    """

    def __init__(self, rate: float, halflife_s: float = 90.0, break_s: float | None = None) -> None:
        self.rate = float(rate)
        self.keep = 0.5 ** (1.0 / max(1.0, halflife_s * self.rate))
        self.break_s = break_s if break_s is not None else max(0.1, 5.0 / self.rate)
        self.segments = 0
        self._reset()

    def _reset(self) -> None:
        self.k = 0  # samples in the segment
        self.t0: float | None = None
        self._s = np.zeros(5)  # decayed sums: w, k, t, kk, kt (t relative to t0)

    def _fit(self) -> tuple[float, float]:
        w, sk, st, skk, skt = self._s
        det = w * skk - sk * sk
        if self.k < 2 or det <= 1e-9 * max(1.0, w * skk):
            return (st / w if w else 0.0), 1.0 / self.rate
        b = (w * skt - sk * st) / det
        return (st - b * sk) / w, b

    def apply(self, stamps: np.ndarray) -> np.ndarray:
        """Dejittered timestamps of the next samples (in order); starts a new segment where one breaks."""
        stamps = np.asarray(stamps, dtype=np.float64)
        out = np.empty(len(stamps))
        done = 0
        while done < len(stamps):
            t = stamps[done:]
            if self.t0 is None:
                self.t0 = float(t[0])
                self.segments += 1
            elif self.k:
                a, b = self._fit()
                far = np.flatnonzero(np.abs(t - (self.t0 + a + b * (self.k + np.arange(len(t))))) > self.break_s)
                if len(far) and far[0] == 0:
                    self._reset()
                    continue
                if len(far):
                    t = t[:far[0]]
            out[done:done + len(t)] = self._update(t)
            done += len(t)
        return out

    def _update(self, t: np.ndarray) -> np.ndarray:
        """Add samples to the segment's decayed sums; each gets the fit that includes it (causal)."""
        n = len(t)
        k = self.k + np.arange(n, dtype=np.float64)
        x = t - self.t0
        grow = self.keep ** -np.arange(n, dtype=np.float64)  # keep^-i, cumulated then scaled by keep^j
        v = np.stack([np.ones(n), k, x, k * k, k * x], axis=1) * grow[:, None]
        sums = (np.cumsum(v, axis=0) + self._s * self.keep) / grow[:, None]
        w, sk, st, skk, skt = sums.T
        det = w * skk - sk * sk
        with np.errstate(divide="ignore", invalid="ignore"):
            b = np.where(det > 1e-9 * np.maximum(1.0, w * skk), (w * skt - sk * st) / det, 1.0 / self.rate)
        a = (st - b * sk) / w
        self._s = sums[-1]
        self.k += n
        return self.t0 + a + b * k


class LslSource(ThreadedSource):
    """Any LSL stream as an engage source (see the module docstring).

    ``predicates``: one or more :class:`StreamSelector` s or predicate strings (``type=ECG``,
    ``name=Markers`` …; a string binds every stream it matches except engage's own outlets).
    Timestamps are on this machine's LSL clock (liblsl's clock correction) and dejittered for
    regular streams. ``streams()`` lists the streams found so far; new ones are announced to the
    runtime by their chunks (routing is per ``StreamInfo``). ``on_open(item)`` is called (on the
    acquisition thread) after each stream is opened or reopened; ``source_ids`` is shared by the
    sources of one session so that no two of their streams share an engage ``source_id``; ``found``:
    streams already resolved for the first selector, opened at once rather than when liblsl's
    continuous resolver sees them too.

    >>> src = LslSource("type=EDA")                               # doctest: +SKIP
    >>> chunks = src.read(pylsl.local_clock())                    # doctest: +SKIP
    """

    name = "lsl"

    def __init__(self, predicates: "str | StreamSelector | Sequence[str | StreamSelector]",
                 resolve_interval: float = 0.5, viewer: str = "viewer-1", dejitter: bool = True,
                 max_chunks: int = 256, on_open: Callable[[Inlet], None] | None = None,
                 source_ids: SourceIds | None = None, found: Sequence = ()) -> None:
        super().__init__(max_chunks=max_chunks)
        self.viewer = viewer
        self.resolve_interval = resolve_interval
        if isinstance(predicates, (str, StreamSelector)):
            predicates = [predicates]
        selectors = [as_selector(p, viewer=viewer, several="all") for p in predicates]
        # liblsl corrects the clock; engage dejitters (StreamClock), so a clock jump starts a new segment
        # instead of bending the timestamps for minutes after it, and stamps off this machine's clock are caught
        self.dejitter = dejitter
        self._set = InletSet(selectors, clocksync=True, dejitter=False, viewer=viewer, on_open=on_open,
                             source_ids=source_ids)
        self._pending: deque[Chunk] = deque()
        self._gaps: deque[tuple[float, str, dict]] = deque()
        self._next_resolve = 0.0
        self._seen_lost: set[str] = set()
        self._found = list(found)  # streams already resolved (by the first selector): opened first thing

    def streams(self) -> list[StreamInfo]:
        return [i.info for i in self._set.inlets.values()]

    @property
    def inlets(self) -> list[Inlet]:
        """Every stream bound so far (lost ones included)."""
        return list(self._set.inlets.values())

    def unmatched(self) -> list[str]:
        return self._set.unmatched()

    @property
    def refused(self) -> dict[str, list[str]]:
        """Streams left alone because their selector refuses several matches: predicate → descriptions."""
        return self._set.refused

    def resolve_now(self) -> None:
        """Resolve at once (on the caller's thread) rather than on the next acquisition step."""
        self._resolve()

    def _resolve(self) -> None:
        _new, reopened = self._set.resolve()
        for item in reopened:
            gap = item.extra.pop("gap", None)
            if gap is not None:
                self._gaps.append((gap["start"], item.viewer, dict(
                    gap, reason="stream recovered", duration_s=self._set._pylsl.local_clock() - gap["start"])))
            self._seen_lost.discard(item.key)

    def acquire(self) -> Chunk | None:
        if self._pending:
            return self._pending.popleft()
        if self._found:
            found, self._found = self._found, []
            self._set.bind(found)
        now = time.monotonic()
        if now >= self._next_resolve:
            self._next_resolve = now + self.resolve_interval
            self._resolve()
        for item in list(self._set.inlets.values()):
            got = self._set.pull(item)
            if got is not None:
                data, stamps = self._on_clock(item, *got)
                if len(stamps):
                    self._pending.append(Chunk(item.info, data, stamps))
                    item.extra["last_stamp"] = float(stamps[-1])
            elif item.lost and item.key not in self._seen_lost:
                self._seen_lost.add(item.key)
                start = item.extra.get("last_stamp", item.lost_at)
                gap = {"stream": item.info.name, "start": start, "duration_s": item.lost_at - start,
                       "reason": "stream lost"}
                item.extra["gap"] = gap
                self._gaps.append((start, item.viewer, dict(gap)))
        if self._pending:
            return self._pending.popleft()
        time.sleep(0.005)
        return None

    #: A clock-corrected stamp further than this from this machine's clock when it arrives is off-clock.
    OFF_CLOCK_S = 30.0

    def _on_clock(self, item: Inlet, data: np.ndarray, stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Samples whose stamps are on this machine's clock, dejittered; samples stamped far from it (a device
        clock that jumped) are left out, and that is a gap, reported once per episode."""
        now = self._set._pylsl.local_clock()
        ok = np.abs(stamps - now) <= self.OFF_CLOCK_S
        state = item.extra.setdefault("clock", {"off": None, "dropped": 0})
        if not ok.all():
            if state["off"] is None:
                state["off"] = item.extra.get("last_stamp", now)
                log.warning("LSL stream %s: timestamps %.0f s off this machine's clock; left out until they are back",
                            item.label or item.info.name, float(np.median(stamps[~ok]) - now))
            state["dropped"] += int((~ok).sum())
            data, stamps = data[ok], stamps[ok]
        if ok.any() and state["off"] is not None:
            start = state["off"]
            self._gaps.append((start, item.viewer, {"stream": item.info.name, "start": start,
                                                    "duration_s": float(stamps[0]) - start, "reason": "clock jump",
                                                    "samples": state["dropped"]}))
            state["off"], state["dropped"] = None, 0
            if "dejitter" in item.extra:
                item.extra["dejitter"]._reset()  # the stamps after the episode start a segment of their own
        if len(stamps) and self.dejitter and item.info.nominal_rate > 0:
            clock = item.extra.get("dejitter")
            if clock is None:
                clock = item.extra["dejitter"] = StreamClock(item.info.nominal_rate)
            stamps = clock.apply(stamps)
        return data, stamps

    def read(self, until: float) -> list[Chunk]:
        while self._gaps:
            start, viewer, gap = self._gaps.popleft()
            self.ctx.counters[f"{self.name}.gaps"] += 1
            evidence = {k: v for k, v in gap.items() if k != "start"}
            self.ctx.emit("sensor.gap", start, evidence=evidence, source=self.name, viewer=viewer)
        return super().read(until)

    def stop(self) -> None:
        super().stop()
        self._set.close()
