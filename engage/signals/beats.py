"""Causal, stateful beat detectors for ECG (R peaks) and PPG (pulse peaks).

Both detectors keep every bit of their state between calls and do their per-sample decisions
in one compiled loop (numba), so the beats are *exactly* the same whatever the chunk size
(1 sample, 7, 256 or the whole signal) and the cost stays well under 2 µs per sample.

ECG (:class:`EcgBeatDetector`): the signal is high-passed at 0.5 Hz (baseline wander) and
band-passed at 5–15 Hz (QRS energy); the QRS feature is the absolute slope of the band-passed
signal averaged over 100 ms. Candidate QRS regions are where the feature exceeds half of an
adaptive threshold (Pan–Tompkins signal and noise levels); a region also ends at a valley of the
feature under half its peak once the feature has doubled again from it, so the beats of a
ventricular run, or a normal beat right after a wide premature one, are separate regions even when
the feature never falls in between. A region whose peak passes the full threshold is a beat; so is
one over half of it, past the refractory period and no T wave, whose wave in the signal is a QRS
complex (at least half as prominent as the usual R wave, and as narrow, or of the opposite polarity:
the wide ventricular beats and small beats of atrial fibrillation whose QRS energy is no higher than
the noise's); any other is kept as a search-back candidate when no beat follows for 1.66 mean RR
intervals.
The signal level is the median feature peak of the last 8 beats, so the large, wide ventricular
beats of bigeminy or a run do not lift the threshold over the normal beats between them. A region
whose feature stays above the full threshold for longer than 0.5 s is a noise burst, not a QRS (a
region that merely starts early on noise is still a beat). A 200 ms refractory period (up to 0.4
mean RR, except for a region with more QRS energy than the last beat and the usual one), a T-wave
test within 360 ms of a beat (a repolarisation is slower than its QRS: under half its QRS energy and
1.5 times as wide, or a wave under 15 % of the beat's size; never, after a ventricular beat, a wave
of that beat's polarity: its T wave is discordant) and a cap on how much one region may raise the
signal level make it robust; after 3 s without a beat the signal
level decays so a weaker signal is found again. The levels are learnt on the first 2 s of good
signal (NaN and flat stretches start the learning anew).

The R peak is the steepest local extreme (largest prominence per sample of width at half prominence) of
the signal high-passed at 0.5 Hz *with zero phase* (forwards and backwards over the last 3 s,
recomputed for each QRS: a causal high-pass shifts wide waves by tens of milliseconds) and smoothed
over one 50 Hz period, within the stretch where the QRS energy is above half its maximum, mapped back
by the feature's delay (half the 100 ms box plus the band-pass's group delay). It is a maximum, or a
minimum when the stream's QRS complexes are mostly inverted, unless the opposite polarity holds the
beat's main deflection (a ventricular beat of the opposite polarity: the cardiologists' fiducial point
is that deflection, not the small wave before it; after a ventricular beat, the next one's is the more
prominent of its two waves when its usual-polarity one is wide: the second beat of a couplet). A
search-back beat is taken only once its candidate is a refractory period old, so a real QRS right
after a sub-threshold bump wins. ``finish()`` decides
on a QRS complex still open when the stream ends.

Two QRS complexes cannot come within the 200 ms refractory period, so a beat is output only once that period is
over (about 0.3 s after its R peak): a wave of the usual polarity in it, 120 ms or more after the beat (past its
complex), with a full QRS energy and the size and width of a QRS, that is more like the stream's usual R wave than the
beat's own wave, is the beat instead (an electrode spike taken for a beat no longer hides the real beat after it), and
what the first one taught the levels is undone.

Ventricular flutter and fibrillation have waves, not beats. The refractory period and the noise-burst rule
drop most of their waves, so the beats the detector would take there are irregular (intervals of 0.23-2 s)
and show no run of short intervals; the waves themselves are counted instead, on the high-passed signal
averaged over 60 ms (maxima that rise and fall by 0.4 of the usual R wave). Eight wave intervals in a row
that come on average under 0.24 s apart (over 250 a minute, faster than any organised ventricular rhythm:
ventricular tachycardia runs up to about 250, flutter at 250-350) with no isoelectric line between them
(the QRS energy stays over 0.3 of its maximum on average; it falls back to the baseline between a QRS
complex and its T wave, which a fast sinus rhythm puts 0.2 s apart) are an episode: its beats are not
output. The beats of a fast run are held from its second fast interval until it either becomes an episode
(they are dropped) or breaks (they are output unchanged), so the beats of any other rhythm come out as
before, with no added delay (on the seven shared MIT-BIH records one beat of 17,374 waited, 0.36 s; waves
under 0.12 s apart on average are noise, not fibrillation). An episode
ends when its waves slow (on average over 0.27 s apart, one over 0.36 s, or none for 0.48 s), unless the
next two come fast again with no isoelectric line (a low stretch of fibrillation): the beats in between are
held until then, and after the episode the first beat carries its interval as bad signal (a gap in heart
rate and HRV).

PPG (:class:`PpgBeatDetector`): Elgendi's two-moving-averages method made causal: band-pass
0.5–8 Hz, clip negative, square, and mark blocks where the 111 ms average exceeds the 667 ms
average plus 2 % of the signal level; a block longer than the 111 ms window holds one pulse
peak (its maximum), 300 ms refractory.

Samples that are not finite are held at the last good value and flagged; runs of identical
samples longer than 0.25 s (flat line, lead off, clipping) are flagged too. Every beat carries
the fraction of flagged samples in the interval before it as its ``bad`` value.

>>> import numpy as np, neurokit2 as nk
>>> ecg = nk.ecg_simulate(duration=20, sampling_rate=250, heart_rate=60, random_state=1)
>>> det = EcgBeatDetector(250.0)
>>> idx = np.concatenate([det.process(part)[0] for part in np.array_split(ecg, 7)])
>>> 17 <= len(idx) <= 20
True
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["EcgBeatDetector", "PpgBeatDetector", "detect_ecg_beats", "detect_ppg_beats"]

#: waves of the signal under this (s) apart come faster than any organised ventricular rhythm (250 a minute: ventricular
#: tachycardia runs at 100-250, flutter at 250-350, fibrillation's waves at 240-600)
FLUTTER_RR_S = 0.24
#: a maximum closer than this (s, 750 a minute) to the last wave is part of it (a notch), not another wave
FLUTTER_MIN_S = 0.08
#: this many wave intervals in a row, on average under ``FLUTTER_RR_S`` apart (about 2 s of waves), are an episode
FLUTTER_WAVES = 8
#: a wave swings by at least this fraction of the stream's usual R wave both ways (a T wave, P wave or the small
#: F waves of atrial flutter do not; flutter and fibrillation waves are as large as QRS complexes)
FLUTTER_SWING = 0.4
#: an episode goes on while its waves come on average under this (s) apart (220 a minute: the fastest ventricular
#: tachycardia; fibrillation's waves vary in rate, and those too small to count leave longer intervals)
FLUTTER_END_RR_S = 0.27
#: flutter and fibrillation have no isoelectric line: between two of their waves the QRS energy stays, on average
#: over the last ``FLUTTER_WAVES``, over this fraction of its maximum (it falls back to the baseline between a QRS
#: complex and its T wave: under 0.15 on average, against about 0.5 in flutter and fibrillation)
FLUTTER_FLOOR = 0.3
#: waves on average under this (s) apart (500 a minute) are noise: fibrillation's waves come at 3-8 Hz
FLUTTER_NOISE_RR_S = 0.12
#: after an episode, no wave for this long (s) more ends it (the rhythm after it may have no wave as large)
FLUTTER_PAUSE_S = 1.0
#: waves are counted on the high-passed signal averaged over this (s): flutter and fibrillation waves (3-8 Hz) keep
#: most of their size, a QRS complex half of it, and spikes of noise hardly any
FLUTTER_SMOOTH_S = 0.06
# ---- state layout (floats) ----
_F_SPK, _F_NPK, _F_LASTFP, _F_RRAVG, _F_GSUM, _F_PREVB, _F_RPEAK, _F_CANDFP, _F_WMAX, _F_WSUM, _F_PREVX, \
    _F_LASTGOOD, _F_POL, _F_PPROM, _F_PSTEEP, _F_PSIGN, _F_VALLEY, _F_POSTMAX, _F_LASTPROM, _F_LASTSTEEP, \
    _F_LASTSIGN, _F_RPROM, _F_RSTEEP, _F_WEXT = range(24)
_F_LEV = 24  # the last _NLEV beats' feature peaks (a ring): the signal level is their median
_NLEV = 8
# the state a beat changes that a later, better QRS within its refractory period restores before taking its place
_F_BKRPROM, _F_BKRSTEEP, _F_BKRRAVG, _F_BKLEV, _F_BKSPK = range(_F_LEV + _NLEV, _F_LEV + _NLEV + 5)
_NQ = 24  # the output queue: beats decided but not yet output (their index and bad value)
_F_QBAD = _F_LEV + _NLEV + 5
_F_WSUM_X = _F_QBAD + _NQ  # the running sum of the high-passed signal over ``FLUTTER_SMOOTH_S``
_F_WSCALE = _F_WSUM_X + 1  # the usual R wave's prominence before the run of fast waves
_F_WRAT = _F_WSCALE + 1  # the QRS energy's minimum over its maximum between the last FLUTTER_WAVES waves (a ring)
_NF = _F_WRAT + FLUTTER_WAVES
# ---- state layout (ints) ----
_I_N, _I_INREG, _I_RSTART, _I_LASTBEAT, _I_CANDIDX, _I_WARM, _I_RUN, _I_BADCNT, _I_NBEATS, _I_HAVEPREV, \
    _I_CANDBAD, _I_PEAKIDX, _I_ABOVE, _I_VALLEYIDX, _I_POSTMAXIDX, _I_NLEV, _I_FIRST, _I_WEXTIDX, _I_EPIS, \
    _I_BKLAST, _I_BKNLEV, _I_QN, _I_NREPL, _I_BKBAD, _I_BKAFTER, _I_WDIR, _I_WLASTMAX, _I_WRUN, _I_WSTART, _I_AFTER, \
    _I_NEPIS, _I_WFAST, _I_WIVSUM, _I_WHOLD, _I_WCONF, _I_WPEND = range(36)
_I_Q = 36
_I_WIV = _I_Q + _NQ  # the intervals of the last FLUTTER_WAVES waves (a ring)
_NI = _I_WIV + FLUTTER_WAVES
#: a QRS complex is over this long (s) after its R peak: a wave later than this but within the 0.2 s refractory period
#: is another complex, and only one of the two can be a beat
REPLACE_GAP_S = 0.12


@njit(cache=True, nogil=True)
def _smoothed(zp, k, half):  # pragma: no cover - compiled
    """The high-passed signal at ``k`` smoothed by a centred triangular kernel of ``2 half - 1`` samples (the
    zero-phase moving average over one 50 Hz period that NeuroKit2's ``ecg_clean`` applies)."""
    acc = 0.0
    for i in range(-(half - 1), half):
        acc += (half - abs(i)) * zp[k + i]
    return acc / (half * half)


@njit(cache=True, nogil=True)
def _zero_phase_hp(ring_x, size, s0, n, sos, pad, zp, tmp):  # pragma: no cover - compiled
    """Zero-phase high-pass (forward then backward, as ``scipy.signal.sosfiltfilt`` with odd padding at the end)
    of the raw samples ``s0 .. n`` held in the ring; ``zp[k - s0]`` is sample ``k``'s value."""
    m = n - s0 + 1
    tot = m + pad
    for k in range(m):
        tmp[k] = ring_x[(s0 + k) % size]
    last = tmp[m - 1]
    for k in range(pad):
        tmp[m + k] = 2.0 * last - tmp[max(0, m - 2 - k)]
    ns = sos.shape[0]
    zi = np.zeros((ns, 2))
    y = tmp[:tot]
    for direction in range(2):
        # steady-state initial conditions for the first input value (scipy's sosfilt_zi times it)
        x0 = y[0]
        for sec in range(ns):
            b0, b1, b2, a1, a2 = sos[sec, 0], sos[sec, 1], sos[sec, 2], sos[sec, 4], sos[sec, 5]
            # zi for a unit step through this section: solve the TDF-II steady state
            g = (b0 + b1 + b2) / (1.0 + a1 + a2)
            zi[sec, 0] = (g - b0) * x0
            zi[sec, 1] = (b2 - a2 * g) * x0
            x0 = g * x0
        y = _sosfilt(sos, y, zi)[::-1].copy()  # the second pass runs on the time-reversed first one
    for k in range(m):
        zp[k] = y[k]


@njit(cache=True, nogil=True)
def _steepest(work, m, i0, i1, sign, out):  # pragma: no cover - compiled
    """The steepest local extreme (maximum for ``sign`` 1, minimum for -1) of ``work[:m]`` whose middle lies in
    ``[i0, i1]``: ``out`` gets (position, steepness = prominence / width at half prominence, prominence); position
    -1 when there is none. Prominences and widths are measured over the whole ``work[:m]``."""
    out[0], out[1], out[2] = -1.0, -1.0, 0.0
    i = max(1, i0)
    last = min(m - 2, i1)
    while i <= last:
        v = sign * work[i]
        if sign * work[i - 1] < v:
            j = i  # a plateau: its middle is the peak (as scipy.signal.find_peaks)
            while j + 1 < m - 1 and sign * work[j + 1] == v:
                j += 1
            if sign * work[j + 1] < v:
                left = v
                a = i - 1
                while a >= 0 and sign * work[a] <= v:
                    if sign * work[a] < left:
                        left = sign * work[a]
                    a -= 1
                right = v
                b = j + 1
                while b < m and sign * work[b] <= v:
                    if sign * work[b] < right:
                        right = sign * work[b]
                    b += 1
                prom = v - max(left, right)
                # its width at half prominence (interpolated, as scipy.signal.peak_widths)
                h = v - 0.5 * prom
                a = i - 1
                while a > 0 and sign * work[a] > h:
                    a -= 1
                b = j + 1
                while b < m - 1 and sign * work[b] > h:
                    b += 1
                wa, wa1, wb, wb1 = sign * work[a], sign * work[a + 1], sign * work[b], sign * work[b - 1]
                left_x = a + (h - wa) / (wa1 - wa) if wa1 != wa else float(a)
                right_x = b - (h - wb) / (wb1 - wb) if wb1 != wb else float(b)
                steep = prom / max(right_x - left_x, 1.0)
                if steep > out[1] and (i + j) // 2 <= i1:
                    out[0], out[1], out[2] = float((i + j) // 2), steep, prom
            i = j + 1
        else:
            i += 1


@njit(cache=True, nogil=True)
def _place_r(zp, s0, lo, hi, lo2, hi2, sf, half, work):  # pragma: no cover - compiled
    """Index (absolute) of the R peak in [lo, hi]: the steepest local extreme of the (smoothed) high-passed signal
    - the largest prominence per sample of its width at half prominence - of the stream's usual QRS polarity (a
    running vote over the beats), unless the opposite polarity holds a deflection more than twice as prominent and
    steeper (a ventricular beat of the opposite polarity: its main deflection is the beat); the window's extreme
    when it holds no local extreme. The R wave is the sharpest wave of a beat: a motion or T wave beside it can
    be more prominent but is wider. Prominences and widths are measured over the wider [lo2, hi2] so a peak near
    the window's edge is not judged on half its base."""
    m = hi2 - lo2 + 1
    mean = 0.0
    vmax = -1e300
    vmin = 1e300
    imax = lo
    imin = lo
    for k in range(lo2, hi2 + 1):
        v = _smoothed(zp, k - s0, half)
        work[k - lo2] = v
        if lo <= k <= hi:
            mean += v
            if v > vmax:
                vmax = v
                imax = k
            if v < vmin:
                vmin = v
                imin = k
    mean /= max(1, hi - lo + 1)
    vote = -1.0 if (mean - vmin) > 1.4 * (vmax - mean) else 1.0
    sf[_F_POL] = 0.9 * sf[_F_POL] + 0.1 * vote
    sign = -1.0 if sf[_F_POL] < 0.0 else 1.0
    usual = np.empty(3)
    other = np.empty(3)
    _steepest(work, m, lo - lo2, hi - lo2, sign, usual)
    _steepest(work, m, lo - lo2, hi - lo2, -sign, other)
    # the opposite polarity wins when it holds the beat's main deflection (four times as prominent, half as steep again)
    # and the usual one holds no R wave of the stream's usual size (a motion wave beside a normal R wave is not a
    # ventricular beat); or, right after a ventricular beat of the opposite polarity, when the usual one is no R wave
    # (half as wide again as the usual R) and the opposite one is more prominent: the next ventricular beat of a couplet
    # or run, whose main deflection follows the wide wave that ends the last one
    wide = usual[0] >= 0 and sf[_F_RSTEEP] > 0.0 and usual[2] / usual[1] > 1.5 * sf[_F_RPROM] / sf[_F_RSTEEP]
    if other[0] >= 0 and (usual[0] < 0 or (other[2] > 4.0 * usual[2] and other[1] > 1.5 * usual[1]
                                           and usual[2] < 0.5 * sf[_F_RPROM])
                          or (wide and sf[_F_LASTSIGN] == -sign and other[2] > usual[2])):
        sf[_F_PPROM], sf[_F_PSTEEP], sf[_F_PSIGN] = other[2], other[1], -sign
        return lo2 + int(other[0])
    if usual[0] >= 0:
        sf[_F_PPROM], sf[_F_PSTEEP], sf[_F_PSIGN] = usual[2], usual[1], sign
        return lo2 + int(usual[0])
    sf[_F_PPROM], sf[_F_PSTEEP], sf[_F_PSIGN] = 0.0, 0.0, sign
    return imin if sign < 0 else imax



@njit(cache=True, nogil=True)
def _push_level(sf, si, fp):  # pragma: no cover - compiled
    """A beat's feature peak joins the ring of the last beats; the signal level becomes their median (so the
    large, wide ventricular beats of bigeminy or a run do not lift the threshold over the normal beats)."""
    k = si[_I_NLEV]
    sf[_F_LEV + k % _NLEV] = fp
    si[_I_NLEV] = k + 1
    m = min(k + 1, _NLEV)
    vals = np.sort(sf[_F_LEV:_F_LEV + m])
    sf[_F_SPK] = 0.5 * (vals[(m - 1) // 2] + vals[m // 2])


@njit(cache=True, nogil=True)
def _queue(si, sf, r, bad):  # pragma: no cover - compiled
    """A beat joins the output queue (it is output once no better QRS can take its place, see ``_flush``)."""
    k = si[_I_QN]
    if k == _NQ:  # never reached: beats are at least 0.2 s apart and wait under 0.8 s
        return
    si[_I_Q + k] = r
    sf[_F_QBAD + k] = bad
    si[_I_QN] = k + 1


@njit(cache=True, nogil=True)
def _flush(n, every, wait, si, sf, out_idx, out_bad, nout):  # pragma: no cover - compiled
    """Output the queued beats ``wait`` samples old (all of them when ``every``), oldest first; a beat within a run of
    waves too fast for a ventricular rhythm is held until the run either breaks or becomes an episode
    (``_wave_max``)."""
    k = 0
    while k < si[_I_QN] and (every or (n - si[_I_Q + k] > wait
                                       and not (si[_I_WFAST] == 1 and si[_I_Q + k] >= si[_I_WHOLD]))):
        out_idx[nout] = si[_I_Q + k]
        out_bad[nout] = sf[_F_QBAD + k]
        nout += 1
        k += 1
    if k > 0:
        m = si[_I_QN] - k
        for i in range(m):
            si[_I_Q + i] = si[_I_Q + k + i]
            sf[_F_QBAD + i] = sf[_F_QBAD + k + i]
        si[_I_QN] = m
    return nout


@njit(cache=True, nogil=True)
def _emit(r, rr, fs, si, sf):  # pragma: no cover - compiled
    """Output a beat at ``r`` (``rr`` samples after the last one) unless it is a flutter or fibrillation wave (within
    an episode, see ``_wave_max``); the first beat after an episode carries its interval as bad signal. Output beats go
    through the queue."""
    bad = min(1.0, si[_I_BADCNT] / max(1.0, float(min(rr, 3 * fs))))
    si[_I_BKBAD], si[_I_BKAFTER] = si[_I_BADCNT], si[_I_AFTER]  # (to undo it, see ``_close_region``)
    si[_I_BADCNT] = 0
    if si[_I_EPIS] > 0 and si[_I_WSTART] <= r and (si[_I_EPIS] == 1 or r < si[_I_WHOLD]):
        return
    if si[_I_AFTER] == 1:
        bad = 1.0
        si[_I_AFTER] = 0
    _queue(si, sf, r, bad)


@njit(cache=True, nogil=True)
def _drop_from(si, r0):  # pragma: no cover - compiled
    """Drop the queued beats at ``r0`` and after: they were flutter or fibrillation waves."""
    k = 0
    while k < si[_I_QN] and si[_I_Q + k] < r0:
        k += 1
    si[_I_QN] = k


@njit(cache=True, nogil=True)
def _run_break(si, sf):  # pragma: no cover - compiled
    """The run of fast waves is over: its held beats are output; after an episode, the first of them (or the next
    beat) carries its interval, which spans the episode, as bad signal."""
    if si[_I_EPIS] > 0:
        k = 0
        while k < si[_I_QN] and si[_I_Q + k] < si[_I_WHOLD]:
            k += 1
        if k < si[_I_QN]:
            sf[_F_QBAD + k] = 1.0
        else:
            si[_I_AFTER] = 1
    si[_I_EPIS] = 0
    si[_I_WRUN] = 0
    si[_I_WIVSUM] = 0
    si[_I_WFAST] = 0


_S_FAST, _S_MIN, _S_END, _S_TOL, _S_PAUSE, _S_NOISE = range(6)


@njit(cache=True, nogil=True)
def _wave_samples(fs):  # pragma: no cover - compiled
    """The flutter rule's durations in samples at ``fs`` Hz (indexed by ``_S_*``)."""
    ns = np.empty(6, dtype=np.int64)
    ns[_S_FAST] = int(round(FLUTTER_RR_S * fs))
    ns[_S_MIN] = int(round(FLUTTER_MIN_S * fs))
    ns[_S_END] = int(round(FLUTTER_END_RR_S * fs))
    ns[_S_TOL] = int(round(0.05 * fs))  # a beat this close after a wave's maximum is that wave's
    ns[_S_PAUSE] = int(round(FLUTTER_PAUSE_S * fs))
    ns[_S_NOISE] = int(round(FLUTTER_NOISE_RR_S * fs))
    return ns


@njit(cache=True, nogil=True, inline="always")
def _wave_timeout(n, si, sf, ns):  # pragma: no cover - compiled
    """No wave for a while at sample ``n``: a run breaks, an episode may be over.

    The waves of the high-passed signal averaged over ``FLUTTER_SMOOTH_S`` are counted in ``_ecg_kernel`` (their
    maxima, ``_wave_max``), to find flutter and fibrillation.

    A maximum is a wave once the signal has risen to it and fallen from it by ``FLUTTER_SWING`` of the usual R wave
    (one closer than ``FLUTTER_MIN_S`` to the last wave is a notch of it). Waves under 2.5 ``FLUTTER_RR_S`` apart make
    a run; a run whose waves come on average (over the last ``FLUTTER_WAVES``, at least two) under ``FLUTTER_RR_S``
    apart (but not under ``FLUTTER_NOISE_RR_S``: noise) with no isoelectric line between them (``FLUTTER_FLOOR``) is
    faster than any organised ventricular rhythm,
    and ``FLUTTER_WAVES`` intervals of it are an episode of ventricular flutter or fibrillation: waves with no QRS
    complex to find (the refractory period drops every other wave, so the beats the detector takes there are irregular
    and far fewer than the waves, and no run of short beat intervals shows). ``ns`` holds the rule's durations in
    samples (``_wave_samples``).

    The beats of a fast run are held (``_flush``), and dropped when it becomes an episode; a run that slows or breaks
    first releases them unchanged. In an episode every beat is dropped (waves half as large count: fibrillation waxes
    and wanes) until the waves slow (an interval of 1.5 ``FLUTTER_RR_S`` or more, their mean over
    ``FLUTTER_END_RR_S``, or no wave for 2 ``FLUTTER_RR_S``): the beats from the last fast wave on are then held, and
    dropped if the two intervals after the next wave are fast again with no isoelectric line (a low stretch of
    fibrillation), or released at the first other one or when no wave comes for ``FLUTTER_PAUSE_S`` more (the rhythm
    after the episode, its first beat marked bad)."""
    since = n - si[_I_WLASTMAX]
    if si[_I_EPIS] == 1 and since > 2 * ns[_S_FAST]:  # no wave: the episode may be over
        si[_I_EPIS] = 2
        si[_I_WHOLD] = si[_I_WLASTMAX] + ns[_S_TOL]
    elif since > (2 * ns[_S_FAST] + ns[_S_PAUSE] if si[_I_EPIS] > 0 else 5 * ns[_S_FAST] // 2):
        _run_break(si, sf)


@njit(cache=True, nogil=True, inline="always")
def _swing(si, sf):  # pragma: no cover - compiled
    """How far a wave rises and falls: ``FLUTTER_SWING`` of the usual R wave (as it was before the run of fast waves:
    those taken for beats must not set their own scale), half of it in an episode (fibrillation waxes and wanes) but
    not once its waves slowed (the P and T waves of the rhythm after it must not count)."""
    if si[_I_WFAST] == 0:
        return FLUTTER_SWING * sf[_F_RPROM]
    return sf[_F_WSCALE] * (0.5 * FLUTTER_SWING if si[_I_EPIS] == 1 else FLUTTER_SWING)


@njit(cache=True, nogil=True)
def _floor(n, n0, ring_f):  # pragma: no cover - compiled
    """The QRS energy's least over its greatest value from sample ``n0`` to ``n`` (at most the ring's length back): high
    when there is no isoelectric line between two waves."""
    size = ring_f.shape[0]
    a = max(n0, n - size + 1)
    fmin = fmax = ring_f[n % size]
    i0 = a % size
    i1 = n % size
    for seg in range(2):  # the ring's stretch from a to n, in at most two contiguous parts
        lo = i0 if seg == 0 else 0
        hi = (i1 if i1 >= i0 else size) if seg == 0 else (i1 if i1 < i0 else 0)
        for i in range(lo, hi):
            v = ring_f[i]
            if v < fmin:
                fmin = v
            elif v > fmax:
                fmax = v
    return fmin / fmax if fmax > 0.0 else 0.0


@njit(cache=True, nogil=True)
def _wave_max(n, m, si, sf, ns, ring_f):  # pragma: no cover - compiled
    """A wave's maximum at ``m`` is confirmed at ``n`` (see ``_wave_timeout``): the run, the episode and the held
    beats follow."""
    fast = ns[_S_FAST]
    iv = m - si[_I_WLASTMAX]
    if iv < ns[_S_MIN]:
        return  # a notch of the last wave
    if si[_I_EPIS] == 2:  # the first wave after the waves slowed or stopped
        si[_I_EPIS] = 3
        si[_I_WPEND] = 0
    elif si[_I_EPIS] == 3:  # the next ones: does the episode go on (two fast intervals in a row) or not (a slow one)?
        if iv >= fast or _floor(n, si[_I_WCONF], ring_f) <= FLUTTER_FLOOR:
            _run_break(si, sf)
        elif si[_I_WPEND] == 1:
            _drop_from(si, si[_I_WHOLD])
            si[_I_EPIS] = 1
        else:
            si[_I_WPEND] = 1
    elif iv < 5 * fast // 2 or si[_I_EPIS] == 1:
        k = si[_I_WRUN]
        if k >= FLUTTER_WAVES:
            si[_I_WIVSUM] -= si[_I_WIV + k % FLUTTER_WAVES]
        si[_I_WIV + k % FLUTTER_WAVES] = iv
        si[_I_WIVSUM] += iv
        si[_I_WRUN] = k + 1
        sf[_F_WRAT + k % FLUTTER_WAVES] = _floor(n, si[_I_WCONF], ring_f)
        m_ = min(k + 1, FLUTTER_WAVES)
        floor = 0.0
        for i in range(m_):
            floor += sf[_F_WRAT + i]
        quick = m_ >= 2 and m_ * ns[_S_NOISE] <= si[_I_WIVSUM] < m_ * fast and floor > FLUTTER_FLOOR * m_
        if si[_I_EPIS] == 1:
            if si[_I_WIVSUM] >= m_ * ns[_S_END] or iv >= 3 * fast // 2:
                si[_I_EPIS] = 3
                si[_I_WPEND] = 0
                si[_I_WHOLD] = si[_I_WLASTMAX] + ns[_S_TOL]
        elif quick:
            if si[_I_WFAST] == 0:  # beats from just after this interval's first wave on are held
                si[_I_WSTART] = si[_I_WHOLD] = si[_I_WLASTMAX] + ns[_S_TOL]
                si[_I_WFAST] = 1
                sf[_F_WSCALE] = sf[_F_RPROM]
            if k + 1 >= FLUTTER_WAVES:
                si[_I_EPIS] = 1
                si[_I_NEPIS] += 1
                _drop_from(si, si[_I_WSTART])
        else:
            si[_I_WFAST] = 0
    else:
        _run_break(si, sf)
    si[_I_WCONF] = n
    si[_I_WLASTMAX] = m


@njit(cache=True, nogil=True)
def _same_complex(sf, fp):  # pragma: no cover - compiled
    """Whether the region just placed repeats the last beat's complex and that beat was ventricular (of the
    opposite polarity to the stream's usual R wave, or half as wide again): same polarity, prominence and width
    within a factor 1.5, QRS energy within a factor 2. The next beat of a ventricular run: the rate-dependent part
    of the refractory period does not apply to it (narrow complexes 200-300 ms apart are not a rhythm)."""
    prom, steep = sf[_F_PPROM], sf[_F_PSTEEP]
    lprom, lsteep = sf[_F_LASTPROM], sf[_F_LASTSTEEP]
    if prom <= 0.0 or steep <= 0.0 or lprom <= 0.0 or lsteep <= 0.0 or sf[_F_PSIGN] != sf[_F_LASTSIGN]:
        return False
    width, lwidth = prom / steep, lprom / lsteep
    ventricular = sf[_F_LASTSIGN] * sf[_F_POL] < 0.0 or (sf[_F_RSTEEP] > 0.0
                                                          and lwidth > 1.5 * sf[_F_RPROM] / sf[_F_RSTEEP])
    return (ventricular and lprom / 1.5 < prom < 1.5 * lprom and lwidth / 1.5 < width < 1.5 * lwidth
            and 0.5 * sf[_F_LASTFP] < fp < 2.0 * sf[_F_LASTFP])


@njit(cache=True, nogil=True)
def _t_wave(sf, fp):  # pragma: no cover - compiled
    """Whether a region within the T-wave window after the last beat is that beat's T wave (the placement's
    prominence, steepness and sign are in ``sf``). A T wave is a repolarisation: slower than its QRS (the region's
    QRS energy under half the last beat's and its main wave wider than the last beat's by half), or a wave too
    small to be a QRS (under 15 % of the last beat's prominence). After a ventricular beat (of the opposite polarity
    to the usual R wave) a wave of that same polarity and at least half the usual R wave's size is no T wave: a
    ventricular beat's T wave is discordant, of the polarity opposite to its QRS."""
    prom, steep = sf[_F_PPROM], sf[_F_PSTEEP]
    lprom, lsteep = sf[_F_LASTPROM], sf[_F_LASTSTEEP]
    if prom <= 0.0 or steep <= 0.0 or lprom <= 0.0 or lsteep <= 0.0:
        return fp < 0.5 * sf[_F_LASTFP]
    if sf[_F_LASTSIGN] * sf[_F_POL] < 0.0 and sf[_F_PSIGN] == sf[_F_LASTSIGN] and prom > 0.5 * sf[_F_RPROM]:
        return False  # the next ventricular beat, not the last one's (discordant) T wave
    wider = prom / steep > 1.5 * lprom / lsteep
    return (fp < 0.5 * sf[_F_LASTFP] and wider) or prom < 0.15 * lprom


@njit(cache=True, nogil=True)
def _qrs_sized(sf):  # pragma: no cover - compiled
    """Whether the wave just placed is a QRS complex by its size and shape in the signal (the second channel, as
    Pan-Tompkins confirm on the band-passed signal what the energy shows): at least half as prominent as the stream's
    usual R wave, and no wider than it by half, or of the opposite polarity (a ventricular beat) and at most three
    times as wide. A wide wave of the usual polarity is a T wave; a slow wave of any polarity is motion."""
    prom, steep = sf[_F_PPROM], sf[_F_PSTEEP]
    if prom <= 0.0 or steep <= 0.0 or sf[_F_RPROM] <= 0.0 or sf[_F_RSTEEP] <= 0.0 or prom < 0.5 * sf[_F_RPROM]:
        return False
    ratio = (prom / steep) / (sf[_F_RPROM] / sf[_F_RSTEEP])
    return ratio <= 1.5 or (sf[_F_PSIGN] * sf[_F_POL] < 0.0 and ratio <= 3.0)


@njit(cache=True, nogil=True)
def _apply_beat(r, rr, fp, sf, si):  # pragma: no cover - compiled
    """The levels, the usual R wave and the mean interval learn from the beat just placed at ``r`` (``rr`` after the
    last); what it changes is kept so a better QRS within its refractory period can take its place."""
    si[_I_BKLAST] = si[_I_LASTBEAT]
    sf[_F_BKRPROM], sf[_F_BKRSTEEP], sf[_F_BKRRAVG], sf[_F_BKSPK] = sf[_F_RPROM], sf[_F_RSTEEP], sf[_F_RRAVG], sf[_F_SPK]
    si[_I_BKNLEV] = si[_I_NLEV]
    sf[_F_BKLEV] = sf[_F_LEV + si[_I_NLEV] % _NLEV]
    _push_level(sf, si, min(fp, 3.0 * sf[_F_SPK]))
    sf[_F_LASTFP] = fp
    sf[_F_LASTPROM], sf[_F_LASTSTEEP], sf[_F_LASTSIGN] = sf[_F_PPROM], sf[_F_PSTEEP], sf[_F_PSIGN]
    if sf[_F_PSIGN] * sf[_F_POL] >= 0.0:  # the typical size of the usual R wave
        sf[_F_RPROM] = sf[_F_PPROM] if sf[_F_RPROM] <= 0.0 else 0.875 * sf[_F_RPROM] + 0.125 * sf[_F_PPROM]
        sf[_F_RSTEEP] = sf[_F_PSTEEP] if sf[_F_RSTEEP] <= 0.0 else 0.875 * sf[_F_RSTEEP] + 0.125 * sf[_F_PSTEEP]
    if 0.4 * sf[_F_RRAVG] < rr < 2.0 * sf[_F_RRAVG]:
        sf[_F_RRAVG] = 0.875 * sf[_F_RRAVG] + 0.125 * rr
    si[_I_LASTBEAT] = r
    sf[_F_CANDFP] = 0.0
    si[_I_CANDIDX] = -1


@njit(cache=True, nogil=True)
def _unapply_last(sf, si):  # pragma: no cover - compiled
    """Undo what the last beat taught (``_apply_beat``): it was not a beat."""
    si[_I_LASTBEAT] = si[_I_BKLAST]
    sf[_F_RPROM], sf[_F_RSTEEP], sf[_F_RRAVG], sf[_F_SPK] = sf[_F_BKRPROM], sf[_F_BKRSTEEP], sf[_F_BKRRAVG], sf[_F_BKSPK]
    si[_I_NLEV] = si[_I_BKNLEV]
    sf[_F_LEV + si[_I_NLEV] % _NLEV] = sf[_F_BKLEV]
    si[_I_BKLAST] = -1


@njit(cache=True, nogil=True)
def _more_usual(sf):  # pragma: no cover - compiled
    """Whether the wave just placed is a QRS complex of the usual polarity (at least half as prominent as the usual R
    wave and no wider than it by half, as ``_qrs_sized``) and more like the usual R wave, in prominence and width
    (the sum of their log ratios to it), than the last beat's wave; the usual R wave as it was before that beat."""
    prom, steep, lprom, lsteep = sf[_F_PPROM], sf[_F_PSTEEP], sf[_F_LASTPROM], sf[_F_LASTSTEEP]
    uprom, usteep = sf[_F_BKRPROM], sf[_F_BKRSTEEP]
    if prom <= 0.0 or steep <= 0.0 or lprom <= 0.0 or lsteep <= 0.0 or uprom <= 0.0 or usteep <= 0.0:
        return False
    if sf[_F_PSIGN] * sf[_F_POL] <= 0.0 or prom < 0.5 * uprom or (prom / steep) > 1.5 * (uprom / usteep):
        return False
    unlike = abs(np.log(prom / uprom)) + abs(np.log((prom / steep) / (uprom / usteep)))
    lunlike = abs(np.log(lprom / uprom)) + abs(np.log((lprom / lsteep) / (uprom / usteep)))
    return unlike < lunlike


@njit(cache=True, nogil=True)
def _close_region(n, end, closing, fs, sf, si, ring_c, ring_f, out_idx, out_bad, nout, delay, half, work, sos, zp,
                  tmp, thr, refr, twave):  # pragma: no cover - compiled
    """Decide on the QRS region that started at ``si[_I_RSTART]`` and ends at sample ``end`` (``n`` is now)."""
    size = ring_c.shape[0]
    max_region = int(round(0.5 * fs))
    ext = int(round(0.1 * fs))
    fp = sf[_F_RPEAK]
    # the R peak lies where the QRS energy is: around the feature's maximum, while it stays above half of it
    a = si[_I_PEAKIDX]
    while a > si[_I_RSTART] and ring_f[(a - 1) % size] > 0.5 * fp:
        a -= 1
    b = si[_I_PEAKIDX]
    while b < end and ring_f[(b + 1) % size] > 0.5 * fp:
        b += 1
    lo0 = max(a - delay, n - size + half, half - 1, si[_I_FIRST])
    refr_end = si[_I_LASTBEAT] + int(round(0.2 * fs))
    lo = max(lo0, refr_end)
    hi = n - half + 1 if closing else min(b - delay, n - half + 1)
    if si[_I_ABOVE] > max_region:  # energy above threshold for longer than any QRS: a burst
        sf[_F_NPK] = 0.875 * sf[_F_NPK] + 0.125 * min(fp, sf[_F_SPK])
        return nout
    # the R peak is placed on a zero-phase high-passed copy of the last 3 s (a causal high-pass shifts
    # wide waves by tens of ms: NeuroKit2's ecg_clean filters forwards and backwards)
    s0 = max(n - int(3.0 * fs), n - size + 1, 0)
    # a QRS within the last beat's refractory period, once that beat's complex is over, while it waits in the queue:
    # two QRS complexes cannot be this close, so the one more like the stream's usual R wave is the beat (an
    # electrode spike taken for a beat must not hide the real beat after it)
    q = si[_I_QN] - 1
    queued = q >= 0 and si[_I_Q + q] == si[_I_LASTBEAT]
    rlo = max(lo0, si[_I_LASTBEAT] + int(round(REPLACE_GAP_S * fs)))
    rhi = min(hi, refr_end - 1)
    replace = (queued and rhi >= rlo and si[_I_BKLAST] >= 0 and fp > thr
               and sf[_F_LASTSIGN] * sf[_F_POL] > 0.0)
    if replace:
        _zero_phase_hp(ring_c, size, s0, n, sos, 9, zp, tmp)
        pol = sf[_F_POL]
        r = _place_r(zp, s0, rlo, rhi, max(rlo - ext, s0 + half - 1), max(rhi, min(rhi + ext, n - half + 1)), sf,
                     half, work)
        if _more_usual(sf):  # the last beat was not one: undo it (its output, what it taught), this one is the beat
            si[_I_QN] = q
            si[_I_BADCNT] += si[_I_BKBAD]
            si[_I_AFTER] = si[_I_BKAFTER]
            _unapply_last(sf, si)
            rr = r - si[_I_LASTBEAT]
            si[_I_NREPL] += 1
            _emit(r, rr, fs, si, sf)
            _apply_beat(r, rr, fp, sf, si)
            return nout
        sf[_F_POL] = pol
    if hi < lo:
        return nout
    if not replace:
        _zero_phase_hp(ring_c, size, s0, n, sos, 9, zp, tmp)
    lo2 = max(lo - ext, s0 + half - 1)
    lo = max(lo, lo2)
    hi2 = max(hi, min(hi + ext, n - half + 1))
    r = _place_r(zp, s0, lo, hi, lo2, hi2, sf, half, work) if hi >= lo else hi
    rr = r - si[_I_LASTBEAT]
    # within the rate-dependent part of the refractory period, the next beat of a ventricular run, or a region with
    # more QRS energy than the last beat and the stream's usual one (a T wave is slower than its own QRS)
    is_beat = fp > thr and (rr >= refr or (rr >= int(round(0.2 * fs))
                                           and (_same_complex(sf, fp) or fp > max(sf[_F_LASTFP], sf[_F_SPK]))))
    t_wave = rr < twave and _t_wave(sf, fp)
    if t_wave:
        is_beat = False
    # under the threshold but over half of it (Pan-Tompkins' second threshold), past the refractory period and no T
    # wave: a beat when the signal shows a QRS complex there (low-energy beats among noise of the same energy: wide
    # ventricular beats, small beats of atrial fibrillation)
    elif not is_beat and rr >= refr and fp > 0.5 * thr and _qrs_sized(sf):
        is_beat = True
    if is_beat:
        _emit(r, rr, fs, si, sf)
        _apply_beat(r, rr, fp, sf, si)
    elif rr >= refr:  # (a region within the refractory period is part of the last beat's complex, not noise)
        sf[_F_NPK] = 0.875 * sf[_F_NPK] + 0.125 * min(fp, sf[_F_SPK])
        if fp > sf[_F_CANDFP] and rr >= twave:
            sf[_F_CANDFP] = fp
            si[_I_CANDIDX] = r
    return nout


@njit(cache=True, nogil=True, inline="always")
def _refractory(fs, rravg):  # pragma: no cover - compiled
    """The refractory period (samples): 200 ms, up to 0.4 mean RR."""
    return max(int(round(0.2 * fs)), int(0.4 * rravg))


@njit(cache=True, nogil=True, inline="always")
def _t_window(fs, rravg):  # pragma: no cover - compiled
    """The T-wave window after a beat (samples): 360 ms, up to half the mean RR."""
    return max(int(round(0.36 * fs)), int(0.5 * rravg))


@njit(cache=True, nogil=True)
def _decide(n, f, fs, sf, si, ring_c, ring_f, out_idx, out_bad, nout, delay, half, work, sos, zp, tmp):  # pragma: no cover
    """One sample's threshold, region, beat and search-back decisions (feature ``f`` at sample ``n``).

    ``delay`` is how far the feature lags the signal (half the 100 ms box plus the band-pass's group delay):
    a QRS region of the feature between samples ``a`` and ``b`` holds its R peak in ``[a - delay, b - delay]``.
    A region ends where the feature falls under half the threshold, or at a valley under half its peak once the
    feature has doubled again from it (the next beat of a run, or a beat right after a wide one).
    ``n = -1`` closes an open region at the end of the stream."""
    rravg = sf[_F_RRAVG]  # (the refractory period and the T-wave window follow it: computed where they are needed)
    max_region = int(round(0.5 * fs))
    closing = n < 0
    if closing:
        n = si[_I_N] - 1
    since = n - si[_I_LASTBEAT]
    # a beat is output once no QRS can take its place: its refractory period over and the region then open closed
    if si[_I_QN] > 0 and not closing:
        wait = int(round(0.2 * fs)) + delay
        nout = _flush(n, False, wait if si[_I_INREG] == 0 else wait + max_region, si, sf, out_idx, out_bad, nout)
    if since > 3.0 * fs and not closing:  # lost the beat: let the signal level fall towards the noise level
        decay = np.exp(-1.0 / (2.0 * fs))
        sf[_F_SPK] = sf[_F_NPK] + (sf[_F_SPK] - sf[_F_NPK]) * decay
        for k in range(min(si[_I_NLEV], _NLEV)):
            sf[_F_LEV + k] = sf[_F_NPK] + (sf[_F_LEV + k] - sf[_F_NPK]) * decay
    thr = sf[_F_NPK] + 0.25 * (sf[_F_SPK] - sf[_F_NPK])
    low = 0.5 * thr
    if si[_I_INREG] == 0:
        if f > low and not closing:
            si[_I_INREG] = 1
            si[_I_RSTART] = n
            si[_I_PEAKIDX] = si[_I_VALLEYIDX] = si[_I_POSTMAXIDX] = n
            si[_I_ABOVE] = 0
            sf[_F_RPEAK] = sf[_F_VALLEY] = sf[_F_POSTMAX] = f
    else:
        if not closing:
            if f > sf[_F_RPEAK]:
                sf[_F_RPEAK] = sf[_F_VALLEY] = sf[_F_POSTMAX] = f
                si[_I_PEAKIDX] = si[_I_VALLEYIDX] = si[_I_POSTMAXIDX] = n
            elif f < sf[_F_VALLEY]:
                sf[_F_VALLEY] = sf[_F_POSTMAX] = f
                si[_I_VALLEYIDX] = si[_I_POSTMAXIDX] = n
            elif f > sf[_F_POSTMAX]:
                sf[_F_POSTMAX] = f
                si[_I_POSTMAXIDX] = n
            if f > thr:
                si[_I_ABOVE] += 1
        if closing or f <= low or n - si[_I_RSTART] > 2 * max_region:
            si[_I_INREG] = 0
            nout = _close_region(n, n, closing, fs, sf, si, ring_c, ring_f, out_idx, out_bad, nout, delay, half, work,
                                 sos, zp, tmp, thr, _refractory(fs, rravg), _t_window(fs, rravg))
        elif sf[_F_VALLEY] < 0.5 * sf[_F_RPEAK] and sf[_F_POSTMAX] > 2.0 * sf[_F_VALLEY]:
            # a valley between two humps: the region so far ends there, the next one starts after it
            v = si[_I_VALLEYIDX]
            nout = _close_region(n, v, False, fs, sf, si, ring_c, ring_f, out_idx, out_bad, nout, delay, half, work,
                                 sos, zp, tmp, thr, _refractory(fs, rravg), _t_window(fs, rravg))
            si[_I_RSTART] = v + 1
            si[_I_ABOVE] = 0
            for k in range(v + 1, n + 1):
                if ring_f[k % ring_f.shape[0]] > thr:
                    si[_I_ABOVE] += 1
            sf[_F_RPEAK] = sf[_F_VALLEY] = sf[_F_POSTMAX] = f
            si[_I_PEAKIDX] = si[_I_VALLEYIDX] = si[_I_POSTMAXIDX] = n
    # search back: no beat for 1.66 mean RR, take the best sub-threshold region since the last beat
    # (not before the candidate is a refractory period old: a real QRS right after a sub-threshold bump wins)
    if si[_I_CANDIDX] >= 0 and since > 1.66 * sf[_F_RRAVG] and si[_I_INREG] == 0 and not closing \
            and n - si[_I_CANDIDX] > _refractory(fs, rravg) + delay:
        r = si[_I_CANDIDX]
        rr = r - si[_I_LASTBEAT]
        _emit(r, rr, fs, si, sf)
        si[_I_BKLAST] = -1  # (its wave's size was not measured: no later QRS takes its place)
        fp = sf[_F_CANDFP]
        _push_level(sf, si, min(fp, 3.0 * sf[_F_SPK]))
        sf[_F_LASTFP] = fp
        si[_I_LASTBEAT] = r
        sf[_F_CANDFP] = 0.0
        si[_I_CANDIDX] = -1
    return nout


@njit(cache=True, nogil=True)
def _ecg_kernel(x, xh, bp, bad_in, fs, sf, si, ring_c, ring_f, ring_g, ring_w, out_idx, out_bad, delay, half,
                work, sos, zp, tmp):  # pragma: no cover - compiled
    size = ring_c.shape[0]
    gsize = ring_g.shape[0]
    wsize = ring_w.shape[0]
    winv = 1.0 / wsize
    ns = _wave_samples(fs)
    # the wave counter's state, in locals through the loop (see ``_wave_timeout``)
    wi = si[_I_N] % wsize
    wsum = sf[_F_WSUM_X]
    wext = sf[_F_WEXT]
    wdir = si[_I_WDIR]
    wextidx = si[_I_WEXTIDX]
    nbox = max(1, int(round(0.1 * fs)))
    warm_len = int(round(2.0 * fs))
    flat_len = int(round(0.25 * fs))
    nout = 0
    for j in range(xh.shape[0]):
        n = si[_I_N]
        ring_c[n % size] = x[j]  # the raw (held) samples: R peaks are placed on a zero-phase filtered copy
        # flagged samples: non-finite input (already held) and long runs of identical raw values
        b = bad_in[j]
        if b:
            si[_I_RUN] = 0
        if si[_I_HAVEPREV] == 1 and not b:
            if sf[_F_PREVX] == x[j]:
                si[_I_RUN] += 1
            else:
                si[_I_RUN] = 0
        if si[_I_RUN] >= flat_len:
            b = True
        if b:
            si[_I_BADCNT] += 1
        sf[_F_PREVX] = x[j]
        # QRS feature: |slope| of band-passed signal, 100 ms running mean
        if si[_I_HAVEPREV] == 0:
            g = 0.0
            si[_I_HAVEPREV] = 1
        else:
            g = abs(bp[j] - sf[_F_PREVB]) * fs
        sf[_F_PREVB] = bp[j]
        sf[_F_GSUM] += g - ring_g[n % gsize]
        ring_g[n % gsize] = g
        f = max(sf[_F_GSUM], 0.0) / nbox
        ring_f[n % size] = f
        wsum += xh[j] - ring_w[wi]
        ring_w[wi] = xh[j]
        wi = wi + 1 if wi + 1 < wsize else 0
        si[_I_N] = n + 1
        if si[_I_WARM] < warm_len:
            if b:  # the levels are learnt on 2 s of good signal: a NaN or flat stretch starts the learning anew
                si[_I_WARM] = 0
                sf[_F_WMAX] = 0.0
                sf[_F_WSUM] = 0.0
                continue
            si[_I_WARM] += 1
            if f > sf[_F_WMAX]:
                sf[_F_WMAX] = f
            sf[_F_WSUM] += f
            if si[_I_WARM] == warm_len and not sf[_F_WMAX] > 0.0:  # no activity at all: learn again
                si[_I_WARM] = 0
                sf[_F_WSUM] = 0.0
            elif si[_I_WARM] == warm_len:  # levels learnt: go back over the learning period
                sf[_F_SPK] = 0.5 * sf[_F_WMAX]
                sf[_F_LEV:_F_LEV + _NLEV] = sf[_F_SPK]  # the learnt level stands for the beats not seen yet
                si[_I_NLEV] = _NLEV
                sf[_F_NPK] = 0.5 * sf[_F_WSUM] / warm_len
                sf[_F_RRAVG] = 0.8 * fs
                si[_I_LASTBEAT] = n - warm_len - int(round(0.2 * fs))
                # no R peak in the first 0.1 s: a QRS complex cut by the start of the stream is not placed
                si[_I_FIRST] = n - warm_len + int(round(0.1 * fs))
                for k in range(n - warm_len + 1, n + 1):
                    nout = _decide(k, ring_f[k % size], fs, sf, si, ring_c, ring_f, out_idx, out_bad, nout, delay, half,
                                   work, sos, zp, tmp)
            continue
        if sf[_F_RPROM] > 0.0:  # waves: maxima the signal rises to and falls from by ``_swing`` (none before a beat)
            v = wsum * winv
            if wdir == 0:
                if v > wext:
                    wext = v
                    wextidx = n
                elif v < wext - _swing(si, sf):
                    _wave_max(n, wextidx, si, sf, ns, ring_f)
                    wdir = 1
                    wext = v
            elif v < wext:
                wext = v
            elif v > wext + _swing(si, sf):
                wdir = 0
                wext = v
                wextidx = n
            if si[_I_WRUN] > 0:
                _wave_timeout(n, si, sf, ns)
        nout = _decide(n, f, fs, sf, si, ring_c, ring_f, out_idx, out_bad, nout, delay, half, work, sos, zp, tmp)
    sf[_F_WSUM_X] = wsum
    sf[_F_WEXT] = wext
    si[_I_WDIR] = wdir
    si[_I_WEXTIDX] = wextidx
    return nout


@njit(cache=True, nogil=True)
def _ecg_close(fs, sf, si, ring_c, ring_f, out_idx, out_bad, delay, half, work, sos, zp, tmp):  # pragma: no cover
    """End of stream: decide on a QRS region still open (the last beat of a recording), and output a held beat."""
    if si[_I_WARM] < int(round(2.0 * fs)):
        return 0
    nout = 0
    if si[_I_INREG] == 1:
        nout = _decide(-1, 0.0, fs, sf, si, ring_c, ring_f, out_idx, out_bad, 0, delay, half, work, sos, zp, tmp)
    return _flush(0, True, 0, si, sf, out_idx, out_bad, nout)


@njit(cache=True, nogil=True)
def _ppg_kernel(bp, bad_in, fs, sf, si, ring_c, ring_p, ring_b, out_idx, out_bad):  # pragma: no cover - compiled
    size = ring_c.shape[0]
    w1 = max(1, int(round(0.111 * fs)))
    w2 = max(1, int(round(0.667 * fs)))
    refr = int(round(0.3 * fs))
    nout = 0
    for j in range(bp.shape[0]):
        n = si[0]
        v = bp[j]
        ring_c[n % size] = v
        y = v * v if v > 0 else 0.0
        sf[0] += y - ring_p[n % w1]
        ring_p[n % w1] = y
        sf[1] += y - ring_b[n % w2]
        ring_b[n % w2] = y
        sf[2] = 0.999 * sf[2] + 0.001 * y  # signal level for the offset
        if bad_in[j]:
            si[5] += 1
        si[0] = n + 1
        if n < w2:
            continue
        ma_p = max(sf[0], 0.0) / w1
        ma_b = max(sf[1], 0.0) / w2
        inside = ma_p > ma_b + 0.02 * sf[2]
        if inside and si[1] == 0:
            si[1] = 1
            si[2] = n
        elif not inside and si[1] == 1:
            si[1] = 0
            start = si[2]
            if n - start >= w1 and n - start < size:
                best = start
                vb = -1e300
                for k in range(start, n):
                    if ring_c[k % size] > vb:
                        vb = ring_c[k % size]
                        best = k
                rr = best - si[3]
                if rr >= refr:
                    out_idx[nout] = best
                    out_bad[nout] = min(1.0, si[5] / max(1.0, float(min(rr, 3 * fs))))
                    nout += 1
                    si[5] = 0
                    si[3] = best
    return nout


@njit(cache=True, nogil=True)
def _sosfilt(sos, x, zi):  # pragma: no cover - compiled
    """``scipy.signal.sosfilt`` (transposed direct form II, same arithmetic) without its per-call overhead;
    ``zi`` (sections × 2) is updated in place."""
    y = np.empty_like(x)
    ns = sos.shape[0]
    for n in range(x.shape[0]):
        v = x[n]
        for s in range(ns):
            b0, b1, b2, a1, a2 = sos[s, 0], sos[s, 1], sos[s, 2], sos[s, 4], sos[s, 5]
            out = b0 * v + zi[s, 0]
            zi[s, 0] = b1 * v - a1 * out + zi[s, 1]
            zi[s, 1] = b2 * v - a2 * out
            v = out
        y[n] = v
    return y


def sosfilt_stateful(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> np.ndarray:
    """Filter ``x`` with second-order sections, carrying the state ``zi`` (updated in place) between calls.

    >>> from scipy import signal
    >>> sos = signal.butter(2, 0.1, output="sos"); zi = np.zeros((1, 2))
    >>> y = np.concatenate([sosfilt_stateful(sos, part, zi) for part in np.array_split(np.ones(50), 3)])
    >>> bool(np.allclose(y, signal.sosfilt(sos, np.ones(50))))
    True
    """
    return _sosfilt(np.ascontiguousarray(sos, dtype=np.float64), np.ascontiguousarray(x, dtype=np.float64), zi)


def _hold_nonfinite(x: np.ndarray, last: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Replace non-finite samples by the last finite one (vectorised forward fill)."""
    x = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        idx = np.where(bad, 0, np.arange(1, len(x) + 1))
        np.maximum.accumulate(idx, out=idx)
        x = np.where(idx > 0, x[np.maximum(idx - 1, 0)], last)
    return x, bad, float(x[-1]) if len(x) else last


class _Detector:
    fs: float
    sos_hp: np.ndarray | None
    sos_bp: np.ndarray

    def _init_filters(self, x0: float) -> None:
        from scipy import signal  # heavy: imported by the first stream, not at start-up

        self._zi_hp = np.ascontiguousarray(signal.sosfilt_zi(self.sos_hp) * x0) if self.sos_hp is not None else None
        self._zi_bp = np.ascontiguousarray(signal.sosfilt_zi(self.sos_bp) * (0.0 if self.sos_hp is not None else x0))
        self._started = True


class EcgBeatDetector(_Detector):
    """Streaming R-peak detector for one ECG channel at ``fs`` Hz (100 Hz – 1 kHz and beyond).

    ``process(x)`` takes the next samples and returns ``(indices, bad)``: the absolute sample
    indices (counted from the first sample ever given) of the beats confirmed by this call, in
    order, and for each the fraction of flagged samples (NaN, flat, clipped) before it.
    A beat is confirmed once its refractory period is over, about 0.3 s after its R peak (later when it
    falls in a run of waves too fast for a heart rhythm, until the run proves to be flutter or not).

    >>> det = EcgBeatDetector(360.0)
    >>> det.process(np.zeros(100))[0].size
    0
    """

    def __init__(self, fs: float) -> None:
        if not np.isfinite(fs) or fs < 50:
            raise ValueError(f"ECG sampling rate {fs} Hz is too low for R-peak detection (need >= 50 Hz)")
        self.fs = float(fs)
        from scipy import signal  # heavy: imported by the first ECG stream, not at start-up

        self.sos_hp = signal.butter(2, 0.5, btype="highpass", fs=fs, output="sos")
        self.sos_bp = signal.butter(2, [5.0, min(15.0, 0.4 * fs)], btype="bandpass", fs=fs, output="sos")
        self._sf = np.zeros(_NF)
        self._si = np.zeros(_NI, dtype=np.int64)
        self._si[_I_CANDIDX] = -1
        self._si[_I_BKLAST] = -1
        self._ring_c = np.zeros(int(4 * fs))
        self._ring_f = np.zeros(int(4 * fs))
        self._ring_g = np.zeros(max(1, int(round(0.1 * fs))))
        self._ring_w = np.zeros(max(1, int(round(FLUTTER_SMOOTH_S * fs))))
        self._work = np.zeros(self._ring_c.size)
        self._zp = np.zeros(self._ring_c.size)
        self._tmp = np.zeros(self._ring_c.size + 16)
        self._sos_hp = np.ascontiguousarray(self.sos_hp, dtype=np.float64)
        # the feature lags the signal by half its 100 ms box plus the band-pass's group delay (at 10 Hz)
        _, gd = signal.group_delay(signal.sos2tf(self.sos_bp), w=[10.0], fs=fs)
        self._delay = int(round(0.1 * fs)) // 2 + int(round(float(gd[0])))
        # R peaks are placed on the high-passed signal smoothed over one 50 Hz period (as NeuroKit2's ecg_clean)
        self._half = max(2, int(fs / 50.0)) if fs >= 100 else 2
        self._started = False
        self._last = 0.0

    @property
    def samples_seen(self) -> int:
        return int(self._si[_I_N])

    @property
    def flutter_episodes(self) -> int:
        """How many episodes of ventricular flutter or fibrillation (waves, not beats: none output) began so far."""
        return int(self._si[_I_NEPIS])

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """End of the stream: the beat whose QRS complex was still open (confirmed early), if any.

        >>> EcgBeatDetector(250.0).finish()[0].size
        0
        """
        out_idx, out_bad = np.empty(_NQ + 4, dtype=np.int64), np.empty(_NQ + 4)
        n = _ecg_close(self.fs, self._sf, self._si, self._ring_c, self._ring_f, out_idx, out_bad, self._delay, self._half,
                       self._work, self._sos_hp, self._zp, self._tmp) if self._started else 0
        return out_idx[:n].copy(), out_bad[:n].copy()

    def process(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if x.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        if not self._started:
            finite = x[np.isfinite(x)]
            if finite.size == 0:  # nothing usable yet: count the samples, detect nothing
                self._si[_I_N] += x.size
                return np.zeros(0, dtype=np.int64), np.zeros(0)
            self._last = float(finite[0])
            self._init_filters(self._last)
        x, bad, self._last = _hold_nonfinite(x, self._last)
        xh = sosfilt_stateful(self.sos_hp, x, self._zi_hp)
        bp = sosfilt_stateful(self.sos_bp, xh, self._zi_bp)
        out_idx = np.empty(x.size // max(1, int(0.2 * self.fs)) + _NQ + 16, dtype=np.int64)
        out_bad = np.empty(out_idx.size)
        n = _ecg_kernel(x, xh, bp, bad, self.fs, self._sf, self._si, self._ring_c, self._ring_f, self._ring_g,
                        self._ring_w, out_idx, out_bad, self._delay, self._half, self._work, self._sos_hp, self._zp,
                        self._tmp)
        return out_idx[:n].copy(), out_bad[:n].copy()


class PpgBeatDetector(_Detector):
    """Streaming pulse-peak detector for one PPG channel (see the module docstring).

    >>> PpgBeatDetector(100.0).process(np.zeros(50))[0].size
    0
    """

    def __init__(self, fs: float) -> None:
        if not np.isfinite(fs) or fs < 20:
            raise ValueError(f"PPG sampling rate {fs} Hz is too low for pulse detection (need >= 20 Hz)")
        self.fs = float(fs)
        self.sos_hp = None
        from scipy import signal  # heavy: imported by the first PPG stream, not at start-up

        self.sos_bp = signal.butter(2, [0.5, min(8.0, 0.4 * fs)], btype="bandpass", fs=fs, output="sos")
        self._sf = np.zeros(3)
        self._si = np.zeros(6, dtype=np.int64)
        self._si[3] = -10 * int(fs)
        self._ring_c = np.zeros(int(3 * fs))
        self._ring_p = np.zeros(max(1, int(round(0.111 * fs))))
        self._ring_b = np.zeros(max(1, int(round(0.667 * fs))))
        self._started = False
        self._last = 0.0

    @property
    def samples_seen(self) -> int:
        return int(self._si[0])

    def process(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if x.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        if not self._started:
            finite = x[np.isfinite(x)]
            if finite.size == 0:
                self._si[0] += x.size
                return np.zeros(0, dtype=np.int64), np.zeros(0)
            self._last = float(finite[0])
            self._init_filters(self._last)
        x, bad, self._last = _hold_nonfinite(x, self._last)
        bp = sosfilt_stateful(self.sos_bp, x, self._zi_bp)
        out_idx = np.empty(x.size // max(1, int(0.3 * self.fs)) + 4, dtype=np.int64)
        out_bad = np.empty(out_idx.size)
        n = _ppg_kernel(bp, bad, self.fs, self._sf, self._si, self._ring_c, self._ring_p, self._ring_b,
                        out_idx, out_bad)
        return out_idx[:n].copy(), out_bad[:n].copy()


def detect_ecg_beats(x: np.ndarray, fs: float, chunk: int | None = None) -> np.ndarray:
    """R-peak sample indices of a whole ECG, computed by the streaming detector.

    >>> import neurokit2 as nk
    >>> len(detect_ecg_beats(nk.ecg_simulate(duration=10, sampling_rate=200, heart_rate=60, random_state=0), 200))
    10
    """
    det = EcgBeatDetector(fs)
    x = np.asarray(x, dtype=np.float64)
    step = chunk or max(1, len(x))
    return np.concatenate([np.zeros(0, dtype=np.int64)] + [det.process(x[i:i + step])[0]
                                                           for i in range(0, len(x), step)] + [det.finish()[0]])


def detect_ppg_beats(x: np.ndarray, fs: float, chunk: int | None = None) -> np.ndarray:
    """Pulse-peak sample indices of a whole PPG, computed by the streaming detector."""
    det = PpgBeatDetector(fs)
    x = np.asarray(x, dtype=np.float64)
    step = chunk or max(1, len(x))
    return np.concatenate([np.zeros(0, dtype=np.int64)] + [det.process(x[i:i + step])[0]
                                                           for i in range(0, len(x), step)])
