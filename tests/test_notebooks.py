"""Every notebook in notebooks/ runs green: on the shared real data when present, and on simulated data.

Each notebook is executed top to bottom in a fresh python3 kernel (nbclient + ipykernel) with this
checkout first on the kernel's path; any cell that raises fails the test with the cell and the error.
"""

from __future__ import annotations

import os
from pathlib import Path

import ipykernel  # noqa: F401  (the python3 kernel the notebooks run in; test extra)
import nbclient
import nbclient.exceptions
import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
#: notebooks that read the shared data and have a simulated fallback worth running on its own
WITH_FALLBACK = ("01_lab_recording.ipynb", "02_train_evaluate_model.ipynb")


def test_there_are_the_three_tutorials():
    names = [p.name for p in NOTEBOOKS]
    assert names == ["01_lab_recording.ipynb", "02_train_evaluate_model.ipynb", "03_narrative_policies.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code"
    assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} was committed with outputs"


def _execute(path: Path, tmp_path: Path, monkeypatch, data: Path | None) -> nbformat.NotebookNode:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    monkeypatch.setenv("ENGAGE_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    if data is not None:
        monkeypatch.setenv("ENGAGE_TEST_DATA", str(data))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{exc}")
    return nb


def _text(nb) -> str:
    out = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            out.append(o.get("text", "") or str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


def _images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.realdata
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_the_shared_data(path, tmp_path, monkeypatch, shared_data):
    nb = _execute(path, tmp_path, monkeypatch, shared_data)
    text = _text(nb)
    assert _images(nb) >= 1
    if path.name.startswith("01"):
        assert "clock reset" in text and "real ECG, EDA and RSP" in text
        assert (tmp_path / "out" / "lab-recording" / "lab-report.html").exists()
    if path.name.startswith("02"):
        assert "Stress-Predict" in text and "LOSO, 3 subjects" in text
    if path.name.startswith("03"):
        assert "paired difference" in text and "director" in text


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name in WITH_FALLBACK], ids=lambda p: p.stem)
def test_notebook_falls_back_to_simulated_data(path, tmp_path, monkeypatch):
    empty = tmp_path / "no-shared-data"
    empty.mkdir()
    nb = _execute(path, tmp_path, monkeypatch, empty)
    text = _text(nb)
    assert _images(nb) >= 2
    if path.name.startswith("01"):
        assert "simulated viewer" in text and (tmp_path / "out" / "lab-recording" / "physiology-report.html").exists()
    if path.name.startswith("02"):
        assert "generated wrist dataset" in text
