"""Datasets, features, models and training pipelines (plain functions; Ray wraps them in coordinator)."""
