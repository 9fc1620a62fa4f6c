import sys
from types import SimpleNamespace
from typing import Any

import pytest

from agent.power.jetson import JtopMeter


class FakeJtopException(Exception):
    pass


def orin_power(total_mw: int, gpu_mw: int) -> dict[str, Any]:
    """jetson-stats 4.x `jtop.power`: mW per rail, `tot` from the VDD_IN rail."""
    return {
        "rail": {
            "VDD_CPU_CV": {
                "online": True,
                "type": "INA3221",
                "status": "ok",
                "volt": 5000,
                "curr": 300,
                "power": 1500,
                "avg": 1400,
            },
            "VDD_GPU_SOC": {
                "online": True,
                "type": "INA3221",
                "status": "ok",
                "volt": 5000,
                "curr": 600,
                "power": gpu_mw,
                "avg": 1,
            },
        },
        "tot": {
            "online": True,
            "type": "INA3221",
            "status": "ok",
            "volt": 5000,
            "curr": 1200,
            "power": total_mw,
            "avg": 1,
            "name": "VDD_IN",
        },
    }


def fake_jtop_module(power: dict[str, Any], service_up: bool = True, start_error: str = "") -> SimpleNamespace:
    class FakeJtop:
        opened: list["FakeJtop"] = []
        server_interval: float | None = None  # set when the service already runs at another interval

        def __init__(self, interval: float = 0.5) -> None:
            self.requested = interval
            self.interval = interval
            self.power = power
            self.closed = False
            FakeJtop.opened.append(self)

        def start(self) -> None:
            if FakeJtop.server_interval is not None:
                self.interval = FakeJtop.server_interval
            if start_error:
                raise FakeJtopException(start_error)
            if not service_up:
                raise FakeJtopException(
                    "The jetson_stats.service is not active. Please run:\nsudo systemctl restart jetson_stats.service"
                )

        def ok(self) -> bool:
            return True

        def close(self) -> None:
            self.closed = True

    return SimpleNamespace(jtop=FakeJtop, JtopException=FakeJtopException)


def test_reads_tot_power_not_the_halving_avg_and_every_rail() -> None:
    module = fake_jtop_module(orin_power(total_mw=6200, gpu_mw=2100))
    reader = JtopMeter(interval_s=0.1, jtop=lambda: module).open()

    sample = reader.read()
    reader.close()

    assert sample.watts == pytest.approx(6.2)
    assert dict(sample.rails_w) == {"VDD_CPU_CV": pytest.approx(1.5), "VDD_GPU_SOC": pytest.approx(2.1)}
    assert reader.sensor == "jtop tot rail (VDD_IN), jtop interval 0.1 s"
    jetson = module.jtop.opened[0]
    assert jetson.requested == 0.1 and jetson.closed


def test_sensor_names_the_interval_the_service_really_uses() -> None:
    module = fake_jtop_module(orin_power(total_mw=5000, gpu_mw=1000))
    module.jtop.server_interval = 0.5  # another jtop client connected first with its own interval

    reader = JtopMeter(interval_s=0.1, jtop=lambda: module).open()

    assert reader.sensor == "jtop tot rail (VDD_IN), jtop interval 0.5 s"


def test_service_down_and_board_without_monitor_are_unavailable() -> None:
    down = fake_jtop_module(orin_power(6200, 2100), service_up=False)
    no_sensor = fake_jtop_module({})

    down_info = JtopMeter(jtop=lambda: down).probe()
    no_sensor_info = JtopMeter(jtop=lambda: no_sensor).probe()

    assert down_info.reason.startswith("jtop service not reachable: The jetson_stats.service is not active")
    assert no_sensor_info.reason == "jtop found no power monitor (INA3221/INA238) on this board"
    assert no_sensor.jtop.opened[0].closed


def test_a_tot_summed_over_no_rails_is_no_sensor_not_zero_watts() -> None:
    # jetson-stats' "sum of rails" branch on a board whose monitor it did not find: a nameless zero total.
    summed_over_nothing = fake_jtop_module({"rail": {}, "tot": {"power": 0, "avg": 0}})

    info = JtopMeter(jtop=lambda: summed_over_nothing).probe()

    assert (info.available, info.reason) == (False, "jtop found no power monitor (INA3221/INA238) on this board")


def test_client_and_service_of_different_versions_say_which_to_install() -> None:
    # jtop.py start()'s own words (jetson-stats 4.x) when the versions differ.
    mismatch = fake_jtop_module(
        orin_power(6200, 2100),
        start_error="Mismatch version jtop service: [4.2.7] and client: [4.3.1]. Please run:\n\n"
        "sudo systemctl restart jtop.service",
    )

    info = JtopMeter(jtop=lambda: mismatch).probe()

    assert info.reason == (
        "jetson-stats 4.3.1 in the agent's environment cannot talk to the jtop service 4.2.7: "
        "pip install 'jetson-stats==4.2.7' there (or upgrade the service to 4.3.1)"
    )


def test_missing_package_names_the_jetson_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jtop", None)

    info = JtopMeter().probe()

    assert (info.available, info.reason) == (False, "jetson-stats is not installed: pip install 'edgelab[jetson]'")
