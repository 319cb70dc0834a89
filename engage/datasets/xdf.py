"""XDF sessions with labels from a marker stream.

Every ``*.xdf`` under the root is one subject's session (subject id = file stem). Labels come from
the string stream of type ``Markers`` (or the one named ``marker_stream``): a marker
``label=VALUE`` (e.g. ``label=1``, ``label=0``) sets the label from its timestamp on; ``label=``
with no value (or ``label=nan``) ends the labelled stretch. Other markers are ignored.

>>> parse_label_marker("label=1"), parse_label_marker("scene.start")
(1.0, None)
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from engage.sensors.replay import XdfReplay

from .base import DatasetError, Labels, Recording, Track, require_dir


def parse_label_marker(text: str) -> float | None:
    """The label a ``label=VALUE`` marker sets.

    Parameters
    ----------
    text
        The marker's string.

    Returns
    -------
    float or None
        The value (NaN ends labelling), or None when it is not a label marker.

    Examples
    --------
    >>> parse_label_marker("label=1"), parse_label_marker("scene.start")
    (1.0, None)
    """
    text = text.strip()
    if not text.startswith("label="):
        return None
    value = text[len("label="):].strip()
    try:
        return float(value) if value else math.nan
    except ValueError:
        raise DatasetError(f"marker {text!r}: label value is not a number") from None


class XdfSessions:
    """A folder of XDF sessions, labelled by markers (see the module docstring).

    Parameters
    ----------
    root
        The folder; every ``*.xdf`` in it is one subject's session (subject id = file stem).
    marker_stream
        The marker stream's name (default: any string stream of type ``Markers``).

    Examples
    --------
    >>> XdfSessions.name
    'xdf'
    """

    name = "xdf"

    def __init__(self, root: str | os.PathLike, marker_stream: str | None = None) -> None:
        self.root = require_dir(root, "XDF sessions")
        self.marker_stream = marker_stream

    def subjects(self) -> list[str]:
        found = sorted(p.stem for p in self.root.glob("*.xdf"))
        if not found:
            raise DatasetError(f"{self.root}: no .xdf files found")
        return found

    def load(self, subject: str) -> Recording:
        return self.load_path(self.root / f"{subject}.xdf", subject)

    def load_path(self, path: Path, subject: str) -> Recording:
        """One XDF file as the recording of ``subject``."""
        if not path.is_file():
            raise DatasetError(f"{path}: no such XDF session")
        replay = XdfReplay(path, viewer=subject)
        if replay.problem:
            raise DatasetError(f"{path}: damaged XDF file ({replay.problem})")
        tracks, lt, lv = [], [], []
        for tr in replay._tracks:
            info = tr.info
            is_markers = info.is_string and (info.name == self.marker_stream if self.marker_stream
                                             else info.type == "Markers")
            if is_markers:
                for t, row in zip(tr.timestamps, tr.data):
                    try:
                        v = parse_label_marker(str(row[0]))
                    except DatasetError as exc:
                        raise DatasetError(f"{path}: stream {info.name!r} at {t:.3f} s: {exc}") from None
                    if v is not None:
                        lt.append(float(t)), lv.append(v)
                continue
            if not info.is_string:
                tracks.append(Track(info, np.asarray(tr.data, dtype=float), tr.timestamps))
        if not tracks:
            raise DatasetError(f"{path}: no numeric streams")
        order = np.argsort(lt, kind="stable")
        labels = Labels(np.array(lt)[order], np.array(lv)[order], "label") if lt else None
        return Recording(subject, tracks, labels, {"path": str(path)})
