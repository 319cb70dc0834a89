"""Session reports: ``engage report FILE.xdf -o report.html``.

:func:`build_report` reads an XDF file - a session recorded by engage (derived streams and events
read directly) or a raw LabRecorder file (run through the pipeline on a virtual clock) - and writes
one self-contained HTML file with the plots embedded, plus the PNGs: the engagement timeline with
the scenes, heart rate and EDA, the streams with their gaps, the recorded signals; tables of the
controller's decisions with their reasons, the sensor gaps, the streams and the events.

>>> from engage.report import build_report
>>> result = build_report("session.xdf", "out/report.html")     # doctest: +SKIP
>>> result.data.mode, len(result.data.decisions)                # doctest: +SKIP
('recorded', 6)
"""

from .data import Decision, GapRow, ReportData, StreamSummary, analyse_recording, parse_event
from .html import ReportResult, build_report, render_html

__all__ = ["Decision", "GapRow", "ReportData", "ReportResult", "StreamSummary", "analyse_recording", "build_report",
           "parse_event", "render_html"]
