"""The compression benchmark's tables and verdicts on stored runs (the training itself is the pipelines' tests')."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.compression_accuracy import artifacts_of, print_tables


def test_each_compression_converts_to_its_precision() -> None:
    assert artifacts_of("none") == [("none (FP32 baseline)", "fp32"), ("none + PTQ INT8", "int8")]
    assert artifacts_of("prune@0.6") == [("prune@0.6", "fp32"), ("prune@0.6 + PTQ INT8", "int8")]
    assert artifacts_of("prune@0.6+qat") == [("prune@0.6+qat", "int8")]


def _row(seed: int, compression: str, accuracy: float, size: int = 100_000) -> dict[str, Any]:
    classes = [{"name": "N", "support": 90, "precision": 0.9, "recall": accuracy}]
    classes.append({"name": "S", "support": 0, "precision": 0.0, "recall": 0.0})
    return {
        "split": "random",
        "seed": seed,
        "compression": compression,
        "tflite": "fp32",
        "size_bytes": size,
        "gzip_bytes": size // 2,
        "sparsity": 0.6 if "prune" in compression else 0.0,
        "evaluation": {"accuracy": accuracy, "macro_f1": accuracy - 0.05, "classes": classes},
        "train": 1000,
        "validation": 200,
        "test": 500,
        "epochs": 10,
        "finetune_epochs": 4,
    }


def test_table_compares_each_seed_with_its_own_baseline_and_gives_the_verdicts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # prepare: multistage 1-3 points below one-shot on three seeds; one-shot too big for the size target
    rows = []
    for seed, base in enumerate((0.92, 0.94, 0.96)):
        rows += [_row(seed, "none (FP32 baseline)", base), _row(seed, "prune@0.6", base - 0.01, 2_000_000)]
        rows.append(_row(seed, "prune-multistage@0.6", base - 0.02 - 0.01 * seed))

    # execute
    print_tables(rows)

    # assert
    printed = capsys.readouterr().out.splitlines()
    (one_shot,) = [line for line in printed if line.startswith("| prune@0.6 |")]
    assert "| 0.930±0.020 | -1.0±0.0 pt |" in one_shot  # each seed against its own FP32 model
    assert one_shot.endswith("| N 0.93±0.02 / 0.90±0.00 |")  # S has no test beats: left out
    (accuracy,) = [line for line in printed if line.startswith("multistage - one-shot at 60%, accuracy")]
    assert "-2.0±1.0 points over seeds [0, 1, 2]" in accuracy and "no significant difference" in accuracy
    assert "under 1 MB at >= 89.5% on every seed: prune-multistage@0.6" in printed


def _aami_row(seed: int, compression: str, per_record: dict[str, list[list[int]]]) -> dict[str, Any]:
    """A stored run on the AAMI classes whose test records had these confusion matrices."""
    import dataclasses

    import numpy as np

    from edgelab.metrics import accuracy_report

    confusion = np.sum(list(per_record.values()), axis=0)
    y_true = [t for t, row in enumerate(confusion) for p, n in enumerate(row) for _ in range(n)]
    y_pred = [p for row in confusion for p, n in enumerate(row) for _ in range(n)]
    report = accuracy_report(np.array(y_true), np.array(y_pred), ["N", "S", "V", "F", "Q"])
    return {
        **_row(seed, compression, report.accuracy),
        "model": "mitdb-beats-1d",
        "split": "inter-patient",
        "evaluation": dataclasses.asdict(report),
        "record_confusions": {r: np.ravel(c).tolist() for r, c in per_record.items()},
    }


def test_aami_runs_get_an_ec57_table_beside_de_chazal(capsys: pytest.CaptureFixture[str]) -> None:
    # prepare: record 100 with N, S, V and 10 F beats labelled V (EC57 does not count them against VEB +P);
    # record 232 with 10 SVEB beats, all found
    record_100 = [[90, 5, 5, 0, 0], [2, 8, 0, 0, 0], [0, 0, 20, 0, 0], [0, 0, 10, 0, 0], [0, 0, 0, 0, 0]]
    record_232 = [[10, 0, 0, 0, 0], [0, 10, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    per_record = {"100": record_100, "232": record_232}
    rows = [_aami_row(seed, label, per_record) for seed in (0, 1) for label in ("none (FP32 baseline)", "qat")]

    # execute
    print_tables(rows)

    # assert
    printed = capsys.readouterr().out.splitlines()
    assert any(line.startswith("mitdb-beats-1d (the shipped model: 3 CNNs") for line in printed)
    assert any(line.startswith("EC57 gross Se / +P; de Chazal et al. 2004") for line in printed)
    (qat,) = [line for line in printed if line.startswith("| qat | fp32 | N ")]
    # both records: N 100/110 and 100/102, SVEB 18/20 and 18/23, VEB 20/20 and 20/25 (F labelled V not counted);
    # without 232: SVEB 8/10 and 8/13
    assert qat == (
        "| qat | fp32 | N 0.91±0.00 / 0.98±0.00 | SVEB 0.90±0.00 / 0.78±0.00 | VEB 1.00±0.00 / 0.80±0.00 | "
        "SVEB 0.80±0.00 / 0.62±0.00; VEB 1.00±0.00 / 0.80±0.00 |"
    )


def test_runs_stored_before_the_model_option_are_the_window_cnn(capsys: pytest.CaptureFixture[str]) -> None:
    print_tables([_row(0, "none (FP32 baseline)", 0.9)])

    assert "\ncnn-1d (the 1D CNN on the beat window alone" in capsys.readouterr().out


def test_joined_runs_count_each_seeds_artifact_once_and_report_baselines_that_differ(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # prepare: two runs that each trained seeds 0 and 1's baseline; seed 1's retrained to a different figure
    first = [_row(0, "none (FP32 baseline)", 0.90), _row(1, "none (FP32 baseline)", 0.92), _row(0, "qat", 0.93)]
    second = [_row(0, "none (FP32 baseline)", 0.90), _row(1, "none (FP32 baseline)", 0.95), _row(1, "qat", 0.96)]

    # execute
    print_tables(first + second)

    # assert: the baseline row is over two seeds (not four), and the differing retrain is named
    printed = capsys.readouterr().out.splitlines()
    (baseline,) = [line for line in printed if line.startswith("| none (FP32 baseline) |")]
    assert "| 0.910±0.014 | 0.0±0.0 pt |" in baseline
    (warning,) = [line for line in printed if line.startswith("warning:")]
    assert "cnn-1d random 1 none (FP32 baseline) measured twice" in warning and "0.9200 and 0.9500" in warning


@pytest.mark.parametrize(
    ("splits", "verdict"),
    [(1, "0.03 after Bonferroni over 2 tests: multistage better"), (2, "0.07 after Bonferroni over 4 tests: no sig")],
)
def test_multistage_verdict_is_corrected_for_every_comparison_printed(
    splits: int, verdict: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # prepare: multistage 1.0, 1.3, 1.6 points above one-shot (paired p = 0.017 on each metric), on one split
    # (2 comparisons: 0.035 corrected) or the same runs on two (4 comparisons: 0.07)
    rows = []
    for split in ("random", "inter-patient")[:splits]:
        for seed, gain in enumerate((0.010, 0.013, 0.016)):
            for compression, accuracy in (("prune@0.6", 0.90), ("prune-multistage@0.6", 0.90 + gain)):
                rows.append({**_row(seed, compression, accuracy), "split": split})

    # execute
    print_tables(rows)

    # assert
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("multistage - one-shot")]
    assert len(lines) == 2 * splits
    for line in lines:
        assert "1.3±0.3 points over seeds [0, 1, 2] (paired t-test p = 0.02, " + verdict in line
