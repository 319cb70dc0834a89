"""Empatica E4 exports and the Stress-Predict dataset.

An E4 export folder holds one CSV per signal: row 1 the UNIX start time (one value per column),
row 2 the sample rate, then the samples (``BVP`` 64 Hz → a ``PPG`` stream, ``EDA`` 4 Hz µS, ``TEMP`` 4 Hz °C,
``ACC`` 32 Hz in 1/64 g, ``HR`` 1 Hz device heart rate); ``IBI.csv`` has ``<t0>, IBI`` then rows of (seconds since
t0, inter-beat interval in s); ``tags*.csv`` one UNIX time per button press.

Stress-Predict (Iqbal et al. 2022) lays out ``Raw_data/SXX/`` E4 folders and
``Processed_data/Improved_All_Combined_hr_rsp_binary.csv`` with a 1 Hz ``Label`` per participant
(1 = stress task, 0 = baseline/rest). Timestamps are UNIX seconds, used as the recording's clock.

>>> StressPredict.name
'stress-predict'
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from engage.core.clock import MAX_TIMESTAMP_S

from .base import (SAFE_FLOATS, DatasetError, Labels, Recording, Track, read_text, refuse_infinite, require_dir,
                   require_file, stream)

__all__ = ["E4_SIGNALS", "StressPredict", "load_e4_folder", "read_e4_ibi", "read_e4_signal", "read_e4_tags"]

#: file → (stream type, channels, units, scale)
E4_SIGNALS = {
    "BVP": ("PPG", ("ppg",), ("nW",), 1.0),
    "EDA": ("EDA", ("eda",), ("uS",), 1.0),
    "TEMP": ("TEMP", ("temp",), ("degC",), 1.0),
    "ACC": ("ACC", ("acc_x", "acc_y", "acc_z"), ("g", "g", "g"), 1.0 / 64.0),
    "HR": ("DeviceHR", ("hr_bpm",), ("bpm",), 1.0),
}


def read_e4_signal(path: str | os.PathLike, n_channels: int) -> tuple[np.ndarray, np.ndarray, float]:
    """One E4 signal CSV → samples, timestamps and rate.

    Parameters
    ----------
    path
        ``EDA.csv``, ``BVP.csv`` … (row 1: start time per column, row 2: rate, then samples).
    n_channels
        Columns expected (3 for ``ACC.csv``).

    Returns
    -------
    tuple
        Samples × channels, UNIX timestamps, rate in Hz.

    Raises
    ------
    DatasetError
        Naming the file: not text, not numbers, a start time or rate out of range.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "EDA.csv"
    >>> _ = p.write_text("100.0\\n4.0\\n0.5\\n0.6\\n")
    >>> x, t, fs = read_e4_signal(p, 1)
    >>> t.tolist(), fs
    ([100.0, 100.25], 4.0)
    """
    path = Path(path)
    require_file(path, "E4 signal file")
    text = read_text(path, "E4 signal file")
    try:
        raw = pd.read_csv(io.StringIO(text), header=None, skipinitialspace=True, dtype=float,
                          float_precision=SAFE_FLOATS)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DatasetError(f"{path}: not an E4 signal file ({(str(exc).splitlines() or ['empty'])[0][:120]})") from None
    if raw.shape[0] < 2:
        raise DatasetError(f"{path}: E4 signal file needs a start-time row and a sample-rate row")
    if raw.shape[1] != n_channels:
        raise DatasetError(f"{path}: expected {n_channels} column(s), found {raw.shape[1]}")
    t0, fs = float(raw.iat[0, 0]), float(raw.iat[1, 0])
    x = raw.iloc[2:].to_numpy(dtype=float)
    if not abs(t0) <= MAX_TIMESTAMP_S or not 1e-3 <= fs <= 1e5 or not abs(t0 + len(x) / fs) <= MAX_TIMESTAMP_S:
        raise DatasetError(f"{path}: bad start time {t0!r} or sample rate {fs!r} in the first two rows "
                           f"(UNIX seconds and 0.001-100000 Hz expected)")
    refuse_infinite(x, path, "sample")
    return x, t0 + np.arange(len(x)) / fs, fs


def read_e4_ibi(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``IBI.csv`` → beat times and inter-beat intervals.

    Parameters
    ----------
    path
        ``IBI.csv`` (row 1: ``<start time>, IBI``; then seconds since the start, interval).

    Returns
    -------
    tuple
        Beat times as UNIX seconds, intervals in s.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "IBI.csv"
    >>> _ = p.write_text("1000.0, IBI\\n12.5,0.81\\n13.3,0.80\\n")
    >>> [a.tolist() for a in read_e4_ibi(p)]
    [[1012.5, 1013.3], [0.81, 0.8]]
    """
    path = Path(path)
    require_file(path, "E4 IBI file")
    lines = read_text(path, "E4 IBI file").splitlines()
    if not lines or "ibi" not in lines[0].lower():
        raise DatasetError(f"{path}: first row must be '<start time>, IBI'")
    try:
        t0 = _number(lines[0].split(",")[0])
        rows = [[_number(v) for v in ln.split(",")] for ln in lines[1:] if ln.strip()]
    except ValueError as exc:
        raise DatasetError(f"{path}: malformed IBI row ({str(exc)[:120]})") from None
    bad = next((i for i, r in enumerate(rows) if len(r) != 2), None)
    if bad is not None:
        raise DatasetError(f"{path}: IBI data row {bad + 1} has {len(rows[bad])} values, expected 2")
    rows = np.array(rows, dtype=float).reshape(-1, 2)
    t = t0 + rows[:, 0]
    if not (np.abs(t) <= MAX_TIMESTAMP_S).all() or not (np.abs(rows[:, 1]) < 60).all():
        raise DatasetError(f"{path}: IBI start time or beat times outside ±{MAX_TIMESTAMP_S:g} s, or an interval "
                           "over a minute")
    return t, rows[:, 1]


_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?")


def _number(text: str) -> float:
    """A plain decimal number as a device writes it (no ``inf``, ``nan``, ``1_0`` or other digits)."""
    text = text.strip()
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f"not a number: {text[:40]!r}")
    return float(text)


def read_e4_tags(path: str | os.PathLike) -> np.ndarray:
    """A tags CSV → the button presses.

    Parameters
    ----------
    path
        ``tags.csv`` (one UNIX time per line).

    Returns
    -------
    ndarray
        Sorted unique UNIX times.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "tags.csv"
    >>> _ = p.write_text("1500.5\\n1200.0\\n")
    >>> read_e4_tags(p).tolist()
    [1200.0, 1500.5]
    """
    path = Path(path)
    text = read_text(path, "E4 tags file").split()
    try:
        tags = np.unique(np.array([_number(v) for v in text], dtype=float))
    except ValueError as exc:
        raise DatasetError(f"{path}: malformed tag ({str(exc)[:120]})") from None
    if not (np.abs(tags) <= MAX_TIMESTAMP_S).all():
        raise DatasetError(f"{path}: a tag outside ±{MAX_TIMESTAMP_S:g} s (UNIX seconds expected)")
    return tags


def load_e4_folder(folder: str | os.PathLike, subject: str, dataset: str = "e4",
                   signals: tuple[str, ...] = ("BVP", "EDA", "TEMP", "ACC", "HR")) -> list[Track]:
    """The tracks of one E4 export folder.

    ``BVP`` becomes a ``PPG`` stream, ``ACC`` is scaled to g, ``HR.csv`` (the device's own 1 Hz
    heart rate) becomes a ``DeviceHR`` stream and ``IBI.csv`` (when present) an ``IBI`` stream
    (irregular; timestamp = beat time; channel ``rr_s``). Both are the watch's estimates, kept
    apart from the ``HeartRate`` contract that engage's own beat detectors produce.

    Parameters
    ----------
    folder
        The export folder.
    subject
        The participant id the streams carry.
    dataset
        Name in the streams' source ids.
    signals
        Which signal files to read.

    Returns
    -------
    list of Track
        One per stream.

    Examples
    --------
    >>> # tracks = load_e4_folder("Raw_data/S02", "S02"); [t.info.type for t in tracks]
    """
    folder = Path(folder)
    tracks = []
    for name in signals:
        kind, channels, units, scale = E4_SIGNALS[name]
        x, t, fs = read_e4_signal(folder / f"{name}.csv", len(channels))
        tracks.append(Track(stream(subject, name.lower(), kind, channels, units, fs, dataset), x * scale, t))
    if (folder / "IBI.csv").is_file():
        bt, ibi = read_e4_ibi(folder / "IBI.csv")
        tracks.append(Track(stream(subject, "ibi", "IBI", ("rr_s",), ("s",), 0.0, dataset), ibi[:, None], bt))
    return tracks


class StressPredict:
    """The Stress-Predict dataset (Empatica E4, participants ``S01``…; stress-task labels).

    ``subjects()`` lists the participants with both a raw folder and labels.

    Parameters
    ----------
    root
        The folder holding ``Raw_data/`` and ``Processed_data/``.

    Examples
    --------
    >>> StressPredict.name
    'stress-predict'
    >>> # ds = StressPredict("../shared/data/stress_predict_e4"); rec = ds.load("S02")
    """

    name = "stress-predict"
    LABELS = Path("Processed_data") / "Improved_All_Combined_hr_rsp_binary.csv"

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = require_dir(root, "Stress-Predict")
        self.raw = self.root / "Raw_data"
        if not self.raw.is_dir():
            raise DatasetError(f"{self.raw}: missing the Raw_data folder of Stress-Predict")
        self._labels: pd.DataFrame | None = None

    def labels_table(self) -> pd.DataFrame:
        if self._labels is None:
            path = require_file(self.root / self.LABELS, "Stress-Predict label file")
            try:
                df = pd.read_csv(io.StringIO(read_text(path, "label file")), float_precision=SAFE_FLOATS)
            except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
                raise DatasetError(f"{path}: unreadable label file ({(str(exc).splitlines() or [''])[0][:120]})") \
                    from None
            need = ("Participant", "Time(sec)", "Label")
            if not set(need) <= set(df.columns):
                raise DatasetError(f"{path}: missing column(s) {', '.join(sorted(set(need) - set(df.columns)))}")
            df = df[list(need)].copy()
            for col in need:
                try:
                    df[col] = pd.to_numeric(df[col]).astype(float)
                except (ValueError, TypeError) as exc:
                    raise DatasetError(f"{path}: column {col!r}: not a number ({str(exc)[:80]})") from None
            refuse_infinite(df.to_numpy(), path)
            p, t = df["Participant"].to_numpy(), df["Time(sec)"].to_numpy()
            if not (np.isfinite(p) & (p == np.round(p)) & (p >= 0) & (p < 1e6)).all():
                raise DatasetError(f"{path}: column 'Participant' must hold participant numbers")
            if not (np.abs(t) <= MAX_TIMESTAMP_S).all():
                raise DatasetError(f"{path}: column 'Time(sec)' must hold UNIX seconds")
            self._labels = df
        return self._labels

    def subjects(self) -> list[str]:
        folders = sorted(p.name for p in self.raw.iterdir() if p.is_dir() and re.fullmatch(r"S\d+", p.name))
        labelled = {f"S{int(p):02d}" for p in self.labels_table()["Participant"].unique()}
        return [s for s in folders if s in labelled]

    def load(self, subject: str) -> Recording:
        folder = self.raw / subject
        if not folder.is_dir():
            raise DatasetError(f"{folder}: no such participant folder")
        tracks = load_e4_folder(folder, subject, self.name)
        df = self.labels_table()
        rows = df[df["Participant"] == int(subject.lstrip("S"))].sort_values("Time(sec)")
        labels = None
        if len(rows):
            t = rows["Time(sec)"].to_numpy(dtype=float)
            labels = Labels(t, rows["Label"].to_numpy(dtype=float), "stress", ("rest", "stress"), end=t[-1] + 1.0)
        tags = sorted(folder.glob("tags*.csv"))
        meta = {"tags": read_e4_tags(tags[0]).tolist() if tags else []}
        return Recording(subject, tracks, labels, meta)
