"""The agent's life: register, heartbeat, lease one job at a time, fetch, run, report.

Agents dial the coordinator (they sit behind NAT on lab networks). A coordinator that is
down or restarting is retried with capped exponential backoff; a lease is renewed while
the job runs; a report is retried until the coordinator answers (it is idempotent). Each
benchmark runs in a child process (`agent.isolation`), so a model that crashes the runtime
is stored as a CRASH result and the agent goes on to the next job. A lease the coordinator
says is lost (another agent holds the job now, or it is gone) cancels the benchmark: its child
and everything the child started are killed at once. A revoked agent stops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc

from agent.cache import ArtifactCache
from agent.client import AgentClient
from agent.isolation import BenchmarkFn, Cancelled, run_isolated
from agent.probe import probe_capabilities
from agent.runner import run_benchmark
from edgelab.config import ClientTls
from edgelab.constants import LEASE_WAIT_S
from edgelab.domain import ArtifactRef, BenchmarkResult, Failure, FailureKind, Lease
from edgelab.errors import (
    ArtifactCorrupt,
    AuthError,
    CoordinatorUnavailable,
    InvalidArgument,
    LeaseLost,
    MessageTooLarge,
    NotFound,
    PermissionDenied,
)

log = logging.getLogger("edgelab.agent")
T = TypeVar("T")

POLL_INTERVAL_S = 1.0
MAX_BACKOFF_S = 30.0


@dataclass
class AgentConfig:
    coordinator: str
    name: str
    home: Path
    fleet_token: str | None = None
    poll_interval_s: float = POLL_INTERVAL_S  # between lease calls that come back empty at once
    lease_wait_s: float = LEASE_WAIT_S  # long-poll: how long one lease call may wait for a job (0: poll)
    tls: ClientTls | None = None
    cache_max_bytes: int | None = None  # None: unbounded
    job_timeout_s: float = 3600.0  # wall-clock limit of one benchmark (isolated runs only)
    job_memory_limit_bytes: int | None = None  # memory cap of the benchmark child (isolated runs only); None: none
    isolate: bool = True  # False: run in-process, for debugging with a debugger or profiler
    benchmark: BenchmarkFn = run_benchmark  # injectable for fault-injection tests
    interceptors: Sequence[grpc.UnaryStreamClientInterceptor] = ()  # ditto, at the transport edge


@dataclass
class Agent:
    config: AgentConfig
    stop: threading.Event = field(default_factory=threading.Event)
    jobs_done: int = 0

    def __post_init__(self) -> None:
        self.client = AgentClient(self.config.coordinator, tls=self.config.tls, interceptors=self.config.interceptors)
        self.engines = self.config.home / "cache" / "engines"  # what backends build; evicted with the artifacts
        self.cache = ArtifactCache(self.config.home / "cache" / "artifacts", self.config.cache_max_bytes, self.engines)
        self._current_job = ""

    def run(self, max_jobs: int | None = None) -> None:
        """Serve jobs until `stop` is set (or `max_jobs` were done)."""
        self._retry(self._register)
        heartbeat = threading.Thread(target=self._heartbeat_loop, daemon=True, name="heartbeat")
        heartbeat.start()
        try:
            while not self.stop.is_set() and (max_jobs is None or self.jobs_done < max_jobs):
                asked = time.monotonic()
                lease = self._retry(lambda: self.client.lease(self.config.lease_wait_s, cancel=self.stop))
                if lease is None:
                    # A long-poll that waited asks again at once; one answered at once (an older coordinator,
                    # or one with too many waiting calls) is followed by the poll interval, as before.
                    self.stop.wait(self.config.poll_interval_s - (time.monotonic() - asked))
                    continue
                self._serve(lease)
                self.jobs_done += 1
        finally:
            self.stop.set()
            self.client.close()
            self.cache.close()

    def _register(self) -> None:
        caps = probe_capabilities()
        reg = self.client.register(self.config.name, caps, self.config.fleet_token)
        usable = [r.name for r in caps.runtimes if r.available]
        log.info("registered as %s (%s) with runtimes %s", self.config.name, reg.agent_id, usable)

    def _retry(self, call: Callable[[], T]) -> T:
        """Call until the coordinator answers; re-register if it forgot us (e.g. a fresh store)."""
        delay = 0.5
        while True:
            try:
                return call()
            except CoordinatorUnavailable as exc:
                if self.stop.is_set():
                    raise
                log.warning("%s; retrying in %.1fs", exc, delay)
                self.stop.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
            except PermissionDenied:
                log.error("this agent was revoked by an operator; stopping")
                raise
            except AuthError:
                if call == self._register:
                    raise
                log.warning("coordinator does not know this agent any more; registering again")
                self._retry(self._register)

    def _heartbeat_loop(self) -> None:
        reg = self.client.registration
        interval = reg.heartbeat_interval_s if reg else 5.0
        failing = False  # warn when heartbeats start failing and say when they recover, not every beat
        while not self.stop.wait(interval):
            try:
                self.client.heartbeat(self._current_job)
            except (CoordinatorUnavailable, AuthError) as exc:
                if not failing:
                    log.warning("heartbeat failed (the coordinator will show this agent offline): %s", exc)
                failing = True
            else:
                if failing:
                    log.info("heartbeats reach the coordinator again")
                failing = False

    def _serve(self, lease: Lease) -> None:
        spec = lease.spec
        log.info("job %s attempt %d: %s on %s", lease.job_id, lease.attempt, spec.name, spec.backend)
        self._current_job = lease.job_id
        renewing, lost = threading.Event(), threading.Event()
        renewer = threading.Thread(
            target=self._renew_loop, args=(lease, renewing, lost), daemon=True, name="lease-renew"
        )
        renewer.start()
        try:
            result = self._fetch_and_run(lease, lost)
        except Cancelled:
            log.warning("job %s: the lease is lost, so its benchmark was stopped; nothing to report", lease.job_id)
            return
        finally:
            renewing.set()
            renewer.join()
            self._current_job = ""
        try:
            try:
                duplicate = self._retry(lambda: self.client.report(lease.job_id, lease.attempt, result))
            except (MessageTooLarge, InvalidArgument) as exc:
                # The coordinator cannot store this result (too large, or values it refuses): report the verdict.
                log.warning("result for job %s refused: %s", lease.job_id, exc)
                result = _verdict_only(result, exc)
                duplicate = self._retry(lambda: self.client.report(lease.job_id, lease.attempt, result))
            log.info(
                "job %s reported (%s)%s",
                lease.job_id,
                "ok" if result.ok else result.failure,
                " again" if duplicate else "",
            )
        except (LeaseLost, NotFound, MessageTooLarge, InvalidArgument) as exc:  # even the verdict alone
            log.warning("result for job %s not accepted: %s", lease.job_id, exc)

    def _fetch_and_run(self, lease: Lease, lost: threading.Event) -> BenchmarkResult:
        paths = []
        for ref in (lease.spec.model, lease.spec.dataset):
            try:
                paths.append(self._fetch(ref))
            except (ArtifactCorrupt, NotFound) as exc:
                return BenchmarkResult(failure=Failure(FailureKind.BAD_INPUT, f"artifact {ref.name}: {exc}"))
        self.cache.evict(keep=[lease.spec.model.sha256, lease.spec.dataset.sha256])  # no engine is in use now
        engines = self.engines
        if lost.is_set():
            raise Cancelled("the lease was lost while fetching the artifacts")
        if not self.config.isolate:  # nothing to cancel in-process: a lost lease ends with a refused report
            return self.config.benchmark(lease.spec, paths[0], paths[1], engines)
        return run_isolated(
            lease.spec,
            paths[0],
            paths[1],
            engines,
            timeout_s=self.config.job_timeout_s,
            target=self.config.benchmark,
            cancel=lost,
            memory_limit_bytes=self.config.job_memory_limit_bytes,
        )

    def _fetch(self, ref: ArtifactRef) -> Path:
        def download() -> Path:
            return self.cache.ensure(ref, lambda offset: self.client.fetch(ref.sha256, offset))

        try:
            return self._retry(download)
        except ArtifactCorrupt:
            log.warning("artifact %s failed its sha256 check; fetching it once more", ref.sha256[:12])
            return self._retry(download)

    def _renew_loop(self, lease: Lease, done: threading.Event, lost: threading.Event) -> None:
        interval = max(lease.expires_in_s / 3, 0.05)
        failing = False
        while not done.wait(interval):
            try:
                self.client.renew(lease.job_id, lease.attempt)
            except CoordinatorUnavailable as exc:
                if not failing:
                    log.warning("lease renewal of job %s failed, retrying: %s", lease.job_id, exc)
                failing = True
            except (LeaseLost, NotFound, AuthError) as exc:
                log.warning("lost the lease on job %s: %s; stopping its benchmark", lease.job_id, exc)
                lost.set()
                return
            else:
                failing = False


def _verdict_only(result: BenchmarkResult, exc: MessageTooLarge | InvalidArgument) -> BenchmarkResult:
    """A result the coordinator cannot take: keep the verdict, drop the bulk."""
    if result.failure is not None:
        failure = result.failure
        return BenchmarkResult(failure=Failure(failure.kind, failure.message[:4096], f"detail dropped: {exc}"))
    why = "is too large to report" if isinstance(exc, MessageTooLarge) else "was refused by the coordinator"
    return BenchmarkResult(failure=Failure(FailureKind.WRONG_OUTPUT, f"the result {why}: {exc}"))
