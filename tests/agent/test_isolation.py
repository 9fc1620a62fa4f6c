"""A benchmark in a spawned child: a segfault, an exit without a result and a hang all become stored failures."""

import ctypes
import os
import time
from pathlib import Path

import pytest

from agent.isolation import run_isolated
from edgelab.domain import ArtifactRef, BenchmarkResult, FailureKind, JobSpec, MeasurementSettings

SPEC = JobSpec(
    "t",
    "onnxruntime",
    ArtifactRef("a" * 64, format="onnx"),
    ArtifactRef("b" * 64, format="npz"),
    measurement=MeasurementSettings(warmup_iterations=1, min_iterations=10, min_duration_s=0.01),
)


# Targets run in the child, so they live at module level where the spawned interpreter can import them.
def segfault(spec: JobSpec, model: Path, dataset: Path, cache: Path | None) -> BenchmarkResult:
    ctypes.string_at(0)  # reads address 0: SIGSEGV in native code, like a runtime crashing on a model
    raise AssertionError("unreachable")


def exit_without_result(spec: JobSpec, model: Path, dataset: Path, cache: Path | None) -> BenchmarkResult:
    os._exit(3)


def hang(spec: JobSpec, model: Path, dataset: Path, cache: Path | None) -> BenchmarkResult:
    time.sleep(60)
    raise AssertionError("unreachable")


def raises(spec: JobSpec, model: Path, dataset: Path, cache: Path | None) -> BenchmarkResult:
    raise RuntimeError("bug in a backend")


def report_pid(spec: JobSpec, model: Path, dataset: Path, cache: Path | None) -> BenchmarkResult:
    return BenchmarkResult(load_s=1.5, manifest={"pid": str(os.getpid())})


def test_result_comes_back_from_a_separate_process(tmp_path: Path) -> None:
    result = run_isolated(SPEC, tmp_path / "m", tmp_path / "d", timeout_s=60, target=report_pid)

    assert result.failure is None and result.load_s == 1.5
    assert result.manifest["pid"] != str(os.getpid())


def test_real_benchmark_runs_in_the_child(onnx_model: Path, test_set: Path) -> None:
    result = run_isolated(SPEC, onnx_model, test_set, timeout_s=120)

    assert result.failure is None, result.failure
    assert result.latency[0].samples >= 10 and result.accuracy is not None


@pytest.mark.parametrize(
    ("target", "kind", "message"),
    [
        (segfault, FailureKind.CRASH, "killed by signal SIGSEGV (11)"),
        (exit_without_result, FailureKind.CRASH, "exited with code 3 without a result"),
        (raises, FailureKind.CRASH, "RuntimeError: bug in a backend"),
    ],
)
def test_dying_child_is_a_classified_crash(tmp_path: Path, target: object, kind: FailureKind, message: str) -> None:
    result = run_isolated(SPEC, tmp_path / "m", tmp_path / "d", timeout_s=60, target=target)  # type: ignore[arg-type]

    assert result.failure is not None and result.failure.kind is kind
    assert message in result.failure.message


def test_hanging_child_is_killed_at_the_wall_clock_limit(tmp_path: Path) -> None:
    start = time.monotonic()

    result = run_isolated(SPEC, tmp_path / "m", tmp_path / "d", timeout_s=3, target=hang)

    assert result.failure is not None and result.failure.kind is FailureKind.TIMEOUT
    assert "3 s wall-clock limit" in result.failure.message
    assert time.monotonic() - start < 15
