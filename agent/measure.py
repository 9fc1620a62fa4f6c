"""The measurement loop, in the shape trtexec and benchmark_model use.

First inference is its own figure; warm-up runs until both its iteration count and its
duration are met and is discarded; the timed phase runs until at least `min_iterations`
AND at least `min_duration_s` (or `max_duration_s` is reached). Each iteration is timed
with `perf_counter_ns` around the engine call alone; the engine returns only when the
outputs are on the host, so nothing asynchronous escapes the clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgelab.constants import MIN_SAMPLES_P90, MIN_SAMPLES_P95, MIN_SAMPLES_P99
from edgelab.domain import LatencyStats, MeasurementSettings, RepetitionSpread

Clock = Callable[[], int]  # typing's, not collections.abc's: evaluated at import, on Python 3.8 too

CI_LEVEL = 0.95


@dataclass
class TimedRun:
    """One timed phase: the end-to-end figure and, for engines that time the device, compute-only, with the
    per-iteration latencies (ms) behind each, so that repetitions can be pooled (`pool_repetitions`)."""

    end_to_end: LatencyStats
    compute: LatencyStats | None = None
    end_to_end_ms: np.ndarray | None = None
    compute_ms: np.ndarray | None = None


def measure_latency(
    run_once: Callable[[], object],
    *,
    batch_size: int,
    settings: MeasurementSettings,
    scope: str,
    clock: Clock = time.perf_counter_ns,
    device_ms: Callable[[], float] | None = None,
    compute_scope: str = "",
    timed_window: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> TimedRun:
    """Time `run_once`: first inference, warm-up, then the timed phase (module docstring).

    `device_ms`, when given, is read after each timed call (the engine's own device timer, e.g.
    CUDA events) to report compute-only latency beside end-to-end. `timed_window` wraps exactly
    the timed phase (the power sampler's window), not the first inference nor the warm-up.
    """
    t0 = clock()
    run_once()
    first_ns = clock() - t0

    warm_iterations = 0
    warm_start = clock()
    warm_until = warm_start + int(settings.warmup_duration_s * 1e9)
    while warm_iterations < settings.warmup_iterations or clock() < warm_until:
        run_once()
        warm_iterations += 1
    warmup_ns = clock() - warm_start

    min_ns = int(settings.min_duration_s * 1e9)
    max_ns = int(settings.max_duration_s * 1e9)
    samples: list[int] = []
    device: list[float] = []
    with timed_window():
        start = clock()
        now = start
        while (len(samples) < settings.min_iterations or now - start < min_ns) and now - start < max_ns:
            t = clock()
            run_once()
            now = clock()
            samples.append(now - t)
            if device_ms is not None:
                device.append(device_ms())
    timed_s = (now - start) / 1e9

    def stats(latencies_ms: np.ndarray, what: str) -> LatencyStats:
        return latency_stats(
            latencies_ms,
            batch_size=batch_size,
            timed_duration_s=timed_s,
            first_inference_ms=first_ns / 1e6,
            warmup_s=warmup_ns / 1e9,
            warmup_iterations=warm_iterations,
            scope=what,
        )

    end_to_end_ms = np.asarray(samples, dtype=np.float64) / 1e6
    compute_ms = np.asarray(device, dtype=np.float64) if device_ms is not None else None
    return TimedRun(
        end_to_end=stats(end_to_end_ms, scope),
        compute=stats(compute_ms, compute_scope) if compute_ms is not None else None,
        end_to_end_ms=end_to_end_ms,
        compute_ms=compute_ms,
    )


def pool_repetitions(runs: Sequence[TimedRun]) -> tuple[TimedRun, list[RepetitionSpread]]:
    """R timed phases of one batch size (each after its own warm-up) as one TimedRun over all their samples,
    and per timing scope the spread of the repetitions' p50s; one run comes back as is, with no spread.

    The pooled figures count every timed iteration: first_inference_ms is the first repetition's (the only
    cold one), warm-up and timed durations add up. Its CI treats all samples as independent; the spread is
    what shows run-to-run variation beyond that (p50s further apart than the pooled CI is wide).
    """
    if not runs:
        raise ValueError("no repetitions to pool")
    if len(runs) == 1:
        return runs[0], []

    def pooled(stats: list[LatencyStats], arrays: list[np.ndarray | None]) -> LatencyStats:
        if any(a is None for a in arrays):
            raise ValueError("a repetition kept no per-iteration latencies to pool")
        return latency_stats(
            np.concatenate([a for a in arrays if a is not None]),
            batch_size=stats[0].batch_size,
            timed_duration_s=sum(s.timed_duration_s for s in stats),
            first_inference_ms=stats[0].first_inference_ms,
            warmup_s=sum(s.warmup_s for s in stats),
            warmup_iterations=sum(s.warmup_iterations for s in stats),
            scope=stats[0].scope,
        )

    def spread(stats: list[LatencyStats]) -> RepetitionSpread:
        p50s = np.asarray([s.p50_ms for s in stats], dtype=np.float64)
        return RepetitionSpread(
            batch_size=stats[0].batch_size,
            scope=stats[0].scope,
            p50_ms=[float(p) for p in p50s],
            mean_ms=float(p50s.mean()),
            sd_ms=float(p50s.std(ddof=1)),
            min_ms=float(p50s.min()),
            max_ms=float(p50s.max()),
        )

    end_to_end = [r.end_to_end for r in runs]
    run = TimedRun(
        end_to_end=pooled(end_to_end, [r.end_to_end_ms for r in runs]),
        end_to_end_ms=np.concatenate([r.end_to_end_ms for r in runs if r.end_to_end_ms is not None]),
    )
    spreads = [spread(end_to_end)]
    computes = [r.compute for r in runs if r.compute is not None]
    if computes:
        if len(computes) != len(runs):
            raise ValueError("only some repetitions timed the device compute")
        run.compute = pooled(computes, [r.compute_ms for r in runs])
        run.compute_ms = np.concatenate([r.compute_ms for r in runs if r.compute_ms is not None])
        spreads.append(spread(computes))
    return run, spreads


def latency_stats(
    latencies_ms: np.ndarray,
    *,
    batch_size: int,
    timed_duration_s: float,
    first_inference_ms: float,
    warmup_s: float,
    warmup_iterations: int,
    scope: str,
) -> LatencyStats:
    """Summarise per-iteration latencies; a percentile is left out when too few samples back it."""
    n = int(latencies_ms.size)
    if n == 0:
        raise ValueError("no timed iterations")

    def pct(q: float, needed: int) -> float | None:
        return float(np.percentile(latencies_ms, q)) if n >= needed else None

    ordered = np.sort(latencies_ms)
    p50_ci = quantile_ci(ordered, 0.5)
    p99_ci = quantile_ci(ordered, 0.99) if n >= MIN_SAMPLES_P99 else None
    mean = float(latencies_ms.mean())
    std = float(latencies_ms.std(ddof=1)) if n > 1 else 0.0
    return LatencyStats(
        batch_size=batch_size,
        samples=n,
        mean_ms=mean,
        p50_ms=float(np.percentile(latencies_ms, 50)),
        p90_ms=pct(90, MIN_SAMPLES_P90),
        p95_ms=pct(95, MIN_SAMPLES_P95),
        p99_ms=pct(99, MIN_SAMPLES_P99),
        min_ms=float(latencies_ms.min()),
        max_ms=float(latencies_ms.max()),
        std_ms=std,
        # Samples per second over the timed phase's wall time (loop overhead included, honestly).
        throughput_per_s=batch_size * n / timed_duration_s if timed_duration_s > 0 else 0.0,
        first_inference_ms=first_inference_ms,
        warmup_s=warmup_s,
        warmup_iterations=warmup_iterations,
        timed_duration_s=timed_duration_s,
        scope=scope,
        ci_level=CI_LEVEL if p50_ci is not None else None,
        p50_ci_low_ms=p50_ci[0] if p50_ci is not None else None,
        p50_ci_high_ms=p50_ci[1] if p50_ci is not None else None,
        p99_ci_low_ms=p99_ci[0] if p99_ci is not None else None,
        p99_ci_high_ms=p99_ci[1] if p99_ci is not None else None,
        cv=std / mean if mean > 0 and n > 1 else None,
    )


def quantile_ci_ranks(n: int, q: float, level: float = CI_LEVEL) -> tuple[int, int] | None:
    """1-based ranks (l, u) of the order statistics bounding a distribution-free `level` interval for the
    q-quantile of n independent samples, or None when n is too small for one.

    The number B of samples below the true quantile is Binomial(n, q), and P(X_(l) <= quantile < X_(u)) =
    P(l <= B <= u - 1). l is the largest rank with P(B <= l - 1) <= (1 - level) / 2 and u the smallest with
    P(B <= u - 1) >= (1 + level) / 2, so each tail holds at most half the miss and the coverage is at least
    `level` (more where the binomial's steps are coarse, i.e. few samples). Needs no assumption on the
    distribution, but does assume independent samples: in a timed loop, drift (thermal, DVFS) and
    correlated iterations make it narrower than it should be.
    """
    if n < 1 or not 0.0 < q < 1.0 or not 0.0 < level < 1.0:
        return None
    tail = (1.0 - level) / 2.0
    lo_k, cum = _binomial_cdf_window(n, q)
    # cum[i] = P(B <= lo_k + i); below lo_k the mass is negligible (< 1e-20), above the window it is ~1.
    below = np.nonzero(cum <= tail)[0]
    if below.size == 0 and lo_k == 0:
        return None  # P(B = 0) alone exceeds the tail: no lower order statistic is far enough out
    lower = (lo_k + int(below[-1]) + 1) if below.size else lo_k  # rank l with P(B <= l - 1) <= tail
    above = np.nonzero(cum >= 1.0 - tail)[0]
    upper = lo_k + int(above[0]) + 1 if above.size else n + 1  # rank u with P(B <= u - 1) >= 1 - tail
    if lower < 1 or upper > n:
        return None
    return lower, upper


def quantile_ci(ordered: np.ndarray, q: float, level: float = CI_LEVEL) -> tuple[float, float] | None:
    """The `level` interval [X_(l), X_(u)] for the q-quantile from sorted samples (see quantile_ci_ranks)."""
    ranks = quantile_ci_ranks(int(ordered.size), q, level)
    if ranks is None:
        return None
    return float(ordered[ranks[0] - 1]), float(ordered[ranks[1] - 1])


def _binomial_cdf_window(n: int, q: float) -> tuple[int, np.ndarray]:
    """(k0, P(B <= k) for k = k0 .. k1) for B ~ Binomial(n, q) over k0..k1 = the mean +- 12 standard deviations
    (clipped to 0..n): beyond that the mass is below 1e-30, so millions of samples cost a window of a few
    thousand terms. Terms from log-gamma, summed from k = 0 or from a mass that small."""
    mean, sd = n * q, math.sqrt(n * q * (1.0 - q))
    k0 = max(0, math.floor(mean - 12.0 * sd - 2))
    k1 = min(n, math.ceil(mean + 12.0 * sd + 2))
    k = np.arange(k0, k1 + 1, dtype=np.float64)
    lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
    log_pmf = lgamma(n + 1.0) - lgamma(k + 1.0) - lgamma(n - k + 1.0) + k * math.log(q) + (n - k) * math.log1p(-q)
    return k0, np.cumsum(np.exp(log_pmf))
