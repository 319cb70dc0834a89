"""Benchmark: the whole closed loop (simulated viewer → signals → models → events → controller).

Prints how many times faster than real time a session runs on the virtual clock, and the cost of
each processing step per session second; the last line is one JSON object.

    python benchmarks/pipeline.py [--minutes 10] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

from engage.core import VirtualClock
from engage.narrative.story import default_story_path, load_story
from engage.sensors.simulated import SimulatedViewer
from engage.session import Session


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    session = Session([SimulatedViewer(seed=args.seed)], VirtualClock(0.0), story=load_story(default_story_path()))
    spent: dict[str, float] = defaultdict(float)
    for p in session.runtime.processors:  # time each step without changing it
        for name in ("process", "tick"):
            original = getattr(p, name)

            def timed(arg, _f=original, _n=p.name):
                t0 = time.perf_counter()
                try:
                    return _f(arg)
                finally:
                    spent[_n] += time.perf_counter() - t0

            setattr(p, name, timed)
    wall = time.perf_counter()
    result = session.run(duration=args.minutes * 60)
    wall = time.perf_counter() - wall
    session_s = result.stats.duration
    steps = {k: round(1e3 * v / session_s, 3) for k, v in sorted(spent.items(), key=lambda kv: -kv[1])}
    print(f"{session_s:.0f} s of session in {wall:.2f} s wall: {session_s / wall:.0f}x real time")
    for name, ms in steps.items():
        print(f"  {name:<16} {ms:8.3f} ms per session second")
    print(json.dumps({"benchmark": "pipeline", "session_s": session_s, "wall_s": round(wall, 3),
                      "x_realtime": round(session_s / wall, 1), "samples": result.stats.samples,
                      "ms_per_session_s": steps}))


if __name__ == "__main__":
    main()
