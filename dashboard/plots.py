"""Plotly figures for the results page; each takes the numeric frame from `dashboard.data`.

Only successful runs are plotted (a failure has no latency to draw); callers pass frames
already narrowed to one batch size and one latency scope so bars compare like with like.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from dashboard.data import confusion_frame, pareto_front
from edgelab.domain import AccuracyReport

HOVER = ["name", "job_id", "agent", "backend", "precision", "batch_size"]


def _ok(frame: pd.DataFrame, *needed: str) -> pd.DataFrame:
    return frame[frame["status"] == "ok"].dropna(subset=list(needed))


def accuracy_vs_latency(frame: pd.DataFrame) -> go.Figure:
    """Accuracy against p50 latency with the Pareto front (nothing else is both faster and more accurate)."""
    points = _ok(frame, "p50_ms", "accuracy")
    figure = px.scatter(
        points,
        x="p50_ms",
        y="accuracy",
        color="config",
        symbol="device",
        hover_data=HOVER,
        labels={"p50_ms": "p50 latency (ms)", "accuracy": "on-device accuracy"},
        title="Accuracy vs p50 latency (Pareto front dashed)",
    )
    figure.update_traces(marker={"size": 12})
    front = pareto_front(points)
    figure.add_trace(
        go.Scatter(
            x=front["p50_ms"],
            y=front["accuracy"],
            mode="lines",
            line={"dash": "dash", "color": "black"},
            name="Pareto front",
            hovertext=front["name"],
        )
    )
    figure.update_yaxes(tickformat=".1%", range=[0, 1.02])  # accuracy: a fixed scale compares plots
    return figure


def latency_bars(frame: pd.DataFrame) -> go.Figure:
    """p50 latency per device and backend/precision, error bar up to p90 where it was measured."""
    bars = _ok(frame, "p50_ms").copy()
    bars["p90_minus_p50"] = (bars["p90_ms"] - bars["p50_ms"]).clip(lower=0)
    figure = px.bar(
        bars,
        x="device",
        y="p50_ms",
        color="config",
        barmode="group",
        error_y="p90_minus_p50",
        hover_data=[*HOVER, "throughput_per_s", "samples"],
        labels={"p50_ms": "p50 latency (ms)", "config": "backend, precision"},
        title="Latency per device x precision (bar: p50, whisker: p90)",
    )
    return figure


def energy_bars(frame: pd.DataFrame) -> go.Figure:
    bars = _ok(frame, "energy_per_inference_mj")
    return px.bar(
        bars,
        x="device",
        y="energy_per_inference_mj",
        color="config",
        barmode="group",
        hover_data=[*HOVER, "power_meter", "power_mean_w"],
        labels={"energy_per_inference_mj": "energy per inference (mJ)"},
        title="Energy per inference (idle baseline subtracted)",
    )


def size_vs_accuracy(frame: pd.DataFrame) -> go.Figure:
    points = _ok(frame, "model_size_bytes", "accuracy").copy()
    points["model_size_kib"] = points["model_size_bytes"] / 1024
    figure = px.scatter(
        points,
        x="model_size_kib",
        y="accuracy",
        color="config",
        symbol="device",
        hover_data=[*HOVER, "model"],
        labels={"model_size_kib": "model size (KiB)", "accuracy": "on-device accuracy"},
        title="Model size vs accuracy",
    )
    figure.update_traces(marker={"size": 12})
    figure.update_yaxes(tickformat=".1%", range=[0, 1.02])  # accuracy: a fixed scale compares plots
    return figure


def speedup_bars(frame: pd.DataFrame) -> go.Figure:
    bars = _ok(frame, "speedup_vs_tf_fp32")
    figure = px.bar(
        bars,
        x="device",
        y="speedup_vs_tf_fp32",
        color="config",
        barmode="group",
        hover_data=[*HOVER, "p50_ms"],
        labels={"speedup_vs_tf_fp32": "speed-up vs TensorFlow FP32 (p50)"},
        title="Speed-up vs the TensorFlow FP32 baseline (same pipeline, device, batch size)",
    )
    figure.add_hline(y=1.0, line_dash="dot")
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
