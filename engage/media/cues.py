"""What the player shows for a scene: the writer's media tags read from a scene plan and resolved in the
film's media folder.

This module is the one place that knows where a plan keeps the writer's tags (:func:`writer_tags`);
everything after it speaks the player's own small vocabulary (:func:`scene_cues`):

``headline``
    the scene's ``# title:``, else its title when that is not just the start of its text, else the
    first sentence of the text, shortened at a word boundary (never mid-word);
``body``
    the text still to show once the headline has been shown (the text without a first sentence used
    as the headline, so nothing is said twice, and without a bracketed direction such as a template
    rewrite's ``[pacing fast, music 0.80, stakes high]``, which goes to ``direction``, for the operator);
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

from engage.narrative.plan import media_cues as plan_media_cues

from .library import MediaLibrary

#: The media kinds a scene may name.
MEDIA_KINDS = ("video", "image", "audio", "sfx")
#: Plan keys that may hold the writer's other tags (see :func:`writer_tags`).
_TAG_KEYS = ("speaker", "transition", "cut", "crossfade", "loop", "motion", "text_mode", "subtitles")
#: Crossfade length by pacing when no tag sets one.
FADE_S = {"slow": 2.4, "steady": 1.2, "fast": 0.35}
#: A headline longer than this is shortened at a word boundary.
HEADLINE_CHARS = 64

_DIRECTION = re.compile(r"^\s*\[([^\[\]]{0,200})\]\s*")
_SENTENCE = re.compile(r"^(.+?[.!?…][\"'”’)]*)(?:\s+|$)", re.DOTALL)


def writer_tags(plan: Mapping[str, Any], scene_tags: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The writer's tags of a plan's scene: the story's own tags of the scene (``scene_tags``), overridden
    by what the plan carries: its ``tags`` table, its ``speaker``, its ``media`` cues (a list of ``{kind, src,
    options}``, the scene-plan contract's form, kept under ``media``), and a ``# title:`` the plan names.

    With :func:`media_cues`, the only code that knows the plan's layout: a renamed plan field is a change here.

    >>> writer_tags({"speaker": "Lena", "tags": {"transition": "cut"}}, {"video": "a.webm", "act": 1})
    {'video': 'a.webm', 'act': 1, 'transition': 'cut', 'speaker': 'Lena'}
    """
    tags: dict[str, Any] = dict(scene_tags or {})
    nested = plan.get("tags")
    if isinstance(nested, Mapping):
        tags.update(nested)
    for key in _TAG_KEYS:
        value = plan.get(key)
        if value is not None and value != "" and value != []:
            tags[key] = value
    media = plan.get("media")
    if isinstance(media, (list, tuple)) and media:
        tags["media"] = [m for m in media if isinstance(m, Mapping)]
    return tags


def parse_cue(kind: str, text: Any) -> list[dict[str, Any]]:
    """A media tag's value → cues ``{kind, src, options}``: ``FILE [flag …] [key=value …]`` (as the scene-plan
    contract writes them), several separated by commas, ``FILE @ SECONDS`` for when a sound effect plays
    (the scene plan's own parser, :func:`engage.narrative.plan.media_cues`).

    >>> [(c["src"], c["options"]) for c in parse_cue("sfx", "thunder.ogg @ 2.5, bang.ogg at=4 volume=0.5")]
    [('thunder.ogg', {'at': 2.5}), ('bang.ogg', {'at': 4.0, 'volume': 0.5})]
    """
    if text is None or isinstance(text, bool):
        return []
    if isinstance(text, (list, tuple)):
        return [c for item in text for c in parse_cue(kind, item)]
    return [c for c in plan_media_cues(kind, text) if c["src"]]


def media_cues(tags: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    """The cues of one kind: the plan's own list (``media``) when it has that kind, else the kind's tag."""
    listed = [dict(m, options=dict(m["options"]) if isinstance(m.get("options"), Mapping) else {})
              for m in tags.get("media", ()) if m.get("kind") == kind and isinstance(m.get("src"), str)]
    return listed or parse_cue(kind, tags.get(kind))


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


def stage_direction(text: str) -> tuple[str, str]:
    """Split a bracketed direction off the start of a scene's text: ``"[pacing fast, music 0.80] Rain."`` →
    ``("pacing fast, music 0.80", "Rain.")``. Directions are for the people running the film (the operator's
    overlay shows them), never for the audience.

    >>> stage_direction("[pacing slow, stakes low] The lamp is lit.")
    ('pacing slow, stakes low', 'The lamp is lit.')
    """
    m = _DIRECTION.match(text or "")
    return (m.group(1).strip(), text[m.end():]) if m else ("", text or "")


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


def transition(tags: Mapping[str, Any], pacing: str | None, video_options: Mapping[str, Any] | None = None
               ) -> dict[str, Any]:
    """``{"type": "cut"|"crossfade", "seconds": S}`` from the ``transition`` tag (or the bare ``cut`` /
    ``crossfade: S`` tags, or the video cue's ``cut`` / ``crossfade=S`` options), else from the pacing.

    >>> transition({"transition": "crossfade 3"}, "fast"), transition({"cut": True}, "slow")
    ({'type': 'crossfade', 'seconds': 3.0}, {'type': 'cut', 'seconds': 0.0})
    """
    default = FADE_S.get(str(pacing), FADE_S["steady"])
    spec = tags.get("transition")
    opts = video_options or {}
    if spec is None and (tags.get("cut") not in (None, False) or opts.get("cut") is True):
        spec = "cut"
    fade = tags.get("crossfade", opts.get("crossfade", opts.get("fade")))
    if spec is None and fade not in (None, False):
        spec = "crossfade" if fade is True else f"crossfade {fade}"
    if spec is None:
        return {"type": "crossfade", "seconds": default}
    words = str(spec).replace(":", " ").split()
    kind = words[0].lower() if words else "crossfade"
    if kind in ("cut", "hard", "hard-cut", "hardcut", "none"):
        return {"type": "cut", "seconds": 0.0}
    seconds = _number(words[1].rstrip("s"), default) if len(words) > 1 else default
    return {"type": "crossfade", "seconds": round(min(max(seconds, 0.0), 10.0), 3)}


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
        The film's media folder (its ``media.toml`` fills in what the story does not name); None: text only.

    Returns
    -------
    dict
        ``headline``, ``body``, ``speaker``, ``direction``, ``video``, ``image``, ``audio``, ``sfx``, ``transition``,
        ``text``.
    """
    scene = str(plan.get("scene", ""))
    tags = writer_tags(plan, scene_tags)
    manifest = library.scene_tags(scene) if library is not None else {}
    merged = {**manifest, **tags}
    directives = plan.get("directives") if isinstance(plan.get("directives"), Mapping) else {}
    direction, words = stage_direction(str(plan.get("text", "")))
    headline, body = headline_and_body(str(plan.get("title", "")), words, tags.get("title", manifest.get("title")))
    cues = {k: media_cues(tags, k) or media_cues(manifest, k) for k in MEDIA_KINDS}
    video = image = None
    audio: list[str] = []
    sfx: list[dict[str, Any]] = []
    vopts = cues["video"][0]["options"] if cues["video"] else {}
    if library is not None:
        item = library.find(cues["video"][0]["src"], "video", scene) if cues["video"] else \
            library.for_scene(scene, "video")
        if item is not None:
            loop = vopts.get("loop", merged.get("loop", True))
            video = {"url": item.url, "loop": str(loop).lower() not in ("false", "0", "no") and not vopts.get("once")}
        item = library.find(cues["image"][0]["src"], "image", scene) if cues["image"] else \
            library.for_scene(scene, "image")
        if item is not None:
            iopts = cues["image"][0]["options"] if cues["image"] else {}
            motion = str(iopts.get("motion", merged.get("motion", ""))).lower()
            image = {"url": item.url, "motion": motion if motion in ("in", "out", "left", "right") else "in"}
        stems = [library.find(c["src"], "audio", scene) for c in cues["audio"][:4]] if cues["audio"] else \
            [library.for_scene(scene, "audio")]
        audio = [s.url for s in stems if s is not None]
        for c in cues["sfx"][:8]:
            item = library.find(c["src"], "audio", scene)
            if item is not None:
                sfx.append({"url": item.url, "at": round(max(0.0, _number(c["options"].get("at"), 0.0)), 3)})
    mode = str(merged.get("text_mode", merged.get("subtitles", ""))).lower()
    if mode in ("false", "off", "none", "no"):
        text = "none"
    elif mode in ("card", "subtitles"):
        text = mode
    else:
        text = "subtitles" if video is not None else "card"
    speaker = merged.get("speaker")
    return {
        "headline": headline, "body": body, "speaker": str(speaker) if isinstance(speaker, str) and speaker else None,
        "direction": direction or None, "video": video, "image": image, "audio": audio, "sfx": sfx,
        "transition": transition(merged, directives.get("pacing") if isinstance(directives, Mapping) else None, vopts),
        "text": text,
    }


def preload_cues(scene_id: str, scene_tags: Mapping[str, Any] | None, library: MediaLibrary | None) -> dict[str, Any]:
    """The files worth fetching before a scene that may come next: its video, image and audio URLs."""
    cues = scene_cues({"scene": scene_id, "title": "", "text": ""}, scene_tags, library)
    return {"scene": scene_id, "video": cues["video"]["url"] if cues["video"] else None,
            "image": cues["image"]["url"] if cues["image"] else None, "audio": cues["audio"]}
