"""Results: filterable table, the plots people ask for, confusion matrices, runs side by side with their
operator profiles, export. Query parameters select filters and runs, so a link shows the same view:
`?backend=tflite&agent=rpi4-lab&matrix=m1&since=2026-12-01&until=2026-12-03&run=3f2a&run=9c1d&refresh=on`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
import streamlit as st

from coordinator.store import StoredResult
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
    ec57_frame,
    late_result_line,
    leaderboard,
    manifest_diff,
    noise_warnings,
    profile_diff,
    profile_frame,
    quality_options,
    results_frame,
    scoring_warnings,
    to_parquet_bytes,
    verdict_color,
)
from dashboard.ui import auto_refresh, config, mitdb_footer, store_or_stop
from edgelab.domain import Job, JobState
from edgelab.errors import EdgeLabError, MissingExtraError
from edgelab.ids import resolve_id
from edgelab.metrics import DE_CHAZAL_2004_LABEL

# (column, label, query parameter): the parameter's values select options (an agent by its name too).
FILTERS = [
    ("pipeline", "Pipeline", "pipeline"),
    ("matrix", "Matrix launch", "matrix"),
    ("device", "Agent (device)", "agent"),
    ("compression", "Compression", "compression"),
    ("backend", "Backend", "backend"),
    ("precision", "Precision", "precision"),
    ("status", "Status", "status"),
]
RUN_PARAM = "run"  # ?run=<job id or prefix>, repeated: the runs compared (the first also in the confusion matrix)
MAX_COMPARED = 8
NO_MATRIX = "(not from a matrix)"


def _linked(options: list[str], param: str, aliases: dict[str, str] | None = None) -> list[str]:
    """The options the URL's `param` values name (directly or through `aliases`: option -> another name)."""
    values = set(st.query_params.get_all(param))
    aliases = aliases or {}
    return [o for o in options if o in values or aliases.get(o) in values]


def _link(param: str, values: Sequence[str], everything: bool = False) -> None:
    """Write a selection back into the URL (nothing when it is everything, the default)."""
    if everything or not values:
        st.query_params.pop(param, None)
    else:
        st.query_params[param] = list(values)


def _filter(frame: pd.DataFrame) -> pd.DataFrame:
    st.sidebar.header("Filter results")
    keep = pd.Series(True, index=frame.index)
    agent_names = dict(zip(frame["device"], frame["agent"], strict=True))
    for column, label, param in FILTERS:
        options = sorted(frame[column].dropna().unique().tolist())
        linked = _linked(options, param, agent_names if column == "device" else None)
        chosen = st.sidebar.multiselect(
            label,
            options,
            default=linked or options,
            key=f"filter_{column}",
            format_func=(lambda v: v or NO_MATRIX) if column == "matrix" else str,
        )
        _link(param, [agent_names[c] for c in chosen] if column == "device" else chosen, set(chosen) == set(options))
        keep &= frame[column].isin(chosen)
    return frame[keep & _date_filter(frame)]


def _date_filter(frame: pd.DataFrame) -> pd.Series:
    """Finished between two days (inclusive), from ?since= and ?until= (YYYY-MM-DD) or the picker."""
    days = frame["finished_at"].dt.date
    first: dt.date = days.min()
    last: dt.date = days.max()

    def linked(param: str, default: dt.date) -> dt.date:
        try:
            return min(max(dt.date.fromisoformat(st.query_params.get(param, "")), first), last)
        except ValueError:
            return default

    picked = st.sidebar.date_input(
        "Finished between (UTC days)",
        value=(linked("since", first), linked("until", last)),
        min_value=first,
        max_value=last,
        key="filter_dates",
    )
    # While only the first day of a range is picked, the range runs to the last day.
    chosen = [d for d in (picked if isinstance(picked, tuple) else (picked,)) if d is not None]
    since = chosen[0] if chosen else first
    until = chosen[1] if len(chosen) > 1 else last
    _link("since", [since.isoformat()], since == first)
    _link("until", [until.isoformat()], until == last)
    return (days >= since) & (days <= until)


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


def _linked_runs(ids: list[str], labels: dict[str, str]) -> list[str]:
    """The runs ?run= names (ids or unique prefixes) among `ids`, in the link's order; others are ignored."""
    runs = []
    for value in st.query_params.get_all(RUN_PARAM):
        try:
            runs.append(resolve_id(value, {i: labels[i] for i in ids}, "run"))
        except EdgeLabError:
            continue
    return list(dict.fromkeys(runs))


def _compare(
    frame: pd.DataFrame, stored: dict[str, tuple[Job, StoredResult]], labels: dict[str, str], batch: int | None
) -> list[str]:
    """Runs side by side, the first as baseline A; returns the chosen job ids."""
    st.header("Compare runs")
    ids = list(labels)
    if len(ids) < 2:
        st.info("Select at least two runs to compare them.")
        return ids
    chosen = st.multiselect(
        "Runs to compare (the first is the baseline A)",
        ids,
        default=_linked_runs(ids, labels) or ids[:2],
        format_func=labels.__getitem__,
        max_selections=MAX_COMPARED,
        key="compare_runs",
    )
    _link(RUN_PARAM, chosen)
    if len(chosen) < 2:
        st.info("Pick at least two runs to compare.")
        return chosen
    compared = comparison_frame(frame, chosen, batch)
    deltas = [c for c in compared.columns if c.endswith(" vs A")]
    st.dataframe(compared.style.map(verdict_color, subset=deltas), hide_index=True)
    st.caption(
        "Each run against A: relative change, better or worse by the metric (lower latency, energy and size; "
        "higher accuracy, macro F1, throughput and speed-up). p50s whose 95% CIs overlap are no difference. "
        "Link to this comparison: copy the page's address."
    )
    with st.expander("Provenance (manifest) side by side"):
        diff = manifest_diff([stored[job_id][1].result.manifest for job_id in chosen])
        st.dataframe(diff, hide_index=True)
    return chosen


def _profiles(frame: pd.DataFrame, stored: dict[str, tuple[Job, StoredResult]], chosen: list[str]) -> None:
    """Per-operator profile of the runs that carry one; with two, the per-operator diff."""
    st.header("Operator profile")
    run_names = dict(zip(frame["job_id"], frame["run"], strict=True))
    profiled = [job_id for job_id in run_names if stored[job_id][1].result.profiles]
    if not profiled:
        st.info(
            "No run in this selection carries an operator profile: launch with `backend_options: {profile: 'on'}` "
            "(ONNX Runtime, TensorRT)."
        )
        return
    picked = st.multiselect(
        "Profiled runs (two: the second against the first)",
        profiled,
        default=[j for j in chosen if j in profiled][:2] or profiled[:1],
        format_func=run_names.__getitem__,
        key="profile_runs",
    )
    if not picked:
        return
    profiles = profile_frame([(run_names[j], stored[j][1].result) for j in picked])
    sizes = sorted(int(b) for b in profiles["batch_size"].unique())
    batch = st.selectbox("Batch size of the profile", sizes, key="profile_batch")
    st.plotly_chart(plots.operator_profile(profiles[profiles["batch_size"] == batch], batch))
    if len(picked) >= 2:
        a, b = run_names[picked[0]], run_names[picked[1]]
        diff = profile_diff(profiles, a, b, batch)
        st.subheader(f"{b} against {a}")
        st.dataframe(
            diff.style.format({"A ms": "{:.4f}", "B ms": "{:.4f}", "B / A": "{:.2f}x"}).map(
                lambda r: "color: #d62728" if r > 1.1 else "color: #2ca02c" if r < 1 / 1.1 else "", subset=["B / A"]
            ),
            hide_index=True,
        )
        st.caption(
            "The runtime's own kernel times per operator (their sum is not the end-to-end latency); operators "
            "fused or renamed by another build are compared only in the totals' row."
        )


def main() -> None:
    st.title("Results")
    cfg = config()
    store = store_or_stop(cfg)
    auto_refresh("results_refresh")
    unfinished = [j for j in store.list_jobs(limit=1000) if not j.state.finished]
    if unfinished:
        running = sum(j.state is JobState.LEASED for j in unfinished)
        st.caption(
            f"{running} job(s) running, {len(unfinished) - running} queued: their results appear here when they "
            "finish (turn on auto-refresh in the sidebar)."
        )
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
    late = store.list_late_results()
    for _, failed in filtered[filtered["status"] == "failed"].drop_duplicates("job_id").iterrows():
        st.error(
            f"{failed['name']} on {failed['agent']} failed ({failed['failure_kind']}): {failed['failure_message']}"
        )
        for result in late.get(failed["job_id"], []):
            st.warning(late_result_line(failed["name"], result))
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
    linked = _linked_runs(list(labels), labels)
    scored = [job_id for job_id in labels if stored[job_id][1].result.accuracy is not None]
    st.header("Confusion matrix")
    if scored:
        first = next((scored.index(j) for j in linked if j in scored), 0)
        job_id = st.selectbox("Run", scored, index=first, format_func=labels.__getitem__, key="confusion_job")
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
            split = str(filtered.loc[filtered["job_id"] == job_id, "split"].iloc[0])
            ec57 = ec57_frame(report, split)
            if ec57 is not None:
                st.dataframe(ec57, hide_index=True)
                st.caption(
                    "AAMI EC57 gross Se / +P (F or Q beats labelled VEB are no VEB false positive)"
                    + (
                        f"; {DE_CHAZAL_2004_LABEL}: all of DS2; this run: a model trained inter-patient too, "
                        f"scored on {report.samples:,} beats of DS2's records."
                        if split == "inter-patient"
                        else f"; split {split or 'not recorded'}: no published inter-patient figure to set beside it."
                    )
                )
    else:
        st.info("No run in this selection was scored on a test set.")

    chosen = _compare(filtered, stored, labels, batch)
    _profiles(filtered, stored, chosen)

    mitdb_footer(filtered["pipeline"].tolist())


main()
