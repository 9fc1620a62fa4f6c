"""EdgeLab across hosts: a coordinator, an operator and three agents, each in its own network
namespace on a private bridge (tests/netns.py), talking gRPC over TCP on 10.231.0.0/24.

The processes are the real `edgelab coordinator serve` and `edgelab agent run` commands; the
operator's ControlClient runs in a worker process inside its own namespace. Faults are injected
in the network: a host's bridge port goes down, so its packets vanish without a RST, and comes back.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coordinator.client import ControlClient
from edgelab.domain import ArtifactRef, BenchmarkResult, Job, JobSpec, JobState, MeasurementSettings
from edgelab.errors import AuthError, CoordinatorUnavailable
from tests.netns import Network, unavailable_reason

pytestmark = pytest.mark.integration

LEASE_S = 3.0  # an expiry takes seconds, yet a busy 2-core runner still renews (every LEASE_S / 3) in time
HEARTBEAT_S = 1.0
PORT = 50051  # every namespace has its own ports
AGENTS = ("edge1", "edge2", "edge3")
EDGELAB = [sys.executable, "-m", "edgelab"]
START_TIMEOUT_S = 120.0  # interpreter + runtime imports of four processes on a shared 2-core machine
JOB_TIMEOUT_S = 120.0
RETRY_BACKOFF = "; retrying in "  # Agent._retry: "<why the call failed>; retrying in 0.5s"
# The coordinator listens beyond loopback, so it needs both tokens (coordinator.server.check_exposure); they go
# through the environment, as on a real fleet, to keep them off the command line.
FLEET_TOKEN = "multihost-fleet"
OPERATOR_TOKEN = "multihost-operator"


class Fleet:
    """The processes on the namespaced hosts, their logs, and the operator's client."""

    def __init__(self, net: Network, tmp_path: Path) -> None:
        self.net = net
        self.tmp_path = tmp_path
        self.address = f"{net.hosts['coord'].address}:{PORT}"
        operator = functools.partial(ControlClient, operator_token=OPERATOR_TOKEN, timeout_s=10.0)
        self.control = net.remote("operator", operator, self.address)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._killed: set[subprocess.Popen[bytes]] = set()

    def start_coordinator(self, lease_s: float = LEASE_S) -> None:
        env = {
            **os.environ,
            "EDGELAB_LEASE_DURATION_S": str(lease_s),
            "EDGELAB_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_S),
            "EDGELAB_FLEET_TOKEN": FLEET_TOKEN,
            "EDGELAB_OPERATOR_TOKEN": OPERATOR_TOKEN,
        }
        host = self.net.hosts["coord"].address
        home = self.tmp_path / "coord"
        self._start(
            "coordinator",
            "coord",
            ["coordinator", "serve", "--host", host, "--port", str(PORT), "--home", str(home)],
            env,
        )
        self.wait(lambda: self.control.call("list_agents") is not None, START_TIMEOUT_S, "the coordinator to answer")

    def start_agents(self, names: tuple[str, ...] = AGENTS) -> dict[str, str]:
        """Start agents on their hosts; returns their agent ids by name once all registered."""
        for name in names:
            self._start(
                name,
                name,
                ["agent", "run", "-c", self.address, "--name", name, "--home", str(self.tmp_path / name)],
                {**os.environ, "EDGELAB_FLEET_TOKEN": FLEET_TOKEN},
            )
        self.wait(lambda: set(names) <= set(self.agent_ids()), START_TIMEOUT_S, f"agents {names} to register")
        return self.agent_ids()

    def _start(self, name: str, host: str, args: list[str], env: dict[str, str] | None = None) -> None:
        with (self.tmp_path / f"{name}.log").open("ab") as log:  # appended: a restarted process keeps one log
            self.processes[name] = self.net.popen(host, [*EDGELAB, *args], log, env)

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def backing_off(self, name: str, since: int = 0) -> bool:
        """Whether agent `name` logged, after offset `since` of its log, that a call to the coordinator failed and
        it backs off before retrying (`Agent._retry`). Not any line saying "unreachable": failing heartbeats and
        lease renewals warn with the same error while a job still runs, long before the agent reports."""
        return RETRY_BACKOFF in self.log(name)[since:]

    def has_fetched(self, name: str, *refs: ArtifactRef) -> bool:
        """Whether agent `name` holds these artifacts in its cache (`<home>/agent/cache/artifacts/<sha256>`)."""
        cache = self.tmp_path / name / "agent" / "cache" / "artifacts"
        return all((cache / ref.sha256).is_file() for ref in refs)

    def logs(self) -> str:
        return "".join(f"\n===== {name} =====\n{self.log(name)}" for name in self.processes)

    def wait(self, predicate: Callable[[], object], timeout_s: float, what: str) -> float:
        """Poll until `predicate()` holds; returns the seconds it took. The coordinator may be down meanwhile."""
        start = time.monotonic()
        while True:
            try:
                if predicate():
                    return time.monotonic() - start
            except CoordinatorUnavailable:
                pass
            exited = {
                n: p.returncode for n, p in self.processes.items() if p.poll() is not None and p not in self._killed
            }
            assert not exited, f"exited while waiting for {what}: {exited}"
            assert time.monotonic() - start < timeout_s, f"timed out after {timeout_s:g} s waiting for {what}"
            time.sleep(0.1)

    def agent_ids(self) -> dict[str, str]:
        return {agent.name: agent.agent_id for agent in self.control.call("list_agents")}

    def job(self, job_id: str) -> tuple[Job, BenchmarkResult | None]:
        job, result = self.control.call("get_job", job_id)
        return job, result

    def upload(self, onnx_model: Path, test_set: Path) -> tuple[ArtifactRef, ArtifactRef]:
        model = self.control.call("upload", onnx_model, format="onnx")
        return model, self.control.call("upload", test_set, format="npz")

    def kill(self, name: str) -> None:
        self.net.kill(self.processes[name])
        self._killed.add(self.processes[name])

    def connected_peers(self) -> set[str]:
        """Addresses with an established TCP connection to the coordinator's port, seen from its host."""
        out = self.net.run("coord", ["ss", "-Htn", "state", "established", f"( sport = :{PORT} )"])
        peers = (ipaddress.ip_address(line.split()[-1].rsplit(":", 1)[0].strip("[]")) for line in out.splitlines())
        # gRPC listens on a dual-stack socket: IPv4 peers show as ::ffff:a.b.c.d
        return {str(getattr(peer, "ipv4_mapped", None) or peer) for peer in peers}


def _spec(model: ArtifactRef, dataset: ArtifactRef, timed_s: float) -> JobSpec:
    measurement = MeasurementSettings(
        warmup_iterations=1, min_iterations=10, min_duration_s=timed_s, power_meter="none"
    )
    return JobSpec("multihost", "onnxruntime", model, dataset, measurement=measurement)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with Network(["coord", "operator", *AGENTS]) as net:
        running = Fleet(net, tmp_path)
        try:
            yield running
        finally:
            running.control.close()
            print(running.logs())  # pytest shows it when the test failed


def test_three_agents_on_three_hosts_share_jobs_submitted_for_any_agent(
    fleet: Fleet, onnx_model: Path, test_set: Path
) -> None:
    fleet.start_coordinator()
    agent_ids = fleet.start_agents()
    model, dataset = fleet.upload(onnx_model, test_set)
    # Each job outlasts an agent's 1 s poll, so no agent is free to take a second one before all have one.
    spec = _spec(model, dataset, timed_s=2.0)

    job_ids = [fleet.control.call("submit", spec, any_agent=True)[0] for _ in AGENTS]
    fleet.wait(lambda: all(fleet.job(j)[0].state.finished for j in job_ids), JOB_TIMEOUT_S, "the jobs to finish")

    jobs = [fleet.job(j) for j in job_ids]
    assert [(job.state, job.attempt) for job, _ in jobs] == [(JobState.SUCCEEDED, 1)] * len(AGENTS)
    assert {job.agent_id for job, _ in jobs} == set(agent_ids.values())  # one job per agent, each on its own host
    assert all(result is not None and result.latency and result.accuracy for _, result in jobs)
    agent_addresses = {fleet.net.hosts[name].address for name in AGENTS}
    assert agent_addresses <= fleet.connected_peers()  # the agents dialled across the bridge from their own addresses
    anonymous = functools.partial(ControlClient, timeout_s=10.0)  # another host, without the operator token
    with fleet.net.remote("operator", anonymous, fleet.address) as stranger, pytest.raises(AuthError, match="missing"):
        stranger.call("list_agents")


@pytest.mark.slow  # ~30 s: the cut lasts until the agent gives up on its pending call (~20 s)
def test_agent_cut_off_mid_job_loses_its_lease_then_reconnects_and_works_again(
    fleet: Fleet, onnx_model: Path, test_set: Path
) -> None:
    fleet.start_coordinator()
    agent_ids = fleet.start_agents()
    model, dataset = fleet.upload(onnx_model, test_set)
    (job_id,) = fleet.control.call("submit", _spec(model, dataset, timed_s=4.0), any_agent=True)
    fleet.wait(lambda: fleet.job(job_id)[0].state is JobState.LEASED, JOB_TIMEOUT_S, "the job to be leased")
    victim = fleet.job(job_id)[0].agent_name
    # Cut once its artifacts are in: a cut during the download retries the download (the same backing-off line as the
    # report), and the lease-lost answer on reconnection then cancels the run, with nothing left to report.
    fleet.wait(lambda: fleet.has_fetched(victim, model, dataset), JOB_TIMEOUT_S, f"{victim} to fetch the artifacts")

    before_cut = len(fleet.log(victim))
    fleet.net.cut(victim)
    cut_at = time.monotonic()
    rerun_s = fleet.wait(lambda: fleet.job(job_id)[0].state.finished, JOB_TIMEOUT_S, "another agent to rerun the job")
    # Keep it cut until the victim, done with its run, fails to deliver its report and backs off.
    fleet.wait(lambda: fleet.backing_off(victim, since=before_cut), JOB_TIMEOUT_S, f"{victim} to retry its report")
    noticed_s = time.monotonic() - cut_at
    fleet.net.restore(victim)
    refused_s = fleet.wait(lambda: "not accepted" in fleet.log(victim), JOB_TIMEOUT_S, f"{victim}'s late report")
    (again,) = fleet.control.call("submit", _spec(model, dataset, timed_s=0.5), [agent_ids[victim]])
    fleet.wait(lambda: fleet.job(again)[0].state.finished, JOB_TIMEOUT_S, f"{victim} to run new work")

    job, result = fleet.job(job_id)
    assert (job.state, job.attempt) == (JobState.SUCCEEDED, 2)
    assert job.agent_name != victim and job.agent_name in AGENTS
    assert result is not None and result.failure is None and result.latency
    victim_log = fleet.log(victim)
    assert f"job {job_id} attempt 1" in victim_log
    assert f"result for job {job_id} not accepted" in victim_log and "current attempt 2" in victim_log
    assert "retrying in" in victim_log  # it backed off while the coordinator was out of reach
    assert fleet.processes[victim].poll() is None  # the refusal did not take it down
    rerun, rerun_result = fleet.job(again)
    assert (rerun.state, rerun.agent_name, rerun.attempt) == (JobState.SUCCEEDED, victim, 1)
    assert rerun_result is not None and rerun_result.latency
    print(
        f"cut: rerun after {rerun_s:.1f} s, noticed after {noticed_s:.1f} s; restored: refused after {refused_s:.1f} s"
    )


@pytest.mark.slow  # 13-26 s: the outage lasts until the last agent misses it, then agents back off up to 8 s
def test_coordinator_killed_while_remote_agents_hold_leases_resumes_them(
    fleet: Fleet, onnx_model: Path, test_set: Path
) -> None:
    # Leases that outlast the outage: one that expired meanwhile (the store's clock runs on while the coordinator
    # is down) is requeued on restart, the agent's finished report is refused and the job runs again.
    restart_lease_s = 60.0
    fleet.start_coordinator(restart_lease_s)
    agent_ids = fleet.start_agents()
    model, dataset = fleet.upload(onnx_model, test_set)
    spec = _spec(model, dataset, timed_s=3.0)
    job_ids = [fleet.control.call("submit", spec, [agent_id])[0] for agent_id in agent_ids.values()]
    fleet.wait(
        lambda: all(fleet.job(j)[0].state is JobState.LEASED for j in job_ids),
        JOB_TIMEOUT_S,
        "every agent to hold a lease",
    )

    before_kill = {name: len(fleet.log(name)) for name in AGENTS}
    fleet.kill("coordinator")  # SIGKILL: no chance to close the store cleanly
    # Down until every agent, done with its run, has failed to report and is backing off.
    fleet.wait(
        lambda: all(fleet.backing_off(n, since=before_kill[n]) for n in AGENTS), JOB_TIMEOUT_S, "the agents to miss it"
    )
    fleet.start_coordinator(restart_lease_s)
    fleet.wait(lambda: all(fleet.job(j)[0].state.finished for j in job_ids), JOB_TIMEOUT_S, "the jobs to finish")

    jobs = [fleet.job(j) for j in job_ids]
    assert [(job.state, job.attempt) for job, _ in jobs] == [(JobState.SUCCEEDED, 1)] * len(AGENTS)  # no rerun
    assert all(result is not None and result.latency for _, result in jobs)
    assert fleet.agent_ids() == agent_ids  # credentials survived the restart: nobody registered again
    for name in AGENTS:
        log = fleet.log(name)
        assert "unreachable" in log and "retrying in" in log and log.count("registered as") == 1
