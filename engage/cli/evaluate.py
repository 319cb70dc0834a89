"""``engage evaluate``: score a model on a dataset, or leave-one-subject-out; ``engage score``:
predictions for recordings without labels."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import FORMATTER, json_line
from .train import _common, joblib_backend

ORDER = 51

MODEL_HELP = ("a .skops model file, or a shipped model by name: arousal-wrist (models/arousal-wrist.skops, the path "
              "its card uses, names it too)")


def register(sub) -> None:
    e = sub.add_parser(
        "evaluate", formatter_class=FORMATTER, help="evaluate a model on a dataset (last line: JSON metrics)",
        description="Without --cv: the given model scores every subject found under --root (subjects\n"
                    "without labels get predictions only). With --cv loso: the model's pipeline is\n"
                    "retrained leave-one-subject-out the way the model was trained (its window settings,\n"
                    "re-ordered copies of the other subjects, and for a model trained with --kind select\n"
                    "the choice of classifier and threshold repeated inside each fold: nested); the\n"
                    "held-out subject is scored as recorded.\n\n"
                    "Prints the pooled balanced accuracy, sensitivity, specificity (1 - false alarms at\n"
                    "rest), F1 and ROC AUC with 95 % intervals from a bootstrap over participants (windows\n"
                    "of one person are not independent), a table per participant and each class's\n"
                    "accuracy by time since its label last changed; the last line is one JSON object with\n"
                    "all of it and the confusion matrix. Writes a plot, and with --predictions-out one CSV\n"
                    "row per window (subject, session, time, label, probability, decision). Progress goes\n"
                    "to stderr, a line every few seconds when it is not a terminal. Subjects run in\n"
                    "parallel (--n-jobs; --backend dask for a cluster).",
        epilog="examples:\n"
               "  engage evaluate --dataset stress-predict --root ../shared/data/stress_predict_e4 \\\n"
               "      --model models/arousal-wrist.skops --cv loso\n"
               "  engage evaluate --dataset stress-predict --root NEW_PARTICIPANTS --model arousal-wrist \\\n"
               "      --predictions-out predictions.csv\n"
               "  engage evaluate --dataset xdf --root held_out/ --label probe:boredom --model boredom.skops")
    _common(e)
    e.add_argument("--model", required=True, help=MODEL_HELP)
    e.add_argument("--cv", choices=["loso"], help="cross-validate instead of scoring the given model")
    e.add_argument("--plot", help="where to write the plot (default: out/evaluate-<dataset>.png)")
    e.add_argument("--predictions-out", metavar="CSV",
                   help="write every window's prediction: subject, session, time, label, probability, decision")
    e.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                   help="bootstrap resamples of participants for the 95 %% intervals (default 2000; 0 = none)")
    e.set_defaults(func=run)

    s = sub.add_parser(
        "score", formatter_class=FORMATTER, help="predictions of a model for recordings without labels (CSV)",
        description="Replays each recording (an Empatica E4 export folder, or an XDF file) through the\n"
                    "model's own chain - windows, the viewer's baseline - and writes one CSV row per\n"
                    "window: subject (the folder's or file's name), time (UNIX or LSL seconds), label\n"
                    "(empty), probability and decision (at the model's threshold). Prints a summary per\n"
                    "recording; the last line is JSON.",
        epilog="examples:\n"
               "  engage score ~/E4/1646384_A01A3F --model arousal-wrist --out predictions.csv\n"
               "  engage score session1.xdf session2.xdf --model my.skops --out scores.csv")
    s.add_argument("recordings", nargs="+", metavar="RECORDING", help="E4 export folders or .xdf files")
    s.add_argument("--model", required=True, help=MODEL_HELP)
    s.add_argument("--out", required=True, metavar="CSV", help="where to write the predictions")
    s.add_argument("--n-jobs", type=int, default=1, help="recordings in parallel (default 1)")
    s.set_defaults(func=run_score)


def _write_predictions(path: str | Path, sets, probs, thresholds) -> Path:
    from engage.models.training import predictions_frame

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = predictions_frame(sets, probs, thresholds)
    table["probability"] = table["probability"].round(6)
    table.to_csv(path, index=False)
    return path


def _fmt(v) -> str:
    return "  –  " if v is None or v != v else f"{v:.3f}"


def run(args: argparse.Namespace) -> int:
    from engage.datasets import open_dataset
    from engage.models.evaluation import evaluate, open_model, plot_report

    model = open_model(args.model)
    ds = open_dataset(args.dataset, args.root)
    subjects = args.subjects.split(",") if args.subjects else None
    with joblib_backend(args):
        result, sets, probs = evaluate(model, ds, subjects, cv=args.cv, n_jobs=args.n_jobs, cache=args.cache or None,
                                       label=args.label, n_boot=max(0, args.bootstrap))
    thresholds = result.pop("thresholds")
    what = "leave-one-subject-out" + (" (nested choice)" if "choices" in result else "") if args.cv \
        else f"model {Path(args.model).name}"
    preds = args.predictions_out
    if result["n"] == 0:
        preds = preds or str(Path("out") / f"predictions-{args.dataset}.csv")
        _write_predictions(preds, sets, probs, thresholds)
        print(f"engage evaluate: {len(sets)} subjects, no labelled windows ({args.label or 'default label'}): "
              f"predictions only -> {preds}")
        print(json_line({"n": 0, "subjects": len(sets), "predictions": preds, "model": str(args.model)}))
        return 0
    if preds:
        _write_predictions(preds, sets, probs, thresholds)
    plot = Path(args.plot) if args.plot else Path("out") / f"evaluate-{args.dataset}.png"
    plot_report(result, plot, title=f"{args.dataset}: {what}")
    iv = result.get("intervals") or {}

    def with_ci(key: str) -> str:
        lo_hi = iv.get(key)
        return f"{result[key]:.3f}" + (f" [{lo_hi[0]:.3f}, {lo_hi[1]:.3f}]" if lo_hi and lo_hi[0] == lo_hi[0] else "")

    print(f"engage evaluate: {result['labelled_subjects']} subjects, {result['n']} windows, {what}; plot {plot}"
          + (f"; predictions {preds}" if preds else ""))
    print(f"  balanced accuracy {with_ci('balanced_accuracy')}, sensitivity {with_ci('sensitivity')}, "
          f"specificity {with_ci('specificity')}, F1 {with_ci('f1')}, ROC AUC {with_ci('roc_auc')}"
          + (" (95 % intervals over participants)" if any(isinstance(v, list) and v[0] == v[0] for v in iv.values())
             else " (no intervals: fewer than two participants)"))
    cm = result["confusion"]
    print(f"  confusion (rows true rest/class 1, columns decided): [[{cm[0][0]}, {cm[0][1]}], [{cm[1][0]}, {cm[1][1]}]]")
    print(f"  {'subject':<10}{'windows':>8}{'bal.acc':>9}{'sens.':>8}{'spec.':>8}{'ROC AUC':>9}{'thresh.':>9}")
    for subject, m in result["per_subject"].items():
        print(f"  {subject:<10}{m['n']:>8}{_fmt(m['balanced_accuracy']):>9}{_fmt(m['sensitivity']):>8}"
              f"{_fmt(m['specificity']):>8}{_fmt(m['roc_auc']):>9}{m['threshold']:>9.2f}")
    for cls, name in (("0", "rest"), ("1", "class-1")):
        bins = result["by_time_since_change"].get(cls, {})
        print(f"  {name} windows, accuracy by time since the label changed: " + ", ".join(
            f"{b} {v['accuracy']:.2f} (n={v['n']})" for b, v in bins.items() if v["n"]))
    print(json_line({**result, "cv": args.cv, "model": str(args.model), "plot": str(plot),
                      "predictions": preds}))
    return 0


def run_score(args: argparse.Namespace) -> int:
    import numpy as np

    from engage.datasets import open_recordings
    from engage.models.evaluation import align, config_of, open_model, threshold_of
    from engage.models.training import extract_windows, predict

    model = open_model(args.model)
    ds = open_recordings(args.recordings)
    sets = align(extract_windows(ds, None, config_of(model), n_jobs=args.n_jobs), model.features)
    probs = predict(model.model, sets)
    threshold = threshold_of(model)
    out = _write_predictions(args.out, sets, probs, [threshold] * len(sets))
    summary = {}
    for s, p in zip(sets, probs):
        span = float(s.t[-1] - s.t[0]) if len(s.t) else 0.0
        share = float(np.mean(p >= threshold)) if len(p) else float("nan")
        summary[s.subject] = {"windows": len(p), "minutes": round(span / 60, 1), "share_decided_1": round(share, 3)}
        print(f"  {s.subject}: {len(p)} windows over {span / 60:.1f} min"
              + (f", {share:.0%} decided class 1 (P >= {threshold:.2f})" if len(p) else
                 " - none: shorter than the model's window and baseline"), file=sys.stdout)
    print(f"engage score: {len(sets)} recordings, {sum(len(p) for p in probs)} windows -> {out}")
    print(json_line({"predictions": str(out), "model": str(args.model), "threshold": threshold,
                      "recordings": summary}))
    return 0
