"""``engage demo``: the closed loop with a simulated viewer, faster than real time."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from engage.core.errors import EngageError

from .common import FORMATTER, print_summary, progress
from .narrative_options import EPILOG, add_narrative_arguments, narrative_config

ORDER = 10


def register(sub) -> None:
    d = sub.add_parser(
        "demo", formatter_class=FORMATTER, help="run the closed loop with a simulated viewer, faster than real time",
        description="A simulated viewer (ECG, EDA and face signals driven by a latent engagement model)\n"
                    "watches the built-in story; the full pipeline senses it, emits events, and the\n"
                    "controller picks each next scene. Prints a timeline and writes events.jsonl,\n"
                    "scenes.jsonl and session.png to --out.",
        epilog="examples:\n  engage demo\n  engage demo --minutes 10 --seed 1 --out out/demo\n"
               "  engage demo --lsl        # also publish events on an LSL marker stream\n"
               "  engage demo --story film.ink.json --osc 127.0.0.1:9000   # your ink story, plans to an OSC player\n\n"
               + EPILOG)
    d.add_argument("--minutes", type=float, default=10.0, help="session length in minutes (default: 10)")
    d.add_argument("--seed", type=int, default=0, help="the simulated viewer's seed; same seed, same files (default: 0)")
    d.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    d.add_argument("--lsl", action="store_true", help="publish events on an LSL outlet 'engage-events'")
    d.add_argument("--quiet", action="store_true", help="no timeline, only the summary")
    add_narrative_arguments(d)
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engage.core import VirtualClock
    from engage.narrative.story import default_story_path
    from engage.plots import plot_session
    from engage.sensors.simulated import SimulatedViewer
    from engage.session import Session

    if args.minutes <= 0:
        raise EngageError(f"--minutes must be positive, got {args.minutes}")
    cfg = narrative_config(args)
    story = cfg.open_story(default_story_path())
    out = Path(args.out)
    viewer = SimulatedViewer(seed=args.seed)
    if args.lsl:
        from engage.sensors.liblsl_log import route_liblsl_log

        route_liblsl_log()
    session = Session([viewer], VirtualClock(0.0), story=story, events_out=out / "events.jsonl",
                      scenes_out=Path(cfg.scenes_out) if cfg.scenes_out else out / "scenes.jsonl", lsl=args.lsl,
                      session_id=f"demo-{args.seed}", timeline=None if args.quiet else sys.stdout, narrative=cfg)
    if not args.quiet:
        print(f"engage demo: simulated viewer (seed {args.seed}) watching \"{story.title}\" for "
              f"{args.minutes:g} min, faster than real time; {cfg.describe()}\n")
    bar, on_step = progress(args.minutes * 60, "demo")
    wall = time.perf_counter()
    result = session.run(duration=args.minutes * 60, on_step=on_step)
    bar.close()
    result.outputs["plot"] = plot_session(result.log, out / "session.png", origin=result.start,
                                          title=f"engage demo - {story.title} - seed {args.seed}")
    print_summary(result)
    print(f"  ran {result.stats.duration / max(1e-9, time.perf_counter() - wall):.0f}x real time")
    return 0
