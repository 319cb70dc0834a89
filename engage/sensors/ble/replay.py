"""RR files replayed as a strap: Polar Sensor Logger exports and RR derived from annotated ECG.

:class:`RrReplay` publishes the same ``RR`` stream (``rr_s``, ``contact``) a live strap does,
on a virtual clock, with a ``sensor.gap`` event where beats are missing (an interval between
beat times longer than the RR interval that ends it by more than ``gap_s``).

* :meth:`RrReplay.from_polar_logger` reads ``Phone timestamp;RR-interval [ms]`` files. Rows that
  share a phone timestamp came in one notification; beat times are back-dated from it with
  :class:`~engage.sensors.ble.clock.BeatTimer`, as live.
* :meth:`RrReplay.from_annotations` reads a WFDB record's beat annotations (e.g. MIT-BIH):
  beat times are the annotated R peaks, ``rr_s`` their differences.

>>> src = RrReplay.from_polar_logger("Polar_H10_RR.txt")             # doctest: +SKIP
>>> src = RrReplay.from_annotations("mitdb_100/100")                # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from engage.core.errors import InputFileError
from engage.core.stream import IRREGULAR_RATE, StreamInfo
from engage.sensors.replay import Gap, RecordingSource

from .clock import BeatTimer

#: Annotation symbols that mark a beat (WFDB/MIT-BIH convention).
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")


def rr_stream(name: str, viewer: str = "viewer-1", source_id: str | None = None) -> StreamInfo:
    return StreamInfo(name, "RR", ("rr_s", "contact"), ("s", "bool"), IRREGULAR_RATE,
                      source_id or f"rr-file-{name}", viewer=viewer)


def rr_from_annotations(samples, fs: float, symbols=None) -> tuple[np.ndarray, np.ndarray]:
    """(beat times in s, RR in s) from annotation sample indices; ``symbols`` keeps beats only.

    >>> t, rr = rr_from_annotations([0, 360, 650, 900], 360.0, ["+", "N", "N", "V"])
    >>> t.tolist(), [round(x, 4) for x in rr.tolist()]
    ([1.8055555555555556, 2.5], [0.8056, 0.6944])
    """
    s = np.asarray(samples, dtype=np.int64)
    if symbols is not None:
        keep = np.array([sym in BEAT_SYMBOLS for sym in symbols], dtype=bool)
        s = s[keep]
    if fs <= 0:
        raise ValueError(f"sampling rate must be positive, got {fs}")
    t = s / float(fs)
    return t[1:], np.diff(t)


def _parse_time(cell: str, path: Path, line: int) -> float:
    text = cell.strip()
    try:
        return float(text)  # already seconds
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        raise InputFileError(f"{path}: line {line}: phone timestamp {text!r} is not a date-time or seconds") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


class RrReplay(RecordingSource):
    """Beat times and RR intervals as a replayed ``RR`` stream (see the module docstring)."""

    name = "rr-replay"

    def __init__(self, beat_times, rr_s, contact=None, name: str = "strap-rr", viewer: str = "viewer-1",
                 gap_s: float = 1.5) -> None:
        super().__init__(viewer)
        t = np.asarray(beat_times, dtype=np.float64)
        rr = np.asarray(rr_s, dtype=np.float64)
        if t.shape != rr.shape or t.ndim != 1:
            raise ValueError(f"{name}: {t.size} beat times but {rr.size} RR intervals")
        c = np.ones_like(t) if contact is None else np.asarray(contact, dtype=np.float64)
        info = rr_stream(name, viewer)
        diff = np.diff(t)
        missing = np.flatnonzero((diff - rr[1:] > gap_s) | (diff < 0))
        gaps = []
        for i in missing:
            d = float(diff[i])
            reason = "clock reset" if d < 0 else "no samples"
            # a live system notices missing beats once no beat came for the gap threshold
            notice = float(t[i]) + (gap_s + float(np.median(rr)) if d > 0 else 0.0)
            gaps.append(Gap(name, int(i) + 1, float(t[i]), abs(d), reason, min(notice, float(t[i + 1]))))
        self.add_track(info, np.column_stack([rr, c]), t, gaps=gaps)

    @property
    def beat_times(self) -> np.ndarray:
        return self._tracks[0].timestamps

    @classmethod
    def from_polar_logger(cls, path: str | os.PathLike, name: str | None = None, viewer: str = "viewer-1",
                          ) -> "RrReplay":
        """Read a Polar Sensor Logger RR export (``Phone timestamp;RR-interval [ms]``)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputFileError(f"{p}: cannot read RR file: {exc}") from None
        lines = text.splitlines()
        if not lines:
            raise InputFileError(f"{p}: empty file, expected a 'Phone timestamp;RR-interval [ms]' header")
        header = [h.strip().lower() for h in lines[0].split(";")]
        try:
            ti = next(i for i, h in enumerate(header) if "timestamp" in h)
            ri = next(i for i, h in enumerate(header) if h.startswith("rr"))
        except StopIteration:
            raise InputFileError(f"{p}: header {lines[0]!r} lacks 'Phone timestamp' and 'RR-interval [ms]' "
                                 f"columns (is this a Polar Sensor Logger RR file?)") from None
        groups: list[tuple[float, list[float]]] = []
        for n, raw in enumerate(lines[1:], start=2):
            if not raw.strip():
                continue
            cells = raw.split(";")
            if len(cells) <= max(ti, ri):
                raise InputFileError(f"{p}: line {n}: {len(cells)} field(s), expected {len(header)}")
            ts = _parse_time(cells[ti], p, n)
            try:
                rr_ms = float(cells[ri].strip())
            except ValueError:
                raise InputFileError(f"{p}: line {n}: RR interval {cells[ri].strip()!r} is not a number") from None
            if not math.isfinite(rr_ms) or rr_ms <= 0 or rr_ms > 10_000:
                raise InputFileError(f"{p}: line {n}: RR interval {rr_ms:g} ms is outside (0, 10000]")
            if groups and groups[-1][0] == ts:
                groups[-1][1].append(rr_ms)
            else:
                groups.append((ts, [rr_ms]))
        if not groups:
            raise InputFileError(f"{p}: no RR intervals after the header")
        timer = BeatTimer()
        times, rrs = [], []
        for ts, values in groups:
            # Polar Sensor Logger writes whole ms; the timer sums them without rounding further
            ticks = np.asarray(values) * 1.024
            times.append(timer.feed(ts, ticks))
            rrs.append(np.asarray(values) / 1000.0)
        return cls(np.concatenate(times), np.concatenate(rrs), name=name or p.stem, viewer=viewer)

    @classmethod
    def from_annotations(cls, record: str | os.PathLike, annotator: str = "atr", name: str | None = None,
                         viewer: str = "viewer-1") -> "RrReplay":
        """RR from a WFDB record's beat annotations (needs ``wfdb``)."""
        try:
            import wfdb
        except ImportError:
            raise InputFileError("reading WFDB annotations needs the 'wfdb' package (pip install wfdb)") from None
        rec = Path(record)
        try:
            ann = wfdb.rdann(str(rec), annotator)
        except Exception as exc:  # noqa: BLE001 - wfdb raises many kinds; report the file
            raise InputFileError(f"{rec}.{annotator}: cannot read annotations: {exc}") from None
        t, rr = rr_from_annotations(ann.sample, float(ann.fs), ann.symbol)
        if t.size == 0:
            raise InputFileError(f"{rec}.{annotator}: no beat annotations")
        return cls(t, rr, name=name or f"{rec.name}-rr", viewer=viewer)
