"""Memory, per-operator profiles and repetitions on a real MIT-BIH model with real runtimes (issue 17).

One model is trained once for the module: the mitdb-beats-1d 1D CNN, one epoch on 1,000 beats of records
119 (training) and 100 (test), about half a minute on two cores (hence `slow`); ONNX Runtime runs its
ONNX export and LiteRT its FP32 TFLite conversion. The models with a large constant are made from it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from agent.backends.base import PROFILE_TOP_OPS
from agent.runner import run_benchmark
from edgelab.domain import ArtifactRef, BenchmarkResult, JobSpec, MeasurementSettings
from tests.factories import onnx_with_large_constant, tflite_with_large_constant

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MIB = 1 << 20
BIG_MIB = 128
TEST_BEATS = 256
FAST = MeasurementSettings(
    warmup_iterations=2, warmup_duration_s=0, min_iterations=10, min_duration_s=0, power_meter="none", num_threads=1
)
# The profile's kernel times summed against the timed phase's p50 (see test_onnxruntime_profile.py): below 1 as
# the p50 also holds session.run's own work, above it when the profiler's overhead and a shared machine inflate
# the profiled pass. It still tells a per-inference mean from the 20 runs summed (20x) or from one node alone.
SUM_VS_P50 = (0.05, 8.0)


@pytest.fixture(scope="module")
def mitbih(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The trained model as ONNX and FP32 TFLite, and its test-set bundle."""
    pytest.importorskip("tensorflow", reason="needs pip install 'edgelab[train]'")
    pytest.importorskip("tf2onnx", reason="needs pip install 'edgelab[train]'")
    pytest.importorskip("wfdb", reason="needs pip install 'edgelab[train]'")
    from pipelines.base import TrainConfig
    from pipelines.convert import convert_tflite
    from pipelines.registry import get_pipeline

    data = Path(os.environ.get("EDGELAB_MITDB", Path(__file__).resolve().parents[3] / "shared/data/mitdb"))
    if not (data / "100.hea").is_file():
        pytest.skip(f"MIT-BIH records not found at {data} (set EDGELAB_MITDB)")
    out = tmp_path_factory.mktemp("mitbih")
    config = TrainConfig(data_dir=data, records=("100", "119"), epochs=1, max_train_beats=1000, calibration_size=64)
    trained = get_pipeline("mitdb-beats-1d").run(config, out)
    with np.load(trained.dataset_path) as shipped:  # the first TEST_BEATS test beats: scoring stays quick
        bundle = {key: shipped[key][:TEST_BEATS] if key in ("x_test", "y_test") else shipped[key] for key in shipped}
    np.savez(out / "testset.npz", **bundle)
    return {
        "onnx": trained.onnx_path,
        "tflite": convert_tflite(trained.savedmodel_path, out / "model.tflite"),
        "dataset": out / "testset.npz",
    }


def _spec(backend: str, fmt: str, *, batch_sizes: tuple[int, ...] = (1, 8), **settings: object) -> JobSpec:
    measurement = MeasurementSettings(**{**FAST.__dict__, **settings})  # type: ignore[arg-type]
    return JobSpec(
        "mitbih",
        backend,
        ArtifactRef("a" * 64, format=fmt),
        ArtifactRef("b" * 64, format="npz"),
        batch_sizes=list(batch_sizes),
        measurement=measurement,
        backend_options={"profile": "on"} if backend == "onnxruntime" else {},
    )


def _ok(result: BenchmarkResult) -> BenchmarkResult:
    assert result.failure is None and result.memory is not None, result.failure
    return result


def test_onnxruntime_peak_memory_rises_with_a_large_constant(mitbih: dict[str, Path], tmp_path: Path) -> None:
    big_path = onnx_with_large_constant(mitbih["onnx"], tmp_path / "big.onnx", BIG_MIB)

    small = _ok(run_benchmark(_spec("onnxruntime", "onnx"), mitbih["onnx"], mitbih["dataset"]))
    big = _ok(run_benchmark(_spec("onnxruntime", "onnx"), big_path, mitbih["dataset"]))

    assert small.memory is not None and big.memory is not None
    print(f"MIT-BIH ONNX small: {small.memory}\nbig: {big.memory}")  # the figures the report quotes (pytest -s)
    assert big.memory.model_file_bytes - small.memory.model_file_bytes > BIG_MIB * MIB
    assert big.memory.load_peak_bytes - small.memory.load_peak_bytes > 0.9 * BIG_MIB * MIB
    assert big.memory.inference_peak_bytes > 0.9 * BIG_MIB * MIB  # the table stays resident while it runs
    assert small.memory.inference_peak_bytes < 0.25 * BIG_MIB * MIB
    assert small.memory.accelerator == big.memory.accelerator == []  # CPU sessions: no GPU figures


def test_litert_maps_the_model_so_a_constant_counts_once_inference_reads_it(
    mitbih: dict[str, Path], tmp_path: Path
) -> None:
    """LiteRT maps the .tflite file: its pages join the RSS when read. A table every inference sums shows in the
    inference peak; one of which inference reads a single row stays on disk (the file grows, the RSS does not)."""
    read = tflite_with_large_constant(mitbih["tflite"], tmp_path / "read.tflite", BIG_MIB, read_all=True)
    unread = tflite_with_large_constant(mitbih["tflite"], tmp_path / "unread.tflite", BIG_MIB, read_all=False)

    small = _ok(run_benchmark(_spec("tflite", "tflite"), mitbih["tflite"], mitbih["dataset"]))
    read_all = _ok(run_benchmark(_spec("tflite", "tflite"), read, mitbih["dataset"]))
    one_row = _ok(run_benchmark(_spec("tflite", "tflite"), unread, mitbih["dataset"]))

    assert small.memory is not None and read_all.memory is not None and one_row.memory is not None
    print(f"MIT-BIH TFLite small: {small.memory}\nread: {read_all.memory}\none row: {one_row.memory}")
    assert read_all.memory.model_file_bytes > BIG_MIB * MIB and one_row.memory.model_file_bytes > BIG_MIB * MIB
    assert read_all.memory.inference_peak_bytes > 0.9 * BIG_MIB * MIB
    assert one_row.memory.inference_peak_bytes < 0.25 * BIG_MIB * MIB
    assert small.memory.inference_peak_bytes < 0.25 * BIG_MIB * MIB


def test_litert_says_why_it_gives_no_operator_profile(mitbih: dict[str, Path]) -> None:
    from agent.backends.tflite import interpreter_class

    interpreter, runtime = interpreter_class()

    result = _ok(run_benchmark(_spec("tflite", "tflite", batch_sizes=(1,)), mitbih["tflite"], mitbih["dataset"]))

    assert [name for name in dir(interpreter) if "profil" in name.lower()] == []  # what the note claims
    assert result.profiles == []
    assert result.manifest["operator_profile"] == (
        f"not available: the Python Interpreter of {runtime} exposes no per-operator profiler "
        "(TFLite's op profiling is in the C++ benchmark_model tool, --enable_op_profiling)"
    )


def test_the_onnxruntime_profile_names_the_models_conv_nodes(mitbih: dict[str, Path]) -> None:
    import onnx

    from pipelines.beats_1d import MEMBERS

    convs = {node.name for node in onnx.load(str(mitbih["onnx"])).graph.node if node.op_type == "Conv"}

    result = _ok(run_benchmark(_spec("onnxruntime", "onnx", min_iterations=50), mitbih["onnx"], mitbih["dataset"]))

    assert len(convs) == 4 * MEMBERS  # four convolutions in each of the ensemble's CNNs
    assert [p.batch_size for p in result.profiles] == [1, 8]
    for profile, latency in zip(result.profiles, result.latency):
        # Conv or FusedConv nodes, named as in the model; ORT's NCHWc layout pass appends ":0_nchwc" to the name.
        profiled = {op.name.split(":", 1)[0] for op in profile.ops if "Conv" in op.op_type}
        assert profiled and profiled <= convs, (profile.ops, convs)
        # A conv missing from the profile fell below its PROFILE_TOP_OPS slowest operators (an ensemble has 12).
        assert profiled == convs or len(profile.ops) == PROFILE_TOP_OPS < profile.operators, (profile.ops, convs)
        low, high = SUM_VS_P50
        assert low * latency.p50_ms <= profile.total_ms <= high * latency.p50_ms, (profile.total_ms, latency.p50_ms)


def test_repetitions_pool_the_samples_and_report_the_run_to_run_spread(mitbih: dict[str, Path]) -> None:
    result = _ok(run_benchmark(_spec("onnxruntime", "onnx", repetitions=3), mitbih["onnx"], mitbih["dataset"]))

    assert [(s.batch_size, len(s.p50_ms)) for s in result.repetitions] == [(1, 3), (8, 3)]
    for spread, latency in zip(result.repetitions, result.latency):
        assert spread.scope == latency.scope and latency.samples >= 3 * FAST.min_iterations
        assert spread.min_ms <= spread.mean_ms <= spread.max_ms and spread.sd_ms >= 0
        # The median of all samples lies between the repetitions' medians.
        assert spread.min_ms * (1 - 1e-9) <= latency.p50_ms <= spread.max_ms * (1 + 1e-9)
