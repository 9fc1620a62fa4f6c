"""NVIDIA Jetson through jetson-stats (`from jtop import jtop`, 4.x API).

`jtop.power` is `{"rail": {NAME: {"power": mW, "volt": mV, "curr": mA, "avg": mW, ...}},
"tot": {"power": mW, "avg": mW, "name": "VDD_IN"}}`. `tot` is the board's input rail
(VDD_IN / POM_5V_IN) when the board has one, else the sum of the rails. We read
`power` and integrate it ourselves: jtop's `avg` is `(power + old_avg) // 2`, an exponential
smoothing, not a time average.

A board without a power monitor gives `{}` (jetson-stats 4.2) or rails that are empty with a
nameless `tot` summed over nothing (the "sum of rails" branch): both mean "no sensor", never
0 W. The jetson-stats client refuses a jtop service of another version ("Mismatch version jtop
service: [4.2.7] and client: [4.3.1]", jtop.py `start()`); the agent's venv must hold the
service's version, and the probe says so.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from agent.power.base import MeterInfo, PowerMeterUnavailable, PowerSample, probe_by_opening
from edgelab.errors import MissingExtraError


def import_jtop() -> Any:
    try:
        import jtop
    except ImportError as exc:
        raise MissingExtraError("jetson-stats", "jetson") from exc
    return jtop


def _start_failure(exc: BaseException) -> str:
    mismatch = re.search(r"service: \[([^\]]+)\] and client: \[([^\]]+)\]", str(exc))
    if mismatch:
        service, client = mismatch.groups()
        return (
            f"jetson-stats {client} in the agent's environment cannot talk to the jtop service {service}: "
            f"pip install 'jetson-stats=={service}' there (or upgrade the service to {client})"
        )
    return f"jtop service not reachable: {exc}"


class JtopReader:
    def __init__(self, module: Any, interval_s: float) -> None:
        self._jetson = module.jtop(interval=interval_s)
        try:
            self._jetson.start()  # connects to the jtop service (jetson_stats.service)
        except (module.JtopException, OSError) as exc:  # start() re-raises socket errors it does not map
            raise PowerMeterUnavailable("jtop", _start_failure(exc)) from exc
        try:
            if not self._jetson.ok():  # blocks until the first stats arrive
                raise PowerMeterUnavailable("jtop", "jtop delivered no stats")
            power = self._jetson.power or {}
            if not power.get("rail") and not (power.get("tot") or {}).get("name"):
                raise PowerMeterUnavailable("jtop", "jtop found no power monitor (INA3221/INA238) on this board")
        except BaseException:
            self._jetson.close()
            raise
        total = power["tot"].get("name") or "sum of rails"
        # The service keeps the interval of the first client connected; `interval` is the one in force.
        self.sensor = f"jtop tot rail ({total}), jtop interval {float(self._jetson.interval):g} s"

    def read(self) -> PowerSample:
        power = self._jetson.power
        rails = tuple((name, rail["power"] / 1e3) for name, rail in sorted(power.get("rail", {}).items()))
        return PowerSample(t_s=time.perf_counter(), watts=power["tot"]["power"] / 1e3, rails_w=rails)

    def close(self) -> None:
        self._jetson.close()


class JtopMeter:
    """jtop refreshes its readings every `interval_s`; sampling faster repeats the last reading."""

    name = "jtop"

    def __init__(self, interval_s: float = 0.1, jtop: Callable[[], Any] = import_jtop) -> None:
        self.interval_s = interval_s
        self._jtop = jtop  # injectable: tests pass a fake module with jtop's names

    def probe(self) -> MeterInfo:
        return probe_by_opening(self)

    def open(self) -> JtopReader:
        return JtopReader(self._jtop(), self.interval_s)
