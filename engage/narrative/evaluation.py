"""Closed-loop evaluation: simulated viewers watch a story under a policy, through the whole pipeline.

Each run is one :class:`~engage.sensors.simulated.SimulatedViewer` (traits drawn from its seed)
watching a story in a :class:`~engage.session.Session` on a virtual clock: its ECG, EDA and face
go through the same signals, models and events as a live session, and a
:class:`~engage.narrative.controller.Controller` with the policy chooses each scene until the
story ends. The viewer's latent ground truth scores the run:

* ``bored_s`` / ``bored_frac``: time (and share of the viewing time) the viewer's true boredom
  was above :data:`BORED`;
* ``band_frac``: share of the time the viewer's true arousal was inside the target band
  :data:`BAND` (engaged, neither bored flat nor overloaded);
* ``plot_changes``: how often the controller left the authored path.

:func:`compare` runs the adaptive policy and the fixed authored path for the same viewers
(paired: viewer *i* has the same traits and seed under both) and :func:`format_table` prints
the result with the paired difference.

>>> r = run_viewer(None, "fixed", seed=3, horizon_s=30.0)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .ink import sample_ink_path
from .plan import ScenePlan
from .story import StoryError, open_story

#: True boredom above this counts as bored.
BORED = 0.5
#: True arousal inside this band counts as "in the target band".
BAND = (0.35, 0.75)
#: A playthrough longer than this (simulated seconds) is reported as not ending.
MAX_HORIZON_S = 4 * 3600.0

POLICIES = ("director", "thompson", "fixed")


@dataclass
class RunResult:
    """One simulated viewer's run under one policy."""

    seed: int
    policy: str
    ended: bool
    watched_s: float
    bored_s: float
    bored_frac: float
    band_frac: float
    plot_changes: int
    scenes: int
    ending: str | None
    plans: list[ScenePlan]

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("plans")
        return d


def make_policy(name: str, seed: int = 0):
    """``director`` (greedy director), ``thompson`` (director + Thompson sampling) or ``fixed``."""
    from .policy import DirectorPolicy, FixedPolicy

    if name == "fixed":
        return FixedPolicy()
    if name == "director":
        return DirectorPolicy(mode="greedy", seed=seed)
    if name == "thompson":
        return DirectorPolicy(mode="thompson", seed=seed)
    raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")


def run_viewer(story_path: str | Path | None, policy: str, seed: int, horizon_s: float = MAX_HORIZON_S,
               rewriter: Any | None = None, overlay: str | Path | None = None, outputs: Sequence[Any] = ()) -> RunResult:
    """Play ``story_path`` (default: the sample ink story; ``overlay`` adds tags to an ink story)
    to its end for simulated viewer ``seed``. ``rewriter`` is a
    :class:`~engage.narrative.rewriter.RewriteService` or ``"template"``; ``outputs`` are
    publishers (:mod:`engage.narrative.publish`) that get every plan, the viewer's state and the
    story's end."""
    if rewriter == "template":
        from .rewriter import RewriteService, TemplateRewriter

        rewriter = RewriteService(TemplateRewriter())
    from engage.core import VirtualClock
    from engage.sensors.simulated import SimulatedViewer
    from engage.session import Session

    from .controller import Controller

    player = story_player(str(story_path or sample_ink_path()), str(overlay) if overlay else None)
    viewer = SimulatedViewer(seed=seed)
    plans: list[ScenePlan] = []
    holder: dict[str, Any] = {}
    controller = Controller(player, policy=make_policy(policy, seed), on_plan=[plans.append, *outputs],
                            rewriter=rewriter, stop_at_end=True, on_end=lambda: holder["session"].runtime.stop(),
                            on_state=[o.on_state for o in outputs])
    session = Session([viewer], VirtualClock(0.0), story=None, extra_processors=[controller])
    for output in outputs:
        session.bus.subscribe(output.on_event, "story.")
    holder["session"] = session
    stats = session.run(duration=horizon_s).stats
    truth = viewer.truth_array()
    t0 = plans[0].timestamp if plans else stats.start
    end = stats.end
    sel = (truth[:, 0] >= t0) & (truth[:, 0] <= end)
    arousal, boredom = truth[sel, 1], truth[sel, 2]
    n = max(1, int(sel.sum()))
    dt = float(np.median(np.diff(truth[:, 0]))) if len(truth) > 1 else 0.1
    bored_s = float((boredom > BORED).sum() * dt)
    in_band = float(((arousal >= BAND[0]) & (arousal <= BAND[1])).sum() / n)
    ending = plans[-1].scene if plans and controller.finished else None
    return RunResult(seed, policy, controller.finished, float(end - t0), bored_s, float((boredom > BORED).sum() / n),
                     in_band, controller.plot_changes, len(plans), ending, plans)


_PLAYERS: dict[tuple, Any] = {}


def story_player(path: str, overlay: str | None = None) -> Any:
    """A story player for this process, reused run after run (each run begins the story again; an ink
    story keeps one runtime worker process instead of starting one per run and leaving it behind).

    Parameters
    ----------
    path
        A story file engage can open.
    overlay
        Tags for the knots of a compiled ink story (a TOML file), or None.

    Returns
    -------
    The player :func:`~engage.narrative.story.open_story` gives, shared by every run of this process
    (at most four stories are kept; an older one's runtime is stopped).

    Example
    -------
    >>> story_player(str(sample_ink_path())) is story_player(str(sample_ink_path()))
    True
    """
    try:
        stamp = tuple(Path(p).stat().st_mtime_ns for p in (path, overlay) if p and Path(p).exists())
    except OSError:
        stamp = ()
    key = (path, overlay, stamp)
    if key not in _PLAYERS:
        if len(_PLAYERS) >= 4:
            for old in _PLAYERS.values():
                close = getattr(old, "close", None)
                if callable(close):
                    close()
            _PLAYERS.clear()
        _PLAYERS[key] = open_story(path, overlay=overlay)
    return _PLAYERS[key]


def _one(args: tuple) -> dict[str, Any]:
    story_path, policy, seed, horizon, overlay = args
    return run_viewer(story_path, policy, seed, horizon, overlay=overlay).summary()


def runs_by_policy(fn: Callable[[tuple], dict], tasks: Sequence[tuple], policies: Sequence[str], jobs: int = 1,
                   on_result: Callable[[dict], None] | None = None) -> dict[str, list[dict[str, Any]]]:
    """``fn(task)`` for every task (in this process, or in ``jobs`` processes with joblib), each result
    handed to ``on_result`` as it finishes; the results grouped by their ``policy``, sorted by ``seed``."""
    if jobs == 1:
        results: Iterable[dict] = (fn(t) for t in tasks)
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=jobs, return_as="generator")(delayed(fn)(t) for t in tasks)
    out: dict[str, list[dict[str, Any]]] = {p: [] for p in policies}
    for r in results:
        out[r["policy"]].append(r)
        if on_result is not None:
            on_result(r)
    for runs in out.values():
        runs.sort(key=lambda r: r["seed"])
    return out


def compare(story_path: str | Path | None, viewers: int = 100, adaptive: str = "director", jobs: int = 1,
            first_seed: int = 0, horizon_s: float = MAX_HORIZON_S,
            on_result: Callable[[dict], None] | None = None,
            overlay: str | Path | None = None) -> dict[str, list[dict[str, Any]]]:
    """Run ``viewers`` simulated viewers under ``adaptive`` and under ``fixed``; returns the
    per-run summaries by policy. ``jobs`` > 1 runs viewers in parallel processes (joblib)."""
    if viewers < 1:
        raise ValueError(f"viewers must be >= 1, got {viewers}")
    # fail early, with the story's own error (the player is then this process's for jobs=1)
    story_player(str(story_path or sample_ink_path()), str(overlay) if overlay else None)
    tasks = [(str(story_path) if story_path else None, p, first_seed + i, horizon_s,
              str(overlay) if overlay else None) for i in range(viewers) for p in (adaptive, "fixed")]
    return runs_by_policy(_one, tasks, (adaptive, "fixed"), jobs, on_result)


def paired_difference(results: dict[str, list[dict[str, Any]]], adaptive: str, key: str = "bored_frac") -> dict[str, float]:
    """Mean of ``key`` under each policy, the paired difference (adaptive − fixed), its 95 %
    confidence interval and the Wilcoxon signed-rank p-value."""
    from scipy import stats

    a = np.array([r[key] for r in results[adaptive]], dtype=float)
    f = np.array([r[key] for r in results["fixed"]], dtype=float)
    diff = a - f
    n = len(diff)
    sd = float(diff.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else math.nan
    try:
        p = float(stats.wilcoxon(a, f).pvalue) if n > 1 and np.any(diff != 0) else 1.0
    except ValueError:
        p = math.nan
    return {"adaptive": float(a.mean()), "fixed": float(f.mean()), "diff": float(diff.mean()),
            "ci_low": float(diff.mean() - half), "ci_high": float(diff.mean() + half), "p": p, "n": n}


def format_table(results: dict[str, list[dict[str, Any]]], adaptive: str) -> str:
    """The comparison as a text table plus one sentence each on time bored and time in the target
    arousal band: the paired difference with its 95 % confidence interval."""
    rows = [("policy", "viewers", "ended", "watched min", "bored s", "bored %", "in band %", "plot changes")]
    for name in (adaptive, "fixed"):
        runs = results[name]
        m = lambda k: float(np.mean([r[k] for r in runs])) if runs else math.nan  # noqa: E731
        rows.append((name, str(len(runs)), f"{sum(r['ended'] for r in runs)}/{len(runs)}", f"{m('watched_s') / 60:.1f}",
                     f"{m('bored_s'):.0f}", f"{100 * m('bored_frac'):.1f}", f"{100 * m('band_frac'):.1f}",
                     f"{m('plot_changes'):.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.append("")
    for key, what in (("bored_frac", "of the viewing time bored"), ("band_frac", "of the viewing time in the target "
                                                                               "arousal band")):
        d = paired_difference(results, adaptive, key)
        if d["diff"] == 0:
            lines.append(f"the adaptive policy ({adaptive}) spent the same share {what} as the fixed authored path "
                         f"({100 * d['adaptive']:.1f} %, n = {d['n']})")
            continue
        verdict = "less" if d["diff"] < 0 else "more"
        rel = f", {abs(100 * d['diff'] / d['fixed']):.0f} % {verdict}" if d["fixed"] > 0 else ""
        lines.append(f"the adaptive policy ({adaptive}) spent {abs(100 * d['diff']):.1f} percentage points {verdict} "
                     f"{what} than the fixed authored path ({100 * d['adaptive']:.1f} % vs {100 * d['fixed']:.1f} "
                     f"%{rel}; paired 95 % CI {100 * d['ci_low']:+.1f} … {100 * d['ci_high']:+.1f} points, "
                     f"Wilcoxon p = {d['p']:.2g}, n = {d['n']})")
    return "\n".join(lines)


def validate_story_file(path: str | Path, overlay: str | Path | None = None) -> tuple[list[str], list[str]]:
    """(errors, warnings) for any story file, without running anything the file says."""
    from .ink import check_ink
    from .story import load_story, validate

    p = Path(path)
    if p.suffix.lower() == ".json":
        return check_ink(p, overlay=overlay)
    try:
        story = open_story(p, overlay=overlay).story
    except StoryError as exc:
        return exc.problems, []
    problems = validate(story)
    _ = load_story  # noqa: F841 - open_story already used the strict loader
    return [], problems


__all__: Sequence[str] = ("BAND", "BORED", "POLICIES", "RunResult", "compare", "format_table", "make_policy",
                          "paired_difference", "run_viewer", "story_player", "validate_story_file")
