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
from edgelab.domain import AccuracyReport, AgentInfo, ArtifactRef, Job, Precision, TrainingRun

# Backends the lab knows (DESIGN.md); agents may report more, which the pages add.
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
    """Runs whose scores say little: a tiny test set, or classes the test set has no sample of."""
    warnings = []
    runs = frame[frame["test_samples"].notna()].drop_duplicates("job_id")
    for _, r in runs.iterrows():
        problems = []
        if r["test_samples"] < small:
            problems.append(f"only {int(r['test_samples'])} test samples (< {small})")
        if r["absent_classes"]:
            problems.append(f"no test sample of class {r['absent_classes']}")
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


def uses_mitdb(pipelines: Iterable[str]) -> bool:
    return any(p.startswith(MITDB_PREFIX) for p in pipelines)


# -- fleet -------------------------------------------------------------------------------


def fleet_frame(
    agents: Sequence[AgentInfo], job_names: dict[str, str] | None = None, now: float | None = None
) -> pd.DataFrame:
    """One row per agent: liveness, device, runtimes it can and cannot run (with the reason), current job."""
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
                "device": caps.device_model,
                # Agents on one host disturb each other's timings: said before the hardware details.
                "shares host with": ", ".join(sharing[a.agent_id]),
                "host": caps.hostname,
                "cpu": caps.cpu_model,
                "cores": caps.cpu_cores,
                "memory GiB": round(caps.memory_bytes / 2**30, 1),
                "os": caps.os,
                "agent version": caps.agent_version,
                "runtimes available": ", ".join(f"{r.name} {r.version}".strip() for r in caps.runtimes if r.available),
                "unavailable": "; ".join(f"{r.name}: {r.reason}" for r in caps.runtimes if not r.available),
                "power meters": ", ".join(caps.power_meters) or "none",
                "current job": f"{current} ({job_names[current]})" if current in job_names else current,
                "last seen s ago": round(max(0.0, now - a.last_seen_at)),
                "agent id": a.agent_id,
            }
        )
    return pd.DataFrame(rows)


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


COMPARED = [
    ("backend", "backend"),
    ("precision", "precision"),
    ("agent", "agent"),
    ("device", "device_model"),
    ("compression", "compression"),
    ("status", "status"),
    ("accuracy", "accuracy"),
    ("macro F1", "macro_f1"),
    ("p50 ms", "p50_ms"),
    ("p90 ms", "p90_ms"),
    ("p99 ms", "p99_ms"),
    ("throughput/s", "throughput_per_s"),
    ("load s", "load_s"),
    ("energy mJ/inf", "energy_per_inference_mj"),
    ("speed-up vs TF FP32", "speedup_vs_tf_fp32"),
    ("model size bytes", "model_size_bytes"),
]


def comparison_frame(frame: pd.DataFrame, job_a: str, job_b: str, batch_size: int | None = None) -> pd.DataFrame:
    """Two runs side by side (end-to-end latency at one batch size), with B - A where both are numbers."""

    def pick(job_id: str) -> pd.Series:
        rows = frame[frame["job_id"] == job_id]
        e2e = rows[rows["scope_kind"] == END_TO_END]
        if batch_size is not None and not e2e[e2e["batch_size"] == batch_size].empty:
            return e2e[e2e["batch_size"] == batch_size].iloc[0]
        return (e2e if not e2e.empty else rows).iloc[0]

    a, b = pick(job_a), pick(job_b)
    rows = []
    for label, column in COMPARED:
        va, vb = a[column], b[column]
        numeric = all(pd.api.types.is_number(v) and not isinstance(v, bool) and not pd.isna(v) for v in (va, vb))
        rows.append(
            {
                "metric": label,
                f"A: {job_a}": _cell(va),
                f"B: {job_b}": _cell(vb),
                "B - A": _cell(vb - va) if numeric else "",
            }
        )
    return pd.DataFrame(rows)


def _cell(value: Any) -> str:
    if _missing(value):
        return ""
    if pd.api.types.is_float(value):
        return f"{value:.4g}"
    return str(value)


def _missing(value: Any) -> bool:
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def manifest_diff(manifest_a: dict[str, str], manifest_b: dict[str, str]) -> pd.DataFrame:
    keys = sorted(set(manifest_a) | set(manifest_b))
    rows = [
        {
            "key": k,
            "A": manifest_a.get(k, ""),
            "B": manifest_b.get(k, ""),
            "same": manifest_a.get(k) == manifest_b.get(k),
        }
        for k in keys
    ]
    return pd.DataFrame(rows, columns=["key", "A", "B", "same"])


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer, index=False)
    except ImportError as exc:  # pandas raises ImportError naming pyarrow/fastparquet
        from edgelab.errors import MissingExtraError

        raise MissingExtraError("pyarrow", "dashboard") from exc
    return buffer.getvalue()
