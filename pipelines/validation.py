"""A validation set carved from the training side by patient, and model selection on it.

Design choices (epochs, class weights, which epoch to keep) are judged here, never on the test
set: the test patients are touched once, by the final evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgelab.domain import AccuracyReport
from edgelab.metrics import accuracy_report, ec57_figures
from pipelines import harness, mitdb
from pipelines._deps import require

VALIDATION_RECORDS: tuple[str, ...] = ("116", "118", "124", "207", "215")
"""DS1 records held out for validation in the inter-patient split: 11,527 beats with 238 SVEB and
546 VEB from five patients (118, 124 and 207 hold SVEB; 116, 207 and 215 VEB), so SVEB and VEB
are judged across patients. The other 17 DS1 records (706 SVEB, 3,242 VEB) train."""
SELECTION_CLASSES: tuple[str, ...] = ("N", "SVEB", "VEB")
PREDICT_BATCH = 1024


def hold_out_beat_validation(
    train: mitdb.BeatDataset, split: str, seed: int, notes: list[str]
) -> tuple[mitdb.BeatDataset, mitdb.BeatDataset]:
    """(training, validation) for the AAMI beat models; validation patients are never training patients.

    With a patient-disjoint split, VALIDATION_RECORDS when the training side holds some of them and
    other records besides; otherwise (a record subset, or the random split) the shared rule,
    `harness.hold_out_validation`. `notes` says which.
    """
    records = train.records()
    chosen = [r for r in VALIDATION_RECORDS if r in records]
    if split == "random" or not chosen or len(chosen) == len(records):
        return harness.hold_out_validation(train, split, seed, notes)
    rest, held = mitdb.split_by_records(train, chosen)
    counts = ", ".join(f"{n} {c}" for c, n in zip(held.class_names, held.class_counts(), strict=True) if n)
    notes.append(f"validation by patient: records {', '.join(chosen)} ({len(held)} beats: {counts}), not trained on")
    return rest, held


def selection_score(report: AccuracyReport) -> float:
    """What model selection maximises: the mean EC57 Se and +P of N, SVEB and VEB (macro F1 for non-AAMI classes).

    Classes without a reference beat in the validation set are left out; a class never predicted
    scores +P 0.
    """
    names = [c.name for c in report.classes]
    try:
        figures = ec57_figures(report.confusion_matrix(), names)
    except ValueError:
        return report.macro_f1
    values: list[float] = []
    for figure in figures:
        if figure.name in SELECTION_CLASSES and figure.tp + figure.fn:
            values += [figure.se, 0.0 if math.isnan(figure.ppv) else figure.ppv]
    return float(np.mean(values)) if values else report.macro_f1


def validation_monitor(
    x: np.ndarray,
    y: np.ndarray,
    class_names: Sequence[str],
    notes: list[str],
    logit_offsets: Sequence[float] | None = None,
) -> Any:
    """A Keras callback that scores every epoch on the validation set (x, y) and writes the scores to `notes`.

    With `logit_offsets` (harness.fit_and_export's, added after training) each epoch is scored as
    the model would classify with them.

    The last epoch is kept, not the best-scoring one: on MIT-BIH's five validation patients the
    per-epoch scores of one run move by about 0.05 from epoch to epoch (the mean over seeds stays
    within 0.62-0.66 for epochs 1-6), so the best epoch of a run is mostly the luckiest, often an
    early one taken at the peak learning rate; the last epoch, at a learning rate near 0, is the
    stable choice. The validation set picks the configuration (beats_1d.WIDTH) instead.
    """
    keras = require("keras")
    offsets = np.zeros(len(class_names)) if logit_offsets is None else np.asarray(logit_offsets, dtype=np.float64)

    class ValidationMonitor(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.scores: list[float] = []

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            probs = self.model.predict(x, batch_size=PREDICT_BATCH, verbose=0)
            logits = np.log(np.maximum(probs, 1e-30)) + offsets  # log-softmax: the logits less one constant per row
            predicted = np.argmax(logits, axis=1)
            self.scores.append(selection_score(accuracy_report(y, predicted.astype(np.int64), class_names)))

        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            shown = ", ".join(f"{s:.3f}" for s in self.scores)
            notes.append(f"validation score (mean EC57 Se and +P of N, SVEB, VEB) per epoch: {shown}; last epoch kept")

    return ValidationMonitor()
