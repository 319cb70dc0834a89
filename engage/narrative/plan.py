"""Scene plans: what the controller hands a player, one JSON object per line.

A :class:`ScenePlan` says which scene plays next and how (directives: pacing, palette, music
intensity, stakes), why it was chosen (a human ``reason`` and the ``evidence`` behind it), how
sure the policy was (``probability``), what else it could have chosen (``alternatives``) and
whether the text was rewritten, by what, and whether by an AI (``ai_generated``).
:class:`ScenePlanWriter` appends plans to a JSON-lines file (the decision log).

>>> plan = ScenePlan("viewer-1", 12.0, 1, "platform", "The Platform", "Rain.", 70.0,
...                  {"pacing": "slow"}, "story start", {}, 1.0, ())
>>> plan.to_json()[:54]
'{"ai_generated":false,"alternatives":[],"directives":{'
>>> ScenePlan.from_json(plan.to_json()) == plan
True
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, TextIO

from engage.core.errors import InputFileError
from engage.core.event import _clean

from .story import Scene

#: Intensity below this is "slow"/"low", below ``_HIGH`` "steady"/"medium", otherwise "fast"/"high".
_LOW = 0.4
_HIGH = 0.7


def directives_for(scene: Scene) -> dict[str, Any]:
    """Player directives derived from a scene's tags: pacing, palette, music intensity, stakes.

    >>> s = Scene("c", "The Chase", "", 0.9, "frantic", 60.0, "storm-black")
    >>> directives_for(s)
    {'pacing': 'fast', 'palette': 'storm-black', 'music_intensity': 0.9, 'stakes': 'high'}
    """
    x = float(scene.intensity)
    level = 0 if x < _LOW else (1 if x < _HIGH else 2)
    return {
        "pacing": ("slow", "steady", "fast")[level],
        "palette": scene.palette,
        "music_intensity": x,
        "stakes": ("low", "medium", "high")[level],
    }


@dataclass(frozen=True)
class ScenePlan:
    """One decision of the controller: the scene to play and everything behind the choice."""

    viewer: str
    timestamp: float
    episode: int
    scene: str
    title: str
    text: str
    duration_s: float
    directives: Mapping[str, Any]
    reason: str
    evidence: Mapping[str, Any]
    probability: float
    alternatives: tuple[str, ...]
    rewritten: bool = False
    rewritten_by: str | None = None
    ai_generated: bool = False

    def __post_init__(self) -> None:
        if not (0.0 <= self.probability <= 1.0):
            raise ValueError(f"scene plan for {self.scene!r}: probability must be within [0, 1], "
                             f"got {self.probability}")
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"scene plan for {self.scene!r}: duration_s must be positive, got {self.duration_s}")
        if self.rewritten_by is not None and not self.rewritten:
            raise ValueError(f"scene plan for {self.scene!r}: rewritten_by given but rewritten is False")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: floats rounded (timestamps to 6 digits, the rest to 4), NaN → None."""
        return {
            "viewer": self.viewer,
            "timestamp": _clean(float(self.timestamp), 6),
            "episode": int(self.episode),
            "scene": self.scene,
            "title": self.title,
            "text": self.text,
            "duration_s": _clean(float(self.duration_s), 4),
            "directives": _clean(dict(self.directives), 4),
            "reason": self.reason,
            "evidence": _clean(dict(self.evidence), 4),
            "probability": _clean(float(self.probability), 4),
            "alternatives": list(self.alternatives),
            "rewritten": bool(self.rewritten),
            "rewritten_by": self.rewritten_by,
            "ai_generated": bool(self.ai_generated),
        }

    def to_json(self) -> str:
        """One line of JSON with sorted keys and compact separators (stable across runs)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ScenePlan":
        """The inverse of :meth:`to_dict` (for reading decision logs back)."""
        return cls(
            viewer=str(d["viewer"]), timestamp=float(d["timestamp"]), episode=int(d["episode"]),
            scene=str(d["scene"]), title=str(d["title"]), text=str(d["text"]), duration_s=float(d["duration_s"]),
            directives=dict(d["directives"]), reason=str(d["reason"]), evidence=dict(d["evidence"]),
            probability=float(d["probability"]), alternatives=tuple(d["alternatives"]),
            rewritten=bool(d.get("rewritten", False)), rewritten_by=d.get("rewritten_by"),
            ai_generated=bool(d.get("ai_generated", False)),
        )

    @classmethod
    def from_json(cls, text: str) -> "ScenePlan":
        return cls.from_dict(json.loads(text))


class ScenePlanWriter:
    """A sink writing each plan it is called with as one JSON line, flushed at once so a crash
    loses nothing. ``target`` is a path (appended to unless ``append=False``; parent folders
    are created) or an open text stream (left open on :meth:`close`).

    >>> import io
    >>> buf = io.StringIO()
    >>> with ScenePlanWriter(buf) as write:
    ...     write(ScenePlan("v", 1.0, 1, "a", "A", "", 60.0, {}, "start", {}, 1.0, ()))
    >>> buf.getvalue().count("\\n"), write.written
    (1, 1)
    """

    def __init__(self, target: str | Path | TextIO, append: bool = True) -> None:
        self.written = 0
        if isinstance(target, (str, Path)):
            self.path: Path | None = Path(target)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: TextIO | None = open(self.path, "a" if append else "w", encoding="utf-8")
            self._owns = True
        else:
            self.path = None
            self._file = target
            self._owns = False

    def __call__(self, plan: ScenePlan) -> None:
        if self._file is None:
            raise ValueError(f"ScenePlanWriter({self.path or 'stream'}) is closed")
        self._file.write(plan.to_json() + "\n")
        self._file.flush()
        self.written += 1

    def close(self) -> None:
        if self._file is not None and self._owns:
            self._file.close()
        self._file = None

    def __enter__(self) -> "ScenePlanWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_scene_plans(path: str | Path | TextIO) -> list[ScenePlan]:
    """Read a decision log written by :class:`ScenePlanWriter`; :class:`InputFileError` names
    the file and line of anything that is not a scene plan. Blank lines are skipped; an open
    text stream is read and closed.

    >>> import io
    >>> read_scene_plans(io.StringIO(""))
    []
    """
    plans = []
    name = getattr(path, "name", None) if not isinstance(path, (str, Path)) else str(path)
    try:
        stream = open(path, encoding="utf-8") if isinstance(path, (str, Path)) else path
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read scene plans: {exc.strerror or exc}") from None
    with stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                plans.append(ScenePlan.from_json(line))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise InputFileError(f"{name or '<stream>'}: line {number} is not a scene plan: "
                                     f"{type(exc).__name__}: {exc}") from None
    return plans
