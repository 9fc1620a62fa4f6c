"""The image-transfer pipeline on a tiny PNG folder written here (image_dataset_from_directory layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgelab.errors import ConfigError
from pipelines.base import TrainConfig
from pipelines.image_transfer import ImageTransferPipeline
from pipelines.registry import get_pipeline


def _image_folder(root: Path, per_class: int = 12) -> Path:
    """Two classes told apart by brightness: dark and bright noisy 40x40 RGB PNGs."""
    image = pytest.importorskip("PIL.Image", reason="writing the PNG fixtures needs Pillow")

    rng = np.random.default_rng(0)
    for label, level in (("dark", 40), ("bright", 210)):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(level, 20, size=(40, 40, 3)), 0, 255).astype(np.uint8)
            image.fromarray(pixels).save(root / label / f"{i:03d}.png")
    return root


def test_a_folder_without_class_subfolders_is_a_config_error(tmp_path: Path) -> None:
    # prepare
    config = TrainConfig(data_dir=tmp_path, epochs=1)

    # execute / assert
    with pytest.raises(ConfigError, match="no class subfolders"):
        ImageTransferPipeline(weights=None).run(config, tmp_path / "out")


def test_unknown_backbone_is_rejected() -> None:
    # execute / assert
    with pytest.raises(ValueError, match="backbone must be"):
        ImageTransferPipeline("alexnet")


@pytest.mark.slow
@pytest.mark.integration
def test_offline_run_falls_back_to_random_init_and_says_so(tmp_path: Path) -> None:
    # prepare: ImageNet weights cannot be downloaded on this machine (only package registries are reachable)
    pytest.importorskip("tensorflow", reason="needs pip install 'edgelab[train]'")
    config = TrainConfig(data_dir=_image_folder(tmp_path / "images"), epochs=2, batch_size=8, test_fraction=0.34)

    # execute
    out = get_pipeline("image-transfer").run(config, tmp_path / "out")

    # assert
    assert out.class_names == ("bright", "dark")  # alphabetical, as image_dataset_from_directory infers them
    assert out.train_beats == 16  # 24 images, 8 held out (34%), halved into validation and test
    assert out.test_beats == 4
    assert any("mobilenetv2" in note and "random init" in note for note in out.notes)
    assert out.onnx_max_abs_diff < 1e-4
    with np.load(out.dataset_path) as data:
        assert data["x_test"].shape == (4, 96, 96, 3)
        assert float(data["x_test"].max()) > 150  # raw 0..255 pixels: preprocessing is inside the model
