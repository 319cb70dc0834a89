"""``engage replay``: the live pipeline on a recording, on a virtual clock."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engage.core.errors import EngageError

from .common import FORMATTER, add_dashboard_options, dashboard_server, print_summary, progress
from .narrative_options import EPILOG, add_narrative_arguments, narrative_config

ORDER = 20


def register(sub) -> None:
    r = sub.add_parser(
        "replay", formatter_class=FORMATTER, help="run the pipeline on a recording (XDF or CSV), faster than real time",
        description="Replays a recording through exactly the pipeline of a live session, on a virtual\n"
                    "clock: same input, same events. XDF files (LabRecorder, engage) are read with pyxdf,\n"
                    "clock offsets and clock resets handled; a damaged file is replayed up to the damage\n"
                    "and then reported (exit 1).",
        epilog="examples:\n  engage replay session.xdf\n  engage replay session.xdf --events-out events.jsonl\n"
               "  engage replay ecg.csv --type ECG\n"
               "  engage replay e4_session.xdf --model models/arousal-wrist.skops   # arousal from the wrist model\n"
               "  engage replay session.xdf --realtime --to-lsl   # as LSL outlets, at the original pace\n"
               "  engage replay session.xdf --realtime --to-lsl --loop --streams EEG --start 60 --end 120\n"
               "  engage replay session.xdf --realtime --dashboard # watch it in the browser (prints the URLs)\n"
               "  engage replay session.xdf --realtime --dashboard --host 0.0.0.0 --token SECRET --keep-open\n"
               "  engage replay session.xdf --story film.ink.json --scenes-out out/plans.jsonl\n\n" + EPILOG)
    r.add_argument("file", help="recording: .xdf, or .csv with a 'timestamp' column")
    r.add_argument("--events-out", help="where to write the events (default: OUT/events.jsonl)")
    r.add_argument("--out", help="output folder (default: out/replay-<file name>)")
    r.add_argument("--type", help="stream type of a CSV recording (ECG, EDA, Face …)")
    r.add_argument("--no-story", action="store_true", help="sensing and events only, no narrative controller")
    r.add_argument("--quiet", action="store_true", help="no timeline, only the summary")
    r.add_argument("--model", help="a trained wrist model (.skops, e.g. models/arousal-wrist.skops): arousal from it "
                                   "where the recording has its wrist signals, from the rule model elsewhere")
    r.add_argument("--realtime", action="store_true", help="replay at the original pace (default: as fast as possible)")
    r.add_argument("--to-lsl", action="store_true",
                   help="play the recording onto LSL: every stream's outlet declared from its recorded header "
                        "(format, source_id, description) before the first sample, after a --lead-in; timestamps "
                        "(and the events' JSON timestamps) moved onto the current LSL clock; the pipeline's "
                        "derived streams and events too when the file holds none of its own (use with --realtime)")
    r.add_argument("--lead-in", type=float, default=2.0, metavar="S",
                   help="with --to-lsl: seconds between declaring the outlets and the first sample, so consumers "
                        "connect first (default: 2)")
    r.add_argument("--loop", action="store_true", help="start over at the end (time keeps going forward), until Ctrl-C")
    r.add_argument("--start", type=float, metavar="S", help="begin S seconds into the recording")
    r.add_argument("--end", type=float, metavar="S", help="end S seconds into the recording")
    r.add_argument("--streams", action="append", metavar="NAME_OR_TYPE",
                   help="only these streams (a name or a type; repeat for more)")
    r.add_argument("--reprocess-derived", action="store_true",
                   help="an engage recording: also feed its recorded derived streams and events to the pipeline "
                        "(by default only its raw streams are processed; what engage recorded is shown as it was)")
    d = add_dashboard_options(r, "while replaying (use with --realtime)")
    d.add_argument("--keep-open", action="store_true", help="keep the dashboard up after the replay until Ctrl-C")
    add_narrative_arguments(r)
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engage.core import VirtualClock
    from engage.narrative.story import default_story_path
    from engage.plots import plot_session
    from engage.sensors.replay import CsvReplay, PacedClock, XdfReplay
    from engage.session import REPLAY_STEP_S, Session

    path = Path(args.file)
    model = None
    if args.model:  # checked before any replay starts: a bad file is a one-line error
        from engage.models.evaluation import open_model

        model = open_model(args.model)
    if not args.lead_in >= 0:
        raise EngageError(f"--lead-in must be 0 or more seconds, got {args.lead_in}")
    if path.suffix.lower() == ".csv":
        if not args.type:
            raise EngageError(f"{path}: a CSV recording needs --type (ECG, EDA, Face …)")
        if args.loop or args.start is not None or args.end is not None or args.streams:
            raise EngageError("--loop, --start, --end and --streams are for XDF recordings")
        source = CsvReplay(path, stream_type=args.type)
    else:
        source = XdfReplay(path, streams=args.streams, derived=args.reprocess_derived, start_s=args.start,
                           end_s=args.end, loop=args.loop, recorded_viewers=True)
    problem = getattr(source, "problem", None)
    if problem:
        print(f"engage: warning: {path}: {problem}; replaying the readable part", file=sys.stderr)
    elif isinstance(source, XdfReplay) and not source.closed_cleanly:
        print(f"engage: note: {path} was not closed cleanly (no footer for some streams: the recorder was killed "
              "or lost its disk); replaying everything that was written", file=sys.stderr)
    out = Path(args.out) if args.out else Path("out") / f"replay-{path.stem}"
    events_out = Path(args.events_out) if args.events_out else out / "events.jsonl"
    cfg = narrative_config(args)  # a bad story or flag is a one-line error before anything runs
    story = None if args.no_story else cfg.open_story(default_story_path())
    dashboard = None  # started before the paced clock, so the replay's first seconds are not skipped
    if getattr(args, "dashboard", False):
        dashboard = dashboard_server(args, story=story).start()
        print(f"engage replay: dashboard {dashboard.url}\n               player    {dashboard.player_url}", flush=True)
        if not args.realtime:
            print("engage: note: without --realtime the replay runs as fast as it can; add --realtime to watch it",
                  file=sys.stderr)
    start = source.start_time()
    start = start if start is not None else 0.0
    extra = []
    event_outlet = player = None
    if args.to_lsl:
        player, event_outlet = _player(args, path, source, start, extra)
    clock = PacedClock(start) if args.realtime else VirtualClock(start)
    scenes_out = (Path(cfg.scenes_out) if cfg.scenes_out else out / "scenes.jsonl") if story else None
    session = Session([source], clock, story=story, narrative=cfg,
                      events_out=events_out, scenes_out=scenes_out,
                      timeline=None if args.quiet else sys.stdout, extra_processors=extra, model=model,
                      observers=[dashboard.observer] if dashboard is not None else (),
                      step=REPLAY_STEP_S if story is None and model is None and dashboard is None and not args.realtime
                      else 0.1)
    if event_outlet is not None:
        session.bus.subscribe(event_outlet)
    if not args.quiet:
        names = ", ".join(f"{s.name} ({s.type}, {s.channel_count} ch)" for s in source.streams())
        print(f"engage replay: {path} - {names or 'no streams with samples'}\n")
    bar, on_step = progress(getattr(source, "duration", 0.0) or 0.0, "replay")
    if player is not None:
        step = on_step

        def on_step(now: float) -> None:
            player.advance(now)
            step(now)
    try:
        result = session.run(on_step=on_step)
        if dashboard is not None and args.keep_open:
            _wait_for_ctrl_c(dashboard)
    finally:
        bar.close()
        if player is not None:
            player.close()
        if event_outlet is not None:
            event_outlet.close()
        if dashboard is not None:
            dashboard.stop()
    result.outputs["plot"] = plot_session(result.log, out / "session.png", origin=result.start,
                                          title=f"engage replay - {path.name}")
    print_summary(result)
    _describe_recorded(source)
    if problem:
        print(f"engage: error: {path}: {problem}", file=sys.stderr)
        return 1
    return 0


def _player(args, path: Path, source, start: float, extra: list):
    """``--to-lsl``: the recording's own streams on a player (declared, then a lead-in), and the pipeline's
    derived streams and events when the file has none of its own; returns (player, event outlet)."""
    from engage.sensors.liblsl_log import route_liblsl_log
    from engage.sensors.replay import XdfReplay

    route_liblsl_log()
    from engage.events.lsl_outlets import DERIVED_TYPES, LslOutletSink, RecordingPlayer
    from engage.events.publishers import LslEventOutlet

    session_id = f"replay-{path.stem}"
    player = None
    if isinstance(source, XdfReplay):
        player = RecordingPlayer(source.player_source(), source.recorded, session_id, args.lead_in)
        player.declare()
        print(f"engage replay: {len(player.outlets)} LSL outlets declared; playing in {args.lead_in:g} s",
              file=sys.stderr, flush=True)
        offset = player.start(start)
    else:
        import pylsl

        offset = pylsl.local_clock() - start
    event_outlet = None
    if player is None or not source.made_by_engage or args.reprocess_derived:
        extra.append(LslOutletSink(session=session_id, time_offset=offset, types=None if player is None else DERIVED_TYPES))
        event_outlet = LslEventOutlet(session_id, time_offset=offset)
    return player, event_outlet


def _describe_recorded(source) -> None:
    """What an engage recording holds besides its raw streams, shown as recorded (not re-processed)."""
    kept = [r for r in getattr(source, "recorded", []) if r.role != "raw"]
    if not kept or getattr(source, "derived", False):
        return
    counts: dict[str, int] = {}
    for e in source.recorded_events:
        counts[e.type] = counts.get(e.type, 0) + 1
    events = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    print(f"  recorded by engage: {sum(r.role == 'derived' for r in kept)} derived streams and these events, shown "
          f"as recorded, not re-processed (--reprocess-derived feeds them to the pipeline): {events}")


def _wait_for_ctrl_c(dashboard) -> None:
    import signal
    import time

    def stop(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C (or a plain `kill`) ends the wait even when the shell started us with SIGINT ignored, as
    # shells do for a script's background jobs: then Python installs no Ctrl-C handler of its own
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:  # Ctrl-C right after the message (a script reacting to it) must land here too
        print(f"engage replay: finished; the dashboard stays up at {dashboard.url} - Ctrl-C to stop", flush=True)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
