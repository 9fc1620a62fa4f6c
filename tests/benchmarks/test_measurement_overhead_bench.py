"""The measurement-overhead benchmark on a tiny model, so the script cannot rot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import measurement_overhead as bench


def test_memory_reading_on_and_off_time_the_same_call_side_by_side(onnx_model: Path) -> None:
    pytest.importorskip("onnxruntime")
    batch = np.random.default_rng(0).normal(size=(4, 32, 1)).astype(np.float32)

    figures = bench.on_versus_off("onnxruntime", onnx_model, batch, rounds=2, count=50)

    assert set(figures) == set(bench.readers())
    assert any(method.startswith("RSS thread") for method in figures)  # the fallback is always measured
    assert bench.CONTROL in figures  # and the A/A control beside it
    assert all(on > 0 and off > 0 and ratio > 0 for on, off, ratio in figures.values())
