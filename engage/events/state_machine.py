"""The engagement state machine: scores in, events out, with hysteresis, dwell and a confidence gate.

Each dimension is a two-state machine. It switches *on* when its score has stayed at or beyond
the on-threshold for ``min_dwell_s`` with confidence ≥ ``min_confidence`` throughout, and *off*
when it has stayed beyond the off-threshold as long; the gap between the thresholds keeps a
score hovering near one threshold from flapping. After an event, the same dimension stays quiet
for ``refractory_s``. Low confidence never produces an event ("not sure" rather than a guess).

========== ================= ==================== ===========
dimension  on (event)        off (event)          thresholds
========== ================= ==================== ===========
boredom    boredom.onset     boredom.offset       ≥0.65 / ≤0.45
arousal    arousal.high      arousal.low          ≥0.70 / ≤0.50
attention  attention.lost    attention.regained   ≤0.40 / ≥0.60
========== ================= ==================== ===========

Every event's evidence names the score, the threshold, the dwell and the relative features of
the moment it was decided (the ``FeaturesRelative`` row with the event's timestamp, or the last
one before it), plus a one-line ``reason`` and a stable ``reason_code``
(``<dimension>.<on|off>.threshold_held``). Each switch is also kept as a typed
:class:`Transition` in ``history``; a NaN score (a model that does not estimate that dimension)
never switches anything. ``suppressed`` counts, per reason code, the switches held back by the
confidence gate (``gate.low_confidence``) or the refractory period (``gate.refractory``).

>>> sm = EngagementStateMachine()
>>> [d.name for d in sm.dimensions]
['boredom', 'arousal', 'attention']
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass

from engage.core import Chunk, Processor, StreamInfo


@dataclass(frozen=True)
class Dimension:
    name: str
    on_event: str
    off_event: str
    on_threshold: float
    off_threshold: float
    inverted: bool = False  # True when *low* scores switch it on (attention lost)

    def beyond_on(self, score: float) -> bool:
        return score <= self.on_threshold if self.inverted else score >= self.on_threshold

    def beyond_off(self, score: float) -> bool:
        return score >= self.off_threshold if self.inverted else score <= self.off_threshold


DEFAULT_DIMENSIONS = (
    Dimension("boredom", "boredom.onset", "boredom.offset", 0.65, 0.45),
    Dimension("arousal", "arousal.high", "arousal.low", 0.70, 0.50),
    Dimension("attention", "attention.lost", "attention.regained", 0.40, 0.60, inverted=True),
)


@dataclass(frozen=True)
class Transition:
    """One switch of one dimension for one viewer: the typed form of an emitted event."""

    viewer: str
    dimension: str
    event_type: str
    timestamp: float
    active: bool
    score: float
    threshold: float
    dwell_s: float
    confidence: float
    reason_code: str


class _DimState:
    def __init__(self) -> None:
        self.active = False
        self.pending_since: float | None = None
        self.pending_conf: list[float] = []
        self.last_event: float | None = None


class EngagementStateMachine(Processor):
    name = "state-machine"

    def __init__(self, dimensions=DEFAULT_DIMENSIONS, min_dwell_s: float = 5.0, refractory_s: float = 15.0,
                 min_confidence: float = 0.5) -> None:
        self.dimensions = tuple(dimensions)
        self.min_dwell_s = min_dwell_s
        self.refractory_s = refractory_s
        self.min_confidence = min_confidence
        self._states: dict[tuple[str, str], _DimState] = {}
        # per viewer: the FeaturesRelative rows not yet behind the scores (the pipeline hands the state machine
        # each row before the model scores it, so a score at t finds the row of t)
        self._features: dict[str, deque[tuple[float, tuple[str, ...], object]]] = {}
        self.state: dict[str, dict[str, bool]] = {}
        self.history: list[Transition] = []
        self.suppressed: Counter = Counter()

    def accepts(self, info: StreamInfo) -> bool:
        return info.type in ("Engagement", "FeaturesRelative")

    def process(self, chunk: Chunk) -> list[Chunk]:
        viewer = chunk.info.viewer
        if chunk.info.type == "FeaturesRelative":
            rows = self._features.setdefault(viewer, deque(maxlen=86400))  # (bounded: a day of rows without scores)
            rows.extend((float(t), chunk.info.channels, row) for t, row in zip(chunk.timestamps, chunk.data))
            return []
        names = chunk.info.channels
        for t, row in zip(chunk.timestamps, chunk.data):
            values = dict(zip(names, (float(v) for v in row)))
            rows = self._features.get(viewer)
            while rows and len(rows) > 1 and rows[1][0] <= t:  # the rows before the one in force at t are done
                rows.popleft()
            for dim in self.dimensions:
                self._update(viewer, dim, float(t), values)
        return []

    def _features_at(self, viewer: str, t: float) -> dict[str, float]:
        rows = self._features.get(viewer)
        if not rows or rows[0][0] > t:
            return {}
        _, channels, row = rows[0]
        return dict(zip(channels, (float(v) for v in row)))

    def _update(self, viewer: str, dim: Dimension, t: float, values: dict[str, float]) -> None:
        st = self._states.setdefault((viewer, dim.name), _DimState())
        score, conf = values.get(dim.name, math.nan), values.get("confidence", math.nan)
        if not math.isfinite(score):
            st.pending_since, st.pending_conf = None, []
            return
        wants_switch = dim.beyond_off(score) if st.active else dim.beyond_on(score)
        if wants_switch and not conf >= self.min_confidence:
            self.suppressed["gate.low_confidence"] += 1
        if not wants_switch or not conf >= self.min_confidence:
            st.pending_since, st.pending_conf = None, []
            return
        if st.pending_since is None:
            st.pending_since = t
        st.pending_conf.append(conf)
        if t - st.pending_since < self.min_dwell_s:
            return
        if st.last_event is not None and t - st.last_event < self.refractory_s:
            self.suppressed["gate.refractory"] += 1
            return
        st.active = not st.active
        st.last_event = t
        event_type = dim.on_event if st.active else dim.off_event
        threshold = dim.on_threshold if st.active else dim.off_threshold
        dwell = t - st.pending_since
        confidence = sum(st.pending_conf) / len(st.pending_conf)
        sign = ("≤" if dim.inverted else "≥") if st.active else ("≥" if dim.inverted else "≤")
        code = f"{dim.name}.{'on' if st.active else 'off'}.threshold_held"
        evidence = {
            "reason": f"{dim.name} {score:.2f} {sign} {threshold:.2f} for {dwell:.1f} s",
            "reason_code": code,
            dim.name: score, "threshold": threshold, "dwell_s": dwell,
            "features": self._features_at(viewer, t),
        }
        st.pending_since, st.pending_conf = None, []
        self.state.setdefault(viewer, {})[dim.name] = st.active
        self.history.append(Transition(viewer, dim.name, event_type, t, st.active, score, threshold, dwell,
                                       confidence, code))
        self.ctx.emit(event_type, t, confidence, evidence, source=self.name, viewer=viewer)
