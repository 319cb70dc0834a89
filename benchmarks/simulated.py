"""Benchmark: the simulated viewer — its speed against NeuroKit2's simulators, and how it behaves in
closed loop.

    python benchmarks/simulated.py                       # speed and start-up (about a minute)
    python benchmarks/simulated.py --flat 12 --figure flat.png   # flat 3-min film: bored? detected?
    python benchmarks/simulated.py --demo 20 --jobs 2    # the 10-min demo story over 20 seeds

**Speed**: one hour of a simulated viewer (ECG 250 Hz, wrist EDA 16 Hz, face 30 Hz, pulse wave
64 Hz), against NeuroKit2's ``ecg_simulate`` (ECGSYN, the ECG the simulator used to copy its beats
from) plus ``eda_simulate`` and ``ppg_simulate`` for the same hour, in the same run; and the CPU of
importing each (the simulator no longer imports neurokit2).

**Flat film**: ``--flat N`` viewers of the population watch three one-minute scenes at intensity
0.2 through the whole pipeline; prints how many were bored by the end (latent boredom > 0.5), how
many got a ``boredom.onset`` and when against the moment they became bored, and false onsets in
viewers who were not. ``--figure`` draws true against sensed boredom for the first six.

**Demo**: ``--demo N`` runs ``engage demo``'s session (night train, 10 min) for seeds 0..N-1 and
prints the runs with an ``arousal.high`` in a calm stretch (scenes of intensity ≤ 0.3, from its second
minute: the first still carries the arousal of what came before), the longest run of
scenes chosen because the viewer was "overloaded", and the scene choices that answered boredom.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

FLAT_FILM = ((0.0, 0.2, "calm", "platform"), (60.0, 0.2, "calm", "waiting room"), (120.0, 0.2, "calm", "corridor"))


def _cpu(code: str) -> float:
    """CPU seconds of a fresh interpreter running ``code``."""
    out = subprocess.run([sys.executable, "-c", "import time; t = time.process_time()\n" + code
                          + "\nprint(time.process_time() - t)"], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"benchmark step failed:\n{out.stderr}")
    return float(out.stdout.strip().splitlines()[-1])


def speed(hours: float = 1.0) -> None:
    s = int(round(hours * 3600.0))
    ours = _cpu(f"""
from engage.sensors.simulated import SimulatedViewer
v = SimulatedViewer(seed=1, sensors=("ecg", "ppg", "eda", "face"))
for k in range(12):
    v.on_scene(0.2 + 0.06 * k, "t%d" % (k % 4), timestamp=300.0 * k, scene="s%d" % k)
for u in range(1, {s} + 1):
    v.read(float(u))
""")
    theirs = _cpu(f"""
import neurokit2 as nk
nk.ecg_simulate(duration={s}, sampling_rate=250, heart_rate=75, method="ecgsyn", random_state=1)
nk.eda_simulate(duration={s}, sampling_rate=16, scr_number=int({s} / 10), random_state=1)
nk.ppg_simulate(duration={s}, sampling_rate=64, heart_rate=75, random_state=1)
""")
    imp_ours = _cpu("import engage.sensors.simulated")
    imp_nk = _cpu("import neurokit2")
    print(f"{hours:g} h of one simulated viewer (ECG 250 Hz, PPG 64 Hz, EDA 16 Hz, face 30 Hz, read each second):")
    print(f"  engage SimulatedViewer          {ours:7.2f} s CPU  ({s / ours:6.0f}x real time)")
    print(f"  NeuroKit2 ecg+eda+ppg_simulate  {theirs:7.2f} s CPU  ({s / theirs:6.0f}x real time; no face, no state)")
    print(f"  import: engage.sensors.simulated {imp_ours:.2f} s CPU, neurokit2 {imp_nk:.2f} s CPU")


def _watch(seed: int):
    from engage.core import VirtualClock
    from engage.sensors.simulated import SimulatedViewer
    from engage.session import Session

    viewer = SimulatedViewer(seed=seed)
    for t, intensity, tone, scene in FLAT_FILM:
        viewer.on_scene(intensity, tone, timestamp=t, scene=scene)
    result = Session([viewer], VirtualClock(0.0), story=None).run(duration=180.0)
    return viewer.truth_array(), result.log


def flat(n: int, jobs: int, figure: str | None) -> None:
    from joblib import Parallel, delayed

    runs = Parallel(n_jobs=jobs)(delayed(_watch)(seed) for seed in range(n))
    bored, detected, lags, false = 0, 0, [], 0
    panels = []
    for seed, (truth, log) in enumerate(runs):
        onsets = [e.timestamp for e in log.events if e.type == "boredom.onset"]
        is_bored = truth[-1, 2] > 0.5
        if is_bored:
            bored += 1
            start = float(truth[truth[:, 2] > 0.5, 0][0])
            hits = [t for t in onsets if t >= start - 20.0]
            if hits:
                detected += 1
                lags.append(hits[0] - start)
            label = f"seed {seed}: bored from {start:.0f} s" + (f", onset at {hits[0]:.0f} s" if hits else ", missed")
        else:
            false += bool(onsets)
            label = f"seed {seed}: not bored" + (f", onset at {onsets[0]:.0f} s" if onsets else "")
        if len(panels) < 6:
            panels.append((label, truth, log))
    print(f"flat 3-min film (3 scenes at intensity 0.2), {n} viewers: {bored} bored by the end; "
          f"{detected}/{bored} of them got a boredom.onset (lag from becoming bored: median "
          f"{np.median(lags) if lags else float('nan'):.0f} s, range {min(lags, default=float('nan')):.0f} … "
          f"{max(lags, default=float('nan')):.0f} s); {false}/{n - bored} not-bored viewers got one anyway")
    if figure:
        from engage.plots import plot_truth_vs_sensed

        print("figure:", plot_truth_vs_sensed(panels, figure, title="flat 3-min film: true vs sensed boredom"))


def _demo(seed: int):
    from engage.core import VirtualClock
    from engage.narrative.story import default_story_path, load_story
    from engage.sensors.simulated import SimulatedViewer
    from engage.session import Session

    viewer = SimulatedViewer(seed=seed)
    log = Session([viewer], VirtualClock(0.0), story=load_story(default_story_path())).run(duration=600.0).log
    scenes = [(e.timestamp, float(e.evidence["intensity"]), str(e.evidence.get("reason", "")))
              for e in log.events if e.type == "scene.start"]
    starts = np.array([s[0] for s in scenes])
    intensity = np.array([s[1] for s in scenes])
    # a calm stretch: consecutive scenes of intensity <= 0.3; its first minute still carries what came before
    calm_since = np.full(len(scenes), np.nan)
    for i, x in enumerate(intensity):
        if x <= 0.3:
            calm_since[i] = calm_since[i - 1] if i and intensity[i - 1] <= 0.3 else starts[i]

    def settled_calm(t):
        i = np.searchsorted(starts, t, side="right") - 1
        return (i >= 0) & (np.where(i >= 0, intensity[np.maximum(i, 0)], 1.0) <= 0.3) & \
            (t - np.where(i >= 0, calm_since[np.maximum(i, 0)], np.inf) >= 60.0)

    highs = np.array([e.timestamp for e in log.events if e.type == "arousal.high"])
    calm_highs = int(np.count_nonzero(settled_calm(highs))) if highs.size else 0
    run = longest = 0
    for _, _, reason in scenes:
        run = run + 1 if "overloaded" in reason else 0
        longest = max(longest, run)
    truth = viewer.truth_array()
    calm = settled_calm(truth[:, 0])
    return (calm_highs, longest, sum("viewer bored" in r for _, _, r in scenes),
            sum(e.type == "boredom.onset" for e in log.events), float(truth[calm, 1].max()) if calm.any() else 0.0)


def demo(n: int, jobs: int) -> None:
    from joblib import Parallel, delayed

    rows = Parallel(n_jobs=jobs)(delayed(_demo)(seed) for seed in range(n))
    a = np.array(rows, dtype=float)
    print(f"engage demo's session, 10 min of Night Train, seeds 0..{n - 1}:")
    print(f"  runs with an arousal.high in a calm stretch (scenes of intensity <= 0.3, from its second minute): "
          f"{int((a[:, 0] > 0).sum())}/{n}")
    print(f"  longest run of scenes chosen because the viewer was 'overloaded': {int(a[:, 1].max())} "
          f"(median {np.median(a[:, 1]):.0f})")
    print(f"  boredom.onset events per run: median {np.median(a[:, 3]):.0f}; scene choices answering boredom: "
          f"{int(a[:, 2].sum())} in {int((a[:, 2] > 0).sum())}/{n} runs")
    print(f"  highest true arousal in a calm stretch, from its second minute: {a[:, 4].max():.2f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hours", type=float, default=1.0, help="simulated hours for the speed figure (default 1)")
    p.add_argument("--no-speed", action="store_true", help="skip the speed figure")
    p.add_argument("--flat", type=int, default=0, metavar="N", help="flat-film viewers to run through the pipeline")
    p.add_argument("--figure", help="with --flat: PNG of true vs sensed boredom")
    p.add_argument("--demo", type=int, default=0, metavar="N", help="demo seeds to run")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes for --flat and --demo")
    args = p.parse_args()
    started = time.perf_counter()
    if not args.no_speed:
        speed(args.hours)
    if args.flat:
        flat(args.flat, args.jobs, args.figure)
    if args.demo:
        demo(args.demo, args.jobs)
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
