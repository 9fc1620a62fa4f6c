"""`edgelab demo`: the whole lab on one machine.

Starts a coordinator on loopback (SQLite store + artifact store in the data dir), one
agent in its own process, trains the MIT-BIH 1D CNN ensemble (beat window + RR features, inter-patient:
DS1 trains, DS2 tests) as a Ray task, uploads the ONNX model
and its test set, dispatches a job per runtime and precision to the agent and prints what the
agent measured, with the EC57 Se and +P per class of every run next to de Chazal et al. 2004.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from coordinator.client import ControlClient
from coordinator.matrix import MatrixResult, MatrixSpec, artifact_path, run_matrix
from coordinator.server import start_coordinator
from coordinator.training import shutdown_ray
from edgelab.app.report import accuracy_table, ec57_table, results_table
from edgelab.config import Settings
from edgelab.constants import REFERENCE_ACCURACY_LABEL
from edgelab.domain import ArtifactRef, BenchmarkResult, Job, JobSpec, MeasurementSettings, Precision
from edgelab.errors import EdgeLabError
from edgelab.metrics import (
    DE_CHAZAL_2004,
    DE_CHAZAL_2004_LABEL,
    SVEB_HEAVY_RECORD,
    Ec57Figures,
    confusion_without_sveb_heavy_record,
    ec57_figures,
)

PIPELINE = "mitdb-beats-1d"
# (artifact target, backend, precision): every CPU runtime the lab has, at FP32 and INT8.
DEMO_RUNS: tuple[tuple[str, str, Precision], ...] = (
    ("onnx", "onnxruntime", Precision.FP32),
    ("onnx", "onnxruntime", Precision.INT8),  # quantized on the device from the shipped calibration set
    ("tflite-fp32", "tflite", Precision.FP32),
    ("tflite-int8", "tflite", Precision.INT8),
    ("savedmodel.zip", "tensorflow", Precision.FP32),
)
DEMO_BACKENDS = tuple(dict.fromkeys(backend for _, backend, _ in DEMO_RUNS))
AGENT_NAME = "local-cpu"
AGENT_START_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 1800.0


@dataclass
class DemoOptions:
    epochs: int | None = None  # None: the pipeline's own budget (what its DS1 cross-validation chose with)
    split: str = "inter-patient"
    records: tuple[str, ...] | None = None
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32])
    min_duration_s: float = 3.0
    backends: tuple[str, ...] = DEMO_BACKENDS


def _start_agent(address: str, home: Path, log_path: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "edgelab",
        "agent",
        "run",
        "--coordinator",
        address,
        "--name",
        AGENT_NAME,
        "--home",
        str(home),
    ]
    with log_path.open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def _wait_for_agent(client: ControlClient, process: subprocess.Popen[bytes], log_path: Path, known: set[str]) -> str:
    """The id of the agent this demo started (agents from earlier runs may share the store)."""
    deadline = time.monotonic() + AGENT_START_TIMEOUT_S
    while True:
        fresh = [a.agent_id for a in client.list_agents() if a.name == AGENT_NAME and a.agent_id not in known]
        if fresh:
            return fresh[0]
        if process.poll() is not None:
            raise EdgeLabError(f"the agent exited with code {process.returncode}:\n{log_path.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise EdgeLabError(f"the agent did not register within {AGENT_START_TIMEOUT_S:.0f}s (log: {log_path})")
        time.sleep(0.2)


def _wait_for_jobs(
    client: ControlClient, job_ids: list[str], console: Console
) -> list[tuple[Job, BenchmarkResult | None]]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    with console.status("agent is building the engine, timing it and scoring the test set ...") as status:
        while True:
            rows = [client.get_job(job_id) for job_id in job_ids]
            if all(job.state.finished for job, _ in rows):
                return rows
            if time.monotonic() > deadline:
                raise EdgeLabError(f"jobs {job_ids} did not finish within {JOB_TIMEOUT_S:.0f}s")
            states = ", ".join(f"{job.job_id}: {job.state.value}" for job, _ in rows)
            status.update(f"waiting for the agent ({states}) ...")
            time.sleep(0.5)


def _print_training(matrix: MatrixResult, console: Console) -> None:
    out = matrix.source.summary
    console.print(
        f"[bold]trained[/] {PIPELINE}: {out['train_beats']} train / {out['test_beats']} test beats ({out['split']}), "
        f"{out['params']} params, {out['train_seconds']:.0f}s, host accuracy {out['host_accuracy']:.2%}"
    )
    for note in out.get("notes", []):
        console.print(f"  note: {note}")
    for record in matrix.records:
        if record.ok:
            verified = record.info.get("verification") or {}
            console.print(
                f"  {record.target}: {record.info['size_bytes']:,} bytes, max |diff| vs Keras "
                f"{verified.get('max_abs_diff', float('nan')):.2g}, argmax agreement {verified.get('argmax_agreement', 0):.2%}"
            )
        else:
            console.print(f"  [red]{record.target} failed[/]: {record.error}")


def _ec57(rows: list[tuple[Job, BenchmarkResult | None]], summary: dict[str, Any]) -> Table | None:
    """EC57 Se/+P of every on-device run, the host model without record 232, and de Chazal's published row."""
    table_rows: list[tuple[str, list[Ec57Figures]]] = []
    for job, result in rows:
        report = result.accuracy if result is not None and result.ok else None
        if report is not None:
            names = [c.name for c in report.classes]
            label = f"{job.spec.backend} {job.spec.precision.value} (on device)"
            table_rows.append((label, ec57_figures(report.confusion_matrix(), names)))
    without = confusion_without_sveb_heavy_record(summary.get("record_confusions") or {})
    if without is not None:
        label = f"host Keras FP32, without record {SVEB_HEAVY_RECORD}"
        table_rows.append((label, ec57_figures(without, list(summary["class_names"]))))
    if not table_rows:
        return None
    side = "DS2, trained on DS1" if summary["split"] == "inter-patient" else "its test set"
    return ec57_table(
        table_rows,
        title=f"EC57 gross Se / +P per class, {summary['split']} split ({side}); F or Q labelled VEB is no VEB false positive",
        published=[(DE_CHAZAL_2004_LABEL, DE_CHAZAL_2004)] if summary["split"] == "inter-patient" else [],
    )


def _dispatch(
    client: ControlClient,
    matrix: MatrixResult,
    runs: list[tuple[str, str, Precision]],
    options: DemoOptions,
    agent_id: str,
) -> list[str]:
    """Upload each converted artifact once and queue one job per (backend, precision) run on it."""
    out = matrix.source.summary
    dataset = client.upload(matrix.dataset_path, format="npz", metadata={"pipeline": PIPELINE, "split": out["split"]})
    records = {r.target: r for r in matrix.records if r.ok}
    uploaded: dict[str, ArtifactRef] = {}
    job_ids: list[str] = []
    for target, backend, precision in runs:
        record = records.get(target)
        if record is None:
            continue  # its conversion failed; _print_training said why
        if target not in uploaded:
            uploaded[target] = client.upload(
                artifact_path(record), format=record.info["format"], metadata=record.metadata
            )
        spec = JobSpec(
            name=f"{PIPELINE}-{backend}-{precision.value}",
            backend=backend,
            model=uploaded[target],
            dataset=dataset,
            precision=precision,
            batch_sizes=options.batch_sizes,
            measurement=MeasurementSettings(min_duration_s=options.min_duration_s),
            pipeline=PIPELINE,
            labels={"split": out["split"], "target": target, REFERENCE_ACCURACY_LABEL: f"{out['host_accuracy']:.6f}"},
        )
        job_ids += client.submit(spec, agent_ids=[agent_id])
    return job_ids


def run_demo(settings: Settings, options: DemoOptions, console: Console) -> list[tuple[Job, BenchmarkResult | None]]:
    from pipelines.registry import get_pipeline

    if not settings.mitdb.is_dir():
        raise EdgeLabError(f"MIT-BIH records not found at {settings.mitdb}; pass --data DIR")
    started = time.perf_counter()
    settings.home.mkdir(parents=True, exist_ok=True)
    coordinator = start_coordinator(settings)
    console.print(f"[bold]coordinator[/] on {coordinator.address}, results store {settings.db_path}")
    agent_log = settings.home / "demo-agent.log"
    client = ControlClient(coordinator.address, settings.operator_token, tls=settings.client_tls())
    known = {a.agent_id for a in client.list_agents()}
    agent = _start_agent(coordinator.address, settings.home / "agent", agent_log)
    try:
        with console.status("starting the local agent ..."):
            agent_id = _wait_for_agent(client, agent, agent_log, known)
        console.print(f"[bold]agent[/] {AGENT_NAME} registered (log {agent_log})")

        budget = get_pipeline(PIPELINE).budget.override(options.epochs)
        config = budget.train_config(settings.mitdb, split=options.split, records=options.records)
        runs = [run for run in DEMO_RUNS if run[1] in options.backends]
        spec = MatrixSpec(pipeline=PIPELINE, train_config=config, targets=list(dict.fromkeys(t for t, _, _ in runs)))
        with console.status(
            f"training {PIPELINE} on MIT-BIH ({options.split} split, {config.epochs} epochs) and converting it "
            f"to {', '.join(spec.targets)} as Ray tasks ..."
        ):
            try:
                matrix = run_matrix(spec, settings.home / "demo-artifacts", ray_address=settings.ray_address)
            finally:
                shutdown_ray()
        _print_training(matrix, console)
        job_ids = _dispatch(client, matrix, runs, options, agent_id)
        console.print(f"[bold]dispatched[/] {len(job_ids)} job(s) to {AGENT_NAME}: {', '.join(job_ids)}")
        rows = _wait_for_jobs(client, job_ids, console)
    finally:
        client.close()
        agent.terminate()
        try:
            agent.wait(timeout=15)
        except subprocess.TimeoutExpired:
            agent.kill()
        coordinator.stop()

    console.print(results_table(rows, title="EdgeLab demo: on-device results (CPU runtimes)"))
    ec57 = _ec57(rows, matrix.source.summary)
    if ec57 is not None:
        console.print(ec57)
    first = next((result for _, result in rows if result is not None and result.ok), None)
    if first is not None:
        console.print(accuracy_table(first))
        for scope in dict.fromkeys(lat.scope for lat in first.latency):
            console.print(f"latency scope: {scope}")
        console.print(f"power: {escape(first.manifest.get('power', 'not reported'))}")
    console.print("every run's per-class figures: edgelab jobs show JOB_ID, or edgelab dashboard")
    console.print(f"demo wall time {time.perf_counter() - started:.0f}s; results kept in {settings.db_path}")
    return rows
