"""What the player tests share: Debian's chromium, media made with ffmpeg that a page's pixels can be checked
against, and the page-side probes of what is on screen."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM = os.environ.get("ENGAGE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
AUTOPLAY = ["--autoplay-policy=no-user-gesture-required"]
KEEP = Path(__file__).resolve().parents[2] / "out"

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220), "yellow": (230, 210, 30),
           "magenta": (210, 40, 200)}

# What the page can tell about its picture: the top clip's URL, the colour at its centre, its frame counter
# (the bottom strip of a colour_clip: 12 blocks, white = 1, least significant bit on the left).
PICTURE = """() => {
  const on = [...document.querySelectorAll('#videos video.clip')].filter((v) => v.classList.contains('on'))
    .sort((a, b) => Number(b.style.zIndex || 0) - Number(a.style.zIndex || 0));
  if (!on.length) return null;
  const v = on[0], w = v.videoWidth, h = v.videoHeight;
  if (!w) return { url: v.dataset.url, ready: v.readyState };
  const c = document.createElement('canvas'); c.width = w; c.height = h;
  const g = c.getContext('2d'); g.drawImage(v, 0, 0, w, h);
  const mid = g.getImageData(w / 2, h / 3, 1, 1).data;
  let frame = 0;
  for (let i = 0; i < 12; i++) {
    const px = g.getImageData(Math.floor((i + 0.5) * w / 12), h - 6, 1, 1).data;
    if (px[0] + px[1] + px[2] > 3 * 128) frame += 1 << i;
  }
  return { url: v.dataset.url, rgb: [mid[0], mid[1], mid[2]], frame, paused: v.paused, time: v.currentTime,
           layers: on.length };
}"""


def picture_is(url: str, min_frame: int = 0) -> str:
    """A page predicate: the top clip is ``url`` and has played past ``min_frame``."""
    return f"() => {{ const p = ({PICTURE})(); return !!p && p.url === {url!r} && p.frame >= {min_frame}; }}"


# Every animation frame for `ms`, the opacity of each clip layer: how a cut or a crossfade really went.
WATCH_LAYERS = """(ms) => new Promise((done) => {
  const log = [], t0 = performance.now();
  function tick() {
    const row = {};
    for (const v of document.querySelectorAll('#videos video.clip')) row[v.dataset.url] = Number(getComputedStyle(v).opacity);
    log.push(row);
    if (performance.now() - t0 < ms) requestAnimationFrame(tick); else done(log);
  }
  requestAnimationFrame(tick);
})"""


def have_browser_and_ffmpeg() -> tuple[bool, str]:
    if not Path(CHROMIUM).exists():
        return False, f"no chromium at {CHROMIUM} (apt-get install chromium, or set ENGAGE_CHROMIUM)"
    if shutil.which("ffmpeg") is None:
        return False, "ffmpeg makes the test media (apt-get install ffmpeg)"
    return True, ""


def make_test_media(root: Path) -> Path:
    """Colour clips with frame counters (red, green, …: 3 s), a bed, a second stem and a ping (Opus), a damaged clip
    (a WebM header, then noise) and a still."""
    from PIL import Image

    from engage.media.synth import colour_clip, tone

    root.mkdir(parents=True, exist_ok=True)
    for name, rgb in COLOURS.items():
        colour_clip(root / f"{name}.webm", rgb, seconds=3.0, text=False)
    tone(root / "bed.ogg", 220.0, 3.0)
    tone(root / "stem.ogg", 330.0, 3.0)
    tone(root / "ping.ogg", 880.0, 0.3)
    (root / "damaged.webm").write_bytes((root / "red.webm").read_bytes()[:60] + os.urandom(4000))
    Image.new("RGB", (320, 180), (20, 120, 200)).save(root / "still.png")
    return root


def close_to(rgb, name: str, tol: int = 45) -> bool:
    return rgb is not None and all(abs(a - b) <= tol for a, b in zip(rgb, COLOURS[name]))


def keep(page, folder: str, name: str) -> Path | None:
    """A screenshot in out/FOLDER/NAME (a convenience for people looking; never fails a test)."""
    try:
        (KEEP / folder).mkdir(parents=True, exist_ok=True)
        path = KEEP / folder / name
        page.screenshot(path=str(path))
        return path
    except OSError:
        return None
