"""TFLite backend: the LiteRT interpreter (`ai_edge_litert`), else `tflite_runtime`, else `tf.lite`.

A .tflite artifact's precision is fixed when it is converted (FP32, FP16 weights, INT8), so
"building" here means loading the interpreter and checking that the file is what the job
says it is. Full-INT8 models take and return int8 tensors: the engine quantizes the float
input and dequantizes the output with the model's own scale and zero point, inside the timed
call, as an application on the device would have to.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from agent.backends.base import CPU_DEVICE, BuildRequest, Engine
from edgelab.constants import BACKEND_FORMATS
from edgelab.domain import Precision, RuntimeInfo
from edgelab.errors import MissingExtraError

# Interpreter packages in order of preference: (module holding Interpreter, distribution for the version).
RUNTIMES: tuple[tuple[str, str], ...] = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow"),
)


def _find_runtime() -> tuple[str, str] | None:
    """The first installed interpreter package, found without importing it (TensorFlow is slow to import)."""
    for module, dist in RUNTIMES:
        if importlib.util.find_spec(module.split(".")[0]) is not None:
            return module, dist
    return None


def interpreter_class() -> tuple[Any, str]:
    """The preferred installed Interpreter class and its package's name and version."""
    found = _find_runtime()
    if found is None:
        raise MissingExtraError("ai-edge-litert", "tflite")
    module, dist = found
    return importlib.import_module(module).Interpreter, f"{dist} {importlib.metadata.version(dist)}"


def artifact_precision(tensor_dtypes: list[np.dtype[Any]], input_dtype: np.dtype[Any]) -> Precision:
    """What a converted model holds: int8/uint8 tensors -> INT8 (dynamic-range or full), float16 -> FP16."""
    if input_dtype in (np.int8, np.uint8) or any(d in (np.int8, np.uint8) for d in tensor_dtypes):
        return Precision.INT8
    if any(d == np.float16 for d in tensor_dtypes):
        return Precision.FP16
    return Precision.FP32


class TfliteEngine:
    scope = "end-to-end: host float array in, host float array out (set_tensor + invoke + get_tensor)"

    def __init__(self, interpreter: Any, details: dict[str, str]) -> None:
        self._interpreter = interpreter
        self._input = interpreter.get_input_details()[0]
        self._output = interpreter.get_output_details()[0]
        signature = self._input.get("shape_signature", self._input["shape"])
        self.input_shape = tuple(None if d < 0 else int(d) for d in signature)
        self._batch = int(self._input["shape"][0])
        self.details = details
        self.device = CPU_DEVICE  # no GPU delegate is loaded

    def _resize(self, batch: int) -> None:
        shape = [batch, *self._input["shape"][1:]]
        self._interpreter.resize_tensor_input(self._input["index"], shape, strict=True)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = batch

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) != self._batch:
            self._resize(len(batch))  # once per batch size: lands in the first, untimed inference
        self._interpreter.set_tensor(self._input["index"], _quantize(batch, self._input))
        self._interpreter.invoke()
        return _dequantize(self._interpreter.get_tensor(self._output["index"]), self._output)

    def close(self) -> None:
        self._interpreter = None


def _quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return np.ascontiguousarray(x, dtype=dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.asarray(np.clip(np.round(x / scale) + zero_point, info.min, info.max), dtype=dtype)


def _dequantize(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind == "f":
        return np.asarray(y, dtype=np.float32)
    scale, zero_point = detail["quantization"]
    return np.asarray((y.astype(np.float32) - zero_point) * scale, dtype=np.float32)


def operator_profile_note(interpreter_type: Any, runtime: str) -> str:
    """Why a TFLite result carries no per-operator profile: LiteRT's, tflite_runtime's and tf.lite's Python
    Interpreter expose no op profiler (per-op timing lives in the C++ benchmark_model tool's
    --enable_op_profiling); should an interpreter grow a profiling method, the note names it instead."""
    found = sorted(name for name in dir(interpreter_type) if "profil" in name.lower())
    if found:
        return f"not collected: {runtime}'s Interpreter offers {', '.join(found)}, which this backend does not read yet"
    return (
        f"not available: the Python Interpreter of {runtime} exposes no per-operator profiler "
        "(TFLite's op profiling is in the C++ benchmark_model tool, --enable_op_profiling)"
    )


NO_INTERPRETER = (
    "no TFLite interpreter (ai-edge-litert, tflite_runtime or tensorflow): pip install 'edgelab[tflite]' "
    "(LiteRT; tflite-runtime on Python 3.8 and armv7l)"
)


class TfliteBackend:
    name = "tflite"
    formats: tuple[str, ...] = BACKEND_FORMATS["tflite"]

    def probe(self) -> RuntimeInfo:
        found = _find_runtime()
        if found is None:
            return RuntimeInfo(self.name, available=False, reason=NO_INTERPRETER)
        _, dist = found
        return RuntimeInfo(
            self.name,
            available=True,
            version=f"{dist} {importlib.metadata.version(dist)}",
            precisions=[Precision.FP32, Precision.FP16, Precision.INT8],
        )

    def load(self, model_path: Path, request: BuildRequest) -> Engine:
        interpreter_type, runtime = interpreter_class()
        kwargs: dict[str, Any] = {"model_path": str(model_path)}
        if request.num_threads:
            kwargs["num_threads"] = request.num_threads
        xnnpack = request.options.get("xnnpack", "on") != "off"
        if not xnnpack:  # the default resolver applies XNNPACK to float ops; this runs the reference kernels
            resolver = importlib.import_module(interpreter_type.__module__).OpResolverType
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        interpreter = interpreter_type(**kwargs)
        interpreter.allocate_tensors()
        tensors = [np.dtype(t["dtype"]) for t in interpreter.get_tensor_details()]
        input_dtype = np.dtype(interpreter.get_input_details()[0]["dtype"])
        found = artifact_precision(tensors, input_dtype)
        if found != request.precision:
            raise ValueError(
                f"the artifact is a {found.value} TFLite model but the job asks for {request.precision.value}: "
                "a .tflite file's precision is set at conversion"
            )
        engine = TfliteEngine(
            interpreter,
            {
                "tflite_runtime": runtime,
                "xnnpack": "default delegate" if xnnpack else "off",
                "tflite_io_dtype": input_dtype.name,
                "num_threads": str(request.num_threads or "default"),
                "operator_profile": operator_profile_note(interpreter_type, runtime),
            },
        )
        return engine
