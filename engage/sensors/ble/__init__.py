"""Bluetooth heart-rate straps: the Heart Rate Measurement parser, beat-time reconstruction on
the LSL clock, the bleak client and its supervisor (reconnection with backoff, ``sensor.gap``
events), Polar H10 ECG over PMD, and replay of RR files.

Only :mod:`.hrm`, :mod:`.clock`, :mod:`.polar` and :mod:`.replay` are imported here; the bleak
parts (:mod:`.client`, :mod:`.supervisor`) load bleak when used.
"""

from .clock import BeatTimer, DeviceClockMapper
from .hrm import HeartRateMeasurement, HrmParseError, encode_hrm, parse_hrm

__all__ = ["BeatTimer", "DeviceClockMapper", "HeartRateMeasurement", "HrmParseError", "encode_hrm", "parse_hrm"]
