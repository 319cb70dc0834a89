"""Session reports: one self-contained HTML file (plots embedded as PNG data URIs) plus the PNGs.

>>> result = build_report("session.xdf", "out/report.html")       # doctest: +SKIP
>>> sorted(p.name for p in result.pngs)                           # doctest: +SKIP
['report-physiology.png', 'report-signals.png', 'report-streams.png', 'report-timeline.png']
"""

from __future__ import annotations

import base64
import datetime as _dt
import os
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Callable

from engage import __version__
from engage.core.errors import InputFileError

from . import figures
from .data import ReportData, analyse_recording, event_summary

#: Rows shown in the events table; the rest are counted.
MAX_EVENT_ROWS = 2000

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1250px;color:#222;
line-height:1.4;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.warn{background:#fff4e5;border-left:4px solid #f59f00;padding:.6em 1em;margin:1em 0}
.note{color:#555}figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}.meta td:first-child{font-weight:600}
"""


@dataclass
class ReportResult:
    """Where a report was written and what went into it."""

    html: Path
    pngs: list[Path]
    data: ReportData


def clock(seconds: float) -> str:
    """Seconds from the origin as ``m:ss.s`` (``h:mm:ss`` past an hour).

    >>> clock(75.25), clock(3725.0), clock(-2.0)
    ('1:15.2', '1:02:05', '-0:02.0')
    """
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s >= 3600:
        return f"{sign}{int(s // 3600)}:{int(s % 3600 // 60):02d}:{int(s % 60):02d}"
    return f"{sign}{int(s // 60)}:{s % 60:04.1f}"


def _table(headers: list[str], rows: list[list[object]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(f"<td class=n>{escape(str(v))}</td>" if i in numeric else f"<td>{escape(str(v))}</td>"
                        for i, v in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _rate(x: float | None) -> str:
    return "" if x is None else f"{x:.3g}"


def unclosed_note(data: ReportData) -> str:
    """What a report says of a recording that was not closed cleanly (its streams without a footer)."""
    names = ", ".join(data.unclosed[:8]) + (f" and {len(data.unclosed) - 8} more" if len(data.unclosed) > 8 else "")
    n = len(data.unclosed)
    return (f"{n} stream{'s have' if n > 1 else ' has'} no footer ({names}): the "
            "recorder was killed or lost its disk before it closed the file. Everything that was written is "
            "read; the last moments before it stopped may be missing.")


def render_html(data: ReportData, images: dict[str, tuple[str, bytes]]) -> str:
    """The report as one HTML document; ``images`` maps a figure's key to (caption, PNG bytes)."""
    rel = lambda t: clock(t - data.origin)  # noqa: E731
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
             f"<meta name=viewport content='width=device-width,initial-scale=1'>"
             f"<title>engage report - {escape(data.path.name)}</title><style>{_CSS}</style></head><body>"]
    parts.append(f"<h1>Session report: {escape(data.path.name)}</h1>")
    if data.mode == "recorded":
        how = ("Recorded by engage: the derived streams and the events were read from the file as the session "
               "produced them.")
    else:
        derived = ", ".join(sorted({f"{s.name} ({s.type})" for s in data.derived})) or "nothing"
        how = ("A raw recording: it was run through the engage pipeline on a virtual clock (the same processing "
               f"as a live session). Derived: {derived}.")
    parts.append(f"<p>{escape(how)}</p>")
    if data.problem:
        parts.append(
            f"<div class=warn><b>Damaged file.</b> {escape(data.problem)}. The report covers the readable part: "
            f"the first {data.good_bytes} of {data.file_size} bytes (damage at byte {data.problem_offset}).</div>")
    if data.unclosed:
        parts.append(f"<div class=warn><b>Not closed cleanly.</b> {escape(unclosed_note(data))}</div>")
    for note in data.notes:
        parts.append(f"<div class=warn>{escape(note)}</div>")
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = [
        ["file", data.path.name], ["size", f"{data.file_size} bytes"],
        ["duration", f"{clock(data.end - data.origin)} (LSL clock {data.origin:.3f} to {data.end:.3f} s)"],
        ["streams", f"{len(data.streams)} recorded, {len(data.derived)} derived"],
        ["events", str(len(data.events))], ["scenes", str(len(data.decisions))], ["sensor gaps", str(len(data.gaps))],
        ["made", f"{created} by engage {__version__}"],
    ]
    parts.append("<table class=meta>" + "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in meta)
                 + "</table>")
    parts.append("<h2>Plots</h2>")
    for key, (caption, png) in images.items():
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        parts.append(f"<figure id='fig-{escape(key)}'><img alt='{escape(caption)}' src='{uri}'>"
                     f"<figcaption>{escape(caption)}</figcaption></figure>")

    parts.append("<h2 id=decisions>Scenes and the controller's decisions</h2>")
    if data.decisions:
        rows = [[rel(d.timestamp), d.episode if d.episode is not None else "", d.scene, d.title,
                 "" if d.intensity is None else f"{d.intensity:.2f}", f"{d.confidence:.2f}", d.previous or "",
                 d.reason] for d in data.decisions]
        parts.append(_table(["time", "episode", "scene", "title", "intensity", "confidence", "after", "reason"], rows,
                            {0, 1, 4, 5}))
    else:
        parts.append("<p class=note>No scene decisions in this recording (no narrative controller ran).</p>")

    parts.append("<h2 id=gaps>Sensor gaps</h2>")
    if data.gaps:
        rows = [[g.stream, rel(g.start), "(never came back)" if g.end is None else rel(g.end),
                 "" if g.duration_s is None else f"{g.duration_s:.2f}", g.reason, g.source] for g in data.gaps]
        parts.append(_table(["stream", "from", "to", "seconds", "reason", "reported by"], rows, {1, 2, 3}))
    else:
        parts.append("<p class=note>No sensor gaps.</p>")

    parts.append("<h2 id=streams>Streams found in the file</h2>")
    rows = [[s.name, s.type, len(s.channels),
             ", ".join(s.channels[:8]) + (" …" if len(s.channels) > 8 else ""),
             "irregular" if s.nominal_rate == 0 else f"{s.nominal_rate:g}", _rate(s.measured_rate), s.samples,
             "" if s.first is None else rel(s.first), "" if s.last is None else rel(s.last), s.clock_segments]
            for s in data.streams]
    parts.append(_table(["name", "type", "channels", "channel names", "nominal Hz", "measured Hz", "samples",
                         "first", "last", "clock segments"], rows, {2, 4, 5, 6, 7, 8, 9}))
    if data.mode == "replayed":
        parts.append("<h2 id=derived>Derived by the pipeline</h2>")
        if data.derived:
            rows = [[s.name, s.type, ", ".join(s.channels), s.samples,
                     "" if s.first is None else rel(s.first), "" if s.last is None else rel(s.last)]
                    for s in data.derived]
            parts.append(_table(["name", "type", "channels", "samples", "first", "last"], rows, {3, 4, 5}))
        else:
            parts.append("<p class=note>Nothing: no stream in this file feeds the pipeline's signal processors.</p>")
    if data.load_warnings or any(s.clock_segments > 1 for s in data.streams):
        parts.append("<h2 id=clock>Clock</h2><ul>")
        for s in data.streams:
            if s.clock_segments > 1:
                parts.append(f"<li>{escape(s.name)}: {s.clock_segments} clock segments (a clock reset; timestamps "
                             f"were re-aligned per segment)</li>")
        for w in data.load_warnings:
            parts.append(f"<li class=note>pyxdf: {escape(w)}</li>")
        parts.append("</ul>")

    parts.append("<h2 id=events>Events</h2>")
    if data.events:
        counts: dict[str, int] = {}
        for e in data.events:
            counts[e.type] = counts.get(e.type, 0) + 1
        parts.append("<p>" + escape(", ".join(f"{k} {v}" for k, v in sorted(counts.items()))) + "</p>")
        shown = data.events[:MAX_EVENT_ROWS]
        rows = [[rel(e.timestamp), e.type, f"{e.confidence:.2f}", e.source, event_summary(e)] for e in shown]
        parts.append(_table(["time", "type", "confidence", "source", "what"], rows, {0, 2}))
        if len(data.events) > len(shown):
            parts.append(f"<p class=note>… and {len(data.events) - len(shown)} more events.</p>")
    else:
        parts.append("<p class=note>No events.</p>")
    if data.counters:
        parts.append("<h2 id=counters>Pipeline counters</h2>")
        parts.append(_table(["counter", "value"], [[k, v] for k, v in sorted(data.counters.items())], {1}))
    parts.append("<p class=note>Times are minutes:seconds from the first sample of the recording.</p></body></html>")
    return "\n".join(parts)


def build_report(xdf: str | os.PathLike, html_out: str | os.PathLike, png_dir: str | os.PathLike | None = None,
                 story=None, on_step: Callable[[float], None] | None = None,
                 on_duration: Callable[[float], None] | None = None) -> ReportResult:
    """Read ``xdf``, write the HTML report to ``html_out`` and its PNGs to ``png_dir`` (default: beside it).

    See :func:`~engage.report.data.analyse_recording` for ``story``, ``on_step`` and ``on_duration``.

    >>> r = build_report("session.xdf", "out/report.html")        # doctest: +SKIP
    >>> r.html.read_text()[:15]                                   # doctest: +SKIP
    '<!DOCTYPE html>'
    """
    html_out = Path(html_out)
    if html_out.exists() and html_out.is_dir():
        raise InputFileError(f"{html_out}: is a directory; give a file name for the report (e.g. report.html)")
    data = analyse_recording(xdf, story=story, on_step=on_step, on_duration=on_duration)
    png_dir = Path(png_dir) if png_dir is not None else html_out.parent
    stem = html_out.stem
    made: list[tuple[str, str, bytes | None]] = [
        ("timeline", "Engagement (arousal, boredom, attention) with the model's confidence and signal quality; "
                     "scenes as bands (darker: more intense) with their titles; events as lines; sensor gaps hatched; "
                     "the viewer's answers to thought probes as diamonds (top of the scale at 1).",
         figures.timeline_png(data) if data.has("Engagement") or data.decisions else None),
        ("viewers", "Each viewer who watched (and the group's aggregate first): arousal, boredom and attention, "
                    "with their own events as dashed lines.",
         figures.viewers_png(data) if len(data.viewers()) > 1 else None),
        ("physiology", "Heart rate beat by beat and skin conductance (tonic level, SCRs); sensor gaps hatched.",
         figures.physiology_png(data) if data.has("HeartRate") or data.has("EDAFeatures") else None),
        ("streams", "Where each stream has samples (blue: recorded, green: derived), the events, and the gaps.",
         figures.streams_png(data)),
        ("signals", "The recorded signals themselves (first channels of each numeric stream, decimated).",
         figures.signals_png(data)),
    ]
    try:
        png_dir.mkdir(parents=True, exist_ok=True)
        html_out.parent.mkdir(parents=True, exist_ok=True)
        images, pngs = {}, []
        for key, caption, png in made:
            if png is None:
                continue
            p = png_dir / f"{stem}-{key}.png"
            p.write_bytes(png)
            pngs.append(p)
            images[key] = (caption, png)
        html_out.write_text(render_html(data, images), encoding="utf-8")
    except OSError as exc:
        raise InputFileError(f"cannot write the report: {exc.strerror or exc} ({exc.filename or html_out})") from exc
    return ReportResult(html_out, pngs, data)
