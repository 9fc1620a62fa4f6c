"""The `Backend` seam: one small protocol per runtime, found by name in `agent.backends.BACKENDS`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agent.measure import TimedRun
from edgelab.domain import MeasurementSettings, OperatorProfile, OperatorTime, Precision, RuntimeInfo


@dataclass
class BuildRequest:
    """What the agent asks a backend to build an engine for."""

    precision: Precision
    batch_sizes: list[int]
    num_threads: int = 0  # 0: the runtime's default
    calibration: np.ndarray | None = None  # shipped calibration samples, for INT8 engines
    cache_dir: Path | None = None  # where built engines may be cached
    model_sha256: str = ""  # the artifact's hash: part of every engine-cache key
    options: dict[str, str] = field(default_factory=dict)  # backend-specific, e.g. {"dla_core": "0"}


CPU_DEVICE = "cpu"
GPU_DEVICE = "gpu"


class Engine(Protocol):
    """A model built and loaded for one precision, ready to run."""

    # The model's input shape with None for dynamic dims; the batch dim comes first.
    input_shape: tuple[int | None, ...]
    # What one timed `infer` call includes, e.g. "end-to-end: host array in, host array out".
    scope: str
    # Runtime details for the provenance manifest (execution providers, engine cache hit, ...).
    details: dict[str, str]
    # Where inference runs, as the runtime placed it: "cpu" or "gpu" (CPU_DEVICE / GPU_DEVICE). The power
    # meter follows it: an ONNX Runtime session on the CUDA provider is GPU work like a TensorRT engine.
    device: str

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch; returns only when the outputs are on the host (no async work left)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class DeviceTimedEngine(Engine, Protocol):
    """An engine that also times the device compute of each call (CUDA events on GPUs).

    After every `infer` returns, `last_compute_ms` holds that call's compute-only time, so
    the measurement loop reports it as a second latency figure with `compute_scope`
    beside the end-to-end one (trtexec's "GPU Compute Time" next to its "Latency").
    """

    compute_scope: str
    last_compute_ms: float


@runtime_checkable
class SelfTimedEngine(Engine, Protocol):
    """An engine whose runtime runs its own warm-up and timed loop (trtexec), so the runner times nothing itself.

    `measure` runs that loop on `batch` (real test samples) under the job's settings and returns the
    per-iteration figures the runtime recorded, summarised like `measure_latency`'s; it enters
    `timed_window` (the power sampler's window) around the runtime's timed phase only. Every `infer`
    call is costly (a process), so the runner scores the test set in chunks of `max_batch`.
    """

    compute_scope: str
    max_batch: int

    def measure(
        self,
        batch: np.ndarray,
        settings: MeasurementSettings,
        timed_window: Callable[[], AbstractContextManager[object]],
    ) -> TimedRun: ...


class Backend(Protocol):
    name: str
    # Artifact formats this backend builds from, e.g. ("onnx",).
    formats: tuple[str, ...]

    def probe(self) -> RuntimeInfo:
        """Whether this device can run the backend, its version and precisions, or why not."""
        ...

    def load(self, model_path: Path, request: BuildRequest) -> Engine:
        """Build/load an engine. Raises `BackendUnavailable` or the runtime's own error."""
        ...


class BackendOptions:
    """`JobSpec.backend_options` (strings from a launch file) read for one backend: unknown keys are
    refused with the known ones named, and a number below its minimum names the backend and key."""

    def __init__(self, backend: str, options: Mapping[str, str], known: Sequence[str]) -> None:
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"unknown {backend} option(s) {', '.join(unknown)}; known: {', '.join(known)}")
        self.backend, self.options = backend, options

    def number(self, key: str, minimum: float, default: Any = None, kind: Callable[[str], Any] = int) -> Any:
        if key not in self.options:
            return default
        try:
            value = kind(self.options[key])
        except ValueError:
            raise ValueError(f"{self.backend} option {key}={self.options[key]!r} is not a number") from None
        if value < minimum:
            raise ValueError(f"{self.backend} option {key} must be >= {minimum}, got {value}")
        return value

    def switch(self, key: str, default: bool) -> bool:
        """An on/off option (on, off, true, false, 1, 0; any case)."""
        if key not in self.options:
            return default
        value = self.options[key].strip().lower()
        if value not in ("on", "off", "true", "false", "1", "0"):
            raise ValueError(f"{self.backend} option {key}={self.options[key]!r}: use on or off")
        return value in ("on", "true", "1")


PROFILE_TOP_OPS = 20  # the door's bound (coordinator.limits.MAX_PROFILE_OPS)
OP_NAME_CHARS = 200


def top_operators(
    mean_ms: Mapping[str, tuple[str, float]],
    *,
    batch_size: int,
    source: str,
    iterations: int,
    top: int = PROFILE_TOP_OPS,
) -> OperatorProfile:
    """A per-operator profile from each operator's (op type, mean ms per inference): the `top` slowest,
    names cut at OP_NAME_CHARS; total_ms and operators count every operator, so percentages stay honest."""
    total = sum(ms for _, ms in mean_ms.values())
    slowest = sorted(mean_ms.items(), key=lambda item: item[1][1], reverse=True)[:top]
    return OperatorProfile(
        batch_size=batch_size,
        source=source,
        total_ms=total,
        operators=len(mean_ms),
        iterations=iterations,
        ops=[
            OperatorTime(name[:OP_NAME_CHARS], op_type[:OP_NAME_CHARS], ms, 100.0 * ms / total if total else 0.0)
            for name, (op_type, ms) in slowest
        ],
    )
