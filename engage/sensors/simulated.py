"""A simulated viewer: a :class:`~engage.core.runtime.Source` with a body and a mind.

It closes the loop without hardware. A small latent model (novelty, arousal, boredom,
attention) is driven by the scenes the narrative controller starts (``scene.start`` events on
the bus); a simulated body turns that state into the three raw streams a real rig gives:

- ``sim-{viewer}-ecg`` (ECG, mV): beat by beat, each beat a stretched copy of one cycle made
  once with NeuroKit2's ECGSYN; heart rate ``resting_hr + hr_reactivity * arousal`` with HRV
  jitter and respiratory sinus arrhythmia; small noise and baseline wander;
- ``sim-{viewer}-eda`` (EDA, µS): a tonic level slowly following arousal plus drift, and
  Bateman-shaped skin conductance responses whose rate rises with arousal;
- ``sim-{viewer}-face`` (Face): eye aspect ratios with blinks (more and longer when bored),
  gaze on a normalised screen (x right, y down, 0..1 on screen) with off-screen episodes
  (more and longer as attention falls), head pose, yawns, and rare face dropouts during
  which every channel but ``face_present`` is NaN.

Generation is streaming: the state is carried across :meth:`SimulatedViewer.read` calls, and
every random draw comes from the viewer's seeded generators in an order that does not depend
on how ``until`` is stepped, so the same seed gives byte-identical output whatever the reads.
The streams start at the clock's time when the viewer is started (0 when it never is). The
latent ground truth is kept at 10 Hz (:meth:`SimulatedViewer.truth_array`) and the true R-peak
times in :attr:`SimulatedViewer.true_beats`, for tests and evaluation.

>>> viewer = SimulatedViewer(seed=1)
>>> viewer.on_scene(0.2, "calm", timestamp=0.0)
>>> chunks = viewer.read(2.0)
>>> [(c.info.type, len(c)) for c in chunks]
[('ECG', 501), ('EDA', 33), ('Face', 61)]
>>> viewer.truth_array().shape
(21, 4)
"""

from __future__ import annotations

import bisect
import functools
import logging
import math
from dataclasses import dataclass, fields

import numpy as np

from engage.core.errors import ConfigError
from engage.core.event import Event
from engage.core.runtime import Context, Source
from engage.core.stream import Chunk, StreamInfo

log = logging.getLogger(__name__)

__all__ = ["FACE_CHANNELS", "FACE_UNITS", "SimulatedViewer", "ViewerTraits"]

FACE_CHANNELS = ("face_present", "ear_left", "ear_right", "gaze_on_screen", "gaze_x", "gaze_y",
                 "head_yaw", "head_pitch", "head_roll", "mouth_open")
FACE_UNITS = ("bool", "ratio", "ratio", "bool", "norm", "norm", "deg", "deg", "deg", "ratio")

DEFAULT_INTENSITY = 0.3  # what the viewer "watches" before the first scene starts

_DT = 0.1  # latent model step, s
_EPS = 1e-9
# Latent columns kept per step: the first three (with the step time) are the public truth.
_AROUSAL, _BOREDOM, _ATTENTION, _NOVELTY, _SCL, _YAW, _PITCH, _ROLL = range(8)
_N_LATENT = 8

# ECG: the template covers [-0.35, +0.65] s around the R peak at 60 bpm; a beat with RR
# interval rr is stretched by sqrt(rr) (QT shortens roughly with the square root of RR).
_TEMPLATE_RATE = 1000.0
_TEMPLATE_PRE, _TEMPLATE_POST = 0.35, 0.65
_HR_DELAY = 0.6  # s from arousal to heart rate (autonomic latency); also keeps beats causal
_BEAT_LOOKAHEAD = 0.5  # > _TEMPLATE_PRE * sqrt(max RR); beats are made this far past a read

_SCR_SUPPORT = 10.0  # an SCR is drawn for this many decay time constants
_CLOSED_EAR = 0.05
_RAMP = 0.12  # s, gaze/head ramps in and out of an off-screen episode
# Where the gaze goes when it leaves the screen, and how the head turns: left, right, down (phone).
_LOOK_AWAY = ((-0.35, 0.55, -28.0, -3.0), (1.35, 0.5, 28.0, -3.0), (0.5, 1.45, 0.0, -22.0))


@dataclass(frozen=True)
class ViewerTraits:
    """What makes one simulated viewer differ from another; drawn with :meth:`sample`.

    >>> t = ViewerTraits.sample(np.random.default_rng(0))
    >>> 60 <= t.resting_hr <= 80
    True
    """

    resting_hr: float  # bpm
    hr_reactivity: float  # bpm added at full arousal
    hrv_ms: float  # beat-to-beat RR jitter sd, ms
    eda_tonic: float  # µS resting level
    eda_reactivity: float  # SCR amplitude scale, µS
    scr_rate_max: float  # SCRs per minute at full arousal
    blink_rate: float  # blinks per minute at rest
    boredom_susceptibility: float  # 1/s, boredom growth in low-intensity, habituated scenes
    habituation_rate: float  # 1/s, decay rate of novelty within a scene
    noise: float  # sd of the latent-state noise

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"viewer trait {f.name} must be a finite number, got {value!r}")
            if f.name == "noise" and value < 0:
                raise ConfigError(f"viewer trait noise must be >= 0, got {value}")
            if f.name != "noise" and value <= 0:
                raise ConfigError(f"viewer trait {f.name} must be > 0, got {value}")

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "ViewerTraits":
        """Draw plausible traits (uniform within typical ranges) from ``rng``."""
        u = rng.uniform
        return cls(
            resting_hr=float(u(60.0, 80.0)),
            hr_reactivity=float(u(15.0, 30.0)),
            hrv_ms=float(u(20.0, 50.0)),
            eda_tonic=float(u(2.0, 8.0)),
            eda_reactivity=float(u(0.3, 1.0)),
            scr_rate_max=float(u(6.0, 12.0)),
            blink_rate=float(u(12.0, 20.0)),
            boredom_susceptibility=float(u(0.03, 0.06)),
            habituation_rate=float(u(0.04, 0.08)),
            noise=float(u(0.02, 0.05)),
        )


@functools.lru_cache(maxsize=8)
def _ecg_template(random_state: int) -> np.ndarray:
    """One clean ECGSYN cycle at 60 bpm, R peak at ``_TEMPLATE_PRE`` s, ends tapered to 0, in mV."""
    import neurokit2 as nk  # heavy import, only needed once per template

    ecg = np.asarray(nk.ecg_simulate(duration=8, sampling_rate=int(_TEMPLATE_RATE), heart_rate=60,
                                     heart_rate_std=0, noise=0, method="ecgsyn", random_state=random_state))
    pre, post = round(_TEMPLATE_PRE * _TEMPLATE_RATE), round(_TEMPLATE_POST * _TEMPLATE_RATE)
    # the tallest peak in the middle of the record is the R peak of a settled cycle
    mid = len(ecg) // 2
    r = mid - 500 + int(np.argmax(ecg[mid - 500:mid + 500]))
    cycle = ecg[r - pre:r + post + 1].copy()
    cycle -= np.linspace(cycle[0], cycle[-1], len(cycle))  # ends at 0 so beats join smoothly
    taper = round(0.04 * _TEMPLATE_RATE)
    ramp = 0.5 * (1.0 - np.cos(np.linspace(0.0, np.pi, taper)))
    cycle[:taper] *= ramp
    cycle[-taper:] *= ramp[::-1]
    cycle /= cycle[pre]  # R peak = 1
    cycle.flags.writeable = False  # shared by every viewer with this template
    return cycle


def _bump(x: np.ndarray) -> np.ndarray:
    """Raised cosine on [0, 1] (0 at the ends, 1 in the middle), 0 outside."""
    inside = (x >= 0.0) & (x <= 1.0)
    return np.where(inside, 0.5 * (1.0 - np.cos(2.0 * np.pi * np.clip(x, 0.0, 1.0))), 0.0)


def _plateau(t: np.ndarray, onset: float, duration: float, ramp: float) -> np.ndarray:
    """1 during ``[onset, onset + duration]`` with cosine ramps of ``ramp`` s on each side."""
    rise = np.clip((t - onset) / ramp, 0.0, 1.0)
    fall = np.clip((onset + duration - t) / ramp, 0.0, 1.0)
    return 0.5 * (1.0 - np.cos(np.pi * np.minimum(rise, fall)))


def _bateman(t: np.ndarray, tau_rise: float, tau_decay: float) -> np.ndarray:
    """Bateman function normalised to a peak of 1, 0 for t < 0."""
    t_peak = math.log(tau_decay / tau_rise) * tau_rise * tau_decay / (tau_decay - tau_rise)
    peak = math.exp(-t_peak / tau_decay) - math.exp(-t_peak / tau_rise)
    tt = np.maximum(t, 0.0)
    return np.where(t >= 0.0, (np.exp(-tt / tau_decay) - np.exp(-tt / tau_rise)) / peak, 0.0)


def _ou(x: float, tau: float, sd: float, z: float) -> float:
    """One exact step of an Ornstein-Uhlenbeck process of time constant ``tau`` and sd ``sd``."""
    a = math.exp(-_DT / tau)
    return x * a + sd * math.sqrt(1.0 - a * a) * z


def _clip01(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


class SimulatedViewer(Source):
    """A viewer whose ECG, EDA and face react to the scenes it is shown (see the module docstring).

    Public state: ``traits``, the scene in force (``intensity``, ``tone``), the latent truth
    (:meth:`truth_array`) and the true R peaks (:attr:`true_beats`), all up to the last read.
    Viewers with the same seed are identical whatever their names: give each its own seed.

    >>> from engage.core import Context, EventBus, VirtualClock
    >>> viewer = SimulatedViewer(seed=3)
    >>> viewer.start(Context(VirtualClock(), EventBus()))
    >>> viewer.ctx.bus.publish(Event("scene.start", 0.0, "viewer-1", evidence={"scene": "s1", "intensity": 0.9}))
    >>> _ = viewer.read(0.5)
    >>> viewer.intensity
    0.9
    """

    def __init__(self, seed: int = 0, viewer: str = "viewer-1", traits: ViewerTraits | None = None,
                 ecg_rate: float = 250.0, eda_rate: float = 16.0, face_rate: float = 30.0) -> None:
        for label, rate in (("ecg_rate", ecg_rate), ("eda_rate", eda_rate), ("face_rate", face_rate)):
            if not math.isfinite(rate) or rate <= 0:
                raise ConfigError(f"simulated viewer {viewer!r}: {label} must be a positive number, got {rate!r}")
        if ecg_rate < 50:
            raise ConfigError(f"simulated viewer {viewer!r}: ecg_rate {ecg_rate} Hz is too low to draw an ECG")
        self.seed = int(seed)
        self.viewer = viewer
        self.name = f"sim-{viewer}"
        # Independent generators per process, so that how far one stream has been generated
        # never changes the random numbers another one sees.
        (traits_rng, body, self._rng_latent, self._rng_ecg, self._rng_eda, self._rng_face, *noise_rngs) = (
            np.random.default_rng(s) for s in np.random.SeedSequence(self.seed).spawn(9))
        # per-sample measurement noise, one generator per stream
        self._rng_noise = dict(zip(("ecg", "eda", "face"), noise_rngs))
        self.traits = traits if traits is not None else ViewerTraits.sample(traits_rng)

        self._ecg_info = StreamInfo(f"sim-{viewer}-ecg", "ECG", ("ecg",), ("mV",), float(ecg_rate),
                                    f"engage-sim-{viewer}-ecg", viewer=viewer)
        self._eda_info = StreamInfo(f"sim-{viewer}-eda", "EDA", ("eda",), ("uS",), float(eda_rate),
                                    f"engage-sim-{viewer}-eda", viewer=viewer)
        self._face_info = StreamInfo(f"sim-{viewer}-face", "Face", FACE_CHANNELS, FACE_UNITS, float(face_rate),
                                     f"engage-sim-{viewer}-face", viewer=viewer)

        # Fixed physiology of this body, beyond the traits.
        self._template = _ecg_template(int(body.integers(0, 2**31 - 1)))
        self._ecg_gain = float(body.uniform(0.8, 1.5))  # mV at the R peak
        self._resp_hz = float(body.uniform(0.2, 0.3))
        self._resp_phase = float(body.uniform(0.0, 2 * np.pi))
        self._wander_hz = float(body.uniform(0.03, 0.07))
        self._wander_phase = float(body.uniform(0.0, 2 * np.pi))
        self._ear_open = (float(body.uniform(0.28, 0.32)), float(body.uniform(0.28, 0.32)))

        self._t0 = 0.0
        self._next_sample = {"ecg": 0, "eda": 0, "face": 0}
        self._last_until = -math.inf

        # latent state
        self._lat = np.zeros((1024, _N_LATENT))
        self._n_steps = 0
        self._pending_scenes: list[tuple[float, float, str]] = []
        self.intensity = DEFAULT_INTENSITY
        self.tone = ""
        self._novelty = 0.0
        self._arousal = 0.25
        self._boredom = 0.1
        self._attention = 0.9
        self._noise = [0.0, 0.0, 0.0]  # OU noise on arousal, boredom, attention
        self._scl = self.traits.eda_tonic + 1.5 * self._arousal  # at its resting target
        self._drift = 0.0  # µS, slow wandering of the tonic level
        self._drift_rate = 0.0  # µS/s
        self._head = [0.0, 0.0, 0.0]

        # beats: (R time, stretch factor); beats made but possibly still ahead of the reads
        self._beats: list[tuple[float, float]] = []
        self._all_beats: list[float] = []
        # episodes drawn on the latent grid, rendered at each stream's own rate
        self._scrs: list[tuple[float, float, float, float]] = []  # onset, amplitude, tau_rise, tau_decay
        self._blinks: list[tuple[float, float]] = []  # onset, duration
        self._yawns: list[tuple[float, float]] = []
        self._dropouts: list[tuple[float, float]] = []
        self._away: list[tuple[float, float, int]] = []  # onset, duration, direction
        self._away_until = -math.inf
        self._yawn_until = -math.inf
        self._dropout_until = -math.inf
        self._fixations: list[tuple[float, float, float]] = [(-math.inf, 0.5, 0.5)]  # onset, x, y

    # ------------------------------------------------------------------ Source API

    def streams(self) -> list[StreamInfo]:
        return [self._ecg_info, self._eda_info, self._face_info]

    def start(self, ctx: Context) -> None:
        """Start on ``ctx``'s clock and follow the ``scene.start`` events of its bus."""
        super().start(ctx)
        if self._n_steps == 0 and all(n == 0 for n in self._next_sample.values()):
            self._t0 = float(ctx.clock.now())
        ctx.bus.subscribe(self._on_event, "scene.start")

    def read(self, until: float) -> list[Chunk]:
        """Generate every sample with timestamp ``<= until`` not returned yet (non-empty chunks only)."""
        until = float(until)
        if math.isnan(until):
            raise ValueError(f"{self.name}: read(until) needs a time, got NaN")
        if until <= self._last_until:
            return []
        self._last_until = until
        self._advance_latent(until)
        out = []
        for key, info, render in (("ecg", self._ecg_info, self._render_ecg),
                                  ("eda", self._eda_info, self._render_eda),
                                  ("face", self._face_info, self._render_face)):
            ts = self._sample_times(key, info.nominal_rate, until)
            if len(ts):
                out.append(Chunk(info, render(ts), ts))
        return out

    # ------------------------------------------------------------------ scenes

    def on_scene(self, intensity: float, tone: str = "", timestamp: float | None = None) -> None:
        """A new scene of ``intensity`` (0..1) and ``tone`` starts at ``timestamp``.

        The scene takes effect at the first latent step at or after ``timestamp``, i.e. during
        the next :meth:`read` that reaches it; a scene stamped before the data already generated
        takes effect at the next step (the past is never rewritten). Without a timestamp the
        scene starts now: the context's clock, or the next latent step when not started.
        """
        intensity = float(intensity)
        if not (0.0 <= intensity <= 1.0):
            raise ConfigError(f"{self.name}: scene intensity must be in [0, 1], got {intensity!r}")
        if timestamp is None:
            ctx = getattr(self, "ctx", None)
            timestamp = ctx.clock.now() if ctx is not None else self._t0 + self._n_steps * _DT
        timestamp = float(timestamp)
        if math.isnan(timestamp):
            raise ConfigError(f"{self.name}: scene timestamp is NaN")
        self._pending_scenes.append((timestamp, intensity, str(tone)))
        self._pending_scenes.sort(key=lambda s: s[0])  # stable: same-time scenes keep their order

    def _on_event(self, event: Event) -> None:
        if event.viewer != self.viewer:
            return
        try:
            intensity = float(event.evidence["intensity"])
            self.on_scene(intensity, str(event.evidence.get("tone", "") or ""), event.timestamp)
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            # a malformed event is counted and logged; the viewer keeps watching the last scene
            self.ctx.counters[f"{self.name}.bad_scene_events"] += 1
            log.warning("%s: ignoring scene.start without a valid intensity (%s): %s", self.name, exc,
                        event.to_json())

    def _apply_due_scenes(self, t: float) -> None:
        while self._pending_scenes and self._pending_scenes[0][0] <= t + _EPS:
            _, intensity, tone = self._pending_scenes.pop(0)
            jump = 0.35 + 0.45 * abs(intensity - self.intensity)
            if tone and self.tone and tone != self.tone:
                jump += 0.2
            self._novelty = min(1.0, self._novelty + jump)
            self.intensity, self.tone = intensity, tone

    # ------------------------------------------------------------------ ground truth

    def truth_array(self) -> np.ndarray:
        """Latent ground truth so far at 10 Hz: columns ``t, arousal, boredom, attention``."""
        n = self._n_steps
        t = self._t0 + np.arange(n) * _DT
        return np.column_stack([t, self._lat[:n, [_AROUSAL, _BOREDOM, _ATTENTION]]])

    @property
    def true_beats(self) -> list[float]:
        """R-peak times of every beat up to the last read."""
        return [r for r in self._all_beats if r <= self._last_until]

    # ------------------------------------------------------------------ latent model

    def _step_index(self, t: float) -> int:
        return math.floor((t - self._t0) / _DT + _EPS)

    def _advance_latent(self, until: float) -> None:
        last = self._step_index(until)
        if last >= len(self._lat):
            grown = np.zeros((max(2 * len(self._lat), last + 1), _N_LATENT))
            grown[: self._n_steps] = self._lat[: self._n_steps]
            self._lat = grown
        while self._n_steps <= last:
            self._lat[self._n_steps] = self._latent_step(self._t0 + self._n_steps * _DT)
            self._n_steps += 1

    def _latent_step(self, t: float) -> list[float]:
        tr = self.traits
        self._apply_due_scenes(t)
        intensity, novelty = self.intensity, self._novelty
        z = self._rng_latent.standard_normal(3)

        low = _clip01((0.55 - intensity) / 0.35)  # 1 at intensity <= 0.2, 0 from 0.55
        high = _clip01((intensity - 0.5) / 0.4)  # 0 up to 0.5, 1 from 0.9
        grow = tr.boredom_susceptibility * low * (1.0 - novelty)
        relief = 0.004 + 0.08 * high + 0.15 * novelty  # 1/s
        b = self._boredom
        self._boredom = _clip01(b + (grow * (1.0 - b) - relief * b) * _DT)
        target = _clip01(0.05 + 0.75 * intensity + 0.4 * novelty - 0.15 * self._boredom)
        self._arousal += (target - self._arousal) * _DT / 12.0
        focus = _clip01(0.95 - 0.8 * self._boredom + 0.2 * novelty)
        self._attention += (focus - self._attention) * _DT / 3.0
        self._novelty = novelty * math.exp(-tr.habituation_rate * _DT)

        self._noise = [_ou(n, 5.0, tr.noise, zi) for n, zi in zip(self._noise, z)]
        arousal = _clip01(self._arousal + self._noise[0])
        boredom = _clip01(self._boredom + self._noise[1])
        attention = _clip01(self._attention + self._noise[2])

        self._eda_step(t, arousal, novelty)
        self._face_step(t, boredom, attention)
        return [arousal, boredom, attention, novelty, self._scl + self._drift, *self._head]

    def _eda_step(self, t: float, arousal: float, novelty: float) -> None:
        tr, rng = self.traits, self._rng_eda
        z, u, when = rng.standard_normal(), rng.random(), rng.random()
        self._scl += (tr.eda_tonic + 1.5 * arousal - self._scl) * _DT / 30.0
        # integrated OU: a drift that is smooth over seconds (a plain OU would wiggle like SCRs)
        self._drift_rate = _ou(self._drift_rate, 30.0, 0.0008 * tr.eda_tonic, z)
        self._drift += (self._drift_rate - self._drift / 300.0) * _DT
        rate = tr.scr_rate_max / 60.0 * min(1.5, 0.1 + 0.9 * arousal + 0.6 * novelty)
        if u < rate * _DT:
            amplitude = tr.eda_reactivity * (0.4 + 0.6 * arousal) * float(rng.lognormal(0.0, 0.4))
            self._scrs.append((t + when * _DT, amplitude, float(rng.uniform(0.5, 1.0)), float(rng.uniform(3.0, 6.0))))

    def _face_step(self, t: float, boredom: float, attention: float) -> None:
        tr, rng = self.traits, self._rng_face
        u = rng.random(6)
        when = rng.random(6) * _DT
        z = rng.standard_normal(3)
        motion = 1.0 + boredom  # fidgeting
        self._head = [_ou(h, 2.0, sd * motion, zi) for h, sd, zi in zip(self._head, (3.0, 2.0, 1.5), z)]

        if u[0] < tr.blink_rate / 60.0 * (1.0 + 1.5 * boredom) * _DT:
            self._blinks.append((t + when[0], float(rng.uniform(0.1, 0.25)) + 0.15 * boredom))
        if t >= self._away_until and u[1] < (0.5 + 10.0 * (1.0 - attention) ** 2) / 60.0 * _DT:
            mean = 0.8 + 5.0 * (1.0 - attention)
            duration = min(15.0, mean * float(rng.lognormal(-0.125, 0.5)))
            self._away.append((t + when[1], duration, int(rng.integers(len(_LOOK_AWAY)))))
            self._away_until = t + when[1] + duration + 2 * _RAMP
        if boredom > 0.4 and t >= self._yawn_until and u[2] < 2.0 / 60.0 * (boredom - 0.4) / 0.6 * _DT:
            duration = float(rng.uniform(3.0, 6.0))
            self._yawns.append((t + when[2], duration))
            self._yawn_until = t + when[2] + duration
        if t >= self._dropout_until and u[3] < 0.15 / 60.0 * _DT:
            duration = float(rng.uniform(0.2, 1.5))
            self._dropouts.append((t + when[3], duration))
            self._dropout_until = t + when[3] + duration
        if u[4] < 2.5 * _DT:  # a saccade to a new fixation on screen
            x, y = np.clip(rng.normal(0.5, 0.15, 2), 0.05, 0.95)
            self._fixations.append((t + when[4], float(x), float(y)))

    def _latent_at(self, t: np.ndarray, columns: list[int]) -> np.ndarray:
        """Latent ``columns`` at times ``t``, shape (len(t), len(columns)), linearly
        interpolated one step late so that a sample never needs a step not yet made."""
        n = self._n_steps
        x = np.clip((t - self._t0) / _DT - 1.0, 0.0, n - 1)
        j = np.floor(x).astype(int)
        j1 = np.minimum(j + 1, n - 1)
        frac = (x - j)[:, None]
        return self._lat[j][:, columns] * (1.0 - frac) + self._lat[j1][:, columns] * frac

    def _arousal_at(self, t: float) -> float:
        """Scalar :meth:`_latent_at` for the arousal column (one call per beat)."""
        x = min(max((t - self._t0) / _DT - 1.0, 0.0), self._n_steps - 1)
        j = math.floor(x)
        j1 = min(j + 1, self._n_steps - 1)
        return float(self._lat[j, _AROUSAL] * (1.0 - (x - j)) + self._lat[j1, _AROUSAL] * (x - j))

    # ------------------------------------------------------------------ rendering

    def _sample_times(self, key: str, rate: float, until: float) -> np.ndarray:
        k0 = self._next_sample[key]
        k1 = max(k0, math.floor((until - self._t0) * rate) + 1)
        # timestamps are t0 + k / rate exactly; fix the float edge at ``until`` on those values
        while k1 > k0 and self._t0 + (k1 - 1) / rate > until:
            k1 -= 1
        while self._t0 + k1 / rate <= until:
            k1 += 1
        self._next_sample[key] = k1
        return self._t0 + np.arange(k0, k1) / rate

    def _make_beats(self, until: float) -> None:
        tr, rng = self.traits, self._rng_ecg
        if not self._beats:
            first = self._t0 + float(rng.uniform(0.0, 0.8))
            self._beats.append((first, 1.0))
            self._all_beats.append(first)
        while self._beats[-1][0] < until + _BEAT_LOOKAHEAD:
            r = self._beats[-1][0]
            arousal = self._arousal_at(r - _HR_DELAY)
            hr = tr.resting_hr + tr.hr_reactivity * arousal
            rsa = 0.6 * tr.hrv_ms / 1000.0 * (1.0 - 0.6 * arousal)  # vagal withdrawal under arousal
            rr = (60.0 / hr + rsa * math.sin(2 * math.pi * self._resp_hz * r + self._resp_phase)
                  + tr.hrv_ms / 1000.0 * float(rng.standard_normal()))
            rr = min(2.0, max(0.3, rr))
            self._beats.append((r + rr, math.sqrt(rr)))
            self._all_beats.append(r + rr)

    def _render_ecg(self, ts: np.ndarray) -> np.ndarray:
        self._make_beats(float(ts[-1]))
        template = self._template
        tx = np.arange(len(template)) / _TEMPLATE_RATE - _TEMPLATE_PRE
        ecg = np.zeros(len(ts))
        for r, stretch in self._beats:
            lo, hi = r - _TEMPLATE_PRE * stretch, r + _TEMPLATE_POST * stretch
            i0, i1 = np.searchsorted(ts, lo), np.searchsorted(ts, hi, side="right")
            if i1 > i0:
                ecg[i0:i1] += np.interp((ts[i0:i1] - r) / stretch, tx, template, left=0.0, right=0.0)
        ecg *= self._ecg_gain
        # beats that ended before these samples will never be drawn again (the last beat,
        # made past the lookahead, always stays)
        self._beats = [b for b in self._beats if b[0] + _TEMPLATE_POST * b[1] >= ts[-1]]
        wander = (0.05 * np.sin(2 * np.pi * self._resp_hz * ts + self._resp_phase)
                  + 0.04 * np.sin(2 * np.pi * self._wander_hz * ts + self._wander_phase))
        noise = 0.012 * self._rng_noise["ecg"].standard_normal(len(ts))
        return (ecg + wander + noise).reshape(-1, 1)

    def _render_eda(self, ts: np.ndarray) -> np.ndarray:
        eda = self._latent_at(ts, [_SCL])[:, 0]
        for onset, amplitude, tau_rise, tau_decay in self._scrs:
            # exactly 0 past the support, so pruning (which depends on the reads) changes nothing
            lag = ts - onset
            active = (lag >= 0.0) & (lag <= _SCR_SUPPORT * tau_decay)
            if active.any():
                eda[active] += amplitude * _bateman(lag[active], tau_rise, tau_decay)
        self._scrs = [s for s in self._scrs if s[0] + _SCR_SUPPORT * s[3] >= ts[-1]]
        eda += 0.004 * self._rng_noise["eda"].standard_normal(len(ts))
        return np.maximum(eda, 0.05).reshape(-1, 1)

    def _render_face(self, ts: np.ndarray) -> np.ndarray:
        n = len(ts)
        noise = self._rng_noise["face"].standard_normal((n, 6))
        boredom, yaw, pitch, roll = self._latent_at(ts, [_BOREDOM, _YAW, _PITCH, _ROLL]).T

        blink = np.zeros(n)
        for onset, duration in self._blinks:
            blink += _bump((ts - onset) / duration)
        blink = np.minimum(blink, 1.0)
        yawn = np.zeros(n)
        for onset, duration in self._yawns:
            yawn += _bump((ts - onset) / duration)
        away = np.zeros(n)
        away_x, away_y, away_yaw, away_pitch = (np.zeros(n) for _ in range(4))
        for onset, duration, direction in self._away:
            m = _plateau(ts, onset, duration, _RAMP)
            look_x, look_y, turn_yaw, turn_pitch = _LOOK_AWAY[direction]
            away += m
            away_x += m * look_x
            away_y += m * look_y
            away_yaw += m * turn_yaw
            away_pitch += m * turn_pitch
        present = np.ones(n)
        for onset, duration in self._dropouts:
            present[(ts >= onset) & (ts <= onset + duration)] = 0.0

        onsets = np.array([f[0] for f in self._fixations])
        idx = np.searchsorted(onsets, ts, side="right") - 1
        fix = np.array([f[1:] for f in self._fixations])[idx]
        w = np.minimum(away, 1.0)
        gaze_x = (1.0 - w) * fix[:, 0] + away_x + 0.01 * noise[:, 0]
        gaze_y = (1.0 - w) * fix[:, 1] + away_y + 0.01 * noise[:, 1]
        on_screen = ((gaze_x >= 0.0) & (gaze_x <= 1.0) & (gaze_y >= 0.0) & (gaze_y <= 1.0)).astype(float)

        droop = 1.0 - 0.35 * yawn  # eyes narrow during a yawn
        ears = []
        for eye, col in ((0, 2), (1, 3)):
            open_ear = (self._ear_open[eye] - 0.02 * boredom) * droop + 0.006 * noise[:, col]
            ears.append(open_ear - (open_ear - _CLOSED_EAR) * blink)
        mouth = np.clip(0.04 + 0.6 * yawn + 0.015 * noise[:, 4], 0.0, 1.0)
        yaw = yaw + away_yaw
        pitch = pitch + away_pitch
        roll = roll + 0.3 * noise[:, 5]

        face = np.column_stack([present, ears[0], ears[1], on_screen, gaze_x, gaze_y, yaw, pitch, roll, mouth])
        face[present == 0.0, 1:] = np.nan  # no face, no features
        self._prune_face(float(ts[-1]))
        return face

    def _prune_face(self, t: float) -> None:
        self._blinks = [e for e in self._blinks if e[0] + e[1] >= t]
        self._yawns = [e for e in self._yawns if e[0] + e[1] >= t]
        self._dropouts = [e for e in self._dropouts if e[0] + e[1] >= t]
        self._away = [e for e in self._away if e[0] + e[1] + _RAMP >= t]
        # keep the fixation in force at t and any later ones
        current = bisect.bisect_right([f[0] for f in self._fixations], t) - 1
        self._fixations = self._fixations[max(current, 0):]
