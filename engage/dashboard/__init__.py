"""The live dashboard and player pages: what a session senses and decides, in the browser.

:class:`DashboardServer` serves two pages from this machine: the operator's dashboard (heart rate,
EDA, gaze and blinks, the engagement state with its confidence, the events, the current and upcoming
scenes with the reason for each decision, each sensor's status and gaps) and the player (the scene
plans as they come: text, palette, pacing, music intensity). Its :attr:`~DashboardServer.observer`
plugs into a :class:`~engage.session.Session`.

>>> from engage.dashboard import DashboardServer
>>> server = DashboardServer(port=0)                                   # doctest: +SKIP
>>> server.start(); print(server.url, server.player_url)               # doctest: +SKIP
>>> Session(sources, clock, story=story, observers=[server.observer])  # doctest: +SKIP
"""

from .feed import DashboardFeed, Subscriber
from .server import DashboardServer, create_app, is_loopback

__all__ = ["DashboardFeed", "DashboardServer", "Subscriber", "create_app", "is_loopback"]
