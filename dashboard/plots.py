"""Plotly figures for the results page; each takes the numeric frame from `dashboard.data`.

Only successful runs are plotted (a failure has no latency to draw); callers pass frames
already narrowed to one batch size and one latency scope so bars compare like with like.
Bars are one per run (grouped under their agent), never runs added together; colours follow
`color_map`, one colour per configuration (backend, precision, compression) on every plot.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from dashboard.data import confusion_frame, pareto_front
from edgelab.domain import AccuracyReport

HOVER = ["run", "agent", "device_model", "backend", "precision", "compression", "batch_size"]
HOVER_FORMATS = {"p50_ms": ":.3f", "accuracy": ":.2%", "macro_f1": ":.3f"}
# Mid grey reads on a light and on a dark background alike.
FRONT_COLOR = "#8c8c8c"
PALETTE = px.colors.qualitative.Plotly + px.colors.qualitative.D3
# Legends below the plot: half-width plots keep their drawing area.
LEGEND_BELOW = {"orientation": "h", "yanchor": "top", "y": -0.3, "xanchor": "left", "x": 0}


def color_map(configs: Sequence[str]) -> dict[str, str]:
    """One colour per configuration, fixed by its sorted position so every view agrees."""
    return {config: PALETTE[i % len(PALETTE)] for i, config in enumerate(sorted(set(configs)))}


def _ok(frame: pd.DataFrame, *needed: str) -> pd.DataFrame:
    return frame[frame["status"] == "ok"].dropna(subset=list(needed))


def _quality_axis(figure: go.Figure, quality: str) -> None:
    # Fitted to the data (a fixed 0-100% hides 73 vs 75%); accuracy as percent, scores as decimals.
    figure.update_yaxes(tickformat=".1%" if quality == "accuracy" else ".3f", autorange=True)


def accuracy_vs_latency(
    frame: pd.DataFrame,
    quality: str = "accuracy",
    quality_label: str = "accuracy",
    log_x: bool = False,
    colors: dict[str, str] | None = None,
) -> go.Figure:
    """Quality against p50 latency with a Pareto front per device (nothing there is both faster and better)."""
    points = _ok(frame, "p50_ms", quality)
    figure = px.scatter(
        points,
        x="p50_ms",
        y=quality,
        color="config",
        symbol="device",
        color_discrete_map=colors or color_map(points["config"].tolist()),
        hover_data={**dict.fromkeys(HOVER, True), **HOVER_FORMATS, quality: ":.3f"},
        labels={"p50_ms": "p50 latency (ms)", quality: f"on-device {quality_label}"},
        log_x=log_x,
        title=f"{quality_label[0].upper()}{quality_label[1:]} vs p50 latency (Pareto front per device, dashed)",
    )
    figure.update_traces(marker={"size": 12})
    for device, group in points.groupby("device", sort=True):
        front = pareto_front(group, y=quality)
        figure.add_trace(
            go.Scatter(
                x=front["p50_ms"],
                y=front[quality],
                mode="lines",
                line={"dash": "dash", "color": FRONT_COLOR, "width": 2},
                name=f"Pareto front: {device}",
                hovertext=front["run"],
            )
        )
    _quality_axis(figure, quality)
    figure.update_layout(legend=LEGEND_BELOW, legend_title="backend, precision, compression; agent")
    return figure


def _run_bars(
    bars: pd.DataFrame,
    y: str,
    title: str,
    y_label: str,
    colors: dict[str, str] | None,
    whisker_to: str = "",
    log_y: bool = False,
) -> go.Figure:
    """One bar per run, grouped under its agent; an optional whisker from the bar up to `whisker_to`."""
    colors = colors or color_map(bars["config"].tolist())
    bars = bars.sort_values(["agent", "config", "run"])
    figure = go.Figure()
    for config, group in bars.groupby("config", sort=True):
        error_y = None
        if whisker_to:
            # Up only (p50 -> p90), never below the bar; a run without p90 has no whisker.
            plus = (group[whisker_to] - group[y]).clip(lower=0).fillna(0)
            error_y = {"type": "data", "symmetric": False, "array": plus.tolist(), "arrayminus": [0.0] * len(group)}
        figure.add_trace(
            go.Bar(
                x=[group["agent"].tolist(), group["run"].tolist()],
                y=group[y].tolist(),
                name=str(config),
                marker_color=colors.get(str(config)),
                error_y=error_y,
                customdata=group[["run", "agent", "device_model", "p50_ms", "p90_ms"]].to_numpy(),
                hovertemplate=(
                    "%{customdata[0]}<br>%{customdata[1]} (%{customdata[2]})<br>"
                    f"{y_label}: %{{y:.3f}}<br>p50 %{{customdata[3]:.3f}} ms, p90 %{{customdata[4]:.3f}} ms"
                    f"<extra>{config}</extra>"
                ),
            )
        )
    figure.update_layout(
        title=title,
        barmode="overlay",  # every (agent, run) category holds exactly one bar: nothing stacks
        yaxis_title=y_label,
        legend={**LEGEND_BELOW, "y": -0.7},  # below the two rows of category labels
        legend_title="backend, precision, compression",
        margin={"b": 200},
        height=560,
    )
    figure.update_xaxes(tickangle=-30)
    if log_y:
        figure.update_yaxes(type="log")
    return figure


def latency_bars(frame: pd.DataFrame, log_y: bool = False, colors: dict[str, str] | None = None) -> go.Figure:
    """p50 latency of each run, grouped per agent, whisker up to p90 where it was measured."""
    return _run_bars(
        _ok(frame, "p50_ms"),
        "p50_ms",
        "Latency per run, grouped per agent (bar: p50, whisker: p50 to p90)",
        "p50 latency (ms)",
        colors,
        whisker_to="p90_ms",
        log_y=log_y,
    )


def latency_distribution(frame: pd.DataFrame, log_y: bool = False, colors: dict[str, str] | None = None) -> go.Figure:
    """A box per run drawn from its stored percentiles, grouped per agent, coloured per configuration:
    whiskers min to max, box p50 to p99 (p90 where no p99 was stored), line at p50, dashed line at the mean."""
    runs = _ok(frame, "p50_ms", "min_ms", "max_ms").sort_values(["agent", "config", "run"])
    colors = colors or color_map(runs["config"].tolist())
    figure = go.Figure()
    for config, group in runs.groupby("config", sort=True):
        upper = group["p99_ms"].fillna(group["p90_ms"]).fillna(group["p50_ms"])
        figure.add_trace(
            go.Box(
                x=[group["agent"].tolist(), group["run"].tolist()],
                lowerfence=group["min_ms"].tolist(),
                q1=group["p50_ms"].tolist(),
                median=group["p50_ms"].tolist(),
                q3=upper.tolist(),
                upperfence=group["max_ms"].tolist(),
                mean=group["mean_ms"].tolist(),
                boxmean=True,
                orientation="v",  # x alone (no samples on y) would lay the boxes on their side
                name=str(config),
                marker_color=colors.get(str(config)),
                hoverinfo="y+name",
            )
        )
    figure.update_layout(
        title="Latency distribution per run (whiskers min to max, box p50 to p99 or p90, dashed: mean)",
        boxmode="overlay",  # one box per (agent, run) category
        yaxis_title="latency (ms)",
        legend={**LEGEND_BELOW, "y": -0.7},
        legend_title="backend, precision, compression",
        margin={"b": 200},
        height=560,
    )
    figure.update_xaxes(tickangle=-30)
    if log_y:
        figure.update_yaxes(type="log")
    return figure


def energy_bars(frame: pd.DataFrame, colors: dict[str, str] | None = None) -> go.Figure:
    return _run_bars(
        _ok(frame, "energy_per_inference_mj"),
        "energy_per_inference_mj",
        "Energy per inference per run (idle baseline subtracted)",
        "energy per inference (mJ)",
        colors,
    )


def size_vs_accuracy(
    frame: pd.DataFrame,
    quality: str = "accuracy",
    quality_label: str = "accuracy",
    colors: dict[str, str] | None = None,
) -> go.Figure:
    points = _ok(frame, "model_size_bytes", quality).copy()
    points["model_size_kib"] = points["model_size_bytes"] / 1024
    figure = px.scatter(
        points,
        x="model_size_kib",
        y=quality,
        color="config",
        symbol="device",
        color_discrete_map=colors or color_map(points["config"].tolist()),
        hover_data={
            **dict.fromkeys([*HOVER, "model"], True),
            **HOVER_FORMATS,
            "model_size_kib": ":,.1f",
            quality: ":.3f",
        },
        labels={"model_size_kib": "model size (KiB)", quality: f"on-device {quality_label}"},
        title=f"Model size vs {quality_label}",
    )
    figure.update_traces(marker={"size": 12})
    _quality_axis(figure, quality)
    return figure


def speedup_bars(frame: pd.DataFrame, colors: dict[str, str] | None = None) -> go.Figure:
    figure = _run_bars(
        _ok(frame, "speedup_vs_tf_fp32"),
        "speedup_vs_tf_fp32",
        "Speed-up per run vs the TensorFlow FP32 baseline (same pipeline, agent, batch size)",
        "speed-up vs TensorFlow FP32 (p50)",
        colors,
    )
    figure.add_hline(y=1.0, line_dash="dot", line_color=FRONT_COLOR)
    return figure


def operator_profile(profiles: pd.DataFrame, batch_size: int) -> go.Figure:
    """Each run's slowest operators at one batch size (ms per inference), one bar per run and operator,
    operators in the first run's order (slowest at the top)."""
    order = list(dict.fromkeys(profiles.sort_values("time_ms", ascending=False)["operator"]))
    runs = list(dict.fromkeys(profiles["run"]))
    figure = go.Figure()
    for run, group in profiles.groupby("run", sort=False):
        figure.add_trace(
            go.Bar(
                x=group["time_ms"].tolist(),
                y=group["operator"].tolist(),
                orientation="h",
                name=str(run),
                marker_color=PALETTE[runs.index(run) % len(PALETTE)],
                customdata=group[["op_type", "percent"]].to_numpy(),
                hovertemplate="%{y} (%{customdata[0]})<br>%{x:.4f} ms, %{customdata[1]:.1f}% of the profile"
                f"<extra>{run}</extra>",
            )
        )
    figure.update_layout(
        title=f"Slowest operators at batch {batch_size} (ms per inference, the runtime's kernel times)",
        barmode="group",
        xaxis_title="ms per inference",
        legend=LEGEND_BELOW,
        height=max(360, 28 * len(order) * max(1, len(runs)) + 160),
    )
    figure.update_yaxes(categoryorder="array", categoryarray=order[::-1])
    return figure


def confusion_heatmap(report: AccuracyReport, title: str = "") -> go.Figure:
    matrix = confusion_frame(report)
    figure = px.imshow(
        matrix,
        text_auto=True,
        color_continuous_scale="Blues",
        labels={"x": "predicted", "y": "true", "color": "beats"},
        title=title or "Confusion matrix (rows: true class)",
    )
    return figure
