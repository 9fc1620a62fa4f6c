"""CancelJob and RetryJob on a real loopback coordinator: what an agent holding the job sees, what is kept."""

from pathlib import Path

import pytest

from agent.client import AgentClient
from coordinator.client import ControlClient
from coordinator.server import Coordinator
from edgelab.domain import BenchmarkResult, Failure, FailureKind, JobSpec, JobState
from edgelab.errors import InvalidArgument, LeaseLost, NotFound
from tests.factories import CAPS

pytestmark = pytest.mark.integration


def _spec(control: ControlClient, onnx_model: Path, test_set: Path) -> JobSpec:
    model = control.upload(onnx_model, format="onnx")
    dataset = control.upload(test_set, format="npz")
    return JobSpec("t", "onnxruntime", model, dataset)


def test_cancelling_a_leased_job_takes_the_lease_from_its_agent(
    coordinator: Coordinator, onnx_model: Path, test_set: Path
) -> None:
    # prepare: one job leased by an agent, one still queued
    control = ControlClient(coordinator.address)
    agent = AgentClient(coordinator.address)
    agent.register("pi", CAPS, None)
    spec = _spec(control, onnx_model, test_set)
    (leased_id,) = control.submit(spec)
    lease = agent.lease()
    assert lease is not None and lease.job_id == leased_id
    (queued_id,) = control.submit(spec)

    # execute
    was_leased = control.cancel_job(leased_id)
    was_queued = control.cancel_job(queued_id)

    # assert: both cancelled, the agent's renewal and report refused, nothing leased again
    assert (was_leased, was_queued) == (JobState.LEASED, JobState.QUEUED)
    assert {control.get_job(j)[0].state for j in (leased_id, queued_id)} == {JobState.CANCELLED}
    with pytest.raises(LeaseLost):
        agent.renew(leased_id, lease.attempt)
    with pytest.raises(LeaseLost):
        agent.report(leased_id, lease.attempt, BenchmarkResult(load_s=0.1))
    assert control.get_job(leased_id)[1] is None
    assert agent.lease() is None
    assert control.list_agents()[0].current_job_id == ""
    with pytest.raises(InvalidArgument, match="already cancelled"):
        control.cancel_job(leased_id)


def test_retry_queues_a_new_job_with_the_same_spec_and_keeps_the_old_result(
    coordinator: Coordinator, onnx_model: Path, test_set: Path
) -> None:
    # prepare: a job that failed on its agent
    control = ControlClient(coordinator.address)
    agent = AgentClient(coordinator.address)
    agent.register("pi", CAPS, None)
    assert agent.registration is not None
    spec = _spec(control, onnx_model, test_set)
    (failed_id,) = control.submit(spec)
    lease = agent.lease()
    assert lease is not None
    agent.report(failed_id, lease.attempt, BenchmarkResult(failure=Failure(FailureKind.CRASH, "segfault")))
    (queued_id,) = control.submit(spec)

    # execute
    retry_id = control.retry_job(failed_id)

    # assert: a new queued job, same spec and agent; the failure stays with the old one
    retried, result = control.get_job(retry_id)
    assert retry_id != failed_id and retried.state is JobState.QUEUED and result is None
    assert retried.spec == control.get_job(failed_id)[0].spec
    assert retried.agent_id == agent.registration.agent_id
    old = control.get_job(failed_id)[1]
    assert old is not None and old.failure is not None and old.failure.message == "segfault"
    with pytest.raises(InvalidArgument, match="still queued"):
        control.retry_job(queued_id)
    with pytest.raises(NotFound):
        control.retry_job("nope")
