"""Recording: the XDF writer and the recorder of LSL inlets and in-process streams.

>>> from engage.record import XdfRecorder
>>> XdfRecorder("session.xdf", ["type=EEG"]).start()   # doctest: +SKIP
"""

from .recorder import RecordedGap, RecorderSink, XdfRecorder, events_stream
from .xdf import RecordingError, XdfWriter

__all__ = ["RecordedGap", "RecorderSink", "RecordingError", "XdfRecorder", "XdfWriter", "events_stream"]
