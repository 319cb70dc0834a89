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
    """The loader of dataset ``name`` over the folder ``root``."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r} (known: {', '.join(sorted(DATASETS))})")
    return DATASETS[name](root)


__all__ = ["Case", "DATASETS", "Dataset", "DatasetError", "Deap", "Labels", "Recording", "RecordingReplay",
           "StressPredict", "Track", "Wesad", "XdfSessions", "iter_recordings", "load_e4_folder", "open_dataset",
           "read_e4_ibi", "read_e4_signal"]
