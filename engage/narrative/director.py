"""The pacing director: how intense the next stretch of story should be, for one viewer.

The model is the one games proved (Left 4 Dead's AI Director and its successors), driven by the
viewer's measured engagement instead of a player's damage taken:

* an **intensity estimate** follows the viewer's arousal (weighted by its confidence): it jumps
  up at once, is **held** for ``hold_s`` after a rise, then **decays** at ``decay_per_s``;
* four **phases** with enter/exit thresholds (hysteresis) and a minimum dwell:
  ``build_up`` (raise the stakes) → ``sustain_peak`` once the estimate reaches ``peak_enter``
  (keep it for ``sustain_s``) → ``peak_fade`` (ease off until the estimate falls below
  ``relax_enter``) → ``relax`` (calm for at least ``relax_s``) → ``build_up`` again;
* overrides from the engagement events: a confident **boredom** onset sends the director to
  ``build_up`` at once (a scene that is not working is not kept), a confident **arousal.high**
  (overload) to ``relax``;
* **plot-change limits**: a minimum time in a scene before an interrupting cut
  (``min_scene_s``), a ``cooldown_s`` after every plot change, a ``budget`` of plot changes per
  ``budget_window_s`` (ten minutes), and at most ``fates_per_act`` irreversible fate per act.

Every knob is a field of :class:`DirectorConfig` with a documented default; configs load from
a dict (e.g. a TOML table) with unknown keys refused.

>>> d = Director()
>>> d.observe(0.0, arousal=0.2, confidence=1.0)
'build_up'
>>> round(d.target(), 2)
0.8
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from engage.core.errors import ConfigError
from engage.core.safeload import finite_number

PHASES = ("build_up", "sustain_peak", "peak_fade", "relax")


@dataclass(frozen=True)
class DirectorConfig:
    """The director's knobs (all times in seconds, intensities in 0..1).

    >>> DirectorConfig.from_dict({"cooldown_s": 30}).cooldown_s
    30.0
    """

    #: How long the estimate is held after it rose before it starts to decay.
    hold_s: float = 20.0
    #: Decay of the estimate per second after the hold.
    decay_per_s: float = 0.01
    #: Estimate at which build_up turns into sustain_peak.
    peak_enter: float = 0.7
    #: How long the peak is sustained before it fades.
    sustain_s: float = 60.0
    #: Estimate below which peak_fade turns into relax.
    relax_enter: float = 0.45
    #: Minimum time spent relaxing before building up again.
    relax_s: float = 60.0
    #: Minimum time in any phase (hysteresis on top of the thresholds).
    min_phase_s: float = 15.0
    #: Target scene intensity per phase.
    target_build_up: float = 0.8
    target_sustain_peak: float = 0.75
    target_peak_fade: float = 0.45
    target_relax: float = 0.25
    #: Half-width of the band around the target counted as "on target".
    band: float = 0.2
    #: Minimum confidence for an engagement signal to be acted on.
    min_confidence: float = 0.5
    #: Minimum time in a scene before the controller may cut away from it.
    min_scene_s: float = 15.0
    #: Time after a plot change during which no other is made.
    cooldown_s: float = 45.0
    #: Plot changes allowed per budget window.
    budget: int = 6
    budget_window_s: float = 600.0
    #: Irreversible fates allowed per act.
    fates_per_act: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not finite_number(value) or value < 0:
                raise ConfigError(f"director: {f.name} must be a finite number >= 0, got {value!r}")
        for name in ("peak_enter", "relax_enter", "band", "min_confidence", "target_build_up",
                     "target_sustain_peak", "target_peak_fade", "target_relax"):
            if getattr(self, name) > 1:
                raise ConfigError(f"director: {name} must be within [0, 1], got {getattr(self, name)}")
        if self.relax_enter >= self.peak_enter:
            raise ConfigError(f"director: relax_enter ({self.relax_enter}) must be below peak_enter ({self.peak_enter})")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DirectorConfig":
        """Build from a mapping; unknown keys raise :class:`ConfigError` naming them."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ConfigError(f"director: unknown setting(s) {unknown}; known: {sorted(known)}")
        values = {}
        for k, v in d.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"director: {k} must be a number, got {v!r}")
            values[k] = int(v) if known[k].type in (int, "int") else float(v)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Director:
    """The pacing state of one viewer (see the module docstring)."""

    def __init__(self, config: DirectorConfig | None = None) -> None:
        self.config = config or DirectorConfig()
        self.phase = "build_up"
        self.phase_since: float | None = None
        self.estimate = 0.0
        self._peak_time: float | None = None
        self._last: float | None = None
        self._changes: deque[float] = deque()
        self.last_change: float | None = None
        self._fates: dict[str, int] = {}
        self.reason = "start"
        #: Whether the director has heard anything about the viewer yet (a usable arousal, boredom, overload).
        self.informed = False

    # -- the intensity estimate and phases ----------------------------------------------------

    def observe(self, now: float, arousal: float | None = None, confidence: float = 1.0, bored: bool = False,
                overloaded: bool = False) -> str:
        """Take in the viewer's state at ``now``; returns the phase. NaN or unsure arousal leaves
        the estimate to decay (the director is told "not sure", never handed a guess)."""
        c = self.config
        if self.phase_since is None:
            self.phase_since = now
        dt = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now
        usable = (arousal is not None and math.isfinite(arousal) and math.isfinite(confidence)
                  and confidence >= c.min_confidence)
        if usable and arousal >= self.estimate:
            self.estimate = float(min(1.0, max(0.0, arousal)))
            self._peak_time = now
        else:
            held = self._peak_time is not None and now - self._peak_time < c.hold_s
            if not held:
                self.estimate = max(0.0, self.estimate - c.decay_per_s * dt)
            if usable and arousal < self.estimate and not held:
                self.estimate = max(float(arousal), self.estimate)
        in_phase = now - self.phase_since
        self.informed = self.informed or usable or bored or overloaded
        if bored and self.phase != "build_up":
            self._enter("build_up", now, "viewer bored")
        elif overloaded and not bored and self.phase in ("build_up", "sustain_peak"):
            self._enter("relax", now, "viewer overloaded")
        elif in_phase >= c.min_phase_s:
            if self.phase == "build_up" and self.estimate >= c.peak_enter:
                self._enter("sustain_peak", now, f"estimate {self.estimate:.2f} reached the peak ({c.peak_enter:.2f})")
            elif self.phase == "sustain_peak" and in_phase >= c.sustain_s:
                self._enter("peak_fade", now, f"peak sustained for {c.sustain_s:g} s")
            elif self.phase == "peak_fade" and self.estimate < c.relax_enter:
                self._enter("relax", now, f"estimate {self.estimate:.2f} below {c.relax_enter:.2f}")
            elif self.phase == "relax" and in_phase >= c.relax_s and not overloaded:
                self._enter("build_up", now, f"relaxed for {c.relax_s:g} s")
        return self.phase

    def _enter(self, phase: str, now: float, reason: str) -> None:
        self.phase = phase
        self.phase_since = now
        self.reason = reason

    def target(self) -> float:
        """The scene intensity the director wants now."""
        return float(getattr(self.config, f"target_{self.phase}"))

    def on_target(self, intensity: float) -> bool:
        """Whether a scene of ``intensity`` is within the band around the target."""
        return abs(float(intensity) - self.target()) <= self.config.band

    # -- plot-change limits --------------------------------------------------------------------

    def may_change_plot(self, now: float) -> tuple[bool, str]:
        """Whether a plot change (leaving the authored path) is allowed now, and why not."""
        c = self.config
        while self._changes and now - self._changes[0] >= c.budget_window_s:
            self._changes.popleft()
        if self.last_change is not None and now - self.last_change < c.cooldown_s:
            return False, f"cooldown ({now - self.last_change:.0f} s since the last plot change < {c.cooldown_s:g} s)"
        if len(self._changes) >= c.budget:
            return False, f"budget spent ({len(self._changes)} plot changes in {c.budget_window_s:g} s)"
        return True, ""

    def may_take_fate(self, act: str) -> bool:
        """Whether an irreversible fate may still happen in ``act``."""
        return self._fates.get(str(act), 0) < self.config.fates_per_act

    def record_change(self, now: float, fate_act: str | None = None) -> None:
        """Count a plot change made at ``now`` (and an irreversible fate in ``fate_act``)."""
        self._changes.append(now)
        self.last_change = now
        if fate_act is not None:
            self._fates[str(fate_act)] = self._fates.get(str(fate_act), 0) + 1

    def snapshot(self) -> dict[str, Any]:
        """The director's state as JSON-ready evidence."""
        return {"phase": self.phase, "estimate": round(self.estimate, 4), "target": self.target(),
                "phase_reason": self.reason, "plot_changes_in_window": len(self._changes)}
