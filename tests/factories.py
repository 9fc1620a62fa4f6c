"""Small real artifacts for tests: an ONNX classifier built with onnx.helper and a test-set bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgelab.domain import DeviceCapabilities, LatencyStats, RuntimeInfo

# A registered device that can run ONNX Runtime, for tests that speak the agent's RPCs themselves.
CAPS = DeviceCapabilities(hostname="pi", runtimes=[RuntimeInfo("onnxruntime", True, "1.0")])
# One plausible end-to-end latency entry, for results built by hand.
LATENCY = LatencyStats(1, 100, 1.0, 1.0, 0.9, 1.2, 0.05, 1000.0, 1.5, 0.2, 10, 0.1, "end-to-end")


def write_linear_onnx(path: Path, length: int = 32, classes: int = 3, seed: int = 0) -> Path:
    """A real ONNX model: flatten (batch, length, 1) -> dense -> softmax, dynamic batch."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = numpy_helper.from_array(rng.normal(size=(length, classes)).astype(np.float32), "W")
    bias = numpy_helper.from_array(np.zeros(classes, np.float32), "B")
    shape = numpy_helper.from_array(np.array([-1, length], np.int64), "shape")
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["ecg", "shape"], ["flat"]),
            helper.make_node("Gemm", ["flat", "W", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        "linear",
        [helper.make_tensor_value_info("ecg", TensorProto.FLOAT, ["batch", length, 1])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", classes])],
        initializer=[weights, bias, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def write_test_set(path: Path, n: int = 60, length: int = 32, classes: int = 3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    np.savez_compressed(
        path,
        x_test=rng.normal(size=(n, length, 1)).astype(np.float32),
        y_test=rng.integers(0, classes, size=n).astype(np.int64),
        class_names=np.array([f"c{i}" for i in range(classes)]),
        x_calib=rng.normal(size=(16, length, 1)).astype(np.float32),
    )
    return path


def write_keras_artifacts(out_dir: Path, length: int = 32, classes: int = 3, seed: int = 0) -> dict[str, Path]:
    """A tiny trained-shape Keras Conv1D classifier exported the ways agents receive models.

    Returns paths keyed by "savedmodel" (dir), "savedmodel.zip", "tflite-fp32", "tflite-fp16",
    "tflite-int8" (full integer with int8 I/O, calibrated on `calibration`), "calibration" (npy).
    """
    import shutil

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(length, 1), name="ecg")
    x = keras.layers.Conv1D(8, 5, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    savedmodel = out_dir / "savedmodel"
    model.export(str(savedmodel), format="tf_saved_model", verbose=False)
    paths = {"savedmodel": savedmodel}
    paths["savedmodel.zip"] = Path(shutil.make_archive(str(out_dir / "model"), "zip", savedmodel))

    rng = np.random.default_rng(seed)
    calibration = rng.normal(size=(64, length, 1)).astype(np.float32)
    np.save(out_dir / "calibration.npy", calibration)
    paths["calibration"] = out_dir / "calibration.npy"

    def convert(name: str, configure: object) -> None:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel))
        configure(converter)  # type: ignore[operator]
        (out_dir / f"{name}.tflite").write_bytes(converter.convert())
        paths[name] = out_dir / f"{name}.tflite"

    def fp16(c: tf.lite.TFLiteConverter) -> None:
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.target_spec.supported_types = [tf.float16]

    def int8(c: tf.lite.TFLiteConverter) -> None:
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(len(calibration)))
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        c.inference_input_type = tf.int8
        c.inference_output_type = tf.int8

    convert("tflite-fp32", lambda c: None)
    convert("tflite-fp16", fp16)
    convert("tflite-int8", int8)
    return paths


class Clock:
    """A settable stand-in for time.time, so lease and heartbeat deadlines pass without sleeping."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now
