"""The conversion/compression matrix of the 1D beat model: sequential versus Ray-parallel, one run.

Trains mitdb-beats-1d on a few MIT-BIH records (inter-patient: DS1 records train, DS2 records
test), then builds every compression x target artifact twice: once with the task bodies called
one after another in this process, once as Ray tasks on a local Ray limited to --cpus cores.
Prints both wall times and their ratio, the matrix table, and a table in the shape of the source
paper's (accuracy / precision / recall / size for uncompressed, quantized, pruned, Q+P).

Its accuracy columns check that the artifacts agree with each other, not the model: one epoch on four
patients, with the shipped logit offsets (chosen for models trained on all 22 DS1 patients), calls nearly
every beat F (measured with the earlier V +0.5, F +2.0: Keras accuracy 0.12%). The model's own figures, compressed
or not, are benchmarks/compression_accuracy.py's (`--model mitdb-beats-1d`).

    nice -n 10 .venv/bin/python benchmarks/conversion_matrix.py --cpus 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from coordinator.matrix import MatrixRecord, MatrixSpec, matrix_table, run_matrix
from pipelines.base import TrainConfig

DEFAULT_MITDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "mitdb"
RECORDS = ("101", "106", "119", "208", "100", "105", "200", "233")
"""Four DS1 (train) and four DS2 (test) records with N, S, V and F beats."""
COMPRESSIONS = (
    "none",
    "prune@0.6",
    "prune-multistage@0.6",
    "cluster@16",
    "qat",
    "prune@0.6+qat",
    "prune@0.6+cluster@16+qat",
)
TARGETS = (
    "onnx",
    "savedmodel.zip",
    "tflite-fp32",
    "tflite-fp16",
    "tflite-int8-dynamic",
    "tflite-int8",
    "tflite-int8-io",
)
PAPER_ROWS = (
    ("Uncompressed (FP32)", "none", "tflite-fp32"),
    ("Quantized (PTQ INT8)", "none", "tflite-int8"),
    ("Quantized (QAT INT8)", "qat", "tflite-int8"),
    ("Pruned 60% one-shot", "prune@0.6", "tflite-fp32"),
    ("Pruned 60% multistage", "prune-multistage@0.6", "tflite-fp32"),
    ("Clustered 16", "cluster@16", "tflite-fp32"),
    ("Q+P (prune 60% + QAT INT8)", "prune@0.6+qat", "tflite-int8"),
    ("P+C+Q (60%, 16, QAT INT8)", "prune@0.6+cluster@16+qat", "tflite-int8"),
)


def paper_table(records: list[MatrixRecord]) -> Table:
    table = Table(title="Beat classifier (AAMI N/S/V/F/Q, inter-patient), host-side TFLite", title_justify="left")
    for column in ("model", "accuracy", "precision", "recall", "F1", "size KB", "zipped KB"):
        table.add_column(column, justify="left" if column == "model" else "right")
    cells = {(r.compression, r.target): r for r in records}
    for label, compression, target in PAPER_ROWS:
        record = cells.get((compression, target))
        if record is None:
            continue
        if not record.ok:
            table.add_row(label, f"[red]failed[/]: {record.error}")
            continue
        info = record.info
        table.add_row(
            label,
            f"{info['host_accuracy']:.2%}",
            f"{info['host_macro_precision']:.2%}",
            f"{info['host_macro_recall']:.2%}",
            f"{info['host_macro_f1']:.2%}",
            f"{info['size_bytes'] / 1024:.1f}",
            f"{info['gzip_bytes'] / 1024:.1f}",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_MITDB)
    parser.add_argument("--records", nargs="+", default=list(RECORDS))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-train", type=int, default=6000, help="training beats (stratified subsample)")
    parser.add_argument("--finetune-epochs", type=float, default=1.0)
    parser.add_argument("--compressions", nargs="+", default=list(COMPRESSIONS))
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmark-out/conversion_matrix"))
    args = parser.parse_args()

    import ray

    console = Console(width=170)
    spec = MatrixSpec(
        compressions=args.compressions,
        targets=args.targets,
        pipeline="mitdb-beats-1d",
        train_config=TrainConfig(
            data_dir=args.data, records=tuple(args.records), epochs=args.epochs, max_train_beats=args.max_train
        ),
        finetune_epochs=args.finetune_epochs,
    )
    cells = len(spec.compressions) * len(spec.targets)
    console.print(
        f"{cells} artifacts ({len(spec.compressions)} compressions x {len(spec.targets)} targets), "
        f"{os.cpu_count()} cores on the host, Ray limited to {args.cpus}"
    )

    started = time.perf_counter()
    sequential = run_matrix(spec, args.out / "sequential", use_ray=False)
    sequential_s = time.perf_counter() - started
    console.print(f"sequential (in-process): {sequential_s:.1f} s, {len(sequential.failures)} failed")

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        started = time.perf_counter()
        parallel = run_matrix(spec, args.out / "ray")
        parallel_s = time.perf_counter() - started
    finally:
        ray.shutdown()
    console.print(f"Ray-parallel ({args.cpus} CPUs):    {parallel_s:.1f} s, {len(parallel.failures)} failed")
    console.print(f"[bold]speed-up sequential / Ray: {sequential_s / parallel_s:.2f}x[/]")

    console.print(matrix_table(parallel.records, title="Conversion matrix (Ray run)"))
    console.print(paper_table(parallel.records))
    summary = parallel.source.summary
    console.print(
        f"source: {summary.get('train_beats')} training / {summary.get('test_beats')} test beats, "
        f"split {summary.get('split')}, Keras accuracy {summary.get('host_accuracy', float('nan')):.2%}"
    )
    (args.out / "timings.json").write_text(
        json.dumps({"sequential_s": sequential_s, "ray_s": parallel_s, "cpus": args.cpus, "artifacts": cells})
    )


if __name__ == "__main__":
    main()
