"""The simulated viewer against real people: Stress-Predict's heart-rate and skin-conductance
responses to stress tasks (engage.datasets.stress_responses), the pinned calibration numbers and the
calibration table in sensors/simulated.md."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engage.datasets import stress_responses as sr
from engage.sensors.sim_calibration import STRESS_PREDICT

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def simulated():
    """Twelve simulated viewers through the Stress-Predict timetable, measured as the real ones are."""
    return sr.simulated_summary(12, seed=0)


def _inside(value: float, quartiles) -> bool:
    return quartiles[0] <= value <= quartiles[2]


def test_simulated_stress_responses_fall_in_the_real_interquartile_range(simulated):
    """The acceptance of the calibration: heart rate and skin conductance move as much in a simulated
    stress task (a scene of intensity 1 between rests of intensity 0) as in the real ones."""
    for key in ("task_dhr_bpm", "task_dscl_rel", "task_dscl_us"):
        assert _inside(simulated[key][1], STRESS_PREDICT[key]), (key, simulated[key], STRESS_PREDICT[key])
    # and they are responses, not noise: every simulated task raised heart rate and SCL on average
    assert simulated["task_dhr_bpm"][1] > 1.0 and simulated["task_dscl_rel"][1] > 0.1
    assert simulated["task_blocks"] == 3 * 12 and simulated["participants"] == 12
    # the time courses have the real ones' scale: HR within a minute or two, SCL over minutes
    assert 5 < simulated["hr_onset"]["tau_s"] < 120 and 60 < simulated["scl_offset"]["tau_s"] < 600


@pytest.mark.realdata
def test_the_pinned_numbers_are_what_the_real_data_gives(shared_data):
    """``python -m engage.datasets.stress_responses`` recomputes every Stress-Predict number the
    simulator uses; they must still be what is pinned in sim_calibration and printed in the table."""
    root = shared_data / "stress_predict_e4"
    if not root.exists():
        pytest.skip("Stress-Predict not present")
    real = sr.stress_predict_summary(root)
    assert real["participants"] == 19 and real["task_blocks"] == 57
    for key, _, _, dec in sr.TABLE_ROWS:
        assert tuple(round(v, dec) for v in real[key]) == pytest.approx(STRESS_PREDICT[key], abs=1.01 * 10 ** -dec), key
    for key, _ in sr.STEP_ROWS:
        for k in ("delay_s", "tau_s"):
            assert round(real[key][k]) == pytest.approx(STRESS_PREDICT[key][k], abs=1.01), (key, k)
    doc = (ROOT / "sensors" / "simulated.md").read_text()
    for row in sr.markdown_rows(real):
        assert row in doc, f"sensors/simulated.md lacks the row {row!r}: rerun the script and update it"


def test_label_blocks_and_responses_on_awkward_input():
    assert sr.label_blocks(np.array([]), np.array([])) == []
    blocks = sr.label_blocks(np.array([0.0, 1.0, 2.0, 3.0, 4.0]), np.array([1, np.nan, 1, 0, 0]))
    assert [(b.start, b.end, b.label) for b in blocks] == [(0.0, 3.0, 1), (3.0, 5.0, 0)]
    t = np.arange(0.0, 100.0)
    # a task with no rest before it is skipped (and still counted as a task)
    r = sr.block_responses(sr.label_blocks(t, (t >= 50).astype(int) + (t < 10)), t, t, t, np.ones(100))
    assert [x["task"] for x in r] == [1]
    # no samples inside a block: NaN, not an error
    r = sr.block_responses(sr.label_blocks(t, (t >= 50).astype(int)), t, np.full(100, np.nan), t, np.zeros(100))
    assert math.isnan(r[0]["dhr"]) and math.isnan(r[0]["dscl_rel"])
    assert sr.null_response(sr.label_blocks(t, np.zeros(100)), t, t, t, t) is None  # too short a rest
    assert all(math.isnan(v) for v in sr.fit_step(np.full(sr.BIN_EDGES.size - 1, np.nan)).values())
    assert all(math.isnan(v) for v in sr.quartiles([np.nan]))
    fit = sr.fit_step(np.where(sr.BIN_EDGES[:-1] + 5 > 0, 4.0 * (1 - np.exp(-(sr.BIN_EDGES[:-1] + 5) / 40.0)), 0.0))
    assert fit["A"] == pytest.approx(4.0, rel=0.05) and fit["tau_s"] == pytest.approx(40.0, rel=0.1)


def test_the_script_says_what_it_needs(tmp_path, capsys):
    assert sr.main([str(tmp_path)]) == 1
    assert "missing the Raw_data folder of Stress-Predict" in capsys.readouterr().err
