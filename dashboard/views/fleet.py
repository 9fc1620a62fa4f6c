"""Fleet: registered agents, their liveness, what they run now, device, runtimes (and why one is missing),
power meters; hardware details in a tab. Laid out to be read on a 1280 px screen."""

from __future__ import annotations

import streamlit as st

from dashboard.data import fleet_frame, hardware_frame, runtimes_frame
from dashboard.ui import auto_refresh, config, store_or_stop


def main() -> None:
    st.title("Fleet")
    cfg = config()
    store = store_or_stop(cfg)
    auto_refresh("fleet_refresh")
    agents = store.list_agents()
    job_names = {j.job_id: j.spec.name for j in store.list_jobs(limit=500)}

    counts = {status: sum(a.status == status for a in agents) for status in ("online", "stale", "offline")}
    columns = st.columns(4)
    columns[0].metric("agents", len(agents))
    for column, (status, count) in zip(columns[1:], counts.items(), strict=True):
        column.metric(status, count)

    if agents:
        # A static table wraps its cells: every column stays readable on a 1280 px screen (a data grid cuts them).
        st.table(fleet_frame(agents, job_names), hide_index=True, border="horizontal")
        runtimes, hardware = st.tabs(["Runtimes per agent", "Hardware"])
        with runtimes:
            st.dataframe(runtimes_frame(agents), hide_index=True)
        with hardware:
            st.dataframe(hardware_frame(agents), hide_index=True)
    else:
        st.info("No agent has registered with this coordinator yet.")

    st.subheader("Register a device")
    st.markdown(
        "On the Jetson, Raspberry Pi or PC, install EdgeLab (`pip install edgelab`) and run the agent; "
        "it dials the coordinator (devices may sit behind NAT), registers its runtimes and leases jobs. "
        "Use the coordinator's LAN address if it listens on loopback here, and the fleet token it was started with."
    )
    st.code(f"edgelab agent run --coordinator {cfg.coordinator} --fleet-token TOKEN --name NAME", language="bash")
    st.caption(
        f"results store: {cfg.db_path} (read-only); agent status: online / stale / offline after missed "
        f"heartbeats (every {cfg.heartbeat_interval_s:g} s)"
    )


main()
