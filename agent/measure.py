"""The measurement loop (DESIGN.md section 3), in the shape trtexec and benchmark_model use.

First inference is its own figure; warm-up runs until both its iteration count and its
duration are met and is discarded; the timed phase runs until at least `min_iterations`
AND at least `min_duration_s` (or `max_duration_s` is reached). Each iteration is timed
with `perf_counter_ns` around the engine call alone; the engine returns only when the
outputs are on the host, so nothing asynchronous escapes the clock.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgelab.constants import MIN_SAMPLES_P90, MIN_SAMPLES_P95, MIN_SAMPLES_P99
from edgelab.domain import LatencyStats, MeasurementSettings

Clock = Callable[[], int]  # typing's, not collections.abc's: evaluated at import, on Python 3.8 too


@dataclass
class TimedRun:
    """One timed phase: the end-to-end figure and, for engines that time the device, compute-only."""

    end_to_end: LatencyStats
    compute: LatencyStats | None = None


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
    """Time `run_once` as DESIGN.md section 3 asks.

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

    return TimedRun(
        end_to_end=stats(np.asarray(samples, dtype=np.float64) / 1e6, scope),
        compute=stats(np.asarray(device, dtype=np.float64), compute_scope) if device_ms is not None else None,
    )


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

    return LatencyStats(
        batch_size=batch_size,
        samples=n,
        mean_ms=float(latencies_ms.mean()),
        p50_ms=float(np.percentile(latencies_ms, 50)),
        p90_ms=pct(90, MIN_SAMPLES_P90),
        p95_ms=pct(95, MIN_SAMPLES_P95),
        p99_ms=pct(99, MIN_SAMPLES_P99),
        min_ms=float(latencies_ms.min()),
        max_ms=float(latencies_ms.max()),
        std_ms=float(latencies_ms.std(ddof=1)) if n > 1 else 0.0,
        # Samples per second over the timed phase's wall time (loop overhead included, honestly).
        throughput_per_s=batch_size * n / timed_duration_s if timed_duration_s > 0 else 0.0,
        first_inference_ms=first_inference_ms,
        warmup_s=warmup_s,
        warmup_iterations=warmup_iterations,
        timed_duration_s=timed_duration_s,
        scope=scope,
    )
