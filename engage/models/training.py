"""Training and evaluation over subjects: feature windows in parallel, leave-one-subject-out.

Work over subjects runs with joblib (``n_jobs``; ``-1`` = all cores). To spread it over a cluster,
wrap the call in a joblib backend context, e.g. Dask::

    from dask.distributed import Client; import joblib
    client = Client("scheduler:8786")
    with joblib.parallel_backend("dask"):
        sets = extract_windows(dataset, n_jobs=-1)

or Ray (``from ray.util.joblib import register_ray; register_ray()`` then
``joblib.parallel_backend("ray")``). Nothing else changes.

>>> metrics(np.array([0, 0, 1, 1]), np.array([0.2, 0.6, 0.7, 0.9]))["balanced_accuracy"]
0.75
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from joblib import Parallel, delayed
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, roc_auc_score

from engage.datasets.reorder import copy_seed, recording_shuffled

from .classifier import make_classifier
from .wrist import WindowSet, wrist_features


@dataclass(frozen=True)
class WindowConfig:
    """How recordings become training rows (stored in the model file and its card)."""

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


@dataclass(frozen=True)
class ReorderConfig:
    """Training on copies of each session re-ordered in time (:mod:`engage.datasets.reorder`):
    ``copies`` per subject, cut at label changes and into pieces of ``min_piece_s`` …
    ``max_piece_s``, drawn from ``seed``. Models trained this way cannot learn the protocol's
    timetable (when stress happens), only what it looks like; they are evaluated on the sessions
    as recorded. Stored in the model file, so ``evaluate --cv loso`` retrains the same way."""

    copies: int = 8
    min_piece_s: float = 240.0
    max_piece_s: float = 600.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.copies < 0:
            raise ValueError(f"copies must be >= 0, not {self.copies}")


def _one(dataset, subject: str, config: WindowConfig, copy: int | None = None,
         reorder: ReorderConfig | None = None) -> WindowSet:
    recording = dataset.load(subject)
    if copy is not None and reorder is not None:
        recording = recording_shuffled(recording, copy_seed(reorder.seed, subject, copy), reorder.min_piece_s,
                                       reorder.max_piece_s)
    return wrist_features(recording, **asdict(config))


def _progress(iterable, total: int, desc: str, unit: str = "subject"):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=None, leave=False, file=sys.stderr)


#: signal modules the wrist chain never runs (face, camera pulse, respiration belt): left out of the cache key
_NOT_WRIST = {"face.py", "face_mesh.py", "gaze.py", "head_pose.py", "blinks.py", "rppg.py", "respiration.py"}


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
               reorder: ReorderConfig | None = None) -> str:
    """Code version + config (+ which re-ordered copy) + the subject's input files (names, sizes,
    modification times)."""
    what = f"{_code_version()}|{dataset.name}|{subject}|{sorted(asdict(config).items())}"
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
               reorder: ReorderConfig | None = None) -> WindowSet:
    if cache is None:
        return _one(dataset, subject, config, copy, reorder)
    path = cache / f"{dataset.name}-{subject}-{_cache_key(dataset, subject, config, cache, copy, reorder)}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        return WindowSet(str(z["subject"]), tuple(str(c) for c in z["features"]), z["X"], z["t"], z["y"],
                         z["raw"], z["raw_t"])
    ws = _one(dataset, subject, config, copy, reorder)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, subject=ws.subject, features=np.array(ws.features, dtype=str), X=ws.X, t=ws.t, y=ws.y,
             raw=ws.raw, raw_t=ws.raw_t)
    os.replace(tmp, path)
    return ws


def extract_windows(dataset, subjects: Sequence[str] | None = None, config: WindowConfig = WindowConfig(),
                    n_jobs: int = 1, cache: str | os.PathLike | None = None) -> list[WindowSet]:
    """Each subject's recording replayed through the wrist chain (joblib over subjects, progress bar).

    ``cache``: a folder where each subject's windows are kept, keyed by a hash of the code that
    computes them, the settings and the subject's files, so a second run (evaluate after train,
    an ablation) reads them instead of replaying again. Any change to that code, the settings or
    the files makes a new key."""
    subjects = list(subjects) if subjects is not None else dataset.subjects()
    cache = Path(cache) if cache is not None else None
    jobs = (delayed(_cached_one)(dataset, s, config, cache) for s in subjects)
    runner = Parallel(n_jobs=n_jobs, return_as="generator")
    return list(_progress(runner(jobs), len(subjects), "feature windows"))


def extract_reordered(dataset, subjects: Sequence[str] | None = None, config: WindowConfig = WindowConfig(),
                      reorder: ReorderConfig = ReorderConfig(), n_jobs: int = 1,
                      cache: str | os.PathLike | None = None) -> list[list[WindowSet]]:
    """For each subject, ``reorder.copies`` re-ordered copies of its recording replayed through
    the wrist chain (see :class:`ReorderConfig`; cached like :func:`extract_windows`)."""
    subjects = list(subjects) if subjects is not None else dataset.subjects()
    cache = Path(cache) if cache is not None else None
    keys = [(s, k) for s in subjects for k in range(reorder.copies)]
    jobs = (delayed(_cached_one)(dataset, s, config, cache, k, reorder) for s, k in keys)
    runner = Parallel(n_jobs=n_jobs, return_as="generator")
    flat = list(_progress(runner(jobs), len(keys), "re-ordered copies", unit="recording"))
    return [flat[i * reorder.copies:(i + 1) * reorder.copies] for i in range(len(subjects))]


def _xy(sets: Sequence[WindowSet]) -> tuple[np.ndarray, np.ndarray]:
    X = np.vstack([s.X for s in sets])
    y = np.concatenate([s.y for s in sets])
    ok = np.isfinite(y)
    return X[ok], y[ok].astype(int)


def _fit_xy(X: np.ndarray, y: np.ndarray, kind: str, params: dict):
    if len(np.unique(y)) < 2:
        raise ValueError("training needs windows of both classes")
    clf = make_classifier(kind).set_params(**params) if params else make_classifier(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the pipeline takes no sample_weight: calibration uses it
        return clf.fit(X, y, sample_weight=compute_sample_weight("balanced", y))


def fit(sets: Sequence[WindowSet], kind: str = "logistic", **params):
    """A classifier fitted on the labelled windows of ``sets`` (windows whose label is NaN are left out).

    Classes are weighted to balance (in the estimator and in the probability calibration), so
    P = 0.5 is the decision point whatever the share of stress windows in the training data.
    ``params`` are set on the classifier before fitting (scikit-learn ``set_params`` names, e.g.
    ``estimator__clf__C=0.01``)."""
    X, y = _xy(sets)
    return _fit_xy(X, y, kind, params)


def _fold(X: np.ndarray, y: np.ndarray, group: np.ndarray, i: int, kind: str, X_test: np.ndarray,
          params: dict) -> np.ndarray:
    train = group != i
    return _fit_xy(X[train], y[train], kind, params).predict_proba(X_test)[:, 1]


def loso(sets: Sequence[WindowSet], kind: str = "logistic", n_jobs: int = 1,
         train_sets: Sequence[Sequence[WindowSet]] | None = None, **params) -> list[np.ndarray]:
    """Leave-one-subject-out: for each subject, P(class 1) of its windows from a model trained on the others.

    ``train_sets[i]``: what subject ``i`` contributes to the other folds' training (e.g. its
    re-ordered copies from :func:`extract_reordered`, or its windows with other labels - NaN
    leaves a window out of training); default: its own windows ``[sets[i]]``. ``params``: as in
    :func:`fit`."""
    train_sets = [[s] for s in sets] if train_sets is None else train_sets
    if len(train_sets) != len(sets):
        raise ValueError(f"train_sets has {len(train_sets)} entries for {len(sets)} subjects")
    parts = [(_xy(group), i) for i, group in enumerate(train_sets) if group]
    X = np.vstack([xy[0] for xy, _ in parts])
    y = np.concatenate([xy[1] for xy, _ in parts])
    group = np.concatenate([np.full(len(xy[1]), i) for xy, i in parts])
    jobs = (delayed(_fold)(X, y, group, i, kind, s.X, params) for i, s in enumerate(sets))
    return list(_progress(Parallel(n_jobs=n_jobs, return_as="generator")(jobs), len(sets), "leave-one-subject-out"))


def predict(model, sets: Sequence[WindowSet]) -> list[np.ndarray]:
    """P(class 1) of every window of every subject from one model."""
    return [model.predict_proba(s.X)[:, 1] if len(s.X) else np.zeros(0) for s in sets]


def metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict:
    """Balanced accuracy, F1, ROC AUC and the confusion matrix of probabilities ``p`` against labels ``y``."""
    y = np.asarray(y, dtype=int)
    pred = (np.asarray(p) >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    return {
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)) if len(y) else float("nan"),
        "f1": float(f1_score(y, pred, zero_division=0)) if len(y) else float("nan"),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "n": int(len(y)),
        "confusion": confusion_matrix(y, pred, labels=[0, 1]).tolist(),
    }


#: bins (seconds since the label last changed) of :func:`accuracy_since_change`
SINCE_CHANGE_EDGES_S = (0.0, 60.0, 120.0, 240.0, 480.0)


def _bin_name(lo: float, hi: float | None) -> str:
    return f"{lo:g}-{hi:g} s" if hi is not None else f"{lo:g} s-"


def accuracy_since_change(sets: Sequence[WindowSet], probs: Sequence[np.ndarray],
                          edges_s: Sequence[float] = SINCE_CHANGE_EDGES_S, threshold: float = 0.5) -> dict:
    """Where in time a model is right: each class's accuracy by how long ago its label last changed.

    A physiological response lags its cause (heart rate by seconds, skin conductance by tens of
    seconds, recovery by minutes), so a window just after a task starts or ends is the hardest to
    get right; a model that is only wrong there is limited by that lag, one that is wrong all
    through a block is not. For each subject, a label change is where two consecutive labelled
    windows differ; a window's time since the change is the difference of their end times.
    Windows before the subject's first change are counted under ``"before the first change"``.
    Returns ``{"0": {bin: {"n": ..., "accuracy": ...}}, "1": {...}}`` (bins named ``"0-60 s"`` …
    ``"480 s-"``; accuracy is None for an empty bin; any other label value gets its own key).

    >>> s = WindowSet("a", ("x",), np.zeros((4, 1)), np.array([5.0, 10.0, 15.0, 20.0]), np.array([0, 0, 1, 1.0]))
    >>> accuracy_since_change([s], [np.array([0.1, 0.2, 0.3, 0.9])])["1"]["0-60 s"]
    {'n': 2, 'accuracy': 0.5}
    """
    edges = [float(e) for e in edges_s]
    names = ["before the first change"] + [_bin_name(lo, hi) for lo, hi in zip(edges, edges[1:] + [None])]
    hits = {c: {n: [] for n in names} for c in ("0", "1")}
    for s, p in zip(sets, probs):
        ok = np.isfinite(s.y)
        t, y, right = s.t[ok], s.y[ok].astype(int), (np.asarray(p)[ok] >= threshold) == s.y[ok].astype(bool)
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


def report(sets: Sequence[WindowSet], probs: Sequence[np.ndarray]) -> dict:
    """Pooled metrics over all labelled windows plus each subject's."""
    ys, ps, per = [], [], {}
    for s, p in zip(sets, probs):
        ok = np.isfinite(s.y)
        ys.append(s.y[ok]), ps.append(p[ok])
        m = metrics(s.y[ok], p[ok])
        per[s.subject] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items() if k != "confusion"}
    pooled = metrics(np.concatenate(ys) if ys else np.zeros(0), np.concatenate(ps) if ps else np.zeros(0))
    out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in pooled.items()}
    out["per_subject"] = per
    return out
