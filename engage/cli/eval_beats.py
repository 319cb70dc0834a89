"""``engage eval beats``: score the streaming beat detector against reference annotations."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from engage.core.errors import EngageError

from .common import FORMATTER

# WFDB beat annotation symbols (everything else is a rhythm, signal-quality or comment label)
WFDB_BEATS = frozenset("NLRBAaJSVrFejnE/fQ?")

EPILOG = """\
examples:
  engage eval beats --wfdb ../shared/data/mitdb_100/100
  engage eval beats --wfdb data/mitdb/208 --channel 0 --tolerance 0.15
  engage eval beats --csv ecg.csv --fs 250 --column ECG --reference rpeaks.csv
  engage eval beats --csv ppg.csv --fs 100 --column PPG --kind ppg --reference beats.txt --reference-unit s

--reference is a text/CSV file with one beat per line (first numeric column), in samples unless
--reference-unit s. The last line of stdout is one JSON object: sensitivity, ppv, f1, n_reference,
n_detected, mean_abs_error_ms (and the detector's cost in us_per_sample).
"""


def match_beats(reference_s: np.ndarray, detected_s: np.ndarray, tolerance_s: float = 0.15) -> dict:
    """One-to-one matching of detected to reference beat times within ``tolerance_s`` (closest first).

    >>> match_beats(np.array([1.0, 2.0, 3.0]), np.array([1.01, 2.5, 3.0]))["sensitivity"]
    0.6666666666666666
    """
    ref = np.sort(np.asarray(reference_s, dtype=np.float64))
    det = np.sort(np.asarray(detected_s, dtype=np.float64))
    used = np.zeros(det.size, dtype=bool)
    errors = []
    for r in ref:
        k = int(np.searchsorted(det, r - tolerance_s))
        best = -1
        while k < det.size and det[k] <= r + tolerance_s:
            if not used[k] and (best < 0 or abs(det[k] - r) < abs(det[best] - r)):
                best = k
            k += 1
        if best >= 0:
            used[best] = True
            errors.append(abs(det[best] - r))
    tp = len(errors)
    se = tp / ref.size if ref.size else 0.0
    ppv = tp / det.size if det.size else 0.0
    f1 = 2 * se * ppv / (se + ppv) if se + ppv > 0 else 0.0
    return {"sensitivity": se, "ppv": ppv, "f1": f1, "n_reference": int(ref.size), "n_detected": int(det.size),
            "mean_abs_error_ms": float(np.mean(errors) * 1000) if errors else None}


def _load_wfdb(record: str, channel: str | None) -> tuple[np.ndarray, float, np.ndarray]:
    import wfdb

    base = Path(record)
    if base.suffix in (".hea", ".dat", ".atr"):
        base = base.with_suffix("")
    if not base.with_suffix(".hea").exists():
        raise EngageError(f"WFDB record {record!r}: no header file {base.with_suffix('.hea')}")
    try:
        rec = wfdb.rdrecord(str(base))
    except Exception as exc:  # noqa: BLE001 - wfdb raises many types on a damaged record
        raise EngageError(f"WFDB record {record!r} could not be read: {type(exc).__name__}: {exc}") from None
    names = list(rec.sig_name or [])
    if channel is None:
        col = 0
    elif channel.isdigit():
        col = int(channel)
    elif channel in names:
        col = names.index(channel)
    else:
        raise EngageError(f"WFDB record {record!r} has no channel {channel!r} (has {', '.join(names)})")
    if not 0 <= col < rec.p_signal.shape[1]:
        raise EngageError(f"WFDB record {record!r} has {rec.p_signal.shape[1]} channels; --channel {col} is out of range")
    if not base.with_suffix(".atr").exists():
        raise EngageError(f"WFDB record {record!r}: no reference annotations {base.with_suffix('.atr')}")
    try:
        ann = wfdb.rdann(str(base), "atr")
    except Exception as exc:  # noqa: BLE001
        raise EngageError(f"WFDB annotations of {record!r} could not be read: {type(exc).__name__}: {exc}") from None
    beats = np.array([s for s, c in zip(ann.sample, ann.symbol) if c in WFDB_BEATS], dtype=np.float64)
    return rec.p_signal[:, col].astype(np.float64), float(rec.fs), beats / float(rec.fs)


def _load_csv(path: str, column: str | None, fs: float | None, reference: str | None,
              unit: str) -> tuple[np.ndarray, float, np.ndarray]:
    import pandas as pd

    from engage.datasets.base import SAFE_FLOATS

    if fs is None or not fs > 0:
        raise EngageError("--csv needs --fs HZ (the sampling rate)")
    if reference is None:
        raise EngageError("--csv needs --reference FILE (one reference beat per line)")
    try:
        df = pd.read_csv(path, float_precision=SAFE_FLOATS)
    except (OSError, ValueError) as exc:
        raise EngageError(f"{path}: cannot read CSV: {exc}") from None
    if column is None:
        column = str(df.columns[0])
    if column not in df.columns:
        raise EngageError(f"{path} has no column {column!r} (has {', '.join(map(str, df.columns))})")
    x = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
    try:
        lines = Path(reference).read_text(errors="replace").splitlines()
    except OSError as exc:
        raise EngageError(f"{reference}: cannot read reference beats: {exc}") from None
    found = []
    for line in lines:  # first numeric field of each line; headers and comments skipped
        for field in line.replace(";", ",").replace("\t", ",").replace(" ", ",").split(","):
            try:
                value = float(field)
            except ValueError:
                continue
            if np.isfinite(value):
                found.append(value)
            break
    if not found:
        raise EngageError(f"{reference}: no numeric beat positions found")
    vals = np.array(found)
    return x, float(fs), vals if unit == "s" else vals / float(fs)


def run_beats(args: argparse.Namespace) -> int:
    import time

    from engage.signals.beats import EcgBeatDetector, PpgBeatDetector

    if (args.wfdb is None) == (args.csv is None):
        raise EngageError("give exactly one of --wfdb RECORD or --csv FILE")
    if not args.tolerance > 0:
        raise EngageError(f"--tolerance must be positive, got {args.tolerance}")
    if args.wfdb is not None:
        x, fs, ref = _load_wfdb(args.wfdb, args.channel)
    else:
        x, fs, ref = _load_csv(args.csv, args.column or args.channel, args.fs, args.reference, args.reference_unit)
    kind = PpgBeatDetector if args.kind == "ppg" else EcgBeatDetector
    warm = kind(fs)  # loads the compiled kernels (the stream's and the end's) before timing
    warm.process(np.zeros(8))
    if hasattr(warm, "finish"):
        warm.finish()
    det = kind(fs)
    from engage.core.progress import Progress

    step = max(1, int(args.chunk))
    found = []
    t0 = time.perf_counter()
    with Progress(len(x), "detecting", "sample") as bar:
        for i in range(0, len(x), step):
            found.append(det.process(x[i:i + step])[0])
            bar.update(min(step, len(x) - i))
    if hasattr(det, "finish"):  # the recording's end: a beat whose QRS complex was still open
        found.append(det.finish()[0])
    cost = (time.perf_counter() - t0) / max(1, len(x)) * 1e6
    beats = np.concatenate(found) / fs if found else np.zeros(0)
    result = match_beats(ref, beats, args.tolerance)
    result["us_per_sample"] = round(cost, 4)
    print(f"{result['n_detected']} beats detected, {result['n_reference']} in the reference; "
          f"sensitivity {result['sensitivity']:.4f}, PPV {result['ppv']:.4f}, F1 {result['f1']:.4f}")
    print(json.dumps(result))
    return 0


def register_eval(sub) -> None:
    p = sub.add_parser("beats", formatter_class=FORMATTER, epilog=EPILOG,
                       help="score the streaming ECG/PPG beat detector against reference beats",
                       description="Run the streaming beat detector (chunk by chunk, as live) on a recording and "
                                   "score it against reference beat annotations.")
    p.add_argument("--wfdb", metavar="RECORD", help="WFDB record path without extension (needs .hea, .dat, .atr)")
    p.add_argument("--channel", help="WFDB channel index or name (default: 0); for --csv, same as --column")
    p.add_argument("--tolerance", type=float, default=0.15, help="matching window in seconds (default: 0.15)")
    p.add_argument("--csv", metavar="FILE", help="a CSV file with the signal in a column")
    p.add_argument("--fs", type=float, help="sampling rate of --csv in Hz")
    p.add_argument("--column", help="column of --csv (default: the first)")
    p.add_argument("--reference", metavar="FILE", help="reference beats for --csv, one per line")
    p.add_argument("--reference-unit", choices=["samples", "s"], default="samples",
                   help="unit of --reference positions (default: samples)")
    p.add_argument("--kind", choices=["ecg", "ppg"], default="ecg", help="detector to run (default: ecg)")
    p.add_argument("--chunk", type=int, default=256, help="samples per chunk fed to the detector (default: 256)")
    p.set_defaults(func=run_beats)
