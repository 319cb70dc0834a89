"""``engage train`` and ``engage evaluate`` end to end on a generated Stress-Predict folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engage.cli import main


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
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["kind"] == "ensemble" and info["reorder"]["copies"] == 2 and info["reorder"]["seed"] == 0
    plot = tmp_path / "eval.png"
    assert main(["evaluate", "--dataset", "stress-predict", "--root", str(root), "--model", str(model),
                 "--cv", "loso", "--plot", str(plot), "--cache", str(cache)]) == 0
    assert len(list(cache.glob("*.npz"))) == 3 * 3  # the windows train computed, read back
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out["per_subject"]) == {"S01", "S02", "S03"}
    assert out["balanced_accuracy"] > 0.8 and {"f1", "roc_auc"} <= set(out)
    since = out["by_time_since_change"]
    assert sum(b["n"] for c in ("0", "1") for b in since[c].values()) == out["n"]
    assert plot.stat().st_size > 10_000
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
