"""Markers follow the folder: tests/unit, tests/integration, tests/lab."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.parts
        for marker in ("unit", "integration", "lab"):
            if marker in parts:
                item.add_marker(getattr(pytest.mark, marker))
