"""Benchmark: streaming ECG beat detection, its cost against NeuroKit2 offline and its accuracy against
every NeuroKit2 ``ecg_peaks`` method on every shared record.

**Cost.** On the same signal (MIT-BIH record 100 from ``../shared/data`` resampled to 250, 360 and
1000 Hz, or a simulated ECG when the data is absent) it times

- the streaming detector alone (``EcgBeatDetector``, 256-sample chunks),
- the whole streaming step (``EcgHeartRate``: detector + per-window signal quality + HR + rolling HRV,
  256-sample chunks),
- NeuroKit2's offline ``ecg_process`` on the whole signal,

in µs per sample, with the ratio NeuroKit2 / streaming step.

**Accuracy.** On every shared ECG record - MIT-BIH 100 and the six ectopy records (cardiologists'
beats: sensitivity, PPV, F1 within 150 ms, as ``engage eval beats``) and the NeuroKit2 samples (no
reference beats: each method's agreement with the streaming detector, F1 within 150 ms, and its
beat count) - the streaming detector (256-sample chunks, as live) against each method of
NeuroKit2's ``ecg_peaks`` run offline on ``ecg_clean``'s output (the method's own cleaning where
``ecg_clean`` has one), with each one's µs per sample. Methods that need a package not installed
are listed as skipped. The last line is one JSON object.

    nice python benchmarks/beats.py [--seconds 600] [--chunk 256] [--methods pantompkins1985,neurokit]
                                     [--no-accuracy]
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


#: NeuroKit2's ``ecg_peaks`` methods (0.3: emrich2023 and koka2022 need the optional ts2vg package)
NK_METHODS = ("neurokit", "pantompkins1985", "hamilton2002", "zong2003", "martinez2004", "christov2004", "gamboa2008",
              "elgendi2010", "engzeemod2012", "manikandan2012", "khamis2016", "kalidas2017", "nabian2018",
              "rodrigues2021", "emrich2023", "koka2022")
#: ``ecg_clean`` methods: a peak method with its own cleaning uses it, the others NeuroKit2's default
NK_CLEAN = {"neurokit", "pantompkins1985", "hamilton2002", "elgendi2010", "engzeemod2012"}


def _records() -> list[tuple[str, np.ndarray, float, np.ndarray | None]]:
    """(name, signal, fs, reference beat times in s or None) of every shared ECG record."""
    from engage.core.testing import test_data_dir

    root = test_data_dir()
    if root is None:
        return []
    import pandas as pd
    import wfdb

    from engage.cli.eval_beats import WFDB_BEATS

    out = []
    for base in [root / "mitdb_100" / "100"] + sorted((root / "mitdb_ectopy").glob("*.hea")):
        base = base.with_suffix("")
        if not base.with_suffix(".hea").exists():
            continue
        rec = wfdb.rdrecord(str(base), channels=[0])
        ann = wfdb.rdann(str(base), "atr")
        beats = np.array([t for t, c in zip(ann.sample, ann.symbol) if c in WFDB_BEATS]) / rec.fs
        out.append((f"mitdb_{base.name}", rec.p_signal[:, 0], float(rec.fs), beats))
    folder = root / "neurokit2_samples"
    for name, fs in (("bio_resting_5min_100hz", 100.0), ("bio_resting_8min_100hz", 100.0),
                     ("bio_eventrelated_100hz", 100.0), ("ecg_1000hz", 1000.0), ("ecg_3000hz", 3000.0)):
        path = folder / f"{name}.csv"
        if path.exists():
            out.append((f"nk_{name}", pd.read_csv(path)["ECG"].to_numpy(dtype=np.float64), fs, None))
    return out


def accuracy(methods: tuple[str, ...], chunk: int) -> dict:
    """F1 (and cost) of the streaming detector and of each NeuroKit2 method on every shared record."""
    import warnings

    import neurokit2 as nk

    from engage.cli.eval_beats import match_beats
    from engage.signals.beats import detect_ecg_beats

    table: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    cost: dict[str, list[float]] = {}
    for name, x, fs, ref in _records():
        detect_ecg_beats(x[:1000], fs, chunk=chunk)  # compile for this record's dtype before timing (numba)
        t0 = time.perf_counter()
        ours = detect_ecg_beats(x, fs, chunk=chunk) / fs
        cost.setdefault("engage", []).append((time.perf_counter() - t0) / len(x) * 1e6)
        row = {"engage": match_beats(ref, ours) if ref is not None else {"n_detected": int(len(ours))}}
        for m in methods:
            if m in skipped:
                continue
            t0 = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    clean = nk.ecg_clean(x, sampling_rate=int(fs), method=m if m in NK_CLEAN else "neurokit")
                    peaks = nk.ecg_peaks(clean, sampling_rate=int(fs), method=m)[1]["ECG_R_Peaks"]
            except ImportError as exc:
                skipped[m] = str(exc).split(":")[-1].strip()
                continue
            except Exception as exc:  # noqa: BLE001 - a method failing on a record is a result, not a crash
                row[m] = {"error": f"{type(exc).__name__}: {exc}"[:120]}
                continue
            cost.setdefault(m, []).append((time.perf_counter() - t0) / len(x) * 1e6)
            found = np.asarray(peaks, dtype=np.float64) / fs
            row[m] = match_beats(ref, found) if ref is not None else {**match_beats(ours, found),
                                                                      "n_detected": int(len(found))}
        table[name] = row
        scores = "  ".join(f"{k} {v['f1']:.4f}" for k, v in row.items() if "f1" in v)
        print(f"{name:>26}  {'F1' if ref is not None else 'agreement with engage'}: {scores}", flush=True)
    macro = {}
    for m in ("engage",) + tuple(methods):
        f1 = [row[m]["f1"] for name, row in table.items() if name.startswith("mitdb") and "f1" in row.get(m, {})]
        if f1:
            macro[m] = {"macro_f1": round(float(np.mean(f1)), 5), "min_f1": round(float(np.min(f1)), 5),
                        "us_per_sample": round(float(np.mean(cost[m])), 3)}
    print("MIT-BIH records (macro F1, worst record, µs per sample):")
    for m, v in sorted(macro.items(), key=lambda kv: -kv[1]["macro_f1"]):
        print(f"  {m:>16}  {v['macro_f1']:.4f}  {v['min_f1']:.4f}  {v['us_per_sample']:9.3f}")
    for m, why in skipped.items():
        print(f"  {m:>16}  skipped: {why}")
    return {"records": table, "mitdb_summary": macro, "skipped": skipped}


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
    ap.add_argument("--methods", default=",".join(NK_METHODS),
                    help="NeuroKit2 ecg_peaks methods to compare (default: all; zong2003 and christov2004 take ~25 s "
                         "per 30-min record)")
    ap.add_argument("--no-accuracy", action="store_true", help="only the cost table")
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
    acc = None if args.no_accuracy else accuracy(tuple(m for m in args.methods.split(",") if m), args.chunk)
    print(json.dumps({"benchmark": "beats", "chunk": args.chunk, "worst_streaming_us_per_sample": worst,
                      "target_us_per_sample": 2.0, "meets_target": worst <= 2.0, "rates": results,
                      "accuracy": acc}))


if __name__ == "__main__":
    main()
