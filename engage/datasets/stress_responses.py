"""How heart rate and skin conductance answer a stress task in Stress-Predict: the real-data half of
the simulated viewer's calibration table (``sensors/simulated.md``).

The same measures run on the real recordings and on simulated viewers (tests/test_sim_calibration.py),
so the simulator is compared with people on equal terms:

* **rest levels**: each participant's median heart rate and skin conductance level (SCL) over the
  rest blocks, leaving out each block's first ``settle_s`` (180 s: settling in, recovering from a task);
* **task responses**: for every stress-task block, its mean minus the mean of the last ``pre_s``
  (180 s) of the rest block before it: ΔHR in bpm, ΔSCL in µS and relative to the pre-task level;
* **noise floor**: the same measure inside the final, long rest (a "pseudo-task" 5-11 min into it,
  against 2-5 min), i.e. what the measure gives with no task at all;
* **time course**: the mean response locked to task onsets and offsets in 10 s bins, fitted by a
  delayed first-order step ``A (1 - exp(-(t - d) / tau))``;
* **skin conductance responses**: peaks of the phasic part (the signal minus its zero-phase 0.05 Hz
  low-pass) with a prominence of at least 0.01 µS (the computer-scoring criterion of Boucsein et al.
  2012, Psychophysiology 49:1017), per minute at rest and in tasks, and their amplitude relative to
  the SCL.

Heart rate is the Empatica E4's own 1 Hz estimate (``HR.csv``); its beat list (``IBI.csv``) keeps
only clean beats and is too sparse for block means, but gives the slow variability of heart rate at
rest from 30-s windows with at least 80 % beat coverage.

Recompute the table (prints Markdown rows, the numbers pinned in
:data:`engage.sensors.sim_calibration.STRESS_PREDICT`)::

    python -m engage.datasets.stress_responses ../shared/data/stress_predict_e4

>>> blocks = label_blocks(np.arange(0.0, 10.0), np.array([0, 0, 0, 1, 1, 1, 0, 0, 0, 0]))
>>> [(b.start, b.end, b.label) for b in blocks]
[(0.0, 3.0, 0), (3.0, 6.0, 1), (6.0, 10.0, 0)]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: The entry points; the measures below them are public to the calibration tests, not an API.
__all__ = ["stress_predict_summary", "simulated_summary"]

#: The stress tasks of the Stress-Predict protocol, in the order every participant did them.
TASKS = ("stroop", "interview", "hyperventilation")
#: Event-locked bins: 10 s wide, from 2 min before a label change to 5 min after it.
BIN_EDGES = np.arange(-120.0, 301.0, 10.0)
#: The Stress-Predict timetable as (block, duration s): the median block durations of S02-S20.
PROTOCOL = (("rest", 643.0), ("stroop", 346.0), ("rest", 316.0), ("interview", 625.0), ("rest", 302.0),
            ("hyperventilation", 127.0), ("rest", 937.0))


@dataclass(frozen=True)
class Block:
    """One stretch of constant label: ``[start, end)``; ``label`` 1 = stress task, 0 = rest."""

    start: float
    end: float
    label: int

    @property
    def duration(self) -> float:
        return self.end - self.start


def label_blocks(t: np.ndarray, labels: np.ndarray, end: float | None = None) -> list[Block]:
    """A step-function label (``labels[i]`` from ``t[i]``) as its blocks of constant value.

    Parameters
    ----------
    t, labels : array
        Label times (s, increasing) and values (0/1; NaN rows are skipped).
    end : float, optional
        When the last label stops holding (default: one step after the last time).

    Returns
    -------
    list of Block
    """
    t = np.asarray(t, dtype=float)
    v = np.asarray(labels, dtype=float)
    ok = np.isfinite(v) & np.isfinite(t)
    t, v = t[ok], v[ok]
    if t.size == 0:
        return []
    if end is None:
        end = float(t[-1] + (t[-1] - t[-2] if t.size > 1 else 1.0))
    change = np.flatnonzero(np.diff(v) != 0) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [t.size]])
    return [Block(float(t[a]), float(t[b]) if b < t.size else float(end), int(v[a])) for a, b in zip(starts, stops)]


def _mean(t: np.ndarray, x: np.ndarray, a: float, b: float) -> float:
    sel = (t >= a) & (t < b) & np.isfinite(x)
    return float(np.mean(x[sel])) if sel.any() else math.nan


def block_responses(blocks: Sequence[Block], hr_t: np.ndarray, hr: np.ndarray, eda_t: np.ndarray, eda: np.ndarray,
                    pre_s: float = 180.0) -> list[dict]:
    """The response of heart rate and SCL to each stress-task block that follows a rest block.

    Parameters
    ----------
    blocks : sequence of Block
        From :func:`label_blocks`.
    hr_t, hr : array
        Heart rate (bpm) and its times (s).
    eda_t, eda : array
        Skin conductance (µS) and its times (s).
    pre_s : float
        The pre-task reference: the last ``pre_s`` seconds of the rest block before the task.

    Returns
    -------
    list of dict
        Per task block, in order: ``task`` (its index among the tasks), ``start``, ``duration_s``,
        ``hr_pre``, ``dhr`` (bpm), ``scl_pre``, ``dscl`` (µS), ``dscl_rel`` (ΔSCL / pre-task SCL).

    Example
    -------
    >>> t = np.arange(0.0, 600.0)
    >>> b = label_blocks(t, (t >= 300).astype(int))
    >>> r = block_responses(b, t, 70 + 5 * (t >= 300), t, np.full(t.size, 0.5))
    >>> r[0]["dhr"], r[0]["dscl_rel"]
    (5.0, 0.0)
    """
    out = []
    k = 0
    for i, b in enumerate(blocks):
        if b.label != 1:
            continue
        if i == 0 or blocks[i - 1].label != 0:
            k += 1
            continue
        rest = blocks[i - 1]
        pre = (max(rest.start, rest.end - pre_s), rest.end)
        hr_pre, scl_pre = _mean(hr_t, hr, *pre), _mean(eda_t, eda, *pre)
        dscl = _mean(eda_t, eda, b.start, b.end) - scl_pre
        out.append({"task": k, "start": b.start, "duration_s": b.duration, "hr_pre": hr_pre,
                    "dhr": _mean(hr_t, hr, b.start, b.end) - hr_pre, "scl_pre": scl_pre, "dscl": dscl,
                    "dscl_rel": dscl / scl_pre if scl_pre > 0 else math.nan})
        k += 1
    return out


def rest_levels(blocks: Sequence[Block], t: np.ndarray, x: np.ndarray, settle_s: float = 180.0) -> float:
    """Median of ``x`` over the rest blocks, leaving out each block's first ``settle_s`` seconds."""
    sel = np.zeros(t.shape, dtype=bool)
    for b in blocks:
        if b.label == 0:
            sel |= (t >= b.start + settle_s) & (t < b.end)
    sel &= np.isfinite(x)
    return float(np.median(x[sel])) if sel.any() else math.nan


def null_response(blocks: Sequence[Block], hr_t: np.ndarray, hr: np.ndarray, eda_t: np.ndarray,
                  eda: np.ndarray) -> dict | None:
    """The task-response measure inside the last rest block (≥ 11 min): minutes 5-11 against 2-5."""
    rest = blocks[-1] if blocks and blocks[-1].label == 0 else None
    if rest is None or rest.duration < 660.0:
        return None
    a = rest.start
    pseudo = [Block(a, a + 300.0, 0), Block(a + 300.0, a + 660.0, 1)]
    r = block_responses(pseudo, hr_t, hr, eda_t, eda, pre_s=180.0)
    return r[0] if r else None


def event_locked(t: np.ndarray, x: np.ndarray, at: float, relative: bool = False) -> np.ndarray:
    """``x`` in the 10 s bins of :data:`BIN_EDGES` around time ``at``, minus its mean over the 2 min
    before ``at`` (divided by it when ``relative``)."""
    rel = t - at
    pre = _mean(rel, x, -120.0, 0.0)
    bins = np.array([_mean(rel, x, lo, lo + 10.0) for lo in BIN_EDGES[:-1]])
    return (bins - pre) / pre if relative else bins - pre


def fit_step(y: np.ndarray, centres: np.ndarray | None = None) -> dict:
    """Fit ``A (1 - exp(-(t - d) / tau))`` (0 before ``d``) to an event-locked mean ``y``.

    Returns ``{"A": ..., "delay_s": ..., "tau_s": ...}`` (NaN when the fit fails).
    """
    from scipy.optimize import curve_fit

    if centres is None:
        centres = BIN_EDGES[:-1] + 5.0
    ok = np.isfinite(y)

    def step(tt, amp, delay, tau):
        return amp * (1.0 - np.exp(-np.maximum(tt - delay, 0.0) / tau))

    post = ok & (centres > -30.0)
    late = ok & (centres > 200)
    if post.sum() < 4 or not late.any():
        return {"A": math.nan, "delay_s": math.nan, "tau_s": math.nan}
    try:
        (amp, delay, tau), _ = curve_fit(step, centres[post], y[post], p0=(float(np.mean(y[late])), 0.0, 60.0),
                                         bounds=([-np.inf, -60.0, 1.0], [np.inf, 150.0, 1000.0]), maxfev=20000)
    except (RuntimeError, ValueError):
        return {"A": math.nan, "delay_s": math.nan, "tau_s": math.nan}
    return {"A": float(amp), "delay_s": float(delay), "tau_s": float(tau)}


def scr_peaks(t: np.ndarray, eda: np.ndarray, fs: float, min_prominence: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Times and amplitudes (prominence, µS) of the skin conductance responses of a whole record:
    peaks of the signal minus its zero-phase 0.05 Hz low-pass."""
    from scipy import signal

    x = np.asarray(eda, dtype=float)
    sos = signal.butter(2, 0.05, fs=fs, output="sos")
    phasic = x - signal.sosfiltfilt(sos, x)
    peaks, props = signal.find_peaks(phasic, prominence=min_prominence)
    return np.asarray(t)[peaks], props["prominences"]


def scr_rates(blocks: Sequence[Block], peak_t: np.ndarray, settle_s: float = 180.0) -> tuple[float, float]:
    """SCRs per minute in the rest blocks (after ``settle_s``) and in the task blocks."""
    rest_s = sum(max(0.0, b.duration - settle_s) for b in blocks if b.label == 0)
    task_s = sum(b.duration for b in blocks if b.label == 1)
    n_rest = sum(int(np.count_nonzero((peak_t >= b.start + settle_s) & (peak_t < b.end))) for b in blocks if b.label == 0)
    n_task = sum(int(np.count_nonzero((peak_t >= b.start) & (peak_t < b.end))) for b in blocks if b.label == 1)
    return (60.0 * n_rest / rest_s if rest_s else math.nan, 60.0 * n_task / task_s if task_s else math.nan)


def slow_hr_sd(blocks: Sequence[Block], beat_t: np.ndarray, rr: np.ndarray, settle_s: float = 120.0,
               min_coverage: float = 0.8) -> tuple[float, int]:
    """SD of 30-s mean heart rates (from beat intervals) over the rest blocks, using only windows
    whose beats cover at least ``min_coverage`` of them; and how many windows that was."""
    means = []
    for b in blocks:
        if b.label != 0:
            continue
        for w in np.arange(b.start + settle_s, b.end - 30.0, 30.0):
            sel = (beat_t >= w) & (beat_t < w + 30.0)
            if sel.any() and rr[sel].sum() >= min_coverage * 30.0:
                means.append(60.0 / float(np.mean(rr[sel])))
    return (float(np.std(means)) if len(means) > 5 else math.nan, len(means))


def quartiles(x: Sequence[float]) -> tuple[float, float, float]:
    """25th, 50th and 75th percentiles of the finite values of ``x``."""
    a = np.asarray(x, dtype=float)
    a = a[np.isfinite(a)]
    return tuple(float(v) for v in np.percentile(a, [25, 50, 75])) if a.size else (math.nan,) * 3  # type: ignore[return-value]


class _Collector:
    """Accumulates the measures of many sessions (real or simulated) into one summary."""

    def __init__(self) -> None:
        self.rest_hr: list[float] = []
        self.rest_scl: list[float] = []
        self.responses: list[dict] = []
        self.nulls: list[dict] = []
        self.scr_rest: list[float] = []
        self.scr_task: list[float] = []
        self.scr_amp: list[float] = []
        self.slow: list[float] = []
        self.locked: dict[str, list[np.ndarray]] = {"hr_onset": [], "hr_offset": [], "scl_onset": [], "scl_offset": []}

    def add(self, blocks: Sequence[Block], ht: np.ndarray, hx: np.ndarray, et: np.ndarray, ex: np.ndarray,
            eda_rate: float, beat_t: np.ndarray | None, rr: np.ndarray | None) -> None:
        self.rest_hr.append(rest_levels(blocks, ht, hx))
        self.rest_scl.append(rest_levels(blocks, et, ex))
        self.responses += block_responses(blocks, ht, hx, et, ex)
        null = null_response(blocks, ht, hx, et, ex)
        if null is not None:
            self.nulls.append(null)
        peak_t, peak_a = scr_peaks(et, ex, eda_rate)
        r, k = scr_rates(blocks, peak_t)
        self.scr_rest.append(r)
        self.scr_task.append(k)
        in_rest = np.zeros(peak_t.shape, dtype=bool)
        for b in blocks:
            if b.label == 0:
                in_rest |= (peak_t >= b.start + 180.0) & (peak_t < b.end)
        if in_rest.any():
            self.scr_amp.append(float(np.median(peak_a[in_rest])) / self.rest_scl[-1])
        if beat_t is not None and rr is not None:
            self.slow.append(slow_hr_sd(blocks, beat_t, rr)[0])
        for b in blocks[1:]:
            kind = "onset" if b.label == 1 else "offset"
            self.locked[f"hr_{kind}"].append(event_locked(ht, hx, b.start))
            self.locked[f"scl_{kind}"].append(event_locked(et, ex, b.start, relative=True))

    def summary(self) -> dict:
        per_task = {}
        for k, name in enumerate(TASKS):
            rows = [r for r in self.responses if r["task"] == k]
            per_task[name] = {"dhr": quartiles([r["dhr"] for r in rows]),
                              "dscl_rel": quartiles([r["dscl_rel"] for r in rows])}
        return {
            "participants": len(self.rest_hr), "task_blocks": len(self.responses),
            "rest_hr_bpm": quartiles(self.rest_hr), "rest_scl_us": quartiles(self.rest_scl),
            "task_dhr_bpm": quartiles([r["dhr"] for r in self.responses]),
            "task_dscl_us": quartiles([r["dscl"] for r in self.responses]),
            "task_dscl_rel": quartiles([r["dscl_rel"] for r in self.responses]),
            "null_dhr_bpm": quartiles([r["dhr"] for r in self.nulls]),
            "null_dscl_rel": quartiles([r["dscl_rel"] for r in self.nulls]),
            "scr_rest_per_min": quartiles(self.scr_rest), "scr_task_per_min": quartiles(self.scr_task),
            "scr_amp_rel": quartiles(self.scr_amp), "hr_slow_sd_bpm": quartiles(self.slow),
            **{k: fit_step(np.nanmean(np.array(v), axis=0)) for k, v in self.locked.items()},
            "locked": {k: np.nanmean(np.array(v), axis=0) for k, v in self.locked.items()},
            "per_task": per_task,
        }


def stress_predict_summary(root: str | os.PathLike, subjects: Sequence[str] | None = None) -> dict:
    """Every real-data number of the calibration table, from the Stress-Predict folder ``root``.

    Parameters
    ----------
    root : str or os.PathLike
        The Stress-Predict E4 folder (``Raw_data/S01`` … and the labels).
    subjects : sequence of str, optional
        Participants to include (default: every one found).

    Returns
    -------
    dict
        Quartiles (25/50/75 %) across participants (``rest_*``, ``scr_*``, ``hr_slow_sd_bpm``)
    or across task blocks (``task_*``, ``null_*``), the fitted time courses (``hr_onset``, ``hr_offset``,
    ``scl_onset``, ``scl_offset``: dicts of ``A``, ``delay_s``, ``tau_s``) and the event-locked means
    they were fitted to (``locked``), ``per_task`` quartiles of ΔHR and relative ΔSCL, and the counts
    ``participants`` and ``task_blocks``.

    Examples
    --------
    >>> real = stress_predict_summary("../shared/data/stress_predict_e4")  # doctest: +SKIP
    >>> real["task_dhr_bpm"]  # doctest: +SKIP
    """
    from .e4 import StressPredict

    ds = StressPredict(root)
    acc = _Collector()
    for subject in (list(subjects) if subjects is not None else ds.subjects()):
        rec = ds.load(subject)
        if rec.labels is None:
            continue
        blocks = label_blocks(rec.labels.timestamps, rec.labels.values, rec.labels.end)
        hr, eda, ibi = rec.track("DeviceHR"), rec.track("EDA"), rec.track("IBI")
        acc.add(blocks, hr.timestamps, hr.data[:, 0], eda.timestamps, eda.data[:, 0], eda.info.nominal_rate,
                ibi.timestamps if ibi is not None else None, ibi.data[:, 0] if ibi is not None else None)
    return acc.summary()


def simulated_summary(n: int = 20, seed: int = 0, protocol: Sequence[tuple[str, float]] = PROTOCOL) -> dict:
    """The same measures on ``n`` simulated viewers put through the Stress-Predict timetable: a rest
    block is a scene of intensity 0 (tone ``rest``), a stress task one of intensity 1 (its own tone),
    each block its own scene. Heart rate is the simulated beats' rate at 1 Hz, skin conductance the
    simulated wrist EDA at 4 Hz (the E4's rate).

    Parameters
    ----------
    n : int
        Number of simulated viewers (drawn from the population with ``seed``).
    seed : int
        Seed of the audience.
    protocol : sequence of (str, float)
        The timetable as (block, duration s); ``rest`` blocks are calm scenes, any other a stress task.

    Returns
    -------
    dict
        The same keys as :func:`stress_predict_summary`.

    Examples
    --------
    >>> sim = simulated_summary(n=20, seed=0)  # doctest: +SKIP
    """
    from engage.sensors.simulated import SimulatedAudience

    edges = np.concatenate([[0.0], np.cumsum([d for _, d in protocol])])
    end = float(edges[-1])
    lab_t = np.arange(0.0, end)
    labels = np.zeros_like(lab_t)
    for (kind, _), a, b in zip(protocol, edges[:-1], edges[1:]):
        if kind != "rest":
            labels[(lab_t >= a) & (lab_t < b)] = 1
    blocks = label_blocks(lab_t, labels, end)
    acc = _Collector()
    for viewer in SimulatedAudience(n, seed=seed, sensors=("eda",), eda_rate=4.0):
        for i, ((kind, _), a) in enumerate(zip(protocol, edges[:-1])):
            viewer.on_scene(0.0 if kind == "rest" else 1.0, kind, timestamp=float(a), scene=f"{kind}-{i}")
        chunks = viewer.read(end)
        et = np.concatenate([c.timestamps for c in chunks])
        ex = np.concatenate([c.data[:, 0] for c in chunks])
        beats = np.asarray(viewer.true_beats)
        rr = np.diff(beats)
        ht = np.arange(10.0, end)
        acc.add(blocks, ht, np.interp(ht, beats[1:], 60.0 / rr), et, ex, 4.0, beats[1:], rr)
    return acc.summary()


def figure(real: dict, sim: dict, path: str | os.PathLike) -> str:
    """Event-locked mean heart rate and SCL at task onsets and offsets, real against simulated (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres = BIN_EDGES[:-1] + 5.0
    fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=True)
    for ax, key, label in zip(axes.flat, ("hr_onset", "hr_offset", "scl_onset", "scl_offset"),
                              ("ΔHR (bpm), task onset", "ΔHR (bpm), task end", "ΔSCL / SCL, task onset",
                               "ΔSCL / SCL, task end")):
        ax.plot(centres, real["locked"][key], "k-", label="Stress-Predict (19 participants)")
        ax.plot(centres, sim["locked"][key], "-", color="tab:red", label=f"simulated ({sim['participants']} viewers)")
        ax.axvline(0, color="grey", lw=0.8)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(label, fontsize=10)
    for ax in axes[1]:
        ax.set_xlabel("s from the label change")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Simulated viewer vs Stress-Predict: mean response to the stress tasks", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


#: (key in the summary, what it is, unit, decimals) in the order of the calibration table.
TABLE_ROWS = (
    ("rest_hr_bpm", "resting heart rate (per participant)", "bpm", 1),
    ("rest_scl_us", "resting wrist SCL (per participant)", "µS", 2),
    ("task_dhr_bpm", "ΔHR, stress task - pre-task rest (per block)", "bpm", 1),
    ("task_dscl_rel", "ΔSCL / pre-task SCL (per block)", "ratio", 2),
    ("task_dscl_us", "ΔSCL (per block)", "µS", 3),
    ("null_dhr_bpm", "ΔHR with no task (inside the final rest)", "bpm", 1),
    ("null_dscl_rel", "ΔSCL / SCL with no task (inside the final rest)", "ratio", 2),
    ("hr_slow_sd_bpm", "SD of 30-s heart rate at rest (E4 beats, ≥ 80 % coverage)", "bpm", 1),
    ("scr_rest_per_min", "SCRs ≥ 0.01 µS per minute at rest", "1/min", 1),
    ("scr_task_per_min", "SCRs ≥ 0.01 µS per minute in tasks", "1/min", 1),
    ("scr_amp_rel", "median SCR amplitude / SCL at rest", "ratio", 3),
)
STEP_ROWS = (("hr_onset", "bpm"), ("hr_offset", "bpm"), ("scl_onset", "ratio"), ("scl_offset", "ratio"))


def markdown_rows(summary: dict) -> list[str]:
    """The real-data rows of the calibration table, as Markdown table rows."""
    lines = []
    for key, what, unit, dec in TABLE_ROWS:
        q = summary[key]
        lines.append(f"| `{key}` | {what} | {q[1]:.{dec}f} ({q[0]:.{dec}f} … {q[2]:.{dec}f}) | {unit} |")
    for key, unit in STEP_ROWS:
        f = summary[key]
        lines.append(f"| `{key}` | mean time course, delayed first-order fit | A {f['A']:.{3 if unit == 'ratio' else 1}f}, "
                     f"delay {f['delay_s']:.0f} s, tau {f['tau_s']:.0f} s | {unit} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engage.datasets.stress_responses",
                                description="Recompute the real-data rows of the simulated viewer's calibration "
                                            "table (sensors/simulated.md) from Stress-Predict.")
    p.add_argument("root", nargs="?", default=os.path.join(os.environ.get("ENGAGE_TEST_DATA", "../shared/data"),
                                                            "stress_predict_e4"),
                   help="the Stress-Predict folder (default: $ENGAGE_TEST_DATA/stress_predict_e4)")
    p.add_argument("--simulated", type=int, default=0, metavar="N",
                   help="also put N simulated viewers through the same timetable and print them beside it")
    p.add_argument("--seed", type=int, default=0, help="the simulated audience's seed (default: 0)")
    p.add_argument("--figure", metavar="PNG", help="with --simulated: plot the mean time courses, real vs simulated")
    args = p.parse_args(argv)
    from .base import DatasetError

    try:
        s = stress_predict_summary(args.root)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Stress-Predict: {s['participants']} participants, {s['task_blocks']} task blocks; "
          "median (25th … 75th percentile)\n")
    print("| key | measure | value | unit |\n|---|---|---|---|")
    print("\n".join(markdown_rows(s)))
    print("\nper task: ΔHR bpm, ΔSCL/SCL (median, quartiles)")
    for name, q in s["per_task"].items():
        print(f"  {name:17s} ΔHR {q['dhr'][1]:+.1f} ({q['dhr'][0]:+.1f} … {q['dhr'][2]:+.1f})   "
              f"ΔSCL {q['dscl_rel'][1]:+.2f} ({q['dscl_rel'][0]:+.2f} … {q['dscl_rel'][2]:+.2f})")
    if args.simulated:
        sim = simulated_summary(args.simulated, args.seed)
        print(f"\nsimulated: {sim['participants']} viewers through the same timetable, same measures\n")
        print("| key | Stress-Predict | simulated |\n|---|---|---|")
        for key, _, _, dec in TABLE_ROWS:
            r, m = s[key], sim[key]
            print(f"| `{key}` | {r[1]:.{dec}f} ({r[0]:.{dec}f} … {r[2]:.{dec}f}) | {m[1]:.{dec}f} ({m[0]:.{dec}f} … {m[2]:.{dec}f}) |")
        for key, _ in STEP_ROWS:
            r, m = s[key], sim[key]
            print(f"| `{key}` | delay {r['delay_s']:.0f} s, tau {r['tau_s']:.0f} s | delay {m['delay_s']:.0f} s, "
                  f"tau {m['tau_s']:.0f} s |")
        if args.figure:
            print(f"\nfigure: {figure(s, sim, args.figure)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
