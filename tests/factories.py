"""Small real artifacts for tests: an ONNX classifier built with onnx.helper and a test-set bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np


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
