import numpy as np
import pytest

from edgelab.domain import LatencyStats
from edgelab.metrics import accuracy_report


def test_per_class_metrics_from_known_confusion() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 0])

    report = accuracy_report(y_true, y_pred, ["N", "V", "F"])

    assert report.accuracy == pytest.approx(4 / 6)
    assert report.confusion_matrix() == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    n, v, f = report.classes
    assert (n.precision, n.recall) == pytest.approx((2 / 3, 2 / 3))
    assert (v.precision, v.recall) == pytest.approx((2 / 3, 1.0))
    assert (f.support, f.recall, f.f1) == (1, 0.0, 0.0)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="labels"):
        accuracy_report(np.zeros(3, int), np.zeros(2, int), ["a"])


def _stats(median_ms: float, n: int, seed: int) -> LatencyStats:
    from agent.measure import latency_stats

    samples = np.random.default_rng(seed).lognormal(np.log(median_ms), 0.2, size=n)
    return latency_stats(
        samples,
        batch_size=1,
        timed_duration_s=1.0,
        first_inference_ms=1.0,
        warmup_s=0.1,
        warmup_iterations=1,
        scope="e",
    )


def test_latency_verdict_from_non_overlapping_p50_intervals() -> None:
    from edgelab.metrics import FASTER, NO_DIFFERENCE, NO_VERDICT, SLOWER, latency_verdict

    base, quicker = _stats(1.0, 1000, 1), _stats(0.9, 1000, 2)
    assert latency_verdict(base, quicker) == FASTER
    assert latency_verdict(quicker, base) == SLOWER
    assert latency_verdict(base, _stats(1.0, 1000, 3)) == NO_DIFFERENCE
    few = _stats(0.5, 5, 4)  # five samples give no 95 % interval for the median
    assert few.p50_ci_low_ms is None
    assert latency_verdict(base, few) == NO_VERDICT


def test_latency_verdict_rarely_calls_a_difference_between_identical_distributions() -> None:
    """False alarms: 300 pairs drawn from one distribution (fixed seeds); non-overlap of two 95 % intervals
    rejects at about 0.6 %, so at most 3 % of verdicts (a bound far from the expected ~2 pairs) may differ."""
    from edgelab.metrics import NO_DIFFERENCE, latency_verdict

    verdicts = [latency_verdict(_stats(2.0, 300, 2 * i), _stats(2.0, 300, 2 * i + 1)) for i in range(300)]
    assert sum(v != NO_DIFFERENCE for v in verdicts) <= 9
