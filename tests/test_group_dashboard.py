"""The dashboard with several viewers (issue 21): the main panel follows one stream (the first viewer's,
then the group's), never several viewers' rows interleaved; every viewer and the group get a card
(``status.viewers``) with their values, on-states and trace."""

from __future__ import annotations

import json

import numpy as np

from engage.core import Chunk, Event
from engage.dashboard.feed import DashboardFeed
from engage.events.group import group_info
from engage.models.rules import engagement_info


def rows(viewer: str, boredom: float, t: list[float]) -> Chunk:
    return Chunk(engagement_info(viewer), np.array([[0.5, boredom, 0.9, 1.0, 1.0]] * len(t)), np.array(t))


def test_the_main_panel_follows_one_viewer_then_the_group_and_each_viewer_gets_a_card():
    feed = DashboardFeed(wall_clock=lambda: 0.0)
    for t in range(5):
        feed.process(rows("ann", 0.2, [float(t)]))
        feed.process(rows("bob", 0.8, [float(t)]))
    snap = feed.snapshot()
    boredom = [v[1] for v in snap["series"]["engagement"]["v"]]
    assert boredom == [0.2] * 5 and snap["status"]["lead"] == "ann"  # not a 0.2/0.8 sawtooth
    feed.on_event(Event("boredom.onset", 4.0, "bob", 0.9))
    group = np.full((2, len(group_info().channels)), 0.5)
    feed.process(Chunk(group_info(), group, np.array([3.0, 4.0])))
    feed.on_event(Event("group.boredom.onset", 4.0, "group", 0.9))
    snap = feed.snapshot()
    assert snap["status"]["lead"] == "group" and len(snap["series"]["engagement"]["t"]) == 2
    cards = snap["status"]["viewers"]
    assert [c["viewer"] for c in cards] == ["group", "ann", "bob"] and cards[0]["group"]
    assert cards[0]["flags"] == ["bored"] and cards[0]["viewers"] == 0.5 and cards[2]["flags"] == ["bored"]
    assert cards[1]["boredom"] == 0.2 and cards[1]["flags"] == [] and len(cards[1]["trace"]) == 5
    json.dumps(snap, allow_nan=False)


def test_one_viewer_sends_no_cards():
    feed = DashboardFeed(wall_clock=lambda: 0.0)
    feed.process(rows("ann", 0.2, [0.0, 1.0]))
    assert feed.snapshot()["status"]["viewers"] == [] and feed.snapshot()["status"]["lead"] == "ann"


def test_the_signal_panels_show_one_viewer():
    from engage.signals.cardiac import heart_rate_info

    feed = DashboardFeed(wall_clock=lambda: 0.0)
    for viewer, bpm in (("ann", 60.0), ("bob", 90.0), ("ann", 61.0)):
        info = heart_rate_info(viewer, "ecg")
        feed.process(Chunk(info, np.array([[bpm] + [1.0] * (len(info.channels) - 1)]), np.array([1.0])))
    hr = feed.snapshot()["series"]["hr"]
    assert [v[0] for v in hr["v"]] == [60.0, 61.0] and feed.snapshot()["status"]["person"] == "ann"
