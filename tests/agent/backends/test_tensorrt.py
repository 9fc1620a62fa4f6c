"""The TensorRT backend against fake `tensorrt`/`pycuda` modules (no GPU here), plus real-GPU runs.

The fakes (fake_tensorrt.py) stand in at the library boundary only: the backend's own code
runs unpatched against the API surface of TensorRT 8.5/8.6, 10.x and 11.x (a name a release
lacks raises AttributeError), and the fake engine computes out[i, j] = (j + 1) * sum(x[i]) so
the data that comes back through the pinned buffers is checked, not just the calls.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import agent.backends.tensorrt as trt_backend
from agent.backends import BuildRequest, DeviceTimedEngine
from agent.backends.qdq import is_qdq, quantize_int8, quantized_ops
from agent.backends.tensorrt import (
    COMPUTE_SCOPE,
    SCOPE,
    EngineBuildError,
    TensorRTBackend,
    TrtApi,
    fast_precisions,
)
from agent.runner import run_benchmark
from edgelab.domain import ArtifactRef, JobSpec, MeasurementSettings, Precision
from edgelab.errors import BackendUnavailable, MissingExtraError
from tests.agent.backends.fake_tensorrt import FakeGpu, expected_output, install
from tests.factories import write_linear_onnx, write_test_set

FAST = MeasurementSettings(warmup_iterations=2, warmup_duration_s=0, min_iterations=20, min_duration_s=0.02)
LENGTH, CLASSES = 32, 3
# One release per API generation the Python backend runs on (JetPack 5.1, JetPack 6.0, JetPack 6.1/6.2, pip today).
VERSIONS = ["8.5.2", "8.6.1", "10.3.0", "11.4.0"]
ALL = [Precision.FP32, Precision.FP16, Precision.INT8]


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> FakeGpu:
    return install(monkeypatch, FakeGpu())


@pytest.fixture(params=VERSIONS)
def versioned(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> FakeGpu:
    """The fake GPU behind each supported TensorRT API version in turn."""
    return install(monkeypatch, FakeGpu(tensorrt_version=request.param))


def _major(gpu: FakeGpu) -> int:
    return int(gpu.tensorrt_version.split(".")[0])


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


def _key_parts(details: dict[str, str]) -> dict[str, Any]:
    parts: dict[str, Any] = json.loads(details["engine_cache_key_parts"])
    return parts


# ---------------------------------------------------------------- the fakes follow each release's API surface


@pytest.mark.parametrize(
    ("version", "present", "absent"),
    [
        ("8.2.1", ["BuilderFlag.INT8", "IInt8EntropyCalibrator2"], ["ICudaEngine.num_io_tensors"]),
        (
            "8.6.1",
            [
                "ICudaEngine.num_io_tensors",
                "NetworkDefinitionCreationFlag.EXPLICIT_BATCH",
                "ICudaEngine.device_memory_size",
            ],
            ["ICudaEngine.device_memory_size_v2"],
        ),
        ("10.0.1", ["BuilderFlag.FP16", "ICudaEngine.device_memory_size"], ["ICudaEngine.device_memory_size_v2"]),
        (
            "10.3.0",
            ["BuilderFlag.FP16", "NetworkDefinitionCreationFlag.STRONGLY_TYPED", "ICudaEngine.device_memory_size_v2"],
            [],
        ),
        (
            "11.4.0",
            [
                "ICudaEngine.num_io_tensors",
                "NetworkDefinitionCreationFlag.STRONGLY_TYPED",
                "ICudaEngine.device_memory_size_v2",
            ],
            [
                "ICudaEngine.device_memory_size",
                "BuilderFlag.FP16",
                "BuilderFlag.INT8",
                "IInt8EntropyCalibrator2",
                "IBuilderConfig.int8_calibrator",
                "IBuilderConfig.set_calibration_profile",
                "Builder.platform_has_fast_fp16",
                "NetworkDefinitionCreationFlag.EXPLICIT_BATCH",
            ],
        ),
    ],
)
def test_each_fake_release_has_exactly_its_api(
    monkeypatch: pytest.MonkeyPatch, version: str, present: list[str], absent: list[str]
) -> None:
    install(monkeypatch, FakeGpu(tensorrt_version=version))
    trt = sys.modules["tensorrt"]

    def has(dotted: str) -> bool:
        owner, _, name = dotted.rpartition(".")
        return hasattr(getattr(trt, owner) if owner else trt, name)

    assert [n for n in present if not has(n)] == []
    assert [n for n in absent if has(n)] == []
    if version.startswith("11."):  # the removed names raise on instances too, for reads and writes
        config = trt.Builder(None).create_builder_config()
        with pytest.raises(AttributeError, match=r"TensorRT 11\.4\.0 has no attribute 'int8_calibrator'"):
            config.int8_calibrator = object()


@pytest.mark.parametrize(
    ("version", "api"),
    [
        ("8.2.1", TrtApi("8.2.1", (8, 2), False, True, True, True)),
        ("8.5.2", TrtApi("8.5.2", (8, 5), True, True, True, True)),
        ("10.3.0", TrtApi("10.3.0", (10, 3), True, False, False, True)),
        ("11.4.0", TrtApi("11.4.0", (11, 4), True, False, False, False)),
    ],
)
def test_trt_api_reads_what_each_release_offers(monkeypatch: pytest.MonkeyPatch, version: str, api: TrtApi) -> None:
    install(monkeypatch, FakeGpu(tensorrt_version=version))

    assert TrtApi.of(sys.modules["tensorrt"]) == api


# ---------------------------------------------------------------- probe


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


@pytest.mark.parametrize("version", ["8.0.1", "8.2.1"])
def test_tensorrt_before_8_5_is_refused_with_a_pointer_to_trtexec(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: str
) -> None:
    gpu = install(monkeypatch, FakeGpu(tensorrt_version=version, compute_capability=(5, 3)))
    said = f"TensorRT {version[:3]} too old for the Python backend (needs 8.5+); use the trtexec backend"

    info = TensorRTBackend().probe()
    with pytest.raises(BackendUnavailable, match=re.escape(said)):
        TensorRTBackend().load(write_linear_onnx(tmp_path / "m.onnx"), _request(tmp_path))

    assert not info.available and info.reason == said and info.version == version
    assert gpu.builders_created == 0 and gpu.builds == [] and gpu.contexts_retained == 0


def test_every_supported_release_offers_every_precision_on_a_fast_gpu(versioned: FakeGpu) -> None:
    info = TensorRTBackend().probe()

    assert info.available and info.precisions == ALL and info.reason == ""
    assert info.version == f"{versioned.tensorrt_version} on Fake RTX 4000 (sm 8.9)"


@pytest.mark.parametrize(("version", "fp16"), [("10.3.0", True), ("11.4.0", False)])
def test_without_an_fp16_converter_tensorrt_11_offers_no_fp16(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: str, fp16: bool
) -> None:
    gpu = install(monkeypatch, FakeGpu(tensorrt_version=version))
    monkeypatch.setattr(trt_backend, "FP16_CONVERTERS", ())

    info = TensorRTBackend().probe()

    assert (Precision.FP16 in info.precisions) is fp16 and Precision.INT8 in info.precisions
    if not fp16:
        assert "no fp16: TensorRT 11.4.0 builds strongly typed networks only" in info.reason
        with pytest.raises(ValueError, match=r"strongly typed networks only .* no converter is installed"):
            TensorRTBackend().load(write_linear_onnx(tmp_path / "m.onnx"), _request(tmp_path, Precision.FP16))
        assert gpu.builds == []


def test_without_the_quantizer_no_release_offers_int8(versioned: FakeGpu, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trt_backend, "quantizer_available", lambda: False)

    info = TensorRTBackend().probe()

    assert info.precisions == [Precision.FP32, Precision.FP16]
    assert info.reason == "no int8: the Q/DQ quantizer needs onnxruntime and onnx"


@pytest.mark.parametrize("version", ["10.3.0", "11.4.0"])
@pytest.mark.parametrize(
    ("compute_capability", "precisions"),
    [
        ((8, 9), ALL),
        ((6, 1), [Precision.FP32, Precision.INT8]),  # GTX 10xx: slow FP16, DP4A INT8
        ((5, 3), [Precision.FP32, Precision.FP16]),  # Jetson Nano's GPU
    ],
)
def test_probe_from_tensorrt_10_judges_precisions_by_compute_capability(
    monkeypatch: pytest.MonkeyPatch, version: str, compute_capability: tuple[int, int], precisions: list[Precision]
) -> None:
    gpu = install(monkeypatch, FakeGpu(tensorrt_version=version, compute_capability=compute_capability))

    info = TensorRTBackend().probe()

    assert info.available and info.precisions == precisions
    assert info.version == f"{version} on Fake RTX 4000 (sm {compute_capability[0]}.{compute_capability[1]})"
    assert gpu.builders_created == 0  # no builder (a context, hundreds of ms) and no deprecated/removed query
    assert fast_precisions(compute_capability) == (Precision.FP16 in precisions, Precision.INT8 in precisions)


@pytest.mark.parametrize("version", ["8.5.2", "8.6.1"])
def test_probe_before_tensorrt_10_asks_the_builder_once(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    gpu = install(monkeypatch, FakeGpu(tensorrt_version=version, fast_fp16=False, fast_int8=True))
    backend = TensorRTBackend()

    first, second = backend.probe(), backend.probe()

    assert first.precisions == second.precisions == [Precision.FP32, Precision.INT8]
    assert gpu.builders_created == 1 and gpu.contexts_retained == 0


# ---------------------------------------------------------------- builds per release


def test_fp32_build_on_each_release(versioned: FakeGpu, tmp_path: Path) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx")

    engine = TensorRTBackend().load(model, _request(tmp_path, options={"workspace_mb": "256"}))
    out = engine.infer(_x(5))

    (build,) = versioned.builds
    assert build.flags == set() and build.model == str(model)
    assert build.network_flags == (1 if _major(versioned) == 8 else 0)  # 1 << EXPLICIT_BATCH before 10
    assert build.strongly_typed is (_major(versioned) == 11)
    assert build.profiles == [{"ecg": ((1, LENGTH, 1), (8, LENGTH, 1), (8, LENGTH, 1))}]
    assert build.workspace == 256 << 20
    np.testing.assert_allclose(out, expected_output(_x(5), CLASSES), rtol=1e-6)
    assert engine.input_shape == (None, LENGTH, 1)
    assert engine.details["engine_cache"] == "miss" and float(engine.details["engine_build_s"]) >= 0
    assert engine.details["gpu_name"] == "Fake RTX 4000" and engine.details["compute_capability"] == "8.9"
    assert engine.details["tensorrt_version"] == versioned.tensorrt_version
    engine.close()


def test_fp16_build_on_each_release(versioned: FakeGpu, tmp_path: Path) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx")
    backend = TensorRTBackend()

    first = backend.load(model, _request(tmp_path, Precision.FP16))
    for engine_file in (tmp_path / "cache" / "tensorrt").glob("*.engine"):
        engine_file.unlink()  # the engine is evicted; a converted ONNX stays
    second = backend.load(model, _request(tmp_path, Precision.FP16))
    out = second.infer(_x(3))

    built, rebuilt = versioned.builds
    if _major(versioned) < 11:  # weak typing: the FP32 ONNX with the FP16 builder flag
        assert built.flags == {"FP16"} and built.model == str(model) and not built.fp16_weights
        assert first.details["precision_route"] == "BuilderFlag.FP16 on the FP32 ONNX (weakly typed network)"
        assert "fp16_conversion" not in first.details
    else:  # strongly typed: no flag, an FP16 ONNX converted on the device (I/O kept FP32), converted once
        assert built.flags == set() and built.strongly_typed and built.fp16_weights
        assert built.model.endswith(".fp16.onnx") and rebuilt.model == built.model
        assert first.details["fp16_conversion"].startswith(
            "ONNX converted to FP16 (I/O kept FP32) by onnxruntime.transformers.float16 (onnxruntime "
        )
        assert "; done in " in first.details["fp16_conversion"]
        assert second.details["fp16_conversion"].endswith(f"; cache hit ({Path(built.model).name})")
        assert "fp16" in _key_parts(first.details)  # which converter made the ONNX is part of the engine key
    np.testing.assert_allclose(out, expected_output(_x(3), CLASSES), rtol=1e-6)
    first.close()
    second.close()


def test_int8_quantizes_on_the_device_once_on_each_release(versioned: FakeGpu, tmp_path: Path) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx")
    request = _request(tmp_path, Precision.INT8)
    backend = TensorRTBackend()

    first = backend.load(model, request)
    for engine_file in (tmp_path / "cache" / "tensorrt").glob("*.engine"):
        engine_file.unlink()
    second = backend.load(model, request)

    built, rebuilt = versioned.builds
    # One mechanism on every release: explicit Q/DQ; the INT8 flag only while networks are weakly typed.
    assert built.flags == ({"INT8"} if _major(versioned) < 11 else set())
    assert built.qdq and built.model.endswith(".quantize.onnx") and rebuilt.model == built.model
    assert is_qdq(Path(built.model)) and _zero_points(Path(built.model)) == {0}  # TensorRT wants symmetric scales
    assert "; done in " in first.details["int8_quantization"]
    assert second.details["int8_quantization"].endswith("; cache hit (" + Path(built.model).name + ")")
    parts = _key_parts(first.details)
    assert parts["quantizer"].startswith("onnxruntime ") and len(parts["calibration_sha256"]) == 64
    first.close()
    second.close()


def test_a_model_with_qdq_nodes_is_built_as_shipped_without_calibration(versioned: FakeGpu, tmp_path: Path) -> None:
    calibration = _x(16)
    model = quantize_int8(write_linear_onnx(tmp_path / "m.onnx"), calibration, tmp_path / "q.onnx", symmetric=True)

    engine = TensorRTBackend().load(model, _request(tmp_path, Precision.INT8, calibration=None))

    (build,) = versioned.builds
    assert build.model == str(model) and build.qdq
    assert build.flags == ({"INT8"} if _major(versioned) < 11 else set())
    assert "int8_quantization" not in engine.details
    assert _key_parts(engine.details)["int8"] == "explicit Q/DQ nodes shipped in the model"
    assert "calibration_sha256" not in _key_parts(engine.details)
    engine.close()


def test_a_model_with_qdq_nodes_is_refused_at_fp32(gpu: FakeGpu, tmp_path: Path) -> None:
    model = quantize_int8(write_linear_onnx(tmp_path / "m.onnx"), _x(16), tmp_path / "q.onnx", symmetric=True)

    with pytest.raises(ValueError, match=r"explicitly quantized .* run it with precision int8, not fp32"):
        TensorRTBackend().load(model, _request(tmp_path))

    assert gpu.builds == [] and gpu.contexts_retained == 0


def test_int8_without_a_calibration_set_is_refused(gpu: FakeGpu, tmp_path: Path) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx")

    with pytest.raises(ValueError, match=r"INT8 needs a calibration set .* or a model with Q/DQ nodes"):
        TensorRTBackend().load(model, _request(tmp_path, Precision.INT8, calibration=None))

    assert gpu.builds == []


def test_int8_without_the_quantizer_names_the_extra(
    gpu: FakeGpu, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)  # import fails as if not installed
    model = write_linear_onnx(tmp_path / "m.onnx")

    with pytest.raises(MissingExtraError, match=re.escape("pip install 'edgelab[onnxruntime]'")):
        TensorRTBackend().load(model, _request(tmp_path, Precision.INT8))

    assert gpu.builds == [] and gpu.context_stack == [] and gpu.contexts_retained == 0


def _zero_points(model: Path) -> set[int]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model)).graph
    names = {n.input[2] for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2}
    return {int(v) for i in graph.initializer if i.name in names for v in numpy_helper.to_array(i).ravel()}


# ---------------------------------------------------------------- the engine cache key


def test_the_cache_key_holds_everything_that_changes_the_engine(gpu: FakeGpu, tmp_path: Path) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx")
    backend = TensorRTBackend()

    base = backend.load(model, _request(tmp_path, Precision.INT8))
    variants = [
        backend.load(model, _request(tmp_path, Precision.INT8, options={"workspace_mb": "64"})),
        backend.load(model, _request(tmp_path, Precision.INT8, batch_sizes=[1, 16])),
        backend.load(model, _request(tmp_path, Precision.INT8, calibration=_x(20, seed=9))),
        backend.load(model, _request(tmp_path, Precision.INT8, model_sha256="d" * 64)),
        backend.load(model, _request(tmp_path, Precision.FP16)),
    ]
    again = backend.load(model, _request(tmp_path, Precision.INT8))

    parts = _key_parts(base.details)
    assert parts == {
        "backend": "tensorrt",
        "model_sha256": "c" * 64,
        "gpu": "Fake RTX 4000",
        "compute_capability": "8.9",
        "tensorrt": "10.3.0",
        "precision": "int8",
        "batch_profile": "1/8/8",
        "dla_core": "none",
        "workspace_mb": "1024",
        "int8": parts["int8"],
        # one description of Q/DQ quantization for every backend (agent.backends.qdq.quantization_parts)
        "quantizer": parts["quantizer"],
        "quantization": "static Q/DQ, per-channel weights",
        "quantized_ops": quantized_ops(),
        "weight_bits": 8,
        "reduce_range": False,
        "symmetric": True,
        "calibration_sha256": parts["calibration_sha256"],
        "calibration_samples": 20,
    }
    keys = [e.details["engine_cache_key"] for e in (base, *variants)]
    assert len(set(keys)) == len(keys) and all(e.details["engine_cache"] == "miss" for e in variants)
    assert again.details["engine_cache"] == "hit" and again.details["engine_cache_key"] == keys[0]
    for engine in (base, *variants, again):
        engine.close()


def test_the_cache_key_holds_the_gpu_and_the_tensorrt_release(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx")
    keys = []
    for fake in (FakeGpu(), FakeGpu(tensorrt_version="10.4.0"), FakeGpu(name="Fake A100", compute_capability=(8, 0))):
        install(monkeypatch, fake)
        engine = TensorRTBackend().load(model, _request(tmp_path))
        keys.append(engine.details["engine_cache_key"])
        assert engine.details["engine_cache"] == "miss"
        engine.close()

    assert len(set(keys)) == 3


# ---------------------------------------------------------------- DLA, errors, cache, inference


@pytest.mark.parametrize(("version", "flags"), [("10.3.0", {"FP16", "GPU_FALLBACK"}), ("11.4.0", {"GPU_FALLBACK"})])
def test_dla_core_targets_the_dla_with_gpu_fallback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: str, flags: set[str]
) -> None:
    gpu = install(monkeypatch, FakeGpu(tensorrt_version=version, dla_cores=2, compute_capability=(8, 7)))
    model = write_linear_onnx(tmp_path / "m.onnx")

    engine = TensorRTBackend().load(model, _request(tmp_path, Precision.FP16, options={"dla_core": "1"}))

    (build,) = gpu.builds
    assert build.default_device_type == "DLA" and build.dla_core == 1
    assert build.flags == flags
    assert (
        engine.details["dla_core"] == "1" and _key_parts(engine.details)["dla_core"] == "1"
    )  # and the runtime deserialized it on core 1
    engine.close()


@pytest.mark.parametrize(
    ("dla_cores", "precision", "options", "message"),
    [
        (0, Precision.FP16, {"dla_core": "0"}, "this device has no DLA cores"),
        (2, Precision.FP16, {"dla_core": "2"}, "DLA cores 0..1"),
        (2, Precision.FP32, {"dla_core": "0"}, "DLA runs FP16 or INT8"),
        (2, Precision.FP16, {"dla_core": "x"}, "dla_core=.x. is not a number"),
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


def test_run_benchmark_through_the_registry_reports_both_latencies_accuracy_and_manifest(
    gpu: FakeGpu, tmp_path: Path
) -> None:
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
    # Per batch size: one end-to-end entry and one compute-only entry (CUDA events), nothing else.
    assert len(result.latency) == 4
    assert [lat.batch_size for lat in end_to_end] == [lat.batch_size for lat in compute] == [1, 8]
    assert all(lat.samples >= 20 for lat in end_to_end)
    assert [lat.p50_ms for lat in compute] == pytest.approx([gpu.kernel_ms_per_sample * b for b in (1, 8)])
    assert result.accuracy is not None
    expected = expected_output(x, CLASSES).argmax(axis=1)
    assert result.accuracy.accuracy == pytest.approx(float((expected == y).mean()))
    assert result.manifest["engine_cache"] == "miss" and result.manifest["gpu_name"] == "Fake RTX 4000"
    assert gpu.memory == {} and gpu.contexts_retained == 0


# ---------------------------------------------------------------- per-layer profile (IProfiler), device memory


def _profiled_spec(**options: str) -> JobSpec:
    return JobSpec(
        name="trt-profile",
        backend="tensorrt",
        batch_sizes=[1, 8],
        model=ArtifactRef("d" * 64, format="onnx"),
        dataset=ArtifactRef("e" * 64, format="npz"),
        measurement=FAST,
        backend_options=dict(options),
    )


def test_the_iprofiler_profile_comes_after_the_timed_phases_in_the_real_call_order(
    versioned: FakeGpu, tmp_path: Path
) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx")
    dataset = write_test_set(tmp_path / "t.npz")

    result = run_benchmark(_profiled_spec(profile="on"), model, dataset, cache_dir=tmp_path / "cache")

    assert result.failure is None, result.failure
    assert [p.batch_size for p in result.profiles] == [1, 8]
    layers = ["(Unnamed Layer* 0) [Reshape]", "(Unnamed Layer* 1) [Gemm]", "(Unnamed Layer* 2) [Softmax]"]
    for profile in result.profiles:
        kernel_ms = versioned.kernel_ms_per_sample * profile.batch_size
        assert profile.source == trt_backend.PROFILE_SOURCE
        assert profile.iterations == trt_backend.PROFILE_RUNS  # the warm-up run left out
        # Mean ms per inference, not summed over the runs: the layers add up to one kernel's time.
        assert profile.total_ms == pytest.approx(kernel_ms)
        assert [op.name for op in profile.ops] == layers[::-1]  # the fake's later layers are slower
        assert [op.time_ms for op in profile.ops] == pytest.approx([kernel_ms * w / 6 for w in (3, 2, 1)])
        assert all(op.op_type == "" for op in profile.ops)
    assert result.manifest["operator_profile"].startswith(trt_backend.PROFILE_SOURCE)
    assert versioned.memory == {} and versioned.contexts_retained == 0


def test_without_profile_on_no_context_is_profiled(gpu: FakeGpu, tmp_path: Path) -> None:
    engine = TensorRTBackend().load(write_linear_onnx(tmp_path / "m.onnx"), _request(tmp_path))

    profile = engine.operator_profile(_x(8))
    engine.close()

    assert profile is None
    assert engine.details["operator_profile"].startswith("off")


def test_a_profiler_report_before_the_launch_completed_is_refused_by_the_fake(gpu: FakeGpu, tmp_path: Path) -> None:
    """The fake holds the backend to the real call order: report_to_profiler only after synchronize."""
    trt = sys.modules["tensorrt"]
    engine = TensorRTBackend().load(write_linear_onnx(tmp_path / "m.onnx"), _request(tmp_path))
    gpu.cuda.Context.push(engine._cuda_context)
    context = engine._engine.create_execution_context()
    context.profiler = trt_backend.layer_timer(trt)
    context.enqueue_emits_profile = False

    for name, allocation in engine._device.items():
        context.set_tensor_address(name, int(allocation))
    context.set_input_shape(engine._input, (1, LENGTH, 1))
    context.execute_async_v3(engine._stream.handle)

    with pytest.raises(gpu.cuda.LogicError, match="synchronize"):
        context.report_to_profiler()
    engine._stream.synchronize()
    assert context.report_to_profiler()
    del context
    gpu.cuda.Context.pop()
    engine.close()


def test_a_bad_profile_option_is_refused(gpu: FakeGpu, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tensorrt option profile='maybe': use on or off"):
        TensorRTBackend().load(write_linear_onnx(tmp_path / "m.onnx"), _request(tmp_path, options={"profile": "maybe"}))


@pytest.mark.parametrize(
    ("version", "attribute"),
    [("8.6.1", "device_memory_size"), ("10.0.1", "device_memory_size"), ("10.3.0", "device_memory_size_v2"),
     ("11.4.0", "device_memory_size_v2")],
)  # fmt: skip
def test_the_engine_device_memory_is_read_by_each_releases_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: str, attribute: str
) -> None:
    gpu = install(monkeypatch, FakeGpu(tensorrt_version=version, activation_bytes=5 << 20))
    monkeypatch.setattr("agent.runner.process_accelerator_memory", lambda device: [])  # no NVML here

    result = run_benchmark(_profiled_spec(), write_linear_onnx(tmp_path / "m.onnx"), write_test_set(tmp_path / "t.npz"))

    assert result.failure is None and result.memory is not None, result.failure
    (figure,) = result.memory.accelerator
    assert (figure.source, figure.size_bytes, figure.note) == ("tensorrt", 5 << 20, f"ICudaEngine.{attribute}")
    assert "not the weights" in figure.what
    assert gpu.contexts_retained == 0


# ---------------------------------------------------------------- on a real NVIDIA GPU (pytest -m gpu)


def _real_backend_or_skip() -> tuple[TensorRTBackend, str, tuple[int, int]]:
    """The backend on this machine's GPU: skipped only where TensorRT/pycuda or a CUDA device is missing."""
    pytest.importorskip("tensorrt", reason="the tensorrt extra is not installed")
    pytest.importorskip("pycuda.driver", reason="the tensorrt extra (pycuda) is not installed")
    backend = TensorRTBackend()
    info = backend.probe()
    if not info.available and info.reason.startswith("no CUDA device"):
        pytest.skip(info.reason)
    assert info.available, info.reason  # TensorRT too old or broken here is a failure, not a skip
    match = re.search(r"\(sm (\d+)\.(\d+)\)$", info.version)
    assert match, info.version
    return backend, info.version, (int(match.group(1)), int(match.group(2)))


def _gpu_precision_or_skip(precision: Precision, compute_capability: tuple[int, int], version: str) -> None:
    """Skip only a precision this GPU's hardware is slow at; a software gap fails the probe check instead."""
    fp16, int8 = fast_precisions(compute_capability)
    if (precision == Precision.FP16 and not fp16) or (precision == Precision.INT8 and not int8):
        pytest.skip(f"{precision.value} is not fast on this GPU ({version})")


@pytest.mark.gpu
def test_real_gpu_probe_offers_what_the_hardware_is_fast_at() -> None:
    backend, version, cc = _real_backend_or_skip()
    fp16, int8 = fast_precisions(cc)

    info = backend.probe()

    expected = [Precision.FP32] + [Precision.FP16] * fp16 + [Precision.INT8] * int8
    assert info.precisions == expected, (version, info.reason)


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("precision", "atol"), [(Precision.FP32, 1e-4), (Precision.FP16, 1e-2), (Precision.INT8, None)]
)
def test_real_gpu_end_to_end(tmp_path: Path, precision: Precision, atol: float | None) -> None:
    """On an NVIDIA GPU with the `tensorrt` extra: build, cache, time and score for real, checked against ORT."""
    backend, version, cc = _real_backend_or_skip()
    _gpu_precision_or_skip(precision, cc, version)
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
    engine = backend.load(model, BuildRequest(precision, [1, 32], calibration=data["x_calib"], model_sha256="f" * 64))
    out = engine.infer(x)
    compute_ms = engine.last_compute_ms
    engine.close()

    assert first.failure is None and second.failure is None, (first.failure, second.failure)
    end_to_end = [lat for lat in first.latency if lat.scope == SCOPE]
    compute = [lat for lat in first.latency if lat.scope == COMPUTE_SCOPE]
    assert len(first.latency) == 6  # per batch size: end-to-end and compute-only
    assert [lat.batch_size for lat in end_to_end] == [lat.batch_size for lat in compute] == [1, 8, 32]
    assert all(lat.p50_ms > 0 and lat.throughput_per_s > 0 for lat in first.latency)
    for e2e, gpu_only in zip(end_to_end, compute):  # the copies cost something: compute-only is the smaller
        assert gpu_only.p50_ms <= e2e.p50_ms
    assert first.manifest["engine_cache"] == "miss" and second.manifest["engine_cache"] == "hit"
    assert first.manifest["engine_cache_key"] == second.manifest["engine_cache_key"]
    assert first.accuracy is not None
    reference_accuracy = float((reference.argmax(axis=1) == data["y_test"]).mean())
    assert abs(first.accuracy.accuracy - reference_accuracy) <= (0.1 if atol is None else 0.02)
    if atol is None:  # INT8: the same answers on nearly every sample
        assert (out.argmax(axis=1) == reference[:32].argmax(axis=1)).mean() >= 0.9
        assert "explicit Q/DQ" in first.manifest["precision_route"]
    else:
        np.testing.assert_allclose(out, reference[:32], atol=atol)
    assert 0 < compute_ms < 1000


@pytest.mark.gpu
def test_real_gpu_layer_profile_and_memory(tmp_path: Path) -> None:
    """The IProfiler pass and the memory figures on a real GPU: layers named, per-inference means that add up to
    about the compute-only time (a loose band: the profiler adds its own per-layer cost), memory read, not zero."""
    _real_backend_or_skip()
    model = write_linear_onnx(tmp_path / "m.onnx", length=LENGTH, classes=CLASSES)
    dataset = write_test_set(tmp_path / "t.npz", length=LENGTH, classes=CLASSES)

    result = run_benchmark(_profiled_spec(profile="on"), model, dataset, cache_dir=tmp_path / "cache")

    assert result.failure is None and result.memory is not None, result.failure
    compute = {lat.batch_size: lat for lat in result.latency if lat.scope == COMPUTE_SCOPE}
    assert [p.batch_size for p in result.profiles] == [1, 8]
    for profile in result.profiles:
        assert profile.iterations >= 1 and profile.operators >= 1 and profile.ops
        assert all(op.name and op.time_ms >= 0 for op in profile.ops)
        assert 0 < profile.total_ms < 20 * compute[profile.batch_size].p50_ms + 1.0
    by_source = {figure.source: figure for figure in result.memory.accelerator}
    assert by_source["tensorrt"].size_bytes is not None and by_source["tensorrt"].size_bytes >= 0
    process = by_source.get("nvml") or by_source["jtop"]  # a figure, or absent with the reason: never a fake 0
    assert (process.size_bytes or 0) > 0 or process.note.startswith("not available"), process


@pytest.mark.gpu
def test_real_gpu_builds_a_shipped_qdq_model(tmp_path: Path) -> None:
    """The explicit-quantization path with a model that arrives already quantized (no calibration set)."""
    backend, version, cc = _real_backend_or_skip()
    _gpu_precision_or_skip(Precision.INT8, cc, version)
    data = np.load(write_test_set(tmp_path / "t.npz", length=LENGTH, classes=CLASSES))
    fp32 = write_linear_onnx(tmp_path / "m.onnx", length=LENGTH, classes=CLASSES)
    model = quantize_int8(fp32, data["x_calib"], tmp_path / "q.onnx", symmetric=True)

    engine = backend.load(model, BuildRequest(Precision.INT8, [1, 8], cache_dir=tmp_path / "cache"))
    out = engine.infer(data["x_test"][:8])
    engine.close()

    reference = _onnx_reference(model, data["x_test"][:8])
    assert (out.argmax(axis=1) == reference.argmax(axis=1)).mean() >= 0.75
    assert engine.details["engine_cache"] == "miss" and "int8_quantization" not in engine.details


def _onnx_reference(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"ecg": x})[0])
