"""XDF sessions labelled by markers: ``label=`` markers, and thought-probe answers.

Every ``*.xdf`` under the root is one subject's session (subject id = file stem).

* **Label markers**: a string stream of type ``Markers`` (or the one named ``marker_stream``)
  with ``label=VALUE`` (e.g. ``label=1``, ``label=0``) sets the default label from its timestamp
  on; ``label=`` with no value (or ``label=nan``) ends the labelled stretch.
* **Thought probes** (:mod:`engage.events.probes`): the ``probe.answer`` events a session records
  on its ``engage-events`` stream (JSON) become ``label_sets`` ``probe:<question>`` (``--label
  probe:boredom``): an answer in the upper part of its scale is 1 (5-7 of 1-7: bored), in the
  lower part 0 (1-3), the midpoint is left out; it labels the :data:`PROBE_SPAN_S` seconds centred
  on the probe ("how bored are you right now?" describes the last half minute and the moment), up
  to the next probe. ``probe:<question>:value`` keeps the answer itself; ``meta["probes"]`` lists
  every answer (time shown, question, value, response time) for reports.

Other markers are ignored. Streams the pipeline derives (heart rate, features, engagement …),
which ``engage live --record`` also writes, are left out: training replays the raw signals
through the same processors.

>>> parse_label_marker("label=1"), parse_label_marker("scene.start")
(1.0, None)
>>> probe_label(6, (1, 7)), probe_label(4, (1, 7)), probe_label(2, (1, 7))
(1.0, nan, 0.0)
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from engage.sensors.replay import XdfReplay

from .base import DatasetError, Labels, Recording, Track, require_dir

__all__ = ["DERIVED_TYPES", "PROBE_SPAN_S", "XdfSessions", "parse_label_marker", "probe_label", "probe_labels"]

#: seconds of session a probe answer labels, centred on the probe
PROBE_SPAN_S = 60.0
#: stream types engage derives from raw signals (recorded by ``engage live --record``; recomputed on replay)
DERIVED_TYPES = frozenset({"Engagement", "EngagementRules", "ArousalModel", "HeartRate", "HRV", "EDAFeatures",
                           "FaceFeatures", "Features", "FeaturesRelative", "WristFeatures", "WristFeaturesRelative",
                           "RespirationRate", "SignalQuality", "RppgHeartRate"})


def probe_label(value: float, scale: tuple[float, float]) -> float:
    """An answer as a binary label: 1 in the upper part of the scale, 0 in the lower part, NaN at its midpoint.

    Parameters
    ----------
    value
        The answer.
    scale
        The question's lowest and highest answer.

    Returns
    -------
    float
        1.0, 0.0 or NaN.

    Examples
    --------
    >>> probe_label(1, (0, 1)), probe_label(0, (0, 1))
    (1.0, 0.0)
    """
    lo, hi = float(scale[0]), float(scale[1])
    mid = (lo + hi) / 2.0
    if value > mid:
        return 1.0
    if value < mid:
        return 0.0
    return math.nan


def probe_labels(answers: list[dict], question: str, binary: bool = True) -> Labels | None:
    """The step-function label of one question's answers (see the module docstring).

    Parameters
    ----------
    answers
        ``probe.answer`` evidence dicts with ``shown_at``, ``question``, ``value`` and ``scale``.
    question
        Which question.
    binary
        :func:`probe_label` of each answer (False: the answer itself).

    Returns
    -------
    Labels or None
        None when the question was never answered.

    Examples
    --------
    >>> lab = probe_labels([{"shown_at": 100.0, "question": "boredom", "value": 6, "scale": [1, 7]}], "boredom")
    >>> lab.at(np.array([60.0, 90.0, 129.0, 131.0])).tolist()
    [nan, 1.0, 1.0, nan]
    """
    rows = sorted((float(a["shown_at"]), a) for a in answers if a.get("question") == question)
    if not rows:
        return None
    ts, vs = [], []
    half = PROBE_SPAN_S / 2.0
    for k, (t, a) in enumerate(rows):
        start = max(t - half, ts[-1] if ts else -math.inf)
        end = min(t + half, rows[k + 1][0] - half if k + 1 < len(rows) else math.inf)
        if end <= start:
            continue
        value = probe_label(float(a["value"]), a.get("scale", (1, 7))) if binary else float(a["value"])
        if ts and ts[-1] == start:
            vs[-1] = value  # the previous stretch ended where this one starts
        else:
            ts.append(start), vs.append(value)
        ts.append(end), vs.append(math.nan)
    return Labels(np.array(ts), np.array(vs), f"probe:{question}", ("no", "yes") if binary else ())


def _probe_answer(text: str) -> dict | None:
    if '"probe.answer"' not in text:
        return None
    try:
        doc = json.loads(text)
        ev = doc["evidence"]
        if doc.get("type") != "probe.answer":
            return None
        answer = {"shown_at": float(ev["shown_at"]), "question": str(ev["question"]), "value": float(ev["value"]),
                  "scale": [float(x) for x in ev.get("scale", (1, 7))][:2], "rt_s": float(ev.get("rt_s", math.nan)),
                  "viewer": str(doc.get("viewer", "")), "answered_at": float(doc.get("timestamp", math.nan))}
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    if not (math.isfinite(answer["shown_at"]) and math.isfinite(answer["value"]) and len(answer["scale"]) == 2):
        return None
    return answer


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
        tracks, lt, lv, answers = [], [], [], []
        for tr in replay.recorded:  # every stream, with its role (raw, or engage's derived, events, log)
            info = tr.info
            is_markers = info.is_string and (info.name == self.marker_stream if self.marker_stream
                                             else info.type == "Markers" or tr.role == "events")
            if is_markers:
                for t, row in zip(tr.timestamps, tr.data):
                    text = str(row[0])
                    answer = _probe_answer(text)
                    if answer is not None:
                        answers.append(answer)
                        continue
                    try:
                        v = parse_label_marker(text)
                    except DatasetError as exc:
                        raise DatasetError(f"{path}: stream {info.name!r} at {t:.3f} s: {exc}") from None
                    if v is not None:
                        lt.append(float(t)), lv.append(v)
                continue
            if not info.is_string and tr.role == "raw" and info.type not in DERIVED_TYPES:
                tracks.append(Track(info, np.asarray(tr.data, dtype=float), tr.timestamps))
        if not tracks:
            raise DatasetError(f"{path}: no numeric streams of raw signals")
        order = np.argsort(lt, kind="stable")
        labels = Labels(np.array(lt)[order], np.array(lv)[order], "label") if lt else None
        viewers = sorted({a["viewer"] for a in answers})
        if len(viewers) > 1:
            raise DatasetError(f"{path}: probe answers from {len(viewers)} viewers ({', '.join(viewers)}); "
                               "one viewer per session file")
        label_sets = {}
        for q in sorted({a["question"] for a in answers}):
            label_sets[f"probe:{q}"] = probe_labels(answers, q)
            label_sets[f"probe:{q}:value"] = probe_labels(answers, q, binary=False)
        return Recording(subject, tracks, labels, {"path": str(path), "probes": answers}, label_sets)
