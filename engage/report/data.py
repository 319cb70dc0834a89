"""What a session report shows, gathered from an XDF file.

Two kinds of recording are read:

* **a recording made by engage** (``engage live --record``, or a :class:`~engage.record.RecorderSink`
  in any session): it holds the derived streams (``Engagement``, ``HeartRate``, ``EDAFeatures`` …)
  and the events (JSON on the ``engage-events`` stream, gaps on ``engage-record``), which are read
  directly - the report shows what the system saw and decided at the time;
* **a raw recording** (LabRecorder, ``engage record``): only sensor streams and markers. It is run
  through the live pipeline (:class:`~engage.sensors.replay.XdfReplay` and
  :class:`~engage.session.Session` on a :class:`~engage.core.VirtualClock`) to derive what can be
  derived from what it holds; the report lists which streams were found and what came out.

A damaged file is read up to its first bad chunk (:func:`~engage.sensors.replay.scan_xdf`), and the
report says where the damage is. A file that is not XDF raises
:class:`~engage.core.errors.InputFileError`.

>>> data = analyse_recording("session.xdf")                       # doctest: +SKIP
>>> data.mode, [s.name for s in data.derived]                     # doctest: +SKIP
('replayed', ['viewer-1-heart-rate', 'viewer-1-eda-features', ...])
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from engage.core import Chunk, Event, Processor, StreamInfo, VirtualClock
from engage.core.errors import InputFileError

log = logging.getLogger(__name__)

#: Stream types the pipeline derives; a recording holding one of the first three was made by engage.
DERIVED_TYPES = ("Engagement", "HeartRate", "EDAFeatures", "FaceFeatures", "Features", "FeaturesRelative", "HRV",
                 "RespirationRate", "WristFeatures", "WristFeaturesRelative", "SignalQuality", "GroupEngagement")
_ENGAGE_MADE = ("Engagement", "HeartRate", "EDAFeatures")
#: The report's plots and tables keep at most this many samples per channel (decimated evenly).
MAX_POINTS = 20000


@dataclass
class StreamSummary:
    """One stream of the recording (or one the replay derived): what it is and how much of it there is."""

    name: str
    type: str
    channels: tuple[str, ...]
    units: tuple[str, ...]
    nominal_rate: float
    is_string: bool
    samples: int = 0
    first: float | None = None
    last: float | None = None
    clock_segments: int = 1
    #: (start, end) of each stretch without a gap, on the LSL clock.
    segments: list[tuple[float, float]] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return 0.0 if self.first is None or self.last is None else self.last - self.first

    @property
    def measured_rate(self) -> float | None:
        """Samples per second of recorded time (gaps excluded); None for fewer than two samples."""
        covered = sum(b - a for a, b in self.segments)
        return (self.samples - len(self.segments)) / covered if covered > 0 and self.samples > 1 else None


@dataclass(frozen=True)
class GapRow:
    """A hole in one stream: ``end`` is None when the stream never came back."""

    stream: str
    start: float
    end: float | None
    reason: str
    source: str

    @property
    def duration_s(self) -> float | None:
        return None if self.end is None else self.end - self.start


@dataclass(frozen=True)
class Decision:
    """One scene the controller started, and why (from a ``scene.start`` event)."""

    timestamp: float
    scene: str
    title: str
    reason: str
    confidence: float
    episode: int | None
    previous: str | None
    intensity: float | None
    duration_s: float | None


@dataclass
class ReportData:
    """Everything a report shows; times are on the LSL clock, ``origin`` is the report's time zero."""

    path: Path
    file_size: int
    mode: str  # "recorded" (read directly) | "replayed" (raw recording run through the pipeline)
    streams: list[StreamSummary]
    derived: list[StreamSummary]
    series: dict[str, tuple[StreamInfo, np.ndarray, np.ndarray]]
    events: list[Event]
    decisions: list[Decision]
    gaps: list[GapRow]
    origin: float
    end: float
    problem: str | None = None
    problem_offset: int | None = None
    good_bytes: int | None = None
    load_warnings: list[str] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Streams without a footer in an otherwise sound file: the recorder never closed it (killed, disk lost).
    unclosed: list[str] = field(default_factory=list)

    def array(self, kind: str, channel: str, viewer: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Timestamps and values of ``channel`` across every stream of type ``kind`` that has it (of ``viewer``
        only, when given), time-sorted.

        >>> ReportData(Path("x"), 0, "recorded", [], [], {}, [], [], [], 0.0, 0.0).array("HeartRate", "hr_bpm")
        (array([], dtype=float64), array([], dtype=float64))
        """
        ts, xs = [], []
        for info, t, x in self.series.values():
            if info.type == kind and channel in info.channels and (viewer is None or info.viewer == viewer):
                ts.append(t)
                xs.append(x[:, info.index(channel)].astype(np.float64))
        if not ts:
            return np.zeros(0), np.zeros(0)
        t, x = np.concatenate(ts), np.concatenate(xs)
        order = np.argsort(t, kind="stable")
        return t[order], x[order]

    def has(self, kind: str) -> bool:
        return any(info.type == kind and len(t) for info, t, _ in self.series.values())

    def viewers(self, kind: str = "Engagement") -> list[str]:
        """The viewers with a ``kind`` stream, sorted (several: a group watched, issue 21)."""
        return sorted({info.viewer for info, t, _ in self.series.values() if info.type == kind and len(t)})

    def scenes(self) -> list[tuple[Decision, float]]:
        """Each decision with the time its scene ended (the next scene, the story's end or the recording's end)."""
        ends = sorted(e.timestamp for e in self.events if e.type == "story.end")
        out = []
        for i, d in enumerate(self.decisions):
            end = self.decisions[i + 1].timestamp if i + 1 < len(self.decisions) else self.end
            end = min([end] + [t for t in ends if t >= d.timestamp])
            out.append((d, max(end, d.timestamp)))
        return out


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------


def parse_event(text: str) -> Event | None:
    """An engage event from its JSON line, or None when ``text`` is not one (e.g. a plain marker).

    >>> parse_event('{"type":"marker","timestamp":1.5,"viewer":"v","evidence":{}}').type
    'marker'
    >>> parse_event("Hello") is None
    True
    """
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        event = Event.from_json(text)
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(event.evidence, dict) or not math.isfinite(event.timestamp):
        return None
    return event


def _is_event_stream(info: StreamInfo, rows: np.ndarray) -> bool:
    """A string stream whose samples are engage events (``engage-events``, ``engage-record``)."""
    if not info.is_string or rows.shape[1] != 1 or not len(rows):
        return False
    if info.name in ("engage-events", "engage-record") or info.source_id.startswith("engage-events"):
        return True
    head = rows[: min(len(rows), 20), 0]
    return all(parse_event(str(v)) is not None for v in head)


class _Collector(Processor):
    """Keeps every stream (raw and derived) the runtime routes: derived and string streams whole, raw
    numeric streams decimated to about ``MAX_POINTS`` samples (``expected`` samples per stream name known
    beforehand), with every chunk's first and last time so the stream's coverage stays exact."""

    name = "report-collector"

    def __init__(self, expected: dict[str, float] | None = None) -> None:
        self.chunks: dict[StreamInfo, list[Chunk]] = {}
        self.spans: dict[StreamInfo, list[tuple[float, float]]] = {}
        self.counts: Counter = Counter()
        self.expected = expected or {}

    def accepts(self, info: StreamInfo) -> bool:
        return True

    def stride(self, info: StreamInfo) -> int:
        if info.is_string or info.type in DERIVED_TYPES:
            return 1
        return max(1, int(math.ceil(self.expected.get(info.name, 0.0) / MAX_POINTS)))

    def process(self, chunk: Chunk) -> list[Chunk]:
        info = chunk.info
        stride = self.stride(info)
        seen = self.counts[info]
        self.counts[info] += len(chunk)
        self.spans.setdefault(info, []).append((chunk.first_time, chunk.last_time))
        if stride > 1:  # the samples whose index in the whole stream is a multiple of the stride
            chunk = chunk.slice((-seen) % stride, len(chunk))
            chunk = Chunk(info, chunk.data[::stride], chunk.timestamps[::stride])
        self.chunks.setdefault(info, []).append(chunk)
        return []


def _summaries(collector: _Collector, gap_threshold: Callable[[float], float],
               segments_of: dict[str, list[tuple[int, int]]]) -> tuple[list[StreamSummary], dict]:
    """Per-stream summaries and the (info, timestamps, data) series of every stream."""
    out, series = [], {}
    for info, parts in collector.chunks.items():
        t = np.concatenate([c.timestamps for c in parts])
        data = np.concatenate([c.data for c in parts]) if parts else np.zeros((0, info.channel_count))
        spans = collector.spans[info]
        s = StreamSummary(info.name, info.type, info.channels, info.units, info.nominal_rate, info.is_string,
                          samples=int(collector.counts[info]),
                          clock_segments=max(1, len(segments_of.get(info.name, [])) or 1))
        if spans:
            s.first, s.last = min(a for a, _ in spans), max(b for _, b in spans)
            if collector.stride(info) == 1:
                s.segments = _covered(t, info.nominal_rate, gap_threshold)
            else:  # a recording's chunks never straddle a gap: join the chunks' spans that follow closely
                merged = [list(spans[0])]
                for a, b in spans[1:]:
                    if 0 <= a - merged[-1][1] <= gap_threshold(info.nominal_rate):
                        merged[-1][1] = max(merged[-1][1], b)
                    else:
                        merged.append([a, b])
                s.segments = [(float(a), float(b)) for a, b in merged]
        out.append(s)
        series[info.name if info.name not in series else f"{info.name}#{info.source_id}"] = (info, t, data)
    return out, series


def _covered(t: np.ndarray, rate: float, gap_threshold: Callable[[float], float]) -> list[tuple[float, float]]:
    """Stretches of ``t`` without a hole; irregular streams (events, beats) count as one stretch."""
    if rate <= 0 or len(t) < 2:
        return [(float(t[0]), float(t[-1]))] if len(t) else []
    d = np.diff(t)
    cuts = np.flatnonzero((d > gap_threshold(rate)) | (d < 0)) + 1
    bounds = [0, *cuts.tolist(), len(t)]
    return [(float(t[a]), float(t[b - 1])) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _decisions(events: list[Event]) -> list[Decision]:
    out = []
    for e in events:
        if e.type != "scene.start":
            continue
        ev = e.evidence

        def num(key: str) -> float | None:
            try:
                v = float(ev.get(key))
            except (TypeError, ValueError):
                return None
            return v if math.isfinite(v) else None

        episode = num("episode")
        out.append(Decision(e.timestamp, str(ev.get("scene", "?")), str(ev.get("title", "") or ""),
                            str(ev.get("reason", "") or ""), float(e.confidence),
                            None if episode is None else int(episode),
                            None if ev.get("previous") is None else str(ev.get("previous")),
                            num("intensity"), num("duration_s")))
    return sorted(out, key=lambda d: d.timestamp)


#: Two reports of a hole in the same stream this close together (s) are one gap.
GAP_MERGE_S = 1.0


def _gaps(events: list[Event], found) -> list[GapRow]:
    """Gaps from ``sensor.gap`` events and from the recording's own holes, each hole once.

    The same hole is often reported more than once (the live source, the recorder's "stream lost" and
    "stream recovered", the recording's own missing samples): reports of one stream that overlap are
    merged. ``end`` None means the stream never came back.
    """
    raw: list[GapRow] = []
    for e in events:
        if e.type != "sensor.gap":
            continue
        ev = e.evidence
        stream = str(ev.get("stream") or ev.get("source") or e.source or "?")
        try:
            duration = float(ev.get("duration_s"))
        except (TypeError, ValueError):
            duration = math.nan
        end = e.timestamp + max(0.0, duration) if math.isfinite(duration) else None
        raw.append(GapRow(stream, float(e.timestamp), end, str(ev.get("reason", "") or ""), e.source or "event"))
    raw += [GapRow(g.stream, g.start, g.start + g.duration_s, g.reason, "recording") for g in found]
    out: list[GapRow] = []
    by_stream: dict[str, list[GapRow]] = {}
    for row in sorted(raw, key=lambda g: (g.stream, g.start, g.end is not None)):
        by_stream.setdefault(row.stream, []).append(row)
    for stream, rows in by_stream.items():
        groups: list[list[GapRow]] = []
        for row in rows:
            if groups:
                ends = [g.end for g in groups[-1]]
                known = [x for x in ends if x is not None]
                reach = max(known) if known else groups[-1][0].start
                if row.start <= reach + GAP_MERGE_S:
                    groups[-1].append(row)
                    continue
            groups.append([row])
        for group in groups:
            known = [g.end for g in group if g.end is not None]
            reasons = list(dict.fromkeys(g.reason for g in group if g.reason))
            sources = list(dict.fromkeys(g.source for g in group))
            out.append(GapRow(stream, min(g.start for g in group), max(known) if known else None,
                              "; ".join(reasons), ", ".join(sources)))
    return sorted(out, key=lambda g: (g.start, g.stream))


def analyse_recording(path: str | os.PathLike, story=None, viewer: str = "viewer-1",
                      on_step: Callable[[float], None] | None = None,
                      on_duration: Callable[[float], None] | None = None) -> ReportData:
    """Read ``path`` (XDF) and gather what its report shows.

    A recording made by engage is read directly; a raw one is run through the pipeline (with the
    narrative controller only when ``story`` is given - a raw recording was not watched with one).
    ``on_duration(seconds)`` is told the recording's length before a replay and ``on_step(now)`` is
    called at every runtime step (progress bars).

    Raises :class:`~engage.core.errors.InputFileError` for a file that is not XDF or holds no samples.
    """
    from engage.sensors.replay import XdfReplay, gap_threshold

    path = Path(path)
    # its own derived streams and events are read, not redone; each stream keeps the viewer its header names
    source = XdfReplay(path, viewer=viewer, derived=True, recorded_viewers=True)
    infos = source.streams()
    if not infos:
        where = f" (damaged at byte {source.scan.problem_offset}: {source.problem})" if source.problem else ""
        raise InputFileError(f"{path}: no stream with samples in this XDF file{where}")
    made_by_engage = any(i.type in _ENGAGE_MADE for i in infos)
    file_size = path.stat().st_size
    found = list(source.found_gaps)
    counters: dict[str, int] = {}
    notes: list[str] = []
    collector = _Collector({i.name: i.nominal_rate * source.duration for i in infos})
    if made_by_engage:
        mode = "recorded"
        for chunk in source.read(math.inf):
            collector.process(chunk)
        pipeline_events: list[Event] = []
    else:
        mode = "replayed"
        from engage.session import Session

        start = source.start_time() or 0.0
        if on_duration is not None:
            on_duration(source.duration)
        session = Session([source], VirtualClock(start), story=story, viewer=viewer, extra_processors=[collector])
        result = session.run(on_step=on_step)
        pipeline_events = list(result.log.events)
        counters = {k: int(v) for k, v in result.counters.items()}
    summaries, series = _summaries(collector, gap_threshold, source.clock_segments)
    raw_names = {i.name for i in infos}
    streams = [s for s in summaries if s.name in raw_names]
    derived = [s for s in summaries if s.name not in raw_names]
    if mode == "recorded":  # derived streams recorded by the session that made the file
        derived = [s for s in streams if s.type in DERIVED_TYPES]
    # events: engage event streams in the file, then what the replay emitted (markers of those streams excluded)
    events: list[Event] = []
    event_streams = set()
    for key, (info, t, data) in list(series.items()):
        if _is_event_stream(info, data):
            event_streams.add(info.name)
            for row in data[:, 0]:
                e = parse_event(str(row))
                if e is not None:
                    events.append(e)
    for e in pipeline_events:
        if e.type == "marker" and e.evidence.get("stream") in event_streams:
            continue
        events.append(e)
    if mode == "recorded" and not event_streams:  # plain marker streams only: their samples are the events
        for info, t, data in series.values():
            if info.is_string and data.shape[1]:
                events += [Event("marker", float(ti), viewer, 1.0, {"stream": info.name, "value": str(v)}, "recording")
                           for ti, v in zip(t, data[:, 0])]
    events.sort(key=lambda e: e.timestamp)
    firsts = [s.first for s in streams if s.first is not None]
    lasts = [s.last for s in summaries if s.last is not None] + [e.timestamp for e in events]
    origin = min(firsts) if firsts else 0.0
    end = max(lasts) if lasts else origin
    # an event stream is stamped with each event's time (a gap event with the gap's start), not in order
    gaps = _gaps(events, [g for g in found if g.stream not in event_streams])
    for key, (info, t, data) in list(series.items()):  # string streams are not plotted
        if not info.is_string:
            series[key] = (info, t, data.astype(np.float64))
    if mode == "replayed":
        kinds = Counter(s.type for s in streams)
        usable = [k for k in kinds if k in ("ECG", "PPG", "EDA", "Face", "RR", "StrapHR", "RSP", "Respiration")]
        if not usable:
            notes.append("no stream the pipeline reads (types ECG, PPG, RR, EDA, Face, RSP) is in this recording, "
                         f"so no heart rate, EDA or engagement could be derived (found: {', '.join(sorted(kinds))})")
    if source.dropped_samples:
        notes.append(f"{source.dropped_samples} samples without a finite timestamp were left out")
    return ReportData(
        path=path, file_size=file_size, mode=mode, streams=streams, derived=derived,
        series={k: v for k, v in series.items() if not v[0].is_string}, events=events,
        decisions=_decisions(events), gaps=gaps, origin=origin, end=end, problem=source.problem,
        problem_offset=source.scan.problem_offset, good_bytes=source.scan.good_bytes,
        load_warnings=list(source.load_warnings), counters=counters, notes=notes,
        unclosed=[] if source.problem else source.scan.unclosed,
    )


def event_summary(e: Event) -> str:
    """One readable line for an event's evidence.

    >>> event_summary(Event("marker", 1.0, "v", 1.0, {"stream": "Markers", "value": "go"}))
    'Markers: go'
    """
    ev = dict(e.evidence)
    if e.type == "marker":
        return f"{ev.get('stream', '')}: {ev.get('value', '')}"
    if e.type == "sensor.gap":
        d = ev.get("duration_s")
        return f"{ev.get('stream', ev.get('source', ''))}: {'' if d is None else f'{float(d):.1f} s, '}{ev.get('reason', '')}"
    if e.type == "scene.start":
        return f"{ev.get('scene', '')} \"{ev.get('title', '')}\": {ev.get('reason', '')}"
    if "reason" in ev:
        return str(ev["reason"])
    text = json.dumps({k: v for k, v in ev.items() if not isinstance(v, (dict, list))}, sort_keys=True)
    return text if len(text) <= 160 else text[:157] + "..."
