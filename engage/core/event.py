"""Events: what the engagement layer tells the narrative layer (and every log).

An event has a type (``boredom.onset``, ``boredom.offset``, ``arousal.high``, ``arousal.low``,
``attention.lost``, ``attention.regained``, ``sensor.gap``, ``scene.start``, ``marker`` …), a
timestamp on the LSL clock, a viewer id, a confidence in [0, 1] and the evidence (feature
values) behind it. It serialises as one JSON object on one line.

>>> e = Event("boredom.onset", 12.5, "viewer-1", 0.8, {"boredom": 0.71}, source="rules")
>>> e.to_json()
'{"confidence":0.8,"evidence":{"boredom":0.71},"source":"rules","timestamp":12.5,"type":"boredom.onset","viewer":"viewer-1"}'
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

#: Event types the engagement layer emits; others (``marker``, ``scene.*``) may be added freely.
ENGAGEMENT_EVENT_TYPES = (
    "boredom.onset",
    "boredom.offset",
    "arousal.high",
    "arousal.low",
    "attention.lost",
    "attention.regained",
)

#: The viewer id of a group of viewers watching one film together: the group's engagement stream, its
#: events (``group.boredom.onset`` …) and the decisions made for the group carry it. No person may have it.
GROUP_VIEWER = "group"


def _clean(value: Any, digits: int) -> Any:
    """Make a value JSON-safe and stable: round floats, NaN → None, numpy → Python."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _clean(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, digits) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, digits)
    return str(value)


@dataclass(frozen=True)
class Event:
    type: str
    timestamp: float
    viewer: str
    confidence: float = 1.0
    evidence: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "timestamp": _clean(float(self.timestamp), 6),
            "viewer": self.viewer,
            "confidence": _clean(float(self.confidence), 4),
            "evidence": _clean(dict(self.evidence), 4),
            "source": self.source,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Event":
        d = json.loads(text)
        return cls(d["type"], float(d["timestamp"]), d["viewer"], float(d.get("confidence", 1.0)),
                   d.get("evidence", {}), d.get("source", ""))
