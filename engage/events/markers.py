"""Stimulus markers from a recording or an LSL stream become ``marker`` events.

>>> from engage.core import StreamInfo
>>> MarkerEvents().accepts(StreamInfo("m", "Markers", ("m",), ("",), 0.0, "x", channel_format="string"))
True
"""

from __future__ import annotations

from engage.core import Chunk, Processor, StreamInfo


class MarkerEvents(Processor):
    name = "marker-events"

    def accepts(self, info: StreamInfo) -> bool:
        return info.is_string and info.type.lower() in ("markers", "marker", "stimulus", "stringmarker")

    def process(self, chunk: Chunk) -> list[Chunk]:
        for t, row in zip(chunk.timestamps, chunk.data):
            self.ctx.emit("marker", float(t), 1.0, {"stream": chunk.info.name, "value": str(row[0])},
                          source=self.name, viewer=chunk.info.viewer)
        return []
