"""The pacing director: intensity estimate with hold and decay, phases with hysteresis, limits."""

from __future__ import annotations

import math

import pytest

from engage.core.errors import ConfigError
from engage.narrative.director import PHASES, Director, DirectorConfig


def test_estimate_jumps_up_holds_then_decays():
    d = Director(DirectorConfig(hold_s=10.0, decay_per_s=0.02))
    d.observe(0.0, arousal=0.8)
    assert d.estimate == pytest.approx(0.8)
    d.observe(5.0, arousal=0.1)  # within the hold: kept
    assert d.estimate == pytest.approx(0.8)
    d.observe(20.0, arousal=0.1)  # after the hold: decays 0.02/s over the 15 s since the last step
    assert d.estimate == pytest.approx(0.8 - 0.02 * 15.0)
    for t in range(21, 200):
        d.observe(float(t), arousal=0.1)
    assert d.estimate == pytest.approx(0.1)  # never below what is measured


def test_unsure_or_nan_arousal_is_not_acted_on():
    d = Director(DirectorConfig(hold_s=0.0, decay_per_s=0.01))
    d.observe(0.0, arousal=0.9, confidence=0.2)
    assert d.estimate == 0.0
    d.observe(1.0, arousal=math.nan, confidence=1.0)
    d.observe(2.0, arousal=0.6, confidence=math.nan)
    assert d.estimate == 0.0


def test_phases_cycle_with_dwell_and_thresholds():
    c = DirectorConfig(min_phase_s=10.0, sustain_s=30.0, relax_s=20.0, hold_s=0.0, decay_per_s=0.05)
    d = Director(c)
    seen = []
    t = 0.0
    for arousal in [0.3] * 5 + [0.9] * 60 + [0.2] * 80 + [0.9] * 20:
        seen.append(d.observe(t, arousal=arousal))
        t += 1.0
    order = [p for i, p in enumerate(seen) if i == 0 or seen[i - 1] != p]
    assert order == ["build_up", "sustain_peak", "peak_fade", "relax", "build_up", "sustain_peak"]
    assert set(order) <= set(PHASES)
    # Hysteresis: peak reached at t=5 but build_up must last min_phase_s first.
    assert seen.index("sustain_peak") == 10


def test_boredom_forces_build_up_and_overload_forces_relax():
    d = Director(DirectorConfig(min_phase_s=100.0))
    d.observe(0.0, arousal=0.5)
    assert d.observe(1.0, arousal=0.5, overloaded=True) == "relax" and d.target() == d.config.target_relax
    assert d.observe(2.0, arousal=0.5, bored=True) == "build_up" and d.target() == d.config.target_build_up
    assert d.reason == "viewer bored"


def test_cooldown_budget_and_fates():
    d = Director(DirectorConfig(cooldown_s=30.0, budget=2, budget_window_s=600.0, fates_per_act=1))
    assert d.may_change_plot(0.0) == (True, "")
    d.record_change(0.0, fate_act="1")
    ok, why = d.may_change_plot(10.0)
    assert not ok and "cooldown" in why
    d.record_change(40.0)
    ok, why = d.may_change_plot(100.0)
    assert not ok and "budget spent (2 plot changes" in why
    assert d.may_change_plot(601.0) == (True, "")  # the first change left the ten-minute window
    assert not d.may_take_fate("1") and d.may_take_fate("2")


def test_config_is_data_with_defaults_and_checked():
    c = DirectorConfig.from_dict({"cooldown_s": 30, "budget": 3})
    assert c.cooldown_s == 30.0 and c.budget == 3 and isinstance(c.budget, int)
    assert DirectorConfig().to_dict()["budget_window_s"] == 600.0
    with pytest.raises(ConfigError, match="unknown setting"):
        DirectorConfig.from_dict({"coldown_s": 3})
    with pytest.raises(ConfigError, match="must be a number"):
        DirectorConfig.from_dict({"budget": "many"})
    with pytest.raises(ConfigError, match="finite number >= 0"):
        DirectorConfig(hold_s=-1.0)
    with pytest.raises(ConfigError, match="within \\[0, 1\\]"):
        DirectorConfig(peak_enter=1.5)
    with pytest.raises(ConfigError, match="relax_enter"):
        DirectorConfig(relax_enter=0.8, peak_enter=0.7)
