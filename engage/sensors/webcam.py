"""Video capture: a webcam (index or URL) live on its own thread, or a video file replayed.

Each frame is stamped on the LSL clock right after the driver hands it over (a file's frames at
``start + index / fps`` on the replay clock) and passed to a **frame analyzer**, a callable
``analyzer(frame_bgr, timestamp) -> row`` (for the face, :class:`engage.signals.face_mesh.FaceAnalyzer`,
wired in by the session layer: sensors never import signals). Only the analyzer's rows leave
the source, as one ``Face`` stream (``analyzer.channels``/``analyzer.units``): raw frames are
never written unless ``save_video`` names a file (privacy by default).

Live capture survives the camera: frames the driver skipped are counted
(``<name>.dropped_frames``) from the gaps between frame times; a camera that stops delivering
(unplugged, taken by another program) is released and re-opened every ``retry_s`` seconds, and
the outage becomes a ``sensor.gap`` event (reason ``camera lost``) — the session goes on. A
device or file that cannot be opened at all raises :class:`~engage.core.errors.InputFileError`
naming it.

>>> src = VideoFileSource("missing.mp4", analyzer=None)
Traceback (most recent call last):
...
engage.core.errors.InputFileError: missing.mp4: video file not found
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from engage.core import Chunk, StreamInfo
from engage.core.errors import InputFileError
from engage.core.runtime import Source, ThreadedSource

log = logging.getLogger(__name__)

#: Without an analyzer, each frame gives its index and mean brightness (0..255).
BARE_CHANNELS, BARE_UNITS = ("frame", "brightness"), ("index", "a.u.")


def _bare_analyzer(frame: np.ndarray, timestamp: float) -> np.ndarray:
    return np.array([np.nan, float(frame.mean())])


def _opencv_capture(device):
    import cv2

    try:  # OpenCV prints its own warnings for a missing device; ours names it once
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # pragma: no cover - older OpenCV
        pass
    return cv2.VideoCapture(device)


class _FrameSink:
    """Runs the analyzer on a frame and optionally writes it (``--save-video``)."""

    def __init__(self, analyzer, save_video: str | Path | None, fps: float) -> None:
        self.analyzer = analyzer
        self.save_video = Path(save_video) if save_video else None
        self.fps = fps
        self._writer = None
        self.frames = 0

    def __call__(self, frame: np.ndarray, t: float) -> np.ndarray:
        if self.save_video is not None:
            self._write(frame)
        if self.analyzer is None:
            row = _bare_analyzer(frame, t)
            row[0] = self.frames
        else:
            row = self.analyzer(frame, t)
            if not isinstance(row, dict):  # a multi-face analyzer gives {viewer: row}
                row = np.asarray(row, dtype=np.float64)
        self.frames += 1
        return row

    def _write(self, frame: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            self.save_video.parent.mkdir(parents=True, exist_ok=True)
            h, w = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self.save_video), cv2.VideoWriter_fourcc(*"mp4v"), self.fps or 30.0,
                                           (w, h))
        self._writer.write(frame)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def _stream_info(name: str, analyzer, viewer: str, fps: float, source_id: str) -> StreamInfo:
    channels = tuple(getattr(analyzer, "channels", BARE_CHANNELS) if analyzer is not None else BARE_CHANNELS)
    units = tuple(getattr(analyzer, "units", BARE_UNITS) if analyzer is not None else BARE_UNITS)
    kind = "Face" if analyzer is not None and "face_present" in channels else "VideoFrames"
    return StreamInfo(name, kind, channels, units, float(fps), source_id, viewer=viewer)


class _PerViewer:
    """Chunks of one camera's rows: one stream, or one stream per viewer when the analyzer sees several
    faces (:class:`~engage.signals.multi_face.MultiFaceAnalyzer` rows are ``{viewer: row}``; each viewer's
    stream is named after the camera's, with the viewer id in place of the camera's viewer)."""

    def _infos_init(self, kind: str, viewer: str) -> None:
        self._kind, self._viewer = kind, viewer
        self._infos: dict[str, StreamInfo] = {}
        self.multi = bool(getattr(self.analyzer, "multi_face", False))

    def _info_for(self, viewer: str) -> StreamInfo:
        info = self._infos.get(viewer)
        if info is None:
            info = self._infos[viewer] = _stream_info(f"{self._kind}-{viewer}-face", self.analyzer, viewer,
                                                      self.fps, f"engage-{viewer}-{self._kind}-face")
        return info

    def streams(self) -> list[StreamInfo]:
        return list(self._infos.values()) if self.multi else [self.info]

    def _chunks(self, rows: list, ts: list[float]) -> list[Chunk]:
        if not rows:
            return []
        if not self.multi:
            return [Chunk.from_rows(self.info, rows, ts)]
        by: dict[str, tuple[list, list]] = {}
        for row, t in zip(rows, ts):
            for viewer, r in row.items():
                by.setdefault(viewer, ([], []))
                by[viewer][0].append(np.asarray(r, dtype=np.float64))
                by[viewer][1].append(t)
        return [Chunk.from_rows(self._info_for(v), r, t) for v, (r, t) in by.items()]


class VideoFileSource(_PerViewer, Source):
    """A video file replayed frame by frame on the session clock (deterministic).

    Frame ``i`` has timestamp ``start + i / fps``; ``read(until)`` decodes the frames up to
    ``until``. A file that stops decoding early ends the stream and is reported as a
    ``sensor.gap`` with reason ``decode error`` when frames were promised beyond it.
    """

    name = "video"

    def __init__(self, path: str | Path, analyzer: Callable | None = None, viewer: str = "viewer-1",
                 start: float = 0.0, save_video: str | Path | None = None, capture_factory=_opencv_capture,
                 chunk_frames: int = 8) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputFileError(f"{path}: video file not found")
        self._cap = capture_factory(str(self.path))
        if self._cap is None or not self._cap.isOpened():
            raise InputFileError(f"{path}: cannot open as a video (unknown format or corrupt file)")
        self.fps = float(self._cap.get(5) or 0.0)  # cv2.CAP_PROP_FPS
        if not np.isfinite(self.fps) or self.fps <= 0:
            self.fps = 30.0
            log.warning("%s: no frame rate in the file; assuming 30 fps", path)
        self.frame_count = int(self._cap.get(7) or 0)  # cv2.CAP_PROP_FRAME_COUNT
        self._first = self._cap.read()
        if not self._first[0]:
            self._cap.release()
            raise InputFileError(f"{path}: no frame could be decoded (corrupt or empty video)")
        self.t0 = float(start)
        self.analyzer = analyzer
        self._sink = _FrameSink(analyzer, save_video, self.fps)
        self._index = 0
        self._done = False
        self.chunk_frames = chunk_frames
        self.info = _stream_info(f"video-{viewer}-face", analyzer, viewer, self.fps, f"engage-{viewer}-video-face")
        self._infos_init("video", viewer)

    def start_time(self) -> float | None:
        return self.t0

    def next_time(self) -> float | None:
        return None if self._done else self.t0 + self._index / self.fps

    @property
    def exhausted(self) -> bool:
        return self._done

    def _next_frame(self):
        if self._first is not None:
            ok, frame = self._first
            self._first = None
            return ok, frame
        return self._cap.read()

    def frames(self):
        """Iterate ``(timestamp, frame)`` over the whole file (for evaluation tools)."""
        while not self._done:
            ok, frame = self._next_frame()
            if not ok or frame is None:
                self._finish()
                return
            t = self.t0 + self._index / self.fps
            self._index += 1
            yield t, frame

    def read(self, until: float) -> list[Chunk]:
        rows, ts = [], []
        while not self._done and self.t0 + self._index / self.fps <= until:
            ok, frame = self._next_frame()
            if not ok or frame is None:
                self._finish()
                break
            t = self.t0 + self._index / self.fps
            self._index += 1
            rows.append(self._sink(frame, t))
            ts.append(t)
        return self._chunks(rows, ts)

    def _finish(self) -> None:
        self._done = True
        missing = self.frame_count - self._index
        if missing > 1 and hasattr(self, "ctx"):
            t = self.t0 + self._index / self.fps
            self.ctx.counters[f"{self.name}.undecodable_frames"] += missing
            self.ctx.emit("sensor.gap", t, evidence={"stream": self.info.name, "duration_s": missing / self.fps,
                                                     "reason": "decode error", "frames": missing}, source=self.name)
        self._cap.release()
        self._sink.close()

    def stop(self) -> None:
        if not self._done:
            self._done = True
            self._cap.release()
            self._sink.close()


class WebcamSource(_PerViewer, ThreadedSource):
    """A live camera (OpenCV index or stream URL) captured on its own thread; see the module docstring.

    >>> WebcamSource(99, capture_factory=lambda d: None)
    Traceback (most recent call last):
    ...
    engage.core.errors.InputFileError: camera 99: cannot be opened (no such device, or in use by another program)
    """

    name = "webcam"

    def __init__(self, device: int | str = 0, analyzer: Callable | None = None, viewer: str = "viewer-1",
                 width: int = 640, height: int = 480, fps: float = 30.0, save_video: str | Path | None = None,
                 capture_factory=_opencv_capture, clock: Callable[[], float] | None = None, retry_s: float = 1.0,
                 chunk_frames: int = 1) -> None:
        super().__init__(max_chunks=256)
        self.device = device
        self.label = f"camera {device}" if isinstance(device, int) else str(device)
        self._factory = capture_factory
        self.width, self.height, self.fps = width, height, float(fps)
        self.retry_s = retry_s
        if clock is None:
            import pylsl

            clock = pylsl.local_clock
        self._clock = clock
        self._cap = self._open()
        if self._cap is None:
            raise InputFileError(f"{self.label}: cannot be opened (no such device, or in use by another program)")
        self._sink = _FrameSink(analyzer, save_video, self.fps)
        self.info = _stream_info(f"webcam-{viewer}-face", analyzer, viewer, self.fps, f"engage-{viewer}-webcam-face")
        self.analyzer = analyzer
        self._infos_init("webcam", viewer)
        self._more: list[Chunk] = []  # several faces: the frame's other viewers' chunks, handed out by read()
        self._last_t: float | None = None
        self._lost_at: float | None = None
        self._next_retry = 0.0
        self._pending: list[tuple[str, float, dict]] = []
        self._events_lock = threading.Lock()
        self.dropped_frames = 0
        self.reconnects = 0

    def _open(self):
        try:
            cap = self._factory(self.device)
        except Exception as exc:  # noqa: BLE001 - drivers raise anything
            log.warning("%s: open failed: %s", self.label, exc)
            return None
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            return None
        for prop, value in ((3, self.width), (4, self.height), (5, self.fps)):  # CAP_PROP_FRAME_WIDTH/HEIGHT/FPS
            try:
                cap.set(prop, value)
            except Exception:  # noqa: BLE001 - a device may refuse a setting
                pass
        return cap

    def _note(self, kind: str, t: float, evidence: dict) -> None:
        with self._events_lock:
            self._pending.append((kind, t, evidence))

    def acquire(self) -> Chunk | None:
        if self._cap is None:  # lost: retry now and then
            now = self._clock()
            if now < self._next_retry:
                time.sleep(min(0.05, self._next_retry - now))
                return None
            self._cap = self._open()
            if self._cap is None:
                self._next_retry = now + self.retry_s
                return None
            self.reconnects += 1
            self._note("sensor.gap", self._lost_at or now, {
                "stream": self.info.name, "duration_s": now - (self._lost_at or now), "reason": "camera lost",
                "reconnected": True})
            log.warning("%s: camera back after %.1f s", self.label, now - (self._lost_at or now))
            self._lost_at, self._last_t = None, None
        try:
            ok, frame = self._cap.read()
        except Exception as exc:  # noqa: BLE001
            log.warning("%s: read failed: %s", self.label, exc)
            ok, frame = False, None
        t = self._clock()
        if not ok or frame is None:
            log.warning("%s: camera stopped delivering frames; retrying every %.1f s", self.label, self.retry_s)
            try:
                self._cap.release()
            except Exception:  # noqa: BLE001
                pass
            self._cap = None
            self._lost_at = t
            self._next_retry = t + self.retry_s
            return None
        if self._last_t is not None and self.fps > 0:
            skipped = int(round((t - self._last_t) * self.fps)) - 1
            if skipped > 0:
                self.dropped_frames += skipped
        self._last_t = t
        chunks = self._chunks([self._sink(frame, t)], [t])
        if len(chunks) > 1:
            with self._events_lock:
                self._more.extend(chunks[1:])
        return chunks[0] if chunks else None

    def read(self, until: float) -> list[Chunk]:
        with self._events_lock:
            pending, self._pending = self._pending, []
            more, self._more = self._more, []
        for kind, t, evidence in pending:
            self.ctx.counters[f"{self.name}.gaps"] += 1
            self.ctx.emit(kind, t, evidence=evidence, source=self.name)
        if self.dropped_frames:
            self.ctx.counters[f"{self.name}.dropped_frames"] = self.dropped_frames
        return super().read(until) + more

    def stop(self) -> None:
        super().stop()
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._sink.close()
