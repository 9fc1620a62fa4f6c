from edgelab import serde
from edgelab.domain import (
    AccuracyReport,
    ArtifactRef,
    BenchmarkResult,
    ClassMetrics,
    Failure,
    FailureKind,
    JobSpec,
    LatencyStats,
    PowerReport,
    Precision,
)
from edgelab.v1 import common_pb2


def _latency(p99: float | None) -> LatencyStats:
    return LatencyStats(
        8, 700, 1.0, 0.9, 0.5, 3.0, 0.1, 8000.0, 5.0, 0.2, 10, 0.7, "end-to-end", p90_ms=1.2, p99_ms=p99
    )


def test_job_spec_round_trips_through_proto_and_json() -> None:
    spec = JobSpec(
        name="n",
        backend="onnxruntime",
        model=ArtifactRef("a" * 64, 10, "onnx"),
        dataset=ArtifactRef("b" * 64),
        precision=Precision.INT8,
        batch_sizes=[1, 8],
        labels={"split": "inter-patient"},
    )

    message = serde.to_proto(spec, common_pb2.JobSpec())

    assert message.precision == common_pb2.PRECISION_INT8
    assert serde.from_proto(message, JobSpec) == spec
    assert serde.from_jsonable(serde.to_jsonable(spec), JobSpec) == spec


def test_unset_percentile_and_absent_messages_stay_none() -> None:
    result = BenchmarkResult(load_s=0.5, latency=[_latency(None)], failure=None)

    message = serde.to_proto(result, common_pb2.BenchmarkResult())
    back = serde.from_proto(message, BenchmarkResult)

    assert not message.latency[0].HasField("p99_ms")
    assert message.latency[0].HasField("p90_ms")
    assert back.latency[0].p99_ms is None and back.latency[0].p90_ms == 1.2
    assert back.accuracy is None and back.failure is None


def test_failure_accuracy_and_per_rail_power_round_trip() -> None:
    result = BenchmarkResult(
        latency=[_latency(2.5)],
        accuracy=AccuracyReport(10, 0.9, 2, 0.8, [ClassMetrics("N", 5, 1.0, 0.8, 0.89)], [4, 1, 0, 5]),
        power=[PowerReport("jtop", "tot", 0.05, 60, 4.0, 9.5, 1.375, 8, 3.0, {"VDD_GPU": 2.5, "VDD_CPU": 1.25})],
        failure=Failure(FailureKind.OUT_OF_MEMORY, "oom", "trace"),
        manifest={"backend": "onnxruntime"},
    )

    back = serde.from_proto(serde.to_proto(result, common_pb2.BenchmarkResult()), BenchmarkResult)

    assert back == result
    assert back.accuracy is not None and back.accuracy.confusion_matrix() == [[4, 1], [0, 5]]


def test_confidence_intervals_and_memory_round_trip_and_old_results_still_load() -> None:
    import dataclasses

    from edgelab.domain import MemoryReport

    latency = dataclasses.replace(
        _latency(2.5),
        ci_level=0.95,
        p50_ci_low_ms=0.85,
        p50_ci_high_ms=0.95,
        p99_ci_low_ms=2.25,
        p99_ci_high_ms=2.75,
        cv=0.125,
    )
    memory = MemoryReport(50 << 20, 210 << 20, 205 << 20, 200 << 20, "VmHWM, reset per phase")
    result = BenchmarkResult(load_s=0.5, latency=[latency], memory=memory)

    message = serde.to_proto(result, common_pb2.BenchmarkResult())
    assert serde.from_proto(message, BenchmarkResult) == result
    assert serde.from_jsonable(serde.to_jsonable(result), BenchmarkResult) == result

    # A result stored (JSON) or sent (proto) before these fields existed: they read as None.
    old = serde.to_jsonable(BenchmarkResult(load_s=0.5, latency=[_latency(None)]))
    for key in ("ci_level", "p50_ci_low_ms", "p50_ci_high_ms", "p99_ci_low_ms", "p99_ci_high_ms", "cv"):
        del old["latency"][0][key]
    del old["memory"]
    loaded = serde.from_jsonable(old, BenchmarkResult)
    assert loaded.memory is None and loaded.latency[0].p50_ci_low_ms is None and loaded.latency[0].cv is None
    plain = serde.from_proto(serde.to_proto(loaded, common_pb2.BenchmarkResult()), BenchmarkResult)
    assert plain == loaded


def test_operator_profiles_round_trip_and_results_without_them_still_load() -> None:
    from edgelab.domain import OperatorProfile, OperatorTime

    profile = OperatorProfile(
        batch_size=8,
        source="onnxruntime session profiling",
        total_ms=0.375,
        operators=7,
        iterations=20,
        ops=[OperatorTime("conv2", "FusedConv", 0.25, 66.5), OperatorTime("conv1", "FusedConv", 0.0625, 16.5)],
    )
    result = BenchmarkResult(load_s=0.5, latency=[_latency(2.5)], profiles=[profile])
    assert serde.from_proto(serde.to_proto(result, common_pb2.BenchmarkResult()), BenchmarkResult) == result
    assert serde.from_jsonable(serde.to_jsonable(result), BenchmarkResult) == result

    old = serde.to_jsonable(BenchmarkResult(load_s=0.5, latency=[_latency(None)]))
    del old["profiles"]
    loaded = serde.from_jsonable(old, BenchmarkResult)
    assert loaded.profiles == []
    assert serde.from_proto(serde.to_proto(loaded, common_pb2.BenchmarkResult()), BenchmarkResult) == loaded


def test_repetitions_and_accelerator_memory_round_trip_and_older_messages_still_load() -> None:
    from edgelab.domain import AcceleratorMemory, MeasurementSettings, MemoryReport, RepetitionSpread

    spread = RepetitionSpread(8, "end-to-end", [0.9, 1.1, 1.0], mean_ms=1.0, sd_ms=0.1, min_ms=0.9, max_ms=1.1)
    memory = MemoryReport(
        50 << 20,
        210 << 20,
        205 << 20,
        accelerator=[
            AcceleratorMemory("tensorrt", "activations", 3 << 20, "ICudaEngine.device_memory_size_v2"),
            AcceleratorMemory("nvml", "process", None, "not available: NVML lists no compute process"),
        ],
    )
    result = BenchmarkResult(load_s=0.5, latency=[_latency(2.5)], memory=memory, repetitions=[spread])
    spec = JobSpec(
        "r", "onnxruntime", ArtifactRef("a" * 64), ArtifactRef("b" * 64), measurement=MeasurementSettings(repetitions=5)
    )

    for value, message in ((result, common_pb2.BenchmarkResult()), (spec, common_pb2.JobSpec())):
        assert serde.from_proto(serde.to_proto(value, message), type(value)) == value
        assert serde.from_jsonable(serde.to_jsonable(value), type(value)) == value

    # Specs and results from before these fields: one repetition, no spread, no accelerator figures.
    old_spec = serde.to_jsonable(spec)
    del old_spec["measurement"]["repetitions"]
    assert serde.from_jsonable(old_spec, JobSpec).measurement.repetitions == 1
    unset = serde.to_proto(spec, common_pb2.JobSpec())
    unset.measurement.ClearField("repetitions")
    assert serde.from_proto(unset, JobSpec).measurement.repetitions == 1
    old = serde.to_jsonable(result)
    del old["repetitions"], old["memory"]["accelerator"]
    loaded = serde.from_jsonable(old, BenchmarkResult)
    assert loaded.repetitions == [] and loaded.memory is not None and loaded.memory.accelerator == []
