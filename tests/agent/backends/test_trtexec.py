"""The trtexec backend end to end through the runner, against a fake `trtexec` run as a real subprocess.

fake_trtexec.py prints trtexec's text and writes its JSON formats (see its docstring for the TensorRT
versions each comes from) and computes real outputs with ONNX Runtime, so latency parsing, accuracy,
caching, INT8 and failure classification are all checked on what the backend really reads. The last
test runs the real trtexec on a real GPU when both are there.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import agent.backends.trtexec as trtexec_module
from agent.backends import BACKENDS, BuildRequest, DeviceTimedEngine, SelfTimedEngine
from agent.backends.trtexec import (
    COMPUTE_SCOPE,
    NOT_FOUND,
    SCOPE,
    TrtexecBackend,
    TrtexecEngine,
    find_trtexec,
    load_json,
    operator_profile,
    parse_banner,
    read_model_io,
    timed_run,
    version_from_int,
)
from agent.runner import run_benchmark
from edgelab.domain import ArtifactRef, FailureKind, JobSpec, MeasurementSettings, Precision
from tests.factories import write_linear_onnx, write_test_set

FAKE = Path(__file__).with_name("fake_trtexec.py")
FAST = MeasurementSettings(
    warmup_iterations=0, warmup_duration_s=0, min_iterations=20, min_duration_s=0, power_meter="none"
)
LENGTH, CLASSES = 32, 3


class FakeTrtexec:
    """The fake installed as an executable `trtexec` (a wrapper script) that logs every call's argv."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.path = self.bin / "trtexec"
        self.path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
        self.path.chmod(self.path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        self.log = tmp_path / "calls.jsonl"
        self.monkeypatch = monkeypatch
        monkeypatch.setenv("EDGELAB_TRTEXEC", str(self.path))
        monkeypatch.setenv("EDGELAB_FAKE_TRTEXEC_LOG", str(self.log))
        self.version("8201")

    def version(self, number: str) -> None:
        self.monkeypatch.setenv("EDGELAB_FAKE_TRTEXEC_VERSION", number)
        self.path.touch()  # a new mtime: the backend reads the version again, as after an upgrade

    def calls(self) -> list[list[str]]:
        if not self.log.is_file():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def builds(self) -> list[list[str]]:
        return [c for c in self.calls() if any(a.startswith("--onnx=") for a in c)]

    def timings(self) -> list[list[str]]:
        return [c for c in self.calls() if any(a.startswith("--exportTimes=") for a in c)]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTrtexec:
    pytest.importorskip("onnxruntime")
    return FakeTrtexec(tmp_path, monkeypatch)


def _spec(precision: Precision = Precision.FP32, **overrides: object) -> JobSpec:
    fields: dict[str, object] = {
        "name": "trtexec",
        "backend": "trtexec",
        "precision": precision,
        "batch_sizes": [1, 8],
        "model": ArtifactRef("d" * 64, format="onnx"),
        "dataset": ArtifactRef("e" * 64, format="npz"),
        "measurement": FAST,
    }
    fields.update(overrides)
    return JobSpec(**fields)  # type: ignore[arg-type]


def _reference(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0])


def _flag(call: list[str], name: str) -> str | None:
    return next((a.split("=", 1)[1] if "=" in a else "" for a in call if a.split("=", 1)[0] == name), None)


# --- finding trtexec and its version -----------------------------------------------------


def test_probe_without_trtexec_says_how_to_point_at_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EDGELAB_TRTEXEC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(trtexec_module, "JETPACK_TRTEXEC", tmp_path / "usr/src/tensorrt/bin/trtexec")

    info = TrtexecBackend().probe()

    assert not info.available
    assert info.reason == NOT_FOUND
    assert info.reason.startswith("trtexec not found: set EDGELAB_TRTEXEC or put trtexec on PATH")


def test_a_bad_edgelab_trtexec_is_reported_not_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGELAB_TRTEXEC", str(tmp_path / "nowhere"))

    assert find_trtexec() == (None, f"EDGELAB_TRTEXEC={tmp_path / 'nowhere'} is not an executable file")
    assert "is not an executable file" in TrtexecBackend().probe().reason


@pytest.mark.parametrize(("number", "version"), [("8201", "8.2.1"), ("8003", "8.0.3"), ("100300", "10.3.0")])
def test_probe_reads_the_version_from_the_banner_of_trtexec_on_path(
    fake: FakeTrtexec, monkeypatch: pytest.MonkeyPatch, number: str, version: str
) -> None:
    monkeypatch.delenv("EDGELAB_TRTEXEC")
    monkeypatch.setenv("PATH", str(fake.bin))
    fake.version(number)

    info = TrtexecBackend().probe()

    assert info.available, info.reason
    assert info.version == f"{version} (trtexec {fake.path})"
    assert info.precisions == [Precision.FP32, Precision.FP16, Precision.INT8]
    assert fake.calls() == [["--help"]]


def test_version_numbers_as_trtexec_prints_them() -> None:
    assert version_from_int(8201) == (8, 2, 1)  # JetPack 4.6.1's TensorRT
    assert version_from_int(8412) == (8, 4, 12)
    assert version_from_int(8601) == (8, 6, 1)
    assert version_from_int(100300) == (10, 3, 0)
    assert parse_banner("&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # /usr/src/tensorrt/bin/trtexec") == (8, 2, 1)
    assert parse_banner("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] [b26] # trtexec --help") == (10, 3, 0)
    assert parse_banner("&&&& RUNNING TensorRT.trtexec # trtexec") is None  # TensorRT 7.0 printed no version


def test_model_io_is_read_without_the_onnx_package(tmp_path: Path) -> None:
    io = read_model_io(write_linear_onnx(tmp_path / "m.onnx", length=LENGTH, classes=CLASSES))

    assert [(t.name, t.dims) for t in io.inputs] == [("ecg", (None, LENGTH, 1))]  # initializers left out
    assert [(t.name, t.dims) for t in io.outputs] == [("probs", (None, CLASSES))]


# --- end to end through the runner -------------------------------------------------------


def test_a_job_on_trtexec_times_scores_profiles_and_caches(fake: FakeTrtexec, tmp_path: Path) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx", length=LENGTH, classes=CLASSES)
    dataset = write_test_set(tmp_path / "t.npz", n=300, length=LENGTH, classes=CLASSES)
    data = np.load(dataset)
    expected = _reference(model, data["x_test"]).argmax(axis=1)

    first = run_benchmark(_spec(), model, dataset, cache_dir=tmp_path / "cache")
    second = run_benchmark(_spec(), model, dataset, cache_dir=tmp_path / "cache")

    assert first.failure is None, first.failure
    assert second.failure is None, second.failure
    for scope in (SCOPE, COMPUTE_SCOPE):
        stats = [lat for lat in first.latency if lat.scope == scope]
        assert [lat.batch_size for lat in stats] == [1, 8]
        assert all(lat.samples >= 20 and 0 < lat.min_ms <= lat.p50_ms <= lat.max_ms for lat in stats)
        assert all(lat.throughput_per_s > 0 and lat.timed_duration_s > 0 for lat in stats)
    end_to_end = [lat for lat in first.latency if lat.scope == SCOPE]
    compute = [lat for lat in first.latency if lat.scope == COMPUTE_SCOPE]
    assert all(c.p50_ms <= e.p50_ms for c, e in zip(compute, end_to_end))  # latency = H2D + compute + D2H
    # No warm-up asked: the trace starts with the engine's first query, which is the first inference.
    assert all(lat.warmup_iterations == 0 and lat.first_inference_ms > 0 for lat in first.latency)
    assert first.accuracy is not None and second.accuracy is not None
    assert first.accuracy.samples == 300
    assert first.accuracy.accuracy == pytest.approx(float((expected == data["y_test"]).mean()))
    manifest = first.manifest
    assert manifest["backend"] == "trtexec" and manifest["backend_version"].startswith("8.2.1 (trtexec ")
    assert manifest["engine_cache"] == "miss" and second.manifest["engine_cache"] == "hit"
    assert manifest["batch_profile"] == "min 1 / opt 8 / max 256"  # 256: the scoring chunk
    assert manifest["gpu_name"] == "NVIDIA Tegra X1" and manifest["compute_capability"] == "5.3"
    assert not any(key.startswith("layer_profile") for key in manifest)  # typed now: result.profiles
    assert [p.batch_size for p in first.profiles] == [1, 8]
    profile = first.profiles[1]
    assert profile.source == "trtexec --exportProfile" and profile.operators == 3 and profile.iterations >= 20
    assert profile.ops[0].name == "(Unnamed Layer* 1) [Gemm]" and profile.ops[0].op_type == ""
    assert profile.total_ms == pytest.approx(sum(op.time_ms for op in profile.ops))
    assert sum(op.percent for op in profile.ops) == pytest.approx(100.0)
    # The fake splits each query's compute time over the layers, Gemm weighing 4 to Relu's and Softmax's 1: the
    # shares are what the file says, whatever this shared machine's timing was (the profile is a separate run).
    assert profile.total_ms > 0
    assert [op.percent for op in profile.ops] == pytest.approx([400 / 6, 100 / 6, 100 / 6], rel=1e-3)

    (build,) = fake.builds()  # the second job deserialized the cached engine
    assert _flag(build, "--minShapes") == f"ecg:1x{LENGTH}x1"
    assert _flag(build, "--optShapes") == f"ecg:8x{LENGTH}x1"
    assert _flag(build, "--maxShapes") == f"ecg:256x{LENGTH}x1"
    assert _flag(build, "--workspace") == "1024" and _flag(build, "--memPoolSize") is None  # TensorRT 8.2
    assert _flag(build, "--fp16") is None and _flag(build, "--int8") is None
    timing = fake.timings()
    assert len(timing) == 4  # two batch sizes, two jobs
    assert [_flag(c, "--shapes") for c in timing[:2]] == [f"ecg:1x{LENGTH}x1", f"ecg:8x{LENGTH}x1"]
    assert all(_flag(c, "--separateProfileRun") == "" and _flag(c, "--exportProfile") for c in timing)
    assert [(_flag(c, "--warmUp"), _flag(c, "--duration"), _flag(c, "--iterations")) for c in timing[:1]] == [
        ("0", "0", "20")
    ]
    scoring = [c for c in fake.calls() if any(a.startswith("--exportOutput=") for a in c)]
    assert [_flag(c, "--shapes") for c in scoring] == [f"ecg:256x{LENGTH}x1", f"ecg:44x{LENGTH}x1"] * 2


def test_trtexec_10_gets_mem_pool_size_and_its_trace_without_warm_ups(fake: FakeTrtexec, tmp_path: Path) -> None:
    fake.version("100300")
    model = write_linear_onnx(tmp_path / "m.onnx", length=LENGTH, classes=CLASSES)
    dataset = write_test_set(tmp_path / "t.npz", length=LENGTH, classes=CLASSES)
    settings = MeasurementSettings(
        warmup_duration_s=0.05, min_iterations=20, min_duration_s=0, power_meter="none", warmup_iterations=0
    )
    spec = _spec(Precision.FP16, measurement=settings, batch_sizes=[4], backend_options={"workspace_mb": "512"})

    result = run_benchmark(spec, model, dataset, cache_dir=tmp_path / "cache")

    assert result.failure is None, result.failure
    (build,) = fake.builds()
    assert _flag(build, "--memPoolSize") == "workspace:512" and _flag(build, "--workspace") is None
    assert _flag(build, "--fp16") == ""
    (timing,) = fake.timings()
    assert _flag(timing, "--warmUp") == "50"
    stats = result.latency[0]
    assert stats.warmup_iterations > 0 and stats.warmup_s == pytest.approx(0.05)  # from trtexec's prolog line
    assert math.isnan(stats.first_inference_ms)  # 10.x leaves warm-ups out of --exportTimes
    assert result.manifest["tensorrt_version"] == "10.3.0"
    assert [p.batch_size for p in result.profiles] == [4] and result.profiles[0].ops


def test_warm_ups_in_an_8x_trace_are_split_off_by_trtexecs_rule(fake: FakeTrtexec, tmp_path: Path) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx", length=LENGTH, classes=CLASSES)
    engine = TrtexecBackend().load(model, BuildRequest(Precision.FP32, [2], cache_dir=tmp_path / "cache"))
    windows: list[tuple[float, float]] = []

    @contextmanager
    def window() -> Iterator[None]:
        import time

        start = time.perf_counter()
        yield
        windows.append((start, time.perf_counter()))

    settings = MeasurementSettings(warmup_duration_s=0.1, min_iterations=30, min_duration_s=1)
    x = np.random.default_rng(0).normal(size=(2, LENGTH, 1)).astype(np.float32)
    try:
        run = engine.measure(x, settings, window)
    finally:
        engine.close()

    stats = run.end_to_end
    assert stats.warmup_iterations > 0 and 0.09 < stats.warmup_s < 0.5  # the trace's warm-up queries
    assert stats.first_inference_ms > 0 and stats.samples >= 30 and stats.timed_duration_s > 0.9  # ~ --duration=1
    assert run.compute is not None and run.compute.samples == stats.samples
    (span,) = windows  # the power window: entered once, for the timed phase only
    assert 0.8 < span[1] - span[0] < stats.timed_duration_s + 0.5
    assert engine.details["trtexec_timing"].startswith("--warmUp=100 ms, --duration=1 s, --iterations=30")


def test_the_engine_times_itself_and_is_not_timed_by_the_harness(fake: FakeTrtexec, tmp_path: Path) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx", length=LENGTH, classes=CLASSES)
    engine = TrtexecBackend().load(model, BuildRequest(Precision.FP32, [1, 8]))
    try:
        x = np.random.default_rng(1).normal(size=(300, LENGTH, 1)).astype(np.float32)
        out = engine.infer(x)  # more rows than max_batch: scored in chunks
        assert isinstance(engine, SelfTimedEngine) and not isinstance(engine, DeviceTimedEngine)
        assert engine.details["engine_cache"] == "off" and engine.max_batch == 256
        np.testing.assert_allclose(out, _reference(model, x), rtol=1e-5, atol=1e-6)  # 6 significant digits
    finally:
        engine.close()
    assert not engine.engine_path.exists()  # a cache-less engine lives as long as the engine object
    with pytest.raises(RuntimeError, match="closed"):
        engine.infer(x[:1])


def test_the_cache_key_holds_everything_that_changes_the_engine(fake: FakeTrtexec, tmp_path: Path) -> None:
    """Issue 13 item 2 for trtexec: another workspace, batch profile, precision or calibration set is another
    engine (a miss, a build of its own), the same request again is a hit on the same key."""
    pytest.importorskip("onnx")
    model = write_linear_onnx(tmp_path / "m.onnx", length=LENGTH, classes=CLASSES)
    calibration = np.random.default_rng(3).normal(size=(32, LENGTH, 1)).astype(np.float32)

    def load(precision: Precision = Precision.FP32, **changes: object) -> dict[str, str]:
        fields: dict[str, object] = {
            "precision": precision,
            "batch_sizes": [1, 8],
            "calibration": calibration,
            "cache_dir": tmp_path / "cache",
            "model_sha256": "m",
        }
        engine = TrtexecBackend().load(model, BuildRequest(**{**fields, **changes}))  # type: ignore[arg-type]
        engine.close()
        return engine.details

    base = load()
    variants = [
        load(options={"workspace_mb": "512"}),
        load(batch_sizes=[1, 16]),
        load(Precision.FP16),
        load(Precision.INT8),
        load(Precision.INT8, calibration=calibration * 10),  # other activation ranges: other scales
    ]
    again = load()

    parts = json.loads(base["engine_cache_key_parts"])
    assert parts["workspace_mb"] == 1024 and parts["batch_profile"] == [1, 8, 256] and parts["precision"] == "fp32"
    keys = [details["engine_cache_key"] for details in (base, *variants)]
    assert len(set(keys)) == len(keys) and [d["engine_cache"] for d in variants] == ["miss"] * len(variants)
    assert (again["engine_cache"], again["engine_cache_key"]) == ("hit", keys[0])
    assert len(fake.builds()) == 1 + len(variants)  # the hit built nothing


# --- INT8 ----------------------------------------------------------------------------------


def test_int8_from_an_explicitly_quantized_model_builds_with_int8_and_no_calibrator(
    fake: FakeTrtexec, tmp_path: Path
) -> None:
    pytest.importorskip("onnx")
    from agent.backends.qdq import is_qdq, quantize_int8

    model = write_linear_onnx(tmp_path / "m.onnx", length=LENGTH, classes=CLASSES)
    calibration = np.random.default_rng(3).normal(size=(32, LENGTH, 1)).astype(np.float32)
    qdq = quantize_int8(model, calibration, tmp_path / "m.qdq.onnx", symmetric=True)
    assert is_qdq(qdq)
    dataset = write_test_set(tmp_path / "t.npz", length=LENGTH, classes=CLASSES)

    result = run_benchmark(_spec(Precision.INT8), qdq, dataset, cache_dir=tmp_path / "cache")

    assert result.failure is None, result.failure
    assert result.manifest["int8"].startswith("explicit Q/DQ scales shipped in the model")
    (build,) = fake.builds()
    assert _flag(build, "--int8") == "" and _flag(build, "--onnx") == str(qdq)
    assert not list((tmp_path / "cache" / "trtexec").glob("*.qdq.onnx"))  # nothing quantized here
    data = np.load(dataset)
    expected = _reference(qdq, data["x_test"]).argmax(axis=1)
    assert result.accuracy is not None
    assert result.accuracy.accuracy == pytest.approx(float((expected == data["y_test"]).mean()))


def test_int8_of_a_float_model_is_quantized_on_the_device_once(fake: FakeTrtexec, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    model = write_linear_onnx(tmp_path / "m.onnx", length=LENGTH, classes=CLASSES)
    dataset = write_test_set(tmp_path / "t.npz", n=200, length=LENGTH, classes=CLASSES)
    data = np.load(dataset)

    first = run_benchmark(_spec(Precision.INT8), model, dataset, cache_dir=tmp_path / "cache")
    second = run_benchmark(_spec(Precision.INT8), model, dataset, cache_dir=tmp_path / "cache")

    assert first.failure is None and second.failure is None, (first.failure, second.failure)
    assert "quantized on the device" in first.manifest["int8"] and "symmetric" in first.manifest["int8"]
    assert first.manifest["int8"].endswith("cache miss; --int8, no calibrator")
    assert "cache hit" in second.manifest["int8"] and second.manifest["engine_cache"] == "hit"
    (quantized,) = (tmp_path / "cache" / "trtexec").glob("*.qdq.onnx")
    (build,) = fake.builds()
    assert _flag(build, "--onnx") == str(quantized) and _flag(build, "--int8") == ""
    fp32 = _reference(model, data["x_test"]).argmax(axis=1)
    int8 = _reference(quantized, data["x_test"]).argmax(axis=1)
    assert first.accuracy is not None
    assert first.accuracy.accuracy == pytest.approx(float((int8 == data["y_test"]).mean()))
    assert (int8 == fp32).mean() >= 0.9  # the symmetric scales keep the FP32 decisions


def test_int8_without_qdq_nodes_or_a_quantizer_fails_naming_the_fix(
    fake: FakeTrtexec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = write_linear_onnx(tmp_path / "m.onnx", length=LENGTH, classes=CLASSES)
    dataset = write_test_set(tmp_path / "t.npz", length=LENGTH, classes=CLASSES)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("onnxruntime", "onnx") else real_find_spec(name, *a),
    )

    result = run_benchmark(_spec(Precision.INT8), model, dataset, cache_dir=tmp_path / "cache")

    assert result.failure is not None and result.failure.kind == FailureKind.BUILD
    assert "explicitly quantized (Q/DQ) ONNX model" in result.failure.message
    assert "pip install onnxruntime onnx" in result.failure.message
    assert fake.builds() == []


# --- failures --------------------------------------------------------------------------------


def _model_with_custom_op(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("EdgeLabCustomOp", ["ecg"], ["probs"], domain="edgelab.test")],
        "custom",
        [helper.make_tensor_value_info("ecg", TensorProto.FLOAT, ["batch", LENGTH, 1])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", CLASSES])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("edgelab.test", 1)]
    )
    onnx.save(model, str(path))
    return path


def test_an_op_tensorrt_lacks_fails_as_unsupported_with_tensorrts_words(fake: FakeTrtexec, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    model = _model_with_custom_op(tmp_path / "custom.onnx")
    dataset = write_test_set(tmp_path / "t.npz", length=LENGTH, classes=CLASSES)

    result = run_benchmark(_spec(), model, dataset, cache_dir=tmp_path / "cache")

    assert result.failure is not None and result.failure.kind == FailureKind.UNSUPPORTED, result.failure
    message = result.failure.message
    assert "unsupported op 'EdgeLabCustomOp'" in message
    assert 'Plugin not found, are the plugin name, version, and namespace correct?"' in message
    assert "Failed to parse onnx file" in message and "Engine set up failed" in message
    assert "&&&& FAILED TensorRT.trtexec [TensorRT v8201]" in message
    assert not list((tmp_path / "cache" / "trtexec").glob("*.engine*"))  # no half-written engine left


def test_a_build_out_of_gpu_memory_fails_as_out_of_memory(
    fake: FakeTrtexec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGELAB_FAKE_TRTEXEC_FAIL", "oom")
    model = write_linear_onnx(tmp_path / "m.onnx", length=LENGTH, classes=CLASSES)
    dataset = write_test_set(tmp_path / "t.npz", length=LENGTH, classes=CLASSES)

    result = run_benchmark(_spec(), model, dataset, cache_dir=tmp_path / "cache")

    assert result.failure is not None and result.failure.kind == FailureKind.OUT_OF_MEMORY, result.failure
    assert "Cuda Error in allocate: 2 (out of memory)" in result.failure.message


def test_dla_core_builds_and_runs_on_that_core_with_gpu_fallback(
    fake: FakeTrtexec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGELAB_FAKE_TRTEXEC_DLA_CORES", "2")
    model = write_linear_onnx(tmp_path / "m.onnx", length=LENGTH, classes=CLASSES)
    dataset = write_test_set(tmp_path / "t.npz", length=LENGTH, classes=CLASSES)
    spec = _spec(Precision.FP16, batch_sizes=[4], backend_options={"dla_core": "1", "layer_profile": "off"})

    result = run_benchmark(spec, model, dataset, cache_dir=tmp_path / "cache")
    calls = [c for c in fake.calls() if c != ["--help"]]
    refused = run_benchmark(_spec(backend_options={"dla_core": "0"}), model, dataset, cache_dir=tmp_path / "c2")
    missing = run_benchmark(replace_options(spec, dla_core="5"), model, dataset, cache_dir=tmp_path / "c3")

    assert result.failure is None, result.failure
    assert result.manifest["dla_core"] == "1" and result.profiles == []
    assert result.manifest["operator_profile"].startswith("off")
    assert _flag(calls[0], "--useDLACore") == "1" and _flag(calls[0], "--allowGPUFallback") == ""
    assert len(calls) == 3 and all(_flag(c, "--useDLACore") == "1" for c in calls)  # build, time, score
    assert _flag(calls[1], "--exportProfile") is None
    assert refused.failure is not None and "DLA runs FP16 or INT8 layers only" in refused.failure.message
    assert missing.failure is not None and "Cannot create DLA engine, 5 not available" in missing.failure.message


def replace_options(spec: JobSpec, **options: str) -> JobSpec:
    from dataclasses import replace

    return replace(spec, backend_options={**spec.backend_options, **options})


# --- parsing trtexec's files -------------------------------------------------------------------


def test_trtexecs_json_with_bare_nan_and_inf_still_loads(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    out.write_text('[\n  { "name" : "probs"\n  , "dimensions" : "1x3"\n  , "values" : [ nan, -inf, 1e-05 ]\n  }\n]\n')

    (entry,) = load_json(out)

    assert math.isnan(entry["values"][0]) and entry["values"][1] == -math.inf and entry["values"][2] == 1e-05


def test_timed_run_follows_trtexecs_warm_up_rule() -> None:
    def query(start: float, compute: float) -> dict[str, float]:
        return {"startH2dMs": start, "startComputeMs": start + 0.1, "computeMs": compute,
                "latencyMs": compute + 0.2, "endD2hMs": start + compute + 0.2}  # fmt: skip

    trace = [query(0, 5.0), query(6, 1.0), query(12, 1.0), query(18, 2.0)]

    run = timed_run(trace, batch_size=4, warmup_ms=10)

    assert run.end_to_end.samples == 2 and run.end_to_end.warmup_iterations == 2
    assert run.end_to_end.first_inference_ms == pytest.approx(5.2)
    assert run.end_to_end.warmup_s == pytest.approx(0.012)
    assert run.end_to_end.timed_duration_s == pytest.approx((18 + 2.2 - 12) / 1e3)
    assert run.compute is not None and run.compute.p50_ms == pytest.approx(1.5) and run.compute.scope == COMPUTE_SCOPE
    assert run.end_to_end.throughput_per_s == pytest.approx(4 * 2 / ((18 + 2.2 - 12) / 1e3))


def test_the_profile_kept_is_bounded_to_the_slowest_layers() -> None:
    entries = [{"count": 10}] + [
        {"name": f"layer{i}" + "x" * 200, "timeMs": float(i), "averageMs": i / 10, "percentage": i} for i in range(30)
    ]

    profile = operator_profile(entries, batch_size=4)

    assert profile.operators == 30 and profile.iterations == 10 and profile.batch_size == 4
    assert [op.time_ms for op in profile.ops] == pytest.approx([i / 10 for i in range(29, 9, -1)])  # top 20
    assert all(len(op.name) == 200 for op in profile.ops)
    assert profile.total_ms == pytest.approx(sum(range(30)) / 10)


def test_the_backend_is_registered() -> None:
    assert isinstance(BACKENDS["trtexec"], TrtexecBackend) and BACKENDS["trtexec"].formats == ("onnx",)


def test_the_engine_type_satisfies_the_self_timed_protocol_statically() -> None:
    assert hasattr(TrtexecEngine, "measure") and TrtexecEngine.scope == SCOPE


# --- the real thing --------------------------------------------------------------------------


def _has_gpu() -> bool:
    if Path("/dev/nvhost-ctrl-gpu").exists() or Path("/etc/nv_tegra_release").exists():  # a Jetson
        return True
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        return subprocess.run([smi, "-L"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.gpu
@pytest.mark.parametrize("precision", [Precision.FP32, Precision.FP16, Precision.INT8])
def test_real_trtexec_on_a_real_gpu(tmp_path: Path, precision: Precision) -> None:
    """With TensorRT's trtexec ($EDGELAB_TRTEXEC, PATH or JetPack's) and an NVIDIA GPU: build, cache, time, score."""
    path, why = find_trtexec()
    if path is None:
        pytest.skip(why)
    if not _has_gpu():
        pytest.skip("no NVIDIA GPU (nvidia-smi -L failed, not a Jetson)")
    pytest.importorskip("onnxruntime")
    model = write_linear_onnx(tmp_path / "m.onnx", length=LENGTH, classes=CLASSES)
    dataset = write_test_set(tmp_path / "t.npz", n=500, length=LENGTH, classes=CLASSES)
    data = np.load(dataset)
    reference = _reference(model, data["x_test"])
    settings = MeasurementSettings(warmup_duration_s=0.2, min_iterations=50, min_duration_s=1, power_meter="none")
    spec = _spec(precision, batch_sizes=[1, 8, 32], measurement=settings)

    first = run_benchmark(spec, model, dataset, cache_dir=tmp_path / "cache")
    second = run_benchmark(spec, model, dataset, cache_dir=tmp_path / "cache")

    assert first.failure is None and second.failure is None, (first.failure, second.failure)
    for scope in (SCOPE, COMPUTE_SCOPE):
        stats = [lat for lat in first.latency if lat.scope == scope]
        assert [lat.batch_size for lat in stats] == [1, 8, 32]
        assert all(lat.samples >= 50 and 0 < lat.p50_ms < 1000 and lat.throughput_per_s > 0 for lat in stats)
    assert first.manifest["engine_cache"] == "miss" and second.manifest["engine_cache"] == "hit"
    assert [p.batch_size for p in first.profiles] == [1, 8, 32] and first.profiles[2].ops
    assert first.manifest["gpu_name"]
    assert first.accuracy is not None
    reference_accuracy = float((reference.argmax(axis=1) == data["y_test"]).mean())
    assert abs(first.accuracy.accuracy - reference_accuracy) <= (0.1 if precision == Precision.INT8 else 0.02)
    engine = TrtexecBackend().load(model, BuildRequest(precision, [1, 32], calibration=data["x_calib"]))
    try:
        out = engine.infer(data["x_test"][:32])
    finally:
        engine.close()
    if precision == Precision.INT8:
        assert (out.argmax(axis=1) == reference[:32].argmax(axis=1)).mean() >= 0.9
    else:
        np.testing.assert_allclose(out, reference[:32], atol=1e-4 if precision == Precision.FP32 else 1e-2)
