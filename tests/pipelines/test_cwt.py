"""The FFT filter-bank CWT against pywt.cwt on the same wavelets and scales, on real ECG and synthetic signals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines import mitdb
from pipelines.cwt import cwt, filter_bank

pywt = pytest.importorskip("pywt", reason="needs pip install 'edgelab[train]'")
pytest.importorskip("scipy", reason="needs pip install 'edgelab[train]'")

SCALES = np.geomspace(2.0, 120.0, 24)


@pytest.mark.parametrize("wavelet", ["morl", "cmor1.5-1.0", "mexh"])
def test_matches_pywt_on_real_ecg(mitdb_dir: Path, wavelet: str) -> None:
    # prepare: three 5 s windows of record 100 (MLII)
    signal = mitdb._read_lead(mitdb_dir / "100", mitdb.MIT_BIH_FS)
    windows = signal[: 3 * 1800].reshape(3, 1800)
    expected = np.stack([pywt.cwt(w, SCALES, wavelet)[0] for w in windows])

    # execute
    coefs = cwt(windows, SCALES, wavelet)

    # assert
    assert coefs.shape == expected.shape == (3, len(SCALES), 1800)
    assert np.iscomplexobj(coefs) == np.iscomplexobj(expected)
    assert np.max(np.abs(coefs - expected)) < 1e-10 * np.max(np.abs(expected))


def test_float32_input_stays_float32_and_close() -> None:
    # prepare
    x = np.random.default_rng(0).standard_normal((4, 500))
    expected = np.stack([pywt.cwt(row, SCALES[:10], "morl")[0] for row in x])

    # execute
    coefs = cwt(x.astype(np.float32), SCALES[:10], "morl")

    # assert
    assert coefs.dtype == np.float32
    assert np.max(np.abs(coefs - expected)) < 1e-5


def test_a_sine_peaks_at_the_scale_of_its_frequency() -> None:
    # prepare: 10 Hz at 360 Hz; the bank's frequencies are in cycles per sample
    fs, f0 = 360.0, 10.0
    t = np.arange(2048) / fs
    bank = filter_bank("morl", np.arange(4, 80), t.size)

    # execute
    power = np.abs(bank.transform(np.sin(2 * np.pi * f0 * t))[:, 512:-512]).mean(axis=1)

    # assert
    peak_hz = bank.frequencies[int(np.argmax(power))] * fs
    assert abs(peak_hz - f0) < 1.0
    np.testing.assert_allclose(bank.frequencies, pywt.scale2frequency("morl", np.arange(4, 80)))


def test_bank_is_cached_per_wavelet_scales_and_length() -> None:
    # execute
    first = filter_bank("morl", [2.0, 4.0], 300)
    again = filter_bank("morl", np.array([2, 4]), 300)
    other = filter_bank("morl", [2.0, 4.0], 301)

    # assert
    assert first is again
    assert other is not first


def test_a_single_signal_keeps_pywt_axes() -> None:
    # prepare
    x = np.sin(np.linspace(0, 20, 400))

    # execute
    coefs = cwt(x, [3.0, 6.0], "morl")

    # assert
    assert coefs.shape == (2, 400)
    assert np.max(np.abs(coefs - pywt.cwt(x, [3.0, 6.0], "morl")[0])) < 1e-10


@pytest.mark.parametrize(
    ("wavelet", "scales", "length", "message"),
    [
        ("morl", [0.0, 1.0], 100, "positive"),
        ("morl", [1.0], 0, "length"),
        ("db4", [1.0], 100, "db4"),
    ],
)
def test_bad_input_is_rejected(wavelet: str, scales: list[float], length: int, message: str) -> None:
    # execute / assert
    with pytest.raises(ValueError, match=message):
        filter_bank(wavelet, scales, length)


def test_wrong_signal_length_is_rejected() -> None:
    # execute / assert
    with pytest.raises(ValueError, match=r"shape \(n, 100\)"):
        filter_bank("morl", [2.0], 100).transform(np.zeros((2, 99)))
