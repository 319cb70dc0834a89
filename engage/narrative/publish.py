"""Scene plans to players: over OSC (python-osc) and over a WebSocket (websockets).

Both are ``on_plan`` sinks for the :class:`~engage.narrative.controller.Controller`: call them
with a :class:`~engage.narrative.plan.ScenePlan`. A sink that cannot deliver (no listener, a
client gone) counts the failure and goes on; the story never waits for a player. Servers bind
to localhost unless told otherwise (privacy by default).

* :class:`OscScenePublisher` sends, per plan, ``/engage/scene`` with ``scene``, ``title``,
  ``duration_s``, ``pacing``, ``palette``, ``music_intensity``, ``stakes``, ``ai_generated``
  (easy to map in Max/MSP, TouchDesigner, Unreal, Unity) and ``/engage/scene/json`` with the
  whole plan as one JSON string.
* :class:`WebSocketScenePublisher` serves ``ws://host:port``; every connected client gets each
  plan as one JSON text message, and a client that connects late gets the latest plan first.

>>> pub = OscScenePublisher("127.0.0.1", 9000)
>>> pub.address
'/engage/scene'
>>> pub.close()
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from .plan import ScenePlan

log = logging.getLogger(__name__)


class OscScenePublisher:
    """Sends each scene plan as OSC messages over UDP (see the module docstring)."""

    address = "/engage/scene"

    def __init__(self, host: str = "127.0.0.1", port: int = 9000) -> None:
        from pythonosc.udp_client import SimpleUDPClient

        self.host, self.port = host, int(port)
        self._client = SimpleUDPClient(host, self.port)
        self.sent = 0
        self.errors = 0

    def __call__(self, plan: ScenePlan) -> None:
        d = plan.directives
        args: list[Any] = [plan.scene, plan.title, float(plan.duration_s), str(d.get("pacing", "")),
                           str(d.get("palette", "")), float(d.get("music_intensity", 0.0) or 0.0),
                           str(d.get("stakes", "")), bool(plan.ai_generated)]
        try:
            self._client.send_message(self.address, args)
            self._client.send_message(self.address + "/json", plan.to_json())
            self.sent += 1
        except OSError as exc:  # e.g. the datagram is too large or the network is down
            self.errors += 1
            log.warning("OSC %s:%d: could not send scene %r: %s", self.host, self.port, plan.scene, exc)

    def close(self) -> None:
        sock = getattr(self._client, "_sock", None)
        if sock is not None:
            sock.close()


class WebSocketScenePublisher:
    """Serves scene plans as JSON text messages on a WebSocket (see the module docstring).

    ``port=0`` picks a free port (read :attr:`port` after construction).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8765) -> None:
        from websockets.sync.server import serve

        self._clients: set = set()
        self._lock = threading.Lock()
        self.latest: str | None = None
        self.sent = 0
        self.errors = 0
        self._server = serve(self._handler, host, int(port))
        self.host = host
        self.port = int(self._server.socket.getsockname()[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="engage-ws", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def _handler(self, connection) -> None:
        with self._lock:
            self._clients.add(connection)
            latest = self.latest
        try:
            if latest is not None:
                connection.send(latest)
            for _ in connection:  # players may talk back; nothing is expected
                pass
        except Exception:  # noqa: BLE001 - a client that goes away is just removed
            pass
        finally:
            with self._lock:
                self._clients.discard(connection)

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def __call__(self, plan: ScenePlan) -> None:
        message = plan.to_json()
        with self._lock:
            self.latest = message
            clients = list(self._clients)
        for c in clients:
            try:
                c.send(message)
                self.sent += 1
            except Exception as exc:  # noqa: BLE001 - a dead client must not stop the story
                self.errors += 1
                log.info("WebSocket client gone: %s", exc)
                with self._lock:
                    self._clients.discard(c)

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=2.0)
