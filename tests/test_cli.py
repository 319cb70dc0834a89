"""The `engage` command end to end: demo acceptance, determinism, replay of real and broken files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engage.cli import main


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engage", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=240)


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    """Two runs of the acceptance command with the same seed, in separate folders."""
    base = tmp_path_factory.mktemp("demo")
    runs = [run_cli("demo", "--minutes", "10", "--seed", "0", "--out", str(base / name)) for name in ("a", "b")]
    return base, runs


def test_demo_answers_a_boredom_onset_with_a_scene_choice(demo_runs):
    base, (first, _) = demo_runs
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    onsets = [line for line in lines if "boredom.onset" in line and " ! " in line]
    answered = [line for line in lines if " > " in line and "viewer bored (boredom.onset at" in line]
    assert onsets and answered, first.stdout
    events = [json.loads(x) for x in (base / "a" / "events.jsonl").read_text().splitlines()]
    plans = [json.loads(x) for x in (base / "a" / "scenes.jsonl").read_text().splitlines()]
    assert any(e["type"] == "boredom.onset" for e in events)
    raised = [p for p in plans if "boredom.onset" in p["reason"]]
    assert raised and all(p["directives"]["music_intensity"] >= 0.5 for p in raised)
    assert (base / "a" / "session.png").stat().st_size > 10_000


def test_demo_is_deterministic(demo_runs):
    base, runs = demo_runs
    assert all(r.returncode == 0 for r in runs)
    for name in ("events.jsonl", "scenes.jsonl"):
        assert (base / "a" / name).read_bytes() == (base / "b" / name).read_bytes()
    assert (base / "a" / "events.jsonl").read_bytes()  # and not trivially empty


def test_demo_with_another_seed_differs(demo_runs, tmp_path):
    base, _ = demo_runs
    assert main(["demo", "--minutes", "3", "--seed", "2", "--out", str(tmp_path), "--quiet"]) == 0
    a = (base / "a" / "events.jsonl").read_text().splitlines()[:5]
    b = (tmp_path / "events.jsonl").read_text().splitlines()[:5]
    assert a != b


@pytest.mark.realdata
def test_replay_of_the_real_labrecorder_file_with_a_clock_reset(shared_data, tmp_path):
    xdf = shared_data / "xdf_examples" / "clock_resets.xdf"
    events_out = tmp_path / "ev.jsonl"
    r = run_cli("replay", str(xdf), "--events-out", str(events_out), "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    events = [json.loads(x) for x in events_out.read_text().splitlines()]
    markers = [e for e in events if e["type"] == "marker"]
    assert len(markers) == 175  # every marker of the recording came through
    times = [e["timestamp"] for e in markers]
    assert times == sorted(times)  # the clock reset did not send time backwards
    assert any(e["type"] == "scene.start" for e in events)


@pytest.mark.realdata
def test_replay_of_a_file_with_empty_streams(shared_data, tmp_path):
    r = run_cli("replay", str(shared_data / "xdf_examples" / "empty_streams.xdf"), "--out", str(tmp_path), "--quiet")
    assert r.returncode == 0, r.stderr


def _one_line_error(r: subprocess.CompletedProcess, path: Path) -> str:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("engage: error:")]
    assert len(errors) == 1, r.stderr
    assert str(path) in errors[0] or path.name in errors[0]
    return errors[0]


def test_replay_of_garbage_is_a_one_line_error(tmp_path):
    bad = tmp_path / "garbage.xdf"
    bad.write_bytes(b"this is not an xdf file at all" * 10)
    line = _one_line_error(run_cli("replay", str(bad), "--out", str(tmp_path / "o")), bad)
    assert "not an XDF file" in line


def test_replay_of_a_missing_file_is_a_one_line_error(tmp_path):
    _one_line_error(run_cli("replay", str(tmp_path / "nope.xdf")), tmp_path / "nope.xdf")


@pytest.mark.realdata
def test_replay_of_a_truncated_file_replays_the_good_part_then_errors(shared_data, tmp_path):
    data = (shared_data / "xdf_examples" / "clock_resets.xdf").read_bytes()
    bad = tmp_path / "truncated.xdf"
    bad.write_bytes(data[: len(data) // 2])
    events_out = tmp_path / "ev.jsonl"
    r = run_cli("replay", str(bad), "--events-out", str(events_out), "--out", str(tmp_path / "o"))
    line = _one_line_error(r, bad)
    assert "truncated" in line and "byte" in line
    assert r.returncode == 1
    assert any(json.loads(x)["type"] == "marker" for x in events_out.read_text().splitlines())


def test_every_command_has_help_with_an_example():
    for args in ([], ["demo"], ["replay"]):
        r = run_cli(*args, "--help")
        assert r.returncode == 0 and "engage" in r.stdout
        if args:
            assert "example" in r.stdout


def test_bad_arguments_are_clear(tmp_path):
    r = run_cli("demo", "--minutes", "-1", "--out", str(tmp_path))
    assert r.returncode == 2 and "--minutes must be positive" in r.stderr and "Traceback" not in r.stderr


def test_session_log_merges_streams_of_one_kind_with_different_layouts():
    import numpy as np

    from engage.core import Chunk, StreamInfo
    from engage.session import SessionLog

    log = SessionLog()
    ecg_hr = StreamInfo("hr-ecg", "HeartRate", ("hr_bpm", "rr_s", "quality", "ectopic"), ("", "", "", ""), 0.0, "a")
    cam_hr = StreamInfo("hr-cam", "HeartRate", ("hr_bpm", "rr_s", "quality"), ("", "", ""), 0.0, "b")
    log.process(Chunk.from_rows(ecg_hr, [[60, 1, 1, 0], [62, 0.97, 1, 0]], [1.0, 3.0]))
    log.process(Chunk.from_rows(cam_hr, [[70, 0.86, 0.5]], [2.0]))
    t, hr = log.array("HeartRate", "hr_bpm")
    assert t.tolist() == [1.0, 2.0, 3.0] and hr.tolist() == [60, 70, 62]
    assert log.array("HeartRate", "ectopic")[1].tolist() == [0, 0]
    assert len(log.array("EDAFeatures", "tonic_us")[0]) == 0
    assert np.isfinite(hr).all()


def test_logging_set_up_by_an_in_process_main_follows_sys_stderr(monkeypatch, capsys):
    """main() called in-process (as tests do) left a handler on the sys.stderr of that moment; once its caller closed
    that stream, every later log line was "--- Logging error --- ValueError: I/O operation on closed file"."""
    import io
    import logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        first = io.StringIO()
        monkeypatch.setattr(sys, "stderr", first)
        assert main(["--log-level", "warning"]) == 2  # no command: help, after setting up logging
        first.close()
        second = io.StringIO()
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("engage.test").warning("logged after the first stream was closed")
        assert "WARNING engage.test: logged after the first stream was closed" in second.getvalue()
        assert "Logging error" not in second.getvalue()
    finally:
        root.handlers[:], root.level = saved
    capsys.readouterr()
