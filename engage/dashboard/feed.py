"""The dashboard's feed: a session observer that turns chunks, events and plans into small JSON messages.

:class:`DashboardFeed` is a :class:`~engage.session.SessionObserver`: the session routes every chunk
to it (raw and derived streams), and it hears every event and every scene plan. It keeps what a
page needs to draw the present (the last minutes of heart rate, EDA, gaze and blinks, engagement,
the events, the decisions, each stream's status) and fans JSON messages out to subscribers.

The pipeline thread must never wait for a browser. So:

* traces are **downsampled** on the data clock (bins of ``1 / points_per_s`` seconds, the mean of
  each bin) and each series is **sent at most** ``max_rate`` times per wall-clock second, however
  fast a replay runs;
* a chunk is only **kept** when it arrives; it is turned into points when its series is next due to be
  sent (or a snapshot is taken), so a fast replay pays the per-chunk work once per message, not per step;
* every subscriber has a **bounded queue**; when a slow or stalled client lets it fill, the queued
  messages are dropped and counted, and the client is sent a fresh snapshot once it reads again,
  so its view is whole again rather than silently missing a stretch.

Message kinds (each a JSON object with ``kind``): ``snapshot`` (everything, sent first),
``series`` (new points of one series), ``event``, ``plan`` (with the upcoming options when the
story is known, and the ``film``: media cues, next candidates to preload, the viewer's choice, see
:mod:`engage.dashboard.film`), ``status`` (per-stream rate, last-sample age and gaps), ``adapt``
(the grade and the mix following the viewer's state within a scene), ``choice`` (a viewer's pick was
taken), ``probe`` (a thought probe shown, answered or missed, or a page's answer refused), ``pong``.

Pages may send: ``{"op": "ping"}``, ``{"op": "snapshot"}``, ``{"op": "choose", "scene", "at",
"option", "via", "response_s"}`` (the viewer's pick, for the scene that started at ``at``),
``{"op": "probe", "probe", "question", "value", "elapsed_s", "via"}`` (an answer to a thought probe,
:mod:`engage.dashboard.probes`) and ``{"op": "media_error", "url", "error"}`` (a file the browser could
not play; logged once).

>>> from engage.core import Event
>>> feed = DashboardFeed()
>>> sub = feed.subscribe()
>>> feed.on_event(Event("boredom.onset", 12.0, "viewer-1", 0.8, {"boredom": 0.7}))
>>> [json.loads(m)["kind"] for m in sub.drain()]
['event', 'adapt']
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from engage.core import Chunk, Event, Processor, StreamInfo
from engage.narrative.plan import ScenePlan

from .audience import Audience
from .film import Film
from .probes import ProbeDesk

log = logging.getLogger(__name__)

#: Message kinds a subscriber may ask for.
KINDS = ("snapshot", "series", "event", "plan", "status", "adapt", "choice", "probe", "pong")

#: Stream types the pipeline derives (and any ``…Relative``); every other stream is shown as a sensor.
DERIVED_TYPES = frozenset({"HeartRate", "HRV", "EDAFeatures", "FaceFeatures", "Features", "FeaturesRelative",
                           "Engagement", "EngagementRules", "RespirationRate", "WristFeatures", "SignalQuality",
                           "RPPG", "PulseWave", "GroupEngagement"})


def is_derived(stream_type: str) -> bool:
    """Whether the pipeline makes streams of this type (a sensor's own streams are shown first).

    >>> is_derived("HeartRate"), is_derived("WristFeaturesRelative"), is_derived("ECG")
    (True, True, False)
    """
    return stream_type in DERIVED_TYPES or stream_type.endswith("Relative")


@dataclass(frozen=True)
class SeriesSpec:
    """Which channels of which stream type make one dashboard series."""

    key: str
    type: str
    channels: tuple[str, ...]


#: The series the dashboard draws. Streams of the same type (heart rate from ECG and from a strap)
#: share one series; a channel a stream lacks is sent as null.
SERIES: tuple[SeriesSpec, ...] = (
    SeriesSpec("hr", "HeartRate", ("hr_bpm", "quality")),
    SeriesSpec("eda", "EDAFeatures", ("tonic_us", "phasic_us", "quality")),
    SeriesSpec("face", "FaceFeatures", ("on_screen", "face_present", "blink_rate", "perclos", "quality")),
    SeriesSpec("gaze", "Face", ("gaze_x", "gaze_y", "gaze_on_screen")),
    SeriesSpec("engagement", "Engagement", ("arousal", "boredom", "attention", "confidence", "quality")),
)
_BY_TYPE = {s.type: s for s in SERIES}
_BY_KEY = {s.key: s for s in SERIES}

#: At most this many chunks wait, per series or stream status, before they are folded in anyway (they are
#: folded in when a message is due, so in a fast replay the per-chunk work is done once per batch).
_MAX_DEFERRED = 256


def _num(x: float) -> float | None:
    return round(float(x), 4) if math.isfinite(x) else None


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class Subscriber:
    """One client's bounded queue of encoded messages (filled by the pipeline, drained by the server).

    ``notify`` is called (from the pipeline's thread) when the queue goes from empty to non-empty;
    the server uses it to wake its sender. When the queue is full, everything queued is dropped and
    counted in :attr:`dropped`, and :attr:`resync` asks the sender for a fresh snapshot.
    """

    def __init__(self, topics: Iterable[str] = KINDS, maxlen: int = 256,
                 notify: Callable[[], None] | None = None) -> None:
        if maxlen < 1:
            raise ValueError(f"a subscriber queue needs room for at least one message, got {maxlen}")
        self.topics = frozenset(topics)
        self.maxlen = int(maxlen)
        self.notify = notify
        self.dropped = 0
        self.resync = False
        self.sent = 0
        #: wall time of the last snapshot sent to this client (snapshots are rate-limited per client)
        self.last_snapshot = -math.inf
        self._items: deque[str] = deque()
        self._lock = threading.Lock()
        self._signalled = False

    def put(self, message: str) -> None:
        with self._lock:
            if len(self._items) >= self.maxlen:
                self.dropped += len(self._items)
                self._items.clear()
                self.resync = True
            self._items.append(message)
            wake = not self._signalled
            self._signalled = True
        if wake and self.notify is not None:
            try:
                self.notify()
            except Exception:  # noqa: BLE001 - a closed event loop: the server is going away
                log.debug("dashboard subscriber: notify failed", exc_info=True)

    def drain(self) -> list[str]:
        """Every queued message, oldest first; the queue is left empty."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._signalled = False
        self.sent += len(items)
        return items

    def __len__(self) -> int:
        return len(self._items)


class _Downsampler:
    """Causal bin means on the data clock: ``add`` returns the bins that a later sample closed."""

    def __init__(self, width: float, n: int) -> None:
        self.width = width
        self.bin: int | None = None
        self.sum = np.zeros(n)
        self.count = np.zeros(n)
        self.t = 0.0

    def add(self, t: np.ndarray, x: np.ndarray) -> tuple[list[float], list[list[float | None]]]:
        if len(t) == 0:
            return [], []
        bins = np.floor(t / self.width).astype(np.int64)
        finite = np.isfinite(x)
        values = np.where(finite, x, 0.0)
        if bins[0] == bins[-1]:  # the usual case: a chunk within one bin
            starts = np.zeros(1, dtype=np.intp)
            sums, counts = values.sum(axis=0)[None, :], finite.sum(axis=0, dtype=np.float64)[None, :]
            last_t, seg_bins = t[-1:], bins[:1]
        else:
            starts = np.concatenate(([0], np.flatnonzero(bins[1:] != bins[:-1]) + 1))
            sums = np.add.reduceat(values, starts, axis=0)
            counts = np.add.reduceat(finite.astype(np.float64), starts, axis=0)
            last_t = t[np.concatenate((starts[1:], [len(t)])) - 1]
            seg_bins = bins[starts]
        closed_sums, closed_counts, closed_t = [], [], []
        first = 0
        if self.bin is not None and seg_bins[0] == self.bin:  # the open bin goes on
            self.sum += sums[0]
            self.count += counts[0]
            self.t = float(last_t[0])
            first = 1
        if first < len(starts):  # a new bin began: the open one is complete, and so is every segment but the last
            if self.bin is not None:
                closed_sums.append(self.sum[None, :])
                closed_counts.append(self.count[None, :])
                closed_t.append(np.array([self.t]))
            closed_sums.append(sums[first:-1])
            closed_counts.append(counts[first:-1])
            closed_t.append(last_t[first:-1])
            self.bin = int(seg_bins[-1])
            self.sum = sums[-1].astype(np.float64).copy()
            self.count = counts[-1].astype(np.float64).copy()
            self.t = float(last_t[-1])
        if not closed_t:
            return [], []
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.concatenate(closed_sums) / np.concatenate(closed_counts)
        values = [[None if v != v else v for v in row] for row in np.round(means, 4).tolist()]
        return np.round(np.concatenate(closed_t), 3).tolist(), values


class _StreamStatus:
    def __init__(self, info: StreamInfo, window_s: float) -> None:
        self.info = info
        self.window_s = window_s
        self.samples = 0
        self.first: float | None = None
        self.last: float | None = None
        self.recent: deque[tuple[float, float, int]] = deque()
        self.gaps = 0
        self.gap_s = 0.0
        #: timestamps of chunks not yet counted: counting waits until a status is asked for (a fast replay
        #: hands over a chunk per stream per step, a page is sent a status twice a wall second)
        self._unfolded: list[np.ndarray] = []

    def add(self, timestamps: np.ndarray) -> None:
        """Count a (non-empty) chunk's timestamps; they are read, never written, and folded in later."""
        self._unfolded.append(timestamps)
        if len(self._unfolded) >= _MAX_DEFERRED:
            self._fold()

    def _fold(self) -> None:
        unfolded, self._unfolded = self._unfolded, []
        recent, window = self.recent, self.window_s
        for ts in unfolded:
            first, last = float(ts[0]), float(ts[-1])
            self.samples += len(ts)
            if self.first is None:
                self.first = first
            self.last = last if self.last is None else max(self.last, last)
            recent.append((first, last, len(ts)))
            while recent and recent[0][1] < self.last - window:
                recent.popleft()

    def rate(self, now: float) -> float | None:
        """Samples per second over the last ``window_s`` of data (intervals between samples / their span)."""
        self._fold()
        recent = [r for r in self.recent if r[1] >= now - self.window_s]
        if not recent:
            return 0.0 if self.last is not None else None
        n = sum(r[2] for r in recent)
        span = recent[-1][1] - recent[0][0]
        return (n - 1) / span if n > 1 and span > 0 else None

    def to_dict(self, now: float) -> dict[str, Any]:
        rate = self.rate(now)  # counts the chunks not yet counted first
        return {
            "name": self.info.name, "type": self.info.type, "sensor": not is_derived(self.info.type),
            "nominal_rate": _num(self.info.nominal_rate), "rate": None if rate is None else _num(rate),
            "age_s": None if self.last is None else _num(max(0.0, now - self.last)),
            "samples": self.samples, "gaps": self.gaps, "gap_s": _num(self.gap_s),
        }


_LEAD = object()  # a stream whose rows go to the engagement panel if it is the lead's


class DashboardFeed(Processor):
    """The session observer behind the dashboard (see the module docstring).

    ``story`` (optional) lets plan messages list the scenes that may come next. ``points_per_s``
    is the trace resolution on the data clock, ``max_rate`` the most messages per series per wall
    second, ``history_s`` how much of each trace a new page gets, ``queue_size`` each client's bound.
    ``media`` (a :class:`~engage.media.MediaLibrary`) gives the player its clips, stills and sounds;
    ``choice_window_s`` is how long before a scene's end a choice is put to the viewer (0: never).
    :attr:`choices` holds the viewer's picks for the controller
    (:class:`~engage.narrative.choice.ViewerChoicePolicy`).
    """

    name = "dashboard"

    def __init__(self, story: Any = None, points_per_s: float = 10.0, max_rate: float = 10.0,
                 history_s: float = 180.0, max_events: int = 200, max_plans: int = 50,
                 queue_size: int = 256, status_interval: float = 0.5, snapshot_interval: float = 1.0,
                 wall_clock: Callable[[], float] = time.monotonic, media: Any = None,
                 choice_window_s: float = 10.0) -> None:
        for label, value in (("points_per_s", points_per_s), ("max_rate", max_rate), ("history_s", history_s),
                             ("status_interval", status_interval), ("snapshot_interval", snapshot_interval)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"dashboard feed: {label} must be a positive number, got {value!r}")
        self.story = story
        self.film = Film(story, media=media, choice_window_s=choice_window_s)
        self.probes = ProbeDesk()
        #: several viewers: each one's engagement and the group's (sent as ``status.viewers``)
        self.audience = Audience()
        #: whose engagement the main panel shows: the first viewer's, or the group's once it has a row
        self.lead: str | None = None
        #: whose heart rate, EDA and face the panels show (several viewers' would be drawn as one line)
        self.person: str | None = None
        self.points_per_s = float(points_per_s)
        self.min_interval = 1.0 / float(max_rate)
        self.status_interval = float(status_interval)
        #: a client gets at most one snapshot per this many wall seconds, and ``/api/state`` answers from a
        #: snapshot at most this old: a page (or a script) asking in a loop cannot slow the pipeline down
        self.snapshot_interval = float(snapshot_interval)
        self.snapshots_built = 0
        self._state_json: tuple[float, str] | None = None
        self.queue_size = int(queue_size)
        self._wall = wall_clock
        self._lock = threading.RLock()
        self._subscribers: list[Subscriber] = []
        n_hist = int(history_s * points_per_s) + 1
        self._history: dict[str, deque[tuple[float, list[float | None]]]] = {
            s.key: deque(maxlen=n_hist) for s in SERIES}
        self._pending: dict[str, list[tuple[float, list[float | None]]]] = {s.key: [] for s in SERIES}
        self._last_sent: dict[str, float] = {}
        self._samplers: dict[StreamInfo, _Downsampler] = {}
        self._columns: dict[StreamInfo, list[int]] = {}
        #: per stream: its status and the series it feeds (None: none; _LEAD: the engagement panel's choice)
        self._routes: dict[StreamInfo, tuple[_StreamStatus, Any]] = {}
        #: per series, its chunks in order of arrival not yet turned into points: that is done when the series
        #: is due to be sent (or a snapshot is taken), once per batch rather than once per chunk
        self._deferred: dict[str, list[Chunk]] = {s.key: [] for s in SERIES}
        self._blinks: deque[tuple[float, float]] = deque(maxlen=500)
        self._pending_blinks: list[tuple[float, float]] = []
        self._events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self._plans: deque[dict[str, Any]] = deque(maxlen=max_plans)
        self._streams: dict[StreamInfo, _StreamStatus] = {}
        self._gap_unmatched = 0
        #: The session's time zero: the earliest sample of the first step (derived streams reach an observer
        #: before the raw chunk they came from, so not simply the first chunk seen).
        self.origin: float | None = None
        self._earliest: float | None = None
        self.now: float | None = None
        self._last_status = -math.inf
        #: Counters: messages published (per subscriber delivery), dropped, malformed client messages.
        self.published = 0
        self.malformed = 0
        self._dropped_gone = 0

    # -- subscribers ---------------------------------------------------------------------------

    def subscribe(self, topics: Iterable[str] = KINDS, notify: Callable[[], None] | None = None,
                  maxlen: int | None = None) -> Subscriber:
        """A new client queue; its first message is a snapshot (call :meth:`snapshot_message` to resend)."""
        sub = Subscriber(topics, maxlen or self.queue_size, notify)
        with self._lock:
            self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)
                self._dropped_gone += sub.dropped

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @property
    def dropped(self) -> int:
        """Messages dropped for clients that did not keep up (current and departed clients)."""
        with self._lock:
            return self._dropped_gone + sum(s.dropped for s in self._subscribers)

    def _publish(self, kind: str, payload: Mapping[str, Any]) -> None:
        with self._lock:
            targets = [s for s in self._subscribers if kind in s.topics]
            if not targets:
                return
            text = _dumps({"kind": kind, "origin": self.origin, **payload})  # origin: the session's time zero
            for sub in targets:
                sub.put(text)
                self.published += 1

    # -- the observer --------------------------------------------------------------------------

    def accepts(self, info: StreamInfo) -> bool:
        return not info.is_string

    def process(self, chunk: Chunk) -> list[Chunk]:
        ts = chunk.timestamps
        if len(ts) == 0:
            return []
        info = chunk.info
        with self._lock:
            if self.origin is None:  # fixed at the first tick: the earliest sample of the first step
                first = float(ts[0])
                self._earliest = first if self._earliest is None else min(self._earliest, first)
            route = self._routes.get(info)
            if route is None:
                route = self._routes[info] = self._route(info)
            status, spec = route
            status.add(ts)
            if spec is _LEAD:
                self.audience.add(chunk)
                spec = self._engagement_spec(info)
            if spec is not None:
                deferred = self._deferred[spec.key]
                deferred.append(chunk)
                if len(deferred) >= _MAX_DEFERRED:
                    self._fold(spec.key)
                self._maybe_send(spec.key)
        return []

    def _route(self, info: StreamInfo) -> tuple[_StreamStatus, Any]:
        """A new stream's status and series: heart rate, EDA and face are one person's (the first seen),
        engagement follows :meth:`_engagement_spec` row by row."""
        status = self._streams.get(info)
        if status is None:
            status = self._streams[info] = _StreamStatus(info, window_s=10.0)
        if info.type in ("Engagement", "GroupEngagement"):
            return status, _LEAD
        spec = _BY_TYPE.get(info.type)
        if spec is not None:
            if self.person is None:
                self.person = info.viewer
            if info.viewer != self.person:
                spec = None
        return status, spec

    def _engagement_spec(self, info: StreamInfo) -> SeriesSpec | None:
        """The engagement series follows one stream (several viewers' rows interleaved would be a
        sawtooth): the first viewer's, then the group's from its first row on; every viewer's rows go
        to :attr:`audience`."""
        spec = _BY_TYPE["Engagement"]
        group = info.type == "GroupEngagement"
        if group and self.lead != info.viewer:  # the group's stream takes the main panel over
            self.lead = info.viewer
            self._history[spec.key].clear()
            self._pending[spec.key] = []
            self._deferred[spec.key] = []
        elif self.lead is None:
            self.lead = info.viewer
        return spec if info.viewer == self.lead else None

    def _fold(self, key: str) -> None:
        """Turn the series' deferred chunks into points (and blinks), each run of one stream's chunks at once."""
        chunks = self._deferred[key]
        if not chunks:
            return
        self._deferred[key] = []
        spec = _BY_KEY[key]
        start = 0
        while start < len(chunks):
            info = chunks[start].info
            stop = start + 1
            while stop < len(chunks) and (chunks[stop].info is info or chunks[stop].info == info):
                stop += 1
            run = chunks[start:stop]
            if len(run) == 1:
                self._add_series(spec, info, run[0].data, run[0].timestamps)
            else:
                self._add_series(spec, info, np.concatenate([c.data for c in run]),
                                 np.concatenate([c.timestamps for c in run]))
            start = stop

    def _add_series(self, spec: SeriesSpec, info: StreamInfo, data: np.ndarray, t: np.ndarray) -> None:
        cols = self._columns.get(info)
        if cols is None:
            cols = self._columns[info] = [info.channels.index(c) if c in info.channels else -1 for c in spec.channels]
        data = np.asarray(data, dtype=np.float64)
        if min(cols) >= 0:
            x = data[:, cols]
        else:
            x = np.full((len(t), len(cols)), np.nan)
            for j, c in enumerate(cols):
                if c >= 0:
                    x[:, j] = data[:, c]
        t = np.asarray(t, dtype=np.float64)
        if spec.key == "face" and "blink_duration" in info.channels:
            d = data[:, info.channels.index("blink_duration")]
            for i in np.flatnonzero(d > 0):  # NaN compares False
                blink = (round(float(t[i]), 3), round(float(d[i]), 3))
                self._blinks.append(blink)
                self._pending_blinks.append(blink)
        if spec.key == "engagement" or info.nominal_rate == 0:  # slow or per-beat: every row
            points = [(round(ti, 3), [_num(v) for v in row]) for ti, row in zip(t.tolist(), x.tolist())]
        else:
            sampler = self._samplers.get(info)
            if sampler is None:
                sampler = self._samplers[info] = _Downsampler(1.0 / self.points_per_s, len(spec.channels))
            ts, vs = sampler.add(t, x)
            points = list(zip(ts, vs))
        self._history[spec.key].extend(points)
        self._pending[spec.key].extend(points)

    def _maybe_send(self, key: str, force: bool = False) -> None:
        wall = self._wall()
        if not force and wall - self._last_sent.get(key, -math.inf) < self.min_interval:
            return
        self._fold(key)
        pending = self._pending[key]
        blinks = self._pending_blinks if key == "face" else []
        if not pending and not blinks:
            return
        self._last_sent[key] = wall
        spec = _BY_KEY[key]
        payload: dict[str, Any] = {"series": key, "channels": list(spec.channels),
                                   "t": [p[0] for p in pending], "v": [p[1] for p in pending]}
        if key == "face":
            payload["blinks"] = [list(b) for b in blinks]
            self._pending_blinks = []
        self._pending[key] = []
        self._publish("series", payload)

    def tick(self, now: float) -> list[Chunk]:
        with self._lock:
            self.now = float(now)
            if self.origin is None:
                self.origin = self._earliest if self._earliest is not None else self.now
            for spec in SERIES:
                self._maybe_send(spec.key)
            wall = self._wall()
            if wall - self._last_status >= self.status_interval:
                self._last_status = wall
                self._publish("status", self._status())
            for sub, answer, why in self.probes.deliver(self.now):
                if sub is not None:
                    sub.put(_dumps({"kind": "probe", "refused": why, "probe": answer["probe"],
                                    "question": answer["question"]}))
        return []

    def close(self) -> None:
        with self._lock:
            for spec in SERIES:
                self._maybe_send(spec.key, force=True)
            if self.now is not None:
                self._publish("status", {**self._status(), "ended": True})

    def _status(self) -> dict[str, Any]:
        now = self.now if self.now is not None else 0.0
        streams = sorted(self._streams.values(), key=lambda s: (is_derived(s.info.type), s.info.name))
        return {"now": _num(now), "origin": self.origin, "streams": [s.to_dict(now) for s in streams],
                "unmatched_gaps": self._gap_unmatched, "lead": self.lead, "person": self.person,
                "viewers": self.audience.to_list() if self.audience.several else []}

    @property
    def choices(self):
        """The viewer's picks (a :class:`~engage.narrative.choice.ChoiceBox`) for the session's controller."""
        return self.film.choices

    def on_event(self, event: Event) -> None:
        d = event.to_dict()
        with self._lock:
            if event.type == "sensor.gap":
                self._count_gap(event)
            self._events.append(d)
            self._publish("event", {"event": d})
            mood = self.film.on_event(event)
            if mood is not None:
                self._publish("adapt", {"mood": mood})
            self.audience.on_event(d)
            if self.probes.on_event(d):
                self._publish("probe", {"event": d})

    def attach_probes(self, answer: Callable[..., Any]) -> None:
        """Let pages answer the session's thought probes: ``answer(probe, question, value, timestamp, by=…)`` is
        the probe scheduler's (``engage.events.probes.ProbeScheduler.answer``), called on the pipeline's thread."""
        self.probes.attach(answer)

    def _count_gap(self, event: Event) -> None:
        stream = str(event.evidence.get("stream", ""))
        duration = event.evidence.get("duration_s")
        matched = [s for s in self._streams.values() if s.info.name == stream or s.info.source_id == stream]
        if not matched:
            self._gap_unmatched += 1
            return
        for s in matched:
            s.gaps += 1
            if isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0:
                s.gap_s += float(duration)

    def on_story(self, story: Any) -> None:
        """The session's story (a :class:`~engage.session.Session` calls this), unless one was given."""
        if self.story is None:
            self.story = story
        self.film.on_story(story)

    def on_plan(self, plan: ScenePlan) -> None:
        d = self._plan_dict(plan)
        with self._lock:
            self._plans.append(d)
            # wall: when it left (Unix time), so a page can measure the delay to the first frame of its clip
            self._publish("plan", {"plan": d, "wall": round(time.time(), 4)})

    def _plan_dict(self, plan: ScenePlan) -> dict[str, Any]:
        d = plan.to_dict()
        d["decision_at"] = _num(plan.timestamp + plan.duration_s)
        # The options the controller listed with the plan (ink choices, graph scenes); for a plan
        # without them, the story graph's choices when the story is a graph.
        upcoming = [{"scene": str(o.get("id")), "title": str(o.get("title")), "intensity": _num(o.get("intensity")),
                     "tone": o.get("tone")} for o in plan.upcoming]
        if not upcoming and self.story is not None and callable(getattr(self.story, "choices", None)):
            try:
                for s in self.story.choices(plan.scene):
                    upcoming.append({"scene": s.id, "title": s.title, "intensity": _num(s.intensity),
                                     "tone": s.tone, "duration_s": _num(s.duration_s)})
            except Exception:  # noqa: BLE001 - a rewritten or cut-to scene the story graph does not list
                log.debug("dashboard: no options for scene %r", plan.scene, exc_info=True)
        d["upcoming"] = upcoming
        # No options after it: an ending (known when there is a story, or the plan is one the controller
        # wrote with its options, i.e. has the scene's intensity).
        d["last"] = not upcoming and (self.story is not None or plan.intensity is not None)
        try:
            d["film"] = self.film.describe(plan)
        except Exception:  # noqa: BLE001 - the player then shows the plan's text alone
            log.exception("dashboard: describing scene %r for the player failed", plan.scene)
            d["film"] = None
        return d

    # -- snapshots -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything a page needs to draw the present (a JSON-safe dict)."""
        with self._lock:
            self.snapshots_built += 1
            for spec in SERIES:
                self._fold(spec.key)
            return {
                "kind": "snapshot",
                "origin": self.origin, "now": self.now,
                "series": {s.key: {"channels": list(s.channels), "t": [p[0] for p in self._history[s.key]],
                                   "v": [p[1] for p in self._history[s.key]]} for s in SERIES},
                "blinks": [list(b) for b in self._blinks],
                "events": list(self._events), "plans": list(self._plans),
                "status": self._status(), "mood": dict(self.film.mood), "film": self.film.about(),
                "probes": self.probes.snapshot(),
            }

    def snapshot_message(self, sub: Subscriber) -> str:
        """A snapshot for ``sub``, taken with its queue cleared so that nothing it receives next is older."""
        with self._lock:
            sub.drain()
            sub.resync = False
            sub.last_snapshot = self._wall()
            return _dumps(self.snapshot())

    def snapshot_due_in(self, sub: Subscriber) -> float:
        """Wall seconds until ``sub`` may be sent its next snapshot (0 when it may now)."""
        return max(0.0, sub.last_snapshot + self.snapshot_interval - self._wall())

    def state_json(self) -> str:
        """The snapshot as JSON for polling clients (``/api/state``), rebuilt at most every
        :attr:`snapshot_interval` wall seconds however many clients ask."""
        now = self._wall()
        cached = self._state_json
        if cached is None or now - cached[0] >= self.snapshot_interval:
            cached = self._state_json = (now, _dumps(self.snapshot()))
        return cached[1]

    def client_message(self, sub: Subscriber, text: str | bytes | None) -> None:
        """Handle a message from a page: ``{"op": "ping"}`` → ``pong``; ``{"op": "snapshot"}`` → a fresh
        snapshot; ``{"op": "choose", …}`` → the viewer's pick, announced to every page as a ``choice``
        message when taken; ``{"op": "media_error", …}`` → a logged warning. Anything else is ignored and
        counted in :attr:`malformed`."""
        op = msg = None
        if isinstance(text, str) and len(text) <= 4096:
            try:
                msg = json.loads(text)
            except ValueError:
                msg = None
            if isinstance(msg, dict):
                op = msg.get("op")
        if op == "ping":
            sub.put(_dumps({"kind": "pong", "now": self.now}))
        elif op == "snapshot":
            sub.resync = True
            sub.put(_dumps({"kind": "pong", "now": self.now}))  # wakes the sender
        elif op == "choose" and self._choose(sub, msg):
            pass
        elif op == "probe" and (why := self.probes.take(msg, sub)) != "malformed":
            if why is not None:
                sub.put(_dumps({"kind": "probe", "refused": why, "probe": msg.get("probe"),
                                "question": msg.get("question")}))
        elif op == "media_error" and isinstance(msg.get("url"), str):
            self._media_error(msg)
        else:
            with self._lock:
                self.malformed += 1

    def _choose(self, sub: Subscriber, msg: dict[str, Any]) -> bool:
        scene, at, option = msg.get("scene"), msg.get("at"), msg.get("option")
        if not (isinstance(scene, str) and isinstance(option, str) and isinstance(at, (int, float))):
            return False
        via = msg.get("via") if msg.get("via") in ("key", "click", "touch") else "click"
        taken = self.film.choices.put(scene, float(at), option, via=via, response_s=msg.get("response_s"))
        payload = {"scene": scene, "at": at, "option": option, "via": via, "taken": taken}
        if taken:
            log.info("viewer chose %r in scene %r (by %s)", option, scene, via)
            with self._lock:
                self._publish("choice", payload)
        else:
            sub.put(_dumps({"kind": "choice", **payload}))
        return True

    def _media_error(self, msg: dict[str, Any]) -> None:
        url = str(msg["url"])[:300]
        error = str(msg.get("error", "unknown"))[:200]
        scene = msg.get("scene")
        where = f" of scene {str(scene)[:80]!r}" if isinstance(scene, str) else ""
        text = f"media: the player could not play {url}{where} ({error}); the scene plays without it"
        media = self.film.media
        if media is not None:
            media.warn(text)
        else:
            log.warning("%s", text)

    def stats(self) -> dict[str, int]:
        return {"published": self.published, "dropped": self.dropped, "malformed": self.malformed,
                "subscribers": self.subscribers}


def parse_topics(text: str | None) -> Sequence[str]:
    """``"plan,event"`` → the kinds a client wants (unknown names ignored; none given → all).

    >>> parse_topics("plan,event,nonsense")
    ('snapshot', 'event', 'plan', 'pong')
    """
    if not text:
        return KINDS
    wanted = {t.strip() for t in text.split(",")}
    return tuple(k for k in KINDS if k in wanted or k in ("snapshot", "pong"))
