"""RR irregularity of rhythm windows (issue 16): the feature function, its causal windowing, and the
(frames, 2 + 5) input of mitdb-af-bilstm-rr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines import af, features, mitdb

FS = 360


def test_window_rr_features_of_a_known_sequence() -> None:
    # prepare: RR 0.8, 1.0, 0.6, 0.8 s -> mean 0.8, sd sqrt(0.02), |dRR| 0.2, 0.4, 0.2
    rr = [0.8, 1.0, 0.6, 0.8]

    # execute
    values = features.window_rr_features(rr)

    # assert: columns in WINDOW_RR_FEATURES order; 10% of the mean is 0.08 s, so every step counts
    expected = [0.8, np.sqrt(0.02) / 0.8, np.sqrt(0.24 / 3) / 0.8, 1.0, 1.0]
    np.testing.assert_allclose(values, expected)
    assert len(values) == len(features.WINDOW_RR_FEATURES)


def test_af_like_irregular_rr_scores_higher_than_regular_rr() -> None:
    # prepare: a steady 75 bpm rhythm with 10 ms jitter, and AF-like intervals uniform in 0.4-1.0 s
    rng = np.random.default_rng(0)
    regular = 0.8 + rng.uniform(-0.01, 0.01, 12)
    irregular = rng.uniform(0.4, 1.0, 14)

    # execute
    steady = features.window_rr_features(regular)
    af_like = features.window_rr_features(irregular)

    # assert: every irregularity column (cv .. pnn10%) is higher for the AF-like rhythm
    assert np.all(af_like[1:5] > steady[1:5])
    assert steady[3] == steady[4] == 0.0  # no step above 50 ms or 10% of the mean
    assert af_like[3] > 0.5


@pytest.mark.parametrize(
    ("rr", "expected"), [([], [features.RR_SECONDS_CENTRE, 0, 0, 0, 0]), ([0.6], [0.6, 0, 0, 0, 0])]
)
def test_windows_with_no_or_one_interval_read_as_regular(rr: list[float], expected: list[float]) -> None:
    # execute: no interval (0 or 1 beat) takes the mean as RR_SECONDS_CENTRE; one interval has no step
    values = features.window_rr_features(rr)

    # assert
    np.testing.assert_allclose(values, expected)


def test_window_rr_features_reject_non_positive_seconds() -> None:
    # execute / assert
    with pytest.raises(ValueError, match="positive"):
        features.window_rr_features([0.8, 0.0])


def test_window_rr_inputs_use_the_intervals_ending_inside_each_window_and_the_past_only() -> None:
    # prepare: beats every 0.8 s for 100 s, then alternately 0.4 and 0.6 s; a 10 s window in each
    # rhythm, and one starting 0.1 s before the change, whose first interval (0.8 s) ends inside it
    irregular = 100 + np.cumsum(np.tile([0.4, 0.6], 20))
    peaks = np.round(np.concatenate([np.arange(0, 100.1, 0.8), irregular]) * FS).astype(np.int64)
    starts = [round(50.2 * FS), round(105.1 * FS), round(99.9 * FS)]
    length = 10 * FS

    # execute
    inputs = mitdb.window_rr_inputs(peaks, starts, length, FS)
    future_changed = mitdb.window_rr_inputs(
        np.concatenate([peaks[peaks < starts[0] + length], peaks[peaks >= starts[0] + length] + 100]),
        starts[:1],
        length,
        FS,
    )

    # assert: scaled x10; steady 0.8 s, then 0.4/0.6 s alternating (every step 0.2 s); the straddling
    # window's intervals are the irregular ones plus the 0.8 s one ending at its first beat
    scale = features.WINDOW_RR_INPUT_SCALE
    assert inputs.shape == (3, len(features.WINDOW_RR_FEATURES))
    assert inputs.dtype == np.float32
    np.testing.assert_allclose(inputs[0], [0.8 * scale, 0, 0, 0, 0], atol=1e-2)
    np.testing.assert_allclose(inputs[1], np.array([0.5, 0.2, 0.4, 1, 1]) * scale, atol=1e-2)
    straddling = np.diff(peaks[(peaks >= starts[2] - 0.8 * FS) & (peaks < starts[2] + 10 * FS)]) / FS
    assert straddling[0] == pytest.approx(0.8, abs=1e-2)
    np.testing.assert_allclose(inputs[2], features.window_rr_features(straddling) * scale, rtol=1e-5)
    np.testing.assert_array_equal(future_changed, inputs[:1])  # beats after the window change nothing


def test_moments_and_rr_repeat_the_rr_features_on_every_frame() -> None:
    # prepare: two windows of noise followed by their RR values
    rng = np.random.default_rng(1)
    k = len(features.WINDOW_RR_FEATURES)
    samples = rng.standard_normal((2, 3600)).astype(np.float32)
    rr = np.arange(2 * k, dtype=np.float32).reshape(2, k)
    windows = np.concatenate([samples, rr], axis=1)[..., None]

    # execute
    x = af.moments_and_rr(windows, FS)

    # assert: the moments are those of the samples alone, the RR values the same on every frame
    moments = features.time_frequency_moments(samples, FS)
    assert x.shape == (2, moments.shape[1], 2 + k)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x[..., :2], moments)
    np.testing.assert_array_equal(x[..., 2:], np.broadcast_to(rr[:, None, :], (2, moments.shape[1], k)))


def test_af_windows_of_a_real_record_are_more_irregular(mitdb_dir: Path) -> None:
    # execute: record 202 holds N and AF windows (201's and 219's N stretches are themselves
    # irregular: ectopic beats, which the RR features alone do not tell from AF)
    windows = mitdb.load_rhythm_windows(mitdb_dir, ["202"], window_s=10.0, rr=True)
    plain = mitdb.load_rhythm_windows(mitdb_dir, ["202"], window_s=10.0)

    # assert: the samples are unchanged, the RR values follow them, AF's pNN50 is higher
    k = len(features.WINDOW_RR_FEATURES)
    assert windows.x.shape == (len(plain), 3600 + k, 1)
    np.testing.assert_array_equal(windows.x[:, :3600], plain.x)
    pnn50 = windows.x[:, 3600 + features.WINDOW_RR_FEATURES.index("pnn50"), 0]
    is_af = windows.y == windows.class_names.index("AF")
    assert np.median(pnn50[is_af]) > np.median(pnn50[~is_af])
