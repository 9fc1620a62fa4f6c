from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from agent.power import NONE_METER, POWER_METERS, PowerMeter, PowerMeterUnavailable, available_meters, select_meter
from agent.power.hwmon import HwmonMeter
from agent.power.none import NoneMeter
from agent.power.rapl import RaplMeter
from agent.probe import probe_capabilities
from edgelab.errors import ConfigError

WriteTree = Callable[[Mapping[str, str]], Path]  # the sysfs fixture


def registry(rapl_root: Path, hwmon_root: Path) -> dict[str, PowerMeter]:
    return {"rapl": RaplMeter(rapl_root), "hwmon": HwmonMeter(hwmon_root), NONE_METER: NoneMeter()}


def test_registry_lists_meters_in_preference_order() -> None:
    assert list(POWER_METERS) == ["jtop", "nvml", "rapl", "hwmon", "none"]
    assert all(meter.name == name for name, meter in POWER_METERS.items())


def test_first_available_meter_is_selected(sysfs: WriteTree, tmp_path: Path) -> None:
    hwmon = sysfs({"hwmon0/name": "ina219", "hwmon0/power1_input": "1000000"})

    meter, info = select_meter(meters=registry(tmp_path / "no-powercap", hwmon))

    assert meter.name == "hwmon"
    assert info.available and info.name == "hwmon"  # the probe that chose it, returned so nobody probes again


def test_without_sensors_the_none_meter_says_why_each_was_unavailable(tmp_path: Path) -> None:
    meters = registry(tmp_path / "no-powercap", tmp_path / "no-hwmon")

    meter, info = select_meter(meters=meters)
    infos = available_meters(meters)

    assert meter.name == NONE_METER
    reason = info.reason
    assert reason.startswith("no power sensor on this device: rapl: no ")
    assert "; hwmon: no INA2xx/INA3221 power monitor" in reason
    assert [(i.name, i.available) for i in infos] == [("rapl", False), ("hwmon", False), ("none", True)]


def test_named_meter_unknown_or_unavailable_is_a_clear_error(tmp_path: Path) -> None:
    meters = registry(tmp_path / "no-powercap", tmp_path / "no-hwmon")

    with pytest.raises(ConfigError, match="unknown power meter 'ina'; known: rapl, hwmon, none"):
        select_meter("ina", meters=meters)
    with pytest.raises(PowerMeterUnavailable, match=r"^rapl power meter unavailable: no .*no-powercap"):
        select_meter("rapl", meters=meters)
    assert select_meter("none", meters=meters)[0].name == NONE_METER


def test_this_machine_reports_a_reason_for_every_missing_meter() -> None:
    infos = available_meters()
    capabilities = probe_capabilities()

    assert all(info.reason for info in infos if not info.available)
    assert capabilities.power_meters == [i.name for i in infos if i.available and i.name != NONE_METER]
    if not capabilities.power_meters:  # this container: no powercap, hwmon, NVML driver or jtop
        assert select_meter()[0].name == NONE_METER
