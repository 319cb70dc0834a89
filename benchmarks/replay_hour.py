"""Benchmark: replay one hour of a 3-modality recording, against NeuroKit2's offline processing.

Builds the recording deterministically (the simulated viewer, seed ``--seed``, no story: ECG
250 Hz, EDA 16 Hz, face features 30 Hz), then, each in a fresh process so that neither inherits
the other's memory or imports:

- replays it through the whole pipeline exactly as ``engage replay`` does (every signal
  processor, feature windows, baseline, rule model, state machine, the built-in story's
  controller, events written as JSON lines), on the virtual clock;
- runs NeuroKit2's offline ``ecg_process`` and ``eda_process`` on the same ECG and EDA.

It prints the replay's CPU seconds and × real time per CPU-second, its peak RSS, NeuroKit2's CPU
seconds and the ratio engage / NeuroKit2 (all CPU time, ``time.process_time``: the machine is
shared), and a digest of the events (and with ``--digest`` of every derived stream), so a change
meant to leave results alone can show that it did. ``--profile FILE`` writes a cProfile of the
replay. The last line is one JSON object.

    python benchmarks/replay_hour.py [--minutes 60] [--seed 1] [--digest] [--profile replay.prof]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RATES = {"ECG": 250.0, "EDA": 16.0, "Face": 30.0}


def build(minutes: float, seed: int, path: Path) -> dict:
    """The recording: every stream of the simulated viewer over ``minutes``, saved as ``.npz``."""
    from engage.sensors.simulated import SimulatedViewer

    viewer = SimulatedViewer(seed=seed, ecg_rate=RATES["ECG"], eda_rate=RATES["EDA"], face_rate=RATES["Face"])
    parts: dict[str, list] = {}
    infos = {}
    t = 0.0
    while t < minutes * 60:
        t = min(minutes * 60, t + 10.0)
        for c in viewer.read(t):
            parts.setdefault(c.info.type, []).append((c.timestamps, c.data))
            infos[c.info.type] = c.info
    arrays = {}
    for kind, p in parts.items():
        arrays[f"{kind}_t"] = np.concatenate([a for a, _ in p])
        arrays[f"{kind}_x"] = np.vstack([b for _, b in p])
    np.savez(path, **arrays)
    return {kind: {"name": i.name, "channels": list(i.channels), "units": list(i.units), "rate": i.nominal_rate,
                   "source_id": i.source_id, "samples": int(arrays[f"{kind}_t"].size)} for kind, i in infos.items()}


def _source(path: Path, meta: dict):
    from engage.core import StreamInfo
    from engage.sensors.replay import RecordingSource

    arrays = np.load(path)
    src = RecordingSource("viewer-1")
    for kind, m in meta.items():
        info = StreamInfo(m["name"], kind, tuple(m["channels"]), tuple(m["units"]), m["rate"], m["source_id"])
        src.add_track(info, arrays[f"{kind}_x"], arrays[f"{kind}_t"])
    return src


def _digest():
    from engage.core import Processor

    class Digest(Processor):
        """An observer hashing every derived chunk, per stream (data, timestamps), whatever the chunking."""

        name = "digest"

        def __init__(self) -> None:
            self.hashes: dict[str, "hashlib._Hash"] = {}

        def accepts(self, info) -> bool:
            return info.type not in RATES

        def process(self, chunk):
            h = self.hashes.setdefault(f"{chunk.info.type}/{chunk.info.source_id}", hashlib.sha256())
            for row_t, row in zip(chunk.timestamps, chunk.data):  # row by row: the same hash whatever the chunking
                h.update(np.float64(row_t).tobytes())
                h.update(np.ascontiguousarray(row, dtype=np.float64).tobytes())
            return []

        def on_event(self, event) -> None:
            pass

        def on_plan(self, plan) -> None:
            pass

    return Digest()


def child_replay(path: Path, meta: dict, out: Path, digest: bool, profile: str | None) -> dict:
    from engage.core import VirtualClock
    from engage.narrative.story import default_story_path, load_story
    from engage.session import Session

    cpu0 = time.process_time()
    source = _source(path, meta)
    story = load_story(default_story_path())
    observers = [_digest()] if digest else []
    session = Session([source], VirtualClock(source.start_time()), story=story, events_out=out / "events.jsonl",
                      scenes_out=out / "scenes.jsonl", observers=observers)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu1 = time.process_time()
    if profile:
        import cProfile

        prof = cProfile.Profile()
        result = prof.runcall(session.run)
        prof.dump_stats(profile)
    else:
        result = session.run()
    cpu2 = time.process_time()
    events = (out / "events.jsonl").read_bytes()
    return {"session_s": result.stats.duration, "replay_cpu_s": cpu2 - cpu1, "setup_cpu_s": cpu1 - cpu0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_run_mb": rss_before / 1024, "events": events.count(b"\n"),
            "events_sha256": hashlib.sha256(events).hexdigest()[:16],
            "scenes_sha256": hashlib.sha256((out / "scenes.jsonl").read_bytes()).hexdigest()[:16],
            "streams_sha256": {k: h.hexdigest()[:16] for k, h in sorted(observers[0].hashes.items())} if digest else {}}


def child_neurokit(path: Path) -> dict:
    import warnings

    import neurokit2 as nk

    arrays = np.load(path)
    ecg, eda = arrays["ECG_x"][:, 0], arrays["EDA_x"][:, 0]
    cpu0 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nk.ecg_process(ecg, sampling_rate=int(RATES["ECG"]))
        cpu1 = time.process_time()
        nk.eda_process(eda, sampling_rate=int(RATES["EDA"]))
    cpu2 = time.process_time()
    return {"ecg_cpu_s": cpu1 - cpu0, "eda_cpu_s": cpu2 - cpu1, "cpu_s": cpu2 - cpu0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_child(*args: str) -> tuple[dict, float]:
    """Run this script as a child; its JSON answer and the child's whole CPU (imports included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{proc.stderr}")
    total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(proc.stdout.strip().splitlines()[-1]), total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0, help="recording length (default: 60)")
    ap.add_argument("--seed", type=int, default=1, help="the simulated viewer's seed (default: 1)")
    ap.add_argument("--digest", action="store_true", help="also hash every derived stream (slower)")
    ap.add_argument("--profile", help="write a cProfile of the replay to this file")
    ap.add_argument("--no-neurokit", action="store_true", help="skip NeuroKit2 (quick checks of a change)")
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, path, *rest = args.child
        if kind == "replay":
            res = child_replay(Path(path), json.loads(rest[0]), Path(rest[1]), rest[2] == "1", rest[3] or None)
        else:
            res = child_neurokit(Path(path))
        print(json.dumps(res))
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recording.npz"
        cpu0 = time.process_time()
        meta = build(args.minutes, args.seed, path)
        build_cpu = time.process_time() - cpu0
        counts = ", ".join(f"{k} {m['samples']} samples at {m['rate']:g} Hz" for k, m in meta.items())
        print(f"recording: {args.minutes:g} min, seed {args.seed} ({counts}); built in {build_cpu:.1f} s CPU",
              flush=True)
        out = Path(tmp) / "out"
        out.mkdir()
        rep, rep_total = _run_child("--child", "replay", str(path), json.dumps(meta), str(out),
                                    "1" if args.digest else "0", args.profile or "")
        nk, nk_total = ({"cpu_s": np.nan, "ecg_cpu_s": np.nan, "eda_cpu_s": np.nan}, np.nan) if args.no_neurokit \
            else _run_child("--child", "neurokit", str(path))
    x_cpu = rep["session_s"] / rep["replay_cpu_s"]
    ratio = rep["replay_cpu_s"] / nk["cpu_s"]
    print(f"engage replay: {rep['session_s']:.0f} s of session in {rep['replay_cpu_s']:.2f} s CPU = "
          f"{x_cpu:.0f}x real time per CPU-second; peak RSS {rep['peak_rss_mb']:.0f} MB "
          f"({rep['rss_before_run_mb']:.0f} MB before the run); set-up {rep['setup_cpu_s']:.2f} s CPU, whole process "
          f"{rep_total:.2f} s CPU with imports; {rep['events']} events (sha256 {rep['events_sha256']}, "
          f"scenes {rep['scenes_sha256']})")
    print(f"NeuroKit2 offline: ecg_process {nk['ecg_cpu_s']:.2f} s + eda_process {nk['eda_cpu_s']:.2f} s = "
          f"{nk['cpu_s']:.2f} s CPU (whole process {nk_total:.2f} s); engage / NeuroKit2 = {ratio:.2f}")
    for k, v in rep["streams_sha256"].items():
        print(f"  {k:<48} {v}")
    print(json.dumps({"benchmark": "replay_hour", "minutes": args.minutes, "seed": args.seed,
                      "session_s": rep["session_s"], "replay_cpu_s": round(rep["replay_cpu_s"], 3),
                      "x_realtime_per_cpu_s": round(x_cpu, 1), "peak_rss_mb": round(rep["peak_rss_mb"], 1),
                      "process_cpu_s": round(rep_total, 3), "neurokit_cpu_s": round(nk["cpu_s"], 3),
                      "neurokit_ecg_cpu_s": round(nk["ecg_cpu_s"], 3), "neurokit_eda_cpu_s": round(nk["eda_cpu_s"], 3),
                      "engage_over_neurokit": round(ratio, 3), "events": rep["events"],
                      "events_sha256": rep["events_sha256"], "scenes_sha256": rep["scenes_sha256"],
                      "streams_sha256": rep["streams_sha256"]}))


if __name__ == "__main__":
    main()
