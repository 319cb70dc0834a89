"""Evaluating a wrist model on a dataset: with a shipped model, or leave-one-subject-out; plots.

>>> shipped_model_path().name
'arousal-wrist.skops'
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from .persistence import LoadedModel, load_model
from .training import (ReorderConfig, WindowConfig, accuracy_since_change, extract_reordered, extract_windows, loso,
                       predict, report)
from .wrist import LEVEL_FEATURES, WRIST_FEATURES, WRIST_QUALITIES, WindowSet


def shipped_model_path(name: str = "arousal-wrist") -> Path:
    """Where the installed package keeps a shipped model (``engage/models/data/NAME.skops``)."""
    return Path(str(resources.files("engage.models") / "data" / f"{name}.skops"))


def load_shipped(name: str = "arousal-wrist") -> LoadedModel:
    """The shipped model, checked like any other model file."""
    return load_model(shipped_model_path(name))


def config_of(model: LoadedModel) -> WindowConfig:
    """The window configuration a model was trained with (defaults when the file does not say)."""
    return WindowConfig(**{k: (None if v is None else float(v)) for k, v in dict(model.info.get("windows", {})).items()
                           if k in WindowConfig.__dataclass_fields__})


def reorder_of(model: LoadedModel) -> ReorderConfig | None:
    """How a model's training sessions were re-ordered (None: trained on them as recorded)."""
    r = model.info.get("reorder")
    if not r or not int(r.get("copies", 0)):
        return None
    return ReorderConfig(copies=int(r["copies"]), min_piece_s=float(r["min_piece_s"]),
                         max_piece_s=float(r["max_piece_s"]), seed=int(r["seed"]))


def labelled_windows(dataset, subjects: Sequence[str] | None, config: WindowConfig, features: Sequence[str],
                     reorder: ReorderConfig | None = None, n_jobs: int = 1,
                     cache=None) -> tuple[list[WindowSet], list[list[WindowSet]]]:
    """The windows of every subject with labels (columns in ``features`` order) and what each
    contributes to training: its re-ordered copies with ``reorder``, else its own windows."""
    sets = [s for s in extract_windows(dataset, subjects, config, n_jobs=n_jobs, cache=cache) if np.isfinite(s.y).any()]
    sets = _align(sets, features)
    if reorder is None:
        return sets, [[s] for s in sets]
    return sets, reordered_windows(dataset, [s.subject for s in sets], config, features, reorder, n_jobs, cache)


def reordered_windows(dataset, subjects: Sequence[str], config: WindowConfig, features: Sequence[str],
                      reorder: ReorderConfig, n_jobs: int = 1, cache=None) -> list[list[WindowSet]]:
    """Each subject's re-ordered copies (:func:`~engage.models.training.extract_reordered`),
    columns in ``features`` order."""
    return [_align(c, features) for c in extract_reordered(dataset, subjects, config, reorder, n_jobs=n_jobs,
                                                           cache=cache)]


def model_processors(model: LoadedModel | str | Path, output_type: str = "ArousalModel") -> list:
    """The live chain that feeds a trained wrist model in a session: feature windows and the
    viewer's baseline with the model's own settings, then the model (rows of ``output_type``,
    for :class:`~engage.models.classifier.EngagementFusion`). Needs the ``HeartRate``/``HRV``
    (from ``PpgHeartRate``) and ``EDAFeatures`` streams that the session's signal steps produce.

    >>> [p.name for p in model_processors(load_shipped())]
    ['wrist-window', 'wrist-baseline', 'classifier-model']
    """
    from .classifier import ClassifierModel
    from .wrist import BaselineNormaliser, WristFeatureWindow

    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    c = config_of(loaded)
    return [WristFeatureWindow(c.window_s, c.hop_s),
            BaselineNormaliser(c.calibration_s, c.adapt_tau_s, rank_history_s=c.rank_history_s, delta_s=c.delta_s),
            ClassifierModel(loaded, output_type=output_type)]


def _align(sets: Sequence[WindowSet], features: Sequence[str]) -> list[WindowSet]:
    """Reorder each window set's columns to the model's feature list (NaN for what is missing)."""
    out = []
    for s in sets:
        cols = [s.features.index(f) if f in s.features else -1 for f in features]
        X = np.column_stack([s.X[:, c] if c >= 0 else np.full(len(s.X), np.nan) for c in cols]) if len(s.X) \
            else np.zeros((0, len(features)))
        out.append(WindowSet(s.subject, tuple(features), X, s.t, s.y, s.raw, s.raw_t))
    return out


def evaluate(model: LoadedModel, dataset, subjects: Sequence[str] | None = None, cv: str | None = None,
             n_jobs: int = 1, cache=None) -> tuple[dict, list[WindowSet], list[np.ndarray]]:
    """Metrics of ``model`` on ``dataset``: ``cv=None`` scores the given model on every subject;
    ``cv="loso"`` retrains the model's kind leave-one-subject-out with the model's window settings
    (on re-ordered copies of the training subjects if the model was trained so; the held-out
    subject is always scored as recorded).
    ``cache``: see :func:`~engage.models.training.extract_windows`. The result holds the metrics of
    :func:`~engage.models.training.report` and ``by_time_since_change``
    (:func:`~engage.models.training.accuracy_since_change`)."""
    if cv not in (None, "loso"):
        raise ValueError(f"unknown cross-validation {cv!r} (use 'loso')")
    reorder = reorder_of(model) if cv == "loso" else None
    sets, train_sets = labelled_windows(dataset, subjects, config_of(model), model.features, reorder, n_jobs, cache)
    if cv == "loso":
        probs = loso(sets, kind=str(model.info.get("kind", "logistic")), n_jobs=n_jobs, train_sets=train_sets)
    else:
        probs = predict(model.model, sets)
    result = report(sets, probs)
    result["by_time_since_change"] = accuracy_since_change(sets, probs)
    return result, sets, probs


def plot_report(result: dict, path: str | Path, title: str = "") -> Path:
    """A confusion matrix, a per-subject balanced-accuracy bar chart and, when ``result`` has
    ``by_time_since_change``, each class's accuracy by time since its label last changed, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    since = result.get("by_time_since_change")
    fig, axes = plt.subplots(1, 3 if since else 2, figsize=(16 if since else 11, 4),
                             gridspec_kw={"width_ratios": [1, 2.2, 1.8] if since else [1, 2.2]})
    a, b = axes[0], axes[1]
    cm = np.array(result["confusion"])
    a.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        a.text(j, i, str(v), ha="center", va="center", color="black")
    a.set_xticks([0, 1], ["rest", "stress"]), a.set_yticks([0, 1], ["rest", "stress"])
    a.set_xlabel("predicted"), a.set_ylabel("true"), a.set_title("confusion (windows)")
    subs = sorted(result["per_subject"])
    vals = [result["per_subject"][s]["balanced_accuracy"] for s in subs]
    b.bar(subs, vals, color="tab:blue")
    b.axhline(result["balanced_accuracy"], color="k", ls="--", label=f"pooled {result['balanced_accuracy']:.2f}")
    b.axhline(0.5, color="grey", ls=":", label="chance")
    b.set_ylim(0, 1), b.set_ylabel("balanced accuracy"), b.legend(loc="lower right")
    b.tick_params(axis="x", rotation=60)
    if since:
        c = axes[2]
        bins = list(since["0"])
        x = np.arange(len(bins))
        for k, (cls, name) in enumerate((("0", "rest"), ("1", "stress"))):
            acc = [np.nan if since[cls][n]["accuracy"] is None else since[cls][n]["accuracy"] for n in bins]
            c.bar(x + (k - 0.5) * 0.4, acc, width=0.4, label=name, color=("tab:green", "tab:red")[k])
        c.set_xticks(x, [n.replace("before the first change", "before 1st") for n in bins], rotation=40)
        c.axhline(0.5, color="grey", ls=":")
        c.set_ylim(0, 1), c.set_ylabel("accuracy"), c.set_xlabel("time since the label changed")
        c.legend(loc="lower right"), c.set_title("where it is wrong")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def model_features(rank: bool = True, delta: bool = False) -> tuple[str, ...]:
    """The input channels of a wrist model: the normaliser's output for the wrist window's channels
    (``rank``: with the ``p_*`` percentile ranks; ``delta``: with the ``d_*`` changes)."""
    levels = tuple(n for n in LEVEL_FEATURES if n in WRIST_FEATURES)
    rest = tuple(n for n in WRIST_FEATURES + WRIST_QUALITIES if n not in levels)
    return (tuple(f"z_{n}" for n in levels) + rest + (tuple(f"p_{n}" for n in levels) if rank else ())
            + (tuple(f"d_{n}" for n in levels) if delta else ()))


MODEL_FEATURES = model_features()
