"""Run one benchmark on this device: build the engine, time it, score it on the shipped test set.

Every failure becomes a classified `Failure` in the result (never an exception out of
`run_benchmark`, never a zero throughput), so the job's outcome is always stored.
"""

from __future__ import annotations

import json
import platform
import re
import time
import traceback
import zipfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

import edgelab
from agent.backends import BACKENDS, Backend, BuildRequest, DeviceTimedEngine, Engine, SelfTimedEngine
from agent.backends.base import CPU_DEVICE, GPU_DEVICE
from agent.device_state import snapshot, state_manifest
from agent.gpu_memory import process_accelerator_memory, unavailable
from agent.measure import TimedRun, measure_latency, pool_repetitions
from agent.memory import PeakRss
from agent.power import NONE_METER, POWER_METERS, PowerMeter, PowerSampler, select_meter
from agent.probe import device_model
from edgelab.constants import REFERENCE_ACCURACY_LABEL
from edgelab.domain import (
    AcceleratorMemory,
    BenchmarkResult,
    Failure,
    FailureKind,
    JobSpec,
    LatencyStats,
    MeasurementSettings,
    MemoryReport,
    OperatorProfile,
    PowerReport,
    RepetitionSpread,
)
from edgelab.errors import BackendUnavailable, EdgeLabError
from edgelab.metrics import accuracy_report
from edgelab.serde import to_jsonable

# Which sensor sees where the engine runs (`Engine.device`, as the runtime placed it: an ONNX Runtime
# session on the CUDA provider is GPU work). jtop's board total covers CPU and GPU on a Jetson; on a
# desktop NVML sees only the GPU and RAPL only the CPU package, so neither stands in for the other.
METERS_FOR_DEVICE = {GPU_DEVICE: ("jtop", "nvml", "hwmon"), CPU_DEVICE: ("jtop", "rapl", "hwmon")}
# Before each idle baseline the device must be back at rest (a GPU or a DVFS governor stays clocked up
# after the build or the previous window): power is sampled in steps until two step means agree, bounded.
SETTLE_STEP_S = 0.25
SETTLE_MAX_S = 10.0


class JobFailed(Exception):
    def __init__(self, kind: FailureKind, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.failure = Failure(kind, message, detail)


# What runtimes say when a model uses an op or type they lack (ORT's NotImplemented, TensorRT's
# parser, TFLite's resolver), and when they run out of memory (CUDA, TensorRT, ORT's arena).
_UNSUPPORTED = re.compile(r"not ?implemented|unsupported|not supported|no op registered|didn't find op", re.I)
_OUT_OF_MEMORY = re.compile(r"out of memory|\bOOM\b|failed to allocate|bad_alloc", re.I)


@contextmanager
def _stage(kind: FailureKind, what: str) -> Iterator[None]:
    """Classify any error raised inside: out of memory and unsupported ops by what the runtime says, else `kind`."""
    try:
        yield
    except JobFailed:
        raise
    except MemoryError as exc:
        raise JobFailed(FailureKind.OUT_OF_MEMORY, f"{what}: out of memory", traceback.format_exc()) from exc
    except Exception as exc:
        said = f"{type(exc).__name__}: {exc}"
        if _OUT_OF_MEMORY.search(said):
            kind = FailureKind.OUT_OF_MEMORY
        elif _UNSUPPORTED.search(said):
            kind = FailureKind.UNSUPPORTED
        raise JobFailed(kind, f"{what}: {said}", traceback.format_exc()) from exc


@runtime_checkable
class ProfilingEngine(Protocol):
    """An engine that gives a per-operator profile at a batch size, from a pass apart from the timed phase
    (ONNX Runtime: a second, profiled session; trtexec: its separate --exportProfile run)."""

    def operator_profile(self, batch: np.ndarray) -> OperatorProfile | None: ...


@runtime_checkable
class AcceleratorMemoryEngine(Protocol):
    """An engine whose runtime says how much accelerator memory it holds (TensorRT: the device memory an
    execution context needs), each figure saying what it includes."""

    def accelerator_memory(self) -> list[AcceleratorMemory]: ...


@dataclass
class TestSet:
    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    calibration: np.ndarray | None


def load_test_set(path: Path) -> TestSet:
    try:
        with np.load(path, allow_pickle=False) as data:
            return TestSet(
                x=np.ascontiguousarray(data["x_test"], dtype=np.float32),
                y=np.asarray(data["y_test"], dtype=np.int64),
                class_names=[str(c) for c in data["class_names"]],
                calibration=np.asarray(data["x_calib"], dtype=np.float32) if "x_calib" in data else None,
            )
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise JobFailed(FailureKind.BAD_INPUT, f"dataset {path.name} is not a valid test-set bundle: {exc}") from exc


def _check_shape(engine: Engine, sample_shape: tuple[int, ...]) -> None:
    expected = engine.input_shape[1:]
    if len(expected) != len(sample_shape) or any(
        e is not None and e != s
        for e, s in zip(expected, sample_shape)  # lengths checked just before
    ):
        shown = tuple("?" if d is None else d for d in engine.input_shape)
        raise JobFailed(
            FailureKind.BAD_INPUT, f"model expects input {shown}, the test set holds samples of shape {sample_shape}"
        )


def _batches(engine: Engine, x: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
    """Yield (batch, real rows); pads the last batch when the engine's batch dim is fixed."""
    fixed = engine.input_shape[0]
    size = fixed or batch_size
    for start in range(0, len(x), size):
        batch = x[start : start + size]
        rows = len(batch)
        if fixed and rows < fixed:
            batch = np.concatenate([batch, np.zeros((fixed - rows, *batch.shape[1:]), batch.dtype)])
        yield batch, rows


def predict(engine: Engine, x: np.ndarray, batch_size: int, num_classes: int) -> np.ndarray:
    predictions = []
    for batch, rows in _batches(engine, x, batch_size):
        out = engine.infer(batch)
        if out.ndim != 2 or out.shape[1] != num_classes:
            raise JobFailed(
                FailureKind.WRONG_OUTPUT, f"model output shape {out.shape}, expected (batch, {num_classes})"
            )
        if not np.isfinite(out[:rows]).all():
            raise JobFailed(FailureKind.WRONG_OUTPUT, "model produced NaN or Inf outputs")
        predictions.append(out[:rows].argmax(axis=1))
    return np.concatenate(predictions)


def _timing_batch(x: np.ndarray, batch_size: int) -> np.ndarray:
    """Real test samples (not random data: it matters for INT8 and sparse kernels)."""
    reps = -(-batch_size // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:batch_size] if reps > 1 else x[:batch_size])


def manifest(spec: JobSpec, backend: Backend, backend_version: str, engine_details: dict[str, str]) -> dict[str, str]:
    return {
        "agent_version": edgelab.__version__,
        "backend": backend.name,
        "backend_version": backend_version,
        "device_model": device_model(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "model_sha256": spec.model.sha256,
        "dataset_sha256": spec.dataset.sha256,
        "precision": spec.precision.value,
        "measurement": json.dumps(to_jsonable(spec.measurement), sort_keys=True),
        **engine_details,
    }


def run_benchmark(
    spec: JobSpec, model_path: Path, dataset_path: Path, cache_dir: Path | None = None
) -> BenchmarkResult:
    try:
        return _run(spec, model_path, dataset_path, cache_dir)
    except JobFailed as exc:
        return BenchmarkResult(failure=exc.failure)
    except MemoryError:  # outside any stage (loading the test set, a batch): still out of memory, not a crash
        return BenchmarkResult(
            failure=Failure(FailureKind.OUT_OF_MEMORY, "the benchmark ran out of memory", traceback.format_exc())
        )
    except Exception as exc:  # a bug of ours still ends as a stored, classified result
        return BenchmarkResult(
            failure=Failure(FailureKind.CRASH, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        )


def _run(spec: JobSpec, model_path: Path, dataset_path: Path, cache_dir: Path | None) -> BenchmarkResult:
    backend = BACKENDS.get(spec.backend)
    if backend is None:
        raise JobFailed(FailureKind.UNSUPPORTED, f"unknown backend {spec.backend!r}; known: {', '.join(BACKENDS)}")
    info = backend.probe()
    if not info.available:
        raise JobFailed(FailureKind.UNAVAILABLE, str(BackendUnavailable(backend.name, info.reason)))
    if spec.precision not in info.precisions:
        supported = ", ".join(p.value for p in info.precisions)
        why = f": {info.reason}" if info.reason else ""
        raise JobFailed(
            FailureKind.UNSUPPORTED,
            f"{backend.name} cannot build {spec.precision.value} here (supports {supported}){why}",
        )
    if spec.model.format and spec.model.format not in backend.formats:
        raise JobFailed(FailureKind.UNSUPPORTED, f"{backend.name} does not load {spec.model.format!r} artifacts")
    test = load_test_set(dataset_path)
    request = BuildRequest(
        precision=spec.precision,
        batch_sizes=spec.batch_sizes,
        num_threads=spec.measurement.num_threads,
        calibration=test.calibration,
        cache_dir=cache_dir,
        model_sha256=spec.model.sha256,
        options=spec.backend_options,
    )
    # A meter the job names is checked before the build; the default one follows where the engine runs.
    named = spec.measurement.power_meter
    meter, power_note = _power_meter(named, "") if named else (None, "")
    state_before = snapshot()
    rss = PeakRss()  # baseline: this process just before the build (interpreter, runtime imports, test set)
    t0 = time.perf_counter()
    with rss.phase() as load_peak, _stage(
        FailureKind.BUILD, f"{backend.name} could not load {spec.model.name or model_path.name}"
    ):
        engine = backend.load(model_path, request)
    load_s = time.perf_counter() - t0
    sampler: PowerSampler | None = None
    try:
        if not named:
            meter, power_note = _power_meter("", engine.device)
        notes: dict[str, str] = {"power": power_note, "engine_device": engine.device}
        sampler = PowerSampler(meter, spec.measurement.power_sample_period_s) if meter else None
        _check_shape(engine, test.x.shape[1:])
        latency: list[LatencyStats] = []
        power: list[PowerReport] = []
        spread: list[RepetitionSpread] = []
        with rss.phase() as inference_peak:
            _timed_phases(engine, test.x, spec, sampler, notes, latency, power, spread)
        state_after = snapshot()
        accelerator = _accelerator_memory(engine, backend.name)  # while the engine still holds its memory
        profiles = _profiles(engine, test.x, spec.batch_sizes, notes, backend.name)

        with _stage(FailureKind.CRASH, "accuracy on the test set"):
            chunk = engine.max_batch if isinstance(engine, SelfTimedEngine) else max(spec.batch_sizes)
            predictions = predict(engine, test.x, chunk, len(test.class_names))
        accuracy = accuracy_report(test.y, predictions, test.class_names)
        reference = spec.labels.get(REFERENCE_ACCURACY_LABEL)
        if reference:  # the FP32 host model's accuracy on the same test set, set by whoever launched the job
            notes["accuracy_drop_vs_fp32_reference"] = f"{float(reference) - accuracy.accuracy:.6f}"
        return BenchmarkResult(
            load_s=load_s,
            latency=latency,
            accuracy=accuracy,
            power=power,
            memory=MemoryReport(
                baseline_rss_bytes=rss.baseline,
                load_peak_bytes=load_peak[0],
                inference_peak_bytes=inference_peak[0],
                model_file_bytes=_file_size(model_path),
                method=rss.method,
                accelerator=accelerator,
            ),
            profiles=profiles,
            repetitions=spread,
            manifest={
                **manifest(spec, backend, info.version, engine.details),
                **state_manifest(state_before, state_after),
                **notes,
            },
        )
    finally:
        engine.close()
        if sampler is not None:
            sampler.close()


def _timed_phases(
    engine: Engine,
    x: np.ndarray,
    spec: JobSpec,
    sampler: PowerSampler | None,
    notes: dict[str, str],
    latency: list[LatencyStats],
    power: list[PowerReport],
    spread: list[RepetitionSpread],
) -> None:
    """Per batch size, `repetitions` timed phases (each with its own warm-up), pooled into `latency`, their
    spread into `spread`; power over the first repetition's timed phase (one idle baseline, one window)."""
    repetitions = spec.measurement.repetitions
    if repetitions > 1 and sampler is not None:
        notes["power_window"] = f"the first of {repetitions} repetitions' timed phase, per batch size"
    for batch_size in spec.batch_sizes:
        batch = _timing_batch(x, batch_size)
        window = _idle_then_window(sampler, spec.measurement.power_idle_s, notes, batch_size)
        runs: list[TimedRun] = []
        for repetition in range(repetitions):
            what = f"inference at batch {batch_size}" + (f", repetition {repetition + 1}" if repetitions > 1 else "")
            with _stage(FailureKind.CRASH, what):
                runs.append(
                    _time(engine, batch, spec.measurement, (window if repetition == 0 else None) or nullcontext)
                )
        with _stage(FailureKind.CRASH, f"pooling the repetitions at batch {batch_size}"):
            run, spreads = pool_repetitions(runs)
        latency.extend(s for s in (run.end_to_end, run.compute) if s is not None)
        spread.extend(spreads)
        if sampler is not None and window is not None:
            first = runs[0].end_to_end
            report = _power_report(sampler, first.samples * batch_size, notes)
            if report is not None:
                power.append(replace(report, batch_size=batch_size, window_s=first.timed_duration_s))


def _accelerator_memory(engine: Engine, backend: str) -> list[AcceleratorMemory]:
    """The engine's own accelerator-memory figures and the process's (NVML / jtop) where it runs on a GPU."""
    figures: list[AcceleratorMemory] = []
    if isinstance(engine, AcceleratorMemoryEngine):
        try:
            figures.extend(engine.accelerator_memory())
        except Exception as exc:  # the timed figures stand without it
            figures.append(unavailable(backend, "the engine's device memory", f"{type(exc).__name__}: {exc}"))
    figures.extend(process_accelerator_memory(engine.device))
    return figures


def _profiles(
    engine: Engine, x: np.ndarray, batch_sizes: list[int], notes: dict[str, str], backend: str
) -> list[OperatorProfile]:
    """The engine's per-operator profile per batch size, after every timed phase (profiling perturbs timing).

    A profile that fails is noted (`operator_profile_error`), not fatal: the timed figures stand without it.
    """
    if not isinstance(engine, ProfilingEngine):
        if "operator_profile" not in engine.details:  # an engine that says why (tflite) is left to say it
            notes["operator_profile"] = f"not available: the {backend} backend gives no per-operator profile"
        return []
    profiles: list[OperatorProfile] = []
    for batch_size in batch_sizes:
        try:
            profile = engine.operator_profile(_timing_batch(x, batch_size))
        except Exception as exc:
            notes["operator_profile_error"] = f"batch {batch_size}: {type(exc).__name__}: {exc}"[:2000]
            break
        if profile is not None:
            profiles.append(profile)
    return profiles


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _time(
    engine: Engine,
    batch: np.ndarray,
    settings: MeasurementSettings,
    window: Callable[[], AbstractContextManager[object]],
) -> TimedRun:
    """measure_latency's loop around `infer`, or the engine's own when its runtime times itself (trtexec)."""
    if isinstance(engine, SelfTimedEngine):
        return engine.measure(batch, settings, window)
    return measure_latency(
        lambda: engine.infer(batch),
        batch_size=len(batch),
        settings=settings,
        scope=engine.scope,
        timed_window=window,
        **_device_timer(engine),
    )


def _device_timer(engine: Engine) -> dict[str, Any]:
    """measure_latency's compute-only arguments for engines that time the device themselves."""
    if not isinstance(engine, DeviceTimedEngine):
        return {}
    timed: DeviceTimedEngine = engine
    return {"device_ms": lambda: timed.last_compute_ms, "compute_scope": timed.compute_scope}


def _power_meter(name: str, device: str) -> tuple[PowerMeter | None, str]:
    """The meter a job asked for ("" = the best sensor for where the engine runs: `Engine.device`) and a note
    on it; None when power is off.

    A meter the job names but this device lacks fails the job: measuring nothing silently would
    pass for a measurement.
    """
    if name == NONE_METER:
        return None, "off: the job asked for no power measurement"
    order = METERS_FOR_DEVICE.get(device, METERS_FOR_DEVICE[CPU_DEVICE])
    candidates = {n: POWER_METERS[n] for n in (*order, NONE_METER) if n in POWER_METERS}
    try:
        meter, info = select_meter(name) if name else select_meter(meters=candidates)
    except EdgeLabError as exc:
        raise JobFailed(FailureKind.UNSUPPORTED, str(exc)) from exc
    if meter.name == NONE_METER:
        return None, f"not measured: {info.reason}"
    seen = f" (the engine runs on the {device.upper()})" if device and not name else ""
    return meter, f"{meter.name}: {info.sensor}{seen}"


def _idle_then_window(
    sampler: PowerSampler | None, idle_s: float, notes: dict[str, str], batch_size: int
) -> Callable[[], AbstractContextManager[object]] | None:
    """The sampler's window with its idle baseline measured just now, once the device has settled, or None: a
    failing meter is noted, not fatal. How idle was established goes into the manifest's `power_idle`."""
    if sampler is None:
        return None
    if idle_s <= 0:
        notes["power_error"] = "power_idle_s is 0: no idle baseline, so no energy figure"
        return None
    try:
        settling = sampler.settle(SETTLE_STEP_S, SETTLE_MAX_S)
        idle_w = sampler.measure_idle(idle_s)
    except EdgeLabError as exc:
        notes["power_error"] = str(exc)
        return None
    how = json.loads(notes.get("power_idle", "{}"))
    how[f"batch {batch_size}"] = f"{settling.describe()}; then idle {idle_w:.3f} W over {idle_s:g} s"
    notes["power_idle"] = json.dumps(how)
    return sampler.window


def _power_report(sampler: PowerSampler, inferences: int, notes: dict[str, str]) -> PowerReport | None:
    try:
        return sampler.report(inferences)
    except EdgeLabError as exc:
        notes["power_error"] = str(exc)
        return None
