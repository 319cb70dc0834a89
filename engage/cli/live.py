"""``engage live``: a live session from a device profile: sensors, pipeline, events, controller, recorder.

Every sensor of the profile is opened first (a camera, a strap that must connect, an LSL stream
that must be visible within its ``wait_s``); one that is missing or fails is reported on one line
naming it and why, and the session goes on with the rest. Then the one pipeline
(:class:`~engage.session.Session`) runs on the LSL clock until the story ends, ``--duration``
passes, or Ctrl-C / SIGTERM, which stop it after the current step: the recording is closed
(readable by pyxdf) and the summary printed.

A profile with only simulated sensors may run faster than real time: ``--speed N`` paces a
virtual clock (started at the current LSL time) at N times the wall clock, ``--speed 0`` runs
as fast as the processing allows; the output then depends only on the seed and the story.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from engage.core.errors import ConfigError, EngageError

from .common import FORMATTER, add_dashboard_options, dashboard_server, print_summary
from .narrative_options import EPILOG, add_narrative_arguments, narrative_config

ORDER = 15
log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  engage live --profile simulated --speed 20 --record out/sim.xdf   # no hardware, 20x real time
  engage live --profile polar-h10 --duration 600
  engage live --profile lab-rig --record session.xdf --story film.ink.json
  engage live --profile simulated --story film.ink.json --rewriter llm --llm-url http://127.0.0.1:11434/v1 \
              --osc 127.0.0.1:9000 --ws 127.0.0.1:8766
  engage live --profile sensors/my-rig.toml --dashboard --port 8800
  engage media make-sample film/ && engage live --profile simulated --story \
      engage/narrative/stories/last_broadcast.ink.json --media film/ --dashboard   # the sample film
  engage live --profile webcam --story film.ink.json --media film/ --dashboard --loop 30   # an installation
  engage live --list-profiles

Built-in profiles live in the top-level sensors/ folder (every key documented in
sensors/README.md); --profile takes one of their names or the path of your own TOML file, whose
[narrative] table may set the story flags below.

""" + EPILOG


def register(sub) -> None:
    p = sub.add_parser(
        "live", formatter_class=FORMATTER,
        help="a live session: a profile's sensors, the pipeline, the controller and the recorder",
        description="Starts every sensor of a device profile (webcam, Bluetooth straps, LSL streams,\n"
                    "simulated viewers), runs the pipeline, the events and the narrative controller on the\n"
                    "LSL clock, and records raw and derived streams and events to XDF with --record. A\n"
                    "sensor that is missing or fails is reported and the session goes on with the rest.\n"
                    "Ends at the story's end, after --duration, or on Ctrl-C (recording closed cleanly).",
        epilog=EXAMPLES)
    p.add_argument("--profile", help="a built-in profile name (simulated, webcam, polar-h10, hr-strap, lsl-eda, "
                                     "lsl-eeg, lab-rig) or a TOML file")
    p.add_argument("--list-profiles", action="store_true", help="list the built-in profiles and exit")
    p.add_argument("--no-story", action="store_true", help="sensing, events and recording only; no controller")
    p.add_argument("--record", metavar="FILE.xdf",
                   help="record every raw and derived stream and every event to XDF (each LSL stream raw, as "
                        "engage record records it); an existing file is moved to FILE_old1.xdf first")
    p.add_argument("--overwrite", action="store_true", help="with --record: replace an existing file instead")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds of session time")
    p.add_argument("--out", default="out/live", help="folder for events.jsonl, scenes.jsonl, session.png "
                                                     "(default: out/live)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="simulated-only profiles: N times real time on a paced virtual clock; 0 = as fast "
                        "as possible (default: 1, the LSL clock)")
    p.add_argument("--lsl", action="store_true", help="also publish events and derived streams as LSL outlets")
    p.add_argument("--quiet", action="store_true", help="no timeline, only the sensor lines and the summary")
    p.add_argument("--loop", type=float, metavar="S",
                   help="an installation: at the story's end start it again after S seconds (the player shows "
                        "the end card, then its idle screen) instead of ending the session; runs until "
                        "--duration or Ctrl-C. Open the player with ?kiosk=1 for a screen nobody touches")
    p.add_argument("--probes", metavar="SPEC", type=_probe_schedule,
                   help="thought probes (experience sampling): random:90, every:60 or scene-end, optionally "
                        "/boredom,arousal,on_task (default question: boredom, 1-7); shown and answered as "
                        "probe.* events, recorded with the session; a simulated viewer answers them itself")
    add_dashboard_options(p, "during the session")
    add_narrative_arguments(p)
    p.set_defaults(func=run)


def _probe_schedule(text: str):
    from engage.core import ConfigError
    from engage.events.probes import ProbeSchedule

    try:
        return ProbeSchedule.parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ---------------------------------------------------------------------------------------------
# Sensors → sources
# ---------------------------------------------------------------------------------------------


class SensorUnavailable(EngageError):
    """A sensor that cannot be started now (absent, off, not found); the session goes on without it."""


@dataclass
class OpenedSensor:
    spec: Any
    source: Any
    note: str = ""
    processors: tuple = ()
    close: Callable[[], None] | None = None
    viewers: tuple = ()  # the viewers its streams belong to, as far as known at the start
    waiting: bool = False  # started, but no stream yet (an LSL stream that may appear later)


def _mapped_lsl_source_class():
    from engage.core.stream import Chunk
    from engage.sensors.lsl import LslSource, map_stream

    class MappedLslSource(LslSource):
        """An :class:`LslSource` whose streams are retyped to the engage type the profile maps them to
        (``maps_to``), the chosen ``channel`` renamed to the name that type's consumers look up. Only
        what the pipeline sees is retyped: a recording keeps each stream as its device sent it, and
        the binding (``item.extra["binding"]``) so that a replay maps it the same way."""

        def __init__(self, selector, maps_to: str, channel: str | None, name: str, on_open=None, **kw) -> None:
            super().__init__([selector], viewer=selector.viewer, on_open=self._opened, **kw)
            self.name = name
            self.maps_to, self.channel = maps_to, channel
            self._outer_open = on_open
            self._infos: dict = {}

        def _opened(self, item) -> None:
            item.extra["binding"] = {"sensor": self.name, "maps_to": self.maps_to, "channel": self.channel,
                                     "viewer": item.viewer, "engage_source_id": item.info.source_id}
            if self._outer_open is not None:
                self._outer_open(item)

        def _map(self, info):
            out = self._infos.get(info)
            if out is None:
                out = self._infos[info] = map_stream(info, self.maps_to, self.channel, self.name)
            return out

        def streams(self):
            return [self._map(i) for i in super().streams()]

        def read(self, until: float):
            return [Chunk(self._map(c.info), c.data, c.timestamps) for c in super().read(until)]

    return MappedLslSource


def _open_simulated(spec, now: float, follows: tuple[str, ...] = ()) -> OpenedSensor:
    """A simulated viewer; ``follows`` adds the viewers whose scenes it watches besides its own (the group's)."""
    from engage.sensors.simulated import SimulatedViewer

    kw = dict(seed=spec.seed, viewer=spec.viewer, ecg_rate=spec.ecg_rate, eda_rate=spec.eda_rate,
              face_rate=spec.face_rate, ppg_rate=spec.ppg_rate, sensors=spec.wears, faults=spec.faults,
              scene_viewers=(spec.viewer, *follows),
              history_s=600.0)  # nothing reads the ground truth back in a live session: probes need the present
    viewer = SimulatedViewer(**kw)
    if spec.traits:
        viewer = SimulatedViewer(traits=dataclasses.replace(viewer.traits, **dict(spec.traits)), **kw)
    viewer.name = spec.name
    return OpenedSensor(spec, viewer)


def _open_webcam(spec, now: float) -> OpenedSensor:
    try:
        from engage.signals.face_mesh import FaceAnalyzer, FaceLandmarkerTracker, FaceMeshTracker
        from engage.signals.gaze import ScreenGeometry

        tracker = None if spec.faces > 1 else FaceLandmarkerTracker(spec.task) if spec.task else FaceMeshTracker()
    except ImportError as exc:
        raise SensorUnavailable(f"the face pipeline is not installed ({exc}); pip install -e \".[face]\"") from None
    except EngageError as exc:
        raise SensorUnavailable(str(exc)) from None
    from engage.sensors.webcam import VideoFileSource, WebcamSource

    screen = ScreenGeometry(width_cm=spec.screen_width_cm, height_cm=spec.screen_height_cm,
                            distance_cm=spec.viewing_distance_cm, camera_above_cm=spec.camera_above_cm,
                            margin_deg=spec.gaze_margin_deg)
    if spec.faces > 1:  # several people, one camera: a viewer (and a Face stream) per face
        from engage.signals.multi_face import FaceIdentities, MultiFaceAnalyzer

        analyzer: Any = MultiFaceAnalyzer(max_faces=spec.faces, screen=screen, identities=FaceIdentities(
            prefix=f"{spec.viewer}-face", new_faces=spec.new_faces, max_viewers=spec.faces))
    else:
        analyzer = FaceAnalyzer(tracker, screen=screen)
    try:
        if spec.file is not None:
            class LiveVideoFileSource(VideoFileSource):
                """A video file played as a camera: its first frame at the session's start."""

                def start(self, ctx) -> None:
                    super().start(ctx)
                    if self._index == 0:
                        self.t0 = ctx.clock.now()

            source = LiveVideoFileSource(spec.file, analyzer=analyzer, viewer=spec.viewer, start=now)
        else:
            source = WebcamSource(spec.device if spec.url is None else spec.url, analyzer=analyzer,
                                  viewer=spec.viewer, width=spec.width, height=spec.height, fps=spec.fps)
    except EngageError as exc:
        analyzer.close()
        raise SensorUnavailable(str(exc)) from None
    return OpenedSensor(spec, source, close=analyzer.close)  # rPPG is a standard session step


def _find_strap(spec, taken: set[str]) -> str:
    """Scan for the strap a profile names by ``device_name`` (or any heart-rate strap): the address of
    the first one found that no other sensor of the profile has taken."""
    import asyncio

    from bleak import BleakScanner
    from bleak.exc import BleakError

    from engage.sensors.ble.hrm import HEART_RATE_SERVICE

    want = spec.device_name

    def match(device, adv) -> bool:
        name = device.name or adv.local_name or ""
        if device.address in taken:
            return False
        if want is not None:
            return name == want or name.startswith(want)
        return HEART_RATE_SERVICE in [u.lower() for u in adv.service_uuids]

    timeout = max(0.5, min(spec.wait_s, 10.0))
    try:
        found = asyncio.run(BleakScanner.find_device_by_filter(match, timeout=timeout))
    except OSError as exc:  # no system D-Bus socket, or no BlueZ behind it
        raise SensorUnavailable(f"Bluetooth is not available here (cannot reach BlueZ on the system D-Bus: "
                                f"{exc.strerror or exc})") from None
    except (BleakError, asyncio.TimeoutError) as exc:
        raise SensorUnavailable(f"Bluetooth scan failed: {exc} (is there an adapter, and is it on?)") from None
    if found is None:
        what = f"no strap named {want!r}…" if want else "no heart-rate strap"
        raise SensorUnavailable(f"{what} found in a {timeout:g} s scan; is it on, worn and in range?")
    return found.address


def _check_bluez() -> None:
    """Fail at once, with the reason, when there is no system D-Bus for BlueZ (bleak's only way on Linux)."""
    if not sys.platform.startswith("linux"):
        return
    import os

    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/var/run/dbus/system_bus_socket")
    for part in address.split(";"):
        if part.startswith("unix:path="):
            path = part[len("unix:path="):].split(",")[0]
            if not os.path.exists(path):
                raise SensorUnavailable(f"Bluetooth is not available here (no system D-Bus at {path}, so no BlueZ)")


def _open_ble(spec, now: float, taken: set[str]) -> OpenedSensor:
    from engage.sensors.ble.supervisor import BleSupervisor, StrapConfig, StrapSource

    _check_bluez()
    address = spec.address or _find_strap(spec, taken)
    taken.add(address)
    sup = BleSupervisor([StrapConfig(address, viewer=spec.viewer, label=spec.name, ecg=spec.polar_ecg)],
                        connect_timeout=spec.connect_timeout_s, scan_timeout=max(0.5, min(spec.wait_s, 10.0)))
    sup.start()
    link = sup.links[0]
    deadline = time.monotonic() + spec.wait_s
    while time.monotonic() < deadline and not link.state.connected:
        time.sleep(0.02)
    if not link.state.connected:
        sup.stop()
        attempts = link.counters["connect_failures"] + link.counters["errors"]
        raise SensorUnavailable(f"{address}: not connected within {spec.wait_s:g} s ({attempts} failed attempts); "
                                "is it on, worn and in range?")

    class ConnectedStrapSource(StrapSource):
        def __init__(self) -> None:
            self.supervisor = sup
            self.name = spec.name

        def start(self, ctx) -> None:  # already running: keep what it got while the others were opened
            self.ctx = ctx

    ecg = " with ECG" if link.state.ecg else ""
    return OpenedSensor(spec, ConnectedStrapSource(), note=f"connected to {link.state.name or address}{ecg}")


def _lsl_candidates(selector, wait_s: float) -> list:
    """The distinct streams (by identity) ``selector`` matches within ``wait_s`` (after the first is found,
    a moment more for the others)."""
    import pylsl

    from engage.sensors.lsl import stream_key

    found = pylsl.resolve_bypred(selector.xpath, 1, wait_s)
    if found:
        found += pylsl.resolve_bypred(selector.xpath, 0, min(1.0, max(wait_s, 0.2)))
    out: dict[str, Any] = {}
    for info in found:
        out.setdefault(stream_key(info.name(), info.type(), info.source_id(), info.hostname(), info.uid()), info)
    return list(out.values())


def _open_lsl(spec, now: float, source_ids=None, on_open=None) -> OpenedSensor:
    from engage.sensors.liblsl_log import route_liblsl_log
    from engage.sensors.lsl import describe_stream

    route_liblsl_log()
    import pylsl

    selector = spec.selector()
    found = _lsl_candidates(selector, spec.wait_s)
    source = _mapped_lsl_source_class()(selector, spec.maps_to, spec.channel, spec.name, source_ids=source_ids,
                                        on_open=on_open, found=found if len(found) == 1 or
                                        selector.several != "refuse" else ())
    if not found:
        visible = sorted({f"{i.name()} ({i.type()})" for i in pylsl.resolve_streams(0.5)})
        why = (f"no LSL stream matches {spec.predicate!r} within {spec.wait_s:g} s "
               f"(visible: {', '.join(visible[:6]) or 'none'})")
        if spec.required:
            raise SensorUnavailable(why)
        return OpenedSensor(spec, source, note=f"{why}; still looking for the whole session", waiting=True)
    if len(found) > 1 and selector.several == "refuse":
        listed = "; ".join(describe_stream(i.name(), i.type(), i.source_id(), i.hostname()) for i in found)
        raise SensorUnavailable(
            f"{len(found)} LSL streams match {spec.predicate!r}: {listed}. A sensor never merges streams: give "
            "viewer_from = \"source_id\" (or \"name\", \"hostname\") for one viewer per stream, or a predicate that "
            "matches one (source_id=…, hostname=…)")
    parts, viewers = [], []
    for info in found:
        viewer = selector.viewer_for(info.name(), info.source_id(), info.hostname())
        part = f"found {info.name()!r} ({info.type()}, {info.channel_count()} ch, {info.nominal_srate():g} Hz)"
        if selector.viewer_from is not None:
            part += f" for viewer {viewer}" if viewer else f" (its {selector.viewer_from} does not match " \
                                                            f"viewer_pattern: not used)"
        rate = info.nominal_srate()
        if spec.expected_rate is not None and abs(rate - spec.expected_rate) > 0.01 * spec.expected_rate:
            part += f"; warning: expected {spec.expected_rate:g} Hz"
        parts.append(part)
        if viewer and viewer not in viewers:
            viewers.append(viewer)
    return OpenedSensor(spec, source, note="; ".join(parts), viewers=tuple(viewers))


def open_sensors(profile, now: float, opened: list[OpenedSensor] | None = None,
                 failed: list[tuple[Any, str]] | None = None,
                 on_open: Callable | None = None) -> tuple[list[OpenedSensor], list[tuple[Any, str]]]:
    """Open every sensor of ``profile``: (opened, [(spec, why it failed)]), appended to ``opened`` and
    ``failed`` as they go (so a Ctrl-C while a strap is being waited for still stops the ones opened).
    ``on_open(inlet)`` is told of every LSL stream a sensor opens (the recorder records it raw)."""
    from engage.sensors.lsl import SourceIds

    opened = [] if opened is None else opened
    failed = [] if failed is None else failed
    taken: set[str] = set()
    source_ids = SourceIds()
    from engage.core import GROUP_VIEWER

    group = getattr(profile, "group", None) or {}
    follows = (GROUP_VIEWER,) if group and group.get("policy", "aggregate") != "personal" else ()
    for spec in profile.sensors:
        try:
            if spec.kind == "simulated":
                opened.append(_open_simulated(spec, now, follows))
            elif spec.kind == "webcam":
                opened.append(_open_webcam(spec, now))
            elif spec.kind == "ble-hrm":
                opened.append(_open_ble(spec, now, taken))
            elif spec.kind == "lsl":
                opened.append(_open_lsl(spec, now, source_ids, on_open))
            else:  # pragma: no cover - profiles.py refuses unknown kinds
                raise SensorUnavailable(f"unknown kind {spec.kind!r}")
        except SensorUnavailable as exc:
            failed.append((spec, str(exc)))
        except Exception as exc:  # noqa: BLE001 - one broken driver never stops the others
            log.debug("opening %s failed", spec.name, exc_info=True)
            failed.append((spec, f"{type(exc).__name__}: {exc}"))
    return opened, failed


# ---------------------------------------------------------------------------------------------
# Small processors of the live session
# ---------------------------------------------------------------------------------------------


def _stream_counter():
    from engage.core.runtime import Processor

    class StreamCounter(Processor):
        """Counts samples per stream, for the closing summary."""

        name = "live-counter"

        def __init__(self) -> None:
            self.samples: dict[tuple[str, str], int] = {}

        def accepts(self, info) -> bool:
            return True

        def process(self, chunk):
            key = (chunk.info.name, chunk.info.type)
            self.samples[key] = self.samples.get(key, 0) + len(chunk)
            return []

    return StreamCounter()


def pacer(speed: float) -> Callable[[float], None]:
    """An ``on_step`` callback that holds a virtual clock to ``speed`` times the wall clock (0: no pacing).

    >>> step = pacer(0.0); step(5.0)   # no pacing: returns at once
    """
    state: dict[str, float] = {}

    def on_step(now: float) -> None:
        if speed <= 0:
            return
        if "t0" not in state:
            state["t0"], state["wall0"] = now, time.monotonic()
            return
        delay = state["wall0"] + (now - state["t0"]) / speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    return on_step


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def _list_profiles() -> int:
    from engage.sensors.profiles import builtin_profile_path, builtin_profiles, load_profile

    for name in builtin_profiles():
        p = load_profile(name)
        print(f"{name:<11} {p.description}")
        for s in p.sensors:
            print(f"  {s.name:<9} {s.describe()}")
    print(f"\n(files: {builtin_profile_path(builtin_profiles()[0]).parent})")
    return 0


def _check_args(args: argparse.Namespace) -> None:
    if args.duration is not None and not args.duration > 0:
        raise ConfigError(f"--duration must be positive, got {args.duration:g}")
    if not (args.speed >= 0 and args.speed < float("inf")):
        raise ConfigError(f"--speed must be >= 0 (0: as fast as possible), got {args.speed:g}")
    if args.record and not str(args.record).lower().endswith(".xdf"):
        raise ConfigError(f"--record {args.record}: the recording is XDF; give a file name ending in .xdf")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be within 0..65535, got {args.port}")
    if args.loop is not None and not (0 <= args.loop < float("inf")):
        raise ConfigError(f"--loop must be >= 0 seconds, got {args.loop:g}")
    if args.media and not Path(args.media).is_dir():
        raise ConfigError(f"--media {args.media}: not a folder (engage media make-sample DIR makes the sample film's)")
    for option, folder in (("--out", Path(args.out)), ("--record", Path(args.record).parent if args.record else None)):
        if folder is None:
            continue
        try:  # before any device is opened: a typo here must not cost a strap's connection
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{option} {folder}: cannot create the folder: {exc.strerror or exc}") from None


def _start_dashboard(args: argparse.Namespace):
    try:
        server = dashboard_server(args)  # bad host/token/media: ConfigError, exit 2
    except ImportError as exc:
        print(f"engage live: dashboard: not available ({exc}); going on without it", file=sys.stderr)
        return None
    try:
        server.start()
    except ConfigError as exc:
        print(f"engage live: dashboard: {exc}; going on without it", file=sys.stderr)
        return None
    print(f"engage live: dashboard at {server.url}  (player: {server.player_url})", file=sys.stderr)
    if args.loop is not None:
        kiosk = server.player_url + ("&" if "?" in server.player_url else "?") + "kiosk=1"
        print(f"engage live: installation screen: {kiosk}", file=sys.stderr)
    return server


def run(args: argparse.Namespace) -> int:
    if args.list_profiles:
        return _list_profiles()
    if not args.profile:
        raise ConfigError("engage live needs --profile (a built-in name such as simulated or polar-h10, or a TOML "
                          "file); see engage live --list-profiles")
    _check_args(args)
    from engage.sensors.liblsl_log import route_liblsl_log
    from engage.sensors.profiles import load_profile

    profile = load_profile(args.profile)
    group = group_config(profile)
    if args.speed != 1 and not profile.simulated_only:
        raise ConfigError(f"--speed {args.speed:g} needs a profile with only simulated sensors; {profile.path} has "
                          + ", ".join(f"{s.name} ({s.kind})" for s in profile.sensors if s.kind != "simulated"))
    story = narrative = None
    if not args.no_story:
        from engage.narrative.config import NarrativeConfig
        from engage.narrative.story import default_story_path

        base = (NarrativeConfig.from_table(profile.narrative, profile.path, base=Path(profile.path).parent)
                if profile.narrative else None)
        narrative = narrative_config(args, base)
        story = narrative.open_story(default_story_path())
    route_liblsl_log()
    import pylsl

    from engage.core import LslClock, VirtualClock

    virtual = args.speed != 1
    clock = VirtualClock(pylsl.local_clock()) if virtual else LslClock()
    print(f"engage live: profile {profile.name!r} ({profile.path}): {len(profile.sensors)} sensor(s)", file=sys.stderr)
    if group is not None:
        who = ", ".join(group.viewers) or "the viewers as they appear"
        n = len(group.viewers)
        k = f"{group.k_of(n)} of the {n}" if n else f"{group.k}" if group.k else f"{group.share:.0%} of the"
        print(f"engage live: a group ({who}); policy {group.policy}; group events (group.boredom.onset …) when {k}"
              f" viewers are bored, aroused or inattentive for {group.dwell_s:g} s", file=sys.stderr)
    opened: list[OpenedSensor] = []
    failed: list[tuple[Any, str]] = []
    session = server = None
    try:
        taps: list[Callable] = []  # the recorder, once it exists: told of every LSL stream a sensor opens
        open_sensors(profile, clock.now(), opened, failed, on_open=lambda item: [tap(item) for tap in taps])
        for spec, why in failed:
            print(f"engage live: sensor {spec.name!r} ({spec.describe()}) not started: {why}", file=sys.stderr)
        required = [spec.name for spec, _ in failed if spec.required]
        for o in opened:
            state = "waiting" if o.waiting else "started"
            print(f"engage live: sensor {o.spec.name!r} ({o.spec.describe()}) {state}"
                  + (f": {o.note}" if o.note else ""), file=sys.stderr)
        if required or all(o.waiting for o in opened):
            what = (f"required sensor(s) {', '.join(map(repr, required))} could not be started" if required
                    else "no sensor could be started")
            raise ConfigError(f"{profile.path}: {what}; see the lines above")
        server = _start_dashboard(args) if args.dashboard else None
        session, counter, recorder = _build_session(args, profile, story, clock, opened,
                                                    observers=[server.observer] if server is not None else (),
                                                    group=group, narrative=narrative)
        if recorder is not None:
            taps.append(recorder.record_stream)
        return _run_session(args, profile, session, counter, recorder, virtual, opened, failed)
    finally:
        if session is None:  # never ran: the runtime did not stop the opened sources
            for o in opened:
                try:
                    o.source.stop()
                except Exception:  # noqa: BLE001
                    log.exception("stopping %s failed", o.spec.name)
        if server is not None:
            server.stop()
        for close in (o.close for o in opened if o.close is not None):
            try:
                close()
            except Exception:  # noqa: BLE001
                log.exception("closing failed")


def calibration_countdown(session, every_s: float = 10.0, quiet: bool = False) -> Callable[[float], None]:
    """An ``on_step`` callback printing, every ``every_s`` seconds of session time until the first viewer's
    baseline is ready, how long the calibration still takes (so a short run does not look idle)."""
    state: dict[str, float] = {}
    session.bus.subscribe(lambda e: state.setdefault("done", e.timestamp), "baseline.ready")
    total = float(getattr(session, "calibration_s", 60.0))

    def step(now: float) -> None:
        if quiet or "done" in state:
            return
        start = state.setdefault("start", now)
        if now >= state.get("next", start):
            left = total - (now - start)
            if left > 0:
                print(f"engage live: calibrating the viewers' baseline: {left:.0f} s to go (events come after it)",
                      file=sys.stderr, flush=True)
            state["next"] = now + every_s

    return step


def lead_viewer(profile, opened: list[OpenedSensor]) -> str:
    """The viewer whose engagement drives the film: the profile's viewer when a started sensor is theirs,
    else the first viewer a started sensor found (every viewer gets their own pipeline and events either
    way; a group policy is for later)."""
    found = [v for o in opened if not o.waiting for v in (o.viewers or (o.spec.viewer,))]
    return profile.viewer if profile.viewer in found or not found else found[0]


def group_config(profile):
    """The profile's ``[group]`` as a :class:`~engage.events.group.GroupConfig` (its ``viewers`` default to
    every viewer the profile's sensors name), or None when it has no ``[group]`` table."""
    if not getattr(profile, "group", None):
        return None
    from engage.events.group import GroupConfig

    table = dict(profile.group)
    table.setdefault("viewers", profile.declared_viewers)
    return GroupConfig.from_table(table, f"{profile.path}: [group]")


def _build_session(args, profile, story, clock, opened, observers=(), group=None, narrative=None):
    from engage.session import Session

    out = Path(args.out)
    extra = [p for o in opened for p in o.processors]
    counter = _stream_counter()
    extra.append(counter)
    if getattr(args, "probes", None) is not None:  # thought probes; simulated viewers answer them themselves
        from engage.events.probes import ProbeScheduler

        responders = {o.source.viewer: o.source for o in opened if hasattr(o.source, "answer_probe")}
        probes = ProbeScheduler(args.probes, responders=responders)
        extra.append(probes)
        for observer in observers:  # the player page shows them and sends its answers (the first answer counts)
            if callable(getattr(observer, "attach_probes", None)):
                observer.attach_probes(probes.answer)
    recorder = None
    session_id = f"live-{profile.name}"
    if args.record:
        from engage.record.recorder import RecorderSink, XdfRecorder

        from engage.record.naming import free_target

        target = free_target(args.record, getattr(args, "overwrite", False))
        if target.renamed is not None:
            print(f"engage live: {args.record} existed: moved to {target.renamed.name}", file=sys.stderr)
        recorder = XdfRecorder(target.path, session=session_id)
        extra.append(RecorderSink(recorder, lsl_raw=True))  # LSL streams are recorded raw by the recorder itself
    scenes_out = None
    if story is not None:
        scenes_out = Path(narrative.scenes_out) if narrative is not None and narrative.scenes_out else out / "scenes.jsonl"
    kw = dict(story=story, viewer=lead_viewer(profile, opened), events_out=out / "events.jsonl",
              scenes_out=scenes_out, lsl=args.lsl, session_id=session_id,
              timeline=None if args.quiet else sys.stdout, extra_processors=extra, narrative=narrative)
    if observers:
        kw["observers"] = observers
    if group is not None:
        kw["group"] = group
    return Session([o.source for o in opened], clock, **kw), counter, recorder


def _run_session(args, profile, session, counter, recorder, virtual, opened, failed) -> int:
    from engage.plots import plot_session

    controller = session.controller
    if controller is not None and args.loop is not None:
        controller.restart_after_s = float(args.loop)  # an installation: again and again
    elif controller is not None:
        controller.stop_at_end = True
        controller.on_end = session.runtime.stop
    state = {"signals": 0}

    def on_signal(signum, _frame) -> None:
        state["signals"] += 1
        if state["signals"] > 1:
            raise KeyboardInterrupt
        print(f"\nengage live: {signal.Signals(signum).name}: stopping after this step "
              "(again to abort)", file=sys.stderr)
        session.runtime.stop()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    until = "the story's end" if controller is not None and args.loop is None else "Ctrl-C"
    if args.duration is not None:
        until += f" or {args.duration:g} s"
    pace = ("" if not virtual else
            f", {'as fast as possible' if args.speed == 0 else f'{args.speed:g}x real time'} on a virtual clock")
    print(f"engage live: running until {until}{pace}"
          + (f"; recording to {args.record}" if args.record else ""), file=sys.stderr)
    pace_step = pacer(args.speed) if virtual else None
    countdown = calibration_countdown(session, quiet=args.quiet)

    def on_step(now: float) -> None:
        if not state.get("ready"):  # after the first step (which compiles the JIT kernels)
            state["ready"] = 1
            print("engage live: ready (Ctrl-C to stop)", file=sys.stderr, flush=True)
        countdown(now)
        if pace_step is not None:
            pace_step(now)

    wall = time.perf_counter()
    try:
        result = session.run(duration=args.duration, on_step=on_step)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    wall = time.perf_counter() - wall
    out = Path(args.out)
    try:
        result.outputs["plot"] = plot_session(result.log, out / "session.png", origin=result.start,
                                              title=f"engage live - {profile.name}")
    except Exception as exc:  # noqa: BLE001 - a plot never costs the session's files
        log.warning("session plot failed: %s", exc)
    if recorder is not None:
        result.outputs["xdf"] = Path(args.record)
    print_summary(result)
    why = ("stopped by signal" if state["signals"] else "interrupted" if result.stats.interrupted else
           "story ended" if session.controller is not None and session.controller.finished else
           "duration reached" if args.duration is not None else "sources ended")
    print(f"  {why} after {result.stats.duration:.1f} s of session ({wall:.1f} s wall)")
    for (name, kind), n in sorted(counter.samples.items()):
        print(f"  {name:<28} {kind:<12} {n} samples")
    for spec, reason in failed:
        print(f"  not started: {spec.name} ({reason})")
    if session.group is not None:
        g = session.group
        row = g.last_row or {}
        counts = {t: sum(1 for e in result.log.events if e.type == t) for t in ("group.boredom.onset", "group.arousal.high")}
        print(f"  group: {len(g.viewers)} viewers ({', '.join(g.viewers)}), {int(row.get('present', 0))} present at the end,"
              f" confidence {row.get('confidence', 0.0):.2f}; {counts['group.boredom.onset']} group boredom onsets, "
              f"{counts['group.arousal.high']} group arousal highs")
    gaps = sum(1 for e in result.log.events if e.type == "sensor.gap")
    if gaps:
        print(f"  sensor gaps: {gaps}")
    if recorder is not None:
        if recorder.error is not None:
            print(f"engage: error: {recorder.error}", file=sys.stderr)
            return 1
        print(f"  recorded {recorder.writer.samples_written} samples to {args.record}")
    return 0
