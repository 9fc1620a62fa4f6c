"""What the coordinator accepts, checked at the door (the servicers) before anything reaches the store.

Two kinds of check, each naming the offending field (`result.latency[2].mean_ms`, `spec.batch_sizes[0]`):

- values, `Invalid` (a ValueError: INVALID_ARGUMENT): NaN or infinite numbers, negative counts and
  durations, an accuracy or F1 outside [0, 1], a confusion matrix that does not match `num_classes`,
  batch sizes beyond MAX_BATCH_SIZE;
- sizes, `TooLarge` (also INVALID_ARGUMENT, except for a benchmark report, see `coordinator.service`):
  every string, map and list the store keeps is bounded, and so is each stored record as a whole, so
  whatever is accepted can always be read back inside the gRPC message limit (GRPC_MAX_MESSAGE_BYTES):

  - GetJob's reply: a job summary (a spec of at most MAX_SPEC_BYTES) + its result (MAX_RESULT_BYTES)
    + late results while the reply stays under REPLY_BUDGET_BYTES (the rest are counted, not sent);
  - a page of ListJobs / ListAgents / ListTrainingRuns: items while the page stays under
    REPLY_BUDGET_BYTES, and at least one, the largest of which (a training run of at most
    MAX_TRAINING_RUN_BYTES) is far inside it.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence

from google.protobuf.message import Message

from edgelab.constants import GRPC_MAX_MESSAGE_BYTES
from edgelab.domain import (
    AcceleratorMemory,
    AccuracyReport,
    BenchmarkResult,
    DeviceCapabilities,
    JobSpec,
    LatencyStats,
    MemoryReport,
    OperatorProfile,
    PowerReport,
    RepetitionSpread,
    TrainingConfig,
    TrainingRun,
    TrainingSummary,
)

KIB = 1 << 10
MIB = 1 << 20

MAX_NAME_CHARS = 256  # artifact, pipeline and class names, backends, formats, map keys, job ids
# Agent and job names, shown in `edgelab agents list` / `jobs list` and the dashboard: short and printable.
MAX_DISPLAY_NAME_CHARS = 128
DISPLAY_NAME_CATEGORIES = ("L", "M", "N", "P", "S", "Zs")  # letters, marks, digits, punctuation, symbols, spaces
DISPLAY_NAME_RULE = (
    "names are letters, marks, digits, punctuation, symbols and spaces (no control, format or line-break characters)"
)
MAX_TEXT_CHARS = 64 * KIB  # one map value, a failure message, a training error or note
MAX_DETAIL_CHARS = 512 * KIB  # a failure's traceback or runtime log
MAX_MAP_ENTRIES = 256  # labels, backend options, manifest, artifact metadata, rails
MAX_LIST_ITEMS = 1024  # latency entries, power reports, runtimes, records, notes
MAX_BATCH_SIZES = 64
MAX_BATCH_SIZE = 1 << 16
MAX_CLASSES = 1024
MAX_COUNT = 1 << 40  # iterations, samples, parameters: far beyond any real run, far inside int64
MAX_SECONDS = 7 * 24 * 3600.0  # any duration a spec asks for or a report gives
MAX_MEMORY_BYTES = 1 << 50  # a resident set or a model file (1 PiB)
MAX_PROFILE_OPS = 20  # operators kept per profile (the slowest): agents send no more
MAX_OP_NAME_CHARS = 256  # an operator's name (TensorRT fuses layers into long names: agents cut them)
MAX_REPETITIONS = 100  # timed phases per batch size a job may ask for (each one at least min_duration_s)
MAX_ACCELERATOR_FIGURES = 16  # GPU / accelerator memory figures per result (agents send one per source)

MAX_SPEC_BYTES = 256 * KIB
MAX_RESULT_BYTES = 1 * MIB
MAX_CAPABILITIES_BYTES = 64 * KIB
MAX_TRAINING_RUN_BYTES = 1 * MIB
MAX_METADATA_BYTES = 256 * KIB

# What one reply (GetJob, one page of a list) may hold; the rest of the message limit is headroom.
REPLY_BUDGET_BYTES = 6 * MIB
assert MAX_SPEC_BYTES + 2 * MAX_RESULT_BYTES + 64 * KIB <= REPLY_BUDGET_BYTES < GRPC_MAX_MESSAGE_BYTES
assert MAX_TRAINING_RUN_BYTES + MAX_SPEC_BYTES + MAX_CAPABILITIES_BYTES <= REPLY_BUDGET_BYTES


class Invalid(ValueError):
    """A value the coordinator refuses to store; the message starts with the field's path."""


class TooLarge(Invalid):
    """A field, or a whole record, beyond the bounds that keep every stored record readable."""


# -- primitives ----------------------------------------------------------------------------------


def _text(path: str, value: str, limit: int = MAX_NAME_CHARS, *, required: bool = False) -> None:
    if required and not value:
        raise Invalid(f"{path}: required")
    if len(value) > limit:
        raise TooLarge(f"{path}: {len(value)} characters, at most {limit}")


def _display_name(path: str, value: str, *, required: bool) -> None:
    if required and not value:
        raise Invalid(f"{path}: required")
    if len(value) > MAX_DISPLAY_NAME_CHARS:
        raise TooLarge(f"{path}: {len(value)} characters, at most {MAX_DISPLAY_NAME_CHARS}")
    for i, char in enumerate(value):
        category = unicodedata.category(char)
        if category not in DISPLAY_NAME_CATEGORIES and category[0] not in DISPLAY_NAME_CATEGORIES:
            raise Invalid(f"{path}: character {i} is U+{ord(char):04X} (category {category}): {DISPLAY_NAME_RULE}")


def sha256_hex(path: str, value: str, *, required: bool = True) -> str:
    """`value` as the lower-case hex digest EdgeLab stores and compares ("" when not required and empty);
    Invalid unless it is 64 hex digits, in either case."""
    if not value and not required:
        return ""
    if len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise Invalid(f"{path}: {value[:80]!r} is not a sha256 digest (64 hex digits)")
    return value.lower()


def _number(path: str, value: float, *, low: float = 0.0, high: float = math.inf) -> None:
    if not math.isfinite(value):
        raise Invalid(f"{path}: {value} is not a finite number")
    if not low <= value <= high:
        raise Invalid(f"{path}: {value:g} is outside [{low:g}, {high:g}]")


def _count(path: str, value: int, *, low: int = 0, high: int = MAX_COUNT) -> None:
    if not low <= value <= high:
        raise Invalid(f"{path}: {value} is outside [{low}, {high}]")


def _items(path: str, values: Sequence[object], limit: int = MAX_LIST_ITEMS) -> None:
    if len(values) > limit:
        raise TooLarge(f"{path}: {len(values)} entries, at most {limit}")


def _string_map(path: str, values: Mapping[str, str], value_chars: int = MAX_TEXT_CHARS) -> None:
    _items(path, list(values), MAX_MAP_ENTRIES)
    for key, value in values.items():
        _text(f"{path} key {key[:40]!r}", key)
        _text(f"{path}[{key!r}]", value, value_chars)


def _record(path: str, message: Message, limit: int) -> None:
    size = message.ByteSize()
    if size > limit:
        raise TooLarge(f"{path}: {size / MIB:.2f} MiB serialized, at most {limit / MIB:.2f} MiB")


# -- what agents send ----------------------------------------------------------------------------


def check_agent_name(name: str) -> None:
    _display_name("name", name, required=True)


def check_job_id(path: str, job_id: str) -> None:
    _text(path, job_id)


def check_capabilities(caps: DeviceCapabilities, message: Message) -> None:
    for field in ("hostname", "device_model", "cpu_model", "os", "python_version", "agent_version"):
        _text(f"capabilities.{field}", getattr(caps, field))
    _count("capabilities.cpu_cores", caps.cpu_cores, high=1 << 20)
    _count("capabilities.memory_bytes", caps.memory_bytes, high=1 << 62)
    _items("capabilities.runtimes", caps.runtimes, MAX_MAP_ENTRIES)
    for i, runtime in enumerate(caps.runtimes):
        _text(f"capabilities.runtimes[{i}].name", runtime.name, required=True)
        _text(f"capabilities.runtimes[{i}].version", runtime.version)
        _text(f"capabilities.runtimes[{i}].reason", runtime.reason, 4 * KIB)
    _items("capabilities.power_meters", caps.power_meters, MAX_MAP_ENTRIES)
    for i, meter in enumerate(caps.power_meters):
        _text(f"capabilities.power_meters[{i}]", meter)
    _record("capabilities", message, MAX_CAPABILITIES_BYTES)


def check_result(result: BenchmarkResult, message: Message, path: str = "result") -> None:
    """A benchmark report: values first (INVALID_ARGUMENT), then its size as a whole."""
    _number(f"{path}.load_s", result.load_s, high=MAX_SECONDS)
    _items(f"{path}.latency", result.latency)
    for i, latency in enumerate(result.latency):
        _latency(f"{path}.latency[{i}]", latency)
    if result.accuracy is not None:
        _accuracy(f"{path}.accuracy", result.accuracy)
    _items(f"{path}.power", result.power)
    for i, power in enumerate(result.power):
        _power(f"{path}.power[{i}]", power)
    _string_map(f"{path}.manifest", result.manifest)
    if result.memory is not None:
        _memory(f"{path}.memory", result.memory)
    _items(f"{path}.profiles", result.profiles, MAX_BATCH_SIZES)
    for i, profile in enumerate(result.profiles):
        _profile(f"{path}.profiles[{i}]", profile)
    _items(f"{path}.repetitions", result.repetitions, 2 * MAX_BATCH_SIZES)  # per batch size and timing scope
    for i, spread in enumerate(result.repetitions):
        _spread(f"{path}.repetitions[{i}]", spread)
    if result.failure is not None:
        _text(f"{path}.failure.message", result.failure.message, MAX_TEXT_CHARS)
        _text(f"{path}.failure.detail", result.failure.detail, MAX_DETAIL_CHARS)
    _record(path, message, MAX_RESULT_BYTES)


def _latency(path: str, stats: LatencyStats) -> None:
    _count(f"{path}.batch_size", stats.batch_size, low=1, high=MAX_BATCH_SIZE)
    _count(f"{path}.samples", stats.samples)
    _count(f"{path}.warmup_iterations", stats.warmup_iterations)
    for field in ("mean_ms", "p50_ms", "min_ms", "max_ms", "std_ms", "first_inference_ms"):
        _number(f"{path}.{field}", getattr(stats, field), high=MAX_SECONDS * 1e3)
    for field in ("p90_ms", "p95_ms", "p99_ms", "p50_ci_low_ms", "p50_ci_high_ms", "p99_ci_low_ms", "p99_ci_high_ms"):
        value = getattr(stats, field)
        if value is not None:
            _number(f"{path}.{field}", value, high=MAX_SECONDS * 1e3)
    for low, high in (("p50_ci_low_ms", "p50_ci_high_ms"), ("p99_ci_low_ms", "p99_ci_high_ms")):
        a, b = getattr(stats, low), getattr(stats, high)
        if (a is None) != (b is None) or (a is not None and b is not None and a > b):
            raise Invalid(f"{path}.{low}: the interval [{a}, {b}] is not one")
    if stats.ci_level is not None:
        _number(f"{path}.ci_level", stats.ci_level, low=0.5, high=0.999999)
    if stats.cv is not None:
        _number(f"{path}.cv", stats.cv, high=1e6)
    _number(f"{path}.throughput_per_s", stats.throughput_per_s)
    _number(f"{path}.warmup_s", stats.warmup_s, high=MAX_SECONDS)
    _number(f"{path}.timed_duration_s", stats.timed_duration_s, high=MAX_SECONDS)
    _text(f"{path}.scope", stats.scope, 4 * KIB)


def _memory(path: str, report: MemoryReport) -> None:
    for field in ("baseline_rss_bytes", "load_peak_bytes", "inference_peak_bytes", "model_file_bytes"):
        _count(f"{path}.{field}", getattr(report, field), high=MAX_MEMORY_BYTES)
    _text(f"{path}.method", report.method, 4 * KIB)
    _items(f"{path}.accelerator", report.accelerator, MAX_ACCELERATOR_FIGURES)
    for i, figure in enumerate(report.accelerator):
        _accelerator(f"{path}.accelerator[{i}]", figure)


def _accelerator(path: str, figure: AcceleratorMemory) -> None:
    _text(f"{path}.source", figure.source, required=True)
    _text(f"{path}.what", figure.what, 4 * KIB)
    _text(f"{path}.note", figure.note, 4 * KIB)
    if figure.size_bytes is not None:
        _count(f"{path}.size_bytes", figure.size_bytes, high=MAX_MEMORY_BYTES)


def _spread(path: str, spread: RepetitionSpread) -> None:
    _count(f"{path}.batch_size", spread.batch_size, low=1, high=MAX_BATCH_SIZE)
    _text(f"{path}.scope", spread.scope, 4 * KIB)
    _items(f"{path}.p50_ms", spread.p50_ms, MAX_REPETITIONS)
    for field in ("mean_ms", "sd_ms", "min_ms", "max_ms"):
        _number(f"{path}.{field}", getattr(spread, field), high=MAX_SECONDS * 1e3)
    for i, p50 in enumerate(spread.p50_ms):
        _number(f"{path}.p50_ms[{i}]", p50, high=MAX_SECONDS * 1e3)


def _profile(path: str, profile: OperatorProfile) -> None:
    _count(f"{path}.batch_size", profile.batch_size, low=1, high=MAX_BATCH_SIZE)
    _text(f"{path}.source", profile.source, MAX_NAME_CHARS)
    _number(f"{path}.total_ms", profile.total_ms, high=MAX_SECONDS * 1e3)
    _count(f"{path}.operators", profile.operators)
    _count(f"{path}.iterations", profile.iterations)
    _items(f"{path}.ops", profile.ops, MAX_PROFILE_OPS)
    for i, op in enumerate(profile.ops):
        _text(f"{path}.ops[{i}].name", op.name, MAX_OP_NAME_CHARS, required=True)
        _text(f"{path}.ops[{i}].op_type", op.op_type, MAX_NAME_CHARS)
        _number(f"{path}.ops[{i}].time_ms", op.time_ms, high=MAX_SECONDS * 1e3)
        _number(f"{path}.ops[{i}].percent", op.percent, high=100.0 + 1e-6)


def _accuracy(path: str, report: AccuracyReport) -> None:
    n = report.num_classes
    _count(f"{path}.num_classes", n, high=MAX_CLASSES)
    _count(f"{path}.samples", report.samples)
    _number(f"{path}.accuracy", report.accuracy, high=1.0)
    _number(f"{path}.macro_f1", report.macro_f1, high=1.0)
    if report.confusion:
        if len(report.confusion) != n * n:
            raise Invalid(f"{path}.confusion: {len(report.confusion)} cells for num_classes {n} (needs {n * n})")
        for i, cell in enumerate(report.confusion):
            _count(f"{path}.confusion[{i}]", cell)
        if sum(report.confusion) != report.samples:
            raise Invalid(f"{path}.confusion: counts {sum(report.confusion)} samples, samples says {report.samples}")
    if report.classes and len(report.classes) != n:
        raise Invalid(f"{path}.classes: {len(report.classes)} classes for num_classes {n}")
    for i, metrics in enumerate(report.classes):
        _text(f"{path}.classes[{i}].name", metrics.name)
        _count(f"{path}.classes[{i}].support", metrics.support)
        for field in ("precision", "recall", "f1"):
            _number(f"{path}.classes[{i}].{field}", getattr(metrics, field), high=1.0)


def _power(path: str, report: PowerReport) -> None:
    _text(f"{path}.meter", report.meter)
    _text(f"{path}.sensor", report.sensor, 4 * KIB)
    _count(f"{path}.samples", report.samples)
    _count(f"{path}.batch_size", report.batch_size, high=MAX_BATCH_SIZE)
    _number(f"{path}.sample_period_s", report.sample_period_s, high=MAX_SECONDS)
    _number(f"{path}.window_s", report.window_s, high=MAX_SECONDS)
    _number(f"{path}.idle_w", report.idle_w, high=1e6)
    _number(f"{path}.mean_w", report.mean_w, high=1e6)
    # Net of the idle baseline: negative when the window read below idle (a warned-about artefact), never NaN.
    _number(f"{path}.energy_per_inference_mj", report.energy_per_inference_mj, low=-1e12, high=1e12)
    _items(f"{path}.rail_mean_w", list(report.rail_mean_w), MAX_MAP_ENTRIES)
    for rail, watts in report.rail_mean_w.items():
        _text(f"{path}.rail_mean_w key {rail[:40]!r}", rail)
        _number(f"{path}.rail_mean_w[{rail!r}]", watts, high=1e6)


# -- what operators send -------------------------------------------------------------------------


def check_spec(spec: JobSpec, message: Message, path: str = "spec") -> None:
    _display_name(f"{path}.name", spec.name, required=False)
    _text(f"{path}.backend", spec.backend, required=True)
    _text(f"{path}.pipeline", spec.pipeline)
    _items(f"{path}.batch_sizes", spec.batch_sizes, MAX_BATCH_SIZES)
    for i, batch in enumerate(spec.batch_sizes):
        _count(f"{path}.batch_sizes[{i}]", batch, low=1, high=MAX_BATCH_SIZE)
    m, mpath = spec.measurement, f"{path}.measurement"
    _count(f"{mpath}.warmup_iterations", m.warmup_iterations, high=(1 << 31) - 1)
    _count(f"{mpath}.min_iterations", m.min_iterations, low=1, high=(1 << 31) - 1)
    _count(f"{mpath}.num_threads", m.num_threads, high=4096)
    _count(f"{mpath}.repetitions", m.repetitions, low=1, high=MAX_REPETITIONS)
    for field in ("warmup_duration_s", "min_duration_s", "max_duration_s", "power_idle_s"):
        _number(f"{mpath}.{field}", getattr(m, field), high=MAX_SECONDS)
    _number(f"{mpath}.power_sample_period_s", m.power_sample_period_s, low=1e-6, high=3600.0)
    _text(f"{mpath}.power_meter", m.power_meter)
    for name, ref in (("model", spec.model), ("dataset", spec.dataset)):
        sha256_hex(f"{path}.{name}.sha256", ref.sha256)
        _text(f"{path}.{name}.name", ref.name)
        _text(f"{path}.{name}.format", ref.format)
    _string_map(f"{path}.labels", spec.labels, 4 * KIB)
    _string_map(f"{path}.backend_options", spec.backend_options, 4 * KIB)
    _record(path, message, MAX_SPEC_BYTES)


def check_artifact_upload(name: str, format: str, metadata: Mapping[str, str]) -> None:
    _text("name", name, required=True)
    _text("format", format, 64, required=True)
    _string_map("metadata", metadata)
    size = sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())
    if size > MAX_METADATA_BYTES:
        raise TooLarge(f"metadata: {size / KIB:.0f} KiB, at most {MAX_METADATA_BYTES / KIB:.0f} KiB")


MAX_TRAINING_RUNS_PER_REQUEST = 256  # pipelines x seeds


def check_training_request(pipelines: Sequence[str], seeds: Sequence[int], config: TrainingConfig) -> None:
    _items("pipelines", pipelines, 64)
    for i, name in enumerate(pipelines):
        _text(f"pipelines[{i}]", name)
    _items("seeds", seeds, MAX_TRAINING_RUNS_PER_REQUEST)
    if len(pipelines) * max(len(seeds), 1) > MAX_TRAINING_RUNS_PER_REQUEST:
        raise TooLarge(
            f"pipelines x seeds: {len(pipelines)} x {len(seeds)} runs, at most {MAX_TRAINING_RUNS_PER_REQUEST}"
        )
    _config("config", config)


def _config(path: str, config: TrainingConfig) -> None:
    _text(f"{path}.split", config.split)
    _count(f"{path}.epochs", config.epochs, high=1 << 20)
    _count(f"{path}.seed", config.seed, low=-(1 << 31), high=(1 << 31) - 1)
    _count(f"{path}.max_train_beats", config.max_train_beats, high=MAX_COUNT)
    _count(f"{path}.batch_size", config.batch_size, high=MAX_BATCH_SIZE)
    _text(f"{path}.class_weights", config.class_weights)
    _items(f"{path}.records", config.records)
    for i, record in enumerate(config.records):
        _text(f"{path}.records[{i}]", record)


def check_training_run(run: TrainingRun, message: Message, path: str = "run") -> None:
    _text(f"{path}.pipeline", run.pipeline, required=True)
    _text(f"{path}.origin", run.origin)
    _text(f"{path}.error", run.error, MAX_TEXT_CHARS)
    for field in ("created_at", "started_at", "finished_at"):
        _number(f"{path}.{field}", getattr(run, field), high=1e11)
    _config(f"{path}.config", run.config)
    for field in ("model_sha256", "dataset_sha256", "savedmodel_sha256"):
        sha256_hex(f"{path}.{field}", getattr(run, field), required=False)
    if run.summary is not None:
        _summary(f"{path}.summary", run.summary)
    _record(path, message, MAX_TRAINING_RUN_BYTES)


def _summary(path: str, summary: TrainingSummary) -> None:
    _text(f"{path}.split", summary.split)
    _number(f"{path}.host_accuracy", summary.host_accuracy, high=1.0)
    _accuracy(f"{path}.evaluation", summary.evaluation)
    _items(f"{path}.class_names", summary.class_names, MAX_CLASSES)
    for i, name in enumerate(summary.class_names):
        _text(f"{path}.class_names[{i}]", name)
    for field in ("train_beats", "test_beats", "params"):
        _count(f"{path}.{field}", getattr(summary, field))
    _number(f"{path}.train_seconds", summary.train_seconds, high=MAX_SECONDS)
    _number(f"{path}.onnx_max_abs_diff", summary.onnx_max_abs_diff, high=1e30)
    _items(f"{path}.notes", summary.notes)
    for i, note in enumerate(summary.notes):
        _text(f"{path}.notes[{i}]", note, 4 * KIB)
