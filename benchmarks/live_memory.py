"""Benchmark: memory of a long live session - does it stay flat?

Runs ``engage live --profile simulated --speed 0 --duration S --no-story`` (4 hours of session by
default, as fast as the machine allows; the built-in story would end the session after its last
scene) and samples, twice a second, the process's resident memory (``VmRSS``) and how far the
session has got (the timestamp of the last event written to ``events.jsonl``, which is flushed line
by line). Prints the RSS at 10 minutes and at the end, the peak, and the slope of a least-squares
line through the samples after the first 10 minutes, in MB per session hour (the goal: <= 5). The
last line is one JSON object.

    python benchmarks/live_memory.py [--hours 4] [--story] [-- extra engage live options]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _proc import cpu_s, rss_mb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=4.0, help="session length (default: 4)")
    ap.add_argument("--story", action="store_true", help="keep the built-in story (the session ends with it)")
    ap.add_argument("extra", nargs="*", help="more engage live options (after --)")
    args = ap.parse_args()
    duration = args.hours * 3600
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "engage", "live", "--profile", "simulated", "--speed", "0", "--duration",
               f"{duration:g}", "--quiet", "--out", str(out), *([] if args.story else ["--no-story"]), *args.extra]
        print(" ".join(["engage", *cmd[3:]]), flush=True)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples: list[tuple[float, float]] = []  # (session seconds, RSS MB)
        first: float | None = None
        last = 0.0
        peak = 0.0
        pos = 0
        events = out / "events.jsonl"
        cpu = None
        while proc.poll() is None:
            time.sleep(0.5)
            rss = rss_mb(proc.pid)
            cpu = cpu_s(proc.pid) or cpu
            if rss is None:
                continue
            peak = max(peak, rss)
            if events.exists():
                with open(events, "rb") as f:
                    f.seek(pos)
                    chunk = f.read()
                end = chunk.rfind(b"\n") + 1
                pos += end
                for line in chunk[:end].splitlines():
                    t = json.loads(line)["timestamp"]
                    first = t if first is None else min(first, t)
                    last = max(last, t - first)
            if first is not None:
                samples.append((last, rss))
        stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"engage live failed ({proc.returncode}):\n{stderr[-3000:]}")
    s = np.array(samples)
    # once the session has ended the process draws its plot (matplotlib): those samples, taken after the session
    # time stopped advancing for good, are not the session's
    s = s[:int(np.searchsorted(s[:, 0], s[-1, 0], side="left")) + 1]
    after = s[s[:, 0] >= 600.0]
    for h in np.arange(0.25, s[-1, 0] / 3600, 0.25):
        k = min(len(s) - 1, int(np.searchsorted(s[:, 0], h * 3600)))
        print(f"  {s[k, 0] / 3600:5.2f} h of session: RSS {s[k, 1]:.1f} MB")
    slope = float(np.polyfit(after[:, 0] / 3600, after[:, 1], 1)[0]) if len(after) > 2 else float("nan")
    at10 = float(after[0, 1]) if len(after) else float("nan")
    summary = [line.strip() for line in stdout.splitlines() if "of session" in line]
    print(f"{summary[-1] if summary else ''}; {cpu:.1f} s CPU")
    print(f"RSS {at10:.1f} MB at 10 min of session, {s[-1, 1]:.1f} MB at {s[-1, 0] / 3600:.2f} h, peak {peak:.1f} MB; "
          f"slope after 10 min: {slope:+.2f} MB per session hour ({len(after)} samples)")
    print(json.dumps({"benchmark": "live_memory", "hours": args.hours, "story": args.story,
                      "session_s_seen": round(float(s[-1, 0]), 1), "cpu_s": cpu, "rss_10min_mb": round(at10, 1),
                      "rss_end_mb": round(float(s[-1, 1]), 1), "peak_rss_mb": round(peak, 1),
                      "slope_mb_per_hour": round(slope, 2)}))


if __name__ == "__main__":
    main()
