"""Split rules shared by the pipelines, on small in-memory datasets (the loader is a pipeline's own argument)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from edgelab.errors import ConfigError
from pipelines import mitdb
from pipelines.base import TrainConfig
from pipelines.harness import cap_training, check_sides, split_examples


def _load(records: Sequence[str]) -> mitdb.BeatDataset:
    """Ten examples per record, classes alternating, x encoding the record."""
    n = 10 * len(records)
    return mitdb.BeatDataset(
        x=np.repeat(np.asarray([float(r) for r in records], np.float32), 10)[:, None, None],
        y=np.tile(np.arange(2), n // 2).astype(np.int64),
        record=np.repeat(np.asarray(records, dtype=np.str_), 10),
        class_names=("N", "AF"),
    )


def test_inter_patient_uses_the_given_sides(tmp_path: Path) -> None:
    # prepare: paced 102 moved to the training side, as the paper classes need
    notes: list[str] = []
    config = TrainConfig(data_dir=tmp_path)

    # execute
    train, test, split = split_examples(
        config, notes, _load, ["101", "100", "102"], ds1=(*mitdb.DS1, "102"), ds2=mitdb.DS2
    )

    # assert
    assert split == "inter-patient"
    assert (train.records(), test.records()) == (["101", "102"], ["100"])


def test_one_side_only_falls_back_to_held_out_records(tmp_path: Path) -> None:
    # prepare
    notes: list[str] = []
    config = TrainConfig(data_dir=tmp_path, test_fraction=0.34)

    # execute
    train, test, split = split_examples(config, notes, _load, ["100", "103", "105"])

    # assert
    assert split == "per-record"
    assert len(test.records()) == 1
    assert not set(train.records()) & set(test.records())
    assert any("per-record" in note for note in notes)


def test_random_split_says_it_leaks(tmp_path: Path) -> None:
    # prepare
    notes: list[str] = []

    # execute
    train, test, split = split_examples(TrainConfig(data_dir=tmp_path, split="random"), notes, _load, ["100", "101"])

    # assert
    assert split == "random"
    assert (len(train), len(test)) == (16, 4)
    assert any("optimistic" in note for note in notes)


def test_records_outside_both_sides_are_rejected(tmp_path: Path) -> None:
    # execute / assert
    with pytest.raises(ConfigError, match="none of 102"):
        split_examples(TrainConfig(data_dir=tmp_path), [], _load, ["102"])


def test_cap_is_stratified_and_noted(tmp_path: Path) -> None:
    # prepare
    notes: list[str] = []
    data = _load(["100", "101"])

    # execute
    capped = cap_training(data, TrainConfig(data_dir=tmp_path, max_train_beats=10), notes)

    # assert
    assert capped.class_counts().tolist() == [5, 5]
    assert notes == ["training examples subsampled (stratified) to 10"]


def test_an_empty_side_is_a_config_error() -> None:
    # execute / assert
    with pytest.raises(ConfigError, match="left 20 training and 0 test"):
        check_sides(_load(["100", "101"]), _load([]), "inter-patient")
