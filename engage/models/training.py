"""Training and evaluation over subjects: feature windows in parallel, leave-one-subject-out.

Work over subjects runs with joblib (``n_jobs``; ``-1`` = all cores). To spread it over a cluster,
wrap the call in a joblib backend context, e.g. Dask::

    from dask.distributed import Client; import joblib
    client = Client("scheduler:8786")
    with joblib.parallel_backend("dask"):
        sets = extract_windows(dataset, n_jobs=-1)

or Ray (``from ray.util.joblib import register_ray; register_ray()`` then
``joblib.parallel_backend("ray")``). Nothing else changes: :func:`run_jobs` asks a backend for
results one by one only when it can give them (Ray and joblib's multiprocessing backend cannot),
and prints progress either way (``models/README.md`` has the command-line recipe).

Models are chosen without looking at the participants they are scored on (:func:`select`,
:func:`nested_loso`), windows are DataFrames with named columns (:meth:`WindowSet.frame`), and
figures come with intervals over participants (:func:`bootstrap_intervals`).

>>> metrics(np.array([0, 0, 1, 1]), np.array([0.2, 0.6, 0.7, 0.9]))["balanced_accuracy"]
0.75
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, roc_auc_score

from engage.core.progress import PROGRESS_EVERY_S, Progress
from engage.datasets.reorder import copy_seed, recording_shuffled

from .classifier import make_classifier
from .wrist import WindowSet, concat_windows, wrist_features

__all__ = ["PROGRESS_EVERY_S", "ReorderConfig", "SINCE_CHANGE_EDGES_S", "SelectConfig", "WindowConfig",
           "accuracy_since_change", "bootstrap_intervals", "extract_reordered", "extract_windows", "fit", "fit_selected",
           "loso", "metrics", "nested_loso", "predict", "predictions_frame", "progress", "recordings_of", "report",
           "run_jobs", "select"]


@dataclass(frozen=True)
class WindowConfig:
    """How recordings become training rows (stored in the model file and its card).

    Parameters
    ----------
    window_s
        Seconds per window (60: the usual minimum for ultra-short HRV, and a steady SCR rate).
    hop_s
        Seconds between windows.
    calibration_s
        Seconds of each session that set the viewer's baseline.
    adapt_tau_s
        Time constant of the baseline's slow adaptation.
    rank_history_s
        Percentile ranks among the viewer's own last this many seconds (None: z-scores only).
    label_lag_s
        A window takes the label in force this long before its end (``window_s / 2``: its centre).
    delta_s
        Change features against the viewer's own windows this long before (None: none).
    first_window_s
        The first window ends this long after a session's first sample (None: ``window_s``);
        shorter makes a first window over a pre-trial baseline (DEAP).

    Examples
    --------
    >>> WindowConfig(window_s=30.0).hop_s
    5.0
    """

    #: 60 s: the usual minimum for ultra-short HRV (RMSSD) and enough for a steady SCR rate
    window_s: float = 60.0
    hop_s: float = 5.0
    calibration_s: float = 300.0
    adapt_tau_s: float = 1800.0
    #: percentile-rank features against the viewer's own last 30 min (None: z-scores only)
    rank_history_s: float | None = 1800.0
    #: a window's label is the one in force this long before its end (window_s / 2: its centre)
    label_lag_s: float = 30.0
    #: change features against the viewer's own windows this long before (None: none)
    delta_s: float | None = None
    #: the first window ends this long after a session's first sample (None: window_s)
    first_window_s: float | None = None


@dataclass(frozen=True)
class ReorderConfig:
    """Training on copies of each session re-ordered in time (:mod:`engage.datasets.reorder`):
    ``copies`` per subject, cut at label changes and into pieces of ``min_piece_s`` …
    ``max_piece_s``, drawn from ``seed``. Models trained this way cannot learn the protocol's
    timetable (when stress happens), only what it looks like; they are evaluated on the sessions
    as recorded. Stored in the model file, so ``evaluate --cv loso`` retrains the same way.

    Parameters
    ----------
    copies
        Re-ordered copies per subject (0: none).
    min_piece_s, max_piece_s
        Length of the pieces stretches are cut into.
    seed
        Random seed (each copy's generator also depends on the subject and the copy's number).

    Examples
    --------
    >>> ReorderConfig(copies=2).max_piece_s
    600.0
    """

    copies: int = 8
    min_piece_s: float = 240.0
    max_piece_s: float = 600.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.copies < 0:
            raise ValueError(f"copies must be >= 0, not {self.copies}")


def recordings_of(dataset, subject: str, label: str | None = None) -> list:
    """A subject's sessions as :class:`~engage.datasets.base.Recording` objects, labelled by
    ``label`` (None: the dataset's default label): ``dataset.sessions(subject)`` when the loader
    splits a subject into sessions with their own baselines (DEAP's trials), else its one recording.

    Parameters
    ----------
    dataset
        A loader (:mod:`engage.datasets`).
    subject
        One of its subjects.
    label
        A name from the recordings' ``label_sets`` (``boring``, ``probe:boredom`` …).

    Returns
    -------
    list of Recording
        One per session.

    Examples
    --------
    >>> # [r.session for r in recordings_of(Deap(root), "s01")][:2]   # ['trial-01', 'trial-02']
    """
    sessions = dataset.sessions(subject) if hasattr(dataset, "sessions") else [dataset.load(subject)]
    return [r.with_label(label) for r in sessions]


def _one(dataset, subject: str, config: WindowConfig, copy: int | None = None,
         reorder: ReorderConfig | None = None, label: str | None = None) -> WindowSet:
    parts = []
    for recording in recordings_of(dataset, subject, label):
        if copy is not None and reorder is not None:
            recording = recording_shuffled(recording, copy_seed(reorder.seed, subject + recording.session, copy),
                                           reorder.min_piece_s, reorder.max_piece_s)
        parts.append(wrist_features(recording, **asdict(config)))
    return concat_windows(parts)


def progress(iterable, total: int, desc: str, unit: str = "subject", file=None, units: str | None = None):
    """``iterable`` with progress on stderr: a tqdm bar on a terminal, otherwise a line at most
    every :data:`PROGRESS_EVERY_S` seconds (and at the end) - done/total, elapsed, time left.

    Parameters
    ----------
    iterable
        What to go through.
    total
        How many items it has.
    desc, unit
        What is being done, and what one item is (``"subject"``, ``"fold"`` …).
    file
        Where to write (default ``sys.stderr``).
    units
        The plural of ``unit`` (default: ``unit`` + "s").

    Returns
    -------
    iterator
        The items of ``iterable``, in order.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> list(progress(range(3), 3, "demo", file=out))
    [0, 1, 2]
    >>> out.getvalue().splitlines()[-1].startswith("demo: 3/3 subjects")
    True
    """
    with Progress(total, desc, unit, file=file, units=units) as bar:
        for item in iterable:
            yield item
            bar.update(1)


def run_jobs(calls: Sequence, n_jobs: int = 1, desc: str = "jobs", unit: str = "subject") -> list:
    """Run joblib ``delayed`` calls on whatever joblib backend is active, results in order, with
    :func:`progress`.

    Backends that hand results back one by one (loky, threading, Dask) are asked for a generator;
    those that refuse to (joblib's multiprocessing backend, Ray's) run the calls in batches of two
    per worker, with progress after each batch.

    Parameters
    ----------
    calls
        ``joblib.delayed(f)(...)`` objects.
    n_jobs
        Workers (``-1``: all the backend has).
    desc, unit
        For the progress lines.

    Returns
    -------
    list
        The results, in the order of ``calls``.

    Examples
    --------
    >>> from joblib import delayed
    >>> import io, contextlib
    >>> with contextlib.redirect_stderr(io.StringIO()):
    ...     run_jobs([delayed(abs)(-i) for i in range(4)], n_jobs=1)
    [0, 1, 2, 3]
    """
    calls = list(calls)
    try:
        runner = Parallel(n_jobs=n_jobs, return_as="generator")
    except ValueError:  # "Backend ... does not support return_as=generator"
        runner = None
    if runner is not None:
        return list(progress(runner(calls), len(calls), desc, unit))
    batch = 2 * max(1, effective_n_jobs(n_jobs))
    with Parallel(n_jobs=n_jobs) as parallel:
        batches = (parallel(calls[i:i + batch]) for i in range(0, len(calls), batch))
        done = list(progress(batches, -(-len(calls) // batch), desc, f"batch of {batch} {unit}s",
                             units=f"batches of {batch} {unit}s"))
    return [r for b in done for r in b]


#: signal modules the wrist chain never runs (face, camera pulse, respiration belt): left out of the cache key
_NOT_WRIST = {"face_mesh.py", "gaze.py", "head_pose.py", "rppg.py", "respiration.py"}


def _code_version() -> str:
    """A hash of the code that turns a recording into windows (core, loaders, replay, the signal
    steps of the wrist chain, the wrist windows and baseline)."""
    import engage

    root = Path(engage.__file__).parent
    files = [*sorted((root / "core").glob("*.py")), *sorted((root / "datasets").glob("*.py")),
             root / "sensors" / "replay.py",
             *sorted(f for f in (root / "signals").glob("*.py") if f.name not in _NOT_WRIST),
             root / "models" / "wrist.py", root / "models" / "windows.py"]
    h = hashlib.sha256(engage.__version__.encode())
    for f in files:
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def _cache_key(dataset, subject: str, config: WindowConfig, cache: Path, copy: int | None = None,
               reorder: ReorderConfig | None = None, label: str | None = None) -> str:
    """Code version + config (+ label, which re-ordered copy) + the subject's input files (names,
    sizes, modification times)."""
    what = f"{_code_version()}|{dataset.name}|{subject}|{sorted(asdict(config).items())}"
    if label is not None:
        what += f"|label {label}"
    if copy is not None and reorder is not None:
        what += f"|copy {copy}|{reorder.seed}|{reorder.min_piece_s}|{reorder.max_piece_s}"
    h = hashlib.sha256(what.encode())
    root = Path(getattr(dataset, "root", "."))
    cache = cache.resolve()
    for f in sorted(root.rglob("*")):
        if cache == f.resolve() or cache in f.resolve().parents:  # a cache kept inside the dataset folder
            continue
        if f.is_file() and (subject in f.parts or subject in f.name or f.parent == root or "Processed" in str(f)):
            st = f.stat()
            h.update(f"{f.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def _cached_one(dataset, subject: str, config: WindowConfig, cache: Path | None, copy: int | None = None,
                reorder: ReorderConfig | None = None, label: str | None = None) -> WindowSet:
    if cache is None:
        return _one(dataset, subject, config, copy, reorder, label)
    key = _cache_key(dataset, subject, config, cache, copy, reorder, label)
    path = cache / f"{dataset.name}-{subject}-{key}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        return WindowSet(str(z["subject"]), tuple(str(c) for c in z["features"]), z["X"], z["t"], z["y"],
                         z["raw"] if "raw" in z else None, z["raw_t"] if "raw_t" in z else None,
                         z["session"] if "session" in z else None)
    ws = _one(dataset, subject, config, copy, reorder, label)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    extra = {k: v for k, v in (("raw", ws.raw), ("raw_t", ws.raw_t), ("session", ws.session)) if v is not None}
    np.savez(tmp, subject=ws.subject, features=np.array(ws.features, dtype=str), X=ws.X, t=ws.t, y=ws.y, **extra)
    os.replace(tmp, path)
    return ws


def extract_windows(dataset, subjects: Sequence[str] | None = None, config: WindowConfig = WindowConfig(),
                    n_jobs: int = 1, cache: str | os.PathLike | None = None, label: str | None = None) -> list[WindowSet]:
    """Each subject's recording replayed through the wrist chain (in parallel over subjects, with progress).

    Parameters
    ----------
    dataset
        A loader (:mod:`engage.datasets`).
    subjects
        Which subjects (default: all the loader finds).
    config
        How recordings become windows.
    n_jobs
        Workers, on whatever joblib backend is active (:func:`run_jobs`).
    cache
        A folder where each subject's windows are kept, keyed by a hash of the code that computes
        them, the settings, the label and the subject's files, so a second run (evaluate after
        train, an ablation) reads them instead of replaying again. Any change to that code, the
        settings or the files makes a new key.
    label
        Label the windows by this entry of the recordings' ``label_sets`` (default: the dataset's).

    Returns
    -------
    list of WindowSet
        One per subject, in order.

    Examples
    --------
    >>> # sets = extract_windows(StressPredict(root), ["S02", "S03"], n_jobs=2, cache="out/cache/windows")
    """
    subjects = list(subjects) if subjects is not None else dataset.subjects()
    cache = Path(cache) if cache is not None else None
    return run_jobs([delayed(_cached_one)(dataset, s, config, cache, None, None, label) for s in subjects], n_jobs,
                    "feature windows")


def extract_reordered(dataset, subjects: Sequence[str] | None = None, config: WindowConfig = WindowConfig(),
                      reorder: ReorderConfig = ReorderConfig(), n_jobs: int = 1,
                      cache: str | os.PathLike | None = None, label: str | None = None) -> list[list[WindowSet]]:
    """For each subject, ``reorder.copies`` re-ordered copies of its recording replayed through
    the wrist chain (see :class:`ReorderConfig`).

    Parameters
    ----------
    dataset, subjects, config, n_jobs, cache, label
        As in :func:`extract_windows`.
    reorder
        How many copies and how they are cut.

    Returns
    -------
    list of list of WindowSet
        For each subject, its copies.

    Examples
    --------
    >>> # copies = extract_reordered(ds, ["S02", "S03"], WindowConfig(), ReorderConfig(copies=8), n_jobs=2)
    """
    subjects = list(subjects) if subjects is not None else dataset.subjects()
    cache = Path(cache) if cache is not None else None
    keys = [(s, k) for s in subjects for k in range(reorder.copies)]
    flat = run_jobs([delayed(_cached_one)(dataset, s, config, cache, k, reorder, label) for s, k in keys], n_jobs,
                    "re-ordered copies", unit="recording")
    return [flat[i * reorder.copies:(i + 1) * reorder.copies] for i in range(len(subjects))]


def _xy(sets: Sequence[WindowSet]):
    """The labelled windows of ``sets`` as a DataFrame (named feature columns) and integer labels."""
    import pandas as pd

    frames = [s.frame() for s in sets if len(s.t)]
    X = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(sets[0].features) if sets else [])
    y = np.concatenate([s.y for s in sets if len(s.t)]) if frames else np.zeros(0)
    ok = np.isfinite(y)
    return X[ok].reset_index(drop=True), y[ok].astype(int)


def _plain_names(estimator) -> None:
    """scikit-learn keeps ``feature_names_in_`` as an object array, which a model file must not hold
    (only numeric arrays are trusted on load): keep each as a tuple of str. ``Clip``, the first step
    of every pipeline, checks the names and their order on every call."""
    seen: set[int] = set()
    stack = [estimator]
    while stack:
        est = stack.pop()
        if id(est) in seen or not hasattr(est, "__dict__"):
            continue
        seen.add(id(est))
        names = est.__dict__.get("feature_names_in_")
        if isinstance(names, np.ndarray):
            est.__dict__["feature_names_in_"] = tuple(str(n) for n in names)
        for v in est.__dict__.values():
            if isinstance(v, (list, tuple)):
                stack.extend(x for item in v for x in (item if isinstance(item, tuple) else (item,)))
            elif hasattr(v, "get_params"):
                stack.append(v)


def _fit_xy(X, y: np.ndarray, kind: str, params: dict):
    if len(np.unique(y)) < 2:
        raise ValueError("training needs windows of both classes")
    clf = make_classifier(kind).set_params(**params) if params else make_classifier(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the pipeline takes no sample_weight: calibration uses it
        clf.fit(X, y, sample_weight=compute_sample_weight("balanced", y))
    _plain_names(clf)
    return clf


def fit(sets: Sequence[WindowSet], kind: str = "logistic", **params):
    """A classifier fitted on the labelled windows of ``sets`` (windows whose label is NaN are left out).

    Classes are weighted to balance (in the estimator and in the probability calibration), so
    P = 0.5 is the decision point whatever the share of class-1 windows in the training data.

    Parameters
    ----------
    sets
        Windows of the training participants (all with the same features).
    kind
        ``logistic``, ``boosting`` or ``ensemble`` (:func:`~engage.models.classifier.make_classifier`).
    **params
        Set on the classifier before fitting (scikit-learn ``set_params`` names, e.g.
        ``estimator__clf__C=0.01``).

    Returns
    -------
    estimator
        A fitted scikit-learn classifier that takes a DataFrame with the windows' feature names
        in their order (and refuses anything else).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0.0, 1.0], 50)
    >>> s = WindowSet("s1", ("z_hr_mean",), (y + rng.normal(0, 0.5, 100))[:, None], np.arange(100.0), y)
    >>> model = fit([s], "logistic")
    >>> float(model.predict_proba(s.frame().iloc[:1])[0, 1]) < 0.5
    True
    """
    X, y = _xy(sets)
    return _fit_xy(X, y, kind, params)


@dataclass(frozen=True)
class SelectConfig:
    """How a model is chosen without looking at the participants it is scored on.

    Inside the training participants only, a grouped ``inner_folds``-fold cross-validation
    (participants held out together; fewer folds when there are fewer participants) scores each
    ``kinds`` candidate; each is given the decision
    threshold that maximises ``sensitivity + false_alarm_cost × specificity`` on its held-out
    windows (a false alarm at rest costs ``false_alarm_cost`` times a missed arousal), and the
    candidate with the best such score is fitted on all the training participants with that
    threshold. ``evaluate --cv loso`` repeats the whole choice inside each outer fold (nested).
    Stored in the model file.

    Parameters
    ----------
    kinds
        The candidate classifiers (:func:`~engage.models.classifier.make_classifier` kinds).
    inner_folds
        Folds of the inner, grouped cross-validation.
    false_alarm_cost
        How much a false alarm at rest costs against a missed class-1 window.
    min_threshold, max_threshold
        The range searched for the decision threshold (steps of 0.01).

    Examples
    --------
    >>> SelectConfig().thresholds()[[0, -1]].tolist()
    [0.3, 0.8]
    """

    kinds: tuple[str, ...] = ("logistic", "ensemble")
    inner_folds: int = 3
    false_alarm_cost: float = 1.5
    min_threshold: float = 0.3
    max_threshold: float = 0.8

    def __post_init__(self) -> None:
        if self.inner_folds < 2 or not self.kinds or not self.false_alarm_cost > 0 \
                or not 0 < self.min_threshold <= self.max_threshold < 1:
            raise ValueError(f"invalid selection settings {self}")

    def thresholds(self) -> np.ndarray:
        return np.round(np.arange(self.min_threshold, self.max_threshold + 1e-9, 0.01), 2)


def _best_threshold(y: np.ndarray, p: np.ndarray, selection: SelectConfig) -> tuple[float, float]:
    """The threshold with the best ``sensitivity + cost × specificity`` (ties: the lower), and that score."""
    best = (0.5, -np.inf)
    for th in selection.thresholds():
        sens, spec = _rates(confusion_matrix(y, (p >= th).astype(int), labels=[0, 1]))
        score = (np.nan_to_num(sens) + selection.false_alarm_cost * np.nan_to_num(spec)) / (1 + selection.false_alarm_cost)
        if score > best[1] + 1e-12:
            best = (float(th), float(score))
    return best


def select(sets: Sequence[WindowSet], train_sets: Sequence[Sequence[WindowSet]] | None = None,
           selection: SelectConfig = SelectConfig(), params: dict | None = None) -> dict:
    """The candidate and decision threshold :class:`SelectConfig` chooses on these participants alone.

    Parameters
    ----------
    sets
        Each participant's windows as recorded (scored in the inner folds).
    train_sets
        What each participant contributes to training (its re-ordered copies; default its windows).
    selection
        The candidates and the criterion.
    params
        Estimator parameters for every candidate.

    Returns
    -------
    dict
        ``kind``, ``threshold`` and ``scores`` (each candidate's inner criterion, threshold,
        balanced accuracy, sensitivity and specificity).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> y = np.repeat([0.0, 1.0], 40)
    >>> sets = [WindowSet(f"s{i}", ("x",), (y + rng.normal(0, 0.6, 80))[:, None], np.arange(80.0), y) for i in range(4)]
    >>> choice = select(sets, selection=SelectConfig(kinds=("logistic",), inner_folds=2))
    >>> choice["kind"], 0.3 <= choice["threshold"] <= 0.8
    ('logistic', True)
    """
    train_sets = [[s] for s in sets] if train_sets is None else train_sets
    n = len(sets)
    if n < 2:
        raise ValueError(f"choosing a model needs two participants or more, got {n}")
    n_folds = min(selection.inner_folds, n)
    folds = np.arange(n) % n_folds
    scores = {}
    for kind in selection.kinds:
        ys, ps = [], []
        for k in range(n_folds):
            train = [w for i in range(n) if folds[i] != k for w in train_sets[i]]
            test = [sets[i] for i in range(n) if folds[i] == k]
            X, y = _xy(train)
            if len(np.unique(y)) < 2:
                continue
            model = _fit_xy(X, y, kind, params or {})
            Xt, yt = _xy(test)
            if len(yt):
                ys.append(yt), ps.append(model.predict_proba(Xt)[:, 1])
        if not ys:
            continue
        y, p = np.concatenate(ys), np.concatenate(ps)
        th, score = _best_threshold(y, p, selection)
        m = metrics(y, p, th)
        scores[kind] = {"criterion": round(score, 4), "threshold": th,
                        **{k: round(m[k], 4) for k in ("balanced_accuracy", "sensitivity", "specificity")}}
    if not scores:
        raise ValueError("no inner fold had training windows of both classes")
    kind = max(scores, key=lambda k: scores[k]["criterion"])
    return {"kind": kind, "threshold": scores[kind]["threshold"], "scores": scores}


def fit_selected(sets: Sequence[WindowSet], train_sets: Sequence[Sequence[WindowSet]] | None = None,
                 selection: SelectConfig = SelectConfig(), **params):
    """:func:`select` on these participants, then the chosen kind fitted on all of them.

    Parameters
    ----------
    sets, train_sets, selection, **params
        As in :func:`select`.

    Returns
    -------
    tuple
        The fitted classifier and the :func:`select` result (``kind``, ``threshold``, ``scores``).

    Examples
    --------
    >>> # model, choice = fit_selected(sets, copies)   # choice["kind"], choice["threshold"]
    """
    train_sets = [[s] for s in sets] if train_sets is None else train_sets
    choice = select(sets, train_sets, selection, params)
    return fit([w for group in train_sets for w in group], choice["kind"], **params), choice


def _fold(X, y: np.ndarray, group: np.ndarray, i: int, kind: str, X_test, params: dict) -> np.ndarray:
    train = group != i
    return _fit_xy(X[train], y[train], kind, params).predict_proba(X_test)[:, 1]


def _nested_fold(sets, train_sets, i: int, selection: SelectConfig, params: dict) -> tuple[np.ndarray, dict]:
    others = [k for k in range(len(sets)) if k != i]
    model, choice = fit_selected([sets[k] for k in others], [train_sets[k] for k in others], selection, **params)
    return (model.predict_proba(sets[i].frame())[:, 1] if len(sets[i].t) else np.zeros(0)), choice


def loso(sets: Sequence[WindowSet], kind: str = "logistic", n_jobs: int = 1,
         train_sets: Sequence[Sequence[WindowSet]] | None = None, **params) -> list[np.ndarray]:
    """Leave-one-subject-out: for each participant, P(class 1) of its windows from a model trained on the others.

    Parameters
    ----------
    sets
        Each participant's windows (scored as they are).
    kind
        The classifier (:func:`fit`).
    n_jobs
        Folds in parallel (:func:`run_jobs`).
    train_sets
        ``train_sets[i]``: what participant ``i`` contributes to the other folds' training (e.g.
        its re-ordered copies from :func:`extract_reordered`, or its windows with other labels -
        NaN leaves a window out of training); default: its own windows ``[sets[i]]``.
    **params
        As in :func:`fit`.

    Returns
    -------
    list of ndarray
        Each participant's probabilities, in the order of ``sets``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0.0, 1.0], 30)
    >>> sets = [WindowSet(f"s{i}", ("x",), (y + rng.normal(0, 0.4, 60))[:, None], np.arange(60.0), y) for i in range(3)]
    >>> import io, contextlib
    >>> with contextlib.redirect_stderr(io.StringIO()):
    ...     probs = loso(sets)
    >>> metrics(sets[0].y, probs[0])["balanced_accuracy"] > 0.8
    True
    """
    train_sets = [[s] for s in sets] if train_sets is None else train_sets
    if len(train_sets) != len(sets):
        raise ValueError(f"train_sets has {len(train_sets)} entries for {len(sets)} subjects")
    import pandas as pd

    parts = [(_xy(group), i) for i, group in enumerate(train_sets) if group]
    X = pd.concat([xy[0] for xy, _ in parts], ignore_index=True)
    y = np.concatenate([xy[1] for xy, _ in parts])
    group = np.concatenate([np.full(len(xy[1]), i) for xy, i in parts])
    return run_jobs([delayed(_fold)(X, y, group, i, kind, s.frame(), params) for i, s in enumerate(sets)], n_jobs,
                    "leave-one-subject-out", unit="fold")


def nested_loso(sets: Sequence[WindowSet], selection: SelectConfig = SelectConfig(), n_jobs: int = 1,
                train_sets: Sequence[Sequence[WindowSet]] | None = None,
                **params) -> tuple[list[np.ndarray], list[dict]]:
    """Leave-one-subject-out with the model *chosen* inside each fold (:func:`fit_selected` on the
    other participants only), so the choice never sees the held-out participant.

    Parameters
    ----------
    sets, n_jobs, train_sets, **params
        As in :func:`loso`.
    selection
        The candidates and the criterion.

    Returns
    -------
    tuple
        Each participant's probabilities, and each fold's choice (``kind``, ``threshold``, ``scores``).

    Examples
    --------
    >>> # probs, choices = nested_loso(sets, SelectConfig(), n_jobs=2, train_sets=copies)
    >>> # report(sets, probs, [c["threshold"] for c in choices])
    """
    train_sets = [[s] for s in sets] if train_sets is None else train_sets
    if len(train_sets) != len(sets):
        raise ValueError(f"train_sets has {len(train_sets)} entries for {len(sets)} subjects")
    out = run_jobs([delayed(_nested_fold)(sets, train_sets, i, selection, params) for i in range(len(sets))], n_jobs,
                   "nested leave-one-subject-out", unit="fold")
    return [p for p, _ in out], [c for _, c in out]


def predict(model, sets: Sequence[WindowSet]) -> list[np.ndarray]:
    """P(class 1) of every window of every participant from one model.

    Parameters
    ----------
    model
        A fitted classifier (e.g. ``LoadedModel.model``); it gets each set's :meth:`WindowSet.frame`.
    sets
        Windows with the model's features, in its order (see
        :func:`~engage.models.evaluation.align`).

    Returns
    -------
    list of ndarray
        One array per set.

    Examples
    --------
    >>> s = WindowSet("s1", ("x",), np.array([[-1.0], [1.0]] * 20), np.arange(40.0), np.array([0.0, 1.0] * 20))
    >>> [p.round(1).tolist()[:2] for p in predict(fit([s]), [s])]
    [[0.1, 0.9]]
    """
    return [model.predict_proba(s.frame())[:, 1] if len(s.X) else np.zeros(0) for s in sets]


def _per_set(threshold, n: int) -> list[float]:
    """One decision threshold per window set (a single value, or one per set as from :func:`nested_loso`)."""
    if np.ndim(threshold) == 0:
        return [float(threshold)] * n
    if len(threshold) != n:
        raise ValueError(f"{len(threshold)} thresholds for {n} window sets")
    return [float(t) for t in threshold]


def _rates(cm: np.ndarray) -> tuple[float, float]:
    """Sensitivity (recall of class 1) and specificity (recall of class 0) of a 2 × 2 confusion matrix."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(cm[1, 1] / cm[1].sum()), float(cm[0, 0] / cm[0].sum())


def metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict:
    """Scores of probabilities ``p`` against binary labels ``y``, deciding class 1 at ``p >= threshold``.

    Parameters
    ----------
    y
        Labels, 0 or 1.
    p
        P(class 1) of each window.
    threshold
        The decision point.

    Returns
    -------
    dict
        ``balanced_accuracy``, ``f1`` (class 1), ``roc_auc`` (NaN with one class), ``sensitivity``
        (class 1 found), ``specificity`` (class 0 kept: 1 − the false-alarm rate), ``n`` and
        ``confusion`` (rows: true 0, 1; columns: decided 0, 1).

    Examples
    --------
    >>> m = metrics(np.array([0, 0, 1, 1]), np.array([0.2, 0.6, 0.7, 0.9]))
    >>> m["balanced_accuracy"], m["specificity"], m["confusion"]
    (0.75, 0.5, [[1, 1], [0, 2]])
    """
    y = np.asarray(y, dtype=int)
    pred = (np.asarray(p) >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    cm = confusion_matrix(y, pred, labels=[0, 1]) if len(y) else np.zeros((2, 2), int)
    sens, spec = _rates(cm)
    return {
        "balanced_accuracy": float(np.nanmean([sens, spec])) if len(y) else float("nan"),
        "f1": float(f1_score(y, pred, zero_division=0)) if len(y) else float("nan"),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "sensitivity": sens,
        "specificity": spec,
        "n": int(len(y)),
        "confusion": cm.tolist(),
    }


def bootstrap_intervals(sets: Sequence[WindowSet], probs: Sequence[np.ndarray], threshold: float = 0.5,
                        n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Confidence intervals of the pooled metrics over *participants*: the participants are drawn
    with replacement ``n_boot`` times and the metrics recomputed on their windows.

    Windows of one person are not independent, so resampling windows would give intervals far too
    narrow; resampling people asks how the figure would move with another group of the same size.

    Parameters
    ----------
    sets, probs
        Each participant's windows and P(class 1) (as from :func:`loso` or :func:`predict`).
    threshold
        The decision point, or one per participant (:func:`nested_loso`).
    n_boot, seed
        Number of resamples and the random seed (fixed: the same data give the same intervals).
    level
        Coverage of the interval (0.95: the 2.5th and 97.5th percentiles).

    Returns
    -------
    dict
        ``{metric: [low, high]}`` for ``balanced_accuracy``, ``sensitivity``, ``specificity``,
        ``f1`` and ``roc_auc``, plus ``n_boot``, ``level`` and ``unit`` (``"participant"``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sets = [WindowSet(f"s{i}", ("x",), np.zeros((20, 1)), np.arange(20.0), np.r_[np.zeros(10), np.ones(10)])
    ...         for i in range(6)]
    >>> probs = [np.clip(s.y * 0.6 + rng.uniform(0, 0.5, 20), 0, 1) for s in sets]
    >>> ci = bootstrap_intervals(sets, probs, n_boot=200)
    >>> ci["balanced_accuracy"][0] <= metrics(np.concatenate([s.y for s in sets]), np.concatenate(probs))[
    ...     "balanced_accuracy"] <= ci["balanced_accuracy"][1]
    True
    """
    ys, ps = [], []
    ths = _per_set(threshold, len(sets))
    for s, p in zip(sets, probs):
        ok = np.isfinite(s.y)
        ys.append(s.y[ok].astype(int))
        ps.append(np.asarray(p)[ok])
    keep = [i for i, y in enumerate(ys) if len(y)]
    out: dict = {"n_boot": int(n_boot), "level": level, "unit": "participant"}
    names = ("balanced_accuracy", "sensitivity", "specificity", "f1", "roc_auc")
    if len(keep) < 2:
        return {**out, **{k: [float("nan"), float("nan")] for k in names}}
    cms = np.array([confusion_matrix(ys[i], (ps[i] >= ths[i]).astype(int), labels=[0, 1]) for i in keep])
    y_all = np.concatenate([ys[i] for i in keep])
    p_all = np.concatenate([ps[i] for i in keep])
    owner = np.concatenate([np.full(len(ys[i]), k) for k, i in enumerate(keep)])
    # weighted Mann-Whitney AUC: windows sorted once, ties grouped, each resample an O(n) sum
    order = np.argsort(p_all, kind="stable")
    y_s, owner_s = y_all[order], owner[order]
    starts = np.flatnonzero(np.r_[True, np.diff(p_all[order]) != 0])
    rng = np.random.default_rng(seed)
    draws = {k: [] for k in names}
    for _ in range(n_boot):
        counts = np.bincount(rng.integers(0, len(keep), len(keep)), minlength=len(keep))
        cm = np.tensordot(counts, cms, axes=1)
        sens, spec = _rates(cm)
        draws["sensitivity"].append(sens)
        draws["specificity"].append(spec)
        draws["balanced_accuracy"].append((sens + spec) / 2)
        tp, fp, fn = cm[1, 1], cm[0, 1], cm[1, 0]
        draws["f1"].append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
        w = counts[owner_s].astype(float)
        neg = np.add.reduceat(w * (y_s == 0), starts)
        pos = np.add.reduceat(w * (y_s == 1), starts)
        below = np.cumsum(neg) - neg  # negatives with a lower probability than each tie group
        n_pos, n_neg = pos.sum(), neg.sum()
        draws["roc_auc"].append(float(np.sum(pos * (below + 0.5 * neg)) / (n_pos * n_neg)) if n_pos and n_neg
                                else np.nan)
    tail = (1 - level) / 2 * 100
    for k, v in draws.items():
        lo, hi = np.nanpercentile(np.array(v, dtype=float), [tail, 100 - tail])
        out[k] = [round(float(lo), 4), round(float(hi), 4)]
    return out


def predictions_frame(sets: Sequence[WindowSet], probs: Sequence[np.ndarray], threshold: float = 0.5):
    """One row per window: ``subject``, ``session`` ("" for one session per participant), ``time``
    (the window's end, on the recording's clock), ``label`` (NaN when unlabelled), ``probability``
    and ``decision`` (0/1 at ``threshold``).

    Parameters
    ----------
    sets, probs
        Each participant's windows and P(class 1).
    threshold
        The decision point, or one per participant.

    Returns
    -------
    pandas.DataFrame
        The predictions, participant by participant, in time order.

    Examples
    --------
    >>> s = WindowSet("s1", ("x",), np.zeros((2, 1)), np.array([60.0, 65.0]), np.array([0.0, np.nan]))
    >>> predictions_frame([s], [np.array([0.2, 0.7])]).to_dict("list")["decision"]
    [0, 1]
    """
    import pandas as pd

    parts = [pd.DataFrame({"subject": s.subject, "session": s.session if s.session is not None else "",
                           "time": s.t, "label": s.y, "probability": np.asarray(p, float),
                           "decision": (np.asarray(p) >= th).astype(int)})
             for s, p, th in zip(sets, probs, _per_set(threshold, len(sets)))]
    if not parts:
        return pd.DataFrame(columns=["subject", "session", "time", "label", "probability", "decision"])
    return pd.concat(parts, ignore_index=True)


#: bins (seconds since the label last changed) of :func:`accuracy_since_change`
SINCE_CHANGE_EDGES_S = (0.0, 60.0, 120.0, 240.0, 480.0)


def _bin_name(lo: float, hi: float | None) -> str:
    return f"{lo:g}-{hi:g} s" if hi is not None else f"{lo:g} s-"


def accuracy_since_change(sets: Sequence[WindowSet], probs: Sequence[np.ndarray],
                          edges_s: Sequence[float] = SINCE_CHANGE_EDGES_S, threshold=0.5) -> dict:
    """Where in time a model is right: each class's accuracy by how long ago its label last changed.

    A physiological response lags its cause (heart rate by seconds, skin conductance by tens of
    seconds, recovery by minutes), so a window just after a task starts or ends is the hardest to
    get right; a model that is only wrong there is limited by that lag, one that is wrong all
    through a block is not. For each subject, a label change is where two consecutive labelled
    windows differ; a window's time since the change is the difference of their end times.
    Windows before the subject's first change are counted under ``"before the first change"``.

    Parameters
    ----------
    sets, probs
        Each participant's windows and P(class 1).
    edges_s
        Left edges of the bins, in seconds since the change.
    threshold
        The decision point, or one per participant.

    Returns
    -------
    dict
        ``{"0": {bin: {"n": ..., "accuracy": ...}}, "1": {...}}`` (bins named ``"0-60 s"`` …
        ``"480 s-"``; accuracy is None for an empty bin; any other label value gets its own key).

    Examples
    --------

    >>> s = WindowSet("a", ("x",), np.zeros((4, 1)), np.array([5.0, 10.0, 15.0, 20.0]), np.array([0, 0, 1, 1.0]))
    >>> accuracy_since_change([s], [np.array([0.1, 0.2, 0.3, 0.9])])["1"]["0-60 s"]
    {'n': 2, 'accuracy': 0.5}
    """
    edges = [float(e) for e in edges_s]
    names = ["before the first change"] + [_bin_name(lo, hi) for lo, hi in zip(edges, edges[1:] + [None])]
    hits = {c: {n: [] for n in names} for c in ("0", "1")}
    for s, p, th in zip(sets, probs, _per_set(threshold, len(sets))):
        ok = np.isfinite(s.y)
        t, y, right = s.t[ok], s.y[ok].astype(int), (np.asarray(p)[ok] >= th) == s.y[ok].astype(bool)
        change = np.flatnonzero(np.diff(y) != 0) + 1  # index of the first window after each change
        last = np.searchsorted(change, np.arange(len(y)), side="right") - 1
        for i in range(len(y)):
            if last[i] < 0:
                name = names[0]
            else:
                since = t[i] - t[change[last[i]]]
                name = names[1 + min(int(np.searchsorted(edges, since, side="right")) - 1, len(edges) - 1)]
            hits.setdefault(str(y[i]), {n: [] for n in names})[name].append(bool(right[i]))
    return {c: {n: {"n": len(v), "accuracy": round(float(np.mean(v)), 4) if v else None}
                for n, v in bins.items()} for c, bins in hits.items()}


def report(sets: Sequence[WindowSet], probs: Sequence[np.ndarray], threshold: float = 0.5) -> dict:
    """Pooled metrics over all labelled windows plus each participant's.

    Parameters
    ----------
    sets, probs
        Each participant's windows and P(class 1).
    threshold
        The decision point, or one per participant (each fold's own, from :func:`nested_loso`).

    Returns
    -------
    dict
        The pooled :func:`metrics` (rounded), ``threshold`` (None when it differs by participant),
        and ``per_subject``: each participant's metrics, confusion matrix and threshold.

    Examples
    --------
    >>> s = WindowSet("s1", ("x",), np.zeros((4, 1)), np.arange(4.0), np.array([0, 0, 1, 1.0]))
    >>> r = report([s], [np.array([0.1, 0.6, 0.7, 0.8])])
    >>> r["balanced_accuracy"], r["per_subject"]["s1"]["confusion"]
    (0.75, [[1, 1], [0, 2]])
    """
    ys, ps, ts, per = [], [], [], {}
    ths = _per_set(threshold, len(sets))
    for s, p, th in zip(sets, probs, ths):
        ok = np.isfinite(s.y)
        ys.append(s.y[ok]), ps.append(np.asarray(p)[ok]), ts.append(np.full(int(ok.sum()), th))
        m = metrics(s.y[ok], np.asarray(p)[ok], th)
        per[s.subject] = {**{k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}, "threshold": th}
    cat = (lambda a: np.concatenate(a) if a else np.zeros(0))  # noqa: E731
    pooled = metrics(cat(ys), cat(ps), cat(ts))
    out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in pooled.items()}
    out["threshold"] = ths[0] if len(set(ths)) == 1 else None
    out["per_subject"] = per
    return out
