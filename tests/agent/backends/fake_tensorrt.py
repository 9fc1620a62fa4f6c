"""Fake `tensorrt` and `pycuda.driver` modules for machines without an NVIDIA GPU.

They expose the names agent/backends/tensorrt.py calls and keep the real behaviour the
backend relies on: a dynamic input without an optimization profile fails the build, an
INT8 build drives the calibrator (read cache -> get_batch until None -> write cache),
device memory and pinned buffers need a current CUDA context, async copies, kernels and
event records are queued on their stream and run only at `synchronize()`, events time the
queued kernels, and an engine deserializes only on the same TensorRT version and DLA core.

The "network" is read from the real ONNX file (inputs/outputs, dynamic dims as -1) and
computes out[i, j] = (j + 1) * sum(x[i]), so tests can check the data that came back.
"""

from __future__ import annotations

import enum
import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import pytest


def expected_output(x: np.ndarray, classes: int) -> np.ndarray:
    """What the fake engine computes for a batch."""
    sums = x.reshape(len(x), -1).sum(axis=1, dtype=np.float32)
    out: np.ndarray = (sums[:, None] * np.arange(1, classes + 1, dtype=np.float32)).astype(np.float32)
    return out


@dataclass
class BuildRecord:
    """What one `build_serialized_network` call was asked for."""

    flags: set[str]
    network_flags: int
    workspace: int | None
    profiles: list[dict[str, tuple[tuple[int, ...], ...]]]
    calibration_profile_set: bool
    default_device_type: str
    dla_core: int
    calibration_batches: list[np.ndarray] = field(default_factory=list)
    calibration_cache_read: bytes | None = None


@dataclass
class FakeGpu:
    """Knobs of the fake machine and what the backend did to it."""

    devices: int = 1
    name: str = "Fake RTX 4000"
    compute_capability: tuple[int, int] = (8, 9)
    tensorrt_version: str = "10.3.0"
    dla_cores: int = 0
    fast_fp16: bool = True  # Builder.platform_has_fast_fp16, TensorRT < 10 only
    fast_int8: bool = True
    init_error: str = ""  # cuInit fails with this message
    build_error: str = ""  # the builder logs this and returns None
    kernel_ms_per_sample: float = 0.25
    builds: list[BuildRecord] = field(default_factory=list)
    builders_created: int = 0
    memory: dict[int, np.ndarray] = field(default_factory=dict)
    pinned: list[np.ndarray] = field(default_factory=list)
    streams: dict[int, Any] = field(default_factory=dict)
    contexts_retained: int = 0
    clock_ms: float = 0.0
    next_address: int = 0x7F0000000000
    _local: threading.local = field(default_factory=threading.local)

    @property
    def context_stack(self) -> list[Any]:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        stack: list[Any] = self._local.stack
        return stack

    def require_context(self, what: str) -> None:
        if not self.context_stack:
            raise self.cuda.LogicError(f"{what} failed: invalid device context")

    def device_array(self, address: int) -> np.ndarray:
        if address not in self.memory:
            raise self.cuda.LogicError(f"illegal memory access at {address:#x}")
        return self.memory[address]

    def is_pinned(self, array: np.ndarray) -> bool:
        return any(np.shares_memory(array, p) for p in self.pinned)

    cuda: Any = None  # the fake pycuda.driver module, set by make_modules


# ---------------------------------------------------------------- pycuda.driver


class _CudaError(Exception):
    pass


class _LogicError(_CudaError):
    pass


class _RuntimeError(_CudaError):
    pass


class _Device:
    gpu: FakeGpu

    def __init__(self, index: int) -> None:
        if index >= self.gpu.devices:
            raise _LogicError(f"cuDeviceGet failed: invalid device ordinal {index}")
        self.index = index

    @classmethod
    def count(cls) -> int:
        return cls.gpu.devices

    def name(self) -> str:
        return self.gpu.name

    def compute_capability(self) -> tuple[int, int]:
        return self.gpu.compute_capability

    def retain_primary_context(self) -> _Context:
        self.gpu.contexts_retained += 1
        return _Context(self.gpu)


class _Context:
    gpu: FakeGpu

    def __init__(self, gpu: FakeGpu) -> None:
        self._gpu = gpu
        self.detached = False

    def push(self) -> None:
        if self.detached:
            raise _LogicError("cuCtxPushCurrent failed: context is destroyed")
        self._gpu.context_stack.append(self)

    @classmethod
    def pop(cls) -> None:
        if not cls.gpu.context_stack:
            raise _LogicError("cuCtxPopCurrent failed: invalid context")
        cls.gpu.context_stack.pop()

    def detach(self) -> None:
        self.detached = True
        self._gpu.contexts_retained -= 1


class _DeviceAllocation:
    def __init__(self, gpu: FakeGpu, nbytes: int) -> None:
        gpu.require_context("cuMemAlloc")
        self._gpu = gpu
        self.address = gpu.next_address
        gpu.next_address += (nbytes + 255) // 256 * 256 + 256
        gpu.memory[self.address] = np.zeros(nbytes, np.uint8)

    def __int__(self) -> int:
        return self.address

    def free(self) -> None:
        self._gpu.require_context("cuMemFree")
        del self._gpu.memory[self.address]


class _Stream:
    gpu: FakeGpu

    def __init__(self) -> None:
        self.gpu.require_context("cuStreamCreate")
        self.handle = id(self)
        self.queue: list[Callable[[], None]] = []
        self.gpu.streams[self.handle] = self

    def synchronize(self) -> None:
        while self.queue:
            self.queue.pop(0)()


class _Event:
    gpu: FakeGpu

    def __init__(self) -> None:
        self.time_ms: float | None = None

    def record(self, stream: _Stream) -> None:
        self.time_ms = None

        def done() -> None:
            self.time_ms = self.gpu.clock_ms

        stream.queue.append(done)

    def time_since(self, start: _Event) -> float:
        if self.time_ms is None or start.time_ms is None:
            raise _LogicError("cuEventElapsedTime failed: device not ready")
        return self.time_ms - start.time_ms


def _address(pointer: Any) -> int:
    return int(pointer)


def _module_pycuda(gpu: FakeGpu) -> tuple[ModuleType, ModuleType]:
    cuda = ModuleType("pycuda.driver")
    gpu.cuda = cuda
    bound = {"gpu": gpu}
    cuda.Error = _CudaError  # type: ignore[attr-defined]
    cuda.LogicError = _LogicError  # type: ignore[attr-defined]
    cuda.RuntimeError = _RuntimeError  # type: ignore[attr-defined]
    cuda.Device = type("Device", (_Device,), bound)  # type: ignore[attr-defined]
    cuda.Context = type("Context", (_Context,), bound)  # type: ignore[attr-defined]
    cuda.Stream = type("Stream", (_Stream,), bound)  # type: ignore[attr-defined]
    cuda.Event = type("Event", (_Event,), bound)  # type: ignore[attr-defined]

    def init() -> None:
        if gpu.init_error:
            raise _RuntimeError(f"cuInit failed: {gpu.init_error}")

    def mem_alloc(nbytes: int) -> _DeviceAllocation:
        return _DeviceAllocation(gpu, nbytes)

    def pagelocked_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        gpu.require_context("cuMemHostAlloc")
        array = np.empty(shape, dtype)
        gpu.pinned.append(array)
        return array

    def memcpy_htod(dest: Any, src: np.ndarray) -> None:
        gpu.require_context("cuMemcpyHtoD")
        gpu.device_array(_address(dest))[: src.nbytes] = np.frombuffer(np.ascontiguousarray(src).tobytes(), np.uint8)

    def memcpy_htod_async(dest: Any, src: np.ndarray, stream: _Stream) -> None:
        gpu.require_context("cuMemcpyHtoDAsync")
        # The real call silently degrades to a synchronous copy from pageable memory; refuse it here.
        if not gpu.is_pinned(src):
            raise _LogicError("async copy from pageable host memory")
        stream.queue.append(lambda: memcpy_htod(dest, src))  # reads the host buffer when it runs

    def memcpy_dtoh_async(dest: np.ndarray, src: Any, stream: _Stream) -> None:
        gpu.require_context("cuMemcpyDtoHAsync")
        if not gpu.is_pinned(dest):
            raise _LogicError("async copy into pageable host memory")

        def run() -> None:
            dest.view(np.uint8).reshape(-1)[:] = gpu.device_array(_address(src))[: dest.nbytes]

        stream.queue.append(run)

    for fn in (init, mem_alloc, pagelocked_empty, memcpy_htod, memcpy_htod_async, memcpy_dtoh_async):
        setattr(cuda, fn.__name__, fn)
    package = ModuleType("pycuda")
    package.driver = cuda  # type: ignore[attr-defined]
    package.__path__ = []  # a package, so `import pycuda.driver` resolves through sys.modules
    return package, cuda


# ---------------------------------------------------------------- tensorrt


class Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class _ILogger:
    Severity = Severity

    def __init__(self) -> None:
        pass

    def log(self, severity: Any, msg: str) -> None:
        raise NotImplementedError  # the backend's subclass implements it, as with the real ILogger


class NetworkDefinitionCreationFlag(enum.IntEnum):
    EXPLICIT_BATCH = 0


class BuilderFlag(enum.Enum):
    FP16 = "FP16"
    INT8 = "INT8"
    GPU_FALLBACK = "GPU_FALLBACK"


class DeviceType(enum.Enum):
    GPU = "GPU"
    DLA = "DLA"


class MemoryPoolType(enum.Enum):
    WORKSPACE = "WORKSPACE"


class TensorIOMode(enum.Enum):
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"


class DataType(enum.Enum):
    FLOAT = "FLOAT"


def nptype(dtype: DataType) -> type:
    return {DataType.FLOAT: np.float32}[dtype]


class _IInt8EntropyCalibrator2:
    def __init__(self) -> None:
        pass


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: DataType = DataType.FLOAT


class _Network:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.inputs: list[_Tensor] = []
        self.outputs: list[_Tensor] = []

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, index: int) -> _Tensor:
        return self.inputs[index]


class ErrorCode(enum.Enum):
    MODEL_DESERIALIZE_FAILED = 5
    INVALID_GRAPH = 4


class _ParserError:
    def __init__(self, code: ErrorCode, desc: str) -> None:
        self._code, self._desc = code, desc

    def code(self) -> ErrorCode:
        return self._code

    def node(self) -> int:
        return -1

    def desc(self) -> str:
        return self._desc


class _OnnxParser:
    gpu: FakeGpu

    def __init__(self, network: _Network, logger: _ILogger) -> None:
        self._network = network
        self._errors: list[_ParserError] = []

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> _ParserError:
        return self._errors[index]

    def parse_from_file(self, path: str) -> bool:
        import onnx

        explicit = 1 << int(NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        if int(self.gpu.tensorrt_version.split(".")[0]) < 10 and not self._network.flags & explicit:
            self._errors.append(
                _ParserError(ErrorCode.INVALID_GRAPH, "the ONNX parser needs an explicit-batch network")
            )
            return False
        try:
            model = onnx.load(path)
        except Exception as exc:
            self._errors.append(_ParserError(ErrorCode.MODEL_DESERIALIZE_FAILED, f"Failed to parse ONNX model: {exc}"))
            return False
        weights = {i.name for i in model.graph.initializer}

        def tensor(value: Any) -> _Tensor:
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim)
            return _Tensor(value.name, dims)

        self._network.inputs = [tensor(v) for v in model.graph.input if v.name not in weights]
        self._network.outputs = [tensor(v) for v in model.graph.output]
        return True


class _OptimizationProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

    def set_shape(self, name: str, min: Any, opt: Any, max: Any) -> None:
        self.shapes[name] = (tuple(min), tuple(opt), tuple(max))


class _BuilderConfig:
    def __init__(self) -> None:
        self.flags: set[BuilderFlag] = set()
        self.workspace: int | None = None
        self.profiles: list[_OptimizationProfile] = []
        self.calibration_profile: _OptimizationProfile | None = None
        self.int8_calibrator: Any = None
        self.default_device_type = DeviceType.GPU
        self.DLA_core = -1

    def set_flag(self, flag: BuilderFlag) -> None:
        self.flags.add(flag)

    def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
        self.workspace = size

    def add_optimization_profile(self, profile: _OptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def set_calibration_profile(self, profile: _OptimizationProfile) -> None:
        self.calibration_profile = profile


class _Builder:
    gpu: FakeGpu

    def __init__(self, logger: _ILogger) -> None:
        self.gpu.builders_created += 1
        self._logger = logger

    def _legacy(self, value: bool) -> bool:
        if int(self.gpu.tensorrt_version.split(".")[0]) >= 10:
            raise AttributeError("platform_has_fast_* is deprecated in TensorRT 10; the fake has none")
        return value

    @property
    def platform_has_fast_fp16(self) -> bool:
        return self._legacy(self.gpu.fast_fp16)

    @property
    def platform_has_fast_int8(self) -> bool:
        return self._legacy(self.gpu.fast_int8)

    @property
    def num_DLA_cores(self) -> int:
        return self.gpu.dla_cores

    def create_network(self, flags: int = 0) -> _Network:
        return _Network(flags)

    def create_builder_config(self) -> _BuilderConfig:
        return _BuilderConfig()

    def create_optimization_profile(self) -> _OptimizationProfile:
        return _OptimizationProfile()

    def _fail(self, message: str) -> None:
        self._logger.log(Severity.ERROR, message)

    def build_serialized_network(self, network: _Network, config: _BuilderConfig) -> bytes | None:
        gpu = self.gpu
        gpu.require_context("build")
        record = BuildRecord(
            flags={f.value for f in config.flags},
            network_flags=network.flags,
            workspace=config.workspace,
            profiles=[p.shapes for p in config.profiles],
            calibration_profile_set=config.calibration_profile is not None,
            default_device_type=config.default_device_type.value,
            dla_core=config.DLA_core,
        )
        gpu.builds.append(record)
        if gpu.build_error:
            self._fail(gpu.build_error)
            return None
        dynamic = [t.name for t in network.inputs if -1 in t.shape]
        if any(t not in p.shapes for p in config.profiles for t in dynamic) or (dynamic and not config.profiles):
            self._fail("Network has dynamic or shape inputs, but no optimization profile has been defined.")
            return None
        if config.default_device_type == DeviceType.DLA and not 0 <= config.DLA_core < gpu.dla_cores:
            self._fail(f"DLA core {config.DLA_core} is not available")
            return None
        if BuilderFlag.INT8 in config.flags and not self._calibrate(network, config, record):
            return None
        profile = config.profiles[0].shapes if config.profiles else {}
        plan = {
            "magic": "fake-trt-plan",
            "tensorrt": gpu.tensorrt_version,
            "dla_core": config.DLA_core if config.default_device_type == DeviceType.DLA else -1,
            "inputs": [[t.name, t.shape, profile.get(t.name)] for t in network.inputs],
            "outputs": [[t.name, t.shape] for t in network.outputs],
        }
        return json.dumps(plan).encode()

    def _calibrate(self, network: _Network, config: _BuilderConfig, record: BuildRecord) -> bool:
        calibrator = config.int8_calibrator
        if calibrator is None:
            self._fail("INT8 requested but no calibrator or dynamic ranges were given")
            return False
        tensor = network.inputs[0]
        shape = tensor.shape
        if -1 in shape:
            legacy = int(self.gpu.tensorrt_version.split(".")[0]) < 10
            profile = config.calibration_profile if legacy else config.profiles[0]
            if profile is None:
                self._fail("Calibration profile must be set for dynamic-shape INT8 calibration")
                return False
            shape = profile.shapes[tensor.name][1]  # calibration runs at the opt shape
        cache = calibrator.read_calibration_cache()
        if cache:
            record.calibration_cache_read = bytes(cache)
            return True
        while pointers := calibrator.get_batch([tensor.name]):
            nbytes = int(np.prod(shape)) * 4
            data = self.gpu.device_array(int(pointers[0]))[:nbytes].copy().view(np.float32).reshape(shape)
            record.calibration_batches.append(data)
        table = f"fake-calibration-table {len(record.calibration_batches)} batches".encode()
        calibrator.write_calibration_cache(memoryview(table))
        return True


class _Runtime:
    gpu: FakeGpu

    def __init__(self, logger: _ILogger) -> None:
        self._logger = logger
        self.DLA_core = -1

    def deserialize_cuda_engine(self, data: Any) -> _Engine | None:
        self.gpu.require_context("deserialize")
        try:
            plan = json.loads(bytes(data))
            assert plan["magic"] == "fake-trt-plan"
        except Exception:
            self._logger.log(Severity.ERROR, "IRuntime::deserializeCudaEngine: Serialization assertion magicTag failed")
            return None
        if plan["tensorrt"] != self.gpu.tensorrt_version:
            self._logger.log(Severity.ERROR, "The engine plan file is not compatible with this version of TensorRT")
            return None
        if plan["dla_core"] != -1 and plan["dla_core"] != self.DLA_core:
            self._logger.log(
                Severity.ERROR, f"engine built for DLA core {plan['dla_core']}, runtime on {self.DLA_core}"
            )
            return None
        return _Engine(self.gpu, plan, self._logger)


class _Engine:
    def __init__(self, gpu: FakeGpu, plan: dict[str, Any], logger: _ILogger) -> None:
        self.gpu = gpu
        self.logger = logger
        self.inputs = {name: (tuple(shape), profile) for name, shape, profile in plan["inputs"]}
        self.outputs = {name: tuple(shape) for name, shape in plan["outputs"]}
        self._names = [*self.inputs, *self.outputs]

    @property
    def num_io_tensors(self) -> int:
        return len(self._names)

    def get_tensor_name(self, index: int) -> str:
        return str(self._names[index])

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode.INPUT if name in self.inputs else TensorIOMode.OUTPUT

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.inputs[name][0] if name in self.inputs else self.outputs[name]

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType.FLOAT

    def create_execution_context(self) -> _ExecutionContext:
        self.gpu.require_context("createExecutionContext")
        return _ExecutionContext(self)


class _ExecutionContext:
    def __init__(self, engine: _Engine) -> None:
        self._engine = engine
        self._input_shapes = {name: shape for name, (shape, _) in engine.inputs.items()}
        self._addresses: dict[str, int] = {}
        self.input_shapes_set: list[tuple[int, ...]] = []

    def set_input_shape(self, name: str, shape: Any) -> bool:
        shape = tuple(shape)
        low, _, high = self._engine.inputs[name][1]
        if not all(lo <= s <= hi for lo, s, hi in zip(low, shape, high, strict=True)):
            self._engine.logger.log(Severity.ERROR, f"setInputShape: {shape} is outside the profile {low}..{high}")
            return False
        self._input_shapes[name] = shape
        self.input_shapes_set.append(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if name in self._input_shapes:
            return self._input_shapes[name]
        batch = next(iter(self._input_shapes.values()))[0]
        return (batch, *self._engine.outputs[name][1:])

    def set_tensor_address(self, name: str, address: int) -> bool:
        self._addresses[name] = int(address)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        gpu = self._engine.gpu
        gpu.require_context("enqueueV3")
        missing = [n for n in self._engine._names if n not in self._addresses]
        ((name, shape),) = self._input_shapes.items()
        if missing or -1 in shape:
            self._engine.logger.log(Severity.ERROR, f"enqueueV3: addresses {missing} or input shape {shape} unset")
            return False
        output = next(iter(self._engine.outputs))
        out_shape = self.get_tensor_shape(output)

        def kernel() -> None:
            nbytes = int(np.prod(shape)) * 4
            x = gpu.device_array(self._addresses[name])[:nbytes].view(np.float32).reshape(shape)
            y = expected_output(x, out_shape[1])
            gpu.device_array(self._addresses[output])[: y.nbytes] = y.view(np.uint8).reshape(-1)
            gpu.clock_ms += gpu.kernel_ms_per_sample * shape[0]

        gpu.streams[stream_handle].queue.append(kernel)
        return True


def _module_tensorrt(gpu: FakeGpu) -> ModuleType:
    trt = ModuleType("tensorrt")
    bound = {"gpu": gpu}
    names: dict[str, Any] = {
        "__version__": gpu.tensorrt_version,
        "ILogger": _ILogger,
        "NetworkDefinitionCreationFlag": NetworkDefinitionCreationFlag,
        "BuilderFlag": BuilderFlag,
        "DeviceType": DeviceType,
        "MemoryPoolType": MemoryPoolType,
        "TensorIOMode": TensorIOMode,
        "DataType": DataType,
        "ErrorCode": ErrorCode,
        "nptype": nptype,
        "IInt8EntropyCalibrator2": _IInt8EntropyCalibrator2,
        "Builder": type("Builder", (_Builder,), bound),
        "OnnxParser": type("OnnxParser", (_OnnxParser,), bound),
        "Runtime": type("Runtime", (_Runtime,), bound),
    }
    for key, value in names.items():
        setattr(trt, key, value)
    return trt


def install(monkeypatch: pytest.MonkeyPatch, gpu: FakeGpu) -> FakeGpu:
    """Put the fake `tensorrt`, `pycuda` and `pycuda.driver` where `import` finds them."""
    package, cuda = _module_pycuda(gpu)
    monkeypatch.setitem(sys.modules, "tensorrt", _module_tensorrt(gpu))
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    return gpu
