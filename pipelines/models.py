"""Keras model builders. Keras 3 (TensorFlow backend); the compression paths use tf_keras instead."""

from __future__ import annotations

from typing import Any

from pipelines._deps import require

INPUT_NAME = "ecg"
"""Name of every model's input, so exported SavedModel/ONNX/TFLite artifacts agree on it."""


def build_cnn_1d(input_length: int, num_classes: int, *, width: int = 16, dropout: float = 0.2) -> Any:
    """A small 1D CNN for single-beat windows (~34k parameters at width 16).

    Four Conv1D+BatchNorm+ReLU blocks (max-pooled in between) then global average pooling:
    small enough to train in seconds per epoch on two CPU cores and to fit a microcontroller,
    and built only from ops every runtime (ONNX, TFLite INT8, TensorRT) supports.
    Returns a `keras.Model` with input "ecg" of shape (input_length, 1) and softmax output.
    """
    keras = require("keras")
    layers = keras.layers
    inputs = keras.Input(shape=(input_length, 1), name=INPUT_NAME)
    x = inputs
    for i, (filters, kernel) in enumerate(((width, 7), (2 * width, 5), (4 * width, 5), (4 * width, 5))):
        x = layers.Conv1D(filters, kernel, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if i < 3:
            x = layers.MaxPooling1D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling1D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="cnn_1d")
