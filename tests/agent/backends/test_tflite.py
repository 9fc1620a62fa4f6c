"""The TFLite backend on real .tflite files converted from a Keras model, through the real interpreter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.backends import BuildRequest
from agent.backends.tflite import TfliteBackend
from edgelab.domain import Precision


def _keras_reference(artifacts: dict[str, Path], x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    fn = tf.saved_model.load(str(artifacts["savedmodel"])).signatures["serving_default"]
    return np.asarray(next(iter(fn(ecg=tf.constant(x)).values())).numpy())


@pytest.mark.parametrize(
    ("artifact", "precision", "tolerance"),
    [
        ("tflite-fp32", Precision.FP32, 1e-5),
        ("tflite-fp16", Precision.FP16, 1e-2),
        ("tflite-int8", Precision.INT8, 0.1),
    ],
)
def test_each_precision_runs_at_several_batch_sizes_and_agrees_with_keras(
    keras_artifacts: dict[str, Path], artifact: str, precision: Precision, tolerance: float
) -> None:
    x = np.load(keras_artifacts["calibration"])[:8]
    expected = _keras_reference(keras_artifacts, x)
    engine = TfliteBackend().load(keras_artifacts[artifact], BuildRequest(precision=precision, batch_sizes=[1, 8]))

    single = engine.infer(x[:1])
    batch = engine.infer(x)

    assert engine.input_shape == (None, 32, 1)
    assert single.shape == (1, 3) and batch.shape == (8, 3) and batch.dtype == np.float32
    assert np.abs(batch - expected).max() < tolerance
    assert np.allclose(single, batch[:1], atol=tolerance)
    assert engine.details["tflite_io_dtype"] == ("int8" if precision == Precision.INT8 else "float32")
    engine.close()


def test_a_job_asking_another_precision_than_the_file_holds_is_refused(keras_artifacts: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="int8 TFLite model but the job asks for fp32"):
        TfliteBackend().load(keras_artifacts["tflite-int8"], BuildRequest(precision=Precision.FP32, batch_sizes=[1]))


def test_xnnpack_can_be_turned_off(keras_artifacts: dict[str, Path]) -> None:
    x = np.load(keras_artifacts["calibration"])[:4]
    request = BuildRequest(precision=Precision.FP32, batch_sizes=[4], options={"xnnpack": "off"}, num_threads=1)

    engine = TfliteBackend().load(keras_artifacts["tflite-fp32"], request)

    assert engine.details["xnnpack"] == "off" and engine.details["num_threads"] == "1"
    assert np.allclose(engine.infer(x), _keras_reference(keras_artifacts, x), atol=1e-5)


def test_probe_names_the_runtime_and_all_precisions() -> None:
    info = TfliteBackend().probe()

    assert info.available, info.reason
    assert info.version.split()[0] in {"ai-edge-litert", "tflite-runtime", "tensorflow"}
    assert set(info.precisions) == {Precision.FP32, Precision.FP16, Precision.INT8}
