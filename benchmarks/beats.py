"""Benchmark: streaming ECG beat detection cost at 250, 360 and 1000 Hz, against NeuroKit2 offline.

On the same signal (MIT-BIH record 100 from ``../shared/data`` resampled to each rate, or a
simulated ECG when the data is absent) it times

- the streaming detector alone (``EcgBeatDetector``, 256-sample chunks),
- the whole streaming step (``EcgHeartRate``: detector + per-window signal quality + HR + rolling HRV,
  256-sample chunks),
- NeuroKit2's offline ``ecg_process`` on the whole signal,

in µs per sample, with the ratio NeuroKit2 / streaming step. The last line is one JSON object.

    python benchmarks/beats.py [--seconds 600] [--chunk 256]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy import signal


def _signal(seconds: float, fs: int) -> tuple[np.ndarray, str]:
    from engage.core.testing import test_data_dir

    root = test_data_dir()
    if root is not None and (root / "mitdb_100" / "100.hea").exists():
        import wfdb

        rec = wfdb.rdrecord(str(root / "mitdb_100" / "100"), sampto=int(seconds * 360))
        x = rec.p_signal[:, 0]
        if fs != 360:
            from fractions import Fraction

            fr = Fraction(fs, 360)
            x = signal.resample_poly(x, fr.numerator, fr.denominator)
        return x, "mitdb_100"
    import neurokit2 as nk

    return nk.ecg_simulate(duration=seconds, sampling_rate=fs, heart_rate=75, noise=0.05, random_state=1), "simulated"


def _best(fn, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600.0, help="signal length (default: 600 s)")
    ap.add_argument("--chunk", type=int, default=256, help="samples per chunk (default: 256)")
    args = ap.parse_args()

    import neurokit2 as nk

    from engage.core import Chunk, Context, EventBus, StreamInfo, VirtualClock
    from engage.signals.beats import EcgBeatDetector
    from engage.signals.cardiac import EcgHeartRate

    EcgBeatDetector(250.0).process(np.zeros(16))  # load the compiled kernels
    results = {}
    for fs in (250, 360, 1000):
        x, origin = _signal(args.seconds, fs)
        n = len(x)
        step = args.chunk

        def detector_only():
            det = EcgBeatDetector(float(fs))
            for i in range(0, n, step):
                det.process(x[i:i + step])

        info = StreamInfo("ecg", "ECG", ("ecg",), ("mV",), float(fs), "bench")
        t = np.arange(n) / fs
        chunks = [Chunk(info, x[i:i + step, None], t[i:i + step]) for i in range(0, n, step)]

        def full_step():
            p = EcgHeartRate()
            p.start(Context(VirtualClock(), EventBus()))
            for c in chunks:
                p.process(c)

        det_us = _best(detector_only) / n * 1e6
        step_us = _best(full_step) / n * 1e6
        nk_us = _best(lambda: nk.ecg_process(x, sampling_rate=fs), repeat=1) / n * 1e6
        results[str(fs)] = {"detector_us_per_sample": round(det_us, 4), "streaming_us_per_sample": round(step_us, 4),
                            "neurokit2_us_per_sample": round(nk_us, 4), "ratio_neurokit2_over_streaming":
                                round(nk_us / step_us, 2), "samples": n, "signal": origin}
        print(f"{fs:>5} Hz  detector {det_us:.3f} µs/sample  streaming step {step_us:.3f} µs/sample  "
              f"NeuroKit2 ecg_process {nk_us:.3f} µs/sample  (NeuroKit2 / streaming = {nk_us / step_us:.1f}×)")
    worst = max(r["streaming_us_per_sample"] for r in results.values())
    print(json.dumps({"benchmark": "beats", "chunk": args.chunk, "worst_streaming_us_per_sample": worst,
                      "target_us_per_sample": 2.0, "meets_target": worst <= 2.0, "rates": results}))


if __name__ == "__main__":
    main()
