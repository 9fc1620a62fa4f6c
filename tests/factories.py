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


def onnx_with_large_constant(src: Path, dst: Path, mib: int) -> Path:
    """`src` (an ONNX classifier, batch first) plus `output + table[i]` with a `mib` MiB table and i = batch - batch
    computed from the input's shape at run time, so ONNX Runtime cannot fold the table away: it stays resident."""
    import gc

    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(src))
    graph = model.graph
    (out,) = graph.output
    classes = out.type.tensor_type.shape.dim[-1].dim_value
    rows = mib * (1 << 20) // (4 * classes)
    table = onnx.TensorProto(name="table", data_type=TensorProto.FLOAT, dims=[rows, classes])
    table.raw_data = np.full((rows, classes), 1e-3, np.float32).tobytes()  # not zeros: every page is written
    graph.initializer.extend([table, helper.make_tensor("zero_axis", TensorProto.INT64, [1], [0])])
    graph.node.extend(
        [
            helper.make_node("Shape", [graph.input[0].name], ["input_shape"]),
            helper.make_node("Gather", ["input_shape", "zero_axis"], ["batch_dim"], axis=0),
            helper.make_node("Sub", ["batch_dim", "batch_dim"], ["row"]),
            helper.make_node("Gather", ["table", "row"], ["offset"], axis=0),
            helper.make_node("Add", [out.name, "offset"], ["shifted"]),
        ]
    )
    shifted = helper.make_tensor_value_info("shifted", TensorProto.FLOAT, None)
    shifted.type.tensor_type.CopyFrom(out.type.tensor_type)
    graph.output.remove(out)
    graph.output.append(shifted)
    onnx.save(model, str(dst))
    del model, table
    gc.collect()
    return dst


def tflite_with_large_constant(src: Path, dst: Path, mib: int, *, read_all: bool) -> Path:
    """`src` (a float .tflite classifier) plus a `mib` MiB constant table added to its output: SUM over the
    whole table (every page read by each inference) when `read_all`, else GATHER of row 0 (one page read).

    Edited in the flatbuffer with LiteRT's own schema bindings (TensorFlow's converter takes a minute).
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(src.read_bytes()), 0)
    graph = model.subgraphs[0]
    (output,) = graph.outputs
    classes = int(graph.tensors[output].shape[-1])
    rows = mib * (1 << 20) // (4 * classes)

    def constant(array: np.ndarray, name: str, dtype: int) -> int:
        buffer = schema.BufferT()
        buffer.data = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
        model.buffers.append(buffer)
        return tensor(list(array.shape), name, dtype, len(model.buffers) - 1)

    def tensor(shape: list[int], name: str, dtype: int = schema.TensorType.FLOAT32, buffer: int = 0) -> int:
        made = schema.TensorT()
        made.shape, made.name, made.type, made.buffer = shape, name, dtype, buffer
        graph.tensors.append(made)
        return len(graph.tensors) - 1

    def opcode(builtin: int) -> int:
        code = schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode = builtin, min(builtin, 127)
        model.operatorCodes.append(code)
        return len(model.operatorCodes) - 1

    def operator(builtin: int, inputs: list[int], outputs: list[int], kind: int = 0, options: object = None) -> None:
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = opcode(builtin), inputs, outputs
        op.builtinOptionsType, op.builtinOptions = kind, options
        graph.operators.append(op)

    table = constant(np.full((rows, classes), 1e-3, np.float32), "table", schema.TensorType.FLOAT32)
    offset = tensor([1, classes], "offset")
    if read_all:
        axis = constant(np.zeros(1, np.int32), "axis", schema.TensorType.INT32)
        reducer = schema.ReducerOptionsT()
        reducer.keepDims = True
        operator(schema.BuiltinOperator.SUM, [table, axis], [offset], schema.BuiltinOptions.ReducerOptions, reducer)
    else:
        index = constant(np.zeros(1, np.int32), "row", schema.TensorType.INT32)
        operator(schema.BuiltinOperator.GATHER, [table, index], [offset], schema.BuiltinOptions.GatherOptions,
                 schema.GatherOptionsT())  # fmt: skip
    shifted = tensor(list(graph.tensors[output].shape), "shifted")
    graph.tensors[shifted].shapeSignature = graph.tensors[output].shapeSignature
    operator(
        schema.BuiltinOperator.ADD, [output, offset], [shifted], schema.BuiltinOptions.AddOptions, schema.AddOptionsT()
    )
    graph.outputs = [shifted]
    model.signatureDefs = []  # they name the old output; the backend reads the subgraph's inputs/outputs
    builder = flatbuffers.Builder(rows * classes * 4 + (1 << 20))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dst.write_bytes(builder.Output())
    return dst
