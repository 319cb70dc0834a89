"""Loaders for public affective-computing datasets: WESAD, CASE and DEAP.

Each yields :class:`~engage.datasets.base.Recording` objects whose streams use engage's stream
types (``EDA``, ``PPG`` for blood-volume pulse, ``ACC``, ``TEMP``, ``ECG``, ``RESP``) and whose labels are binary
arousal (1 = high arousal / stress, 0 = low / baseline, NaN = not used), with the dataset's
original label kept in ``meta["raw_labels"]``. Time starts at 0 s for each subject.

Pickled files (WESAD, DEAP) are read with a restricted unpickler and a size budget
(:mod:`engage.datasets.safepickle`): only NumPy arrays and plain containers are rebuilt, nothing is
allocated that the file does not hold, and a pickle that asks for anything else is refused with a
:class:`~engage.datasets.base.DatasetError`, never executed.

* **WESAD** (Schmidt et al. 2018): ``SX/SX.pkl`` (latin-1 pickle) with ``signal.chest`` (700 Hz:
  ACC, ECG, EMG, EDA, Temp, Resp) and ``signal.wrist`` (BVP 64 Hz, EDA 4 Hz, TEMP 4 Hz, ACC 32 Hz),
  ``label`` at 700 Hz (1 baseline, 2 stress, 3 amusement; others transient). Binary: 2 → 1, 1 → 0.
* **CASE** (Sharma et al. 2019): ``physiological/sub_N.csv`` at 1 kHz (``daqtime`` ms, ``ecg``,
  ``bvp``, ``gsr``, ``rsp``, ``skt``, EMG…, ``video``) and ``annotations/sub_N.csv`` at 20 Hz
  (``jstime`` ms, ``valence``, ``arousal`` 0.5–9.5, ``video``). Binary: arousal > 5 during the eight
  clips (the blue screen between them is unlabelled); ``--label boring`` for the two boring clips.
* **DEAP** (Koelstra et al. 2012): ``sNN.dat`` (``data_preprocessed_python``): ``data`` 40 trials
  × 40 channels × 8064 samples at 128 Hz (3 s pre-trial, 60 s video; channels 37–40: GSR as
  resistance in ohms → conductance, respiration, plethysmograph, temperature), ``labels`` 40 × 4
  (valence, arousal, dominance, liking; 1–9). Each trial is its own session with its own
  baseline from its pre-trial seconds. Binary: arousal > 5.

>>> sorted(LOADERS)
['case', 'deap', 'wesad']
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .base import (SAFE_FLOATS, DatasetError, Labels, Recording, Track, refuse_infinite, require_dir, require_file,
                   stream)
from .safepickle import read_array_pickle

def _steps(t: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compress a sampled label to the samples where it changes."""
    if values.size == 0:
        return t[:0], values[:0]
    idx = np.concatenate([[0], np.flatnonzero(np.diff(values) != 0) + 1])
    return t[idx], values[idx]


def _get(doc, *keys, path: Path):
    cur = doc
    for k in keys:
        if not isinstance(cur, dict) or k not in cur:
            raise DatasetError(f"{path}: missing {'/'.join(keys)}")
        cur = cur[k]
    return cur


def _numbers(value, path: Path, what: str, ndim: int | None = None) -> np.ndarray:
    """``value`` (from a pickle) as a non-empty float array, or a :class:`DatasetError` naming it."""
    try:
        x = np.asarray(value, dtype=float)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DatasetError(f"{path}: {what} is not an array of numbers ({str(exc)[:80]})") from None
    if x.ndim == 0 or x.size == 0 or (ndim is not None and x.ndim != ndim):
        raise DatasetError(f"{path}: {what} has shape {x.shape}" + (f", expected {ndim} dimensions" if ndim else ""))
    refuse_infinite(x.reshape(len(x), -1), path, what)
    return x


class Wesad:
    """WESAD: ``ROOT/SX/SX.pkl`` per subject (see the module docstring).

    Parameters
    ----------
    root
        The folder holding ``S2/``, ``S3/`` …

    Examples
    --------
    >>> Wesad.WRIST["EDA"][:2]
    ('EDA', ('eda',))
    """

    name = "wesad"
    WRIST = {"BVP": ("PPG", ("ppg",), ("au",), 64.0), "EDA": ("EDA", ("eda",), ("uS",), 4.0),
             "TEMP": ("TEMP", ("temp",), ("degC",), 4.0), "ACC": ("ACC", ("acc_x", "acc_y", "acc_z"), ("g",) * 3, 32.0)}
    CHEST = {"ECG": ("ECG", ("ecg",), ("mV",)), "Resp": ("RESP", ("resp",), ("%",))}
    LABEL_RATE = 700.0

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = require_dir(root, "WESAD")

    def subjects(self) -> list[str]:
        found = sorted((p.name for p in self.root.iterdir() if p.is_dir() and re.fullmatch(r"S\d+", p.name)),
                       key=lambda s: int(s[1:]))
        if not found:
            raise DatasetError(f"{self.root}: no WESAD subject folders (S2, S3 …) found")
        return found

    def load(self, subject: str) -> Recording:
        path = self.root / subject / f"{subject}.pkl"
        doc = read_array_pickle(path)
        tracks = []
        for key, (kind, ch, units, fs) in self.WRIST.items():
            x = _numbers(_get(doc, "signal", "wrist", key, path=path), path, f"signal/wrist/{key}")
            x = x.reshape(len(x), -1)
            if x.shape[1] != len(ch):
                raise DatasetError(f"{path}: signal/wrist/{key} has {x.shape[1]} columns, expected {len(ch)}")
            if kind == "ACC":
                x = x / 64.0
            tracks.append(Track(stream(subject, f"wrist-{key.lower()}", kind, ch, units, fs, self.name), x,
                                np.arange(len(x)) / fs))
        chest = _get(doc, "signal", "chest", path=path)
        for key, (kind, ch, units) in self.CHEST.items():
            if isinstance(chest, dict) and key in chest:
                x = _numbers(chest[key], path, f"signal/chest/{key}")
                x = x.reshape(len(x), -1)[:, :1]
                tracks.append(Track(stream(subject, f"chest-{key.lower()}", kind, ch, units, 700.0, self.name), x,
                                    np.arange(len(x)) / 700.0))
        raw = _numbers(_get(doc, "label", path=path), path, "label").reshape(-1)
        t, v = _steps(np.arange(raw.size) / self.LABEL_RATE, raw)
        binary = np.where(v == 2, 1.0, np.where(v == 1, 0.0, np.nan))
        labels = Labels(t, binary, "stress", ("baseline", "stress"), end=raw.size / self.LABEL_RATE)
        return Recording(subject, tracks, labels, {"raw_labels": Labels(t, v, "condition")})


#: CASE's eight clips by the ``video`` id of its files (Sharma et al. 2019, Table 1; the other ids
#: are the start video and the blue screen shown between clips)
CASE_VIDEOS = {1: "amusing-1", 2: "amusing-2", 3: "boring-1", 4: "boring-2", 5: "relaxed-1", 6: "relaxed-2",
               7: "scary-1", 8: "scary-2"}


class Case:
    """CASE: ``ROOT/physiological/sub_N.csv`` and ``ROOT/annotations/sub_N.csv``.

    The default label is high arousal (the joystick's arousal > 5) during the eight clips; the
    blue screen between clips and the start video (about 39 % of a session, the joystick resting
    at exactly 5.0) are left unlabelled, not counted as low arousal. ``label_sets``: ``boring``
    (1 during CASE's two boring clips, 0 during the six others, unlabelled elsewhere: ``--label
    boring``), ``valence`` (valence > 5 during the clips) and ``video`` (the video id itself, NaN
    between clips).

    Parameters
    ----------
    root
        The folder holding ``physiological/`` and ``annotations/`` (CASE's ``data/interpolated``).

    Examples
    --------
    >>> sorted(CASE_VIDEOS.values())[:3]
    ['amusing-1', 'amusing-2', 'boring-1']
    """

    name = "case"
    label_names = ("boring", "valence", "video")
    SIGNALS = {"bvp": ("PPG", ("ppg",), ("%",)), "gsr": ("EDA", ("eda",), ("uS",)),
               "skt": ("TEMP", ("temp",), ("degC",)), "ecg": ("ECG", ("ecg",), ("mV",)),
               "rsp": ("RESP", ("resp",), ("%",))}

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = require_dir(root, "CASE")
        for sub in ("physiological", "annotations"):
            if not (self.root / sub).is_dir():
                raise DatasetError(f"{self.root / sub}: missing the {sub} folder of CASE")

    def subjects(self) -> list[str]:
        """The ``sub_N`` files found, in numeric order.

        Returns
        -------
        list of str
            Subject ids.
        """
        found = sorted((p.stem for p in (self.root / "physiological").glob("sub_*.csv")),
                       key=lambda s: int(re.sub(r"\D", "", s) or 0))
        if not found:
            raise DatasetError(f"{self.root / 'physiological'}: no sub_N.csv files")
        return found

    @staticmethod
    def _csv(path: Path, need: set[str]) -> pd.DataFrame:
        require_file(path, "CASE file")
        try:
            df = pd.read_csv(path, float_precision=SAFE_FLOATS)
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DatasetError(f"{path}: unreadable CSV ({(str(exc).splitlines() or [''])[0][:120]})") from None
        missing = need - set(df.columns)
        if missing:
            raise DatasetError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        try:
            df = df.astype(float)
        except ValueError as exc:
            raise DatasetError(f"{path}: non-numeric value ({str(exc)[:120]})") from None
        refuse_infinite(df.to_numpy(), path)
        return df

    def load(self, subject: str) -> Recording:
        """One subject's signals and labels.

        Parameters
        ----------
        subject
            ``sub_N``.

        Returns
        -------
        Recording
            Streams ``PPG``, ``EDA``, ``TEMP``, ``ECG``, ``RESP``; labels as in the class docstring.
        """
        phys = self._csv(self.root / "physiological" / f"{subject}.csv", {"daqtime", "gsr", "bvp", "skt"})
        ann_path = self.root / "annotations" / f"{subject}.csv"
        ann = self._csv(ann_path, {"jstime", "valence", "arousal", "video"})
        t = phys["daqtime"].to_numpy() / 1000.0
        fs = 1.0 / float(np.median(np.diff(t))) if len(t) > 1 and np.median(np.diff(t)) > 0 else 1000.0
        tracks = [Track(stream(subject, col, kind, ch, units, round(fs, 3), self.name),
                        phys[[col]].to_numpy(), t)
                  for col, (kind, ch, units) in self.SIGNALS.items() if col in phys.columns]
        ta = ann["jstime"].to_numpy() / 1000.0
        if len(ta) and np.any(np.diff(ta) < 0):
            raise DatasetError(f"{ann_path}: 'jstime' goes back in time")
        video = ann["video"].to_numpy()
        clip = np.isin(video, list(CASE_VIDEOS))
        end = float(ta[-1]) + 0.05 if len(ta) else None

        def labels(values, name, classes=()):
            return Labels(ta, np.where(clip, values, np.nan).astype(float), name, classes, end=end)

        arousal, valence = ann["arousal"].to_numpy(), ann["valence"].to_numpy()
        boring = np.isin(video, [k for k, v in CASE_VIDEOS.items() if v.startswith("boring")])
        label_sets = {"arousal": labels(arousal > 5.0, "arousal", ("low", "high")),
                      "boring": labels(boring, "boring", ("other clip", "boring clip")),
                      "valence": labels(valence > 5.0, "valence", ("negative", "positive")),
                      "video": labels(video, "video")}
        return Recording(subject, tracks, label_sets["arousal"], {"raw_labels": Labels(ta, arousal, "arousal")},
                         label_sets)


class Deap:
    """DEAP: ``ROOT/sNN.dat`` (the preprocessed Python pickles), one session per trial.

    Each of a participant's 40 trials is its own session (:meth:`sessions`), replayed with its own
    baseline taken from the trial's 3 pre-trial seconds (``window_defaults``: 20 s windows every
    2 s, the first one over the pre-trial seconds alone): the files hold the trials in video order,
    not in the order they were shown, so they are never joined into one session. The GSR channel
    is skin *resistance* in ohms; it becomes conductance in µS (10⁶ / R; non-positive readings
    are gaps). Labels: arousal rating > 5 during the trial's video (the pre-trial seconds are
    unlabelled); ``label_sets`` also has ``valence`` (> 5).

    Parameters
    ----------
    root
        The folder holding ``s01.dat`` … (``data_preprocessed_python``).

    Examples
    --------
    >>> Deap.PRE_TRIAL_S, Deap.window_defaults["first_window_s"]
    (3.0, 3.0)
    """

    name = "deap"
    label_names = ("valence",)
    FS = 128.0
    PRE_TRIAL_S = 3.0
    #: sessions are laid on one clock, this far apart (so every window has its own time)
    PAUSE_S = 10.0
    PERIPHERAL = {36: ("EDA", ("eda",), ("uS",)), 37: ("RESP", ("resp",), ("au",)),
                  38: ("PPG", ("ppg",), ("au",)), 39: ("TEMP", ("temp",), ("degC",))}
    window_defaults = {"window_s": 20.0, "hop_s": 2.0, "calibration_s": 0.0, "first_window_s": 3.0,
                       "rank_history_s": None, "label_lag_s": 0.0}

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = require_dir(root, "DEAP")

    def subjects(self) -> list[str]:
        """The ``sNN.dat`` files found.

        Returns
        -------
        list of str
            Participant ids (``s01`` …).
        """
        found = sorted(p.stem for p in self.root.glob("s[0-9]*.dat"))
        if not found:
            raise DatasetError(f"{self.root}: no DEAP files (s01.dat …) found")
        return found

    def _read(self, subject: str) -> tuple[np.ndarray, np.ndarray, Path]:
        path = self.root / f"{subject}.dat"
        doc = read_array_pickle(path)
        data = _numbers(_get(doc, "data", path=path), path, "data")
        ratings = _numbers(_get(doc, "labels", path=path), path, "labels")
        if data.ndim != 3 or data.shape[1] < 40:
            raise DatasetError(f"{path}: 'data' must be trials × 40 channels × samples, got {data.shape}")
        if ratings.shape != (data.shape[0], 4):
            raise DatasetError(f"{path}: 'labels' must be {data.shape[0]} trials × 4 ratings, got {ratings.shape}")
        return data, ratings, path

    @staticmethod
    def conductance(resistance_ohm: np.ndarray) -> np.ndarray:
        """Skin conductance in µS from resistance in ohms (NaN where the reading is not positive).

        Parameters
        ----------
        resistance_ohm
            DEAP's GSR channel.

        Returns
        -------
        ndarray
            µS.

        Examples
        --------
        >>> Deap.conductance(np.array([2e5, 0.0])).tolist()
        [5.0, nan]
        """
        r = np.asarray(resistance_ohm, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(r > 0, 1e6 / r, np.nan)

    def sessions(self, subject: str) -> list[Recording]:
        """Each trial as its own recording (``session`` ``trial-01`` …), on one clock, trials
        ``PAUSE_S`` apart.

        Parameters
        ----------
        subject
            ``sNN``.

        Returns
        -------
        list of Recording
            One per trial, in the file's (video) order.
        """
        data, ratings, _ = self._read(subject)
        n_trials, _, n = data.shape
        period = n / self.FS + self.PAUSE_S
        out = []
        for k in range(n_trials):
            t = k * period + np.arange(n) / self.FS
            tracks = []
            for c, (kind, ch, units) in self.PERIPHERAL.items():
                x = data[k, c, :].reshape(-1, 1)
                if kind == "EDA":
                    x = self.conductance(x)
                tracks.append(Track(stream(subject, kind.lower(), kind, ch, units, self.FS, self.name), x, t))
            video = k * period + self.PRE_TRIAL_S

            def step(value: float) -> Labels:
                return Labels(np.array([k * period, video]), np.array([np.nan, value]), end=k * period + n / self.FS)

            label_sets = {"arousal": step(float(ratings[k, 1] > 5.0)), "valence": step(float(ratings[k, 0] > 5.0))}
            out.append(Recording(subject, tracks, label_sets["arousal"], {"raw_labels": ratings[k], "trial": k + 1},
                                 label_sets, session=f"trial-{k + 1:02d}"))
        return out

    def load(self, subject: str) -> Recording:
        """All of a participant's trials in one recording (for looking at them; training and
        evaluation replay :meth:`sessions` one by one).

        Parameters
        ----------
        subject
            ``sNN``.

        Returns
        -------
        Recording
            The trials end to end, ``PAUSE_S`` apart; labels as in :meth:`sessions`.
        """
        trials = self.sessions(subject)
        tracks = [Track(tr.info, np.vstack([s.tracks[i].data for s in trials]),
                        np.concatenate([s.tracks[i].timestamps for s in trials]))
                  for i, tr in enumerate(trials[0].tracks)]

        def joined(name: str) -> Labels:
            parts = [s.label_sets[name] for s in trials]
            ts = np.concatenate([np.r_[p.timestamps, p.end] for p in parts])
            vs = np.concatenate([np.r_[p.values, np.nan] for p in parts])
            return Labels(ts, vs, name)

        label_sets = {name: joined(name) for name in trials[0].label_sets}
        return Recording(subject, tracks, label_sets["arousal"],
                         {"raw_labels": np.array([s.meta["raw_labels"] for s in trials])}, label_sets)


LOADERS = {"wesad": Wesad, "case": Case, "deap": Deap}

__all__ = ["CASE_VIDEOS", "Case", "Deap", "LOADERS", "Wesad", "read_array_pickle"]
