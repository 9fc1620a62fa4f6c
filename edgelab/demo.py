"""`edgelab demo`: the whole lab on one machine.

Starts a coordinator on loopback (SQLite store + artifact store in the data dir), one
agent in its own process, trains the MIT-BIH 1D CNN as a Ray task, uploads the ONNX model
and its test set, dispatches a job to the agent and prints what the agent measured.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from coordinator.client import ControlClient
from coordinator.server import start_coordinator
from coordinator.training import shutdown_ray, train_with_ray
from edgelab.config import Settings
from edgelab.domain import BenchmarkResult, Job, JobSpec, MeasurementSettings
from edgelab.errors import EdgeLabError
from edgelab.report import accuracy_table, results_table

PIPELINE = "mitdb-beats-1d"
AGENT_NAME = "local-cpu"
AGENT_START_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 1800.0


@dataclass
class DemoOptions:
    epochs: int = 3
    split: str = "inter-patient"
    records: tuple[str, ...] | None = None
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32])
    min_duration_s: float = 3.0


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


def run_demo(settings: Settings, options: DemoOptions, console: Console) -> list[tuple[Job, BenchmarkResult | None]]:
    from pipelines.base import TrainConfig

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

        config = TrainConfig(
            data_dir=settings.mitdb,
            split=options.split,  # type: ignore[arg-type]
            epochs=options.epochs,
            records=options.records,
        )
        with console.status(
            f"training {PIPELINE} on MIT-BIH ({options.split} split, {options.epochs} epochs) as a Ray task ..."
        ):
            try:
                (trained,) = train_with_ray([(PIPELINE, config)], ray_address=settings.ray_address)
            finally:
                shutdown_ray()
        out = trained.output
        console.print(
            f"[bold]trained[/] {out.pipeline}: {out.train_beats} train / {out.test_beats} test beats, "
            f"{out.params} params, {out.train_seconds:.0f}s, host accuracy {out.host_accuracy:.2%}, "
            f"ONNX vs Keras max |diff| {out.onnx_max_abs_diff:.2g}"
        )
        for note in out.notes:
            console.print(f"  note: {note}")

        with tempfile.TemporaryDirectory() as tmp:
            onnx_path, dataset_path = trained.write(Path(tmp))
            model = client.upload(onnx_path, format="onnx", metadata=trained.metadata())
            dataset = client.upload(dataset_path, format="npz", metadata={"pipeline": out.pipeline, "split": out.split})
        spec = JobSpec(
            name=f"{PIPELINE}-onnxruntime-fp32",
            backend="onnxruntime",
            model=model,
            dataset=dataset,
            batch_sizes=options.batch_sizes,
            measurement=MeasurementSettings(min_duration_s=options.min_duration_s),
            pipeline=PIPELINE,
            labels={"split": out.split},
        )
        job_ids = client.submit(spec, agent_ids=[agent_id])
        console.print(f"[bold]dispatched[/] job(s) {', '.join(job_ids)} (model sha256 {model.sha256[:12]}...)")
        rows = _wait_for_jobs(client, job_ids, console)
    finally:
        client.close()
        agent.terminate()
        try:
            agent.wait(timeout=15)
        except subprocess.TimeoutExpired:
            agent.kill()
        coordinator.stop()

    console.print(results_table(rows, title="EdgeLab demo: on-device results (ONNX Runtime, CPU)"))
    for _, result in rows:
        if result is not None:
            console.print(accuracy_table(result))
            for scope in dict.fromkeys(lat.scope for lat in result.latency):
                console.print(f"latency scope: {scope}")
            if result.manifest.get("power"):
                console.print(f"power: {result.manifest['power']}")
    console.print(f"demo wall time {time.perf_counter() - started:.0f}s; results kept in {settings.db_path}")
    return rows
