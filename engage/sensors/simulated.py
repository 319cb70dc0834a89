"""Simulated viewers: :class:`~engage.core.runtime.Source` s with a mind, a body and sensors.

A simulated viewer closes the loop without hardware. Its **mind**
(:class:`~engage.sensors.sim_latent.StoryMind`) is driven by the scenes the narrative controller
starts (``scene.start`` events on the bus): their intensity, their tone, how long each has played,
what was seen before. Boredom comes from that story alone, never from the cues the sensing stack
reads. Its **body** turns the mind's arousal, boredom and attention into signals, with magnitudes
and time constants calibrated on real recordings (:mod:`engage.sensors.sim_calibration`;
``sensors/simulated.md`` is the calibration table), and its **sensors** sample them:

- ``sim-{viewer}-ecg`` (ECG, mV, chest): beat by beat, a closed-form PQRST cycle stretched to each
  RR interval; heart rate = resting rate + reactivity × 5.6 bpm per unit of arousal + 1.5 bpm at full
  boredom + a slow fluctuation (SD 3 bpm), with respiratory sinus arrhythmia and beat jitter;
- ``sim-{viewer}-ppg`` (PPG, wrist/finger pulse wave, off by default): one pulse per beat, a
  pulse-transit time after the R peak;
- ``sim-{viewer}-eda`` (EDA, µS, wrist like the Empatica E4): a tonic level that follows arousal
  with a 151 s time constant (+51 % per unit of arousal × reactivity, -10 % at full boredom) and
  drifts, plus skin conductance responses whose rate goes from 7 to 12 per minute with arousal and
  scene starts that surprise;
- ``sim-{viewer}-face`` (Face): eye aspect ratios with blinks (inhibited up to 55 % while engaged,
  back to the resting rate when bored), gaze on a normalised screen (x right, y down, 0..1 on
  screen) with looks away (3 % of the time engaged, 30 % fully bored), head pose whose fidgeting
  grows with boredom, yawns, and rare face-tracking dropouts during which every channel but
  ``face_present`` is NaN.

Sensors can be left off (``sensors=``), never connect, or drop out (``faults=``): a viewer then
delivers fewer streams or none for a while, and publishes ``sensor.gap`` events the way a lost LSL
stream does; it never raises.

Generation is streaming and deterministic: the state is carried across :meth:`SimulatedViewer.read`
calls, and every random draw comes from the viewer's seeded generators in an order that does not
depend on how ``until`` is stepped, so the same seed gives byte-identical output whatever the reads.
Per-sample rendering only adds, multiplies and interpolates tabulated shapes
(:mod:`engage.sensors.sim_waveforms`), so it is also the same on every CPU, and it needs no
neurokit2. The streams start at the clock's time when the viewer is started (0 when it never is).

:class:`SimulatedAudience` draws ``n`` viewers of the population (own ids, own traits, same film).

The latent ground truth is kept at 10 Hz: :meth:`SimulatedViewer.latent_state` (what a thought
probe would be answered from), :meth:`SimulatedViewer.truth_array` and
:meth:`SimulatedViewer.latent_array`; the true R-peak times are :attr:`SimulatedViewer.true_beats`.

>>> viewer = SimulatedViewer(seed=1)
>>> viewer.on_scene(0.2, "calm", timestamp=0.0)
>>> chunks = viewer.read(2.0)
>>> [(c.info.type, len(c)) for c in chunks]
[('ECG', 501), ('EDA', 33), ('Face', 61)]
>>> viewer.truth_array().shape
(21, 4)
>>> round(viewer.latent_state().intensity, 1)
0.2
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Iterator

import numpy as np

from engage.core.errors import ConfigError
from engage.core.event import Event
from engage.core.runtime import Context, Source
from engage.core.safeload import finite_number
from engage.core.stream import Chunk, StreamInfo

from . import sim_calibration as cal
from .sim_latent import DT, LatentState, StoryMind, _ou_coefficients
from .sim_waveforms import (ECG_POST, ECG_PRE, bateman_table, bump_table, ecg_template, ppg_template, ramp_table,
                            table_at)

log = logging.getLogger(__name__)

__all__ = ["FACE_CHANNELS", "FACE_UNITS", "LATENT_COLUMNS", "SENSOR_KINDS", "LatentState", "SensorFaults",
           "SimulatedAudience", "SimulatedViewer", "ViewerTraits"]

FACE_CHANNELS = ("face_present", "ear_left", "ear_right", "gaze_on_screen", "gaze_x", "gaze_y",
                 "head_yaw", "head_pitch", "head_roll", "mouth_open")
FACE_UNITS = ("bool", "ratio", "ratio", "bool", "norm", "norm", "deg", "deg", "deg", "ratio")
#: The sensors a simulated viewer can wear.
SENSOR_KINDS = ("ecg", "ppg", "eda", "face")
#: Columns of :meth:`SimulatedViewer.latent_array` after the time column.
LATENT_COLUMNS = ("arousal", "boredom", "attention", "novelty", "mind_wandering", "intensity", "hr_bpm", "scl_us",
                  "engagement")

DEFAULT_INTENSITY = 0.3  # what the viewer "watches" before the first scene starts
_EPS = 1e-9

# latent-grid columns (the public ones first, in LATENT_COLUMNS order)
(_AROUSAL, _BOREDOM, _ATTENTION, _NOVELTY, _MW, _INTENSITY, _HR, _SCL, _ENGAGED,
 _YAW, _PITCH, _ROLL, _WANDER, _PPG_WANDER) = range(14)
_N_LATENT = 14

_HR_DELAY = 0.6  # s from the latent heart rate to a beat (autonomic latency); also keeps beats causal
_BEAT_LOOKAHEAD = 0.5  # > ECG_PRE * sqrt(max RR): beats are made this far past a read
_CLOSED_EAR = 0.05
_RAMP = 0.12  # s, gaze/head ramps in and out of a look away
# Where the gaze goes when it leaves the screen, and how the head turns: left, right, down (phone).
_LOOK_AWAY = ((-0.35, 0.55, -28.0, -3.0), (1.35, 0.5, 28.0, -3.0), (0.5, 1.45, 0.0, -22.0))
_NOTICE_S = 1.0  # a stream silent this long is reported lost (as an LSL inlet would)
_CONNECT_WAIT_S = 5.0  # a sensor that has not connected after this long is reported


def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


_OU_HR = _ou_coefficients(cal.HR_SLOW_TAU)
_OU_DRIFT = _ou_coefficients(30.0)
_OU_HEAD = _ou_coefficients(2.0)


# ------------------------------------------------------------------------------------------------
# traits and the population
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewerTraits:
    """What makes one simulated viewer differ from another; :meth:`sample` draws them from the
    population of the calibration table (``sensors/simulated.md``).

    >>> t = ViewerTraits.sample(np.random.default_rng(0))
    >>> 50 <= t.resting_hr <= 110 and t.resting_scl > 0
    True
    """

    resting_hr: float  # bpm at rest (Stress-Predict rest blocks)
    resting_scl: float  # µS, wrist skin conductance at rest (Stress-Predict rest blocks)
    reactivity: float  # multiplies the heart-rate and skin-conductance responses to arousal (1 = typical)
    boredom_proneness: float  # multiplies the need for stimulation (1 = typical; Boredom Proneness Scale spread)
    blink_rate: float  # blinks per minute at rest, not watching anything
    habituation_s: float  # s, how fast a scene's novelty wears off
    hrv_ms: float  # SD of the beat-to-beat RR jitter, ms
    noise: float  # SD of the slow noise on the latent state

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not finite_number(value):
                raise ConfigError(f"viewer trait {f.name} must be a finite number, got {value!r}")
            if f.name == "noise" and value < 0:
                raise ConfigError(f"viewer trait noise must be >= 0, got {value}")
            if f.name != "noise" and value <= 0:
                raise ConfigError(f"viewer trait {f.name} must be > 0, got {value}")

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "ViewerTraits":
        """Draw one viewer of the population from ``rng`` (always the same number of draws)."""
        z = rng.standard_normal(6)
        u = rng.random(2)
        hr_q, scl_q = cal.STRESS_PREDICT["rest_hr_bpm"], cal.STRESS_PREDICT["rest_scl_us"]
        # quartiles → a normal (heart rate) or log-normal (SCL) with the same quartiles
        scl_median = math.sqrt(scl_q[0] * scl_q[2])
        scl_sigma = math.log(scl_q[2] / scl_q[0]) / 1.349
        blink_median = cal.PUBLISHED["blink_rate_rest_per_min"][0] / math.exp(0.3 ** 2 / 2)
        return cls(
            resting_hr=_clip(hr_q[1] - cal.HR_PER_BOREDOM * cal.REST_BOREDOM + (hr_q[2] - hr_q[0]) / 1.349 * float(z[0]),
                             50.0, 110.0),
            resting_scl=_clip(scl_median * math.exp(scl_sigma * float(z[1])), 0.08, 20.0),
            reactivity=_clip(math.exp(0.5 * float(z[2])), 0.25, 4.0),
            boredom_proneness=_clip(1.0 + cal.PUBLISHED["boredom_proneness_cv"][0] * float(z[3]), 0.5, 1.6),
            blink_rate=_clip(blink_median * math.exp(0.3 * float(z[4])), 4.0, 40.0),
            habituation_s=_clip(45.0 * math.exp(0.3 * float(z[5])), 15.0, 150.0),
            hrv_ms=15.0 + 20.0 * float(u[0]),
            noise=0.02 + 0.03 * float(u[1]),
        )


@dataclass(frozen=True)
class SensorFaults:
    """Sensors that fail: ``never`` lists kinds (``ecg``, ``ppg``, ``eda``, ``face``) that never
    connect; ``dropouts`` lists ``(kind, start_s, duration_s)`` outages, ``start_s`` counted from
    the viewer's start; ``dropout_rate_per_hour`` adds random outages to every worn sensor (log-normal
    durations around ``dropout_median_s``), drawn from the viewer's seed.

    >>> SensorFaults(never=("ecg",), dropouts=(("eda", 30.0, 10.0),)).never
    ('ecg',)
    """

    never: tuple[str, ...] = ()
    dropouts: tuple[tuple[str, float, float], ...] = ()
    dropout_rate_per_hour: float = 0.0
    dropout_median_s: float = 20.0

    def __post_init__(self) -> None:
        for kind in self.never:
            if kind not in SENSOR_KINDS:
                raise ConfigError(f"sensor fault: unknown sensor {kind!r} (known: {', '.join(SENSOR_KINDS)})")
        for d in self.dropouts:
            if len(d) != 3 or d[0] not in SENSOR_KINDS:
                raise ConfigError(f"sensor fault: a dropout is (sensor, start_s, duration_s) with a sensor among "
                                  f"{', '.join(SENSOR_KINDS)}; got {d!r}")
            if not (finite_number(d[1]) and finite_number(d[2]) and d[1] >= 0 and d[2] > 0):
                raise ConfigError(f"sensor fault: dropout {d!r} needs start_s >= 0 and duration_s > 0")
        for name in ("dropout_rate_per_hour", "dropout_median_s"):
            v = getattr(self, name)
            if not finite_number(v) or v < 0 or (name == "dropout_median_s" and v == 0):
                raise ConfigError(f"sensor fault: {name} must be a positive number, got {v!r}")


@dataclass
class _Outages:
    """One sensor's outages (sorted, absolute times) and what has been reported of them."""

    spans: list[tuple[float, float]] = field(default_factory=list)
    drawn_until: float = -math.inf
    reported_lost: int = 0
    reported_back: int = 0


# ------------------------------------------------------------------------------------------------
# the viewer
# ------------------------------------------------------------------------------------------------


class SimulatedViewer(Source):
    """A viewer whose ECG, pulse, skin conductance and face react to the scenes it is shown (see the
    module docstring).

    Parameters
    ----------
    seed : int
        Same seed, same viewer and same signals, whatever its name.
    viewer : str
        Its id (stream names ``sim-{viewer}-…``, the viewer of every stream and event).
    traits : ViewerTraits, optional
        Default: drawn from the population with ``seed``.
    ecg_rate, ppg_rate, eda_rate, face_rate : float
        Sampling rates (Hz).
    sensors : sequence of str
        Which of ``ecg``, ``ppg``, ``eda``, ``face`` the viewer wears (default: ECG, EDA, face).
    faults : SensorFaults, optional
        Sensors that never connect or drop out.
    scene_viewers : sequence of str, optional
        The viewer ids whose ``scene.start`` events this viewer watches (default: its own id; a
        group session passes the id its controller plays to).
    history_s : float, optional
        How much of the 10 Hz latent log (the ground truth) to keep, in seconds; default: all of it.
        A live session that never reads the truth back keeps the last 10 minutes (thought probes
        are answered from the present), so a session of many hours stays flat in memory; the log
        of all of it is 4 MB per session hour.

    Public state: ``traits``, the scene in force (``intensity``, ``tone``, ``scene``),
    :meth:`latent_state`, :meth:`truth_array`, :meth:`latent_array` and :attr:`true_beats`, all up to
    the last read.

    >>> from engage.core import Context, EventBus, VirtualClock
    >>> viewer = SimulatedViewer(seed=3)
    >>> viewer.start(Context(VirtualClock(), EventBus()))
    >>> viewer.ctx.bus.publish(Event("scene.start", 0.0, "viewer-1", evidence={"scene": "s1", "intensity": 0.9}))
    >>> _ = viewer.read(0.5)
    >>> viewer.intensity, viewer.scene
    (0.9, 's1')
    """

    def __init__(self, seed: int = 0, viewer: str = "viewer-1", traits: ViewerTraits | None = None,
                 ecg_rate: float = 250.0, eda_rate: float = 16.0, face_rate: float = 30.0, ppg_rate: float = 64.0,
                 sensors: Sequence[str] = ("ecg", "eda", "face"), faults: SensorFaults | None = None,
                 scene_viewers: Sequence[str] | None = None, history_s: float | None = None) -> None:
        if history_s is not None and not (isinstance(history_s, (int, float)) and history_s >= 10.0):
            raise ConfigError(f"simulated viewer {viewer!r}: history_s must be at least 10 s, got {history_s!r}")
        self._keep_steps = None if history_s is None else int(math.ceil(history_s / DT))
        rates = {"ecg": ecg_rate, "ppg": ppg_rate, "eda": eda_rate, "face": face_rate}
        for kind, rate in rates.items():
            if not finite_number(rate) or rate <= 0:
                raise ConfigError(f"simulated viewer {viewer!r}: {kind}_rate must be a positive number, got {rate!r}")
        if ecg_rate < 50:
            raise ConfigError(f"simulated viewer {viewer!r}: ecg_rate {ecg_rate} Hz is too low to draw an ECG")
        if ppg_rate < 10:
            raise ConfigError(f"simulated viewer {viewer!r}: ppg_rate {ppg_rate} Hz is too low to draw a pulse wave")
        worn = tuple(sensors)
        unknown = [k for k in worn if k not in SENSOR_KINDS]
        if unknown or len(set(worn)) != len(worn):
            raise ConfigError(f"simulated viewer {viewer!r}: sensors must be distinct names among "
                              f"{', '.join(SENSOR_KINDS)}; got {', '.join(map(repr, worn)) or 'none'}")
        if traits is not None and not isinstance(traits, ViewerTraits):
            raise ConfigError(f"simulated viewer {viewer!r}: traits must be a ViewerTraits, got {type(traits).__name__}")
        self.seed = int(seed)
        self.viewer = viewer
        self.name = f"sim-{viewer}"
        self.faults = faults if faults is not None else SensorFaults()
        self.scene_viewers = frozenset(scene_viewers) if scene_viewers is not None else frozenset((viewer,))
        # Independent generators per process, so that how far one stream has been generated (or
        # whether it is worn at all) never changes the random numbers another one sees.
        names = ("traits", "body", "mind", "physio", "scr", "beats", "face", "ecg", "ppg", "eda", "face_noise",
                 "fault_ecg", "fault_ppg", "fault_eda", "fault_face")
        rngs = dict(zip(names, (np.random.default_rng(s) for s in np.random.SeedSequence(self.seed).spawn(len(names)))))
        self._rng = rngs
        self.traits = traits if traits is not None else ViewerTraits.sample(rngs["traits"])

        self._infos = {
            "ecg": StreamInfo(f"sim-{viewer}-ecg", "ECG", ("ecg",), ("mV",), float(ecg_rate), f"engage-sim-{viewer}-ecg",
                              viewer=viewer, metadata=(("simulated", "true"), ("site", "chest"))),
            "ppg": StreamInfo(f"sim-{viewer}-ppg", "PPG", ("ppg",), ("nW",), float(ppg_rate), f"engage-sim-{viewer}-ppg",
                              viewer=viewer, metadata=(("simulated", "true"), ("site", "wrist"))),
            "eda": StreamInfo(f"sim-{viewer}-eda", "EDA", ("eda",), ("uS",), float(eda_rate), f"engage-sim-{viewer}-eda",
                              viewer=viewer, metadata=(("simulated", "true"), ("site", "wrist"))),
            "face": StreamInfo(f"sim-{viewer}-face", "Face", FACE_CHANNELS, FACE_UNITS, float(face_rate),
                               f"engage-sim-{viewer}-face", viewer=viewer, metadata=(("simulated", "true"),)),
        }
        self.sensors = tuple(k for k in SENSOR_KINDS if k in worn)
        self._connected = tuple(k for k in self.sensors if k not in self.faults.never)

        # Fixed physiology of this body, beyond the traits (always the same draws).
        body = rngs["body"]
        b = body.uniform(0.0, 1.0, 16)
        self._template = ecg_template(tuple(round(0.8 + 0.4 * float(x), 3) for x in (b[0], b[1], 0.5, b[2], b[3])),
                                      tuple(round(0.9 + 0.2 * float(x), 3) for x in b[4:9]))
        self._ecg_gain = 0.8 + 0.7 * float(b[9])  # mV at the R peak
        self._resp_hz = 0.2 + 0.1 * float(b[10])
        self._resp_phase = 2 * math.pi * float(b[11])
        self._wander_hz = 0.03 + 0.04 * float(b[12])
        self._wander_phase = 2 * math.pi * float(b[13])
        self._ear_open = (0.28 + 0.04 * float(b[14]), 0.28 + 0.04 * float(b[15]))
        c = body.uniform(0.0, 1.0, 4)
        # SCR shape: rise ~1.5-2.5 s to the peak, half recovery ~3-6 s (typical: Dawson, Schell & Filion 2007)
        self._scr_shape = bateman_table(round(0.6 + 0.4 * float(c[0]), 2), round(2.5 + 2.0 * float(c[1]), 2))
        self._ptt = 0.2 + 0.1 * float(c[2])  # pulse transit time, s
        self._ppg_gain = 40.0 + 40.0 * float(c[3])

        self._t0 = 0.0
        self._next_sample = dict.fromkeys(SENSOR_KINDS, 0)
        self._last_until = -math.inf
        self._started_at: float | None = None

        tr = self.traits
        self._mind = StoryMind(tr.boredom_proneness, tr.habituation_s, tr.noise, rngs["mind"], DEFAULT_INTENSITY)
        self._lat = np.zeros((1024, _N_LATENT))
        self._n_steps = 0
        self._base = 0  # steps dropped from the start of the latent log (history_s); row k is step _base + k
        self._pending_scenes: list[tuple[float, int, str, float, str]] = []  # time, order, id, intensity, tone
        self._scene_order = 0
        self._scene_log: list[tuple[float, str, float, str]] = [(-math.inf, "", DEFAULT_INTENSITY, "")]
        self._scene_at_step: list[int] = []
        self._surprise = 0.0  # of the scene that started at this step
        # body state
        self._hr_slow = 0.0
        self._slow_arousal = self._mind.arousal
        self._slow_boredom = self._mind.boredom
        self._eda_drift = 0.0
        self._eda_drift_rate = 0.0
        self._head = [0.0, 0.0, 0.0]
        # beats: (R time, RR stretch); beats made but possibly still ahead of the reads
        self._beats: list[tuple[float, float]] = []
        self._all_beats: list[float] = []
        # episodes drawn on the latent grid, rendered at each stream's own rate
        self._scrs: list[tuple[float, float]] = []  # onset, amplitude
        self._blinks: list[tuple[float, float]] = []  # onset, duration
        self._yawns: list[tuple[float, float]] = []
        self._dropouts: list[tuple[float, float]] = []
        self._away: list[tuple[float, float, int]] = []  # onset, duration, direction
        self._away_until = -math.inf
        self._yawn_until = -math.inf
        self._dropout_until = -math.inf
        self._fixations: list[tuple[float, float, float]] = [(-math.inf, 0.5, 0.5)]  # onset, x, y
        self._outages = {k: _Outages() for k in self._connected}
        self._never_reported = False

    # ------------------------------------------------------------------ Source API

    def streams(self) -> list[StreamInfo]:
        """The streams of the worn sensors that connect (one that never connects is not listed)."""
        return [self._infos[k] for k in self._connected]

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
        self._make_beats(until)
        out = []
        render = {"ecg": self._render_ecg, "ppg": self._render_ppg, "eda": self._render_eda, "face": self._render_face}
        for kind in self._connected:
            info = self._infos[kind]
            ts = self._sample_times(kind, info.nominal_rate, until)
            if not len(ts):
                continue
            data = render[kind](ts)
            keep = self._not_out(kind, ts)
            if keep is not None:
                ts, data = ts[keep], data[keep]
            if len(ts):
                out.append(Chunk(info, data, ts))
        self._prune_beats(until)
        self._report_faults(until)
        return out

    # ------------------------------------------------------------------ scenes

    @property
    def intensity(self) -> float:
        """Intensity of the scene in force (0..1)."""
        return self._mind.intensity

    @property
    def tone(self) -> str:
        return self._mind.tone

    @property
    def scene(self) -> str:
        """Id of the scene in force ("" before the first, or when none was given)."""
        return self._mind.scene

    def on_scene(self, intensity: float, tone: str = "", timestamp: float | None = None, scene: str = "") -> None:
        """A new scene of ``intensity`` (0..1), ``tone`` and id ``scene`` starts at ``timestamp``.

        The scene takes effect at the first latent step at or after ``timestamp``, i.e. during
        the next :meth:`read` that reaches it; a scene stamped before the data already generated
        takes effect at the next step (the past is never rewritten). Without a timestamp the
        scene starts now: the context's clock, or the next latent step when not started. The id
        lets the viewer recognise a scene it has seen before (without one, every scene is new).
        """
        if isinstance(intensity, bool) or not isinstance(intensity, (int, float, np.number)):
            raise ConfigError(f"{self.name}: scene intensity must be a number in [0, 1], got {intensity!r}")
        intensity = float(intensity)
        if not (0.0 <= intensity <= 1.0):
            raise ConfigError(f"{self.name}: scene intensity must be in [0, 1], got {intensity!r}")
        if timestamp is None:
            ctx = getattr(self, "ctx", None)
            timestamp = ctx.clock.now() if ctx is not None else self._t0 + self._n_steps * DT
        timestamp = float(timestamp)
        if math.isnan(timestamp):
            raise ConfigError(f"{self.name}: scene timestamp is NaN")
        self._scene_order += 1
        bisect.insort(self._pending_scenes, (timestamp, self._scene_order, str(scene), intensity, str(tone)))

    def _on_event(self, event: Event) -> None:
        if event.viewer not in self.scene_viewers:
            return
        try:
            evidence = event.evidence
            self.on_scene(evidence["intensity"], str(evidence.get("tone", "") or ""), event.timestamp,
                          str(evidence.get("scene", "") or ""))
        except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as exc:
            # a malformed event is counted and logged; the viewer keeps watching the last scene
            self.ctx.counters[f"{self.name}.bad_scene_events"] += 1
            log.warning("%s: ignoring scene.start without a valid intensity (%s): %s", self.name, exc,
                        event.to_json())

    def _apply_due_scenes(self, t: float) -> None:
        self._surprise = 0.0
        while self._pending_scenes and self._pending_scenes[0][0] <= t + _EPS:
            _, _, scene, intensity, tone = self._pending_scenes.pop(0)
            self._surprise = max(self._surprise, self._mind.start_scene(scene, intensity, tone))
            self._scene_log.append((t, scene, intensity, tone))

    # ------------------------------------------------------------------ ground truth

    def truth_array(self) -> np.ndarray:
        """Latent ground truth so far at 10 Hz: columns ``t, arousal, boredom, attention``."""
        n = self._n_steps - self._base
        return np.column_stack([self._t0 + (self._base + np.arange(n)) * DT,
                                self._lat[:n, [_AROUSAL, _BOREDOM, _ATTENTION]]])

    def latent_array(self) -> np.ndarray:
        """Everything the viewer's mind and body did so far at 10 Hz: a time column, then
        :data:`LATENT_COLUMNS` (``mind_wandering`` 0/1, ``hr_bpm`` the heart rate the beats follow,
        ``scl_us`` the tonic skin conductance, ``engagement`` = attention × (1 - boredom))."""
        n = self._n_steps - self._base
        return np.column_stack([self._t0 + (self._base + np.arange(n)) * DT, self._lat[:n, :len(LATENT_COLUMNS)]])

    def latent_state(self, t: float | None = None) -> LatentState:
        """What the viewer was experiencing at time ``t`` (default: the last step made), from the
        10 Hz latent log; for thought probes ("how bored are you?" → ``boredom``; "were you thinking
        about the film?" → not ``mind_wandering``). Raises ``ValueError`` for a time not simulated yet
        (read the viewer up to it first) or before its start.

        >>> v = SimulatedViewer(seed=2)
        >>> v.on_scene(0.9, "tense", timestamp=0.0, scene="chase")
        >>> _ = v.read(30.0)
        >>> s = v.latent_state(20.0)
        >>> s.scene, s.tone, round(s.time_in_scene, 1)
        ('chase', 'tense', 20.0)
        """
        if self._n_steps == 0:
            raise ValueError(f"{self.name}: no latent state yet (read the viewer first)")
        first_t = self._t0 + self._base * DT
        last_t = self._t0 + (self._n_steps - 1) * DT
        if t is None:
            t = last_t
        t = float(t)
        if not (first_t - _EPS <= t <= last_t + _EPS):
            raise ValueError(f"{self.name}: no latent state at t={t:g} (kept from {first_t:g} to {last_t:g})")
        k = min(self._n_steps - 1, max(self._base, math.floor((t - self._t0) / DT + _EPS)))
        row = self._lat[k - self._base]
        start, scene, intensity, tone = self._scene_log[self._scene_at_step[k - self._base]]
        step_t = self._t0 + k * DT
        return LatentState(t=step_t, arousal=float(row[_AROUSAL]), boredom=float(row[_BOREDOM]),
                           attention=float(row[_ATTENTION]), novelty=float(row[_NOVELTY]),
                           mind_wandering=bool(row[_MW]), scene=scene, intensity=intensity, tone=tone,
                           time_in_scene=max(0.0, step_t - start) if math.isfinite(start) else step_t - self._t0)

    def answer_probe(self, question: str, t: float | None = None):
        """A thought probe shown at ``t`` answered from the viewer's latent state then (the last
        state made when ``t`` is not simulated yet): the value and response time of
        :func:`~engage.sensors.sim_probes.answer_from_state`, or None for an unknown question. The
        probe scheduler (:mod:`engage.events.probes`) calls it; answers are reproducible per seed."""
        from .sim_probes import answer_from_state

        if self.__dict__.get("_probe_rng") is None:
            self._probe_rng = np.random.default_rng([self.seed, 0x9B0BE])
        try:
            state = self.latent_state(t)
        except ValueError:
            state = self.latent_state()
        return answer_from_state(question, state, self._probe_rng)

    @property
    def true_beats(self) -> list[float]:
        """R-peak times of every beat up to the last read."""
        return [r for r in self._all_beats if r <= self._last_until]

    # ------------------------------------------------------------------ latent model

    def _step_index(self, t: float) -> int:
        return math.floor((t - self._t0) / DT + _EPS)

    def _advance_latent(self, until: float) -> None:
        last = self._step_index(until)
        if self._keep_steps is not None and last - self._base >= 2 * self._keep_steps:
            self._forget_before(last - self._keep_steps)
        if last - self._base >= len(self._lat):
            grown = np.zeros((max(2 * len(self._lat), last - self._base + 1), _N_LATENT))
            grown[: self._n_steps - self._base] = self._lat[: self._n_steps - self._base]
            self._lat = grown
        while self._n_steps <= last:
            t = self._t0 + self._n_steps * DT
            self._apply_due_scenes(t)
            self._scene_at_step.append(len(self._scene_log) - 1)
            self._lat[self._n_steps - self._base] = self._step(t)
            self._n_steps += 1

    def _forget_before(self, step: int) -> None:
        """Drop the latent log (and true beats) before ``step`` (history_s), in place, in one move."""
        step = max(self._base, min(step, self._n_steps - 2))  # keep what interpolation one step late needs
        drop = step - self._base
        if drop <= 0:
            return
        kept = self._n_steps - step
        self._lat[:kept] = self._lat[drop:drop + kept]
        del self._scene_at_step[:drop]
        self._base = step
        first_t = self._t0 + step * DT
        self._all_beats = [r for r in self._all_beats if r >= first_t]

    def _step(self, t: float) -> list[float]:
        mind, tr = self._mind, self.traits
        arousal, boredom, attention, novelty, wandering = mind.step()
        engagement = attention * (1.0 - boredom)
        physio = self._rng["physio"]
        z = physio.standard_normal(2).tolist()

        # heart rate: arousal (reactivity-scaled), boredom, a slow fluctuation
        self._hr_slow = self._hr_slow * _OU_HR[0] + cal.HR_SLOW_SD * _OU_HR[1] * z[0]
        hr = (tr.resting_hr + tr.reactivity * cal.HR_PER_AROUSAL * (arousal - cal.AROUSAL_REST)
              + cal.HR_PER_BOREDOM * boredom + self._hr_slow)
        hr = _clip(hr, 35.0, 190.0)
        # tonic skin conductance follows a slow copy of arousal and boredom, and drifts
        self._slow_arousal += (arousal - self._slow_arousal) * DT / cal.SCL_TAU
        self._slow_boredom += (boredom - self._slow_boredom) * DT / cal.SCL_TAU
        # integrated OU: a drift that is smooth over seconds (a plain OU would wiggle like SCRs)
        self._eda_drift_rate = self._eda_drift_rate * _OU_DRIFT[0] + 0.0008 * _OU_DRIFT[1] * z[1]
        self._eda_drift += (self._eda_drift_rate - self._eda_drift / 300.0) * DT
        scl = tr.resting_scl * max(0.2, 1.0 + tr.reactivity * cal.SCL_PER_AROUSAL * (self._slow_arousal - cal.AROUSAL_REST)
                                   - cal.SCL_PER_BOREDOM * self._slow_boredom + self._eda_drift)
        if "eda" in self._connected:
            self._eda_events(t, arousal, boredom, scl)
        if "face" in self._connected:
            self._face_events(t, boredom, attention, engagement, wandering)
        resp = 2 * math.pi * self._resp_hz * t + self._resp_phase
        wander = 0.05 * math.sin(resp) + 0.04 * math.sin(2 * math.pi * self._wander_hz * t + self._wander_phase)
        return [arousal, boredom, attention, novelty, float(wandering), mind.intensity, hr, scl, engagement,
                *self._head, wander, 0.08 * math.sin(resp)]

    def _eda_events(self, t: float, arousal: float, boredom: float, scl: float) -> None:
        tr, rng = self.traits, self._rng["scr"]
        u, when, size, orient = rng.random(), rng.random(), rng.standard_normal(), rng.random()
        level = _clip((arousal - cal.AROUSAL_REST) / cal.AROUSAL_PER_INTENSITY, 0.0, 1.5)
        rate = (cal.SCR_RATE_REST + (cal.SCR_RATE_TASK - cal.SCR_RATE_REST) * level) * (1.0 - 0.3 * boredom) / 60.0
        rate *= tr.reactivity
        # amplitude grows with the level, less than in proportion (a dry wrist still shows responses)
        amplitude = (cal.SCR_AMP_REL * math.sqrt(scl * cal.SCR_AMP_LEVEL) * math.sqrt(tr.reactivity)
                     * (0.7 + 0.6 * arousal) * math.exp(0.6 * size))
        if u < rate * DT:
            self._scrs.append((t + when * DT, amplitude))
        if self._surprise > 0 and orient < self._surprise:  # an orienting response to a surprising scene
            self._scrs.append((t + 1.5, 2.0 * amplitude))

    def _face_events(self, t: float, boredom: float, attention: float, engagement: float, wandering: bool) -> None:
        tr, rng = self.traits, self._rng["face"]
        u = rng.random(7).tolist()
        when = (rng.random(6) * DT).tolist()
        z = rng.standard_normal(6).tolist()
        gain = (1.0 + 1.5 * boredom) * _OU_HEAD[1]  # engaged viewers hold still (Witchel et al.)
        self._head = [h * _OU_HEAD[0] + sd * gain * zi for h, sd, zi in zip(self._head, (3.0, 2.0, 1.5), z[:3])]

        blink_rate = tr.blink_rate * (1.0 - cal.BLINK_INHIBITION * engagement) * (1.0 + 0.2 * boredom)
        if u[0] < blink_rate / 60.0 * DT or (self._surprise > 0 and u[6] < 0.3):  # and at scene breaks
            duration = 0.2 * (1.0 + 0.3 * boredom) * math.exp(0.25 * float(z[3]))
            self._blinks.append((t + when[0], _clip(duration, 0.08, 0.6)))
        # looks away: the share of time away goes from 3 % (engaged) to 30 % (disengaged)
        share = cal.LOOK_AWAY_ENGAGED + (cal.LOOK_AWAY_BORED - cal.LOOK_AWAY_ENGAGED) * (1.0 - engagement) ** 1.5
        mean_s = 1.5 + 4.5 * (1.0 - engagement)
        hazard = share / ((1.0 - share) * mean_s)
        if t >= self._away_until and u[1] < hazard * DT:
            duration = _clip(mean_s * math.exp(0.7 * float(z[4]) - 0.245), 0.3, 60.0)
            self._away.append((t + when[1], duration, int(3 * u[5]) % 3))
            self._away_until = t + when[1] + duration + 2 * _RAMP
        if boredom > 0.5 and t >= self._yawn_until and u[2] < 1.5 / 60.0 * (boredom - 0.5) / 0.5 * DT:
            duration = 3.0 + 3.0 * float(rng.random())
            self._yawns.append((t + when[2], duration))
            self._yawn_until = t + when[2] + duration
        if t >= self._dropout_until and u[3] < 0.15 / 60.0 * DT:
            duration = 0.2 + 1.3 * float(rng.random())
            self._dropouts.append((t + when[3], duration))
            self._dropout_until = t + when[3] + duration
        if u[4] < 2.5 * (0.7 if wandering else 1.0) * DT:  # a saccade to a new fixation on screen
            x, y = (_clip(0.5 + 0.15 * float(v), 0.05, 0.95) for v in rng.standard_normal(2))
            self._fixations.append((t + when[4], x, y))

    def _latent_at(self, t: np.ndarray, columns: list[int]) -> np.ndarray:
        """Latent ``columns`` at times ``t``, shape (len(t), len(columns)), linearly
        interpolated one step late so that a sample never needs a step not yet made."""
        n, base = self._n_steps, self._base
        x = np.clip((t - self._t0) / DT - 1.0, base, n - 1)
        j = np.floor(x).astype(int)
        j1 = np.minimum(j + 1, n - 1)
        frac = (x - j)[:, None]
        return self._lat[j - base][:, columns] * (1.0 - frac) + self._lat[j1 - base][:, columns] * frac

    def _latent_scalar(self, t: float, column: int) -> float:
        """Scalar :meth:`_latent_at` of one column (one call per beat)."""
        x = min(max((t - self._t0) / DT - 1.0, self._base), self._n_steps - 1)
        j = math.floor(x)
        j1 = min(j + 1, self._n_steps - 1)
        return float(self._lat[j - self._base, column] * (1.0 - (x - j)) + self._lat[j1 - self._base, column] * (x - j))

    # ------------------------------------------------------------------ beats and sensors

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
        tr, rng = self.traits, self._rng["beats"]
        if not self._beats:
            first = self._t0 + 0.8 * float(rng.random())
            self._beats.append((first, 1.0))
            self._all_beats.append(first)
        while self._beats[-1][0] < until + _BEAT_LOOKAHEAD:
            r = self._beats[-1][0]
            hr = self._latent_scalar(r - _HR_DELAY, _HR)
            arousal = self._latent_scalar(r - _HR_DELAY, _AROUSAL)
            rsa = 0.6 * tr.hrv_ms / 1000.0 * (1.0 - 0.6 * arousal)  # vagal withdrawal under arousal
            rr = (60.0 / hr + rsa * math.sin(2 * math.pi * self._resp_hz * r + self._resp_phase)
                  + tr.hrv_ms / 1000.0 * float(rng.standard_normal()))
            rr = min(2.0, max(0.3, rr))
            self._beats.append((r + rr, math.sqrt(rr)))
            self._all_beats.append(r + rr)

    def _render_ecg(self, ts: np.ndarray) -> np.ndarray:
        tx, template = self._template
        ecg = np.zeros(len(ts))
        for r, stretch in self._beats:
            lo, hi = r - ECG_PRE * stretch, r + ECG_POST * stretch
            i0, i1 = np.searchsorted(ts, lo), np.searchsorted(ts, hi, side="right")
            if i1 > i0:
                ecg[i0:i1] += np.interp((ts[i0:i1] - r) / stretch, tx, template, left=0.0, right=0.0)
        wander = self._latent_at(ts, [_WANDER])[:, 0]
        noise = 0.012 * self._rng["ecg"].standard_normal(len(ts))
        return (ecg * self._ecg_gain + wander + noise).reshape(-1, 1)

    def _render_ppg(self, ts: np.ndarray) -> np.ndarray:
        phase, pulse = ppg_template()
        ppg = np.zeros(len(ts))
        beats = self._beats
        for (r, _), (r_next, _) in zip(beats, beats[1:]):
            foot = r + self._ptt
            rr = r_next - r
            i0, i1 = np.searchsorted(ts, foot), np.searchsorted(ts, foot + rr, side="right")
            if i1 > i0:
                ppg[i0:i1] += np.interp((ts[i0:i1] - foot) / rr, phase, pulse, left=0.0, right=0.0)
        resp = self._latent_at(ts, [_PPG_WANDER])[:, 0]
        noise = 0.02 * self._rng["ppg"].standard_normal(len(ts))
        return (self._ppg_gain * (ppg * (1.0 + resp) + resp + noise)).reshape(-1, 1)

    def _prune_beats(self, until: float) -> None:
        # a beat is dropped once neither the ECG (its cycle ends ECG_POST * sqrt(2) s after R at most)
        # nor the pulse wave (which lasts from R + transit time to the next beat, RR <= 2 s) can reach
        # a sample after ``until``; the last two beats always stay
        horizon = until - (self._ptt + 2.0)
        drop = 0
        while drop < len(self._beats) - 2 and self._beats[drop][0] < horizon:
            drop += 1
        del self._beats[:drop]

    def _render_eda(self, ts: np.ndarray) -> np.ndarray:
        eda = self._latent_at(ts, [_SCL])[:, 0]
        tx, _ = self._scr_shape
        support = float(tx[-1])
        for onset, amplitude in self._scrs:
            lag = ts - onset
            active = (lag >= 0.0) & (lag <= support)
            if active.any():
                eda[active] += amplitude * table_at(lag[active], self._scr_shape)
        self._scrs = [s for s in self._scrs if s[0] + support >= ts[-1]]
        eda += 0.0015 * self._rng["eda"].standard_normal(len(ts))
        return np.maximum(eda, 0.02).reshape(-1, 1)

    def _render_face(self, ts: np.ndarray) -> np.ndarray:
        n = len(ts)
        noise = self._rng["face_noise"].standard_normal((n, 6))
        boredom, yaw, pitch, roll = self._latent_at(ts, [_BOREDOM, _YAW, _PITCH, _ROLL]).T
        bump, ramp = bump_table(), ramp_table()

        blink = np.zeros(n)
        for onset, duration in self._blinks:
            blink += table_at((ts - onset) / duration, bump)
        blink = np.minimum(blink, 1.0)
        yawn = np.zeros(n)
        for onset, duration in self._yawns:
            yawn += table_at((ts - onset) / duration, bump)
        away = np.zeros(n)
        away_x, away_y, away_yaw, away_pitch = (np.zeros(n) for _ in range(4))
        for onset, duration, direction in self._away:
            rise = np.clip((ts - onset) / _RAMP, 0.0, 1.0)
            fall = np.clip((onset + duration - ts) / _RAMP, 0.0, 1.0)
            m = table_at(np.minimum(rise, fall), ramp)
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
        face = np.column_stack([present, ears[0], ears[1], on_screen, gaze_x, gaze_y, yaw + away_yaw,
                                pitch + away_pitch, roll + 0.3 * noise[:, 5], mouth])
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

    # ------------------------------------------------------------------ faults

    def _spans(self, kind: str, until: float) -> list[tuple[float, float]]:
        """Outages of ``kind`` (absolute times), random ones drawn up to ``until``."""
        o = self._outages[kind]
        if not o.spans and o.drawn_until == -math.inf:
            o.spans = sorted((self._t0 + s, self._t0 + s + d) for k, s, d in self.faults.dropouts if k == kind)
            o.drawn_until = self._t0
        rate = self.faults.dropout_rate_per_hour / 3600.0
        if rate > 0:
            rng = self._rng[f"fault_{kind}"]
            while o.drawn_until <= until:
                start = o.drawn_until + float(rng.exponential(1.0 / rate))
                duration = self.faults.dropout_median_s * math.exp(0.8 * float(rng.standard_normal()))
                bisect.insort(o.spans, (start, start + duration))
                o.drawn_until = start + duration
        else:
            o.drawn_until = max(o.drawn_until, until)
        return o.spans

    def _not_out(self, kind: str, ts: np.ndarray) -> np.ndarray | None:
        spans = self._spans(kind, float(ts[-1]))
        if not spans:
            return None
        keep = np.ones(len(ts), dtype=bool)
        for a, b in spans:
            if b >= ts[0] and a <= ts[-1]:
                keep &= (ts < a) | (ts >= b)
        return keep

    def _report_faults(self, until: float) -> None:
        ctx = getattr(self, "ctx", None)
        if self.faults.never and not self._never_reported and until >= self._t0 + _CONNECT_WAIT_S:
            self._never_reported = True
            for kind in self.faults.never:
                if kind in self.sensors:
                    self._gap(ctx, self._t0, until - self._t0, self._infos[kind].name, "not connected")
        for kind in self._connected:
            o = self._outages[kind]
            spans = self._spans(kind, until)
            while o.reported_lost < len(spans) and until >= spans[o.reported_lost][0] + _NOTICE_S:
                a, _ = spans[o.reported_lost]
                self._gap(ctx, a, until - a, self._infos[kind].name, "stream lost")
                o.reported_lost += 1
            while o.reported_back < o.reported_lost and until >= spans[o.reported_back][1]:
                a, b = spans[o.reported_back]
                self._gap(ctx, a, b - a, self._infos[kind].name, "stream recovered")
                o.reported_back += 1

    def _gap(self, ctx: Context | None, start: float, duration: float, stream: str, reason: str) -> None:
        log.info("%s: %s %s at %.3f (%.1f s)", self.name, stream, reason, start, duration)
        if ctx is None:  # read() without a runtime: nothing to publish on
            return
        ctx.counters[f"{self.name}.gaps"] += 1
        ctx.emit("sensor.gap", float(start), evidence={"stream": stream, "duration_s": float(duration), "reason": reason},
                 source=self.name, viewer=self.viewer)


# ------------------------------------------------------------------------------------------------
# audiences
# ------------------------------------------------------------------------------------------------


class SimulatedAudience(Sequence):
    """``n`` simulated viewers drawn from the population, for a group watching one film.

    Viewer ``i`` is ``{prefix}-{i + 1}`` with seed ``viewer_seed(seed, i)``: its own traits and
    signals, the same whatever ``n`` is (a bigger audience adds viewers, it does not change the
    first ones). Each follows the ``scene.start`` events of its own id and of ``scene_viewers`` (a
    group session passes the id its controller plays to). The viewers are ordinary
    :class:`SimulatedViewer` sources: hand ``list(audience)`` to a session.

    >>> audience = SimulatedAudience(3, seed=7)
    >>> [v.viewer for v in audience]
    ['viewer-1', 'viewer-2', 'viewer-3']
    >>> SimulatedAudience(5, seed=7)[1].traits == audience[1].traits
    True
    """

    def __init__(self, n: int, seed: int = 0, prefix: str = "viewer", scene_viewers: Sequence[str] = (),
                 **viewer_kwargs) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"a simulated audience needs at least one viewer, got {n!r}")
        self.seed = int(seed)
        self.viewers = [SimulatedViewer(seed=self.viewer_seed(self.seed, i), viewer=f"{prefix}-{i + 1}",
                                        scene_viewers=(f"{prefix}-{i + 1}", *scene_viewers), **viewer_kwargs)
                        for i in range(n)]

    @staticmethod
    def viewer_seed(seed: int, i: int) -> int:
        """The seed of viewer ``i`` of an audience drawn with ``seed``."""
        return int(np.random.SeedSequence(seed, spawn_key=(i,)).generate_state(1)[0])

    def __len__(self) -> int:
        return len(self.viewers)

    def __getitem__(self, i):
        return self.viewers[i]

    def __iter__(self) -> Iterator[SimulatedViewer]:
        return iter(self.viewers)

    def traits_table(self) -> list[dict]:
        """Each viewer's id and traits, one dict per viewer."""
        return [{"viewer": v.viewer, **v.traits.__dict__} for v in self.viewers]
