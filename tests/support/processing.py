"""Drive one processor over a signal in fixed-size chunks, as the runtime would."""

from __future__ import annotations

import numpy as np

from engage.core import Chunk, Context, EventBus, Processor, StreamInfo, VirtualClock


def run_processor(processor: Processor, info: StreamInfo, x: np.ndarray, t: np.ndarray,
                  chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """All output timestamps and rows of ``processor`` fed ``x`` (rows) in chunks of ``chunk_size``."""
    processor.start(Context(VirtualClock(), EventBus()))
    out = []
    for i in range(0, len(x), chunk_size):
        out += processor.process(Chunk.from_rows(info, x[i:i + chunk_size], t[i:i + chunk_size]))
    if not out:
        return np.zeros(0), np.zeros((0, 1))
    return np.concatenate([o.timestamps for o in out]), np.vstack([o.data for o in out])


class Take(Processor):
    """A sink that keeps every chunk it is given (any stream)."""

    name = "take"

    def __init__(self, chunks: list | None = None) -> None:
        self.chunks = [] if chunks is None else chunks

    def accepts(self, info) -> bool:
        return True

    def process(self, chunk):
        self.chunks.append(chunk)
        return []
