"""MIT-BIH loading and splits, on real records."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines import mitdb

RECORD_LENGTH = 650_000
BEFORE, AFTER = 90, 162  # 0.25 s and 0.45 s at 360 Hz


def _expected_beats(data_dir: Path, record: str) -> tuple[int, np.ndarray]:
    """Beat count and per-class counts straight from the .atr file, minus the beats too near an edge."""
    import wfdb

    ann = wfdb.rdann(str(data_dir / record), "atr")
    kept = [
        mitdb.AAMI_CLASSES.index(mitdb.SYMBOL_TO_AAMI[symbol])
        for sample, symbol in zip(ann.sample, ann.symbol, strict=True)
        if symbol in mitdb.SYMBOL_TO_AAMI and sample - BEFORE >= 0 and sample + AFTER <= RECORD_LENGTH
    ]
    return len(kept), np.bincount(kept, minlength=len(mitdb.AAMI_CLASSES))


def test_aami_mapping_groups_beat_symbols_and_skips_the_rest() -> None:
    # prepare
    expected = {
        "N": "NLRej",
        "S": "AaJS",
        "V": "VE",
        "F": "F",
        "Q": "/fQ",
    }
    non_beats = ["+", "~", "|", '"', "x", "[", "]", "!"]

    # execute
    grouped = {c: "".join(s for s, k in mitdb.SYMBOL_TO_AAMI.items() if k == c) for c in mitdb.AAMI_CLASSES}

    # assert
    assert mitdb.AAMI_CLASSES == ("N", "S", "V", "F", "Q")
    assert {c: sorted(s) for c, s in grouped.items()} == {c: sorted(s) for c, s in expected.items()}
    assert not set(non_beats) & set(mitdb.SYMBOL_TO_AAMI)


def test_ds1_ds2_are_disjoint_and_exclude_paced_records() -> None:
    # prepare
    ds1, ds2, paced = set(mitdb.DS1), set(mitdb.DS2), {"102", "104", "107", "217"}

    # execute
    overlap = ds1 & ds2

    # assert
    assert not overlap
    assert len(ds1) == len(mitdb.DS1) == 22
    assert len(ds2) == len(mitdb.DS2) == 22
    assert not (ds1 | ds2) & paced
    assert set(mitdb.PACED_RECORDS) == paced


def test_available_records_lists_the_database(mitdb_dir: Path) -> None:
    # execute
    records = mitdb.available_records(mitdb_dir)

    # assert
    assert len(records) == 48
    assert set(records) == set(mitdb.DS1) | set(mitdb.DS2) | set(mitdb.PACED_RECORDS)


def test_available_records_ignores_incomplete_records(mitdb_dir: Path, tmp_path: Path) -> None:
    # prepare: record 100 complete, 101 with its header only
    for suffix in (".hea", ".dat", ".atr"):
        (tmp_path / f"100{suffix}").symlink_to(mitdb_dir / f"100{suffix}")
    (tmp_path / "101.hea").symlink_to(mitdb_dir / "101.hea")

    # execute
    records = mitdb.available_records(tmp_path)

    # assert
    assert records == ["100"]


def test_load_beats_keeps_every_annotated_beat_away_from_the_edges(mitdb_dir: Path) -> None:
    # prepare: 102 has no MLII lead (V5, V2) and is paced, so it also exercises the fallback and Q
    records = ["100", "102"]
    expected = {r: _expected_beats(mitdb_dir, r) for r in records}

    # execute
    dataset = mitdb.load_beats(mitdb_dir, records)

    # assert
    assert len(dataset) == sum(n for n, _ in expected.values())
    for record, (count, per_class) in expected.items():
        mine = dataset.subset(dataset.record == record)
        assert len(mine) == count
        np.testing.assert_array_equal(mine.class_counts(), per_class)
    assert dataset.class_counts()[mitdb.AAMI_CLASSES.index("Q")] > 2000  # 102's paced beats


def test_load_beats_windows_are_z_scored_and_centred_on_the_r_peak(mitdb_dir: Path) -> None:
    # execute
    dataset = mitdb.load_beats(mitdb_dir, ["100"])

    # assert
    assert dataset.x.shape == (len(dataset), BEFORE + AFTER, 1)
    assert dataset.window == mitdb.window_length() == 252
    assert dataset.x.dtype == np.float32
    assert dataset.y.dtype == np.int64
    assert dataset.fs == 360
    assert dataset.class_names == mitdb.AAMI_CLASSES
    # the windows cover most of the record, so they carry its zero mean and unit variance
    assert abs(float(dataset.x.mean())) < 0.1
    assert 0.8 < float(dataset.x.std()) < 1.25
    # the R peak is the largest deflection, at offset `before`
    peaks = np.argmax(np.abs(dataset.x[..., 0]), axis=1)
    assert np.mean(np.abs(peaks - BEFORE) <= 10) > 0.95


def test_load_beats_window_length_follows_before_and_after(mitdb_dir: Path) -> None:
    # execute
    dataset = mitdb.load_beats(mitdb_dir, ["100"], before_s=0.5, after_s=0.5)

    # assert
    assert dataset.x.shape[1:] == (360, 1)


def test_split_random_is_stratified_and_disjoint(mitdb_dir: Path) -> None:
    # prepare
    dataset = mitdb.load_beats(mitdb_dir, ["100", "119"])

    # execute
    train, test = mitdb.split_random(dataset, test_fraction=0.25, seed=3)

    # assert
    assert len(train) + len(test) == len(dataset)
    for c, total in enumerate(dataset.class_counts()):
        assert test.class_counts()[c] == round(total * 0.25)
    # no beat on both sides: each (record, window) pair appears once
    both = np.concatenate([train.x[:, :, 0], test.x[:, :, 0]])
    assert len(np.unique(both, axis=0)) == len(dataset)


def test_split_random_depends_on_the_seed(mitdb_dir: Path) -> None:
    # prepare
    dataset = mitdb.load_beats(mitdb_dir, ["100"])

    # execute
    _, a = mitdb.split_random(dataset, 0.2, seed=0)
    _, b = mitdb.split_random(dataset, 0.2, seed=0)
    _, c = mitdb.split_random(dataset, 0.2, seed=1)

    # assert
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)


def test_stratified_sample_keeps_proportions(mitdb_dir: Path) -> None:
    # prepare
    dataset = mitdb.load_beats(mitdb_dir, ["119"])

    # execute
    small = mitdb.stratified_sample(dataset, 500, seed=0)

    # assert
    assert abs(len(small) - 500) <= len(dataset.class_names)
    share = small.class_counts() / len(small)
    np.testing.assert_allclose(share, dataset.class_counts() / len(dataset), atol=0.01)


def test_load_beats_appends_the_rr_features_of_each_beat(mitdb_dir: Path) -> None:
    # prepare
    from pipelines import features

    plain = mitdb.load_beats(mitdb_dir, ["100"])
    samples, _ = mitdb._read_beats(mitdb_dir / "100")
    expected = features.rr_inputs(features.rr_features(samples, 360))

    # execute
    with_rr = mitdb.load_beats(mitdb_dir, ["100"], rr=True)

    # assert: the same windows, then the 7 scaled RR features of the same beats
    assert with_rr.x.shape == (len(plain), BEFORE + AFTER + len(features.RR_FEATURES), 1)
    np.testing.assert_array_equal(with_rr.x[:, : BEFORE + AFTER], plain.x)
    kept = (samples >= BEFORE) & (samples + AFTER <= RECORD_LENGTH)
    np.testing.assert_array_equal(with_rr.x[:, BEFORE + AFTER :, 0], expected[kept])
    np.testing.assert_array_equal(with_rr.y, plain.y)


def test_load_beats_puts_the_template_differences_between_window_and_rr(mitdb_dir: Path) -> None:
    # prepare
    from pipelines import features

    plain = mitdb.load_beats(mitdb_dir, ["100"], rr=True)
    window = BEFORE + AFTER

    # execute
    with_template = mitdb.load_beats(mitdb_dir, ["100"], rr=True, template=True)

    # assert: window, its difference from the template of the beats before it, then the RR features
    assert with_template.x.shape == (len(plain), 2 * window + len(features.RR_FEATURES), 1)
    np.testing.assert_array_equal(with_template.x[:, :window], plain.x[:, :window])
    expected = features.template_differences(plain.x[:, :window, 0])
    np.testing.assert_array_equal(with_template.x[:, window : 2 * window, 0], expected)
    np.testing.assert_array_equal(with_template.x[:, 2 * window :], plain.x[:, window:])


def test_streaming_normalisation_is_causal_and_close_to_the_offline_one(mitdb_dir: Path) -> None:
    # prepare: two minutes of record 100
    signal = mitdb._read_lead(mitdb_dir / "100", 360)[: 120 * 360]
    altered = signal.copy()
    altered[60 * 360 :] *= 3.0  # everything after one minute changes

    # execute
    streamed = mitdb.streaming_normalise(signal, 360)
    streamed_altered = mitdb.streaming_normalise(altered, 360)
    offline = mitdb._zscore(mitdb._remove_baseline(signal, 360))

    # assert: no sample depends on a later one
    np.testing.assert_array_equal(streamed[: 60 * 360], streamed_altered[: 60 * 360])
    assert not np.allclose(streamed[60 * 360 :], streamed_altered[60 * 360 :])
    # once a minute of history is in, the running statistics agree with the whole record's
    later = slice(60 * 360, None)
    assert abs(float(streamed[later].mean())) < 0.2
    assert 0.8 < float(streamed[later].std()) < 1.25
    assert np.corrcoef(streamed[later], offline[later])[0, 1] > 0.95


def test_load_beats_streaming_keeps_the_beats_and_the_r_peak(mitdb_dir: Path) -> None:
    # execute
    offline = mitdb.load_beats(mitdb_dir, ["100"])
    streamed = mitdb.load_beats(mitdb_dir, ["100"], streaming=True)

    # assert
    assert streamed.x.shape == offline.x.shape
    np.testing.assert_array_equal(streamed.y, offline.y)
    peaks = np.argmax(np.abs(streamed.x[..., 0]), axis=1)
    assert np.mean(np.abs(peaks - BEFORE) <= 10) > 0.95
