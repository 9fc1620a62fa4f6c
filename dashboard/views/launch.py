"""Launch: build a fleet-wide job, see the expanded matrix, queue it through the coordinator, watch it run."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

import streamlit as st

from coordinator.client import ControlClient
from dashboard.config import DashboardConfig
from dashboard.data import (
    KNOWN_BACKENDS,
    MatrixCell,
    backends_for,
    expand_matrix,
    matrix_frame,
    parse_batch_sizes,
    progress_frame,
)
from dashboard.ui import config, control_client, coordinator_error, mitdb_footer, store_if_any
from edgelab.domain import AgentInfo, ArtifactRef, JobSpec, JobState, MeasurementSettings, Precision
from edgelab.errors import EdgeLabError

PROGRESS_REFRESH_S = 2.0
LAUNCHED_KEY = "launched_job_ids"
LAUNCHED_PARAM = "launched"  # ?launched=<job id>&launched=...: the progress section after a reload
SHA256_HEX = 64


@dataclass
class Picked:
    """A stored artifact (ref set) or a file the browser uploaded (data set), uploaded at launch."""

    ref: ArtifactRef | None = None
    upload_name: str = ""
    upload_data: bytes = b""
    pipeline: str = ""

    @property
    def format(self) -> str:
        """The artifact's format: the stored or typed one, or an upload's file suffix."""
        if self.ref is not None:
            return self.ref.format
        return Path(self.upload_name).suffix.lstrip(".")

    def resolve(self, client: ControlClient) -> ArtifactRef:
        if self.ref is not None:
            return self.ref
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / self.upload_name
            path.write_bytes(self.upload_data)
            return client.upload(path, format=path.suffix.lstrip(".") or "bin")


def _describe(choice: tuple[ArtifactRef, dict[str, str]]) -> str:
    """Name, format, compression, quantization, size and pipeline: what tells two artifacts apart."""
    ref, meta = choice
    parts = [ref.format or "format unknown"]
    if meta.get("compression"):
        parts.append(f"compression {meta['compression']}")
    if meta.get("quantization") and meta["quantization"] != "none":
        parts.append(f"quantization {meta['quantization']}")
    parts.append(f"{ref.size_bytes / 1024:,.1f} KiB")
    if meta.get("pipeline"):
        parts.append(meta["pipeline"])
    return f"{ref.name or ref.sha256[:12]} ({', '.join(parts)})"


def _pick_artifact(label: str, key: str, choices: list[tuple[ArtifactRef, dict[str, str]]], fmt: str) -> Picked | None:
    source = st.radio(
        f"{label} from", ["stored artifact", "sha256", "upload a file"], key=f"{key}_source", horizontal=True
    )
    if source == "stored artifact":
        if not choices:
            st.caption(f"No stored {label.lower()} in the results store yet: paste a sha256 or upload a file.")
            return None
        ref, meta = st.selectbox(label, choices, format_func=_describe, key=f"{key}_stored")
        return Picked(ref=ref, pipeline=meta.get("pipeline", ""))
    if source == "sha256":
        sha = st.text_input(f"{label} sha256", key=f"{key}_sha").strip().lower()
        form = st.text_input(f"{label} format", value=fmt, key=f"{key}_format")
        if not sha:
            return None
        if len(sha) != SHA256_HEX or any(c not in "0123456789abcdef" for c in sha):
            st.error(f"{label} sha256 must be 64 hex characters, got {sha!r}")
            return None
        return Picked(ref=ArtifactRef(sha256=sha, format=form))
    upload = st.file_uploader(f"{label} file", key=f"{key}_file")
    return Picked(upload_name=upload.name, upload_data=upload.getvalue()) if upload is not None else None


def _measurement() -> MeasurementSettings:
    defaults = MeasurementSettings()
    with st.expander("Measurement settings"):
        left, right = st.columns(2)
        return MeasurementSettings(
            warmup_iterations=int(left.number_input("warm-up iterations", 0, value=defaults.warmup_iterations)),
            warmup_duration_s=float(right.number_input("warm-up s", 0.0, value=defaults.warmup_duration_s)),
            min_iterations=int(left.number_input("min timed iterations", 1, value=defaults.min_iterations)),
            min_duration_s=float(right.number_input("min timed s", 0.0, value=defaults.min_duration_s)),
            max_duration_s=float(right.number_input("max timed s", 0.1, value=defaults.max_duration_s)),
            num_threads=int(left.number_input("threads (0: runtime default)", 0, value=defaults.num_threads)),
        )


def _launch(
    cfg: DashboardConfig,
    cells: list[MatrixCell],
    name: str,
    model: Picked,
    dataset: Picked,
    template: dict[str, Any],
) -> list[str]:
    """One submit per (backend, precision), pinned to exactly the agents the matrix showed."""
    job_ids: list[str] = []
    with control_client(cfg) as client:
        model_ref, dataset_ref = model.resolve(client), dataset.resolve(client)
        launched = sorted((c for c in cells if c.launched), key=lambda c: (c.backend, c.precision.value))
        for (backend, precision), group in groupby(launched, key=lambda c: (c.backend, c.precision)):
            spec = JobSpec(
                name=f"{name}-{backend}-{precision.value}",
                backend=backend,
                model=model_ref,
                dataset=dataset_ref,
                precision=precision,
                **template,
            )
            job_ids += client.submit(spec, [c.agent_id for c in group])
    return job_ids


@st.fragment(run_every=PROGRESS_REFRESH_S)
def _progress(cfg: DashboardConfig, job_ids: list[str]) -> None:
    try:
        with control_client(cfg) as client:
            details = [client.get_job(job_id) for job_id in job_ids]
        jobs = [job for job, _ in details]
    except EdgeLabError as exc:
        st.warning(f"progress unavailable: {exc}")
        return
    done = sum(j.state.finished for j in jobs)
    failed = [(job, result) for job, result in details if job.state in (JobState.FAILED, JobState.CANCELLED)]
    st.progress(done / len(jobs), text=f"{done}/{len(jobs)} finished ({len(failed)} failed); refreshed every 2 s")
    st.dataframe(progress_frame(jobs), hide_index=True)
    if done < len(jobs):
        return
    if not failed:
        st.success(f"All {len(jobs)} launched job(s) finished and succeeded: see the Results page.")
        return
    reasons = [
        f"- {job.spec.name} on {job.agent_name or job.agent_id}: "
        + (
            f"{result.failure.kind.value}: {result.failure.message}"
            if result and result.failure
            else "cancelled"
            if job.state is JobState.CANCELLED
            else "no reason recorded"
        )
        for job, result in failed
    ]
    st.error(
        f"All {len(jobs)} launched job(s) finished; {len(failed)} failed:\n" + "\n".join(reasons),
    )


def _agent_label(agents: list[AgentInfo]) -> dict[str, str]:
    return {a.agent_id: f"{a.name} ({a.capabilities.device_model or 'unknown device'}, {a.status})" for a in agents}


def main() -> None:
    st.title("Launch")
    cfg = config()
    try:
        with control_client(cfg) as client:
            agents = client.list_agents()
    except EdgeLabError as exc:
        coordinator_error(cfg, exc)
        st.stop()
    st.caption(f"coordinator {cfg.coordinator}: {len(agents)} agent(s) registered")

    store = store_if_any(cfg)
    artifacts = store.list_artifacts() if store is not None else []
    name = st.text_input("Job name", value="bench")
    model = _pick_artifact("Model", "model", [c for c in artifacts if c[0].format != "npz"], "onnx")
    dataset = _pick_artifact("Test set", "dataset", [c for c in artifacts if c[0].format == "npz"], "npz")
    pipeline = st.text_input("Pipeline", value=model.pipeline if model else "", help="e.g. mitdb-beats-1d")

    seen = {r.name for a in agents for r in a.capabilities.runtimes}
    model_format = model.format if model else ""
    loaders = backends_for(model_format)
    known = sorted(set(KNOWN_BACKENDS) | seen | set(loaders))
    # The default backend is one that loads the chosen model (a TFLite model is not run on onnxruntime).
    default = next((b for b in ("onnxruntime", *loaders) if b in loaders), "onnxruntime")
    backends = st.multiselect(
        "Backends",
        known,
        default=[default],
        key=f"backends_{model_format}",
        help="A backend that cannot load the model's format is skipped in the matrix below, with the reason.",
    )
    precisions = st.multiselect("Precisions", [p.value for p in Precision], default=[Precision.FP32.value])
    batch_text = st.text_input("Batch sizes", value="1,8,32")
    labels = _agent_label(agents)
    targets = st.multiselect(
        "Target agents (empty: every capable agent that is not offline)", list(labels), format_func=labels.__getitem__
    )
    measurement = _measurement()

    try:
        batch_sizes = parse_batch_sizes(batch_text)
    except ValueError as exc:
        st.error(str(exc))
        batch_sizes = []
    cells = expand_matrix(agents, backends, [Precision(p) for p in precisions], targets, model_format)
    runnable = [c for c in cells if c.launched]
    st.subheader(f"Expanded matrix: {len(runnable)} job(s) of {len(cells)} combination(s)")
    st.dataframe(matrix_frame(cells, batch_sizes), hide_index=True)

    missing = [what for what, picked in (("a model", model), ("a test set", dataset)) if picked is None]
    if missing:
        st.info(f"Choose {' and '.join(missing)} to launch.")
    ready = bool(runnable and batch_sizes and name.strip()) and not missing
    clicked = st.button(f"Launch {len(runnable)} job(s)", type="primary", disabled=not ready)
    if clicked and model is not None and dataset is not None:
        template = {"batch_sizes": batch_sizes, "measurement": measurement, "pipeline": pipeline.strip()}
        try:
            job_ids = _launch(cfg, cells, name.strip(), model, dataset, template)
        except (EdgeLabError, ValueError) as exc:
            st.error(f"Launch failed: {exc}")
        else:
            st.session_state[LAUNCHED_KEY] = st.session_state.get(LAUNCHED_KEY, []) + job_ids
            st.query_params[LAUNCHED_PARAM] = st.session_state[LAUNCHED_KEY]
            st.success(f"queued {len(job_ids)} job(s): {' '.join(job_ids)}")

    # The address keeps them: a reload (a new session) still follows the jobs launched here.
    launched: list[str] = st.session_state.get(LAUNCHED_KEY) or st.query_params.get_all(LAUNCHED_PARAM)
    if launched:
        st.subheader("Progress of the jobs launched here")
        _progress(cfg, launched)
    mitdb_footer([pipeline, *(p.pipeline for p in (model, dataset) if p is not None)])


main()
