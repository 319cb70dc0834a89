"""Benchmark: Bluetooth strap decoding.

Prints the Heart Rate Measurement parser's throughput (measurements/s) over a mix of every flag
combination, the Polar PMD ECG frame parser's throughput, the cost of back-dating beats onto the
LSL clock, and - when the shared data are present - the beat-time error against MIT-BIH 100
(a strap with an 80 ppm crystal error, 3-40 ms radio latency, a quarter of the notifications
merged). The last line is one JSON object.

    python benchmarks/ble.py [--n 200000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np

from engage.core.testing import test_data_dir
from engage.sensors.ble.clock import BeatTimer
from engage.sensors.ble.hrm import HeartRateMeasurement, encode_hrm, parse_hrm
from engage.sensors.ble.polar import encode_ecg_frame, parse_pmd_frame


def _packets() -> list[bytes]:
    out = []
    for hr16, contact, energy, n_rr in itertools.product([False, True], [None, False, True], [None, 512], range(4)):
        out.append(encode_hrm(HeartRateMeasurement(75, contact, energy, tuple(800 + i for i in range(n_rr)), hr16)))
    return out


def _rate(fn, items, n: int) -> float:
    reps = max(1, n // len(items))
    t0 = time.perf_counter()
    for _ in range(reps):
        for it in items:
            fn(it)
    return reps * len(items) / (time.perf_counter() - t0)


def mitdb_error() -> dict | None:
    root = test_data_dir()
    if root is None or not (root / "mitdb_100" / "100.atr").exists():
        return None
    import wfdb

    ann = wfdb.rdann(str(root / "mitdb_100" / "100"), "atr")
    beats = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in set("NLRBAaJSVrFejnE/fQ?")]) / ann.fs
    t = beats + 1000.0
    rr = np.diff(np.round((beats - beats[0]) * 1024 * (1 + 80e-6)).astype(np.int64))
    rng = np.random.default_rng(0)
    send = t[1:] + rng.uniform(0.003, 0.040, len(rr))
    keep = rng.random(len(rr)) > 0.25
    keep[-1] = True
    timer, est, start = BeatTimer(), [], 0
    t0 = time.perf_counter()
    for i in np.flatnonzero(keep):
        est.append(timer.feed(send[i], rr[start:i + 1]))
        start = i + 1
    spent = time.perf_counter() - t0
    err = np.abs(np.concatenate(est) - t[1:])
    settled = t[1:] > t[0] + 10
    # the harder case: notifications once a second, not tied to the beats (Polar H10's 0x2A37)
    timer1, est1, truth1, k = BeatTimer(), [], [], 1
    for n in np.arange(t[0] + 0.5, t[-1], 1.0):
        j = int(np.searchsorted(t, n, side="right"))
        if j - 1 >= k:
            est1.append(timer1.feed(n + rng.uniform(0.003, 0.040), rr[k - 1:j - 1]))
            truth1.append(t[k:j])
        k = max(k, j)
    err1 = np.abs(np.concatenate(est1) - np.concatenate(truth1))
    s1 = np.concatenate(truth1) > t[0] + 60
    return {"beats": int(err.size), "max_ms": float(err[settled].max() * 1e3),
            "median_ms": float(np.median(err[settled]) * 1e3), "us_per_notification": spent / keep.sum() * 1e6,
            "drift_ppm": -timer.mapper.drift * 1e6, "hz1_median_ms": float(np.median(err1[s1]) * 1e3),
            "hz1_p95_ms": float(np.percentile(err1[s1], 95) * 1e3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000, help="measurements to parse")
    args = ap.parse_args()
    hrm_rate = _rate(parse_hrm, _packets(), args.n)
    frames = [encode_ecg_frame(10**18 + i, np.arange(73) * (i + 1)) for i in range(16)]
    pmd_rate = _rate(parse_pmd_frame, frames, max(1, args.n // 10))
    print(f"Heart Rate Measurement parser: {hrm_rate:,.0f} measurements/s")
    print(f"Polar PMD ECG frame parser:    {pmd_rate:,.0f} frames/s ({pmd_rate * 73 / 130:,.0f}× one H10's rate)")
    result = {"hrm_measurements_per_s": round(hrm_rate), "pmd_frames_per_s": round(pmd_rate)}
    m = mitdb_error()
    if m is not None:
        print(f"beat times vs MIT-BIH 100 ({m['beats']} beats, 80 ppm drift): max {m['max_ms']:.2f} ms, "
              f"median {m['median_ms']:.2f} ms after 10 s; {m['us_per_notification']:.0f} µs per notification; "
              f"drift estimated {m['drift_ppm']:.1f} ppm")
        print(f"  with 1 Hz notifications not tied to beats: median {m['hz1_median_ms']:.1f} ms, "
              f"95th percentile {m['hz1_p95_ms']:.1f} ms after 60 s (bounded by how close a beat comes to a notification)")
        result.update({"beat_time_max_error_ms": round(m["max_ms"], 3), "beat_time_median_error_ms":
                       round(m["median_ms"], 3), "beat_timer_us_per_notification": round(m["us_per_notification"], 1),
                       "beat_time_1hz_median_error_ms": round(m["hz1_median_ms"], 2)})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
