"""Results: filterable table, the plots people ask for, confusion matrices, two runs side by side, export."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import plots
from dashboard.data import (
    BUDGETS,
    END_TO_END,
    MEAN_OVER_P50,
    SMALL_TEST_SET,
    THROUGHPUT_SHORTFALL,
    UNSTABLE_CV,
    classes_frame,
    comparison_frame,
    display_results,
    leaderboard,
    manifest_diff,
    noise_warnings,
    quality_options,
    results_frame,
    scoring_warnings,
    to_parquet_bytes,
)
from dashboard.ui import config, mitdb_footer, store_or_stop
from edgelab.errors import MissingExtraError

FILTERS = [
    ("pipeline", "Pipeline"),
    ("device", "Agent (device)"),
    ("compression", "Compression"),
    ("backend", "Backend"),
    ("precision", "Precision"),
    ("status", "Status"),
]


def _filter(frame: pd.DataFrame) -> pd.DataFrame:
    st.sidebar.header("Filter results")
    keep = pd.Series(True, index=frame.index)
    for column, label in FILTERS:
        options = sorted(frame[column].dropna().unique().tolist())
        chosen = st.sidebar.multiselect(label, options, default=options, key=f"filter_{column}")
        keep &= frame[column].isin(chosen)
    return frame[keep]


def _quality(frame: pd.DataFrame) -> tuple[str, str]:
    """The quality metric the cards and the Pareto front rank by (macro F1 unless chosen otherwise)."""
    options = quality_options(frame)
    chosen = st.sidebar.selectbox(
        "Quality metric",
        list(options),
        format_func=options.__getitem__,
        key="quality",
        help="Accuracy flatters a classifier on imbalanced data: macro F1 or a rare class's Se says more.",
    )
    return chosen, options[chosen]


def _summary(frame: pd.DataFrame, quality: str, label: str) -> None:
    runs = frame.drop_duplicates("job_id")
    ok = frame[frame["status"] == "ok"]
    columns = st.columns(4)
    columns[0].metric("runs", len(runs))
    columns[1].metric("failed", int((runs["status"] == "failed").sum()))
    scored = ok.dropna(subset=[quality])
    if scored.empty:
        columns[2].metric(f"best {label}", "n/a")
    else:
        best = scored.loc[scored[quality].idxmax()]
        value = f"{best[quality]:.2%}" if quality == "accuracy" else f"{best[quality]:.3f}"
        columns[2].metric(
            f"best {label}",
            value,
            help=f"{best['run']} on {best['agent']}: accuracy {best['accuracy']:.2%}, macro F1 {best['macro_f1']:.3f}",
        )
    fastest = ok["p50_ms"].min()
    columns[3].metric("lowest p50 ms", "n/a" if pd.isna(fastest) else f"{fastest:.3f}")
    warnings = scoring_warnings(frame)
    if warnings:
        st.warning(
            f"Scores say little for {len(warnings)} run(s) (tiny test set or classes with no sample): "
            + "; ".join(warnings)
        )


def _noise(frame: pd.DataFrame) -> None:
    lines = noise_warnings(frame)
    if lines:
        st.warning(
            f"Noisy timings ({len(lines)}): unstable when CV > {UNSTABLE_CV:.0%}, mean > {MEAN_OVER_P50}x p50 "
            f"or throughput < {THROUGHPUT_SHORTFALL:.0%} of batch x 1000 / p50 ms; agents on one host disturb "
            "each other.\n\n" + "\n".join(f"- {line}" for line in lines)
        )


def _leaderboard(frame: pd.DataFrame, quality: str, label: str) -> None:
    st.header("Leaderboard per device")
    ok = frame[(frame["status"] == "ok") & (frame["scope_kind"] == END_TO_END)]
    if ok.empty:
        st.info("No successful run in this selection: no leaderboard.")
        return
    left, middle, right = st.columns(3)
    sizes = sorted(int(b) for b in ok["batch_size"].dropna().unique())
    batch = left.selectbox("Batch size", sizes, key="board_batch")
    column = middle.selectbox("Budget on", list(BUDGETS), format_func=BUDGETS.__getitem__, key="board_metric")
    ok = ok[ok["batch_size"] == batch]
    values = ok["model_size_bytes"] / 1024 if column == "model_size_kib" else ok[column]
    ceiling = float(values.max()) if values.notna().any() else 0.0
    # Starts at the largest value at this batch size (every run qualifies); one budget per metric and batch.
    budget = right.number_input(
        f"at most ({BUDGETS[column]})",
        min_value=0.0,
        value=ceiling,
        key=f"board_budget_{column}_{batch}",
        format="%.3f",
    )
    st.dataframe(leaderboard(frame, column, float(budget), quality, batch), hide_index=True)
    st.caption(
        f"Per agent, the successful end-to-end run at batch {batch} with the best {label} within the budget "
        "(ties: lower p50); Se is each class's recall."
    )


def _export(frame: pd.DataFrame) -> None:
    left, right = st.columns(2)
    left.download_button("Download CSV", frame.to_csv(index=False), "edgelab-results.csv", "text/csv")
    try:
        parquet = to_parquet_bytes(frame)
    except MissingExtraError as exc:
        right.caption(f"Parquet export unavailable: {exc}")
    else:
        right.download_button("Download Parquet", parquet, "edgelab-results.parquet", "application/octet-stream")


def _plots(frame: pd.DataFrame, quality: str, label: str, colors: dict[str, str]) -> int | None:
    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        st.info("No successful run in this selection: nothing to plot.")
        return None
    left, right = st.columns(2)
    sizes = sorted(int(b) for b in ok["batch_size"].dropna().unique())
    batch = left.selectbox("Batch size for the plots", sizes, key="plot_batch")
    scopes = sorted(ok["scope_kind"].dropna().unique(), key=lambda s: s != END_TO_END)
    scope = right.radio("Latency scope", scopes, horizontal=True, key="plot_scope")
    log_latency = st.toggle("Log-scale latency", key="plot_log")
    shown = frame[(frame["batch_size"] == batch) & (frame["scope_kind"] == scope)]
    # The two headline plots side by side; the rest in tabs.
    left, right = st.columns(2)
    left.plotly_chart(plots.accuracy_vs_latency(shown, quality, label, log_latency, colors))
    right.plotly_chart(plots.latency_bars(shown, log_latency, colors))
    tabs = st.tabs(["Latency distribution", "Energy", "Model size", "Speed-up"])
    with tabs[0]:
        st.plotly_chart(plots.latency_distribution(shown, log_latency, colors))
    with tabs[1]:
        if shown["energy_per_inference_mj"].notna().any():
            st.plotly_chart(plots.energy_bars(shown, colors))
        else:
            st.info("Energy per inference: not measured (no power meter on these runs).")
    with tabs[2]:
        st.plotly_chart(plots.size_vs_accuracy(shown, quality, label, colors))
    with tabs[3]:
        if shown["speedup_vs_tf_fp32"].notna().any():
            st.plotly_chart(plots.speedup_bars(shown, colors))
        else:
            st.info(
                "Speed-up: no baseline. Run the same pipeline with backend tensorflow, precision fp32 "
                "on the same device and batch size."
            )
    return batch


def main() -> None:
    st.title("Results")
    cfg = config()
    store = store_or_stop(cfg)
    rows = store.list_results()
    if not rows:
        st.info("No finished job yet: run `edgelab demo`, or launch one on the Launch page.")
        st.stop()
    stored = {job.job_id: (job, result) for job, result in rows}
    frame = results_frame(rows, store.list_artifacts(), store.list_agents())
    colors = plots.color_map(frame["config"].tolist())  # from every run: filtering keeps the colours
    filtered = _filter(frame)
    quality, label = _quality(filtered)

    _summary(filtered, quality, label)
    st.dataframe(display_results(filtered), hide_index=True)
    for _, failed in filtered[filtered["status"] == "failed"].drop_duplicates("job_id").iterrows():
        st.error(
            f"{failed['name']} on {failed['agent']} failed ({failed['failure_kind']}): {failed['failure_message']}"
        )
    _noise(filtered)
    _export(filtered)
    _leaderboard(filtered, quality, label)

    st.header("Plots")
    batch = _plots(filtered, quality, label, colors)

    labels = {
        job_id: f"{job.spec.name} on {job.agent_name or result.agent_id} ({job_id})"
        for job_id, (job, result) in stored.items()
        if job_id in set(filtered["job_id"])
    }
    scored = [job_id for job_id in labels if stored[job_id][1].result.accuracy is not None]
    st.header("Confusion matrix")
    if scored:
        job_id = st.selectbox("Run", scored, format_func=labels.__getitem__, key="confusion_job")
        report = stored[job_id][1].result.accuracy
        if report is not None:
            st.metric(
                "accuracy",
                f"{report.accuracy:.2%}",
                help=f"{report.samples} test samples, macro F1 {report.macro_f1:.3f}",
            )
            absent = [c.name for c in report.classes if c.support == 0]
            if report.samples < SMALL_TEST_SET or absent:
                st.warning(
                    f"Scored on {report.samples} test samples"
                    + (f"; no sample of class {', '.join(absent)}" if absent else "")
                    + ": per-class Se and PPV below say more than accuracy."
                )
            st.plotly_chart(plots.confusion_heatmap(report))
            st.dataframe(classes_frame(report), hide_index=True)
    else:
        st.info("No run in this selection was scored on a test set.")

    st.header("Compare two runs")
    if len(labels) >= 2:
        ids = list(labels)
        left, right = st.columns(2)
        job_a = left.selectbox("Run A", ids, index=0, format_func=labels.__getitem__, key="compare_a")
        job_b = right.selectbox("Run B", ids, index=1, format_func=labels.__getitem__, key="compare_b")
        st.dataframe(comparison_frame(filtered, job_a, job_b, batch), hide_index=True)
        with st.expander("Provenance (manifest) side by side"):
            diff = manifest_diff(stored[job_a][1].result.manifest, stored[job_b][1].result.manifest)
            st.dataframe(diff, hide_index=True)
    else:
        st.info("Select at least two runs to compare them.")

    mitdb_footer(filtered["pipeline"].tolist())


main()
