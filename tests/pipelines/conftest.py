"""Fixtures for the pipelines tests: the real MIT-BIH records, no synthetic stand-ins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mitdb_dir() -> Path:
    """The MIT-BIH Arrhythmia Database folder (EDGELAB_MITDB overrides); skips when it is absent."""
    pytest.importorskip("wfdb", reason="needs pip install 'edgelab[train]'")
    pytest.importorskip("scipy", reason="needs pip install 'edgelab[train]'")
    override = os.environ.get("EDGELAB_MITDB")
    path = Path(override) if override else Path(__file__).resolve().parents[2].parent / "shared/data/mitdb"
    if not (path / "100.hea").is_file():
        pytest.skip(f"MIT-BIH records not found at {path} (set EDGELAB_MITDB)")
    return path
