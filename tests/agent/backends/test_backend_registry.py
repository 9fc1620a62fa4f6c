"""The backend registry and the format map the dashboard reads (edgelab.constants.BACKEND_FORMATS) agree."""

import pytest

from agent.backends import BACKENDS, get_backend
from edgelab.constants import BACKEND_FORMATS


def test_every_registered_backend_loads_the_formats_the_shared_map_names() -> None:
    assert {name: backend.formats for name, backend in BACKENDS.items()} == BACKEND_FORMATS


def test_an_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(
        KeyError, match="unknown backend 'onnx'; known: onnxruntime, tensorflow, tensorrt, tflite, trtexec"
    ):
        get_backend("onnx")
