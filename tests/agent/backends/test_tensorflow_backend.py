"""The TensorFlow baseline backend on a real zipped SavedModel."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from agent.backends import BuildRequest
from agent.backends.tensorflow import TensorflowBackend, unpack_savedmodel
from edgelab.domain import Precision


def test_savedmodel_zip_runs_and_is_unpacked_once_per_hash(keras_artifacts: dict[str, Path], tmp_path: Path) -> None:
    x = np.load(keras_artifacts["calibration"])[:5]
    request = BuildRequest(precision=Precision.FP32, batch_sizes=[5], cache_dir=tmp_path, model_sha256="abc")

    engine = TensorflowBackend().load(keras_artifacts["savedmodel.zip"], request)
    out = engine.infer(x)
    again = unpack_savedmodel(keras_artifacts["savedmodel.zip"], tmp_path, "abc")

    assert engine.input_shape == (None, 32, 1)
    assert out.shape == (5, 3) and np.allclose(out.sum(axis=1), 1.0, atol=1e-5)
    assert again == tmp_path / "savedmodel-abc"
    assert [p.name for p in tmp_path.iterdir()] == ["savedmodel-abc"]  # no staging dirs left behind


def test_archive_without_a_savedmodel_or_with_unsafe_paths_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("README", "not a model")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape.pb", "x")

    with pytest.raises(ValueError, match=r"no saved_model\.pb"):
        unpack_savedmodel(empty, tmp_path / "cache", "e")
    with pytest.raises(ValueError, match="unsafe path"):
        unpack_savedmodel(evil, tmp_path / "cache", "v")
    assert not (tmp_path / "escape.pb").exists()


def test_probe_does_not_import_tensorflow() -> None:
    import sys

    was_loaded = "tensorflow" in sys.modules
    info = TensorflowBackend().probe()

    assert info.available and info.precisions == [Precision.FP32]
    assert ("tensorflow" in sys.modules) == was_loaded
