"""The ``engage`` command. Run ``engage --help`` or ``engage COMMAND --help``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from engage import __version__
from engage.core.errors import EngageError

log = logging.getLogger("engage")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
               "message": record.getMessage()}
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def _setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    logging.getLogger("pyxdf").setLevel(logging.CRITICAL)  # its warnings are re-reported by engage


def _progress(total_s: float, desc: str):
    """A tqdm bar over session seconds (shown on a terminal only) and the on_step callback feeding it."""
    from tqdm import tqdm

    bar = tqdm(total=round(total_s), desc=desc, unit="s", disable=None, leave=False, file=sys.stderr,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s session [{elapsed}<{remaining}]")
    state = {"origin": None}

    def on_step(now: float) -> None:
        if state["origin"] is None:
            state["origin"] = now
        bar.update(min(round(now - state["origin"]), bar.total) - bar.n)

    return bar, on_step


def _summary(result, out: Path | None) -> None:
    counts: dict[str, int] = {}
    for e in result.log.events:
        counts[e.type] = counts.get(e.type, 0) + 1
    print(f"\n{result.stats.duration / 60:.1f} min of session processed; "
          f"{len(result.log.plans)} scenes; events: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
    for name, path in sorted(result.outputs.items()):
        print(f"  {name:<7} {path}")


# ---------------------------------------------------------------------------------------- demo

def cmd_demo(args: argparse.Namespace) -> int:
    from engage.core import VirtualClock
    from engage.narrative.story import default_story_path, load_story
    from engage.plots import plot_session
    from engage.sensors.simulated import SimulatedViewer
    from engage.session import Session

    if args.minutes <= 0:
        raise EngageError(f"--minutes must be positive, got {args.minutes}")
    story = load_story(args.story or default_story_path())
    out = Path(args.out)
    viewer = SimulatedViewer(seed=args.seed)
    session = Session([viewer], VirtualClock(0.0), story=story, events_out=out / "events.jsonl",
                      scenes_out=out / "scenes.jsonl", lsl=args.lsl, session_id=f"demo-{args.seed}",
                      timeline=None if args.quiet else sys.stdout)
    if not args.quiet:
        print(f"engage demo: simulated viewer (seed {args.seed}) watching \"{story.title}\" for "
              f"{args.minutes:g} min, faster than real time\n")
    bar, on_step = _progress(args.minutes * 60, "demo")
    wall = time.perf_counter()
    result = session.run(duration=args.minutes * 60, on_step=on_step)
    bar.close()
    plot = plot_session(result.log, out / "session.png", origin=result.start,
                        title=f"engage demo - {story.title} - seed {args.seed}")
    result.outputs["plot"] = plot
    _summary(result, out)
    print(f"  ran {result.stats.duration / max(1e-9, time.perf_counter() - wall):.0f}x real time")
    return 0


# -------------------------------------------------------------------------------------- replay

def cmd_replay(args: argparse.Namespace) -> int:
    from engage.core import VirtualClock
    from engage.narrative.story import default_story_path, load_story
    from engage.plots import plot_session
    from engage.sensors.replay import CsvReplay, XdfReplay
    from engage.session import Session

    path = Path(args.file)
    if path.suffix.lower() == ".csv":
        if not args.type:
            raise EngageError(f"{path}: a CSV recording needs --type (ECG, EDA, Face …)")
        source = CsvReplay(path, stream_type=args.type)
    else:
        source = XdfReplay(path)
    problem = getattr(source, "problem", None)
    if problem:
        print(f"engage: warning: {path}: {problem}; replaying the readable part", file=sys.stderr)
    out = Path(args.out) if args.out else Path("out") / f"replay-{path.stem}"
    events_out = Path(args.events_out) if args.events_out else out / "events.jsonl"
    story = None if args.no_story else load_story(args.story or default_story_path())
    start = source.start_time()
    session = Session([source], VirtualClock(start if start is not None else 0.0), story=story,
                      events_out=events_out, scenes_out=out / "scenes.jsonl" if story else None,
                      timeline=None if args.quiet else sys.stdout)
    if not args.quiet:
        names = ", ".join(f"{s.name} ({s.type}, {s.channel_count} ch)" for s in source.streams())
        print(f"engage replay: {path} - {names or 'no streams with samples'}\n")
    total = getattr(source, "duration", 0.0) or 0.0
    bar, on_step = _progress(total, "replay")
    result = session.run(on_step=on_step)
    bar.close()
    result.outputs["plot"] = plot_session(result.log, out / "session.png", origin=result.start,
                                          title=f"engage replay - {path.name}")
    _summary(result, out)
    if problem:
        print(f"engage: error: {path}: {problem}", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------------------- parser

DESCRIPTION = """\
engage senses how engaged a viewer is (webcam, heart-rate strap, any LSL stream), turns the
signals into boredom and arousal events, and lets a narrative controller choose the next scene.

Start here:
  engage demo                      a simulated viewer watches the sample story (no hardware)
  engage replay session.xdf        the same pipeline on a recording (XDF or CSV)
"""


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="engage", description=DESCRIPTION, formatter_class=fmt)
    p.add_argument("--version", action="version", version=f"engage {__version__}")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"],
                   help="how much to log on stderr (default: warning)")
    p.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="log lines as text or as one JSON object each (default: text)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser(
        "demo", formatter_class=fmt, help="run the closed loop with a simulated viewer, faster than real time",
        description="A simulated viewer (ECG, EDA and face signals driven by a latent engagement model)\n"
                    "watches the built-in story; the full pipeline senses it, emits events, and the\n"
                    "controller picks each next scene. Prints a timeline and writes events.jsonl,\n"
                    "scenes.jsonl and session.png to --out.",
        epilog="examples:\n  engage demo\n  engage demo --minutes 10 --seed 1 --out out/demo\n"
               "  engage demo --lsl        # also publish events on an LSL marker stream")
    d.add_argument("--minutes", type=float, default=10.0, help="session length in minutes (default: 10)")
    d.add_argument("--seed", type=int, default=0, help="the simulated viewer's seed; same seed, same files (default: 0)")
    d.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    d.add_argument("--story", help="a story file (TOML) instead of the built-in one")
    d.add_argument("--lsl", action="store_true", help="publish events on an LSL outlet 'engage-events'")
    d.add_argument("--quiet", action="store_true", help="no timeline, only the summary")
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser(
        "replay", formatter_class=fmt, help="run the pipeline on a recording (XDF or CSV), faster than real time",
        description="Replays a recording through exactly the pipeline of a live session, on a virtual\n"
                    "clock: same input, same events. XDF files (LabRecorder, engage) are read with pyxdf,\n"
                    "clock offsets and clock resets handled; a damaged file is replayed up to the damage\n"
                    "and then reported (exit 1).",
        epilog="examples:\n  engage replay session.xdf\n  engage replay session.xdf --events-out events.jsonl\n"
               "  engage replay ecg.csv --type ECG")
    r.add_argument("file", help="recording: .xdf, or .csv with a 'timestamp' column")
    r.add_argument("--events-out", help="where to write the events (default: OUT/events.jsonl)")
    r.add_argument("--out", help="output folder (default: out/replay-<file name>)")
    r.add_argument("--type", help="stream type of a CSV recording (ECG, EDA, Face …)")
    r.add_argument("--story", help="a story file (TOML) instead of the built-in one")
    r.add_argument("--no-story", action="store_true", help="sensing and events only, no narrative controller")
    r.add_argument("--quiet", action="store_true", help="no timeline, only the summary")
    r.set_defaults(func=cmd_replay)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.log_level, args.log_format)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EngageError as exc:
        print(f"engage: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("engage: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
