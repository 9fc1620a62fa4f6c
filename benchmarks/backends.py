"""Agent backends on a real MIT-BIH model: one table backend x precision x batch, and the harness overhead.

    python benchmarks/backends.py                                  # 6 records, 1 epoch: a few minutes
    python benchmarks/backends.py --records all --epochs 3 --min-duration 3

1. Trains the MIT-BIH 1D CNN (inter-patient split) in this process, exports ONNX, TFLite
   FP32/FP16/INT8 and a zipped SavedModel, and runs every (backend, precision) through the
   agent's own `run_benchmark` (the code a device runs): p50/p99/throughput per batch size and
   accuracy on the shipped test set.
2. Harness overhead: for ONNX Runtime and TFLite, the lab's p50 (measurement loop around
   `engine.infer`) versus a bare tight loop over the same runtime call in the same process, in
   alternating rounds so drift hits both alike; prints the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agent.backends import BACKENDS, BuildRequest, Engine
from agent.measure import measure_latency
from agent.runner import load_test_set, run_benchmark
from coordinator.matrix import TARGETS, MatrixSpec, artifact_path, run_matrix
from edgelab.domain import ArtifactRef, JobSpec, MeasurementSettings, Precision
from pipelines.base import TrainConfig

REPO = Path(__file__).resolve().parents[1]
QUICK_RECORDS = ("101", "106", "119", "100", "103", "200")

# (backend, precision, matrix target): every way this lab can run the model on a CPU device.
MATRIX: tuple[tuple[str, Precision, str], ...] = (
    ("onnxruntime", Precision.FP32, "onnx"),
    ("onnxruntime", Precision.INT8, "onnx"),
    ("tflite", Precision.FP32, "tflite-fp32"),
    ("tflite", Precision.FP16, "tflite-fp16"),
    ("tflite", Precision.INT8, "tflite-int8-io"),
    ("tensorflow", Precision.FP32, "savedmodel.zip"),
)


def build_artifacts(data: Path, records: tuple[str, ...] | None, epochs: int, out: Path) -> dict[str, Path]:
    """Train and convert through the coordinator's own matrix (in this process), keyed by target."""
    spec = MatrixSpec(
        pipeline="mitdb-beats-1d",
        train_config=TrainConfig(data_dir=data, records=records, epochs=epochs),
        targets=list(dict.fromkeys(target for _, _, target in MATRIX)),
    )
    matrix = run_matrix(spec, out, use_ray=False)
    trained = matrix.source.summary
    print(
        f"trained mitdb-beats-1d: {trained['train_beats']} train / {trained['test_beats']} test beats "
        f"({trained['split']}), host accuracy {trained['host_accuracy']:.4f}, {trained['train_seconds']:.0f} s"
    )
    for failed in matrix.failures:
        print(f"{failed.target} conversion failed: {failed.error}")
    return {"dataset": matrix.dataset_path, **{r.target: artifact_path(r) for r in matrix.records if r.ok}}


def backend_table(artifacts: dict[str, Path], batch_sizes: list[int], settings: MeasurementSettings) -> None:
    print(
        f"\n{'backend':<12} {'prec':<5} {'batch':>5} {'p50 ms':>9} {'p99 ms':>9} {'n':>6} {'samples/s':>10} {'acc':>7}"
    )
    with tempfile.TemporaryDirectory() as cache:
        for backend, precision, key in MATRIX:
            if key not in artifacts:
                continue  # its conversion failed; build_artifacts said why
            spec = JobSpec(
                name=f"{backend}-{precision.value}",
                backend=backend,
                model=ArtifactRef(sha256=key, format=TARGETS[key].format),
                dataset=ArtifactRef(sha256="dataset", format="npz"),
                precision=precision,
                batch_sizes=batch_sizes,
                measurement=settings,
            )
            result = run_benchmark(spec, artifacts[key], artifacts["dataset"], cache_dir=Path(cache))
            if result.failure is not None:
                print(
                    f"{backend:<12} {precision.value:<5} failed: {result.failure.kind.value}: {result.failure.message}"
                )
                continue
            accuracy = result.accuracy.accuracy if result.accuracy else float("nan")
            for lat in result.latency:
                p99 = f"{lat.p99_ms:9.4f}" if lat.p99_ms is not None else f"{'(n<662)':>9}"
                print(
                    f"{backend:<12} {precision.value:<5} {lat.batch_size:>5} {lat.p50_ms:9.4f} {p99} "
                    f"{lat.samples:>6} {lat.throughput_per_s:10.0f} {accuracy:7.4f}"
                )


def _bare_p50(call: Callable[[], object], iterations: int) -> float:
    """The same call in a tight loop, each iteration timed like the lab times it."""
    samples = np.empty(iterations, dtype=np.int64)
    for i in range(iterations):
        t = time.perf_counter_ns()
        call()
        samples[i] = time.perf_counter_ns() - t
    return float(np.percentile(samples, 50)) / 1e6


def _raw_call(backend: str, engine: Engine, batch: np.ndarray) -> Callable[[], object]:
    """The runtime's own call, reaching past our engine wrapper."""
    raw: Any = engine
    if backend == "onnxruntime":
        session, name = raw._session, raw._input_name
        return lambda: session.run(None, {name: batch})
    interpreter, inp, out = raw._interpreter, raw._input["index"], raw._output["index"]

    def invoke() -> object:
        interpreter.set_tensor(inp, batch)
        interpreter.invoke()
        return interpreter.get_tensor(out)

    return invoke


def overhead(artifacts: dict[str, Path], rounds: int, iterations: int) -> None:
    test = load_test_set(artifacts["dataset"])
    print(
        f"\nharness overhead: lab p50 / bare-loop p50, median of {rounds} alternating rounds ({iterations}/batch calls)"
    )
    for backend, key in (("onnxruntime", "onnx"), ("tflite", "tflite-fp32")):
        for batch_size in (1, 32):
            batch = np.ascontiguousarray(test.x[:batch_size])
            lab_p50, bare_p50 = _lab_versus_bare(
                backend, artifacts[key], batch, rounds, max(200, iterations // batch_size)
            )
            print(
                f"  {backend:<12} batch {batch_size:>2}: lab {lab_p50 * 1e3:8.1f} us, bare {bare_p50 * 1e3:8.1f} us, "
                f"ratio {lab_p50 / bare_p50:.3f}"
            )


def _lab_versus_bare(backend: str, model: Path, batch: np.ndarray, rounds: int, count: int) -> tuple[float, float]:
    settings = MeasurementSettings(
        warmup_iterations=50, warmup_duration_s=0, min_iterations=count, min_duration_s=0, power_meter="none"
    )
    engine = BACKENDS[backend].load(model, BuildRequest(Precision.FP32, [len(batch)]))
    engine.infer(batch)  # sizes the interpreter for this batch before the raw call is taken
    raw = _raw_call(backend, engine, batch)
    lab, bare = [], []
    for _ in range(rounds):
        run = measure_latency(lambda: engine.infer(batch), batch_size=len(batch), settings=settings, scope="")
        lab.append(run.end_to_end.p50_ms)
        for _ in range(50):  # the bare loop gets its own warm-up too
            raw()
        bare.append(_bare_p50(raw, count))
    engine.close()
    return statistics.median(lab), statistics.median(bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "mitdb")
    parser.add_argument("--records", default=",".join(QUICK_RECORDS), help='comma-separated, or "all"')
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--min-duration", type=float, default=1.0, help="timed phase per batch size, seconds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()

    records = None if args.records == "all" else tuple(args.records.split(","))
    settings = MeasurementSettings(min_duration_s=args.min_duration, power_idle_s=0.5)
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = build_artifacts(args.data, records, args.epochs, Path(tmp))
        backend_table(artifacts, [int(b) for b in args.batch_sizes.split(",")], settings)
        overhead(artifacts, args.rounds, args.iterations)


if __name__ == "__main__":
    main()
