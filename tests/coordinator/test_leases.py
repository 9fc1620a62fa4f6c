"""Leases under faults on a real loopback coordinator with short leases: a killed agent's job is
re-leased to another agent, the old attempt's late report is refused, reports are idempotent."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.client import AgentClient
from agent.loop import Agent, AgentConfig
from coordinator.client import ControlClient
from coordinator.server import Coordinator, start_coordinator
from edgelab.config import Settings
from edgelab.domain import BenchmarkResult, JobSpec, JobState, MeasurementSettings
from edgelab.errors import LeaseLost
from tests.factories import CAPS
from tests.polling import wait_for

pytestmark = pytest.mark.integration

LEASE_S = 1.0
AGENT_CMD = [sys.executable, "-m", "edgelab", "agent", "run"]


@pytest.fixture
def short_leases(tmp_path: Path) -> Iterator[Coordinator]:
    running = start_coordinator(Settings(home=tmp_path / "coord", port=0, lease_duration_s=LEASE_S))
    yield running
    running.stop(grace=None)


def test_silent_agent_loses_its_lease_to_another_and_its_late_report_is_refused(
    short_leases: Coordinator, onnx_model: Path, test_set: Path
) -> None:
    control = ControlClient(short_leases.address)
    old, new = AgentClient(short_leases.address), AgentClient(short_leases.address)
    old.register("old", CAPS, None)
    new_id = new.register("new", CAPS, None).agent_id
    spec = JobSpec(
        "t", "onnxruntime", control.upload(onnx_model, format="onnx"), control.upload(test_set, format="npz")
    )
    (job_id,) = control.submit(spec, any_agent=True)
    first = old.lease()
    assert first is not None and first.attempt == 1 and first.expires_in_s == LEASE_S

    time.sleep(LEASE_S * 1.5)  # the old agent stops renewing: it hangs, or its network is gone
    second = new.lease()

    assert second is not None and (second.job_id, second.attempt) == (job_id, 2)
    with pytest.raises(LeaseLost, match="attempt 1"):
        old.renew(job_id, 1)
    with pytest.raises(LeaseLost, match="current attempt 2"):
        old.report(job_id, 1, BenchmarkResult(load_s=1.0))
    assert new.report(job_id, 2, BenchmarkResult(load_s=2.0)) is False
    assert new.report(job_id, 2, BenchmarkResult(load_s=2.0)) is True  # a retried report is a no-op
    job, result = control.get_job(job_id)
    assert (job.state, job.attempt, job.agent_id) == (JobState.SUCCEEDED, 2, new_id)
    assert result is not None and result.load_s == 2.0


def test_killed_agent_process_job_is_rerun_by_another_agent(
    short_leases: Coordinator, onnx_model: Path, test_set: Path, tmp_path: Path
) -> None:
    control = ControlClient(short_leases.address)
    log = tmp_path / "victim.log"
    victim = subprocess.Popen(
        [*AGENT_CMD, "-c", short_leases.address, "--name", "victim", "--home", str(tmp_path / "victim")],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: control.list_agents(), 60, "victim did not register")
        measurement = MeasurementSettings(warmup_iterations=1, min_iterations=10, min_duration_s=1.0)
        model, dataset = control.upload(onnx_model, format="onnx"), control.upload(test_set, format="npz")
        (job_id,) = control.submit(JobSpec("t", "onnxruntime", model, dataset, measurement=measurement), any_agent=True)
        wait_for(lambda: control.get_job(job_id)[0].state is JobState.LEASED, 30, log.read_text())

        os.kill(victim.pid, signal.SIGKILL)  # mid-job, holding the lease
        victim.wait(timeout=10)
        rescuer = Agent(AgentConfig(short_leases.address, "rescuer", tmp_path / "rescuer", poll_interval_s=0.1))
        thread = threading.Thread(target=rescuer.run, kwargs={"max_jobs": 1}, daemon=True)
        thread.start()
        thread.join(timeout=60)
    finally:
        victim.kill()
        victim.wait()

    job, result = control.get_job(job_id)
    assert not thread.is_alive()
    assert (job.state, job.attempt, job.agent_name) == (JobState.SUCCEEDED, 2, "rescuer")
    assert result is not None and result.failure is None and result.latency
