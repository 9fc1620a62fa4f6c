"""EdgeLab: benchmark ML models on a fleet of edge devices."""

__version__ = "0.1.0"
