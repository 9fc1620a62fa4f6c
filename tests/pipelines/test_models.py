"""Model builders: the beat CNN's one-input split, its ensemble, the training-only waveform augmentation, logit offsets."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.models import (
    SCRATCH_BN_MOMENTUM,
    add_logit_offsets,
    build_backbone_classifier,
    build_cnn_1d,
    ensemble_members,
    with_waveform_augmentation,
)

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


def test_augmentation_gives_the_template_difference_the_gain_but_not_the_offset() -> None:
    # prepare: an identity wrapper; the difference channel holds a copy of the waveform
    import keras

    identity = keras.Model(inputs := keras.Input((2 * WINDOW + FEATURES, 1)), keras.layers.Identity()(inputs))
    augmented = with_waveform_augmentation(identity, WINDOW, seed=0, differences=True, noise=0.0)
    wave = np.random.default_rng(2).standard_normal((16, WINDOW, 1)).astype(np.float32)
    rr = np.ones((16, FEATURES, 1), np.float32)
    x = np.concatenate([wave, wave, rr], axis=1)

    # execute
    out = np.asarray(augmented(x, training=True))

    # assert: beat = gain * wave + offset, difference = gain * wave (same gain), features untouched
    np.testing.assert_array_equal(out[:, 2 * WINDOW :], rr)
    gain = (out[:, WINDOW : 2 * WINDOW] / wave)[..., 0]
    offset = (out[:, :WINDOW] - out[:, WINDOW : 2 * WINDOW])[..., 0]
    assert np.ptp(gain, axis=1).max() < 1e-3 and np.ptp(offset, axis=1).max() < 1e-4  # one of each per beat
    assert not np.allclose(gain[:, 0], 1.0)
    assert np.abs(offset[:, 0]).max() > 1e-3


def test_the_beat_cnn_stacks_two_waveforms_as_channels() -> None:
    # prepare
    model = build_cnn_1d(WINDOW, 5, extra_features=FEATURES, waveforms=2, width=4)
    x = np.random.default_rng(3).standard_normal((4, 2 * WINDOW + FEATURES, 1)).astype(np.float32)
    other_difference = x.copy()
    other_difference[:, WINDOW : 2 * WINDOW] += 3.0

    # execute
    out, out_other = (np.asarray(model(v, training=False)) for v in (x, other_difference))

    # assert
    assert model.input_shape == (None, 2 * WINDOW + FEATURES, 1)
    assert model.get_layer("waveform_channels").output.shape[1:] == (WINDOW, 2)
    assert model.get_layer("features").output.shape[1] == FEATURES
    assert np.abs(out - out_other).max() > 1e-4


def test_logit_offsets_shift_the_softmax_as_a_prior_would() -> None:
    # prepare
    model = build_cnn_1d(WINDOW, 5, extra_features=FEATURES, width=4)
    x = np.random.default_rng(4).standard_normal((8, WINDOW + FEATURES, 1)).astype(np.float32)
    offsets = [0.0, -1.0, 0.5, 0.0, 0.0]
    before = np.asarray(model(x, training=False))

    # execute
    add_logit_offsets(model, offsets)
    after = np.asarray(model(x, training=False))

    # assert: softmax(z + offsets) = before * exp(offsets), renormalised
    expected = before * np.exp(offsets)
    np.testing.assert_allclose(after, expected / expected.sum(axis=1, keepdims=True), rtol=1e-5)
    with pytest.raises(ValueError, match="2 logit offsets for 5 classes"):
        add_logit_offsets(model, [0.0, 1.0])


def test_an_ensemble_averages_members_that_train_one_at_a_time() -> None:
    # prepare
    import keras

    keras.utils.set_random_seed(0)
    model = build_cnn_1d(WINDOW, 5, extra_features=FEATURES, waveforms=2, width=4, members=3)
    single = build_cnn_1d(WINDOW, 5, extra_features=FEATURES, waveforms=2, width=4)
    x = np.random.default_rng(5).standard_normal((16, 2 * WINDOW + FEATURES, 1)).astype(np.float32)
    y = np.arange(16) % 5
    members = ensemble_members(model)
    before = [np.asarray(m(x, training=False)) for m in members]

    # execute: train member 0 alone
    members[0].compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    members[0].fit(x, y, epochs=2, batch_size=8, verbose=0)
    after = [np.asarray(m(x, training=False)) for m in members]

    # assert: one flat graph (no nested model), the mean of three distinct members, one trained in place
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert model.count_params() == 3 * single.count_params()
    assert len(members) == 3 and ensemble_members(single) == [single]
    np.testing.assert_allclose(np.asarray(model(x, training=False)), np.mean(after, axis=0), rtol=1e-5, atol=1e-7)
    assert np.abs(before[0] - before[1]).max() > 1e-4
    assert np.abs(after[0] - before[0]).max() > 1e-4
    for k in (1, 2):
        np.testing.assert_array_equal(after[k], before[k])


def test_logit_offsets_shift_every_member_of_an_ensemble() -> None:
    # prepare
    model = build_cnn_1d(WINDOW, 5, extra_features=FEATURES, width=4, members=2)
    x = np.random.default_rng(6).standard_normal((8, WINDOW + FEATURES, 1)).astype(np.float32)
    offsets = [0.0, 0.0, 0.5, 2.0, 0.0]
    before = [np.asarray(m(x, training=False)) for m in ensemble_members(model)]

    # execute
    add_logit_offsets(model, offsets)

    # assert: each member's softmax moved as a prior would, and the output is their mean
    expected = [b * np.exp(offsets) for b in before]
    expected = [e / e.sum(axis=1, keepdims=True) for e in expected]
    for member, want in zip(ensemble_members(model), expected, strict=True):
        np.testing.assert_allclose(np.asarray(member(x, training=False)), want, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(model(x, training=False)), np.mean(expected, axis=0), rtol=1e-5)


@pytest.mark.parametrize(("standardized", "scale"), [(True, 1.0), (False, 1 / 255)])
def test_standardized_images_reach_efficientnet_as_they_are(standardized: bool, scale: float) -> None:
    # prepare: z-scored single-channel images, and the backbone's stem input (after its own pixel rescaling)
    import keras

    model = build_backbone_classifier((36, 36, 1), 3, "efficientnetb0", standardized=standardized)
    base = model.get_layer("efficientnetb0")
    x = np.random.default_rng(0).normal(size=(2, 36, 36, 1)).astype(np.float32)
    before_base = keras.Model(model.input, model.get_layer("to_rgb").output)
    normalization = next(layer for layer in base.layers if isinstance(layer, keras.layers.Normalization))
    stem_input = keras.Model(base.input, normalization.output)

    # execute
    seen = np.asarray(stem_input(before_base(x)))

    # assert: standardized values arrive unchanged; pixels (the default) are divided by 255 as Keras intends
    assert np.allclose(seen, np.repeat(x, 3, axis=-1) * scale, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("backbone", "momentum"), [("mobilenetv2", 0.9), ("efficientnetb0", 0.99)])
def test_a_backbone_from_random_init_gets_the_batch_norm_momentum_chosen_for_it(backbone: str, momentum: float) -> None:
    # prepare / execute: MobileNetV2, whose keras.applications batch norms use 0.999, and EfficientNetB0 (0.99)
    import keras

    model = build_backbone_classifier((36, 36, 1), 3, backbone, weights=None)
    base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]

    # assert: MobileNetV2's follow the training network within tens of steps; EfficientNetB0 keeps its own
    assert norms and {layer.momentum for layer in norms} == {momentum}
    assert SCRATCH_BN_MOMENTUM.get(backbone, 0.99) == momentum
