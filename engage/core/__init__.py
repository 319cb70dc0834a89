"""The small shared core: chunks, stream info, clocks, events, the bus and the runtime."""

from .bus import EventBus
from .clock import Clock, LslClock, VirtualClock
from .errors import ConfigError, EngageError, InputFileError
from .event import ENGAGEMENT_EVENT_TYPES, GROUP_VIEWER, Event
from .runtime import Context, Processor, Runtime, RunStats, Source, ThreadedSource
from .stream import IRREGULAR_RATE, Chunk, StreamInfo

__all__ = [
    "Chunk", "Clock", "ConfigError", "Context", "ENGAGEMENT_EVENT_TYPES", "EngageError", "Event", "EventBus", "GROUP_VIEWER",
    "IRREGULAR_RATE", "InputFileError", "LslClock", "Processor", "RunStats", "Runtime", "Source", "StreamInfo",
    "ThreadedSource", "VirtualClock",
]
