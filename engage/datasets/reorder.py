"""Recordings re-ordered in time: a training augmentation that takes the protocol's clock away.

In a lab protocol the labels follow a fixed timetable (Stress-Predict: rest, Stroop, rest,
interview, rest, hyperventilation, rest, at nearly the same minutes for everyone). A model
trained on such sessions can learn *when* stress happens instead of *what it looks like*: any
feature that drifts over a session (a baseline that adapts, a percentile rank among the last 30
minutes, skin temperature warming up) carries the clock. That model scores well leave-one-subject-
out on the same protocol and fails on a viewer whose film puts the tense scene elsewhere.

:func:`recording_shuffled` cuts a recording at every label change and at random points inside
long stretches (pieces of ``min_piece_s`` … ``max_piece_s``), and plays the pieces back in a
random order on one continuous clock: every sample of every track is kept once, with its label,
and the signal processors see each seam as a sudden change of state, as in a real session.
Trained on such copies, a model can only use what the body does.

>>> import numpy as np
>>> from engage.core import StreamInfo
>>> from engage.datasets.base import Labels, Recording, Track
>>> info = StreamInfo("s1-eda", "EDA", ("eda",), ("uS",), 1.0, "s1-eda")
>>> rec = Recording("s1", [Track(info, np.arange(30.0)[:, None], np.arange(30.0))],
...                 Labels(np.array([0.0, 10.0, 20.0]), np.array([0.0, 1.0, 0.0])))
>>> out = recording_reordered(rec, piece_edges(rec, None), order=[2, 0, 1])
>>> out.tracks[0].data[:, 0].tolist()[:12]
[20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 0.0, 1.0]
>>> out.label_at(np.array([5.0, 15.0, 25.0])).tolist()
[0.0, 0.0, 1.0]
"""

from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np

from engage.core import Chunk

from .base import Labels, Recording

__all__ = ["copy_seed", "piece_edges", "recording_reordered", "recording_shuffled"]


def _span(recording: Recording) -> tuple[float, float]:
    """Start and end of a recording, the end one sample of the fastest track after its last sample."""
    tracks = [t for t in recording.tracks if t.timestamps.size]
    if not tracks:
        raise ValueError(f"recording {recording.subject!r} has no samples to re-order")
    rates = [t.info.nominal_rate for t in tracks if t.info.nominal_rate > 0]
    step = 1.0 / max(rates) if rates else 1e-3
    return recording.start, recording.end + step


def piece_edges(recording: Recording, rng: np.random.Generator | None, min_piece_s: float = 240.0,
                max_piece_s: float = 600.0) -> np.ndarray:
    """Where to cut: the start, every label change (including to or from "no label"), random cuts
    that split any stretch longer than ``max_piece_s`` into pieces of ``min_piece_s`` …
    ``max_piece_s``, and the end.

    Parameters
    ----------
    recording
        What to cut.
    rng
        Random generator of the cuts inside long stretches (None: no random cuts).
    min_piece_s, max_piece_s
        Length of the pieces long stretches are cut into.

    Returns
    -------
    ndarray
        Sorted edges, in seconds.

    Examples
    --------
    >>> # piece_edges(rec, None)   # the start, each label change, the end
    """
    if not (np.isfinite(min_piece_s) and np.isfinite(max_piece_s) and 0 < min_piece_s <= max_piece_s):
        raise ValueError(f"need 0 < min_piece_s <= max_piece_s, got {min_piece_s!r}, {max_piece_s!r}")
    start, end = _span(recording)
    edges = [start]
    labels = recording.labels
    if labels is not None and labels.timestamps.size:
        t = np.asarray(labels.timestamps, dtype=float)
        v = np.asarray(labels.values, dtype=float)
        same = (v[1:] == v[:-1]) | (np.isnan(v[1:]) & np.isnan(v[:-1]))
        changes = [t[0]] + list(t[1:][~same]) + ([labels.end] if labels.end is not None else [])
        edges += [c for c in changes if start < c < end]
    edges.append(end)
    edges = sorted(set(edges))
    if rng is None:
        return np.array(edges)
    out = [edges[0]]
    for a, b in zip(edges[:-1], edges[1:]):
        t = a
        while b - t > max_piece_s:
            rest = b - t
            # a piece, leaving at least min_piece_s for the rest of the stretch
            t += rng.uniform(min_piece_s, min(max_piece_s, rest - min_piece_s)) if rest >= 2 * min_piece_s \
                else rest / 2.0
            out.append(t)
        out.append(b)
    return np.array(out)


def recording_reordered(recording: Recording, edges: Sequence[float], order: Sequence[int]) -> Recording:
    """The pieces between consecutive ``edges`` played back in ``order`` from the recording's
    start, each sample and label moved with its piece.

    Parameters
    ----------
    recording
        What to re-order.
    edges
        Where the pieces start and end (as :func:`piece_edges` gives them).
    order
        A permutation of the piece indices.

    Returns
    -------
    Recording
        The re-ordered copy; ``meta["reordered"]`` lists the pieces (original start, end) in
        their new order.

    Examples
    --------
    >>> # recording_reordered(rec, piece_edges(rec, None), order=[2, 0, 1])   (see the module docstring)
    """
    edges = np.asarray(edges, dtype=float)
    n = len(edges) - 1
    order = [int(k) for k in order]
    if n < 1 or sorted(order) != list(range(n)):
        raise ValueError(f"order must be a permutation of the {n} pieces, got {order}")
    start, end = _span(recording)
    if edges[0] > start or edges[-1] < end or np.any(np.diff(edges) <= 0):
        raise ValueError("edges must increase and cover the whole recording")
    new_start = {}
    t = float(edges[0])
    for k in order:
        new_start[k] = t
        t += edges[k + 1] - edges[k]
    tracks = []
    for tr in recording.tracks:
        piece = np.clip(np.searchsorted(edges, tr.timestamps, side="right") - 1, 0, n - 1)
        idx = np.concatenate([np.flatnonzero(piece == k) for k in order])
        shift = np.array([new_start[k] - edges[k] for k in range(n)])
        ts = tr.timestamps[idx] + shift[piece[idx]]
        tracks.append(Chunk(tr.info, tr.data[idx], ts))
    labels = None
    if recording.labels is not None:
        lab = recording.labels
        lt, lv = np.asarray(lab.timestamps, dtype=float), np.asarray(lab.values, dtype=float)
        ts, vs = [], []
        for k in order:  # each piece: the label in force at its start, then the steps inside it
            a, b = edges[k], edges[k + 1]
            inside = (lt > a) & (lt < b) & (lt <= (np.inf if lab.end is None else lab.end))
            pt, pv = np.r_[a, lt[inside]], np.r_[lab.at(np.array([a])), lv[inside]]
            pt = pt - a + new_start[k]  # the same arithmetic as the samples', so a step and a sample agree
            if lab.end is not None and a <= lab.end < b:  # the label holds at `end` itself, then stops
                pt, pv = np.r_[pt, np.nextafter(lab.end - a + new_start[k], np.inf)], np.r_[pv, np.nan]
            ts.append(pt)
            vs.append(pv)
        labels = Labels(np.concatenate(ts), np.concatenate(vs), lab.name, lab.classes, end=t)
    meta = dict(recording.meta)
    meta["reordered"] = [(float(edges[k]), float(edges[k + 1])) for k in order]
    return Recording(recording.subject, tracks, labels, meta)


def copy_seed(seed: int, subject: str, copy: int) -> np.random.Generator:
    """The random generator of one re-ordered copy: fixed by (seed, subject, copy), whatever the
    order in which subjects and copies are processed.

    Parameters
    ----------
    seed
        The training's seed.
    subject
        The participant (and session).
    copy
        The copy's number.

    Returns
    -------
    numpy.random.Generator
        Its generator.

    Examples
    --------
    >>> bool(copy_seed(0, "S02", 1).integers(100) == copy_seed(0, "S02", 1).integers(100))
    True
    """
    return np.random.default_rng([int(seed), zlib.crc32(subject.encode()), int(copy)])


def recording_shuffled(recording: Recording, rng: np.random.Generator, min_piece_s: float = 240.0,
                       max_piece_s: float = 600.0) -> Recording:
    """The recording cut by :func:`piece_edges` and played back in a random order (see the module
    docstring). Deterministic for a given ``rng`` state.

    Parameters
    ----------
    recording
        What to re-order.
    rng
        Random generator (cuts and order).
    min_piece_s, max_piece_s
        As in :func:`piece_edges`.

    Returns
    -------
    Recording
        The re-ordered copy.

    Examples
    --------
    >>> # copy = recording_shuffled(rec, copy_seed(0, rec.subject, 0))
    """
    edges = piece_edges(recording, rng, min_piece_s, max_piece_s)
    return recording_reordered(recording, edges, rng.permutation(len(edges) - 1))
