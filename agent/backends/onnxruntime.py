"""ONNX Runtime backend: CPU by default, CUDA/TensorRT execution providers when present.

INT8 is built on the device: static post-training quantization (QDQ, per-channel weights)
calibrated on the shipped calibration set, cached per (model hash, ORT version).
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from agent.backends.base import BuildRequest, Engine
from agent.backends.qdq import needs_reduce_range, quantize_int8, quantized_ops
from edgelab.domain import Precision, RuntimeInfo
from edgelab.errors import MissingExtraError


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingExtraError("onnxruntime", "onnxruntime") from exc
    return onnxruntime


class OnnxRuntimeEngine:
    scope = "end-to-end: host array in, host array out (session.run)"

    def __init__(self, session: Any) -> None:
        self._session = session
        inp = session.get_inputs()[0]
        self._input_name = inp.name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inp.shape)
        self.details = {"execution_providers": ",".join(session.get_providers())}

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run(None, {self._input_name: batch})[0])

    def close(self) -> None:
        self._session = None


class OnnxRuntimeBackend:
    name = "onnxruntime"
    formats: tuple[str, ...] = ("onnx",)

    def probe(self) -> RuntimeInfo:
        try:
            ort = _ort()
        except MissingExtraError as exc:
            return RuntimeInfo(self.name, available=False, reason=str(exc))
        precisions = [Precision.FP32]
        # The quantizer needs the `onnx` package; without it this device runs FP32 only.
        if importlib.util.find_spec("onnx") is not None:
            precisions.append(Precision.INT8)
        return RuntimeInfo(self.name, available=True, version=ort.__version__, precisions=precisions)

    def load(self, model_path: Path, request: BuildRequest) -> Engine:
        ort = _ort()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if request.num_threads:
            options.intra_op_num_threads = request.num_threads
        # Only CPU here; CUDA/TensorRT EPs are picked when the installed build offers them.
        providers = [
            p
            for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
            if p in ort.get_available_providers()
        ]
        details: dict[str, str] = {}
        if request.precision == Precision.INT8:
            cache = request.cache_dir or Path(tempfile.mkdtemp(prefix="edgelab-ort-"))
            reduce_range = needs_reduce_range()
            weights = "7-bit" if reduce_range else "8-bit"
            key = f"{request.model_sha256 or model_path.stem}-ort{ort.__version__}-int8-qdq-w{weights[0]}"
            quantized = cache / f"{key}.onnx"
            details["engine_cache"] = "hit" if quantized.is_file() else "miss"
            if not quantized.is_file():
                quantize_int8(model_path, request.calibration, quantized, reduce_range=reduce_range)
            details["quantization"] = (
                f"static QDQ int8 on {'/'.join(quantized_ops())}, per-channel {weights} weights"
                f"{' (x86 without VNNI)' if reduce_range else ''}, calibrated on the shipped x_calib"
            )
            reference = OnnxRuntimeEngine(ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"]))
            model_path = quantized
        session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers)
        engine = OnnxRuntimeEngine(session)
        engine.details.update(details)
        if request.precision == Precision.INT8 and request.calibration is not None:
            # How far quantization moved decisions, on samples the device has (the test set is scored later).
            calib = np.ascontiguousarray(request.calibration, dtype=np.float32)
            agreement = float(np.mean(engine.infer(calib).argmax(1) == reference.infer(calib).argmax(1)))
            engine.details["int8_vs_fp32_argmax_agreement_on_calibration_set"] = f"{agreement:.4f}"
        return engine
