from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import write_keras_artifacts


@pytest.fixture(scope="session")
def keras_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny Keras model as SavedModel, zipped SavedModel and TFLite FP32/FP16/INT8 (built once per run)."""
    pytest.importorskip("tensorflow")
    return write_keras_artifacts(tmp_path_factory.mktemp("keras"))
