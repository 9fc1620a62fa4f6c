"""The measurement-overhead benchmark on a tiny model, so the script cannot rot."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "measurement_overhead.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_measurement_overhead", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_memory_reading_on_and_off_time_the_same_call_side_by_side(onnx_model: Path) -> None:
    pytest.importorskip("onnxruntime")
    bench = _load_script()
    batch = np.random.default_rng(0).normal(size=(4, 32, 1)).astype(np.float32)

    figures = bench.on_versus_off("onnxruntime", onnx_model, batch, rounds=2, count=50)

    assert set(figures) == set(bench.readers())
    assert any(method.startswith("RSS thread") for method in figures)  # the fallback is always measured
    assert bench.CONTROL in figures  # and the A/A control beside it
    assert all(on > 0 and off > 0 and ratio > 0 for on, off, ratio in figures.values())
