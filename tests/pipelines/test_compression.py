"""Pruning, multistage pruning, clustering and QAT with tfmot on a tiny Conv1D+BN model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgelab.errors import ConfigError
from pipelines.compression import FineTune, compress, parse_compression, to_tf_keras

pytest.importorskip("tensorflow_model_optimization", reason="needs pip install 'edgelab[train]'")

LENGTH, CLASSES = 32, 3


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, CLASSES, 128)
    x = (rng.normal(size=(128, LENGTH, 1)) + y[:, None, None]).astype(np.float32)
    return x, y.astype(np.int64)


@pytest.fixture(scope="module")
def model(data: tuple[np.ndarray, np.ndarray]) -> Any:
    """A ~200-parameter Keras 3 model with the layers of the beat CNN (Conv1D, BN, ReLU, pooling, Dense)."""
    import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((LENGTH, 1), name="ecg")
    h = layers.Conv1D(16, 5, use_bias=False, name="conv")(inputs)
    h = layers.ReLU()(layers.BatchNormalization(name="bn")(h))
    h = layers.GlobalAveragePooling1D()(layers.MaxPooling1D(2)(h))
    built = keras.Model(inputs, layers.Dense(CLASSES, activation="softmax", name="probs")(h))
    built.compile("adam", "sparse_categorical_crossentropy")
    built.fit(*data, epochs=2, verbose=0)
    return built


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("none", []),
        ("prune@0.6", [("prune", 0.6)]),
        ("prune@0.5+cluster@16+qat", [("prune", 0.5), ("cluster", 16.0), ("qat", None)]),
        ("finetune", [("finetune", None)]),
    ],
)
def test_compression_specs_parse(spec: str, expected: list[tuple[str, float | None]]) -> None:
    assert parse_compression(spec) == expected


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("prune", "needs @argument"),
        ("qat@3", "takes no @argument"),
        ("prune@1.5", "sparsity"),
        ("cluster@1", "cluster count"),
        ("qat+prune@0.5", "qat must be the last"),
        ("distill@0.5", "unknown step"),
    ],
)
def test_bad_compression_specs_say_what_is_wrong(spec: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_compression(spec)


@pytest.mark.parametrize("fold", [False, True])
def test_tf_keras_rebuild_matches_keras3(model: Any, data: tuple[np.ndarray, np.ndarray], fold: bool) -> None:
    x = data[0][:16]

    rebuilt = to_tf_keras(model, fold_batchnorm=fold)

    names = [layer.name for layer in rebuilt.layers]
    assert ("bn" in names) is not fold
    assert np.max(np.abs(rebuilt.predict(x, verbose=0) - model.predict(x, verbose=0))) < 1e-5


def run(model: Any, data: tuple[np.ndarray, np.ndarray], spec: str, out: Path) -> Any:
    x, y = data
    return compress(model, spec, FineTune(x, y, epochs=1, batch_size=32), out, x[:16], (x, y))


@pytest.mark.parametrize("spec", ["prune@0.5", pytest.param("prune-multistage@0.5", marks=pytest.mark.slow)])
def test_pruning_reaches_the_target_sparsity(
    model: Any, data: tuple[np.ndarray, np.ndarray], tmp_path: Path, spec: str
) -> None:
    result = run(model, data, spec, tmp_path)

    assert result.sparsity == pytest.approx(0.5, abs=0.03)
    assert (result.savedmodel_dir / "saved_model.pb").is_file()
    assert result.reference_out.shape == (16, CLASSES)
    assert result.host_accuracy is not None
    assert not result.quantized


@pytest.mark.slow
def test_pruned_clustered_quantized_model_keeps_zeros_and_centroids(
    model: Any, data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    from pipelines.convert import convert_tflite, verify_artifact

    result = run(model, data, "prune@0.5+cluster@4+qat", tmp_path)
    tflite = convert_tflite(result.savedmodel_dir, tmp_path / "m.tflite", "int8", calibration=data[0][:32])
    check = verify_artifact(tflite, "tflite", data[0][:16], result.reference_out)

    assert result.quantized
    assert result.sparsity >= 0.47
    assert result.max_unique_weights <= 4 + 1  # the centroids, and zero kept apart by sparsity preservation
    assert any("folded" in line for line in result.log)
    assert check.argmax_agreement >= 0.9


def test_fine_tuning_on_validation_keeps_its_best_epoch_within_the_cap(
    model: Any, data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    # prepare: a cap of three epochs of the 96 training examples, 32 examples held out
    x, y = data
    ft = FineTune(x[:96], y[:96], epochs=3, batch_size=32, validation=(x[96:], y[96:]))

    # execute
    result = compress(model, "prune@0.5", ft, tmp_path, x[:16])

    # assert: three epochs of three steps ran (patience is longer), the kept one is said
    (line,) = result.log
    assert line.startswith("prune one-shot to 50%, fine-tuned, kept epoch ")
    assert " of 3 (3 steps each; validation macro F1 " in line
    assert result.sparsity == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize("spec", ["prune@0.5", "qat"])
def test_logit_offsets_are_added_after_compression(
    model: Any, data: tuple[np.ndarray, np.ndarray], tmp_path: Path, spec: str
) -> None:
    # prepare: the same compression twice from the same seed, once with offsets for classes 1 and 2
    x, y = data
    offsets = [0.0, 2.0, -1.0]

    # execute
    plain = compress(model, spec, FineTune(x, y, epochs=1, batch_size=32, seed=3), tmp_path / "plain", x[:16])
    offset = compress(
        model, spec, FineTune(x, y, epochs=1, batch_size=32, seed=3), tmp_path / "offset", x[:16], logit_offsets=offsets
    )

    # assert: fine-tuning saw the same model, so log-softmax differs by the offsets up to one constant per beat
    shift = np.log(offset.reference_out) - np.log(plain.reference_out)
    assert np.allclose(shift - shift[:, :1], offsets, atol=0.05 if spec == "qat" else 1e-3)
    assert offset.log[-1] == "logit offsets +0.0, +2.0, -1.0 added after compression"


def test_the_shipped_ensemble_shape_quantizes_and_converts_to_int8(tmp_path: Path) -> None:
    # prepare: build_cnn_1d as the beat pipeline builds it (two waveforms and features in one input,
    # members averaged), small, briefly trained
    import keras

    from pipelines.convert import convert_tflite, verify_artifact
    from pipelines.models import build_cnn_1d

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    y = rng.integers(0, CLASSES, 128)
    x = (rng.normal(size=(128, 2 * LENGTH + 4, 1)) + y[:, None, None]).astype(np.float32)
    ensemble = build_cnn_1d(LENGTH, CLASSES, extra_features=4, waveforms=2, width=4, members=2)
    ensemble.compile("adam", "sparse_categorical_crossentropy")
    ensemble.fit(x, y, epochs=2, verbose=0)

    # execute
    result = compress(ensemble, "prune@0.5+qat", FineTune(x, y, epochs=1, batch_size=32), tmp_path, x[:16])
    tflite = convert_tflite(result.savedmodel_dir, tmp_path / "m.tflite", "int8", calibration=x[:32])

    # assert: the averaging and the input slices have their quantize configs; the INT8 model agrees
    assert result.quantized
    assert verify_artifact(tflite, "tflite", x[:16], result.reference_out).argmax_agreement >= 0.9


def test_the_finetune_control_trains_without_compressing(
    model: Any, data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    # execute
    result = run(model, data, "finetune", tmp_path)

    # assert: the weights moved, none was zeroed or quantized
    x = data[0][:16]
    assert result.sparsity < 0.05
    assert not result.quantized
    assert result.log[0].startswith("no compression, fine-tuned")
    assert np.max(np.abs(result.reference_out - model.predict(x, verbose=0))) > 1e-4
