"""TensorFlow backend: the SavedModel's `serving_default` signature, the baseline the other runtimes are compared to.

The artifact is a zip of a SavedModel directory ("savedmodel.zip"); it is unpacked once per
model hash into the engine cache. TensorFlow places ops on a GPU by itself when it sees one.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from agent.backends.base import CPU_DEVICE, GPU_DEVICE, BuildRequest, Engine
from edgelab.constants import BACKEND_FORMATS
from edgelab.domain import Precision, RuntimeInfo
from edgelab.errors import MissingExtraError

SIGNATURE = "serving_default"


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow
    except ImportError as exc:
        raise MissingExtraError("tensorflow", "train") from exc
    return tensorflow


def unpack_savedmodel(archive: Path, cache_dir: Path | None, key: str) -> Path:
    """Unzip the SavedModel once into `cache_dir/key` (atomically: a half-written dir is never reused)."""
    root = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="edgelab-savedmodel-"))
    target = root / f"savedmodel-{key or archive.stem}"
    if (target / "saved_model.pb").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root))
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():  # refuse paths that would escape the target (zip slip)
                if Path(member).is_absolute() or ".." in Path(member).parts:
                    raise ValueError(f"unsafe path in SavedModel archive: {member!r}")
            zf.extractall(staging)
        if not (staging / "saved_model.pb").is_file():
            raise ValueError(f"{archive.name} holds no saved_model.pb at its root")
        staging.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


class TensorflowEngine:
    scope = "end-to-end: host array in, host array out (serving_default signature, eager call)"

    def __init__(self, tf: Any, loaded: Any, details: dict[str, str], device: str = CPU_DEVICE) -> None:
        self._tf = tf
        self.device = device
        self._loaded = loaded  # keeps the signature's variables alive
        self._fn = loaded.signatures[SIGNATURE]
        _, kwargs = self._fn.structured_input_signature
        if len(kwargs) != 1:
            raise ValueError(f"{SIGNATURE} takes {len(kwargs)} inputs; EdgeLab benchmarks single-input models")
        (self._input_name, spec), *_ = kwargs.items()
        self._input_dtype = spec.dtype
        self.input_shape = tuple(spec.shape.as_list())
        outputs = self._fn.structured_outputs
        if len(outputs) != 1:
            raise ValueError(f"{SIGNATURE} returns {len(outputs)} outputs; expected one")
        (self._output_name,) = outputs
        self.details = details

    def infer(self, batch: np.ndarray) -> np.ndarray:
        x = self._tf.constant(batch, dtype=self._input_dtype)
        # .numpy() copies the result to the host, so nothing is left running when the clock stops.
        return np.asarray(self._fn(**{self._input_name: x})[self._output_name].numpy())

    def close(self) -> None:
        self._fn = None
        self._loaded = None


class TensorflowBackend:
    name = "tensorflow"
    formats: tuple[str, ...] = BACKEND_FORMATS["tensorflow"]

    def probe(self) -> RuntimeInfo:
        # Found without importing: importing TensorFlow takes seconds and hundreds of MB.
        if importlib.util.find_spec("tensorflow") is None:
            return RuntimeInfo(self.name, available=False, reason=str(MissingExtraError("tensorflow", "train")))
        return RuntimeInfo(
            self.name, available=True, version=importlib.metadata.version("tensorflow"), precisions=[Precision.FP32]
        )

    def load(self, model_path: Path, request: BuildRequest) -> Engine:
        tf = _tf()
        if request.num_threads:
            # Raises once TensorFlow has initialised in this process: the setting is then fixed.
            with contextlib.suppress(RuntimeError):
                tf.config.threading.set_intra_op_parallelism_threads(request.num_threads)
        directory = unpack_savedmodel(model_path, request.cache_dir, request.model_sha256)
        loaded = tf.saved_model.load(str(directory))
        if SIGNATURE not in loaded.signatures:
            raise ValueError(f"SavedModel has no {SIGNATURE!r} signature (has {', '.join(loaded.signatures)})")
        gpus = tf.config.list_logical_devices("GPU")
        return TensorflowEngine(
            tf,
            loaded,
            {
                "tensorflow_devices": ",".join(d.name for d in gpus) or "CPU",
                "intra_op_threads": str(tf.config.threading.get_intra_op_parallelism_threads() or "default"),
            },
            GPU_DEVICE if gpus else CPU_DEVICE,  # TensorFlow places the ops on a GPU it sees
        )
