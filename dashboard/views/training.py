"""Training: stored runs (accuracy, per-class precision/recall/F1, confusion) and a form that trains more
on the coordinator (StartTraining: its MIT-BIH dir, its Ray, several runs in parallel)."""

from __future__ import annotations

import streamlit as st

from dashboard import plots
from dashboard.config import DashboardConfig
from dashboard.data import classes_frame, display_training, parse_seeds, training_frame
from dashboard.ui import config, control_client, coordinator_error, mitdb_footer, store_if_any
from edgelab.domain import CLASS_WEIGHTS, TrainingConfig, TrainingRun
from edgelab.errors import EdgeLabError
from pipelines.base import SPLITS
from pipelines.registry import PIPELINES  # names and descriptions only: no TensorFlow is imported

PROGRESS_REFRESH_S = 2.0
STARTED_KEY = "started_training_run_ids"
DEFAULT_PIPELINE = "mitdb-beats-1d"


def _label(run: TrainingRun) -> str:
    return f"{run.pipeline} seed {run.config.seed} ({run.run_id})"


def _evaluation(runs: list[TrainingRun]) -> None:
    succeeded = {r.run_id: r for r in runs if r.summary is not None}
    if not succeeded:
        return
    st.subheader("Evaluation on the test set")
    run = succeeded[
        st.selectbox("Run", list(succeeded), format_func=lambda i: _label(succeeded[i]), key="training_run")
    ]
    assert run.summary is not None
    report = run.summary.evaluation
    columns = st.columns(4)
    columns[0].metric("accuracy", f"{report.accuracy:.2%}")
    columns[1].metric("macro F1", f"{report.macro_f1:.3f}")
    columns[2].metric("test beats", f"{run.summary.test_beats:,}")
    columns[3].metric("split", run.summary.split)
    left, right = st.columns(2)
    left.dataframe(classes_frame(report), hide_index=True)
    right.plotly_chart(plots.confusion_heatmap(report, f"Confusion matrix, {run.pipeline} seed {run.config.seed}"))
    for note in run.summary.notes:
        st.caption(note)
    stored = [("ONNX model", run.model_sha256), ("test set", run.dataset_sha256), ("SavedModel", run.savedmodel_sha256)]
    st.caption("; ".join(f"{what} sha256 {sha or 'not stored'}" for what, sha in stored))


def _launch(cfg: DashboardConfig) -> None:
    st.subheader("Train on the coordinator")
    pipelines = st.multiselect("Pipelines", sorted(PIPELINES), default=[DEFAULT_PIPELINE], key="train_pipelines")
    left, right = st.columns(2)
    seeds_text = left.text_input("Seeds", value="0", help="Comma-separated: one run per pipeline x seed.")
    split = right.selectbox("Split", SPLITS, help="inter-patient (DS1/DS2, honest) or random (leaks patients)")
    epochs = left.number_input("Epochs (0: each pipeline's own)", min_value=0, value=0)
    batch_size = right.number_input("Batch size (0: each pipeline's own)", min_value=0, value=0)
    max_train_beats = left.number_input("Max training beats (0: all)", min_value=0, value=0)
    class_weights = right.selectbox(
        "Class weights",
        ["", *CLASS_WEIGHTS],
        format_func=lambda w: w or "each pipeline's own",
        help="balanced (capped) class weights in the loss, or none (the plain loss)",
    )
    records = st.text_input("Records (empty: every record in the coordinator's MIT-BIH dir)", placeholder="100,119")
    try:
        seeds = parse_seeds(seeds_text)
    except ValueError as exc:
        st.error(str(exc))
        seeds = []
    if pipelines:
        st.caption("Own budgets: " + "; ".join(f"{name} {PIPELINES[name].budget}" for name in pipelines))
    count = len(pipelines) * len(seeds)
    if not st.button(f"Train {count} run(s)", type="primary", disabled=not count):
        return
    training = TrainingConfig(
        split=str(split),
        epochs=int(epochs),
        batch_size=int(batch_size),
        seed=seeds[0],
        records=[r for r in records.replace(" ", "").split(",") if r],
        max_train_beats=int(max_train_beats),
        class_weights=str(class_weights),
    )
    try:
        with control_client(cfg) as client:
            run_ids = client.start_training(pipelines, training, seeds)
    except EdgeLabError as exc:
        coordinator_error(cfg, exc)
        return
    st.session_state[STARTED_KEY] = st.session_state.get(STARTED_KEY, []) + run_ids
    st.success(f"queued {len(run_ids)} training run(s): {' '.join(run_ids)}")


@st.fragment(run_every=PROGRESS_REFRESH_S)
def _progress(cfg: DashboardConfig, run_ids: list[str]) -> None:
    try:
        with control_client(cfg) as client:
            runs = [client.get_training_run(run_id) for run_id in run_ids]
    except EdgeLabError as exc:
        st.warning(f"progress unavailable: {exc}")
        return
    done = sum(r.state.finished for r in runs)
    failed = sum(r.state.value == "failed" for r in runs)
    st.progress(done / len(runs), text=f"{done}/{len(runs)} finished ({failed} failed); refreshed every 2 s")
    st.dataframe(display_training(training_frame(runs)), hide_index=True)
    if done == len(runs):
        st.success("All runs started here finished: reload the page to see their evaluation.")


def main() -> None:
    st.title("Training")
    cfg = config()
    store = store_if_any(cfg)
    runs = store.list_training_runs() if store is not None else []
    if runs:
        st.dataframe(display_training(training_frame(runs)), hide_index=True)
    else:
        st.info("No training run stored yet: start one below, or `edgelab train NAME --coordinator HOST:PORT`.")
    _evaluation(runs)
    _launch(cfg)
    started: list[str] = st.session_state.get(STARTED_KEY, [])
    if started:
        st.subheader("Progress of the runs started here")
        _progress(cfg, started)
    mitdb_footer([r.pipeline for r in runs])


main()
