"""Thought probes on the player page: the probes a session shows (``probe.shown`` events) go to the page, the
viewer's answers (key, click or touch) come back and are handed to the session's probe scheduler on the
pipeline's thread.

The scheduler (``engage.events.probes.ProbeScheduler``) owns the probes: it shows them on a schedule, takes
answers through its ``answer(probe, question, value, timestamp, by)`` and publishes ``probe.answer`` (or
``probe.missed``) events, which the session records (events.jsonl, LSL markers, XDF). :class:`ProbeDesk` is
the dashboard's side: it remembers the open probes (a page that connects late still sees them), queues the
answers pages send (from the server's thread) and, on each pipeline tick, hands them to the scheduler, stamped
on the session clock: the probe's time plus the time the page measured from showing it to the answer.

>>> desk = ProbeDesk()
>>> desk.on_event({"type": "probe.shown", "timestamp": 10.0, "viewer": "viewer-1",
...                "evidence": {"probe": 1, "questions": [{"id": "boredom", "scale": [1, 7]}]}})
True
>>> desk.take({"op": "probe", "probe": 1, "question": "boredom", "value": 5, "elapsed_s": 2.5, "via": "key"}, None)
>>> calls = []
>>> desk.attach(lambda *args, **kw: calls.append((args, kw)))
>>> desk.deliver(now=13.0)
[]
>>> calls
[((1, 'boredom', 5, 12.5), {'by': 'key'})]
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any, Callable, Mapping

log = logging.getLogger(__name__)

#: At most this many answers wait for the next tick (a page sending a flood is cut off, and counted).
MAX_QUEUED = 64


class ProbeDesk:
    """The open probes and the answers waiting for the pipeline (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open: dict[int, dict[str, Any]] = {}
        self._queue: list[tuple[dict[str, Any], Any]] = []
        self._answer: Callable[..., Any] | None = None
        self.taken = 0
        self.refused = 0

    def attach(self, answer: Callable[..., Any]) -> None:
        """The scheduler's ``answer(probe, question, value, timestamp, by=…)`` (the session wires it)."""
        self._answer = answer

    @property
    def attached(self) -> bool:
        return self._answer is not None

    def on_event(self, event: Mapping[str, Any]) -> bool:
        """Keep track of ``probe.*`` events (as dicts); True for a probe event (the page is told about it)."""
        kind = event.get("type", "")
        if not str(kind).startswith("probe."):
            return False
        ev = event.get("evidence") or {}
        probe = ev.get("probe")
        with self._lock:
            if kind == "probe.shown" and isinstance(probe, int):
                questions = [q for q in ev.get("questions", []) if isinstance(q, Mapping) and "id" in q]
                self.open[probe] = {"probe": probe, "shown_at": float(event.get("timestamp", 0.0)),
                                    "viewer": event.get("viewer"), "questions": questions,
                                    "pending": {q["id"] for q in questions}}
            elif kind in ("probe.answer", "probe.missed") and probe in self.open:
                pending = self.open[probe]["pending"]
                pending.discard(ev.get("question"))
                if not pending:
                    del self.open[probe]
        return True

    def snapshot(self) -> list[dict[str, Any]]:
        """The probes still open, for a page that has just connected."""
        with self._lock:
            return [{k: (sorted(v) if k == "pending" else v) for k, v in p.items()} for p in self.open.values()]

    def take(self, msg: Mapping[str, Any], sub: Any) -> str | None:
        """Queue a page's answer ``{"op": "probe", "probe", "question", "value", "elapsed_s", "via"}``; returns why
        it was refused at once (malformed, not open), or None when it waits for the next tick."""
        probe, question, value = msg.get("probe"), msg.get("question"), msg.get("value")
        elapsed = msg.get("elapsed_s")
        if not (isinstance(probe, int) and isinstance(question, str) and isinstance(value, (int, float))
                and not isinstance(value, bool) and math.isfinite(value)):
            return "malformed"
        if not (isinstance(elapsed, (int, float)) and math.isfinite(elapsed) and 0 <= elapsed < 86_400):
            elapsed = None
        via = msg.get("via") if msg.get("via") in ("key", "click", "touch") else "click"
        with self._lock:
            p = self.open.get(probe)
            if p is None or question not in p["pending"]:
                self.refused += 1
                return "not open"
            if len(self._queue) >= MAX_QUEUED:
                self.refused += 1
                return "too many answers"
            self._queue.append(({"probe": probe, "question": question, "value": value, "elapsed_s": elapsed,
                                 "via": via, "shown_at": p["shown_at"]}, sub))
        return None

    def deliver(self, now: float) -> list[tuple[Any, dict[str, Any], str]]:
        """Hand the queued answers to the scheduler (on the pipeline's thread); returns ``(sub, answer, why)`` for
        each it refused, so the page that sent it can be told."""
        with self._lock:
            queue, self._queue = self._queue, []
        refused = []
        for answer, sub in queue:
            if self._answer is None:
                refused.append((sub, answer, "this session shows no probes"))
                continue
            t = now if answer["elapsed_s"] is None else min(now, answer["shown_at"] + answer["elapsed_s"])
            try:
                self._answer(answer["probe"], answer["question"], answer["value"], t, by=answer["via"])
                self.taken += 1
            except Exception as exc:  # noqa: BLE001 - the scheduler says why (closed, off the scale, …)
                self.refused += 1
                refused.append((sub, answer, str(exc)))
                log.info("probe answer refused: %s", exc)
        return refused
