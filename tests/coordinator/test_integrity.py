"""No acknowledged result is lost, overwritten or mislabelled (issue 13), against a real coordinator on
127.0.0.1 with its real SQLite file: who wrote a result, late reports kept as late results, one lease per
agent, acknowledged reports synced to disk, a lease sweeper that survives a locked database and a store
that never stays inside a failed transaction, and a shutdown in order."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
from typer.testing import CliRunner

from agent.client import AgentClient
from agent.loop import Agent, AgentConfig
from coordinator.client import ControlClient
from coordinator.server import Coordinator, start_coordinator
from coordinator.store import Store
from edgelab.app.cli import app
from edgelab.config import Settings
from edgelab.constants import MAX_ATTEMPTS
from edgelab.domain import (
    BenchmarkResult,
    DeviceCapabilities,
    FailureKind,
    JobSpec,
    JobState,
)
from edgelab.errors import CoordinatorUnavailable, LeaseLost
from tests.factories import CAPS, LATENCY
from tests.polling import wait_for

pytestmark = pytest.mark.integration

LEASE_S = 0.5


@pytest.fixture
def short_leases(tmp_path: Path) -> Iterator[Coordinator]:
    running = start_coordinator(Settings(home=tmp_path / "coord", host="127.0.0.1", port=0, lease_duration_s=LEASE_S))
    yield running
    running.stop(grace=None)


def _spec(control: ControlClient, onnx_model: Path, test_set: Path) -> JobSpec:
    return JobSpec(
        "t", "onnxruntime", control.upload(onnx_model, format="onnx"), control.upload(test_set, format="npz")
    )


def _db_state(db_path: Path, job_id: str) -> tuple[str, int]:
    """The job's row read straight from the SQLite file (no RPC, so nothing expires leases lazily)."""
    with sqlite3.connect(db_path) as db:
        state, attempt = db.execute("SELECT state, attempt FROM jobs WHERE job_id=?", (job_id,)).fetchone()
    return str(state), int(attempt)


# -- 1. provenance and late results -------------------------------------------------------------


def test_a_report_after_the_last_lease_expired_is_kept_as_a_late_result_and_the_agent_told_its_lease_is_lost(
    short_leases: Coordinator, onnx_model: Path, test_set: Path
) -> None:
    control = ControlClient(short_leases.address)
    agent = AgentClient(short_leases.address)
    agent_id = agent.register("pi", CAPS, None).agent_id
    (job_id,) = control.submit(_spec(control, onnx_model, test_set), any_agent=True)
    for attempt in range(1, MAX_ATTEMPTS + 1):  # the agent hangs or is cut off: it never renews
        lease = agent.lease()
        assert lease is not None and (lease.job_id, lease.attempt) == (job_id, attempt)
        time.sleep(LEASE_S * 1.5)
    wait_for(lambda: control.get_job(job_id)[0].state is JobState.FAILED, 10, "the job did not time out")
    _, timeout = control.get_job(job_id)
    assert timeout is not None and timeout.failure is not None and timeout.failure.kind is FailureKind.TIMEOUT

    finished = BenchmarkResult(load_s=1.5, latency=[LATENCY], manifest={"agent": "pi"})
    # Before: answered duplicate=True (the timeout was stored under this agent's id) and dropped.
    with pytest.raises(LeaseLost, match=r"lease lost: the coordinator closed job .* kept as a late result"):
        agent.report(job_id, MAX_ATTEMPTS, finished)
    with pytest.raises(LeaseLost, match="kept as a late result"):  # a retry gets the same plain answer
        agent.report(job_id, MAX_ATTEMPTS, finished)
    with pytest.raises(LeaseLost, match="different late result"):
        agent.report(job_id, MAX_ATTEMPTS, BenchmarkResult(load_s=9.0))

    details = control.get_job_details(job_id)
    assert details.job.state is JobState.FAILED
    assert (details.written_by, details.result_attempt, details.result_agent_id) == ("coordinator", 3, agent_id)
    assert details.result == timeout  # the verdict stands, the late result beside it
    assert [(late.attempt, late.agent_id, late.result) for late in details.late_results] == [
        (MAX_ATTEMPTS, agent_id, finished)
    ]
    shown = CliRunner().invoke(app, ["jobs", "show", job_id, "--coordinator", short_leases.address])
    assert shown.exit_code == 0, shown.output
    assert "written by the coordinator" in shown.output
    assert f"late result: attempt {MAX_ATTEMPTS} by agent {agent_id}" in shown.output


def test_a_retried_report_is_a_duplicate_only_when_it_is_the_same_payload(
    coordinator: Coordinator, onnx_model: Path, test_set: Path
) -> None:
    control = ControlClient(coordinator.address)
    agent = AgentClient(coordinator.address)
    agent_id = agent.register("pi", CAPS, None).agent_id
    (job_id,) = control.submit(_spec(control, onnx_model, test_set), any_agent=True)
    lease = agent.lease()
    assert lease is not None
    first = BenchmarkResult(load_s=1.0, latency=[LATENCY])

    assert agent.report(job_id, lease.attempt, first) is False
    assert agent.report(job_id, lease.attempt, first) is True  # the same report again: idempotent
    with pytest.raises(LeaseLost, match="already reported with a different result"):
        agent.report(job_id, lease.attempt, BenchmarkResult(load_s=2.0))  # before: duplicate=True, dropped

    details = control.get_job_details(job_id)
    assert (details.written_by, details.result_agent_id, details.result) == ("agent", agent_id, first)
    assert details.late_results == []


class RenewalsCutOff(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """The agent's lease renewals never reach the coordinator (a link that drops them), all else does."""

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        if details.method.endswith("/RenewLease"):
            raise CoordinatorUnavailable("renewal cut off by the test")
        return continuation(details, request)


def test_a_real_agent_whose_renewals_are_cut_off_has_its_finished_result_kept_as_late(
    short_leases: Coordinator, onnx_model: Path, test_set: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    control = ControlClient(short_leases.address)
    release = threading.Event()
    finished = BenchmarkResult(load_s=0.5, latency=[LATENCY], manifest={"agent": "slow"})

    def slow_benchmark(spec: JobSpec, model: Path, dataset: Path, cache: Path | None) -> BenchmarkResult:
        release.wait(60)
        return finished

    agent = Agent(
        AgentConfig(
            short_leases.address,
            "slow",
            tmp_path / "agent",
            poll_interval_s=0.1,
            isolate=False,
            benchmark=slow_benchmark,
            interceptors=[RenewalsCutOff()],  # type: ignore[list-item]
        )
    )
    thread = threading.Thread(target=agent.run, kwargs={"max_jobs": 1}, daemon=True)
    thread.start()
    wait_for(lambda: control.list_agents(), 30, "the agent did not register")
    (slow_id,) = [a.agent_id for a in control.list_agents()]
    (job_id,) = control.submit(_spec(control, onnx_model, test_set), any_agent=True)
    wait_for(lambda: control.get_job(job_id)[0].state is JobState.LEASED, 30, "the agent did not lease the job")
    others = [AgentClient(short_leases.address) for _ in range(MAX_ATTEMPTS - 1)]
    for attempt, other in enumerate(others, start=2):  # attempts 2 and 3 go to agents that then vanish
        other.register(f"vanishing-{attempt}", DeviceCapabilities(runtimes=CAPS.runtimes), None)
        wait_for(lambda: _db_state(short_leases.store.path, job_id)[0] == "queued", 10, "the lease did not expire")
        lease = other.lease()
        assert lease is not None and lease.attempt == attempt
    wait_for(lambda: _db_state(short_leases.store.path, job_id)[0] == "failed", 10, "the job did not time out")

    with caplog.at_level(logging.WARNING, logger="edgelab.agent"):
        release.set()  # attempt 1 finishes now, long after its lease
        thread.join(timeout=30)

    assert not thread.is_alive()
    assert "kept as a late result" in caplog.text  # the agent was told, and logged it
    details = control.get_job_details(job_id)
    assert details.job.state is JobState.FAILED and details.written_by == "coordinator"
    assert [(late.attempt, late.agent_id, late.result) for late in details.late_results] == [(1, slow_id, finished)]


def test_a_store_from_before_provenance_is_migrated(tmp_path: Path) -> None:
    """A results table without `written_by`: the coordinator's own verdicts are recognised as such."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE results (job_id TEXT NOT NULL, attempt INTEGER NOT NULL, agent_id TEXT NOT NULL,
                ok INTEGER NOT NULL, result TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (job_id, attempt));
            INSERT INTO results VALUES ('j1', 3, 'a', 0,
                '{"failure": {"kind": "timeout", "message": "lease expired 3 times; agent lost", "detail": ""}}', 0);
            INSERT INTO results VALUES ('j2', 1, 'a', 0,
                '{"failure": {"kind": "crash", "message": "killed by signal SIGSEGV", "detail": ""}}', 0);
            """
        )
    store = Store(path)
    written = {job: store.latest_result(job).written_by for job in ("j1", "j2")}  # type: ignore[union-attr]
    store.close()

    assert written == {"j1": "coordinator", "j2": "agent"}


# -- 5. one lease per agent ---------------------------------------------------------------------


def test_an_agent_holding_a_lease_gets_the_same_lease_back_not_a_second_job(
    coordinator: Coordinator, onnx_model: Path, test_set: Path
) -> None:
    control = ControlClient(coordinator.address)
    greedy, other = AgentClient(coordinator.address), AgentClient(coordinator.address)
    greedy.register("greedy", CAPS, None)
    other.register("other", CAPS, None)
    spec = _spec(control, onnx_model, test_set)
    jobs = [control.submit(spec, any_agent=True)[0] for _ in range(8)]

    first = greedy.lease()
    assert first is not None and (first.job_id, first.attempt) == (jobs[0], 1)
    with ThreadPoolExecutor(8) as pool:  # a retried LeaseJob, or a buggy agent asking at once
        again = list(pool.map(lambda _: greedy.lease(), range(8)))

    assert {(lease.job_id, lease.attempt) for lease in again if lease} == {(jobs[0], 1)}
    assert [control.get_job(j)[0].state for j in jobs[1:]] == [JobState.QUEUED] * 7  # before: 7 more leased
    second = other.lease()
    assert second is not None and second.job_id == jobs[1]
    assert greedy.report(jobs[0], 1, BenchmarkResult(load_s=1.0)) is False
    after = greedy.lease()  # done with its job: the next one
    assert after is not None and after.job_id == jobs[2]


# -- 9. an acknowledged report is on disk -------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to watch the coordinator's syncs")
def test_an_acknowledged_report_is_synced_to_disk_before_the_answer(
    tmp_path: Path, onnx_model: Path, test_set: Path
) -> None:
    """The coordinator runs under strace, which logs every fsync/fdatasync with its file: the WAL must
    be synced between the report arriving and the answer leaving (synchronous=NORMAL never syncs it
    at commit, so a power cut after the answer could lose an acknowledged result)."""
    log, port = tmp_path / "strace.log", _free_port()
    address = f"127.0.0.1:{port}"
    serve = [sys.executable, "-m", "edgelab", "coordinator", "serve", "--host", "127.0.0.1", "--port", str(port)]
    strace = ["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync", "-e", "signal=none", "-y", "-o", str(log)]
    out = (tmp_path / "coordinator.log").open("wb")
    process = subprocess.Popen([*strace, *serve, "--home", str(tmp_path / "home")], stdout=out, stderr=out)
    try:
        control = ControlClient(address, timeout_s=5)

        def up() -> bool:
            try:
                return control.list_agents() == []
            except CoordinatorUnavailable:
                assert process.poll() is None, (tmp_path / "coordinator.log").read_text()
                return False

        wait_for(up, 60, "the coordinator did not start")
        if "Operation not permitted" in (tmp_path / "coordinator.log").read_text():
            pytest.skip("ptrace is not permitted here")
        agent = AgentClient(address)
        agent.register("pi", CAPS, None)
        (job_id,) = control.submit(_spec(control, onnx_model, test_set), any_agent=True)
        lease = agent.lease()
        assert lease is not None

        def wal_syncs() -> int:
            return len(re.findall(r"f(?:data)?sync\(\d+<[^>]*-wal>\) = 0", log.read_text()))

        before_heartbeat = wal_syncs()
        agent.heartbeat(job_id)  # not an acknowledgement worth a sync: the fleet repeats it every few seconds
        before_report = wal_syncs()
        assert agent.report(job_id, lease.attempt, BenchmarkResult(load_s=1.0)) is False
        after_report = wal_syncs()
    finally:
        for traced in psutil.Process(process.pid).children():  # the coordinator, then strace ends with it
            traced.kill()
        process.wait(timeout=30)

    assert before_heartbeat == before_report
    assert after_report > before_report, "the acknowledged report was not synced before the answer"


def test_acknowledging_commits_sync_the_wal_and_the_rest_do_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same, without strace: every fsync the store asks for, by the file it syncs."""
    synced: list[str] = []
    fdatasync = os.fdatasync

    def watched(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", watched)
    store = Store(tmp_path / "s.sqlite")
    agent_id, _ = store.register_agent("pi", CAPS)
    synced.clear()

    store.heartbeat(agent_id)
    heartbeat = list(synced)
    store.add_training_runs([])  # an acknowledging write (empty, but still a transaction)
    store.close()

    assert heartbeat == []
    assert synced == [str(tmp_path / "s.sqlite-wal")]


# -- 10. the sweeper and the shared connection under faults -------------------------------------


def test_the_lease_sweeper_keeps_sweeping_after_the_database_was_locked_past_the_busy_timeout(
    tmp_path: Path, onnx_model: Path, test_set: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(home=tmp_path / "coord", host="127.0.0.1", port=0, lease_duration_s=0.4)
    running = start_coordinator(settings, busy_timeout_s=0.1)
    try:
        control = ControlClient(running.address)
        agent = AgentClient(running.address)
        agent.register("pi", CAPS, None)
        (job_id,) = control.submit(_spec(control, onnx_model, test_set), any_agent=True)
        with caplog.at_level(logging.WARNING, logger="edgelab.coordinator"):
            locker = sqlite3.connect(running.store.path, isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")  # e.g. an operator's sqlite3 shell, a backup, a slow disk
            time.sleep(0.6)  # several sweeps (every 0.1 s) each wait 0.1 s for the lock and fail
            locker.execute("ROLLBACK")
            locker.close()

        lease = agent.lease()  # then the agent goes quiet, and so does everyone else: only the sweeper acts
        assert lease is not None
        wait_for(lambda: _db_state(running.store.path, job_id) == ("queued", 1), 5, "the sweeper died")
        assert "lease sweep failed" in caplog.text  # each failure was logged, none ended the thread
    finally:
        running.stop(grace=None)


def test_stop_joins_the_sweeper_before_closing_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unhandled: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", unhandled.append)
    running = start_coordinator(
        Settings(home=tmp_path / "coord", host="127.0.0.1", port=0, lease_duration_s=0.4), busy_timeout_s=0.5
    )
    (sweeper,) = [t for t in threading.enumerate() if t.name == "lease-sweeper" and t.is_alive()]
    alive_at_close: list[bool] = []
    close = running.store.close

    def watched_close() -> None:
        alive_at_close.append(sweeper.is_alive())
        close()

    monkeypatch.setattr(running.store, "close", watched_close)
    locker = sqlite3.connect(running.store.path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    time.sleep(0.2)  # the sweeper is inside a sweep, waiting for the lock
    try:
        running.stop(grace=None)
    finally:
        locker.execute("ROLLBACK")
        locker.close()

    assert alive_at_close == [False]  # before: the store closed under a sweeper still running
    assert not sweeper.is_alive()
    assert unhandled == []


def test_a_failed_commit_rolls_back_and_the_store_keeps_working(tmp_path: Path) -> None:
    """A COMMIT that fails (a deferred foreign-key violation fails exactly there) must not leave the one
    shared connection inside the transaction, or every later call fails with "cannot start a transaction
    within a transaction"."""
    store = Store(tmp_path / "s.sqlite")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"), store._tx() as db:
        db.execute("PRAGMA defer_foreign_keys=ON")
        db.execute(
            "INSERT INTO results (job_id, attempt, agent_id, ok, result, created_at)"
            " VALUES ('no-such-job', 1, 'a', 1, '{}', 0)"
        )

    agent_id, _ = store.register_agent("pi", CAPS)  # before: "cannot start a transaction within a transaction"

    assert [a.agent_id for a in store.list_agents()] == [agent_id]
    assert not store._db.in_transaction
    store.close()
