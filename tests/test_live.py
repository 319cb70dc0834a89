"""``engage live``: a simulated-viewer profile runs a whole session to the story's end with recording;
Ctrl-C mid-session leaves a readable XDF; a profile whose camera, LSL stream or strap is absent starts
with what works and names what failed (real OpenCV, real pylsl on loopback, bleak on an emulated BlueZ)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from engage.cli import main
from engage.narrative.ink import sample_ink_path

pyxdf = pytest.importorskip("pyxdf")
pylsl = pytest.importorskip("pylsl")

ROOT = Path(__file__).resolve().parents[1]
INK = str(sample_ink_path())


def load_xdf(path: Path) -> dict[str, dict]:
    streams, _ = pyxdf.load_xdf(str(path))
    return {s["info"]["name"][0]: s for s in streams}


def events_of(streams: dict[str, dict]) -> list[dict]:
    return [json.loads(v[0]) for name, s in streams.items() if s["info"]["type"][0] == "Markers"
            and name.startswith("engage-events") for v in s["time_series"]]


def types_of(streams: dict[str, dict]) -> set[str]:
    return {s["info"]["type"][0] for s in streams.values() if len(s["time_stamps"])}


# --------------------------------------------------------------------------------- simulated, to the end


@pytest.fixture(scope="module")
def simulated_session(tmp_path_factory):
    out = tmp_path_factory.mktemp("live")
    xdf = out / "session.xdf"
    import contextlib
    import io

    buf_out, buf_err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_err):
        rc = main(["live", "--profile", "simulated", "--speed", "0", "--story", INK, "--record", str(xdf),
                   "--out", str(out / "files"), "--quiet"])
    return rc, buf_out.getvalue(), buf_err.getvalue(), xdf, out / "files"


def test_simulated_profile_runs_the_story_to_its_end_and_records_everything(simulated_session):
    rc, out, err, xdf, files = simulated_session
    assert rc == 0, err
    assert "sensor 'viewer' (simulated viewer, seed 0) started" in err
    assert "story ended after" in out and "not started" not in out
    streams = load_xdf(xdf)
    # raw and derived streams, with samples
    assert {"ECG", "EDA", "Face", "HeartRate", "EDAFeatures", "FaceFeatures", "Engagement"} <= types_of(streams)
    ecg = streams["sim-viewer-1-ecg"]
    assert float(ecg["info"]["nominal_srate"][0]) == 250.0
    span = ecg["time_stamps"][-1] - ecg["time_stamps"][0]
    assert 60 < span < 3600
    assert len(ecg["time_stamps"]) == pytest.approx(span * 250, rel=0.01)
    # every decision is there, with its reason; the session ends at the story's end
    events = events_of(streams)
    starts = [e for e in events if e["type"] == "scene.start"]
    assert len(starts) >= 3 and all(e["evidence"]["reason"] for e in starts)
    assert starts[0]["evidence"]["reason"].startswith("story start")
    ends = [e for e in events if e["type"] == "story.end"]
    assert len(ends) == 1 and ends[0]["timestamp"] >= starts[-1]["timestamp"]
    assert ends[0]["timestamp"] <= ecg["time_stamps"][-1] + 0.5
    assert "baseline.ready" in {e["type"] for e in events}
    # the session's own files agree with the recording
    scenes = [json.loads(line) for line in (files / "scenes.jsonl").read_text().splitlines()]
    assert [s["scene"] for s in scenes] == [e["evidence"]["scene"] for e in starts]
    jsonl = [json.loads(line) for line in (files / "events.jsonl").read_text().splitlines()]
    assert [e["type"] for e in jsonl] == [e["type"] for e in events]
    assert (files / "session.png").stat().st_size > 10_000
    # timestamps are on the LSL clock of this machine (the virtual clock started at local_clock())
    assert abs(ecg["time_stamps"][0] - pylsl.local_clock()) < 3600


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_mid_session_closes_the_recording(tmp_path, sig):
    xdf = tmp_path / "cut.xdf"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(tmp_path / "stdout.txt", "w") as so:
        proc = subprocess.Popen([sys.executable, "-m", "engage", "live", "--profile", "simulated", "--record", str(xdf),
                                 "--out", str(tmp_path / "files"), "--quiet"], cwd=ROOT, env=env,
                                stdout=so, stderr=subprocess.PIPE, text=True)
        try:
            err = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = proc.stderr.readline()
                err.append(line)
                if "ready" in line or not line:
                    break
            assert any("ready" in line for line in err), "".join(err)
            # real time: the profile runs on the LSL clock at speed 1; let a few seconds reach the file
            while time.monotonic() < deadline and (not xdf.exists() or xdf.stat().st_size < 40_000):
                time.sleep(0.1)
            proc.send_signal(sig)
            rest = proc.communicate(timeout=60)[1]
        finally:
            if proc.poll() is None:
                proc.kill()
    out = (tmp_path / "stdout.txt").read_text()
    assert proc.returncode == 0, "".join(err) + rest
    assert f"{sig.name}: stopping" in rest
    assert "Traceback" not in rest.split(f"{sig.name}: stopping", 1)[1] and "KeyboardInterrupt" not in rest
    assert "stopped by signal" in out and "recorded" in out
    streams = load_xdf(xdf)
    ecg = streams["sim-viewer-1-ecg"]["time_stamps"]
    assert 2.0 < ecg[-1] - ecg[0] < 60 and np.all(np.diff(ecg) > 0)
    assert "scene.start" in {e["type"] for e in events_of(streams)}
    # and the footers were written: pyxdf reads the clock segments of a complete file
    assert streams["sim-viewer-1-ecg"]["footer"]["info"]["sample_count"][0] == str(len(ecg))


# --------------------------------------------------------------------------------- real sensors, some absent


class EdaOutlet:
    """A real LSL outlet on loopback: a skin-conductance device whose channel is called GSR."""

    def __init__(self, source_id: str, die_after_s: float | None = None) -> None:
        self.die_after_s = die_after_s
        self.name = f"test-gsr-{source_id[-6:]}"
        info = pylsl.StreamInfo(self.name, "GSR", 1, 16.0, pylsl.cf_float32, source_id)
        ch = info.desc().append_child("channels").append_child("channel")
        ch.append_child_value("label", "GSR")
        ch.append_child_value("unit", "uS")
        self.outlet = pylsl.StreamOutlet(info)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rng = np.random.default_rng(0)
        n = 0
        t0 = pylsl.local_clock()
        consumed = None
        while not self._stop.is_set():
            if self.die_after_s is not None and consumed is None and self.outlet.have_consumers():
                consumed = time.monotonic()
            if consumed is not None and time.monotonic() - consumed > self.die_after_s:
                self.outlet = None  # the device is switched off: its outlet goes away
                return
            due = int((pylsl.local_clock() - t0) * 16.0)
            if due > n:
                x = 5.0 + 0.3 * np.sin(np.arange(n, due) / 16.0) + 0.01 * rng.standard_normal(due - n)
                self.outlet.push_chunk(x.reshape(-1, 1).tolist())
                n = due
            time.sleep(0.02)

    def __enter__(self) -> "EdaOutlet":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join(2)
        self.outlet = None


def run_live(*args: str, capsys) -> tuple[int, str, str]:
    rc = main(["live", *args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_absent_camera_and_missing_lsl_stream_are_named_and_the_rest_runs(tmp_path, capsys):
    sid = f"engage-test-gsr-{uuid.uuid4().hex}"
    absent = f"engage-test-absent-{uuid.uuid4().hex}"
    profile = tmp_path / "rig.toml"
    profile.write_text(f"""
[profile]
description = "a rig with a camera that is not there and an EEG that never appears"

[sensor.camera]
kind = "webcam"
device = 9

[sensor.gsr]
kind = "lsl"
source_id = "{sid}"
maps_to = "EDA"
channel = "GSR"
expected_rate = 16
wait_s = 10

[sensor.eeg]
kind = "lsl"
source_id = "{absent}"
maps_to = "EEG"
wait_s = 0.5
""")
    xdf = tmp_path / "rig.xdf"
    with EdaOutlet(sid) as device:
        rc, out, err = run_live("--profile", str(profile), "--no-story", "--duration", "4", "--record", str(xdf),
                                "--out", str(tmp_path / "files"), "--quiet", capsys=capsys)
    assert rc == 0, err
    lines = err.splitlines()
    cam = [line for line in lines if "sensor 'camera'" in line]
    assert len(cam) == 1 and "not started" in cam[0] and ("camera 9" in cam[0] or "face pipeline" in cam[0])
    eeg = [line for line in lines if "sensor 'eeg'" in line]
    assert len(eeg) == 1 and f"no LSL stream matches 'source_id={absent}' within 0.5 s" in eeg[0]
    gsr = [line for line in lines if "sensor 'gsr'" in line]
    assert len(gsr) == 1 and "started: found 'test-gsr-" in gsr[0] and "(GSR, 1 ch, 16 Hz)" in gsr[0]
    assert "duration reached" in out
    streams = load_xdf(xdf)
    raw = [s for s in streams.values() if s["info"]["name"][0] == device.name]
    assert len(raw) == 1 and raw[0]["info"]["type"][0] == "GSR"  # recorded as the device sent it (the pipeline
    assert raw[0]["info"]["desc"][0]["channels"][0]["channel"][0]["label"][0] == "GSR"  # reads it as EDA)
    assert 2.0 * 16 < len(raw[0]["time_stamps"]) < 6 * 16
    assert np.allclose(raw[0]["time_series"][:, 0], 5.0, atol=0.5)
    assert "EDAFeatures" in types_of(streams)  # the pipeline ran on what works


@pytest.mark.realdata
def test_webcam_sensor_through_real_mediapipe_on_a_real_video(shared_data, tmp_path, capsys):
    pytest.importorskip("mediapipe")
    clip = shared_data / "talking_head_blinks" / "WDA_AlexandriaOcasioCortez_000.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} not found")
    profile = tmp_path / "cam.toml"
    profile.write_text(f'[sensor.camera]\nkind = "webcam"\nfile = "{clip}"\nscreen_width_cm = 34\n')
    xdf = tmp_path / "cam.xdf"
    rc, out, err = run_live("--profile", str(profile), "--no-story", "--duration", "3", "--record", str(xdf),
                            "--out", str(tmp_path / "files"), "--quiet", capsys=capsys)
    assert rc == 0, err
    assert f"sensor 'camera' (webcam, video file {clip}) started" in err
    streams = load_xdf(xdf)
    face = streams["video-viewer-1-face"]
    assert face["info"]["type"][0] == "Face" and 60 <= len(face["time_stamps"]) <= 100  # 3 s of a 25-30 fps clip
    labels = [c["label"][0] for c in face["info"]["desc"][0]["channels"][0]["channel"]]
    present = face["time_series"][:, labels.index("face_present")]
    assert present.mean() > 0.9  # a talking head: the face is found in (nearly) every frame
    assert "FaceFeatures" in types_of(streams)


def test_an_lsl_stream_that_dies_mid_session_is_a_recorded_gap(tmp_path, capsys):
    sid = f"engage-test-gsr-{uuid.uuid4().hex}"
    profile = tmp_path / "eda.toml"
    profile.write_text(f'[sensor.gsr]\nkind = "lsl"\nsource_id = "{sid}"\nmaps_to = "EDA"\nwait_s = 10\n'
                       'expected_rate = 4\n')
    xdf = tmp_path / "eda.xdf"
    with EdaOutlet(sid, die_after_s=1.5) as device:
        rc, out, err = run_live("--profile", str(profile), "--no-story", "--duration", "5", "--record", str(xdf),
                                "--out", str(tmp_path / "files"), "--quiet", capsys=capsys)
    assert rc == 0, err
    streams = load_xdf(xdf)
    gaps = [e for e in events_of(streams) if e["type"] == "sensor.gap" and e["evidence"].get("reason") == "stream lost"]
    assert len(gaps) == 1 and gaps[0]["evidence"]["stream"] == device.name
    raw = streams[device.name]
    assert 0.5 * 16 < len(raw["time_stamps"]) < 4 * 16  # about 1.5 s of samples, then nothing
    assert gaps[0]["timestamp"] == pytest.approx(raw["time_stamps"][-1], abs=0.2)
    assert "sensor gaps: " in out
    assert "(GSR, 1 ch, 16 Hz); warning: expected 4 Hz" in err  # a device set to another rate is pointed out


def test_nothing_that_works_is_a_clear_error(tmp_path, capsys):
    profile = tmp_path / "none.toml"
    profile.write_text(f'[sensor.eeg]\nkind = "lsl"\nsource_id = "engage-test-{uuid.uuid4().hex}"\n'
                       'maps_to = "EEG"\nwait_s = 0.2\n')
    rc, out, err = run_live("--profile", str(profile), "--duration", "1", "--out", str(tmp_path), capsys=capsys)
    assert rc == 2
    assert "sensor 'eeg' (lsl, source_id=engage-test-" in err and "waiting: no LSL stream matches" in err
    assert err.strip().splitlines()[-1] == f"engage: error: {profile}: no sensor could be started; see the lines above"


def test_a_strap_without_bluetooth_is_named_at_once(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    profile = tmp_path / "strap.toml"
    profile.write_text('[sensor.belt]\nkind = "ble-hrm"\naddress = "A0:9E:1A:12:34:56"\nwait_s = 30\n'
                       '[sensor.sim]\nkind = "simulated"\n')
    t0 = time.monotonic()
    rc, out, err = run_live("--profile", str(profile), "--no-story", "--duration", "1", "--out", str(tmp_path),
                            "--quiet", capsys=capsys)
    assert rc == 0 and time.monotonic() - t0 < 25  # not the 30 s wait: there is no Bluetooth to wait for
    assert (f"sensor 'belt' (ble-hrm, A0:9E:1A:12:34:56) not started: Bluetooth is not available here (no system "
            f"D-Bus at {tmp_path}/no-bus, so no BlueZ)") in err


def test_a_required_sensor_that_fails_stops_the_start(tmp_path, capsys):
    profile = tmp_path / "req.toml"
    profile.write_text('[sensor.sim]\nkind = "simulated"\n'
                       f'[sensor.eeg]\nkind = "lsl"\nsource_id = "engage-test-{uuid.uuid4().hex}"\n'
                       'maps_to = "EEG"\nwait_s = 0.2\nrequired = true\n')
    rc, out, err = run_live("--profile", str(profile), "--duration", "1", "--out", str(tmp_path), capsys=capsys)
    assert rc == 2 and "required sensor(s) 'eeg' could not be started" in err


@pytest.mark.parametrize("args,phrase", [
    (["--profile", "nosuch"], "no profile 'nosuch': not a file, and not a built-in profile (built-in: "),
    (["--profile", "lsl-eeg", "--speed", "5"], "--speed 5 needs a profile with only simulated sensors"),
    (["--profile", "simulated", "--duration", "-3"], "--duration must be positive"),
    (["--profile", "simulated", "--record", "out.csv"], "the recording is XDF"),
    ([], "engage live needs --profile"),
    (["--profile", "simulated", "--record", "/proc/no/such/dir/s.xdf"], "--record /proc/no/such/dir: cannot create"),
])
def test_bad_options_are_one_line_errors(args, phrase, capsys, tmp_path):
    rc, out, err = run_live(*args, "--out", str(tmp_path), capsys=capsys)
    assert rc == 2 and phrase in err and "Traceback" not in err


def test_bad_profile_is_one_line_error_naming_file_table_key(tmp_path):
    profile = tmp_path / "typo.toml"
    profile.write_text('[sensor.cam]\nkind = "webcam"\nfsp = 30\n')
    r = subprocess.run([sys.executable, "-m", "engage", "live", "--profile", str(profile)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == (f"engage: error: {profile}: [sensor.cam]: unknown key 'fsp' (allowed: kind, viewer, "
                                "required, device, url, file, fps, width, height, screen_width_cm, screen_height_cm, "
                                "viewing_distance_cm, camera_above_cm, gaze_margin_deg, task, faces, new_faces)")


def test_help_and_profile_list(capsys):
    with pytest.raises(SystemExit):
        main(["live", "--help"])
    assert "examples:" in capsys.readouterr().out
    assert main(["live", "--list-profiles"]) == 0
    listing = capsys.readouterr().out
    for name in ("simulated", "webcam", "polar-h10", "hr-strap", "lsl-eda", "lsl-eeg", "lab-rig"):
        assert f"\n{name} " in "\n" + listing


# --------------------------------------------------------------------------------- dashboard


def _dashboard_available() -> bool:
    try:
        import engage.dashboard  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _dashboard_available(), reason="engage.dashboard (issue 9B) not installed")
def test_busy_dashboard_port_is_reported_and_the_session_goes_on(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rc, out, err = run_live("--profile", "simulated", "--speed", "0", "--no-story", "--duration", "20",
                                "--dashboard", "--port", str(port), "--out", str(tmp_path), "--quiet", capsys=capsys)
    assert rc == 0, err
    line = [x for x in err.splitlines() if "dashboard" in x]
    assert len(line) == 1 and f"port {port}" in line[0] and "busy" in line[0] and "going on without it" in line[0]
    assert "duration reached after 20.0 s" in out


@pytest.mark.skipif(not _dashboard_available(), reason="engage.dashboard (issue 9B) not installed")
def test_dashboard_shows_the_live_session(tmp_path):
    """A simulated session at 5x real time with --dashboard: the page is served and its state fills
    with heart rate, engagement and the controller's scene plans while the session runs."""
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "engage", "live", "--profile", "simulated", "--speed", "5",
                             "--dashboard", "--port", "0", "--duration", "600", "--out", str(tmp_path), "--quiet"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and url is None:
            line = proc.stderr.readline()
            if not line:
                break
            if "dashboard at " in line:
                url = line.split("dashboard at ", 1)[1].split()[0]
        assert url and url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and "<html" in r.read().decode().lower()
        base = url.split("?")[0].rstrip("/")
        state = {}
        while time.monotonic() < deadline:
            with urllib.request.urlopen(base + "/api/state", timeout=10) as r:
                state = json.loads(r.read())
            if state["plans"] and state["series"]["hr"]["t"] and state["series"]["eda"]["t"]:
                break
            time.sleep(0.5)
        assert state["plans"] and state["plans"][0]["reason"].startswith("story start")
        assert state["series"]["hr"]["t"] and state["series"]["eda"]["t"]  # heart rate from the simulated ECG, EDA
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err


@pytest.mark.skipif(not _dashboard_available(), reason="engage.dashboard (issue 9B) not installed")
def test_dashboard_on_another_address_needs_a_token(tmp_path, capsys):
    rc, out, err = run_live("--profile", "simulated", "--dashboard", "--host", "0.0.0.0", "--duration", "1",
                            "--out", str(tmp_path), capsys=capsys)
    assert rc == 2 and "token" in err and "Traceback" not in err


@pytest.mark.skipif(not _dashboard_available(), reason="engage.dashboard (issue 9B) not installed")
def test_live_takes_the_dashboard_token_from_the_environment(tmp_path, capsys, monkeypatch):
    """Like replay: the token need not go on the command line, where `ps` shows it to every user."""
    monkeypatch.setenv("ENGAGE_DASHBOARD_TOKEN", "env-s3cret")
    rc, out, err = run_live("--profile", "simulated", "--speed", "0", "--dashboard", "--host", "0.0.0.0",
                            "--port", "0", "--duration", "2", "--quiet", "--out", str(tmp_path), capsys=capsys)
    assert rc == 0, err
    assert "?token=env-s3cret" in out + err


# --------------------------------------------------------------------------------- an emulated strap


needs_dbus = pytest.mark.skipif(shutil.which("dbus-daemon") is None, reason="dbus-daemon not installed")


@needs_dbus
def test_a_strap_that_is_off_is_named_and_the_one_that_is_on_is_recorded(tmp_path, capsys):
    pytest.importorskip("dbus_fast")
    from support.bluez_emulator import EmulatedBlueZ
    from support.private_bus import PrivateBus

    from engage.sensors.ble.hrm import HeartRateMeasurement, encode_hrm

    old = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    with PrivateBus() as bus:
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
        try:
            with EmulatedBlueZ(bus.address) as emu:
                on = emu.add_strap("A0:9E:1A:00:77:01", "Polar H10 7701")
                other = emu.add_strap("C4:00:00:00:77:02", "HRM-Pro 7702")
                profile = tmp_path / "straps.toml"
                profile.write_text('[sensor.chest]\nkind = "ble-hrm"\ndevice_name = "Polar H10 77"\nwait_s = 10\n'
                                   '[sensor.spare]\nkind = "ble-hrm"\naddress = "A0:9E:1A:00:77:FF"\nwait_s = 1\n'
                                   '[sensor.any]\nkind = "ble-hrm"\nwait_s = 10\nviewer = "viewer-2"\n')
                stop = threading.Event()

                def beats() -> None:  # the worn straps: one notification with an RR interval every 0.3 s
                    while not stop.is_set():
                        on.send_hrm(encode_hrm(HeartRateMeasurement(70, True, None, (880,))))
                        other.send_hrm(encode_hrm(HeartRateMeasurement(60, True, None, (1024,))))
                        stop.wait(0.3)

                sender = threading.Thread(target=beats, daemon=True)
                sender.start()
                try:
                    rc, out, err = run_live("--profile", str(profile), "--no-story", "--duration", "3", "--record",
                                            str(tmp_path / "s.xdf"), "--out", str(tmp_path / "f"), "--quiet",
                                            capsys=capsys)
                finally:
                    stop.set()
                    sender.join(2)
        finally:
            if old is None:
                os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
            else:
                os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = old
    assert rc == 0, err
    spare = [x for x in err.splitlines() if "sensor 'spare'" in x]
    assert len(spare) == 1 and "not started: A0:9E:1A:00:77:FF: not connected within 1 s" in spare[0]
    assert "is it on, worn and in range?" in spare[0]
    chest = [x for x in err.splitlines() if "sensor 'chest'" in x]
    assert len(chest) == 1 and "started: connected to Polar H10 7701" in chest[0]
    streams = load_xdf(tmp_path / "s.xdf")
    rr = streams["chest-rr"]
    assert rr["info"]["type"][0] == "RR" and len(rr["time_stamps"]) >= 5
    assert np.allclose(rr["time_series"][:, 0], 880 / 1024)
    assert "not started: spare" in out
    # a profile sensor with neither address nor name takes the first strap that no other sensor took
    anyone = [x for x in err.splitlines() if "sensor 'any'" in x]
    assert len(anyone) == 1 and "(ble-hrm, any heart-rate strap) started: connected to HRM-Pro 7702" in anyone[0]
    rr2 = streams["any-rr"]
    assert len(rr2["time_stamps"]) >= 5 and np.allclose(rr2["time_series"][:, 0], 1.0)


# --------------------------------------------------------------------------------- live → report (issue 9C's command)


def test_a_live_recording_becomes_a_report_with_plots(simulated_session, tmp_path, capsys):
    pytest.importorskip("engage.report", reason="engage report (issue 9C) not installed")
    rc, out, err, xdf, files = simulated_session
    assert rc == 0
    scenes = [json.loads(line)["title"] for line in (files / "scenes.jsonl").read_text().splitlines()]
    html = tmp_path / "report" / "report.html"
    assert main(["report", str(xdf), "-o", str(html)]) == 0
    printed = capsys.readouterr().out
    assert "recorded by engage, read directly" in printed and f"{len(scenes)} scenes" in printed
    text = html.read_text()
    assert text.count("data:image/png;base64,") >= 3
    pngs = sorted(html.parent.glob("*.png"))
    assert len(pngs) >= 3 and all(p.stat().st_size > 10_000 for p in pngs)
    assert "sim-viewer-1-ecg" in text
    import html as html_lib

    assert html_lib.escape(scenes[1])[:30] in text or scenes[1][:30] in text  # the decisions are listed


def test_replaying_a_live_recording_gives_the_live_sessions_events(simulated_session, tmp_path, capsys):
    """Bug 1, second half: replaying an engage recording fed its recorded derived streams and events back into
    the pipeline (23 boredom onsets instead of 39). Only its raw streams are processed now."""
    from engage.core.event import ENGAGEMENT_EVENT_TYPES

    rc, _, _, xdf, files = simulated_session
    assert rc == 0
    assert main(["replay", str(xdf), "--no-story", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "recorded by engage:" in out and "shown as recorded, not re-processed" in out
    kinds = set(ENGAGEMENT_EVENT_TYPES) | {"baseline.ready"}

    def key(path):
        return [(e["type"], e["viewer"], round(e["timestamp"], 3)) for e in map(json.loads, path.read_text().splitlines())
                if e["type"] in kinds]

    live, replayed = key(files / "events.jsonl"), key(tmp_path / "events.jsonl")
    assert len(live) >= 3 and [k[:2] for k in replayed] == [k[:2] for k in live]
    # the same events at the same times, give or take one feature hop (the live run's steps fall elsewhere)
    assert np.allclose([k[2] for k in replayed], [k[2] for k in live], atol=1.01)
