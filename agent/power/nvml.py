"""NVIDIA GPUs through NVML (nvidia-ml-py's `pynvml`).

The total-energy counter (`nvmlDeviceGetTotalEnergyConsumption`, mJ since the driver loaded,
Volta and newer) is preferred: its difference over a window is the energy, whatever the
sampling period. Older GPUs fall back to `nvmlDeviceGetPowerUsage` (mW; on Ampere and newer
it is itself a 1 s average). Jetson's NVML answers NotSupported to both, so jtop measures there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agent.power.base import MeterInfo, PowerMeterUnavailable, PowerSample, probe_by_opening
from edgelab.errors import MissingExtraError


def import_pynvml() -> Any:
    try:
        import pynvml
    except ImportError as exc:
        raise MissingExtraError("nvidia-ml-py", "nvml") from exc
    return pynvml


def _not_supported(nvml: Any, exc: Exception) -> bool:
    codes = {nvml.NVML_ERROR_NOT_SUPPORTED, getattr(nvml, "NVML_ERROR_FUNCTION_NOT_FOUND", None)}
    return getattr(exc, "value", None) in codes


class NvmlReader:
    def __init__(self, nvml: Any, index: int) -> None:
        self._nvml = nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise PowerMeterUnavailable("nvml", f"NVML did not initialize: {exc}") from exc
        try:
            self._handle, self.sensor, self._energy = self._open_device(index)
        except BaseException:
            nvml.nvmlShutdown()
            raise

    def _open_device(self, index: int) -> tuple[Any, str, bool]:
        nvml = self._nvml
        count = nvml.nvmlDeviceGetCount()
        if index >= count:
            raise PowerMeterUnavailable("nvml", f"no GPU {index}: NVML sees {count} GPU(s)")
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        gpu = f"GPU {index}: {name.decode() if isinstance(name, bytes) else name}"
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            return handle, f"NVML total energy counter ({gpu})", True
        except nvml.NVMLError as exc:
            if not _not_supported(nvml, exc):
                raise PowerMeterUnavailable("nvml", f"total energy of {gpu}: {exc}") from exc
        try:
            nvml.nvmlDeviceGetPowerUsage(handle)
        except nvml.NVMLError as exc:
            raise PowerMeterUnavailable(
                "nvml", f"{gpu} reports {exc} for both total energy and power usage (as NVML does on Jetson)"
            ) from exc
        return handle, f"NVML power usage ({gpu})", False

    def read(self) -> PowerSample:
        if self._energy:
            millijoules = self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            return PowerSample(t_s=time.perf_counter(), energy_j=millijoules / 1e3)
        milliwatts = self._nvml.nvmlDeviceGetPowerUsage(self._handle)
        return PowerSample(t_s=time.perf_counter(), watts=milliwatts / 1e3)

    def close(self) -> None:
        self._nvml.nvmlShutdown()


class NvmlMeter:
    """GPU `index` in NVML's (PCI bus) order; set CUDA_DEVICE_ORDER=PCI_BUS_ID so CUDA agrees."""

    name = "nvml"

    def __init__(self, index: int = 0, pynvml: Callable[[], Any] = import_pynvml) -> None:
        self.index = index
        self._pynvml = pynvml  # injectable: tests pass a fake module with pynvml's names

    def probe(self) -> MeterInfo:
        return probe_by_opening(self)

    def open(self) -> NvmlReader:
        return NvmlReader(self._pynvml(), self.index)
