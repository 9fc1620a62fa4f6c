"""SavedModel -> TFLite (FP32, FP16, dynamic-range INT8, full INT8) and zipped SavedModel artifacts,
host-side runners for every artifact format, and the checks that an artifact agrees with Keras.

The formats are the ones the agents' backends load (see `BACKEND_BY_FORMAT`): "onnx" (onnxruntime,
tensorrt), "tflite" (tflite) and "savedmodel.zip" (tensorflow; the SavedModel directory's files at
the zip root).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import NDArray

from edgelab.errors import ConfigError
from pipelines._deps import require
from pipelines.export import KERAS_ASSET

TflitePrecision = Literal["fp32", "fp16", "int8-dynamic", "int8"]
TFLITE_PRECISIONS: tuple[str, ...] = get_args(TflitePrecision)

BACKEND_BY_FORMAT: dict[str, str] = {"onnx": "onnxruntime", "tflite": "tflite", "savedmodel.zip": "tensorflow"}
"""The agent backend that runs each artifact format (TensorRT also takes "onnx", on GPUs)."""

CALIBRATION_SAMPLES = 256
"""Representative samples fed to the INT8 converter: TFLite's guide asks for ~100-500."""
SERVING_SIGNATURE = "serving_default"


def convert_tflite(
    savedmodel_dir: Path,
    out_path: Path,
    precision: TflitePrecision = "fp32",
    calibration: NDArray[np.float32] | Path | None = None,
    int8_io: bool = False,
) -> Path:
    """Convert the SavedModel's `serving_default` signature to a .tflite file.

    precision: "fp32" (no optimisation), "fp16" (float16 weights, float compute where no GPU
    delegate), "int8-dynamic" (int8 weights, activations quantized on the fly), "int8" (full
    integer: weights and activations int8, calibrated on `calibration`, the x_calib array or the
    npz that pipelines.training.write_dataset_npz wrote). int8_io (full INT8 only) makes the
    input and output tensors int8 too (scale/zero point in the tensor details); otherwise they
    stay float32 with quantize/dequantize ops at the edges.
    """
    tf = require("tensorflow")
    if precision not in TFLITE_PRECISIONS:
        raise ConfigError(f"precision: {precision!r} is not one of {', '.join(TFLITE_PRECISIONS)}")
    if int8_io and precision != "int8":
        raise ConfigError("int8_io: only full INT8 (precision 'int8') has integer inputs and outputs")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel_dir), signature_keys=[SERVING_SIGNATURE])
    if precision != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if precision == "int8":
        if calibration is None:
            raise ConfigError("calibration: full INT8 needs a representative dataset (x_calib)")
        samples = load_calibration(calibration)
        converter.representative_dataset = _representative(samples)
        # Fail instead of silently keeping float ops the integer-only accelerators cannot run.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_tf(tf):
        out_path.write_bytes(converter.convert())
    return out_path


def tflite_file_precision(path: Path) -> str:
    """The precision a .tflite file holds, by the rule the agents' tflite backend checks jobs with.

    It can differ from the precision asked at conversion: dynamic-range INT8 leaves tensors under
    1024 elements in float, so a small enough model stays FP32.
    """
    from agent.backends.tflite import artifact_precision, interpreter_class

    interpreter = interpreter_class()[0](model_path=str(path))
    tensors = [np.dtype(t["dtype"]) for t in interpreter.get_tensor_details()]
    return artifact_precision(tensors, np.dtype(interpreter.get_input_details()[0]["dtype"])).value


def zip_savedmodel(savedmodel_dir: Path, out_path: Path) -> Path:
    """Zip a SavedModel directory with its files at the zip root (saved_model.pb, variables/...).

    Entries are sorted and timestamped at the zip epoch, so the same SavedModel gives the same
    bytes and thus the same content address. assets.extra/ (the Keras copy) is left out.
    """
    savedmodel_dir = Path(savedmodel_dir)
    if not (savedmodel_dir / "saved_model.pb").is_file():
        raise ConfigError(f"savedmodel_dir: no saved_model.pb in {savedmodel_dir}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in savedmodel_dir.rglob("*") if p.is_file()):
            if path.relative_to(savedmodel_dir).parts[0] == KERAS_ASSET.split("/")[0]:
                continue  # the trainable Keras copy is not part of the deployed model
            info = zipfile.ZipInfo(path.relative_to(savedmodel_dir).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return out_path


def load_calibration(calibration: NDArray[np.float32] | Path) -> NDArray[np.float32]:
    """The calibration samples: an array, or x_calib from a dataset npz."""
    if isinstance(calibration, str | Path):
        with np.load(calibration) as data:
            if "x_calib" not in data:
                raise ConfigError(f"calibration: {calibration} has no x_calib array")
            calibration = data["x_calib"]
    samples = np.asarray(calibration, dtype=np.float32)
    if not len(samples):
        raise ConfigError("calibration: the calibration set is empty")
    return samples[:CALIBRATION_SAMPLES]


def _representative(samples: NDArray[np.float32]) -> Callable[[], Iterator[list[NDArray[np.float32]]]]:
    def dataset() -> Iterator[list[NDArray[np.float32]]]:
        for i in range(len(samples)):
            yield [samples[i : i + 1]]

    return dataset


class _quiet_tf:
    """Silence TF's Python logger (converter chatter) for the duration of a block."""

    def __init__(self, tf: Any) -> None:
        self._logger = tf.get_logger()
        self._level = self._logger.level

    def __enter__(self) -> None:
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)


# ---------------------------------------------------------------- running artifacts on the host


Runner = Callable[[NDArray[np.float32]], NDArray[np.float32]]


def load_onnx(path: Path) -> Runner:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: NDArray[np.float32]) -> NDArray[np.float32]:
        out = session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]
        return np.asarray(out, dtype=np.float32)

    return run


def load_tflite(path: Path) -> Runner:
    """The TFLite interpreter the agents use (LiteRT first) on a .tflite file; int8 I/O is (de)quantized here."""
    from agent.backends.tflite import interpreter_class

    interpreter = interpreter_class()[0](model_path=str(path), num_threads=1)

    def run(x: NDArray[np.float32]) -> NDArray[np.float32]:
        inp = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(inp["index"], list(x.shape))
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]
        out = interpreter.get_output_details()[0]
        batch = np.asarray(x, dtype=np.float32)
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            batch = np.clip(np.round(batch / scale) + zero, info.min, info.max).astype(inp["dtype"])
        interpreter.set_tensor(inp["index"], batch)
        interpreter.invoke()
        result = np.asarray(interpreter.get_tensor(out["index"]))
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            result = (result.astype(np.float32) - zero) * scale
        return result.astype(np.float32)

    return run


def load_savedmodel_zip(path: Path) -> Runner:
    tf = require("tensorflow")
    with tempfile.TemporaryDirectory(prefix="edgelab-sm-") as tmp:
        with zipfile.ZipFile(path) as archive:
            archive.extractall(tmp)
        loaded = tf.saved_model.load(tmp)  # variables are read in; the folder can go
    (name,) = loaded.signatures[SERVING_SIGNATURE].structured_input_signature[1]

    def run(x: NDArray[np.float32]) -> NDArray[np.float32]:
        # Through `loaded` each call: a signature alone does not keep the variables alive.
        outputs = loaded.signatures[SERVING_SIGNATURE](**{name: tf.constant(x, dtype=tf.float32)})
        return np.asarray(next(iter(outputs.values())).numpy(), dtype=np.float32)

    return run


RUNNERS: dict[str, Callable[[Path], Runner]] = {
    "onnx": load_onnx,
    "tflite": load_tflite,
    "savedmodel.zip": load_savedmodel_zip,
}


def run_artifact(path: Path, format: str, x: NDArray[np.float32], batch_size: int = 512) -> NDArray[np.float32]:
    """Class scores of the artifact on `x` (in batches), computed on this host."""
    try:
        loader = RUNNERS[format]
    except KeyError:
        raise ConfigError(f"format: {format!r} is not one of {', '.join(RUNNERS)}") from None
    run = loader(Path(path))
    parts = [run(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)


# ---------------------------------------------------------------- verification and metadata


@dataclass
class Verification:
    """How an artifact's outputs compare with the Keras model's on the same batch."""

    samples: int
    max_abs_diff: float
    """For int8 artifacts: after dequantizing the outputs."""
    argmax_agreement: float
    """Share of samples whose predicted class is the same as Keras's."""


def compare_outputs(artifact_out: NDArray[np.float32], reference_out: NDArray[np.float32]) -> Verification:
    if artifact_out.shape != reference_out.shape:
        raise ValueError(f"artifact output shape {artifact_out.shape} differs from Keras {reference_out.shape}")
    if not len(reference_out):
        return Verification(0, 0.0, 1.0)
    diff = float(np.max(np.abs(artifact_out.astype(np.float64) - reference_out)))
    agree = float(np.mean(np.argmax(artifact_out, axis=-1) == np.argmax(reference_out, axis=-1)))
    return Verification(len(reference_out), diff, agree)


def verify_artifact(
    path: Path, format: str, x: NDArray[np.float32], reference_out: NDArray[np.float32]
) -> Verification:
    """Run the artifact on the host and compare it with the reference (Keras) outputs for `x`."""
    return compare_outputs(run_artifact(path, format, x), reference_out)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def gzip_size(path: Path) -> int:
    """Bytes after gzip -9: the "zipped size" the compression papers report (pruned zeros compress)."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0))


def savedmodel_flops(savedmodel_dir: Path) -> int | None:
    """Floating-point operations of one inference (batch 1) counted by TF's profiler; None if it cannot.

    The graph is frozen with the batch dimension fixed to 1, then TF's registered per-op FLOP
    statistics are summed (a multiply-add counts as 2).
    """
    tf = require("tensorflow")
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    try:
        loaded = tf.saved_model.load(str(savedmodel_dir))  # keeps the variables alive while tracing
        fn = loaded.signatures[SERVING_SIGNATURE]
        ((name, spec),) = fn.structured_input_signature[1].items()
        concrete = tf.function(fn).get_concrete_function(**{name: tf.TensorSpec([1, *spec.shape[1:]], spec.dtype)})
        graph = convert_variables_to_constants_v2(concrete).graph
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        with _quiet_tf(tf):
            profile = tf.compat.v1.profiler.profile(graph=graph, cmd="op", options=options)
    except Exception:  # the profiler lacks statistics for some ops or graphs; FLOPs are optional
        return None
    return int(profile.total_float_ops) if profile is not None and profile.total_float_ops else None


@dataclass
class ArtifactInfo:
    """What is known about one produced artifact; `metadata()` is what is uploaded with it."""

    format: str
    precision: str
    """fp32 / fp16 / int8: the `JobSpec.precision` to benchmark it at."""
    quantization: str
    compression: str
    sha256: str
    size_bytes: int
    gzip_bytes: int
    params: int
    sparsity: float
    source_sha256: str
    io: str = "float"
    flops: int | None = None
    verification: Verification | None = None
    host_accuracy: float | None = None
    log: list[str] = field(default_factory=list)

    @property
    def backend(self) -> str:
        return BACKEND_BY_FORMAT[self.format]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metadata(self) -> dict[str, str]:
        """Flat strings for the artifact store."""
        out = {
            "format": self.format,
            "precision": self.precision,
            "quantization": self.quantization,
            "compression": self.compression,
            "io": self.io,
            "size_bytes": str(self.size_bytes),
            "gzip_bytes": str(self.gzip_bytes),
            "params": str(self.params),
            "sparsity": f"{self.sparsity:.4f}",
            "source_sha256": self.source_sha256,
            "flops": "" if self.flops is None else str(self.flops),
            "conversion_log": " | ".join(self.log),
        }
        if self.verification is not None:
            out["verify_samples"] = str(self.verification.samples)
            out["verify_max_abs_diff"] = f"{self.verification.max_abs_diff:.3g}"
            out["verify_argmax_agreement"] = f"{self.verification.argmax_agreement:.4f}"
        if self.host_accuracy is not None:
            out["host_accuracy"] = f"{self.host_accuracy:.6f}"
        return out
