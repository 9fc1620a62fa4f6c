from edgelab.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainingState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAINING_STATE_UNSPECIFIED: _ClassVar[TrainingState]
    TRAINING_STATE_QUEUED: _ClassVar[TrainingState]
    TRAINING_STATE_RUNNING: _ClassVar[TrainingState]
    TRAINING_STATE_SUCCEEDED: _ClassVar[TrainingState]
    TRAINING_STATE_FAILED: _ClassVar[TrainingState]
TRAINING_STATE_UNSPECIFIED: TrainingState
TRAINING_STATE_QUEUED: TrainingState
TRAINING_STATE_RUNNING: TrainingState
TRAINING_STATE_SUCCEEDED: TrainingState
TRAINING_STATE_FAILED: TrainingState

class UploadArtifactRequest(_message.Message):
    __slots__ = ("name", "format", "data", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    format: str
    data: bytes
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., format: _Optional[str] = ..., data: _Optional[bytes] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class UploadArtifactResponse(_message.Message):
    __slots__ = ("artifact",)
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    artifact: _common_pb2.ArtifactRef
    def __init__(self, artifact: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ...) -> None: ...

class SubmitJobsRequest(_message.Message):
    __slots__ = ("spec", "agent_ids", "any_agent")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    AGENT_IDS_FIELD_NUMBER: _ClassVar[int]
    ANY_AGENT_FIELD_NUMBER: _ClassVar[int]
    spec: _common_pb2.JobSpec
    agent_ids: _containers.RepeatedScalarFieldContainer[str]
    any_agent: bool
    def __init__(self, spec: _Optional[_Union[_common_pb2.JobSpec, _Mapping]] = ..., agent_ids: _Optional[_Iterable[str]] = ..., any_agent: _Optional[bool] = ...) -> None: ...

class SubmitJobsResponse(_message.Message):
    __slots__ = ("job_ids",)
    JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    job_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, job_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class JobSummary(_message.Message):
    __slots__ = ("job_id", "state", "agent_id", "agent_name", "attempt", "spec", "created_at", "updated_at")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_NAME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: _common_pb2.JobState
    agent_id: str
    agent_name: str
    attempt: int
    spec: _common_pb2.JobSpec
    created_at: float
    updated_at: float
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ..., agent_id: _Optional[str] = ..., agent_name: _Optional[str] = ..., attempt: _Optional[int] = ..., spec: _Optional[_Union[_common_pb2.JobSpec, _Mapping]] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("limit", "page_size", "page_token")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    limit: int
    page_size: int
    page_token: str
    def __init__(self, limit: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobSummary]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job", "has_result", "result", "result_written_by", "result_attempt", "result_agent_id", "result_created_at", "late_results", "late_results_omitted")
    JOB_FIELD_NUMBER: _ClassVar[int]
    HAS_RESULT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    RESULT_WRITTEN_BY_FIELD_NUMBER: _ClassVar[int]
    RESULT_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RESULT_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LATE_RESULTS_FIELD_NUMBER: _ClassVar[int]
    LATE_RESULTS_OMITTED_FIELD_NUMBER: _ClassVar[int]
    job: JobSummary
    has_result: bool
    result: _common_pb2.BenchmarkResult
    result_written_by: str
    result_attempt: int
    result_agent_id: str
    result_created_at: float
    late_results: _containers.RepeatedCompositeFieldContainer[LateResult]
    late_results_omitted: int
    def __init__(self, job: _Optional[_Union[JobSummary, _Mapping]] = ..., has_result: _Optional[bool] = ..., result: _Optional[_Union[_common_pb2.BenchmarkResult, _Mapping]] = ..., result_written_by: _Optional[str] = ..., result_attempt: _Optional[int] = ..., result_agent_id: _Optional[str] = ..., result_created_at: _Optional[float] = ..., late_results: _Optional[_Iterable[_Union[LateResult, _Mapping]]] = ..., late_results_omitted: _Optional[int] = ...) -> None: ...

class LateResult(_message.Message):
    __slots__ = ("attempt", "agent_id", "received_at", "result")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    agent_id: str
    received_at: float
    result: _common_pb2.BenchmarkResult
    def __init__(self, attempt: _Optional[int] = ..., agent_id: _Optional[str] = ..., received_at: _Optional[float] = ..., result: _Optional[_Union[_common_pb2.BenchmarkResult, _Mapping]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("previous_state",)
    PREVIOUS_STATE_FIELD_NUMBER: _ClassVar[int]
    previous_state: _common_pb2.JobState
    def __init__(self, previous_state: _Optional[_Union[_common_pb2.JobState, str]] = ...) -> None: ...

class RetryJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class RetryJobResponse(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class AgentSummary(_message.Message):
    __slots__ = ("agent_id", "name", "status", "last_seen_at", "capabilities", "current_job_id")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    CURRENT_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    name: str
    status: str
    last_seen_at: float
    capabilities: _common_pb2.DeviceCapabilities
    current_job_id: str
    def __init__(self, agent_id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[str] = ..., last_seen_at: _Optional[float] = ..., capabilities: _Optional[_Union[_common_pb2.DeviceCapabilities, _Mapping]] = ..., current_job_id: _Optional[str] = ...) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents", "next_page_token")
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[AgentSummary]
    next_page_token: str
    def __init__(self, agents: _Optional[_Iterable[_Union[AgentSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RevokeAgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class RevokeAgentResponse(_message.Message):
    __slots__ = ("requeued_job_ids", "failed_job_ids")
    REQUEUED_JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    FAILED_JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    requeued_job_ids: _containers.RepeatedScalarFieldContainer[str]
    failed_job_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, requeued_job_ids: _Optional[_Iterable[str]] = ..., failed_job_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class TrainingConfig(_message.Message):
    __slots__ = ("split", "epochs", "seed", "records", "max_train_beats", "batch_size", "class_weights")
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    MAX_TRAIN_BEATS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    CLASS_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    split: str
    epochs: int
    seed: int
    records: _containers.RepeatedScalarFieldContainer[str]
    max_train_beats: int
    batch_size: int
    class_weights: str
    def __init__(self, split: _Optional[str] = ..., epochs: _Optional[int] = ..., seed: _Optional[int] = ..., records: _Optional[_Iterable[str]] = ..., max_train_beats: _Optional[int] = ..., batch_size: _Optional[int] = ..., class_weights: _Optional[str] = ...) -> None: ...

class TrainingSummary(_message.Message):
    __slots__ = ("split", "host_accuracy", "evaluation", "class_names", "train_beats", "test_beats", "params", "train_seconds", "onnx_max_abs_diff", "notes")
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    HOST_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    TRAIN_BEATS_FIELD_NUMBER: _ClassVar[int]
    TEST_BEATS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ONNX_MAX_ABS_DIFF_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    split: str
    host_accuracy: float
    evaluation: _common_pb2.AccuracyReport
    class_names: _containers.RepeatedScalarFieldContainer[str]
    train_beats: int
    test_beats: int
    params: int
    train_seconds: float
    onnx_max_abs_diff: float
    notes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, split: _Optional[str] = ..., host_accuracy: _Optional[float] = ..., evaluation: _Optional[_Union[_common_pb2.AccuracyReport, _Mapping]] = ..., class_names: _Optional[_Iterable[str]] = ..., train_beats: _Optional[int] = ..., test_beats: _Optional[int] = ..., params: _Optional[int] = ..., train_seconds: _Optional[float] = ..., onnx_max_abs_diff: _Optional[float] = ..., notes: _Optional[_Iterable[str]] = ...) -> None: ...

class TrainingRun(_message.Message):
    __slots__ = ("run_id", "pipeline", "config", "state", "origin", "created_at", "started_at", "finished_at", "error", "summary", "model_sha256", "dataset_sha256", "savedmodel_sha256")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    DATASET_SHA256_FIELD_NUMBER: _ClassVar[int]
    SAVEDMODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    pipeline: str
    config: TrainingConfig
    state: TrainingState
    origin: str
    created_at: float
    started_at: float
    finished_at: float
    error: str
    summary: TrainingSummary
    model_sha256: str
    dataset_sha256: str
    savedmodel_sha256: str
    def __init__(self, run_id: _Optional[str] = ..., pipeline: _Optional[str] = ..., config: _Optional[_Union[TrainingConfig, _Mapping]] = ..., state: _Optional[_Union[TrainingState, str]] = ..., origin: _Optional[str] = ..., created_at: _Optional[float] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., error: _Optional[str] = ..., summary: _Optional[_Union[TrainingSummary, _Mapping]] = ..., model_sha256: _Optional[str] = ..., dataset_sha256: _Optional[str] = ..., savedmodel_sha256: _Optional[str] = ...) -> None: ...

class StartTrainingRequest(_message.Message):
    __slots__ = ("pipelines", "seeds", "config")
    PIPELINES_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    pipelines: _containers.RepeatedScalarFieldContainer[str]
    seeds: _containers.RepeatedScalarFieldContainer[int]
    config: TrainingConfig
    def __init__(self, pipelines: _Optional[_Iterable[str]] = ..., seeds: _Optional[_Iterable[int]] = ..., config: _Optional[_Union[TrainingConfig, _Mapping]] = ...) -> None: ...

class StartTrainingResponse(_message.Message):
    __slots__ = ("run_ids",)
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RecordTrainingRunRequest(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: TrainingRun
    def __init__(self, run: _Optional[_Union[TrainingRun, _Mapping]] = ...) -> None: ...

class RecordTrainingRunResponse(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class ListTrainingRunsRequest(_message.Message):
    __slots__ = ("limit", "page_size", "page_token")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    limit: int
    page_size: int
    page_token: str
    def __init__(self, limit: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTrainingRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[TrainingRun]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[TrainingRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetTrainingRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetTrainingRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: TrainingRun
    def __init__(self, run: _Optional[_Union[TrainingRun, _Mapping]] = ...) -> None: ...
