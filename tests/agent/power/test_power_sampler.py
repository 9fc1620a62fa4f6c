import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from agent.power.base import MeterInfo, PowerMeasurementError, PowerMeterUnavailable, PowerSample
from agent.power.none import NoneMeter
from agent.power.rapl import RaplMeter
from agent.power.sampler import PowerSampler, energy_per_inference_mj, integrate

WriteTree = Callable[[Mapping[str, str]], Path]  # the sysfs fixture


class SteppingClock:
    """Advances `step_s` each time it is read, so the sampler stamps samples on an exact grid."""

    def __init__(self, step_s: float) -> None:
        self.now = -step_s
        self.step_s = step_s

    def __call__(self) -> float:
        self.now += self.step_s
        return self.now


class ScriptedMeter:
    """A power meter whose reading the test sets; `fail_after` reads it raises, as a lost sensor would."""

    name = "scripted"

    def __init__(self, watts: float, fail_after: int | None = None) -> None:
        self.watts = watts
        self.fail_after = fail_after
        self.reads = 0
        self.closed = False
        self.sensor = "scripted watts"

    def probe(self) -> MeterInfo:
        return MeterInfo(self.name, available=True, sensor=self.sensor)

    def open(self) -> "ScriptedMeter":
        return self

    def read(self) -> PowerSample:
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise OSError("sensor gone")
        return PowerSample(t_s=time.perf_counter(), watts=self.watts, rails_w=(("VDD_GPU", self.watts / 2),))

    def close(self) -> None:
        self.closed = True


def replace_text(path: Path, text: str) -> None:
    """Atomic like a sysfs attribute: the sampler thread never sees a half-written file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def constant(watts: float, start: float, end: float, n: int) -> list[PowerSample]:
    return [PowerSample(start + (end - start) * i / (n - 1), watts=watts) for i in range(n)]


def test_constant_5w_for_1s_over_2w_idle_and_100_inferences_is_30mj() -> None:
    integral = integrate(constant(5.0, start=10.0, end=11.0, n=21))

    assert (integral.energy_j, integral.duration_s) == pytest.approx((5.0, 1.0))
    assert integral.mean_w == pytest.approx(5.0)
    assert energy_per_inference_mj(integral, idle_w=2.0, inferences=100) == pytest.approx(30.0)


def test_trapezoid_on_a_ramp_and_counter_difference_on_energy() -> None:
    ramp = [PowerSample(0.0, watts=0.0), PowerSample(0.5, watts=5.0), PowerSample(1.0, watts=10.0)]
    counter = [PowerSample(0.0, energy_j=100.0), PowerSample(1.0, energy_j=101.0), PowerSample(2.0, energy_j=112.0)]

    assert integrate(ramp).energy_j == pytest.approx(5.0)
    assert (integrate(counter).energy_j, integrate(counter).duration_s) == pytest.approx((12.0, 2.0))


def test_too_few_or_mixed_samples_are_refused() -> None:
    with pytest.raises(PowerMeasurementError, match="at least 2"):
        integrate([PowerSample(0.0, watts=1.0)])
    with pytest.raises(PowerMeasurementError, match="neither"):
        integrate([PowerSample(0.0, watts=1.0), PowerSample(1.0)])


def test_report_is_net_of_the_idle_baseline_on_an_exact_clock() -> None:
    meter = ScriptedMeter(watts=2.0)
    sampler = PowerSampler(meter, period_s=0.01, clock=SteppingClock(0.1))

    idle_w = sampler.measure_idle(0.05)
    meter.watts = 5.0
    with sampler.window():
        time.sleep(0.05)
    report = sampler.report(inferences=100)

    duration = (report.samples - 1) * 0.1  # the stepping clock stamps one sample every 0.1 s
    assert idle_w == pytest.approx(2.0)
    assert (report.meter, report.sensor) == ("scripted", "scripted watts")
    assert (report.idle_w, report.mean_w) == pytest.approx((2.0, 5.0))
    assert report.energy_per_inference_mj == pytest.approx((5.0 - 2.0) * duration / 100 * 1e3)
    assert report.sample_period_s == pytest.approx(0.1)
    assert report.rail_mean_w == {"VDD_GPU": pytest.approx(2.5)}


def test_real_window_samples_at_entry_exit_and_the_period_between() -> None:
    meter = ScriptedMeter(watts=4.0)
    with PowerSampler(meter, period_s=0.01) as sampler:
        sampler.measure_idle(0.02)
        with sampler.window():
            entered = time.perf_counter()
            time.sleep(0.2)
            left = time.perf_counter()
        report = sampler.report(inferences=10)

    ticks = sampler.samples[1:-1]  # the background thread's samples, between entry and exit
    assert sampler.samples[0].t_s <= entered and sampler.samples[-1].t_s >= left
    assert len(ticks) >= 1
    span = sampler.samples[-1].t_s - sampler.samples[0].t_s
    assert len(ticks) <= span / 0.01 + 1  # one tick per 10 ms slot at most: paced on a grid, never bursting
    assert report.samples == len(ticks) + 2
    assert report.mean_w == pytest.approx(4.0)
    assert meter.closed


def test_rapl_counter_through_a_real_window_with_a_wrap(sysfs: WriteTree) -> None:
    root = sysfs(
        {
            "intel-rapl:0/name": "package-0",
            "intel-rapl:0/energy_uj": "9000000",
            "intel-rapl:0/max_energy_range_uj": "10000000",
        }
    )
    counter = root / "intel-rapl:0/energy_uj"
    sampler = PowerSampler(RaplMeter(root), period_s=0.01)
    sampler.measure_idle(0.02)  # counter unchanged: 0 W idle

    with sampler.window():
        replace_text(counter, "9500000")
        time.sleep(0.03)
        replace_text(counter, "1000000")  # wrapped: 0.5 + 0.5 + 1.0 J in the window
    report = sampler.report(inferences=4)
    sampler.close()

    assert report.idle_w == 0.0
    assert report.energy_per_inference_mj == pytest.approx(2.0 / 4 * 1e3)
    assert report.sensor == "intel-rapl:0 package-0 energy_uj"


def test_negative_net_energy_is_kept_and_warned(caplog: pytest.LogCaptureFixture) -> None:
    meter = ScriptedMeter(watts=3.0)
    sampler = PowerSampler(meter, period_s=0.01, clock=SteppingClock(0.1))
    sampler.measure_idle(0.03)
    meter.watts = 2.5  # the workload ran below the idle figure: noise, not negative energy

    with sampler.window(), caplog.at_level(logging.WARNING):
        time.sleep(0.03)
    report = sampler.report(inferences=1)

    assert report.energy_per_inference_mj < 0
    assert "below the idle baseline" in caplog.text


def test_a_meter_failing_mid_window_does_not_break_the_run_but_the_report() -> None:
    meter = ScriptedMeter(watts=1.0)
    sampler = PowerSampler(meter, period_s=0.005)
    sampler.measure_idle(0.01)
    meter.fail_after = meter.reads + 1  # the entry sample, then the sensor is gone (tick or exit sample)
    body_ran = False

    with sampler.window():
        time.sleep(0.05)
        body_ran = True

    assert body_ran
    with pytest.raises(PowerMeasurementError, match="sampling failed in the window: sensor gone"):
        sampler.report(inferences=1)


def test_a_meter_that_cannot_open_leaves_the_window_body_running(tmp_path: Path) -> None:
    sampler = PowerSampler(RaplMeter(tmp_path / "no-powercap"), period_s=0.01)
    body_ran = False

    with sampler.window():
        body_ran = True

    assert body_ran
    with pytest.raises(PowerMeasurementError, match="sampling failed in the window: rapl power meter unavailable: no "):
        sampler.report(inferences=1)


def test_none_meter_and_missing_idle_are_refused() -> None:
    sampler = PowerSampler(ScriptedMeter(watts=1.0), period_s=0.01)
    with sampler.window():
        time.sleep(0.02)

    with pytest.raises(PowerMeterUnavailable, match="none power meter unavailable: the none meter measures nothing"):
        PowerSampler(NoneMeter())
    with pytest.raises(PowerMeasurementError, match="call measure_idle"):
        sampler.report(inferences=1)
