"""Replay sources: recordings (XDF, CSV) played through the live pipeline on the virtual clock.

``engage replay FILE.xdf`` runs exactly the processing of a live session, only the source
differs: :class:`XdfReplay` loads a LabRecorder file with pyxdf (clock synchronisation, clock
reset handling, dejittering) and hands out, at each runtime step, the samples whose timestamps
have been reached. :class:`CsvReplay` does the same for one stream stored as a CSV table.

Holes in a recording are told to the pipeline, never hidden: an interval longer than
``max(1 s, 5 / nominal_rate)`` in a regular-rate stream, or timestamps that go backwards, is
published as a ``sensor.gap`` event (reason ``"no samples"`` or ``"clock reset"``) as soon as
a live system would have noticed it, and chunks never straddle a gap.

A damaged XDF file is not fatal: :func:`scan_xdf` walks the chunk structure and reports where
it breaks, and :class:`XdfReplay` replays the readable part before that point.

>>> from engage.core import Runtime, VirtualClock
>>> src = XdfReplay("session.xdf")                               # doctest: +SKIP
>>> [s.name for s in src.streams()], round(src.duration, 1)      # doctest: +SKIP
(['MyMarkerStream', 'BioSemi'], 573.2)
>>> Runtime(VirtualClock(), [src], processors).run()             # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence
from xml.etree import ElementTree

import numpy as np

from engage.core.clock import MAX_TIMESTAMP_S
from engage.core.errors import ConfigError, InputFileError
from engage.core.runtime import Source
from engage.core.stream import IRREGULAR_RATE, Chunk, StreamInfo, xml_restore, xml_safe

log = logging.getLogger(__name__)

XDF_MAGIC = b"XDF:"
#: XDF chunk tags (https://github.com/sccn/xdf/wiki/Specifications).
XDF_TAGS = {1: "FileHeader", 2: "StreamHeader", 3: "Samples", 4: "ClockOffset", 5: "Boundary", 6: "StreamFooter"}
_TAGS_WITH_STREAM_ID = (2, 3, 4, 6)
#: A regular stream has a gap where more than this many samples (and at least 1 s) are missing.
GAP_SAMPLES = 5


# --------------------------------------------------------------------------------------------
# XDF structure scan
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class XdfScan:
    """What :func:`scan_xdf` found: how much of the file is structurally sound.

    ``good_bytes`` is the offset just after the last intact chunk; ``problem`` says what is
    wrong at ``problem_offset`` (both ``None`` for an intact file). ``stream_ids`` lists the
    ids of the stream headers in the good part, in file order; ``headers`` their XML text,
    ``footers`` the ids of the streams that have a StreamFooter (a recorder writes them when it
    closes the file: a stream without one was still being recorded when the recorder died).
    """

    path: Path
    n_chunks: int
    good_bytes: int
    file_size: int
    problem: str | None
    problem_offset: int | None
    stream_ids: list[int]
    headers: dict[int, str] = field(default_factory=dict)
    footers: frozenset[int] = frozenset()

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def closed_cleanly(self) -> bool:
        """Whether every stream has its footer (the recorder closed the file) and nothing is damaged."""
        return self.ok and all(sid in self.footers for sid in self.stream_ids)

    @property
    def unclosed(self) -> list[str]:
        """The names of the streams without a footer (still being recorded when the recorder stopped)."""
        names = []
        for sid in self.stream_ids:
            if sid not in self.footers:
                m = re.search(r"<name>(.*?)</name>", self.headers.get(sid, ""), re.S)
                names.append(xml_restore(m.group(1).strip()) if m else f"stream {sid}")
        return names


def _not_xdf(path: Path, why: str) -> InputFileError:
    return InputFileError(f"{path}: not an XDF file ({why})")


def scan_xdf(path: str | os.PathLike) -> XdfScan:
    """Walk the chunk structure of an XDF file without loading its samples.

    Raises :class:`InputFileError` when ``path`` is not an XDF file at all (missing, a
    directory, empty, no ``XDF:`` magic). A truncated or damaged file does not raise: the
    scan stops at the first bad chunk and says why, so the good part can still be replayed.

    >>> scan = scan_xdf("minimal.xdf")                             # doctest: +SKIP
    >>> scan.problem, scan.stream_ids                              # doctest: +SKIP
    (None, [0, 46202862])
    """
    path = Path(path)
    if not path.exists():
        raise _not_xdf(path, "file does not exist")
    if path.is_dir():
        raise _not_xdf(path, "it is a directory")
    try:
        with open(path, "rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            if file_size == 0:
                raise _not_xdf(path, "empty file")
            if f.read(len(XDF_MAGIC)) != XDF_MAGIC:
                raise _not_xdf(path, "no 'XDF:' magic")
            return _scan_chunks(path, f, file_size)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror or exc})") from exc


#: pyxdf's channel formats and their sizes in bytes (strings: at least a 1-byte length count and 1 length byte).
_FORMAT_BYTES = {"double64": 8, "float32": 4, "string": 2, "int32": 4, "int16": 2, "int8": 1, "int64": 8}


@dataclass(frozen=True)
class _StreamLayout:
    channel_count: int
    channel_format: str


def _read_varlen(buf: bytes, at: int) -> tuple[int, int] | None:
    """An XDF variable-length integer at ``buf[at:]``: (value, bytes used), None when malformed."""
    if at >= len(buf) or buf[at] not in (1, 4, 8):
        return None
    n = buf[at]
    if at + 1 + n > len(buf):
        return None
    return int.from_bytes(buf[at + 1:at + 1 + n], "little"), 1 + n


def _check_header(content: bytes, what: str) -> tuple[str | None, _StreamLayout | None]:
    """Parse a FileHeader / StreamHeader XML the way pyxdf will; return (problem, layout)."""
    try:
        # pyxdf decodes stream headers leniently but hands the file header's bytes to the parser
        root = ElementTree.fromstring(content.decode("utf-8", "replace") if what == "StreamHeader" else content)
    except ElementTree.ParseError as exc:
        return f"unreadable {what} XML ({exc})", None
    if what != "StreamHeader":
        return None, None
    name = root.find("name")
    if root.tag != "info" or name is None or len(name) or name.text is None:
        return "StreamHeader without an <info> element with a <name>", None
    count_text = (root.findtext("channel_count") or "").strip()
    fmt = root.findtext("channel_format") or ""  # pyxdf does not strip it either
    rate_text = (root.findtext("nominal_srate") or "").strip()
    try:
        count = int(count_text)
    except ValueError:
        return f"StreamHeader has a bad channel_count {count_text!r}", None
    if count < 0:
        return f"StreamHeader has a bad channel_count {count_text!r}", None
    if fmt not in _FORMAT_BYTES:
        return f"StreamHeader has an unknown channel_format {fmt!r}", None
    try:
        float(rate_text)
    except ValueError:
        return f"StreamHeader has a bad nominal_srate {rate_text!r}", None
    return None, _StreamLayout(count, fmt)


def _check_footer(content: bytes) -> str | None:
    """pyxdf ignores a footer it cannot parse, but trusts the sample_count of one it can."""
    try:
        root = ElementTree.fromstring(content)
    except ElementTree.ParseError:
        return None
    if root.tag != "info":
        return None
    if len(root) == 0:
        return None if root.text is None else "StreamFooter <info> holds text instead of fields"
    count = root.find("sample_count")
    if count is None or (len(count) == 0 and count.text is None):
        return None
    try:
        int(count.text if len(count) == 0 else "")
    except ValueError:
        return f"StreamFooter has a bad sample_count {count.text!r}"
    return None


def _check_samples(content: bytes, layout: _StreamLayout) -> str | None:
    """Check that a Samples chunk holds exactly the samples it declares.

    pyxdf reads samples one after the other without looking at the chunk length, so a chunk
    whose inside does not add up would shift every later read (and a huge declared count
    makes it allocate memory for samples that cannot be there). ``content`` is the chunk
    after the stream id: a sample count, then per sample a timestamp flag byte (non-zero: an
    8-byte timestamp follows) and the values.
    """
    count = _read_varlen(content, 0)
    if count is None:
        return "Samples chunk has a malformed sample count"
    n_samples, pos = count
    n_ch = layout.channel_count
    if layout.channel_format == "string":
        if n_samples * (1 + 2 * n_ch) > len(content) - pos:
            return f"Samples chunk declares {n_samples} samples but holds only {len(content) - pos} bytes"
        for _ in range(n_samples):
            if pos >= len(content):
                break
            pos += 1 + (8 if content[pos] else 0)
            for _ in range(n_ch):
                size = _read_varlen(content, pos)
                if size is None:
                    return "Samples chunk has a malformed string length"
                pos += size[1] + size[0]
        if pos != len(content):
            return f"Samples chunk of {n_samples} strings x {n_ch} does not add up to its {len(content)} bytes"
        return None
    record = 1 + n_ch * _FORMAT_BYTES[layout.channel_format]
    payload = np.frombuffer(content, dtype=np.uint8)[pos:]
    if n_samples * record > payload.size:
        return f"Samples chunk declares {n_samples} samples but holds only {payload.size} bytes"
    # the two layouts writers use: no sample stamped, or every sample stamped
    if payload.size == n_samples * record and not payload[::record].any():
        return None
    if payload.size == n_samples * (record + 8) and payload[::record + 8].all():
        return None
    at = 0
    for _ in range(n_samples):
        if at >= payload.size:
            break
        at += record + (8 if payload[at] else 0)
    if at != payload.size:
        return f"Samples chunk of {n_samples} samples x {n_ch} {layout.channel_format} does not add up " \
               f"to its {payload.size} bytes"
    return None


def _scan_chunks(path: Path, f: io.BufferedReader, file_size: int) -> XdfScan:
    pos = len(XDF_MAGIC)
    n_chunks = 0
    stream_ids: list[int] = []
    layouts: dict[int, _StreamLayout] = {}
    headers: dict[int, str] = {}
    footers: set[int] = set()

    def result(problem: str | None = None, offset: int | None = None) -> XdfScan:
        return XdfScan(path, n_chunks, pos, file_size, problem, offset, stream_ids, headers, frozenset(footers))

    while pos < file_size:
        f.seek(pos)
        n_len = f.read(1)[0]
        if n_len not in (1, 4, 8):
            return result(f"bad length-byte count {n_len} at byte {pos}", pos)
        raw_len = f.read(n_len)
        if len(raw_len) < n_len:
            return result(f"truncated at byte {pos}: length field needs {n_len} bytes, {len(raw_len)} remain", pos)
        length = int.from_bytes(raw_len, "little")
        body = pos + 1 + n_len
        remain = file_size - body
        if length > remain:
            return result(f"truncated at byte {pos}: chunk declares {length} bytes, {remain} remain", pos)
        if length < 2:
            return result(f"chunk at byte {pos} declares {length} bytes, too short for a tag", pos)
        tag = int.from_bytes(f.read(2), "little")
        if tag not in XDF_TAGS:
            return result(f"unknown chunk tag {tag} at byte {pos}", pos)
        what = XDF_TAGS[tag]
        problem = None
        if tag in _TAGS_WITH_STREAM_ID:
            if length < 6:
                return result(f"{what} chunk at byte {pos} declares {length} bytes, too short for a stream id", pos)
            stream_id = int.from_bytes(f.read(4), "little")
            if tag == 2:
                content = f.read(length - 6)
                problem, layout = _check_header(content, what)
                if layout is not None:
                    layouts[stream_id] = layout
                    headers[stream_id] = content.decode("utf-8", "replace")
                    if stream_id not in stream_ids:
                        stream_ids.append(stream_id)
            elif tag in (3, 4, 6) and stream_id not in layouts:
                problem = f"{what} chunk for stream {stream_id}, which has no header before it"
            elif tag == 3:
                problem = _check_samples(f.read(length - 6), layouts[stream_id])
            elif tag == 6:
                problem = _check_footer(f.read(length - 6))
                footers.add(stream_id)
            elif tag == 4 and length != 2 + 4 + 16:
                problem = f"ClockOffset chunk of {length} bytes (expected 22)"
        elif tag == 1:
            problem, _ = _check_header(f.read(length - 2), what)
        if problem is not None:
            return result(f"{problem} at byte {pos}", pos)
        n_chunks += 1
        pos = body + length
    return result()


# --------------------------------------------------------------------------------------------
# Shared machinery: a recording sliced by time, with gaps
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    """A hole in one stream: samples ``index - 1`` and ``index`` are ``duration_s`` apart
    (backwards for a clock reset), starting at ``start`` on the LSL clock."""

    stream: str
    index: int
    start: float
    duration_s: float
    reason: str  # "no samples" | "clock reset"
    notice_time: float  # the earliest replay time at which a live system would notice it


def gap_threshold(nominal_rate: float) -> float:
    """The longest interval that is not a gap in a stream of ``nominal_rate`` Hz.

    >>> gap_threshold(100.0), gap_threshold(0.5)
    (1.0, 10.0)
    """
    return max(1.0, GAP_SAMPLES / nominal_rate)


def find_gaps(
    name: str, timestamps: np.ndarray, nominal_rate: float, clock_breaks: Sequence[int] = ()
) -> list[Gap]:
    """Gaps of one stream: backwards steps in any stream; in a regular-rate stream also
    intervals above :func:`gap_threshold` and repeated timestamps (a regular sensor never
    stamps two samples alike). ``clock_breaks`` are sample indices where a new clock segment
    starts (pyxdf's clock-reset handling); a gap there is a ``"clock reset"``.

    >>> [(g.index, g.reason) for g in find_gaps("x", np.array([0.0, 0.1, 5.0, 2.0]), 10.0)]
    [(2, 'no samples'), (3, 'clock reset')]
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    if ts.size < 2:
        return []
    diff = np.diff(ts)
    if nominal_rate > 0:
        threshold = gap_threshold(nominal_rate)
        bad = (diff > threshold) | (diff <= 0)
    else:
        threshold = 0.0
        bad = diff < 0
    breaks = set(int(b) for b in clock_breaks)
    gaps = []
    for i in np.flatnonzero(bad):
        index = int(i) + 1
        d = float(diff[i])
        reason = "clock reset" if d <= 0 or index in breaks else "no samples"
        start = float(ts[i])
        # A forward hole becomes visible once no sample came for longer than the threshold;
        # a backwards step is seen as soon as the sample after it arrives.
        notice = start + threshold if d > 0 else start
        gaps.append(Gap(name, index, start, abs(d), reason, notice))
    return gaps


class _Track:
    """One stream of a recording: its arrays, its gaps and how far replay has got."""

    def __init__(self, info: StreamInfo, data: np.ndarray, timestamps: np.ndarray, gaps: list[Gap]) -> None:
        self.info = info
        self.data = data
        self.timestamps = timestamps
        self.gaps = gaps
        # segment boundaries: chunks are cut at every gap, and each segment is non-decreasing
        self.bounds = [g.index for g in gaps] + [len(timestamps)]
        self.segment = 0  # index into bounds of the segment being returned
        self.pos = 0  # next sample to return
        self.gap_emitted = [False] * len(gaps)

    @property
    def done(self) -> bool:
        return self.pos >= len(self.timestamps)


class RecordingSource(Source):
    """A source that slices in-memory recordings by time and reports their gaps.

    The base of every recording replay (XDF, CSV, dataset files, RR exports): a subclass loads
    its streams and hands each to :meth:`add_track`; reading by time, gap events, ``next_time``
    and ``exhausted`` come from here. With ``loop`` the recording starts over when it ends, its
    timestamps moved on by its length and ``loop_gap_s`` each time (time only ever goes
    forward; each restart is a ``sensor.gap`` of reason ``"replay loop"``).
    """

    name = "recording"

    def __init__(self, viewer: str, loop: bool = False, loop_gap_s: float = 1.0) -> None:
        self.viewer = viewer
        self._tracks: list[_Track] = []
        #: Number of ``sensor.gap`` events published so far.
        self.gaps = 0
        #: Every gap found in the recording when it was loaded.
        self.found_gaps: list[Gap] = []
        #: Samples left out because their timestamp was NaN or infinite.
        self.dropped_samples = 0
        self.loop = loop
        self.loop_gap_s = loop_gap_s
        #: How far the current pass is moved on from the recorded times (0 on the first pass).
        self.shift = 0.0
        #: Passes started so far (1 on the first).
        self.passes = 1

    def add_track(self, info: StreamInfo, data: np.ndarray, timestamps: np.ndarray,
                  clock_breaks: Sequence[int] = (), gaps: list[Gap] | None = None) -> None:
        """Add one stream. Its gaps are found with :func:`find_gaps` unless the caller knows them
        better (``gaps``, e.g. beats missing from an RR series); samples without a finite timestamp
        are dropped and counted, and so are those beyond ±``MAX_TIMESTAMP_S`` (a corrupt time)."""
        finite = np.abs(timestamps) <= MAX_TIMESTAMP_S  # False for NaN
        if not finite.all():
            # a sample without a usable time cannot be placed on the clock (and would stall replay)
            kept = np.flatnonzero(finite)
            self.dropped_samples += int(timestamps.size - kept.size)
            log.warning("%s: stream %r: dropped %d samples without a finite timestamp within ±%g s", self.name,
                        info.name, timestamps.size - kept.size, MAX_TIMESTAMP_S)
            clock_breaks = [int(np.searchsorted(kept, b)) for b in clock_breaks]
            data, timestamps = data[kept], timestamps[kept]
            if timestamps.size == 0:
                return
        if gaps is None:
            gaps = find_gaps(info.name, timestamps, info.nominal_rate, clock_breaks)
        self.found_gaps.extend(gaps)
        self._tracks.append(_Track(info, data, timestamps, gaps))

    def streams(self) -> list[StreamInfo]:
        return [t.info for t in self._tracks]

    def _first(self) -> float | None:
        firsts = [float(t.timestamps.min()) for t in self._tracks if len(t.timestamps)]
        return min(firsts) if firsts else None

    def start_time(self) -> float | None:
        first = self._first()
        return None if first is None else first + self.shift

    @property
    def duration(self) -> float:
        """Seconds from the earliest to the latest timestamp of all streams."""
        if not any(len(t.timestamps) for t in self._tracks):
            return 0.0
        first = min(float(t.timestamps.min()) for t in self._tracks if len(t.timestamps))
        last = max(float(t.timestamps.max()) for t in self._tracks if len(t.timestamps))
        return last - first

    @property
    def exhausted(self) -> bool:
        return not self.loop and all(t.done for t in self._tracks)

    def _rewind(self) -> None:
        """Start the next pass of a looping replay: each stream's restart is a gap, in time order."""
        old = self.shift
        self.shift += self.duration + self.loop_gap_s
        self.passes += 1
        for t in self._tracks:
            t.pos, t.segment, t.gap_emitted = 0, 0, [False] * len(t.gaps)
            if len(t.timestamps):
                end = float(t.timestamps[-1]) + old
                self._emit_gap(Gap(t.info.name, 0, end, float(t.timestamps[0]) + self.shift - end, "replay loop", end),
                               shifted=True)

    def next_time(self) -> float | None:
        """The earliest time at which :meth:`read` has something new (a sample or a gap
        event), or None at the end; lets a driver skip idle stretches of a recording."""
        times = []
        for t in self._tracks:
            if t.done:
                continue
            if t.pos == t.bounds[t.segment] and not t.gap_emitted[t.segment]:
                times.append(t.gaps[t.segment].notice_time)
            else:
                times.append(float(t.timestamps[t.pos]))
        if not times:
            first = self._first()
            return None if not self.loop or first is None else first + self.shift + self.duration + self.loop_gap_s
        return min(times) + self.shift

    def read(self, until: float) -> list[Chunk]:
        if self.loop and self._tracks and all(t.done for t in self._tracks) and \
                until >= (self._first() or 0.0) + self.shift + self.duration + self.loop_gap_s:
            self._rewind()
        out: list[Chunk] = []
        for track in self._tracks:
            out.extend(self._read_track(track, until - self.shift))
        return out

    def _read_track(self, t: _Track, until: float) -> list[Chunk]:
        chunks = []
        while not t.done:
            end = t.bounds[t.segment]
            if t.pos < end:
                # within a segment timestamps never decrease, so a binary search finds the cut
                stop = t.pos + int(np.searchsorted(t.timestamps[t.pos:end], until, side="right"))
                if stop > t.pos:
                    ts = t.timestamps[t.pos:stop]
                    chunks.append(Chunk(t.info, t.data[t.pos:stop], ts + self.shift if self.shift else ts))
                    t.pos = stop
                if stop < end:
                    break
            if t.segment == len(t.gaps):
                break
            # the segment is finished; the gap after it is published once it is noticeable
            gap = t.gaps[t.segment]
            if not t.gap_emitted[t.segment]:
                if until < gap.notice_time:
                    break
                self._emit_gap(gap)
                t.gap_emitted[t.segment] = True
            t.segment += 1
        return chunks

    def _emit_gap(self, gap: Gap, shifted: bool = False) -> None:
        self.gaps += 1
        start = gap.start if shifted else gap.start + self.shift
        log.info("%s: gap in %r at %.3f (%.3f s, %s)", self.name, gap.stream, start, gap.duration_s, gap.reason)
        ctx = getattr(self, "ctx", None)
        if ctx is None:  # read() without a runtime (e.g. a quick look in a notebook): count only
            return
        ctx.counters[f"{self.name}.gaps"] += 1
        ctx.emit("sensor.gap", start, confidence=1.0,
                 evidence={"stream": gap.stream, "duration_s": gap.duration_s, "reason": gap.reason},
                 source=self.name, viewer=self.viewer)


# --------------------------------------------------------------------------------------------
# XDF
# --------------------------------------------------------------------------------------------


def _first(info: dict, key: str, default: Any = None) -> Any:
    """pyxdf stores every XML element as a list; take the first value, or ``default``."""
    value = info.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    return default if value is None else value


def _channel_descs(info: dict) -> list[dict]:
    desc = _first(info, "desc")
    if not isinstance(desc, dict):
        return []
    channels = _first(desc, "channels")
    if not isinstance(channels, dict):
        return []
    return [c if isinstance(c, dict) else {} for c in channels.get("channel", [])]


def _text(value: Any) -> str:
    """An XML text value, control characters that were made XML-safe restored (:func:`xml_restore`)."""
    return xml_restore(value.strip()) if isinstance(value, str) else ""


def xdf_stream_info(info: dict, n_channels: int, viewer: str = "viewer-1") -> StreamInfo:
    """Map a pyxdf stream ``info`` dict onto a :class:`StreamInfo`.

    >>> xdf_stream_info({"name": ["ecg"], "type": ["ECG"], "nominal_srate": ["250"],
    ...                  "channel_format": ["float32"], "stream_id": 3}, 1).channels
    ('ch0',)
    """
    stream_id = info.get("stream_id")
    name = _text(_first(info, "name")) or f"xdf-{stream_id}"
    try:
        rate = float(_first(info, "nominal_srate", 0.0))
    except (TypeError, ValueError):
        rate = IRREGULAR_RATE
    if not math.isfinite(rate) or rate < 0:
        log.warning("XDF stream %r: invalid nominal rate %r, treated as irregular", name, _first(info, "nominal_srate"))
        rate = IRREGULAR_RATE
    descs = _channel_descs(info)
    labels, units = [], []
    for i in range(n_channels):
        d = descs[i] if i < len(descs) else {}
        labels.append(_text(_first(d, "label")) or f"ch{i}")
        units.append(_text(_first(d, "unit")))
    fmt = "string" if _first(info, "channel_format") == "string" else "float64"
    host = _text(_first(info, "hostname"))
    return StreamInfo(
        name=name,
        type=_text(_first(info, "type")),
        channels=tuple(labels),
        units=tuple(units),
        nominal_rate=rate,
        source_id=_text(_first(info, "source_id")) or f"xdf-{stream_id}",
        channel_format=fmt,
        viewer=viewer,
        metadata=(("xdf_stream_id", str(stream_id)),) + ((("hostname", host),) if host else ()),
    )


class _CollectLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _DropUnstamped:
    """pyxdf ``on_chunk`` hook: leaves out samples whose timestamp is NaN or infinite before
    clock synchronisation and dejittering, where one bad value would spoil a whole segment."""

    def __init__(self) -> None:
        self.dropped = 0

    def __call__(self, values, stamps, stream, stream_id):
        finite = np.isfinite(stamps)
        if finite.all():
            return values, stamps, stream
        self.dropped += int(finite.size - finite.sum())
        if isinstance(values, np.ndarray):
            values = values[finite]
        else:
            values = [row for row, ok in zip(values, finite) if ok]
        return values, stamps[finite], stream


def _load_xdf_quietly(source: str | io.BytesIO) -> tuple[list[dict], list[str], int]:
    """``pyxdf.load_xdf`` with its log captured: returns the streams, pyxdf's warnings and the
    number of samples dropped for want of a finite timestamp.

    pyxdf logs expected conditions (a handled clock reset) as warnings; they are re-logged
    here at DEBUG and kept for the caller, so a replay does not alarm the user on every run.
    """
    import pyxdf

    drop = _DropUnstamped()

    pyxdf_log = logging.getLogger("pyxdf.pyxdf")
    handler = _CollectLogs()
    saved = pyxdf_log.propagate, pyxdf_log.level
    pyxdf_log.addHandler(handler)
    pyxdf_log.propagate = False
    if pyxdf_log.getEffectiveLevel() > logging.WARNING:
        pyxdf_log.setLevel(logging.WARNING)
    try:
        # numpy warns too when the clock fit meets odd offsets; those are kept the same way
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # Dejittering fits one line per segment; by default pyxdf only starts a new segment
            # after 500 missing samples, which would smear shorter holes over their neighbours.
            # Breaking where engage sees a gap keeps every hole where it was recorded.
            streams, _header = pyxdf.load_xdf(source, synchronize_clocks=True, handle_clock_resets=True,
                                              dejitter_timestamps=True, jitter_break_threshold_seconds=1.0,
                                              jitter_break_threshold_samples=GAP_SAMPLES, on_chunk=drop)
    finally:
        pyxdf_log.removeHandler(handler)
        pyxdf_log.propagate, level = saved
        pyxdf_log.setLevel(level)
    messages = []
    for record in handler.records:
        message = record.getMessage()
        log.debug("pyxdf: %s", message)
        if record.levelno >= logging.WARNING:
            messages.append(message)
    for w in caught:
        log.debug("pyxdf: %s: %s", w.category.__name__, w.message)
        messages.append(f"{w.category.__name__}: {w.message}")
    return streams, messages, drop.dropped


#: Stream types engage's pipeline derives: in a file engage wrote before it marked each stream's role,
#: these (and the ``engage-events``/``engage-record`` marker streams) are its output, the rest raw input.
ENGAGE_DERIVED_TYPES = frozenset({
    "HeartRate", "HRV", "EDAFeatures", "FaceFeatures", "Features", "FeaturesRelative", "Engagement",
    "EngagementRules", "ArousalModel", "SignalQuality", "RespirationRate", "RPPG", "WristFeatures",
    "WristFeaturesRelative", "Group", "GroupEngagement", "PulseWave"})
#: What a recorded stream is to a replay: input to process, or output engage recorded.
ROLES = ("raw", "derived", "events", "log")


def recorded_role(header_xml: str | None, name: str, type_: str) -> str:
    """Whether a recorded stream is ``raw`` input, or engage's own ``derived`` stream, ``events`` or recorder
    ``log``: from the ``<engage><role>`` its header carries, else (older engage files, with engage as the
    ``acquisition/manufacturer``) from its type and name; any other stream is raw.

    >>> recorded_role("<info><desc><engage><role>derived</role></engage></desc></info>", "hr", "HeartRate")
    'derived'
    >>> recorded_role("<info><name>EEG</name></info>", "EEG", "EEG")
    'raw'
    """
    if not header_xml:
        return "raw"
    try:
        root = ElementTree.fromstring(xml_safe(header_xml))
    except ElementTree.ParseError:
        return "raw"
    role = (root.findtext("desc/engage/role") or "").strip()
    if role in ROLES:
        return role
    if role in ("replay", "sensor"):  # a player's or a bridge's outlet, recorded: input like any device
        return "raw"
    made_by_engage = role or (root.findtext("desc/acquisition/manufacturer") or "").strip() == "engage" \
        or (root.findtext("desc/manufacturer") or "").strip() == "engage"
    if not made_by_engage:
        return "raw"
    if name == "engage-events" or name.startswith("engage-events") and type_ == "Markers":
        return "events"
    if name == "engage-record":
        return "log"
    return "derived" if type_ in ENGAGE_DERIVED_TYPES else "raw"


@dataclass
class RecordedStream:
    """One stream of an XDF file as a replay holds it: what it is (``role``: see :func:`recorded_role`),
    its samples and its header XML (for a player that republishes it as it was)."""

    info: StreamInfo
    role: str
    data: np.ndarray
    timestamps: np.ndarray
    header: str | None
    clock_breaks: list[int]
    recorded_type: str = ""  # the type in the file, before a live session's mapping is applied
    native: np.ndarray | None = None  # the samples in their recorded numeric type, when it is not float64


class XdfReplay(RecordingSource):
    """Replays an XDF recording (LabRecorder format) on the runtime's clock.

    ``streams`` selects streams by name or type (default: all). Streams without samples are
    skipped. A damaged file is replayed up to its first bad chunk; ``problem`` then says what
    is wrong (``None`` for an intact file), and :attr:`closed_cleanly` whether the recorder
    closed it (every stream has its footer). ``clock_segments`` holds pyxdf's clock segments
    (inclusive sample-index ranges between clock resets) per stream name, ``load_warnings``
    what pyxdf warned about while loading.

    A recording made by engage holds its raw streams beside what engage derived from them
    (``derived`` streams, ``events``, the recorder's ``log``; see :func:`recorded_role`). Only
    the raw streams are fed to the pipeline unless ``derived`` is true (then every stream is); all are in
    :attr:`recorded` (and the events parsed in :attr:`recorded_events`). A raw stream a live
    session's sensor bound is given back the engage type, channel name and viewer that sensor
    gave it (the session logged each binding), so a replay processes what the live session did.
    With ``recorded_viewers`` every stream keeps the viewer its header names.

    ``start_s``/``end_s`` keep only that window (seconds from the recording's first sample);
    ``loop`` plays it over and over (see :class:`RecordingSource`).

    >>> src = XdfReplay("minimal.xdf")                             # doctest: +SKIP
    >>> [(s.name, s.type, s.nominal_rate) for s in src.streams()]  # doctest: +SKIP
    [('SendDataC', 'EEG', 10.0), ('SendDataString', 'StringMarker', 10.0)]
    >>> [len(c) for c in src.read(5.45)]                           # doctest: +SKIP
    [5, 4]
    """

    name = "xdf-replay"

    def __init__(self, path: str | os.PathLike, streams: Sequence[str] | None = None,
                 viewer: str = "viewer-1", derived: bool = False, start_s: float | None = None,
                 end_s: float | None = None, loop: bool = False, recorded_viewers: bool = False) -> None:
        super().__init__(viewer, loop=loop)
        self.path = Path(path)
        self.scan = scan_xdf(self.path)
        self.problem: str | None = self.scan.problem
        self.clock_segments: dict[str, list[tuple[int, int]]] = {}
        self.load_warnings: list[str] = []
        self.recorded: list[RecordedStream] = []
        self.recorded_events: list = []
        self.derived = derived
        self.recorded_viewers = recorded_viewers
        if start_s is not None and end_s is not None and not end_s > start_s:
            raise ConfigError(f"{self.path}: the window's end ({end_s:g} s) must come after its start ({start_s:g} s)")
        for what, v in (("start", start_s), ("end", end_s)):
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"{self.path}: window {what} must be a time >= 0 in seconds, got {v!r}")
        self.window = (start_s, end_s)
        if self.problem is not None:
            log.warning("%s: damaged XDF file, replaying the first %d of %d bytes: %s",
                        self.path, self.scan.good_bytes, self.scan.file_size, self.problem)
        raw = self._load()
        self._select_and_add(raw, streams)
        if self.dropped_samples:
            log.warning("%s: left out %d samples without a finite timestamp", self.path, self.dropped_samples)

    @property
    def closed_cleanly(self) -> bool:
        """Whether the recorder closed the file (every stream has its footer) and nothing is damaged."""
        return self.scan.closed_cleanly

    @property
    def made_by_engage(self) -> bool:
        """Whether the file holds engage's own output (derived streams or events) beside its raw streams."""
        return any(r.role != "raw" for r in self.recorded)

    def _load(self) -> list[dict]:
        try:
            if self.problem is None:
                raw, self.load_warnings, self.dropped_samples = _load_xdf_quietly(str(self.path))
            else:
                # pyxdf's own recovery raises on some truncations; hand it only the sound part
                with open(self.path, "rb") as f:
                    good = f.read(self.scan.good_bytes)
                raw, self.load_warnings, self.dropped_samples = _load_xdf_quietly(io.BytesIO(good))
        except InputFileError:
            raise
        except Exception as exc:  # noqa: BLE001 - pyxdf raises anything from KeyError to ParseError
            where = f" (readable part ends at byte {self.scan.good_bytes}: {self.problem})" if self.problem else ""
            raise InputFileError(f"{self.path}: cannot load XDF{where}: {type(exc).__name__}: {exc}") from exc
        return raw

    @staticmethod
    def _as_2d(series, is_string: bool) -> np.ndarray:
        """pyxdf's samples as float64 (n, channels), or an object array of str for strings."""
        if not is_string:
            data = np.asarray(series, dtype=np.float64)
            return data if data.ndim == 2 else data.reshape(len(data), -1)
        n_ch = len(series[0]) if len(series) else 0
        data = np.empty((len(series), n_ch), dtype=object)
        for i, row in enumerate(series):
            data[i, :] = [str(v) if v is not None else "" for v in row]
        return data

    def _select_and_add(self, raw: list[dict], selectors: Sequence[str] | None) -> None:
        wanted = None if selectors is None else [selectors] if isinstance(selectors, str) else list(selectors)
        if wanted is not None:
            available = {(_text(_first(s["info"], "name")), _text(_first(s["info"], "type"))) for s in raw}
            unknown = [w for w in wanted if not any(w in pair for pair in available)]
            if unknown:
                names = ", ".join(sorted(repr(n) for n, _ in available)) or "none"
                raise ConfigError(f"{self.path}: no stream named or typed {', '.join(map(repr, unknown))} "
                                  f"(streams: {names})")
        for stream in raw:
            info = stream["info"]
            if wanted is not None and not ({_text(_first(info, "name")), _text(_first(info, "type"))} & set(wanted)):
                continue
            timestamps = np.asarray(stream["time_stamps"], dtype=np.float64).reshape(-1)
            if timestamps.size == 0:
                log.debug("%s: skipping empty stream %r", self.path, _first(info, "name"))
                continue
            data = self._as_2d(stream["time_series"], _first(info, "channel_format") == "string")
            if data.shape != (len(timestamps), data.shape[1]):
                raise InputFileError(f"{self.path}: stream {_first(info, 'name')!r} has {data.shape[0]} samples "
                                     f"but {len(timestamps)} timestamps")
            if data.shape[1] == 0:
                log.warning("%s: skipping stream %r, which has no channels", self.path, _first(info, "name"))
                continue
            header = self.scan.headers.get(info.get("stream_id"))
            viewer = (self.recorded_viewers and _desc_value(info, "acquisition", "viewer")) or self.viewer
            stream_info = xdf_stream_info(info, data.shape[1], viewer)
            segments = [(int(a), int(b)) for a, b in info.get("clock_segments") or []]
            self.clock_segments[stream_info.name] = segments
            role = recorded_role(header, stream_info.name, stream_info.type)
            series = stream["time_series"]
            native = series.reshape(len(timestamps), -1) if isinstance(series, np.ndarray) and \
                series.dtype != np.float64 else None
            self.recorded.append(RecordedStream(stream_info, role, data, timestamps, header,
                                                [a for a, _ in segments[1:]], stream_info.type, native))
        self._apply_bindings()
        self._apply_window()
        for r in self.recorded:
            if r.role == "events":
                self.recorded_events.extend(_parse_events(r.data[:, 0]))
            if r.role == "raw" or self.derived:
                self.add_track(r.info, r.data, r.timestamps, clock_breaks=r.clock_breaks)

    def _apply_bindings(self) -> None:
        """Give each raw stream a live session's sensor bound the type, channel and viewer it had there."""
        from engage.sensors.lsl import map_stream

        bindings: dict[tuple, dict] = {}
        for r in self.recorded:
            if r.role == "log":
                for e in _parse_events(r.data[:, 0]):
                    if e.type == "stream.bound":
                        ev = e.evidence
                        bindings[(ev.get("name"), ev.get("source_id"), ev.get("hostname") or "")] = ev
        if not bindings:
            return
        for r in self.recorded:
            if r.role != "raw":
                continue
            ev = bindings.get((r.info.name, r.info.source_id, dict(r.info.metadata).get("hostname", "")))
            if ev is None:
                continue
            info = r.info
            if ev.get("maps_to"):
                info = map_stream(info, ev["maps_to"], ev.get("channel"), ev.get("sensor", ""))
            if ev.get("viewer"):
                info = replace(info, viewer=str(ev["viewer"]))
            if ev.get("engage_source_id"):
                info = replace(info, source_id=str(ev["engage_source_id"]))
            r.info = info

    def _apply_window(self) -> None:
        start_s, end_s = self.window
        if start_s is None and end_s is None:
            return
        firsts = [float(r.timestamps.min()) for r in self.recorded if len(r.timestamps)]
        if not firsts:
            return
        t0 = min(firsts)
        lo = t0 + (start_s or 0.0)
        hi = t0 + end_s if end_s is not None else np.inf
        kept = []
        for r in self.recorded:
            keep = (r.timestamps >= lo) & (r.timestamps <= hi)
            if not keep.any():
                continue
            index = np.flatnonzero(keep)
            r.clock_breaks = [int(np.searchsorted(index, b)) for b in r.clock_breaks if index[0] < b <= index[-1]]
            r.data, r.timestamps = r.data[keep], r.timestamps[keep]
            if r.native is not None:
                r.native = r.native[keep]
            kept.append(r)
        if not kept:
            raise ConfigError(f"{self.path}: nothing recorded between {start_s or 0:g} s and "
                              f"{end_s if end_s is not None else 'the end'} s (the recording lasts "
                              f"{max(float(r.timestamps.max()) for r in self.recorded) - t0:.1f} s)")
        self.recorded = kept

    def player_source(self) -> RecordingSource:
        """Every recorded stream (raw, derived, events, log) as one source, window and loop as this replay,
        each in its recorded numeric type, for a player that republishes the recording as it was (the
        track's ``info.metadata`` holds ``recorded_index``: its place in :attr:`recorded`)."""
        src = RecordingSource(self.viewer, loop=self.loop, loop_gap_s=self.loop_gap_s)
        for i, r in enumerate(self.recorded):
            info = replace(r.info, metadata=tuple(r.info.metadata) + (("recorded_index", str(i)),))
            src.add_track(info, r.native if r.native is not None else r.data, r.timestamps,
                          clock_breaks=r.clock_breaks)
        return src


def _desc_value(info: dict, *path: str) -> str:
    """The text at ``desc/<path…>`` of a pyxdf stream info ("" when absent)."""
    node: Any = info
    for key in ("desc", *path):
        node = _first(node, key) if isinstance(node, dict) else None
    return _text(node)


def _parse_events(values) -> list:
    """The engage events in a column of JSON strings (anything else is skipped)."""
    from engage.core.event import Event

    out = []
    for v in values:
        try:
            out.append(Event.from_json(str(v)))
        except (ValueError, KeyError, TypeError):
            continue
    return out


# --------------------------------------------------------------------------------------------
# Real-time pacing
# --------------------------------------------------------------------------------------------


class PacedClock:
    """A clock that runs from a recording's ``start`` at the pace of the wall clock (times ``speed``),
    so a replay driven by it hands out samples when they were originally recorded.

    The runtime treats it as a live clock (it sleeps between steps).

    >>> c = PacedClock(1000.0); 1000.0 <= c.now() < 1001.0
    True
    """

    realtime = True

    def __init__(self, start: float, speed: float = 1.0) -> None:
        import time

        if not (math.isfinite(speed) and speed > 0):
            raise ConfigError(f"replay speed must be positive, got {speed!r}")
        self._monotonic = time.monotonic
        self.start = float(start)
        self.speed = float(speed)
        self._wall0 = time.monotonic()

    def now(self) -> float:
        return self.start + (self._monotonic() - self._wall0) * self.speed


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------


def _parse_float(text: str) -> float:
    text = text.strip()
    if text == "":
        return math.nan
    return float(text)


class CsvReplay(RecordingSource):
    """Replays one stream stored as CSV: a header row, a time column in seconds on the LSL
    clock and one numeric column per channel (empty cells are NaN).

    The rate is the median sampling interval's inverse unless ``rate`` is given. Timestamps
    that do not increase are reported as ``sensor.gap`` events, not errors.

    >>> src = CsvReplay("hr.csv", "HeartRate", units=["bpm"])      # doctest: +SKIP
    >>> src.streams()[0].channels                                  # doctest: +SKIP
    ('hr',)
    """

    name = "csv-replay"

    def __init__(self, path: str | os.PathLike, stream_type: str, name: str | None = None,
                 time_column: str = "timestamp", rate: float | None = None, units: Sequence[str] | None = None,
                 viewer: str = "viewer-1") -> None:
        super().__init__(viewer)
        self.path = Path(path)
        channels, timestamps, data = self._parse(time_column)
        if units is not None and len(units) != len(channels):
            raise ConfigError(f"{self.path}: {len(units)} units given for {len(channels)} channels "
                              f"({', '.join(channels)})")
        if rate is None:
            rate = self._estimate_rate(timestamps)
        elif not (math.isfinite(rate) and rate >= 0):
            raise ConfigError(f"{self.path}: invalid rate {rate!r}")
        info = StreamInfo(
            name=name or self.path.stem,
            type=stream_type,
            channels=tuple(channels),
            units=tuple(units) if units is not None else ("",) * len(channels),
            nominal_rate=float(rate),
            source_id=f"csv-{self.path.name}",
            viewer=viewer,
            metadata=(("csv_file", self.path.name),),  # the name only: paths often hold a person's name
        )
        self.add_track(info, data, timestamps)

    @staticmethod
    def _estimate_rate(timestamps: np.ndarray) -> float:
        diffs = np.diff(timestamps)
        diffs = diffs[diffs > 0]
        rate = float(1.0 / np.median(diffs)) if diffs.size else IRREGULAR_RATE
        return rate if math.isfinite(rate) else IRREGULAR_RATE

    def _parse(self, time_column: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        p = self.path
        if not p.exists():
            raise InputFileError(f"{p}: no such file")
        if p.is_dir():
            raise InputFileError(f"{p}: is a directory, not a CSV file")
        try:
            with open(p, newline="", encoding="utf-8-sig") as f:
                reader = csv.reader(f)
                header = None
                for row in reader:
                    if any(cell.strip() for cell in row):
                        header = [cell.strip() for cell in row]
                        break
                if header is None:
                    raise InputFileError(f"{p}: empty file (expected a header row with a {time_column!r} column)")
                header_line = reader.line_num
                if time_column not in header:
                    raise InputFileError(f"{p}: line {header_line}: no time column {time_column!r} "
                                         f"(columns: {', '.join(header)})")
                t_index = header.index(time_column)
                channel_cols = [i for i in range(len(header)) if i != t_index]
                channels = [header[i] or f"ch{k}" for k, i in enumerate(channel_cols)]
                times: list[float] = []
                rows: list[list[float]] = []
                for row in reader:
                    if not any(cell.strip() for cell in row):
                        continue
                    line = reader.line_num
                    if len(row) != len(header):
                        raise InputFileError(f"{p}: line {line}: {len(row)} fields, the header has {len(header)}")
                    times.append(self._time(row[t_index], line, time_column))
                    values = []
                    for i in channel_cols:
                        try:
                            values.append(_parse_float(row[i]))
                        except ValueError:
                            raise InputFileError(f"{p}: line {line}, column {header[i]!r}: "
                                                 f"not a number: {row[i]!r}") from None
                    rows.append(values)
        except UnicodeDecodeError as exc:
            raise InputFileError(f"{p}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from exc
        except csv.Error as exc:
            raise InputFileError(f"{p}: malformed CSV: {exc}") from exc
        except OSError as exc:
            raise InputFileError(f"{p}: cannot read ({exc.strerror or exc})") from exc
        if not times:
            raise InputFileError(f"{p}: header but no data rows")
        data = np.asarray(rows, dtype=np.float64).reshape(len(times), len(channels))
        return channels, np.asarray(times, dtype=np.float64), data

    def _time(self, cell: str, line: int, column: str) -> float:
        try:
            t = float(cell.strip())
        except ValueError:
            raise InputFileError(
                f"{self.path}: line {line}, column {column!r}: not a time in seconds: {cell!r}") from None
        if not math.isfinite(t):
            raise InputFileError(f"{self.path}: line {line}, column {column!r}: time must be finite, got {cell!r}")
        if abs(t) > MAX_TIMESTAMP_S:
            raise InputFileError(f"{self.path}: line {line}, column {column!r}: time {cell.strip()} s is outside "
                                 f"±{MAX_TIMESTAMP_S:g} s (seconds on the LSL clock or since 1970 expected; "
                                 "milliseconds?)")
        return t
