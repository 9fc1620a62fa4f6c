"""GPU / accelerator memory figures (issue 17): NVML per process on desktops, jtop's shared RAM on a Jetson,
none for CPU engines; a figure that cannot be read is absent with the reason, never a fake 0."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent.backends.base import CPU_DEVICE, GPU_DEVICE
from agent.gpu_memory import JTOP_WHAT, NVML_WHAT, jtop_shared_memory, nvml_process_memory, process_accelerator_memory
from agent.runner import run_benchmark
from edgelab import serde
from edgelab.domain import AcceleratorMemory, ArtifactRef, BenchmarkResult, JobSpec, MeasurementSettings
from edgelab.errors import MissingExtraError
from edgelab.v1 import common_pb2
from tests.agent.power.test_power_jtop import fake_jtop_module, orin_power
from tests.agent.power.test_power_nvml import LIBRARY_NOT_FOUND, FakePynvml
from tests.factories import write_linear_onnx, write_test_set

MIB = 1 << 20


class ProcessesPynvml(FakePynvml):
    """pynvml with compute processes per GPU: (pid, usedGpuMemory bytes or None when the driver withholds it)."""

    def __init__(self, processes: dict[int, list[tuple[int, int | None]]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.processes = processes

    def nvmlDeviceGetCount(self) -> int:
        return len(self.processes)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: tuple[str, int]) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in self.processes[handle[1]]]


def test_nvml_sums_this_process_over_the_gpus_it_is_on() -> None:
    fake = ProcessesPynvml({0: [(41, 900 * MIB), (42, 300 * MIB)], 1: [(42, 100 * MIB)], 2: []})

    figure = nvml_process_memory(42, pynvml=lambda: fake)

    assert figure == AcceleratorMemory(
        "nvml", NVML_WHAT, 400 * MIB, "nvmlDeviceGetComputeRunningProcesses, pid 42 on GPU 0,1"
    )
    assert fake.initialized == 0  # shut down again


@pytest.mark.parametrize(
    ("processes", "init_error", "reason"),
    [
        ({0: [(41, 900 * MIB)]}, None, "NVML lists no compute process with pid 42"),
        ({0: [(42, None)]}, None, "withholds its memory"),
        ({0: []}, LIBRARY_NOT_FOUND, "NVML did not initialize: NVML Shared Library Not Found"),
    ],
)
def test_nvml_without_a_figure_says_why_and_gives_no_number(
    processes: dict[int, list[tuple[int, int | None]]], init_error: int | None, reason: str
) -> None:
    fake = ProcessesPynvml(processes, init_error=init_error)

    figure = nvml_process_memory(42, pynvml=lambda: fake)

    assert figure.size_bytes is None and figure.source == "nvml"
    assert figure.note.startswith("not available: ") and reason in figure.note


def test_nvml_without_pynvml_names_the_extra() -> None:
    def missing() -> Any:
        raise MissingExtraError("nvidia-ml-py", "nvml")

    figure = nvml_process_memory(42, pynvml=missing)

    assert figure.size_bytes is None and "nvidia-ml-py" in figure.note


def _jtop_with_memory(memory: dict[str, Any], **kwargs: Any) -> SimpleNamespace:
    module = fake_jtop_module(orin_power(5000, 1000), **kwargs)
    module.jtop.memory = memory  # jetson-stats 4.x: jetson.memory["RAM"], values in kB
    return module


def test_jtop_reads_the_shared_ram_in_kib_and_closes() -> None:
    module = _jtop_with_memory({"RAM": {"tot": 7_620_000, "used": 2_100_000, "shared": 512_000}})

    figure = jtop_shared_memory(jtop=lambda: module)

    assert figure == AcceleratorMemory("jtop", JTOP_WHAT, 512_000 * 1024, "jtop memory['RAM']['shared'] (kB)")
    assert "whole board" in figure.what
    assert module.jtop.opened[0].closed


@pytest.mark.parametrize(
    ("memory", "service_up", "reason"),
    [
        ({"RAM": {"tot": 7_620_000}}, True, "no RAM 'shared'"),
        ({}, True, "no RAM 'shared'"),
        ({}, False, "not reachable"),
    ],
)
def test_jtop_without_the_figure_says_why(memory: dict[str, Any], service_up: bool, reason: str) -> None:
    module = _jtop_with_memory(memory, service_up=service_up)

    figure = jtop_shared_memory(jtop=lambda: module)

    assert figure.size_bytes is None and reason in figure.note
    assert all(jetson.closed for jetson in module.jtop.opened if service_up)


def test_the_reader_follows_where_the_engine_runs() -> None:
    nvml = AcceleratorMemory("nvml", NVML_WHAT, 1, "n")
    jtop = AcceleratorMemory("jtop", JTOP_WHAT, 2, "j")

    def broken() -> AcceleratorMemory:
        raise RuntimeError("driver/library version mismatch")

    def figures(device: str, jetson: bool, read_nvml: Any = lambda: nvml) -> list[AcceleratorMemory]:
        return process_accelerator_memory(device, nvml=read_nvml, jetson=lambda: jtop, is_jetson=lambda: jetson)

    assert figures(CPU_DEVICE, False) == [] and figures(CPU_DEVICE, True) == []
    assert figures(GPU_DEVICE, False) == [nvml]
    assert figures(GPU_DEVICE, True) == [jtop]
    (failed,) = figures(GPU_DEVICE, False, broken)
    assert failed.size_bytes is None and "RuntimeError: driver/library version mismatch" in failed.note


def test_a_cpu_result_has_no_accelerator_figures_and_round_trips(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    spec = JobSpec(
        "cpu",
        "onnxruntime",
        ArtifactRef("a" * 64, format="onnx"),
        ArtifactRef("b" * 64, format="npz"),
        measurement=MeasurementSettings(warmup_iterations=1, min_iterations=5, min_duration_s=0, power_meter="none"),
    )

    result = run_benchmark(spec, write_linear_onnx(tmp_path / "m.onnx"), write_test_set(tmp_path / "t.npz"))

    assert result.ok and result.memory is not None, result.failure
    assert result.memory.accelerator == []
    with_gpu = BenchmarkResult(memory=result.memory)
    with_gpu.memory.accelerator = [
        AcceleratorMemory("nvml", NVML_WHAT, 0, "read as zero stays zero"),
        AcceleratorMemory("jtop", JTOP_WHAT, None, "not available: jtop delivered no stats"),
    ]
    back = serde.from_proto(serde.to_proto(with_gpu, common_pb2.BenchmarkResult()), BenchmarkResult)
    assert back.memory == with_gpu.memory  # an unset figure stays unset, a real 0 stays 0
