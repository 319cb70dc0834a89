"""Shared pieces of the command line: logging set-up, progress bars, session summaries."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

FORMATTER = argparse.RawDescriptionHelpFormatter


class JsonFormatter(logging.Formatter):
    """One JSON object per log line (``--log-format json``)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
               "message": record.getMessage()}
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def add_dashboard_options(parser: argparse.ArgumentParser, what: str) -> argparse._ArgumentGroup:
    """The ``--dashboard --host --port --token`` options of a command that can serve the dashboard.

    The token defaults to ``$ENGAGE_DASHBOARD_TOKEN``, which keeps it out of the process list (``ps`` shows
    every command-line argument to every user of the machine).
    """
    d = parser.add_argument_group("dashboard")
    d.add_argument("--dashboard", action="store_true", help=f"serve the live dashboard and the player page {what}")
    d.add_argument("--host", default="127.0.0.1",
                   help="address the dashboard listens on (default: 127.0.0.1; any other needs a token)")
    d.add_argument("--port", type=int, default=8765, help="dashboard port (default: 8765; 0 picks a free one)")
    d.add_argument("--token", default=os.environ.get("ENGAGE_DASHBOARD_TOKEN") or None,
                   help="a secret the pages, API and WebSocket require (needed off 127.0.0.1). Prefer setting "
                        "$ENGAGE_DASHBOARD_TOKEN (the default): an option shows in the process list")
    d.add_argument("--media", metavar="DIR",
                   help="the film's media folder: the clips, stills and sounds the story's tags (video, image, "
                        "audio, sfx) name, or files named after its scenes; the player page plays them (served "
                        "from this folder only). 'engage media make-sample DIR' makes one for the sample film")
    d.add_argument("--choice-window", type=float, default=10.0, metavar="S",
                   help="where the story offers a choice, the player shows it for the scene's last S seconds; the "
                        "viewer answers by key, click or touch, else the policy's pick plays (default: 10; 0: the "
                        "viewer never chooses)")
    return d


def dashboard_server(args: argparse.Namespace, story=None):
    """A :class:`~engage.dashboard.DashboardServer` (not started) from the ``add_dashboard_options`` options;
    :class:`~engage.core.errors.ConfigError` for a bad host, token, media folder or choice window."""
    from engage.core.errors import ConfigError
    from engage.dashboard import DashboardServer

    media = None
    if getattr(args, "media", None):
        from engage.media import MediaLibrary

        media = MediaLibrary(args.media)
    window = getattr(args, "choice_window", 10.0)
    if not (window >= 0 and window < float("inf")):
        raise ConfigError(f"--choice-window must be >= 0 seconds, got {window:g}")
    return DashboardServer(host=args.host, port=args.port, token=args.token, story=story, media=media,
                           choice_window_s=window)


def json_line(doc) -> str:
    """``doc`` as one line of strict JSON: NaN and infinities (a metric that has no value, such as
    ROC AUC with one class) become null, which every JSON reader accepts."""
    def clean(x):
        if isinstance(x, float):
            return x if x == x and x not in (float("inf"), float("-inf")) else None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(doc), allow_nan=False)


class StderrHandler(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when a record is logged, not to the stream it was when
    the handler was made: ``main()`` run in-process (tests, notebooks) must not leave a handler on a stream
    that its caller closes afterwards (pytest's capture: "--- Logging error --- ValueError: I/O operation on
    closed file" when a later test logged)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.setStream: always sys.stderr
        pass


def setup_logging(level: str, fmt: str) -> None:
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    logging.getLogger("pyxdf").setLevel(logging.CRITICAL)  # its warnings are re-reported by engage


def progress(total_s: float, desc: str):
    """Progress over session seconds (:class:`~engage.core.progress.Progress`: a bar on a terminal, a line
    every few seconds otherwise) and the ``on_step`` callback feeding it."""
    from engage.core.progress import Progress

    bar = Progress(round(total_s), desc, "s", units="s of session")
    state = {"origin": None}

    def on_step(now: float) -> None:
        if state["origin"] is None:
            state["origin"] = now
        done = round(now - state["origin"])
        bar.set(min(done, bar.total) if bar.total else done)

    return bar, on_step


def print_summary(result) -> None:
    """What a session did and where its files are."""
    counts: dict[str, int] = {}
    for e in result.log.events:
        counts[e.type] = counts.get(e.type, 0) + 1
    print(f"\n{result.stats.duration / 60:.1f} min of session processed; {len(result.log.plans)} scenes; events: "
          + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
    for name, path in sorted(result.outputs.items()):
        print(f"  {name:<7} {Path(path)}")
