"""Model builders: the beat CNN's one-input split and the training-only waveform augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.models import build_cnn_1d, with_waveform_augmentation

pytest.importorskip("keras", reason="needs pip install 'edgelab[train]'")

WINDOW, FEATURES = 32, 7


def test_augmentation_changes_only_the_waveform_and_only_in_training() -> None:
    # prepare: a wrapper around an identity model, so its output is the augmented input
    import keras

    identity = keras.Model(inputs := keras.Input((WINDOW + FEATURES, 1)), keras.layers.Identity()(inputs))
    augmented = with_waveform_augmentation(identity, WINDOW, seed=0)
    x = np.random.default_rng(0).standard_normal((16, WINDOW + FEATURES, 1)).astype(np.float32)

    # execute
    trained_on = np.asarray(augmented(x, training=True))
    served = np.asarray(augmented(x, training=False))

    # assert
    np.testing.assert_array_equal(served, x)
    np.testing.assert_array_equal(trained_on[:, WINDOW:], x[:, WINDOW:])  # RR features untouched
    assert not np.allclose(trained_on[:, :WINDOW], x[:, :WINDOW])
    # a per-beat gain and offset plus small noise: each beat stays highly correlated with itself
    for beat, original in zip(trained_on[:, :WINDOW, 0], x[:, :WINDOW, 0], strict=True):
        assert np.corrcoef(beat, original)[0, 1] > 0.95


def test_the_beat_cnn_splits_its_one_input_into_waveform_and_features() -> None:
    # prepare
    model = build_cnn_1d(WINDOW, 5, extra_features=FEATURES, width=4, waveform_dropout=0.5)
    x = np.random.default_rng(1).standard_normal((4, WINDOW + FEATURES, 1)).astype(np.float32)
    other_features = x.copy()
    other_features[:, WINDOW:] += 3.0

    # execute
    out, out_other = (np.asarray(model(v, training=False)) for v in (x, other_features))

    # assert
    assert model.input_shape == (None, WINDOW + FEATURES, 1)
    assert model.get_layer("waveform").output.shape[1] == WINDOW
    assert model.get_layer("features").output.shape[1] == FEATURES
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    assert np.abs(out - out_other).max() > 1e-4
