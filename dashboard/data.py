"""Read model: results-store rows and coordinator replies turned into pandas DataFrames.

No Streamlit here, so every figure the pages show is computed by plain, tested functions.
Numeric frames keep missing values as NaN (never 0: a failed run has no throughput); the
`display_*` functions turn them into the words the tables show ("not measured", "no baseline").
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from coordinator.store import StoredResult
from edgelab.constants import BACKEND_FORMATS
from edgelab.domain import (
    AccuracyReport,
    AgentInfo,
    ArtifactRef,
    BenchmarkResult,
    Job,
    LateResult,
    Precision,
    TrainingRun,
)
from edgelab.metrics import (
    DE_CHAZAL_2004,
    collapse_warning,
    ec57_figures,
    has_aami_classes,
)

# Backends the agent ships (agent/backends); agents may report more, which the pages add.
KNOWN_BACKENDS = ("onnxruntime", "tflite", "tensorflow", "tensorrt")
BASELINE_BACKEND = "tensorflow"
BASELINE_PRECISION = Precision.FP32.value
END_TO_END = "end-to-end"
COMPUTE_ONLY = "compute-only"
MITDB_PREFIX = "mitdb"
# A test set smaller than this says little about a beat classifier: the page warns.
SMALL_TEST_SET = 500
# Quality metrics the cards and the Pareto front can use; per-class Se columns are added as "se:<class>".
QUALITY_LABELS = {"macro_f1": "macro F1", "accuracy": "accuracy"}
SE_PREFIX = "se:"
# A run is flagged unstable when any of these holds (trtexec warns likewise when throughput is unstable):
UNSTABLE_CV = 0.10  # std / mean above 10 %
MEAN_OVER_P50 = 1.5  # mean above 1.5 x p50: a tail of slow iterations drags the mean
THROUGHPUT_SHORTFALL = 0.5  # throughput below half of batch x 1000 / p50 ms: time lost between iterations
# Budgets the leaderboard can hold runs to: column -> label.
BUDGETS = {
    "p50_ms": "p50 latency (ms)",
    "energy_per_inference_mj": "energy per inference (mJ)",
    "model_size_kib": "model size (KiB)",
}

RESULT_COLUMNS = [
    "job_id",
    "name",
    "matrix",
    "split",
    "pipeline",
    "model",
    "model_sha256",
    "model_size_bytes",
    "compression",
    "quantization",
    "sparsity",
    "flops",
    "agent",
    "agent_id",
    "host",
    "shares_host_with",
    "device_model",
    "device",
    "run",
    "backend",
    "backend_version",
    "precision",
    "config",
    "batch_size",
    "scope_kind",
    "scope",
    "samples",
    "mean_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "min_ms",
    "max_ms",
    "std_ms",
    "cv",
    "ci_level",
    "p50_ci_low_ms",
    "p50_ci_high_ms",
    "stability",
    "throughput_per_s",
    "first_inference_ms",
    "load_s",
    "accuracy",
    "macro_f1",
    "test_samples",
    "absent_classes",
    "collapsed",
    "power_meter",
    "power_mean_w",
    "power_rails",
    "energy_per_inference_mj",
    "speedup_vs_tf_fp32",
    "status",
    "failure_kind",
    "failure_message",
    "throttled",
    "attempt",
    "finished_at",
]


def scope_kind(scope: str) -> str:
    """GPU engines report a second, compute-only figure; everything else is end-to-end."""
    return COMPUTE_ONLY if scope.startswith(COMPUTE_ONLY) else END_TO_END


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _float(text: str | None) -> float:
    try:
        return float(text) if text else float("nan")
    except ValueError:
        return float("nan")


def device_label(agent: str, device_model: str) -> str:
    """Agents on the same hardware stay apart: the agent's name, its hardware beside it."""
    return f"{agent} ({device_model})" if device_model and device_model != agent else agent


def shared_hosts(agents: Sequence[AgentInfo]) -> dict[str, list[str]]:
    """agent id -> the other agents with the same hostname: their timings disturb each other."""
    by_host: dict[str, list[AgentInfo]] = {}
    for a in agents:
        if a.capabilities.hostname:
            by_host.setdefault(a.capabilities.hostname, []).append(a)
    return {
        a.agent_id: sorted(o.name for o in by_host.get(a.capabilities.hostname, []) if o.agent_id != a.agent_id)
        for a in agents
    }


def coefficient_of_variation(cv: float | None, std_ms: float, mean_ms: float) -> float:
    """The stored CV, else std / mean (results stored before the CV was reported)."""
    if cv is not None:
        return float(cv)
    return std_ms / mean_ms if mean_ms > 0 else float("nan")


def stability(batch_size: int, mean_ms: float, p50_ms: float, cv: float, throughput_per_s: float) -> str:
    """ "ok", or "unstable: " and each rule the run breaks (UNSTABLE_CV, MEAN_OVER_P50, THROUGHPUT_SHORTFALL)."""
    problems = []
    if not pd.isna(cv) and cv > UNSTABLE_CV:
        problems.append(f"CV {cv:.0%} > {UNSTABLE_CV:.0%}")
    if p50_ms > 0 and mean_ms > MEAN_OVER_P50 * p50_ms:
        problems.append(f"mean {mean_ms / p50_ms:.1f}x p50")
    expected = batch_size * 1000 / p50_ms if p50_ms > 0 else float("nan")
    if not pd.isna(expected) and throughput_per_s < THROUGHPUT_SHORTFALL * expected:
        problems.append(f"throughput {throughput_per_s / expected:.0%} of batch/p50")
    return "unstable: " + "; ".join(problems) if problems else "ok"


def results_frame(
    rows: Sequence[tuple[Job, StoredResult]],
    artifacts: Sequence[tuple[ArtifactRef, dict[str, str]]] = (),
    agents: Sequence[AgentInfo] = (),
) -> pd.DataFrame:
    """One row per (job, batch size, latency scope); a failed job is one row with its failure and no figures."""
    sizes = {ref.sha256: ref.size_bytes for ref, _ in artifacts}
    metadata = {ref.sha256: meta for ref, meta in artifacts}
    devices = {a.agent_id: a.capabilities.device_model for a in agents}
    hosts = {a.agent_id: a.capabilities.hostname for a in agents}
    sharing = shared_hosts(agents)
    records: list[dict[str, Any]] = []
    for job, stored in rows:
        spec, result = job.spec, stored.result
        manifest = result.manifest
        meta = metadata.get(spec.model.sha256, {})
        power = result.power[0] if result.power else None
        report = result.accuracy
        agent = job.agent_name or stored.agent_id
        device_model = manifest.get("device_model") or devices.get(stored.agent_id) or ""
        compression = meta.get("compression") or spec.labels.get("compression", "")
        base: dict[str, Any] = {
            "job_id": job.job_id,
            "name": spec.name,
            "matrix": spec.labels.get("matrix", ""),  # the launch that queued it with others (coordinator.matrix)
            "split": spec.labels.get("split") or meta.get("split", ""),  # the demo's label, or the model's training
            "pipeline": spec.pipeline,
            "model": spec.model.name or spec.model.sha256[:12],
            "model_sha256": spec.model.sha256,
            "model_size_bytes": _nan(sizes.get(spec.model.sha256) or spec.model.size_bytes or None),
            "compression": compression,
            "quantization": meta.get("quantization", ""),
            "sparsity": _float(meta.get("sparsity")),
            "flops": _float(meta.get("flops")),
            "agent": agent,
            "agent_id": stored.agent_id,
            "host": hosts.get(stored.agent_id, ""),
            "shares_host_with": ", ".join(sharing.get(stored.agent_id, [])),
            "device_model": device_model,
            "device": device_label(agent, device_model),
            # One bar per run: the job id keeps two runs of one configuration apart.
            "run": f"{spec.name} [{job.job_id[:6]}]",
            "backend": spec.backend,
            "backend_version": manifest.get("backend_version", ""),
            "precision": spec.precision.value,
            "config": f"{spec.backend} {spec.precision.value}" + (f", {compression}" if compression else ""),
            "load_s": _nan(result.load_s) if result.ok else float("nan"),
            "accuracy": _nan(report.accuracy if report else None),
            "macro_f1": _nan(report.macro_f1 if report else None),
            "test_samples": _nan(report.samples if report else None),
            "absent_classes": ", ".join(c.name for c in report.classes if c.support == 0) if report else "",
            "collapsed": (collapse_warning(report) or "") if report else "",
            "power_meter": f"{power.meter} ({power.sensor})" if power else "",
            "power_mean_w": _nan(power.mean_w if power else None),
            "power_rails": ", ".join(f"{rail} {w:.2f} W" for rail, w in power.rail_mean_w.items()) if power else "",
            "energy_per_inference_mj": _nan(power.energy_per_inference_mj if power else None),
            "status": "ok" if result.ok else "failed",
            "failure_kind": result.failure.kind.value if result.failure else "",
            "failure_message": result.failure.message if result.failure else "",
            "throttled": manifest.get("throttled", ""),
            "attempt": stored.attempt,
            "finished_at": pd.Timestamp(stored.created_at, unit="s"),
        }
        if report is not None:
            base.update({f"{SE_PREFIX}{c.name}": float(c.recall) for c in report.classes})
        if not result.latency:
            records.append({**base, "scope": "", "scope_kind": ""})
        for lat in result.latency:
            cv = coefficient_of_variation(lat.cv, lat.std_ms, lat.mean_ms)
            records.append(
                {
                    **base,
                    "batch_size": lat.batch_size,
                    "scope": lat.scope,
                    "scope_kind": scope_kind(lat.scope),
                    "samples": lat.samples,
                    "mean_ms": lat.mean_ms,
                    "p50_ms": lat.p50_ms,
                    "p90_ms": _nan(lat.p90_ms),
                    "p95_ms": _nan(lat.p95_ms),
                    "p99_ms": _nan(lat.p99_ms),
                    "min_ms": lat.min_ms,
                    "max_ms": lat.max_ms,
                    "std_ms": lat.std_ms,
                    "cv": cv,
                    "ci_level": _nan(lat.ci_level),
                    "p50_ci_low_ms": _nan(lat.p50_ci_low_ms),
                    "p50_ci_high_ms": _nan(lat.p50_ci_high_ms),
                    "stability": stability(lat.batch_size, lat.mean_ms, lat.p50_ms, cv, lat.throughput_per_s),
                    "throughput_per_s": lat.throughput_per_s,
                    "first_inference_ms": lat.first_inference_ms,
                }
            )
    se_columns = sorted({k for r in records for k in r if k.startswith(SE_PREFIX)})
    frame = pd.DataFrame.from_records(records, columns=RESULT_COLUMNS + se_columns)
    frame["batch_size"] = frame["batch_size"].astype("Int64")
    frame["samples"] = frame["samples"].astype("Int64")
    return add_speedup(frame)


def add_speedup(frame: pd.DataFrame) -> pd.DataFrame:
    """Speed-up of p50 latency vs the TensorFlow FP32 run of the same pipeline, device, batch size and scope."""
    frame = frame.copy()
    frame["speedup_vs_tf_fp32"] = float("nan")
    ok = frame[frame["status"] == "ok"]
    # A run without a pipeline name is matched by its model instead.
    model_key = ok["pipeline"].where(ok["pipeline"] != "", ok["model_sha256"])
    keys = ["_model", "agent_id", "batch_size", "scope_kind"]
    keyed = ok.assign(_model=model_key)
    baseline = keyed[(keyed["backend"] == BASELINE_BACKEND) & (keyed["precision"] == BASELINE_PRECISION)]
    if baseline.empty:
        return frame
    # The newest baseline wins when a baseline was run more than once.
    reference = baseline.sort_values("finished_at").groupby(keys, dropna=False)["p50_ms"].last().rename("_baseline_p50")
    joined = keyed.join(reference, on=keys)
    frame.loc[joined.index, "speedup_vs_tf_fp32"] = joined["_baseline_p50"] / joined["p50_ms"]
    return frame


def pareto_front(frame: pd.DataFrame, x: str = "p50_ms", y: str = "accuracy") -> pd.DataFrame:
    """Points no other point beats on both axes (lower `x`, higher `y`), sorted by `x`."""
    points = frame.dropna(subset=[x, y]).sort_values([x, y], ascending=[True, False])
    best = float("-inf")
    keep = []
    for index, value in points[y].items():
        if value > best:
            keep.append(index)
            best = value
    return points.loc[keep]


def quality_options(frame: pd.DataFrame) -> dict[str, str]:
    """Quality metrics this frame can rank by: macro F1, accuracy, then each class's sensitivity."""
    options = dict(QUALITY_LABELS)
    for column in frame.columns:
        if column.startswith(SE_PREFIX) and frame[column].notna().any():
            options[column] = f"Se (recall) of class {column.removeprefix(SE_PREFIX)}"
    return options


def scoring_warnings(frame: pd.DataFrame, small: int = SMALL_TEST_SET) -> list[str]:
    """Runs whose scores say little: a tiny test set, classes the test set has no sample of, or a model that
    called (nearly) every sample one class (edgelab.metrics.collapse_warning: e.g. a broken INT8 conversion)."""
    warnings = []
    runs = frame[frame["test_samples"].notna()].drop_duplicates("job_id")
    for _, r in runs.iterrows():
        problems = []
        if r["test_samples"] < small:
            problems.append(f"only {int(r['test_samples'])} test samples (< {small})")
        if r["absent_classes"]:
            problems.append(f"no test sample of class {r['absent_classes']}")
        if r["collapsed"]:
            problems.append(r["collapsed"])
        if problems:
            warnings.append(f"{r['run']} on {r['agent']}: {'; '.join(problems)}")
    return warnings


def _fmt(value: Any, pattern: str, missing: str = "") -> str:
    return missing if pd.isna(value) else pattern.format(value)


def _ci(r: pd.Series) -> str:
    """The p50 confidence interval as "low-high (95%)", "n/a" where none was stored, "" on a failure."""
    if r["status"] == "failed":
        return ""
    if pd.isna(r["p50_ci_low_ms"]) or pd.isna(r["p50_ci_high_ms"]):
        return "n/a"
    level = "" if pd.isna(r["ci_level"]) else f" ({r['ci_level']:.0%})"
    return f"{r['p50_ci_low_ms']:.3f}-{r['p50_ci_high_ms']:.3f}{level}"


def noise_warnings(frame: pd.DataFrame) -> list[str]:
    """Unstable runs (each rule broken) and agents sharing a host, one line each."""
    lines = []
    ok = frame[(frame["status"] == "ok") & frame["stability"].fillna("ok").ne("ok")]
    for _, r in ok.iterrows():
        lines.append(f"{r['run']} on {r['agent']} (batch {r['batch_size']}, {r['scope_kind']}): {r['stability']}")
    shared = frame[frame["shares_host_with"].fillna("") != ""].drop_duplicates("agent_id")
    for _, r in shared.iterrows():
        lines.append(
            f"{r['agent']} shares host {r['host']} with {r['shares_host_with']}: their timings disturb each other"
        )
    return lines


def leaderboard(frame: pd.DataFrame, budget_column: str, budget: float, quality: str, batch_size: int) -> pd.DataFrame:
    """Per agent (device): the best-scoring successful end-to-end run at `batch_size` whose `budget_column`
    (a BUDGETS key) is at most `budget`; ties go to the lower p50. An agent with none says why."""
    runs = frame[
        (frame["status"] == "ok") & (frame["scope_kind"] == END_TO_END) & (frame["batch_size"] == batch_size)
    ].assign(model_size_kib=frame["model_size_bytes"] / 1024)
    se_columns = [c for c in frame.columns if c.startswith(SE_PREFIX) and runs[c].notna().any()]
    columns = [
        "agent (device)",
        "best run",
        "configuration",
        "p50 ms",
        "energy mJ/inf",
        "model KiB",
        "macro F1",
        "accuracy",
        *(f"Se {c.removeprefix(SE_PREFIX)}" for c in se_columns),
        "stability",
    ]
    rows = []
    for device, group in runs.groupby("device", sort=True):
        within = group[group[budget_column] <= budget].dropna(subset=[quality])
        if within.empty:
            measured = group[budget_column].dropna()
            rows.append(
                {
                    "agent (device)": device,
                    "best run": f"none within budget (lowest {measured.min():.3f})"
                    if not measured.empty
                    else f"none: {BUDGETS[budget_column]} not measured",
                }
            )
            continue
        best = within.sort_values([quality, "p50_ms"], ascending=[False, True]).iloc[0]
        rows.append(
            {
                "agent (device)": device,
                "best run": best["run"],
                "configuration": best["config"],
                "p50 ms": _fmt(best["p50_ms"], "{:.3f}"),
                "energy mJ/inf": _fmt(best["energy_per_inference_mj"], "{:.3f}", "not measured"),
                "model KiB": _fmt(best["model_size_kib"], "{:,.1f}"),
                "macro F1": _fmt(best["macro_f1"], "{:.3f}", "n/a"),
                "accuracy": _fmt(best["accuracy"], "{:.2%}", "n/a"),
                **{f"Se {c.removeprefix(SE_PREFIX)}": _fmt(best[c], "{:.3f}", "n/a") for c in se_columns},
                "stability": best["stability"],
            }
        )
    return pd.DataFrame(rows, columns=columns).fillna("")


def display_results(frame: pd.DataFrame) -> pd.DataFrame:
    """The results table as people read it: failures spelled out, absent figures named, never zeros."""
    rows = []
    for _, r in frame.iterrows():
        failed = r["status"] == "failed"
        rows.append(
            {
                "name": r["name"],
                "agent": r["agent"],
                "device": r["device_model"],
                "compression": r["compression"] or "not recorded",
                "model KiB": _fmt(r["model_size_bytes"] / 1024, "{:,.1f}"),
                "backend": r["backend"],
                "precision": r["precision"],
                "batch": _fmt(r["batch_size"], "{}"),
                "scope": r["scope_kind"],
                "p50 ms": _fmt(r["p50_ms"], "{:.3f}"),
                "p50 CI": _ci(r),
                "mean ms": _fmt(r["mean_ms"], "{:.3f}"),
                "std ms": _fmt(r["std_ms"], "{:.3f}"),
                "min ms": _fmt(r["min_ms"], "{:.3f}"),
                "max ms": _fmt(r["max_ms"], "{:.3f}"),
                "CV": _fmt(r["cv"], "{:.1%}"),
                "stability": "" if failed else r["stability"],
                "shares host with": r["shares_host_with"],
                "accuracy": _fmt(r["accuracy"], "{:.2%}", "" if failed else "n/a"),
                "macro F1": _fmt(r["macro_f1"], "{:.3f}", "" if failed else "n/a"),
                "p90 ms": _fmt(r["p90_ms"], "{:.3f}", "" if failed else "n/a"),
                "p99 ms": _fmt(r["p99_ms"], "{:.3f}", "" if failed else "n/a"),
                "throughput/s": _fmt(r["throughput_per_s"], "{:,.1f}"),
                "energy mJ/inf": _fmt(r["energy_per_inference_mj"], "{:.3f}", "" if failed else "not measured"),
                "rails": r["power_rails"],
                "speed-up vs TF FP32": _fmt(r["speedup_vs_tf_fp32"], "{:.2f}x", "" if failed else "no baseline"),
                "status": f"failed ({r['failure_kind']}): {r['failure_message']}" if failed else "ok",
                "quantization": r["quantization"],
                "sparsity": _fmt(r["sparsity"], "{:.0%}"),
                "pipeline": r["pipeline"],
                "job": r["job_id"],
            }
        )
    return pd.DataFrame(rows)


def late_result_line(name: str, late: LateResult) -> str:
    """One line on a report that reached a job after the coordinator had closed it (e.g. as a timeout)."""
    result = late.result
    if result.failure is not None:
        what = f"failed ({result.failure.kind.value}: {result.failure.message})"
    else:
        figures = [f"p50 {s.p50_ms:.3f} ms at batch {s.batch_size}" for s in result.latency[:1]]
        if result.accuracy is not None:
            figures.append(f"accuracy {result.accuracy.accuracy:.2%}")
        what = "succeeded" + (f": {', '.join(figures)}" if figures else "")
    return (
        f"{name}: agent {late.agent_id}'s report of attempt {late.attempt} arrived after the job was closed and "
        f"is kept as a late result ({what}), beside the verdict above, not as the run's result"
    )


def uses_mitdb(pipelines: Iterable[str]) -> bool:
    return any(p.startswith(MITDB_PREFIX) for p in pipelines)


# -- fleet -------------------------------------------------------------------------------


def ago(seconds: float) -> str:
    """ "12 s ago", "5 min ago", "3 h ago", "2 d ago": how long since an agent last spoke."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def fleet_frame(
    agents: Sequence[AgentInfo], job_names: dict[str, str] | None = None, now: float | None = None
) -> pd.DataFrame:
    """One row per agent, narrow enough for a 1280 px screen: liveness, what it runs now, its device,
    runtimes and power meters, and the agents it shares a host with (their timings disturb each other).
    The hardware details are in `hardware_frame`, the missing runtimes' reasons in `runtimes_frame`."""
    now = time.time() if now is None else now
    job_names = job_names or {}
    sharing = shared_hosts(agents)
    rows = []
    for a in agents:
        caps = a.capabilities
        current = a.current_job_id
        rows.append(
            {
                "name": a.name,
                "status": a.status,
                "last seen": ago(now - a.last_seen_at),
                "current job": f"{job_names[current]} ({current})" if current in job_names else current,
                "device": caps.device_model,
                "runtimes available": ", ".join(f"{r.name} {r.version}".strip() for r in caps.runtimes if r.available),
                "unavailable": "; ".join(f"{r.name}: {r.reason}" for r in caps.runtimes if not r.available),
                "power meters": ", ".join(caps.power_meters) or "none (energy not measured)",
                "shares host with": ", ".join(sharing[a.agent_id]),
            }
        )
    return pd.DataFrame(rows)


def hardware_frame(agents: Sequence[AgentInfo]) -> pd.DataFrame:
    """One row per agent: the host and its hardware, and the agent's id and version."""
    rows = [
        {
            "name": a.name,
            "host": a.capabilities.hostname,
            "cpu": a.capabilities.cpu_model,
            "cores": a.capabilities.cpu_cores,
            "memory GiB": round(a.capabilities.memory_bytes / 2**30, 1),
            "os": a.capabilities.os,
            "python": a.capabilities.python_version,
            "agent version": a.capabilities.agent_version,
            "agent id": a.agent_id,
        }
        for a in agents
    ]
    columns = ["name", "host", "cpu", "cores", "memory GiB", "os", "python", "agent version", "agent id"]
    return pd.DataFrame(rows, columns=columns)


def runtimes_frame(agents: Sequence[AgentInfo]) -> pd.DataFrame:
    rows = [
        {
            "agent": a.name,
            "runtime": r.name,
            "available": r.available,
            "version": r.version,
            "precisions": ", ".join(p.value for p in r.precisions),
            "reason": r.reason,
        }
        for a in agents
        for r in a.capabilities.runtimes
    ]
    return pd.DataFrame(rows, columns=["agent", "runtime", "available", "version", "precisions", "reason"])


# -- launch ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatrixCell:
    agent_id: str
    agent: str
    backend: str
    precision: Precision
    reason: str = ""  # why it is skipped; empty: it is launched

    @property
    def launched(self) -> bool:
        return not self.reason


def expand_matrix(
    agents: Sequence[AgentInfo],
    backends: Sequence[str],
    precisions: Sequence[Precision],
    targets: Sequence[str] = (),
    model_format: str = "",
) -> list[MatrixCell]:
    """backends x precisions x agents; `targets` empty means every capable agent that is not offline
    (the coordinator's own fleet-wide rule), with the reason for each cell that is skipped, a backend
    that cannot load the model's format included."""
    chosen = [a for a in agents if a.agent_id in targets] if targets else list(agents)
    cells = []
    for backend in backends:
        unloadable = format_problem(backend, model_format)
        for precision in precisions:
            for a in chosen:
                runtime = next((r for r in a.capabilities.runtimes if r.name == backend), None)
                if unloadable:
                    reason = unloadable
                elif runtime is None or not runtime.available:
                    reason = f"{backend} unavailable" + (f": {runtime.reason}" if runtime and runtime.reason else "")
                elif runtime.precisions and precision not in runtime.precisions:
                    reason = f"{backend} here supports {', '.join(p.value for p in runtime.precisions)}"
                elif not targets and a.status == "offline":
                    reason = "agent offline"
                else:
                    reason = ""
                cells.append(MatrixCell(a.agent_id, a.name, backend, precision, reason))
    return cells


def format_problem(backend: str, model_format: str) -> str:
    """Why `backend` cannot load a model of `model_format` ("" when it can, or when either is unknown)."""
    formats = BACKEND_FORMATS.get(backend)
    if not model_format or formats is None or model_format in formats:
        return ""
    return f"{backend} cannot load a {model_format} model (it loads {', '.join(formats)})"


def backends_for(model_format: str) -> list[str]:
    """The known backends that load `model_format`."""
    return [backend for backend, formats in BACKEND_FORMATS.items() if model_format in formats]


def matrix_frame(cells: Sequence[MatrixCell], batch_sizes: Sequence[int]) -> pd.DataFrame:
    rows = [
        {
            "agent": c.agent,
            "backend": c.backend,
            "precision": c.precision.value,
            "batch sizes": ", ".join(map(str, batch_sizes)),
            "launch": "yes" if c.launched else f"skipped: {c.reason}",
        }
        for c in cells
    ]
    return pd.DataFrame(rows, columns=["agent", "backend", "precision", "batch sizes", "launch"])


def progress_frame(jobs: Sequence[Job]) -> pd.DataFrame:
    rows = [
        {
            "job": j.job_id,
            "name": j.spec.name,
            "agent": j.agent_name or j.agent_id,
            "backend": j.spec.backend,
            "precision": j.spec.precision.value,
            "state": j.state.value,
            "attempt": j.attempt,
        }
        for j in jobs
    ]
    return pd.DataFrame(rows, columns=["job", "name", "agent", "backend", "precision", "state", "attempt"])


def _parse_ints(text: str, what: str, minimum: int) -> list[int]:
    """Comma-separated integers >= `minimum` (0 or 1); a ValueError naming the bad part otherwise."""
    values = []
    for part in text.replace(" ", "").split(","):
        if not part.isdigit() or int(part) < minimum:
            kind = "positive" if minimum == 1 else "non-negative"
            raise ValueError(f"{what} must be {kind} integers separated by commas, got {part!r}")
        values.append(int(part))
    return values


def parse_batch_sizes(text: str) -> list[int]:
    """ "1, 8,32" -> [1, 8, 32]; anything else is a ValueError naming the bad part."""
    return _parse_ints(text, "batch sizes", minimum=1)


# -- training ----------------------------------------------------------------------------

TRAINING_COLUMNS = [
    "run_id",
    "pipeline",
    "origin",
    "requested_split",
    "split",
    "seed",
    "epochs",
    "class_weights",
    "records",
    "state",
    "accuracy",
    "macro_f1",
    "train_beats",
    "test_beats",
    "params",
    "train_seconds",
    "error",
    "model_sha256",
    "created_at",
]


def training_frame(runs: Sequence[TrainingRun]) -> pd.DataFrame:
    """One row per training run; figures are NaN until (and unless) it succeeded."""
    rows = []
    for run in runs:
        s = run.summary
        rows.append(
            {
                "run_id": run.run_id,
                "pipeline": run.pipeline,
                "origin": run.origin,
                "requested_split": run.config.split,
                "split": s.split if s else "",
                "seed": run.config.seed,
                "epochs": run.config.epochs,
                "class_weights": run.config.class_weights,  # "" in runs stored before it was recorded
                "records": ",".join(run.config.records) or "all",
                "state": run.state.value,
                "accuracy": _nan(s.evaluation.accuracy if s else None),
                "macro_f1": _nan(s.evaluation.macro_f1 if s else None),
                "train_beats": _nan(s.train_beats if s else None),
                "test_beats": _nan(s.test_beats if s else None),
                "params": _nan(s.params if s else None),
                "train_seconds": _nan(s.train_seconds if s else None),
                "error": run.error,
                "model_sha256": run.model_sha256,
                "created_at": pd.Timestamp(run.created_at, unit="s"),
            }
        )
    return pd.DataFrame(rows, columns=TRAINING_COLUMNS)


def display_training(frame: pd.DataFrame) -> pd.DataFrame:
    """The runs table as people read it: a split that fell back is said, a run without figures shows none."""
    rows = []
    for _, r in frame.iterrows():
        fell_back = r["split"] and r["split"] != r["requested_split"]
        rows.append(
            {
                "run": r["run_id"],
                "pipeline": r["pipeline"],
                "split": f"{r['split']} (asked {r['requested_split']})" if fell_back else r["requested_split"],
                "seed": r["seed"],
                "epochs": r["epochs"],
                "class weights": r["class_weights"] or "not recorded",
                "records": r["records"],
                "state": r["state"],
                "accuracy": _fmt(r["accuracy"], "{:.2%}"),
                "macro F1": _fmt(r["macro_f1"], "{:.3f}"),
                "train / test beats": ""
                if pd.isna(r["train_beats"])
                else f"{r['train_beats']:.0f} / {r['test_beats']:.0f}",
                "params": _fmt(r["params"], "{:,.0f}"),
                "train s": _fmt(r["train_seconds"], "{:.1f}"),
                "trained by": r["origin"],
                "error": r["error"],
                "created": r["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
            }
        )
    return pd.DataFrame(rows)


def parse_seeds(text: str) -> list[int]:
    """ "0, 1,2" -> [0, 1, 2]; anything else is a ValueError naming the bad part."""
    return _parse_ints(text, "seeds", minimum=0)


# -- one result --------------------------------------------------------------------------


def confusion_frame(report: AccuracyReport) -> pd.DataFrame:
    names = [c.name for c in report.classes] or [str(i) for i in range(report.num_classes)]
    return pd.DataFrame(report.confusion_matrix(), index=names, columns=names)


def classes_frame(report: AccuracyReport) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"class": c.name, "support": c.support, "precision (PPV)": c.precision, "recall (Se)": c.recall, "F1": c.f1}
            for c in report.classes
        ],
        columns=["class", "support", "precision (PPV)", "recall (Se)", "F1"],
    )


PUBLISHED_ROW = "de Chazal 2004 (published)"
"""The EC57 table's published row, short so the figures fit beside it; the caption says what it is
(edgelab.metrics.DE_CHAZAL_2004_LABEL)."""


def ec57_frame(report: AccuracyReport, split: str) -> pd.DataFrame | None:
    """EC57 gross Se and +P of N, SVEB, VEB, F and Q (bxb's rules: F or Q labelled VEB is no VEB false positive) of
    a run over the AAMI classes, with de Chazal 2004's published row where the model was trained on the
    inter-patient split (its test side is DS2, as theirs); None for other classes. The run's figures carry two
    decimals, so one that rounds to the published figure (99.19% beside 99.2%) is not read as a tie."""
    names = [c.name for c in report.classes]
    if not has_aami_classes(names):
        return None
    figures = ec57_figures(report.confusion_matrix(), names)
    columns = ["run"] + [f"{f.name} {side}" for f in figures for side in ("Se", "+P")]
    rows = [["this run", *(_fmt(v, "{:.2%}", "-") for f in figures for v in (f.se, f.ppv))]]
    if split == "inter-patient":
        published = [DE_CHAZAL_2004.get(f.name, (float("nan"), float("nan"))) for f in figures]
        rows.append([PUBLISHED_ROW, *(_fmt(v, "{:.1%}", "-") for pair in published for v in pair)])
    return pd.DataFrame(rows, columns=columns)


# (label, column, direction): +1 higher is better, -1 lower is better, 0 not ranked.
COMPARED = [
    ("backend", "backend", 0),
    ("precision", "precision", 0),
    ("agent", "agent", 0),
    ("device", "device_model", 0),
    ("compression", "compression", 0),
    ("status", "status", 0),
    ("accuracy", "accuracy", 1),
    ("macro F1", "macro_f1", 1),
    ("p50 ms", "p50_ms", -1),
    ("p90 ms", "p90_ms", -1),
    ("p99 ms", "p99_ms", -1),
    ("throughput/s", "throughput_per_s", 1),
    ("load s", "load_s", -1),
    ("energy mJ/inf", "energy_per_inference_mj", -1),
    ("speed-up vs TF FP32", "speedup_vs_tf_fp32", 1),
    ("model size bytes", "model_size_bytes", -1),
]
BETTER = "better"
WORSE = "worse"
NOT_SIGNIFICANT = "within the p50 CIs"
RUN_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _relative(a: pd.Series, b: pd.Series, column: str, direction: int) -> str:
    """B against A as a relative change with its verdict ("+25.0% worse"); p50s whose CIs overlap are
    no difference (edgelab.metrics.latency_verdict's rule), whatever their ratio."""
    va, vb = a[column], b[column]
    if direction == 0 or _missing(va) or _missing(vb) or va == 0:
        return ""
    change = (vb - va) / abs(va)
    if column == "p50_ms" and not any(_missing(x) for x in (*_p50_ci(a), *_p50_ci(b))):
        (a_low, a_high), (b_low, b_high) = _p50_ci(a), _p50_ci(b)
        if a_low <= b_high and b_low <= a_high:
            return f"{change:+.1%} ({NOT_SIGNIFICANT})"
    if change == 0:
        return "+0%"
    shown = f"{change:+.1%}" if abs(change) >= 0.01 else f"{change:+.2%}"  # +0.02 %, not +0.0 %
    return f"{shown} {BETTER if change * direction > 0 else WORSE}"


def _p50_ci(r: pd.Series) -> tuple[Any, Any]:
    return r["p50_ci_low_ms"], r["p50_ci_high_ms"]


def comparison_frame(frame: pd.DataFrame, job_ids: Sequence[str], batch_size: int | None = None) -> pd.DataFrame:
    """Runs side by side (end-to-end latency at one batch size), the first one the baseline A: each other
    run's relative change against it, "better" or "worse" by the metric's direction."""

    def pick(job_id: str) -> pd.Series:
        rows = frame[frame["job_id"] == job_id]
        e2e = rows[rows["scope_kind"] == END_TO_END]
        if batch_size is not None and not e2e[e2e["batch_size"] == batch_size].empty:
            return e2e[e2e["batch_size"] == batch_size].iloc[0]
        return (e2e if not e2e.empty else rows).iloc[0]

    picked = [pick(job_id) for job_id in job_ids]
    letters = RUN_LETTERS[: len(job_ids)]
    rows = []
    for label, column, direction in COMPARED:
        row: dict[str, str] = {"metric": label}
        row.update(
            {
                f"{letter}: {job_id}": _cell(r[column])
                for letter, job_id, r in zip(letters, job_ids, picked, strict=True)
            }
        )
        row.update(
            {
                f"{letter} vs A": _relative(picked[0], r, column, direction)
                for letter, r in zip(letters[1:], picked[1:], strict=True)
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def verdict_color(cell: str) -> str:
    """CSS for a relative-change cell: green when better, red when worse."""
    if cell.endswith(BETTER):
        return "color: #2ca02c"
    if cell.endswith(WORSE):
        return "color: #d62728"
    return ""


def _cell(value: Any) -> str:
    if _missing(value):
        return ""
    if pd.api.types.is_float(value):
        return f"{value:.4g}"
    return str(value)


def _missing(value: Any) -> bool:
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def manifest_diff(manifests: Sequence[dict[str, str]]) -> pd.DataFrame:
    """Each run's manifest (A, B, ...) per key, and whether they all agree."""
    letters = RUN_LETTERS[: len(manifests)]
    keys = sorted(set().union(*manifests)) if manifests else []
    rows = [
        {
            "key": k,
            **{letter: m.get(k, "") for letter, m in zip(letters, manifests, strict=True)},
            "same": len({m.get(k) for m in manifests}) == 1,
        }
        for k in keys
    ]
    return pd.DataFrame(rows, columns=["key", *letters, "same"])


PROFILE_COLUMNS = ["run", "batch_size", "operator", "op_type", "time_ms", "percent", "profile_total_ms", "source"]


def profile_frame(runs: Sequence[tuple[str, BenchmarkResult]]) -> pd.DataFrame:
    """One row per (run, batch size, operator) of each run's stored per-operator profile (its slowest
    operators, BenchmarkResult.profiles); runs without a profile add nothing."""
    rows = [
        {
            "run": run,
            "batch_size": profile.batch_size,
            "operator": op.name,
            "op_type": op.op_type,
            "time_ms": op.time_ms,
            "percent": op.percent,
            "profile_total_ms": profile.total_ms,
            "source": profile.source,
        }
        for run, result in runs
        for profile in result.profiles
        for op in profile.ops
    ]
    return pd.DataFrame(rows, columns=PROFILE_COLUMNS)


def profile_diff(frame: pd.DataFrame, run_a: str, run_b: str, batch_size: int) -> pd.DataFrame:
    """Operators both profiles kept (by name) at one batch size: ms each and B / A, most grown first, then
    the whole profiles' totals. Operators only one side kept (fused or renamed by another build, or outside
    its top N) are counted in the totals' row, not compared."""
    at = frame[frame["batch_size"] == batch_size]
    a = at[at["run"] == run_a].set_index("operator")
    b = at[at["run"] == run_b].set_index("operator")
    both = [name for name in a.index if name in b.index]
    rows = [
        {
            "operator": name,
            "type": a.loc[name, "op_type"],
            "A ms": a.loc[name, "time_ms"],
            "B ms": b.loc[name, "time_ms"],
            "B / A": b.loc[name, "time_ms"] / a.loc[name, "time_ms"] if a.loc[name, "time_ms"] > 0 else float("nan"),
        }
        for name in both
    ]
    rows.sort(key=lambda r: -r["B / A"] if not pd.isna(r["B / A"]) else 0.0)
    if not a.empty and not b.empty:
        total_a, total_b = float(a["profile_total_ms"].iloc[0]), float(b["profile_total_ms"].iloc[0])
        only = len(set(a.index) ^ set(b.index))
        rows.append(
            {
                "operator": "(all operators" + (f"; {only} kept by one side only)" if only else ")"),
                "type": "",
                "A ms": total_a,
                "B ms": total_b,
                "B / A": total_b / total_a if total_a > 0 else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=["operator", "type", "A ms", "B ms", "B / A"])


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer, index=False)
    except ImportError as exc:  # pandas raises ImportError naming pyarrow/fastparquet
        from edgelab.errors import MissingExtraError

        raise MissingExtraError("pyarrow", "dashboard") from exc
    return buffer.getvalue()
