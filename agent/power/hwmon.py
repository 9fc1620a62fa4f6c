"""INA219/INA226/INA3221-style current monitors bound to the kernel's hwmon drivers.

hwmon units (Documentation/hwmon/sysfs-interface): `power<N>_input` µW, `in<N>_input` mV,
`curr<N>_input` mA. The ina2xx driver (INA219/226/230/260, e.g. a Raspberry Pi HAT with
`dtoverlay=ina2xx`) gives `power1_input`; INA3221 (Jetson carrier boards) gives bus voltage
`in<N>_input` and current `curr<N>_input` per channel. One channel is read: the board input
rail (VDD_IN/POM_5V_IN) when labelled, else the first channel of the first monitor.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.power.base import MeterInfo, PowerMeterUnavailable, PowerSample, numbered, probe_by_opening, read_sysfs

HWMON_ROOT = Path("/sys/class/hwmon")
POWER_MONITOR_CHIPS = ("ina209", "ina219", "ina220", "ina226", "ina230", "ina231", "ina238", "ina260", "ina3221")
INPUT_RAIL_LABELS = ("VDD_IN", "POM_5V_IN")


@dataclass(frozen=True)
class _Channel:
    sensor: str
    rail: str
    # (power µW,) or (voltage mV, current mA): either way the product over 1e6 is watts
    factors: tuple[Path, ...]


def _number(path: Path, prefix: str, suffix: str) -> int | None:
    middle = path.name[len(prefix) : -len(suffix)]
    return int(middle) if middle.isdigit() else None


def _channels(device: Path, chip: str) -> list[_Channel]:
    channels = []
    for power in sorted(device.glob("power*_input")):
        n = _number(power, "power", "_input")
        if n is not None:
            rail = read_sysfs(device / f"power{n}_label") or ""
            channels.append(_Channel(f"{device.name} {chip} {rail or power.name}", rail, (power,)))
    if channels:
        return channels
    for curr in sorted(device.glob("curr*_input")):
        n = _number(curr, "curr", "_input")
        volt = device / f"in{n}_input"
        if n is not None and volt.is_file():
            rail = read_sysfs(device / f"in{n}_label") or ""
            sensor = f"{device.name} {chip} {rail + ' ' if rail else ''}{volt.name} x {curr.name}"
            channels.append(_Channel(sensor, rail, (volt, curr)))
    return channels


def _read_int(path: Path) -> int:
    text = read_sysfs(path)
    if text is None or not text.lstrip("-").isdigit():
        raise PowerMeterUnavailable("hwmon", f"cannot read {path}")
    return int(text)


class HwmonReader:
    def __init__(self, channel: _Channel) -> None:
        self._channel = channel
        self.sensor = channel.sensor
        self.read()

    def read(self) -> PowerSample:
        watts = math.prod(_read_int(path) for path in self._channel.factors) / 1e6
        return PowerSample(t_s=time.perf_counter(), watts=watts)

    def close(self) -> None:
        """Nothing held open: each read opens the sysfs file afresh."""


class HwmonMeter:
    name = "hwmon"

    def __init__(self, root: Path = HWMON_ROOT, chips: Sequence[str] = POWER_MONITOR_CHIPS) -> None:
        self.root = root
        self.chips = tuple(chips)

    def _channel(self) -> _Channel:
        found, other_chips = [], []
        for _, device in numbered(self.root, "hwmon"):
            chip = read_sysfs(device / "name") or "?"
            if chip in self.chips:
                found.extend(_channels(device, chip))
            else:
                other_chips.append(chip)
        if not found:
            seen = f" (found: {', '.join(other_chips)})" if other_chips else ""
            raise PowerMeterUnavailable(
                self.name, f"no INA2xx/INA3221 power monitor with readings under {self.root}{seen}"
            )
        inputs = [channel for channel in found if channel.rail in INPUT_RAIL_LABELS]
        return (inputs or found)[0]

    def probe(self) -> MeterInfo:
        return probe_by_opening(self)

    def open(self) -> HwmonReader:
        return HwmonReader(self._channel())
