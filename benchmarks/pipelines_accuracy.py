"""Accuracy of the training pipelines on full MIT-BIH, random and inter-patient splits side by side,
then the CWT filter bank against per-signal pywt.cwt (same run, same windows).

Trains every chosen pipeline on every chosen split (in this process, one after another), prints
accuracy, macro F1 and per-class recall/precision next to the published figure (DESIGN.md §4),
and appends one JSON line per run to --out so a long run can be stopped and its finished rows
kept. `NAME:EPOCHS` sets the epochs of one pipeline.

    nice -n 10 .venv/bin/python -m benchmarks.pipelines_accuracy --pipelines mitdb-af-bilstm:10 --cwt-signals 500
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.cwt_filterbank import HEADER, compare, row, windows
from pipelines.base import SPLITS, TrainConfig, TrainOutput
from pipelines.features import SCALOGRAM_FS, SCALOGRAM_WAVELET, scalogram_scales
from pipelines.registry import PIPELINES, get_pipeline

DEFAULT_MITDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "mitdb"

DEFAULT_PIPELINES = (
    "mitdb-beats-1d:5",
    "mitdb-beats-image:5",
    "mitdb-beats-image-paper:5",
    "mitdb-af-bilstm:20",
    "mitdb-af-squeezenet:10",
    "rhythm-efficientnetv2-1d-mitdb:5",
)
"""What a full run trains, with epochs that finished on two CPU cores in an afternoon."""

PUBLISHED: dict[str, str] = {
    "mitdb-beats-image-paper": "EfficientNetB0 95.9% (random split, N/V/F/'/'/f/other)",
    "mitdb-beats-image-efficientnetb0-paper": "95.9% (random split, N/V/F/'/'/f/other)",
    "mitdb-af-bilstm": "92.8% N / 91.3% AF recall (PhysioNet 2017, MATLAB example)",
    "mitdb-af-squeezenet": "89.5% N / 89.2% AF recall (scalograms, MATLAB example)",
    "rhythm-efficientnetv2-1d": "94.4% (HeartKit, LSAD 4 classes)",
    "rhythm-efficientnetv2-1d-mitdb": "94.4% (HeartKit on LSAD; no MIT-BIH figure)",
}


def parse_pipeline(spec: str, default_epochs: int) -> tuple[str, int]:
    """ "name" or "name:epochs" -> (name, epochs); SystemExit naming the known pipelines otherwise."""
    name, _, epochs = spec.partition(":")
    try:
        get_pipeline(name)
    except KeyError as exc:
        raise SystemExit(exc.args[0]) from None
    return name, int(epochs) if epochs else default_epochs


def describe(result: TrainOutput) -> str:
    """Per-class "name R/P" (recall/precision), classes absent from the test set left out."""
    return " ".join(f"{c.name}={c.recall:.3f}/{c.precision:.3f}" for c in result.evaluation.classes if c.support > 0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_MITDB)
    parser.add_argument(
        "--pipelines", nargs="*", default=list(DEFAULT_PIPELINES), help="NAME or NAME:EPOCHS; none: CWT only"
    )
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--epochs", type=int, default=10, help="for pipelines given without :EPOCHS")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--records", nargs="+", default=None, help="a subset of records (default: all)")
    parser.add_argument("--max-train", type=int, default=None, help="cap on training examples (stratified)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--unweighted", action="store_true", help="no class weights (as the papers' random-split figures)"
    )
    parser.add_argument("--cwt-signals", type=int, default=500, help="10 s windows for the CWT comparison; 0 skips")
    parser.add_argument("--out", type=Path, default=Path("pipelines_accuracy.jsonl"))
    args = parser.parse_args(argv)
    chosen = [parse_pipeline(spec, args.epochs) for spec in args.pipelines]

    print(f"class weights: {'off (unweighted loss)' if args.unweighted else 'balanced, capped'}")
    print(f"{'pipeline':<40}{'split':<15}{'ep':>3}{'acc':>7}{'mF1':>7}{'train':>8}{'test':>7}{'fit s':>7}  ", end="")
    print("recall/precision per class | published")
    for name, epochs in chosen:
        for split in args.splits:
            config = TrainConfig(
                data_dir=args.data,
                split=split,  # type: ignore[arg-type]
                epochs=epochs,
                batch_size=args.batch_size,
                seed=args.seed,
                max_train_beats=args.max_train,
                records=tuple(args.records) if args.records else None,
                class_weights=not args.unweighted,
            )
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                result = PIPELINES[name].run(config, Path(tmp))
            print(
                f"{name:<40}{result.split:<15}{epochs:>3}{result.host_accuracy:>7.3f}{result.evaluation.macro_f1:>7.3f}"
                f"{result.train_beats:>8}{result.test_beats:>7}{result.train_seconds:>7.0f}  "
                f"{describe(result)} | {PUBLISHED.get(name, '-')}",
                flush=True,
            )
            extra = {"wall_seconds": time.perf_counter() - started, "class_weights": config.class_weights}
            with args.out.open("a") as f:
                f.write(json.dumps(result.as_dict() | extra, default=str) + "\n")

    if args.cwt_signals:
        # The scalogram pipeline's own wavelet and scales, on windows as long as its input (10 s at 120 Hz).
        x, source = windows(args.data, args.cwt_signals, 10 * SCALOGRAM_FS)  # the scalogram input length
        print(f"\nCWT of {len(x)} windows of {x.shape[-1]} samples ({source}), the scalogram's scales:")
        print(HEADER)
        print(row(compare(x, np.asarray(scalogram_scales(SCALOGRAM_FS)), SCALOGRAM_WAVELET)))


if __name__ == "__main__":
    main()
