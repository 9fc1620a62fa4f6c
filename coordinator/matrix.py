"""The conversion and compression matrix: one source model x compressions x target formats.

Three kinds of work, each a plain function that also runs as a Ray task:
  source      train a pipeline (or read a SavedModel) -> SavedModel + dataset + fine-tuning data
  compress    one compression of the source (tfmot, `pipelines.compression`) -> SavedModel
  convert     one target format of one compressed model (`pipelines.convert`) -> artifact + metadata
Ray runs every compression in parallel and each conversion as soon as its compression is done.
Tasks exchange bytes, not paths, so workers need not share the driver's disk. A conversion or
compression that fails becomes a stored failure record with its error; the matrix goes on.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from coordinator.artifacts import ArtifactStore
from edgelab.constants import REFERENCE_ACCURACY_LABEL
from edgelab.errors import ConfigError

if TYPE_CHECKING:
    from rich.table import Table

    from coordinator.client import ControlClient
    from edgelab.app.launch import MatrixLaunchFile, MatrixSection
    from pipelines.base import TrainConfig

VERIFY_SAMPLES = 256
"""Test samples every artifact is run on and compared with Keras."""
MATRIX_ENV = {"TF_USE_LEGACY_KERAS": "1"}
"""Ray workers of the matrix run tfmot, which needs the Keras 2 API (tf_keras) in their process."""


@dataclass(frozen=True)
class Target:
    """One artifact kind: its file format and how it is converted from a SavedModel."""

    format: str
    suffix: str
    precision: str
    """The JobSpec precision the artifact is benchmarked at."""
    quantization: str
    io: str = "float"
    tflite_precision: str | None = None


TARGETS: dict[str, Target] = {
    "onnx": Target("onnx", ".onnx", "fp32", "none"),
    "savedmodel.zip": Target("savedmodel.zip", ".zip", "fp32", "none"),
    "tflite-fp32": Target("tflite", ".tflite", "fp32", "none", tflite_precision="fp32"),
    "tflite-fp16": Target("tflite", ".tflite", "fp16", "float16-weights", tflite_precision="fp16"),
    "tflite-int8-dynamic": Target("tflite", ".tflite", "int8", "dynamic-range", tflite_precision="int8-dynamic"),
    "tflite-int8": Target("tflite", ".tflite", "int8", "full-int8", tflite_precision="int8"),
    "tflite-int8-io": Target("tflite", ".tflite", "int8", "full-int8", io="int8", tflite_precision="int8"),
}


def _convert(target: Target, savedmodel: Path, out: Path, dataset: Path, opset: int) -> Path:
    from pipelines.convert import convert_tflite, zip_savedmodel
    from pipelines.export import savedmodel_to_onnx

    if target.format == "onnx":
        return savedmodel_to_onnx(savedmodel, out, opset=opset)
    if target.format == "savedmodel.zip":
        return zip_savedmodel(savedmodel, out)
    return convert_tflite(
        savedmodel,
        out,
        target.tflite_precision,  # type: ignore[arg-type]
        calibration=dataset if target.tflite_precision == "int8" else None,
        int8_io=target.io == "int8",
    )


@dataclass
class MatrixSpec:
    """What to build: a source (a pipeline to train, or a SavedModel), compressions and targets."""

    compressions: list[str] = field(default_factory=lambda: ["none"])
    targets: list[str] = field(default_factory=lambda: ["onnx", "tflite-fp32"])
    pipeline: str | None = None
    train_config: TrainConfig | None = None
    savedmodel: Path | None = None
    """A SavedModel written by pipelines.export.export_savedmodel (it carries its Keras model)."""
    dataset: Path | None = None
    """With `savedmodel`: the npz shipped with it (x_test, y_test, class_names, x_calib)."""
    train_data: Path | None = None
    """With `savedmodel` and compressions: an npz with x_train, y_train for fine-tuning."""
    finetune_epochs: float = 1.0
    finetune_batch_size: int = 128
    opset: int = 17
    seed: int = 0

    def __post_init__(self) -> None:
        from pipelines.compression import parse_compression

        if (self.pipeline is None) == (self.savedmodel is None):
            raise ConfigError("matrix: give exactly one of pipeline or savedmodel")
        if self.pipeline is not None and self.train_config is None:
            raise ConfigError("matrix: a pipeline source needs its training settings")
        if self.savedmodel is not None and self.dataset is None:
            raise ConfigError("matrix.dataset: a savedmodel source needs its dataset npz")
        if not self.compressions or not self.targets:
            raise ConfigError("matrix: compressions and targets must not be empty")
        for compression in self.compressions:
            parse_compression(compression)
        unknown = [t for t in self.targets if t not in TARGETS]
        if unknown:
            raise ConfigError(f"matrix.targets: unknown {', '.join(unknown)}; known: {', '.join(TARGETS)}")
        needs_training = any(c not in ("", "none") for c in self.compressions)
        if needs_training and self.savedmodel is not None and self.train_data is None:
            raise ConfigError("matrix.train_data: compressions fine-tune, so a savedmodel source needs x_train/y_train")


# ---------------------------------------------------------------- payloads passed between tasks


@dataclass
class Source:
    """The uncompressed model, its shipped dataset and the labelled data compressions fine-tune on."""

    name: str
    savedmodel_zip: bytes
    """The SavedModel folder with its Keras copy (transport only; artifacts use convert.zip_savedmodel)."""
    dataset: bytes
    x_train: NDArray[np.float32]
    y_train: NDArray[np.int64]
    sha256: str
    """Content address of the uncompressed SavedModel artifact: the source of every artifact."""
    summary: dict[str, Any] = field(default_factory=dict)
    logit_offsets: tuple[float, ...] = ()
    """In the source's classifier bias (TrainOutput.logit_offsets): taken out before fine-tuning, put back after."""


@dataclass
class Compressed:
    compression: str
    savedmodel_zip: bytes = b""
    reference_out: NDArray[np.float32] | None = None
    params: int = 0
    sparsity: float = 0.0
    max_unique_weights: int = 0
    quantized: bool = False
    """Trained with fake-quant ops (QAT)."""
    flops: int | None = None
    host_accuracy: float | None = None
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class MatrixRecord:
    """One cell of the matrix: an artifact with its metadata, or the failure that replaced it."""

    compression: str
    target: str
    ok: bool
    info: dict[str, Any] = field(default_factory=dict)
    """ArtifactInfo.as_dict() when ok."""
    error: str = ""
    log: list[str] = field(default_factory=list)
    seconds: float = 0.0
    data: bytes = field(default=b"", repr=False)

    @property
    def metadata(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.info.get("metadata", {}).items()}


def _pack(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _unpack(data: bytes, folder: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(folder)
    return folder


@dataclass
class TestSet:
    x: NDArray[np.float32]
    y: NDArray[np.int64]
    class_names: list[str]

    @property
    def verify_x(self) -> NDArray[np.float32]:
        """The verification batch, spread evenly over the test set."""
        return self.x[np.linspace(0, len(self.x) - 1, min(VERIFY_SAMPLES, len(self.x))).astype(np.int64)]

    @classmethod
    def load(cls, dataset: Path) -> TestSet:
        with np.load(dataset) as data:
            return cls(
                np.asarray(data["x_test"], np.float32),
                np.asarray(data["y_test"], np.int64),
                [str(c) for c in data["class_names"]],
            )


# ---------------------------------------------------------------- the three task bodies


def _mitdb_beats_train(config: TrainConfig) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The training beats the beat pipeline trained on (same split, same stratified subsample, the same
    synthetic fusion beats)."""
    from pipelines.beats_1d import load_split, training_beats

    train, _, _ = load_split(config, [])
    train = training_beats(train, config, [])
    return train.x.astype(np.float32), train.y.astype(np.int64)


FINETUNE_DATA: dict[str, Callable[[TrainConfig], tuple[NDArray[np.float32], NDArray[np.int64]]]] = {
    "mitdb-beats-1d": _mitdb_beats_train,
}
"""Labelled training data per pipeline, for compressions that fine-tune."""


def prepare_source(spec: MatrixSpec) -> Source:
    """Train the pipeline (or read the SavedModel) and package what the other tasks need."""
    from pipelines.convert import sha256_file, zip_savedmodel

    with tempfile.TemporaryDirectory(prefix="edgelab-matrix-src-") as tmp:
        work = Path(tmp)
        summary: dict[str, Any] = {}
        offsets: tuple[float, ...] = ()
        if spec.pipeline is not None:
            from pipelines.registry import get_pipeline

            assert spec.train_config is not None
            output = get_pipeline(spec.pipeline).run(spec.train_config, work / "train")
            savedmodel, dataset = output.savedmodel_path, output.dataset_path
            summary = {k: v for k, v in output.as_dict().items() if not k.endswith("_path")}
            needs_data = any(c not in ("", "none") for c in spec.compressions)
            if needs_data and spec.pipeline not in FINETUNE_DATA:
                raise ConfigError(f"matrix: no fine-tuning data known for pipeline {spec.pipeline}")
            x_train, y_train = (
                FINETUNE_DATA[spec.pipeline](spec.train_config)
                if needs_data
                else (np.zeros((0,), np.float32), np.zeros((0,), np.int64))
            )
            name, offsets = spec.pipeline, output.logit_offsets
        else:
            assert spec.savedmodel is not None and spec.dataset is not None
            savedmodel, dataset, name = spec.savedmodel, spec.dataset, spec.savedmodel.name
            x_train, y_train = np.zeros((0,), np.float32), np.zeros((0,), np.int64)
            if spec.train_data is not None:
                with np.load(spec.train_data) as data:
                    x_train, y_train = data["x_train"].astype(np.float32), data["y_train"].astype(np.int64)
        sha = sha256_file(zip_savedmodel(savedmodel, work / "source.zip"))
        return Source(name, _pack(savedmodel), dataset.read_bytes(), x_train, y_train, sha, summary, offsets)


def compress_source(source: Source, compression: str, spec: MatrixSpec) -> Compressed:
    """One compression of the source; an error is returned as a failed `Compressed`, not raised."""
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="edgelab-matrix-cmp-") as tmp:
            work = Path(tmp)
            savedmodel = _unpack(source.savedmodel_zip, work / "source")
            dataset = work / "dataset.npz"
            dataset.write_bytes(source.dataset)
            test = TestSet.load(dataset)
            result = _compress(savedmodel, compression, source, spec, test, work)
            result.seconds = time.perf_counter() - started
            return result
    except Exception as exc:
        return Compressed(
            compression,
            error=f"{type(exc).__name__}: {exc}",
            log=[traceback.format_exc(limit=4)],
            seconds=time.perf_counter() - started,
        )


def _compress(
    savedmodel: Path,
    compression: str,
    source: Source,
    spec: MatrixSpec,
    test: TestSet,
    work: Path,
) -> Compressed:
    from pipelines.compression import FineTune, compress, parse_compression, sparsity_of
    from pipelines.convert import savedmodel_flops
    from pipelines.export import load_keras_model
    from pipelines.models import add_logit_offsets
    from pipelines.training import balanced_class_weights

    model = load_keras_model(savedmodel)
    if not parse_compression(compression):
        y_pred = np.argmax(model.predict(test.x, batch_size=1024, verbose=0), axis=1)
        return Compressed(
            compression,
            savedmodel_zip=_pack(savedmodel),
            reference_out=np.asarray(model.predict(test.verify_x, verbose=0), np.float32),
            params=int(model.count_params()),
            sparsity=sparsity_of(model),
            flops=savedmodel_flops(savedmodel),
            host_accuracy=float(np.mean(y_pred == test.y)),
            log=["uncompressed"],
        )
    ft = FineTune(
        source.x_train,
        source.y_train,
        epochs=spec.finetune_epochs,
        batch_size=spec.finetune_batch_size,
        seed=spec.seed,
        class_weight=balanced_class_weights(source.y_train, len(test.class_names)),
    )
    offsets = source.logit_offsets or None
    if offsets:  # fine-tuning would train the offsets away: tune the plain classifier, offset the result
        add_logit_offsets(model, [-o for o in offsets])
    result = compress(model, compression, ft, work / "compressed", test.verify_x, (test.x, test.y), offsets)
    return Compressed(
        compression,
        savedmodel_zip=_pack(result.savedmodel_dir),
        reference_out=result.reference_out,
        params=result.params,
        sparsity=result.sparsity,
        max_unique_weights=result.max_unique_weights,
        quantized=result.quantized,
        flops=savedmodel_flops(result.savedmodel_dir),
        host_accuracy=result.host_accuracy,
        log=result.log,
    )


def convert_compressed(source: Source, compressed: Compressed, target_name: str, spec: MatrixSpec) -> MatrixRecord:
    """One target format of one compressed model, verified and scored; failures become records."""
    from edgelab.metrics import accuracy_report
    from pipelines.convert import (
        ArtifactInfo,
        gzip_size,
        run_artifact,
        sha256_file,
        tflite_file_precision,
        verify_artifact,
    )

    started = time.perf_counter()
    if compressed.error is not None:
        return MatrixRecord(
            compressed.compression,
            target_name,
            False,
            error=f"compression failed: {compressed.error}",
            log=compressed.log,
        )
    target = TARGETS[target_name]
    log = list(compressed.log)
    try:
        with tempfile.TemporaryDirectory(prefix="edgelab-matrix-cnv-") as tmp:
            work = Path(tmp)
            savedmodel = _unpack(compressed.savedmodel_zip, work / "savedmodel")
            dataset = work / "dataset.npz"
            dataset.write_bytes(source.dataset)
            test = TestSet.load(dataset)
            path = _convert(target, savedmodel, work / f"model{target.suffix}", dataset, spec.opset)
            log.append(f"converted to {target_name} in {time.perf_counter() - started:.1f} s")
            precision = target.precision
            if target.format == "tflite":
                precision = tflite_file_precision(path)
                if precision != target.precision:
                    log.append(f"the file holds {precision}, not {target.precision}: benchmarked as {precision}")
            assert compressed.reference_out is not None
            check = verify_artifact(path, target.format, test.verify_x, compressed.reference_out)
            y_pred = np.argmax(run_artifact(path, target.format, test.x), axis=1)
            report = accuracy_report(test.y, y_pred, test.class_names)
            info = ArtifactInfo(
                format=target.format,
                precision=precision,
                quantization=f"qat+{target.quantization}" if compressed.quantized else target.quantization,
                compression=compressed.compression,
                sha256=sha256_file(path),
                size_bytes=path.stat().st_size,
                gzip_bytes=gzip_size(path),
                params=compressed.params,
                sparsity=compressed.sparsity,
                source_sha256=source.sha256,
                io=target.io,
                flops=compressed.flops,
                verification=check,
                host_accuracy=report.accuracy,
                log=log,
            )
            data = path.read_bytes()
    except Exception as exc:
        log.append(traceback.format_exc(limit=4))
        return MatrixRecord(
            compressed.compression,
            target_name,
            False,
            error=f"{type(exc).__name__}: {exc}",
            log=log,
            seconds=time.perf_counter() - started,
        )
    payload = info.as_dict()
    payload["metadata"] = info.metadata() | {"target": target_name, "backend": info.backend}
    if source.summary.get("split"):  # the split the model was trained on, as training runs' artifacts carry it
        payload["metadata"]["split"] = str(source.summary["split"])
    payload["keras_accuracy"] = compressed.host_accuracy
    present = [c for c in report.classes if c.support]
    payload["host_macro_precision"] = float(np.mean([c.precision for c in present])) if present else 0.0
    payload["host_macro_recall"] = float(np.mean([c.recall for c in present])) if present else 0.0
    payload["host_macro_f1"] = report.macro_f1
    payload["max_unique_weights"] = compressed.max_unique_weights
    return MatrixRecord(
        compressed.compression,
        target_name,
        True,
        info=payload,
        log=log,
        seconds=time.perf_counter() - started,
        data=data,
    )


# ---------------------------------------------------------------- running the matrix


@dataclass
class MatrixResult:
    source: Source
    records: list[MatrixRecord]
    seconds: float
    dataset_path: Path
    """The dataset npz written next to the artifacts (uploaded with every job)."""

    @property
    def failures(self) -> list[MatrixRecord]:
        return [r for r in self.records if not r.ok]


def run_matrix(
    spec: MatrixSpec, out_dir: Path, *, use_ray: bool = True, ray_address: str | None = None
) -> MatrixResult:
    """Build every (compression, target) artifact into `out_dir`.

    Artifacts go into a content-addressed store (`out_dir/store`), every record, failed or not,
    into `out_dir/matrix.json`. `use_ray=False` runs the same task bodies one after another in
    this process (the benchmark's baseline).
    """
    started = time.perf_counter()
    if use_ray:
        source, records = _run_with_ray(spec, ray_address)
    else:
        source = prepare_source(spec)
        records = []
        for compression in spec.compressions:
            compressed = compress_source(source, compression, spec)
            records += [convert_compressed(source, compressed, t, spec) for t in spec.targets]
    return _store(spec, source, records, Path(out_dir), time.perf_counter() - started)


def _run_with_ray(spec: MatrixSpec, ray_address: str | None) -> tuple[Source, list[MatrixRecord]]:
    from coordinator.training import import_ray, init_ray

    ray = import_ray()
    init_ray(ray_address)
    options = {"num_cpus": 1, "max_retries": 0, "runtime_env": {"env_vars": MATRIX_ENV}}
    source_task = ray.remote(**options)(prepare_source)
    compress_task = ray.remote(**options)(compress_source)
    convert_task = ray.remote(**options)(convert_compressed)
    source_ref = source_task.remote(spec)
    refs = []
    for compression in spec.compressions:
        compressed_ref = compress_task.remote(source_ref, compression, spec)
        refs += [convert_task.remote(source_ref, compressed_ref, t, spec) for t in spec.targets]
    return ray.get(source_ref), list(ray.get(refs))


def _store(
    spec: MatrixSpec, source: Source, records: list[MatrixRecord], out_dir: Path, seconds: float
) -> MatrixResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    store = ArtifactStore(out_dir / "store")
    dataset_path = out_dir / f"{source.name}-dataset.npz"
    dataset_path.write_bytes(source.dataset)
    rows = []
    for record in records:
        if record.ok:
            ref = store.put_chunks(
                [record.data], name=f"{record.compression}-{record.target}", format=record.info["format"]
            )
            record.info["path"] = str(store.path(ref.sha256))
        rows.append({k: v for k, v in asdict(record).items() if k != "data"})
    manifest = {
        "source": {"name": source.name, "sha256": source.sha256, **source.summary},
        "compressions": spec.compressions,
        "targets": spec.targets,
        "seconds": seconds,
        "dataset": str(dataset_path),
        "records": rows,
    }
    (out_dir / "matrix.json").write_text(json.dumps(manifest, indent=2, default=str))
    return MatrixResult(source, records, seconds, dataset_path)


def artifact_path(record: MatrixRecord) -> Path:
    """Where the stored artifact of a successful record lies."""
    if not record.ok:
        raise ConfigError(f"{record.compression} x {record.target} failed: {record.error}")
    return Path(record.info["path"])


BASELINE_TARGET = {"onnx": "onnx", "tflite": "tflite-fp32", "savedmodel.zip": "savedmodel.zip"}
"""Compression rates compare with the uncompressed FP32 artifact of the same format."""


def compression_rate(record: MatrixRecord, records: list[MatrixRecord]) -> float | None:
    """Gzipped size of the uncompressed FP32 artifact of the same format / this one's (None if absent)."""
    if not record.ok:
        return None
    wanted = BASELINE_TARGET[record.info["format"]]
    for other in records:
        if other.ok and other.compression in ("", "none") and other.target == wanted:
            return float(other.info["gzip_bytes"]) / float(record.info["gzip_bytes"])
    return None


def matrix_table(
    records: list[MatrixRecord],
    title: str = "Conversion matrix",
    jobs: dict[tuple[str, str], list[str]] | None = None,
) -> Table:
    """Size, compression rate and host-side accuracy of every artifact; failures with their error.

    With `jobs` (per (compression, target)), a column counts the jobs queued for each artifact."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in (
        "compression",
        "target",
        "prec",
        "sparsity",
        "KB",
        "gzip KB",
        "rate",
        "accuracy",
        "agree",
        "max diff",
    ):
        table.add_column(column, justify="left" if column in ("compression", "target", "prec") else "right")
    if jobs is not None:
        table.add_column("jobs", justify="right")
    for record in records:
        if not record.ok:
            table.add_row(record.compression, record.target, "", "", "", "", "", f"[red]failed[/]: {record.error}")
            continue
        info = record.info
        rate = compression_rate(record, records)
        check = info["verification"]
        table.add_row(
            record.compression,
            record.target,
            info["precision"],
            f"{info['sparsity']:.0%}",
            f"{info['size_bytes'] / 1024:.1f}",
            f"{info['gzip_bytes'] / 1024:.1f}",
            "" if rate is None else f"{rate:.2f}x",
            f"{info['host_accuracy']:.2%}",
            f"{check['argmax_agreement']:.1%}",
            f"{check['max_abs_diff']:.2g}",
            *([str(len(jobs.get((record.compression, record.target), [])))] if jobs is not None else []),
        )
    return table


# ---------------------------------------------------------------- `edgelab jobs launch` with a matrix


def spec_from_launch(section: MatrixSection, mitdb: Path) -> MatrixSpec:
    """The MatrixSpec a launch file's `matrix:` section asks for."""
    from pipelines.registry import get_pipeline

    train_config = None
    if section.pipeline is not None:
        budget = get_pipeline(section.pipeline).budget.override(
            section.epochs, section.batch_size, section.class_weights
        )
        train_config = budget.train_config(
            section.data or mitdb,
            split=section.split,  # TrainConfig validates it
            records=tuple(section.records) if section.records else None,
            max_train_beats=section.max_train_beats,
        )
    return MatrixSpec(
        compressions=section.compressions,
        targets=section.targets,
        pipeline=section.pipeline,
        train_config=train_config,
        savedmodel=section.savedmodel,
        dataset=section.dataset,
        train_data=section.train_data,
        finetune_epochs=section.finetune_epochs,
    )


def _fp32_reference_accuracy(result: MatrixResult) -> float | None:
    """The uncompressed Keras model's accuracy on the shipped test set."""
    for record in result.records:
        if record.ok and record.compression in ("", "none") and record.info.get("keras_accuracy") is not None:
            return float(record.info["keras_accuracy"])
    host = result.source.summary.get("host_accuracy")
    return None if host is None else float(host)


def launch_matrix(
    launch: MatrixLaunchFile, client: ControlClient, *, mitdb: Path, ray_address: str | None = None
) -> tuple[MatrixResult, dict[tuple[str, str], list[str]]]:
    """Build the matrix, upload every artifact with its metadata and queue its jobs.

    Each artifact gets one job spec per backend of its format (BACKEND_BY_FORMAT, or the launch
    file's `backends`), benchmarked at the precision fixed at conversion. Failed cells queue nothing.
    Returns the matrix and the job ids per (compression, target).
    """
    from coordinator.training import shutdown_ray
    from edgelab.domain import JobSpec, Precision
    from pipelines.convert import BACKEND_BY_FORMAT

    section = launch.matrix
    spec = spec_from_launch(section, mitdb)
    try:
        result = run_matrix(spec, section.out, use_ray=section.use_ray, ray_address=ray_address)
    finally:
        if section.use_ray:
            shutdown_ray()
    dataset = client.upload(result.dataset_path, format="npz")
    labels = {"matrix": launch.name}
    reference = _fp32_reference_accuracy(result)
    if reference is not None:  # agents report their accuracy's drop against the uncompressed FP32 model
        labels[REFERENCE_ACCURACY_LABEL] = f"{reference:.6f}"
    jobs: dict[tuple[str, str], list[str]] = {}
    for record in result.records:
        if not record.ok:
            continue
        fmt = record.info["format"]
        model = client.upload(artifact_path(record), format=fmt, metadata=record.metadata)
        ids: list[str] = []
        for backend in section.backends.get(fmt, [BACKEND_BY_FORMAT[fmt]]):
            job = JobSpec(
                name=f"{launch.name}/{record.compression}/{record.target}",
                backend=backend,
                model=model,
                dataset=dataset,
                precision=Precision(record.info["precision"]),
                batch_sizes=launch.batch_sizes,
                measurement=launch.measurement.settings(),
                pipeline=spec.pipeline or "",
                labels={**labels, "compression": record.compression, "target": record.target},
                backend_options=launch.backend_options,
            )
            ids += client.submit(job, launch.agents, any_agent=launch.any_agent)
        jobs[(record.compression, record.target)] = ids
    return result, jobs
