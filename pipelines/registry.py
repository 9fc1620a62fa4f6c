"""The training pipelines by name: grep a name here to find where it is registered."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from edgelab.domain import TrainingConfig
from edgelab.errors import NotFound
from pipelines.af import AfPipeline
from pipelines.base import Pipeline
from pipelines.beats_1d import BeatCnn1dPipeline
from pipelines.beats_image import PLAIN_LOSS_BUDGET, BeatImagePipeline
from pipelines.image_transfer import ImageTransferPipeline
from pipelines.rhythm import RhythmPipeline

PIPELINES: dict[str, Pipeline] = {
    "mitdb-beats-1d": BeatCnn1dPipeline(),
    "mitdb-beats-1d-streaming": BeatCnn1dPipeline(streaming=True),
    "mitdb-af-bilstm": AfPipeline("bilstm"),
    "mitdb-af-bilstm-rr": AfPipeline("bilstm-rr"),
    "mitdb-af-squeezenet": AfPipeline("squeezenet"),
    "mitdb-beats-image": BeatImagePipeline(),
    "mitdb-beats-image-paper": BeatImagePipeline(classes="paper", budget=PLAIN_LOSS_BUDGET),
    "mitdb-beats-image-mobilenetv2": BeatImagePipeline("mobilenetv2"),
    "mitdb-beats-image-efficientnetb0": BeatImagePipeline("efficientnetb0"),
    "mitdb-beats-image-efficientnetb0-paper": BeatImagePipeline("efficientnetb0", "paper"),
    "mitdb-beats-image-resnet50": BeatImagePipeline("resnet50"),
    "mitdb-beats-image-densenet201": BeatImagePipeline("densenet201"),
    "rhythm-efficientnetv2-1d": RhythmPipeline("lsad"),
    "rhythm-efficientnetv2-1d-mitdb": RhythmPipeline("mitdb"),
    "image-transfer": ImageTransferPipeline(),
    "image-transfer-resnet50": ImageTransferPipeline("resnet50"),
    "image-transfer-resnet152": ImageTransferPipeline("resnet152"),
    "image-transfer-xception": ImageTransferPipeline("xception"),
    "image-transfer-vgg16": ImageTransferPipeline("vgg16"),
}


def get_pipeline(name: str) -> Pipeline:
    """The pipeline called `name`; NotFound listing the known names otherwise."""
    check_known([name])
    return PIPELINES[name]


def check_known(names: Iterable[str]) -> None:
    """NotFound naming every unknown pipeline among `names` and the known ones."""
    unknown = [name for name in names if name not in PIPELINES]
    if unknown:
        raise NotFound(f"unknown pipeline(s) {', '.join(unknown)}; known: {', '.join(sorted(PIPELINES))}")


def within_budget(name: str, config: TrainingConfig) -> TrainingConfig:
    """`config` for pipeline `name`, its unset (0, "") epochs, batch size and class weights taken from
    the pipeline's budget, so the stored run says what it trained with."""
    budget = get_pipeline(name).budget.override(config.epochs, config.batch_size, config.class_weights)
    weights = "balanced" if budget.class_weights else "none"
    return dataclasses.replace(config, epochs=budget.epochs, batch_size=budget.batch_size, class_weights=weights)
