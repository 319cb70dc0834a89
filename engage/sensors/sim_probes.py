"""How a simulated viewer answers a thought probe ("How bored are you right now?", 1-7).

Experience sampling asks viewers, now and then, how they feel; their answers are the labels that
boredom has nowhere else. A simulated viewer answers from its latent state at the moment the probe
appears (:meth:`~engage.sensors.simulated.SimulatedViewer.latent_state`), the way people do: the
answer follows the feeling with some noise, rounded onto the scale; now and then it is careless
(a random point of the scale); and it takes a second or two, longer when bored.

============== ============================= =================================================
question       answer                        from
============== ============================= =================================================
``boredom``    1 (not at all) … 7 (extremely) ``1 + 6 × boredom`` + N(0, 0.6), rounded
``arousal``    1 (very calm) … 7 (very excited) ``1 + 6 × arousal`` + N(0, 0.6), rounded
``on_task``    0 (thinking of something else) or 1 (the film): not ``mind_wandering``
============== ============================= =================================================

>>> from engage.sensors.sim_latent import LatentState
>>> state = LatentState(0.0, arousal=0.2, boredom=0.9, attention=0.5, novelty=0.0, mind_wandering=False,
...                     scene="s", intensity=0.1, tone="calm", time_in_scene=80.0)
>>> answer = answer_from_state("boredom", state, np.random.default_rng(0))
>>> answer.value >= 5, 0.5 < answer.rt_s < 10
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sim_latent import LatentState

__all__ = ["CARELESS_RATE", "SimulatedAnswer", "answer_from_state"]

#: share of answers given without reading the question (a random point of the scale)
CARELESS_RATE = 0.04
_NOISE_SD = 0.6
_RT_MEDIAN_S, _RT_SIGMA = 1.8, 0.35


@dataclass(frozen=True)
class SimulatedAnswer:
    """A simulated viewer's answer to one question: its ``value`` and response time ``rt_s``."""

    value: int
    rt_s: float


def answer_from_state(question: str, state: LatentState, rng: np.random.Generator) -> SimulatedAnswer | None:
    """The answer a viewer in ``state`` gives to ``question`` (None: a question it does not know).

    Parameters
    ----------
    question
        ``boredom``, ``arousal`` or ``on_task``.
    state
        What the viewer experiences when the probe appears.
    rng
        The viewer's probe generator (answers are reproducible for a seed).

    Returns
    -------
    SimulatedAnswer or None
        The value on the question's scale and the response time in seconds.
    """
    careless = rng.random() < CARELESS_RATE
    noise = rng.normal(0.0, _NOISE_SD)
    rt = float(rng.lognormal(np.log(_RT_MEDIAN_S), _RT_SIGMA) + 0.8 * state.boredom)
    if question in ("boredom", "arousal"):
        level = state.boredom if question == "boredom" else state.arousal
        value = int(rng.integers(1, 8)) if careless else int(np.clip(np.rint(1 + 6 * level + noise), 1, 7))
        return SimulatedAnswer(value, round(rt, 3))
    if question == "on_task":
        value = int(rng.integers(0, 2)) if careless else int(not state.mind_wandering)
        return SimulatedAnswer(value, round(rt, 3))
    return None
