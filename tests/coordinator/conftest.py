"""Fixtures shared by the coordinator tests."""

from __future__ import annotations

import pytest

from tests.factories import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()
