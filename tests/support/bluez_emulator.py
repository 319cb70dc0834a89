"""An emulated BlueZ (``org.bluez``) on a private D-Bus, shaped so bleak's real BlueZ backend
works against it: ObjectManager, Adapter1 (discovery with RSSI updates), Device1 (Connect,
Disconnect, Connected/ServicesResolved), GattService1 and GattCharacteristic1 (ReadValue,
WriteValue, StartNotify/StopNotify and ``Value`` changes as PropertiesChanged signals).

The emulated straps serve the Heart Rate service (0x180D: 0x2A37 notify, 0x2A38 read), the
Battery service (0x180F: 0x2A19 read) and, for a Polar H10, the PMD service (ECG at 130 Hz).
Everything runs on the emulator's own thread and event loop; the test drives it through
thread-safe methods. Nothing here is a mock of bleak: bleak talks D-Bus to this service.
"""

import asyncio
import threading
from typing import Callable, Optional

import numpy as np
from dbus_fast import BusType, DBusError, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property, method

from engage.sensors.ble import hrm, polar

R = PropertyAccess.READ


class Adapter1(ServiceInterface):
    def __init__(self, emu: "EmulatedBlueZ") -> None:
        super().__init__("org.bluez.Adapter1")
        self.emu = emu
        self.discovering = False
        self.filters: dict = {}

    @method()
    def StartDiscovery(self):
        if self.discovering:  # BlueZ: one discovery session per client
            raise DBusError("org.bluez.Error.InProgress", "Operation already in progress")
        self.discovering = True
        self.emit_properties_changed({"Discovering": True})
        self.emu._on_discovery(True)

    @method()
    def StopDiscovery(self):
        if not self.discovering:
            raise DBusError("org.bluez.Error.NotReady", "discovery not started")
        self.discovering = False
        self.emit_properties_changed({"Discovering": False})
        self.emu._on_discovery(False)

    @method()
    def SetDiscoveryFilter(self, filters: "a{sv}"):
        self.filters = filters

    @method()
    def RemoveDevice(self, device: "o"):
        pass

    @dbus_property(access=R)
    def Address(self) -> "s":
        return "00:1A:7D:DA:71:13"

    @dbus_property(access=R)
    def Name(self) -> "s":
        return "engage-emulated"

    @dbus_property(access=R)
    def Alias(self) -> "s":
        return "engage-emulated"

    @dbus_property(access=R)
    def Powered(self) -> "b":
        return True

    @dbus_property(access=R)
    def Discovering(self) -> "b":
        return self.discovering

    @dbus_property(access=R)
    def Roles(self) -> "as":
        return ["central", "peripheral"]

    @dbus_property(access=R)
    def UUIDs(self) -> "as":
        return []


class Device1(ServiceInterface):
    def __init__(self, strap: "EmulatedStrap") -> None:
        super().__init__("org.bluez.Device1")
        self.strap = strap
        self.connected = False
        self.resolved = False
        self.rssi = -60

    @method()
    def Connect(self):
        self.strap._connect()

    @method()
    def Disconnect(self):
        self.strap._disconnect(remote=False)

    @dbus_property(access=R)
    def Address(self) -> "s":
        return self.strap.address

    @dbus_property(access=R)
    def AddressType(self) -> "s":
        return "public"

    @dbus_property(access=R)
    def Name(self) -> "s":
        return self.strap.name

    @dbus_property(access=R)
    def Alias(self) -> "s":
        return self.strap.name

    @dbus_property(access=R)
    def Adapter(self) -> "o":
        return self.strap.emu.adapter_path

    @dbus_property(access=R)
    def Paired(self) -> "b":
        return False

    @dbus_property(access=R)
    def Bonded(self) -> "b":
        return False

    @dbus_property(access=R)
    def Trusted(self) -> "b":
        return False

    @dbus_property(access=R)
    def Blocked(self) -> "b":
        return False

    @dbus_property(access=R)
    def LegacyPairing(self) -> "b":
        return False

    @dbus_property(access=R)
    def Connected(self) -> "b":
        return self.connected

    @dbus_property(access=R)
    def ServicesResolved(self) -> "b":
        return self.resolved

    @dbus_property(access=R)
    def RSSI(self) -> "n":
        return self.rssi

    @dbus_property(access=R)
    def TxPower(self) -> "n":
        return 4

    @dbus_property(access=R)
    def UUIDs(self) -> "as":
        return self.strap.advertised_uuids

    @dbus_property(access=R)
    def ManufacturerData(self) -> "a{qv}":
        return {0x006B: Variant("ay", b"\x33\x1e\x00")}  # Polar Electro's company id

    @dbus_property(access=R)
    def ServiceData(self) -> "a{sv}":
        return {}


class GattService1(ServiceInterface):
    def __init__(self, uuid: str, device_path: str) -> None:
        super().__init__("org.bluez.GattService1")
        self.uuid, self.device_path = uuid, device_path

    @dbus_property(access=R)
    def UUID(self) -> "s":
        return self.uuid

    @dbus_property(access=R)
    def Primary(self) -> "b":
        return True

    @dbus_property(access=R)
    def Device(self) -> "o":
        return self.device_path


class GattCharacteristic1(ServiceInterface):
    def __init__(self, uuid: str, service_path: str, flags: list, value: bytes = b"",
                 on_write: Optional[Callable[[bytes], None]] = None) -> None:
        super().__init__("org.bluez.GattCharacteristic1")
        self.uuid, self.service_path, self.flags = uuid, service_path, flags
        self.value = value
        self.notifying = False
        self.on_write = on_write
        self.start_notify_calls = 0

    @method()
    def ReadValue(self, options: "a{sv}") -> "ay":
        if "read" not in self.flags:
            raise DBusError("org.bluez.Error.NotPermitted", "Read not permitted")
        return self.value

    @method()
    def WriteValue(self, value: "ay", options: "a{sv}"):
        if "write" not in self.flags and "write-without-response" not in self.flags:
            raise DBusError("org.bluez.Error.NotPermitted", "Write not permitted")
        if self.on_write is not None:
            self.on_write(bytes(value))

    @method()
    def StartNotify(self):
        self.start_notify_calls += 1
        if not self.notifying:
            self.notifying = True
            self.emit_properties_changed({"Notifying": True})

    @method()
    def StopNotify(self):
        if self.notifying:
            self.notifying = False
            self.emit_properties_changed({"Notifying": False})

    @dbus_property(access=R)
    def UUID(self) -> "s":
        return self.uuid

    @dbus_property(access=R)
    def Service(self) -> "o":
        return self.service_path

    @dbus_property(access=R)
    def Flags(self) -> "as":
        return self.flags

    @dbus_property(access=R)
    def Notifying(self) -> "b":
        return self.notifying

    @dbus_property(access=R)
    def Value(self) -> "ay":
        return self.value

    @dbus_property(access=R)
    def MTU(self) -> "q":
        return 232

    def notify(self, value: bytes) -> bool:
        if not self.notifying:
            return False
        self.value = bytes(value)
        self.emit_properties_changed({"Value": self.value})
        return True


class EmulatedStrap:
    """One strap: advertises while present, serves GATT while connected.

    Thread-safe driving methods: :meth:`send_hrm`, :meth:`force_disconnect`,
    :meth:`set_present`, :meth:`play_beats`.
    """

    def __init__(self, emu: "EmulatedBlueZ", address: str, name: str, polar_ecg: bool = False,
                 location: int = 1, battery: int = 87) -> None:
        self.emu, self.address, self.name = emu, address, name
        self.path = f"{emu.adapter_path}/dev_{address.replace(':', '_')}"
        self.polar_ecg = polar_ecg
        self.location, self.battery = location, battery
        self.advertised_uuids = [hrm.HEART_RATE_SERVICE] + ([polar.PMD_SERVICE] if polar_ecg else [])
        self.device = Device1(self)
        self.present = True
        self.connects = 0
        self.refused_connects = 0
        self.disconnects = 0
        self.sent = 0
        self._gatt: list[tuple[str, ServiceInterface]] = []
        self.hrm_char: Optional[GattCharacteristic1] = None
        self.pmd_cp: Optional[GattCharacteristic1] = None
        self.pmd_data: Optional[GattCharacteristic1] = None
        self.ecg_streaming = False
        self.pmd_requests: list[bytes] = []
        self.connected_event = threading.Event()
        self.connected_at: list[float] = []
        self.reappeared_at: list[float] = []

    # -- called on the emulator loop (D-Bus methods) --------------------------------------------
    def _connect(self) -> None:
        if not self.present:
            self.refused_connects += 1
            raise DBusError("org.bluez.Error.Failed", "Page Timeout")
        if self.device.connected:
            return
        self.connects += 1
        self.device.connected = True
        self.device.emit_properties_changed({"Connected": True})
        self._export_gatt()
        self.device.resolved = True
        self.device.emit_properties_changed({"ServicesResolved": True})
        self.connected_at.append(self.emu.clock())
        self.connected_event.set()

    def _disconnect(self, remote: bool) -> None:
        if not self.device.connected:
            return
        self.disconnects += 1
        self.ecg_streaming = False
        self.connected_event.clear()
        self.device.resolved = False
        self.device.emit_properties_changed({"ServicesResolved": False})
        for path, iface in reversed(self._gatt):
            self.emu.bus.unexport(path, iface)
        self._gatt.clear()
        self.hrm_char = self.pmd_cp = self.pmd_data = None
        self.device.connected = False
        self.device.emit_properties_changed({"Connected": False})

    def _export_gatt(self) -> None:
        handle = 0x000C

        def service(uuid: str) -> str:
            nonlocal handle
            path = f"{self.path}/service{handle:04x}"
            handle += 1
            iface = GattService1(uuid, self.path)
            self.emu.bus.export(path, iface)
            self._gatt.append((path, iface))
            return path

        def char(spath: str, uuid: str, flags: list, value: bytes = b"", on_write=None) -> GattCharacteristic1:
            nonlocal handle
            path = f"{spath}/char{handle:04x}"
            handle += 2
            iface = GattCharacteristic1(uuid, spath, flags, value, on_write)
            self.emu.bus.export(path, iface)
            self._gatt.append((path, iface))
            return iface

        s = service(hrm.HEART_RATE_SERVICE)
        self.hrm_char = char(s, hrm.HEART_RATE_MEASUREMENT, ["notify"])
        char(s, hrm.BODY_SENSOR_LOCATION, ["read"], bytes([self.location]))
        s = service(hrm.BATTERY_SERVICE)
        char(s, hrm.BATTERY_LEVEL, ["read", "notify"], bytes([self.battery]))
        if self.polar_ecg:
            s = service(polar.PMD_SERVICE)
            self.pmd_cp = char(s, polar.PMD_CONTROL, ["read", "write", "indicate"], b"\x0f\x01", self._pmd_write)
            self.pmd_data = char(s, polar.PMD_DATA, ["notify"])

    def _pmd_write(self, value: bytes) -> None:
        op = value[0] if value else 0xFF
        meas = value[1] if len(value) > 1 else 0xFF
        self.pmd_requests.append(bytes(value))
        cp = self.pmd_cp
        if meas != polar.MEAS_ECG:
            status = 2
        elif op == polar.OP_START:
            status = 6 if self.ecg_streaming else 0
            self.ecg_streaming = True
        elif op == polar.OP_STOP:
            status = 0
            self.ecg_streaming = False
        else:
            status = 1
        if cp is not None:
            self.emu.loop.call_soon(cp.notify, polar.encode_control_response(op, meas, status))

    def _emit_rssi(self) -> None:
        if self.present and not self.device.connected:
            self.device.rssi = -60 - (self.device.rssi + 61) % 5
            self.device.emit_properties_changed({"RSSI": self.device.rssi})

    # -- thread-safe driving --------------------------------------------------------------------
    def send_hrm(self, value: bytes) -> bool:
        """Notify a Heart Rate Measurement now; False when not connected or not subscribed."""
        return self.emu.call(self._send, value)

    def _send(self, value: bytes) -> bool:
        ok = self.hrm_char is not None and self.hrm_char.notify(value)
        self.sent += int(bool(ok))
        return bool(ok)

    def force_disconnect(self, absent_s: float = 0.0) -> None:
        """Drop the link (as a strap out of range), stay absent ``absent_s``, then advertise again."""
        self.emu.call(self._force, absent_s)

    def _force(self, absent_s: float) -> None:
        self.present = absent_s <= 0
        self._disconnect(remote=True)
        if absent_s > 0:
            self.emu.loop.call_later(absent_s, self._reappear)

    def _reappear(self) -> None:
        self.present = True
        self.reappeared_at.append(self.emu.clock())

    def set_present(self, present: bool) -> None:
        self.emu.call(setattr, self, "present", present)

    def play_beats(self, beat_times, rr_ticks, notify_times, hr_bpm: Callable[[int], int] = lambda i: 70,
                   energy: bool = False) -> "asyncio.Future":
        """Send one HRM at each LSL time of ``notify_times`` carrying the RR of the beats before it.

        ``beat_times`` (LSL clock) say which beats have happened by a notification; ``rr_ticks``
        are the intervals (device ticks) ending at those beats. Returns a future (done at the end).
        """
        return asyncio.run_coroutine_threadsafe(self._play(np.asarray(beat_times), np.asarray(rr_ticks),
                                                           np.asarray(notify_times), hr_bpm, energy), self.emu.loop)

    async def _play(self, beats, rr, notify, hr_bpm, energy) -> int:
        k = 0
        sent = 0
        for t in notify:
            delay = t - self.emu.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            j = int(np.searchsorted(beats, t, side="right"))
            ticks = tuple(int(x) for x in rr[k:j])
            k = j
            while True:
                chunk, ticks = ticks[:9], ticks[9:]
                m = hrm.HeartRateMeasurement(hr_bpm(j), True, 100 if energy else None, chunk)
                sent += int(self._send(hrm.encode_hrm(m)))
                if not ticks:
                    break
        return sent

    def stream_ecg(self, samples_uv, start_lsl: float, rate_hz: float = 130.0, frame: int = 73,
                   device_origin_ns: int = 599_616_000_000_000_000) -> "asyncio.Future":
        """While streaming is on, send ECG frames of ``frame`` samples in real time."""
        return asyncio.run_coroutine_threadsafe(
            self._ecg(np.asarray(samples_uv, dtype=np.int64), start_lsl, rate_hz, frame, device_origin_ns),
            self.emu.loop)

    async def _ecg(self, samples, start, rate, frame, origin_ns) -> int:
        sent = 0
        for i in range(frame, len(samples) + 1, frame):
            t_last = start + (i - 1) / rate
            delay = t_last - self.emu.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.ecg_streaming and self.pmd_data is not None:
                ts = origin_ns + int(round((i - 1) / rate * 1e9))
                sent += int(self.pmd_data.notify(polar.encode_ecg_frame(ts, samples[i - frame:i])))
        return sent


class EmulatedBlueZ:
    """``org.bluez`` on the bus at ``address``; see the module docstring.

    >>> with PrivateBus() as bus, EmulatedBlueZ(bus.address) as bz:   # doctest: +SKIP
    ...     strap = bz.add_strap("A0:9E:1A:00:00:01", "Polar H10 0001")
    """

    adapter_path = "/org/bluez/hci0"

    def __init__(self, address: str, clock: Callable[[], float] | None = None) -> None:
        import pylsl

        self.address = address
        self.clock = clock or pylsl.local_clock
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="emulated-bluez", daemon=True)
        self.bus: MessageBus | None = None
        self.straps: list[EmulatedStrap] = []
        self._rssi_task: asyncio.Task | None = None
        self.adapter: Adapter1 | None = None

    def call(self, fn, *args):
        """Run ``fn(*args)`` on the emulator loop and return its result."""
        async def run():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    def start(self) -> "EmulatedBlueZ":
        self.thread.start()

        async def setup():
            self.bus = await MessageBus(bus_address=self.address, bus_type=BusType.SYSTEM).connect()
            self.adapter = Adapter1(self)
            self.bus.export(self.adapter_path, self.adapter)
            await self.bus.request_name("org.bluez")
        asyncio.run_coroutine_threadsafe(setup(), self.loop).result(timeout=10)
        return self

    def add_strap(self, address: str, name: str, **kw) -> EmulatedStrap:
        strap = EmulatedStrap(self, address, name, **kw)
        self.straps.append(strap)
        self.call(self.bus.export, strap.path, strap.device)
        return strap

    def _on_discovery(self, on: bool) -> None:
        if on and self._rssi_task is None:
            self._rssi_task = self.loop.create_task(self._advertise())
        elif not on and self._rssi_task is not None:
            self._rssi_task.cancel()
            self._rssi_task = None

    async def _advertise(self) -> None:
        while True:
            for s in self.straps:
                s._emit_rssi()
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        async def teardown():
            if self._rssi_task is not None:
                self._rssi_task.cancel()
            if self.bus is not None:
                self.bus.disconnect()
        try:
            asyncio.run_coroutine_threadsafe(teardown(), self.loop).result(timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)

    def __enter__(self) -> "EmulatedBlueZ":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def beats_to_rr_ticks(beat_times_s, drift: float = 0.0) -> np.ndarray:
    """RR intervals (1/1024 s ticks) a strap with crystal error ``drift`` would report for these
    beats: its tick counter stamps each beat, so the intervals sum exactly (no rounding builds up)."""
    t = np.asarray(beat_times_s, dtype=np.float64)
    ticks = np.round((t - t[0]) * hrm.RR_TICKS_PER_S * (1.0 + drift)).astype(np.int64)
    return np.diff(ticks)


__all__ = ["EmulatedBlueZ", "EmulatedStrap", "beats_to_rr_ticks"]
