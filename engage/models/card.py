"""Model cards: what ``engage train`` writes beside every model file.

A card says, for a person deciding whether to use the model: what it estimates and from which
signals, which data and labels trained it, how it was chosen, what it scored and how sure that
figure is (intervals over participants), and what it is not for.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "m.skops"
>>> card = write_card(p, {"dataset": "stress-predict", "label": None, "subjects": ["S02", "S03"], "kind": "logistic",
...                       "threshold": 0.5, "windows": {"window_s": 60.0, "hop_s": 5.0, "calibration_s": 300.0},
...                       "n_windows": 1200}, ("z_hr_mean", "eda_quality"))
>>> card.name, "## Metrics" in card.read_text()
('m.md', True)
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Sequence

UPPER_ESTIMATE = (
    "Leave-one-subject-out on the participants that trained the model is an **upper estimate** of how it "
    "will do on new people: every design choice behind the pipeline (features, windows, baseline) was "
    "made looking at scores on these same participants, and they share one protocol, one device and one "
    "lab. Expect lower figures - in particular more false alarms at rest - on other participants, other "
    "devices and other situations, and measure them there before relying on it.")


def _pct(v) -> str:
    try:
        return f"{float(v):.3f}"
    except (TypeError, ValueError):
        return "–"


def _ci(intervals: dict | None, key: str) -> str:
    if not intervals or key not in intervals:
        return ""
    lo, hi = intervals[key]
    return f" ({_pct(lo)}–{_pct(hi)})"


def card_text(name: str, info: dict, features: Sequence[str]) -> str:
    """The markdown of a model card.

    Parameters
    ----------
    name
        The model's name (its file's stem).
    info
        What ``engage train`` stores in the model file (dataset, label, subjects, kind, threshold,
        windows, reorder, selection, choice, loso …).
    features
        The model's input features, in order.

    Returns
    -------
    str
        Markdown.

    Examples
    --------
    >>> card_text("m", {"dataset": "xdf", "label": "probe:boredom", "subjects": ["a"], "kind": "logistic",
    ...                 "threshold": 0.5, "windows": {}}, ("x",)).splitlines()[0]
    '# Model card: `m`'
    """
    import sklearn

    from engage import __version__

    w = dict(info.get("windows") or {})
    label = info.get("label") or "the dataset's default label (stress / high arousal)"
    subjects = list(info.get("subjects") or [])
    reorder = info.get("reorder")
    sel = info.get("selection")
    lines = [
        f"# Model card: `{name}`", "",
        f"Written by `engage train` (engage {__version__}, scikit-learn {sklearn.__version__}) on "
        f"{_dt.date.today().isoformat()}.", "",
        "## What it estimates",
        f"P({label}) every {w.get('hop_s', 5.0):g} s from {w.get('window_s', 60.0):g} s windows of the signals the "
        f"session has (pulse, EDA, accelerometer, skin temperature, face when present), each feature relative to the "
        f"viewer's own baseline (the first {w.get('calibration_s', 300.0):g} s of each session, then adapting "
        f"slowly). Classifier: `{info.get('kind')}` (calibrated scikit-learn pipeline); it decides class 1 at "
        f"P ≥ {float(info.get('threshold', 0.5)):.2f} (live sessions see the probability shifted so that this "
        "threshold sits at 0.5).", "",
        "## Data",
        f"Dataset `{info.get('dataset')}`, label `{info.get('label') or 'default'}`: {len(subjects)} participants "
        f"({', '.join(subjects[:30])}{' …' if len(subjects) > 30 else ''}), {info.get('n_windows', '?')} labelled "
        "windows. " + (f"Trained on {reorder['copies']} copies of each session re-ordered in time (pieces of "
                       f"{reorder['min_piece_s']:g}–{reorder['max_piece_s']:g} s, seed {reorder['seed']}), so it "
                       "cannot learn the protocol's timetable; scored on the sessions as recorded."
                       if reorder else "Trained on the sessions as recorded."), "",
        "## How it was chosen",
    ]
    if sel:
        lines.append(
            f"Among {', '.join(f'`{k}`' for k in sel['kinds'])}, by a {sel['inner_folds']}-fold cross-validation "
            "over the training participants alone (participants held out together); each candidate's decision "
            f"threshold maximises sensitivity + {sel['false_alarm_cost']:g} × specificity (a false alarm at rest "
            f"costs {sel['false_alarm_cost']:g} missed arousals), searched in {sel['min_threshold']:.2f}–"
            f"{sel['max_threshold']:.2f}. No participant it is scored on below took part in that choice for its "
            "own score (the leave-one-subject-out figures repeat the choice inside every fold).")
        choice = info.get("choice") or {}
        if choice:
            lines += ["", "| candidate | criterion | threshold | balanced accuracy | sensitivity | specificity |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| `{k}` | {_pct(v['criterion'])} | {v['threshold']:.2f} | {_pct(v['balanced_accuracy'])} | "
                      f"{_pct(v['sensitivity'])} | {_pct(v['specificity'])} |" for k, v in choice.items()]
    else:
        lines.append(f"The kind was given (`--kind {info.get('kind')}`); the threshold is 0.5.")
    lines += ["", "## Metrics"]
    loso = info.get("loso")
    if loso:
        iv = loso.get("intervals")
        lines += [
            "Leave-one-subject-out (each participant scored by a model trained - and chosen - without it); "
            "95 % intervals from 2000 bootstrap resamples of participants.", "",
            "| metric | value (95 % interval) |", "|---|---|"]
        lines += [f"| {label_} | {_pct(loso.get(k))}{_ci(iv, k)} |" for k, label_ in (
            ("balanced_accuracy", "balanced accuracy"), ("sensitivity", "sensitivity (class 1 found)"),
            ("specificity", "specificity (rest kept: 1 − false alarms)"), ("f1", "F1 (class 1)"),
            ("roc_auc", "ROC AUC"))]
        per = loso.get("per_subject") or {}
        if per:
            lines += ["", "| participant | windows | balanced accuracy | ROC AUC |", "|---|---|---|---|"]
            lines += [f"| {k} | {v.get('n')} | {_pct(v.get('balanced_accuracy'))} | {_pct(v.get('roc_auc'))} |"
                      for k, v in per.items()]
        lines += ["", UPPER_ESTIMATE]
    else:
        lines.append("Not measured when it was trained: `engage evaluate --dataset … --model THIS --cv loso` "
                     "(or `engage train … --loso`) measures it. " + UPPER_ESTIMATE)
    lines += [
        "", "## Features", f"{len(features)} inputs, by name and in this order (the model refuses others): "
        + ", ".join(f"`{f}`" for f in features) + ".", "",
        "## Intended use",
        "Research and prototyping: an estimate that engage's event state machine gates on confidence. Not a "
        "medical device, not a diagnosis, not for decisions about a person.", "",
        "## Limits",
        "- Trained on the participants, devices and protocol above; other devices and situations need their own "
        "validation.",
        "- Needs its baseline period of calm wearing before it emits anything.",
        "- The label is what the dataset calls it (a protocol's task, a self-report); the body also responds to "
        "exercise, heat and excitement.", ""]
    return "\n".join(lines)


def write_card(model_path: str | Path, info: dict, features: Sequence[str]) -> Path:
    """Write the model card beside a model file (``NAME.skops`` → ``NAME.md``).

    Parameters
    ----------
    model_path
        The model file.
    info, features
        As in :func:`card_text`.

    Returns
    -------
    Path
        The card.

    Examples
    --------
    >>> # write_card("models/my.skops", info, MODEL_FEATURES)   # -> models/my.md
    """
    model_path = Path(model_path)
    card = model_path.with_suffix(".md")
    card.parent.mkdir(parents=True, exist_ok=True)
    card.write_text(card_text(model_path.stem, info, features))
    return card


__all__ = ["UPPER_ESTIMATE", "card_text", "write_card"]
