"""Benchmark: replay one hour of a 3-modality recording, against NeuroKit2's offline processing.

Builds the recording deterministically (the simulated viewer, seed ``--seed``, no story: ECG
250 Hz, EDA 16 Hz, face features 30 Hz), then, each in a fresh process so that none inherits
another's memory or imports:

- replays it through the whole pipeline as ``engage replay --no-story`` and a dataset study do
  (every signal processor, feature windows, baseline, rule model, state machine, events written
  as JSON lines; the replay step, ``engage.session.REPLAY_STEP_S``, or ``$ENGAGE_REPLAY_STEP``);
- replays it as ``engage replay`` does, with the built-in story's controller (0.1-s steps: scenes
  change at the controller's ticks);
- runs NeuroKit2's offline ``ecg_process`` and ``eda_process`` on the same ECG and EDA.

It prints each replay's CPU seconds and × real time per CPU-second, its peak RSS, NeuroKit2's CPU
seconds and the ratio engage / NeuroKit2 (all CPU time, ``time.process_time``: the machine is
shared), and a digest of the set of events (and with ``--digest`` of every derived stream, row by
row: the same whatever the chunking), so a change meant to leave results alone can show that it
did. ``--profile FILE`` writes a cProfile of each replay (FILE.sensing, FILE.story). The last line
is one JSON object.

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


def child_replay(path: Path, meta: dict, out: Path, mode: str, digest: bool, profile: str | None) -> dict:
    """``story``: as ``engage replay`` (the built-in story's controller, 0.1-s steps); ``sensing``: as ``engage
    replay --no-story`` and a dataset study (no controller, the replay step)."""
    import json as _json

    from engage.core import VirtualClock
    from engage.narrative.story import default_story_path, load_story
    from engage.session import REPLAY_STEP_S, Session

    cpu0 = time.process_time()
    source = _source(path, meta)
    story = load_story(default_story_path()) if mode == "story" else None
    observers = [_digest()] if digest else []
    step = 0.1 if story is not None else float(os.environ.get("ENGAGE_REPLAY_STEP", REPLAY_STEP_S))
    session = Session([source], VirtualClock(source.start_time()), story=story, events_out=out / "events.jsonl",
                      scenes_out=out / "scenes.jsonl" if story else None, observers=observers, step=step)
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
    lines = (out / "events.jsonl").read_text().splitlines()
    # the set of events: with another step, events of different streams interleave differently
    events = "\n".join(sorted(_json.dumps(_json.loads(e), sort_keys=True) for e in lines)).encode()
    scenes = out / "scenes.jsonl"
    return {"session_s": result.stats.duration, "replay_cpu_s": cpu2 - cpu1, "setup_cpu_s": cpu1 - cpu0,
            "step_s": step, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_run_mb": rss_before / 1024, "events": len(lines),
            "events_sha256": hashlib.sha256(events).hexdigest()[:16],
            "scenes_sha256": hashlib.sha256(scenes.read_bytes()).hexdigest()[:16] if scenes.exists() else "",
            "streams_sha256": {k: h.hexdigest()[:16] for k, h in sorted(observers[0].hashes.items())} if digest else {}}


def child_neurokit(path: Path) -> dict:
    import warnings

    import neurokit2 as nk

    arrays = np.load(path)
    ecg, eda = arrays["ECG_x"][:, 0], arrays["EDA_x"][:, 0]
    fs = int(RATES["ECG"])
    cpu = [time.process_time()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nk.ecg_process(ecg, sampling_rate=fs)
        cpu.append(time.process_time())
        nk.eda_process(eda, sampling_rate=int(RATES["EDA"]))
        cpu.append(time.process_time())
        # the parts of ecg_process, to see what its time goes to: beats, then signal quality (delineation: the rest)
        clean = nk.ecg_clean(ecg, sampling_rate=fs)
        _, info = nk.ecg_peaks(clean, sampling_rate=fs)
        nk.ecg_rate(info["ECG_R_Peaks"], sampling_rate=fs, desired_length=len(ecg))
        cpu.append(time.process_time())
        nk.ecg_quality(clean, rpeaks=info["ECG_R_Peaks"], sampling_rate=fs)
        cpu.append(time.process_time())
    return {"ecg_cpu_s": cpu[1] - cpu[0], "eda_cpu_s": cpu[2] - cpu[1], "cpu_s": cpu[2] - cpu[0],
            "ecg_beats_cpu_s": cpu[3] - cpu[2], "ecg_quality_cpu_s": cpu[4] - cpu[3],
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
            res = child_replay(Path(path), json.loads(rest[0]), Path(rest[1]), rest[2], rest[3] == "1", rest[4] or None)
        else:
            res = child_neurokit(Path(path))
        print(json.dumps(res))
        return

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recording.npz"
        cpu0 = time.process_time()
        meta = build(args.minutes, args.seed, path)
        build_cpu = time.process_time() - cpu0
        counts = ", ".join(f"{k} {m['samples']} samples at {m['rate']:g} Hz" for k, m in meta.items())
        print(f"recording: {args.minutes:g} min, seed {args.seed} ({counts}); built in {build_cpu:.1f} s CPU",
              flush=True)
        for mode in ("sensing", "story"):
            out = Path(tmp) / mode
            out.mkdir()
            profile = f"{args.profile}.{mode}" if args.profile else ""
            results[mode] = _run_child("--child", "replay", str(path), json.dumps(meta), str(out), mode,
                                       "1" if args.digest else "0", profile)
        nk, nk_total = ({"cpu_s": np.nan, "ecg_cpu_s": np.nan, "eda_cpu_s": np.nan, "ecg_beats_cpu_s": np.nan,
                         "ecg_quality_cpu_s": np.nan}, np.nan) if args.no_neurokit \
            else _run_child("--child", "neurokit", str(path))
    summary = {"benchmark": "replay_hour", "minutes": args.minutes, "seed": args.seed,
               "neurokit_cpu_s": round(nk["cpu_s"], 3), "neurokit_ecg_process_cpu_s": round(nk["ecg_cpu_s"], 3),
               "neurokit_eda_process_cpu_s": round(nk["eda_cpu_s"], 3),
               "neurokit_ecg_beats_cpu_s": round(nk["ecg_beats_cpu_s"], 3),
               "neurokit_ecg_quality_cpu_s": round(nk["ecg_quality_cpu_s"], 3)}
    for mode, (rep, total) in results.items():
        x_cpu = rep["session_s"] / rep["replay_cpu_s"]
        what = ("engage replay --no-story (and dataset studies)" if mode == "sensing"
                else "engage replay with the built-in story")
        print(f"{what}, {rep['step_s']:g}-s steps: {rep['session_s']:.0f} s of session in {rep['replay_cpu_s']:.2f} s CPU "
              f"= {x_cpu:.0f}x real time per CPU-second, {rep['replay_cpu_s'] / nk['cpu_s']:.2f}x NeuroKit2's CPU; "
              f"peak RSS {rep['peak_rss_mb']:.0f} MB ({rep['rss_before_run_mb']:.0f} MB before the run); whole process "
              f"{total:.2f} s CPU with imports; {rep['events']} events (set sha256 {rep['events_sha256']}"
              + (f", scenes {rep['scenes_sha256']})" if rep["scenes_sha256"] else ")"))
        for k, v in rep["streams_sha256"].items():
            print(f"    {k:<52} {v}")
        summary[mode] = {"step_s": rep["step_s"], "session_s": rep["session_s"],
                         "replay_cpu_s": round(rep["replay_cpu_s"], 3), "x_realtime_per_cpu_s": round(x_cpu, 1),
                         "engage_over_neurokit": round(rep["replay_cpu_s"] / nk["cpu_s"], 3),
                         "peak_rss_mb": round(rep["peak_rss_mb"], 1), "process_cpu_s": round(total, 3),
                         "events": rep["events"], "events_sha256": rep["events_sha256"],
                         "scenes_sha256": rep["scenes_sha256"], "streams_sha256": rep["streams_sha256"]}
    print(f"NeuroKit2 offline on the same ECG and EDA: ecg_process {nk['ecg_cpu_s']:.2f} s + eda_process "
          f"{nk['eda_cpu_s']:.2f} s = {nk['cpu_s']:.2f} s CPU (whole process {nk_total:.2f} s); of ecg_process, "
          f"clean+peaks+rate {nk['ecg_beats_cpu_s']:.2f} s, ecg_quality {nk['ecg_quality_cpu_s']:.2f} s, "
          f"delineation the rest")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
