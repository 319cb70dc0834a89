"""Benchmark: how long ``engage report`` takes, for a session recorded by engage and for raw recordings.

Records a simulated closed-loop session (SimulatedViewer + story + RecorderSink, ``--minutes`` long) to a
temporary XDF, then times the report on it (read directly), on its raw streams only (replayed through
the pipeline), and on the shared LabRecorder file ``xdf_examples/clock_resets.xdf`` when present.
Prints seconds per report, × real time and the HTML size; the last line is one JSON object.

    python benchmarks/report.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def record(path: Path, minutes: float, raw_only: Path) -> float:
    from engage.core import VirtualClock
    from engage.narrative.story import default_story_path, load_story
    from engage.record import RecorderSink, XdfRecorder
    from engage.sensors.simulated import SimulatedViewer
    from engage.session import Session

    sinks = [RecorderSink(XdfRecorder(path)), RecorderSink(XdfRecorder(raw_only), types=("ECG", "EDA", "Face"),
                                                           events=False)]
    Session([SimulatedViewer(seed=0)], VirtualClock(0.0), story=load_story(default_story_path()),
            extra_processors=sinks).run(duration=minutes * 60)
    return minutes * 60


def time_report(xdf: Path, out: Path) -> dict:
    from engage.report import build_report

    t0 = time.perf_counter()
    r = build_report(xdf, out)
    took = time.perf_counter() - t0
    span = r.data.end - r.data.origin
    return {"file": xdf.name, "mode": r.data.mode, "seconds": round(took, 2), "recording_s": round(span, 1),
            "x_real_time": round(span / took, 1), "html_kb": round(r.html.stat().st_size / 1024, 1),
            "pngs": len(r.pngs), "events": len(r.data.events), "gaps": len(r.data.gaps)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the recorded session (default: 10)")
    args = ap.parse_args()
    from engage.core.testing import test_data_dir

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        t0 = time.perf_counter()
        record(d / "session.xdf", args.minutes, d / "raw.xdf")
        print(f"recorded a {args.minutes:g} min simulated session in {time.perf_counter() - t0:.1f} s")
        files = [d / "session.xdf", d / "raw.xdf"]
        data = test_data_dir()
        if data is not None and (data / "xdf_examples" / "clock_resets.xdf").exists():
            files.append(data / "xdf_examples" / "clock_resets.xdf")
        for i, f in enumerate(files):
            r = time_report(f, d / f"report-{i}.html")
            results.append(r)
            print(f"  {r['file']:<18} {r['mode']:<9} {r['seconds']:6.2f} s  ({r['x_real_time']:.0f}x real time of "
                  f"{r['recording_s'] / 60:.1f} min)  html {r['html_kb']:.0f} kB, {r['pngs']} plots, "
                  f"{r['events']} events, {r['gaps']} gaps")
    print(json.dumps({"benchmark": "report", "minutes": args.minutes, "reports": results}))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
