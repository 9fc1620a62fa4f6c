"""run_benchmark on real ONNX Runtime sessions, and every failure class it can store."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from agent.backends import BACKENDS, BuildRequest, DeviceTimedEngine
from agent.backends.onnxruntime import OnnxRuntimeBackend
from agent.power import POWER_METERS, MeterInfo, PowerSample
from agent.power.none import NoneMeter
from agent.runner import _power_meter, run_benchmark
from edgelab.constants import REFERENCE_ACCURACY_LABEL
from edgelab.domain import ArtifactRef, FailureKind, JobSpec, MeasurementSettings, Precision, RuntimeInfo
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


class InferenceEnergyMeter:
    """A synthetic energy counter: 10 mJ per engine call (counted by `DeviceTimedBackend`), nothing at rest.

    It stands in for RAPL, which this machine lacks, at the registry seam the agent uses, and is
    deterministic: the energy per inference it implies is known exactly.
    """

    name = "synthetic"
    sensor = "10 mJ per engine call"
    calls = 0

    def probe(self) -> MeterInfo:
        return MeterInfo(self.name, available=True, sensor=self.sensor)

    def open(self) -> InferenceEnergyMeter:
        return self

    def read(self) -> PowerSample:
        return PowerSample(t_s=time.perf_counter(), energy_j=0.010 * InferenceEnergyMeter.calls)

    def close(self) -> None:
        pass


def test_power_is_sampled_over_exactly_each_timed_window_net_of_idle(
    onnx_model: Path, test_set: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(POWER_METERS, "synthetic", InferenceEnergyMeter())
    monkeypatch.setitem(BACKENDS, "device-timed", DeviceTimedBackend())
    settings = replace(FAST, power_meter="synthetic", power_idle_s=0.2, power_sample_period_s=0.01)

    result = run_benchmark(_spec(backend="device-timed", measurement=settings), onnx_model, test_set)

    assert result.failure is None, result.failure
    assert [p.batch_size for p in result.power] == [1, 4]
    end_to_end = [lat for lat in result.latency if lat.scope == "end-to-end"]
    for report, lat in zip(result.power, end_to_end, strict=True):
        assert report.meter == "synthetic" and report.sensor == "10 mJ per engine call"
        assert report.idle_w == 0.0  # no engine call while idle
        # Exactly the timed calls fall in the window: 10 mJ per call, over `batch` inferences per call.
        assert report.energy_per_inference_mj == pytest.approx(10.0 / lat.batch_size)
        assert report.mean_w > report.idle_w
        assert report.samples >= 2 and report.window_s == lat.timed_duration_s
    assert result.manifest["power"] == "synthetic: 10 mJ per engine call"


def test_a_named_meter_this_device_lacks_fails_the_job_and_none_turns_power_off(
    onnx_model: Path, test_set: Path
) -> None:
    missing = run_benchmark(_spec(measurement=replace(FAST, power_meter="jtop")), onnx_model, test_set)
    off = run_benchmark(_spec(measurement=replace(FAST, power_meter="none")), onnx_model, test_set)

    assert missing.failure is not None and missing.failure.kind is FailureKind.UNSUPPORTED
    assert "jtop" in missing.failure.message
    assert off.failure is None and off.power == [] and off.manifest["power"].startswith("off")


def test_device_state_and_reference_accuracy_drop_land_in_the_manifest(onnx_model: Path, test_set: Path) -> None:
    spec = _spec(labels={REFERENCE_ACCURACY_LABEL: "0.9"}, measurement=replace(FAST, power_meter="none"))

    result = run_benchmark(spec, onnx_model, test_set)

    assert result.accuracy is not None
    drop = float(result.manifest["accuracy_drop_vs_fp32_reference"])
    assert drop == pytest.approx(0.9 - result.accuracy.accuracy, abs=1e-6)
    assert result.manifest["throttled"] in {"yes", "no", "unknown"}


class DeviceTimedBackend:
    """ONNX Runtime underneath, timing its own 'device' work like the TensorRT engine's CUDA events.

    Every engine call also counts towards the synthetic `InferenceEnergyMeter`.
    """

    name = "device-timed"
    formats: tuple[str, ...] = ("onnx",)

    def probe(self) -> RuntimeInfo:
        return RuntimeInfo(self.name, available=True, version="1", precisions=[Precision.FP32])

    def load(self, model_path: Path, request: BuildRequest) -> DeviceTimedEngine:
        inner = OnnxRuntimeBackend().load(model_path, request)

        class Engine:
            input_shape = inner.input_shape
            scope = "end-to-end"
            compute_scope = "compute-only: fake device timer"
            details: dict[str, str] = {}
            device = "cpu"
            last_compute_ms = 0.0

            def infer(self, batch: np.ndarray) -> np.ndarray:
                InferenceEnergyMeter.calls += 1
                self.last_compute_ms = 0.001 * len(batch)
                return inner.infer(batch)

            def close(self) -> None:
                inner.close()

        return Engine()


def test_engines_that_time_the_device_report_compute_only_beside_end_to_end(
    onnx_model: Path, test_set: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(BACKENDS, "device-timed", DeviceTimedBackend())

    result = run_benchmark(_spec(backend="device-timed"), onnx_model, test_set)

    assert result.failure is None, result.failure
    assert [(lat.batch_size, lat.scope) for lat in result.latency] == [
        (1, "end-to-end"),
        (1, "compute-only: fake device timer"),
        (4, "end-to-end"),
        (4, "compute-only: fake device timer"),
    ]
    assert result.latency[3].p50_ms == pytest.approx(0.004)


class StubMeter:
    """A sensor that is present; which one the runner picks is what the test checks."""

    def __init__(self, name: str) -> None:
        self.name = name

    def probe(self) -> MeterInfo:
        return MeterInfo(self.name, available=True, sensor=f"{self.name} sensor")

    def open(self) -> StubMeter:
        self.sensor = f"{self.name} sensor"
        return self

    def read(self) -> PowerSample:
        return PowerSample(t_s=time.perf_counter(), watts=5.0)

    def close(self) -> None:
        pass


def _desktop_meters(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("jtop", "hwmon"):
        monkeypatch.setitem(POWER_METERS, name, NoneMeter())  # a desktop: no Jetson, no INA sensor
    for name in ("nvml", "rapl"):
        monkeypatch.setitem(POWER_METERS, name, StubMeter(name))


@pytest.mark.parametrize(("device", "expected"), [("cpu", "rapl"), ("gpu", "nvml")])
def test_default_meter_is_the_sensor_that_sees_where_the_engine_runs(
    device: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _desktop_meters(monkeypatch)

    meter, note = _power_meter("", device)

    assert meter is not None and meter.name == expected and note.startswith(f"{expected}: {expected} sensor")


def test_onnxruntime_on_the_cuda_provider_is_measured_by_the_gpu_meter(
    onnx_model: Path, test_set: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ONNX Runtime takes the CUDA provider when the build has it: RAPL (the CPU package) does not see that work."""
    import onnxruntime

    real_session = onnxruntime.InferenceSession

    class CudaSession(real_session):  # type: ignore[misc,valid-type]
        """A GPU build's session, as far as the agent can tell: CUDA first among the providers it runs."""

        def __init__(self, path: str, sess_options: object = None, providers: list[str] | None = None) -> None:
            super().__init__(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

        def get_providers(self) -> list[str]:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    monkeypatch.setattr(onnxruntime, "InferenceSession", CudaSession)
    _desktop_meters(monkeypatch)
    settings = replace(FAST, power_idle_s=0.1, power_sample_period_s=0.01)

    result = run_benchmark(_spec(batch_sizes=[1], measurement=settings), onnx_model, test_set)

    assert result.failure is None, result.failure
    assert result.manifest["engine_device"] == "gpu"
    assert result.manifest["power"] == "nvml: nvml sensor (the engine runs on the GPU)"
    assert [p.meter for p in result.power] == ["nvml"]


class Heat:
    """A GPU that stays clocked up after work: 5 W at rest, +20 W decaying with a 0.3 s time constant."""

    last_busy = 0.0

    @staticmethod
    def watts() -> float:
        return 5.0 + 20.0 * math.exp(-max(0.0, time.perf_counter() - Heat.last_busy) / 0.3)


class DecayingMeter(StubMeter):
    def __init__(self) -> None:
        super().__init__("decaying")

    def read(self) -> PowerSample:
        return PowerSample(t_s=time.perf_counter(), watts=Heat.watts())


class HotBuildBackend:
    """ONNX Runtime underneath; the build and every call heat the 'GPU' up (`Heat`)."""

    name = "hot-build"
    formats: tuple[str, ...] = ("onnx",)

    def probe(self) -> RuntimeInfo:
        return RuntimeInfo(self.name, available=True, version="1", precisions=[Precision.FP32])

    def load(self, model_path: Path, request: BuildRequest) -> object:
        inner = OnnxRuntimeBackend().load(model_path, request)
        Heat.last_busy = time.perf_counter()  # the engine build ran the GPU flat out until now

        class Engine:
            input_shape = inner.input_shape
            scope = "end-to-end"
            details: dict[str, str] = {}
            device = "gpu"

            def infer(self, batch: np.ndarray) -> np.ndarray:
                Heat.last_busy = time.perf_counter()
                return inner.infer(batch)

            def close(self) -> None:
                inner.close()

        return Engine()


def test_idle_baseline_waits_for_the_device_to_settle_after_the_build_and_each_window(
    onnx_model: Path, test_set: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(POWER_METERS, "decaying", DecayingMeter())
    monkeypatch.setitem(BACKENDS, "hot-build", HotBuildBackend())
    settings = replace(FAST, power_meter="decaying", power_idle_s=0.3, power_sample_period_s=0.01)

    result = run_benchmark(_spec(backend="hot-build", measurement=settings), onnx_model, test_set)

    assert result.failure is None, result.failure
    # Measured straight after the build, idle read ~17 W (the clocks still up) and energy per inference ~0.
    assert [p.batch_size for p in result.power] == [1, 4]
    assert all(p.idle_w < 5.5 for p in result.power), [p.idle_w for p in result.power]
    assert all(p.energy_per_inference_mj > 0 for p in result.power)
    how = json.loads(result.manifest["power_idle"])
    assert set(how) == {"batch 1", "batch 4"}
    assert all(text.startswith("settled after ") and " W over 0.3 s" in text for text in how.values()), how
