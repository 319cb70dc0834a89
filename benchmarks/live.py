"""Benchmark: ``engage live`` with the simulated profile, and profile loading.

Runs ``engage live --profile simulated --speed 0 --record`` to the end of a story (the sample ink
story by default) and prints how many times faster than real time the whole live path ran
(sensors opened from the profile, pipeline, controller, XDF recorder), the recording's size and
rate, how long a ``pyxdf`` read-back of it takes, and the time to load and validate every
built-in profile. The last line is one JSON object.

    python benchmarks/live.py [--story FILE] [--seed S]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import tempfile
import time
from pathlib import Path


def main() -> None:
    from engage.cli import main as engage
    from engage.narrative.ink import sample_ink_path
    from engage.sensors.profiles import builtin_profiles, load_profile

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--story", default=str(sample_ink_path()))
    args = ap.parse_args()

    names = builtin_profiles()
    reps = 50
    t0 = time.perf_counter()
    for _ in range(reps):
        for name in names:
            load_profile(name)
    load_ms = 1e3 * (time.perf_counter() - t0) / (reps * len(names))

    with tempfile.TemporaryDirectory() as tmp:
        xdf = Path(tmp) / "live.xdf"
        out = io.StringIO()
        wall = time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            rc = engage(["live", "--profile", "simulated", "--speed", "0", "--story", args.story, "--record", str(xdf),
                         "--out", str(Path(tmp) / "files"), "--quiet"])
        wall = time.perf_counter() - wall
        if rc != 0:
            raise SystemExit(f"engage live failed ({rc}):\n{out.getvalue()}")
        text = out.getvalue()
        m = re.search(r"after ([0-9.]+) s of session \(([0-9.]+) s wall\)", text)
        session_s, run_wall = float(m.group(1)), float(m.group(2))
        samples = int(re.search(r"recorded (\d+) samples", text).group(1))
        size = xdf.stat().st_size
        import pyxdf

        t1 = time.perf_counter()
        streams, _ = pyxdf.load_xdf(str(xdf))
        read_s = time.perf_counter() - t1

    print(f"engage live --profile simulated --speed 0: {session_s:.0f} s of session (story to its end) in "
          f"{run_wall:.1f} s wall = {session_s / run_wall:.0f}x real time while running; {wall:.1f} s "
          f"({session_s / wall:.0f}x) with imports, sensor start-up, JIT compilation and the plot")
    print(f"  recorded {samples} samples in {len(streams)} streams, {size / 1e6:.2f} MB "
          f"({size / session_s / 1e3:.1f} kB per session second); pyxdf reads it back in {read_s:.2f} s")
    print(f"  loading + validating a built-in profile: {load_ms:.2f} ms ({len(names)} profiles)")
    print(json.dumps({"benchmark": "live", "session_s": session_s, "run_wall_s": run_wall,
                      "x_realtime": round(session_s / run_wall, 1), "total_wall_s": round(wall, 2),
                      "x_realtime_total": round(session_s / wall, 1), "recorded_samples": samples,
                      "streams": len(streams), "xdf_bytes": size, "pyxdf_read_s": round(read_s, 3),
                      "profile_load_ms": round(load_ms, 3)}))


if __name__ == "__main__":
    main()
