"""Classification metrics shared by host-side evaluation and on-device accuracy, and the latency verdict."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgelab.domain import AccuracyReport, ClassMetrics, LatencyStats

FASTER = "faster"
SLOWER = "slower"
NO_DIFFERENCE = "no significant difference"
NO_VERDICT = "no verdict"


def accuracy_report(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> AccuracyReport:
    """Accuracy, per-class precision/recall/F1 (sensitivity/PPV for beats) and the confusion matrix."""
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.shape[0]} labels but {y_pred.shape[0]} predictions")
    n = len(class_names)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (y_true.astype(np.int64), y_pred.astype(np.int64)), 1)
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    classes = [
        ClassMetrics(name, int(support[i]), float(precision[i]), float(recall[i]), float(f1[i]))
        for i, name in enumerate(class_names)
    ]
    present = support > 0
    return AccuracyReport(
        samples=int(y_true.size),
        accuracy=float(tp.sum() / max(y_true.size, 1)),
        num_classes=n,
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        classes=classes,
        confusion=[int(v) for v in confusion.ravel()],
    )


def latency_verdict(baseline: LatencyStats, candidate: LatencyStats) -> str:
    """Whether `candidate` is faster or slower than `baseline` by median latency, or not significantly different.

    The rule: the two p50 confidence intervals (order statistics, LatencyStats.ci_level, 95 %) must not
    overlap; "faster" when the candidate's whole interval lies below the baseline's, "slower" when above.
    Non-overlap of two 95 % intervals is conservative (for similar widths it rejects "same median" at
    about the 0.6 % level), so a verdict is a real difference, and a small real one may read "no
    significant difference". Both rest on independent samples (see agent.measure.quantile_ci_ranks).
    NO_VERDICT when either side has no interval (too few samples, or a result stored before intervals).
    """
    a_low, a_high = baseline.p50_ci_low_ms, baseline.p50_ci_high_ms
    b_low, b_high = candidate.p50_ci_low_ms, candidate.p50_ci_high_ms
    if a_low is None or a_high is None or b_low is None or b_high is None:
        return NO_VERDICT
    if b_high < a_low:
        return FASTER
    if b_low > a_high:
        return SLOWER
    return NO_DIFFERENCE
