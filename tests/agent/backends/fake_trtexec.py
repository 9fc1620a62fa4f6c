"""A stand-in for NVIDIA's `trtexec`, run as a real subprocess (through a wrapper script) by the trtexec backend tests.

It speaks trtexec's command line and writes trtexec's own text and JSON formats, taken from NVIDIA's
sources (github.com/NVIDIA/TensorRT, samples/common/sampleReporting.cpp, sampleOptions.cpp,
logging.h, samples/trtexec/trtexec.cpp):
- banner `&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # cmdline` (logging.h `defineTest`, the
  version number as NV_TENSORRT_VERSION prints it: 8201 for 8.2.1, 100300 for 10.3.0), closing
  `&&&& PASSED ...` / `&&&& FAILED ...`; log lines `[MM/DD/YYYY-HH:MM:SS] [I] ...` ([W], [E]).
- --exportTimes: `exportJSONTrace` of TensorRT 8.0-8.5 (every query, warm-ups included, keys
  startEnqMs .. endD2hMs, h2dMs, computeMs, d2hMs, latencyMs, endToEndMs); from 8.6 (and 10.x) warm-up
  queries are skipped and endToEndMs is gone.
- --exportProfile: `Profiler::exportJSONProfile`, `[{"count": N}, {"name", "timeMs", "averageMs",
  "percentage"}]`, with "medianMs" from 8.6.
- --exportOutput: `exportJSONOutput`, `[{"name", "dimensions": "8x3", "values": [...]}]` laid out as
  the C++ writes it, numbers as iostreams print floats (6 significant digits, like %g).
- the failed build of an op TensorRT lacks: TensorRT 8.0.3's transcript from onnx/onnx-tensorrt#800
  ("No importer registered for op", "getPluginCreator could not find plugin", "[8] Assertion failed:
  creator && \"Plugin not found, ...\"", "Failed to parse onnx file", ..., "Engine set up failed").
- `--warmUp`/`--duration` are ints before 8.5 (sampleOptions.h `int warmup; int duration;`): this fake
  refuses a fractional value there (real 8.2 would silently truncate it with std::stoi).
- `--workspace` is gone in 10.x and `--memPoolSize` starts in 8.4: each is an "Unknown option" outside.

What it computes is real: the engine file embeds the ONNX model, every query runs it with ONNX
Runtime (FP16 rounds inputs and outputs through float16; INT8 runs the Q/DQ model, and `--int8` on a
model without Q/DQ nodes uses made-up dynamic ranges, as trtexec does without a calibrator), and the
per-query times are measured around those calls. The per-layer profile splits the measured compute
time over the ONNX nodes (TensorRT's real per-layer split cannot be known without a GPU).

Environment: EDGELAB_FAKE_TRTEXEC_VERSION (NV_TENSORRT_VERSION, default 8201), EDGELAB_FAKE_TRTEXEC_FAIL
("oom": the build runs out of GPU memory), EDGELAB_FAKE_TRTEXEC_DLA_CORES (default 0),
EDGELAB_FAKE_TRTEXEC_LOG (a file each call's argv is appended to as a JSON line).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"EDGELAB-FAKE-TRT-ENGINE\n"
DEVICE = ("NVIDIA Tegra X1", "5.3")  # what a Jetson Nano's trtexec prints in "=== Device Information ==="
# ONNX ops this fake's "TensorRT" imports; anything else (a custom-domain op) is unsupported.
SUPPORTED_OPS = frozenset({
    "Reshape", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Softmax", "Relu", "Sigmoid", "Tanh", "Conv",
    "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Transpose", "Concat", "Squeeze",
    "Unsqueeze", "Identity", "Clip", "Pad", "Constant", "Shape", "Gather", "Cast", "ReduceMean", "QuantizeLinear",
    "DequantizeLinear",
})  # fmt: skip
BASE_OPTIONS = {
    "--onnx", "--saveEngine", "--loadEngine", "--minShapes", "--optShapes", "--maxShapes", "--shapes", "--fp16",
    "--int8", "--useDLACore", "--allowGPUFallback", "--warmUp", "--duration", "--iterations", "--loadInputs",
    "--separateProfileRun", "--exportTimes", "--exportOutput", "--exportProfile", "--verbose", "--noDataTransfers",
    "--avgRuns", "--percentile", "--dumpProfile", "--dumpOutput",
}  # fmt: skip


def version() -> int:
    return int(os.environ.get("EDGELAB_FAKE_TRTEXEC_VERSION", "8201"))


def version_tuple(number: int) -> tuple[int, int, int]:
    if number >= 100000:
        return number // 10000, number // 100 % 100, number % 100
    return number // 1000, number // 100 % 10, number % 100


def known_options(v: tuple[int, int, int]) -> set[str]:
    known = set(BASE_OPTIONS)
    if v < (10, 0, 0):
        known |= {"--workspace", "--buildOnly"}
    if v >= (8, 4, 0):
        known.add("--memPoolSize")
    if v >= (8, 6, 0):
        known.add("--skipInference")
    return known


def log(severity: str, message: str) -> None:
    stamp = time.strftime("%m/%d/%Y-%H:%M:%S")
    for i, line in enumerate(message.split("\n")):
        # Continuation lines of one message carry no prefix, as in TensorRT's own multi-line errors.
        print(f"[{stamp}] [{severity}] {line}" if i == 0 else line, flush=True)


def g(value: float) -> str:
    """A float as C++ iostreams print it by default (precision 6, %g; nan and inf as bare words)."""
    value = float(value)
    if value != value:
        return "nan"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return format(value, "g")


class Failed(Exception):
    """trtexec gives up: the caller prints the closing FAILED line."""


def parse_args(argv: list[str]) -> dict[str, str]:
    args = {}
    for arg in argv:
        key, _, value = arg.partition("=")
        args[key] = value
    return args


def dims(text: str) -> list[int]:
    return [int(d) for d in text.split("x")]


def name_and_value(spec: str) -> tuple[str, str]:
    name, _, value = spec.rpartition(":")  # trtexec splits on the last ':'
    return name.replace("'", ""), value


def integer(args: dict[str, str], key: str, default: int, v: tuple[int, int, int]) -> float:
    if key not in args:
        return default
    text = args[key]
    if v < (8, 5, 0) and not text.lstrip("-").isdigit():
        log("E", f"{key}={text}: TensorRT {'.'.join(map(str, v))} reads this option as an int")
        raise Failed
    return float(text)


def load_model(path: Path) -> Any:
    import onnx

    return onnx.load(str(path))


def has_qdq(model: Any) -> bool:
    ops = {node.op_type for node in model.graph.node}
    return {"QuantizeLinear", "DequantizeLinear"} <= ops


def parse_failure(model: Any, op_index: int) -> None:
    node = model.graph.node[op_index]
    op = node.op_type
    log("I", f"[TRT] No importer registered for op: {op}. Attempting to import as plugin.")
    log("I", f"[TRT] Searching for plugin: {op}, plugin_version: 1, plugin_namespace: ")
    log("E", f"[TRT] 3: getPluginCreator could not find plugin: {op} version: 1")
    log("E", f'[TRT] ModelImporter.cpp:720: While parsing node number {op_index} [{op} -> "{node.output[0]}"]:')
    log("E", "[TRT] ModelImporter.cpp:721: --- Begin node ---")
    log("E", f'[TRT] ModelImporter.cpp:722: input: "{node.input[0]}"\noutput: "{node.output[0]}"\nop_type: "{op}"')
    log("E", "[TRT] ModelImporter.cpp:723: --- End node ---")
    log(
        "E",
        "[TRT] ModelImporter.cpp:726: ERROR: builtin_op_importers.cpp:4643 In function importFallbackPluginImporter:\n"
        '[8] Assertion failed: creator && "Plugin not found, are the plugin name, version, and namespace correct?"',
    )
    log("E", "Failed to parse onnx file")
    log("I", "Finish parsing network model")
    log("E", "Parsing model failed")
    log("E", "Failed to create engine from model.")
    log("E", "Engine set up failed")
    raise Failed


def out_of_memory() -> None:
    log(
        "W",
        "[TRT] Requested amount of GPU memory (1073741824 bytes) could not be allocated. "
        "There may not be enough free memory for allocation to succeed.",
    )
    log("E", "[TRT] ../rtSafe/safeRuntime.cpp (25) - Cuda Error in allocate: 2 (out of memory)")
    log(
        "E",
        "[TRT] 2: [builder.cpp::buildSerializedNetwork::609] Error Code 2: Internal Error "
        "(Assertion engine != nullptr failed. )",
    )
    log("E", "Engine could not be created from network")
    log("E", "Building engine failed")
    log("E", "Failed to create engine from model.")
    log("E", "Engine set up failed")
    raise Failed


def build(args: dict[str, str], v: tuple[int, int, int]) -> dict[str, Any]:
    """What `--onnx ... --saveEngine` makes: the engine's header plus the model it runs."""
    onnx_path = Path(args["--onnx"])
    log("I", "Start parsing network model")
    model = load_model(onnx_path)
    for i, node in enumerate(model.graph.node):
        if node.op_type not in SUPPORTED_OPS:
            parse_failure(model, i)
    log("I", "Finish parsing network model")
    initializers = {i.name for i in model.graph.initializer}
    graph_input = next(i for i in model.graph.input if i.name not in initializers)
    shape = [d.dim_value if d.dim_value > 0 else -1 for d in graph_input.type.tensor_type.shape.dim]
    given = [k for k in ("--minShapes", "--optShapes", "--maxShapes") if k in args]
    if shape[0] > 0 and given:
        log(
            "E",
            "Static model does not take explicit shapes since the shape of inference tensors will be determined by the model itself",
        )
        raise Failed
    if shape[0] < 0:
        if given and len(given) != 3:
            log("E", "Must specify only --optShapes or all of --minShapes, --optShapes, --maxShapes")
            raise Failed
        if not given:
            auto = [1, *shape[1:]]
            log("W", f"Dynamic dimensions required for input: {graph_input.name}, but no shapes were provided. "
                f"Automatically overriding shape to: {'x'.join(map(str, auto))}")  # fmt: skip
            profile = [auto, auto, auto]
        else:
            profile = []
            for key in ("--minShapes", "--optShapes", "--maxShapes"):
                name, value = name_and_value(args[key])
                if name != graph_input.name:
                    log("E", f"Cannot find input tensor with name \"{name}\" in the network inputs! Please make sure the input tensor names are correct.")  # fmt: skip
                    raise Failed
                profile.append(dims(value))
    else:
        profile = [shape, shape, shape]
    if os.environ.get("EDGELAB_FAKE_TRTEXEC_FAIL") == "oom":
        out_of_memory()
    if "--useDLACore" in args:
        cores = int(os.environ.get("EDGELAB_FAKE_TRTEXEC_DLA_CORES", "0"))
        if int(args["--useDLACore"]) >= cores:
            log("E", f"Cannot create DLA engine, {args['--useDLACore']} not available")
            raise Failed
    qdq = has_qdq(model)
    if qdq and "--int8" not in args and v < (10, 0, 0):
        log(
            "E",
            "[TRT] 4: [network.cpp::validate::2633] Error Code 4: Internal Error (Int8 precision has been set for a "
            "layer or layer output, but int8 is not configured in the builder)",
        )
        log("E", "Engine could not be created from network")
        raise Failed
    dummy_ranges = "--int8" in args and not qdq
    if dummy_ranges:
        log("W", "[TRT] Calibrator is not being used. Users must provide dynamic range for all tensors that are not Int32 or Bool.")  # fmt: skip
    return {
        "version": version(),
        "input": graph_input.name,
        "profile": profile,
        "fp16": "--fp16" in args,
        "int8": "--int8" in args,
        "dummy_ranges": dummy_ranges,
        "dla_core": int(args["--useDLACore"]) if "--useDLACore" in args else None,
        "outputs": [o.name for o in model.graph.output],
        "nodes": [node.name or f"(Unnamed Layer* {i}) [{node.op_type}]" for i, node in enumerate(model.graph.node)],
        "heavy": [node.op_type in ("Gemm", "MatMul", "Conv") for node in model.graph.node],
        "onnx": onnx_path.read_bytes(),
    }


def save(engine: dict[str, Any], path: Path) -> None:
    header = {k: v for k, v in engine.items() if k != "onnx"}
    path.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + engine["onnx"])


def load(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        log("E", "Error[1]: [stdArchiveReader.cpp::StdArchiveReader::35] Error Code 1: Serialization (Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match)")  # fmt: skip
        log("E", "Error[4]: [runtime.cpp::deserializeCudaEngine::50] Error Code 4: Internal Error (Engine deserialization failed.)")  # fmt: skip
        raise Failed
    header_line, _, onnx_bytes = data[len(MAGIC) :].partition(b"\n")
    engine: dict[str, Any] = json.loads(header_line)
    if engine["version"] != version():
        log("E", "Error[1]: [stdArchiveReader.cpp::StdArchiveReader::35] Error Code 1: Serialization (Serialization assertion safeVersionRead == safeSerializationVersion failed.Version tag does not match)")  # fmt: skip
        log("E", "Error[4]: [runtime.cpp::deserializeCudaEngine::50] Error Code 4: Internal Error (Engine deserialization failed.)")  # fmt: skip
        raise Failed
    engine["onnx"] = onnx_bytes
    return engine


class Session:
    """The engine run for real: ONNX Runtime on the embedded model, with the engine's precision applied."""

    def __init__(self, engine: dict[str, Any]) -> None:
        import onnxruntime as ort

        self.engine = engine
        self.session = ort.InferenceSession(engine["onnx"], providers=["CPUExecutionProvider"])

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.engine["fp16"]:
            x = x.astype(np.float16).astype(np.float32)
        if self.engine["dummy_ranges"]:  # --int8 without Q/DQ or calibrator: dynamic range [-2, 2] made up
            x = np.clip(np.round(x / (2 / 127)), -127, 127) * (2 / 127)
        outputs = self.session.run(None, {self.engine["input"]: x.astype(np.float32)})
        result = {}
        for name, out in zip(self.engine["outputs"], outputs):
            out = np.asarray(out, dtype=np.float32)
            if self.engine["fp16"]:
                out = out.astype(np.float16).astype(np.float32)
            result[name] = out
        return result


def inputs(args: dict[str, str], engine: dict[str, Any]) -> np.ndarray:
    profile = engine["profile"]
    shape = list(profile[1])
    if "--shapes" in args:
        name, value = name_and_value(args["--shapes"])
        if name != engine["input"]:
            log("E", f"Cannot find input tensor with name \"{name}\" in the engine bindings! Please make sure the input tensor names are correct.")  # fmt: skip
            raise Failed
        shape = dims(value)
        if not all(lo <= s <= hi for lo, s, hi in zip(profile[0], shape, profile[2])):
            log(
                "E",
                "Error[3]: [executionContext.cpp::setBindingDimensions::969] Error Code 3: API Usage Error (Parameter "
                "check failed at: runtime/api/executionContext.cpp::setBindingDimensions::969, condition: "
                f"profileMaxDims.d[i] >= dimensions.d[i]. Supplied binding dimension [{','.join(map(str, shape))}] "
                f"for bindings[0] exceed min ~ max range at index 0, maximum dimension in profile is {profile[2][0]}, "
                f"minimum dimension in profile is {profile[0][0]}, but supplied dimension is {shape[0]}.)",
            )
            log("E", "Inference set up failed")
            raise Failed
    volume = int(np.prod(shape))
    if "--loadInputs" not in args:
        return np.random.default_rng(0).uniform(-1, 1, size=shape).astype(np.float32)
    name, file = name_and_value(args["--loadInputs"])
    if name != engine["input"]:
        log("E", f'Cannot find input tensor with name "{name}" in the engine bindings!')
        raise Failed
    data = Path(file).read_bytes()
    if len(data) != volume * 4:
        log("E", f"Input file {file} holds {len(data)} bytes; binding {name} of shape {shape} needs {volume * 4}")
        raise Failed
    return np.frombuffer(data, dtype="<f4").reshape(shape).copy()


def inference_loop(
    session: Session, x: np.ndarray, warmup_ms: float, duration_s: float, iterations: int
) -> tuple[list[dict[str, float]], dict[str, np.ndarray]]:
    """trtexec's loop: queries until --warmUp ms have passed (warm-up), then >= --iterations AND >= --duration s."""
    trace: list[dict[str, float]] = []
    t0 = time.perf_counter()

    def ms() -> float:
        return (time.perf_counter() - t0) * 1e3

    outputs: dict[str, np.ndarray] = {}
    timed = 0
    while True:
        q = {"startEnqMs": ms()}
        q["endEnqMs"] = ms()
        q["startH2dMs"] = ms()
        device_x = np.array(x, copy=True)  # "host to device"
        q["endH2dMs"] = q["startComputeMs"] = ms()
        outputs = session.run(device_x)
        q["endComputeMs"] = q["startD2hMs"] = ms()
        outputs = {k: np.array(v, copy=True) for k, v in outputs.items()}  # "device to host"
        q["endD2hMs"] = ms()
        trace.append(q)
        if q["startComputeMs"] >= warmup_ms:
            timed += 1
            if timed >= iterations and q["endD2hMs"] >= warmup_ms + duration_s * 1e3:
                return trace, outputs


def timing(q: dict[str, float]) -> dict[str, float]:
    h2d, compute, d2h = (q["endH2dMs"] - q["startH2dMs"], q["endComputeMs"] - q["startComputeMs"],
                         q["endD2hMs"] - q["startD2hMs"])  # fmt: skip
    return {"h2dMs": h2d, "computeMs": compute, "d2hMs": d2h, "latencyMs": h2d + compute + d2h,
            "endToEndMs": q["endD2hMs"] - q["startH2dMs"]}  # fmt: skip


def export_times(path: Path, trace: list[dict[str, float]], warmups: int, v: tuple[int, int, int]) -> None:
    keys = ["startEnqMs", "endEnqMs", "startH2dMs", "endH2dMs", "startComputeMs", "endComputeMs", "startD2hMs",
            "endD2hMs"]  # fmt: skip
    derived = ["h2dMs", "computeMs", "d2hMs", "latencyMs"] + (["endToEndMs"] if v < (8, 6, 0) else [])
    lines, sep = ["["], "  "
    for q in trace[warmups:] if v >= (8, 6, 0) else trace:
        values = {**q, **timing(q)}
        body = ", ".join(f'"{k}" : {g(values[k])}' for k in keys + derived)
        lines.append(f"{sep}{{ {body} }}")
        sep = ", "
    lines.append("]")
    path.write_text("\n".join(lines) + "\n")


def export_profile(path: Path, engine: dict[str, Any], trace: list[dict[str, float]], v: tuple[int, int, int]) -> None:
    """Per-layer times: each query's measured compute time split over the nodes (Gemm/MatMul/Conv weigh 4)."""
    weights = np.array([4.0 if heavy else 1.0 for heavy in engine["heavy"]])
    shares = weights / weights.sum()
    per_query = np.array([timing(q)["computeMs"] for q in trace])[:, None] * shares[None, :]
    total = float(per_query.sum())
    lines = ["[", f'  {{ "count" : {len(trace)} }}']
    for i, name in enumerate(engine["nodes"]):
        times = per_query[:, i]
        fields = [f'"name" : "{name}"', f'"timeMs" : {g(times.sum())}', f'"averageMs" : {g(times.mean())}']
        if v >= (8, 6, 0):
            fields.append(f'"medianMs" : {g(float(np.median(times)))}')
        fields.append(f'"percentage" : {g(times.sum() / total * 100)}')
        lines.append(", { " + ", ".join(fields) + " }")
    lines.append("]")
    path.write_text("\n".join(lines) + "\n")


def export_output(path: Path, outputs: dict[str, np.ndarray]) -> None:
    lines, sep = ["["], "  "
    for name, value in outputs.items():
        lines.append(f'{sep}{{ "name" : "{name}"')
        sep = ", "
        lines.append(f'  {sep}"dimensions" : "{"x".join(str(d) for d in value.shape)}"')
        lines.append(f'  {sep}"values" : [ ' + sep.join(g(x) for x in value.ravel()) + " ]")
        lines.append("  }")
    lines.append("]")
    path.write_text("\n".join(lines) + "\n")


def summary(trace: list[dict[str, float]], warmups: int, warmup_ms: float) -> None:
    timed = [timing(q) for q in trace[warmups:]]
    wall_ms = trace[-1]["endD2hMs"] - trace[warmups]["startH2dMs"]
    log("I", f"Warmup completed {warmups} queries over {g(warmup_ms)} ms")
    log("I", f"Timing trace has {len(timed)} queries over {g(wall_ms / 1e3)} s")
    log("I", "")
    log("I", "=== Performance summary ===")
    log("I", f"Throughput: {g(len(timed) / wall_ms * 1e3)} qps")
    for label, key in (("Latency", "latencyMs"), ("H2D Latency", "h2dMs"), ("GPU Compute Time", "computeMs"),
                       ("D2H Latency", "d2hMs")):  # fmt: skip
        values = np.array([t[key] for t in timed])
        log("I", f"{label}: min = {g(values.min())} ms, max = {g(values.max())} ms, mean = {g(values.mean())} ms, "
            f"median = {g(float(np.median(values)))} ms, percentile(99%) = {g(float(np.percentile(values, 99)))} ms")  # fmt: skip
    log("I", f"Total Host Walltime: {g(wall_ms / 1e3)} s")
    log("I", "Explanations of the performance metrics are printed in the verbose logs.")


def main(argv: list[str]) -> int:
    number = version()
    v = version_tuple(number)
    banner = f"TensorRT.trtexec [TensorRT v{number}] # trtexec {' '.join(argv)}"
    print(f"&&&& RUNNING {banner}", flush=True)
    call_log = os.environ.get("EDGELAB_FAKE_TRTEXEC_LOG")
    if call_log:
        with open(call_log, "a") as f:
            f.write(json.dumps(argv) + "\n")
    args = parse_args(argv)
    if "--help" in args or "-h" in args:
        print("=== Model Options ===\n  --onnx=<file>               ONNX model\n...", flush=True)
        return 0
    try:
        unknown = [k for k in args if k not in known_options(v)]
        if unknown:
            for key in unknown:
                log("E", f"Unknown option: {key} {args[key]}")
            raise Failed
        log("I", "=== Device Information ===")
        log("I", f"Selected Device: {DEVICE[0]}")
        log("I", f"Compute Capability: {DEVICE[1]}")
        log("I", f"TensorRT version: {number}")
        if "--onnx" in args:
            t0 = time.perf_counter()
            engine = build(args, v)
            if "--saveEngine" in args:
                save(engine, Path(args["--saveEngine"]))
            log("I", f"Engine built in {g(time.perf_counter() - t0)} sec.")
        elif "--loadEngine" in args:
            engine = load(Path(args["--loadEngine"]))
            if engine["dla_core"] is not None and args.get("--useDLACore") != str(engine["dla_core"]):
                log("E", "Error[1]: [runtime.cpp::deserializeCudaEngine::33] Error Code 1: Serialization (DLA core of "
                    "the runtime does not match the engine's)")  # fmt: skip
                raise Failed
            log("I", "Engine loaded in 0.01 sec.")
        else:
            log("E", "Model missing or format not recognized")
            raise Failed
        if "--buildOnly" in args or "--skipInference" in args:
            print(f"&&&& PASSED {banner}", flush=True)
            return 0
        session = Session(engine)
        x = inputs(args, engine)
        warmup_ms = integer(args, "--warmUp", 200, v)
        duration_s = integer(args, "--duration", 3, v)
        iterations = int(integer(args, "--iterations", 10, v))
        log("I", "Starting inference")
        trace, outputs = inference_loop(session, x, warmup_ms, duration_s, iterations)
        warmups = sum(1 for q in trace if q["startComputeMs"] < warmup_ms)
        summary(trace, warmups, warmup_ms)
        if "--exportTimes" in args:
            export_times(Path(args["--exportTimes"]), trace, warmups, v)
        if "--exportOutput" in args:
            export_output(Path(args["--exportOutput"]), outputs)
        if "--exportProfile" in args:
            profiled = trace[warmups:]
            if "--separateProfileRun" in args:
                profiled = inference_loop(session, x, warmup_ms, duration_s, iterations)[0]
            else:
                log("W", "The network timing report will not be accurate due to extra synchronizations when profiler is enabled.")  # fmt: skip
                log("W", "Add --separateProfileRun to profile layer timing in a separate run.")
            export_profile(Path(args["--exportProfile"]), engine, profiled, v)
    except Failed:
        print(f"&&&& FAILED {banner}", flush=True)
        return 1
    print(f"&&&& PASSED {banner}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
