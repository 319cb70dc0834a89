"""``engage devices scan`` and ``engage bridge ble``: Bluetooth heart-rate straps."""

from __future__ import annotations

import argparse
import json
import sys
import time

from engage.core.errors import EngageError

from .common import FORMATTER

ORDER = 45


def register(sub) -> None:
    d = sub.add_parser("devices", formatter_class=FORMATTER, help="find Bluetooth heart-rate straps",
                       description="Bluetooth devices engage can use.",
                       epilog="examples:\n  engage devices scan\n  engage devices scan --timeout 10 --json")
    dsub = d.add_subparsers(dest="devices_command", metavar="WHAT")
    s = dsub.add_parser(
        "scan", formatter_class=FORMATTER, help="list straps advertising the Heart Rate service",
        description="Scans for devices advertising the Bluetooth Heart Rate service (0x180D) and lists\n"
                    "address, name, signal strength and whether they stream ECG (Polar PMD).\n"
                    "Needs BlueZ (Linux), CoreBluetooth (macOS) or WinRT (Windows) through bleak.",
        epilog="examples:\n  engage devices scan\n  engage devices scan --timeout 10\n  engage devices scan --json")
    s.add_argument("--timeout", type=float, default=5.0, help="seconds to scan (default: 5)")
    s.add_argument("--json", action="store_true", help="one JSON object per strap")
    s.set_defaults(func=run_scan)
    d.set_defaults(func=lambda args: (d.print_help(), 2)[1])

    b = sub.add_parser("bridge", formatter_class=FORMATTER, help="publish a device's streams on LSL",
                       description="Bridges devices to Lab Streaming Layer.",
                       epilog="examples:\n  engage bridge ble A0:9E:1A:12:34:56 --lsl")
    bsub = b.add_subparsers(dest="bridge_command", metavar="KIND")
    ble = bsub.add_parser(
        "ble", formatter_class=FORMATTER, help="heart-rate straps → LSL (RR, heart rate, Polar ECG)",
        description="Keeps one or more straps connected (reconnecting with backoff after a drop) and\n"
                    "publishes, per strap, LSL streams for LabRecorder and other tools:\n"
                    "  <label>-rr   type RR       rr_s, contact      irregular, stamped at the beat\n"
                    "  <label>-hr   type StrapHR  hr_bpm, contact, energy_kj\n"
                    "  <label>-ecg  type ECG      ecg (uV), 130 Hz   Polar H10 only\n"
                    "Beat times are back-dated from the RR intervals and mapped onto the LSL clock\n"
                    "with drift estimation. Outages are logged as sensor.gap events (--events-out).\n"
                    "Ctrl-C stops cleanly.",
        epilog="examples:\n  engage bridge ble A0:9E:1A:12:34:56 --lsl\n"
               "  engage bridge ble \"Polar H10 1A2B3C4D\" --lsl --no-ecg\n"
               "  engage bridge ble A0:9E:1A:00:00:01 A0:9E:1A:00:00:02 --viewer p01 --viewer p02 --lsl\n"
               "  engage bridge ble A0:9E:1A:12:34:56 --duration 60 --events-out gaps.jsonl")
    ble.add_argument("targets", nargs="+", metavar="ADDRESS", help="strap MAC address (or advertised name)")
    ble.add_argument("--lsl", action="store_true", help="publish LSL outlets (else print beats on stdout)")
    ble.add_argument("--viewer", action="append", help="viewer id per strap, in order (default viewer-1, viewer-2 …)")
    ble.add_argument("--no-ecg", action="store_true", help="do not start Polar ECG even when available")
    ble.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    ble.add_argument("--session", default="ble", help="session name in the LSL source ids (default: ble)")
    ble.add_argument("--events-out", help="write sensor.gap events here as JSON lines")
    ble.set_defaults(func=run_bridge)
    b.set_defaults(func=lambda args: (b.print_help(), 2)[1])


def _bluetooth_error(exc: Exception) -> EngageError:
    return EngageError(f"Bluetooth is not available ({type(exc).__name__}: {exc}); on Linux check that "
                       f"bluetoothd is running and an adapter is powered (bluetoothctl show)")


def run_scan(args: argparse.Namespace) -> int:
    import asyncio

    from engage.sensors.ble.client import scan

    try:
        found = asyncio.run(scan(timeout=args.timeout))
    except Exception as exc:  # noqa: BLE001 - bleak/D-Bus errors become one clear line
        raise _bluetooth_error(exc) from None
    if args.json:
        for f in found:
            print(json.dumps({"address": f.address, "name": f.name, "rssi": f.rssi, "ecg": f.has_ecg}))
        return 0
    if not found:
        print(f"no heart-rate straps found in {args.timeout:g} s (is the strap worn? straps sleep without skin "
              f"contact)")
        return 1
    print(f"{'address':<19} {'rssi':>5}  ecg  name")
    for f in found:
        print(f"{f.address:<19} {f.rssi:>5}  {'yes' if f.has_ecg else 'no ':<3}  {f.name}")
    return 0


def run_bridge(args: argparse.Namespace) -> int:
    from engage.core import Processor
    from engage.core.bus import EventBus
    from engage.core.clock import LslClock
    from engage.core.runtime import Runtime
    from engage.sensors.ble.supervisor import StrapConfig, StrapSource

    viewers = args.viewer or []
    if len(viewers) > len(args.targets):
        raise EngageError(f"{len(viewers)} --viewer values for {len(args.targets)} strap(s)")
    straps = [StrapConfig(t, viewer=viewers[i] if i < len(viewers) else f"viewer-{i + 1}", ecg=not args.no_ecg)
              for i, t in enumerate(args.targets)]
    source = StrapSource(straps)
    processors: list = []
    if args.lsl:
        from engage.events.lsl_outlets import LslOutletSink
        from engage.sensors.liblsl_log import route_liblsl_log

        route_liblsl_log()

        sink = LslOutletSink(session=args.session, types=("RR", "StrapHR", "ECG"), role="sensor")
        for info in source.streams():  # visible to LabRecorder before the first beat; ECG once it flows
            if info.type in ("RR", "StrapHR"):
                sink.outlet(info)
        processors.append(sink)
    else:
        class Print(Processor):
            name = "print"

            def accepts(self, info):
                return info.type == "RR"

            def process(self, chunk):
                for t, (rr, contact) in zip(chunk.timestamps, chunk.data):
                    print(f"{t:.4f}  {chunk.info.viewer}  {chunk.info.name}  rr {rr * 1000:.2f} ms  "
                          f"contact {'-' if contact != contact else int(contact)}", flush=True)
                return []
        processors.append(Print())
    bus = EventBus()
    out = open(args.events_out, "w", encoding="utf-8") if args.events_out else None

    def on_event(e) -> None:
        print(f"engage: {e.viewer}: gap of {e.evidence.get('duration_s', 0):.2f} s in {e.evidence.get('stream')} "
              f"({e.evidence.get('reason')})", file=sys.stderr)
        if out is not None:
            out.write(e.to_json() + "\n")
            out.flush()
    bus.subscribe(on_event, "sensor.gap")
    names = ", ".join(f"{s.target} ({s.viewer})" for s in straps)
    print(f"engage bridge ble: {names} → {'LSL outlets' if args.lsl else 'stdout'}; Ctrl-C stops", file=sys.stderr)
    rt = Runtime(LslClock(), [source], processors, bus=bus, step=0.05, viewer=straps[0].viewer)
    started = time.monotonic()
    try:
        stats = rt.run(duration=args.duration)
    finally:
        if out is not None:
            out.close()
    for link in source.supervisor.links:
        c = link.counters
        print(f"{link.label}: {c['connects']} connect(s), {c['disconnects']} disconnect(s), {c['gaps']} gap(s), "
              f"{c['beats']} beats, {c['ecg_samples']} ECG samples, {c['malformed']} malformed packet(s), "
              f"location {link.state.location or '?'}, battery {link.state.battery if link.state.battery is not None else '?'} %",
              file=sys.stderr)
    if stats.interrupted:
        return 130
    if all(link.counters["connects"] == 0 for link in source.supervisor.links):
        print(f"engage: error: no strap connected in {time.monotonic() - started:.0f} s", file=sys.stderr)
        return 1
    return 0
