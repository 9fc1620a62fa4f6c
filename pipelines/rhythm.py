"""Rhythm classification with a HeartKit-style 1D EfficientNetV2 on 5 s frames at 100 Hz.

Two data sources, one registry name each:
- "rhythm-efficientnetv2-1d": LSAD (12-lead, 500 Hz, SNOMED-CT labels) lead II, the four LSAD
  rhythm groups SR / SBRAD / AFIB (with flutter) / GSVT; HeartKit reports 94.4% accuracy.
- "rhythm-efficientnetv2-1d-mitdb": the same groups from MIT-BIH rhythm annotations ((N, (SBR,
  (AFIB/(AFL, (SVTA), which runs on the data present here. MIT-BIH has one bradycardia record
  (232, DS2) and seconds of SVTA, so those classes are thin; the per-class recall says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edgelab.errors import ConfigError
from pipelines import features, loaders, mitdb
from pipelines._deps import require
from pipelines.base import TrainBudget, TrainConfig, TrainOutput
from pipelines.harness import (
    Inputs,
    cap_training,
    check_sides,
    chosen_records,
    fit_and_export,
    hold_out_validation,
    split_rhythm_examples,
)
from pipelines.models import build_efficientnetv2_1d

RHYTHM_CLASSES: tuple[str, ...] = tuple(loaders.LSAD_RHYTHM_GROUPS)
MITDB_RHYTHMS: dict[str, str] = {"(N": "SR", "(SBR": "SBRAD", "(AFIB": "AFIB", "(AFL": "AFIB", "(SVTA": "GSVT"}
"""MIT-BIH rhythm annotation -> LSAD rhythm group; other rhythms (bigeminy, VT, ...) are skipped."""
LSAD_LEAD = "II"
LEARNING_RATE = 1e-3

Source = Literal["lsad", "mitdb"]


@dataclass
class RhythmPipeline:
    """Frames (5 s, 100 Hz, 1-30 Hz, z-scored) -> split -> validation held out of training ->
    EfficientNetV2-1D (epoch chosen on validation) -> artifacts."""

    source: Source
    name: str = field(init=False)
    description: str = field(init=False)
    budget: TrainBudget = field(init=False, default=TrainBudget(epochs=6, batch_size=64))
    """README's MIT-BIH rows were measured with it (and 4,000 training frames; LSAD is not measured here);
    the best validation epoch is kept."""

    def __post_init__(self) -> None:
        self.name = "rhythm-efficientnetv2-1d" + ("-mitdb" if self.source == "mitdb" else "")
        data = "LSAD lead II" if self.source == "lsad" else "MIT-BIH rhythm annotations (MLII)"
        self.description = (
            f"{data}, 5 s frames at 100 Hz (1-30 Hz, z-score) -> {'/'.join(RHYTHM_CLASSES)}, 1D EfficientNetV2"
        )

    def run(self, config: TrainConfig, out_dir: Path) -> TrainOutput:
        """Train on the configured split and write the artifacts into `out_dir`."""
        notes: list[str] = []
        if self.source == "mitdb":

            def load(chosen: Any) -> mitdb.BeatDataset:
                return mitdb.load_rhythm_windows(
                    config.data_dir, chosen, window_s=features.RHYTHM_FRAME_S, classes=MITDB_RHYTHMS
                )

            train, test, split = split_rhythm_examples(config, notes, load, chosen_records(config))
        else:
            train, test, split = _lsad_split(config, notes)
        check_sides(train, test, split)
        train, validation = hold_out_validation(train, split, config.seed, notes)
        train = cap_training(train, config, notes)
        notes.append(f"frames per class {RHYTHM_CLASSES}: train {train.class_counts().tolist()}")
        x_train = features.rhythm_frames(train.x, train.fs)
        x_test = features.rhythm_frames(test.x, test.fs)
        x_validation = features.rhythm_frames(validation.x, validation.fs)
        require("keras").utils.set_random_seed(config.seed)
        return fit_and_export(
            pipeline=self.name,
            model=build_efficientnetv2_1d(x_train.shape[1], len(RHYTHM_CLASSES)),
            train=Inputs(x_train, train.y),
            test=Inputs(x_test, test.y),
            class_names=RHYTHM_CLASSES,
            config=config,
            out_dir=out_dir,
            split=split,
            notes=notes,
            learning_rate=LEARNING_RATE,
            validation=Inputs(x_validation, validation.y),
            select_on_validation=True,
        )


def lsad_frames(records: list[loaders.EcgRecord]) -> mitdb.BeatDataset:
    """Non-overlapping 5 s frames of lead II of each record (a 10 s LSAD record gives two), at the record's rate."""
    if not records:
        raise ConfigError("data_dir: no LSAD record with a single SR/SBRAD/AFIB/GSVT rhythm label")
    fs = records[0].fs
    if any(r.fs != fs for r in records):
        raise ConfigError(f"data_dir: LSAD records at several sampling rates: {sorted({r.fs for r in records})}")
    length = round(features.RHYTHM_FRAME_S * fs)
    xs, ys, names = [], [], []
    for record in records:
        lead = record.lead(LSAD_LEAD)
        n = lead.size // length
        xs.append(lead[: n * length].reshape(n, length))
        ys.extend([RHYTHM_CLASSES.index(record.label)] * n)
        names.extend([record.name] * n)
    return mitdb.BeatDataset(
        x=np.concatenate(xs).astype(np.float32)[..., None],
        y=np.asarray(ys, dtype=np.int64),
        record=np.asarray(names, dtype=np.str_),
        class_names=RHYTHM_CLASSES,
        fs=round(fs),
    )


def _lsad_split(config: TrainConfig, notes: list[str]) -> tuple[mitdb.BeatDataset, mitdb.BeatDataset, str]:
    """LSAD has one record per patient: "inter-patient" holds out whole records, "random" splits frames."""
    frames = lsad_frames(loaders.load_lsad(config.data_dir))
    if config.split == "random":
        notes.append("random split: the two frames of a record can land on both sides")
        return (*mitdb.split_random(frames, config.test_fraction, config.seed), "random")
    records = frames.records()
    if len(records) < 2:
        raise ConfigError("data_dir: an inter-patient split needs at least two labelled LSAD records")
    rng = np.random.default_rng(config.seed)
    n_test = min(len(records) - 1, max(1, round(len(records) * config.test_fraction)))
    held_out = [str(r) for r in rng.permutation(records)[:n_test]]
    notes.append(f"LSAD: {n_test} of {len(records)} records held out (one record per patient)")
    return (*mitdb.split_by_records(frames, held_out), "inter-patient")
