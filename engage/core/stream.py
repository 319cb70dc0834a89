"""Stream descriptions and timestamped chunks: the unit that flows between layers.

A :class:`Chunk` is a 2-D array of samples (rows) × channels, a 1-D array of timestamps on
the LSL clock (seconds) and the :class:`StreamInfo` of the stream it belongs to.

Quality travels with the data: every *derived* stream (heart rate, EDA features, face
features, engagement scores…) carries a channel named ``quality`` (0 = unusable, 1 = clean),
and consumers read it rather than guess.

>>> info = StreamInfo("sim-ecg", "ECG", ("ecg",), ("mV",), 250.0, "sim-viewer-1-ecg")
>>> c = Chunk(info, np.zeros((3, 1)), np.array([0.0, 0.004, 0.008]))
>>> len(c), c.channel("ecg").shape
(3, (3,))
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

IRREGULAR_RATE = 0.0

# XML 1.0 cannot hold these characters, not even as character references; a stream name or unit with one
# is written with each moved into the private-use plane (U+E000 + code) and read back intact.
_XML_CONTROL = re.compile("[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\ufffe\\uffff]")
_XML_MOVED = re.compile("[\\ue000-\\ue01f\\ue0fe\\ue0ff]")


_XML_CHAR_REF = re.compile(r"&#(?:([0-9]+)|x([0-9A-Fa-f]+));")


def _is_forbidden(code: int) -> bool:
    return code < 0x20 and code not in (0x09, 0x0A, 0x0D) or code in (0xFFFE, 0xFFFF)


def _moved(code: int) -> str:
    return chr(0xE000 + (code & 0xFF))


def xml_safe(text: str) -> str:
    """``text`` with the control characters XML cannot hold - raw, or written as character references
    (``&#07;``, as liblsl's pugixml writes them) - moved to U+E000 + code (reversible with
    :func:`xml_restore`), so a header naming them stays readable by every XML parser.

    >>> xml_restore(xml_safe("EDA\x07 left")) == "EDA\x07 left"
    True
    >>> xml_restore(xml_safe("<name>bad&#07;name</name>")) == "<name>bad\x07name</name>"
    True
    """
    def ref(m: re.Match) -> str:
        code = int(m.group(1)) if m.group(1) is not None else int(m.group(2), 16)
        return _moved(code) if _is_forbidden(code) else m.group(0)

    if "&#" in text:
        text = _XML_CHAR_REF.sub(ref, text)
    return _XML_CONTROL.sub(lambda m: _moved(ord(m.group())), text)


def xml_restore(text: str) -> str:
    """The inverse of :func:`xml_safe`."""
    return _XML_MOVED.sub(lambda m: chr(ord(m.group()) - 0xE000 + (0xFF00 if ord(m.group()) >= 0xE0FE else 0)),
                          text) if text else text


@dataclass(frozen=True)
class StreamInfo:
    """What a stream is; mirrors an LSL ``StreamInfo``.

    ``type`` is what processors route on (``ECG``, ``EDA``, ``Face``, ``HeartRate``,
    ``Engagement``, ``Markers``…). ``nominal_rate`` is 0 for irregular streams.
    ``channel_format`` is ``float64`` or ``string``.
    """

    name: str
    type: str
    channels: tuple[str, ...]
    units: tuple[str, ...]
    nominal_rate: float
    source_id: str
    channel_format: str = "float64"
    viewer: str = "viewer-1"
    metadata: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if len(self.channels) != len(self.units):
            raise ValueError(f"stream {self.name!r}: {len(self.channels)} channels but {len(self.units)} units")
        if self.nominal_rate < 0:
            raise ValueError(f"stream {self.name!r}: negative nominal rate {self.nominal_rate}")

    def __hash__(self) -> int:
        # computed once: every chunk is routed by its stream (the generated hash rehashed all fields each time)
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.name, self.type, self.channels, self.units, self.nominal_rate, self.source_id,
                      self.channel_format, self.viewer, self.metadata))
            object.__setattr__(self, "_hash", h)
        return h

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_hash", None)  # string hashes differ between processes
        return state

    @property
    def channel_count(self) -> int:
        return len(self.channels)

    @property
    def is_string(self) -> bool:
        return self.channel_format == "string"

    def index(self, channel: str) -> int:
        """Column index of ``channel``; raises ``KeyError`` naming the stream."""
        try:
            return self.channels.index(channel)
        except ValueError:
            raise KeyError(f"stream {self.name!r} has no channel {channel!r} (has {', '.join(self.channels)})") from None


@dataclass(frozen=True)
class Chunk:
    """Samples of one stream: ``data`` is (n, channels), ``timestamps`` is (n,), LSL clock."""

    info: StreamInfo
    data: np.ndarray
    timestamps: np.ndarray

    def __post_init__(self) -> None:
        d, t = self.data.shape, self.timestamps.shape
        if len(d) == 2 and len(t) == 1 and d[0] == t[0] and d[1] == len(self.info.channels):
            return
        if self.data.ndim != 2 or self.timestamps.ndim != 1:
            raise ValueError(f"chunk of {self.info.name!r}: data must be 2-D and timestamps 1-D")
        if self.data.shape[0] != self.timestamps.shape[0]:
            raise ValueError(
                f"chunk of {self.info.name!r}: {self.data.shape[0]} samples but {self.timestamps.shape[0]} timestamps"
            )
        if self.data.shape[1] != self.info.channel_count:
            raise ValueError(
                f"chunk of {self.info.name!r}: {self.data.shape[1]} columns but {self.info.channel_count} channels"
            )

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    @classmethod
    def from_rows(cls, info: StreamInfo, rows, timestamps) -> "Chunk":
        """Build a chunk from a list of rows (or a 2-D array) and their timestamps."""
        dtype = object if info.is_string else np.float64
        data = np.asarray(rows, dtype=dtype).reshape(-1, info.channel_count)
        return cls(info, data, np.asarray(timestamps, dtype=np.float64).reshape(-1))

    def channel(self, name: str) -> np.ndarray:
        """One channel's samples as a 1-D array."""
        return self.data[:, self.info.index(name)]

    def slice(self, start: int, stop: int) -> "Chunk":
        return Chunk(self.info, self.data[start:stop], self.timestamps[start:stop])

    @property
    def first_time(self) -> float:
        return float(self.timestamps[0])

    @property
    def last_time(self) -> float:
        return float(self.timestamps[-1])
