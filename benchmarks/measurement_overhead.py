"""Measurement overhead (issue 17): does reading peak memory move the latency it sits beside? Target: p50 within 2%.

    python benchmarks/measurement_overhead.py                        # MIT-BIH 1D CNN, ONNX Runtime and LiteRT
    PYTHONPATH=. python benchmarks/measurement_overhead.py           # from a worktree whose venv holds another checkout
    python benchmarks/measurement_overhead.py --rounds 30 --iterations 3000

The agent reads each phase's peak RSS one of two ways (agent.memory.PeakRss): where the kernel lets a
process reset its own high-water mark, VmHWM is reset before the phase and read after it (nothing runs
during it); elsewhere a thread samples the RSS (statm) every RSS_SAMPLE_PERIOD_S beside the timed loop. For each
way, timed phases with the reading on and off alternate in one process, the order swapped every round so
drift and thermal state hit both alike. Printed per backend and batch size: the median p50 with the
reading on and off, and the median over rounds of the paired ratio on / off; beside them an A/A control
(off against off, same alternation), whose distance from 1 is what this machine can resolve.

The model: the mitdb-beats-1d 1D CNN trained here for one epoch on two records (about half a minute),
exported to ONNX and FP32 TFLite; `--onnx` / `--tflite` (and `--dataset` for real input) take existing files.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

from agent.backends import BACKENDS, BuildRequest, Engine
from agent.measure import measure_latency
from agent.memory import RSS_SAMPLE_PERIOD_S, PeakRss
from edgelab.domain import MeasurementSettings, Precision

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.02  # memory reading may move p50 by at most 2%


def _p50(engine: Engine, batch: np.ndarray, settings: MeasurementSettings, rss: PeakRss | None) -> float:
    def timed() -> float:
        run = measure_latency(lambda: engine.infer(batch), batch_size=len(batch), settings=settings, scope="")
        return run.end_to_end.p50_ms

    if rss is None:
        return timed()
    with rss.phase():
        return timed()


CONTROL = "none (A/A control: off vs off)"


def readers() -> dict[str, PeakRss | None]:
    """Each way this kernel lets the agent read a phase's peak (the exact one where allowed, and the sampling
    thread), and the A/A control: both sides off, so its ratio is this machine's noise floor."""
    found: dict[str, PeakRss | None] = {CONTROL: None}
    exact = PeakRss()
    if exact.exact:
        found["VmHWM reset (exact)"] = exact
    sampling = PeakRss()
    sampling.exact = False  # the fallback path, as on kernels without a writable /proc/self/clear_refs
    if sampling.available:
        found[f"RSS thread every {RSS_SAMPLE_PERIOD_S * 1e3:g} ms"] = sampling
    return found


def on_versus_off(
    backend: str, model: Path, batch: np.ndarray, rounds: int, count: int
) -> dict[str, tuple[float, float, float]]:
    """Per reading method: (median p50 with the reading on, median p50 off, median paired ratio on / off)."""
    settings = MeasurementSettings(
        warmup_iterations=50, warmup_duration_s=0, min_iterations=count, min_duration_s=0, power_meter="none"
    )
    engine = BACKENDS[backend].load(model, BuildRequest(Precision.FP32, [len(batch)]))
    figures: dict[str, tuple[float, float, float]] = {}
    try:
        engine.infer(batch)  # sizes the interpreter for this batch
        for method, rss in readers().items():
            on: list[float] = []
            off: list[float] = []
            for round_ in range(rounds):
                for reading in (True, False) if round_ % 2 == 0 else (False, True):
                    (on if reading else off).append(_p50(engine, batch, settings, rss if reading else None))
            ratios = [a / b for a, b in zip(on, off)]
            figures[method] = (statistics.median(on), statistics.median(off), statistics.median(ratios))
    finally:
        engine.close()
    return figures


def _train(data: Path, out: Path) -> dict[str, Path]:
    from pipelines.base import TrainConfig
    from pipelines.convert import convert_tflite
    from pipelines.registry import get_pipeline

    trained = get_pipeline("mitdb-beats-1d").run(
        TrainConfig(data_dir=data, records=("100", "119"), epochs=1, max_train_beats=2000), out
    )
    print(f"trained mitdb-beats-1d on records 100, 119: {trained.train_beats} beats, {trained.train_seconds:.0f} s")
    return {
        "onnx": trained.onnx_path,
        "tflite": convert_tflite(trained.savedmodel_path, out / "model.tflite"),
        "dataset": trained.dataset_path,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "mitdb")
    parser.add_argument("--onnx", type=Path, help="an existing ONNX model with input (batch, 252, 1)")
    parser.add_argument("--tflite", type=Path, help="an existing FP32 TFLite model with input (batch, 252, 1)")
    parser.add_argument("--dataset", type=Path, help="its test-set bundle (npz with x_test); default: random input")
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=1000, help="timed iterations per phase at batch 1")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        models, dataset = {"onnx": args.onnx, "tflite": args.tflite}, args.dataset
        if args.onnx is None and args.tflite is None:
            trained = _train(args.data, Path(tmp))
            models, dataset = {"onnx": trained["onnx"], "tflite": trained["tflite"]}, trained["dataset"]
        if dataset is not None:
            with np.load(dataset) as data:
                x = data["x_test"]  # real beats
        else:
            x = np.random.default_rng(0).normal(size=(max(int(b) for b in args.batch_sizes.split(",")), 252, 1))
        print(
            f"\nmemory reading on / off: median p50 of {args.rounds} alternating rounds; target ratio <= {1 + TARGET}"
        )
        for backend, key in (("onnxruntime", "onnx"), ("tflite", "tflite")):
            model = models[key]
            if model is None:
                continue
            for batch_size in (int(b) for b in args.batch_sizes.split(",")):
                batch = np.ascontiguousarray(x[:batch_size], dtype=np.float32)
                count = max(200, args.iterations // batch_size)
                for method, (on, off, ratio) in on_versus_off(backend, model, batch, args.rounds, count).items():
                    verdict = "ok" if abs(ratio - 1) <= TARGET else "outside 2%"
                    print(
                        f"  {backend:<12} batch {batch_size:>2} {method:<26}: on {on * 1e3:8.1f} us, "
                        f"off {off * 1e3:8.1f} us, ratio {ratio:.4f} ({verdict})"
                    )


if __name__ == "__main__":
    main()
