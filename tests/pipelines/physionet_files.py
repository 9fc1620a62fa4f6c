"""Tiny PhysioNet databases written in the real formats: WFDB headers by hand, MATLAB v4 `val` by scipy.io.savemat."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LEADS_12 = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def write_cinc_record(folder: Path, name: str, val: np.ndarray) -> None:
    """A00001.hea / A00001.mat as distributed for the 2017 challenge (300 Hz, gain 1000/mV, MATLAB v4 'val')."""
    from scipy import io

    io.savemat(str(folder / f"{name}.mat"), {"val": val.astype(np.int16)[None, :]}, format="4")
    (folder / f"{name}.hea").write_text(
        f"{name} 1 300 {val.size} 05:05:15 1/05/2000 \n{name}.mat 16+24 1000/mV 16 0 {int(val[0])} 0 0 ECG\n"
    )


def write_lsad_record(folder: Path, name: str, val: np.ndarray, dx: str) -> None:
    """JS00001.hea / .mat as in LSAD: 12 leads, 500 Hz, gain 1000/mV, Dx codes in the comments."""
    folder.mkdir(parents=True, exist_ok=True)
    from scipy import io

    io.savemat(str(folder / f"{name}.mat"), {"val": val.astype(np.int16)}, format="4")
    lines = [f"{name} 12 500 {val.shape[1]}"]
    lines += [f"{name}.mat 16+24 1000/mV 16 0 {int(v[0])} 0 0 {lead}" for v, lead in zip(val, LEADS_12, strict=True)]
    lines += ["#Age: 59", "#Sex: Female", f"#Dx: {dx}", "#Rx: Unknown", "#Hx: Unknown", "#Sx: Unknown"]
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")
