"""``engage train`` and ``engage evaluate`` end to end on a generated Stress-Predict folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engage.cli import main



@pytest.fixture(autouse=True)
def _one_openmp_thread():
    """Gradient boosting's OpenMP threads spin-wait on tiny training sets; on a shared, loaded
    machine one thread is several times faster (11 s instead of 51 s for a test training)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        yield

def make_folder(root: Path, subjects=("S01", "S02", "S03"), minutes=10) -> Path:
    """E4 exports whose EDA and HR rise during the labelled stress blocks (minutes 6-7 and 8.5-10)."""
    rows = ["Participant,HR,respr,Time(sec),Label"]
    for k, s in enumerate(subjects):
        rng = np.random.default_rng(k)
        t0 = 1_600_000_000.0 + 10_000 * k
        n = minutes * 60
        stress = lambda t: ((t >= 360) & (t < 420)) | (t >= 510)  # noqa: E731
        folder = root / "Raw_data" / s
        folder.mkdir(parents=True)

        def sig(name, fs, values, cols=1):
            head = ", ".join([f"{t0:.6f}"] * cols) + "\n" + ", ".join([f"{fs:.6f}"] * cols) + "\n"
            (folder / f"{name}.csv").write_text(head + "\n".join(",".join(f"{v:.4f}" for v in np.atleast_1d(r))
                                                                  for r in values) + "\n")

        t4 = np.arange(n * 4) / 4.0
        sig("EDA", 4, 1.5 + k * 0.5 + 0.6 * stress(t4) + rng.normal(0, 0.02, t4.size))
        sig("TEMP", 4, np.full(t4.size, 32.0))
        t1 = np.arange(n, dtype=float)
        sig("HR", 1, 65 + 5 * k + 10 * stress(t1) + rng.normal(0, 1.5, n))
        sig("BVP", 64, rng.normal(0, 20, n * 64))
        sig("ACC", 32, rng.integers(-3, 3, (n * 32, 3)) + [0, 0, 64], cols=3)
        rows += [f"{int(s[1:])},70,12,{int(t0 + i)},{int(stress(np.array([i]))[0])}" for i in range(n)]
    (root / "Processed_data").mkdir(parents=True)
    (root / "Processed_data" / "Improved_All_Combined_hr_rsp_binary.csv").write_text("\n".join(rows) + "\n")
    return root


def test_train_then_evaluate(tmp_path, capsys):
    root = make_folder(tmp_path / "sp")
    model = tmp_path / "m.skops"
    cache = tmp_path / "cache"
    assert main(["train", "--dataset", "stress-predict", "--root", str(root), "--out", str(model),
                 "--cache", str(cache), "--reorder-copies", "2"]) == 0
    # each subject as recorded (for scoring) and 2 re-ordered copies of it (for training)
    assert model.is_file() and len(list(cache.glob("*.npz"))) == 3 * 3
    captured = capsys.readouterr()
    info = json.loads(captured.out.strip().splitlines()[-1])
    assert info["reorder"]["copies"] == 2 and info["reorder"]["seed"] == 0
    # chosen without peeking: logistic or ensemble and a threshold, by cross-validation over the training subjects
    assert info["kind"] in ("logistic", "ensemble") and set(info["choice"]) == {"logistic", "ensemble"}
    assert 0.3 <= info["threshold"] <= 0.8 and info["selection"]["false_alarm_cost"] == 1.5
    assert "feature windows: 3/3 subjects" in captured.err  # progress lines although stderr is not a terminal
    card = model.with_suffix(".md")
    assert info["card"] == str(card) and "## How it was chosen" in card.read_text()
    assert "upper estimate" in card.read_text()
    plot, preds = tmp_path / "eval.png", tmp_path / "preds.csv"
    assert main(["evaluate", "--dataset", "stress-predict", "--root", str(root), "--model", str(model),
                 "--cv", "loso", "--plot", str(plot), "--cache", str(cache), "--predictions-out", str(preds)]) == 0
    assert len(list(cache.glob("*.npz"))) == 3 * 3  # the windows train computed, read back
    printed = capsys.readouterr().out.strip().splitlines()
    out = json.loads(printed[-1])
    assert set(out["per_subject"]) == {"S01", "S02", "S03"} and set(out["choices"]) == {"S01", "S02", "S03"}
    assert out["balanced_accuracy"] > 0.8 and {"f1", "roc_auc", "sensitivity", "specificity"} <= set(out)
    assert np.sum(out["confusion"]) == out["n"]
    lo, hi = out["intervals"]["balanced_accuracy"]
    assert lo <= out["balanced_accuracy"] <= hi and out["intervals"]["unit"] == "participant"
    assert any(line.split()[:1] == ["S02"] for line in printed)  # the per-participant table
    since = out["by_time_since_change"]
    assert sum(b["n"] for c in ("0", "1") for b in since[c].values()) == out["n"]
    assert plot.stat().st_size > 10_000
    table = pd.read_csv(preds)
    assert list(table.columns) == ["subject", "session", "time", "label", "probability", "decision"]
    assert len(table) >= out["n"] and set(table["subject"]) == {"S01", "S02", "S03"}
    assert ((table["probability"] >= table["subject"].map(lambda k: out["per_subject"][k]["threshold"]))
            == table["decision"].astype(bool)).all()
    assert main(["evaluate", "--dataset", "stress-predict", "--root", str(root), "--model", str(model),
                 "--plot", str(plot), "--subjects", "S02", "--cache", ""]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(out["per_subject"]) == ["S02"] and out["cv"] is None
    # trained on the sessions as recorded: no copies, and evaluate --cv loso does the same
    plain = tmp_path / "plain.skops"
    assert main(["train", "--dataset", "stress-predict", "--root", str(root), "--out", str(plain), "--cache", str(cache),
                 "--reorder-copies", "0", "--kind", "logistic", "--loso"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["reorder"] is None and info["kind"] == "logistic" and info["loso"]["balanced_accuracy"] > 0.8
    assert info["threshold"] == 0.5 and info["choice"] is None and len(info["loso"]["intervals"]["roc_auc"]) == 2
    assert "| balanced accuracy |" in plain.with_suffix(".md").read_text()
    assert len(list(cache.glob("*.npz"))) == 3 * 3
    with pytest.raises(SystemExit):
        main(["train", "--dataset", "stress-predict", "--root", str(root), "--out", str(plain), "--reorder-copies", "-1"])
    assert "0 or more" in capsys.readouterr().err


def test_cli_errors_are_clear(tmp_path, capsys):
    bad = tmp_path / "foreign.skops"
    bad.write_bytes(b"PK\x03\x04 definitely not a model")
    root = make_folder(tmp_path / "sp", subjects=("S01",), minutes=1)
    assert main(["evaluate", "--dataset", "stress-predict", "--root", str(root), "--model", str(bad)]) == 2
    assert "foreign.skops" in capsys.readouterr().err
    assert main(["train", "--dataset", "wesad", "--root", str(tmp_path / "nope"), "--out", str(bad)]) == 2
    assert "WESAD root folder not found" in capsys.readouterr().err


def test_replay_with_a_model(tmp_path, capsys):
    """``engage replay --model``: a foreign file is refused before the replay; a good model runs."""
    from engage.models.evaluation import shipped_model_path

    bad = tmp_path / "foreign.skops"
    bad.write_bytes(b"PK\x03\x04 definitely not a model")
    csv = tmp_path / "eda.csv"
    t = np.arange(0, 400, 0.25)
    csv.write_text("timestamp,eda\n" + "\n".join(f"{a:.2f},{2 + 0.1 * np.sin(a / 20):.4f}" for a in t) + "\n")
    assert main(["replay", str(csv), "--type", "EDA", "--model", str(bad), "--quiet", "--no-story",
                 "--out", str(tmp_path / "o")]) == 2
    assert "foreign.skops" in capsys.readouterr().err
    assert main(["replay", str(csv), "--type", "EDA", "--model", str(shipped_model_path()), "--quiet", "--no-story",
                 "--out", str(tmp_path / "o")]) == 0  # EDA only: the model lacks its pulse, the rules score
    assert (tmp_path / "o" / "events.jsonl").is_file()


def test_score_and_evaluate_without_labels(tmp_path, capsys):
    """An unlabelled E4 export: ``engage score`` and ``engage evaluate`` write predictions for it."""
    root = make_folder(tmp_path / "sp", subjects=("S01", "S02"), minutes=10)
    model = tmp_path / "m.skops"
    assert main(["train", "--dataset", "stress-predict", "--root", str(root), "--out", str(model), "--cache", "",
                 "--reorder-copies", "0", "--kind", "logistic", "--calibration", "120"]) == 0
    capsys.readouterr()
    out = tmp_path / "scores.csv"
    assert main(["score", str(root / "Raw_data" / "S02"), "--model", str(model), "--out", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    table = pd.read_csv(out)
    assert set(table["subject"]) == {"S02"} and table["label"].isna().all() and len(table) > 50
    assert doc["recordings"]["S02"]["windows"] == len(table)
    # stress windows (minutes 6-7 and 8.5-10 of the generated export) score higher than rest
    centre = table["time"] - 1_600_010_000.0 - 30.0  # S02's export starts at 1 600 010 000 s; 60 s windows
    stress = ((centre >= 360) & (centre < 420)) | (centre >= 510)
    assert stress.sum() > 10 and (~stress).sum() > 10
    assert table["probability"][stress].mean() > table["probability"][~stress].mean()
    # a folder that is not an export
    assert main(["score", str(root), "--model", str(model), "--out", str(out)]) == 2
    assert "neither an E4 export folder" in capsys.readouterr().err
    # evaluate on a dataset whose labels are all missing: predictions only
    (root / "Processed_data" / "Improved_All_Combined_hr_rsp_binary.csv").write_text(
        "Participant,HR,respr,Time(sec),Label\n1,70,12,1600000000,\n2,70,12,1600010000,\n")
    preds = tmp_path / "unlabelled.csv"
    assert main(["evaluate", "--dataset", "stress-predict", "--root", str(root), "--model", str(model),
                 "--cache", "", "--predictions-out", str(preds)]) == 0
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert doc["n"] == 0 and len(pd.read_csv(preds)) > 100
