"""Canon checks: does a rewritten scene keep to the story?

:func:`check_rewrite` takes a model's reply (already parsed JSON) and the authored scene with
what it must keep, and lists every problem; an empty list means the rewrite may play.

* **schema**: an object with exactly ``text`` (non-empty string, at most :data:`MAX_TEXT`
  characters), ``directives`` (``pacing`` slow/steady/fast, ``palette`` string,
  ``music_intensity`` 0..1, ``stakes`` low/medium/high), ``cast`` (names) and ``exits``
  (scene or choice ids);
* **dead characters stay dead**: a character the story's facts say is dead
  (``<name>_alive`` false) is not in the cast and not named in the text unless the authored
  text names them too (a memory is fine, a resurrection is not);
* **no new named characters**: every cast name is in the allowed cast, and the text names no
  one (a capitalised word inside a sentence) that neither the allowed cast nor the authored
  text knows;
* **exits lead to real scenes**: every exit is one of the scene's real exits;
* **required beats present**: each beat phrase (the scene's ``beats`` tag, ``;``-separated) is in the text;
* **no instructions in the text**: no prompt-injection phrases, role markers, code fences or links.

>>> from engage.narrative.story import Scene
>>> s = Scene("tea", "Tea", "Tea with Tomas.", 0.2, "calm", 30.0, "amber", ("Lena", "Tomas"))
>>> reply = {"text": "Tea with Tomas; Marco walks in.", "cast": ["Lena", "Tomas"], "exits": [],
...          "directives": {"pacing": "slow", "palette": "amber", "music_intensity": 0.2, "stakes": "low"}}
>>> check_rewrite(reply, s, allowed_cast=("Lena", "Tomas"), exits=())
["text names 'Marco', who is not in the story's cast (allowed: Lena, Tomas)"]
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping, Sequence

from .story import Scene

MAX_TEXT = 4000

#: The JSON schema the model is asked to follow.
REWRITE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["text", "directives", "cast", "exits"],
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
        "directives": {
            "type": "object", "additionalProperties": False,
            "required": ["pacing", "palette", "music_intensity", "stakes"],
            "properties": {
                "pacing": {"enum": ["slow", "steady", "fast"]},
                "palette": {"type": "string"},
                "music_intensity": {"type": "number", "minimum": 0, "maximum": 1},
                "stakes": {"enum": ["low", "medium", "high"]},
            },
        },
        "cast": {"type": "array", "items": {"type": "string"}},
        "exits": {"type": "array", "items": {"type": "string"}},
    },
}

_INJECTION = re.compile(
    r"(ignore (all |any )?(the )?(previous|prior|above) (instructions|rules)|disregard (the|all|previous)|"
    r"system prompt|new instructions|you are now\b|you are (an? )?(ai|assistant|language model)|as an ai\b|"
    r"<\|[a-z_]*\|>|\[/?inst\]|\b(system|assistant|developer)\s*:|^\s*user\s*:|```|https?://|www\.)",
    re.IGNORECASE | re.MULTILINE)
_COMMON = {"The", "And", "But", "She", "He", "They", "His", "Her", "Their", "It", "In", "On", "At", "As", "A",
           "An", "Then", "When", "Lena's", "God", "Radio", "Kestrel", "I", "We", "You", "Somewhere", "Outside",
           "Inside", "Nobody", "Someone", "Everyone", "Dawn", "Midnight", "Morning", "Night"}


def dead_characters(facts: Mapping[str, Any]) -> set[str]:
    """Names whose ``<name>_alive`` fact is false (``nadia_alive`` → ``Nadia``).

    >>> sorted(dead_characters({"nadia_alive": False, "tomas_alive": True, "knows_code": False}))
    ['Nadia']
    """
    out = set()
    for key, value in facts.items():
        if key.lower().endswith("_alive") and value is False:
            out.add(key[: -len("_alive")].capitalize())
    return out


def required_beats(scene: Scene) -> list[str]:
    """The beat phrases the scene must keep (its ``beats`` tag, ``;``-separated)."""
    raw = (scene.tags or {}).get("beats")
    if isinstance(raw, str):
        return [b.strip() for b in raw.split(";") if b.strip()]
    if isinstance(raw, (list, tuple)):
        return [str(b).strip() for b in raw if str(b).strip()]
    return []


def _names_in(text: str) -> set[str]:
    names = set()
    for sentence in re.split(r"(?<=[.!?])\s+|\n+", text):
        words = re.findall(r"[A-Za-z][A-Za-z'’-]*", sentence)
        for w in words[1:]:
            base = re.sub(r"['’]s$", "", w)
            if base[:1].isupper() and base[1:].islower() and len(base) > 2 and base not in _COMMON:
                names.add(base)
    return names


def check_schema(reply: Any) -> list[str]:
    """Problems of the reply's shape (see :data:`REWRITE_SCHEMA`)."""
    if not isinstance(reply, dict):
        return [f"reply must be a JSON object, got {type(reply).__name__}"]
    problems = []
    required = set(REWRITE_SCHEMA["required"])
    for k in sorted(required - set(reply)):
        problems.append(f"missing key {k!r}")
    for k in sorted(set(reply) - required):
        problems.append(f"unknown key {k!r}")
    text = reply.get("text")
    if "text" in reply and (not isinstance(text, str) or not text.strip()):
        problems.append("text must be a non-empty string")
    elif isinstance(text, str) and len(text) > MAX_TEXT:
        problems.append(f"text is {len(text)} characters, over {MAX_TEXT}")
    d = reply.get("directives")
    if "directives" in reply:
        if not isinstance(d, dict):
            problems.append("directives must be an object")
        else:
            props = REWRITE_SCHEMA["properties"]["directives"]["properties"]
            for k in sorted(set(props) - set(d)):
                problems.append(f"directives: missing {k!r}")
            for k in sorted(set(d) - set(props)):
                problems.append(f"directives: unknown key {k!r}")
            for k in ("pacing", "stakes"):
                if k in d and d[k] not in props[k]["enum"]:
                    problems.append(f"directives.{k} must be one of {props[k]['enum']}, got {d[k]!r}")
            if "palette" in d and not isinstance(d["palette"], str):
                problems.append("directives.palette must be a string")
            m = d.get("music_intensity")
            if "music_intensity" in d and not (isinstance(m, (int, float)) and not isinstance(m, bool)
                                                and math.isfinite(m) and 0 <= m <= 1):
                problems.append(f"directives.music_intensity must be a number within [0, 1], got {m!r}")
    for k in ("cast", "exits"):
        if k in reply and not (isinstance(reply[k], list) and all(isinstance(x, str) for x in reply[k])):
            problems.append(f"{k} must be an array of strings")
    return problems


def check_rewrite(reply: Any, authored: Scene, allowed_cast: Iterable[str] = (), exits: Sequence[str] = (),
                  facts: Mapping[str, Any] | None = None, beats: Sequence[str] | None = None) -> list[str]:
    """Every problem of ``reply`` as a rewrite of ``authored`` (empty: it may play)."""
    problems = check_schema(reply)
    if problems:
        return problems
    text: str = reply["text"]
    allowed = set(allowed_cast) | set(authored.cast)
    dead = dead_characters(facts or {})
    authored_names = _names_in(authored.text) | set(re.findall(r"\b[A-Z][a-z]+\b", authored.text))
    for name in reply["cast"]:
        if name in dead:
            problems.append(f"cast revives {name!r}, who is dead in this story")
        elif name not in allowed:
            problems.append(f"cast adds {name!r}, who is not in the story's cast (allowed: {', '.join(sorted(allowed))})")
    for name in sorted(dead):
        if re.search(rf"\b{re.escape(name)}\b", text) and name not in authored_names:
            problems.append(f"text brings back {name!r}, who is dead in this story")
    for name in sorted(_names_in(text)):
        if name not in allowed and name not in authored_names and name not in dead:
            problems.append(f"text names {name!r}, who is not in the story's cast (allowed: {', '.join(sorted(allowed))})")
    real = set(exits)
    for e in reply["exits"]:
        if e not in real:
            problems.append(f"exit {e!r} is not a scene this one leads to (real exits: {', '.join(sorted(real)) or 'none'})")
    for beat in (beats if beats is not None else required_beats(authored)):
        if beat.lower() not in text.lower():
            problems.append(f"required beat {beat!r} is missing from the text")
    m = _INJECTION.search(text)
    if m:
        problems.append(f"text carries instructions or markup ({m.group(0).strip()!r}); a scene is prose only")
    return problems
