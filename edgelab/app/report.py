"""Rich tables for results, jobs, agents and training runs (CLI and demo share them)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from rich.console import Group
from rich.markup import escape
from rich.table import Table

from edgelab.domain import (
    AgentInfo,
    BenchmarkResult,
    Job,
    LatencyStats,
    MemoryReport,
    OperatorProfile,
    RepetitionSpread,
    TrainingRun,
)
from edgelab.metrics import FASTER, SLOWER, Ec57Figures, latency_verdict


def shown(value: str) -> str:
    """Text from agents, launch files or the store, safe to print: control characters (a terminal's
    escape sequences: clear screen, set title) appear as `\\x1b`-style escapes, and rich markup
    (`[jetson]`) is printed, not interpreted."""
    printable = "".join(
        ch if ch.isprintable() or ch in "\n\t" else ch.encode("unicode_escape").decode("ascii") for ch in value
    )
    return escape(printable)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _ci(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f"{low:.3f}-{high:.3f}"


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:,.1f}"


def memory_line(memory: MemoryReport | None) -> str:
    """What `jobs show` prints about memory, saying what each figure includes."""
    if memory is None:
        return "memory: not reported"
    return (
        f"memory: peak RSS above the process's {_mib(memory.baseline_rss_bytes)} MiB baseline (just before the build):"
        f" build {_mib(memory.load_peak_bytes)} MiB, inference {_mib(memory.inference_peak_bytes)} MiB"
        f" (first inference, warm-up and timed phases); model file {_mib(memory.model_file_bytes)} MiB;"
        f" RSS: heap, runtime arenas, mapped files, not GPU memory; {memory.method}"
    ) + "".join(
        f"\n  {shown(figure.source)}: "
        + (f"{_mib(figure.size_bytes)} MiB, " if figure.size_bytes is not None else "")
        + f"{shown(figure.what)} ({shown(figure.note)})"
        for figure in memory.accelerator
    )


def _spread(spread: RepetitionSpread | None) -> str:
    """Run-to-run variation of p50 across repetitions: how many, min-max, and sd relative to their mean."""
    if spread is None:
        return ""
    sd = f", sd {spread.sd_ms / spread.mean_ms:.1%}" if spread.mean_ms > 0 else ""
    return f"{len(spread.p50_ms)}x {spread.min_ms:.3f}-{spread.max_ms:.3f}{sd}"


def _timing(scope: str) -> str:
    """Short name of what a latency figure includes (the full text is in LatencyStats.scope)."""
    return "compute" if scope.startswith("compute-only") else "e2e"


def results_table(rows: Sequence[tuple[Job, BenchmarkResult | None]], title: str = "Results") -> Table:
    """One row per (job, batch size, timing scope); failures show their class and message, never zeros."""
    table = Table(title=title, title_justify="left")
    # Shown only when some result repeated its timed phases: p50 of each repetition, min-max and relative sd.
    repeated = any(result is not None and result.repetitions for _, result in rows)
    columns = (
        *("job", "agent", "backend", "prec", "batch", "timing", "samples", "p50 ms", "p50 95% CI", "CV"),
        *(("p50 across reps",) if repeated else ()),
        *("p90 ms", "p99 ms", "thru/s", "W", "mJ/inf", "load s", "peak MiB", "accuracy"),
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("job", "agent", "backend", "prec", "timing") else "right")
    blanks = len(columns) - 7
    for job, result in rows:
        head = [job.job_id, shown(job.agent_name or job.agent_id), shown(job.spec.backend), job.spec.precision.value]
        if result is None:
            table.add_row(*head, "", "", f"[yellow]{job.state.value}[/]", *[""] * blanks)
            continue
        if result.failure is not None:
            failure = f"[red]{result.failure.kind.value}[/]: {shown(result.failure.message)}"
            table.add_row(*head, "", "", failure, *[""] * blanks)
            continue
        accuracy = f"{result.accuracy.accuracy:.2%}" if result.accuracy else "n/a"
        power = {p.batch_size: p for p in result.power}
        spreads = {(r.batch_size, r.scope): r for r in result.repetitions}
        for i, lat in enumerate(result.latency):
            timing = _timing(lat.scope)
            watts = power.get(lat.batch_size) if timing == "e2e" else None
            table.add_row(
                *(head if i == 0 else [""] * 4),
                str(lat.batch_size),
                timing,
                str(lat.samples),
                _ms(lat.p50_ms),
                _ci(lat.p50_ci_low_ms, lat.p50_ci_high_ms),
                "" if lat.cv is None else f"{lat.cv:.1%}",
                *((_spread(spreads.get((lat.batch_size, lat.scope))),) if repeated else ()),
                _ms(lat.p90_ms),
                _ms(lat.p99_ms),
                f"{lat.throughput_per_s:,.0f}",
                f"{watts.mean_w:.2f}" if watts else "",
                f"{watts.energy_per_inference_mj:.3f}" if watts else "",
                f"{result.load_s:.3f}" if i == 0 else "",
                _mib(result.memory.inference_peak_bytes) if i == 0 and result.memory else "",
                accuracy if i == 0 else "",
            )
    return table


def comparison_table(
    baseline: tuple[Job, BenchmarkResult | None], candidate: tuple[Job, BenchmarkResult | None]
) -> Table:
    """Per (batch size, timing scope) both had: p50s with their 95 % intervals, the ratio, and the verdict
    (edgelab.metrics.latency_verdict: faster / slower only when the intervals do not overlap)."""
    (a_job, a_result), (b_job, b_result) = baseline, candidate
    table = Table(title=f"{b_job.job_id} against {a_job.job_id} (p50, 95% CIs)", title_justify="left")
    for column in (
        "batch",
        "timing",
        f"{a_job.job_id} p50 ms",
        "CI",
        f"{b_job.job_id} p50 ms",
        "CI",
        "ratio",
        "verdict",
    ):
        table.add_column(column, justify="left" if column in ("timing", "verdict") else "right")

    def by_key(result: BenchmarkResult | None) -> dict[tuple[int, str], LatencyStats]:
        return {} if result is None else {(lat.batch_size, _timing(lat.scope)): lat for lat in result.latency}

    a, b = by_key(a_result), by_key(b_result)
    for key in [k for k in a if k in b]:
        x, y = a[key], b[key]
        verdict = latency_verdict(x, y)
        color = {FASTER: "green", SLOWER: "red"}.get(verdict, "white")
        table.add_row(
            str(key[0]),
            key[1],
            _ms(x.p50_ms),
            _ci(x.p50_ci_low_ms, x.p50_ci_high_ms),
            _ms(y.p50_ms),
            _ci(y.p50_ci_low_ms, y.p50_ci_high_ms),
            f"{y.p50_ms / x.p50_ms:.3f}x" if x.p50_ms > 0 else "",
            f"[{color}]{verdict}[/]",
        )
    return table


PROFILE_ROWS = 10  # operators shown per profile by `jobs show` (results keep up to 20)


def profile_tables(result: BenchmarkResult, top: int = PROFILE_ROWS) -> list[Table]:
    """One table per batch size: the slowest operators, mean ms per inference and share of the profile."""
    tables = []
    for profile in result.profiles:
        table = Table(
            title=f"Top operators at batch {profile.batch_size} ({profile.source}, {profile.iterations} profiled"
            f" runs, {profile.operators} operators, {profile.total_ms:.4f} ms in all)",
            title_justify="left",
        )
        for column in ("operator", "type", "ms / inference", "%"):
            table.add_column(column, justify="left" if column in ("operator", "type") else "right")
        for op in profile.ops[:top]:
            table.add_row(shown(op.name), shown(op.op_type), f"{op.time_ms:.4f}", f"{op.percent:.1f}")
        tables.append(table)
    return tables


def profile_comparison_table(
    baseline: tuple[Job, BenchmarkResult | None], candidate: tuple[Job, BenchmarkResult | None]
) -> Table | None:
    """Per batch size both profiled, the operators (by name) both profiles kept: ms each and the ratio,
    slowest-grown first (which layers got slower, e.g. with INT8); None when no batch size was profiled twice.

    Operators only one side kept (renamed or fused differently by another build, or outside its top N) are
    counted, not compared; ratios are of profiled kernel times, with no confidence interval."""
    (a_job, a_result), (b_job, b_result) = baseline, candidate

    def by_batch(result: BenchmarkResult | None) -> dict[int, OperatorProfile]:
        return {} if result is None else {p.batch_size: p for p in result.profiles}

    a, b = by_batch(a_result), by_batch(b_result)
    batches = [size for size in a if size in b]
    if not batches:
        return None
    table = Table(title=f"{b_job.job_id} against {a_job.job_id}: operators by name", title_justify="left")
    for column in ("batch", "operator", f"{a_job.job_id} ms", f"{b_job.job_id} ms", "ratio"):
        table.add_column(column, justify="left" if column == "operator" else "right")
    for size in batches:
        x = {op.name: op for op in a[size].ops}
        y = {op.name: op for op in b[size].ops}
        both = [name for name in x if name in y]
        ratio = {name: y[name].time_ms / x[name].time_ms if x[name].time_ms > 0 else float("inf") for name in both}
        for name in sorted(both, key=lambda n: ratio[n], reverse=True):
            color = "red" if ratio[name] > 1.1 else "green" if ratio[name] < 1 / 1.1 else "white"
            table.add_row(
                str(size),
                shown(name),
                f"{x[name].time_ms:.4f}",
                f"{y[name].time_ms:.4f}",
                f"[{color}]{ratio[name]:.2f}x[/]",
            )
        total = b[size].total_ms / a[size].total_ms if a[size].total_ms > 0 else float("inf")
        only = len(set(x) ^ set(y))
        table.add_row(
            str(size),
            f"(all operators{f'; {only} kept by one side only' if only else ''})",
            f"{a[size].total_ms:.4f}",
            f"{b[size].total_ms:.4f}",
            f"{total:.2f}x",
        )
    return table


def accuracy_table(result: BenchmarkResult) -> Group:
    """Per-class precision/recall/F1 and the confusion matrix of one on-device run."""
    report = result.accuracy
    if report is None:
        return Group()
    per_class = Table(
        title=f"On-device accuracy {report.accuracy:.2%} on {report.samples} samples (macro F1 {report.macro_f1:.3f})",
        title_justify="left",
    )
    for column in ("class", "support", "precision (PPV)", "recall (Se)", "F1"):
        per_class.add_column(column, justify="right")
    for c in report.classes:
        per_class.add_row(shown(c.name), str(c.support), f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}")
    names = [shown(c.name) for c in report.classes]
    confusion = Table(title="Confusion matrix (rows: true, cols: predicted)", title_justify="left")
    confusion.add_column("")
    for name in names:
        confusion.add_column(name, justify="right")
    for name, row in zip(names, report.confusion_matrix(), strict=True):
        confusion.add_row(name, *map(str, row))
    return Group(per_class, confusion)


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}"


def ec57_table(
    rows: Sequence[tuple[str, Sequence[Ec57Figures]]],
    title: str,
    published: Sequence[tuple[str, dict[str, tuple[float, float]]]] = (),
) -> Table:
    """EC57 Se and +P per class (N, SVEB, VEB, F, Q), one row per run, then published rows as (label, {class: (Se, +P)}).

    A figure at or above every published row's is bold green; one that rounds to a published figure
    without equalling it gets a second decimal (99.19% beside 99.2%), so a miss never reads as a tie;
    "-" where a class has no beat (Se) or no prediction (+P), or a published row gives no figure.
    """
    names = [f.name for f in rows[0][1]] if rows else ["N", "SVEB", "VEB", "F", "Q"]
    table = Table(title=title, title_justify="left")
    table.add_column("run")
    for name in names:
        table.add_column(f"{name} Se", justify="right")
        table.add_column(f"{name} +P", justify="right")
    for label, figures in rows:
        cells: list[str] = []
        for f in figures:
            for i, value in enumerate((f.se, f.ppv)):
                bars = [ref[f.name][i] for _, ref in published if f.name in ref]
                beats = bool(bars) and not math.isnan(value) and all(value >= bar for bar in bars)
                rounded_tie = any(_percent(value) == _percent(bar) and value != bar for bar in bars)
                shown_value = f"{value:.2%}" if rounded_tie else _percent(value)
                cells.append(f"[bold green]{shown_value}[/]" if beats else shown_value)
        table.add_row(shown(label), *cells)
    for label, ref in published:
        table.add_row(shown(label), *(_percent(ref[name][i]) if name in ref else "-" for name in names for i in (0, 1)))
    return table


def jobs_table(jobs: Sequence[Job]) -> Table:
    table = Table(title="Jobs", title_justify="left")
    for column in ("job", "state", "name", "backend", "prec", "batches", "agent", "attempt", "updated"):
        table.add_column(column)
    for job in jobs:
        table.add_row(
            job.job_id,
            job.state.value,
            shown(job.spec.name),
            shown(job.spec.backend),
            job.spec.precision.value,
            ",".join(map(str, job.spec.batch_sizes)),
            shown(job.agent_name or job.agent_id),
            str(job.attempt),
            dt.datetime.fromtimestamp(job.updated_at).strftime("%Y-%m-%d %H:%M:%S"),
        )
    return table


def agents_table(agents: Sequence[AgentInfo]) -> Table:
    table = Table(title="Agents", title_justify="left")
    for column in ("agent", "name", "status", "device", "cores", "memory", "runtimes", "power", "job"):
        table.add_column(column)
    colors = {"online": "green", "stale": "yellow", "offline": "red"}
    for a in agents:
        caps = a.capabilities
        runtimes = ", ".join(
            f"{shown(r.name)} {shown(r.version)}" if r.available else f"[dim]{shown(r.name)}: {shown(r.reason)}[/]"
            for r in caps.runtimes
        )
        table.add_row(
            a.agent_id,
            shown(a.name),
            f"[{colors.get(a.status, 'white')}]{a.status}[/]",
            shown(caps.device_model),
            str(caps.cpu_cores),
            f"{caps.memory_bytes / 2**30:.1f} GiB",
            runtimes,
            shown(", ".join(caps.power_meters)) or "[dim]none[/]",
            a.current_job_id,
        )
    return table


def training_table(runs: Sequence[TrainingRun], title: str = "Training runs") -> Table:
    """One row per run: host-side accuracy, macro F1 and F1 per class on its test set, or why it failed."""
    table = Table(title=title, title_justify="left")
    with_ids = any(run.run_id for run in runs)  # runs trained without a coordinator have none
    columns = ("run",) * with_ids + ("pipeline", "seed", "epochs", "split", "state", "accuracy", "macro F1")
    for column in (*columns, "F1 per class"):
        table.add_column(column, justify="right" if column in ("seed", "epochs", "accuracy", "macro F1") else "left")
    for run in runs:
        head = [run.run_id] * with_ids + [shown(run.pipeline), str(run.config.seed), str(run.config.epochs)]
        if run.summary is None:
            reason = f"[red]{shown(run.error)}[/]" if run.error else ""
            table.add_row(*head, run.config.split, run.state.value, "", "", reason)
            continue
        report = run.summary.evaluation
        f1 = " ".join(f"{c.name} {c.f1:.2f}" if c.support else f"{c.name} n/a" for c in report.classes)
        split = run.summary.split if run.summary.split == run.config.split else f"{run.summary.split} (fell back)"
        table.add_row(*head, split, run.state.value, f"{report.accuracy:.2%}", f"{report.macro_f1:.3f}", f1)
    return table
