"""Helpers for tests and notebooks: where the shared real data lives."""

from __future__ import annotations

import os
from pathlib import Path


def test_data_dir() -> Path | None:
    """``$ENGAGE_TEST_DATA`` or ``../shared/data`` beside the checkout, or None when absent."""
    env = os.environ.get("ENGAGE_TEST_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[3] / "shared" / "data")
    candidates.append(Path.cwd().parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None
