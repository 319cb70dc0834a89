"""The simulated viewer's mind: boredom, arousal and attention driven by the story, nothing else.

:class:`StoryMind` steps every 0.1 s. Its inputs are the scenes a viewer is shown (id, intensity
0..1, tone) and the time spent in each; its state is what a person would report if asked. None of
it is computed from what the sensing stack measures: the physiology and the face are *driven by*
this state (:mod:`engage.sensors.simulated`), and the sensing stack has to infer it back.

* **Novelty** jumps when a scene starts, by how surprising it is: its intensity against what the
  viewer has lately been watching, a tone not seen for a while, and never a lot for a scene seen
  before (each earlier viewing divides it by four). It then habituates (time constant:
  the viewer's ``habituation_s``).
* **Stimulation** is the scene's intensity — less for a scene seen before (each earlier viewing
  leaves 65 %) — plus what novelty adds.
* **Boredom** grows while stimulation stays below the viewer's need for it (``boredom_proneness``
  raises that need), faster the longer the scene has lasted, and falls when stimulation exceeds the
  need; a surprising scene also cuts it at once. So a long, flat, low-intensity film bores, and so
  does the same action scene over and over, while a varied calm film need not.
* **Arousal** (sympathetic activation) follows the stimulation with the time constants of heart
  rate in a stress task (up 33 s, down 44 s): ~0.15 at rest, ~0.9 in a lab stress task. A calm scene
  cannot push it into the upper band.
* **Attention** (on the film, 0..1) falls with boredom; **mind-wandering** episodes (a viewer
  thinking of something else) start at a rate rising with boredom and last seconds to a minute.

Every random draw comes from the generator given to the mind, one fixed set per step, so the same
seed and scenes give the same trajectory however the caller steps time.

>>> import numpy as np
>>> mind = StoryMind(boredom_proneness=1.0, habituation_s=45.0, noise=0.03, rng=np.random.default_rng(0))
>>> _ = mind.start_scene("a", 0.2, "calm")
>>> for _ in range(1800):   # 3 minutes of a flat, calm scene
...     _ = mind.step()
>>> mind.boredom > 0.5
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .sim_calibration import AROUSAL_PER_INTENSITY, AROUSAL_REST, AROUSAL_TAU_DOWN, AROUSAL_TAU_UP

__all__ = ["DT", "LatentState", "StoryMind"]

#: Step of the latent model, s.
DT = 0.1

# Story memory (time constants in s): what intensity the viewer is used to, how familiar a tone is.
_RECENT_TAU = 180.0
_TONE_TAU = 600.0
_TONE_DECAY = math.exp(-DT / _TONE_TAU)
# Boredom: the need for stimulation at proneness 1, growth and relief rates (1/s), how a scene's
# age speeds growth (s), and the noise's time constant.
_NEED = 0.45
_GROW = 0.018
_RELIEF = 0.06
_RELIEF_REST = 0.002
_WEAR_S = 120.0
_NOISE_TAU = 20.0
# Mind wandering: episodes per minute at no and at full boredom; median episode length (s).
_MW_RATE = (0.3, 4.0)
_MW_MEDIAN_S = 8.0


def _clip01(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def _ou_coefficients(tau: float) -> tuple[float, float]:
    """(decay, noise gain) of one exact :data:`DT` step of an Ornstein-Uhlenbeck process of time constant
    ``tau`` and unit SD: ``x ← decay x + gain sd z``."""
    a = math.exp(-DT / tau)
    return a, math.sqrt(1.0 - a * a)


@dataclass(frozen=True)
class LatentState:
    """What a simulated viewer is experiencing at time ``t``: the ground truth the sensing stack
    tries to infer, and what a thought probe ("how bored are you?", "were you thinking about the
    film?") would be answered from.

    ``arousal``, ``boredom``, ``attention`` and ``novelty`` are in 0..1; ``mind_wandering`` is True
    during an episode of thinking about something else; ``scene``/``intensity``/``tone`` describe
    the scene in force and ``time_in_scene`` how long it has played (s).
    """

    t: float
    arousal: float
    boredom: float
    attention: float
    novelty: float
    mind_wandering: bool
    scene: str
    intensity: float
    tone: str
    time_in_scene: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class StoryMind:
    """The latent process of the module docstring, one step per :data:`DT`.

    Parameters
    ----------
    boredom_proneness : float
        Multiplies the viewer's need for stimulation (1 = typical).
    habituation_s : float
        Time constant (s) of novelty within a scene.
    noise : float
        SD of the slow noise on arousal, boredom and attention.
    rng : numpy.random.Generator
        This mind's own generator (draws a fixed set per step).
    intensity : float
        What the viewer "watches" before the first scene (0.3: sitting down to a film).
    """

    def __init__(self, boredom_proneness: float, habituation_s: float, noise: float, rng: np.random.Generator,
                 intensity: float = 0.3) -> None:
        self.proneness = float(boredom_proneness)
        self.habituation_s = float(habituation_s)
        self.noise_sd = float(noise)
        self.rng = rng
        self.scene, self.intensity, self.tone = "", float(intensity), ""
        self.time_in_scene = 0.0
        self.seen: dict[str, int] = {}
        self.repeats = 0  # how often the scene in force was seen before
        self.tones: dict[str, float] = {}
        self.recent = float(intensity)
        self.novelty = 0.0
        self.boredom = 0.05
        self.arousal_level = AROUSAL_REST + AROUSAL_PER_INTENSITY * self.intensity
        self.attention_level = 0.95
        self.mind_wandering = False
        self._mw_left = 0.0
        self._noise = [0.0, 0.0, 0.0]
        self._noise_ou = [_ou_coefficients(tau) for tau in (30.0, _NOISE_TAU, 5.0)]
        self.arousal, self.attention = self.arousal_level, self.attention_level

    # ------------------------------------------------------------------ scenes

    def surprise(self, scene: str, intensity: float, tone: str) -> float:
        """How much novelty a scene brings if it starts now (0..1), before it starts."""
        contrast = abs(intensity - self.recent)
        tone_new = 0.5 if not tone else 1.0 / (1.0 + 2.0 * self.tones.get(tone, 0.0))
        repeat = 0.25 ** self.seen.get(scene, 0) if scene else 1.0
        return _clip01(repeat * (0.1 + 0.35 * tone_new + 0.8 * contrast))

    def start_scene(self, scene: str, intensity: float, tone: str = "") -> float:
        """A scene starts now; returns the novelty it brought (its surprise)."""
        s = self.surprise(scene, intensity, tone)
        self.novelty += (1.0 - self.novelty) * s
        self.boredom *= 1.0 - 0.5 * s * s  # something surprising happens: the viewer looks up
        self.repeats = self.seen.get(scene, 0) if scene else 0
        if scene:
            self.seen[scene] = self.seen.get(scene, 0) + 1
        if tone:
            self.tones[tone] = self.tones.get(tone, 0.0) + 1.0
        self.scene, self.intensity, self.tone, self.time_in_scene = scene, float(intensity), tone, 0.0
        return s

    # ------------------------------------------------------------------ dynamics

    @property
    def worn_intensity(self) -> float:
        """The scene's intensity as the viewer feels it: less for a scene seen before (each earlier
        viewing leaves 65 %)."""
        return self.intensity * 0.65 ** self.repeats

    @property
    def stimulation(self) -> float:
        """What holds the viewer: the felt intensity plus what novelty adds."""
        return self.worn_intensity + 0.5 * self.novelty

    def step(self) -> tuple[float, float, float, float, bool]:
        """Advance by :data:`DT`; returns (arousal, boredom, attention, novelty, mind_wandering)."""
        z = self.rng.standard_normal(3).tolist()
        u_mw, mw_len = self.rng.random(), self.rng.standard_normal()

        s = self.stimulation
        need = _NEED * self.proneness
        under = max(0.0, need - s) / need
        over = max(0.0, s - need)
        wear = 1.0 + self.time_in_scene / _WEAR_S
        b = self.boredom
        b += (_GROW * self.proneness * under * wear * (1.0 - b) - (_RELIEF_REST + _RELIEF * over) * b) * DT
        self.boredom = _clip01(b)

        target = AROUSAL_REST + AROUSAL_PER_INTENSITY * self.worn_intensity + 0.25 * self.novelty
        tau = AROUSAL_TAU_UP if target > self.arousal_level else AROUSAL_TAU_DOWN
        self.arousal_level += (target - self.arousal_level) * DT / tau

        # mind wandering: an episode starts at a rate rising with boredom, lasts log-normally long
        if self.mind_wandering:
            self._mw_left -= DT
            if self._mw_left <= 0.0:
                self.mind_wandering = False
        else:
            rate = (_MW_RATE[0] + (_MW_RATE[1] - _MW_RATE[0]) * self.boredom ** 2) / 60.0
            if u_mw < rate * DT:
                self.mind_wandering = True
                self._mw_left = _MW_MEDIAN_S * (1.0 + 2.0 * self.boredom) * math.exp(0.6 * mw_len)
        focus = _clip01(0.97 - 0.75 * self.boredom + 0.15 * self.novelty) * (0.35 if self.mind_wandering else 1.0)
        self.attention_level += (focus - self.attention_level) * DT / 2.0

        sd = self.noise_sd
        self._noise = [n * a + sd * g * zi for n, (a, g), zi in zip(self._noise, self._noise_ou, z)]
        self.arousal = _clip01(self.arousal_level + self._noise[0])
        self.boredom_observed = _clip01(self.boredom + self._noise[1])
        self.attention = _clip01(self.attention_level + self._noise[2])

        # the story memory moves on
        self.novelty *= math.exp(-DT / self.habituation_s)
        self.recent += (self.intensity - self.recent) * DT / _RECENT_TAU
        for tone in self.tones:
            self.tones[tone] *= _TONE_DECAY
        self.time_in_scene += DT
        return self.arousal, self.boredom_observed, self.attention, self.novelty, self.mind_wandering
