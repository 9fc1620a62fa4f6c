"""The door (issue 13): what the coordinator cannot trust or cannot read back is refused before the store,
with the field named, and every list call is paged so that whatever was accepted can always be listed.
Against a real coordinator on 127.0.0.1 (and a real agent loop for an oversized result)."""

from __future__ import annotations

import dataclasses
import math
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from agent.client import AgentClient
from agent.loop import Agent, AgentConfig
from coordinator import limits
from coordinator.client import ControlClient
from coordinator.server import Coordinator
from edgelab.app.cli import app
from edgelab.constants import GRPC_MAX_MESSAGE_BYTES
from edgelab.domain import (
    AccuracyReport,
    BenchmarkResult,
    FailureKind,
    JobSpec,
    JobState,
    MeasurementSettings,
    MemoryReport,
    PowerReport,
    RuntimeInfo,
    TrainingConfig,
    TrainingRun,
    TrainingState,
)
from edgelab.errors import EdgeLabError, InvalidArgument
from edgelab.rpc import AGENT_ID_KEY, AGENT_TOKEN_KEY, CHANNEL_OPTIONS
from edgelab.serde import to_proto
from edgelab.v1 import agent_pb2, agent_pb2_grpc, common_pb2, control_pb2, control_pb2_grpc
from tests.factories import CAPS, LATENCY

pytestmark = pytest.mark.integration

ACCURACY = AccuracyReport(samples=4, accuracy=0.75, num_classes=2, macro_f1=0.7, confusion=[2, 0, 1, 1])
POWER = PowerReport("rapl", "package-0", 0.05, 20, 3.0, 5.0, 0.4, batch_size=1, window_s=1.0)
GOOD = BenchmarkResult(load_s=0.1, latency=[LATENCY], accuracy=ACCURACY, power=[POWER], manifest={"agent": "pi"})


def _channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)


def _status(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    error = caught.value
    assert isinstance(error, grpc.Call)
    return error.code(), str(error.details())


@pytest.fixture
def leased(coordinator: Coordinator, onnx_model: Path, test_set: Path) -> Iterator[tuple[AgentClient, str, int]]:
    """A registered agent holding the lease of one job: (agent, job id, attempt)."""
    control = ControlClient(coordinator.address)
    agent = AgentClient(coordinator.address)
    agent.register("pi", CAPS, None)
    spec = JobSpec(
        "t", "onnxruntime", control.upload(onnx_model, format="onnx"), control.upload(test_set, format="npz")
    )
    (job_id,) = control.submit(spec, any_agent=True)
    lease = agent.lease()
    assert lease is not None
    yield agent, job_id, lease.attempt


def _report(agent: AgentClient, job_id: str, attempt: int, result: BenchmarkResult) -> None:
    assert agent.registration is not None
    request = agent_pb2.ReportResultRequest(
        job_id=job_id, attempt=attempt, result=to_proto(result, common_pb2.BenchmarkResult())
    )
    creds = ((AGENT_ID_KEY, agent.registration.agent_id), (AGENT_TOKEN_KEY, agent.registration.agent_token))
    agent_pb2_grpc.AgentServiceStub(_channel(agent.address)).ReportResult(request, timeout=30, metadata=creds)


def _latency(**changes: float) -> BenchmarkResult:
    return dataclasses.replace(GOOD, latency=[dataclasses.replace(LATENCY, **changes)])  # type: ignore[arg-type]


# -- 11. values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "field"),
    [
        (_latency(mean_ms=math.nan), "result.latency[0].mean_ms"),
        (_latency(p99_ms=math.inf), "result.latency[0].p99_ms"),
        (_latency(samples=-5), "result.latency[0].samples"),
        (_latency(batch_size=2**31 - 1), "result.latency[0].batch_size"),
        (dataclasses.replace(GOOD, load_s=-1.0), "result.load_s"),
        (dataclasses.replace(GOOD, accuracy=dataclasses.replace(ACCURACY, accuracy=7.5)), "result.accuracy.accuracy"),
        (dataclasses.replace(GOOD, accuracy=dataclasses.replace(ACCURACY, num_classes=3)), "result.accuracy.confusion"),
        (
            dataclasses.replace(GOOD, accuracy=dataclasses.replace(ACCURACY, confusion=[2, 0, 1, 5])),
            "result.accuracy.confusion",
        ),
        (dataclasses.replace(GOOD, power=[dataclasses.replace(POWER, mean_w=math.nan)]), "result.power[0].mean_w"),
        (_latency(p50_ci_low_ms=math.nan, p50_ci_high_ms=1.0), "result.latency[0].p50_ci_low_ms"),
        (_latency(p50_ci_low_ms=2.0, p50_ci_high_ms=1.0), "result.latency[0].p50_ci_low_ms"),
        (_latency(p99_ci_low_ms=1.0), "result.latency[0].p99_ci_low_ms"),
        (_latency(cv=-0.5), "result.latency[0].cv"),
        (
            dataclasses.replace(GOOD, memory=MemoryReport(baseline_rss_bytes=1, load_peak_bytes=-1, inference_peak_bytes=0)),
            "result.memory.load_peak_bytes",
        ),
    ],
    ids=["nan-latency", "inf-p99", "negative-samples", "batch-2^31-1", "negative-load", "accuracy-7.5",
         "confusion-vs-num_classes", "confusion-vs-samples", "nan-power", "nan-ci", "inverted-ci", "half-ci",
         "negative-cv", "negative-memory"],
)  # fmt: skip
def test_a_report_with_impossible_values_is_refused_naming_the_field_and_nothing_is_stored(
    coordinator: Coordinator, leased: tuple[AgentClient, str, int], result: BenchmarkResult, field: str
) -> None:
    agent, job_id, attempt = leased

    code, details = _status(lambda: _report(agent, job_id, attempt, result))

    assert code is grpc.StatusCode.INVALID_ARGUMENT  # before: OK, and the value was in the table
    assert details.startswith(field), details
    job, stored = ControlClient(coordinator.address).get_job(job_id)
    assert (job.state, stored) == (JobState.LEASED, None)
    assert agent.report(job_id, attempt, GOOD) is False  # the lease still stands for a sound report
    assert ControlClient(coordinator.address).get_job(job_id)[1] == GOOD


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"batch_sizes": [1, 2**31 - 1]}, "spec.batch_sizes[1]"),
        ({"measurement": MeasurementSettings(min_duration_s=math.nan)}, "spec.measurement.min_duration_s"),
        ({"measurement": MeasurementSettings(max_duration_s=math.inf)}, "spec.measurement.max_duration_s"),
        ({"labels": {"log": "x" * (limits.MAX_TEXT_CHARS + 1)}}, "spec.labels['log']"),
        ({"name": "n" * (limits.MAX_NAME_CHARS + 1)}, "spec.name"),
    ],
    ids=["batch-2^31-1", "nan-duration", "inf-duration", "huge-label", "huge-name"],
)
def test_a_spec_out_of_bounds_is_refused_naming_the_field(
    coordinator: Coordinator, onnx_model: Path, test_set: Path, change: dict[str, object], field: str
) -> None:
    control = ControlClient(coordinator.address)
    AgentClient(coordinator.address).register("pi", CAPS, None)
    spec = JobSpec(
        "t", "onnxruntime", control.upload(onnx_model, format="onnx"), control.upload(test_set, format="npz")
    )
    bad = dataclasses.replace(spec, **change)  # type: ignore[arg-type]
    request = control_pb2.SubmitJobsRequest(spec=to_proto(bad, common_pb2.JobSpec()), any_agent=True)

    code, details = _status(
        lambda: control_pb2_grpc.ControlServiceStub(_channel(coordinator.address)).SubmitJobs(request)
    )

    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith(field), details
    assert control.list_jobs() == []


# -- 12. sizes: whatever is accepted can be read back --------------------------------------------


def test_a_report_too_large_to_read_back_is_refused_and_get_job_keeps_working(
    coordinator: Coordinator, leased: tuple[AgentClient, str, int]
) -> None:
    agent, job_id, attempt = leased
    just_under = dataclasses.replace(GOOD, manifest={"log": "x" * (GRPC_MAX_MESSAGE_BYTES - 4096)})
    many = dataclasses.replace(GOOD, manifest={f"k{i}": "y" * 10_000 for i in range(200)})  # each fine, 2 MB in all

    code, details = _status(lambda: _report(agent, job_id, attempt, just_under))  # before: accepted ...
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED and "result.manifest['log']" in details, details
    code, details = _status(lambda: _report(agent, job_id, attempt, many))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED and "result: 1.9" in details, details

    control = ControlClient(coordinator.address)
    assert control.get_job(job_id)[0].state is JobState.LEASED  # ... and GetJob failed for good afterwards
    shown = CliRunner().invoke(app, ["jobs", "show", job_id, "--coordinator", coordinator.address])
    assert shown.exit_code == 0, shown.output


def test_a_real_agent_whose_result_is_too_large_reports_the_verdict_instead(
    coordinator: Coordinator, onnx_model: Path, test_set: Path, tmp_path: Path
) -> None:
    """RESOURCE_EXHAUSTED is what the agent already answers by reporting its verdict without the bulk."""
    control = ControlClient(coordinator.address)

    def verbose(spec: JobSpec, model: Path, dataset: Path, cache: Path | None) -> BenchmarkResult:
        return dataclasses.replace(GOOD, manifest={"log": "z" * (3 << 20)})  # inside gRPC's limit, not the store's

    agent = Agent(AgentConfig(coordinator.address, "verbose", tmp_path / "a", isolate=False, benchmark=verbose))
    thread = threading.Thread(target=agent.run, kwargs={"max_jobs": 1}, daemon=True)
    thread.start()
    spec = JobSpec(
        "t", "onnxruntime", control.upload(onnx_model, format="onnx"), control.upload(test_set, format="npz")
    )
    while not control.list_agents():
        thread.join(0.05)
    (job_id,) = control.submit(spec, any_agent=True)
    thread.join(timeout=60)

    assert not thread.is_alive()
    job, result = control.get_job(job_id)
    assert job.state is JobState.FAILED and result is not None and result.failure is not None
    assert result.failure.kind is FailureKind.WRONG_OUTPUT and "result.manifest['log']" in result.failure.message


def test_agent_names_and_capabilities_are_bounded_and_the_agent_list_stays_readable(
    coordinator: Coordinator,
) -> None:
    huge = AgentClient(coordinator.address)
    for _ in range(2):  # before: both accepted, then ListAgents / `agents list` failed for good
        with pytest.raises(EdgeLabError, match=r"^name: 4718592 characters, at most 128"):
            huge.register("n" * (9 << 19), CAPS, None)
    bloated = dataclasses.replace(CAPS, runtimes=[RuntimeInfo(f"rt{i}", False, reason="r" * 4000) for i in range(20)])
    with pytest.raises(EdgeLabError, match=r"^capabilities: 0\.08 MiB serialized"):
        huge.register("pi", bloated, None)

    agents = CliRunner().invoke(app, ["agents", "list", "--coordinator", coordinator.address])
    assert agents.exit_code == 0, agents.output


@pytest.mark.parametrize(
    ("name", "position"),
    [
        ("pi\x1b]0;pwned\x07", "character 2 is U+001B (category Cc)"),
        ("pi\u202eevil", "character 2 is U+202E (category Cf)"),
    ],
)
def test_agent_and_job_names_with_control_or_format_characters_are_refused_naming_the_rule(
    coordinator: Coordinator, onnx_model: Path, test_set: Path, name: str, position: str
) -> None:
    control = ControlClient(coordinator.address)
    agent = AgentClient(coordinator.address)
    spec = JobSpec(
        name, "onnxruntime", control.upload(onnx_model, format="onnx"), control.upload(test_set, format="npz")
    )

    with pytest.raises(InvalidArgument, match=rf"^name: {re.escape(position)}: names are letters, marks, digits"):
        agent.register(name, CAPS, None)
    agent.register("Jetson Orin (lab 2) — ü #1", CAPS, None)  # printable Unicode is fine
    with pytest.raises(InvalidArgument, match=rf"^spec\.name: {re.escape(position)}"):
        control.submit(spec, any_agent=True)
    with pytest.raises(InvalidArgument, match=r"^spec\.name: 129 characters, at most 128"):
        control.submit(dataclasses.replace(spec, name="j" * 129), any_agent=True)

    assert [a.name for a in control.list_agents()] == ["Jetson Orin (lab 2) — ü #1"] and control.list_jobs() == []


def test_list_agents_is_paged_by_count_and_by_size(coordinator: Coordinator) -> None:
    """150 agents of ~60 KiB capabilities each (9 MB in all): before, one ListAgents answer over the 8 MiB
    limit, refused for good; now pages inside the limit, and the client reads them all."""
    fat = dataclasses.replace(
        CAPS, runtimes=[*CAPS.runtimes, *(RuntimeInfo(f"rt{i}", False, reason="r" * 4000) for i in range(15))]
    )
    assert 55_000 < to_proto(fat, common_pb2.DeviceCapabilities()).ByteSize() <= limits.MAX_CAPABILITIES_BYTES
    client = AgentClient(coordinator.address)
    ids = [client.register(f"pi-{i:03d}", fat, None).agent_id for i in range(150)]
    stub = control_pb2_grpc.ControlServiceStub(_channel(coordinator.address))

    first = stub.ListAgents(control_pb2.ListAgentsRequest(page_size=1000))
    assert 0 < len(first.agents) < 150 and first.next_page_token  # cut by size, not count
    assert first.ByteSize() <= limits.REPLY_BUDGET_BYTES
    small = stub.ListAgents(control_pb2.ListAgentsRequest(page_size=10, page_token=first.next_page_token))
    assert [a.agent_id for a in small.agents] == ids[len(first.agents) : len(first.agents) + 10]
    assert [a.agent_id for a in ControlClient(coordinator.address).list_agents()] == ids
    listed = CliRunner().invoke(app, ["agents", "list", "--coordinator", coordinator.address])
    assert listed.exit_code == 0 and "pi-149" in listed.output, listed.output
    code, details = _status(lambda: stub.ListAgents(control_pb2.ListAgentsRequest(page_token="bogus")))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("page_token"), details


def test_list_jobs_is_paged_by_count_and_by_size(coordinator: Coordinator, onnx_model: Path, test_set: Path) -> None:
    control = ControlClient(coordinator.address)
    AgentClient(coordinator.address).register("pi", CAPS, None)
    model, dataset = control.upload(onnx_model, format="onnx"), control.upload(test_set, format="npz")
    labels = {f"l{i}": "v" * 4000 for i in range(50)}  # ~200 KB a spec, inside MAX_SPEC_BYTES
    job_ids = [
        control.submit(JobSpec(f"j{i}", "onnxruntime", model, dataset, labels=labels), any_agent=True)[0]
        for i in range(45)
    ]
    stub = control_pb2_grpc.ControlServiceStub(_channel(coordinator.address))

    old_client = stub.ListJobs(control_pb2.ListJobsRequest(limit=100))  # before: RESOURCE_EXHAUSTED (9 MB)
    assert 0 < len(old_client.jobs) < 45 and old_client.next_page_token
    assert [j.job_id for j in control.list_jobs(limit=None)] == job_ids[::-1]  # newest first, each once
    assert [j.job_id for j in control.list_jobs(limit=5)] == job_ids[:-6:-1]
    listed = CliRunner().invoke(app, ["jobs", "list", "--coordinator", coordinator.address])
    assert listed.exit_code == 0, listed.output


def test_list_training_runs_is_paged(coordinator: Coordinator) -> None:
    control = ControlClient(coordinator.address)
    runs = [
        TrainingRun("", "mitdb-beats-1d", TrainingConfig(seed=i), TrainingState.FAILED, error=f"run {i} failed")
        for i in range(5)
    ]
    run_ids = [control.record_training_run(run) for run in runs]
    stub = control_pb2_grpc.ControlServiceStub(_channel(coordinator.address))

    page = stub.ListTrainingRuns(control_pb2.ListTrainingRunsRequest(page_size=2))
    rest = stub.ListTrainingRuns(control_pb2.ListTrainingRunsRequest(page_size=10, page_token=page.next_page_token))

    assert [r.run_id for r in [*page.runs, *rest.runs]] == run_ids[::-1] and not rest.next_page_token
    assert [r.run_id for r in control.list_training_runs(limit=None)] == run_ids[::-1]
    huge = dataclasses.replace(runs[0], error="e" * (limits.MAX_TEXT_CHARS + 1))
    with pytest.raises(EdgeLabError, match=r"^run\.error: "):
        control.record_training_run(huge)
