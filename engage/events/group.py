"""Several viewers, one film: the group's engagement stream and its events.

:class:`GroupEngagement` is a pipeline step that reads every viewer's ``Engagement`` stream and
engagement events (``boredom.onset`` …) and writes, every ``hop_s`` seconds, one row of the
group's ``GroupEngagement`` stream, whose viewer is :data:`~engage.core.GROUP_VIEWER`:

=========================== ==================================================================
channel                     meaning
=========================== ==================================================================
``arousal``, ``boredom``,   the mean over the viewers present, each weighted by the confidence
``attention``               of their own row (a viewer whose sensors fail weighs nothing)
``*_spread``                the weighted standard deviation around that mean
``*_confidence``            the present viewers' confidences summed, over the group's size
``bored_share``,            the share of the viewers whose state is known (present and at least
``aroused_share``,          ``min_confidence`` sure) who are bored (an active ``boredom.onset``),
``attention_lost_share``    aroused (``arousal.high``) or have lost attention
``*_share_confidence``      how many viewers' state is known, over the group's size
``confidence``              the mean confidence over the whole group (a viewer absent counts 0)
``quality``                 the best quality of a viewer present
``viewers``, ``present``    the group's size n, and how many viewers have a row at most
                            ``stale_s`` old
=========================== ==================================================================

So a viewer who leaves, or whose sensors fail, lowers the group's **confidence**, not its
**score**: the mean is taken over who is there and sure, and the confidence says how much of the
group that was.

The group's size n is every viewer :class:`GroupConfig` names (the profile's viewers, including
one whose sensors never connect) plus every viewer whose streams reach the pipeline, in the order
they appeared.

**Group events** (viewer ``group``): ``group.boredom.onset`` when at least k of the n viewers have
been bored for ``dwell_s`` (k is ``GroupConfig.k``, or ``share`` × n rounded up; a k larger than
the group counts as the whole group), ``group.boredom.offset`` when fewer than k have been for as
long; likewise ``group.arousal.high``/``low`` and ``group.attention.lost``/``regained``. Each names
the viewers it counts, k, n, and its confidence is the share of the group whose state is known
times their mean confidence.

The rows do not depend on how the input is chunked or paced: the row of time t is made once every
viewer who has delivered engagement has delivered a row at or after t (so their state at t is
final), or ``max_wait_s`` of session time after t (a viewer who stopped).

>>> from engage.core import Chunk, Context, EventBus, VirtualClock
>>> from engage.models.rules import engagement_info
>>> g = GroupEngagement(GroupConfig(viewers=("a", "b")))
>>> g.start(Context(VirtualClock(), EventBus()))
>>> for v, boredom in (("a", 0.2), ("b", 0.6)):
...     _ = g.process(Chunk(engagement_info(v), np.array([[0.5, boredom, 1.0, 1.0, 1.0]] * 3), np.array([0.0, 1, 2])))
>>> chunk = g.tick(2.0)[0]
>>> row = dict(zip(chunk.info.channels, chunk.data[-1].tolist()))
>>> round(row["boredom"], 2), round(row["boredom_spread"], 2), row["present"], chunk.info.viewer
(0.4, 0.2, 2.0, 'group')
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

import numpy as np

from engage.core import GROUP_VIEWER, Chunk, ConfigError, Event, Processor, StreamInfo
from engage.core.safeload import finite_number

log = logging.getLogger(__name__)

__all__ = ["GROUP_CHANNELS", "GROUP_POLICIES", "GroupConfig", "GroupEngagement", "group_info"]

#: The group policies a profile may choose (played by :mod:`engage.narrative.group`).
GROUP_POLICIES = ("aggregate", "least-engaged", "majority", "personal")

#: (dimension, the viewer's on/off events, the group's on/off events, the share channel)
_DIMENSIONS = (
    ("boredom", ("boredom.onset", "boredom.offset"), ("group.boredom.onset", "group.boredom.offset"), "bored_share"),
    ("arousal", ("arousal.high", "arousal.low"), ("group.arousal.high", "group.arousal.low"), "aroused_share"),
    ("attention", ("attention.lost", "attention.regained"), ("group.attention.lost", "group.attention.regained"),
     "attention_lost_share"),
)
_SCORES = ("arousal", "boredom", "attention")

GROUP_CHANNELS = (
    "arousal", "arousal_spread", "arousal_confidence",
    "boredom", "boredom_spread", "boredom_confidence",
    "attention", "attention_spread", "attention_confidence",
    "bored_share", "bored_share_confidence",
    "aroused_share", "aroused_share_confidence",
    "attention_lost_share", "attention_lost_share_confidence",
    "confidence", "quality", "viewers", "present",
)
GROUP_UNITS = tuple("count" if c in ("viewers", "present") else "ratio" if "share" in c else "score"
                    for c in GROUP_CHANNELS)


def group_info(hop_s: float = 1.0) -> StreamInfo:
    """The ``GroupEngagement`` stream's info (viewer ``group``).

    >>> group_info().name, group_info().viewer
    ('group-engagement', 'group')
    """
    return StreamInfo("group-engagement", "GroupEngagement", GROUP_CHANNELS, GROUP_UNITS, 1.0 / hop_s,
                      "engage-group-engagement", viewer=GROUP_VIEWER)


def _positive(name: str, value: Any, integer: bool = False, upper: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise ConfigError(f"group: {name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if not (finite_number(value) and 0 < value <= upper):
        raise ConfigError(f"group: {name} must be > 0{f' and <= {upper:g}' if upper < math.inf else ''}, "
                          f"got {value!r}")
    return int(value) if integer else float(value)


@dataclass(frozen=True)
class GroupConfig:
    """How a group is aggregated and which policy plays the film for it (a profile's ``[group]`` table).

    Parameters
    ----------
    policy
        ``aggregate`` (the group as one), ``least-engaged`` (nobody left behind), ``majority``
        (a vote at each choice point) or ``personal`` (one film per viewer, shared start).
    k
        A group event needs at least this many viewers (default: ``share`` × n, rounded up).
    share
        The share of the group a group event needs when ``k`` is not given.
    dwell_s
        How long the condition must hold.
    hop_s
        The group stream's period.
    stale_s
        A viewer whose last engagement row is older than this is absent.
    min_confidence
        A viewer's state counts when their row is at least this sure.
    max_wait_s
        How long a row waits for a viewer who stopped delivering.
    viewers
        The viewers the group is expected to have (every viewer the profile's sensors name, by
        default); one who never appears counts in n with confidence 0.

    Examples
    --------
    >>> GroupConfig.from_table({"policy": "majority", "k": 2}).k
    2
    >>> GroupConfig(share=0.5).k_of(3)
    2
    """

    policy: str = "aggregate"
    k: int | None = None
    share: float = 0.5
    dwell_s: float = 5.0
    hop_s: float = 1.0
    stale_s: float = 5.0
    min_confidence: float = 0.5
    max_wait_s: float = 10.0
    viewers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.policy not in GROUP_POLICIES:
            raise ConfigError(f"group: unknown policy {self.policy!r} (choose from {', '.join(GROUP_POLICIES)})")
        if self.k is not None:
            _positive("k", self.k, integer=True)
        _positive("share", self.share, upper=1.0)
        for name in ("dwell_s", "hop_s", "stale_s", "max_wait_s"):
            _positive(name, getattr(self, name), upper=3600.0)
        if isinstance(self.min_confidence, bool) or not isinstance(self.min_confidence, (int, float)) or \
                not 0.0 <= self.min_confidence <= 1.0:
            raise ConfigError(f"group: min_confidence must be within [0, 1], got {self.min_confidence!r}")
        if isinstance(self.viewers, str) or not all(isinstance(v, str) and v for v in self.viewers):
            raise ConfigError(f"group: viewers must be a list of viewer ids, got {self.viewers!r}")
        if GROUP_VIEWER in self.viewers:
            raise ConfigError(f"group: {GROUP_VIEWER!r} is the group's own id, not a viewer's")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str = "[group]") -> "GroupConfig":
        """From a profile's ``[group]`` table; an unknown key or a bad value is a
        :class:`~engage.core.errors.ConfigError` naming ``where`` and the key."""
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: must be a table of keys, got {type(table).__name__}")
        known = [f.name for f in fields(cls)]
        values = dict(table)
        for key in values:
            if key not in known:
                raise ConfigError(f"{where}: unknown key {key!r} (allowed: {', '.join(known)})")
        if "viewers" in values:
            v = values["viewers"]
            if not isinstance(v, list):
                raise ConfigError(f"{where}: viewers must be a list of viewer ids, got {v!r}")
            values["viewers"] = tuple(v)
        for key in ("dwell_s", "hop_s", "stale_s", "max_wait_s", "share", "min_confidence"):
            if isinstance(values.get(key), int) and finite_number(values[key]):  # not a bool, and a float holds it
                values[key] = float(values[key])
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {str(exc).removeprefix('group: ')}") from None
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def k_of(self, n: int) -> int:
        """The k of a group of ``n`` (at least 1, at most n)."""
        k = self.k if self.k is not None else math.ceil(self.share * n - 1e-9)
        return max(1, min(int(k), max(n, 1)))


@dataclass
class _Member:
    """One viewer as the group sees them: their engagement rows and state transitions not yet settled."""

    viewer: str
    rows: deque = field(default_factory=deque)  # (t, arousal, boredom, attention, confidence, quality)
    last_t: float = -math.inf
    delivered: bool = False
    transitions: deque = field(default_factory=deque)  # (t, dimension, active, confidence)
    active: dict = field(default_factory=dict)  # dimension -> bool, as of the last settled time


@dataclass
class _GroupDim:
    active: bool = False
    since: float | None = None


class GroupEngagement(Processor):
    """The group's engagement stream and events (see the module docstring).

    ``members`` lists the group's viewers in order; :attr:`last_row` is the last row written (a dict).
    """

    name = "group"

    def __init__(self, config: GroupConfig | None = None) -> None:
        self.config = config or GroupConfig()
        self.info = group_info(self.config.hop_s)
        self.members: dict[str, _Member] = {v: _Member(v) for v in self.config.viewers}
        self._dims = {d[0]: _GroupDim() for d in _DIMENSIONS}
        self._next: float | None = None  # the next grid time to settle
        self._latest = -math.inf  # the latest engagement time seen
        self.last_row: dict[str, float] | None = None
        self.state: dict[str, bool] = {d[0]: False for d in _DIMENSIONS}
        self._bus = None

    def start(self, ctx) -> None:
        super().start(ctx)
        if self._bus is not ctx.bus:
            for prefix in ("boredom.", "arousal.", "attention."):
                ctx.bus.subscribe(self._on_event, prefix)
            self._bus = ctx.bus

    @property
    def viewers(self) -> list[str]:
        """The group's viewers, in order (the configured ones first, then as they appeared)."""
        return list(self.members)

    def _member(self, viewer: str) -> _Member:
        m = self.members.get(viewer)
        if m is None:
            m = self.members[viewer] = _Member(viewer)
            log.info("group: viewer %s joined (%d in the group)", viewer, len(self.members))
        return m

    def accepts(self, info: StreamInfo) -> bool:
        return info.type in ("Engagement", "Features") and info.viewer not in ("", GROUP_VIEWER)

    def process(self, chunk: Chunk) -> list[Chunk]:
        m = self._member(chunk.info.viewer)
        if chunk.info.type != "Engagement" or len(chunk) == 0:
            return []
        names = chunk.info.channels
        cols = [names.index(c) if c in names else -1 for c in (*_SCORES, "confidence", "quality")]
        for t, row in zip(chunk.timestamps, chunk.data):
            t = float(t)
            if not math.isfinite(t) or t < m.last_t:
                continue
            m.rows.append((t, *(float(row[c]) if c >= 0 else math.nan for c in cols)))
            m.last_t = t
            m.delivered = True
            if self._next is None:
                self._next = t
            self._latest = max(self._latest, t)
        return []

    def _on_event(self, event: Event) -> None:
        if event.viewer in ("", GROUP_VIEWER):
            return
        for dim, (on, off), _, _ in _DIMENSIONS:
            if event.type in (on, off):
                self._member(event.viewer).transitions.append(
                    (float(event.timestamp), dim, event.type == on, float(event.confidence)))
                return

    def tick(self, now: float) -> list[Chunk]:
        return self._settle(now, final=False)

    def flush(self, now: float) -> list[Chunk]:
        return self._settle(max(now, self._latest), final=True)

    def _settled(self, t: float, now: float, final: bool) -> bool:
        if t > (self._latest if final else now):
            return False
        if final or now >= t + self.config.max_wait_s:
            return True
        wait = self.config.max_wait_s  # a viewer silent this long has stopped (left, or their sensors did)
        return all(m.last_t >= t or now - m.last_t >= wait for m in self.members.values() if m.delivered)

    def _settle(self, now: float, final: bool) -> list[Chunk]:
        rows, times = [], []
        while self._next is not None and self._settled(self._next, now, final):
            t = self._next
            rows.append(self._row(t))
            times.append(t)
            self._next = t + self.config.hop_s
        return [Chunk.from_rows(self.info, rows, times)] if rows else []

    def _row(self, t: float) -> list[float]:
        cfg = self.config
        n = len(self.members)
        present, known = [], {d[0]: [] for d in _DIMENSIONS}
        for m in self.members.values():
            while len(m.rows) > 1 and m.rows[1][0] <= t:
                m.rows.popleft()
            while m.transitions and m.transitions[0][0] <= t:
                _, dim, on, _conf = m.transitions.popleft()
                m.active[dim] = on
            row = m.rows[0] if m.rows and m.rows[0][0] <= t and t - m.rows[0][0] <= cfg.stale_s else None
            if row is None:
                continue
            conf = min(1.0, max(0.0, row[4])) if math.isfinite(row[4]) else 0.0
            present.append((m, row, conf))
            if conf >= cfg.min_confidence:
                for dim, score in zip(_SCORES, row[1:4]):
                    if math.isfinite(score):
                        known[dim].append((m, conf))
        out: dict[str, float] = {}
        for j, dim in enumerate(_SCORES):
            xs = np.array([r[1 + j] for _, r, c in present if c > 0 and math.isfinite(r[1 + j])])
            ws = np.array([c for _, r, c in present if c > 0 and math.isfinite(r[1 + j])])
            if ws.sum() > 0:
                mean = float(np.sum(ws * xs) / ws.sum())
                out[dim] = mean
                out[f"{dim}_spread"] = float(math.sqrt(max(0.0, float(np.sum(ws * (xs - mean) ** 2) / ws.sum()))))
            else:
                out[dim] = out[f"{dim}_spread"] = math.nan
            out[f"{dim}_confidence"] = float(ws.sum()) / n if n else 0.0
        k = cfg.k_of(n)
        for dim, _, (on_type, off_type), share in _DIMENSIONS:
            sure = known[dim]
            active = [m for m, _ in sure if m.active.get(dim, False)]
            out[share] = len(active) / len(sure) if sure else math.nan
            out[f"{share}_confidence"] = len(sure) / n if n else 0.0
            self._group_event(dim, t, len(active) >= k, active, sure, k, n, len(present), on_type, off_type)
        out["confidence"] = sum(c for _, _, c in present) / n if n else 0.0
        qualities = [r[5] for _, r, _ in present if math.isfinite(r[5])]
        out["quality"] = max(qualities) if qualities else 0.0
        out["viewers"] = float(n)
        out["present"] = float(len(present))
        self.last_row = out
        return [out[c] for c in GROUP_CHANNELS]

    def _group_event(self, dim: str, t: float, holds: bool, active: Sequence[_Member],
                     sure: Sequence[tuple[_Member, float]], k: int, n: int, present: int, on_type: str,
                     off_type: str) -> None:
        st = self._dims[dim]
        wants = not holds if st.active else holds
        if not wants:
            st.since = None
            return
        if st.since is None:
            st.since = t
        dwell = t - st.since
        if dwell < self.config.dwell_s:
            return
        st.active = not st.active
        st.since = None
        self.state[dim] = st.active
        ids = [m.viewer for m in active]
        what = {"boredom": "bored", "arousal": "aroused", "attention": "with attention lost"}[dim]
        if st.active:
            reason = f"{len(ids)} of {n} viewers {what} ({', '.join(ids)}) for {dwell:.1f} s (k = {k})"
        else:
            reason = f"{len(ids)} of {n} viewers {what}, fewer than k = {k}, for {dwell:.1f} s"
        confidence = (len(sure) / n) * (sum(c for _, c in sure) / len(sure)) if sure and n else 0.0
        self.ctx.emit(on_type if st.active else off_type, t, confidence, {
            "reason": reason, "reason_code": f"group.{dim}.{'on' if st.active else 'off'}.k_of_n",
            "viewers": ids, "count": len(ids), "k": k, "n": n, "known": len(sure), "present": present,
            "dwell_s": dwell}, source=self.name, viewer=GROUP_VIEWER)
