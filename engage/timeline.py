"""A readable timeline of a session for the terminal: scenes, decisions, events, periodic scores.

>>> import io
>>> buf = io.StringIO(); tp = TimelinePrinter(buf, origin=0.0)
>>> tp.on_event(Event("boredom.onset", 75.0, "viewer-1", 0.9, {"reason": "boredom 0.70 ≥ 0.65 for 5.0 s"}))
>>> print(buf.getvalue().strip())
01:15.0  !  boredom.onset        confidence 0.90  boredom 0.70 ≥ 0.65 for 5.0 s
"""

from __future__ import annotations

from typing import TextIO

from engage.core import GROUP_VIEWER, Chunk, Event, Processor, StreamInfo


def clock_text(seconds: float) -> str:
    """``75.0`` → ``'01:15.0'``."""
    seconds = max(0.0, seconds)
    return f"{int(seconds // 60):02d}:{seconds % 60:04.1f}"


class TimelinePrinter(Processor):
    name = "timeline"
    #: pipeline errors printed per failing step; every one is still an event and a counter
    MAX_ERRORS_SHOWN = 3

    def __init__(self, out: TextIO, status_every_s: float = 30.0, origin: float | None = None) -> None:
        self.out = out
        self.status_every_s = status_every_s
        self.origin = origin
        self._next_status: dict[str, float] = {}
        self._errors: dict[str, int] = {}
        self._viewers: set[str] = set()  # several viewers: every line names its viewer

    def start(self, ctx) -> None:
        super().start(ctx)
        if self.origin is None:
            self.origin = ctx.clock.now()

    def _t(self, t: float) -> str:
        if self.origin is None:
            self.origin = t
        return clock_text(t - self.origin)

    def accepts(self, info: StreamInfo) -> bool:
        return info.type == "Engagement"

    def process(self, chunk: Chunk) -> list[Chunk]:
        viewer = chunk.info.viewer
        self._viewers.add(viewer)
        for t, row in zip(chunk.timestamps, chunk.data):
            due = self._next_status.get(viewer)
            if due is None or t >= due:
                v = dict(zip(chunk.info.channels, row))
                self._line(t, ".", "state", f"arousal {v['arousal']:.2f}  boredom {v['boredom']:.2f}  "
                                            f"attention {v['attention']:.2f}  (confidence {v['confidence']:.2f})",
                           viewer)
                self._next_status[viewer] = t + self.status_every_s
        return []

    def _line(self, t: float, mark: str, what: str, text: str, viewer: str | None = None) -> None:
        several = len(self._viewers) > 1 or viewer == GROUP_VIEWER  # the group's lines: from the story's start on
        who = f"{viewer}: " if viewer is not None and several else ""
        self.out.write(f"{self._t(t)}  {mark}  {what:<20} {who}{text}\n")

    def on_event(self, e: Event) -> None:
        ev = e.evidence
        line = lambda t, mark, what, text: self._line(t, mark, what, text, e.viewer)  # noqa: E731
        if e.type == "scene.start":
            line(e.timestamp, ">", f"scene {ev.get('scene', '?')}",
                 f"\"{ev.get('title', '')}\" intensity {float(ev.get('intensity', 0)):.2f} -- {ev.get('reason', '')}")
        elif e.type == "story.end":
            line(e.timestamp, "#", "story.end", str(ev.get("ending", ev.get("scene", ""))))
        elif e.type == "baseline.ready":
            line(e.timestamp, ".", "baseline.ready", f"from {ev.get('samples', '?')} feature windows")
        elif e.type == "sensor.gap":
            line(e.timestamp, "~", "sensor.gap",
                 f"{ev.get('stream', ev.get('source', ''))} {float(ev.get('duration_s') or 0):.1f} s "
                 f"({ev.get('reason', '')})")
        elif e.type == "pipeline.error":
            # a step that fails on every chunk would flood the timeline: the first few are shown, all are counted
            step = str(ev.get("processor", ev.get("source", "?")))
            n = self._errors[step] = self._errors.get(step, 0) + 1
            if n <= self.MAX_ERRORS_SHOWN:
                more = " (further errors of this step are counted, not shown)" if n == self.MAX_ERRORS_SHOWN else ""
                line(e.timestamp, "!", "pipeline.error", f"{step}: {ev.get('error', '')}{more}")
        elif e.type == "marker":
            line(e.timestamp, "|", "marker", f"{ev.get('stream', '')}: {ev.get('value', '')}")
        else:
            line(e.timestamp, "!", e.type, f"confidence {e.confidence:.2f}  {ev.get('reason', '')}")
