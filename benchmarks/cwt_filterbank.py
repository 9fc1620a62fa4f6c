"""CWT speed: the precomputed FFT filter bank (pipelines.cwt) versus per-signal pywt.cwt, same run, same data.

Prints the time of each, the ratio, and the max abs difference of the coefficients.
Windows are real MIT-BIH MLII ECG when the database is found, synthetic noise otherwise (said in the output).

    nice -n 10 .venv/bin/python benchmarks/cwt_filterbank.py --signals 500 --length 3600
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pywt
from numpy.typing import NDArray

from pipelines import mitdb
from pipelines.cwt import _filter_bank, filter_bank

DEFAULT_MITDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "mitdb"


def windows(data_dir: Path, n: int, length: int) -> tuple[NDArray[np.float64], str]:
    """`n` consecutive non-overlapping windows from the records in `data_dir`, or noise when absent."""
    records = mitdb.available_records(data_dir) if data_dir.is_dir() else []
    if not records:
        return np.random.default_rng(0).standard_normal((n, length)), "synthetic Gaussian noise"
    out: list[NDArray[np.float64]] = []
    for record in records:
        signal = mitdb._read_lead(data_dir / record, mitdb.MIT_BIH_FS)
        usable = signal.size // length
        out.extend(signal[: usable * length].reshape(usable, length)[: n - len(out)])
        if len(out) >= n:
            break
    return np.stack(out), f"MIT-BIH MLII windows from records {records[0]}..{record}"


@dataclass(frozen=True)
class CwtTiming:
    wavelet: str
    pywt_s: float
    build_s: float
    apply_s: float
    max_abs_error: float

    @property
    def speed_up(self) -> float:
        """pywt time over the bank's build + apply time: the bank is built anew, not amortised."""
        return self.pywt_s / (self.build_s + self.apply_s)


def compare(x: NDArray[np.float64], scales: NDArray[np.float64], wavelet: str) -> CwtTiming:
    """Per-signal pywt.cwt and the filter bank on the same windows, one after the other."""
    started = time.perf_counter()
    expected = np.stack([pywt.cwt(row, scales, wavelet)[0] for row in x])
    pywt_s = time.perf_counter() - started
    _filter_bank.cache_clear()  # time a cold build, even where the process built this bank before
    started = time.perf_counter()
    bank = filter_bank(wavelet, scales, x.shape[-1])
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    coefs = bank.transform(x)
    apply_s = time.perf_counter() - started
    return CwtTiming(wavelet, pywt_s, build_s, apply_s, float(np.max(np.abs(coefs - expected))))


HEADER = f"{'wavelet':<14}{'pywt.cwt s':>12}{'bank build s':>14}{'bank apply s':>14}{'speed-up':>10}{'max abs err':>14}"


def row(t: CwtTiming) -> str:
    return f"{t.wavelet:<14}{t.pywt_s:>12.3f}{t.build_s:>14.3f}{t.apply_s:>14.3f}{t.speed_up:>9.1f}x{t.max_abs_error:>14.2e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_MITDB)
    parser.add_argument("--signals", type=int, default=200)
    parser.add_argument("--length", type=int, default=3600, help="samples per window (3600 = 10 s at 360 Hz)")
    parser.add_argument("--scales", type=int, default=32, help="geometric scales from 2 to 150")
    parser.add_argument("--wavelets", nargs="+", default=["morl", "cmor1.5-1.0"])
    args = parser.parse_args()

    x, source = windows(args.data, args.signals, args.length)
    scales = np.geomspace(2.0, 150.0, args.scales)
    print(f"{len(x)} signals x {args.length} samples, {args.scales} scales, data: {source}")
    print(HEADER)
    for wavelet in args.wavelets:
        print(row(compare(x, scales, wavelet)), flush=True)


if __name__ == "__main__":
    main()
