"""kill -9 the coordinator process mid-job and restart it on the same home and port: nothing stored
is lost, the leased and the queued job both complete, and the agent reconnects with backoff."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coordinator.client import ControlClient
from edgelab.domain import JobSpec, JobState, MeasurementSettings
from edgelab.errors import CoordinatorUnavailable

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # ~20 s: two process starts and a 4 s outage

EDGELAB = [sys.executable, "-m", "edgelab"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate: Callable[[], object], timeout_s: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if predicate():
                return
        except CoordinatorUnavailable:
            pass
        assert time.monotonic() < deadline, what()
        time.sleep(0.05)


class Processes:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.tmp_path / f"{name}.log").open("ab")
        process = subprocess.Popen([*EDGELAB, *args], stdout=log, stderr=subprocess.STDOUT)
        self.running.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    for process in procs.running:
        process.kill()
        process.wait()


def test_coordinator_killed_mid_job_restarts_without_losing_anything(
    processes: Processes, tmp_path: Path, onnx_model: Path, test_set: Path
) -> None:
    port = _free_port()
    address = f"127.0.0.1:{port}"
    serve = ["coordinator", "serve", "--host", "127.0.0.1", "--port", str(port), "--home", str(tmp_path / "coord")]
    coordinator = processes.start("coordinator", *serve)
    control = ControlClient(address, timeout_s=5)
    _wait(lambda: control.list_agents() == [], 30, lambda: processes.log("coordinator"))
    processes.start("agent", "agent", "run", "-c", address, "--name", "pi", "--home", str(tmp_path / "agent"))
    _wait(lambda: control.list_agents(), 60, lambda: processes.log("agent"))
    (agent_before,) = control.list_agents()
    # Long enough that the agent is still timing when the coordinator dies, short enough to finish while it is down.
    measurement = MeasurementSettings(warmup_iterations=1, min_iterations=10, min_duration_s=1.0)
    spec = JobSpec(
        "t",
        "onnxruntime",
        control.upload(onnx_model, format="onnx"),
        control.upload(test_set, format="npz"),
        measurement=measurement,
    )
    (leased,) = control.submit(spec)
    (queued,) = control.submit(spec)
    _wait(lambda: control.get_job(leased)[0].state is JobState.LEASED, 30, lambda: processes.log("agent"))

    os.kill(coordinator.pid, signal.SIGKILL)
    coordinator.wait(timeout=10)
    time.sleep(4)  # the agent finishes the job while nobody answers, and retries its report with backoff
    processes.start("coordinator", *serve)
    _wait(lambda: control.get_job(queued)[0].state.finished, 60, lambda: processes.log("agent"))

    jobs = {job_id: control.get_job(job_id) for job_id in (leased, queued)}
    assert {job.state for job, _ in jobs.values()} == {JobState.SUCCEEDED}
    assert jobs[leased][0].attempt == 1  # the lease outlived the coordinator: no rerun
    assert all(result is not None and result.latency and result.accuracy for _, result in jobs.values())
    (agent_after,) = control.list_agents()
    assert agent_after.agent_id == agent_before.agent_id  # the agent's credential survived: no re-registration
    agent_log = processes.log("agent")
    assert "unreachable" in agent_log and "retrying in" in agent_log
    assert agent_log.count("registered as") == 1
