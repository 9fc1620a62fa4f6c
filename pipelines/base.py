"""What every training pipeline takes and returns, so the coordinator can run any of them as a Ray task."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from edgelab.domain import CLASS_WEIGHTS, AccuracyReport
from edgelab.errors import ConfigError

SplitName = Literal["inter-patient", "random"]
SPLITS: tuple[str, ...] = get_args(SplitName)


def weighs_classes(class_weights: str) -> bool:
    """The loss a `edgelab.domain.ClassWeights` name asks for (True: balanced class weights); ConfigError
    naming the choices for any other name."""
    if class_weights not in CLASS_WEIGHTS:
        raise ConfigError(f"class_weights: {class_weights!r} is not one of {', '.join(CLASS_WEIGHTS)}")
    return class_weights == "balanced"


@dataclass
class TrainConfig:
    """Settings of one training run; invalid values raise ConfigError naming the key."""

    data_dir: Path
    split: SplitName = "inter-patient"
    epochs: int = 3
    batch_size: int = 256
    seed: int = 0
    records: tuple[str, ...] | None = None
    """A subset of records (None: all present). With "inter-patient", their DS1/DS2 membership decides the side."""
    max_train_beats: int | None = None
    """Cap on training beats (stratified subsample), for quick runs."""
    calibration_size: int = 512
    """Training beats shipped with the artifact for INT8 post-training quantization."""
    test_fraction: float = 0.2
    """Share of beats (random split) or records (per-record fallback) held out for testing."""
    class_weights: bool = True
    """Balanced (capped) class weights in the loss: minority recall over overall accuracy. The
    papers' random-split accuracies come from unweighted training; False reproduces that."""

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if self.records is not None:
            self.records = tuple(str(r) for r in self.records)
        if self.split not in SPLITS:
            raise ConfigError(f"split: {self.split!r} is not one of {', '.join(SPLITS)}")
        for key in ("epochs", "batch_size", "calibration_size"):
            if getattr(self, key) < (0 if key == "calibration_size" else 1):
                raise ConfigError(f"{key}: {getattr(self, key)} is too small")
        if self.max_train_beats is not None and self.max_train_beats < 1:
            raise ConfigError(f"max_train_beats: {self.max_train_beats} must be >= 1 or None")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction: {self.test_fraction} must be in (0, 1)")
        if self.records is not None and not self.records:
            raise ConfigError("records: empty; use None for all records")


@dataclass
class TrainOutput:
    """The artifacts of a run and the host-side figures the device results are compared against."""

    pipeline: str
    onnx_path: Path
    savedmodel_path: Path
    dataset_path: Path
    """npz: x_test float32, y_test int64, class_names str, x_calib float32 (drawn from the training set)."""
    host_accuracy: float
    """Keras accuracy on the test set: the FP32 reference for on-device accuracy drops."""
    onnx_max_abs_diff: float
    class_names: tuple[str, ...]
    train_beats: int
    test_beats: int
    split: str
    train_seconds: float
    notes: list[str]
    params: int
    evaluation: AccuracyReport
    """Keras on the test set: per-class precision/recall/F1 and the confusion matrix (rows = true class)."""
    seed: int = 0
    epochs: int = 0
    record_confusions: dict[str, list[int]] = field(default_factory=dict)
    """Keras on the test set, per record: row-major confusion matrices (e.g. EC57 figures without record 232)."""
    logit_offsets: tuple[float, ...] = ()
    """Per class, added to the classifier's logits after training (models.add_logit_offsets); empty if none."""

    @property
    def per_class_recall(self) -> dict[str, float]:
        """Recall (sensitivity) per class; NaN for classes absent from the test set."""
        return {c.name: c.recall if c.support else float("nan") for c in self.evaluation.classes}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: paths as strings."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, Path):
                out[key] = str(value)
            elif isinstance(value, tuple):
                out[key] = list(value)
        return out


@dataclass(frozen=True)
class TrainBudget:
    """The epochs and batch size a pipeline's documented figures were measured with: what `edgelab train`,
    the dashboard, StartTraining, matrix launch files, the demo and benchmarks.pipelines_accuracy train
    with when not told otherwise. Where the pipeline keeps its best validation epoch, `epochs` is the most
    it trains."""

    epochs: int
    batch_size: int
    class_weights: bool = True
    """Balanced class weights in the loss (TrainConfig.class_weights); False where validation preferred
    the plain loss."""

    def override(
        self, epochs: int | None = None, batch_size: int | None = None, class_weights: str | None = None
    ) -> TrainBudget:
        """This budget with the values given (`class_weights` a ClassWeights name); None, or 0 and "" (unset
        over the API), keeps the pipeline's own."""
        return TrainBudget(
            epochs or self.epochs,
            batch_size or self.batch_size,
            weighs_classes(class_weights) if class_weights else self.class_weights,
        )

    def train_config(self, data_dir: Path, **settings: Any) -> TrainConfig:
        """A TrainConfig with this budget's epochs, batch size and class weights and the other `settings`."""
        return TrainConfig(
            data_dir=data_dir,
            epochs=self.epochs,
            batch_size=self.batch_size,
            class_weights=self.class_weights,
            **settings,
        )

    def __str__(self) -> str:
        weights = "" if self.class_weights else ", no class weights"
        return f"{self.epochs} epochs, batch {self.batch_size}{weights}"


@runtime_checkable
class Pipeline(Protocol):
    """A named recipe: data -> trained model -> SavedModel + ONNX + shipped test/calibration set."""

    name: str
    description: str
    budget: TrainBudget

    def run(self, config: TrainConfig, out_dir: Path) -> TrainOutput:
        """Train and export into `out_dir`; everything the artifact store needs is in the result."""
        ...
