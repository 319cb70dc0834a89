"""Waveform shapes of the simulated viewer, made once per body and drawn by interpolation.

Every shape that needs a transcendental function (``exp``, ``cos``) is tabulated here once, with
Python's scalar :mod:`math`; the per-sample rendering in :mod:`engage.sensors.simulated` only adds,
multiplies and calls :func:`numpy.interp`. NumPy picks SIMD versions of ``exp``/``sin`` per CPU
(AVX-512 or not), and those differ in the last bits; arithmetic and interpolation do not, so a
simulated recording is the same on every machine. NeuroKit2's ``ecg_simulate`` (ECGSYN) is not: it
integrates an ODE whose output differs between CPUs, and importing neurokit2 costs 1.5 s and
100 MB at start-up, so the simulator makes its ECG from closed-form waves instead.

* :func:`ecg_template`: one PQRST cycle at 60 bpm as a sum of Gaussian P, Q, R, S and T waves
  (ECGSYN's morphology — McSharry et al. 2003, IEEE Trans Biomed Eng 50:289 — laid out in time
  rather than integrated), R peak = 1;
* :func:`ppg_template`: one pulse of a finger/wrist pulse wave over a cardiac cycle (systolic and
  diastolic waves);
* :func:`bateman_table`: a skin conductance response (Bateman function, peak = 1);
* :func:`bump_table`, :func:`ramp_table`: a raised cosine (a blink, a yawn) and a half-cosine ramp.

>>> tx, y = ecg_template()
>>> round(float(tx[np.argmax(y)]), 3), float(y.max())
(0.0, 1.0)
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["ECG_WAVES", "bateman_table", "bump_table", "ecg_template", "ppg_template", "ramp_table", "table_at"]

#: Template sampling rate (Hz) of the ECG and PPG shapes.
TEMPLATE_RATE = 1000.0
#: The ECG template spans [-PRE, +POST] s around the R peak.
ECG_PRE, ECG_POST = 0.35, 0.65
#: (offset from the R peak in s, amplitude relative to R, SD in s) of the P, Q, R, S and T waves.
ECG_WAVES = ((-0.20, 0.12, 0.025), (-0.03, -0.12, 0.010), (0.0, 1.0, 0.011), (0.03, -0.25, 0.011),
             (0.26, 0.30, 0.045))


def _gauss(x: float, mu: float, sd: float) -> float:
    z = (x - mu) / sd
    return math.exp(-0.5 * z * z) if abs(z) < 12.0 else 0.0


@functools.lru_cache(maxsize=64)
def ecg_template(scale: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0),
                 width: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """One ECG cycle: (times relative to the R peak in s, values with the R peak at 1).

    Parameters
    ----------
    scale, width : tuple of 5 floats
        Per-wave factors (P, Q, R, S, T) on the amplitudes and widths of :data:`ECG_WAVES`: one
        body's morphology. The R amplitude is renormalised to 1.

    Returns
    -------
    tx, y : ndarray
        Read-only arrays; the cycle is tapered to 0 at both ends so beats join smoothly.
    """
    n = int(round((ECG_PRE + ECG_POST) * TEMPLATE_RATE)) + 1
    tx = np.array([i / TEMPLATE_RATE - ECG_PRE for i in range(n)])
    y = np.zeros(n)
    for (mu, amp, sd), s, w in zip(ECG_WAVES, scale, width):
        y += np.array([amp * s * _gauss(float(x), mu, sd * w) for x in tx])
    taper = int(round(0.04 * TEMPLATE_RATE))
    ramp = np.array([0.5 * (1.0 - math.cos(math.pi * i / (taper - 1))) for i in range(taper)])
    y[:taper] *= ramp
    y[-taper:] *= ramp[::-1]
    y /= y[int(round(ECG_PRE * TEMPLATE_RATE))]
    tx.flags.writeable = False
    y.flags.writeable = False
    return tx, y


@functools.lru_cache(maxsize=64)
def ppg_template(diastolic: float = 0.35, notch_phase: float = 0.42) -> tuple[np.ndarray, np.ndarray]:
    """One pulse over a cardiac cycle: (phase 0..1 from the pulse's foot, value, peak = 1).

    A systolic wave at phase 0.2 and a smaller, wider diastolic wave at ``notch_phase`` + 0.08,
    both Gaussian, minus the line between the ends so the pulse starts and ends at 0.
    """
    n = 501
    phase = np.array([i / (n - 1) for i in range(n)])
    y = np.array([_gauss(float(p), 0.20, 0.075) + diastolic * _gauss(float(p), notch_phase + 0.08, 0.10) for p in phase])
    y -= y[0] + (y[-1] - y[0]) * phase
    y /= y.max()
    phase.flags.writeable = False
    y.flags.writeable = False
    return phase, y


@functools.lru_cache(maxsize=256)
def bateman_table(tau_rise: float, tau_decay: float, rate: float = 20.0, support: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """A skin conductance response: ``exp(-t/tau_decay) - exp(-t/tau_rise)`` normalised to a peak of 1,
    tabulated at ``rate`` Hz over ``support`` decay time constants (0 outside; 0 at the end)."""
    if not 0 < tau_rise < tau_decay:
        raise ValueError(f"need 0 < tau_rise < tau_decay, got {tau_rise}, {tau_decay}")
    t_peak = math.log(tau_decay / tau_rise) * tau_rise * tau_decay / (tau_decay - tau_rise)
    peak = math.exp(-t_peak / tau_decay) - math.exp(-t_peak / tau_rise)
    n = int(math.ceil(support * tau_decay * rate)) + 1
    t = np.array([i / rate for i in range(n)])
    y = np.array([(math.exp(-x / tau_decay) - math.exp(-x / tau_rise)) / peak for x in t])
    y -= y[-1] * t / t[-1]  # exactly 0 at the end of the support
    t.flags.writeable = False
    y.flags.writeable = False
    return t, y


def _cosine_table(n: int, turns: float) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([i / (n - 1) for i in range(n)])
    y = np.array([0.5 * (1.0 - math.cos(turns * math.pi * v)) for v in x])
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


@functools.lru_cache(maxsize=4)
def bump_table(n: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """Raised cosine on [0, 1]: 0 at the ends, 1 in the middle."""
    return _cosine_table(n, 2.0)


@functools.lru_cache(maxsize=4)
def ramp_table(n: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """Half-cosine ramp on [0, 1]: from 0 to 1."""
    return _cosine_table(n, 1.0)


def table_at(x: np.ndarray, table: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """A tabulated shape at ``x`` (0 outside the table)."""
    tx, ty = table
    return np.interp(x, tx, ty, left=0.0, right=0.0)
