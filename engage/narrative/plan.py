"""Scene plans: what the controller hands a player, one JSON object per line.

A :class:`ScenePlan` says which scene plays next and how: its text, the writer's tags and media
cues (``speaker``, ``tone``, ``cast``, ``act``, ``ending``, ``media`` for video/image/audio/sfx,
every other tag under ``tags``), the story variables the scene changed and the characters' fates
it decides (``fates``: ``{character, outcome}``), the directives from the director's target
(pacing, palette, music intensity, stakes), why it was chosen (a human ``reason`` and the
``evidence`` behind it), how sure the policy was (``probability``), what else it could have chosen
(``alternatives``), the options that follow it (``upcoming``), and whether the text was
rewritten, by what, and whether by an AI (``ai_generated``). :class:`ScenePlanWriter` appends
plans to a JSON-lines file (the decision log).

The JSON form is a contract: :func:`plan_schema` returns the versioned JSON Schema shipped with
the package (``engage/narrative/schemas/scene-plan-1.schema.json``); every plan carries
``"schema": "engage.scene-plan/1"``.

>>> plan = ScenePlan("viewer-1", 12.0, 1, "platform", "The Platform", "Rain.", 70.0,
...                  {"pacing": "slow"}, "story start", {}, 1.0, ())
>>> plan.to_json()[:54]
'{"act":null,"ai_generated":false,"alternatives":[],"ca'
>>> ScenePlan.from_json(plan.to_json()) == plan
True
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, TextIO

from engage.core.errors import InputFileError
from engage.core.event import _clean

from .story import Scene

#: The version of the scene-plan contract written by this engage (``schema`` of every plan).
SCHEMA_VERSION = 1
SCHEMA_ID = f"engage.scene-plan/{SCHEMA_VERSION}"

#: Intensity below this is "slow"/"low", below ``_HIGH`` "steady"/"medium", otherwise "fast"/"high".
_LOW = 0.4
_HIGH = 0.7

#: Tags a plan carries as fields of their own; every other tag of a scene goes under ``tags``.
PARSED_TAGS = ("title", "speaker", "image", "video", "audio", "sfx", "tone", "cast", "act", "ending")
#: Tags that are media cues (each may be given several times).
MEDIA_KINDS = ("video", "image", "audio", "sfx")
#: Keys the engine adds to scenes for itself; never shown as the writer's tags.
ENGINE_KEYS = ("choice_index", "untagged", "continue", "knot", "path")


def plan_schema() -> dict[str, Any]:
    """The JSON Schema every scene plan (:meth:`ScenePlan.to_dict`) validates against.

    >>> plan_schema()["$id"]
    'urn:engage:scene-plan:1'
    """
    return json.loads(_schema_text())


@lru_cache(maxsize=1)
def _schema_text() -> str:
    return resources.files("engage.narrative").joinpath("schemas", f"scene-plan-{SCHEMA_VERSION}.schema.json").read_text(
        encoding="utf-8")


def directives_for(scene: Scene, target: float | None = None) -> dict[str, Any]:
    """Player directives: pacing, palette, music intensity and stakes, from the director's
    ``target`` intensity when there is one, otherwise from the scene's own intensity; the
    palette is always the scene's.

    >>> s = Scene("c", "The Chase", "", 0.9, "frantic", 60.0, "storm-black")
    >>> directives_for(s)
    {'pacing': 'fast', 'palette': 'storm-black', 'music_intensity': 0.9, 'stakes': 'high'}
    >>> directives_for(s, target=0.25)["pacing"]
    'slow'
    """
    x = float(scene.intensity) if target is None else float(min(1.0, max(0.0, target)))
    level = 0 if x < _LOW else (1 if x < _HIGH else 2)
    return {
        "pacing": ("slow", "steady", "fast")[level],
        "palette": scene.palette,
        "music_intensity": x,
        "stakes": ("low", "medium", "high")[level],
    }


def _option_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def media_cue(kind: str, value: Any) -> dict[str, Any]:
    """One media cue from a tag: ``# audio: rain.ogg loop volume=0.4`` → the file, then bare words
    as flags and ``key=value`` options (numbers and true/false typed); ``@ 2.5`` (or ``@2.5``) is
    when to start it, in seconds into the scene (``at``). Quote a file name that has spaces:
    ``# image: "the pier.jpg" fit=cover``.

    >>> media_cue("audio", "rain.ogg loop volume=0.4")
    {'kind': 'audio', 'src': 'rain.ogg', 'options': {'loop': True, 'volume': 0.4}}
    >>> media_cue("sfx", "door.wav @ 2.5")["options"], media_cue("sfx", "door.wav@2.5s")["options"]
    ({'at': 2.5}, {'at': 2.5})
    """
    text = str(value).strip() if not isinstance(value, bool) else ""
    try:
        words = shlex.split(text)
    except ValueError:  # an unbalanced quote: take the words as written
        words = text.split()
    if words and "@" in words[0] and not words[0].startswith("@"):  # "door.wav@2.5": the time attached
        src, _, at = words[0].rpartition("@")
        words[:1] = [src, "@" + at]
    src = words[0] if words and not words[0].startswith("@") else ""
    options: dict[str, Any] = {}
    rest = words[1:] if src else words
    i = 0
    while i < len(rest):
        w = rest[i]
        if w.startswith("@"):
            at = w[1:] or (rest[i + 1] if i + 1 < len(rest) else "")
            i += 1 if w[1:] else 2
            number = _option_value(at.rstrip("s"))
            if isinstance(number, float):
                options["at"] = number
            continue
        key, eq, val = w.partition("=")
        if key:
            options[key] = _option_value(val) if eq else True
        i += 1
    return {"kind": kind, "src": src, "options": options}


def media_cues(kind: str, value: Any) -> list[dict[str, Any]]:
    """The cues of one tag value: several files separated by commas (``# audio: bed.ogg, strings.ogg``:
    stems) are several cues, in order.

    >>> [c["src"] for c in media_cues("audio", "bed.ogg, strings.ogg loop")]
    ['bed.ogg', 'strings.ogg']
    """
    text = str(value) if not isinstance(value, bool) else ""
    parts, current, quote = [], [], ""
    for ch in text:
        if ch in "\"'" and (not quote or quote == ch):
            quote = "" if quote else ch
        if ch == "," and not quote:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [media_cue(kind, p) for p in parts if p.strip()]


def _values(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parse_fate(value: Any) -> dict[str, str] | None:
    """A ``fate`` tag: ``"Tomas dies"`` or ``"Inspector Harlow, escapes"`` → character and outcome.

    >>> parse_fate("Inspector Harlow dies")
    {'character': 'Inspector Harlow', 'outcome': 'dies'}
    """
    text = _text(value)
    if not text or not text.strip():
        return None
    if "," in text:
        who, _, what = text.rpartition(",")
    else:
        who, _, what = text.strip().rpartition(" ")
    who, what = who.strip(), what.strip()
    if not who or not what:
        return None
    return {"character": who, "outcome": what}


def fates_of(scene: Scene) -> list[dict[str, str]]:
    """The characters' fates a scene decides: each ``<name>_alive`` story variable it changed
    (``tomas_alive = false`` → Tomas ``dies``; back to true → ``lives``) and its ``fate`` tags."""
    out: list[dict[str, str]] = []
    for key, value in (scene.changes or {}).items():
        if isinstance(value, bool) and str(key).lower().endswith("_alive") and len(str(key)) > len("_alive"):
            name = str(key)[: -len("_alive")].replace("_", " ").title()
            out.append({"character": name, "outcome": "lives" if value else "dies"})
    for value in _values((scene.tags or {}).get("fate", ())):
        fate = parse_fate(value)
        if fate is not None and fate not in out:
            out.append(fate)
    return out


def scene_fields(scene: Scene) -> dict[str, Any]:
    """What a plan says about a scene apart from the decision: the parsed tags, the media cues,
    the other tags passed through, the changed story variables and the fates."""
    tags = dict(scene.tags or {})
    media = [cue for kind in MEDIA_KINDS for v in _values(tags.get(kind, ())) if v is not None
             for cue in media_cues(kind, v)]
    ending = tags.get("ending")
    rest = {k: (list(v) if isinstance(v, tuple) else v) for k, v in tags.items()
            if k not in PARSED_TAGS and k not in ENGINE_KEYS}
    title = _text(tags.get("title")) or scene.title
    return {
        "title": title,
        "intensity": float(scene.intensity),
        "tone": scene.tone,
        "speaker": _text(tags.get("speaker")),
        "cast": tuple(scene.cast),
        "act": _text(tags.get("act")),
        "ending": (scene.id if ending is True else _text(ending)) if ending not in (None, False) else None,
        "media": tuple(media),
        "tags": rest,
        "variables": dict(scene.changes or {}),
        "fates": tuple(fates_of(scene)),
    }


def option_dict(option: Scene) -> dict[str, Any]:
    """An upcoming option as a plan lists it (id, title, intensity, tone, fate_point)."""
    tags = option.tags or {}
    d: dict[str, Any] = {"id": option.id, "title": option.title, "intensity": float(option.intensity),
                         "tone": option.tone}
    if tags.get("fate_point"):
        d["fate_point"] = True
    return d


@dataclass(frozen=True)
class ScenePlan:
    """One decision of the controller: the scene to play, what the writer tagged it with, and
    everything behind the choice (see the module docstring)."""

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
    intensity: float | None = None
    tone: str | None = None
    speaker: str | None = None
    cast: tuple[str, ...] = ()
    act: str | None = None
    ending: str | None = None
    media: tuple[Mapping[str, Any], ...] = ()
    tags: Mapping[str, Any] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)
    fates: tuple[Mapping[str, str], ...] = ()
    upcoming: tuple[Mapping[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not (0.0 <= self.probability <= 1.0):
            raise ValueError(f"scene plan for {self.scene!r}: probability must be within [0, 1], "
                             f"got {self.probability}")
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"scene plan for {self.scene!r}: duration_s must be positive, got {self.duration_s}")
        if self.rewritten_by is not None and not self.rewritten:
            raise ValueError(f"scene plan for {self.scene!r}: rewritten_by given but rewritten is False")
        if self.ai_generated and not self.rewritten:
            raise ValueError(f"scene plan for {self.scene!r}: ai_generated but not rewritten")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: floats rounded (timestamps to 6 digits, the rest to 4), NaN → None."""
        return {
            "schema": SCHEMA_ID,
            "viewer": self.viewer,
            "timestamp": _clean(float(self.timestamp), 6),
            "episode": int(self.episode),
            "scene": self.scene,
            "title": self.title,
            "text": self.text,
            "duration_s": _clean(float(self.duration_s), 4),
            "intensity": None if self.intensity is None else _clean(float(self.intensity), 4),
            "tone": self.tone,
            "speaker": self.speaker,
            "cast": list(self.cast),
            "act": self.act,
            "ending": self.ending,
            "media": [_clean(dict(m), 4) for m in self.media],
            "tags": _clean(dict(self.tags), 4),
            "variables": _clean(dict(self.variables), 4),
            "fates": [dict(f) for f in self.fates],
            "directives": _clean(dict(self.directives), 4),
            "reason": self.reason,
            "evidence": _clean(dict(self.evidence), 4),
            "probability": _clean(float(self.probability), 4),
            "alternatives": list(self.alternatives),
            "upcoming": [_clean(dict(o), 4) for o in self.upcoming],
            "rewritten": bool(self.rewritten),
            "rewritten_by": self.rewritten_by,
            "ai_generated": bool(self.ai_generated),
        }

    def to_json(self) -> str:
        """One line of JSON with sorted keys and compact separators (stable across runs)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ScenePlan":
        """The inverse of :meth:`to_dict` (for reading decision logs back, also those written
        before the schema had the writer's tags)."""
        intensity = d.get("intensity")
        return cls(
            viewer=str(d["viewer"]), timestamp=float(d["timestamp"]), episode=int(d["episode"]),
            scene=str(d["scene"]), title=str(d["title"]), text=str(d["text"]), duration_s=float(d["duration_s"]),
            directives=dict(d["directives"]), reason=str(d["reason"]), evidence=dict(d["evidence"]),
            probability=float(d["probability"]), alternatives=tuple(d["alternatives"]),
            rewritten=bool(d.get("rewritten", False)), rewritten_by=d.get("rewritten_by"),
            ai_generated=bool(d.get("ai_generated", False)),
            intensity=None if intensity is None else float(intensity), tone=d.get("tone"), speaker=d.get("speaker"),
            cast=tuple(d.get("cast") or ()), act=d.get("act"), ending=d.get("ending"),
            media=tuple(dict(m) for m in d.get("media") or ()), tags=dict(d.get("tags") or {}),
            variables=dict(d.get("variables") or {}), fates=tuple(dict(f) for f in d.get("fates") or ()),
            upcoming=tuple(dict(o) for o in d.get("upcoming") or ()),
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
