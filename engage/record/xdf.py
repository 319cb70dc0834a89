"""An XDF writer (https://github.com/sccn/xdf/wiki/Specifications), crash-safe by construction.

The file is a sequence of chunks: the magic ``XDF:``, a FileHeader, then for each stream a
StreamHeader (the stream's LSL XML), Samples chunks (every sample with its 8-byte timestamp),
ClockOffset chunks (collection time and offset, as LabRecorder writes them), Boundary chunks
(every ``boundary_interval`` seconds, so a reader can resynchronise in a damaged file), and a
StreamFooter per stream when the file is closed.

Crash safety: chunks are assembled whole in memory and written whole; the buffer goes to the
operating system at least every ``flush_interval`` seconds (default 0.5 s), so a process
killed with SIGKILL loses at most that much, and what is on disk always ends on a chunk
boundary or inside the last chunk (which readers drop). A write that fails (disk full, the
medium gone) truncates the file back to its last whole chunk and raises
:class:`RecordingError` naming the file and how much of it stays readable.

>>> import io
>>> from engage.core import StreamInfo
>>> w = XdfWriter(io.BytesIO())
>>> sid = w.add_stream(StreamInfo("ecg", "ECG", ("ecg",), ("mV",), 250.0, "sim-ecg"))
>>> w.write_samples(sid, np.zeros((3, 1)), np.array([0.0, 0.004, 0.008]))
>>> w.close(); w.samples_written
3
"""

from __future__ import annotations

import datetime as _dt
import errno
import io
import logging
import os
import re
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import numpy as np

from engage.core.errors import EngageError
from engage.core.stream import Chunk, StreamInfo, xml_safe

log = logging.getLogger(__name__)

MAGIC = b"XDF:"
TAG_FILE_HEADER, TAG_STREAM_HEADER, TAG_SAMPLES, TAG_CLOCK_OFFSET, TAG_BOUNDARY, TAG_STREAM_FOOTER = 1, 2, 3, 4, 5, 6
#: The 16 bytes of every Boundary chunk, fixed by the specification.
BOUNDARY_UUID = bytes([0x43, 0xA5, 0x46, 0xDC, 0xCB, 0xF5, 0x41, 0x0F, 0xB3, 0x0E, 0xD5, 0x46, 0x73, 0x83, 0xCB, 0xE4])
_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
#: XDF channel formats and their little-endian numpy types (strings are written separately).
FORMATS = {"double64": "<f8", "float32": "<f4", "int64": "<i8", "int32": "<i4", "int16": "<i2", "int8": "i1"}


class RecordingError(EngageError):
    """A recording that cannot be written (unwritable path, disk full); names the file and what stays readable."""


def _varlen(n: int) -> bytes:
    """An XDF variable-length integer: a byte saying 1, 4 or 8, then the value little-endian."""
    if n < 256:
        return b"\x01" + struct.pack("<B", n)
    if n < 2**32:
        return b"\x04" + struct.pack("<I", n)
    return b"\x08" + struct.pack("<Q", n)


def chunk_bytes(tag: int, content: bytes) -> bytes:
    """One whole XDF chunk: length (of tag + content), tag, content.

    >>> chunk_bytes(5, b"")
    b'\\x01\\x02\\x05\\x00'
    """
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


def encode_samples(data: np.ndarray, timestamps: np.ndarray, channel_format: str) -> bytes:
    """The body of a Samples chunk after the stream id: count, then per sample a timestamp and values.

    >>> len(encode_samples(np.zeros((2, 3)), np.array([1.0, 2.0]), "double64"))
    68
    """
    n = int(timestamps.shape[0])
    head = _varlen(n)
    if channel_format == "string":
        out = bytearray(head)
        for t, row in zip(timestamps, data):
            out += b"\x08" + struct.pack("<d", float(t))
            for v in row:
                raw = ("" if v is None else str(v)).encode("utf-8")
                out += _varlen(len(raw)) + raw
        return bytes(out)
    n_ch = data.shape[1] if data.ndim == 2 else 0
    rec = np.empty(n, dtype=np.dtype([("flag", "u1"), ("t", "<f8"), ("v", FORMATS[channel_format], (n_ch,))]))
    rec["flag"] = 8
    rec["t"] = timestamps
    rec["v"] = data.reshape(n, n_ch)
    return head + rec.tobytes()


def _x(text: str) -> str:
    """Text for an XML element: escaped, control characters made safe (read back with ``xml_restore``)."""
    return escape(xml_safe(str(text)))


def stream_xml(info: StreamInfo, channel_format: str, role: str | None = None) -> str:
    """The StreamHeader XML of an in-process stream, in the shape LSL gives (channels in ``desc``), with
    ``<engage><role>…</role></engage>`` when the role is known (``raw``, ``derived``, ``events``, ``log``:
    what a replay feeds to its pipeline). A name, type or unit holding a control character (which XML
    cannot hold) is written with it moved to the private-use plane
    (:func:`~engage.core.stream.xml_safe`) and read back intact."""
    channels = "".join(
        f"<channel><label>{_x(c)}</label><unit>{_x(u)}</unit><type>{_x(info.type)}</type></channel>"
        for c, u in zip(info.channels, info.units))
    meta = "".join(f"<{k}>{_x(v)}</{k}>" for k, v in info.metadata if _XML_NAME.match(k))
    return (f'<?xml version="1.0"?><info><name>{_x(info.name)}</name><type>{_x(info.type)}</type>'
            f"<channel_count>{info.channel_count}</channel_count><nominal_srate>{info.nominal_rate!r}</nominal_srate>"
            f"<channel_format>{channel_format}</channel_format><source_id>{_x(info.source_id)}</source_id>"
            f"<version>1.1</version><created_at>0</created_at><uid></uid><hostname></hostname>"
            f"<desc><channels>{channels}</channels><acquisition><manufacturer>engage</manufacturer>"
            f"<viewer>{_x(info.viewer)}</viewer></acquisition>{meta}"
            + (f"<engage><role>{_x(role)}</role></engage>" if role else "") + "</desc></info>")


def file_datetime(now: _dt.datetime | None = None) -> str:
    """The FileHeader ``datetime`` as LabRecorder writes it: local time, ISO 8601 to the second, the UTC
    offset without a colon (``2024-05-08T13:02:05+0200``), which MNELAB and other readers parse.

    >>> file_datetime(_dt.datetime(2024, 5, 8, 13, 2, 5, 123456, tzinfo=_dt.timezone.utc))
    '2024-05-08T13:02:05+0000'
    """
    now = now or _dt.datetime.now().astimezone()
    return now.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass
class _Stream:
    name: str
    channel_format: str
    channel_count: int
    first: float | None = None
    last: float | None = None
    count: int = 0
    offsets: list[tuple[float, float]] = field(default_factory=list)


class XdfWriter:
    """Writes one XDF file; thread-safe (a recorder's inlet threads share one writer).

    ``target`` is a path or an open binary file object (then the caller owns it). Streams are
    added with :meth:`add_stream` (an in-process :class:`StreamInfo`) or :meth:`add_stream_xml`
    (an LSL stream's own XML header); each returns the XDF stream id used by
    :meth:`write_samples`, :meth:`write_clock_offset` and :meth:`write_chunk`.
    """

    def __init__(self, target: str | os.PathLike | BinaryIO, flush_interval: float = 0.5,
                 boundary_interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        if flush_interval <= 0 or flush_interval > 1.0:
            raise ValueError("flush_interval must be in (0, 1] s: a killed recorder may lose at most that")
        self.flush_interval = flush_interval
        self.boundary_interval = boundary_interval
        self._clock = clock
        self._lock = threading.RLock()
        self._streams: dict[int, _Stream] = {}
        self._next_id = 1
        self._buffer = bytearray()
        self._committed = 0  # bytes known to be whole chunks in the file
        self._last_flush = clock()
        self._last_boundary = clock()
        self.samples_written = 0
        #: Samples known to be in the file (handed to the operating system).
        self.samples_committed = 0
        self.closed = False
        self.error: RecordingError | None = None
        if isinstance(target, (str, os.PathLike)):
            self.path: Path | None = Path(target)
            self._file = self._open(self.path)
            self._owned = True
        else:
            self.path, self._file, self._owned = None, target, False
        self._buffer += MAGIC
        self._append(TAG_FILE_HEADER, f'<?xml version="1.0"?><info><version>1.0</version><datetime>{file_datetime()}'
                                      f"</datetime><writer>engage</writer></info>".encode())
        self.flush()

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else getattr(self._file, "name", "<stream>")

    @staticmethod
    def _open(path: Path) -> BinaryIO:
        if path.is_dir():
            raise RecordingError(f"{path}: is a directory, not a file to record into")
        if not path.parent.exists():
            raise RecordingError(f"{path}: folder {path.parent} does not exist")
        try:
            return open(path, "wb", buffering=0)
        except OSError as exc:
            raise RecordingError(f"{path}: cannot write ({exc.strerror or exc})") from exc

    # ------------------------------------------------------------------ streams
    def add_stream(self, info: StreamInfo, channel_format: str | None = None, role: str | None = None) -> int:
        """Declare an in-process stream; numeric streams are stored as double64 unless told otherwise;
        ``role`` marks what it is to a replay (see :func:`stream_xml`)."""
        fmt = channel_format or ("string" if info.is_string else "double64")
        if fmt != "string" and fmt not in FORMATS:
            raise ValueError(f"unknown XDF channel format {fmt!r}")
        return self._add(stream_xml(info, fmt, role), info.name, fmt, info.channel_count)

    def add_stream_xml(self, xml: str) -> int:
        """Declare a stream from an LSL ``info.as_xml()`` header, kept verbatim as LabRecorder does - but for
        control characters, which no XML reader accepts: those are moved to the private-use plane
        (:func:`~engage.core.stream.xml_safe`; engage's readers restore them)."""
        xml = xml_safe(xml)
        try:
            root = ElementTree.fromstring(xml)
        except ElementTree.ParseError as exc:
            raise ValueError(f"stream header is not XML: {exc}") from exc
        fmt = (root.findtext("channel_format") or "").strip()
        if fmt != "string" and fmt not in FORMATS:
            raise ValueError(f"stream header has an unknown channel_format {fmt!r}")
        try:
            count = int((root.findtext("channel_count") or "0").strip())
        except ValueError:
            raise ValueError(f"stream header has a bad channel_count {root.findtext('channel_count')!r}") from None
        if count < 0:
            raise ValueError(f"stream header has a bad channel_count {count}")
        return self._add(xml, (root.findtext("name") or "").strip(), fmt, count)

    def _add(self, xml: str, name: str, fmt: str, count: int) -> int:
        with self._lock:
            sid = self._next_id
            self._next_id += 1
            self._streams[sid] = _Stream(name, fmt, count)
            self._append(TAG_STREAM_HEADER, struct.pack("<I", sid) + xml.encode("utf-8"))
            self.flush()
            return sid

    def stream_ids(self) -> dict[int, str]:
        """XDF stream id → stream name, for every stream declared so far."""
        return {sid: s.name for sid, s in self._streams.items()}

    # ------------------------------------------------------------------ data
    def write_samples(self, stream_id: int, data, timestamps) -> None:
        """One Samples chunk; ``data`` is (n, channels), ``timestamps`` (n,) on the stream's clock."""
        s = self._stream(stream_id)
        ts = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if ts.size == 0:
            return
        if s.channel_format == "string":
            arr = np.asarray(data, dtype=object)
        else:  # integers stay integers (int64 through float64 would lose digits), the rest goes through float64
            arr = np.asarray(data)
            if arr.dtype.kind not in "iuf":
                arr = np.asarray(data, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr.reshape(ts.size, -1)
        if arr.shape != (ts.size, s.channel_count):
            raise ValueError(f"stream {s.name!r}: samples of shape {arr.shape}, expected ({ts.size}, {s.channel_count})")
        body = struct.pack("<I", stream_id) + encode_samples(arr, ts, s.channel_format)
        with self._lock:
            self._append(TAG_SAMPLES, body)
            if s.first is None:
                s.first = float(ts[0])
            s.last = float(ts[-1])
            s.count += ts.size
            self.samples_written += ts.size
            self.maybe_flush()

    def write_chunk(self, stream_id: int, chunk: Chunk) -> None:
        """The samples of an engage :class:`Chunk`."""
        self.write_samples(stream_id, chunk.data, chunk.timestamps)

    def write_clock_offset(self, stream_id: int, collection_time: float, offset: float) -> None:
        """A ClockOffset chunk: at ``collection_time`` (the stream's clock), local = stream + ``offset``."""
        s = self._stream(stream_id)
        with self._lock:
            self._append(TAG_CLOCK_OFFSET, struct.pack("<Idd", stream_id, collection_time, offset))
            s.offsets.append((collection_time, offset))
            self.maybe_flush()

    def write_boundary(self) -> None:
        with self._lock:
            self._append(TAG_BOUNDARY, BOUNDARY_UUID)
            self._last_boundary = self._clock()

    def _stream(self, stream_id: int) -> _Stream:
        try:
            return self._streams[stream_id]
        except KeyError:
            raise ValueError(f"XDF stream id {stream_id} was never added") from None

    def _append(self, tag: int, content: bytes) -> None:
        if self.closed:
            raise RecordingError(f"{self.name}: recording already closed")
        if self.error is not None:
            raise self.error
        self._buffer += chunk_bytes(tag, content)

    # ------------------------------------------------------------------ disk
    def maybe_flush(self) -> None:
        """Flush when ``flush_interval`` has passed since the last flush (and add a boundary when due)."""
        now = self._clock()
        with self._lock:
            if now - self._last_boundary >= self.boundary_interval:
                self.write_boundary()
            if now - self._last_flush >= self.flush_interval:
                self.flush()

    def flush(self) -> None:
        """Hand everything buffered to the operating system (survives the death of this process)."""
        with self._lock:
            self._last_flush = self._clock()
            if not self._buffer or self.error is not None:
                return
            data, self._buffer = bytes(self._buffer), bytearray()
            try:
                view = memoryview(data)
                while view:
                    n = self._file.write(view)
                    if n is None:  # a non-blocking raw file that took nothing
                        continue
                    view = view[n:]
                if hasattr(self._file, "flush"):
                    self._file.flush()
            except OSError as exc:
                self._fail(exc)
            else:
                self._committed += len(data)
                self.samples_committed = self.samples_written

    def _fail(self, exc: OSError) -> None:
        try:  # leave only whole chunks, so every reader reads what was committed
            self._file.truncate(self._committed)
            self._file.seek(self._committed)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
        why = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        self.error = RecordingError(f"{self.name}: cannot write ({why}); the first {self._committed} bytes "
                                    f"({self.samples_committed} samples) stay readable")
        log.error("%s", self.error)
        raise self.error from exc

    def close(self) -> None:
        """Write a footer for every stream, flush, sync and close (closing twice is harmless)."""
        with self._lock:
            if self.closed:
                return
            try:
                if self.error is None:
                    for sid, s in self._streams.items():
                        self._append(TAG_STREAM_FOOTER, struct.pack("<I", sid) + self._footer(s).encode())
                    self.flush()
                    if self._owned:
                        try:
                            os.fsync(self._file.fileno())
                        except (OSError, AttributeError, io.UnsupportedOperation):
                            pass
            finally:
                self.closed = True
                if self._owned:
                    self._file.close()

    @staticmethod
    def _footer(s: _Stream) -> str:
        offsets = "".join(f"<offset><time>{t!r}</time><value>{v!r}</value></offset>" for t, v in s.offsets)
        first = "" if s.first is None else repr(s.first)
        last = "" if s.last is None else repr(s.last)
        return (f'<?xml version="1.0"?><info><first_timestamp>{first}</first_timestamp>'
                f"<last_timestamp>{last}</last_timestamp><sample_count>{s.count}</sample_count>"
                f"<clock_offsets>{offsets}</clock_offsets></info>")

    def __enter__(self) -> "XdfWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
