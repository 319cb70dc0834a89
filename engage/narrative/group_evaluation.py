"""Closed-loop evaluation of the group policies: simulated audiences watch one film together.

Each run is one :class:`~engage.sensors.simulated.SimulatedAudience` of ``size`` viewers (traits
drawn from the group's seed) watching a story in one :class:`~engage.session.Session` on a
virtual clock: every viewer's ECG, EDA and face go through their own pipeline, the group's
aggregate (:class:`~engage.events.group.GroupEngagement`) and a
:class:`~engage.narrative.controller.Controller` playing for the group under a group policy
(:class:`~engage.narrative.group.GroupPolicy`: ``aggregate``, ``least-engaged``, ``majority``) or
the fixed authored path. The viewers' latent ground truth scores the run:

* ``bored_frac``: the group's share of the viewing time bored (true boredom above
  :data:`~engage.narrative.evaluation.BORED`), averaged over its viewers;
* ``worst_bored_frac``: the share of the most bored viewer of the group;
* ``plot_changes``: how often the controller left the authored path.

:func:`compare_groups` runs every policy for the same audiences (paired: group *i* has the same
viewers under each), :func:`format_group_table` prints them with the paired differences against
the fixed path.

>>> GROUP_POLICIES_COMPARED
('aggregate', 'least-engaged', 'majority')
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .evaluation import BORED, MAX_HORIZON_S, paired_difference, runs_by_policy, story_player
from .ink import sample_ink_path

__all__ = ["GROUP_POLICIES_COMPARED", "compare_groups", "format_group_table", "run_group"]

#: The group policies that play one film (``personal`` gives each viewer their own and is not compared).
GROUP_POLICIES_COMPARED = ("aggregate", "least-engaged", "majority")


def run_group(story_path: str | Path | None, policy: str, seed: int, size: int = 4,
              horizon_s: float = MAX_HORIZON_S) -> dict[str, Any]:
    """Play ``story_path`` (default: the sample ink story) to its end for the simulated audience ``seed``
    of ``size`` viewers under ``policy`` (a group policy or ``fixed``); returns the run's summary.

    Parameters
    ----------
    story_path
        A story file engage can open.
    policy
        ``aggregate``, ``least-engaged``, ``majority`` or ``fixed`` (the authored path).
    seed
        The audience's seed (its viewers' traits and signals).
    size
        How many viewers watch together.
    horizon_s
        A playthrough longer than this (simulated seconds) is cut and reported as not ending.

    Returns
    -------
    dict
        ``seed``, ``policy``, ``size``, ``ended``, ``watched_s``, ``bored_frac``, ``worst_bored_frac``,
        ``viewer_bored_frac`` (each viewer's), ``plot_changes``, ``scenes``, ``served`` (decisions
        served per viewer).
    """
    from engage.core import GROUP_VIEWER, VirtualClock
    from engage.events.group import GroupConfig
    from engage.sensors.simulated import SimulatedAudience
    from engage.session import Session

    from .controller import Controller
    from .group import GroupPolicy, GroupTracker
    from .policy import DirectorPolicy, FixedPolicy

    if policy != "fixed" and policy not in GROUP_POLICIES_COMPARED:
        raise ValueError(f"unknown group policy {policy!r}; choose from fixed, {', '.join(GROUP_POLICIES_COMPARED)}")
    audience = SimulatedAudience(size, seed=seed, scene_viewers=(GROUP_VIEWER,))
    config = GroupConfig(viewers=tuple(v.viewer for v in audience),
                         policy="aggregate" if policy == "fixed" else policy)
    extra: list[Any] = []
    if policy == "fixed":
        chooser: Any = FixedPolicy()
    else:
        tracker = GroupTracker(config)
        extra.append(tracker)
        chooser = GroupPolicy(policy, DirectorPolicy(mode="greedy", seed=seed), tracker)
    plans: list = []
    holder: dict[str, Any] = {}
    controller = Controller(story_player(str(story_path or sample_ink_path())), viewer=GROUP_VIEWER, policy=chooser,
                            on_plan=plans.append, stop_at_end=True,
                            on_end=lambda: holder["session"].runtime.stop())
    session = Session(list(audience), VirtualClock(0.0), story=None, group=config,
                      extra_processors=[*extra, controller])
    holder["session"] = session
    stats = session.run(duration=horizon_s).stats
    t0 = plans[0].timestamp if plans else stats.start
    fracs = []
    for v in audience:
        truth = v.truth_array()
        sel = (truth[:, 0] >= t0) & (truth[:, 0] <= stats.end)
        fracs.append(float((truth[sel, 2] > BORED).sum() / max(1, int(sel.sum()))))
    served = {v.viewer: sum(v.viewer in p.evidence.get("served", ()) for p in plans) for v in audience}
    return {"seed": seed, "policy": policy, "size": size, "ended": bool(controller.finished),
            "watched_s": float(stats.end - t0), "bored_frac": float(np.mean(fracs)),
            "worst_bored_frac": float(max(fracs)), "viewer_bored_frac": fracs,
            "plot_changes": controller.plot_changes, "scenes": len(plans), "served": served}


def _one(args: tuple) -> dict[str, Any]:
    return run_group(*args)


def compare_groups(story_path: str | Path | None, groups: int, size: int = 4,
                   policies: Sequence[str] = GROUP_POLICIES_COMPARED, jobs: int = 1, first_seed: int = 0,
                   horizon_s: float = MAX_HORIZON_S,
                   on_result: Callable[[dict], None] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Run ``groups`` simulated audiences of ``size`` under each of ``policies`` and the fixed path (the same
    audiences under each); returns the per-run summaries by policy, sorted by seed."""
    if groups < 1 or size < 1:
        raise ValueError(f"groups and size must be >= 1, got {groups} and {size}")
    story_player(str(story_path or sample_ink_path()))  # fail early, with the story's own error
    names = [*policies, "fixed"]
    tasks = [(str(story_path) if story_path else None, p, first_seed + i, size, horizon_s)
             for i in range(groups) for p in names]
    return runs_by_policy(_one, tasks, names, jobs, on_result)


def format_group_table(results: dict[str, list[dict[str, Any]]]) -> str:
    """Each policy's group time bored, worst viewer's time bored and plot changes, then each group policy's
    paired difference against the fixed path (mean, 95 % interval, Wilcoxon p)."""
    rows = [("policy", "groups", "ended", "group bored %", "worst viewer bored %", "plot changes")]
    for name, runs in results.items():
        m = lambda k: float(np.mean([r[k] for r in runs])) if runs else math.nan  # noqa: E731
        rows.append((name, str(len(runs)), f"{sum(r['ended'] for r in runs)}/{len(runs)}",
                     f"{100 * m('bored_frac'):.1f}", f"{100 * m('worst_bored_frac'):.1f}", f"{m('plot_changes'):.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.append("")
    lines.append("against the fixed path (paired by audience; percentage points, 95 % CI, Wilcoxon p):")
    for name in results:
        if name == "fixed":
            continue
        parts = []
        for key, label in (("bored_frac", "group bored"), ("worst_bored_frac", "worst viewer bored"),
                           ("plot_changes", "plot changes")):
            d = paired_difference(results, name, key)
            scale = 1 if key == "plot_changes" else 100
            parts.append(f"{label} {scale * d['diff']:+.1f} [{scale * d['ci_low']:+.1f} … {scale * d['ci_high']:+.1f}]"
                         f" p = {d['p']:.2g}")
        lines.append(f"  {name}: " + "; ".join(parts))
    return "\n".join(lines)
