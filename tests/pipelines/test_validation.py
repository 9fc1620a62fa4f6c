"""The validation set carved from the training patients, and model selection on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgelab.metrics import accuracy_report
from pipelines import mitdb, validation
from pipelines.base import TrainConfig
from pipelines.beats_1d import load_split


def test_validation_patients_are_neither_training_nor_test_patients(mitdb_dir: Path) -> None:
    # prepare: DS1 records with two of the fixed validation records, and DS2 records
    config = TrainConfig(data_dir=mitdb_dir, records=("100", "118", "119", "124", "209", "232"))
    notes: list[str] = []
    train, test, split = load_split(config, notes)

    # execute
    rest, held = validation.hold_out_beat_validation(train, split, seed=0, notes=notes)

    # assert
    assert split == "inter-patient" and held is not None
    assert held.records() == ["118", "124"]
    assert rest.records() == ["119", "209"]
    assert test.records() == ["100", "232"]
    assert not set(held.records()) & (set(rest.records()) | set(test.records()))
    assert len(rest) + len(held) == len(train)
    assert any("validation by patient: records 118, 124" in note for note in notes)


def test_without_the_fixed_records_whole_training_patients_are_held_out(mitdb_dir: Path) -> None:
    # prepare: five DS1 records, none of them in VALIDATION_RECORDS
    train = mitdb.load_beats(mitdb_dir, ["101", "106", "108", "109", "112"])

    # execute
    rest, held = validation.hold_out_beat_validation(train, "inter-patient", seed=3, notes=[])
    _, again = validation.hold_out_beat_validation(train, "inter-patient", seed=3, notes=[])

    # assert: whole records (the shared rule, harness.hold_out_validation), the same for the same seed
    assert held.records() and held.records() == again.records()
    assert not set(held.records()) & set(rest.records())
    assert sorted(held.records() + rest.records()) == ["101", "106", "108", "109", "112"]


def test_a_single_training_record_holds_out_a_share_of_its_beats_and_says_so(mitdb_dir: Path) -> None:
    # prepare
    train = mitdb.load_beats(mitdb_dir, ["119"])
    notes: list[str] = []

    # execute
    rest, held = validation.hold_out_beat_validation(train, "inter-patient", seed=0, notes=notes)

    # assert: no patient can be held out, so a stratified share of the beats is, and the notes say it
    assert len(rest) + len(held) == len(train) and 0 < len(held) < len(train)
    assert "none can be held out" in notes[0]


def test_selection_score_is_the_mean_ec57_se_and_ppv_of_n_sveb_veb() -> None:
    # prepare: N 8/10 right, S 2/2, V 1/2 (the other V called N), no F or Q beat; two N called S
    y_true = np.array([0] * 10 + [1, 1] + [2, 2])
    y_pred = np.array([0] * 8 + [1, 1] + [1, 1] + [2, 0])
    report = accuracy_report(y_true, y_pred, mitdb.AAMI_CLASSES)

    # execute
    score = validation.selection_score(report)

    # assert: N Se 0.8, +P 8/9; SVEB Se 1, +P 0.5; VEB Se 0.5, +P 1
    assert score == pytest.approx(np.mean([0.8, 8 / 9, 1.0, 0.5, 0.5, 1.0]))


def test_validation_monitor_scores_every_epoch_and_keeps_the_last() -> None:
    # prepare: a tiny model on random beats of the five AAMI classes
    keras = pytest.importorskip("keras", reason="needs pip install 'edgelab[train]'")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((200, 8)).astype(np.float32), rng.integers(0, 5, 200)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(5, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    notes: list[str] = []
    monitor = validation.validation_monitor(x[:50], y[:50], mitdb.AAMI_CLASSES, notes)

    # execute
    model.fit(x, y, epochs=3, verbose=0, callbacks=[monitor])

    # assert
    (note,) = notes
    scores = note.split("per epoch: ")[1].split(";")[0].split(", ")
    assert len(scores) == 3 and all(0.0 <= float(s) <= 1.0 for s in scores)
    assert note.endswith("last epoch kept")


def test_validation_monitor_scores_with_the_logit_offsets() -> None:
    # prepare: an untrained model, scored without and with a large offset towards S
    keras = pytest.importorskip("keras", reason="needs pip install 'edgelab[train]'")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((60, 8)).astype(np.float32), np.array([0] * 40 + [1] * 10 + [2] * 10)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(5, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    notes: list[str] = []
    plain = validation.validation_monitor(x, y, mitdb.AAMI_CLASSES, notes)
    towards_s = validation.validation_monitor(x, y, mitdb.AAMI_CLASSES, notes, [0.0, 100.0, 0.0, 0.0, 0.0])

    # execute
    model.fit(x, y, epochs=1, verbose=0, callbacks=[plain, towards_s])

    # assert: with the offset every beat is S: N Se 0, SVEB Se 1 / +P 10/60, VEB Se 0
    score = float(notes[1].split("per epoch: ")[1].split(";")[0])
    assert score == pytest.approx(np.mean([0.0, 0.0, 1.0, 10 / 60, 0.0, 0.0]), abs=1e-3)
    assert notes[0] != notes[1]
