"""Benchmark: the wrist arousal model on Stress-Predict, leave-one-subject-out, with an ablation.

Each participant is replayed once through the live wrist chain on a virtual clock (windows cached
under ``--cache``, keyed by a hash of the code, the settings and the files); the raw windows are
then re-normalised and relabelled for the ablation rows, which is exactly what the live chain
would give with those settings (the baseline normaliser works row by row, causally).

Prints the shipped pipeline's pooled and per-participant metrics (retrained per fold on
re-ordered copies of the other participants, as ``engage evaluate --cv loso``), a training table
(logistic or the logistic + boosting ensemble, trained on the sessions as recorded or on
re-ordered copies; ``--seeds N`` adds N more re-ordering seeds and the spread) and, without
``--quick``, an ablation table
of the features with the logistic model trained as recorded (what each change brought, and each modality left out), a
heart-rate-only baseline, a nested leave-one-subject-out estimate in which the free settings
(window length 30/60/120 s × rank history 10/20/30/60 min) are chosen inside each training fold, and × real time of feature extraction.

A second table holds the attempts to reach the project's 0.75 that were *not* adopted: training
only on windows whose label holds over the whole window, training on labels shifted by the
physiological lag, change features against the viewer's own windows 2/5/10 min earlier
(``d_*``), 30 s and 60 s windows side by side, a stronger-regularised logistic model, the
average of the logistic and boosting models, the decision relative to the viewer's own recent
scores - all evaluated on every window exactly as the shipped row - and a nested estimate in
which {logistic, average} × {with, without 5-min changes} is chosen inside each training fold.
The last line is one JSON object.

    python benchmarks/models.py [--root ../shared/data/stress_predict_e4] [--n-jobs 2] [--quick] [--seeds 4]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import asdict, replace

import numpy as np
from joblib import Parallel, delayed
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GroupKFold

from engage.core.testing import test_data_dir
from engage.datasets import StressPredict
from engage.models.classifier import make_classifier
from engage.models.evaluation import _align, load_shipped, model_features, reorder_of, reordered_windows
from engage.models.training import ReorderConfig, WindowConfig, extract_windows, fit, loso, report
from engage.models.wrist import WRIST_QUALITIES, WindowSet, renormalise

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


def _loso_trained_on(train_sets, test_sets, n_jobs: int = 1, **params) -> list[np.ndarray]:
    """LOSO where the training windows may carry other labels (NaN: left out of training) or the
    logistic model other parameters; the held-out subject is always scored on all its windows
    (``test_sets``, the usual labels)."""
    return loso(test_sets, "logistic", n_jobs=n_jobs, train_sets=[[s] for s in train_sets], **params)


def _pure(s: WindowSet, label_at, window_s: float) -> np.ndarray:
    """Windows whose label is the same (and known) over the whole window."""
    grid = s.t[:, None] + np.arange(-window_s, 1.0, 1.0)[None, :]
    L = label_at(grid.ravel()).reshape(grid.shape)
    return np.isfinite(L).all(axis=1) & (L == L[:, :1]).all(axis=1)


def _relative_to_own_recent(s: WindowSet, p: np.ndarray, history_s: float = 1800.0, min_rows: int = 12) -> np.ndarray:
    """P shifted so the viewer's own running median logit over the last ``history_s`` sits at 0.5 (causal)."""
    logit = np.log(np.clip(p, 1e-4, 1 - 1e-4) / np.clip(1 - p, 1e-4, 1))
    out, j = logit.copy(), 0
    for i in range(len(p)):
        while s.t[j] < s.t[i] - history_s:
            j += 1
        if i - j + 1 >= min_rows:
            out[i] = logit[i] - np.median(logit[j:i + 1])
    return 1.0 / (1.0 + np.exp(-out))


def _side_by_side(a: WindowSet, b: WindowSet, prefix: str) -> WindowSet:
    """``a``'s windows with ``b``'s features of the window ending at the same time appended."""
    idx = np.minimum(np.searchsorted(b.t, a.t), max(len(b.t) - 1, 0))
    same = len(b.t) > 0
    ok = np.abs(b.t[idx] - a.t) < 0.5 if same else np.zeros(len(a.t), bool)
    extra = np.full((len(a.t), b.X.shape[1]), np.nan)
    extra[ok] = b.X[idx[ok]]
    return WindowSet(a.subject, a.features + tuple(prefix + f for f in b.features), np.hstack([a.X, extra]), a.t, a.y)


def _kinds(kind: str) -> tuple[str, ...]:
    """The models whose probabilities are averaged for ``kind`` ("average": logistic and boosting)."""
    return ("logistic", "boosting") if kind == "average" else (kind,)


def _inner_score(train: list, kind: str) -> float:
    X = np.vstack([s.X for s in train])
    y = np.concatenate([s.y for s in train])
    g = np.concatenate([np.full(len(s.y), j) for j, s in enumerate(train)])
    ok = np.isfinite(y)
    X, y, g = X[ok], y[ok].astype(int), g[ok]
    scores = []
    for tr, te in GroupKFold(3).split(X, y, g):
        p = np.mean([make_classifier(k, calibrate=False).fit(X[tr], y[tr]).predict_proba(X[te])[:, 1]
                     for k in _kinds(kind)], axis=0)  # both weight classes to balance
        scores.append(balanced_accuracy_score(y[te], p >= 0.5))
    return float(np.mean(scores))


def _nested_models_fold(candidates: dict, i: int) -> tuple[str, np.ndarray]:
    inner = {name: _inner_score([s for j, s in enumerate(sets) if j != i], kind)
             for name, (kind, sets) in candidates.items()}
    best = max(inner, key=inner.get)
    kind, sets = candidates[best]
    train = [s for j, s in enumerate(sets) if j != i]
    return best, np.mean([fit(train, k).predict_proba(sets[i].frame())[:, 1] for k in _kinds(kind)], axis=0)


def _nested_models(candidates: dict, n_jobs: int = 1) -> tuple[dict, list]:
    """LOSO where the model (logistic or the logistic/boosting average) and the feature set are
    chosen by 3-fold grouped CV inside each training fold."""
    n = len(next(iter(candidates.values()))[1])
    out = Parallel(n_jobs=n_jobs)(delayed(_nested_models_fold)(candidates, i) for i in range(n))
    chosen = [c for c, _ in out]
    return report([candidates[c][1][i] for i, c in enumerate(chosen)], [p for _, p in out]), chosen


def _nested(variants: dict) -> tuple[dict, list]:
    """Leave-one-subject-out where the variant (window length × rank history) is chosen by 3-fold
    grouped CV inside each training fold."""
    keys = list(variants)
    n = len(variants[keys[0]])
    probs, chosen = [], []
    for i in range(n):
        inner_scores = {k: _inner_score([s for j, s in enumerate(variants[k]) if j != i], "logistic") for k in keys}
        best = max(keys, key=lambda k: inner_scores[k])
        chosen.append(best)
        model = fit([s for j, s in enumerate(variants[best]) if j != i], "logistic")
        probs.append(model.predict_proba(variants[best][i].frame())[:, 1])
    return report([variants[c][i] for i, c in enumerate(chosen)], probs), chosen


def stress_predict_args(doc: str, flag: str, flag_help: str, seeds: bool = False) -> argparse.Namespace:
    """The command line of the wrist-model benchmarks: --root (Stress-Predict), --n-jobs, --cache,
    one switch (and --seeds)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if seeds:
        ap.add_argument("--seeds", type=int, default=0,
                        help="also retrain the shipped pipeline LOSO with this many other re-ordering seeds "
                             "(the spread of the figure; each replays 8 copies of every participant once, then cached)")
    default = test_data_dir()
    ap.add_argument("--root", default=str(default / "stress_predict_e4") if default else None)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--cache", default="out/cache/windows", help="window cache folder ('' = none)")
    ap.add_argument(flag, action="store_true", help=flag_help)
    args = ap.parse_args()
    if not args.root:
        raise SystemExit("no Stress-Predict folder: pass --root or set ENGAGE_TEST_DATA")
    return args


def main() -> None:
    args = stress_predict_args(__doc__, "--quick", "shipped pipeline, training table and HR-only only (no ablation, no nested CV)",
                               seeds=True)
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
    shipped = load_shipped()
    kind, reorder = str(shipped.info.get("kind", "logistic")), reorder_of(shipped) or ReorderConfig()
    t1 = time.perf_counter()
    copies = reordered_windows(ds, [s.subject for s in main_sets], config, shipped_features, reorder, args.n_jobs,
                               args.cache or None)
    copies_s = time.perf_counter() - t1
    result = report(main_sets, loso(main_sets, kind, n_jobs=args.n_jobs, train_sets=copies))
    hr_only = _score(_align(sets, ("z_hr_mean",)), n_jobs=args.n_jobs)
    for subject, m in sorted(result["per_subject"].items()):
        print(f"  {subject}: balanced accuracy {m['balanced_accuracy']:.3f}  ROC AUC {m['roc_auc']:.3f}")
    print(f"LOSO over {len(sets)} participants, {result['n']} windows: balanced accuracy "
          f"{result['balanced_accuracy']:.3f}, F1 {result['f1']:.3f}, ROC AUC {result['roc_auc']:.3f}")
    print(f"  (shipped pipeline: {kind} trained on {reorder.copies} re-ordered copies of the other participants, "
          f"seed {reorder.seed})")
    print(f"heart-rate-only baseline: balanced accuracy {hr_only['balanced_accuracy']:.3f}")
    training = {}
    print("training (LOSO; the held-out participant always scored as recorded):")
    as_recorded = [[s] for s in main_sets]
    for name, k, train in (("logistic, sessions as recorded (the model shipped before)", "logistic", as_recorded),
                           ("logistic, re-ordered copies", "logistic", copies),
                           ("ensemble, sessions as recorded", "ensemble", as_recorded),
                           (f"ensemble, re-ordered copies, seed {reorder.seed} (shipped)", "ensemble", copies)):
        training[name] = result if k == kind and train is copies else report(
            main_sets, loso(main_sets, k, n_jobs=args.n_jobs, train_sets=train))
        print(f"  {name:82s} BA {training[name]['balanced_accuracy']:.3f}  AUC {training[name]['roc_auc']:.3f}",
              flush=True)
    seeds = {}
    for seed in range(reorder.seed + 1, reorder.seed + 1 + args.seeds):
        other = replace(reorder, seed=seed)
        c = reordered_windows(ds, [s.subject for s in main_sets], config, shipped_features, other, args.n_jobs,
                              args.cache or None)
        seeds[seed] = report(main_sets, loso(main_sets, kind, n_jobs=args.n_jobs, train_sets=c))
        print(f"  {kind}, re-ordered copies, seed {seed}: BA {seeds[seed]['balanced_accuracy']:.3f}  "
              f"AUC {seeds[seed]['roc_auc']:.3f}", flush=True)
    if seeds:
        ba = [result["balanced_accuracy"]] + [r["balanced_accuracy"] for r in seeds.values()]
        print(f"  re-ordering seeds {reorder.seed}-{max(seeds)}: balanced accuracy mean {np.mean(ba):.3f}, "
              f"SD {np.std(ba, ddof=1):.3f}, range {min(ba):.3f}-{max(ba):.3f}")
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
    tried, nested_models, chosen_models = {}, None, []
    if not args.quick:
        c = config

        def show(name, r):
            tried[name] = r
            print(f"  {name:82s} BA {r['balanced_accuracy']:.3f}  AUC {r['roc_auc']:.3f}")

        print("not adopted (LOSO, every window evaluated as in the shipped row):")
        pure = [replace(s, y=np.where(_pure(s, labels[s.subject], c.window_s), s.y, np.nan)) for s in main_sets]
        show("train only on windows whose label holds over the whole window",
             report(main_sets, _loso_trained_on(pure, main_sets, n_jobs=args.n_jobs)))
        lagged = [replace(s, y=labels[s.subject](s.t - c.label_lag_s - 10.0)) for s in main_sets]
        show("train on labels 10 s later (EDA/HR response lag)",
             report(main_sets, _loso_trained_on(lagged, main_sets, n_jobs=args.n_jobs)))
        changes = {}
        for d in (120.0, 300.0, 600.0):
            changes[d] = _align([renormalise(s, c.calibration_s, c.adapt_tau_s, c.rank_history_s, labels[s.subject],
                                             c.label_lag_s, delta_s=d) for s in sets], model_features(delta=True))
            show(f"+ changes vs own windows {d / 60:.0f} min earlier (d_*)", _score(changes[d], n_jobs=args.n_jobs))
        boost_d = {d: loso(changes[d], "boosting", n_jobs=args.n_jobs) for d in (300.0, 600.0)}
        show("+ changes vs 5 min earlier, gradient boosting", report(changes[300.0], boost_d[300.0]))
        show("+ changes vs 10 min earlier, gradient boosting (missing in the first 5 min: a clock)",
             report(changes[600.0], boost_d[600.0]))
        # the control: the 5-min changes blanked exactly where the 10-min ones are missing (the first
        # 5 min after calibration) - if the score jumps, the blank itself (time since start) is what helps
        d_cols = [i for i, f in enumerate(changes[300.0][0].features) if f.startswith("d_")]
        blanked = []
        for s5, s10 in zip(changes[300.0], changes[600.0]):
            X = s5.X.copy()
            X[np.ix_(np.isnan(s10.X[:, d_cols[0]]), d_cols)] = np.nan
            blanked.append(WindowSet(s5.subject, s5.features, X, s5.t, s5.y))
        show("  control: 5-min changes blanked where the 10-min ones are missing, boosting",
             report(blanked, loso(blanked, "boosting", n_jobs=args.n_jobs)))
        d30 = {s.subject: s for s in _align(w30, shipped_features)}
        show("+ the 30 s window's features side by side",
             _score([_side_by_side(s, d30[s.subject], "w30_") for s in main_sets], n_jobs=args.n_jobs))
        show("logistic C = 0.003 (10x stronger regularisation)",
             report(main_sets, _loso_trained_on(main_sets, main_sets, n_jobs=args.n_jobs, estimator__clf__C=0.003)))
        p_log, p_boost = loso(main_sets, n_jobs=args.n_jobs), loso(main_sets, "boosting", n_jobs=args.n_jobs)
        show("average of the logistic and boosting models", report(main_sets, [(a + b) / 2 for a, b in zip(p_log, p_boost)]))
        p_log_d = loso(changes[300.0], n_jobs=args.n_jobs)
        show("average of logistic and boosting, + changes vs 5 min",
             report(main_sets, [(a + b) / 2 for a, b in zip(p_log_d, boost_d[300.0])]))
        show("decision relative to own last 30 min of scores (running median logit = 0.5)",
             report(main_sets, [_relative_to_own_recent(s, p) for s, p in zip(main_sets, p_log)]))
        candidates = {"logistic": ("logistic", main_sets), "logistic + changes 5 min": ("logistic", changes[300.0]),
                      "average": ("average", main_sets), "average + changes 5 min": ("average", changes[300.0])}
        nested_models, chosen_models = _nested_models(candidates, n_jobs=args.n_jobs)
        print(f"nested LOSO (model and change features chosen inside each training fold: "
              f"{', '.join(f'{k} x{chosen_models.count(k)}' for k in candidates if k in chosen_models)}): "
              f"balanced accuracy {nested_models['balanced_accuracy']:.3f}, ROC AUC {nested_models['roc_auc']:.3f}")
    print(f"feature path: {recorded_s / 3600:.1f} h of recordings in {extract_s:.1f} s "
          f"({recorded_s / extract_s:.0f}x real time, n_jobs={args.n_jobs}{', cache' if args.cache else ''}); "
          f"{reorder.copies} re-ordered copies of each in {copies_s:.1f} s")
    print(json.dumps({"benchmark": "models", "participants": len(sets), "windows": result["n"],
                      "config": asdict(config),
                      "balanced_accuracy": result["balanced_accuracy"], "f1": result["f1"],
                      "roc_auc": result["roc_auc"], "hr_only_balanced_accuracy": hr_only["balanced_accuracy"],
                      "kind": kind, "reorder": asdict(reorder),
                      "training": {k: {m: v[m] for m in ("balanced_accuracy", "f1", "roc_auc")} for k, v in training.items()},
                      "seeds": {str(k): {m: v[m] for m in ("balanced_accuracy", "f1", "roc_auc")} for k, v in seeds.items()},
                      "nested_balanced_accuracy": nested["balanced_accuracy"] if nested else None,
                      "nested_chosen": chosen,
                      "nested_models_balanced_accuracy": nested_models["balanced_accuracy"] if nested_models else None,
                      "nested_models_roc_auc": nested_models["roc_auc"] if nested_models else None,
                      "nested_models_chosen": chosen_models,
                      "not_adopted": {k: {m: v[m] for m in ("balanced_accuracy", "f1", "roc_auc")} for k, v in tried.items()},
                      "ablation": {k: {m: v[m] for m in ("balanced_accuracy", "f1", "roc_auc")}
                                   for k, v in ablation.items()},
                      "x_real_time": round(recorded_s / extract_s, 1),
                      "per_subject_balanced_accuracy": {k: v["balanced_accuracy"]
                                                        for k, v in result["per_subject"].items()}}))


if __name__ == "__main__":
    np.seterr(all="ignore")
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    main()
