"""agent.backends.qdq: the one INT8 mechanism (explicit Q/DQ) ONNX Runtime and TensorRT engines are built from."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from agent.backends.qdq import QUANTIZED_OPS, is_qdq, needs_reduce_range, quantize_int8, quantized_ops
from edgelab.errors import MissingExtraError
from tests.factories import write_linear_onnx

LENGTH, CLASSES = 32, 3


def _calibration(rows: int = 64, shift: float = 0.0) -> np.ndarray:
    return (np.random.default_rng(3).normal(size=(rows, LENGTH, 1)) + shift).astype(np.float32)


def _qdq_nodes(model: Path) -> tuple[list[str], set[int]]:
    """(op types of the nodes whose weights are quantized, every zero point in the model)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model)).graph
    weights = {i.name for i in graph.initializer}
    dequantized_weights = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights}
    wrapped = sorted({n.op_type for n in graph.node if set(n.input) & dequantized_weights})
    zero_point_names = {
        n.input[2] for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2
    }
    zero_points = {
        int(v) for i in graph.initializer if i.name in zero_point_names for v in numpy_helper.to_array(i).ravel()
    }
    return wrapped, zero_points


def _run(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"ecg": x})[0])


def test_is_qdq_tells_a_quantized_model_from_a_float_one(tmp_path: Path) -> None:
    fp32 = write_linear_onnx(tmp_path / "m.onnx")

    quantized = quantize_int8(fp32, _calibration(), tmp_path / "q.onnx", symmetric=True)

    assert not is_qdq(fp32) and is_qdq(quantized)


def test_symmetric_quantization_has_zero_points_0_as_tensorrt_requires(tmp_path: Path) -> None:
    fp32 = write_linear_onnx(tmp_path / "m.onnx")
    shifted = _calibration(shift=3.0)  # activations far from centred: an asymmetric range would move its zero point

    symmetric = quantize_int8(fp32, shifted, tmp_path / "sym.onnx", symmetric=True)
    asymmetric = quantize_int8(fp32, shifted, tmp_path / "asym.onnx")

    wrapped, zero_points = _qdq_nodes(symmetric)
    assert wrapped == ["Gemm"] and set(wrapped) <= set(QUANTIZED_OPS) and zero_points == {0}
    assert _qdq_nodes(asymmetric)[1] != {0}


def test_the_quantized_model_agrees_with_the_float_one(tmp_path: Path) -> None:
    fp32 = write_linear_onnx(tmp_path / "m.onnx")
    x = _calibration(rows=200)

    quantized = quantize_int8(fp32, x[:64], tmp_path / "q.onnx", symmetric=True)

    reference, out = _run(fp32, x), _run(quantized, x)
    assert (out.argmax(axis=1) == reference.argmax(axis=1)).mean() >= 0.9
    np.testing.assert_allclose(out, reference, atol=0.1)


def test_the_output_is_written_atomically(tmp_path: Path) -> None:
    out_dir = tmp_path / "cache" / "tensorrt"

    quantize_int8(write_linear_onnx(tmp_path / "m.onnx"), _calibration(), out_dir / "q.onnx", symmetric=True)

    assert [p.name for p in out_dir.iterdir()] == ["q.onnx"]  # no temporary file left beside it


@pytest.mark.parametrize("calibration", [None, np.zeros((0, LENGTH, 1), np.float32)])
def test_no_calibration_set_is_refused(tmp_path: Path, calibration: np.ndarray | None) -> None:
    with pytest.raises(ValueError, match="INT8 needs a calibration set"):
        quantize_int8(write_linear_onnx(tmp_path / "m.onnx"), calibration, tmp_path / "q.onnx")

    assert not (tmp_path / "q.onnx").exists()


def test_without_the_quantizer_the_extra_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)

    with pytest.raises(MissingExtraError, match=r"pip install 'edgelab\[onnxruntime\]'"):
        quantize_int8(model, _calibration(), tmp_path / "q.onnx")


@pytest.mark.parametrize(
    ("machine", "flags", "reduce"),
    [
        ("aarch64", "fp asimd", False),  # ARM: no u8 x s8 overflow issue
        ("x86_64", "sse4_2 avx2 fma", True),
        ("x86_64", "sse4_2 avx2 avx512f avx512_vnni", False),
        ("x86_64", "avx2 avx_vnni", False),
        ("x86_64", None, True),  # unreadable /proc/cpuinfo: 7-bit weights are safe everywhere
    ],
)
def test_needs_reduce_range_only_on_x86_without_vnni(
    tmp_path: Path, machine: str, flags: str | None, reduce: bool
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    if flags is not None:
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")

    assert needs_reduce_range(machine, cpuinfo) is reduce


@pytest.mark.parametrize(
    ("version", "softmax"),
    [("1.17.3", False), ("1.18.0", True), ("1.19.2", True), ("1.20.1", False), ("1.32.0", False)],
)
def test_softmax_is_quantized_only_where_onnxruntime_cannot_leave_it_out(version: str, softmax: bool) -> None:
    assert ("Softmax" in quantized_ops(version)) is softmax
    assert set(QUANTIZED_OPS) <= set(quantized_ops(version))
