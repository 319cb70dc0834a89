"""Dataset work on any joblib backend (issue 24, item 4): results were requested as a generator,
which joblib's multiprocessing backend and Ray's refuse (``ValueError ... does not support
return_as=generator``). Here: joblib's multiprocessing backend in-process, and ``engage train`` and
``engage evaluate`` through a real Dask LocalCluster on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import joblib
import numpy as np
import pytest
from joblib import delayed

from engage.datasets import StressPredict
from engage.models.training import WindowConfig, extract_windows, loso, report, run_jobs

from test_training_cli import make_folder

CONFIG = WindowConfig(window_s=60.0, hop_s=10.0, calibration_s=120.0, rank_history_s=None)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("sp") / "sp", minutes=8)


def test_run_jobs_on_a_backend_that_refuses_generators(capsys):
    with joblib.parallel_backend("multiprocessing"):
        out = run_jobs([delayed(pow)(i, 2) for i in range(7)], n_jobs=2, desc="squares", unit="number")
    assert out == [i * i for i in range(7)]
    assert "squares: " in capsys.readouterr().err  # progress per batch


@pytest.mark.timeout(240)
def test_windows_and_loso_on_joblibs_multiprocessing_backend(folder):
    ds = StressPredict(folder)
    plain = extract_windows(ds, config=CONFIG, n_jobs=1)
    with joblib.parallel_backend("multiprocessing"):
        sets = extract_windows(ds, config=CONFIG, n_jobs=2)
        probs = loso(sets, "logistic", n_jobs=2)
    assert [s.subject for s in sets] == ["S01", "S02", "S03"]
    for a, b in zip(plain, sets):
        np.testing.assert_array_equal(a.X, b.X)
    assert report(sets, probs)["balanced_accuracy"] > 0.7


def _engage(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "engage", *args], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


@pytest.mark.timeout(600)
def test_train_and_evaluate_through_a_dask_local_cluster(folder, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the workers' gradient boosting (see test_training_cli)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        common = ["--dataset", "stress-predict", "--root", str(folder), "--backend", "dask",
                  "--scheduler", cluster.scheduler_address, "--cache", ""]
        info, err = _engage("train", *common, "--out", str(tmp_path / "m.skops"), "--kind", "logistic", "--calibration", "120",
                            "--reorder-copies", "0", cwd=tmp_path)
        assert info["subjects"] == ["S01", "S02", "S03"] and (tmp_path / "m.md").is_file()
        assert "feature windows: 3/3 subjects" in err
        out, _ = _engage("evaluate", *common, "--model", str(tmp_path / "m.skops"), "--cv", "loso",
                         "--plot", str(tmp_path / "e.png"), cwd=tmp_path)
        assert out["balanced_accuracy"] > 0.7 and out["cv"] == "loso"
        # the work ran on the cluster's workers, not in the command's own process
        tasks = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.transition_log))
        assert tasks > 0
