"""MIT-BIH Arrhythmia Database: beat windows labelled with the AAMI classes, and the splits papers use.

The signal API follows wfdb's functional style: plain functions taking `fs` explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipelines._deps import require

AAMI_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")
"""AAMI EC57 beat classes: normal, supraventricular ectopic, ventricular ectopic, fusion, unknown/paced."""

SYMBOL_TO_AAMI: dict[str, str] = {
    **dict.fromkeys(("N", "L", "R", "e", "j"), "N"),
    **dict.fromkeys(("A", "a", "J", "S"), "S"),
    **dict.fromkeys(("V", "E"), "V"),
    "F": "F",
    **dict.fromkeys(("/", "f", "Q"), "Q"),
}
"""MIT-BIH beat symbol -> AAMI class. Symbols absent here (+ ~ | " x [ ] ! ...) are not beats and are skipped."""

_SYMBOL_TO_INDEX: dict[str, int] = {s: AAMI_CLASSES.index(c) for s, c in SYMBOL_TO_AAMI.items()}

# de Chazal et al. 2004 inter-patient split; the paced records 102, 104, 107, 217 are in neither.
DS1: tuple[str, ...] = (
    "101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122",
    "124", "201", "203", "205", "207", "208", "209", "215", "220", "223", "230",
)  # fmt: skip
DS2: tuple[str, ...] = (
    "100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210",
    "212", "213", "214", "219", "221", "222", "228", "231", "232", "233", "234",
)  # fmt: skip
PACED_RECORDS: tuple[str, ...] = ("102", "104", "107", "217")

AF_BALANCED_MOVE = "210"
"""DS1 holds only two of the seven AF patients (201, 203: 463 AF/flutter frames of 5 s against
1,180 in DS2), so a rhythm model trained on DS1 learns two patients' AF. Moving record 210 (DS2)
to the training side is the smallest change that splits AF evenly by patient: 813 train (201,
203, 210) / 830 test (202, 219, 221, 222) 5 s frames; 368 / 368 N-vs-AF windows of 10 s.
Still no patient on both sides."""
RHYTHM_DS1: tuple[str, ...] = (*DS1, AF_BALANCED_MOVE)
RHYTHM_DS2: tuple[str, ...] = tuple(r for r in DS2 if r != AF_BALANCED_MOVE)

MIT_BIH_FS = 360
PREFERRED_LEAD = "MLII"
BASELINE_CUTOFF_HZ = 0.5


@dataclass(frozen=True)
class BeatDataset:
    """Beat windows centred (asymmetrically) on annotated R peaks.

    `record` keeps each beat's patient so splits can be made by patient, not only by beat.
    """

    x: NDArray[np.float32]
    """Windows, shape (n, window, 1): the trailing channel axis is what Conv1D models expect."""
    y: NDArray[np.int64]
    """Class index per beat into `class_names`."""
    record: NDArray[np.str_]
    """Record name per beat."""
    class_names: tuple[str, ...] = AAMI_CLASSES
    fs: int = MIT_BIH_FS

    def __post_init__(self) -> None:
        if not (len(self.x) == len(self.y) == len(self.record)):
            raise ValueError(f"x, y and record differ in length: {len(self.x)}, {len(self.y)}, {len(self.record)}")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def window(self) -> int:
        """Samples per beat window."""
        return int(self.x.shape[1])

    def subset(self, selection: NDArray[np.bool_] | NDArray[np.integer[Any]]) -> BeatDataset:
        """The beats picked by a boolean mask or an index array."""
        return BeatDataset(
            x=self.x[selection],
            y=self.y[selection],
            record=self.record[selection],
            class_names=self.class_names,
            fs=self.fs,
        )

    def class_counts(self) -> NDArray[np.int64]:
        """Beats per class, one entry per `class_names` (zeros included)."""
        return np.bincount(self.y, minlength=len(self.class_names)).astype(np.int64)

    def records(self) -> list[str]:
        """The distinct records present, sorted."""
        return sorted(str(r) for r in np.unique(self.record))


def available_records(data_dir: Path) -> list[str]:
    """Records with header, signal and reference annotations present, so partial downloads still work."""
    data_dir = Path(data_dir)
    return sorted(
        hea.stem
        for hea in data_dir.glob("*.hea")
        if hea.with_suffix(".dat").is_file() and hea.with_suffix(".atr").is_file()
    )


def window_length(before_s: float = 0.25, after_s: float = 0.45, fs: int = MIT_BIH_FS) -> int:
    """Samples per beat window: round(before_s*fs) + round(after_s*fs)."""
    return round(before_s * fs) + round(after_s * fs)


def load_beats(
    data_dir: Path,
    records: Sequence[str],
    *,
    before_s: float = 0.25,
    after_s: float = 0.45,
    fs: int = MIT_BIH_FS,
    rr: bool = False,
    template: bool = False,
    streaming: bool = False,
) -> BeatDataset:
    """Cut one window around every annotated beat of each record, labelled with its AAMI class.

    Per record: the MLII lead (channel 0 where a record has none, e.g. 102 and 104), a 0.5 Hz
    high-pass to remove baseline wander, and a z-score, so amplitude differences between
    patients and electrodes do not become features. Beats whose window runs off the signal are
    dropped. Windows are cut with one fancy-indexing gather per record, not a loop per beat.

    `template` appends each window's difference from the patient's template (the median of the
    record's previous beats, features.template_differences) after it: (n, 2 * window, 1). `rr`
    appends the scaled RR features of each beat (features.rr_features over all annotated beats of
    the record, then features.rr_inputs) after that: (n, window [* 2] + len(RR_FEATURES), 1), one
    input tensor a model splits in-graph. `streaming` preprocesses as a
    device reading the signal as it comes would (`streaming_normalise`) instead of with
    whole-record filtering and statistics.
    """
    from pipelines.features import RR_FEATURES, rr_features, rr_inputs, template_differences

    data_dir = Path(data_dir)
    before, after = round(before_s * fs), round(after_s * fs)
    if before < 0 or after <= 0:
        raise ValueError(f"window must be positive: before_s={before_s}, after_s={after_s}")
    offsets = np.arange(-before, after, dtype=np.int64)
    xs: list[NDArray[np.float32]] = []
    ys: list[NDArray[np.int64]] = []
    names: list[NDArray[np.str_]] = []
    for name in records:
        signal = _read_lead(data_dir / name, fs)
        signal = streaming_normalise(signal, fs) if streaming else _zscore(_remove_baseline(signal, fs))
        samples, labels = _read_beats(data_dir / name)
        keep = (samples - before >= 0) & (samples + after <= len(signal))
        idx = samples[keep, None] + offsets[None, :]
        windows = signal[idx].astype(np.float32)
        if template:
            windows = np.concatenate([windows, template_differences(windows)], axis=1)
        if rr:
            windows = np.concatenate([windows, rr_inputs(rr_features(samples, fs))[keep]], axis=1)
        xs.append(windows[..., None])
        ys.append(labels[keep])
        names.append(np.full(int(keep.sum()), name))
    if not xs:
        return BeatDataset(
            x=np.zeros((0, (before + after) * (2 if template else 1) + (len(RR_FEATURES) if rr else 0), 1), np.float32),
            y=np.zeros(0, np.int64),
            record=np.zeros(0, np.str_),
            fs=fs,
        )
    return BeatDataset(x=np.concatenate(xs), y=np.concatenate(ys), record=np.concatenate(names), fs=fs)


def split_by_records(dataset: BeatDataset, test_records: Iterable[str]) -> tuple[BeatDataset, BeatDataset]:
    """Patient-disjoint split: every beat of `test_records` goes to the test side."""
    test = np.isin(dataset.record, list(test_records))
    return dataset.subset(~test), dataset.subset(test)


def split_random(dataset: BeatDataset, test_fraction: float = 0.2, seed: int = 0) -> tuple[BeatDataset, BeatDataset]:
    """Stratified random beat split, as most papers report it.

    It leaks patients: beats of the same person land on both sides, so a model can recognise
    the patient's morphology instead of the arrhythmia and the accuracy is optimistic. Split by
    records (`split_by_records`, DS1/DS2) for the honest figure.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    test = _stratified_mask(dataset.y, test_fraction, np.random.default_rng(seed))
    return dataset.subset(~test), dataset.subset(test)


def stratified_sample(dataset: BeatDataset, n: int, seed: int = 0) -> BeatDataset:
    """About `n` beats keeping the class proportions (all of them when `n` >= len)."""
    if n >= len(dataset):
        return dataset
    keep = _stratified_mask(dataset.y, n / len(dataset), np.random.default_rng(seed))
    return dataset.subset(keep)


def _stratified_mask(y: NDArray[np.int64], fraction: float, rng: np.random.Generator) -> NDArray[np.bool_]:
    """Mask selecting round(fraction * count) random beats of every class."""
    mask = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        mask[rng.choice(idx, size=round(len(idx) * fraction), replace=False)] = True
    return mask


def _read_lead(path: Path, fs: int) -> NDArray[np.float64]:
    """The MLII lead in mV, or channel 0 when the record has no MLII."""
    wfdb = require("wfdb")
    header = wfdb.rdheader(str(path))
    if round(header.fs) != fs:
        raise ValueError(f"{path.name}: sampled at {header.fs} Hz, expected {fs} Hz")
    names = list(header.sig_name)
    channel = names.index(PREFERRED_LEAD) if PREFERRED_LEAD in names else 0
    record = wfdb.rdrecord(str(path), channels=[channel])
    return np.asarray(record.p_signal[:, 0], dtype=np.float64)


def _read_beats(path: Path) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """R-peak sample indices and AAMI class indices of the beat annotations (non-beats dropped)."""
    wfdb = require("wfdb")
    ann = wfdb.rdann(str(path), "atr")
    labels = np.fromiter((_SYMBOL_TO_INDEX.get(s, -1) for s in ann.symbol), dtype=np.int64, count=len(ann.symbol))
    samples = np.asarray(ann.sample, dtype=np.int64)
    is_beat = labels >= 0
    return samples[is_beat], labels[is_beat]


@lru_cache(maxsize=8)
def _baseline_filter(fs: int) -> NDArray[np.float64]:
    """Second-order-sections Butterworth high-pass (cached: designed once per fs)."""
    signal = require("scipy.signal")
    sos: NDArray[np.float64] = signal.butter(2, BASELINE_CUTOFF_HZ, btype="highpass", fs=fs, output="sos")
    return sos


def _remove_baseline(x: NDArray[np.float64], fs: int) -> NDArray[np.float64]:
    """Zero-phase high-pass: removes wander without shifting the R peak."""
    signal = require("scipy.signal")
    y: NDArray[np.float64] = signal.sosfiltfilt(_baseline_filter(fs), x)
    return y


def _zscore(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Zero mean, unit variance: removes per-patient and per-electrode gain differences."""
    std = float(x.std())
    return (x - float(x.mean())) / (std if std > 0 else 1.0)


STREAMING_STATS_S = 60.0
"""Trailing window of the streaming z-score: a minute of signal holds ~70 beats, enough for stable
statistics, and follows gain changes (electrode moves) within a minute."""


def streaming_normalise(x: NDArray[np.float64], fs: int) -> NDArray[np.float64]:
    """The causal counterpart of `_zscore(_remove_baseline(x))`: what a device streaming samples can compute.

    The same 0.5 Hz Butterworth high-pass run forward only (sosfilt: no look-ahead; its phase lag is
    a few milliseconds at QRS frequencies), then each sample standardised with the mean and standard
    deviation of the STREAMING_STATS_S before it (itself included; fewer at the start of the record).
    The offline version filters forward and backward and uses the whole record's statistics, which
    a device only has once the recording is over.
    """
    signal = require("scipy.signal")
    y = np.asarray(signal.sosfilt(_baseline_filter(fs), x), dtype=np.float64)
    span = max(1, round(STREAMING_STATS_S * fs))
    sums = np.concatenate([[0.0], np.cumsum(y)])
    squares = np.concatenate([[0.0], np.cumsum(y * y)])
    end = np.arange(1, y.size + 1)
    start = np.maximum(0, end - span)
    count = end - start
    mean = (sums[end] - sums[start]) / count
    var = np.maximum((squares[end] - squares[start]) / count - mean * mean, 0.0)
    std = np.sqrt(var)
    out: NDArray[np.float64] = (y - mean) / np.where(std > 1e-6, std, 1.0)
    return out


AF_RECORDS: tuple[str, ...] = ("201", "202", "203", "210", "219", "221", "222")
"""The records whose rhythm annotations contain atrial fibrillation ("(AFIB")."""

RHYTHM_CLASSES: dict[str, str] = {"(N": "N", "(AFIB": "AF"}
"""Rhythm annotation (aux_note of '+' marks) -> window class for the N vs AF task; other rhythms are skipped."""


@dataclass(frozen=True)
class RhythmSegment:
    """A stretch of one rhythm: samples [start, end) of the record."""

    start: int
    end: int
    rhythm: str
    """The aux_note without its leading "(" and trailing NULs, e.g. "AFIB", "N", "SBR"."""


def read_rhythms(path: Path) -> list[RhythmSegment]:
    """The rhythm segments of a record from the '+' annotations of its .atr file.

    aux_note values come NUL-terminated from wfdb ("(AFIB\\x00") and some without; both are read
    the same. The last segment ends at the end of the signal.
    """
    wfdb = require("wfdb")
    path = Path(path)
    ann = wfdb.rdann(str(path), "atr")
    length = int(wfdb.rdheader(str(path)).sig_len)
    marks = [
        (int(sample), note.rstrip("\x00").strip())
        for sample, symbol, note in zip(ann.sample, ann.symbol, ann.aux_note, strict=True)
        if symbol == "+" and note.rstrip("\x00").strip().startswith("(")
    ]
    ends = [sample for sample, _ in marks[1:]] + [length]
    return [
        RhythmSegment(start=sample, end=end, rhythm=note[1:])
        for (sample, note), end in zip(marks, ends, strict=True)
        if end > sample
    ]


def load_rhythm_windows(
    data_dir: Path,
    records: Sequence[str],
    *,
    window_s: float = 10.0,
    classes: dict[str, str] = RHYTHM_CLASSES,
    fs: int = MIT_BIH_FS,
    rr: bool = False,
) -> BeatDataset:
    """Non-overlapping windows lying wholly inside one rhythm segment whose label is in `classes`.

    Same per-record preprocessing as `load_beats` (MLII, 0.5 Hz high-pass, z-score). Windows
    are tiled from each segment's start; the remainder shorter than a window is dropped, so a
    window never straddles a rhythm change. Class names are the distinct values of `classes`
    in order of first appearance. Returned as a `BeatDataset` (one "beat" per window).

    `rr` appends each window's RR irregularity (`window_rr_inputs`) after its samples: x becomes
    (n, length + 5, 1), one input tensor, as `load_beats` does for beats.
    """
    from pipelines.features import WINDOW_RR_FEATURES

    data_dir = Path(data_dir)
    length = round(window_s * fs)
    if length < 1:
        raise ValueError(f"window_s={window_s} gives no samples at {fs} Hz")
    class_names = tuple(dict.fromkeys(classes.values()))
    label_of = {note.lstrip("("): class_names.index(name) for note, name in classes.items()}
    xs: list[NDArray[np.float32]] = []
    ys: list[int] = []
    names: list[str] = []
    for name in records:
        starts: list[int] = []
        for segment in read_rhythms(data_dir / name):
            if segment.rhythm not in label_of:
                continue
            first = list(range(segment.start, segment.end - length + 1, length))
            starts.extend(first)
            ys.extend([label_of[segment.rhythm]] * len(first))
        if not starts:
            continue
        signal = _zscore(_remove_baseline(_read_lead(data_dir / name, fs), fs))
        idx = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(length, dtype=np.int64)[None, :]
        windows = signal[idx].astype(np.float32)
        if rr:
            peaks = _read_beats(data_dir / name)[0]
            windows = np.concatenate([windows, window_rr_inputs(peaks, starts, length, fs)], axis=1)
        xs.append(windows[..., None])
        names.extend([name] * len(starts))
    width = length + (len(WINDOW_RR_FEATURES) if rr else 0)
    x = np.concatenate(xs) if xs else np.zeros((0, width, 1), np.float32)
    return BeatDataset(
        x=x, y=np.asarray(ys, dtype=np.int64), record=np.asarray(names, dtype=np.str_), class_names=class_names, fs=fs
    )


def window_rr_inputs(r_peaks: NDArray[np.int64], starts: Sequence[int], length: int, fs: int) -> NDArray[np.float32]:
    """Scaled RR irregularity (features.window_rr_features x WINDOW_RR_INPUT_SCALE) of the windows
    [start, start + length) of one record whose annotated beats are at `r_peaks`: (n_windows, 5).

    Causal, as a device holding its QRS detector's R peaks of the window and before has them: a
    window's intervals are those ending inside it, the first from the last beat before it.
    """
    from pipelines.features import WINDOW_RR_INPUT_SCALE, window_rr_features

    peaks = np.asarray(r_peaks, dtype=np.int64)
    rows = []
    for start in starts:
        first, end = np.searchsorted(peaks, [start, start + length])
        rows.append(window_rr_features(np.diff(peaks[max(first - 1, 0) : end]) / fs))
    scaled: NDArray[np.float32] = (np.reshape(rows, (len(rows), -1)) * WINDOW_RR_INPUT_SCALE).astype(np.float32)
    return scaled


PAPER_CLASSES: tuple[str, ...] = ("N", "V", "F", "/", "f", "other")
"""The beat-image paper's classes: normal, ventricular, fusion, paced, fusion of paced and normal, everything else."""

BEAT_CLASS_SETS: dict[str, tuple[str, ...]] = {"aami": AAMI_CLASSES, "paper": PAPER_CLASSES}

PACED_SPLIT: tuple[tuple[str, ...], tuple[str, ...]] = (("102", "104"), ("107", "217"))
"""Paced records added to DS1 / DS2 for the paper's classes, which need '/' and 'f' beats on both sides
(still patient-disjoint). 102 and 104 hold '/' and 'f'; 107 '/', 217 '/' and 'f'."""


def beat_label(symbol: str, class_set: str) -> str | None:
    """The class of a beat annotation symbol in `class_set` ("aami" or "paper"); None for non-beats."""
    aami = SYMBOL_TO_AAMI.get(symbol)
    if aami is None:
        return None
    if class_set == "aami":
        return aami
    return symbol if symbol in PAPER_CLASSES else "other"


def load_beat_images(
    data_dir: Path, records: Sequence[str], class_set: str = "aami", fs: int = MIT_BIH_FS
) -> BeatDataset:
    """One 36x36 beat image (features.beat_images, single channel) per annotated beat, labelled in `class_set`.

    Per record: MLII, 0.5 Hz high-pass and z-score as in `load_beats`; neighbours for the
    half-distance masking are all annotated beats. x has shape (n, 36, 36, 1): the models repeat
    the channel to 3 in-graph, so the arrays (and the shipped test set) stay a third the size.
    """
    from pipelines.features import beat_images

    if class_set not in BEAT_CLASS_SETS:
        raise ValueError(f"class_set must be one of {', '.join(BEAT_CLASS_SETS)}, got {class_set!r}")
    class_names = BEAT_CLASS_SETS[class_set]
    wfdb = require("wfdb")
    data_dir = Path(data_dir)
    xs: list[NDArray[np.float32]] = []
    ys: list[NDArray[np.int64]] = []
    names: list[NDArray[np.str_]] = []
    for name in records:
        signal = _zscore(_remove_baseline(_read_lead(data_dir / name, fs), fs))
        ann = wfdb.rdann(str(data_dir / name), "atr")
        labels = [beat_label(s, class_set) for s in ann.symbol]
        is_beat = np.asarray([label is not None for label in labels])
        peaks = np.asarray(ann.sample, dtype=np.int64)[is_beat]
        inside = (peaks >= 0) & (peaks < signal.size)
        y = np.asarray([class_names.index(label) for label in labels if label is not None], dtype=np.int64)
        xs.append(beat_images(signal, peaks[inside], fs, channels=1))
        ys.append(y[inside])
        names.append(np.full(int(inside.sum()), name))
    if not xs:
        return BeatDataset(
            x=np.zeros((0, 36, 36, 1), np.float32), y=np.zeros(0, np.int64), record=np.zeros(0, np.str_),
            class_names=class_names, fs=fs,
        )  # fmt: skip
    return BeatDataset(
        x=np.concatenate(xs), y=np.concatenate(ys), record=np.concatenate(names), class_names=class_names, fs=fs
    )
