from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from agent.power.hwmon import HwmonMeter

WriteTree = Callable[[Mapping[str, str]], Path]  # the sysfs fixture


def test_ina219_power_input_in_microwatts(sysfs: WriteTree) -> None:
    root = sysfs({"hwmon0/name": "rpi_volt", "hwmon1/name": "ina219", "hwmon1/power1_input": "2480000"})

    reader = HwmonMeter(root).open()
    (root / "hwmon1/power1_input").write_text("3120000")

    assert reader.read().watts == pytest.approx(3.12)
    assert reader.sensor == "hwmon1 ina219 power1_input"


def test_ina3221_prefers_the_input_rail_and_multiplies_volts_by_amps(sysfs: WriteTree) -> None:
    root = sysfs(
        {
            "hwmon2/name": "ina3221",
            "hwmon2/in1_label": "VDD_CPU_GPU_CV",
            "hwmon2/in1_input": "5008",
            "hwmon2/curr1_input": "400",
            "hwmon2/in2_label": "VDD_IN",
            "hwmon2/in2_input": "5000",  # mV
            "hwmon2/curr2_input": "1240",  # mA
        }
    )

    reader = HwmonMeter(root).open()

    assert reader.read().watts == pytest.approx(6.2)
    assert reader.sensor == "hwmon2 ina3221 VDD_IN in2_input x curr2_input"


def test_no_power_monitor_names_what_was_found(sysfs: WriteTree, tmp_path: Path) -> None:
    root = sysfs({"hwmon0/name": "coretemp", "hwmon1/name": "acpitz"})

    info = HwmonMeter(root).probe()
    absent = HwmonMeter(tmp_path / "absent").probe()

    assert info.reason == f"no INA2xx/INA3221 power monitor with readings under {root} (found: coretemp, acpitz)"
    assert not absent.available
