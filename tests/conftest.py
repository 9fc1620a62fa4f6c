from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordinator.server import Coordinator, start_coordinator
from edgelab.config import Settings
from tests.factories import write_linear_onnx, write_test_set

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def mitdb_dir() -> Path:
    path = Path(os.environ.get("EDGELAB_MITDB", REPO.parent / "shared" / "data" / "mitdb"))
    if not (path / "100.hea").is_file():
        pytest.skip(f"MIT-BIH not found at {path}")
    return path


@pytest.fixture
def onnx_model(tmp_path: Path) -> Path:
    return write_linear_onnx(tmp_path / "model.onnx")


@pytest.fixture
def test_set(tmp_path: Path) -> Path:
    return write_test_set(tmp_path / "testset.npz")


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[Coordinator]:
    """A real coordinator on 127.0.0.1 with an OS-chosen port and a SQLite file in tmp_path."""
    running = start_coordinator(Settings(home=tmp_path / "coordinator", host="127.0.0.1", port=0))
    yield running
    running.stop(grace=None)
