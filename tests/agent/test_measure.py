from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from agent.measure import latency_stats, measure_latency
from edgelab.domain import MeasurementSettings


class FakeClock:
    """Each inference takes `step_ns`; reading the clock is free."""

    def __init__(self, step_ns: int) -> None:
        self.now = 0
        self.step_ns = step_ns
        self.calls = 0

    def __call__(self) -> int:
        return self.now

    def infer(self) -> None:
        self.calls += 1
        self.now += self.step_ns


def test_timed_phase_runs_until_min_duration_when_iterations_are_met() -> None:
    clock = FakeClock(step_ns=1_000_000)  # 1 ms
    settings = MeasurementSettings(warmup_iterations=5, warmup_duration_s=0.01, min_iterations=10, min_duration_s=0.5)

    stats = measure_latency(clock.infer, batch_size=4, settings=settings, scope="s", clock=clock).end_to_end

    assert stats.samples == 500
    assert stats.warmup_iterations == 10  # 10 ms of warm-up beats 5 iterations
    assert stats.p50_ms == pytest.approx(1.0)
    assert stats.throughput_per_s == pytest.approx(4000.0)
    assert clock.calls == 1 + 10 + 500  # first inference, warm-up, timed: none of them mixed


def test_timed_phase_runs_until_min_iterations_when_duration_is_met() -> None:
    clock = FakeClock(step_ns=100_000_000)  # 100 ms
    settings = MeasurementSettings(warmup_iterations=0, warmup_duration_s=0, min_iterations=20, min_duration_s=0.1)

    stats = measure_latency(clock.infer, batch_size=1, settings=settings, scope="s", clock=clock).end_to_end

    assert stats.samples == 20


def test_max_duration_caps_a_slow_model() -> None:
    clock = FakeClock(step_ns=1_000_000_000)  # 1 s per inference
    settings = MeasurementSettings(
        warmup_iterations=0, warmup_duration_s=0, min_iterations=100, min_duration_s=1, max_duration_s=5
    )

    stats = measure_latency(clock.infer, batch_size=1, settings=settings, scope="s", clock=clock).end_to_end

    assert stats.samples == 5


def test_device_timer_gives_compute_only_figure_and_window_wraps_only_the_timed_phase() -> None:
    clock = FakeClock(step_ns=2_000_000)  # 2 ms end to end, of which the "device" reports 1.5 ms
    settings = MeasurementSettings(warmup_iterations=3, warmup_duration_s=0, min_iterations=50, min_duration_s=0)
    calls_at: list[int] = []

    @contextmanager
    def window() -> Iterator[None]:
        calls_at.append(clock.calls)
        yield
        calls_at.append(clock.calls)

    run = measure_latency(
        clock.infer,
        batch_size=2,
        settings=settings,
        scope="end-to-end",
        clock=clock,
        device_ms=lambda: 1.5,
        compute_scope="compute-only",
        timed_window=window,
    )

    assert run.end_to_end.p50_ms == pytest.approx(2.0) and run.end_to_end.scope == "end-to-end"
    assert run.compute is not None
    assert run.compute.scope == "compute-only" and run.compute.samples == 50 and run.compute.p50_ms == 1.5
    assert calls_at == [1 + 3, 1 + 3 + 50]  # entered after first inference + warm-up, left after the timed phase


def test_percentiles_need_enough_samples() -> None:
    few = latency_stats(
        np.ones(100), batch_size=1, timed_duration_s=1, first_inference_ms=1, warmup_s=0, warmup_iterations=0, scope="s"
    )
    many = latency_stats(
        np.arange(1000.0),
        batch_size=1,
        timed_duration_s=1,
        first_inference_ms=1,
        warmup_s=0,
        warmup_iterations=0,
        scope="s",
    )

    assert few.p90_ms == 1.0 and few.p95_ms is None and few.p99_ms is None
    assert many.p99_ms == pytest.approx(np.percentile(np.arange(1000.0), 99))
    assert many.samples == 1000 and many.min_ms == 0 and many.max_ms == 999


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="min_iterations"):
        MeasurementSettings(min_iterations=0)
    with pytest.raises(ValueError, match="max_duration_s"):
        MeasurementSettings(min_duration_s=10, max_duration_s=1)
