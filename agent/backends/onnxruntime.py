"""ONNX Runtime backend: CPU by default, CUDA/TensorRT execution providers when present.

INT8 is built on the device: static post-training quantization (QDQ, per-channel weights)
calibrated on the shipped calibration set, cached under a `CacheKey` of everything that changes
the quantized model (model and calibration-set hashes, ORT version, op list, reduce_range).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.backends import engine_cache
from agent.backends.base import CPU_DEVICE, GPU_DEVICE, BackendOptions, BuildRequest, Engine, top_operators
from agent.backends.engine_cache import CacheKey
from agent.backends.qdq import describe_quantization, needs_reduce_range, quantization_parts, quantize_int8
from edgelab.constants import BACKEND_FORMATS
from edgelab.domain import OperatorProfile, Precision, RuntimeInfo
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


OPTIONS = ("profile",)
PROFILE_SOURCE = "onnxruntime session profiling"
PROFILE_RUNS = 20  # profiled inferences after one unprofiled-in-the-figures warm-up run...
PROFILE_MAX_S = 5.0  # ...or fewer when they take longer than this


def node_times(events: list[dict[str, Any]]) -> tuple[dict[str, tuple[str, float]], int]:
    """Total kernel time (µs) and op type per node from an ORT profile (`end_profiling()`'s JSON), and the
    number of runs they cover: the first `model_run` (a warm-up: first-run allocations) is left out."""
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: float(e.get("ts", 0)))  # fmt: skip
    start, iterations = (float(runs[1]["ts"]), len(runs) - 1) if len(runs) > 1 else (0.0, len(runs))
    totals: dict[str, tuple[str, float]] = {}
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith("_kernel_time") or float(event.get("ts", 0)) < start:
            continue
        node = name[: -len("_kernel_time")]
        op_type = str((event.get("args") or {}).get("op_name", ""))
        totals[node] = (op_type, totals.get(node, (op_type, 0.0))[1] + float(event.get("dur", 0)))
    return totals, iterations


def summarize(totals: dict[str, tuple[str, float]], iterations: int, batch_size: int) -> OperatorProfile:
    """Summed kernel µs per node -> the slowest nodes' mean ms per inference."""
    per_run = {node: (op_type, us / 1000.0 / max(iterations, 1)) for node, (op_type, us) in totals.items()}
    return top_operators(per_run, batch_size=batch_size, source=PROFILE_SOURCE, iterations=iterations)


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingExtraError("onnxruntime", "onnxruntime") from exc
    return onnxruntime


class OnnxRuntimeEngine:
    scope = "end-to-end: host array in, host array out (session.run)"

    def __init__(self, session: Any, profiled: Any = None) -> None:
        self._session = session
        # A factory of a second session with profiling on (backend_options profile: on), else None.
        self._profiled = profiled
        inp = session.get_inputs()[0]
        self._input_name = inp.name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inp.shape)
        providers = session.get_providers()
        # The session's first provider takes every node it can; the CPU one only gets what is left.
        self.device = GPU_DEVICE if providers and providers[0] in GPU_PROVIDERS else CPU_DEVICE
        self.details = {"execution_providers": ",".join(providers)}

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run(None, {self._input_name: batch})[0])

    def operator_profile(self, batch: np.ndarray) -> OperatorProfile | None:
        """Per-node times on `batch` from a second session with profiling on, after the timed phase (the
        timed session never profiles: it perturbs timing); None unless the job asked (profile: on)."""
        if self._profiled is None:
            return None
        scratch = Path(tempfile.mkdtemp(prefix="edgelab-ort-profile-"))
        try:
            session = self._profiled(scratch)
            feed = {self._input_name: batch}
            session.run(None, feed)  # warm-up: left out of the figures (node_times)
            deadline = time.perf_counter() + PROFILE_MAX_S
            for _ in range(PROFILE_RUNS):
                session.run(None, feed)
                if time.perf_counter() > deadline:
                    break
            path = Path(session.end_profiling())
            with open(path if path.is_absolute() else scratch / path.name, encoding="utf-8") as f:
                events = json.load(f)
            del session
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        totals, iterations = node_times(events)
        return summarize(totals, iterations, len(batch))

    def close(self) -> None:
        self._session = None
        self._profiled = None


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
        profile = BackendOptions(self.name, request.options, OPTIONS).switch("profile", False)

        def session_options() -> Any:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if request.num_threads:
                options.intra_op_num_threads = request.num_threads
            return options

        options = session_options()
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
        profiled = None
        if profile:
            built = model_path

            def profiled(scratch: Path) -> Any:
                options = session_options()
                options.enable_profiling = True
                options.profile_file_prefix = str(scratch / "ort-profile")
                return ort.InferenceSession(str(built), sess_options=options, providers=providers)

            details["operator_profile"] = (
                f"{PROFILE_SOURCE}: a second session after the timed phase, {PROFILE_RUNS} runs after a warm-up "
                f"run (at most {PROFILE_MAX_S:g} s); kernel time per node"
            )
        else:
            details["operator_profile"] = "off: backend_options profile: on asks for one (a separate profiled pass)"
        engine = OnnxRuntimeEngine(session, profiled)
        engine.details.update(details)
        if request.precision == Precision.INT8 and request.calibration is not None:
            # How far quantization moved decisions, on samples the device has (the test set is scored later).
            calib = np.ascontiguousarray(request.calibration, dtype=np.float32)
            agreement = float(np.mean(engine.infer(calib).argmax(1) == reference.infer(calib).argmax(1)))
            engine.details["int8_vs_fp32_argmax_agreement_on_calibration_set"] = f"{agreement:.4f}"
        return engine
