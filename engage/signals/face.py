"""Per-frame face features → attention and blinks.

Input: a ``Face`` stream with at least ``face_present``, ``ear_left``, ``ear_right`` and
``gaze_on_screen`` (the webcam pipeline and the simulated viewer both produce it). A blink starts
when the mean eye aspect ratio drops below ``blink_ratio`` × the viewer's running open-eye level
and ends when it comes back; the open-eye level adapts slowly to each viewer. Output
``FaceFeatures`` per frame: ``face_present``, ``on_screen``, ``blink_duration`` (non-zero on the
frame a blink ends, in seconds), ``quality``.

The walking skeleton's version; the webcam issue deepens it behind the same contract.

>>> from engage.core import StreamInfo
>>> FaceFeatures().accepts(StreamInfo("f", "Face", ("face_present",), ("bool",), 30.0, "x"))
True
"""

from __future__ import annotations

import numpy as np

from engage.core import Chunk, Processor, StreamInfo

FACE_CHANNELS = ("face_present", "on_screen", "blink_duration", "quality")


class _FaceState:
    def __init__(self) -> None:
        self.open_level: float | None = None
        self.blink_start: float | None = None


class FaceFeatures(Processor):
    name = "face-features"

    def __init__(self, blink_ratio: float = 0.6, adapt: float = 0.01, max_blink_s: float = 1.0) -> None:
        self.blink_ratio = blink_ratio
        self.adapt = adapt
        self.max_blink_s = max_blink_s
        self._state: dict[StreamInfo, _FaceState] = {}

    def accepts(self, info: StreamInfo) -> bool:
        return info.type == "Face" and "face_present" in info.channels

    def process(self, chunk: Chunk) -> list[Chunk]:
        info = chunk.info
        st = self._state.setdefault(info, _FaceState())
        present = np.nan_to_num(chunk.channel("face_present")) > 0.5
        has_eyes = "ear_left" in info.channels and "ear_right" in info.channels
        ear = (chunk.channel("ear_left") + chunk.channel("ear_right")) / 2 if has_eyes else np.full(len(chunk), np.nan)
        on = chunk.channel("gaze_on_screen") if "gaze_on_screen" in info.channels else present.astype(float)
        on_screen = present & (np.nan_to_num(on) > 0.5)
        blink = np.zeros(len(chunk))
        ts = chunk.timestamps
        for i in range(len(chunk)):
            e = ear[i]
            if not present[i] or not np.isfinite(e):
                st.blink_start = None  # a blink cannot be judged across a face dropout
                continue
            if st.open_level is None:
                st.open_level = e
                continue
            closed = e < self.blink_ratio * st.open_level
            if closed and st.blink_start is None:
                st.blink_start = float(ts[i])
            elif not closed:
                if st.blink_start is not None:
                    duration = float(ts[i]) - st.blink_start
                    if 0 < duration <= self.max_blink_s:
                        blink[i] = duration
                    st.blink_start = None
                st.open_level += self.adapt * (e - st.open_level)
        quality = present.astype(np.float64)
        out_info = StreamInfo(f"{info.viewer}-face-features", "FaceFeatures", FACE_CHANNELS,
                              ("bool", "bool", "s", "ratio"), info.nominal_rate,
                              f"engage-{info.viewer}-face-features", viewer=info.viewer)
        return [Chunk(out_info, np.column_stack([present, on_screen, blink, quality]).astype(np.float64), ts)]
