"""Progress of long work when nobody watches a terminal: lines, not silence (a 30-minute
``engage story compare`` in a batch job printed nothing)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

from engage.core.progress import Progress


def test_off_a_terminal_progress_is_a_line_every_few_seconds_and_one_at_the_end(monkeypatch):
    monkeypatch.setenv("ENGAGE_PROGRESS_EVERY_S", "0")
    out = io.StringIO()
    with Progress(4, "compare", "run", file=out) as bar:
        for _ in range(4):
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("compare: 1/4 runs, 0:00 elapsed, about 0:00 left")
    assert lines[-1] == "compare: 4/4 runs, 0:00 elapsed"
    assert len(lines) == 5  # each update, and the end


def test_quiet_between_lines_and_silent_when_nothing_was_done(monkeypatch):
    monkeypatch.delenv("ENGAGE_PROGRESS_EVERY_S", raising=False)
    out = io.StringIO()
    with Progress(1000, "detecting", "sample", file=out) as bar:
        for _ in range(1000):
            bar.update(1)
    assert out.getvalue().splitlines() == ["detecting: 1000/1000 samples, 0:00 elapsed"]
    empty = io.StringIO()
    Progress(10, "nothing", file=empty).close()
    assert empty.getvalue() == ""


def test_a_replay_off_a_terminal_says_how_far_it_has_got(tmp_path):
    """engage demo (a replay of a simulated session) in a subprocess whose stderr is a pipe."""
    env = {**os.environ, "ENGAGE_PROGRESS_EVERY_S": "0.05"}
    run = subprocess.run([sys.executable, "-m", "engage", "demo", "--minutes", "1", "--quiet", "--out", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = re.findall(r"^demo: (\d+)/60 s of session, \d+:\d\d elapsed", run.stderr, flags=re.M)
    assert lines and int(lines[-1]) == 60, run.stderr[-2000:]
