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
  (``jstime`` ms, ``valence``, ``arousal`` 0.5–9.5, ``video``). Binary: arousal > 5.
* **DEAP** (Koelstra et al. 2012): ``sNN.dat`` (``data_preprocessed_python``): ``data`` 40 trials
  × 40 channels × 8064 samples at 128 Hz (channels 37–40: GSR, respiration, plethysmograph,
  temperature), ``labels`` 40 × 4 (valence, arousal, dominance, liking; 1–9). Trials are laid
  end to end with a 10 s pause between them. Binary: arousal > 5.

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
    """WESAD: ``ROOT/SX/SX.pkl`` per subject (see the module docstring)."""

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


class Case:
    """CASE: ``ROOT/physiological/sub_N.csv`` and ``ROOT/annotations/sub_N.csv``."""

    name = "case"
    SIGNALS = {"bvp": ("PPG", ("ppg",), ("%",)), "gsr": ("EDA", ("eda",), ("uS",)),
               "skt": ("TEMP", ("temp",), ("degC",)), "ecg": ("ECG", ("ecg",), ("mV",)),
               "rsp": ("RESP", ("resp",), ("%",))}

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = require_dir(root, "CASE")
        for sub in ("physiological", "annotations"):
            if not (self.root / sub).is_dir():
                raise DatasetError(f"{self.root / sub}: missing the {sub} folder of CASE")

    def subjects(self) -> list[str]:
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
            raise DatasetError(f"{path}: unreadable CSV ({exc})") from None
        missing = need - set(df.columns)
        if missing:
            raise DatasetError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        try:
            df = df.astype(float)
        except ValueError as exc:
            raise DatasetError(f"{path}: non-numeric value ({exc})") from None
        refuse_infinite(df.to_numpy(), path)
        return df

    def load(self, subject: str) -> Recording:
        phys = self._csv(self.root / "physiological" / f"{subject}.csv", {"daqtime", "gsr", "bvp", "skt"})
        ann = self._csv(self.root / "annotations" / f"{subject}.csv", {"jstime", "valence", "arousal"})
        t = phys["daqtime"].to_numpy() / 1000.0
        fs = 1.0 / float(np.median(np.diff(t))) if len(t) > 1 else 1000.0
        tracks = [Track(stream(subject, col, kind, ch, units, round(fs, 3), self.name),
                        phys[[col]].to_numpy(), t)
                  for col, (kind, ch, units) in self.SIGNALS.items() if col in phys.columns]
        ta = ann["jstime"].to_numpy() / 1000.0
        arousal = ann["arousal"].to_numpy()
        labels = Labels(ta, (arousal > 5.0).astype(float), "arousal", ("low", "high"),
                        end=float(ta[-1]) + 0.05 if len(ta) else None)
        return Recording(subject, tracks, labels, {"raw_labels": Labels(ta, arousal, "arousal")})


class Deap:
    """DEAP: ``ROOT/sNN.dat`` (preprocessed Python pickles)."""

    name = "deap"
    FS = 128.0
    PAUSE_S = 10.0
    PERIPHERAL = {36: ("EDA", ("eda",), ("au",)), 37: ("RESP", ("resp",), ("au",)),
                  38: ("PPG", ("ppg",), ("au",)), 39: ("TEMP", ("temp",), ("degC",))}

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = require_dir(root, "DEAP")

    def subjects(self) -> list[str]:
        found = sorted(p.stem for p in self.root.glob("s[0-9]*.dat"))
        if not found:
            raise DatasetError(f"{self.root}: no DEAP files (s01.dat …) found")
        return found

    def load(self, subject: str) -> Recording:
        path = self.root / f"{subject}.dat"
        doc = read_array_pickle(path)
        data = _numbers(_get(doc, "data", path=path), path, "data")
        ratings = _numbers(_get(doc, "labels", path=path), path, "labels")
        if data.ndim != 3 or data.shape[1] < 40:
            raise DatasetError(f"{path}: 'data' must be trials × 40 channels × samples, got {data.shape}")
        if ratings.shape != (data.shape[0], 4):
            raise DatasetError(f"{path}: 'labels' must be {data.shape[0]} trials × 4 ratings, got {ratings.shape}")
        n_trials, _, n = data.shape
        period = n / self.FS + self.PAUSE_S
        t = np.concatenate([k * period + np.arange(n) / self.FS for k in range(n_trials)])
        tracks = [Track(stream(subject, kind.lower(), kind, ch, units, self.FS, self.name),
                        data[:, c, :].reshape(-1, 1), t) for c, (kind, ch, units) in self.PERIPHERAL.items()]
        starts = np.arange(n_trials) * period
        # each trial's rating holds during the trial; the pauses are unlabelled
        lt = np.column_stack([starts, starts + n / self.FS]).reshape(-1)
        lv = np.column_stack([(ratings[:, 1] > 5.0).astype(float), np.full(n_trials, np.nan)]).reshape(-1)
        return Recording(subject, tracks, Labels(lt, lv, "arousal", ("low", "high")),
                         {"raw_labels": ratings})


LOADERS = {"wesad": Wesad, "case": Case, "deap": Deap}
