"""The player's cut: the delay from a scene plan to the first frame of its clip, in real headless Chromium.

A story of ``--scenes`` scenes, each with its own clip (ffmpeg: a solid colour with a frame counter,
made in a temporary folder), each followed by three candidate scenes. A stand-in for the controller
hands the dashboard's feed a plan every ``--scene-s`` seconds, picking one of the candidates at random;
the page (Debian's chromium through Playwright) plays each plan's clip and stamps the first frame it
presents (``requestVideoFrameCallback``) against the plan's send time (both Unix time on this
machine). The peer is the same page told not to preload (``?preload=0``: each clip is fetched when its
plan arrives), which is what a player without preloading does. Half the cuts are hard cuts, half
crossfades.

Run: ``python benchmarks/player.py [--plans 30] [--scene-s 3] [--scenes 8]``; prints a table and, last, JSON.
The acceptance figure is the p95 of the preloaded row (target: 150 ms or less).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engage.dashboard import DashboardServer  # noqa: E402
from engage.media import MediaLibrary  # noqa: E402
from engage.media.synth import colour_clip  # noqa: E402
from engage.narrative.plan import ScenePlan, directives_for  # noqa: E402
from engage.narrative.story import load_story_text  # noqa: E402

CHROMIUM = os.environ.get("ENGAGE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required"]


def film(folder: Path, scenes: int, seed: int = 0) -> str:
    """Clips and a TOML story: scene i has clip i and three other scenes after it (every other one a hard cut)."""
    rng = random.Random(seed)
    parts = ['[story]\nid = "bench"\ntitle = "Bench"\nstart = "s0"\n']
    for i in range(scenes):
        hue = i / scenes
        rgb = tuple(int(255 * x) for x in _hsv(hue, 0.8, 0.85))
        colour_clip(folder / f"s{i}.webm", rgb, seconds=4.0, size=(640, 360), label=f"s{i}")
        nxt = rng.sample([f"s{j}" for j in range(scenes) if j != i], 3) + ["end"]  # "end" is never picked
        transition = "cut" if i % 2 else "crossfade 0.6"
        parts.append(f'[[scene]]\nid = "s{i}"\ntitle = "Scene {i}"\ntext = "Scene {i}."\nintensity = 0.5\n'
                     f'tone = "calm"\nduration_s = 3600\npalette = "grey"\nnext = {json.dumps(nxt)}\n'
                     f'tags = {{ video = "s{i}.webm", transition = "{transition}" }}\n')
    parts.append('[[scene]]\nid = "end"\ntitle = "End"\ntext = "The end."\nintensity = 0.1\ntone = "calm"\n'
                 'duration_s = 10\npalette = "grey"\nnext = []\n')
    return "\n".join(parts)


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    import colorsys

    return colorsys.hsv_to_rgb(h, s, v)


def run(story, media: Path, plans: int, scene_s: float, preload: bool, seed: int = 1, query: str = "") -> list[dict]:
    from playwright.sync_api import sync_playwright

    rng = random.Random(seed)
    server = DashboardServer(port=0, story=story, media=MediaLibrary(media), choice_window_s=0).start()
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
            context = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=ARGS,
                                                            viewport={"width": 1280, "height": 720})
            page = context.new_page()
            page.goto(server.player_url + "?" + "&".join(q for q in (query, "" if preload else "preload=0") if q))
            page.wait_for_function("document.getElementById('conn').textContent === 'live'", timeout=20_000)
            scene = story.scenes[story.start]
            t0 = time.monotonic()
            for i in range(plans):
                plan = ScenePlan("viewer-1", time.monotonic() - t0, 1, scene.id, scene.title, scene.text,
                                 scene.duration_s, directives_for(scene), "benchmark", {}, 1.0, ())
                server.feed.on_plan(plan)
                time.sleep(scene_s)
                scene = story.scenes[rng.choice(scene.next[:3])]
            page.wait_for_timeout(500)
            stats = page.evaluate("EngagePlayer.stats")
            if os.environ.get("ENGAGE_BENCH_DUMP"):
                for st in stats:
                    print(json.dumps(st))
            context.close()
    finally:
        server.stop()
    return stats


def _p(values, q: float) -> float | None:
    values = [v for v in values if v is not None]
    return round(float(np.percentile(values, q)), 1) if values else None


def summary(stats: list[dict]) -> dict:
    cuts = stats[1:]  # the first clip is never preloaded
    return {"cuts": len(cuts), "preloaded": sum(1 for s in cuts if s["preloaded"]),
            "p50_ms": _p([s["ms"] for s in cuts], 50), "p95_ms": _p([s["ms"] for s in cuts], 95),
            "max_ms": _p([s["ms"] for s in cuts], 100),
            "cut_p95_ms": _p([s["ms"] for s in cuts if s["transition"] == "cut"], 95),
            "crossfade_p95_ms": _p([s["ms"] for s in cuts if s["transition"] == "crossfade"], 95),
            "received_p95_ms": _p([s["received_ms"] for s in cuts], 95),
            "moving_p50_ms": _p([s["moving_ms"] for s in cuts], 50),
            "moving_p95_ms": _p([s["moving_ms"] for s in cuts], 95)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plans", type=int, default=30)
    ap.add_argument("--scene-s", type=float, default=3.0, help="seconds between plans (default: 3)")
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--query", default="", help="extra player page options, e.g. kiosk=1")
    ap.add_argument("--only", choices=("engage", "peer"), help="run one row only")
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"no chromium at {CHROMIUM} (set ENGAGE_CHROMIUM)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        media = Path(tmp)
        story = load_story_text(film(media, args.scenes))
        rows = {}
        for label, preload in (("preloaded (engage)", True), ("fetched at the plan (peer)", False)):
            if args.only and (args.only == "engage") != preload:
                continue
            rows[label] = summary(run(story, media, args.plans, args.scene_s, preload, query=args.query))
    print(f"plan -> first frame of its clip on screen, {args.plans} plans every {args.scene_s:g} s, headless chromium")
    cols = ("cuts", "preloaded", "p50_ms", "p95_ms", "max_ms", "cut_p95_ms", "crossfade_p95_ms", "received_p95_ms",
            "moving_p50_ms", "moving_p95_ms")
    print(f"{'':<28}" + "".join(f"{c.replace('_ms', ''):>12}" for c in cols))
    for label, r in rows.items():
        print(f"{label:<28}" + "".join(f"{str(r.get(c)):>12}" for c in cols))
    print("(ms: the first frame of the clip on screen; received: the plan at the page; moving: the first frame of "
          "motion after it)")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
