"""The door's bounds on repetitions (issue 17): how many a job may ask for, and the spread and accelerator
memory figures a result may carry."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from coordinator.limits import MAX_ACCELERATOR_FIGURES, MAX_REPETITIONS, Invalid, TooLarge, check_result, check_spec
from edgelab.domain import (
    AcceleratorMemory,
    ArtifactRef,
    BenchmarkResult,
    JobSpec,
    MeasurementSettings,
    MemoryReport,
    RepetitionSpread,
)
from edgelab.serde import to_proto
from edgelab.v1 import common_pb2
from tests.factories import LATENCY

SPREAD = RepetitionSpread(
    LATENCY.batch_size, LATENCY.scope, [1.0, 1.2], mean_ms=1.1, sd_ms=0.14, min_ms=1.0, max_ms=1.2
)
FIGURE = AcceleratorMemory("nvml", "GPU memory of the process", 800 << 20, "nvmlDeviceGetComputeRunningProcesses")


def _check_result(spread: list[RepetitionSpread], figures: list[AcceleratorMemory]) -> None:
    result = BenchmarkResult(
        load_s=0.1, latency=[LATENCY], repetitions=spread, memory=MemoryReport(1, 2, 3, accelerator=figures)
    )
    check_result(result, to_proto(result, common_pb2.BenchmarkResult()))


def _spec(repetitions: int) -> JobSpec:
    spec = JobSpec("r", "onnxruntime", ArtifactRef("a" * 64), ArtifactRef("b" * 64))
    spec.measurement.repetitions = repetitions  # past the dataclass's own check, as a decoded message can be
    return spec


def test_repetitions_up_to_the_bound_are_accepted() -> None:
    for repetitions in (1, MAX_REPETITIONS):
        spec = _spec(repetitions)
        check_spec(spec, to_proto(spec, common_pb2.JobSpec()))
    _check_result(
        [SPREAD, dataclasses.replace(SPREAD, p50_ms=[1.0] * MAX_REPETITIONS)], [FIGURE] * MAX_ACCELERATOR_FIGURES
    )
    _check_result([], [dataclasses.replace(FIGURE, size_bytes=None, note="not available: no NVML")])


@pytest.mark.parametrize("repetitions", [0, -1, MAX_REPETITIONS + 1])
def test_a_spec_with_repetitions_out_of_bounds_is_refused(repetitions: int) -> None:
    spec = _spec(repetitions)
    with pytest.raises(Invalid, match=re.escape("spec.measurement.repetitions:")):
        check_spec(spec, to_proto(spec, common_pb2.JobSpec()))
    with pytest.raises(ValueError, match="repetitions must be >= 1"):
        MeasurementSettings(repetitions=min(repetitions, 0))


@pytest.mark.parametrize(
    ("spread", "figures", "error", "field"),
    [
        ([dataclasses.replace(SPREAD, sd_ms=math.nan)], [], Invalid, "repetitions[0].sd_ms"),
        ([dataclasses.replace(SPREAD, p50_ms=[1.0, -1.0])], [], Invalid, "repetitions[0].p50_ms[1]"),
        ([dataclasses.replace(SPREAD, p50_ms=[1.0] * (MAX_REPETITIONS + 1))], [], TooLarge, "repetitions[0].p50_ms"),
        ([dataclasses.replace(SPREAD, batch_size=0)], [], Invalid, "repetitions[0].batch_size"),
        ([], [dataclasses.replace(FIGURE, size_bytes=-1)], Invalid, "memory.accelerator[0].size_bytes"),
        ([], [dataclasses.replace(FIGURE, source="")], Invalid, "memory.accelerator[0].source"),
        ([], [dataclasses.replace(FIGURE, note="x" * 10_000)], TooLarge, "memory.accelerator[0].note"),
        ([], [FIGURE] * (MAX_ACCELERATOR_FIGURES + 1), TooLarge, "memory.accelerator"),
    ],
    ids=[
        "nan-sd",
        "negative-p50",
        "too-many-p50s",
        "batch-0",
        "negative-bytes",
        "no-source",
        "long-note",
        "17-figures",
    ],
)
def test_a_spread_or_accelerator_figure_out_of_bounds_is_refused_naming_the_field(
    spread: list[RepetitionSpread], figures: list[AcceleratorMemory], error: type[Exception], field: str
) -> None:
    with pytest.raises(error, match=re.escape(f"result.{field}:")):
        _check_result(spread, figures)
