"""Benchmark: the wrist arousal model on Stress-Predict, leave-one-subject-out, and the speed of
the feature path (each participant replayed through the live processors on a virtual clock).

Prints the pooled and per-participant balanced accuracy (the shipped model's settings, retrained
per fold), a heart-rate-only baseline for comparison, and × real time of feature extraction; the
last line is one JSON object.

    python benchmarks/models.py [--root ../shared/data/stress_predict_e4] [--n-jobs 2]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from engage.core.testing import test_data_dir
from engage.datasets import StressPredict
from engage.models.evaluation import _align, config_of, load_shipped
from engage.models.training import extract_windows, loso, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = test_data_dir()
    ap.add_argument("--root", default=str(default / "stress_predict_e4") if default else None)
    ap.add_argument("--n-jobs", type=int, default=1)
    args = ap.parse_args()
    if not args.root:
        raise SystemExit("no Stress-Predict folder: pass --root or set ENGAGE_TEST_DATA")
    model = load_shipped()
    ds = StressPredict(args.root)
    t0 = time.perf_counter()
    sets = _align(extract_windows(ds, None, config_of(model), n_jobs=args.n_jobs), model.features)
    extract_s = time.perf_counter() - t0
    recorded_s = sum(float(s.t[-1] - s.t[0]) for s in sets if len(s.t))
    result = report(sets, loso(sets, "logistic", n_jobs=args.n_jobs))
    hr = [sets[0].features.index("z_hr_mean")]
    hr_sets = [type(s)(s.subject, ("z_hr_mean",), s.X[:, hr], s.t, s.y) for s in sets]
    hr_only = report(hr_sets, loso(hr_sets, "logistic", n_jobs=args.n_jobs))
    for subject, m in sorted(result["per_subject"].items()):
        print(f"  {subject}: balanced accuracy {m['balanced_accuracy']:.3f}  ROC AUC {m['roc_auc']:.3f}")
    print(f"LOSO over {len(sets)} participants, {result['n']} windows: balanced accuracy "
          f"{result['balanced_accuracy']:.3f}, F1 {result['f1']:.3f}, ROC AUC {result['roc_auc']:.3f}")
    print(f"heart-rate-only baseline: balanced accuracy {hr_only['balanced_accuracy']:.3f}")
    print(f"feature path: {recorded_s / 3600:.1f} h of recordings in {extract_s:.1f} s "
          f"({recorded_s / extract_s:.0f}x real time, n_jobs={args.n_jobs})")
    print(json.dumps({"benchmark": "models", "participants": len(sets), "windows": result["n"],
                      "balanced_accuracy": result["balanced_accuracy"], "f1": result["f1"],
                      "roc_auc": result["roc_auc"], "hr_only_balanced_accuracy": hr_only["balanced_accuracy"],
                      "x_real_time": round(recorded_s / extract_s, 1),
                      "per_subject_balanced_accuracy": {k: v["balanced_accuracy"]
                                                        for k, v in result["per_subject"].items()}}))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
