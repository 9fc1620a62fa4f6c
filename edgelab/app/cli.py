"""The `edgelab` command line."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from edgelab.config import Settings, load_settings
from edgelab.errors import EdgeLabError

if TYPE_CHECKING:
    from coordinator.client import ControlClient, JobDetails
    from coordinator.training import TrainedArtifacts
    from edgelab.app.launch import MatrixLaunchFile
    from edgelab.domain import BenchmarkResult, Job, TrainingRun

PIPED_WIDTH = 200
app = typer.Typer(help="EdgeLab: benchmark ML models on a fleet of edge devices.", no_args_is_help=True)
coordinator_app = typer.Typer(help="Run the coordinator.", no_args_is_help=True)
jobs_app = typer.Typer(help="Launch and inspect benchmark jobs.", no_args_is_help=True)
agents_app = typer.Typer(help="Inspect the fleet.", no_args_is_help=True)
runs_app = typer.Typer(help="Inspect training runs stored by the coordinator.", no_args_is_help=True)
app.add_typer(coordinator_app, name="coordinator")
app.add_typer(jobs_app, name="jobs")
app.add_typer(agents_app, name="agents")
app.add_typer(runs_app, name="runs")

# Piped or logged output gets a wide console: rich's 80-column default squeezes the result tables unreadable.
console = Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML settings file (also EDGELAB_CONFIG).")]
HomeOpt = Annotated[Path | None, typer.Option("--home", help="Data dir (also EDGELAB_HOME; default ~/.edgelab).")]
CoordinatorOpt = Annotated[str | None, typer.Option("--coordinator", "-c", help="Coordinator HOST:PORT.")]
OperatorTokenOpt = Annotated[str | None, typer.Option("--operator-token", help="Also EDGELAB_OPERATOR_TOKEN.")]


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config, **overrides)
    except EdgeLabError as exc:
        _fail(exc)


def _fail(exc: Exception) -> NoReturn:
    console.print(f"[red]error:[/] {escape(str(exc))}")
    raise typer.Exit(1)


def _control(config: Path | None, coordinator: str | None, operator_token: str | None) -> ControlClient:
    from coordinator.client import ControlClient

    settings = _settings(config, operator_token=operator_token)
    return ControlClient(coordinator or settings.address, settings.operator_token, tls=settings.client_tls())


@app.command()
def demo(
    data: Annotated[Path | None, typer.Option(help="MIT-BIH directory (default ../shared/data/mitdb).")] = None,
    home: HomeOpt = None,
    epochs: Annotated[int, typer.Option(min=1)] = 6,
    split: Annotated[
        str, typer.Option(help="inter-patient (DS1/DS2, honest) or random (leaks patients).")
    ] = "inter-patient",
    records: Annotated[str | None, typer.Option(help="Comma-separated record subset, e.g. 100,119.")] = None,
    batch_sizes: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1,8,32",
    min_duration: Annotated[float, typer.Option(help="Timed phase per batch size, seconds.")] = 3.0,
    backends: Annotated[
        str, typer.Option(help="Comma-separated subset of onnxruntime,tflite,tensorflow (FP32 and INT8 each).")
    ] = "onnxruntime,tflite,tensorflow",
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster; default: local Ray.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Local coordinator + one local agent: train a 1D CNN on MIT-BIH, convert it, benchmark every CPU runtime."""
    # Before grpc loads: its core logs a line for every fork Ray makes while our server threads run.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    from edgelab.app.demo import DemoOptions, run_demo

    settings = _settings(config, home=home, mitdb=data, ray_address=ray_address, port=0)
    options = DemoOptions(
        epochs=epochs,
        split=split,
        records=tuple(records.split(",")) if records else None,
        batch_sizes=[int(b) for b in batch_sizes.split(",")],
        min_duration_s=min_duration,
        backends=tuple(backends.split(",")),
    )
    try:
        run_demo(settings, options, console)
    except EdgeLabError as exc:
        _fail(exc)


@app.command()
def dashboard(
    port: Annotated[int, typer.Option(help="HTTP port of the dashboard.")] = 8501,
    address: Annotated[str, typer.Option(help="HTTP listen address (0.0.0.0: the whole LAN).")] = "127.0.0.1",
    home: HomeOpt = None,
    coordinator: CoordinatorOpt = None,
    operator_token: OperatorTokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the Streamlit dashboard (Results, Fleet, Launch, Training) on the local results store."""
    import importlib.util
    import subprocess

    from edgelab.errors import MissingExtraError

    if importlib.util.find_spec("streamlit") is None:
        _fail(MissingExtraError("streamlit", "dashboard"))
    import dashboard as dashboard_package
    from dashboard.config import COORDINATOR_ENV

    settings = _settings(config, home=home, operator_token=operator_token)
    # The Streamlit process re-reads settings from the environment (dashboard/config.py).
    env = {**os.environ, "EDGELAB_HOME": str(settings.home), COORDINATOR_ENV: coordinator or settings.address}
    if config is not None:
        env["EDGELAB_CONFIG"] = str(config)
    if settings.operator_token:
        env["EDGELAB_OPERATOR_TOKEN"] = settings.operator_token
    app_path = Path(dashboard_package.__file__).parent / "app.py"
    console.print(
        f"dashboard on http://{address}:{port}, results store {settings.db_path}, coordinator {env[COORDINATOR_ENV]}"
    )
    command = [sys.executable, "-m", "streamlit", "run", str(app_path), "--server.port", str(port)]
    command += ["--server.address", address, "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    raise typer.Exit(subprocess.call(command, env=env))


@app.command()
def train(
    pipelines: Annotated[
        list[str] | None, typer.Argument(help="Pipeline name(s), e.g. mitdb-beats-1d (--list names all).")
    ] = None,
    list_pipelines: Annotated[bool, typer.Option("--list", help="List the pipelines and exit.")] = False,
    coordinator: CoordinatorOpt = None,
    data: Annotated[
        Path | None, typer.Option(help="Data directory: MIT-BIH (default), LSAD or an image folder, per pipeline.")
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Where to write the ONNX model and test set (one subfolder per run when several).")
    ] = Path("artifacts"),
    epochs: Annotated[int, typer.Option(min=1)] = 3,
    split: str = "inter-patient",
    seeds: Annotated[
        str, typer.Option("--seeds", "--seed", help="Comma-separated: one run per pipeline x seed.")
    ] = "0",
    records: Annotated[str | None, typer.Option(help="Comma-separated record subset, e.g. 100,119.")] = None,
    max_train_beats: Annotated[int | None, typer.Option(min=1, help="Cap on training beats, for quick runs.")] = None,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster; default: local Ray.")] = None,
    operator_token: OperatorTokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Train pipelines x seeds as parallel Ray tasks; write each run's artifacts, and with --coordinator
    upload them and record the runs in its results store (`edgelab runs list`)."""
    from pipelines.registry import PIPELINES

    if list_pipelines or not pipelines:
        for name, known in sorted(PIPELINES.items()):
            console.print(f"[bold]{name}[/bold]  {known.description}", highlight=False)
        raise typer.Exit(0 if list_pipelines else 2)
    import socket
    import time

    from coordinator.training import TrainedArtifacts, shutdown_ray, to_train_config, train_with_ray
    from edgelab.app.report import training_table
    from edgelab.domain import TrainingConfig, TrainingRun, TrainingState
    from pipelines.registry import check_known

    settings = _settings(config, mitdb=data, ray_address=ray_address, operator_token=operator_token)
    try:
        check_known(pipelines)
        configs = [
            TrainingConfig(
                split=split,
                epochs=epochs,
                seed=seed,
                records=records.split(",") if records else [],
                max_train_beats=max_train_beats or 0,
            )
            for seed in _int_list(seeds, "--seeds")
        ]
        combinations = [(name, c) for name in pipelines for c in configs]
        jobs = [(name, to_train_config(c, settings.mitdb)) for name, c in combinations]
    except EdgeLabError as exc:
        _fail(exc)
    finished: dict[int, float] = {}
    started = time.time()
    with console.status(f"training {len(jobs)} run(s) with Ray ..."):
        try:
            outcomes = train_with_ray(
                jobs, ray_address=settings.ray_address, on_done=lambda i, _: finished.update({i: time.time()})
            )
        except EdgeLabError as exc:
            _fail(exc)
        finally:
            shutdown_ray()
    runs: list[tuple[TrainingRun, TrainedArtifacts | None, dict[str, Path]]] = []
    for i, ((name, train_config), outcome) in enumerate(zip(combinations, outcomes, strict=True)):
        trained = outcome if isinstance(outcome, TrainedArtifacts) else None
        run = TrainingRun(
            run_id="",
            pipeline=name,
            config=train_config,
            state=TrainingState.SUCCEEDED if trained else TrainingState.FAILED,
            origin=f"cli@{socket.gethostname()}",
            created_at=started,
            started_at=started,
            finished_at=finished[i],
            error="" if isinstance(outcome, TrainedArtifacts) else outcome.error,
            summary=trained.summary() if trained else None,
        )
        paths = {}
        if trained is not None:
            paths = trained.write(out if len(jobs) == 1 else out / f"{name}-seed{train_config.seed}")
            console.print(f"wrote {', '.join(map(str, paths.values()))}")
        runs.append((run, trained, paths))
    if coordinator:
        try:
            _record_runs(runs, _control(config, coordinator, operator_token))
        except EdgeLabError as exc:
            _fail(exc)
    console.print(training_table([run for run, _, _ in runs]))
    if any(run.state is TrainingState.FAILED for run, _, _ in runs):
        raise typer.Exit(1)


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise EdgeLabError(f"{option}: comma-separated integers expected, got {text!r}") from None


def _record_runs(
    runs: list[tuple[TrainingRun, TrainedArtifacts | None, dict[str, Path]]], client: ControlClient
) -> None:
    """Upload each trained run's artifacts and record every run (failed ones too) in the coordinator's store."""
    from coordinator.training import DATASET, ONNX, SAVEDMODEL

    with client:
        for run, trained, paths in runs:
            if trained is not None:
                shas = {
                    fmt: client.upload(path, format=fmt, metadata={} if fmt == DATASET else trained.metadata()).sha256
                    for fmt, path in paths.items()
                }
                run.model_sha256, run.dataset_sha256 = shas[ONNX], shas[DATASET]
                run.savedmodel_sha256 = shas.get(SAVEDMODEL, "")
            run.run_id = client.record_training_run(run)
            console.print(f"recorded run {run.run_id} ({run.pipeline}, seed {run.config.seed}) at {client.address}")


@coordinator_app.command("serve")
def coordinator_serve(
    host: Annotated[str | None, typer.Option(help="Listen address (also EDGELAB_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (also EDGELAB_PORT; default 50051).")] = None,
    home: HomeOpt = None,
    fleet_token: Annotated[str | None, typer.Option(help="Agents must present it (also EDGELAB_FLEET_TOKEN).")] = None,
    operator_token: OperatorTokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the coordinator's gRPC API until interrupted."""
    from coordinator.server import start_coordinator

    settings = _settings(
        config, host=host, port=port, home=home, fleet_token=fleet_token, operator_token=operator_token
    )
    try:
        coordinator = start_coordinator(settings)
    except EdgeLabError as exc:
        _fail(exc)
    console.print(f"coordinator listening on {coordinator.address}, store {settings.db_path}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    coordinator.stop()


@app.command(
    "agent",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,  # `edgelab agent --help` is agent.cli's own
)
def agent_command(ctx: typer.Context) -> None:
    """Run a device agent (`agent run`) or show what this device can run (`agent probe`)."""
    from agent.cli import main

    code = main(ctx.args)
    if code:
        raise typer.Exit(code)


@jobs_app.command("launch")
def jobs_launch(
    spec_file: Annotated[Path, typer.Argument(help="YAML launch file (see README).")],
    coordinator: CoordinatorOpt = None,
    operator_token: OperatorTokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Upload the artifacts a launch file names and queue one job per target agent.

    A launch file with a `matrix:` section first builds every compression x target artifact
    as Ray tasks, then queues jobs for each, and prints their sizes and host-side accuracy."""
    from edgelab.app.launch import ArtifactSource, MatrixLaunchFile, load_launch
    from edgelab.domain import ArtifactRef, JobSpec

    try:
        launch = load_launch(spec_file)
        if isinstance(launch, MatrixLaunchFile):
            _launch_matrix(launch, config, coordinator, operator_token)
            return
        with _control(config, coordinator, operator_token) as client:

            def resolve(source: ArtifactSource, default_format: str) -> ArtifactRef:
                if source.path is None:
                    return ArtifactRef(sha256=source.sha256 or "", format=source.format or default_format)
                return client.upload(source.path, format=source.format or default_format)

            spec = JobSpec(
                name=launch.name,
                backend=launch.backend,
                model=resolve(launch.model, "onnx"),
                dataset=resolve(launch.dataset, "npz"),
                precision=launch.precision,
                batch_sizes=launch.batch_sizes,
                measurement=launch.measurement.settings(),
                pipeline=launch.pipeline,
                backend_options=launch.backend_options,
            )
            job_ids = client.submit(spec, launch.agents, any_agent=launch.any_agent)
    except (EdgeLabError, ValueError) as exc:
        _fail(exc)
    console.print(f"queued {len(job_ids)} job(s): {' '.join(job_ids)}")


def _launch_matrix(
    launch: MatrixLaunchFile, config: Path | None, coordinator: str | None, operator_token: str | None
) -> None:
    from coordinator.matrix import launch_matrix, matrix_table

    settings = _settings(config, operator_token=operator_token)
    with _control(config, coordinator, operator_token) as client, console.status(f"building matrix {launch.name} ..."):
        result, jobs = launch_matrix(launch, client, mitdb=settings.mitdb, ray_address=settings.ray_address)
    console.print(matrix_table(result.records, title=f"Matrix {launch.name}", jobs=jobs))
    console.print(
        f"{len(result.records) - len(result.failures)} artifacts, {len(result.failures)} failed, "
        f"{sum(map(len, jobs.values()))} job(s) queued in {result.seconds:.0f} s; "
        f"records in {launch.matrix.out / 'matrix.json'}"
    )


@jobs_app.command("list")
def jobs_list(
    coordinator: CoordinatorOpt = None,
    limit: int = 50,
    operator_token: OperatorTokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List recent jobs."""
    from edgelab.app.report import jobs_table

    try:
        with _control(config, coordinator, operator_token) as client:
            console.print(jobs_table(client.list_jobs(limit)))
    except EdgeLabError as exc:
        _fail(exc)


@jobs_app.command("show")
def jobs_show(
    job_id: str,
    against: Annotated[
        str | None,
        typer.Argument(
            help="A second job: both are shown, then compared by p50 (faster / slower / no significant difference)."
        ),
    ] = None,
    coordinator: CoordinatorOpt = None,
    operator_token: OperatorTokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Show one job's result: latency per batch size with CIs, memory, accuracy, provenance, and any late results."""
    try:
        with _control(config, coordinator, operator_token) as client:
            details = client.get_job_details(job_id)
            other = client.get_job_details(against) if against else None
    except EdgeLabError as exc:
        _fail(exc)
    _show_details(details)
    if other is not None:
        from edgelab.app.report import comparison_table, profile_comparison_table

        console.print()
        _show_details(other)
        pair = ((other.job, other.result), (details.job, details.result))
        console.print(comparison_table(*pair))
        operators = profile_comparison_table(*pair)
        if operators is not None:
            console.print(operators)


def _show_details(details: JobDetails) -> None:
    from edgelab.app.report import shown

    job, result = details.job, details.result
    console.print(f"job {job.job_id} [bold]{job.state.value}[/] attempt {job.attempt}: {shown(job.spec.name)}")
    if result is not None:
        console.print(
            f"result written by the {details.written_by}"
            + (" (its verdict, no agent reported)" if details.written_by == "coordinator" else "")
            + f", attempt {details.result_attempt} held by agent {shown(details.result_agent_id) or '?'}"
        )
    _print_result(job, result, "Latency and throughput")
    for late in details.late_results:
        console.print(
            f"[yellow]late result[/]: attempt {late.attempt} by agent {late.agent_id}, received"
            f" {_when(late.received_at)} after the job was closed; kept beside the job's result, not instead of it"
        )
        _print_result(job, late.result, f"Late result of attempt {late.attempt}")
    if details.late_results_omitted:
        console.print(f"{details.late_results_omitted} more late result(s) left out of the reply (size limit)")


def _when(unix_s: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(unix_s).isoformat(sep=" ", timespec="seconds")


def _print_result(job: Job, result: BenchmarkResult | None, title: str) -> None:
    from edgelab.app.report import accuracy_table, memory_line, profile_tables, results_table, shown

    console.print(results_table([(job, result)], title=title))
    if result is not None:
        if result.failure is not None and result.failure.detail:
            console.print(shown(result.failure.detail))
        console.print(accuracy_table(result))
        if result.latency:
            console.print(f"latency scope: {shown(result.latency[0].scope)}")
            console.print(
                "p50 95% CI: distribution-free, from order statistics (assumes independent iterations); CV: std / mean"
            )
        if result.failure is None:
            console.print(memory_line(result.memory))
            for table in profile_tables(result):
                console.print(table)
            if not result.profiles:
                console.print(f"operator profile: {shown(result.manifest.get('operator_profile', 'not reported'))}")
        for key, value in sorted(result.manifest.items()):
            console.print(f"  {shown(key)}: {shown(value)}")


@agents_app.command("list")
def agents_list(
    coordinator: CoordinatorOpt = None, operator_token: OperatorTokenOpt = None, config: ConfigOpt = None
) -> None:
    """List registered agents with their status and runtimes."""
    from edgelab.app.report import agents_table

    try:
        with _control(config, coordinator, operator_token) as client:
            console.print(agents_table(client.list_agents()))
    except EdgeLabError as exc:
        _fail(exc)


@agents_app.command("revoke")
def agents_revoke(
    agent_id: str, coordinator: CoordinatorOpt = None, operator_token: OperatorTokenOpt = None, config: ConfigOpt = None
) -> None:
    """Refuse an agent's credential from now on; its jobs are requeued or failed."""
    try:
        with _control(config, coordinator, operator_token) as client:
            requeued, failed = client.revoke_agent(agent_id)
    except EdgeLabError as exc:
        _fail(exc)
    console.print(f"revoked agent {agent_id}: {len(requeued)} job(s) requeued, {len(failed)} pinned job(s) failed")


@runs_app.command("list")
def runs_list(
    coordinator: CoordinatorOpt = None,
    limit: int = 50,
    operator_token: OperatorTokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List training runs (StartTraining's, the dashboard's, and `edgelab train --coordinator`'s), newest first."""
    from edgelab.app.report import training_table

    try:
        with _control(config, coordinator, operator_token) as client:
            console.print(training_table(client.list_training_runs(limit)))
    except EdgeLabError as exc:
        _fail(exc)
