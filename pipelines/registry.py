"""The training pipelines by name: grep a name here to find where it is registered."""

from __future__ import annotations

from pipelines.af import AfPipeline
from pipelines.base import Pipeline
from pipelines.beats_1d import BeatCnn1dPipeline

PIPELINES: dict[str, Pipeline] = {
    "mitdb-beats-1d": BeatCnn1dPipeline(),
    "mitdb-af-bilstm": AfPipeline("bilstm"),
    "mitdb-af-squeezenet": AfPipeline("squeezenet"),
}


def get_pipeline(name: str) -> Pipeline:
    """The pipeline called `name`; KeyError listing the known names otherwise."""
    try:
        return PIPELINES[name]
    except KeyError:
        raise KeyError(f"unknown pipeline {name!r}; known: {', '.join(sorted(PIPELINES))}") from None
