"""pytest fixtures: a private D-Bus with the emulated BlueZ on it, DBUS_SYSTEM_BUS_ADDRESS
pointed at it for bleak, and a factory of emulated straps. Import them into a test module."""

import itertools
import os

import pytest

_addresses = itertools.count(1)


@pytest.fixture(scope="module")
def bluez():
    from support.bluez_emulator import EmulatedBlueZ
    from support.private_bus import PrivateBus

    old = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    with PrivateBus() as bus:
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
        try:
            with EmulatedBlueZ(bus.address) as emu:
                yield emu
        finally:
            if old is None:
                os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
            else:
                os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = old


@pytest.fixture
def strap(bluez):
    def make(**kw):
        i = next(_addresses)
        return bluez.add_strap(f"A0:9E:1A:00:{i // 256:02X}:{i % 256:02X}", f"Polar H10 {i:04X}", **kw)
    return make
