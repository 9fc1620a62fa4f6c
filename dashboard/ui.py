"""Streamlit helpers the pages share: the store handle, the coordinator client, the footer."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from coordinator.client import ControlClient
from coordinator.store import Store
from dashboard.config import DashboardConfig, load_config
from dashboard.data import uses_mitdb
from edgelab.errors import CoordinatorUnavailable, EdgeLabError

MITDB_ATTRIBUTION = (
    "MIT-BIH Arrhythmia Database: Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia Database. "
    "IEEE Eng in Med and Biol 20(3):45-50 (2001); Goldberger et al., PhysioBank, PhysioToolkit, and "
    "PhysioNet, Circulation 101(23):e215-e220 (2000)."
)
CONTROL_TIMEOUT_S = 5.0
REFRESH_S = 10.0  # auto-refresh period of Results and Fleet
REFRESH_PARAM = "refresh"  # ?refresh=on turns it on from a link
_FULL_RUN = "_page_run_in_progress"


def config() -> DashboardConfig:
    return load_config()


@st.cache_resource(show_spinner=False)
def _open_store(path: str, heartbeat_interval_s: float) -> Store:
    # One read-only connection per dashboard process (Store serialises access with its own lock): the
    # dashboard never writes, locks or migrates the coordinator's store.
    return Store(Path(path), readonly=True, heartbeat_interval_s=heartbeat_interval_s)


def store_or_stop(cfg: DashboardConfig) -> Store:
    """The results store, or a clear note and an early stop when there is none yet."""
    if not cfg.db_path.is_file():
        st.info(
            f"No results store at `{cfg.db_path}` yet. Run `edgelab demo`, or start a coordinator "
            "with `edgelab coordinator serve`, then reload this page."
        )
        st.stop()
    return _open_store(str(cfg.db_path), cfg.heartbeat_interval_s)


def control_client(cfg: DashboardConfig) -> ControlClient:
    return ControlClient(cfg.coordinator, cfg.operator_token, timeout_s=CONTROL_TIMEOUT_S, tls=cfg.tls)


def mitdb_footer(pipelines: list[str]) -> None:
    if uses_mitdb(pipelines):
        st.divider()
        st.caption(MITDB_ATTRIBUTION)


def store_if_any(cfg: DashboardConfig) -> Store | None:
    return _open_store(str(cfg.db_path), cfg.heartbeat_interval_s) if cfg.db_path.is_file() else None


def coordinator_error(cfg: DashboardConfig, exc: EdgeLabError) -> None:
    """Why a call to the coordinator failed, and what to do about it."""
    if isinstance(exc, CoordinatorUnavailable):
        st.error(
            f"Cannot reach the coordinator: {exc}. Start it with `edgelab coordinator serve`, "
            "or point the dashboard at it with `edgelab dashboard --coordinator HOST:PORT`."
        )
    else:
        st.error(f"The coordinator at {cfg.coordinator} refused the request: {exc}")


def auto_refresh(key: str) -> None:
    """A sidebar toggle (also ?refresh=on): on, the whole page reruns every REFRESH_S, so running jobs,
    new results and agents' liveness show up without a reload."""
    on = st.sidebar.toggle(
        f"Auto-refresh every {REFRESH_S:.0f} s",
        value=st.query_params.get(REFRESH_PARAM) == "on",
        key=key,
        help="Reruns this page while it is open; filters and selections stay.",
    )
    if on:
        st.query_params[REFRESH_PARAM] = "on"
        st.session_state[_FULL_RUN] = True
        _refresh_timer()
    else:
        st.query_params.pop(REFRESH_PARAM, None)


@st.fragment(run_every=REFRESH_S)
def _refresh_timer() -> None:
    # Its first run is part of the page's run; every later one is the timer's: rerun the whole page.
    if st.session_state.get(_FULL_RUN):
        st.session_state[_FULL_RUN] = False
        return
    st.rerun()
