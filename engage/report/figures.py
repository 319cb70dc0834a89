"""The report's figures (matplotlib, Agg, no pyplot state): each returns PNG bytes.

Every plot's x axis is minutes from the report's origin, and every plot shades the sensor gaps
(grey hatching) so a flat line is never mistaken for a calm viewer.

>>> png = timeline_png(data)                                      # doctest: +SKIP
>>> png[:4]                                                       # doctest: +SKIP
b'\\x89PNG'
"""

from __future__ import annotations

import io

import numpy as np

from .data import DERIVED_TYPES as _DERIVED
from .data import ReportData

EVENT_COLOURS = {"boredom": "tab:purple", "arousal": "tab:red", "attention": "tab:olive", "marker": "tab:blue",
                 "baseline": "tab:green", "story": "black", "pipeline": "tab:orange"}
SCORE_COLOURS = {"arousal": "tab:red", "boredom": "tab:purple", "attention": "tab:green"}
GAP_STYLE = {"facecolor": "0.55", "alpha": 0.25, "hatch": "//", "edgecolor": "0.35", "lw": 0}
DPI = 100


def _figure(height: float, rows: int = 1, ratios=None):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, height), dpi=DPI)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": ratios} if ratios else None)[:, 0]
    return fig, list(axes)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _minutes(data: ReportData, t) -> np.ndarray:
    return (np.asarray(t, dtype=np.float64) - data.origin) / 60.0


def _shade_gaps(ax, data: ReportData, label: bool = False) -> None:
    for i, g in enumerate(data.gaps):
        end = g.end if g.end is not None else data.end
        a, b = _minutes(data, [g.start, max(end, g.start)])
        if b - a < 1e-3:  # a zero-length hole (clock reset): a line
            ax.axvline(a, color="0.3", lw=1.0, ls="--")
        else:
            ax.axvspan(a, b, label="sensor gap" if label and i == 0 else None, **GAP_STYLE)


def _scene_bands(ax, data: ReportData, titles: bool) -> None:
    import matplotlib

    cmap = matplotlib.colormaps["YlOrRd"]
    for i, (d, end) in enumerate(data.scenes()):
        a, b = _minutes(data, [d.timestamp, end])
        level = 0.5 if d.intensity is None else float(np.clip(d.intensity, 0, 1))
        ax.axvspan(a, b, color=cmap(0.1 + 0.6 * level), alpha=0.3, lw=0)
        ax.axvline(a, color="0.5", lw=0.5)
        if titles:
            ax.text(a, 1.01, d.title or d.scene, transform=ax.get_xaxis_transform(), fontsize=7, rotation=30,
                    va="bottom", ha="left", clip_on=False)


def _events(ax, data: ReportData, types=None) -> None:
    seen = set()
    for e in data.events:
        kind = e.type.split(".")[0]
        if e.type in ("scene.start", "sensor.gap") or (types is not None and kind not in types):
            continue
        colour = EVENT_COLOURS.get(kind, "0.4")
        label = e.type if e.type not in seen else None
        seen.add(e.type)
        ax.axvline(_minutes(data, e.timestamp), color=colour, lw=0.9, alpha=0.8, label=label,
                   ls="--" if e.type.endswith(("offset", "low", "regained")) else "-")


def _probe_answers(ax, data: ReportData) -> None:
    """Thought-probe answers (``probe.answer`` events) where the probe was shown, on the 0-1 score
    axis: an answer at the top of its scale sits at 1, one at the bottom at 0."""
    labelled = set()
    for e in data.events:
        if e.type != "probe.answer":
            continue
        ev = e.evidence
        try:
            lo, hi = (float(v) for v in ev.get("scale", (1, 7)))
            y = (float(ev["value"]) - lo) / (hi - lo)
            x = _minutes(data, float(ev.get("shown_at", e.timestamp)))
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            continue
        q = str(ev.get("question", "?"))
        ax.scatter([x], [y], marker="D", s=36, color=SCORE_COLOURS.get(q, "0.3"), edgecolors="black", linewidths=0.6,
                   zorder=5, label=None if q in labelled else f"{q}: viewer's answer")
        labelled.add(q)


def _finish_x(axes, data: ReportData) -> None:
    span = max(_minutes(data, data.end), 1e-3)
    axes[-1].set_xlim(0, span * 1.01)
    axes[-1].set_xlabel("minutes from the start of the recording")


def _lead(data: ReportData) -> tuple[str, str | None]:
    """The engagement the timeline shows: the group's when viewers watched together, else the one viewer's
    (several viewers' rows drawn as one line would be a sawtooth; :func:`viewers_png` shows each)."""
    if data.has("GroupEngagement"):
        return "GroupEngagement", None
    viewers = data.viewers()
    return "Engagement", viewers[0] if len(viewers) > 1 else None


def timeline_png(data: ReportData) -> bytes:
    """Engagement scores with their confidence, scenes as bands with their titles, events, gaps."""
    fig, (ax, axc) = _figure(6.0, 2, [3, 1])
    _scene_bands(ax, data, titles=True)
    _scene_bands(axc, data, titles=False)
    kind, lead = _lead(data)
    for channel, colour in SCORE_COLOURS.items():
        t, x = data.array(kind, channel, lead)
        if len(t):
            ax.plot(_minutes(data, t), x, color=colour, lw=1.3, label=channel)
    _events(ax, data, types=("boredom", "arousal", "attention", "story", "baseline"))
    _probe_answers(ax, data)
    _shade_gaps(ax, data, label=True)
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("score (0-1)")
    if not data.has("Engagement"):
        ax.text(0.5, 0.5, "no engagement scores in this recording", transform=ax.transAxes, ha="center",
                va="center", color="0.4")
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    t, conf = data.array(kind, "confidence", lead)
    if len(t):
        m = _minutes(data, t)
        axc.fill_between(m, 0, conf, color="0.6", alpha=0.5, lw=0, label="confidence")
        tq, q = data.array(kind, "quality", lead)
        if len(tq):
            axc.plot(_minutes(data, tq), q, color="tab:blue", lw=0.8, label="signal quality")
        axc.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    _shade_gaps(axc, data)
    axc.set_ylim(0, 1.05)
    axc.set_ylabel("confidence")
    _finish_x([ax, axc], data)
    whose = " (the group)" if kind == "GroupEngagement" else f" ({lead})" if lead else ""
    fig.suptitle(f"engagement{whose} - {data.path.name}", fontsize=11)  # tight_layout leaves room for the scene titles
    return _png(fig)


def viewers_png(data: ReportData) -> bytes:
    """Several viewers (issue 21): one panel per viewer, the group's first, with their scores and their own
    boredom, arousal and attention events."""
    rows: list[tuple[str, str | None, str]] = []
    if data.has("GroupEngagement"):
        rows.append(("GroupEngagement", None, "group"))
    rows += [("Engagement", v, v) for v in data.viewers()]
    fig, axes = _figure(1.6 * len(rows) + 0.6, len(rows))
    for ax, (kind, viewer, title) in zip(axes, rows):
        _scene_bands(ax, data, titles=False)
        for channel, colour in SCORE_COLOURS.items():
            t, x = data.array(kind, channel, viewer)
            if len(t):
                ax.plot(_minutes(data, t), x, color=colour, lw=1.0, label=channel if ax is axes[0] else None)
        who = "group" if viewer is None else viewer
        for e in data.events:
            kind_ = e.type.removeprefix("group.").split(".")[0]
            if e.viewer == who and kind_ in ("boredom", "arousal", "attention") and e.type.endswith(
                    (".onset", ".high", ".lost")):
                ax.axvline(_minutes(data, e.timestamp), color=EVENT_COLOURS.get(kind_, "0.4"), lw=0.8, ls="--")
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel(title, rotation=0, ha="right", va="center", fontsize=9)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    _finish_x(axes, data)
    fig.suptitle(f"each viewer - {data.path.name} (dashed: their boredom, arousal, attention events)", fontsize=11)
    return _png(fig)


def physiology_png(data: ReportData) -> bytes:
    """Heart rate (beats; low-quality ones faded) and EDA (tonic level, SCRs), with scenes and gaps."""
    fig, (ah, ae) = _figure(5.5, 2)
    for ax in (ah, ae):
        _scene_bands(ax, data, titles=False)
    t, hr = data.array("HeartRate", "hr_bpm")
    if len(t):
        _, q = data.array("HeartRate", "quality")
        good = q >= 0.5 if len(q) == len(t) else np.ones(len(t), bool)
        m = _minutes(data, t)
        ah.plot(m[good], hr[good], ".", ms=2.5, color="tab:red", label="heart rate")
        if (~good).any():
            ah.plot(m[~good], hr[~good], ".", ms=2.5, color="tab:red", alpha=0.2, label="low quality")
        ah.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    else:
        ah.text(0.5, 0.5, "no heart rate", transform=ah.transAxes, ha="center", va="center", color="0.4")
    ah.set_ylabel("heart rate (bpm)")
    t, tonic = data.array("EDAFeatures", "tonic_us")
    if len(t):
        m = _minutes(data, t)
        ae.plot(m, tonic, color="tab:blue", lw=1.1, label="tonic level")
        ts, scr = data.array("EDAFeatures", "scr_amplitude")
        peaks = np.isfinite(scr) & (scr > 0) if len(scr) == len(t) else np.zeros(len(t), bool)
        if peaks.any():
            ae.plot(m[peaks], tonic[peaks], "v", ms=4, color="tab:orange", label="SCR")
        ae.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    else:
        ae.text(0.5, 0.5, "no EDA", transform=ae.transAxes, ha="center", va="center", color="0.4")
    ae.set_ylabel("EDA (µS)")
    for ax in (ah, ae):
        _shade_gaps(ax, data)
    _finish_x([ah, ae], data)
    ah.set_title(f"heart rate and skin conductance - {data.path.name}", fontsize=11)
    return _png(fig)


def streams_png(data: ReportData) -> bytes:
    """One row per stream (recorded, then derived): where it has samples, its gaps, and the events."""
    rows = [(s, "derived" if s.type in _DERIVED else "recorded") for s in data.streams]
    rows += [(s, "derived") for s in data.derived if s not in data.streams]
    n = len(rows) + 1
    fig, (ax,) = _figure(1.2 + 0.35 * n)
    labels = []
    for y, (s, kind) in enumerate(rows):
        colour = "tab:blue" if kind == "recorded" else "tab:green"
        for a, b in s.segments:
            a, b = _minutes(data, [a, b])
            ax.broken_barh([(a, max(b - a, 0.02))], (y - 0.3, 0.6), color=colour, alpha=0.7)
        labels.append(f"{s.name} ({s.type}{', derived' if kind == 'derived' else ''})")
    ev_y = len(rows)
    ts = [e.timestamp for e in data.events if e.type != "sensor.gap"]
    if ts:
        ax.plot(_minutes(data, ts), np.full(len(ts), ev_y), "|", ms=12, color="tab:purple")
    labels.append(f"events ({len(ts)})")
    _shade_gaps(ax, data, label=True)
    ax.set_yticks(range(n))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    ax.invert_yaxis()
    if data.gaps:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    _finish_x([ax], data)
    ax.set_title(f"streams and events (blue: sensors, green: derived by engage) - {data.path.name}", fontsize=11)
    return _png(fig)


def signals_png(data: ReportData, max_streams: int = 6, max_channels: int = 4) -> bytes | None:
    """The recorded numeric signals (first channels of each stream, each scaled to its own range), or None."""
    raw = [s for s in data.streams if not s.is_string and s.type not in _DERIVED and s.samples > 1][:max_streams]
    if not raw:
        return None
    fig, axes = _figure(1.2 + 1.6 * len(raw), len(raw))
    for ax, s in zip(axes, raw):
        info, t, x = next(v for v in data.series.values() if v[0].name == s.name)
        m = _minutes(data, t)
        if len(t) > 1:  # no line drawn across a hole: a NaN row after every jump
            from engage.sensors.replay import gap_threshold

            d = np.diff(t)
            limit = gap_threshold(info.nominal_rate) if info.nominal_rate > 0 else 10 * float(np.median(d))
            cuts = np.flatnonzero((d > limit) | (d < 0)) + 1
            m = np.insert(m, cuts, np.nan)
            x = np.insert(x, cuts, np.nan, axis=0)
        for k in range(min(max_channels, x.shape[1])):
            col = x[:, k]
            finite = np.isfinite(col)
            if not finite.any():
                continue
            lo, hi = np.percentile(col[finite], [1, 99])
            scale = hi - lo if hi > lo else 1.0
            ax.plot(m, (col - lo) / scale + k * 1.2, lw=0.5, label=info.channels[k])
        ax.set_yticks([])
        ax.set_ylabel(f"{s.name}\n({s.type})", fontsize=8)
        _shade_gaps(ax, data)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    _finish_x(axes, data)
    axes[0].set_title(f"recorded signals (each channel scaled to its 1-99 % range) - {data.path.name}", fontsize=11)
    return _png(fig)

