"""``engage eval blinks`` and ``engage eval rppg``: validate the face pipeline on annotated video;
``engage webcam``: the live pipeline on a camera (or a video file).

Each ``eval`` command prints one JSON object as the last line of stdout.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from engage.core import Processor
from engage.core.errors import ConfigError, InputFileError
from engage.core.progress import Progress

from .common import FORMATTER

ORDER = 40


def register_eval(sub) -> None:
    b = sub.add_parser(
        "blinks", formatter_class=FORMATTER, help="blink detection against annotated blinks",
        description="Runs MediaPipe FaceMesh and the adaptive blink detector over a video and compares\n"
                    "the detected blinks with annotated ones: a detected blink matches a reference blink\n"
                    "when their intervals overlap. Prints precision, recall, f1, n_reference, n_detected.",
        epilog="examples:\n  engage eval blinks --video clip.mp4 --annotations blinks.csv\n"
               "  engage eval blinks --video clip.mp4 --annotations blinks.csv --detections out.csv\n\n"
               "annotations: CSV with columns video, onset_frame, offset_frame (0-based frame indices,\n"
               "offset inclusive); rows of other videos are ignored.")
    b.add_argument("--video", required=True, help="video file (any format OpenCV reads)")
    b.add_argument("--annotations", required=True, help="CSV of reference blinks (see below)")
    b.add_argument("--task", help="a MediaPipe FaceLandmarker .task model instead of the bundled FaceMesh")
    b.add_argument("--detections", help="also write the detected blinks to this CSV")
    b.set_defaults(func=run_blinks)

    r = sub.add_parser(
        "rppg", formatter_class=FORMATTER, help="heart rate from the skin colour of a video (POS/CHROM)",
        description="Estimates heart rate by remote photoplethysmography over sliding 10 s windows\n"
                    "and prints the SNR-weighted median heart rate (hr_bpm), the median SNR (snr_db) and\n"
                    "quality, and the share of windows whose SNR is above what noise alone reaches\n"
                    "(confident_windows; quality >= 0.5); with --reference-bpm also the absolute error.",
        epilog="examples:\n  engage eval rppg --video face.mp4\n"
               "  engage eval rppg --video forehead.avi --roi frame --reference-bpm 85.4\n"
               "  engage eval rppg --video face.mp4 --method chrom")
    r.add_argument("--video", required=True, help="video file")
    r.add_argument("--roi", choices=["face", "frame"], default="face",
                   help="face: the skin of the face from its landmarks (default); frame: the whole frame "
                        "(for clips that are already a skin patch)")
    r.add_argument("--method", choices=["pos", "chrom"], default="pos", help="rPPG projection (default: pos)")
    r.add_argument("--window", type=float, default=10.0, help="window length in seconds (default: 10)")
    r.add_argument("--reference-bpm", type=float, help="reference heart rate, to print the error")
    r.add_argument("--task", help="a MediaPipe FaceLandmarker .task model (with --roi face)")
    r.set_defaults(func=run_rppg)


def register(sub) -> None:
    w = sub.add_parser(
        "webcam", formatter_class=FORMATTER, help="sense a viewer live from a webcam (or a video file)",
        description="Captures a camera (index or URL) or a video file, runs MediaPipe face tracking on\n"
                    "every frame and the session pipeline on the result (the same as demo and replay, plus\n"
                    "the rPPG heart rate); prints the face features once a second and the events.\n"
                    "Frames are never written unless --save-video is given.",
        epilog="examples:\n  engage webcam                      camera 0 for a minute\n"
               "  engage webcam --device 1 --seconds 300 --features-out face.csv\n"
               "  engage webcam --video clip.mp4 --features-out face.csv\n"
               "  engage webcam --save-video me.mp4  (writes the raw frames: only when you ask)")
    w.add_argument("--device", default="0", help="camera index or stream URL (default: 0)")
    w.add_argument("--video", help="a video file instead of a camera (replayed as fast as possible)")
    w.add_argument("--seconds", type=float, default=60.0, help="how long to capture a camera (default: 60)")
    w.add_argument("--task", help="a MediaPipe FaceLandmarker .task model (adds blendshapes)")
    w.add_argument("--features-out", help="write the per-frame Face stream to this CSV")
    w.add_argument("--save-video", help="also write the raw frames to this video file (off by default)")
    w.add_argument("--screen", default="53x30@60", help="screen WIDTHxHEIGHT@DISTANCE in cm (default: 53x30@60)")
    w.add_argument("--story", help="also run the narrative controller on this story (TOML)")
    w.add_argument("--events-out", help="write the events (JSON lines) to this file")
    w.set_defaults(func=run_webcam)


def _tracker(task: str | None):
    from engage.signals.face_mesh import FaceLandmarkerTracker, FaceMeshTracker

    return FaceLandmarkerTracker(task) if task else FaceMeshTracker()


def read_blink_annotations(path: str | Path, video: str | Path, fps: float) -> list[tuple[float, float]]:
    """Reference blink intervals (s) of ``video`` from an annotation CSV (``onset_frame``/``offset_frame``)."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{path}: annotation file not found")
    with p.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or ())
        if not {"onset_frame", "offset_frame"} <= cols:
            raise InputFileError(f"{path}: needs columns onset_frame and offset_frame (has {', '.join(sorted(cols))})")
        out = []
        for line, row in enumerate(reader, start=2):
            if "video" in cols and row["video"] and Path(row["video"]).name != Path(video).name:
                continue
            try:
                on, off = int(row["onset_frame"]), int(row["offset_frame"])
            except (TypeError, ValueError):
                raise InputFileError(f"{path}, line {line}: onset_frame/offset_frame must be integers") from None
            if off < on or on < 0:
                raise InputFileError(f"{path}, line {line}: offset_frame {off} before onset_frame {on}")
            out.append((on / fps, (off + 1) / fps))
    return out


def face_series(video: str | Path, task: str | None = None, rppg_roi: bool = True):
    """(timestamps, Face rows, fps) of a whole video through the face analyzer."""
    from engage.sensors.webcam import VideoFileSource
    from engage.signals.face_mesh import FaceAnalyzer

    analyzer = FaceAnalyzer(_tracker(task), rppg_roi=rppg_roi)
    src = VideoFileSource(video, analyzer=analyzer)
    ts, rows = [], []
    with Progress(src.frame_count, "face", "frame") as bar:
        for t, frame in src.frames():
            ts.append(t)
            rows.append(analyzer(frame, t))
            bar.update(1)
    analyzer.close()
    return np.asarray(ts), np.asarray(rows).reshape(-1, len(analyzer.channels)), src.fps


def run_blinks(args: argparse.Namespace) -> int:
    from engage.signals.blinks import detect_blinks, match_blinks
    from engage.signals.face import eye_openness
    from engage.signals.face_mesh import FACE_CHANNELS

    from engage.sensors.webcam import VideoFileSource

    probe = VideoFileSource(args.video)  # a bad video or annotation file fails before the long run
    reference = read_blink_annotations(args.annotations, args.video, probe.fps)
    probe.stop()
    ts, rows, fps = face_series(args.video, args.task, rppg_roi=False)
    col = {name: rows[:, FACE_CHANNELS.index(name)] for name in ("ear_left", "ear_right", "head_yaw", "head_pitch")}
    ear = eye_openness(col["ear_left"], col["ear_right"], col["head_yaw"], col["head_pitch"])
    ear[rows[:, 0] < 0.5] = np.nan
    blinks = detect_blinks(ts, ear)
    detected = [(b.onset, b.offset) for b in blinks]
    if args.detections:
        with open(args.detections, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["onset_s", "offset_s", "duration_s", "depth"])
            for b in blinks:
                w.writerow([f"{b.onset:.4f}", f"{b.offset:.4f}", f"{b.duration:.4f}", f"{b.depth:.3f}"])
    result = match_blinks(detected, reference)
    result.update({"frames": int(len(ts)), "face_frames": int(np.sum(rows[:, 0] > 0.5)), "fps": round(fps, 3)})
    for b in blinks:
        print(f"blink {b.onset:7.3f}–{b.offset:7.3f} s  {1000 * b.duration:4.0f} ms  depth {b.depth:.2f}")
    print(json.dumps(result))
    return 0


def frame_rgb(video: str | Path) -> tuple[np.ndarray, np.ndarray, float]:
    """(timestamps, mean RGB of each whole frame, fps) of a video."""
    from engage.sensors.webcam import VideoFileSource

    src = VideoFileSource(video, analyzer=None)
    ts, rgb = [], []
    with Progress(src.frame_count, "frames", "frame") as bar:
        for t, frame in src.frames():
            ts.append(t)
            rgb.append(frame.reshape(-1, 3).mean(axis=0)[::-1])
            bar.update(1)
    return np.asarray(ts), np.asarray(rgb).reshape(-1, 3), src.fps


def rppg_windows(rgb: np.ndarray, fps: float, method: str = "pos", window_s: float = 10.0,
                 step_s: float = 1.0) -> list:
    """Heart-rate estimates over sliding windows of an RGB series (NaN frames held over)."""
    from engage.signals.rppg import estimate_hr

    rgb = np.asarray(rgb, dtype=np.float64).copy()
    valid = np.isfinite(rgb).all(axis=1)
    if valid.mean() < 0.5:
        return []
    first = np.flatnonzero(valid)[0]
    for k in range(len(rgb)):
        if not valid[k]:
            rgb[k] = rgb[k - 1] if k > 0 else rgb[first]
    w = int(round(window_s * fps))
    if len(rgb) < w:
        w = len(rgb)
    step = max(1, int(round(step_s * fps)))
    return [estimate_hr(rgb[s:s + w], fps, method) for s in range(0, len(rgb) - w + 1, step)]


def run_rppg(args: argparse.Namespace) -> int:
    from engage.signals.face_mesh import FACE_CHANNELS

    if args.window < 4:
        raise ConfigError("--window must be at least 4 s")
    if args.roi == "frame":
        ts, rgb, fps = frame_rgb(args.video)
    else:
        ts, rows, fps = face_series(args.video, args.task)
        rgb = rows[:, [FACE_CHANNELS.index(c) for c in ("r", "g", "b")]]
    if len(ts) < 2 * fps:
        raise InputFileError(f"{args.video}: {len(ts)} frames; rPPG needs at least 2 s of video")
    estimates = rppg_windows(rgb, fps, args.method, args.window)
    if not estimates:
        result = {"hr_bpm": None, "snr_db": None, "windows": 0, "reason": "face found in fewer than half the frames"}
    else:
        from engage.signals.rppg import combine_estimates

        hr = combine_estimates(estimates)  # SNR-weighted median over the sliding windows
        snr = float(np.median([e.snr_db for e in estimates]))
        quality = np.array([e.quality for e in estimates])
        result = {"hr_bpm": round(hr, 2), "snr_db": round(snr, 2), "windows": len(estimates),
                  "quality": round(float(np.median(quality)), 3),
                  # windows whose SNR is above what noise alone reaches 95 % of the time
                  "confident_windows": round(float(np.mean(quality >= 0.5)), 3)}
        if args.reference_bpm is not None:
            result["abs_error_bpm"] = round(abs(hr - args.reference_bpm), 2)
    result.update({"method": args.method, "roi": args.roi, "frames": int(len(ts)), "fps": round(fps, 3)})
    print(json.dumps(result))
    return 0


def _screen(spec: str):
    from engage.signals.gaze import ScreenGeometry

    try:
        size, dist = spec.split("@")
        w, h = size.lower().split("x")
        return ScreenGeometry(width_cm=float(w), height_cm=float(h), distance_cm=float(dist))
    except ValueError:
        raise ConfigError(f"--screen {spec!r}: expected WIDTHxHEIGHT@DISTANCE in cm, e.g. 53x30@60") from None


class _FaceMonitor(Processor):
    """Prints the face features once a second and optionally writes the Face stream to CSV."""

    name = "face-monitor"

    def __init__(self, out, features_out: str | None) -> None:
        self.out = out
        self.hr = self.hr_q = float("nan")
        self.last = None
        self.fh = open(features_out, "w", newline="") if features_out else None
        self.writer = csv.writer(self.fh) if self.fh else None
        self._header = False

    def accepts(self, info) -> bool:
        return info.type in ("Face", "FaceFeatures", "RPPG")

    def process(self, chunk) -> list:
        kind = chunk.info.type
        if kind == "Face" and self.writer is not None:
            if not self._header:
                self.writer.writerow(["timestamp", *chunk.info.channels])
                self._header = True
            for t, row in zip(chunk.timestamps, chunk.data):
                self.writer.writerow([f"{t:.4f}", *(f"{v:.5g}" for v in row)])
        elif kind == "RPPG":  # the latest window estimate and whether it is trusted
            self.hr, self.hr_q = float(chunk.data[-1, 0]), float(chunk.channel("quality")[-1])
        elif kind == "FaceFeatures":
            t = chunk.last_time
            if self.last is None or t - self.last >= 1.0:
                self.last = t
                row = dict(zip(chunk.info.channels, chunk.data[-1]))
                hr = f"{self.hr:5.1f} (quality {self.hr_q:.2f})" if np.isfinite(self.hr) else "  -- (needs 6 s of face)"
                print(f"{t:10.2f}  face {int(row['face_present'])}  on-screen {int(row['on_screen'])}  "
                      f"blinks/min {row['blink_rate']:5.1f}  PERCLOS {row['perclos']:.2f}  HR(rPPG) {hr}",
                      file=self.out)
        return []

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


def run_webcam(args: argparse.Namespace) -> int:
    from engage.core import LslClock, VirtualClock
    from engage.narrative.story import load_story
    from engage.sensors.webcam import VideoFileSource, WebcamSource
    from engage.session import Session
    from engage.signals.face_mesh import FaceAnalyzer

    from .common import print_summary

    screen = _screen(args.screen)
    story = load_story(args.story) if args.story else None
    analyzer = FaceAnalyzer(_tracker(args.task), screen=screen)
    if args.video:
        source = VideoFileSource(args.video, analyzer=analyzer, save_video=args.save_video)
        clock, duration = VirtualClock(0.0), source.frame_count / source.fps + 1.0 if source.frame_count else None
    else:
        device = int(args.device) if args.device.isdigit() else args.device
        source = WebcamSource(device, analyzer=analyzer, save_video=args.save_video)
        clock, duration = LslClock(), args.seconds
    monitor = _FaceMonitor(sys.stdout, args.features_out)
    session = Session([source], clock, story=story, events_out=Path(args.events_out) if args.events_out else None,
                      timeline=sys.stdout, extra_processors=[monitor])  # rPPG is a standard step
    try:
        result = session.run(duration=duration)
    finally:
        source.stop()
        analyzer.close()
        monitor.close()
    print_summary(result)
    return 0
