"""``engage devices scan`` and ``engage bridge ble --lsl`` against the emulated BlueZ, read back
with a real pylsl inlet."""

import json
import shutil
import threading
import time

import numpy as np
import pytest

from engage.cli import main
from engage.sensors.ble.hrm import HeartRateMeasurement, encode_hrm

pytestmark = pytest.mark.skipif(shutil.which("dbus-daemon") is None, reason="dbus-daemon not installed")
pylsl = pytest.importorskip("pylsl")

from support.ble_fixtures import bluez, strap  # noqa: E402,F401 - fixtures


@pytest.fixture(autouse=True)
def _restore_logging():
    """main() points the root logger at the (captured) stderr of the moment; put it back after."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_devices_scan_json(bluez, strap, capsys):
    s = strap(polar_ecg=True)
    assert main(["devices", "scan", "--timeout", "0.6", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"address": s.address, "name": s.name, "rssi": rows[0]["rssi"], "ecg": True} in rows


def test_devices_scan_table(bluez, strap, capsys):
    s = strap()
    assert main(["devices", "scan", "--timeout", "0.6"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["address", "rssi", "ecg", "name"]
    assert s.address in out


@pytest.mark.lsl
def test_bridge_publishes_rr_on_lsl(bluez, strap, tmp_path, capsys):
    s = strap(polar_ecg=True)
    events = tmp_path / "gaps.jsonl"
    rc = {}
    t = threading.Thread(target=lambda: rc.setdefault("rc", main(
        ["bridge", "ble", s.address, "--lsl", "--duration", "6", "--session", "t1", "--events-out", str(events)])))
    t.start()
    try:
        found = pylsl.resolve_byprop("type", "RR", minimum=1, timeout=5)
        found = [i for i in found if s.address.replace(":", "").lower()[-6:] in i.name()]
        assert found, "the RR outlet did not appear"
        inlet = pylsl.StreamInlet(found[0])
        inlet.open_stream(timeout=5)
        deadline = time.monotonic() + 5
        while not bluez.call(lambda: s.hrm_char is not None and s.hrm_char.notifying):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.3)
        s.send_hrm(encode_hrm(HeartRateMeasurement(70, True, None, (800, 810))))
        s.force_disconnect(absent_s=0.2)
        samples, stamps = [], []
        deadline = time.monotonic() + 5
        while len(samples) < 2 and time.monotonic() < deadline:
            chunk, ts = inlet.pull_chunk(timeout=0.2)
            samples += chunk
            stamps += ts
        info = inlet.info()
        assert info.channel_count() == 2 and info.nominal_srate() == 0.0
        ch = info.desc().child("channels").child("channel")
        assert ch.child_value("label") == "rr_s"
    finally:
        t.join(20)
    assert rc["rc"] == 0
    assert np.allclose(np.asarray(samples)[:, 0], [800 / 1024, 810 / 1024])
    assert stamps[1] - stamps[0] == pytest.approx(810 / 1024, abs=1e-6)
    gaps = [json.loads(line) for line in events.read_text().splitlines()]
    assert len(gaps) == 1 and gaps[0]["type"] == "sensor.gap" and gaps[0]["evidence"]["reason"] == "disconnected"
    err = capsys.readouterr().err
    assert "2 connect(s), 1 disconnect(s), 1 gap(s), 2 beats" in err and "battery 87 %" in err


def test_bridge_rejects_extra_viewers(capsys):
    assert main(["bridge", "ble", "AA:BB:CC:DD:EE:FF", "--viewer", "a", "--viewer", "b"]) == 2
    assert "2 --viewer values for 1 strap" in capsys.readouterr().err
