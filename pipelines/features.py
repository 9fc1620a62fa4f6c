"""Features computed from ECG windows before a model sees them: time-frequency moments, CWT scalograms, beat images,
RR intervals.

Every function takes a batch and `fs` explicitly and returns float32 arrays shaped for Keras
(trailing channel axis), so the shipped test set is exactly what the exported model consumes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from pipelines._deps import require
from pipelines.cwt import filter_bank

TF_NPERSEG = 128
"""Spectrogram segment (0.36 s at 360 Hz): ~2.8 Hz bins, short enough to follow beat-to-beat changes."""
TF_BAND_HZ = (0.5, 50.0)
"""Band the moments are computed over: ECG energy is below 50 Hz; above it is mains and EMG noise."""

SCALOGRAM_FS = 120
"""Signals are decimated to this rate before the CWT: the band of interest ends at 45 Hz."""
SCALOGRAM_BAND_HZ = (1.0, 45.0)
SCALOGRAM_SCALES = 48
SCALOGRAM_TIME_BINS = 60
SCALOGRAM_WAVELET = "morl"

RR_LOCAL_BEATS = 10
"""The local rhythm: mean of the last 10 RR intervals (de Chazal 2004 averages about 10 beats)."""
RR_AVERAGE_S = 300.0
"""The patient's own rhythm: mean RR over the trailing 5 minutes (de Chazal 2004: a 5-minute window, centred)."""
RR_IRREGULARITY_BEATS = 16
"""The rhythm a beat arrives in: the irregularity (window_rr_features) of the 16 RR intervals before its own.
On the beat model's DS1 folds (pipelines.beats_1d) 32 intervals scored the same (shortfall 2.5 / 13.7 for
seeds 0-2 / 3-5, mean 8.1; 16: 5.2 / 10.5, mean 7.9)."""
RR_FEATURES: tuple[str, ...] = (
    *("pre", "post", "local", "average"),
    *("pre/average", "post/average", "local/average", "post/pre", "pre/local"),
    *("cv16", "rmssd16/mean", "pnn50_16", "pnn10%_16"),
)
RR_SECONDS = 4
RR_IRREGULARITY = 4
"""The first RR_SECONDS features are in seconds, the last RR_IRREGULARITY the irregularity fractions, the
rest ratios (see rr_inputs)."""
RR_SECONDS_CENTRE = 0.8
"""Scaling of RR features into model inputs: (seconds - 0.8) / 0.25, (ratio - 1) / 0.25 and irregularity
/ 0.25 (about 0-2: AF's CV of RR is about 0.2-0.4), clipped to +-RR_INPUT_CLIP. DS1's RR intervals have
median 0.74 s and 1st-99th percentiles 0.37-1.34 s, and its ratios 0.5-1.5: scaled, both span about -2..+4, the range of the z-scored waveform they share one input
tensor (and one INT8 quantization scale) with, so neither is crushed to a few quantization steps."""
RR_SCALE = 0.25
RR_INPUT_CLIP = 8.0

BEAT_IMAGE_SIDE = 36
BEAT_IMAGE_HALF_S = 1.8


def time_frequency_moments(windows: NDArray[np.floating], fs: int) -> NDArray[np.float32]:
    """Instantaneous frequency and spectral entropy per spectrogram frame: (n, length) -> (n, frames, 2).

    Instantaneous frequency is the spectrogram's first moment in frequency (the power-weighted
    mean frequency of the frame, in Hz); spectral entropy is the Shannon entropy of the frame's
    normalised power distribution divided by log2 of the bin count (0: one tone, 1: white noise).
    The same two moments as MATLAB's instfreq/pentropy in the AF classification example.
    """
    signal = require("scipy.signal")
    x = np.asarray(windows, dtype=np.float64)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 2 or x.shape[1] < TF_NPERSEG:
        raise ValueError(f"windows must be (n, length >= {TF_NPERSEG}), got {np.shape(windows)}")
    freqs, _, power = signal.spectrogram(
        x, fs=fs, window="hann", nperseg=TF_NPERSEG, noverlap=TF_NPERSEG // 2, axis=-1
    )  # (n, freqs, frames)
    band = (freqs >= TF_BAND_HZ[0]) & (freqs <= TF_BAND_HZ[1])
    freqs, power = freqs[band], power[:, band, :]
    total = power.sum(axis=1, keepdims=True)
    p = power / np.where(total > 0, total, 1.0)
    inst_freq = np.einsum("f,nft->nt", freqs, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log2(p), 0.0)
    entropy = -plogp.sum(axis=1) / np.log2(freqs.size)
    return np.stack([inst_freq, entropy], axis=-1).astype(np.float32)


def scalograms(windows: NDArray[np.floating], fs: int) -> NDArray[np.float32]:
    """CWT scalogram images: (n, length) -> (n, SCALOGRAM_SCALES, SCALOGRAM_TIME_BINS, 1).

    Decimated to SCALOGRAM_FS, Morlet CWT on geometric scales spanning SCALOGRAM_BAND_HZ (high
    frequencies in the top rows) with the precomputed filter bank, |coefficients| averaged into
    time bins, log-compressed and z-scored per image.
    """
    signal = require("scipy.signal")
    x = np.asarray(windows, dtype=np.float64)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if fs % SCALOGRAM_FS:
        raise ValueError(f"fs={fs} is not a multiple of {SCALOGRAM_FS} Hz")
    factor = fs // SCALOGRAM_FS
    if factor > 1:
        x = signal.decimate(x, factor, ftype="fir", zero_phase=True, axis=-1)
    usable = (x.shape[-1] // SCALOGRAM_TIME_BINS) * SCALOGRAM_TIME_BINS
    if usable == 0:
        raise ValueError(f"windows of {x.shape[-1]} samples at {SCALOGRAM_FS} Hz are too short for the scalogram")
    bank = filter_bank(SCALOGRAM_WAVELET, scalogram_scales(SCALOGRAM_FS), x.shape[-1])
    images = np.empty((x.shape[0], SCALOGRAM_SCALES, SCALOGRAM_TIME_BINS), dtype=np.float32)
    for start in range(0, x.shape[0], 64):  # bounded memory: 64 x scales x length coefficients at a time
        coefs = np.abs(bank.transform(x[start : start + 64].astype(np.float32)))[..., :usable]
        pooled = coefs.reshape(*coefs.shape[:2], SCALOGRAM_TIME_BINS, -1).mean(axis=-1)
        images[start : start + 64] = np.log1p(pooled)
    mean = images.mean(axis=(1, 2), keepdims=True)
    std = images.std(axis=(1, 2), keepdims=True)
    scaled: NDArray[np.float32] = ((images - mean) / np.where(std > 0, std, 1.0))[..., None].astype(np.float32)
    return scaled


def scalogram_scales(fs: int) -> NDArray[np.float64]:
    """Morlet scales whose centre frequencies run geometrically from the band's top down to its bottom."""
    pywt = require("pywt")
    centre = float(pywt.central_frequency(SCALOGRAM_WAVELET))
    low, high = SCALOGRAM_BAND_HZ
    scales: NDArray[np.float64] = np.geomspace(centre * fs / high, centre * fs / low, SCALOGRAM_SCALES)
    return scales


def beat_images(
    signal: NDArray[np.floating], r_peaks: Sequence[int] | NDArray[np.integer], fs: int, channels: int = 3
) -> NDArray[np.float32]:
    """Beat "images" (the beat-image paper's input): (n_beats,) R peaks -> (n_beats, 36, 36, channels).

    Per beat: the 3.6 s around the R peak (1.8 s each side) as 36*36 = 1296 values (the native
    samples at 360 Hz; the "360 values" the lab's design notes quote cannot fill 36x36, 3.6 s x 360 Hz can); samples
    farther from the R peak than half the distance to the previous/next beat are zeroed (so a
    neighbour's QRS does not leak in; the first and last beat keep their open side), as are
    samples off the ends of the record. `signal` should already be z-scored per record. The
    1296 values fill 36x36 row by row and are repeated into `channels` (3 for image backbones).
    """
    x = np.asarray(signal, dtype=np.float64)
    peaks = np.asarray(r_peaks, dtype=np.int64)
    n_values = BEAT_IMAGE_SIDE * BEAT_IMAGE_SIDE
    if x.ndim != 1:
        raise ValueError(f"signal must be 1-D, got shape {x.shape}")
    if peaks.size == 0:
        return np.zeros((0, BEAT_IMAGE_SIDE, BEAT_IMAGE_SIDE, channels), np.float32)
    if np.any(np.diff(peaks) <= 0) or peaks[0] < 0 or peaks[-1] >= x.size:
        raise ValueError("r_peaks must be strictly increasing sample indices inside the signal")
    # 1296 points over [-1.8 s, +1.8 s): at 360 Hz exactly the native samples -648..647, no interpolation.
    offsets = (np.arange(n_values) - n_values // 2) * (2 * BEAT_IMAGE_HALF_S * fs / n_values)
    positions = peaks[:, None] + offsets[None, :]
    values = np.interp(positions, np.arange(x.size), x, left=0.0, right=0.0)
    gaps = np.diff(peaks).astype(np.float64)
    left = np.concatenate([[np.inf], gaps / 2.0])
    right = np.concatenate([gaps / 2.0, [np.inf]])
    keep = (offsets[None, :] >= -left[:, None]) & (offsets[None, :] <= right[:, None])
    keep &= (positions >= 0) & (positions <= x.size - 1)
    images = np.where(keep, values, 0.0).reshape(-1, BEAT_IMAGE_SIDE, BEAT_IMAGE_SIDE)
    return np.repeat(images[..., None].astype(np.float32), channels, axis=-1)


def rr_features(r_peaks: Sequence[int] | NDArray[np.integer], fs: int) -> NDArray[np.float64]:
    """RR-interval features per beat, computed as a streaming device could: (n_beats,) -> (n_beats, 13).

    Columns (RR_FEATURES), in seconds then as ratios: pre-RR (from the previous beat), post-RR (to
    the next beat: one beat of delay), local mean of the last RR_LOCAL_BEATS pre-RR intervals, the
    patient's average pre-RR over the trailing RR_AVERAGE_S, then pre, post and local divided by
    that average, which is what makes a premature beat look premature across patients with
    different heart rates, then post/pre (the compensatory pause after a premature beat) and
    pre/local (premature against the last few beats, when the rhythm drifts faster than the
    5-minute average follows), and last the irregularity of the RR_IRREGULARITY_BEATS pre-RR
    intervals before beat i's own (window_rr_features' CV, RMSSD/mean, pNN50, pNN10%): in AF a
    premature beat is the rhythm, not an ectopic beat. Beat i uses beats 0..i+1 only. The first beat
    has no previous one (its pre-RR is its post-RR), the last none after it (its post-RR is its
    pre-RR); with fewer than two beats every interval is taken as RR_SECONDS_CENTRE, and the rhythm as
    regular (irregularity 0).
    """
    t = np.asarray(r_peaks, dtype=np.float64) / fs
    n = t.size
    if n and np.any(np.diff(t) <= 0):
        raise ValueError("r_peaks must be strictly increasing sample indices")
    if n < 2:
        seconds = np.full((n, RR_SECONDS), RR_SECONDS_CENTRE)
        unit_ratios = np.ones((n, len(RR_FEATURES) - RR_SECONDS - RR_IRREGULARITY))
        return np.concatenate([seconds, unit_ratios, np.zeros((n, RR_IRREGULARITY))], axis=1)
    gaps = np.diff(t)
    pre = np.concatenate([gaps[:1], gaps])
    post = np.concatenate([gaps, gaps[-1:]])
    total = np.concatenate([[0.0], np.cumsum(pre)])  # total[j] = sum of pre[:j]
    i = np.arange(n)
    local_start = np.maximum(0, i - RR_LOCAL_BEATS + 1)
    local = (total[i + 1] - total[local_start]) / (i + 1 - local_start)
    average_start = np.searchsorted(t, t - RR_AVERAGE_S, side="right")  # beats within the trailing window
    average = (total[i + 1] - total[average_start]) / (i + 1 - average_start)
    ratios = [pre / average, post / average, local / average, post / pre, pre / local]
    irregularity = [window_rr_features(pre[max(0, j - RR_IRREGULARITY_BEATS) : j])[1:] for j in range(n)]
    return np.concatenate([np.stack([pre, post, local, average, *ratios], axis=1), irregularity], axis=1)


def rr_inputs(rr: NDArray[np.floating]) -> NDArray[np.float32]:
    """`rr_features` scaled into model inputs (see RR_SECONDS_CENTRE): a fixed affine map, no fitted statistics."""
    rr = np.asarray(rr, dtype=np.float64)
    seconds = (rr[:, :RR_SECONDS] - RR_SECONDS_CENTRE) / RR_SCALE
    ratios = (rr[:, RR_SECONDS:-RR_IRREGULARITY] - 1.0) / RR_SCALE
    irregularity = rr[:, -RR_IRREGULARITY:] / RR_SCALE
    scaled: NDArray[np.float32] = np.clip(
        np.concatenate([seconds, ratios, irregularity], axis=1), -RR_INPUT_CLIP, RR_INPUT_CLIP
    ).astype(np.float32)
    return scaled


TEMPLATE_BEATS = 16
"""The patient's own beat: the sample-wise median of the windows of the last 16 beats. A median, so a few
ectopic beats among them barely move it; in bigeminy (half of them ectopic) it is a blend of the two
shapes (record 208's N beats depart from it about twice as much as most patients'; a template of the
non-premature beats only was tried and not kept, pipelines.beats_1d). Chosen on the validation patients
(the beat model, pipelines.beats_1d): 8, 16 and 32 beats scored 0.803, 0.812 and 0.805."""


def template_differences(windows: NDArray[np.floating]) -> NDArray[np.float32]:
    """Each beat window minus the patient's template, as a streaming device could: (n, length) -> (n, length).

    The template of beat i is the sample-wise median of the windows of the TEMPLATE_BEATS beats
    before it (fewer at the start of a record; beat i itself is never in it, so the first beat's
    difference is 0). Windows must be one record's beats in order. Beat classes differ between
    patients less in absolute shape than in how a beat departs from the patient's usual beat,
    which is what this shows a model trained on other patients.
    """
    w = np.asarray(windows, dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(f"windows must be (n, length), got {w.shape}")
    template = np.empty_like(w)
    if len(w):
        template[0] = w[0]
    for i in range(1, min(TEMPLATE_BEATS, len(w))):
        template[i] = np.median(w[:i], axis=0)
    for start in range(TEMPLATE_BEATS, len(w), 1024):  # bounded memory: 1024 x length x K values at a time
        stop = min(start + 1024, len(w))
        past = np.lib.stride_tricks.sliding_window_view(w[start - TEMPLATE_BEATS : stop - 1], TEMPLATE_BEATS, axis=0)
        template[start:stop] = np.median(past, axis=-1)  # past[j]: the K beats before beat start + j
    differences: NDArray[np.float32] = w - template
    return differences


RHYTHM_FS = 100
RHYTHM_FRAME_S = 5.0
RHYTHM_BAND_HZ = (1.0, 30.0)


def rhythm_frames(windows: NDArray[np.floating], fs: float) -> NDArray[np.float32]:
    """HeartKit's rhythm input: (n, length) at `fs` -> (n, RHYTHM_FS * duration, 1).

    Resampled to 100 Hz (polyphase, anti-aliased), band-passed 1-30 Hz (zero-phase Butterworth:
    keeps P/QRS/T, drops wander and EMG) and z-scored per frame.
    """
    signal = require("scipy.signal")
    x = np.asarray(windows, dtype=np.float64)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 2:
        raise ValueError(f"windows must be (n, length), got {np.shape(windows)}")
    up, down = _ratio(RHYTHM_FS, fs)
    if (up, down) != (1, 1):
        x = signal.resample_poly(x, up, down, axis=-1)
    sos = signal.butter(2, RHYTHM_BAND_HZ, btype="bandpass", fs=RHYTHM_FS, output="sos")
    x = signal.sosfiltfilt(sos, x, axis=-1)
    std = x.std(axis=-1, keepdims=True)
    frames: NDArray[np.float32] = ((x - x.mean(axis=-1, keepdims=True)) / np.where(std > 0, std, 1.0))[
        ..., None
    ].astype(np.float32)
    return frames


def _ratio(target: float, source: float) -> tuple[int, int]:
    """Integer up/down factors for resample_poly (rates in whole Hz, as PhysioNet's are)."""
    from math import gcd

    t, s = round(target), round(source)
    if t <= 0 or s <= 0 or abs(source - s) > 1e-6:
        raise ValueError(f"cannot resample {source} Hz to {target} Hz with integer factors")
    g = gcd(t, s)
    return t // g, s // g


WINDOW_RR_FEATURES: tuple[str, ...] = ("mean", "cv", "rmssd/mean", "pnn50", "pnn10%")
"""RR irregularity of one rhythm window (window_rr_features): mean RR (s), its coefficient of variation,
RMSSD over the mean, and the fractions of successive differences above 50 ms and above a tenth of the
mean. Chosen on the validation records (best epoch's validation macro F1, inter-patient, seeds 0-4,
mean): these five 0.881; with the window's mean over the patient's trailing 5-min average RR too 0.861
(lower in 4 of 5 seeds); the four irregularity columns alone 0.829 and mean RR with that ratio alone
0.755 (seeds 0-2; the five: 0.853 on the same seeds); no RR (mitdb-af-bilstm) 0.818. Feeding the six
to the classifier head beside a BiLSTM on the moments alone, instead of as channels: 0.826 (seeds 0-2,
against 0.841). Validation holds one of the three training AF patients, so seeds swing it by 0.2."""
NN50_S = 0.05
NN_RELATIVE = 0.1
"""pNN50's 50 ms is a tenth of a 0.5 s RR and a twentieth of a 1 s one; the relative threshold is the
same test at every heart rate."""
WINDOW_RR_INPUT_SCALE = 10.0
"""Model inputs are the features x 10 (deciseconds, tenths): about 0-20, the range of the instantaneous
frequency in Hz that they share one input tensor (and one INT8 quantization scale) with; unscaled, the
fractions would get a handful of quantization steps."""


def window_rr_features(rr: Sequence[float] | NDArray[np.floating]) -> NDArray[np.float64]:
    """RR irregularity of one window from its RR intervals in seconds: (5,), columns WINDOW_RR_FEATURES.

    AF is irregularly irregular: high variation and many large successive differences at any
    mean rate. Without an interval the mean is taken as RR_SECONDS_CENTRE (as `rr_features` does
    with fewer than two beats); with fewer than two intervals there is no successive difference,
    and the irregularity columns are 0, as for a perfectly regular rhythm.
    """
    intervals = np.asarray(rr, dtype=np.float64)
    if np.any(intervals <= 0):
        raise ValueError("RR intervals must be positive seconds")
    if intervals.size == 0:
        return np.array([RR_SECONDS_CENTRE, 0.0, 0.0, 0.0, 0.0])
    mean = float(intervals.mean())
    cv = float(intervals.std()) / mean
    steps = np.abs(np.diff(intervals))
    if steps.size:
        rmssd = float(np.sqrt(np.mean(steps * steps))) / mean
        pnn50 = float(np.mean(steps > NN50_S))
        pnn_relative = float(np.mean(steps > NN_RELATIVE * mean))
    else:
        rmssd = pnn50 = pnn_relative = 0.0
    return np.array([mean, cv, rmssd, pnn50, pnn_relative])
