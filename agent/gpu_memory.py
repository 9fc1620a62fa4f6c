"""GPU / accelerator memory of a benchmark, where the engine runs on one (issue 17).

Each figure says what it includes; one that cannot be read is kept with the reason and no value
(`AcceleratorMemory.size_bytes` unset), never as 0. Read once, after the timed phases, while the
engine is still loaded: neither NVML nor jtop keeps a high-water mark, so these are levels, not peaks.

- NVML (desktop and server GPUs): the GPU memory the driver attributes to this process
  (`nvmlDeviceGetComputeRunningProcesses`, summed over the GPUs it appears on): its CUDA context,
  the runtime's allocations (engine weights and activations, ONNX Runtime's CUDA arena) and the
  I/O buffers. pynvml gives `usedGpuMemory = None` where the driver withholds it (Windows WDDM,
  some containers), and a container's pid may not be the one NVML lists (host pid namespace).
- jtop (Jetson): the GPU's share of the unified RAM (`memory["RAM"]["shared"]`, kB: NvMap's
  `NvMapMemUsed`), for the whole board, not this process alone; Jetson's NVML has no per-process
  figure. jetson-stats is installed on Jetsons only, so its presence picks this reader.
- The engine's own figure (TensorRT: device memory an execution context needs) comes from the
  backend (`AcceleratorMemoryEngine` in agent.runner).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

from agent.backends.base import GPU_DEVICE
from agent.power.jetson import import_jtop
from agent.power.nvml import import_pynvml
from edgelab.domain import AcceleratorMemory
from edgelab.errors import MissingExtraError

NVML_WHAT = (
    "GPU memory NVML attributes to the benchmark process after the timed phases (a level, not a peak): "
    "CUDA context, runtime allocations (engine weights and activations, arenas), I/O buffers"
)
JTOP_WHAT = (
    "GPU share of the Jetson's unified RAM after the timed phases, whole board (jtop memory RAM 'shared', "
    "NvMap): every GPU user, not only this benchmark; part of the same RAM the RSS figures count"
)


def unavailable(source: str, what: str, reason: str) -> AcceleratorMemory:
    return AcceleratorMemory(source=source, what=what, size_bytes=None, note=f"not available: {reason}")


def nvml_process_memory(pid: int | None = None, pynvml: Callable[[], Any] = import_pynvml) -> AcceleratorMemory:
    """The GPU memory NVML lists for `pid` (default: this process), summed over GPUs, or why not."""
    pid = os.getpid() if pid is None else pid
    try:
        nvml = pynvml()
    except MissingExtraError as exc:
        return unavailable("nvml", NVML_WHAT, str(exc))
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        return unavailable("nvml", NVML_WHAT, f"NVML did not initialize: {exc}")
    total, on, withheld = 0, [], False
    try:
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            for process in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if process.pid != pid:
                    continue
                if process.usedGpuMemory is None:
                    withheld = True
                else:
                    total += int(process.usedGpuMemory)
                    on.append(str(index))
    except nvml.NVMLError as exc:
        return unavailable("nvml", NVML_WHAT, f"NVML could not list compute processes: {exc}")
    finally:
        nvml.nvmlShutdown()
    if on:
        return AcceleratorMemory(
            "nvml", NVML_WHAT, total, f"nvmlDeviceGetComputeRunningProcesses, pid {pid} on GPU {','.join(on)}"
        )
    if withheld:
        return unavailable("nvml", NVML_WHAT, f"NVML lists pid {pid} but withholds its memory (usedGpuMemory unset)")
    return unavailable(
        "nvml", NVML_WHAT, f"NVML lists no compute process with pid {pid} (in a container NVML may show host pids)"
    )


def jtop_shared_memory(jtop: Callable[[], Any] = import_jtop) -> AcceleratorMemory:
    """jtop's GPU shared RAM on a Jetson (kB in jetson-stats 4.x), or why not."""
    try:
        module = jtop()
    except MissingExtraError as exc:
        return unavailable("jtop", JTOP_WHAT, str(exc))
    jetson = module.jtop()
    try:
        jetson.start()
    except (module.JtopException, OSError) as exc:
        return unavailable("jtop", JTOP_WHAT, f"jtop service not reachable: {exc}")
    try:
        if not jetson.ok():
            return unavailable("jtop", JTOP_WHAT, "jtop delivered no stats")
        shared_kb = (jetson.memory["RAM"] or {}).get("shared")
    except (KeyError, TypeError) as exc:
        return unavailable("jtop", JTOP_WHAT, f"jtop's memory has no RAM 'shared' figure ({exc!r})")
    finally:
        jetson.close()
    if shared_kb is None:
        return unavailable("jtop", JTOP_WHAT, "jtop's memory has no RAM 'shared' figure")
    return AcceleratorMemory("jtop", JTOP_WHAT, int(shared_kb) * 1024, "jtop memory['RAM']['shared'] (kB)")


def on_jetson() -> bool:
    """jetson-stats (jtop) is installed on Jetsons only: its presence picks jtop over NVML."""
    return importlib.util.find_spec("jtop") is not None


def process_accelerator_memory(
    device: str,
    *,
    nvml: Callable[[], AcceleratorMemory] = nvml_process_memory,
    jetson: Callable[[], AcceleratorMemory] = jtop_shared_memory,
    is_jetson: Callable[[], bool] = on_jetson,
) -> list[AcceleratorMemory]:
    """The device-side memory figure for an engine on `device` ("gpu": NVML, or jtop on a Jetson); none for
    CPU engines. A reader that fails gives its reason instead of a figure, never an error out of here."""
    if device != GPU_DEVICE:
        return []
    source, read = ("jtop", jetson) if is_jetson() else ("nvml", nvml)
    try:
        return [read()]
    except Exception as exc:  # a broken driver or service must not fail a finished benchmark
        what = JTOP_WHAT if source == "jtop" else NVML_WHAT
        return [unavailable(source, what, f"{type(exc).__name__}: {exc}")]
