"""The ``engage`` command. Run ``engage --help`` or ``engage COMMAND --help``.

Each module of this package that defines ``register(subparsers)`` adds its commands (ordered by
its ``ORDER``); one that defines ``register_eval(subparsers)`` adds validation commands under
``engage eval``. Command functions raise :class:`~engage.core.errors.EngageError` for anything
the user can fix; :func:`main` prints it on one line and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from engage import __version__
from engage.core.errors import EngageError

from .common import FORMATTER, setup_logging

DESCRIPTION = """\
engage senses how engaged a viewer is (webcam, heart-rate strap, any LSL stream), turns the
signals into boredom and arousal events, and lets a narrative controller choose the next scene.

Start here:
  engage demo                      a simulated viewer watches the sample story (no hardware)
  engage replay session.xdf        the same pipeline on a recording (XDF or CSV)
"""


def _command_modules() -> list:
    mods = [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)
            if m.name not in ("common", "__main__")]
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engage", description=DESCRIPTION, formatter_class=FORMATTER)
    p.add_argument("--version", action="version", version=f"engage {__version__}")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"],
                   help="how much to log on stderr (default: warning)")
    p.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="log lines as text or as one JSON object each (default: text)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    modules = _command_modules()
    for m in modules:
        if hasattr(m, "register"):
            m.register(sub)
    evaluators = [m for m in modules if hasattr(m, "register_eval")]
    if evaluators:
        ev = sub.add_parser("eval", formatter_class=FORMATTER, help="validate a detector against reference annotations",
                            description="Validation commands; each prints one JSON object as its last line.")
        ev_sub = ev.add_subparsers(dest="eval_command", metavar="WHAT")
        for m in evaluators:
            m.register_eval(ev_sub)
        ev.set_defaults(func=lambda args: (ev.print_help(), 2)[1])
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
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
