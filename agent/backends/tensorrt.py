"""TensorRT backend: ONNX -> serialized TensorRT engine (FP32/FP16/INT8, optional DLA), run with pycuda.

Runs on every TensorRT whose Python API has the name-based I/O calls (8.5 and later: 8.5/8.6,
10.x, 11.x); what differs between those releases is decided once, in `TrtApi`. Older ones
(JetPack 4's 8.0/8.2 on the Jetson Nano) are refused with a pointer to the `trtexec` backend.

Precision, one mechanism per precision on every version:
- INT8 is always explicit quantization: the engine is built from an ONNX with Q/DQ nodes, the
  shipped one if it has them, else one quantized on the device (`agent.backends.qdq`, symmetric
  scales calibrated on the shipped `x_calib`, cached). No implicit calibrator: deprecated in 10.1,
  removed in 11.
- FP16: `BuilderFlag.FP16` before 11; TensorRT 11 builds strongly typed networks only, so the
  ONNX is converted to FP16 on the device (I/O kept FP32, cached) and built as is.

CUDA context: not `pycuda.autoinit`, which creates a new context at import, current only in
the importing thread. The backend retains the device's *primary* context, the one the CUDA
runtime inside TensorRT binds to as well (so TensorRT's allocations and our buffers share a
context), and pushes it around every call that touches the GPU (build, deserialize, infer,
close), so whichever thread runs the benchmark has it current; `close()` releases it. CUDA
is not fork-safe once initialised and `probe()` initialises it: should benchmarks move to a
child process, start that child with the multiprocessing "spawn" method.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from agent.backends import engine_cache
from agent.backends.base import GPU_DEVICE, BackendOptions, BuildRequest, top_operators
from agent.backends.engine_cache import CacheKey
from agent.backends.qdq import describe_quantization, is_qdq, quantization_parts, quantize_int8
from agent.cache import durable_replace
from edgelab.constants import BACKEND_FORMATS
from edgelab.domain import AcceleratorMemory, OperatorProfile, Precision, RuntimeInfo
from edgelab.errors import BackendUnavailable, MissingExtraError

NAME = "tensorrt"
SCOPE = "end-to-end: H2D copy + GPU compute + D2H copy (pycuda stream, synchronized)"
COMPUTE_SCOPE = "compute-only: GPU execution between CUDA events"
DEFAULT_WORKSPACE_MB = 1024
OPTIONS = ("dla_core", "workspace_mb", "profile")  # what BuildRequest.options may hold for this backend
PROFILE_SOURCE = "TensorRT IProfiler"
PROFILE_RUNS = 20  # profiled inferences after one warm-up run left out of the figures...
PROFILE_MAX_S = 5.0  # ...or fewer when they take longer than this
DEVICE_MEMORY_WHAT = (
    "device memory one execution context of this engine needs (activations and scratch at the largest batch "
    "of its optimization profile; not the weights, the CUDA context nor the I/O buffers)"
)
LOG_LINES_KEPT = 50
OLDEST = (8, 5)  # the name-based I/O API this backend runs on


class EngineBuildError(RuntimeError):
    """The ONNX parser or the TensorRT builder refused the model; the message carries TensorRT's own words."""


def _import_runtime() -> tuple[Any, Any]:
    """`tensorrt` and `pycuda.driver`. A missing package names the extra; one that fails to load
    (e.g. pycuda without libcuda) raises its ImportError as is."""
    modules = []
    for module in ("tensorrt", "pycuda.driver"):
        try:
            modules.append(importlib.import_module(module))
        except ModuleNotFoundError as exc:
            if exc.name in ("tensorrt", "pycuda"):
                raise MissingExtraError(exc.name, "tensorrt") from exc
            raise
    return modules[0], modules[1]


def _release(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


@dataclass(frozen=True)
class TrtApi:
    """What the installed TensorRT's Python API offers: the one place the backend branches on version.

    | attribute                | 8.0 / 8.2 | 8.5 / 8.6 | 10.x                   | 11.x    |
    |--------------------------|-----------|-----------|------------------------|---------|
    | name_based_io            | no        | yes       | yes                    | yes     |
    | explicit_batch_flag      | needed    | needed    | deprecated, ignored    | gone    |
    | builder_fast_precisions  | yes       | yes       | deprecated (10.5)      | removed |
    | precision_flags          | yes       | yes       | yes (deprecated 10.12) | removed |

    - name_based_io: `num_io_tensors`, `get_tensor_name`, `set_input_shape`, `set_tensor_address`,
      `execute_async_v3` arrived in 8.5 (TensorRT 8.5.1 API reference, "API Changes For TensorRT
      8.5.1"); 8.0/8.2 have only bindings, removed in 10 (Migration Guide, "Migrating Python Code
      from TensorRT 8.x to 10.x"). `set_memory_pool_limit`, also used unconditionally, is older (8.3/8.4,
      replacing `max_workspace_size`, deprecated in 8.3 per the 8.4 C++ deprecated list).
    - explicit_batch_flag: the ONNX parser needs `1 << EXPLICIT_BATCH` networks before 10; the Python API
      reference of 10.x marks EXPLICIT_BATCH "[DEPRECATED] Ignored because networks are always explicit
      batch in TensorRT 10.0".
    - builder_fast_precisions: `Builder.platform_has_fast_fp16/int8`, deprecated in 10.5 ("query data type
      support from CUDA directly", C++ deprecated list), removed in 11 (Migration Guide 10.x -> 11.x,
      removed APIs); from 10 on the backend judges by compute capability (`fast_precisions`).
    - precision_flags: `BuilderFlag.FP16/INT8` (weak typing, deprecated in 10.12 per NVIDIA's strong-typing
      migration notes, still honoured through 10.x). TensorRT 11 removes them together with
      `IBuilderConfig.int8_calibrator`, `set_calibration_profile` and the quantization flags ("Removed
      Python APIs and Replacements", TensorRT 11 Migration Guide): every network is strongly typed
      (`createNetworkV2` is strongly typed by default, 11.0.0 release notes), FP16 comes from the ONNX's
      own types and INT8 from its Q/DQ nodes. Explicit Q/DQ needs the INT8 flag while weakly typed
      ("to enable any quantization operations, the INT8 flag must be set", TensorRT 8 developer guide).
    """

    version: str
    release: tuple[int, int]
    name_based_io: bool
    explicit_batch_flag: bool
    builder_fast_precisions: bool
    precision_flags: bool

    @classmethod
    def of(cls, trt: Any) -> TrtApi:
        version = str(trt.__version__)
        release = _release(version)
        engine_api = getattr(trt, "ICudaEngine", None)
        return cls(
            version=version,
            release=release,
            name_based_io=release >= OLDEST and hasattr(engine_api, "num_io_tensors"),
            explicit_batch_flag=release < (10, 0),
            builder_fast_precisions=release < (10, 0) and hasattr(trt.Builder, "platform_has_fast_fp16"),
            precision_flags=hasattr(trt.BuilderFlag, "FP16") and hasattr(trt.BuilderFlag, "INT8"),
        )

    @property
    def too_old(self) -> str:
        """Why this backend cannot run on this TensorRT, or "" when it can."""
        if self.name_based_io:
            return ""
        return (
            f"TensorRT {self.release[0]}.{self.release[1]} too old for the Python backend "
            f"(needs {OLDEST[0]}.{OLDEST[1]}+); use the trtexec backend"
        )

    @property
    def fp16_route(self) -> str:
        """How an FP16 engine is asked for."""
        if self.precision_flags:
            return "BuilderFlag.FP16 on the FP32 ONNX (weakly typed network)"
        return "ONNX converted to FP16 on the device, strongly typed network"

    def network_flags(self, trt: Any) -> int:
        if self.explicit_batch_flag:
            return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        return 0  # 10: explicit batch always (flag ignored); 11: strongly typed always

    def builder_flags(self, trt: Any, precision: Precision) -> list[Any]:
        """Precision flags for the builder config; none from 11 on, where the ONNX carries the types."""
        if not self.precision_flags or precision == Precision.FP32:
            return []
        return [trt.BuilderFlag.FP16 if precision == Precision.FP16 else trt.BuilderFlag.INT8]


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    compute_capability: tuple[int, int]

    @property
    def sm(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"


def find_gpu(cuda: Any) -> Gpu:
    """Device 0 (CUDA_VISIBLE_DEVICES picks which one); BackendUnavailable when the driver sees none."""
    try:
        cuda.init()
        if cuda.Device.count() == 0:
            raise BackendUnavailable(NAME, "no CUDA device")
        device = cuda.Device(0)
        major, minor = device.compute_capability()
        return Gpu(0, str(device.name()), (int(major), int(minor)))
    except cuda.Error as exc:
        raise BackendUnavailable(NAME, f"no CUDA device ({exc})") from exc


def capturing_logger(trt: Any) -> Any:
    """An `ILogger` keeping warnings and errors, so a failed build can say what TensorRT said."""
    keep = {trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR, trt.ILogger.Severity.WARNING}

    class CapturingLogger(trt.ILogger):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if severity in keep:
                self.messages.append(f"{getattr(severity, 'name', severity)}: {msg}")
                del self.messages[:-LOG_LINES_KEPT]

        def tail(self, lines: int = 10) -> str:
            return " | ".join(self.messages[-lines:]) or "TensorRT logged no warning or error"

    return CapturingLogger()


def fast_precisions(compute_capability: tuple[int, int]) -> tuple[bool, bool]:
    """(fast FP16, fast INT8) as TensorRT's deprecated `platform_has_fast_fp16/int8` judged them:
    FP16 on sm 5.3/6.0/6.2 and 7.0+, INT8 (DP4A or tensor cores) on sm 6.1 and 7.0+."""
    cc = compute_capability
    return cc >= (7, 0) or cc in {(5, 3), (6, 0), (6, 2)}, cc >= (7, 0) or cc == (6, 1)


# ---------------------------------------------------------------- ONNX preparation (INT8 Q/DQ, FP16 on 11)


def _installed(*modules: str) -> bool:
    """Whether top-level modules can be imported, without importing them (the probe stays cheap)."""
    return all(importlib.util.find_spec(m) is not None for m in modules)


def _distribution_version(name: str) -> str:
    from importlib import metadata  # Python 3.8+

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def quantizer_available() -> bool:
    """The Q/DQ quantizer's packages (ONNX Runtime's quantizer and the `onnx` it works on)."""
    return _installed("onnxruntime", "onnx")


def _autocast_fp16(src: Path) -> Any:
    from modelopt.onnx.autocast import convert_to_mixed_precision  # type: ignore[import-not-found]

    return convert_to_mixed_precision(onnx_path=str(src), low_precision_type="fp16", keep_io_types=True)


def _ort_fp16(src: Path) -> Any:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)


def _onnxconverter_fp16(src: Path) -> Any:
    import onnx
    from onnxconverter_common import float16  # type: ignore[import-not-found]

    return float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)


@dataclass(frozen=True)
class Fp16Converter:
    """An FP32 -> FP16 ONNX converter (model I/O kept FP32, so callers feed and read float32)."""

    name: str
    distribution: str  # the pip package whose version is part of the engine-cache key
    modules: tuple[str, ...]  # what must be importable
    convert: Callable[[Path], Any]  # ONNX path -> converted onnx.ModelProto

    def available(self) -> bool:
        return _installed(*self.modules)

    def label(self) -> str:
        return f"{self.name} ({self.distribution} {_distribution_version(self.distribution)})"


# Preference order. ModelOpt AutoCast is what NVIDIA's TensorRT 11 migration guide prescribes
# ("Migrating from Weak Typing to Strong Typing"); ONNX Runtime ships onnxconverter-common's
# float16 converter, maintained in its own tree (onnxruntime/transformers/float16.py), so every
# device with edgelab's base dependencies has one; onnxconverter-common itself comes last. The
# `onnx` package has no FP16 converter of its own.
FP16_CONVERTERS = (
    Fp16Converter("modelopt.onnx.autocast", "nvidia-modelopt", ("modelopt", "onnx"), _autocast_fp16),
    Fp16Converter("onnxruntime.transformers.float16", "onnxruntime", ("onnxruntime", "onnx"), _ort_fp16),
    Fp16Converter(
        "onnxconverter_common.float16", "onnxconverter-common", ("onnxconverter_common", "onnx"), _onnxconverter_fp16
    ),
)
NO_FP16_CONVERTER = (
    "TensorRT {version} builds strongly typed networks only (BuilderFlag.FP16 is gone in 11), so FP16 "
    "needs the ONNX converted to FP16 on the device, and no converter is installed: "
    "pip install nvidia-modelopt[onnx], onnxruntime (with onnx) or onnxconverter-common"
)


def find_fp16_converter() -> Fp16Converter | None:
    return next((c for c in FP16_CONVERTERS if c.available()), None)


def _save_onnx_atomically(model: Any, path: Path) -> None:
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        onnx.save(model, tmp)
        durable_replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomically(path: Path, data: Any) -> None:
    """Write bytes (or any buffer, e.g. TensorRT's IHostMemory) so that readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        durable_replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass(frozen=True)
class ModelRecipe:
    """How the ONNX handed to TensorRT derives from the shipped one: `key_parts` go into the engine-cache key."""

    kind: str  # "as shipped", "quantize" (INT8 Q/DQ on the device) or "fp16" (FP16 ONNX on the device)
    key_parts: dict[str, Any]
    converter: Fp16Converter | None = None

    def prepared_key(self, model_sha: str) -> CacheKey:
        return CacheKey(NAME, {"model_sha256": model_sha, "prepared": self.kind, **self.key_parts})


def model_recipe(api: TrtApi, model_path: Path, request: BuildRequest) -> ModelRecipe:
    """Decide, without touching the GPU, which ONNX the engine is built from; refuse what cannot be built."""
    qdq = is_qdq(model_path)
    if qdq and request.precision != Precision.INT8:
        raise ValueError(
            f"{model_path.name} is explicitly quantized (it has Q/DQ nodes): TensorRT builds it as INT8; "
            f"run it with precision int8, not {request.precision.value}"
        )
    if request.precision == Precision.INT8:
        if qdq:
            return ModelRecipe("as shipped", {"int8": "explicit Q/DQ nodes shipped in the model"})
        if request.calibration is None or len(request.calibration) == 0:
            raise ValueError(
                "INT8 needs a calibration set (x_calib) shipped with the test set, or a model with Q/DQ nodes; "
                "this one has neither"
            )
        # TensorRT takes symmetric Q/DQ (zero points 0) only; 8-bit weights (reduce_range is an x86 CPU matter).
        parts = quantization_parts(request.calibration, reduce_range=False, symmetric=True)
        return ModelRecipe(
            "quantize", {"int8": f"Q/DQ quantized on the device: {describe_quantization(parts)}", **parts}
        )
    if request.precision == Precision.FP16 and not api.precision_flags:
        converter = find_fp16_converter()
        if converter is None:
            raise ValueError(NO_FP16_CONVERTER.format(version=api.version))
        return ModelRecipe(
            "fp16", {"fp16": f"ONNX converted to FP16 (I/O kept FP32) by {converter.label()}"}, converter
        )
    return ModelRecipe("as shipped", {})


def prepare_model(
    recipe: ModelRecipe, model_path: Path, request: BuildRequest, model_sha: str, work: Path
) -> tuple[Path, dict[str, str]]:
    """The ONNX file TensorRT parses, made (or found) in `work`, and what was done to get it."""
    if recipe.kind == "as shipped":
        return model_path, {}
    out = recipe.prepared_key(model_sha).path(work, f".{recipe.kind}.onnx")
    what = "int8_quantization" if recipe.kind == "quantize" else "fp16_conversion"
    if engine_cache.lookup(out):
        return out, {what: f"{recipe.key_parts.get('int8') or recipe.key_parts['fp16']}; cache hit ({out.name})"}
    t0 = time.perf_counter()
    if recipe.kind == "quantize":
        quantize_int8(model_path, request.calibration, out, reduce_range=False, symmetric=True)
    else:
        assert recipe.converter is not None
        try:
            converted = recipe.converter.convert(model_path)
        except ImportError as exc:
            raise MissingExtraError(getattr(exc, "name", None) or recipe.converter.distribution, "onnxruntime") from exc
        _save_onnx_atomically(converted, out)
    engine_cache.store(out)
    done = f"{recipe.key_parts.get('int8') or recipe.key_parts['fp16']}; done in {time.perf_counter() - t0:.2f} s"
    return out, {what: done}


@dataclass(frozen=True)
class BuildOptions:
    dla_core: int | None = None
    workspace_mb: int = DEFAULT_WORKSPACE_MB
    profile: bool = False  # a per-layer profile after the timed phase (changes nothing in the engine)

    @classmethod
    def parse(cls, options: dict[str, str]) -> BuildOptions:
        known = BackendOptions(NAME, options, OPTIONS)
        return cls(
            known.number("dla_core", 0),
            known.number("workspace_mb", 1, DEFAULT_WORKSPACE_MB),
            known.switch("profile", False),
        )


def layer_timer(trt: Any) -> Any:
    """An `IProfiler` summing each layer's reported ms (`report_layer_time`) over the runs it is told of."""

    class LayerTimes(trt.IProfiler):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)  # the bindings need the base initialised explicitly
            self.total_ms: dict[str, float] = {}

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            self.total_ms[layer_name] = self.total_ms.get(layer_name, 0.0) + float(ms)

    return LayerTimes()


def batch_profile(batch_sizes: list[int]) -> tuple[int, int, int]:
    """(min, opt, max) of the dynamic batch dim: 1 .. the largest batch asked, tuned for that one."""
    if not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"batch sizes must be positive integers, got {batch_sizes}")
    top = max(batch_sizes)
    return 1, top, top


def _parser_error(error: Any) -> str:
    """One IParserError as text, from its documented accessors."""
    return f"{error.code()} at node {error.node()}: {error.desc()}"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class TensorRTEngine:
    """A deserialized engine with pinned host and device buffers sized for the largest batch."""

    scope = SCOPE
    compute_scope = COMPUTE_SCOPE
    device = GPU_DEVICE  # DLA layers too: nvml/jtop, not RAPL

    def __init__(
        self,
        trt: Any,
        cuda: Any,
        cuda_context: Any,
        runtime: Any,
        engine: Any,
        max_batch: int,
        details: dict[str, str],
        layer_profile: bool = False,
    ) -> None:
        self._trt = trt
        self._layer_profile = layer_profile
        self._cuda = cuda
        self._cuda_context = cuda_context
        self._runtime = runtime  # TensorRT wants the runtime (and its logger) to outlive the engine
        self._engine = engine
        self.details = details
        self.last_compute_ms = math.nan
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or not outputs:
            raise ValueError(f"the tensorrt backend runs models with one input and some output; got inputs {inputs}")
        self._input, self._output = inputs[0], outputs[0]  # the first output is the model's answer
        shape = tuple(int(d) for d in engine.get_tensor_shape(self._input))
        self.input_shape: tuple[int | None, ...] = tuple(None if d < 0 else d for d in shape)
        self._dynamic = shape[0] < 0
        self._max_batch = max_batch if self._dynamic else shape[0]
        self._context = engine.create_execution_context()
        self._batch = -1
        self._set_batch(self._max_batch)  # output shapes at the largest batch size the buffers
        self._device: dict[str, Any] = {}
        host: dict[str, np.ndarray] = {}
        for name in names:
            tensor_shape = tuple(int(d) for d in self._context.get_tensor_shape(name))
            if any(d < 0 for d in tensor_shape):
                raise ValueError(f"tensor {name} has a data-dependent shape {tensor_shape}: not supported")
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            nbytes = int(np.prod(tensor_shape)) * dtype.itemsize
            if name in (self._input, self._output):
                host[name] = cuda.pagelocked_empty(tensor_shape, dtype)
            self._device[name] = cuda.mem_alloc(max(nbytes, 1))
            self._context.set_tensor_address(name, int(self._device[name]))
        self._host_in, self._host_out = host[self._input], host[self._output]
        self._stream = cuda.Stream()
        self._start, self._end = cuda.Event(), cuda.Event()
        self._closed = False

    def _set_batch(self, rows: int) -> None:
        if (
            self._dynamic
            and rows != self._batch
            and not self._context.set_input_shape(self._input, (rows, *self.input_shape[1:]))
        ):
            raise ValueError(f"TensorRT refused batch {rows}: {self._runtime.logger_tail()}")
        self._batch = rows
        self._out_rows = int(self._context.get_tensor_shape(self._output)[0])

    def _check(self, batch: np.ndarray) -> int:
        fixed = self.input_shape[1:]
        if batch.ndim != len(self.input_shape) or tuple(batch.shape[1:]) != fixed:
            shown = tuple("?" if d is None else d for d in self.input_shape)
            raise ValueError(f"batch of shape {batch.shape} does not fit the engine input {shown}")
        rows = int(batch.shape[0])
        if not self._dynamic and rows != self._max_batch:
            raise ValueError(f"this engine's batch dim is fixed at {self._max_batch}; got a batch of {rows}")
        if not 1 <= rows <= self._max_batch:
            raise ValueError(
                f"batch of {rows} is outside the engine's optimization profile (batch 1..{self._max_batch}); "
                f"load it with that batch size in batch_sizes"
            )
        return rows

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self._closed:
            raise RuntimeError("the TensorRT engine is closed")
        rows = self._check(batch)
        cuda = self._cuda
        self._cuda_context.push()
        try:
            self._set_batch(rows)
            host_in, host_out = self._host_in[:rows], self._host_out[: self._out_rows]
            np.copyto(host_in, batch, casting="same_kind")
            cuda.memcpy_htod_async(self._device[self._input], host_in, self._stream)
            self._start.record(self._stream)
            enqueued = self._context.execute_async_v3(self._stream.handle)
            self._end.record(self._stream)
            cuda.memcpy_dtoh_async(host_out, self._device[self._output], self._stream)
            self._stream.synchronize()  # nothing asynchronous escapes the caller's clock
            if not enqueued:
                raise RuntimeError(f"TensorRT could not run the batch: {self._runtime.logger_tail()}")
            self.last_compute_ms = float(self._end.time_since(self._start))
            return host_out.copy()  # the pinned buffer is reused by the next call
        finally:
            cuda.Context.pop()

    def operator_profile(self, batch: np.ndarray) -> OperatorProfile | None:
        """Per-layer mean times on `batch` from an `IProfiler`, attached once every timed phase is over (it perturbs
        timing); None unless the job asked (profile: on).

        The profiler goes on the engine's own execution context (a second context would need the optimization
        profile this one holds) with `enqueue_emits_profile` off: each launch only records the layers' CUDA
        events, and `report_to_profiler()`, called once the stream synchronized, hands that launch's layer times
        over (the pattern trtexec uses). The first run is a warm-up, left out of the figures. Launches after this
        (scoring the test set) still record the events, unreported.
        """
        if not self._layer_profile:
            return None
        if self._closed:
            raise RuntimeError("the TensorRT engine is closed")
        rows = self._check(batch)
        timer = layer_timer(self._trt)
        with self._current():
            self._context.profiler = timer
            self._context.enqueue_emits_profile = False
        runs, deadline = 0, time.perf_counter() + PROFILE_MAX_S
        for i in range(PROFILE_RUNS + 1):
            self.infer(batch)  # returns once the stream synchronized
            with self._current():
                if not self._context.report_to_profiler():
                    raise RuntimeError(f"TensorRT reported no layer times: {self._runtime.logger_tail()}")
            if i == 0:
                timer.total_ms.clear()  # the warm-up run
                continue
            runs += 1
            if time.perf_counter() > deadline:
                break
        mean_ms = {name: ("", total / runs) for name, total in timer.total_ms.items()}
        return top_operators(mean_ms, batch_size=rows, source=PROFILE_SOURCE, iterations=runs)

    @contextmanager
    def _current(self) -> Iterator[None]:
        """The engine's CUDA context current in this thread for the block."""
        self._cuda_context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def accelerator_memory(self) -> list[AcceleratorMemory]:
        """The device memory an execution context needs, as the engine states it: `device_memory_size_v2`
        from TensorRT 10.1 (the only one in 11), `device_memory_size` before."""
        name = "device_memory_size_v2" if hasattr(self._engine, "device_memory_size_v2") else "device_memory_size"
        size = int(getattr(self._engine, name))
        return [AcceleratorMemory("tensorrt", DEVICE_MEMORY_WHAT, size, f"ICudaEngine.{name}")]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._cuda_context.push()
        try:
            for allocation in self._device.values():
                allocation.free()
            # Pinned buffers, stream, events and TensorRT objects go while their context is current.
            self._device.clear()
            del self._host_in, self._host_out, self._stream, self._start, self._end
            del self._context, self._engine, self._runtime
        finally:
            self._cuda.Context.pop()
            self._cuda_context.detach()


class _Runtime:
    """A TensorRT runtime with the logger it reports to (both must outlive the engines)."""

    def __init__(self, trt: Any, dla_core: int | None) -> None:
        self.logger = capturing_logger(trt)
        self.runtime = trt.Runtime(self.logger)
        if dla_core is not None:
            self.runtime.DLA_core = dla_core  # must match the core the engine was built for

    def logger_tail(self) -> str:
        return str(self.logger.tail())

    def deserialize(self, plan: Any) -> Any:
        return self.runtime.deserialize_cuda_engine(plan)


class TensorRTBackend:
    name = NAME
    formats: tuple[str, ...] = BACKEND_FORMATS["tensorrt"]

    def __init__(self) -> None:
        # Builder.platform_has_fast_* per (TensorRT version, GPU): creating a builder costs a
        # context and hundreds of ms, and the answer never changes while the agent runs.
        self._builder_precisions: dict[tuple[str, str], tuple[bool, bool]] = {}

    def probe(self) -> RuntimeInfo:
        """Cheap and never raises: what is missing becomes `available=False` with the reason.

        Precisions are those this TensorRT can build here *and* the GPU runs fast; a precision
        left out for a software reason is said in `reason` (shown nowhere while available).
        """
        try:
            trt, cuda = _import_runtime()
        except MissingExtraError as exc:
            return RuntimeInfo(self.name, available=False, reason=str(exc))
        except (ImportError, OSError) as exc:
            return RuntimeInfo(self.name, available=False, reason=f"no CUDA device ({exc})")
        try:
            api = TrtApi.of(trt)
            if api.too_old:
                return RuntimeInfo(self.name, available=False, version=api.version, reason=api.too_old)
            gpu = find_gpu(cuda)
            fp16, int8 = self._fast_precisions(trt, cuda, api, gpu)
        except BackendUnavailable as exc:
            return RuntimeInfo(self.name, available=False, reason=exc.reason)
        except Exception as exc:  # a broken driver or install must not take the agent down
            return RuntimeInfo(self.name, available=False, reason=f"probe failed: {type(exc).__name__}: {exc}")
        precisions = [Precision.FP32]
        notes = []
        if fp16:
            if api.precision_flags or find_fp16_converter() is not None:
                precisions.append(Precision.FP16)
            else:
                notes.append("no fp16: " + NO_FP16_CONVERTER.format(version=api.version))
        if int8:
            if quantizer_available():
                precisions.append(Precision.INT8)
            else:  # a Q/DQ model would still build; an FP32 one could not be quantized here
                notes.append("no int8: the Q/DQ quantizer needs onnxruntime and onnx")
        # RuntimeInfo has no details field: the GPU rides in the version string agents report.
        version = f"{api.version} on {gpu.name} (sm {gpu.sm})"
        return RuntimeInfo(self.name, available=True, version=version, reason="; ".join(notes), precisions=precisions)

    def _fast_precisions(self, trt: Any, cuda: Any, api: TrtApi, gpu: Gpu) -> tuple[bool, bool]:
        if not api.builder_fast_precisions:
            return fast_precisions(gpu.compute_capability)
        key = (api.version, gpu.name)
        if key not in self._builder_precisions:
            context = cuda.Device(gpu.index).retain_primary_context()
            context.push()
            try:
                builder = trt.Builder(capturing_logger(trt))
                self._builder_precisions[key] = (
                    bool(builder.platform_has_fast_fp16),
                    bool(builder.platform_has_fast_int8),
                )
            finally:
                cuda.Context.pop()
                context.detach()
        return self._builder_precisions[key]

    def load(self, model_path: Path, request: BuildRequest) -> TensorRTEngine:
        trt, cuda = _import_runtime()
        api = TrtApi.of(trt)
        if api.too_old:
            raise BackendUnavailable(NAME, api.too_old)
        options = BuildOptions.parse(request.options)
        profile = batch_profile(request.batch_sizes)
        if options.dla_core is not None and request.precision == Precision.FP32:
            raise ValueError("DLA runs FP16 or INT8 layers only: ask for fp16 or int8 with dla_core")
        recipe = model_recipe(api, model_path, request)
        gpu = find_gpu(cuda)
        context = cuda.Device(gpu.index).retain_primary_context()
        context.push()
        try:
            runtime = _Runtime(trt, options.dla_core)
            engine, details = self._engine(trt, api, runtime, model_path, request, options, profile, gpu, recipe)
            loaded = TensorRTEngine(trt, cuda, context, runtime, engine, profile[2], details, options.profile)
        except BaseException:
            cuda.Context.pop()
            context.detach()
            raise
        cuda.Context.pop()
        return loaded

    def _engine(
        self,
        trt: Any,
        api: TrtApi,
        runtime: _Runtime,
        model_path: Path,
        request: BuildRequest,
        options: BuildOptions,
        profile: tuple[int, int, int],
        gpu: Gpu,
        recipe: ModelRecipe,
    ) -> tuple[Any, dict[str, str]]:
        """Deserialize the cached engine for this exact key, or build (and cache) it."""
        model_sha = request.model_sha256 or _sha256(model_path.read_bytes())
        # Everything that changes the engine: the ONNX (and how it was derived), where and with what it is built.
        key_parts: dict[str, Any] = {
            "model_sha256": model_sha,
            "gpu": gpu.name,
            "compute_capability": gpu.sm,
            "tensorrt": api.version,
            "precision": request.precision.value,
            "batch_profile": "{}/{}/{}".format(*profile),
            "dla_core": "none" if options.dla_core is None else str(options.dla_core),
            "workspace_mb": str(options.workspace_mb),
            **recipe.key_parts,
        }
        key = CacheKey(NAME, key_parts)
        cache = request.cache_dir / NAME if request.cache_dir is not None else None
        engine_path = key.path(cache, ".engine") if cache is not None else None
        details = {
            "tensorrt_version": api.version,
            "gpu_name": gpu.name,
            "compute_capability": gpu.sm,
            "batch_profile": "min {} / opt {} / max {}".format(*profile),
            "dla_core": key_parts["dla_core"],
            "workspace_mb": key_parts["workspace_mb"],
            "precision_route": self._precision_route(api, request.precision, recipe),
            "operator_profile": (
                f"{PROFILE_SOURCE}: per-layer mean time after the timed phases, "
                f"{PROFILE_RUNS} runs after a warm-up run (at most {PROFILE_MAX_S:g} s)"
                if options.profile
                else "off: backend_options profile: on asks for one (a separate profiled pass)"
            ),
            **key.details("off"),
        }
        if engine_path is not None and engine_cache.lookup(engine_path):
            t0 = time.perf_counter()
            engine = runtime.deserialize(engine_path.read_bytes())
            if engine is not None:
                details.update(engine_cache="hit", engine_file=engine_path.name)
                details["engine_deserialize_s"] = f"{time.perf_counter() - t0:.3f}"
                return engine, details
            engine_path.unlink()  # unreadable (another TensorRT build, a changed GPU driver): rebuild it
        with ExitStack() as stack:
            # A prepared ONNX (quantized / FP16) is cached beside the engines; without a cache it is temporary.
            work = cache if cache is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
            onnx_path, prepared = prepare_model(recipe, model_path, request, model_sha, work)
            details.update(prepared)
            plan, build_details = self._build(trt, api, runtime, onnx_path, request, options, profile)
        details.update(build_details)
        if engine_path is not None:
            write_atomically(engine_path, plan)
            engine_cache.store(engine_path)
            details.update(engine_cache="miss", engine_file=engine_path.name)
        engine = runtime.deserialize(plan)
        if engine is None:
            raise EngineBuildError(f"TensorRT could not deserialize the engine it built: {runtime.logger_tail()}")
        return engine, details

    @staticmethod
    def _precision_route(api: TrtApi, precision: Precision, recipe: ModelRecipe) -> str:
        typing = "weakly typed network" if api.precision_flags else "strongly typed network"
        if precision == Precision.FP32:
            return f"fp32 ONNX, {typing}"
        if precision == Precision.FP16:
            return api.fp16_route
        flag = "BuilderFlag.INT8 + " if api.precision_flags else ""
        return f"{flag}explicit Q/DQ ({recipe.key_parts['int8']}), {typing}"

    def _build(
        self,
        trt: Any,
        api: TrtApi,
        runtime: _Runtime,
        model_path: Path,
        request: BuildRequest,
        options: BuildOptions,
        profile: tuple[int, int, int],
    ) -> tuple[Any, dict[str, str]]:
        logger = runtime.logger
        builder = trt.Builder(logger)
        if options.dla_core is not None and not 0 <= options.dla_core < builder.num_DLA_cores:
            cores = builder.num_DLA_cores
            raise ValueError(
                f"dla_core={options.dla_core} asked but this device has "
                + (f"DLA cores 0..{cores - 1}" if cores else "no DLA cores")
            )
        network = builder.create_network(api.network_flags(trt))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(model_path)):
            errors = [_parser_error(parser.get_error(i)) for i in range(parser.num_errors)]
            raise EngineBuildError(
                f"TensorRT's ONNX parser rejected {model_path.name}: " + ("; ".join(errors) or runtime.logger_tail())
            )
        if network.num_inputs != 1:
            raise ValueError(f"the tensorrt backend runs single-input models; this one has {network.num_inputs}")
        tensor = network.get_input(0)
        shape = tuple(int(d) for d in tensor.shape)
        if any(d < 0 for d in shape[1:]):
            raise ValueError(f"input {tensor.name} has dynamic dims {shape} beyond the batch dim; only batch may vary")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
        if shape[0] < 0:
            optimization_profile = builder.create_optimization_profile()
            optimization_profile.set_shape(tensor.name, *((b, *shape[1:]) for b in profile))
            config.add_optimization_profile(optimization_profile)
        elif set(request.batch_sizes) != {shape[0]}:
            raise ValueError(
                f"the model's batch dim is fixed at {shape[0]}; cannot run batch sizes {request.batch_sizes}"
            )
        for flag in api.builder_flags(trt, request.precision):
            config.set_flag(flag)
        if options.dla_core is not None:
            config.default_device_type = trt.DeviceType.DLA
            config.DLA_core = options.dla_core
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers the DLA cannot run go to the GPU
        t0 = time.perf_counter()
        plan = builder.build_serialized_network(network, config)
        details = {"engine_build_s": f"{time.perf_counter() - t0:.3f}"}
        if plan is None:
            raise EngineBuildError(f"TensorRT could not build the engine: {runtime.logger_tail()}")
        return plan, details
