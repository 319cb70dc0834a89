"""Decision logs and offline policy evaluation.

Every decision the controller makes is a :class:`~engage.narrative.plan.ScenePlan` written as
one JSON line (:class:`~engage.narrative.plan.ScenePlanWriter`): the scene chosen, the
alternatives, the ``probability`` the policy had of choosing it, and the evidence (the events
and features behind it, the director's state). That is what off-policy evaluation needs:

* :func:`choice_points` keeps the decisions where there was a real choice;
* :func:`not_bored_next` scores each decision 1 when the viewer was not bored at the next one;
* :func:`ips_value` estimates how another policy would have scored from a log of this one, by
  (self-normalised) inverse propensity scoring: reward × π_new(choice) / π_logged(choice).

>>> from engage.narrative.plan import ScenePlan
>>> mk = lambda s, p, bored: ScenePlan("v", 0.0, 1, s, s, "", 30.0, {}, "", {"rule": "thompson",
...     "state": {"boredom": {"type": "boredom.onset"} if bored else None}}, p, ("x",))
>>> log = [mk("a", 0.5, False), mk("b", 0.25, True), mk("c", 0.5, False)]
>>> not_bored_next(log)
[0.0, 1.0]
>>> round(ips_value(log, lambda plan: 1.0 if plan.scene == "b" else 0.0), 3)
1.0
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from .plan import ScenePlan, read_scene_plans

__all__ = ["choice_points", "ips_value", "not_bored_next", "read_scene_plans"]


def choice_points(plans: Sequence[ScenePlan]) -> list[ScenePlan]:
    """The plans where the policy chose among two or more options."""
    return [p for p in plans if p.alternatives and p.evidence.get("rule") not in ("start", "restart", "only")]


def not_bored_next(plans: Sequence[ScenePlan]) -> list[float]:
    """For each plan but the last: 1.0 if the viewer was not bored when the next plan was made."""
    out = []
    for nxt in plans[1:]:
        state = nxt.evidence.get("state") or {}
        out.append(0.0 if state.get("boredom") else 1.0)
    return out


def ips_value(plans: Sequence[ScenePlan], new_policy: Callable[[ScenePlan], float],
              rewards: Sequence[float] | None = None, self_normalised: bool = True) -> float:
    """Estimated mean reward of ``new_policy`` (the probability it gives the logged choice) from
    a log; ``rewards`` default to :func:`not_bored_next` (the last plan has none and is dropped).
    Decisions logged with probability 0 or NaN are skipped."""
    rewards = list(rewards) if rewards is not None else not_bored_next(plans)
    num = den = 0.0
    n = 0
    for plan, r in zip(plans, rewards):
        p = float(plan.probability)
        if not (p > 0 and math.isfinite(p)):
            continue
        w = float(new_policy(plan)) / p
        num += w * float(r)
        den += w
        n += 1
    if n == 0:
        return math.nan
    if self_normalised:
        return num / den if den > 0 else math.nan
    return num / n
