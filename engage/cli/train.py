"""``engage train``: fit a wrist arousal/stress model on a dataset and save it with skops."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import FORMATTER

ORDER = 50


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="stress-predict, wesad, case, deap or xdf")
    p.add_argument("--root", required=True, help="the dataset's folder")
    p.add_argument("--subjects", help="comma-separated subject ids (default: all found under --root)")
    p.add_argument("--n-jobs", type=int, default=1,
                   help="parallel workers over subjects (joblib; -1 = all cores; default 1)")
    p.add_argument("--cache", default=str(Path("out") / "cache" / "windows"),
                   help="folder keeping each subject's feature windows, keyed by a hash of the code, settings and "
                        "files, so train, evaluate and the benchmark replay each subject once "
                        "(default: out/cache/windows; '' = no cache)")


def register(sub) -> None:
    t = sub.add_parser(
        "train", formatter_class=FORMATTER, help="train a wrist arousal model on a dataset (skops file)",
        description="Replays every subject of a dataset through the live wrist chain (EDA features,\n"
                    "feature windows, per-viewer baseline) on a virtual clock, fits a calibrated\n"
                    "scikit-learn pipeline on the labelled windows and saves it with skops.",
        epilog="examples:\n"
               "  engage train --dataset stress-predict --root ../shared/data/stress_predict_e4 --out my.skops\n"
               "  engage train --dataset wesad --root WESAD --out wesad.skops --kind boosting --n-jobs -1")
    _common(t)
    t.add_argument("--out", required=True, help="where to write the model (.skops)")
    t.add_argument("--kind", default="logistic", choices=["logistic", "boosting"], help="estimator (default logistic)")
    t.add_argument("--loso", action="store_true", help="also run leave-one-subject-out and store its metrics")
    t.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engage.datasets import open_dataset
    from engage.models.evaluation import MODEL_FEATURES, _align
    from engage.models.persistence import save_model
    from engage.models.training import WindowConfig, extract_windows, fit, loso, report

    ds = open_dataset(args.dataset, args.root)
    subjects = args.subjects.split(",") if args.subjects else ds.subjects()
    config = WindowConfig()
    sets = _align(extract_windows(ds, subjects, config, n_jobs=args.n_jobs, cache=args.cache or None), MODEL_FEATURES)
    model = fit(sets, args.kind)
    info = {"dataset": args.dataset, "subjects": [s.subject for s in sets], "kind": args.kind,
            "windows": {k: getattr(config, k) for k in config.__dataclass_fields__},
            "n_windows": int(sum(len(s.y) for s in sets))}
    if args.loso:
        result = report(sets, loso(sets, args.kind, n_jobs=args.n_jobs))
        info["loso"] = {k: result[k] for k in ("balanced_accuracy", "f1", "roc_auc")}
    save_model(model, Path(args.out), MODEL_FEATURES, target="arousal", info=info)
    print(f"engage train: {len(sets)} subjects, {info['n_windows']} windows -> {args.out}")
    print(json.dumps({"model": str(args.out), **info}))
    return 0
