"""One session = one pipeline, whatever the source: simulated viewer, recording or live sensors.

:func:`build_processors` lists the pipeline's steps in order (signals → models → events →
narrative); :class:`Session` wires them to the sources, the clock and the outputs (JSON lines,
LSL, timeline, plot) and runs them. ``engage demo``, ``engage replay`` and live sessions differ
only in the sources and the clock they hand in.

>>> from engage.core import VirtualClock
>>> s = Session([], VirtualClock(), story=None)
>>> s.run(duration=2.0).stats.steps
20
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence, TextIO, runtime_checkable

import numpy as np

from engage.core import GROUP_VIEWER, Chunk, Clock, Event, EventBus, Processor, Runtime, RunStats, Source, StreamInfo
from engage.core.rows import RowBuffer
from engage.events.group import GroupConfig, GroupEngagement
from engage.events.lsl_outlets import LslOutletSink
from engage.events.markers import MarkerEvents
from engage.events.publishers import JsonlEventWriter, LslEventOutlet
from engage.events.state_machine import EngagementStateMachine
from engage.models.baseline import BaselineCalibrator
from engage.models.rules import RuleEngagementModel
from engage.models.windows import FeatureWindow
from engage.narrative.config import NarrativeConfig, story_cast
from engage.narrative.controller import Controller
from engage.narrative.plan import ScenePlan, ScenePlanWriter
from engage.narrative.policy import DirectorPolicy
from engage.narrative.story import Story
from engage.signals.cardiac import EcgHeartRate, PpgHeartRate, StrapRrHeartRate
from engage.signals.eda import EdaFeatures
from engage.signals.quality import SignalQualityIndex
from engage.signals.respiration import RespirationRate
from engage.signals.face import FaceFeatures
from engage.signals.rppg import RppgHeartRate

if TYPE_CHECKING:
    from engage.models.persistence import LoadedModel

log = logging.getLogger(__name__)


class PerViewer(Processor):
    """One instance of a pipeline step per viewer: ``factory(viewer)`` builds the step for a viewer
    the first time a stream of theirs reaches it, and each instance sees only that viewer's chunks
    (a baseline, a feature window, a model's history is never shared between two people).

    :attr:`steps` maps each viewer to their instance, in the order they appeared; a group layer
    reads the viewers from there.

    >>> from engage.models.windows import FeatureWindow
    >>> step = PerViewer(lambda v: FeatureWindow(viewer=v))
    >>> step.name, list(step.steps)
    ('feature-window', [])
    """

    def __init__(self, factory: Callable[[str], Processor]) -> None:
        self.factory = factory
        self.steps: dict[str, Processor] = {}
        self.name = factory("").name
        self.ctx = None

    def step(self, viewer: str) -> Processor:
        """The instance of ``viewer`` (built and started on first use)."""
        p = self.steps.get(viewer)
        if p is None:
            p = self.steps[viewer] = self.factory(viewer)
            if self.ctx is not None:
                p.start(self.ctx)
        return p

    def start(self, ctx) -> None:
        super().start(ctx)
        for p in self.steps.values():
            p.start(ctx)

    def accepts(self, info: StreamInfo) -> bool:
        return self.step(info.viewer).accepts(info)

    def process(self, chunk: Chunk) -> list[Chunk]:
        return self.step(chunk.info.viewer).process(chunk)

    def tick(self, now: float) -> list[Chunk]:
        return [c for p in list(self.steps.values()) for c in p.tick(now) or ()]

    def flush(self, now: float) -> list[Chunk]:
        return [c for p in list(self.steps.values()) for c in p.flush(now) or ()]

    def close(self) -> None:
        for p in self.steps.values():
            p.close()


#: The runtime step of a replay as fast as possible with no controller and no dashboard (``engage replay
#: --no-story``, dataset studies): the sensing pipeline's streams and events do not depend on the step or on how
#: the input is chunked (tests/test_pipeline_chunking.py), so a replay reads its recording ten seconds at a time
#: instead of every 0.1 s: every step and every processor has a cost per chunk, whatever its length (1 h of ECG,
#: EDA and face: about 2x less CPU than with 1-s steps, 6x less than with 0.1-s ones). A controller needs the live
#: step: its scenes change at its ticks.
REPLAY_STEP_S = 10.0


def build_processors(viewer: str = "viewer-1", calibration_s: float = 60.0,
                     model: "LoadedModel | str | Path | None" = None) -> list[Processor]:
    """The sensing part of the pipeline, in routing order: signals → models → events.

    The signal steps keep their state per viewer and stream already; the steps from the feature
    window on are built per viewer (:class:`PerViewer`), so every viewer whose streams arrive gets
    their own windows, baseline, model and events. ``viewer`` is kept for callers that name the
    session's (first) viewer.

    ``model`` (a trained wrist model file, e.g. ``models/arousal-wrist.skops``): arousal comes from
    that model wherever its wrist modalities (pulse wave, EDA, …) are present and good, from the
    rule model elsewhere (:class:`~engage.models.classifier.EngagementFusion`); the output is the
    same ``Engagement`` stream either way.
    """
    if model is None:
        models: list[Processor] = [RuleEngagementModel()]
    else:
        from engage.models.classifier import EngagementFusion
        from engage.models.evaluation import model_processors, open_model

        loaded = open_model(model)
        chain = model_processors(loaded)
        models = [RuleEngagementModel(output_type="EngagementRules"),
                  *(PerViewer(lambda v, i=i: model_processors(loaded)[i]) for i in range(len(chain))),
                  PerViewer(lambda v: EngagementFusion())]
    return [
        EcgHeartRate(),
        PpgHeartRate(),
        StrapRrHeartRate(),
        EdaFeatures(),
        RespirationRate(),
        SignalQualityIndex(),  # a SignalQuality stream per raw ECG/PPG/EDA/RSP and per HeartRate stream
        FaceFeatures(),
        RppgHeartRate(),  # heart rate from the face's colour, when no ECG/PPG/strap beats
        PerViewer(lambda v: FeatureWindow(viewer=v)),
        PerViewer(lambda v: BaselineCalibrator(calibration_s=calibration_s)),
        # before the models: it is handed each FeaturesRelative row before a model scores it, so an event's
        # evidence is the features of its own moment (it hears the scores wherever it stands)
        EngagementStateMachine(),
        *models,
        MarkerEvents(),
    ]


@runtime_checkable
class SessionObserver(Protocol):
    """What a :class:`Session` observer is: a :class:`~engage.core.runtime.Processor` (it gets every
    chunk it ``accepts``, derived streams included) that also hears every event and every scene plan.

    :class:`SessionLog` is one; the dashboard's feed is another.

    >>> isinstance(SessionLog(), SessionObserver)
    True
    """

    def accepts(self, info: StreamInfo) -> bool: ...

    def process(self, chunk: Chunk) -> list[Chunk]: ...

    def on_event(self, event: Event) -> None: ...

    def on_plan(self, plan: ScenePlan) -> None: ...


class SessionLog(Processor):
    """Keeps what the session plot needs: engagement scores, heart rate, EDA, events, scene plans.

    Its memory stays small over hours (about 0.6 MB per session hour): the rows are kept in growing arrays,
    and a stream faster than ``max_rate_hz`` (EDA features at the device's rate) is kept at that rate - the
    first row of every ``1 / max_rate_hz`` seconds - plus every row where an SCR peaks; irregular streams
    (a row per beat) are kept whole.

    >>> log = SessionLog()
    >>> info = StreamInfo("eda", "EDAFeatures", ("tonic_us", "scr_amplitude"), ("uS", "uS"), 16.0, "x")
    >>> _ = log.process(Chunk(info, np.column_stack([np.full(32, 2.0), np.eye(32)[5]]), np.arange(32) / 16))
    >>> log.array("EDAFeatures", "tonic_us")[0].tolist()
    [0.0, 0.3125, 1.0]
    """

    name = "session-log"
    kinds = ("Engagement", "HeartRate", "EDAFeatures")
    #: per stream type, the channel whose non-zero rows are always kept
    KEEP_NONZERO = {"EDAFeatures": "scr_amplitude"}

    def __init__(self, max_rate_hz: float = 1.0) -> None:
        self.max_rate_hz = max_rate_hz
        self.series: dict[StreamInfo, RowBuffer] = {}
        self._next: dict[StreamInfo, float] = {}  # per decimated stream: when the next row is due
        self.events: list[Event] = []
        self.plans: list[ScenePlan] = []

    def accepts(self, info: StreamInfo) -> bool:
        return info.type in self.kinds

    def process(self, chunk: Chunk) -> list[Chunk]:
        info = chunk.info
        rows = self.series.get(info)
        if rows is None:
            rows = self.series[info] = RowBuffer(info.channel_count, capacity=16)
        ts, x = chunk.timestamps, chunk.data
        if info.nominal_rate > self.max_rate_hz:
            keep_col = self.KEEP_NONZERO.get(info.type)
            marked = (x[:, info.index(keep_col)] != 0).tolist() if keep_col in info.channels else [False] * len(ts)
            due, period, keep = self._next.get(info, -np.inf), 1.0 / self.max_rate_hz, []
            for i, t in enumerate(ts.tolist()):
                if t >= due:
                    due = t + period
                    keep.append(i)
                elif marked[i]:
                    keep.append(i)
            self._next[info] = due
            ts, x = ts[keep], x[keep]
        rows.append(ts, x)
        return []

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def on_plan(self, plan: ScenePlan) -> None:
        self.plans.append(plan)

    def array(self, kind: str, channel: str) -> tuple[np.ndarray, np.ndarray]:
        """Timestamps and values of one channel across every logged stream of type ``kind`` that has
        it (e.g. heart rate from ECG and from rPPG), in time order."""
        ts, xs = [], []
        for info, rows in self.series.items():
            if info.type != kind or channel not in info.channels:
                continue
            ts.append(rows.t)
            xs.append(rows.x[:, info.index(channel)])
        if not ts:
            return np.zeros(0), np.zeros(0)
        t, x = np.concatenate(ts), np.concatenate(xs).astype(np.float64)
        order = np.argsort(t, kind="stable")
        return t[order], x[order]


@dataclass
class SessionResult:
    stats: RunStats
    log: SessionLog
    start: float
    outputs: dict[str, Path] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)


class Session:
    """Sources + the standard pipeline + outputs, on one clock.

    ``story=None`` runs sensing and events only (no controller) unless ``narrative`` (a
    :class:`~engage.narrative.config.NarrativeConfig`) names a story. ``narrative`` also says how
    scenes are rewritten (default: the template rewriter) and where plans and the viewer's state
    go (OSC, WebSocket, a JSON-lines file); ``rewriter`` (a
    :class:`~engage.narrative.rewriter.RewriteService`, or None for no rewriting) overrides the
    configured one. ``timeline`` is a text stream
    (e.g. ``sys.stdout``) for the readable timeline; ``lsl=True`` publishes events and derived streams on LSL.
    ``model`` (a trained wrist model file) takes arousal from that model where wrist signals are
    present, from the rules elsewhere (see :func:`build_processors`). ``group`` (a
    :class:`~engage.events.group.GroupConfig`) adds the group's aggregate: a ``GroupEngagement``
    stream and ``group.*`` events over every viewer (:attr:`group`).
    Each of ``observers`` (a :class:`SessionObserver`, e.g. the dashboard's) runs after the pipeline
    as a processor, hears every event on the bus and every scene plan; one that has ``on_story(story)``
    is told the story first, and one that has ``choices`` (a :class:`~engage.narrative.choice.ChoiceBox`:
    the player page's viewer picks) lets the viewer choose where the story offers a choice
    (:class:`~engage.narrative.choice.ViewerChoicePolicy`).
    """

    def __init__(
        self,
        sources: Sequence[Source],
        clock: Clock,
        story: Story | None = None,
        viewer: str = "viewer-1",
        events_out: Path | None = None,
        scenes_out: Path | None = None,
        lsl: bool = False,
        session_id: str = "default",
        timeline: TextIO | None = None,
        step: float = 0.1,
        calibration_s: float = 60.0,
        extra_processors: Sequence[Processor] = (),
        model: "LoadedModel | str | Path | None" = None,
        observers: Sequence[SessionObserver] = (),
        group: GroupConfig | None = None,
        narrative: NarrativeConfig | None = None,
        rewriter: object = "configured",
    ) -> None:
        self.bus = EventBus()
        self.log = SessionLog()
        self.outputs: dict[str, Path] = {}
        self._closers: list[Callable[[], None]] = []
        plan_sinks: list[Callable[[ScenePlan], None]] = [self.log.on_plan]
        plan_sinks.extend(o.on_plan for o in observers)
        story, self.rewriter, self.narrative_outputs = self._narrative(story, narrative, rewriter)
        if scenes_out is None and story is not None and narrative is not None and narrative.scenes_out:
            scenes_out = Path(narrative.scenes_out)
        plan_sinks.extend(self.narrative_outputs)
        if scenes_out is not None:
            writer = ScenePlanWriter(scenes_out, append=False)
            plan_sinks.append(writer)
            self._closers.append(writer.close)
            self.outputs["scenes"] = Path(scenes_out)
        processors = build_processors(viewer, calibration_s, model)
        #: the group's aggregate (its GroupEngagement stream and group.* events), when the session has a group
        self.group: GroupEngagement | None = None
        if group is not None:
            self.group = GroupEngagement(group)
            processors.append(self.group)
        self.controller: Controller | None = None
        if story is not None and group is not None and group.policy == "personal":
            from engage.narrative.group import PersonalTracks  # one film per viewer, a shared start

            self.controller = PersonalTracks(story, group, on_plan=plan_sinks)  # type: ignore[assignment]
            processors.append(self.controller)  # type: ignore[arg-type]
        elif story is not None:
            policy: Any = DirectorPolicy()
            plays_for = viewer
            if group is not None:  # one film for the group: the group policy decides whom it follows
                from engage.narrative.group import GroupPolicy, GroupTracker

                self.group_tracker = GroupTracker(group)
                processors.append(self.group_tracker)
                policy, plays_for = GroupPolicy(group.policy, policy, self.group_tracker), GROUP_VIEWER
            boxes = [o.choices for o in observers if getattr(o, "choices", None) is not None]
            if boxes:
                from engage.narrative.choice import ViewerChoicePolicy

                policy = ViewerChoicePolicy(policy, boxes[0])
            self.controller = Controller(story, viewer=plays_for, on_plan=plan_sinks, policy=policy, rewriter=self.rewriter,
                                         on_state=[o.on_state for o in self.narrative_outputs])
            processors.append(self.controller)
            for output in self.narrative_outputs:
                self.bus.subscribe(output.on_event, "story.")
        processors.append(self.log)
        self.timeline = None
        if timeline is not None:
            from engage.timeline import TimelinePrinter

            self.timeline = TimelinePrinter(timeline)
            processors.append(self.timeline)
        processors.extend(extra_processors)
        processors.extend(observers)  # type: ignore[arg-type]  # each is a Processor too
        self.bus.subscribe(self.log.on_event)
        for observer in observers:
            self.bus.subscribe(observer.on_event)
            if story is not None and callable(getattr(observer, "on_story", None)):
                observer.on_story(story)  # optional: e.g. the dashboard lists the scenes that may come next
        if events_out is not None:
            jsonl = JsonlEventWriter(events_out)
            self.bus.subscribe(jsonl)
            self._closers.append(jsonl.close)
            self.outputs["events"] = Path(events_out)
        if lsl:  # events on a marker outlet, every derived stream on its own outlet
            outlet = LslEventOutlet(session_id)
            self.bus.subscribe(outlet)
            self._closers.append(outlet.close)
            processors.append(LslOutletSink(session_id))
        self.viewer = viewer
        self.calibration_s = calibration_s
        self._per_viewer = [p for p in processors if isinstance(p, PerViewer)]
        self.runtime = Runtime(clock, sources, processors, bus=self.bus, step=step, viewer=viewer)
        if self.timeline is not None:
            self.bus.subscribe(self.timeline.on_event)

    @property
    def viewers(self) -> list[str]:
        """Every viewer whose streams have reached the pipeline so far, in order of appearance (each has
        their own per-viewer steps and events; :attr:`viewer` is the one the controller follows)."""
        seen: dict[str, None] = {}
        for p in self._per_viewer:
            seen.update(dict.fromkeys(v for v in p.steps if v))
        return list(seen)

    def _narrative(self, story, narrative: NarrativeConfig | None, rewriter) -> tuple:
        """The story player, the rewriter and the outputs (OSC, WebSocket) of the configuration;
        their closing is registered with the session's."""
        if story is None and (narrative is None or not narrative.story):
            return None, None, []
        cfg = narrative or NarrativeConfig()
        if story is None:
            story = cfg.open_story()
        if rewriter == "configured":
            rewriter = cfg.make_rewriter(story_cast(story))
        if rewriter is not None and callable(getattr(rewriter, "close", None)):
            self._closers.append(rewriter.close)
        from engage.narrative.publish import open_outputs

        outputs = open_outputs(cfg.osc, cfg.ws, cfg.ws_wait_s)
        self._closers.extend(o.close for o in outputs)
        return story, rewriter, outputs

    def run(self, duration: float | None = None, on_step: Callable[[float], None] | None = None) -> SessionResult:
        try:
            stats = self.runtime.run(duration=duration, on_step=on_step)
        finally:
            for close in self._closers:
                close()
        return SessionResult(stats, self.log, stats.start, dict(self.outputs), dict(self.runtime.ctx.counters))
