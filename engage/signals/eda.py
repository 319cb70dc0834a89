"""Electrodermal activity: causal tonic/phasic split and skin-conductance responses (SCRs).

The tonic level is a slow causal low-pass (0.05 Hz) of the 1 Hz-smoothed signal; the phasic part
is the difference. An SCR starts when the smoothed signal rises faster than ``onset_slope``
(µS/s) and ends at its next local maximum; it counts when its amplitude reaches
``min_amplitude`` (µS). Output ``EDAFeatures`` at the input rate: ``tonic_us``, ``phasic_us``,
``scr_amplitude`` (non-zero on the sample where an SCR peaks), ``quality``.

The walking skeleton's version; the cardiac/EDA issue replaces it behind the same contract.

>>> from engage.core import StreamInfo
>>> EdaFeatures().accepts(StreamInfo("eda", "EDA", ("eda",), ("uS",), 16.0, "x"))
True
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from engage.core import Chunk, Processor, StreamInfo

EDA_CHANNELS = ("tonic_us", "phasic_us", "scr_amplitude", "quality")


class _EdaState:
    def __init__(self, fs: float) -> None:
        self.fs = fs
        self.sos_smooth = signal.butter(2, min(1.0, 0.4 * fs), fs=fs, output="sos")
        self.sos_tonic = signal.butter(1, 0.05, fs=fs, output="sos")
        self.zi_smooth = None
        self.zi_tonic = None
        self.prev = None
        self.rising_from: float | None = None
        self.last_value = np.nan


class EdaFeatures(Processor):
    """Streams of type ``EDA`` (µS) → ``EDAFeatures``."""

    name = "eda-features"

    def __init__(self, onset_slope: float = 0.01, min_amplitude: float = 0.02,
                 valid_range: tuple[float, float] = (0.05, 60.0)) -> None:
        self.onset_slope = onset_slope
        self.min_amplitude = min_amplitude
        self.valid_range = valid_range
        self._state: dict[StreamInfo, _EdaState] = {}

    def accepts(self, info: StreamInfo) -> bool:
        return info.type == "EDA" and info.nominal_rate > 0

    def process(self, chunk: Chunk) -> list[Chunk]:
        info = chunk.info
        st = self._state.get(info)
        x = chunk.data[:, 0].astype(np.float64)
        if st is None:
            st = self._state[info] = _EdaState(info.nominal_rate)
            first = x[np.isfinite(x)][:1]
            x0 = float(first[0]) if first.size else 0.0
            st.zi_smooth = signal.sosfilt_zi(st.sos_smooth) * x0
            st.zi_tonic = signal.sosfilt_zi(st.sos_tonic) * x0
            st.prev = x0
            st.last_value = x0
        lo, hi = self.valid_range
        valid = np.isfinite(x) & (x >= lo) & (x <= hi)
        if not valid.all():
            x = x.copy()
            for i in np.flatnonzero(~valid):  # hold the last good value; quality says so
                x[i] = x[i - 1] if i > 0 else st.last_value
        st.last_value = float(x[-1])
        smooth, st.zi_smooth = signal.sosfilt(st.sos_smooth, x, zi=st.zi_smooth)
        tonic, st.zi_tonic = signal.sosfilt(st.sos_tonic, smooth, zi=st.zi_tonic)
        slope = np.diff(smooth, prepend=st.prev) * st.fs
        st.prev = float(smooth[-1])
        scr = np.zeros(len(x))
        for i in range(len(x)):
            if st.rising_from is None:
                if slope[i] > self.onset_slope:
                    st.rising_from = float(smooth[i - 1]) if i > 0 else float(smooth[i])
            elif slope[i] <= 0:
                amplitude = float(smooth[i]) - st.rising_from
                if amplitude >= self.min_amplitude:
                    scr[i] = amplitude
                st.rising_from = None
        quality = valid.astype(np.float64)
        out = np.column_stack([tonic, smooth - tonic, scr, quality])
        out_info = StreamInfo(f"{info.viewer}-eda-features", "EDAFeatures", EDA_CHANNELS, ("uS", "uS", "uS", "ratio"),
                              info.nominal_rate, f"engage-{info.viewer}-eda-features", viewer=info.viewer)
        return [Chunk(out_info, out, chunk.timestamps)]
