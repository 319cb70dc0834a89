"""The narrative controller: listens to a viewer's engagement and picks the next scene.

:class:`Controller` is a :class:`~engage.core.runtime.Processor`. It keeps the latest row of the
viewer's ``Engagement`` stream and, through the event bus, the viewer's state (bored since when
and how sure, arousal high or low, attention lost). On every tick it plays the story: the start
scene first, then, whenever the current scene's ``duration_s`` has elapsed, one of the scenes
that may follow, chosen by a :class:`Policy`. At an ending it publishes ``story.end`` and starts
the story again (``episode`` + 1), so a session of any length goes on.

Every scene start is published as a ``scene.start`` event and handed, as a
:class:`~engage.narrative.plan.ScenePlan`, to each ``on_plan`` callback. The plan's directives
come from the director's target at that moment (the policy's ``director``, when it has one and has
heard from the viewer; until then the scene's own intensity);
a rewrite changes only the text. A ``cut_to`` beat is cut to at most once per playthrough unless
the beat is tagged ``repeatable``. Every ``state_interval_s`` of session time the viewer's state
(engagement, bored/overloaded, the director's phase and target, the scene) goes to each
``on_state`` callback, for players that follow it continuously (OSC, WebSocket).

The default :class:`RulePolicy` is deterministic:

* viewer bored (an active ``boredom.onset`` with confidence ≥ ``min_confidence``) → the
  highest-intensity option;
* otherwise, arousal high (an active ``arousal.high`` as confident) → the calmest option;
* otherwise the authored first option. Ties go to the option written first.

Boredom is checked first: when both are active the viewer is shown something new rather than
held in a scene that is not working. A later policy (Thompson sampling, a pacing director) plugs
in through ``Controller(policy=…)`` and reports its own ``probability``.

>>> from engage.core import Runtime, VirtualClock
>>> from engage.narrative.story import load_story, default_story_path
>>> c = Controller(load_story(default_story_path()))
>>> _ = Runtime(VirtualClock(), [], [c], step=1.0).run(duration=160)
>>> [p.scene for p in c.decisions], c.decisions[-1].reason
(['platform', 'compartment', 'dining_car'], "authored path: 'The Dining Car' (intensity 0.30)")
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Protocol, Sequence

from engage.core.errors import ConfigError
from engage.core.event import Event
from engage.core.runtime import Context, Processor
from engage.core.stream import Chunk, StreamInfo

from .plan import ScenePlan, directives_for, option_dict, scene_fields
from .story import GraphPlayer, Scene, Story, StoryError, fatal_problems

log = logging.getLogger(__name__)

#: The event-type prefixes the controller listens to.
EVENT_PREFIXES = ("boredom.", "arousal.", "attention.")
#: How long a new director target must hold before the next scenes are rewritten for it.
REPREPARE_AFTER_S = 5.0


def _clock_text(seconds: float) -> str:
    """``mm:ss`` (or ``h:mm:ss``) for a session time; negative times get a minus sign."""
    sign = "-" if seconds < 0 else ""
    total = int(math.floor(abs(seconds)))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{sign}{h}:{m:02d}:{s:02d}" if h else f"{sign}{m:02d}:{s:02d}"


@dataclass
class ViewerState:
    """What the controller knows about one viewer right now.

    ``boredom`` is the active ``boredom.onset`` (None after ``boredom.offset``), ``arousal`` the
    latest ``arousal.high``/``arousal.low``, ``attention`` the active ``attention.lost``; each
    event carries when (``timestamp``) and how sure (``confidence``). ``engagement`` is the
    latest row of the Engagement stream. ``session_start`` is when the session started, the
    origin of the ``mm:ss`` times in reasons.

    >>> st = ViewerState("v1", session_start=100.0)
    >>> st.update(Event("boredom.onset", 233.0, "v1", 0.82))
    True
    >>> st.bored(0.5).timestamp, st.clock(233.0)
    (233.0, '02:13')
    """

    viewer: str
    session_start: float | None = None
    engagement: dict[str, float] | None = None
    engagement_time: float | None = None
    boredom: Event | None = None
    arousal: Event | None = None
    attention: Event | None = None

    def update(self, event: Event) -> bool:
        """Take in one event of this viewer; returns whether it changed the state."""
        if event.viewer != self.viewer:
            return False
        kind = event.type
        if kind == "boredom.onset":
            self.boredom = event
        elif kind == "boredom.offset":
            self.boredom = None
        elif kind in ("arousal.high", "arousal.low"):
            self.arousal = event
        elif kind == "attention.lost":
            self.attention = event
        elif kind == "attention.regained":
            self.attention = None
        else:
            return False
        return True

    def observe(self, chunk: Chunk) -> None:
        """Keep the last row of an Engagement chunk (values by channel name)."""
        if len(chunk) == 0:
            return
        row = {}
        for name, value in zip(chunk.info.channels, chunk.data[-1]):
            try:
                row[name] = float(value)
            except (TypeError, ValueError):
                row[name] = math.nan
        self.engagement = row
        self.engagement_time = chunk.last_time

    @staticmethod
    def sure(event: Event | None, min_confidence: float) -> bool:
        # NaN confidence compares False: "not sure" is never acted on.
        return event is not None and float(event.confidence) >= min_confidence

    def bored(self, min_confidence: float) -> Event | None:
        """The active boredom.onset if it is at least ``min_confidence`` sure."""
        return self.boredom if self.sure(self.boredom, min_confidence) else None

    def overloaded(self, min_confidence: float) -> Event | None:
        """The active arousal.high if it is at least ``min_confidence`` sure."""
        if self.arousal is not None and self.arousal.type == "arousal.high" and self.sure(self.arousal, min_confidence):
            return self.arousal
        return None

    def attention_lost(self, min_confidence: float) -> Event | None:
        return self.attention if self.sure(self.attention, min_confidence) else None

    def clock(self, t: float) -> str:
        """``t`` as ``mm:ss`` since the session started."""
        return _clock_text(t - (self.session_start if self.session_start is not None else 0.0))

    def summary(self) -> dict[str, Any]:
        """The state as JSON-ready evidence."""
        return {
            "boredom": self.boredom.to_dict() if self.boredom else None,
            "arousal": self.arousal.to_dict() if self.arousal else None,
            "attention": self.attention.to_dict() if self.attention else None,
            "engagement": dict(self.engagement) if self.engagement is not None else None,
            "engagement_time": self.engagement_time,
        }


@dataclass(frozen=True)
class Choice:
    """A policy's answer: the scene, why (``reason``, ``rule``), how likely the policy was to
    pick it (``probability``), how sure the evidence was (``confidence``) and the evidence."""

    scene: Scene
    reason: str
    rule: str
    probability: float = 1.0
    confidence: float = 1.0
    evidence: Mapping[str, Any] = field(default_factory=dict)


class Policy(Protocol):
    """Chooses among the scenes that may follow ``current`` (always two or more)."""

    def choose(self, current: Scene, options: Sequence[Scene], state: ViewerState, now: float) -> Choice: ...


def _others(chosen: Scene, options: Sequence[Scene]) -> str:
    rest = [f"'{o.title}' ({o.intensity:.2f})" for o in options if o.id != chosen.id]
    return ", ".join(rest[:-1]) + (" and " if len(rest) > 1 else "") + rest[-1] if rest else "nothing else"


class RulePolicy:
    """The deterministic rules in the module docstring.

    >>> a = Scene("a", "Dining Car", "", 0.3, "warm", 60.0, "gold")
    >>> b = Scene("b", "The Chase", "", 0.9, "frantic", 60.0, "black")
    >>> st = ViewerState("v1", session_start=0.0)
    >>> _ = st.update(Event("boredom.onset", 133.0, "v1", 0.82))
    >>> for part in RulePolicy().choose(a, [a, b], st, 140.0).reason.split(": ", 1):
    ...     print(part)
    viewer bored (boredom.onset at 02:13, confidence 0.82)
    raising the stakes with 'The Chase' (intensity 0.90) over 'Dining Car' (0.30)
    """

    def __init__(self, min_confidence: float = 0.5) -> None:
        self.min_confidence = min_confidence

    def choose(self, current: Scene, options: Sequence[Scene], state: ViewerState, now: float) -> Choice:
        bored = state.bored(self.min_confidence)
        overloaded = state.overloaded(self.min_confidence)
        if bored is not None:
            # max/min return the first of equals, so ties go to the option written first.
            chosen = max(options, key=lambda s: s.intensity)
            reason = (f"viewer bored (boredom.onset at {state.clock(bored.timestamp)}, confidence "
                      f"{bored.confidence:.2f}): raising the stakes with '{chosen.title}' (intensity "
                      f"{chosen.intensity:.2f}) over {_others(chosen, options)}")
            return Choice(chosen, reason, "bored", 1.0, float(bored.confidence), {"trigger": bored.to_dict()})
        if overloaded is not None:
            chosen = min(options, key=lambda s: s.intensity)
            reason = (f"viewer overloaded (arousal.high at {state.clock(overloaded.timestamp)}, confidence "
                      f"{overloaded.confidence:.2f}): letting them breathe with '{chosen.title}' (intensity "
                      f"{chosen.intensity:.2f}) over {_others(chosen, options)}")
            return Choice(chosen, reason, "overloaded", 1.0, float(overloaded.confidence),
                          {"trigger": overloaded.to_dict()})
        chosen = options[0]
        notes = self._unused(state)
        reason = f"authored path: '{chosen.title}' (intensity {chosen.intensity:.2f})"
        if notes:
            reason += "; " + "; ".join(notes)
        return Choice(chosen, reason, "authored", 1.0, 1.0, {"trigger": None})

    def _unused(self, state: ViewerState) -> list[str]:
        """Active signals too unsure to act on, named so the log shows they were seen."""
        notes = []
        for event in (state.boredom, state.arousal if state.arousal and state.arousal.type == "arousal.high" else None):
            if event is not None and not state.sure(event, self.min_confidence):
                notes.append(f"{event.type} at {state.clock(event.timestamp)} ignored (confidence "
                             f"{event.confidence:.2f} < {self.min_confidence:.2f})")
        lost = state.attention_lost(self.min_confidence)
        if lost is not None:
            notes.append(f"attention lost since {state.clock(lost.timestamp)}")
        return notes


class Controller(Processor):
    """Plays a story for one viewer, choosing each next scene from their engagement.

    ``story`` is a :class:`Story` graph or a story player (an
    :class:`~engage.narrative.ink.InkPlayer`). ``policy`` defaults to :class:`RulePolicy`; the
    sessions use :class:`~engage.narrative.policy.DirectorPolicy`, whose ``observe`` is fed
    every tick and whose ``interrupt`` may cut an interruptible scene short. ``rewriter`` (a
    :class:`~engage.narrative.rewriter.RewriteService`) prepares rewrites of the scenes that may
    follow while a scene plays; the plan of the next scene uses one only if it is ready and was
    written for the directives of the decision. ``stop_at_end`` ends the story at its first ending
    (``finished``, then ``on_end()``) instead of starting again; otherwise it starts again
    ``restart_after_s`` seconds after the ending (an installation's end card and idle screen fill the
    pause). ``plot_changes`` counts departures from the authored path.

    ``on_plan`` callbacks (for example a :class:`~engage.narrative.plan.ScenePlanWriter` or a
    player) receive every :class:`ScenePlan`; one that raises is logged and counted, never
    allowed to stop the story. ``decisions`` holds every plan so far, ``current`` the scene
    playing, ``episode`` how many times the story has started.
    """

    name = "controller"

    def __init__(
        self,
        story: Story | Any,
        viewer: str = "viewer-1",
        on_plan: Sequence[Callable[[ScenePlan], None]] | Callable[[ScenePlan], None] = (),
        min_confidence: float = 0.5,
        policy: Policy | None = None,
        rewriter: Any | None = None,
        stop_at_end: bool = False,
        on_end: Callable[[], None] | None = None,
        restart_after_s: float = 0.0,
        on_state: Sequence[Callable[[dict], None]] | Callable[[dict], None] = (),
        state_interval_s: float = 0.5,
    ) -> None:
        if isinstance(story, Story):
            problems = fatal_problems(story)
            if problems:
                raise StoryError(f"story {story.id!r}", problems)
            self.player = GraphPlayer(story)
        else:  # a player: InkPlayer or anything with begin/options/peek/follow/cut_to/facts
            self.player = story
        if not (isinstance(min_confidence, (int, float)) and 0.0 <= min_confidence <= 1.0):
            raise ConfigError(f"controller: min_confidence must be within [0, 1], got {min_confidence!r}")
        if not (isinstance(restart_after_s, (int, float)) and 0.0 <= restart_after_s < math.inf):
            raise ConfigError(f"controller: restart_after_s must be >= 0 seconds, got {restart_after_s!r}")
        self.restart_after_s = float(restart_after_s)
        self._ended: tuple[float, Scene] | None = None  # (when to start again, the ending) between episodes
        self.story = story
        self.rewriter = rewriter
        self.stop_at_end = stop_at_end
        self.on_end = on_end
        self.finished = False
        self.plot_changes = 0
        self.viewer = viewer
        self.on_plan: list[Callable[[ScenePlan], None]] = [on_plan] if callable(on_plan) else list(on_plan)
        self.on_state: list[Callable[[dict], None]] = [on_state] if callable(on_state) else list(on_state)
        if not (isinstance(state_interval_s, (int, float)) and 0 < state_interval_s <= 1.0):
            raise ConfigError(f"controller: state_interval_s must be within (0, 1] s, got {state_interval_s!r}")
        self.state_interval_s = float(state_interval_s)
        self._last_state: float | None = None
        self._cuts: set[str] = set()
        self._repeatable: dict[str, bool] = {}
        self._prepared_target: float | None = None
        self._target_since: tuple[float | None, float] | None = None
        self.min_confidence = float(min_confidence)
        self.policy: Policy = policy if policy is not None else RulePolicy(self.min_confidence)
        self.state = ViewerState(viewer)
        self.decisions: list[ScenePlan] = []
        self.current: Scene | None = None
        self.started_at: float | None = None
        self.episode = 0
        self.plan_errors = 0
        self.policy_errors = 0
        self._bus = None

    # -- Processor -----------------------------------------------------------------------------

    def start(self, ctx: Context) -> None:
        super().start(ctx)
        if self._bus is not ctx.bus:  # a second run() on the same bus must not double-subscribe
            for prefix in EVENT_PREFIXES:
                ctx.bus.subscribe(self._on_event, prefix)
            self._bus = ctx.bus
        if self.state.session_start is None:  # reasons quote times from the session's start
            self.state.session_start = ctx.clock.now()

    def accepts(self, info: StreamInfo) -> bool:
        return info.type == "Engagement" and info.viewer == self.viewer

    def process(self, chunk: Chunk) -> list[Chunk]:
        self.state.observe(chunk)
        return []

    def tick(self, now: float) -> list[Chunk]:
        if not hasattr(self, "ctx"):
            raise RuntimeError("Controller.tick() called before start(ctx)")
        if self.finished:
            return []
        if self._ended is not None:  # between episodes
            if now >= self._ended[0]:
                ending, self._ended = self._ended[1], None
                self._play_start(now, previous=ending)
        else:
            observe = getattr(self.policy, "observe", None)
            if observe is not None:
                observe(self.state, now)
            if self.current is None:
                self._play_start(now, previous=None)
            elif now - self.started_at >= self.current.duration_s:
                self._advance(now)
            elif getattr(self.policy, "interrupt", None) is not None:
                self._maybe_interrupt(now)
            if (self.rewriter is not None and getattr(self.rewriter, "background", False)
                    and self.current is not None and self._ended is None):
                self._maybe_prepare_again(now)
        if self.on_state and (self._last_state is None or now - self._last_state >= self.state_interval_s - 1e-9):
            self._last_state = now
            self._send_state(now)
        return []

    def viewer_state(self, now: float) -> dict[str, Any]:
        """The viewer's state as players get it continuously: the engagement scores, whether the
        viewer is bored, overloaded or looking away, the director's phase and target, the scene."""
        row = self.state.engagement or {}
        director = getattr(self.policy, "director", None)
        current = self.current
        out: dict[str, Any] = {
            "viewer": self.viewer, "timestamp": now, "episode": self.episode,
            "scene": current.id if current is not None else None,
            "scene_elapsed_s": (now - self.started_at) if self.started_at is not None else None,
            "scene_remaining_s": (self.ends_at - now) if self.ends_at is not None else None,
        }
        for key in ("arousal", "boredom", "attention", "confidence", "quality"):
            value = row.get(key)
            out[key] = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
        out["bored"] = self.state.bored(self.min_confidence) is not None
        out["overloaded"] = self.state.overloaded(self.min_confidence) is not None
        out["attention_lost"] = self.state.attention_lost(self.min_confidence) is not None
        out["phase"] = director.phase if director is not None else None
        out["target"] = float(director.target()) if director is not None else None
        return out

    def _send_state(self, now: float) -> None:
        state = self.viewer_state(now)
        for callback in self.on_state:
            try:
                callback(state)
            except Exception:  # noqa: BLE001 - a broken player must not stop the story
                self.plan_errors += 1
                self.ctx.counters[f"{self.name}.state_errors"] += 1
                log.exception("%s: on_state callback %r failed", self.name, callback)

    def _may_cut_to(self, target: Any) -> bool:
        """A cut-to beat plays at most once per playthrough, unless it is tagged ``repeatable``."""
        if not isinstance(target, str) or target not in self._cuts:
            return True
        if target not in self._repeatable:
            tags_of = getattr(self.player, "tags_of", None)
            try:
                tags = tags_of(target) if tags_of is not None else {}
            except Exception:  # noqa: BLE001 - an unknown target is refused by cut_to itself
                tags = {}
            self._repeatable[target] = bool(tags.get("repeatable"))
        return self._repeatable[target]

    def _maybe_interrupt(self, now: float) -> None:
        current = self.current
        if not self._may_cut_to((current.tags or {}).get("cut_to")):
            return
        try:
            cut = self.policy.interrupt(current, now - self.started_at, self.state, now)
            if cut is None:
                return
            target, reason = cut
            scene = self.player.cut_to(target)
            self._cuts.add(target)
        except Exception:  # noqa: BLE001 - a failed cut keeps the scene playing
            self.policy_errors += 1
            self.ctx.counters[f"{self.name}.policy_errors"] += 1
            log.exception("%s: interrupt failed at %r", self.name, current.id)
            return
        self.plot_changes += 1
        self._begin(Choice(scene, reason, "interrupt", 1.0, float(self.state.boredom.confidence)
                           if self.state.boredom is not None else 1.0,
                           {"trigger": self.state.boredom.to_dict() if self.state.boredom else None,
                            "plot_change": True}), (scene,), now, previous=current)

    def _maybe_prepare_again(self, now: float) -> None:
        """The director changed its target while the scene plays: once the new target has held
        for ``REPREPARE_AFTER_S`` (and time is left), rewrite the next scenes for it."""
        target = self._target()
        if target == self._prepared_target:
            self._target_since = None
            return
        if self._target_since is None or self._target_since[0] != target:
            self._target_since = (target, now)
            return
        if now - self._target_since[1] >= REPREPARE_AFTER_S and self.ends_at - now > REPREPARE_AFTER_S:
            self._target_since = None
            self._prepare_rewrites(self.current)

    def _target(self) -> float | None:
        """The director's target intensity now (None when the policy has no director, or its director has
        heard nothing about the viewer yet: a film without sensors plays as authored)."""
        director = getattr(self.policy, "director", None)
        if director is None or not getattr(director, "informed", True):
            return None
        return float(director.target())

    def _rewrite_context(self, scene: Scene) -> dict[str, Any]:
        return {"target_intensity": self._target(), "facts": self.player.facts(), "previous": scene.id}

    # -- state ---------------------------------------------------------------------------------

    @property
    def ends_at(self) -> float | None:
        """When the current scene is due to end (None before the first tick)."""
        if self.current is None or self.started_at is None:
            return None
        return self.started_at + self.current.duration_s

    def _on_event(self, event: Event) -> None:
        if event.viewer == self.viewer:
            self.state.update(event)

    # -- decisions -----------------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        current = self.current
        options = self.player.options(current)
        if not options:
            self.ctx.bus.publish(Event("story.end", now, self.viewer, 1.0, {
                "scene": current.id, "title": current.title, "episode": self.episode,
                "scenes": sum(1 for p in self.decisions if p.episode == self.episode)}, source=self.name))
            if self.stop_at_end:
                self.finished = True
                if self.on_end is not None:
                    self.on_end()
                return
            if self.restart_after_s > 0:
                self._ended = (now + self.restart_after_s, current)
                return
            self._play_start(now, previous=current)
            return
        if len(options) == 1:
            only = options[0]
            choice = Choice(only, f"only way on: '{only.title}' (intensity {only.intensity:.2f})", "only",
                            evidence={"trigger": None})
        else:
            choice = self._choose(current, options, now)
        if choice.rule not in ("authored", "only", "fallback", "untagged") and choice.scene.id != options[0].id:
            self.plot_changes += 1
        scene = self.player.follow(choice.scene.id)
        if scene is not choice.scene:
            choice = replace(choice, scene=scene)
        self._begin(choice, options, now, previous=current)

    def _choose(self, current: Scene, options: tuple[Scene, ...], now: float) -> Choice:
        try:
            choice = self.policy.choose(current, options, self.state, now)
            if choice.scene.id not in {o.id for o in options}:
                raise ValueError(f"chose {choice.scene.id!r}, which does not follow {current.id!r}")
            if not 0.0 <= choice.probability <= 1.0:
                raise ValueError(f"probability {choice.probability} outside [0, 1]")
            return choice
        except Exception as exc:  # noqa: BLE001 - a broken policy falls back to the authored path
            self.policy_errors += 1
            self.ctx.counters[f"{self.name}.policy_errors"] += 1
            log.exception("%s: policy failed at %r", self.name, current.id)
            first = options[0]
            return Choice(first, f"authored path: '{first.title}' (intensity {first.intensity:.2f}); policy failed "
                          f"({type(exc).__name__}: {exc})", "fallback", evidence={"trigger": None})

    def _play_start(self, now: float, previous: Scene | None) -> None:
        self.episode += 1
        self._cuts.clear()
        first = self.player.begin()
        if previous is None:
            if self.state.session_start is None:
                self.state.session_start = now
            reason = f"story start: '{first.title}'"
            rule = "start"
        else:
            reason = (f"story ended at '{previous.title}' (episode {self.episode - 1}): starting episode "
                      f"{self.episode} from '{first.title}'")
            if self.restart_after_s > 0:
                reason += f" after a {self.restart_after_s:g} s pause"
            rule = "restart"
        self._begin(Choice(first, reason, rule, evidence={"trigger": None}), (first,), now, previous)

    def _begin(self, choice: Choice, options: Sequence[Scene], now: float, previous: Scene | None) -> None:
        scene = choice.scene
        evidence = {
            "rule": choice.rule,
            **dict(choice.evidence),
            "options": {o.id: o.intensity for o in options},
            "state": self.state.summary(),
        }
        served = getattr(self.policy, "served", None)  # a group policy: whom the decision served (issue 21)
        if callable(served) and "served" not in evidence:
            evidence["served"] = list(served(now))
        target = self._target()
        directives = directives_for(scene, target)
        fields = scene_fields(scene)
        text = scene.text
        rewritten, rewritten_by, ai = False, None, False
        if self.rewriter is not None:
            try:
                rewrite = self.rewriter.take(len(self.decisions), scene,
                                             {"target_intensity": target, "facts": self.player.facts()})
            except Exception:  # noqa: BLE001 - rewriting is optional; the authored scene plays
                rewrite = None
                self.ctx.counters[f"{self.name}.rewrite_errors"] += 1
                log.exception("%s: taking the rewrite of %r failed", self.name, scene.id)
            if rewrite is not None:
                text = rewrite.text
                rewritten, rewritten_by, ai = True, rewrite.by, rewrite.ai_generated
                evidence["rewrite"] = dict(rewrite.notes)
        chosen_id = next((o.id for o in options if o.id == scene.id), None)
        alternatives = tuple(o.id for o in options if o.id != (chosen_id or scene.id))
        if chosen_id is None and len(options) > 1:  # ink: options are choices, the scene is where one led
            alternatives = tuple(o.id for o in options)
        try:
            upcoming = tuple(option_dict(o) for o in self.player.options(scene))
        except Exception:  # noqa: BLE001 - a player that cannot list its options still plays
            upcoming = ()
            log.exception("%s: listing the options after %r failed", self.name, scene.id)
        plan = ScenePlan(
            viewer=self.viewer, timestamp=now, episode=self.episode, scene=scene.id, title=fields["title"],
            text=text, duration_s=scene.duration_s, directives=directives, reason=choice.reason,
            evidence=evidence, probability=choice.probability, alternatives=alternatives,
            rewritten=rewritten, rewritten_by=rewritten_by, ai_generated=ai,
            intensity=fields["intensity"], tone=fields["tone"], speaker=fields["speaker"], cast=fields["cast"],
            act=fields["act"], ending=fields["ending"], media=fields["media"], tags=fields["tags"],
            variables=fields["variables"], fates=fields["fates"], upcoming=upcoming,
        )
        self.current = scene
        self.started_at = now
        self.decisions.append(plan)
        self.ctx.counters[f"{self.name}.scenes"] += 1
        self.ctx.bus.publish(Event("scene.start", now, self.viewer, choice.confidence, {
            "scene": scene.id, "title": plan.title, "intensity": scene.intensity, "tone": scene.tone,
            "duration_s": scene.duration_s, "episode": self.episode, "reason": choice.reason,
            "previous": previous.id if previous is not None else None}, source=self.name))
        if self.rewriter is not None and getattr(self.rewriter, "background", True):
            self._prepare_rewrites(scene)
        for callback in self.on_plan:
            try:
                callback(plan)
            except Exception:  # noqa: BLE001 - a broken player or log must not stop the story
                self.plan_errors += 1
                self.ctx.counters[f"{self.name}.plan_errors"] += 1
                log.exception("%s: on_plan callback %r failed", self.name, callback)

    def _prepare_rewrites(self, scene: Scene) -> None:
        """Start rewriting the scenes that may follow ``scene``, each against the story state after
        its own effects, while ``scene`` plays; never waited for."""
        self._prepared_target = self._target()
        try:
            upcoming = [self.player.peek(o.id) for o in self.player.options(scene)]
            cut = scene.tags.get("cut_to") if scene.tags else None
            if isinstance(cut, str) and hasattr(self.player, "peek_cut") and self._may_cut_to(cut):
                upcoming.append(self.player.peek_cut(cut))
            self.rewriter.prepare(len(self.decisions), upcoming, self._rewrite_context(scene))
        except Exception:  # noqa: BLE001 - rewriting is optional; the authored scenes play
            self.ctx.counters[f"{self.name}.rewrite_errors"] += 1
            log.exception("%s: preparing rewrites after %r failed", self.name, scene.id)
