from pathlib import Path

import pytest

from coordinator.store import Store
from edgelab.constants import LEASE_DURATION_S, MAX_ATTEMPTS
from edgelab.domain import (
    ArtifactRef,
    BenchmarkResult,
    DeviceCapabilities,
    FailureKind,
    JobSpec,
    JobState,
    RuntimeInfo,
)
from edgelab.errors import AuthError, LeaseLost, NotFound
from tests.factories import Clock


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Store:
    s = Store(tmp_path / "edgelab.sqlite", clock=clock)
    for sha in ("a" * 64, "b" * 64):
        s.add_artifact(ArtifactRef(sha, 1, "onnx", sha[:1]))
    return s


def _spec(backend: str = "onnxruntime") -> JobSpec:
    return JobSpec("j", backend, ArtifactRef("a" * 64), ArtifactRef("b" * 64))


def _agent(store: Store, name: str = "pi") -> str:
    caps = DeviceCapabilities(runtimes=[RuntimeInfo("onnxruntime", True)])
    agent_id, _ = store.register_agent(name, caps)
    return agent_id


def test_database_runs_in_wal_mode(store: Store) -> None:
    import sqlite3

    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]

    assert mode == "wal"


def test_agent_tokens_are_checked_and_stored_hashed(store: Store) -> None:
    agent_id, token = store.register_agent("pi", DeviceCapabilities())

    store.authenticate_agent(agent_id, token)
    with pytest.raises(AuthError, match="bad credential"):
        store.authenticate_agent(agent_id, "wrong")
    with pytest.raises(AuthError, match="unknown agent"):
        store.authenticate_agent("nobody", token)
    assert token not in store.path.read_bytes().decode(errors="ignore")


def test_lease_picks_oldest_job_for_a_backend_the_agent_has(store: Store, clock: Clock) -> None:
    agent = _agent(store)
    trt = store.submit_job(_spec("tensorrt"))
    clock.now += 1
    ort = store.submit_job(_spec())

    lease = store.lease_job(agent, ["onnxruntime"])

    assert lease is not None and lease.job_id == ort and lease.attempt == 1
    assert store.get_job(trt).state is JobState.QUEUED
    assert store.lease_job(_agent(store, "pi-2"), ["onnxruntime"]) is None


def test_pinned_job_goes_only_to_its_agent(store: Store) -> None:
    first, second = _agent(store, "a"), _agent(store, "b")
    job = store.submit_job(_spec(), target_agent_id=second)

    assert store.lease_job(first, ["onnxruntime"]) is None
    lease = store.lease_job(second, ["onnxruntime"])
    assert lease is not None and lease.job_id == job


def test_expired_lease_is_requeued_and_late_report_rejected(store: Store, clock: Clock) -> None:
    dead, alive = _agent(store, "dead"), _agent(store, "alive")
    job = store.submit_job(_spec())
    first = store.lease_job(dead, ["onnxruntime"])
    assert first is not None

    clock.now += LEASE_DURATION_S + 1
    second = store.lease_job(alive, ["onnxruntime"])

    assert second is not None and second.job_id == job and second.attempt == 2
    with pytest.raises(LeaseLost):
        store.report_result(dead, job, 1, BenchmarkResult())
    assert store.report_result(alive, job, 2, BenchmarkResult(load_s=1.0)) is False
    assert store.get_job(job).state is JobState.SUCCEEDED


def test_a_restart_longer_than_a_lease_keeps_the_leases_it_found(tmp_path: Path, store: Store, clock: Clock) -> None:
    agent = _agent(store)
    job = store.submit_job(_spec())
    lease = store.lease_job(agent, ["onnxruntime"])
    assert lease is not None
    store.close()

    clock.now += LEASE_DURATION_S * 3  # the coordinator was down for three lease durations
    restarted = Store(tmp_path / "edgelab.sqlite", clock=clock)
    extended = restarted.grant_restart_grace()
    clock.now += LEASE_DURATION_S * 0.5  # the agent reconnects and reports what it finished meanwhile
    restarted.expire_leases()

    assert extended == 1
    assert restarted.report_result(agent, job, lease.attempt, BenchmarkResult(load_s=1.0)) is False
    assert restarted.get_job(job).state is JobState.SUCCEEDED


def test_renewed_lease_does_not_expire(store: Store, clock: Clock) -> None:
    agent = _agent(store)
    job = store.submit_job(_spec())
    lease = store.lease_job(agent, ["onnxruntime"])
    assert lease is not None

    for _ in range(3):
        clock.now += LEASE_DURATION_S * 0.6
        store.renew_lease(agent, job, lease.attempt)
    store.expire_leases()

    assert store.get_job(job).state is JobState.LEASED


def test_report_is_idempotent(store: Store) -> None:
    agent = _agent(store)
    job = store.submit_job(_spec())
    lease = store.lease_job(agent, ["onnxruntime"])
    assert lease is not None

    first = store.report_result(agent, job, lease.attempt, BenchmarkResult(load_s=1.0))
    again = store.report_result(agent, job, lease.attempt, BenchmarkResult(load_s=1.0))

    assert (first, again) == (False, True)
    stored = store.latest_result(job)
    assert stored is not None and stored.result.load_s == 1.0


def test_job_fails_with_timeout_after_max_attempts(store: Store, clock: Clock) -> None:
    agent = _agent(store)
    job = store.submit_job(_spec())

    for _ in range(MAX_ATTEMPTS):
        assert store.lease_job(agent, ["onnxruntime"]) is not None
        clock.now += LEASE_DURATION_S + 1
    store.expire_leases()

    assert store.get_job(job).state is JobState.FAILED
    stored = store.latest_result(job)
    assert stored is not None and stored.result.failure is not None
    assert stored.result.failure.kind is FailureKind.TIMEOUT


def test_submit_refuses_unknown_artifacts(store: Store) -> None:
    spec = JobSpec("j", "onnxruntime", ArtifactRef("c" * 64), ArtifactRef("b" * 64))

    with pytest.raises(NotFound, match="artifact"):
        store.submit_job(spec)
    assert store.list_jobs() == []


def test_state_survives_reopening_the_file(tmp_path: Path, store: Store) -> None:
    agent = _agent(store)
    job = store.submit_job(_spec())
    assert store.lease_job(agent, ["onnxruntime"]) is not None
    store.close()

    reopened = Store(tmp_path / "edgelab.sqlite")

    assert reopened.get_job(job).state is JobState.LEASED
    assert [a.name for a in reopened.list_agents()] == ["pi"]


def test_agent_status_follows_heartbeats(store: Store, clock: Clock) -> None:
    agent = _agent(store)

    statuses = []
    for age in (0, 20, 100):
        clock.now += age
        statuses.append(store.get_agent(agent).status)

    assert statuses == ["online", "stale", "offline"]
