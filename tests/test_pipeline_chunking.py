"""The whole sensing pipeline (signals → feature windows → baseline → model → state machine) gives the same
derived streams and the same events, bit for bit, whether a recording's samples arrive one by one, in chunks of 7
or 256, or all at once at its end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from engage.core import Chunk, Event, Processor, StreamInfo, VirtualClock
from engage.sensors.replay import RecordingSource
from engage.sensors.simulated import SimulatedViewer
from engage.session import Session

RAW = ("ECG", "EDA", "RSP", "Face")


class Rechunked(RecordingSource):
    """A recording whose every stream is handed over in chunks of ``size`` samples (0: the whole stream), each
    once the time of its last sample is reached - a device that sends its samples in packets."""

    name = "rechunked"

    def __init__(self, tracks, size: int) -> None:
        super().__init__("viewer-1")
        self.size = size
        for info, x, t in tracks:
            self.add_track(info, x, t)

    def _end(self, track) -> int:
        n = len(track.timestamps)
        return min(n, track.pos + (self.size or n))

    def _read_track(self, track, until: float) -> list[Chunk]:
        out = []
        while not track.done and track.timestamps[self._end(track) - 1] <= until:
            stop = self._end(track)
            out.append(Chunk(track.info, track.data[track.pos:stop], track.timestamps[track.pos:stop]))
            track.pos = stop
        return out

    def next_time(self) -> float | None:
        times = [float(t.timestamps[self._end(t) - 1]) for t in self._tracks if not t.done]
        return min(times) if times else None


class Collector(Processor):
    """Every derived chunk, by stream; every event."""

    name = "collector"

    def __init__(self) -> None:
        self.parts: dict[str, list[Chunk]] = {}
        self.events: list[Event] = []

    def accepts(self, info: StreamInfo) -> bool:
        return info.type not in RAW

    def process(self, chunk: Chunk) -> list[Chunk]:
        self.parts.setdefault(f"{chunk.info.type}/{chunk.info.source_id}", []).append(chunk)
        return []

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def on_plan(self, plan) -> None:
        pass


def replay(tracks, size: int) -> tuple[dict, list[str]]:
    source = Rechunked(tracks, size)
    col = Collector()
    Session([source], VirtualClock(source.start_time()), story=None, observers=[col]).run()
    streams = {k: (np.concatenate([c.timestamps for c in v]), np.vstack([c.data for c in v]))
               for k, v in col.parts.items()}
    # events of different streams interleave differently when they arrive at different times: compared as a set
    return streams, sorted(json.dumps(e.to_dict(), sort_keys=True) for e in col.events)


def assert_same_whatever_the_chunking(tracks, sizes) -> tuple[dict, list[str]]:
    ref_streams, ref_events = replay(tracks, sizes[0])
    for size in sizes[1:]:
        streams, events = replay(tracks, size)
        assert streams.keys() == ref_streams.keys(), size
        for k, (t, x) in ref_streams.items():
            assert np.array_equal(streams[k][0], t), (size, k)
            assert np.array_equal(streams[k][1], x, equal_nan=True), (size, k)
        assert events == ref_events, size
    return ref_streams, ref_events


@pytest.mark.realdata
def test_real_recording_gives_the_same_streams_and_events_whatever_the_chunking(shared_data):
    df = pd.read_csv(shared_data / "neurokit2_samples" / "bio_resting_8min_100hz.csv").iloc[:6 * 60 * 100]
    fs = 100.0
    t = 1000.0 + np.arange(len(df)) / fs
    tracks = [(StreamInfo("ecg", "ECG", ("ecg",), ("mV",), fs, "ecg"), df[["ECG"]].to_numpy(float), t),
              (StreamInfo("eda", "EDA", ("eda",), ("uS",), fs, "eda"), df[["EDA"]].to_numpy(float), t),
              (StreamInfo("rsp", "RSP", ("rsp",), ("au",), fs, "rsp"), df[["RSP"]].to_numpy(float), t)]
    streams, events = assert_same_whatever_the_chunking(tracks, [1, 7, 256, 0])
    kinds = [json.loads(e)["type"] for e in events]
    assert "baseline.ready" in kinds and kinds.count("boredom.onset") >= 2, kinds
    onset = next(json.loads(e) for e in events if json.loads(e)["type"] == "boredom.onset")
    assert onset["evidence"]["features"]["hr_quality"] > 0.9  # the features of the event's own second
    assert len(streams["Features/engage-viewer-1-features"][0]) == 360
    assert len(streams["HeartRate/engage-viewer-1-hr-ecg"][0]) > 300


def test_simulated_viewer_with_face_gives_the_same_streams_and_events_whatever_the_chunking():
    viewer = SimulatedViewer(seed=3)
    tracks = [(c.info, c.data, c.timestamps) for c in viewer.read(150.0)]
    streams, events = assert_same_whatever_the_chunking(tracks, [1, 7, 60, 0])
    assert {"FaceFeatures/engage-viewer-1-face-features", "Engagement/engage-viewer-1-engagement"} <= streams.keys()
    assert any(json.loads(e)["type"] == "baseline.ready" for e in events)
