"""A synchronous, in-order event bus.

Handlers subscribe to an event-type prefix (``"boredom."``, ``"scene.start"``, or ``""`` for
all). Events published from inside a handler are queued and delivered after the current one,
so every subscriber sees every event in the same order. A handler that raises is logged and
counted, never allowed to take the session down.

>>> bus = EventBus(); seen = []
>>> bus.subscribe(seen.append, "boredom.")
>>> bus.publish(Event("boredom.onset", 1.0, "v1")); [e.type for e in seen]
['boredom.onset']
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Callable

from .event import Event

log = logging.getLogger(__name__)

Handler = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[tuple[str, Handler]] = []
        self._pending: deque[Event] = deque()
        self._dispatching = False
        self.handler_errors = 0
        self.published = 0

    def subscribe(self, handler: Handler, prefix: str = "") -> None:
        self._subscribers.append((prefix, handler))

    def publish(self, event: Event) -> None:
        self._pending.append(event)
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._pending:
                current = self._pending.popleft()
                self.published += 1
                for prefix, handler in list(self._subscribers):
                    if current.type.startswith(prefix):
                        try:
                            handler(current)
                        except Exception:  # noqa: BLE001 - one bad subscriber must not stop the others
                            self.handler_errors += 1
                            log.exception("event handler %r failed on %s", handler, current.type)
        finally:
            self._dispatching = False
