"""The mitdb-beats-1d pipeline: split choice on record subsets, and one real train -> ONNX run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edgelab.errors import ConfigError
from pipelines import beats_1d, mitdb
from pipelines.base import TrainConfig, TrainOutput
from pipelines.beats_1d import DS1_FOLDS, load_split, with_synthetic_fusion
from pipelines.features import RR_FEATURES
from pipelines.registry import get_pipeline
from pipelines.training import DATASET_KEYS


def test_load_split_uses_ds1_ds2_membership_of_a_subset(mitdb_dir: Path) -> None:
    # prepare
    config = TrainConfig(data_dir=mitdb_dir, records=("100", "119", "102"))
    notes: list[str] = []

    # execute
    train, test, split = load_split(config, notes)

    # assert
    assert split == "inter-patient"
    assert (train.records(), test.records()) == (["119"], ["100"])
    assert any("102" in note for note in notes)  # the paced record is left out, and we say so


def test_load_split_falls_back_to_a_per_record_split(mitdb_dir: Path) -> None:
    # prepare: 100, 103 and 105 are all DS2
    config = TrainConfig(data_dir=mitdb_dir, records=("100", "103", "105"), test_fraction=0.34)
    notes: list[str] = []

    # execute
    train, test, split = load_split(config, notes)

    # assert
    assert split == "per-record"
    assert len(test.records()) == 1
    assert not set(train.records()) & set(test.records())
    assert any("per-record" in note for note in notes)


def test_load_split_with_one_record_splits_its_beats(mitdb_dir: Path) -> None:
    # prepare
    config = TrainConfig(data_dir=mitdb_dir, records=("119",))
    notes: list[str] = []

    # execute
    train, test, split = load_split(config, notes)

    # assert
    assert split == "random"
    assert train.records() == test.records() == ["119"]
    assert any("random" in note for note in notes)


def test_the_streaming_pipeline_preprocesses_causally(mitdb_dir: Path) -> None:
    # prepare
    config = TrainConfig(data_dir=mitdb_dir, records=("100", "119"))

    # execute
    offline, _, _ = load_split(config, [])
    streamed, _, _ = load_split(config, [], streaming=True)

    # assert: the same beats and RR features, other waveform values
    assert get_pipeline("mitdb-beats-1d-streaming").name == "mitdb-beats-1d-streaming"
    assert streamed.x.shape == offline.x.shape
    np.testing.assert_array_equal(streamed.x[:, -len(RR_FEATURES) :], offline.x[:, -len(RR_FEATURES) :])
    assert not np.allclose(streamed.x[:, : -len(RR_FEATURES)], offline.x[:, : -len(RR_FEATURES)])


def test_the_cross_validation_folds_split_ds1_by_patient_and_spread_its_rare_beats() -> None:
    # prepare: DS1's AF patients, the record with most of its F beats, its patients with 30+ SVEB beats
    af, fusion = {"201", "203"}, "208"
    sveb = {"209", "201", "207", "118", "220", "223", "124"}

    # execute
    placed = [r for fold in DS1_FOLDS for r in fold]

    # assert: every DS1 patient in exactly one fold, none of DS2; the AF patients apart, so a fold trains on one
    assert sorted(placed) == sorted(mitdb.DS1)
    assert all(len(fold & af) <= 1 for fold in map(set, DS1_FOLDS))
    assert sum(fusion in fold for fold in DS1_FOLDS) == 1
    assert all(set(fold) & sveb for fold in DS1_FOLDS)


def test_load_split_rejects_unknown_records(mitdb_dir: Path) -> None:
    # execute / assert
    with pytest.raises(ConfigError, match=r"^records: 999"):
        load_split(TrainConfig(data_dir=mitdb_dir, records=("100", "999")), [])


@pytest.fixture(scope="module")
def trained(mitdb_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainOutput:
    """One real epoch on records 100 (DS2, test) and 119 (DS1, train): seconds, not minutes."""
    pytest.importorskip("tensorflow", reason="needs pip install 'edgelab[train]'")
    pytest.importorskip("tf2onnx", reason="needs pip install 'edgelab[train]'")
    config = TrainConfig(data_dir=mitdb_dir, records=("100", "119"), epochs=1, calibration_size=128)
    return get_pipeline("mitdb-beats-1d").run(config, tmp_path_factory.mktemp("beats_1d"))


@pytest.mark.integration
def test_pipeline_reports_a_real_run(trained: TrainOutput) -> None:
    # assert
    assert trained.pipeline == "mitdb-beats-1d"
    assert trained.split == "inter-patient"
    assert 0.0 <= trained.host_accuracy <= 1.0
    assert trained.class_names == ("N", "S", "V", "F", "Q")
    assert 1900 < trained.train_beats < 2100  # every beat of record 119: no validation hold-out
    assert not any("synthetic" in note for note in trained.notes)  # 119 has no real F beat to complement
    assert trained.test_beats > 2200
    assert 25_000 <= trained.params <= 35_000  # three width-8 CNNs of about 9.6k each
    assert trained.train_seconds > 0
    assert set(trained.per_class_recall) == set(trained.class_names)
    assert math.isnan(trained.per_class_recall["F"])  # record 100 has no fusion beat
    assert trained.savedmodel_path.joinpath("saved_model.pb").is_file()
    assert list(trained.record_confusions) == ["100"]
    assert sum(trained.record_confusions["100"]) == trained.test_beats
    assert any("3 CNNs" in note and "no validation hold-out" in note for note in trained.notes)
    assert any("logit offsets" in note and "S -0.5, V -0.5" in note for note in trained.notes)
    assert trained.logit_offsets == (0.0, -0.5, -0.5, 0.0, 0.0)


@pytest.mark.integration
def test_pipeline_model_reads_the_rr_features_from_its_one_input(trained: TrainOutput) -> None:
    # prepare: the same beats with their RR features set to those of a very premature beat
    import onnxruntime as ort

    x_test = np.load(trained.dataset_path)["x_test"][:64]
    premature = x_test.copy()
    premature[:, -len(RR_FEATURES) :, 0] = np.array(
        [-1.6, 0.8, 0.0, 0.0, -2.0, 1.0, 0.0, 6.0, -2.0, 0, 0, 0, 0], np.float32
    )
    session = ort.InferenceSession(str(trained.onnx_path), providers=["CPUExecutionProvider"])

    # execute
    before, after = (session.run(None, {"ecg": x})[0] for x in (x_test, premature))

    # assert
    assert np.abs(after - before).max() > 1e-3


@pytest.mark.integration
def test_pipeline_onnx_matches_keras_with_a_dynamic_batch(trained: TrainOutput) -> None:
    # prepare
    import onnxruntime as ort

    x_test = np.load(trained.dataset_path)["x_test"]
    session = ort.InferenceSession(str(trained.onnx_path), providers=["CPUExecutionProvider"])
    (model_input,) = session.get_inputs()

    # execute
    outputs = [session.run(None, {model_input.name: x_test[:n]})[0] for n in (1, 7)]

    # assert
    assert trained.onnx_max_abs_diff < 1e-4
    assert model_input.name == "ecg"
    assert model_input.shape == ["batch", 2 * 252 + len(RR_FEATURES), 1]  # window, template difference, RR
    assert [o.shape for o in outputs] == [(1, 5), (7, 5)]
    np.testing.assert_allclose(outputs[1].sum(axis=1), 1.0, rtol=1e-5)  # softmax rows


@pytest.mark.integration
def test_pipeline_ships_test_and_calibration_sets(trained: TrainOutput) -> None:
    # execute
    with np.load(trained.dataset_path) as data:
        arrays = {key: data[key] for key in data.files}

    # assert
    assert sorted(arrays) == sorted(DATASET_KEYS)
    assert arrays["x_test"].shape == (trained.test_beats, 2 * 252 + len(RR_FEATURES), 1)
    assert arrays["x_test"].dtype == np.float32
    assert arrays["y_test"].shape == (trained.test_beats,)
    assert arrays["y_test"].dtype == np.int64
    assert tuple(arrays["class_names"]) == trained.class_names
    assert arrays["x_calib"].shape == (128, 2 * 252 + len(RR_FEATURES), 1)
    assert arrays["x_calib"].dtype == np.float32
    # calibration beats come from the training side (record 119), never from the test set
    test_rows = {row.tobytes() for row in arrays["x_test"]}
    assert not any(row.tobytes() in test_rows for row in arrays["x_calib"])


def test_synthetic_fusion_blends_a_records_v_beats_into_its_next_n_beats() -> None:
    # prepare: record "a" N, V, N, V, N, ... (N beats all 1, V beats all 5, each beat's difference 0,
    # RR features the beat's index); record "b" has N beats and one real F beat, no V, so it lends none
    wave, rr = 4, len(RR_FEATURES)
    labels = np.tile([0, 2], 6)
    beats = np.where(labels == 0, 1.0, 5.0)[:, None] * np.ones((1, wave))
    rr_values = np.repeat(np.arange(12.0)[:, None], rr, axis=1)
    x_a = np.concatenate([beats, np.zeros((12, wave)), rr_values], axis=1)
    x_b = np.concatenate([np.ones((6, wave)), np.zeros((6, wave)), np.zeros((6, rr))], axis=1)
    train = mitdb.BeatDataset(
        x=np.concatenate([x_a, x_b])[..., None].astype(np.float32),
        y=np.concatenate([labels, [0, 0, 0, 0, 0, 3]]).astype(np.int64),
        record=np.asarray(["a"] * 12 + ["b"] * 6),
    )
    without_real_f = train.subset(train.y != 3)

    # execute
    out = with_synthetic_fusion(train, seed=0, per_record=4)

    # assert: the real beats first, unchanged; then four F beats of record "a"
    made = out.subset(np.arange(len(train), len(out)))
    assert len(out) == len(train) + 4 and np.array_equal(out.x[: len(train)], train.x)
    assert set(made.y) == {3} and set(made.record) == {"a"}
    beat, difference, features = made.x[:, :wave, 0], made.x[:, wave : 2 * wave, 0], made.x[:, 2 * wave :, 0]
    share = (beat[:, 0] - 1.0) / 4.0  # the share of the V beat's departure from its N beat
    assert np.all((share >= 0.25) & (share <= 0.75))
    assert np.allclose(difference, beat - 1.0)  # the difference moves with the beat
    assert set(features[:, 0]) <= {2.0, 4.0, 6.0, 8.0, 10.0}  # an N beat's own RR features: the one after a V
    assert with_synthetic_fusion(train, seed=0, per_record=0) is train
    assert with_synthetic_fusion(without_real_f, seed=0, per_record=4) is without_real_f  # never F from blends alone


@pytest.mark.parametrize(("on_time", "hosts"), [(False, {2.0, 5.0, 8.0, 11.0, 14.0}), (True, {3.0, 6.0, 9.0, 12.0})])
def test_synthetic_fusion_hosts_on_time_take_the_n_beat_after_an_n_beat(
    on_time: bool, hosts: set[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    # prepare: record "a" N, V, N, N, V, N, N, ... (RR features the beat's index: 3, 6, 9 and 12 are N beats
    # after N beats); record "b" strict bigeminy (no N beat after an N beat) with its real F beat at the end
    wave, rr = 4, len(RR_FEATURES)
    labels_a, labels_b = np.array([0] + [2, 0, 0] * 4 + [2, 0]), np.array([0, 2] * 5 + [3])
    x = [
        np.concatenate(
            [
                np.where(labels == 0, 1.0, 5.0)[:, None] * np.ones((1, wave)),
                np.zeros((len(labels), wave)),
                np.repeat(np.arange(float(len(labels)))[:, None], rr, axis=1),
            ],
            axis=1,
        )
        for labels in (labels_a, labels_b)
    ]
    train = mitdb.BeatDataset(
        x=np.concatenate(x)[..., None].astype(np.float32),
        y=np.concatenate([labels_a, labels_b]).astype(np.int64),
        record=np.asarray(["a"] * len(labels_a) + ["b"] * len(labels_b)),
    )
    monkeypatch.setattr(beats_1d, "SYNTHETIC_FUSION_ON_TIME", on_time)

    # execute
    made = with_synthetic_fusion(train, seed=0, per_record=4).subset(np.arange(len(train), len(train) + 8))

    # assert: record "a"'s blends sit on the hosts' RR features; "b", with no on-time N beat, keeps the next N beat
    features = made.x[:, 2 * wave, 0]
    assert set(features[made.record == "a"]) <= hosts and len(set(features[made.record == "a"])) > 1
    assert set(features[made.record == "b"]) <= {2.0, 4.0, 6.0, 8.0}
