"""Explicit INT8 quantization: FP32 ONNX -> ONNX with QuantizeLinear/DequantizeLinear (Q/DQ) pairs.

One mechanism for every INT8 engine built from ONNX: ONNX Runtime runs the Q/DQ model as is, and
TensorRT (every version from 8.0, the Python API and `trtexec` alike) builds INT8 from the Q/DQ
scales without an implicit calibrator (deprecated in TensorRT 10, removed in 11). The scales come
from static calibration on the shipped `x_calib`, done with ONNX Runtime's quantizer (extra
`onnxruntime`, which brings the `onnx` package it needs).
"""

from __future__ import annotations

import os
import platform
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from agent.backends.engine_cache import array_sha256
from agent.cache import durable_replace
from edgelab.errors import MissingExtraError

# Only the ops that carry weights are quantized: tf2onnx leaves BatchNorm as a separate Mul/Add
# after the lowered Conv1D, and quantizing those too cost agreement with FP32 (86% vs 90% on the
# MIT-BIH 1D CNN, 6,954 test beats, without reduce_range).
QUANTIZED_OPS = ["Conv", "MatMul", "Gemm"]
# ONNX Runtime 1.18 to 1.20.0 fail on a Softmax left out of quantization ("Only an existing tensor
# can be modified", fixed in 1.20.1 by onnxruntime PR #22676); Python 3.8's newest is 1.19. There
# the Softmax is quantized too, and the engine details say so.
SOFTMAX_EXCLUSION_BROKEN = ((1, 18), (1, 20, 1))
# x86 CPUs without VNNI multiply u8 x s8 pairs into int16 and saturate (ONNX Runtime's and
# OpenVINO's documented overflow issue); 7-bit weights avoid it. On the same model and an AVX2
# CPU: argmax agreement with FP32 90% with 8-bit weights, 98.5% with reduce_range.
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})
CPUINFO = Path("/proc/cpuinfo")
# The op types as they appear, length-prefixed, in a serialized ONNX NodeProto (field 4, op_type).
_QDQ_OP_TYPES = (b"\x22\x0eQuantizeLinear", b"\x22\x10DequantizeLinear")


def needs_reduce_range(machine: str | None = None, cpuinfo: Path = CPUINFO) -> bool:
    """True on x86 CPUs whose flags lack VNNI (int8 dot products there can overflow)."""
    if (machine or platform.machine()).lower() not in ("x86_64", "amd64", "i686"):
        return False
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return True  # unknown x86: the 7-bit weights are safe everywhere
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    return not (flags & VNNI_FLAGS)


def is_qdq(model_path: Path) -> bool:
    """Whether an ONNX file is explicitly quantized (holds Q/DQ nodes).

    Read from the serialized bytes, so a device without the `onnx` package (a Jetson Nano
    running `trtexec`) can tell too: an op type is stored as a length-prefixed string.
    """
    data = model_path.read_bytes()
    return all(op in data for op in _QDQ_OP_TYPES)


def quantized_ops(ort_version: str | None = None) -> list[str]:
    """The op types quantized with the installed ONNX Runtime (see SOFTMAX_EXCLUSION_BROKEN)."""
    version = tuple(int(part) for part in re.findall(r"\d+", ort_version or _ort().__version__)[:3])
    low, high = SOFTMAX_EXCLUSION_BROKEN
    return [*QUANTIZED_OPS, "Softmax"] if low <= version < high else list(QUANTIZED_OPS)


def quantization_parts(calibration: np.ndarray, *, reduce_range: bool, symmetric: bool) -> dict[str, Any]:
    """Everything `quantize_int8` does that changes its output, for an engine-cache key and the manifest."""
    ort_version = _ort().__version__
    return {
        "quantizer": f"onnxruntime {ort_version}",
        "quantization": "static Q/DQ, per-channel weights",
        "quantized_ops": quantized_ops(ort_version),
        "weight_bits": 7 if reduce_range else 8,
        "reduce_range": reduce_range,
        "symmetric": symmetric,
        "calibration_sha256": array_sha256(np.asarray(calibration, dtype=np.float32)),
        "calibration_samples": len(calibration),
    }


def describe_quantization(parts: dict[str, Any]) -> str:
    """The manifest's one line on how an INT8 model was quantized, from its key parts."""
    return (
        f"{parts['quantization']} on {'/'.join(parts['quantized_ops'])}, {parts['weight_bits']}-bit weights"
        f"{' (reduce_range: x86 without VNNI)' if parts['reduce_range'] else ''}"
        f"{', symmetric' if parts['symmetric'] else ''}, by {parts['quantizer']}, calibrated on the shipped x_calib "
        f"({parts['calibration_samples']} samples, sha256 {parts['calibration_sha256'][:12]})"
    )


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingExtraError("onnxruntime", "onnxruntime") from exc
    return onnxruntime


def quantize_int8(
    model_path: Path,
    calibration: np.ndarray | None,
    out_path: Path,
    *,
    reduce_range: bool = False,
    symmetric: bool = False,
) -> Path:
    """Static INT8 Q/DQ quantization calibrated on real samples, written atomically (a cache never holds half a file).

    `symmetric`: zero points 0 for activations and weights, which TensorRT requires of Q/DQ scales.
    """
    if calibration is None or len(calibration) == 0:
        raise ValueError("INT8 needs a calibration set (x_calib) shipped with the test set")
    try:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    except ImportError as exc:  # onnxruntime without the `onnx` package it quantizes with
        raise MissingExtraError(getattr(exc, "name", None) or "onnx", "onnxruntime") from exc

    session = _ort().InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    batch_dim = session.get_inputs()[0].shape[0]
    step = batch_dim if isinstance(batch_dim, int) else 32
    batches: list[np.ndarray] = [
        np.ascontiguousarray(calibration[i : i + step], dtype=np.float32) for i in range(0, len(calibration), step)
    ]

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._batches = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=out_path.parent)
    os.close(fd)
    try:
        quantize_static(
            str(model_path),
            tmp,
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=quantized_ops(),
            reduce_range=reduce_range,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True} if symmetric else {},
        )
        durable_replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path
