"""INT8 calibration for the TensorRT backend: an `IInt8EntropyCalibrator2` over the shipped samples.

TensorRT drives it during `build_serialized_network`: `read_calibration_cache` first (a hit
skips calibration), else `get_batch` until it returns None, then `write_calibration_cache`.
Calibration runs at the optimization profile's `opt` shape (explicit batch ignores
`get_batch_size`), so every batch holds exactly `batch_size` samples: the last one wraps
around to the first samples, and a set smaller than one batch is repeated.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def write_atomically(path: Path, data: Any) -> None:
    """Write bytes (or any buffer, e.g. TensorRT's IHostMemory) so that readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def calibration_batch(samples: np.ndarray, index: int, batch_size: int, dtype: np.dtype[Any]) -> np.ndarray:
    """Batch `index` of `batch_size` samples, wrapping around the end of the set."""
    rows = np.arange(index * batch_size, (index + 1) * batch_size)
    return np.ascontiguousarray(np.take(samples, rows, axis=0, mode="wrap"), dtype=dtype)


def make_entropy_calibrator(
    trt: Any, cuda: Any, samples: np.ndarray, batch_size: int, dtype: np.dtype[Any], cache_path: Path | None
) -> Any:
    """Build the calibrator; call it with the CUDA context current (it allocates one device batch)."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches_fed = 0
            self.cache_hit = False
            # An exception must not cross back into TensorRT's C++ caller: keep it, stop
            # calibrating (get_batch -> None), and let the backend raise it after the build.
            self.error: BaseException | None = None
            self._count = -(-len(samples) // batch_size)
            self._device = cuda.mem_alloc(calibration_batch(samples, 0, batch_size, dtype).nbytes)

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.error is not None or self.batches_fed >= self._count:
                return None
            try:
                cuda.memcpy_htod(self._device, calibration_batch(samples, self.batches_fed, batch_size, dtype))
            except Exception as exc:
                self.error = exc
                return None
            self.batches_fed += 1
            return [int(self._device)]

        def read_calibration_cache(self) -> bytes | None:
            if cache_path is None or not cache_path.is_file():
                return None
            self.cache_hit = True
            return cache_path.read_bytes()

        def write_calibration_cache(self, cache: Any) -> None:
            if cache_path is None:
                return
            try:
                write_atomically(cache_path, cache)
            except OSError as exc:
                self.error = exc

        def free(self) -> None:
            self._device.free()

    return EntropyCalibrator()
