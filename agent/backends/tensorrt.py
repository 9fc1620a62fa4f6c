"""TensorRT backend: ONNX -> serialized TensorRT engine (FP32/FP16/INT8, optional DLA), run with pycuda.

Written against the TensorRT Python API and pycuda's driver API. TensorRT 8.6 and 10.x both
have the name-based I/O API (`set_input_shape`, `set_tensor_address`, `execute_async_v3`,
added in 8.5), so one code path serves both; the binding-index API removed in 10 is not used.

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
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.backends.base import BuildRequest
from agent.backends.tensorrt_calibrator import make_entropy_calibrator, write_atomically
from edgelab.domain import Precision, RuntimeInfo
from edgelab.errors import BackendUnavailable, MissingExtraError

NAME = "tensorrt"
SCOPE = "end-to-end: H2D copy + GPU compute + D2H copy (pycuda stream, synchronized)"
COMPUTE_SCOPE = "compute-only: GPU execution between CUDA events"
DEFAULT_WORKSPACE_MB = 1024
OPTIONS = ("dla_core", "workspace_mb")  # what BuildRequest.options may hold for this backend
LOG_LINES_KEPT = 50


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


def _major(trt: Any) -> int:
    return int(str(trt.__version__).split(".")[0])


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


@dataclass(frozen=True)
class BuildOptions:
    dla_core: int | None = None
    workspace_mb: int = DEFAULT_WORKSPACE_MB

    @classmethod
    def parse(cls, options: dict[str, str]) -> BuildOptions:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"unknown tensorrt option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")

        def integer(key: str, minimum: int) -> int | None:
            if key not in options:
                return None
            try:
                value = int(options[key])
            except ValueError:
                raise ValueError(f"tensorrt option {key}={options[key]!r} is not an integer") from None
            if value < minimum:
                raise ValueError(f"tensorrt option {key} must be >= {minimum}, got {value}")
            return value

        workspace = integer("workspace_mb", 1)
        return cls(integer("dla_core", 0), DEFAULT_WORKSPACE_MB if workspace is None else workspace)


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

    def __init__(
        self, trt: Any, cuda: Any, cuda_context: Any, runtime: Any, engine: Any, max_batch: int, details: dict[str, str]
    ) -> None:
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
    formats: tuple[str, ...] = ("onnx",)

    def __init__(self) -> None:
        # Builder.platform_has_fast_* per (TensorRT version, GPU): creating a builder costs a
        # context and hundreds of ms, and the answer never changes while the agent runs.
        self._builder_precisions: dict[tuple[str, str], tuple[bool, bool]] = {}

    def probe(self) -> RuntimeInfo:
        """Cheap and never raises: what is missing becomes `available=False` with the reason."""
        try:
            trt, cuda = _import_runtime()
        except MissingExtraError as exc:
            return RuntimeInfo(self.name, available=False, reason=str(exc))
        except (ImportError, OSError) as exc:
            return RuntimeInfo(self.name, available=False, reason=f"no CUDA device ({exc})")
        try:
            gpu = find_gpu(cuda)
            fp16, int8 = self._fast_precisions(trt, cuda, gpu)
        except BackendUnavailable as exc:
            return RuntimeInfo(self.name, available=False, reason=exc.reason)
        except Exception as exc:  # a broken driver or install must not take the agent down
            return RuntimeInfo(self.name, available=False, reason=f"probe failed: {type(exc).__name__}: {exc}")
        precisions = [Precision.FP32]
        if fp16:
            precisions.append(Precision.FP16)
        if int8 and hasattr(trt, "IInt8EntropyCalibrator2"):  # implicit INT8 calibration API present
            precisions.append(Precision.INT8)
        # RuntimeInfo has no details field: the GPU rides in the version string agents report.
        version = f"{trt.__version__} on {gpu.name} (sm {gpu.sm})"
        return RuntimeInfo(self.name, available=True, version=version, precisions=precisions)

    def _fast_precisions(self, trt: Any, cuda: Any, gpu: Gpu) -> tuple[bool, bool]:
        if _major(trt) >= 10:  # platform_has_fast_* are deprecated from TensorRT 10 on
            return fast_precisions(gpu.compute_capability)
        key = (str(trt.__version__), gpu.name)
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
        options = BuildOptions.parse(request.options)
        profile = batch_profile(request.batch_sizes)
        if request.precision == Precision.INT8 and (request.calibration is None or len(request.calibration) == 0):
            raise ValueError("INT8 needs a calibration set (x_calib) shipped with the test set; this one has none")
        if options.dla_core is not None and request.precision == Precision.FP32:
            raise ValueError("DLA runs FP16 or INT8 layers only: ask for fp16 or int8 with dla_core")
        gpu = find_gpu(cuda)
        context = cuda.Device(gpu.index).retain_primary_context()
        context.push()
        try:
            runtime = _Runtime(trt, options.dla_core)
            engine, details = self._engine(trt, cuda, runtime, model_path, request, options, profile, gpu)
            loaded = TensorRTEngine(trt, cuda, context, runtime, engine, profile[2], details)
        except BaseException:
            cuda.Context.pop()
            context.detach()
            raise
        cuda.Context.pop()
        return loaded

    def _engine(
        self,
        trt: Any,
        cuda: Any,
        runtime: _Runtime,
        model_path: Path,
        request: BuildRequest,
        options: BuildOptions,
        profile: tuple[int, int, int],
        gpu: Gpu,
    ) -> tuple[Any, dict[str, str]]:
        """Deserialize the cached engine for this exact key, or build (and cache) it."""
        model_sha = request.model_sha256 or _sha256(model_path.read_bytes())
        calibration_sha = (
            _sha256(np.ascontiguousarray(request.calibration).tobytes())
            if request.precision == Precision.INT8 and request.calibration is not None
            else ""
        )
        key_parts = {
            "model_sha256": model_sha,
            "gpu": gpu.name,
            "compute_capability": gpu.sm,
            "tensorrt": str(trt.__version__),
            "precision": request.precision.value,
            "batch_profile": list(profile),
            "dla_core": options.dla_core,
            "calibration_sha256": calibration_sha,
        }
        key = _sha256(json.dumps(key_parts, sort_keys=True).encode())[:32]
        cache = request.cache_dir / NAME if request.cache_dir is not None else None
        engine_path = cache / f"{key}.engine" if cache is not None else None
        details = {
            "tensorrt_version": str(trt.__version__),
            "gpu_name": gpu.name,
            "compute_capability": gpu.sm,
            "batch_profile": "min {} / opt {} / max {}".format(*profile),
            "dla_core": "none" if options.dla_core is None else str(options.dla_core),
            "workspace_mb": str(options.workspace_mb),
            "engine_cache": "off",
        }
        if engine_path is not None and engine_path.is_file():
            t0 = time.perf_counter()
            engine = runtime.deserialize(engine_path.read_bytes())
            if engine is not None:
                details.update(engine_cache="hit", engine_file=engine_path.name)
                details["engine_deserialize_s"] = f"{time.perf_counter() - t0:.3f}"
                return engine, details
            engine_path.unlink()  # unreadable (truncated, or another TensorRT build): rebuild it
        # The calibration table depends on model, samples, TensorRT version and batch, not on the GPU.
        calibration_key = _sha256(f"{model_sha} {calibration_sha} {trt.__version__} {profile[1]}".encode())[:32]
        calibration_cache = cache / f"{calibration_key}.calib" if cache is not None and calibration_sha else None
        plan, build_details = self._build(trt, cuda, runtime, model_path, request, options, profile, calibration_cache)
        details.update(build_details)
        if engine_path is not None:
            write_atomically(engine_path, plan)
            details.update(engine_cache="miss", engine_file=engine_path.name)
        engine = runtime.deserialize(plan)
        if engine is None:
            raise EngineBuildError(f"TensorRT could not deserialize the engine it built: {runtime.logger_tail()}")
        return engine, details

    def _build(
        self,
        trt: Any,
        cuda: Any,
        runtime: _Runtime,
        model_path: Path,
        request: BuildRequest,
        options: BuildOptions,
        profile: tuple[int, int, int],
        calibration_cache: Path | None,
    ) -> tuple[Any, dict[str, str]]:
        logger = runtime.logger
        builder = trt.Builder(logger)
        if options.dla_core is not None and not 0 <= options.dla_core < builder.num_DLA_cores:
            cores = builder.num_DLA_cores
            raise ValueError(
                f"dla_core={options.dla_core} asked but this device has "
                + (f"DLA cores 0..{cores - 1}" if cores else "no DLA cores")
            )
        # Explicit batch is the only mode from TensorRT 10 on (the flag is deprecated there).
        flags = 0 if _major(trt) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
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
        optimization_profile = None
        if shape[0] < 0:
            optimization_profile = builder.create_optimization_profile()
            optimization_profile.set_shape(tensor.name, *((b, *shape[1:]) for b in profile))
            config.add_optimization_profile(optimization_profile)
        elif set(request.batch_sizes) != {shape[0]}:
            raise ValueError(
                f"the model's batch dim is fixed at {shape[0]}; cannot run batch sizes {request.batch_sizes}"
            )
        if request.precision == Precision.FP16:
            config.set_flag(trt.BuilderFlag.FP16)
        calibrator = None
        if request.precision == Precision.INT8:
            assert request.calibration is not None  # checked in load()
            if tuple(request.calibration.shape[1:]) != shape[1:]:
                raise ValueError(f"calibration samples of shape {request.calibration.shape[1:]}, model input {shape}")
            config.set_flag(trt.BuilderFlag.INT8)
            dtype = np.dtype(trt.nptype(tensor.dtype))
            # Calibration runs at the profile's opt shape (TensorRT 10 uses the first profile's).
            batch = profile[1] if shape[0] < 0 else shape[0]
            calibrator = make_entropy_calibrator(trt, cuda, request.calibration, batch, dtype, calibration_cache)
            config.int8_calibrator = calibrator
            if optimization_profile is not None and _major(trt) < 10:
                config.set_calibration_profile(optimization_profile)
        if options.dla_core is not None:
            config.default_device_type = trt.DeviceType.DLA
            config.DLA_core = options.dla_core
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers the DLA cannot run go to the GPU
        t0 = time.perf_counter()
        try:
            plan = builder.build_serialized_network(network, config)
        finally:
            if calibrator is not None:
                calibrator.free()
        details = {"engine_build_s": f"{time.perf_counter() - t0:.3f}"}
        if calibrator is not None:
            if calibrator.error is not None:
                raise EngineBuildError(f"INT8 calibration failed: {calibrator.error}") from calibrator.error
            details["calibration"] = (
                "entropy calibrator 2, cache hit"
                if calibrator.cache_hit
                else f"entropy calibrator 2, {calibrator.batches_fed} batches of {calibrator.get_batch_size()}"
            )
        if plan is None:
            raise EngineBuildError(f"TensorRT could not build the engine: {runtime.logger_tail()}")
        return plan, details
