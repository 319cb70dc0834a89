"""``engage record``: LSL streams into a crash-safe XDF file, with LabRecorder's conventions and its remote
control socket."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import socketserver
import sys
import threading
import time
from pathlib import Path

from engage.core.errors import ConfigError, EngageError

from .common import FORMATTER

ORDER = 30
log = logging.getLogger(__name__)

#: The predicate of "every stream" (LabRecorder's ``select all``).
ALL_STREAMS = "starts-with(name,'')"
RCS_PORT = 22345

EPILOG = """\
examples:
  engage record -o session.xdf --lsl type=EEG --lsl name=Markers
  engage record -o s.xdf --lsl type=EEG,hostname=lab-pc --duration 600 --require type=EEG
  engage record --root study --participant P007 --session S02 --task rest --run 3 --lsl type=EEG
      (writes study/sub-P007/ses-S02/eeg/sub-P007_ses-S02_task-rest_run-003_eeg.xdf)
  engage record --rcs --root study --lsl type=EEG
      (waits for LabRecorder's remote-control commands on TCP 22345, e.g. from PsychoPy:
       select all / filename {participant:P007} {task:rest} {run:3} / start / stop)

An existing file is never overwritten: it is moved to NAME_old1.xdf (LabRecorder's way) unless
--overwrite is given; when nothing could be recorded the old file is put back.
"""


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
        epilog=EPILOG)
    r.add_argument("-o", "--output", help="the XDF file to write (or give --participant for a BIDS name)")
    r.add_argument("--overwrite", action="store_true",
                   help="replace an existing file (default: move it to NAME_old1.xdf first)")
    r.add_argument("--lsl", action="append", metavar="PREDICATE",
                   help="streams to record (repeat for more; with --rcs the default is every stream)")
    r.add_argument("--require", action="append", metavar="PREDICATE", default=[],
                   help="a stream that must be there: the run fails (and nothing is left behind) if no stream "
                        "matches it within --wait seconds; it is recorded too")
    r.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    r.add_argument("--wait", type=float, default=10.0,
                   help="seconds to wait for each predicate to match before reporting it (default: 10)")
    r.add_argument("--quiet", action="store_true", help="no progress line")
    b = r.add_argument_group("BIDS file names (LabRecorder's template)")
    b.add_argument("--root", default=".", help="study root folder (default: the current folder)")
    b.add_argument("--participant", help="participant label (sub-…), e.g. P001")
    b.add_argument("--session", default="S001", help="session label (ses-…; default S001)")
    b.add_argument("--task", default="Default", help="task label (task-…; default Default)")
    b.add_argument("--run", type=int, default=1, help="run number (run-…, three digits; default 1)")
    b.add_argument("--acquisition", default="", help="acquisition label (acq-…; default none)")
    b.add_argument("--modality", default="eeg", help="BIDS modality folder and suffix (default eeg)")
    c = r.add_argument_group("remote control (LabRecorder's RCS)")
    c.add_argument("--rcs", action="store_true",
                   help="wait for LabRecorder's remote-control commands on TCP instead of recording at once: "
                        "'select all', 'select none', 'filename {root:…} {template:…} {task:…} {participant:…} "
                        "{session:…} {run:…} {acquisition:…} {modality:…}', 'start', 'stop', 'update'")
    c.add_argument("--rcs-port", type=int, default=RCS_PORT, help=f"its port (default: {RCS_PORT}, LabRecorder's)")
    c.add_argument("--rcs-host", default="127.0.0.1",
                   help="its address (default 127.0.0.1; 0.0.0.0 lets other machines control it)")
    r.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    from engage.sensors.lsl import parse_predicate

    if args.duration is not None and not args.duration > 0:
        raise ConfigError(f"--duration must be positive, got {args.duration}")
    if not args.wait > 0:
        raise ConfigError(f"--wait must be positive, got {args.wait}")
    if not 0 < args.rcs_port < 65536:
        raise ConfigError(f"--rcs-port must be within 1..65535, got {args.rcs_port}")
    if not args.rcs and not args.lsl and not args.require:
        raise ConfigError("engage record needs --lsl PREDICATE (which streams to record), or --rcs")
    if not args.rcs and not args.output and not args.participant:
        raise ConfigError("engage record needs -o FILE.xdf, or --participant (and --session/--task/--run) for a "
                          "BIDS file name")
    if args.output and args.participant:
        raise ConfigError("give either -o FILE.xdf or --participant (a BIDS name), not both")
    for p in (args.lsl or []) + args.require:
        parse_predicate(p)  # a typo is reported before anything is written


def _target_path(args: argparse.Namespace) -> Path:
    from engage.record.naming import bids_path

    if args.output:
        return Path(args.output)
    return bids_path(args.root, args.participant, args.session, args.task, args.run, args.acquisition, args.modality)


def run(args: argparse.Namespace) -> int:
    from engage.sensors.liblsl_log import route_liblsl_log

    route_liblsl_log()
    _check(args)
    stop = {"signal": None}

    def on_term(signum, _frame) -> None:
        stop["signal"] = signum

    previous = signal.signal(signal.SIGTERM, on_term) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        if args.rcs:
            return _run_rcs(args, stop)
        return _record_once(args, _target_path(args), (args.lsl or []) + args.require, stop)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _on_gap(gap) -> None:
    print(f"engage record: {gap.reason}: {gap.stream!r}" +
          ("" if gap.duration_s is None else f" (after {gap.duration_s:.1f} s)"), file=sys.stderr)


class _Announcer:
    """Prints each stream once, when the recorder first opens it."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, rec) -> None:
        for item in rec.inlets:
            if item.key not in self.seen:
                self.seen.add(item.key)
                i = item.info
                print(f"engage record: recording {i.name!r} ({i.type}, {i.channel_count} ch, {i.nominal_rate:g} Hz) "
                      f"from {item.label or i.source_id}", file=sys.stderr)


def _visible() -> str:
    from engage.sensors.lsl import list_streams

    return ", ".join(f"{s['name']} ({s['type']})" for s in list_streams(1.0)) or "none"


def _record_once(args: argparse.Namespace, path: Path, predicates: list[str], stop: dict) -> int:
    """One recording from start to Ctrl-C, SIGTERM or --duration (see ``register``)."""
    from engage.record import XdfRecorder
    from engage.record.naming import free_target

    target = free_target(path, args.overwrite)
    if target.renamed is not None:
        print(f"engage record: {path} existed: moved to {target.renamed.name}", file=sys.stderr)
    rec = XdfRecorder(target.path, predicates, on_gap=_on_gap)
    rec.start()
    start = time.monotonic()
    announce = _Announcer()
    reported: set[str] = set()
    failure = None
    try:
        while stop["signal"] is None and rec.error is None:
            elapsed = time.monotonic() - start
            if args.duration is not None and elapsed >= args.duration:
                break
            announce(rec)
            if elapsed >= args.wait:
                unmatched = rec.unmatched()
                missing = [p for p in args.require if p in unmatched]
                if missing or (len(unmatched) == len(predicates)):
                    what = "required stream" if missing else "LSL stream"
                    failure = (f"no {what} matches {', '.join(map(repr, missing or predicates))} after "
                               f"{args.wait:g} s (visible streams: {_visible()})")
                    break
                for p in unmatched:
                    if p not in reported:
                        reported.add(p)
                        print(f"engage record: warning: no LSL stream matches {p!r} after {args.wait:g} s; "
                              f"still looking", file=sys.stderr)
            if not args.quiet and sys.stderr.isatty():
                print(f"\rengage record: {elapsed:6.0f} s, {len(rec.inlets)} streams, {rec.writer.samples_written} "
                      "samples", end="", file=sys.stderr)
            time.sleep(0.1)
    except KeyboardInterrupt:
        print("\nengage record: stopping", file=sys.stderr)
    finally:
        rec.close()
    if failure is None and not rec.inlets and rec.error is None:
        failure = (f"nothing recorded: no LSL stream matched {', '.join(map(repr, predicates))} "
                   f"(visible streams: {_visible()})")
    if failure is not None:
        target.restore()
        kept = f"; {path} is as it was" if target.path.exists() else "; no file written"
        raise EngageError(failure + kept)
    if rec.error is not None:
        print(f"engage: error: {rec.error}", file=sys.stderr)
        return 1
    per = ", ".join(f"{i.info.name} {i.samples}" for i in rec.inlets) or "no streams"
    print(f"engage record: wrote {target.path} ({rec.writer.samples_written} samples: {per}; {len(rec.gaps)} "
          "gap reports)")
    return 0


# ---------------------------------------------------------------------------------------------
# LabRecorder's remote control socket
# ---------------------------------------------------------------------------------------------

_OPTION = re.compile(r"\{(\w+?):([^}]*)\}")


class RemoteControl:
    """LabRecorder's remote-control commands on one recorder (thread-safe; one command at a time).

    ``handle(line)`` returns the reply LabRecorder sends: ``OK``, or ``ERR …`` for an unknown command.
    ``select all`` records every visible stream from the next ``start``; ``select none`` none (only
    ``--lsl``/``--require`` streams); ``filename {…}`` sets the parts of the next file name (BIDS
    unless ``{template:…}`` gives a legacy template); ``start`` / ``stop`` begin and end a recording;
    ``update`` resolves streams again (the recorder does that continuously anyway).
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.base = list(args.lsl or []) + list(args.require)
        self.select_all = not self.base
        self.parts = {"root": args.root, "template": "", "participant": args.participant or "P001",
                      "session": args.session, "task": args.task, "run": str(args.run),
                      "acquisition": args.acquisition, "modality": args.modality}
        self.recorder = None
        self.target = None
        self.files: list[Path] = []
        self._lock = threading.Lock()

    def path(self) -> Path:
        from engage.record.naming import bids_path, expand_template

        p = self.parts
        try:
            run = int(p["run"] or 1)
        except ValueError:
            raise ConfigError(f"run {p['run']!r} is not a number") from None
        if p["template"]:
            return Path(p["root"]) / expand_template(p["template"], p["participant"], p["session"], p["task"], run,
                                                     p["acquisition"], p["modality"])
        return bids_path(p["root"], p["participant"], p["session"], p["task"], run, p["acquisition"], p["modality"])

    def handle(self, line: str) -> str:
        line = line.strip()
        with self._lock:
            try:
                if line == "start":
                    self._start()
                elif line == "stop":
                    self._stop()
                elif line == "update":
                    if self.recorder is not None and self.recorder._inlets is not None:
                        self.recorder._inlets.resolve()
                elif line == "select all":
                    self.select_all = True
                elif line == "select none":
                    self.select_all = False
                elif line.startswith("filename"):
                    for key, value in _OPTION.findall(line):
                        key = key.lower()
                        if key not in self.parts:
                            return f"ERR unknown filename option {key!r}"
                        self.parts[key] = value.lower() if key in ("template", "modality") else value
                else:
                    return "ERR Unknown command"
            except EngageError as exc:
                print(f"engage record: remote control: {line!r}: {exc}", file=sys.stderr)
                return f"ERR {exc}"
        return "OK"

    def _start(self) -> None:
        from engage.record import XdfRecorder
        from engage.record.naming import free_target

        if self.recorder is not None:
            print("engage record: remote control: already recording", file=sys.stderr)
            return
        predicates = self.base + ([ALL_STREAMS] if self.select_all else [])
        if not predicates:
            raise ConfigError("no streams selected (send 'select all', or give --lsl)")
        self.target = free_target(self.path(), self.args.overwrite)
        if self.target.renamed is not None:
            print(f"engage record: {self.target.path} existed: moved to {self.target.renamed.name}", file=sys.stderr)
        self.recorder = XdfRecorder(self.target.path, predicates, on_gap=_on_gap)
        self.recorder.start()
        print(f"engage record: recording to {self.target.path}", file=sys.stderr)

    def _stop(self) -> None:
        rec, self.recorder = self.recorder, None
        if rec is None:
            print("engage record: remote control: not recording", file=sys.stderr)
            return
        rec.close()
        self.files.append(self.target.path)
        state = f"error: {rec.error}" if rec.error is not None else f"{rec.writer.samples_written} samples"
        print(f"engage record: wrote {self.target.path} ({state})", file=sys.stderr)

    def close(self) -> None:
        with self._lock:
            if self.recorder is not None:
                self._stop()


def _rcs_server(control: RemoteControl, host: str, port: int) -> socketserver.ThreadingTCPServer:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for raw in self.rfile:
                if len(raw) > 4096:
                    self.wfile.write(b"ERR command too long\n")
                    continue
                reply = control.handle(raw.decode("utf-8", "replace"))
                try:
                    self.wfile.write((reply + "\n").encode())
                except OSError:
                    return

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    try:
        return Server((host, port), Handler)
    except OSError as exc:
        raise ConfigError(f"remote control: cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _run_rcs(args: argparse.Namespace, stop: dict) -> int:
    control = RemoteControl(args)
    control.path()  # bad labels are reported now, not at the first start
    server = _rcs_server(control, args.rcs_host, args.rcs_port)
    thread = threading.Thread(target=server.serve_forever, name="engage-rcs", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    print(f"engage record: remote control on {host}:{port} (LabRecorder's commands: select all, filename {{…}}, "
          "start, stop); Ctrl-C to quit", file=sys.stderr, flush=True)
    start = time.monotonic()
    announce = _Announcer()
    try:
        while stop["signal"] is None:
            if args.duration is not None and time.monotonic() - start >= args.duration:
                break
            rec = control.recorder
            if rec is not None:
                announce(rec)
            time.sleep(0.1)
    except KeyboardInterrupt:
        print("\nengage record: stopping", file=sys.stderr)
    finally:
        server.shutdown()
        server.server_close()
        control.close()
    failed = [f for f in control.files if not f.exists()]
    return 1 if failed else 0

