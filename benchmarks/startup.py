"""Benchmark: start-up CPU of ``engage --help`` and of ``engage demo --minutes 1`` before its first step.

Each command runs in a fresh process (``--repeat`` times; the median is printed, with the minimum):

- ``engage --help``: the whole process's CPU (the goal: <= 0.3 s);
- ``engage demo --minutes 1``: the CPU spent before the runtime's first step (imports, story, simulated viewer,
  pipeline; the goal: <= 1 s), the first step (which loads what the first chunks need: SciPy's filter design,
  the compiled kernels), and the whole run (with the end plot);
- for scale, a bare ``python -c pass`` and ``import numpy``, ``import scipy.signal``, ``import neurokit2``.

Then ``python -X importtime`` of the demo lists the slowest imports that are still made before the first
step. The last line is one JSON object.

    python benchmarks/startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile

PROBE = r"""
import sys, time
import engage.core.runtime as rt
first = {}
step = rt.Runtime._step
def _step(self, now):
    if not first:
        first["before"] = time.process_time()
        try:
            return step(self, now)
        finally:
            first["after"] = time.process_time()
    return step(self, now)
rt.Runtime._step = _step
from engage.cli import main
code = main(sys.argv[1:])
print("PROBE", first["before"], first["after"] - first["before"], file=sys.stderr)
sys.exit(code)
"""


def _child(args: list[str], importtime: bool = False) -> tuple[float, str]:
    """Run ``python [args]`` in a fresh process: its CPU seconds and its stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc.stderr


def _stats(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        demo = ["-c", PROBE, "demo", "--minutes", "1", "--quiet", "--out", tmp]
        _child(demo)  # compiled kernels cached, files warm
        results: dict[str, list[float]] = {k: [] for k in ("python", "numpy", "scipy.signal", "neurokit2", "help",
                                                            "demo_before_first_step", "demo_first_step", "demo")}
        for _ in range(args.repeat):
            results["python"].append(_child(["-c", "pass"])[0])
            for module in ("numpy", "scipy.signal", "neurokit2"):
                results[module].append(_child(["-c", f"import {module}"])[0])
            results["help"].append(_child(["-m", "engage", "--help"])[0])
            total, err = _child(demo)
            before, first = map(float, re.search(r"PROBE (\S+) (\S+)", err).groups())
            results["demo"].append(total)
            results["demo_before_first_step"].append(before)
            results["demo_first_step"].append(first)
        _, err = _child(demo, importtime=True)
    # the imports made before the first step: those logged before the first one the first step triggers
    lines = [line for line in err.splitlines() if line.startswith("import time:")]
    cut = next((i for i, line in enumerate(lines) if line.rstrip().endswith(" scipy.signal")), len(lines))
    top = sorted(((int(m.group(1)), m.group(2).strip()) for m in
                  (re.match(r"import time:\s+\d+ \|\s+(\d+) \|(.*)", line) for line in lines[:cut])
                  if m and not m.group(2).startswith("  ")), reverse=True)[:8]
    s = {k: _stats(v) for k, v in results.items()}
    print(f"CPU seconds, median of {args.repeat} fresh processes (min):")
    print(f"  engage --help                       {s['help']['median']:.3f} ({s['help']['min']:.3f})   goal <= 0.3")
    print(f"  engage demo --minutes 1: before the first step {s['demo_before_first_step']['median']:.3f} "
          f"({s['demo_before_first_step']['min']:.3f})   goal <= 1; first step "
          f"{s['demo_first_step']['median']:.3f}; whole run {s['demo']['median']:.3f}")
    print(f"  for scale: python -c pass {s['python']['median']:.3f}, import numpy {s['numpy']['median']:.3f}, "
          f"import scipy.signal {s['scipy.signal']['median']:.3f}, import neurokit2 {s['neurokit2']['median']:.3f}")
    print("  slowest top-level imports before the demo's first step (python -X importtime, cumulative ms):")
    for us, name in top:
        print(f"    {us / 1000:8.1f}  {name}")
    print(json.dumps({"benchmark": "startup", "repeat": args.repeat, "cpu_s": s,
                      "imports_before_first_step_ms": {name: round(us / 1000, 1) for us, name in top}}))


if __name__ == "__main__":
    main()
