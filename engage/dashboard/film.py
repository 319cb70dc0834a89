"""The player's view of a session's story: for each scene plan, what to show and play, what may come next
(to preload) and the choice the viewer may make; and, within a scene, how the grade and the mix follow
the viewer's state.

:class:`Film` is owned by the dashboard's feed. It reads the story through the player protocol the
controller uses (:class:`~engage.narrative.story.GraphPlayer`, :class:`~engage.narrative.ink.InkPlayer`):
the plan's scene and its tags, the options after it (ink choices carry their own labels), the scenes
they lead to (``peek``, which leaves the story where it was) and a ``cut_to`` target. The media cues
come from :func:`engage.media.scene_cues`.

>>> from engage.narrative.story import load_story, default_story_path
>>> from engage.narrative.plan import ScenePlan
>>> film = Film(load_story(default_story_path()))
>>> plan = ScenePlan("v", 0.0, 1, "platform", "The Platform", "Rain.", 60.0, {"pacing": "slow"}, "start", {}, 1.0, ())
>>> d = film.describe(plan)
>>> d["cues"]["headline"], [c["scene"] for c in d["candidates"]], d["choice"], d["ending"]
('The Platform', ['compartment'], None, False)
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping

from engage.core import Event
from engage.media import MediaLibrary, preload_cues, scene_cues
from engage.narrative.choice import ChoiceBox
from engage.narrative.plan import ScenePlan
from engage.narrative.story import GraphPlayer, Story

log = logging.getLogger(__name__)

#: At most this many next scenes are described for preloading.
MAX_CANDIDATES = 4


class Film:
    """See the module docstring.

    Parameters
    ----------
    story : Story, a story player, or None
        The session's story (also settable later with :meth:`on_story`).
    media : MediaLibrary or None
        The film's media folder (``--media``); None plays text only.
    choice_window_s : float
        How long before a scene's end the options are shown to the viewer (0: the viewer never chooses).
    """

    def __init__(self, story: Any = None, media: MediaLibrary | None = None, choice_window_s: float = 10.0) -> None:
        if not (isinstance(choice_window_s, (int, float)) and math.isfinite(choice_window_s) and choice_window_s >= 0):
            raise ValueError(f"choice window must be >= 0 seconds, got {choice_window_s!r}")
        self.media = media
        self.choice_window_s = float(choice_window_s)
        self.choices = ChoiceBox()
        self.player: Any = None
        self.title: str | None = None
        self.mood: dict[str, Any] = {"boost": 0.0, "state": "neutral"}
        self._bored = self._overloaded = False
        self.on_story(story)

    def on_story(self, story: Any) -> None:
        if story is None or self.player is not None:
            return
        self.player = GraphPlayer(story) if isinstance(story, Story) else story
        title = getattr(story, "title", None)
        self.title = str(title) if title else None

    def about(self) -> dict[str, Any]:
        """The film's title and credits (the idle screen and the end card show them)."""
        film = self.media.film if self.media is not None else {}
        return {"title": film.get("title") or self.title, "credits": film.get("credits")}

    # -- one plan ------------------------------------------------------------------------------

    def _scene(self, scene_id: str) -> Any:
        player = self.player
        if isinstance(player, GraphPlayer):
            return player.story.scenes.get(scene_id)
        current = getattr(player, "current", None)
        return current if current is not None and getattr(current, "id", None) == scene_id else None

    def _options(self, scene: Any) -> tuple[Any, ...]:
        if self.player is None or scene is None:
            return ()
        if isinstance(self.player, GraphPlayer):
            return self.player.options(scene)
        return tuple(self.player.options())

    def _peek(self, option_id: str) -> Any:
        try:
            return self.player.peek(option_id)
        except Exception:  # noqa: BLE001 - preloading is a nicety; a scene that cannot be peeked plays anyway
            log.debug("film: cannot peek at option %r", option_id, exc_info=True)
            return None

    def describe(self, plan: ScenePlan) -> dict[str, Any]:
        """The ``film`` part of a plan message: ``cues``, ``candidates``, ``choice``, ``ending``, ``story``."""
        d = plan.to_dict()
        scene = self._scene(plan.scene) if self.player is not None else None
        tags = dict(getattr(scene, "tags", None) or {})
        cues = scene_cues(d, tags, self.media)
        options = self._options(scene)
        candidates: list[dict[str, Any]] = []
        offered: list[dict[str, Any]] = []
        for option in options:
            target = self._peek(option.id)
            if target is not None and len(candidates) < MAX_CANDIDATES:
                candidates.append(preload_cues(target.id, getattr(target, "tags", None), self.media))
            label = option.title if getattr(option, "title", "") else \
                (target.title if target is not None else option.id)
            offered.append({"id": option.id, "label": str(label),
                            "scene": target.id if target is not None else None})
        cut = tags.get("cut_to")
        if isinstance(cut, str) and len(candidates) < MAX_CANDIDATES and hasattr(self.player, "peek_cut"):
            try:
                target = self.player.peek_cut(cut)
                candidates.append(preload_cues(target.id, getattr(target, "tags", None), self.media))
            except Exception:  # noqa: BLE001
                log.debug("film: cannot peek at cut_to %r", cut, exc_info=True)
        choice = None
        if len(offered) > 1 and self.choice_window_s > 0:
            window = min(self.choice_window_s, plan.duration_s)
            choice = {"options": offered, "window_s": round(window, 3),
                      "opens_at": round(plan.timestamp + plan.duration_s - window, 6),
                      "closes_at": round(plan.timestamp + plan.duration_s, 6)}
            self.choices.open(plan.scene, d["timestamp"], [o["id"] for o in offered])
        else:
            self.choices.open(plan.scene, d["timestamp"], ())
        about = self.about()
        return {"cues": cues, "candidates": candidates, "choice": choice,
                "ending": self.player is not None and scene is not None and not options,
                "story": about["title"], "credits": about["credits"]}

    # -- within a scene ------------------------------------------------------------------------

    def on_event(self, event: Event, min_confidence: float = 0.5) -> dict[str, Any] | None:
        """The new mood when ``event`` changes it (else None): a bored viewer gets a stronger grade and a
        fuller mix (``boost`` > 0), an overloaded one a softer grade and a thinner mix (``boost`` < 0).
        The page eases towards it over seconds."""
        sure = isinstance(event.confidence, (int, float)) and event.confidence >= min_confidence
        if event.type == "boredom.onset":
            self._bored = sure
        elif event.type == "boredom.offset":
            self._bored = False
        elif event.type == "arousal.high":
            self._overloaded = sure
        elif event.type in ("arousal.low", "arousal.normal"):
            self._overloaded = False
        elif event.type == "story.end":
            self._bored = self._overloaded = False
        else:
            return None
        state = "bored" if self._bored else ("overloaded" if self._overloaded else "neutral")
        if state == self.mood["state"]:
            return None
        boost = {"bored": 0.25, "overloaded": -0.25, "neutral": 0.0}[state]
        self.mood = {"boost": boost, "state": state, "since": round(float(event.timestamp), 6)}
        return dict(self.mood)


def options_of(plan_message: Mapping[str, Any]) -> list[str]:
    """The option ids a plan message offers the viewer (for tests and tools)."""
    choice = (plan_message.get("film") or {}).get("choice") or {}
    return [o["id"] for o in choice.get("options", [])]
