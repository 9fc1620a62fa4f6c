"""The pipelines accuracy benchmark on a slice of MIT-BIH, so the script cannot rot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.pipelines_accuracy import main, parse_pipeline


def test_pipeline_specs_take_optional_epochs() -> None:
    assert parse_pipeline("mitdb-af-bilstm:20", 10) == ("mitdb-af-bilstm", 20)
    assert parse_pipeline("mitdb-af-bilstm", 10) == ("mitdb-af-bilstm", 10)
    with pytest.raises(SystemExit, match=r"unknown pipeline 'nope'; known: .*mitdb-beats-1d"):
        parse_pipeline("nope:3", 10)


@pytest.mark.slow
@pytest.mark.integration
def test_one_pipeline_row_and_the_cwt_comparison(
    mitdb_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # prepare
    pytest.importorskip("tensorflow", reason="needs pip install 'edgelab[train]'")
    out = tmp_path / "rows.jsonl"
    argv = ["--data", str(mitdb_dir), "--pipelines", "mitdb-beats-1d:1", "--splits", "random", "--records", "100"]
    argv += ["--max-train", "256", "--cwt-signals", "3", "--out", str(out)]

    # execute
    main(argv)

    # assert: one table row, its JSON line with the full evaluation, and the CWT row
    printed = capsys.readouterr().out.splitlines()
    (row,) = [line for line in printed if line.startswith("mitdb-beats-1d")]
    assert row.split()[1] == "random"
    (stored,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert stored["pipeline"] == "mitdb-beats-1d" and stored["epochs"] == 1
    assert len(stored["evaluation"]["confusion"]) == len(stored["class_names"]) ** 2
    (cwt,) = [line for line in printed if line.startswith("morl")]
    assert float(cwt.split()[-1]) < 1e-9  # max abs error of the filter bank against pywt.cwt
