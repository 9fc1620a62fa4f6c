"""The `edgelab` command line."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from edgelab.config import Settings, load_settings
from edgelab.domain import ClassWeights, JobState, Precision
from edgelab.errors import ConfigError, EdgeLabError
from edgelab.ids import resolve_id

if TYPE_CHECKING:
    from rich.progress import Progress

    from coordinator.client import ControlClient, JobDetails
    from coordinator.training import TrainedArtifacts
    from edgelab.app.launch import MatrixLaunchFile
    from edgelab.domain import AgentInfo, BenchmarkResult, Job, TrainingRun

PIPED_WIDTH = 200
ID_LENGTH = 12  # job and agent ids: uuid4().hex[:12] (coordinator/store.py); shorter is a prefix
WAIT_POLL_S = 1.0  # how often `--wait` asks the coordinator for the jobs' states
EXIT_FAILED = 1  # a command that waited saw a job fail or be cancelled
EXIT_TIMEOUT = 2  # --timeout passed with jobs unfinished
EXIT_INTERRUPTED = 130  # Ctrl-C while waiting (the jobs keep running)
DASHBOARD_STOP_GRACE_S = 10.0  # after SIGTERM, the Streamlit server is killed if still running
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
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
    from edgelab.app.report import shown

    console.print(f"[red]error:[/] {shown(str(exc))}")
    raise typer.Exit(1)


@contextmanager
def _errors() -> Iterator[None]:
    """Expected failures (coordinator unreachable, unknown id, bad file or value) as one red line, no traceback."""
    try:
        yield
    except (EdgeLabError, ValueError, OSError) as exc:
        _fail(exc)


def _job_id(client: ControlClient, prefix: str) -> str:
    if len(prefix) >= ID_LENGTH:  # a whole id: GetJob says whether it exists, no listing needed
        return prefix
    jobs = client.list_jobs(None)
    return resolve_id(prefix, {j.job_id: f"{j.spec.name}, {j.state.value}" for j in jobs}, "job")


def _agent_id(prefix: str, agents: Sequence[AgentInfo]) -> str:
    return resolve_id(prefix, {a.agent_id: f"{a.name}, {a.status}" for a in agents}, "agent")


def _control(config: Path | None, coordinator: str | None, operator_token: str | None) -> ControlClient:
    from coordinator.client import ControlClient

    settings = _settings(config, operator_token=operator_token)
    return ControlClient(coordinator or settings.address, settings.operator_token, tls=settings.client_tls())


@app.command()
def demo(
    data: Annotated[Path | None, typer.Option(help="MIT-BIH directory (default ../shared/data/mitdb).")] = None,
    home: HomeOpt = None,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Default: the pipeline's own (`edgelab train --list`).")
    ] = None,
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
    with _errors():
        _check_port_free(address, port)
    console.print(
        f"dashboard on http://{address}:{port}, results store {settings.db_path} (read-only), "
        f"coordinator {env[COORDINATOR_ENV]}"
    )
    command = [sys.executable, "-m", "streamlit", "run", str(app_path), "--server.port", str(port)]
    command += ["--server.address", address, "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    # Its own session: Ctrl-C in the terminal reaches only this process, which stops the server once.
    server = subprocess.Popen(command, env=env, start_new_session=True)
    stopping = threading.Event()

    def stop(signum: int, _: object) -> None:
        stopping.set()
        server.send_signal(signal.SIGTERM)
        killer = threading.Timer(DASHBOARD_STOP_GRACE_S, server.kill)  # a server that ignores SIGTERM
        killer.daemon = True
        killer.start()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    code = server.wait()
    if stopping.is_set():
        console.print("dashboard stopped")
        code = 0
    raise typer.Exit(code)


def _check_port_free(address: str, port: int) -> None:
    """A clear error before anything is printed when the dashboard's port is taken (Streamlit would only
    say so in its own log, after our address line)."""
    import socket

    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is no owner
        try:
            probe.bind((address, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot serve the dashboard on {address}:{port}: {exc.strerror}; "
                "another dashboard may run there: pick a free port with --port"
            ) from None


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
    epochs: Annotated[int | None, typer.Option(min=1, help="Default: each pipeline's own (--list shows it).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Default: each pipeline's own.")] = None,
    split: Annotated[
        str, typer.Option(help="inter-patient (DS1/DS2, honest) or random (leaks patients).")
    ] = "inter-patient",
    seeds: Annotated[
        str, typer.Option("--seeds", "--seed", help="Comma-separated: one run per pipeline x seed.")
    ] = "0",
    records: Annotated[str | None, typer.Option(help="Comma-separated record subset, e.g. 100,119.")] = None,
    max_train_beats: Annotated[int | None, typer.Option(min=1, help="Cap on training beats, for quick runs.")] = None,
    class_weights: Annotated[
        ClassWeights | None, typer.Option(help="balanced, or none (the plain loss). Default: each pipeline's own.")
    ] = None,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster; default: local Ray.")] = None,
    operator_token: OperatorTokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Train pipelines x seeds as parallel Ray tasks.

    Each run's artifacts are written under --out; with --coordinator they are uploaded and the runs
    recorded in its results store (`edgelab runs list`).
    """
    from pipelines.registry import PIPELINES

    if list_pipelines or not pipelines:
        for name, known in sorted(PIPELINES.items()):
            console.print(f"[bold]{name}[/bold]  {known.description} [dim]({known.budget})[/dim]", highlight=False)
        raise typer.Exit(0 if list_pipelines else 2)
    import socket

    from coordinator.training import TrainedArtifacts, shutdown_ray, to_train_config, train_with_ray
    from edgelab.app.report import training_table
    from edgelab.domain import TrainingConfig, TrainingRun, TrainingState
    from pipelines.registry import check_known, within_budget

    settings = _settings(config, mitdb=data, ray_address=ray_address, operator_token=operator_token)
    try:
        check_known(pipelines)
        configs = [
            TrainingConfig(
                split=split,
                epochs=epochs or 0,
                seed=seed,
                records=records.split(",") if records else [],
                max_train_beats=max_train_beats or 0,
                batch_size=batch_size or 0,
                class_weights=class_weights or "",
            )
            for seed in _int_list(seeds, "--seeds")
        ]
        combinations = [(name, within_budget(name, c)) for name in pipelines for c in configs]
        jobs = [(name, to_train_config(c, settings.mitdb)) for name, c in combinations]
    except EdgeLabError as exc:
        _fail(exc)
    finished: dict[int, float] = {}
    started = time.time()
    with _progress() as progress:
        task = progress.add_task(f"training {len(jobs)} run(s) with Ray", total=len(jobs))

        def done(index: int, _: object) -> None:
            finished[index] = time.time()
            progress.advance(task)

        try:
            outcomes = train_with_ray(jobs, ray_address=settings.ray_address, on_done=done)
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


def _progress(counted: bool = True) -> Progress:
    """A bar with its count (`counted`; else a pulse) and the elapsed time; the description says what it counts."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    count = (MofNCompleteColumn(),) if counted else ()
    return Progress(TextColumn("{task.description}"), BarColumn(), *count, TimeElapsedColumn(), console=console)


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
    fleet_token: Annotated[
        str | None, typer.Option(help="Agents must present it (also EDGELAB_FLEET_TOKEN); needed beyond loopback.")
    ] = None,
    operator_token: OperatorTokenOpt = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            help="DEBUG, INFO (one line per agent and job event, the default) or WARNING (also EDGELAB_LOG_LEVEL)."
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the coordinator's gRPC API until interrupted (beyond loopback: with an operator and a fleet token)."""
    from coordinator.server import freeze_startup_heap, start_coordinator

    settings = _settings(
        config,
        host=host,
        port=port,
        home=home,
        fleet_token=fleet_token,
        operator_token=operator_token,
        log_level=log_level,
    )
    _setup_logging(settings.log_level)
    try:
        coordinator = start_coordinator(settings)
    except EdgeLabError as exc:
        _fail(exc)
    freeze_startup_heap()
    console.print(f"coordinator listening on {coordinator.address}, store {settings.db_path}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    coordinator.stop()


def _setup_logging(level: str) -> None:
    """EdgeLab's own loggers at `level` on stderr; libraries (grpc, ray, tensorflow) only from WARNING on."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("edgelab").setLevel(level.upper())


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


WaitOpt = Annotated[
    bool, typer.Option("--wait", help="Wait for the jobs with a progress bar; exit 1 if any failed or was cancelled.")
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=0, help="With --wait: give up after this many seconds (exit 2); 0: never.")
]


@jobs_app.command("launch")
def jobs_launch(
    spec_file: Annotated[Path, typer.Argument(help="YAML launch file (see README).")],
    wait: WaitOpt = False,
    timeout: TimeoutOpt = 0.0,
    coordinator: CoordinatorOpt = None,
    operator_token: OperatorTokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Upload the artifacts a launch file names and queue one job per target agent.

    A launch file with a `matrix:` section first builds every compression x target artifact
    as Ray tasks, then queues jobs for each, and prints their sizes and host-side accuracy."""
    from edgelab.app.launch import DATASET_FORMAT, MODEL_FORMAT, ArtifactSource, MatrixLaunchFile, load_launch
    from edgelab.domain import ArtifactRef, JobSpec

    with _errors():
        launch = load_launch(spec_file)
        if isinstance(launch, MatrixLaunchFile):
            if launch.agents:
                with _control(config, coordinator, operator_token) as client:
                    agents = client.list_agents()
                launch.agents = [_agent_id(prefix, agents) for prefix in launch.agents]
            job_ids = _launch_matrix(launch, config, coordinator, operator_token)
        else:
            with _control(config, coordinator, operator_token) as client:

                def resolve(source: ArtifactSource, default_format: str) -> ArtifactRef:
                    if source.path is None:
                        return ArtifactRef(sha256=source.sha256 or "", format=source.format_or(default_format))
                    return client.upload(source.path, format=source.format_or(default_format))

                agents = client.list_agents() if launch.agents else []
                spec = JobSpec(
                    name=launch.name,
                    backend=launch.backend,
                    model=resolve(launch.model, MODEL_FORMAT),
                    dataset=resolve(launch.dataset, DATASET_FORMAT),
                    precision=launch.precision,
                    batch_sizes=launch.batch_sizes,
                    measurement=launch.measurement.settings(),
                    pipeline=launch.pipeline,
                    backend_options=launch.backend_options,
                )
                targets = [_agent_id(prefix, agents) for prefix in launch.agents]
                job_ids = client.submit(spec, targets, any_agent=launch.any_agent)
            console.print(f"queued {len(job_ids)} job(s): {' '.join(job_ids)}")
    if wait:
        _wait_and_report(job_ids, timeout, config, coordinator, operator_token)


def _launch_matrix(
    launch: MatrixLaunchFile, config: Path | None, coordinator: str | None, operator_token: str | None
) -> list[str]:
    from coordinator.matrix import launch_matrix, matrix_table

    settings = _settings(config, operator_token=operator_token)
    cells = len(launch.matrix.compressions) * len(launch.matrix.targets)
    # Ray builds the cells in parallel and reports them all at once: an elapsed-time bar, not a count.
    with _control(config, coordinator, operator_token) as client, _progress(counted=False) as progress:
        progress.add_task(f"building matrix {launch.name}: {cells} artifact(s), then uploading and queuing", total=None)
        result, jobs = launch_matrix(launch, client, mitdb=settings.mitdb, ray_address=settings.ray_address)
    console.print(matrix_table(result.records, title=f"Matrix {launch.name}", jobs=jobs))
    job_ids = [job_id for ids in jobs.values() for job_id in ids]
    console.print(
        f"{len(result.records) - len(result.failures)} artifacts, {len(result.failures)} failed, "
        f"{len(job_ids)} job(s) queued in {result.seconds:.0f} s; "
        f"records in {launch.matrix.out / 'matrix.json'}"
    )
    return job_ids


def _states(jobs: Iterable[Job]) -> str:
    """ "2 queued, 1 leased, 3 succeeded, 1 failed": the states present, in lifecycle order."""
    jobs = list(jobs)
    return ", ".join(f"{n} {state.value}" for state in JobState if (n := sum(j.state is state for j in jobs)))


def _wait_for(client: ControlClient, job_ids: Sequence[str], timeout_s: float) -> dict[str, Job]:
    """Poll the jobs until every one finished (or `timeout_s` passed, 0: never) under a progress bar."""
    jobs = {job_id: client.get_job(job_id)[0] for job_id in job_ids}
    deadline = time.monotonic() + timeout_s if timeout_s else None
    with _progress() as progress:
        task = progress.add_task("waiting", total=len(jobs))
        while True:
            done = sum(job.state.finished for job in jobs.values())
            progress.update(task, completed=done, description=f"jobs: {_states(jobs.values())}")
            if done == len(jobs) or (deadline is not None and time.monotonic() > deadline):
                return jobs
            time.sleep(WAIT_POLL_S)
            for job_id, job in jobs.items():
                if not job.state.finished:
                    jobs[job_id] = client.get_job(job_id)[0]


def _wait_and_report(
    job_ids: Sequence[str], timeout_s: float, config: Path | None, coordinator: str | None, operator_token: str | None
) -> None:
    """--wait: the progress bar, then every job's result; exit 1 if any failed or was cancelled, 2 on timeout."""
    from edgelab.app.report import results_table

    if not job_ids:
        return
    try:
        with _errors(), _control(config, coordinator, operator_token) as client:
            jobs = _wait_for(client, job_ids, timeout_s)
            rows = [(job, client.get_job(job.job_id)[1] if job.state.finished else None) for job in jobs.values()]
    except KeyboardInterrupt:
        console.print(f"stopped waiting; the {len(job_ids)} job(s) keep running (`edgelab jobs list`)")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    console.print(results_table(rows))
    unfinished = [job for job in jobs.values() if not job.state.finished]
    bad = [job for job in jobs.values() if job.state in (JobState.FAILED, JobState.CANCELLED)]
    console.print(f"{len(jobs)} job(s): {_states(jobs.values())}")
    if unfinished:
        console.print(f"[yellow]timed out after {timeout_s:g} s[/]: {len(unfinished)} job(s) still running")
        raise typer.Exit(EXIT_TIMEOUT)
    if bad:
        raise typer.Exit(EXIT_FAILED)


@jobs_app.command("list")
def jobs_list(
    state: Annotated[list[JobState] | None, typer.Option("--state", "-s", help="Only jobs in this state.")] = None,
    agent: Annotated[str | None, typer.Option(help="Only jobs of this agent (name, id or id prefix).")] = None,
    backend: Annotated[list[str] | None, typer.Option(help="Only jobs on this backend.")] = None,
    precision: Annotated[list[Precision] | None, typer.Option(help="Only jobs at this precision.")] = None,
    matrix: Annotated[str | None, typer.Option(help="Only the jobs of this matrix launch (its name).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many (newest first).")] = 50,
    coordinator: CoordinatorOpt = None,
    operator_token: OperatorTokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List jobs, newest first, with how many of the matching ones are in each state."""
    from edgelab.app.report import jobs_table

    with _errors(), _control(config, coordinator, operator_token) as client:
        jobs = client.list_jobs(None)
        if agent is not None:
            names = {a.agent_id for a in client.list_agents() if a.name == agent}
            agent_ids = names or {_agent_id(agent, client.list_agents())}
            jobs = [j for j in jobs if j.agent_id in agent_ids]
    jobs = [
        j
        for j in jobs
        if (not state or j.state in state)
        and (not backend or j.spec.backend in backend)
        and (not precision or j.spec.precision in precision)
        and (matrix is None or j.spec.labels.get("matrix") == matrix)
    ]
    console.print(jobs_table(jobs[:limit]))
    shown_part = f"; showing the newest {limit}" if len(jobs) > limit else ""
    console.print(f"{len(jobs)} job(s){': ' + _states(jobs) if jobs else ''}{shown_part}")


@jobs_app.command("cancel")
def jobs_cancel(
    job_ids: Annotated[list[str], typer.Argument(help="Job ids or unique id prefixes.")],
    coordinator: CoordinatorOpt = None,
    operator_token: OperatorTokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Cancel queued or leased jobs; an agent running one stops at its next lease renewal."""
    with _errors(), _control(config, coordinator, operator_token) as client:
        for prefix in job_ids:
            job_id = _job_id(client, prefix)
            previous = client.cancel_job(job_id)
            console.print(f"cancelled job {job_id} (was {previous.value})")


@jobs_app.command("retry")
def jobs_retry(
    job_ids: Annotated[list[str], typer.Argument(help="Job ids or unique id prefixes of finished jobs.")],
    wait: WaitOpt = False,
    timeout: TimeoutOpt = 0.0,
    coordinator: CoordinatorOpt = None,
    operator_token: OperatorTokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Queue finished jobs again (same spec, same agent) as new jobs; the old ones keep their results."""
    new_ids = []
    with _errors(), _control(config, coordinator, operator_token) as client:
        for prefix in job_ids:
            job_id = _job_id(client, prefix)
            new_ids.append(client.retry_job(job_id))
            console.print(f"job {job_id} queued again as {new_ids[-1]}")
    if wait:
        _wait_and_report(new_ids, timeout, config, coordinator, operator_token)


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="Job id or unique id prefix.")],
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
    with _errors(), _control(config, coordinator, operator_token) as client:
        details = client.get_job_details(_job_id(client, job_id))
        other = client.get_job_details(_job_id(client, against)) if against else None
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

    with _errors(), _control(config, coordinator, operator_token) as client:
        console.print(agents_table(client.list_agents()))


@agents_app.command("revoke")
def agents_revoke(
    agent_id: Annotated[str, typer.Argument(help="Agent id or unique id prefix.")],
    coordinator: CoordinatorOpt = None,
    operator_token: OperatorTokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Refuse an agent's credential from now on; its jobs are requeued or failed."""
    with _errors(), _control(config, coordinator, operator_token) as client:
        agent_id = _agent_id(agent_id, client.list_agents())
        requeued, failed = client.revoke_agent(agent_id)
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

    with _errors(), _control(config, coordinator, operator_token) as client:
        console.print(training_table(client.list_training_runs(limit)))
