"""Intel/AMD RAPL through the powercap sysfs: `energy_uj` counters that wrap at `max_energy_range_uj`.

Every zone appears flat under /sys/class/powercap (`intel-rapl:0` is package 0, `intel-rapl:0:0`
its core subzone, `intel-rapl:0:2` DRAM on servers). By default only the package zones are
summed: subzones are parts of a package, so adding them would count energy twice (DRAM is the
exception; pass `domains=("package", "dram")` to add it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.power.base import MeterInfo, PowerMeterUnavailable, PowerSample, probe_by_opening, read_sysfs

POWERCAP_ROOT = Path("/sys/class/powercap")


@dataclass(frozen=True)
class _Zone:
    path: Path
    name: str
    max_range_uj: int

    @property
    def label(self) -> str:
        return f"{self.path.name} {self.name} energy_uj"


def _read_counter(zone: _Zone) -> int:
    try:
        return int((zone.path / "energy_uj").read_text())
    except PermissionError as exc:
        raise PowerMeterUnavailable(
            "rapl",
            f"{zone.path / 'energy_uj'} is not readable: permission denied "
            "(energy_uj is root-only on kernels patched against PLATYPUS, CVE-2020-8694)",
        ) from exc
    except (OSError, ValueError) as exc:
        raise PowerMeterUnavailable("rapl", f"cannot read {zone.path / 'energy_uj'}: {exc}") from exc


class RaplReader:
    def __init__(self, zones: list[_Zone]) -> None:
        self._zones = zones
        self.sensor = " + ".join(zone.label for zone in zones)
        self._last = [_read_counter(zone) for zone in zones]
        self._total_uj = 0

    def read(self) -> PowerSample:
        for i, zone in enumerate(self._zones):
            now = _read_counter(zone)
            delta = now - self._last[i]
            if delta < 0:  # the counter wrapped past max_energy_range_uj back to 0
                delta += zone.max_range_uj
            self._total_uj += delta
            self._last[i] = now
        return PowerSample(t_s=time.perf_counter(), energy_j=self._total_uj / 1e6)

    def close(self) -> None:
        self._zones = []


class RaplMeter:
    """Sums the RAPL zones whose name starts with one of `domains` (package-0, package-1, ...).

    The counter must be read at least once per wrap period (minutes at full load), which the
    sampler's period guarantees.
    """

    name = "rapl"

    def __init__(self, root: Path = POWERCAP_ROOT, domains: Sequence[str] = ("package",)) -> None:
        self.root = root
        self.domains = tuple(domains)

    def _zones(self) -> list[_Zone]:
        if not self.root.is_dir():
            raise PowerMeterUnavailable(
                self.name, f"no {self.root} (kernel without powercap, or a container that does not expose it)"
            )
        zones = []
        for path in sorted(self.root.glob("intel-rapl:*")):
            name = read_sysfs(path / "name") or ""
            if not name.startswith(self.domains):
                continue
            max_range = read_sysfs(path / "max_energy_range_uj")
            if max_range is None or not max_range.isdigit():
                raise PowerMeterUnavailable(self.name, f"no readable {path / 'max_energy_range_uj'}")
            zones.append(_Zone(path, name, int(max_range)))
        if not zones:
            raise PowerMeterUnavailable(
                self.name, f"no intel-rapl:* zone named {'/'.join(self.domains)}* readable under {self.root}"
            )
        return zones

    def probe(self) -> MeterInfo:
        return probe_by_opening(self)

    def open(self) -> RaplReader:
        return RaplReader(self._zones())
