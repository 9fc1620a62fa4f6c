"""Patient cross-validation of the beat model over DS1: the experiments that chose pipelines.beats_1d's
MEMBERS and LOGIT_OFFSETS, reproducible. DS2 is never read.

Per seed, each of the five DS1_FOLDS is predicted by the shipped ensemble (beats_1d.build_model, trained
as the pipeline trains it) fitted on the other folds' patients. Each member's log-probabilities are stored
(`--out DIR`, one npz per seed, with the folds that made them), so logit offsets are searched without
training again. Then, per group of seeds (`--group 3`: seeds 0-2, 3-5, ...) with their predictions pooled,
it prints the EC57 gross figures at the shipped offsets and the grid's best offsets by shortfall below
de Chazal 2004 (the sum over N, SVEB and VEB, Se and +P, of max(0, published - ours), in points), the
offsets best for all groups together, and the nested check of that search: each fold decided with the
offsets best on the other four, the held-out folds pooled, which is what the search is worth for patients
it did not see.
Groups, not single seeds: one seed's verdict moves with which way a borderline patient falls.

A candidate is judged against the shipped model's stored predictions (`--against DIR`, same folds and
seeds) by the rule declared before a candidate's run: adopted only if its shortfall at its best offsets and
its nested shortfall are both lower and none of the six figures at its best offsets falls more than
TOLERANCE points below the baseline's at its own (the summed shortfall alone once let N Se fall 4.6 points
for SVEB Se). What it has judged, with each rule and verdict: benchmarks/beats_cv.md.

    nice -n 19 .venv/bin/python -m benchmarks.beats_cv --seeds 0 1 2 3 4 5 --out runs/beats-cv   # 5-8 min a seed
    .venv/bin/python -m benchmarks.beats_cv --summarize runs/beats-cv                          # 1-2 min
    .venv/bin/python -m benchmarks.beats_cv --summarize runs/candidate --against runs/beats-cv  # 3-4 min
    .venv/bin/python -m benchmarks.beats_cv --summarize runs/beats-cv --join-seeds 2 --against runs/beats-cv
        # twice MEMBERS, from the stored seeds' members (each joined ensemble named by its first seed)
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from benchmarks.pipelines_accuracy import DEFAULT_MITDB
from edgelab.metrics import DE_CHAZAL_2004, accuracy_report, ec57_figures
from pipelines import beats_1d, mitdb
from pipelines.base import TrainConfig
from pipelines.harness import PREDICT_BATCH, Inputs, fit
from pipelines.models import ensemble_members

GRID: dict[str, NDArray[np.float64]] = {
    "S": np.arange(-3.0, 2.01, 0.5),
    "V": np.arange(-2.0, 2.01, 0.5),
    "F": np.arange(-3.0, 3.01, 0.5),
}
"""Logit offsets searched per class (the others stay 0): 11 x 9 x 13 combinations."""

TOLERANCE = 0.5
"""Points any of the six figures may fall against the baseline before a candidate is rejected (--against):
above the 0.2 that the model before synthetic fusion beats moved between two runs of seeds 0-2."""


@dataclass(frozen=True)
class OutOfFold:
    """Each DS1 beat's prediction by models that never saw its patient: one seed's cross-validation."""

    log_probs: NDArray[np.float32]
    """(beats, members, classes): each member's log-softmax, before any logit offset."""
    y: NDArray[np.int64]
    record: NDArray[np.str_]
    class_names: tuple[str, ...]
    seed: int
    folds: tuple[tuple[str, ...], ...] | None = None
    """The patient folds that made the predictions (None in files stored before they were recorded)."""

    @cached_property
    def probs(self) -> NDArray[np.float64]:
        """Each member's softmax (what decide takes)."""
        return np.exp(self.log_probs.astype(np.float64))

    def save(self, path: Path) -> None:
        folds = [",".join(f) for f in self.folds] if self.folds is not None else []
        np.savez_compressed(
            path,
            log_probs=self.log_probs,
            y=self.y,
            record=self.record,
            class_names=self.class_names,
            seed=self.seed,
            folds=np.asarray(folds, dtype=np.str_),
        )

    @classmethod
    def load(cls, path: Path) -> OutOfFold:
        with np.load(path) as f:
            stored = [str(fold).split(",") for fold in f["folds"]] if "folds" in f.files else []
            return cls(
                log_probs=f["log_probs"],
                y=f["y"],
                record=f["record"],
                class_names=tuple(str(c) for c in f["class_names"]),
                seed=int(f["seed"]),
                folds=tuple(tuple(fold) for fold in stored) or None,
            )


def cross_validate(
    dataset: mitdb.BeatDataset,
    folds: Sequence[Sequence[str]],
    config: TrainConfig,
) -> OutOfFold:
    """Train the shipped ensemble once per fold on the other folds' records (capped at config.max_train_beats,
    stratified), and predict the fold's beats."""
    log_probs = np.zeros((len(dataset), beats_1d.MEMBERS, len(dataset.class_names)), np.float32)
    for k, fold in enumerate(folds):
        held_out = np.isin(dataset.record, list(fold))
        train = beats_1d.training_beats(dataset.subset(~held_out), config, [])
        model, fitted = beats_1d.build_model(train, config.seed)
        seconds = fit(
            model,
            Inputs(train.x, train.y),
            dataset.class_names,
            config,
            [],
            learning_rate=beats_1d.LEARNING_RATE,
            fitted=fitted,
        )
        x = dataset.x[held_out]
        for m, member in enumerate(ensemble_members(model)):
            probs = member.predict(x, batch_size=PREDICT_BATCH, verbose=0)
            log_probs[held_out, m] = np.log(np.clip(probs, 1e-12, None))
        print(f"  seed {config.seed} fold {k} ({', '.join(fold)}): {len(train)} training beats, {seconds:.0f} s")
    return OutOfFold(
        log_probs, dataset.y, dataset.record, dataset.class_names, config.seed, tuple(tuple(f) for f in folds)
    )


def decide(probs: NDArray[np.float64], offsets: NDArray[np.float64]) -> NDArray[np.int64]:
    """The ensemble's class per beat from its members' softmax `probs` (beats, members, classes) with `offsets`
    (one per class) added to every member's logits, as models.add_logit_offsets does in the exported model:
    the mean of the members' softmax, then argmax. A softmax with offsets is the softmax times exp(offsets),
    renormalised, so the grid's combinations cost no exponentials per beat (about 1.4x faster than
    exponentiating log-probabilities plus offsets, and in float64 the same decisions on the six stored seeds)."""
    weighted = probs * np.exp(offsets)
    weighted /= weighted.sum(axis=2, keepdims=True)
    return np.asarray(np.argmax(weighted.sum(axis=1), axis=1), dtype=np.int64)


def figures(
    y: NDArray[np.int64], predicted: NDArray[np.int64], class_names: Sequence[str]
) -> dict[str, tuple[float, float]]:
    """EC57 gross (Se, +P) of N, SVEB and VEB."""
    return matrix_figures(accuracy_report(y, predicted, class_names).confusion_matrix(), class_names)


def matrix_figures(
    matrix: Sequence[Sequence[int]] | NDArray[np.int64], class_names: Sequence[str]
) -> dict[str, tuple[float, float]]:
    """EC57 gross (Se, +P) of N, SVEB and VEB from a confusion matrix (rows: reference)."""
    return {f.name: (f.se, f.ppv) for f in ec57_figures(matrix, class_names) if f.name in DE_CHAZAL_2004}


def margins(measured: dict[str, tuple[float, float]]) -> list[tuple[float, str]]:
    """Each of the six figures' points above (negative: below) de Chazal 2004, with its name ("SVEB +P"); a
    class never called counts as +P 0."""
    return [
        (100 * ((0.0 if np.isnan(ours) else ours) - published), f"{name} {label}")
        for name, pair in DE_CHAZAL_2004.items()
        for label, published, ours in zip(("Se", "+P"), pair, measured[name], strict=True)
    ]


def shortfall(measured: dict[str, tuple[float, float]]) -> float:
    """Points below de Chazal 2004, summed over N, SVEB and VEB Se and +P (0 where all six are met)."""
    return sum(max(0.0, -points) for points, _ in margins(measured))


def worst_margin(measured: dict[str, tuple[float, float]]) -> tuple[float, str]:
    """The figure furthest below (or nearest above) de Chazal 2004, in points, and its name: every one of the
    six is met exactly when the margin is >= 0."""
    return min(margins(measured))


def offsets_vector(chosen: dict[str, float], class_names: Sequence[str]) -> NDArray[np.float64]:
    return np.array([chosen.get(c, 0.0) for c in class_names])


def pooled(runs: Sequence[OutOfFold]) -> OutOfFold:
    """Several seeds' out-of-fold predictions as one set (each beat once per seed)."""
    return OutOfFold(
        np.concatenate([r.log_probs for r in runs]),
        np.concatenate([r.y for r in runs]),
        np.concatenate([r.record for r in runs]),
        runs[0].class_names,
        runs[0].seed,
        runs[0].folds,
    )


def joined(runs: Sequence[OutOfFold], k: int) -> list[OutOfFold]:
    """Each `k` consecutive seeds' members as one ensemble of k x MEMBERS CNNs: what a larger MEMBERS predicts
    (its members train one after the other on the same beats with the same per-member augmentation seeds,
    seed * MEMBERS + m; only their initial weights differ), measured without training."""
    if k < 1 or len(runs) % k:
        raise ValueError(f"{len(runs)} seeds do not split into ensembles of {k}")
    out = []
    for i in range(0, len(runs), k):
        group = runs[i : i + k]
        if any(r.folds != group[0].folds or not np.array_equal(r.y, group[0].y) for r in group):
            raise ValueError(f"seeds {[r.seed for r in group]} were not made on the same folds and beats")
        members = np.concatenate([r.log_probs for r in group], axis=1)
        out.append(OutOfFold(members, group[0].y, group[0].record, group[0].class_names, group[0].seed, group[0].folds))
    return out


def grid() -> list[dict[str, float]]:
    """Every GRID offset combination, in GRID order."""
    return [{c: float(v) for c, v in zip(GRID, values, strict=True)} for values in itertools.product(*GRID.values())]


def fold_matrices(
    run: OutOfFold, folds: Sequence[Sequence[str]], combos: Sequence[dict[str, float]]
) -> NDArray[np.int64]:
    """(combos, folds, classes, classes): each offset combination's confusion matrix on each fold's beats."""
    k = len(run.class_names)
    fold_of = np.full(len(run.y), -1)
    for i, fold in enumerate(folds):
        fold_of[np.isin(run.record, list(fold))] = i
    if (fold_of < 0).any():
        raise ValueError(f"records in no fold: {sorted({str(r) for r in run.record[fold_of < 0]})}")
    cells = (fold_of * k + run.y) * k
    return np.stack(
        [
            np.bincount(
                cells + decide(run.probs, offsets_vector(c, run.class_names)), minlength=len(folds) * k * k
            ).reshape(len(folds), k, k)
            for c in combos
        ]
    )


def search(
    combos: Sequence[dict[str, float]], matrices: Sequence[NDArray[np.int64]], class_names: Sequence[str]
) -> list[tuple[dict[str, float], list[float]]]:
    """Every combination with each group's shortfall (its fold_matrices summed over folds), best mean first."""
    totals = [m.sum(axis=1) for m in matrices]
    scored = [(c, [shortfall(matrix_figures(t[i], class_names)) for t in totals]) for i, c in enumerate(combos)]
    return sorted(scored, key=lambda item: float(np.mean(item[1])))


def nested(
    combos: Sequence[dict[str, float]], matrices: NDArray[np.int64], class_names: Sequence[str]
) -> tuple[dict[str, tuple[float, float]], list[dict[str, float]]]:
    """The offset search judged on patients it did not see: each fold decided with the offsets best (by
    shortfall) on the other folds, the held-out folds pooled. Returns the figures and each fold's offsets."""
    total = matrices.sum(axis=1)
    held_out = np.zeros(matrices.shape[2:], dtype=np.int64)
    chosen = []
    for f in range(matrices.shape[1]):
        best = int(np.argmin([shortfall(matrix_figures(m, class_names)) for m in total - matrices[:, f]]))
        held_out += matrices[best, f]
        chosen.append(combos[best])
    return matrix_figures(held_out, class_names), chosen


@dataclass(frozen=True)
class Searched:
    """One set of predictions' offset search: its best offsets, their figures, and the nested figures."""

    offsets: dict[str, float]
    measured: dict[str, tuple[float, float]]
    nested: dict[str, tuple[float, float]]

    @classmethod
    def of(cls, run: OutOfFold, folds: Sequence[Sequence[str]]) -> Searched:
        return cls.of_matrices(fold_matrices(run, folds, grid()), run.class_names)

    @classmethod
    def of_matrices(cls, matrices: NDArray[np.int64], class_names: Sequence[str]) -> Searched:
        """From the grid's fold_matrices (what report returns for the runs it printed): one per grid() combination,
        in grid() order; ValueError for any other count."""
        combos = grid()
        if len(matrices) != len(combos):
            raise ValueError(f"{len(matrices)} offset combinations' fold matrices; the grid has {len(combos)}")
        best, _ = search(combos, [matrices], class_names)[0]
        measured = matrix_figures(matrices[combos.index(best)].sum(axis=0), class_names)
        return cls(best, measured, nested(combos, matrices, class_names)[0])


def judge(candidate: Searched, baseline: Searched, tolerance: float = TOLERANCE) -> list[str]:
    """Why `candidate` is not adopted over `baseline` (empty: adopted): its shortfall at its best offsets
    and its nested shortfall must both be lower, and none of the six figures more than `tolerance` points
    below the baseline's."""
    reasons = []
    for title, ours, theirs in (
        ("shortfall", candidate.measured, baseline.measured),
        ("nested shortfall", candidate.nested, baseline.nested),
    ):
        if shortfall(ours) >= shortfall(theirs):
            reasons.append(f"{title} {shortfall(ours):.1f}, not below {shortfall(theirs):.1f}")
    for name in DE_CHAZAL_2004:
        for label, ours_value, theirs_value in zip(
            ("Se", "+P"), candidate.measured[name], baseline.measured[name], strict=True
        ):
            fall = round(100 * (theirs_value - ours_value), 6)  # exactly `tolerance` points is within it
            if not fall <= tolerance:  # a class never called (nan) falls too
                reasons.append(f"{name} {label} {100 * ours_value:.1f}, {fall:.1f} below {100 * theirs_value:.1f}")
    return reasons


def compare(candidate: Searched, baseline: Searched) -> None:
    """Print both searches and judge's verdict."""
    searched = {"baseline": baseline, "candidate": candidate}
    print(f"against the baseline (rule: both shortfalls lower, none of the six more than {TOLERANCE} lower):")
    for label, found in searched.items():
        print(
            f"  {label}: best offsets {shown(found.offsets)}: {describe(found.measured)}; "
            f"shortfall {shortfall(found.measured):.1f}, nested {shortfall(found.nested):.1f}"
        )
    reasons = judge(searched["candidate"], searched["baseline"])
    print("  verdict: " + ("adopt" if not reasons else "reject (" + "; ".join(reasons) + ")"))


def describe(measured: dict[str, tuple[float, float]]) -> str:
    return ", ".join(f"{name} {100 * se:.1f}/{100 * ppv:.1f}" for name, (se, ppv) in measured.items())


def shown(chosen: dict[str, float]) -> str:
    return " ".join(f"{c} {v:+.1f}" for c, v in chosen.items() if v) or "none"


def report(runs: Sequence[OutOfFold], group: int, folds: Sequence[Sequence[str]], top: int = 5) -> NDArray[np.int64]:
    """Print per-group figures at the shipped offsets, each group's best, the best for all groups, and the
    nested check of the search (offsets chosen on the other folds). Returns the grid's fold_matrices of all
    runs pooled (the groups' summed), so a comparison need not decide every beat again."""
    runs = sorted(runs, key=lambda r: r.seed)
    groups = [runs[i : i + group] for i in range(0, len(runs), group)]
    sets = [pooled(g) for g in groups]
    labels = ["seeds " + ",".join(str(r.seed) for r in g) for g in groups]
    names = sets[0].class_names
    shipped = offsets_vector(beats_1d.LOGIT_OFFSETS, names)
    print(f"EC57 gross on DS1 out-of-fold (%, Se/+P); de Chazal 2004: {describe(DE_CHAZAL_2004)}")
    for label, s in zip(labels, sets, strict=True):
        for title, vector in (
            ("no offsets", np.zeros(len(names))),
            ("shipped " + shown(beats_1d.LOGIT_OFFSETS), shipped),
        ):
            measured = figures(s.y, decide(s.probs, vector), names)
            print(f"  {label}, {title}: {describe(measured)}; shortfall {shortfall(measured):.1f}")
    combos = grid()
    matrices = [fold_matrices(s, folds, combos) for s in sets]
    ranked = search(combos, matrices, names)
    for i, label in enumerate(labels):
        best, scores = min(ranked, key=lambda item: item[1][i])
        print(f"  {label}: best offsets {shown(best)}, shortfall {scores[i]:.1f}")
    print(f"best offsets for all {len(sets)} group(s) together (mean shortfall; per group):")
    for chosen, scores in ranked[:top]:
        print(f"  {shown(chosen):>16}: {np.mean(scores):5.1f}; " + ", ".join(f"{s:.1f}" for s in scores))
    everything: NDArray[np.int64] = np.sum(matrices, axis=0)
    scored = [matrix_figures(t, names) for t in everything.sum(axis=1)]
    closest = max(  # ties to the smallest offsets
        range(len(combos)), key=lambda i: (worst_margin(scored[i])[0], -sum(map(abs, combos[i].values())))
    )
    margin, figure = worst_margin(scored[closest])
    print(
        f"closest to all six (all groups pooled, the largest worst margin): {shown(combos[closest])}: "
        f"{describe(scored[closest])}; worst {figure} {margin:+.1f}"
        + (" (no offsets on the grid meet all six)" if margin < 0 else "")
    )
    print("nested: each fold decided with the offsets best on the other folds, held-out folds pooled:")
    for label, m in zip(labels, matrices, strict=True):
        measured, per_fold = nested(combos, m, names)
        print(
            f"  {label}: {describe(measured)}; shortfall {shortfall(measured):.1f}; offsets per fold: "
            + ", ".join(shown(c) for c in per_fold)
        )
    return everything


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_MITDB)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    budget = beats_1d.BeatCnn1dPipeline.budget  # the shipped model's
    parser.add_argument("--epochs", type=int, default=budget.epochs)
    parser.add_argument("--batch-size", type=int, default=budget.batch_size)
    parser.add_argument("--max-train", type=int, default=None, help="cap on each fold's training beats (quick runs)")
    parser.add_argument(
        "--folds",
        nargs="+",
        default=None,
        help="comma-separated records per fold (default: beats_1d.DS1_FOLDS; with --summarize, the folds the "
        "stored run recorded, or DS1_FOLDS for files stored before folds were recorded)",
    )
    parser.add_argument("--streaming", action="store_true", help="causal preprocessing (mitdb-beats-1d-streaming)")
    parser.add_argument("--group", type=int, default=3, help="seeds pooled per group")
    parser.add_argument("--out", type=Path, default=Path("runs/beats-cv"), help="folder of the oof_s<seed>.npz files")
    parser.add_argument("--summarize", type=Path, default=None, help="report stored predictions in this folder")
    parser.add_argument(
        "--join-seeds",
        type=int,
        default=1,
        help="with --summarize: judge each this many consecutive stored seeds' members as one larger ensemble",
    )
    parser.add_argument(
        "--against",
        type=Path,
        default=None,
        help="judge these predictions (all seeds pooled) against the baseline's stored in this folder (same seeds)",
    )
    args = parser.parse_args(argv)
    if args.join_seeds != 1 and args.summarize is None:
        parser.error("--join-seeds needs --summarize (it joins stored seeds)")

    given = [tuple(f.split(",")) for f in args.folds] if args.folds is not None else None
    baseline = stored_runs(args.against) if args.against is not None else None
    if baseline == []:
        print(f"no oof_s<seed>.npz in {args.against}", file=sys.stderr)
        return 2
    runs: list[OutOfFold] = []
    folds: Sequence[Sequence[str]] = given or beats_1d.DS1_FOLDS
    seeds: Sequence[int] = args.seeds
    if args.summarize is not None:
        runs = stored_runs(args.summarize)
        if not runs:
            print(f"no oof_s<seed>.npz in {args.summarize}", file=sys.stderr)
            return 2
        recorded = {r.folds for r in runs if r.folds is not None}
        recorded |= {tuple(given)} if given is not None else set()
        if len(recorded) > 1:
            print(f"the stored runs and --folds name different folds: {sorted(recorded)}", file=sys.stderr)
            return 2
        folds = recorded.pop() if recorded else beats_1d.DS1_FOLDS
        seeds = [r.seed for r in runs]
        if args.join_seeds != 1:
            try:
                runs = joined(runs, args.join_seeds)
            except ValueError as exc:
                print(f"--join-seeds: {exc}", file=sys.stderr)
                return 2
            size = runs[0].log_probs.shape[1]
            print(
                f"each {args.join_seeds} consecutive seeds' members joined: {size}-CNN ensembles, named by their first seed"
            )
    problem = mismatch(baseline, seeds, folds) if baseline else ""
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if args.summarize is None:
        runs = cross_validate_seeds(args, folds)
    matrices = report(runs, args.group, folds)
    if baseline:
        compare(Searched.of_matrices(matrices, runs[0].class_names), Searched.of(pooled(baseline), folds))
    return 0


def cross_validate_seeds(args: argparse.Namespace, folds: Sequence[Sequence[str]]) -> list[OutOfFold]:
    """cross_validate for each of args.seeds, each seed's predictions stored in args.out as it finishes."""
    records = [r for fold in folds for r in fold]
    if len(set(records)) != len(records) or not set(records) <= set(mitdb.DS1):
        raise SystemExit(f"--folds: each DS1 record at most once, no other record; got {records}")
    started = time.perf_counter()
    dataset = mitdb.load_beats(args.data_dir, records, rr=True, template=True, streaming=args.streaming)
    print(f"{len(dataset)} DS1 beats of {len(records)} records loaded in {time.perf_counter() - started:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in sorted(args.seeds):
        config = TrainConfig(
            data_dir=args.data_dir,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=seed,
            max_train_beats=args.max_train,
        )
        run = cross_validate(dataset, folds, config)
        run.save(args.out / f"oof_s{seed}.npz")
        runs.append(run)
    return runs


def stored_runs(folder: Path) -> list[OutOfFold]:
    """The out-of-fold predictions stored in `folder` (oof_s<seed>.npz), by seed."""
    return sorted((OutOfFold.load(p) for p in folder.glob("oof_s*.npz")), key=lambda r: r.seed)


def mismatch(baseline: Sequence[OutOfFold], seeds: Sequence[int], folds: Sequence[Sequence[str]]) -> str:
    """Why `baseline` cannot judge runs of these seeds and folds ("" when it can)."""
    if sorted(r.seed for r in baseline) != sorted(seeds):
        return f"the baseline holds seeds {[r.seed for r in baseline]}, these runs {sorted(seeds)}"
    other = {r.folds for r in baseline if r.folds is not None} - {tuple(tuple(f) for f in folds)}
    return f"the baseline was made on other folds: {sorted(other)}" if other else ""


if __name__ == "__main__":
    sys.exit(main())
