"""Classification metrics shared by host-side evaluation and on-device accuracy, and the latency verdict."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edgelab.domain import AccuracyReport, ClassMetrics, LatencyStats

FASTER = "faster"
SLOWER = "slower"
NO_DIFFERENCE = "no significant difference"
NO_VERDICT = "no verdict"


def accuracy_report(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> AccuracyReport:
    """Accuracy, per-class precision/recall/F1 (sensitivity/PPV for beats) and the confusion matrix."""
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.shape[0]} labels but {y_pred.shape[0]} predictions")
    n = len(class_names)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (y_true.astype(np.int64), y_pred.astype(np.int64)), 1)
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    classes = [
        ClassMetrics(name, int(support[i]), float(precision[i]), float(recall[i]), float(f1[i]))
        for i, name in enumerate(class_names)
    ]
    present = support > 0
    return AccuracyReport(
        samples=int(y_true.size),
        accuracy=float(tp.sum() / max(y_true.size, 1)),
        num_classes=n,
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        classes=classes,
        confusion=[int(v) for v in confusion.ravel()],
    )


COLLAPSE_SHARE = 0.99
COLLAPSE_TRUE_SHARE = 0.9
"""A model that calls at least COLLAPSE_SHARE of the test examples one class, which at most
COLLAPSE_TRUE_SHARE of them are, has collapsed to that class."""


def collapse_warning(report: AccuracyReport) -> str | None:
    """Why the report's model has not learned to tell the classes apart, or None.

    A model that calls (nearly) every example one class still scores that class's share as accuracy
    (every MIT-BIH beat called N: about 0.7-0.9), which reads as a weak model rather than a broken one:
    too few epochs or examples, or inputs on the wrong scale.
    """
    n = report.num_classes
    confusion = np.asarray(report.confusion, dtype=np.int64).reshape(n, n)
    total = int(confusion.sum())
    if not total:
        return None
    top = int(np.argmax(confusion.sum(axis=0)))
    called, truly = confusion[:, top].sum() / total, confusion[top].sum() / total
    if called < COLLAPSE_SHARE or truly > COLLAPSE_TRUE_SHARE:
        return None
    return (
        f"the model called {called:.1%} of the {total} test examples {report.classes[top].name} "
        f"(which {truly:.1%} of them are): it has not learned to tell the classes apart "
        "(too few epochs or training examples, or inputs on the wrong scale)"
    )


EC57_CLASSES: tuple[tuple[str, str], ...] = (("N", "N"), ("S", "SVEB"), ("V", "VEB"), ("F", "F"), ("Q", "Q"))
"""(AAMI class letter in a model's class names, the name EC57 statistics go by)."""

EC57_NOT_FALSE_POSITIVES: dict[str, tuple[str, ...]] = {"V": ("F", "Q"), "S": ("Q",)}
"""Reference beats of these classes labelled V (resp. S) are not counted against VEB (SVEB) +P.

ANSI/AAMI EC57 gross beat-by-beat statistics, as PhysioNet's reference comparator bxb implements
them (wfdb app/bxb.c, G. Moody: VFP = Nv + Sv, SFP = Ns + Vs + Fs): a fusion of ventricular and
normal beat (F) or an unclassifiable beat (Q) labelled VEB is not a VEB false positive, and a Q
beat labelled SVEB is not an SVEB false positive. Sensitivities count every missed beat of the
class. N, F and Q have no EC57 rule; their Se and +P are the plain row and column ratios, as de
Chazal et al. 2004 report them."""


@dataclass(frozen=True)
class Ec57Figures:
    """Beat counts behind one class's sensitivity (Se) and positive predictivity (+P)."""

    name: str
    tp: int
    fn: int
    fp: int

    @property
    def se(self) -> float:
        """TP / (TP + FN); NaN when the class has no reference beat."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def ppv(self) -> float:
        """TP / (TP + FP); NaN when nothing was labelled as the class."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan


def has_aami_classes(class_names: Sequence[str]) -> bool:
    """Whether the classes hold every AAMI letter N, S, V, F, Q (in any order), as ec57_figures needs."""
    return all(letter in class_names for letter, _ in EC57_CLASSES)


def ec57_figures(confusion: Sequence[Sequence[int]] | np.ndarray, class_names: Sequence[str]) -> list[Ec57Figures]:
    """Se and +P of N, SVEB, VEB, F and Q from a confusion matrix (rows: reference, columns: predicted).

    `class_names` must hold the AAMI letters N, S, V, F, Q (in any order); the EC57 rules of
    EC57_NOT_FALSE_POSITIVES apply to SVEB and VEB. ValueError otherwise.
    """
    matrix = np.asarray(confusion, dtype=np.int64)
    names = list(class_names)
    if not has_aami_classes(names) or matrix.shape != (len(names), len(names)):
        raise ValueError(
            f"EC57 needs a square confusion over the AAMI classes N, S, V, F, Q; got classes {names} "
            f"and a {matrix.shape} matrix"
        )
    figures: list[Ec57Figures] = []
    for letter, name in EC57_CLASSES:
        i = names.index(letter)
        excluded = [names.index(c) for c in EC57_NOT_FALSE_POSITIVES.get(letter, ())]
        tp = int(matrix[i, i])
        fp = int(matrix[:, i].sum()) - tp - int(sum(matrix[j, i] for j in excluded))
        figures.append(Ec57Figures(name, tp=tp, fn=int(matrix[i].sum()) - tp, fp=fp))
    return figures


DE_CHAZAL_2004_LABEL = (
    "de Chazal et al. 2004 (published: linear discriminants, MIT-BIH DS1 train / DS2 test, EC57 gross)"
)
DE_CHAZAL_2004: dict[str, tuple[float, float]] = {"N": (0.869, 0.992), "SVEB": (0.759, 0.385), "VEB": (0.777, 0.819)}
"""(Se, +P) per class of de Chazal, O'Dwyer & Reilly, IEEE TBME 51(7) 2004, the inter-patient baseline
(DS1/DS2 as mitdb.DS1/DS2, paced records excluded). SVEB and VEB as in its abstract; N from its
gross results table."""


SVEB_HEAVY_RECORD = "232"
"""1,382 of DS2's 1,837 SVEB beats are this one patient's: SVEB figures are also shown without it."""


def confusions_by_record(
    y_true: np.ndarray, y_pred: np.ndarray, records: np.ndarray, class_names: Sequence[str]
) -> dict[str, list[int]]:
    """Each record's row-major (flat) confusion matrix: what summed_confusion and
    confusion_without_sveb_heavy_record take."""
    return {
        str(r): accuracy_report(y_true[records == r], y_pred[records == r], class_names).confusion
        for r in np.unique(records)
    }


def summed_confusion(per_record: Mapping[str, Sequence[int]], exclude: Sequence[str] = ()) -> list[list[int]]:
    """The sum of row-major (flat, square) confusion matrices keyed by record, leaving out `exclude`, as rows."""
    kept = [np.asarray(m, dtype=np.int64) for record, m in per_record.items() if record not in exclude]
    if not kept:
        raise ValueError(f"no confusion matrix left after excluding {', '.join(exclude) or 'nothing'}")
    total = np.sum(kept, axis=0)
    n = math.isqrt(total.size)
    if n * n != total.size:
        raise ValueError(f"a confusion matrix of {total.size} values is not square")
    return [[int(v) for v in row] for row in total.reshape(n, n)]


def confusion_without_sveb_heavy_record(per_record: Mapping[str, Sequence[int]]) -> list[list[int]] | None:
    """`summed_confusion` of the records other than SVEB_HEAVY_RECORD; None unless that record's beats were
    tested beside other records' (a subset of records without it, or it alone, has nothing to leave out)."""
    if SVEB_HEAVY_RECORD not in per_record or len(per_record) < 2:
        return None
    return summed_confusion(per_record, exclude=[SVEB_HEAVY_RECORD])


def latency_verdict(baseline: LatencyStats, candidate: LatencyStats) -> str:
    """Whether `candidate` is faster or slower than `baseline` by median latency, or not significantly different.

    The rule: the two p50 confidence intervals (order statistics, LatencyStats.ci_level, 95 %) must not
    overlap; "faster" when the candidate's whole interval lies below the baseline's, "slower" when above.
    Non-overlap of two 95 % intervals is conservative (for similar widths it rejects "same median" at
    about the 0.6 % level), so a verdict is a real difference, and a small real one may read "no
    significant difference". Both rest on independent samples (see agent.measure.quantile_ci_ranks).
    NO_VERDICT when either side has no interval (too few samples, or a result stored before intervals).
    """
    a_low, a_high = baseline.p50_ci_low_ms, baseline.p50_ci_high_ms
    b_low, b_high = candidate.p50_ci_low_ms, candidate.p50_ci_high_ms
    if a_low is None or a_high is None or b_low is None or b_high is None:
        return NO_VERDICT
    if b_high < a_low:
        return FASTER
    if b_low > a_high:
        return SLOWER
    return NO_DIFFERENCE
