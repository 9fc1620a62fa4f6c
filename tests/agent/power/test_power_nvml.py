import sys
import time

import pytest

from agent.power.base import PowerMeterUnavailable
from agent.power.nvml import NvmlMeter

NOT_SUPPORTED, LIBRARY_NOT_FOUND, FUNCTION_NOT_FOUND = 3, 12, 13
WINDOW_S = 1.0  # long enough for the energy counter to advance and for a fresh power reading (1 s average on Ampere+)
PLAUSIBLE_GPU_W = (1.0, 2000.0)  # even an idle GPU draws watts, none 2 kW; a mJ/J or mW/W slip falls outside


class FakeNVMLError(Exception):
    """pynvml's NVMLError: the code is in `.value`, str() is NVML's error string."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {NOT_SUPPORTED: "Not Supported", LIBRARY_NOT_FOUND: "NVML Shared Library Not Found"}[self.value]


class FakePynvml:
    """The pynvml functions the meter calls, with a GPU whose counters the test sets."""

    NVMLError = FakeNVMLError
    NVML_ERROR_NOT_SUPPORTED = NOT_SUPPORTED
    NVML_ERROR_FUNCTION_NOT_FOUND = FUNCTION_NOT_FOUND

    def __init__(self, *, energy: bool = True, power: bool = True, init_error: int | None = None) -> None:
        self.energy_supported, self.power_supported, self.init_error = energy, power, init_error
        self.energy_mj = 123_456_000
        self.power_mw = 250_000
        self.initialized = 0

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise FakeNVMLError(self.init_error)
        self.initialized += 1

    def nvmlShutdown(self) -> None:
        self.initialized -= 1

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> object:
        return ("handle", index)

    def nvmlDeviceGetName(self, handle: object) -> bytes:
        return b"NVIDIA A100-SXM4-40GB"  # older pynvml returns bytes, newer str

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: object) -> int:
        if not self.energy_supported:
            raise FakeNVMLError(NOT_SUPPORTED)
        return self.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle: object) -> int:
        if not self.power_supported:
            raise FakeNVMLError(NOT_SUPPORTED)
        return self.power_mw


def meter(fake: FakePynvml, index: int = 0) -> NvmlMeter:
    return NvmlMeter(index=index, pynvml=lambda: fake)


def test_total_energy_counter_is_preferred_and_read_in_joules() -> None:
    fake = FakePynvml()
    reader = meter(fake).open()

    fake.energy_mj += 7_500  # 7.5 J later
    sample = reader.read()
    reader.close()

    assert reader.sensor == "NVML total energy counter (GPU 0: NVIDIA A100-SXM4-40GB)"
    assert sample.energy_j == pytest.approx(123_463.5)
    assert sample.watts is None
    assert fake.initialized == 0  # every nvmlInit has its nvmlShutdown


def test_power_usage_when_the_energy_counter_is_not_supported() -> None:
    fake = FakePynvml(energy=False)

    reader = meter(fake).open()
    sample = reader.read()

    assert reader.sensor == "NVML power usage (GPU 0: NVIDIA A100-SXM4-40GB)"
    assert sample.watts == pytest.approx(250.0)
    assert sample.energy_j is None


def test_not_supported_for_both_as_on_jetson_is_unavailable() -> None:
    fake = FakePynvml(energy=False, power=False)

    info = meter(fake).probe()

    assert not info.available
    assert info.reason == (
        "GPU 0: NVIDIA A100-SXM4-40GB reports Not Supported for both total energy and power usage "
        "(as NVML does on Jetson)"
    )
    assert fake.initialized == 0


def test_nvml_library_missing_and_gpu_index_out_of_range_say_why() -> None:
    no_driver = meter(FakePynvml(init_error=LIBRARY_NOT_FOUND)).probe()
    fake = FakePynvml()

    with pytest.raises(PowerMeterUnavailable, match=r"no GPU 3: NVML sees 1 GPU\(s\)"):
        meter(fake, index=3).open()

    assert no_driver.reason == "NVML did not initialize: NVML Shared Library Not Found"
    assert fake.initialized == 0


def test_missing_package_names_the_nvml_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail

    info = NvmlMeter().probe()

    assert info.reason == "nvidia-ml-py is not installed: pip install 'edgelab[nvml]'"


@pytest.mark.gpu
def test_real_nvml_reads_a_growing_energy_counter_or_power() -> None:
    info = NvmlMeter().probe()
    if not info.available:  # no NVIDIA driver or GPU here (CPU-only CI), or a Jetson, whose NVML measures nothing
        pytest.skip(info.reason)
    reader = NvmlMeter().open()
    try:
        first = reader.read()
        time.sleep(WINDOW_S)
        second = reader.read()
    finally:
        reader.close()

    assert second.t_s - first.t_s >= WINDOW_S
    if first.energy_j is not None:
        assert second.energy_j is not None and second.energy_j > first.energy_j  # mJ since the driver loaded
        watts = (second.energy_j - first.energy_j) / (second.t_s - first.t_s)
    else:
        assert first.watts is not None and second.watts is not None
        watts = second.watts
    assert PLAUSIBLE_GPU_W[0] < watts < PLAUSIBLE_GPU_W[1]  # a powered GPU, read in the right units
