"""Bluetooth Heart Rate Service: the Heart Rate Measurement (0x2A37) parser and its encoder.

Every flag combination of the Bluetooth specification is handled: an 8- or 16-bit rate,
sensor contact supported/detected, the energy expended field and any number of RR intervals
in 1/1024 s. RR intervals are kept as integer ticks (full resolution) beside seconds.

>>> m = parse_hrm(bytes([0x16, 72, 0x00, 0x04]))   # 8-bit rate, contact detected, one RR
>>> m.hr_bpm, m.contact, m.rr_ticks, m.rr_s
(72, True, (1024,), (1.0,))
>>> parse_hrm(encode_hrm(m)) == m
True
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from engage.core.errors import EngageError

HEART_RATE_SERVICE = "0000180d-0000-1000-8000-00805f9b34fb"
HEART_RATE_MEASUREMENT = "00002a37-0000-1000-8000-00805f9b34fb"
BODY_SENSOR_LOCATION = "00002a38-0000-1000-8000-00805f9b34fb"
BATTERY_SERVICE = "0000180f-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL = "00002a19-0000-1000-8000-00805f9b34fb"

#: Body Sensor Location values (0x2A38).
BODY_SENSOR_LOCATIONS = {0: "other", 1: "chest", 2: "wrist", 3: "finger", 4: "hand", 5: "ear lobe", 6: "foot"}

RR_TICKS_PER_S = 1024

_FLAG_HR16 = 0x01
_FLAG_CONTACT_DETECTED = 0x02
_FLAG_CONTACT_SUPPORTED = 0x04
_FLAG_ENERGY = 0x08
_FLAG_RR = 0x10


class HrmParseError(EngageError):
    """A Heart Rate Measurement that does not follow the specification (the message says how)."""


@dataclass(frozen=True)
class HeartRateMeasurement:
    """One notification of 0x2A37.

    ``contact`` is ``None`` when the strap does not report contact, else whether the skin
    contact is detected. ``energy_kj`` is ``None`` when absent. ``rr_ticks`` are the RR
    intervals in 1/1024 s, oldest first.
    """

    hr_bpm: int
    contact: bool | None = None
    energy_kj: int | None = None
    rr_ticks: tuple[int, ...] = ()
    hr16: bool = False

    @property
    def rr_s(self) -> tuple[float, ...]:
        return tuple(t / RR_TICKS_PER_S for t in self.rr_ticks)

    @property
    def contact_supported(self) -> bool:
        return self.contact is not None


def parse_hrm(data: bytes | bytearray | memoryview) -> HeartRateMeasurement:
    """Parse one Heart Rate Measurement value; raises :class:`HrmParseError` on malformed bytes.

    >>> parse_hrm(bytes([0x19, 0x3c, 0x00, 0x10, 0x00, 0x00, 0x04, 0x00, 0x02])).rr_ticks
    (1024, 512)
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):  # bytes(5) would be five zeros, bytes("x") a TypeError
        raise HrmParseError(f"heart rate measurement must be bytes, got {type(data).__name__}")
    b = bytes(data)
    if len(b) < 2:
        raise HrmParseError(f"heart rate measurement of {len(b)} byte(s): needs at least 2 (flags and rate)")
    flags = b[0]
    if flags & 0xE0:
        raise HrmParseError(f"heart rate measurement flags 0x{flags:02x} set reserved bits 5-7")
    pos = 1
    hr16 = bool(flags & _FLAG_HR16)
    if hr16:
        if len(b) < 3:
            raise HrmParseError("heart rate measurement: 16-bit rate flagged but only 1 byte follows the flags")
        hr = struct.unpack_from("<H", b, 1)[0]
        pos = 3
    else:
        hr = b[1]
        pos = 2
    contact: bool | None = None
    if flags & _FLAG_CONTACT_SUPPORTED:
        contact = bool(flags & _FLAG_CONTACT_DETECTED)
    energy: int | None = None
    if flags & _FLAG_ENERGY:
        if len(b) < pos + 2:
            raise HrmParseError(f"heart rate measurement: energy expended flagged but the value is cut at byte {pos}")
        energy = struct.unpack_from("<H", b, pos)[0]
        pos += 2
    rr: tuple[int, ...] = ()
    if flags & _FLAG_RR:
        rest = len(b) - pos
        if rest == 0 or rest % 2:
            raise HrmParseError(f"heart rate measurement: RR intervals flagged but {rest} byte(s) follow "
                                f"(need a positive even count)")
        rr = struct.unpack_from(f"<{rest // 2}H", b, pos)
        pos = len(b)
    elif pos != len(b):
        raise HrmParseError(f"heart rate measurement: {len(b) - pos} unexpected trailing byte(s) after byte {pos}")
    return HeartRateMeasurement(int(hr), contact, energy, tuple(int(r) for r in rr), hr16)


def encode_hrm(m: HeartRateMeasurement) -> bytes:
    """The bytes a strap would send for ``m`` (used by the emulated strap and in tests)."""
    flags = 0
    hr16 = m.hr16 or m.hr_bpm > 255
    out = bytearray()
    if hr16:
        flags |= _FLAG_HR16
        out += struct.pack("<H", m.hr_bpm)
    else:
        out.append(m.hr_bpm)
    if m.contact is not None:
        flags |= _FLAG_CONTACT_SUPPORTED | (_FLAG_CONTACT_DETECTED if m.contact else 0)
    if m.energy_kj is not None:
        flags |= _FLAG_ENERGY
        out += struct.pack("<H", m.energy_kj)
    if m.rr_ticks:
        flags |= _FLAG_RR
        out += struct.pack(f"<{len(m.rr_ticks)}H", *m.rr_ticks)
    return bytes([flags]) + bytes(out)
