"""Continuous wavelet transform with a precomputed FFT filter bank, for batches of equal-length signals.

`pywt.cwt` builds each scale's filter again for every call and convolves one signal at a time.
Scalogram datasets transform thousands of windows of the same length with the same scales, so
`CwtFilterBank` builds the filters once, stores their spectra (with pywt's trimming folded in as
a phase shift) and transforms a whole batch with one FFT, one broadcast multiply and one inverse FFT.
The filters are exactly pywt's (same integrated wavelet, same sampling of it), so the results agree
with `pywt.cwt` to floating-point round-off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from math import floor

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pipelines._deps import require

PYWT_PRECISION = 12
"""pywt.cwt's default: the integrated wavelet is sampled on 2**12 points."""
CHUNK_ELEMENTS = 1 << 20
"""Complex products per transform chunk (16 MiB at complex128)."""


@dataclass(frozen=True)
class CwtFilterBank:
    """The spectra of pywt's CWT filters for one (wavelet, scales, signal length).

    Build it with `filter_bank`, which caches banks by their key, then call `transform`.
    """

    wavelet: str
    scales: tuple[float, ...]
    length: int
    complex_output: bool
    nfft: int
    spectra: NDArray[np.complexfloating] = field(repr=False)
    """Shape (n_scales, nfft) (or nfft//2+1 for real wavelets): FFT of each filter, shifted and scaled."""
    frequencies: NDArray[np.float64] = field(repr=False)
    """Centre frequency per scale in cycles per sample (divide by the sampling period for Hz)."""

    def transform(self, signals: ArrayLike) -> NDArray[np.floating] | NDArray[np.complexfloating]:
        """CWT coefficients of a batch: (n, length) -> (n, n_scales, length); a 1-D signal -> (n_scales, length).

        float32 input is computed in float32/complex64 (half the memory, what the models consume);
        anything else in float64.
        """
        fft = require("scipy.fft")
        x = np.asarray(signals)
        single = x.ndim == 1
        batch = x[None, :] if single else x
        if batch.ndim != 2 or batch.shape[1] != self.length:
            raise ValueError(f"signals must have shape (n, {self.length}) or ({self.length},), got {x.shape}")
        dtype = np.float32 if x.dtype == np.float32 else np.float64
        complex_dtype = np.complex64 if dtype == np.float32 else np.complex128
        out_dtype = complex_dtype if self.complex_output else dtype
        out = np.empty((batch.shape[0], len(self.scales), self.length), dtype=out_dtype)
        spectra = self.spectra.astype(complex_dtype, copy=False)
        # Chunks keep the (chunk, n_scales, nfft) product near cache size instead of gigabytes.
        chunk = max(1, CHUNK_ELEMENTS // (len(self.scales) * self.nfft))
        for start in range(0, batch.shape[0], chunk):
            part = batch[start : start + chunk].astype(dtype, copy=False)
            if self.complex_output:
                product = fft.fft(part, self.nfft, axis=-1)[:, None, :] * spectra[None]
                out[start : start + chunk] = fft.ifft(product, axis=-1, overwrite_x=True)[..., : self.length]
            else:
                product = fft.rfft(part, self.nfft, axis=-1)[:, None, :] * spectra[None]
                out[start : start + chunk] = fft.irfft(product, self.nfft, axis=-1, overwrite_x=True)[
                    ..., : self.length
                ]
        return out[0] if single else out


def filter_bank(wavelet: str, scales: ArrayLike, length: int) -> CwtFilterBank:
    """The (cached) filter bank of `wavelet` at `scales` for signals of `length` samples.

    Raises ValueError for non-positive scales, a scale too small for pywt's sampling of the
    wavelet (pywt raises the same), or a wavelet that is not continuous (e.g. 'db4').
    """
    scales_tuple = tuple(float(s) for s in np.atleast_1d(np.asarray(scales, dtype=np.float64)))
    if not scales_tuple or min(scales_tuple) <= 0:
        raise ValueError(f"scales must be positive and non-empty, got {scales_tuple}")
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    return _filter_bank(wavelet, scales_tuple, int(length))


@lru_cache(maxsize=16)
def _filter_bank(wavelet_name: str, scales: tuple[float, ...], length: int) -> CwtFilterBank:
    pywt = require("pywt")
    wavelet = pywt.ContinuousWavelet(wavelet_name)  # ValueError for discrete wavelets
    int_psi, grid = pywt.integrate_wavelet(wavelet, precision=PYWT_PRECISION)
    int_psi = np.conj(int_psi) if wavelet.complex_cwt else int_psi
    step = grid[1] - grid[0]
    filters = []
    for scale in scales:
        # The same sampling of the integrated wavelet as pywt.cwt.
        j = (np.arange(scale * (grid[-1] - grid[0]) + 1) / (scale * step)).astype(int)
        taps = int_psi[j[j < int_psi.size]][::-1]
        # pywt: -sqrt(s) * diff(x * taps)[trim]. diff(x * taps) = (x * h)[1:-1] with h = taps - shift(taps),
        # so one convolution with h, read from offset 1 + floor(d), gives the trimmed result.
        h = -np.sqrt(scale) * (np.append(taps, 0) - np.insert(taps, 0, 0))
        d = (taps.size - 2) / 2.0  # pywt trims (len(diff) - length) / 2 from each side
        if d < 0:
            raise ValueError(f"scale {scale} too small for wavelet {wavelet_name!r}")
        filters.append((h, 1 + floor(d)))
    nfft = _next_fast_len(length + max(h.size for h, _ in filters))
    freqs = np.fft.fftfreq(nfft) if wavelet.complex_cwt else np.fft.rfftfreq(nfft)
    spectra = np.empty((len(scales), freqs.size), dtype=np.complex128)
    for i, (h, offset) in enumerate(filters):
        spectrum = np.fft.fft(h, nfft) if wavelet.complex_cwt else np.fft.rfft(h, nfft)
        # Shifting the output left by `offset` samples: multiply by exp(+2*pi*i*f*offset).
        spectra[i] = spectrum * np.exp(2j * np.pi * freqs * offset)
    frequencies = np.atleast_1d(np.asarray(pywt.scale2frequency(wavelet, np.asarray(scales), PYWT_PRECISION)))
    return CwtFilterBank(
        wavelet=wavelet_name,
        scales=scales,
        length=length,
        complex_output=bool(wavelet.complex_cwt),
        nfft=nfft,
        spectra=spectra,
        frequencies=frequencies.astype(np.float64),
    )


def _next_fast_len(n: int) -> int:
    fft = require("scipy.fft")
    size: int = fft.next_fast_len(n, real=True)
    return size


def cwt(signals: ArrayLike, scales: ArrayLike, wavelet: str) -> NDArray[np.floating] | NDArray[np.complexfloating]:
    """`pywt.cwt(signals, scales, wavelet)[0]` for a batch, axis order (n, n_scales, length)."""
    x = np.asarray(signals)
    return filter_bank(wavelet, scales, x.shape[-1]).transform(x)
