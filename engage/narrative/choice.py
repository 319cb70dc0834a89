"""The viewer's own choices: a choice made on the player page, taken at the cut, or the policy's pick.

Where the story offers a choice, the player shows the options for the last seconds of the scene.
The page sends the viewer's pick (click, touch or key) to the server, which puts it in a
:class:`ChoiceBox`; when the scene ends, :class:`ViewerChoicePolicy` plays the viewer's pick if
there is one for this scene and otherwise asks the session's own policy. Either way the plan's
evidence says who chose (``chosen_by``: ``viewer`` or ``policy``), so the decision log tells them
apart.

The box is written by the server's thread and read by the pipeline's, under a lock; a pick is
only ever good for the scene it was made in (a new plan empties the box).

>>> from engage.narrative.story import Scene
>>> a, b = Scene("a", "Stay", "", 0.2, "calm", 30.0, "grey"), Scene("b", "Run", "", 0.9, "tense", 30.0, "red")
>>> box = ChoiceBox()
>>> box.open("hall", 10.0, ["a", "b"])
>>> box.put("hall", 10.0, "b", via="key")
True
>>> choice = ViewerChoicePolicy(None, box).choose(Scene("hall", "Hall", "", 0.5, "calm", 30.0, "grey"), [a, b],
...                                                None, 40.0)
>>> choice.scene.id, choice.rule, choice.evidence["chosen_by"], choice.evidence["via"]
('b', 'viewer', 'viewer', 'key')
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from .controller import Choice, RulePolicy

#: How a pick may have been made on the page.
INPUTS = ("key", "click", "touch")


@dataclass(frozen=True)
class ViewerPick:
    """One pick: the scene and plan (its start time) it was made in, the option, how, and when (wall clock)."""

    scene: str
    at: float
    option: str
    via: str
    received: float
    response_s: float | None = None


class ChoiceBox:
    """The viewer's pick for the scene now playing (thread-safe; see the module docstring).

    ``open(scene, at, options)`` is called with each new plan; ``put`` stores a pick for it and returns
    False for a pick that is late (another plan since), for another scene, or for no offered option;
    ``take(scene)`` hands the pick over once.
    """

    def __init__(self, wall_clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._wall = wall_clock
        self._open: tuple[str, float, tuple[str, ...]] | None = None
        self._pick: ViewerPick | None = None
        self.accepted = 0
        self.refused = 0

    def open(self, scene: str, at: float, options: Sequence[str]) -> None:
        with self._lock:
            self._open = (str(scene), float(at), tuple(str(o) for o in options))
            self._pick = None

    @property
    def offered(self) -> tuple[str, float, tuple[str, ...]] | None:
        """(scene, plan time, option ids) open for a pick, or None."""
        with self._lock:
            return self._open

    def put(self, scene: str, at: float, option: str, via: str = "click", response_s: float | None = None) -> bool:
        with self._lock:
            current = self._open
            ok = (current is not None and len(current[2]) > 1 and str(scene) == current[0]
                  and isinstance(at, (int, float)) and math.isclose(float(at), current[1], abs_tol=1e-3)
                  and str(option) in current[2])
            if not ok:
                self.refused += 1
                return False
            rt = float(response_s) if isinstance(response_s, (int, float)) and math.isfinite(response_s) \
                and response_s >= 0 else None
            self._pick = ViewerPick(current[0], current[1], str(option), via if via in INPUTS else "click",
                                    self._wall(), rt)
            self.accepted += 1
            return True

    def take(self, scene: str) -> ViewerPick | None:
        with self._lock:
            pick = self._pick
            if pick is None or pick.scene != scene:
                return None
            self._pick = None
            return pick


class ViewerChoicePolicy:
    """A policy that plays the viewer's pick when there is one and otherwise asks ``policy``.

    Every other attribute (``observe``, ``interrupt``, ``director`` …) is the wrapped policy's, so the
    pacing director goes on working between choices.

    Parameters
    ----------
    policy : Policy or None
        The session's policy (default: :class:`~engage.narrative.controller.RulePolicy`).
    box : ChoiceBox
        Where the server puts the viewer's picks.
    """

    def __init__(self, policy: Any, box: ChoiceBox) -> None:
        self.policy = policy if policy is not None else RulePolicy()
        self.box = box

    def __getattr__(self, name: str) -> Any:
        if name in ("policy", "box"):  # not set yet (copy/pickle): never recurse
            raise AttributeError(name)
        return getattr(self.policy, name)

    def choose(self, current, options, state, now: float) -> Choice:
        pick = self.box.take(current.id)
        chosen = next((o for o in options if pick is not None and o.id == pick.option), None)
        if pick is not None and chosen is not None:
            how = {"key": "a key press", "click": "a click", "touch": "a touch"}.get(pick.via, pick.via)
            reason = f"the viewer chose '{chosen.title}' (by {how})"
            evidence = {"trigger": None, "chosen_by": "viewer", "via": pick.via,
                        "response_s": None if pick.response_s is None else round(pick.response_s, 3)}
            return Choice(chosen, reason, "viewer", 1.0, 1.0, evidence)
        choice = self.policy.choose(current, options, state, now)
        return replace(choice, evidence={**dict(choice.evidence), "chosen_by": "policy"})
