from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from engage.core.testing import test_data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real recordings of ../shared/data (or $ENGAGE_TEST_DATA); skips the test when absent."""
    root = test_data_dir()
    if root is None:
        pytest.skip("shared real data not found (set ENGAGE_TEST_DATA)")
    return root


@pytest.fixture(scope="session")
def talking_head_clip(shared_data: Path) -> Path:
    """The shared talking-head video (real face, annotated blinks); skips when it is absent."""
    path = shared_data / "talking_head_blinks" / "WDA_AlexandriaOcasioCortez_000.mp4"
    if not path.exists():
        pytest.skip("talking-head clip not present")
    return path


@pytest.fixture(scope="session")
def ubfc_face_rows(shared_data: Path):
    """UBFC-rPPG subject 1's first 2.5 s (a real webcam) through the face analyzer: (timestamps, Face rows, fps,
    the oximeter's PPG at each frame). Frame i is at i / 29.264 s; the ground truth's time row starts at frame 0."""
    pytest.importorskip("mediapipe")
    cv2 = pytest.importorskip("cv2")
    import numpy as np

    from engage.signals.face_mesh import FaceAnalyzer

    folder = shared_data / "ubfc_rppg_clip"
    if not (folder / "vid.avi").exists():
        pytest.skip("UBFC clip not present")
    cap = cv2.VideoCapture(str(folder / "vid.avi"))
    fps = 29.264
    analyzer = FaceAnalyzer()
    rows = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        rows.append(analyzer(frame, len(rows) / fps))
    cap.release()
    analyzer.close()
    t = np.arange(len(rows)) / fps
    truth = np.loadtxt(folder / "ground_truth.txt")
    return t, np.asarray(rows), fps, np.interp(t, truth[2], truth[0])


# A skip for a package or a tool that the README's install should have brought: in CI (ENGAGE_CI=1, set by .ci/run)
# it fails the run, because a green run that skipped the lab journey for want of mne hid a broken install.
_MISSING_DEPENDENCY = re.compile(r"could not import|No module named|is not installed|apt-get install")


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def missing_dependency_skips(reports: list) -> list[str]:
    """The skipped reports whose reason is a missing package or tool, as 'node id: reason' lines."""
    return [f"{r.nodeid}: {_skip_reason(r)}" for r in reports
            if r.skipped and _MISSING_DEPENDENCY.search(_skip_reason(r))]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("ENGAGE_CI") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    missing = missing_dependency_skips(reporter.stats.get("skipped", []))
    if missing:
        reporter.write_sep("=", "ENGAGE_CI: skipped for a missing dependency (the install is broken)", red=True)
        for line in missing:
            reporter.write_line(line)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
