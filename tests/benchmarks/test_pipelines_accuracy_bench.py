"""The pipelines accuracy benchmark: its summary on stored runs, and a --quick run on two MIT-BIH records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.pipelines_accuracy import (
    DEFAULT_PIPELINES,
    PUBLISHED,
    main,
    mean_sd,
    parse_pipeline,
    patient_intervals,
    print_tables,
    summarize,
)
from pipelines.models import BACKBONES
from pipelines.registry import PIPELINES


def test_pipeline_specs_take_optional_epochs_else_the_pipelines_own() -> None:
    assert parse_pipeline("mitdb-af-bilstm:30", 10) == ("mitdb-af-bilstm", 30)
    assert parse_pipeline("mitdb-af-bilstm", 10) == ("mitdb-af-bilstm", 10)
    assert parse_pipeline("mitdb-af-bilstm") == ("mitdb-af-bilstm", 20)
    with pytest.raises(SystemExit, match=r"unknown pipeline\(s\) nope; known: .*mitdb-beats-1d"):
        parse_pipeline("nope:3", 10)


def test_every_default_pipeline_has_a_published_figure_saying_what_it_is() -> None:
    for spec in DEFAULT_PIPELINES:
        published = PUBLISHED[spec.partition(":")[0]]
        assert published.figure and published.metric and published.data and published.split


def test_defaults_are_every_mitdb_pipeline_but_the_image_backbones() -> None:
    # prepare
    backbones = {f"mitdb-beats-image-{b}{suffix}" for b in BACKBONES for suffix in ("", "-paper")}

    # execute
    defaults = {spec.partition(":")[0] for spec in DEFAULT_PIPELINES}

    # assert
    assert defaults == {name for name in PIPELINES if "mitdb" in name} - backbones


def test_mean_and_sample_sd_over_seeds() -> None:
    assert mean_sd([0.5, 0.7, 0.9]) == "0.700±0.200"
    assert mean_sd([0.5]) == "0.500"
    assert mean_sd([]) == "-"


def _run(seed: int, split: str, accuracy: float, af_support: int = 10) -> dict[str, Any]:
    return {
        "pipeline": "mitdb-af-bilstm",
        "split": split,
        "seed": seed,
        "epochs": 20,
        "train_beats": 100,
        "test_beats": 50,
        "evaluation": {
            "accuracy": accuracy,
            "macro_f1": accuracy - 0.1,
            "classes": [
                {"name": "N", "support": 40, "precision": 0.9, "recall": accuracy},
                {"name": "AF", "support": af_support, "precision": 0.5, "recall": 0.6},
            ],
        },
    }


def test_runs_are_summarised_per_pipeline_and_split_with_per_class_se_and_ppv() -> None:
    # prepare: three seeds on one split, one on the other whose test side has no AF
    rows = [_run(s, "inter-patient", a) for s, a in ((2, 0.7), (0, 0.8), (1, 0.9))] + [_run(0, "random", 0.95, 0)]
    rows[0]["train_beats"] = 90  # its validation hold-out took more

    # execute
    patient, random = summarize(rows)

    # assert
    assert (patient.split, patient.seeds, patient.accuracy, patient.macro_f1) == (
        "inter-patient",
        [0, 1, 2],
        "0.800±0.100",
        "0.700±0.100",
    )
    assert (patient.train, random.train) == ("90-100", "100")
    assert patient.classes == ["N 0.80±0.10 / 0.90±0.00", "AF 0.60±0.00 / 0.50±0.00"]
    assert random.classes == ["N 0.95 / 0.90"]  # AF absent from the test side: left out, not zero


def test_runs_trained_differently_are_never_averaged_together(capsys: pytest.CaptureFixture[str]) -> None:
    # prepare: one pipeline and split, trained weighted on every example, weighted on a cap, unweighted on
    # the same cap; rows stored before the cap was recorded count as weighted and uncapped
    rows = [
        _run(0, "random", 0.8),
        {**_run(1, "random", 0.9), "class_weights": True, "max_train": None},
        {**_run(0, "random", 0.7), "class_weights": True, "max_train": 8000},
        {**_run(0, "random", 0.95), "class_weights": False, "max_train": 8000},
    ]

    # execute
    summaries = summarize(rows)
    print_tables(summaries)
    printed = capsys.readouterr().out

    # assert
    assert [(s.seeds, s.accuracy, s.unweighted) for s in summaries] == [
        ([0, 1], "0.850±0.071", False),
        ([0], "0.700", False),
        ([0], "0.950", True),
    ]
    assert "| `mitdb-af-bilstm` unweighted | random | 0 |" in printed
    assert printed.count("| `mitdb-af-bilstm` | random |") == 2


def test_aami_runs_also_get_ec57_sveb_and_veb() -> None:
    # prepare: rows N, S, V, F, Q (reference) x columns (predicted); the seeds differ in the S column only,
    # the third labelling no beat S
    names = ["N", "S", "V", "F", "Q"]
    confusions = [
        [[90, 5, 5, 0, 0], [2, 8, 0, 0, 0], [1, 0, 9, 0, 0], [0, 0, 4, 6, 0], [0, 0, 1, 0, 1]],
        [[90, 5, 5, 0, 0], [6, 4, 0, 0, 0], [1, 0, 9, 0, 0], [0, 0, 4, 6, 0], [0, 0, 1, 0, 1]],
        [[95, 0, 5, 0, 0], [10, 0, 0, 0, 0], [1, 0, 9, 0, 0], [0, 0, 4, 6, 0], [0, 0, 1, 0, 1]],
    ]
    rows = [
        {
            **_run(seed, "inter-patient", 0.9),
            "pipeline": "mitdb-beats-image",
            "evaluation": {
                "accuracy": 0.9,
                "macro_f1": 0.5,
                "classes": [{"name": n, "support": 1, "precision": 0.5, "recall": 0.5} for n in names],
                "confusion": [n for row in confusion for n in row],
            },
        }
        for seed, confusion in enumerate(confusions)
    ]

    # execute
    (summary,) = summarize(rows)
    (bilstm,) = summarize([_run(0, "random", 0.9)])

    # assert: VEB +P leaves out the F and Q beats labelled V (9 / (9 + 5)); SVEB +P 8/13, 4/9 and 0 (none labelled)
    assert summary.ec57 == ["SVEB 0.40±0.40 / 0.35±0.32", "VEB 0.90±0.00 / 0.64±0.00"]
    assert bilstm.ec57 == []
    assert summary.ec57_without_sveb_heavy_record == []  # no per-record confusions: not on DS2's records


def test_inter_patient_aami_runs_also_get_ec57_without_record_232() -> None:
    # prepare: one run on two records; 232 holds 8 of the 10 S beats and no false S
    names = ["N", "S", "V", "F", "Q"]
    record_232 = [[40, 0, 0, 0, 0], [0, 8, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    record_100 = [[50, 4, 1, 0, 0], [1, 1, 0, 0, 0], [0, 0, 9, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]]
    run = {
        **_run(0, "inter-patient", 0.9),
        "pipeline": "mitdb-beats-1d",
        "evaluation": {
            "accuracy": 0.9,
            "macro_f1": 0.5,
            "classes": [{"name": n, "support": 1, "precision": 0.5, "recall": 0.5} for n in names],
            "confusion": [a + b for r1, r2 in zip(record_232, record_100) for a, b in zip(r1, r2)],
        },
        "record_confusions": {"232": np.ravel(record_232).tolist(), "100": np.ravel(record_100).tolist()},
    }

    # execute
    (summary,) = summarize([run])

    # assert: SVEB 9/10 found, +P 9/13; without 232, 1/2 and 1/5
    assert summary.ec57 == ["SVEB 0.90 / 0.69", "VEB 1.00 / 0.90"]
    assert summary.ec57_without_sveb_heavy_record == ["SVEB 0.50 / 0.20", "VEB 1.00 / 0.90"]


def _beats_run(seed: int, split: str, records: dict[str, list[list[int]]]) -> dict[str, Any]:
    names = ["N", "S", "V", "F", "Q"]
    total = np.sum([np.asarray(m) for m in records.values()], axis=0)
    return {
        **_run(seed, split, 0.9),
        "pipeline": "mitdb-beats-1d",
        "evaluation": {
            "accuracy": 0.9,
            "macro_f1": 0.5,
            "classes": [{"name": n, "support": 1, "precision": 0.5, "recall": 0.5} for n in names],
            "confusion": total.ravel().tolist(),
        },
        "record_confusions": {r: np.ravel(m).tolist() for r, m in records.items()},
    }


def test_patient_intervals_resample_the_test_records_around_the_seeds_mean(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # prepare: two seeds on three DS2-like records; record 213 holds every beat called N wrongly
    names = ["N", "S", "V", "F", "Q"]
    clean = [[50, 0, 0, 0, 0], [0, 5, 0, 0, 0], [0, 0, 5, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    fusion = [[40, 0, 0, 10, 0], [0, 5, 0, 0, 0], [0, 0, 5, 0, 0], [10, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    runs = [_beats_run(seed, "inter-patient", {"100": clean, "213": fusion, "232": clean}) for seed in (0, 1)]
    same = [_beats_run(0, "inter-patient", {"100": clean, "232": clean})]

    # execute
    intervals = patient_intervals(runs, names)
    alike = patient_intervals(same, names)
    print_tables(summarize(runs))
    printed = capsys.readouterr().out

    # assert: N Se and +P 140/150 on the three; a draw without 213 gives 100, 213 thrice (1 in 27) 40/50: the ends
    assert intervals[0] == "N Se 93.3 [80.0, 100.0] / +P 93.3 [80.0, 100.0]"
    assert intervals[1:] == [f"{c} Se 100.0 [100.0, 100.0] / +P 100.0 [100.0, 100.0]" for c in ("SVEB", "VEB")]
    assert alike[0] == "N Se 100.0 [100.0, 100.0] / +P 100.0 [100.0, 100.0]"  # identical patients: no spread
    assert f"draws of the test patients, 95%: {intervals[0]}" in printed


def test_patient_intervals_only_for_patient_disjoint_aami_runs_with_per_record_confusions() -> None:
    names = ["N", "S", "V", "F", "Q"]
    clean = [[50, 0, 0, 0, 0], [0, 5, 0, 0, 0], [0, 0, 5, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    two = {"100": clean, "232": clean}
    assert patient_intervals([_beats_run(0, "random", two)], names) == []  # records on both sides
    assert patient_intervals([_beats_run(0, "inter-patient", {"100": clean})], names) == []  # one record
    unlike = [_beats_run(0, "inter-patient", two), _beats_run(1, "inter-patient", {"100": clean, "213": clean})]
    assert patient_intervals(unlike, names) == []  # seeds tested on different records
    assert patient_intervals([_run(0, "inter-patient", 0.9)], ["N", "AF"]) == []  # not AAMI classes


@pytest.mark.slow
@pytest.mark.integration
def test_quick_run_prints_seeds_per_class_and_the_published_figure(
    mitdb_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # prepare: --quick is two seeds of the BiLSTM on records 201 (DS1) and 202 (DS2)
    pytest.importorskip("tensorflow", reason="needs pip install 'edgelab[train]'")
    out = tmp_path / "rows.jsonl"

    # execute
    main(["--quick", "--data", str(mitdb_dir), "--splits", "inter-patient", "--out", str(out)])
    printed = capsys.readouterr().out.splitlines()
    main(["--summarize", str(out)])
    reprinted = capsys.readouterr().out.splitlines()

    # assert: one JSON line per seed, a Markdown row with mean ± sd, Se/+P per class and the figure's provenance
    stored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["pipeline"], r["seed"], r["split"]) for r in stored] == [
        ("mitdb-af-bilstm", 0, "inter-patient"),
        ("mitdb-af-bilstm", 1, "inter-patient"),
    ]
    assert all(any(note.startswith("kept epoch") for note in r["notes"]) for r in stored)
    (row,) = [line for line in printed if line.startswith("| `mitdb-af-bilstm`")]
    cells = [c.strip() for c in row.split("|")]
    assert cells[2:4] == ["inter-patient", "0,1"]
    assert "±" in cells[6] and cells[8].startswith("N ") and "; AF " in cells[8]
    assert cells[9] == "-"  # no EC57 figures for N vs AF
    assert "PhysioNet/CinC 2017" in cells[10]
    assert row in reprinted  # --summarize rebuilds the same table from the stored runs
    (cwt,) = [line for line in printed if line.startswith("morl")]
    assert float(cwt.split()[-1]) < 1e-9  # max abs error of the filter bank against pywt.cwt
