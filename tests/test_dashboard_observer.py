"""The Session observer hook (issue 9 contract 1): an observer gets chunks, events and plans."""

from __future__ import annotations

from engage.core import Chunk, Event, Processor, StreamInfo, VirtualClock
from engage.narrative.plan import ScenePlan
from engage.narrative.story import default_story_path, load_story
from engage.sensors.simulated import SimulatedViewer
from engage.session import Session, SessionObserver


class Recorder(Processor):
    name = "test-observer"

    def __init__(self) -> None:
        self.kinds: set[str] = set()
        self.events: list[Event] = []
        self.plans: list[ScenePlan] = []

    def accepts(self, info: StreamInfo) -> bool:
        return True

    def process(self, chunk: Chunk) -> list[Chunk]:
        self.kinds.add(chunk.info.type)
        return []

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def on_plan(self, plan: ScenePlan) -> None:
        self.plans.append(plan)


def test_observer_sees_raw_and_derived_streams_events_and_plans():
    obs = Recorder()
    assert isinstance(obs, SessionObserver)
    session = Session([SimulatedViewer(seed=0)], VirtualClock(0.0), story=load_story(default_story_path()),
                      observers=[obs])
    result = session.run(duration=80.0)
    assert {"ECG", "EDA", "Face", "HeartRate", "EDAFeatures", "Engagement"} <= obs.kinds
    # the observer hears exactly what the session log hears, in the same order
    assert [e.to_json() for e in obs.events] == [e.to_json() for e in result.log.events]
    assert obs.plans == result.log.plans and len(obs.plans) >= 2
    assert any(e.type == "scene.start" for e in obs.events)


def test_observer_that_raises_does_not_stop_the_session():
    class Broken(Recorder):
        def on_event(self, event: Event) -> None:
            raise RuntimeError("boom")

    obs = Broken()
    session = Session([SimulatedViewer(seed=0)], VirtualClock(0.0), story=load_story(default_story_path()),
                      observers=[obs])
    result = session.run(duration=30.0)
    assert session.bus.handler_errors > 0 and result.stats.steps == 300


def test_the_dashboard_observer_changes_nothing_the_session_decides():
    from engage.dashboard import DashboardFeed

    def run(observers) -> list[str]:
        session = Session([SimulatedViewer(seed=3)], VirtualClock(0.0), story=load_story(default_story_path()),
                          observers=observers)
        result = session.run(duration=80.0)
        return [e.to_json() for e in result.log.events] + [p.to_json() for p in result.log.plans]

    feed = DashboardFeed()  # the session tells it the story
    sub = feed.subscribe(maxlen=100_000)
    assert run([feed]) == run([])
    assert feed.story is not None and feed.snapshot()["plans"][0]["upcoming"][0]["scene"] == "compartment"
    kinds = {m.split('"kind":"')[1].split('"')[0] for m in sub.drain()}
    assert {"series", "event", "plan", "status"} <= kinds
