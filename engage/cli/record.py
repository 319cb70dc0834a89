"""``engage record``: LSL streams into a crash-safe XDF file."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from engage.core.errors import ConfigError, EngageError

from .common import FORMATTER

ORDER = 30


def register(sub) -> None:
    r = sub.add_parser(
        "record", formatter_class=FORMATTER, help="record LSL streams into an XDF file (like LabRecorder)",
        description="Records every LSL stream matching the predicates into one XDF file, as LabRecorder\n"
                    "does: raw timestamps plus clock offsets (pyxdf synchronises them), boundary chunks,\n"
                    "stream footers. Streams that appear later are picked up; a stream that dies leaves\n"
                    "a gap and the recording goes on. The file is flushed at least twice a second, so a\n"
                    "killed recorder loses at most half a second. Ctrl-C stops cleanly.\n\n"
                    "PREDICATE: key=value[,key=value…] with key in name, type, source_id, hostname, uid;\n"
                    "or liblsl XPath (\"starts-with(name,'Bio')\").",
        epilog="examples:\n  engage record -o session.xdf --lsl type=EEG --lsl name=Markers\n"
               "  engage record -o s.xdf --lsl type=EEG,hostname=lab-pc --duration 600\n"
               "  engage record -o s.xdf --lsl name=engage-events --wait 30")
    r.add_argument("-o", "--output", required=True, help="the XDF file to write (overwritten)")
    r.add_argument("--lsl", action="append", metavar="PREDICATE", required=True,
                   help="streams to record (repeat for more)")
    r.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    r.add_argument("--wait", type=float, default=10.0,
                   help="seconds to wait for each predicate to match before reporting it (default: 10)")
    r.add_argument("--quiet", action="store_true", help="no progress line")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engage.record import XdfRecorder
    from engage.sensors.lsl import list_streams, quiet_liblsl, parse_predicate

    quiet_liblsl()
    if args.duration is not None and args.duration <= 0:
        raise ConfigError(f"--duration must be positive, got {args.duration}")
    if args.wait <= 0:
        raise ConfigError(f"--wait must be positive, got {args.wait}")
    for p in args.lsl:
        parse_predicate(p)  # a typo is reported before anything is written
    out = Path(args.output)

    def on_gap(gap) -> None:
        print(f"engage record: {gap.reason}: {gap.stream!r}" +
              ("" if gap.duration_s is None else f" (after {gap.duration_s:.1f} s)"), file=sys.stderr)

    rec = XdfRecorder(out, args.lsl, on_gap=on_gap)
    stop = {"signal": None}

    def on_term(signum, _frame) -> None:
        stop["signal"] = signum

    previous = signal.signal(signal.SIGTERM, on_term)
    rec.start()
    start = time.monotonic()
    reported: set[str] = set()
    announced: set[str] = set()
    status = 0
    try:
        while stop["signal"] is None and rec.error is None:
            elapsed = time.monotonic() - start
            if args.duration is not None and elapsed >= args.duration:
                break
            for item in rec.inlets:
                if item.key not in announced:
                    announced.add(item.key)
                    print(f"engage record: recording {item.info.name!r} ({item.info.type}, {item.info.channel_count} "
                          f"ch, {item.info.nominal_rate:g} Hz) from {item.info.source_id or item.key}", file=sys.stderr)
            if elapsed >= args.wait:
                unmatched = [p for p in rec.unmatched() if p not in reported]
                if unmatched and len(rec.unmatched()) == len(args.lsl):
                    visible = ", ".join(f"{s['name']} ({s['type']})" for s in list_streams(1.0)) or "none"
                    rec.close()
                    out.unlink(missing_ok=True)
                    raise EngageError(f"no LSL stream matches {', '.join(map(repr, args.lsl))} after "
                                      f"{args.wait:g} s (visible streams: {visible})")
                for p in unmatched:
                    reported.add(p)
                    print(f"engage record: warning: no LSL stream matches {p!r} after {args.wait:g} s; "
                          f"still looking", file=sys.stderr)
            if not args.quiet and sys.stderr.isatty():
                n = rec.writer.samples_written
                print(f"\rengage record: {elapsed:6.0f} s, {len(rec.inlets)} streams, {n} samples", end="",
                      file=sys.stderr)
            time.sleep(0.1)
    except KeyboardInterrupt:
        print("\nengage record: stopping", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
        rec.close()
    if rec.error is not None:
        print(f"engage: error: {rec.error}", file=sys.stderr)
        return 1
    per = ", ".join(f"{i.info.name} {i.samples}" for i in rec.inlets) or "no streams"
    print(f"engage record: wrote {out} ({rec.writer.samples_written} samples: {per}; {len(rec.gaps)} gap reports)")
    return status
