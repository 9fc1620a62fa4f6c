"""Beat images from real records, the paper/AAMI class sets, and tiny end-to-end runs of the image pipelines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines import mitdb
from pipelines.base import TrainConfig, TrainOutput
from pipelines.beats_image import BeatImagePipeline
from pipelines.registry import PIPELINES, get_pipeline


def test_beat_label_maps_symbols_into_both_class_sets() -> None:
    # prepare
    symbols = ["N", "L", "A", "V", "F", "/", "f", "Q", "+", "~"]

    # execute
    aami = [mitdb.beat_label(s, "aami") for s in symbols]
    paper = [mitdb.beat_label(s, "paper") for s in symbols]

    # assert
    assert aami == ["N", "N", "S", "V", "F", "Q", "Q", "Q", None, None]
    assert paper == ["N", "other", "other", "V", "F", "/", "f", "other", None, None]


def test_paced_records_split_by_patient_and_hold_the_paper_classes(mitdb_dir: Path) -> None:
    # execute
    train = mitdb.load_beat_images(mitdb_dir, mitdb.PACED_SPLIT[0], "paper")
    test = mitdb.load_beat_images(mitdb_dir, mitdb.PACED_SPLIT[1], "paper")

    # assert: '/' and 'f' on both sides, no patient on both
    for side in (train, test):
        counts = dict(zip(side.class_names, side.class_counts().tolist(), strict=True))
        assert counts["/"] > 1000
        assert counts["f"] > 50
    assert not set(train.records()) & set(test.records())


def test_load_beat_images_labels_every_annotated_beat(mitdb_dir: Path) -> None:
    # prepare
    import wfdb

    ann = wfdb.rdann(str(mitdb_dir / "119"), "atr")
    expected = np.bincount(
        [mitdb.AAMI_CLASSES.index(mitdb.SYMBOL_TO_AAMI[s]) for s in ann.symbol if s in mitdb.SYMBOL_TO_AAMI],
        minlength=5,
    )

    # execute
    images = mitdb.load_beat_images(mitdb_dir, ["119"])

    # assert
    assert images.x.shape == (int(expected.sum()), 36, 36, 1)
    assert images.x.dtype == np.float32
    np.testing.assert_array_equal(images.class_counts(), expected)
    assert images.class_names == mitdb.AAMI_CLASSES


def test_registered_image_pipelines_are_named_after_model_and_classes() -> None:
    # execute
    names = {name for name in PIPELINES if name.startswith("mitdb-beats-image")}

    # assert
    assert {"mitdb-beats-image", "mitdb-beats-image-paper", "mitdb-beats-image-efficientnetb0"} <= names
    assert all(PIPELINES[name].name == name for name in names)
    with pytest.raises(ValueError, match="model must be"):
        BeatImagePipeline("alexnet")


@pytest.fixture(scope="module")
def trained_paper(mitdb_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainOutput:
    """One epoch of the CNN on the paper classes: 102 (DS1 side) vs 217 (DS2 side), capped."""
    pytest.importorskip("tensorflow", reason="needs pip install 'edgelab[train]'")
    pytest.importorskip("tf2onnx", reason="needs pip install 'edgelab[train]'")
    config = TrainConfig(
        data_dir=mitdb_dir, records=("102", "217"), epochs=1, batch_size=64, max_train_beats=400, calibration_size=32
    )
    return get_pipeline("mitdb-beats-image-paper").run(config, tmp_path_factory.mktemp("beats_image"))


@pytest.mark.slow
@pytest.mark.integration
def test_image_pipeline_trains_on_patient_disjoint_paced_records(trained_paper: TrainOutput) -> None:
    # prepare
    import onnxruntime as ort

    # execute
    with np.load(trained_paper.dataset_path) as data:
        x_test, x_calib = data["x_test"], data["x_calib"]
    session = ort.InferenceSession(str(trained_paper.onnx_path), providers=["CPUExecutionProvider"])
    probs = session.run(None, {"ecg": x_test[:3]})[0]

    # assert
    assert trained_paper.split == "inter-patient"
    assert trained_paper.class_names == mitdb.PAPER_CLASSES
    assert 390 <= trained_paper.train_beats <= 410
    assert trained_paper.test_beats > 2000
    assert any("paced records" in note for note in trained_paper.notes)
    # one training record: validation is a fifth of its beats (none of its patients can go), epoch chosen on it
    assert any(note.startswith("validation: 20% of the training examples (records 102") for note in trained_paper.notes)
    assert any(note.startswith("kept epoch 1 of 1") for note in trained_paper.notes)
    assert x_test.shape[1:] == x_calib.shape[1:] == (36, 36, 1)
    assert probs.shape == (3, 6)
    assert trained_paper.onnx_max_abs_diff < 1e-4
    assert 50_000 <= trained_paper.params <= 150_000


@pytest.mark.slow
@pytest.mark.integration
def test_aami_image_pipeline_holds_out_validation_patients(mitdb_dir: Path, tmp_path: Path) -> None:
    # prepare: 116 is a validation patient, 119 trains, 100 (DS2) tests
    pytest.importorskip("tensorflow", reason="needs pip install 'edgelab[train]'")
    pytest.importorskip("tf2onnx", reason="needs pip install 'edgelab[train]'")
    config = TrainConfig(
        data_dir=mitdb_dir, records=("116", "119", "100"), epochs=1, batch_size=64, max_train_beats=200,
        calibration_size=8,
    )  # fmt: skip

    # execute
    out = get_pipeline("mitdb-beats-image").run(config, tmp_path)

    # assert: 116 scores the epochs and is not trained on; 100 is the test side, whole
    assert out.split == "inter-patient"
    assert any(note.startswith("validation by patient: records 116 (") for note in out.notes)
    assert any(note.startswith("kept epoch 1 of 1") for note in out.notes)
    assert out.train_beats == 200
    assert out.test_beats == len(mitdb.load_beat_images(mitdb_dir, ["100"]))


@pytest.mark.slow
@pytest.mark.integration
def test_backbone_pipeline_repeats_channels_in_graph(mitdb_dir: Path, tmp_path: Path) -> None:
    # prepare
    pytest.importorskip("tensorflow", reason="needs pip install 'edgelab[train]'")
    config = TrainConfig(
        data_dir=mitdb_dir, records=("119", "100"), epochs=1, batch_size=32, max_train_beats=64, calibration_size=8
    )

    # execute
    out = get_pipeline("mitdb-beats-image-mobilenetv2").run(config, tmp_path)

    # assert
    assert out.split == "inter-patient"
    assert out.class_names == mitdb.AAMI_CLASSES
    assert out.params > 2_000_000
    assert out.onnx_max_abs_diff < 1e-4
    assert any("random init" in note for note in out.notes)
    with np.load(out.dataset_path) as data:
        assert data["x_calib"].shape == (8, 36, 36, 1)
