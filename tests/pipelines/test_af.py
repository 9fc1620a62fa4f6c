"""The mitdb-af pipelines: one real epoch per variant on a few records, through ONNX and the shipped npz.

slow: ~25 s each on two idle cores (TensorFlow start, SavedModel export and tf2onnx dominate).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines import features
from pipelines.base import Pipeline, TrainConfig, TrainOutput
from pipelines.registry import get_pipeline
from pipelines.training import DATASET_KEYS

# 201 (DS1) and 202 (DS2) both hold N and AF rhythm; capped to keep the run to seconds.
CONFIG = {"records": ("201", "202"), "epochs": 1, "batch_size": 32, "max_train_beats": 64, "calibration_size": 16}


def _run(name: str, data_dir: Path, out_dir: Path) -> TrainOutput:
    pytest.importorskip("tensorflow", reason="needs pip install 'edgelab[train]'")
    pytest.importorskip("tf2onnx", reason="needs pip install 'edgelab[train]'")
    return get_pipeline(name).run(TrainConfig(data_dir=data_dir, **CONFIG), out_dir)  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "input_shape"),
    [
        ("mitdb-af-bilstm", (55, 2)),
        ("mitdb-af-bilstm-rr", (55, 2 + len(features.WINDOW_RR_FEATURES))),
        ("mitdb-af-squeezenet", (features.SCALOGRAM_SCALES, features.SCALOGRAM_TIME_BINS, 1)),
    ],
)
def test_af_pipeline_trains_exports_and_ships_its_inputs(
    name: str, input_shape: tuple[int, ...], mitdb_dir: Path, tmp_path: Path
) -> None:
    # prepare
    import onnxruntime as ort

    # execute
    out = _run(name, mitdb_dir, tmp_path)

    # assert
    assert isinstance(get_pipeline(name), Pipeline)
    assert out.pipeline == name
    assert out.split == "inter-patient"
    assert out.class_names == ("N", "AF")
    assert out.train_beats == 64  # stratified cap on 201's windows less the fifth held out for validation
    assert any(note.startswith("kept epoch 1 of 1") for note in out.notes)
    assert out.test_beats == 173  # every 10 s N/AF window of 202
    assert set(out.per_class_recall) == {"N", "AF"}
    assert 0.0 <= out.host_accuracy <= 1.0
    assert out.onnx_max_abs_diff < 1e-4
    with np.load(out.dataset_path) as data:
        assert sorted(data.files) == sorted(DATASET_KEYS)
        assert data["x_test"].shape == (173, *input_shape)
        assert data["x_calib"].shape == (16, *input_shape)
        x_test = data["x_test"]
    session = ort.InferenceSession(str(out.onnx_path), providers=["CPUExecutionProvider"])
    probs = session.run(None, {session.get_inputs()[0].name: x_test[:5]})[0]
    assert probs.shape == (5, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
