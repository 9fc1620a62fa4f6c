"""ONNX Runtime backend: CPU by default, CUDA/TensorRT execution providers when present.

INT8 is built on the device: static post-training quantization (QDQ, per-channel weights)
calibrated on the shipped calibration set, cached under a `CacheKey` of everything that changes
the quantized model (model and calibration-set hashes, ORT version, op list, reduce_range).
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from agent.backends import engine_cache
from agent.backends.base import CPU_DEVICE, GPU_DEVICE, BuildRequest, Engine
from agent.backends.engine_cache import CacheKey
from agent.backends.qdq import describe_quantization, needs_reduce_range, quantization_parts, quantize_int8
from edgelab.constants import BACKEND_FORMATS
from edgelab.domain import Precision, RuntimeInfo
from edgelab.errors import MissingExtraError

# Execution providers that run the graph on an accelerator rather than the CPU.
GPU_PROVIDERS = frozenset(
    {
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "ROCMExecutionProvider",
        "MIGraphXExecutionProvider",
        "DmlExecutionProvider",
    }
)


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
        providers = session.get_providers()
        # The session's first provider takes every node it can; the CPU one only gets what is left.
        self.device = GPU_DEVICE if providers and providers[0] in GPU_PROVIDERS else CPU_DEVICE
        self.details = {"execution_providers": ",".join(providers)}

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run(None, {self._input_name: batch})[0])

    def close(self) -> None:
        self._session = None


class OnnxRuntimeBackend:
    name = "onnxruntime"
    formats: tuple[str, ...] = BACKEND_FORMATS["onnxruntime"]

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
            if request.calibration is None or len(request.calibration) == 0:
                raise ValueError("INT8 needs a calibration set (x_calib) shipped with the test set")
            cache = request.cache_dir or Path(tempfile.mkdtemp(prefix="edgelab-ort-"))
            parts = quantization_parts(request.calibration, reduce_range=needs_reduce_range(), symmetric=False)
            key = CacheKey(
                self.name,
                {
                    "model_sha256": request.model_sha256 or engine_cache.file_sha256(model_path),
                    "onnxruntime": ort.__version__,
                    "precision": "int8",
                    **parts,
                },
            )
            quantized = key.path(cache, ".int8.onnx")
            hit = engine_cache.lookup(quantized)
            if not hit:
                quantize_int8(model_path, request.calibration, quantized, reduce_range=parts["reduce_range"])
                engine_cache.store(quantized)
            details.update(key.details("hit" if hit else "miss" if request.cache_dir else "off"))
            details["quantization"] = describe_quantization(parts)
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
