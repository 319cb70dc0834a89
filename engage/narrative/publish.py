"""Scene plans, the viewer's state and the story's end, to players: over OSC (python-osc) and over
a WebSocket (websockets). The address space and message shapes are documented in
``docs/osc-and-websocket.md``; both carry the same content.

Each publisher is a plan sink for the :class:`~engage.narrative.controller.Controller` (call it
with a :class:`~engage.narrative.plan.ScenePlan`), takes the viewer's state with
:meth:`on_state` (the controller sends it at least once a second) and the ``story.end`` event
with :meth:`on_event`. A publisher that cannot deliver (no listener, a client gone) counts the
failure and goes on; the story never waits for a player. Servers bind to localhost unless told
otherwise (privacy by default).

* :class:`OscScenePublisher` sends, per plan, ``/engage/scene`` (scene, title, duration,
  pacing, palette, music intensity, stakes, ai_generated), ``/engage/scene/json`` (the whole
  plan), one message per media cue, fate, tag, variable and upcoming option, and for tools that
  take only numbers (TouchDesigner, Max) one float per address under ``/engage/num/…``; per
  state ``/engage/state`` (JSON) and ``/engage/num/state/…``; at the end ``/engage/story/end``.
* :class:`WebSocketScenePublisher` serves ``ws://host:port``; every connected client gets
  ``{"kind": "plan", "plan": {…}}``, ``{"kind": "state", "state": {…}}`` and
  ``{"kind": "story.end", "event": {…}}`` as JSON text messages, and a client that connects
  late gets the latest plan and state first.

>>> pub = OscScenePublisher("127.0.0.1", 9000)
>>> pub.address
'/engage/scene'
>>> pub.close()
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Mapping

from engage.core.event import Event, _clean
from engage.core.safeload import finite_number

from .plan import ScenePlan

log = logging.getLogger(__name__)

PACING_CODES = {"slow": 0.0, "steady": 1.0, "fast": 2.0}
STAKES_CODES = {"low": 0.0, "medium": 1.0, "high": 2.0}
#: Sent for a state value that is not known (no engagement yet, no director): numbers only.
UNKNOWN = -1.0
STATE_NUMBERS = ("arousal", "boredom", "attention", "confidence", "quality", "target", "scene_elapsed_s",
                 "scene_remaining_s", "episode")
STATE_FLAGS = ("bored", "overloaded", "attention_lost")


def _dumps(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def state_json(state: Mapping[str, Any]) -> dict[str, Any]:
    """The viewer's state as JSON-safe values (floats rounded, NaN → None)."""
    return _clean(dict(state), 4)


def _num(value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if finite_number(value):
        return float(value)
    return UNKNOWN


class OscScenePublisher:
    """Sends plans, the viewer's state and the story's end as OSC messages over UDP (see the
    module docstring and ``docs/osc-and-websocket.md``)."""

    address = "/engage/scene"

    def __init__(self, host: str = "127.0.0.1", port: int = 9000) -> None:
        from pythonosc.udp_client import SimpleUDPClient

        self.host, self.port = host, int(port)
        self._client = SimpleUDPClient(host, self.port, allow_broadcast=False)
        self.sent = 0
        self.states = 0
        self.errors = 0
        self._index = 0

    def _send(self, address: str, args: Any) -> None:
        self._client.send_message(address, args)

    def __call__(self, plan: ScenePlan) -> None:
        d = plan.directives
        self._index += 1
        args: list[Any] = [plan.scene, plan.title, float(plan.duration_s), str(d.get("pacing", "")),
                           str(d.get("palette", "")), _num(d.get("music_intensity", 0.0)),
                           str(d.get("stakes", "")), bool(plan.ai_generated)]
        n = "/engage/num/scene"
        try:
            self._send(self.address, args)
            self._send(self.address + "/json", plan.to_json())
            self._send(self.address + "/text", plan.text)
            self._send(self.address + "/speaker", plan.speaker or "")
            self._send(self.address + "/tone", plan.tone or "")
            self._send(self.address + "/cast", ", ".join(plan.cast))
            self._send(self.address + "/act", plan.act or "")
            if plan.ending is not None:
                self._send(self.address + "/ending", plan.ending)
            for cue in plan.media:
                self._send(self.address + "/media", [str(cue["kind"]), str(cue["src"]), _dumps(cue.get("options", {}))])
            for fate in plan.fates:
                self._send(self.address + "/fate", [str(fate["character"]), str(fate["outcome"])])
            for key, value in sorted(plan.tags.items()):
                self._send(self.address + "/tag", [str(key), _dumps(_clean(value, 4))])
            for key, value in sorted(plan.variables.items()):
                self._send(self.address + "/variable", [str(key), _dumps(_clean(value, 4))])
            for option in plan.upcoming:
                self._send(self.address + "/upcoming", [str(option["id"]), str(option["title"]),
                                                        _num(option.get("intensity"))])
            numbers = {
                "index": self._index, "episode": plan.episode, "duration": plan.duration_s,
                "intensity": plan.intensity, "pacing": PACING_CODES.get(d.get("pacing"), UNKNOWN),
                "stakes": STAKES_CODES.get(d.get("stakes"), UNKNOWN), "music": d.get("music_intensity"),
                "rewritten": plan.rewritten, "ai_generated": plan.ai_generated, "fates": len(plan.fates),
                "ending": plan.ending is not None, "options": len(plan.upcoming), "media": len(plan.media),
            }
            for key, value in numbers.items():
                self._send(f"{n}/{key}", _num(value))
            self.sent += 1
        except (OSError, ValueError) as exc:  # e.g. a datagram too large, the network down
            self.errors += 1
            log.warning("OSC %s:%d: could not send scene %r: %s", self.host, self.port, plan.scene, exc)

    def on_state(self, state: Mapping[str, Any]) -> None:
        try:
            self._send("/engage/state", _dumps(state_json(state)))
            self._send("/engage/state/phase", str(state.get("phase") or ""))
            for key in STATE_NUMBERS:
                self._send(f"/engage/num/state/{key.removesuffix('_s')}", _num(state.get(key)))
            for key in STATE_FLAGS:
                self._send(f"/engage/num/state/{key}", _num(bool(state.get(key))))
            self.states += 1
        except (OSError, ValueError) as exc:
            self.errors += 1
            log.debug("OSC %s:%d: could not send the state: %s", self.host, self.port, exc)

    def on_event(self, event: Event) -> None:
        if event.type != "story.end":
            return
        ev = event.evidence
        try:
            self._send("/engage/story/end", [str(ev.get("scene", "")), int(ev.get("episode", 0) or 0)])
            self._send("/engage/num/story/end", float(ev.get("episode", 0) or 0))
            self._send("/engage/story/end/json", _dumps(event.to_dict()))
        except (OSError, ValueError) as exc:
            self.errors += 1
            log.warning("OSC %s:%d: could not send story.end: %s", self.host, self.port, exc)

    def close(self) -> None:
        sock = getattr(self._client, "_sock", None)
        if sock is not None:
            sock.close()


class WebSocketScenePublisher:
    """Serves plans, the viewer's state and the story's end as JSON text messages on a WebSocket
    (see the module docstring). ``port=0`` picks a free port (read :attr:`port` after construction).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8765) -> None:
        from websockets.sync.server import serve

        self._clients: set = set()
        self._lock = threading.Lock()
        self.latest: str | None = None
        self.latest_state: str | None = None
        self._connected = threading.Event()
        self.sent = 0
        self.errors = 0
        self._server = serve(self._handler, host, int(port), max_size=4096)
        self.host = host
        self.port = int(self._server.socket.getsockname()[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="engage-ws", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    def wait_for_client(self, timeout_s: float) -> bool:
        """Block until a player is connected (True) or ``timeout_s`` has passed (False)."""
        return self._connected.wait(timeout_s)

    def _handler(self, connection) -> None:
        with self._lock:
            self._clients.add(connection)
            self._connected.set()
            greeting = [m for m in (self.latest, self.latest_state) if m is not None]
        try:
            for message in greeting:
                connection.send(message)
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

    def _broadcast(self, message: str) -> None:
        with self._lock:
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

    def __call__(self, plan: ScenePlan) -> None:
        message = '{"kind":"plan","plan":' + plan.to_json() + "}"
        with self._lock:
            self.latest = message
        self._broadcast(message)

    def on_state(self, state: Mapping[str, Any]) -> None:
        message = _dumps({"kind": "state", "state": state_json(state)})
        with self._lock:
            self.latest_state = message
        self._broadcast(message)

    def on_event(self, event: Event) -> None:
        if event.type == "story.end":
            self._broadcast(_dumps({"kind": "story.end", "event": event.to_dict()}))

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=2.0)


def open_outputs(osc: str | None = None, ws: str | None = None, ws_wait_s: float = 0.0) -> list[Any]:
    """The publishers a narrative configuration asks for (``"HOST:PORT"`` each); a WebSocket
    address that cannot be bound raises :class:`~engage.core.errors.ConfigError`. With
    ``ws_wait_s``, waits that long for a first WebSocket player before returning."""
    from engage.core.errors import ConfigError

    from .config import parse_host_port

    outputs: list[Any] = []
    try:
        if osc:
            host, port = parse_host_port(osc, "--osc")
            outputs.append(OscScenePublisher(host, port))
        if ws:
            host, port = parse_host_port(ws, "--ws")
            try:
                pub = WebSocketScenePublisher(host, port)
            except OSError as exc:
                raise ConfigError(f"--ws {ws}: cannot listen there: {exc.strerror or exc}") from None
            outputs.append(pub)
            if ws_wait_s > 0:
                log.warning("waiting up to %g s for a player on %s", ws_wait_s, pub.url)
                if not pub.wait_for_client(ws_wait_s):
                    log.warning("no player connected to %s within %g s; going on", pub.url, ws_wait_s)
    except BaseException:
        for o in outputs:
            o.close()
        raise
    return outputs
