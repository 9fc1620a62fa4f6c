"""Power over exactly the timed window, integrated by us, net of an idle baseline.

Definitions (what a PowerReport's figures mean):
- `idle_w`: mean power over `measure_idle(duration_s)`, run just before the timed window, once
  `settle` has seen the power stop falling (a GPU or a DVFS governor stays clocked up for a while
  after an engine build or the previous window; idle measured then reads high).
- `mean_w`: gross mean power over the window = window energy / window duration.
- `energy_per_inference_mj`: (window energy - idle_w * window duration) / inferences, in mJ:
  the energy the inferences added on top of idle. It is NOT clamped: a negative value means
  the workload's power was within the idle noise (or idle was measured during a spike) and
  is kept, with a logged warning, rather than turned into a plausible-looking zero.
- `sample_period_s`: the mean interval actually achieved between samples (the requested
  period, unless a read is slower than it).
- window energy: for energy counters (RAPL, NVML total energy) the counter difference between
  the samples taken at entry and exit; for power meters the trapezoid over the samples.

Samples are stamped with `clock` right after each read; the background thread schedules reads
every `period_s` of real time (skipping ticks it missed rather than bursting).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import TracebackType

from agent.power.base import (
    NONE_METER,
    MeterReader,
    PowerMeasurementError,
    PowerMeter,
    PowerMeterUnavailable,
    PowerSample,
)
from edgelab.domain import PowerReport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Integral:
    energy_j: float
    duration_s: float

    @property
    def mean_w(self) -> float:
        return self.energy_j / self.duration_s


def integrate(samples: Sequence[PowerSample]) -> Integral:
    """Energy and duration of a run of samples: counter difference, else trapezoid over power."""
    if len(samples) < 2:
        raise PowerMeasurementError(f"{len(samples)} power sample(s): at least 2 are needed to integrate")
    duration = samples[-1].t_s - samples[0].t_s
    if duration <= 0:
        raise PowerMeasurementError(f"power samples span {duration} s: the clock did not advance")
    first, last = samples[0].energy_j, samples[-1].energy_j
    if first is not None and last is not None:
        return Integral(last - first, duration)
    points = [(s.t_s, s.watts) for s in samples if s.watts is not None]
    if len(points) != len(samples):
        raise PowerMeasurementError("power samples carry neither an energy counter nor power throughout")
    energy = sum((w0 + w1) / 2 * (t1 - t0) for (t0, w0), (t1, w1) in zip(points, points[1:]))
    return Integral(energy, duration)


def energy_per_inference_mj(integral: Integral, idle_w: float, inferences: int) -> float:
    """Energy the inferences added on top of the idle baseline, per inference, in mJ (signed, not clamped)."""
    if inferences <= 0:
        raise ValueError(f"inferences must be > 0, got {inferences}")
    return (integral.energy_j - idle_w * integral.duration_s) / inferences * 1e3


def rail_means(samples: Sequence[PowerSample]) -> dict[str, float]:
    """Gross mean power per rail (jtop's per-rail readings), trapezoid-integrated like the total."""
    per_rail: dict[str, list[PowerSample]] = {}
    for sample in samples:
        for name, watts in sample.rails_w:
            per_rail.setdefault(name, []).append(PowerSample(sample.t_s, watts=watts))
    return {name: integrate(rail).mean_w for name, rail in sorted(per_rail.items()) if len(rail) >= 2}


@dataclass(frozen=True)
class Settling:
    """How `PowerSampler.settle` ended: the mean power of each step, and whether the last two agreed."""

    settled: bool
    seconds: float
    means_w: tuple[float, ...]

    def describe(self) -> str:
        means = ", ".join(f"{w:.3f}" for w in self.means_w[-6:])
        if self.settled:
            return f"settled after {self.seconds:.2f} s (step means W: {means})"
        return f"still changing after {self.seconds:.2f} s, idle measured anyway (step means W: {means})"


class PowerSampler:
    """Samples one meter: `measure_idle` first, then `with sampler.window():` around the timed phase.

    The meter's reader is opened on first use and kept open between the idle phase and the
    window (opening jtop takes a second); `close()` it, or use the sampler as a context manager.
    """

    def __init__(
        self, meter: PowerMeter, period_s: float = 0.05, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        if meter.name == NONE_METER:
            raise PowerMeterUnavailable(NONE_METER, "the none meter measures nothing; skip power measurement")
        if period_s <= 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        self.meter = meter
        self.period_s = period_s
        self._clock = clock
        self._reader: MeterReader | None = None
        self.sensor = ""  # what the meter reads, known once opened
        self.idle_w: float | None = None
        self.samples: list[PowerSample] = []  # of the last window
        self._error: BaseException | None = None

    def __enter__(self) -> PowerSampler:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _open(self) -> MeterReader:
        if self._reader is None:
            self._reader = self.meter.open()
            self.sensor = self._reader.sensor
        return self._reader

    def _sample(self, reader: MeterReader) -> PowerSample:
        sample = reader.read()
        return replace(sample, t_s=self._clock())

    def _run(self, reader: MeterReader, samples: list[PowerSample], stop: threading.Event) -> None:
        deadline = time.perf_counter() + self.period_s
        while not stop.wait(max(0.0, deadline - time.perf_counter())):
            try:
                samples.append(self._sample(reader))
            except Exception as exc:  # kept for report(): a failed meter must not break the timed run
                self._error = exc
                return
            deadline += self.period_s
            now = time.perf_counter()
            if deadline < now:  # a slow read: skip the missed ticks instead of bursting
                deadline = now + self.period_s

    @contextmanager
    def _sampling(self) -> Iterator[list[PowerSample]]:
        self._error = None
        samples: list[PowerSample] = []
        try:
            reader = self._open()
            samples.append(self._sample(reader))
        except Exception as exc:  # kept for report(), like a failure mid-window
            self._error = exc
            yield samples
            return
        stop = threading.Event()
        thread = threading.Thread(target=self._run, args=(reader, samples, stop), name="power-sampler", daemon=True)
        thread.start()
        try:
            yield samples
        finally:
            stop.set()
            thread.join()
            if self._error is None:
                try:
                    samples.append(self._sample(reader))
                except Exception as exc:
                    self._error = exc

    def settle(self, step_s: float, max_s: float, rel_tol: float = 0.03, abs_tol_w: float = 0.05) -> Settling:
        """Sample in `step_s` steps until two consecutive step means agree (within `rel_tol`, or `abs_tol_w` for
        small readings), at most `max_s`: the device is back at rest, and an idle baseline taken now is idle."""
        if step_s <= 0 or max_s < step_s:
            raise ValueError(f"need 0 < step_s <= max_s, got {step_s}, {max_s}")
        means: list[float] = []
        start = time.perf_counter()
        while True:
            with self._sampling() as samples:
                time.sleep(step_s)
            if self._error is not None:
                raise PowerMeasurementError(f"power sampling failed while settling: {self._error}") from self._error
            means.append(integrate(samples).mean_w)
            elapsed = time.perf_counter() - start
            if len(means) >= 2 and abs(means[-1] - means[-2]) <= max(rel_tol * abs(means[-2]), abs_tol_w):
                return Settling(True, elapsed, tuple(means))
            if elapsed + step_s > max_s:
                return Settling(False, elapsed, tuple(means))

    def measure_idle(self, duration_s: float) -> float:
        """Mean power over `duration_s` of doing nothing, stored as the baseline for report()."""
        if duration_s <= 0:
            raise ValueError(f"idle duration must be > 0, got {duration_s}")
        with self._sampling() as samples:
            time.sleep(duration_s)
        if self._error is not None:
            raise PowerMeasurementError(f"power sampling failed while measuring idle: {self._error}") from self._error
        self.idle_w = integrate(samples).mean_w
        return self.idle_w

    @contextmanager
    def window(self) -> Iterator[None]:
        """Samples in a background thread exactly while inside, with one sample at entry and one at exit.

        A meter that fails to open or to read never interrupts the body (the timing stays valid);
        report() raises PowerMeasurementError instead.
        """
        with self._sampling() as samples:
            self.samples = samples
            yield

    def report(self, inferences: int) -> PowerReport:
        """The last window's figures (see the module docstring for their definitions)."""
        if self._error is not None:
            raise PowerMeasurementError(f"power sampling failed in the window: {self._error}") from self._error
        if self.idle_w is None:
            raise PowerMeasurementError("no idle baseline: call measure_idle() before the window")
        if not self.samples:
            raise PowerMeasurementError("no window was sampled: use `with sampler.window():` first")
        integral = integrate(self.samples)
        energy_mj = energy_per_inference_mj(integral, self.idle_w, inferences)
        if energy_mj < 0:
            log.warning(
                "%s: window mean %.3f W is below the idle baseline %.3f W; energy per inference %.4f mJ is negative",
                self.meter.name,
                integral.mean_w,
                self.idle_w,
                energy_mj,
            )
        return PowerReport(
            meter=self.meter.name,
            sensor=self.sensor,
            sample_period_s=integral.duration_s / (len(self.samples) - 1),
            samples=len(self.samples),
            idle_w=self.idle_w,
            mean_w=integral.mean_w,
            energy_per_inference_mj=energy_mj,
            rail_mean_w=rail_means(self.samples),
        )
