"""The rule-based engagement model: needs no training, explains itself.

From baseline-relative features it scores, each in [0, 1]:

* **arousal** - a logistic of the quality-weighted mean of heart rate (weight 1.0), SCR rate
  (0.7) and tonic EDA (0.5) z-scores: the sympathetic markers.
* **attention** - the fraction of recent frames with the face present and gaze on screen; NaN
  when there is no usable face (a session without a camera does not know it, and says so).
* **boredom** - a logistic of low arousal, a raised blink rate and looking away
  (``-arousal_z + 0.6·z_blink + 5·(0.85 − on_screen)``): disengagement with low activation.

**confidence** is the mean quality of the modalities that contributed, so a missing strap or a
lost face lowers it; ``quality`` is the best single modality quality. Output: an ``Engagement``
stream with ``arousal``, ``boredom``, ``attention``, ``confidence``, ``quality``.

>>> m = RuleEngagementModel()
>>> round(m.score({"z_hr": 0, "z_scr": 0, "z_tonic": 0, "z_blink": 0, "on_screen": 1.0,
...                "hr_quality": 1, "eda_quality": 1, "face_quality": 1})["arousal"], 2)
0.5
"""

from __future__ import annotations

import math

import numpy as np

from engage.core import Chunk, Processor, StreamInfo

ENGAGEMENT_CHANNELS = ("arousal", "boredom", "attention", "confidence", "quality")

__all__ = ["ENGAGEMENT_CHANNELS", "RuleEngagementModel", "engagement_info"]


def engagement_info(viewer: str, stream_type: str = "Engagement") -> StreamInfo:
    """The ``Engagement`` contract's stream info.

    Parameters
    ----------
    viewer
        Whose estimate it is.
    stream_type
        ``Engagement``, or another type for an intermediate estimate that a fusion step turns
        into ``Engagement`` (``EngagementRules``, ``ArousalModel``).

    Returns
    -------
    StreamInfo
        Channels ``arousal``, ``boredom``, ``attention``, ``confidence``, ``quality``.

    Examples
    --------
    >>> engagement_info("v1").name, engagement_info("v1", "ArousalModel").type
    ('v1-engagement', 'ArousalModel')
    """
    suffix = "engagement" if stream_type == "Engagement" else stream_type.lower()
    return StreamInfo(f"{viewer}-{suffix}", stream_type, ENGAGEMENT_CHANNELS, ("score",) * 5, 1.0,
                      f"engage-{viewer}-{suffix}", viewer=viewer)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))


def _ok(v: float) -> bool:
    return v is not None and math.isfinite(v)


class RuleEngagementModel(Processor):
    """Relative features → arousal, boredom and attention by the documented rules (see the
    module docstring).

    Parameters
    ----------
    arousal_gain
        Slope of the arousal logistic.
    boredom_bias
        Offset of the boredom logistic.
    output_type
        The stream type of its rows.

    Examples
    --------
    >>> m = RuleEngagementModel()
    >>> round(m.score({"z_hr": 2, "z_scr": 1, "z_tonic": 1, "z_blink": 0, "on_screen": 1.0,
    ...                "hr_quality": 1, "eda_quality": 1, "face_quality": 1})["arousal"], 2)
    0.85
    """

    name = "rule-model"

    def __init__(self, arousal_gain: float = 1.2, boredom_bias: float = -0.5, output_type: str = "Engagement") -> None:
        self.arousal_gain = arousal_gain
        self.boredom_bias = boredom_bias
        self.output_type = output_type

    def accepts(self, info: StreamInfo) -> bool:
        return info.type == "FeaturesRelative"

    def score(self, f: dict[str, float]) -> dict[str, float]:
        """Scores for one row of relative features (a dict keyed by channel name)."""
        parts = [(f["z_hr"], 1.0, f["hr_quality"]), (f["z_scr"], 0.7, f["eda_quality"]),
                 (f["z_tonic"], 0.5, f["eda_quality"])]
        parts = [(z, w * q) for z, w, q in parts if _ok(z) and q > 0.2]
        weight = sum(w for _, w in parts)
        arousal_z = sum(z * w for z, w in parts) / weight if weight else 0.0
        face_ok = f["face_quality"] > 0.2 and _ok(f["on_screen"])
        attention = float(f["on_screen"]) if face_ok else math.nan  # no face: unknown, not "half attentive"
        blink = f["z_blink"] if face_ok and _ok(f["z_blink"]) else 0.0
        boredom_z = -arousal_z + 0.6 * blink + (5.0 * (0.85 - attention) if face_ok else 0.0)
        qualities = [q for q in (f["hr_quality"], f["eda_quality"], f["face_quality"]) if q > 0.2]
        return {
            "arousal": _sigmoid(self.arousal_gain * arousal_z),
            "boredom": _sigmoid(boredom_z + self.boredom_bias) if (weight or face_ok) else 0.5,
            "attention": attention,
            "confidence": float(np.mean(qualities)) if qualities else 0.0,
            "quality": max([f["hr_quality"], f["eda_quality"], f["face_quality"]]),
        }

    def process(self, chunk: Chunk) -> list[Chunk]:
        names = chunk.info.channels
        rows = []
        for row in chunk.data:
            s = self.score(dict(zip(names, (float(v) for v in row))))
            rows.append([s[c] for c in ENGAGEMENT_CHANNELS])
        return [Chunk.from_rows(engagement_info(chunk.info.viewer, self.output_type), rows, chunk.timestamps)]
