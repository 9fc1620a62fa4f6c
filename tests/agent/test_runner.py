"""run_benchmark on real ONNX Runtime sessions, and every failure class it can store."""

from pathlib import Path

import numpy as np
import pytest

from agent.runner import run_benchmark
from edgelab.domain import ArtifactRef, FailureKind, JobSpec, MeasurementSettings, Precision
from tests.factories import write_linear_onnx, write_test_set

FAST = MeasurementSettings(warmup_iterations=2, warmup_duration_s=0, min_iterations=20, min_duration_s=0.05)


def _spec(**overrides: object) -> JobSpec:
    fields: dict[str, object] = {
        "name": "t",
        "backend": "onnxruntime",
        "model": ArtifactRef("a" * 64, format="onnx"),
        "dataset": ArtifactRef("b" * 64, format="npz"),
        "batch_sizes": [1, 4],
        "measurement": FAST,
    }
    fields.update(overrides)
    return JobSpec(**fields)  # type: ignore[arg-type]


def test_real_run_reports_latency_per_batch_and_accuracy(onnx_model: Path, test_set: Path) -> None:
    data = np.load(test_set)
    weights = _weights(onnx_model)
    expected = (data["x_test"].reshape(len(data["x_test"]), -1) @ weights).argmax(axis=1)

    result = run_benchmark(_spec(), onnx_model, test_set)

    assert result.failure is None, result.failure
    assert [lat.batch_size for lat in result.latency] == [1, 4]
    assert all(lat.samples >= 20 and lat.p50_ms > 0 and lat.throughput_per_s > 0 for lat in result.latency)
    assert result.load_s > 0
    assert result.accuracy is not None
    assert result.accuracy.accuracy == pytest.approx(float((expected == data["y_test"]).mean()))
    assert result.manifest["backend"] == "onnxruntime" and result.manifest["execution_providers"]


def _weights(path: Path) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    return next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == "W")


def test_batch_larger_than_test_set_still_times_real_samples(tmp_path: Path, onnx_model: Path) -> None:
    small = write_test_set(tmp_path / "small.npz", n=3)

    result = run_benchmark(_spec(batch_sizes=[8]), onnx_model, small)

    assert result.failure is None and result.latency[0].batch_size == 8


@pytest.mark.parametrize(
    ("case", "kind", "message"),
    [
        ("corrupt_model", FailureKind.BUILD, "could not load"),
        ("wrong_shape", FailureKind.BAD_INPUT, "expects input"),
        ("corrupt_dataset", FailureKind.BAD_INPUT, "not a valid test-set bundle"),
        ("unknown_backend", FailureKind.UNSUPPORTED, "unknown backend"),
        ("unsupported_precision", FailureKind.UNSUPPORTED, "cannot build fp16"),
        ("wrong_format", FailureKind.UNSUPPORTED, "tflite"),
        ("wrong_classes", FailureKind.WRONG_OUTPUT, "output shape"),
    ],
)
def test_bad_input_becomes_a_classified_failure(
    tmp_path: Path, onnx_model: Path, test_set: Path, case: str, kind: FailureKind, message: str
) -> None:
    model, dataset, spec = onnx_model, test_set, _spec()
    if case == "corrupt_model":
        model = tmp_path / "corrupt.onnx"
        model.write_bytes(onnx_model.read_bytes()[:50])
    elif case == "wrong_shape":
        dataset = write_test_set(tmp_path / "long.npz", length=64)
    elif case == "corrupt_dataset":
        dataset = tmp_path / "corrupt.npz"
        dataset.write_bytes(b"not a zip")
    elif case == "unknown_backend":
        spec = _spec(backend="tvm")
    elif case == "unsupported_precision":
        spec = _spec(precision=Precision.FP16)
    elif case == "wrong_format":
        spec = _spec(model=ArtifactRef("a" * 64, format="tflite"))
    elif case == "wrong_classes":
        model = write_linear_onnx(tmp_path / "five.onnx", classes=5)

    result = run_benchmark(spec, model, dataset)

    assert result.failure is not None
    assert result.failure.kind is kind
    assert message in result.failure.message
    assert result.latency == []  # never a zero-throughput figure
