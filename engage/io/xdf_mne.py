"""An XDF recording as an :class:`mne.io.Raw`, and from there a FIF, EDF or BrainVision file.

MNE holds one sampling rate, so the recording's regularly sampled numeric streams are put on the
grid of the fastest one: its samples are copied as they are, the others are interpolated
linearly onto that grid (NaN-free: where a stream has no data - before it starts, after it
ends, inside a gap - the channel holds 0 and a ``BAD_no_data`` annotation says so). Channel
types come from the stream types (``EEG`` → eeg, ``ECG`` → ecg, ``EDA``/``GSR`` → gsr,
``Respiration`` → resp, ``PPG`` → bio, anything else misc), values are scaled to SI units where
the unit says (µV, mV). Every string stream's samples become annotations: an engage event
(one JSON object) is labelled with its type (``boredom.onset``) and keeps its JSON in the
annotation's ``extras``; any other marker is labelled with its text. :func:`export` also writes
the markers as a side table (``<name>_events.tsv``: onset, duration, label, stream, json), so
nothing is lost in formats that keep only labels.

In an engage recording, only the raw streams (what the sensors gave) go into the Raw by default;
``derived=True`` adds the derived ones (heart rate, EDA features …) that are regularly sampled.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from engage.core.errors import ConfigError, InputFileError

log = logging.getLogger(__name__)

#: ``engage export --to`` formats and their file suffixes.
EXPORT_FORMATS = {"fif": "_raw.fif", "edf": ".edf", "brainvision": ".vhdr"}
#: MNE channel types of engage / LSL stream types.
MNE_TYPES = {"EEG": "eeg", "ECG": "ecg", "EMG": "emg", "EOG": "eog", "EDA": "gsr", "GSR": "gsr",
             "Respiration": "resp", "RESP": "resp", "RSP": "resp", "PPG": "bio", "Temperature": "temperature"}
_SCALES = {"uv": 1e-6, "µv": 1e-6, "μv": 1e-6, "microvolts": 1e-6, "mv": 1e-3, "millivolts": 1e-3}


def _mne():
    try:
        import mne
    except ImportError:
        raise ConfigError('reading recordings into MNE needs MNE-Python: pip install -e ".[mne]"') from None
    return mne


def _label(text: str) -> tuple[str, dict[str, Any]]:
    """An annotation's short label and extras for one marker sample."""
    text = str(text)
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("type"), str):
            return doc["type"], {"json": text}
    return text[:200], {}


def read_raw(path: str | os.PathLike, streams: Sequence[str] | None = None, derived: bool = False):
    """Read an XDF recording into an :class:`mne.io.RawArray` with its markers as annotations.

    Parameters
    ----------
    path
        The XDF file (LabRecorder, ``engage record``, ``engage live --record``).
    streams
        Only these streams (names or types); default: all.
    derived
        Also put an engage recording's regularly sampled derived streams in the Raw.

    Returns
    -------
    mne.io.RawArray
        One channel per channel of each regularly sampled numeric stream, on the grid of the
        fastest; annotations for every marker, engage event and hole.

    Example
    -------
    >>> raw = read_raw("session.xdf")                          # doctest: +SKIP
    >>> raw.ch_names[:2], raw.info["sfreq"]                    # doctest: +SKIP
    (['S01-EDA', 'S01-PPG'], 64.0)
    """
    from engage.sensors.replay import XdfReplay, gap_threshold

    mne = _mne()
    src = XdfReplay(path, streams=streams, derived=True, recorded_viewers=True)
    keep = ("raw", "derived") if derived else ("raw",)
    signals = [r for r in src.recorded if r.role in keep and not r.info.is_string and r.info.nominal_rate > 0
               and len(r.timestamps) > 1]
    markers = [r for r in src.recorded if r.info.is_string and r.role != "log"]
    if not signals:
        names = ", ".join(f"{r.info.name} ({r.info.type})" for r in src.recorded) or "none"
        raise InputFileError(f"{path}: no regularly sampled numeric stream to read into MNE (streams: {names})")
    ref = max(signals, key=lambda r: (r.info.nominal_rate, len(r.timestamps)))
    sfreq = float(ref.info.nominal_rate)
    t0 = float(ref.timestamps[0])
    end = max(float(r.timestamps[-1]) for r in signals)
    n = max(len(ref.timestamps), int(np.floor((end - t0) * sfreq)) + 1)
    grid = t0 + np.arange(n) / sfreq
    names: list[str] = []
    types: list[str] = []
    columns: list[np.ndarray] = []
    holes: list[tuple[float, float, str]] = []
    counts = Counter(label for r in signals for label in r.info.channels)
    for r in signals:
        info = r.info
        values = r.native if r.native is not None else r.data
        values = np.asarray(values, dtype=np.float64)
        threshold = gap_threshold(info.nominal_rate)
        if r is ref:
            mapped = np.zeros((n, info.channel_count))
            mapped[:len(r.timestamps)] = values
            valid = np.zeros(n, dtype=bool)
            valid[:len(r.timestamps)] = True
        else:
            mapped = np.column_stack([np.interp(grid, r.timestamps, values[:, c]) for c in range(info.channel_count)])
            # a grid point is covered when a sample lies within the gap threshold on both sides
            i = np.clip(np.searchsorted(r.timestamps, grid), 1, len(r.timestamps) - 1)
            tol = 1.0 / sfreq  # dejittered stamps may sit a hair off the grid at a stream's ends
            valid = (grid >= r.timestamps[0] - tol) & (grid <= r.timestamps[-1] + tol) & \
                (r.timestamps[i] - r.timestamps[i - 1] <= threshold)
            mapped[~valid] = 0.0
        kind = MNE_TYPES.get(info.type, MNE_TYPES.get(dict(info.metadata).get("lsl_type", ""), "misc"))
        for c, (label, unit) in enumerate(zip(info.channels, info.units)):
            scale = _SCALES.get(unit.strip().lower(), 1.0) if kind in ("eeg", "ecg", "emg", "eog") else 1.0
            names.append(label if counts[label] == 1 else f"{info.name}-{label}")
            types.append(kind)
            columns.append(np.nan_to_num(mapped[:, c] * scale))
        holes += _holes(grid, valid, info.name)
    raw = mne.io.RawArray(np.vstack(columns), mne.create_info(names, sfreq, types), verbose="error")
    onsets, labels, extras = [], [], []
    for r in markers:
        for t, row in zip(r.timestamps, r.data):
            onset = float(t) - t0
            if not 0 <= onset <= raw.times[-1]:
                continue
            label, extra = _label(row[0])
            onsets.append(onset)
            labels.append(label)
            extras.append({"stream": r.info.name, **extra})
    for start, stop, stream in holes:
        onsets.append(start)
        labels.append("BAD_no_data")
        extras.append({"stream": stream, "duration_s": stop - start})
    order = np.argsort(onsets, kind="stable")
    durations = [extras[i].get("duration_s", 0.0) if labels[i] == "BAD_no_data" else 0.0 for i in order]
    raw.set_annotations(mne.Annotations([onsets[i] for i in order], durations, [labels[i] for i in order],
                                        extras=[extras[i] for i in order]))
    return raw


def _holes(grid: np.ndarray, valid: np.ndarray, stream: str) -> list[tuple[float, float, str]]:
    """(start, stop, stream) of each run of grid points a stream does not cover (seconds from the start)."""
    if valid.all():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[1], valid.astype(np.int8), [1]])))
    t = grid - grid[0]
    step = t[1] - t[0] if len(t) > 1 else 0.0
    return [(float(t[a]), float(t[b - 1] + step), stream) for a, b in zip(edges[::2], edges[1::2])]


def export(path: str | os.PathLike, out: str | os.PathLike | None = None, to: str | None = None,
           streams: Sequence[str] | None = None, derived: bool = False, overwrite: bool = False) -> Path:
    """Write an XDF recording as FIF, EDF or BrainVision (through MNE) and its markers as a side table.

    Parameters
    ----------
    path
        The XDF file.
    out
        The file to write (default: beside ``path``, ``<stem>_raw.fif``, ``<stem>.edf`` or ``<stem>.vhdr``).
    to
        ``fif``, ``edf`` or ``brainvision`` (default: from ``out``'s suffix, else ``fif``).
    streams, derived
        As for :func:`read_raw`.
    overwrite
        Replace an existing file (default: move it to ``…_old1`` first, as recordings are).

    Returns
    -------
    Path
        The file written; the markers are in ``<its stem>_events.tsv`` beside it.

    Example
    -------
    >>> export("s.xdf", to="edf")                              # doctest: +SKIP
    PosixPath('s.edf')
    """
    from engage.record.naming import free_target

    mne = _mne()
    path = Path(path)
    if to is None:
        suffix = Path(out).suffix.lower() if out is not None else ""
        to = {".fif": "fif", ".edf": "edf", ".vhdr": "brainvision"}.get(suffix, "fif")
    if to not in EXPORT_FORMATS:
        raise ConfigError(f"export format {to!r}: use one of {', '.join(EXPORT_FORMATS)}")
    target = Path(out) if out is not None else path.with_name(path.stem + EXPORT_FORMATS[to])
    raw = read_raw(path, streams, derived)
    free = free_target(target, overwrite)
    try:
        with warnings.catch_warnings(record=True) as caught:  # e.g. pybv on non-voltage units: logged, not printed
            warnings.simplefilter("always")
            if to == "fif":
                raw.save(free.path, overwrite=True, verbose="error")
            else:
                mne.export.export_raw(free.path, raw, fmt=to, overwrite=True, verbose="error")
        for w in caught:
            log.info("export %s: %s", to, w.message)
    except (ImportError, ModuleNotFoundError) as exc:
        free.restore()
        raise ConfigError(f"exporting {to} needs {exc.name or exc}: pip install -e \".[mne]\"") from None
    except (ValueError, RuntimeError, OSError) as exc:
        free.restore()
        raise InputFileError(f"{path}: cannot export as {to}: {exc}") from None
    table = free.path.with_name(free.path.name.split(".")[0].removesuffix("_raw") + "_events.tsv")
    with open(table, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["onset", "duration", "label", "stream", "json"])
        for a in raw.annotations:
            extras = a.get("extras") or {}
            w.writerow([f"{a['onset']:.6f}", f"{a['duration']:.6f}", a["description"], extras.get("stream", ""),
                        extras.get("json", "")])
    log.info("exported %s to %s (%s) and %s", path, free.path, to, table)
    return free.path
