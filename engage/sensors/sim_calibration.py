"""The numbers the simulated viewer is calibrated on, with where each comes from.

Three kinds (``sensors/simulated.md`` is the table with the full reasoning):

* :data:`STRESS_PREDICT` — measured on the twenty Stress-Predict participants (Empatica E4 at the
  wrist) by :mod:`engage.datasets.stress_responses`; ``python -m engage.datasets.stress_responses``
  recomputes them and a real-data test checks they are still what it prints. Quartiles are
  (25th, 50th, 75th percentile).
* :data:`PUBLISHED` — values from the literature, each with its reference.
* the model constants below them, each derived from those numbers by the formula in its comment
  (or marked *assumed* where no source was found).

The stress task of a lab protocol is the top of the simulator's scale: a scene of intensity 1.0
moves a viewer's heart rate and skin conductance as much as a Stroop test or an interview moved
the Stress-Predict participants; a scene of intensity 0 is sitting at rest.

>>> STRESS_PREDICT["task_dhr_bpm"][1]
3.3
"""

from __future__ import annotations

#: Measured on Stress-Predict (S02-S20: 19 participants, 57 task blocks) by
#: ``python -m engage.datasets.stress_responses``; (25th, 50th, 75th percentile), or a step fit.
STRESS_PREDICT = {
    "rest_hr_bpm": (71.2, 79.8, 84.2),
    "rest_scl_us": (0.29, 0.40, 1.01),
    "task_dhr_bpm": (-1.5, 3.3, 7.4),
    "task_dscl_rel": (-0.03, 0.24, 0.55),
    "task_dscl_us": (-0.023, 0.077, 0.424),
    "null_dhr_bpm": (-1.3, 4.3, 8.4),
    "null_dscl_rel": (-0.31, -0.16, 0.03),
    "hr_slow_sd_bpm": (3.1, 4.3, 6.7),
    "scr_rest_per_min": (4.3, 7.1, 12.9),
    "scr_task_per_min": (7.9, 12.4, 14.7),
    "scr_amp_rel": (0.024, 0.059, 0.093),
    "hr_onset": {"A": 3.0, "delay_s": -24.0, "tau_s": 33.0},
    "hr_offset": {"A": -7.2, "delay_s": 52.0, "tau_s": 44.0},
    "scl_onset": {"A": 0.683, "delay_s": -35.0, "tau_s": 270.0},
    "scl_offset": {"A": -0.290, "delay_s": 61.0, "tau_s": 151.0},
}

#: Values from the literature: (value, reference).
PUBLISHED = {
    "blink_rate_rest_per_min": (17.0, "Bentivoglio et al. 1997, Mov Disord 12:1028 (150 adults at rest; "
                                      "log-normal across people; reading -55 %, conversation +100 %)"),
    "blink_rate_primary_gaze_range": ((8.0, 21.0), "Doughty 2001, Optom Vis Sci 78:712 (95 % range of "
                                                    "primary-gaze blink rates in adults)"),
    "blink_inhibition_attending": (0.55, "Bentivoglio et al. 1997 (reading, a visually demanding task); "
                                         "films inhibit blinking too: Nakano et al. 2009, Proc R Soc B 276:3635; "
                                         "Shin et al. 2015, PLoS One 10:e0141242; Maffei & Angrilli 2019, "
                                         "Physiol Behav 204:256"),
    "look_away_home_tv": (0.30, "Anderson et al. 1986, Child Dev 57:1024 (visual attention to TV at home "
                                "about 70 % and lower in adults); 'Viewing the viewers' (in-home video of 50 "
                                "people: 46 % of TV time spent doing something else, most in low-attention content)"),
    "look_length_lognormal": (True, "Burns & Anderson 1993, Commun Res 20:777 (look lengths log-normal, "
                                    "attentional inertia)"),
    "boredom_proneness_cv": (17.2 / 96.4, "Boredom Proneness Scale (Farmer & Sundberg 1986) in 2,873 "
                                          "undergraduates: mean 96.4, SD 17.2 (a University of Waterloo thesis)"),
    "boredom_physiology": ("HR rises, SCL falls", "Merrifield & Danckert 2014, Exp Brain Res 232:481 "
                                                  "(boredom vs sadness: rising HR, lower SCL, higher cortisol)"),
    "engaged_movement": ("less fidgeting when engaged", "Witchel et al. 2014, Brighton and Sussex Medical "
                                                        "School (non-instrumental movement inhibition during "
                                                        "screen engagement)"),
    "blinks_mind_wandering": ("more blinks", "Smilek, Carriere & Cheyne 2010, Psychol Sci 21(6) (reading: "
                                             "more blinks during mind wandering)"),
    "scr_min_amplitude_us": (0.01, "Boucsein et al. 2012, Psychophysiology 49:1017 (computer scoring)"),
}

# ------------------------------------------------------------------------------------------------
# Model constants derived from the numbers above (sensors/simulated.md explains each).
# ------------------------------------------------------------------------------------------------

#: The latent model's boredom late in a long rest block (sitting with nothing to watch): the real
#: resting heart rates were measured in such blocks, so the population's resting_hr is centred
#: HR_PER_BOREDOM * REST_BOREDOM below their median.
REST_BOREDOM = 0.8
#: Arousal of a viewer at rest (scene intensity 0) and during a stress task (intensity 1), from the
#: latent model's steady state: AROUSAL_REST + AROUSAL_PER_INTENSITY * intensity.
AROUSAL_REST = 0.15
AROUSAL_PER_INTENSITY = 0.75
#: Boredom's own heart-rate term (bpm at full boredom): Merrifield & Danckert's direction, size assumed.
HR_PER_BOREDOM = 1.5
#: bpm per unit of arousal: the median task ΔHR plus the boredom relief of a task (a rested viewer is
#: bored, ~0.7 less so in the task) over the arousal step of a task: (3.3 + 1.5 * 0.7) / 0.78.
HR_PER_AROUSAL = (STRESS_PREDICT["task_dhr_bpm"][1] + HR_PER_BOREDOM * 0.7) / 0.78
#: Time constants (s) of arousal going up and down: the heart-rate step fits at task onset and offset.
AROUSAL_TAU_UP = STRESS_PREDICT["hr_onset"]["tau_s"]
AROUSAL_TAU_DOWN = STRESS_PREDICT["hr_offset"]["tau_s"]
#: Tonic skin conductance follows arousal with the SCL offset fit's time constant (the onset fit,
#: 270 s, still rises at the end of its 5-min window: the level drifts within long tasks).
SCL_TAU = STRESS_PREDICT["scl_offset"]["tau_s"]
#: SCL relative change per unit of (slow) arousal: a 6-10 min task reaches ~0.6 of its arousal step
#: 0.78 in its block mean with SCL_TAU, so 0.24 / (0.6 * 0.78) ≈ 0.5; boredom lowers SCL by
#: SCL_PER_BOREDOM (direction: Merrifield & Danckert; size assumed).
SCL_PER_AROUSAL = STRESS_PREDICT["task_dscl_rel"][1] / (0.6 * 0.78)
SCL_PER_BOREDOM = 0.10
#: Slow heart-rate fluctuation at rest (an Ornstein-Uhlenbeck process): SD chosen so the SD of 30-s
#: heart rates over rest blocks matches the E4 beats' median (4.3 bpm) with the boredom and drift
#: terms added; time constant assumed.
HR_SLOW_SD = 3.0
HR_SLOW_TAU = 120.0
#: SCRs per minute at rest and in a stress task (arousal interpolates between them): the measured
#: medians. The same counter finds fewer in simulated viewers (sensors/simulated.md): it merges
#: responses that overlap and misses those under 0.01 µS, and the E4's wrist signal has small
#: artefacts that it counts.
SCR_RATE_REST = STRESS_PREDICT["scr_rest_per_min"][1]
SCR_RATE_TASK = STRESS_PREDICT["scr_task_per_min"][1]
#: Median SCR amplitude relative to the SCL (log-normal around it, SD of log 0.6: the quartiles
#: 0.024 … 0.093 of the per-participant medians span ~1.3 in log units across people).
SCR_AMP_REL = STRESS_PREDICT["scr_amp_rel"][1]
#: ... at the median resting level; elsewhere the amplitude grows with the square root of the level
#: (a measured ratio of counted SCRs overstates it for low levels, where only big ones pass 0.01 µS).
SCR_AMP_LEVEL = STRESS_PREDICT["rest_scl_us"][1]
#: Blinking while attending to a film: the resting rate times (1 - BLINK_INHIBITION * engagement).
BLINK_INHIBITION = PUBLISHED["blink_inhibition_attending"][0]
#: Share of time looking away from the screen when fully bored, and when fully engaged (assumed:
#: a lab film viewer rarely looks away; Faber et al. 2020, J Exp Psychol Hum Percept Perform
#: 46(10), doi:10.1037/xhp0000743, found gaze not reliably tied to mind wandering while watching a
#: film in the lab).
LOOK_AWAY_BORED = PUBLISHED["look_away_home_tv"][0]
LOOK_AWAY_ENGAGED = 0.03

__all__ = ["PUBLISHED", "STRESS_PREDICT"]
