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
