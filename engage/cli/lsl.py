"""``engage lsl list``: the LSL streams visible from this machine."""

from __future__ import annotations

import argparse
import json

from .common import FORMATTER

ORDER = 40


def register(sub) -> None:
    p = sub.add_parser("lsl", formatter_class=FORMATTER, help="Lab Streaming Layer tools (list streams)",
                       description="Lab Streaming Layer tools.",
                       epilog="examples:\n  engage lsl list\n  engage lsl list --type EEG --timeout 5\n"
                              "  engage lsl list --json")
    lsl_sub = p.add_subparsers(dest="lsl_command", metavar="WHAT")
    lst = lsl_sub.add_parser(
        "list", formatter_class=FORMATTER, help="list the LSL streams visible on the network",
        description="Lists every LSL stream visible within --timeout seconds: name, type, channels,\n"
                    "rate, format, source_id and host. Use the values in predicates such as\n"
                    "'engage record --lsl type=EEG'.",
        epilog="examples:\n  engage lsl list\n  engage lsl list --predicate name=Markers\n  engage lsl list --json")
    lst.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for streams (default: 2)")
    lst.add_argument("--predicate", help="only streams matching this predicate (e.g. type=EEG)")
    lst.add_argument("--type", help="shorthand for --predicate type=TYPE")
    lst.add_argument("--json", action="store_true", help="one JSON object per stream")
    lst.set_defaults(func=run_list)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_list(args: argparse.Namespace) -> int:
    from engage.core.errors import ConfigError
    from engage.sensors.liblsl_log import route_liblsl_log
    from engage.sensors.lsl import list_streams

    route_liblsl_log()
    if args.timeout <= 0:
        raise ConfigError(f"--timeout must be positive, got {args.timeout}")
    predicate = args.predicate or (f"type={args.type}" if args.type else None)
    streams = list_streams(args.timeout, predicate)
    if args.json:
        for s in streams:
            print(json.dumps(s))
        return 0
    if not streams:
        print(f"no LSL streams{' matching ' + repr(predicate) if predicate else ''} found within {args.timeout:g} s")
        return 0
    print(f"{'name':<24} {'type':<12} {'ch':>4} {'rate':>8} {'format':<9} {'source_id':<28} host")
    for s in streams:
        rate = "irreg." if s["nominal_srate"] == 0 else f"{s['nominal_srate']:g}"
        print(f"{s['name'][:24]:<24} {s['type'][:12]:<12} {s['channel_count']:>4} {rate:>8} {s['channel_format']:<9} "
              f"{s['source_id'][:28]:<28} {s['hostname']}")
    return 0
