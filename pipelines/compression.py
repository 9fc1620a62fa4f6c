"""Model compression with tensorflow-model-optimization: pruning (one-shot and multistage),
weight clustering, quantization-aware training, and their combinations (Q+P, P+C+Q).

tfmot works on Keras 2 models only, so the trained Keras 3 model is rebuilt layer by layer in
`tf_keras` (`to_tf_keras`) with the same weights; tfmot itself switches this process to the
legacy Keras (TF_USE_LEGACY_KERAS=1) when imported. Every step ends by stripping its training
wrappers, so the exported SavedModel holds plain layers (QAT keeps its fake-quant ops, which
the TFLite converter turns into an INT8 model).

A compression is a "+"-joined list of steps, each `name` or `name@argument`:

    none | prune@0.6 | prune-multistage@0.6 | cluster@16 | qat | prune@0.5+qat | prune@0.5+cluster@16+qat

and `finetune`, the control: the fine-tuning the others come with, without compression.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgelab.errors import ConfigError
from pipelines._deps import require
from pipelines.harness import PATIENCE, Inputs, best_on_validation
from pipelines.models import add_logit_offsets

MULTISTAGE_STAGES = 3
"""Multistage pruning reaches its target in this many equal steps (e.g. 20% -> 40% -> 60%)."""
FINETUNE_LEARNING_RATE = 5e-4
"""Below the training peak (1e-3): fine-tuning adjusts the surviving weights, it does not retrain."""
PRUNABLE_LAYERS = ("Conv1D", "Conv2D", "Dense", "DepthwiseConv2D")
"""Layers whose kernel counts toward the reported sparsity (the ones tfmot prunes)."""


@dataclass
class FineTune:
    """The labelled training data and the optimizer-step budget each compression step trains for."""

    x: NDArray[np.float32]
    y: NDArray[np.int64]
    epochs: float = 1.0
    batch_size: int = 128
    learning_rate: float = FINETUNE_LEARNING_RATE
    seed: int = 0
    class_weight: dict[int, float] | None = None
    """As in training (pipelines.training.balanced_class_weights): without it, fine-tuning on
    MIT-BIH (~90% N) drifts to predicting N only."""
    validation: tuple[NDArray[np.float32], NDArray[np.int64]] | None = None
    """Examples from the training side (pipelines.harness.hold_out_validation): with them each
    step scores its validation macro F1 after every epoch, keeps the best epoch's weights and
    stops after harness.PATIENCE epochs without improvement, so `epochs` is a cap, not a fixed budget."""

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y) or not len(self.x):
            raise ConfigError(f"fine-tune data: {len(self.x)} samples and {len(self.y)} labels")
        if self.epochs <= 0 or self.batch_size < 1:
            raise ConfigError(f"fine-tune: epochs {self.epochs} and batch_size {self.batch_size} must be positive")

    @property
    def steps(self) -> int:
        """Optimizer steps of one step's fine-tuning: the same budget for one-shot and multistage."""
        return max(1, math.ceil(self.epochs * len(self.x) / self.batch_size))


@dataclass
class StepState:
    """What earlier steps leave for later ones to preserve: zero masks and cluster centroids per kernel."""

    masks: dict[str, NDArray[np.bool_]] = field(default_factory=dict)
    centroids: dict[str, NDArray[np.float32]] = field(default_factory=dict)
    quantized: bool = False
    log: list[str] = field(default_factory=list)


@dataclass
class CompressedModel:
    """The SavedModel of a compressed model and the figures measured on its Keras form."""

    compression: str
    savedmodel_dir: Path
    params: int
    sparsity: float
    max_unique_weights: int
    """Most distinct values in one prunable kernel: the cluster count after clustering."""
    quantized: bool
    log: list[str]
    seconds: float
    reference_out: NDArray[np.float32]
    """Keras outputs on the verification batch: what each converted artifact is compared with."""
    host_accuracy: float | None = None


Step = Callable[[Any, float | None, FineTune, StepState], Any]


def parse_compression(spec: str) -> list[tuple[str, float | None]]:
    """ "prune@0.5+qat" -> [("prune", 0.5), ("qat", None)]; ConfigError naming the bad part."""
    spec = spec.strip()
    if spec in ("", "none"):
        return []
    steps: list[tuple[str, float | None]] = []
    for part in spec.split("+"):
        name, _, raw = part.strip().partition("@")
        if name not in STEPS:
            raise ConfigError(f"compression {spec!r}: unknown step {name!r}; known: {', '.join(STEPS)}")
        needs_arg = name not in ("qat", "finetune")
        if needs_arg != bool(raw):
            raise ConfigError(f"compression {spec!r}: {name} {'needs' if needs_arg else 'takes no'} @argument")
        try:
            arg = float(raw) if raw else None
        except ValueError:
            raise ConfigError(f"compression {spec!r}: {raw!r} is not a number") from None
        if name.startswith("prune") and arg is not None and not 0.0 < arg < 1.0:
            raise ConfigError(f"compression {spec!r}: sparsity {arg} must be in (0, 1)")
        if name == "cluster" and arg is not None and (arg < 2 or arg != int(arg)):
            raise ConfigError(f"compression {spec!r}: cluster count {arg} must be an integer >= 2")
        steps.append((name, arg))
    if any(name == "qat" for name, _ in steps[:-1]):
        raise ConfigError(f"compression {spec!r}: qat must be the last step")
    return steps


# ---------------------------------------------------------------- Keras 3 -> tf_keras


def to_tf_keras(model: Any, *, fold_batchnorm: bool = False) -> Any:
    """Rebuild a Keras 3 functional model in tf_keras with the same layers and weights.

    Keras 3 and tf_keras configs differ in a few keys (dtype policies, InputLayer's batch_shape,
    the node format), so the graph is replayed layer by layer from Keras 3's own config.
    fold_batchnorm merges each BatchNormalization into the convolution or dense layer feeding
    only it (what TFLite does at inference): tfmot's QAT cannot wrap a BatchNormalization that
    follows a Conv1D.
    """
    tf_keras = require("tf_keras")
    config = model.get_config()
    folds = _batchnorm_folds(config) if fold_batchnorm else {}
    folded_into = {bn: conv for conv, bn in folds.items()}
    tensors: dict[str, Any] = {}
    for layer_config in config["layers"]:
        name = layer_config["name"]
        if layer_config["class_name"] == "InputLayer":
            cfg = layer_config["config"]
            tensors[name] = tf_keras.Input(batch_shape=cfg["batch_shape"], dtype=cfg.get("dtype"), name=name)
            continue
        nodes = layer_config["inbound_nodes"]
        if len(nodes) != 1:
            raise ConfigError(f"layer {name}: shared layers ({len(nodes)} calls) are not supported")
        args = [tensors[_history(arg)] for arg in nodes[0]["args"] if isinstance(arg, dict)]
        nested = [tensors[_history(a)] for arg in nodes[0]["args"] if isinstance(arg, list) for a in arg]
        inputs = nested or (args[0] if len(args) == 1 else args)
        if name in folded_into:
            tensors[name] = inputs
            continue
        layer_cfg = dict(layer_config["config"], use_bias=True) if name in folds else layer_config["config"]
        layer = _tf_keras_layer(tf_keras, layer_config["class_name"], layer_cfg)
        tensors[name] = layer(inputs, **nodes[0].get("kwargs", {}))
    outputs = [tensors[history[0]] for history in _flat_histories(config["output_layers"])]
    inputs = [tensors[history[0]] for history in _flat_histories(config["input_layers"])]
    rebuilt = tf_keras.Model(
        inputs[0] if len(inputs) == 1 else inputs, outputs[0] if len(outputs) == 1 else outputs, name=model.name
    )
    for layer in model.layers:
        if layer.name in folds:
            rebuilt.get_layer(layer.name).set_weights(_folded_weights(layer, model.get_layer(folds[layer.name])))
        elif layer.weights and layer.name not in folded_into:
            rebuilt.get_layer(layer.name).set_weights(layer.get_weights())
    return rebuilt


FOLDABLE_LAYERS = ("Conv1D", "Conv2D", "Dense")


def _batchnorm_folds(config: dict[str, Any]) -> dict[str, str]:
    """{layer: batch norm} for each BatchNormalization whose input is a linear layer feeding only it."""
    by_name = {layer["name"]: layer for layer in config["layers"]}
    consumers: dict[str, int] = {}
    for layer in config["layers"]:
        for node in layer["inbound_nodes"]:
            for arg in node["args"]:
                for a in arg if isinstance(arg, list) else [arg]:
                    if isinstance(a, dict):
                        consumers[_history(a)] = consumers.get(_history(a), 0) + 1
    folds: dict[str, str] = {}
    for layer in config["layers"]:
        if layer["class_name"] != "BatchNormalization" or len(layer["inbound_nodes"]) != 1:
            continue
        sources = [_history(a) for a in layer["inbound_nodes"][0]["args"] if isinstance(a, dict)]
        if len(sources) != 1:
            continue
        source = by_name[sources[0]]
        if (
            source["class_name"] in FOLDABLE_LAYERS
            and source["config"].get("activation", "linear") == "linear"
            and consumers.get(source["name"]) == 1
        ):
            folds[source["name"]] = layer["name"]
    return folds


def _folded_weights(layer: Any, bn: Any) -> list[NDArray[np.float32]]:
    """Kernel and bias of `layer` followed by the batch norm `bn` in inference mode."""
    kernel = np.asarray(layer.kernel.numpy())
    bias = np.asarray(layer.bias.numpy()) if layer.use_bias else np.zeros(kernel.shape[-1], np.float32)
    gamma = np.asarray(bn.gamma.numpy()) if bn.scale else 1.0
    beta = np.asarray(bn.beta.numpy()) if bn.center else 0.0
    scale = gamma / np.sqrt(np.asarray(bn.moving_variance.numpy()) + bn.epsilon)
    mean = np.asarray(bn.moving_mean.numpy())
    return [(kernel * scale).astype(np.float32), ((bias - mean) * scale + beta).astype(np.float32)]


def _tf_keras_layer(tf_keras: Any, class_name: str, config: dict[str, Any]) -> Any:
    cls = getattr(tf_keras.layers, class_name, None)
    if cls is None:
        raise ConfigError(f"layer class {class_name} has no tf_keras counterpart")
    accepted = set(inspect.signature(cls.__init__).parameters) | {"name", "trainable", "dtype"}
    clean: dict[str, Any] = {}
    for key, value in config.items():
        if key not in accepted or key.endswith("_initializer"):  # weights are copied over anyway
            continue
        if key == "dtype" and isinstance(value, dict):  # Keras 3 DTypePolicy -> its name
            value = value["config"]["name"]
        elif isinstance(value, dict) and "class_name" in value:  # regularizers, constraints
            value = {"class_name": value["class_name"], "config": value.get("config", {})}
        clean[key] = value
    return cls(**clean)


def _history(arg: dict[str, Any]) -> str:
    return str(arg["config"]["keras_history"][0])


def _flat_histories(value: Any) -> list[list[Any]]:
    """Keras 3 writes one [name, node, index] triple or a list of them."""
    if value and isinstance(value[0], str):
        return [value]
    return [v for item in value for v in _flat_histories(item)]


# ---------------------------------------------------------------- steps


def _fit(model: Any, ft: FineTune, steps: int, callbacks: list[Any] | None = None) -> str:
    """Fine-tune for `steps` optimizer steps (the budget is in steps, not epochs), or with
    `ft.validation` for at most that many, keeping the best epoch; says what it did."""
    tf = require("tensorflow")
    tf_keras = require("tf_keras")
    model.compile(
        optimizer=tf_keras.optimizers.Adam(ft.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    data = (
        tf.data.Dataset.from_tensor_slices((ft.x, ft.y)).shuffle(len(ft.x), seed=ft.seed).repeat().batch(ft.batch_size)
    )
    callbacks = list(callbacks or [])
    if ft.validation is None:
        model.fit(data, epochs=1, steps_per_epoch=steps, callbacks=callbacks, class_weight=ft.class_weight, verbose=0)
        return f"fine-tuned {steps} steps"
    # Whole-data epochs where they fit, cut evenly otherwise: a multistage stage's third of the budget
    # stays a third (rounding up to whole epochs gave it up to 1.5x one-shot's steps).
    epochs = math.ceil(steps / math.ceil(len(ft.x) / ft.batch_size))
    per_epoch = math.ceil(steps / epochs)
    names = [str(c) for c in range(int(model.output_shape[-1]))]  # the model's classes, not just those labelled
    selector = best_on_validation(tf_keras, Inputs(*ft.validation), names, PATIENCE)
    model.fit(
        data,
        epochs=epochs,
        steps_per_epoch=per_epoch,
        callbacks=[*callbacks, selector],
        class_weight=ft.class_weight,
        verbose=0,
    )
    return (
        f"fine-tuned, kept epoch {selector.best_epoch} of {selector.epochs_run} ({per_epoch} steps each; "
        f"validation macro F1 {selector.best_score:.3f})"
    )


def _prune_to(model: Any, sparsity: float, ft: FineTune, steps: int) -> tuple[Any, str]:
    """Prune every prunable kernel to `sparsity` at once, fine-tune `steps`, strip the wrappers."""
    tfmot = require("tensorflow_model_optimization", "train")
    schedule = tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0, frequency=1)
    wrapped = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    done = _fit(wrapped, ft, steps, [tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(wrapped), done


def prune(model: Any, sparsity: float | None, ft: FineTune, state: StepState) -> Any:
    """One-shot magnitude pruning to the target sparsity, then fine-tuning."""
    assert sparsity is not None
    pruned, done = _prune_to(model, sparsity, ft, ft.steps)
    state.masks = _kernel_masks(pruned)
    state.log.append(f"prune one-shot to {sparsity:.0%}, {done}")
    return pruned


def prune_multistage(model: Any, sparsity: float | None, ft: FineTune, state: StepState) -> Any:
    """Prune in MULTISTAGE_STAGES equal increments with fine-tuning in between (same step budget as one-shot)."""
    assert sparsity is not None
    steps = max(1, ft.steps // MULTISTAGE_STAGES)
    for stage in range(1, MULTISTAGE_STAGES + 1):
        target = sparsity * stage / MULTISTAGE_STAGES
        model, done = _prune_to(model, target, ft, steps)
        state.log.append(f"prune multistage stage {stage}/{MULTISTAGE_STAGES} to {target:.0%}, {done}")
    state.masks = _kernel_masks(model)
    return model


def cluster(model: Any, clusters: float | None, ft: FineTune, state: StepState) -> Any:
    """Weight clustering (k-means++ centroids per kernel), sparsity-preserving after pruning."""
    assert clusters is not None
    tfmot = require("tensorflow_model_optimization", "train")
    clustered = tfmot.clustering.keras.cluster_weights(
        model,
        number_of_clusters=int(clusters),
        cluster_centroids_init=tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS,
        preserve_sparsity=bool(state.masks),
    )
    done = _fit(clustered, ft, ft.steps)
    stripped = tfmot.clustering.keras.strip_clustering(clustered)
    state.centroids = {name: np.unique(kernel) for name, kernel in _kernels(stripped).items()}
    state.log.append(
        f"cluster to {int(clusters)} centroids per kernel{' (sparsity preserved)' if state.masks else ''}, {done}"
    )
    return stripped


def qat(model: Any, _: float | None, ft: FineTune, state: StepState) -> Any:
    """Quantization-aware training (8-bit weights and activations, fake-quant ops), then fine-tuning.

    tfmot's 8-bit registry has no Conv1D or MaxPooling1D entry (nor do its sparsity- and
    cluster-preserving schemes), so those get the configs below. Sparsity and clusters are kept
    by projecting the fine-tuned kernels back onto the masks and centroids of the earlier steps.
    """
    tfmot = require("tensorflow_model_optimization", "train")
    tf_keras = require("tf_keras")
    quantize = tfmot.quantization.keras
    configs = _quantize_configs(tfmot)

    def annotate(layer: Any) -> Any:
        config = configs.get(type(layer).__name__)
        if config is None:
            return quantize.quantize_annotate_layer(layer)
        return quantize.quantize_annotate_layer(layer, quantize_config=config())

    annotated = tf_keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    with quantize.quantize_scope({cls.__name__: cls for cls in configs.values()}):
        quantized = quantize.quantize_apply(annotated)
    done = _fit(quantized, ft, ft.steps)
    _project(quantized, state)
    state.quantized = True
    state.log.append(f"quantization-aware training (8-bit), {done}")
    return quantized


def finetune(model: Any, _: float | None, ft: FineTune, state: StepState) -> Any:
    """Fine-tuning alone, with the budget (and validation stopping) of the other steps: the control that
    tells a compression's own effect from that of the extra training it comes with."""
    state.log.append(f"no compression, {_fit(model, ft, ft.steps)}")
    return model


STEPS: dict[str, Step] = {
    "finetune": finetune,
    "prune": prune,
    "prune-multistage": prune_multistage,
    "cluster": cluster,
    "qat": qat,
}


def _quantize_configs(tfmot: Any) -> dict[str, type]:
    """QuantizeConfigs for the layers tfmot's default 8-bit registry leaves out (built lazily: tfmot is optional)."""
    quantizers = tfmot.quantization.keras.quantizers
    base = tfmot.quantization.keras.QuantizeConfig

    class Conv1DQuantizeConfig(base):  # type: ignore[misc, valid-type]
        """Per-tensor symmetric 8-bit kernel and 8-bit activation, as the registry does for Dense."""

        def get_weights_and_quantizers(self, layer: Any) -> list[tuple[Any, Any]]:
            kernel = quantizers.LastValueQuantizer(num_bits=8, symmetric=True, narrow_range=True, per_axis=False)
            return [(layer.kernel, kernel)]

        def get_activations_and_quantizers(self, layer: Any) -> list[tuple[Any, Any]]:
            activation = quantizers.MovingAverageQuantizer(
                num_bits=8, symmetric=False, narrow_range=False, per_axis=False
            )
            return [(layer.activation, activation)]

        def set_quantize_weights(self, layer: Any, quantize_weights: list[Any]) -> None:
            layer.kernel = quantize_weights[0]

        def set_quantize_activations(self, layer: Any, quantize_activations: list[Any]) -> None:
            layer.activation = quantize_activations[0]

        def get_output_quantizers(self, layer: Any) -> list[Any]:
            return []

        def get_config(self) -> dict[str, Any]:
            return {}

    class PassThroughQuantizeConfig(base):  # type: ignore[misc, valid-type]
        """Max pooling (and a slice) keeps its input's scale: nothing to quantize."""

        def get_weights_and_quantizers(self, layer: Any) -> list[tuple[Any, Any]]:
            return []

        def get_activations_and_quantizers(self, layer: Any) -> list[tuple[Any, Any]]:
            return []

        def set_quantize_weights(self, layer: Any, quantize_weights: list[Any]) -> None:
            pass

        def set_quantize_activations(self, layer: Any, quantize_activations: list[Any]) -> None:
            pass

        def get_output_quantizers(self, layer: Any) -> list[Any]:
            return []

        def get_config(self) -> dict[str, Any]:
            return {}

    class OutputQuantizeConfig(PassThroughQuantizeConfig):
        """A layer that makes a new range of values (the ensemble's average): its output quantized to 8 bits."""

        def get_output_quantizers(self, layer: Any) -> list[Any]:
            return [quantizers.MovingAverageQuantizer(num_bits=8, symmetric=False, narrow_range=False, per_axis=False)]

    return {
        "Conv1D": Conv1DQuantizeConfig,
        "MaxPooling1D": PassThroughQuantizeConfig,
        "Cropping1D": PassThroughQuantizeConfig,  # a slice keeps its input's scale
        "Average": OutputQuantizeConfig,
    }


def _kernels(model: Any) -> dict[str, NDArray[np.float32]]:
    """The prunable kernels by layer name (unwrapping QAT's wrappers)."""
    out: dict[str, NDArray[np.float32]] = {}
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if type(inner).__name__ in PRUNABLE_LAYERS:
            out[inner.name] = np.asarray(_kernel_variable(layer).numpy())
    return out


def _kernel_variable(layer: Any) -> Any:
    """The kernel variable of a layer or of the layer a QAT wrapper holds (whose `kernel` attribute
    the wrapper replaced by the fake-quantized tensor, and whose `weights` no longer list it)."""
    for weight in layer.weights:
        if weight.name.split("/")[-1].split(":")[0] in ("kernel", "depthwise_kernel"):
            return weight
    raise ValueError(f"layer {layer.name} has no kernel variable")


def _kernel_masks(model: Any) -> dict[str, NDArray[np.bool_]]:
    return {name: kernel != 0 for name, kernel in _kernels(model).items()}


def _project(model: Any, state: StepState) -> None:
    """Put fine-tuned kernels back onto earlier steps' zero masks and nearest cluster centroids."""
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if inner.name not in state.masks and inner.name not in state.centroids:
            continue
        variable = _kernel_variable(layer)
        kernel = np.asarray(variable.numpy())
        if inner.name in state.centroids:
            centroids = state.centroids[inner.name]
            nearest = np.abs(kernel[..., None] - centroids).argmin(axis=-1)
            kernel = centroids[nearest]
        if inner.name in state.masks:
            kernel = np.where(state.masks[inner.name], kernel, 0.0)
        variable.assign(kernel.astype(np.float32))


def sparsity_of(model: Any) -> float:
    """Share of exact zeros over the prunable kernels."""
    kernels = list(_kernels(model).values())
    total = sum(k.size for k in kernels)
    return float(sum(int(np.count_nonzero(k == 0)) for k in kernels) / total) if total else 0.0


def export_tf_keras(model: Any, out_dir: Path) -> Path:
    """Write a tf_keras model as a SavedModel with a `serving_default` signature."""
    require("tensorflow")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):  # tf_keras prints the endpoint's signature
        model.export(str(out_dir))
    return out_dir


def compress(
    model: Any,
    compression: str,
    ft: FineTune,
    out_dir: Path,
    verify_x: NDArray[np.float32],
    test: tuple[NDArray[np.float32], NDArray[np.int64]] | None = None,
    logit_offsets: Sequence[float] | None = None,
) -> CompressedModel:
    """Apply the steps of `compression` to a Keras 3 `model` and export the result as a SavedModel.

    The input model is not modified. `verify_x` is the batch whose Keras outputs every
    conversion of the result is checked against; `test` (x, y) gives the Keras accuracy.
    `logit_offsets` (models.add_logit_offsets) are added to the compressed model's classifier
    before export: pass `model` without them, since fine-tuning would otherwise train them away
    (they are a decision rule chosen for new patients, not a fit to the training patients).
    """
    steps = parse_compression(compression)
    require("tensorflow_model_optimization", "train")  # before tf_keras: it selects the legacy Keras
    started = time.perf_counter()
    require("tf_keras").utils.set_random_seed(ft.seed)
    fold = any(name == "qat" for name, _ in steps)
    current = to_tf_keras(model, fold_batchnorm=fold)
    params = int(current.count_params())
    state = StepState()
    if fold:
        state.log.append("batch norms folded into the preceding layers (QAT cannot wrap them)")
    for name, arg in steps:
        current = STEPS[name](current, arg, ft, state)
    if logit_offsets is not None:
        add_logit_offsets(current, logit_offsets)
        state.log.append("logit offsets " + ", ".join(f"{o:+.1f}" for o in logit_offsets) + " added after compression")
    savedmodel = export_tf_keras(current, Path(out_dir) / "savedmodel")
    reference = np.asarray(current.predict(verify_x, verbose=0), dtype=np.float32)
    accuracy = None
    if test is not None:
        y_pred = np.argmax(current.predict(test[0], batch_size=1024, verbose=0), axis=1)
        accuracy = float(np.mean(y_pred == test[1]))
    return CompressedModel(
        compression=compression,
        savedmodel_dir=savedmodel,
        params=params,
        sparsity=sparsity_of(current),
        max_unique_weights=max((np.unique(k).size for k in _kernels(current).values()), default=0),
        quantized=state.quantized,
        log=state.log,
        seconds=time.perf_counter() - started,
        reference_out=reference,
        host_accuracy=accuracy,
    )
