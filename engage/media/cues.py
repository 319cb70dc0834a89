"""What the player shows for a scene: the writer's media tags read from a scene plan and resolved in the
film's media folder.

This module is the one place that knows where a plan keeps the writer's tags (:func:`writer_tags`);
everything after it speaks the player's own small vocabulary (:func:`scene_cues`):

``headline``
    the scene's ``# title:``, else its title when that is not just the start of its text, else the
    first sentence of the text, shortened at a word boundary (never mid-word);
``body``
    the text still to show once the headline has been shown (the text without a first sentence used
    as the headline, so nothing is said twice);
``video``
    ``# video: FILE`` (webm/mp4), looped unless ``# loop: false``; the next candidates are preloaded;
``image``
    ``# image: FILE``, drawn with a slow pan and zoom (``# motion: in|out|left|right``);
``audio``
    ``# audio: FILE[, FILE…]``: a bed, crossfaded from the previous scene's; several files are stems
    whose levels follow the music intensity (the first always plays, each further one joins as it rises);
``sfx``
    ``# sfx: FILE[ @ SECONDS][, …]``: one-shots at the scene's start or that many seconds in;
``transition``
    ``# transition: cut`` or ``# transition: crossfade 2.5`` (or the bare tags ``# cut`` / ``# crossfade:
    2.5``); by default a crossfade as long as the pacing asks (slow 2.4 s, steady 1.2 s, fast 0.35 s);
``text``
    ``subtitles`` over a video, a ``card`` otherwise (``# text: card|subtitles|none``).

A file the folder does not have, or has damaged, is left out with one logged warning
(:meth:`~engage.media.library.MediaLibrary.find`); a scene without any media is a title card.
Files named after the scene (``studio.webm``, ``studio.jpg``, ``studio.ogg``) are used when the
writer's tags name none.

>>> cues = scene_cues({"scene": "studio", "title": "Midnight at Radio Kestrel. Lena reads the",
...                    "text": "Midnight at Radio Kestrel. Lena reads the weather.",
...                    "directives": {"pacing": "slow"}}, {}, None)
>>> cues["headline"], cues["body"], cues["transition"], cues["text"]
('Midnight at Radio Kestrel.', 'Lena reads the weather.', {'type': 'crossfade', 'seconds': 2.4}, 'card')
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from .library import MediaLibrary

#: Plan keys that may hold the writer's tags, most specific first (see :func:`writer_tags`).
_TAG_KEYS = ("title", "speaker", "video", "image", "audio", "sfx", "transition", "cut", "crossfade", "loop",
             "motion", "text_mode", "subtitles")
#: Crossfade length by pacing when no tag sets one.
FADE_S = {"slow": 2.4, "steady": 1.2, "fast": 0.35}
#: A headline longer than this is shortened at a word boundary.
HEADLINE_CHARS = 64

_SENTENCE = re.compile(r"^(.+?[.!?…][\"'”’)]*)(?:\s+|$)", re.DOTALL)
_AT = re.compile(r"^(.*?)\s*@\s*([0-9]+(?:\.[0-9]+)?)\s*s?$")


def writer_tags(plan: Mapping[str, Any], scene_tags: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The writer's tags of a plan's scene: the story's own tags of the scene (``scene_tags``), overridden
    by what the plan carries (a ``tags`` table, then top-level fields such as ``video`` or ``title``).

    The only function that knows the plan's layout: a renamed plan field is a change here.

    >>> writer_tags({"video": "a.webm", "tags": {"sfx": "b.ogg"}}, {"video": "old.webm", "act": 1})
    {'video': 'a.webm', 'act': 1, 'sfx': 'b.ogg'}
    """
    tags: dict[str, Any] = dict(scene_tags or {})
    nested = plan.get("tags")
    if isinstance(nested, Mapping):
        tags.update(nested)
    media = plan.get("media")
    if isinstance(media, Mapping):  # a plan may group the media cues
        tags.update({k: v for k, v in media.items() if k in _TAG_KEYS})
    for key in _TAG_KEYS:
        if key == "title":
            continue  # the plan's title is the scene's (often derived) title, not a # title: tag
        value = plan.get(key)
        if value is not None and value != "" and value != []:
            tags[key] = value
    return tags


def _items(value: Any) -> list[str]:
    """A tag value as a list of strings (``"a.ogg, b.ogg"`` or a list)."""
    if value is None or value is False:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def _number(value: Any, default: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return default
    return x if math.isfinite(x) else default


def shorten(text: str, limit: int = HEADLINE_CHARS) -> str:
    """``text`` cut at the last word boundary before ``limit`` characters, with an ellipsis; never mid-word.

    >>> shorten("A woman called Nadia asks for a song nobody has played since the war.", 40)
    'A woman called Nadia asks for a song…'
    """
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[:limit + 1]  # a word ending right at the limit stays
    cut = head.rsplit(" ", 1)[0].rstrip(",;:—–- ") if " " in head else ""
    return (cut or text[:limit]) + "…"  # one word longer than the limit is the only thing ever cut


def headline_and_body(title: str, text: str, tag_title: Any = None) -> tuple[str, str]:
    """The headline to show and the text still to say after it (see the module docstring).

    >>> headline_and_body("The Telegraph Bell", "A bell rings. Nobody moves.")
    ('The Telegraph Bell', 'A bell rings. Nobody moves.')
    >>> headline_and_body("A bell rings. Nobody mo", "A bell rings. Nobody moves.")
    ('A bell rings.', 'Nobody moves.')
    """
    text = " ".join(str(text or "").split())
    title = " ".join(str(title or "").split())
    if isinstance(tag_title, str) and tag_title.strip():
        return shorten(tag_title.strip()), text
    derived = not title or (text and text.startswith(title.rstrip("…").rstrip()))
    if not derived:
        return shorten(title), text
    if not text:
        return shorten(title), ""
    m = _SENTENCE.match(text)
    first = m.group(1) if m else text
    rest = text[len(first):].strip()
    if len(first) > HEADLINE_CHARS:  # a long first sentence: its start as the headline, all of it said
        return shorten(first), text
    return first, rest


def transition(tags: Mapping[str, Any], pacing: str | None) -> dict[str, Any]:
    """``{"type": "cut"|"crossfade", "seconds": S}`` from the tags, else from the pacing.

    >>> transition({"transition": "crossfade 3"}, "fast"), transition({"cut": True}, "slow")
    ({'type': 'crossfade', 'seconds': 3.0}, {'type': 'cut', 'seconds': 0.0})
    """
    default = FADE_S.get(str(pacing), FADE_S["steady"])
    spec = tags.get("transition")
    if spec is None and tags.get("cut") not in (None, False):
        spec = "cut"
    if spec is None and tags.get("crossfade") not in (None, False):
        spec = "crossfade" if tags["crossfade"] is True else f"crossfade {tags['crossfade']}"
    if spec is None:
        return {"type": "crossfade", "seconds": default}
    words = str(spec).replace(":", " ").split()
    kind = words[0].lower() if words else "crossfade"
    if kind in ("cut", "hard", "hard-cut", "hardcut", "none"):
        return {"type": "cut", "seconds": 0.0}
    seconds = _number(words[1].rstrip("s"), default) if len(words) > 1 else default
    return {"type": "crossfade", "seconds": round(min(max(seconds, 0.0), 10.0), 3)}


def _sfx(value: Any) -> list[tuple[str, float]]:
    out = []
    for item in _items(value):
        m = _AT.match(item)
        name, at = (m.group(1).strip(), float(m.group(2))) if m else (item, 0.0)
        if name:
            out.append((name, at))
    return out


def scene_cues(plan: Mapping[str, Any], scene_tags: Mapping[str, Any] | None,
               library: MediaLibrary | None) -> dict[str, Any]:
    """What the player shows and plays for one plan (see the module docstring); JSON-safe.

    Parameters
    ----------
    plan : mapping
        A scene plan as a dict (:meth:`~engage.narrative.plan.ScenePlan.to_dict`, or a plan message).
    scene_tags : mapping or None
        The story's tags of the scene, when the plan does not carry them.
    library : MediaLibrary or None
        The film's media folder; None: text only.

    Returns
    -------
    dict
        ``headline``, ``body``, ``speaker``, ``video``, ``image``, ``audio``, ``sfx``, ``transition``, ``text``.
    """
    scene = str(plan.get("scene", ""))
    tags = writer_tags(plan, scene_tags)
    if library is not None and library.scenes:  # the folder's media.toml, under the writer's own tags
        tags = {**library.scene_tags(scene), **tags}
    directives = plan.get("directives") if isinstance(plan.get("directives"), Mapping) else {}
    headline, body = headline_and_body(str(plan.get("title", "")), str(plan.get("text", "")), tags.get("title"))
    video = image = None
    audio: list[str] = []
    sfx: list[dict[str, Any]] = []
    if library is not None:
        found = [library.find(n, "video", scene) for n in _items(tags.get("video"))[:1]]
        item = found[0] if found else library.for_scene(scene, "video")
        if item is not None:
            video = {"url": item.url, "loop": str(tags.get("loop", True)).lower() not in ("false", "0", "no")}
        found = [library.find(n, "image", scene) for n in _items(tags.get("image"))[:1]]
        item = found[0] if found else library.for_scene(scene, "image")
        if item is not None:
            motion = str(tags.get("motion", "")).lower()
            image = {"url": item.url, "motion": motion if motion in ("in", "out", "left", "right") else "in"}
        names = _items(tags.get("audio"))
        stems = [library.find(n, "audio", scene) for n in names[:4]] if names else [library.for_scene(scene, "audio")]
        audio = [s.url for s in stems if s is not None]
        for name, at in _sfx(tags.get("sfx"))[:8]:
            item = library.find(name, "audio", scene)
            if item is not None:
                sfx.append({"url": item.url, "at": round(at, 3)})
    mode = str(tags.get("text_mode", tags.get("subtitles", ""))).lower()
    if mode in ("false", "off", "none", "no"):
        text = "none"
    elif mode in ("card", "subtitles"):
        text = mode
    else:
        text = "subtitles" if video is not None else "card"
    speaker = tags.get("speaker")
    return {
        "headline": headline, "body": body, "speaker": str(speaker) if isinstance(speaker, str) and speaker else None,
        "video": video, "image": image, "audio": audio, "sfx": sfx,
        "transition": transition(tags, directives.get("pacing") if isinstance(directives, Mapping) else None),
        "text": text,
    }


def preload_cues(scene_id: str, scene_tags: Mapping[str, Any] | None, library: MediaLibrary | None) -> dict[str, Any]:
    """The files worth fetching before a scene that may come next: its video, image and audio URLs."""
    cues = scene_cues({"scene": scene_id, "title": "", "text": ""}, scene_tags, library)
    return {"scene": scene_id, "video": cues["video"]["url"] if cues["video"] else None,
            "image": cues["image"]["url"] if cues["image"] else None, "audio": cues["audio"]}
