"""The conversion/compression matrix on a tiny Keras model: in-process and through real Ray."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agent.client import AgentClient
from coordinator.client import ControlClient
from coordinator.matrix import (
    FINETUNE_DATA,
    MatrixSpec,
    artifact_path,
    compress_source,
    prepare_source,
    run_matrix,
    spec_from_launch,
)
from coordinator.server import Coordinator
from edgelab.app.cli import app
from edgelab.app.launch import LaunchFile, MatrixLaunchFile, load_launch
from edgelab.constants import REFERENCE_ACCURACY_LABEL
from edgelab.domain import DeviceCapabilities, Precision, RuntimeInfo
from edgelab.errors import ConfigError, NotFound
from pipelines.base import TrainConfig
from pipelines.beats_1d import SYNTHETIC_FUSION_PER_RECORD, load_split, with_synthetic_fusion
from pipelines.mitdb import AAMI_CLASSES
from pipelines.training import write_dataset_npz

pytest.importorskip("tensorflow_model_optimization", reason="needs pip install 'edgelab[train]'")

LENGTH, CLASSES = 32, 3
runner = CliRunner()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A trained ~200-parameter model exported like the pipelines do, its dataset and training npz."""
    import keras

    from pipelines.export import export_savedmodel

    tmp = tmp_path_factory.mktemp("source")
    rng = np.random.default_rng(0)
    y = rng.integers(0, CLASSES, 160)
    x = (rng.normal(size=(160, LENGTH, 1)) + y[:, None, None]).astype(np.float32)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((LENGTH, 1), name="ecg")
    h = keras.layers.Conv1D(16, 5, activation="relu", name="conv")(inputs)
    h = keras.layers.GlobalAveragePooling1D()(h)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax", name="probs")(h))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:128], y[:128], epochs=3, verbose=0)
    np.savez(tmp / "train.npz", x_train=x[:128], y_train=y[:128])
    return {
        "savedmodel": export_savedmodel(model, tmp / "savedmodel"),
        "dataset": write_dataset_npz(tmp / "dataset.npz", x[128:], y[128:], ["a", "b", "c"], x[:64]),
        "no_calib": write_dataset_npz(tmp / "nocalib.npz", x[128:], y[128:], ["a", "b", "c"], x[:0]),
        "train": tmp / "train.npz",
    }


def spec(source: dict[str, Path], compressions: list[str], targets: list[str], dataset: str = "dataset") -> MatrixSpec:
    return MatrixSpec(
        compressions=compressions,
        targets=targets,
        savedmodel=source["savedmodel"],
        dataset=source[dataset],
        train_data=source["train"],
        finetune_batch_size=32,
    )


def test_matrix_builds_verified_content_addressed_artifacts(source: dict[str, Path], tmp_path: Path) -> None:
    targets = ["onnx", "savedmodel.zip", "tflite-fp16", "tflite-int8-io"]

    result = run_matrix(spec(source, ["none", "prune@0.5"], targets), tmp_path, use_ray=False)

    assert [(r.compression, r.target) for r in result.records] == [
        (c, t) for c in ("none", "prune@0.5") for t in targets
    ]
    assert not result.failures, [r.error for r in result.failures]
    for record in result.records:
        info, path = record.info, artifact_path(record)
        assert path.name == info["sha256"] and path.stat().st_size == info["size_bytes"]
        assert info["source_sha256"] == result.source.sha256
        assert info["verification"]["argmax_agreement"] >= 0.9
        assert 0.0 <= info["host_accuracy"] <= 1.0
        assert info["flops"] > 0 and info["params"] > 0
    by_cell = {(r.compression, r.target): r for r in result.records}
    assert by_cell[("none", "onnx")].info["verification"]["max_abs_diff"] < 1e-5
    assert by_cell[("prune@0.5", "onnx")].info["sparsity"] == pytest.approx(0.5, abs=0.05)
    int8 = by_cell[("none", "tflite-int8-io")].metadata
    assert (int8["precision"], int8["io"], int8["backend"]) == ("int8", "int8", "tflite")
    manifest = json.loads((tmp_path / "matrix.json").read_text())
    assert len(manifest["records"]) == len(result.records)


def test_compression_fine_tunes_the_classifier_without_its_logit_offsets(
    source: dict[str, Path], tmp_path: Path
) -> None:
    # prepare: the source model, and the same model exported with logit offsets as the beat pipeline does
    import dataclasses

    from pipelines.export import export_savedmodel, load_keras_model
    from pipelines.models import add_logit_offsets

    offsets = (0.0, 2.0, -1.0)
    offset_model = load_keras_model(source["savedmodel"])
    add_logit_offsets(offset_model, offsets)
    plain_spec = spec(source, ["prune@0.5"], ["onnx"])
    offset_spec = dataclasses.replace(plain_spec, savedmodel=export_savedmodel(offset_model, tmp_path / "offset"))
    plain = prepare_source(plain_spec)
    offset = dataclasses.replace(prepare_source(offset_spec), logit_offsets=offsets)

    # execute
    results = [compress_source(s, "prune@0.5", plain_spec) for s in (plain, offset)]

    # assert: both fine-tuned the same weights, and the offsets are in the result as they were in the source
    assert not any(r.error for r in results), [r.error for r in results]
    shift = np.log(results[1].reference_out) - np.log(results[0].reference_out)
    assert np.allclose(shift - shift[:, :1], offsets, atol=1e-3)


def test_a_failed_conversion_is_a_stored_record(source: dict[str, Path], tmp_path: Path) -> None:
    result = run_matrix(spec(source, ["none"], ["tflite-fp32", "tflite-int8"], "no_calib"), tmp_path, use_ray=False)

    ok, failed = result.records
    assert ok.ok
    assert not failed.ok and "calibration" in failed.error
    stored = json.loads((tmp_path / "matrix.json").read_text())["records"]
    assert [r["ok"] for r in stored] == [True, False]
    with pytest.raises(ConfigError, match="failed"):
        artifact_path(failed)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"targets": ["tflite-int4"]}, "targets"),
        ({"compressions": ["prune@2"]}, "sparsity"),
        ({"train_data": None, "compressions": ["qat"]}, "train_data"),
        ({"dataset": None}, "dataset"),
    ],
)
def test_bad_matrix_specs_name_the_key(source: dict[str, Path], kwargs: dict[str, object], key: str) -> None:
    settings: dict[str, object] = {
        "savedmodel": source["savedmodel"],
        "dataset": source["dataset"],
        "train_data": source["train"],
    } | kwargs
    with pytest.raises(ConfigError, match=key):
        MatrixSpec(**settings)  # type: ignore[arg-type]


@pytest.fixture
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.mark.integration
@pytest.mark.slow
def test_matrix_runs_as_ray_tasks(source: dict[str, Path], tmp_path: Path, local_ray: None) -> None:
    result = run_matrix(spec(source, ["none", "prune@0.5+qat"], ["onnx", "tflite-int8"]), tmp_path)

    assert not result.failures, [r.error for r in result.failures]
    qat = next(r for r in result.records if r.compression == "prune@0.5+qat" and r.target == "tflite-int8")
    assert qat.info["quantization"] == "qat+full-int8"
    assert qat.info["verification"]["argmax_agreement"] >= 0.9
    assert artifact_path(qat).is_file()


@pytest.mark.integration
def test_launch_file_with_a_matrix_uploads_artifacts_and_queues_a_job_each(
    source: dict[str, Path], tmp_path: Path, coordinator: Coordinator
) -> None:
    runtimes = [RuntimeInfo(name, True, "1.0") for name in ("onnxruntime", "tflite", "tensorflow")]
    AgentClient(coordinator.address).register("pi", DeviceCapabilities(runtimes=runtimes), None)
    launch = tmp_path / "matrix.yaml"
    launch.write_text(
        "name: tiny-matrix\nbatch_sizes: [1, 4]\nany_agent: true\n"
        f"matrix:\n  savedmodel: {source['savedmodel']}\n  dataset: {source['dataset']}\n"
        f"  train_data: {source['train']}\n  compressions: [none, prune@0.5]\n"
        "  targets: [onnx, tflite-int8, savedmodel.zip]\n  out: out\n  use_ray: false\n"
    )

    launched = runner.invoke(app, ["jobs", "launch", str(launch), "--coordinator", coordinator.address])

    assert launched.exit_code == 0, launched.output
    assert "6 artifacts, 0 failed, 6 job(s) queued" in launched.output
    jobs = ControlClient(coordinator.address).list_jobs()
    assert sorted((j.spec.labels["compression"], j.spec.labels["target"]) for j in jobs) == sorted(
        (c, t) for c in ("none", "prune@0.5") for t in ("onnx", "tflite-int8", "savedmodel.zip")
    )
    references = {j.spec.labels[REFERENCE_ACCURACY_LABEL] for j in jobs}
    assert len(references) == 1 and 0.0 <= float(references.pop()) <= 1.0  # the uncompressed Keras model's
    backends = {j.spec.labels["target"]: (j.spec.backend, j.spec.precision) for j in jobs}
    assert backends == {
        "onnx": ("onnxruntime", Precision.FP32),
        "tflite-int8": ("tflite", Precision.INT8),
        "savedmodel.zip": ("tensorflow", Precision.FP32),
    }
    assert (tmp_path / "out" / "matrix.json").is_file()


def test_launch_files_with_and_without_a_matrix(tmp_path: Path) -> None:
    single = tmp_path / "single.yaml"
    single.write_text("name: s\nmodel: {path: m.onnx}\ndataset: {sha256: abc}\n")
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text("name: m\nmatrix: {savedmodel: sm, dataset: d.npz, targets: [onnx]}\n")
    both = tmp_path / "both.yaml"
    both.write_text("name: b\nmatrix: {pipeline: mitdb-beats-1d, savedmodel: sm}\n")
    (tmp_path / "m.onnx").write_bytes(b"onnx")  # paths must exist: checked before anything is built
    (tmp_path / "sm").mkdir()
    (tmp_path / "d.npz").write_bytes(b"npz")

    assert isinstance(load_launch(single), LaunchFile)
    loaded = load_launch(matrix)
    assert isinstance(loaded, MatrixLaunchFile)
    assert loaded.matrix.savedmodel == tmp_path / "sm"
    with pytest.raises(ConfigError, match=r"matrix: .*exactly one of pipeline or savedmodel"):
        load_launch(both)


def test_a_launch_files_pipeline_trains_with_its_own_budget_unless_told(tmp_path: Path) -> None:
    # prepare
    own = tmp_path / "own.yaml"
    own.write_text("name: own\nmatrix: {pipeline: mitdb-af-bilstm}\n")
    told = tmp_path / "told.yaml"
    told.write_text("name: told\nmatrix: {pipeline: mitdb-af-bilstm, epochs: 2, batch_size: 8, class_weights: none}\n")
    heavy = tmp_path / "heavy.yaml"
    heavy.write_text("name: heavy\nmatrix: {pipeline: mitdb-af-bilstm, class_weights: heavy}\n")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("name: unknown\nmatrix: {pipeline: mitdb-af-lstm}\n")

    # execute
    specs = {}
    for path in (own, told):
        launch = load_launch(path)
        assert isinstance(launch, MatrixLaunchFile)
        specs[path.stem] = spec_from_launch(launch.matrix, tmp_path / "mitdb").train_config
    bad = load_launch(unknown)

    # assert
    own_config, told_config = specs["own"], specs["told"]
    assert own_config is not None and (own_config.epochs, own_config.batch_size, own_config.class_weights) == (
        20,
        64,
        True,
    )
    assert told_config is not None and (told_config.epochs, told_config.batch_size, told_config.class_weights) == (
        2,
        8,
        False,
    )
    with pytest.raises(ConfigError, match=r"class_weights"):
        load_launch(heavy)
    assert isinstance(bad, MatrixLaunchFile)
    with pytest.raises(NotFound, match=r"unknown pipeline\(s\) mitdb-af-lstm"):
        spec_from_launch(bad.matrix, tmp_path / "mitdb")


def test_the_beat_pipelines_fine_tuning_data_are_the_beats_it_trained_on(mitdb_dir: Path) -> None:
    # prepare: records 119 and 208 (DS1: N and V beats, 208 most of DS1's F) train, 100 (DS2) tests
    config = TrainConfig(data_dir=mitdb_dir, records=("100", "119", "208"))
    real, _, _ = load_split(config, [])

    # execute
    x, y = FINETUNE_DATA["mitdb-beats-1d"](config)

    # assert: every training beat, then the pipeline's synthetic fusion beats (the same seed makes the same ones)
    assert len(y) == len(real) + 2 * SYNTHETIC_FUSION_PER_RECORD
    np.testing.assert_array_equal(x[: len(real)], real.x)
    assert set(y[len(real) :]) == {AAMI_CLASSES.index("F")}
    np.testing.assert_array_equal(x, with_synthetic_fusion(real, config.seed).x)
