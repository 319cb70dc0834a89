"""Media made by code with ffmpeg: test clips a browser can be checked against, tones, and the helpers the
sample film is made with.

:func:`colour_clip` makes a clip of one solid colour whose bottom strip is a 12-bit binary frame counter
(white block = 1, least significant bit on the left) with the frame number written in the corner, so a
test can read from the page's pixels which clip is showing and that it is moving. :func:`tone` makes
a sine tone. Both write WebM/Ogg (VP8/VP9, Opus), which every Chromium plays.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp())
>>> colour_clip(out / "red.webm", (200, 30, 30), seconds=1.0).stat().st_size > 1000  # doctest: +SKIP
True
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from engage.core.errors import EngageError

#: The counter strip: the bottom ``STRIP`` of the picture, ``BITS`` blocks across.
STRIP = 0.14
BITS = 12


class MediaToolError(EngageError):
    """ffmpeg is missing or failed while making media."""


def ffmpeg() -> str:
    """The ffmpeg executable; :class:`MediaToolError` with how to install it when there is none."""
    path = shutil.which("ffmpeg")
    if path is None:
        raise MediaToolError("ffmpeg is not installed (apt-get install ffmpeg, brew install ffmpeg, or "
                             "https://ffmpeg.org/download.html); it makes the clips and sounds")
    return path


def run_ffmpeg(args: Sequence[str], what: str, timeout: float = 600.0) -> None:
    """Run ffmpeg quietly with ``args``; :class:`MediaToolError` naming ``what`` and ffmpeg's last words."""
    cmd = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MediaToolError(f"ffmpeg took over {timeout:g} s making {what}") from None
    if done.returncode != 0:
        tail = " ".join((done.stderr or "").strip().splitlines()[-3:])
        raise MediaToolError(f"ffmpeg failed making {what}: {tail or 'exit ' + str(done.returncode)}")


def _counter_graph(width: int, height: int, label: str | None, text: bool) -> str:
    """The filter graph drawing the counter strip (made at 12 x 2 pixels, scaled up without smoothing) and,
    with ``text``, the frame number, over input 0; input 1 is a black 12 x 2 source."""
    strip = max(8, int(round(height * STRIP)) // 2 * 2)
    graph = (f"[1]format=gray,geq=lum='16+219*mod(floor(N/pow(2\\,X))\\,2)',"
             f"scale={width}:{strip}:flags=neighbor,format=yuv420p[strip];"
             f"[0][strip]overlay=0:H-{strip}:shortest=1")
    if text:
        words = "%{frame_num}" if not label else f"{label} %{{frame_num}}"
        graph += f",drawtext=text='{words}':x=10:y=10:fontsize=h/7:fontcolor=white"
    return graph


def colour_clip(path: str | Path, rgb: tuple[int, int, int], seconds: float = 4.0, size: tuple[int, int] = (320, 180),
                fps: int = 30, label: str | None = None, codec: str = "vp8", text: bool = True) -> Path:
    """A clip of one solid colour with a frame counter (see the module docstring).

    Parameters
    ----------
    path : str or Path
        Where to write it (``.webm``; ``.mp4`` with ``codec="h264"``).
    rgb : tuple of int
        The colour.
    seconds, size, fps
        Its length, width × height and frame rate.
    label : str, optional
        A word drawn before the frame number.
    text : bool
        Draw the frame number for people (needs a font; the strip is what code reads).
    codec : {"vp8", "vp9", "h264"}
        The video codec.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = "0x{:02x}{:02x}{:02x}".format(*rgb)
    codecs = {"vp8": ["-c:v", "libvpx", "-b:v", "1M", "-crf", "8", "-deadline", "realtime", "-cpu-used", "8"],
              "vp9": ["-c:v", "libvpx-vp9", "-b:v", "1M", "-crf", "20", "-deadline", "realtime", "-cpu-used", "8",
                      "-row-mt", "1"],
              "h264": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-movflags", "+faststart"]}
    if codec not in codecs:
        raise ValueError(f"codec must be one of {', '.join(codecs)}, got {codec!r}")
    for with_text in ((True, False) if text else (False,)):  # drawtext needs a font; the strip does not
        try:
            run_ffmpeg(["-f", "lavfi", "-i", f"color=c={colour}:s={size[0]}x{size[1]}:r={fps}:d={seconds:g}",
                        "-f", "lavfi", "-i", f"color=c=black:s={BITS}x2:r={fps}:d={seconds:g}",
                        "-filter_complex", _counter_graph(size[0], size[1], label, with_text),
                        "-pix_fmt", "yuv420p", "-g", str(max(1, fps // 2)), *codecs[codec], "-an", str(path)],
                       f"the clip {path.name}")
            return path
        except MediaToolError:
            if not with_text or not text:
                raise
    return path


def tone(path: str | Path, frequency: float = 440.0, seconds: float = 2.0, volume: float = 0.3) -> Path:
    """A sine tone (Ogg Opus for ``.ogg``/``.opus``, else whatever ffmpeg picks for the extension)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = ["-c:a", "libopus", "-b:a", "64k"] if path.suffix.lower() in (".ogg", ".opus") else []
    run_ffmpeg(["-f", "lavfi", "-i", f"sine=frequency={frequency:g}:duration={seconds:g}:sample_rate=48000",
                "-af", f"volume={volume:g}", *codec, str(path)], f"the tone {path.name}")
    return path
