"""The backends benchmark's overhead measurement on a tiny model, so the script cannot rot."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

from coordinator.matrix import TARGETS

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "backends.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_backends", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lab_and_bare_loop_both_time_the_same_runtime_call(onnx_model: Path) -> None:
    bench = _load_script()
    batch = np.random.default_rng(0).normal(size=(4, 32, 1)).astype(np.float32)

    lab_p50, bare_p50 = bench._lab_versus_bare("onnxruntime", onnx_model, batch, rounds=2, count=50)

    assert lab_p50 > 0 and bare_p50 > 0
    assert {key for _, _, key in bench.MATRIX} <= set(TARGETS)  # every key is a target the matrix builds
