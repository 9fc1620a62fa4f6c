"""Accuracy of each training pipeline on full MIT-BIH, random and inter-patient splits side by side.

Trains every chosen pipeline on every chosen split (in this process, one after another), prints
accuracy and per-class recall next to the published figure (DESIGN.md §4), and appends one JSON
line per run to --out so a long run can be stopped and its finished rows kept.

    nice -n 10 .venv/bin/python benchmarks/pipelines_accuracy.py --pipelines mitdb-af-bilstm --epochs 10
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from pipelines.base import SPLITS, TrainConfig
from pipelines.registry import PIPELINES

DEFAULT_MITDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "mitdb"

PUBLISHED: dict[str, str] = {
    "mitdb-beats-image": "EfficientNetB0 95.9% beat accuracy (random split, N/V/F/'/'/f/other)",
    "mitdb-beats-image-efficientnetb0": "95.9% beat accuracy (random split, N/V/F/'/'/f/other)",
    "mitdb-af-bilstm": "92.8% N / 91.3% AF recall (PhysioNet 2017, MATLAB example)",
    "mitdb-af-squeezenet": "89.5% N / 89.2% AF recall (scalograms, MATLAB example)",
    "rhythm-efficientnetv2-1d": "94.4% rhythm accuracy (HeartKit, LSAD 4 classes)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_MITDB)
    parser.add_argument("--pipelines", nargs="+", default=sorted(n for n in PIPELINES if n.startswith("mitdb-")))
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-train", type=int, default=None, help="cap on training examples (stratified)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("pipelines_accuracy.jsonl"))
    args = parser.parse_args()

    print(f"{'pipeline':<34}{'split':<15}{'acc':>7}{'train':>8}{'test':>8}{'fit s':>8}  per-class recall | published")
    for name in args.pipelines:
        for split in args.splits:
            config = TrainConfig(
                data_dir=args.data,
                split=split,  # type: ignore[arg-type]
                epochs=args.epochs,
                batch_size=args.batch_size,
                seed=args.seed,
                max_train_beats=args.max_train,
            )
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                result = PIPELINES[name].run(config, Path(tmp))
            recall = " ".join(f"{c}={r:.3f}" for c, r in result.per_class_recall.items())
            print(
                f"{name:<34}{result.split:<15}{result.host_accuracy:>7.3f}{result.train_beats:>8}"
                f"{result.test_beats:>8}{result.train_seconds:>8.0f}  {recall} | {PUBLISHED.get(name, '-')}",
                flush=True,
            )
            row = result.as_dict() | {"epochs": args.epochs, "wall_seconds": time.perf_counter() - started}
            with args.out.open("a") as f:
                f.write(json.dumps(row, default=str) + "\n")


if __name__ == "__main__":
    main()
