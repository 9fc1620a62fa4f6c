"""Transfer learning on a folder of images (one subfolder per class), the thesis workflow.

`image_dataset_from_directory` -> augmentation (flip, rotation) -> frozen ImageNet backbone +
global average pooling + dropout + dense softmax, Adam 1e-4, early stopping on validation loss
(patience 10, best weights restored). ImageNet weights are downloaded by Keras when the network
allows; offline the backbone starts from random weights and the run says so in its notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgelab.errors import ConfigError
from pipelines._deps import require
from pipelines.base import TrainBudget, TrainConfig, TrainOutput
from pipelines.harness import Inputs, fit_and_export
from pipelines.models import BACKBONES, build_backbone_classifier

IMAGE_SIZE = 96
"""Side images are resized to: a size MobileNetV2's ImageNet weights exist for, and CPU-trainable."""
LEARNING_RATE = 1e-4
PATIENCE = 10
ROTATION = 0.1
"""Random rotation range as a fraction of a full turn (+-36 degrees)."""

PREPROCESS_MODULE: dict[str, str] = {
    "mobilenetv2": "mobilenet_v2",
    "resnet50": "resnet",
    "resnet152": "resnet",
    "xception": "xception",
    "vgg16": "vgg16",
}
"""Backbone -> keras.applications module whose preprocess_input scales pixels the way its weights expect."""


@dataclass
class ImageTransferPipeline:
    """Image folder -> train/validation/test -> frozen backbone + new head -> artifacts.

    Augmentation (random flip and rotation) wraps the model during training only: the exported
    model holds the deterministic part (pixel scaling, backbone, head).
    """

    backbone: str = "mobilenetv2"
    weights: str | None = "imagenet"
    name: str = field(init=False)
    description: str = field(init=False)
    budget: TrainBudget = field(init=False, default=TrainBudget(epochs=50, batch_size=32))
    """No figure measured here (it needs the user's images): an epoch cap that leaves early stopping
    (PATIENCE) room to act, at Keras' usual transfer-learning batch."""

    def __post_init__(self) -> None:
        if self.backbone not in PREPROCESS_MODULE:
            raise ValueError(f"backbone must be one of {', '.join(PREPROCESS_MODULE)}, got {self.backbone!r}")
        self.name = "image-transfer" + ("" if self.backbone == "mobilenetv2" else f"-{self.backbone}")
        self.description = (
            f"image folder (one subfolder per class) -> frozen {BACKBONES[self.backbone][0]} + GAP + dropout + dense, "
            "flip/rotation augmentation, Adam 1e-4, early stopping"
        )

    def run(self, config: TrainConfig, out_dir: Path) -> TrainOutput:
        """Train on `config.data_dir`'s class folders and write the artifacts into `out_dir`.

        `test_fraction` of the images is held out (image_dataset_from_directory's validation
        split) and halved into validation (early stopping) and test (reported accuracy).
        """
        notes: list[str] = []
        train_x, train_y, held_x, held_y, class_names = _load_folder(config)
        keras = require("keras")
        layers = keras.layers
        val_idx, test_idx = _halves(held_y, config.seed)
        if not len(val_idx) or not len(test_idx):
            raise ConfigError(f"test_fraction: {len(held_y)} held-out images cannot give both validation and test")
        if config.max_train_beats is not None and len(train_y) > config.max_train_beats:
            train_x, train_y = train_x[: config.max_train_beats], train_y[: config.max_train_beats]
            notes.append(f"training images capped to {len(train_y)}")
        keras.utils.set_random_seed(config.seed)
        model, weights_note = self._model(train_x.shape[1:], len(class_names))
        notes.append(weights_note)
        augment = keras.Sequential(
            [layers.RandomFlip("horizontal", name="flip"), layers.RandomRotation(ROTATION, name="rotate")],
            name="augment",
        )
        inputs = keras.Input(shape=train_x.shape[1:], name="image")
        fitted = keras.Model(inputs, model(augment(inputs)), name="augmented")
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=PATIENCE, restore_best_weights=True)
        return fit_and_export(
            pipeline=self.name,
            model=model,
            train=Inputs(train_x, train_y),
            test=Inputs(held_x[test_idx], held_y[test_idx]),
            class_names=class_names,
            config=config,
            out_dir=out_dir,
            split="random",
            notes=notes,
            learning_rate=LEARNING_RATE,
            cosine_decay=False,
            validation=Inputs(held_x[val_idx], held_y[val_idx]),
            callbacks=[stop],
            fitted=fitted,
        )

    def _model(self, input_shape: tuple[int, ...], num_classes: int) -> tuple[Any, str]:
        """The frozen-backbone classifier, and a note saying where its weights came from."""
        keras = require("keras")
        layers = keras.layers
        module = getattr(keras.applications, PREPROCESS_MODULE[self.backbone])
        # Pixel scaling stays inside the exported model; augmentation wraps it only for training (run()).
        preprocessing = layers.Lambda(module.preprocess_input, name="preprocess")

        def build(weights: str | None) -> Any:
            return build_backbone_classifier(
                input_shape,  # type: ignore[arg-type]
                num_classes,
                self.backbone,
                weights=weights,
                trainable=False,
                preprocessing=preprocessing,
            )

        if self.weights is None:
            return build(None), f"{self.backbone}: random init (weights=None), backbone frozen"
        try:
            return build(self.weights), f"{self.backbone}: {self.weights} weights, backbone frozen"
        except Exception as e:  # keras raises a bare Exception for a failed download
            return build(None), (
                f"{self.backbone}: {self.weights} weights unavailable ({str(e).splitlines()[0][:160]}); "
                "random init instead, backbone frozen: accuracy is not a transfer-learning figure"
            )


def _load_folder(
    config: TrainConfig,
) -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.float32], NDArray[np.int64], tuple[str, ...]]:
    """Training and held-out images (float32 0..255, IMAGE_SIZE square, RGB) with integer labels."""
    folder = Path(config.data_dir)
    if not folder.is_dir() or not any(p.is_dir() for p in folder.iterdir()):
        raise ConfigError(f"data_dir: {folder} has no class subfolders (image_dataset_from_directory layout)")
    keras = require("keras")
    train_ds, held_ds = keras.utils.image_dataset_from_directory(
        str(folder),
        labels="inferred",
        label_mode="int",
        validation_split=config.test_fraction,
        subset="both",
        seed=config.seed,
        image_size=(IMAGE_SIZE, IMAGE_SIZE),
        batch_size=config.batch_size,
    )
    class_names = tuple(str(c) for c in train_ds.class_names)
    train_x, train_y = _to_numpy(train_ds)
    held_x, held_y = _to_numpy(held_ds)
    if not len(train_y) or not len(held_y):
        raise ConfigError(f"data_dir: {len(train_y)} training and {len(held_y)} held-out images in {folder}")
    return train_x, train_y, held_x, held_y, class_names


def _to_numpy(dataset: Any) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    xs, ys = [], []
    for x, y in dataset:
        xs.append(np.asarray(x, dtype=np.float32))
        ys.append(np.asarray(y, dtype=np.int64))
    if not xs:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.float32), np.zeros(0, np.int64)
    return np.concatenate(xs), np.concatenate(ys)


def _halves(y: NDArray[np.int64], seed: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Indices of a seeded random half (validation) and the rest (test)."""
    order = np.random.default_rng(seed).permutation(len(y))
    half = len(y) // 2
    return np.sort(order[:half]), np.sort(order[half:])
