"""ONNX Runtime backend: FP32 sessions and INT8 engines quantized on the device from the shipped calibration set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agent.backends import BuildRequest
from agent.backends.onnxruntime import OnnxRuntimeBackend
from agent.backends.qdq import needs_reduce_range, quantized_ops
from edgelab.domain import Precision
from tests.factories import write_linear_onnx


def test_int8_engine_is_quantized_cached_and_close_to_fp32(tmp_path: Path) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx", length=32, classes=3)
    rng = np.random.default_rng(1)
    calibration = rng.normal(size=(64, 32, 1)).astype(np.float32)
    x = rng.normal(size=(16, 32, 1)).astype(np.float32)
    backend = OnnxRuntimeBackend()

    def build(precision: Precision) -> object:
        request = BuildRequest(
            precision=precision, batch_sizes=[16], calibration=calibration, cache_dir=tmp_path / "c", model_sha256="m"
        )
        return backend.load(model, request)

    fp32 = build(Precision.FP32)
    first = build(Precision.INT8)
    second = build(Precision.INT8)

    assert first.details["engine_cache"] == "miss" and second.details["engine_cache"] == "hit"  # type: ignore[attr-defined]
    assert len(list((tmp_path / "c").glob("*.int8.onnx"))) == 1
    reference = fp32.infer(x)  # type: ignore[attr-defined]
    quantized = first.infer(x)  # type: ignore[attr-defined]
    assert np.abs(quantized - reference).max() < 0.1
    assert (quantized.argmax(1) == reference.argmax(1)).mean() >= 0.8
    agreement = float(first.details["int8_vs_fp32_argmax_agreement_on_calibration_set"])  # type: ignore[attr-defined]
    assert 0.8 <= agreement <= 1.0


def test_int8_without_calibration_set_is_a_clear_error(tmp_path: Path) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx")

    with pytest.raises(ValueError, match="calibration set"):
        OnnxRuntimeBackend().load(model, BuildRequest(precision=Precision.INT8, batch_sizes=[1], cache_dir=tmp_path))


def test_probe_offers_int8_when_the_quantizer_can_run() -> None:
    info = OnnxRuntimeBackend().probe()

    assert info.available and info.precisions == [Precision.FP32, Precision.INT8]


@pytest.mark.parametrize(
    ("machine", "flags", "expected"),
    [
        ("x86_64", "fpu sse2 avx2 fma", True),  # AVX2 only: int8 dot products can saturate
        ("x86_64", "fpu avx2 avx512f avx512_vnni", False),
        ("x86_64", "fpu avx2 avx_vnni", False),
        ("aarch64", "fp asimd asimddp", False),  # Jetson / Raspberry Pi
    ],
)
def test_reduce_range_only_where_x86_lacks_vnni(tmp_path: Path, machine: str, flags: str, expected: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")

    assert needs_reduce_range(machine, cpuinfo) is expected


def _int8(tmp_path: Path, model: Path, calibration: np.ndarray) -> dict[str, str]:
    request = BuildRequest(
        precision=Precision.INT8, batch_sizes=[4], calibration=calibration, cache_dir=tmp_path / "c", model_sha256="m"
    )
    return OnnxRuntimeBackend().load(model, request).details


def test_another_calibration_set_builds_its_own_int8_engine(tmp_path: Path) -> None:
    """Keyed on model + ORT version + bit width only, the 2nd calibration set reused the 1st one's scales."""
    model = write_linear_onnx(tmp_path / "m.onnx", length=32, classes=3)
    rng = np.random.default_rng(2)
    narrow = rng.normal(size=(64, 32, 1)).astype(np.float32)
    wide = narrow * 10  # other activation ranges: other scales

    first, second, again = _int8(tmp_path, model, narrow), _int8(tmp_path, model, wide), _int8(tmp_path, model, narrow)

    assert [first["engine_cache"], second["engine_cache"], again["engine_cache"]] == ["miss", "miss", "hit"]
    assert first["engine_cache_key"] != second["engine_cache_key"] == second["engine_cache_key"]
    assert again["engine_cache_key"] == first["engine_cache_key"]
    parts = [json.loads(d["engine_cache_key_parts"]) for d in (first, second)]
    assert parts[0]["calibration_sha256"] != parts[1]["calibration_sha256"]
    assert parts[0]["quantized_ops"] == quantized_ops() and parts[0]["reduce_range"] == needs_reduce_range()
    assert parts[0]["onnxruntime"] and parts[0]["model_sha256"] == "m"
    assert parts[0]["calibration_sha256"][:12] in first["quantization"]  # the manifest names what was used
    assert len(list((tmp_path / "c").glob("*.int8.onnx"))) == 2


def test_a_damaged_cached_int8_engine_is_rebuilt_not_reused(tmp_path: Path) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx", length=32, classes=3)
    calibration = np.random.default_rng(3).normal(size=(32, 32, 1)).astype(np.float32)
    first = _int8(tmp_path, model, calibration)
    (cached,) = (tmp_path / "c").glob("*.int8.onnx")
    cached.write_bytes(cached.read_bytes()[:100])  # what a power cut mid-write used to leave

    second = _int8(tmp_path, model, calibration)

    assert first["engine_cache"] == "miss" and second["engine_cache"] == "miss"
    assert second["engine_cache_key"] == first["engine_cache_key"] and cached.stat().st_size > 100
