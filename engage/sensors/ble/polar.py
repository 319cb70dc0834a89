"""Polar Measurement Data (PMD): ECG from a Polar H10 at 130 Hz, in µV, on the LSL clock.

The PMD service has a control point (write + indicate) and a data characteristic (notify).
Streaming starts with ``0x02 <type> <settings…>`` and stops with ``0x03 <type>``; the strap
answers each request with an indication ``0xF0 <op> <type> <status> …``. An ECG data frame is
``<type=0x00> <timestamp: uint64 LE, ns, device clock> <frame type=0x00> <n × int24 LE µV>``;
the timestamp is that of the frame's last sample.

>>> frame = encode_ecg_frame(1_000_000_000, [10, -20, 30])
>>> f = parse_pmd_frame(frame)
>>> f.timestamp_ns, f.samples.tolist()
(1000000000, [10, -20, 30])
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from engage.core.errors import EngageError

from .clock import DeviceClockMapper

PMD_SERVICE = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
PMD_CONTROL = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"
PMD_DATA = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"

MEAS_ECG = 0x00
OP_GET_SETTINGS = 0x01
OP_START = 0x02
OP_STOP = 0x03
RESPONSE = 0xF0
SETTING_SAMPLE_RATE = 0x00
SETTING_RESOLUTION = 0x01
ECG_RATE_HZ = 130.0

STATUS = {0: "success", 1: "invalid op code", 2: "invalid measurement type", 3: "not supported",
          4: "invalid length", 5: "invalid parameter", 6: "already in state", 7: "invalid resolution",
          8: "invalid sample rate", 9: "invalid range", 10: "invalid MTU", 11: "invalid number of channels",
          12: "invalid state", 13: "device in charger"}


class PmdError(EngageError):
    """A PMD frame or control response that cannot be read, or a request the strap refused."""


def ecg_start_command(rate_hz: int = 130, resolution_bits: int = 14) -> bytes:
    """The control-point request that starts ECG streaming.

    >>> ecg_start_command().hex()
    '02000001820001010e00'
    """
    return bytes([OP_START, MEAS_ECG, SETTING_SAMPLE_RATE, 1]) + struct.pack("<H", rate_hz) + \
        bytes([SETTING_RESOLUTION, 1]) + struct.pack("<H", resolution_bits)


ECG_STOP_COMMAND = bytes([OP_STOP, MEAS_ECG])


@dataclass(frozen=True)
class PmdControlResponse:
    op: int
    measurement: int
    status: int
    params: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def status_text(self) -> str:
        return STATUS.get(self.status, f"status {self.status}")


def parse_control_response(data: bytes | bytearray) -> PmdControlResponse:
    """Parse an indication of the PMD control point.

    >>> parse_control_response(bytes([0xF0, 0x02, 0x00, 0x00, 0x00])).ok
    True
    """
    b = bytes(data)
    if len(b) < 4:
        raise PmdError(f"PMD control response of {len(b)} byte(s): needs at least 4")
    if b[0] != RESPONSE:
        raise PmdError(f"PMD control response starts with 0x{b[0]:02x}, expected 0xf0")
    return PmdControlResponse(b[1], b[2], b[3], b[4:])


def encode_control_response(op: int, measurement: int, status: int = 0, params: bytes = b"\x00") -> bytes:
    return bytes([RESPONSE, op, measurement, status]) + params


@dataclass(frozen=True)
class PmdFrame:
    measurement: int
    timestamp_ns: int
    frame_type: int
    samples: np.ndarray


def parse_pmd_frame(data: bytes | bytearray) -> PmdFrame:
    """Parse a PMD data notification carrying uncompressed ECG; raises :class:`PmdError`."""
    b = bytes(data)
    if len(b) < 10:
        raise PmdError(f"PMD data frame of {len(b)} byte(s): needs a 10-byte header")
    meas, ts, ftype = b[0], struct.unpack_from("<Q", b, 1)[0], b[9]
    if meas != MEAS_ECG:
        raise PmdError(f"PMD data frame of measurement type {meas}: only ECG (0) is supported")
    if ftype != 0:
        raise PmdError(f"PMD ECG frame type 0x{ftype:02x}: only type 0 (int24 samples) is supported")
    body = b[10:]
    if len(body) == 0 or len(body) % 3:
        raise PmdError(f"PMD ECG frame carries {len(body)} sample byte(s): not a positive multiple of 3")
    raw = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
    vals = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
    vals = np.where(vals >= 1 << 23, vals - (1 << 24), vals)
    return PmdFrame(meas, ts, ftype, vals.astype(np.int64))


def encode_ecg_frame(timestamp_ns: int, samples_uv) -> bytes:
    """An ECG data frame as a Polar H10 sends it (used by the emulated strap and in tests)."""
    s = np.asarray(samples_uv, dtype=np.int64)
    if np.any(s < -(1 << 23)) or np.any(s >= 1 << 23):
        raise ValueError("ECG samples must fit in 24 bits")
    u = (s & 0xFFFFFF).astype(np.uint32)
    body = np.stack([u & 0xFF, (u >> 8) & 0xFF, (u >> 16) & 0xFF], axis=1).astype(np.uint8).tobytes()
    return bytes([MEAS_ECG]) + struct.pack("<Q", int(timestamp_ns)) + bytes([0]) + body


class EcgTimer:
    """Sample times on the LSL clock for PMD ECG frames.

    The frame timestamp (device clock, ns) dates the last sample; the sample period comes from
    consecutive frame timestamps (the strap's real rate, not the nominal 130 Hz); the device
    clock is mapped to LSL with :class:`DeviceClockMapper` (offset and drift).
    """

    def __init__(self, rate_hz: float = ECG_RATE_HZ, mapper: DeviceClockMapper | None = None) -> None:
        self.rate_hz = float(rate_hz)
        self.mapper = mapper or DeviceClockMapper()
        self._prev_ns: int | None = None
        self._origin_ns: int | None = None

    def reset(self) -> None:
        self._prev_ns = None
        self.mapper.reset(keep_drift=True)

    def feed(self, arrival_s: float, frame: PmdFrame) -> np.ndarray:
        n = len(frame.samples)
        if self._origin_ns is None:
            self._origin_ns = frame.timestamp_ns
        period = 1.0 / self.rate_hz
        if self._prev_ns is not None and frame.timestamp_ns > self._prev_ns:
            est = (frame.timestamp_ns - self._prev_ns) * 1e-9 / n
            if abs(est * self.rate_hz - 1.0) < 0.05:
                period = est
        self._prev_ns = frame.timestamp_ns
        last = (frame.timestamp_ns - self._origin_ns) * 1e-9
        self.mapper.add(last, arrival_s)
        return np.atleast_1d(self.mapper.map(last - period * np.arange(n - 1, -1, -1)))
