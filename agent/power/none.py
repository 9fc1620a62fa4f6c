"""The meter of last resort: it says nothing is measured, and a result then carries no PowerReport."""

from __future__ import annotations

from agent.power.base import NONE_METER, MeterInfo, MeterReader, PowerMeterUnavailable


class NoneMeter:
    name = NONE_METER

    def __init__(self, reason: str = "no power sensor on this device") -> None:
        self.reason = reason

    def probe(self) -> MeterInfo:
        return MeterInfo(self.name, available=True, sensor="nothing measured", reason=self.reason)

    def open(self) -> MeterReader:
        raise PowerMeterUnavailable(self.name, f"nothing is measured ({self.reason}); skip the power report")
