"""The beat model's DS1 cross-validation: its decision matches the exported model's, its score, and a run on
two small folds of real DS1 records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.beats_cv import (
    TOLERANCE,
    OutOfFold,
    Searched,
    decide,
    fold_matrices,
    grid,
    joined,
    judge,
    main,
    nested,
    offsets_vector,
    shortfall,
    worst_margin,
)
from edgelab.metrics import DE_CHAZAL_2004
from pipelines.mitdb import AAMI_CLASSES, DS2


def test_decide_matches_the_exported_ensemble_with_its_logit_offsets() -> None:
    # prepare: an untrained two-member ensemble, its members' log-probabilities, and offsets
    pytest.importorskip("keras", reason="needs pip install 'edgelab[train]'")
    from pipelines.models import add_logit_offsets, build_cnn_1d, ensemble_members

    model = build_cnn_1d(32, 5, extra_features=3, width=4, members=2)
    x = np.random.default_rng(0).normal(size=(200, 35, 1)).astype(np.float32)
    probs = np.stack([m.predict(x, verbose=0) for m in ensemble_members(model)], axis=1)
    offsets = np.array([0.0, -1.0, 0.5, 2.0, 0.0])

    # execute
    decided = decide(probs, offsets)
    add_logit_offsets(model, offsets)
    exported = np.argmax(model.predict(x, verbose=0), axis=1)

    # assert: the offsets change decisions, and the search's decision is the exported model's
    assert (decided != decide(probs, np.zeros(5))).any()
    np.testing.assert_array_equal(decided, exported)


def test_shortfall_sums_the_points_below_de_chazal() -> None:
    met = {name: (se + 0.01, ppv + 0.001) for name, (se, ppv) in DE_CHAZAL_2004.items()}
    assert shortfall(met) == 0.0

    short = dict(met, SVEB=(0.709, 0.335), VEB=(0.777, float("nan")))  # Se 5 and +P 5 points short, VEB never called
    assert shortfall(short) == pytest.approx(5.0 + 5.0 + 81.9)


def test_worst_margin_names_the_figure_furthest_below_de_chazal() -> None:
    met = {name: (se + 0.01, ppv + 0.001) for name, (se, ppv) in DE_CHAZAL_2004.items()}
    assert worst_margin(met) == (pytest.approx(0.1), "N +P")
    assert worst_margin(dict(met, SVEB=(0.709, 0.375))) == (pytest.approx(-5.0), "SVEB Se")
    assert worst_margin(dict(met, VEB=(0.8, float("nan")))) == (pytest.approx(-81.9), "VEB +P")  # never called


def test_offsets_default_to_zero_per_class() -> None:
    np.testing.assert_array_equal(offsets_vector({"V": 0.5, "F": 2.0}, AAMI_CLASSES), [0.0, 0.0, 0.5, 2.0, 0.0])


def test_nested_decides_each_fold_with_offsets_chosen_on_the_others() -> None:
    # prepare: two offset combinations over two folds, each perfect on one fold and calling every beat N on the other
    perfect = np.diag([100, 10, 10, 5, 1])
    all_n = np.zeros((5, 5), dtype=np.int64)
    all_n[:, 0] = [100, 10, 10, 5, 1]
    combos = [{"V": 0.5}, {"F": 2.0}]
    matrices = np.array([[perfect, all_n], [all_n, perfect]])

    # execute
    measured, chosen = nested(combos, matrices, AAMI_CLASSES)

    # assert: fold 0 takes the combination best on fold 1 and the reverse, so the held-out folds score what
    # the choice does on patients it did not see (every beat called N), not the perfect in-sample figures
    assert chosen == [{"F": 2.0}, {"V": 0.5}]
    assert measured["SVEB"][0] == 0.0 and measured["VEB"][0] == 0.0 and measured["N"] == (1.0, pytest.approx(200 / 252))


def _searched(shift: dict[str, tuple[float, float]], nested_shift: float) -> Searched:
    """de Chazal's figures moved by `shift` (points per class, Se and +P); nested every figure `nested_shift` off."""
    measured = {
        name: (se + shift.get(name, (0.0, 0.0))[0] / 100, ppv + shift.get(name, (0.0, 0.0))[1] / 100)
        for name, (se, ppv) in DE_CHAZAL_2004.items()
    }
    off = {name: (se + nested_shift / 100, ppv + nested_shift / 100) for name, (se, ppv) in DE_CHAZAL_2004.items()}
    return Searched({}, measured, off)


def test_a_candidate_is_adopted_only_if_both_shortfalls_fall_and_no_figure_falls() -> None:
    # prepare: a baseline 6 points short in N Se (nested 3 points short in each figure), and candidates
    baseline = _searched({"N": (-6.0, 0.0)}, -3.0)
    better = _searched({"N": (-3.0, 0.0), "VEB": (0.0, -TOLERANCE)}, -2.0)
    trades = _searched({"N": (0.0, 0.0), "SVEB": (-4.0, 0.0)}, -2.0)  # shortfall 4 < 6, but SVEB Se falls 4
    flattered = _searched({"N": (-3.0, 0.0)}, -4.0)  # its offsets fit DS1 better, patients it did not see worse
    silent = _searched({"N": (-3.0, 0.0), "VEB": (0.0, float("nan"))}, -2.0)  # never calls V

    # execute
    verdicts = {name: judge(c, baseline) for name, c in (("better", better), ("trades", trades))}
    verdicts |= {"flattered": judge(flattered, baseline), "silent": judge(silent, baseline)}

    # assert: each reason names the figure and both values; a fall within the tolerance is allowed
    assert verdicts["better"] == []
    assert verdicts["trades"] == ["SVEB Se 71.9, 4.0 below 75.9"]
    assert verdicts["flattered"] == ["nested shortfall 24.0, not below 18.0"]
    assert any(reason.startswith("VEB +P nan") for reason in verdicts["silent"])


def _sure_run(folds: tuple[tuple[str, ...], ...] | None) -> OutOfFold:
    """Six beats of three records, one member sure of the true class."""
    y = np.array([0, 1, 2, 0, 0, 3])
    log_probs = np.log(np.full((6, 1, 5), 1e-6))
    log_probs[np.arange(6), 0, y] = 0.0
    records = np.array(["101", "101", "106", "108", "108", "108"])
    return OutOfFold(log_probs.astype(np.float32), y, records, AAMI_CLASSES, 0, folds)


def test_fold_matrices_count_each_fold_and_refuse_records_outside_the_folds() -> None:
    # prepare: six beats of three records, one member that is sure of the true class
    run = _sure_run(None)

    # execute
    matrices = fold_matrices(run, [("101", "106"), ("108",)], grid()[:2])

    # assert: one matrix per combination and fold, each beat counted once in its fold
    assert matrices.shape == (2, 2, 5, 5)
    np.testing.assert_array_equal(matrices.sum(axis=(2, 3)), [[3, 3], [3, 3]])
    assert matrices[0, 1, 3, 3] == 1 and matrices[0, 1, 0, 0] == 2
    with pytest.raises(ValueError, match=r"records in no fold: \['108'\]"):
        fold_matrices(run, [("101", "106")], grid()[:1])


def test_searched_of_matrices_decides_over_the_whole_grid_and_refuses_a_partial_one() -> None:
    # prepare: the grid's fold matrices of one stored run, as report returns them
    folds = (("101", "106"), ("108",))
    run = _sure_run(folds)
    matrices = fold_matrices(run, folds, grid())

    # execute
    reused = Searched.of_matrices(matrices, run.class_names)

    # assert: a member sure of every true class scores every figure perfectly at its best offsets and in the
    # nested check (no offset on the grid outweighs its certainty); matrices of another grid are refused
    assert reused.measured == reused.nested == {name: (1.0, 1.0) for name in DE_CHAZAL_2004}
    with pytest.raises(ValueError, match="the grid has"):
        Searched.of_matrices(matrices[:-1], run.class_names)


def test_stored_runs_keep_their_folds_and_summarize_refuses_other_folds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # prepare: a run stored with its two folds, and one stored the old way (no folds) beside it
    folds = (("101", "106"), ("108",))
    _sure_run(folds).save(tmp_path / "oof_s0.npz")
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    old = _sure_run(None)
    np.savez_compressed(
        legacy / "oof_s0.npz", log_probs=old.log_probs, y=old.y, record=old.record, class_names=old.class_names, seed=0
    )

    # execute
    loaded = OutOfFold.load(tmp_path / "oof_s0.npz")
    summarized = main(["--summarize", str(tmp_path), "--group", "1"])
    printed = capsys.readouterr().out
    refused = main(["--summarize", str(tmp_path), "--group", "1", "--folds", "101,106,108"])
    error = capsys.readouterr().err

    # assert: the folds come back, the summary uses them without --folds (each fold held out once: the
    # nested line names two folds' offsets), other folds are refused, and old files still load (no folds)
    assert loaded.folds == folds
    assert summarized == 0 and printed.split("nested:")[1].count("offsets per fold:") == 1
    assert printed.split("offsets per fold: ")[1].count(",") == 1
    assert refused == 2 and "different folds" in error
    assert OutOfFold.load(legacy / "oof_s0.npz").folds is None


def test_summarize_judges_stored_predictions_against_a_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # prepare: a baseline sure of every class, a candidate that calls the fusion beat N, and a baseline of another seed
    folds = (("101", "106"), ("108",))
    (tmp_path / "base").mkdir()
    (tmp_path / "cand").mkdir()
    (tmp_path / "other").mkdir()
    _sure_run(folds).save(tmp_path / "base" / "oof_s0.npz")
    worse = _sure_run(folds)
    worse.log_probs[5, 0] = worse.log_probs[0, 0]
    worse.save(tmp_path / "cand" / "oof_s0.npz")
    other = _sure_run(folds)
    OutOfFold(other.log_probs, other.y, other.record, other.class_names, 1, folds).save(
        tmp_path / "other" / "oof_s1.npz"
    )

    # execute
    same = main(["--summarize", str(tmp_path / "base"), "--against", str(tmp_path / "base"), "--group", "1"])
    printed_same = capsys.readouterr().out
    judged = main(["--summarize", str(tmp_path / "cand"), "--against", str(tmp_path / "base"), "--group", "1"])
    printed = capsys.readouterr().out
    refused = main(["--summarize", str(tmp_path / "cand"), "--against", str(tmp_path / "other")])
    error = capsys.readouterr().err
    (tmp_path / "refolded").mkdir()
    _sure_run((("101",), ("106", "108"))).save(tmp_path / "refolded" / "oof_s0.npz")
    refolded = main(["--summarize", str(tmp_path / "cand"), "--against", str(tmp_path / "refolded")])
    refolded_error = capsys.readouterr().err

    # assert: a model is not adopted over itself (no shortfall is lower); the candidate's N +P falls (the F
    # beat it calls N), and other seeds or folds cannot judge it
    assert same == 0 and "verdict: reject (shortfall 0.0, not below 0.0; nested shortfall 0.0" in printed_same
    assert "closest to all six (all groups pooled, the largest worst margin): none: " in printed_same
    assert "worst N +P +0.8\n" in printed_same  # every figure met: 100 against 99.2 the nearest
    assert "worst N +P -24.2 (no offsets on the grid meet all six)" in printed
    assert judged == 0 and "candidate: best offsets" in printed and "N +P 75.0, 25.0 below 100.0" in printed
    assert refused == 2 and "the baseline holds seeds [1], these runs [0]" in error
    assert refolded == 2 and "the baseline was made on other folds" in refolded_error


@pytest.mark.slow
@pytest.mark.integration
def test_two_folds_store_out_of_fold_predictions_and_report_them(
    mitdb_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # prepare: four DS1 records in two folds, one epoch on a few hundred beats
    pytest.importorskip("tensorflow", reason="needs pip install 'edgelab[train]'")
    args = ["--data-dir", str(mitdb_dir), "--folds", "101,106", "108,119", "--epochs", "1", "--max-train", "400"]

    # execute
    main([*args, "--seeds", "0", "1", "--group", "2", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    main(["--summarize", str(tmp_path), "--group", "2"])
    reprinted = capsys.readouterr().out

    # assert: each beat of the four records predicted once per seed, by every member, as probabilities
    runs = [OutOfFold.load(tmp_path / f"oof_s{seed}.npz") for seed in (0, 1)]
    assert [r.seed for r in runs] == [0, 1] and runs[0].folds == (("101", "106"), ("108", "119"))
    assert set(runs[0].record) == {"101", "106", "108", "119"}
    assert runs[0].log_probs.shape == (len(runs[0].y), 3, 5)
    np.testing.assert_allclose(np.exp(runs[0].log_probs).sum(axis=2), 1.0, atol=1e-4)
    assert "seeds 0,1, shipped S -0.5 V -0.5: N " in printed
    assert "best offsets for all 1 group(s) together" in printed
    assert "nested: each fold decided with the offsets best on the other folds" in printed
    assert "seeds 0,1: N " in printed.split("nested:")[1]
    assert reprinted in printed  # the summary from the stored files is the run's own report


def test_folds_outside_ds1_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="each DS1 record at most once"):
        main(["--folds", f"101,{DS2[0]}", "--out", str(tmp_path)])


def test_join_seeds_judges_stored_members_as_one_larger_ensemble(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # prepare: two seeds of one member each, the second wrong on the fusion beat, stored on the same folds
    folds = (("101", "106"), ("108",))
    for seed in (0, 1):
        run = _sure_run(folds)
        if seed:
            run.log_probs[5, 0] = run.log_probs[0, 0]
        OutOfFold(run.log_probs, run.y, run.record, run.class_names, seed, folds).save(tmp_path / f"oof_s{seed}.npz")
    runs = [OutOfFold.load(tmp_path / f"oof_s{seed}.npz") for seed in (0, 1)]

    # execute
    (both,) = joined(runs, 2)
    rc = main(["--summarize", str(tmp_path), "--join-seeds", "2", "--group", "1", "--against", str(tmp_path)])
    printed = capsys.readouterr().out

    # assert: one two-member ensemble per beat, judged against the baseline of the same seeds
    assert both.log_probs.shape == (6, 2, 5) and both.seed == 0
    np.testing.assert_array_equal(both.log_probs[:, 1], runs[1].log_probs[:, 0])
    assert rc == 0 and "2-CNN ensembles, named by their first seed" in printed
    assert "seeds 0, no offsets: N " in printed and "seeds 1," not in printed
    assert "verdict: " in printed
    with pytest.raises(ValueError, match="2 seeds do not split into ensembles of 3"):
        joined(runs, 3)
    with pytest.raises(ValueError, match=r"seeds \[0, 1\] were not made on the same folds"):
        joined([runs[0], OutOfFold(runs[1].log_probs, runs[1].y, runs[1].record, AAMI_CLASSES, 1, None)], 2)
    with pytest.raises(SystemExit):
        main(["--join-seeds", "2", "--out", str(tmp_path)])
