"""``engage train``: fit a wrist arousal/stress model on a dataset and save it with skops."""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import asdict
from pathlib import Path

from .common import FORMATTER, json_line

ORDER = 50


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="stress-predict, wesad, case, deap or xdf")
    p.add_argument("--root", required=True, help="the dataset's folder")
    p.add_argument("--subjects", help="comma-separated subject ids (default: all found under --root)")
    p.add_argument("--label", help="which label to learn or score (default: the dataset's own; e.g. 'boring' for "
                                   "CASE, 'probe:boredom' for XDF sessions with thought probes)")
    p.add_argument("--n-jobs", type=int, default=-1,
                   help="parallel workers over subjects (joblib; -1 = all cores, the default; 1 = none)")
    p.add_argument("--backend", choices=["loky", "threading", "multiprocessing", "dask"],
                   help="joblib backend for the work over subjects (default loky: processes on this machine; dask: "
                        "a Dask cluster, see --scheduler; needs pip install 'engage[cluster]')")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --backend dask: the scheduler to use, e.g. tcp://10.0.0.5:8786 (default: a local "
                        "cluster started for this run)")
    p.add_argument("--cache", default=str(Path("out") / "cache" / "windows"),
                   help="folder keeping each subject's feature windows, keyed by a hash of the code, settings and "
                        "files, so train, evaluate and the benchmark replay each subject once "
                        "(default: out/cache/windows; '' = no cache)")


@contextlib.contextmanager
def joblib_backend(args: argparse.Namespace):
    """The joblib backend ``--backend``/``--scheduler`` ask for, for the duration of the command."""
    from engage.core import ConfigError

    name = getattr(args, "backend", None)
    if getattr(args, "scheduler", None) and name != "dask":
        raise ConfigError("--scheduler needs --backend dask")
    if name is None:
        yield
        return
    import joblib

    if name != "dask":
        with joblib.parallel_backend(name):
            yield
        return
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("--backend dask needs Dask: pip install 'engage[cluster]'") from None
    try:
        client = Client(args.scheduler, timeout="20s") if args.scheduler else Client(processes=True)
    except OSError as exc:
        raise ConfigError(f"--scheduler {args.scheduler}: cannot reach the Dask scheduler ({exc})") from None
    with client, joblib.parallel_backend("dask"):
        yield


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number 0 or more, got {text!r}")
    return n


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0 <= v <= 86_400:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 86400, got {text!r}")
    return v


def _window_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--window", type=_seconds, metavar="S",
                   help="feature window length in seconds (default: the dataset's, else 60)")
    p.add_argument("--hop", type=_seconds, metavar="S", help="seconds between windows (default: the dataset's, else 5)")
    p.add_argument("--calibration", type=_seconds, metavar="S",
                   help="seconds of each session that set the viewer's baseline (default: the dataset's, else 300)")


def window_config(args: argparse.Namespace, dataset):
    """The WindowConfig of ``--window/--hop/--calibration``, over the dataset's own defaults."""
    from engage.core import ConfigError
    from engage.models.training import WindowConfig

    values = dict(getattr(dataset, "window_defaults", {}) or {})
    for opt, key in (("window", "window_s"), ("hop", "hop_s"), ("calibration", "calibration_s")):
        if getattr(args, opt, None) is not None:
            values[key] = getattr(args, opt)
    if "window_s" in values and "label_lag_s" not in values:
        values["label_lag_s"] = values["window_s"] / 2.0  # the label covering most of the window
    config = WindowConfig(**values)
    if not config.window_s > 0 or not config.hop_s > 0:
        raise ConfigError("--window and --hop must be positive")
    return config


def register(sub) -> None:
    t = sub.add_parser(
        "train", formatter_class=FORMATTER, help="train an arousal (or any labelled) model on a dataset (skops file)",
        description="Replays every subject of a dataset through the live chain (pulse and EDA features,\n"
                    "feature windows, per-viewer baseline) on a virtual clock, fits a calibrated\n"
                    "scikit-learn pipeline on the labelled windows and saves it with skops, with a model\n"
                    "card (same name, .md) beside it. By default it trains on re-ordered copies of each\n"
                    "session (--reorder-copies) so the model learns what arousal looks like, not when the\n"
                    "protocol puts it, and chooses the classifier and its decision threshold by a\n"
                    "cross-validation over the training subjects alone (--kind select; the threshold aims\n"
                    "at fewer false alarms at rest). Progress goes to stderr (a line every few seconds\n"
                    "when it is not a terminal); the last line of stdout is JSON.",
        epilog="examples:\n"
               "  engage train --dataset stress-predict --root ../shared/data/stress_predict_e4 --out my.skops\n"
               "  engage train --dataset stress-predict --root DIR --out m.skops --kind logistic --loso\n"
               "  engage train --dataset case --root CASE --label boring --out boring.skops\n"
               "  engage train --dataset xdf --root sessions/ --label probe:boredom --out boredom.skops\n"
               "  engage train --dataset wesad --root WESAD --out wesad.skops --backend dask --scheduler tcp://h:8786")
    _common(t)
    t.add_argument("--out", required=True, help="where to write the model (.skops); the card goes beside it (.md)")
    t.add_argument("--kind", default="select", choices=["select", "logistic", "boosting", "ensemble"],
                   help="estimator: calibrated logistic regression, gradient-boosted trees, the mean of the two, or "
                        "'select' (the default): logistic or ensemble and the decision threshold chosen by a "
                        "3-fold cross-validation over the training subjects, a false alarm at rest costing 1.5 "
                        "missed arousals")
    t.add_argument("--reorder-copies", type=_count, default=8, metavar="N",
                   help="train on N copies of each session with its pieces (cut at label changes, 4-10 min) in a "
                        "random order, so the model cannot learn the protocol's timetable; 0 = train on the "
                        "sessions as recorded (default 8; the first run replays N x the subjects, later runs "
                        "read the cache)")
    t.add_argument("--reorder-seed", type=int, default=0, help="random seed of the re-ordering (default 0)")
    _window_options(t)
    t.add_argument("--loso", action="store_true",
                   help="also run leave-one-subject-out (nested with --kind select) and store its metrics, with "
                        "95 %% intervals over subjects, in the model and its card")
    t.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    import numpy as np

    from engage.core import EngageError
    from engage.datasets import open_dataset
    from engage.models.card import write_card
    from engage.models.evaluation import align, choose_features, reordered_windows
    from engage.models.training import extract_windows
    from engage.models.persistence import save_model
    from engage.models.training import (ReorderConfig, SelectConfig, bootstrap_intervals, fit, fit_selected, loso,
                                        nested_loso, report)

    ds = open_dataset(args.dataset, args.root)
    subjects = args.subjects.split(",") if args.subjects else ds.subjects()
    config = window_config(args, ds)
    reorder = ReorderConfig(copies=args.reorder_copies, seed=args.reorder_seed) if args.reorder_copies else None
    selection = SelectConfig() if args.kind == "select" else None
    with joblib_backend(args):
        found = [s for s in extract_windows(ds, subjects, config, args.n_jobs, args.cache or None, args.label)
                 if np.isfinite(s.y).any()]
        if not found:
            raise EngageError(f"{args.root}: no subject has labelled windows to train on"
                              + (f" (label {args.label!r})" if args.label else ""))
        features = choose_features(found)  # the wrist's, and the face's when the sessions saw one
        sets = align(found, features)
        train_sets = [[s] for s in sets] if reorder is None else reordered_windows(
            ds, [s.subject for s in sets], config, features, reorder, args.n_jobs, args.cache or None, args.label)
        n_rows = sum(len(w.t) for group in train_sets for w in group)
        print(f"fitting on {n_rows} windows of {len(sets)} subjects"
              + (" (choosing the classifier and threshold by cross-validation)" if selection else "") + " ...",
              file=sys.stderr, flush=True)
        if selection is not None:
            model, choice = fit_selected(sets, train_sets, selection)
            kind, threshold = choice["kind"], choice["threshold"]
        else:
            model, choice, kind, threshold = fit([w for g in train_sets for w in g], args.kind), None, args.kind, 0.5
        info = {"dataset": args.dataset, "label": args.label or getattr(ds, "default_label", None),
                "subjects": [s.subject for s in sets], "kind": kind, "threshold": threshold,
                "selection": None if selection is None else asdict(selection),
                "choice": None if choice is None else choice["scores"],
                "windows": {k: getattr(config, k) for k in config.__dataclass_fields__},
                "reorder": None if reorder is None else asdict(reorder),
                "n_windows": int(sum(int(np.isfinite(s.y).sum()) for s in sets))}
        if args.loso:
            if selection is not None:
                probs, choices = nested_loso(sets, selection, n_jobs=args.n_jobs, train_sets=train_sets)
                ths = [c["threshold"] for c in choices]
            else:
                probs, ths = loso(sets, kind, n_jobs=args.n_jobs, train_sets=train_sets), [threshold] * len(sets)
            result = report(sets, probs, ths)
            info["loso"] = {k: result[k] for k in ("balanced_accuracy", "sensitivity", "specificity", "f1", "roc_auc",
                                                   "n", "confusion")}
            info["loso"]["intervals"] = bootstrap_intervals(sets, probs, ths)
            info["loso"]["per_subject"] = {k: {m: v[m] for m in ("balanced_accuracy", "roc_auc", "n")}
                                           for k, v in result["per_subject"].items()}
    save_model(model, Path(args.out), features, target=info["label"] or "arousal", info=info)
    card = write_card(Path(args.out), info, features)
    copies = f" (trained on {reorder.copies} re-ordered copies of each)" if reorder else ""
    print(f"engage train: {len(sets)} subjects, {info['n_windows']} windows{copies}, {kind} deciding at "
          f"P >= {threshold:.2f} -> {args.out} (card: {card})")
    print(json_line({"model": str(args.out), "card": str(card), **info}))
    return 0
