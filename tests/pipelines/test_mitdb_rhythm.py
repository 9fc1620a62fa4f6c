"""Rhythm segments and N/AF windows from the real MIT-BIH rhythm annotations."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from pipelines import mitdb


def test_read_rhythms_tiles_the_record(mitdb_dir: Path) -> None:
    # execute
    segments = mitdb.read_rhythms(mitdb_dir / "201")

    # assert: contiguous, NUL-free names, AF present, ending at the record's end
    assert segments[0].rhythm == "AFIB"
    assert all(a.end == b.start for a, b in itertools.pairwise(segments))
    assert segments[-1].end == 650_000
    assert {"AFIB", "N"} <= {s.rhythm for s in segments}
    assert not any("\x00" in s.rhythm or s.rhythm.startswith("(") for s in segments)


def test_rhythm_windows_stay_inside_one_labelled_segment(mitdb_dir: Path) -> None:
    # prepare
    segments = mitdb.read_rhythms(mitdb_dir / "201")
    expected = {
        label: sum((s.end - s.start) // 3600 for s in segments if s.rhythm == rhythm)
        for label, rhythm in ((0, "N"), (1, "AFIB"))
    }

    # execute
    windows = mitdb.load_rhythm_windows(mitdb_dir, ["201"], window_s=10.0)

    # assert
    assert windows.class_names == ("N", "AF")
    assert windows.x.shape == (expected[0] + expected[1], 3600, 1)
    assert windows.x.dtype == np.float32
    assert dict(enumerate(windows.class_counts().tolist())) == expected
    assert set(windows.records()) == {"201"}


def test_a_record_without_af_gives_only_normal_windows(mitdb_dir: Path) -> None:
    # execute: 232 is sinus bradycardia throughout, 100 normal sinus rhythm
    windows = mitdb.load_rhythm_windows(mitdb_dir, ["100", "232"], window_s=10.0)

    # assert
    assert windows.class_counts().tolist() == [len(windows), 0]
    assert windows.records() == ["100"]


def test_af_records_split_across_ds1_and_ds2() -> None:
    # assert: the inter-patient split keeps AF on both sides, so it is patient-aware for AF too
    assert set(mitdb.AF_RECORDS) & set(mitdb.DS1) == {"201", "203"}
    assert set(mitdb.AF_RECORDS) & set(mitdb.DS2) == {"202", "210", "219", "221", "222"}


def test_rhythm_split_puts_af_patients_on_both_sides_evenly(mitdb_dir: Path) -> None:
    # prepare: the seven DS1/DS2 records with atrial fibrillation
    af_records = ("201", "202", "203", "210", "219", "221", "222")

    # execute
    windows = mitdb.load_rhythm_windows(mitdb_dir, af_records, window_s=10.0)

    # assert: patient-disjoint, every record on one side, AF windows about half on each
    assert not set(mitdb.RHYTHM_DS1) & set(mitdb.RHYTHM_DS2)
    assert sorted(mitdb.RHYTHM_DS1 + mitdb.RHYTHM_DS2) == sorted(mitdb.DS1 + mitdb.DS2)
    af = windows.y == windows.class_names.index("AF")
    train_af = int(np.sum(af & np.isin(windows.record, mitdb.RHYTHM_DS1)))
    test_af = int(np.sum(af & np.isin(windows.record, mitdb.RHYTHM_DS2)))
    assert (train_af, test_af) == (368, 368)
