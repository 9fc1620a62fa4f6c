"""ONNX Runtime backend: CPU by default, CUDA/TensorRT execution providers when present."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agent.backends.base import BuildRequest, Engine
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
        return RuntimeInfo(self.name, available=True, version=ort.__version__, precisions=[Precision.FP32])

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
        session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers)
        return OnnxRuntimeEngine(session)
