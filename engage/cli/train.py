"""``engage train``: fit a wrist arousal/stress model on a dataset and save it with skops."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from .common import FORMATTER

ORDER = 50


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="stress-predict, wesad, case, deap or xdf")
    p.add_argument("--root", required=True, help="the dataset's folder")
    p.add_argument("--subjects", help="comma-separated subject ids (default: all found under --root)")
    p.add_argument("--n-jobs", type=int, default=-1,
                   help="parallel workers over subjects (joblib; -1 = all cores, the default; 1 = none)")
    p.add_argument("--cache", default=str(Path("out") / "cache" / "windows"),
                   help="folder keeping each subject's feature windows, keyed by a hash of the code, settings and "
                        "files, so train, evaluate and the benchmark replay each subject once "
                        "(default: out/cache/windows; '' = no cache)")


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number 0 or more, got {text!r}")
    return n


def register(sub) -> None:
    t = sub.add_parser(
        "train", formatter_class=FORMATTER, help="train a wrist arousal model on a dataset (skops file)",
        description="Replays every subject of a dataset through the live wrist chain (EDA features,\n"
                    "feature windows, per-viewer baseline) on a virtual clock, fits a calibrated\n"
                    "scikit-learn pipeline on the labelled windows and saves it with skops. By default it\n"
                    "trains on re-ordered copies of each session (--reorder-copies) so the model learns\n"
                    "what stress looks like, not when the protocol puts it.",
        epilog="examples:\n"
               "  engage train --dataset stress-predict --root ../shared/data/stress_predict_e4 --out my.skops\n"
               "  engage train --dataset wesad --root WESAD --out wesad.skops --kind boosting --n-jobs -1")
    _common(t)
    t.add_argument("--out", required=True, help="where to write the model (.skops)")
    t.add_argument("--kind", default="ensemble", choices=["logistic", "boosting", "ensemble"],
                   help="estimator: calibrated logistic regression, gradient-boosted trees, or the mean of the two "
                        "(default ensemble, as shipped)")
    t.add_argument("--reorder-copies", type=_count, default=8, metavar="N",
                   help="train on N copies of each session with its pieces (cut at label changes, 4-10 min) in a "
                        "random order, so the model cannot learn the protocol's timetable; 0 = train on the "
                        "sessions as recorded (default 8; the first run replays N x the subjects, later runs "
                        "read the cache)")
    t.add_argument("--reorder-seed", type=int, default=0, help="random seed of the re-ordering (default 0)")
    t.add_argument("--loso", action="store_true", help="also run leave-one-subject-out and store its metrics")
    t.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engage.core import EngageError
    from engage.datasets import open_dataset
    from engage.models.evaluation import MODEL_FEATURES, labelled_windows
    from engage.models.persistence import save_model
    from engage.models.training import ReorderConfig, WindowConfig, fit, loso, report

    ds = open_dataset(args.dataset, args.root)
    subjects = args.subjects.split(",") if args.subjects else ds.subjects()
    config = WindowConfig()
    reorder = ReorderConfig(copies=args.reorder_copies, seed=args.reorder_seed) if args.reorder_copies else None
    sets, train_sets = labelled_windows(ds, subjects, config, MODEL_FEATURES, reorder, args.n_jobs,
                                        args.cache or None)
    if not sets:
        raise EngageError(f"{args.root}: no subject has labelled windows to train on")
    model = fit([w for group in train_sets for w in group], args.kind)
    info = {"dataset": args.dataset, "subjects": [s.subject for s in sets], "kind": args.kind,
            "windows": {k: getattr(config, k) for k in config.__dataclass_fields__},
            "reorder": None if reorder is None else asdict(reorder),
            "n_windows": int(sum(len(s.y) for s in sets))}
    if args.loso:
        result = report(sets, loso(sets, args.kind, n_jobs=args.n_jobs, train_sets=train_sets))
        info["loso"] = {k: result[k] for k in ("balanced_accuracy", "f1", "roc_auc")}
    save_model(model, Path(args.out), MODEL_FEATURES, target="arousal", info=info)
    copies = f" (trained on {reorder.copies} re-ordered copies of each)" if reorder else ""
    print(f"engage train: {len(sets)} subjects, {info['n_windows']} windows{copies} -> {args.out}")
    print(json.dumps({"model": str(args.out), **info}))
    return 0
