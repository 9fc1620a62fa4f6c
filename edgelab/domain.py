"""Domain types shared by coordinator, agent and dashboard.

Protobuf stops at the gRPC edge (see `edgelab.serde`); everything else works on these
dataclasses. Field names match the messages in proto/edgelab/v1 one to one.

`edgelab.serde` reads these annotations at run time, on agents as old as Python 3.8, so they
are written with `typing.List`/`Optional` (`list[int]` and `X | None` annotations cannot be
evaluated there).
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Dict, List, Literal, Optional, get_args


class Precision(str, Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class JobState(str, Enum):
    QUEUED = "queued"
    LEASED = "leased"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # by an operator, before it finished: no result

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class FailureKind(str, Enum):
    BUILD = "build"
    UNSUPPORTED = "unsupported"
    OUT_OF_MEMORY = "out_of_memory"
    TIMEOUT = "timeout"
    CRASH = "crash"
    WRONG_OUTPUT = "wrong_output"
    BAD_INPUT = "bad_input"
    UNAVAILABLE = "unavailable"


@dataclass
class RuntimeInfo:
    name: str
    available: bool
    version: str = ""
    reason: str = ""
    precisions: List[Precision] = field(default_factory=list)


@dataclass
class DeviceCapabilities:
    hostname: str = ""
    device_model: str = ""
    cpu_model: str = ""
    cpu_cores: int = 0
    memory_bytes: int = 0
    os: str = ""
    python_version: str = ""
    agent_version: str = ""
    runtimes: List[RuntimeInfo] = field(default_factory=list)
    power_meters: List[str] = field(default_factory=list)

    def can_run(self, backend: str) -> bool:
        return any(r.name == backend and r.available for r in self.runtimes)


@dataclass
class MeasurementSettings:
    """Timing rules: warm-up discarded, then at least
    `min_iterations` AND at least `min_duration_s`, capped by `max_duration_s`."""

    warmup_iterations: int = 10
    warmup_duration_s: float = 0.2
    min_iterations: int = 100
    min_duration_s: float = 3.0
    max_duration_s: float = 60.0
    num_threads: int = 0  # 0: the runtime's default
    power_meter: str = ""  # "": the best meter the device has; "none": no power measurement
    power_sample_period_s: float = 0.05
    power_idle_s: float = 1.0  # idle baseline, measured just before each timed window
    # The warm-up and timed phase run this many times per batch size, each after a fresh warm-up; the latency
    # figures pool every repetition's samples and `BenchmarkResult.repetitions` holds the spread across them.
    repetitions: int = 1

    def __post_init__(self) -> None:
        if self.min_iterations < 1 or self.warmup_iterations < 0:
            raise ValueError("min_iterations must be >= 1 and warmup_iterations >= 0")
        if self.repetitions < 1:
            raise ValueError(f"repetitions must be >= 1, got {self.repetitions}")
        if self.min_duration_s < 0 or self.max_duration_s < self.min_duration_s:
            raise ValueError("need 0 <= min_duration_s <= max_duration_s")
        if self.power_sample_period_s <= 0 or self.power_idle_s < 0:
            raise ValueError("need power_sample_period_s > 0 and power_idle_s >= 0")


@dataclass
class ArtifactRef:
    sha256: str
    size_bytes: int = 0
    format: str = ""
    name: str = ""


@dataclass
class JobSpec:
    name: str
    backend: str
    model: ArtifactRef
    dataset: ArtifactRef
    precision: Precision = Precision.FP32
    batch_sizes: List[int] = field(default_factory=lambda: [1])
    measurement: MeasurementSettings = field(default_factory=MeasurementSettings)
    pipeline: str = ""
    labels: Dict[str, str] = field(default_factory=dict)
    backend_options: Dict[str, str] = field(default_factory=dict)  # e.g. {"dla_core": "0"} for tensorrt

    def __post_init__(self) -> None:
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ValueError(f"batch sizes must be positive integers, got {self.batch_sizes}")


@dataclass
class LatencyStats:
    batch_size: int
    samples: int
    mean_ms: float
    p50_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    throughput_per_s: float
    first_inference_ms: float
    warmup_s: float
    warmup_iterations: int
    timed_duration_s: float
    scope: str
    p90_ms: Optional[float] = None
    p95_ms: Optional[float] = None
    p99_ms: Optional[float] = None
    # Distribution-free confidence intervals (order statistics, binomial) at `ci_level`: unset when too few
    # samples give one, or on results stored before they were reported. They assume independent samples.
    ci_level: Optional[float] = None
    p50_ci_low_ms: Optional[float] = None
    p50_ci_high_ms: Optional[float] = None
    p99_ci_low_ms: Optional[float] = None  # only beside p99_ms
    p99_ci_high_ms: Optional[float] = None
    cv: Optional[float] = None  # coefficient of variation, std_ms / mean_ms


@dataclass
class ClassMetrics:
    name: str
    support: int
    precision: float
    recall: float
    f1: float


@dataclass
class AccuracyReport:
    samples: int
    accuracy: float
    num_classes: int
    macro_f1: float
    classes: List[ClassMetrics] = field(default_factory=list)
    confusion: List[int] = field(default_factory=list)  # row-major, rows = true class

    def confusion_matrix(self) -> List[List[int]]:
        n = self.num_classes
        return [self.confusion[i * n : (i + 1) * n] for i in range(n)]


@dataclass
class PowerReport:
    meter: str
    sensor: str
    sample_period_s: float
    samples: int
    idle_w: float
    mean_w: float
    energy_per_inference_mj: float  # net of the idle baseline
    batch_size: int = 0
    window_s: float = 0.0
    rail_mean_w: Dict[str, float] = field(default_factory=dict)  # gross, per rail (jtop); empty without rails


@dataclass
class RepetitionSpread:
    """Run-to-run variation at one batch size and timing scope (`MeasurementSettings.repetitions` > 1): the
    p50 of each repetition (a fresh warm-up, then a full timed phase), in run order, and their summary."""

    batch_size: int
    scope: str
    p50_ms: List[float] = field(default_factory=list)  # one per repetition
    mean_ms: float = 0.0  # of those p50s
    sd_ms: float = 0.0  # their sample standard deviation (n - 1)
    min_ms: float = 0.0
    max_ms: float = 0.0


@dataclass
class AcceleratorMemory:
    """One figure of GPU / accelerator memory, or the reason it could not be read (`size_bytes` unset, never 0)."""

    source: str  # where it comes from: "nvml", "tensorrt", "jtop"
    what: str  # what the figure includes, e.g. "GPU memory NVML attributes to the benchmark process"
    size_bytes: Optional[int] = None
    note: str = ""  # how and when it was read, or why it is absent


@dataclass
class MemoryReport:
    """Peak resident memory (RSS) of the process that ran the benchmark, above its own baseline.

    RSS counts the pages of that process in RAM: heap, the runtime's arenas and threads, mapped files
    (the model when a runtime maps it, shared libraries loaded during the build), not swapped-out pages
    nor GPU memory. `baseline_rss_bytes` is the RSS just before the build (interpreter, runtime imports,
    the test set); the peaks are the high-water marks of the build and of the timed phases (first
    inference, warm-up and timed iterations of every batch size), each minus that baseline.
    GPU / accelerator memory, where the engine runs on one, is in `accelerator`, each figure saying what
    it includes.
    """

    baseline_rss_bytes: int
    load_peak_bytes: int
    inference_peak_bytes: int
    model_file_bytes: int = 0
    method: str = ""  # how the peaks were read, e.g. "VmHWM, reset per phase by /proc/self/clear_refs"
    accelerator: List[AcceleratorMemory] = field(default_factory=list)  # empty for CPU engines and old results


@dataclass
class OperatorTime:
    """One operator (an ONNX Runtime node, a TensorRT layer) of a per-operator profile."""

    name: str
    op_type: str = ""  # e.g. "Conv"; empty where the runtime does not say (TensorRT layers)
    time_ms: float = 0.0  # mean time per inference (one call on a batch of the profile's batch_size)
    percent: float = 0.0  # of the profile's total_ms


@dataclass
class OperatorProfile:
    """Per-operator times at one batch size, from a profiled pass apart from the timed phase.

    Bounded: `ops` holds the slowest operators only (slowest first); `total_ms` and `operators` count all
    of them. The times are the runtime's own (kernel time per node or layer), so their sum is not the
    end-to-end latency: it leaves out what runs between operators and adds the profiler's overhead.
    """

    batch_size: int
    source: str  # e.g. "onnxruntime session profiling", "trtexec --exportProfile"
    total_ms: float = 0.0
    operators: int = 0
    iterations: int = 0
    ops: List[OperatorTime] = field(default_factory=list)


@dataclass
class Failure:
    kind: FailureKind
    message: str
    detail: str = ""


@dataclass
class BenchmarkResult:
    load_s: float = 0.0
    latency: List[LatencyStats] = field(default_factory=list)
    accuracy: Optional[AccuracyReport] = None
    power: List[PowerReport] = field(default_factory=list)
    manifest: Dict[str, str] = field(default_factory=dict)
    failure: Optional[Failure] = None
    memory: Optional[MemoryReport] = None  # unset on failures and on results stored before it was reported
    # Per batch size, where the runtime gives one and the job asked; empty on results stored before them.
    profiles: List[OperatorProfile] = field(default_factory=list)
    # Per batch size and timing scope when the job asked for repetitions > 1; empty otherwise and on old results.
    repetitions: List[RepetitionSpread] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass
class LateResult:
    """A report that reached the coordinator after it had closed the job (e.g. as a lease-expiry timeout).

    Kept beside the job's result, never instead of it: the table shows the timeout, `jobs show` both.
    """

    attempt: int
    agent_id: str
    received_at: float
    result: BenchmarkResult


@dataclass
class Job:
    job_id: str
    spec: JobSpec
    state: JobState
    attempt: int = 0
    agent_id: str = ""  # pinned target, or the agent that ran it
    agent_name: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass
class Lease:
    job_id: str
    attempt: int
    expires_in_s: float
    spec: JobSpec


@dataclass
class AgentInfo:
    agent_id: str
    name: str
    status: str  # online, stale, offline
    last_seen_at: float
    capabilities: DeviceCapabilities
    current_job_id: str = ""


class TrainingState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (TrainingState.SUCCEEDED, TrainingState.FAILED)


@dataclass
class TrainingConfig:
    """What a training run was asked for: `pipelines.base.TrainConfig` without the machine-local data dir."""

    split: str = "inter-patient"
    epochs: int = 0  # 0: the pipeline's own (its TrainBudget, pipelines/base.py)
    seed: int = 0
    records: List[str] = field(default_factory=list)  # empty: every record present
    max_train_beats: int = 0  # 0: no cap
    batch_size: int = 0  # 0: the pipeline's own
    class_weights: str = ""  # one of CLASS_WEIGHTS; "": the pipeline's own


ClassWeights = Literal["balanced", "none"]
"""The loss weightings a training run can ask for: balanced (capped) class weights, or the plain loss."""
CLASS_WEIGHTS = get_args(ClassWeights)


@dataclass
class TrainingSummary:
    """A finished run's host-side figures (the `TrainOutput` of pipelines/base.py without its file paths)."""

    split: str  # the split actually made: it can fall back (notes say why)
    host_accuracy: float
    evaluation: AccuracyReport
    class_names: List[str]
    train_beats: int
    test_beats: int
    params: int
    train_seconds: float
    onnx_max_abs_diff: float
    notes: List[str] = field(default_factory=list)


@dataclass
class TrainingRun:
    run_id: str
    pipeline: str
    config: TrainingConfig
    state: TrainingState
    origin: str = ""  # "coordinator", or "cli@HOST" for a run trained by `edgelab train` and recorded after
    created_at: float = 0.0
    started_at: float = 0.0  # 0: not started
    finished_at: float = 0.0  # 0: not finished
    error: str = ""
    summary: Optional[TrainingSummary] = None  # set when it succeeded
    model_sha256: str = ""  # the ONNX model in the artifact store
    dataset_sha256: str = ""  # the npz test + calibration set
    savedmodel_sha256: str = ""  # the zipped SavedModel (tensorflow backend)
