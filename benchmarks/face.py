"""Face pipeline speed: ms per frame (p50, p95) at 640x480 on one core, for bare MediaPipe FaceMesh
inference (one face, refined iris landmarks: how one viewer is tracked with MediaPipe alone), the
whole face pipeline (FaceMesh + EAR, head pose, gaze, rPPG regions, FaceFeatures with blinks) and
rPPG (the streaming POS heart rate), all in the same run.

    python benchmarks/face.py [--frames 300] [--runs 3] [--warmup 30] [--all-cores]

Uses the talking-head clip of ../shared/data (or $ENGAGE_TEST_DATA) letterboxed into 640x480.
On a shared machine absolute times are noisy, so the process is pinned to one core, each run
starts with a warm-up, bare FaceMesh and the pipeline alternate frame by frame (both see the
same load), and the figures are given per run and as the minimum over runs (the least disturbed
run). ``overhead_ms`` is OUR cost per frame: the pipeline's time minus bare FaceMesh's on the
same frame; ``ours_without_inference_ms`` measures it directly, replaying the recorded landmarks
(no inference, so far less noisy); ``steps_ms_p50`` breaks the pipeline into its steps. ``rppg_accuracy`` scores POS and
CHROM on the skin-patch clips of ``rppg_roi_bias_eval`` against their oximeter heart rates (the
mean absolute error, and how many of the 10 s windows have an SNR above what noise alone reaches,
i.e. quality >= 0.5); ``--no-accuracy`` skips it. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engage.core import Chunk, StreamInfo  # noqa: E402
from engage.core.testing import test_data_dir  # noqa: E402

CLIP = "talking_head_blinks/WDA_AlexandriaOcasioCortez_000.mp4"


def _frames(path: Path, n: int) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    clip = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        canvas = np.zeros((480, 640, 3), np.uint8)
        canvas[:, 80:560] = cv2.resize(f, (480, 480))
        clip.append(canvas)
    if not clip:
        raise SystemExit(f"{path}: no frames")
    # play it forward and back so tracking never jumps
    loop = clip + clip[::-1]
    return [loop[i % len(loop)] for i in range(n)]


def _pct(ms) -> dict:
    ms = np.asarray(ms, dtype=np.float64)
    return {"p50": round(float(np.percentile(ms, 50)), 3), "p95": round(float(np.percentile(ms, 95)), 3),
            "mean": round(float(np.mean(ms)), 3), "max": round(float(np.max(ms)), 3)}


def _run(frames: list[np.ndarray], warmup: int, fps: float) -> dict:
    """One pass: bare FaceMesh, the face pipeline and rPPG on every frame in turn."""
    from engage.signals.face import FaceFeatures
    from engage.signals.face_mesh import FaceAnalyzer, to_rgb
    from engage.signals.rppg import RppgHeartRate

    import mediapipe as mp

    # the peer: bare MediaPipe FaceMesh as its users run it for one person (one face, refined iris)
    bare = mp.solutions.face_mesh.FaceMesh(max_num_faces=1, refine_landmarks=True)
    analyzer = FaceAnalyzer(profile=True)
    features = FaceFeatures()
    rppg = RppgHeartRate()
    info = StreamInfo("webcam-v-face", "Face", analyzer.channels, analyzer.units, fps, "x", viewer="v")
    bare_ms, pipe_ms, rppg_ms, found = [], [], [], []

    def bare_step(f):
        t0 = time.perf_counter()
        bare.process(to_rgb(f))  # what FaceMesh needs: RGB in, landmarks out
        return 1e3 * (time.perf_counter() - t0)

    for i, f in enumerate(frames):
        t = i / fps
        # alternate which goes first: the second one finds the frame already in the caches
        b = bare_step(f) if i % 2 == 0 else None
        t1 = time.perf_counter()
        row = analyzer(f, t)
        chunk = Chunk(info, row[None, :], np.array([t]))
        features.process(chunk)
        t2 = time.perf_counter()
        rppg.process(chunk)
        t3 = time.perf_counter()
        if b is None:
            b = bare_step(f)
        found.append(row[0])
        if i >= warmup:
            bare_ms.append(b)
            pipe_ms.append(1e3 * (t2 - t1))
            rppg_ms.append(1e3 * (t3 - t2))
    bare.close()
    analyzer.close()
    steps = {k: float(np.median(v[warmup:])) for k, v in analyzer.step_ms.items() if len(v) > warmup}
    bare_ms, pipe_ms = np.array(bare_ms), np.array(pipe_ms)
    return {"facemesh_ms": _pct(bare_ms), "face_pipeline_ms": _pct(pipe_ms), "rppg_ms": _pct(rppg_ms),
            "face_pipeline_plus_rppg_ms": _pct(pipe_ms + np.array(rppg_ms)),
            "overhead_ms": _pct(pipe_ms - bare_ms), "steps_ms_p50": {k: round(v, 3) for k, v in steps.items()},
            "pipeline_over_facemesh_p95": round(float(np.percentile(pipe_ms, 95) / np.percentile(bare_ms, 95)), 3),
            "face_found": float(np.mean(found))}


def rppg_accuracy(root: Path) -> dict:
    """MAE (bpm) of POS and CHROM over the skin-patch clips, the whole frame as the ROI (``--roi frame``)."""
    import csv

    from engage.cli.eval_face import frame_rgb, rppg_windows
    from engage.signals.rppg import combine_estimates

    base = root / "rppg_roi_bias_eval"
    with (base / "Ground_Truth" / "India_GT.csv").open(encoding="utf-8-sig") as fh:
        gt = {r[0].strip(): float(r[1]) for r in csv.reader(fh) if r and r[0].strip().startswith("video")}
    out: dict = {}
    clips = sorted((base / "Data" / "India").glob("*.avi"))
    series = {clip.stem: frame_rgb(clip) for clip in clips}
    for method in ("pos", "chrom"):
        errors, confident, per_clip = [], [], {}
        for name, (_, rgb, fps) in series.items():
            est = rppg_windows(rgb, fps, method)
            hr = combine_estimates(est)
            errors.append(abs(hr - gt[name.split("_")[0]]))
            confident.append(float(np.mean([e.quality >= 0.5 for e in est])))
            per_clip[name] = round(hr - gt[name.split("_")[0]], 1)
        out[method] = {"mae_bpm": round(float(np.mean(errors)), 2), "clips": len(errors),
                       "confident_windows": round(float(np.mean(confident)), 3), "error_by_clip": per_clip}
    # for comparison: the same on colour noise without any pulse (15 fps, 30 s, as long as the clips)
    rng = np.random.default_rng(0)
    noise = [rppg_windows(100.0 * (1 + 0.01 * rng.standard_normal((450, 3))), 15.0) for _ in range(20)]
    out["noise_confident_windows"] = round(float(np.mean([e.quality >= 0.5 for est in noise for e in est])), 3)
    return out


class _Replayed:
    """A tracker that hands back recorded landmarks: the pipeline without MediaPipe's inference."""

    def __init__(self, faces: list) -> None:
        self.faces, self.i = faces, 0

    def __call__(self, frame, timestamp=None):
        from engage.signals.face_mesh import FaceLandmarks

        face = self.faces[self.i % len(self.faces)]
        self.i += 1
        return None if face is None else FaceLandmarks(face.points.copy(), face.width, face.height)

    def close(self) -> None:
        pass


def our_cost(frames: list[np.ndarray], warmup: int, fps: float, repeats: int = 3) -> dict:
    """ms per frame of everything but MediaPipe (recorded landmarks replayed): our own cost, which,
    unlike the inference, hardly moves with the machine's load."""
    from engage.signals.face import FaceFeatures
    from engage.signals.face_mesh import FaceAnalyzer, FaceMeshTracker

    tracker = FaceMeshTracker()
    faces = [tracker(f) for f in frames]
    tracker.close()
    best = None
    for _ in range(repeats):
        analyzer, features = FaceAnalyzer(_Replayed(faces)), FaceFeatures()
        info = StreamInfo("webcam-v-face", "Face", analyzer.channels, analyzer.units, fps, "x", viewer="v")
        ms = []
        for i, f in enumerate(frames):
            t0 = time.perf_counter()
            row = analyzer(f, i / fps)
            features.process(Chunk(info, row[None, :], np.array([i / fps])))
            if i >= warmup:
                ms.append(1e3 * (time.perf_counter() - t0))
        stats = _pct(ms)
        best = stats if best is None or stats["p95"] < best["p95"] else best
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300, help="measured frames per run (default: 300)")
    ap.add_argument("--runs", type=int, default=3, help="runs; the figures of each and their minimum (default: 3)")
    ap.add_argument("--warmup", type=int, default=30, help="frames run before measuring, per run (default: 30)")
    ap.add_argument("--all-cores", action="store_true", help="do not pin the process to one core")
    ap.add_argument("--no-accuracy", action="store_true", help="skip the rPPG accuracy on the skin-patch clips")
    args = ap.parse_args()
    if not args.all_cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import cv2

    cv2.setNumThreads(1)
    root = test_data_dir()
    if root is None or not (root / CLIP).exists():
        raise SystemExit("needs ../shared/data (or ENGAGE_TEST_DATA) with the talking-head clip")
    frames = _frames(root / CLIP, args.frames + args.warmup)
    from tqdm import tqdm

    runs = [_run(frames, args.warmup, 30.0) for _ in tqdm(range(args.runs), desc="runs", unit="run", file=sys.stderr,
                                                          disable=None, leave=False)]
    best = min(runs, key=lambda r: r["face_pipeline_ms"]["p95"])  # the least disturbed run
    ours = our_cost(frames, args.warmup, 30.0)

    def min_over_runs(key: str, stat: str) -> float:
        return min(r[key][stat] for r in runs)

    result = {"benchmark": "face", "frames": args.frames, "runs": args.runs, "resolution": "640x480",
              "cores": 1 if not args.all_cores else os.cpu_count(), "face_found": round(best["face_found"], 3),
              **{k: best[k] for k in ("facemesh_ms", "face_pipeline_ms", "face_pipeline_plus_rppg_ms", "rppg_ms",
                                      "overhead_ms", "steps_ms_p50", "pipeline_over_facemesh_p95")},
              "min_of_runs_p95_ms": {k: min_over_runs(k, "p95") for k in
                                     ("facemesh_ms", "face_pipeline_ms", "overhead_ms", "rppg_ms")},
              "ours_without_inference_ms": ours,
              "per_run_p95_ms": [{"facemesh": r["facemesh_ms"]["p95"], "pipeline": r["face_pipeline_ms"]["p95"],
                                  "overhead": r["overhead_ms"]["p95"]} for r in runs]}
    for k, r in enumerate(runs):
        print(f"run {k + 1}: FaceMesh p95 {r['facemesh_ms']['p95']:6.2f} ms   pipeline p95 "
              f"{r['face_pipeline_ms']['p95']:6.2f} ms   our overhead p50 {r['overhead_ms']['p50']:5.2f} / p95 "
              f"{r['overhead_ms']['p95']:5.2f} ms")
    print(f"bare FaceMesh      p50 {best['facemesh_ms']['p50']:6.2f} ms   p95 {best['facemesh_ms']['p95']:6.2f} ms")
    print(f"face pipeline      p50 {best['face_pipeline_ms']['p50']:6.2f} ms   p95 "
          f"{best['face_pipeline_ms']['p95']:6.2f} ms   ({best['pipeline_over_facemesh_p95']:.2f}x FaceMesh at p95)")
    print(f"our overhead       p50 {best['overhead_ms']['p50']:6.2f} ms   p95 {best['overhead_ms']['p95']:6.2f} ms   "
          "(pipeline minus FaceMesh on the same frame)")
    print(f"ours without MediaPipe (recorded landmarks): p50 {ours['p50']:5.2f} ms   p95 {ours['p95']:5.2f} ms "
          "(best of 3)")
    print("  steps (p50, ms): " + ", ".join(f"{k} {v:.3f}" for k, v in best["steps_ms_p50"].items()))
    print(f"rPPG (streaming)   p50 {best['rppg_ms']['p50']:6.2f} ms   p95 {best['rppg_ms']['p95']:6.2f} ms   "
          f"mean {best['rppg_ms']['mean']:.2f} ms (one 10 s estimate per second: max {best['rppg_ms']['max']:.1f} ms)")
    print(f"min over {args.runs} runs of p95: FaceMesh {result['min_of_runs_p95_ms']['facemesh_ms']:.2f} ms, pipeline "
          f"{result['min_of_runs_p95_ms']['face_pipeline_ms']:.2f} ms; target: pipeline p95 <= 10 ms on one core")
    if not args.no_accuracy and (root / "rppg_roi_bias_eval").exists():
        acc = rppg_accuracy(root)
        result["rppg_accuracy"] = acc
        for method, a in ((m, acc[m]) for m in ("pos", "chrom")):
            print(f"rPPG {method:5s} on the skin-patch clips: MAE {a['mae_bpm']:5.1f} bpm over {a['clips']} clips; "
                  f"{100 * a['confident_windows']:.0f} % of windows above the noise level "
                  f"(noise alone: {100 * acc['noise_confident_windows']:.0f} %)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
