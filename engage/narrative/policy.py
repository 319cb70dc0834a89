"""Policies: at each choice point, which of the scenes the story allows plays next.

:class:`DirectorPolicy` asks a :class:`~engage.narrative.director.Director` for a target
intensity and picks the option closest to it, within the director's limits (cooldown, budget
of plot changes, one irreversible fate per act); taking any option other than the authored
first one is a *plot change*. With ``mode="thompson"`` it samples instead: one Beta posterior
per (phase, intensity band) of "the viewer was neither bored nor overloaded at the next
choice", Thompson sampling over the options, and an exploration floor ``epsilon`` so every
allowed option keeps a probability of at least ``epsilon / n``; the logged ``probability`` is
the chance the policy had of picking what it picked (estimated from 256 posterior draws),
so decision logs support offline (inverse-propensity) evaluation.

When the viewer is bored in an ``interruptible`` scene with a ``cut_to`` tag, after the
director's ``min_scene_s``, :meth:`DirectorPolicy.interrupt` names the high-stakes beat to
cut to.

:class:`FixedPolicy` always takes the authored option (the baseline of the evaluation).

>>> from engage.narrative.story import Scene
>>> from engage.narrative.controller import ViewerState
>>> from engage.core import Event
>>> calm = Scene("a", "Tea", "", 0.2, "calm", 60.0, "amber")
>>> chase = Scene("b", "Chase", "", 0.9, "frantic", 60.0, "black")
>>> st = ViewerState("v1", session_start=0.0)
>>> _ = st.update(Event("boredom.onset", 133.0, "v1", 0.8))
>>> DirectorPolicy().choose(calm, [calm, chase], st, 140.0).scene.id
'b'
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from engage.core.errors import ConfigError

from .controller import Choice, ViewerState, _others
from .director import Director, DirectorConfig
from .story import Scene

_DRAWS = 256


def _band(intensity: float) -> int:
    return 0 if intensity < 0.4 else (1 if intensity < 0.7 else 2)


class FixedPolicy:
    """The authored path: always the first option.

    >>> from engage.narrative.story import Scene
    >>> a, b = Scene("a", "A", "", 0.2, "", 9.0, ""), Scene("b", "B", "", 0.9, "", 9.0, "")
    >>> FixedPolicy().choose(a, [a, b], ViewerState("v"), 0.0).rule
    'authored'
    """

    name = "fixed"

    def choose(self, current: Scene, options: Sequence[Scene], state: ViewerState, now: float) -> Choice:
        first = options[0]
        return Choice(first, f"authored path: '{first.title}' (intensity {first.intensity:.2f})", "authored",
                      evidence={"trigger": None, "policy": self.name})


class DirectorPolicy:
    """Chooses from the director's target (see the module docstring).

    ``mode`` is ``"greedy"`` (deterministic) or ``"thompson"``; ``seed`` fixes the sampler.
    """

    def __init__(self, config: DirectorConfig | None = None, mode: str = "greedy", epsilon: float = 0.1,
                 seed: int = 0) -> None:
        if mode not in ("greedy", "thompson"):
            raise ConfigError(f"policy: mode must be 'greedy' or 'thompson', got {mode!r}")
        if not (0.0 <= epsilon <= 1.0):
            raise ConfigError(f"policy: epsilon must be within [0, 1], got {epsilon!r}")
        self.director = Director(config)
        self.mode = mode
        self.epsilon = float(epsilon)
        self.rng = np.random.default_rng(seed)
        self.name = f"director-{mode}"
        # Beta(a, b) per (phase, band): successes and failures + 1.
        self.posterior: dict[tuple[str, int], list[float]] = {}
        self._pending: tuple[str, int] | None = None

    @property
    def config(self) -> DirectorConfig:
        return self.director.config

    def observe(self, state: ViewerState, now: float) -> None:
        """Feed the director the viewer's state (called by the controller every tick)."""
        c = self.config
        row = state.engagement or {}
        arousal = row.get("arousal")
        conf = row.get("confidence", 1.0)
        self.director.observe(now, arousal, conf if conf is not None else math.nan,
                              bored=state.bored(c.min_confidence) is not None,
                              overloaded=state.overloaded(c.min_confidence) is not None)

    def interrupt(self, current: Scene, elapsed: float, state: ViewerState, now: float) -> tuple[str, str] | None:
        """``(target, reason)`` when the viewer is bored in an interruptible scene with a ``cut_to`` beat."""
        target = current.tags.get("cut_to") if current.tags else None
        if not current.interruptible or not isinstance(target, str) or elapsed < self.config.min_scene_s:
            return None
        bored = state.bored(self.config.min_confidence)
        if bored is None:
            return None
        allowed, _why = self.director.may_change_plot(now)
        if not allowed:
            return None
        self.director.record_change(now)
        return target, (f"viewer bored (boredom.onset at {state.clock(bored.timestamp)}, confidence "
                        f"{bored.confidence:.2f}) in interruptible '{current.title}' after {elapsed:.0f} s: "
                        f"cutting to the high-stakes beat {target!r}")

    def choose(self, current: Scene, options: Sequence[Scene], state: ViewerState, now: float) -> Choice:
        c = self.config
        self.observe(state, now)
        self._reward(state)
        d = self.director
        target = d.target()
        bored = state.bored(c.min_confidence)
        overloaded = state.overloaded(c.min_confidence)
        act = str((current.tags or {}).get("act", "1"))
        allowed = [o for o in options if not (o.tags or {}).get("fate_point") or d.may_take_fate(act)]
        authored = options[0]
        if authored not in allowed:  # the authored option is always playable
            allowed.insert(0, authored)
        may_change, why_not = d.may_change_plot(now)
        trigger = bored or overloaded
        evidence: dict[str, Any] = {"trigger": trigger.to_dict() if trigger else None, "policy": self.name,
                                    "director": d.snapshot(), "features": dict(state.engagement or {})}
        if not may_change:
            chosen, prob, rule = authored, 1.0, "authored"
            what = f"authored path '{authored.title}' (intensity {authored.intensity:.2f}); no plot change: {why_not}"
        elif all((o.tags or {}).get("untagged") for o in allowed):
            # Nothing tells the options apart (an untagged ink story): explore, uniformly.
            idx = int(self.rng.integers(len(allowed)))
            chosen, prob, rule = allowed[idx], 1.0 / len(allowed), "untagged"
            what = f"options carry no intensity: '{chosen.title}' drawn uniformly (p={prob:.2f})"
        elif self.mode == "greedy":
            chosen = min(allowed, key=lambda o: abs(o.intensity - target))
            prob, rule = 1.0, "director"
            what = self._what(chosen, allowed, target)
        else:
            probs = self._thompson_probs(allowed, d.phase)
            idx = int(self.rng.choice(len(allowed), p=probs))
            chosen, prob, rule = allowed[idx], float(probs[idx]), "thompson"
            what = self._what(chosen, allowed, target) + f" (p={prob:.2f})"
            evidence["probabilities"] = {o.id: round(float(p), 4) for o, p in zip(allowed, probs)}
        if chosen.id != authored.id and rule != "untagged":
            fate = act if (chosen.tags or {}).get("fate_point") else None
            d.record_change(now, fate)
            evidence["plot_change"] = True
            if fate is not None:
                evidence["fate_point"] = True
        self._pending = (d.phase, _band(chosen.intensity))
        head = f"director {d.phase} (target {target:.2f}, estimate {d.estimate:.2f})"
        if trigger is not None and not may_change:  # seen, logged in the evidence, not acted on
            head = (f"viewer {'bored' if bored is not None else 'overloaded'} since {state.clock(trigger.timestamp)} "
                    f"(confidence {trigger.confidence:.2f}); " + head)
        elif bored is not None:
            head = (f"viewer bored (boredom.onset at {state.clock(bored.timestamp)}, confidence "
                    f"{bored.confidence:.2f}); " + head)
        elif overloaded is not None:
            head = (f"viewer overloaded (arousal.high at {state.clock(overloaded.timestamp)}, confidence "
                    f"{overloaded.confidence:.2f}); " + head)
        confidence = float(trigger.confidence) if trigger is not None else 1.0
        return Choice(chosen, f"{head}: {what}", rule, prob, confidence, evidence)

    @staticmethod
    def _what(chosen: Scene, options: Sequence[Scene], target: float) -> str:
        verb = "raising the stakes with" if chosen.intensity > target - 0.05 and chosen.intensity >= 0.6 else (
            "letting them breathe with" if chosen.intensity <= 0.4 else "playing")
        return f"{verb} '{chosen.title}' (intensity {chosen.intensity:.2f}) over {_others(chosen, options)}"

    def _reward(self, state: ViewerState) -> None:
        if self._pending is None:
            return
        c = self.config
        ok = state.bored(c.min_confidence) is None and state.overloaded(c.min_confidence) is None
        ab = self.posterior.setdefault(self._pending, [1.0, 1.0])
        ab[0 if ok else 1] += 1.0
        self._pending = None

    def _thompson_probs(self, options: Sequence[Scene], phase: str) -> np.ndarray:
        n = len(options)
        target = self.director.target()
        a = np.empty(n)
        b = np.empty(n)
        for i, o in enumerate(options):
            # Prior: options near the director's target start with the benefit of the doubt.
            prior = 2.0 if abs(o.intensity - target) <= self.config.band else 1.0
            ab = self.posterior.get((phase, _band(o.intensity)), [1.0, 1.0])
            a[i], b[i] = ab[0] + prior - 1.0, ab[1]
        draws = self.rng.beta(a[:, None], b[:, None], size=(n, _DRAWS))
        wins = np.bincount(np.argmax(draws, axis=0), minlength=n) / _DRAWS
        probs = (1.0 - self.epsilon) * wins + self.epsilon / n
        return probs / probs.sum()
