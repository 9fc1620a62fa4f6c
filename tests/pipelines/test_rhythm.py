"""Rhythm frames and the EfficientNetV2-1D pipelines: LSAD fixtures in the real format, and MIT-BIH records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines import features, mitdb
from pipelines.base import TrainConfig
from pipelines.registry import get_pipeline
from tests.pipelines.physionet_files import write_lsad_record

pytest.importorskip("scipy", reason="needs pip install 'edgelab[train]'")
pytest.importorskip("wfdb", reason="needs pip install 'edgelab[train]'")


def test_rhythm_frames_resample_band_pass_and_standardise() -> None:
    # prepare: 5 s at 500 Hz of a 10 Hz tone (in band) riding on 0.2 Hz wander and 45 Hz noise (out of band)
    t = np.arange(2500) / 500
    tone = np.sin(2 * np.pi * 10 * t)
    x = tone + 3 * np.sin(2 * np.pi * 0.2 * t) + np.sin(2 * np.pi * 45 * t)

    # execute
    frames = features.rhythm_frames(x[None, :], 500)

    # assert
    assert frames.shape == (1, 500, 1)
    assert frames.dtype == np.float32
    clean = tone[::5] / tone[::5].std()
    middle = slice(100, 400)  # away from the filter's edge transients
    assert np.corrcoef(frames[0, middle, 0], clean[middle])[0, 1] > 0.95
    np.testing.assert_allclose([frames.mean(), frames.std()], [0.0, 1.0], atol=1e-5)


def test_rhythm_frames_need_integer_rates() -> None:
    # execute / assert
    with pytest.raises(ValueError, match="integer factors"):
        features.rhythm_frames(np.zeros((1, 1000)), 257.5)


def _lsad_db(root: Path) -> Path:
    """Eight records, two per rhythm group, each a noisy sine at a group-specific rate."""
    rng = np.random.default_rng(0)
    codes = {"426783006": 1.2, "426177001": 0.8, "164889003": 2.0, "427084000": 2.5}
    t = np.arange(5000) / 500
    for i, (code, hz) in enumerate(list(codes.items()) * 2):
        val = (np.sin(2 * np.pi * hz * t) * 800 + rng.normal(0, 50, size=(12, t.size))).astype(np.int16)
        write_lsad_record(root / "WFDBRecords" / "01" / "010", f"JS{i:05d}", val, code)
    return root


@pytest.mark.slow
@pytest.mark.integration
def test_lsad_pipeline_trains_on_held_out_records(tmp_path: Path) -> None:
    # prepare
    pytest.importorskip("tensorflow", reason="needs pip install 'edgelab[train]'")
    config = TrainConfig(data_dir=_lsad_db(tmp_path / "lsad"), epochs=1, batch_size=4, test_fraction=0.25)

    # execute
    out = get_pipeline("rhythm-efficientnetv2-1d").run(config, tmp_path / "out")

    # assert
    assert out.class_names == ("SR", "SBRAD", "AFIB", "GSVT")
    assert out.split == "inter-patient"
    # 6 training records less 2 held out for validation / 2 test records, two 5 s frames each
    assert (out.train_beats, out.test_beats) == (8, 4)
    assert any(note.startswith("validation records (from the training side") for note in out.notes)
    assert out.onnx_max_abs_diff < 1e-4
    with np.load(out.dataset_path) as data:
        assert data["x_test"].shape == (4, 500, 1)


@pytest.mark.slow
@pytest.mark.integration
def test_mitdb_variant_labels_frames_from_rhythm_annotations(mitdb_dir: Path, tmp_path: Path) -> None:
    # prepare: 201 (DS1: SR + AFIB) and 232 (DS2: sinus bradycardia throughout)
    pytest.importorskip("tensorflow", reason="needs pip install 'edgelab[train]'")
    config = TrainConfig(data_dir=mitdb_dir, records=("201", "232"), epochs=1, batch_size=64, max_train_beats=128)

    # execute
    out = get_pipeline("rhythm-efficientnetv2-1d-mitdb").run(config, tmp_path)

    # assert
    assert out.split == "inter-patient"
    (segment,) = mitdb.read_rhythms(mitdb_dir / "232")  # sinus bradycardia from sample 76 to the end
    assert out.test_beats == (segment.end - segment.start) // 1800  # whole 5 s frames at 360 Hz
    assert np.isnan(out.per_class_recall["SR"])
    assert 0.0 <= out.per_class_recall["SBRAD"] <= 1.0
    assert out.onnx_max_abs_diff < 1e-4
    with np.load(out.dataset_path) as data:
        assert data["x_calib"].shape[1:] == (500, 1)
