"""Sustained XDF record and replay throughput: a 64-channel 1 kHz stream plus a marker stream.

Three figures, in samples per second (64-channel samples, markers counted separately):

* ``write``: XdfWriter alone, chunks of 50 ms as a live recorder writes them;
* ``lsl_record``: end to end through LSL on loopback - an outlet pushing as fast as the
  outlet takes them, XdfRecorder pulling, writing and flushing until every sample is on disk;
* ``replay``: XdfReplay loading the file with pyxdf and the runtime slicing it on the virtual
  clock (what ``engage replay`` does before any processing).

Run: ``python benchmarks/xdf.py [--seconds 60]``; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engage.core import Processor, Runtime, StreamInfo, VirtualClock  # noqa: E402
from engage.record import XdfRecorder, XdfWriter  # noqa: E402
from engage.sensors.replay import XdfReplay  # noqa: E402
from engage.sensors.lsl import quiet_liblsl  # noqa: E402

RATE, CHANNELS = 1000.0, 64
EEG = StreamInfo("eeg64", "EEG", tuple(f"ch{i}" for i in range(CHANNELS)), ("uV",) * CHANNELS, RATE, "bench-eeg")
MARKERS = StreamInfo("markers", "Markers", ("event",), ("",), 0.0, "bench-markers", channel_format="string")


def bench_write(path: Path, seconds: float) -> dict:
    rng = np.random.default_rng(0)
    block = rng.normal(size=(50, CHANNELS)).astype(np.float32).astype(np.float64)
    n_blocks = int(seconds * RATE / 50)
    t0 = time.perf_counter()
    with XdfWriter(path) as w:
        eeg, mk = w.add_stream(EEG, channel_format="float32"), w.add_stream(MARKERS)
        for b in range(n_blocks):
            ts = (b * 50 + np.arange(50)) / RATE
            w.write_samples(eeg, block, ts)
            if b % 20 == 0:
                w.write_samples(mk, [[json.dumps({"type": "marker", "i": b})]], [ts[0]])
    wall = time.perf_counter() - t0
    n = n_blocks * 50
    return {"samples": n, "wall_s": wall, "samples_per_s": n / wall, "x_realtime": n / RATE / wall,
            "mb": path.stat().st_size / 1e6}


def bench_lsl_record(path: Path, seconds: float) -> dict:
    import pylsl

    tag = uuid.uuid4().hex[:8]
    eeg = pylsl.StreamOutlet(pylsl.StreamInfo("eeg64", "EEG", CHANNELS, RATE, pylsl.cf_float32, f"bench-{tag}-eeg"),
                             max_buffered=60)
    mk = pylsl.StreamOutlet(pylsl.StreamInfo("markers", "Markers", 1, 0, pylsl.cf_string, f"bench-{tag}-mk"))
    rec = XdfRecorder(path, [f"source_id=bench-{tag}-eeg", f"source_id=bench-{tag}-mk"], resolve_interval=0.1)
    rec.start()
    deadline = time.monotonic() + 20
    while not (eeg.have_consumers() and mk.have_consumers()) and time.monotonic() < deadline:
        time.sleep(0.02)
    block = np.random.default_rng(0).normal(size=(100, CHANNELS)).astype(np.float32)
    sent = 0
    total = int(seconds * RATE)
    t0 = time.perf_counter()
    # push as fast as the outlet takes it (timestamps as if at 1 kHz): the recorder's capacity is the figure
    stamp0 = pylsl.local_clock()
    while sent < total:
        eeg.push_chunk(block, (stamp0 + (sent + np.arange(100)) / RATE).tolist())
        sent += 100
        if sent % 1000 == 0:
            mk.push_sample([json.dumps({"type": "marker", "n": sent})], stamp0 + sent / RATE)
    while rec.writer.samples_written < sent + sent // 1000 and time.perf_counter() - t0 < seconds * 2:
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    rec.close()
    got = rec.writer.samples_written - sent // 1000
    return {"samples_sent": sent, "samples_recorded": got, "wall_s": wall, "samples_per_s": got / wall,
            "complete": got == sent}


class Count(Processor):
    name = "count"

    def __init__(self) -> None:
        self.n = 0

    def accepts(self, info) -> bool:
        return info.type == "EEG"

    def process(self, chunk):
        self.n += len(chunk)
        return []


def bench_replay(path: Path) -> dict:
    t0 = time.perf_counter()
    src = XdfReplay(path)
    load = time.perf_counter() - t0
    count = Count()
    Runtime(VirtualClock(), [src], [count], step=0.1).run()
    wall = time.perf_counter() - t0
    return {"samples": count.n, "load_s": load, "wall_s": wall, "samples_per_s": count.n / wall,
            "x_realtime": count.n / RATE / wall}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="recording length in stream seconds (default: 60)")
    args = p.parse_args()
    quiet_liblsl()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        w = bench_write(tmp / "write.xdf", args.seconds)
        print(f"write : {w['samples']} samples x {CHANNELS} ch in {w['wall_s']:.2f} s = "
              f"{w['samples_per_s']:,.0f} samples/s ({w['x_realtime']:.0f}x real time, {w['mb']:.1f} MB)")
        r = bench_replay(tmp / "write.xdf")
        print(f"replay: {r['samples']} samples in {r['wall_s']:.2f} s (pyxdf load {r['load_s']:.2f} s) = "
              f"{r['samples_per_s']:,.0f} samples/s ({r['x_realtime']:.0f}x real time)")
        lsl_seconds = min(args.seconds, 30.0)  # the outlet buffers 60 s
        rec = bench_lsl_record(tmp / "lsl.xdf", lsl_seconds)
        print(f"record: {rec['samples_recorded']}/{rec['samples_sent']} samples over LSL loopback in "
              f"{rec['wall_s']:.2f} s = {rec['samples_per_s']:,.0f} samples/s "
              f"({rec['samples_per_s'] / RATE:.0f}x real time)")
    print(json.dumps({"benchmark": "xdf", "channels": CHANNELS, "rate_hz": RATE,
                      "write_samples_per_s": round(w["samples_per_s"]),
                      "replay_samples_per_s": round(r["samples_per_s"]),
                      "lsl_record_samples_per_s": round(rec["samples_per_s"]),
                      "lsl_record_complete": rec["complete"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
