"""RR files as a strap source: Polar Sensor Logger exports and MIT-BIH annotations, replayed
through the runtime with gap events; malformed files give InputFileError naming the line."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage.core.bus import EventBus
from engage.core.clock import VirtualClock
from engage.core.errors import InputFileError
from engage.core.runtime import Processor, Runtime
from engage.sensors.ble.replay import RrReplay, rr_from_annotations

POLAR = """Phone timestamp;RR-interval [ms]
2024-03-05T10:00:00.512;812
2024-03-05T10:00:01.330;806
2024-03-05T10:00:02.150;798
2024-03-05T10:00:02.150;803
2024-03-05T10:00:03.760;790
2024-03-05T10:00:09.900;801
2024-03-05T10:00:10.700;799
"""


class Collect(Processor):
    name = "collect"

    def __init__(self):
        self.chunks = []

    def accepts(self, info):
        return info.type == "RR"

    def process(self, chunk):
        self.chunks.append(chunk)
        return []


def replay(src):
    bus = EventBus()
    events = []
    bus.subscribe(events.append, "sensor.gap")
    sink = Collect()
    Runtime(VirtualClock(src.start_time()), [src], [sink], bus=bus).run()
    return sink.chunks, events


def test_polar_sensor_logger_file(tmp_path):
    f = tmp_path / "Polar_H10_ABCD_RR.txt"
    f.write_text(POLAR)
    src = RrReplay.from_polar_logger(f)
    chunks, events = replay(src)
    rr = np.concatenate([c.channel("rr_s") for c in chunks])
    t = np.concatenate([c.timestamps for c in chunks])
    assert rr.tolist() == [0.812, 0.806, 0.798, 0.803, 0.790, 0.801, 0.799]
    assert np.all(np.diff(t[:5]) > 0)
    # two beats in one notification: back-dated by the second one's interval
    assert t[3] - t[2] == pytest.approx(0.803, abs=1e-6)
    assert chunks[0].info.channels == ("rr_s", "contact") and chunks[0].info.type == "RR"
    # 10:00:03.76 → 10:00:09.90 holds one 0.801 s beat: beats are missing, and that is told
    assert len(events) == 1 and events[0].evidence["reason"] == "no samples"
    assert events[0].evidence["duration_s"] > 5


@pytest.mark.parametrize("text, fragment", [
    ("", "empty file"),
    ("time,value\n1,2\n", "lacks"),
    ("Phone timestamp;RR-interval [ms]\n2024-03-05T10:00:00;abc\n", "line 2: RR interval 'abc'"),
    ("Phone timestamp;RR-interval [ms]\n2024-03-05T10:00:00;-5\n", "line 2: RR interval -5"),
    ("Phone timestamp;RR-interval [ms]\nyesterday;800\n", "line 2: phone timestamp 'yesterday'"),
    ("Phone timestamp;RR-interval [ms]\n2024-03-05T10:00:00\n", "line 2: 1 field"),
    ("Phone timestamp;RR-interval [ms]\n", "no RR intervals"),
])
def test_malformed_polar_file(tmp_path, text, fragment):
    f = tmp_path / "bad.txt"
    f.write_text(text)
    with pytest.raises(InputFileError, match=fragment):
        RrReplay.from_polar_logger(f)


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="cannot read"):
        RrReplay.from_polar_logger(tmp_path / "nope.txt")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="0123456789;:-T. abcx\t", max_size=30), max_size=8))
def test_any_lines_replay_or_typed_error(tmp_path_factory, lines):
    f = tmp_path_factory.mktemp("rr") / "f.txt"
    f.write_text("Phone timestamp;RR-interval [ms]\n" + "\n".join(lines))
    try:
        src = RrReplay.from_polar_logger(f)
    except InputFileError:
        return
    assert len(src.beat_times) >= 1


def test_rr_from_annotations_skips_non_beats():
    t, rr = rr_from_annotations([10, 370, 400, 730], 360.0, ["N", "N", "~", "V"])
    assert t.tolist() == [370 / 360, 730 / 360] and rr.tolist() == pytest.approx([1.0, 1.0])


@pytest.mark.realdata
def test_mitdb_annotations_as_strap(shared_data):
    src = RrReplay.from_annotations(shared_data / "mitdb_100" / "100")
    chunks, events = replay(src)
    rr = np.concatenate([c.channel("rr_s") for c in chunks])
    t = np.concatenate([c.timestamps for c in chunks])
    assert len(rr) > 2000 and events == []
    assert np.allclose(np.diff(t), rr[1:])
    assert 0.5 < np.median(rr) < 1.2


def test_bad_record(tmp_path):
    with pytest.raises(InputFileError, match="cannot read annotations"):
        RrReplay.from_annotations(tmp_path / "missing")
