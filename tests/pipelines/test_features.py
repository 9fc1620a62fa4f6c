"""Feature code on synthetic signals with known answers and on real MIT-BIH slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines import features, mitdb

pytest.importorskip("scipy", reason="needs pip install 'edgelab[train]'")
pytest.importorskip("pywt", reason="needs pip install 'edgelab[train]'")

FS = 360


def test_moments_of_a_pure_tone_and_of_white_noise() -> None:
    # prepare: a 12 Hz sine (one spectral line) and white noise (flat spectrum), 10 s each
    t = np.arange(10 * FS) / FS
    tone = np.sin(2 * np.pi * 12.0 * t)
    noise = np.random.default_rng(0).standard_normal(t.size)

    # execute
    moments = features.time_frequency_moments(np.stack([tone, noise]), FS)

    # assert
    frames = (t.size - features.TF_NPERSEG) // (features.TF_NPERSEG // 2) + 1
    assert moments.shape == (2, frames, 2)
    assert moments.dtype == np.float32
    inst_freq, entropy = moments[..., 0], moments[..., 1]
    assert np.all(np.abs(inst_freq[0] - 12.0) < 1.0)
    assert np.all(entropy[0] < 0.35)  # energy in ~3 of 18 bins
    assert np.all(entropy[1] > 0.75)  # a single frame of noise is not flat; its mean is near 0.88
    assert float(entropy[1].mean()) > 0.85
    assert abs(float(inst_freq[1].mean()) - np.mean(features.TF_BAND_HZ)) < 5.0  # flat band: its middle


def test_moments_reject_windows_shorter_than_a_segment() -> None:
    # execute / assert
    with pytest.raises(ValueError, match="length >= 128"):
        features.time_frequency_moments(np.zeros((2, 100)), FS)


def test_scalogram_rows_follow_frequency() -> None:
    # prepare: 5 s of 3 Hz and of 30 Hz; top rows are high frequencies
    t = np.arange(5 * FS) / FS
    windows = np.stack([np.sin(2 * np.pi * 3.0 * t), np.sin(2 * np.pi * 30.0 * t)])

    # execute
    images = features.scalograms(windows, FS)

    # assert
    assert images.shape == (2, features.SCALOGRAM_SCALES, features.SCALOGRAM_TIME_BINS, 1)
    assert images.dtype == np.float32
    peak_rows = images[..., 0].mean(axis=2).argmax(axis=1)
    row_hz = np.geomspace(*features.SCALOGRAM_BAND_HZ[::-1], features.SCALOGRAM_SCALES)
    assert abs(row_hz[peak_rows[0]] - 3.0) < 1.0
    assert abs(row_hz[peak_rows[1]] - 30.0) < 5.0
    np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)


def test_scalograms_need_a_rate_that_decimates_evenly() -> None:
    # execute / assert
    with pytest.raises(ValueError, match="multiple of 120"):
        features.scalograms(np.zeros((1, 1000)), 250)


def test_beat_images_zero_beyond_half_the_distance_to_neighbours() -> None:
    # prepare: a ramp, so every kept value says where it came from; beats 300 and 400 samples apart
    signal = np.arange(3000, dtype=np.float64)
    peaks = np.array([1000, 1300, 1700])

    # execute
    images = features.beat_images(signal, peaks, FS)

    # assert
    assert images.shape == (3, 36, 36, 3)
    np.testing.assert_array_equal(images[..., 0], images[..., 2])
    middle = images[1, ..., 0].ravel()  # 1296 native samples 1300-648 .. 1300+647
    offsets = np.arange(1296) - 648
    kept = (offsets >= -150) & (offsets <= 200)
    np.testing.assert_array_equal(middle[kept], 1300 + offsets[kept])
    assert not middle[~kept].any()
    assert middle[648] == 1300  # the R peak sits at the centre (row 18, column 0)
    first = images[0, ..., 0].ravel()  # no left neighbour: open to the left down to sample 352
    np.testing.assert_array_equal(first[:649], 1000 + offsets[:649])


def test_beat_images_of_a_real_record(mitdb_dir: Path) -> None:
    # prepare
    import wfdb

    signal = mitdb._zscore(mitdb._read_lead(mitdb_dir / "100", FS))
    ann = wfdb.rdann(str(mitdb_dir / "100"), "atr", sampto=20 * FS)
    peaks = np.asarray([s for s, sym in zip(ann.sample, ann.symbol, strict=True) if sym in "NAV"])

    # execute
    images = features.beat_images(signal, peaks, FS)

    # assert
    assert images.shape == (len(peaks), 36, 36, 3)
    centre = images[:, 18, 0, 0]  # value at the R peak: a positive QRS in MLII
    assert np.all(centre > 1.0)
    assert np.all(images[:, 0, 0, 0] == 0)  # 1.8 s back is past the previous beat


def test_beat_images_reject_unsorted_peaks() -> None:
    # execute / assert
    with pytest.raises(ValueError, match="strictly increasing"):
        features.beat_images(np.zeros(1000), [500, 400], FS)


def _irregular_peaks(n: int, seed: int) -> np.ndarray:
    """R peaks with RR intervals of 0.5-1.2 s, a premature beat now and then."""
    rr = np.random.default_rng(seed).uniform(0.5, 1.2, n)
    return np.cumsum(np.round(rr * FS)).astype(np.int64)


def test_rr_features_of_beat_i_never_use_beats_after_i_plus_one() -> None:
    # prepare: 600 beats (about 8 minutes, longer than the 5-minute average)
    peaks = _irregular_peaks(600, seed=4)
    full = features.rr_features(peaks, FS)

    # execute / assert: the record cut right after beat i + 1 gives beat i the same features
    for i in (0, 1, 5, 9, 10, 11, 250, 400, 598):
        truncated = features.rr_features(peaks[: i + 2], FS)
        np.testing.assert_allclose(truncated[i], full[i], rtol=1e-12)
    # and changing every beat after i + 1 changes nothing up to i
    changed = peaks.copy()
    changed[302:] += 50
    np.testing.assert_allclose(features.rr_features(changed, FS)[:301], full[:301], rtol=1e-12)


def test_rr_features_are_the_intervals_and_their_ratios_to_the_patients_average() -> None:
    # prepare: a steady 0.75 s rhythm with one premature beat (0.45 s) followed by a compensatory pause
    rr = np.full(40, 0.75)
    rr[20], rr[21] = 0.45, 1.05
    peaks = np.round(np.cumsum(rr) * FS).astype(np.int64)

    # execute
    rr_feats = features.rr_features(peaks, FS)

    # assert
    assert rr_feats.shape == (40, len(features.RR_FEATURES))
    pre, post, local, average, pre_n, post_n, local_n, post_pre, pre_local = rr_feats[:, :9].T
    np.testing.assert_allclose(pre[20], 0.45, atol=1 / FS)  # beat 20 is the premature one
    np.testing.assert_allclose(pre[21], 1.05, atol=1 / FS)
    np.testing.assert_allclose(post[19], 0.45, atol=1 / FS)
    np.testing.assert_allclose(local[30], np.mean(np.diff(peaks)[20:30]) / FS, rtol=1e-9)  # last 10 intervals
    np.testing.assert_allclose(pre_n, pre / average)
    np.testing.assert_allclose(post_n, post / average)
    np.testing.assert_allclose(local_n, local / average)
    np.testing.assert_allclose(post_pre, post / pre)
    np.testing.assert_allclose(pre_local, pre / local)
    assert post_pre[20] > 2.0  # the compensatory pause after the premature beat
    assert pre_n[20] < 0.65 and abs(pre_n[10] - 1.0) < 0.01  # premature beat stands out; steady ones are ~1
    # a patient with the same rhythm at half the heart rate has the same ratios
    slow = features.rr_features(peaks * 2, FS)
    np.testing.assert_allclose(slow[:, 4:9], rr_feats[:, 4:9], rtol=1e-9)
    np.testing.assert_allclose(slow[:, 9:11], rr_feats[:, 9:11], atol=1e-9)  # CV and RMSSD/mean: rate-free
    np.testing.assert_allclose(slow[:, :4], 2 * rr_feats[:, :4], rtol=1e-9)


def test_rr_irregularity_is_that_of_the_16_intervals_before_the_beats_own() -> None:
    # prepare: 40 regular beats (0.75 s), then AF-like intervals drawn from 0.4-1.2 s
    rr = np.r_[np.full(40, 0.75), np.random.default_rng(7).uniform(0.4, 1.2, 60)]
    peaks = np.round(np.cumsum(rr) * FS).astype(np.int64)

    # execute
    irregularity = features.rr_features(peaks, FS)[:, -features.RR_IRREGULARITY :]

    # assert: window_rr_features' irregularity columns of pre-RR intervals i-16 .. i-1
    pre = np.diff(peaks / FS)  # as rr_features divides: a step of exactly 50 ms is on pNN50's edge
    pre = np.r_[pre[:1], pre]
    for i in (0, 1, 17, 45, 99):
        expected = features.window_rr_features(pre[max(0, i - features.RR_IRREGULARITY_BEATS) : i])[1:]
        np.testing.assert_allclose(irregularity[i], expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(irregularity[:30], 0.0, atol=1e-3)  # steady rhythm (rounded to samples)
    assert irregularity[40, 0] < 0.01  # its own (first irregular) interval is not yet in its window
    assert np.all(irregularity[60:, 0] > 0.15) and np.all(irregularity[60:, 3] > 0.5)  # AF-like: CV, pNN50


def test_rr_average_covers_the_trailing_five_minutes_only() -> None:
    # prepare: 6 minutes at 1.0 s, then 6 minutes at 0.5 s
    peaks = np.round(np.cumsum(np.r_[np.full(360, 1.0), np.full(720, 0.5)]) * FS).astype(np.int64)

    # execute
    average = features.rr_features(peaks, FS)[:, 3]

    # assert: at the end only the 0.5 s rhythm is inside the window
    np.testing.assert_allclose(average[-1], 0.5, atol=1e-3)
    np.testing.assert_allclose(average[359], 1.0, atol=1e-3)


def test_rr_inputs_are_scaled_to_the_waveform_range_and_clipped() -> None:
    # prepare: typical and extreme features (a 10 s pause)
    rr = np.array(
        [
            [0.8, 0.8, 0.8, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
            [10.0, 0.4, 1.0, 0.8, 12.5, 0.5, 1.25, 0.04, 10.0, 0.3, 0.5, 1.0, 0.9],
        ]
    )

    # execute
    inputs = features.rr_inputs(rr)

    # assert
    assert inputs.dtype == np.float32
    np.testing.assert_allclose(inputs[0], 0.0)
    assert inputs[1, 0] == features.RR_INPUT_CLIP and inputs[1, 4] == features.RR_INPUT_CLIP
    np.testing.assert_allclose(inputs[1, [1, 5, 6, 7]], [-1.6, -2.0, 1.0, -3.84], rtol=1e-6)
    assert inputs[1, 8] == features.RR_INPUT_CLIP
    np.testing.assert_allclose(inputs[1, 9:], [1.2, 2.0, 4.0, 3.6], rtol=1e-6)  # irregularity / 0.25: not centred


def test_rr_features_of_short_or_unsorted_peak_lists() -> None:
    # execute / assert
    assert features.rr_features(np.array([], np.int64), FS).shape == (0, len(features.RR_FEATURES))
    np.testing.assert_allclose(features.rr_features(np.array([100]), FS)[0, : features.RR_SECONDS], 0.8)
    one = features.rr_features(np.array([100]), FS)[0]
    np.testing.assert_allclose(one[features.RR_SECONDS : -features.RR_IRREGULARITY], 1.0)
    np.testing.assert_allclose(one[-features.RR_IRREGULARITY :], 0.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        features.rr_features(np.array([100, 50]), FS)


def test_template_differences_use_only_the_previous_beats() -> None:
    # prepare: 100 beats of a steady shape, one of them (beat 60) twice as tall
    shape = np.sin(np.linspace(0, np.pi, 20)).astype(np.float32)
    windows = np.tile(shape, (100, 1))
    windows[60] *= 2.0

    # execute
    differences = features.template_differences(windows)
    cut = features.template_differences(windows[:61])

    # assert: the odd beat departs from its template by itself; a lone odd beat does not move the
    # median template of the beats after it; beat i never uses a later beat
    assert differences.shape == windows.shape and differences.dtype == np.float32
    np.testing.assert_allclose(differences[60], shape, atol=1e-6)
    np.testing.assert_allclose(np.delete(differences, 60, axis=0), 0.0, atol=1e-6)
    np.testing.assert_array_equal(cut, differences[:61])


def test_template_is_the_median_of_the_last_template_beats() -> None:
    # prepare: random windows, longer than one 1024-beat chunk
    windows = np.random.default_rng(5).standard_normal((1200, 6)).astype(np.float32)
    k = features.TEMPLATE_BEATS

    # execute
    differences = features.template_differences(windows)

    # assert
    assert not differences[0].any()  # the first beat has no template but itself
    for i in (1, 5, k, k + 1, 1023, 1024, 1025, 1199):
        expected = windows[i] - np.median(windows[max(0, i - k) : i], axis=0)
        np.testing.assert_allclose(differences[i], expected, rtol=1e-6, atol=1e-6)
    assert features.template_differences(np.zeros((0, 6))).shape == (0, 6)
    with pytest.raises(ValueError, match="windows must be"):
        features.template_differences(np.zeros((3, 6, 1)))
