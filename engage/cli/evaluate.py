"""``engage evaluate``: score a model on a dataset, or leave-one-subject-out."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import FORMATTER
from .train import _common

ORDER = 51


def register(sub) -> None:
    e = sub.add_parser(
        "evaluate", formatter_class=FORMATTER, help="evaluate a model on a dataset (last line: JSON metrics)",
        description="Without --cv: the given model scores every subject found under --root.\n"
                    "With --cv loso: the model's pipeline is retrained leave-one-subject-out with the\n"
                    "model's window settings (on re-ordered copies of the other subjects if the model\n"
                    "was trained that way; the held-out subject is scored as recorded). Prints, as the\n"
                    "last line, one JSON object with balanced_accuracy, f1, roc_auc, per_subject and\n"
                    "by_time_since_change (each class's accuracy by how long ago its label last changed:\n"
                    "a model limited by the lag of the body's response is wrong only just after a\n"
                    "change); writes a plot of the confusion matrix, each subject's score and that\n"
                    "profile. Subjects run in parallel with joblib (--n-jobs; for a cluster use joblib's\n"
                    "Dask or Ray backend, see engage.models.training).",
        epilog="examples:\n"
               "  engage evaluate --dataset stress-predict --root ../shared/data/stress_predict_e4 \\\n"
               "      --model models/arousal-wrist.skops --cv loso\n"
               "  engage evaluate --dataset stress-predict --root NEW_PARTICIPANTS --model models/arousal-wrist.skops")
    _common(e)
    e.add_argument("--model", required=True, help="a .skops model file (e.g. models/arousal-wrist.skops)")
    e.add_argument("--cv", choices=["loso"], help="cross-validate instead of scoring the given model")
    e.add_argument("--plot", help="where to write the plot (default: out/evaluate-<dataset>.png)")
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engage.datasets import open_dataset
    from engage.models.evaluation import evaluate, plot_report
    from engage.models.persistence import load_model

    model = load_model(args.model)
    ds = open_dataset(args.dataset, args.root)
    subjects = args.subjects.split(",") if args.subjects else None
    result, sets, _ = evaluate(model, ds, subjects, cv=args.cv, n_jobs=args.n_jobs, cache=args.cache or None)
    plot = Path(args.plot) if args.plot else Path("out") / f"evaluate-{args.dataset}.png"
    what = "leave-one-subject-out" if args.cv else f"model {Path(args.model).name}"
    plot_report(result, plot, title=f"{args.dataset}: {what}")
    print(f"engage evaluate: {len(sets)} subjects, {result['n']} windows, {what}: balanced accuracy "
          f"{result['balanced_accuracy']:.3f}, F1 {result['f1']:.3f}, ROC AUC {result['roc_auc']:.3f}; plot {plot}")
    for cls, name in (("0", "rest"), ("1", "stress")):
        bins = result["by_time_since_change"][cls]
        print(f"  {name} windows, accuracy by time since the label changed: " + ", ".join(
            f"{b} {v['accuracy']:.2f} (n={v['n']})" for b, v in bins.items() if v["n"]))
    result.pop("confusion", None)
    print(json.dumps({**result, "cv": args.cv, "model": str(args.model), "plot": str(plot)}))
    return 0
