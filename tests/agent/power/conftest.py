from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

WriteTree = Callable[[Mapping[str, str]], Path]


@pytest.fixture
def sysfs(tmp_path: Path) -> WriteTree:
    """Writes {relative path: text} under tmp_path/sys, the shape of a sysfs tree, and returns its root."""
    root = tmp_path / "sys"
    root.mkdir(exist_ok=True)

    def write(files: Mapping[str, str]) -> Path:
        for relative, text in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")
        return root

    return write
