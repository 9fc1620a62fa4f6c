"""Split rules shared by the pipelines, on small in-memory datasets (the loader is a pipeline's own argument)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from edgelab.errors import ConfigError
from pipelines import mitdb
from pipelines.base import TrainConfig
from pipelines.harness import (
    Inputs,
    cap_training,
    check_sides,
    fit,
    hold_out_beat_validation,
    hold_out_validation,
    split_examples,
)


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


def _af_like(af_records: Sequence[str], n_records: int = 10) -> mitdb.BeatDataset:
    """`n_records` records of 20 N windows, the `af_records` among them with 10 AF windows more."""
    names = [str(100 + i) for i in range(n_records)]
    ys = [np.asarray([0] * 20 + [1] * (10 if r in af_records else 0), np.int64) for r in names]
    return mitdb.BeatDataset(
        x=np.zeros((sum(len(y) for y in ys), 1, 1), np.float32),
        y=np.concatenate(ys),
        record=np.concatenate([np.full(len(y), r) for r, y in zip(names, ys, strict=True)]),
        class_names=("N", "AF"),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_validation_holds_out_whole_training_records_and_keeps_most_af_patients(seed: int) -> None:
    # prepare: three AF patients among ten, as the AF pipelines' training side
    notes: list[str] = []
    data = _af_like(["101", "104", "107"])

    # execute
    train, validation = hold_out_validation(data, "inter-patient", seed, notes)

    # assert: patient-disjoint, one AF patient in validation, two in training, about a fifth of the records
    assert not set(train.records()) & set(validation.records())
    assert len(train) + len(validation) == len(data)
    assert len(validation.records()) == 2
    assert len(set(validation.records()) & {"101", "104", "107"}) == 1
    assert train.class_counts()[1] == 20
    assert notes == [
        f"validation records (from the training side, patient-disjoint): {', '.join(validation.records())}"
    ]


def test_validation_never_takes_the_record_holding_most_of_a_class() -> None:
    # prepare: 103 holds two thirds of the AF windows
    data = _af_like(["103", "105"])
    data = data.subset(np.flatnonzero((data.record != "105") | (data.y == 0) | (np.arange(len(data)) % 2 == 0)))

    # execute
    _, validation = hold_out_validation(data, "inter-patient", 0, [])

    # assert
    assert "103" not in validation.records()


def test_validation_falls_back_to_examples_when_no_record_can_go() -> None:
    # prepare: one training record
    notes: list[str] = []
    data = _load(["101"])

    # execute
    train, validation = hold_out_validation(data, "inter-patient", 0, notes)

    # assert: a stratified fifth of its examples, said so
    assert (train.class_counts().tolist(), validation.class_counts().tolist()) == ([4, 4], [1, 1])
    assert notes == [
        "validation: 20% of the training examples (records 101: none can be held out without losing a class from training)"
    ]


def test_random_split_validation_is_a_stratified_share_of_examples() -> None:
    # prepare
    notes: list[str] = []

    # execute
    train, validation = hold_out_validation(_load(["100", "101"]), "random", 0, notes)

    # assert: the random split leaks patients on its test side already, so validation does the same, silently
    assert (train.class_counts().tolist(), validation.class_counts().tolist()) == ([8, 8], [2, 2])
    assert notes == []


def test_beat_validation_patients_are_neither_training_nor_test_patients(mitdb_dir: Path) -> None:
    # prepare: DS1 records with two of the fixed validation records, and DS2 records
    config = TrainConfig(data_dir=mitdb_dir, records=("100", "118", "119", "124", "209", "232"))
    notes: list[str] = []
    train, test, split = split_examples(
        config, notes, lambda records: mitdb.load_beats(mitdb_dir, records), list(config.records or ())
    )

    # execute
    rest, held = hold_out_beat_validation(train, split, seed=0, notes=notes)

    # assert
    assert split == "inter-patient"
    assert held.records() == ["118", "124"]
    assert rest.records() == ["119", "209"]
    assert test.records() == ["100", "232"]
    assert len(rest) + len(held) == len(train)
    assert any("validation by patient: records 118, 124" in note for note in notes)


def test_beat_validation_without_the_fixed_records_holds_out_whole_training_patients(mitdb_dir: Path) -> None:
    # prepare: five DS1 records, none of them in BEAT_VALIDATION_RECORDS
    train = mitdb.load_beats(mitdb_dir, ["101", "106", "108", "109", "112"])

    # execute
    rest, held = hold_out_beat_validation(train, "inter-patient", seed=3, notes=[])
    _, again = hold_out_beat_validation(train, "inter-patient", seed=3, notes=[])

    # assert: whole records (the shared rule, hold_out_validation), the same for the same seed
    assert held.records() and held.records() == again.records()
    assert not set(held.records()) & set(rest.records())
    assert sorted(held.records() + rest.records()) == ["101", "106", "108", "109", "112"]


@pytest.mark.parametrize("weighted", [True, False])
def test_class_weights_decide_how_often_a_rare_overlapping_class_is_called(tmp_path: Path, weighted: bool) -> None:
    # prepare: 950 N around 0, 50 S around 1, overlapping; balanced weights move the boundary to about
    # 0.5 (several hundred beats called S), the plain loss to about 3.4 (almost none)
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0.0, 1.0, (950, 1)), rng.normal(1.0, 1.0, (50, 1))]).astype(np.float32)
    y = np.repeat(np.arange(2), [950, 50]).astype(np.int64)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2, activation="softmax")])
    config = TrainConfig(data_dir=tmp_path, epochs=20, batch_size=100, class_weights=weighted)

    # execute
    fit(model, Inputs(x, y), ("N", "S"), config, [], learning_rate=0.1, cosine_decay=False)
    called_s = int(np.argmax(model.predict(x, verbose=0), axis=1).sum())

    # assert
    assert called_s > 150 if weighted else called_s < 25
