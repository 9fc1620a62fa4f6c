"""Keras model builders. Keras 3 (TensorFlow backend); the compression paths use tf_keras instead."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipelines._deps import require

INPUT_NAME = "ecg"
"""Name of every model's input, so exported SavedModel/ONNX/TFLite artifacts agree on it."""


def build_cnn_1d(
    input_length: int,
    num_classes: int,
    *,
    extra_features: int = 0,
    waveforms: int = 1,
    width: int = 16,
    dropout: float = 0.2,
    waveform_dropout: float = 0.0,
    members: int = 1,
) -> Any:
    """A small 1D CNN for single-beat windows (~34k parameters at width 16), optionally with per-beat features.

    Four Conv1D+BatchNorm+ReLU blocks (max-pooled in between) then global average pooling:
    small enough to train in seconds per epoch on two CPU cores and to fit a microcontroller,
    and built only from ops every runtime (ONNX, TFLite INT8, TensorRT) supports.
    Returns a `keras.Model` with input "ecg" of shape (waveforms * input_length + extra_features, 1)
    and softmax output.

    With `extra_features` (e.g. the RR features), the last `extra_features` values of the input
    are not waveform: the graph splits them off with Cropping1D slices, the waveform goes through
    the CNN, the features through a small dense layer, and both meet before the classifier. With
    `waveforms` > 1 the input starts with that many waveforms of `input_length` one after the other
    (e.g. the beat, then its difference from the patient's template), sliced apart in-graph and
    stacked as the CNN's input channels. One input tensor keeps the artifact contract every backend
    and the shipped test set assume.
    `waveform_dropout` drops CNN features in training, so the classifier cannot lean on the
    morphology of the few training patients alone.

    `members` > 1 builds that many such CNNs side by side on the same input (layer names suffixed
    "_m0", "_m1", ...) and outputs the mean of their softmax outputs ("ensemble_mean"): one flat graph,
    so every converter and the compression rebuild see plain layers. Train the members one by one
    through `ensemble_members`.
    """
    keras = require("keras")
    layers = keras.layers
    total = waveforms * input_length + extra_features
    inputs = keras.Input(shape=(total, 1), name=INPUT_NAME)
    channels = [
        layers.Cropping1D((k * input_length, total - (k + 1) * input_length), name=f"waveform{k or ''}")(inputs)
        if total > input_length
        else inputs
        for k in range(waveforms)
    ]
    waveform = layers.Concatenate(name="waveform_channels")(channels) if waveforms > 1 else channels[0]
    features = layers.Cropping1D((waveforms * input_length, 0), name="features")(inputs) if extra_features else None
    outputs = []
    for member in range(members):
        suffix = f"_m{member}" if members > 1 else ""
        x = waveform
        for i, (filters, kernel) in enumerate(((width, 7), (2 * width, 5), (4 * width, 5), (4 * width, 5))):
            x = layers.Conv1D(filters, kernel, padding="same", use_bias=False, name=f"conv{i}{suffix}")(x)
            x = layers.BatchNormalization(name=f"bn{i}{suffix}")(x)
            x = layers.ReLU(name=f"relu{i}{suffix}")(x)
            if i < 3:
                x = layers.MaxPooling1D(2, name=f"pool{i}{suffix}")(x)
        x = layers.GlobalAveragePooling1D(name=f"gap{suffix}")(x)
        if waveform_dropout:
            x = layers.Dropout(waveform_dropout, name=f"waveform_dropout{suffix}")(x)
        if features is not None:
            f = layers.Flatten(name=f"features_flat{suffix}")(features)
            f = layers.Dense(width, activation="relu", name=f"features_dense{suffix}")(f)
            x = layers.Concatenate(name=f"merge{suffix}")([x, f])
            x = layers.Dense(2 * width, activation="relu", name=f"merged_dense{suffix}")(x)
        x = layers.Dropout(dropout, name=f"dropout{suffix}")(x)
        outputs.append(layers.Dense(num_classes, activation="softmax", name=f"probs{suffix}")(x))
    output = layers.Average(name="ensemble_mean")(outputs) if members > 1 else outputs[0]
    return keras.Model(inputs, output, name="cnn_1d")


def ensemble_members(model: Any) -> list[Any]:
    """The members of a `build_cnn_1d(members=k)` ensemble as models of their own, sharing its layers and
    weights (training one trains that member of `model`); `[model]` for a single CNN."""
    keras = require("keras")
    heads = _softmax_layers(model)
    if len(heads) == 1:
        return [model]
    return [keras.Model(model.inputs, head.output, name=f"{model.name}_{head.name}") for head in heads]


def _softmax_layers(model: Any) -> list[Any]:
    """The classifier layers whose bias holds the logit offsets: "probs", or each member's "probs_m<k>"
    (also inside a wrapper such as QAT's, whose wrapped layer is `.layer`)."""
    return [
        layer for layer in model.layers if (name := _unwrapped(layer).name) == "probs" or name.startswith("probs_m")
    ]


def _unwrapped(layer: Any) -> Any:
    return getattr(layer, "layer", layer)


def with_waveform_augmentation(
    model: Any,
    window: int,
    *,
    seed: int,
    differences: bool = False,
    scale: float = 0.3,
    offset: float = 0.3,
    noise: float = 0.05,
) -> Any:
    """`model` behind random per-beat gain (1 +- scale), baseline offset (+- offset) and white noise (sd `noise`)
    on the first `window` input values (the waveform; RR features after them pass unchanged), in training only.

    With `differences`, the `window` values after the waveform are its difference from the patient's
    template (load_beats `template`): they get the same gain and their own noise, but no offset,
    which the template would share with its beat.

    Amplitude and baseline differ between patients and electrodes more than between beat classes
    of one patient; randomising them keeps a model trained on few patients from keying on them.
    Returns the wrapper to train (harness `fitted`); `model` shares its weights and is exported alone.
    """
    waves = 2 if differences else 1
    keras = require("keras")

    class WaveformAugmentation(keras.layers.Layer):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__(name="waveform_augmentation")
            self.seeds = keras.random.SeedGenerator(seed)

        def call(self, x: Any, training: bool | None = None) -> Any:
            if not training:
                return x
            ops, random = keras.ops, keras.random
            batch = ops.shape(x)[0]
            wave, rest = x[:, : waves * window], x[:, waves * window :]
            gain = random.uniform((batch, 1, 1), 1.0 - scale, 1.0 + scale, seed=self.seeds)
            shift = random.uniform((batch, 1, 1), -offset, offset, seed=self.seeds)
            shifted = ops.concatenate([ops.ones((1, window, 1)), ops.zeros((1, (waves - 1) * window, 1))], axis=1)
            jitter = random.normal(ops.shape(wave), stddev=noise, seed=self.seeds)
            return ops.concatenate([wave * gain + shift * shifted + jitter, rest], axis=1)

    inputs = keras.Input(shape=model.input_shape[1:], name=INPUT_NAME)
    return keras.Model(inputs, model(WaveformAugmentation()(inputs)), name=f"{model.name}_augmented")


def add_logit_offsets(model: Any, offsets: Sequence[float]) -> None:
    """Add `offsets` (one per class) to the logits of `model`'s softmax layer "probs" (of each member's, in an
    ensemble), in its bias.

    softmax(z + offsets) moves the decision between classes as a prior correction would, with the
    graph unchanged: the offsets travel in the weights to every exported format.
    """
    layers = _softmax_layers(model)
    if not layers:
        raise ValueError(f"{model.name} has no classifier layer 'probs' to offset")
    for layer in map(_unwrapped, layers):
        # The bias variable itself: a QAT wrapper takes the kernel out of its layer's weights.
        bias = np.asarray(layer.bias)
        if len(offsets) != len(bias):
            raise ValueError(f"{len(offsets)} logit offsets for {len(bias)} classes")
        layer.bias.assign(bias + np.asarray(offsets, dtype=bias.dtype))


def build_bilstm(
    frames: int,
    features: int,
    num_classes: int,
    *,
    mean: Any,
    variance: Any,
    units: int = 100,
) -> Any:
    """Per-feature standardisation (training mean/variance baked in) -> BiLSTM(units) -> softmax.

    The recipe of MATLAB's "Classify ECG Signals Using LSTM" example on time-frequency moments:
    a bidirectional LSTM whose last output feeds the classifier. Input "ecg" of shape (frames, features).
    """
    keras = require("keras")
    layers = keras.layers
    inputs = keras.Input(shape=(frames, features), name=INPUT_NAME)
    x = layers.Normalization(axis=-1, mean=mean, variance=variance, name="standardise")(inputs)
    # Unrolled over its fixed frame count: TFLite cannot convert the looped LSTM a SavedModel with a dynamic
    # batch holds ("TensorListReserve requires element_shape to be static"), FP32 or INT8.
    x = layers.Bidirectional(layers.LSTM(units, unroll=True), name="bilstm")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="bilstm")


RELU_INIT = "he_uniform"
"""SqueezeNet's ReLU convolutions start from He initialisation. With Keras' default (Glorot), made for
linear or tanh layers, the signal shrinks through its 18 ReLU convolutions until the output is constant:
on the random split seeds 1 and 2 sat at loss ln 2 (every window N) for the whole run and only seed 0 ever
left it; with He, seed 1 was learning by its second epoch (validation macro F1 0.945 at epoch 6)."""


def _fire(x: Any, squeeze: int, expand: int, name: str) -> Any:
    """SqueezeNet Fire module: 1x1 squeeze, then 1x1 and 3x3 expands concatenated on channels."""
    layers = require("keras").layers
    s = layers.Conv2D(squeeze, 1, activation="relu", kernel_initializer=RELU_INIT, name=f"{name}_squeeze")(x)
    e1 = layers.Conv2D(expand, 1, activation="relu", kernel_initializer=RELU_INIT, name=f"{name}_expand1x1")(s)
    e3 = layers.Conv2D(
        expand, 3, padding="same", activation="relu", kernel_initializer=RELU_INIT, name=f"{name}_expand3x3"
    )(s)
    return layers.Concatenate(name=f"{name}_concat")([e1, e3])


def build_squeezenet(input_shape: tuple[int, int, int], num_classes: int, *, dropout: float = 0.5) -> Any:
    """SqueezeNet v1.1 (Fire modules 2-9) with a new 1x1 `conv10` head of `num_classes` filters.

    Transfer-learning recipes replace the ImageNet conv10 (1000 filters) by a fresh 1x1
    convolution with one filter per class and global average pooling; here the whole network
    starts from random weights (no pretrained SqueezeNet offline).
    """
    keras = require("keras")
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name=INPUT_NAME)
    x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu", kernel_initializer=RELU_INIT, name="conv1")(
        inputs
    )
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = _fire(x, 16, 64, "fire2")
    x = _fire(x, 16, 64, "fire3")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool3")(x)
    x = _fire(x, 32, 128, "fire4")
    x = _fire(x, 32, 128, "fire5")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool5")(x)
    for i, (squeeze, expand) in enumerate(((48, 192), (48, 192), (64, 256), (64, 256)), start=6):
        x = _fire(x, squeeze, expand, f"fire{i}")
    x = layers.Dropout(dropout, name="drop9")(x)
    # Linear conv10: with ReLU (as in ImageNet SqueezeNet) a randomly initialised head died on
    # MIT-BIH (all logits 0, every window "N"); pretrained features would keep it alive.
    x = layers.Conv2D(num_classes, 1, name="conv10")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Softmax(name="probs")(x)
    return keras.Model(inputs, outputs, name="squeezenet")


def build_cnn_2d(input_shape: tuple[int, int, int], num_classes: int, *, width: int = 32, dropout: float = 0.3) -> Any:
    """A small 2D CNN for 36x36 beat images (~100k parameters at width 32).

    Three Conv2D+BatchNorm+ReLU blocks (max-pooled after the first two), global average pooling,
    dropout and a softmax: the image counterpart of `build_cnn_1d`, cheap enough for a Pi.
    """
    keras = require("keras")
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name=INPUT_NAME)
    x = inputs
    for i, filters in enumerate((width, 2 * width, 4 * width)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if i < 2:
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="cnn_2d")


BACKBONES: dict[str, tuple[str, int]] = {
    "mobilenetv2": ("MobileNetV2", 32),
    "efficientnetb0": ("EfficientNetB0", 32),
    "resnet50": ("ResNet50", 32),
    "resnet152": ("ResNet152", 32),
    "densenet201": ("DenseNet201", 32),
    "xception": ("Xception", 71),
    "vgg16": ("VGG16", 32),
}
"""Backbone name -> (keras.applications constructor, smallest input side it accepts without its top)."""
RESCALES_PIXELS = frozenset({"efficientnetb0"})
"""Backbones whose keras.applications model divides its input by 255 in-graph (it expects 0-255 pixels)."""
BN_MOMENTUM = 0.9
"""Batch-norm moving-average momentum of the EfficientNetV2-1D (as keras.applications.EfficientNetV2 uses) and
of the backbones in SCRATCH_BN_MOMENTUM.

Keras' default 0.99 averages over ~100 steps, and lags a network that changes fast early in training.
MIT-BIH rhythm frames give ~180 steps an epoch: after 3-5 epochs the moving variances of the EfficientNetV2-1D's
stem were still 5-10x the batch variances and inference collapsed to one class (98.9% training-mode accuracy,
11.9% inference-mode, on the same training frames)."""
SCRATCH_BN_MOMENTUM: dict[str, float] = {"mobilenetv2": BN_MOMENTUM}
"""Backbones whose own batch-norm momentum is too slow to train from random init here, and the momentum they
get instead (the others keep Keras'). Chosen on the validation side of the beat-image pipelines (8,000 training
beats, 8 epochs, seeds 0-2). MobileNetV2 (0.999 in Keras) called every beat N in inference at its own 0.999
(validation macro F1 0.181 on every seed; test 0.828, the share of N) and at 0.99 (seed 0 of both splits), while
its training-mode accuracy rose to 0.88; at 0.9 validation macro F1 .79-.81 (random split). EfficientNetB0 keeps
its 0.99: at 0.9 its validation macro F1 fell (random .814 / .757 against .840 / .791 on seeds 0-1, inter-patient
.306 / .329 / .282 against .295 / .384 / .408). DenseNet201 keeps its 0.99 too: at 0.9 (inter-patient seed 0, the
one probe) validation macro F1 .248 against .241, though at 0.99 that seed kept its all-N epoch 1."""


def build_backbone_classifier(
    input_shape: tuple[int, int, int],
    num_classes: int,
    backbone: str,
    *,
    weights: str | None = None,
    trainable: bool = True,
    dropout: float = 0.2,
    preprocessing: Any = None,
    standardized: bool = False,
) -> Any:
    """A keras.applications backbone (no top) + global average pooling + dropout + dense softmax.

    Single-channel input is repeated to 3 channels in-graph; inputs smaller than the backbone's
    minimum side are resized up to it (bilinear) in-graph too, so the exported model takes the
    raw image. `weights` is passed to the constructor ("imagenet" needs the network; None is
    random init). `trainable=False` freezes the backbone (transfer learning: only the head trains).
    `preprocessing`, a Keras layer, runs first (random augmentation layers in it act only in training).
    From random init the batch norms of the backbones in SCRATCH_BN_MOMENTUM use its momentum.
    `standardized` inputs (z-scored signal values, not pixels) are multiplied by 255 first for the
    backbones of RESCALES_PIXELS, so that their in-graph division leaves the values as they were: divided
    by 255, a beat image reached EfficientNetB0's stem 255 times too small, and with random init the model
    called every beat N (measured: random split, 8,000 beats, 0.685 = the share of N).
    Raises ValueError for an unknown backbone.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {backbone!r}")
    keras = require("keras")
    layers = keras.layers
    constructor, min_side = BACKBONES[backbone]
    inputs = keras.Input(shape=input_shape, name=INPUT_NAME)
    x = inputs if preprocessing is None else preprocessing(inputs)
    if standardized and backbone in RESCALES_PIXELS:
        x = layers.Rescaling(255.0, name="to_pixel_scale")(x)
    if input_shape[-1] == 1:
        x = layers.Concatenate(name="to_rgb")([x, x, x])
    height, width = input_shape[0], input_shape[1]
    if min(height, width) < min_side:
        height, width = max(height, min_side), max(width, min_side)
        x = layers.Resizing(height, width, name="upsize")(x)
    base = getattr(keras.applications, constructor)(include_top=False, weights=weights, input_shape=(height, width, 3))
    base.trainable = trainable
    if weights is None and backbone in SCRATCH_BN_MOMENTUM:
        for layer in base.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = SCRATCH_BN_MOMENTUM[backbone]
    x = base(x, training=False if not trainable else None)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=f"{backbone}_classifier")


def _bn(name: str) -> Any:
    return require("keras").layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)


def _mbconv_1d(x: Any, filters: int, *, stride: int, expand: int, se_ratio: float, fused: bool, name: str) -> Any:
    """EfficientNetV2 block in 1D: (fused) expansion, depthwise conv, squeeze-excitation, linear projection."""
    layers = require("keras").layers
    channels = int(x.shape[-1])
    hidden = channels * expand
    y = x
    if fused:  # Fused-MBConv: one full conv does the expansion and the spatial mixing
        y = layers.Conv1D(hidden, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_fused")(y)
        y = _bn(f"{name}_fused_bn")(y)
        y = layers.Activation("swish", name=f"{name}_fused_act")(y)
    else:
        if expand != 1:
            y = layers.Conv1D(hidden, 1, use_bias=False, name=f"{name}_expand")(y)
            y = _bn(f"{name}_expand_bn")(y)
            y = layers.Activation("swish", name=f"{name}_expand_act")(y)
        y = layers.DepthwiseConv1D(5, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(y)
        y = _bn(f"{name}_dw_bn")(y)
        y = layers.Activation("swish", name=f"{name}_dw_act")(y)
    if se_ratio > 0:
        squeezed = max(1, int(channels * se_ratio))
        s = layers.GlobalAveragePooling1D(keepdims=True, name=f"{name}_se_pool")(y)
        s = layers.Conv1D(squeezed, 1, activation="swish", name=f"{name}_se_reduce")(s)
        s = layers.Conv1D(hidden, 1, activation="sigmoid", name=f"{name}_se_expand")(s)
        y = layers.Multiply(name=f"{name}_se")([y, s])
    y = layers.Conv1D(filters, 1, use_bias=False, name=f"{name}_project")(y)
    y = _bn(f"{name}_project_bn")(y)
    if stride == 1 and channels == filters:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


EFFICIENTNETV2_1D_BLOCKS: tuple[tuple[int, int, int, int, float, bool], ...] = (
    # filters, repeats, stride, expand, se_ratio, fused
    (24, 1, 1, 1, 0.0, True),
    (32, 2, 2, 4, 0.0, True),
    (48, 2, 2, 4, 0.25, False),
    (64, 2, 2, 4, 0.25, False),
    (80, 1, 2, 4, 0.25, False),
)
"""HeartKit-sized stages: fused MBConv early (cheap on short sequences), MBConv + SE later."""


def build_efficientnetv2_1d(input_length: int, num_classes: int, *, dropout: float = 0.2) -> Any:
    """A 1D EfficientNetV2 (MBConv + squeeze-excitation) for rhythm frames, HeartKit style (~200k parameters).

    Stem Conv1D (stride 2) -> EFFICIENTNETV2_1D_BLOCKS -> 1x1 head conv -> global average pooling
    -> dropout -> softmax. Input "ecg" of shape (input_length, 1).
    """
    keras = require("keras")
    layers = keras.layers
    inputs = keras.Input(shape=(input_length, 1), name=INPUT_NAME)
    x = layers.Conv1D(24, 7, strides=2, padding="same", use_bias=False, name="stem")(inputs)
    x = _bn("stem_bn")(x)
    x = layers.Activation("swish", name="stem_act")(x)
    for stage, (filters, repeats, stride, expand, se_ratio, fused) in enumerate(EFFICIENTNETV2_1D_BLOCKS):
        for i in range(repeats):
            x = _mbconv_1d(
                x,
                filters,
                stride=stride if i == 0 else 1,
                expand=expand,
                se_ratio=se_ratio,
                fused=fused,
                name=f"stage{stage}_block{i}",
            )
    x = layers.Conv1D(128, 1, use_bias=False, name="head")(x)
    x = _bn("head_bn")(x)
    x = layers.Activation("swish", name="head_act")(x)
    x = layers.GlobalAveragePooling1D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="efficientnetv2_1d")
