"""Keras 3 model -> SavedModel -> ONNX, and a check that ONNX Runtime agrees with Keras.

`tf2onnx.convert.from_keras` fails on Keras 3 models (KeyError 'keras_tensor_...'), so the
route is the SavedModel that `model.export` writes, converted the way `python -m tf2onnx.convert
--saved-model` does it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgelab.errors import ConfigError
from pipelines._deps import require

DEFAULT_OPSET = 17
BATCH_DIM = "batch"
"""Name given to the ONNX models' dynamic leading dimension."""


KERAS_ASSET = "assets.extra/model.keras"
"""The trainable Keras model, kept in the SavedModel's folder for files its graph does not load:
compression (pruning, clustering, QAT) fine-tunes it; zipped artifacts leave it out."""


def export_savedmodel(model: Any, out_dir: Path) -> Path:
    """Write `model` (a keras.Model) as a TF SavedModel with a `serving_default` signature.

    The batch dimension stays None, so every later conversion keeps it dynamic. The Keras
    model itself is saved alongside (`KERAS_ASSET`, see `load_keras_model`).
    """
    require("tensorflow")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    model.export(str(out_dir), format="tf_saved_model", verbose=False)
    (out_dir / KERAS_ASSET).parent.mkdir(exist_ok=True)
    model.save(out_dir / KERAS_ASSET)
    return out_dir


def load_keras_model(savedmodel_dir: Path) -> Any:
    """The Keras model `export_savedmodel` kept with the SavedModel (uncompiled)."""
    path = Path(savedmodel_dir) / KERAS_ASSET
    if not path.is_file():
        raise ConfigError(f"{savedmodel_dir}: no Keras model at {KERAS_ASSET} (not written by export_savedmodel)")
    return require("keras").models.load_model(path, compile=False)


def savedmodel_to_onnx(savedmodel_dir: Path, onnx_path: Path, opset: int = DEFAULT_OPSET) -> Path:
    """Convert the SavedModel's `serving_default` signature to ONNX with a dynamic batch dimension.

    Input and output keep the signature's names (e.g. "ecg" -> "output_0") instead of
    TensorFlow's "Identity:0", so consumers can address them by name.
    """
    tf = require("tensorflow")
    tf2onnx = require("tf2onnx")
    onnx = require("onnx")
    from tf2onnx import tf_loader

    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tf_logger = tf.get_logger()
    previous_level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)  # TF1-era deprecation notices from the freezing step
    try:
        graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
            str(savedmodel_dir),
            None,
            None,
            tag="serve",
            signatures=["serving_default"],
            return_tensors_to_rename=True,
        )
        model_proto, _ = tf2onnx.convert.from_graph_def(
            graph_def,
            name=Path(savedmodel_dir).name,
            input_names=inputs,
            output_names=outputs,
            opset=opset,
            tensors_to_rename=renames,
        )
    finally:
        tf_logger.setLevel(previous_level)
    _name_batch_dim(model_proto)
    onnx.checker.check_model(model_proto)
    onnx.save(model_proto, str(onnx_path))
    return onnx_path


def verify_onnx(onnx_path: Path, model: Any, x: NDArray[np.float32]) -> float:
    """Max absolute difference between ONNX Runtime's and Keras's outputs on the batch `x`.

    Catches conversion errors (a wrong layout, a dropped op) before an artifact ships.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    batch = np.ascontiguousarray(x, dtype=np.float32)
    onnx_out = np.asarray(session.run(None, {session.get_inputs()[0].name: batch})[0])
    keras_out = np.asarray(model.predict(batch, verbose=0))
    if onnx_out.shape != keras_out.shape:
        raise ValueError(f"ONNX output shape {onnx_out.shape} differs from Keras {keras_out.shape}")
    return float(np.max(np.abs(onnx_out.astype(np.float64) - keras_out))) if batch.size else 0.0


def _name_batch_dim(model_proto: Any) -> None:
    """Rename tf2onnx's generated symbol ("unk__92") for the inputs' and outputs' first dimension."""
    graph = model_proto.graph
    renamed: set[str] = set()
    for value in (*graph.input, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            renamed.add(dims[0].dim_param)
    for value in (*graph.input, *graph.output, *graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and dim.dim_param in renamed:
                dim.dim_param = BATCH_DIM
