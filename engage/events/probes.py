"""Thought probes (experience sampling): ask the viewer, now and then, how they feel.

Boredom has no labels in any dataset that can be had here; they have to come from the viewers'
own sessions. A probe is a short question on a scale ("How bored are you right now?", 1 = not at
all … 7 = extremely) shown on a schedule - at random, every N seconds, or at the end of each
scene - and answered by key, click or touch. Both the probe and its answer are **events** on the
session's bus, so they go wherever events go: ``events.jsonl``, the ``engage-events`` LSL marker
stream and the session's XDF recording, on the session clock:

``probe.shown``
    ``evidence``: ``probe`` (its id), ``reason`` (``random``, ``every``, ``scene end``) and
    ``questions`` (each with ``id``, ``text``, ``scale`` [low, high] and ``anchors``).
``probe.answer``
    stamped when answered; ``evidence``: ``probe``, ``question``, ``value``, ``scale``,
    ``shown_at`` (the probe's time), ``rt_s`` (response time) and ``by`` (``key``, ``click``,
    ``touch``, ``simulated``).
``probe.missed``
    a question not answered within ``timeout_s``; ``evidence``: ``probe``, ``question``, ``shown_at``.

:class:`ProbeScheduler` is the session step that shows them. A player (the browser player,
issue 13) shows each ``probe.shown`` and hands the reply back with :meth:`ProbeScheduler.answer`;
a *responder* - any object with ``answer_probe(question, t)`` returning something with ``value``
and ``rt_s``, such as a :class:`~engage.sensors.simulated.SimulatedViewer` - answers at once,
from what it experienced at ``t``. ``engage train --dataset xdf --label probe:boredom`` then
learns boredom from the recorded answers (:mod:`engage.datasets.xdf`).

>>> ProbeSchedule.parse("random:90/boredom,arousal").questions
('boredom', 'arousal')
>>> ProbeSchedule.parse("scene-end").mode
'scene-end'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from engage.core import Chunk, ConfigError, EngageError, Event, Processor

__all__ = ["ProbeError", "ProbeSchedule", "ProbeScheduler", "QUESTIONS", "Question"]


class ProbeError(EngageError):
    """An answer that cannot be taken (unknown or closed probe, a value off the scale)."""


@dataclass(frozen=True)
class Question:
    """One probe question: its id, its text, its scale and the words at each end.

    Parameters
    ----------
    id
        How answers and labels name it (``probe:<id>``).
    text
        What the viewer reads.
    scale
        The lowest and highest answer (whole numbers).
    anchors
        What the two ends mean.

    Examples
    --------
    >>> QUESTIONS["boredom"].scale
    (1, 7)
    """

    id: str
    text: str
    scale: tuple[int, int] = (1, 7)
    anchors: tuple[str, str] = ("not at all", "extremely")

    def as_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "scale": list(self.scale), "anchors": list(self.anchors)}


QUESTIONS: dict[str, Question] = {
    "boredom": Question("boredom", "How bored are you right now?"),
    "arousal": Question("arousal", "How calm or excited do you feel right now?", anchors=("very calm", "very excited")),
    "on_task": Question("on_task", "Just before this question, were you thinking about the film?", (0, 1),
                        ("about something else", "about the film")),
}
MODES = ("random", "every", "scene-end")


@dataclass(frozen=True)
class ProbeSchedule:
    """When probes are shown and what they ask.

    Parameters
    ----------
    mode
        ``random`` (intervals of ``min_gap_s`` plus an exponential wait, ``interval_s`` on
        average), ``every`` (every ``interval_s``) or ``scene-end`` (when a scene ends, i.e. at
        each ``scene.start`` but the first).
    interval_s
        Mean (random) or fixed (every) seconds between probes.
    questions
        Ids of :data:`QUESTIONS`, asked together.
    min_gap_s
        Never two probes closer than this, and the first not before it.
    timeout_s
        A question not answered this long after it was shown is missed.
    seed
        Random schedule's seed.

    Examples
    --------
    >>> ProbeSchedule.parse("every:60").interval_s
    60.0
    """

    mode: str = "random"
    interval_s: float = 90.0
    questions: tuple[str, ...] = ("boredom",)
    min_gap_s: float = 30.0
    timeout_s: float = 30.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"probe schedule: unknown mode {self.mode!r} (use {', '.join(MODES)})")
        if not (math.isfinite(self.interval_s) and 5.0 <= self.interval_s <= 86_400):
            raise ConfigError(f"probe schedule: interval must be 5 s to a day, got {self.interval_s!r}")
        if not (math.isfinite(self.min_gap_s) and 0.0 <= self.min_gap_s <= self.interval_s):
            raise ConfigError("probe schedule: the minimum gap must be between 0 and the interval")
        unknown = [q for q in self.questions if q not in QUESTIONS]
        if unknown or not self.questions:
            raise ConfigError(f"probe schedule: unknown question(s) {', '.join(unknown) or '(none)'} "
                              f"(known: {', '.join(QUESTIONS)})")

    @classmethod
    def parse(cls, text: str, seed: int = 0) -> "ProbeSchedule":
        """``MODE[:SECONDS][/QUESTION,QUESTION…]``: ``random:90``, ``every:60/boredom,arousal``, ``scene-end``.

        Parameters
        ----------
        text
            The specification (``--probes`` on the command line).
        seed
            For the random schedule.

        Returns
        -------
        ProbeSchedule
            The schedule; a :class:`~engage.core.ConfigError` says what is wrong with the text.
        """
        spec, _, questions = str(text).strip().partition("/")
        mode, _, seconds = spec.partition(":")
        kw: dict[str, Any] = {"mode": mode.strip(), "seed": int(seed)}
        if seconds.strip():
            try:
                kw["interval_s"] = float(seconds)
            except ValueError:
                raise ConfigError(f"probe schedule {text!r}: {seconds!r} is not a number of seconds") from None
            kw["min_gap_s"] = min(30.0, kw["interval_s"] / 3)
        if questions.strip():
            kw["questions"] = tuple(q.strip() for q in questions.split(",") if q.strip())
        return cls(**kw)


@dataclass
class _Open:
    probe: int
    viewer: str
    shown_at: float
    pending: set[str] = field(default_factory=set)


class ProbeScheduler(Processor):
    """Shows probes on a :class:`ProbeSchedule` and records the answers (see the module docstring).

    Parameters
    ----------
    schedule
        When and what to ask.
    viewers
        Whom to ask (default: the viewers of ``responders``, else the session's viewer).
    responders
        Viewer → an object answering at once (``answer_probe(question, t)``), e.g. a simulated viewer.

    Examples
    --------
    >>> from engage.core import EventBus, Runtime, VirtualClock
    >>> from engage.sensors.simulated import SimulatedViewer
    >>> viewer = SimulatedViewer(seed=1)
    >>> probes = ProbeScheduler(ProbeSchedule("every", 30.0, min_gap_s=10.0), responders={"viewer-1": viewer})
    >>> rt = Runtime(VirtualClock(), [viewer], [probes], bus=EventBus())
    >>> events = []
    >>> rt.bus.subscribe(events.append, "probe.")
    >>> _ = rt.run(duration=100.0)
    >>> [e.type for e in events][:4]
    ['probe.shown', 'probe.answer', 'probe.shown', 'probe.answer']
    """

    name = "probes"

    def __init__(self, schedule: ProbeSchedule, viewers: tuple[str, ...] | None = None,
                 responders: Mapping[str, Any] | None = None) -> None:
        self.schedule = schedule
        self.responders = dict(responders or {})
        self.viewers = tuple(viewers) if viewers else tuple(self.responders)
        self._rng = np.random.default_rng([schedule.seed, 0x9B0BE])
        self._start: float | None = None
        self._next: float | None = None
        self._scene_ends: list[float] = []
        self._scenes_seen = 0
        self._count = 0
        self._open: dict[int, _Open] = {}
        self._answers: list[tuple[float, int, str, Any]] = []  # (time, probe, question, answer) not yet due

    def start(self, ctx) -> None:
        super().start(ctx)
        if not self.viewers:
            self.viewers = (ctx.viewer,)
        if self.schedule.mode == "scene-end":
            ctx.bus.subscribe(self._on_scene, "scene.start")

    def _on_scene(self, event: Event) -> None:
        self._scenes_seen += 1
        if self._scenes_seen > 1:  # the first scene.start ends nothing
            self._scene_ends.append(float(event.timestamp))

    def _schedule_after(self, t: float) -> float:
        s = self.schedule
        if s.mode == "every":
            return t + s.interval_s
        return t + s.min_gap_s + float(self._rng.exponential(max(s.interval_s - s.min_gap_s, 1e-9)))

    def _due(self, now: float) -> list[tuple[float, str]]:
        if self.schedule.mode == "scene-end":
            due = [(t, "scene end") for t in self._scene_ends if t <= now]
            self._scene_ends = [t for t in self._scene_ends if t > now]
            return due
        if self._start is None:
            self._start = now
            self._next = now + (self.schedule.interval_s if self.schedule.mode == "every"
                                else self._schedule_after(now) - now)
        due = []
        while self._next is not None and self._next <= now:
            due.append((self._next, self.schedule.mode))
            self._next = self._schedule_after(self._next)
        return due

    def tick(self, now: float) -> list[Chunk]:
        for t, reason in self._due(now):
            self._show(t, reason)
        self._deliver(now)
        return []

    def flush(self, now: float) -> list[Chunk]:
        self._deliver(now)
        for p in list(self._open.values()):
            for q in sorted(p.pending):
                self._miss(p, q)
        self._open.clear()
        return []

    def _show(self, t: float, reason: str) -> None:
        questions = [QUESTIONS[q].as_dict() for q in self.schedule.questions]
        for viewer in self.viewers:
            self._count += 1
            probe = self._count
            self._open[probe] = _Open(probe, viewer, t, set(self.schedule.questions))
            self.ctx.emit("probe.shown", t, 1.0, {"probe": probe, "reason": reason, "questions": questions},
                          source=self.name, viewer=viewer)
            responder = self.responders.get(viewer)
            if responder is None:
                continue
            for q in self.schedule.questions:
                ans = responder.answer_probe(q, t)
                if ans is not None:
                    self._answers.append((t + float(ans.rt_s), probe, q, ans))
            self._answers.sort(key=lambda a: (a[0], a[1]))

    def _deliver(self, now: float) -> None:
        while self._answers and self._answers[0][0] <= now:
            t, probe, q, ans = self._answers.pop(0)
            if probe in self._open and q in self._open[probe].pending:
                self.answer(probe, q, ans.value, t, by="simulated")
        for p in list(self._open.values()):
            if now - p.shown_at > self.schedule.timeout_s:
                for q in sorted(p.pending):
                    self._miss(p, q)
                del self._open[p.probe]

    def _miss(self, p: _Open, question: str) -> None:
        p.pending.discard(question)
        self.ctx.emit("probe.missed", p.shown_at + self.schedule.timeout_s, 0.0,
                      {"probe": p.probe, "question": question, "shown_at": p.shown_at}, source=self.name,
                      viewer=p.viewer)

    def answer(self, probe: int, question: str, value: float, timestamp: float, by: str = "key") -> Event:
        """Record a viewer's answer (what a player calls when a key, click or touch answers).

        Parameters
        ----------
        probe
            The ``probe`` id of its ``probe.shown`` event.
        question
            The question's id.
        value
            The answer, on the question's scale.
        timestamp
            When it was given, on the session clock.
        by
            How: ``key``, ``click``, ``touch`` (``simulated`` for a responder).

        Returns
        -------
        Event
            The ``probe.answer`` event published.

        Raises
        ------
        ProbeError
            An unknown or closed probe, a question it did not ask, a value off the scale or an
            answer before the probe.
        """
        p = self._open.get(int(probe))
        if p is None:
            raise ProbeError(f"probe {probe!r} is not open (unknown, answered or timed out)")
        if question not in p.pending:
            raise ProbeError(f"probe {probe}: no open question {question!r} (open: {', '.join(sorted(p.pending))})")
        lo, hi = QUESTIONS[question].scale
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ProbeError(f"probe {probe}: answer {value!r} is not a number") from None
        if not (lo <= v <= hi) or v != round(v):
            raise ProbeError(f"probe {probe}: answer {value!r} is not on the scale {lo}-{hi}")
        t = float(timestamp)
        if not (math.isfinite(t) and t >= p.shown_at):
            raise ProbeError(f"probe {probe}: an answer at {timestamp!r} before the probe at {p.shown_at:.3f}")
        p.pending.discard(question)
        if not p.pending:
            del self._open[p.probe]
        return self.ctx.emit("probe.answer", t, 1.0, {
            "probe": p.probe, "question": question, "value": int(v), "scale": [lo, hi], "shown_at": p.shown_at,
            "rt_s": round(t - p.shown_at, 3), "by": str(by)}, source=self.name, viewer=p.viewer)
