"""The steps every Keras pipeline shares: choose the split, fit with class weights, export, verify, ship the npz.

Pipelines only say how to load examples, how to turn them into model inputs, and which model to
build; `split_examples` and `fit_and_export` do the rest the same way for all of them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgelab.errors import ConfigError
from edgelab.metrics import accuracy_report, collapse_warning, confusions_by_record
from pipelines import mitdb
from pipelines._deps import require
from pipelines.base import TrainConfig, TrainOutput
from pipelines.export import export_savedmodel, savedmodel_to_onnx, verify_onnx
from pipelines.models import add_logit_offsets
from pipelines.training import balanced_class_weights, write_dataset_npz

CLASS_WEIGHT_CAP = 20.0
VERIFY_BATCH = 256
PREDICT_BATCH = 512
VALIDATION_FRACTION = 0.2
"""Share of the training records (patient-disjoint splits) or examples (random split) held out for validation."""
MIN_HOLDING = 0.05
"""A record "holds" a class (for choosing validation records) with at least this share of its training examples."""
PATIENCE = 3
"""Epochs without a better validation macro F1 before training stops (the best epoch's weights are kept)."""

Loader = Callable[[Sequence[str]], mitdb.BeatDataset]
"""Records -> labelled examples (beats or windows), each tagged with its record."""


@dataclass(frozen=True)
class Inputs:
    """Model inputs and labels of one side of a split."""

    x: NDArray[np.float32]
    y: NDArray[np.int64]


def chosen_records(config: TrainConfig, allowed: Sequence[str] | None = None) -> list[str]:
    """The configured records (all present by default, limited to `allowed` when given); ConfigError otherwise."""
    present = mitdb.available_records(config.data_dir)
    if not present:
        raise ConfigError(f"data_dir: no MIT-BIH records (.hea/.dat/.atr) in {config.data_dir}")
    if config.records is None:
        return [r for r in present if allowed is None or r in allowed]
    missing = sorted(set(config.records) - set(present))
    if missing:
        raise ConfigError(f"records: {', '.join(missing)} not found in {config.data_dir}")
    return list(config.records)


def split_examples(
    config: TrainConfig,
    notes: list[str],
    load: Loader,
    records: Sequence[str],
    *,
    ds1: Sequence[str] = mitdb.DS1,
    ds2: Sequence[str] = mitdb.DS2,
) -> tuple[mitdb.BeatDataset, mitdb.BeatDataset, str]:
    """Train/test examples of `records` for `config.split`, and the split actually made.

    Same rules as the mitdb-beats-1d pipeline: "random" splits examples (stratified, leaks
    patients); "inter-patient" puts DS1 records in training and DS2 in test, falls back to
    holding out whole records when the subset covers only one side, and to a random split with
    one record. Every fallback is written to `notes`. `ds1`/`ds2` replace de Chazal's sides
    (e.g. with paced records added when the classes need them).
    """
    if config.split == "random":
        notes.append("random split: examples of one patient are on both sides (optimistic accuracy)")
        return (*mitdb.split_random(load(records), config.test_fraction, config.seed), "random")
    outside = [r for r in records if r not in ds1 and r not in ds2]
    if outside:
        notes.append(f"records outside DS1/DS2 left out: {', '.join(outside)}")
    train_records = [r for r in records if r in ds1]
    test_records = [r for r in records if r in ds2]
    if train_records and test_records:
        if len(train_records) < len(ds1) or len(test_records) < len(ds2):
            notes.append(f"inter-patient on a subset: train {', '.join(train_records)}; test {', '.join(test_records)}")
        return (*mitdb.split_by_records(load(train_records + test_records), test_records), "inter-patient")
    usable = train_records or test_records
    if not usable:
        raise ConfigError(f"records: none of {', '.join(records)} is in DS1 or DS2")
    dataset = load(usable)
    if len(usable) == 1:
        notes.append(f"only record {usable[0]}: random split instead of inter-patient (patient leaks)")
        return (*mitdb.split_random(dataset, config.test_fraction, config.seed), "random")
    rng = np.random.default_rng(config.seed)
    shuffled = [str(r) for r in rng.permutation(usable)]
    held_out = sorted(shuffled[: min(len(usable) - 1, max(1, round(len(usable) * config.test_fraction)))])
    notes.append(f"all chosen records are on one side of DS1/DS2: per-record split, test records {', '.join(held_out)}")
    return (*mitdb.split_by_records(dataset, held_out), "per-record")


def split_rhythm_examples(
    config: TrainConfig, notes: list[str], load: Loader, records: Sequence[str]
) -> tuple[mitdb.BeatDataset, mitdb.BeatDataset, str]:
    """`split_examples` for AF/rhythm windows: DS1/DS2 with AF patients on both sides (mitdb.RHYTHM_DS1/DS2)."""
    train, test, split = split_examples(config, notes, load, records, ds1=mitdb.RHYTHM_DS1, ds2=mitdb.RHYTHM_DS2)
    if split == "inter-patient":
        notes.append(
            f"inter-patient: DS1/DS2 with record {mitdb.AF_BALANCED_MOVE} moved to training (AF on both sides)"
        )
    return train, test, split


def hold_out_validation(
    train: mitdb.BeatDataset, split: str, seed: int, notes: list[str]
) -> tuple[mitdb.BeatDataset, mitdb.BeatDataset]:
    """(training, validation), both from the training side only: the test side is never looked at.

    A patient-disjoint split holds out whole training records (about VALIDATION_FRACTION of
    them), taking for every class one of its records when at least two hold it, so validation
    sees each class and training keeps it; a random split (or a single training record) holds
    out a stratified share of the examples, leaking patients exactly as its test side does.
    """
    records = train.records()
    chosen = [] if split == "random" else _validation_records(train, seed)
    if not chosen:
        if split != "random":
            notes.append(
                f"validation: {VALIDATION_FRACTION:.0%} of the training examples (records {', '.join(records)}: "
                "none can be held out without losing a class from training)"
            )
        rest, validation = mitdb.split_random(train, VALIDATION_FRACTION, seed)
        return rest, validation
    notes.append(f"validation records (from the training side, patient-disjoint): {', '.join(chosen)}")
    rest, validation = mitdb.split_by_records(train, chosen)
    return rest, validation


BEAT_VALIDATION_RECORDS: tuple[str, ...] = ("116", "118", "124", "207", "215")
"""DS1 records the AAMI beat models hold out for validation in the inter-patient split: 11,527 beats
with 238 SVEB and 546 VEB from five patients (118, 124 and 207 hold SVEB; 116, 207 and 215 VEB), so
SVEB and VEB are judged across patients. The other 17 DS1 records (706 SVEB, 3,242 VEB) train."""


def hold_out_beat_validation(
    train: mitdb.BeatDataset, split: str, seed: int, notes: list[str]
) -> tuple[mitdb.BeatDataset, mitdb.BeatDataset]:
    """(training, validation) for AAMI beat models; validation patients are never training patients.

    With a patient-disjoint split, BEAT_VALIDATION_RECORDS when the training side holds some of them
    and other records besides; otherwise (a record subset, or the random split) `hold_out_validation`.
    `notes` says which.
    """
    records = train.records()
    chosen = [r for r in BEAT_VALIDATION_RECORDS if r in records]
    if split == "random" or not chosen or len(chosen) == len(records):
        return hold_out_validation(train, split, seed, notes)
    rest, held = mitdb.split_by_records(train, chosen)
    counts = ", ".join(f"{n} {c}" for c, n in zip(held.class_names, held.class_counts(), strict=True) if n)
    notes.append(f"validation by patient: records {', '.join(chosen)} ({len(held)} beats: {counts}), not trained on")
    return rest, held


def _validation_records(train: mitdb.BeatDataset, seed: int) -> list[str]:
    """About VALIDATION_FRACTION of the training records, none when no record can go.

    First, for each class (rarest first), one record holding at least MIN_HOLDING of its examples,
    then other records; a record goes only while training keeps at least half of every class and
    no class loses more than VALIDATION_FRACTION of its holders (one at least): two of the three
    AF patients stay in training, and record 208 (nine tenths of DS1's F beats) is never taken.
    """
    records = train.records()
    rng = np.random.default_rng(seed)
    totals = np.bincount(train.y, minlength=len(train.class_names))
    counts = {r: np.bincount(train.y[train.record == r], minlength=len(totals)) for r in records}
    holders = {c: sum(counts[r][c] >= MIN_HOLDING * totals[c] for r in records) for c in np.flatnonzero(totals)}
    chosen: list[str] = []

    def can_go(candidate: str) -> bool:
        held = np.sum([counts[r] for r in [*chosen, candidate]], axis=0)
        return all(
            held[c] <= totals[c] / 2
            and sum(counts[r][c] >= MIN_HOLDING * totals[c] for r in [*chosen, candidate])
            <= max(1, math.floor(holders[c] * VALIDATION_FRACTION))
            for c in holders
        )

    for c in sorted(holders, key=lambda c: int(totals[c])):  # rarest first
        if any(counts[r][c] for r in chosen):
            continue
        candidates = [r for r in rng.permutation(records).tolist() if counts[r][c] >= MIN_HOLDING * totals[c]]
        picked = next((r for r in candidates if r not in chosen and can_go(r)), None)
        if picked is not None:
            chosen.append(picked)
    wanted = max(1, round(len(records) * VALIDATION_FRACTION))
    for r in rng.permutation(records).tolist():
        if len(chosen) >= wanted:
            break
        if r not in chosen and can_go(r):
            chosen.append(r)
    return sorted(str(r) for r in chosen)


def best_on_validation(
    keras_module: Any, validation: Inputs, class_names: Sequence[str], patience: int, min_epochs: int = 1
) -> Any:
    """A callback of `keras_module` (Keras 3 or tf_keras) that scores the validation macro F1 after
    each epoch, stops after `patience` epochs without improvement (never before `min_epochs`) and
    leaves the best epoch's weights in the model. Macro F1, not validation loss: the loss is
    unweighted and the rare classes (S, AF) barely move it. `best_epoch` (1-based) and
    `epochs_run` say what happened."""

    class BestOnValidation(keras_module.callbacks.Callback):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.best_score = -1.0
            self.best_epoch = 0
            self.epochs_run = 0
            self.best_weights: list[Any] | None = None

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.epochs_run = epoch + 1
            scores = self.model.predict(validation.x, batch_size=PREDICT_BATCH, verbose=0)
            score = accuracy_report(validation.y, np.argmax(scores, axis=1), class_names).macro_f1
            if score > self.best_score:
                self.best_score, self.best_epoch = score, epoch + 1
                self.best_weights = self.model.get_weights()
            elif epoch + 1 - self.best_epoch >= patience and epoch + 1 >= min_epochs:
                self.model.stop_training = True

        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    return BestOnValidation()


def cap_training(train: mitdb.BeatDataset, config: TrainConfig, notes: list[str]) -> mitdb.BeatDataset:
    """Stratified subsample to `config.max_train_beats`, said in `notes`."""
    if config.max_train_beats is None or len(train) <= config.max_train_beats:
        return train
    capped = mitdb.stratified_sample(train, config.max_train_beats, config.seed)
    notes.append(f"training examples subsampled (stratified) to {len(capped)}")
    return capped


def check_sides(train: mitdb.BeatDataset, test: mitdb.BeatDataset, split: str) -> None:
    """ConfigError when a side of the split is empty (e.g. records without the wanted rhythm)."""
    if not len(train) or not len(test):
        raise ConfigError(f"records: the {split} split left {len(train)} training and {len(test)} test examples")


def fit(
    model: Any,
    train: Inputs,
    class_names: Sequence[str],
    config: TrainConfig,
    notes: list[str],
    *,
    learning_rate: float = 1e-3,
    cosine_decay: bool = True,
    clipnorm: float | None = None,
    validation: Inputs | None = None,
    callbacks: Sequence[Any] = (),
    fitted: Any = None,
    select_on_validation: bool = False,
) -> float:
    """Compile and train `model` (or `fitted`, which wraps it, or each of a list of them in turn) as
    `fit_and_export` says; the seconds it took."""
    keras = require("keras")
    steps = config.epochs * math.ceil(len(train.y) / config.batch_size)
    if fitted is None:
        trained_models = [model]
    elif isinstance(fitted, (list, tuple)):
        trained_models = list(fitted)
    else:
        trained_models = [fitted]
    selector = None
    if validation is not None and select_on_validation:
        if len(trained_models) > 1:
            raise ValueError("select_on_validation keeps one model's best epoch; got several to train")
        # Not before half the epochs: the BiLSTM at 1e-2 scores its best early epoch, then dips for a
        # few epochs before it climbs past it (random split: best at 1, stopped at 4 with patience alone).
        selector = best_on_validation(keras, validation, class_names, PATIENCE, math.ceil(config.epochs / 2))
        callbacks = [*callbacks, selector]
    rate: Any = keras.optimizers.schedules.CosineDecay(learning_rate, steps) if cosine_decay else learning_rate
    class_weight = balanced_class_weights(train.y, len(class_names), CLASS_WEIGHT_CAP) if config.class_weights else None
    started = time.perf_counter()
    for trained in trained_models:  # each with its own optimizer; a schedule is a pure function of the step
        trained.compile(
            optimizer=keras.optimizers.Adam(rate, clipnorm=clipnorm),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        trained.fit(
            train.x,
            train.y,
            epochs=config.epochs,
            batch_size=config.batch_size,
            class_weight=class_weight,
            validation_data=None if validation is None or selector else (validation.x, validation.y),
            callbacks=list(callbacks),
            shuffle=True,
            verbose=0,
        )
    train_seconds = time.perf_counter() - started
    if selector is not None:
        notes.append(
            f"kept epoch {selector.best_epoch} of {selector.epochs_run} (validation macro F1 {selector.best_score:.3f})"
        )
    return train_seconds


def fit_and_export(
    *,
    pipeline: str,
    model: Any,
    train: Inputs,
    test: Inputs,
    class_names: Sequence[str],
    config: TrainConfig,
    out_dir: Path,
    split: str,
    notes: list[str],
    learning_rate: float = 1e-3,
    cosine_decay: bool = True,
    clipnorm: float | None = None,
    validation: Inputs | None = None,
    callbacks: Sequence[Any] = (),
    fitted: Any = None,
    test_records: NDArray[np.str_] | None = None,
    select_on_validation: bool = False,
    logit_offsets: Sequence[float] | None = None,
) -> TrainOutput:
    """Compile (Adam, optionally cosine-decayed, gradients optionally clipped per weight), fit (with
    capped balanced class weights unless the config turns them off), then SavedModel -> ONNX, verify
    ONNX Runtime against Keras, and write the npz with calibration inputs.

    `validation` (examples from the training side, see `hold_out_validation`) is scored after each
    epoch (for `callbacks` watching val_loss); with `select_on_validation` training keeps the epoch
    with the best validation macro F1 and stops PATIENCE epochs after it, so `config.epochs` is the
    most it trains. Without, it trains `config.epochs` and keeps the last.

    `fitted`, when given, is a model wrapping `model` (random augmentation in front) that is
    trained instead; `model` shares its weights and is what gets evaluated and exported, so no
    random op (which ONNX cannot express) reaches the artifact. A list of them (e.g. one per member
    of an ensemble, `models.ensemble_members`) is trained one after the other, each from its own
    optimizer and learning-rate schedule. `test_records` (the record of each
    test example) adds a confusion matrix per record, so figures without a record can be computed.
    `logit_offsets` (one per class) are added to the trained classifier's logits
    (`models.add_logit_offsets`) before anything is evaluated or exported, so every runtime sees them.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_seconds = fit(
        model,
        train,
        class_names,
        config,
        notes,
        learning_rate=learning_rate,
        cosine_decay=cosine_decay,
        clipnorm=clipnorm,
        validation=validation,
        callbacks=callbacks,
        fitted=fitted,
        select_on_validation=select_on_validation,
    )
    if logit_offsets is not None:
        add_logit_offsets(model, logit_offsets)
        shown = ", ".join(f"{c} {o:+.1f}" for c, o in zip(class_names, logit_offsets, strict=True) if o)
        notes.append(f"logit offsets added to the classifier's bias after training: {shown or 'none'}")

    y_pred = np.argmax(model.predict(test.x, batch_size=PREDICT_BATCH, verbose=0), axis=1).astype(np.int64)
    evaluation = accuracy_report(test.y, y_pred, class_names)
    collapsed = collapse_warning(evaluation)
    if collapsed is not None:
        notes.append(f"warning: {collapsed}")
    record_confusions = {} if test_records is None else confusions_by_record(test.y, y_pred, test_records, class_names)
    savedmodel_path = export_savedmodel(model, out_dir / "savedmodel")
    onnx_path = savedmodel_to_onnx(savedmodel_path, out_dir / "model.onnx")
    verify_idx = np.linspace(0, len(test.y) - 1, min(VERIFY_BATCH, len(test.y))).astype(np.int64)
    onnx_diff = verify_onnx(onnx_path, model, test.x[verify_idx])

    rng = np.random.default_rng(config.seed)
    calib_idx = np.sort(rng.choice(len(train.y), size=min(config.calibration_size, len(train.y)), replace=False))
    dataset_path = write_dataset_npz(out_dir / "dataset.npz", test.x, test.y, class_names, train.x[calib_idx])
    return TrainOutput(
        pipeline=pipeline,
        onnx_path=onnx_path,
        savedmodel_path=savedmodel_path,
        dataset_path=dataset_path,
        host_accuracy=evaluation.accuracy,
        onnx_max_abs_diff=onnx_diff,
        class_names=tuple(class_names),
        train_beats=len(train.y),
        test_beats=len(test.y),
        split=split,
        train_seconds=train_seconds,
        notes=notes,
        params=int(model.count_params()),
        evaluation=evaluation,
        seed=config.seed,
        epochs=config.epochs,
        record_confusions=record_confusions,
        logit_offsets=tuple(float(o) for o in logit_offsets or ()),
    )
