"""Evaluating a wrist model on a dataset: with a shipped model, or leave-one-subject-out; plots.

>>> shipped_model_path().name
'arousal-wrist.skops'
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from engage.core import EngageError

from .persistence import LoadedModel, load_model
from .training import (ReorderConfig, SelectConfig, WindowConfig, accuracy_since_change, bootstrap_intervals,
                       extract_reordered, extract_windows, loso, nested_loso, predict, report)
from .wrist import FACE_FEATURES, FACE_QUALITIES, LEVEL_FEATURES, WRIST_FEATURES, WRIST_QUALITIES, WindowSet


__all__ = ["MODEL_FEATURES", "SHIPPED_MODELS", "align", "choose_features", "config_of", "evaluate", "labelled_windows", "load_shipped",
           "model_features", "model_processors", "open_model", "plot_report", "reorder_of", "reordered_windows",
           "resolve_model", "selection_of", "shipped_model_path", "threshold_of"]

#: the models shipped inside the package (``engage/models/data/NAME.skops``; cards in ``models/NAME.md``)
SHIPPED_MODELS = ("arousal-wrist",)


def shipped_model_path(name: str = "arousal-wrist") -> Path:
    """Where the installed package keeps a shipped model.

    Parameters
    ----------
    name
        One of :data:`SHIPPED_MODELS`.

    Returns
    -------
    Path
        ``engage/models/data/NAME.skops`` inside the installed package.

    Examples
    --------
    >>> shipped_model_path().name
    'arousal-wrist.skops'
    """
    return Path(str(resources.files("engage.models") / "data" / f"{name}.skops"))


def load_shipped(name: str = "arousal-wrist") -> LoadedModel:
    """The shipped model, checked like any other model file.

    Parameters
    ----------
    name
        One of :data:`SHIPPED_MODELS`.

    Returns
    -------
    LoadedModel
        The estimator, its feature names and what its file says about it.

    Examples
    --------
    >>> load_shipped().features[:2]
    ('z_hr_mean', 'z_hr_std')
    """
    return load_model(shipped_model_path(name))


def resolve_model(model: str | Path) -> Path:
    """The file a ``--model`` argument names: an existing path, or a shipped model by its name
    (``arousal-wrist``) or by the repository path its card uses (``models/arousal-wrist.skops``:
    the file itself is kept once, as package data).

    Parameters
    ----------
    model
        A path to a ``.skops`` file, or a shipped model's name.

    Returns
    -------
    Path
        The file to load (unchanged when it is neither, so loading names the missing file).

    Examples
    --------
    >>> resolve_model("models/arousal-wrist.skops") == shipped_model_path()
    True
    >>> resolve_model("arousal-wrist") == shipped_model_path()
    True
    """
    path = Path(model)
    if path.is_file():
        return path
    stem = path.name[: -len(".skops")] if path.name.endswith(".skops") else path.name
    if stem in SHIPPED_MODELS and (path.parent == Path(".") or path.parent.name == "models"):
        return shipped_model_path(stem)
    return path


def open_model(model: str | Path | LoadedModel, expected_features: Sequence[str] | None = None) -> LoadedModel:
    """:func:`~engage.models.persistence.load_model` of :func:`resolve_model` (a loaded model passes through).

    Parameters
    ----------
    model
        A path, a shipped model's name, or an already loaded model.
    expected_features
        Refuse the file unless its features are exactly these, in this order.

    Returns
    -------
    LoadedModel
        The checked model.

    Examples
    --------
    >>> open_model("arousal-wrist").target
    'arousal'
    """
    if isinstance(model, LoadedModel):
        return model
    return load_model(resolve_model(model), expected_features)


def config_of(model: LoadedModel) -> WindowConfig:
    """The window configuration a model was trained with (defaults when the file does not say).

    Parameters
    ----------
    model
        A loaded model.

    Returns
    -------
    WindowConfig
        Window length, hop, calibration, adaptation, ranks, label lag.

    Examples
    --------
    >>> config_of(load_shipped()).window_s
    60.0
    """
    return WindowConfig(**{k: (None if v is None else float(v)) for k, v in dict(model.info.get("windows", {})).items()
                           if k in WindowConfig.__dataclass_fields__})


def reorder_of(model: LoadedModel) -> ReorderConfig | None:
    """How a model's training sessions were re-ordered.

    Parameters
    ----------
    model
        A loaded model.

    Returns
    -------
    ReorderConfig or None
        None when it was trained on the sessions as recorded.

    Examples
    --------
    >>> reorder_of(load_shipped()).copies
    8
    """
    r = model.info.get("reorder")
    if not r or not int(r.get("copies", 0)):
        return None
    return ReorderConfig(copies=int(r["copies"]), min_piece_s=float(r["min_piece_s"]),
                         max_piece_s=float(r["max_piece_s"]), seed=int(r["seed"]))


def selection_of(model: LoadedModel) -> SelectConfig | None:
    """How a model was chosen (:class:`~engage.models.training.SelectConfig`), None when its kind
    was given.

    Parameters
    ----------
    model
        A loaded model.

    Returns
    -------
    SelectConfig or None
        The candidates and the criterion ``engage train --kind select`` used.

    Examples
    --------
    >>> # selection_of(open_model("my.skops")).false_alarm_cost   # 1.5
    """
    sel = model.info.get("selection")
    if not sel:
        return None
    return SelectConfig(kinds=tuple(str(k) for k in sel["kinds"]), inner_folds=int(sel["inner_folds"]),
                        false_alarm_cost=float(sel["false_alarm_cost"]), min_threshold=float(sel["min_threshold"]),
                        max_threshold=float(sel["max_threshold"]))


def threshold_of(model: LoadedModel) -> float:
    """The model's decision threshold (0.5 when its file has none).

    Parameters
    ----------
    model
        A loaded model.

    Returns
    -------
    float
        P(class 1) at and above which the model decides class 1.

    Examples
    --------
    >>> 0.3 <= threshold_of(load_shipped()) <= 0.8
    True
    """
    return float(model.info.get("threshold", 0.5))


def labelled_windows(dataset, subjects: Sequence[str] | None, config: WindowConfig, features: Sequence[str],
                     reorder: ReorderConfig | None = None, n_jobs: int = 1, cache=None,
                     label: str | None = None) -> tuple[list[WindowSet], list[list[WindowSet]]]:
    """The windows of every subject that has labels, and what each contributes to training.

    Parameters
    ----------
    dataset, subjects, config, n_jobs, cache, label
        As in :func:`~engage.models.training.extract_windows`.
    features
        The columns, in this order (:func:`align`).
    reorder
        Train on re-ordered copies (None: on the windows as recorded).

    Returns
    -------
    tuple
        The labelled subjects' windows as recorded, and for each its training windows (its
        re-ordered copies with ``reorder``, else ``[its windows]``).

    Examples
    --------
    >>> # sets, copies = labelled_windows(ds, None, WindowConfig(), MODEL_FEATURES, ReorderConfig(), n_jobs=2)
    """
    sets = [s for s in extract_windows(dataset, subjects, config, n_jobs=n_jobs, cache=cache, label=label)
            if np.isfinite(s.y).any()]
    sets = align(sets, features)
    if reorder is None:
        return sets, [[s] for s in sets]
    return sets, reordered_windows(dataset, [s.subject for s in sets], config, features, reorder, n_jobs, cache, label)


def reordered_windows(dataset, subjects: Sequence[str], config: WindowConfig, features: Sequence[str],
                      reorder: ReorderConfig, n_jobs: int = 1, cache=None,
                      label: str | None = None) -> list[list[WindowSet]]:
    """Each subject's re-ordered copies (:func:`~engage.models.training.extract_reordered`),
    columns in ``features`` order.

    Parameters
    ----------
    dataset, subjects, config, reorder, n_jobs, cache, label
        As in :func:`~engage.models.training.extract_reordered`.
    features
        The columns, in this order.

    Returns
    -------
    list of list of WindowSet
        For each subject, its copies.

    Examples
    --------
    >>> # copies = reordered_windows(ds, ["S02"], WindowConfig(), MODEL_FEATURES, ReorderConfig(copies=2))
    """
    return [align(c, features) for c in extract_reordered(dataset, subjects, config, reorder, n_jobs=n_jobs,
                                                          cache=cache, label=label)]


def model_processors(model: LoadedModel | str | Path, output_type: str = "ArousalModel") -> list:
    """The live chain that feeds a trained wrist model in a session.

    Feature windows and the viewer's baseline with the model's own settings, then the model (rows
    of ``output_type``, for :class:`~engage.models.classifier.EngagementFusion`). Needs the
    ``HeartRate``/``HRV`` (from ``PpgHeartRate``) and ``EDAFeatures`` streams that the session's
    signal steps produce.

    Parameters
    ----------
    model
        A loaded model, a path, or a shipped model's name (:func:`resolve_model`).
    output_type
        The stream type of the model's rows.

    Returns
    -------
    list of Processor
        In routing order.

    Examples
    --------
    >>> [p.name for p in model_processors("arousal-wrist")]
    ['wrist-window', 'wrist-baseline', 'classifier-model']
    """
    from .classifier import ClassifierModel
    from .wrist import BaselineNormaliser, WristFeatureWindow

    loaded = open_model(model)
    c = config_of(loaded)
    return [WristFeatureWindow(c.window_s, c.hop_s, first_s=c.first_window_s),
            BaselineNormaliser(c.calibration_s, c.adapt_tau_s, rank_history_s=c.rank_history_s, delta_s=c.delta_s),
            ClassifierModel(loaded, output_type=output_type)]


def align(sets: Sequence[WindowSet], features: Sequence[str]) -> list[WindowSet]:
    """Each window set with its columns named and ordered as ``features`` (NaN for a feature it lacks).

    Parameters
    ----------
    sets
        Window sets, whatever their columns.
    features
        The model's features, in its order.

    Returns
    -------
    list of WindowSet
        The same windows with exactly those columns.

    Examples
    --------
    >>> ws = WindowSet("s1", ("b", "a"), np.array([[2.0, 1.0]]), np.array([60.0]), np.array([1.0]))
    >>> align([ws], ("a", "b", "c"))[0].X.tolist()
    [[1.0, 2.0, nan]]
    """
    out = []
    for s in sets:
        cols = [s.features.index(f) if f in s.features else -1 for f in features]
        X = np.column_stack([s.X[:, c] if c >= 0 else np.full(len(s.X), np.nan) for c in cols]) if len(s.X) \
            else np.zeros((0, len(features)))
        out.append(WindowSet(s.subject, tuple(features), X, s.t, s.y, s.raw, s.raw_t, s.session))
    return out


_align = align  # the name the benchmarks use


def evaluate(model: LoadedModel, dataset, subjects: Sequence[str] | None = None, cv: str | None = None,
             n_jobs: int = 1, cache=None, label: str | None = None,
             n_boot: int = 2000) -> tuple[dict, list[WindowSet], list[np.ndarray]]:
    """Scores of ``model`` on ``dataset``, as it is or leave-one-subject-out.

    ``cv=None`` scores the given model on every subject (subjects without labels get predictions
    only). ``cv="loso"`` retrains leave-one-subject-out the way the model was trained: its window
    settings, its re-ordered copies of the training subjects, and - for a model chosen by
    ``engage train --select`` - the choice of kind and threshold repeated inside each fold on the
    other subjects only (nested); the held-out subject is always scored as recorded.

    Parameters
    ----------
    model
        A loaded model.
    dataset
        A loader (:mod:`engage.datasets`).
    subjects
        Which subjects (default: all).
    cv
        None or ``"loso"``.
    n_jobs, cache, label
        As in :func:`~engage.models.training.extract_windows`.
    n_boot
        Resamples of the participant bootstrap (0: no intervals).

    Returns
    -------
    tuple
        The result (:func:`~engage.models.training.report`, ``intervals`` over participants
        (:func:`~engage.models.training.bootstrap_intervals`), ``by_time_since_change``,
        ``labelled_subjects``, and with nested LOSO each fold's ``choices``), the window sets
        scored, and their probabilities. With no labelled window at all the result has ``n`` 0
        and only the predictions mean anything.

    Examples
    --------
    >>> # result, sets, probs = evaluate(load_shipped(), StressPredict(root), cv="loso", n_jobs=2)
    >>> # result["balanced_accuracy"], result["intervals"]["balanced_accuracy"]
    """
    if cv not in (None, "loso"):
        raise ValueError(f"unknown cross-validation {cv!r} (use 'loso')")
    config, threshold = config_of(model), threshold_of(model)
    if cv == "loso":
        sets, train_sets = labelled_windows(dataset, subjects, config, model.features, reorder_of(model), n_jobs,
                                            cache, label)
        if len(sets) < 2:
            raise EngageError(f"leave-one-subject-out needs labelled windows of two subjects or more, found {len(sets)}")
        selection = selection_of(model)
        if selection is not None:
            probs, choices = nested_loso(sets, selection, n_jobs=n_jobs, train_sets=train_sets)
            threshold = [c["threshold"] for c in choices]
        else:
            probs, choices = loso(sets, kind=str(model.info.get("kind", "logistic")), n_jobs=n_jobs,
                                  train_sets=train_sets), None
    else:
        sets = align(extract_windows(dataset, subjects, config, n_jobs=n_jobs, cache=cache, label=label),
                     model.features)
        probs, choices = predict(model.model, sets), None
    labelled = [i for i, s in enumerate(sets) if np.isfinite(s.y).any()]
    ths = threshold if isinstance(threshold, list) else [threshold] * len(sets)
    pick = (lambda seq: [seq[i] for i in labelled])  # noqa: E731
    result = report(pick(sets), pick(probs), pick(ths))
    result["threshold"] = threshold if not isinstance(threshold, list) else None
    result["labelled_subjects"] = len(labelled)
    result["intervals"] = bootstrap_intervals(pick(sets), pick(probs), pick(ths), n_boot=n_boot) if n_boot else None
    result["by_time_since_change"] = accuracy_since_change(pick(sets), pick(probs), threshold=pick(ths))
    if choices is not None:
        result["choices"] = {s.subject: {"kind": c["kind"], "threshold": c["threshold"]} for s, c in zip(sets, choices)}
    result["thresholds"] = ths
    return result, sets, probs


def plot_report(result: dict, path: str | Path, title: str = "") -> Path:
    """A confusion matrix, a per-subject balanced-accuracy bar chart (with the pooled figure's
    interval when ``result`` has ``intervals``) and, when ``result`` has ``by_time_since_change``,
    each class's accuracy by time since its label last changed, in one PNG.

    Parameters
    ----------
    result
        From :func:`evaluate` (or :func:`~engage.models.training.report`).
    path
        The PNG to write.
    title
        Above the panels.

    Returns
    -------
    Path
        The PNG.

    Examples
    --------
    >>> # plot_report(result, "out/evaluate.png", title="stress-predict: leave-one-subject-out")
    """
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
    ci = (result.get("intervals") or {}).get("balanced_accuracy")
    if ci and ci[0] == ci[0]:
        b.axhspan(ci[0], ci[1], color="k", alpha=0.08, lw=0, label=f"95 % interval {ci[0]:.2f}-{ci[1]:.2f}")
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


def model_features(rank: bool = True, delta: bool = False, face: bool = False) -> tuple[str, ...]:
    """The input channels of a trained model: the normaliser's output for the window's channels.

    Parameters
    ----------
    rank
        With the ``p_*`` percentile ranks.
    delta
        With the ``d_*`` changes.
    face
        With the face features (blink rate, gaze on screen, head motion, PERCLOS, face quality).

    Returns
    -------
    tuple of str
        The feature names, in the model's order.

    Examples
    --------
    >>> model_features()[:2], len(model_features(rank=False)) < len(model_features())
    (('z_hr_mean', 'z_hr_std'), True)
    >>> "z_blink_rate" in model_features(face=True), "z_blink_rate" in model_features()
    (True, False)
    """
    kept = WRIST_FEATURES + WRIST_QUALITIES + ((FACE_FEATURES + FACE_QUALITIES) if face else ())
    levels = tuple(n for n in LEVEL_FEATURES if n in kept)
    rest = tuple(n for n in kept if n not in levels)
    return (tuple(f"z_{n}" for n in levels) + rest + (tuple(f"p_{n}" for n in levels) if rank else ())
            + (tuple(f"d_{n}" for n in levels) if delta else ()))


def choose_features(sets: Sequence[WindowSet], min_share: float = 0.1) -> tuple[str, ...]:
    """The features a model trained on ``sets`` gets: the wrist ones, and the face ones when at
    least ``min_share`` of the windows saw a face (a webcam, the simulated viewer).

    Parameters
    ----------
    sets
        Windows as :func:`~engage.models.training.extract_windows` gives them.
    min_share
        The share of windows with a face (``face_quality`` > 0) that adds the face features.

    Returns
    -------
    tuple of str
        :func:`model_features` with or without ``face``.

    Examples
    --------
    >>> ws = WindowSet("s", ("face_quality",), np.array([[0.9], [0.8]]), np.array([1.0, 2.0]), np.zeros(2))
    >>> "on_screen" in choose_features([ws])
    True
    """
    q = [s.X[:, s.features.index("face_quality")] for s in sets if "face_quality" in s.features and len(s.t)]
    share = float(np.mean(np.concatenate(q) > 0)) if q else 0.0
    return model_features(face=share >= min_share)


MODEL_FEATURES = model_features()
