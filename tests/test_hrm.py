"""Heart Rate Measurement (0x2A37): spec vectors for every flag combination, malformed input,
and a hypothesis test that any bytes give a measurement or a typed error."""

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage.core.errors import EngageError
from engage.sensors.ble.hrm import HeartRateMeasurement, HrmParseError, encode_hrm, parse_hrm


def _vector(hr16: bool, detected: bool, supported: bool, energy: bool, rr: bool):
    """Hand-built bytes for one flag combination, laid out as the Bluetooth spec says, and the
    measurement they must parse to."""
    flags = hr16 * 0x01 | detected * 0x02 | supported * 0x04 | energy * 0x08 | rr * 0x10
    hr = 301 if hr16 else 173
    body = struct.pack("<H", hr) if hr16 else bytes([hr])
    if energy:
        body += struct.pack("<H", 0xBEEF)
    rr_ticks = (1023, 1, 65535) if rr else ()
    body += b"".join(struct.pack("<H", r) for r in rr_ticks)
    contact = detected if supported else None
    return bytes([flags]) + body, HeartRateMeasurement(hr, contact, 0xBEEF if energy else None, rr_ticks, hr16)


@pytest.mark.parametrize("bits", list(itertools.product([False, True], repeat=5)),
                         ids=lambda b: "".join("1" if x else "0" for x in b))
def test_every_flag_combination(bits):
    data, expected = _vector(*bits)
    m = parse_hrm(data)
    assert m == expected
    # "contact detected" without "contact supported" means nothing, per the spec
    assert m.contact_supported == bits[2]
    assert m.rr_s == tuple(t / 1024 for t in expected.rr_ticks)
    if not bits[1] or bits[2]:  # the encoder never writes a meaningless "detected" bit
        assert encode_hrm(m) == data


def test_published_examples():
    # 8-bit 60 bpm, no contact feature
    assert parse_hrm(bytes([0x00, 60])) == HeartRateMeasurement(60)
    # Polar H10 style: contact supported+detected, two RR intervals
    m = parse_hrm(bytes.fromhex("16 4b 2f 03 1c 03".replace(" ", "")))
    assert (m.hr_bpm, m.contact, m.rr_ticks) == (75, True, (0x032F, 0x031C))
    # contact supported but lost
    assert parse_hrm(bytes([0x04, 80])).contact is False


def test_rr_kept_at_full_resolution():
    m = parse_hrm(bytes([0x10, 70]) + struct.pack("<H", 821))
    assert m.rr_ticks == (821,)
    assert m.rr_s[0] == 821 / 1024  # 0.8017578125 s, not rounded to ms
    assert round(m.rr_s[0], 3) != m.rr_s[0]


@pytest.mark.parametrize("data, fragment", [
    (b"", "0 byte"),
    (bytes([0x00]), "1 byte"),
    (bytes([0x01, 60]), "16-bit rate"),
    (bytes([0x08, 60, 1]), "energy expended"),
    (bytes([0x10, 60]), "RR intervals flagged but 0"),
    (bytes([0x10, 60, 1, 2, 3]), "RR intervals flagged but 3"),
    (bytes([0x00, 60, 7]), "trailing"),
    (bytes([0x20, 60]), "reserved"),
    ("\x00<", "must be bytes, got str"),
    (5, "must be bytes, got int"),  # bytes(5) is five zero bytes, which would parse as 0 bpm
    (None, "must be bytes, got NoneType"),
])
def test_malformed_gives_typed_error(data, fragment):
    with pytest.raises(HrmParseError, match=fragment):
        parse_hrm(data)
    assert issubclass(HrmParseError, EngageError)


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=40))
def test_any_bytes_measurement_or_typed_error(data):
    try:
        m = parse_hrm(data)
    except HrmParseError:
        return
    assert 0 <= m.hr_bpm <= 0xFFFF
    assert all(0 <= r <= 0xFFFF for r in m.rr_ticks)
    # whatever parsed re-encodes to something that parses back to the same measurement
    assert parse_hrm(encode_hrm(m)) == m


@given(st.builds(HeartRateMeasurement, st.integers(0, 0xFFFF), st.none() | st.booleans(),
                 st.none() | st.integers(0, 0xFFFF), st.lists(st.integers(0, 0xFFFF), max_size=9).map(tuple),
                 st.booleans()))
def test_roundtrip(m):
    back = parse_hrm(encode_hrm(m))
    assert (back.hr_bpm, back.contact, back.energy_kj, back.rr_ticks) == (m.hr_bpm, m.contact, m.energy_kj, m.rr_ticks)
