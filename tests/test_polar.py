"""Polar PMD: ECG frames and control responses; malformed input gives PmdError; device clock → LSL."""

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage.sensors.ble.polar import (ECG_STOP_COMMAND, EcgTimer, PmdError, ecg_start_command,
                                      encode_control_response, encode_ecg_frame, parse_control_response,
                                      parse_pmd_frame)


def test_ecg_frame_vector():
    # header: type 0, timestamp 0x0102030405060708 ns, frame type 0; samples 1, -1, 8388607, -8388608
    data = bytes([0x00]) + struct.pack("<Q", 0x0102030405060708) + b"\x00" + \
        bytes.fromhex("010000" "ffffff" "ffff7f" "000080")
    f = parse_pmd_frame(data)
    assert f.timestamp_ns == 0x0102030405060708
    assert f.samples.tolist() == [1, -1, 8388607, -8388608]
    assert encode_ecg_frame(f.timestamp_ns, f.samples) == data


def test_commands():
    assert ecg_start_command() == bytes([0x02, 0x00, 0x00, 0x01, 0x82, 0x00, 0x01, 0x01, 0x0E, 0x00])
    assert ECG_STOP_COMMAND == b"\x03\x00"
    r = parse_control_response(encode_control_response(0x02, 0x00, 0x05))
    assert not r.ok and r.status_text == "invalid parameter"


@pytest.mark.parametrize("data, fragment", [
    (b"\x00" * 9, "10-byte header"),
    (bytes([0x02]) + bytes(9) + b"\x01\x02\x03", "measurement type 2"),
    (bytes(9) + b"\x80" + b"\x01\x02\x03", "frame type 0x80"),
    (bytes(10) + b"\x01\x02", "2 sample byte"),
    (bytes(10), "0 sample byte"),
])
def test_malformed_frames(data, fragment):
    with pytest.raises(PmdError, match=fragment):
        parse_pmd_frame(data)


@pytest.mark.parametrize("data", [b"", b"\xf0\x02", b"\x01\x02\x00\x00"])
def test_malformed_control_response(data):
    with pytest.raises(PmdError):
        parse_control_response(data)


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_frame_or_typed_error(data):
    for parse in (parse_pmd_frame, parse_control_response):
        try:
            parse(data)
        except PmdError:
            pass


@given(st.integers(0, 2**64 - 1), st.lists(st.integers(-(2**23), 2**23 - 1), min_size=1, max_size=80))
def test_frame_roundtrip(ts, samples):
    f = parse_pmd_frame(encode_ecg_frame(ts, samples))
    assert f.timestamp_ns == ts and f.samples.tolist() == samples


def test_ecg_timer_maps_device_clock_with_drift():
    rng = np.random.default_rng(0)
    rate_true = 130.0 * (1 + 40e-6)  # the strap's real rate; its clock counts ns of its own crystal
    timer = EcgTimer()
    origin = 599_616_000_000_000_000
    errs = []
    for k in range(1, 2000):  # ~19 min of 73-sample frames
        last = k * 73 - 1
        t_true = 200.0 + last / rate_true
        ts = origin + int(round(last / 130.0 * 1e9))
        times = timer.feed(t_true + rng.uniform(0.002, 0.030), parse_pmd_frame(encode_ecg_frame(ts, np.zeros(73, int))))
        if k > 100:
            errs.append(times - (200.0 + np.arange(last - 72, last + 1) / rate_true))
    err = np.abs(np.concatenate(errs))
    assert err.max() < 0.006
