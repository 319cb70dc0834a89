"""``engage report``: an HTML report (with PNG plots) of a recorded session."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import FORMATTER, progress

ORDER = 25


def register(sub) -> None:
    r = sub.add_parser(
        "report", formatter_class=FORMATTER, help="an HTML report with plots of a recording (XDF)",
        description="Writes one self-contained HTML file (plots embedded) and the PNGs beside it: the\n"
                    "engagement timeline with the scenes and their titles, heart rate and EDA, every stream\n"
                    "with its gaps, the recorded signals; tables of the controller's decisions with their\n"
                    "reasons, the sensor gaps, the streams and the events.\n\n"
                    "A session recorded by engage (engage live --record) is read as it was recorded. A raw\n"
                    "recording (LabRecorder, engage record) is run through the pipeline on a virtual clock\n"
                    "first, and the report says which streams it found and what could be derived. A damaged\n"
                    "file is reported up to the damage, with the byte where it is.",
        epilog="examples:\n  engage report session.xdf -o report.html\n"
               "  engage report lab.xdf -o out/lab/report.html --png-dir out/lab/png\n"
               "  engage report lab.xdf -o report.html --story my_story.toml   # what the controller would decide\n"
               "  engage report lab.xdf -o report.html --story film.ink.json --overlay film-tags.toml")
    r.add_argument("file", help="the recording (.xdf)")
    r.add_argument("-o", "--output", default=None,
                   help="the HTML file to write (default: out/report-<file name>/report.html)")
    r.add_argument("--png-dir", default=None, help="where to write the PNG plots (default: beside the HTML file)")
    r.add_argument("--story", default=None,
                   help="run the narrative controller with this story (compiled ink JSON, TOML or YAML) while "
                        "replaying a raw recording (a recording made by engage already holds its decisions)")
    r.add_argument("--overlay", default=None, metavar="FILE.toml",
                   help="tags for the knots of a compiled ink --story, by knot name")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engage.report import build_report

    path = Path(args.file)
    out = Path(args.output) if args.output else Path("out") / f"report-{path.stem}" / "report.html"
    story = None
    if args.overlay and not args.story:
        from engage.core.errors import ConfigError

        raise ConfigError("--overlay adds tags to a --story; give the story too")
    if args.story:
        from engage.narrative.story import open_story

        story = open_story(args.story, overlay=args.overlay)
    holder: dict = {}

    def on_duration(seconds: float) -> None:
        holder["bar"], holder["step"] = progress(seconds, "replay")

    def on_step(now: float) -> None:
        if "step" in holder:
            holder["step"](now)

    try:
        result = build_report(path, out, png_dir=args.png_dir, story=story, on_step=on_step, on_duration=on_duration)
    finally:
        if "bar" in holder:
            holder["bar"].close()
    data = result.data
    how = "recorded by engage, read directly" if data.mode == "recorded" else "raw recording, replayed through the pipeline"
    print(f"engage report: {path} ({how})")
    print("  streams: " + ", ".join(f"{s.name} ({s.type})" for s in data.streams))
    if data.mode == "replayed":
        print("  derived: " + (", ".join(f"{s.name} ({s.type})" for s in data.derived) or "nothing"))
    print(f"  {len(data.events)} events, {len(data.decisions)} scenes, {len(data.gaps)} sensor gaps")
    for note in data.notes:
        print(f"  note: {note}")
    print(f"  html    {result.html}")
    for p in result.pngs:
        print(f"  png     {p}")
    if data.unclosed:
        from engage.report.html import unclosed_note

        print(f"engage: note: {path} was not closed cleanly: {unclosed_note(data)}", file=sys.stderr)
    if data.problem:
        print(f"engage: error: {path}: damaged file: {data.problem}; "
              f"the report covers the first {data.good_bytes} of {data.file_size} bytes", file=sys.stderr)
        return 1
    return 0
