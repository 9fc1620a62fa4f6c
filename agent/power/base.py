"""The power-meter seam: one `PowerMeter` per sensor family, each opened into a `MeterReader`.

A meter gives either instantaneous power (jtop, NVML power usage, hwmon) or a cumulative
energy counter (RAPL, NVML total energy); `agent.power.sampler` integrates either kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edgelab.errors import EdgeLabError, MissingExtraError

NONE_METER = "none"  # the registry name of the meter that measures nothing


class PowerMeterUnavailable(EdgeLabError):
    """A meter cannot run here, e.g. `rapl power meter unavailable: no /sys/class/powercap`."""

    def __init__(self, meter: str, reason: str) -> None:
        super().__init__(f"{meter} power meter unavailable: {reason}")
        self.meter = meter
        self.reason = reason


class PowerMeasurementError(EdgeLabError):
    """Samples could not be turned into a figure (too few samples, sampling failed mid-window)."""


@dataclass(frozen=True)
class MeterInfo:
    name: str  # registry name
    available: bool
    sensor: str = ""  # what is read, e.g. "intel-rapl:0 package-0 energy_uj"
    reason: str = ""  # why unavailable


@dataclass(frozen=True)
class PowerSample:
    t_s: float  # perf_counter seconds
    watts: float | None = None  # instantaneous power, for meters that give power
    energy_j: float | None = None  # cumulative energy (already unwrapped), for meters that give energy
    rails_w: tuple[tuple[str, float], ...] = ()  # per-rail power where the sensor has rails (jtop)


class MeterReader(Protocol):
    sensor: str

    def read(self) -> PowerSample: ...

    def close(self) -> None: ...


class PowerMeter(Protocol):
    name: str

    def probe(self) -> MeterInfo: ...

    def open(self) -> MeterReader:
        """Open the sensor and read it once; raise `PowerMeterUnavailable` or `MissingExtraError`."""
        ...


def probe_by_opening(meter: PowerMeter) -> MeterInfo:
    """Availability is decided by really opening and reading the sensor, not by guessing from paths."""
    try:
        reader = meter.open()
    except PowerMeterUnavailable as exc:
        return MeterInfo(meter.name, available=False, reason=exc.reason)
    except MissingExtraError as exc:
        return MeterInfo(meter.name, available=False, reason=str(exc))
    try:
        return MeterInfo(meter.name, available=True, sensor=reader.sensor)
    finally:
        reader.close()


def read_sysfs(path: Path) -> str | None:
    """A sysfs attribute's text, or None when it is absent or unreadable (many return EINVAL/ENODATA)."""
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def numbered(parent: Path, prefix: str) -> list[tuple[int, Path]]:
    """`parent/<prefix><N>` entries sorted by N (cpu10 after cpu9); empty when `parent` is absent."""
    pattern = re.compile(rf"{re.escape(prefix)}(\d+)")
    try:
        entries = list(parent.iterdir())
    except OSError:
        return []
    return sorted((int(m.group(1)), path) for path in entries if (m := pattern.fullmatch(path.name)))
