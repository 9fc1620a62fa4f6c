"""Where the dashboard reads from: the results store and the coordinator's address.

`edgelab dashboard` resolves the settings once and hands them to the Streamlit process
through the environment (`EDGELAB_HOME`, and the variable below for the coordinator),
so `streamlit run dashboard/app.py` alone also works with the usual `EDGELAB_*` layers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgelab.config import ClientTls, load_settings
from edgelab.constants import HEARTBEAT_INTERVAL_S

COORDINATOR_ENV = "EDGELAB_DASHBOARD_COORDINATOR"


@dataclass(frozen=True)
class DashboardConfig:
    db_path: Path
    coordinator: str
    operator_token: str | None
    tls: ClientTls | None = None  # from the tls_* settings, as the CLI uses them
    # The coordinator's: agent status (online, stale, offline) counts missed heartbeats of this interval.
    heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S


def load_config() -> DashboardConfig:
    settings = load_settings()
    return DashboardConfig(
        db_path=settings.db_path,
        coordinator=os.environ.get(COORDINATOR_ENV) or settings.address,
        operator_token=settings.operator_token,
        tls=settings.client_tls(),
        heartbeat_interval_s=settings.heartbeat_interval_s,
    )
