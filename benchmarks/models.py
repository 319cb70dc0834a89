"""Benchmark: the wrist arousal model on Stress-Predict, leave-one-subject-out, with an ablation.

Each participant is replayed once through the live wrist chain on a virtual clock (windows cached
under ``--cache``, keyed by a hash of the code, the settings and the files); the raw windows are
then re-normalised and relabelled for the ablation rows, which is exactly what the live chain
would give with those settings (the baseline normaliser works row by row, causally).

Prints the shipped settings' pooled and per-participant metrics (the shipped pipeline retrained
per fold), an ablation table (what each change brought, and each modality left out), a
heart-rate-only baseline, a nested leave-one-subject-out estimate in which the free settings
(window length 30/60/120 s × rank history 10/20/30/60 min) are chosen inside each training fold, and × real time of feature extraction.
The last line is one JSON object.

    python benchmarks/models.py [--root ../shared/data/stress_predict_e4] [--n-jobs 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import asdict, replace

import numpy as np
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GroupKFold

from engage.core.testing import test_data_dir
from engage.datasets import StressPredict
from engage.models.classifier import make_classifier
from engage.models.evaluation import _align, model_features
from engage.models.training import WindowConfig, extract_windows, fit, loso, report
from engage.models.wrist import WRIST_QUALITIES, renormalise

#: the previous shipped model's inputs (before this ablation's additions)
OLD_LEVELS = ("hr_mean", "hr_std", "hrv_rmssd", "eda_tonic", "eda_phasic_sd", "scr_rate", "acc_sd", "acc_energy",
              "temp_mean", "bvp_amp", "bvp_amp_sd")
OLD_FEATURES = tuple(f"z_{n}" for n in OLD_LEVELS) + ("eda_slope", "temp_slope") + WRIST_QUALITIES
MODALITIES = {
    "HR/HRV (pulse)": ("hr_mean", "hr_std", "hrv_rmssd", "hr_slope", "hrv_sdnn", "hrv_lf_hf", "hr_quality"),
    "EDA": ("eda_tonic", "eda_phasic_sd", "scr_rate", "eda_slope", "scr_amp", "eda_range", "eda_quality"),
    "ACC": ("acc_sd", "acc_energy", "acc_quality"),
    "TEMP": ("temp_mean", "temp_slope", "temp_quality"),
    "BVP amplitude": ("bvp_amp", "bvp_amp_sd"),
}


def _base(name: str) -> str:
    return name[2:] if name[:2] in ("z_", "p_") else name


def _without(features: tuple[str, ...], names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f for f in features if _base(f) not in names)


def _score(sets, kind: str = "logistic", n_jobs: int = 1) -> dict:
    return report(sets, loso(sets, kind, n_jobs=n_jobs))


def _nested(variants: dict) -> tuple[dict, list]:
    """Leave-one-subject-out where the variant (window length × rank history) is chosen by 3-fold
    grouped CV inside each training fold."""
    keys = list(variants)
    n = len(variants[keys[0]])
    probs, chosen = [], []
    for i in range(n):
        inner_scores = {}
        for k in keys:
            train = [s for j, s in enumerate(variants[k]) if j != i]
            X = np.vstack([s.X for s in train])
            y = np.concatenate([s.y for s in train])
            g = np.concatenate([np.full(len(s.y), j) for j, s in enumerate(train)])
            ok = np.isfinite(y)
            X, y, g = X[ok], y[ok].astype(int), g[ok]
            scores = []
            for tr, te in GroupKFold(3).split(X, y, g):
                m = make_classifier("logistic", calibrate=False).fit(X[tr], y[tr])
                scores.append(balanced_accuracy_score(y[te], m.predict(X[te])))
            inner_scores[k] = float(np.mean(scores))
        best = max(keys, key=lambda k: inner_scores[k])
        chosen.append(best)
        model = fit([s for j, s in enumerate(variants[best]) if j != i], "logistic")
        probs.append(model.predict_proba(variants[best][i].X)[:, 1])
    return report([variants[c][i] for i, c in enumerate(chosen)], probs), chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = test_data_dir()
    ap.add_argument("--root", default=str(default / "stress_predict_e4") if default else None)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--cache", default="out/cache/windows", help="window cache folder ('' = none)")
    ap.add_argument("--quick", action="store_true", help="shipped settings and HR-only only (no ablation, no nested CV)")
    args = ap.parse_args()
    if not args.root:
        raise SystemExit("no Stress-Predict folder: pass --root or set ENGAGE_TEST_DATA")
    config = WindowConfig()
    ds = StressPredict(args.root)
    t0 = time.perf_counter()
    sets = extract_windows(ds, None, config, n_jobs=args.n_jobs, cache=args.cache or None)
    other_windows = {w: [s for s in extract_windows(ds, None, replace(config, window_s=w, label_lag_s=w / 2),
                                                    n_jobs=args.n_jobs, cache=args.cache or None)
                         if np.isfinite(s.y).any()]
                     for w in (30.0, 120.0)} if not args.quick else {}
    extract_s = time.perf_counter() - t0
    recorded_s = sum(float(s.raw_t[-1] - s.raw_t[0]) for s in sets if s.raw_t is not None and len(s.raw_t))
    sets = [s for s in sets if np.isfinite(s.y).any()]
    shipped_features = model_features()
    main_sets = _align(sets, shipped_features)
    result = _score(main_sets, n_jobs=args.n_jobs)
    hr_only = _score(_align(sets, ("z_hr_mean",)), n_jobs=args.n_jobs)
    for subject, m in sorted(result["per_subject"].items()):
        print(f"  {subject}: balanced accuracy {m['balanced_accuracy']:.3f}  ROC AUC {m['roc_auc']:.3f}")
    print(f"LOSO over {len(sets)} participants, {result['n']} windows: balanced accuracy "
          f"{result['balanced_accuracy']:.3f}, F1 {result['f1']:.3f}, ROC AUC {result['roc_auc']:.3f}")
    print(f"heart-rate-only baseline: balanced accuracy {hr_only['balanced_accuracy']:.3f}")
    ablation, nested, chosen = {}, None, []
    if not args.quick:
        labels = {s.subject: ds.load(s.subject).label_at for s in sets}
        c = config

        def variant(rank, lag, features, kind="logistic", base=sets):
            vs = [renormalise(s, c.calibration_s, c.adapt_tau_s, rank, labels[s.subject], lag) for s in base]
            return _score(_align(vs, features), kind, n_jobs=args.n_jobs)

        z_only = model_features(rank=False)
        w30 = other_windows[30.0]
        rows = [
            ("previous model: 30 s windows, 13 features, z vs first 5 min, label at window end",
             (None, 0.0, OLD_FEATURES, w30)),
            ("+ label at the window centre", (None, 15.0, OLD_FEATURES, w30)),
            ("+ HR slope, HRV SDNN and LF/HF, SCR amplitude, EDA range", (None, 15.0, z_only, w30)),
            ("+ percentile ranks in own last 30 min", (c.rank_history_s, 15.0, shipped_features, w30)),
            ("+ 60 s windows (shipped)", (c.rank_history_s, c.label_lag_s, shipped_features, sets)),
        ]
        for name, mods in MODALITIES.items():
            rows.append((f"shipped without {name}", (c.rank_history_s, c.label_lag_s,
                                                    _without(shipped_features, mods), sets)))
        rows.append(("shipped, ranks only (no z-scores)", (c.rank_history_s, c.label_lag_s,
                                                           tuple(f for f in shipped_features if not f.startswith("z_")),
                                                           sets)))
        rows.append(("shipped with 120 s windows", (c.rank_history_s, 60.0, shipped_features, other_windows[120.0])))
        for name, (rank, lag, feats, base) in rows:
            ablation[name] = variant(rank, lag, feats, base=base)
            print(f"  {name:82s} BA {ablation[name]['balanced_accuracy']:.3f}  AUC {ablation[name]['roc_auc']:.3f}")
        ablation["shipped settings, gradient boosting"] = _score(main_sets, "boosting", n_jobs=args.n_jobs)
        print(f"  {'shipped settings, gradient boosting':70s} BA "
              f"{ablation['shipped settings, gradient boosting']['balanced_accuracy']:.3f}  AUC "
              f"{ablation['shipped settings, gradient boosting']['roc_auc']:.3f}")
        histories = {"600": 600.0, "1200": 1200.0, "1800": 1800.0, "3600": 3600.0}
        windows = {"30": w30, "60": sets, "120": other_windows[120.0]}
        variants = {f"{w} s windows, rank history {k} s":
                    _align([renormalise(s, c.calibration_s, c.adapt_tau_s, h, labels[s.subject], float(w) / 2)
                            for s in base], shipped_features)
                    for w, base in windows.items() for k, h in histories.items()}
        for k in (f"60 s windows, rank history {h} s" for h in histories):
            ablation[k] = _score(variants[k], n_jobs=args.n_jobs)
            print(f"  {k:70s} BA {ablation[k]['balanced_accuracy']:.3f}")
        nested, chosen = _nested(variants)
        print(f"nested LOSO (window length and rank history chosen inside each training fold: "
              f"{'; '.join(sorted(set(chosen)))}): balanced accuracy {nested['balanced_accuracy']:.3f}, "
              f"ROC AUC {nested['roc_auc']:.3f}")
    print(f"feature path: {recorded_s / 3600:.1f} h of recordings in {extract_s:.1f} s "
          f"({recorded_s / extract_s:.0f}x real time, n_jobs={args.n_jobs}{', cache' if args.cache else ''})")
    print(json.dumps({"benchmark": "models", "participants": len(sets), "windows": result["n"],
                      "config": asdict(config),
                      "balanced_accuracy": result["balanced_accuracy"], "f1": result["f1"],
                      "roc_auc": result["roc_auc"], "hr_only_balanced_accuracy": hr_only["balanced_accuracy"],
                      "nested_balanced_accuracy": nested["balanced_accuracy"] if nested else None,
                      "nested_chosen": chosen,
                      "ablation": {k: {m: v[m] for m in ("balanced_accuracy", "f1", "roc_auc")}
                                   for k, v in ablation.items()},
                      "x_real_time": round(recorded_s / extract_s, 1),
                      "per_subject_balanced_accuracy": {k: v["balanced_accuracy"]
                                                        for k, v in result["per_subject"].items()}}))


if __name__ == "__main__":
    np.seterr(all="ignore")
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    main()
