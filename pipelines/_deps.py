"""Lazy imports of the optional training stack, so `import pipelines` works on a bare agent install."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from edgelab.errors import MissingExtraError


def require(module: str, extra: str = "train") -> ModuleType:
    """Import `module`, or say which extra installs it (a broken install still raises its own error)."""
    top = module.split(".")[0]
    if top in {"tensorflow", "keras", "tf2onnx"}:
        # Before TensorFlow's first import, or its C++ logging floods the console.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and e.name.split(".")[0] != top:
            raise  # the package is there but one of its own dependencies is not
        raise MissingExtraError(top, extra) from e
