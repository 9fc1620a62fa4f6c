"""The job commands through typer's CliRunner against a real coordinator on loopback: id prefixes, list
filters, cancel and retry, `launch --wait`, clear errors, and the coordinator's event log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from agent.client import AgentClient
from coordinator.client import ControlClient
from coordinator.server import Coordinator
from edgelab.app import cli
from edgelab.app.cli import app
from edgelab.config import load_settings
from edgelab.domain import BenchmarkResult, Failure, FailureKind, JobSpec, JobState, Precision
from edgelab.errors import ConfigError
from edgelab.ids import AMBIGUOUS_SHOWN
from tests.factories import CAPS, LATENCY

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "console", Console(width=300))
    monkeypatch.setattr(cli, "WAIT_POLL_S", 0.05)


def _invoke(coordinator: Coordinator, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--coordinator", coordinator.address])
    # Expected failures end as typer.Exit (SystemExit), never as an exception with a traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def _spec(coordinator: Coordinator, onnx_model: Path, test_set: Path, **changes: object) -> JobSpec:
    with ControlClient(coordinator.address) as client:
        model = client.upload(onnx_model, format="onnx")
        dataset = client.upload(test_set, format="npz")
    spec = JobSpec("bench", "onnxruntime", model, dataset)
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


def _launch_file(tmp_path: Path, onnx_model: Path, test_set: Path, extra: str = "") -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(f"name: waited\nmodel: {{path: {onnx_model}}}\ndataset: {{path: {test_set}}}\n{extra}")
    return path


def test_id_prefixes_name_one_job_or_list_the_candidates(
    coordinator: Coordinator, onnx_model: Path, test_set: Path
) -> None:
    # prepare: 17 jobs, so two of them share a first hex digit
    store = coordinator.store
    agent_id, _ = store.register_agent("pi", CAPS)
    spec = _spec(coordinator, onnx_model, test_set)
    job_ids = [store.submit_job(spec, agent_id) for _ in range(17)]
    digit, _ = Counter(j[0] for j in job_ids).most_common(1)[0]
    one = job_ids[0]
    unique = next(one[:n] for n in range(1, 13) if sum(j.startswith(one[:n]) for j in job_ids) == 1)

    # execute
    shown_code, shown = _invoke(coordinator, "jobs", "show", unique)
    ambiguous_code, ambiguous = _invoke(coordinator, "jobs", "show", digit)
    unknown_code, unknown = _invoke(coordinator, "jobs", "show", "zzz")
    revoke_code, revoked = _invoke(coordinator, "agents", "revoke", agent_id[:4])

    # assert
    assert shown_code == 0 and f"job {one} " in shown
    candidates = [j for j in job_ids if j.startswith(digit)]
    assert ambiguous_code == 1 and f"job id prefix '{digit}' is ambiguous: {len(candidates)} match" in ambiguous
    assert all(j in ambiguous for j in candidates[:AMBIGUOUS_SHOWN])
    assert unknown_code == 1 and "unknown job 'zzz'" in unknown
    assert revoke_code == 0 and f"revoked agent {agent_id}: 0 job(s) requeued, 17 pinned job(s) failed" in revoked


def test_jobs_list_filters_by_state_agent_backend_precision_and_matrix_and_counts(
    coordinator: Coordinator, onnx_model: Path, test_set: Path
) -> None:
    # prepare: on pi, one succeeded, one failed, one leased, one queued at int8; on nano one tflite job of a matrix
    store = coordinator.store
    pi, _ = store.register_agent("pi", CAPS)
    nano, _ = store.register_agent("nano", CAPS)
    spec = _spec(coordinator, onnx_model, test_set)
    done = store.submit_job(spec, pi)
    broken = store.submit_job(spec, pi)
    for job_id, result in (
        (done, BenchmarkResult(latency=[LATENCY])),
        (broken, BenchmarkResult(failure=Failure(FailureKind.CRASH, "segfault"))),
    ):
        lease = store.lease_job(pi, ["onnxruntime"])
        assert lease is not None and lease.job_id == job_id
        store.report_result(pi, job_id, lease.attempt, result)
    leased = store.submit_job(spec, pi)
    assert store.lease_job(pi, ["onnxruntime"]) is not None
    queued = store.submit_job(_spec(coordinator, onnx_model, test_set, precision=Precision.INT8), pi)
    matrix = store.submit_job(_spec(coordinator, onnx_model, test_set, backend="tflite", labels={"matrix": "m1"}), nano)

    # execute
    _, everything = _invoke(coordinator, "jobs", "list")
    _, finished = _invoke(coordinator, "jobs", "list", "--state", "succeeded", "--state", "failed")
    _, on_nano = _invoke(coordinator, "jobs", "list", "--agent", "nano")
    _, by_prefix = _invoke(coordinator, "jobs", "list", "--agent", pi[:5], "--precision", "int8")
    _, by_backend = _invoke(coordinator, "jobs", "list", "--backend", "tflite", "--matrix", "m1")
    _, limited = _invoke(coordinator, "jobs", "list", "--limit", "2")

    # assert
    assert "5 job(s): 2 queued, 1 leased, 1 succeeded, 1 failed" in everything
    assert all(j in everything for j in (done, broken, leased, queued, matrix))
    assert {done, broken} == {j for j in (done, broken, leased, queued, matrix) if j in finished}
    assert "2 job(s): 1 succeeded, 1 failed" in finished
    assert matrix in on_nano and "1 job(s): 1 queued" in on_nano and done not in on_nano
    assert queued in by_prefix and "1 job(s): 1 queued" in by_prefix
    assert matrix in by_backend and "1 job(s)" in by_backend
    assert "5 job(s): 2 queued, 1 leased, 1 succeeded, 1 failed; showing the newest 2" in limited
    assert matrix in limited and queued in limited and done not in limited


def test_cancel_and_retry_by_prefix(coordinator: Coordinator, onnx_model: Path, test_set: Path) -> None:
    # prepare
    store = coordinator.store
    pi, _ = store.register_agent("pi", CAPS)
    job_id = store.submit_job(_spec(coordinator, onnx_model, test_set), pi)

    # execute
    cancel_code, cancelled = _invoke(coordinator, "jobs", "cancel", job_id[:8])
    again_code, again = _invoke(coordinator, "jobs", "cancel", job_id)
    retry_code, retried = _invoke(coordinator, "jobs", "retry", job_id[:8])

    # assert
    assert cancel_code == 0 and f"cancelled job {job_id} (was queued)" in cancelled
    assert again_code == 1 and f"job {job_id} already cancelled: nothing to cancel" in again
    assert retry_code == 0
    (new_id,) = re.findall(rf"job {job_id} queued again as (\w+)", retried)
    assert store.get_job(job_id).state is JobState.CANCELLED
    assert store.get_job(new_id).state is JobState.QUEUED and store.get_job(new_id).agent_id == pi


def test_launch_wait_follows_the_jobs_and_exits_1_when_one_failed(
    coordinator: Coordinator, onnx_model: Path, test_set: Path, tmp_path: Path
) -> None:
    # prepare: two agents that lease their job and report, one a result and one a failure
    agents = [AgentClient(coordinator.address) for _ in range(2)]
    for i, agent in enumerate(agents):
        agent.register(f"box-{i}", CAPS, None)
    results = [
        BenchmarkResult(load_s=0.1, latency=[LATENCY]),
        BenchmarkResult(failure=Failure(FailureKind.BUILD, "bad op")),
    ]

    def run_jobs() -> None:
        for agent, result in zip(agents, results, strict=True):
            lease = None
            while lease is None:
                time.sleep(0.05)
                lease = agent.lease()
            agent.report(lease.job_id, lease.attempt, result)

    worker = threading.Thread(target=run_jobs)
    worker.start()

    # execute
    code, output = _invoke(coordinator, "jobs", "launch", str(_launch_file(tmp_path, onnx_model, test_set)), "--wait")
    worker.join(timeout=30)

    # assert
    assert code == cli.EXIT_FAILED, output
    assert "queued 2 job(s)" in output and "jobs: 1 succeeded, 1 failed" in output
    assert "2 job(s): 1 succeeded, 1 failed" in output and "build: bad op" in output


def test_launch_wait_gives_up_after_its_timeout(
    coordinator: Coordinator, onnx_model: Path, test_set: Path, tmp_path: Path
) -> None:
    # prepare: an agent that never leases
    AgentClient(coordinator.address).register("idle", CAPS, None)
    launch = _launch_file(tmp_path, onnx_model, test_set)

    # execute
    code, output = _invoke(coordinator, "jobs", "launch", str(launch), "--wait", "--timeout", "0.3")

    # assert
    assert code == cli.EXIT_TIMEOUT
    assert "timed out after 0.3 s: 1 job(s) still running" in output and "1 job(s): 1 queued" in output


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("name: x\nmodel: {path: gone.onnx}\ndataset: {sha256: abc}\n", "model.path: no such file or directory"),
        ("name: [x\n", "cannot read launch file"),
        ("name: x\nbackend: onnx\nmodel: {sha256: a}\ndataset: {sha256: b}\n", "backend 'onnx' is not one of"),
        ("name: x\nmodel: {sha256: a}\ndataset: {sha256: b}\nagents: [nobody]\n", "unknown agent 'nobody'"),
    ],
)
def test_bad_launch_files_fail_with_one_line_and_queue_nothing(
    coordinator: Coordinator, tmp_path: Path, body: str, message: str
) -> None:
    launch = tmp_path / "bad.yaml"
    launch.write_text(body)

    code, output = _invoke(coordinator, "jobs", "launch", str(launch))

    assert code == 1 and output.startswith("error: ") and message in output
    assert coordinator.store.list_jobs() == []


def test_an_unreachable_coordinator_is_one_line_for_every_command() -> None:
    for args in (["jobs", "list"], ["jobs", "cancel", "abc"], ["jobs", "retry", "abc"], ["agents", "revoke", "a"]):
        result = runner.invoke(app, [*args, "--coordinator", "127.0.0.1:1"])
        assert isinstance(result.exception, SystemExit) and result.exit_code == 1
        assert result.output.startswith("error: coordinator at 127.0.0.1:1 unreachable")


def test_log_level_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELAB_LOG_LEVEL", "chatty")

    with pytest.raises(ConfigError, match="log_level: 'chatty' is not one of DEBUG, INFO, WARNING, ERROR"):
        load_settings()


def test_served_coordinator_logs_one_line_per_agent_and_job_event(
    tmp_path: Path, onnx_model: Path, test_set: Path
) -> None:
    # prepare: `edgelab coordinator serve` on a free port, logging at INFO
    env = {**os.environ, "EDGELAB_HOME": str(tmp_path / "home"), "EDGELAB_LOG_LEVEL": "INFO"}
    serve = subprocess.Popen(
        [sys.executable, "-m", "edgelab", "coordinator", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert serve.stdout is not None
        address = re.findall(r"listening on (\S+),", serve.stdout.readline())[0]
        # execute: an agent registers, a job is queued, leased and reported
        agent = AgentClient(address)
        agent.register("pi", CAPS, None)
        with ControlClient(address) as control:
            spec = JobSpec(
                "logged",
                "onnxruntime",
                control.upload(onnx_model, format="onnx"),
                control.upload(test_set, format="npz"),
            )
            (job_id,) = control.submit(spec)
            lease = agent.lease()
            assert lease is not None
            agent.report(job_id, lease.attempt, BenchmarkResult(failure=Failure(FailureKind.CRASH, "segfault")))
    finally:
        serve.send_signal(signal.SIGTERM)
        _, log = serve.communicate(timeout=30)

    # assert: one INFO line per event, nothing from the libraries
    assert serve.returncode == 0, log
    assert agent.registration is not None
    agent_id = agent.registration.agent_id
    lines = log.splitlines()
    assert any(f"agent {agent_id} registered: 'pi'" in line for line in lines), log
    assert any(f"job {job_id} ('logged', onnxruntime fp32) queued for agent {agent_id}" in line for line in lines)
    assert any(f"job {job_id} ('logged') leased to agent {agent_id}, attempt 1" in line for line in lines)
    assert any(f"job {job_id} failed (crash: segfault) on agent {agent_id}" in line for line in lines)
    assert all(" INFO edgelab.coordinator: " in line for line in lines), log
