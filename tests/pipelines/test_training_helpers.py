"""Class weights, per-class recall, config validation and the registry: no data, no TensorFlow."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edgelab.errors import ConfigError
from edgelab.metrics import accuracy_report
from pipelines.base import Pipeline, TrainConfig, TrainOutput
from pipelines.registry import PIPELINES, get_pipeline
from pipelines.training import balanced_class_weights


def test_balanced_class_weights_favour_rare_classes_up_to_the_cap() -> None:
    # prepare: 90 N, 9 S, 1 V, no F, no Q
    y = np.array([0] * 90 + [1] * 9 + [2], dtype=np.int64)

    # execute
    weights = balanced_class_weights(y, num_classes=5, cap=20.0)

    # assert: n / (k * n_c) with k = 3 classes present
    assert weights[0] == pytest.approx(100 / (3 * 90))
    assert weights[1] == pytest.approx(100 / (3 * 9))
    assert weights[2] == 20.0  # 33.3 capped
    assert weights[3] == weights[4] == 1.0
    assert sorted(weights) == [0, 1, 2, 3, 4]


def test_train_output_recall_is_nan_for_classes_absent_from_the_test_set() -> None:
    # prepare
    y_true = np.array([0, 0, 0, 1, 1], dtype=np.int64)
    y_pred = np.array([0, 0, 1, 1, 0], dtype=np.int64)
    evaluation = accuracy_report(y_true, y_pred, ("N", "S", "V"))

    # execute
    output = TrainOutput(
        pipeline="p",
        onnx_path=Path("m.onnx"),
        savedmodel_path=Path("sm"),
        dataset_path=Path("d.npz"),
        host_accuracy=evaluation.accuracy,
        onnx_max_abs_diff=0.0,
        class_names=("N", "S", "V"),
        train_beats=10,
        test_beats=5,
        split="random",
        train_seconds=1.0,
        notes=[],
        params=1,
        evaluation=evaluation,
    )

    # assert
    recall = output.per_class_recall
    assert recall["N"] == pytest.approx(2 / 3)
    assert recall["S"] == pytest.approx(1 / 2)
    assert math.isnan(recall["V"])
    assert output.as_dict()["evaluation"]["confusion"] == [2, 1, 0, 1, 1, 0, 0, 0, 0]


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"split": "by-beat"}, "split"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_train_beats": 0}, "max_train_beats"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"records": ()}, "records"),
    ],
)
def test_train_config_errors_name_the_key(changes: dict[str, object], key: str) -> None:
    # execute / assert
    with pytest.raises(ConfigError, match=f"^{key}:"):
        TrainConfig(data_dir=Path("."), **changes)  # type: ignore[arg-type]


def test_train_config_normalises_paths_and_records() -> None:
    # execute
    config = TrainConfig(data_dir="data", records=["100", "119"])  # type: ignore[arg-type]

    # assert
    assert config.data_dir == Path("data")
    assert config.records == ("100", "119")


def test_registry_finds_pipelines_by_name() -> None:
    # execute
    pipeline = get_pipeline("mitdb-beats-1d")

    # assert
    assert pipeline is PIPELINES["mitdb-beats-1d"]
    assert pipeline.name == "mitdb-beats-1d"
    assert pipeline.description
    assert isinstance(pipeline, Pipeline)
