"""One engine-cache key for every backend, and cache files that are verified before they are reused.

Whatever a backend builds on the device and keeps for the next job (a TensorRT engine, an ONNX
quantized to Q/DQ, an FP16 ONNX) is named by a `CacheKey`: the sha256 of every input that changes
the built file (model hash, calibration-set hash, quantizer settings and op list, runtime version,
GPU, options...). The manifest carries the key's parts and whether it was a hit or a miss, so a
result says what was actually run. A file is reused only when the sidecar written beside it at
store time vouches for it: the size always, the sha256 too when it is cheap to read back; anything
else (a file truncated by a power cut, one written before sidecars) is deleted and built again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from agent.cache import HASH_ON_HIT_MAX_BYTES, SIDECAR_SUFFIX, durable_write, file_sha256

__all__ = ["CacheKey", "array_sha256", "file_sha256", "lookup", "store"]

log = logging.getLogger("edgelab.agent")


def array_sha256(array: np.ndarray) -> str:
    """The hash of an array's contents, dtype and shape (a calibration set, for instance)."""
    data = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{data.dtype.str}{tuple(data.shape)}".encode())
    digest.update(data.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class CacheKey:
    """Everything that changes a built file, for one backend; `digest` names the file."""

    backend: str
    parts: Mapping[str, Any]  # JSON-able values

    def text(self) -> str:
        return json.dumps({"backend": self.backend, **self.parts}, sort_keys=True)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text().encode()).hexdigest()[:32]

    def path(self, directory: Path, suffix: str) -> Path:
        return directory / f"{self.digest}{suffix}"

    def details(self, status: str, prefix: str = "engine_cache") -> dict[str, str]:
        """Manifest entries: `<prefix>` hit / miss / off, `<prefix>_key` and `<prefix>_key_parts`."""
        return {prefix: status, f"{prefix}_key": self.digest, f"{prefix}_key_parts": self.text()}


def lookup(path: Path) -> bool:
    """Whether `path` is a cached file to reuse: present and vouched for by its sidecar (size, and sha256
    when cheap). A file that fails is deleted with its sidecar, so the caller builds it again."""
    if not path.is_file():
        return False
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    why = ""
    try:
        expected_sha, expected_size = sidecar.read_text().split()
        size = path.stat().st_size
        if size != int(expected_size):
            why = f"{size} bytes, {expected_size} were stored"
        elif size <= HASH_ON_HIT_MAX_BYTES and file_sha256(path) != expected_sha:
            why = "its sha256 differs from the stored one"
    except (OSError, ValueError):
        why = "no readable record of what was stored (written before a crash, or by an older agent)"
    if why:
        log.warning("cached %s is not reused: %s; building it again", path.name, why)
        for stale in (path, sidecar):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        return False
    os.utime(str(path))  # the mtime is the last use: the agent evicts least-recently-used files first
    return True


def store(path: Path) -> None:
    """Record a file just put in the cache (durably, see `agent.cache.durable_replace`) so `lookup` can check it."""
    record = f"{file_sha256(path)} {path.stat().st_size}\n".encode()
    durable_write(path.with_name(path.name + SIDECAR_SUFFIX), record)
