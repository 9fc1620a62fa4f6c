"""Backend registry: grep a backend's name to find where it is registered.

Each backend imports its runtime lazily, so listing them costs nothing on a device
that lacks the runtime; `probe()` says why a backend cannot run.
"""

from __future__ import annotations

from agent.backends.base import Backend, BuildRequest, DeviceTimedEngine, Engine, SelfTimedEngine
from agent.backends.onnxruntime import OnnxRuntimeBackend
from agent.backends.tensorflow import TensorflowBackend
from agent.backends.tensorrt import TensorRTBackend
from agent.backends.tflite import TfliteBackend
from agent.backends.trtexec import TrtexecBackend

BACKENDS: dict[str, Backend] = {
    "onnxruntime": OnnxRuntimeBackend(),
    "tflite": TfliteBackend(),
    "tensorflow": TensorflowBackend(),
    "tensorrt": TensorRTBackend(),
    "trtexec": TrtexecBackend(),
}


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise KeyError(f"unknown backend {name!r}; known: {', '.join(sorted(BACKENDS))}") from None


__all__ = ["BACKENDS", "Backend", "BuildRequest", "DeviceTimedEngine", "Engine", "SelfTimedEngine", "get_backend"]
