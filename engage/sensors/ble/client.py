"""The bleak side: scanning for heart-rate straps and one supervised link per strap.

:class:`StrapLink` owns one strap for a whole session: it connects (by address or name),
reads Body Sensor Location and Battery Level, subscribes to Heart Rate Measurement (and to
Polar PMD ECG when the strap has it), turns notifications into ``RR``/``StrapHR``/``ECG``
chunks on the LSL clock, and on a disconnect reconnects with exponential backoff,
re-subscribes and reports the outage as a ``sensor.gap`` event with its duration. Every
connect, failure, disconnect, notification and malformed packet is counted.

>>> import asyncio
>>> found = asyncio.run(scan(timeout=0.5))   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from engage.core.stream import IRREGULAR_RATE, Chunk, StreamInfo

from . import hrm, polar
from .clock import BeatTimer
from .hrm import HrmParseError, parse_hrm
from .polar import EcgTimer, PmdError, parse_control_response, parse_pmd_frame

log = logging.getLogger(__name__)

_ADDRESS = re.compile(r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$")


@dataclass(frozen=True)
class FoundStrap:
    """A strap seen while scanning."""

    address: str
    name: str
    rssi: int
    services: tuple[str, ...] = ()

    @property
    def has_ecg(self) -> bool:
        return polar.PMD_SERVICE in self.services


async def scan(timeout: float = 5.0) -> list[FoundStrap]:
    """Scan for devices advertising the Heart Rate service (0x180D), strongest first."""
    from bleak import BleakScanner

    seen = await BleakScanner.discover(timeout=timeout, service_uuids=[hrm.HEART_RATE_SERVICE], return_adv=True)
    out = [FoundStrap(d.address, d.name or adv.local_name or "", adv.rssi, tuple(adv.service_uuids))
           for d, adv in seen.values()]
    return sorted(out, key=lambda s: -s.rssi)


class Backoff:
    """Exponential backoff with jitter: ``initial``, ×``factor`` per failure, capped at ``maximum``.

    >>> b = Backoff(0.1, 2.0, 1.0, jitter=0.0)
    >>> [b.next() for _ in range(5)]
    [0.1, 0.2, 0.4, 0.8, 1.0]
    """

    def __init__(self, initial: float = 0.05, factor: float = 2.0, maximum: float = 2.0, jitter: float = 0.1,
                 seed: int | None = None) -> None:
        self.initial, self.factor, self.maximum, self.jitter = initial, factor, maximum, jitter
        self._n = 0
        self._rng = random.Random(seed)

    def reset(self) -> None:
        self._n = 0

    def next(self) -> float:
        d = min(self.maximum, self.initial * self.factor ** self._n)
        self._n += 1
        if self.jitter:
            d *= 1.0 + self._rng.uniform(-self.jitter, self.jitter)
        return d


def strap_streams(address: str, label: str, viewer: str = "viewer-1", ecg: bool = False) -> dict[str, StreamInfo]:
    """The stream descriptions a strap publishes (contracts ``RR``, ``StrapHR``, ``ECG``)."""
    sid = address.replace(":", "").lower()
    meta = (("address", address), ("device", label))
    out = {
        "RR": StreamInfo(f"{label}-rr", "RR", ("rr_s", "contact"), ("s", "bool"), IRREGULAR_RATE,
                         f"ble-{sid}-rr", viewer=viewer, metadata=meta),
        "StrapHR": StreamInfo(f"{label}-hr", "StrapHR", ("hr_bpm", "contact", "energy_kj"), ("bpm", "bool", "kJ"),
                              IRREGULAR_RATE, f"ble-{sid}-hr", viewer=viewer, metadata=meta),
    }
    if ecg:
        out["ECG"] = StreamInfo(f"{label}-ecg", "ECG", ("ecg",), ("uV",), polar.ECG_RATE_HZ, f"ble-{sid}-ecg",
                                viewer=viewer, metadata=meta)
    return out


@dataclass
class LinkState:
    """What a link knows about its strap (read at each connection)."""

    connected: bool = False
    name: str = ""
    location: str | None = None
    battery: int | None = None
    ecg: bool = False
    counters: Counter = field(default_factory=Counter)


class StrapLink:
    """One strap, supervised (see the module docstring).

    ``target`` is a MAC address or a device name. ``on_chunk(chunk)`` and
    ``on_gap(timestamp, evidence)`` are called on the event loop's thread. ``clock`` gives LSL
    time (``pylsl.local_clock`` by default); ``ecg`` asks for Polar PMD ECG when the strap has it.
    """

    def __init__(self, target: str, on_chunk: Callable[[Chunk], None],
                 on_gap: Callable[[float, dict], None] | None = None, *, label: str | None = None,
                 viewer: str = "viewer-1", clock: Callable[[], float] | None = None, ecg: bool = True,
                 backoff: Backoff | None = None, connect_timeout: float = 10.0, scan_timeout: float = 10.0,
                 rescan_after: int = 5) -> None:
        if clock is None:
            import pylsl
            clock = pylsl.local_clock
        self.target = target
        self.by_address = bool(_ADDRESS.match(target))
        self.label = label or ("strap-" + target.replace(":", "")[-6:].lower() if self.by_address else target)
        self.viewer = viewer
        self.clock = clock
        self.want_ecg = ecg
        self.on_chunk = on_chunk
        self.on_gap = on_gap or (lambda t, ev: None)
        self.backoff = backoff or Backoff()
        self.connect_timeout = connect_timeout
        self.scan_timeout = scan_timeout
        self.rescan_after = rescan_after
        self.state = LinkState()
        self.beats = BeatTimer()
        self.ecg_timer = EcgTimer()
        self.address = target if self.by_address else ""
        self.streams = strap_streams(self.address or target, self.label, viewer, ecg=ecg)
        self._gap_start: float | None = None
        self._gap_reason = ""
        self._last_data: float | None = None
        self.gaps: list[dict] = []
        #: links of one supervisor share this lock: BlueZ allows one discovery per D-Bus client
        self.scan_lock: asyncio.Lock | None = None

    @property
    def counters(self) -> Counter:
        return self.state.counters

    # -- notifications -----------------------------------------------------------------------
    def _contact(self, c: bool | None) -> float:
        return math.nan if c is None else float(c)

    def handle_hrm(self, data: bytes | bytearray, arrival: float | None = None) -> None:
        """One Heart Rate Measurement notification (also usable without a radio, e.g. replay)."""
        arrival = self.clock() if arrival is None else arrival
        self.counters["notifications"] += 1
        try:
            m = parse_hrm(data)
        except HrmParseError as exc:
            self.counters["malformed"] += 1
            if self.counters["malformed"] <= 3:
                log.warning("%s: %s (%s)", self.label, exc, bytes(data).hex())
            return
        self._last_data = arrival
        contact = self._contact(m.contact)
        energy = math.nan if m.energy_kj is None else float(m.energy_kj)
        self.on_chunk(Chunk.from_rows(self.streams["StrapHR"], [[m.hr_bpm, contact, energy]], [arrival]))
        if m.rr_ticks:
            times = self.beats.feed(arrival, m.rr_ticks)
            rows = np.column_stack([np.asarray(m.rr_s), np.full(len(m.rr_ticks), contact)])
            self.counters["beats"] += len(m.rr_ticks)
            self.on_chunk(Chunk(self.streams["RR"], rows, times))

    def handle_pmd(self, data: bytes | bytearray, arrival: float | None = None) -> None:
        arrival = self.clock() if arrival is None else arrival
        self.counters["ecg_frames"] += 1
        try:
            frame = parse_pmd_frame(data)
        except PmdError as exc:
            self.counters["malformed"] += 1
            if self.counters["malformed"] <= 3:
                log.warning("%s: %s", self.label, exc)
            return
        self._last_data = arrival
        times = self.ecg_timer.feed(arrival, frame)
        self.counters["ecg_samples"] += len(times)
        self.on_chunk(Chunk(self.streams["ECG"], frame.samples.astype(np.float64).reshape(-1, 1), times))

    # -- the supervised connection ---------------------------------------------------------------
    async def _find(self):
        from bleak import BleakScanner

        if self.scan_lock is None:
            self.scan_lock = asyncio.Lock()
        async with self.scan_lock:
            if self.by_address:
                return await BleakScanner.find_device_by_address(self.target, timeout=self.scan_timeout)
            return await BleakScanner.find_device_by_name(self.target, timeout=self.scan_timeout)

    def _open_gap(self, now: float, reason: str) -> None:
        if self._gap_start is None:
            self._gap_start = self._last_data if self._last_data is not None else now
            self._gap_reason = reason

    def _close_gap(self, now: float, until_shutdown: bool = False) -> None:
        if self._gap_start is None:
            return
        ev = {"stream": self.streams["RR"].name, "duration_s": max(0.0, now - self._gap_start),
              "reason": self._gap_reason + (" (until shutdown)" if until_shutdown else ""),
              "address": self.address, "reconnected": not until_shutdown}
        self.gaps.append({"timestamp": self._gap_start, **ev})
        self.counters["gaps"] += 1
        self.on_gap(self._gap_start, ev)
        self._gap_start = None

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        try:
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the strap connected until ``stop`` is set; never raises for radio trouble."""
        from bleak import BleakClient
        from bleak.exc import BleakError

        device = None
        failures = 0
        while not stop.is_set():
            client = None
            try:
                if device is None:
                    self.counters["scans"] += 1
                    device = await self._find()
                    if device is None:
                        raise BleakError(f"{self.target} not found within {self.scan_timeout:g} s")
                    self.address = device.address
                    self.state.name = device.name or ""
                loop = asyncio.get_running_loop()
                lost = asyncio.Event()
                client = BleakClient(device, disconnected_callback=lambda _c: loop.call_soon_threadsafe(lost.set),
                                     timeout=self.connect_timeout)
                await client.connect()
                await self._subscribe(client)
                now = self.clock()
                self.counters["connects"] += 1
                self.state.connected = True
                failures = 0
                self.backoff.reset()
                self._close_gap(now)
                waiter = asyncio.ensure_future(stop.wait())
                lost_waiter = asyncio.ensure_future(lost.wait())
                await asyncio.wait({waiter, lost_waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                lost_waiter.cancel()
                self.state.connected = False
                if stop.is_set() and not lost.is_set():
                    await self._shutdown(client)
                    return
                self.counters["disconnects"] += 1
                self._open_gap(self.clock(), "disconnected")
                log.info("%s: disconnected; reconnecting", self.label)
            except asyncio.CancelledError:
                raise
            except (BleakError, asyncio.TimeoutError, OSError, EOFError, AssertionError) as exc:
                failures += 1
                self.counters["connect_failures"] += 1
                self.state.connected = False
                self._open_gap(self.clock(), f"connect failed: {type(exc).__name__}")
                if self.counters["connect_failures"] <= 3 or self.counters["connect_failures"] % 50 == 0:
                    log.warning("%s: %s: %s", self.label, type(exc).__name__, exc)
                if client is not None:
                    try:
                        await client.disconnect()
                    except Exception:  # noqa: BLE001 - best effort on a broken link
                        pass
                if failures >= self.rescan_after:
                    device = None
                    failures = 0
            except Exception as exc:  # noqa: BLE001 - whatever the radio stack throws, the session goes on
                failures += 1
                self.counters["errors"] += 1
                self.state.connected = False
                self._open_gap(self.clock(), f"error: {type(exc).__name__}")
                log.exception("%s: unexpected error", self.label)
                if client is not None:
                    try:
                        await client.disconnect()
                    except Exception:  # noqa: BLE001
                        pass
            if not stop.is_set():
                await self._sleep(stop, self.backoff.next())
        self._close_gap(self.clock(), until_shutdown=True)

    async def _subscribe(self, client) -> None:
        self.beats.new_segment()
        self.ecg_timer.reset()
        try:
            loc = await client.read_gatt_char(hrm.BODY_SENSOR_LOCATION)
            self.state.location = hrm.BODY_SENSOR_LOCATIONS.get(loc[0], f"code {loc[0]}") if loc else None
        except Exception:  # noqa: BLE001 - optional characteristic
            self.counters["no_location"] += 1
        try:
            bat = await client.read_gatt_char(hrm.BATTERY_LEVEL)
            self.state.battery = int(bat[0]) if bat else None
        except Exception:  # noqa: BLE001 - optional characteristic
            self.counters["no_battery"] += 1
        await client.start_notify(hrm.HEART_RATE_MEASUREMENT, lambda _c, data: self.handle_hrm(data))
        has_pmd = client.services.get_characteristic(polar.PMD_CONTROL) is not None
        self.state.ecg = bool(self.want_ecg and has_pmd)
        if self.state.ecg:
            answered: asyncio.Future = asyncio.get_running_loop().create_future()

            def on_cp(_c, data: bytearray) -> None:
                try:
                    r = parse_control_response(data)
                except PmdError:
                    self.counters["malformed"] += 1
                    return
                if r.op == polar.OP_START and not answered.done():
                    answered.set_result(r)

            await client.start_notify(polar.PMD_CONTROL, on_cp)
            await client.start_notify(polar.PMD_DATA, lambda _c, data: self.handle_pmd(data))
            await client.write_gatt_char(polar.PMD_CONTROL, polar.ecg_start_command(), response=True)
            r = await asyncio.wait_for(answered, timeout=5.0)
            if not r.ok and r.status != 6:
                self.counters["ecg_refused"] += 1
                log.warning("%s: ECG start refused: %s", self.label, r.status_text)
                self.state.ecg = False

    async def _shutdown(self, client) -> None:
        try:
            if self.state.ecg:
                await client.write_gatt_char(polar.PMD_CONTROL, polar.ECG_STOP_COMMAND, response=True)
            await client.stop_notify(hrm.HEART_RATE_MEASUREMENT)
        except Exception:  # noqa: BLE001 - shutting down anyway
            pass
        try:
            await client.disconnect()
        except Exception:  # noqa: BLE001
            pass
