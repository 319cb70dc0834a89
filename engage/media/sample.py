"""The sample film: the media of *The Last Broadcast* made by code - stills drawn with PIL and NumPy, short
looping clips made from them with ffmpeg (grain, rain, flicker, lightning, a turning record, blinking
lights), ambience, music stems and sound effects synthesised with NumPy - and the ``media.toml`` that
maps them to the story's scenes.

Nothing here is a recording or a download: the film is licensed with engage (MIT) and can be made again
on any machine with ffmpeg (``engage media make-sample DIR``, a few minutes). The result plays with::

    engage live --profile simulated --story engage/narrative/stories/last_broadcast.ink.json --media DIR --dashboard

>>> SCENES["studio"].set, SCENES["power_cut"].transition
('studio', 'cut')
"""

from __future__ import annotations

import math
import tempfile
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .synth import run_ffmpeg

W, H = 1280, 720            # stills
CLIP_W, CLIP_H = 854, 480   # clips (the page scales them to the screen)
CLIP_S = 8                  # every clip loops seamlessly at this length
FPS = 24
RATE = 48_000               # audio sample rate
BED_S = 24                  # ambience and stems loop at this length

PALETTE = {
    "amber": (200, 128, 40), "teal": (30, 130, 130), "crimson": (150, 16, 36), "sepia": (125, 82, 40),
    "black": (30, 34, 44), "blue": (40, 80, 150), "storm": (60, 70, 90), "grey": (110, 116, 124),
    "white": (220, 225, 235), "gold": (215, 165, 60),
}


@dataclass(frozen=True)
class Shot:
    """How one scene looks and sounds."""

    set: str
    palette: str
    effects: tuple[str, ...] = ()
    bed: str = "room"
    sfx: tuple[str, ...] = ()
    transition: str | None = None
    motion: str = "in"
    seed: int = 0
    extra: dict = field(default_factory=dict, hash=False)


#: Every scene of The Last Broadcast.
SCENES: dict[str, Shot] = {
    "studio": Shot("studio", "amber", ("window_rain", "flicker"), "rain"),
    "letters": Shot("letters", "amber", ("flicker",), "rain", motion="out"),
    "record": Shot("turntable", "amber", ("spin", "window_rain"), "rain", ("needle.ogg @ 0.4",)),
    "caller": Shot("phone", "teal", ("blink",), "room", ("ring.ogg @ 0.3",), motion="left"),
    "song": Shot("turntable", "teal", ("spin",), "room", ("needle.ogg @ 0.2",), seed=1),
    "red_line": Shot("phone", "crimson", ("blink",), "room", ("ring.ogg @ 0", "ring.ogg @ 3.5"), seed=1),
    "archive": Shot("archive", "sepia", ("flicker",), "room", motion="right"),
    "power_cut": Shot("dark_studio", "black", ("flicker_hard",), "dark", ("cut.ogg @ 0", "generator.ogg @ 2.5"),
                      "cut"),
    "police": Shot("phone", "blue", ("blink",), "room", ("ring.ogg @ 0.5",), seed=2),
    "tapes": Shot("reels", "sepia", ("flicker",), "room"),
    "tea": Shot("mugs", "amber", ("flicker",), "rain", motion="out"),
    "numbers_on_air": Shot("city", "crimson", ("windows", "rain"), "rain", ("static.ogg @ 0",), seed=1),
    "decode": Shot("numbers", "teal", (), "room", motion="left"),
    "intruder": Shot("doorway", "black", ("flicker_hard",), "dark", ("door.ogg @ 0.3",), "cut"),
    "warn": Shot("phone", "blue", ("blink", "window_rain"), "rain", ("ring.ogg @ 0",), seed=3),
    "surrender": Shot("doorway", "grey", ("flicker",), "rain", seed=1, motion="out"),
    "struggle": Shot("dark_studio", "crimson", ("flash",), "dark", ("shot.ogg @ 1.5",), "cut", seed=1),
    "rooftop": Shot("rooftop", "storm", ("rain", "lightning"), "storm", ("thunder.ogg @ 2",)),
    "talk_down": Shot("rooftop", "storm", ("rain",), "storm", seed=1, motion="out"),
    "mast": Shot("sparks", "white", ("flash", "rain"), "storm", ("sparks.ogg @ 0.1", "thunder.ogg @ 0.6"), "cut"),
    "vigil": Shot("ambulance", "grey", ("siren",), "room", motion="out"),
    "dawn": Shot("dawn", "gold", (), "dawn", transition="crossfade 4", motion="out"),
    "silence": Shot("offair", "grey", ("static",), "static", ("static.ogg @ 0",), "crossfade 3"),
    "last_song": Shot("window", "teal", ("rain",), "rain", transition="crossfade 3"),
}


# ---------------------------------------------------------------------------------------------------------------
# drawing: float images in 0..1, light added, shapes painted through PIL masks
# ---------------------------------------------------------------------------------------------------------------


def _rgb(c: tuple[int, int, int]) -> np.ndarray:
    return np.asarray(c, dtype=np.float32) / 255.0


class Canvas:
    """A float RGB picture with the few operations the sets are drawn with."""

    def __init__(self, top, bottom, seed: int, w: int = W, h: int = H) -> None:
        self.w, self.h = w, h
        self.rng = np.random.default_rng(seed)
        y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        self.px = (_rgb(top) * (1 - y) + _rgb(bottom) * y) * np.ones((1, w, 1), np.float32)
        self.yy, self.xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def glow(self, x: float, y: float, r: float, colour, strength: float = 1.0, squash: float = 1.0) -> None:
        d2 = ((self.xx - x * self.w) ** 2 + ((self.yy - y * self.h) / squash) ** 2) / (r * self.w) ** 2
        self.px += np.exp(-d2)[..., None] * _rgb(colour) * strength

    def paint(self, draw: Callable, colour, alpha: float = 1.0, blur: float = 0.0, clip=None) -> None:
        from PIL import Image, ImageDraw, ImageFilter

        mask = Image.new("L", (self.w, self.h), 0)
        draw(ImageDraw.Draw(mask), self.w, self.h)
        if blur:
            mask = mask.filter(ImageFilter.GaussianBlur(blur))
        a = np.asarray(mask, np.float32)[..., None] / 255.0 * alpha
        if clip is not None:  # only inside (x0, y0, x1, y1), in fractions of the picture
            keep = np.zeros_like(a)
            keep[int(clip[1] * self.h):int(clip[3] * self.h), int(clip[0] * self.w):int(clip[2] * self.w)] = 1
            a = a * keep
        self.px = self.px * (1 - a) + _rgb(colour) * a

    def rain(self, box=(0, 0, 1, 1), n: int = 500, colour=(200, 210, 230), alpha: float = 0.25) -> None:
        x0, y0, x1, y1 = box
        pts = self.rng.random((n, 3))

        def draw(d, w, h):
            for px_, py_, ln in pts:
                x, y = (x0 + (x1 - x0) * px_) * w, (y0 + (y1 - y0) * py_) * h
                d.line([(x, y), (x - 3, y + 12 + 30 * ln)], fill=255, width=1)
        self.paint(draw, colour, alpha, blur=0.6)

    def skyline(self, base: float, colour, lit=(250, 200, 120), lit_share: float = 0.25, seed_shift: int = 0,
                clip=None) -> None:
        rng = np.random.default_rng(1000 + seed_shift)
        blocks = []
        x = -0.02
        while x < 1.02:
            bw, bh = rng.uniform(0.03, 0.09), rng.uniform(0.08, 0.3)
            blocks.append((x, base - bh, x + bw, 1.0))
            x += bw + rng.uniform(0.0, 0.01)
        self.paint(lambda d, w, h: [d.rectangle([b[0] * w, b[1] * h, b[2] * w, b[3] * h], fill=255) for b in blocks],
                   colour, clip=clip)
        wins = []
        for b in blocks:
            for wx in np.arange(b[0] + 0.006, b[2] - 0.008, 0.013):
                for wy in np.arange(b[1] + 0.012, 0.98, 0.03):
                    if rng.random() < lit_share:
                        wins.append((wx, wy))
        self.paint(lambda d, w, h: [d.rectangle([x * w, y * h, x * w + 6, y * h + 8], fill=255) for x, y in wins],
                   lit, 0.9, clip=clip)

    def text(self, xy, words: str, size: int, colour, alpha: float = 1.0, mono: bool = False, blur: float = 0.0,
             angle: float = 0.0) -> None:
        font = _font(size, mono)

        def draw(d, w, h):
            d.text((xy[0] * w, xy[1] * h), words, fill=255, font=font)
        self.paint(draw, colour, alpha, blur)

    def finish(self, tint, grain: float = 0.035, vignette: float = 0.55) -> "np.ndarray":
        px = self.px * (0.82 + 0.18 * _rgb(tint) / max(1e-3, float(_rgb(tint).max())))
        r = np.sqrt(((self.xx / self.w - 0.5) * 1.2) ** 2 + (self.yy / self.h - 0.5) ** 2)
        px *= (1 - vignette * np.clip((r - 0.3) / 0.5, 0, 1) ** 1.6)[..., None]
        px += self.rng.normal(0, grain, px.shape[:2])[..., None]
        px = px / (1 + 0.15 * px)  # a soft shoulder instead of clipping the highlights
        return (np.clip(px, 0, 1) * 255 + 0.5).astype(np.uint8)


def _font(size: int, mono: bool):
    from PIL import ImageFont

    for name in (("DejaVuSansMono.ttf", "LiberationMono-Regular.ttf") if mono else
                 ("DejaVuSerif.ttf", "LiberationSerif-Regular.ttf", "DejaVuSans.ttf")):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _dark(c, k: float = 0.12):
    return tuple(int(v * k) for v in c)


#: Where the studio's window is, in fractions of the picture (the clips rain into it).
WINDOW = (0.58, 0.12, 0.93, 0.55)


def _studio_room(c: Canvas, pal, window=True, lamp=True, rain=True) -> None:
    if window:  # the window onto the rainy town, upper right
        c.paint(lambda d, w, h: d.rectangle([0.58 * w, 0.12 * h, 0.93 * w, 0.55 * h], fill=255), (22, 30, 48), 0.95)
        c.glow(0.76, 0.30, 0.16, (60, 80, 120), 0.5)
        c.skyline(0.55, (10, 12, 20), lit_share=0.12, seed_shift=3, clip=(0.58, 0.12, 0.93, 0.55))
        if rain:
            c.rain((0.58, 0.12, 0.93, 0.55), 260)
        c.paint(lambda d, w, h: [d.line([(0.755 * w, 0.12 * h), (0.755 * w, 0.55 * h)], fill=255, width=6),
                                 d.line([(0.58 * w, 0.335 * h), (0.93 * w, 0.335 * h)], fill=255, width=6),
                                 d.rectangle([0.58 * w, 0.12 * h, 0.93 * w, 0.55 * h], outline=255, width=10)],
                (12, 10, 9))
    if lamp:
        c.glow(0.22, 0.38, 0.22, pal, 0.9)
        c.glow(0.22, 0.40, 0.05, (255, 230, 180), 0.9)
    # the desk
    c.paint(lambda d, w, h: d.polygon([(0, 0.74 * h), (w, 0.70 * h), (w, h), (0, h)], fill=255), _dark(pal, 0.22))
    c.paint(lambda d, w, h: d.line([(0, 0.74 * h), (w, 0.70 * h)], fill=255, width=3), pal, 0.35)


def set_studio(c: Canvas, pal, shot: Shot) -> None:
    _studio_room(c, pal)
    # the microphone on its arm
    c.paint(lambda d, w, h: [d.line([(0.05 * w, 0.18 * h), (0.30 * w, 0.30 * h), (0.40 * w, 0.47 * h)], fill=255,
                                    width=9),
                             d.rounded_rectangle([0.37 * w, 0.44 * h, 0.46 * w, 0.66 * h], radius=30, fill=255)],
            (14, 12, 12))
    c.glow(0.41, 0.50, 0.015, pal, 0.5)
    # ON AIR
    c.paint(lambda d, w, h: d.rounded_rectangle([0.08 * w, 0.06 * h, 0.26 * w, 0.15 * h], radius=10, fill=255),
            (120, 10, 10))
    c.glow(0.17, 0.105, 0.09, (255, 40, 30), 0.55, squash=0.5)
    c.text((0.105, 0.072), "ON AIR", 44, (255, 220, 210), mono=False)
    # a mixing desk with its meters
    c.paint(lambda d, w, h: d.polygon([(0.48 * w, 0.78 * h), (0.98 * w, 0.74 * h), (w, 0.92 * h), (0.46 * w, 0.97 * h)],
                                      fill=255), (20, 18, 16))
    for i in range(10):
        x = 0.52 + i * 0.044
        c.glow(x, 0.80 - i * 0.003, 0.006, (120, 255, 140) if i < 7 else (255, 80, 40), 0.8)


def set_letters(c: Canvas, pal, shot: Shot) -> None:
    _studio_room(c, pal, lamp=False)
    c.glow(0.45, 0.62, 0.30, pal, 0.9, squash=0.5)
    c.glow(0.45, 0.25, 0.04, (255, 235, 190), 1.0)
    c.paint(lambda d, w, h: d.polygon([(0.40 * w, 0.22 * h), (0.50 * w, 0.22 * h), (0.47 * w, 0.12 * h),
                                       (0.43 * w, 0.12 * h)], fill=255), (30, 24, 18))
    rng = np.random.default_rng(7)
    for i in range(6):
        x, y, a = 0.22 + rng.random() * 0.46, 0.70 + rng.random() * 0.18, rng.uniform(-0.3, 0.3)
        pts = [(x + dx * math.cos(a) - dy * math.sin(a), y + dx * math.sin(a) * 0.56 + dy * math.cos(a))
               for dx, dy in ((0, 0), (0.11, 0), (0.11, 0.09), (0, 0.09))]
        c.paint(lambda d, w, h, pts=pts: d.polygon([(px * w, py * h) for px, py in pts], fill=255), (235, 222, 196),
                0.8)
        c.paint(lambda d, w, h, pts=pts: [d.line([(pts[0][0] * w + 10, pts[0][1] * h + 14 + 9 * k),
                                                   (pts[1][0] * w - 14, pts[1][1] * h + 14 + 9 * k)], fill=255)
                                           for k in range(5)], (60, 50, 70), 0.5)


def set_turntable(c: Canvas, pal, shot: Shot) -> None:
    _studio_room(c, pal, lamp=False)
    c.glow(0.40, 0.55, 0.35, pal, 0.7, squash=0.6)
    c.paint(lambda d, w, h: d.rounded_rectangle([0.14 * w, 0.56 * h, 0.70 * w, 0.98 * h], radius=18, fill=255),
            (28, 22, 18))
    c.paint(lambda d, w, h: d.ellipse([0.20 * w, 0.60 * h, 0.56 * w, 0.95 * h], fill=255), (8, 8, 9))
    c.paint(lambda d, w, h: [d.ellipse([(0.38 - r) * w, (0.775 - r * 0.97) * h, (0.38 + r) * w,
                                        (0.775 + r * 0.97) * h], outline=255) for r in np.arange(0.05, 0.175, 0.006)],
            (60, 60, 64), 0.5)
    c.paint(lambda d, w, h: d.ellipse([0.355 * w, 0.752 * h, 0.405 * w, 0.798 * h], fill=255), pal)
    c.paint(lambda d, w, h: [d.line([(0.64 * w, 0.62 * h), (0.62 * w, 0.80 * h), (0.47 * w, 0.84 * h)], fill=255,
                                    width=7)], (190, 190, 196), 0.9)


def set_phone(c: Canvas, pal, shot: Shot) -> None:
    _studio_room(c, pal, rain=shot.seed == 3)
    c.glow(0.50, 0.70, 0.30, pal, 0.6, squash=0.5)
    c.paint(lambda d, w, h: [d.rounded_rectangle([0.36 * w, 0.58 * h, 0.64 * w, 0.86 * h], radius=40, fill=255),
                             d.rounded_rectangle([0.33 * w, 0.48 * h, 0.67 * w, 0.58 * h], radius=36, fill=255)],
            _dark(pal, 0.35))
    c.paint(lambda d, w, h: d.ellipse([0.445 * w, 0.64 * h, 0.555 * w, 0.835 * h], outline=255, width=8), pal, 0.6)
    c.glow(0.60, 0.63, 0.012, (255, 60, 40) if shot.palette == "crimson" else (255, 255, 255), 1.2)


def set_archive(c: Canvas, pal, shot: Shot) -> None:
    c.glow(0.5, 0.12, 0.25, pal, 0.9)
    c.glow(0.5, 0.15, 0.03, (255, 230, 180), 1.0)
    rng = np.random.default_rng(11)
    for row in range(5):
        y = 0.22 + row * 0.16
        c.paint(lambda d, w, h, y=y: d.rectangle([0, y * h, w, y * h + 8], fill=255), _dark(pal, 0.4))
        x = 0.0
        boxes = []
        while x < 1:
            bw = rng.uniform(0.03, 0.08)
            boxes.append((x, y - rng.uniform(0.06, 0.13), x + bw - 0.004, y))
            x += bw
        shade = tuple(int(v) for v in (_rgb(pal) * 255 * rng.uniform(0.35, 0.6)))
        c.paint(lambda d, w, h, boxes=boxes: [d.rectangle([a * w, b * h, cc * w, dd * h], fill=255)
                                              for a, b, cc, dd in boxes], shade, 0.85)
    c.paint(lambda d, w, h: d.line([(0.5 * w, 0), (0.5 * w, 0.13 * h)], fill=255, width=2), (20, 20, 20))


def set_dark_studio(c: Canvas, pal, shot: Shot) -> None:
    _studio_room(c, (40, 40, 50), lamp=False, rain=True)
    c.px *= 0.45
    c.glow(0.30, 0.42, 0.25, (210, 220, 255) if shot.seed == 0 else (255, 40, 40), 0.45, squash=0.4)
    c.paint(lambda d, w, h: d.polygon([(0.08 * w, 0.42 * h), (0.62 * w, 0.30 * h), (0.62 * w, 0.55 * h)], fill=255),
            (230, 235, 255), 0.12, blur=18)  # a torch beam
    c.paint(lambda d, w, h: [d.ellipse([0.68 * w, 0.26 * h, 0.76 * w, 0.40 * h], fill=255),
                             d.polygon([(0.64 * w, 0.40 * h), (0.80 * w, 0.40 * h), (0.84 * w, 0.95 * h),
                                        (0.60 * w, 0.95 * h)], fill=255)], (4, 4, 6))


def set_reels(c: Canvas, pal, shot: Shot) -> None:
    c.glow(0.5, 0.45, 0.4, pal, 0.7)
    c.paint(lambda d, w, h: d.rounded_rectangle([0.18 * w, 0.12 * h, 0.82 * w, 0.92 * h], radius=14, fill=255),
            (36, 30, 26))
    for cx in (0.34, 0.66):
        c.paint(lambda d, w, h, cx=cx: d.ellipse([(cx - 0.12) * w, 0.2 * h, (cx + 0.12) * w, 0.62 * h], fill=255),
                (16, 14, 12))
        c.paint(lambda d, w, h, cx=cx: [d.line([(cx * w, 0.41 * h), ((cx + 0.1 * math.cos(a)) * w,
                                                                     (0.41 + 0.18 * math.sin(a)) * h)], fill=255,
                                               width=10) for a in np.linspace(0, 2 * math.pi, 4)[:3]],
                (150, 140, 130), 0.8)
    c.paint(lambda d, w, h: d.line([(0.34 * w, 0.62 * h), (0.5 * w, 0.72 * h), (0.66 * w, 0.62 * h)], fill=255,
                                   width=4), (90, 60, 30))
    c.text((0.3, 0.78), "K-7  1962  NUMBERS", 34, (230, 210, 170), 0.7, mono=True)


def set_mugs(c: Canvas, pal, shot: Shot) -> None:
    _studio_room(c, pal, lamp=True)
    for x in (0.40, 0.56):
        c.paint(lambda d, w, h, x=x: [d.rounded_rectangle([x * w, 0.58 * h, (x + 0.09) * w, 0.76 * h], radius=12,
                                                          fill=255),
                                      d.ellipse([(x + 0.075) * w, 0.61 * h, (x + 0.12) * w, 0.70 * h], outline=255,
                                                width=9)], (210, 200, 185), 0.9)
        c.paint(lambda d, w, h, x=x: [d.arc([(x + 0.01 + 0.02 * k) * w, (0.38 + 0.05 * k) * h,
                                             (x + 0.08 + 0.02 * k) * w, (0.50 + 0.05 * k) * h], 200, 340, fill=255,
                                            width=3) for k in range(3)], (240, 240, 240), 0.25, blur=3)


def set_city(c: Canvas, pal, shot: Shot) -> None:
    c.glow(0.5, 1.0, 0.6, pal, 0.6)
    c.skyline(0.72, (6, 6, 10), lit_share=0.35, seed_shift=1)
    c.paint(lambda d, w, h: [d.line([(0.82 * w, 0.1 * h), (0.78 * w, 0.5 * h)], fill=255, width=4),
                             d.line([(0.82 * w, 0.1 * h), (0.86 * w, 0.5 * h)], fill=255, width=4)], (10, 10, 14))
    c.glow(0.82, 0.1, 0.01, (255, 30, 30), 1.5)
    c.rain(n=500, alpha=0.18)


def set_numbers(c: Canvas, pal, shot: Shot) -> None:
    c.glow(0.5, 0.5, 0.5, pal, 0.5)
    c.paint(lambda d, w, h: d.polygon([(0.2 * w, 0.08 * h), (0.82 * w, 0.12 * h), (0.78 * w, 0.98 * h),
                                       (0.16 * w, 0.94 * h)], fill=255), (228, 220, 198), 0.92)
    rng = np.random.default_rng(5)
    for row in range(12):
        if row == 7:
            continue  # the name's row
        words = "   ".join("".join(str(d) for d in rng.integers(0, 10, 5)) for _ in range(4))
        c.text((0.24 - row * 0.003, 0.16 + row * 0.062), words, 28, (40, 36, 50), 0.85, mono=True)
    c.text((0.30, 0.16 + 7 * 0.062), "N A D I A", 30, (150, 20, 20), 0.9, mono=True)
    c.paint(lambda d, w, h: d.ellipse([0.27 * w, 0.585 * h, 0.50 * w, 0.66 * h], outline=255, width=4),
            (150, 20, 20), 0.8)


def set_doorway(c: Canvas, pal, shot: Shot) -> None:
    c.px *= 0.4
    c.paint(lambda d, w, h: d.rectangle([0.38 * w, 0.12 * h, 0.62 * w, 0.92 * h], fill=255), (200, 190, 160), 0.85)
    c.glow(0.5, 0.6, 0.25, (255, 230, 180), 0.5)
    c.paint(lambda d, w, h: [d.ellipse([0.465 * w, 0.28 * h, 0.535 * w, 0.40 * h], fill=255),
                             d.polygon([(0.42 * w, 0.40 * h), (0.58 * w, 0.40 * h), (0.61 * w, 0.92 * h),
                                        (0.39 * w, 0.92 * h)], fill=255)], (6, 6, 8))
    c.paint(lambda d, w, h: d.polygon([(0.38 * w, 0.92 * h), (0.62 * w, 0.92 * h), (0.9 * w, h), (0.1 * w, h)],
                                      fill=255), (200, 190, 160), 0.25, blur=8)


def _mast(c: Canvas, x=0.5, top=0.08, colour=(8, 8, 12)) -> None:
    def draw(d, w, h):
        for side in (-1, 1):
            d.line([(x * w, top * h), ((x + side * 0.07) * w, h)], fill=255, width=5)
        for k in range(1, 12):
            y = top + (1 - top) * k / 12
            half = 0.07 * (y - top) / (1 - top)
            d.line([((x - half) * w, y * h), ((x + half) * w, (y + (1 - top) / 12) * h)], fill=255, width=2)
            d.line([((x + half) * w, y * h), ((x - half) * w, (y + (1 - top) / 12) * h)], fill=255, width=2)
    c.paint(draw, colour)


def set_rooftop(c: Canvas, pal, shot: Shot) -> None:
    c.glow(0.3, 0.1, 0.5, (90, 100, 130), 0.5)
    c.skyline(0.86, (10, 10, 14), lit_share=0.1, seed_shift=2)
    _mast(c, 0.62)
    c.glow(0.62, 0.08, 0.012, (255, 30, 30), 1.3)
    for x in (0.30, 0.37):
        c.paint(lambda d, w, h, x=x: [d.ellipse([x * w, 0.62 * h, (x + 0.025) * w, 0.665 * h], fill=255),
                                      d.rectangle([(x - 0.004) * w, 0.665 * h, (x + 0.029) * w, 0.86 * h], fill=255)],
                (4, 4, 6))
    c.paint(lambda d, w, h: d.rectangle([0, 0.86 * h, w, h], fill=255), (12, 12, 16))
    c.rain(n=900, alpha=0.3)


def set_sparks(c: Canvas, pal, shot: Shot) -> None:
    set_rooftop(c, (60, 70, 90), shot)
    c.glow(0.62, 0.35, 0.12, (255, 250, 230), 1.6)
    rng = np.random.default_rng(3)
    pts = rng.normal(0, 1, (80, 2))
    c.paint(lambda d, w, h: [d.line([(0.62 * w, 0.35 * h), ((0.62 + 0.12 * a) * w, (0.35 + 0.2 * b) * h)], fill=255,
                                    width=2) for a, b in pts], (255, 230, 160), 0.8)


def set_ambulance(c: Canvas, pal, shot: Shot) -> None:
    _studio_room(c, (70, 70, 80), lamp=False)
    c.glow(0.76, 0.30, 0.25, (40, 90, 255), 0.8)
    c.glow(0.35, 0.80, 0.3, (200, 200, 210), 0.25, squash=0.3)
    c.paint(lambda d, w, h: d.ellipse([0.18 * w, 0.74 * h, 0.50 * w, 0.92 * h], fill=255), (10, 10, 12))


def set_dawn(c: Canvas, pal, shot: Shot) -> None:
    c.px = c.px * 0 + 0
    y = np.linspace(0, 1, c.h, dtype=np.float32)[:, None, None]
    c.px = (_rgb((40, 50, 90)) * (1 - y) ** 1.5 + _rgb((250, 170, 90)) * y ** 2) * np.ones((1, c.w, 1), np.float32)
    c.glow(0.35, 0.78, 0.25, (255, 200, 120), 1.0)
    c.glow(0.35, 0.80, 0.05, (255, 245, 220), 1.2)
    c.skyline(0.80, (20, 16, 22), lit=(255, 210, 140), lit_share=0.08, seed_shift=4)
    _mast(c, 0.78, 0.2, (14, 12, 18))


def set_offair(c: Canvas, pal, shot: Shot) -> None:
    bars = [(190, 190, 190), (190, 190, 40), (40, 190, 190), (40, 190, 40), (190, 40, 190), (190, 40, 40),
            (40, 40, 190)]
    for i, col in enumerate(bars):
        c.paint(lambda d, w, h, i=i: d.rectangle([i * w / 7, 0, (i + 1) * w / 7, 0.7 * h], fill=255), col, 0.55)
    c.paint(lambda d, w, h: d.rectangle([0.25 * w, 0.38 * h, 0.75 * w, 0.56 * h], fill=255), (10, 10, 12), 0.9)
    c.text((0.335, 0.40), "OFF AIR", 92, (235, 235, 235), mono=True)


def set_window(c: Canvas, pal, shot: Shot) -> None:
    c.paint(lambda d, w, h: d.rectangle([0.2 * w, 0.1 * h, 0.8 * w, 0.8 * h], fill=255), (14, 24, 34))
    c.skyline(0.8, (6, 8, 12), lit_share=0.18, seed_shift=5, clip=(0.2, 0.1, 0.8, 0.8))
    c.glow(0.5, 0.4, 0.4, pal, 0.35)
    c.rain((0.2, 0.1, 0.8, 0.8), 700, alpha=0.3)
    c.paint(lambda d, w, h: [d.rectangle([0, 0, 0.2 * w, h], fill=255), d.rectangle([0.8 * w, 0, w, h], fill=255),
                             d.rectangle([0, 0, w, 0.1 * h], fill=255), d.rectangle([0, 0.8 * h, w, h], fill=255),
                             d.line([(0.5 * w, 0.1 * h), (0.5 * w, 0.8 * h)], fill=255, width=10)], (20, 18, 16))
    c.glow(0.5, 0.95, 0.3, pal, 0.25)


SETS: dict[str, Callable] = {name[4:]: fn for name, fn in globals().items() if name.startswith("set_")}


def draw_still(scene: str, shot: Shot, w: int = W, h: int = H) -> "np.ndarray":
    """The still of one scene as an RGB uint8 array."""
    pal = PALETTE.get(shot.palette, (110, 110, 110))
    c = Canvas(_dark(pal, 0.35), _dark(pal, 0.08), seed=sum(map(ord, scene)), w=w, h=h)
    SETS[shot.set](c, pal, shot)
    return c.finish(pal)


# ---------------------------------------------------------------------------------------------------------------
# clips: the still, moving
# ---------------------------------------------------------------------------------------------------------------


def _rain_layer(path: Path, seed: int) -> None:
    """A transparent strip of rain twice the clip's height, scrolled down by the clip filter."""
    from PIL import Image, ImageDraw, ImageFilter

    img = Image.new("LA", (CLIP_W, CLIP_H * 2), (255, 0))
    d = ImageDraw.Draw(img)
    rng = np.random.default_rng(seed)
    for x, y, ln, a in rng.random((900, 4)):
        x, y = x * CLIP_W, y * CLIP_H
        for yy in (y, y + CLIP_H):  # the strip repeats, so the scroll wraps without a seam
            d.line([(x, yy), (x - 4, yy + 18 + 26 * ln)], fill=(225, int(40 + 70 * a)), width=1)
    img.filter(ImageFilter.GaussianBlur(0.5)).save(path)


def _record_layer(path: Path) -> None:
    """Light on the record's grooves: two soft opposite sheens, which show it turning."""
    from PIL import Image, ImageDraw, ImageFilter

    size = 420
    img = Image.new("LA", (size, size), (255, 0))
    d = ImageDraw.Draw(img)
    for a0 in (20, 200):
        for k, alpha in ((0, 18), (6, 26), (12, 18)):
            d.arc([30, 30, size - 30, size - 30], a0 + k, a0 + k + 8, fill=(255, alpha), width=110)
    d.ellipse([size * 0.36, size * 0.36, size * 0.64, size * 0.64], fill=(255, 0))  # not on the label
    img.filter(ImageFilter.GaussianBlur(6)).save(path)


def clip_filter(shot: Shot, inputs: dict[str, int]) -> str:
    """The ffmpeg filter graph making a scene's clip from its still (input 0) and its layers: each picture is
    decoded and scaled once and repeated (``loop``); only the effects run per frame."""
    n = CLIP_S
    hold = f"loop=loop=-1:size=1:start=0,setpts=N/({FPS}*TB)"
    chain = [f"[0]scale={CLIP_W}:{CLIP_H},format=yuv420p,{hold},trim=duration={n}"]
    bright = []
    if "flicker" in shot.effects:
        bright.append(f"0.025*sin(2*PI*t*{3 / n:g})+0.012*sin(2*PI*t*{13 / n:g})")
    if "flicker_hard" in shot.effects:
        bright.append(f"-0.35*gt(sin(2*PI*t*{11 / n:g})+sin(2*PI*t*{7 / n:g}),1.2)")
    if "lightning" in shot.effects:
        bright.append("0.55*(between(t,2.0,2.09)+between(t,2.22,2.3))")
    if "flash" in shot.effects:
        bright.append("0.6*between(t,1.5,1.58)+0.3*between(t,1.62,1.7)")
    if "siren" in shot.effects:
        bright.append(f"0.05*sin(2*PI*t*{8 / n:g})")
    if bright:
        chain.append(f"eq=eval=frame:brightness='{'+'.join(bright)}'")
    graph = [",".join(chain) + "[base]"]
    last = "base"
    if "spin" in shot.effects and "record" in inputs:
        w, h = int(CLIP_W * 0.36) // 2 * 2, int(CLIP_H * 0.35) // 2 * 2  # the record in the still
        graph.append(f"[{inputs['record']}]format=rgba,scale={w}:{h},{hold},"
                     f"rotate=a=t*2*PI/{n / 5:g}:c=none,format=yuva420p[rec]")
        graph.append(f"[{last}][rec]overlay=x=(W*0.38-{w // 2}):y=(H*0.775-{h // 2}):format=yuv420:shortest=1[spun]")
        last = "spun"
    if "rain" in shot.effects and "rain" in inputs:
        graph.append(f"[{inputs['rain']}]scale={CLIP_W}:{CLIP_H * 2},format=yuva420p,{hold}[rainl]")
        graph.append(f"[{last}][rainl]overlay=x=0:y='mod(t*{CLIP_H * 6 / n:g}\\,{CLIP_H})-{CLIP_H}':format=yuv420:"
                     "shortest=1[wet]")
        last = "wet"
    if "window_rain" in shot.effects and "rain" in inputs:  # rain seen through the studio's window only
        x0, y0, x1, y1 = (int(v) // 2 * 2 for v in (WINDOW[0] * CLIP_W, WINDOW[1] * CLIP_H, WINDOW[2] * CLIP_W,
                                                       WINDOW[3] * CLIP_H))
        graph.append(f"[{inputs['rain']}]scale={CLIP_W}:{CLIP_H * 2},crop={x1 - x0}:{(y1 - y0) * 2}:0:0,"
                     f"format=yuva420p,{hold}[rainw]")
        graph.append(f"[{last}]split[dry][glass];[glass]crop={x1 - x0}:{y1 - y0}:{x0}:{y0}[pane];"
                     f"[pane][rainw]overlay=x=0:y='mod(t*{(y1 - y0) * 6 / n:g}\\,{y1 - y0})-{y1 - y0}':format=yuv420:"
                     f"shortest=1[wetpane];[dry][wetpane]overlay={x0}:{y0}:format=yuv420[wet]")
        last = "wet"
    if "blink" in shot.effects:
        graph.append(f"[{last}]drawbox=x=iw*0.6-9:y=ih*0.63-9:w=18:h=18:color=white@0.7:t=fill:"
                     f"enable='lt(mod(t\\,1)\\,0.5)'[blk]")
        last = "blk"
    if "windows" in shot.effects:  # lights going out across town, one by one
        rng = np.random.default_rng(4)
        boxes = []
        for i, (x, y) in enumerate(rng.random((14, 2))):
            t0 = 0.5 + i * (n - 1.5) / 14
            boxes.append(f"drawbox=x={int(x * CLIP_W)}:y={int(CLIP_H * (0.75 + 0.2 * y))}:w=36:h=26:color=black@0.8:"
                         f"t=fill:enable='gte(t\\,{t0:.2f})'")
        graph.append(f"[{last}]" + ",".join(boxes) + "[dark]")
        last = "dark"
    strength = 55 if "static" in shot.effects else 7
    graph.append(f"[{last}]noise=alls={strength}:allf=t+u[out]")
    return ";".join(graph)


def make_clip(still: Path, out: Path, shot: Shot, layers: dict[str, Path]) -> None:
    args = ["-i", str(still)]
    inputs: dict[str, int] = {}
    for name in ("rain", "record"):
        wanted = bool({"rain", "window_rain"} & set(shot.effects)) if name == "rain" else ("spin" in shot.effects)
        if wanted:
            inputs[name] = len(inputs) + 1
            args += ["-i", str(layers[name])]
    run_ffmpeg([*args, "-filter_complex", clip_filter(shot, inputs), "-map", "[out]", "-frames:v", str(CLIP_S * FPS),
                "-r", str(FPS), "-c:v", "libvpx", "-b:v", "1400k", "-g", str(FPS), "-deadline", "realtime",
                "-cpu-used", "16", "-pix_fmt", "yuv420p", "-an", str(out)], f"the clip {out.name}")


# ---------------------------------------------------------------------------------------------------------------
# sound: NumPy synthesis, Opus in Ogg
# ---------------------------------------------------------------------------------------------------------------


def _noise(n: int, colour: str, rng) -> np.ndarray:
    x = rng.standard_normal(n)
    if colour == "white":
        return x / 3
    f = np.fft.rfft(x)
    k = np.arange(len(f), dtype=np.float64)
    k[0] = 1
    f /= k ** (0.5 if colour == "pink" else 1.0)
    y = np.fft.irfft(f, n)  # circular: the loop has no seam
    return y / (np.abs(y).max() + 1e-9)


def _band(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    f = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1 / RATE)
    f[(freqs < lo) | (freqs > hi)] = 0
    return np.fft.irfft(f, len(x))


def _norm(x: np.ndarray, peak: float) -> np.ndarray:
    return x * (peak / (np.abs(x).max() + 1e-9))


def bed(kind: str, seconds: float = BED_S, seed: int = 0) -> np.ndarray:
    """A seamless ambience loop."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    room = _norm(_band(_noise(n, "brown", rng), 20, 400), 0.12) + 0.01 * np.sin(2 * np.pi * 50 * t)
    if kind == "room":
        return room
    if kind == "dark":
        return room * 0.6 + _norm(_band(_noise(n, "brown", rng), 20, 120), 0.1)
    rain = _norm(_band(_noise(n, "pink", rng), 900, 9000), 0.16) * (1 + 0.25 * np.sin(2 * np.pi * t * 2 / seconds))
    if kind == "rain":
        return room + rain
    if kind == "storm":
        wind = _norm(_band(_noise(n, "brown", rng), 60, 700), 0.22) * (1 + 0.6 * np.sin(2 * np.pi * t * 3 / seconds))
        return room + rain * 1.6 + wind
    if kind == "static":
        crackle = (rng.random(n) < 0.0008) * rng.standard_normal(n) * 0.5
        return _norm(_band(_noise(n, "white", rng), 1500, 7000), 0.08) + crackle + room * 0.5
    if kind == "dawn":
        birds = np.zeros(n)
        for start in rng.uniform(0, seconds - 1, 14):
            i0, m = int(start * RATE), int(0.12 * RATE)
            tt = np.arange(m) / RATE
            birds[i0:i0 + m] += np.sin(2 * np.pi * (3200 + 900 * np.sin(2 * np.pi * 18 * tt)) * tt) * \
                np.sin(np.pi * tt / tt[-1]) * 0.06
        return room * 0.7 + birds
    raise ValueError(kind)


def stem(kind: str, seconds: float = BED_S) -> np.ndarray:
    """The music stems the player mixes by intensity: a low tension pad and a heartbeat pulse (seamless loops)."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    if kind == "tension":
        swell = 0.6 + 0.4 * np.sin(2 * np.pi * t * 2 / seconds)
        x = sum(np.sin(2 * np.pi * f * t) * a for f, a in ((55.0, 0.5), (55.0 + 1 / seconds * 10, 0.4),
                                                           (82.5, 0.25), (110.0, 0.12), (164.8, 0.06)))
        return _norm(x * swell, 0.22)
    if kind == "pulse":
        beat = 0.75  # 80 bpm, 32 beats in 24 s
        ph = np.mod(t, beat)
        thump = np.sin(2 * np.pi * 48 * ph) * np.exp(-ph * 14) + 0.6 * np.sin(2 * np.pi * 44 * (ph - 0.22)) * \
            np.exp(-np.clip(ph - 0.22, 0, None) * 16) * (ph > 0.22)
        return _norm(thump, 0.35)
    raise ValueError(kind)


def melody(seconds: float = BED_S) -> np.ndarray:
    """'The old song': a slow piano-like tune in A minor (partials with a hammer decay), a seamless loop."""
    n = int(seconds * RATE)
    out = np.zeros(n)
    notes = [(0, 69, 1.5), (1.5, 72, 1.5), (3, 76, 3), (6, 74, 1.5), (7.5, 72, 1.5), (9, 71, 3),
             (12, 69, 1.5), (13.5, 72, 1.5), (15, 76, 1.5), (16.5, 79, 1.5), (18, 77, 3), (21, 76, 3)]
    for start, midi, length in notes:
        f = 440 * 2 ** ((midi - 69) / 12)
        m = int(min(length + 1.5, seconds) * RATE)
        tt = np.arange(m) / RATE
        tone = sum(np.sin(2 * np.pi * f * k * tt) / k ** 1.7 for k in (1, 2, 3, 4)) * np.exp(-tt * 1.6)
        i0 = int(start * RATE)
        idx = (np.arange(m) + i0) % n  # the tail of the last note rings into the loop's start
        np.add.at(out, idx, tone)
        low = 440 * 2 ** ((midi - 12 - 69) / 12)
        np.add.at(out, idx, 0.4 * np.sin(2 * np.pi * low * tt) * np.exp(-tt * 1.2))
    crackle = (np.random.default_rng(9).random(n) < 0.0015) * 0.25
    return _norm(out, 0.3) + crackle * np.random.default_rng(10).standard_normal(n)


def effect(kind: str) -> np.ndarray:
    """A one-shot sound effect."""
    rng = np.random.default_rng(sum(map(ord, kind)))

    def env(seconds, decay):
        tt = np.arange(int(seconds * RATE)) / RATE
        return tt, np.exp(-tt * decay)
    if kind == "ring":  # a telephone: 440 + 480 Hz, two bursts
        tt, _ = env(2.2, 0)
        on = ((tt < 0.4) | ((tt > 0.6) & (tt < 1.0))).astype(float)
        return _norm((np.sin(2 * np.pi * 440 * tt) + np.sin(2 * np.pi * 480 * tt)) * on *
                     (1 + 0.5 * np.sign(np.sin(2 * np.pi * 20 * tt))), 0.35)
    if kind == "needle":  # the stylus drops: a thump, then crackle
        tt, e = env(1.5, 3)
        crackle = (rng.random(len(tt)) < 0.01) * rng.standard_normal(len(tt)) * e
        return _norm(crackle + 0.8 * np.exp(-tt * 60) * np.sin(2 * np.pi * 90 * tt), 0.45)
    if kind == "thunder":
        tt, e = env(5.0, 0.9)
        x = _band(_noise(len(tt), "brown", rng), 20, 300) * e * (1 + 2 * np.exp(-tt * 6))
        return _norm(x, 0.7)
    if kind == "shot":
        tt, e = env(1.6, 9)
        x = rng.standard_normal(len(tt)) * np.exp(-tt * 40) + _band(_noise(len(tt), "brown", rng), 20, 200) * e
        return _norm(x, 0.8)
    if kind == "sparks":
        tt, e = env(2.5, 1.5)
        x = (rng.random(len(tt)) < 0.02) * rng.standard_normal(len(tt)) * e + \
            _band(rng.standard_normal(len(tt)), 2000, 9000) * e * 0.3
        return _norm(x, 0.6)
    if kind == "generator":
        tt, e = env(3.0, 0.3)
        sputter = 0.5 + 0.5 * (np.sin(2 * np.pi * 3 * tt) > 0)
        x = np.sin(2 * np.pi * 30 * tt + 3 * np.sin(2 * np.pi * 4 * tt)) * sputter
        return _norm(x * e + 0.2 * _band(rng.standard_normal(len(tt)), 100, 800) * e, 0.5)
    if kind == "door":
        tt, e = env(2.0, 1.2)
        f = 180 + 120 * np.sin(2 * np.pi * 0.6 * tt)
        x = np.sign(np.sin(2 * np.pi * np.cumsum(f) / RATE)) * e * (0.6 + 0.4 * (rng.random(len(tt)) > 0.5))
        return _norm(_band(x, 100, 2500), 0.4)
    if kind == "static":
        tt, e = env(1.2, 2.5)
        return _norm(_band(rng.standard_normal(len(tt)), 800, 8000) * e, 0.45)
    if kind == "cut":  # the power dies: a falling hum and a thud
        tt, e = env(1.5, 3)
        return _norm(np.sin(2 * np.pi * (100 - 60 * tt) * tt) * e + 0.8 * np.sin(2 * np.pi * 40 * tt) *
                     np.exp(-tt * 12), 0.6)
    raise ValueError(kind)


def write_ogg(samples: np.ndarray, path: Path, tmp: Path) -> None:
    """Mono float samples → Ogg Opus (through a WAV file and ffmpeg)."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    wav = tmp / (path.stem + ".wav")
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    run_ffmpeg(["-i", str(wav), "-c:a", "libopus", "-b:a", "64k", str(path)], f"the sound {path.name}")
    wav.unlink()


# ---------------------------------------------------------------------------------------------------------------
# the whole film
# ---------------------------------------------------------------------------------------------------------------

MANIFEST_HEAD = """\
# The media of the sample film "The Last Broadcast", made by `engage media make-sample` - every still,
# clip and sound is generated by code in engage, and is licensed with it (MIT).
# Each [scene.ID] table gives a scene of the story the same tags a writer may put in the story itself
# (an ink knot's # video: / # image: / # audio: / # sfx: / # transition:); the story's own tags win.

[film]
title = "The Last Broadcast"
credits = "media generated by code · engage, MIT licence"
"""


def manifest(scenes: dict[str, Shot]) -> str:
    lines = [MANIFEST_HEAD]
    for scene, shot in scenes.items():
        audio = [f"sound/bed-{shot.bed}.ogg", "sound/tension.ogg", "sound/pulse.ogg"]
        if scene in ("record", "song", "last_song"):
            audio.insert(1, "sound/old-song.ogg")
        lines.append(f"[scene.{scene}]")
        lines.append(f'video = "clips/{scene}.webm"')
        lines.append(f'image = "stills/{scene}.jpg"')
        lines.append("audio = [" + ", ".join(f'"{a}"' for a in audio) + "]")
        if shot.sfx:
            lines.append("sfx = [" + ", ".join(f'"sound/{s}"' for s in shot.sfx) + "]")
        if shot.transition:
            lines.append(f'transition = "{shot.transition}"')
        lines.append(f'motion = "{shot.motion}"\n')
    return "\n".join(lines)


def make_sample_film(out: str | Path, progress: Callable[[str], None] | None = None,
                     scenes: list[str] | None = None) -> Path:
    """Make the sample film's media in ``out`` (created; files already there are replaced).

    Parameters
    ----------
    out : str or Path
        The folder to write (``stills/``, ``clips/``, ``sound/``, ``media.toml``, ``LICENSE.txt``).
    progress : callable, optional
        Called with a line of text per step.
    scenes : list of str, optional
        Only these scenes (default: all 24).

    Returns
    -------
    Path
        ``out``.

    Example
    -------
    >>> make_sample_film("film")  # doctest: +SKIP
    """
    from PIL import Image

    out = Path(out)
    say = progress or (lambda _line: None)
    wanted = {k: v for k, v in SCENES.items() if scenes is None or k in scenes}
    unknown = set(scenes or ()) - set(SCENES)
    if unknown:
        raise ValueError(f"no such scene(s) in The Last Broadcast: {', '.join(sorted(unknown))}")
    for sub in ("stills", "clips", "sound"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        say("drawing the stills")
        for scene, shot in wanted.items():
            Image.fromarray(draw_still(scene, shot)).save(out / "stills" / f"{scene}.jpg", quality=88, optimize=True)
        layers = {"rain": tmp / "rain.png", "record": tmp / "record.png"}
        _rain_layer(layers["rain"], 1)
        _record_layer(layers["record"])
        for i, (scene, shot) in enumerate(wanted.items(), 1):
            say(f"clip {i}/{len(wanted)}: {scene}")
            make_clip(out / "stills" / f"{scene}.jpg", out / "clips" / f"{scene}.webm", shot, layers)
        say("sound: ambience, music stems, effects")
        for kind in sorted({s.bed for s in wanted.values()}):
            write_ogg(bed(kind, seed=len(kind)), out / "sound" / f"bed-{kind}.ogg", tmp)
        for kind in ("tension", "pulse"):
            write_ogg(stem(kind), out / "sound" / f"{kind}.ogg", tmp)
        write_ogg(melody(), out / "sound" / "old-song.ogg", tmp)
        for kind in sorted({s.split(".")[0] for shot in wanted.values() for s in shot.sfx}):
            write_ogg(effect(kind), out / "sound" / f"{kind}.ogg", tmp)
    (out / "media.toml").write_text(manifest(wanted), encoding="utf-8")
    (out / "LICENSE.txt").write_text(
        "The media in this folder were generated by `engage media make-sample` (code in engage:\n"
        "engage/media/sample.py) and are licensed under the MIT licence, like engage itself.\n", encoding="utf-8")
    say(f"done: {out}")
    return out
