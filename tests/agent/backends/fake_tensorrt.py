"""Fake `tensorrt` (one per API version) and `pycuda.driver` modules for machines without an NVIDIA GPU.

`FakeGpu(tensorrt_version=...)` picks the API: the module and its classes have exactly the names
that release has (see `Features`), and a name the release lacks raises AttributeError on the
module, the class and the instance, like the real bindings (`hasattr` is False for it):

| version | name-based I/O | EXPLICIT_BATCH           | BuilderFlag.FP16/INT8, int8_calibrator | platform_has_fast_* | device_memory_size / _v2 |
|---------|----------------|--------------------------|----------------------------------------|---------------------|--------------------------|
| 8.2     | no (bindings)  | needed by the ONNX parser | yes                                    | yes                 | yes / no                 |
| 8.5/8.6 | yes            | needed by the ONNX parser | yes                                    | yes                 | yes / no                 |
| 10.x    | yes            | ignored                  | yes (weak typing)                      | yes (deprecated)    | yes / from 10.1          |
| 11.x    | yes            | gone                     | removed: strongly typed only           | removed             | removed / yes            |

The fakes keep the real behaviour the backend relies on: a dynamic input without an
optimization profile fails the build; a weakly typed network with Q/DQ nodes builds only with
the INT8 flag, and the INT8 flag without Q/DQ nodes or a calibrator fails; device memory and
pinned buffers need a current CUDA context; async copies, kernels and event records are queued
on their stream and run only at `synchronize()`; events time the queued kernels; an engine
deserializes only on the same TensorRT version and DLA core. An `IExecutionContext.profiler` must be
a `tensorrt.IProfiler` subclass that called `IProfiler.__init__`; each launch times the engine's layers
(the ONNX nodes' names, or TensorRT's "(Unnamed Layer* i) [Op]"), handed to the profiler when the
kernel runs if `enqueue_emits_profile` is on, else by `report_to_profiler()`, which refuses before
the launch completed (its stream synchronized).

The "network" is read from the real ONNX file (inputs/outputs, dynamic dims as -1, whether it
has Q/DQ nodes or FP16 weights) and computes out[i, j] = (j + 1) * sum(x[i]), so tests can
check the data that came back.
"""

from __future__ import annotations

import enum
import json
import sys
import threading
from collections.abc import Callable, Iterable
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
    strongly_typed: bool
    workspace: int | None
    profiles: list[dict[str, tuple[tuple[int, ...], ...]]]
    default_device_type: str
    dla_core: int
    model: str  # the ONNX file the parser read
    qdq: bool  # it had QuantizeLinear/DequantizeLinear nodes
    fp16_weights: bool  # it had FLOAT16 initializers


@dataclass
class FakeGpu:
    """Knobs of the fake machine and what the backend did to it."""

    devices: int = 1
    name: str = "Fake RTX 4000"
    compute_capability: tuple[int, int] = (8, 9)
    tensorrt_version: str = "10.3.0"
    dla_cores: int = 0
    fast_fp16: bool = True  # Builder.platform_has_fast_fp16 (gone in 11)
    fast_int8: bool = True
    init_error: str = ""  # cuInit fails with this message
    build_error: str = ""  # the builder logs this and returns None
    kernel_ms_per_sample: float = 0.25
    activation_bytes: int = 3 << 20  # what ICudaEngine.device_memory_size(_v2) reports
    builds: list[BuildRecord] = field(default_factory=list)
    builders_created: int = 0
    memory: dict[int, np.ndarray] = field(default_factory=dict)
    pinned: list[np.ndarray] = field(default_factory=list)
    streams: dict[int, Any] = field(default_factory=dict)
    contexts_retained: int = 0
    clock_ms: float = 0.0
    next_address: int = 0x7F0000000000
    classes: dict[str, type] = field(default_factory=dict)  # this version's TensorRT classes
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


def _release(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


@dataclass(frozen=True)
class Features:
    """Which API surface a TensorRT release has (the table in the module docstring)."""

    name_based_io: bool  # ICudaEngine.num_io_tensors ... IExecutionContext.execute_async_v3: 8.5+
    explicit_batch_needed: bool  # the ONNX parser refuses implicit-batch networks: before 10
    weak_typing: bool  # BuilderFlag.FP16/INT8, int8_calibrator, calibrators: before 11
    fast_queries: bool  # Builder.platform_has_fast_fp16/int8: before 11 (deprecated in 10.5)
    device_memory_size: bool  # ICudaEngine.device_memory_size: removed in 11 (10.x -> 11.x removed APIs)
    device_memory_size_v2: bool  # ICudaEngine.device_memory_size_v2: from 10.1

    @classmethod
    def of(cls, version: str) -> Features:
        release = _release(version)
        return cls(
            name_based_io=release >= (8, 5),
            explicit_batch_needed=release < (10, 0),
            weak_typing=release < (11, 0),
            fast_queries=release < (11, 0),
            device_memory_size=release < (11, 0),
            device_memory_size_v2=release >= (10, 1),
        )


class _Missing:
    """A name this TensorRT release does not have: reading or setting it raises AttributeError."""

    def __init__(self, owner: str, name: str, version: str) -> None:
        self._message = f"'tensorrt.{owner}' of TensorRT {version} has no attribute '{name}'"

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        raise AttributeError(self._message)

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError(self._message)


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


class _IProfiler:
    """TensorRT's IProfiler trampoline: a subclass must call `IProfiler.__init__(self)` and override
    `report_layer_time` (pybind11 raises otherwise)."""

    def __init__(self) -> None:
        self._initialised = True

    def report_layer_time(self, layer_name: str, ms: float) -> None:
        raise NotImplementedError("IProfiler.report_layer_time must be overridden")


def _network_flags(features: Features) -> type[enum.IntEnum]:
    if features.explicit_batch_needed:
        members = {"EXPLICIT_BATCH": 0, "EXPLICIT_PRECISION": 1}
    elif features.weak_typing:
        members = {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}  # 10.x: EXPLICIT_BATCH deprecated, ignored
    else:
        members = {"STRONGLY_TYPED": 0}  # 11.x: kept for compatibility, ignored (always strongly typed)
    return enum.IntEnum("NetworkDefinitionCreationFlag", members)  # type: ignore[return-value]


def _builder_flags(features: Features) -> type[enum.Enum]:
    names = ["GPU_FALLBACK", "FP16", "INT8"] if features.weak_typing else ["GPU_FALLBACK"]
    return enum.Enum("BuilderFlag", {n: n for n in names})  # type: ignore[return-value]


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
    HALF = "HALF"


def nptype(dtype: DataType) -> type:
    return {DataType.FLOAT: np.float32, DataType.HALF: np.float16}[dtype]


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
        self.model = ""
        self.qdq = False
        self.fp16_weights = False
        self.layers: list[str] = []

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

        if Features.of(self.gpu.tensorrt_version).explicit_batch_needed and not self._network.flags & 1:
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
        types = {onnx.TensorProto.FLOAT: DataType.FLOAT, onnx.TensorProto.FLOAT16: DataType.HALF}

        def tensor(value: Any) -> _Tensor:
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim)
            return _Tensor(value.name, dims, types[value.type.tensor_type.elem_type])

        network = self._network
        network.inputs = [tensor(v) for v in model.graph.input if v.name not in weights]
        network.outputs = [tensor(v) for v in model.graph.output]
        network.model = path
        # Layer names as TensorRT's ONNX parser gives them: the node's name, else an "Unnamed Layer" index.
        network.layers = [
            node.name or f"(Unnamed Layer* {i}) [{node.op_type}]" for i, node in enumerate(model.graph.node)
        ]
        ops = {node.op_type for node in model.graph.node}
        network.qdq = {"QuantizeLinear", "DequantizeLinear"} <= ops
        network.fp16_weights = any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
        return True


class _OptimizationProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

    def set_shape(self, name: str, min: Any, opt: Any, max: Any) -> None:
        self.shapes[name] = (tuple(min), tuple(opt), tuple(max))


class _BuilderConfig:
    int8_calibrator: Any = None  # a class default, so TensorRT 11's fake can take the name away
    gpu: FakeGpu

    def __init__(self) -> None:
        self.flags: set[Any] = set()
        self.workspace: int | None = None
        self.profiles: list[_OptimizationProfile] = []
        self.calibration_profile: _OptimizationProfile | None = None
        self.default_device_type = DeviceType.GPU
        self.DLA_core = -1

    def set_flag(self, flag: Any) -> None:
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

    @property
    def platform_has_fast_fp16(self) -> bool:
        return self.gpu.fast_fp16

    @property
    def platform_has_fast_int8(self) -> bool:
        return self.gpu.fast_int8

    @property
    def num_DLA_cores(self) -> int:
        return self.gpu.dla_cores

    def create_network(self, flags: int = 0) -> _Network:
        return _Network(flags)

    def create_builder_config(self) -> _BuilderConfig:
        config: _BuilderConfig = self.gpu.classes["IBuilderConfig"]()
        return config

    def create_optimization_profile(self) -> _OptimizationProfile:
        return _OptimizationProfile()

    def _fail(self, message: str) -> None:
        self._logger.log(Severity.ERROR, message)

    def build_serialized_network(self, network: _Network, config: _BuilderConfig) -> bytes | None:
        gpu = self.gpu
        gpu.require_context("build")
        features = Features.of(gpu.tensorrt_version)
        flag_names = {f.name for f in config.flags}
        strongly_typed = not features.weak_typing or (
            not features.explicit_batch_needed and bool(network.flags & 2)  # 10.x: 1 << STRONGLY_TYPED
        )
        gpu.builds.append(
            BuildRecord(
                flags=flag_names,
                network_flags=network.flags,
                strongly_typed=strongly_typed,
                workspace=config.workspace,
                profiles=[p.shapes for p in config.profiles],
                default_device_type=config.default_device_type.value,
                dla_core=config.DLA_core,
                model=network.model,
                qdq=network.qdq,
                fp16_weights=network.fp16_weights,
            )
        )
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
        if not strongly_typed and network.qdq and "INT8" not in flag_names:
            self._fail("Network contains Q/DQ layers but INT8 is not enabled in the builder config")
            return None
        if "INT8" in flag_names and not network.qdq and config.int8_calibrator is None:
            self._fail("INT8 requested but no calibrator or dynamic ranges were given")
            return None
        profile = config.profiles[0].shapes if config.profiles else {}
        plan = {
            "magic": "fake-trt-plan",
            "tensorrt": gpu.tensorrt_version,
            "dla_core": config.DLA_core if config.default_device_type == DeviceType.DLA else -1,
            "inputs": [[t.name, t.shape, profile.get(t.name), t.dtype.value] for t in network.inputs],
            "outputs": [[t.name, t.shape, t.dtype.value] for t in network.outputs],
            "layers": network.layers,
        }
        return json.dumps(plan).encode()


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
        engine: _Engine = self.gpu.classes["ICudaEngine"](self.gpu, plan, self._logger)
        return engine


class _Engine:
    def __init__(self, gpu: FakeGpu, plan: dict[str, Any], logger: _ILogger) -> None:
        self.gpu = gpu
        self.logger = logger
        self.inputs = {name: (tuple(shape), profile) for name, shape, profile, _ in plan["inputs"]}
        self.outputs = {name: tuple(shape) for name, shape, _ in plan["outputs"]}
        self.dtypes = {t[0]: DataType(t[-1]) for t in (*plan["inputs"], *plan["outputs"])}
        self._names = [*self.inputs, *self.outputs]
        self.layers: list[str] = list(plan["layers"])

    @property
    def device_memory_size(self) -> int:
        return self.gpu.activation_bytes

    @property
    def device_memory_size_v2(self) -> int:
        return self.gpu.activation_bytes

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
        return self.dtypes[name]

    def create_execution_context(self) -> _ExecutionContext:
        self.gpu.require_context("createExecutionContext")
        context: _ExecutionContext = self.gpu.classes["IExecutionContext"](self)
        return context


class _ExecutionContext:
    def __init__(self, engine: _Engine) -> None:
        self._engine = engine
        self._input_shapes = {name: shape for name, (shape, _) in engine.inputs.items()}
        self._addresses: dict[str, int] = {}
        self.input_shapes_set: list[tuple[int, ...]] = []
        self._profiler: _IProfiler | None = None
        self.enqueue_emits_profile = True
        self._layer_ms: list[tuple[str, float]] | None = None  # the last launch's layer times, once it ran

    @property
    def profiler(self) -> _IProfiler | None:
        return self._profiler

    @profiler.setter
    def profiler(self, profiler: _IProfiler) -> None:
        if not isinstance(profiler, _IProfiler) or not getattr(profiler, "_initialised", False):
            raise TypeError("profiler must be a tensorrt.IProfiler whose __init__ was called")
        self._profiler = profiler

    def report_to_profiler(self) -> bool:
        """Hand the last launch's layer times to the profiler; only once that launch ran (stream synchronized)."""
        self._engine.gpu.require_context("reportToProfiler")
        if self._profiler is None:
            return False
        if self._layer_ms is None:
            raise _LogicError("reportToProfiler: the last launch has not completed (synchronize its stream first)")
        for name, ms in self._layer_ms:
            self._profiler.report_layer_time(name, ms)
        return True

    def set_input_shape(self, name: str, shape: Any) -> bool:
        shape = tuple(shape)
        low, _, high = self._engine.inputs[name][1]
        if len(shape) != len(low) or not all(lo <= s <= hi for lo, s, hi in zip(low, shape, high)):
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

        self._layer_ms = None

        def kernel() -> None:
            nbytes = int(np.prod(shape)) * 4
            x = gpu.device_array(self._addresses[name])[:nbytes].view(np.float32).reshape(shape)
            y = expected_output(x, out_shape[1])
            gpu.device_array(self._addresses[output])[: y.nbytes] = y.view(np.uint8).reshape(-1)
            kernel_ms = gpu.kernel_ms_per_sample * shape[0]
            gpu.clock_ms += kernel_ms
            layers = self._engine.layers
            # Layer i takes a share of the kernel time proportional to i + 1: distinct, summing to kernel_ms.
            weights = np.arange(1, len(layers) + 1, dtype=np.float64)
            self._layer_ms = [(n, kernel_ms * w / weights.sum()) for n, w in zip(layers, weights)]
            if self._profiler is not None and self.enqueue_emits_profile:
                self.report_to_profiler()

        gpu.streams[stream_handle].queue.append(kernel)
        return True


_NAME_BASED_ENGINE = ("num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_shape", "get_tensor_dtype")
_NAME_BASED_CONTEXT = ("set_input_shape", "get_tensor_shape", "set_tensor_address", "execute_async_v3")


def _shaped(base: type, public: str, gpu: FakeGpu, removed: Iterable[str]) -> type:
    """`base` as this version's `tensorrt.<public>`: bound to the fake GPU, without the names it lacks."""
    namespace: dict[str, Any] = {"gpu": gpu}
    namespace.update({name: _Missing(public, name, gpu.tensorrt_version) for name in removed})
    return type(public, (base,), namespace)


def _module_tensorrt(gpu: FakeGpu) -> ModuleType:
    features = Features.of(gpu.tensorrt_version)
    weak_only = () if features.weak_typing else ("int8_calibrator", "set_calibration_profile")
    gpu.classes = {
        "Builder": _shaped(
            _Builder,
            "Builder",
            gpu,
            () if features.fast_queries else ("platform_has_fast_fp16", "platform_has_fast_int8"),
        ),
        "IBuilderConfig": _shaped(_BuilderConfig, "IBuilderConfig", gpu, weak_only),
        "OnnxParser": _shaped(_OnnxParser, "OnnxParser", gpu, ()),
        "Runtime": _shaped(_Runtime, "Runtime", gpu, ()),
        "ICudaEngine": _shaped(
            _Engine,
            "ICudaEngine",
            gpu,
            (
                *(() if features.name_based_io else _NAME_BASED_ENGINE),
                *(() if features.device_memory_size else ("device_memory_size",)),
                *(() if features.device_memory_size_v2 else ("device_memory_size_v2",)),
            ),
        ),
        "IExecutionContext": _shaped(
            _ExecutionContext, "IExecutionContext", gpu, () if features.name_based_io else _NAME_BASED_CONTEXT
        ),
    }
    names: dict[str, Any] = {
        "__version__": gpu.tensorrt_version,
        "ILogger": _ILogger,
        "IProfiler": _IProfiler,
        "NetworkDefinitionCreationFlag": _network_flags(features),
        "BuilderFlag": _builder_flags(features),
        "DeviceType": DeviceType,
        "MemoryPoolType": MemoryPoolType,
        "TensorIOMode": TensorIOMode,
        "DataType": DataType,
        "ErrorCode": ErrorCode,
        "nptype": nptype,
        **gpu.classes,
    }
    if features.weak_typing:  # deprecated in 10.1, removed in 11
        names["IInt8EntropyCalibrator2"] = _IInt8EntropyCalibrator2
    trt = ModuleType("tensorrt")
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
