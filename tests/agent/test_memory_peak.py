"""Peak resident memory per result (issue 17): real ONNX Runtime sessions, a model holding a 200 MiB constant
against a small one, and the two ways the agent reads a phase's peak."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.memory import PeakRss
from agent.runner import run_benchmark
from edgelab.domain import ArtifactRef, JobSpec, MeasurementSettings
from tests.factories import onnx_with_large_constant, write_linear_onnx, write_test_set

MIB = 1 << 20
BIG_MIB = 200
FAST = MeasurementSettings(
    warmup_iterations=2, warmup_duration_s=0, min_iterations=20, min_duration_s=0, power_meter="none"
)


def _spec() -> JobSpec:
    return JobSpec(
        name="mem",
        backend="onnxruntime",
        model=ArtifactRef("a" * 64, format="onnx"),
        dataset=ArtifactRef("b" * 64, format="npz"),
        batch_sizes=[1, 8],
        measurement=FAST,
    )


def test_peak_memory_rises_with_a_model_holding_a_large_constant(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    data = write_test_set(tmp_path / "data.npz")
    small_path = write_linear_onnx(tmp_path / "small.onnx")
    big_path = onnx_with_large_constant(small_path, tmp_path / "big.onnx", BIG_MIB)

    small = run_benchmark(_spec(), small_path, data)
    big = run_benchmark(_spec(), big_path, data)

    assert small.ok and big.ok, (small.failure, big.failure)
    assert small.memory is not None and big.memory is not None
    print(f"small: {small.memory}\nbig: {big.memory}")  # the figures the report quotes (pytest -s)
    assert big.memory.model_file_bytes > BIG_MIB * MIB > 1000 * small.memory.model_file_bytes
    # The build reads the file and keeps the table: at least the constant above what the small model needs.
    assert big.memory.load_peak_bytes - small.memory.load_peak_bytes > 0.9 * BIG_MIB * MIB
    # The table stays resident while it runs; the small model's whole inference phase is a few MiB.
    assert big.memory.inference_peak_bytes > 0.9 * BIG_MIB * MIB
    assert small.memory.inference_peak_bytes < 0.25 * BIG_MIB * MIB
    assert big.memory.method == small.memory.method != ""


def test_peak_rss_reads_the_high_water_mark_of_each_phase_above_the_baseline() -> None:
    rss = PeakRss()
    if not rss.exact:
        pytest.skip(f"this kernel does not let a process reset its VmHWM: {rss.method}")
    with rss.phase() as before:
        pass
    with rss.phase() as grown:
        block = np.ones(64 * MIB, np.uint8)  # 64 MiB written, then freed before the phase ends
        del block
    with rss.phase() as after:
        pass
    assert grown[0] >= 60 * MIB
    assert before[0] < 16 * MIB and after[0] < 16 * MIB  # each phase starts from the current RSS, not the peak


def test_without_a_resettable_high_water_mark_a_thread_samples_rss(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "self" / "clear_refs").mkdir(parents=True)  # a directory: writing to it fails, as where not allowed
    status = proc / "self" / "status"
    status.write_text("Name:\tx\nVmHWM:\t  900000 kB\nVmRSS:\t  100000 kB\n")
    rss = PeakRss(proc)
    assert not rss.exact and "sampled" in rss.method and rss.baseline == 100000 * 1024

    with rss.phase() as peak:
        status.write_text("Name:\tx\nVmHWM:\t  900000 kB\nVmRSS:\t  150000 kB\n")
    assert peak[0] == 50000 * 1024

    gone = PeakRss(tmp_path / "nowhere")
    with gone.phase() as nothing:
        pass
    assert not gone.available and nothing[0] == 0 and gone.method.startswith("not available")


def test_the_sampling_thread_reads_statm_where_there_is_one(tmp_path: Path) -> None:
    import resource

    proc = tmp_path / "proc"
    (proc / "self" / "clear_refs").mkdir(parents=True)
    (proc / "self" / "status").write_text("Name:\tx\nVmHWM:\t  900000 kB\nVmRSS:\t  100000 kB\n")
    statm = proc / "self" / "statm"
    page = resource.getpagesize()
    statm.write_text(f"5000000 {100000 * 1024 // page} 300 1 0 2000 0\n")
    rss = PeakRss(proc)

    with rss.phase() as peak:
        statm.write_text(f"5000000 {180000 * 1024 // page} 300 1 0 2000 0\n")  # status still says 100000 kB

    assert peak[0] == 80000 * 1024
