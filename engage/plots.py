"""Plots of a session: engagement scores with scenes and events, heart rate and EDA.

>>> # plot_session(result.log, "out/demo/session.png", origin=result.start)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

EVENT_COLOURS = {"boredom": "tab:purple", "arousal": "tab:red", "attention": "tab:grey"}


def plot_session(log, path: str | Path, origin: float = 0.0, title: str = "engage session") -> Path:
    """Write a PNG: scores + scene bands + events (top), heart rate (middle), EDA (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(3, 1, figsize=(12, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1.2, 1.2]})
    ax = axes[0]
    to_min = lambda t: (np.asarray(t) - origin) / 60.0  # noqa: E731
    plans = list(log.plans)
    t_all = [log.array(k, c)[0] for k, c in (("Engagement", "arousal"), ("EDAFeatures", "tonic_us"))]
    session_end = max([float(t[-1]) for t in t_all if len(t)] + [p.timestamp for p in plans] + [origin])
    for i, plan in enumerate(plans):
        start = to_min(plan.timestamp)
        end = to_min(plans[i + 1].timestamp) if i + 1 < len(plans) else min(
            start + plan.duration_s / 60.0, to_min(session_end))
        ax.axvspan(start, end, color=matplotlib.colormaps["YlOrRd"](0.15 + 0.7 * float(plan.directives.get(
            "music_intensity", 0.5))), alpha=0.35, lw=0)
        ax.text(start, 1.02, plan.scene, fontsize=7, rotation=30, va="bottom", ha="left")
    for channel, colour in (("arousal", "tab:red"), ("boredom", "tab:purple"), ("attention", "tab:green"),
                            ("confidence", "0.6")):
        t, x = log.array("Engagement", channel)
        if len(t):
            ax.plot(to_min(t), x, color=colour, lw=1.2 if channel != "confidence" else 0.8,
                    ls="-" if channel != "confidence" else ":", label=channel)
    for e in log.events:
        kind = e.type.split(".")[0]
        if kind in EVENT_COLOURS:
            ax.axvline(to_min(e.timestamp), color=EVENT_COLOURS[kind], lw=0.8,
                       ls="--" if e.type.endswith(("offset", "low", "regained")) else "-")
        elif e.type == "sensor.gap":
            ax.axvline(to_min(e.timestamp), color="black", lw=0.6, ls=":")
    ax.set_ylim(0, 1.0)
    ax.set_ylabel("score")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8, ncol=4)
    fig.suptitle(title)
    t, hr = log.array("HeartRate", "hr_bpm")
    _, q = log.array("HeartRate", "quality")
    if len(t):
        good = q >= 0.5
        axes[1].plot(to_min(t[good]), hr[good], ".", ms=2, color="tab:red")
    axes[1].set_ylabel("HR (bpm)")
    t, tonic = log.array("EDAFeatures", "tonic_us")
    if len(t):
        axes[2].plot(to_min(t), tonic, color="tab:blue", lw=1)
        _, scr = log.array("EDAFeatures", "scr_amplitude")
        peaks = scr > 0
        axes[2].plot(to_min(t[peaks]), tonic[peaks], "v", ms=4, color="tab:orange", label="SCR")
    axes[2].set_ylabel("EDA tonic (µS)")
    axes[2].set_xlabel("minutes")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_truth_vs_sensed(panels, path: str | Path, channel: str = "boredom",
                         title: str = "simulated viewers: true state and what the sensing stack inferred") -> Path:
    """Write a PNG of small multiples, one per simulated viewer: the viewer's latent ``channel``
    (ground truth) against the ``Engagement`` stream's ``channel`` the pipeline inferred, with the
    scene starts and the ``{channel}.onset``/``.offset`` events.

    Parameters
    ----------
    panels : sequence of (label, truth, log)
        ``truth`` is :meth:`~engage.sensors.simulated.SimulatedViewer.truth_array` (columns t, arousal,
        boredom, attention); ``log`` the session's log.
    path : str or Path
    channel : {"boredom", "arousal", "attention"}

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    column = {"arousal": 1, "boredom": 2, "attention": 3}[channel]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(panels)
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 2.6 * rows), sharex=True, sharey=True, squeeze=False)
    for ax, (label, truth, log) in zip(axes.flat, panels):
        ax.plot(truth[:, 0], truth[:, column], color="black", lw=1.2, label=f"true {channel}")
        t, x = log.array("Engagement", channel)
        if len(t):
            ax.plot(t, x, color=EVENT_COLOURS.get(channel, "tab:blue"), lw=1.2, label=f"sensed {channel}")
        for e in log.events:
            if e.type == "scene.start":
                ax.axvline(e.timestamp, color="0.75", lw=0.8, ls=":")
            elif e.type in (f"{channel}.onset", f"{channel}.offset"):
                ax.axvline(e.timestamp, color=EVENT_COLOURS.get(channel, "tab:blue"), lw=1.0,
                           ls="-" if e.type.endswith("onset") else "--")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(label, fontsize=9)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("s")
    axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
