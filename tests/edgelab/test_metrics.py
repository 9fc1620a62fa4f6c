import math

import numpy as np
import pytest

from edgelab.domain import LatencyStats
from edgelab.metrics import accuracy_report, collapse_warning, ec57_figures, summed_confusion

AAMI = ["N", "S", "V", "F", "Q"]
# rows: reference N, S, V, F, Q; columns: predicted N, S, V, F, Q
CONFUSION = [
    [900, 30, 20, 40, 10],
    [5, 60, 3, 2, 0],
    [4, 1, 80, 5, 0],
    [6, 2, 9, 3, 0],
    [1, 4, 7, 0, 2],
]


def test_per_class_metrics_from_known_confusion() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 0])

    report = accuracy_report(y_true, y_pred, ["N", "V", "F"])

    assert report.accuracy == pytest.approx(4 / 6)
    assert report.confusion_matrix() == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    n, v, f = report.classes
    assert (n.precision, n.recall) == pytest.approx((2 / 3, 2 / 3))
    assert (v.precision, v.recall) == pytest.approx((2 / 3, 1.0))
    assert (f.support, f.recall, f.f1) == (1, 0.0, 0.0)


def test_a_model_calling_nearly_every_example_one_class_is_flagged() -> None:
    # prepare: 1,000 test beats, 70% N; models that call every beat F, every beat N, and N for 99.5%
    y = np.repeat([0, 1, 2, 3], [700, 150, 100, 50])
    every_f = accuracy_report(y, np.full(1000, 3), AAMI)
    every_n = accuracy_report(y, np.zeros(1000, np.int64), AAMI)
    nearly_n = accuracy_report(y, np.where(np.arange(1000) < 995, 0, 2), AAMI)

    # execute
    warnings = [collapse_warning(r) for r in (every_f, every_n, nearly_n)]

    # assert: each named with the class it calls and how many examples are that class
    assert warnings[0] is not None and "100.0% of the 1000 test examples F (which 5.0% of them are)" in warnings[0]
    assert warnings[1] is not None and "examples N (which 70.0% of them are)" in warnings[1]
    assert warnings[2] is not None and "99.5% of the 1000 test examples N" in warnings[2]


def test_a_model_that_separates_the_classes_or_a_one_class_test_side_is_not_flagged() -> None:
    # prepare: a model right on 99% of a 95%-N test side, one calling all of it N, and no beats at all
    y = np.repeat([0, 1], [950, 50])
    reports = [
        accuracy_report(y, np.where(np.arange(1000) < 990, y, 2), AAMI),
        accuracy_report(y, np.zeros(1000, np.int64), AAMI),
        accuracy_report(np.zeros(0, np.int64), np.zeros(0, np.int64), AAMI),
    ]

    # execute / assert: calling N for every beat where 95% are N cannot be told from a good model
    assert [collapse_warning(r) for r in reports] == [None, None, None]


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="labels"):
        accuracy_report(np.zeros(3, int), np.zeros(2, int), ["a"])


def test_ec57_figures_from_a_hand_computed_confusion() -> None:
    # execute
    figures = {f.name: f for f in ec57_figures(CONFUSION, AAMI)}

    # assert: N, F and Q are plain row / column ratios
    assert list(figures) == ["N", "SVEB", "VEB", "F", "Q"]
    assert (figures["N"].tp, figures["N"].fn, figures["N"].fp) == (900, 100, 16)
    assert figures["N"].se == pytest.approx(0.9) and figures["N"].ppv == pytest.approx(900 / 916)
    assert (figures["F"].tp, figures["F"].fn, figures["F"].fp) == (3, 17, 47)
    assert (figures["Q"].tp, figures["Q"].fn, figures["Q"].fp) == (2, 12, 10)
    # SVEB: every missed S beat counts; predicted S from N, V and F are false positives, from Q not (bxb: SFP = Ns + Vs + Fs)
    assert (figures["SVEB"].tp, figures["SVEB"].fn, figures["SVEB"].fp) == (60, 10, 30 + 1 + 2)
    assert figures["SVEB"].se == pytest.approx(60 / 70) and figures["SVEB"].ppv == pytest.approx(60 / 93)


def test_ec57_does_not_count_fusion_or_unknown_beats_labelled_veb_against_veb_ppv() -> None:
    # prepare: the same matrix with every F and Q beat labelled V
    all_v = [row[:] for row in CONFUSION]
    for row in (3, 4):
        all_v[row] = [0, 0, sum(CONFUSION[row]), 0, 0]

    # execute
    before = {f.name: f for f in ec57_figures(CONFUSION, AAMI)}["VEB"]
    after = {f.name: f for f in ec57_figures(all_v, AAMI)}["VEB"]

    # assert: VFP = Nv + Sv only; the F and Q beats called V change neither +P nor Se
    assert (before.tp, before.fn, before.fp) == (80, 10, 20 + 3)
    assert (after.tp, after.fn, after.fp) == (80, 10, 23)
    assert after.ppv == pytest.approx(80 / 103)


def test_ec57_finds_the_classes_by_name_and_refuses_other_class_sets() -> None:
    # prepare: the same beats with the classes listed in another order
    order = [2, 0, 4, 1, 3]
    names = [AAMI[i] for i in order]
    shuffled = [[CONFUSION[r][c] for c in order] for r in order]

    # execute
    figures = ec57_figures(shuffled, names)

    # assert
    assert figures == ec57_figures(CONFUSION, AAMI)
    with pytest.raises(ValueError, match="AAMI classes"):
        ec57_figures([[1, 0], [0, 1]], ["N", "AF"])
    with pytest.raises(ValueError, match="AAMI classes"):
        ec57_figures([[1, 0], [0, 1]], AAMI)


def test_sveb_without_one_record_sums_the_other_records_confusions() -> None:
    # prepare: record 232 holds most SVEB beats, all labelled S; record 100 has few, mostly missed
    n = len(AAMI)
    rec_232 = [[0] * n for _ in range(n)]
    rec_232[0][0], rec_232[1][1], rec_232[0][1] = 300, 90, 10
    rec_100 = [[0] * n for _ in range(n)]
    rec_100[0][0], rec_100[1][0], rec_100[1][1] = 500, 8, 2
    per_record = {"232": [v for row in rec_232 for v in row], "100": [v for row in rec_100 for v in row]}

    # execute
    everything = {f.name: f for f in ec57_figures(summed_confusion(per_record), AAMI)}["SVEB"]
    without = {f.name: f for f in ec57_figures(summed_confusion(per_record, exclude=["232"]), AAMI)}["SVEB"]

    # assert
    assert everything.se == pytest.approx(92 / 100) and everything.ppv == pytest.approx(92 / 102)
    assert without.se == pytest.approx(2 / 10) and without.ppv == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no confusion matrix left"):
        summed_confusion(per_record, exclude=["232", "100"])


def test_ec57_figures_are_nan_without_reference_beats_or_predictions() -> None:
    # prepare: no Q beat and nothing labelled F
    n = len(AAMI)
    matrix = [[0] * n for _ in range(n)]
    matrix[0][0], matrix[3][0] = 10, 2

    # execute
    figures = {f.name: f for f in ec57_figures(matrix, AAMI)}

    # assert
    assert math.isnan(figures["Q"].se) and math.isnan(figures["Q"].ppv)
    assert figures["F"].se == 0.0 and math.isnan(figures["F"].ppv)


def _stats(median_ms: float, n: int, seed: int) -> LatencyStats:
    from agent.measure import latency_stats

    samples = np.random.default_rng(seed).lognormal(np.log(median_ms), 0.2, size=n)
    return latency_stats(
        samples,
        batch_size=1,
        timed_duration_s=1.0,
        first_inference_ms=1.0,
        warmup_s=0.1,
        warmup_iterations=1,
        scope="e",
    )


def test_latency_verdict_from_non_overlapping_p50_intervals() -> None:
    from edgelab.metrics import FASTER, NO_DIFFERENCE, NO_VERDICT, SLOWER, latency_verdict

    base, quicker = _stats(1.0, 1000, 1), _stats(0.9, 1000, 2)
    assert latency_verdict(base, quicker) == FASTER
    assert latency_verdict(quicker, base) == SLOWER
    assert latency_verdict(base, _stats(1.0, 1000, 3)) == NO_DIFFERENCE
    few = _stats(0.5, 5, 4)  # five samples give no 95 % interval for the median
    assert few.p50_ci_low_ms is None
    assert latency_verdict(base, few) == NO_VERDICT


def test_latency_verdict_rarely_calls_a_difference_between_identical_distributions() -> None:
    """False alarms: 300 pairs drawn from one distribution (fixed seeds); non-overlap of two 95 % intervals
    rejects at about 0.6 %, so at most 3 % of verdicts (a bound far from the expected ~2 pairs) may differ."""
    from edgelab.metrics import NO_DIFFERENCE, latency_verdict

    verdicts = [latency_verdict(_stats(2.0, 300, 2 * i), _stats(2.0, 300, 2 * i + 1)) for i in range(300)]
    assert sum(v != NO_DIFFERENCE for v in verdicts) <= 9
