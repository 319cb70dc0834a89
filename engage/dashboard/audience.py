"""The dashboard's view of an audience: each viewer's engagement and the group's, for small multiples.

With several viewers in a session (issue 21), the dashboard's main engagement panel shows one
stream (the group's when there is one, else the first viewer's); :class:`Audience` keeps, for every
viewer and for the group, the last engagement row, the last two minutes of arousal, boredom and
attention (one point per row) and which states are on (bored, aroused, attention lost, from their
events), and the feed sends it with every status message (``status.viewers``).

>>> import numpy as np
>>> from engage.core import Chunk
>>> from engage.models.rules import engagement_info
>>> a = Audience()
>>> a.add(Chunk(engagement_info("ann"), np.array([[0.4, 0.7, 0.9, 0.8, 1.0]]), np.array([5.0])))
>>> a.on_event({"type": "boredom.onset", "viewer": "ann", "timestamp": 5.0})
>>> v = a.to_list()[0]
>>> v["viewer"], v["boredom"], v["flags"]
('ann', 0.7, ['bored'])
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from engage.core import GROUP_VIEWER, Chunk

__all__ = ["Audience"]

_CHANNELS = ("arousal", "boredom", "attention", "confidence")
#: event type -> (flag, on); the group's events are the same with a ``group.`` prefix
_FLAGS = {"boredom.onset": ("bored", True), "boredom.offset": ("bored", False),
          "arousal.high": ("aroused", True), "arousal.low": ("aroused", False),
          "attention.lost": ("attention lost", True), "attention.regained": ("attention lost", False)}


def _num(x: float) -> float | None:
    return round(float(x), 4) if math.isfinite(x) else None


class Audience:
    """Each viewer's (and the group's) latest engagement, a short trace and their on-states.

    Parameters
    ----------
    history_s
        How much of each viewer's trace is kept (data-clock seconds).
    """

    def __init__(self, history_s: float = 120.0) -> None:
        self.history_s = float(history_s)
        self._viewers: dict[str, dict[str, Any]] = {}

    def _entry(self, viewer: str) -> dict[str, Any]:
        v = self._viewers.get(viewer)
        if v is None:
            v = self._viewers[viewer] = {"viewer": viewer, "group": viewer == GROUP_VIEWER, "t": None,
                                         **{c: None for c in _CHANNELS}, "flags": {},
                                         "trace": deque(), "extra": {}}
        return v

    def add(self, chunk: Chunk) -> None:
        """An ``Engagement`` (a viewer's) or ``GroupEngagement`` (the group's) chunk."""
        if len(chunk) == 0:
            return
        names = chunk.info.channels
        v = self._entry(chunk.info.viewer or "viewer")
        cols = [names.index(c) if c in names else -1 for c in _CHANNELS]
        data = np.asarray(chunk.data, dtype=np.float64)
        for t, row in zip(chunk.timestamps, data):
            vals = [_num(row[c]) if c >= 0 else None for c in cols]
            v["trace"].append((round(float(t), 3), vals[:3]))
        while v["trace"] and v["trace"][-1][0] - v["trace"][0][0] > self.history_s:
            v["trace"].popleft()
        last = data[-1]
        v["t"] = round(float(chunk.timestamps[-1]), 3)
        for c, j in zip(_CHANNELS, cols):
            v[c] = _num(last[j]) if j >= 0 else None
        if v["group"]:
            v["extra"] = {k: _num(last[names.index(k)]) for k in ("viewers", "present", "bored_share",
                                                                   "aroused_share", "boredom_spread")
                          if k in names}

    def on_event(self, event: dict[str, Any]) -> None:
        """An event (as a dict): a viewer's state events set their flags, ``group.*`` the group's."""
        kind, viewer = str(event.get("type", "")), str(event.get("viewer", ""))
        if viewer == GROUP_VIEWER and kind.startswith("group."):
            kind = kind[len("group."):]
        elif viewer == GROUP_VIEWER or kind.startswith("group."):
            return
        flag = _FLAGS.get(kind)
        if flag is not None and viewer:
            self._entry(viewer)["flags"][flag[0]] = flag[1]

    @property
    def several(self) -> bool:
        """More than one viewer, or a group: worth small multiples."""
        return len(self._viewers) > 1

    def to_list(self) -> list[dict[str, Any]]:
        """Every viewer (by id), the group first, as JSON-safe dicts (``trace``: ``[t, [arousal, boredom, attention]]``)."""
        out = []
        for v in sorted(self._viewers.values(), key=lambda v: (not v["group"], v["viewer"])):
            out.append({"viewer": v["viewer"], "group": v["group"], "t": v["t"],
                        **{c: v[c] for c in _CHANNELS}, **v["extra"],
                        "flags": sorted(k for k, on in v["flags"].items() if on),
                        "trace": [[t, vals] for t, vals in v["trace"]]})
        return out
