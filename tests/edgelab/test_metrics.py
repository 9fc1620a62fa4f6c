import numpy as np
import pytest

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
