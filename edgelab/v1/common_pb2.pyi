from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Precision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRECISION_UNSPECIFIED: _ClassVar[Precision]
    PRECISION_FP32: _ClassVar[Precision]
    PRECISION_FP16: _ClassVar[Precision]
    PRECISION_INT8: _ClassVar[Precision]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_LEASED: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]

class FailureKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_KIND_UNSPECIFIED: _ClassVar[FailureKind]
    FAILURE_KIND_BUILD: _ClassVar[FailureKind]
    FAILURE_KIND_UNSUPPORTED: _ClassVar[FailureKind]
    FAILURE_KIND_OUT_OF_MEMORY: _ClassVar[FailureKind]
    FAILURE_KIND_TIMEOUT: _ClassVar[FailureKind]
    FAILURE_KIND_CRASH: _ClassVar[FailureKind]
    FAILURE_KIND_WRONG_OUTPUT: _ClassVar[FailureKind]
    FAILURE_KIND_BAD_INPUT: _ClassVar[FailureKind]
    FAILURE_KIND_UNAVAILABLE: _ClassVar[FailureKind]
PRECISION_UNSPECIFIED: Precision
PRECISION_FP32: Precision
PRECISION_FP16: Precision
PRECISION_INT8: Precision
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_LEASED: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
FAILURE_KIND_UNSPECIFIED: FailureKind
FAILURE_KIND_BUILD: FailureKind
FAILURE_KIND_UNSUPPORTED: FailureKind
FAILURE_KIND_OUT_OF_MEMORY: FailureKind
FAILURE_KIND_TIMEOUT: FailureKind
FAILURE_KIND_CRASH: FailureKind
FAILURE_KIND_WRONG_OUTPUT: FailureKind
FAILURE_KIND_BAD_INPUT: FailureKind
FAILURE_KIND_UNAVAILABLE: FailureKind

class RuntimeInfo(_message.Message):
    __slots__ = ("name", "available", "version", "reason", "precisions")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PRECISIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    available: bool
    version: str
    reason: str
    precisions: _containers.RepeatedScalarFieldContainer[Precision]
    def __init__(self, name: _Optional[str] = ..., available: _Optional[bool] = ..., version: _Optional[str] = ..., reason: _Optional[str] = ..., precisions: _Optional[_Iterable[_Union[Precision, str]]] = ...) -> None: ...

class DeviceCapabilities(_message.Message):
    __slots__ = ("hostname", "device_model", "cpu_model", "cpu_cores", "memory_bytes", "os", "python_version", "agent_version", "runtimes", "power_meters")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_MODEL_FIELD_NUMBER: _ClassVar[int]
    CPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    PYTHON_VERSION_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    RUNTIMES_FIELD_NUMBER: _ClassVar[int]
    POWER_METERS_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    device_model: str
    cpu_model: str
    cpu_cores: int
    memory_bytes: int
    os: str
    python_version: str
    agent_version: str
    runtimes: _containers.RepeatedCompositeFieldContainer[RuntimeInfo]
    power_meters: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, hostname: _Optional[str] = ..., device_model: _Optional[str] = ..., cpu_model: _Optional[str] = ..., cpu_cores: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., os: _Optional[str] = ..., python_version: _Optional[str] = ..., agent_version: _Optional[str] = ..., runtimes: _Optional[_Iterable[_Union[RuntimeInfo, _Mapping]]] = ..., power_meters: _Optional[_Iterable[str]] = ...) -> None: ...

class MeasurementSettings(_message.Message):
    __slots__ = ("warmup_iterations", "warmup_duration_s", "min_iterations", "min_duration_s", "max_duration_s", "num_threads", "power_meter", "power_sample_period_s", "power_idle_s", "repetitions")
    WARMUP_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    WARMUP_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    MIN_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    MIN_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    MAX_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    NUM_THREADS_FIELD_NUMBER: _ClassVar[int]
    POWER_METER_FIELD_NUMBER: _ClassVar[int]
    POWER_SAMPLE_PERIOD_S_FIELD_NUMBER: _ClassVar[int]
    POWER_IDLE_S_FIELD_NUMBER: _ClassVar[int]
    REPETITIONS_FIELD_NUMBER: _ClassVar[int]
    warmup_iterations: int
    warmup_duration_s: float
    min_iterations: int
    min_duration_s: float
    max_duration_s: float
    num_threads: int
    power_meter: str
    power_sample_period_s: float
    power_idle_s: float
    repetitions: int
    def __init__(self, warmup_iterations: _Optional[int] = ..., warmup_duration_s: _Optional[float] = ..., min_iterations: _Optional[int] = ..., min_duration_s: _Optional[float] = ..., max_duration_s: _Optional[float] = ..., num_threads: _Optional[int] = ..., power_meter: _Optional[str] = ..., power_sample_period_s: _Optional[float] = ..., power_idle_s: _Optional[float] = ..., repetitions: _Optional[int] = ...) -> None: ...

class JobSpec(_message.Message):
    __slots__ = ("name", "backend", "precision", "batch_sizes", "measurement", "model", "dataset", "pipeline", "labels", "backend_options")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class BackendOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZES_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    backend: str
    precision: Precision
    batch_sizes: _containers.RepeatedScalarFieldContainer[int]
    measurement: MeasurementSettings
    model: ArtifactRef
    dataset: ArtifactRef
    pipeline: str
    labels: _containers.ScalarMap[str, str]
    backend_options: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., backend: _Optional[str] = ..., precision: _Optional[_Union[Precision, str]] = ..., batch_sizes: _Optional[_Iterable[int]] = ..., measurement: _Optional[_Union[MeasurementSettings, _Mapping]] = ..., model: _Optional[_Union[ArtifactRef, _Mapping]] = ..., dataset: _Optional[_Union[ArtifactRef, _Mapping]] = ..., pipeline: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., backend_options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ArtifactRef(_message.Message):
    __slots__ = ("sha256", "size_bytes", "format", "name")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    size_bytes: int
    format: str
    name: str
    def __init__(self, sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., format: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class LatencyStats(_message.Message):
    __slots__ = ("batch_size", "samples", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "min_ms", "max_ms", "std_ms", "throughput_per_s", "first_inference_ms", "warmup_s", "warmup_iterations", "timed_duration_s", "scope", "ci_level", "p50_ci_low_ms", "p50_ci_high_ms", "p99_ci_low_ms", "p99_ci_high_ms", "cv")
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    MEAN_MS_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P90_MS_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MS_FIELD_NUMBER: _ClassVar[int]
    STD_MS_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_PER_S_FIELD_NUMBER: _ClassVar[int]
    FIRST_INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    WARMUP_S_FIELD_NUMBER: _ClassVar[int]
    WARMUP_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    TIMED_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    CI_LEVEL_FIELD_NUMBER: _ClassVar[int]
    P50_CI_LOW_MS_FIELD_NUMBER: _ClassVar[int]
    P50_CI_HIGH_MS_FIELD_NUMBER: _ClassVar[int]
    P99_CI_LOW_MS_FIELD_NUMBER: _ClassVar[int]
    P99_CI_HIGH_MS_FIELD_NUMBER: _ClassVar[int]
    CV_FIELD_NUMBER: _ClassVar[int]
    batch_size: int
    samples: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    throughput_per_s: float
    first_inference_ms: float
    warmup_s: float
    warmup_iterations: int
    timed_duration_s: float
    scope: str
    ci_level: float
    p50_ci_low_ms: float
    p50_ci_high_ms: float
    p99_ci_low_ms: float
    p99_ci_high_ms: float
    cv: float
    def __init__(self, batch_size: _Optional[int] = ..., samples: _Optional[int] = ..., mean_ms: _Optional[float] = ..., p50_ms: _Optional[float] = ..., p90_ms: _Optional[float] = ..., p95_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ..., min_ms: _Optional[float] = ..., max_ms: _Optional[float] = ..., std_ms: _Optional[float] = ..., throughput_per_s: _Optional[float] = ..., first_inference_ms: _Optional[float] = ..., warmup_s: _Optional[float] = ..., warmup_iterations: _Optional[int] = ..., timed_duration_s: _Optional[float] = ..., scope: _Optional[str] = ..., ci_level: _Optional[float] = ..., p50_ci_low_ms: _Optional[float] = ..., p50_ci_high_ms: _Optional[float] = ..., p99_ci_low_ms: _Optional[float] = ..., p99_ci_high_ms: _Optional[float] = ..., cv: _Optional[float] = ...) -> None: ...

class ClassMetrics(_message.Message):
    __slots__ = ("name", "support", "precision", "recall", "f1")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    F1_FIELD_NUMBER: _ClassVar[int]
    name: str
    support: int
    precision: float
    recall: float
    f1: float
    def __init__(self, name: _Optional[str] = ..., support: _Optional[int] = ..., precision: _Optional[float] = ..., recall: _Optional[float] = ..., f1: _Optional[float] = ...) -> None: ...

class AccuracyReport(_message.Message):
    __slots__ = ("samples", "accuracy", "classes", "confusion", "num_classes", "macro_f1")
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    CONFUSION_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    MACRO_F1_FIELD_NUMBER: _ClassVar[int]
    samples: int
    accuracy: float
    classes: _containers.RepeatedCompositeFieldContainer[ClassMetrics]
    confusion: _containers.RepeatedScalarFieldContainer[int]
    num_classes: int
    macro_f1: float
    def __init__(self, samples: _Optional[int] = ..., accuracy: _Optional[float] = ..., classes: _Optional[_Iterable[_Union[ClassMetrics, _Mapping]]] = ..., confusion: _Optional[_Iterable[int]] = ..., num_classes: _Optional[int] = ..., macro_f1: _Optional[float] = ...) -> None: ...

class PowerReport(_message.Message):
    __slots__ = ("meter", "sensor", "sample_period_s", "samples", "idle_w", "mean_w", "energy_per_inference_mj", "batch_size", "window_s", "rail_mean_w")
    class RailMeanWEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    METER_FIELD_NUMBER: _ClassVar[int]
    SENSOR_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_PERIOD_S_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    IDLE_W_FIELD_NUMBER: _ClassVar[int]
    MEAN_W_FIELD_NUMBER: _ClassVar[int]
    ENERGY_PER_INFERENCE_MJ_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    RAIL_MEAN_W_FIELD_NUMBER: _ClassVar[int]
    meter: str
    sensor: str
    sample_period_s: float
    samples: int
    idle_w: float
    mean_w: float
    energy_per_inference_mj: float
    batch_size: int
    window_s: float
    rail_mean_w: _containers.ScalarMap[str, float]
    def __init__(self, meter: _Optional[str] = ..., sensor: _Optional[str] = ..., sample_period_s: _Optional[float] = ..., samples: _Optional[int] = ..., idle_w: _Optional[float] = ..., mean_w: _Optional[float] = ..., energy_per_inference_mj: _Optional[float] = ..., batch_size: _Optional[int] = ..., window_s: _Optional[float] = ..., rail_mean_w: _Optional[_Mapping[str, float]] = ...) -> None: ...

class RepetitionSpread(_message.Message):
    __slots__ = ("batch_size", "scope", "p50_ms", "mean_ms", "sd_ms", "min_ms", "max_ms")
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    MEAN_MS_FIELD_NUMBER: _ClassVar[int]
    SD_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MS_FIELD_NUMBER: _ClassVar[int]
    batch_size: int
    scope: str
    p50_ms: _containers.RepeatedScalarFieldContainer[float]
    mean_ms: float
    sd_ms: float
    min_ms: float
    max_ms: float
    def __init__(self, batch_size: _Optional[int] = ..., scope: _Optional[str] = ..., p50_ms: _Optional[_Iterable[float]] = ..., mean_ms: _Optional[float] = ..., sd_ms: _Optional[float] = ..., min_ms: _Optional[float] = ..., max_ms: _Optional[float] = ...) -> None: ...

class AcceleratorMemory(_message.Message):
    __slots__ = ("source", "what", "size_bytes", "note")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    WHAT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    source: str
    what: str
    size_bytes: int
    note: str
    def __init__(self, source: _Optional[str] = ..., what: _Optional[str] = ..., size_bytes: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...

class MemoryReport(_message.Message):
    __slots__ = ("baseline_rss_bytes", "load_peak_bytes", "inference_peak_bytes", "model_file_bytes", "method", "accelerator")
    BASELINE_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    LOAD_PEAK_BYTES_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_PEAK_BYTES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FILE_BYTES_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ACCELERATOR_FIELD_NUMBER: _ClassVar[int]
    baseline_rss_bytes: int
    load_peak_bytes: int
    inference_peak_bytes: int
    model_file_bytes: int
    method: str
    accelerator: _containers.RepeatedCompositeFieldContainer[AcceleratorMemory]
    def __init__(self, baseline_rss_bytes: _Optional[int] = ..., load_peak_bytes: _Optional[int] = ..., inference_peak_bytes: _Optional[int] = ..., model_file_bytes: _Optional[int] = ..., method: _Optional[str] = ..., accelerator: _Optional[_Iterable[_Union[AcceleratorMemory, _Mapping]]] = ...) -> None: ...

class OperatorTime(_message.Message):
    __slots__ = ("name", "op_type", "time_ms", "percent")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OP_TYPE_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    op_type: str
    time_ms: float
    percent: float
    def __init__(self, name: _Optional[str] = ..., op_type: _Optional[str] = ..., time_ms: _Optional[float] = ..., percent: _Optional[float] = ...) -> None: ...

class OperatorProfile(_message.Message):
    __slots__ = ("batch_size", "source", "total_ms", "operators", "iterations", "ops")
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    OPERATORS_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    OPS_FIELD_NUMBER: _ClassVar[int]
    batch_size: int
    source: str
    total_ms: float
    operators: int
    iterations: int
    ops: _containers.RepeatedCompositeFieldContainer[OperatorTime]
    def __init__(self, batch_size: _Optional[int] = ..., source: _Optional[str] = ..., total_ms: _Optional[float] = ..., operators: _Optional[int] = ..., iterations: _Optional[int] = ..., ops: _Optional[_Iterable[_Union[OperatorTime, _Mapping]]] = ...) -> None: ...

class Failure(_message.Message):
    __slots__ = ("kind", "message", "detail")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    kind: FailureKind
    message: str
    detail: str
    def __init__(self, kind: _Optional[_Union[FailureKind, str]] = ..., message: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class BenchmarkResult(_message.Message):
    __slots__ = ("load_s", "latency", "accuracy", "power", "manifest", "failure", "memory", "profiles", "repetitions")
    class ManifestEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LOAD_S_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    POWER_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    REPETITIONS_FIELD_NUMBER: _ClassVar[int]
    load_s: float
    latency: _containers.RepeatedCompositeFieldContainer[LatencyStats]
    accuracy: AccuracyReport
    power: _containers.RepeatedCompositeFieldContainer[PowerReport]
    manifest: _containers.ScalarMap[str, str]
    failure: Failure
    memory: MemoryReport
    profiles: _containers.RepeatedCompositeFieldContainer[OperatorProfile]
    repetitions: _containers.RepeatedCompositeFieldContainer[RepetitionSpread]
    def __init__(self, load_s: _Optional[float] = ..., latency: _Optional[_Iterable[_Union[LatencyStats, _Mapping]]] = ..., accuracy: _Optional[_Union[AccuracyReport, _Mapping]] = ..., power: _Optional[_Iterable[_Union[PowerReport, _Mapping]]] = ..., manifest: _Optional[_Mapping[str, str]] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ..., memory: _Optional[_Union[MemoryReport, _Mapping]] = ..., profiles: _Optional[_Iterable[_Union[OperatorProfile, _Mapping]]] = ..., repetitions: _Optional[_Iterable[_Union[RepetitionSpread, _Mapping]]] = ...) -> None: ...
