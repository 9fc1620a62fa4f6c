"""Classification metrics shared by host-side evaluation and on-device accuracy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgelab.domain import AccuracyReport, ClassMetrics


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
