"""trtexec backend: TensorRT through NVIDIA's `trtexec` binary, whatever Python the agent runs on.

A Jetson Nano (JetPack 4.6: TensorRT 8.0/8.2) has TensorRT Python bindings for Python 3.6 only,
but every JetPack and TensorRT install ships `trtexec` (/usr/src/tensorrt/bin/trtexec). This
backend drives it as a subprocess: it builds the engine from ONNX (`--saveEngine`), lets trtexec
time it with its own warm-up and timed loop on the GPU (`--exportTimes`, per iteration: H2D +
compute + D2H as "latencyMs", CUDA-event compute as "computeMs"), keeps its per-layer profile
(`--exportProfile`, from a separate profile run so the timed run is not slowed by the profiler),
and scores the test set through the same engine (`--loadInputs` raw float32 in, `--exportOutput`
JSON out). INT8 is built only from an explicitly quantized (Q/DQ) ONNX model, never with a
calibrator: trtexec has none, and `--int8` without Q/DQ scales makes up dynamic ranges.

Formats and flags, as NVIDIA's sources print and parse them (github.com/NVIDIA/TensorRT, samples/):
- banner `&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # cmdline`: logging.h `defineTest` appends
  `NV_TENSORRT_VERSION`, which is major*1000 + minor*100 + patch up to 8.6 (NvInferRuntimeCommon.h,
  TensorRT 8.x: 8201 = 8.2.1, 8412 = 8.4.12) and major*10000 + minor*100 + patch from 10.0
  (NvInferRuntimeBase.h `NV_TENSORRT_VERSION_INT`: 100300 = 10.3.0).
- flags: --onnx --saveEngine --loadEngine --minShapes/--optShapes/--maxShapes --shapes --fp16 --int8
  --workspace (MiB) --useDLACore --allowGPUFallback --warmUp (ms) --duration (s) --iterations
  --loadInputs=name:file --separateProfileRun --exportTimes --exportOutput --exportProfile all
  exist in TensorRT 8.0/8.2 (sampleOptions.cpp, 2021), where --warmUp and --duration are *ints*
  (sampleOptions.h `int warmup; int duration;`), so whole ms and whole seconds are passed.
  `--memPoolSize=workspace:N` (N in MiB: "poolfmt ::= pool:sizeInMiB") replaces --workspace from 8.4
  and is the only form in 10.x, where a bare number still means MiB. Neither --buildOnly (to 8.6)
  nor --skipInference (8.6 on) is used: a build runs one inference instead, valid on every version.
- --exportTimes (sampleReporting.cpp `exportJSONTrace`): a JSON list, one object per query with
  startEnqMs..endD2hMs, h2dMs, computeMs, d2hMs, latencyMs (= h2d + compute + d2h), and in 8.x
  endToEndMs. TensorRT 8.0-8.5 write every query, warm-up included; 8.6/10.x skip the warm-ups.
  Either way a query is a warm-up when its startComputeMs < --warmUp, trtexec's own rule
  (`isNotWarmup`), which is what `_timed_queries` applies.
- --exportProfile (`Profiler::exportJSONProfile`): `[{"count": N}, {"name", "timeMs", "averageMs",
  ["medianMs" from 8.6,] "percentage"}, ...]`.
- --exportOutput (`exportJSONOutput`): `[{"name": ..., "dimensions": "8x3", "values": [...]}]`, values
  in row-major order printed by C++ iostreams (6 significant digits; nan/inf as bare words), one
  object per output in no fixed order (an unordered_map), so outputs are found by name.
- a failure ends with `&&&& FAILED TensorRT.trtexec [TensorRT vXXXX] # ...` after `[E]` log lines,
  e.g. TensorRT 8.0.3 on an op it lacks (onnx/onnx-tensorrt#800): `[E] [TRT] ModelImporter.cpp:726:
  ERROR: builtin_op_importers.cpp:4643 In function importFallbackPluginImporter:` / `[8] Assertion
  failed: creator && "Plugin not found, ..."` / `[E] Failed to parse onnx file` / ... ; the error says
  "unsupported" or "out of memory" when TensorRT did, so the runner classifies it.

Python 3.8-clean on purpose (the agent on a Nano runs Ubuntu 18.04's python3.8): stdlib and numpy
only at import time, nothing from 3.9+ at run time.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections import deque
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, Tuple

import numpy as np

from agent.backends import engine_cache
from agent.backends.base import GPU_DEVICE, PROFILE_TOP_OPS, BackendOptions, BuildRequest, top_operators
from agent.backends.engine_cache import CacheKey
from agent.backends.qdq import describe_quantization, is_qdq, quantization_parts, quantize_int8
from agent.cache import durable_replace, file_sha256
from agent.measure import TimedRun, latency_stats
from edgelab.constants import BACKEND_FORMATS
from edgelab.domain import MeasurementSettings, OperatorProfile, Precision, RuntimeInfo
from edgelab.errors import BackendUnavailable

NAME = "trtexec"
ENV_VAR = "EDGELAB_TRTEXEC"
JETPACK_TRTEXEC = Path("/usr/src/tensorrt/bin/trtexec")
NOT_FOUND = f"trtexec not found: set {ENV_VAR} or put trtexec on PATH (JetPack installs it at {JETPACK_TRTEXEC})"
# The same two figures as the tensorrt backend (its SCOPE / COMPUTE_SCOPE), measured by trtexec.
SCOPE = "end-to-end: H2D copy + GPU compute + D2H copy (trtexec's per-query Latency, --exportTimes latencyMs)"
COMPUTE_SCOPE = "compute-only: GPU execution between CUDA events (trtexec's GPU Compute Time, --exportTimes computeMs)"
OPTIONS = ("dla_core", "workspace_mb", "scoring_batch", "layer_profile", "build_timeout_s")
DEFAULT_WORKSPACE_MB = 1024
# The test set is scored in chunks of this many samples (one trtexec process each), so the
# optimization profile's max batch covers it; opt stays at the largest timed batch size.
DEFAULT_SCORING_BATCH = 256
DEFAULT_BUILD_TIMEOUT_S = 3600.0  # a large model on a Nano builds for many minutes
STARTUP_SLACK_S = 300.0  # engine deserialization and CUDA start-up around each timed run
MEM_POOL_SIZE_FROM = (8, 4)  # --memPoolSize; --workspace before (and gone in 10.x)
PROFILE_SOURCE = "trtexec --exportProfile"
ERROR_RECORDS_KEPT = 8
LOG_LINES_KEPT = 2000

_BANNER = re.compile(r"&&&& (?:RUNNING|PASSED|FAILED) TensorRT\.trtexec \[TensorRT v(\d+)\]")
_LOG_LINE = re.compile(r"^\[\d\d/\d\d/\d{4}-\d\d:\d\d:\d\d\] \[([VIWEF])\] ?(.*)$")
_OP_NAME = re.compile(r"No importer registered for op: ([\w\-]+)|could not find plugin:? ([\w\-]+)")
_NODE = re.compile(r"While parsing node number \d+ \[([\w\-]+)")
_UNSUPPORTED = re.compile(
    r"plugin not found|UNSUPPORTED_NODE|could not find plugin|no importer registered|unsupported|not supported", re.I
)
_OUT_OF_MEMORY = re.compile(
    r"out ?of ?memory|could not be allocated|cudaErrorMemoryAllocation|memory allocation failed"
    r"|failed to allocate|bad_alloc|insufficient memory",
    re.I,
)
_WARMUP_DONE = re.compile(r"Warmup completed (\d+) queries over ([\d.]+) ms")
_DEVICE = re.compile(r"Selected Device: (.+)$")
_COMPUTE_CAPABILITY = re.compile(r"Compute Capability: ([\d.]+)")
# trtexec prints "Starting inference" just before its warm-up + timed loop and the
# "Warmup completed ..." prolog right after it (trtexec.cpp, sampleReporting.cpp printProlog).
_STARTING = "Starting inference"
_TIMED_DONE = ("Warmup completed", "Timing trace has")
_NON_FINITE = re.compile(r"(?<=[\s\[,:])(-?)(nan|inf)(?=[\s,\]}])", re.I)

Version = Tuple[int, int, int]


class TrtexecError(RuntimeError):
    """trtexec failed; the message carries its last error lines and says "unsupported" or "out of memory"
    when TensorRT did (what the runner classifies failures by)."""

    def __init__(self, message: str, kind: str = "build", log: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.kind = kind  # "unsupported", "out_of_memory", "build" or "timeout"
        self.log = list(log)


# --- locating trtexec and reading its version ------------------------------------------------


def find_trtexec() -> tuple[Path | None, str]:
    """(path, "") for the trtexec to run: $EDGELAB_TRTEXEC, else `trtexec` on PATH, else JetPack's; (None, why) if none."""
    configured = os.environ.get(ENV_VAR, "").strip()
    if configured:
        path = Path(configured).expanduser()
        if path.is_file() and os.access(str(path), os.X_OK):
            return path, ""
        return None, f"{ENV_VAR}={configured} is not an executable file"
    on_path = shutil.which("trtexec")
    if on_path:
        return Path(on_path), ""
    if JETPACK_TRTEXEC.is_file() and os.access(str(JETPACK_TRTEXEC), os.X_OK):
        return JETPACK_TRTEXEC, ""
    return None, NOT_FOUND


def parse_banner(text: str) -> Version | None:
    """The TensorRT version in trtexec's `&&&& RUNNING TensorRT.trtexec [TensorRT vNNNN]` banner, or None."""
    match = _BANNER.search(text)
    return None if match is None else version_from_int(int(match.group(1)))


def version_from_int(number: int) -> Version:
    """NV_TENSORRT_VERSION as an integer -> (major, minor, patch): 8201 -> 8.2.1, 100300 -> 10.3.0."""
    if number >= 100000:  # TensorRT 10+: major*10000 + minor*100 + patch
        return number // 10000, number // 100 % 100, number % 100
    return number // 1000, number // 100 % 10, number % 100  # TensorRT <= 8.6: major*1000 + minor*100 + patch


def version_text(version: Version) -> str:
    return ".".join(str(v) for v in version)


# --- the ONNX model's inputs and outputs, without the onnx package ----------------------------


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dims: tuple[int | None, ...]  # None for a symbolic or unknown dim


@dataclass(frozen=True)
class ModelIO:
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]


def _varint(data: memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def _fields(data: memoryview) -> Iterator[tuple[int, Any]]:
    """(field number, value) of one serialized protobuf message: ints for varints, memoryviews otherwise."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        elif wire == 2:
            length, i = _varint(data, i)
            value, i = data[i : i + length], i + length
        elif wire == 5:
            value, i = data[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if i > len(data):
            raise ValueError("truncated protobuf field")
        yield number, value


def _value_info(data: memoryview) -> TensorInfo:
    """ValueInfoProto: name (1), type (2) -> TypeProto.tensor_type (1) -> shape (2) -> dim (1): dim_value (1)."""
    name = ""
    dims: list[int | None] = []
    for number, value in _fields(data):
        if number == 1:
            name = bytes(value).decode("utf-8")
        elif number == 2:
            for tnum, tensor in _fields(value):
                if tnum != 1:
                    continue
                for snum, shape in _fields(tensor):
                    if snum != 2:
                        continue
                    for dnum, dim in _fields(shape):
                        if dnum != 1:
                            continue
                        size: int | None = None
                        for knum, kval in _fields(dim):
                            if knum == 1:
                                size = kval - (1 << 64) if kval >= 1 << 63 else kval
                        dims.append(size if size is not None and size > 0 else None)
    return TensorInfo(name, tuple(dims))


def read_model_io(model_path: Path) -> ModelIO:
    """Graph inputs (initializers left out: old exporters list them as inputs) and outputs of an ONNX file.

    Read from the protobuf wire format (ModelProto.graph = 7; GraphProto.initializer = 5, input = 11,
    output = 12), so a device without the `onnx` package can build from ONNX too.
    """
    data = memoryview(model_path.read_bytes())
    graph = next((value for number, value in _fields(data) if number == 7), None)
    if graph is None:
        raise ValueError(f"{model_path.name} holds no ONNX graph")
    inputs: list[TensorInfo] = []
    outputs: list[TensorInfo] = []
    initializers: set[str] = set()
    for number, value in _fields(graph):
        if number == 11:
            inputs.append(_value_info(value))
        elif number == 12:
            outputs.append(_value_info(value))
        elif number == 5:
            initializers.update(bytes(v).decode("utf-8") for n, v in _fields(value) if n == 8)
    return ModelIO(tuple(i for i in inputs if i.name not in initializers), tuple(outputs))


# --- running trtexec -------------------------------------------------------------------------


@dataclass
class Run:
    returncode: int
    lines: list[str]
    seconds: float


def run_trtexec(command: Sequence[str], timeout_s: float, on_line: Callable[[str], None] | None = None) -> Run:
    """Run trtexec to the end, reading its log line by line (it flushes every line); kill it past `timeout_s`."""
    t0 = time.perf_counter()
    process = subprocess.Popen(
        [str(c) for c in command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        universal_newlines=True,
        errors="replace",
    )
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        process.kill()

    watchdog = threading.Timer(timeout_s, kill)
    watchdog.daemon = True
    watchdog.start()
    lines: deque[str] = deque(maxlen=LOG_LINES_KEPT)
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            if on_line is not None:
                on_line(line)
        returncode = process.wait()
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    if timed_out.is_set():
        raise TrtexecError(
            f"trtexec timed out after {timeout_s:.0f} s and was killed: {' '.join(str(c) for c in command[1:])}",
            "timeout",
            lines,
        )
    return Run(returncode, list(lines), time.perf_counter() - t0)


def _records(lines: Sequence[str]) -> list[tuple[str, str]]:
    """(severity, text) log records; lines without a `[date] [X]` prefix continue the record before them."""
    records: list[tuple[str, str]] = []
    for line in lines:
        match = _LOG_LINE.match(line)
        if match:
            records.append((match.group(1), match.group(2).strip()))
        elif line.startswith("&&&&"):
            records.append(("&", line.strip()))
        elif records and line.strip():
            severity, text = records[-1]
            records[-1] = (severity, f"{text} {line.strip()}")
    return records


def failure(what: str, run: Run, version: Version | None = None) -> TrtexecError:
    """A TrtexecError from a failed run: its last error records, classified by what TensorRT said."""
    records = _records(run.lines)
    errors = [text[:400] for severity, text in records if severity in ("E", "F")][-ERROR_RECORDS_KEPT:]
    failed = next((text for severity, text in reversed(records) if severity == "&" and " FAILED " in text), "")
    said = " | ".join(errors) or (run.lines[-1] if run.lines else "trtexec printed nothing")
    if failed:
        said = f"{said} | {failed[:300]}"
    trt = f"TensorRT {version_text(version)}" if version else "TensorRT"
    if any(_OUT_OF_MEMORY.search(e) for e in errors):
        return TrtexecError(
            f"{what}: out of memory (trtexec exit {run.returncode}): {said}", "out_of_memory", run.lines
        )
    if any(_UNSUPPORTED.search(e) for e in errors):
        op = _first_group(_OP_NAME, run.lines) or _first_group(_NODE, run.lines)
        subject = f"op {op!r}" if op else "a node"
        return TrtexecError(
            f"{what}: unsupported {subject}: {trt}'s ONNX parser has no importer or plugin for it: {said}",
            "unsupported",
            run.lines,
        )
    return TrtexecError(f"{what} (trtexec exit {run.returncode}): {said}", "build", run.lines)


def _first_group(pattern: re.Pattern[str], lines: Sequence[str]) -> str | None:
    for line in lines:
        match = pattern.search(line)
        if match:
            return next(g for g in match.groups() if g)
    return None


def _device_details(lines: Sequence[str]) -> dict[str, str]:
    """The GPU trtexec selected, from its "=== Device Information ===" block."""
    details = {}
    for line in lines:
        device = _DEVICE.search(line)
        if device:
            details["gpu_name"] = device.group(1).strip()
        capability = _COMPUTE_CAPABILITY.search(line)
        if capability:
            details["compute_capability"] = capability.group(1)
    return details


# --- trtexec's JSON files --------------------------------------------------------------------


def load_json(path: Path) -> Any:
    """trtexec's JSON as written by C++ iostreams: bare nan/inf (not JSON) become NaN/Infinity."""
    text = path.read_text(errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        fixed = _NON_FINITE.sub(lambda m: m.group(1) + ("NaN" if m.group(2).lower() == "nan" else "Infinity"), text)
        return json.loads(fixed.replace("-NaN", "NaN"))


def _timed_queries(
    trace: Sequence[dict[str, float]], warmup_ms: float
) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """(warm-up queries, timed queries) by trtexec's own rule: warm-up while startComputeMs < --warmUp."""
    split = next((i for i, q in enumerate(trace) if float(q["startComputeMs"]) >= warmup_ms), len(trace))
    return list(trace[:split]), list(trace[split:])


def timed_run(
    trace: Sequence[dict[str, float]],
    *,
    batch_size: int,
    warmup_ms: float,
    log: Sequence[str] = (),
    scope: str = SCOPE,
    compute_scope: str = COMPUTE_SCOPE,
) -> TimedRun:
    """LatencyStats for both scopes from an --exportTimes trace, summarised by the helper measure_latency uses."""
    warmups, timed = _timed_queries(trace, warmup_ms)
    if not timed:
        raise TrtexecError(f"trtexec's --exportTimes trace holds no timed query ({len(trace)} warm-up queries)")
    # The first query after the engine loaded: in the trace when it keeps warm-ups (8.0-8.5) or when
    # there were none; 8.6+/10.x drop warm-ups from the file, and then it is not known.
    first_ms = float(trace[0]["latencyMs"]) if warmups or warmup_ms <= 0 else math.nan
    warm_count, warm_s = (
        len(warmups),
        ((float(timed[0]["startComputeMs"]) - float(warmups[0]["startComputeMs"])) / 1e3 if warmups else 0.0),
    )
    said = next((m for m in (_WARMUP_DONE.search(line) for line in log) if m), None)
    if said is not None and not warmups:  # a trace without its warm-ups: trtexec's own prolog says how many
        warm_count, warm_s = int(said.group(1)), float(said.group(2)) / 1e3
    timed_s = (float(timed[-1]["endD2hMs"]) - float(timed[0]["startH2dMs"])) / 1e3  # trtexec's benchTime

    latency_ms = np.asarray([float(q["latencyMs"]) for q in timed], dtype=np.float64)
    compute_ms = np.asarray([float(q["computeMs"]) for q in timed], dtype=np.float64)

    def stats(latencies_ms: np.ndarray, what: str) -> Any:
        return latency_stats(
            latencies_ms,
            batch_size=batch_size,
            timed_duration_s=timed_s,
            first_inference_ms=first_ms,
            warmup_s=warm_s,
            warmup_iterations=warm_count,
            scope=what,
        )

    return TimedRun(
        end_to_end=stats(latency_ms, scope),
        compute=stats(compute_ms, compute_scope),
        end_to_end_ms=latency_ms,
        compute_ms=compute_ms,
    )


def operator_profile(entries: Sequence[dict[str, Any]], batch_size: int, top: int = PROFILE_TOP_OPS) -> OperatorProfile:
    """An --exportProfile file as a typed profile: the `top` slowest layers by mean time per inference
    (averageMs, else timeMs / count), names cut at OP_NAME_CHARS; total_ms and operators count every
    layer. TensorRT names fused layers, not op types, so op_type stays empty."""
    count = next((int(e["count"]) for e in entries if "count" in e), 0)
    layers = [e for e in entries if "name" in e]

    def average(layer: dict[str, Any]) -> float:
        if "averageMs" in layer:
            return float(layer["averageMs"])
        return float(layer.get("timeMs", 0.0)) / count if count else 0.0

    mean_ms: dict[str, tuple[str, float]] = {}
    for layer in layers:  # TensorRT names fused layers, not op types: op_type stays empty
        name = str(layer["name"])
        mean_ms[name] = ("", mean_ms.get(name, ("", 0.0))[1] + average(layer))
    return top_operators(mean_ms, batch_size=batch_size, source=PROFILE_SOURCE, iterations=count, top=top)


def parse_outputs(path: Path) -> dict[str, np.ndarray]:
    """--exportOutput's tensors by name, reshaped to the dimensions trtexec printed ("8x3")."""
    tensors = {}
    for entry in load_json(path):
        dims = tuple(int(d) for d in str(entry["dimensions"]).split("x") if d.strip())
        values = np.asarray(entry["values"], dtype=np.float32)
        if dims and values.size == int(np.prod(dims)):
            values = values.reshape(dims)
        tensors[str(entry["name"])] = values
    return tensors


# --- options, the power window, the engine ---------------------------------------------------


@dataclass(frozen=True)
class TrtexecOptions:
    dla_core: int | None = None
    workspace_mb: int = DEFAULT_WORKSPACE_MB
    scoring_batch: int = DEFAULT_SCORING_BATCH
    layer_profile: bool = True
    build_timeout_s: float = DEFAULT_BUILD_TIMEOUT_S

    @classmethod
    def parse(cls, options: dict[str, str]) -> TrtexecOptions:
        known = BackendOptions(NAME, options, OPTIONS)
        number = known.number
        return cls(
            dla_core=number("dla_core", 0, None),
            workspace_mb=number("workspace_mb", 1, DEFAULT_WORKSPACE_MB),
            scoring_batch=number("scoring_batch", 0, DEFAULT_SCORING_BATCH),
            layer_profile=known.switch("layer_profile", True),
            build_timeout_s=number("build_timeout_s", 1, DEFAULT_BUILD_TIMEOUT_S, float),
        )


class _TimedPhaseWindow:
    """Enters the power window `delay_s` (the warm-up) after trtexec says "Starting inference" and leaves
    it when trtexec reports the timed run done, so power is sampled over the timed phase only."""

    def __init__(self, window: Callable[[], AbstractContextManager[object]], delay_s: float) -> None:
        self._window, self._delay_s = window, delay_s
        self._lock = threading.Lock()
        self._stack = ExitStack()
        self._timer: threading.Timer | None = None
        self._state = "idle"  # idle -> waiting -> open -> closed

    def on_line(self, line: str) -> None:
        if _STARTING in line:
            self._start()
        elif any(marker in line for marker in _TIMED_DONE):
            self.close()

    def _start(self) -> None:
        with self._lock:
            if self._state != "idle":
                return
            self._state = "waiting"
        if self._delay_s <= 0:
            self._enter()
            return
        self._timer = threading.Timer(self._delay_s, self._enter)
        self._timer.daemon = True
        self._timer.start()

    def _enter(self) -> None:
        with self._lock:
            if self._state == "waiting":
                self._stack.enter_context(self._window())
                self._state = "open"

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            if self._state == "waiting":  # a timed phase shorter than the timer's latency: an empty window
                self._stack.enter_context(self._window())
            self._state = "closed"
            self._stack.close()


def _shape(name: str, rows: int, sample: Sequence[int]) -> str:
    """trtexec's shape spec `name:8x32x1`; it splits on the last ':', so names holding ':' pass as they are."""
    return f"{name}:{'x'.join(str(d) for d in (rows, *sample))}"


@dataclass
class TrtexecEngine:
    """A serialized TensorRT engine on disk, run by trtexec: `measure` times it, `infer` scores batches."""

    device = GPU_DEVICE  # not a field: every trtexec engine runs on the GPU (or its DLA)

    trtexec: Path
    version: Version
    engine_path: Path
    input: TensorInfo
    output_name: str
    max_batch: int
    options: TrtexecOptions
    details: dict[str, str]
    owned_dirs: list[Path] = field(default_factory=list)  # removed on close (the scratch dir, a cache-less engine)

    scope = SCOPE
    compute_scope = COMPUTE_SCOPE

    def __post_init__(self) -> None:
        self.input_shape: tuple[int | None, ...] = (None if self.dynamic else self.max_batch, *self.sample_dims)
        self._scratch = Path(tempfile.mkdtemp(prefix="edgelab-trtexec-"))
        self.owned_dirs.append(self._scratch)
        self._calls = 0
        self._closed = False
        self._profiles: dict[int, OperatorProfile] = {}  # per batch size, from measure's separate profile run

    @property
    def dynamic(self) -> bool:
        return self.input.dims[0] is None

    @property
    def sample_dims(self) -> tuple[int, ...]:
        return tuple(int(d or 0) for d in self.input.dims[1:])

    def _check(self, batch: np.ndarray) -> int:
        if self._closed:
            raise RuntimeError("the trtexec engine is closed")
        if batch.ndim != len(self.input_shape) or tuple(batch.shape[1:]) != self.sample_dims:
            shown = tuple("?" if d is None else d for d in self.input_shape)
            raise ValueError(f"batch of shape {batch.shape} does not fit the engine input {shown}")
        rows = int(batch.shape[0])
        if not self.dynamic and rows != self.max_batch:
            raise ValueError(f"this engine's batch dim is fixed at {self.max_batch}; got a batch of {rows}")
        if not 1 <= rows <= self.max_batch:
            raise ValueError(
                f"batch of {rows} is outside the engine's optimization profile (batch 1..{self.max_batch})"
            )
        return rows

    def _inputs(self, batch: np.ndarray, rows: int) -> list[str]:
        """Flags feeding `batch` to the engine: the raw little-endian float32 file --loadInputs reads."""
        self._calls += 1
        data = self._scratch / f"input-{self._calls}.bin"
        np.ascontiguousarray(batch, dtype="<f4").tofile(str(data))
        flags = [f"--loadEngine={self.engine_path}", f"--loadInputs={self.input.name}:{data}"]
        if self.dynamic:
            flags.append(f"--shapes={_shape(self.input.name, rows, self.sample_dims)}")
        if self.options.dla_core is not None:  # the runtime must run the DLA core the engine was built for
            flags.append(f"--useDLACore={self.options.dla_core}")
        return flags

    def measure(
        self,
        batch: np.ndarray,
        settings: MeasurementSettings,
        timed_window: Callable[[], AbstractContextManager[object]],
    ) -> TimedRun:
        """trtexec's own warm-up and timed loop on `batch`: --warmUp ms, then >= --iterations and >= --duration s.

        trtexec warms up by time only (warmup_iterations has no flag) and takes whole ms and whole
        seconds (8.x parses ints), so the warm-up is ceil(warmup_duration_s * 1000) ms and the timed
        phase ceil(min_duration_s) s; it has no cap, so max_duration_s bounds the process instead
        (killed past it plus start-up slack).
        """
        rows = self._check(batch)
        times = self._scratch / f"times-{self._calls + 1}.json"
        profile = self._scratch / f"profile-{self._calls + 1}.json"
        warmup_ms = math.ceil(settings.warmup_duration_s * 1000)
        duration_s = math.ceil(settings.min_duration_s)
        command = [
            str(self.trtexec),
            *self._inputs(batch, rows),
            f"--warmUp={warmup_ms}",
            f"--duration={duration_s}",
            f"--iterations={settings.min_iterations}",
            f"--exportTimes={times}",
        ]
        if self.options.layer_profile:
            command += [f"--exportProfile={profile}", "--separateProfileRun"]
        window = _TimedPhaseWindow(timed_window, warmup_ms / 1000)
        runs = 2 if self.options.layer_profile else 1
        timeout = STARTUP_SLACK_S + runs * (warmup_ms / 1000 + max(settings.max_duration_s, duration_s))
        try:
            run = run_trtexec(command, timeout, window.on_line)
        finally:
            window.close()
        if run.returncode != 0 or not times.is_file():
            raise failure(f"trtexec could not time the engine at batch {rows}", run, self.version)
        self.details.update(_device_details(run.lines))
        timed = timed_run(load_json(times), batch_size=rows, warmup_ms=warmup_ms, log=run.lines)
        if self.options.layer_profile and profile.is_file():
            self._profiles[rows] = operator_profile(load_json(profile), rows)
        self.details["operator_profile"] = (
            f"{PROFILE_SOURCE}: per-layer mean time from a separate profile run (--separateProfileRun)"
            if self.options.layer_profile
            else "off: backend_options layer_profile is off"
        )
        self.details["trtexec_timing"] = (
            f"--warmUp={warmup_ms} ms, --duration={duration_s} s, --iterations={settings.min_iterations}"
            f"{', profile from a separate run' if self.options.layer_profile else ''}"
            " (trtexec warms up by time only)"
        )
        self._clean()
        return timed

    def operator_profile(self, batch: np.ndarray) -> OperatorProfile | None:
        """The per-layer profile trtexec exported at this batch size while `measure` ran (a separate
        profile run after its timed one: --separateProfileRun), or None with layer_profile off."""
        return self._profiles.get(len(batch))

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """The engine's answer (its first ONNX output) for `batch`, from one trtexec run (in chunks of max_batch)."""
        if self._closed:
            raise RuntimeError("the trtexec engine is closed")
        if self.dynamic and len(batch) > self.max_batch:
            return np.concatenate(
                [self.infer(batch[i : i + self.max_batch]) for i in range(0, len(batch), self.max_batch)]
            )
        rows = self._check(batch)
        out = self._scratch / f"output-{self._calls + 1}.json"
        command = [
            str(self.trtexec),
            *self._inputs(batch, rows),
            "--warmUp=0",
            "--duration=0",
            "--iterations=1",
            f"--exportOutput={out}",
        ]
        run = run_trtexec(command, STARTUP_SLACK_S)
        if run.returncode != 0 or not out.is_file():
            raise failure(f"trtexec could not run the engine on a batch of {rows}", run, self.version)
        tensors = parse_outputs(out)
        if self.output_name not in tensors:
            raise ValueError(f"trtexec's output holds {sorted(tensors)}, not the model output {self.output_name!r}")
        result = tensors[self.output_name]
        if result.ndim == 0 or result.shape[0] != rows:
            raise ValueError(f"trtexec returned output {self.output_name} of shape {result.shape} for {rows} rows")
        self._clean()
        return result

    def _clean(self) -> None:
        """Drops the last call's input and JSON files (scoring a large test set would pile them up)."""
        for leftover in self._scratch.iterdir():
            leftover.unlink()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for directory in self.owned_dirs:
            shutil.rmtree(str(directory), ignore_errors=True)


# --- the backend -----------------------------------------------------------------------------


def batch_profile(batch_sizes: Sequence[int], scoring_batch: int) -> tuple[int, int, int]:
    """(min, opt, max) of the dynamic batch dim: 1 .. the larger of the timed batches and the scoring chunk,
    tuned (opt) for the largest timed batch."""
    if not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
    top = max(batch_sizes)
    return 1, top, max(top, scoring_batch)


class TrtexecBackend:
    name = NAME
    formats: tuple[str, ...] = BACKEND_FORMATS["trtexec"]

    def __init__(self) -> None:
        # TensorRT version per (trtexec path, mtime): `trtexec --help` loads TensorRT (a second on a Nano).
        self._versions: dict[tuple[str, int], Version] = {}

    def _version(self, path: Path) -> Version:
        key = (str(path), path.stat().st_mtime_ns)
        if key not in self._versions:
            try:
                run = run_trtexec([str(path), "--help"], 120.0)
            except OSError as exc:
                raise BackendUnavailable(NAME, f"cannot run {path}: {exc}") from exc
            except TrtexecError as exc:
                raise BackendUnavailable(NAME, f"{path} --help: {exc}") from exc
            version = parse_banner("\n".join(run.lines))
            if version is None:
                tail = " | ".join(line for line in run.lines[-3:] if line.strip()) or f"exit code {run.returncode}"
                raise BackendUnavailable(
                    NAME, f"{path} printed no '&&&& RUNNING TensorRT.trtexec [TensorRT vN]' banner: {tail}"
                )
            self._versions[key] = version
        return self._versions[key]

    def _trtexec(self) -> tuple[Path, Version]:
        path, why = find_trtexec()
        if path is None:
            raise BackendUnavailable(NAME, why)
        version = self._version(path)
        if version < (8, 0, 0):
            raise BackendUnavailable(
                NAME, f"TensorRT {version_text(version)} is older than 8.0 (no explicit Q/DQ INT8); need 8.0 or newer"
            )
        return path, version

    def probe(self) -> RuntimeInfo:
        """Cheap after the first call and never raises: what is missing becomes `available=False` with the reason.

        Whether a GPU is there is left to trtexec (it says so when a build starts): this backend
        cannot ask CUDA without bindings, and a device with trtexec installed has had one.
        """
        try:
            path, version = self._trtexec()
        except BackendUnavailable as exc:
            return RuntimeInfo(self.name, available=False, reason=exc.reason)
        except Exception as exc:  # a broken install must not take the agent down
            return RuntimeInfo(self.name, available=False, reason=f"probe failed: {type(exc).__name__}: {exc}")
        return RuntimeInfo(
            self.name,
            available=True,
            version=f"{version_text(version)} (trtexec {path})",
            precisions=[Precision.FP32, Precision.FP16, Precision.INT8],
        )

    def load(self, model_path: Path, request: BuildRequest) -> TrtexecEngine:
        trtexec, version = self._trtexec()
        options = TrtexecOptions.parse(request.options)
        if options.dla_core is not None and request.precision == Precision.FP32:
            raise ValueError("DLA runs FP16 or INT8 layers only: ask for fp16 or int8 with dla_core")
        io = read_model_io(model_path)
        if len(io.inputs) != 1 or not io.outputs:
            names = [i.name for i in io.inputs]
            raise ValueError(f"the trtexec backend runs models with one input and some output; got inputs {names}")
        tensor = io.inputs[0]
        if not tensor.dims or any(d is None for d in tensor.dims[1:]):
            raise ValueError(f"input {tensor.name} has dims {tensor.dims}: only the batch dim may vary")
        dynamic = tensor.dims[0] is None
        if dynamic:
            profile = batch_profile(request.batch_sizes, options.scoring_batch)
        elif set(request.batch_sizes) != {tensor.dims[0]}:
            raise ValueError(
                f"the model's batch dim is fixed at {tensor.dims[0]}; cannot run batch sizes {request.batch_sizes}"
            )
        else:
            profile = (int(tensor.dims[0] or 0),) * 3
        owned: list[Path] = []
        if request.cache_dir is not None:
            cache = request.cache_dir / NAME
            cache.mkdir(parents=True, exist_ok=True)
        else:
            cache = Path(tempfile.mkdtemp(prefix="edgelab-trtexec-engine-"))
            owned.append(cache)
        try:
            details = {
                "trtexec": str(trtexec),
                "tensorrt_version": version_text(version),
                "batch_profile": "min {} / opt {} / max {}".format(*profile) if dynamic else f"fixed {profile[0]}",
                "dla_core": "none" if options.dla_core is None else str(options.dla_core),
                "workspace_mb": str(options.workspace_mb),
            }
            built = model_path
            if request.precision == Precision.INT8:
                built, how = self._int8_model(model_path, request, cache)
                details["int8"] = how
            # Everything that changes the engine. Not the GPU: without CUDA bindings it has no name before
            # trtexec runs, and the cache is per agent (an engine TensorRT cannot deserialize fails loudly).
            key = CacheKey(
                NAME,
                {
                    "model_sha256": file_sha256(built),
                    "tensorrt": version_text(version),
                    "precision": request.precision.value,
                    "input": tensor.name,
                    "sample_dims": list(tensor.dims[1:]),
                    "batch_profile": list(profile) if dynamic else None,
                    "dla_core": options.dla_core,
                    "workspace_mb": options.workspace_mb,
                },
            )
            engine_path = key.path(cache, ".engine")
            hit = engine_cache.lookup(engine_path)
            if not hit:
                details.update(
                    self._build(trtexec, version, built, engine_path, tensor, profile, dynamic, request, options)
                )
                engine_cache.store(engine_path)
            details.update(key.details(("hit" if hit else "miss") if request.cache_dir is not None else "off"))
            details["engine_file"] = engine_path.name
            return TrtexecEngine(
                trtexec=trtexec,
                version=version,
                engine_path=engine_path,
                input=tensor,
                output_name=io.outputs[0].name,
                max_batch=profile[2],
                options=options,
                details=details,
                owned_dirs=owned,
            )
        except BaseException:
            for directory in owned:
                shutil.rmtree(str(directory), ignore_errors=True)
            raise

    def _int8_model(self, model_path: Path, request: BuildRequest, cache: Path) -> tuple[Path, str]:
        """An explicitly quantized (Q/DQ) model to build INT8 from: the shipped one, or one quantized here (cached)."""
        if is_qdq(model_path):
            return model_path, "explicit Q/DQ scales shipped in the model (--int8, no calibrator)"
        if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
            raise ValueError(
                f"int8 through trtexec needs an explicitly quantized (Q/DQ) ONNX model: {model_path.name} has no "
                "QuantizeLinear/DequantizeLinear nodes and this device cannot quantize it (onnxruntime and onnx "
                "are not importable). Fix: ship a Q/DQ model (agent.backends.qdq.quantize_int8(model, x_calib, out, "
                "symmetric=True) on any host), or pip install onnxruntime onnx on the device"
            )
        if request.calibration is None or len(request.calibration) == 0:
            raise ValueError("int8 needs a calibration set (x_calib) shipped with the test set; this one has none")

        calibration = np.ascontiguousarray(request.calibration, dtype=np.float32)
        # TensorRT takes symmetric Q/DQ (zero points 0) only; 8-bit weights (reduce_range is an x86 CPU matter).
        parts = quantization_parts(calibration, reduce_range=False, symmetric=True)
        key = CacheKey(
            NAME, {"model_sha256": request.model_sha256 or file_sha256(model_path), "prepared": "qdq", **parts}
        )
        quantized = key.path(cache, ".qdq.onnx")
        hit = engine_cache.lookup(quantized)
        if not hit:
            quantize_int8(model_path, calibration, quantized, reduce_range=False, symmetric=True)
            engine_cache.store(quantized)
        return quantized, (
            f"quantized on the device: {describe_quantization(parts)}, "
            f"cache {'hit' if hit else 'miss'}; --int8, no calibrator"
        )

    def _build(
        self,
        trtexec: Path,
        version: Version,
        model: Path,
        engine_path: Path,
        tensor: TensorInfo,
        profile: tuple[int, int, int],
        dynamic: bool,
        request: BuildRequest,
        options: TrtexecOptions,
    ) -> dict[str, str]:
        partial = engine_path.with_name(f"{engine_path.name}.{os.getpid()}.partial")
        sample = [int(d or 0) for d in tensor.dims[1:]]
        command = [str(trtexec), f"--onnx={model}", f"--saveEngine={partial}"]
        if dynamic:
            command += [
                f"--minShapes={_shape(tensor.name, profile[0], sample)}",
                f"--optShapes={_shape(tensor.name, profile[1], sample)}",
                f"--maxShapes={_shape(tensor.name, profile[2], sample)}",
            ]
        if request.precision == Precision.FP16:
            command.append("--fp16")
        elif request.precision == Precision.INT8:
            command.append("--int8")  # the scales come from the model's Q/DQ nodes
        if options.dla_core is not None:
            command += [f"--useDLACore={options.dla_core}", "--allowGPUFallback"]
        if version >= MEM_POOL_SIZE_FROM:
            command.append(f"--memPoolSize=workspace:{options.workspace_mb}")  # a bare size is MiB (8.4 .. 10.x)
        else:
            command.append(f"--workspace={options.workspace_mb}")
        # One inference after the build instead of --buildOnly (until 8.6) / --skipInference (8.6 on).
        command += ["--warmUp=0", "--duration=0", "--iterations=1"]
        try:
            run = run_trtexec(command, options.build_timeout_s)
            if run.returncode != 0 or not partial.is_file():
                raise failure(f"trtexec could not build {model.name}", run, version)
            durable_replace(partial, engine_path)  # trtexec wrote it; its bytes reach the disk before the rename
        finally:
            if partial.exists():
                partial.unlink()
        return {"engine_build_s": f"{run.seconds:.3f}", **_device_details(run.lines)}
