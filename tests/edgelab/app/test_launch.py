from pathlib import Path

import pytest

from edgelab.app.launch import LaunchFile
from edgelab.domain import Precision
from edgelab.errors import ConfigError


def test_paths_resolve_relative_to_the_file(tmp_path: Path) -> None:
    spec = tmp_path / "bench.yaml"
    spec.write_text(
        "name: b\nprecision: int8\nbatch_sizes: [1, 8]\nmodel: {path: m.onnx}\ndataset: {sha256: abc}\n"
        "measurement: {min_duration_s: 0.5}\n"
    )
    (tmp_path / "m.onnx").write_bytes(b"onnx")

    launch = LaunchFile.load(spec)

    assert launch.model.path == tmp_path / "m.onnx"
    assert launch.precision is Precision.INT8
    assert launch.measurement.settings().min_duration_s == 0.5


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("name: b\nmodel: {path: m.onnx, sha256: x}\ndataset: {sha256: y}\n", "model"),
        ("name: b\nmodel: {path: m.onnx}\ndataset: {sha256: y}\nbatch_sizes: []\n", "batch_sizes"),
        ("name: b\nmodel: {path: m.onnx}\ndataset: {sha256: y}\nprecision: fp64\n", "precision"),
        ("model: {path: m.onnx}\ndataset: {sha256: y}\n", "name"),
        ("name: b\nmodel: {path: m.onnx}\ndataset: {sha256: y}\nany_agent: true\nagents: [a1]\n", "any_agent"),
        ("name: b\nmodel: {path: m.onnx}\ndataset: {sha256: y}\nbackend_options: {dla_core: [0]}\n", "backend_options"),
        (
            "name: b\nbackend: onnx\nmodel: {sha256: x}\ndataset: {sha256: y}\n",
            "backend 'onnx' is not one of onnxruntime",
        ),
        (
            "name: b\nbackend: tflite\nmodel: {sha256: x}\ndataset: {sha256: y}\n",
            r"backend tflite cannot load a onnx model \(it loads tflite\)",
        ),
        (
            "name: b\nbackend: onnxruntime\nmodel: {sha256: x, format: tflite}\ndataset: {sha256: y}\n",
            r"backend onnxruntime cannot load a tflite model \(it loads onnx\)",
        ),
    ],
)
def test_bad_launch_files_name_the_key(tmp_path: Path, body: str, key: str) -> None:
    spec = tmp_path / "bench.yaml"
    spec.write_text(body)

    with pytest.raises(ConfigError, match=key):
        LaunchFile.load(spec)


def test_a_missing_artifact_path_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    spec = tmp_path / "bench.yaml"
    spec.write_text("name: b\nmodel: {path: gone.onnx}\ndataset: {sha256: abc}\n")

    with pytest.raises(ConfigError, match=r"model.path: no such file or directory: .*gone.onnx"):
        LaunchFile.load(spec)


def test_a_model_file_says_its_format_by_its_name(tmp_path: Path) -> None:
    (tmp_path / "m.tflite").write_bytes(b"tfl3")
    spec = tmp_path / "bench.yaml"
    spec.write_text("name: b\nbackend: tflite\nmodel: {path: m.tflite}\ndataset: {sha256: abc}\n")

    launch = LaunchFile.load(spec)

    assert launch.model.format_or("onnx") == "tflite"
    assert launch.dataset.format_or("npz") == "npz"
