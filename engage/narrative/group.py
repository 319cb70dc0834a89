"""Group policies: one film for several viewers, and whom each decision served.

A profile's ``[group]`` table (:class:`~engage.events.group.GroupConfig`) chooses how the film
follows a group:

``aggregate``
    the group as one: the pacing director and its policy see the group's engagement (the
    confidence-weighted mean of the ``GroupEngagement`` stream) and the group's events
    (``group.boredom.onset`` when k of n are bored …). Served: every viewer whose state is known.
``least-engaged``
    nobody left behind: the policy looks through the eyes of the least engaged viewer present
    (bored first, then the highest boredom over the last half-minute). Served: that viewer.
``majority``
    a vote at each choice point: every viewer present and sure votes for the option nearest to
    what their own pacing director wants; the most votes win (ties: the option written first);
    the group's director still limits plot changes. Served: the viewers who voted for it.
``personal``
    one film per viewer (each has their own screen): every viewer gets their own controller and
    policy, all started together (:class:`PersonalTracks`). Served: that viewer.

:class:`GroupPolicy` wraps the session's policy (a
:class:`~engage.narrative.policy.DirectorPolicy`) and hands it the state it should look through;
it also writes that state into the controller's own (so a plan's ``evidence.state`` and the state
players follow are the group's). Every choice's evidence says whom it served (``served``) and
what the group looked like (``group``); :meth:`GroupPolicy.served` answers for the decisions the
policy is not asked about (the story's start, a scene with one way on).

>>> from engage.events.group import GroupConfig
>>> tracker = GroupTracker(GroupConfig(viewers=("a", "b")))
>>> GroupPolicy("aggregate", None, tracker).name
'group-aggregate'
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Sequence

from engage.core import GROUP_VIEWER, Chunk, ConfigError, Event, Processor, StreamInfo
from engage.events.group import GROUP_POLICIES, GroupConfig

from .controller import Choice, ViewerState
from .director import Director
from .story import Scene

__all__ = ["GroupPolicy", "GroupTracker", "mirror_state"]

#: How long a viewer's boredom is averaged to tell who is least engaged (s).
SMOOTH_S = 30.0


def mirror_state(dst: ViewerState, src: ViewerState) -> None:
    """Copy what ``src`` knows (engagement row, boredom, arousal, attention) into ``dst``."""
    if dst is src:
        return
    dst.engagement = None if src.engagement is None else dict(src.engagement)
    dst.engagement_time = src.engagement_time
    dst.boredom, dst.arousal, dst.attention = src.boredom, src.arousal, src.attention


class GroupTracker(Processor):
    """What the group policies know, kept live from the session: each viewer's state (their
    engagement rows and events), the group's (the ``GroupEngagement`` rows and ``group.*`` events,
    as a :class:`ViewerState` of the group) and who is present.

    Parameters
    ----------
    config
        The group's configuration (``stale_s``, ``min_confidence``, the expected ``viewers``).
    """

    name = "group-tracker"

    def __init__(self, config: GroupConfig | None = None) -> None:
        self.config = config or GroupConfig()
        self.states: dict[str, ViewerState] = {v: ViewerState(v) for v in self.config.viewers}
        self.aggregate = ViewerState(GROUP_VIEWER)
        self._last: dict[str, float] = {}
        self._smooth: dict[str, tuple[float, float]] = {}
        self._bus = None

    def start(self, ctx) -> None:
        super().start(ctx)
        now = ctx.clock.now()
        for st in (*self.states.values(), self.aggregate):
            if st.session_start is None:
                st.session_start = now
        if self._bus is not ctx.bus:
            for prefix in ("boredom.", "arousal.", "attention.", "group."):
                ctx.bus.subscribe(self._on_event, prefix)
            self._bus = ctx.bus

    def state(self, viewer: str) -> ViewerState:
        st = self.states.get(viewer)
        if st is None:
            st = self.states[viewer] = ViewerState(viewer, session_start=self.aggregate.session_start)
        return st

    def accepts(self, info: StreamInfo) -> bool:
        return (info.type == "Engagement" and info.viewer not in ("", GROUP_VIEWER)) or info.type == "GroupEngagement"

    def process(self, chunk: Chunk) -> list[Chunk]:
        if len(chunk) == 0:
            return []
        if chunk.info.type == "GroupEngagement":
            names = chunk.info.channels
            row = {k: float(v) for k, v in zip(names, chunk.data[-1])}
            self.aggregate.engagement = {k: row.get(k, math.nan) for k in
                                         ("arousal", "boredom", "attention", "confidence", "quality")}
            self.aggregate.engagement_time = chunk.last_time
            return []
        viewer = chunk.info.viewer
        self.state(viewer).observe(chunk)
        col = chunk.info.channels.index("boredom") if "boredom" in chunk.info.channels else -1
        for t, row in zip(chunk.timestamps, chunk.data):
            t = float(t)
            self._last[viewer] = t
            b = float(row[col]) if col >= 0 else math.nan
            if not math.isfinite(b):
                continue
            prev = self._smooth.get(viewer)
            if prev is None:
                self._smooth[viewer] = (t, b)
            else:
                a = 1.0 - math.exp(-max(0.0, t - prev[0]) / SMOOTH_S)
                self._smooth[viewer] = (t, prev[1] + a * (b - prev[1]))
        return []

    def _on_event(self, event: Event) -> None:
        if event.viewer == GROUP_VIEWER and event.type.startswith("group."):
            self.aggregate.update(Event(event.type[len("group."):], event.timestamp, GROUP_VIEWER, event.confidence,
                                        event.evidence, event.source))
        elif event.viewer not in ("", GROUP_VIEWER) and not event.type.startswith("group."):
            self.state(event.viewer).update(event)

    @property
    def viewers(self) -> list[str]:
        """Every viewer of the group so far, in order."""
        return list(self.states)

    def present(self, now: float) -> list[str]:
        """The viewers with an engagement row at most ``stale_s`` old that is at least ``min_confidence`` sure."""
        out = []
        for v, st in self.states.items():
            t = self._last.get(v)
            conf = (st.engagement or {}).get("confidence", math.nan)
            if t is not None and now - t <= self.config.stale_s + 1e-9 and conf >= self.config.min_confidence:
                out.append(v)
        return out

    def least_engaged(self, now: float) -> str | None:
        """The present viewer least engaged now: a sure ``boredom.onset`` first (the earliest), then the
        highest boredom averaged over the last half-minute (ties: the first viewer)."""
        best, key = None, None
        for v in self.present(now):
            st = self.states[v]
            bored = st.bored(self.config.min_confidence)
            smooth = self._smooth.get(v, (0.0, 0.0))[1]
            k = (1, -bored.timestamp, smooth) if bored is not None else (0, 0.0, smooth)
            if key is None or k > key:
                best, key = v, k
        return best

    def boredom(self, viewer: str) -> float:
        """``viewer``'s boredom averaged over the last half-minute (NaN before their first row)."""
        return self._smooth.get(viewer, (0.0, math.nan))[1]


class GroupPolicy:
    """A group policy wrapping the session's policy (see the module docstring).

    Parameters
    ----------
    mode
        ``aggregate``, ``least-engaged`` or ``majority`` (``personal`` runs one controller per viewer
        instead: :class:`PersonalTracks`).
    policy
        The policy that chooses for the state it is handed (default: the pacing director's,
        :class:`~engage.narrative.policy.DirectorPolicy`).
    tracker
        The session's :class:`GroupTracker`.
    """

    def __init__(self, mode: str, policy: Any, tracker: GroupTracker) -> None:
        if mode not in GROUP_POLICIES or mode == "personal":
            raise ConfigError(f"group policy: {mode!r} is not one a single film plays (choose from "
                              f"{', '.join(m for m in GROUP_POLICIES if m != 'personal')}; 'personal' gives "
                              "each viewer their own film)")
        if policy is None:
            from .policy import DirectorPolicy

            policy = DirectorPolicy()
        self.mode = mode
        self.policy = policy
        self.tracker = tracker
        self.name = f"group-{mode}"
        self.directors: dict[str, Director] = {}  # majority: each voter's own pacing director
        self.votes: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        if name in ("policy", "tracker", "mode"):  # not set yet (copy/pickle): never recurse
            raise AttributeError(name)
        return getattr(self.policy, name)  # director, config … of the wrapped policy

    @property
    def config(self):
        return self.tracker.config

    # -- whose state --------------------------------------------------------------------------

    def _source(self, now: float) -> tuple[ViewerState, list[str], str]:
        """The state the wrapped policy looks through, the viewers it serves and a few words on why."""
        t = self.tracker
        present = t.present(now)
        n = len(t.viewers)
        if self.mode == "least-engaged":
            who = t.least_engaged(now)
            if who is not None:
                st = t.states[who]
                bored = st.bored(self.config.min_confidence)
                why = (f"bored since {st.clock(bored.timestamp)}" if bored is not None
                       else f"boredom {t.boredom(who):.2f} over the last {SMOOTH_S:g} s")
                return st, [who], (f"nobody left behind: following {who}, the least engaged of {len(present)} "
                                   f"present ({why})")
            return t.aggregate, [], "nobody left behind: no viewer present and sure; following the group"
        head = "the group as one" if self.mode == "aggregate" else "majority vote"
        return t.aggregate, present, f"{head}: {len(present)} of {n} viewers present and sure"

    def served(self, now: float) -> list[str]:
        """The viewers a decision made now serves."""
        return self._source(now)[1]

    def group_evidence(self, now: float) -> dict[str, Any]:
        """The group's state for a decision's evidence."""
        t = self.tracker
        row = t.aggregate.engagement or {}
        return {"policy": self.mode, "viewers": t.viewers, "present": t.present(now),
                "engagement": {k: row.get(k) for k in ("arousal", "boredom", "attention", "confidence")},
                "bored": t.aggregate.bored(self.config.min_confidence) is not None,
                "boredom": {v: round(t.boredom(v), 4) for v in t.viewers if math.isfinite(t.boredom(v))}}

    # -- the policy protocol --------------------------------------------------------------------

    def observe(self, state: ViewerState, now: float) -> None:
        source, _, _ = self._source(now)
        mirror_state(state, source)
        observe = getattr(self.policy, "observe", None)
        if observe is not None:
            observe(source, now)
        if self.mode == "majority":
            for v in self.tracker.present(now):
                st = self.tracker.states[v]
                d = self.directors.get(v)
                if d is None:
                    d = self.directors[v] = Director(getattr(self.policy, "config", None))
                row = st.engagement or {}
                conf = row.get("confidence", math.nan)
                d.observe(now, row.get("arousal"), conf if conf is not None else math.nan,
                          bored=st.bored(d.config.min_confidence) is not None,
                          overloaded=st.overloaded(d.config.min_confidence) is not None)

    def interrupt(self, current: Scene, elapsed: float, state: ViewerState, now: float) -> tuple[str, str] | None:
        interrupt = getattr(self.policy, "interrupt", None)
        if interrupt is None:
            return None
        source, served, why = self._source(now)
        cut = interrupt(current, elapsed, source, now)
        if cut is None:
            return None
        return cut[0], f"{why}; {cut[1]}"

    def choose(self, current: Scene, options: Sequence[Scene], state: ViewerState, now: float) -> Choice:
        source, served, why = self._source(now)
        mirror_state(state, source)
        if self.mode == "majority":
            return self._majority(current, options, source, served, now)
        choice = self.policy.choose(current, options, source, now)
        return replace(choice, reason=f"{why}; {choice.reason}", evidence={
            **dict(choice.evidence), "served": served, "group": self.group_evidence(now)})

    # -- majority ---------------------------------------------------------------------------

    def _majority(self, current: Scene, options: Sequence[Scene], group_state: ViewerState, voters: list[str],
                  now: float) -> Choice:
        director = getattr(self.policy, "director", None)
        act = str((current.tags or {}).get("act", "1"))
        allowed = [o for o in options if not (o.tags or {}).get("fate_point") or director is None
                   or director.may_take_fate(act)]
        authored = options[0]
        if authored not in allowed:
            allowed.insert(0, authored)
        votes: dict[str, str] = {}
        for v in voters:
            d = self.directors.get(v)
            if d is not None:
                target = d.target()
                votes[v] = min(allowed, key=lambda o: abs(o.intensity - target)).id
        if not votes:  # nobody to vote: the group's policy decides for the group as one
            choice = self.policy.choose(current, options, group_state, now)
            return replace(choice, reason=f"majority vote: nobody present and sure to vote; {choice.reason}",
                           evidence={**dict(choice.evidence), "served": [], "votes": {},
                                     "group": self.group_evidence(now)})
        tally = {o.id: sum(1 for x in votes.values() if x == o.id) for o in allowed}
        winner = max(allowed, key=lambda o: tally[o.id])  # max keeps the first of equals: the authored order
        chosen, rule, note = winner, "majority", ""
        if winner.id != authored.id and director is not None:
            ok, why_not = director.may_change_plot(now)
            if ok:
                fate = act if (winner.tags or {}).get("fate_point") else None
                director.record_change(now, fate)
            else:
                chosen, rule, note = authored, "authored", f"; no plot change: {why_not}"
        served = [v for v, x in votes.items() if x == chosen.id]
        counted = ", ".join(f"'{o.title}' {tally[o.id]}" for o in allowed)
        reason = (f"majority vote of {len(votes)} viewers ({counted}): '{winner.title}' (intensity "
                  f"{winner.intensity:.2f})" + note)
        if chosen is not winner:
            reason += f"; playing the authored '{chosen.title}'"
        self.votes.append({"t": now, "scene": current.id, "votes": dict(votes), "chosen": chosen.id})
        evidence = {"trigger": None, "policy": self.name, "votes": votes, "tally": tally, "served": served,
                    "group": self.group_evidence(now)}
        if chosen.id != authored.id:
            evidence["plot_change"] = True
        return Choice(chosen, reason, rule, 1.0, len(votes) / max(1, len(self.tracker.viewers)), evidence)


def fresh_player(story: Any) -> Any:
    """A player of ``story`` of its own (personal tracks: each viewer is somewhere else in the story).

    A :class:`~engage.narrative.story.Story` is returned as it is (each controller makes its own
    graph player); a graph player gives a new one over the same story; any other player (ink) is
    opened again from its file.
    """
    from pathlib import Path

    from .story import GraphPlayer, Story, open_story

    if isinstance(story, Story):
        return story
    if isinstance(story, GraphPlayer):
        return GraphPlayer(story.story)
    reopen = getattr(story, "reopen", None)
    if callable(reopen):
        return reopen()
    source = getattr(story, "source", None)
    if isinstance(source, str) and Path(source).is_file():
        return open_story(source)
    raise ConfigError("personal tracks play the story once per viewer, so it must be a story file engage can open "
                      f"again (got {type(story).__name__} from {source!r})")


class _Serving:
    """A viewer's own policy on a personal track: every decision serves that viewer."""

    def __init__(self, policy: Any, viewer: str) -> None:
        self.policy, self.viewer = policy, viewer

    def __getattr__(self, name: str) -> Any:
        if name in ("policy", "viewer"):
            raise AttributeError(name)
        return getattr(self.policy, name)

    def choose(self, current: Scene, options: Sequence[Scene], state: ViewerState, now: float) -> Choice:
        choice = self.policy.choose(current, options, state, now)
        return replace(choice, evidence={**dict(choice.evidence), "served": [self.viewer]})

    def served(self, now: float) -> list[str]:
        return [self.viewer]


class PersonalTracks(Processor):
    """Personal tracks: one :class:`~engage.narrative.controller.Controller` per viewer, each with its own
    story player and policy, all started at the session's first step (a shared start); a viewer who
    appears later starts their own film when they do. Quacks like one controller for the session
    (``decisions``, ``plot_changes``, ``stop_at_end``, ``on_end``, ``finished`` once every film ended).

    Parameters
    ----------
    story
        The story (each viewer gets a player of their own: :func:`fresh_player`).
    config
        The group's configuration: its ``viewers`` start together.
    make_policy
        ``make_policy(viewer)`` → that viewer's policy (default: a pacing-director policy each).
    on_plan
        Callbacks handed every viewer's scene plans.
    """

    name = "personal-tracks"

    def __init__(self, story: Any, config: GroupConfig, make_policy=None, on_plan=(), **controller_kw) -> None:
        from .policy import DirectorPolicy

        self.story = story
        self.config = config
        self.make_policy = make_policy or (lambda viewer: DirectorPolicy())
        self.on_plan = list(on_plan) if not callable(on_plan) else [on_plan]
        self.controller_kw = controller_kw
        self.controllers: dict[str, Any] = {}
        self.stop_at_end = bool(controller_kw.pop("stop_at_end", False))
        self.on_end = controller_kw.pop("on_end", None)
        self._restart_after_s = float(controller_kw.pop("restart_after_s", 0.0))
        self.ctx = None
        self._first = True
        for v in config.viewers:
            self._controller(v)

    def _controller(self, viewer: str):
        from .controller import Controller

        c = self.controllers.get(viewer)
        if c is None:
            first = not self.controllers
            c = Controller(self.story if first else fresh_player(self.story), viewer=viewer, on_plan=self.on_plan,
                           policy=_Serving(self.make_policy(viewer), viewer), stop_at_end=self.stop_at_end,
                           on_end=self._one_ended, restart_after_s=self._restart_after_s, **self.controller_kw)
            self.controllers[viewer] = c
            if self.ctx is not None:
                c.start(self.ctx)
        return c

    def _one_ended(self) -> None:
        if self.finished and self.on_end is not None:
            self.on_end()

    # -- one controller to the session ----------------------------------------------------------

    @property
    def finished(self) -> bool:
        return bool(self.controllers) and all(c.finished for c in self.controllers.values())

    @property
    def decisions(self) -> list:
        return sorted((p for c in self.controllers.values() for p in c.decisions), key=lambda p: p.timestamp)

    @property
    def plot_changes(self) -> int:
        return sum(c.plot_changes for c in self.controllers.values())

    @property
    def restart_after_s(self) -> float:
        return self._restart_after_s

    @restart_after_s.setter
    def restart_after_s(self, value: float) -> None:
        self._restart_after_s = float(value)
        for c in self.controllers.values():
            c.restart_after_s = float(value)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in ("stop_at_end",) and "controllers" in self.__dict__:
            for c in self.controllers.values():
                c.stop_at_end = value

    # -- Processor -------------------------------------------------------------------------------

    def start(self, ctx) -> None:
        super().start(ctx)
        for c in self.controllers.values():
            c.start(ctx)

    def accepts(self, info: StreamInfo) -> bool:
        return info.type == "Engagement" and info.viewer not in ("", GROUP_VIEWER)

    def process(self, chunk: Chunk) -> list[Chunk]:
        return self._controller(chunk.info.viewer).process(chunk)

    def tick(self, now: float) -> list[Chunk]:
        for c in list(self.controllers.values()):
            c.tick(now)
        return []

    def served(self, viewer: str) -> list[str]:
        return [viewer]
