"""TFLite conversions and zipped SavedModels of a tiny Keras model, verified against Keras."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgelab.errors import ConfigError
from pipelines.training import write_dataset_npz

pytest.importorskip("tensorflow", reason="needs pip install 'edgelab[train]'")

from agent.backends.tflite import interpreter_class
from pipelines.convert import (
    convert_tflite,
    gzip_size,
    run_artifact,
    savedmodel_flops,
    sha256_file,
    tflite_file_precision,
    verify_artifact,
    zip_savedmodel,
)
from pipelines.export import export_savedmodel, load_keras_model
from pipelines.models import build_bilstm

LENGTH, CLASSES = 32, 3


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, Path, np.ndarray]:
    """A ~300-parameter Conv1D classifier, briefly trained, its SavedModel and a dataset npz."""
    import keras

    tmp = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    y = rng.integers(0, CLASSES, 96)
    x = (rng.normal(size=(96, LENGTH, 1)) + y[:, None, None]).astype(np.float32)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((LENGTH, 1), name="ecg")
    h = keras.layers.Conv1D(8, 5, activation="relu")(inputs)
    h = keras.layers.GlobalAveragePooling1D()(h)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax")(h))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, verbose=0)
    savedmodel = export_savedmodel(model, tmp / "savedmodel")
    dataset = write_dataset_npz(tmp / "dataset.npz", x[64:], y[64:], ["a", "b", "c"], x[:64])
    return model, savedmodel, dataset, x[64:]


@pytest.mark.parametrize(
    ("precision", "int8_io", "max_diff"),
    [("fp32", False, 1e-5), ("fp16", False, 1e-2), ("int8-dynamic", False, 5e-2), ("int8", False, 5e-2)],
)
def test_tflite_precisions_agree_with_keras(
    tiny: tuple[Any, Path, Path, np.ndarray], tmp_path: Path, precision: Any, int8_io: bool, max_diff: float
) -> None:
    model, savedmodel, dataset, x = tiny

    path = convert_tflite(savedmodel, tmp_path / "m.tflite", precision, calibration=dataset, int8_io=int8_io)
    check = verify_artifact(path, "tflite", x, model.predict(x, verbose=0))

    assert check.samples == len(x)
    assert check.max_abs_diff < max_diff
    assert check.argmax_agreement >= 0.9


def test_full_int8_with_int8_io_has_integer_tensors(tiny: tuple[Any, Path, Path, np.ndarray], tmp_path: Path) -> None:
    model, savedmodel, dataset, x = tiny

    path = convert_tflite(savedmodel, tmp_path / "m.tflite", "int8", calibration=dataset, int8_io=True)
    check = verify_artifact(path, "tflite", x, model.predict(x, verbose=0))

    interpreter = interpreter_class()[0](model_path=str(path))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    assert check.max_abs_diff < 5e-2  # after dequantizing the int8 outputs
    assert check.argmax_agreement >= 0.9


# Not int8-dynamic: the converter leaves tensors under 1024 elements (all of this model's) in float.
@pytest.mark.parametrize(("precision", "int8_tensors"), [("fp32", False), ("int8", True)])
def test_int8_precisions_store_int8_weights(
    tiny: tuple[Any, Path, Path, np.ndarray], tmp_path: Path, precision: Any, int8_tensors: bool
) -> None:
    _, savedmodel, dataset, _ = tiny

    path = convert_tflite(savedmodel, tmp_path / "m.tflite", precision, calibration=dataset)

    dtypes = {t["dtype"] for t in interpreter_class()[0](model_path=str(path)).get_tensor_details()}
    assert (np.int8 in dtypes) is int8_tensors
    assert tflite_file_precision(path) == ("int8" if int8_tensors else "fp32")
    assert 0 < gzip_size(path) < path.stat().st_size


@pytest.mark.parametrize(
    ("precision", "calibration", "int8_io", "key"),
    [
        ("int8", None, False, "calibration"),
        ("fp16", None, True, "int8_io"),
        ("int4", None, False, "precision"),
    ],
)
def test_bad_conversion_requests_name_the_key(
    tiny: tuple[Any, Path, Path, np.ndarray], tmp_path: Path, precision: Any, calibration: Any, int8_io: bool, key: str
) -> None:
    _, savedmodel, _, _ = tiny

    with pytest.raises(ConfigError, match=key):
        convert_tflite(savedmodel, tmp_path / "m.tflite", precision, calibration=calibration, int8_io=int8_io)


def test_zipped_savedmodel_is_reproducible_and_runs(tiny: tuple[Any, Path, Path, np.ndarray], tmp_path: Path) -> None:
    model, savedmodel, _, x = tiny

    first = zip_savedmodel(savedmodel, tmp_path / "a.zip")
    second = zip_savedmodel(savedmodel, tmp_path / "b.zip")
    check = verify_artifact(first, "savedmodel.zip", x, model.predict(x, verbose=0))

    assert sha256_file(first) == sha256_file(second)
    names = zipfile.ZipFile(first).namelist()
    assert "saved_model.pb" in names
    assert not any(name.startswith("assets.extra") for name in names)
    assert check.max_abs_diff < 1e-5


def test_the_keras_model_travels_with_the_savedmodel(tiny: tuple[Any, Path, Path, np.ndarray]) -> None:
    model, savedmodel, _, x = tiny

    reloaded = load_keras_model(savedmodel)

    assert np.max(np.abs(reloaded.predict(x, verbose=0) - model.predict(x, verbose=0))) < 1e-6


def test_flops_count_the_convolution_and_dense_layer(tiny: tuple[Any, Path, Path, np.ndarray]) -> None:
    _, savedmodel, _, _ = tiny
    conv_macs = (LENGTH - 4) * 5 * 8
    dense_macs = 8 * CLASSES

    flops = savedmodel_flops(savedmodel)

    assert flops is not None
    assert flops >= 2 * (conv_macs + dense_macs)


def test_unknown_format_and_missing_savedmodel_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="format"):
        run_artifact(tmp_path / "m.bin", "caffe", np.zeros((1, LENGTH, 1), np.float32))
    with pytest.raises(ConfigError, match="savedmodel_dir"):
        zip_savedmodel(tmp_path, tmp_path / "m.zip")


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_the_af_bilstm_converts_to_tflite_and_runs_any_batch(tmp_path: Path, precision: Any) -> None:
    frames, features = 20, 7
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, frames, features)).astype(np.float32)
    model = build_bilstm(frames, features, 2, mean=np.zeros(features), variance=np.ones(features), units=8)
    savedmodel = export_savedmodel(model, tmp_path / "savedmodel")
    dataset = write_dataset_npz(tmp_path / "dataset.npz", x[:8], np.zeros(8, np.int64), ["N", "AF"], x[8:])

    path = convert_tflite(savedmodel, tmp_path / "m.tflite", precision, calibration=dataset)
    check = verify_artifact(path, "tflite", x[:8], model.predict(x[:8], verbose=0))  # batch 8: resized

    assert check.samples == 8
    assert check.max_abs_diff < (1e-5 if precision == "fp32" else 5e-2)
