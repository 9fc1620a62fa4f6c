"""gRPC servicers: protobuf stops here; everything behind them works on `edgelab.domain`."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from coordinator import limits
from coordinator.artifacts import ArtifactStore
from coordinator.auth import authenticated_agent_id
from coordinator.dispatch import JobBell
from coordinator.guards import CallSlots
from coordinator.store import PageKey, Store, decode_page_token, encode_page_token
from coordinator.training import QueuedRun, TrainingRunner, to_train_config
from edgelab.constants import MAX_LEASE_WAIT_S
from edgelab.domain import BenchmarkResult, DeviceCapabilities, Job, JobSpec, Lease, TrainingConfig, TrainingRun
from edgelab.errors import NotFound
from edgelab.rpc import server_errors
from edgelab.serde import from_proto, to_proto
from edgelab.v1 import agent_pb2, agent_pb2_grpc, common_pb2, control_pb2, control_pb2_grpc

T = TypeVar("T")
M = TypeVar("M", bound=Message)

log = logging.getLogger("edgelab.coordinator")

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def _page_size(page_size: int, legacy_limit: int = 0) -> int:
    size = page_size or legacy_limit or DEFAULT_PAGE_SIZE
    if size < 0:
        raise limits.Invalid(f"page_size: {size} is negative")
    return min(size, MAX_PAGE_SIZE)


def _page(
    rows: Sequence[tuple[PageKey, T]], page_size: int, kind: str, convert: Callable[[T], M]
) -> tuple[list[M], str]:
    """One page out of `rows` (fetched with page_size + 1 rows): at most page_size messages and at
    most REPLY_BUDGET_BYTES of them (at least one), and the token of the next page ("" at the end)."""
    messages: list[M] = []
    size = 0
    last: PageKey | None = None
    for key, item in rows[:page_size]:
        message = convert(item)
        length = message.ByteSize() + 16  # the repeated field's tag and length prefix, generously
        if messages and size + length > limits.REPLY_BUDGET_BYTES:
            assert last is not None
            return messages, encode_page_token(kind, last)
        messages.append(message)
        size += length
        last = key
    more = len(rows) > page_size and last is not None
    return messages, encode_page_token(kind, last) if more and last is not None else ""


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    """Agent calls; `coordinator.auth.Authenticator` has checked the fleet token (Register) or the agent's
    credentials (the rest) before any of these runs."""

    def __init__(
        self,
        store: Store,
        artifacts: ArtifactStore,
        *,
        heartbeat_interval_s: float,
        bell: JobBell | None = None,
        slots: CallSlots | None = None,
    ) -> None:
        """`bell`: what wakes long-polling leases; the store must ring it (`Store(on_job_queued=bell.ring)`).
        Without one, a long-poll answers at once. `slots`: given back while a long-poll waits."""
        self._bell = bell or JobBell(max_waiters=0)
        self._slots = slots
        self._backends: dict[str, list[str]] = {}  # agent id -> the runtimes it can run
        self._store = store
        self._heartbeat_interval_s = heartbeat_interval_s
        self._artifacts = artifacts

    @server_errors
    def Register(self, request: agent_pb2.RegisterRequest, context: grpc.ServicerContext) -> agent_pb2.RegisterResponse:
        limits.check_agent_name(request.name)
        caps = from_proto(request.capabilities, DeviceCapabilities)
        limits.check_capabilities(caps, request.capabilities)
        agent_id, token = self._store.register_agent(request.name, caps)
        log.info("agent %s registered: %r on %r", agent_id, request.name, caps.device_model or caps.hostname)
        return agent_pb2.RegisterResponse(
            agent_id=agent_id,
            agent_token=token,
            heartbeat_interval_s=self._heartbeat_interval_s,
            lease_duration_s=self._store.lease_duration_s,
        )

    @server_errors
    def Heartbeat(
        self, request: agent_pb2.HeartbeatRequest, context: grpc.ServicerContext
    ) -> agent_pb2.HeartbeatResponse:
        limits.check_job_id("current_job_id", request.current_job_id)
        self._store.heartbeat(authenticated_agent_id(), request.current_job_id)
        return agent_pb2.HeartbeatResponse()

    @server_errors
    def LeaseJob(self, request: agent_pb2.LeaseJobRequest, context: grpc.ServicerContext) -> agent_pb2.LeaseJobResponse:
        agent_id = authenticated_agent_id()
        backends = self._backends.get(agent_id)
        if backends is None:  # an agent's capabilities are fixed at registration (a new one gets a new id)
            agent = self._store.get_agent(agent_id)
            backends = self._backends[agent_id] = [r.name for r in agent.capabilities.runtimes if r.available]
        if request.wait_s > 0:
            lease = self._long_poll(agent_id, backends, request.wait_s, context)
        else:
            lease = self._store.lease_job(agent_id, backends)
        if lease is None:
            return agent_pb2.LeaseJobResponse(has_job=False)
        log.info("job %s (%r) leased to agent %s, attempt %d", lease.job_id, lease.spec.name, agent_id, lease.attempt)
        return agent_pb2.LeaseJobResponse(has_job=True, lease=to_proto(lease, agent_pb2.Lease()))

    def _long_poll(
        self, agent_id: str, backends: list[str], wait_s: float, context: grpc.ServicerContext
    ) -> Lease | None:
        """Lease, or wait until a job for this agent is queued (at most `wait_s`, MAX_LEASE_WAIT_S and the
        call's own deadline less a margin, so the agent gets an answer rather than DEADLINE_EXCEEDED)."""
        wait_s = min(wait_s, MAX_LEASE_WAIT_S, context.time_remaining() - 1.0)
        deadline = time.monotonic() + wait_s
        with self._bell.listen(agent_id, backends) as rung:
            lease = self._store.lease_job(agent_id, backends)
            if rung is None:  # too many calls wait already: answer now, the agent polls
                return lease
            context.add_callback(rung.set)  # a cancelled call stops waiting
            while lease is None and context.is_active():
                remaining = deadline - time.monotonic()
                with self._slots.released() if self._slots is not None else nullcontext():
                    woken = remaining > 0 and rung.wait(remaining)
                if not woken:
                    break
                rung.clear()
                lease = self._store.lease_job(agent_id, backends)
        return lease

    @server_errors
    def RenewLease(
        self, request: agent_pb2.RenewLeaseRequest, context: grpc.ServicerContext
    ) -> agent_pb2.RenewLeaseResponse:
        expires = self._store.renew_lease(authenticated_agent_id(), request.job_id, request.attempt)
        return agent_pb2.RenewLeaseResponse(expires_in_s=expires)

    @server_errors
    def FetchArtifact(
        self, request: agent_pb2.FetchArtifactRequest, context: grpc.ServicerContext
    ) -> Iterator[agent_pb2.ArtifactChunk]:
        sha256 = limits.sha256_hex("sha256", request.sha256)
        self._store.get_artifact(sha256)
        for offset, data, total in self._artifacts.read_chunks(sha256, request.offset):
            digest = hashlib.sha256(data).hexdigest()
            yield agent_pb2.ArtifactChunk(offset=offset, data=data, total_size=total, sha256=digest)

    @server_errors
    def ReportResult(
        self, request: agent_pb2.ReportResultRequest, context: grpc.ServicerContext
    ) -> agent_pb2.ReportResultResponse:
        agent_id = authenticated_agent_id()
        result = from_proto(request.result, BenchmarkResult)
        try:
            limits.check_result(result, request.result)
        except limits.TooLarge as exc:
            # RESOURCE_EXHAUSTED, as for a message over the gRPC limit: the agent reports the verdict
            # without the bulk instead (agent.loop._shrunk), so the job still gets a result.
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"refused, too large to store: {exc}")
        duplicate = self._store.report_result(agent_id, request.job_id, request.attempt, result)
        if not duplicate:
            outcome = (
                "succeeded"
                if result.failure is None
                else f"failed ({result.failure.kind.value}: {result.failure.message})"
            )
            log.info("job %s %s on agent %s", request.job_id, outcome, agent_id)
        return agent_pb2.ReportResultResponse(accepted=True, duplicate=duplicate)


def job_to_proto(job: Job) -> control_pb2.JobSummary:
    return to_proto(job, control_pb2.JobSummary())


def training_run_to_proto(run: TrainingRun) -> control_pb2.TrainingRun:
    return to_proto(run, control_pb2.TrainingRun())


class ControlServicer(control_pb2_grpc.ControlServiceServicer):
    """Operator calls; `coordinator.auth.Authenticator` has checked the operator token before any of these runs."""

    def __init__(
        self,
        store: Store,
        artifacts: ArtifactStore,
        *,
        training: TrainingRunner,
        data_dir: Path,
    ) -> None:
        self._store = store
        self._artifacts = artifacts
        self._training = training
        self._data_dir = data_dir

    @server_errors
    def UploadArtifact(
        self, request_iterator: Iterator[control_pb2.UploadArtifactRequest], context: grpc.ServicerContext
    ) -> control_pb2.UploadArtifactResponse:
        first = next(request_iterator, None)
        if first is None:
            raise ValueError("empty upload")
        if not first.name or not first.format:
            raise ValueError("the first upload message must carry name and format")
        limits.check_artifact_upload(first.name, first.format, first.metadata)

        def chunks() -> Iterator[bytes]:
            yield first.data
            for msg in request_iterator:
                yield msg.data

        ref = self._artifacts.put_chunks(chunks(), name=first.name, format=first.format)
        self._store.add_artifact(ref, dict(first.metadata))
        return control_pb2.UploadArtifactResponse(artifact=to_proto(ref, common_pb2.ArtifactRef()))

    @server_errors
    def SubmitJobs(
        self, request: control_pb2.SubmitJobsRequest, context: grpc.ServicerContext
    ) -> control_pb2.SubmitJobsResponse:
        spec = from_proto(request.spec, JobSpec)
        limits.check_spec(spec, request.spec)
        for name, ref in (("model", spec.model), ("dataset", spec.dataset)):
            ref.sha256 = limits.sha256_hex(f"spec.{name}.sha256", ref.sha256)  # either case in, lower case stored
        if request.any_agent:
            if request.agent_ids:
                raise ValueError("give agent ids or any_agent, not both")
            if not any(
                a.capabilities.can_run(spec.backend) for a in self._store.list_agents() if a.status != "revoked"
            ):
                raise NotFound(f"no registered agent can run backend {spec.backend!r}")
            job_id = self._store.submit_job(spec)
            log.info(
                "job %s (%r, %s %s) queued for any capable agent", job_id, spec.name, spec.backend, spec.precision.value
            )
            return control_pb2.SubmitJobsResponse(job_ids=[job_id])
        if request.agent_ids:
            targets = [self._store.get_agent(agent_id) for agent_id in request.agent_ids]
            unable = [a.name for a in targets if not a.capabilities.can_run(spec.backend)]
            if unable:
                raise ValueError(f"agents {unable} cannot run backend {spec.backend!r}")
            revoked = [a.name for a in targets if a.status == "revoked"]
            if revoked:
                raise ValueError(f"agents {revoked} are revoked")
        else:
            # Fleet-wide: every capable agent that is not offline (a dead agent would hold the job forever).
            targets = [
                a
                for a in self._store.list_agents()
                if a.capabilities.can_run(spec.backend) and a.status not in ("offline", "revoked")
            ]
            if not targets:
                raise NotFound(f"no agent that is online can run backend {spec.backend!r}")
        job_ids = [self._store.submit_job(spec, agent.agent_id) for agent in targets]
        for job_id, agent in zip(job_ids, targets, strict=True):
            log.info(
                "job %s (%r, %s %s) queued for agent %s",
                job_id,
                spec.name,
                spec.backend,
                spec.precision.value,
                agent.agent_id,
            )
        return control_pb2.SubmitJobsResponse(job_ids=job_ids)

    @server_errors
    def ListJobs(
        self, request: control_pb2.ListJobsRequest, context: grpc.ServicerContext
    ) -> control_pb2.ListJobsResponse:
        size = _page_size(request.page_size, request.limit)
        after = decode_page_token("jobs", request.page_token)
        jobs, token = _page(self._store.jobs_page(size + 1, after), size, "jobs", job_to_proto)
        return control_pb2.ListJobsResponse(jobs=jobs, next_page_token=token)

    @server_errors
    def GetJob(self, request: control_pb2.GetJobRequest, context: grpc.ServicerContext) -> control_pb2.GetJobResponse:
        self._store.expire_leases()
        job = self._store.get_job(request.job_id)
        stored = self._store.latest_result(request.job_id)
        response = control_pb2.GetJobResponse(job=job_to_proto(job), has_result=stored is not None)
        if stored is not None:
            to_proto(stored.result, response.result)
            response.result_written_by = stored.written_by
            response.result_attempt = stored.attempt
            response.result_agent_id = stored.agent_id
            response.result_created_at = stored.created_at
        size = response.ByteSize()
        for late in self._store.late_results(request.job_id):
            message = to_proto(late, control_pb2.LateResult())
            if size + message.ByteSize() + 16 > limits.REPLY_BUDGET_BYTES:
                response.late_results_omitted += 1
                continue
            response.late_results.append(message)
            size += message.ByteSize() + 16
        return response

    @server_errors
    def ListAgents(
        self, request: control_pb2.ListAgentsRequest, context: grpc.ServicerContext
    ) -> control_pb2.ListAgentsResponse:
        size = _page_size(request.page_size)
        after = decode_page_token("agents", request.page_token)
        rows = self._store.agents_page(size + 1, after)
        agents, token = _page(rows, size, "agents", lambda a: to_proto(a, control_pb2.AgentSummary()))
        return control_pb2.ListAgentsResponse(agents=agents, next_page_token=token)

    @server_errors
    def RevokeAgent(
        self, request: control_pb2.RevokeAgentRequest, context: grpc.ServicerContext
    ) -> control_pb2.RevokeAgentResponse:
        requeued, failed = self._store.revoke_agent(request.agent_id)
        log.info("agent %s revoked: %d job(s) requeued, %d failed", request.agent_id, len(requeued), len(failed))
        return control_pb2.RevokeAgentResponse(requeued_job_ids=requeued, failed_job_ids=failed)

    @server_errors
    def CancelJob(
        self, request: control_pb2.CancelJobRequest, context: grpc.ServicerContext
    ) -> control_pb2.CancelJobResponse:
        previous = self._store.cancel_job(request.job_id)
        log.info("job %s cancelled (was %s)", request.job_id, previous.value)
        return control_pb2.CancelJobResponse(previous_state=f"JOB_STATE_{previous.name}")

    @server_errors
    def RetryJob(
        self, request: control_pb2.RetryJobRequest, context: grpc.ServicerContext
    ) -> control_pb2.RetryJobResponse:
        job_id = self._store.retry_job(request.job_id)
        log.info("job %s queued again as job %s", request.job_id, job_id)
        return control_pb2.RetryJobResponse(job_id=job_id)

    @server_errors
    def StartTraining(
        self, request: control_pb2.StartTrainingRequest, context: grpc.ServicerContext
    ) -> control_pb2.StartTrainingResponse:
        from pipelines.registry import check_known, within_budget

        if not request.pipelines:
            raise ValueError("name at least one pipeline to train")
        check_known(request.pipelines)
        base = from_proto(request.config, TrainingConfig)
        limits.check_training_request(list(request.pipelines), list(request.seeds), base)
        seeds = request.seeds or [base.seed]
        # Stored as trained: epochs and batch size left at 0 become each pipeline's own.
        runs = [
            (name, within_budget(name, dataclasses.replace(base, seed=s))) for name in request.pipelines for s in seeds
        ]
        # A bad value raises ConfigError (INVALID_ARGUMENT) here or in within_budget, before anything is queued.
        train_configs = [to_train_config(config, self._data_dir) for _, config in runs]
        if not self._data_dir.is_dir():
            raise NotFound(
                f"the coordinator's data dir {self._data_dir} does not exist: set `mitdb` in its settings (EDGELAB_MITDB)"
            )
        run_ids = self._store.add_training_runs(runs)
        self._training.submit(
            [
                QueuedRun(run_id, name, train_config)
                for run_id, (name, _), train_config in zip(run_ids, runs, train_configs, strict=True)
            ]
        )
        return control_pb2.StartTrainingResponse(run_ids=run_ids)

    @server_errors
    def RecordTrainingRun(
        self, request: control_pb2.RecordTrainingRunRequest, context: grpc.ServicerContext
    ) -> control_pb2.RecordTrainingRunResponse:
        run = from_proto(request.run, TrainingRun)
        if not run.pipeline:
            raise ValueError("a training run needs its pipeline name")
        limits.check_training_run(run, request.run)
        for field in ("model_sha256", "dataset_sha256", "savedmodel_sha256"):
            setattr(run, field, limits.sha256_hex(f"run.{field}", getattr(run, field), required=False))
        return control_pb2.RecordTrainingRunResponse(run_id=self._store.record_training_run(run))

    @server_errors
    def ListTrainingRuns(
        self, request: control_pb2.ListTrainingRunsRequest, context: grpc.ServicerContext
    ) -> control_pb2.ListTrainingRunsResponse:
        size = _page_size(request.page_size, request.limit)
        after = decode_page_token("training-runs", request.page_token)
        rows = self._store.training_runs_page(size + 1, after)
        runs, token = _page(rows, size, "training-runs", training_run_to_proto)
        return control_pb2.ListTrainingRunsResponse(runs=runs, next_page_token=token)

    @server_errors
    def GetTrainingRun(
        self, request: control_pb2.GetTrainingRunRequest, context: grpc.ServicerContext
    ) -> control_pb2.GetTrainingRunResponse:
        run = self._store.get_training_run(request.run_id)
        return control_pb2.GetTrainingRunResponse(run=training_run_to_proto(run))
