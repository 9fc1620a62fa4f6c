"""Helpers shared by the training pipelines: class weights and the shipped dataset file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

DATASET_KEYS: tuple[str, ...] = ("x_test", "y_test", "class_names", "x_calib")


def balanced_class_weights(y: NDArray[np.int64], num_classes: int, cap: float = 20.0) -> dict[int, float]:
    """n / (k * n_c) per class present, capped; 1.0 for absent classes.

    MIT-BIH is ~90% N: without weights a model can score high accuracy while never predicting
    S or F. The cap keeps classes with a handful of beats (Q in DS1 has 8) from dominating the loss.
    """
    counts = np.bincount(y, minlength=num_classes)
    present = int(np.count_nonzero(counts))
    weights: dict[int, float] = {}
    for c in range(num_classes):
        weights[c] = min(cap, len(y) / (present * int(counts[c]))) if counts[c] else 1.0
    return weights


def write_dataset_npz(
    path: Path,
    x_test: NDArray[np.float32],
    y_test: NDArray[np.int64],
    class_names: Sequence[str],
    x_calib: NDArray[np.float32],
) -> Path:
    """The test set (on-device accuracy) and calibration set (INT8 PTQ) shipped with an artifact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        x_test=np.asarray(x_test, dtype=np.float32),
        y_test=np.asarray(y_test, dtype=np.int64),
        class_names=np.asarray(class_names, dtype=np.str_),
        x_calib=np.asarray(x_calib, dtype=np.float32),
    )
    return path
