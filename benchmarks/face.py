"""Face pipeline speed: ms per frame (p50, p95) at 640x480 on one core, for bare MediaPipe FaceMesh
inference, the whole face pipeline (FaceMesh + EAR, head pose, gaze, rPPG regions, FaceFeatures
with blinks) and rPPG (the streaming POS heart rate), all in the same run.

    python benchmarks/face.py [--frames 300] [--all-cores]

Uses the talking-head clip of ../shared/data (or $ENGAGE_TEST_DATA) letterboxed into 640x480.
The last line is JSON.
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


def _pct(ms: list[float]) -> dict:
    return {"p50": round(float(np.percentile(ms, 50)), 3), "p95": round(float(np.percentile(ms, 95)), 3),
            "mean": round(float(np.mean(ms)), 3), "max": round(float(np.max(ms)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--all-cores", action="store_true", help="do not pin the process to one core")
    args = ap.parse_args()
    if not args.all_cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import cv2

    cv2.setNumThreads(1)
    from engage.signals.face import FaceFeatures
    from engage.signals.face_mesh import FaceAnalyzer, FaceMeshTracker
    from engage.signals.rppg import RppgHeartRate

    root = test_data_dir()
    if root is None or not (root / CLIP).exists():
        raise SystemExit("needs ../shared/data (or ENGAGE_TEST_DATA) with the talking-head clip")
    frames = _frames(root / CLIP, args.frames + 20)
    fps = 30.0

    # bare FaceMesh inference and the whole face pipeline (analyzer + FaceFeatures) on each frame in
    # turn, so that both see the same load on a shared machine; then rPPG on the analyzer's colours
    bare = FaceMeshTracker()
    analyzer = FaceAnalyzer()
    features = FaceFeatures()
    info = StreamInfo("webcam-v-face", "Face", analyzer.channels, analyzer.units, fps, "x", viewer="v")
    rgb_info = StreamInfo("v-face-rgb", "RGB", ("r", "g", "b"), ("a.u.",) * 3, fps, "y", viewer="v")
    rppg = RppgHeartRate()
    bare_ms, pipe_ms, rppg_ms, rows = [], [], [], []
    rgb_cols = [analyzer.channels.index(c) for c in "rgb"]
    for i, f in enumerate(frames):
        t = i / fps
        t0 = time.perf_counter()
        bare._mesh.process(np.ascontiguousarray(f[:, :, ::-1]))
        t1 = time.perf_counter()
        row = analyzer(f, t)
        features.process(Chunk(info, row[None, :], np.array([t])))
        t2 = time.perf_counter()
        rppg.process(Chunk(rgb_info, row[None, rgb_cols], np.array([t])))
        t3 = time.perf_counter()
        rows.append(row)
        if i >= 20:
            bare_ms.append(1e3 * (t1 - t0))
            pipe_ms.append(1e3 * (t2 - t1))
            rppg_ms.append(1e3 * (t3 - t2))
    bare.close()
    analyzer.close()
    face_found = float(np.mean([r[0] for r in rows]))
    result = {"benchmark": "face", "frames": len(pipe_ms), "resolution": "640x480",
              "cores": 1 if not args.all_cores else os.cpu_count(), "face_found": round(face_found, 3),
              "facemesh_ms": _pct(bare_ms), "face_pipeline_ms": _pct(pipe_ms),
              "face_pipeline_plus_rppg_ms": _pct(list(np.array(pipe_ms) + np.array(rppg_ms))),
              "rppg_ms": _pct(rppg_ms),
              "pipeline_over_facemesh_p95": round(float(np.percentile(pipe_ms, 95) / np.percentile(bare_ms, 95)), 3)}
    print(f"bare FaceMesh      p50 {result['facemesh_ms']['p50']:6.2f} ms   p95 {result['facemesh_ms']['p95']:6.2f} ms")
    print(f"face pipeline      p50 {result['face_pipeline_ms']['p50']:6.2f} ms   p95 "
          f"{result['face_pipeline_ms']['p95']:6.2f} ms   ({result['pipeline_over_facemesh_p95']:.2f}x FaceMesh at p95)")
    print(f"rPPG (streaming)   p50 {result['rppg_ms']['p50']:6.2f} ms   p95 {result['rppg_ms']['p95']:6.2f} ms   "
          f"mean {result['rppg_ms']['mean']:.2f} ms (one 10 s estimate per second: max {result['rppg_ms']['max']:.1f} ms)")
    print(f"face found in {100 * face_found:.0f} % of frames; target: pipeline p95 <= 10 ms on one core")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
