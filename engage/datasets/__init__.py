"""Dataset loaders: subjects' recordings as streams plus labels.

>>> sorted(DATASETS)
['case', 'deap', 'stress-predict', 'wesad', 'xdf']
>>> open_dataset("nope", ".")
Traceback (most recent call last):
...
engage.datasets.base.DatasetError: unknown dataset 'nope' (known: case, deap, stress-predict, wesad, xdf)
"""

from __future__ import annotations

import os

from .base import Dataset, DatasetError, Labels, Recording, RecordingReplay, Track, iter_recordings
from .e4 import StressPredict, load_e4_folder, read_e4_ibi, read_e4_signal
from .public import Case, Deap, Wesad
from .xdf import XdfSessions

DATASETS = {"stress-predict": StressPredict, "wesad": Wesad, "case": Case, "deap": Deap, "xdf": XdfSessions}


def open_dataset(name: str, root: str | os.PathLike) -> Dataset:
    """The loader of dataset ``name`` over the folder ``root``.

    Parameters
    ----------
    name
        One of :data:`DATASETS` (``stress-predict``, ``wesad``, ``case``, ``deap``, ``xdf``).
    root
        The dataset's folder.

    Returns
    -------
    Dataset
        Its loader: ``subjects()``, ``load(subject)``.

    Examples
    --------
    >>> open_dataset("wesad", "/nonexistent")
    Traceback (most recent call last):
    ...
    engage.datasets.base.DatasetError: /nonexistent: WESAD root folder not found
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r} (known: {', '.join(sorted(DATASETS))})")
    return DATASETS[name](root)


class RecordingFiles:
    """Recordings without labels given one by one: Empatica E4 export folders and XDF files
    (``engage score``). A subject is the folder's or file's name.

    Parameters
    ----------
    paths
        E4 export folders (with ``EDA.csv``, ``BVP.csv`` …) and ``.xdf`` files.

    Examples
    --------
    >>> RecordingFiles(["missing.xdf"])
    Traceback (most recent call last):
    ...
    engage.datasets.base.DatasetError: missing.xdf: neither an E4 export folder nor an .xdf file
    """

    name = "files"

    def __init__(self, paths) -> None:
        from pathlib import Path

        self.paths: dict[str, Path] = {}
        for p in map(Path, paths):
            e4 = p.is_dir() and any((p / f"{s}.csv").is_file() for s in ("EDA", "BVP"))
            if not e4 and not (p.is_file() and p.suffix.lower() == ".xdf"):
                raise DatasetError(f"{p}: neither an E4 export folder nor an .xdf file")
            name, k = p.stem if p.is_file() else p.name, 2
            while name in self.paths:
                name, k = f"{p.stem if p.is_file() else p.name}-{k}", k + 1
            self.paths[name] = p
        self.root = Path(os.path.commonpath([str(p.resolve()) for p in self.paths.values()])) if self.paths else Path(".")

    def subjects(self) -> list[str]:
        return list(self.paths)

    def load(self, subject: str) -> Recording:
        p = self.paths[subject]
        if p.is_dir():
            return Recording(subject, load_e4_folder(p, subject, "e4"))
        return XdfSessions(p.parent).load_path(p, subject)


def open_recordings(paths) -> RecordingFiles:
    """Unlabelled recordings by path (see :class:`RecordingFiles`).

    Parameters
    ----------
    paths
        E4 export folders and ``.xdf`` files.

    Returns
    -------
    RecordingFiles
        A loader with one subject per path.
    """
    return RecordingFiles(paths)


__all__ = ["Case", "DATASETS", "Dataset", "DatasetError", "Deap", "Labels", "Recording", "RecordingFiles",
           "RecordingReplay", "StressPredict", "Track", "Wesad", "XdfSessions", "iter_recordings", "load_e4_folder",
           "open_dataset", "open_recordings", "read_e4_ibi", "read_e4_signal"]
