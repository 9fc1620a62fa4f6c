"""A results store seeded through the real Store API: agents (online, stale, offline; two on the
same Raspberry Pi 4 hardware), artifacts with their compression metadata (none, prune:0.5), and
jobs leased and reported like an agent would, including a failure, a power report, a GPU run with
end-to-end and compute-only latency, a TensorFlow FP32 baseline, a second run of the same
configuration (ort-fp32-pi-rerun, unstable at batch 1; both carry ONNX Runtime operator profiles) and a
pruned model, queued by the matrix launch "prune-sweep", scored on a test set without class V. Agents on the same hardware share a hostname here (rpi4-lab and rpi4-desk; old-pi and flaky-nano)."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coordinator.store import Store
from dashboard.config import COORDINATOR_ENV
from edgelab.config import Settings
from edgelab.domain import (
    AccuracyReport,
    ArtifactRef,
    BenchmarkResult,
    ClassMetrics,
    DeviceCapabilities,
    Failure,
    FailureKind,
    JobSpec,
    LatencyStats,
    OperatorProfile,
    OperatorTime,
    PowerReport,
    Precision,
    RuntimeInfo,
    TrainingConfig,
    TrainingSummary,
)
from edgelab.metrics import accuracy_report

PIPELINE = "mitdb-beats-1d"
ALL_PRECISIONS = [Precision.FP32, Precision.FP16, Precision.INT8]
E2E = "end-to-end: host array in, host array out (session.run)"
COMPUTE = "compute-only: CUDA events around enqueueV3"


@dataclass
class Seeded:
    home: Path
    agents: dict[str, str] = field(default_factory=dict)  # name -> agent id
    jobs: dict[str, str] = field(default_factory=dict)  # job name -> job id
    training: dict[str, str] = field(default_factory=dict)  # "trained" / "failed" -> run id


def latency(
    batch: int,
    p50: float,
    scope: str = E2E,
    samples: int = 700,
    ci: bool = True,
    mean: float | None = None,
    std: float | None = None,
    throughput: float | None = None,
    max_ms: float | None = None,
) -> LatencyStats:
    """Steady timings by default (CV 9.5 %, mean 1.05 x p50, throughput batch x 1000 / p50), with a p50 CI."""
    mean_ms = p50 * 1.05 if mean is None else mean
    std_ms = p50 * 0.1 if std is None else std
    return LatencyStats(
        batch_size=batch,
        samples=samples,
        mean_ms=mean_ms,
        p50_ms=p50,
        min_ms=p50 * 0.9,
        max_ms=p50 * 2 if max_ms is None else max_ms,
        std_ms=std_ms,
        throughput_per_s=batch * 1000 / p50 if throughput is None else throughput,
        first_inference_ms=p50 * 10,
        warmup_s=0.2,
        warmup_iterations=10,
        timed_duration_s=3.0,
        scope=scope,
        p90_ms=p50 * 1.2,
        p95_ms=p50 * 1.3,
        p99_ms=p50 * 1.5,
        ci_level=0.95 if ci else None,
        p50_ci_low_ms=p50 * 0.98 if ci else None,
        p50_ci_high_ms=p50 * 1.02 if ci else None,
        cv=std_ms / mean_ms if ci else None,
    )


def profile(batch: int, times: dict[str, float]) -> OperatorProfile:
    """An ONNX Runtime profile of these operators (name -> ms per inference), slowest first."""
    total = sum(times.values())
    ops = [
        OperatorTime(name, name.split("_")[0], ms, 100 * ms / total)
        for name, ms in sorted(times.items(), key=lambda item: -item[1])
    ]
    return OperatorProfile(batch, "onnxruntime session profiling", total, len(ops), 50, ops)


def accuracy(
    acc: float, confusion: list[int], macro_f1: float | None = None, supports: tuple[int, ...] = (10, 10, 10)
) -> AccuracyReport:
    names = ["N", "S", "V"]
    return AccuracyReport(
        samples=sum(confusion),
        accuracy=acc,
        num_classes=3,
        macro_f1=round(acc - 0.1, 4) if macro_f1 is None else macro_f1,
        classes=[ClassMetrics(n, support, acc, acc, acc) for n, support in zip(names, supports, strict=True)],
        confusion=confusion,
    )


def _caps(device: str, runtimes: list[RuntimeInfo], meters: list[str]) -> DeviceCapabilities:
    return DeviceCapabilities(
        hostname=device.lower().replace(" ", "-"),
        device_model=device,
        cpu_model="ARMv8 Processor rev 1 (v8l)",
        cpu_cores=4,
        memory_bytes=4 * 2**30,
        os="Linux-4.9.337-tegra-aarch64",
        python_version="3.10.12",
        agent_version="0.1.0",
        runtimes=runtimes,
        power_meters=meters,
    )


def seed(home: Path) -> Seeded:
    seeded = Seeded(home)
    now = time.time()
    db_path = Settings(home=home).db_path
    # Agents that last spoke long ago: register them with a clock set back (the store keeps last_seen_at).
    for name, age_s in (("old-pi", 3600.0), ("flaky-nano", 30.0)):
        old = Store(db_path, clock=lambda age=age_s: now - age)
        seeded.agents[name], _ = old.register_agent(
            name,
            _caps("Raspberry Pi 3 Model B", [RuntimeInfo("onnxruntime", True, "1.18.0", "", [Precision.FP32])], []),
        )
        old.close()
    store = Store(db_path)
    seeded.agents["jetson-nano-1"], _ = store.register_agent(
        "jetson-nano-1",
        _caps(
            "NVIDIA Jetson Nano Developer Kit",
            [
                RuntimeInfo("tensorrt", True, "8.2.1", "", ALL_PRECISIONS),
                RuntimeInfo("onnxruntime", True, "1.16.3", "", [Precision.FP32]),
                RuntimeInfo("tflite", False, "", "tflite_runtime is not installed", []),
            ],
            ["jtop"],
        ),
    )
    # Two agents on the same hardware: only their names tell them apart.
    for name in ("rpi4-lab", "rpi4-desk"):
        seeded.agents[name], _ = store.register_agent(
            name,
            _caps(
                "Raspberry Pi 4 Model B Rev 1.4",
                [
                    RuntimeInfo("onnxruntime", True, "1.32.0", "", [Precision.FP32]),
                    RuntimeInfo("tensorflow", True, "2.21.0", "", [Precision.FP32]),
                    RuntimeInfo("tensorrt", False, "", "no CUDA device", []),
                ],
                ["ina219"],
            ),
        )
    onnx = ArtifactRef("a" * 64, 123_456, "onnx", "mitdb-beats-1d.onnx")
    pruned = ArtifactRef("d" * 64, 61_440, "onnx", "mitdb-beats-1d-prune50.onnx")
    saved = ArtifactRef("c" * 64, 654_321, "savedmodel.zip", "mitdb-beats-1d-savedmodel.zip")
    testset = ArtifactRef("b" * 64, 99_000, "npz", "mitdb-beats-1d-testset.npz")
    for ref, compression, sparsity in ((onnx, "none", 0.0), (pruned, "prune:0.5", 0.5), (saved, "none", 0.0)):
        meta = {"pipeline": PIPELINE, "format": ref.format, "compression": compression, "quantization": "none"}
        store.add_artifact(ref, {**meta, "sparsity": f"{sparsity:.4f}", "flops": "1200000"})
    store.add_artifact(testset, {})

    def run(
        name: str,
        agent: str,
        backend: str,
        precision: Precision,
        model: ArtifactRef,
        result: BenchmarkResult,
        labels: dict[str, str] | None = None,
    ) -> None:
        spec = JobSpec(name, backend, model, testset, precision, [1, 8], pipeline=PIPELINE, labels=labels or {})
        agent_id = seeded.agents[agent]
        job_id = store.submit_job(spec, agent_id)
        lease = store.lease_job(agent_id, [backend])
        assert lease is not None and lease.job_id == job_id
        store.report_result(agent_id, job_id, lease.attempt, result)
        seeded.jobs[name] = job_id

    manifest = {"precision": "fp32", "cpu_governor": "ondemand", "throttled": "no"}
    run(
        "ort-fp32-pi",
        "rpi4-lab",
        "onnxruntime",
        Precision.FP32,
        onnx,
        BenchmarkResult(
            load_s=0.25,
            latency=[latency(1, 2.0), latency(8, 9.0)],
            accuracy=accuracy(0.9123, [80, 5, 3, 4, 30, 1, 2, 0, 25]),
            power=[PowerReport("ina219", "INA219 5V rail", 0.01, 300, 2.1, 3.4, 12.5)],
            profiles=[
                profile(1, {"Conv_0": 0.8, "Gemm_1": 0.4, "Relu_2": 0.1}),
                profile(8, {"Conv_0": 4.0, "Gemm_1": 2.0, "Relu_2": 0.5}),
            ],
            manifest={
                **manifest,
                "backend": "onnxruntime",
                "backend_version": "1.32.0",
                "device_model": "Raspberry Pi 4 Model B Rev 1.4",
            },
        ),
    )
    run(
        "tf-fp32-pi",
        "rpi4-lab",
        "tensorflow",
        Precision.FP32,
        saved,
        BenchmarkResult(
            load_s=1.5,
            latency=[latency(1, 8.0), latency(8, 27.0)],
            accuracy=accuracy(0.9125, [81, 4, 3, 4, 30, 1, 2, 0, 25]),
            manifest={
                **manifest,
                "backend": "tensorflow",
                "backend_version": "2.21.0",
                "device_model": "Raspberry Pi 4 Model B Rev 1.4",
            },
        ),
    )
    # The same configuration (agent, backend, precision, model) run again: its own bar, never added.
    run(
        "ort-fp32-pi-rerun",
        "rpi4-lab",
        "onnxruntime",
        Precision.FP32,
        onnx,
        BenchmarkResult(
            load_s=0.3,
            # Unstable at batch 1: p50 2.6 ms but mean 10.4 ms (CV 77 %, slow outliers up to 60 ms), a tenth of
            # the expected throughput.
            latency=[latency(1, 2.6, mean=10.4, std=8.0, throughput=1000 / 2.6 / 10, max_ms=60.0), latency(8, 10.0)],
            accuracy=accuracy(0.9123, [80, 5, 3, 4, 30, 1, 2, 0, 25]),
            # Conv got slower, Gemm faster; the Relu was fused into the Conv by this build.
            profiles=[profile(1, {"Conv_0": 1.2, "Gemm_1": 0.3, "Add_3": 0.05})],
            manifest={
                **manifest,
                "backend": "onnxruntime",
                "backend_version": "1.32.0",
                "device_model": "Raspberry Pi 4 Model B Rev 1.4",
            },
        ),
    )
    # A pruned model on the twin Pi: the best accuracy, a poor macro F1, and no V beat in its test set.
    run(
        "ort-prune-desk",
        "rpi4-desk",
        "onnxruntime",
        Precision.FP32,
        pruned,
        BenchmarkResult(
            load_s=0.2,
            latency=[latency(1, 1.5), latency(8, 7.0)],
            accuracy=accuracy(0.95, [140, 0, 0, 7, 3, 0, 0, 0, 0], macro_f1=0.55, supports=(140, 10, 0)),
            manifest={
                **manifest,
                "backend": "onnxruntime",
                "backend_version": "1.32.0",
                "device_model": "Raspberry Pi 4 Model B Rev 1.4",
            },
        ),
        labels={"matrix": "prune-sweep", "compression": "prune:0.5"},
    )
    run(
        "trt-fp16-nano",
        "jetson-nano-1",
        "tensorrt",
        Precision.FP16,
        onnx,
        BenchmarkResult(
            load_s=42.0,
            # Stored before CIs and CV were reported: the CV is worked out from std / mean, the CI is n/a.
            latency=[
                latency(1, 0.8, ci=False),
                latency(1, 0.31, COMPUTE, ci=False),
                latency(8, 1.9, ci=False),
                latency(8, 1.1, COMPUTE, ci=False),
            ],
            accuracy=accuracy(0.9087, [79, 6, 3, 4, 29, 2, 2, 1, 24]),
            manifest={
                **manifest,
                "precision": "fp16",
                "backend": "tensorrt",
                "backend_version": "8.2.1",
                "device_model": "NVIDIA Jetson Nano Developer Kit",
                "throttled": "yes",
            },
        ),
    )
    run(
        "trt-int8-nano",
        "jetson-nano-1",
        "tensorrt",
        Precision.INT8,
        onnx,
        BenchmarkResult(
            failure=Failure(FailureKind.OUT_OF_MEMORY, "TensorRT ran out of memory building the int8 engine"),
            manifest={"backend": "tensorrt", "device_model": "NVIDIA Jetson Nano Developer Kit"},
        ),
    )
    # Training runs: one whose inter-patient split fell back to random on a DS1-only subset, one that failed.
    asked = TrainingConfig(split="inter-patient", epochs=2, seed=1, records=["101", "106"], max_train_beats=500)
    trained, failed = store.add_training_runs([(PIPELINE, asked), ("mitdb-af-bilstm", asked)])
    store.start_training_runs([trained, failed])
    evaluation = accuracy(0.9, [80, 5, 3, 4, 30, 1, 2, 0, 25])
    note = "inter-patient: every record is on the DS1 side; fell back to a random beat split"
    summary = TrainingSummary("random", 0.9, evaluation, ["N", "S", "V"], 500, 150, 31_234, 12.5, 3e-7, [note])
    store.finish_training_run(trained, summary=summary, model_sha256=onnx.sha256, dataset_sha256=testset.sha256)
    store.finish_training_run(failed, error="ConfigError: records: no AFIB window in 101, 106")
    seeded.training.update(trained=trained, failed=failed)
    # One job still waiting in the queue: it has no result and is not in the results table.
    seeded.jobs["queued-ort"] = store.submit_job(
        JobSpec("queued-ort", "onnxruntime", onnx, testset, pipeline=PIPELINE), seeded.agents["jetson-nano-1"]
    )
    store.close()
    return seeded


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Seeded:
    """The seeded store under EDGELAB_HOME, and a coordinator address nobody listens on."""
    data = seed(tmp_path / "home")
    monkeypatch.setenv("EDGELAB_HOME", str(data.home))
    monkeypatch.delenv("EDGELAB_CONFIG", raising=False)
    monkeypatch.setenv(COORDINATOR_ENV, "127.0.0.1:1")
    return data


def rows(frame: Any, **match: str) -> list[dict[str, Any]]:
    """The rows of a dataframe element whose columns equal `match`."""
    records: list[dict[str, Any]] = frame.to_dict("records")
    return [r for r in records if all(r[k] == v for k, v in match.items())]


def plotly_values(array: Any) -> list[float]:
    """Plotly 6 sends numeric arrays as base64 typed arrays."""
    if isinstance(array, dict):
        decoded: list[float] = np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
        return decoded
    return list(array)


DEMO_DS2_CONFUSION = [
    [38960, 2055, 168, 3057, 0],
    [136, 1606, 75, 20, 0],
    [4, 33, 2892, 291, 0],
    [177, 0, 5, 206, 0],
    [1, 0, 3, 3, 0],
]
"""A demo's on-device confusion on DS2 (rows: reference N, S, V, F, Q)."""


def report_of(confusion: list[list[int]], names: list[str]) -> AccuracyReport:
    """The AccuracyReport of labels and predictions making this confusion (rows: reference)."""
    counts = np.asarray(confusion).ravel()
    cells = np.arange(counts.size)
    return accuracy_report(np.repeat(cells // len(names), counts), np.repeat(cells % len(names), counts), names)
