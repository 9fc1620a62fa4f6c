"""Streamlit pages; `dashboard/app.py` runs them by path through `st.navigation`."""
