"""Streamlit dashboard: fleet, job launcher and results explorer.

It reads only the results store (`coordinator.store.Store`) and the coordinator's
operator API (`coordinator.client.ControlClient`), never agent or backend modules.
"""
