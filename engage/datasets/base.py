"""What every dataset loader yields: a subject's :class:`Recording` (streams + labels).

A loader is a class with ``name``, ``subjects()`` (pseudonymous ids found under its root) and
``load(subject)`` returning a :class:`Recording`. A recording holds each stream as arrays
(:class:`Track`: a :class:`~engage.core.StreamInfo`, samples × channels and LSL-clock-like
timestamps in seconds) and its labels as a step function of time. ``recording.source()`` turns it
into a replay :class:`~engage.core.Source`, so datasets run through exactly the live pipeline.

Problems with the files raise :class:`DatasetError`, whose message names the file at fault.

>>> import numpy as np
>>> from engage.core import StreamInfo
>>> info = StreamInfo("s1-eda", "EDA", ("eda",), ("uS",), 4.0, "s1-eda")
>>> rec = Recording("s1", [Track(info, np.ones((8, 1)), np.arange(8) / 4.0)],
...                 Labels(np.array([0.0, 1.0]), np.array([0, 1])))
>>> rec.label_at(np.array([0.5, 1.5, 9.0])).tolist()
[0.0, 1.0, 1.0]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import pandas as pd

from engage.core import Chunk, InputFileError, StreamInfo
from engage.sensors.replay import RecordingSource

__all__ = ["Dataset", "DatasetError", "Labels", "Recording", "RecordingReplay", "SAFE_FLOATS", "Track",
           "iter_recordings", "read_text", "refuse_infinite"]


#: ``float_precision`` for every ``pandas.read_csv`` of a file we did not write. pandas 2's default
#: C float parser crashes the whole process (SIGSEGV, pandas 2.3) on an exponent with many digits
#: such as ``1e603560054328``; its round-trip parser leaves such a value as text, which the readers
#: then refuse with a typed error. pandas 3 deprecates the option, and its default parser reads
#: the value as ±inf, which :func:`refuse_infinite` turns into the same typed error.
SAFE_FLOATS = "round_trip" if int(pd.__version__.split(".")[0]) < 3 else None


def refuse_infinite(values, path: os.PathLike | str, what: str = "value") -> None:
    """Raise :class:`DatasetError` naming ``path`` and the first row holding ±inf (an overflowing
    number in a file); NaN (an empty cell) passes as a gap.

    Parameters
    ----------
    values
        Rows of numbers read from ``path``.
    path
        The file, for the message.
    what
        What a value is, for the message.

    Examples
    --------
    >>> refuse_infinite([[1.0], [float("inf")]], "EDA.csv", "sample")
    Traceback (most recent call last):
    ...
    engage.datasets.base.DatasetError: EDA.csv: sample out of range in data row 2
    """
    x = np.asarray(values, dtype=float)
    bad = np.isinf(x).reshape(len(x), -1).any(axis=1) if x.size else np.zeros(0, bool)
    if bad.any():
        raise DatasetError(f"{path}: {what} out of range in data row {int(np.flatnonzero(bad)[0]) + 1}")


class DatasetError(InputFileError):
    """A dataset folder or file that is missing, partial or malformed (the message names it)."""


_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xef\xbb\xbf", "utf-8-sig"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def read_text(path: os.PathLike | str, what: str = "file") -> str:
    """A small text file a device or a spreadsheet wrote: UTF-8, or UTF-16/32 with a byte-order
    mark; anything else is a :class:`DatasetError` naming the file.

    Parameters
    ----------
    path
        The file.
    what
        What the file is, for the error message.

    Returns
    -------
    str
        Its text.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "tags.csv"
    >>> _ = p.write_bytes("1495437500.5\\n".encode("utf-16"))
    >>> read_text(p)
    '1495437500.5\\n'
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    encoding = next((enc for bom, enc in _BOMS if raw.startswith(bom)), "utf-8")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: {what} is not UTF-8 or UTF-16 text ({exc.reason} at byte {exc.start})") from None


#: One stream of a recording, held in memory: a whole-recording :class:`~engage.core.Chunk`
#: (stream info, samples × channels, timestamps), validated the same way.
Track = Chunk


@dataclass(frozen=True)
class Labels:
    """A label as a step function: ``values[i]`` holds from ``timestamps[i]`` until the next one.

    Parameters
    ----------
    timestamps
        When each value starts to hold (increasing).
    values
        Floats; NaN means "no label here" (e.g. a transition or an unannotated stretch).
    name
        What the label is.
    classes
        Names of the values 0, 1 … (for plots and cards).
    end
        When the last value stops holding (None: until the end of the recording).

    Examples
    --------
    >>> Labels(np.array([0.0, 10.0]), np.array([0.0, 1.0]), end=20.0).at(np.array([5.0, 15.0, 25.0])).tolist()
    [0.0, 1.0, nan]
    """

    timestamps: np.ndarray
    values: np.ndarray
    name: str = "label"
    classes: tuple[str, ...] = ()
    end: float | None = None

    def at(self, t: np.ndarray) -> np.ndarray:
        """The label at times ``t`` (NaN before the first step, after ``end``, or where unlabelled)."""
        t = np.asarray(t, dtype=float)
        out = np.full(t.shape, np.nan)
        if self.timestamps.size == 0:
            return out
        i = np.searchsorted(self.timestamps, t, side="right") - 1
        ok = i >= 0
        if self.end is not None:
            ok &= t <= self.end
        out[ok] = np.asarray(self.values, dtype=float)[i[ok]]
        return out


@dataclass
class Recording:
    """One subject's session: streams and labels on one clock.

    Parameters
    ----------
    subject
        The pseudonymous participant id (the unit of leave-one-subject-out).
    tracks
        The streams, each a whole-recording :class:`~engage.core.Chunk`.
    labels
        The default label (the dataset's own: stress, arousal …), or None.
    meta
        Anything else the loader knows (raw labels, tags, the session's file).
    label_sets
        Other labels by name (``boring`` in CASE, ``probe:boredom`` from thought probes), chosen
        with :meth:`with_label` (``--label NAME`` on the command line).
    session
        Which session of the subject this is when a subject has several (DEAP's trials), else "".

    Examples
    --------
    >>> import numpy as np
    >>> from engage.core import StreamInfo
    >>> info = StreamInfo("s1-eda", "EDA", ("eda",), ("uS",), 4.0, "s1-eda")
    >>> rec = Recording("s1", [Track(info, np.ones((8, 1)), np.arange(8) / 4.0)],
    ...                 label_sets={"bored": Labels(np.array([0.0]), np.array([1.0]))})
    >>> rec.with_label("bored").label_at(np.array([1.0])).tolist()
    [1.0]
    """

    subject: str
    tracks: list[Track]
    labels: Labels | None = None
    meta: dict = field(default_factory=dict)
    label_sets: dict[str, Labels] = field(default_factory=dict)
    session: str = ""

    def with_label(self, name: str | None) -> "Recording":
        """This recording labelled by ``label_sets[name]`` (``None``: unchanged); a
        :class:`DatasetError` lists the labels it has when ``name`` is not one of them."""
        if name is None:
            return self
        if name not in self.label_sets:
            have = ", ".join(sorted(self.label_sets)) or "none but the default"
            raise DatasetError(f"{self.subject}: no label {name!r} in this recording (it has: {have})")
        return Recording(self.subject, self.tracks, self.label_sets[name], self.meta, self.label_sets, self.session)

    def track(self, stream_type: str) -> Track | None:
        """The first track of a stream type (``EDA``, ``BVP``, ``ACC`` …), or None."""
        return next((t for t in self.tracks if t.info.type == stream_type), None)

    @property
    def start(self) -> float:
        return min(float(t.timestamps[0]) for t in self.tracks if t.timestamps.size)

    @property
    def end(self) -> float:
        return max(float(t.timestamps[-1]) for t in self.tracks if t.timestamps.size)

    def label_at(self, t: np.ndarray) -> np.ndarray:
        """Label values at times ``t`` (NaN where unlabelled)."""
        if self.labels is None:
            return np.full(np.shape(t), np.nan)
        return self.labels.at(t)

    def source(self) -> "RecordingReplay":
        """A replay source of this recording for :class:`~engage.core.Runtime`."""
        return RecordingReplay(self)


class RecordingReplay(RecordingSource):
    """Replays a :class:`Recording` on the runtime's clock (gaps found and reported as usual).

    Parameters
    ----------
    recording
        What to replay (each track sorted by time first).

    Examples
    --------
    >>> from engage.core import StreamInfo
    >>> info = StreamInfo("s1-eda", "EDA", ("eda",), ("uS",), 4.0, "s1-eda")
    >>> RecordingReplay(Recording("s1", [Track(info, np.ones((8, 1)), np.arange(8) / 4.0)])).start_time()
    0.0
    """

    name = "dataset-replay"

    def __init__(self, recording: Recording) -> None:
        super().__init__(recording.subject)
        self.recording = recording
        for t in recording.tracks:
            order = np.argsort(t.timestamps, kind="stable")
            self.add_track(t.info, t.data[order], t.timestamps[order])


class Dataset(Protocol):
    """What a loader offers (see the module docstring)."""

    name: str
    root: Path

    def subjects(self) -> list[str]: ...

    def load(self, subject: str) -> Recording: ...


def iter_recordings(dataset: Dataset, subjects: list[str] | None = None) -> Iterator[Recording]:
    """Each subject's recording in turn.

    Parameters
    ----------
    dataset
        A loader.
    subjects
        Which (default: all).

    Yields
    ------
    Recording
        One per subject.

    Examples
    --------
    >>> # for rec in iter_recordings(StressPredict(root)): print(rec.subject, rec.end - rec.start)
    """
    for s in subjects or dataset.subjects():
        yield dataset.load(s)


def require_dir(root: str | os.PathLike, what: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: {what} root folder not found")
    return root


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{path}: missing {what}")
    return path


def stream(subject: str, name: str, stream_type: str, channels: tuple[str, ...], units: tuple[str, ...],
           rate: float, dataset: str) -> StreamInfo:
    """A :class:`StreamInfo` for a dataset stream with a stable source id."""
    return StreamInfo(f"{subject}-{name}", stream_type, channels, units, rate, f"{dataset}-{subject}-{name}",
                      viewer=subject, metadata=(("dataset", dataset),))
