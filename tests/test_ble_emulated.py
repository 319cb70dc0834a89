"""bleak's real BlueZ backend against an emulated BlueZ on a private D-Bus system bus:
scan, connect, notifications carrying known measurements, forced disconnects, reconnection
with backoff, ``sensor.gap`` events, Polar PMD ECG, and beat times from a real MIT-BIH series."""

import asyncio
import shutil
import time

import numpy as np
import pytest

from engage.core.bus import EventBus
from engage.core.clock import LslClock
from engage.core.runtime import Runtime
from engage.sensors.ble.client import Backoff, scan
from engage.sensors.ble.hrm import HeartRateMeasurement, encode_hrm
from engage.sensors.ble.supervisor import BleSupervisor, StrapConfig, StrapSource

pytestmark = pytest.mark.skipif(shutil.which("dbus-daemon") is None, reason="dbus-daemon not installed")

pylsl = pytest.importorskip("pylsl")

from support.ble_fixtures import bluez, strap  # noqa: E402,F401 - fixtures


def wait_for(pred, timeout=5.0, step=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def subscribed(bluez, s):
    return bluez.call(lambda: s.hrm_char is not None and s.hrm_char.notifying)


def fast_backoff():
    return Backoff(0.02, 2.0, 1.0, jitter=0.1, seed=0)


def test_scan_finds_straps_by_heart_rate_service(bluez, strap):
    s = strap(polar_ecg=True)
    found = asyncio.run(scan(timeout=0.6))
    mine = [f for f in found if f.address == s.address]
    assert mine and mine[0].name == s.name and mine[0].has_ecg and mine[0].rssi < 0


def test_notifications_become_rr_and_hr_chunks(bluez, strap):
    s = strap()
    sup = BleSupervisor([StrapConfig(s.address, viewer="viewer-7")], backoff=fast_backoff).start()
    try:
        assert wait_for(lambda: subscribed(bluez, s))
        link = sup.links[0]
        assert link.state.location == "chest" and link.state.battery == 87
        sent = [HeartRateMeasurement(72, True, None, (850, 860)),
                HeartRateMeasurement(300, False, 1234, (1023,), hr16=True),
                HeartRateMeasurement(64, None, None, ())]
        before = pylsl.local_clock()
        for m in sent:
            assert s.send_hrm(encode_hrm(m))
        assert s.send_hrm(b"\x1f")  # malformed: counted, never fatal
        assert wait_for(lambda: link.counters["notifications"] == 4)
        after = pylsl.local_clock()
    finally:
        sup.stop()
    chunks, gaps = sup.drain()
    assert gaps == []
    hr = [c for c in chunks if c.info.type == "StrapHR"]
    rr = [c for c in chunks if c.info.type == "RR"]
    assert [c.info.viewer for c in hr + rr] == ["viewer-7"] * 5
    assert [int(c.data[0, 0]) for c in hr] == [72, 300, 64]
    assert hr[1].channel("energy_kj")[0] == 1234 and hr[1].channel("contact")[0] == 0.0
    assert np.isnan(hr[2].channel("contact")[0]) and np.isnan(hr[0].channel("energy_kj")[0])
    rr_s = np.concatenate([c.channel("rr_s") for c in rr])
    assert rr_s.tolist() == [850 / 1024, 860 / 1024, 1023 / 1024]  # full resolution
    times = np.concatenate([c.timestamps for c in rr])
    assert before - 2 < times[0] < times[1] < times[2] <= after
    assert times[1] - times[0] == pytest.approx(860 / 1024, abs=1e-9)
    assert link.counters["malformed"] == 1
    assert rr[0].info.channels == ("rr_s", "contact") and hr[0].info.channels == ("hr_bpm", "contact", "energy_kj")


def test_forced_disconnect_reconnects_and_emits_gap_on_the_bus(bluez, strap):
    s = strap()
    bus = EventBus()
    events = []
    bus.subscribe(events.append, "sensor.gap")
    source = StrapSource([StrapConfig(s.address)], backoff=fast_backoff)
    rt = Runtime(LslClock(), [source], [], bus=bus, step=0.02)

    def script(now, state={"phase": 0}):
        if state["phase"] == 0 and subscribed(bluez, s):
            s.send_hrm(encode_hrm(HeartRateMeasurement(70, True, None, (800,))))
            s.force_disconnect(absent_s=0.3)
            state["phase"] = 1
        elif state["phase"] == 1 and s.reappeared_at and subscribed(bluez, s):
            s.send_hrm(encode_hrm(HeartRateMeasurement(71, True, None, (820,))))
            state["phase"] = 2
        elif state["phase"] == 2 and events:
            rt.stop()

    stats = rt.run(duration=15.0, on_step=script)
    assert stats.processor_errors == 0
    assert len(events) == 1
    ev = events[0]
    assert ev.evidence["reason"] == "disconnected" and ev.evidence["reconnected"] is True
    assert 0.3 <= ev.evidence["duration_s"] < 5.0
    assert ev.evidence["stream"] == source.streams()[0].name
    assert source.supervisor.links[0].counters["connects"] == 2


def test_hundred_forced_disconnects(bluez, strap):
    s = strap()
    sup = BleSupervisor([StrapConfig(s.address)], backoff=fast_backoff).start()
    link = sup.links[0]
    t0 = time.monotonic()
    try:
        assert wait_for(lambda: link.state.connected and subscribed(bluez, s))
        for i in range(100):
            connects = link.counters["connects"]
            s.force_disconnect(absent_s=0.03)
            # the link is back once it has re-subscribed (not merely once BlueZ says Connected)
            assert wait_for(lambda: link.counters["connects"] > connects and link.state.connected, timeout=5.0), \
                f"cycle {i}"
            # reconnection within 5 s of the device reappearing
            assert s.connected_at[-1] - s.reappeared_at[-1] < 5.0
            if i % 10 == 0:  # data flows again after the re-subscription
                n = link.counters["notifications"]
                assert s.send_hrm(encode_hrm(HeartRateMeasurement(60 + i % 50, True, None, (1000,))))
                assert wait_for(lambda: link.counters["notifications"] == n + 1)
        assert wait_for(lambda: link.counters["gaps"] == 100)
    finally:
        sup.stop()
    elapsed = time.monotonic() - t0
    _, gaps = sup.drain()
    assert len(gaps) == 100  # every outage marked
    assert all(g[1]["reason"] == "disconnected" and g[1]["duration_s"] > 0 for g in gaps)
    assert link.counters["disconnects"] == 100 and link.counters["connects"] == 101
    assert link.counters["errors"] == 0  # no crash of any kind
    assert not sup._thread.is_alive()  # clean shutdown
    assert elapsed < 45


def test_two_straps_two_viewers(bluez, strap):
    a, b = strap(), strap()
    sup = BleSupervisor([StrapConfig(a.address, viewer="v1"), StrapConfig(b.address, viewer="v2")],
                        backoff=fast_backoff).start()
    try:
        assert wait_for(lambda: subscribed(bluez, a) and subscribed(bluez, b))
        a.send_hrm(encode_hrm(HeartRateMeasurement(61, True, None, (1000,))))
        b.send_hrm(encode_hrm(HeartRateMeasurement(62, True, None, (990,))))
        b.force_disconnect(absent_s=0.1)
        assert wait_for(lambda: sup.links[1].counters["gaps"] == 1)
        assert sup.links[0].counters["gaps"] == 0
    finally:
        sup.stop()
    chunks, gaps = sup.drain()
    hr = {c.info.viewer: int(c.data[0, 0]) for c in chunks if c.info.type == "StrapHR"}
    assert hr == {"v1": 61, "v2": 62}
    assert [g[2] for g in gaps] == ["v2"]


def test_polar_ecg_over_pmd(bluez, strap):
    s = strap(polar_ecg=True)
    sup = BleSupervisor([StrapConfig(s.address)], backoff=fast_backoff).start()
    try:
        assert wait_for(lambda: bluez.call(lambda: s.ecg_streaming))
        n = 73 * 6
        ecg = (np.sin(np.arange(n) / 130 * 2 * np.pi * 1.2) * 1500).astype(int)
        start = pylsl.local_clock() + 0.1
        assert s.stream_ecg(ecg, start).result(timeout=10) == 6
        assert wait_for(lambda: sup.links[0].counters["ecg_samples"] == n)
    finally:
        sup.stop()
    # started with 130 Hz / 14 bit through the control point, stopped there at shutdown
    from engage.sensors.ble.polar import ECG_STOP_COMMAND, ecg_start_command
    assert s.pmd_requests == [ecg_start_command(130, 14), ECG_STOP_COMMAND]
    chunks, _ = sup.drain()
    e = [c for c in chunks if c.info.type == "ECG"]
    assert e[0].info.units == ("uV",) and e[0].info.nominal_rate == 130.0 and e[0].info.channels == ("ecg",)
    got = np.concatenate([c.channel("ecg") for c in e])
    assert got.astype(int).tolist() == ecg.tolist()
    t = np.concatenate([c.timestamps for c in e])
    assert np.all(np.diff(t) > 0)
    true_t = start + np.arange(n) / 130
    assert np.abs(t - true_t).max() < 0.010


@pytest.mark.realdata
def test_mitdb_beats_through_dbus_within_10ms(bluez, strap, shared_data):
    from support.bluez_emulator import beats_to_rr_ticks
    from test_ble_beats import mitdb_beats

    beats = mitdb_beats(shared_data)
    seg = beats[(beats >= 600.0) & (beats < 614.0)]  # 14 s of the real rhythm
    s = strap()
    sup = BleSupervisor([StrapConfig(s.address)], backoff=fast_backoff).start()
    try:
        assert wait_for(lambda: subscribed(bluez, s))
        t0 = pylsl.local_clock() + 0.2
        lsl = t0 + (seg - seg[0])
        rr = beats_to_rr_ticks(seg, drift=60e-6)
        rng = np.random.default_rng(4)
        # after each beat, the odd one merged into the next notification
        notify = lsl[1:][rng.random(len(rr)) > 0.2]
        notify[-1] = lsl[-1]
        sent = s.play_beats(lsl[1:], rr, notify + 0.002, hr_bpm=lambda i: 75).result(timeout=30)
        assert sent == len(notify)
        assert wait_for(lambda: sup.links[0].counters["beats"] == len(rr))
    finally:
        sup.stop()
    chunks, _ = sup.drain()
    got = np.concatenate([c.timestamps for c in chunks if c.info.type == "RR"])
    rr_s = np.concatenate([c.channel("rr_s") for c in chunks if c.info.type == "RR"])
    assert np.array_equal(rr_s, rr / 1024)
    assert np.abs(got - lsl[1:]).max() < 0.010


def test_connect_by_name_and_unknown_strap_is_a_gap_not_a_crash(bluez, strap):
    s = strap()
    sup = BleSupervisor([StrapConfig(s.name, viewer="v1"), StrapConfig("A0:9E:1A:FF:FF:FF", viewer="v2")],
                        backoff=fast_backoff, scan_timeout=0.3).start()
    try:
        assert wait_for(lambda: sup.links[0].state.connected)
        assert sup.links[0].address == s.address
        assert wait_for(lambda: sup.links[1].counters["connect_failures"] >= 2)
    finally:
        sup.stop()
    _, gaps = sup.drain()
    assert sup.links[0].counters["connects"] == 1 and sup.links[1].counters["connects"] == 0
    # the strap that never came is reported as one gap lasting until shutdown
    assert [(g[2], g[1]["reconnected"]) for g in gaps] == [("v2", False)]
    assert gaps[0][1]["reason"].startswith("connect failed") and gaps[0][1]["reason"].endswith("(until shutdown)")
