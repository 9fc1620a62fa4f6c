"""Entry point: `streamlit run dashboard/app.py` (or `edgelab dashboard`)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

# Not "pages/": Streamlit would also build its legacy navigation from a folder of that name.
PAGES = Path(__file__).parent / "views"

st.set_page_config(page_title="EdgeLab", layout="wide")
navigation = st.navigation(
    [
        st.Page(PAGES / "results.py", title="Results", default=True),
        st.Page(PAGES / "fleet.py", title="Fleet"),
        st.Page(PAGES / "launch.py", title="Launch"),
        st.Page(PAGES / "training.py", title="Training"),
    ]
)
navigation.run()
