"""LeaseJob as a long-poll: a job queued for a waiting agent answers its call at once; an idle wait ends empty."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from pathlib import Path

import pytest

from agent.client import AgentClient
from agent.loop import Agent, AgentConfig
from coordinator.client import ControlClient
from coordinator.dispatch import JobBell
from coordinator.server import Coordinator, start_coordinator
from coordinator.store import Store
from edgelab.config import Settings
from edgelab.domain import ArtifactRef, BenchmarkResult, JobSpec, Lease
from tests.factories import CAPS, LATENCY, Clock
from tests.polling import wait_for

pytestmark = pytest.mark.integration

SPEC_REF = ArtifactRef("0" * 64, 1, "onnx", "m")


def _spec(control: ControlClient, onnx_model: Path, test_set: Path) -> JobSpec:
    return JobSpec(
        "t", "onnxruntime", control.upload(onnx_model, format="onnx"), control.upload(test_set, format="npz")
    )


def _lease_in_thread(agent: AgentClient, wait_s: float) -> tuple[threading.Thread, list[Lease | None]]:
    got: list[Lease | None] = []
    thread = threading.Thread(target=lambda: got.append(agent.lease(wait_s)), daemon=True)
    thread.start()
    return thread, got


def test_a_job_submitted_while_the_agent_waits_answers_its_lease_call(
    coordinator: Coordinator, onnx_model: Path, test_set: Path
) -> None:
    control = ControlClient(coordinator.address)
    spec = _spec(control, onnx_model, test_set)
    agent = AgentClient(coordinator.address)
    agent.register("pi", CAPS, None)
    assert coordinator.bell is not None
    thread, got = _lease_in_thread(agent, wait_s=30)
    wait_for(lambda: coordinator.bell is not None and coordinator.bell.waiting == 1, 10, "the lease call to wait")

    [job_id] = control.submit(spec)
    thread.join(timeout=20)  # well before the 30 s wait ends: the submit answered the call

    assert not thread.is_alive() and got[0] is not None and got[0].job_id == job_id
    assert coordinator.bell.waiting == 0


def test_an_idle_long_poll_ends_empty_at_its_deadline_and_a_full_bell_answers_at_once(tmp_path: Path) -> None:
    running = start_coordinator(Settings(home=tmp_path, host="127.0.0.1", port=0), max_long_polls=1)
    try:
        first, second = AgentClient(running.address), AgentClient(running.address)
        first.register("a", CAPS, None)
        second.register("b", CAPS, None)
        waiting, got = _lease_in_thread(first, wait_s=3)
        wait_for(lambda: running.bell is not None and running.bell.waiting == 1, 10, "the first call to wait")

        refused = second.lease(wait_s=30)  # the only waiting slot is taken: answered at once, empty
        waiting.join(timeout=20)

        assert refused is None
        assert not waiting.is_alive() and got == [None]
    finally:
        running.stop(grace=None)


def test_the_agent_loop_starts_a_job_queued_while_it_long_polls(
    coordinator: Coordinator, onnx_model: Path, test_set: Path, tmp_path: Path
) -> None:
    control = ControlClient(coordinator.address)
    spec = _spec(control, onnx_model, test_set)
    ran: list[str] = []

    def benchmark(spec: JobSpec, model: Path, dataset: Path, engines: Path) -> BenchmarkResult:
        ran.append(spec.name)
        return BenchmarkResult(latency=[LATENCY])

    # A poll interval far longer than the test: only the long-poll can start the job in time.
    config = AgentConfig(
        coordinator.address,
        "pi",
        tmp_path / "agent",
        poll_interval_s=120,
        lease_wait_s=30,
        isolate=False,
        benchmark=benchmark,
    )
    agent = Agent(config)
    runner = threading.Thread(target=agent.run, kwargs={"max_jobs": 1}, daemon=True)
    runner.start()
    wait_for(lambda: coordinator.bell is not None and coordinator.bell.waiting == 1, 10, "the agent to long-poll")

    control.submit(spec)
    runner.join(timeout=30)

    assert not runner.is_alive() and ran == ["t"]


def test_stopping_an_agent_ends_its_long_poll(coordinator: Coordinator, tmp_path: Path) -> None:
    agent = Agent(AgentConfig(coordinator.address, "pi", tmp_path / "agent", lease_wait_s=60, isolate=False))
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    wait_for(lambda: coordinator.bell is not None and coordinator.bell.waiting == 1, 10, "the agent to long-poll")

    agent.stop.set()
    runner.join(timeout=10)

    assert not runner.is_alive()


def test_the_bell_wakes_the_target_or_every_capable_waiter_and_requeues_ring(tmp_path: Path, clock: Clock) -> None:
    bell = JobBell(max_waiters=8)
    store = Store(tmp_path / "s.sqlite", clock=clock, lease_duration_s=10, on_job_queued=bell.ring)
    store.add_artifact(SPEC_REF)
    pi, _ = store.register_agent("pi", CAPS)
    other, _ = store.register_agent("other", CAPS)
    spec = JobSpec("t", "onnxruntime", SPEC_REF, SPEC_REF)
    with ExitStack() as listening:
        pi_bell = listening.enter_context(bell.listen(pi, ["onnxruntime"]))
        other_bell = listening.enter_context(bell.listen(other, ["onnxruntime"]))
        trt_bell = listening.enter_context(bell.listen("trt-box", ["tensorrt"]))
        assert pi_bell is not None and other_bell is not None and trt_bell is not None
        store.submit_job(spec, pi)
        targeted = (pi_bell.is_set(), other_bell.is_set(), trt_bell.is_set())
        pi_bell.clear()
        store.submit_job(spec)
        fleet = (pi_bell.is_set(), other_bell.is_set(), trt_bell.is_set())
        pi_bell.clear()
        other_bell.clear()
        lease = store.lease_job(pi, ["onnxruntime"])
        assert lease is not None
        clock.now += 11
        store.expire_leases()  # the lapsed lease goes back to the queue: pi's waiter hears it
        requeued = pi_bell.is_set()

    assert targeted == (True, False, False)
    assert fleet == (True, True, False)
    assert requeued and bell.waiting == 0
