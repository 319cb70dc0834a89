"""liblsl's own log lines go through Python logging at the level the user sets (issue 18: they interleaved with the
timeline on stderr, in loguru's format, whatever --log-level said)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from engage.sensors.liblsl_log import _without_log_section, liblsl_verbosity, parse_line

pylsl = pytest.importorskip("pylsl")
pytestmark = pytest.mark.lsl

ROOT = Path(__file__).resolve().parents[1]
#: A line liblsl writes to stderr itself (loguru's format).
RAW = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \(.*\) \[.*\]\s+\S+:\d+\s+\S+\|", re.M)


def test_liblsl_lines_and_levels_are_understood():
    line = ("2026-12-06 10:39:16.736 (   2.055s) [R_x             ]      data_receiver.cpp:375    ERR| Stream "
            "transmission broke off (Input stream error.); re-connecting...")
    assert parse_line(line) == (logging.ERROR, "Stream transmission broke off (Input stream error.); re-connecting...",
                                "data_receiver.cpp:375", "R_x")
    assert parse_line("2026-12-06 10:39:15.040 (   0.359s) [        8486DB80]      netinterfaces.cpp:89       1| netif "
                      "'lo'")[0] == logging.DEBUG
    assert parse_line("File verbosity level: -1") is None and parse_line("") is None
    assert [liblsl_verbosity(v) for v in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)] == [9, 0, -1, -2]


def test_a_warning_said_again_is_logged_at_debug(caplog):
    from engage.sensors.liblsl_log import _emit

    message = f"Couldn't create multicast responder ({uuid.uuid4().hex})"
    with caplog.at_level(logging.DEBUG, logger="liblsl"):
        for _ in range(3):
            _emit(logging.WARNING, message, "stream_outlet_impl.cpp:103", "main")
        _emit(logging.WARNING, message, "stream_outlet_impl.cpp:103", "IO_other")  # another thread: said
        _emit(logging.ERROR, "broke off", "data_receiver.cpp:375", "R_x")
        _emit(logging.ERROR, "broke off", "data_receiver.cpp:375", "R_x")  # errors always
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.DEBUG, logging.DEBUG, logging.WARNING,
                                                   logging.ERROR, logging.ERROR]


def test_a_users_lsl_api_cfg_is_kept_but_for_its_log_section():
    text = "[ports]\nBasePort = 17000\n[log]\nlevel = 5\n[lab]\nKnownPeers = {10.0.0.2}\n"
    kept, own_file = _without_log_section(text)
    assert kept == "[ports]\nBasePort = 17000\n[lab]\nKnownPeers = {10.0.0.2}" and not own_file
    assert _without_log_section("[log]\nfile = /var/log/lsl.log\n")[1]  # a log file of their own: left alone


def _record_while_an_outlet_dies(tmp_path: Path, *log_args: str) -> tuple[subprocess.CompletedProcess, str]:
    """``engage <log_args> record`` of a stream whose outlet is destroyed mid-recording (liblsl logs an error)."""
    tag = f"pytest-{uuid.uuid4().hex[:8]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo("dies", "EEG", 1, 100, pylsl.cf_float32, f"{tag}-dies"))
    proc = subprocess.Popen([sys.executable, "-m", "engage", *log_args, "record", "-o", str(tmp_path / "r.xdf"),
                             "--lsl", f"source_id={tag}-dies", "--duration", "4", "--quiet"], cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert outlet.wait_for_consumers(30)
        for _ in range(50):
            outlet.push_sample([1.0])
            time.sleep(0.01)
        del outlet  # the stream dies under the recorder: liblsl's inlet logs that the transmission broke off
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), tag


def test_liblsl_log_lines_come_through_logging_in_engage_format(tmp_path):
    run, _ = _record_while_an_outlet_dies(tmp_path, "--log-level", "info", "--log-format", "json")
    assert run.returncode == 0, run.stderr
    assert not RAW.search(run.stderr), run.stderr  # nothing in loguru's own format on stderr
    records = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    liblsl = [r for r in records if r["logger"] == "liblsl"]
    assert any(r["level"] == "error" and "transmission broke off" in r["message"] for r in liblsl), run.stderr
    assert any(r["level"] == "info" for r in liblsl)  # --log-level info: liblsl's INFO lines too


def test_liblsl_lines_follow_the_log_level(tmp_path):
    run, _ = _record_while_an_outlet_dies(tmp_path, "--log-level", "error")
    assert run.returncode == 0, run.stderr
    assert not RAW.search(run.stderr), run.stderr
    lines = [line for line in run.stderr.splitlines() if " liblsl: " in line]
    assert lines and all(line.startswith("ERROR liblsl: ") for line in lines), run.stderr
