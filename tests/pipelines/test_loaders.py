"""CinC 2017 and LSAD loaders on tiny databases written here in the real formats (hand-written .hea, savemat .mat)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgelab.errors import ConfigError
from pipelines import loaders
from tests.pipelines.physionet_files import LEADS_12, write_cinc_record, write_lsad_record

io = pytest.importorskip("scipy.io", reason="needs pip install 'edgelab[train]'")
pytest.importorskip("wfdb", reason="needs pip install 'edgelab[train]'")


@pytest.fixture
def cinc_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("A00001", "A00002", "A00003"):
        write_cinc_record(tmp_path, name, rng.integers(-500, 500, size=9000))
    (tmp_path / "REFERENCE.csv").write_text("A00001,N\nA00002,A\nA00003,~\n")
    return tmp_path


def test_cinc2017_reads_millivolts_and_labels(cinc_dir: Path) -> None:
    # prepare
    raw = io.loadmat(str(cinc_dir / "A00002.mat"))["val"][0]

    # execute
    records = loaders.load_cinc2017(cinc_dir)

    # assert
    assert [(r.name, r.label) for r in records] == [("A00001", "Normal"), ("A00002", "AF"), ("A00003", "Noisy")]
    assert records[1].fs == 300.0
    assert records[1].signal.shape == (9000, 1)
    assert records[1].leads == ("ECG",)
    np.testing.assert_allclose(records[1].lead("ecg"), raw / 1000.0)


def test_cinc2017_filters_labels(cinc_dir: Path) -> None:
    # execute
    records = loaders.load_cinc2017(cinc_dir, labels=("N", "A"))

    # assert
    assert [r.label for r in records] == ["Normal", "AF"]


@pytest.mark.parametrize(
    ("content", "message"), [(None, "no REFERENCE.csv"), ("A00001,X\n", "line 1"), ("A00001\n", "line 1")]
)
def test_cinc2017_bad_reference_is_a_config_error(tmp_path: Path, content: str | None, message: str) -> None:
    # prepare
    if content is not None:
        (tmp_path / "REFERENCE.csv").write_text(content)

    # execute / assert
    with pytest.raises(ConfigError, match=message):
        loaders.load_cinc2017(tmp_path)


def test_cinc2017_missing_signal_file_is_named(cinc_dir: Path) -> None:
    # prepare
    (cinc_dir / "A00003.mat").unlink()

    # execute / assert
    with pytest.raises(FileNotFoundError, match=r"A00003\.mat"):
        loaders.load_cinc2017(cinc_dir)


def test_lsad_groups_dx_codes_into_rhythms(tmp_path: Path) -> None:
    # prepare: nested like WFDBRecords/01/010/; one record with two groups, one with no rhythm code
    rng = np.random.default_rng(1)
    folder = tmp_path / "WFDBRecords" / "01" / "010"
    dx = {
        "JS00001": "164889003,59118001",  # AFIB + RBBB -> AFIB
        "JS00002": "426177001",  # SBRAD
        "JS00003": "426783006,427084000",  # SR and ST: ambiguous, skipped
        "JS00004": "59118001",  # RBBB only: no rhythm, skipped
        "JS00005": "427084000",  # sinus tachycardia -> GSVT
    }
    for name, codes in dx.items():
        write_lsad_record(folder, name, rng.integers(-300, 300, size=(12, 5000)), codes)
    lead_ii = io.loadmat(str(folder / "JS00002.mat"))["val"][1]

    # execute
    records = loaders.load_lsad(tmp_path)

    # assert
    assert [(r.name, r.label) for r in records] == [("JS00001", "AFIB"), ("JS00002", "SBRAD"), ("JS00005", "GSVT")]
    assert records[0].codes == ("164889003", "59118001")
    assert records[1].fs == 500.0
    assert records[1].signal.shape == (5000, 12)
    assert records[1].leads == LEADS_12
    np.testing.assert_allclose(records[1].lead("II"), lead_ii / 1000.0)
    assert len(loaders.load_lsad(tmp_path, limit=2)) == 2


def test_dx_codes_and_groups() -> None:
    # execute / assert
    assert loaders.dx_codes(["Age: 1", "Dx: 426783006, 164890007 "]) == ("426783006", "164890007")
    assert loaders.dx_codes(["Age: 1"]) == ()
    assert loaders.rhythm_group(["164890007"]) == "AFIB"  # flutter joins fibrillation
    assert loaders.rhythm_group(["426783006", "426177001"]) is None


def test_lsad_without_headers_is_a_config_error(tmp_path: Path) -> None:
    # execute / assert
    with pytest.raises(ConfigError, match=r"no \.hea"):
        loaders.load_lsad(tmp_path)
