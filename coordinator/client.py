"""Operator client for the CLI and the dashboard: ControlService with EdgeLab errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgelab.config import ClientTls
from edgelab.constants import ARTIFACT_CHUNK_BYTES
from edgelab.domain import (
    AgentInfo,
    ArtifactRef,
    BenchmarkResult,
    Job,
    JobSpec,
    JobState,
    LateResult,
    TrainingConfig,
    TrainingRun,
)
from edgelab.errors import ConfigError
from edgelab.rpc import OPERATOR_TOKEN_KEY, Metadata, client_errors, open_channel
from edgelab.serde import from_proto, to_proto
from edgelab.v1 import common_pb2, control_pb2, control_pb2_grpc

PAGE_SIZE = 500  # items asked for per page; the coordinator may send fewer (it caps pages by size too)


@dataclass
class JobDetails:
    """GetJob's whole answer: the job, its result and who wrote it, and any late results."""

    job: Job
    result: BenchmarkResult | None
    written_by: str = ""  # "agent" (its report) or "coordinator" (a timeout, a revoked agent); "" without result
    result_attempt: int = 0
    result_agent_id: str = ""  # the agent that held that attempt
    late_results: list[LateResult] = field(default_factory=list)  # reports that arrived after the job was closed
    late_results_omitted: int = 0  # left out of the reply to keep it inside the message limit


class ControlClient:
    def __init__(
        self,
        address: str,
        operator_token: str | None = None,
        *,
        timeout_s: float = 30.0,
        tls: ClientTls | None = None,
    ) -> None:
        self.address = address
        # Call metadata on every call (the token never travels in a message).
        self._metadata: Metadata = ((OPERATOR_TOKEN_KEY, operator_token),) if operator_token else ()
        self._timeout = timeout_s
        self._channel = open_channel(address, tls)
        self._stub = control_pb2_grpc.ControlServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def upload(self, path: Path, *, format: str, metadata: dict[str, str] | None = None) -> ArtifactRef:
        if not path.is_file():  # inside the request stream gRPC would report it as "Exception iterating requests!"
            raise ConfigError(f"cannot upload {path}: no such file")

        def requests() -> Iterator[control_pb2.UploadArtifactRequest]:
            with path.open("rb") as f:
                first = True
                while True:
                    data = f.read(ARTIFACT_CHUNK_BYTES)
                    if first:
                        yield control_pb2.UploadArtifactRequest(
                            name=path.name, format=format, data=data, metadata=metadata or {}
                        )
                        first = False
                    elif data:
                        yield control_pb2.UploadArtifactRequest(data=data)
                    if not data:
                        return

        with client_errors(self.address):
            response = self._stub.UploadArtifact(requests(), timeout=None, metadata=self._metadata)
        return from_proto(response.artifact, ArtifactRef)

    def submit(self, spec: JobSpec, agent_ids: list[str] | None = None, *, any_agent: bool = False) -> list[str]:
        """One job per agent in `agent_ids` (empty: every capable agent), or one for any capable agent."""
        request = control_pb2.SubmitJobsRequest(
            spec=to_proto(spec, common_pb2.JobSpec()),
            agent_ids=agent_ids or [],
            any_agent=any_agent,
        )
        with client_errors(self.address):
            return list(self._stub.SubmitJobs(request, timeout=self._timeout, metadata=self._metadata).job_ids)

    def _pages(
        self, call: Callable[..., Any], request: Callable[[int, str], Any], items: str, limit: int | None
    ) -> list[Any]:
        """Every item of a paged list call, page after page, up to `limit` items (None: all)."""
        out: list[Any] = []
        token = ""
        while limit is None or len(out) < limit:
            size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - len(out))
            with client_errors(self.address):
                response = call(request(size, token), timeout=self._timeout, metadata=self._metadata)
            out += getattr(response, items)
            token = response.next_page_token
            if not token:
                break
        return out if limit is None else out[:limit]

    def list_jobs(self, limit: int | None = 100) -> list[Job]:
        """The newest `limit` jobs (None: all of them), newest first."""
        messages = self._pages(
            self._stub.ListJobs,
            lambda size, token: control_pb2.ListJobsRequest(page_size=size, page_token=token),
            "jobs",
            limit,
        )
        return [from_proto(j, Job) for j in messages]

    def get_job(self, job_id: str) -> tuple[Job, BenchmarkResult | None]:
        details = self.get_job_details(job_id)
        return details.job, details.result

    def get_job_details(self, job_id: str) -> JobDetails:
        with client_errors(self.address):
            response = self._stub.GetJob(
                control_pb2.GetJobRequest(job_id=job_id), timeout=self._timeout, metadata=self._metadata
            )
        return JobDetails(
            job=from_proto(response.job, Job),
            result=from_proto(response.result, BenchmarkResult) if response.has_result else None,
            written_by=response.result_written_by,
            result_attempt=response.result_attempt,
            result_agent_id=response.result_agent_id,
            late_results=[from_proto(late, LateResult) for late in response.late_results],
            late_results_omitted=response.late_results_omitted,
        )

    def cancel_job(self, job_id: str) -> JobState:
        """Cancel a queued or leased job; returns the state it had."""
        with client_errors(self.address):
            response = self._stub.CancelJob(
                control_pb2.CancelJobRequest(job_id=job_id), timeout=self._timeout, metadata=self._metadata
            )
        return JobState(common_pb2.JobState.Name(response.previous_state).removeprefix("JOB_STATE_").lower())

    def retry_job(self, job_id: str) -> str:
        """Queue a finished job's spec again on the same target; returns the new job's id."""
        with client_errors(self.address):
            response = self._stub.RetryJob(
                control_pb2.RetryJobRequest(job_id=job_id), timeout=self._timeout, metadata=self._metadata
            )
        return str(response.job_id)

    def list_agents(self) -> list[AgentInfo]:
        """Every registered agent (all pages), oldest registration first."""
        messages = self._pages(
            self._stub.ListAgents,
            lambda size, token: control_pb2.ListAgentsRequest(page_size=size, page_token=token),
            "agents",
            None,
        )
        return [from_proto(a, AgentInfo) for a in messages]

    def revoke_agent(self, agent_id: str) -> tuple[list[str], list[str]]:
        """Refuse the agent's credential from now on; returns (requeued job ids, failed job ids)."""
        with client_errors(self.address):
            response = self._stub.RevokeAgent(
                control_pb2.RevokeAgentRequest(agent_id=agent_id), timeout=self._timeout, metadata=self._metadata
            )
        return list(response.requeued_job_ids), list(response.failed_job_ids)

    def start_training(self, pipelines: list[str], config: TrainingConfig, seeds: list[int] | None = None) -> list[str]:
        """Queue one run per pipeline x seed (none: `config.seed`) on the coordinator; returns their run ids."""
        request = control_pb2.StartTrainingRequest(
            pipelines=pipelines,
            seeds=seeds or [],
            config=to_proto(config, control_pb2.TrainingConfig()),
        )
        with client_errors(self.address):
            return list(self._stub.StartTraining(request, timeout=self._timeout, metadata=self._metadata).run_ids)

    def record_training_run(self, run: TrainingRun) -> str:
        """Store a finished run trained elsewhere (its artifacts uploaded first); returns its run id."""
        request = control_pb2.RecordTrainingRunRequest(run=to_proto(run, control_pb2.TrainingRun()))
        with client_errors(self.address):
            return str(self._stub.RecordTrainingRun(request, timeout=self._timeout, metadata=self._metadata).run_id)

    def list_training_runs(self, limit: int | None = 500) -> list[TrainingRun]:
        """The newest `limit` runs (None: all of them), newest first."""
        messages = self._pages(
            self._stub.ListTrainingRuns,
            lambda size, token: control_pb2.ListTrainingRunsRequest(page_size=size, page_token=token),
            "runs",
            limit,
        )
        return [from_proto(r, TrainingRun) for r in messages]

    def get_training_run(self, run_id: str) -> TrainingRun:
        with client_errors(self.address):
            response = self._stub.GetTrainingRun(
                control_pb2.GetTrainingRunRequest(run_id=run_id), timeout=self._timeout, metadata=self._metadata
            )
        return from_proto(response.run, TrainingRun)
