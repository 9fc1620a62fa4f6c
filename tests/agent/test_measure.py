from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from agent.measure import latency_stats, measure_latency, pool_repetitions
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


# -- confidence intervals (order statistics) ---------------------------------------------------------


def _exact_coverage(n: int, q: float, ranks: tuple[int, int]) -> float:
    """P(l <= B <= u - 1), B ~ Binomial(n, q), term by term (independently of the code under test's window)."""
    from math import exp, lgamma, log

    lower, upper = ranks

    def pmf(k: int) -> float:
        return exp(lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1) + k * log(q) + (n - k) * log(1 - q))

    return sum(pmf(k) for k in range(max(lower, 0), min(upper, n + 1)))


@pytest.mark.parametrize(("n", "q"), [(6, 0.5), (20, 0.5), (101, 0.5), (1000, 0.5), (662, 0.99), (5000, 0.99)])
def test_ci_ranks_cover_at_least_the_nominal_level(n: int, q: float) -> None:
    from agent.measure import quantile_ci_ranks

    ranks = quantile_ci_ranks(n, q, 0.95)
    assert ranks is not None
    lower, upper = ranks
    assert 1 <= lower < upper <= n
    coverage = _exact_coverage(n, q, ranks)
    assert coverage >= 0.95
    # Equal tails: each holds at most 2.5 %, and moving its bound one rank inwards would put more in it.
    assert _exact_coverage(n, q, (0, lower)) <= 0.025 < _exact_coverage(n, q, (0, lower + 1))
    assert _exact_coverage(n, q, (upper, n + 1)) <= 0.025 < _exact_coverage(n, q, (upper - 1, n + 1))


def test_ci_ranks_need_enough_samples() -> None:
    from agent.measure import quantile_ci_ranks

    assert quantile_ci_ranks(5, 0.5) is None  # 2 / 2**5 > 5 %: no interval from five samples
    assert quantile_ci_ranks(6, 0.5) == (1, 6)
    assert quantile_ci_ranks(300, 0.99) is None  # P(all 300 below p99) = 0.99**300 > 2.5 %
    assert quantile_ci_ranks(662, 0.99) is not None  # where p99 itself starts to be reported


def test_ci_ranks_scale_to_millions_of_samples() -> None:
    from agent.measure import quantile_ci_ranks

    n = 5_000_000
    ranks = quantile_ci_ranks(n, 0.5)
    assert ranks is not None
    half_width = 1.959964 * (n * 0.25) ** 0.5  # the normal approximation agrees at this size
    assert abs((n / 2 - ranks[0]) - half_width) <= 2
    assert abs((ranks[1] - n / 2) - half_width) <= 2


@pytest.mark.parametrize(
    ("n", "q", "trials"),
    [(31, 0.5, 4000), (201, 0.5, 4000), (700, 0.99, 2000)],
)
def test_ci_covers_the_true_quantile_in_simulation(n: int, q: float, trials: int) -> None:
    """Draw `trials` samples of n from a skewed distribution with a known quantile (log-normal, like latencies);
    the interval must hold the true quantile in about the exact binomial coverage of its ranks.

    Tolerance: 4 standard errors of a proportion over `trials` (about 0.014 at 4000 trials, 0.02 at 2000),
    so with the fixed seed it is deterministic and with any seed it would fail about once in 15,000 runs.
    """
    from agent.measure import quantile_ci_ranks

    rng = np.random.default_rng(17)
    sigma = 0.4
    z = {0.5: 0.0, 0.99: 2.3263478740408408}[q]
    true_quantile = float(np.exp(sigma * z))  # of log-normal(0, sigma)
    ranks = quantile_ci_ranks(n, q)
    assert ranks is not None
    draws = np.sort(rng.lognormal(0.0, sigma, size=(trials, n)), axis=1)
    low, high = draws[:, ranks[0] - 1], draws[:, ranks[1] - 1]
    observed = float(np.mean((low <= true_quantile) & (true_quantile <= high)))
    expected = _exact_coverage(n, q, ranks)
    tolerance = 4 * (expected * (1 - expected) / trials) ** 0.5
    assert abs(observed - expected) <= tolerance
    assert observed >= 0.95 - tolerance


def test_latency_stats_carry_cis_and_cv_only_when_the_samples_allow() -> None:
    few = latency_stats(np.array([1.0, 2.0, 3.0]), **_STATS_ARGS)
    assert few.p50_ci_low_ms is None and few.p50_ci_high_ms is None and few.ci_level is None
    assert few.cv == pytest.approx(1.0 / 2.0)

    values = np.random.default_rng(0).lognormal(0.0, 0.3, size=500)
    mid = latency_stats(values, **_STATS_ARGS)
    assert mid.ci_level == 0.95
    assert mid.p50_ci_low_ms is not None and mid.p50_ci_high_ms is not None
    assert mid.p50_ci_low_ms <= mid.p50_ms <= mid.p50_ci_high_ms
    assert mid.p99_ms is None and mid.p99_ci_low_ms is None and mid.p99_ci_high_ms is None
    assert mid.cv == pytest.approx(values.std(ddof=1) / values.mean())

    many = latency_stats(np.random.default_rng(1).lognormal(0.0, 0.3, size=2000), **_STATS_ARGS)
    assert many.p99_ms is not None and many.p99_ci_low_ms is not None and many.p99_ci_high_ms is not None
    assert many.p99_ci_low_ms <= many.p99_ms <= many.p99_ci_high_ms


_STATS_ARGS = dict(
    batch_size=1, timed_duration_s=1.0, first_inference_ms=1.0, warmup_s=0.1, warmup_iterations=1, scope="s"
)


def test_repetitions_pool_every_sample_and_report_the_spread_of_their_p50s() -> None:
    settings = MeasurementSettings(warmup_iterations=2, warmup_duration_s=0, min_iterations=100, min_duration_s=0)
    runs = []
    for step_ms, device_ms in ((1.0, 0.5), (1.5, 0.75), (2.0, 1.0)):  # each repetition on a slower "device"
        clock = FakeClock(step_ns=int(step_ms * 1e6))
        runs.append(
            measure_latency(
                clock.infer,
                batch_size=4,
                settings=settings,
                scope="e2e",
                clock=clock,
                device_ms=lambda ms=device_ms: ms,  # type: ignore[misc]
                compute_scope="compute",
            )
        )

    pooled, spreads = pool_repetitions(runs)

    assert pooled.end_to_end.samples == 300 and pooled.compute is not None and pooled.compute.samples == 300
    assert pooled.end_to_end.p50_ms == pytest.approx(1.5)
    assert pooled.end_to_end.timed_duration_s == pytest.approx(0.1 + 0.15 + 0.2)
    assert pooled.end_to_end.warmup_iterations == 6
    assert pooled.end_to_end.first_inference_ms == pytest.approx(1.0)  # the first repetition's: the cold one
    assert pooled.end_to_end.throughput_per_s == pytest.approx(4 * 300 / 0.45)
    e2e, compute = spreads
    assert (e2e.scope, e2e.batch_size, e2e.p50_ms) == ("e2e", 4, pytest.approx([1.0, 1.5, 2.0]))
    assert (e2e.mean_ms, e2e.sd_ms, e2e.min_ms, e2e.max_ms) == pytest.approx((1.5, 0.5, 1.0, 2.0))
    assert compute.scope == "compute" and compute.p50_ms == pytest.approx([0.5, 0.75, 1.0])


def test_one_repetition_comes_back_as_is_without_a_spread() -> None:
    clock = FakeClock(step_ns=1_000_000)
    settings = MeasurementSettings(warmup_iterations=0, warmup_duration_s=0, min_iterations=10, min_duration_s=0)
    run = measure_latency(clock.infer, batch_size=1, settings=settings, scope="s", clock=clock)

    assert pool_repetitions([run]) == (run, [])
    with pytest.raises(ValueError, match="no repetitions"):
        pool_repetitions([])
