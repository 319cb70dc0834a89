from __future__ import annotations

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
