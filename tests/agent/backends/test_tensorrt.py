"""The TensorRT backend against fake `tensorrt`/`pycuda` modules (no GPU here), plus a real-GPU run.

The fakes (fake_tensorrt.py) stand in at the library boundary only: the backend's own code
runs unpatched, and the fake engine computes out[i, j] = (j + 1) * sum(x[i]) so the data
that comes back through the pinned buffers is checked, not just the calls.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np
import pytest

from agent.backends import BACKENDS, BuildRequest, DeviceTimedEngine
from agent.backends.tensorrt import COMPUTE_SCOPE, SCOPE, EngineBuildError, TensorRTBackend
from agent.runner import run_benchmark
from edgelab.domain import ArtifactRef, JobSpec, MeasurementSettings, Precision
from edgelab.errors import BackendUnavailable
from tests.agent.backends.fake_tensorrt import FakeGpu, expected_output, install
from tests.factories import write_linear_onnx, write_test_set

FAST = MeasurementSettings(warmup_iterations=2, warmup_duration_s=0, min_iterations=20, min_duration_s=0.02)
LENGTH, CLASSES = 32, 3


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> FakeGpu:
    return install(monkeypatch, FakeGpu())


def _request(tmp_path: Path, precision: Precision = Precision.FP32, **overrides: object) -> BuildRequest:
    fields: dict[str, object] = {
        "precision": precision,
        "batch_sizes": [1, 8],
        "cache_dir": tmp_path / "cache",
        "model_sha256": "c" * 64,
        "calibration": np.random.default_rng(1).normal(size=(20, LENGTH, 1)).astype(np.float32),
    }
    fields.update(overrides)
    return BuildRequest(**fields)  # type: ignore[arg-type]


def _x(rows: int, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, LENGTH, 1)).astype(np.float32)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_probe_without_tensorrt_names_the_extra() -> None:
    info = TensorRTBackend().probe()

    assert not info.available
    assert "pip install 'edgelab[tensorrt]'" in info.reason


@pytest.mark.parametrize(("devices", "init_error"), [(0, ""), (1, "no CUDA-capable device is detected")])
def test_probe_without_a_cuda_device(monkeypatch: pytest.MonkeyPatch, devices: int, init_error: str) -> None:
    install(monkeypatch, FakeGpu(devices=devices, init_error=init_error))

    info = TensorRTBackend().probe()

    assert not info.available and info.reason.startswith("no CUDA device")
    assert init_error in info.reason
    assert "tensorrt backend unavailable: no CUDA device" in str(BackendUnavailable("tensorrt", info.reason))


@pytest.mark.parametrize(
    ("compute_capability", "precisions"),
    [
        ((8, 9), [Precision.FP32, Precision.FP16, Precision.INT8]),
        ((6, 1), [Precision.FP32, Precision.INT8]),  # GTX 10xx: slow FP16, DP4A INT8
        ((5, 3), [Precision.FP32, Precision.FP16]),  # Jetson Nano
    ],
)
def test_probe_on_tensorrt_10_judges_precisions_by_compute_capability(
    monkeypatch: pytest.MonkeyPatch, compute_capability: tuple[int, int], precisions: list[Precision]
) -> None:
    gpu = install(monkeypatch, FakeGpu(compute_capability=compute_capability))

    info = TensorRTBackend().probe()

    assert info.available and info.precisions == precisions
    assert info.version == f"10.3.0 on Fake RTX 4000 (sm {compute_capability[0]}.{compute_capability[1]})"
    assert gpu.builders_created == 0  # no builder (a context, hundreds of ms) for a TensorRT 10 probe


def test_probe_before_tensorrt_10_asks_the_builder_once(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = install(monkeypatch, FakeGpu(tensorrt_version="8.6.1", fast_fp16=False, fast_int8=True))
    backend = TensorRTBackend()

    first, second = backend.probe(), backend.probe()

    assert first.precisions == second.precisions == [Precision.FP32, Precision.INT8]
    assert gpu.builders_created == 1 and gpu.contexts_retained == 0


def test_fp16_build_sets_flag_profile_and_workspace(gpu: FakeGpu, tmp_path: Path) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx")

    engine = TensorRTBackend().load(model, _request(tmp_path, Precision.FP16, options={"workspace_mb": "256"}))

    (build,) = gpu.builds
    assert build.flags == {"FP16"}
    assert build.profiles == [{"ecg": ((1, LENGTH, 1), (8, LENGTH, 1), (8, LENGTH, 1))}]
    assert build.workspace == 256 << 20 and build.network_flags == 0
    assert engine.input_shape == (None, LENGTH, 1)
    assert engine.details["engine_cache"] == "miss" and float(engine.details["engine_build_s"]) >= 0
    assert engine.details["gpu_name"] == "Fake RTX 4000" and engine.details["compute_capability"] == "8.9"
    assert engine.details["tensorrt_version"] == "10.3.0"
    engine.close()


def test_tensorrt_8_network_is_explicit_batch_with_a_calibration_profile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gpu = install(monkeypatch, FakeGpu(tensorrt_version="8.6.1"))
    model = write_linear_onnx(tmp_path / "m.onnx")

    TensorRTBackend().load(model, _request(tmp_path, Precision.INT8)).close()

    (build,) = gpu.builds
    assert build.network_flags == 1 and build.calibration_profile_set and build.flags == {"INT8"}


def test_int8_calibrator_feeds_the_shipped_batches_then_reuses_its_cache(gpu: FakeGpu, tmp_path: Path) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx")
    request = _request(tmp_path, Precision.INT8)
    assert request.calibration is not None
    backend = TensorRTBackend()

    first = backend.load(model, request)
    for engine_file in (tmp_path / "cache" / "tensorrt").glob("*.engine"):
        engine_file.unlink()  # the engine is evicted; the calibration table stays
    second = backend.load(model, request)

    calibrated, cached = gpu.builds
    # 20 samples at the opt batch of 8: three batches, the last wrapping to the first samples.
    rows = np.arange(24) % 20
    assert [b.shape for b in calibrated.calibration_batches] == [(8, LENGTH, 1)] * 3
    np.testing.assert_array_equal(np.concatenate(calibrated.calibration_batches), request.calibration[rows])
    assert first.details["calibration"] == "entropy calibrator 2, 3 batches of 8"
    (table,) = (tmp_path / "cache" / "tensorrt").glob("*.calib")
    assert cached.calibration_batches == [] and cached.calibration_cache_read == table.read_bytes()
    assert second.details["calibration"] == "entropy calibrator 2, cache hit"
    first.close()
    second.close()


def test_int8_without_a_calibration_set_is_refused(gpu: FakeGpu, tmp_path: Path) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx")

    with pytest.raises(ValueError, match="INT8 needs a calibration set"):
        TensorRTBackend().load(model, _request(tmp_path, Precision.INT8, calibration=None))

    assert gpu.builds == []


def test_dla_core_targets_the_dla_with_gpu_fallback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    gpu = install(monkeypatch, FakeGpu(dla_cores=2, compute_capability=(8, 7)))
    model = write_linear_onnx(tmp_path / "m.onnx")

    engine = TensorRTBackend().load(model, _request(tmp_path, Precision.FP16, options={"dla_core": "1"}))

    (build,) = gpu.builds
    assert build.default_device_type == "DLA" and build.dla_core == 1
    assert build.flags == {"FP16", "GPU_FALLBACK"}
    assert engine.details["dla_core"] == "1"  # and the runtime deserialized it on core 1
    engine.close()


@pytest.mark.parametrize(
    ("dla_cores", "precision", "options", "message"),
    [
        (0, Precision.FP16, {"dla_core": "0"}, "this device has no DLA cores"),
        (2, Precision.FP16, {"dla_core": "2"}, "DLA cores 0..1"),
        (2, Precision.FP32, {"dla_core": "0"}, "DLA runs FP16 or INT8"),
        (2, Precision.FP16, {"dla_core": "x"}, "is not an integer"),
        (2, Precision.FP16, {"dla": "0"}, "unknown tensorrt option"),
    ],
)
def test_bad_dla_requests_are_refused(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    dla_cores: int,
    precision: Precision,
    options: dict[str, str],
    message: str,
) -> None:
    gpu = install(monkeypatch, FakeGpu(dla_cores=dla_cores))
    model = write_linear_onnx(tmp_path / "m.onnx")

    with pytest.raises(ValueError, match=message):
        TensorRTBackend().load(model, _request(tmp_path, precision, options=options))

    assert gpu.builds == [] and gpu.contexts_retained == 0 and gpu.context_stack == []


def test_parser_errors_surface(gpu: FakeGpu, tmp_path: Path) -> None:
    model = tmp_path / "broken.onnx"
    model.write_bytes(write_linear_onnx(tmp_path / "m.onnx").read_bytes()[:60])

    with pytest.raises(
        EngineBuildError,
        match=r"ONNX parser rejected broken.onnx: ErrorCode.MODEL_DESERIALIZE_FAILED at node -1: Failed to parse",
    ):
        TensorRTBackend().load(model, _request(tmp_path))

    assert gpu.builds == [] and gpu.contexts_retained == 0


def test_a_failed_build_reports_what_tensorrt_logged(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install(monkeypatch, FakeGpu(build_error="Could not find any implementation for node Gemm"))
    model = write_linear_onnx(tmp_path / "m.onnx")

    with pytest.raises(EngineBuildError, match="could not build the engine: ERROR: Could not find any implementation"):
        TensorRTBackend().load(model, _request(tmp_path))

    assert not (tmp_path / "cache" / "tensorrt").exists() or not list((tmp_path / "cache" / "tensorrt").iterdir())


def test_second_load_with_the_same_key_deserializes_the_cached_engine(gpu: FakeGpu, tmp_path: Path) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx")
    backend = TensorRTBackend()

    first = backend.load(model, _request(tmp_path))
    second = backend.load(model, _request(tmp_path))
    other_precision = backend.load(model, _request(tmp_path, Precision.FP16))
    other_profile = backend.load(model, _request(tmp_path, batch_sizes=[1, 16]))

    assert len(gpu.builds) == 3  # the second FP32 load built nothing
    assert [e.details["engine_cache"] for e in (first, second, other_precision, other_profile)] == [
        "miss",
        "hit",
        "miss",
        "miss",
    ]
    assert second.details["engine_file"] == first.details["engine_file"]
    np.testing.assert_allclose(second.infer(_x(4)), expected_output(_x(4), CLASSES), rtol=1e-6)
    for engine in (first, second, other_precision, other_profile):
        engine.close()


def test_an_unreadable_cached_engine_is_rebuilt(gpu: FakeGpu, tmp_path: Path) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx")
    backend = TensorRTBackend()
    backend.load(model, _request(tmp_path)).close()
    (cached,) = (tmp_path / "cache" / "tensorrt").glob("*.engine")
    cached.write_bytes(b"half an engine")

    engine = backend.load(model, _request(tmp_path))

    assert engine.details["engine_cache"] == "miss" and len(gpu.builds) == 2
    assert cached.read_bytes() != b"half an engine"
    engine.close()


def test_infer_copies_through_pinned_buffers_and_times_the_kernel_with_events(gpu: FakeGpu, tmp_path: Path) -> None:
    engine = TensorRTBackend().load(write_linear_onnx(tmp_path / "m.onnx"), _request(tmp_path))
    x = _x(5)

    out = engine.infer(x)

    np.testing.assert_allclose(out, expected_output(x, CLASSES), rtol=1e-6)
    assert out.shape == (5, CLASSES)
    assert engine.last_compute_ms == pytest.approx(5 * gpu.kernel_ms_per_sample)
    assert all(not stream.queue for stream in gpu.streams.values())  # synchronized before returning
    assert isinstance(engine, DeviceTimedEngine)
    assert engine.scope == SCOPE and engine.compute_scope == COMPUTE_SCOPE
    assert gpu.context_stack == []  # the context was pushed for the call and popped after
    engine.close()


def test_results_do_not_alias_the_reused_pinned_buffer(gpu: FakeGpu, tmp_path: Path) -> None:
    engine = TensorRTBackend().load(write_linear_onnx(tmp_path / "m.onnx"), _request(tmp_path))
    a, b = _x(8, seed=3), _x(1, seed=4)

    out_a = engine.infer(a)
    out_b = engine.infer(b)

    np.testing.assert_allclose(out_a, expected_output(a, CLASSES), rtol=1e-6)
    np.testing.assert_allclose(out_b, expected_output(b, CLASSES), rtol=1e-6)
    assert engine.last_compute_ms == pytest.approx(gpu.kernel_ms_per_sample)
    engine.close()


def test_infer_from_another_thread_makes_the_context_current_there(gpu: FakeGpu, tmp_path: Path) -> None:
    engine = TensorRTBackend().load(write_linear_onnx(tmp_path / "m.onnx"), _request(tmp_path))
    x = _x(3)
    outputs: list[np.ndarray] = []

    worker = threading.Thread(target=lambda: outputs.append(engine.infer(x)))
    worker.start()
    worker.join()

    np.testing.assert_allclose(outputs[0], expected_output(x, CLASSES), rtol=1e-6)
    engine.close()


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (
            np.zeros((9, LENGTH, 1), np.float32),
            r"batch of 9 is outside the engine's optimization profile \(batch 1..8\)",
        ),
        (np.zeros((2, LENGTH + 1, 1), np.float32), r"does not fit the engine input \('\?', 32, 1\)"),
    ],
)
def test_batches_the_engine_was_not_built_for_are_refused(
    gpu: FakeGpu, tmp_path: Path, batch: np.ndarray, message: str
) -> None:
    engine = TensorRTBackend().load(write_linear_onnx(tmp_path / "m.onnx"), _request(tmp_path))

    with pytest.raises(ValueError, match=message):
        engine.infer(batch)

    assert gpu.context_stack == []
    engine.close()


def _fixed_batch_onnx(tmp_path: Path, batch: int) -> Path:
    import onnx

    model = onnx.load(write_linear_onnx(tmp_path / "dynamic.onnx"))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = batch
    onnx.save(model, tmp_path / "fixed.onnx")
    return tmp_path / "fixed.onnx"


def test_a_fixed_batch_model_builds_without_a_profile_and_runs_only_that_batch(gpu: FakeGpu, tmp_path: Path) -> None:
    model = _fixed_batch_onnx(tmp_path, 4)
    backend = TensorRTBackend()

    engine = backend.load(model, _request(tmp_path, batch_sizes=[4]))
    out = engine.infer(_x(4))

    assert gpu.builds[0].profiles == [] and engine.input_shape == (4, LENGTH, 1)
    np.testing.assert_allclose(out, expected_output(_x(4), CLASSES), rtol=1e-6)
    with pytest.raises(ValueError, match="batch dim is fixed at 4; got a batch of 2"):
        engine.infer(_x(2))
    with pytest.raises(ValueError, match=r"fixed at 4; cannot run batch sizes \[1, 8\]"):
        backend.load(model, _request(tmp_path))
    engine.close()


def test_close_frees_device_memory_and_releases_the_context(gpu: FakeGpu, tmp_path: Path) -> None:
    engine = TensorRTBackend().load(write_linear_onnx(tmp_path / "m.onnx"), _request(tmp_path))
    assert gpu.memory and gpu.contexts_retained == 1

    engine.close()
    engine.close()

    assert gpu.memory == {} and gpu.contexts_retained == 0 and gpu.context_stack == []
    with pytest.raises(RuntimeError, match="closed"):
        engine.infer(_x(1))


def test_run_benchmark_through_the_registry_reports_latency_accuracy_and_manifest(gpu: FakeGpu, tmp_path: Path) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx")
    dataset = write_test_set(tmp_path / "t.npz")
    x, y = (np.load(dataset)[k] for k in ("x_test", "y_test"))
    spec = JobSpec(
        name="trt",
        backend="tensorrt",
        precision=Precision.FP16,
        batch_sizes=[1, 8],
        model=ArtifactRef("d" * 64, format="onnx"),
        dataset=ArtifactRef("e" * 64, format="npz"),
        measurement=FAST,
    )

    result = run_benchmark(spec, model, dataset, cache_dir=tmp_path / "cache")

    assert result.failure is None, result.failure
    end_to_end = [lat for lat in result.latency if lat.scope == SCOPE]
    compute = [lat for lat in result.latency if lat.scope == COMPUTE_SCOPE]
    assert [lat.batch_size for lat in end_to_end] == [1, 8] and all(lat.samples >= 20 for lat in end_to_end)
    if compute:  # the runner reports DeviceTimedEngine.last_compute_ms as its own figure
        assert [lat.p50_ms for lat in compute] == pytest.approx([gpu.kernel_ms_per_sample * b for b in (1, 8)])
    assert result.accuracy is not None
    expected = expected_output(x, CLASSES).argmax(axis=1)
    assert result.accuracy.accuracy == pytest.approx(float((expected == y).mean()))
    assert result.manifest["engine_cache"] == "miss" and result.manifest["gpu_name"] == "Fake RTX 4000"
    assert gpu.memory == {} and gpu.contexts_retained == 0


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("precision", "atol"), [(Precision.FP32, 1e-4), (Precision.FP16, 1e-2), (Precision.INT8, None)]
)
def test_real_gpu_end_to_end(tmp_path: Path, precision: Precision, atol: float | None) -> None:
    """On an NVIDIA GPU with the `tensorrt` extra: build, cache, time and score for real, checked against ORT."""
    info = BACKENDS["tensorrt"].probe()
    if not info.available:
        pytest.skip(info.reason)
    if precision not in info.precisions:
        pytest.skip(f"{precision.value} is not fast on this GPU ({info.version})")
    model = write_linear_onnx(tmp_path / "m.onnx", length=LENGTH, classes=CLASSES)
    dataset = write_test_set(tmp_path / "t.npz", length=LENGTH, classes=CLASSES)
    data = np.load(dataset)
    x = data["x_test"][:32]
    reference = _onnx_reference(model, data["x_test"])
    spec = JobSpec(
        name="trt-gpu",
        backend="tensorrt",
        precision=precision,
        batch_sizes=[1, 8, 32],
        model=ArtifactRef("f" * 64, format="onnx"),
        dataset=ArtifactRef("0" * 64, format="npz"),
        measurement=FAST,
    )

    first = run_benchmark(spec, model, dataset, cache_dir=tmp_path / "cache")
    second = run_benchmark(spec, model, dataset, cache_dir=tmp_path / "cache")
    engine = TensorRTBackend().load(
        model, BuildRequest(precision, [1, 32], calibration=data["x_calib"], model_sha256="f" * 64)
    )
    out = engine.infer(x)
    compute_ms = engine.last_compute_ms
    engine.close()

    assert first.failure is None and second.failure is None, (first.failure, second.failure)
    assert [lat.batch_size for lat in first.latency] == [1, 8, 32]
    assert all(lat.p50_ms > 0 and lat.throughput_per_s > 0 for lat in first.latency)
    assert first.manifest["engine_cache"] == "miss" and second.manifest["engine_cache"] == "hit"
    assert first.accuracy is not None
    reference_accuracy = float((reference.argmax(axis=1) == data["y_test"]).mean())
    assert abs(first.accuracy.accuracy - reference_accuracy) <= (0.1 if atol is None else 0.02)
    if atol is None:  # INT8: the same answers on nearly every sample
        assert (out.argmax(axis=1) == reference[:32].argmax(axis=1)).mean() >= 0.9
    else:
        np.testing.assert_allclose(out, reference[:32], atol=atol)
    assert 0 < compute_ms < 1000


def _onnx_reference(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"ecg": x})[0])
