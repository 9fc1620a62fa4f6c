"""Power-meter registry, in preference order: grep a meter's name to find where it is registered.

Each meter imports its library lazily, so listing them costs nothing on a device without it;
`probe()` opens the sensor for real and says why it cannot be used. `select_meter()` falls
back to the "none" meter, which measures nothing: when `meter.name == NONE_METER` a result
carries no PowerReport (PowerSampler refuses the none meter).
"""

from __future__ import annotations

from agent.power.base import (
    NONE_METER,
    MeterInfo,
    MeterReader,
    PowerMeasurementError,
    PowerMeter,
    PowerMeterUnavailable,
    PowerSample,
)
from agent.power.hwmon import HwmonMeter
from agent.power.jetson import JtopMeter
from agent.power.none import NoneMeter
from agent.power.nvml import NvmlMeter
from agent.power.rapl import RaplMeter
from agent.power.sampler import PowerSampler
from edgelab.errors import ConfigError

POWER_METERS: dict[str, PowerMeter] = {
    "jtop": JtopMeter(),
    "nvml": NvmlMeter(),
    "rapl": RaplMeter(),
    "hwmon": HwmonMeter(),
    NONE_METER: NoneMeter(),
}


def available_meters(meters: dict[str, PowerMeter] | None = None) -> list[MeterInfo]:
    """Every registered meter probed, in preference order, with the reason for each one unavailable."""
    return [meter.probe() for meter in (POWER_METERS if meters is None else meters).values()]


def select_meter(name: str | None = None, meters: dict[str, PowerMeter] | None = None) -> tuple[PowerMeter, MeterInfo]:
    """The meter called `name` (clear error if unknown or unavailable), or the first available one,
    with the probe that chose it (probing again would open the sensor again: about 1 s for jtop).

    Without a name and without any sensor this returns a NoneMeter whose probe reason lists why
    each meter was unavailable; check `meter.name == NONE_METER` and skip the power report.
    """
    registry = POWER_METERS if meters is None else meters
    if name is not None:
        if name not in registry:
            raise ConfigError(f"unknown power meter {name!r}; known: {', '.join(registry)}")
        info = registry[name].probe()
        if not info.available:
            raise PowerMeterUnavailable(name, info.reason)
        return registry[name], info
    reasons = []
    for meter in registry.values():
        if meter.name == NONE_METER:
            continue
        info = meter.probe()
        if info.available:
            return meter, info
        reasons.append(f"{info.name}: {info.reason}")
    none = NoneMeter("no power sensor on this device: " + "; ".join(reasons))
    return none, none.probe()


__all__ = [
    "NONE_METER",
    "POWER_METERS",
    "MeterInfo",
    "MeterReader",
    "PowerMeasurementError",
    "PowerMeter",
    "PowerMeterUnavailable",
    "PowerSample",
    "PowerSampler",
    "available_meters",
    "select_meter",
]
